"""``licycler demo``: two hardware-free runs of standard protocols on simulated channels, then their reports.

1. ``li-cu-ce`` (Coulombic efficiency on bare Cu) on two anode-free Li||Cu cells (the ``li-cu``
   scenario, CE about 98 %: the report projects when 80 % of the lithium is left).
2. ``li-li-symmetric`` on three Li||Li cells: two healthy ones and one in a bolted fixture whose
   clamp leaks (the ``pressure-faults`` scenario). The station's pressure window (0.7 to 5 MPa)
   trips that channel into its safe state once its stack pressure falls below 0.7 MPa; the live
   view and the report show the alarm.

Everything runs on the digital twin on a virtual clock (days of cycling in seconds) and is
recorded in the embedded SQLite store. ``--cycles`` sets the Li||Li cycles (the Li||Cu run does
half as many); the defaults finish in well under a minute. Exit status 0 when both runs ended as
designed (the leaking channel is expected to fault), 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import re
import sys
import time
from dataclasses import dataclass
from typing import Any

from licycler.clock import VirtualClock
from licycler.engine import ChannelSetup, RunController, RunState
from licycler.engine.sim import sim_channel, twin_config
from licycler.errors import UserError
from licycler.live import attach_live, close_live, live_mode, live_options
from licycler.protocols import parse_schedule, protocol_path
from licycler.protocols.schedule import Schedule
from licycler.safety import Limits
from licycler.sim_instruments.inprocess import InProcessRig
from licycler.sim_instruments.twin import Twin
from licycler.store import DEFAULT_DB_URL, Store

__all__ = ["DEMO_PARTS", "STATION_LIMITS", "DemoPart", "demo_schedule", "demo_setups", "register", "run_part"]

STATION_LIMITS = Limits(pressure_min_pa=0.7e6, pressure_max_pa=5e6)
"""The demo station's limit layer: the stack-pressure window every channel must stay in (Pa)."""


@dataclass(frozen=True)
class DemoPart:
    """One run of the demo: a standard protocol, its channels (name, scenario, seed), what it shows,
    and the channels expected to fault (the demo's deliberate fault)."""

    protocol: str
    title: str
    channels: tuple[tuple[str, str, int], ...]
    cycles_divisor: int = 1
    expect_faulted: tuple[str, ...] = ()


DEMO_PARTS = (
    DemoPart("li-cu-ce", "Li||Cu Coulombic efficiency on bare Cu",
             (("cu1", "li-cu", 0), ("cu2", "li-cu", 1)), cycles_divisor=2),
    DemoPart("li-li-symmetric", "Li||Li symmetric cycling; li3's fixture leaks",
             (("li1", "default", 0), ("li2", "default", 1), ("li3", "pressure-faults", 0)),
             expect_faulted=("li3",)),
)  # fmt: skip


def demo_schedule(protocol: str, cycles: int) -> Schedule:
    """The standard protocol ``protocol`` with its repeat count set to ``cycles``."""
    text = protocol_path(protocol).read_text(encoding="utf-8")
    text, n = re.subn(r"(?m)^(\s*count:\s*)\d+", lambda m: f"{m.group(1)}{cycles}", text, count=1)
    if n != 1:
        raise UserError(f"the {protocol} protocol has no repeat to shorten")
    return parse_schedule(text, source=f"{protocol} (demo, {cycles} cycles)")


def demo_setups(schedule: Schedule, part: DemoPart) -> tuple[list[ChannelSetup], str]:
    """Hardware-free channels of ``part``, each on the twin of its own scenario, with the demo
    station's limits layered in. Returns them and the scenarios' text (for the run's record)."""
    setups = []
    texts = []
    for name, scenario, seed in part.channels:
        config, text = twin_config(schedule, scenario)
        twin = Twin(dataclasses.replace(config, seed=seed))
        clock = VirtualClock()
        rig = InProcessRig(twin.rig, clock, name=f"{name} rig")
        setup = sim_channel(name, twin.cell, rig=rig, seed=seed, clock=clock)
        setup.supervisor.limits.push("station", STATION_LIMITS)
        setups.append(setup)
        texts.append(f"# --- channel {name}: scenario {scenario}, seed {seed}\n{text}")
    return setups, "\n".join(texts)


