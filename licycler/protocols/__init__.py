"""Schedules: the format, its validation, and a library of standard lithium-metal protocols."""

from licycler.protocols.library import list_protocols, load_protocol, protocol_path
from licycler.protocols.parse import MAX_STEPS, load_schedule, parse_schedule
from licycler.protocols.schedule import Action, Cell, RecordSpec, Schedule, Step, SuspendRule, Until

__all__ = [
    "MAX_STEPS",
    "Action",
    "Cell",
    "RecordSpec",
    "Schedule",
    "Step",
    "SuspendRule",
    "Until",
    "list_protocols",
    "load_protocol",
    "load_schedule",
    "parse_schedule",
    "protocol_path",
]
