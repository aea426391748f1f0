"""Healthy cells raise no alarm and no action: 20 seeds of the default Li||Li cell and 20 of the
Li||Cu cell, every monitor on, with their default rules."""

from __future__ import annotations

import pytest

from licycler.engine import RunController, RunState
from licycler.engine.sim import twin_setups
from licycler.events import EventLog, FanOut

from .conftest import schedule

SEEDS = 20

LI_LI = """\
name: healthy Li||Li
cell: {chemistry: Li||Li, electrode_area: 2.01 cm^2}
limits: {voltage_min: -1 V, voltage_max: 1 V}
record: {every: 1 s}
steps:
  - rest: 60 s
  - repeat:
      count: 4
      steps:
        - plate: {current: 2 mA/cm^2, until: {capacity: 0.25 mAh/cm^2, voltage_below: -0.9 V}}
        - strip: {current: 2 mA/cm^2, until: {capacity: 0.25 mAh/cm^2, voltage_above: 0.9 V}}
"""

LI_CU = """\
name: healthy Li||Cu
cell: {chemistry: Li||Cu, electrode_area: 2.01 cm^2}
limits: {voltage_min: -3.5 V, voltage_max: 3.5 V}
record: {every: 1 s}
steps:
  - rest: 60 s
  - repeat:
      count: 4
      steps:
        - plate:
            current: 2 mA/cm^2
            until: {capacity: 0.25 mAh/cm^2, voltage_below: -0.9 V}
            on: {voltage_below: stop}
        - strip: {current: 2 mA/cm^2, until: {voltage_above: 1 V, time: 1 h}}
"""


@pytest.mark.parametrize(("text", "scenario"), [(LI_LI, "default"), (LI_CU, "li-cu")], ids=["li-li", "li-cu"])
async def test_no_finding_and_no_action_across_20_seeds(text: str, scenario: str) -> None:
    sched = schedule(text)
    setups, _ = twin_setups(sched, scenario, channels=SEEDS, seed=0)
    log = EventLog()
    states = await RunController(sched, setups, None, events=FanOut(log)).run()
    assert all(s is RunState.COMPLETED for s in states.values())
    raised = [(e.channel, e.kind, e.cause, e.message) for e in log.events
              if e.kind in ("finding", "decision", "monitor")]  # fmt: skip
    assert raised == []
    assert len(states) == SEEDS
