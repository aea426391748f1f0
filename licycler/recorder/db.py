"""What the recorder writes: telemetry payloads turned into the store's idempotent writes.

Every row has its natural key (run, channel, cycle / step / event number / sample number), and
the store ignores a row it already has, so a record received twice (a station sending again after
a reconnect, two paths to one database) is written once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import update

from licycler.store import schema as s
from licycler.store.sql import Store, WriteBatch
from licycler.telemetry.payloads import event_from_payload, sample_rows_from_payload

__all__ = ["Written", "database_url", "write_payloads"]

_META = ("v", "type", "station", "channel", "run_id", "key")
_RUN_COLUMNS = (
    "run_id", "name", "schedule_name", "schedule_source", "schedule_text", "schedule_sha256", "scenario_text",
    "station_text", "software_version", "mode", "created_unix_s", "status", "ended_unix_s", "message",
)  # fmt: skip


@dataclass
class Written:
    """What one call wrote: rows offered per kind, and the keys committed per station."""

    counts: dict[str, int] = field(default_factory=dict)
    keys: dict[str, list[str]] = field(default_factory=dict)

    def add(self, kind: str, n: int = 1) -> None:
        self.counts[kind] = self.counts.get(kind, 0) + n


def _row(payload: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in payload.items() if k not in _META}


def _write_run(store: Store, payload: Mapping[str, Any]) -> None:
    run = {k: payload.get(k) for k in _RUN_COLUMNS}
    channels = [{"run_id": payload["run_id"], "seed": None, "instrument": None, **c} for c in payload["channels"]]
    store.create_run(run, channels)
    if payload["status"] == "running":
        return
    with store.engine.begin() as conn:  # the final status, as the station saw it
        conn.execute(
            update(s.runs)
            .where(s.runs.c.run_id == payload["run_id"])
            .values(status=payload["status"], ended_unix_s=payload.get("ended_unix_s"), message=payload.get("message"))
        )
        for c in payload["channels"]:
            conn.execute(
                update(s.channels)
                .where(s.channels.c.run_id == payload["run_id"], s.channels.c.channel == c["channel"])
                .values(status=c["status"])
            )


def write_payloads(store: Store, payloads: Iterable[Mapping[str, Any]]) -> Written:
    """Write validated payloads (run, cycle, step, event, samples): the run records first, then
    one transaction per (run, channel). Returns the keys to acknowledge, per station."""
    written = Written()
    batches: dict[tuple[str, str], WriteBatch] = {}
    runs: list[Mapping[str, Any]] = []
    for p in payloads:
        kind = p["type"]
        if kind == "run":
            runs.append(p)
        else:
            batch = batches.setdefault((p["run_id"], p["channel"]), WriteBatch(p["run_id"], p["channel"]))
            if kind == "cycle":
                batch.cycles.append(_row(p))
            elif kind == "step":
                batch.steps.append(_row(p))
            elif kind == "event":
                if p["seq"] is None:  # an event before the channel started: not part of the run's log
                    continue
                batch.events.append((int(p["seq"]), event_from_payload(p)))
            elif kind == "samples":
                rows = sample_rows_from_payload(p)
                batch.samples.append(rows)
                written.add("samples", len(rows))
                continue
            else:
                continue
        written.add(kind)
        if p.get("key"):
            written.keys.setdefault(p["station"], []).append(str(p["key"]))
    for run in runs:
        _write_run(store, run)
    for batch in batches.values():
        store.write(batch)
    return written


def database_url(url: str) -> str:
    """``url`` with PostgreSQL's driver named (``postgresql://`` means psycopg 3 here)."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url
