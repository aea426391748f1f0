"""The monitors survive a crash: a run killed at a checkpoint and resumed from the store gives the
same findings, decisions and metric rows as the uninterrupted run (their state is in Progress)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from licycler.engine import RunController, RunState
from licycler.engine.resume import plan_resume
from licycler.engine.sim import twin_setups
from licycler.events import FanOut
from licycler.store import Store, StoreWriter, WriteBatch

from .conftest import schedule

SCENARIO = """\
name: li-cu, little lithium
seed: 4
cell:
  kind: li-cu
  area: 1 cm^2
  working_lithium: 0 mAh/cm^2
  counter_lithium: 0.5 mAh/cm^2
  efficiency: {coulombic_efficiency: 0.9, noise: 0.002}
measurement: {voltage_noise: 50 uV}
"""

SCHEDULE = """\
name: Li||Cu until the lithium runs out
cell: {chemistry: Li||Cu, electrode_area: 1 cm^2}
limits: {voltage_min: -3.5 V, voltage_max: 3.5 V}
record: {every: 5 s}
watch: {every: 2 min, model: {inventory: 0.5 mAh/cm^2}}
steps:
  - rest: 60 s
  - repeat:
      count: 14
      steps:
        - plate:
            current: 2 mA/cm^2
            until: {capacity: 0.25 mAh/cm^2, voltage_below: -0.9 V}
            on: {voltage_below: stop}
        - strip: {current: 2 mA/cm^2, until: {voltage_above: 1 V, time: 1 h}}
"""


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
                self.task.cancel()


def _record(store: Store, run_id: str) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    metrics = [(m["seq"], m["time_s"], m["cycle"], m["name"], m["value"]) for m in store.metrics(run_id, "ch1")]
    said = [(e["time_s"], e["kind"], e["cause"], e["message"]) for e in store.events(run_id, "ch1")
            if e["kind"] in ("finding", "decision")]  # fmt: skip
    return metrics, said


@pytest.mark.parametrize("keep", [4, 8, 13])
async def test_resumed_monitors_equal_uninterrupted(tmp_path: Path, keep: int) -> None:
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text(SCENARIO)
    sched = schedule(SCHEDULE)
    ref_store = Store(f"sqlite:///{tmp_path / 'ref.db'}")
    setups, _ = twin_setups(sched, scenario)
    ref = RunController(sched, setups, ref_store, events=FanOut())
    await ref.run()
    ref_metrics, ref_said = _record(ref_store, ref.run_id)
    assert any(s[1] == "finding" for s in ref_said)  # the run has findings to reproduce

    store = Store(f"sqlite:///{tmp_path / 'crash.db'}")
    setups, _ = twin_setups(sched, scenario)
    ctl = RunController(sched, setups, store, events=FanOut())
    writer = CrashingWriter(store, keep)
    ctl.writer = writer
    ctl.sim_checkpoint_period_s = 0.0  # a checkpoint at every step: crashes land between any two
    task = asyncio.create_task(ctl.run())
    writer.task = task
    with pytest.raises(asyncio.CancelledError):
        await task
    await StoreWriter.flush(writer)
    assert store.run(ctl.run_id)["status"] != "completed"  # type: ignore[index]

    plan = plan_resume(store, ctl.run_id)
    resumed = RunController(plan.schedule, plan.setups, store, run_id=ctl.run_id, resuming=True)
    states = await resumed.run()
    assert states["ch1"] is RunState.COMPLETED
    metrics, said = _record(store, ctl.run_id)
    assert metrics == ref_metrics
    assert said == ref_said
