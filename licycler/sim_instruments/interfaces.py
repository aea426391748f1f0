"""What an emulated instrument needs from the simulated world: cell terminals, a rig, a clock.

The digital twin (``licycler.sim_instruments.twin``) implements these; so does any simple
simulated load (a dummy cell made of an EMF and a resistor). Emulations of real command sets
(``keithley2450``, ``b2900``, ``emstat4``, ``mark10``, ``alicat``) are written against these
Protocols only, so the same emulation serves the twin on a virtual clock in-process and over TCP
or a pseudo-terminal on a real-time clock. SI units throughout; times are seconds on the clock.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from licycler.clock import Clock

__all__ = ["CellTerminals", "Clock", "PressureRigModel"]

FloatArray = npt.NDArray[np.float64]


@runtime_checkable
class CellTerminals(Protocol):
    """The two terminals of a simulated cell as a source-measure unit sees them.

    Sign convention: a positive current strips lithium from the working electrode (Li||Cu: the
    Cu side), i.e. the current the instrument sources out of its HI terminal into the cell's
    working electrode; voltage is working minus counter electrode, V.
    Every ``*_at`` call takes effect at ``t_s`` and must not be earlier than the last call.
    """

    def source_current(self, current_a: float, t_s: float) -> None:
        """From ``t_s`` on, force ``current_a`` (A) through the cell (galvanostatic)."""
        ...

    def source_voltage(self, voltage_v: float, t_s: float) -> None:
        """From ``t_s`` on, force the terminal voltage to ``voltage_v`` (V) (potentiostatic;
        also what a current source does at its compliance limit)."""
        ...

    def open_circuit(self, t_s: float) -> None:
        """From ``t_s`` on, no current flows (output off in high-impedance mode)."""
        ...

    def sample(self, times_s: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Advance to ``times_s[-1]`` and return (voltage_v, current_a) at each of ``times_s``.

        ``times_s`` is non-decreasing and not earlier than the last call; the arrays are the
        true values (instrument noise and resolution are added by the instrument).
        """
        ...


@runtime_checkable
class PressureRigModel(Protocol):
    """A stack-pressure rig as a force gauge or a pressure controller sees it."""

    def pressure_pa(self, t_s: float) -> float:
        """Applied stack pressure at ``t_s``, Pa."""
        ...

    def set_pressure_setpoint(self, pressure_pa: float, t_s: float) -> None:
        """Ask the rig's actuator for ``pressure_pa`` (Pa) from ``t_s`` on."""
        ...

    @property
    def area_m2(self) -> float:
        """Area the force acts on (the cell's electrode area), m^2."""
        ...
