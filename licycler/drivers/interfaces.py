"""Capabilities of instruments as small runtime-checkable Protocols (as bluesky's ``protocols.py``).

Every real driver and every consumer (safety supervisor, engine) speaks these and nothing else.
SI units: seconds, volts, amperes, pascals.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

__all__ = [
    "InstrumentError",
    "OutputOffMode",
    "PressureRig",
    "RigStatus",
    "SampleBlock",
    "SourceMeasureChannel",
]

FloatArray = npt.NDArray[np.float64]


class OutputOffMode(StrEnum):
    """What the output terminals do when the output is off.

    HIGH_IMPEDANCE opens the output relay (2450 ``HIMP``, B2900 ``HIZ``, potentiostat cell off): the
    only mode that leaves a charged cell alone. NORMAL and ZERO put about 0 V across the cell.
    """

    HIGH_IMPEDANCE = "high_impedance"
    NORMAL = "normal"
    ZERO = "zero"


@dataclass(frozen=True)
class SampleBlock:
    """A block of readings: instrument time (s), terminal voltage (V) and current (A), equal lengths.

    Overrange readings are +-inf (SCPI 9.9E+37), no-data readings NaN (SCPI 9.91E+37).
    """

    time_s: FloatArray
    voltage_v: FloatArray
    current_a: FloatArray

    def __post_init__(self) -> None:
        if not (self.time_s.shape == self.voltage_v.shape == self.current_a.shape):
            raise ValueError("time_s, voltage_v and current_a must have the same shape")

    def __len__(self) -> int:
        return int(self.time_s.shape[0])

    @classmethod
    def empty(cls) -> SampleBlock:
        z = np.empty(0, dtype=np.float64)
        return cls(z, z.copy(), z.copy())


@dataclass(frozen=True)
class InstrumentError:
    """One entry of an instrument's error queue (SCPI code and message, e.g. -113 Undefined header)."""

    code: int
    message: str


@dataclass(frozen=True)
class RigStatus:
    """A pressure rig's state: last pressure (Pa), setpoint if any (Pa), and flags it reported."""

    pressure_pa: float
    setpoint_pa: float | None
    flags: tuple[str, ...] = ()


@runtime_checkable
class SourceMeasureChannel(Protocol):
    """One source-measure channel used as a galvanostat (SMU channel or potentiostat)."""

    name: str

    async def identify(self) -> str:
        """The instrument's identity string (``*IDN?``); checked against the configured model."""
        ...

    async def configure_current_source(
        self,
        *,
        voltage_limit_v: float,
        current_range_a: float | None = None,
        voltage_range_v: float | None = None,
        nplc: float = 1.0,
        off_mode: OutputOffMode = OutputOffMode.HIGH_IMPEDANCE,
    ) -> None:
        """Source current, sense voltage, set the compliance (read back), ranges (None: auto),
        integration time (power-line cycles) and the output-off mode."""
        ...

    async def set_current(self, current_a: float) -> None:
        """Set the sourced current, A (applied at once when the output is on)."""
        ...

    async def output_on(self) -> None:
        """Turn the output on."""
        ...

    async def output_off(self) -> None:
        """Turn the output off (in the configured off mode)."""
        ...

    async def output_enabled(self) -> bool:
        """Whether the output is on, as the instrument reports it (queried, not remembered)."""
        ...

    async def voltage_limit_tripped(self) -> bool:
        """Whether the voltage compliance is in force (the instrument's own trip query)."""
        ...

    async def read_block(self) -> SampleBlock:
        """The readings taken since the previous call (at least one, measuring if needed)."""
        ...

    async def drain_errors(self) -> list[InstrumentError]:
        """Read the error queue until it reports no error; returns the errors found."""
        ...

    async def safe_state(self) -> None:
        """Current to zero and output off in high impedance; idempotent. Raises DriverError only
        when the instrument cannot be reached."""
        ...

    async def close(self) -> None:
        """Release the connection (does not change the output)."""
        ...


@runtime_checkable
class PressureRig(Protocol):
    """A stack-pressure rig: a force gauge (read only) or a pressure controller (with setpoint)."""

    name: str
    can_set_pressure: bool

    async def identify(self) -> str:
        """A description of the rig's instrument."""
        ...

    async def read_pressure_pa(self) -> float:
        """The applied stack pressure, Pa."""
        ...

    async def set_pressure_setpoint_pa(self, pressure_pa: float) -> None:
        """Ask for a stack pressure, Pa; raises NotSupported where the rig cannot set one."""
        ...

    async def status(self) -> RigStatus:
        """Pressure, setpoint and the rig's flags."""
        ...

    async def close(self) -> None:
        """Release the connection."""
        ...
