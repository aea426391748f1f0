"""Stack pressure and voids: pressure loss and its rate, the predicted time to a void while
stripping (the reference's t_f = (F/V_m)(p0 + sigma_c)/(k_n i_max), physics.void_time, with the
measured pressure and the recession so far), and the creep competition number Pi
(physics.creep_number) for the present current and pressure.

The reference pressure is the median of the run's first readings, or the setpoint of the last
``pressure`` step once it has ended. Recession follows the measured current: the stripping
electrode's hot spot recedes at void_alpha |j| V_m / F, plating refills at |j| V_m / F.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from licycler.monitors.base import Chunk, Finding, StepContext, finite_or_none, least_squares_slope
from licycler.physics.mechanics import creep_number, lithium_thickness, void_time
from licycler.protocols.schedule import Watch

__all__ = ["PressureMonitor"]

REFERENCE_READINGS = 3
MIN_RATE_READINGS = 5
MIN_REFERENCE_PA = 1e3
"""Below this reference stack pressure (Pa) there is no pressure loss to watch for."""
MOVING_FRACTION = 0.02
"""A change of the stack pressure (fraction of the reference) that asks for readings at the metrics period."""


class PressureMonitor:
    """Pressure loss (level and rate), time to void while stripping, creep number."""

    name = "pressure"

    def __init__(self, watch: Watch, area_m2: float) -> None:
        self.watch = watch
        self.model = watch.model
        self.area_m2 = area_m2
        rule = watch.rule("pressure_loss")
        self.fraction = rule["fraction"]
        self.rate = rule["rate"]
        self.window_s = rule["window"]
        self.margin = watch.rule("void_risk")["margin"]
        self.readings: list[tuple[float, float]] = []
        self.first: list[float] = []
        self.reference: float | None = None
        self.loss_latched = False
        self.recession = [0.0, 0.0]  # m, (working, counter)
        self.void_latched = False
        self.next_metric_s = 0.0
        self.slope: float | None = None
        self._void_key: tuple[float, float, float] | None = None
        self._void_value = math.inf

    # --- helpers -----------------------------------------------------------------------------
    def pressure(self, ctx: StepContext) -> float | None:
        """The latest stack pressure (Pa): a reading, else the model's, else None."""
        if self.readings:
            return self.readings[-1][1]
        return ctx.pressure_pa if ctx.pressure_pa is not None else self.model.stack_pressure_pa

    @property
    def moving(self) -> bool:
        """Whether the stack pressure calls for readings at the metrics period rather than at the
        engine's own pace: a loss is being reported, or the last reading moved by more than
        ``MOVING_FRACTION`` of the reference since the one before (or from the reference), or no
        reference is known yet. A rig without stack pressure to lose never does."""
        if self.reference is None:
            return True
        if self.reference < MIN_REFERENCE_PA:
            return False
        if self.loss_latched:
            return True
        band = MOVING_FRACTION * self.reference
        last = self.readings[-1][1] if self.readings else self.reference
        before = self.readings[-2][1] if len(self.readings) >= 2 else self.reference
        return abs(last - before) > band or abs(last - self.reference) > band

    def resume_pressure(self) -> float | None:
        """Default pressure above which a suspension for pressure loss ends (Pa)."""
        return None if self.reference is None else (1.0 - 0.5 * self.fraction) * self.reference

    def time_to_void_s(self, current_a: float, pressure_pa: float) -> float:
        """Seconds of stripping at ``current_a`` (A) until a void opens at the stripping hot spot."""
        if current_a == 0:
            return math.inf
        e_s = 0 if current_a > 0 else 1  # a positive current strips the working electrode
        key = (current_a, pressure_pa, self.recession[e_s])
        if key != self._void_key:  # asked again with the same numbers (the check, then the metric)
            m = self.model
            i_max = m.void_alpha * abs(current_a) / self.area_m2
            left = max(pressure_pa, 0.0) - m.contact_stiffness_pa_m * self.recession[e_s]
            if left + m.adhesion_strength_pa <= 0:
                value = 0.0
            else:
                value = float(void_time(left, m.adhesion_strength_pa, m.contact_stiffness_pa_m, i_max))
            self._void_key, self._void_value = key, value
        return self._void_value

    def _creep(self, current_a: float, pressure_pa: float) -> float:
        m = self.model
        j = abs(current_a) / self.area_m2
        p = max(pressure_pa, 0.0)  # a reading's noise around zero is no tension
        return float(creep_number(m.creep_prefactor, m.creep_exponent, m.stress_concentration, p,
                                  m.protrusion_length_m, j))  # fmt: skip

    # --- the monitor -------------------------------------------------------------------------
    def start_step(self, ctx: StepContext) -> list[Finding]:
        self.void_latched = False
        if ctx.step.kind == "pressure":
            self.readings = []
        return self._void_check(ctx, ctx.t0_s, "forecast")

    def _void_check(self, ctx: StepContext, t: float, sign: str) -> list[Finding]:
        p = self.pressure(ctx)
        if self.void_latched or not ctx.sourcing or p is None:
            return []
        t_void = self.time_to_void_s(ctx.setpoint_a, p)
        left = ctx.remaining_s(math.inf)
        if not t_void < self.margin * left:
            return []
        self.void_latched = True
        where = "working" if ctx.setpoint_a > 0 else "counter"
        return [Finding(self.name, "void_risk", sign, t,
                        f"a void is predicted at the {where} electrode in {t_void:.4g} s of stripping at "
                        f"{p / 1e6:.4g} MPa, before the step ends (in {left:.4g} s)",
                        {"time_to_void_s": t_void, "step_time_left_s": finite_or_none(left), "pressure_pa": p,
                         "recession_m": self.recession[0 if ctx.setpoint_a > 0 else 1],
                         "current_density_a_m2": ctx.setpoint_a / self.area_m2, "void_alpha": self.model.void_alpha},
                        lead_s=t_void)]  # fmt: skip

    def observe(self, ctx: StepContext, chunk: Chunk) -> list[Finding]:
        findings: list[Finding] = []
        if len(chunk):
            self._recede(chunk)
        t = chunk.end_s
        p = chunk.pressure_pa
        if p is not None and math.isfinite(p):
            findings += self._pressure(ctx, t, p)
        if ctx.sourcing:
            findings += self._void_check(ctx, t, "measured")
        if t >= self.next_metric_s:
            self._metrics(ctx, t)
            self.next_metric_s = t + self.watch.every_s
        return findings

    def _recede(self, chunk: Chunk) -> None:
        i, dt = chunk.current_a, chunk.dt_s
        net, gross = float(i @ dt), float(np.abs(i) @ dt)  # C: net and gross charge of the chunk
        if not (math.isfinite(net) and math.isfinite(gross)):  # a reading without a current carried none
            i = np.where(np.isfinite(i), i, 0.0)
            net, gross = float(i @ dt), float(np.abs(i) @ dt)
        strip_we = 0.5 * (gross + net) / self.area_m2  # C/m^2 stripped from the working electrode
        plate_we = 0.5 * (gross - net) / self.area_m2
        va = self.model.void_alpha
        h = self.recession
        # the working electrode strips what the counter plates, and the other way round
        stripped, plated = float(lithium_thickness(strip_we)), float(lithium_thickness(plate_we))
        h[0] = max(0.0, h[0] + va * stripped - plated)
        h[1] = max(0.0, h[1] + va * plated - stripped)

    def _pressure(self, ctx: StepContext, t: float, p: float) -> list[Finding]:
        self.readings.append((t, p))
        self.readings = [r for r in self.readings if r[0] >= t - self.window_s]
        if ctx.step.kind == "pressure":
            return []
        if self.reference is None:
            self.first.append(p)
            if len(self.first) >= REFERENCE_READINGS:
                self.reference = float(np.median(self.first))
            return []
        ref = self.reference
        self.slope = None
        if ref < MIN_REFERENCE_PA:  # no stack pressure to lose (a cell without a rig, a 0 Pa setpoint)
            return []
        if len(self.readings) >= MIN_RATE_READINGS and t - self.readings[0][0] >= 0.5 * self.window_s:
            self.slope = least_squares_slope([r[0] for r in self.readings], [r[1] for r in self.readings])
        if self.loss_latched:
            steady = self.slope is None or self.slope > -0.5 * self.rate * ref
            if p > (1.0 - 0.25 * self.fraction) * ref and steady:
                self.loss_latched = False  # recovered: a new loss will be reported again
            return []
        floor = (1.0 - self.fraction) * ref
        sign = ""
        if p < floor:
            sign = "level"
        elif self.slope is not None and self.slope < -self.rate * ref:
            sign = "rate"
        if not sign:
            return []
        self.loss_latched = True
        lead = (p - floor) / -self.slope if self.slope is not None and self.slope < 0 and p > floor else None
        rate_h = None if self.slope is None else self.slope * 3600.0 / ref
        return [Finding(self.name, "pressure_loss", sign, t,
                        f"stack pressure {p / 1e3:.4g} kPa against a reference of {ref / 1e3:.4g} kPa"
                        + ("" if rate_h is None else f", changing by {rate_h * 100:+.3g} % per hour"),
                        {"pressure_pa": p, "reference_pa": ref, "rate_pa_s": self.slope,
                         "loss": 1.0 - p / ref, "time_to_floor_s": lead}, lead_s=lead)]  # fmt: skip

    def _metrics(self, ctx: StepContext, t: float) -> None:
        p = self.pressure(ctx)
        if self.readings:
            ctx.metrics.add(t, "pressure_pa", self.readings[-1][1])
            if self.slope is not None:
                ctx.metrics.add(t, "pressure_rate_pa_s", self.slope)
        if ctx.sourcing and p is not None:
            ctx.metrics.add(t, "void_time_s", self.time_to_void_s(ctx.setpoint_a, p))
            ctx.metrics.add(t, "creep_number", self._creep(ctx.setpoint_a, p))

    def end_step(self, ctx: StepContext, ended_by: str) -> list[Finding]:
        if ctx.step.kind == "pressure" and ctx.step.pressure_pa is not None:
            self.reference = ctx.step.pressure_pa
            self.first = [ctx.step.pressure_pa] * REFERENCE_READINGS
            self.loss_latched = False
        return []

    def end_cycle(self, ctx: StepContext, row: Mapping[str, Any]) -> list[Finding]:
        return []

    # --- checkpoint ----------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {"readings": [list(r) for r in self.readings], "first": self.first, "reference": self.reference,
                "loss_latched": self.loss_latched, "recession": self.recession, "next_metric_s": self.next_metric_s,
                "slope": self.slope}  # fmt: skip

    def restore(self, state: dict[str, Any]) -> None:
        self.readings = [(float(a), float(b)) for a, b in state["readings"]]
        self.first = [float(x) for x in state["first"]]
        self.reference = None if state["reference"] is None else float(state["reference"])
        self.loss_latched = bool(state["loss_latched"])
        self.recession = [float(x) for x in state["recession"]]
        self.next_metric_s = float(state["next_metric_s"])
        self.slope = None if state["slope"] is None else float(state["slope"])
