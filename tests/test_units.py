"""Quantities with units are converted once to SI, with the dimension checked."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from licycler import units as u


@pytest.mark.parametrize(
    ("text", "dim", "si"),
    [
        ("5 mA/cm^2", u.CURRENT_DENSITY, 50.0),
        ("5 mA/cm2", u.CURRENT_DENSITY, 50.0),
        ("0.5 mA cm^-2", u.CURRENT_DENSITY, 5.0),
        ("5 mAh/cm^2", u.AREAL_CHARGE, 180_000.0),
        ("1 mAh", u.CHARGE, 3.6),
        ("6 h", u.TIME, 21_600.0),
        ("30 min", u.TIME, 1_800.0),
        ("250 ms", u.TIME, 0.25),
        ("1.0 V", u.VOLTAGE, 1.0),
        ("-20 mV", u.VOLTAGE, -0.02),
        ("1 M", u.CONCENTRATION, 1000.0),
        ("1.2 mol/L", u.CONCENTRATION, 1200.0),
        ("3.22e-10 m^2/s", u.DIFFUSIVITY, 3.22e-10),
        ("3.22e-6 cm^2/s", u.DIFFUSIVITY, 3.22e-10),
        ("25 um", u.LENGTH, 25e-6),
        ("25 µm", u.LENGTH, 25e-6),
        ("10 ohm cm^2", u.AREA_RESISTANCE, 1e-3),
        ("10 Ω·cm^2", u.AREA_RESISTANCE, 1e-3),
        ("1 S/m", u.CONDUCTIVITY, 1.0),
        ("10 mS/cm", u.CONDUCTIVITY, 1.0),
        ("1 MPa", u.PRESSURE, 1e6),
        ("75 kPa", u.PRESSURE, 75e3),
        ("14.7 psi", u.PRESSURE, 101_352.9),
        ("1 bar", u.PRESSURE, 1e5),
        ("1e13 Pa/m", u.CONTACT_STIFFNESS, 1e13),
        ("13 cm^3/mol", u.MOLAR_VOLUME, 1.3e-5),
        ("80 %", u.DIMENSIONLESS, 0.8),
        ("0.38", u.DIMENSIONLESS, 0.38),
        ("25 degC", u.TEMPERATURE, 298.15),
        ("1 mol/(m^2 s)", u.CURRENT_DENSITY / u.CHARGE * u.DIMENSIONLESS * u.Dimension((0, 0, 0, 0, 1, 0)), 1.0),
    ],
)
def test_parse_to_si(text: str, dim: u.Dimension, si: float) -> None:
    assert u.parse_quantity(text, dim) == pytest.approx(si, rel=1e-6)


def test_bare_number_is_si() -> None:
    assert u.parse_quantity("3.2e-10", u.DIFFUSIVITY) == 3.2e-10
    assert u.parse_quantity(12, u.CURRENT_DENSITY) == 12.0


@pytest.mark.parametrize(
    ("text", "dim", "fragment"),
    [
        ("5 mA", u.CURRENT_DENSITY, "expected a current density"),
        ("5 furlongs", u.LENGTH, "unknown unit"),
        ("abc", u.TIME, "no number"),
        ("nan V", u.VOLTAGE, "no number"),
        ("1e999 V", u.VOLTAGE, "not finite"),
        ("5 mA/(cm^2", u.CURRENT_DENSITY, "ends too early"),
    ],
)
def test_bad_quantities_name_the_value_and_what_was_expected(text: str, dim: u.Dimension, fragment: str) -> None:
    with pytest.raises(u.UnitError, match="--x") as info:
        u.parse_quantity(text, dim, what="--x")
    assert fragment in str(info.value)


def test_booleans_are_not_numbers() -> None:
    with pytest.raises(u.UnitError):
        u.parse_quantity(True, u.DIMENSIONLESS)


@given(st.floats(1e-6, 1e6), st.sampled_from([("mA/cm^2", 10.0), ("uA/cm^2", 1e-2), ("A/m^2", 1.0), ("A/cm^2", 1e4)]))
def test_prefix_scaling(value: float, unit: tuple[str, float]) -> None:
    symbol, factor = unit
    assert u.parse_quantity(f"{value!r} {symbol}", u.CURRENT_DENSITY) == pytest.approx(value * factor, rel=1e-12)
