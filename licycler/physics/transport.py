"""Salt transport: diffusive demand, Sand's time, intensification and the limiting current of a gap.

Pure, vectorised functions in SI units: current density j in A/m^2, diffusivity D in m^2/s,
concentration c in mol/m^3, times in s, lengths in m. A positive j plates lithium.

Porous separators: the effective diffusivity in the flux is D_eff = D eps^b (Bruggeman exponent b,
1.5 by default) or D eps / tau when a tortuosity tau is given; the apparent diffusivity that sets
time scales is D_eff / eps (transport-model.md). With porosity 1 (a flooded or liquid cell) every
relation reduces to the reference text's free-electrolyte form.
"""

from __future__ import annotations

import numpy as np

from licycler.physics._types import ArrayLike, FloatOrArray, as_result, f64
from licycler.physics.constants import FARADAY_C_PER_MOL as F

__all__ = [
    "apparent_diffusivity",
    "critical_intensification",
    "diffusive_demand",
    "effective_diffusivity",
    "gap_relaxation_time",
    "limiting_current_density",
    "local_sand_time",
    "sand_coefficient",
    "sand_coefficient_fit",
    "sand_time",
    "semi_infinite_surface_concentration",
]


def diffusive_demand(current_density: ArrayLike, transference_number: ArrayLike) -> FloatOrArray:
    """Salt flux diffusion must supply at the electrode, (1 - t+) j / F, mol/(m^2 s).

    Migration brings t+ j / F of the j / F consumed; t+ from 0.2 to 0.6 halves the demand.
    """
    return as_result((1.0 - f64(transference_number)) * f64(current_density) / F)


def effective_diffusivity(
    diffusivity: ArrayLike,
    porosity: ArrayLike = 1.0,
    bruggeman: ArrayLike = 1.5,
    tortuosity: ArrayLike | None = None,
) -> FloatOrArray:
    """D_eff = D eps^b (Bruggeman), or D eps / tau when ``tortuosity`` is given, m^2/s."""
    d, eps = f64(diffusivity), f64(porosity)
    if tortuosity is not None:
        return as_result(d * eps / f64(tortuosity))
    return as_result(d * eps ** f64(bruggeman))


def apparent_diffusivity(
    diffusivity: ArrayLike,
    porosity: ArrayLike = 1.0,
    bruggeman: ArrayLike = 1.5,
    tortuosity: ArrayLike | None = None,
) -> FloatOrArray:
    """Dt = D_eff / eps, the diffusivity that sets time scales in a porous gap, m^2/s."""
    return as_result(f64(effective_diffusivity(diffusivity, porosity, bruggeman, tortuosity)) / f64(porosity))


def sand_time(
    diffusivity: ArrayLike,
    concentration: ArrayLike,
    transference_number: ArrayLike,
    current_density: ArrayLike,
    alpha: ArrayLike = 1.0,
    porosity: ArrayLike = 1.0,
    bruggeman: ArrayLike = 1.5,
    tortuosity: ArrayLike | None = None,
) -> FloatOrArray:
    """Sand's time t_s = pi D F^2 c0^2 / (4 (1 - t+)^2 (alpha j)^2), s.

    Semi-infinite electrolyte under constant current: the time at which the surface concentration
    first reaches zero. ``alpha`` is the local intensification (j_loc = alpha j), so the result is
    the local Sand's time t_s / alpha^2. In a porous separator D becomes D_eff eps (that is
    D eps^(b+1)), making t_s shorter by that factor. 1 M LiPF6 (D = 3.22e-10, t+ = 0.38) at
    1 mA/cm^2 gives 61,299 s (17.0 h).
    """
    d_eff = f64(effective_diffusivity(diffusivity, porosity, bruggeman, tortuosity))
    demand = 4.0 * (1.0 - f64(transference_number)) ** 2
    coefficient = np.pi * d_eff * f64(porosity) * F**2 * f64(concentration) ** 2 / demand
    with np.errstate(divide="ignore"):
        return as_result(coefficient / np.square(f64(alpha) * f64(current_density)))


