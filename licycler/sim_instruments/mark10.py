"""An emulated Mark-10 force gauge reading a simulated stack-pressure rig.

Commands end in CR or CR LF (either accepted), replies end in CR LF. The force is the rig's
pressure x area (compression positive), minus the zero offset, shown in the selected unit with the
gauge's resolution. Supported: ``?`` / ``?C`` displayed reading, ``?PT`` / ``?PC`` peak tension /
compression (of the readings taken), ``LB OZ KG G N MN KN`` select the unit, ``Z`` zero (replies
``R``), anything else ``*10`` (illegal command).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from licycler.drivers.mark10 import FORCE_UNITS_N
from licycler.sim_instruments.interfaces import Clock, PressureRigModel
from licycler.sim_instruments.serial_server import PtySerialServer, ReplyChannel
from licycler.sim_instruments.simple_rig import FirstOrderRig

if TYPE_CHECKING:
    from licycler.sim_instruments.registry import SimWorld

__all__ = ["Mark10Emulation", "serve"]

_UNIT_COMMANDS = {"LB": "LBF", "OZ": "OZF", "KG": "KGF", "G": "GF", "N": "N", "MN": "MN", "KN": "KN"}
_UNIT_LABELS = {"LBF": "lbF", "OZF": "ozF", "KGF": "kgF", "GF": "gF", "N": "N", "MN": "mN", "KN": "kN"}


class Mark10Emulation:
    """A Mark-10 gauge of ``capacity_n`` (N) whose display shows ``digits`` significant digits."""

    input_terminators = b"\r\n"
    keep_empty_lines = False

    def __init__(
        self,
        rig: PressureRigModel,
        clock: Clock,
        *,
        unit: str = "N",
        capacity_n: float = 500.0,
        digits: int = 5,
        show_units: bool = True,
    ) -> None:
        self.rig = rig
        self.clock = clock
        self.model = "Mark-10 M5-100"
        self.unit = _UNIT_COMMANDS.get(unit.upper(), unit.upper())
        if self.unit not in FORCE_UNITS_N:
            raise ValueError(f"unknown unit {unit!r}")
        self.capacity_n = capacity_n
        self.digits = digits
        self.show_units = show_units
        self.zero_n = 0.0
        self.peak_tension_n = 0.0
        self.peak_compression_n = 0.0

    def force_n(self) -> float:
        """The force the load cell sees now, N (compression positive, after zeroing)."""
        return self.rig.pressure_pa(self.clock.now()) * self.rig.area_m2 - self.zero_n

    def _format(self, force_n: float) -> str:
        value = force_n / FORCE_UNITS_N[self.unit]
        full_scale = self.capacity_n / FORCE_UNITS_N[self.unit]
        # as many decimals as the capacity leaves for `digits` digits (500 N -> 0.01 N steps)
        decimals = max(0, self.digits - len(str(int(full_scale))))
        text = f"{value:.{decimals}f}"
        return f"{text} {_UNIT_LABELS[self.unit]}" if self.show_units else text

    async def handle_line(self, line: str, reply: ReplyChannel) -> None:
        command = line.strip().upper()
        if command in ("?", "?C"):
            force = self.force_n()
            self.peak_compression_n = max(self.peak_compression_n, force)
            self.peak_tension_n = min(self.peak_tension_n, force)
            reply.send(f"{self._format(force)}\r\n".encode())
        elif command == "?PT":
            reply.send(f"{self._format(self.peak_tension_n)}\r\n".encode())
        elif command == "?PC":
            reply.send(f"{self._format(self.peak_compression_n)}\r\n".encode())
        elif command in _UNIT_COMMANDS:
            self.unit = _UNIT_COMMANDS[command]
            reply.send(b"R\r\n")
        elif command == "Z":
            self.zero_n += self.force_n()
            self.peak_tension_n = self.peak_compression_n = 0.0
            reply.send(b"R\r\n")
        else:
            reply.send(b"*10\r\n")

    async def shutdown(self) -> None:
        return None


async def serve(world: SimWorld, host: str, port: int) -> PtySerialServer:
    """``licycler sim-serve mark10``: a Mark-10 gauge under the world's rig (a first-order rig at
    1 MPa on 1 cm^2 when the world has none), on a new pseudo-terminal."""
    rig = world.rig if world.rig is not None else FirstOrderRig()
    server = PtySerialServer(Mark10Emulation(rig, world.clock))
    await server.start()
    return server
