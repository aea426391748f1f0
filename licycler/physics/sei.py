"""The SEI as a bilayer: series resistance, local current at a thin spot, and its sensitivity.

SI: thickness m, ionic conductivity S/m, area-specific resistance ohm m^2, current density A/m^2,
interface voltage V. The interface resistance is inner layer + outer layer + charge transfer in
series, R = delta_i / kappa_i + delta_o / kappa_o + R_ct.

Two modes (reference text, SEI section):
- galvanostatic: the electrode's mean current density j_mean is imposed; a small spot whose inner
  layer differs sees the same interface voltage V = j_mean R as its surroundings, so
  j = j_mean R / R_spot and S_G = |dj / d delta_i| = j_mean / (R kappa_i);
- potentiostatic: the interface voltage V is imposed, j = V / R_spot and S_P = V / (R^2 kappa_i).
S_G falls as 1/kappa_i when other resistances dominate; S_P grows as kappa_i when the inner layer
dominates (R ~ delta_i / kappa_i gives S_P ~ V kappa_i / delta_i^2).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from licycler.physics._types import ArrayLike, FloatOrArray, as_result, f64

__all__ = [
    "sei_local_current_galvanostatic",
    "sei_local_current_potentiostatic",
    "sei_resistance",
    "sei_sensitivity_galvanostatic",
    "sei_sensitivity_potentiostatic",
]


def sei_resistance(
    inner_thickness: ArrayLike,
    inner_conductivity: ArrayLike,
    outer_thickness: ArrayLike,
    outer_conductivity: ArrayLike,
    charge_transfer_resistance: ArrayLike,
) -> FloatOrArray:
    """Series interface resistance R = delta_i/kappa_i + delta_o/kappa_o + R_ct, ohm m^2."""
    return as_result(
        f64(inner_thickness) / f64(inner_conductivity)
        + f64(outer_thickness) / f64(outer_conductivity)
        + f64(charge_transfer_resistance)
    )


def _resistance(*layers: ArrayLike) -> np.float64 | npt.NDArray[np.float64]:
    return f64(sei_resistance(*layers))


def sei_local_current_galvanostatic(
    mean_current_density: ArrayLike,
    inner_thickness: ArrayLike,
    inner_conductivity: ArrayLike,
    outer_thickness: ArrayLike,
    outer_conductivity: ArrayLike,
    charge_transfer_resistance: ArrayLike,
    local_inner_thickness: ArrayLike,
) -> FloatOrArray:
    """Current density (A/m^2) at a spot whose inner layer is ``local_inner_thickness`` thick,
    under an imposed mean current density: j = j_mean R / R_spot."""
    r = _resistance(
        inner_thickness, inner_conductivity, outer_thickness, outer_conductivity, charge_transfer_resistance
    )
    r_spot = _resistance(
        local_inner_thickness, inner_conductivity, outer_thickness, outer_conductivity, charge_transfer_resistance
    )
    return as_result(f64(mean_current_density) * r / r_spot)


def sei_local_current_potentiostatic(
    interface_voltage: ArrayLike,
    inner_conductivity: ArrayLike,
    outer_thickness: ArrayLike,
    outer_conductivity: ArrayLike,
    charge_transfer_resistance: ArrayLike,
    local_inner_thickness: ArrayLike,
) -> FloatOrArray:
    """Current density (A/m^2) at a spot under an imposed interface voltage (V): j = V / R_spot."""
    r_spot = _resistance(
        local_inner_thickness, inner_conductivity, outer_thickness, outer_conductivity, charge_transfer_resistance
    )
    return as_result(f64(interface_voltage) / r_spot)


def sei_sensitivity_galvanostatic(
    mean_current_density: ArrayLike,
    inner_thickness: ArrayLike,
    inner_conductivity: ArrayLike,
    outer_thickness: ArrayLike,
    outer_conductivity: ArrayLike,
    charge_transfer_resistance: ArrayLike,
) -> FloatOrArray:
    """S_G = |dj / d delta_i| = j_mean / (R kappa_i), A/m^3, at an unperturbed spot."""
    r = _resistance(
        inner_thickness, inner_conductivity, outer_thickness, outer_conductivity, charge_transfer_resistance
    )
    return as_result(np.abs(f64(mean_current_density)) / (r * f64(inner_conductivity)))


def sei_sensitivity_potentiostatic(
    interface_voltage: ArrayLike,
    inner_thickness: ArrayLike,
    inner_conductivity: ArrayLike,
    outer_thickness: ArrayLike,
    outer_conductivity: ArrayLike,
    charge_transfer_resistance: ArrayLike,
) -> FloatOrArray:
    """S_P = |dj / d delta_i| = V / (R^2 kappa_i), A/m^3, at an unperturbed spot."""
    r = _resistance(
        inner_thickness, inner_conductivity, outer_thickness, outer_conductivity, charge_transfer_resistance
    )
    return as_result(np.abs(f64(interface_voltage)) / (r**2 * f64(inner_conductivity)))
