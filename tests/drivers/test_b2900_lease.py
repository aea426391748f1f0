"""The B2900 dead-man lease end to end: driver -> pyvisa-py socket -> emulation -> recording cell.

Expectations come from the B2900 SCPI command reference, not from the code: a timer-triggered
acquire action of ``:TRIG:ACQ:COUN N`` takes N readings one ``:TRIG:ACQ:TIM`` apart; with
``:OUTP:OFF:AUTO ON`` the output goes off (``:OUTP:OFF:MODE HIZ``: the cell is left open) when the
channel changes from busy to idle, i.e. when the N-th reading is taken or on ``:ABOR``; ``:MEAS?``
and ``:INIT`` while the acquire action is busy are ignored with -213 "Init ignored"; the trace
buffer stores readings while ``:TRAC:FEED:CONT NEXT`` and can be cleared in NEVer only. The cell
is a dummy (EMF 3 V, 100 Ohm): 1 mA gives 3.1 V. The clock is virtual: nothing sleeps.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import numpy as np
import pytest

from licycler.drivers import KeysightB2900, LeasedChannel, SourceMeasureChannel
from licycler.drivers.errors import DriverError
from licycler.sim_instruments.clock import VirtualClock
from licycler.sim_instruments.keysight_b2900 import KeysightB2900 as B2900Emulation
from licycler.sim_instruments.keysight_b2900 import _Channel
from licycler.sim_instruments.scpi.server import ScpiTcpServer
from tests.drivers.conftest import Served, transport_for
from tests.drivers.lease_bench import RecordingCell
from tests.sim_scpi.conftest import RawClient

CURRENT_A = 1e-3
VOLTAGE_V = 3.0 + 100.0 * CURRENT_A


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    cell = RecordingCell()
    clock = VirtualClock(start_s=1000.0)
    emulation = B2900Emulation([cell], clock, model="B2902A", noise=False)
    async with ScpiTcpServer(emulation) as server:
        yield Served(server, emulation, cell, clock)


async def sourcing(served: Served) -> KeysightB2900:
    """A connected driver sourcing 1 mA into the cell, output on."""
    driver = KeysightB2900(transport_for(served, timeout_s=2.0), channel=1, name="B2902A ch1")
    await driver.connect()
    await driver.configure_current_source(voltage_limit_v=10.0, nplc=1.0)
    await driver.set_current(CURRENT_A)
    await driver.output_on()
    assert await driver.output_enabled()  # a query: the writes before it have been executed
    return driver


def cell_of(served: Served) -> RecordingCell:
    assert isinstance(served.cell, RecordingCell)
    return served.cell


def channel_of(served: Served) -> _Channel:
    assert isinstance(served.instrument, B2900Emulation)
    return served.instrument.ch[1]


async def let_the_instrument_run(served: Served) -> None:
    """Yield to the event loop so that the server's own timer acts on the moved virtual clock."""
    for _ in range(50):
        await asyncio.sleep(0)


def timer(served: Served) -> float:
    """The instrument's timer now (TIME element), s."""
    assert isinstance(served.instrument, B2900Emulation)
    return served.clock.now() - served.instrument.timer_origin_s


async def test_the_driver_is_a_leased_channel(served: Served) -> None:
    driver = await sourcing(served)
    assert isinstance(driver, LeasedChannel)
    assert isinstance(driver, SourceMeasureChannel)
    assert ":OUTP:OFF:AUTO ON" in KeysightB2900.lease_mechanism
    assert "\n" not in KeysightB2900.lease_mechanism
    await driver.close()


async def test_lease_readings_arrive_in_read_block(served: Served) -> None:
    driver = await sourcing(served)
    t0 = timer(served)
    await driver.arm_lease(10.0, 1.0)
    served.clock.advance_by(3.5)
    block = await driver.read_block()
    np.testing.assert_allclose(block.time_s, t0 + np.array([1.0, 2.0, 3.0]), rtol=0, atol=1e-6)
    np.testing.assert_allclose(block.voltage_v, VOLTAGE_V, rtol=1e-6)
    np.testing.assert_allclose(block.current_a, CURRENT_A, rtol=1e-6)
    assert len(await driver.read_block()) == 0  # nothing new: possibly none
    served.clock.advance_by(2.0)
    block = await driver.read_block()
    np.testing.assert_allclose(block.time_s, t0 + np.array([4.0, 5.0]), rtol=0, atol=1e-6)
    await driver.set_current(2 * CURRENT_A)  # an immediate level while leased
    assert await driver.output_enabled()  # a query: the write has been executed before it
    served.clock.advance_by(1.0)
    block = await driver.read_block()
    np.testing.assert_allclose(block.current_a, 2 * CURRENT_A, rtol=1e-6)
    assert await driver.drain_errors() == []
    await driver.close()


