"""Suspension on a condition: pressure lost -> suspend -> restored and settled -> resume."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from licycler.engine import RunController, RunState
from licycler.engine.sim import twin_setups
from licycler.events import EventLog, FanOut
from licycler.protocols import parse_schedule
from licycler.store import Store
from licycler.yamlsource import load_yaml_text

SCENARIO = """\
name: pressure dip
seed: 3
cell: {kind: li-li, area: 1 cm^2}
rig: {control: constant-pressure, setpoint: 1 MPa}
faults:
  - {at: 2 h, kind: pressure_loss, to: 20 kPa}
  - {at: 4 h, kind: setpoint, pressure: 1 MPa}
measurement: {voltage_noise: 20 uV, pressure_noise: 1 kPa}
"""
SCHEDULE = """\
name: plate through a pressure dip
cell: {chemistry: Li||Li, electrode_area: 1 cm^2}
limits: {voltage_min: -1 V, voltage_max: 1 V}
record: {every: 10 s}
suspend:
  pressure: {below: 500 kPa, resume_above: 800 kPa, settle: 10 min}
steps:
  - plate: {current: 0.5 mA/cm^2, until: {time: 6 h}}
"""


async def test_suspend_and_resume_on_pressure(tmp_path: Path) -> None:
    scenario = tmp_path / "dip.yaml"
    scenario.write_text(SCENARIO)
    sched = parse_schedule(load_yaml_text(SCHEDULE, "s.yaml"), SCHEDULE, "s.yaml")
    setups, _ = twin_setups(sched, scenario)
    log = EventLog()
    store = Store(f"sqlite:///{tmp_path / 'run.db'}")
    ctl = RunController(sched, setups, store, events=FanOut(log))
    states = await ctl.run()
    assert states["ch1"] is RunState.COMPLETED
    moves = [(e.time_s, e.values["to"]) for e in log.events if e.kind == "transition"]
    kinds = [m[1] for m in moves]
    assert kinds == ["running", "suspended", "running", "completed"]
    t_suspend, t_resume = moves[1][0], moves[2][0]
    assert t_suspend == pytest.approx(2 * 3600, abs=60)  # the pressure fell at 2 h
    assert t_resume >= 4 * 3600 + 600  # restored at 4 h, then settled for 10 min
    samples = store.samples(ctl.run_id, "ch1")
    suspended = (samples.t_s > t_suspend + 1) & (samples.t_s < t_resume - 1)
    assert not suspended.any()  # no current (and no readings) while suspended
    step = store.steps(ctl.run_id, "ch1")[0]
    # six hours of current in all: the time suspended does not count
    assert abs(step["charge_c"]) == pytest.approx(0.5e-3 * 6 * 3600, rel=1e-3)
    assert step["end_s"] == pytest.approx(6 * 3600 + (t_resume - t_suspend), abs=20)
    assert np.all(samples.current_a < 0)
    # the stack pressure read with each block is recorded with its samples
    assert samples.pressure_pa is not None
    before = samples.t_s < t_suspend
    assert np.allclose(samples.pressure_pa[before], 1e6, rtol=0.02)
