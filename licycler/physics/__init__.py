"""The reference relations of lithium-metal anode physics as pure, vectorised functions (SI units).

Each relation exists once, here; the simulator, monitors, safety and calculator all call these.
See ``shared/reference/lithium-metal-anode-physics.md`` and ``transport-model.md``.
"""

from licycler.physics.constants import (
    FARADAY_C_PER_MOL,
    GAS_CONSTANT_J_PER_MOL_K,
    LI_MOLAR_VOLUME_M3_PER_MOL,
    ROOM_TEMPERATURE_K,
)
from licycler.physics.efficiency import (
    capacity_after_cycles,
    coulombic_efficiency,
    coulombic_efficiency_from_loss,
    cycles_to_retention,
    energy_efficiency,
    energy_efficiency_from_energies,
    required_ce,
    reservoir_ce,
    voltage_efficiency,
)
from licycler.physics.gap import GapSpec, GapState, GapTransport
from licycler.physics.kinetics import (
    butler_volmer_current,
    concentration_overpotential,
    exchange_current_density,
    kinetic_overpotential,
    nucleation_overpotential,
)
from licycler.physics.mechanics import (
    creep_number,
    creep_strain_rate,
    deposition_velocity,
    lithium_thickness,
    void_time,
)
from licycler.physics.sei import (
    sei_local_current_galvanostatic,
    sei_local_current_potentiostatic,
    sei_resistance,
    sei_sensitivity_galvanostatic,
    sei_sensitivity_potentiostatic,
)
from licycler.physics.transport import (
    apparent_diffusivity,
    critical_intensification,
    diffusive_demand,
    effective_diffusivity,
    gap_relaxation_time,
    limiting_current_density,
    local_sand_time,
    sand_coefficient,
    sand_coefficient_fit,
    sand_time,
    semi_infinite_surface_concentration,
)

__all__ = [
    "FARADAY_C_PER_MOL",
    "GAS_CONSTANT_J_PER_MOL_K",
    "LI_MOLAR_VOLUME_M3_PER_MOL",
    "ROOM_TEMPERATURE_K",
    "GapSpec",
    "GapState",
    "GapTransport",
    "apparent_diffusivity",
    "butler_volmer_current",
    "capacity_after_cycles",
    "concentration_overpotential",
    "coulombic_efficiency",
    "coulombic_efficiency_from_loss",
    "creep_number",
    "creep_strain_rate",
    "critical_intensification",
    "cycles_to_retention",
    "deposition_velocity",
    "diffusive_demand",
    "effective_diffusivity",
    "energy_efficiency",
    "energy_efficiency_from_energies",
    "exchange_current_density",
    "gap_relaxation_time",
    "kinetic_overpotential",
    "limiting_current_density",
    "lithium_thickness",
    "local_sand_time",
    "nucleation_overpotential",
    "required_ce",
    "reservoir_ce",
    "sand_coefficient",
    "sand_coefficient_fit",
    "sand_time",
    "sei_local_current_galvanostatic",
    "sei_local_current_potentiostatic",
    "sei_resistance",
    "sei_sensitivity_galvanostatic",
    "sei_sensitivity_potentiostatic",
    "semi_infinite_surface_concentration",
    "void_time",
    "voltage_efficiency",
]
