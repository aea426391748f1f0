"""Behaviour of the emulated 2450 and B2900 beyond the basics: output-off modes, ranges and
overflow, noise against NPLC, background acquisitions, buffer elements, reset state."""

from __future__ import annotations

import math

import numpy as np
import pytest

from licycler.sim_instruments.clock import VirtualClock
from licycler.sim_instruments.dummy_cell import DummyCell
from licycler.sim_instruments.keithley2450 import Keithley2450
from licycler.sim_instruments.keysight_b2900 import KeysightB2900

EMF_V, R_OHM = 3.0, 100.0


def k2450(noise: bool = False) -> tuple[Keithley2450, DummyCell, VirtualClock]:
    cell, clock = DummyCell(EMF_V, R_OHM), VirtualClock()
    return Keithley2450(cell, clock, noise=noise, epoch_s=1.7e9), cell, clock


def b2900(model: str = "B2902A") -> tuple[KeysightB2900, DummyCell, VirtualClock]:
    cell, clock = DummyCell(EMF_V, R_OHM), VirtualClock()
    return KeysightB2900(cell, clock, model=model, noise=False), cell, clock


def terminals(cell: DummyCell, clock: VirtualClock) -> tuple[float, float]:
    v, i = cell.sample(np.array([clock.now()]))
    return float(v[0]), float(i[0])


@pytest.mark.parametrize(("smod", "expected_v"), [("HIMP", EMF_V), ("GUAR", EMF_V), ("NORM", 0.0),
                                                  ("ZERO", 0.0)])
async def test_2450_output_off_states(smod: str, expected_v: float) -> None:
    emu, cell, clock = k2450()
    await emu.execute_line(f":SOUR:FUNC CURR;:SOUR:CURR 1e-3;:OUTP:CURR:SMOD {smod};:OUTP ON")
    assert terminals(cell, clock) == (pytest.approx(EMF_V + R_OHM * 1e-3), pytest.approx(1e-3))
    await emu.execute_line(":OUTP OFF")
    v, i = terminals(cell, clock)
    assert v == pytest.approx(expected_v)
    assert i == pytest.approx((expected_v - EMF_V) / R_OHM)


@pytest.mark.parametrize(("mode", "expected_v"), [("HIZ", EMF_V), ("NORM", 0.0), ("ZERO", 0.0)])
async def test_b2900_output_off_modes(mode: str, expected_v: float) -> None:
    emu, cell, clock = b2900()
    await emu.execute_line(f":SOUR:FUNC:MODE CURR;:SENS:VOLT:PROT 10;:OUTP:OFF:MODE {mode};:OUTP ON")
    await emu.execute_line(":OUTP OFF")
    assert terminals(cell, clock)[0] == pytest.approx(expected_v)


async def test_2450_reset_state_is_the_manuals() -> None:
    emu, _, _ = k2450()
    await emu.execute_line(":SOUR:FUNC CURR;:SOUR:CURR:VLIM 5;:OUTP ON;:COUN 7")
    await emu.execute_line("*RST")
    replies = await emu.execute_line(
        ":SOUR:FUNC?;:SOUR:CURR:VLIM?;:OUTP?;:OUTP:CURR:SMOD?;:SENS:FUNC?;:COUN?;:SENS:VOLT:NPLC?"
    )
    assert replies == 'VOLT;2.100000E+01;0;NORM;"CURR:DC";1;1.000000E+00'


async def test_b2900_reset_state_is_the_manuals() -> None:
    emu, _, _ = b2900()
    replies = await emu.execute_line(
        ":SOUR:FUNC:MODE?;:SENS:VOLT:PROT?;:OUTP?;:OUTP:OFF:MODE?;:OUTP:ON:AUTO?;:FORM:ELEM:SENS?"
    )
    assert replies == "VOLT;+2.000000E+00;0;NORM;1;VOLT,CURR,RES,TIME,STAT,SOUR"


async def test_fixed_range_overflows_and_autorange_does_not() -> None:
    emu, _, _ = k2450()
    await emu.execute_line(':SOUR:FUNC CURR;:SOUR:CURR 1e-3;:SENS:FUNC "VOLT";:OUTP ON')
    await emu.execute_line(":SENS:VOLT:RANG 2")
    assert await emu.execute_line(":SENS:VOLT:RANG?") == "2.000000E+00"
    assert await emu.execute_line(":READ?") == "9.9E+37"
    await emu.execute_line(":SENS:VOLT:RANG:AUTO ON")
    assert float(await emu.execute_line(":READ?") or "nan") == pytest.approx(3.1)


