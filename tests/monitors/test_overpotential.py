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


def _soft_short_finding(v: np.ndarray, chunk_s: int) -> tuple[str, float] | None:
    """The soft-short finding (sign, time) when the readings ``v`` (one per second) come in chunks
    of ``chunk_s`` seconds."""
    monitor, ctx = _context()
    t = np.arange(1.0, v.size + 1.0)
    for a in range(0, v.size, chunk_s):
        found = monitor.observe(ctx, _chunk(t[a : a + chunk_s], v[a : a + chunk_s], float(a), first=a == 0))
        shorts = [f for f in found if f.cause == "soft_short"]
        if shorts:
            return shorts[0].sign, shorts[0].time_s
    return None


def test_soft_short_statistics_do_not_depend_on_how_the_data_came() -> None:
    """Noise that grows tenfold after 20 min: found with the same sign, within one window (a minute),
    whether the data came a minute at a time (a station) or in 10- or 30-minute segments (a
    hardware-free run): the windows are cut from each chunk, so their edges may differ by a few readings."""
    rng = np.random.default_rng(3)
    n = 3600
    sigma = np.where(np.arange(n) < 1200, 50e-6, 500e-6)
    v = 0.05 + rng.normal(0.0, 1.0, n) * sigma
    found = {chunk: _soft_short_finding(v, chunk) for chunk in (60, 600, 1800)}
    assert found[60] is not None
    assert found[60][0] == "noise"
    assert 1200.0 < found[60][1] < 1200.0 + 6 * 60.0  # within five windows of the change (the median of 5)
    for chunk in (600, 1800):
        other = found[chunk]
        assert other is not None
        assert other[0] == "noise"
        assert abs(other[1] - found[60][1]) <= 60.0


class _OneByOne(OverpotentialMonitor):
    """The soft-short windows always taken one by one (no chunk-wide shortcut)."""

    def _quiet(self, med: np.ndarray, noise: np.ndarray, ref: float | None) -> bool:
        return False


def _windows_record(monitor: OverpotentialMonitor) -> tuple[object, ...]:
    return (monitor.state(), monitor.chunk_medians, monitor.step_noise, monitor.recent_noise, monitor.falls)


def test_chunk_wide_shortcut_keeps_what_the_windows_one_by_one_keep() -> None:
    """Healthy steps, then one whose polarization falls by 15 % (or whose noise grows tenfold)
    half way: the monitor that takes a quiet chunk's windows at once reports the same soft shorts
    at the same times and keeps the same records as one that looks at every window in turn."""
    sched = schedule(TEXT)
    step = sched.steps[0]
    for seed, fault in ((1, "fall"), (2, "noise"), (3, "none")):
        rng = np.random.default_rng(seed)
        fast, slow = (cls(sched.watch, sched.cell.area_m2) for cls in (OverpotentialMonitor, _OneByOne))
        reports: dict[int, list[tuple[str, str, float]]] = {id(fast): [], id(slow): []}
        for k in range(5):
            t0 = k * 3600.0
            t = t0 + np.arange(1.0, 3601.0)
            sigma = np.full(t.size, 50e-6)
            v = 0.05 + rng.normal(0.0, 1.0, t.size) * sigma
            if k == 4 and fault == "fall":
                v[1800:] *= 0.85
            if k == 4 and fault == "noise":
                v[1800:] += rng.normal(0.0, 450e-6, 1800)
            ctx = {id(m): StepContext(sched, step, k + 1, t0, k + 1, step.current_a, MetricLog(), time_limit_s=3600.0)
                   for m in (fast, slow)}  # fmt: skip
            for monitor in (fast, slow):
                monitor.start_step(ctx[id(monitor)])
            for a in range(0, t.size, 600):
                chunk = _chunk(t[a : a + 600], v[a : a + 600], t0 + a, first=a == 0)
                for monitor in (fast, slow):
                    found = monitor.observe(ctx[id(monitor)], chunk)
                    reports[id(monitor)] += [(f.cause, f.sign, f.time_s) for f in found if f.cause == "soft_short"]
                assert _windows_record(fast) == _windows_record(slow)
            for monitor in (fast, slow):
                monitor.end_step(ctx[id(monitor)], "time")
        assert reports[id(fast)] == reports[id(slow)]
        expected = {"fall": ["polarization_fall"], "noise": ["noise"], "none": []}[fault]
        assert [sign for _, sign, _ in reports[id(fast)]] == expected
