"""Configuration of the digital twin: cell, electrolyte, separator, defects, rig, measurement, faults.

Every field is SI (the unit is in its name) and carries metadata for the YAML scenario reader
(``licycler.sim_instruments.scenario``): its YAML key, the dimension it is parsed with, its range
and a one-line description. The same metadata checks values built in code (``__post_init__``), so
a dataclass built by hand and one read from a file obey the same rules.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from licycler import units
from licycler.physics.constants import ROOM_TEMPERATURE_K

__all__ = [
    "CELL_KINDS",
    "ELECTROLYTE_PRESETS",
    "FAULT_KINDS",
    "FAULT_REQUIRED",
    "RIG_CONTROLS",
    "CellConfig",
    "DefectConfig",
    "EfficiencyConfig",
    "ElectrolyteConfig",
    "FaultConfig",
    "KineticsConfig",
    "MeasurementConfig",
    "NucleationConfig",
    "RigConfig",
    "SeiConfig",
    "SeparatorConfig",
    "TwinConfig",
    "check_ranges",
    "mah_cm2",
]

MAH_PER_CM2_IN_C_PER_M2 = 36000.0  # 1 mAh/cm^2 = 3.6 C / 1e-4 m^2
CELL_KINDS = ("li-li", "li-cu")
RIG_CONTROLS = ("constant-pressure", "fixed-gap")


def q(
    default: Any,
    key: str,
    dim: units.Dimension | None,
    doc: str,
    *,
    lo: float | None = None,
    hi: float | None = None,
    gt: float | None = None,
    choices: tuple[str, ...] | None = None,
) -> Any:
    """A dataclass field with its YAML ``key``, ``dim`` (None: a plain number), range and doc.

    ``lo``/``hi`` are inclusive bounds, ``gt`` an exclusive lower bound (all SI).
    """
    meta = {"key": key, "dim": dim, "doc": doc, "lo": lo, "hi": hi, "gt": gt, "choices": choices}
    return field(default=default, metadata=meta)


def check_ranges(obj: Any) -> None:
    """Raise ValueError naming the first field of a config dataclass outside its range."""
    for f in dataclasses.fields(obj):
        meta = f.metadata
        if "key" not in meta:
            continue
        value = getattr(obj, f.name)
        if meta["choices"] is not None:
            if value not in meta["choices"]:
                raise ValueError(f"{meta['key']}: expected one of {', '.join(meta['choices'])}, got {value!r}")
            continue
        if value is None or not isinstance(value, int | float):
            continue
        if not math.isfinite(value) and not (value == math.inf and meta["hi"] is None):
            raise ValueError(f"{meta['key']}: must be finite, got {value}")
        if meta["gt"] is not None and not value > meta["gt"]:
            raise ValueError(f"{meta['key']}: must be greater than {meta['gt']:g}, got {value:g}")
        if meta["lo"] is not None and value < meta["lo"]:
            raise ValueError(f"{meta['key']}: must be at least {meta['lo']:g}, got {value:g}")
        if meta["hi"] is not None and value > meta["hi"]:
            raise ValueError(f"{meta['key']}: must be at most {meta['hi']:g}, got {value:g}")


class _Checked:
    def __post_init__(self) -> None:
        check_ranges(self)


_D = units
_MAH = MAH_PER_CM2_IN_C_PER_M2


@dataclass(frozen=True)
class ElectrolyteConfig(_Checked):
    """Salt diffusivity, concentration, transference number and conductivity of the electrolyte."""

    diffusivity_m2_s: float = q(3.22e-10, "diffusivity", _D.DIFFUSIVITY, "free salt diffusivity D", gt=0)
    concentration_mol_m3: float = q(1000.0, "concentration", _D.CONCENTRATION, "salt concentration c0", gt=0)
    transference_number: float = q(0.38, "transference_number", None, "cation transference number t+", lo=0, hi=0.999)
    conductivity_s_m: float = q(1.0, "conductivity", _D.CONDUCTIVITY, "ionic conductivity kappa", gt=0)


ELECTROLYTE_PRESETS: dict[str, ElectrolyteConfig] = {
    # parameters.md: Valoen & Reimers 2005 (PyBaMM Xu2019)
    "lipf6-ec-dmc": ElectrolyteConfig(3.22e-10, 1000.0, 0.38, 1.0),
    # Capiglia et al. 1999 (PyBaMM Marquis2019)
    "lipf6-ec-dmc-capiglia": ElectrolyteConfig(2.79e-10, 1000.0, 0.40, 1.0),
    # Nyman et al. 2008 (PyBaMM Chen2020)
    "lipf6-ec-emc": ElectrolyteConfig(1.77e-10, 1000.0, 0.2594, 0.95),
    # not well established; an assumption within the reference's range
    "litfsi-dol-dme": ElectrolyteConfig(1.0e-9, 1000.0, 0.45, 1.2),
}


@dataclass(frozen=True)
class SeparatorConfig(_Checked):
    """The electrolyte gap: thickness, porosity and Bruggeman exponent (or tortuosity)."""

    thickness_m: float = q(25e-6, "thickness", _D.LENGTH, "separator (gap) thickness L", gt=0)
    porosity: float = q(0.4, "porosity", None, "porosity eps (1 for a free liquid)", gt=0, hi=1)
    bruggeman: float = q(1.5, "bruggeman", None, "Bruggeman exponent b (D_eff = D eps^b)", lo=0)
    tortuosity: float | None = q(None, "tortuosity", None, "tortuosity tau (D_eff = D eps / tau); overrides b", lo=1)


@dataclass(frozen=True)
class KineticsConfig(_Checked):
    """Butler-Volmer kinetics of Li/Li+ at both electrodes."""

    exchange_current_density_a_m2: float = q(
        70.0, "exchange_current_density", _D.EXCHANGE_CURRENT_DENSITY, "i0 at c0 (7 mA/cm^2)", gt=0
    )
    alpha_a: float = q(0.5, "alpha_a", None, "anodic transfer coefficient", gt=0, hi=1)
    alpha_c: float = q(0.5, "alpha_c", None, "cathodic transfer coefficient", gt=0, hi=1)


_SEI_GROWTH = (_D.AREA_RESISTANCE / _D.AREAL_CHARGE).named(
    "an SEI growth (area resistance per areal charge)", "1 ohm cm^2/(mAh/cm^2)"
)


@dataclass(frozen=True)
class SeiConfig(_Checked):
    """SEI resistance per electrode and its growth with the charge cycled through that electrode."""

    resistance_ohm_m2: float = q(1e-3, "resistance", _D.AREA_RESISTANCE, "initial SEI resistance per electrode", lo=0)
    growth_ohm_m2_per_c_m2: float = q(
        1e-4 / (10 * _MAH),
        "growth",
        _SEI_GROWTH,
        "SEI resistance added per areal charge plated or stripped",
        lo=0,
    )


@dataclass(frozen=True)
class NucleationConfig(_Checked):
    """The nucleation overpotential on a bare substrate: rises, peaks at eta_n, relaxes."""

    overpotential_v: float = q(0.05, "overpotential", _D.VOLTAGE, "nucleation overpotential eta_n", lo=0)
    charge_c_m2: float = q(
        0.005 * _MAH,
        "charge",
        _D.AREAL_CHARGE,
        "plated areal charge at the peak",
        gt=0,
    )


@dataclass(frozen=True)
class EfficiencyConfig(_Checked):
    """Coulombic efficiency of each plating: mean, per-cycle noise, drift, current and pressure."""

    coulombic_efficiency: float = q(0.99, "coulombic_efficiency", None, "CE of a plating at the references", gt=0, hi=1)
    noise: float = q(0.0, "noise", None, "standard deviation of the CE drawn for each plating", lo=0)
    drift_per_cycle: float = q(0.0, "drift_per_cycle", None, "change of CE per cycle (negative: ageing)")
    current_exponent: float = q(0.0, "current_exponent", None, "loss ~ (j / j_ref)^this")
    reference_current_density_a_m2: float = q(
        10.0, "reference_current_density", _D.CURRENT_DENSITY, "j_ref of the current dependence", gt=0
    )
    pressure_exponent: float = q(0.0, "pressure_exponent", None, "loss ~ (p_ref / p)^this")
    reference_pressure_pa: float = q(1e6, "reference_pressure", _D.PRESSURE, "p_ref of the pressure dependence", gt=0)
    dendritic_loss_factor: float = q(
        3.0, "dendritic_loss_factor", None, "loss multiplier while growth is dendritic", lo=1
    )
    coverage_charge_c_m2: float = q(
        0.02 * _MAH,
        "coverage_charge",
        _D.AREAL_CHARGE,
        "active lithium below which stripping kinetics fade (the end-of-strip spike)",
        gt=0,
    )


@dataclass(frozen=True)
class CellConfig(_Checked):
    """The cell: Li||Li symmetric or Li||Cu anode-free, its area, temperature and lithium."""

    kind: str = q(
        "li-li", "kind", None, "li-li (symmetric) or li-cu (working electrode is bare Cu)", choices=CELL_KINDS
    )
    area_m2: float = q(2.0e-4, "area", _D.AREA, "electrode area", gt=0)
    temperature_k: float = q(ROOM_TEMPERATURE_K, "temperature", _D.TEMPERATURE, "cell temperature", gt=0)
    working_lithium_c_m2: float = q(
        20 * _MAH,
        "working_lithium",
        _D.AREAL_CHARGE,
        "lithium on the working electrode at the start (li-cu: usually 0)",
        lo=0,
    )
    counter_lithium_c_m2: float = q(
        20 * _MAH,
        "counter_lithium",
        _D.AREAL_CHARGE,
        "lithium on the counter electrode at the start",
        lo=0,
    )
    substrate_ocv_v: float = q(3.0, "substrate_ocv", _D.VOLTAGE, "rest voltage of the bare substrate vs Li (li-cu)")
    kinetics: KineticsConfig = field(default_factory=KineticsConfig)
    sei: SeiConfig = field(default_factory=SeiConfig)
    nucleation: NucleationConfig = field(default_factory=NucleationConfig)
    efficiency: EfficiencyConfig = field(default_factory=EfficiencyConfig)


@dataclass(frozen=True)
class DefectConfig(_Checked):
    """Hot spots, dendrites, soft and hard shorts, voids."""

    alpha: float = q(1.0, "alpha", None, "current intensification at the worst hot spot (j_loc = alpha j)", lo=1)
    alpha_spread: float = q(0.0, "alpha_spread", None, "log-normal spread of alpha drawn from the seed", lo=0)
    protrusion_length_m: float = q(1e-6, "protrusion_length", _D.LENGTH, "protrusion size L in the creep number", gt=0)
    stress_concentration: float = q(
        1.0, "stress_concentration", None, "stack pressure concentration at a tip (sigma = this x P)", lo=1
    )
    short_charge_c_m2: float = q(
        0.5 * _MAH,
        "short_charge",
        _D.AREAL_CHARGE,
        "dendritic charge plated until a soft short forms",
        gt=0,
    )
    short_resistance_ohm: float = q(
        500.0, "short_resistance", _D.RESISTANCE, "soft-short resistance when it forms", gt=0
    )
    short_decay_time_s: float = q(
        3600.0, "short_decay_time", _D.TIME, "e-folding time of the falling short resistance", gt=0
    )
    short_noise: float = q(0.15, "short_noise", None, "relative fluctuation of the short's resistance", lo=0)
    hard_short_resistance_ohm: float = q(
        0.5, "hard_short_resistance", _D.RESISTANCE, "resistance of a hard short", gt=0
    )
    void_alpha: float = q(1.0, "void_alpha", None, "i_max / j at the stripping hot spot", lo=1)
    void_area_fraction: float = q(0.2, "void_area_fraction", None, "contact area lost when a void opens", lo=0, hi=0.99)
    void_heal_charge_c_m2: float = q(
        0.5 * _MAH,
        "void_heal_charge",
        _D.AREAL_CHARGE,
        "plating onto a voided electrode that restores contact",
        gt=0,
    )


@dataclass(frozen=True)
class RigConfig(_Checked):
    """The stack-pressure rig, the stack's compliance and lithium creep."""

    control: str = q(
        "constant-pressure",
        "control",
        None,
        "constant-pressure (actuator holds the setpoint) or fixed-gap (bolted; pressure follows the stack)",
        choices=RIG_CONTROLS,
    )
    setpoint_pa: float = q(1e6, "setpoint", _D.PRESSURE, "initial stack pressure and setpoint", lo=0)
    control_time_s: float = q(5.0, "control_time", _D.TIME, "time constant of the pressure controller", gt=0)
    stack_stiffness_pa_m: float = q(
        1e11, "stack_stiffness", _D.CONTACT_STIFFNESS, "pressure change per stack thickness change", lo=0
    )
    contact_stiffness_pa_m: float = q(
        2e10, "contact_stiffness", _D.CONTACT_STIFFNESS, "interface contact stiffness k_n (voids)", gt=0
    )
    adhesion_strength_pa: float = q(1e5, "adhesion_strength", _D.PRESSURE, "interfacial adhesion sigma_c", lo=0)
    creep_prefactor: float = q(2.5e-46, "creep_prefactor", None, "power-law creep A in Pa^-n s^-1", lo=0)
    creep_exponent: float = q(6.6, "creep_exponent", None, "power-law creep exponent n", gt=0)
    deposit_expansion: float = q(1.0, "deposit_expansion", None, "volume of plated lithium relative to dense", lo=1)
    contact_resistance_ohm_m2: float = q(
        0.0, "contact_resistance", _D.AREA_RESISTANCE, "interface contact resistance at the reference pressure", lo=0
    )
    contact_exponent: float = q(1.0, "contact_exponent", None, "contact resistance ~ (p_ref / p)^this", lo=0)
    reference_pressure_pa: float = q(1e6, "reference_pressure", _D.PRESSURE, "p_ref of the contact resistance", gt=0)