async def test_noise_falls_as_one_over_sqrt_nplc() -> None:
    emu, _, _ = k2450(noise=True)
    await emu.execute_line(':SOUR:FUNC CURR;:SOUR:CURR 1e-3;:SENS:FUNC "VOLT";:OUTP ON')
    await emu.execute_line(":SENS:VOLT:RANG 20")
    spreads = {}
    for nplc in (0.01, 1.0):
        await emu.execute_line(f":SENS:VOLT:NPLC {nplc};:COUN 400;:TRAC:CLE")
        await emu.execute_line(":READ?")
        values = emu.buffers["defbuffer1"].reading
        assert np.mean(values) == pytest.approx(3.1, abs=1e-4)
        spreads[nplc] = float(np.std(values))
    assert spreads[0.01] / spreads[1.0] == pytest.approx(10.0, rel=0.2)


async def test_2450_background_acquisition_follows_the_clock() -> None:
    emu, _, clock = k2450()
    await emu.execute_line(':SOUR:FUNC CURR;:SOUR:CURR 1e-3;:SENS:FUNC "VOLT";:OUTP ON')
    await emu.execute_line(":SENS:VOLT:NPLC 6;:COUN 10;:INIT")  # 0.1 s + overhead per reading
    period = 6 / 60 + emu.smu.reading_overhead_s
    clock.advance_by(3.5 * period)
    assert await emu.execute_line(":TRAC:ACT?") == "3"
    await emu.execute_line(":ABOR")
    clock.advance_by(10 * period)
    assert await emu.execute_line(":TRAC:ACT?") == "3"
    await emu.execute_line(":INIT;*WAI")
    assert await emu.execute_line(":TRAC:ACT?") == "13"
    assert clock.now() == pytest.approx(23.5 * period)  # *WAI waited for the tenth reading


async def test_2450_buffer_elements() -> None:
    emu, _, _ = k2450()
    await emu.execute_line(':SOUR:FUNC CURR;:SOUR:CURR 1e-3;:SENS:FUNC "VOLT";:OUTP ON;:COUN 2')
    await emu.execute_line(':TRAC:MAKE "mine",10')
    await emu.execute_line(':TRAC:TRIG "mine"')
    reply = await emu.execute_line(':TRAC:DATA? 1,2,"mine",READ,REL,SOUR,SEC,FRAC,UNIT,SOURUNIT,STAT')
    assert reply is not None
    first, second = reply.split(",")[:8], reply.split(",")[8:]
    assert float(first[0]) == pytest.approx(3.1)
    assert float(first[1]) == 0.0
    assert float(second[1]) == pytest.approx(1 / 60 + emu.smu.reading_overhead_s)
    assert float(first[2]) == pytest.approx(1e-3)
    assert int(first[3]) == 1_700_000_000
    assert 0 <= float(first[4]) < 1
    assert first[5:] == ["Volt DC", "Amp DC", "0"]
    assert second[7] == "0"
    assert await emu.execute_line(':TRAC:ACT? "mine";:TRAC:ACT? "defbuffer1"') == "2;0"
    await emu.execute_line(':TRAC:DATA? 1,3,"mine"')
    await emu.execute_line(':TRAC:ACT? "nobuffer"')
    assert [await emu.execute_line(":SYST:ERR:CODE?") for _ in range(3)] == ["-222", "-224", "0"]


async def test_b2900_trigger_count_and_arrays() -> None:
    emu, _, _ = b2900()
    await emu.execute_line(":SOUR:FUNC:MODE CURR;:SOUR:CURR 1e-3;:SENS:VOLT:PROT 10")
    await emu.execute_line(":FORM:ELEM:SENS VOLT;:TRIG:COUN 4")
    values = (await emu.execute_line(":READ:ARR? (@1)") or "").split(",")
    assert [float(v) for v in values] == pytest.approx([3.1] * 4)
    assert float(await emu.execute_line(":FETC? (@1)") or "nan") == pytest.approx(3.1)
    assert len((await emu.execute_line(":FETC:ARR:VOLT? (@1)") or "").split(",")) == 4
    assert await emu.execute_line(":TRIG:COUN?") == "+4"


async def test_b2901a_has_one_channel() -> None:
    emu, _, _ = b2900("B2901A")
    await emu.execute_line(":SOUR2:CURR 1e-3;:MEAS? (@2)")
    assert await emu.execute_line(":SYST:ERR?;:SYST:ERR?") == '-114,"Header suffix out of range";+0,"No error"'


async def test_nan_is_printed_as_no_data() -> None:
    emu, _, _ = b2900()
    assert emu.format_number(math.nan) == "+9.910000E+37"
    assert emu.format_number(math.inf) == "+9.900000E+37"
