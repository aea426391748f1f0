"""The EmStat4 dead-man lease (docs/lease-emstat4.md) end to end: driver over pyvisa-py on a pty,
emulated EmStat4 on a virtual clock that only the test moves.

Semantics checked (from the docs, not from the code): the lease script keeps the cell on and reads
every period; a re-arm (``Y``) neither switches the cell off nor loses or shifts a reading; without
a re-arm the cell goes off exactly one lease after the last arming, by itself, and a new client
finds it off; the readings taken meanwhile are read back from the instrument's storage by a new
driver on the restored time base; ``safe_state`` releases the lease and keeps those readings.

The rest (``setpoint_s``), on a cell that records what drives it: a lone instrument holds the
setpoint to the first reading at or after ``setpoint_s`` and then sources 0 A (cell on) to the
lease's end, even when nobody reads and the clock jumps past it; a re-arm during the rest puts the
setpoint back; renewals that ask for no rest within the lease, or for the same step's end, stay the
gap-free ``Y``; the rest's readings are kept on the instrument like the others.
"""

from __future__ import annotations

import asyncio
import itertools
import math
from collections.abc import AsyncIterator, Callable

import numpy as np
import pytest

from licycler.drivers import methodscript as ms
from licycler.drivers.emstat4 import EmStat4Channel
from licycler.drivers.errors import DriverError
from licycler.drivers.interfaces import LeasedChannel, SampleBlock
from licycler.sim_instruments.clock import VirtualClock
from licycler.sim_instruments.emstat4 import EmStat4Emulation
from licycler.sim_instruments.serial_server import PtySerialServer
from tests.drivers.lease_bench import RecordingCell

from .conftest import RawClient

RTOL = 4e-6  # packet resolution
PERIOD_S = 0.2
LEASE_S = 2.0
E_ON_V = 3.1  # dummy cell: 3 V + 100 ohm x 1 mA
E_OFF_V = 3.0


def _emulation(server: PtySerialServer) -> EmStat4Emulation:
    emulation = server.emulation
    assert isinstance(emulation, EmStat4Emulation)
    return emulation


def _script_sent(server: PtySerialServer) -> list[str]:
    lines = list(server.received)
    start = len(lines) - 1 - lines[::-1].index("e")
    return [ln.strip() for ln in lines[start + 1 : lines.index("", start)]]


async def _until(condition: Callable[[], bool], *, timeout_s: float = 10.0) -> None:
    """Let the event loop run (the emulation acts on the virtual clock) until ``condition``."""
    async with asyncio.timeout(timeout_s):
        while not condition():
            await asyncio.sleep(0)


async def _leased(
    server: PtySerialServer, clock: VirtualClock | None = None, setpoint_s: float | None = None
) -> EmStat4Channel:
    """A driver with a lease armed (``setpoint_s``: its rest); ``clock``: the one the emulation runs
    on, for the driver to carry the instrument's timer on from its newest reading."""
    extra = {} if clock is None else {"timer_clock": clock.now}
    channel = EmStat4Channel(server.resource, timeout_s=0.3, sample_interval_s=PERIOD_S, **extra)
    await channel.open()
    await channel.configure_current_source(voltage_limit_v=4.0, nplc=0.5)
    await channel.set_current(1e-3)
    await channel.output_on()
    await channel.arm_lease(LEASE_S, PERIOD_S, setpoint_s)
    return channel


async def _next_reading(channel: EmStat4Channel, clock: VirtualClock) -> SampleBlock:
    """Move the clock one period and return the reading the instrument took then."""
    clock.advance_by(PERIOD_S)
    assert await channel.wait_readings(5.0)
    block = await channel.read_block()
    assert len(block) == 1
    return block


def _cell_on(emulation: EmStat4Emulation) -> bool:
    return emulation.cell_on


def _stored_count(emulation: EmStat4Emulation) -> int:
    """Readings the instrument has taken into its storage so far."""
    return sum(ln.startswith("P") for lines in emulation.files.values() for ln in lines)


def _join(blocks: list[SampleBlock]) -> SampleBlock:
    return SampleBlock(*(np.concatenate([getattr(b, f) for b in blocks]) for f in ("time_s", "voltage_v", "current_a")))


