"""From findings to actions: each finding is looked up in the schedule's ``watch:`` rules (with
defaults) and becomes a :class:`Decision` - continue, derate, suspend (with resume conditions) or
abort - carrying the numbers that caused it. The engine applies it; this module never acts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from licycler.events import Event
from licycler.monitors.base import Finding, StepContext, Value
from licycler.monitors.depletion import DepletionMonitor
from licycler.monitors.pressure import PressureMonitor
from licycler.protocols.schedule import Watch

__all__ = ["Decision", "DecisionLayer", "finding_event"]

DEFAULT_SETTLE_S = 60.0
DEFAULT_RESUME_AFTER_S = 600.0


@dataclass(frozen=True)
class Decision:
    """What to do about ``finding``: ``action`` (continue, derate, suspend, abort).

    ``current_a`` and ``time_limit_s`` are a derate's new setpoint (A) and the step's new time
    limit (s from the step start, None: unchanged); ``resume`` holds a suspension's conditions
    (``resume_above`` Pa, ``resume_below`` depletion index, ``resume_after`` s, ``settle`` s).
    """

    action: str
    finding: Finding
    time_s: float
    message: str
    values: Mapping[str, Value] = field(default_factory=dict)
    current_a: float | None = None
    time_limit_s: float | None = None
    resume: Mapping[str, float] = field(default_factory=dict)

    def event(self, channel: str) -> Event:
        return Event(self.time_s, f"monitor:{self.finding.monitor}", "decision", self.action, self.message, channel,
                     {"finding": self.finding.cause, "sign": self.finding.sign, **self.values})  # fmt: skip


def finding_event(finding: Finding, channel: str) -> Event:
    """The event of a finding (kind ``finding``, cause its name, values its numbers)."""
    return Event(finding.time_s, f"monitor:{finding.monitor}", "finding", finding.cause, finding.message, channel,
                 {"sign": finding.sign, "lead_s": finding.lead_s, **finding.values})  # fmt: skip


class DecisionLayer:
    """Maps findings to decisions by the schedule's rules."""

    def __init__(self, watch: Watch, depletion: DepletionMonitor, pressure: PressureMonitor) -> None:
        self.watch = watch
        self.depletion = depletion
        self.pressure = pressure

    def decide(self, finding: Finding, ctx: StepContext) -> Decision:
        rule = self.watch.rule(finding.cause)
        action = rule.action
        t = finding.time_s
        base = {"rule_action": action}
        if action == "derate":
            if not ctx.sourcing or ctx.ended:
                return Decision("continue", finding, t, f"{finding.cause}: no current left to derate in this step",
                                base)  # fmt: skip
            res = self.depletion.derate(ctx, t)
            if res is None:
                return Decision("abort", finding, t,
                                f"{finding.cause}: even {rule['min_fraction']:.3g} of the current would deplete the "
                                f"surface before the step ends; aborting",
                                {**base, "min_fraction": rule["min_fraction"],
                                 "current_a": ctx.setpoint_a})  # fmt: skip
            old = ctx.setpoint_a
            values: dict[str, Value] = {
                **base, "old_current_a": old, "new_current_a": res.current_a, "fraction": res.fraction,
                "forecast_index_max": res.index_max, "threshold": rule["threshold"],
                "old_time_limit_s": ctx.time_limit_s, "new_time_limit_s": res.time_limit_s,
            }  # fmt: skip
            return Decision("derate", finding, t,
                            f"derate step {ctx.step.index} from {abs(old) * 1e3:.4g} mA to "
                            f"{abs(res.current_a) * 1e3:.4g} mA ({res.fraction:.3g}) to keep the depletion index "
                            f"below {rule['threshold']:g}"
                            + ("" if res.time_limit_s is None else f"; time limit now {res.time_limit_s:.5g} s"),
                            values, current_a=res.current_a, time_limit_s=res.time_limit_s)  # fmt: skip
        if action == "suspend":
            resume = self._resume(finding.cause, rule.params)
            words = ", ".join(f"{k} {v:.4g}" for k, v in resume.items())
            return Decision("suspend", finding, t, f"suspend on {finding.cause} until {words}",
                            {**base, **resume}, resume=resume)  # fmt: skip
        if action == "abort":
            return Decision("abort", finding, t, f"abort on {finding.cause}: {finding.message}", base)
        return Decision("continue", finding, t, f"continue after {finding.cause}", base)

    def _resume(self, cause: str, params: Mapping[str, float]) -> dict[str, float]:
        out = {k: params[k] for k in ("resume_above", "resume_below", "resume_after") if k in params}
        if not out:
            if cause == "pressure_loss" and (p := self.pressure.resume_pressure()) is not None:
                out["resume_above"] = p
            elif cause == "depletion":
                out["resume_below"] = 0.5 * self.depletion.threshold
            else:
                out["resume_after"] = DEFAULT_RESUME_AFTER_S
        out["settle"] = params.get("settle", DEFAULT_SETTLE_S if "resume_above" in out else 0.0)
        return out
