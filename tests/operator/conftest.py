"""A short known hardware-free run, recorded once per session, that the report and CLI tests read.

Two anode-free Li||Cu channels on the digital twin (``li-cu`` scenario): ``ch1`` cycles three times;
``ch2`` has a station limit of 0.05 mAh/cm^2 of charge per step, so the supervisor trips it during
its first plating. :data:`METRICS` are known monitor rows (as the ``metrics`` table holds them) that
tests put in place of what the monitors recorded, to check the monitor panels against known values.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from licycler.clock import VirtualClock
from licycler.engine import RunController, RunState
from licycler.engine.sim import sim_channel, twin_config
from licycler.protocols import parse_schedule
from licycler.protocols.schedule import Schedule
from licycler.report import RunData
from licycler.safety import Limits
from licycler.sim_instruments.inprocess import InProcessRig
from licycler.sim_instruments.twin import Twin
from licycler.store import Store

PYTHON = [sys.executable, "-m", "licycler"]

AREA_CM2 = 1.13
SCHEDULE = f"""
schedule: 1
name: test Li||Cu
cell: {{chemistry: Li||Cu, electrode_area: {AREA_CM2} cm^2}}
limits: {{voltage_min: -1 V, voltage_max: 3.5 V, current_density_max: 5 mA/cm^2}}
record: {{every: 10 s, dv: 5 mV}}
steps:
  - rest: 10 min
  - repeat:
      count: 3
      steps:
        - plate: {{current: 2 mA/cm^2, until: {{capacity: 0.2 mAh/cm^2}}}}
        - strip: {{current: 2 mA/cm^2, until: {{voltage_above: 1.0 V, time: 1 h}}}}
"""

# known monitor values for ch1: (time s, cycle, name, value SI)
METRICS = [
    (700.0, 1, "depletion_index", 0.12), (900.0, 1, "depletion_index", 0.35), (1500.0, 2, "depletion_index", 0.5),
    (650.0, 1, "nucleation_overpotential_v", -0.061), (1300.0, 2, "nucleation_overpotential_v", -0.052),
    (800.0, 1, "plateau_overpotential_plate_v", -0.021), (1400.0, 2, "plateau_overpotential_plate_v", -0.022),
    (600.0, 0, "pressure_pa", 1.0e6), (1200.0, 1, "pressure_pa", 0.95e6), (1800.0, 2, "pressure_pa", 0.9e6),
]  # fmt: skip


@dataclasses.dataclass(frozen=True)
class KnownRun:
    url: str
    run_id: str
    schedule: Schedule
    states: dict[str, RunState]
    folder: Path

    @property
    def store(self) -> Store:
        return Store(self.url, create=False)


@pytest.fixture(scope="session")
def known_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KnownRun]:
    folder = tmp_path_factory.mktemp("known-run")
    url = f"sqlite:///{folder / 'known.db'}"
    store = Store(url)
    schedule = parse_schedule(SCHEDULE, source="test-li-cu.yaml")
    setups = []
    for k, name in enumerate(("ch1", "ch2")):
        config, _ = twin_config(schedule, "li-cu")
        twin = Twin(dataclasses.replace(config, seed=k))
        setup = sim_channel(name, twin.cell, rig=InProcessRig(twin.rig, VirtualClock(), name=f"{name} rig"), seed=k)
        if name == "ch2":
            setup.supervisor.limits.push("station", Limits(charge_per_step_max_c=0.05 * 3.6 * AREA_CM2))
        setups.append(setup)
    controller = RunController(schedule, setups, store, mode="sim", scenario_text="li-cu")
    states = asyncio.run(controller.run())
    yield KnownRun(url, controller.run_id, schedule, states, folder)
    store.close()


def with_known_metrics(data: RunData) -> RunData:
    """``data`` with :data:`METRICS` as ch1's monitor rows and none on the other channels."""
    for ch in data.channels:
        ch.metrics = {}
    for k, (t, c, n, v) in enumerate(METRICS):
        data.channels[0].metrics.setdefault(n, []).append({"seq": k, "time_s": t, "cycle": c, "name": n, "value": v})
    return data