async def test_arm_then_readings_arrive(emstat_virtual: PtySerialServer, virtual_clock: VirtualClock) -> None:
    channel = await _leased(emstat_virtual)
    try:
        assert isinstance(channel, LeasedChannel)
        assert "Y" in channel.lease_mechanism
        assert "cell_off" in channel.lease_mechanism
        script = _script_sent(emstat_virtual)
        assert "meas_loop_cp p c 1m 200m 2" in script  # the loop is bounded by the lease
        assert script[-3:] == ["on_finished:", "cell_off", "file_close"]
        assert "set_script_output 3" in script
        assert any(ln.startswith('file_open "/licycler/') for ln in script)
        assert _emulation(emstat_virtual).cell_on
        assert len(await channel.read_block()) == 0  # leased: nothing new yet, and no measuring
        block = _join([await _next_reading(channel, virtual_clock) for _ in range(3)])
        np.testing.assert_allclose(block.voltage_v, E_ON_V, rtol=RTOL)
        np.testing.assert_allclose(block.current_a, 1e-3, rtol=RTOL)
        np.testing.assert_allclose(np.diff(block.time_s), PERIOD_S, rtol=1e-5)
        assert await channel.output_enabled()
        await channel.safe_state()
    finally:
        await channel.close()


async def test_rearm_many_times_no_gap_no_missed_reading(
    emstat_virtual: PtySerialServer, virtual_clock: VirtualClock
) -> None:
    emulation = _emulation(emstat_virtual)
    channel = await _leased(emstat_virtual)
    try:
        switches_before = len(emulation.cell_log)
        scripts_before = emulation.scripts_run
        blocks = []
        for _ in range(12):
            blocks.append(await _next_reading(channel, virtual_clock))
            await channel.arm_lease(LEASE_S, PERIOD_S)  # re-arm right after a reading
        block = _join(blocks)
        # documented: a re-arm is Y, the cell never goes off (0 s off-gap) and the script goes on
        assert emulation.cell_log[switches_before:] == []
        assert emulation.scripts_run == scripts_before
        # ... and the readings keep one period apart: none missed, none shifted
        np.testing.assert_allclose(np.diff(block.time_s), PERIOD_S, rtol=1e-5)
        np.testing.assert_allclose(block.voltage_v, E_ON_V, rtol=RTOL)
        # the lease now runs from the last re-arm: on just before it ends, off exactly at its end
        armed_at = virtual_clock.now()
        stored_before = _stored_count(emulation)
        virtual_clock.advance_to(armed_at + LEASE_S - PERIOD_S)
        await _until(lambda: _stored_count(emulation) == stored_before + round(LEASE_S / PERIOD_S) - 1)
        assert emulation.cell_on
        virtual_clock.advance_to(armed_at + LEASE_S)
        await _until(lambda: not emulation.cell_on)
        assert emulation.cell_log[-1][1] is False
        assert emulation.cell_log[-1][0] == pytest.approx(armed_at + LEASE_S, abs=1e-9)
    finally:
        await channel.close()


async def test_no_rearm_cell_off_at_arm_plus_lease_as_a_new_client_sees(
    emstat_virtual: PtySerialServer, virtual_clock: VirtualClock
) -> None:
    emulation = _emulation(emstat_virtual)
    channel = await _leased(emstat_virtual)
    armed_at = virtual_clock.now()
    await channel.close()  # the controller dies: nobody reads the pty any more, nothing is sent
    virtual_clock.advance_to(armed_at + LEASE_S - 1e-3)
    await asyncio.sleep(0)
    assert _cell_on(emulation)
    virtual_clock.advance_to(armed_at + 10 * LEASE_S)
    await _until(lambda: not emulation.running)
    assert not emulation.cell_on
    assert emulation.cell_log[-1][1] is False
    assert emulation.cell_log[-1][0] == pytest.approx(armed_at + LEASE_S, abs=1e-9)
    # a separate client opens the pty afterwards and asks
    client = RawClient(emstat_virtual.device_path)
    try:
        await client.write(b"\nZ\n")
        stale = []
        while (line := (await client.read_until(b"\n")).decode().rstrip("\n")) != "Z!0006":
            stale.append(line)  # the old output the dead controller never read
        assert stale[-1:] == [""]  # the end of the script: it had ended by itself
        # an open-circuit loop is refused while the cell is on (!0014): here it runs, at the EMF
        script = "var p\nset_pgstat_mode 2\nmeas_loop_ocp p 100m 100m\npck_start\npck_add p\npck_end\nendloop\n"
        await client.write(b"e\n" + script.encode() + b"\n")
        assert await client.read_until(b"\n") == b"e\n"
        virtual_clock.advance_by(0.1)
        out = await client.lines_until_empty()
        assert out[0] == "M000B"
        assert out[-1] == "*"
        assert ms.decode_packets(out[1:-1]).column("ab")[0] == pytest.approx(E_OFF_V, rel=RTOL)
    finally:
        client.close()


