"""The engine on exact dummy cells: terminations, cycles, actions, commands, limits, store."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest

from licycler.clock import VirtualClock
from licycler.engine import RunController, RunState, exit_status
from licycler.engine.states import IllegalTransition, StateMachine
from licycler.errors import UserError
from licycler.events import EventLog, FanOut
from licycler.protocols import parse_schedule
from licycler.store import Store
from licycler.yamlsource import load_yaml_text

from .conftest import dummy_channel

AREA_CM2 = 1.0


def schedule(steps: str, limits: str = "{voltage_min: -1 V, voltage_max: 1 V}", record: str = "{every: 1 s}") -> Any:
    text = f"""\
name: test
cell: {{chemistry: Li||Li, electrode_area: {AREA_CM2} cm^2}}
limits: {limits}
record: {record}
steps:
{steps}"""
    return parse_schedule(load_yaml_text(text, "t.yaml"), text, "t.yaml")


CYCLING = """\
  - rest: 10 s
  - repeat:
      count: 3
      steps:
        - plate: {current: 1 mA/cm^2, until: {capacity: 0.1 mAh/cm^2}}
        - strip: {current: 1 mA/cm^2, until: {capacity: 0.1 mAh/cm^2}}
"""


async def run(
    sched: Any, store: Store | None, *setups: Any, log: EventLog | None = None
) -> tuple[RunController, dict[str, RunState]]:
    ctl = RunController(sched, list(setups) or [dummy_channel()], store, events=FanOut(*(x for x in [log] if x)))
    return ctl, await ctl.run()


async def test_capacity_terminations_end_at_the_exact_sample(store: Store) -> None:
    ctl, states = await run(schedule(CYCLING), store)
    assert states == {"ch0": RunState.COMPLETED}
    steps = store.steps(ctl.run_id, "ch0")
    assert [s["kind"] for s in steps] == ["rest"] + ["plate", "strip"] * 3
    # 0.1 mAh/cm2 at 1 mA/cm2 on 1 cm2 = 360 s exactly at 1 s samples; charge 0.36 C
    for s in steps[1:]:
        assert s["end_s"] - s["start_s"] == pytest.approx(360.0)
        assert abs(s["charge_c"]) == pytest.approx(0.36)
        assert s["ended_by"] == "capacity"
    assert steps[0]["ended_by"] == "time"
    assert steps[0]["end_s"] == pytest.approx(10.0)


async def test_cycles_numbered_with_ce_and_mean_voltages(store: Store) -> None:
    ctl, _ = await run(schedule(CYCLING), store, dummy_channel(resistance_ohm=50.0))
    cycles = store.cycles(ctl.run_id, "ch0")
    assert [c["cycle"] for c in cycles] == [1, 2, 3]
    for c in cycles:
        assert c["charge_plate_c"] == pytest.approx(0.36)
        assert c["ce"] == pytest.approx(1.0)
        # a 50 ohm dummy cell at 1 mA: -50 mV plating, +50 mV stripping
        assert c["mean_voltage_plate_v"] == pytest.approx(-0.05)
        assert c["mean_voltage_strip_v"] == pytest.approx(0.05)


async def test_every_sample_recorded_once_in_order(store: Store) -> None:
    ctl, _ = await run(schedule(CYCLING), store)
    s = store.samples(ctl.run_id, "ch0")
    assert np.array_equal(s.seq, np.arange(len(s)))
    assert len(s) == 10 + 6 * 360  # every 1 s sample of 10 s rest and six 360 s half-cycles
    assert np.all(np.diff(s.t_s) > 0)
    plating = s.current_a < 0
    assert np.allclose(s.voltage_v[plating], -0.05)


async def test_record_conditions_thin_the_samples(store: Store) -> None:
    ctl, _ = await run(schedule(CYCLING, record="{every: 60 s}"), store)
    s = store.samples(ctl.run_id, "ch0")
    # each 360 s step keeps samples at 0, 60, ... (7 per step with the first and last); rest 10 s: 2
    assert len(s) < 60
    assert s.t_s[-1] == pytest.approx(10 + 6 * 360)


async def test_voltage_termination_and_stop_action(store: Store) -> None:
    steps = """\
  - plate: {current: 1 mA/cm^2, until: {capacity: 1 mAh/cm^2, voltage_below: -0.04 V}, on: {voltage_below: stop}}
  - strip: {current: 1 mA/cm^2, until: {time: 10 s}}