@dataclass(frozen=True)
class MeasurementConfig(_Checked):
    """What an ideal instrument adds when reading the twin (``TwinCell.measure``)."""

    voltage_noise_v: float = q(0.0, "voltage_noise", _D.VOLTAGE, "standard deviation of voltage readings", lo=0)
    current_noise_a: float = q(0.0, "current_noise", _D.CURRENT, "standard deviation of current readings", lo=0)
    voltage_resolution_v: float = q(0.0, "voltage_resolution", _D.VOLTAGE, "voltage quantisation step (0: none)", lo=0)
    current_resolution_a: float = q(0.0, "current_resolution", _D.CURRENT, "current quantisation step (0: none)", lo=0)
    pressure_noise_pa: float = q(0.0, "pressure_noise", _D.PRESSURE, "standard deviation of pressure readings", lo=0)
    temperature_noise_k: float = q(
        0.0, "temperature_noise", _D.TEMPERATURE, "standard deviation of temperature readings", lo=0
    )


FAULT_KINDS: dict[str, dict[str, tuple[units.Dimension | None, str]]] = {
    "pressure_loss": {"to": (_D.PRESSURE, "pressure left (default 0 Pa); the actuator stops")},
    "leak": {"time_constant": (_D.TIME, "pressure decays with this time constant (required)")},
    "setpoint": {"pressure": (_D.PRESSURE, "new setpoint (required)")},
    "soft_short": {
        "resistance": (_D.RESISTANCE, "starting resistance (default defects.short_resistance)"),
        "decay_time": (_D.TIME, "e-folding time of its fall (default defects.short_decay_time)"),
    },
    "hard_short": {"resistance": (_D.RESISTANCE, "resistance (default defects.hard_short_resistance)")},
    "contact_loss": {"fraction": (None, "fraction of the electrode area that loses contact (required)")},
    "temperature": {"to": (_D.TEMPERATURE, "new cell temperature (required)")},
    "defect": {"alpha": (None, "new hot-spot intensification (required)")},
}
"""Fault kinds, their parameters (dimension, description)."""

