"""Diffusive demand, Sand's time, intensification and the limiting current of a finite gap."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from licycler import physics as ph

F = 96485.33212
LIPF6 = {"diffusivity": 3.22e-10, "concentration": 1000.0, "transference_number": 0.38}
MA_CM2 = 10.0  # 1 mA/cm2 in A/m2


def test_transference_02_to_06_halves_the_diffusive_demand() -> None:
    j = 10.0
    assert ph.diffusive_demand(j, 0.6) == pytest.approx(0.5 * ph.diffusive_demand(j, 0.2))
    assert ph.diffusive_demand(j, 0.0) == pytest.approx(j / F)


@pytest.mark.parametrize(("j_ma_cm2", "t_s"), [(1, 61_299), (5, 2_452), (10, 613)])
def test_sand_time_lipf6_published_figures(j_ma_cm2: float, t_s: float) -> None:
    # parameters.md worked numbers (Valoen & Reimers D, t+ = 0.38); 1 mA/cm2 is about 17.0 h
    assert ph.sand_time(**LIPF6, current_density=j_ma_cm2 * MA_CM2) == pytest.approx(t_s, rel=3e-3)


def test_sand_time_17_hours_at_1_ma_cm2() -> None:
    assert ph.sand_time(**LIPF6, current_density=MA_CM2) / 3600 == pytest.approx(17.0, abs=0.05)


def test_sand_time_formula_written_out() -> None:
    d, c0, tp, j = 2.79e-10, 1000.0, 0.40, 50.0
    expected = math.pi * d * F**2 * c0**2 / (4 * (1 - tp) ** 2 * j**2)
    assert ph.sand_time(d, c0, tp, j) == pytest.approx(expected, rel=1e-12)


def test_diffusion_lengths_far_exceed_a_separator() -> None:
    # parameters.md: sqrt(D t_s) = 4.4, 0.89, 0.44 mm at 1, 5, 10 mA/cm2
    for j, length_mm in [(1, 4.4), (5, 0.89), (10, 0.44)]:
        t = ph.sand_time(**LIPF6, current_density=j * MA_CM2)
        assert math.sqrt(3.22e-10 * t) * 1e3 == pytest.approx(length_mm, rel=0.02)


@given(st.floats(0.1, 1000.0), st.floats(1.01, 100.0))
def test_sand_time_scales_as_inverse_square_of_current(j: float, factor: float) -> None:
    t1 = ph.sand_time(**LIPF6, current_density=j)
    t2 = ph.sand_time(**LIPF6, current_density=j * factor)
    assert t2 == pytest.approx(t1 / factor**2, rel=1e-9)


@given(st.floats(1.0, 50.0))
def test_local_sand_time_is_global_over_alpha_squared(alpha: float) -> None:
    t_global = ph.sand_time(**LIPF6, current_density=MA_CM2)
    assert ph.local_sand_time(t_global, alpha) == pytest.approx(t_global / alpha**2)
    assert ph.sand_time(**LIPF6, current_density=MA_CM2, alpha=alpha) == pytest.approx(t_global / alpha**2)


def test_critical_intensification_marks_where_a_hot_spot_depletes() -> None:
    t_global = ph.sand_time(**LIPF6, current_density=MA_CM2)  # 17 h
    t_plate = 3600.0  # 1 mAh/cm2 at 1 mA/cm2
    a_star = ph.critical_intensification(t_global, t_plate)
    assert a_star == pytest.approx(math.sqrt(t_global / t_plate))
    assert ph.local_sand_time(t_global, a_star) == pytest.approx(t_plate)
    assert ph.local_sand_time(t_global, 1.01 * a_star) < t_plate < ph.local_sand_time(t_global, 0.99 * a_star)


def test_porous_separator_shortens_sand_time_by_eps_to_b_plus_1() -> None:
    free = ph.sand_time(**LIPF6, current_density=MA_CM2)
    porous = ph.sand_time(**LIPF6, current_density=MA_CM2, porosity=0.4, bruggeman=1.5)
    assert porous == pytest.approx(free * 0.4**2.5)
    # tortuosity form: D_eff = D eps / tau
    assert ph.effective_diffusivity(1e-10, 0.5, tortuosity=2.0) == pytest.approx(2.5e-11)


def test_semi_infinite_surface_concentration_reaches_zero_at_sand_time() -> None:
    t_s = ph.sand_time(**LIPF6, current_density=5 * MA_CM2)
    c = ph.semi_infinite_surface_concentration(np.array([0.0, t_s / 4, t_s]), **LIPF6, current_density=5 * MA_CM2)
    assert c[0] == pytest.approx(1000.0)
    assert c[1] == pytest.approx(500.0, rel=1e-9)  # c falls as sqrt(t)
    assert c[2] == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize(
    ("thickness", "porosity", "j_lim_ma_cm2"), [(25e-6, 0.40, 101.0), (260e-6, 0.90, 33.0)]
)
def test_limiting_current_of_separators(thickness: float, porosity: float, j_lim_ma_cm2: float) -> None:
    # parameters.md: ~101 mA/cm2 for 25 um at 40 %; ~33 mA/cm2 for 260 um glass fibre at 90 %
    j_lim = ph.limiting_current_density(**LIPF6, separator_thickness=thickness, porosity=porosity, bruggeman=1.5)
    assert j_lim / MA_CM2 == pytest.approx(j_lim_ma_cm2, rel=0.01)


def test_limiting_current_makes_steady_surface_concentration_zero() -> None:
    # transport-model.md: steady c(0) = c0 - g L / 2 with g = (1 - t+) j / (F D_eff)
    L, eps = 25e-6, 0.4
    j_lim = ph.limiting_current_density(**LIPF6, separator_thickness=L, porosity=eps)
    d_eff = ph.effective_diffusivity(3.22e-10, eps)
    g = (1 - 0.38) * j_lim / (F * d_eff)
    assert 1000.0 - g * L / 2 == pytest.approx(0.0, abs=1e-9)


def test_thin_separator_reaches_steady_state_in_seconds() -> None:
    tau = ph.gap_relaxation_time(25e-6, 3.22e-10, porosity=0.4)
    assert 0.1 < tau < 2.0
    assert tau == pytest.approx((25e-6) ** 2 / (math.pi**2 * 3.22e-10 * 0.4**0.5))


def test_sand_fit_recovers_the_sand_coefficient() -> None:
    j = np.array([10.0, 20.0, 50.0, 100.0])
    t = ph.sand_time(**LIPF6, current_density=j)
    assert ph.sand_coefficient_fit(j, t, 1000.0) == pytest.approx(ph.sand_coefficient(3.22e-10, 0.38), rel=1e-9)
    assert ph.sand_coefficient(3.22e-10, 0.38) == pytest.approx(3.22e-10 / 0.62**2)
