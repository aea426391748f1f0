"""Live monitors on sample blocks: CE, depletion, overpotential, pressure and void risk.

Each monitor family works on numpy chunks of a step's samples, emits findings and metric rows,
and never blocks control; :class:`DecisionLayer` turns findings into decisions by the schedule's
``watch:`` rules; :class:`MonitorSuite` is what the engine drives. See docs/monitors.md.
"""

from licycler.monitors.base import Chunk, Finding, MetricLog, Monitor, StepContext
from licycler.monitors.decisions import Decision, DecisionLayer, finding_event
from licycler.monitors.depletion import DepletionMonitor, DerateResult
from licycler.monitors.efficiency import EfficiencyMonitor
from licycler.monitors.overpotential import OverpotentialMonitor
from licycler.monitors.pressure import PressureMonitor
from licycler.monitors.suite import MonitorSuite

__all__ = [
    "Chunk",
    "Decision",
    "DecisionLayer",
    "DepletionMonitor",
    "DerateResult",
    "EfficiencyMonitor",
    "Finding",
    "MetricLog",
    "Monitor",
    "MonitorSuite",
    "OverpotentialMonitor",
    "PressureMonitor",
    "StepContext",
    "finding_event",
]