async def test_buffered_readings_read_back_by_a_new_driver(
    emstat_virtual: PtySerialServer, virtual_clock: VirtualClock
) -> None:
    emulation = _emulation(emstat_virtual)
    old = await _leased(emstat_virtual)
    seen = _join([await _next_reading(old, virtual_clock) for _ in range(3)])
    base = old.time_base()
    await old.arm_lease(LEASE_S, PERIOD_S)
    rearmed_at = virtual_clock.now()
    await old.close()  # dies; the instrument reads on alone until the lease runs out
    virtual_clock.advance_to(rearmed_at + 3 * LEASE_S)
    await _until(lambda: not emulation.running)
    new = EmStat4Channel(emstat_virtual.resource, timeout_s=0.3, sample_interval_s=PERIOD_S)
    new.restore_time_base(base)
    async with new:
        stored = await new.read_lease_buffer()
        assert not emulation.cell_on  # reading back changed nothing
    # every reading from the arming to the lapse: 3 before the re-arm, then a full lease of them
    assert len(stored) == 3 + round(LEASE_S / PERIOD_S)
    np.testing.assert_array_equal(stored.time_s[:3], seen.time_s)  # the same time base, exactly
    np.testing.assert_allclose(np.diff(stored.time_s), PERIOD_S, rtol=1e-5)
    assert stored.time_s[-1] - seen.time_s[-1] == pytest.approx(LEASE_S, abs=1e-5)
    np.testing.assert_allclose(stored.voltage_v, E_ON_V, rtol=RTOL)
    np.testing.assert_allclose(stored.current_a, 1e-3, rtol=RTOL)


async def test_safe_state_releases_the_lease_and_keeps_its_readings(
    emstat_virtual: PtySerialServer, virtual_clock: VirtualClock
) -> None:
    emulation = _emulation(emstat_virtual)
    channel = await _leased(emstat_virtual)
    try:
        seen = _join([await _next_reading(channel, virtual_clock) for _ in range(2)])
        await channel.safe_state()
        assert not emulation.cell_on
        assert not emulation.running
        assert not await channel.output_enabled()
        with pytest.raises(DriverError, match="output on"):
            await channel.arm_lease(LEASE_S, PERIOD_S)
        virtual_clock.advance_by(3 * LEASE_S)  # nothing left to run out
        await asyncio.sleep(0)
        assert not emulation.running
        stored = await channel.read_lease_buffer()
        np.testing.assert_array_equal(stored.time_s, seen.time_s)
        await channel.clear_lease_buffer()
        assert len(await channel.read_lease_buffer()) == 0
    finally:
        await channel.close()


async def test_a_lapsed_lease_is_not_rearmed(emstat_virtual: PtySerialServer, virtual_clock: VirtualClock) -> None:
    emulation = _emulation(emstat_virtual)
    channel = await _leased(emstat_virtual)
    try:
        virtual_clock.advance_by(LEASE_S)
        await _until(lambda: not emulation.cell_on)
        with pytest.raises(DriverError, match="output on"):
            await _until_raises(channel)
        assert not emulation.cell_on
        assert not await channel.output_enabled()
        assert len(await channel.read_block()) == round(LEASE_S / PERIOD_S)  # none lost
    finally:
        await channel.close()


