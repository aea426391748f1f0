"""Overpotential and soft shorts: the cell's resistance from current steps, the nucleation
overpotential on bare substrate (iR-corrected, physics.nucleation_overpotential) and its drift,
the plateau overpotential of each half-cycle and its trend, single-reading spikes, the stripping
overpotential at the end of each strip (dead-lithium growth), and the soft-short detector.

Soft-short signs (parameters.md): rising voltage noise at constant current, a polarization that
falls (or collapses) at constant current against earlier steps at the same current, and a Li||Cu
strip that never reaches its voltage cutoff. Everything per chunk is a few numpy reductions.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping
from typing import Any

import numpy as np

from licycler.monitors.base import Chunk, Finding, StepContext, least_squares_slope
from licycler.physics.kinetics import nucleation_overpotential
from licycler.protocols.schedule import Watch

__all__ = ["OverpotentialMonitor"]

SKIP_SAMPLES = 3
"""Readings at the start of a step left out (the switching transient)."""

NUCLEATION_WINDOW_C_M2 = 0.05 * 36000.0
"""The nucleation peak is looked for within the first 0.05 mAh/cm^2 of a plating on bare substrate."""

MAD_TO_SIGMA = 1.4826 / math.sqrt(1.5)
"""MAD of second differences x this = the standard deviation of white reading noise."""

BASELINE_CHUNKS = 8
RECENT_CHUNKS = 5
TAIL_SAMPLES = 32
MIN_WINDOW_SAMPLES = 16
"""The fewest readings a soft-short statistics window holds."""
TREND_STEPS = 10


def _window_stats(v: np.ndarray, a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row of voltages ``v`` (windows x readings) and of their magnitudes ``a``: the median |V|
    and the noise, the scaled median absolute deviation of the second difference (NaN for rows of
    fewer than 8 readings)."""
    med = _row_median(a)
    if v.shape[1] < 8:
        return med, np.full(v.shape[0], np.nan)
    r = v[:, 1:-1] - 0.5 * (v[:, :-2] + v[:, 2:])
    r -= _row_median(r)[:, None]
    return med, _row_median(np.abs(r, out=r)) * MAD_TO_SIGMA


def _row_median(x: np.ndarray) -> np.ndarray:
    """The median of each row (one partition, without np.median's general machinery)."""
    n = x.shape[1]
    k = n // 2
    if n % 2:
        return np.partition(x, k, axis=1)[:, k]
    part = np.partition(x, (k - 1, k), axis=1)
    return 0.5 * (part[:, k - 1] + part[:, k])


def _slope(values: list[float]) -> float:
    """Least-squares slope of ``values`` against their index (per step), 0 with fewer than 2."""
    return least_squares_slope(range(len(values)), values)


