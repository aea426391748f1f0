"""The live terminal view of a run: per channel state, step, cycle, V and I, CE trend, monitors, alarms.

``attach_live(controller, "live" | "json")`` before ``controller.run()`` and ``await
close_live(controller)`` after it; ``licycler run`` does this through :func:`live_hook`.
"""

from licycler.live.eta import RunEstimate, StepPlan, expected_duration_s
from licycler.live.model import ALARM_KINDS, Alarm, ChannelView, LiveModel, step_text
from licycler.live.render import format_current, format_duration, render_run, sparkline
from licycler.live.session import LiveSession, attach_live, close_live, live_hook, live_mode, live_options

__all__ = [
    "ALARM_KINDS",
    "Alarm",
    "ChannelView",
    "LiveModel",
    "LiveSession",
    "RunEstimate",
    "StepPlan",
    "attach_live",
    "close_live",
    "expected_duration_s",
    "format_current",
    "format_duration",
    "live_hook",
    "live_mode",
    "live_options",
    "render_run",
    "sparkline",
    "step_text",
]
