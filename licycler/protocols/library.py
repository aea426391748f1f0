"""The standard lithium-metal protocols shipped with licycler (YAML files in ``protocols/library``)."""

from __future__ import annotations

import difflib
from importlib import resources
from pathlib import Path

from licycler.errors import UserError
from licycler.protocols.parse import load_schedule
from licycler.protocols.schedule import Schedule
from licycler.yamlsource import load_yaml

__all__ = ["list_protocols", "load_protocol", "protocol_path"]


def _directory() -> Path:
    return Path(str(resources.files("licycler.protocols") / "library"))


def list_protocols() -> dict[str, str]:
    """Protocol name -> its title, sorted by name."""
    out: dict[str, str] = {}
    for path in sorted(_directory().glob("*.yaml")):
        data, _ = load_yaml(path)
        out[path.stem] = str(data.get("name", path.stem))
    return out


def protocol_path(name: str) -> Path:
    """The YAML file of the standard protocol ``name``; a :class:`UserError` with a suggestion if none."""
    path = _directory() / f"{name}.yaml"
    if not path.is_file():
        names = list(list_protocols())
        hint = difflib.get_close_matches(name, names, n=1)
        also = f" (did you mean '{hint[0]}'?)" if hint else ""
        raise UserError(f"no standard protocol named '{name}'{also}; known: {', '.join(names)}")
    return path


def load_protocol(name: str) -> Schedule:
    """The validated standard protocol ``name``."""
    return load_schedule(protocol_path(name))
