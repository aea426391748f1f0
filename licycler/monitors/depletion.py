"""Depletion: the approach to Sand's time, live, from the measured current history.

The salt concentration at both electrode surfaces is carried by the exact finite-gap transport of
:mod:`licycler.physics.gap` (the same operator the twin uses), driven by the measured current
(runs of constant current in each chunk, zero current across a gap in the readings such as a
suspension). With a configured intensification alpha a second column carries alpha j: the hot
spot. The depletion index is 1 - c_min / c0 at the plating surface (0 fresh, 1 depleted); the
forecast asks whether it crosses its threshold before the step ends, and a derate finds the
largest current that keeps it below until the step's capacity is delivered. The empirical sign
is watched too: an accelerating rise of |V| during plating (d2|V|/dt2 > 0 over successive windows).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from licycler.monitors.base import Chunk, Finding, FloatArray, StepContext, finite_or_none
from licycler.physics.gap import GapSpec, GapState, GapTransport
from licycler.protocols.schedule import Watch

__all__ = ["DepletionMonitor", "DerateResult"]

IndexArray = npt.NDArray[np.int64]

SPARSE_POINTS = 32
"""Samples evaluated in a run of constant current that cannot come near the threshold."""
MAX_RUNS = 16
"""Most constant-current runs a chunk is split into (a varying current is averaged over runs)."""

FORECAST_POINTS = 48
REFINE_ROUNDS = 4
REFORECAST_S = 1800.0
"""A step's forecast is made again at least this often (s), and whenever its current drifts."""
TARGET_MARGIN = 0.95
"""A derate aims at this fraction of the threshold, so that noise does not trip it again."""


class DerateResult:
    """A derated setpoint: ``current_a`` (A, signed), ``fraction`` of the step's current, the new
    ``time_limit_s`` of the step (None: it has none), and the forecast ``index_max`` at that current."""

    def __init__(self, current_a: float, fraction: float, time_limit_s: float | None, index_max: float) -> None:
        self.current_a = current_a
        self.fraction = fraction
        self.time_limit_s = time_limit_s
        self.index_max = index_max


def _runs(j: FloatArray, spread: float, tol: float) -> list[tuple[int, int]]:
    """(start, end) index pairs of runs of (nearly, within ``tol``) constant current density ``j``
    (A/m^2); ``spread`` is max(j) - min(j)."""
    n = j.size
    if spread <= tol:  # the usual case: one constant current through the chunk
        return [(0, n)]
    brk = (np.flatnonzero(np.abs(np.diff(j)) > tol) + 1).tolist()
    if len(brk) >= MAX_RUNS:  # a current that keeps changing (voltage control): averaged in pieces
        brk = sorted({int(k) for k in np.linspace(0, n, MAX_RUNS + 1)[1:-1]} - {0})
    return list(zip([0, *brk], [*brk, n], strict=True))


@functools.lru_cache(maxsize=64)
def _sparse_offsets(n: int) -> IndexArray:
    """Offsets of the samples evaluated in a run of ``n`` (> 2 SPARSE_POINTS) readings that cannot
    come near the threshold: the first four, then evenly spaced ones (spacing >= 2: distinct) to the last."""
    even = np.linspace(0, n - 1, SPARSE_POINTS).astype(np.int64)
    out = np.concatenate((np.arange(4), even[even >= 4]))
    out.flags.writeable = False
    return out


def _state_json(s: GapState) -> dict[str, Any]:
    return {"t": s.t_s, "j": s.current_density_a_m2, "g": s.gradient_mol_m4, "z": s.amplitudes.tolist(),
            "st": s.step_times_s.tolist(), "sg": s.step_gradients.tolist()}  # fmt: skip


def _state_from(d: Mapping[str, Any]) -> GapState:
    return GapState(float(d["t"]), float(d["j"]), float(d["g"]), np.array(d["z"], dtype=np.float64),
                    np.array(d["st"], dtype=np.float64), np.array(d["sg"], dtype=np.float64))  # fmt: skip


