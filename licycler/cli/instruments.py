"""``licycler instruments scan [--resource R ...] [--serial] [--timeout S] [--json]``.

Lists the VISA resources pyvisa-py can see, plus the ones named with ``--resource`` (raw TCP
sockets cannot be discovered), and what answers ``*IDN?`` on each. Serial ports are probed only
with ``--serial``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from dataclasses import asdict
from typing import Any

from licycler.drivers.scan import scan
from licycler.errors import UserError

__all__ = ["register", "run_scan"]


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """Add ``instruments`` and its ``scan`` sub-command."""
    p = sub.add_parser("instruments", help="find instruments", description=__doc__.splitlines()[0])
    inner = p.add_subparsers(dest="action", required=True, metavar="ACTION", parser_class=type(p))
    s = inner.add_parser("scan", help="list VISA resources and what answers *IDN?")
    s.add_argument("--resource", action="append", default=[], metavar="R",
                   help="also probe this VISA resource (repeatable), e.g. TCPIP::10.0.0.5::5025::SOCKET")
    s.add_argument("--no-discover", action="store_true", help="probe only the --resource ones")
    s.add_argument("--serial", action="store_true", help="also send *IDN? to serial ports")
    s.add_argument("--timeout", type=float, default=1.0, help="seconds to wait for each answer [1]")
    s.add_argument("--json", action="store_true", help="one JSON object per resource")
    s.set_defaults(handler=run_scan)


def run_scan(args: argparse.Namespace) -> int:
    """Handler of ``licycler instruments scan``."""
    if not args.timeout > 0:
        raise UserError(f"--timeout: expected a value > 0, got {args.timeout:g}")
    results = asyncio.run(
        scan(args.resource, discover=not args.no_discover, probe_serial=args.serial,
             timeout_s=args.timeout)
    )
    if args.json:
        for r in results:
            print(json.dumps(asdict(r)))
        return 0
    if not results:
        print("no VISA resources found (name raw sockets with --resource)")
        return 0
    width = max(len(r.resource) for r in results)
    for r in results:
        answer = r.identity if r.identity is not None else f"({r.error})"
        print(f"{r.resource:<{width}}  {answer}")
    return 0