async def _until_raises(channel: EmStat4Channel, setpoint_s: float | None = None) -> None:
    """Re-arm once the driver has seen the script's end (it streams it in the background)."""
    stream = channel._stream
    assert stream is not None
    await asyncio.wait_for(stream.done.wait(), 5.0)
    await channel.arm_lease(LEASE_S, PERIOD_S, setpoint_s)


# ------------------------------------------------------------------------------------------------
# the rest (setpoint_s)

CURRENT_A = 1e-3
READINGS = round(LEASE_S / PERIOD_S)  # a lease's readings
SETPOINT_S = 0.7  # between two readings: the setpoint holds to the one at 0.8 s, the 4th


@pytest.fixture
async def recorded(virtual_clock: VirtualClock) -> AsyncIterator[tuple[PtySerialServer, RecordingCell]]:
    """An EmStat4 on a cell that records what drives it, on the virtual clock."""
    cell = RecordingCell()
    async with PtySerialServer(EmStat4Emulation(cell, virtual_clock)) as server:
        yield server, cell


def _delivered_c(cell: RecordingCell, until_s: float) -> float:
    """The charge (C) the cell was driven with up to ``until_s``, from its drive record."""
    q = 0.0
    drive = cell.drive
    for (t, mode, level), (t_next, _, _) in zip(drive, [*drive[1:], (until_s, "", 0.0)], strict=True):
        if mode == "current":
            q += abs(level) * max(min(t_next, until_s) - t, 0.0)
    return q


def _rest_from(cell: RecordingCell) -> float:
    """When the cell was first driven from the setpoint straight to 0 A (a rest, not a cell_on)."""
    drive = cell.drive
    return next(
        (
            t
            for (_, mode0, level0), (t, mode, level) in itertools.pairwise(drive)
            if (mode0, level0, mode, level) == ("current", CURRENT_A, "current", 0.0)
        ),
        math.nan,
    )


def _since_arming(block: SampleBlock, first_at_s: float) -> np.ndarray:
    """Reading times from the arming (s), given the first reading's time from it."""
    return block.time_s - block.time_s[0] + first_at_s


async def test_a_lease_with_setpoint_s_holds_the_setpoint_to_its_reading_rests_then_goes_off(
    recorded: tuple[PtySerialServer, RecordingCell], virtual_clock: VirtualClock
) -> None:
    server, cell = recorded
    emulation = _emulation(server)
    channel = await _leased(server, virtual_clock, SETPOINT_S)
    armed_at = virtual_clock.now()
    try:
        assert channel.lease_rests
        script = _script_sent(server)
        assert "store_var r 700m eb" in script  # the rest's time on the script's own timer
        assert "if t >= r" in script
        assert "meas_loop_cp p c 1m 200m 2" in script
        assert "meas_loop_cp p c 0 200m 2" in script  # the rest: 0 A, the cell on
        assert script[-3:] == ["on_finished:", "cell_off", "file_close"]
        # no renewal: every reading of the lease but its last, the cell on throughout
        block = _join([await _next_reading(channel, virtual_clock) for _ in range(READINGS - 1)])
        assert emulation.cell_on
        t = _since_arming(block, PERIOD_S)
        held = t <= 0.8 + 1e-6  # up to and including the first reading at or after setpoint_s
        assert held.sum() == 4
        np.testing.assert_allclose(block.current_a[held], CURRENT_A, rtol=RTOL)
        np.testing.assert_allclose(block.voltage_v[held], E_ON_V, rtol=RTOL)
        np.testing.assert_allclose(block.current_a[~held], 0.0, atol=1e-9)  # the rest's readings: 0 A
        np.testing.assert_allclose(block.voltage_v[~held], E_OFF_V, rtol=RTOL)
        # the lease's last reading (at rest), and the cell off at the lease's end, as without a rest
        virtual_clock.advance_by(PERIOD_S)
        await _until(lambda: not emulation.cell_on)
        assert emulation.cell_log[-1] == (pytest.approx(armed_at + LEASE_S, abs=1e-9), False)
        assert await channel.wait_readings(5.0)
        last = await channel.read_block()
        assert len(last) == 1
        assert last.current_a[0] == pytest.approx(0.0, abs=1e-9)
        # what the cell saw: the setpoint to the 4th reading, then 0 A; the charge is the setpoint's
        # over that reading's time, to within one read period of it
        rest_at = _rest_from(cell)
        assert rest_at == pytest.approx(armed_at + 0.8, abs=1e-9)
        assert armed_at + SETPOINT_S <= rest_at <= armed_at + SETPOINT_S + PERIOD_S
        delivered = _delivered_c(cell, virtual_clock.now())
        assert delivered == pytest.approx(CURRENT_A * (rest_at - armed_at), abs=CURRENT_A * PERIOD_S)
        assert delivered == pytest.approx(CURRENT_A * 0.8, rel=1e-9)
    finally:
        await channel.close()


