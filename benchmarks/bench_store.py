"""Store ingest: the store's batched, idempotent sample writes against raw sqlite3 executemany of the same rows."""

from __future__ import annotations

import sqlite3
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.harness import Result, ratio_result
from licycler.store import SampleRows, Store, WriteBatch
from licycler.store.schema import samples

BATCH = 20_000


def _rows(n: int, start: int) -> SampleRows:
    seq = np.arange(start, start + n, dtype=np.int64)
    t = seq.astype(np.float64)
    rng = np.random.default_rng(start)
    return SampleRows(seq, t, rng.normal(0.05, 1e-3, n), np.full(n, 1e-3), t * 1e-3,
                      np.ones(n, dtype=np.int64), np.ones(n, dtype=np.int64))  # fmt: skip


def run(quick: bool) -> list[Result]:
    n = 100_000 if quick else 1_000_000
    blocks = [_rows(BATCH, k) for k in range(0, n, BATCH)]
    with tempfile.TemporaryDirectory() as tmp:
        # the store: one transaction per batch, INSERT OR IGNORE on the (run, channel, seq) key
        store = Store(f"sqlite:///{Path(tmp) / 'store.db'}")
        start = time.perf_counter()
        for block in blocks:
            store.write(WriteBatch("run", "ch0", [block]))
        t_store = time.perf_counter() - start
        store.close()
        # raw sqlite3: the same table (same schema and keys, WAL), the same rows, executemany per batch
        raw_path = Path(tmp) / "raw.db"
        Store(f"sqlite:///{raw_path}").close()  # creates the identical schema
        conn = sqlite3.connect(raw_path)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        columns = ", ".join(c.name for c in samples.columns)
        sql = f"INSERT INTO samples ({columns}) VALUES ({', '.join('?' * len(samples.columns))})"
        prepared = [block.rows("run", "ch0") for block in blocks]  # the baseline gets its tuples for free
        start = time.perf_counter()
        for rows in prepared:
            with conn:
                conn.executemany(sql, rows)
        t_raw = time.perf_counter() - start
        conn.close()
    return [
        ratio_result(
            "store ingest (SQLite WAL)",
            n / t_store,
            "rows/s",
            n / t_raw,
            "raw sqlite3 executemany",
            target=">= 0.7",
            notes=f"{n} rows in batches of {BATCH}",
        )
    ]
