"""``licycler export RUN --format csv|parquet [--db URL] [--out DIR] [--channel NAME]``.

Writes a run in the Battery Data Format (ontology 1.3.0 labels): one time-series file per channel
(``RUN__CH.bdf.csv`` or ``.bdf.parquet``), a cycles table per channel, the event log and a
metadata file. Prints the path of every file written.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from licycler.export import FORMATS, export_run
from licycler.store import DEFAULT_DB_URL, Store

__all__ = ["register"]


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """Add the ``export`` sub-command."""
    p = sub.add_parser("export", help="export a run in the Battery Data Format (CSV or Parquet)",
                       description=__doc__.splitlines()[0])  # fmt: skip
    p.add_argument("run", help="run id")
    p.add_argument("--format", choices=FORMATS, default="csv", help="file format [csv]")
    p.add_argument("--db", default=DEFAULT_DB_URL, help=f"database URL (default {DEFAULT_DB_URL})")
    p.add_argument("--out", default=".", metavar="DIR", help="output folder [.]")
    p.add_argument("--channel", action="append", metavar="NAME", help="only this channel (repeatable)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from licycler.recorder.db import database_url

    store = Store(database_url(args.db), create=False)
    try:
        for path in export_run(store, args.run, args.format, Path(args.out), channels=args.channel):
            print(path)
    finally:
        store.close()
    return 0
