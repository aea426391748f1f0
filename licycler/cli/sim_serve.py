"""``licycler sim-serve INSTRUMENT [--host H] [--port P] [--scenario FILE] [--speed X]``.

Serves one emulated instrument until interrupted: SCPI instruments on TCP (port 0 picks a free
port), serial ones on a pseudo-terminal. The first line of output is the VISA resource string (or
device path) to open; a line on stderr says what is simulated. ``--list`` lists the instruments.
With ``--scenario`` the digital twin described by the file is used when the twin is available,
else a dummy cell (the stderr line says which).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import signal
import sys
from pathlib import Path
from typing import Any

from licycler.errors import UserError
from licycler.sim_instruments.clock import RealTimeClock
from licycler.sim_instruments.dummy_cell import DummyCell
from licycler.sim_instruments.interfaces import Clock
from licycler.sim_instruments.registry import SIM_INSTRUMENTS, SimWorld, sim_entry

__all__ = ["build_world", "register", "run"]

DUMMY_EMF_V = 0.0
DUMMY_RESISTANCE_OHM = 100.0


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """Add the ``sim-serve`` sub-command."""
    p = sub.add_parser(
        "sim-serve", help="serve an emulated instrument (TCP or pseudo-terminal)",
        description=__doc__.splitlines()[0],
    )
    p.add_argument("instrument", nargs="?", metavar="INSTRUMENT", help="what to serve (see --list)")
    p.add_argument("--list", action="store_true", help="list the instruments that can be served")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on [127.0.0.1]")
    p.add_argument("--port", type=int, default=0, help="TCP port (0 picks a free one) [0]")
    p.add_argument("--scenario", metavar="FILE", help="digital-twin scenario (YAML file or bundled name)")
    p.add_argument("--speed", type=float, default=1.0, help="simulated seconds per real second [1]")
    p.add_argument("--seed", type=int, default=0, help="seed of the reading noise [0]")
    p.add_argument("--no-noise", action="store_true", help="exact readings (no noise)")
    p.set_defaults(handler=run)


def _twin_world(scenario: str, clock: Clock) -> tuple[Any, Any] | None:
    """(cell, rig) of the digital twin of ``scenario`` (a bundled name or a YAML file), or None
    if no twin is installed."""
    try:
        module = importlib.import_module("licycler.sim_instruments.scenario")
    except ImportError:
        return None
    build = getattr(module, "build_twin", None)
    if build is None:
        return None
    twin = build(scenario, clock)
    return getattr(twin, "cell", twin), getattr(twin, "rig", None)


def build_world(
    scenario: str | None, clock: Clock, *, noise: bool = True, seed: int = 0
) -> SimWorld:
    """The simulated world to serve: the twin of ``scenario`` when available, else a dummy cell."""
    if scenario is not None:
        twin = _twin_world(scenario, clock)
        if twin is not None:
            cell, rig = twin
            return SimWorld(clock, cell, rig, noise, seed, f"the digital twin of scenario {scenario}")
        if not Path(scenario).is_file():
            raise UserError(f"--scenario: no such file: {scenario}")
        what = "the digital twin is not available: a dummy cell instead of the scenario"
    else:
        what = "a dummy cell"
    cell = DummyCell(DUMMY_EMF_V, DUMMY_RESISTANCE_OHM)
    description = f"{what} (EMF {DUMMY_EMF_V:g} V, {DUMMY_RESISTANCE_OHM:g} Ohm)"
    return SimWorld(clock, cell, None, noise, seed, description)


async def _serve(args: argparse.Namespace) -> int:
    entry = sim_entry(args.instrument)
    clock = RealTimeClock(speed=args.speed)
    world = build_world(args.scenario, clock, noise=not args.no_noise, seed=args.seed)
    server = await entry.start(world, args.host, args.port)
    print(server.resource, flush=True)
    print(
        f"sim-serve: {entry.description} on {world.description}, clock speed x{args.speed:g}; "
        "Ctrl-C stops",
        file=sys.stderr, flush=True,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await server.stop()
    return 0


def run(args: argparse.Namespace) -> int:
    """Handler of ``licycler sim-serve``."""
    if args.list:
        width = max(len(name) for name in SIM_INSTRUMENTS)
        for entry in SIM_INSTRUMENTS.values():
            print(f"{entry.name:<{width}}  {entry.transport:<6}  {entry.description}")
        return 0
    if not args.instrument:
        raise UserError("name an INSTRUMENT to serve (see 'licycler sim-serve --list')")
    if args.instrument not in SIM_INSTRUMENTS:
        raise UserError(
            f"unknown instrument {args.instrument!r}; known: {', '.join(SIM_INSTRUMENTS)}"
        )
    if not args.speed > 0:
        raise UserError(f"--speed: expected a value > 0, got {args.speed:g}")
    if not 0 <= args.port <= 65535:
        raise UserError(f"--port: expected 0..65535, got {args.port}")
    try:
        return asyncio.run(_serve(args))
    except OSError as exc:
        raise UserError(f"cannot serve on {args.host}:{args.port}: {exc.strerror or exc}") from exc
