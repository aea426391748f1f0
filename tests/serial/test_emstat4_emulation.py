"""The emulated EmStat4 seen by a plain pyserial client: the manual's online commands and scripts."""

from __future__ import annotations

import numpy as np
import pytest

from licycler.drivers import methodscript as ms
from licycler.sim_instruments.clock import VirtualClock
from licycler.sim_instruments.dummy_cell import DummyCell
from licycler.sim_instruments.emstat4 import EmStat4Emulation
from licycler.sim_instruments.serial_server import PtySerialServer

from .conftest import RawClient


def _script(lines: list[str]) -> bytes:
    return ("e\n" + "\n".join(lines) + "\n\n").encode()


async def _settle(client: RawClient, clock: VirtualClock, dt_s: float, n_lines: int) -> list[str]:
    clock.advance_by(dt_s)
    return [(await client.read_until(b"\n")).decode().rstrip("\n") for _ in range(n_lines)]


async def test_online_commands(emstat_virtual: PtySerialServer) -> None:
    client = RawClient(emstat_virtual.device_path)
    try:
        await client.write(b"t\n")
        assert await client.read_until(b"\n") == b"tes4_hr1100#Jan 28 2022 11:04:43\n"
        assert await client.read_until(b"\n") == b"R*\n"
        await client.write(b"i\n")
        assert await client.read_until(b"\n") == b"iES4HR22A0042\n"
        await client.write(b"Z\n")  # nothing running
        assert await client.read_until(b"\n") == b"Z!0006\n"
        await client.write(b"x\n")
        assert await client.read_until(b"\n") == b"x!0003\n"
    finally:
        client.close()


async def test_constant_current_loop_on_the_clock(
    emstat_virtual: PtySerialServer, virtual_clock: VirtualClock, dummy_cell: DummyCell
) -> None:
    emulation = emstat_virtual.emulation
    assert isinstance(emulation, EmStat4Emulation)
    client = RawClient(emstat_virtual.device_path)
    try:
        script = ms.ConstantCurrentScript(1e-3, 1.0, 100.0, 1e-3, voltage_limit_v=5.0).lines()
        await client.write(_script(script))
        assert await client.read_until(b"\n") == b"e\n"
        assert await client.read_until(b"\n") == b"M000A\n"
        assert emulation.cell_on
        packets = await _settle(client, virtual_clock, 3.0, 3)  # three intervals, three packets
        block = ms.decode_packets(packets)
        np.testing.assert_allclose(block.column("eb"), [1.0, 2.0, 3.0])
        # dummy cell: E = EMF + R I = 3 V + 100 ohm x 1 mA
        np.testing.assert_allclose(block.column("ab"), 3.1, rtol=4e-6)
        np.testing.assert_allclose(block.column("ba"), 1e-3, rtol=4e-6)
        assert set(block.column_range("ba")) == {ms.current_range_code(1e-3)}
        packets = await _settle(client, virtual_clock, 5.0, 5)
        np.testing.assert_allclose(ms.decode_packets(packets).column("eb"), [4, 5, 6, 7, 8])
        await client.write(b"Z\n")
        assert await client.lines_until_empty() == ["Z", "*"]
        assert not emulation.cell_on  # on_finished: cell_off ran
    finally:
        client.close()


async def test_loop_ends_at_run_time(emstat_virtual: PtySerialServer, virtual_clock: VirtualClock) -> None:
    client = RawClient(emstat_virtual.device_path)
    try:
        await client.write(_script(ms.ConstantCurrentScript(-2e-3, 500e-3, 2.0, 10e-3).lines()))
        assert await client.read_until(b"\n") == b"e\n"
        virtual_clock.advance_by(10.0)
        out = await client.lines_until_empty()
        assert out[0] == "M000A"
        assert out[-1] == "*"
        assert len(out) == 2 + 4
        block = ms.decode_packets(out[1:-1])
        np.testing.assert_allclose(block.column("eb"), [0.5, 1.0, 1.5, 2.0])
        np.testing.assert_allclose(block.column("ab"), 3.0 - 0.2, rtol=4e-6)
        assert not emstat_virtual.emulation.cell_on  # type: ignore[attr-defined]
    finally:
        client.close()


