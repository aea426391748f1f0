"""CE, capacity fade, cycle life and efficiencies against the reference text's own numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from licycler import physics as ph


def test_ce_from_charges_and_from_loss_agree_with_definition() -> None:
    # Q_plate = Q_strip + Q_loss (charge conservation in the reference text)
    q_plate, q_loss = 3.6, 0.036
    assert ph.coulombic_efficiency(q_plate - q_loss, q_plate) == pytest.approx(0.99)
    assert ph.coulombic_efficiency_from_loss(q_loss, q_plate) == pytest.approx(0.99)


def test_098_fades_to_80_percent_in_11_cycles() -> None:
    # reference: 0.98^11 ~ 0.8
    assert ph.capacity_after_cycles(1.0, 0.98, 11) == pytest.approx(0.80, abs=0.005)
    assert ph.cycles_to_retention(0.98, 0.8) == pytest.approx(11.0, abs=0.05)


@pytest.mark.parametrize(
    ("ce", "cycles"), [(0.98, 11.0), (0.99, 22.2), (0.995, 44.5), (0.999, 223), (0.9999, 2231)]
)
def test_cycles_to_80_percent_match_parameters_table(ce: float, cycles: float) -> None:
    # the table gives one decimal (11.0 for 11.045)
    assert ph.cycles_to_retention(ce, 0.8) == pytest.approx(cycles, rel=2e-3, abs=0.05)


def test_required_ce_for_1000_cycles_at_80_percent() -> None:
    assert ph.required_ce(1000, 0.8) == pytest.approx(0.99978, abs=1e-5)


def test_perfect_ce_never_fades() -> None:
    assert math.isinf(ph.cycles_to_retention(1.0, 0.8))


def test_vectorised_over_arrays() -> None:
    ces = np.array([0.98, 0.99, 0.999])
    result = ph.cycles_to_retention(ces, 0.8)
    assert isinstance(result, np.ndarray)
    assert result.shape == (3,)
    assert np.all(np.diff(result) > 0)


@given(st.floats(0.5, 0.999999), st.floats(0.05, 0.99))
def test_cycle_life_and_required_ce_are_inverse(ce: float, retention: float) -> None:
    n = ph.cycles_to_retention(ce, retention)
    assert ph.required_ce(n, retention) == pytest.approx(ce, rel=1e-9)
    assert ph.capacity_after_cycles(1.0, ce, n) == pytest.approx(retention, rel=1e-9)


@given(st.floats(0.5, 0.9999), st.floats(0.5, 0.9999), st.floats(0.1, 0.95))
def test_cycle_life_grows_with_ce(ce1: float, ce2: float, retention: float) -> None:
    lo, hi = sorted((ce1, ce2))
    assert ph.cycles_to_retention(lo, retention) <= ph.cycles_to_retention(hi, retention)


@given(st.floats(1.0, 1e5), st.floats(0.05, 0.99), st.floats(0.05, 0.99))
def test_required_ce_rises_with_cycles_and_retention(n: float, r1: float, r2: float) -> None:
    assert ph.required_ce(n, r1) <= ph.required_ce(2 * n, r1)
    lo, hi = sorted((r1, r2))
    assert ph.required_ce(n, lo) <= ph.required_ce(n, hi)


def test_energy_efficiency_is_voltage_efficiency_times_ce() -> None:
    # 3.4 V mean discharge, 3.6 V mean charge, CE 0.99
    eta_v = ph.voltage_efficiency(3.4, 3.6)
    assert eta_v == pytest.approx(3.4 / 3.6)
    eta_e = ph.energy_efficiency(eta_v, 0.99)
    assert eta_e == pytest.approx(0.99 * 3.4 / 3.6)
    # the same from energies: E = V_mean * Q
    q_charge, q_discharge = 1.0, 0.99
    assert ph.energy_efficiency_from_energies(3.4 * q_discharge, 3.6 * q_charge) == pytest.approx(eta_e)


@pytest.mark.parametrize(("q_s", "expected"), [(4.9, 0.9933), (4.6, 0.9733)])
def test_reservoir_ce_adams_2018(q_s: float, expected: float) -> None:
    # parameters.md: Q_T = 5, Q_C = 1 mAh/cm2, n = 10
    assert ph.reservoir_ce(5.0, 1.0, 10, q_s) == pytest.approx(expected, abs=5e-5)


def test_reservoir_ce_with_full_recovery_is_one() -> None:
    assert ph.reservoir_ce(5.0, 1.0, 10, 5.0) == pytest.approx(1.0)
