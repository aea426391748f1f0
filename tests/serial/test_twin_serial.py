"""The serial instruments on the digital twin: what the drivers read is what the twin says."""

from __future__ import annotations

import numpy as np
import pytest

from licycler.drivers.alicat import AlicatPressureController
from licycler.drivers.emstat4 import EmStat4Channel
from licycler.drivers.mark10 import Mark10ForceGauge
from licycler.sim_instruments.alicat import AlicatEmulation
from licycler.sim_instruments.clock import VirtualClock
from licycler.sim_instruments.emstat4 import EmStat4Emulation
from licycler.sim_instruments.mark10 import Mark10Emulation
from licycler.sim_instruments.serial_server import PtySerialServer
from licycler.sim_instruments.twin import Twin, TwinConfig

PSI_PA = 6894.757293168


async def test_emstat4_galvanostatic_on_the_twin() -> None:
    config = TwinConfig(seed=3)
    twin, reference = Twin(config), Twin(config)
    clock = VirtualClock(auto_advance=False)
    current_a = 1e-3  # 0.5 mA/cm^2 on the default 2 cm^2
    n = 60
    async with (
        PtySerialServer(EmStat4Emulation(twin.cell, clock)) as server,
        EmStat4Channel(server.resource, timeout_s=0.3, sample_interval_s=1.0) as channel,
    ):
        await channel.configure_current_source(voltage_limit_v=2.0, nplc=1.0)
        await channel.set_current(current_a)
        await channel.output_on()
        clock.advance_by(float(n))  # a minute of plating, computed as one block
        readings = [await channel.read_block()]
        while sum(len(b) for b in readings) < n:
            readings.append(await channel.read_block())
        clock.advance_by(1.0)  # one more packet frees the port for the abort
        await channel.safe_state()
    voltage = np.concatenate([b.voltage_v for b in readings])[:n]
    current = np.concatenate([b.current_a for b in readings])[:n]
    # the same twin driven the same way, read directly
    reference.cell.source_current(0.0, 0.0)  # cell_on with set_i 0
    reference.cell.source_current(current_a, 0.0)  # meas_loop_cp
    v_ref, i_ref = reference.cell.sample(np.arange(1, n + 1, dtype=np.float64))
    np.testing.assert_allclose(current, i_ref, rtol=4e-6)
    np.testing.assert_allclose(voltage, v_ref, rtol=4e-6, atol=1e-12)
    assert np.all(np.diff(voltage) != 0)  # the voltage moves as the twin's polarisation builds up


async def test_pressure_instruments_on_the_twin_rig() -> None:
    twin = Twin(TwinConfig(seed=1))
    clock = VirtualClock(auto_advance=False)
    rig = twin.rig
    async with (
        PtySerialServer(Mark10Emulation(rig, clock)) as gauge_server,
        PtySerialServer(AlicatEmulation(rig, clock, display_unit="psi", full_scale=500.0)) as pc_server,
        Mark10ForceGauge(gauge_server.resource, area_m2=rig.area_m2, timeout_s=0.5) as gauge,
        AlicatPressureController(pc_server.resource, display_unit="psi", full_scale=500.0, timeout_s=0.5) as pc,
    ):
        resolution_pa = 0.01 / rig.area_m2  # the gauge shows 0.01 N
        assert await gauge.read_pressure_pa() == pytest.approx(rig.pressure_pa(0.0), abs=resolution_pa / 2)
        await pc.set_pressure_setpoint_pa(2.0e6)
        for t_s in (2.0, 5.0, 50.0):  # the rig's controller follows the setpoint
            clock.advance_to(t_s)
            expected = rig.pressure_pa(t_s)
            assert await gauge.read_pressure_pa() == pytest.approx(expected, abs=resolution_pa / 2)
            status = await pc.status()
            assert status.pressure_pa == pytest.approx(expected, abs=0.005 * PSI_PA)
            assert status.setpoint_pa == pytest.approx(2.0e6, abs=0.005 * PSI_PA)
        assert expected == pytest.approx(2.0e6, rel=1e-2)  # settled near the setpoint (creep aside)
