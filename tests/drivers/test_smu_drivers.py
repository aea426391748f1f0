"""Keithley 2450 and Keysight B2900 drivers end to end: pyvisa-py socket -> emulation -> dummy cell.

Expected values are Ohm's law for the dummy cell (EMF 3 V, 100 Ohm), never the code's output.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from licycler.drivers import (
    DriverError,
    IdentityMismatch,
    InstrumentReportedError,
    Keithley2450,
    KeysightB2900,
    OutputOffMode,
    SourceMeasureChannel,
)
from tests.drivers.conftest import EMF_V, RESISTANCE_OHM, Served, transport_for


def ohm_voltage(current_a: float) -> float:
    return EMF_V + RESISTANCE_OHM * current_a


# ----------------------------------------------------------------------------- Keithley 2450


async def test_2450_is_a_source_measure_channel(k2450: Keithley2450) -> None:
    assert isinstance(k2450, SourceMeasureChannel)
    assert "2450" in await k2450.identify()


async def test_2450_configure_sets_what_the_manual_says(
    k2450: Keithley2450, served_2450: Served
) -> None:
    await k2450.configure_current_source(voltage_limit_v=4.2, nplc=0.5, voltage_range_v=20.0)
    emu = served_2450.instrument
    assert emu.smu.source_function == "CURR"
    assert emu.smu.voltage_limit_v == pytest.approx(4.2)
    assert emu.sense_function == "VOLT:DC"
    assert emu.smode["CURR"] == "HIMP"
    assert emu.nplc["VOLT:DC"] == pytest.approx(0.5)
    assert emu.smu.voltage_range_v == pytest.approx(20.0)


async def test_2450_constant_current_reads_ohms_law(k2450: Keithley2450) -> None:
    await k2450.configure_current_source(voltage_limit_v=10.0)
    await k2450.set_current(2e-3)
    await k2450.output_on()
    assert await k2450.output_enabled()
    block = await k2450.read_block()
    assert len(block) == 1
    assert block.voltage_v[0] == pytest.approx(ohm_voltage(2e-3), rel=1e-6)
    assert block.current_a[0] == pytest.approx(2e-3, rel=1e-6)
    assert not await k2450.voltage_limit_tripped()


async def test_2450_compliance_trips_at_the_limit(k2450: Keithley2450) -> None:
    await k2450.configure_current_source(voltage_limit_v=3.5)
    await k2450.set_current(10e-3)  # 3 V + 1 V would exceed 3.5 V
    await k2450.output_on()
    block = await k2450.read_block()
    assert block.voltage_v[0] == pytest.approx(3.5, rel=1e-6)
    assert block.current_a[0] == pytest.approx((3.5 - EMF_V) / RESISTANCE_OHM, rel=1e-6)
    assert await k2450.voltage_limit_tripped()
    await k2450.set_current(1e-3)  # back inside the limit
    block = await k2450.read_block()
    assert block.voltage_v[0] == pytest.approx(ohm_voltage(1e-3), rel=1e-6)
    assert not await k2450.voltage_limit_tripped()


async def test_2450_blocks_are_continuous_across_buffer_clears(served_2450: Served) -> None:
    driver = Keithley2450(transport_for(served_2450), clear_after_readings=3)
    await driver.connect()
    await driver.configure_current_source(voltage_limit_v=10.0, nplc=1.0)
    await driver.set_current(1e-3)
    await driver.output_on()
    times = np.concatenate([(await driver.read_block()).time_s for _ in range(8)])
    await driver.close()
    assert np.all(np.diff(times) > 0)
    assert times[0] == 0.0
    assert len(served_2450.instrument.buffers["defbuffer1"]) < 3


async def test_2450_block_holds_every_reading_since_the_last_call(
    k2450: Keithley2450, served_2450: Served
) -> None:
    await k2450.configure_current_source(voltage_limit_v=10.0, nplc=1.0)
    await k2450.set_current(-1e-3)
    await k2450.output_on()
    await k2450.read_block()
    await k2450.transport.write(":COUN 5;:INIT;*WAI", idempotent=False)
    block = await k2450.read_block()
    # the five the trigger model took, then the driver's own :READ? (five too: :COUN 5 applies to it)
    assert len(block) == 10
    np.testing.assert_allclose(block.voltage_v, ohm_voltage(-1e-3), rtol=1e-6)
    period = 1.0 / 60.0 + served_2450.instrument.smu.reading_overhead_s
    # to the microsecond: UTC timestamps (SEC, FRAC) of an emulation that keeps UTC as a float
    np.testing.assert_allclose(np.diff(block.time_s[:5]), period, rtol=0, atol=1e-6)
    np.testing.assert_allclose(np.diff(block.time_s[5:]), period, rtol=0, atol=1e-6)
    assert np.all(np.diff(block.time_s) > 0)


async def test_2450_safe_state_opens_the_relay(k2450: Keithley2450, served_2450: Served) -> None:
    await k2450.configure_current_source(voltage_limit_v=10.0, off_mode=OutputOffMode.NORMAL)
    await k2450.set_current(5e-3)
    await k2450.output_on()
    await k2450.safe_state()
    await k2450.safe_state()  # idempotent
    assert not await k2450.output_enabled()
    emu = served_2450.instrument
    assert emu.smode["CURR"] == "HIMP"
    assert emu.smu.current_level_a == 0.0
    v, i = served_2450.cell.sample(np.array([served_2450.clock.now()]))
    assert i[0] == 0.0  # open circuit: no current flows
    assert v[0] == EMF_V


async def test_2450_off_in_normal_mode_shorts_the_cell(
    k2450: Keithley2450, served_2450: Served
) -> None:
    """The dangerous mode, emulated faithfully: 0 V across the cell when the output is off."""
    await k2450.configure_current_source(voltage_limit_v=10.0, off_mode=OutputOffMode.NORMAL)
    await k2450.output_on()
    await k2450.output_off()
    assert not await k2450.output_enabled()
    v, i = served_2450.cell.sample(np.array([served_2450.clock.now()]))
    assert v[0] == 0.0
    assert i[0] == pytest.approx(-EMF_V / RESISTANCE_OHM)


async def test_2450_error_queue_entries_are_drained(
    k2450: Keithley2450, served_2450: Served
) -> None:
    served_2450.server.faults.queue_error(-222)
    served_2450.server.faults.queue_error(5000, "Output current limit exceeded")
    errors = await k2450.drain_errors()
    assert [(e.code, e.message) for e in errors] == [
        (-222, "Data out of range"), (5000, "Output current limit exceeded"),
    ]
    assert await k2450.drain_errors() == []


async def test_2450_configure_reports_a_queued_error(
    k2450: Keithley2450, served_2450: Served
) -> None:
    served_2450.server.faults.queue_error(-221, "Settings conflict")
    with pytest.raises(InstrumentReportedError) as info:
        await k2450.configure_current_source(voltage_limit_v=5.0)
    assert info.value.code == -221
    assert info.value.command == "configure_current_source"


async def test_2450_rejects_out_of_range_arguments(k2450: Keithley2450) -> None:
    with pytest.raises(ValueError, match="voltage_limit_v"):
        await k2450.configure_current_source(voltage_limit_v=500.0)
    with pytest.raises(ValueError, match="current_a"):
        await k2450.set_current(2.0)


async def test_2450_driver_refuses_another_instrument(served_b2902a: Served) -> None:
    driver = Keithley2450(transport_for(served_b2902a))
    with pytest.raises(IdentityMismatch, match="KEITHLEY"):
        await driver.connect()
    await driver.close()


# ----------------------------------------------------------------------------- Keysight B2900


async def test_b2900_configure_sets_what_the_manual_says(
    b2900: KeysightB2900, served_b2902a: Served
) -> None:
    await b2900.configure_current_source(voltage_limit_v=4.0, nplc=1.0)
    ch = served_b2902a.instrument.ch[1]
    assert ch.smu.source_function == "CURR"
    assert ch.smu.voltage_limit_v == pytest.approx(4.0)
    assert ch.off_mode == "HIZ"
    assert not ch.auto_on
    assert served_b2902a.instrument.elements == ("VOLT", "CURR", "TIME")


async def test_b2900_measuring_never_switches_the_output_on(
    b2900: KeysightB2900, served_b2902a: Served
) -> None:
    await b2900.configure_current_source(voltage_limit_v=4.0)
    await b2900.set_current(1e-3)
    block = await b2900.read_block()
    assert not await b2900.output_enabled()
    assert block.voltage_v[0] == pytest.approx(EMF_V)  # open circuit
    assert block.current_a[0] == 0.0


async def test_b2900_constant_current_and_compliance(b2900: KeysightB2900) -> None:
    await b2900.configure_current_source(voltage_limit_v=3.5)
    await b2900.set_current(2e-3)
    await b2900.output_on()
    block = await b2900.read_block()
    assert block.voltage_v[0] == pytest.approx(ohm_voltage(2e-3), rel=1e-6)
    assert not await b2900.voltage_limit_tripped()
    await b2900.set_current(20e-3)
    block = await b2900.read_block()
    assert block.voltage_v[0] == pytest.approx(3.5, rel=1e-6)
    assert block.current_a[0] == pytest.approx(5e-3, rel=1e-6)
    assert await b2900.voltage_limit_tripped()
    later = await b2900.read_block()
    assert later.time_s[0] > block.time_s[0]


async def test_b2902a_two_channels_share_one_transport(served_b2902a: Served) -> None:
    transport = transport_for(served_b2902a)
    ch1 = KeysightB2900(transport, channel=1)
    ch2 = KeysightB2900(transport, channel=2)
    await ch1.connect()
    await ch2.connect()
    await ch1.configure_current_source(voltage_limit_v=10.0)
    await ch2.configure_current_source(voltage_limit_v=10.0)
    await ch2.set_current(1e-3)  # channel 2 drives its own 1 kOhm load
    await ch2.output_on()
    b1, b2 = await ch1.read_block(), await ch2.read_block()
    assert b1.voltage_v[0] == pytest.approx(EMF_V)
    assert b2.voltage_v[0] == pytest.approx(1.0, rel=1e-6)
    assert not await ch1.output_enabled()
    await ch2.safe_state()
    assert served_b2902a.instrument.ch[2].off_mode == "HIZ"
    await transport.close()


async def test_b2901a_has_no_channel_2(served_b2901a: Served) -> None:
    driver = KeysightB2900(transport_for(served_b2901a), channel=2)
    with pytest.raises(DriverError, match="no channel 2"):
        await driver.connect()
    await driver.close()


async def test_b2900_no_data_reads_as_nan(b2900: KeysightB2900) -> None:
    await b2900.configure_current_source(voltage_limit_v=4.0)
    await b2900.transport.write(':SENS:FUNC:OFF "CURR"', idempotent=True)
    block = await b2900.read_block()
    assert math.isnan(block.current_a[0])
    assert block.voltage_v[0] == pytest.approx(EMF_V)
