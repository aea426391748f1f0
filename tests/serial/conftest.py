"""Helpers for the serial instrument tests: a tiny pressure rig, served emulations, a raw client."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import serial

from licycler.sim_instruments.clock import RealTimeClock, VirtualClock
from licycler.sim_instruments.dummy_cell import DummyCell
from licycler.sim_instruments.emstat4 import EmStat4Emulation
from licycler.sim_instruments.serial_server import PtySerialServer


class StepRig:
    """A stack-pressure rig whose actuator reaches its setpoint at once (exact, for tests)."""

    def __init__(self, pressure_pa: float = 1.0e6, area_m2: float = 1.0e-4) -> None:
        self._pressure_pa = pressure_pa
        self._area_m2 = area_m2
        self.setpoints: list[tuple[float, float]] = []

    def pressure_pa(self, t_s: float) -> float:
        return self._pressure_pa

    def set_pressure_setpoint(self, pressure_pa: float, t_s: float) -> None:
        self.setpoints.append((pressure_pa, t_s))
        self._pressure_pa = pressure_pa

    @property
    def area_m2(self) -> float:
        return self._area_m2


class RawClient:
    """A plain pyserial client (nothing of licycler) with blocking calls run in threads."""

    def __init__(self, device_path: str, *, timeout_s: float = 2.0) -> None:
        self.port = serial.Serial(device_path, 115200, timeout=timeout_s)

    async def write(self, data: bytes) -> None:
        await asyncio.to_thread(self.port.write, data)

    async def read_until(self, terminator: bytes) -> bytes:
        return await asyncio.to_thread(self.port.read_until, terminator)

    async def lines_until_empty(self, *, limit: int = 10000) -> list[str]:
        """LF lines up to (not including) an empty line."""
        out: list[str] = []
        for _ in range(limit):
            raw = await self.read_until(b"\n")
            assert raw.endswith(b"\n"), f"timed out after {out[-3:]} (got {raw!r})"
            if raw == b"\n":
                return out
            out.append(raw.decode("ascii").rstrip("\n"))
        raise AssertionError("no empty line")

    def close(self) -> None:
        self.port.close()


@pytest.fixture
def virtual_clock() -> VirtualClock:
    return VirtualClock(auto_advance=False)


@pytest.fixture
def dummy_cell() -> DummyCell:
    return DummyCell(emf_v=3.0, resistance_ohm=100.0)


@pytest.fixture
async def emstat_virtual(dummy_cell: DummyCell, virtual_clock: VirtualClock) -> AsyncIterator[PtySerialServer]:
    """An EmStat4 on a virtual clock that only the test moves."""
    async with PtySerialServer(EmStat4Emulation(dummy_cell, virtual_clock)) as server:
        yield server


@pytest.fixture
async def emstat_fast(dummy_cell: DummyCell) -> AsyncIterator[PtySerialServer]:
    """An EmStat4 on a clock running 50x real time (a 1 s interval is 20 ms)."""
    async with PtySerialServer(EmStat4Emulation(dummy_cell, RealTimeClock(speed=50.0))) as server:
        yield server