class OverpotentialMonitor:
    """Resistance, nucleation, plateau, spikes, strip-end overpotential, soft shorts."""

    name = "overpotential"

    def __init__(self, watch: Watch, area_m2: float) -> None:
        self.watch = watch
        self.area_m2 = area_m2
        drift = watch.rule("nucleation_drift")
        self.drift_change_v = drift["change"]
        self.drift_fraction = drift["fraction"]
        self.baseline_cycles = int(drift["baseline_cycles"])
        self.spike_v = watch.rule("overpotential_spike")["size"]
        short = watch.rule("soft_short")
        self.noise_ratio = short["noise_ratio"]
        self.noise_floor_v = short["noise_floor"]
        self.drop = short["polarization_drop"]
        self.collapse = short["collapse"]
        # kept across steps (checkpointed)
        self.resistances: list[float] = []
        self.nucleation: list[float] = []
        self.plateaus: dict[str, list[float]] = {}
        self.noise_baseline: list[float] = []
        self.short_latched = False
        self.drift_latched = False
        self.strip_end: list[float] = []
        self.last_sample: tuple[float, float, float] | None = None  # (t, V, I) of the last reading
        self._reset_step()

    def _reset_step(self) -> None:
        self.ref: tuple[float, float | None] | None = None  # (setpoint, reference plateau) of this step
        self.n_step = 0
        self.bare = False
        self.tip: tuple[float, float, float] | None = None  # (|V|, V, I) at the nucleation peak
        self.after_tip: tuple[float, float, float] | None = None  # lowest |V| after it
        self.tip_open = True
        self.q_areal = 0.0
        self.chunk_medians: list[float] = []
        self.recent_noise: list[float] = []
        self.step_noise: list[float] = []
        self.tail = np.zeros(0)
        self.prev_abs: float | None = None
        self.falls = 0
        self.spiked = False
        self.step_flagged = False

    # --- steps -------------------------------------------------------------------------------
    def _key(self, ctx: StepContext) -> str:
        return f"{ctx.step.kind}:{abs(ctx.setpoint_a):.3e}"

    def start_step(self, ctx: StepContext) -> list[Finding]:
        self._reset_step()
        if ctx.step.kind == "pressure":  # a deliberate change of the stack pressure: new references
            self.plateaus = {}
        self.bare = (
            ctx.chemistry == "Li||Cu"
            and ctx.step.kind == "plate"
            and (ctx.previous_kind == "" or (ctx.previous_kind == "strip" and ctx.previous_end == "voltage_above"))
        )
        return []

    def observe(self, ctx: StepContext, chunk: Chunk) -> list[Finding]:
        n = len(chunk)
        if not n:
            return []
        before = self.last_sample
        self.last_sample = (float(chunk.t_s[-1]), float(chunk.voltage_v[-1]), float(chunk.current_a[-1]))
        if not ctx.sourcing:
            return []
        if chunk.first and before is not None:
            self._resistance(ctx, before, chunk)
        skip = max(0, SKIP_SAMPLES - self.n_step)
        self.n_step += n
        keep: slice | np.ndarray = slice(skip, None)  # the usual case, every reading finite: views
        if not chunk.voltage_finite:
            keep = np.isfinite(chunk.voltage_v)
            keep[:skip] = False
        v, i, t = chunk.voltage_v[keep], chunk.current_a[keep], chunk.t_s[keep]
        if not v.size:
            return []
        a = chunk.abs_voltage_v[keep]
        if self.bare:
            self._nucleation_chunk(a, v, i, chunk.dt_s[keep])
        self.tail = np.concatenate((self.tail, a[-TAIL_SAMPLES:]))[-TAIL_SAMPLES:]
        findings = self._spikes(ctx, a, chunk)
        # the soft-short statistics are per window of about watch.period_s, however the data came:
        # equal windows, their medians and noise computed at once
        span = float(t[-1]) - chunk.t_prev_s
        parts = max(1, min(round(span / self.watch.period_s), a.size // MIN_WINDOW_SAMPLES))
        m = a.size // parts
        m -= 1 - m % 2  # an odd number of readings: each median is one of them (one partition)
        # the last a.size - parts m (< 2 parts) readings are left out of the windows
        med, noise = _window_stats(v[: parts * m].reshape(parts, m), a[: parts * m].reshape(parts, m))
        ref = self._reference(ctx)
        if self._quiet(med, noise, ref):
            return findings
        ends = t[np.arange(1, parts + 1) * m - 1]
        for mk, nk, ek in zip(med.tolist(), noise.tolist(), ends.tolist(), strict=True):
            findings += self._short_window(ctx, mk, nk, ek, ref)
        return findings

    def _resistance(self, ctx: StepContext, before: tuple[float, float, float], chunk: Chunk) -> None:
        """dV/dI across the step's current switch (the reading before the step and the first in it)."""
        _, v0, i0 = before
        v1, i1 = float(chunk.voltage_v[0]), float(chunk.current_a[0])
        di = i1 - i0
        if not (abs(di) > 0.1 * abs(i1) and max(abs(v0), abs(v1)) < 0.5 and math.isfinite(v1)):
            return  # no real step, or an electrode off lithium (bare substrate at its rest potential)
        r = (v1 - v0) / di
        if r <= 0:
            return
        self.resistances = [*self.resistances, r][-5:]
        ctx.metrics.add(float(chunk.t_s[0]), "resistance_ohm", statistics.median(self.resistances))

    def _nucleation_chunk(self, a: np.ndarray, v: np.ndarray, i: np.ndarray, dt: np.ndarray) -> None:
        """Track the peak |V| within the nucleation window and the lowest |V| after it."""
        q = self.q_areal + np.cumsum(np.abs(i) * dt) / self.area_m2
        self.q_areal = float(q[-1])
        start = 0
        if self.tip_open:
            end = int(np.searchsorted(q, NUCLEATION_WINDOW_C_M2, side="right"))
            if end > 0:
                k = int(np.argmax(a[:end]))
                if self.tip is None or a[k] > self.tip[0]:
                    self.tip = (float(a[k]), float(v[k]), float(i[k]))
                    self.after_tip = None
                    start = k + 1
            if end < a.size:
                self.tip_open = False
        if self.tip is not None and start < a.size:
            j = start + int(np.argmin(a[start:]))
            if self.after_tip is None or a[j] < self.after_tip[0]:
                self.after_tip = (float(a[j]), float(v[j]), float(i[j]))

    def _spikes(self, ctx: StepContext, a: np.ndarray, chunk: Chunk) -> list[Finding]:
        """A single reading above both its neighbours by ``size`` (at constant current)."""
        full = a if self.prev_abs is None else np.concatenate(([self.prev_abs], a))
        self.prev_abs = float(a[-1])
        if self.spiked or full.size < 3:
            return []
        rise = np.diff(full)  # a peak: up by more than size from the reading before, down from it to the next
        peak = (rise[:-1] > self.spike_v) & (rise[1:] < -self.spike_v)
        if not peak.any():
            return []
        self.spiked = True
        k = int(np.argmax(peak))
        top = float(full[k + 1])
        height = top - max(float(full[k]), float(full[k + 2]))
        return [Finding(self.name, "overpotential_spike", "single_reading", chunk.end_s,
                        f"|V| spiked by {height * 1e3:.3g} mV for one reading at constant current",
                        {"spike_v": height, "voltage_abs_v": top, "size_v": self.spike_v})]  # fmt: skip

    def _reference(self, ctx: StepContext) -> float | None:
        """The reference plateau |V| (V) for the step's kind and present current (plateaus change
        only at step ends; a derate changes the current)."""
        if self.ref is None or self.ref[0] != ctx.setpoint_a:
            ref = self.plateaus.get(self._key(ctx))
            self.ref = (ctx.setpoint_a, float(statistics.median(ref)) if ref else None)
        return self.ref[1]

    def _quiet(self, med: np.ndarray, noise: np.ndarray, ref: float | None) -> bool:
        """Take a chunk's windows (median |V| and noise, V) at once when none of them can show a
        soft short, which a few bounds prove in the usual case: no recent-noise median (of values
        among the last ones and the new) reaches the firing level, and no median |V| falls below
        the reference's fall or collapse line; the windows are then recorded (:meth:`_keep_windows`).
        False (nothing recorded): look at them one by one (:meth:`_short_window`)."""
        fresh = noise[np.isfinite(noise)].tolist()
        if not self.short_latched:
            if len(self.noise_baseline) < BASELINE_CHUNKS <= len(self.noise_baseline) + len(fresh):
                return False  # the baseline fills within the chunk
            candidates = self.recent_noise + fresh
            if len(self.noise_baseline) >= BASELINE_CHUNKS and candidates:
                fire = max(self.noise_floor_v, self.noise_ratio * statistics.median(self.noise_baseline))
                if max(candidates) >= fire:
                    return False
            if ref is not None and not self.bare:
                if float(np.min(med)) < max(self.collapse, 1.0 - self.drop) * ref:
                    return False
                self.falls = 0
        self._keep_windows(med.tolist(), fresh)
        return True

    def _keep_windows(self, medians: list[float], noises: list[float]) -> None:
        """Record windows: their median |V| (V), and the finite ones of their noise (V)."""
        self.chunk_medians += medians
        self.step_noise += noises
        self.noise_baseline += noises[: max(0, BASELINE_CHUNKS - len(self.noise_baseline))]
        self.recent_noise = (self.recent_noise + noises)[-RECENT_CHUNKS:]

    def _short_window(
        self, ctx: StepContext, med: float, noise: float, end_s: float, ref: float | None
    ) -> list[Finding]:
        """A window's median |V| (V) and voltage noise (V, NaN when too short to tell) against the
        step's noise baseline and reference plateau."""
        self._keep_windows([med], [noise] if math.isfinite(noise) else [])
        if self.short_latched:
            return []
        values: dict[str, float | str | bool | None] = {}
        sign = ""
        if len(self.noise_baseline) >= BASELINE_CHUNKS and len(self.recent_noise) == RECENT_CHUNKS:
            recent = statistics.median(self.recent_noise)
            if recent >= self.noise_floor_v:  # below the floor the baseline need not be looked at
                base = statistics.median(self.noise_baseline)
                if recent >= self.noise_ratio * base:
                    ratio = recent / max(base, 1e-12)
                    sign, values = "noise", {"noise_v": recent, "baseline_noise_v": base, "ratio": ratio}
        if not sign and ref is not None and not self.bare:
            if med < self.collapse * ref:
                sign, values = "collapse", {"voltage_abs_v": med, "reference_v": ref}
            elif med < (1.0 - self.drop) * ref:
                self.falls += 1
                if self.falls >= 2:
                    sign, values = "polarization_fall", {"voltage_abs_v": med, "reference_v": ref,
                                                         "fall": 1.0 - med / ref}  # fmt: skip
            else:
                self.falls = 0
        if not sign:
            return []
        return [self._short(ctx, sign, end_s, values)]

    def _short(self, ctx: StepContext, sign: str, t: float, values: dict[str, float | str | bool | None]) -> Finding:
        self.short_latched = True
        self.step_flagged = True
        words = {
            "noise": "the voltage noise at constant current rose",
            "collapse": "the polarization collapsed at constant current",
            "polarization_fall": "the polarization fell at constant current",
            "cutoff_not_reached": "the strip never reached its voltage cutoff",
        }[sign]
        numbers = ", ".join(f"{k} {v:.4g}" for k, v in values.items() if isinstance(v, float))
        return Finding(self.name, "soft_short", sign, t, f"soft short: {words} ({numbers})",
                       {**values, "current_a": ctx.setpoint_a, "step": ctx.step.index})  # fmt: skip

    def end_step(self, ctx: StepContext, ended_by: str) -> list[Finding]:
        if not ctx.sourcing:
            return []
        t = ctx.t0_s + ctx.elapsed_s
        m = ctx.metrics
        findings: list[Finding] = []
        kind = ctx.step.kind
        if self.chunk_medians:
            skip = 1 if len(self.chunk_medians) > 2 else 0
            plateau = float(statistics.median(self.chunk_medians[skip:]))
            m.add(t, f"plateau_overpotential_{kind}_v", plateau)
            if not self.step_flagged and not self.bare:
                key = self._key(ctx)
                self.plateaus[key] = [*self.plateaus.get(key, []), plateau][-3:]
            history = self.plateaus.get(f"trend:{kind}", [])
            self.plateaus[f"trend:{kind}"] = [*history, plateau][-TREND_STEPS:]
            m.add(t, f"plateau_trend_{kind}_v_per_step", _slope(self.plateaus[f"trend:{kind}"]))
        if self.step_noise:
            m.add(t, "voltage_noise_v", float(statistics.median(self.step_noise)))
        if kind == "strip" and self.tail.size:
            end_v = float(np.median(self.tail))
            m.add(t, "strip_end_overpotential_v", end_v)
            self.strip_end = [*self.strip_end, end_v][-TREND_STEPS:]
            m.add(t, "strip_end_trend_v_per_cycle", _slope(self.strip_end))
        if self.bare:
            findings += self._nucleation_end(ctx, t)
        u = ctx.step.until
        if (ctx.chemistry == "Li||Cu" and kind == "strip" and u.voltage_above_v is not None and ended_by == "time"
                and not self.short_latched):  # fmt: skip
            findings.append(self._short(ctx, "cutoff_not_reached", t,
                                        {"cutoff_v": u.voltage_above_v, "charge_c": abs(ctx.charge_c)}))  # fmt: skip
        return findings

    def _nucleation_end(self, ctx: StepContext, t: float) -> list[Finding]:
        if self.tip is None or self.after_tip is None:
            return []
        r = float(np.median(self.resistances)) if self.resistances else 0.0
        _, v_tip, i_tip = self.tip
        _, v_pl, i_pl = self.after_tip
        eta = float(nucleation_overpotential(v_tip, i_tip, v_pl, i_pl, r))
        ctx.metrics.add(t, "nucleation_overpotential_v", eta)
        self.nucleation = [*self.nucleation, eta]
        if len(self.nucleation) > 50:
            self.nucleation = self.nucleation[: self.baseline_cycles] + self.nucleation[-40:]
        if self.drift_latched or len(self.nucleation) <= self.baseline_cycles:
            return []
        baseline = float(np.median(self.nucleation[: self.baseline_cycles]))
        change = eta - baseline
        limit = max(self.drift_change_v, self.drift_fraction * abs(baseline))
        if abs(change) < limit:
            return []
        self.drift_latched = True
        trend = _slope(self.nucleation[self.baseline_cycles - 1 :])
        return [Finding(self.name, "nucleation_drift", "baseline", t,
                        f"nucleation overpotential {eta * 1e3:.4g} mV, {change * 1e3:+.3g} mV from its baseline "
                        f"{baseline * 1e3:.4g} mV ({trend * 1e3:+.3g} mV per plating)",
                        {"nucleation_overpotential_v": eta, "baseline_v": baseline, "change_v": change,
                         "limit_v": limit, "trend_v_per_plating": trend, "platings": len(self.nucleation),
                         "resistance_ohm": r})]  # fmt: skip

    def end_cycle(self, ctx: StepContext, row: Mapping[str, Any]) -> list[Finding]:
        return []

    # --- checkpoint ----------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {"resistances": self.resistances, "nucleation": self.nucleation, "plateaus": self.plateaus,
                "noise_baseline": self.noise_baseline, "short_latched": self.short_latched,
                "drift_latched": self.drift_latched, "strip_end": self.strip_end,
                "last_sample": None if self.last_sample is None else list(self.last_sample)}  # fmt: skip

    def restore(self, state: dict[str, Any]) -> None:
        self.resistances = [float(x) for x in state["resistances"]]
        self.nucleation = [float(x) for x in state["nucleation"]]
        self.plateaus = {k: [float(x) for x in v] for k, v in state["plateaus"].items()}
        self.noise_baseline = [float(x) for x in state["noise_baseline"]]
        self.short_latched = bool(state["short_latched"])
        self.drift_latched = bool(state["drift_latched"])
        self.strip_end = [float(x) for x in state["strip_end"]]
        last = state["last_sample"]
        self.last_sample = None if last is None else (float(last[0]), float(last[1]), float(last[2]))
