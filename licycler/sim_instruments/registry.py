"""Instruments that ``licycler sim-serve`` can serve: a name -> entry table anyone can extend.

Each :class:`SimEntry` has a ``start`` coroutine function taking the simulated world (clock, cell,
rig) and the host/port asked for, and returning a started server that has a ``resource``
(the VISA resource string, or the device path, a client opens; printed as the first line of
``sim-serve``'s output) and an async ``stop()``. SCPI instruments are served on TCP
(:class:`~licycler.sim_instruments.scpi.server.ScpiTcpServer`); serial ones on a pseudo-terminal.

Add an entry with :func:`register` (or by adding it to :data:`SIM_INSTRUMENTS` below).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from licycler.sim_instruments import alicat as _alicat
from licycler.sim_instruments import emstat4 as _emstat4
from licycler.sim_instruments import mark10 as _mark10
from licycler.sim_instruments.interfaces import CellTerminals, Clock, PressureRigModel
from licycler.sim_instruments.keithley2450 import Keithley2450
from licycler.sim_instruments.keysight_b2900 import KeysightB2900
from licycler.sim_instruments.scpi.server import ScpiTcpServer

__all__ = ["SIM_INSTRUMENTS", "Served", "SimEntry", "SimWorld", "register", "sim_entry"]


@dataclass
class SimWorld:
    """What a served instrument acts on: the clock, the cell's terminals, the pressure rig
    (None when the world has none: a rig emulation then builds its own), noise and its seed."""

    clock: Clock
    cell: CellTerminals
    rig: PressureRigModel | None = None
    noise: bool = True
    seed: int = 0
    description: str = ""


class Served(Protocol):
    """A started server: what to open, and how to stop it."""

    @property
    def resource(self) -> str: ...

    async def stop(self) -> None: ...


Starter = Callable[[SimWorld, str, int], Awaitable[Served]]


@dataclass(frozen=True)
class SimEntry:
    """One servable instrument: its name, a one-line description, ``tcp`` or ``serial``, and
    the coroutine function that starts it."""

    name: str
    description: str
    transport: str
    start: Starter


async def _start_keithley2450(world: SimWorld, host: str, port: int) -> Served:
    instrument = Keithley2450(world.cell, world.clock, noise=world.noise, seed=world.seed)
    server = ScpiTcpServer(instrument, host=host, port=port)
    await server.start()
    return server


def _b2900_starter(model: str) -> Starter:
    async def start(world: SimWorld, host: str, port: int) -> Served:
        instrument = KeysightB2900(
            [world.cell], world.clock, model=model, noise=world.noise, seed=world.seed
        )
        server = ScpiTcpServer(instrument, host=host, port=port)
        await server.start()
        return server

    return start


SIM_INSTRUMENTS: dict[str, SimEntry] = {}
"""Name -> entry, in the order ``sim-serve --list`` shows them."""


def register(entry: SimEntry) -> SimEntry:
    """Add (or replace) an entry of :data:`SIM_INSTRUMENTS`."""
    SIM_INSTRUMENTS[entry.name] = entry
    return entry


def sim_entry(name: str) -> SimEntry:
    """The entry called ``name``; KeyError naming the known ones otherwise."""
    try:
        return SIM_INSTRUMENTS[name]
    except KeyError:
        known = ", ".join(SIM_INSTRUMENTS)
        raise KeyError(f"unknown instrument {name!r}; known: {known}") from None


register(SimEntry(
    "keithley2450", "Keithley 2450 SourceMeter (SCPI over a raw TCP socket)", "tcp",
    _start_keithley2450,
))
register(SimEntry(
    "keysight-b2901a", "Keysight B2901A one-channel SMU (SCPI over a raw TCP socket)", "tcp",
    _b2900_starter("B2901A"),
))
register(SimEntry(
    "keysight-b2902a",
    "Keysight B2902A two-channel SMU (SCPI over a raw TCP socket; channel 2 on a 1 kOhm load)",
    "tcp",
    _b2900_starter("B2902A"),
))
register(SimEntry(
    "emstat4", "PalmSens EmStat4 HR potentiostat (MethodSCRIPT over a pseudo-terminal)", "serial",
    _emstat4.serve,
))
register(SimEntry(
    "mark10", "Mark-10 force gauge under the stack (serial over a pseudo-terminal)", "serial",
    _mark10.serve,
))
register(SimEntry(
    "alicat-pc", "Alicat PC pressure controller, psi (serial over a pseudo-terminal)", "serial",
    _alicat.serve,
))