async def test_a_rearm_during_the_rest_puts_the_setpoint_back(
    recorded: tuple[PtySerialServer, RecordingCell], virtual_clock: VirtualClock
) -> None:
    server, cell = recorded
    emulation = _emulation(server)
    channel = await _leased(server, virtual_clock, 0.3)  # the setpoint to the reading at 0.4 s
    try:
        first = _join([await _next_reading(channel, virtual_clock) for _ in range(3)])
        np.testing.assert_allclose(first.current_a, [CURRENT_A, CURRENT_A, 0.0], rtol=RTOL, atol=1e-9)
        scripts = emulation.scripts_run
        # the same rest, already due (setpoint_s 0): a Y ends the rest, one reading at the setpoint
        await channel.arm_lease(LEASE_S, PERIOD_S, 0.0)
        assert emulation.scripts_run == scripts
        again = _join([await _next_reading(channel, virtual_clock) for _ in range(2)])
        np.testing.assert_allclose(again.current_a, [CURRENT_A, 0.0], rtol=RTOL, atol=1e-9)
        # no rest any more (the step goes on): the rest the script holds lies in this lease, so the
        # script is restarted without it (0 s off on the emulated clock)
        await channel.arm_lease(LEASE_S, PERIOD_S)
        assert emulation.scripts_run == scripts + 1
        rearmed_at = virtual_clock.now()
        on = _join([await _next_reading(channel, virtual_clock) for _ in range(READINGS - 1)])
        np.testing.assert_allclose(on.current_a, CURRENT_A, rtol=RTOL)
        np.testing.assert_allclose(on.voltage_v, E_ON_V, rtol=RTOL)
        assert emulation.cell_on
        assert [t for t, on_ in emulation.cell_log if t > rearmed_at] == []
        assert cell.drive[-1] == (rearmed_at, "current", CURRENT_A)  # the setpoint from the re-arm on
        virtual_clock.advance_by(PERIOD_S)
        await _until(lambda: not emulation.cell_on)
        assert emulation.cell_log[-1] == (pytest.approx(rearmed_at + LEASE_S, abs=1e-9), False)
        with pytest.raises(DriverError, match="output on"):  # lapsed: not re-armed, the cell stays off
            await _until_raises(channel, 0.5)
    finally:
        await channel.close()


@pytest.mark.parametrize(
    ("armed", "setpoints"),
    [
        (None, (LEASE_S - 0.1, LEASE_S, 10 * LEASE_S, None)),  # 1.9 and 2 s: the rest from the last reading
        (100 * LEASE_S, (None, 3 * LEASE_S, LEASE_S - 0.1)),  # the script's rest stays beyond them all
    ],
    ids=["none_held", "far_rest_held"],
)
async def test_renewals_asking_no_rest_within_the_lease_stay_y_without_a_gap(
    recorded: tuple[PtySerialServer, RecordingCell],
    virtual_clock: VirtualClock,
    armed: float | None,
    setpoints: tuple[float | None, ...],
) -> None:
    server, cell = recorded
    emulation = _emulation(server)
    channel = await _leased(server, virtual_clock, armed)
    try:
        switches, scripts = len(emulation.cell_log), emulation.scripts_run
        blocks = []
        for k in range(READINGS + 1):  # past a lease: only the renewals keep it
            blocks.append(await _next_reading(channel, virtual_clock))
            await channel.arm_lease(LEASE_S, PERIOD_S, setpoints[k % len(setpoints)])
        block = _join(blocks)
        assert emulation.cell_log[switches:] == []
        assert emulation.scripts_run == scripts  # every renewal was a Y
        np.testing.assert_allclose(block.current_a, CURRENT_A, rtol=RTOL)  # every reading at the setpoint
        np.testing.assert_allclose(np.diff(block.time_s), PERIOD_S, rtol=1e-5)
        assert {level for t, mode, level in cell.drive if mode == "current" and t > 0} == {CURRENT_A}
    finally:
        await channel.close()


