"""The twin's salt transport and voltage, driven through CellTerminals, against the reference formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest

from licycler.physics import (
    concentration_overpotential,
    diffusive_demand,
    effective_diffusivity,
    exchange_current_density,
    gap_relaxation_time,
    kinetic_overpotential,
    limiting_current_density,
    local_sand_time,
    sand_time,
    semi_infinite_surface_concentration,
)
from licycler.sim_instruments.twin import (
    CellConfig,
    DefectConfig,
    ElectrolyteConfig,
    RigConfig,
    SeiConfig,
    SeparatorConfig,
    TwinCell,
    TwinConfig,
    mah_cm2,
)

from .drive import hold

MA_CM2 = 10.0
ELECTROLYTES = [(3.22e-10, 0.38), (1.77e-10, 0.2594)]  # parameters.md: Valoen; Nyman
NO_VOIDS = RigConfig(contact_stiffness_pa_m=1.0)


def _thick_gap_cell(d: float, t_plus: float, t_s: float, alpha: float = 1.0) -> TwinCell:
    config = TwinConfig(
        cell=CellConfig(working_lithium_c_m2=mah_cm2(100), counter_lithium_c_m2=mah_cm2(100)),
        electrolyte=ElectrolyteConfig(d, 1000.0, t_plus, 1.0),
        separator=SeparatorConfig(thickness_m=10.0 * math.sqrt(d * t_s), porosity=1.0),
        defects=DefectConfig(alpha=alpha),
        rig=NO_VOIDS,
    )
    return TwinCell(config)


@pytest.mark.parametrize(("d", "t_plus"), ELECTROLYTES)
@pytest.mark.parametrize("j_ma_cm2", [1.0, 5.0, 10.0, 20.0])
def test_thick_gap_depletes_at_sand_time_and_the_voltage_diverges(d: float, t_plus: float, j_ma_cm2: float) -> None:
    j = j_ma_cm2 * MA_CM2
    t_s = float(sand_time(d, 1000.0, t_plus, j))
    cell = _thick_gap_cell(d, t_plus, t_s)
    cell.source_current(-j * cell.area_m2, 0.0)  # plate the working electrode (x = 0)
    # the surface concentration follows the semi-infinite solution ...
    cell.sample(np.array([0.5 * t_s]))
    c_half = cell.state().surface_concentration_mol_m3[0]
    assert c_half == pytest.approx(
        float(semi_infinite_surface_concentration(0.5 * t_s, d, 1000.0, t_plus, j)), rel=1e-6
    )
    # ... and the voltage diverges as it reaches zero at Sand's time
    approach = t_s * (1.0 - np.logspace(-1.0, -7.0, 13))
    beyond = t_s * (1.0 + np.logspace(-7.0, -2.5, 7))  # (later, dendrites grown past t_s short it)
    v, i = cell.sample(np.concatenate([approach, beyond]))
    v_in, v_out = v[: approach.size], v[approach.size :]
    assert np.all(np.isfinite(v_in))
    assert np.all(np.diff(v_in) < 0)
    assert v_in[-1] < v_in[0] - 0.5  # hundreds of mV within the last 10 % of t_s
    assert np.all(v_out == -np.inf)  # no finite voltage carries the current: compliance must clamp
    assert np.all(i == -j * cell.area_m2)
    depletion = [e for e in cell.events if e.kind == "depletion"]
    assert len(depletion) == 1
    assert depletion[0].electrode == "working"
    assert depletion[0].t_s == pytest.approx(t_s, rel=0.02)
    first_inf = float(np.concatenate([approach, beyond])[np.argmax(~np.isfinite(v))])
    assert first_inf == pytest.approx(t_s, rel=0.02)


@pytest.mark.parametrize("alpha", [2.0, 5.0])
def test_a_hot_spot_turns_dendritic_at_its_local_sand_time(alpha: float) -> None:
    d, t_plus, j = 3.22e-10, 0.38, 10.0 * MA_CM2
    t_s = float(sand_time(d, 1000.0, t_plus, j))
    cell = _thick_gap_cell(d, t_plus, t_s, alpha=alpha)
    t_local = float(local_sand_time(t_s, alpha))
    hold(cell, -j * cell.area_m2, 0.0, 0.5 * t_s, 0.5)
    dendritic = [e for e in cell.events if e.kind == "dendritic"]
    assert len(dendritic) == 1
    assert dendritic[0].electrode == "working"
    assert dendritic[0].t_s == pytest.approx(t_local, rel=0.02)
    assert cell.state().dendritic == (True, False)
    assert not [e for e in cell.events if e.kind == "depletion"]  # the mean surface is still fine


def _thin_cell(sei_growth: float = 0.0) -> TwinCell:
    return TwinCell(
        TwinConfig(
            separator=SeparatorConfig(thickness_m=25e-6, porosity=0.4),
            cell=CellConfig(sei=SeiConfig(resistance_ohm_m2=1e-3, growth_ohm_m2_per_c_m2=sei_growth)),
            rig=NO_VOIDS,
        )
    )


def _steady_gradient(j: float) -> float:
    return float(diffusive_demand(j, 0.38)) / float(effective_diffusivity(3.22e-10, 0.4, 1.5))


def test_thin_separator_below_the_limiting_current_has_the_linear_steady_profile() -> None:
    L = 25e-6
    j_lim = float(limiting_current_density(3.22e-10, 1000.0, 0.38, L, 0.4))
    tau = float(gap_relaxation_time(L, 3.22e-10, 0.4))
    cell = _thin_cell()
    j = 0.8 * j_lim
    _, v, _ = hold(cell, -j * cell.area_m2, 0.0, 30.0 * tau, tau / 100.0)
    assert np.all(np.isfinite(v))
    assert not [e for e in cell.events if e.kind in ("depletion", "dendritic")]
    x = np.linspace(0.0, L, 51)
    linear = 1000.0 + _steady_gradient(j) * (x - 0.5 * L)
    deviation = np.abs(cell.concentration_profile(x) - linear)
    assert np.max(deviation) < 0.01 * _steady_gradient(j) * L / 2  # within 1 % of the polarisation
    # the salt in the gap is conserved
    c = cell.concentration_profile(x)
    assert float(np.trapezoid(c, x)) == pytest.approx(1000.0 * L, rel=1e-9)


def test_thin_separator_above_the_limiting_current_depletes() -> None:
    L = 25e-6
    j_lim = float(limiting_current_density(3.22e-10, 1000.0, 0.38, L, 0.4))
    tau = float(gap_relaxation_time(L, 3.22e-10, 0.4))
    cell = _thin_cell()
    _, v, _ = hold(cell, -1.2 * j_lim * cell.area_m2, 0.0, 30.0 * tau, tau / 100.0)
    assert [e.electrode for e in cell.events if e.kind == "depletion"] == ["working"]
    assert v[-1] == -np.inf


def test_steady_voltage_is_kinetics_plus_concentration_plus_ohmic() -> None:
    cell = _thin_cell(sei_growth=1e-9)
    area = cell.area_m2
    j = 1.0 * MA_CM2
    t_end = 600.0
    _, v, _ = hold(cell, -j * area, 0.0, t_end, 1.0)
    half = 0.5 * _steady_gradient(j) * 25e-6
    c_we, c_ce = 1000.0 - half, 1000.0 + half  # plating at the working electrode
    i0_we = exchange_current_density(70.0, c_we, 1000.0, 0.5)
    i0_ce = exchange_current_density(70.0, c_ce, 1000.0, 0.5)
    eta_we = kinetic_overpotential(-j, i0_we)  # cathodic
    eta_ce = kinetic_overpotential(j, i0_ce)  # anodic
    conc = concentration_overpotential(c_ce, c_we, 0.38)  # stripping side over plating side
    r_sei = 2.0 * (1e-3 + 1e-9 * j * t_end)  # both electrodes, grown with the charge cycled
    r_area = 25e-6 / float(effective_diffusivity(1.0, 0.4, 1.5)) + r_sei  # kappa_eff = kappa eps^1.5
    expected = eta_we - eta_ce - conc - j * r_area
    assert v[-1] == pytest.approx(expected, abs=1e-7)


def test_open_circuit_voltage_relaxes_with_the_gap_time_constant() -> None:
    L = 100e-6
    tau = float(gap_relaxation_time(L, 3.22e-10, 0.5))
    cell = TwinCell(TwinConfig(separator=SeparatorConfig(thickness_m=L, porosity=0.5), rig=NO_VOIDS))
    hold(cell, -2.0 * MA_CM2 * cell.area_m2, 0.0, 20.0 * tau, tau / 20.0)
    cell.open_circuit(20.0 * tau)
    times = 20.0 * tau + np.linspace(2.0 * tau, 5.0 * tau, 40)
    v, i = cell.sample(times)
    assert np.all(i == 0.0)
    slope = np.polyfit(times, np.log(np.abs(v)), 1)[0]
    assert -1.0 / slope == pytest.approx(tau, rel=0.01)
