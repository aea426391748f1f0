"""Mark-10 force gauge (Series 5 / 7) as a read-only stack-pressure rig.

Serial, commands end in CR (or CR LF), every reply ends in CR LF. ``?`` returns the displayed
reading, e.g. ``12.34 N`` or ``3.258 lbF`` (value, space, unit when units are enabled on the gauge).
Units are ``LB OZ KG G N MN KN`` (pound-, ounce-, kilogram-, gram-force, newton, millinewton,
kilonewton); a reading is converted to newtons and divided by the rig's area to give pressure.
A gauge cannot set a pressure: :meth:`Mark10ForceGauge.set_pressure_setpoint_pa` raises
:class:`~licycler.drivers.errors.NotSupported`.
"""

from __future__ import annotations

import re

from licycler.drivers.device import TransportDevice
from licycler.drivers.errors import NotSupported
from licycler.drivers.interfaces import RigStatus
from licycler.drivers.transport import VisaTransport

__all__ = ["FORCE_UNITS_N", "STANDARD_GRAVITY_M_PER_S2", "Mark10ForceGauge", "parse_force_reading"]

STANDARD_GRAVITY_M_PER_S2 = 9.80665
_POUND_KG = 0.45359237

FORCE_UNITS_N: dict[str, float] = {
    "LBF": _POUND_KG * STANDARD_GRAVITY_M_PER_S2,
    "OZF": _POUND_KG * STANDARD_GRAVITY_M_PER_S2 / 16.0,
    "KGF": STANDARD_GRAVITY_M_PER_S2,
    "GF": STANDARD_GRAVITY_M_PER_S2 / 1000.0,
    "N": 1.0,
    "MN": 1e-3,
    "KN": 1e3,
}
"""Force unit (upper case, as in the gauge's unit commands, with an F for the -force units) -> N
per unit. ``MN`` is the millinewton (there is no meganewton gauge)."""

_UNIT_ALIASES = {"LB": "LBF", "OZ": "OZF", "KG": "KGF", "G": "GF"}
_READING_RE = re.compile(r"\s*([-+]?(?:\d+\.?\d*|\.\d+))\s*([A-Za-z]*)\s*\Z")


def parse_force_reading(reply: str, *, default_unit: str = "N") -> float:
    """A ``?`` reply (``12.34 N``, ``-3.258 lbF``, ``0.5`` without unit) -> force, N.

    Raises ValueError for anything else (garbage, an unknown unit, an error code such as ``*10``).
    """
    m = _READING_RE.match(reply)
    if m is None:
        raise ValueError(f"not a force reading: {reply[:40]!r}")
    unit = (m.group(2) or default_unit).upper()
    unit = _UNIT_ALIASES.get(unit, unit)
    factor = FORCE_UNITS_N.get(unit)
    if factor is None:
        raise ValueError(f"unknown force unit {m.group(2)!r} in {reply[:40]!r}")
    return float(m.group(1)) * factor


class Mark10ForceGauge(TransportDevice):
    """A :class:`~licycler.drivers.interfaces.PressureRig` made of a Mark-10 gauge under the stack.

    ``area_m2`` is the area the force acts on (the cell's electrode area), m^2; ``default_unit``
    the unit assumed when the gauge sends readings without one; ``compression_sign`` (+1 or -1)
    maps the gauge's sign convention onto compression = positive pressure.
    """

    can_set_pressure = False

    def __init__(
        self,
        resource: str,
        *,
        area_m2: float,
        name: str = "Mark-10 force gauge",
        default_unit: str = "N",
        compression_sign: float = 1.0,
        timeout_s: float = 1.0,
        baud_rate: int | None = 115200,
        retries: int = 2,
        transport: VisaTransport | None = None,
    ) -> None:
        if not area_m2 > 0:
            raise ValueError(f"area_m2 must be > 0, got {area_m2}")
        unit = _UNIT_ALIASES.get(default_unit.upper(), default_unit.upper())
        if unit not in FORCE_UNITS_N:
            raise ValueError(f"unknown force unit {default_unit!r} (use one of LB OZ KG G N MN KN)")
        if compression_sign not in (1.0, -1.0):
            raise ValueError("compression_sign must be +1 or -1")
        self.name = name
        self.area_m2 = float(area_m2)
        self.default_unit = unit
        self.compression_sign = float(compression_sign)
        self.transport = transport or VisaTransport(
            resource,
            name=name,
            read_termination="\r\n",
            write_termination="\r",
            timeout_s=timeout_s,
            baud_rate=baud_rate,
            retries=retries,
        )


    async def identify(self) -> str:
        """The gauge has no identity query: a reading in the expected format identifies it."""
        force_n = await self.read_force_n()
        return f"Mark-10 force gauge on {self.transport.resource} (reading {force_n:.4g} N)"

    async def read_force_n(self) -> float:
        """The displayed force, N (compression positive)."""
        default = self.default_unit
        force = await self.transport.query_as("?", lambda r: parse_force_reading(r, default_unit=default))
        return self.compression_sign * force

    async def read_pressure_pa(self) -> float:
        """Force / area, Pa."""
        return await self.read_force_n() / self.area_m2

    async def set_pressure_setpoint_pa(self, pressure_pa: float) -> None:
        raise NotSupported(self.name, None, "a force gauge reads the stack pressure but cannot set it")

    async def status(self) -> RigStatus:
        return RigStatus(pressure_pa=await self.read_pressure_pa(), setpoint_pa=None, flags=())