"""
    log = EventLog()
    ctl, states = await run(schedule(steps), store, log=log)
    assert states["ch0"] is RunState.COMPLETED
    recorded = store.steps(ctl.run_id, "ch0")
    assert len(recorded) == 1  # the strip never ran
    assert recorded[0]["ended_by"] == "voltage_below"
    assert recorded[0]["end_s"] == pytest.approx(1.0)  # the first sample is already below -40 mV
    assert any(e.kind == "decision" and e.cause == "stop" for e in log.events)


async def test_goto_with_a_count(store: Store) -> None:
    steps = """\
  - rest: {label: top, until: {time: 5 s}}
  - strip: {current: 1 mA/cm^2, until: {time: 5 s}, on: {time: {goto: top, times: 2}}}
"""
    ctl, _ = await run(schedule(steps), store)
    kinds = [s["kind"] for s in store.steps(ctl.run_id, "ch0")]
    assert kinds == ["rest", "strip"] * 3


async def test_schedule_asking_more_than_the_instrument_is_refused_before_output_on() -> None:
    setup = dummy_channel()
    smu = setup.supervisor.channel
    sched = schedule(CYCLING, limits="{voltage_min: -30 V, voltage_max: 1 V}")
    with pytest.raises(UserError, match="voltage_min_v = -30 exceeds -21"):
        await run(sched, None, setup)
    assert await smu.output_enabled() is False


async def test_pause_resume_and_abort_are_engine_states() -> None:
    log = EventLog()
    setup = dummy_channel()
    sched = schedule(CYCLING)
    ctl = RunController(sched, [setup], None, events=FanOut(log))
    task = asyncio.create_task(ctl.run())
    await log.wait_for(kind="armed")
    ctl.pause()
    await log.wait_for(kind="transition", cause="pause")
    smu = setup.supervisor.channel
    assert await smu.output_enabled() is False  # paused: output off, queried
    ctl.resume()
    await log.wait_for(kind="transition", cause="resume")
    ctl.abort()
    states = await task
    assert states["ch0"] is RunState.ABORTED
    assert await smu.output_enabled() is False
    path = [e.values["to"] for e in log.events if e.kind == "transition"]
    assert path == ["running", "paused", "running", "stopping", "aborted"]
    assert exit_status(states) == 1


def test_transition_table_refuses_illegal_moves() -> None:
    log = EventLog()
    m = StateMachine("ch", VirtualClock(), log, RunState.COMPLETED)
    with pytest.raises(IllegalTransition):
        m.to(RunState.RUNNING, "resume")
    m2 = StateMachine("ch", VirtualClock(), log)
    with pytest.raises(IllegalTransition):
        m2.to(RunState.PAUSED, "pause")  # cannot pause what has not started
    m2.to(RunState.RUNNING, "start")
    assert log.events[-1].values == {"from": "idle", "to": "running"}


async def test_many_channels_run_concurrently(store: Store) -> None:
    setups = [dummy_channel(f"ch{k}", resistance_ohm=10.0 * (k + 1)) for k in range(4)]
    ctl, states = await run(schedule(CYCLING), store, *setups)
    assert all(s is RunState.COMPLETED for s in states.values())
    for k in range(4):
        cycles = store.cycles(ctl.run_id, f"ch{k}")
        assert cycles[0]["mean_voltage_strip_v"] == pytest.approx(0.01 * (k + 1))
    assert store.run(ctl.run_id)["status"] == "completed"  # type: ignore[index]
