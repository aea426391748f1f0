"""The B2900 dead-man lease end to end: driver -> pyvisa-py socket -> emulation -> recording cell.

Expectations come from the B2900 SCPI command reference, not from the code: a timer-triggered
acquire action of ``:TRIG:ACQ:COUN N`` takes N readings one ``:TRIG:ACQ:TIM`` apart; with
``:OUTP:OFF:AUTO ON`` the output goes off (``:OUTP:OFF:MODE HIZ``: the cell is left open) when the
channel changes from busy to idle, i.e. when the N-th reading is taken or on ``:ABOR``; ``:MEAS?``
and ``:INIT`` while the acquire action is busy are ignored with -213 "Init ignored"; the trace
buffer stores readings while ``:TRAC:FEED:CONT NEXT`` and can be cleared in NEVer only. The rest
(``setpoint_s``): a transient action (``:TRIG:TRAN:COUN 1``) comes ``:TRIG:TRAN:DEL`` after its start
and changes the output to the triggered level ``:SOUR:CURR:TRIG``; the channel is busy while either
action runs. The cell is a dummy (EMF 3 V, 100 Ohm): 1 mA gives 3.1 V, 0 A 3.0 V. The clock is
virtual: nothing sleeps.
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


def delivered_c(cell: RecordingCell, since_s: float, until_s: float) -> float:
    """The charge (C) the cell was driven with from ``since_s`` to ``until_s``, from its record of
    what drove it (an open circuit carries none; voltage control is not expected here)."""
    level, q, t_prev = 0.0, 0.0, since_s
    for t, mode, value in cell.drive:
        i = value if mode == "current" else 0.0
        if t <= since_s:
            level = i
            continue
        if t >= until_s:
            break
        assert mode != "voltage", "the cell was put under voltage control"
        q += level * (t - t_prev)
        level, t_prev = i, t
    return q + level * (until_s - t_prev)


def changes(cell: RecordingCell, after_s: float) -> list[tuple[float, str, float]]:
    """What drove the cell after ``after_s`` where it changed (an instrument re-applying the same
    source, as any setting does, is no change)."""
    out: list[tuple[float, str, float]] = []
    last: tuple[str, float] | None = None
    for t, mode, level in cell.drive:
        if t > after_s and (mode, level) != last:
            out.append((t, mode, level))
        last = (mode, level)
    return out


def timer(served: Served) -> float:
    """The instrument's timer now (TIME element), s."""
    assert isinstance(served.instrument, B2900Emulation)
    return served.clock.now() - served.instrument.timer_origin_s


async def test_the_driver_is_a_leased_channel(served: Served) -> None:
    driver = await sourcing(served)
    assert isinstance(driver, LeasedChannel)
    assert isinstance(driver, SourceMeasureChannel)
    assert ":OUTP:OFF:AUTO ON" in KeysightB2900.lease_mechanism
    assert driver.lease_rests
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


# ---------------------------------------------------------------- the rest (setpoint_s)


