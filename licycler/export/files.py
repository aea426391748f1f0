"""Writing a run's BDF tables as CSV (``.bdf.csv``) or Parquet (``.bdf.parquet``).

For run ``R`` and each channel ``C`` in ``DIR``: ``R__C.bdf.<ext>`` (the time series),
``R__C.cycles.<ext>``, then ``R.events.<ext>`` (every channel) and ``R.metadata.json`` (the run,
its schedule, the channels, and each column's BDF term). CSV needs nothing beyond the standard
library; Parquet needs pyarrow (``pip install 'licycler[export]'``). Numbers are written in their
shortest exact form, so values read back equal the stored ones.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np

from licycler.errors import UserError
from licycler.export.tables import (
    BDF_IRI,
    BDF_ONTOLOGY_VERSION,
    TERMS,
    Column,
    Table,
    bdf_table,
    cycles_table,
    events_table,
)
from licycler.store.sql import Store

__all__ = ["FORMATS", "export_run", "write_table"]

FORMATS = ("csv", "parquet")


def _listed(column: Column) -> list[Any]:
    values: list[Any] = column.values.tolist()
    if column.valid is not None and not column.valid.all():
        values = [v if ok else None for v, ok in zip(values, column.valid.tolist(), strict=True)]
    return values


def _write_csv(table: Table, path: Path) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(list(table))
        writer.writerows(zip(*(_listed(c) for c in table.values()), strict=True))


def _pyarrow() -> Any:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise UserError("Parquet export needs pyarrow: pip install 'licycler[export]' (or use --format csv)") from None
    return pa, pq


def _write_parquet(table: Table, path: Path, metadata: dict[str, Any]) -> None:
    pa, pq = _pyarrow()
    arrays = {}
    for name, column in table.items():
        values = column.values
        mask = None if column.valid is None else ~column.valid
        if values.dtype == object:
            arrays[name] = pa.array(values.tolist(), type=pa.string(), mask=mask)
        else:
            arrays[name] = pa.array(values, mask=mask)
    result = pa.Table.from_pydict(arrays)
    result = result.replace_schema_metadata({b"licycler": json.dumps(metadata).encode()})
    pq.write_table(result, path)


def write_table(table: Table, path: Path, fmt: str, metadata: dict[str, Any] | None = None) -> Path:
    """Write ``table`` to ``path`` in ``fmt`` (``csv`` or ``parquet``)."""
    if fmt == "csv":
        _write_csv(table, path)
    elif fmt == "parquet":
        _write_parquet(table, path, metadata or {})
    else:
        raise UserError(f"unknown export format '{fmt}' (formats: {', '.join(FORMATS)})")
    return path


def _metadata(store: Store, run_id: str, channels: list[dict[str, Any]], tables: dict[str, Table]) -> dict[str, Any]:
    run = store.run(run_id) or {}
    columns = {}
    for table in tables.values():
        for label in table:
            term = TERMS.get(label)
            columns[label] = {"bdf_term": term, "iri": BDF_IRI + term if term else None}
    return {
        "format": "Battery Data Format", "bdf_ontology_version": BDF_ONTOLOGY_VERSION,
        "run": {k: run.get(k) for k in ("run_id", "name", "schedule_name", "schedule_source", "schedule_sha256",
                                         "software_version", "mode", "created_unix_s", "ended_unix_s", "status")},
        "schedule_text": run.get("schedule_text"),
        "channels": [{k: c.get(k) for k in ("channel", "chemistry", "area_m2", "seed", "instrument", "status")}
                     for c in channels],
        "columns": columns,
        "current_sign": "positive current charges the test object (strips a lithium working electrode)",
    }  # fmt: skip


def export_run(
    store: Store, run_id: str, fmt: str, out_dir: Path, *, channels: list[str] | None = None
) -> list[Path]:
    """Write every file of run ``run_id`` (or of ``channels`` only) into ``out_dir``; returns the paths."""
    if fmt not in FORMATS:
        raise UserError(f"unknown export format '{fmt}' (formats: {', '.join(FORMATS)})")
    if fmt == "parquet":
        _pyarrow()
    if store.run(run_id) is None:
        raise UserError(f"no run '{run_id}' in the database {store.url}")
    rows = store.channels(run_id)
    names = [c["channel"] for c in rows]
    if not names:  # a run recorded from telemetry before its run record arrived
        names = sorted({c["channel"] for c in store.cycles(run_id)} | {e["channel"] for e in store.events(run_id)})
    if channels:
        missing = [c for c in channels if c not in names]
        if missing:
            raise UserError(f"run '{run_id}' has no channel {', '.join(missing)} (channels: {', '.join(names)})")
        names = [n for n in names if n in channels]
        rows = [c for c in rows if c["channel"] in channels]
    out_dir.mkdir(parents=True, exist_ok=True)
    tables: dict[str, Table] = {}
    for name in names:
        tables[f"{run_id}__{name}.bdf.{fmt}"] = bdf_table(store, run_id, name)
        tables[f"{run_id}__{name}.cycles.{fmt}"] = cycles_table(store, run_id, name)
    tables[f"{run_id}.events.{fmt}"] = events_table(store, run_id)
    metadata = _metadata(store, run_id, rows, tables)
    paths = [write_table(table, out_dir / fname, fmt, metadata) for fname, table in tables.items()]
    meta_path = out_dir / f"{run_id}.metadata.json"
    meta_path.write_text(json.dumps(metadata, indent=2, default=_json_default) + "\n", encoding="utf-8")
    return [*paths, meta_path]


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return str(value)
