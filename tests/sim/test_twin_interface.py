"""The twin as instruments see it: the CellTerminals / PressureRigModel contract, clocks, seeds, stops."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from licycler.sim_instruments.clock import VirtualClock
from licycler.sim_instruments.interfaces import CellTerminals, PressureRigModel
from licycler.sim_instruments.scenario import build_twin, load_scenario
from licycler.sim_instruments.twin import (
    CellConfig,
    EfficiencyConfig,
    FaultConfig,
    MeasurementConfig,
    Twin,
    TwinCell,
    TwinConfig,
    mah_cm2,
)

from .drive import hold, steady_li_li_voltage

MA_CM2 = 10.0


def test_the_twin_implements_the_protocols() -> None:
    twin = Twin()
    assert isinstance(twin.cell, CellTerminals)
    assert isinstance(twin.rig, PressureRigModel)
    assert twin.rig.area_m2 == twin.cell.area_m2


def test_time_may_not_go_backwards() -> None:
    cell = TwinCell(TwinConfig())
    cell.sample(np.array([10.0]))
    with pytest.raises(ValueError, match="backwards"):
        cell.source_current(1e-3, 5.0)
    with pytest.raises(ValueError, match="earlier"):
        cell.sample(np.array([9.0]))
    with pytest.raises(ValueError, match="non-decreasing"):
        cell.sample(np.array([12.0, 11.0]))


def test_controls_take_effect_at_their_time_inside_a_sampled_block() -> None:
    cell = TwinCell(TwinConfig())
    i = 1.0 * MA_CM2 * cell.area_m2
    cell.source_current(-i, 10.0)
    cell.source_current(i, 20.0)
    cell.open_circuit(30.0)
    times = np.arange(0.0, 40.0, 1.0)
    v, cur = cell.sample(times)
    assert np.all(cur[times < 10] == 0.0)
    assert np.all(cur[(times >= 10) & (times < 20)] == -i)
    assert np.all(cur[(times >= 20) & (times < 30)] == i)
    assert np.all(cur[times >= 30] == 0.0)
    assert v[15] < 0 < v[25]


def test_results_do_not_depend_on_how_the_samples_are_blocked() -> None:
    config = load_scenario("soft-short")
    times = np.arange(1.0, 4000.0, 2.0)

    def run(block: int) -> tuple[np.ndarray, list[tuple[float, str]]]:
        cell = TwinCell(dataclasses.replace(config, defects=dataclasses.replace(config.defects, short_noise=0.0)))
        cell.source_current(-2.0 * MA_CM2 * cell.area_m2, 0.0)
        out = [cell.sample(times[k : k + block])[0] for k in range(0, times.size, block)]
        return np.concatenate(out), [(round(e.t_s, 6), e.kind) for e in cell.events]

    v_whole, ev_whole = run(times.size)
    v_parts, ev_parts = run(7)
    assert ev_whole == ev_parts
    assert [k for _, k in ev_whole] == ["dendritic", "soft_short"]
    # the shorted part solves for the cell current on a chunk grid: same to a fraction of a uV
    assert np.max(np.abs(v_whole - v_parts)) < 1e-6


def test_the_seed_makes_runs_reproducible() -> None:
    def ces(seed: int) -> list[float]:
        cell = TwinCell(TwinConfig(cell=CellConfig(efficiency=EfficiencyConfig(noise=0.01)), seed=seed))
        i = 1.0 * MA_CM2 * cell.area_m2
        out = []
        for k in range(3):
            hold(cell, -i, 7200.0 * k, 3600.0, 600.0)
            out.append(cell.state().dead_lithium_c_m2[0])
            hold(cell, i, 7200.0 * k + 3600.0, 3600.0, 600.0)
        return out

    assert ces(3) == ces(3)
    assert ces(3) != ces(4)


def test_source_voltage_solves_for_the_current() -> None:
    cell = TwinCell(TwinConfig())
    j = 1.0 * MA_CM2
    r_sei = 1e-3  # the default SEI, grown with the charge cycled (both electrodes)
    growth = cell.config.cell.sei.growth_ohm_m2_per_c_m2
    v_target = steady_li_li_voltage(j, r_sei + growth * j * 600.0)
    cell.source_voltage(v_target, 0.0)
    times = np.linspace(1.0, 600.0, 600)
    v, i = cell.sample(times)
    assert np.all(v == v_target)
    # in the steady state the current is the one that gives that voltage by the reference relations
    assert i[-1] / cell.area_m2 == pytest.approx(j, rel=1e-4)
    assert np.all(np.diff(i[5:]) < 0)  # the concentration polarisation builds up: less current


def test_a_forced_current_past_the_lithium_and_the_compliance_that_clamps_it() -> None:
    config = TwinConfig(cell=CellConfig(kind="li-cu", working_lithium_c_m2=0.0))
    cell = TwinCell(config)
    i = 1.0 * MA_CM2 * cell.area_m2
    hold(cell, -i, 0.0, 360.0, 10.0)  # 0.1 mAh/cm^2 on the copper
    t_stop = 360.0
    cell.source_current(i, t_stop)  # strip it again, and on past the lithium
    times = t_stop + np.arange(1.0, 1000.0)
    v, _cur = cell.sample(times, stop_above_v=5.0)
    # the cell stops right after the first sample beyond the bound (what a compliance limit sees)
    assert v[-1] > 5.0
    assert np.all(v[:-1] <= 5.0)
    assert cell.t_s == times[v.size - 1]
    t = float(times[v.size - 1])
    cell.source_voltage(5.0, t)  # the source now holds its compliance voltage
    v2, i2 = cell.sample(t + np.arange(1.0, 30.0))
    assert np.all(v2 == 5.0)
    assert np.all(np.abs(i2) < 1e-3 * i)  # nothing left to strip: the current collapses
    assert [e.kind for e in cell.events].count("lithium_exhausted") == 1  # however long it is held


def test_measure_adds_the_configured_noise_and_resolution() -> None:
    mc = MeasurementConfig(voltage_noise_v=1e-4, voltage_resolution_v=1e-5)
    cell = TwinCell(TwinConfig(measurement=mc, seed=2))
    cell.source_current(0.0, 0.0)
    v, _ = cell.measure(np.arange(1.0, 5001.0))
    assert np.std(v) == pytest.approx(1e-4, rel=0.05)
    assert np.allclose(np.round(v / 1e-5) * 1e-5, v, atol=1e-12)


def test_timed_faults_apply_at_their_time() -> None:
    faults = (
        FaultConfig(100.0, "contact_loss", {"fraction": 0.5}),
        FaultConfig(200.0, "temperature", {"to": 318.15}),
        FaultConfig(300.0, "pressure_loss", {"to": 0.0}),
        FaultConfig(400.0, "soft_short", {"resistance": 50.0}),
    )
    cell = TwinCell(TwinConfig(faults=faults))
    i = 1.0 * MA_CM2 * cell.area_m2
    _times, v, _ = hold(cell, -i, 0.0, 500.0, 1.0)
    kinds = [(e.t_s, e.kind) for e in cell.events]
    assert kinds == [(100.0, "contact_loss"), (200.0, "temperature"), (300.0, "pressure_loss"), (400.0, "soft_short")]
    assert abs(v[150]) > 1.5 * abs(v[50])  # half the area: twice the local current density
    assert cell.rig.pressure_pa(350.0) == 0.0
    assert cell.state().temperature_k == 318.15
    assert abs(v[-1]) < abs(v[390])  # the short bypasses part of the current


async def test_driven_in_process_on_a_virtual_clock() -> None:
    clock = VirtualClock()
    twin = build_twin("default", clock)
    cell = twin.cell
    i = 1.0 * MA_CM2 * cell.area_m2
    cell.source_current(-i, clock.now())
    readings = []
    for _ in range(10):
        await clock.sleep_until(clock.now() + 360.0)
        v, _ = cell.sample(np.array([clock.now()]))
        readings.append(float(v[0]))
    assert clock.now() == pytest.approx(3600.0)
    assert cell.state().active_lithium_c_m2[0] == pytest.approx(
        mah_cm2(20) + 0.99 * i / cell.area_m2 * 3600.0, rel=1e-3
    )
    assert all(-0.1 < r < -0.01 for r in readings)
