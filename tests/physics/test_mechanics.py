"""Deposition velocity, the creep competition number and the earliest void during stripping."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from licycler import physics as ph

F, VM = 96485.33212, 1.30e-5


def test_one_mah_per_cm2_is_4_85_um_of_lithium() -> None:
    assert ph.lithium_thickness(36_000.0) * 1e6 == pytest.approx(4.85, abs=0.01)


def test_deposition_velocity_at_1_ma_cm2() -> None:
    # 4.85 um per hour at 1 mA/cm2
    assert ph.deposition_velocity(10.0) * 3600 * 1e6 == pytest.approx(4.85, abs=0.01)


def test_creep_number_written_out_and_its_scaling() -> None:
    a, n, alpha, p, length, j = 1e-40, 6.6, 3.0, 1e6, 1e-6, 10.0
    v = j * VM / F
    assert ph.creep_number(a, n, alpha, p, length, j) == pytest.approx(a * (alpha * p) ** n * length / v)
    # doubling pressure multiplies Pi by 2^n; doubling the current halves it
    base = ph.creep_number(a, n, alpha, p, length, j)
    assert ph.creep_number(a, n, alpha, 2 * p, length, j) == pytest.approx(base * 2**n)
    assert ph.creep_number(a, n, alpha, p, length, 2 * j) == pytest.approx(base / 2)


def test_creep_strain_rate_power_law() -> None:
    assert ph.creep_strain_rate(2e-20, 1e3, 6.6) == pytest.approx(2e-20 * 1e3**6.6)


def test_void_time_against_the_recession_it_comes_from() -> None:
    # the hot spot recedes h = i V_m t / F; the interface relieves k_n h of compression and detaches
    # when k_n h = p0 + sigma_c. Find that time by stepping the recession, independently of the formula.
    p0, sigma_c, k_n, i_max = 1e6, 0.5e6, 1e13, 20.0
    t = np.linspace(0.0, 2000.0, 2_000_001)
    stress = p0 - k_n * i_max * VM * t / F  # compressive positive
    t_detach = t[np.argmax(stress <= -sigma_c)]
    assert ph.void_time(p0, sigma_c, k_n, i_max) == pytest.approx(t_detach, abs=2e-3)


@given(st.floats(1e4, 1e7), st.floats(0.0, 1e6), st.floats(1e10, 1e15), st.floats(0.1, 1e3))
def test_void_time_monotone(p0: float, sigma_c: float, k_n: float, i_max: float) -> None:
    t = ph.void_time(p0, sigma_c, k_n, i_max)
    assert t > 0
    assert ph.void_time(2 * p0, sigma_c, k_n, i_max) > t  # more pressure: later void
    assert ph.void_time(p0, sigma_c, k_n, 2 * i_max) == pytest.approx(t / 2)  # faster strip: sooner