async def test_rearming_never_turns_the_output_off(served: Served) -> None:
    driver = await sourcing(served)
    cell = cell_of(served)
    drives_before = len(cell.drive)
    t0 = timer(served)
    await driver.arm_lease(5.0, 1.0)
    times = []
    for _ in range(20):
        served.clock.advance_by(3.0)
        times.append((await driver.read_block()).time_s)
        await driver.arm_lease(5.0, 1.0)
        assert await driver.output_enabled()
    all_times = np.concatenate(times)
    # one reading a second for the whole minute: no gap, none twice
    np.testing.assert_allclose(all_times, t0 + np.arange(1, 61), rtol=0, atol=1e-5)
    # the cell was never opened nor shorted: every drive after output-on is the same current
    assert all(mode == "current" and level == CURRENT_A for _, mode, level in cell.drive[drives_before:])
    assert [on for _, on, _ in channel_of(served).output_log] == [True]
    await driver.close()


async def test_without_renewal_the_output_goes_off_in_hiz_at_expiry(served: Served) -> None:
    driver = await sourcing(served)
    cell = cell_of(served)
    armed_at = served.clock.now()
    await driver.arm_lease(5.5, 1.0)  # N = 5 readings one second apart
    served.clock.advance_by(3.0)
    assert len(await driver.read_block()) == 3
    await driver.transport.close()  # the controller dies: nobody talks to the instrument
    served.clock.advance_to(armed_at + 100.0)
    await let_the_instrument_run(served)
    ch = channel_of(served)
    assert not ch.smu.output_on  # the instrument acted on its own clock, before any command
    assert ch.output_log[-1][:2] == (armed_at + 5.0, False)
    assert cell.drive[-1] == (armed_at + 5.0, "open", 0.0)  # HIZ: the cell left open
    raw = RawClient(served.server.port)
    try:
        assert await raw.ask(":OUTP1?;:OUTP1:OFF:MODE?;:OUTP1:OFF:AUTO?") == "0;HIZ;1"
        assert await raw.ask(":TRAC1:POIN:ACT?") == "+5"
    finally:
        raw.close()


async def test_a_new_driver_reads_the_trace_with_the_same_times(served: Served) -> None:
    first = await sourcing(served)
    first.restore_time_base({"timer_offset_s": -250.0})
    await first.arm_lease(6.0, 0.5)  # 12 readings
    served.clock.advance_by(2.0)
    seen = await first.read_block()
    assert len(seen) == 4
    base = first.time_base()
    await first.transport.close()  # dies; the lease runs out by itself
    served.clock.advance_by(60.0)
    await let_the_instrument_run(served)

    second = KeysightB2900(transport_for(served, timeout_s=2.0), channel=1)
    await second.connect()
    second.restore_time_base(base)
    kept = await second.read_lease_buffer()
    assert len(kept) == 12
    np.testing.assert_array_equal(kept.time_s[:4], seen.time_s)  # the same reading, the same time
    np.testing.assert_allclose(np.diff(kept.time_s), 0.5, rtol=0, atol=1e-5)
    np.testing.assert_allclose(kept.voltage_v, VOLTAGE_V, rtol=1e-6)
    assert not await second.output_enabled()  # reading the buffer does not touch the output

    third = KeysightB2900(transport_for(served, timeout_s=2.0), channel=1)
    await third.connect()
    unrestored = await third.read_lease_buffer()  # another base: the instrument's own timer
    np.testing.assert_allclose(unrestored.time_s - kept.time_s, 250.0, rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="finite"):
        third.restore_time_base({"timer_offset_s": float("nan")})
    await second.close()
    await third.close()


async def test_safe_state_releases_the_lease(served: Served) -> None:
    driver = await sourcing(served)
    await driver.arm_lease(10.0, 1.0)
    served.clock.advance_by(2.5)
    await driver.safe_state()
    ch = channel_of(served)
    assert not ch.running
    assert not ch.off_auto
    assert not await driver.output_enabled()
    assert ch.off_mode == "HIZ"
    log_length = len(ch.output_log)
    served.clock.advance_by(30.0)
    await let_the_instrument_run(served)
    assert len(ch.output_log) == log_length  # nothing left to run out
    block = await driver.read_block()  # the two readings of the lease, then a spot measurement
    assert len(block) == 3
    assert await driver.drain_errors() == []
    await driver.close()


async def test_a_resumed_driver_releases_an_earlier_lease(served: Served) -> None:
    first = await sourcing(served)
    await first.arm_lease(30.0, 1.0)
    base = first.time_base()
    await first.transport.close()
    second = KeysightB2900(transport_for(served, timeout_s=2.0), channel=1)
    await second.connect()
    second.restore_time_base(base)
    await second.safe_state()
    assert not channel_of(served).running
    assert not await second.output_enabled()
    await second.close()


