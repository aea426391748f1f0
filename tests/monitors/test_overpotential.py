"""The overpotential monitor on blocks it is handed directly: a single-reading spike at constant
current is found once; a smooth rise to a cutoff (the end of a Li||Cu strip) is not a spike."""

from __future__ import annotations

import numpy as np

from licycler.monitors import Chunk, MetricLog, OverpotentialMonitor, StepContext

from .conftest import num, schedule

TEXT = """\
name: spikes
cell: {chemistry: Li||Li, electrode_area: 1 cm^2}
limits: {voltage_min: -1 V, voltage_max: 1 V}
steps:
  - strip: {current: 1 mA/cm^2, until: {time: 1 h}}
"""


def _context() -> tuple[OverpotentialMonitor, StepContext]:
    sched = schedule(TEXT)
    step = sched.steps[0]
    ctx = StepContext(sched, step, 1, 0.0, 1, step.current_a, MetricLog(), time_limit_s=3600.0)
    monitor = OverpotentialMonitor(sched.watch, sched.cell.area_m2)
    monitor.start_step(ctx)
    return monitor, ctx


def _chunk(t: np.ndarray, v: np.ndarray, t_prev: float, first: bool = False) -> Chunk:
    return Chunk(t, v, np.full(t.size, 1e-3), t_prev, None, first)


def test_single_reading_spike_is_found_once() -> None:
    monitor, ctx = _context()
    rng = np.random.default_rng(0)
    t = np.arange(1.0, 121.0)
    v = 0.05 + rng.normal(0.0, 50e-6, t.size)
    v[70] += 0.08  # one reading 80 mV up
    found = monitor.observe(ctx, _chunk(t[:60], v[:60], 0.0, first=True))
    assert found == []
    found = monitor.observe(ctx, _chunk(t[60:], v[60:], 60.0))
    spikes = [f for f in found if f.cause == "overpotential_spike"]
    assert len(spikes) == 1
    assert num(spikes[0].values["spike_v"]) > 0.079
    # once per step: a second spike in the same step is not reported again, in the next step it is
    later = monitor.observe(ctx, _chunk(t + 120.0, v, 120.0))
    assert all(f.cause != "overpotential_spike" for f in later)
    monitor.end_step(ctx, "time")
    monitor.start_step(ctx)
    again = monitor.observe(ctx, _chunk(t + 240.0, v, 240.0, first=True))
    assert [f.cause for f in again] == ["overpotential_spike"]


def test_a_steep_smooth_rise_is_not_a_spike() -> None:
    monitor, ctx = _context()
    t = np.arange(1.0, 61.0)
    theta = np.clip((60.5 - t) / 40.0, 1e-4, 1.0)  # lithium coverage fading at the end of a strip
    v = 0.03 + 0.026 * np.arcsinh(1.0 / (2.0 * theta))  # Butler-Volmer with i0 ~ theta
    found = monitor.observe(ctx, _chunk(t, v, 0.0, first=True))
    assert all(f.cause != "overpotential_spike" for f in found)
