"""The EmStat4 dead-man lease (docs/lease-emstat4.md) end to end: driver over pyvisa-py on a pty,
emulated EmStat4 on a virtual clock that only the test moves.

Semantics checked (from the docs, not from the code): the lease script keeps the cell on and reads
every period; a re-arm (``Y``) neither switches the cell off nor loses or shifts a reading; without
a re-arm the cell goes off exactly one lease after the last arming, by itself, and a new client
finds it off; the readings taken meanwhile are read back from the instrument's storage by a new
driver on the restored time base; ``safe_state`` releases the lease and keeps those readings.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import numpy as np
import pytest

from licycler.drivers import methodscript as ms
from licycler.drivers.emstat4 import EmStat4Channel
from licycler.drivers.errors import DriverError
from licycler.drivers.interfaces import LeasedChannel, SampleBlock
from licycler.sim_instruments.clock import VirtualClock
from licycler.sim_instruments.emstat4 import EmStat4Emulation
from licycler.sim_instruments.serial_server import PtySerialServer

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


async def _leased(server: PtySerialServer) -> EmStat4Channel:
    channel = EmStat4Channel(server.resource, timeout_s=0.3, sample_interval_s=PERIOD_S)
    await channel.open()
    await channel.configure_current_source(voltage_limit_v=4.0, nplc=0.5)
    await channel.set_current(1e-3)
    await channel.output_on()
    await channel.arm_lease(LEASE_S, PERIOD_S)
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


async def _until_raises(channel: EmStat4Channel) -> None:
    """Re-arm once the driver has seen the script's end (it streams it in the background)."""
    stream = channel._stream
    assert stream is not None
    await asyncio.wait_for(stream.done.wait(), 5.0)
    await channel.arm_lease(LEASE_S, PERIOD_S)
