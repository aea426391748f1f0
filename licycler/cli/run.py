"""``licycler run SCHEDULE [--sim [SCENARIO]] [--station FILE] [--db URL]`` and ``licycler resume RUN``.

SCHEDULE is a schedule file or the name of a standard protocol (``licycler protocols list``).
With ``--sim`` every channel runs against the in-process digital twin on a virtual clock (a
hardware-free run); with ``--station`` against the instruments of a station file. SIGINT and
SIGTERM put every channel in its safe state before the process ends.

Exit statuses: 0 the schedule completed on every channel; 1 a channel was aborted or faulted;
2 a user mistake (file, value, unit, station); 3 an internal error; 130 interrupted (SIGINT/SIGTERM).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from licycler.clock import RealTimeClock
from licycler.engine import ChannelSetup, RunController, RunState, exit_status
from licycler.engine.resume import close_finished_run, plan_resume
from licycler.engine.shards import ShardedStationRun, default_shards
from licycler.engine.sim import twin_setups
from licycler.engine.station_resume import resume_station
from licycler.errors import UserError
from licycler.events import Event
from licycler.live import close_live, live_hook, live_options
from licycler.protocols import load_protocol, load_schedule
from licycler.protocols.schedule import Schedule
from licycler.station import Station, StationConfig, load_station, load_station_text, open_station
from licycler.store import DEFAULT_DB_URL, Store
from licycler.telemetry.hooks import close_telemetry, telemetry_hook, telemetry_options

__all__ = ["EXIT_INTERRUPTED", "register", "register_serve", "resolve_schedule"]

EXIT_INTERRUPTED = 130

ControllerHook = Callable[[RunController, argparse.Namespace], None]
HOOKS: list[ControllerHook] = [telemetry_hook, live_hook]
"""Functions that attach things to a controller before it runs (telemetry, the live view)."""


def resolve_schedule(ref: str) -> Schedule:
    """A schedule file, or a standard protocol by name."""
    path = Path(ref)
    if path.suffix in (".yaml", ".yml") or path.exists():
        return load_schedule(path)
    return load_protocol(ref)


class _Printer:
    """Prints events as lines (or JSON lines with ``--json``); silent with ``--quiet``."""

    def __init__(self, mode: str) -> None:
        self.mode = mode

    def emit(self, event: Event) -> None:
        if event.kind == "warning" and self.mode != "json":  # even with --quiet
            print(f"warning: [{event.channel or 'station'}] {event.message}", file=sys.stderr, flush=True)
            return
        if self.mode == "quiet" or event.kind not in ("transition", "trip", "decision", "finding", "warning"):
            return
        if self.mode == "json":
            print(json.dumps({"type": "event", "channel": event.channel, "time_s": event.time_s, "kind": event.kind,
                              "cause": event.cause, "message": event.message}), flush=True)  # fmt: skip
        else:
            print(f"[{event.channel or 'station'}] t={event.time_s:.0f} s {event.kind}: {event.message}", flush=True)


async def _execute(controller: RunController, station: Station | None, printer: _Printer) -> dict[str, RunState]:
    main = asyncio.current_task()
    assert main is not None
    controller.safety.install_signal_handlers(main)
    try:
        return await controller.run()
    finally:
        await close_live(controller)
        await close_telemetry(controller)
        if station is not None:
            await station.close()


def _summary(controller: RunController, states: dict[str, RunState], store: Store, printer: _Printer) -> None:
    if printer.mode == "quiet":
        return
    result = {"run_id": controller.run_id, "db": store.url, "states": {k: str(v) for k, v in states.items()}}
    if printer.mode == "json":
        print(json.dumps({"type": "result", **result}), flush=True)
        return
    print(f"run {controller.run_id}: " + ", ".join(f"{k} {v}" for k, v in states.items()))
    for name in states:
        cycles = store.cycles(controller.run_id, name)
        ces = [c["ce"] for c in cycles if c["ce"] is not None]
        if ces:
            print(f"  {name}: {len(cycles)} cycles, last CE {ces[-1]:.5f}, mean CE {sum(ces) / len(ces):.5f}")
    print(f"data: {store.url} (run id {controller.run_id})")


def _mode(args: argparse.Namespace) -> str:
    return "json" if args.json else ("quiet" if args.quiet else "text")


async def _run_async(args: argparse.Namespace) -> int:
    schedule = resolve_schedule(args.schedule)
    store = Store(args.db)
    printer = _Printer(_mode(args))
    station: Station | None = None
    if args.station:
        config = load_station(args.station)
        shards = args.shards if args.shards is not None else default_shards(config)
        if shards > 1:
            return await _run_sharded(args, schedule, config, store, printer, shards)
        station = await open_station(config, clock=RealTimeClock())
        setups = [
            ChannelSetup(name, sup, sup.clock, instrument=sup.channel.name) for name, sup in station.supervisors.items()
        ]
        controller = RunController(schedule, setups, store, mode="station", station_text=config.text)
    else:
        scenario = args.sim if isinstance(args.sim, str) else None
        setups, scenario_text = twin_setups(schedule, scenario, channels=args.channels, seed=args.seed)
        controller = RunController(schedule, setups, store, mode="sim", scenario_text=scenario_text)
    banner = f"run {controller.run_id}: {schedule.name} on {len(setups)} channel(s)"
    return await _drive(controller, station, store, printer, args, banner)


async def _run_sharded(
    args: argparse.Namespace, schedule: Schedule, config: StationConfig, store: Store, printer: _Printer, shards: int
) -> int:
    """A station run over worker processes (``--shards N``): one store, one telemetry, one emergency stop."""
    if args.live:
        raise UserError("--live draws the channels of one process; a sharded station run (--shards > 1) has none: "
                        "watch it with --mqtt, or give --shards 1")  # fmt: skip
    args.live = False
    sharded = ShardedStationRun(schedule, config, store, shards=shards)
    controller = cast(RunController, sharded)  # it answers what the hooks and the printer ask of a controller
    banner = f"run {sharded.run_id}: {schedule.name} on {len(sharded.setups)} channel(s), {len(sharded.parts)} workers"
    return await _drive(controller, None, store, printer, args, banner)


async def _drive(
    controller: RunController, station: Station | None, store: Store, printer: _Printer,
    args: argparse.Namespace, banner: str,
) -> int:  # fmt: skip
    """Attach the printer and the hooks, run to the end, print the summary; the exit status."""
    controller.add_sink(printer)
    for hook in HOOKS:
        hook(controller, args)
    if printer.mode == "text":
        print(banner, flush=True)
    try:
        states = await _execute(controller, station, printer)
    except asyncio.CancelledError:
        print(f"run {controller.run_id}: interrupted; every channel was secured", file=sys.stderr)
        return EXIT_INTERRUPTED
    _summary(controller, states, store, printer)
    return exit_status(states)


async def _resume_async(args: argparse.Namespace) -> int:
    store = Store(args.db, create=False)
    run = store.run(args.run)
    if args.station is not None or (run is not None and run["mode"] == "station"):
        return await _resume_station(args, store)
    plan = plan_resume(store, args.run)
    printer = _Printer(_mode(args))
    if not plan.setups:
        return _nothing_left(store, args.run, plan.finished)
    controller = RunController(plan.schedule, plan.setups, store, run_id=plan.run_id, mode=plan.mode, resuming=True)
    banner = f"resuming run {plan.run_id} on {', '.join(s.name for s in plan.setups)}"
    return await _drive(controller, None, store, printer, args, banner)


def _nothing_left(store: Store, run_id: str, finished: list[str]) -> int:
    """Every channel had finished: record the run's end if the controller died before it could."""
    status = close_finished_run(store, run_id)
    if status is None:
        raise UserError(f"run '{run_id}' has no channel left to resume (finished: {', '.join(finished)})")
    print(f"run {run_id}: every channel had finished; the run is now recorded {status}", file=sys.stderr)
    return 0 if status == "completed" else 1


