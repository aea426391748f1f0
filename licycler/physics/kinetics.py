"""Interfacial kinetics: Butler-Volmer both ways, exchange current, overpotentials.

SI: current density A/m^2 (positive = anodic, stripping), overpotential V (positive = anodic),
temperature K. alpha_a and alpha_c are the anodic and cathodic transfer coefficients.
"""

from __future__ import annotations

import numpy as np

from licycler.physics._types import ArrayLike, FloatOrArray, as_result, f64
from licycler.physics.constants import FARADAY_C_PER_MOL as F
from licycler.physics.constants import GAS_CONSTANT_J_PER_MOL_K as R
from licycler.physics.constants import ROOM_TEMPERATURE_K

__all__ = [
    "butler_volmer_current",
    "concentration_overpotential",
    "exchange_current_density",
    "kinetic_overpotential",
    "nucleation_overpotential",
]


def butler_volmer_current(
    overpotential: ArrayLike,
    exchange_current_density: ArrayLike,
    alpha_a: ArrayLike = 0.5,
    alpha_c: ArrayLike = 0.5,
    temperature: ArrayLike = ROOM_TEMPERATURE_K,
) -> FloatOrArray:
    """j = i0 [exp(a_a F eta / RT) - exp(-a_c F eta / RT)], A/m^2 (eta in V, i0 in A/m^2)."""
    f = F / (R * f64(temperature))
    eta = f64(overpotential)
    aa, ac = f64(alpha_a), f64(alpha_c)
    return as_result(f64(exchange_current_density) * (np.exp(aa * f * eta) - np.exp(-ac * f * eta)))


def kinetic_overpotential(
    current_density: ArrayLike,
    exchange_current_density: ArrayLike,
    alpha_a: ArrayLike = 0.5,
    alpha_c: ArrayLike = 0.5,
    temperature: ArrayLike = ROOM_TEMPERATURE_K,
) -> FloatOrArray:
    """Inverse of :func:`butler_volmer_current`: the overpotential (V) that carries j (A/m^2).

    Exact for alpha_a = alpha_c (eta = asinh(j / 2 i0) / (alpha f)); otherwise Newton iterations
    on the monotone Butler-Volmer curve from that start, converged to machine precision. As i0
    goes to zero (surface depletion) the overpotential diverges logarithmically, to +-inf at 0.
    """
    j, i0, aa, ac, temp = np.broadcast_arrays(
        *(f64(v) for v in (current_density, exchange_current_density, alpha_a, alpha_c, temperature))
    )
    f = F / (R * temp)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        a_mean = 0.5 * (aa + ac)
        eta = np.arcsinh(j / (2.0 * i0)) / (a_mean * f)
        asymmetric = ~np.isclose(aa, ac)
        if np.any(asymmetric):
            for _ in range(100):
                ea, ec = np.exp(aa * f * eta), np.exp(-ac * f * eta)
                resid = i0 * (ea - ec) - j
                slope = i0 * f * (aa * ea + ac * ec)
                step = np.where(asymmetric & np.isfinite(eta), resid / slope, 0.0)
                eta = eta - step
                if np.all(np.abs(step) <= 1e-15 * np.maximum(1.0, np.abs(eta))):
                    break
    return as_result(eta)


def exchange_current_density(
    reference_exchange_current_density: ArrayLike,
    surface_concentration: ArrayLike,
    reference_concentration: ArrayLike,
    alpha_a: ArrayLike = 0.5,
) -> FloatOrArray:
    """i0(c_s) = i0_ref (c_s / c0)^alpha_a, A/m^2 (transport-model.md); zero when c_s <= 0."""
    ratio = np.clip(f64(surface_concentration) / f64(reference_concentration), 0.0, None)
    return as_result(f64(reference_exchange_current_density) * ratio ** f64(alpha_a))


def concentration_overpotential(
    concentration_stripping: ArrayLike,
    concentration_plating: ArrayLike,
    transference_number: ArrayLike,
    temperature: ArrayLike = ROOM_TEMPERATURE_K,
) -> FloatOrArray:
    """Dilute-solution concentration overpotential across the gap, (2 RT / F)(1 - t+) ln(c_L / c_0), V.

    ``concentration_stripping`` c_L and ``concentration_plating`` c_0 are the surface
    concentrations (mol/m^3) at the stripping and plating electrodes.
    """
    rt_f = R * f64(temperature) / F
    with np.errstate(divide="ignore"):
        ratio = np.log(f64(concentration_stripping) / f64(concentration_plating))
    return as_result(2.0 * rt_f * (1.0 - f64(transference_number)) * ratio)


def nucleation_overpotential(
    voltage_tip: ArrayLike,
    current_tip: ArrayLike,
    voltage_plateau: ArrayLike,
    current_plateau: ArrayLike,
    resistance: ArrayLike,
) -> FloatOrArray:
    """eta_n = |V_tip - I_tip R| - |V_plateau - I_plateau R|, V (parameters.md), iR-corrected.

    V in V, I in A (same sign convention as V), R the cell's ohmic resistance in ohm.
    """
    r = f64(resistance)
    tip = f64(voltage_tip) - f64(current_tip) * r
    plateau = f64(voltage_plateau) - f64(current_plateau) * r
    return as_result(np.abs(tip) - np.abs(plateau))
