"""Lithium inventory, Coulombic efficiency, the end-of-strip spike and nucleation, through CellTerminals."""

from __future__ import annotations

import numpy as np
import pytest

from licycler.physics import coulombic_efficiency, effective_diffusivity, nucleation_overpotential, reservoir_ce
from licycler.sim_instruments.twin import (
    CellConfig,
    EfficiencyConfig,
    NucleationConfig,
    RigConfig,
    SeiConfig,
    TwinCell,
    TwinConfig,
    mah_cm2,
)

from .drive import hold, run_to_voltage

MA_CM2 = 10.0
CUTOFF_V = 1.0  # the strip-to-cutoff of Li||Cu protocols (parameters.md)
NO_VOIDS = RigConfig(contact_stiffness_pa_m=1.0)


def _li_cu(ce: float, noise: float = 0.0, seed: int = 0, **efficiency: float) -> TwinCell:
    config = TwinConfig(
        cell=CellConfig(
            kind="li-cu",
            working_lithium_c_m2=0.0,
            counter_lithium_c_m2=mah_cm2(200),
            efficiency=EfficiencyConfig(coulombic_efficiency=ce, noise=noise, **efficiency),
        ),
        rig=NO_VOIDS,
        seed=seed,
    )
    return TwinCell(config)


def _ce_cycles(cell: TwinCell, cycles: int, j: float, q_plate: float, dt: float) -> tuple[np.ndarray, float]:
    """Plate ``q_plate`` (C/m^2) on the Cu, strip to the cutoff; Q_strip / Q_plate per cycle."""
    area = cell.area_m2
    t = 0.0
    ratios = []
    for _ in range(cycles):
        duration = q_plate / j
        hold(cell, -j * area, t, duration, dt)
        t += duration
        t_cut, _, _ = run_to_voltage(cell, j * area, t, dt, above_v=CUTOFF_V)
        ratios.append(float(coulombic_efficiency(j * area * (t_cut - t), j * area * duration)))
        cell.open_circuit(t_cut)
        t = t_cut + 60.0
    return np.array(ratios), t


def test_a_cell_configured_with_ce_returns_it_within_its_noise_over_50_cycles() -> None:
    ce, sigma = 0.98, 0.002
    cell = _li_cu(ce, sigma, seed=7)
    dt = 2.0
    ratios, _ = _ce_cycles(cell, 50, 1.0 * MA_CM2, mah_cm2(1.0), dt)
    resolution = dt / 3600.0  # one sample of a 1 h strip
    assert np.all(np.abs(ratios - ce) < 4.0 * sigma + resolution)
    assert ratios.mean() == pytest.approx(ce, abs=3.0 * sigma / np.sqrt(50) + resolution)
    assert ratios.std() == pytest.approx(sigma, rel=0.35)


def test_without_noise_every_cycle_returns_exactly_the_configured_ce() -> None:
    cell = _li_cu(0.995)
    ratios, _ = _ce_cycles(cell, 5, 1.0 * MA_CM2, mah_cm2(1.0), 1.0)
    assert np.allclose(ratios, 0.995, atol=1.0 / 3600.0)


def test_li_cu_reservoir_protocol_gives_the_configured_ce_by_the_reservoir_formula() -> None:
    ce = 0.99
    cell = _li_cu(ce)
    area = cell.area_m2
    j = 0.5 * MA_CM2
    q_t, q_c, n = mah_cm2(5.0), mah_cm2(1.0), 10  # parameters.md: Q_T = 5, Q_C = 1 mAh/cm^2, n = 10
    # condition the Cu: plate Q_C and strip to the cutoff
    hold(cell, -j * area, 0.0, q_c / j, 10.0)
    t, _, _ = run_to_voltage(cell, j * area, q_c / j, 2.0, above_v=CUTOFF_V)
    # plate the reservoir, cycle Q_C n times, strip to the cutoff
    hold(cell, -j * area, t, q_t / j, 10.0)
    t += q_t / j
    for _ in range(n):
        hold(cell, j * area, t, q_c / j, 10.0)
        t += q_c / j
        hold(cell, -j * area, t, q_c / j, 10.0)
        t += q_c / j
    t_cut, _, _ = run_to_voltage(cell, j * area, t, 1.0, above_v=CUTOFF_V)
    q_s = j * (t_cut - t)
    assert float(reservoir_ce(q_t, q_c, n, q_s)) == pytest.approx(ce, abs=2e-4)
    # parameters.md's worked number: Q_S = 4.9 mAh/cm^2 means 0.9933
    assert float(reservoir_ce(5.0, 1.0, 10, 4.9)) == pytest.approx(0.9933, abs=1e-4)


