"""Samples stored as blocks: exact round trips, compact columns, version 1 stores still read,
replays and resumes (a cut inside a block) on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import text

from licycler.store import SampleRows, Store, WriteBatch
from licycler.store.blocks import decode_block, encode_block
from tests.telemetry.services import fresh_database


def _rows(first: int, n: int, *, step: int = 1, pressure: bool = False, seed: int = 0) -> SampleRows:
    rng = np.random.default_rng(seed)
    seq = np.arange(first, first + n, dtype=np.int64)
    return SampleRows(
        seq, 0.5 * seq.astype(np.float64), rng.normal(0.0, 0.05, n), np.full(n, -1e-3), np.cumsum(rng.random(n)),
        np.full(n, step, dtype=np.int64), np.full(n, (step + 1) // 2, dtype=np.int64),
        rng.normal(1e6, 1e3, n) if pressure else None,
    )  # fmt: skip


def _same_bits(a: SampleRows, b: SampleRows) -> None:
    for name in ("seq", "t_s", "voltage_v", "current_a", "charge_c", "step_seq", "cycle"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype, name
        assert x.tobytes() == y.tobytes(), name


def test_a_block_comes_back_bit_for_bit_with_its_odd_values() -> None:
    rows = _rows(10, 257, pressure=True)
    rows.voltage_v[[0, 5, 6, 7]] = [-0.0, np.nan, np.inf, -np.inf]  # SQLite REAL would lose the -0.0
    rows.pressure_pa[3:9] = np.nan  # type: ignore[index]  # readings without a pressure
    rows.step_seq[200:] = 4  # a block across a step boundary
    rows.seq[100:] += 7  # a gap in the sequence numbers
    back = decode_block(encode_block(rows), len(rows))
    _same_bits(rows, back)
    assert back.pressure_pa is not None
    assert rows.pressure_pa is not None
    assert back.pressure_pa.tobytes() == rows.pressure_pa.tobytes()


def test_constant_columns_and_a_run_of_sequence_numbers_take_one_value_each() -> None:
    n = 1000
    rows = _rows(0, n)
    # time, voltage, charge vary (3 x 8 bytes a sample); current, step, cycle are constant and seq a
    # run: 8 bytes each; no pressure; one code byte a column (8 columns)
    assert len(encode_block(rows)) == 3 * 8 * n + 4 * 8 + 8
    back = decode_block(encode_block(rows), n)
    _same_bits(rows, back)
    assert np.all(np.isnan(back.pressure_pa))  # type: ignore[arg-type]


def test_a_block_that_does_not_add_up_is_refused() -> None:
    data = encode_block(_rows(0, 10))
    with pytest.raises(ValueError, match="bytes more"):
        decode_block(data + b"\0", 10)


@contextmanager
def _store(kind: str, tmp_path: Path) -> Iterator[Store]:
    if kind == "sqlite":
        store = Store(f"sqlite:///{tmp_path / 'b.db'}")
        yield store
        store.close()
        return
    with fresh_database() as url:
        store = Store(url)
        yield store
        store.close()


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_replays_reads_from_the_middle_and_a_cut_inside_a_block(kind: str, tmp_path: Path) -> None:
    with _store(kind, tmp_path) as store:
        first, second = _rows(0, 500, step=1, seed=1), _rows(500, 300, step=2, seed=2)
        store.write(WriteBatch("r", "ch", [first]))
        store.write(WriteBatch("r", "ch", [second.take(slice(0, 100)), second.take(slice(100, None))]))
        store.write(WriteBatch("r", "ch", [first]))  # a batch replayed: nothing changes
        store.write(WriteBatch("r", "ch", [second.take(slice(50, 250))]))  # a replay cut elsewhere
        whole = SampleRows.concat([first, second])
        _same_bits(store.samples("r", "ch"), whole)
        _same_bits(store.samples("r", "ch", from_seq=420), whole.take(slice(420, None)))
        assert store.sample_count("r", "ch") == 800 + 200  # rows held (the re-cut replay's among them)
        # a resume from seq 650 (inside the second block): the head stays, the rest goes
        store.discard_after("r", "ch", sample_seq=650, event_seq=0, step_seq=0, cycle=0, metric_seq=0)
        _same_bits(store.samples("r", "ch"), whole.take(slice(0, 650)))
        tail = _rows(650, 20, step=2, seed=3)
        store.write(WriteBatch("r", "ch", [tail]))
        _same_bits(store.samples("r", "ch"), SampleRows.concat([whole.take(slice(0, 650)), tail]))
        assert store.sample_count("r", "ch") == 500 + 150 + 100 + 20  # the re-cut replay keeps its head too


def test_a_version_1_store_with_one_row_a_sample_is_still_read(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'v1.db'}")
    old = _rows(0, 120, pressure=True, seed=4)
    old.pressure_pa[:10] = np.nan  # type: ignore[index]
    with store.engine.begin() as conn:  # what version 1 wrote: a row a sample, NULL for no pressure
        conn.exec_driver_sql("INSERT INTO samples VALUES (?,?,?,?,?,?,?,?,?,?)", old.rows("r", "ch"))
    new = _rows(120, 30, step=2, seed=5)
    store.write(WriteBatch("r", "ch", [new]))  # a version 2 controller resumed the run
    got = store.samples("r", "ch")
    want = SampleRows.concat([old, new])
    _same_bits(got, want)
    assert np.array_equal(got.pressure_pa, want.pressure_pa, equal_nan=True)  # type: ignore[arg-type]
    assert store.sample_count("r") == 150
    store.discard_after("r", "ch", sample_seq=100, event_seq=0, step_seq=0, cycle=0, metric_seq=0)
    _same_bits(store.samples("r", "ch"), old.take(slice(0, 100)))
    with store.engine.connect() as conn:
        assert conn.execute(text("select count(*) from sample_blocks")).scalar_one() == 0
    store.close()