async def _resume_station(args: argparse.Namespace, store: Store) -> int:
    """A station run: its instruments re-identified, secured first, their lease buffers read back."""
    plan = await resume_station(store, args.run, args.station)
    printer = _Printer(_mode(args))
    if not plan.setups:
        await plan.station.close()
        return _nothing_left(store, args.run, plan.finished)
    controller = RunController(plan.schedule, plan.setups, store, run_id=plan.run_id, mode="station", resuming=True)
    banner = f"resuming station run {plan.run_id} on {', '.join(s.name for s in plan.setups)}"
    return await _drive(controller, plan.station, store, printer, args, banner)


def _recorded_station_name(run: dict[str, Any]) -> str | None:
    try:
        return load_station_text(run["station_text"] or "", "recorded").name
    except UserError:
        return None


async def _serve_async(args: argparse.Namespace) -> int:
    """Resume every interrupted run of this station (status still ``running``: its controller died)."""
    config = load_station(args.file)
    store = Store(args.db, create=False)
    runs = [
        r["run_id"] for r in store.runs()
        if r["mode"] == "station" and r["status"] == "running" and _recorded_station_name(r) == config.name
    ]  # fmt: skip
    if not runs:
        print(f"station {config.name}: no interrupted run to resume", flush=True)
        return 0
    print(f"station {config.name}: resuming {', '.join(runs)}", flush=True)
    resumes = [_resume_station(argparse.Namespace(**{**vars(args), "run": run_id, "station": args.file}), store)
               for run_id in runs]  # fmt: skip
    return max(await asyncio.gather(*resumes))