async def run_part(part: DemoPart, cycles: int, store: Store, mode: str) -> tuple[RunController, dict[str, RunState]]:
    """Run one part of the demo with the live view in ``mode``."""
    schedule = demo_schedule(part.protocol, max(1, cycles // part.cycles_divisor))
    setups, scenario_text = demo_setups(schedule, part)
    controller = RunController(schedule, setups, store, mode="sim", scenario_text=scenario_text)
    main = asyncio.current_task()
    assert main is not None
    controller.safety.install_signal_handlers(main)
    if mode in ("live", "json"):
        attach_live(controller, mode, title=f"{part.title} · run {controller.run_id}")
    elif mode == "text":
        print(f"{part.title}: run {controller.run_id} on {', '.join(s.name for s in setups)} ...", flush=True)
    try:
        states = await controller.run()
    finally:
        await close_live(controller)
    return controller, states


def _say(mode: str, text: str = "", **obj: Any) -> None:
    if mode == "json":
        if obj:
            print(json.dumps(obj), flush=True)
    elif mode != "quiet":
        print(text, flush=True)


def _describe(controller: RunController, states: dict[str, RunState], store: Store) -> str:
    parts = []
    trips = {e["channel"]: e for e in store.events(controller.run_id) if e["kind"] == "trip"}
    for name, state in states.items():
        cycles = store.cycles(controller.run_id, name)
        ces = [c["ce"] for c in cycles if c["ce"] is not None]
        text = f"{name} {state} after {len(cycles)} cycles"
        if ces and controller.schedule.cell.chemistry == "Li||Cu":
            text += f", CE {sum(ces[1:] or ces) / len(ces[1:] or ces) * 100:.2f} %"
        if name in trips:
            text += f" ({trips[name]['cause']}: {trips[name]['message']})"
        parts.append(text)
    return "; ".join(parts)


async def _demo(args: argparse.Namespace) -> int:
    mode = live_mode(args)
    started = time.monotonic()
    store = Store(args.db)
    from licycler.report import build_report  # matplotlib loads while nothing else waits

    ok = True
    reports = []
    for k, part in enumerate(DEMO_PARTS, 1):
        _say(mode, f"\n[{k}/{len(DEMO_PARTS)}] {part.title} ({part.protocol}, hardware-free)")
        try:
            controller, states = await run_part(part, args.cycles, store, mode)
        except asyncio.CancelledError:
            print("demo interrupted; every channel was secured", file=sys.stderr)
            return 130
        expected = {n: (RunState.FAULTED if n in part.expect_faulted else RunState.COMPLETED) for n in states}
        ok &= all(states[n] is expected[n] or (n in part.expect_faulted and states[n] is RunState.COMPLETED)
                  for n in states)  # fmt: skip
        out_dir = f"{args.out}/{controller.run_id}" if args.out else None
        report = await asyncio.to_thread(build_report, store, controller.run_id, out_dir)
        reports.append(report)
        _say(mode, f"    run {controller.run_id}: {_describe(controller, states, store)}",
             type="run", run_id=controller.run_id, protocol=part.protocol,
             states={n: str(s) for n, s in states.items()}, report=str(report.html))  # fmt: skip
    elapsed = time.monotonic() - started
    _say(mode, f"\ndemo finished in {elapsed:.0f} s", type="result", db=store.url, elapsed_s=elapsed,
         runs=[r.run_id for r in reports], reports=[str(r.html) for r in reports], ok=ok)  # fmt: skip
    _say(mode, f"data:    {store.url} (runs {', '.join(r.run_id for r in reports)})")
    for r in reports:
        _say(mode, f"report:  {r.html}")
    _say(mode, "next:    licycler report --list; licycler run li-li-symmetric --sim --channels 4; docs/cli.md")
    return 0 if ok else 1


def _run(args: argparse.Namespace) -> int:
    if args.cycles < 1:
        raise UserError(f"--cycles must be at least 1, got {args.cycles}")
    return asyncio.run(_demo(args))


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """Add ``demo``."""
    p = sub.add_parser("demo", help="a hardware-free demonstration: two simulated runs and their reports",
                       description=__doc__.splitlines()[0])  # fmt: skip
    p.add_argument("--db", default=DEFAULT_DB_URL, help=f"database URL (default {DEFAULT_DB_URL})")
    p.add_argument("--out", default=None, metavar="DIR", help="report folder (default: reports/ beside the database)")
    p.add_argument("--cycles", type=int, default=8, help="Li||Li cycles; the Li||Cu run does half as many [8]")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--quiet", action="store_true", help="print nothing but errors")
    group.add_argument("--json", action="store_true", help="print one JSON object per line")
    live_options(p)
    p.set_defaults(handler=_run)