async def test_setpoint_s_rests_the_cell_from_the_reading_at_or_after_it_to_the_lease_end(
    served: Served,
) -> None:
    """The controller dies near the end of its step: the instrument ends the step's current at the
    step's end (not at the lease's), rests the cell at 0 A with the output on, and opens it at the
    lease's end."""
    driver = await sourcing(served)
    cell = cell_of(served)
    armed_at, t0 = served.clock.now(), timer(served)
    await driver.arm_lease(10.0, 1.0, setpoint_s=3.2)  # reading 4 (4 s) is the first at or after 3.2 s
    served.clock.advance_by(2.0)
    assert len(await driver.read_block()) == 2
    base = driver.time_base()
    await driver.transport.close()  # the controller dies
    served.clock.advance_to(armed_at + 100.0)
    await let_the_instrument_run(served)
    ch = channel_of(served)
    assert not ch.smu.output_on
    # on the instrument's own clock: 0 A (relay closed) half a period after reading 4, open at 10 s
    assert changes(cell, armed_at) == [
        (armed_at + 4.5, "current", 0.0),
        (armed_at + 10.0, "open", 0.0),
    ]
    assert [(t, on) for t, on, _ in ch.output_log] == [(armed_at, True), (armed_at + 10.0, False)]
    # the readings it kept: the setpoint up to and including reading 4, then the rest
    second = KeysightB2900(transport_for(served, timeout_s=2.0), channel=1)
    await second.connect()
    second.restore_time_base(base)
    kept = await second.read_lease_buffer()
    np.testing.assert_allclose(kept.time_s, t0 + np.arange(1, 11), rtol=0, atol=1e-5)
    np.testing.assert_allclose(kept.current_a, [CURRENT_A] * 4 + [0.0] * 6, rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(kept.voltage_v, [VOLTAGE_V] * 4 + [3.0] * 6, rtol=1e-6)
    # the charge: the setpoint times the time of reading 4, within one read period's charge
    q_cell = delivered_c(cell, armed_at, armed_at + 100.0)
    assert q_cell == pytest.approx(CURRENT_A * 4.5, rel=1e-9)
    assert abs(q_cell - CURRENT_A * 4.0) <= CURRENT_A * 1.0
    q_readings = float(np.sum(kept.current_a) * 1.0)  # each reading standing for its period
    assert abs(q_readings - CURRENT_A * 4.0) <= CURRENT_A * 1.0
    assert await second.output_enabled() is False
    raw = RawClient(served.server.port)
    try:
        assert await raw.ask(":OUTP1?;:OUTP1:OFF:MODE?;:SOUR1:CURR:TRIG?") == "0;HIZ;+0.000000E+00"
    finally:
        raw.close()
    await second.close()


async def test_setpoint_s_zero_rests_right_after_the_next_reading(served: Served) -> None:
    driver = await sourcing(served)
    cell = cell_of(served)
    armed_at = served.clock.now()
    await driver.arm_lease(5.0, 0.5, setpoint_s=0.0)
    served.clock.advance_by(2.0)
    block = await driver.read_block()
    np.testing.assert_allclose(block.current_a, [CURRENT_A, 0.0, 0.0, 0.0], rtol=1e-6, atol=1e-12)
    assert cell.drive[-1] == (armed_at + 0.75, "current", 0.0)
    assert await driver.output_enabled()  # a rest, not an open circuit
    await driver.close()


async def test_a_rearm_during_the_rest_puts_the_setpoint_back(served: Served) -> None:
    driver = await sourcing(served)
    cell = cell_of(served)
    armed_at = served.clock.now()
    await driver.arm_lease(10.0, 1.0, setpoint_s=0.0)  # a step that has ended: rests at 1.5 s
    served.clock.advance_by(3.0)
    block = await driver.read_block()
    np.testing.assert_allclose(block.current_a, [CURRENT_A, 0.0, 0.0], rtol=1e-6, atol=1e-12)
    await driver.arm_lease(10.0, 1.0, setpoint_s=5.0)  # the step goes on after all
    assert await driver.output_enabled()
    served.clock.advance_by(7.0)
    block = await driver.read_block()  # re-armed at 3 s: readings at 4 to 10 s, the 5th (8 s) last at 1 mA
    np.testing.assert_allclose(block.current_a, [CURRENT_A] * 5 + [0.0] * 2, rtol=1e-6, atol=1e-12)
    assert changes(cell, armed_at) == [
        (armed_at + 1.5, "current", 0.0),
        (armed_at + 3.0, "current", CURRENT_A),  # the re-arm line: the setpoint back at once
        (armed_at + 8.5, "current", 0.0),
    ]
    assert [on for _, on, _ in channel_of(served).output_log] == [True]
    assert await driver.drain_errors() == []
    await driver.close()


async def test_renewals_before_the_rest_or_without_one_never_interrupt_the_current(
    served: Served,
) -> None:
    """An alive controller: rests armed but renewed before they begin, rests beyond the lease,
    and none at all; one reading a second at the setpoint, the cell never rested nor opened."""
    driver = await sourcing(served)
    cell = cell_of(served)
    drives_before = len(cell.drive)
    t0 = timer(served)
    # 2.5 s: the rest would begin at 3.5 s (renewed at 3 s); 4.5 s: reading 5 is the lease's last
    choices: list[float | None] = [2.5, None, 100.0, 4.5, 2.5, 2.5, None, None, 100.0, 2.5]
    await driver.arm_lease(5.0, 1.0, setpoint_s=2.5)
    times, currents = [], []
    for setpoint_s in choices * 2:
        served.clock.advance_by(3.0)
        block = await driver.read_block()
        times.append(block.time_s)
        currents.append(block.current_a)
        await driver.arm_lease(5.0, 1.0, setpoint_s=setpoint_s)
        assert channel_of(served).tran_running == (setpoint_s == 2.5)  # a transient only for a rest
        assert await driver.output_enabled()
    np.testing.assert_allclose(np.concatenate(times), t0 + np.arange(1, 61), rtol=0, atol=1e-5)
    np.testing.assert_allclose(np.concatenate(currents), CURRENT_A, rtol=1e-6)
    assert all(
        mode == "current" and level == CURRENT_A for _, mode, level in cell.drive[drives_before:]
    )
    assert [on for _, on, _ in channel_of(served).output_log] == [True]
    assert await driver.drain_errors() == []
    await driver.close()


async def test_without_a_rest_the_rearm_line_is_as_before(served: Served) -> None:
    driver = await sourcing(served)
    await driver.arm_lease(5.0, 1.0)  # the first arm also stops any rest a dead controller armed
    assert isinstance(served.instrument, B2900Emulation)
    served.instrument.log = []
    await driver.arm_lease(5.0, 1.0)
    await driver.arm_lease(5.0, 1.0, setpoint_s=7.0)  # beyond the lease: no rest either
    assert [line for line, _ in served.instrument.log] == [
        ":OUTP1:OFF:MODE HIZ;:OUTP1:OFF:AUTO OFF;:ABOR:ACQ (@1);:TRIG1:ACQ:SOUR TIM;:TRIG1:ACQ:TIM 1;"
        ":TRIG1:ACQ:COUN 5;:ARM1:ACQ:COUN 1;:TRAC1:FEED:CONT NEXT;:INIT:ACQ (@1);:OUTP1:OFF:AUTO ON;"
        ":OUTP1:OFF:AUTO?;:OUTP1?;:SYST:ERR?"
    ] * 2
    await driver.close()


async def test_a_new_level_while_a_rest_is_armed_holds_until_the_rest(served: Served) -> None:
    """set_current re-sends the triggered level 0 A: the emulation sets the triggered level with the
    immediate one (as the manual does not say), and the rest must stay a rest either way."""
    driver = await sourcing(served)
    await driver.arm_lease(10.0, 1.0, setpoint_s=2.0)  # rests at 2.5 s
    served.clock.advance_by(1.2)
    await driver.set_current(2 * CURRENT_A)
    assert await driver.output_enabled()  # a query: the write has been executed before it
    served.clock.advance_by(4.8)
    block = await driver.read_block()
    np.testing.assert_allclose(
        block.current_a, [CURRENT_A, 2 * CURRENT_A, 0.0, 0.0, 0.0, 0.0], rtol=1e-6, atol=1e-12
    )
    await driver.close()


async def test_safe_state_stops_a_rest_too(served: Served) -> None:
    driver = await sourcing(served)
    await driver.arm_lease(10.0, 1.0, setpoint_s=5.0)
    served.clock.advance_by(1.0)
    await driver.safe_state()
    ch = channel_of(served)
    assert not ch.running
    assert not ch.tran_running
    assert not await driver.output_enabled()
    await driver.close()


async def test_arm_lease_rejects_a_rest_it_cannot_program(served: Served) -> None:
    driver = await sourcing(served)
    with pytest.raises(ValueError, match="setpoint_s"):
        await driver.arm_lease(10.0, 1.0, setpoint_s=-1.0)
    with pytest.raises(ValueError, match="setpoint_s"):
        await driver.arm_lease(10.0, 1.0, setpoint_s=float("nan"))
    with pytest.raises(ValueError, match="transient delay"):
        await driver.arm_lease(2e5, 10.0, setpoint_s=1.5e5)  # the delay tops out at 1E+5 s
    await driver.close()


async def test_the_transient_action_runs_on_the_instruments_own_clock(served: Served) -> None:
    """Nobody connected: the level changes at the delay, and the channel going idle then turns
    the output off (OFF:AUTO ON)."""
    cell = cell_of(served)
    t = served.clock.now()
    raw = RawClient(served.server.port)
    try:
        assert await raw.ask(
            ":SOUR1:FUNC:MODE CURR;:SOUR1:CURR 1E-3;:SENS1:VOLT:PROT 10;:OUTP1:OFF:MODE HIZ;"
            ":OUTP1 ON;:SOUR1:CURR:TRIG 2E-3;:TRIG1:TRAN:DEL 2.5;:OUTP1:OFF:AUTO ON;"
            ":INIT:TRAN (@1);:OUTP1?;:SOUR1:CURR?"
        ) == "1;+1.000000E-03"
    finally:
        raw.close()
    served.clock.advance_to(t + 10.0)
    await let_the_instrument_run(served)
    assert cell.drive[-2:] == [(t + 2.5, "current", 2e-3), (t + 2.5, "open", 0.0)]


async def test_the_channel_is_busy_while_either_action_runs(served: Served) -> None:
    """An abort of the acquisition while the transient waits out its delay leaves the output on;
    the transient's end makes the channel idle and turns it off."""
    cell = cell_of(served)
    t = served.clock.now()
    raw = RawClient(served.server.port)
    try:
        assert await raw.ask(
            ":SOUR1:FUNC:MODE CURR;:SOUR1:CURR 1E-3;:SENS1:VOLT:PROT 10;:OUTP1:OFF:MODE HIZ;"
            ":OUTP1 ON;:TRIG1:ACQ:SOUR TIM;:TRIG1:ACQ:TIM 1;:TRIG1:ACQ:COUN 3;:TRIG1:TRAN:DEL 5;"
            ":SOUR1:CURR:TRIG 0;:OUTP1:OFF:AUTO ON;:INIT (@1);:INIT:TRAN (@1);:SYST:ERR?;"
            ":MEAS? (@1);:SYST:ERR?;:ABOR:ACQ (@1);:OUTP1?"
        ) == '-213,"Init ignored";-213,"Init ignored";1'
        served.clock.advance_to(t + 4.0)
        await let_the_instrument_run(served)
        assert await raw.ask(":OUTP1?") == "1"
        served.clock.advance_to(t + 10.0)
        await let_the_instrument_run(served)
        assert await raw.ask(":OUTP1?") == "0"
        assert cell.drive[-2:] == [(t + 5.0, "current", 0.0), (t + 5.0, "open", 0.0)]
        # an abort of the transient alone: the level stays, the output too while acquiring
        assert await raw.ask(
            ":OUTP1 ON;:SOUR1:CURR 1E-3;:SOUR1:CURR:TRIG 0;:INIT (@1);:ABOR:TRAN (@1);:OUTP1?"
        ) == "1"
        served.clock.advance_to(t + 20.0)
        await let_the_instrument_run(served)
        assert cell.drive[-2:] == [(t + 10.0, "current", 1e-3), (t + 13.0, "open", 0.0)]
    finally:
        raw.close()


async def test_scpi_forms_and_errors_of_the_transient_commands(served: Served) -> None:
    raw = RawClient(served.server.port)
    try:
        assert await raw.ask(":trigger1:transient:delay 0.5;:TRIG:TRAN:DEL?") == "+5.000000E-01"
        assert await raw.ask(":TRIG:COUN 3;:TRIG1:TRAN:COUN?;:TRIG1:ACQ:COUN?") == "+3;+3"  # [:ALL]: both
        assert await raw.ask(":TRIG:TRAN:COUN 2;:TRIG:ACQ:COUN?;:TRIG:TRAN:COUN?") == "+3;+2"
        assert await raw.ask(":ARM2:TRAN:COUN 4;:ARM2:TRANsient:COUNt?;:ARM2:ACQ:COUN?") == "+4;+1"
        assert await raw.ask(":TRIG:TRAN:SOUR tim;:TRIG:TRAN:SOUR?;:TRIG:ACQ:SOUR?") == "TIM;AINT"
        assert await raw.ask(":SOUR:CURR:MODE?;:SOUR2:VOLT:MODE?") == "FIX;FIX"
        assert await raw.ask(":SOUR2:CURR:LEV:TRIG:AMPL 1.5mA;:SOUR2:CURR:TRIG?") == "+1.500000E-03"
        assert await raw.ask(":SOUR2:CURR 2E-3;:SOUR2:CURR:TRIG?;:SOUR2:CURR?") == (
            "+2.000000E-03;+2.000000E-03"  # the triggered level set with the immediate one
        )
        await raw.send(":TRIG:TRAN:DEL 2E5;:TRIG:TRAN:DEL -1;:SOUR:CURR:TRIG 4;:TRIG:TRAN:COUN 0")
        assert await raw.ask(":SYST:ERR?;:SYST:ERR?;:SYST:ERR?;:SYST:ERR?") == ";".join(
            ['-222,"Data out of range"'] * 4
        )
        assert await raw.ask(":SOUR:FUNC:MODE CURR;:SOUR:CURR:MODE SWE;:INIT:TRAN (@1);:SYST:ERR?") == (
            '-221,"Settings conflict"'  # sweeps and lists are not emulated
        )
        assert await raw.ask(":SOUR:CURR:MODE FIX;:SYST:ERR?") == '+0,"No error"'
    finally:
        raw.close()


async def test_transient_counts_and_timer_triggers(served: Served) -> None:
    """Counts multiply (trigger x arm); AINT without delay does every action at once (INFinity
    too); TIMer triggers one timer interval apart, each action a delay after its trigger."""
    cell = cell_of(served)
    ch = channel_of(served)
    t = served.clock.now()
    raw = RawClient(served.server.port)
    try:
        await raw.send(":SOUR1:FUNC:MODE CURR;:SENS1:VOLT:PROT 10;:OUTP1 ON;:SOUR1:CURR:TRIG 1E-3")
        assert await raw.ask(":TRIG1:TRAN:COUN INF;:INIT:TRAN (@1);:OUTP1?;:SYST:ERR?") == '1;+0,"No error"'
        assert not ch.tran_running  # all its actions done at once
        assert changes(cell, t - 1.0)[-1] == (t, "current", 1e-3)
        assert await raw.ask(
            ":SOUR1:CURR:TRIG 2E-3;:TRIG1:TRAN:SOUR TIM;:TRIG1:TRAN:TIM 0.25;:TRIG1:TRAN:COUN 2;"
            ":ARM1:TRAN:COUN 2;:TRIG1:TRAN:DEL 0.1;:INIT:TRAN (@1);:OUTP1?"
        ) == "1"
        served.clock.advance_to(t + 0.9)
        await let_the_instrument_run(served)
        assert ch.tran_running  # four actions: the last at 4 x 0.25 + 0.1 s
        assert changes(cell, t)[-1] == (t + 0.35, "current", 2e-3)
        served.clock.advance_to(t + 1.2)
        await let_the_instrument_run(served)
        assert not ch.tran_running
    finally:
        raw.close()
