"""What the monitors share per chunk, and a shortcut that must not hide a depletion: the columns a
chunk derives once, the least-squares slope, and the depletion proof that is dropped when the
current rises (checked against the gap operator stepped on its own through the same history)."""

from __future__ import annotations

import numpy as np
import pytest

from licycler.monitors import Chunk, DepletionMonitor, MetricLog, StepContext
from licycler.monitors.base import least_squares_slope
from licycler.physics.gap import GapTransport

from .conftest import num, schedule
from .test_depletion import sand_schedule


def test_chunk_derives_intervals_magnitudes_and_finiteness() -> None:
    t = np.array([10.5, 11.0, 12.0, 14.0])
    v = np.array([-0.05, 0.02, -0.03, 0.04])
    chunk = Chunk(t, v, np.full(4, 1e-3), 10.0)
    np.testing.assert_array_equal(chunk.dt_s, [0.5, 0.5, 1.0, 2.0])
    np.testing.assert_array_equal(chunk.abs_voltage_v, [0.05, 0.02, 0.03, 0.04])
    assert chunk.voltage_finite
    for bad in (np.nan, np.inf, -np.inf):
        w = v.copy()
        w[2] = bad
        assert not Chunk(t, w, np.full(4, 1e-3), 10.0).voltage_finite
    empty = Chunk(np.zeros(0), np.zeros(0), np.zeros(0), 3.0)
    assert empty.voltage_finite
    assert empty.dt_s.size == 0
    assert empty.end_s == 3.0


def test_least_squares_slope_matches_a_polynomial_fit() -> None:
    rng = np.random.default_rng(5)
    x = np.sort(rng.uniform(0.0, 600.0, 12))
    y = 2.0e5 - 3.5 * x + rng.normal(0.0, 40.0, x.size)
    assert least_squares_slope(x.tolist(), y.tolist()) == pytest.approx(np.polyfit(x, y, 1)[0], rel=1e-9)
    assert least_squares_slope([1.0], [2.0]) == 0.0
    assert least_squares_slope([3.0, 3.0, 3.0], [1.0, 2.0, 4.0]) == 0.0  # no spread in x: no slope


def test_a_proof_of_no_depletion_is_dropped_when_the_current_rises() -> None:
    """Ten minutes at 0.1 mA/cm^2 in a 1 cm capillary (the surface provably never nears the
    threshold), then 10 mA/cm^2 (Sand's time 613 s), in 5-minute chunks: the threshold is reported
    by the chunk in which the gap operator, stepped by itself through the same current history,
    first puts the plating surface at the threshold's concentration, with the index the operator
    gives at the reading reported (the chunk's highest)."""
    sched = schedule(sand_schedule("continue"))
    step = sched.steps[1]
    area = sched.cell.area_m2
    monitor = DepletionMonitor(sched.watch, area)
    ctx = StepContext(sched, step, 1, 0.0, 1, step.current_a, MetricLog(), time_limit_s=None)
    monitor.start_step(ctx)
    j_low, j_high = 1.0, 100.0  # A/m^2, plating the working electrode
    t = np.arange(1.0, 1801.0)
    j = np.where(t <= 600.0, j_low, j_high)
    current = -j * area
    reported: tuple[float, float, float] | None = None  # (chunk end, reading, index)
    for a in range(0, t.size, 300):
        chunk = Chunk(t[a : a + 300], np.full(300, 0.05), current[a : a + 300], float(a))
        found = monitor.observe(ctx, chunk)
        if a == 0:
            assert all(monitor.far), "the low current must be proven far from the threshold"
        hits = [f for f in found if f.cause == "depletion" and f.sign == "threshold"]
        if hits and reported is None:
            reported = (chunk.end_s, hits[0].time_s, num(hits[0].values["depletion_index"]))
    assert reported is not None
    # the reference: the current read at t_k flowed during (t_(k-1), t_k], so from t_(k-1) on
    gap = GapTransport(monitor.spec)
    times = np.concatenate(([0.0], t))
    c_x0, _ = gap.advance(gap.initial_state(), times, np.append(j, j[-1]))
    index = 1.0 - c_x0 / monitor.c0
    crossing = float(times[np.flatnonzero(index >= monitor.threshold)[0]])
    chunk_end, reading, reported_index = reported
    assert chunk_end - 300.0 < crossing <= chunk_end  # seen by the chunk in which it happened
    assert 600.0 < crossing < 600.0 + 613.0  # before Sand's time at the high current
    assert chunk_end - 300.0 < reading <= chunk_end
    assert reported_index == pytest.approx(float(index[times == reading][0]), abs=1e-9)
    assert reported_index >= monitor.threshold
