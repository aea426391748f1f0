"""The SEI bilayer: series resistance and the sensitivity result of the reference text."""

from __future__ import annotations

import pytest

from licycler import physics as ph

# inner 5 nm, outer 20 nm, charge transfer (area-specific, ohm m^2)
DELTA_I, DELTA_O = 5e-9, 20e-9


def _layers(kappa_i: float, kappa_o: float, r_ct: float) -> tuple[float, float, float, float, float]:
    return DELTA_I, kappa_i, DELTA_O, kappa_o, r_ct


def test_series_resistance() -> None:
    # 10 ohm cm2 = 1e-3 ohm m2 of charge transfer plus the two layers
    r = ph.sei_resistance(5e-9, 1e-6, 20e-9, 1e-5, 1e-3)
    assert r == pytest.approx(5e-3 + 2e-3 + 1e-3)


def test_galvanostatic_sensitivity_falls_as_1_over_kappa_i_when_others_dominate() -> None:
    # outer layer and charge transfer dominate: inner 5e-9/1e-4 = 5e-5 vs 1e-2 others
    j = 10.0
    s1 = ph.sei_sensitivity_galvanostatic(j, *_layers(1e-4, 2e-6, 0.0))
    s2 = ph.sei_sensitivity_galvanostatic(j, *_layers(2e-4, 2e-6, 0.0))
    assert s2 / s1 == pytest.approx(0.5, rel=0.01)


def test_potentiostatic_sensitivity_grows_with_kappa_i_when_inner_layer_dominates() -> None:
    v = 0.05
    s1 = ph.sei_sensitivity_potentiostatic(v, *_layers(1e-7, 1.0, 0.0))
    s2 = ph.sei_sensitivity_potentiostatic(v, *_layers(2e-7, 1.0, 0.0))
    assert s2 / s1 == pytest.approx(2.0, rel=0.01)
    # and equals V kappa_i / delta_i^2 there
    assert s1 == pytest.approx(v * 1e-7 / DELTA_I**2, rel=0.01)


@pytest.mark.parametrize("kappa_i", [1e-7, 1e-6, 1e-5])
def test_sensitivities_are_the_derivatives_of_the_local_currents(kappa_i: float) -> None:
    layers = _layers(kappa_i, 1e-5, 1e-3)
    h = DELTA_I * 1e-6
    j_mean = 10.0
    jg = [ph.sei_local_current_galvanostatic(j_mean, *layers, DELTA_I + s * h) for s in (-1, 1)]
    assert abs(jg[1] - jg[0]) / (2 * h) == pytest.approx(
        ph.sei_sensitivity_galvanostatic(j_mean, *layers), rel=1e-6
    )
    v = 0.05
    jp = [ph.sei_local_current_potentiostatic(v, *layers[1:], DELTA_I + s * h) for s in (-1, 1)]
    assert abs(jp[1] - jp[0]) / (2 * h) == pytest.approx(ph.sei_sensitivity_potentiostatic(v, *layers), rel=1e-6)


def test_thin_spot_draws_more_current() -> None:
    layers = _layers(1e-6, 1e-5, 1e-3)
    assert ph.sei_local_current_galvanostatic(10.0, *layers, DELTA_I / 2) > 10.0
    assert ph.sei_local_current_galvanostatic(10.0, *layers, DELTA_I) == pytest.approx(10.0)
