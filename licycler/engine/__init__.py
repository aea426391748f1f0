"""The async protocol engine: executes schedules as data, with an explicit state machine."""

from licycler.engine.accounting import CycleAccounting, CycleTotals, RecordFilter
from licycler.engine.run import ChannelSetup, RunController, exit_status
from licycler.engine.runner import (
    ChannelRunner,
    Progress,
    RunObserver,
    SegmentChannel,
    StepEnd,
    VoltageSource,
    pickle_snapshot,
)
from licycler.engine.states import TERMINAL, TRANSITIONS, IllegalTransition, RunState, StateMachine

__all__ = [
    "TERMINAL",
    "TRANSITIONS",
    "ChannelRunner",
    "ChannelSetup",
    "CycleAccounting",
    "CycleTotals",
    "IllegalTransition",
    "Progress",
    "RecordFilter",
    "RunController",
    "RunObserver",
    "RunState",
    "SegmentChannel",
    "StateMachine",
    "StepEnd",
    "VoltageSource",
    "exit_status",
    "pickle_snapshot",
]
