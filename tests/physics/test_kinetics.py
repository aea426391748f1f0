"""Butler-Volmer both ways, exchange current, concentration and nucleation overpotentials."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from licycler import physics as ph

F, R, T = 96485.33212, 8.314462618, 298.15
f = F / (R * T)


def test_butler_volmer_written_out() -> None:
    eta, i0, aa, ac = 0.05, 70.0, 0.3, 0.7
    expected = i0 * (math.exp(aa * f * eta) - math.exp(-ac * f * eta))
    assert ph.butler_volmer_current(eta, i0, aa, ac) == pytest.approx(expected, rel=1e-12)


def test_linear_regime_gives_charge_transfer_resistance() -> None:
    # small eta: j = i0 (a_a + a_c) f eta, i.e. R_ct = RT / (F i0 (a_a + a_c))
    i0 = 70.0
    eta = 1e-5
    assert ph.butler_volmer_current(eta, i0) == pytest.approx(i0 * f * eta, rel=1e-4)


def test_tafel_regime() -> None:
    # large anodic eta: j = i0 exp(a_a f eta); slope 2.303 / (a_a f) per decade = 118 mV at a = 0.5
    i0 = 70.0
    eta1 = ph.kinetic_overpotential(100 * i0, i0)
    eta2 = ph.kinetic_overpotential(1000 * i0, i0)
    assert eta2 - eta1 == pytest.approx(math.log(10) / (0.5 * f), rel=1e-3)


def test_symmetric_inverse_is_asinh() -> None:
    j, i0 = 50.0, 70.0
    assert ph.kinetic_overpotential(j, i0) == pytest.approx(math.asinh(j / (2 * i0)) / (0.5 * f))


@given(
    st.floats(-0.4, 0.4),
    st.floats(1e-2, 1e3),
    st.floats(0.1, 0.9),
    st.floats(0.1, 0.9),
    st.floats(250.0, 350.0),
)
def test_butler_volmer_round_trip(eta: float, i0: float, aa: float, ac: float, temp: float) -> None:
    j = ph.butler_volmer_current(eta, i0, aa, ac, temp)
    back = ph.kinetic_overpotential(j, i0, aa, ac, temp)
    assert back == pytest.approx(eta, abs=1e-9)


@given(st.floats(-1e4, 1e4), st.floats(1e-1, 1e3), st.floats(0.1, 0.9), st.floats(0.1, 0.9))
def test_overpotential_round_trip_and_sign(j: float, i0: float, aa: float, ac: float) -> None:
    eta = ph.kinetic_overpotential(j, i0, aa, ac)
    assert math.copysign(1.0, eta) == math.copysign(1.0, j) or j == 0
    assert ph.butler_volmer_current(eta, i0, aa, ac) == pytest.approx(j, rel=1e-8, abs=1e-9)


def test_vectorised_inverse_mixed_symmetry() -> None:
    j = np.array([-100.0, -1.0, 0.0, 1.0, 100.0])
    aa = np.array([0.5, 0.3, 0.5, 0.7, 0.2])
    eta = ph.kinetic_overpotential(j, 10.0, aa, 1 - aa)
    assert np.allclose(ph.butler_volmer_current(eta, 10.0, aa, 1 - aa), j, rtol=1e-9, atol=1e-12)


def test_overpotential_diverges_as_surface_depletes() -> None:
    c = np.array([1000.0, 100.0, 10.0, 1.0, 0.0])
    i0 = ph.exchange_current_density(70.0, c, 1000.0)
    assert i0[0] == pytest.approx(70.0)
    assert i0[-1] == 0.0
    eta = np.abs(ph.kinetic_overpotential(-10.0, i0))
    assert np.all(np.diff(eta) > 0)
    assert math.isinf(eta[-1])


def test_concentration_overpotential() -> None:
    # (2 RT / F)(1 - t+) ln(c_L / c_0)
    assert ph.concentration_overpotential(1000.0, 1000.0, 0.38) == 0.0
    expected = 2 / f * 0.62 * math.log(1500 / 500)
    assert ph.concentration_overpotential(1500.0, 500.0, 0.38) == pytest.approx(expected)


def test_nucleation_overpotential_is_ir_corrected() -> None:
    # plating on Cu at -1 mA through 10 ohm: tip -0.110 V, plateau -0.040 V -> iR = -0.010 V
    eta_n = ph.nucleation_overpotential(-0.110, -1e-3, -0.040, -1e-3, 10.0)
    assert eta_n == pytest.approx(0.070)
    # without resistance, it is |V_tip| - |V_plateau|
    assert ph.nucleation_overpotential(-0.110, -1e-3, -0.040, -1e-3, 0.0) == pytest.approx(0.070)
    # iR at the tip differs from the plateau when the current does
    assert ph.nucleation_overpotential(-0.110, -2e-3, -0.040, -1e-3, 10.0) == pytest.approx(0.060)
