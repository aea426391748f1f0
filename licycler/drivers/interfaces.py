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
    "LeasedChannel",
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


@runtime_checkable
class LeasedChannel(Protocol):
    """A channel whose instrument holds a dead-man lease (see docs/station.md, "The lease").

    While the output is on, the instrument itself is armed to go to its safe state (output off,
    high impedance) unless the controller renews the lease in time, so a controller that dies
    (SIGKILL, power loss, a hung interpreter) cannot leave current flowing into a cell. The
    mechanism is the instrument's own (a trigger model, a finite trigger count with automatic
    output-off, a script bounded in time), written in the driver's one place for it.

    While a lease runs the instrument takes readings by itself, one every ``read_period_s``, into
    its own buffer: :meth:`SourceMeasureChannel.read_block` then returns the readings it took since
    the previous call (possibly none) instead of measuring.
    """

    lease_mechanism: str
    """One line naming the instrument's mechanism and its commands (events, docs, station check)."""

    lease_rests: bool
    """Whether :meth:`arm_lease` honours ``setpoint_s``: the instrument ends the setpoint by itself
    and rests the cell at 0 A (output on) for the rest of the lease. When False the engine bounds
    the lease itself to a few read periods past the step's end instead."""

    async def arm_lease(self, duration_s: float, read_period_s: float, setpoint_s: float | None = None) -> None:
        """Arm the lease, or re-arm a running one without a gap in the sourced current: from now
        on the instrument reads every ``read_period_s`` (s) into its buffer and, unless armed again
        within ``duration_s`` (s), turns its output off in high impedance by itself. Called with
        the output on and the source configured.

        ``setpoint_s`` (s from now), when given and :attr:`lease_rests`: the present setpoint holds
        up to and including the first reading taken at or after ``setpoint_s``; from there the
        instrument sources 0 A (a rest at open-circuit potential, output still on) until the lease
        ends. So an instrument whose controller died ends the step where the step would have
        ended, and the cell rests until the output goes off. ``setpoint_s`` 0 rests after the next
        reading. A re-arm puts the setpoint back (the controller says the step goes on)."""
        ...

    async def release_lease(self) -> None:
        """Stop the instrument-side program of the lease, leaving the output as it is (the caller
        changes it next). :meth:`SourceMeasureChannel.safe_state` releases it too."""
        ...

    def time_base(self) -> dict[str, float]:
        """How this driver's reading times (``SampleBlock.time_s``) relate to the instrument's own
        clock, as JSON-able numbers: a new driver given them (:meth:`restore_time_base`) reports
        the same reading at the same time, so a resumed run maps the instrument's readings onto
        its clock as the controller that died did."""
        ...

    def restore_time_base(self, state: dict[str, float]) -> None:
        """Report times on the base ``state`` (from :meth:`time_base` of an earlier driver)."""
        ...

    async def read_lease_buffer(self) -> SampleBlock:
        """Every reading the instrument kept in its buffer while leases ran, oldest first, on the
        (restored) time base, without changing the output: what a resume reads back after the
        controller was away. The caller keeps those newer than what it stored."""
        ...
