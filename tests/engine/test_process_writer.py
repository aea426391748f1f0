"""The store writer process of hardware-free runs: it writes what it is sent, reports a failing
database, and ends with the engine when the engine is killed (nothing is written after)."""

from __future__ import annotations

import asyncio
import os
import select
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import text

from licycler.engine import RunController
from licycler.engine.sim import twin_setups
from licycler.protocols import Schedule, load_schedule
from licycler.store import ProcessStoreWriter, SampleRows, Store, StoreWriter, WriteBatch

SHORT = """\
name: writer process
cell: {chemistry: Li||Li, electrode_area: 1 cm^2}
limits: {voltage_min: -1 V, voltage_max: 1 V}
record: {every: 1 s}
steps:
  - repeat:
      count: 2
      steps:
        - plate: {current: 1 mA/cm^2, until: {time: 10 min}}
        - strip: {current: 1 mA/cm^2, until: {time: 10 min}}
"""


def _rows(first: int, n: int) -> SampleRows:
    seq = np.arange(first, first + n, dtype=np.int64)
    one = np.ones(n, dtype=np.int64)
    t = seq.astype(np.float64)
    return SampleRows(seq, t, np.full(n, 0.01), np.full(n, 1e-3), t * 1e-3, one, one.copy())


async def test_a_hardware_free_run_writes_through_a_process_of_its_own(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'p.db'}")
    sched = _schedule(tmp_path)
    setups, _ = twin_setups(sched)
    ctl = RunController(sched, setups, store)
    assert isinstance(ctl.writer, ProcessStoreWriter)
    await ctl.run()
    assert store.sample_count(ctl.run_id) == 4 * 600  # every reading of the four 10 min steps
    assert len(store.steps(ctl.run_id, "ch1")) == 4
    assert store.checkpoint(ctl.run_id, "ch1")["sample_seq"] == 2400  # type: ignore[index]
    assert store.run(ctl.run_id)["status"] == "completed"  # type: ignore[index]


async def test_a_failing_database_is_reported_not_raised(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'f.db'}")
    with store.engine.begin() as conn:
        conn.execute(text("DROP TABLE sample_blocks"))  # what a lost or broken database looks like
    writer = ProcessStoreWriter(store)
    writer.submit(WriteBatch("r", "ch", [_rows(0, 10)]))
    await asyncio.wait_for(writer.flush(), timeout=60)  # a guard: the failure must end the wait
    assert writer.failed is not None
    assert "no such table: sample_blocks" in str(writer.failed)
    writer.submit(WriteBatch("r", "ch", [_rows(10, 10)]))  # dropped: the engine trips on `failed`
    await asyncio.wait_for(writer.close(), timeout=60)


async def test_the_thread_writer_stays_for_real_time_and_for_stores_a_child_cannot_open(tmp_path: Path) -> None:
    class Custom(Store):
        pass

    sched = _schedule(tmp_path)
    setups, _ = twin_setups(sched)
    ctl = RunController(sched, setups, Custom(f"sqlite:///{tmp_path / 'c.db'}"))
    assert isinstance(ctl.writer, StoreWriter)
    await ctl.writer.close()


ENGINE = """
import asyncio, sys, numpy as np
from licycler.store import ProcessStoreWriter, SampleRows, Store, WriteBatch
writer = ProcessStoreWriter(Store(sys.argv[1]))
seq = np.arange(100, dtype=np.int64)
one = np.ones(100, dtype=np.int64)
writer.submit(WriteBatch("r", "ch", [SampleRows(seq, seq * 1.0, seq * 0.0, seq * 0.0, seq * 0.0, one, one)]))
asyncio.run(writer.wait_below(0))
print(writer._process.pid, flush=True)
sys.stdin.readline()  # killed here
"""


@pytest.mark.skipif(not hasattr(os, "pidfd_open"), reason="needs Linux pidfd_open")
def test_the_writer_process_ends_at_once_when_the_engine_is_killed(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'k.db'}"
    Store(url).close()
    engine = subprocess.Popen([sys.executable, "-c", textwrap.dedent(ENGINE), url], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert engine.stdout is not None
    child = int(engine.stdout.readline())
    ended = os.pidfd_open(child)  # readable once the child has ended
    try:
        assert select.select([ended], [], [], 0)[0] == []  # alive while the engine is
        engine.send_signal(signal.SIGKILL)
        engine.wait()
        assert select.select([ended], [], [], 30.0)[0] == [ended]  # 30 s: a guard, it takes milliseconds
    finally:
        os.close(ended)
    assert Store(url).sample_count("r") == 100  # what it had written stays


def _schedule(tmp_path: Path) -> Schedule:
    path = tmp_path / "short.yaml"
    path.write_text(SHORT, encoding="utf-8")
    return load_schedule(path)
