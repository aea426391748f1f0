"""Hardware-free channels: a simulated cell behind an in-process SMU on its own virtual clock.

Each channel keeps its own :class:`~licycler.clock.VirtualClock` (cells are independent, so each
runs as fast as the machine allows) and goes through the same safety supervisor as a real one.
Checkpoints carry the pickled cell and SMU, so :func:`restore_sim_channel` continues exactly.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable

from licycler.clock import VirtualClock
from licycler.engine.run import ChannelSetup
from licycler.engine.runner import Progress, pickle_snapshot
from licycler.events import FanOut
from licycler.safety.limits import Limits, LimitStack
from licycler.safety.supervisor import ChannelSupervisor
from licycler.sim_instruments.inprocess import InProcessSMU
from licycler.sim_instruments.interfaces import CellTerminals

__all__ = ["SIM_INSTRUMENT_LIMITS", "CellFactory", "restore_sim_channel", "sim_channel"]

SIM_INSTRUMENT_LIMITS = Limits(voltage_min_v=-21.0, voltage_max_v=21.0, current_max_a=1.05)
"""What the in-process SMU can do (the ranges of a 2450-class SMU)."""

CellFactory = Callable[[str, int], CellTerminals]
"""Makes the simulated cell of a channel from its name and seed."""


def _setup(name: str, cell: CellTerminals, smu: InProcessSMU, clock: VirtualClock, seed: int | None,
           progress: Progress | None, stuck_count: int) -> ChannelSetup:  # fmt: skip
    limits = LimitStack()
    limits.push("instrument", SIM_INSTRUMENT_LIMITS)
    rig = getattr(cell, "rig_driver", None)
    supervisor = ChannelSupervisor(
        name, smu, clock=clock, events=FanOut(), limits=limits, rig=rig, read_period_s=smu.sample_period_s,
        stuck_count=stuck_count,
    )  # fmt: skip
    return ChannelSetup(name, supervisor, clock, pickle_snapshot(cell, smu), progress, "in-process SMU", seed)


def sim_channel(
    name: str, cell: CellTerminals, *, seed: int | None = None, sample_period_s: float = 1.0, stuck_count: int = 20
) -> ChannelSetup:
    """A new hardware-free channel around ``cell``, sampled every ``sample_period_s`` (s)."""
    clock = VirtualClock()
    smu = InProcessSMU(cell, clock, name=name, sample_period_s=sample_period_s)
    return _setup(name, cell, smu, clock, seed, None, stuck_count)


def restore_sim_channel(
    name: str, snapshot: bytes, progress: Progress, *, seed: int | None = None, stuck_count: int = 20
) -> ChannelSetup:
    """The channel as its checkpoint left it: the cell and SMU unpickled, the clock where the SMU was."""
    cell, smu = pickle.loads(snapshot)
    clock = VirtualClock(smu.now())
    smu.clock = clock
    return _setup(name, cell, smu, clock, seed, progress, stuck_count)
