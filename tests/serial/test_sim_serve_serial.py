"""``licycler sim-serve`` for the serial instruments: first line is the resource; drivers work on it."""

from __future__ import annotations

import asyncio
import math
import sys
from collections.abc import AsyncIterator

import numpy as np
import pytest

from licycler.drivers.alicat import AlicatPressureController
from licycler.drivers.emstat4 import EmStat4Channel
from licycler.drivers.mark10 import Mark10ForceGauge
from licycler.sim_instruments.simple_rig import FirstOrderRig


async def _served(name: str, *extra: str) -> AsyncIterator[str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "licycler", "sim-serve", name, *extra,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 20.0)
        yield line.decode().strip()
    finally:
        proc.terminate()
        await proc.wait()


@pytest.fixture
async def emstat_resource() -> AsyncIterator[str]:
    async for resource in _served("emstat4", "--speed", "50"):
        yield resource


@pytest.fixture
async def mark10_resource() -> AsyncIterator[str]:
    async for resource in _served("mark10"):
        yield resource


@pytest.fixture
async def alicat_resource() -> AsyncIterator[str]:
    async for resource in _served("alicat-pc"):
        yield resource


async def test_emstat4_served(emstat_resource: str) -> None:
    assert emstat_resource.startswith("ASRL/dev/pts/")
    assert emstat_resource.endswith("::INSTR")
    async with EmStat4Channel(emstat_resource, timeout_s=1.0) as channel:
        await channel.configure_current_source(voltage_limit_v=2.0)
        await channel.set_current(1e-3)
        await channel.output_on()
        block = await channel.read_block()
        # sim-serve's dummy cell: EMF 0 V, 100 ohm
        np.testing.assert_allclose(block.voltage_v, 0.1, rtol=4e-6)
        await channel.safe_state()
        assert not await channel.output_enabled()


async def test_mark10_served(mark10_resource: str) -> None:
    async with Mark10ForceGauge(mark10_resource, area_m2=1.0e-4, timeout_s=1.0) as gauge:
        assert await gauge.read_pressure_pa() == pytest.approx(1.0e6)  # the 1 MPa rig


async def test_alicat_served(alicat_resource: str) -> None:
    async with AlicatPressureController(alicat_resource, display_unit="psi", full_scale=300.0) as controller:
        assert await controller.read_pressure_pa() == pytest.approx(1.0e6, abs=0.005 * 6894.757)
        await controller.set_pressure_setpoint_pa(2.0e6)
        assert (await controller.status()).setpoint_pa == pytest.approx(2.0e6, abs=0.005 * 6894.757)


def test_first_order_rig() -> None:
    rig = FirstOrderRig(1.0e6, area_m2=2.0e-4, tau_s=10.0)
    assert rig.pressure_pa(0.0) == 1.0e6
    rig.set_pressure_setpoint(2.0e6, 5.0)
    assert rig.pressure_pa(5.0) == pytest.approx(1.0e6)
    assert rig.pressure_pa(15.0) == pytest.approx(2.0e6 - 1.0e6 / math.e)  # one time constant
    rig.set_pressure_setpoint(1.0e6, 15.0)  # continues from where it is
    assert rig.pressure_pa(15.0) == pytest.approx(2.0e6 - 1.0e6 / math.e)
    assert FirstOrderRig(tau_s=0.0).area_m2 == 1.0e-4
    instant = FirstOrderRig(tau_s=0.0)
    instant.set_pressure_setpoint(3.0e6, 1.0)
    assert instant.pressure_pa(1.0) == 3.0e6