def _serve(args: argparse.Namespace) -> int:
    return asyncio.run(_serve_async(args))


def register_serve(actions: argparse._SubParsersAction[Any]) -> None:
    """Add ``station serve FILE``."""
    what = "resume every interrupted run of this station (its controller died) and run it to its end"
    s = actions.add_parser("serve", help=what, description=f"{what[0].upper()}{what[1:]} (docs/station.md).")
    s.add_argument("file", help="station file (YAML, see docs/station.md)")
    s.add_argument("--db", default=DEFAULT_DB_URL, help=f"database URL (default {DEFAULT_DB_URL})")
    _output_options(s)
    live_options(s)
    telemetry_options(s)
    s.set_defaults(handler=_serve)


def _run(args: argparse.Namespace) -> int:
    if bool(args.sim) == bool(args.station):
        raise UserError("give either --sim [SCENARIO] (a hardware-free run) or --station FILE")
    if args.shards is not None and (not args.station or args.shards < 1):
        raise UserError("--shards N (N >= 1) spreads the channels of a --station run over N worker processes")
    return asyncio.run(_run_async(args))


def _resume(args: argparse.Namespace) -> int:
    return asyncio.run(_resume_async(args))


def _output_options(p: argparse.ArgumentParser) -> None:
    group = p.add_mutually_exclusive_group()
    group.add_argument("--quiet", action="store_true", help="print nothing but errors")
    group.add_argument("--json", action="store_true", help="print one JSON object per line")


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """Add ``run`` and ``resume``."""
    p = sub.add_parser("run", help="run a schedule on simulated (--sim) or real (--station) instruments",
                       description=__doc__.splitlines()[0])  # fmt: skip
    p.add_argument("schedule", help="schedule file, or a standard protocol name")
    p.add_argument("--sim", nargs="?", const=True, default=None, metavar="SCENARIO",
                   help="hardware-free run on the digital twin (bundled scenario name or YAML file)")  # fmt: skip
    p.add_argument("--station", metavar="FILE", help="station file: run on its instruments")
    p.add_argument("--db", default=DEFAULT_DB_URL, help=f"database URL (default {DEFAULT_DB_URL})")
    p.add_argument("--shards", type=int, default=None, metavar="N",
                   help="with --station: worker processes the channels are spread over (default: 1 up to "
                        "64 channels, else one per core)")  # fmt: skip
    p.add_argument("--channels", type=int, default=1, help="simulated channels (with --sim)")
    p.add_argument("--seed", type=int, default=None, help="seed of the first simulated channel (with --sim)")
    _output_options(p)
    live_options(p)
    telemetry_options(p)
    p.set_defaults(handler=_run)
    r = sub.add_parser("resume", help="continue a run whose controller died, from its last checkpoints")
    r.add_argument("run", help="run id")
    r.add_argument("--station", metavar="FILE",
                   help="station file of a station run (default: the one recorded with the run)")  # fmt: skip
    r.add_argument("--db", default=DEFAULT_DB_URL, help=f"database URL (default {DEFAULT_DB_URL})")
    _output_options(r)
    live_options(r)
    telemetry_options(r)
    r.set_defaults(handler=_resume)
