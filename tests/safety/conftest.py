"""A channel for the fault matrix: an emulated Keithley 2450 served on TCP, reached through the real
driver over pyvisa-py, guarded by a supervisor; the cell and the instrument share a virtual clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from licycler.clock import VirtualClock
from licycler.drivers.keithley2450 import Keithley2450
from licycler.events import EventLog, FanOut
from licycler.safety import ChannelSupervisor, Limits, LimitStack
from licycler.sim_instruments.dummy_cell import DummyCell
from licycler.sim_instruments.keithley2450 import Keithley2450 as Keithley2450Emulation
from licycler.sim_instruments.scpi.server import ScpiTcpServer
from licycler.station import INSTRUMENT_LIMITS

AREA_M2 = 1e-4
WINDOW = Limits(voltage_min_v=-1.0, voltage_max_v=1.0, current_max_a=5e-3)


@dataclass
class Rig:
    """A served 2450 emulation and the supervised driver that talks to it."""

    server: ScpiTcpServer
    emulation: Keithley2450Emulation
    cell: DummyCell
    clock: VirtualClock
    driver: Keithley2450
    supervisor: ChannelSupervisor
    log: EventLog

    async def output_is_on(self) -> bool:
        """The output state asked of the emulated instrument itself (not the driver's memory), after
        a ``*OPC?`` round trip so that every command the driver sent before has been executed."""
        await self.driver.transport.query("*OPC?")
        return bool(int(await self.emulation.execute_line(":OUTP?") or "0"))


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    cell = DummyCell(0.0, 20.0)  # 20 ohm: 1 mA gives 20 mV
    clock = VirtualClock()
    emulation = Keithley2450Emulation(cell, clock, noise=True)
    log = EventLog()
    async with ScpiTcpServer(emulation) as server:
        driver = Keithley2450.for_resource(
            server.resource, name="2450 under test", timeout_s=0.3, reconnect_backoff_s=0.01
        )
        await driver.connect()
        limits = LimitStack()
        limits.push("instrument", INSTRUMENT_LIMITS["keithley2450"])
        limits.push("station", WINDOW)
        supervisor = ChannelSupervisor(
            "A1", driver, clock=clock, events=FanOut(log), limits=limits, area_m2=AREA_M2, read_period_s=1.0
        )
        yield Rig(server, emulation, cell, clock, driver, supervisor, log)
        await driver.close()


KILL_FIGURES: list[tuple[str, float, float, float, float]] = []
"""(instrument, kill moment s, plated charge's error against the schedule, CE - the uninterrupted
run's CE, output off after the last renewal s) of each SIGKILL of tests/safety/test_lease_kill.py."""


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not KILL_FIGURES:
        return
    terminalreporter.section("controller kills (SIGKILL in plating, then licycler resume)")
    for model, killed_at, plate_err, d_ce, off_s in KILL_FIGURES:
        terminalreporter.write_line(
            f"{model:16s} killed at {killed_at:6.2f} s  plated {plate_err:+.3%} of the schedule  "
            f"CE {d_ce:+.4f} vs uninterrupted  output off {off_s:.2f} s after the last renewal"
        )
