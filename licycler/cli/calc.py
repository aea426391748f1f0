"""``licycler calc RELATION [--OPTION VALUE ...] [--json]``: the physics relations from the shell.

Every option takes a quantity with a unit (``--current-density "5 mA/cm^2"``) or a bare number in
SI. Each relation is one :class:`Relation` row below; its options and results are data, the
computation is a call into :mod:`licycler.physics`.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from licycler import physics as ph
from licycler import units as u
from licycler.errors import UserError
from licycler.units import Dimension

__all__ = ["RELATIONS", "Option", "Relation", "compute", "register"]


@dataclass(frozen=True)
class Option:
    """One input of a relation: its physical dimension, default and allowed range (SI)."""

    name: str
    dimension: Dimension | tuple[Dimension, ...] | Callable[[Mapping[str, Any]], Dimension]
    help: str
    default: float | None = None
    minimum: float | None = None
    maximum: float | None = None
    min_inclusive: bool = False
    max_inclusive: bool = True

    @property
    def key(self) -> str:
        return self.name.replace("-", "_")

    def check_range(self, value: float) -> None:
        lo, hi = self.minimum, self.maximum
        if lo is not None and (value < lo or (value == lo and not self.min_inclusive)):
            raise UserError(
                f"--{self.name}: expected a value {'>=' if self.min_inclusive else '>'} {lo:g} (SI), got {value:g}"
            )
        if hi is not None and (value > hi or (value == hi and not self.max_inclusive)):
            raise UserError(
                f"--{self.name}: expected a value {'<=' if self.max_inclusive else '<'} {hi:g} (SI), got {value:g}"
            )


@dataclass(frozen=True)
class Relation:
    """A calculator relation: its options, and a function from SI inputs to named SI results."""

    name: str
    help: str
    options: tuple[Option, ...]
    func: Callable[[Mapping[str, Any]], dict[str, float]]
    choices: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


# Options that several relations share, defined once.
def _positive(name: str, dim: Dimension | tuple[Dimension, ...], help: str, default: float | None = None) -> Option:
    return Option(name, dim, help, default=default, minimum=0.0)


DIFFUSIVITY = _positive("diffusivity", u.DIFFUSIVITY, "salt diffusivity D (m^2/s)")
CONCENTRATION = _positive("concentration", u.CONCENTRATION, "bulk salt concentration c0 (mol/m^3, or '1 M')")
TRANSFERENCE = Option(
    "transference-number", u.DIMENSIONLESS, "cation transference number t+", minimum=0.0,
    maximum=1.0, min_inclusive=True, max_inclusive=False,
)  # fmt: skip
CURRENT_DENSITY = _positive("current-density", u.CURRENT_DENSITY, "current density j (A/m^2)")
ALPHA = Option(
    "alpha", u.DIMENSIONLESS, "local intensification j_loc / j", 1.0, minimum=1.0, min_inclusive=True
)
POROSITY = Option(
    "porosity",
    u.DIMENSIONLESS,
    "separator porosity eps (1 = free electrolyte)",
    1.0,
    minimum=0.0,
    maximum=1.0,
)
BRUGGEMAN = Option(
    "bruggeman",
    u.DIMENSIONLESS,
    "Bruggeman exponent b (D_eff = D eps^b)",
    1.5,
    minimum=0.0,
    min_inclusive=True,
)
RETENTION = Option(
    "retention",
    u.DIMENSIONLESS,
    "capacity retention, fraction (0.8) or '80 %'",
    minimum=0.0,
    maximum=1.0,
    max_inclusive=False,
)
CE = Option(
    "ce", u.DIMENSIONLESS, "Coulombic efficiency, fraction (0.99) or '99 %'", minimum=0.0, maximum=1.0
)
CYCLES = _positive("cycles", u.DIMENSIONLESS, "number of cycles")
EXCHANGE = _positive(
    "exchange-current-density", u.EXCHANGE_CURRENT_DENSITY, "exchange current density i0 (A/m^2)"
)
ALPHA_A = Option("alpha-a", u.DIMENSIONLESS, "anodic transfer coefficient", 0.5, minimum=0.0, maximum=1.0)
ALPHA_C = Option("alpha-c", u.DIMENSIONLESS, "cathodic transfer coefficient", 0.5, minimum=0.0, maximum=1.0)
TEMPERATURE = _positive("temperature", u.TEMPERATURE, "temperature (K, or '25 degC')", ph.ROOM_TEMPERATURE_K)
MOLAR_VOLUME = _positive(
    "molar-volume", u.MOLAR_VOLUME, "molar volume of lithium V_m (m^3/mol)", ph.LI_MOLAR_VOLUME_M3_PER_MOL
)
STACK_PRESSURE = _positive("stack-pressure", u.PRESSURE, "stack pressure (Pa)")
CHARGES = (u.CHARGE, u.AREAL_CHARGE)
SEI_LAYERS = (
    _positive("inner-thickness", u.LENGTH, "inner (inorganic) SEI thickness (m)"),
    _positive("inner-conductivity", u.CONDUCTIVITY, "inner SEI ionic conductivity (S/m)"),
    _positive("outer-thickness", u.LENGTH, "outer (organic) SEI thickness (m)"),
    _positive("outer-conductivity", u.CONDUCTIVITY, "outer SEI ionic conductivity (S/m)"),
    Option(
        "charge-transfer-resistance",
        u.AREA_RESISTANCE,
        "charge-transfer resistance (ohm m^2)",
        minimum=0.0,
        min_inclusive=True,
    ),
)


def _creep_prefactor_dimension(values: Mapping[str, Any]) -> Dimension:
    n = float(values["creep_exponent"])
    return (u.PRESSURE ** (-n) / u.TIME).named(f"a creep prefactor in Pa^-{n:g} s^-1", f"1e-40 Pa^-{n:g}/s")


def _electrolyte(v: Mapping[str, Any]) -> tuple[float, float, float, float]:
    return v["diffusivity"], v["concentration"], v["transference_number"], v["current_density"]


def _sand(v: Mapping[str, Any]) -> dict[str, float]:
    d, c0, tp, j = _electrolyte(v)
    t = float(ph.sand_time(d, c0, tp, j, v["alpha"], v["porosity"], v["bruggeman"]))
    return {
        "sand_time_s": t,
        "sand_time_h": t / 3600.0,
        "diffusion_length_m": math.sqrt(v["diffusivity"] * t),
    }


def _critical_alpha(v: Mapping[str, Any]) -> dict[str, float]:
    d, c0, tp, j = _electrolyte(v)
    t = float(ph.sand_time(d, c0, tp, j, 1.0, v["porosity"], v["bruggeman"]))
    return {"sand_time_s": t, "critical_alpha": float(ph.critical_intensification(t, v["plating_time"]))}


def _limiting(v: Mapping[str, Any]) -> dict[str, float]:
    args = (
        v["diffusivity"],
        v["concentration"],
        v["transference_number"],
        v["separator_thickness"],
        v["porosity"],
        v["bruggeman"],
    )
    relax = float(
        ph.gap_relaxation_time(v["separator_thickness"], v["diffusivity"], v["porosity"], v["bruggeman"])
    )
    return {
        "limiting_current_density_a_m2": float(ph.limiting_current_density(*args)),
        "relaxation_time_s": relax,
    }


def _reservoir(v: Mapping[str, Any]) -> dict[str, float]:
    return {
        "ce": float(
            ph.reservoir_ce(v["reservoir_charge"], v["cycled_charge"], v["cycles"], v["stripped_charge"])
        )
    }


def _sei_sensitivity(v: Mapping[str, Any]) -> dict[str, float]:
    layers = tuple(v[k] for k in _SEI_KEYS)
    r = float(ph.sei_resistance(*layers))
    if v["mode"] == "galvanostatic":
        s = float(ph.sei_sensitivity_galvanostatic(v["drive"], *layers))
    else:
        s = float(ph.sei_sensitivity_potentiostatic(v["drive"], *layers))
    return {"resistance_ohm_m2": r, "sensitivity_a_m3": s}


def _one(result: str, func: Callable[..., Any], *keys: str) -> Callable[[Mapping[str, Any]], dict[str, float]]:
    """A relation whose single result is ``func`` of the named SI inputs."""
    return lambda v: {result: float(func(*(v[k] for k in keys)))}


def _charge(name: str, help: str) -> Option:
    return Option(name, CHARGES, help, minimum=0.0)


def _volt(name: str, help: str) -> Option:
    return Option(name, u.VOLTAGE, help)


_KINETICS = ("exchange_current_density", "alpha_a", "alpha_c", "temperature")
_PLATING_TIME = _positive("plating-time", u.TIME, "plating step duration (s)")
_SEPARATOR = _positive("separator-thickness", u.LENGTH, "separator thickness L (m)")
_ELECTROLYTE = (DIFFUSIVITY, CONCENTRATION, TRANSFERENCE)
_SEI_KEYS = tuple(o.key for o in SEI_LAYERS)

RELATIONS: dict[str, Relation] = {
    r.name: r
    for r in (
        Relation("sand-time", "Sand's time at a current density (local with --alpha)",
                 (*_ELECTROLYTE, CURRENT_DENSITY, ALPHA, POROSITY, BRUGGEMAN), _sand),
        Relation("critical-alpha", "the intensification above which a plating step depletes a hot spot",
                 (*_ELECTROLYTE, CURRENT_DENSITY, _PLATING_TIME, POROSITY, BRUGGEMAN), _critical_alpha),
        Relation("diffusive-demand", "the salt flux diffusion must carry, (1 - t+) j / F",
                 (CURRENT_DENSITY, TRANSFERENCE),
                 _one("diffusive_flux_mol_m2_s", ph.diffusive_demand, "current_density", "transference_number")),
        Relation("limiting-current", "limiting current density of a finite electrolyte gap",
                 (*_ELECTROLYTE, _SEPARATOR, POROSITY, BRUGGEMAN), _limiting),
        Relation("required-ce", "the average CE needed to keep a retention after N cycles",
                 (CYCLES, RETENTION), _one("required_ce", ph.required_ce, "cycles", "retention")),
        Relation("cycle-life", "cycles until the capacity falls to a retention at a CE",
                 (CE, RETENTION), _one("cycles", ph.cycles_to_retention, "ce", "retention")),
        Relation("capacity-after", "capacity after n full-depth cycles, Q_n = CE^n Q_0",
                 (_charge("initial-capacity", "initial capacity Q_0 (C, or C/m^2)"), CE, CYCLES),
                 _one("capacity", ph.capacity_after_cycles, "initial_capacity", "ce", "cycles")),
        Relation("ce", "Coulombic efficiency from the stripped and plated charges",
                 (_charge("strip-charge", "charge stripped (C)"), _charge("plate-charge", "charge plated (C)")),
                 _one("ce", ph.coulombic_efficiency, "strip_charge", "plate_charge")),
        Relation("reservoir-ce", "reservoir (modified Aurbach) CE, (n Q_C + Q_S) / (n Q_C + Q_T)",
                 (_charge("reservoir-charge", "reservoir charge Q_T (C or C/m^2)"),
                  _charge("cycled-charge", "cycled charge Q_C (C or C/m^2)"), CYCLES,
                  _charge("stripped-charge", "final stripped charge Q_S (C or C/m^2)")),
                 _one("ce", ph.reservoir_ce, "reservoir_charge", "cycled_charge", "cycles", "stripped_charge")),
        Relation("voltage-efficiency", "mean discharge over mean charge voltage",
                 (_volt("discharge-voltage", "mean discharge voltage (V)"),
                  _volt("charge-voltage", "mean charge voltage (V)")),
                 _one("voltage_efficiency", ph.voltage_efficiency, "discharge_voltage", "charge_voltage")),
        Relation("energy-efficiency", "round-trip energy efficiency, eta_V * CE",
                 (Option("voltage-efficiency", u.DIMENSIONLESS, "voltage efficiency", minimum=0.0, maximum=1.0), CE),
                 _one("energy_efficiency", ph.energy_efficiency, "voltage_efficiency", "ce")),
        Relation("butler-volmer", "current density from the kinetic overpotential",
                 (_volt("overpotential", "kinetic overpotential eta (V, + anodic)"),
                  EXCHANGE, ALPHA_A, ALPHA_C, TEMPERATURE),
                 _one("current_density_a_m2", ph.butler_volmer_current, "overpotential", *_KINETICS)),
        Relation("overpotential", "kinetic overpotential that carries a current density",
                 (Option("current-density", u.CURRENT_DENSITY, "current density j (A/m^2, + anodic)"),
                  EXCHANGE, ALPHA_A, ALPHA_C, TEMPERATURE),
                 _one("overpotential_v", ph.kinetic_overpotential, "current_density", *_KINETICS)),
        Relation("deposition-velocity", "growth velocity of dense lithium, j V_m / F",
                 (CURRENT_DENSITY, MOLAR_VOLUME),
                 _one("deposition_velocity_m_s", ph.deposition_velocity, "current_density", "molar_volume")),
        Relation("lithium-thickness", "thickness of dense lithium holding an areal charge",
                 (_positive("areal-charge", u.AREAL_CHARGE, "areal charge (C/m^2, or '1 mAh/cm^2')"), MOLAR_VOLUME),
                 _one("thickness_m", ph.lithium_thickness, "areal_charge", "molar_volume")),
        Relation("creep-number", "creep competition number Pi = A (alpha P)^n L / v_dep",
                 (Option("creep-exponent", u.DIMENSIONLESS, "power-law creep exponent n", minimum=0.0),
                  Option("creep-prefactor", _creep_prefactor_dimension, "creep prefactor A (Pa^-n s^-1)", minimum=0.0),
                  ALPHA, STACK_PRESSURE, _positive("length", u.LENGTH, "protrusion length scale L (m)"),
                  CURRENT_DENSITY, MOLAR_VOLUME),
                 _one("creep_number", ph.creep_number, "creep_prefactor", "creep_exponent", "alpha",
                      "stack_pressure", "length", "current_density", "molar_volume")),
        Relation("void-time", "earliest void during stripping, (F / V_m)(p0 + sigma_c) / (k_n i_max)",
                 (STACK_PRESSURE,
                  Option("adhesion-strength", u.PRESSURE, "interfacial adhesion strength (Pa)", minimum=0.0,
                         min_inclusive=True),
                  _positive("contact-stiffness", u.CONTACT_STIFFNESS, "contact stiffness k_n (Pa/m)"),
                  CURRENT_DENSITY, MOLAR_VOLUME),
                 _one("void_time_s", ph.void_time, "stack_pressure", "adhesion_strength", "contact_stiffness",
                      "current_density", "molar_volume")),
        Relation("sei-resistance", "bilayer SEI + charge-transfer series resistance",
                 SEI_LAYERS, _one("resistance_ohm_m2", ph.sei_resistance, *_SEI_KEYS)),
        Relation("sei-sensitivity",
                 "|dj/d delta_i| at an SEI thin spot; --drive is j (galvanostatic) or V (potentiostatic)",
                 (*SEI_LAYERS,
                  Option("drive", lambda v: u.CURRENT_DENSITY if v["mode"] == "galvanostatic" else u.VOLTAGE,
                         "imposed mean current density (galvanostatic) or interface voltage (potentiostatic)")),
                 _sei_sensitivity, choices={"mode": ("galvanostatic", "potentiostatic")}),
        Relation("nucleation-overpotential", "iR-corrected nucleation overpotential from the dip and the plateau",
                 (_volt("tip-voltage", "voltage at the first dip (V)"),
                  Option("tip-current", u.CURRENT, "current at the dip (A)"),
                  _volt("plateau-voltage", "voltage on the later plateau (V)"),
                  Option("plateau-current", u.CURRENT, "current on the plateau (A)"),
                  Option("resistance", u.RESISTANCE, "ohmic resistance of the cell (ohm)", minimum=0.0,
                         min_inclusive=True)),
                 _one("nucleation_overpotential_v", ph.nucleation_overpotential, "tip_voltage", "tip_current",
                      "plateau_voltage", "plateau_current", "resistance")),
    )
}  # fmt: skip


def _parse_option(option: Option, raw: str, parsed: Mapping[str, Any]) -> tuple[float, Dimension]:
    dims = option.dimension
    if callable(dims) and not isinstance(dims, Dimension):
        dims = dims(parsed)
    candidates = dims if isinstance(dims, tuple) else (dims,)
    error: u.UnitError | None = None
    for dim in candidates:
        try:
            value = u.parse_quantity(raw, dim, what=f"--{option.name}")
        except u.UnitError as exc:
            error = error or exc
            continue
        option.check_range(value)
        return value, dim
    assert error is not None
    raise UserError(str(error))


def compute(
    relation: Relation, raw: Mapping[str, str | None]
) -> tuple[dict[str, float | str], dict[str, float]]:
    """Parse ``raw`` option strings (None: not given) to SI and evaluate the relation.

    Returns (inputs in SI, results). Raises :class:`UserError` naming the option at fault.
    """
    values: dict[str, Any] = {}
    for key, allowed in relation.choices.items():
        values[key] = raw.get(key) or allowed[0]
    charge_dims: dict[str, Dimension] = {}
    for option in relation.options:
        text = raw.get(option.key)
        if text is None:
            if option.default is None:
                dims = option.dimension
                what = dims.name if isinstance(dims, Dimension) else "a value"
                raise UserError(f"missing --{option.name}: {option.help}, {what}")
            values[option.key] = option.default
            continue
        values[option.key], dim = _parse_option(option, text, values)
        if option.dimension == CHARGES:
            charge_dims[option.name] = dim
    if len({d.exponents for d in charge_dims.values()}) > 1:
        listing = ", ".join(f"--{n} is {d.name}" for n, d in charge_dims.items())
        raise UserError(f"charges must all be absolute or all areal: {listing}")
    results = relation.func(values)
    return values, results


def _format_human(relation: Relation, results: Mapping[str, float]) -> str:
    lines = []
    for key, value in results.items():
        line = f"{key} = {value:.6g}"
        if key.endswith("_s") and math.isfinite(value):
            line += f"  ({value / 3600.0:.4g} h)"
        lines.append(line)
    return "\n".join(lines)


def _run(args: argparse.Namespace) -> int:
    relation = RELATIONS[args.relation]
    raw = {o.key: getattr(args, o.key) for o in relation.options}
    raw.update({k: getattr(args, k) for k in relation.choices})
    inputs, results = compute(relation, raw)
    if args.json:
        print(json.dumps({"relation": relation.name, "inputs": inputs, "result": results, **results}))
    else:
        print(_format_human(relation, results))
    return 0


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """Add ``calc`` and one sub-command per relation."""
    calc = sub.add_parser(
        "calc", help="evaluate a physics relation with units", description=__doc__.splitlines()[0]
    )
    rel_sub = calc.add_subparsers(dest="relation", required=True, metavar="RELATION", parser_class=type(calc))
    for relation in RELATIONS.values():
        p = rel_sub.add_parser(relation.name, help=relation.help, description=relation.help)
        for option in relation.options:
            default = "" if option.default is None else f" [default {option.default:g}]"
            p.add_argument(f"--{option.name}", dest=option.key, metavar="VALUE", help=option.help + default)
        for key, allowed in relation.choices.items():
            p.add_argument(
                f"--{key}", choices=allowed, default=allowed[0], help=f"one of {', '.join(allowed)}"
            )
        p.add_argument("--json", action="store_true", help="print one JSON object (inputs in SI and results)")
        p.set_defaults(handler=_run)
