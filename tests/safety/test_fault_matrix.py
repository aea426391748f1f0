"""The fault-injection matrix: each fault ends with the output off at the instrument (queried from the
emulated instrument itself) and an event that names the cause."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import pytest

from licycler.drivers import SampleBlock
from licycler.engine import ChannelSetup, RunController, RunState
from licycler.events import Event, FanOut
from licycler.protocols import parse_schedule
from licycler.safety import Limits, PressureInterlock, SafetyTripped, SetpointRefused
from licycler.store import Store, WriteBatch
from licycler.yamlsource import load_yaml_text

from .conftest import Rig


async def start_plating(rig: Rig, current_a: float = -1e-3) -> None:
    await rig.supervisor.arm()
    await rig.supervisor.set_current(current_a)
    await rig.supervisor.output_on()
    assert await rig.output_is_on()


async def read(rig: Rig, seconds: float = 1.0) -> SampleBlock:
    rig.clock.advance_by(seconds)
    return await rig.supervisor.read_block()


async def read_many(rig: Rig, reads: int) -> None:
    for _ in range(reads):
        await read(rig)


async def expect_trip(rig: Rig, cause: str, reads: int = 30) -> Event:
    with pytest.raises(SafetyTripped) as info:
        await read_many(rig, reads)
    assert info.value.violation.cause == cause
    assert not await rig.output_is_on()
    trip = await rig.log.wait_for(kind="trip", cause=cause)
    assert trip.values["output_off_verified"] is True
    return trip


async def test_healthy_plating_reads_and_stays_on(rig: Rig) -> None:
    await start_plating(rig)
    for _ in range(5):
        block = await read(rig)
        assert len(block) >= 1
        assert block.voltage_v[-1] == pytest.approx(-0.02, abs=2e-3)  # 1 mA through 20 ohm
    assert await rig.output_is_on()
    assert not rig.log.of_kind("trip")


async def test_voltage_over_limit(rig: Rig) -> None:
    await start_plating(rig)
    await read(rig)
    rig.cell.resistance_ohm = 2000.0  # the cell's resistance jumps: -2 V at 1 mA, beyond the -1 V window
    trip = await expect_trip(rig, "voltage_under_limit")
    assert trip.values["voltage_v"] == pytest.approx(-1.0, abs=1.5)  # compliance holds |V| at the window edge


async def test_current_over_limit(rig: Rig) -> None:
    await start_plating(rig)
    await read(rig)
    # someone turns the source up behind the controller's back (front panel, another client)
    await rig.emulation.execute_line(":SOUR:CURR -0.008")
    trip = await expect_trip(rig, "current_over_limit")
    assert trip.values["current_a"] == pytest.approx(-0.008, rel=0.01)


async def test_setpoint_beyond_the_limits_never_reaches_the_instrument(rig: Rig) -> None:
    await start_plating(rig)
    with pytest.raises(SetpointRefused):
        await rig.supervisor.set_current(-0.02)
    level = float(await rig.emulation.execute_line(":SOUR:CURR?") or "nan")
    assert level == pytest.approx(-1e-3)


async def test_overrange_reading(rig: Rig) -> None:
    await start_plating(rig)
    await read(rig)
    await rig.emulation.execute_line(":SENS:VOLT:RANG 0.02")  # a fixed 20 mV range: -20 mV readings overflow
    rig.cell.resistance_ohm = 100.0
    await expect_trip(rig, "overrange")


async def test_stuck_reading(rig: Rig) -> None:
    await start_plating(rig)
    await read(rig)
    rig.emulation.smu.noise = False  # the converter freezes: every reading identical
    await expect_trip(rig, "stuck_reading", reads=60)


async def test_instrument_timeout(rig: Rig) -> None:
    await start_plating(rig)
    await read(rig)
    rig.server.faults.lost_reply(count=3)
    trip = await expect_trip(rig, "instrument_error")
    assert "timeout" in str(trip.values.get("cause", "")) + trip.message.lower()


async def test_brief_disconnect_is_recovered(rig: Rig) -> None:
    await start_plating(rig)
    await read(rig)
    await rig.server.disconnect_all()  # the connection drops once: the transport reconnects
    block = await read(rig)
    assert len(block) >= 1
    assert await rig.output_is_on()


async def test_lasting_disconnect(rig: Rig) -> None:
    await start_plating(rig)
    await read(rig)
    await rig.server.disconnect_all()
    rig.server.faults.disconnect(count=12)  # every command drops the link, for a while
    with pytest.raises(SafetyTripped) as info:
        await read_many(rig, 30)
    assert info.value.violation.cause == "instrument_error"
    await rig.supervisor.wait_secured()  # kept trying until the instrument answered again
    assert not await rig.output_is_on()
    confirmed = [e for e in rig.log.of_kind("secured") if e.values.get("output_off_verified")]
    assert confirmed
    trip = await rig.log.wait_for(kind="trip", cause="instrument_error")
    assert "2450 under test" in trip.message


async def test_nan_reading(rig: Rig) -> None:
    await start_plating(rig)
    await read(rig)
    rig.cell.emf_v = float("nan")  # the cell model (or a broken converter) gives no number
    await expect_trip(rig, "nan_reading")


async def test_exception_inside_a_step(rig: Rig) -> None:
    async def failing_step() -> None:
        async with rig.supervisor.guard("step 3"):
            await start_plating(rig)
            await read(rig)
            _ = 1 / 0

    with pytest.raises(ZeroDivisionError):
        await failing_step()
    assert not await rig.output_is_on()
    event = await rig.log.wait_for(kind="trip", cause="exception")
    assert "ZeroDivisionError" in event.message


async def test_cancellation(rig: Rig) -> None:
    started = asyncio.Event()

    async def step() -> None:
        async with rig.supervisor.guard("plating"):
            await start_plating(rig)
            started.set()
            await asyncio.Event().wait()  # a step waiting forever

    task = asyncio.create_task(step())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not await rig.output_is_on()
    await rig.log.wait_for(kind="trip", cause="cancelled")


async def test_watchdog(rig: Rig) -> None:
    await start_plating(rig)
    await read(rig)
    rig.supervisor.start_watchdog()
    await asyncio.sleep(0)
    rig.clock.advance_by(10.0)  # no fresh sample for 10 read periods
    await rig.log.wait_for(kind="trip", cause="watchdog")
    assert not await rig.output_is_on()
    await rig.supervisor.stop_watchdog()


async def test_emergency_stop_is_fast_in_virtual_time(rig: Rig) -> None:
    await start_plating(rig)
    t0 = rig.clock.now()
    await rig.supervisor.emergency_stop("test")
    assert not await rig.output_is_on()
    assert rig.clock.now() - t0 <= 0.1


async def test_interlock_refuses_a_wrong_instrument(rig: Rig) -> None:
    from licycler.safety import InterlockError

    rig.supervisor.expected_identity = "MODEL 2460"
    with pytest.raises(InterlockError, match="2460"):
        await rig.supervisor.arm()
    assert not await rig.output_is_on()


async def test_pressure_lost(rig: Rig) -> None:
    from licycler.drivers.mark10 import Mark10ForceGauge
    from licycler.sim_instruments.mark10 import Mark10Emulation
    from licycler.sim_instruments.serial_server import PtySerialServer
    from licycler.sim_instruments.simple_rig import FirstOrderRig

    model = FirstOrderRig(1.0e6, area_m2=1e-4, tau_s=0.0)  # 1 MPa on 1 cm^2: 100 N on the gauge
    async with PtySerialServer(Mark10Emulation(model, rig.clock)) as serial:
        gauge = Mark10ForceGauge(serial.resource, area_m2=1e-4)
        await gauge.open()
        rig.supervisor.rig = gauge
        rig.supervisor.pressure_interlock = PressureInterlock(settle_s=3.0, settle_tolerance_pa=5e3, poll_s=1.0)
        rig.supervisor.limits.push("protocol", Limits(pressure_min_pa=0.5e6, pressure_max_pa=2e6))
        await start_plating(rig)
        await read(rig)
        model.set_pressure_setpoint(0.1e6, rig.clock.now())  # the clamp gives way
        trip = await expect_trip(rig, "pressure_out_of_window")
        assert "1e+05" in trip.message or "100000" in trip.message.replace(",", "")
        await gauge.close()


async def test_pressure_interlock_refuses_current_without_stack_pressure(rig: Rig) -> None:
    from licycler.drivers.mark10 import Mark10ForceGauge
    from licycler.safety import InterlockError
    from licycler.sim_instruments.mark10 import Mark10Emulation
    from licycler.sim_instruments.serial_server import PtySerialServer
    from licycler.sim_instruments.simple_rig import FirstOrderRig

    model = FirstOrderRig(0.2e6, area_m2=1e-4, tau_s=0.0)  # 200 kPa: below the 0.5 MPa window
    async with PtySerialServer(Mark10Emulation(model, rig.clock)) as serial:
        gauge = Mark10ForceGauge(serial.resource, area_m2=1e-4)
        await gauge.open()
        rig.supervisor.rig = gauge
        rig.supervisor.limits.push("protocol", Limits(pressure_min_pa=0.5e6))
        with pytest.raises(InterlockError, match="stack pressure"):
            await rig.supervisor.arm()
        assert not await rig.output_is_on()
        await gauge.close()


class FailingStore(Store):
    """A store whose disk fills up after ``ok`` transactions."""

    def __init__(self, url: str, ok: int) -> None:
        super().__init__(url)
        self.ok = ok

    def write_many(self, batches: Sequence[WriteBatch]) -> None:
        if self.ok <= 0:
            raise OSError(28, "No space left on device")
        self.ok -= 1
        super().write_many(batches)


async def test_store_failure(rig: Rig, tmp_path: Path) -> None:
    text = """\
