"""A minimal stack-pressure rig: the pressure relaxes to its setpoint with one time constant.

For serving a force gauge or a pressure controller when no digital twin is loaded (and for
tests). The pressure follows dp/dt = (p_set - p) / tau exactly (exponential between setpoint
changes); ``tau_s = 0`` makes the actuator reach its setpoint at once.
"""

from __future__ import annotations

import math

__all__ = ["FirstOrderRig"]


class FirstOrderRig:
    """Implements :class:`~licycler.sim_instruments.interfaces.PressureRigModel`."""

    def __init__(self, pressure_pa: float = 1.0e6, *, area_m2: float = 1.0e-4, tau_s: float = 5.0) -> None:
        if not area_m2 > 0 or tau_s < 0:
            raise ValueError("need area_m2 > 0 and tau_s >= 0")
        self._area_m2 = float(area_m2)
        self.tau_s = float(tau_s)
        self.setpoint_pa = float(pressure_pa)
        self._p0_pa = float(pressure_pa)  # pressure at _t0_s
        self._t0_s = -math.inf

    @property
    def area_m2(self) -> float:
        return self._area_m2

    def pressure_pa(self, t_s: float) -> float:
        """Pressure at ``t_s`` (Pa): p_set + (p0 - p_set) exp(-(t - t0) / tau)."""
        if self.tau_s == 0 or math.isinf(self._t0_s):  # at its setpoint (never changed, or instant)
            return self.setpoint_pa
        dt = max(t_s - self._t0_s, 0.0)
        return self.setpoint_pa + (self._p0_pa - self.setpoint_pa) * math.exp(-dt / self.tau_s)

    def set_pressure_setpoint(self, pressure_pa: float, t_s: float) -> None:
        """From ``t_s`` on, relax toward ``pressure_pa`` (Pa)."""
        self._p0_pa = self.pressure_pa(t_s)
        self._t0_s = float(t_s)
        self.setpoint_pa = float(pressure_pa)
