"""``licycler sweep SCHEDULE --sim SCENARIO --vary PARAM=V1,V2,... [--workers N]``: one schedule,
hardware-free, over a grid of scenario parameters, in parallel processes; one table of results
(also in the store's ``sweep_results``). Exit 0 when every point completed its schedule, 1 otherwise."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from typing import Any

from licycler.cli.run import resolve_schedule
from licycler.engine.sweep import parse_vary, run_sweep
from licycler.store import DEFAULT_DB_URL, Store

__all__ = ["register"]


def register(sub: argparse._SubParsersAction[Any]) -> None:
    p = sub.add_parser("sweep", help="hardware-free runs of a schedule over a grid of scenario parameters",
                       description=__doc__.splitlines()[0])  # fmt: skip
    p.add_argument("schedule", help="schedule file, or a standard protocol name")
    p.add_argument("--sim", required=True, metavar="SCENARIO", help="the base scenario (bundled name or YAML file)")
    p.add_argument("--vary", action="append", default=[], metavar="PARAM=V1,V2,...",
                   help="a scenario parameter (dotted: defects.alpha) and its values; repeat for a grid")  # fmt: skip
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="worker processes (default: the cores)")
    p.add_argument("--seed", type=int, default=None, help="the twins' seed, the same at every point")
    p.add_argument("--db", default=DEFAULT_DB_URL, help=f"database URL (default {DEFAULT_DB_URL})")
    p.add_argument("--samples", action="store_true", help="store every run's samples too (default: not)")
    p.add_argument("--json", action="store_true", help="one JSON object per point")
    p.set_defaults(handler=_sweep)


def _sweep(args: argparse.Namespace) -> int:
    varies = parse_vary(args.vary)
    schedule = resolve_schedule(args.schedule)
    store = Store(args.db)
    with tempfile.TemporaryDirectory(prefix="licycler-sweep-") as scratch:
        sweep_id, rows = run_sweep(schedule, args.sim, varies, store, workers=args.workers, seed=args.seed,
                                   scratch=scratch, samples=args.samples)  # fmt: skip
    store.close()
    if args.json:
        for row in rows:
            print(json.dumps({**row, "params": json.loads(row.pop("params_json"))}))
    else:
        _table(sweep_id, [name for name, _ in varies], rows)
    return 0 if all(r["state"] == "completed" for r in rows) else 1


def _fmt(value: Any, spec: str = "") -> str:
    return "-" if value is None else format(value, spec)


def _table(sweep_id: str, names: list[str], rows: list[dict[str, Any]]) -> None:
    head = [*names, "run", "state", "cycles", "to failure", "mean CE", "last CE", "first finding"]
    body = []
    for r in rows:
        params = json.loads(r["params_json"])
        finding = "-" if r["first_finding"] is None else f"{r['first_finding']} at {r['first_finding_s']:.0f} s"
        ce = (_fmt(r["mean_ce"], ".5f"), _fmt(r["last_ce"], ".5f"))
        body.append([*(str(params[n]) for n in names), r["run_id"], r["state"], str(r["cycles"]),
                     _fmt(r["cycles_to_failure"]), *ce, finding])  # fmt: skip
    widths = [max(len(x) for x in col) for col in zip(head, *body, strict=True)]
    print(f"sweep {sweep_id}: {len(rows)} runs", file=sys.stderr)
    for line in (head, *body):
        print("  ".join(x.ljust(w) for x, w in zip(line, widths, strict=True)).rstrip())
