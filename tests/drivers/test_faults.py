"""Every injected fault ends in a DriverError or a recovered reading: never a hang, never a
wrong value. Each test runs under a deadline (asyncio.timeout) far above the transport's."""

from __future__ import annotations

import asyncio

import pytest

from licycler.drivers import DriverError, Keithley2450, KeysightB2900, SampleBlock
from licycler.drivers.interfaces import SourceMeasureChannel
from tests.drivers.conftest import EMF_V, RESISTANCE_OHM, TIMEOUT_S, Served, transport_for

DEADLINE_S = 10.0
CURRENT_A = 2e-3
EXPECTED_V = EMF_V + RESISTANCE_OHM * CURRENT_A


async def ready(driver: SourceMeasureChannel) -> None:
    await driver.configure_current_source(voltage_limit_v=10.0, nplc=0.1)
    await driver.set_current(CURRENT_A)
    await driver.output_on()


def assert_right(block: SampleBlock) -> None:
    assert len(block) >= 1
    assert block.voltage_v == pytest.approx(EXPECTED_V, rel=1e-6)
    assert block.current_a == pytest.approx(CURRENT_A, rel=1e-6)


@pytest.fixture(params=["2450", "b2900"])
async def rig(
    request: pytest.FixtureRequest, served_2450: Served, served_b2902a: Served
) -> tuple[SourceMeasureChannel, Served]:
    if request.param == "2450":
        driver: Keithley2450 | KeysightB2900 = Keithley2450(transport_for(served_2450))
        served = served_2450
    else:
        driver = KeysightB2900(transport_for(served_b2902a), channel=1)
        served = served_b2902a
    await driver.connect()
    await ready(driver)
    return driver, served


async def test_slow_reply_is_recovered(rig: tuple[SourceMeasureChannel, Served]) -> None:
    driver, served = rig
    served.server.faults.slow_reply(2 * TIMEOUT_S, match="?")
    async with asyncio.timeout(DEADLINE_S):
        assert_right(await driver.read_block())
    assert served.server.faults.fired


async def test_lost_reply_is_recovered(rig: tuple[SourceMeasureChannel, Served]) -> None:
    driver, served = rig
    served.server.faults.lost_reply(match="?")
    async with asyncio.timeout(DEADLINE_S):
        assert_right(await driver.read_block())
        assert await driver.output_enabled()


async def test_garbage_is_recovered(rig: tuple[SourceMeasureChannel, Served]) -> None:
    driver, served = rig
    served.server.faults.garbage(match="?")
    async with asyncio.timeout(DEADLINE_S):
        assert_right(await driver.read_block())


async def test_plausible_looking_garbage_is_not_taken(
    rig: tuple[SourceMeasureChannel, Served],
) -> None:
    driver, served = rig
    served.server.faults.garbage(match="?", payload=b"1.5,2.5\n")
    async with asyncio.timeout(DEADLINE_S):
        assert_right(await driver.read_block())


async def test_disconnect_is_recovered_by_reconnecting(
    rig: tuple[SourceMeasureChannel, Served],
) -> None:
    driver, served = rig
    served.server.faults.disconnect(match="?")
    before = served.server.connections
    async with asyncio.timeout(DEADLINE_S):
        assert_right(await driver.read_block())
    assert served.server.connections > before


async def test_persistent_silence_ends_in_a_driver_error(
    rig: tuple[SourceMeasureChannel, Served],
) -> None:
    driver, served = rig
    served.server.faults.lost_reply(count=-1)
    async with asyncio.timeout(DEADLINE_S):
        with pytest.raises(DriverError, match="timeout"):
            await driver.read_block()
        served.server.faults.clear()
        assert_right(await driver.read_block())


async def test_stuck_instrument_ends_in_a_driver_error_then_recovers(
    rig: tuple[SourceMeasureChannel, Served],
) -> None:
    driver, served = rig
    served.server.faults.stuck()
    async with asyncio.timeout(DEADLINE_S):
        with pytest.raises(DriverError) as info:
            await driver.output_enabled()
        assert info.value.instrument == driver.name
        served.server.faults.release()
        assert await driver.output_enabled()
        assert_right(await driver.read_block())


async def test_safe_state_gets_through_a_disconnect(
    rig: tuple[SourceMeasureChannel, Served],
) -> None:
    driver, served = rig
    await served.server.disconnect_all()
    async with asyncio.timeout(DEADLINE_S):
        await driver.safe_state()
        assert not await driver.output_enabled()


async def test_error_queue_entries_surface(rig: tuple[SourceMeasureChannel, Served]) -> None:
    driver, served = rig
    served.server.faults.queue_error(-350)
    async with asyncio.timeout(DEADLINE_S):
        errors = await driver.drain_errors()
    assert [e.code for e in errors] == [-350]


async def test_lost_error_queue_reply_is_not_retried(served_2450: Served) -> None:
    """Reading an entry removes it: a lost reply must fail loudly, not lose the entry."""
    driver = Keithley2450(transport_for(served_2450))
    await driver.connect()
    served_2450.server.faults.queue_error(-222)
    served_2450.server.faults.lost_reply(match="SYST:ERR")
    async with asyncio.timeout(DEADLINE_S):
        with pytest.raises(DriverError, match="SYST:ERR"):
            await driver.drain_errors()
    await driver.close()


async def test_instrument_gone_ends_in_a_driver_error(served_2450: Served) -> None:
    driver = Keithley2450(transport_for(served_2450, retries=1))
    await driver.connect()
    await served_2450.server.close()
    async with asyncio.timeout(DEADLINE_S):
        with pytest.raises(DriverError):
            await driver.read_block()
        with pytest.raises(DriverError):
            await driver.safe_state()
    await driver.close()
