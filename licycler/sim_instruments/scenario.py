"""Digital-twin scenarios: YAML files that set the cell, electrolyte, defects, rig, timed faults and seed.

A scenario is read through :mod:`licycler.yamlsource`, so every mistake is reported as
``file:line: path.to.field: message`` (a :class:`~licycler.errors.UserError`). Quantities carry
units and are parsed by :func:`licycler.units.parse_quantity` (``"25 um"``, ``"7 mA/cm^2"``,
``"1 MPa"``, ``"25 degC"``; a bare number is SI). Every key, its unit and its default is in
``docs/scenario.md``; the readable names come from the metadata of the config dataclasses in
:mod:`licycler.sim_instruments.twin.config`, so the reader and the model cannot disagree.

Bundled scenarios (``default``, ``li-cu``, ``soft-short``, ``thick-gap``, ``void``,
``pressure-faults``) live next to this module in ``scenarios/``; :func:`load_scenario` takes such a
name or a path.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, TypeVar

from licycler import units
from licycler.errors import UserError
from licycler.sim_instruments.interfaces import Clock
from licycler.sim_instruments.twin.config import (
    ELECTROLYTE_PRESETS,
    FAULT_KINDS,
    FAULT_REQUIRED,
    ElectrolyteConfig,
    FaultConfig,
    TwinConfig,
)
from licycler.sim_instruments.twin.twin import Twin
from licycler.yamlsource import Field, load_yaml, load_yaml_text

__all__ = [
    "SCENARIO_DIR",
    "build_twin",
    "list_scenarios",
    "load_scenario",
    "parse_scenario",
    "scenario_path",
]

SCENARIO_DIR = Path(__file__).resolve().parent / "scenarios"
"""Where the bundled scenario files are."""

_SECTIONS = ("cell", "electrolyte", "separator", "defects", "rig", "measurement")
_TOP = (*_SECTIONS, "faults", "seed", "name", "description")

T = TypeVar("T")


def list_scenarios() -> list[str]:
    """Names of the bundled scenarios."""
    return sorted(p.stem for p in SCENARIO_DIR.glob("*.yaml"))


def scenario_path(name_or_path: str | Path) -> Path:
    """The file of a bundled scenario name, or ``name_or_path`` itself when it is a file."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or p.is_file():
        return p
    bundled = SCENARIO_DIR / f"{name_or_path}.yaml"
    if bundled.is_file():
        return bundled
    raise UserError(
        f"no scenario named '{name_or_path}' (bundled: {', '.join(list_scenarios())}; or give a .yaml path)"
    )


def load_scenario(name_or_path: str | Path) -> TwinConfig:
    """Read and check a scenario (bundled name or file path)."""
    path = scenario_path(name_or_path)
    data, _ = load_yaml(path)
    return _read(Field(data, str(path)))


def parse_scenario(text: str, source: str = "<scenario>") -> TwinConfig:
    """Read and check scenario YAML ``text``; ``source`` names it in errors."""
    return _read(Field(load_yaml_text(text, source), source))


def build_twin(name_or_path: str | Path, clock: Clock | None = None, *, start_s: float | None = None) -> Twin:
    """A :class:`Twin` for the scenario, starting at ``start_s`` (default: the clock's time, or 0)."""
    start = start_s if start_s is not None else (clock.now() if clock is not None else 0.0)
    return Twin(load_scenario(name_or_path), start_s=start)


# ---------------------------------------------------------------------------------- reading
def _read(root: Field) -> TwinConfig:
    if root.value is None:
        return TwinConfig()
    root.mapping(allowed=_TOP)
    kwargs: dict[str, Any] = {}
    defaults = TwinConfig()
    for name in _SECTIONS:
        section = root.get(name)
        if section is not None:
            kwargs[name] = _read_section(section, getattr(defaults, name))
    faults = root.get("faults")
    if faults is not None:
        kwargs["faults"] = tuple(_read_fault(f) for f in faults.sequence())
    seed = root.get("seed")
    if seed is not None:
        kwargs["seed"] = seed.integer(minimum=0)
    for name in ("name", "description"):
        text = root.get(name)
        if text is not None:
            kwargs[name] = text.text()
    return TwinConfig(**kwargs)


def _read_section(field: Field, default: T) -> T:
    """Read a config dataclass from a YAML mapping, starting from ``default``'s values."""
    cls = type(default)
    scalars = {f.metadata["key"]: f for f in dataclasses.fields(cls) if "key" in f.metadata}  # type: ignore[arg-type]
    nested = {
        f.name: f
        for f in dataclasses.fields(cls)  # type: ignore[arg-type]
        if "key" not in f.metadata and dataclasses.is_dataclass(getattr(default, f.name))
    }
    extra = ("preset",) if isinstance(default, ElectrolyteConfig) else ()
    field.mapping(allowed=(*extra, *scalars, *nested))
    base: Any = default
    if extra:
        preset = field.get("preset")
        if preset is not None:
            base = ELECTROLYTE_PRESETS[preset.text(choices=tuple(ELECTROLYTE_PRESETS))]
    changes: dict[str, Any] = {}
    for key, child in field.items():
        if key in extra:
            continue
        if key in nested:
            changes[key] = _read_section(child, getattr(base, key))
            continue
        f = scalars[key]
        meta = f.metadata
        if child.value is None:
            if f.default is None:
                changes[f.name] = None
                continue
            raise child.error("a value is needed here")
        if meta["choices"] is not None:
            changes[f.name] = child.text(choices=meta["choices"])
            continue
        dim = meta["dim"] if meta["dim"] is not None else units.DIMENSIONLESS
        value = child.quantity(dim, minimum=meta["lo"], maximum=meta["hi"])
        if meta["gt"] is not None and not value > meta["gt"]:
            raise child.error(f"must be greater than {meta['gt']:g}, got '{child.value}'")
        changes[f.name] = value
    try:
        result: T = dataclasses.replace(base, **changes)
    except ValueError as exc:
        raise field.error(str(exc)) from None
    return result


def _read_fault(field: Field) -> FaultConfig:
    field.mapping(required=("at", "kind"))
    kind = field["kind"].text(choices=tuple(FAULT_KINDS))
    params = FAULT_KINDS[kind]
    field.mapping(allowed=("at", "kind", *params), required=("at", "kind", *FAULT_REQUIRED.get(kind, ())))
    at = field["at"].quantity(units.TIME, non_negative=True)
    values: dict[str, float] = {}
    for name, (dim, _doc) in params.items():
        child = field.get(name)
        if child is None:
            continue
        if name == "fraction":
            values[name] = child.quantity(units.DIMENSIONLESS, minimum=0.0, maximum=0.99)
        elif name == "alpha":
            values[name] = child.quantity(units.DIMENSIONLESS, minimum=1.0)
        else:
            values[name] = child.quantity(dim if dim is not None else units.DIMENSIONLESS, non_negative=True)
    try:
        return FaultConfig(at, kind, values)
    except ValueError as exc:
        raise field.error(str(exc)) from None
