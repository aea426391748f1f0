"""``licycler report RUN [--db URL] [--out DIR]``: PNG figures and one self-contained HTML page of a run.

The figures: voltage against time with steps shaded and events marked; CE per cycle with the
projection to 80 %; the depletion index; nucleation and plateau overpotentials per cycle; stack
pressure; a summary table. ``licycler report --list`` lists the runs in the database.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
from pathlib import Path
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from licycler.errors import UserError
from licycler.store import DEFAULT_DB_URL, Store, StoreError

__all__ = ["open_existing_store", "register"]


def open_existing_store(url: str) -> Store:
    """The database at ``url``, which must exist and be reachable (a :class:`UserError` otherwise)."""
    if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
        path = Path(url.removeprefix("sqlite:///"))
        if not path.exists():
            raise UserError(f"no database at {path} (licycler demo or licycler run records one; or give --db URL)")
    store = Store(url, create=False)
    try:
        store.runs()
    except SQLAlchemyError as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        raise StoreError(f"cannot open the database {store._safe_url()}: {first}") from None
    return store


def _list(store: Store, as_json: bool) -> int:
    runs = store.runs()
    for r in runs:
        if as_json:
            print(json.dumps({k: r[k] for k in ("run_id", "name", "mode", "status", "created_unix_s")}))
        else:
            when = dt.datetime.fromtimestamp(r["created_unix_s"]).strftime("%Y-%m-%d %H:%M")
            print(f"{r['run_id']}  {when}  {r['status']:<9}  {r['mode']:<7}  {r['name']}")
    if not runs and not as_json:
        print(f"no runs in {store.url}")
    return 0


def _report(args: argparse.Namespace) -> int:
    if not args.run and not args.list:
        raise UserError("name a RUN (licycler report --list shows the runs)")
    store = open_existing_store(args.db)
    if args.list:
        return _list(store, args.json)
    from licycler.report import build_report  # matplotlib is imported only when a report is made

    report = build_report(store, args.run, args.out)
    if args.json:
        print(json.dumps({"run_id": report.run_id, "html": str(report.html), "summary": str(report.summary),
                          "figures": {k: str(v) for k, v in report.figures.items()}}))  # fmt: skip
    else:
        print(f"report of run {report.run_id}: {report.html}")
        print(f"figures: {', '.join(str(p) for p in report.figures.values())}")
    return 0


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """Add ``report``."""
    p = sub.add_parser("report", help="figures and an HTML page of a recorded run", description=__doc__.splitlines()[0])
    p.add_argument("run", nargs="?", help="run id (see --list)")
    p.add_argument("--db", default=DEFAULT_DB_URL, help=f"database URL (default {DEFAULT_DB_URL})")
    p.add_argument(
        "--out", default=None, metavar="DIR", help="output folder (default: reports/RUN beside the database file)"
    )
    p.add_argument("--list", action="store_true", help="list the runs in the database")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(handler=_report)
