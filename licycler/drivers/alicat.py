"""Alicat pressure controller (PC series) as a stack-pressure rig with a setpoint.

Serial 8N1 (19200 or 38400 baud), multi-drop with a unit id (``A``..``Z``). Commands end in CR;
every reply is one line ending in CR only (no LF: read until CR). The poll ``A`` returns a data
frame ``A +014.70 +014.70`` (pressure, setpoint, in the controller's display units) followed by
status tokens (``HLD`` valve hold, ``OVR`` totalizer overflow, ``POV`` pressure over range, ``MOV``
``VOV`` ``TOV`` mass/volume/temperature over range, ``LCK`` front panel locked, ``EXH``
exhaust, ...). ``AS12.50`` sets the setpoint (display units) and answers with a frame carrying the
new setpoint; a command the unit does not accept answers ``?``.

The controller's unit is not in the frame: configure ``display_unit`` (``psi``, ``kPa``, ``bar``,
``Pa``, ``atm``, ``mbar`` ...; converted with :func:`licycler.units.parse_unit`). ``pressure_gain``
turns the controlled gas pressure into stack pressure (the piston or bladder area over the cell's
area; 1 when the controlled pressure is the stack pressure).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from licycler.drivers.device import TransportDevice
from licycler.drivers.errors import DriverError, InstrumentReportedError
from licycler.drivers.interfaces import RigStatus
from licycler.drivers.transport import VisaTransport
from licycler.units import PRESSURE, UnitError, parse_unit

__all__ = ["STATUS_TOKENS", "AlicatFrame", "AlicatPressureController", "parse_frame", "pressure_unit_pa"]

STATUS_TOKENS: dict[str, str] = {
    "ADC": "analog-to-digital converter error",
    "EXH": "exhaust valve open",
    "HLD": "valve held",
    "LCK": "front panel locked",
    "MOV": "mass flow over range",
    "OVR": "totalizer overflow",
    "POV": "pressure over range",
    "TOV": "temperature over range",
    "VOV": "volumetric flow over range",
}
"""Status tokens an Alicat frame may end with; any other run of 3 capital letters is kept too."""

_NUMBER_RE = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)\Z")
_TOKEN_RE = re.compile(r"[A-Z]{3}\Z")


def pressure_unit_pa(unit: str) -> float:
    """Pascals per display unit (``psi`` -> 6894.757...); ValueError if ``unit`` is no pressure."""
    try:
        factor, dim = parse_unit(unit)
    except UnitError as exc:
        raise ValueError(f"unknown pressure unit {unit!r}: {exc}") from exc
    if dim.exponents != PRESSURE.exponents:
        raise ValueError(f"{unit!r} is not a pressure unit")
    return factor


@dataclass(frozen=True)
class AlicatFrame:
    """A parsed data frame: pressure and setpoint in display units, and the status tokens."""

    unit_id: str
    pressure: float
    setpoint: float
    flags: tuple[str, ...]


def parse_frame(reply: str, unit_id: str) -> AlicatFrame:
    """``A +014.70 +014.70 HLD`` -> :class:`AlicatFrame`; ValueError for anything else."""
    words = reply.split()
    if not words or words[0] != unit_id:
        raise ValueError(f"not a data frame of unit {unit_id}: {reply[:40]!r}")
    numbers: list[float] = []
    flags: list[str] = []
    for word in words[1:]:
        if not flags and _NUMBER_RE.match(word):
            numbers.append(float(word))
        elif _TOKEN_RE.match(word):
            flags.append(word)
        else:
            raise ValueError(f"unexpected {word!r} in data frame {reply[:40]!r}")
    if len(numbers) < 2:
        raise ValueError(f"data frame without pressure and setpoint: {reply[:40]!r}")
    return AlicatFrame(unit_id, numbers[0], numbers[1], tuple(flags))


class AlicatPressureController(TransportDevice):
    """A :class:`~licycler.drivers.interfaces.PressureRig` driven by an Alicat PC controller.

    ``display_unit``: the unit the controller shows and takes setpoints in; ``full_scale`` its
    range in that unit (setpoints outside 0..full_scale are refused before they are sent);
    ``decimals``: setpoint digits after the point the controller keeps.
    """

    can_set_pressure = True

    def __init__(
        self,
        resource: str,
        *,
        unit_id: str = "A",
        display_unit: str = "psi",
        full_scale: float = 100.0,
        decimals: int = 2,
        pressure_gain: float = 1.0,
        name: str = "Alicat pressure controller",
        timeout_s: float = 1.0,
        baud_rate: int | None = 19200,
        retries: int = 2,
        transport: VisaTransport | None = None,
    ) -> None:
        if len(unit_id) != 1 or not unit_id.isalpha() or not unit_id.isupper():
            raise ValueError(f"unit_id must be one letter A-Z, got {unit_id!r}")
        if not full_scale > 0 or not pressure_gain > 0:
            raise ValueError("full_scale and pressure_gain must be > 0")
        self.name = name
        self.unit_id = unit_id
        self.display_unit = display_unit
        self.unit_pa = pressure_unit_pa(display_unit)
        self.full_scale = float(full_scale)
        self.decimals = int(decimals)
        self.pressure_gain = float(pressure_gain)
        self.transport = transport or VisaTransport(
            resource,
            name=name,
            read_termination="\r",
            write_termination="\r",
            timeout_s=timeout_s,
            baud_rate=baud_rate,
            retries=retries,
        )


    def _to_pa(self, display_value: float) -> float:
        return display_value * self.unit_pa * self.pressure_gain

    async def _frame(self, command: str, *, idempotent: bool = True) -> AlicatFrame:
        unit_id = self.unit_id

        def parse(reply: str) -> AlicatFrame | None:
            if reply.strip() == "?":
                return None  # the unit refused the command: not a garbled reply, do not retry
            return parse_frame(reply, unit_id)

        frame = await self.transport.query_as(command, parse, idempotent=idempotent)
        if frame is None:
            raise InstrumentReportedError(self.name, command, 0, "command not accepted ('?')")
        return frame

    async def identify(self) -> str:
        """Firmware (``VE``) and unit id; a unit that does not answer its id raises DriverError."""
        firmware = await self.transport.query(f"{self.unit_id}VE")
        words = firmware.split()
        if not words or words[0] != self.unit_id:
            raise DriverError(self.name, f"{self.unit_id}VE", f"unexpected reply {firmware[:40]!r}")
        await self._frame(self.unit_id)
        return f"Alicat pressure controller unit {self.unit_id}, firmware {' '.join(words[1:])}"

    async def read_pressure_pa(self) -> float:
        """The stack pressure, Pa (controlled pressure x gain)."""
        return self._to_pa((await self._frame(self.unit_id)).pressure)

    async def set_pressure_setpoint_pa(self, pressure_pa: float) -> None:
        """Ask for a stack pressure, Pa; the setpoint the controller answers with is checked."""
        value = pressure_pa / self.pressure_gain / self.unit_pa
        step = 10.0**-self.decimals
        if not -step / 2 <= value <= self.full_scale + step / 2:
            raise DriverError(
                self.name,
                None,
                f"setpoint {pressure_pa:g} Pa is {value:g} {self.display_unit}, outside 0..{self.full_scale:g}",
            )
        command = f"{self.unit_id}S{value:.{self.decimals}f}"
        frame = await self._frame(command)
        if abs(frame.setpoint - round(value, self.decimals)) > step * 0.51:
            raise DriverError(
                self.name, command, f"controller answered setpoint {frame.setpoint:g} {self.display_unit}"
            )

    async def status(self) -> RigStatus:
        frame = await self._frame(self.unit_id)
        return RigStatus(
            pressure_pa=self._to_pa(frame.pressure), setpoint_pa=self._to_pa(frame.setpoint), flags=frame.flags
        )
