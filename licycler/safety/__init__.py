"""The safety supervisor that every setpoint and every sample block passes through.

It imports nothing of the engine: the engine calls it, never the other way round.
"""

from licycler.safety.checks import OVERRANGE, BlockChecker, Violation
from licycler.safety.limits import Limits, LimitsRefused, LimitStack, SetpointRefused
from licycler.safety.station import StationSafety
from licycler.safety.supervisor import ChannelSupervisor, InterlockError, PressureInterlock, SafetyTripped

__all__ = [
    "OVERRANGE",
    "BlockChecker",
    "ChannelSupervisor",
    "InterlockError",
    "LimitStack",
    "Limits",
    "LimitsRefused",
    "PressureInterlock",
    "SafetyTripped",
    "SetpointRefused",
    "StationSafety",
    "Violation",
]
