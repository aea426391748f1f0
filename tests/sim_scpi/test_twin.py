"""The emulated SMUs in front of the digital twin: at constant current the voltage read over a raw
socket is the twin's own voltage at the reading times, and the compliance trips where the twin's
voltage first passes the limit (found on an identical twin driven directly)."""

from __future__ import annotations

import numpy as np
import pytest

from licycler.sim_instruments.clock import VirtualClock
from licycler.sim_instruments.keithley2450 import Keithley2450
from licycler.sim_instruments.keysight_b2900 import KeysightB2900
from licycler.sim_instruments.scenario import build_twin
from licycler.sim_instruments.scpi.server import ScpiTcpServer
from tests.sim_scpi.conftest import RawClient

CURRENT_A = -10e-3  # about 5 mA/cm^2 plating on the working electrode of the default cell


async def test_2450_reads_the_twins_voltage() -> None:
    clock = VirtualClock()
    twin = build_twin("default", clock)
    emulation = Keithley2450(twin.cell, clock, noise=False)
    async with ScpiTcpServer(emulation) as server:
        c = RawClient(server.port)
        try:
            await c.send(f':SOUR:FUNC CURR;:SOUR:CURR {CURRENT_A};:SOUR:CURR:VLIM 2;:SENS:FUNC "VOLT"')
            assert await c.ask(":SENS:VOLT:NPLC 1;:OUTP ON;*OPC?") == "1"
            readings = []
            for t in (30.0, 150.0, 300.0):
                clock.advance_to(t)
                readings.append(float(await c.ask(":READ?")))
        finally:
            c.close()
    times = emulation.buffers["defbuffer1"].time_s
    reference = build_twin("default")
    reference.cell.source_current(CURRENT_A, 0.0)
    v_ref, i_ref = reference.cell.sample(times)
    np.testing.assert_allclose(readings, v_ref, atol=2e-6)
    np.testing.assert_allclose(i_ref, CURRENT_A)
    assert readings[-1] < readings[0] < 0  # polarisation grows as the SEI thickens


async def test_compliance_trips_where_the_twin_passes_the_limit() -> None:
    limit_v = 0.1445
    reference = build_twin("default")
    reference.cell.source_current(CURRENT_A, 0.0)
    grid = np.arange(0.01, 900.0, 0.01)
    v_ref, _ = reference.cell.sample(grid, stop_below_v=-limit_v)
    assert v_ref[-1] < -limit_v, "the scenario must reach the limit within the grid"
    t_ref = float(grid[v_ref.shape[0] - 1])

    clock = VirtualClock()
    twin = build_twin("default", clock)
    emulation = KeysightB2900(twin.cell, clock, model="B2901A", noise=False)
    async with ScpiTcpServer(emulation) as server:
        c = RawClient(server.port)
        try:
            await c.send(f":SOUR:FUNC:MODE CURR;:SOUR:CURR {CURRENT_A};:SENS:VOLT:PROT {limit_v}")
            assert await c.ask(":FORM:ELEM:SENS VOLT,CURR;:OUTP ON;*OPC?") == "1"
            clock.advance_to(t_ref - 0.05)
            assert await c.ask(":SENS:VOLT:PROT:TRIP?") == "0"
            clock.advance_to(t_ref + 0.05)
            assert await c.ask(":SENS:VOLT:PROT:TRIP?") == "1"
            volt, current = (float(x) for x in (await c.ask(":MEAS? (@1)")).split(","))
        finally:
            c.close()
    assert volt == pytest.approx(-limit_v)
    assert CURRENT_A < current < 0  # the limit holds the voltage: less current flows
