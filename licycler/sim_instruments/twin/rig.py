"""The stack-pressure rig of the twin: setpoint, stack compliance, lithium creep, leaks and losses.

The applied pressure p (Pa) follows

    dp/dt = c (p_set - p) / tau_c + k_s (dh/dt - h_Li A p^n) - leak p / tau_leak,

where c is 1 while the actuator controls the pressure (``constant-pressure``) and 0 for a bolted
``fixed-gap`` fixture, k_s the stack stiffness (Pa/m), dh/dt the stack thickness rate from plating
and stripping (pushed by the cell: stripping relieves the pressure), and h_Li A p^n the power-law
creep of the lithium (thickness h_Li, prefactor A, exponent n: physics.creep_strain_rate). It is
integrated with an exponential step for the linear part and the creep term frozen over steps that
change p by at most 2 %, so a week of slowly relaxing pressure costs a few hundred steps. Timed
faults (``pressure_loss``, ``leak``, ``setpoint``) apply at their exact times; a short history lets
readers ask for times slightly in the past.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt

from licycler.physics.mechanics import creep_strain_rate
from licycler.sim_instruments.twin.config import FaultConfig, MeasurementConfig, RigConfig

__all__ = ["RIG_FAULTS", "PressureRig"]

FloatArray = npt.NDArray[np.float64]

RIG_FAULTS = ("pressure_loss", "leak", "setpoint")
_MAX_REL_STEP = 0.02
_P_FLOOR_PA = 1e3
_HISTORY = 20_000


class PressureRig:
    """A pressure rig implementing :class:`~licycler.sim_instruments.interfaces.PressureRigModel`.

    ``on_event(t_s, kind, detail)`` is told about faults as they apply.
    """

    def __init__(
        self,
        config: RigConfig,
        area_m2: float,
        faults: Sequence[FaultConfig] = (),
        *,
        start_s: float = 0.0,
        measurement: MeasurementConfig | None = None,
        rng: np.random.Generator | None = None,
        on_event: Callable[[float, str, str], None] | None = None,
    ) -> None:
        self.config = config
        self._area = float(area_m2)
        self.t_s = float(start_s)
        self.p_pa = float(config.setpoint_pa)
        self.setpoint_pa = float(config.setpoint_pa)
        self.controlled = config.control == "constant-pressure"
        self.leak_time_s = math.inf
        self.thickness_rate_m_s = 0.0
        """Stack thickness rate from plating/stripping, m/s (set by the cell)."""
        self.lithium_thickness_m = 0.0
        """Thickness of lithium that creeps under the stack pressure, m (set by the cell)."""
        self._faults = sorted((f for f in faults if f.kind in RIG_FAULTS), key=lambda f: f.at_s)
        self._hist_t: list[float] = [self.t_s]
        self._hist_p: list[float] = [self.p_pa]
        self._measurement = measurement or MeasurementConfig()
        self._rng = rng or np.random.default_rng(0)
        self._on_event = on_event

    # ------------------------------------------------------------------ Protocol
    @property
    def area_m2(self) -> float:
        """Area the force acts on (the electrode area), m^2."""
        return self._area

    def pressure_pa(self, t_s: float) -> float:
        """Applied stack pressure at ``t_s`` (Pa); earlier times come from the recent history."""
        return float(self.pressure_at(np.array([float(t_s)]))[0])

    def set_pressure_setpoint(self, pressure_pa: float, t_s: float) -> None:
        """Ask for ``pressure_pa`` (Pa) from ``t_s``: the controller follows it; a fixed-gap
        fixture is re-tightened to it at once."""
        if not pressure_pa >= 0:
            raise ValueError(f"pressure setpoint must be >= 0, got {pressure_pa}")
        self.advance_to(t_s)
        self._set_point(float(pressure_pa))

    # ------------------------------------------------------------------ helpers
    def measure_pressure_pa(self, t_s: float) -> float:
        """A reading with the scenario's pressure noise, Pa."""
        p = self.pressure_pa(t_s)
        sigma = self._measurement.pressure_noise_pa
        return p + float(self._rng.normal(0.0, sigma)) if sigma > 0 else p

    def force_n(self, t_s: float) -> float:
        """The force on the stack, pressure x area, N."""
        return self.pressure_pa(t_s) * self._area

    def pressure_at(self, times_s: npt.ArrayLike) -> FloatArray:
        """Pressure (Pa) at each of ``times_s`` (advancing the rig to the last of them)."""
        times = np.asarray(times_s, dtype=np.float64)
        if times.size == 0:
            return np.zeros(0)
        last = float(np.max(times))
        if last > self.t_s:
            self.advance_to(last)
        if times.size == 1 and float(times[0]) == self.t_s:
            return np.array([self.p_pa])
        return np.asarray(np.interp(times, np.asarray(self._hist_t), np.asarray(self._hist_p)), dtype=np.float64)

    def next_fault_s(self) -> float:
        """Time of the next timed fault of the rig, s (inf when none is left)."""
        return self._faults[0].at_s if self._faults else math.inf

    def pressure_rate_pa_s(self) -> float:
        """dp/dt at the present state, Pa/s."""
        a, b = self._coefficients(self.p_pa)
        return b - a * self.p_pa

    def _set_point(self, p: float) -> None:
        self.setpoint_pa = p
        if not self.controlled:
            self.p_pa = p
            self._record()

    def _record(self) -> None:
        self._hist_t.append(self.t_s)
        self._hist_p.append(self.p_pa)
        if len(self._hist_t) > 2 * _HISTORY:
            del self._hist_t[:_HISTORY]
            del self._hist_p[:_HISTORY]

    def _coefficients(self, p: float) -> tuple[float, float]:
        """dp/dt = b - a p with the creep frozen at ``p``: returns (a, b)."""
        cfg = self.config
        a = (1.0 / cfg.control_time_s if self.controlled else 0.0) + (
            1.0 / self.leak_time_s if math.isfinite(self.leak_time_s) else 0.0
        )
        b = self.setpoint_pa / cfg.control_time_s if self.controlled else 0.0
        b += cfg.stack_stiffness_pa_m * self.thickness_rate_m_s - self._creep_rate(p)
        return a, b

    def _apply_fault(self, fault: FaultConfig) -> None:
        if fault.kind == "pressure_loss":
            self.p_pa = max(0.0, fault.get("to", 0.0))
            self.setpoint_pa = self.p_pa
            self.controlled = False
            detail = f"pressure dropped to {self.p_pa:g} Pa"
        elif fault.kind == "leak":
            self.leak_time_s = fault.get("time_constant", math.inf)
            detail = f"leak with time constant {self.leak_time_s:g} s"
        else:
            self._set_point(fault.get("pressure", self.setpoint_pa))
            detail = f"setpoint {self.setpoint_pa:g} Pa"
        self._record()
        if self._on_event is not None:
            self._on_event(self.t_s, fault.kind, detail)

    def advance_to(self, t_s: float) -> None:
        """Integrate the pressure up to ``t_s`` (s), applying faults on the way."""
        t_s = float(t_s)
        while self._faults and self._faults[0].at_s <= t_s:
            fault = self._faults.pop(0)
            self._integrate(max(fault.at_s, self.t_s))
            self._apply_fault(fault)
        self._integrate(t_s)

    def _integrate(self, t_end: float) -> None:
        while self.t_s < t_end:
            p = self.p_pa
            a, b = self._coefficients(p)
            nonlinear = abs(b - a * p) if a > 0 else 0.0
            creep = self._creep_rate(p)
            nonlinear = max(nonlinear, creep)
            dt = t_end - self.t_s
            if nonlinear > 0:
                dt = min(dt, _MAX_REL_STEP * max(p, _P_FLOOR_PA) / nonlinear)
            if creep > 0:
                # midpoint: the creep term frozen at the pressure half a step on (second order)
                _, b = self._coefficients(max(0.0, self._step(p, a, b, 0.5 * dt)))
            p_new = self._step(p, a, b, dt)
            if a == 0 and p_new < 0:
                # the contact pressure reaches zero and stays there (it cannot pull)
                p_new = 0.0
            self.t_s = self.t_s + dt if self.t_s + dt < t_end else t_end
            self.p_pa = max(0.0, p_new)
            self._record()

    @staticmethod
    def _step(p: float, a: float, b: float, dt: float) -> float:
        """p after ``dt`` of dp/dt = b - a p (exact)."""
        if a > 0:
            target = b / a
            return target + (p - target) * math.exp(-a * dt)
        return p + b * dt

    def _creep_rate(self, p: float) -> float:
        """Pressure lost per second to lithium creep at ``p``, Pa/s."""
        cfg = self.config
        if cfg.creep_prefactor > 0 and self.lithium_thickness_m > 0 and p > 0:
            rate = float(creep_strain_rate(cfg.creep_prefactor, p, cfg.creep_exponent))
            return cfg.stack_stiffness_pa_m * self.lithium_thickness_m * rate
        return 0.0
