"""The same store on PostgreSQL (a lab database): a run, a replayed batch, and a crash and resume."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from licycler.engine import RunController, RunState
from licycler.events import FanOut
from licycler.store import Store, WriteBatch
from tests.telemetry.services import fresh_database

from .conftest import dummy_channel
from .test_engine import CYCLING, schedule
from .test_resume import crash_after, resume


async def test_run_replay_and_resume_on_postgresql(tmp_path: Path) -> None:
    sched = schedule(CYCLING)
    with fresh_database() as url:
        store = Store(url)
        assert store.dialect == "postgresql"
        ref = RunController(sched, [dummy_channel()], store, events=FanOut())
        assert (await ref.run())["ch0"] is RunState.COMPLETED
        samples = store.samples(ref.run_id, "ch0")
        assert np.array_equal(samples.seq, np.arange(len(samples)))
        assert [c["cycle"] for c in store.cycles(ref.run_id, "ch0")] == [1, 2, 3]
        # a batch written twice changes nothing (the unique keys make a replay harmless)
        again = store.samples(ref.run_id, "ch0")
        store.write(WriteBatch(ref.run_id, "ch0", [again]))
        assert len(store.samples(ref.run_id, "ch0")) == len(samples)
        # crash after three committed batches, resume from the database alone
        run_id = await crash_after(sched, store, 3)
        assert (await resume(store, run_id))["ch0"] is RunState.COMPLETED
        resumed = store.samples(run_id, "ch0")
        assert np.array_equal(resumed.voltage_v, samples.voltage_v)
        assert np.array_equal(resumed.seq, np.arange(len(resumed)))
        store.close()
