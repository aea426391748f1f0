"""Interfacial kinetics: Butler-Volmer both ways, exchange current, overpotentials.

SI: current density A/m^2 (positive = anodic, stripping), overpotential V (positive = anodic),
temperature K. alpha_a and alpha_c are the anodic and cathodic transfer coefficients.
"""

from __future__ import annotations

import math
from typing import Any, TypeGuard

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

    Exact for alpha_a = alpha_c (eta = asinh(j / 2 i0) / (alpha f)). Otherwise a safeguarded Newton
    iteration (bisection whenever a step leaves the bracket) inside the bracket [0, ln(1 + j/i0) / (a_a f)]
    for j > 0 (mirrored for j < 0), converged to machine precision. As i0 goes to zero (surface
    depletion) the overpotential diverges logarithmically, to +-inf at 0.
    """
    if _scalar(alpha_a) and _scalar(alpha_c) and _scalar(temperature) and math.isclose(alpha_a, alpha_c):
        # symmetric transfer: the exact closed form, without broadcasting the scalar parameters
        f_s = 0.5 * (alpha_a + alpha_c) * F / (R * temperature)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            return as_result(np.arcsinh(f64(current_density) / (2.0 * f64(exchange_current_density))) / f_s)
    j, i0, aa, ac, temp = np.broadcast_arrays(
        *(f64(v) for v in (current_density, exchange_current_density, alpha_a, alpha_c, temperature))
    )
    f = F / (R * temp)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        eta = np.arcsinh(j / (2.0 * i0)) / (0.5 * (aa + ac) * f)
        todo = ~np.isclose(aa, ac) & np.isfinite(eta) & (j != 0)
        if np.any(todo):
            eta = np.array(eta, dtype=np.float64, ndmin=1)
            todo = np.atleast_1d(todo)
            jj, ii, a_a, a_c, ff = (np.atleast_1d(x)[todo] for x in (j, i0, aa, ac, f))
            lo = np.where(jj > 0, 0.0, -np.log1p(-jj / ii) / (a_c * ff))
            hi = np.where(jj > 0, np.log1p(jj / ii) / (a_a * ff), 0.0)
            x = np.clip(eta[todo], lo, hi)
            for _ in range(200):
                ea, ec = np.exp(a_a * ff * x), np.exp(-a_c * ff * x)
                resid = ii * (ea - ec) - jj
                lo = np.where(resid < 0, x, lo)
                hi = np.where(resid > 0, x, hi)
                newton = x - resid / (ii * ff * (a_a * ea + a_c * ec))
                inside = (newton > lo) & (newton < hi)
                x_new = np.where(inside, newton, 0.5 * (lo + hi))
                done = np.abs(x_new - x) <= 1e-15 + 1e-13 * np.abs(x)
                x = x_new
                if np.all(done):
                    break
            eta[todo] = x
            eta = eta.reshape(j.shape)
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


def _scalar(value: Any) -> TypeGuard[float]:
    """A plain Python number (not an array: those go through broadcasting)."""
    return isinstance(value, float | int) and not isinstance(value, bool)
