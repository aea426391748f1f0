"""Chemo-mechanics: deposition velocity, creep against deposition, and voids during stripping.

SI: current density A/m^2, pressure Pa, length m, time s, molar volume m^3/mol, creep prefactor
A in Pa^-n s^-1 (so that A sigma^n is a strain rate in 1/s), contact stiffness k_n in Pa/m.
"""

from __future__ import annotations

import numpy as np

from licycler.physics._types import ArrayLike, FloatOrArray, as_result, f64
from licycler.physics.constants import FARADAY_C_PER_MOL as F
from licycler.physics.constants import LI_MOLAR_VOLUME_M3_PER_MOL

__all__ = [
    "creep_number",
    "creep_strain_rate",
    "deposition_velocity",
    "lithium_thickness",
    "void_time",
]


def deposition_velocity(
    current_density: ArrayLike, molar_volume: ArrayLike = LI_MOLAR_VOLUME_M3_PER_MOL
) -> FloatOrArray:
    """Growth (or recession) velocity of a dense lithium front, v = j V_m / F, m/s."""
    return as_result(f64(current_density) * f64(molar_volume) / F)


def lithium_thickness(
    areal_charge: ArrayLike, molar_volume: ArrayLike = LI_MOLAR_VOLUME_M3_PER_MOL
) -> FloatOrArray:
    """Thickness of dense lithium holding an areal charge Q (C/m^2): h = Q V_m / F, m.

    1 mAh/cm^2 (36,000 C/m^2) is 4.85 um.
    """
    return as_result(f64(areal_charge) * f64(molar_volume) / F)


def creep_strain_rate(
    creep_prefactor: ArrayLike, stress: ArrayLike, creep_exponent: ArrayLike
) -> FloatOrArray:
    """Power-law creep, eps_dot = A sigma^n, 1/s (sigma in Pa)."""
    return as_result(f64(creep_prefactor) * f64(stress) ** f64(creep_exponent))


def creep_number(
    creep_prefactor: ArrayLike,
    creep_exponent: ArrayLike,
    alpha: ArrayLike,
    stack_pressure: ArrayLike,
    length: ArrayLike,
    current_density: ArrayLike,
    molar_volume: ArrayLike = LI_MOLAR_VOLUME_M3_PER_MOL,
) -> FloatOrArray:
    """Creep competition number Pi = A (alpha P)^n L / v_dep, dimensionless.

    Pi >> 1: creep flattens protrusions faster than deposition grows them (planar plating);
    Pi << 1: deposition wins and growth turns dendritic. ``alpha`` concentrates the stack
    pressure P at a protrusion tip; L is the protrusion's length scale; v_dep = j V_m / F.
    """
    v_dep = f64(deposition_velocity(current_density, molar_volume))
    flattening = f64(
        creep_strain_rate(creep_prefactor, f64(alpha) * f64(stack_pressure), creep_exponent)
    ) * f64(length)
    with np.errstate(divide="ignore"):
        return as_result(flattening / v_dep)


def void_time(
    stack_pressure: ArrayLike,
    adhesion_strength: ArrayLike,
    contact_stiffness: ArrayLike,
    current_density: ArrayLike,
    molar_volume: ArrayLike = LI_MOLAR_VOLUME_M3_PER_MOL,
) -> FloatOrArray:
    """Earliest void during stripping, t_f = (F / V_m) (p0 + sigma_c) / (k_n i_max), s.

    ``stack_pressure`` p0 and ``adhesion_strength`` sigma_c in Pa, ``contact_stiffness`` k_n in
    Pa/m, ``current_density`` i_max the largest local stripping current density in A/m^2. The
    recession h = i V_m t / F relieves p0 at k_n h; the interface detaches when the stress
    reaches the adhesion strength in tension.
    """
    with np.errstate(divide="ignore"):
        return as_result(
            (F / f64(molar_volume))
            * (f64(stack_pressure) + f64(adhesion_strength))
            / (f64(contact_stiffness) * f64(current_density))
        )