def test_ce_drifts_with_cycles_and_falls_with_current_density() -> None:
    drift = -1e-3
    cell = _li_cu(0.99, drift_per_cycle=drift)
    ratios, _ = _ce_cycles(cell, 4, 1.0 * MA_CM2, mah_cm2(0.5), 0.5)
    expected = 0.99 + drift * np.arange(1, 5)
    assert np.allclose(ratios, expected, atol=1.0 / 1800.0)
    beta = 0.5
    losses = []
    for j in (0.5 * MA_CM2, 2.0 * MA_CM2):
        c = _li_cu(0.99, current_exponent=beta, reference_current_density_a_m2=1.0 * MA_CM2)
        r, _ = _ce_cycles(c, 1, j, mah_cm2(1.0), 0.25)
        losses.append(1.0 - r[0])
    # loss ~ (j / j_ref)^beta: a 4x current makes it 2x
    assert losses[1] / losses[0] == pytest.approx(4.0**beta, rel=0.02)


def test_stripping_past_the_lithium_spikes_the_voltage_to_any_cutoff() -> None:
    cell = _li_cu(0.97)
    area, j = cell.area_m2, 1.0 * MA_CM2
    q = mah_cm2(0.5)
    hold(cell, -j * area, 0.0, q / j, 5.0)
    t0 = q / j
    t_empty = t0 + 0.97 * q / j  # the lithium left is CE x what was plated
    times, v, _ = hold(cell, j * area, t0, 1.2 * 0.97 * q / j, 1.0)
    assert np.all(np.abs(v[times < t_empty - 60.0]) < 0.1)  # stripping plateau
    first_over = float(times[np.argmax(v > 5.0)])  # past even a 5 V compliance
    assert first_over == pytest.approx(t_empty, abs=1.0)
    assert np.all(v[times > t_empty] == np.inf)
    assert [e.electrode for e in cell.events if e.kind == "lithium_exhausted"] == ["working"]
    # a bare copper electrode at rest reads its own rest potential against lithium
    cell.open_circuit(float(times[-1]))
    v_rest, i_rest = cell.sample(np.array([float(times[-1]) + 10.0]))
    assert i_rest[0] == 0.0
    assert v_rest[0] == pytest.approx(3.0, abs=0.01)


@pytest.mark.parametrize("eta_n", [0.02, 0.05, 0.12])
def test_nucleation_overpotential_is_recovered_after_ir_correction(eta_n: float) -> None:
    r_sei = 1e-3
    config = TwinConfig(
        cell=CellConfig(
            kind="li-cu",
            working_lithium_c_m2=0.0,
            nucleation=NucleationConfig(overpotential_v=eta_n, charge_c_m2=mah_cm2(0.005)),
            sei=SeiConfig(resistance_ohm_m2=r_sei),
        ),
        rig=NO_VOIDS,
    )
    cell = TwinCell(config)
    area, j = cell.area_m2, 1.0 * MA_CM2
    _times, v, i = hold(cell, -j * area, 0.0, 900.0, 0.25)
    tip = int(np.argmin(v))
    assert 0 < tip < v.size // 2  # a dip, then relaxation to a plateau
    # the cell's ohmic resistance from its configuration: L / kappa_eff + two SEI layers, on A
    r_ohm = (25e-6 / float(effective_diffusivity(1.0, 0.4, 1.5)) + 2 * r_sei) / area
    measured = float(nucleation_overpotential(v[tip], i[tip], v[-1], i[-1], r_ohm))
    assert measured == pytest.approx(eta_n, rel=0.05)


def test_symmetric_lithium_shows_no_nucleation_dip() -> None:
    cell = TwinCell(TwinConfig(rig=NO_VOIDS))
    _, v, _ = hold(cell, -1.0 * MA_CM2 * cell.area_m2, 0.0, 300.0, 0.5)
    assert np.argmin(v) > 0.9 * v.size  # the polarisation only grows (SEI, transport)


def test_dead_lithium_and_active_lithium_account_for_all_plated_charge() -> None:
    cell = _li_cu(0.9)
    area, j = cell.area_m2, 1.0 * MA_CM2
    hold(cell, -j * area, 0.0, 3600.0, 10.0)
    state = cell.state()
    plated = j * 3600.0
    assert state.active_lithium_c_m2[0] == pytest.approx(0.9 * plated, rel=1e-12)
    assert state.dead_lithium_c_m2[0] == pytest.approx(0.1 * plated, rel=1e-12)
    assert state.active_lithium_c_m2[1] == pytest.approx(mah_cm2(200) - plated, rel=1e-12)