name: cycling
cell: {chemistry: Li||Li, electrode_area: 1 cm^2}
limits: {voltage_min: -1 V, voltage_max: 1 V}
steps:
  - repeat:
      count: 20
      steps:
        - plate: {current: 1 mA/cm^2, until: {time: 1 min}}
        - strip: {current: 1 mA/cm^2, until: {time: 1 min}}
"""
    schedule = parse_schedule(load_yaml_text(text, "s.yaml"), text, "s.yaml")
    store = FailingStore(f"sqlite:///{tmp_path / 'run.db'}", ok=3)
    setup = ChannelSetup("A1", rig.supervisor, rig.clock)
    controller = RunController(schedule, [setup], store, mode="station", events=FanOut(rig.log))
    states = await controller.run()
    assert states["A1"] is RunState.FAULTED
    assert not await rig.output_is_on()
    trip = await rig.log.wait_for(kind="trip", cause="store_failure")
    assert "No space left" in trip.message
    assert trip.values["output_off_verified"] is True


async def test_a_failing_telemetry_sink_never_blocks_safety(rig: Rig) -> None:
    class DeadBroker:
        def emit(self, event: Event) -> None:
            raise ConnectionError("broker gone")

    fan = FanOut(DeadBroker(), rig.log)
    rig.supervisor.events = fan
    await start_plating(rig)
    await read(rig)
    rig.cell.resistance_ohm = 2000.0
    await expect_trip(rig, "voltage_under_limit")
    assert fan.failures["DeadBroker"] >= 2  # every event it was given failed, and was counted
