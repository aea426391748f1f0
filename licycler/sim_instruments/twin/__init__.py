"""The digital twin: a physics-faithful simulated lithium-metal cell and stack-pressure rig.

:class:`TwinCell` implements :class:`~licycler.sim_instruments.interfaces.CellTerminals` and
:class:`PressureRig` implements :class:`~licycler.sim_instruments.interfaces.PressureRigModel`;
:class:`Twin` holds both. Configuration lives in :mod:`.config` (read from YAML scenarios by
:mod:`licycler.sim_instruments.scenario`).
"""

from licycler.sim_instruments.twin.cell import TwinCell, TwinEvent, TwinState
from licycler.sim_instruments.twin.config import (
    CELL_KINDS,
    ELECTROLYTE_PRESETS,
    FAULT_KINDS,
    RIG_CONTROLS,
    CellConfig,
    DefectConfig,
    EfficiencyConfig,
    ElectrolyteConfig,
    FaultConfig,
    KineticsConfig,
    MeasurementConfig,
    NucleationConfig,
    RigConfig,
    SeiConfig,
    SeparatorConfig,
    TwinConfig,
    mah_cm2,
)
from licycler.sim_instruments.twin.rig import PressureRig
from licycler.sim_instruments.twin.twin import Twin
from licycler.sim_instruments.twin.voltage import ElectrodeInputs, VoltageModel, nucleation_shape

__all__ = [
    "CELL_KINDS",
    "ELECTROLYTE_PRESETS",
    "FAULT_KINDS",
    "RIG_CONTROLS",
    "CellConfig",
    "DefectConfig",
    "EfficiencyConfig",
    "ElectrodeInputs",
    "ElectrolyteConfig",
    "FaultConfig",
    "KineticsConfig",
    "MeasurementConfig",
    "NucleationConfig",
    "PressureRig",
    "RigConfig",
    "SeiConfig",
    "SeparatorConfig",
    "Twin",
    "TwinCell",
    "TwinConfig",
    "TwinEvent",
    "TwinState",
    "VoltageModel",
    "mah_cm2",
    "nucleation_shape",
]
