"""The SQL store: SQLite (WAL) by default, PostgreSQL by URL; batched, idempotent writes.

:class:`Store` is synchronous (it runs in the writer thread or in tools); :class:`StoreWriter`
is what the engine talks to: ``submit`` never blocks, a thread writes each :class:`WriteBatch` in
one transaction (so a checkpoint is committed with exactly the data it covers), and a failure is
kept in ``failed`` for the engine to act on (safe state), never raised into control code.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
import queue
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
from sqlalchemy import Engine, create_engine, event, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import SQLAlchemyError

from licycler.errors import UserError
from licycler.events import Event
from licycler.store import schema as s
from licycler.store.blocks import BLOCK_ENCODING, SampleRows, decode_block, encode_block, merge_samples

__all__ = ["DEFAULT_DB_URL", "BatchWriter", "SampleRows", "Store", "StoreError", "StoreWriter", "WriteBatch"]

DEFAULT_DB_URL = "sqlite:///licycler-data/licycler.db"

BLOCK_COLUMNS = ("run_id", "channel", "first_seq", "last_seq", "n", "t_first_s", "t_last_s", "encoding", "data")


COALESCE_ROWS = 100_000
"""The writer joins queued batches into one transaction up to about this many sample rows."""


class StoreError(UserError):
    """The database cannot be opened or written (unreachable server, bad URL, full disk...)."""


@dataclass
class WriteBatch:
    """What one transaction writes for one channel of one run (any part may be empty)."""

    run_id: str
    channel: str
    samples: list[SampleRows] = field(default_factory=list)
    steps: list[dict[str, Any]] = field(default_factory=list)
    cycles: list[dict[str, Any]] = field(default_factory=list)
    events: list[tuple[int, Event]] = field(default_factory=list)
    metrics: list[dict[str, Any]] = field(default_factory=list)  # rows: seq, time_s, cycle, name, value
    checkpoint: dict[str, Any] | None = None
    channel_status: str | None = None
    blocks: list[tuple[Any, ...]] = field(default_factory=list)
    """Samples already coded as ``sample_blocks`` rows (see :meth:`coded`)."""

    def coded(self) -> WriteBatch:
        """This batch with its samples coded as one block: what crosses to a writer process (the
        block is a quarter of the pickled columns' size, and coding it costs less than pickling them)."""
        parts = [r for r in self.samples if len(r)]
        if not parts:
            return self
        block = _block_row(self.run_id, self.channel, parts[0] if len(parts) == 1 else SampleRows.concat(parts))
        return dataclasses.replace(self, samples=[], blocks=[*self.blocks, block])


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


class Store:
    """A licycler database. ``url`` is a SQLAlchemy URL; SQLite files get WAL mode and their folder."""

    def __init__(self, url: str = DEFAULT_DB_URL, *, create: bool = True) -> None:
        self.url = url
        try:
            if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
                Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
            self.engine: Engine = create_engine(url, future=True)
            if self.engine.dialect.name == "sqlite":
                event.listen(self.engine, "connect", _sqlite_pragmas)
            if create:
                s.metadata.create_all(self.engine)
        except (SQLAlchemyError, OSError, ValueError, ImportError) as exc:
            raise StoreError(f"cannot open the database {self._safe_url()}: {_short(exc)}") from None
        self.dialect = self.engine.dialect.name

    def _safe_url(self) -> str:
        try:
            from sqlalchemy.engine import make_url

            return make_url(self.url).render_as_string(hide_password=True)
        except Exception:  # an unparsable URL is shown as given
            return self.url

    def close(self) -> None:
        self.engine.dispose()

    # --- writing ----------------------------------------------------------------------------
    def _insert_ignore(self, table: Any) -> Any:
        if self.dialect == "sqlite":
            return sqlite_insert(table).on_conflict_do_nothing()
        if self.dialect == "postgresql":
            return pg_insert(table).on_conflict_do_nothing()
        return insert(table)

    def create_run(self, row: Mapping[str, Any], channel_rows: Sequence[Mapping[str, Any]]) -> None:
        """Insert the run and its channels (idempotent)."""
        with self.engine.begin() as conn:
            conn.execute(self._insert_ignore(s.runs), [dict(row)])
            if channel_rows:
                conn.execute(self._insert_ignore(s.channels), [dict(r) for r in channel_rows])

    def set_run_status(self, run_id: str, status: str, message: str | None = None) -> None:
        values: dict[str, Any] = {"status": status, "message": message}
        if status != "running":
            values["ended_unix_s"] = time.time()
        with self.engine.begin() as conn:
            conn.execute(update(s.runs).where(s.runs.c.run_id == run_id).values(**values))

    def write(self, batch: WriteBatch) -> None:
        """Write one batch in one transaction (replaying a batch changes nothing)."""
        self.write_many([batch])

    def write_many(self, batches: Sequence[WriteBatch]) -> None:
        """Write several batches, in order, in one transaction (a checkpoint still commits with
        exactly the data before it: all of it or none). Each table takes one statement for all the
        batches' rows; of several checkpoints (or statuses) of a channel the last is the one kept."""
        rows: dict[str, list[tuple[Any, ...]]] = {name: [] for name in _INSERTED}
        checkpoints: dict[tuple[str, str], dict[str, Any]] = {}
        statuses: dict[tuple[str, str], str] = {}
        for batch in batches:
            _collect(batch, rows)
            key = (batch.run_id, batch.channel)
            if batch.checkpoint is not None:
                checkpoints[key] = {"run_id": key[0], "channel": key[1], "updated_unix_s": time.time(),
                                    **batch.checkpoint}  # fmt: skip
            if batch.channel_status is not None:
                statuses[key] = batch.channel_status
        with self.engine.begin() as conn:
            for name, data in rows.items():
                if data:
                    self._insert_rows(conn, s.metadata.tables[name], data)
            c, ch = s.checkpoints, s.channels
            for (run_id, channel), row in checkpoints.items():
                conn.execute(c.delete().where(c.c.run_id == run_id, c.c.channel == channel))
                conn.execute(insert(c), [row])
            for (run_id, channel), status in statuses.items():
                conn.execute(update(ch).where(ch.c.run_id == run_id, ch.c.channel == channel).values(status=status))

    def _insert_rows(self, conn: Any, table: Any, rows: list[tuple[Any, ...]]) -> None:
        """Insert ``rows`` (tuples in the table's column order), ignoring those already there."""
        if self.dialect == "sqlite":  # plain tuples through the driver: the bulk of a run's writing
            conn.exec_driver_sql(_sqlite_insert(table.name, tuple(table.columns.keys())), rows)
        else:
            names = table.columns.keys()
            conn.execute(self._insert_ignore(table), [dict(zip(names, r, strict=True)) for r in rows])

    def discard_after(self, run_id: str, channel: str, *, sample_seq: int, event_seq: int, step_seq: int,
                      cycle: int, metric_seq: int) -> None:  # fmt: skip
        """Delete a channel's data recorded after a checkpoint (a hardware-free resume regenerates it
        identically): samples from ``sample_seq``, events from ``event_seq``, steps after ``step_seq``,
        cycles from ``cycle`` (the one open at the checkpoint) on, metric rows from ``metric_seq``."""
        with self.engine.begin() as conn:
            self._cut_blocks(conn, run_id, channel, sample_seq)
            for table, column, first in (
                (s.samples, s.samples.c.seq, sample_seq),
                (s.events, s.events.c.seq, event_seq),
                (s.steps, s.steps.c.step_seq, step_seq + 1),
                (s.cycles, s.cycles.c.cycle, cycle),
                (s.metrics, s.metrics.c.seq, metric_seq),
            ):
                conn.execute(
                    table.delete().where(table.c.run_id == run_id, table.c.channel == channel, column >= first)
                )
            conn.execute(update(s.channels).where(s.channels.c.run_id == run_id, s.channels.c.channel == channel)
                         .values(status="running"))  # fmt: skip
            conn.execute(update(s.runs).where(s.runs.c.run_id == run_id).values(status="running", ended_unix_s=None))

    def _cut_blocks(self, conn: Any, run_id: str, channel: str, first: int) -> None:
        """Delete the channel's stored samples from ``first`` on (a block across it keeps its head)."""
        b = s.sample_blocks
        mine = (b.c.run_id == run_id, b.c.channel == channel)
        across_q = select(b.c.first_seq, b.c.n, b.c.data).where(*mine, b.c.first_seq < first, b.c.last_seq >= first)
        across = conn.execute(across_q).all()
        conn.execute(b.delete().where(*mine, b.c.first_seq >= first))
        for first_seq, n, data in across:
            rows = decode_block(data, n)
            head = rows.take(rows.seq < first)
            conn.execute(b.delete().where(*mine, b.c.first_seq == first_seq))
            if len(head):
                conn.execute(insert(b), [dict(zip(BLOCK_COLUMNS, _block_row(run_id, channel, head), strict=True))])

    # --- reading ----------------------------------------------------------------------------
    def run(self, run_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(s.runs).where(s.runs.c.run_id == run_id)).mappings().first()
        return dict(row) if row else None

    def runs(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(select(s.runs).order_by(s.runs.c.created_unix_s)).mappings()]

    def channels(self, run_id: str) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            q = select(s.channels).where(s.channels.c.run_id == run_id).order_by(s.channels.c.channel)
            return [dict(r) for r in conn.execute(q).mappings()]

    def checkpoint(self, run_id: str, channel: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            q = select(s.checkpoints).where(s.checkpoints.c.run_id == run_id, s.checkpoints.c.channel == channel)
            row = conn.execute(q).mappings().first()
        return dict(row) if row else None

    def samples(self, run_id: str, channel: str, *, from_seq: int = 0) -> SampleRows:
        """All recorded samples of a channel from ``from_seq`` on, in sequence order (the blocks and,
        from a version 1 store, the rows of ``samples``)."""
        b, t = s.sample_blocks, s.samples
        blocks = (
            select(b.c.n, b.c.encoding, b.c.data)
            .where(b.c.run_id == run_id, b.c.channel == channel, b.c.last_seq >= from_seq)
            .order_by(b.c.first_seq)
        )
        legacy = (
            select(
                t.c.seq, t.c.t_s, t.c.voltage_v, t.c.current_a, t.c.charge_c, t.c.step_seq, t.c.cycle, t.c.pressure_pa
            )
            .where(t.c.run_id == run_id, t.c.channel == channel, t.c.seq >= from_seq)
            .order_by(t.c.seq)
        )
        with self.engine.connect() as conn:
            parts = [_decode(n, encoding, data) for n, encoding, data in conn.execute(blocks)]
            rows = conn.execute(legacy).all()
        if rows:
            parts.append(_legacy_rows(rows))
        return merge_samples(parts, from_seq)

    def sample_count(self, run_id: str, channel: str | None = None) -> int:
        """How many sample rows a run (or one of its channels) holds, without reading them (a sample
        that a replay cut into other blocks wrote twice counts twice; :meth:`samples` has it once)."""
        b, t = s.sample_blocks, s.samples
        in_blocks = select(func.coalesce(func.sum(b.c.n), 0)).where(b.c.run_id == run_id)
        legacy = select(func.count()).select_from(t).where(t.c.run_id == run_id)
        if channel is not None:
            in_blocks = in_blocks.where(b.c.channel == channel)
            legacy = legacy.where(t.c.channel == channel)
        with self.engine.connect() as conn:
            return int(conn.execute(in_blocks).scalar_one()) + int(conn.execute(legacy).scalar_one())

    def _rows(self, table: Any, run_id: str, channel: str | None, order: Any) -> list[dict[str, Any]]:
        q = select(table).where(table.c.run_id == run_id)
        if channel is not None:
            q = q.where(table.c.channel == channel)
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(q.order_by(table.c.channel, order)).mappings()]

    def add_sweep(self, row: Mapping[str, Any]) -> None:
        with self.engine.begin() as conn:
            conn.execute(insert(s.sweeps), [dict(row)])

    def add_sweep_result(self, row: Mapping[str, Any]) -> None:
        """One point's outcome, in one transaction (idempotent)."""
        with self.engine.begin() as conn:
            conn.execute(self._insert_ignore(s.sweep_results), [dict(row)])

    def sweeps(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(select(s.sweeps).order_by(s.sweeps.c.created_unix_s)).mappings()]

    def sweep_results(self, sweep_id: str) -> list[dict[str, Any]]:
        """A sweep's rows in point order."""
        t = s.sweep_results
        with self.engine.connect() as conn:
            q = select(t).where(t.c.sweep_id == sweep_id).order_by(t.c.point)
            return [dict(r) for r in conn.execute(q).mappings()]

    def cycles(self, run_id: str, channel: str | None = None) -> list[dict[str, Any]]:
        return self._rows(s.cycles, run_id, channel, s.cycles.c.cycle)

    def steps(self, run_id: str, channel: str | None = None) -> list[dict[str, Any]]:
        return self._rows(s.steps, run_id, channel, s.steps.c.step_seq)

    def metrics(self, run_id: str, channel: str | None = None, name: str | None = None) -> list[dict[str, Any]]:
        """Monitor values of a run (optionally one channel, one metric name), in sequence order."""
        rows = self._rows(s.metrics, run_id, channel, s.metrics.c.seq)
        return [r for r in rows if name is None or r["name"] == name]

    def events(self, run_id: str, channel: str | None = None) -> list[dict[str, Any]]:
        rows = self._rows(s.events, run_id, channel, s.events.c.seq)
        for r in rows:
            r["values"] = json.loads(r.pop("values_json"))
        return rows


_INSERTED = ("sample_blocks", "steps", "cycles", "events", "metrics")
"""Tables a batch inserts rows into (insert-or-ignore: a replayed batch changes nothing)."""


def _collect(batch: WriteBatch, rows: dict[str, list[tuple[Any, ...]]]) -> None:
    """Add ``batch``'s rows, as tuples in each table's column order, to ``rows``."""
    run_id, channel = batch.run_id, batch.channel
    rows["sample_blocks"].extend(batch.coded().blocks)  # the batch's samples as one block
    for name, dicts in (("steps", batch.steps), ("cycles", batch.cycles), ("metrics", batch.metrics)):
        columns = _value_columns(name)
        rows[name].extend((run_id, channel, *(r.get(c) for c in columns)) for r in dicts)
    rows["events"].extend(
        (run_id, channel, seq, e.time_s, e.wall_time_s, e.source, e.kind, e.cause, e.message,
         json.dumps(dict(e.values), default=str))
        for seq, e in batch.events
    )  # fmt: skip


@functools.cache
def _value_columns(table: str) -> tuple[str, ...]:
    """A data table's columns after (run_id, channel)."""
    return tuple(s.metadata.tables[table].columns.keys())[2:]


def _block_row(run_id: str, channel: str, rows: SampleRows) -> tuple[Any, ...]:
    """A ``sample_blocks`` row (in :data:`BLOCK_COLUMNS` order) holding ``rows``."""
    return (run_id, channel, int(rows.seq[0]), int(rows.seq[-1]), len(rows), float(rows.t_s[0]),
            float(rows.t_s[-1]), BLOCK_ENCODING, encode_block(rows))  # fmt: skip


def _decode(n: int, encoding: str, data: bytes) -> SampleRows:
    if encoding != BLOCK_ENCODING:
        raise StoreError(f"a sample block is coded '{encoding}', which this version of licycler cannot read")
    return decode_block(bytes(data), n)


def _legacy_rows(rows: Sequence[Any]) -> SampleRows:
    """Rows of a version 1 ``samples`` table as columns."""
    cols = list(zip(*rows, strict=True))
    return SampleRows(
        np.array(cols[0], dtype=np.int64), np.array(cols[1], dtype=np.float64), np.array(cols[2], dtype=np.float64),
        np.array(cols[3], dtype=np.float64), np.array(cols[4], dtype=np.float64), np.array(cols[5], dtype=np.int64),
        np.array(cols[6], dtype=np.int64), np.array([np.nan if p is None else p for p in cols[7]], dtype=np.float64),
    )  # fmt: skip


@functools.cache
def _sqlite_insert(table: str, columns: tuple[str, ...]) -> str:
    """SQLite's idempotent insert of plain tuples into ``table`` (replaying a batch changes nothing)."""
    return f"INSERT OR IGNORE INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


_HURRY = object()


def batch_sample_count(item: object) -> int:
    """Sample rows in a queued item (0 for the writer's markers)."""
    if not isinstance(item, WriteBatch):
        return 0
    return sum(len(r) for r in item.samples) + sum(int(b[4]) for b in item.blocks)


@runtime_checkable
class BatchWriter(Protocol):
    """What the engine needs of a store writer: ``submit`` returns at once (or, for a hardware-free
    run, once the writer has room), a failure is kept in ``failed``, never raised into control."""

    failed: BaseException | None

    def submit(self, batch: WriteBatch) -> None: ...

    @property
    def pending(self) -> int: ...

    async def wait_below(self, batches: int) -> None: ...

    async def flush(self) -> None: ...

    async def close(self) -> None: ...


class StoreWriter:
    """Writes batches in a background thread, one transaction each; control code never waits on it.

    ``max_pending`` bounds the queue: when the database cannot keep up that far, ``submit`` marks
    the writer failed (the engine then secures the channels) rather than blocking or losing data.
    ``linger_s`` (s) is how long the writer waits after a batch arrives for others to join its
    transaction. On real time this keeps the writer (which shares the interpreter lock with control)
    out of the burst of a station's channels ending a step together: their checkpoints commit in
    one transaction just after it, instead of one by one during it. A checkpoint commits at most
    ``linger_s`` later; a resume after a crash then repeats at most that much more.
    """

    def __init__(self, store: Store, *, max_pending: int = 10_000, linger_s: float = 0.0) -> None:
        self.store = store
        self.linger_s = linger_s
        self.failed: BaseException | None = None
        self.written_batches = 0
        # None stops the writer; _HURRY ends a linger (flush)
        self._queue: queue.Queue[WriteBatch | object | None] = queue.Queue(maxsize=max_pending)
        self._thread = threading.Thread(target=self._work, name="licycler-store", daemon=True)
        self._thread.start()

    def submit(self, batch: WriteBatch) -> None:
        """Queue ``batch``; returns at once."""
        if self.failed is not None:
            return
        try:
            self._queue.put_nowait(batch)
        except queue.Full:
            self.failed = StoreError(f"the store fell {self._queue.maxsize} batches behind")

    def _work(self) -> None:
        while True:
            batches = [self._queue.get()]
            # coalesce what else is waiting (or arrives within linger_s) into the same transaction
            rows = batch_sample_count(batches[0])
            deadline = time.monotonic() + self.linger_s
            while isinstance(batches[-1], WriteBatch) and rows < COALESCE_ROWS:
                wait = deadline - time.monotonic()
                try:
                    nxt = self._queue.get(timeout=wait) if wait > 0 else self._queue.get_nowait()
                except queue.Empty:
                    break
                batches.append(nxt)
                rows += batch_sample_count(nxt)
            stop = batches[-1] is None
            todo = [b for b in batches if isinstance(b, WriteBatch)]
            try:
                if todo and self.failed is None:
                    self.store.write_many(todo)
                    self.written_batches += len(todo)
            except BaseException as exc:
                self.failed = exc
            finally:
                for _ in batches:
                    self._queue.task_done()
            if stop:
                return

    @property
    def pending(self) -> int:
        """Batches submitted and not yet written."""
        return self._queue.unfinished_tasks

    async def wait_below(self, batches: int) -> None:
        """Return once at most ``batches`` are pending (or the writer failed)."""
        while self._queue.unfinished_tasks > batches and self.failed is None and self._thread.is_alive():
            await asyncio.sleep(0.002)

    async def flush(self) -> None:
        """Wait (without blocking the event loop) until every submitted batch is written."""
        if self.linger_s > 0 and self._thread.is_alive():
            self._queue.put(_HURRY)
        await asyncio.to_thread(self._queue.join)

    async def close(self) -> None:
        await self.flush()
        self._queue.put(None)
        await asyncio.to_thread(self._thread.join)

    def stop(self) -> None:
        """Write what is queued and end the thread (blocking: for code outside an event loop)."""
        self._queue.join()
        self._queue.put(None)
        self._thread.join()
