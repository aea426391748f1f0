"""The step a station run's controller died in, as the resume feeds it back: its samples so far, then
the instrument again after the gap. The step's ``on: {controller_gap: ...}`` rule decides what follows:
``continue`` (what is left of its capacity), ``restart`` (its counters from the resume; the cycle keeps
every coulomb), ``stop`` (the run ends there). On a virtual clock, a dummy cell of 50 Ohm."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest

from licycler.drivers.interfaces import SampleBlock
from licycler.engine import RunController, RunState
from licycler.engine.runner import Progress
from licycler.events import EventLog
from licycler.protocols.parse import parse_schedule
from licycler.yamlsource import InputError, load_yaml_text
from tests.engine.conftest import dummy_channel

CURRENT_A = 1e-3
AWAY_S = 20.0
BEFORE_S = 40.0  # the step had plated for 40 s when the controller died


def schedule(rule: str) -> Any:
    text = f"""\
name: gap rule
cell: {{chemistry: Li||Li, electrode_area: 1 cm^2}}
limits: {{voltage_min: -1 V, voltage_max: 1 V}}
record: {{every: 1 s}}
steps:
  - plate: {{current: 1 mA/cm^2, until: {{capacity: {CURRENT_A * 100 / 3.6} mAh/cm^2}}, on: {{controller_gap: {rule}}}}}
  - strip: {{current: 1 mA/cm^2, until: {{time: 50 s}}}}
"""
    return parse_schedule(load_yaml_text(text, "gap.yaml"), text, "gap.yaml")


class Steps:
    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self.cycles: list[dict[str, Any]] = []

    def on_step(self, run_id: str, channel: str, row: dict[str, Any]) -> None:
        self.rows.append(row)

    def on_cycle(self, run_id: str, channel: str, row: dict[str, Any]) -> None:
        self.cycles.append(row)

    def on_samples(self, run_id: str, channel: str, rows: Any) -> None:
        pass


async def resumed(rule: str) -> tuple[Steps, EventLog, dict[str, RunState]]:
    setup = dummy_channel()
    t = np.arange(1.0, BEFORE_S + 1.0)
    before = SampleBlock(t, np.full(t.shape, -50 * CURRENT_A), np.full(t.shape, -CURRENT_A))
    setup.progress = Progress(t_s=0.0)
    setup.replay = [(before, False)]
    assert hasattr(setup.clock, "advance_to")
    setup.clock.advance_to(BEFORE_S + AWAY_S)  # the resume starts after the controller was away
    controller = RunController(schedule(rule), [setup], None, resuming=True, mode="station")
    steps, log = Steps(), EventLog()
    controller.add_observer(steps)  # type: ignore[arg-type]
    controller.add_sink(log)
    return steps, log, await controller.run()


async def test_continue_delivers_what_is_left_of_the_capacity_and_the_gap_does_not_count() -> None:
    steps, _, states = await resumed("continue")
    assert states == {"ch0": RunState.COMPLETED}
    plate = steps.rows[0]
    assert plate["ended_by"] == "capacity"
    assert abs(plate["charge_c"]) == pytest.approx(100 * CURRENT_A, rel=1e-3)  # 40 s before + 60 s after
    assert plate["end_s"] == pytest.approx(BEFORE_S + AWAY_S + 60.0, abs=1.01)  # no charge across the gap
    assert steps.cycles[0]["charge_plate_c"] == pytest.approx(100 * CURRENT_A, rel=1e-3)


async def test_restart_runs_the_step_again_and_the_cycle_keeps_every_coulomb() -> None:
    steps, _, states = await resumed("restart")
    assert states == {"ch0": RunState.COMPLETED}
    plate = steps.rows[0]
    assert abs(plate["charge_c"]) == pytest.approx(100 * CURRENT_A, rel=1e-3)  # a whole step after the resume
    assert plate["end_s"] == pytest.approx(BEFORE_S + AWAY_S + 100.0, abs=1.01)
    assert steps.cycles[0]["charge_plate_c"] == pytest.approx(140 * CURRENT_A, rel=1e-3)  # 40 s + 100 s


async def test_stop_ends_the_run_with_the_step_as_it_stood() -> None:
    steps, log, states = await resumed("stop")
    assert states == {"ch0": RunState.COMPLETED}
    assert [r["kind"] for r in steps.rows] == ["plate"]
    assert steps.rows[0]["ended_by"] == "controller_gap"
    assert abs(steps.rows[0]["charge_c"]) == pytest.approx(BEFORE_S * CURRENT_A, rel=1e-3)
    assert any(e.kind == "decision" and "controller_gap" in e.message for e in log.events)


def test_a_rule_given_twice_is_refused() -> None:
    text = """\
name: twice
cell: {chemistry: Li||Li, electrode_area: 1 cm^2}
limits: {voltage_min: -1 V, voltage_max: 1 V}
steps:
  - plate: {current: 1 mA/cm^2, until: {time: 10 s}, resume: restart, on: {controller_gap: stop}}
"""
    with pytest.raises(InputError, match=re.escape("twice.yaml:5: steps[0].plate.on.controller_gap: give either")):
        parse_schedule(load_yaml_text(text, "twice.yaml"), text, "twice.yaml")
