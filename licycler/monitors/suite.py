"""The monitors of one channel, as the engine sees them: feed steps, sample blocks and cycles in,
get decisions, metric rows and a JSON state out.

Blocks are gathered and handed to the monitors about every ``watch.period_s`` of run time (and at
each step end), so their cost per sample stays small whatever the instrument's block size; a
step's forecast (depletion, voids) is made at its start, before its current flows.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from licycler.events import Event
from licycler.monitors.base import Chunk, Finding, FloatArray, MetricLog, Monitor, StepContext
from licycler.monitors.decisions import Decision, DecisionLayer, finding_event
from licycler.monitors.depletion import DepletionMonitor
from licycler.monitors.efficiency import EfficiencyMonitor
from licycler.monitors.overpotential import OverpotentialMonitor
from licycler.monitors.pressure import PressureMonitor
from licycler.protocols.schedule import Schedule, Step

__all__ = ["MonitorSuite"]


class MonitorSuite:
    """Every monitor of a channel and the decision layer. ``emit`` receives findings and decisions
    as events; ``state`` (from a checkpoint's Progress) restores a resumed run."""

    def __init__(
        self, schedule: Schedule, channel: str, emit: Callable[[Event], None], state: Mapping[str, Any] | None = None
    ) -> None:
        self.schedule = schedule
        self.watch = schedule.watch
        self.channel = channel
        self.emit = emit
        area = schedule.cell.area_m2
        self.efficiency = EfficiencyMonitor(self.watch, area)
        self.depletion = DepletionMonitor(self.watch, area)
        self.overpotential = OverpotentialMonitor(self.watch, area)
        self.pressure = PressureMonitor(self.watch, area)
        self.monitors: tuple[Monitor, ...] = (self.efficiency, self.depletion, self.overpotential, self.pressure)
        self.layer = DecisionLayer(self.watch, self.depletion, self.pressure)
        self.metrics = MetricLog()
        self.ctx: StepContext | None = None
        self.pending: list[Decision] = []
        self.previous_end = ""
        self.previous_kind = ""
        self._blocks: list[tuple[FloatArray, FloatArray, FloatArray]] = []
        self._buffer_t0 = 0.0
        self._first_chunk = False
        self.phase = 0.0
        """Fraction of ``watch.period_s`` added to the first processing of each step, so that
        channels stepping together (a station on real time) do not all process at one instant."""
        if state:
            self.restore(state)

    # --- the engine's side ---------------------------------------------------------------------
    def start_step(
        self, step: Step, step_seq: int, t0_s: float, cycle: int, pressure_pa: float | None
    ) -> list[Decision]:
        """A step begins at ``t0_s`` (before its setpoint is applied); returns decisions to apply
        now (those queued since, e.g. at a cycle's end, and the step's forecasts)."""
        self.metrics.new_cycle(cycle)
        setpoint = step.current_a if step.kind in ("plate", "strip") else 0.0
        self.ctx = StepContext(self.schedule, step, step_seq, t0_s, cycle, setpoint, self.metrics,
                               time_limit_s=step.until.time_s, pressure_pa=pressure_pa,
                               previous_end=self.previous_end, previous_kind=self.previous_kind)  # fmt: skip
        self._blocks = []
        self._buffer_t0 = t0_s
        self._first_chunk = True
        findings: list[Finding] = []
        for m in self.monitors:
            findings += m.start_step(self.ctx)
        return self._take_pending() + self._decide(findings)

    def add_block(
        self, t: FloatArray, v: FloatArray, i: FloatArray, t_prev_s: float, charge_c: float, elapsed_s: float
    ) -> bool:
        """Keep a block of the running step (``t_prev_s``: the time before its first sample); True
        when enough has gathered for :meth:`process`. Time without readings before the block (a
        suspension, a pause) carried no current: it is kept as one reading of zero current."""
        if self.ctx is None or not len(t):
            return False
        if not self._blocks:
            self._buffer_t0 = t_prev_s
        elif t_prev_s > float(self._blocks[-1][0][-1]) + 1e-9:
            gap = np.array([t_prev_s])
            self._blocks.append((gap, np.array([np.nan]), np.zeros(1)))
        self._blocks.append((t, v, i))
        self.ctx.charge_c = charge_c
        self.ctx.elapsed_s = elapsed_s
        wait = self.watch.period_s * (1.0 + self.phase if self._first_chunk else 1.0)
        return float(t[-1]) - self._buffer_t0 >= wait

    @property
    def pressure_period_s(self) -> float | None:
        """How often (s) the monitors need a stack-pressure reading: the metrics period while the
        pressure moves (or before it is known), None while it holds steady (any pace will do)."""
        return self.watch.every_s if self.pressure.moving else None

    @property
    def has_data(self) -> bool:
        return bool(self._blocks)

    def process(self, pressure_pa: float | None = None) -> list[Decision]:
        """Hand the gathered blocks to the monitors (with a stack-pressure reading, when there is a rig)."""
        ctx = self.ctx
        if ctx is None or not self._blocks:
            return []
        if len(self._blocks) == 1:
            t, v, i = self._blocks[0]
        else:
            t, v, i = (np.concatenate(x) for x in zip(*self._blocks, strict=True))
        chunk = Chunk(t, v, i, self._buffer_t0, pressure_pa, self._first_chunk)
        self._blocks = []
        self._buffer_t0 = float(t[-1])
        self._first_chunk = False
        ctx.pressure_pa = pressure_pa if pressure_pa is not None else ctx.pressure_pa
        findings: list[Finding] = []
        for m in self.monitors:
            findings += m.observe(ctx, chunk)
        return self._decide(findings)

    def end_step(
        self, ended_by: str, charge_c: float, elapsed_s: float, pressure_pa: float | None = None
    ) -> list[Decision]:
        """The step ended (after :meth:`process` of what is left, with the last stack-pressure
        reading when there is a rig); returns decisions."""
        ctx = self.ctx
        if ctx is None:
            return []
        decisions = self.process(pressure_pa)
        ctx.charge_c = charge_c
        ctx.elapsed_s = elapsed_s
        ctx.ended = True
        findings: list[Finding] = []
        for m in self.monitors:
            findings += m.end_step(ctx, ended_by)
        if ctx.step.kind in ("plate", "strip", "hold"):
            self.previous_end, self.previous_kind = ended_by, ctx.step.kind
        return decisions + self._decide(findings)

    def end_cycle(self, row: Mapping[str, Any]) -> None:
        """A cycle closed; its decisions wait for the next :meth:`start_step` (or are moot at the end)."""
        ctx = self.ctx or StepContext(self.schedule, self.schedule.steps[0], 0, 0.0, 0, 0.0, self.metrics)
        cycle = self.metrics.cycle
        self.metrics.cycle = int(row.get("cycle", cycle))
        findings: list[Finding] = []
        for m in self.monitors:
            findings += m.end_cycle(ctx, row)
        self.metrics.cycle = cycle
        self.pending += self._decide(findings)

    def applied_derate(self, decision: Decision) -> None:
        """The engine set a derate's current: the step goes on from here with it."""
        ctx = self.ctx
        if ctx is None or decision.current_a is None:
            return
        ctx.setpoint_a = decision.current_a
        if decision.time_limit_s is not None:
            ctx.time_limit_s = decision.time_limit_s
        self.depletion.after_derate(ctx, decision.time_s)

    def resume_ready(self, decision: Decision, suspended_at_s: float, now_s: float,
                     pressure_pa: float | None) -> tuple[bool, str]:  # fmt: skip
        """Whether a suspension's resume conditions hold now, and what was checked (for the event)."""
        r = decision.resume
        parts = []
        ok = True
        if "resume_above" in r:
            good = pressure_pa is not None and pressure_pa >= r["resume_above"]
            ok &= good
            parts.append(f"pressure {pressure_pa if pressure_pa is not None else math.nan:.4g} Pa")
        if "resume_below" in r:
            index = self.depletion.index_at(now_s)
            ok &= index <= r["resume_below"]
            parts.append(f"depletion index {index:.3g}")
        if "resume_after" in r:
            ok &= now_s - suspended_at_s >= r["resume_after"]
            parts.append(f"{now_s - suspended_at_s:.4g} s suspended")
        return ok, ", ".join(parts)

    def take_metrics(self) -> list[dict[str, Any]]:
        """Metric rows for the next store batch."""
        return self.metrics.take()

    # --- internals -----------------------------------------------------------------------------
    def _take_pending(self) -> list[Decision]:
        out, self.pending = self.pending, []
        return out

    def _decide(self, findings: list[Finding]) -> list[Decision]:
        if not findings:
            return []
        ctx = self.ctx or StepContext(self.schedule, self.schedule.steps[0], 0, 0.0, 0, 0.0, self.metrics)
        out = []
        for f in findings:
            self.emit(finding_event(f, self.channel))
            decision = self.layer.decide(f, ctx)
            self.emit(decision.event(self.channel))
            out.append(decision)
        return out

    # --- checkpoint ----------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """JSON state at a step boundary. ``metric_seq`` numbers the next metric row: a resume
        deletes the rows from it on and the resumed run writes them again."""
        return {
            "monitors": {m.name: m.state() for m in self.monitors},
            "metric_seq": self.metrics.seq,
            "metric_cycle": self.metrics.cycle,
            "previous_end": self.previous_end,
            "previous_kind": self.previous_kind,
        }

    @staticmethod
    def metric_seq(state: Mapping[str, Any]) -> int:
        """The number of the next metric row in a checkpoint's :meth:`state` (0: none, or no monitors)."""
        return int(state.get("metric_seq", 0))

    def restore(self, state: Mapping[str, Any]) -> None:
        for m in self.monitors:
            if m.name in state["monitors"]:
                m.restore(state["monitors"][m.name])
        self.metrics = MetricLog(self.metric_seq(state))
        self.metrics.cycle = int(state["metric_cycle"])
        self.previous_end = str(state["previous_end"])
        self.previous_kind = str(state["previous_kind"])
