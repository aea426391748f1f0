"""What the lease tests share: a cell that records what drives it, and an emulation served on TCP on a
virtual clock that only the test moves, with a second raw-socket client to ask the instrument."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Protocol

from licycler.sim_instruments.clock import VirtualClock
from licycler.sim_instruments.dummy_cell import DummyCell
from licycler.sim_instruments.keithley2450 import Keithley2450
from licycler.sim_instruments.scpi import ScpiInstrument
from licycler.sim_instruments.scpi.server import ScpiTcpServer


class RecordingCell(DummyCell):
    """A dummy cell (3 V, 100 Ohm) that keeps every change of what drives it: (time s, mode, level)."""

    def __init__(self) -> None:
        super().__init__(3.0, 100.0)
        self.drive: list[tuple[float, str, float]] = []

    def source_current(self, current_a: float, t_s: float) -> None:
        super().source_current(current_a, t_s)
        self.drive.append((t_s, "current", current_a))

    def source_voltage(self, voltage_v: float, t_s: float) -> None:
        super().source_voltage(voltage_v, t_s)
        self.drive.append((t_s, "voltage", voltage_v))

    def open_circuit(self, t_s: float) -> None:
        super().open_circuit(t_s)
        self.drive.append((t_s, "open", 0.0))


@dataclass
class LeaseBench:
    """A served emulation, its recording cell and its clock."""

    server: ScpiTcpServer
    emulation: ScpiInstrument
    cell: RecordingCell
    clock: VirtualClock

    async def raw(self, line: str) -> str:
        """One query from a separate raw-socket client (not the driver's connection)."""
        reader, writer = await asyncio.open_connection(self.server.host, self.server.port)
        try:
            writer.write(line.encode() + b"\n")
            await writer.drain()
            return (await reader.readline()).decode().strip()
        finally:
            writer.close()
            await writer.wait_closed()

    async def move_to(self, t_s: float) -> None:
        """Move the clock (nothing is sent to the instrument) and let its own timer act."""
        self.clock.advance_to(t_s)
        for _ in range(5):
            await asyncio.sleep(0)


@asynccontextmanager
async def served_2450() -> AsyncIterator[tuple[ScpiTcpServer, Keithley2450, RecordingCell, VirtualClock]]:
    """An exact emulated 2450 on a recording cell, on TCP, on a virtual clock the test moves."""
    cell = RecordingCell()
    clock = VirtualClock(auto_advance=False)
    emulation = Keithley2450(cell, clock, noise=False)
    async with ScpiTcpServer(emulation) as server:
        yield server, emulation, cell, clock


class _Source(Protocol):
    async def connect(self) -> str: ...
    async def configure_current_source(self, *, voltage_limit_v: float, nplc: float = 1.0) -> None: ...
    async def set_current(self, current_a: float) -> None: ...
    async def output_on(self) -> None: ...
    async def output_enabled(self) -> bool: ...


async def sourcing(driver: _Source, current_a: float, nplc: float) -> None:
    """Connect, set up the current source (5 V limit) and turn the output on."""
    await driver.connect()
    await driver.configure_current_source(voltage_limit_v=5.0, nplc=nplc)
    await driver.set_current(current_a)
    await driver.output_on()
    assert await driver.output_enabled()  # a query on the same connection: every write has arrived