async def test_spot_measurement_and_init_refused_while_leased(served: Served) -> None:
    driver = await sourcing(served)
    await driver.arm_lease(10.0, 1.0)
    raw = RawClient(served.server.port)
    try:
        assert await raw.ask(":MEAS? (@1);:SYST:ERR?") == '-213,"Init ignored"'
        assert await raw.ask(":INIT:ACQ (@1);:SYST:ERR?") == '-213,"Init ignored"'
        assert await raw.ask(":OUTP1?") == "1"  # refused, and nothing else changed
    finally:
        raw.close()
    await driver.close()


async def test_an_abort_under_auto_off_turns_the_output_off(served: Served) -> None:
    """Why the re-arm line lowers OFF:AUTO first: busy to idle by :ABOR also turns it off."""
    driver = await sourcing(served)
    await driver.arm_lease(10.0, 1.0)
    raw = RawClient(served.server.port)
    try:
        assert await raw.ask(":ABOR:ACQ (@1);:OUTP1?") == "0"
    finally:
        raw.close()
    assert cell_of(served).drive[-1][1] == "open"
    with pytest.raises(DriverError, match="run out"):
        await driver.arm_lease(10.0, 1.0)  # renewing does not switch a lapsed output back on
    await driver.close()


async def test_the_trace_is_cleared_in_the_rearm_without_losing_a_reading(served: Served) -> None:
    """A month of readings does not fit in 100000 entries: the re-arm clears the trace when the
    next lease could overflow it, after fetching what read_block has not returned yet."""
    driver = await sourcing(served)
    t0 = timer(served)
    period = 1e-3
    await driver.arm_lease(40.0, period)  # 40000 readings a lease
    times = []
    for step in range(3):
        served.clock.advance_by(30.0)
        times.append((await driver.read_block()).time_s)
        if step == 2:
            served.clock.advance_by(0.0105)  # ten more readings that nobody has read yet
        await driver.arm_lease(40.0, period)
    assert len(channel_of(served).trace) == 0  # 90000 + 40000 could not fit: cleared
    served.clock.advance_by(1.0)
    times.append((await driver.read_block()).time_s)  # the ten fetched by the re-arm first
    all_times = np.concatenate(times)
    rearmed = t0 + 90.0105  # a re-arm starts the timer again
    expected = np.concatenate([t0 + period * np.arange(1, 90011), rearmed + period * np.arange(1, 1001)])
    np.testing.assert_allclose(all_times, expected, rtol=0, atol=2e-5)
    assert await driver.output_enabled()
    assert await driver.drain_errors() == []
    await driver.close()


async def test_scpi_forms_of_the_lease_commands(served: Served) -> None:
    raw = RawClient(served.server.port)
    try:
        assert await raw.ask(":trigger1:acquire:timer 0.5;:TRIG:ACQ:TIM?") == "+5.000000E-01"
        assert await raw.ask(":TRIG2:ACQ:SOUR tim;:trigger2:acquire:source?") == "TIM"
        assert await raw.ask(":TRIG:ACQ:COUN INF;:TRIG1:ACQ:COUN?") == "+2147483647"
        assert await raw.ask(":arm:acq:coun 3;:ARM1:ACQuire:COUNt?") == "+3"
        assert await raw.ask(":OUTPut1:OFF:AUTO on;:outp:off:auto?;:OUTP2:OFF:AUTO?") == "1;0"
        assert await raw.ask(":TRACe:FREE?;:TRAC2:POIN?;:TRAC:FEED?") == "+100000,+100000;+100000;SENS"
        assert await raw.ask(":TRACe:FEED:CONTrol next;:trac:feed:cont?") == "NEXT"
        await raw.send(":TRAC:CLE;:TRAC:POIN 10")  # NEXT: neither is allowed
        assert await raw.ask(":SYST:ERR?;:SYST:ERR?") == (
            '-221,"Settings conflict";-221,"Settings conflict"'
        )
        assert await raw.ask(":TRAC:DATA? 5;:SYST:ERR?") == '-222,"Data out of range"'
        assert await raw.ask(":TRAC1:FEED:CONT NEV;:TRAC1:POIN 10;:TRAC1:POIN?") == "+10"
        assert await raw.ask(":TRIG:ACQ:TIM 1E-6;:SYST:ERR?") == '-222,"Data out of range"'
        assert await raw.ask(":SYST:ERR?") == '+0,"No error"'
    finally:
        raw.close()


async def test_arm_lease_rejects_what_the_trigger_cannot_do(served: Served) -> None:
    driver = await sourcing(served)
    with pytest.raises(ValueError, match="read_period_s"):
        await driver.arm_lease(10.0, 1e-6)
    with pytest.raises(ValueError, match="readings"):
        await driver.arm_lease(0.5, 1.0)
    with pytest.raises(ValueError, match="readings"):
        await driver.arm_lease(2e5, 1.0)
    await driver.close()