FAULT_REQUIRED: dict[str, tuple[str, ...]] = {
    "leak": ("time_constant",),
    "setpoint": ("pressure",),
    "contact_loss": ("fraction",),
    "temperature": ("to",),
    "defect": ("alpha",),
}
"""Parameters a fault kind cannot do without."""


@dataclass(frozen=True)
class FaultConfig:
    """A timed fault: ``kind`` at ``at_s`` (s) with SI ``params`` (see FAULT_KINDS)."""

    at_s: float
    kind: str
    params: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; expected one of {', '.join(FAULT_KINDS)}")
        unknown = set(self.params) - set(FAULT_KINDS[self.kind])
        if unknown:
            raise ValueError(f"fault {self.kind}: unknown parameter(s) {', '.join(sorted(unknown))}")
        missing = set(FAULT_REQUIRED.get(self.kind, ())) - set(self.params)
        if missing:
            raise ValueError(f"fault {self.kind}: missing parameter(s) {', '.join(sorted(missing))}")
        if not self.at_s >= 0:
            raise ValueError(f"fault {self.kind}: 'at' must be >= 0, got {self.at_s}")

    def get(self, name: str, default: float) -> float:
        return float(self.params.get(name, default))


@dataclass(frozen=True)
class TwinConfig:
    """Everything that defines a twin run; ``seed`` makes it reproducible."""

    cell: CellConfig = field(default_factory=CellConfig)
    electrolyte: ElectrolyteConfig = field(default_factory=ElectrolyteConfig)
    separator: SeparatorConfig = field(default_factory=SeparatorConfig)
    defects: DefectConfig = field(default_factory=DefectConfig)
    rig: RigConfig = field(default_factory=RigConfig)
    measurement: MeasurementConfig = field(default_factory=MeasurementConfig)
    faults: tuple[FaultConfig, ...] = ()
    seed: int = 0
    name: str = ""
    description: str = ""


def mah_cm2(value: float) -> float:
    """An areal charge given in mAh/cm^2, as C/m^2."""
    return value * MAH_PER_CM2_IN_C_PER_M2
