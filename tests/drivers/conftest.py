"""Emulated SCPI instruments served in-process on port 0, and drivers with short timeouts.

The servers run in the test's event loop on a virtual clock (a measurement advances it by its
own duration); pyvisa-py runs in worker threads, so the loop keeps serving while a driver waits.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from licycler.drivers.keithley2450 import Keithley2450
from licycler.drivers.keysight_b2900 import KeysightB2900
from licycler.drivers.transport import VisaTransport
from licycler.sim_instruments.clock import VirtualClock
from licycler.sim_instruments.dummy_cell import DummyCell
from licycler.sim_instruments.keithley2450 import Keithley2450 as Keithley2450Emulation
from licycler.sim_instruments.keysight_b2900 import KeysightB2900 as B2900Emulation
from licycler.sim_instruments.scpi.server import ScpiTcpServer

EMF_V = 3.0
RESISTANCE_OHM = 100.0
TIMEOUT_S = 0.25
"""Transport timeout in these tests: short, so that every fault ends quickly."""


@dataclass
class Served:
    """A served emulation: its server (faults, resource), the emulation, cell and clock."""

    server: ScpiTcpServer
    instrument: Keithley2450Emulation | B2900Emulation
    cell: DummyCell
    clock: VirtualClock

    @property
    def resource(self) -> str:
        return self.server.resource


def transport_for(served: Served, *, retries: int = 2, timeout_s: float = TIMEOUT_S) -> VisaTransport:
    return VisaTransport(
        served.resource, name="test instrument", timeout_s=timeout_s, retries=retries,
        reconnect_backoff_s=0.01,
    )


@pytest.fixture
async def served_2450() -> AsyncIterator[Served]:
    cell = DummyCell(EMF_V, RESISTANCE_OHM)
    clock = VirtualClock()
    emulation = Keithley2450Emulation(cell, clock, noise=False)
    async with ScpiTcpServer(emulation) as server:
        yield Served(server, emulation, cell, clock)


@pytest.fixture
async def served_b2902a() -> AsyncIterator[Served]:
    cell = DummyCell(EMF_V, RESISTANCE_OHM)
    clock = VirtualClock()
    emulation = B2900Emulation([cell], clock, model="B2902A", noise=False)
    async with ScpiTcpServer(emulation) as server:
        yield Served(server, emulation, cell, clock)


@pytest.fixture
async def served_b2901a() -> AsyncIterator[Served]:
    cell = DummyCell(EMF_V, RESISTANCE_OHM)
    clock = VirtualClock()
    emulation = B2900Emulation([cell], clock, model="B2901A", noise=False)
    async with ScpiTcpServer(emulation) as server:
        yield Served(server, emulation, cell, clock)


@pytest.fixture
async def k2450(served_2450: Served) -> AsyncIterator[Keithley2450]:
    driver = Keithley2450(transport_for(served_2450), name="2450 under test")
    await driver.connect()
    yield driver
    await driver.close()


@pytest.fixture
async def b2900(served_b2902a: Served) -> AsyncIterator[KeysightB2900]:
    driver = KeysightB2900(transport_for(served_b2902a), channel=1, name="B2902A ch1 under test")
    await driver.connect()
    yield driver
    await driver.close()
