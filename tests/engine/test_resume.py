"""Crash and resume in-process: the store keeps only what a killed process would have committed."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from licycler.engine import RunController, RunState
from licycler.engine.resume import close_finished_run, plan_resume
from licycler.events import FanOut
from licycler.store import Store, StoreWriter, WriteBatch

from .conftest import dummy_channel
from .test_engine import CYCLING, schedule


class CrashingWriter(StoreWriter):
    """Commits the first ``keep`` batches, then nothing: what SIGKILL leaves behind."""

    def __init__(self, store: Store, keep: int) -> None:
        super().__init__(store)
        self.keep = keep
        self.task: asyncio.Task[Any] | None = None

    def submit(self, batch: WriteBatch) -> None:
        if self.keep > 0:
            self.keep -= 1
            super().submit(batch)
            if self.keep == 0 and self.task is not None:
                self.task.cancel()  # the process dies here: nothing after this batch is committed


async def crash_after(sched: Any, store: Store, keep: int) -> str:
    ctl = RunController(sched, [dummy_channel()], store, events=FanOut())
    ctl.sim_checkpoint_period_s = 0.0  # a checkpoint at every step: crashes land between any two
    ctl.writer = CrashingWriter(store, keep)
    task = asyncio.create_task(ctl.run())
    ctl.writer.task = task
    with pytest.raises(asyncio.CancelledError):
        await task
    await StoreWriter.flush(ctl.writer)
    return ctl.run_id


async def resume(store: Store, run_id: str) -> dict[str, RunState]:
    plan = plan_resume(store, run_id, stuck_count=10**9)  # dummy cells read without noise
    ctl = RunController(plan.schedule, plan.setups, store, run_id=run_id, resuming=True)
    return await ctl.run()


@pytest.mark.parametrize("keep", [1, 3, 6])
async def test_resumed_run_equals_uninterrupted(tmp_path: Path, keep: int) -> None:
    sched = schedule(CYCLING)
    ref_store = Store(f"sqlite:///{tmp_path / 'ref.db'}")
    ref = RunController(sched, [dummy_channel()], ref_store, events=FanOut())
    await ref.run()
    store = Store(f"sqlite:///{tmp_path / 'crash.db'}")
    run_id = await crash_after(sched, store, keep)
    assert store.run(run_id)["status"] != "completed"  # type: ignore[index]
    states = await resume(store, run_id)
    assert states == {"ch0": RunState.COMPLETED}
    a, b = ref_store.samples(ref.run_id, "ch0"), store.samples(run_id, "ch0")
    assert np.array_equal(b.seq, np.arange(len(b)))  # no duplicate, no gap
    assert np.array_equal(a.t_s, b.t_s)
    assert np.array_equal(a.voltage_v, b.voltage_v)
    assert [c["cycle"] for c in store.cycles(run_id, "ch0")] == [1, 2, 3]
    assert [c["ce"] for c in store.cycles(run_id, "ch0")] == [c["ce"] for c in ref_store.cycles(ref.run_id, "ch0")]
    assert store.run(run_id)["status"] == "completed"  # type: ignore[index]


async def test_a_run_killed_as_it_closed_is_recorded_ended_by_its_resume(tmp_path: Path) -> None:
    """The last batch (the end, the channel's status and its final checkpoint) committed, the run's
    own status not yet: a resume has nothing to run and records the run's end."""
    store = Store(f"sqlite:///{tmp_path / 'closing.db'}")
    ctl = RunController(schedule(CYCLING), [dummy_channel()], store, events=FanOut())
    await ctl.run()
    assert close_finished_run(store, ctl.run_id) is None  # a run recorded as ended is left alone
    store.set_run_status(ctl.run_id, "running")  # what a kill between the two commits leaves
    assert store.channels(ctl.run_id)[0]["status"] == "completed"
    assert json.loads(store.checkpoint(ctl.run_id, "ch0")["state_json"])["finished"]  # type: ignore[index]
    assert close_finished_run(store, ctl.run_id) == "completed"
    assert store.run(ctl.run_id)["status"] == "completed"  # type: ignore[index]
