"""Hardware-free channels: a simulated cell behind an in-process SMU on its own virtual clock.

Each channel keeps its own :class:`~licycler.clock.VirtualClock` (cells are independent, so each
runs as fast as the machine allows) and goes through the same safety supervisor as a real one.
Checkpoints carry the pickled cell, SMU and rig, so :func:`restore_sim_channel` continues exactly.
"""

from __future__ import annotations

import dataclasses
import pickle
from pathlib import Path

from licycler.clock import VirtualClock
from licycler.engine.run import ChannelSetup
from licycler.engine.runner import Progress, pickle_snapshot
from licycler.errors import UserError
from licycler.events import FanOut
from licycler.protocols.schedule import Schedule
from licycler.safety.limits import Limits, LimitStack
from licycler.safety.supervisor import ChannelSupervisor
from licycler.sim_instruments.inprocess import InProcessRig, InProcessSMU
from licycler.sim_instruments.interfaces import CellTerminals
from licycler.sim_instruments.scenario import load_scenario, scenario_path
from licycler.sim_instruments.twin import Twin, TwinConfig

__all__ = ["SIM_INSTRUMENT_LIMITS", "restore_sim_channel", "sim_channel", "twin_setups"]

SIM_INSTRUMENT_LIMITS = Limits(voltage_min_v=-21.0, voltage_max_v=21.0, current_max_a=1.05)
"""What the in-process SMU can do (the ranges of a 2450-class SMU)."""

CHEMISTRY_KINDS = {"Li||Li": "li-li", "Li||Cu": "li-cu"}


def _setup(name: str, cell: CellTerminals, smu: InProcessSMU, rig: InProcessRig | None, seed: int | None,
           progress: Progress | None, stuck_count: int) -> ChannelSetup:  # fmt: skip
    clock = smu.clock
    assert isinstance(clock, VirtualClock)
    limits = LimitStack()
    limits.push("instrument", SIM_INSTRUMENT_LIMITS)
    supervisor = ChannelSupervisor(
        name, smu, clock=clock, events=FanOut(), limits=limits, rig=rig, read_period_s=smu.sample_period_s,
        stuck_count=stuck_count,
    )  # fmt: skip
    return ChannelSetup(name, supervisor, clock, pickle_snapshot(cell, smu, rig), progress, "in-process SMU", seed)


def sim_channel(
    name: str,
    cell: CellTerminals,
    *,
    rig: InProcessRig | None = None,
    seed: int | None = None,
    sample_period_s: float = 1.0,
    stuck_count: int = 20,
    clock: VirtualClock | None = None,
) -> ChannelSetup:
    """A new hardware-free channel around ``cell``, sampled every ``sample_period_s`` (s)."""
    clock = clock or VirtualClock()
    smu = InProcessSMU(cell, clock, name=name, sample_period_s=sample_period_s)
    if rig is not None:
        rig.clock = clock
    return _setup(name, cell, smu, rig, seed, None, stuck_count)


def restore_sim_channel(
    name: str, snapshot: bytes, progress: Progress, *, seed: int | None = None, stuck_count: int = 20
) -> ChannelSetup:
    """The channel as its checkpoint left it: cell, SMU and rig unpickled, the clock where the SMU was."""
    cell, smu, rig = pickle.loads(snapshot)
    clock = VirtualClock(smu.now())
    smu.clock = clock
    if rig is not None:
        rig.clock = clock
    return _setup(name, cell, smu, rig, seed, progress, stuck_count)


def twin_config(schedule: Schedule, scenario: str | Path | None) -> tuple[TwinConfig, str]:
    """The scenario's twin configuration, with the schedule's electrode area (the schedule describes
    the cell being cycled); a scenario of another chemistry is refused. Returns (config, scenario text)."""
    kind = CHEMISTRY_KINDS[schedule.cell.chemistry]
    if scenario is None:
        scenario = "default" if kind == "li-li" else "li-cu"
    path = scenario_path(scenario)
    config = load_scenario(path)
    if config.cell.kind != kind:
        raise UserError(
            f"{path}: the scenario simulates a {config.cell.kind} cell but {schedule.source} is written for "
            f"{schedule.cell.chemistry}"
        )
    cell = dataclasses.replace(config.cell, area_m2=schedule.cell.area_m2)
    return dataclasses.replace(config, cell=cell), path.read_text(encoding="utf-8")


def twin_setups(
    schedule: Schedule,
    scenario: str | Path | None = None,
    *,
    channels: int = 1,
    seed: int | None = None,
    sample_period_s: float = 1.0,
) -> tuple[list[ChannelSetup], str]:
    """Hardware-free channels ``ch1``..``chN`` on digital twins of ``scenario`` (seeds ``seed``,
    ``seed + 1`` ...; default the scenario's). Returns the setups and the scenario's text."""
    config, text = twin_config(schedule, scenario)
    base = config.seed if seed is None else seed
    setups = []
    for k in range(channels):
        twin = Twin(dataclasses.replace(config, seed=base + k))
        clock = VirtualClock()
        rig = InProcessRig(twin.rig, clock, name=f"ch{k + 1} rig")
        setups.append(
            sim_channel(f"ch{k + 1}", twin.cell, rig=rig, seed=base + k, sample_period_s=sample_period_s, clock=clock)
        )
    return setups, text