class DepletionMonitor:
    """Surface concentration, depletion index, time to depletion, forecast, derate, divergence."""

    name = "depletion"

    def __init__(self, watch: Watch, area_m2: float) -> None:
        m = watch.model
        self.watch = watch
        self.area_m2 = area_m2
        self.spec = GapSpec(m.thickness_m, m.diffusivity_m2_s, m.concentration_mol_m3, m.transference_number,
                            m.porosity, m.bruggeman, m.tortuosity)  # fmt: skip
        self.gap = GapTransport(self.spec)
        self.c0 = self.spec.concentration_mol_m3
        self.factors = (1.0, m.alpha) if m.alpha > 1.0 else (1.0,)
        self.states = [self.gap.initial_state() for _ in self.factors]
        self.far: list[bool] = [False for _ in self.factors]
        """Per column: proven above the threshold for as long as its present current holds (the
        gap's lower bound only rises while a current holds: it need not be asked again)."""
        rule = watch.rule("depletion")
        self.threshold = rule["threshold"]
        self.horizon_s = rule["horizon"]
        self.min_fraction = rule["min_fraction"]
        div = watch.rule("voltage_divergence")
        self.window_s = div["window"]
        self.min_rise_v = div["min_rise"]
        self.latched: set[str] = set()
        self.next_metric_s = 0.0
        self.period_index = 0.0
        self.period_c_min = math.inf
        self.forecast_t = -math.inf
        self.forecast_current_a = 0.0
        # divergence: the open window (index, sum, count) and the last completed window means
        self.win = (-1, 0.0, 0)
        self.means = np.zeros(0)  # the last completed window means (|V|, V) of the step

    # --- transport ---------------------------------------------------------------------------
    def _advance(self, chunk: Chunk) -> tuple[IndexArray, FloatArray, float]:
        """Move every column through ``chunk``. Returns the indices of the samples evaluated, the
        lowest surface concentration over the columns at each (mol/m^3, floored at 0: past
        depletion the model's linear profile goes negative), and the chunk's mean current density
        (A/m^2, > 0 plating the working electrode). Where the gap model proves every column stays
        above the threshold through a run of constant current, only some of its samples are
        evaluated (the first ones, then evenly, and the last); the states still move exactly."""
        t = chunk.t_s
        j = chunk.current_a * (-1.0 / self.area_m2)  # > 0 plates at x = 0 (the working electrode)
        lo, hi = float(j.min()), float(j.max())
        if not (math.isfinite(lo) and math.isfinite(hi)):  # a reading without a current carried none
            j = np.where(np.isfinite(j), j, 0.0)
            lo, hi = float(j.min()), float(j.max())
        tol = max(1e-3 * max(abs(lo), abs(hi)), 1e-4)
        for col, state in enumerate(self.states):
            if chunk.t_prev_s > state.t_s:  # no readings in between: no current flowed (suspended, paused)
                self.gap.set_current(state, 0.0, state.t_s)
                self.far[col] = False
        level = self._level(self.threshold)
        where: list[IndexArray] = []
        lows: list[FloatArray] = []
        for a, b in _runs(j, hi - lo, tol):
            j_run = float(j[a:b].sum()) / (b - a)
            t_start = float(t[a - 1]) if a > 0 else chunk.t_prev_s
            for col, (state, f) in enumerate(zip(self.states, self.factors, strict=True)):
                jr = f * j_run
                if abs(jr - state.current_density_a_m2) > f * tol:
                    self.gap.set_current(state, jr, max(t_start, state.t_s))
                    self.far[col] = False
                if not self.far[col]:
                    self.far[col] = self.gap.lower_bound(state) > level
            far = b - a > 2 * SPARSE_POINTS and all(self.far)
            idx = a + _sparse_offsets(b - a) if far else np.arange(a, b)
            times = t[idx] if far else t[a:b]
            low: FloatArray | None = None
            for state in self.states:
                c_x0, c_xl = self.gap.evaluate(state, times)
                lowest = np.minimum(c_x0, c_xl)
                low = lowest if low is None else np.minimum(low, lowest)
                self.gap.evolve(state, float(t[b - 1]))  # the current is constant through the run
            assert low is not None
            where.append(idx)
            lows.append(low)
        idx = where[0] if len(where) == 1 else np.concatenate(where)
        low = lows[0] if len(lows) == 1 else np.concatenate(lows)
        return idx, np.maximum(low, 0.0), float(j.sum()) / j.size

    def _copies_at(self, t0: float) -> list[GapState]:
        """Copies of the columns at ``t0`` (zero current from their last sample to ``t0``)."""
        out = []
        for state in self.states:
            s = state.copy()
            if t0 > s.t_s:
                self.gap.set_current(s, 0.0, s.t_s)
                self.gap.evolve(s, t0)
            out.append(s)
        return out

    def _plating_min(self, states: list[GapState], j: float, times: FloatArray) -> FloatArray:
        """Lowest plating-surface concentration over the columns at ``times`` (s after now)
        under current density ``j`` (A/m^2) held from now; the states are changed."""
        c = np.full(times.size, np.inf)
        for s, f in zip(states, self.factors, strict=True):
            self.gap.set_current(s, f * j, s.t_s)
            c_x0, c_xl = self.gap.evaluate(s, s.t_s + times)
            np.minimum(c, c_x0 if j >= 0 else c_xl, out=c)
        return c

    def forecast(self, t0: float, j: float, duration_s: float, level: float) -> tuple[float | None, float]:
        """Under current density ``j`` (A/m^2) from ``t0`` for ``duration_s``: the time (s after
        ``t0``) at which the plating surface first falls to ``level`` (mol/m^3), or None, and the
        highest depletion index on the way."""
        if duration_s <= 0 or j == 0:
            return None, 0.0
        grid = np.unique(np.concatenate((np.linspace(0.0, duration_s, FORECAST_POINTS + 1)[1:],
                                         np.geomspace(duration_s * 1e-4, duration_s, FORECAST_POINTS))))  # fmt: skip
        c = self._plating_min(self._copies_at(t0), j, grid)
        peak = 1.0 - float(np.min(c)) / self.c0
        below = np.flatnonzero(c <= level)
        if below.size == 0:
            return None, peak
        k = int(below[0])
        lo, hi = (float(grid[k - 1]) if k > 0 else 0.0), float(grid[k])
        for _ in range(REFINE_ROUNDS):
            sub = np.linspace(lo, hi, 9)
            cs = self._plating_min(self._copies_at(t0), j, sub)
            m = int(np.flatnonzero(cs <= level)[0]) if np.any(cs <= level) else 8
            lo, hi = float(sub[max(m - 1, 0)]), float(sub[m])
        return hi, peak

    def _held_at(self, t0: float, j: float) -> list[GapState]:
        """Copies of the columns at ``t0`` with current density ``j`` (A/m^2, times each column's
        factor) switched on then."""
        states = self._copies_at(t0)
        for s, f in zip(states, self.factors, strict=True):
            self.gap.set_current(s, f * j, s.t_s)
        return states

    def never_below(self, t0: float, j: float, level: float) -> bool:
        """Whether the plating surface provably stays above ``level`` (mol/m^3) under current
        density ``j`` (A/m^2) held from ``t0`` for ever (a cheap bound; False proves nothing)."""
        return min(self.gap.lower_bound(s) for s in self._held_at(t0, j)) > level

    def time_to_depletion_s(self) -> float:
        """Seconds until a plating surface reaches zero at the present current (inf: never)."""
        if all(self.far):  # proven above the threshold's level (> 0) while the current holds
            return math.inf
        return min(self.gap.time_to_depletion(s) for s in self.states)

    def time_to_depletion_at(self, t0: float, j: float) -> float:
        """Seconds until a plating surface reaches zero under ``j`` (A/m^2) held from ``t0`` (inf: never)."""
        return min(self.gap.time_to_depletion(s) for s in self._held_at(t0, j))

    def index_at(self, t_s: float) -> float:
        """The depletion index at ``t_s`` with no current since the last sample (a suspended cell relaxing)."""
        states = self._copies_at(t_s)
        return max(1.0 - float(np.min(self.gap.evaluate(s, [s.t_s])[0:2])) / self.c0 for s in states)

    # --- the monitor -------------------------------------------------------------------------
    def _level(self, index: float) -> float:
        return self.c0 * (1.0 - index)

    def _duration(self, ctx: StepContext, current_a: float) -> float:
        return ctx.remaining_s(self.horizon_s, current_a)

    def _check_forecast(self, ctx: StepContext, t0: float) -> list[Finding]:
        self.forecast_t = t0
        self.forecast_current_a = ctx.setpoint_a
        if "forecast" in self.latched or not ctx.sourcing:
            return []
        j = -ctx.setpoint_a / self.area_m2
        duration = self._duration(ctx, ctx.setpoint_a)
        if self.never_below(t0, j, self._level(self.threshold)):
            return []
        t_cross, peak = self.forecast(t0, j, duration, self._level(self.threshold))
        if t_cross is None:
            return []
        self.latched.add("forecast")
        ttd = self.time_to_depletion_at(t0, j)
        return [Finding(self.name, "depletion", "forecast", t0,
                        f"depletion index forecast to reach {self.threshold:g} in {t_cross:.4g} s, before the step "
                        f"ends (in {duration:.4g} s); surface depleted in {ttd:.4g} s at "
                        f"{abs(j) / 10:.4g} mA/cm^2",
                        {"time_to_threshold_s": t_cross, "time_to_depletion_s": finite_or_none(ttd),
                         "step_time_left_s": duration, "forecast_index_max": peak, "threshold": self.threshold,
                         "current_density_a_m2": j, "alpha": self.factors[-1]},
                        lead_s=finite_or_none(ttd))]  # fmt: skip

    def start_step(self, ctx: StepContext) -> list[Finding]:
        self.latched = set()
        self.win = (-1, 0.0, 0)
        self.means = np.zeros(0)
        return self._check_forecast(ctx, ctx.t0_s)

    def after_derate(self, ctx: StepContext, t_s: float) -> None:
        """A derate changed the setpoint: forecast again from now on the new current."""
        self.latched.discard("forecast")
        self.latched.discard("threshold")
        self.forecast_t = t_s
        self.forecast_current_a = ctx.setpoint_a

    def observe(self, ctx: StepContext, chunk: Chunk) -> list[Finding]:
        if not len(chunk):
            return []
        idx, c_low, mean_j = self._advance(chunk)
        findings: list[Finding] = []
        m = int(np.argmin(c_low))  # the index 1 - c/c0 is highest where c is lowest
        c_min = float(c_low[m])
        k = int(idx[m])
        index = 1.0 - c_min / self.c0
        self.period_index = max(self.period_index, index)
        self.period_c_min = min(self.period_c_min, c_min)
        t_end = chunk.end_s
        if t_end >= self.next_metric_s:
            self._emit_metrics(ctx, t_end, with_ttd=True)
            self.next_metric_s = t_end + self.watch.every_s
        if index >= self.threshold and ctx.sourcing and "threshold" not in self.latched:
            self.latched.add("threshold")
            ttd = self.time_to_depletion_s()
            findings.append(Finding(self.name, "depletion", "threshold", float(chunk.t_s[k]),
                                    f"depletion index {index:.3g} reached its threshold {self.threshold:g}; "
                                    f"surface depleted in {ttd:.4g} s at this current",
                                    {"depletion_index": index, "threshold": self.threshold,
                                     "surface_concentration_mol_m3": c_min,
                                     "time_to_depletion_s": finite_or_none(ttd),
                                     "current_density_a_m2": float(-chunk.current_a[k] / self.area_m2)},
                                    lead_s=finite_or_none(ttd)))  # fmt: skip
        elif ctx.sourcing:
            mean_i = -mean_j * self.area_m2
            drift = abs(mean_i - self.forecast_current_a) > 0.02 * abs(self.forecast_current_a)
            if drift or t_end - self.forecast_t >= REFORECAST_S:
                findings += self._check_forecast(ctx, t_end)
        findings += self._divergence(ctx, chunk)
        return findings

    def _emit_metrics(self, ctx: StepContext, t_s: float, *, with_ttd: bool) -> None:
        if math.isinf(self.period_c_min):
            return
        ctx.metrics.add(t_s, "depletion_index", self.period_index)
        ctx.metrics.add(t_s, "surface_concentration_mol_m3", self.period_c_min)
        if with_ttd:
            ctx.metrics.add(t_s, "time_to_depletion_s", self.time_to_depletion_s())
        self.period_index = 0.0
        self.period_c_min = math.inf

    def end_step(self, ctx: StepContext, ended_by: str) -> list[Finding]:
        if ctx.sourcing:
            self._emit_metrics(ctx, ctx.t0_s + ctx.elapsed_s, with_ttd=False)
        return []

    def end_cycle(self, ctx: StepContext, row: Mapping[str, Any]) -> list[Finding]:
        return []

    # --- derating ----------------------------------------------------------------------------
    def derate(self, ctx: StepContext, t_s: float) -> DerateResult | None:
        """The largest current (a fraction of the present setpoint, >= ``min_fraction``) that keeps
        the forecast depletion index below its threshold (with a margin) until the step has
        delivered its capacity, time limits stretched to match; None when even the smallest does not."""
        current = ctx.setpoint_a
        if current == 0:
            return None
        j = -current / self.area_m2
        base = self._duration(ctx, current)
        stretch = ctx.time_limit_s is not None or ctx.step.until.capacity_c is not None
        index_now = self.index_at(t_s)
        target = TARGET_MARGIN * self.threshold
        if index_now >= target:  # already past: do not let it get worse than half way to depletion
            target = index_now + 0.5 * (1.0 - index_now)
        level = self._level(target)

        def ok(f: float) -> tuple[bool, float]:
            t_cross, peak = self.forecast(t_s, f * j, base / f if stretch else base, level)
            return t_cross is None, peak

        good, peak = ok(self.min_fraction)
        if not good:
            return None
        lo, hi = self.min_fraction, 1.0
        best_peak = peak
        for _ in range(24):
            mid = 0.5 * (lo + hi)
            good, peak = ok(mid)
            if good:
                lo, best_peak = mid, peak
            else:
                hi = mid
            if hi - lo < 1e-4 * hi:
                break
        f = lo
        limit = None
        if ctx.time_limit_s is not None:
            limit = ctx.elapsed_s + max(0.0, ctx.time_limit_s - ctx.elapsed_s) / f
        return DerateResult(f * current, f, limit, best_peak)

    # --- the empirical sign ------------------------------------------------------------------
    def _divergence(self, ctx: StepContext, chunk: Chunk) -> list[Finding]:
        """Accelerating rise of |V| while plating: three successive window-to-window rises, each
        larger than the one before, the first at least a quarter of ``min_rise`` and the last at
        least ``min_rise`` (a single jump, such as contact lost to a void, is not a divergence)."""
        plating = ctx.step.kind == "plate" or (ctx.chemistry == "Li||Li" and ctx.step.kind == "strip")
        if not (plating and ctx.sourcing) or "divergence" in self.latched or not len(chunk):
            return []
        v, t = chunk.abs_voltage_v, chunk.t_s
        if not chunk.voltage_finite:
            ok = np.isfinite(v)
            v, t = v[ok], t[ok]
        if not t.size:
            return []
        k = np.floor((t - ctx.t0_s) / self.window_s).astype(np.int64)
        k0 = int(k[0])
        k -= k0
        sums = np.bincount(k, weights=v)
        counts = np.bincount(k)
        win_k, win_sum, win_n = self.win
        closed = win_k != k0 and win_k >= 0 and win_n > 0  # the window left open by the last chunk ended
        if win_k == k0:
            sums[0] += win_sum
            counts[0] += win_n
        last = counts.size - 1  # the window of the chunk's last reading stays open
        self.win = (k0 + last, float(sums[last]), int(counts[last]))
        present = np.flatnonzero(counts[:last])  # completed windows: their numbers and mean |V|
        ks = k0 + present
        means = sums[present] / counts[present]
        if closed:
            ks = np.concatenate(([win_k], ks))
            means = np.concatenate(([win_sum / win_n], means))
        first = int(np.searchsorted(ks, 1))  # window 0 holds the switch
        kept = ks[first:]
        before = self.means.size
        seq = np.concatenate((self.means, means[first:]))
        self.means = seq[-4:].copy()
        if seq.size < 4:
            return []
        r = np.diff(seq)  # every run of three successive rises in this chunk is looked at
        if float(r.max()) < self.min_rise_v:  # the last rise of a divergence is at least min_rise
            return []
        a1, a2, a3 = r[:-2], r[1:-1], r[2:]
        hit = np.flatnonzero((0.25 * self.min_rise_v <= a1) & (a1 < a2) & (a2 < a3) & (a3 >= self.min_rise_v))
        if not hit.size:
            return []
        h = int(hit[0])
        r1, r2, r3, m3 = float(r[h]), float(r[h + 1]), float(r[h + 2]), float(seq[h + 3])
        at = ctx.t0_s + (int(kept[h + 3 - before]) + 1) * self.window_s if h + 3 >= before else chunk.t_prev_s
        self.latched.add("divergence")
        ttd = self.time_to_depletion_s()
        return [Finding(self.name, "voltage_divergence", "d2v_dt2", min(at, chunk.end_s),
                        f"|V| rising faster and faster while plating: +{r1 * 1e3:.3g}, +{r2 * 1e3:.3g}, "
                        f"+{r3 * 1e3:.3g} mV per {self.window_s:g} s (the voltage signature of depletion)",
                        {"rise_1_v": r1, "rise_2_v": r2, "rise_3_v": r3, "window_s": self.window_s,
                         "voltage_v": m3, "d2v_dt2_v_s2": (r3 - r2) / self.window_s**2,
                         "model_time_to_depletion_s": finite_or_none(ttd)})]  # fmt: skip

    # --- checkpoint ----------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {"states": [_state_json(s) for s in self.states], "next_metric_s": self.next_metric_s,
                "period_index": self.period_index, "period_c_min": finite_or_none(self.period_c_min)}  # fmt: skip

    def restore(self, state: dict[str, Any]) -> None:
        self.states = [_state_from(d) for d in state["states"]]
        self.far = [False for _ in self.states]
        self.next_metric_s = float(state["next_metric_s"])
        self.period_index = float(state["period_index"])
        c = state["period_c_min"]
        self.period_c_min = math.inf if c is None else float(c)