def local_sand_time(sand_time_global: ArrayLike, alpha: ArrayLike) -> FloatOrArray:
    """t_Sand,loc = t_Sand,global / alpha^2 at a hot spot with j_loc = alpha j, s."""
    return as_result(f64(sand_time_global) / f64(alpha) ** 2)


def critical_intensification(sand_time_global: ArrayLike, plating_time: ArrayLike) -> FloatOrArray:
    """alpha* = sqrt(t_Sand / t_plate): hot spots above it deplete within the plating step."""
    return as_result(np.sqrt(f64(sand_time_global) / f64(plating_time)))


def limiting_current_density(
    diffusivity: ArrayLike,
    concentration: ArrayLike,
    transference_number: ArrayLike,
    separator_thickness: ArrayLike,
    porosity: ArrayLike = 1.0,
    bruggeman: ArrayLike = 1.5,
    tortuosity: ArrayLike | None = None,
) -> FloatOrArray:
    """Limiting current density of a finite gap, j_lim = 2 F c0 D_eff / ((1 - t+) L), A/m^2.

    Below it the steady linear profile keeps c(0) = c0 - g L / 2 > 0 and the surface never
    depletes, however long the step; above it depletion comes, at about Sand's time when the
    diffusion length is short compared with L. 25 um at 40 % porosity in 1 M LiPF6: ~101 mA/cm^2.
    """
    d_eff = f64(effective_diffusivity(diffusivity, porosity, bruggeman, tortuosity))
    return as_result(
        2.0 * F * f64(concentration) * d_eff / ((1.0 - f64(transference_number)) * f64(separator_thickness))
    )


def gap_relaxation_time(
    separator_thickness: ArrayLike,
    diffusivity: ArrayLike,
    porosity: ArrayLike = 1.0,
    bruggeman: ArrayLike = 1.5,
    tortuosity: ArrayLike | None = None,
) -> FloatOrArray:
    """Slowest relaxation time of salt across a gap, L^2 / (pi^2 Dt), s.

    After a few of these the profile is at its steady state (seconds for a 25 um separator).
    """
    dt = f64(apparent_diffusivity(diffusivity, porosity, bruggeman, tortuosity))
    return as_result(f64(separator_thickness) ** 2 / (np.pi**2 * dt))


def semi_infinite_surface_concentration(
    time: ArrayLike,
    diffusivity: ArrayLike,
    concentration: ArrayLike,
    transference_number: ArrayLike,
    current_density: ArrayLike,
    porosity: ArrayLike = 1.0,
    bruggeman: ArrayLike = 1.5,
    tortuosity: ArrayLike | None = None,
) -> FloatOrArray:
    """c(0, t) = c0 - 2 g sqrt(Dt t / pi) under constant current from rest, mol/m^3.

    g = (1 - t+) j / (F D_eff); negative values mean the surface has depleted (t > t_s).
    """
    d_eff = f64(effective_diffusivity(diffusivity, porosity, bruggeman, tortuosity))
    dt = d_eff / f64(porosity)
    g = (1.0 - f64(transference_number)) * f64(current_density) / (F * d_eff)
    return as_result(f64(concentration) - 2.0 * g * np.sqrt(dt * f64(time) / np.pi))


def sand_coefficient(diffusivity: ArrayLike, transference_number: ArrayLike) -> FloatOrArray:
    """D / (1 - t+)^2, m^2/s: what a Sand's-time experiment measures."""
    return as_result(f64(diffusivity) / (1.0 - f64(transference_number)) ** 2)


def sand_coefficient_fit(current_density: ArrayLike, sand_times: ArrayLike, concentration: float) -> float:
    """Fit t_s = K j^-2 through the origin and return D / (1 - t+)^2 = 4 K / (pi F^2 c0^2), m^2/s.

    Least squares of ``sand_times`` (s) against ``current_density``^-2 (A/m^2); free electrolyte.
    """
    x = f64(current_density) ** -2.0
    y = f64(sand_times)
    k = float(np.dot(x, y) / np.dot(x, x))
    return 4.0 * k / (np.pi * F**2 * concentration**2)
