"""Small cycler routines that drive a cell through the CellTerminals interface only (for tests)."""

from __future__ import annotations

import numpy as np

from licycler.sim_instruments.interfaces import CellTerminals, FloatArray


def hold(
    cell: CellTerminals, current_a: float, t0: float, duration_s: float, dt_s: float
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Source ``current_a`` from ``t0`` for ``duration_s``, sampled every ``dt_s``: (t, V, I)."""
    cell.source_current(current_a, t0)
    n = max(1, round(duration_s / dt_s))
    times = t0 + duration_s * np.arange(1, n + 1) / n
    v, i = cell.sample(times)
    return times, v, i


def run_to_voltage(
    cell: CellTerminals,
    current_a: float,
    t0: float,
    dt_s: float,
    *,
    above_v: float | None = None,
    below_v: float | None = None,
    max_s: float = 1e6,
    block: int = 4096,
) -> tuple[float, FloatArray, FloatArray]:
    """Source ``current_a`` from ``t0`` until the voltage passes a bound (the cell's exact stop):
    returns (time of the first sample beyond the bound, sample times, voltages)."""
    cell.source_current(current_a, t0)
    t = t0
    ts: list[FloatArray] = []
    vs: list[FloatArray] = []
    while t - t0 < max_s:
        times = t + dt_s * np.arange(1, block + 1)
        v, _ = cell.sample(times, stop_above_v=above_v, stop_below_v=below_v)  # type: ignore[call-arg]
        ts.append(times[: v.size])
        vs.append(v)
        t = float(times[v.size - 1])
        if v.size < block:
            return t, np.concatenate(ts), np.concatenate(vs)
    raise AssertionError(f"no voltage bound reached within {max_s} s")


def symmetric_cycling(
    cell: CellTerminals, current_a: float, half_cycle_s: float, cycles: int, dt_s: float, t0: float = 0.0
) -> tuple[FloatArray, float]:
    """Plate/strip half-cycles (plating the working electrode first); returns the median |V| over
    the last minute of each half-cycle, and the end time."""
    t = t0
    polarisation = []
    for _ in range(cycles):
        for sign in (-1.0, 1.0):
            _, v, _ = hold(cell, sign * current_a, t, half_cycle_s, dt_s)
            t += half_cycle_s
            tail = max(1, round(60.0 / dt_s))
            polarisation.append(float(np.median(np.abs(v[-tail:]))))
    return np.array(polarisation), t


def steady_li_li_voltage(
    j_working_anodic: float,
    r_sei_each_ohm_m2: float,
    *,
    thickness_m: float = 25e-6,
    porosity: float = 0.4,
    diffusivity: float = 3.22e-10,
    t_plus: float = 0.38,
    c0: float = 1000.0,
    kappa: float = 1.0,
    i0_ref: float = 70.0,
) -> float:
    """The steady voltage of a Li||Li cell from the reference relations alone (transport-model.md):
    linear salt profile, Butler-Volmer at both electrodes with i0(c_s), dilute concentration
    overpotential and the ohmic drop. ``j_working_anodic`` > 0 strips the working electrode."""
    from licycler.physics import (
        concentration_overpotential,
        diffusive_demand,
        effective_diffusivity,
        exchange_current_density,
        kinetic_overpotential,
    )

    j = j_working_anodic
    g = float(diffusive_demand(-j, t_plus)) / float(effective_diffusivity(diffusivity, porosity))
    c_we, c_ce = c0 - 0.5 * g * thickness_m, c0 + 0.5 * g * thickness_m
    eta_we = float(kinetic_overpotential(j, exchange_current_density(i0_ref, c_we, c0, 0.5)))
    eta_ce = float(kinetic_overpotential(-j, exchange_current_density(i0_ref, c_ce, c0, 0.5)))
    conc = float(concentration_overpotential(c_we, c_ce, t_plus))
    r_area = thickness_m / float(effective_diffusivity(kappa, porosity)) + 2.0 * r_sei_each_ohm_m2
    return eta_we - eta_ce + conc + j * r_area