async def test_renewals_toward_the_same_step_end_stay_y_and_a_lone_instrument_rests_there(
    recorded: tuple[PtySerialServer, RecordingCell], virtual_clock: VirtualClock
) -> None:
    server, cell = recorded
    emulation = _emulation(server)
    step_end = virtual_clock.now() + 2.3  # beyond the first lease; the rest comes into the later ones
    channel = await _leased(server, virtual_clock, step_end - virtual_clock.now())
    armed_at = virtual_clock.now()
    switches, scripts = len(emulation.cell_log), emulation.scripts_run
    blocks = []
    for _ in range(7):  # alive to 1.4 s, renewing after each reading as the supervisor asks
        blocks.append(await _next_reading(channel, virtual_clock))
        await channel.arm_lease(LEASE_S, PERIOD_S, step_end - virtual_clock.now())
    last_renewal = virtual_clock.now()
    block = _join(blocks)
    assert emulation.scripts_run == scripts  # the rest held is the one asked for: Y throughout
    assert emulation.cell_log[switches:] == []
    np.testing.assert_allclose(block.current_a, CURRENT_A, rtol=RTOL)  # an alive controller sees no rest
    await channel.close()  # dies: nothing is read or renewed; the clock jumps past the lease's end
    virtual_clock.advance_to(last_renewal + 3 * LEASE_S)
    await _until(lambda: not emulation.running)
    assert emulation.cell_log[-1] == (pytest.approx(last_renewal + LEASE_S, abs=1e-9), False)
    rest_at = _rest_from(cell)
    assert rest_at == pytest.approx(armed_at + 2.4, abs=1e-9)  # the first reading at or after the step's end
    delivered = _delivered_c(cell, virtual_clock.now())
    assert delivered == pytest.approx(CURRENT_A * (step_end - armed_at), abs=CURRENT_A * PERIOD_S)


async def test_the_rest_s_readings_are_kept_on_the_instrument_and_read_back(
    recorded: tuple[PtySerialServer, RecordingCell], virtual_clock: VirtualClock
) -> None:
    server, cell = recorded
    emulation = _emulation(server)
    old = await _leased(server, virtual_clock, SETPOINT_S)
    armed_at = virtual_clock.now()
    seen = _join([await _next_reading(old, virtual_clock) for _ in range(2)])
    base = old.time_base()
    await old.close()  # dies before the rest; the clock then jumps far past the lease's end at once
    virtual_clock.advance_to(armed_at + 3 * LEASE_S)
    await _until(lambda: not emulation.running)
    # the instrument rested at the right reading on its own clock, nobody reading the pty
    assert _rest_from(cell) == pytest.approx(armed_at + 0.8, abs=1e-9)
    assert emulation.cell_log[-1] == (pytest.approx(armed_at + LEASE_S, abs=1e-9), False)
    assert _delivered_c(cell, virtual_clock.now()) == pytest.approx(CURRENT_A * 0.8, rel=1e-9)
    new = EmStat4Channel(server.resource, timeout_s=0.3, sample_interval_s=PERIOD_S)
    new.restore_time_base(base)
    async with new:
        stored = await new.read_lease_buffer()
    assert len(stored) == READINGS  # the setpoint's readings and the rest's, one lease of them
    np.testing.assert_array_equal(stored.time_s[:2], seen.time_s)  # the same time base, exactly
    np.testing.assert_allclose(np.diff(stored.time_s), PERIOD_S, rtol=1e-5)
    held = _since_arming(stored, PERIOD_S) <= 0.8 + 1e-6
    assert held.sum() == 4
    np.testing.assert_allclose(stored.current_a[held], CURRENT_A, rtol=RTOL)
    np.testing.assert_allclose(stored.current_a[~held], 0.0, atol=1e-9)
    np.testing.assert_allclose(stored.voltage_v[~held], E_OFF_V, rtol=RTOL)