async def test_voltage_limit_breaks_the_loop(emstat_virtual: PtySerialServer, virtual_clock: VirtualClock) -> None:
    client = RawClient(emstat_virtual.device_path)
    try:
        # 3 V + 100 ohm x 10 mA = 4 V > 3.5 V: the first packet is sent, then breakloop
        await client.write(_script(ms.ConstantCurrentScript(10e-3, 1.0, 100.0, 10e-3, voltage_limit_v=3.5).lines()))
        assert await client.read_until(b"\n") == b"e\n"
        virtual_clock.advance_by(5.0)
        out = await client.lines_until_empty()
        assert out[0] == "M000A"
        assert out[2] == "*"
        assert len(out) == 3
        assert ms.parse_packet(out[1])[1].value == pytest.approx(4.0)
        assert not emstat_virtual.emulation.cell_on  # type: ignore[attr-defined]
    finally:
        client.close()


async def test_compliance_overload(virtual_clock: VirtualClock) -> None:
    # 3 V + 1 kohm x 10 mA = 13 V, beyond the 6 V the EmStat4 HR can apply
    cell = DummyCell(3.0, 1000.0)
    async with PtySerialServer(EmStat4Emulation(cell, virtual_clock)) as server:
        client = RawClient(server.device_path)
        try:
            await client.write(_script(ms.ConstantCurrentScript(10e-3, 1.0, 3.0, 10e-3).lines()))
            assert await client.read_until(b"\n") == b"e\n"
            assert await client.read_until(b"\n") == b"M000A\n"
            packets = [(await _settle(client, virtual_clock, 1.0, 1))[0] for _ in range(3)]
            assert await client.lines_until_empty() == ["*"]
            block = ms.decode_packets(packets)
            assert np.all(block.column("ab") == pytest.approx(6.0))
            assert np.all(block.column_status("ab") & ms.Status.OVERLOAD)
            # from the first overloaded reading on, the source holds its compliance voltage:
            # the cell then draws (6 - 3) V / 1 kohm
            np.testing.assert_allclose(block.column("ba")[1:], 3e-3, rtol=4e-6)
        finally:
            client.close()


async def test_script_errors(emstat_virtual: PtySerialServer, virtual_clock: VirtualClock) -> None:
    client = RawClient(emstat_virtual.device_path)
    try:
        await client.write(_script(["var p", "frobnicate 1", "on_finished:", "cell_off"]))
        assert await client.read_until(b"\n") == b"e!4001: Line 2, Col 1\n"
        await client.write(_script(["var p", "pck_add p"]))
        assert await client.read_until(b"\n") == b"e!400C: Line 2, Col 1\n"
        await client.write(_script(["var p", "var c", "meas_loop_cp p c 1m 1 10", "pck_start"]))
        assert await client.read_until(b"\n") == b"e!4018: Line 4, Col 1\n"
        # runtime: 5 mA in the 1 mA range -> !4205 at the loop's line, on_finished skipped
        lines = ms.ConstantCurrentScript(1e-3, 1.0, 10.0, 1e-3).lines()
        lines = [ln.replace("meas_loop_cp p c 1m", "meas_loop_cp p c 5m") for ln in lines]
        await client.write(_script(lines))
        assert await client.read_until(b"\n") == b"e\n"
        loop_line = next(n for n, ln in enumerate(lines, 1) if ln.startswith("meas_loop_cp"))
        assert await client.lines_until_empty() == [f"!4205: Line {loop_line}"]
    finally:
        client.close()


async def test_open_circuit_reading(emstat_virtual: PtySerialServer, virtual_clock: VirtualClock) -> None:
    client = RawClient(emstat_virtual.device_path)
    try:
        await client.write(_script(ms.open_circuit_script(1.0)))
        assert await client.read_until(b"\n") == b"e\n"
        virtual_clock.advance_by(1.0)
        out = await client.lines_until_empty()
        assert out[0] == "M000B"
        assert out[-1] == "*"
        (t, e) = ms.parse_packet(out[1])
        assert t.value == pytest.approx(1.0)
        assert e.value == pytest.approx(3.0)
    finally:
        client.close()
