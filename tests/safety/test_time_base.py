"""A run's time is the controller's clock, whatever the instrument's own timer says: an instrument that
has been on for hours and still holds readings of an earlier session starts a run without a stale
sample, and a step of one minute lasts one minute."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from licycler.engine import ChannelSetup, RunController, RunState
from licycler.events import FanOut
from licycler.protocols import parse_schedule
from licycler.store import Store
from licycler.yamlsource import load_yaml_text

from .conftest import Rig

SCHEDULE = """\
name: one minute each
cell: {chemistry: Li||Li, electrode_area: 1 cm^2}
limits: {voltage_min: -1 V, voltage_max: 1 V}
record: {every: 1 s}
steps:
  - plate: {current: 1 mA/cm^2, until: {time: 1 min}}
  - rest: 1 min
"""


async def test_a_used_instrument_starts_a_run_on_the_clock(rig: Rig, tmp_path: Path) -> None:
    # an earlier session: the instrument has been on for an hour and took 50 readings, one per second
    rig.clock.advance_by(3600.0)
    for _ in range(50):
        await rig.emulation.execute_line(':READ? "defbuffer1"')
        rig.clock.advance_by(1.0)
    rig.clock.advance_by(600.0)  # then ten minutes idle before this run
    start = rig.clock.now()
    schedule = parse_schedule(load_yaml_text(SCHEDULE, "s.yaml"), SCHEDULE, "s.yaml")
    store = Store(f"sqlite:///{tmp_path / 'run.db'}")
    controller = RunController(schedule, [ChannelSetup("A1", rig.supervisor, rig.clock)], store, mode="station",
                               events=FanOut(rig.log))  # fmt: skip
    states = await controller.run()
    assert states["A1"] is RunState.COMPLETED
    samples = store.samples(controller.run_id, "A1")
    steps = store.steps(controller.run_id, "A1")
    assert samples.t_s.min() >= start  # nothing of the earlier session
    assert samples.t_s.max() <= rig.clock.now() + 1e-9
    assert np.all(np.diff(samples.t_s) > 0)
    plate = steps[0]
    assert plate["start_s"] == pytest.approx(start, abs=1.0)
    assert plate["end_s"] - plate["start_s"] == pytest.approx(60.0, abs=1.01)
    assert steps[1]["end_s"] - steps[1]["start_s"] == pytest.approx(60.0, abs=1.01)
    # the plate step passed 1 mA for its minute, not for the earlier session's readings too
    assert abs(plate["charge_c"]) == pytest.approx(1e-3 * 60.0, rel=0.03)
    store.close()
