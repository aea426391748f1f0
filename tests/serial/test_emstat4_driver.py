"""EmStat4 driver end to end through pyvisa-py (ASRL on a pty) against the emulated EmStat4."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from licycler.drivers.emstat4 import EmStat4Channel, parse_firmware
from licycler.drivers.errors import DriverError, IdentityMismatch, InstrumentReportedError, NotSupported
from licycler.drivers.interfaces import OutputOffMode, SampleBlock, SourceMeasureChannel
from licycler.sim_instruments.clock import VirtualClock
from licycler.sim_instruments.dummy_cell import DummyCell
from licycler.sim_instruments.emstat4 import EmStat4Emulation, EmStat4Spec
from licycler.sim_instruments.serial_server import PtySerialServer

RTOL = 4e-6  # packet resolution: >= 2**27/1000 counts per value


def _emulation(server: PtySerialServer) -> EmStat4Emulation:
    emulation = server.emulation
    assert isinstance(emulation, EmStat4Emulation)
    return emulation


def _cell_on(server: PtySerialServer) -> bool:
    return _emulation(server).cell_on


def _script_sent(server: PtySerialServer) -> list[str]:
    """The last script the instrument received (lines after 'e', up to the empty line)."""
    lines = list(server.received)
    start = len(lines) - 1 - lines[::-1].index("e")
    end = lines.index("", start)
    return lines[start + 1 : end]


async def _read_until(
    channel: EmStat4Channel, predicate: Callable[[SampleBlock], bool], *, blocks: int = 200
) -> SampleBlock:
    """read_block() until ``predicate`` holds for everything read so far (returned joined)."""
    out: list[SampleBlock] = []
    for _ in range(blocks):
        out.append(await channel.read_block())
        joined = SampleBlock(
            *(np.concatenate([getattr(b, f) for b in out]) for f in ("time_s", "voltage_v", "current_a"))
        )
        if predicate(joined):
            return joined
    raise AssertionError("condition never met")


def test_firmware_parser() -> None:
    fw = parse_firmware("tes4_hr1100#Jan 28 2022 11:04:43", "R*")
    assert fw.device_type == "es4_hr"
    assert fw.model == "EmStat4 HR"
    assert fw.version == "1100"
    with pytest.raises(ValueError, match="firmware"):
        parse_firmware("R*", "tes4_hr1100#Jan 28 2022")


async def test_constant_current_end_to_end(emstat_fast: PtySerialServer) -> None:
    channel = EmStat4Channel(emstat_fast.resource, timeout_s=0.5)
    assert isinstance(channel, SourceMeasureChannel)
    async with channel:
        identity = await channel.identify()
        assert "EmStat4 HR" in identity
        assert "ES4HR22A0042" in identity
        # output off: an open-circuit reading, the dummy cell's EMF
        ocp = await channel.read_block()
        assert len(ocp) == 1
        assert ocp.voltage_v[0] == pytest.approx(3.0, rel=RTOL)
        assert ocp.current_a[0] == 0.0
        await channel.configure_current_source(voltage_limit_v=4.0, nplc=1.0)
        await channel.set_current(1e-3)
        assert not await channel.output_enabled()
        await channel.output_on()
        assert await channel.output_enabled()
        assert _cell_on(emstat_fast)
        script = _script_sent(emstat_fast)
        assert script[-2:] == ["on_finished:", "cell_off"]
        assert "meas_loop_cp p c 1m 1 1M" in script
        block = await _read_until(channel, lambda b: len(b) >= 3)
        # dummy cell: E = 3 V + 100 ohm x 1 mA
        np.testing.assert_allclose(block.voltage_v, 3.1, rtol=RTOL)
        np.testing.assert_allclose(block.current_a, 1e-3, rtol=RTOL)
        np.testing.assert_allclose(np.diff(block.time_s), 1.0, rtol=1e-6)
        # a new current restarts the loop; nothing measured is lost or mixed up
        await channel.set_current(-2e-3)
        assert "meas_loop_cp p c -2m 1 1M" in _script_sent(emstat_fast)
        after = await _read_until(channel, lambda b: b.current_a[-1] < 0)
        e = np.concatenate([block.voltage_v, after.voltage_v])
        i = np.concatenate([block.current_a, after.current_a])
        t = np.concatenate([block.time_s, after.time_s])
        assert np.all(np.isclose(e, 3.1, rtol=RTOL) | np.isclose(e, 2.8, rtol=RTOL))
        np.testing.assert_allclose(e, 3.0 + 100.0 * i, rtol=RTOL)
        assert np.all(np.diff(t) > 0)
        assert not await channel.voltage_limit_tripped()
        await channel.output_off()
        assert not await channel.output_enabled()
        assert not _cell_on(emstat_fast)
        await channel.safe_state()
        await channel.safe_state()  # idempotent
        assert not _cell_on(emstat_fast)
        assert _script_sent(emstat_fast) == ["cell_off"]
        assert await channel.drain_errors() == []


async def test_voltage_limit_trips_and_opens_the_cell(emstat_fast: PtySerialServer) -> None:
    async with EmStat4Channel(emstat_fast.resource, timeout_s=0.5) as channel:
        await channel.configure_current_source(voltage_limit_v=4.0, current_range_a=100e-3)
        await channel.set_current(15e-3)  # 3 V + 100 ohm x 15 mA = 4.5 V > 4 V
        await channel.output_on()
        block = await channel.read_block()
        assert block.voltage_v[-1] == pytest.approx(4.5, rel=RTOL)
        assert await channel.voltage_limit_tripped()
        assert not await channel.output_enabled()
        assert not _cell_on(emstat_fast)
        assert "set_range ba 100m" in _script_sent(emstat_fast)


async def test_identity_and_unsupported_settings(emstat_fast: PtySerialServer) -> None:
    with pytest.raises(IdentityMismatch, match="EmStat4 LR"):
        await EmStat4Channel(emstat_fast.resource, model="EmStat4 LR", timeout_s=0.5).open()
    async with EmStat4Channel(emstat_fast.resource, model="EmStat4 HR", timeout_s=0.5) as channel:
        with pytest.raises(NotSupported):
            await channel.configure_current_source(voltage_limit_v=4.0, off_mode=OutputOffMode.ZERO)
        with pytest.raises(NotSupported):
            await channel.configure_current_source(voltage_limit_v=10.0)  # HR applies at most 6 V
        with pytest.raises(DriverError, match="configure"):
            await channel.output_on()


async def test_instrument_errors_are_reported(dummy_cell: DummyCell) -> None:
    # firmware that refuses the 100 mA range: the script is accepted, then fails at set_range
    spec = EmStat4Spec(max_current_range_a=10e-3)
    emulation = EmStat4Emulation(dummy_cell, VirtualClock(auto_advance=False), spec)
    async with PtySerialServer(emulation) as server, EmStat4Channel(server.resource, timeout_s=0.5) as channel:
        await channel.configure_current_source(voltage_limit_v=4.0, current_range_a=100e-3)
        await channel.output_on()
        with pytest.raises(InstrumentReportedError, match="out of range"):
            await channel.read_block()  # no data: the script failed
        assert not await channel.output_enabled()
        errors = await channel.drain_errors()
        assert [e.code for e in errors] == [0x4205]
        assert "line" in errors[0].message
        assert await channel.drain_errors() == []
        await channel.safe_state()
        assert not _cell_on(server)


INTERVAL_S = 0.2
"""Packet interval of the virtual-clock streams (short: an abort waits at most this for the port)."""


async def _streaming(server: PtySerialServer, clock: VirtualClock, *, failures_allowed: int = 2) -> EmStat4Channel:
    channel = EmStat4Channel(
        server.resource, timeout_s=0.3, sample_interval_s=INTERVAL_S, stream_failures_allowed=failures_allowed
    )
    await channel.open()
    await channel.configure_current_source(voltage_limit_v=4.0, nplc=0.5)
    await channel.set_current(1e-3)
    await channel.output_on()
    clock.advance_by(INTERVAL_S)
    first = await channel.read_block()
    assert first.voltage_v[0] == pytest.approx(3.1, rel=RTOL)
    return channel


async def test_lost_packet_leaves_a_gap_not_a_wrong_value(
    emstat_virtual: PtySerialServer, virtual_clock: VirtualClock
) -> None:
    channel = await _streaming(emstat_virtual, virtual_clock)
    try:
        emstat_virtual.faults.lose_replies = 1
        virtual_clock.advance_by(INTERVAL_S)  # packet 2 is lost
        virtual_clock.advance_by(INTERVAL_S)
        block = await channel.read_block()
        assert len(block) == 1
        np.testing.assert_allclose(block.voltage_v, 3.1, rtol=RTOL)
        virtual_clock.advance_by(INTERVAL_S)
        later = await channel.read_block()
        assert later.time_s[0] - block.time_s[0] == pytest.approx(INTERVAL_S)
        await channel.safe_state()
    finally:
        await channel.close()


async def test_garbage_in_the_stream_ends_in_an_error_then_recovers(
    emstat_virtual: PtySerialServer, virtual_clock: VirtualClock
) -> None:
    channel = await _streaming(emstat_virtual, virtual_clock, failures_allowed=0)
    try:
        emstat_virtual.faults.garbage_replies = 1
        virtual_clock.advance_by(INTERVAL_S)
        with pytest.raises(DriverError, match="stream lost"):
            await channel.read_block()
        with pytest.raises(DriverError, match="stream lost"):
            await channel.output_enabled()
        await channel.safe_state()  # recovers: abort, read to the end, cell off
        assert not _cell_on(emstat_virtual)
        await channel.set_current(1e-3)  # safe_state set it to zero
        await channel.output_on()
        virtual_clock.advance_by(INTERVAL_S)
        block = await channel.read_block()
        np.testing.assert_allclose(block.voltage_v, 3.1, rtol=RTOL)
        await channel.safe_state()
    finally:
        await channel.close()


async def test_stuck_instrument_ends_in_an_error(emstat_virtual: PtySerialServer, virtual_clock: VirtualClock) -> None:
    channel = await _streaming(emstat_virtual, virtual_clock, failures_allowed=0)
    try:
        emstat_virtual.faults.stuck = True
        virtual_clock.advance_by(INTERVAL_S)
        with pytest.raises(DriverError):
            await channel.read_block()
        with pytest.raises(DriverError):
            await channel.safe_state()  # the instrument reads nothing: unreachable
        emstat_virtual.faults.stuck = False
        await channel.safe_state()
        assert not _cell_on(emstat_virtual)
    finally:
        await channel.close()


async def test_identify_faults(emstat_virtual: PtySerialServer) -> None:
    async with EmStat4Channel(emstat_virtual.resource, timeout_s=0.3, retries=1) as channel:
        faults = emstat_virtual.faults
        faults.garbage_replies = 1  # the first firmware line: refused, drained, asked again
        assert "EmStat4 HR" in await channel.identify()
        faults.lose_replies = 1  # the first firmware line is lost: R* alone is no identity
        with pytest.raises(DriverError):
            await channel.identify()
        assert "EmStat4 HR" in await channel.identify()
        faults.slow_reply_s = 0.35
        with pytest.raises(DriverError):
            await channel.identify()
        faults.slow_reply_s = 0.0
        assert "EmStat4 HR" in await channel.identify()


async def test_disconnect_while_streaming(emstat_fast: PtySerialServer) -> None:
    async with EmStat4Channel(emstat_fast.resource, timeout_s=0.3, retries=1) as channel:
        await channel.configure_current_source(voltage_limit_v=4.0)
        await channel.set_current(1e-3)
        await channel.output_on()
        await channel.read_block()
        emstat_fast.disconnect()
        with pytest.raises(DriverError):
            await _read_until(channel, lambda b: False, blocks=1000)
        with pytest.raises(DriverError):
            await channel.safe_state()
