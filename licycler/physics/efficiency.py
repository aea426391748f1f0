"""Coulombic, voltage and energy efficiency, and what they mean for cycle life.

All functions are pure and vectorised: arguments may be floats or numpy arrays (broadcast together).
Charges may be in any one consistent unit (C in SI); efficiencies are fractions (0.99, not 99 %).
"""

from __future__ import annotations

import numpy as np

from licycler.physics._types import ArrayLike, FloatOrArray, as_result, f64

__all__ = [
    "capacity_after_cycles",
    "coulombic_efficiency",
    "coulombic_efficiency_from_loss",
    "cycles_to_retention",
    "energy_efficiency",
    "energy_efficiency_from_energies",
    "required_ce",
    "reservoir_ce",
    "voltage_efficiency",
]


def coulombic_efficiency(q_strip: ArrayLike, q_plate: ArrayLike) -> FloatOrArray:
    """CE = Q_strip / Q_plate (charges in the same unit, C in SI)."""
    return as_result(f64(q_strip) / f64(q_plate))


def coulombic_efficiency_from_loss(q_loss: ArrayLike, q_plate: ArrayLike) -> FloatOrArray:
    """CE = 1 - Q_loss / Q_plate, from the charge lost to SEI and dead lithium (same unit)."""
    return as_result(1.0 - f64(q_loss) / f64(q_plate))


def capacity_after_cycles(q0: ArrayLike, ce: ArrayLike, n: ArrayLike) -> FloatOrArray:
    """Reversible capacity after n full-depth cycles, Q_n = CE^n Q_0 (unit of ``q0``)."""
    return as_result(f64(q0) * np.power(f64(ce), n))


def cycles_to_retention(ce: ArrayLike, retention: ArrayLike) -> FloatOrArray:
    """Cycles n at which CE^n falls to ``retention``: n = ln(retention) / ln(CE).

    ``ce`` and ``retention`` are fractions in (0, 1]; CE = 1 gives infinity (no fade).
    0.98 -> 11.0 cycles to 80 %, 0.999 -> 223.
    """
    ce_a = f64(ce)
    ret = f64(retention)
    with np.errstate(divide="ignore"):
        return as_result(np.log(ret) / np.log(ce_a))


def required_ce(cycles: ArrayLike, retention: ArrayLike) -> FloatOrArray:
    """Average CE needed to keep ``retention`` after ``cycles``: CE = retention^(1/cycles).

    1000 cycles at 80 % need CE = 0.99978 (the reference text's number).
    """
    return as_result(np.power(f64(retention), 1.0 / f64(cycles)))


def voltage_efficiency(v_discharge_mean: ArrayLike, v_charge_mean: ArrayLike) -> FloatOrArray:
    """eta_V = |mean discharge voltage| / |mean charge voltage| (V, same sign convention)."""
    return as_result(np.abs(f64(v_discharge_mean)) / np.abs(f64(v_charge_mean)))


def energy_efficiency(eta_v: ArrayLike, ce: ArrayLike) -> FloatOrArray:
    """Round-trip energy efficiency eta_E = eta_V * CE (fractions)."""
    return as_result(f64(eta_v) * f64(ce))


def energy_efficiency_from_energies(e_discharge: ArrayLike, e_charge: ArrayLike) -> FloatOrArray:
    """eta_E = E_discharge / E_charge (energies in J, magnitudes)."""
    return as_result(np.abs(f64(e_discharge)) / np.abs(f64(e_charge)))


def reservoir_ce(
    q_reservoir: ArrayLike, q_cycled: ArrayLike, n_cycles: ArrayLike, q_stripped: ArrayLike
) -> FloatOrArray:
    """Reservoir ("modified Aurbach", Adams et al. 2018) CE = (n Q_C + Q_S) / (n Q_C + Q_T).

    ``q_reservoir`` Q_T is plated first, ``q_cycled`` Q_C is cycled ``n_cycles`` times, and
    ``q_stripped`` Q_S is what the final strip to the cutoff recovers (all charges in one unit).
    Q_T = 5, Q_C = 1, n = 10, Q_S = 4.9 gives 0.9933.
    """
    n_qc = f64(n_cycles) * f64(q_cycled)
    return as_result((n_qc + f64(q_stripped)) / (n_qc + f64(q_reservoir)))
