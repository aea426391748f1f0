"""A standard SCPI client (a raw TCP socket, nothing of licycler) drives the emulated 2450 and
B2900 with the manuals' commands in any legal spelling, and sees the physics.

Expected values are closed forms: Ohm's law for the dummy cell; for the capacitor cell
(EMF = v0 + q/C in series with R) the voltage under current I is v0 + I t / C + I R, so the limit
V_lim is reached at t = (V_lim - v0 - I R) C / I; held at V_lim the current then decays as
I exp(-(t - t_trip) / RC).
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator

import pytest

from licycler.sim_instruments.clock import VirtualClock
from licycler.sim_instruments.dummy_cell import DummyCell
from licycler.sim_instruments.keithley2450 import Keithley2450
from licycler.sim_instruments.keysight_b2900 import KeysightB2900
from licycler.sim_instruments.scpi.instrument import ScpiInstrument
from licycler.sim_instruments.scpi.server import ScpiTcpServer
from tests.sim_scpi.conftest import CapacitorCell, RawClient


async def serve(instrument: ScpiInstrument) -> AsyncIterator[RawClient]:
    async with ScpiTcpServer(instrument) as server:
        client = RawClient(server.port)
        try:
            yield client
        finally:
            client.close()


@pytest.fixture
async def k2450_dummy() -> AsyncIterator[RawClient]:
    async for client in serve(Keithley2450(DummyCell(3.0, 100.0), VirtualClock(), noise=False)):
        yield client


@pytest.fixture
async def b2902a_dummy() -> AsyncIterator[RawClient]:
    emulation = KeysightB2900(DummyCell(3.0, 100.0), VirtualClock(), model="B2902A", noise=False)
    async for client in serve(emulation):
        yield client


@pytest.mark.parametrize(
    "setup",
    [
        [":SOUR:FUNC CURR", ":SOUR:CURR 0.01", ":SOUR:CURR:VLIM 21", ':SENS:FUNC "VOLT"'],
        [":SOURCE:FUNCTION:MODE CURRENT", ":SOURCE1:CURRENT:LEVEL:IMMEDIATE:AMPLITUDE 10mA",
         ":SOURCE:CURRENT:VLIMIT:LEVEL 21", ":SENSE1:FUNCTION:ON 'VOLTAGE:DC'"],
        ["sour:func curr;curr 1e-2;curr:vlim 21", "sens:func 'volt'"],
        ["Sour:Func Curr;:Sour:Curr 10 MA;Curr:VLim 21V;:Func \"volt\""],
    ],
)
async def test_2450_manual_commands_in_any_spelling(
    k2450_dummy: RawClient, setup: list[str]
) -> None:
    c = k2450_dummy
    assert (await c.ask("*IDN?")).startswith("KEITHLEY INSTRUMENTS,MODEL 2450,")
    for line in setup:
        await c.send(line)
    assert await c.ask(":SOUR:FUNC?") == "CURR"
    assert await c.ask(":SENS:FUNC?") == '"VOLT:DC"'
    assert float(await c.ask(":SOUR:CURR?")) == pytest.approx(0.01)
    await c.send(":OUTP ON")
    assert float(await c.ask(":READ?")) == pytest.approx(3.0 + 100.0 * 0.01)
    assert await c.ask(":SYST:ERR?") == '0,"No error;0;0 0"'


async def test_2450_compliance_and_buffer_over_raw_socket(k2450_dummy: RawClient) -> None:
    c = k2450_dummy
    await c.send('*RST;:SOUR:FUNC CURR;:SOUR:CURR:VLIM 3.5;:SENS:FUNC "VOLT";:SOUR:CURR 0.01')
    await c.send(":OUTP:CURR:SMOD HIMP;:OUTP ON")
    reading, source = (float(x) for x in (await c.ask(':READ? "defbuffer1",READ,SOUR')).split(","))
    assert reading == pytest.approx(3.5)
    assert source == pytest.approx((3.5 - 3.0) / 100.0)
    assert await c.ask(":SOUR:CURR:VLIM:TRIP?") == "1"
    await c.send(":SOUR:CURR 0.001")
    assert float(await c.ask(":MEAS:VOLT?")) == pytest.approx(3.1)
    assert await c.ask(":SOUR:CURR:VLIM:TRIP?") == "0"
    assert await c.ask(':TRAC:ACT? "defbuffer1"') == "2"
    data = [float(x) for x in (await c.ask(':TRAC:DATA? 1,2,"defbuffer1",READ,REL')).split(",")]
    assert data[0] == pytest.approx(3.5)
    assert data[1] == 0.0
    assert data[2] == pytest.approx(3.1)
    assert data[3] > 0.0
    await c.send(":COUNT 4;:INIT;*WAI")
    assert await c.ask(":TRAC:ACT?") == "6"
    await c.send(':TRAC:CLE "defbuffer1"')
    assert await c.ask(":TRAC:ACT?") == "0"
    await c.send(":OUTP OFF")
    assert await c.ask(":OUTP?;:OUTP:CURR:SMOD?") == "0;HIMP"


async def test_b2900_manual_commands_in_any_spelling(b2902a_dummy: RawClient) -> None:
    c = b2902a_dummy
    assert (await c.ask("*idn?")).startswith("Keysight Technologies,B2902A,")
    await c.send(":SOURce1:FUNCtion:MODE CURRent;:SOUR1:CURR 1E-3;:SENSe1:VOLTage:PROTection 5")
    await c.send("sour2:func:mode curr;:sour2:curr 1.5mA")
    await c.send(":FORM:ELEM:SENS CURR,SOUR")
    values = [float(x) for x in (await c.ask(":MEAS? (@1,2)")).split(",")]
    assert values == pytest.approx([1e-3, 1e-3, 1.5e-3, 1.5e-3])
    assert await c.ask(":OUTP1?;:OUTP2?") == "1;1"  # :OUTP:ON:AUTO is on after *RST
    assert [float(x) for x in (await c.ask(":MEAS:CURR? (@2,1)")).split(",")] == pytest.approx(
        [1.5e-3, 1e-3]
    )
    await c.send(":FORM:ELEM:SENS SOUR,VOLT,TIME")  # order is always VOLT,...,SOUR
    volt, time_s, source = (float(x) for x in (await c.ask(":MEAS? (@1)")).split(","))
    assert volt == pytest.approx(3.1)
    assert source == pytest.approx(1e-3)
    assert time_s > 0
    assert await c.ask(":SENS:VOLT:PROT:TRIP?") == "0"
    await c.send(":SENS:VOLT:PROT 3.05")
    assert float(await c.ask(":MEAS:VOLT? (@1)")) == pytest.approx(3.05)
    assert await c.ask(":SENS1:VOLT:PROT:TRIP?") == "1"
    assert await c.ask(":SYST:ERR?") == '+0,"No error"'
    await c.send(':SENS:FUNC:OFF "CURR"')
    assert await c.ask(":MEAS:CURR? (@1)") == "+5.000000E-04"  # enabled again; (3.05-3)/100
    await c.send(":OUTP:OFF:MODE HIZ;:OUTP OFF;:OUTP:ON:AUTO 0")
    await c.send(":FORM:ELEM:SENS VOLT,CURR")
    assert await c.ask(":MEAS? (@1)") == "+3.000000E+00,+0.000000E+00"
    await c.send(":SOUR:CURR 5")
    assert await c.ask(":SYST:ERR?") == '-222,"Data out of range"'


async def test_voltage_moves_and_compliance_trips_where_it_should() -> None:
    v0, cap, r, i_set, vlim = 3.0, 1.0, 10.0, 1e-3, 3.11
    t_trip = (vlim - v0 - i_set * r) * cap / i_set  # 100 s
    cell = CapacitorCell(v0, cap, r)
    clock = VirtualClock()
    async for c in serve(Keithley2450(cell, clock, noise=False)):
        await c.send(f':SOUR:FUNC CURR;:SOUR:CURR {i_set};:SOUR:CURR:VLIM {vlim};:SENS:FUNC "VOLT"')
        assert await c.ask(":SENS:VOLT:NPLC 0.01;:OUTP ON;*OPC?") == "1"  # processed by now
        clock.advance_to(50.0)
        t = clock.now()
        assert float(await c.ask(":READ?")) == pytest.approx(v0 + i_set * r + i_set * t / cap,
                                                             abs=2e-6)
        assert await c.ask(":SOUR:CURR:VLIM:TRIP?") == "0"
        clock.advance_to(t_trip - 0.5)
        assert await c.ask(":SOUR:CURR:VLIM:TRIP?") == "0"
        clock.advance_to(t_trip + 0.5)
        assert await c.ask(":SOUR:CURR:VLIM:TRIP?") == "1"
        trip = next(t for mode, level, t in cell.history if mode == "voltage" and level == vlim)
        assert trip == pytest.approx(t_trip, abs=0.02)  # within two control steps
        clock.advance_to(t_trip + 20.0)
        await c.send(":SOUR:CURR:READ:BACK ON")
        volt, current = (float(x) for x in (await c.ask(':READ? "defbuffer1",READ,SOUR')).split(","))
        assert volt == pytest.approx(vlim)
        elapsed = clock.now() - trip
        assert current == pytest.approx(i_set * math.exp(-elapsed / (r * cap)), rel=1e-3)


async def test_b2900_voltage_moves_with_charge() -> None:
    cell = CapacitorCell(1.0, 2.0, 5.0)
    clock = VirtualClock()
    async for c in serve(KeysightB2900(cell, clock, model="B2901A", noise=False)):
        await c.send(":SOUR:FUNC:MODE CURR;:SOUR:CURR -2E-3;:SENS:VOLT:PROT 10;:OUTP ON")
        assert await c.ask(":FORM:ELEM:SENS VOLT,TIME;*OPC?") == "1"
        readings = []
        for t in (0.0, 100.0, 200.0):
            clock.advance_to(t)
            volt, time_s = (float(x) for x in (await c.ask(":MEAS? (@1)")).split(","))
            readings.append((volt, time_s))
        for volt, time_s in readings:
            assert volt == pytest.approx(1.0 - 2e-3 * 5.0 - 2e-3 * time_s / 2.0, abs=1e-6)
