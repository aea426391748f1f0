"""``licycler station check FILE``: connect, identify and check the interlocks of a station, sourcing nothing.

The station file is validated first (file, line and field in every error). Then every instrument is
opened and identified and every channel is put in its safe state (output off, queried back) exactly
as a run starts; each channel's identity, output state and stack pressure (against the station's
pressure window) are checked, and its effective limits shown. No current is sourced and no output
is turned on. Exit status 0 when every check passes, 1 when one fails, 2 for a mistake in the
file or an instrument that cannot be reached.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from licycler.clock import RealTimeClock
from licycler.drivers.errors import DriverError
from licycler.safety import ChannelSupervisor, InterlockError, Limits
from licycler.station import StationConfig, load_station, open_station

__all__ = ["ChannelCheck", "check_station", "register"]


@dataclass
class ChannelCheck:
    """What ``station check`` found on one channel (SI); ``problems`` empty when every check passed."""

    channel: str
    instrument: str
    identity: str | None = None
    output_off: bool | None = None
    rig: str | None = None
    pressure_pa: float | None = None
    limits: dict[str, float] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _limits(limits: Limits) -> dict[str, float]:
    return {k: v for k, v in asdict(limits).items() if v is not None}


async def _check_channel(name: str, sup: ChannelSupervisor, config: StationConfig) -> ChannelCheck:
    ch = config.channels[name]
    result = ChannelCheck(name, ch.instrument, rig=ch.rig, limits=_limits(sup.limits.effective))
    try:
        result.identity = await sup.check_identity()
    except (InterlockError, DriverError) as exc:
        result.problems.append(f"identity: {exc}")
    try:
        result.output_off = not await sup.channel.output_enabled()
        if not result.output_off:
            result.problems.append("the output is still on after the safe state")
    except DriverError as exc:
        result.problems.append(f"output state: {exc}")
    if sup.rig is not None:
        try:
            result.pressure_pa = await sup.rig.read_pressure_pa()
            await sup.check_pressure()
        except (InterlockError, DriverError) as exc:
            result.problems.append(f"pressure: {exc}")
    return result


async def check_station(config: StationConfig) -> list[ChannelCheck]:
    """Open ``config`` (identify, safe state on every channel), check each channel, close it."""
    station = await open_station(config, clock=RealTimeClock())
    try:
        return list(await asyncio.gather(*(_check_channel(n, s, config) for n, s in station.supervisors.items())))
    finally:
        await station.close()


def _format_limits(limits: dict[str, float]) -> str:
    parts = []
    if "voltage_min_v" in limits or "voltage_max_v" in limits:
        parts.append(f"V [{limits.get('voltage_min_v', '-')}, {limits.get('voltage_max_v', '-')}] V")
    if "current_max_a" in limits:
        parts.append(f"|I| <= {limits['current_max_a'] * 1e3:g} mA")
    if "current_density_max_a_m2" in limits:
        parts.append(f"|j| <= {limits['current_density_max_a_m2'] / 10:g} mA/cm^2")
    if "pressure_min_pa" in limits or "pressure_max_pa" in limits:
        lo, hi = limits.get("pressure_min_pa"), limits.get("pressure_max_pa")
        parts.append(f"p [{'-' if lo is None else f'{lo / 1e6:g}'}, {'-' if hi is None else f'{hi / 1e6:g}'}] MPa")
    return ", ".join(parts) or "instrument limits only"


def _check(args: argparse.Namespace) -> int:
    config = load_station(args.file)
    results = asyncio.run(check_station(config))
    if args.json:
        for r in results:
            print(json.dumps({**asdict(r), "ok": r.ok}))
    else:
        print(f"station {config.name} ({config.source}): {len(results)} channel(s), no current sourced")
        for r in results:
            pressure = "" if r.rig is None else (
                f", {r.rig} {r.pressure_pa / 1e6:.4g} MPa" if r.pressure_pa is not None else f", {r.rig} unread"
            )  # fmt: skip
            mark = "ok  " if r.ok else "FAIL"
            output = {True: "output off", False: "OUTPUT ON", None: "output unknown"}[r.output_off]
            print(f"  {mark} {r.channel}: {r.instrument} '{r.identity or '?'}', {output}{pressure}; "
                  f"{_format_limits(r.limits)}")  # fmt: skip
            for problem in r.problems:
                print(f"       {problem}")
        failed = [r.channel for r in results if not r.ok]
        print(f"{'every check passed' if not failed else 'failed on ' + ', '.join(failed)}")
    return 0 if all(r.ok for r in results) else 1


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """Add ``station check`` and ``station serve``."""
    p = sub.add_parser("station", help="check a station file against its instruments (no current sourced)",
                       description=__doc__.splitlines()[0])  # fmt: skip
    actions = p.add_subparsers(dest="action", required=True, parser_class=type(p))
    c = actions.add_parser("check", help="connect, identify, secure and check interlocks; source nothing",
                           description=__doc__.splitlines()[0])  # fmt: skip
    c.add_argument("file", help="station file (YAML, see docs/station.md)")
    c.add_argument("--json", action="store_true", help="one JSON object per channel")
    c.set_defaults(handler=_check)
    from licycler.cli.run import register_serve  # the serve action resumes runs: it lives with run/resume

    register_serve(actions)
