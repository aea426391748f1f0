"""A dummy cell: an EMF in series with a resistor, the passive load labs use to check a channel.

It implements :class:`~licycler.sim_instruments.interfaces.CellTerminals` exactly (Ohm's law, no
dynamics), so emulated instruments can be tested against values known in closed form.
"""

from __future__ import annotations

import numpy as np

from licycler.sim_instruments.interfaces import FloatArray

__all__ = ["DummyCell"]


class DummyCell:
    """V = emf_v + R I under current control; I = (V - emf_v) / R under voltage control; I = 0 open."""

    def __init__(self, emf_v: float = 0.0, resistance_ohm: float = 100.0) -> None:
        if not resistance_ohm > 0:
            raise ValueError(f"resistance_ohm must be > 0, got {resistance_ohm}")
        self.emf_v = emf_v
        self.resistance_ohm = resistance_ohm
        self._mode = "open"
        self._level = 0.0
        self._last_t = -np.inf

    def _at(self, t_s: float) -> None:
        if t_s < self._last_t:
            raise ValueError(f"time went backwards: {t_s} < {self._last_t}")
        self._last_t = t_s

    def source_current(self, current_a: float, t_s: float) -> None:
        self._at(t_s)
        self._mode, self._level = "current", float(current_a)

    def source_voltage(self, voltage_v: float, t_s: float) -> None:
        self._at(t_s)
        self._mode, self._level = "voltage", float(voltage_v)

    def open_circuit(self, t_s: float) -> None:
        self._at(t_s)
        self._mode, self._level = "open", 0.0

    def sample(self, times_s: FloatArray) -> tuple[FloatArray, FloatArray]:
        times = np.asarray(times_s, dtype=np.float64)
        if times.size:
            self._at(float(times[-1]))
        if self._mode == "current":
            current = np.full(times.shape, self._level)
            voltage = self.emf_v + self.resistance_ohm * current
        elif self._mode == "voltage":
            voltage = np.full(times.shape, self._level)
            current = (voltage - self.emf_v) / self.resistance_ohm
        else:
            current = np.zeros(times.shape)
            voltage = np.full(times.shape, self.emf_v)
        return voltage, current
