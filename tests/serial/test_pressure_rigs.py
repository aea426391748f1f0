"""Mark-10 and Alicat: drivers through pyvisa-py ASRL on a pty, raw pyserial transcripts, faults."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from licycler.drivers.alicat import AlicatPressureController, parse_frame, pressure_unit_pa
from licycler.drivers.errors import DriverError, InstrumentReportedError, NotSupported
from licycler.drivers.interfaces import PressureRig
from licycler.drivers.mark10 import Mark10ForceGauge, parse_force_reading
from licycler.sim_instruments.alicat import AlicatEmulation
from licycler.sim_instruments.clock import VirtualClock
from licycler.sim_instruments.mark10 import Mark10Emulation
from licycler.sim_instruments.serial_server import PtySerialServer

from .conftest import RawClient, StepRig

LBF_N = 4.4482216152605  # 1 lbf = 0.45359237 kg x 9.80665 m/s^2 (exact by definition)
PSI_PA = 6894.757293168  # 1 psi = 1 lbf/in^2
AREA_M2 = 1.0e-4  # 1 cm^2


@pytest.fixture
def rig() -> StepRig:
    return StepRig(pressure_pa=1.0e6, area_m2=AREA_M2)  # 1 MPa on 1 cm^2: 100 N


@pytest.fixture
async def mark10_server(rig: StepRig) -> AsyncIterator[PtySerialServer]:
    async with PtySerialServer(Mark10Emulation(rig, VirtualClock())) as server:
        yield server


@pytest.fixture
async def alicat_server(rig: StepRig) -> AsyncIterator[PtySerialServer]:
    async with PtySerialServer(AlicatEmulation(rig, VirtualClock(), display_unit="psi", full_scale=300.0)) as server:
        yield server


# ------------------------------------------------------------------------------------- Mark-10


def test_force_reading_parser() -> None:
    assert parse_force_reading("12.34 N") == pytest.approx(12.34)
    assert parse_force_reading("3.258 lbF") == pytest.approx(3.258 * LBF_N)
    assert parse_force_reading("-1.5 kgF") == pytest.approx(-1.5 * 9.80665)
    assert parse_force_reading("250 mN") == pytest.approx(0.25)
    assert parse_force_reading("0.75 kN") == pytest.approx(750.0)
    assert parse_force_reading("16.0 ozF") == pytest.approx(LBF_N)
    assert parse_force_reading("2.5", default_unit="LB") == pytest.approx(2.5 * LBF_N)
    for bad in ("*10", "12.3.4 N", "12 furlongs", ""):
        with pytest.raises(ValueError, match=r"reading|unit"):
            parse_force_reading(bad)


async def test_mark10_raw_transcript(mark10_server: PtySerialServer) -> None:
    client = RawClient(mark10_server.device_path)
    try:
        await client.write(b"?\r")
        assert await client.read_until(b"\r\n") == b"100.00 N\r\n"
        await client.write(b"LB\r\n")  # CR LF accepted too
        assert await client.read_until(b"\r\n") == b"R\r\n"
        await client.write(b"?\r")
        assert await client.read_until(b"\r\n") == f"{100.0 / LBF_N:.2f} lbF\r\n".encode()
        await client.write(b"XYZ\r")
        assert await client.read_until(b"\r\n") == b"*10\r\n"
    finally:
        client.close()


async def test_mark10_driver_end_to_end(mark10_server: PtySerialServer, rig: StepRig) -> None:
    gauge = Mark10ForceGauge(mark10_server.resource, area_m2=AREA_M2, timeout_s=0.5)
    assert isinstance(gauge, PressureRig)
    async with gauge:
        assert "Mark-10" in await gauge.identify()
        assert await gauge.read_force_n() == pytest.approx(100.0)
        assert await gauge.read_pressure_pa() == pytest.approx(1.0e6)
        rig.set_pressure_setpoint(2.5e6, 1.0)
        status = await gauge.status()
        assert status.pressure_pa == pytest.approx(2.5e6)
        assert status.setpoint_pa is None
        # the gauge switched to pound-force: the driver follows the unit in each reply
        emulation = mark10_server.emulation
        assert isinstance(emulation, Mark10Emulation)
        emulation.unit = "LBF"
        resolution_pa = 0.01 * LBF_N / AREA_M2
        assert await gauge.read_pressure_pa() == pytest.approx(2.5e6, abs=resolution_pa / 2)
        assert not gauge.can_set_pressure
        with pytest.raises(NotSupported):
            await gauge.set_pressure_setpoint_pa(1e6)
    assert list(mark10_server.received) == ["?"] * 5  # identify, force, pressure, status, lbF


async def test_mark10_faults_end_in_error_or_a_fresh_reading(mark10_server: PtySerialServer, rig: StepRig) -> None:
    faults = mark10_server.faults
    async with Mark10ForceGauge(mark10_server.resource, area_m2=AREA_M2, timeout_s=0.2, retries=1) as gauge:
        # garbage: the reply is refused, the port drained, the query asked again
        faults.garbage_replies = 1
        assert await gauge.read_force_n() == pytest.approx(100.0)
        # lost reply: timeout, drain, ask again
        faults.lose_replies = 1
        assert await gauge.read_force_n() == pytest.approx(100.0)
        # slow beyond the timeout on every try: a driver error, then the late replies are
        # drained, never taken as the answer to the next query
        faults.slow_reply_s = 0.3
        with pytest.raises(DriverError, match="timeout"):
            await gauge.read_force_n()
        faults.slow_reply_s = 0.0
        rig.set_pressure_setpoint(3.0e6, 2.0)
        assert await gauge.read_force_n() == pytest.approx(300.0)
        # stuck: half a reply, then silence
        faults.stuck = True
        with pytest.raises(DriverError):
            await gauge.read_force_n()
        faults.stuck = False
        assert await gauge.read_force_n() == pytest.approx(300.0)
        # the device vanishes
        mark10_server.disconnect()
        with pytest.raises(DriverError):
            await gauge.read_force_n()


# -------------------------------------------------------------------------------------- Alicat


def test_alicat_frame_parser() -> None:
    frame = parse_frame("A +014.70 +014.70", "A")
    assert (frame.pressure, frame.setpoint, frame.flags) == (14.70, 14.70, ())
    assert parse_frame("A +014.70 +020.00 HLD POV", "A").flags == ("HLD", "POV")
    for bad in ("B +014.70 +014.70", "A +014.70", "A +01x.70 +014.70", "?", "A 14.7 15.0 hld"):
        with pytest.raises(ValueError, match=r"frame|unexpected"):
            parse_frame(bad, "A")
    assert pressure_unit_pa("psi") == pytest.approx(PSI_PA)
    assert pressure_unit_pa("bar") == 1e5
    assert pressure_unit_pa("kPa") == 1e3
    with pytest.raises(ValueError, match="pressure"):
        pressure_unit_pa("V")


async def test_alicat_raw_transcript(alicat_server: PtySerialServer, rig: StepRig) -> None:
    client = RawClient(alicat_server.device_path, timeout_s=0.3)
    try:
        await client.write(b"A\r")
        reply = await client.read_until(b"\r")
        assert reply == f"A +{1e6 / PSI_PA:06.2f} +000.00\r".encode()  # 145.04 psi, CR only
        await client.write(b"AS50.00\r")
        assert await client.read_until(b"\r") == b"A +050.00 +050.00\r"
        assert rig.setpoints[-1][0] == pytest.approx(50.0 * PSI_PA)
        await client.write(b"AHC\r")
        assert await client.read_until(b"\r") == b"A +050.00 +050.00 HLD\r"
        await client.write(b"AX\r")
        assert await client.read_until(b"\r") == b"?\r"
        await client.write(b"AS999\r")  # beyond full scale
        assert await client.read_until(b"\r") == b"?\r"
        await client.write(b"B\r")  # another unit on the bus: no answer
        assert await client.read_until(b"\r") == b""
        assert client.port.in_waiting == 0  # no LF anywhere
    finally:
        client.close()


@pytest.mark.parametrize(("unit", "factor_pa"), [("psi", PSI_PA), ("kPa", 1e3), ("bar", 1e5)])
async def test_alicat_driver_end_to_end(rig: StepRig, unit: str, factor_pa: float) -> None:
    full_scale = 3.0e6 / factor_pa
    emulation = AlicatEmulation(rig, VirtualClock(), display_unit=unit, full_scale=full_scale, decimals=2)
    async with (
        PtySerialServer(emulation) as server,
        AlicatPressureController(
            server.resource, display_unit=unit, full_scale=full_scale, decimals=2, timeout_s=0.5
        ) as controller,
    ):
        assert isinstance(controller, PressureRig)
        assert controller.can_set_pressure
        assert "unit A" in await controller.identify()
        step_pa = 0.01 * factor_pa
        assert await controller.read_pressure_pa() == pytest.approx(1.0e6, abs=step_pa / 2)
        await controller.set_pressure_setpoint_pa(2.0e6)
        assert rig.setpoints[-1][0] == pytest.approx(2.0e6, abs=step_pa / 2)
        status = await controller.status()
        assert status.pressure_pa == pytest.approx(2.0e6, abs=step_pa / 2)
        assert status.setpoint_pa == pytest.approx(2.0e6, abs=step_pa / 2)
        assert status.flags == ()
        emulation.hold = True
        assert (await controller.status()).flags == ("HLD",)
        sent = len(server.received)
        with pytest.raises(DriverError, match="outside"):
            await controller.set_pressure_setpoint_pa(5.0e6)
        assert len(server.received) == sent  # refused before anything was sent


async def test_alicat_refusal_and_faults(alicat_server: PtySerialServer, rig: StepRig) -> None:
    faults = alicat_server.faults
    # the driver thinks the range is 1000 psi, the unit only takes 300: it answers '?'
    async with AlicatPressureController(
        alicat_server.resource, display_unit="psi", full_scale=1000.0, timeout_s=0.2, retries=1
    ) as controller:
        with pytest.raises(InstrumentReportedError, match="not accepted"):
            await controller.set_pressure_setpoint_pa(500.0 * PSI_PA)
        faults.garbage_replies = 1
        assert await controller.read_pressure_pa() == pytest.approx(1.0e6, abs=0.005 * PSI_PA)
        faults.lose_replies = 1
        await controller.set_pressure_setpoint_pa(100.0 * PSI_PA)  # idempotent: asked again
        assert rig.setpoints[-1][0] == pytest.approx(100.0 * PSI_PA)
        faults.slow_reply_s = 0.3
        with pytest.raises(DriverError, match="timeout"):
            await controller.read_pressure_pa()
        faults.slow_reply_s = 0.0
        rig.set_pressure_setpoint(1.5e6, 3.0)
        assert await controller.read_pressure_pa() == pytest.approx(1.5e6, abs=0.005 * PSI_PA)
        faults.stuck = True
        with pytest.raises(DriverError):
            await controller.status()
        faults.stuck = False
        assert (await controller.status()).setpoint_pa == pytest.approx(100.0 * PSI_PA)
        alicat_server.disconnect()
        with pytest.raises(DriverError):
            await controller.read_pressure_pa()
