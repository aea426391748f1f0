"""Voids, the pressure rig, creep, dendrites and shorts of the twin, against the reference relations."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from licycler.physics import creep_number, creep_strain_rate, deposition_velocity, lithium_thickness, void_time
from licycler.sim_instruments.scenario import load_scenario
from licycler.sim_instruments.twin import (
    CellConfig,
    DefectConfig,
    FaultConfig,
    PressureRig,
    RigConfig,
    SeparatorConfig,
    TwinCell,
    TwinConfig,
    mah_cm2,
)

from .drive import hold, steady_li_li_voltage, symmetric_cycling

MA_CM2 = 10.0


@pytest.mark.parametrize(
    ("p0", "sigma_c", "k_n", "j_ma_cm2", "void_alpha"),
    [(1e6, 1e5, 1e11, 1.0, 1.0), (2e6, 5e5, 5e11, 2.0, 3.0), (0.5e6, 0.0, 2e10, 0.5, 2.0)],
)
def test_a_void_opens_at_the_reference_time_under_stripping(
    p0: float, sigma_c: float, k_n: float, j_ma_cm2: float, void_alpha: float
) -> None:
    rig = RigConfig(setpoint_pa=p0, adhesion_strength_pa=sigma_c, contact_stiffness_pa_m=k_n, creep_prefactor=0.0)
    config = TwinConfig(
        rig=rig,
        defects=DefectConfig(void_alpha=void_alpha, void_area_fraction=0.25),
        cell=CellConfig(working_lithium_c_m2=mah_cm2(100), counter_lithium_c_m2=mah_cm2(100)),
    )
    cell = TwinCell(config)
    j = j_ma_cm2 * MA_CM2
    t_f = float(void_time(p0, sigma_c, k_n, void_alpha * j))  # i_max = void_alpha x j
    times, v, _ = hold(cell, j * cell.area_m2, 0.0, 1.5 * t_f, t_f / 2000.0)  # strip the working side
    jump = int(np.argmax(np.diff(v))) + 1  # contact loss: a step up of the polarisation
    assert float(times[jump]) == pytest.approx(t_f, rel=0.05)
    assert v[jump] - v[jump - 1] > 10.0 * abs(v[jump - 1] - v[jump - 2])
    voids = [e for e in cell.events if e.kind == "void"]
    assert voids
    assert voids[0].electrode == "working"
    assert voids[0].t_s == pytest.approx(t_f, rel=0.05)
    assert cell.state().contact_fraction < 1.0


def test_contact_loss_raises_the_local_current_and_plating_heals_it() -> None:
    config = TwinConfig(
        rig=RigConfig(setpoint_pa=1e6, adhesion_strength_pa=0.0, contact_stiffness_pa_m=1e11, creep_prefactor=0.0),
        defects=DefectConfig(void_area_fraction=0.5, void_heal_charge_c_m2=mah_cm2(0.2)),
    )
    cell = TwinCell(config)
    area, j = cell.area_m2, 1.0 * MA_CM2
    t_f = float(void_time(1e6, 0.0, 1e11, j))
    times, v, _ = hold(cell, j * area, 0.0, 1.2 * t_f, 10.0)
    assert cell.state().contact_fraction == pytest.approx(0.5)
    # half the area carries the current: the local current density doubles
    growth = config.cell.sei.growth_ohm_m2_per_c_m2
    r_sei = config.cell.sei.resistance_ohm_m2 + growth * j * float(times[-1])
    assert v[-1] == pytest.approx(steady_li_li_voltage(2.0 * j, r_sei), rel=1e-4)
    assert v[0] == pytest.approx(
        steady_li_li_voltage(j, config.cell.sei.resistance_ohm_m2 + growth * j * 10.0), rel=1e-4
    )
    hold(cell, -j * area, 1.2 * t_f, mah_cm2(0.25) / j, 10.0)  # plate it back
    assert cell.state().contact_fraction == 1.0
    assert [e.kind for e in cell.events if e.kind in ("void", "contact_restored")] == ["void", "contact_restored"]


def test_fixed_gap_rig_relaxes_by_power_law_creep() -> None:
    a, n, k, h, p0 = 2.5e-46, 6.6, 1e11, 200e-6, 2e6
    rig = PressureRig(
        RigConfig(control="fixed-gap", setpoint_pa=p0, stack_stiffness_pa_m=k, creep_prefactor=a, creep_exponent=n),
        2e-4,
    )
    rig.lithium_thickness_m = h
    times = np.array([600.0, 3600.0, 86400.0, 7 * 86400.0])
    p = rig.pressure_at(times)
    # dp/dt = -k h A p^n  =>  p(t) = [p0^(1-n) + (n-1) k h A t]^(1/(1-n))
    expected = (p0 ** (1 - n) + (n - 1) * k * h * a * times) ** (1 / (1 - n))
    assert np.allclose(p, expected, rtol=0.01)
    # the initial relaxation rate is the creep strain rate of the lithium times h k
    fresh = PressureRig(rig.config, 2e-4)
    fresh.lithium_thickness_m = h
    rate0 = k * h * float(creep_strain_rate(a, p0, n))
    assert (p0 - fresh.pressure_pa(1.0)) / 1.0 == pytest.approx(rate0, rel=0.01)


def test_plating_and_stripping_move_the_pressure_of_a_fixed_gap_rig() -> None:
    rig_cfg = RigConfig(
        control="fixed-gap",
        setpoint_pa=1e6,
        stack_stiffness_pa_m=1e11,
        creep_prefactor=0.0,
        deposit_expansion=1.5,
        contact_stiffness_pa_m=1.0,
    )
    cell = TwinCell(TwinConfig(rig=rig_cfg))
    j = 1.0 * MA_CM2
    hold(cell, -j * cell.area_m2, 0.0, 3600.0, 60.0)
    # plated lithium takes 1.5x its dense volume, stripped lithium leaves its dense volume
    rise = 1e11 * (1.5 - 1.0) * float(deposition_velocity(j)) * 3600.0
    assert cell.rig.pressure_pa(3600.0) - 1e6 == pytest.approx(rise, rel=1e-6)


def test_constant_pressure_rig_follows_setpoints_and_suffers_leaks_and_losses() -> None:
    faults = (
        FaultConfig(1000.0, "leak", {"time_constant": 50.0}),
        FaultConfig(2000.0, "pressure_loss", {"to": 1e4}),
    )
    rig = PressureRig(RigConfig(setpoint_pa=1e6, control_time_s=5.0, creep_prefactor=0.0), 2e-4, faults)
    assert rig.pressure_pa(100.0) == pytest.approx(1e6)
    rig.set_pressure_setpoint(2e6, 100.0)
    assert rig.pressure_pa(105.0) == pytest.approx(2e6 - 1e6 * math.exp(-1.0), rel=1e-3)
    # a leak in a controlled rig: steady p = p_set (1/tau_c) / (1/tau_c + 1/tau_leak)
    assert rig.pressure_pa(1900.0) == pytest.approx(2e6 * (1 / 5) / (1 / 5 + 1 / 50), rel=1e-3)
    assert rig.pressure_pa(2000.0 + 1e-6) == pytest.approx(1e4, rel=1e-3)
    assert rig.pressure_pa(3000.0) < 1e4  # the leak goes on, the actuator has stopped
    assert rig.force_n(3000.0) == pytest.approx(rig.pressure_pa(3000.0) * 2e-4)


def test_stack_pressure_suppresses_dendritic_growth_by_the_creep_number() -> None:
    defects = DefectConfig(
        alpha=25.0, short_charge_c_m2=mah_cm2(100), protrusion_length_m=1e-6, stress_concentration=2.0
    )
    rig = RigConfig(setpoint_pa=3e6, creep_prefactor=2.5e-46, creep_exponent=6.6, contact_stiffness_pa_m=1.0)
    cell = TwinCell(TwinConfig(separator=SeparatorConfig(260e-6, 0.9), defects=defects, rig=rig))
    j = 2.0 * MA_CM2
    hold(cell, -j * cell.area_m2, 0.0, 1800.0, 5.0)
    t_d = next(e.t_s for e in cell.events if e.kind == "dendritic")
    p = cell.rig.pressure_pa(1800.0)
    pi = float(creep_number(2.5e-46, 6.6, 2.0, p, 1e-6, j))
    assert pi > 1.0  # creep flattens protrusions faster than they grow
    expected = j * (1800.0 - t_d) / (1.0 + pi)
    assert cell.state().dendritic_charge_c_m2[0] == pytest.approx(expected, rel=0.01)
    assert float(lithium_thickness(mah_cm2(1.0))) == pytest.approx(4.85e-6, rel=0.01)  # parameters.md


def _polarisation(config: TwinConfig, cycles: int) -> np.ndarray:
    cell = TwinCell(config)
    pol, _ = symmetric_cycling(cell, 2.0 * MA_CM2 * cell.area_m2, 1800.0, cycles, 10.0)
    return pol


def test_a_soft_short_collapses_the_voltage() -> None:
    config = load_scenario("soft-short")
    cell = TwinCell(config)
    pol, _ = symmetric_cycling(cell, 2.0 * MA_CM2 * cell.area_m2, 1800.0, 8, 10.0)
    kinds = [e.kind for e in cell.events]
    assert kinds[:2] == ["dendritic", "soft_short"]
    assert "hard_short" in kinds
    assert pol[-1] < 0.2 * pol[0]  # polarisation collapses at constant current
    assert np.all(np.diff(pol[1:]) < 0.002)  # ... and keeps falling (within the noise)
    # the noise rises once the short has formed: its resistance fluctuates
    fresh = TwinCell(config)
    times, v, _ = hold(fresh, -2.0 * MA_CM2 * fresh.area_m2, 0.0, 7200.0, 1.0)
    t_short = next(e.t_s for e in fresh.events if e.kind == "soft_short")
    before = np.std(np.diff(v[(times > 60.0) & (times < t_short)]))
    after = np.std(np.diff(v[times > t_short + 600.0]))
    assert after > 30.0 * before


def test_a_healthy_cell_never_collapses_over_20_seeds() -> None:
    base = load_scenario("default")
    for seed in range(20):
        config = dataclasses.replace(base, seed=seed)
        pol = _polarisation(config, 6)
        assert np.all(pol > 0.9 * pol[0]), seed  # the SEI only raises it
        assert np.all(np.diff(pol[::2]) > 0), seed


def test_injected_hard_short_pins_the_voltage_to_i_r() -> None:
    faults = (FaultConfig(600.0, "hard_short", {"resistance": 0.2}),)
    cell = TwinCell(TwinConfig(faults=faults))
    i = -1.0 * MA_CM2 * cell.area_m2
    times, v, cur = hold(cell, i, 0.0, 1200.0, 1.0)
    assert np.all(cur == i)
    late = times > 700.0
    r_cell = float(np.mean(v[times < 600.0][-10:])) / i  # the cell's own (linear) resistance
    assert np.allclose(v[late], i / (1.0 / 0.2 + 1.0 / r_cell), rtol=0.01)  # in parallel with the short
    assert [e.kind for e in cell.events] == ["hard_short"]
