"""The store writer's linger (real-time runs): batches that arrive within it share one transaction,
and a flush or close ends it at once, with every batch written."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from licycler.store import SampleRows, Store, StoreWriter, WriteBatch


class CountingStore(Store):
    """A real SQLite store that keeps how many batches each transaction held."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.transactions: list[int] = []

    def write_many(self, batches: Sequence[WriteBatch]) -> None:
        super().write_many(batches)
        self.transactions.append(len(batches))


def _batch(run_id: str, first: int, n: int) -> WriteBatch:
    seq = np.arange(first, first + n, dtype=np.int64)
    rows = SampleRows(seq, seq * 1.0, np.zeros(n), np.full(n, 1e-3), seq * 1e-3, np.ones(n, dtype=np.int64),
                      np.ones(n, dtype=np.int64), None)  # fmt: skip
    return WriteBatch(run_id, "ch0", [rows], [], [], [], [])


def _store(tmp_path: Path) -> tuple[CountingStore, str]:
    return CountingStore(f"sqlite:///{tmp_path / 'w.db'}"), "r1"


async def test_batches_within_the_linger_share_a_transaction_and_close_ends_it(tmp_path: Path) -> None:
    store, run_id = _store(tmp_path)
    writer = StoreWriter(store, linger_s=600.0)  # far longer than the test: only close can end it
    for k in range(5):
        writer.submit(_batch(run_id, 10 * k, 10))
    await asyncio.wait_for(writer.close(), timeout=60.0)  # a guard: the linger must not hold close
    assert store.transactions == [5]
    assert writer.failed is None
    assert np.array_equal(store.samples(run_id, "ch0").seq, np.arange(50))


async def test_flush_ends_the_linger_and_the_writer_goes_on(tmp_path: Path) -> None:
    store, run_id = _store(tmp_path)
    writer = StoreWriter(store, linger_s=600.0)
    writer.submit(_batch(run_id, 0, 3))
    await asyncio.wait_for(writer.flush(), timeout=60.0)
    assert len(store.samples(run_id, "ch0")) == 3
    writer.submit(_batch(run_id, 3, 4))
    await asyncio.wait_for(writer.close(), timeout=60.0)
    assert store.transactions == [1, 1]
    assert np.array_equal(store.samples(run_id, "ch0").seq, np.arange(7))
