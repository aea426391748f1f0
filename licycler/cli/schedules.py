"""``licycler validate FILE`` and ``licycler protocols list|show NAME``."""

from __future__ import annotations

import argparse
from typing import Any

from licycler.errors import UserError
from licycler.protocols import list_protocols, load_protocol, load_schedule, protocol_path
from licycler.protocols.schedule import Schedule

__all__ = ["register", "summary"]


def summary(schedule: Schedule) -> str:
    """A few lines a person can check a schedule by: cell, window, steps and their kinds."""
    kinds: dict[str, int] = {}
    for step in schedule.steps:
        kinds[step.kind] = kinds.get(step.kind, 0) + 1
    lim = schedule.limits
    return "\n".join(
        [
            f"{schedule.name}",
            f"  cell: {schedule.cell.chemistry}, electrode area {schedule.cell.area_m2 * 1e4:g} cm^2",
            f"  voltage window: {lim.voltage_min_v:g} V to {lim.voltage_max_v:g} V",
            f"  steps: {len(schedule.steps)} after expanding repeats ("
            + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
            + ")",
            f"  sha256: {schedule.sha256[:16]}",
        ]
    )


def _validate(args: argparse.Namespace) -> int:
    schedule = load_schedule(args.file)
    print(f"{args.file}: valid")
    print(summary(schedule))
    return 0


def _protocols(args: argparse.Namespace) -> int:
    if args.action == "list":
        for name, title in list_protocols().items():
            print(f"{name:<28} {title}")
        return 0
    if not args.name:
        names = ", ".join(list_protocols())
        raise UserError(f"'protocols show' needs a protocol name: one of {names}")
    load_protocol(args.name)  # shipped protocols are validated before they are shown
    print(protocol_path(args.name).read_text(encoding="utf-8"), end="")
    return 0


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """Add ``validate`` and ``protocols``."""
    p = sub.add_parser("validate", help="check a schedule file; errors give file, line and field")
    p.add_argument("file", help="schedule YAML file")
    p.set_defaults(handler=_validate)
    p = sub.add_parser("protocols", help="the standard lithium-metal protocols shipped with licycler")
    p.add_argument("action", choices=("list", "show"))
    p.add_argument("name", nargs="?", help="protocol name (for show)")
    p.set_defaults(handler=_protocols)
