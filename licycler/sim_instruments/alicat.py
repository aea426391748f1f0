"""An emulated Alicat pressure controller (PC series) driving a simulated stack-pressure rig.

Commands end in CR; every reply is one line ending in CR only. Commands for another unit id get
no reply (multi-drop bus). Supported, for unit id ``A``: ``A`` poll -> ``A +014.70 +014.70``
(pressure and setpoint in display units, then status tokens), ``AS<value>`` new setpoint (frame),
``AHC`` hold the valves (``HLD``), ``AC`` cancel the hold, ``A$$L`` / ``A$$U`` lock / unlock the
front panel (``LCK``), ``AVE`` firmware; anything else, or a setpoint outside 0..full scale, ``?``.
The rig is asked for ``setpoint x unit x pressure_gain`` Pa; the pressure shown is the rig's
pressure / ``pressure_gain`` in display units (``POV`` above full scale).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from licycler.drivers.alicat import pressure_unit_pa
from licycler.sim_instruments.interfaces import Clock, PressureRigModel
from licycler.sim_instruments.serial_server import PtySerialServer, ReplyChannel
from licycler.sim_instruments.simple_rig import FirstOrderRig

if TYPE_CHECKING:
    from licycler.sim_instruments.registry import SimWorld

__all__ = ["AlicatEmulation", "serve"]


class AlicatEmulation:
    """An Alicat PC controller with unit id ``unit_id`` showing ``display_unit``."""

    input_terminators = b"\r\n"
    keep_empty_lines = False

    def __init__(
        self,
        rig: PressureRigModel,
        clock: Clock,
        *,
        unit_id: str = "A",
        display_unit: str = "psi",
        full_scale: float = 100.0,
        decimals: int = 2,
        pressure_gain: float = 1.0,
        firmware: str = "10v07.0-R26",
    ) -> None:
        self.rig = rig
        self.clock = clock
        self.model = "Alicat PC"
        self.unit_id = unit_id
        self.display_unit = display_unit
        self.unit_pa = pressure_unit_pa(display_unit)
        self.full_scale = full_scale
        self.decimals = decimals
        self.pressure_gain = pressure_gain
        self.firmware = firmware
        self.setpoint = 0.0
        self.hold = False
        self.locked = False

    def pressure(self) -> float:
        """The controlled pressure now, display units."""
        return self.rig.pressure_pa(self.clock.now()) / self.pressure_gain / self.unit_pa

    def frame(self) -> str:
        p = self.pressure()
        width = 5 + self.decimals
        text = f"{self.unit_id} {p:+0{width}.{self.decimals}f} {self.setpoint:+0{width}.{self.decimals}f}"
        flags = []
        if self.hold:
            flags.append("HLD")
        if self.locked:
            flags.append("LCK")
        if p > self.full_scale:
            flags.append("POV")
        return " ".join([text, *flags])

    async def handle_line(self, line: str, reply: ReplyChannel) -> None:
        command = line.strip()
        if not command.startswith(self.unit_id):
            return  # addressed to another unit on the bus
        rest = command[len(self.unit_id) :]
        if rest == "":
            answer = self.frame()
        elif rest.startswith("S"):
            answer = self._set(rest[1:])
        elif rest == "HC":
            self.hold = True
            answer = self.frame()
        elif rest == "C":
            self.hold = False
            answer = self.frame()
        elif rest == "$$L":
            self.locked = True
            answer = self.frame()
        elif rest == "$$U":
            self.locked = False
            answer = self.frame()
        elif rest == "VE":
            answer = f"{self.unit_id} {self.firmware}"
        else:
            answer = "?"
        reply.send(f"{answer}\r".encode())

    def _set(self, text: str) -> str:
        try:
            value = float(text)
        except ValueError:
            return "?"
        if not 0 <= value <= self.full_scale:
            return "?"
        self.setpoint = round(value, self.decimals)
        if not self.hold:
            self.rig.set_pressure_setpoint(self.setpoint * self.unit_pa * self.pressure_gain, self.clock.now())
        return self.frame()

    async def shutdown(self) -> None:
        return None


async def serve(world: SimWorld, host: str, port: int) -> PtySerialServer:
    """``licycler sim-serve alicat-pc``: an Alicat PC controller (psi, 0-300 psi) driving the
    world's rig (a first-order rig at 1 MPa on 1 cm^2 when the world has none), on a new pty."""
    rig = world.rig if world.rig is not None else FirstOrderRig()
    server = PtySerialServer(AlicatEmulation(rig, world.clock, display_unit="psi", full_scale=300.0))
    await server.start()
    return server
