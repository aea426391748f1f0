"""The cell voltage of the twin from surface concentrations, inventory and resistances (vectorised).

V = E_we - E_ce + eta_we - eta_ce + V_conc + I R_area / A_eff, with
- eta at each electrode from Butler-Volmer (physics.kinetic_overpotential) with i0 depending on
  the surface concentration (physics.exchange_current_density) and, on the stripping side, on the
  lithium left (its coverage theta); i0 = 0 (depleted surface or no lithium) makes eta infinite:
  the divergence an instrument's compliance must clamp;
- the nucleation overpotential on a bare substrate, an extra cathodic eta_n (q/q_n) e^(1 - q/q_n)
  that peaks at eta_n after q_n of plating and then relaxes;
- V_conc the dilute-solution concentration overpotential (physics.concentration_overpotential);
- the ohmic drop over electrolyte, SEI and contact resistances (ohm m^2) on the contacted area.
Electrode 0 is the working electrode at x = 0 of the gap, 1 the counter electrode at x = L. The
current I is the one through the electrolyte, positive when it strips the working electrode.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from licycler.physics.constants import FARADAY_C_PER_MOL as F
from licycler.physics.constants import GAS_CONSTANT_J_PER_MOL_K as R
from licycler.physics.kinetics import (
    concentration_overpotential,
    exchange_current_density,
    kinetic_overpotential,
)

__all__ = ["ElectrodeInputs", "VoltageModel", "nucleation_shape"]

FloatArray = npt.NDArray[np.float64]
Value = float | FloatArray


def nucleation_shape(charge_c_m2: Value, peak_charge_c_m2: float) -> Value:
    """(q/q_n) e^(1 - q/q_n): 0 at q = 0, 1 at the peak q = q_n, relaxing after."""
    x = np.asarray(charge_c_m2, dtype=np.float64) / peak_charge_c_m2
    out = x * np.exp(1.0 - x)
    return float(out) if out.ndim == 0 else out


@dataclass
class ElectrodeInputs:
    """Per-sample (or scalar) inputs at one electrode."""

    concentration: Value
    """Surface salt concentration, mol/m^3."""
    coverage: Value = 1.0
    """Fraction of the exchange current available for stripping (lithium left), 0..1."""
    equilibrium_v: Value = 0.0
    """Equilibrium potential vs Li/Li+, V (0 with lithium, the substrate's rest potential bare)."""
    nucleation_v: Value = 0.0
    """Extra cathodic nucleation overpotential (>= 0), V."""


class VoltageModel:
    """Kinetic, concentration and ohmic parts of the cell voltage for given transport states."""

    def __init__(
        self,
        exchange_current_density_a_m2: float,
        alpha_a: float,
        alpha_c: float,
        reference_concentration_mol_m3: float,
        transference_number: float,
    ) -> None:
        self.i0_ref = exchange_current_density_a_m2
        self.alpha_a = alpha_a
        self.alpha_c = alpha_c
        self.c0 = reference_concentration_mol_m3
        self.t_plus = transference_number
        self.c_floor = 1e-12 * reference_concentration_mol_m3

    def _eta(self, j_anodic: FloatArray, e: ElectrodeInputs, temperature_k: float) -> FloatArray:
        """Overpotential carrying the anodic current density ``j_anodic`` (A/m^2) at electrode ``e``:
        the coverage limits stripping (j > 0), the nucleation term adds to plating (j < 0)."""
        i0 = exchange_current_density(self.i0_ref, e.concentration, self.c0, self.alpha_a)
        i0 = i0 * np.where(j_anodic > 0.0, e.coverage, 1.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            eta = kinetic_overpotential(j_anodic, i0, self.alpha_a, self.alpha_c, temperature_k)
        eta = np.where(j_anodic == 0.0, 0.0, eta)
        return np.asarray(eta - np.where(j_anodic < 0.0, e.nucleation_v, 0.0), dtype=np.float64)

    def voltage(
        self,
        current_a: Value,
        contact_area_m2: float,
        working: ElectrodeInputs,
        counter: ElectrodeInputs,
        resistance_ohm_m2: Value,
        temperature_k: float,
    ) -> FloatArray:
        """Terminal voltage of the cell itself (no short), V; +-inf where no finite voltage
        carries the current (depleted surface, no lithium left to strip)."""
        j = np.asarray(current_a, dtype=np.float64) / contact_area_m2  # anodic at the working electrode
        eta_we = self._eta(j, working, temperature_k)
        eta_ce = self._eta(-j, counter, temperature_k)
        c_we = np.maximum(working.concentration, self.c_floor)
        c_ce = np.maximum(counter.concentration, self.c_floor)
        v_conc = concentration_overpotential(c_we, c_ce, self.t_plus, temperature_k)
        ohmic = j * np.asarray(resistance_ohm_m2)
        out = np.asarray(working.equilibrium_v) - np.asarray(counter.equilibrium_v) + eta_we - eta_ce + v_conc + ohmic
        return np.asarray(out, dtype=np.float64)

    def small_signal_resistance(
        self,
        current_a: Value,
        contact_area_m2: float,
        working: ElectrodeInputs,
        counter: ElectrodeInputs,
        resistance_ohm_m2: Value,
        temperature_k: float,
    ) -> FloatArray:
        """dV/dI at fixed concentrations (kinetic + ohmic), ohm."""
        j = np.asarray(current_a, dtype=np.float64) / contact_area_m2
        f = 0.5 * (self.alpha_a + self.alpha_c) * F / (R * temperature_k)
        i0_we = exchange_current_density(self.i0_ref, working.concentration, self.c0, self.alpha_a)
        i0_ce = exchange_current_density(self.i0_ref, counter.concentration, self.c0, self.alpha_a)
        with np.errstate(divide="ignore"):
            d_we = 1.0 / (f * np.sqrt(j * j + 4.0 * np.asarray(i0_we) ** 2))
            d_ce = 1.0 / (f * np.sqrt(j * j + 4.0 * np.asarray(i0_ce) ** 2))
        return np.asarray((d_we + d_ce + np.asarray(resistance_ohm_m2)) / contact_area_m2, dtype=np.float64)
