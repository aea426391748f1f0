"""What the live view knows about a run: per channel state, step, cycle, readings, CE, monitors, alarms.

:class:`LiveModel` is an :class:`~licycler.events.EventSink` and a
:class:`~licycler.engine.RunObserver`: every callback only stores a few numbers (it returns at once,
as observers must), and :meth:`LiveModel.snapshot` turns them into plain :class:`ChannelView`
records when the view redraws (a few times a second of wall-clock time, never per event).
Monitor values come from events (``finding``/``decision`` values such as ``depletion_index``) or from
an ``on_metrics`` call when the engine offers one; without monitors those fields stay empty.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from licycler.events import Event
from licycler.live.eta import RunEstimate, StepPlan
from licycler.protocols.schedule import Schedule, Step
from licycler.store.sql import SampleRows

__all__ = ["ALARM_KINDS", "MONITOR_KEYS", "Alarm", "ChannelView", "LiveModel", "step_text"]

ALARM_KINDS = ("trip", "estop", "finding", "decision")
"""Event kinds the live view lists as alarms (a ``trip``/``estop`` is red, a finding amber, a
decision other than ``continue`` cyan), with a transition to ``faulted``."""

DEPLETION_KEYS = ("depletion_index",)
PRESSURE_KEYS = ("pressure_pa", "stack_pressure_pa")
MONITOR_KEYS = DEPLETION_KEYS + PRESSURE_KEYS
"""Names (event values or metric names) the view reads the depletion index and the pressure (Pa) from."""

CE_HISTORY = 40
"""CE values kept per channel for the trend."""


@dataclass(frozen=True)
class Alarm:
    """An alarm as shown: run time (s), severity (``alarm``, ``warning``, ``info``), cause and sentence."""

    time_s: float
    severity: str
    cause: str
    message: str


@dataclass
class ChannelView:
    """One channel at one redraw (SI; None where not known yet)."""

    name: str
    state: str = "idle"
    step_number: int = 0
    step_count: int = 0
    step_text: str = ""
    cycle: int = 0
    t_s: float = 0.0
    voltage_v: float | None = None
    current_a: float | None = None
    ce_last: float | None = None
    ce_mean: float | None = None
    ce_history: tuple[float, ...] = ()
    depletion_index: float | None = None
    pressure_pa: float | None = None
    step_fraction: float | None = None
    step_remaining_s: float | None = None
    run_fraction: float | None = None
    run_remaining_s: float | None = None
    sim_rate: float | None = None
    alarms: tuple[Alarm, ...] = ()

    @property
    def eta_step_wall_s(self) -> float | None:
        """Wall-clock seconds until the step ends at the present pace (s)."""
        return _wall(self.step_remaining_s, self.sim_rate)

    @property
    def eta_run_wall_s(self) -> float | None:
        """Wall-clock seconds until the channel's schedule ends at the present pace (s)."""
        return _wall(self.run_remaining_s, self.sim_rate)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready status object (SI, run time in s, ETAs in wall-clock s)."""
        return {
            "channel": self.name, "state": self.state, "step": self.step_number, "steps": self.step_count,
            "step_text": self.step_text, "cycle": self.cycle, "t_s": self.t_s, "voltage_v": self.voltage_v,
            "current_a": self.current_a, "ce_last": self.ce_last, "ce_mean": self.ce_mean,
            "depletion_index": self.depletion_index, "pressure_pa": self.pressure_pa,
            "step_fraction": self.step_fraction, "step_eta_s": self.eta_step_wall_s,
            "run_fraction": self.run_fraction, "run_eta_s": self.eta_run_wall_s,
            "alarm": self.alarms[-1].message if self.alarms else None,
            "alarm_severity": self.alarms[-1].severity if self.alarms else None,
        }  # fmt: skip


def _wall(sim_s: float | None, rate: float | None) -> float | None:
    if sim_s is None:
        return None
    if rate is None or rate <= 0:
        return None
    return sim_s / rate


def step_text(step: Step) -> str:
    """A short description of a step: ``plate 1.13 mA``, ``rest``, ``hold 0.1 V``, ``pressure 1 MPa``."""
    label = f" [{step.label}]" if step.label else ""
    if step.kind in ("plate", "strip"):
        return f"{step.kind} {abs(step.current_a) * 1e3:.3g} mA{label}"
    if step.kind == "hold" and step.voltage_v is not None:
        return f"hold {step.voltage_v:.3g} V{label}"
    if step.kind == "pressure" and step.pressure_pa is not None:
        return f"pressure {step.pressure_pa / 1e6:.3g} MPa{label}"
    return f"{step.kind}{label}"


@dataclass
class _Channel:
    name: str
    state: str = "idle"
    position: int = 0
    cycle: int = 0
    t_s: float = 0.0
    step_start_s: float = 0.0
    step_charge_c: float = 0.0
    voltage_v: float | None = None
    current_a: float | None = None
    ce: deque[float] = field(default_factory=lambda: deque(maxlen=CE_HISTORY))
    ce_sum: float = 0.0
    ce_count: int = 0
    depletion_index: float | None = None
    pressure_pa: float | None = None
    alarms: deque[Alarm] = field(default_factory=lambda: deque(maxlen=8))
    first_seen: tuple[float, float] | None = None  # (run time s, wall time s)
    last_seen: tuple[float, float] | None = None


class LiveModel:
    """Collects a run's live data for the view (see the module docstring).

    ``positions`` (optional) returns each channel's present position in the schedule's flat
    program (the engine's checkpointed ``progress.position``); without it the position follows
    the steps that have ended. ``monitor_values`` (optional) returns the latest monitor values by
    channel and metric name, read at each redraw.
    """

    def __init__(
        self,
        run_id: str,
        schedule: Schedule,
        channels: Sequence[str],
        *,
        positions: Callable[[], Mapping[str, int]] | None = None,
        monitor_values: Callable[[], Mapping[str, Mapping[str, Any]]] | None = None,
        wall_clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.run_id = run_id
        self.schedule = schedule
        self.plan = StepPlan(schedule)
        self.positions = positions
        self.monitor_values = monitor_values
        self.wall_clock = wall_clock
        self.channels: dict[str, _Channel] = {name: _Channel(name) for name in channels}
        self.log: deque[tuple[str, Alarm]] = deque(maxlen=6)
        self.changes = 0
        """Counts every update (a redraw loop can skip redraws when nothing changed)."""

    def _channel(self, name: str | None) -> _Channel | None:
        if name is None:
            return None
        if name not in self.channels:
            self.channels[name] = _Channel(name)
        return self.channels[name]

    # --- EventSink --------------------------------------------------------------------------------
    def emit(self, event: Event) -> None:
        self.changes += 1
        ch = self._channel(event.channel)
        self._monitor_values(ch, event.values)
        if event.kind == "transition" and ch is not None:
            ch.state = str(event.values.get("to", ch.state))
            if ch.state == "faulted":
                self._alarm(ch, Alarm(event.time_s, "alarm", event.cause, event.message))
            return
        if event.kind not in ALARM_KINDS or (event.kind == "decision" and event.cause == "continue"):
            return
        severity = "alarm" if event.kind in ("trip", "estop") else ("warning" if event.kind == "finding" else "info")
        alarm = Alarm(event.time_s, severity, event.cause, event.message)
        if ch is None:
            for each in self.channels.values():
                self._alarm(each, alarm)
        else:
            self._alarm(ch, alarm)

    def _alarm(self, ch: _Channel, alarm: Alarm) -> None:
        if any(a.cause == alarm.cause and a.message == alarm.message for a in list(ch.alarms)[-3:]):
            return
        ch.alarms.append(alarm)
        self.log.append((ch.name, alarm))

    def _monitor_values(self, ch: _Channel | None, values: Mapping[str, Any]) -> None:
        if ch is None:
            return
        for key in DEPLETION_KEYS:
            if _finite(values.get(key)):
                ch.depletion_index = float(values[key])
        for key in PRESSURE_KEYS:
            if _finite(values.get(key)):
                ch.pressure_pa = float(values[key])

    # --- RunObserver ------------------------------------------------------------------------------
    def on_samples(self, run_id: str, channel: str, rows: SampleRows) -> None:
        ch = self._channel(channel)
        if ch is None or not len(rows):
            return
        self.changes += 1
        t = float(rows.t_s[-1])
        ch.t_s = t
        ch.voltage_v = float(rows.voltage_v[-1])
        ch.current_a = float(rows.current_a[-1])
        ch.step_charge_c = float(rows.charge_c[-1])
        ch.cycle = int(rows.cycle[-1])
        if rows.pressure_pa is not None and len(rows.pressure_pa):
            finite = rows.pressure_pa[np.isfinite(rows.pressure_pa)]
            if finite.size:
                ch.pressure_pa = float(finite[-1])
        wall = self.wall_clock()
        if ch.first_seen is None:  # a resumed run joins its step part-way: count from here
            ch.first_seen = (float(rows.t_s[0]), wall)
            ch.step_start_s = max(ch.step_start_s, float(rows.t_s[0]))
        ch.last_seen = (t, wall)

    def on_step(self, run_id: str, channel: str, row: dict[str, Any]) -> None:
        ch = self._channel(channel)
        if ch is None:
            return
        self.changes += 1
        self.plan.learn(int(row["step_index"]), float(row["end_s"]) - float(row["start_s"]))
        ch.step_start_s = float(row["end_s"])
        ch.step_charge_c = 0.0
        ch.position = int(row["step_index"]) + 1

    def on_cycle(self, run_id: str, channel: str, row: dict[str, Any]) -> None:
        ch = self._channel(channel)
        if ch is None:
            return
        self.changes += 1
        ce: Any = row.get("ce")
        if _finite(ce):
            ch.ce.append(float(ce))
            ch.ce_sum += float(ce)
            ch.ce_count += 1

    def on_metrics(self, run_id: str, channel: str, rows: Sequence[Mapping[str, Any]]) -> None:
        """Monitor values as rows of the metrics table (``name``, ``value``), when offered."""
        ch = self._channel(channel)
        if ch is None:
            return
        self.changes += 1
        self._monitor_values(ch, {str(r["name"]): r.get("value") for r in rows})

    # --- the view ---------------------------------------------------------------------------------
    def snapshot(self) -> list[ChannelView]:
        """Every channel as it stands (called by the redraw loop)."""
        positions = dict(self.positions()) if self.positions is not None else {}
        if self.monitor_values is not None:
            for name, values in self.monitor_values().items():
                self._monitor_values(self._channel(name), values)
        out = []
        for name, ch in self.channels.items():
            position = positions.get(name, ch.position)
            out.append(self._view(ch, position))
        return out

    def _view(self, ch: _Channel, position: int) -> ChannelView:
        steps = self.schedule.steps
        running = 0 <= position < len(steps)
        view = ChannelView(ch.name, ch.state, min(position + 1, len(steps)), len(steps),
                           step_text(steps[position]) if running else "", ch.cycle, ch.t_s,
                           ch.voltage_v, ch.current_a)  # fmt: skip
        if ch.ce:
            view.ce_last = ch.ce[-1]
            view.ce_mean = ch.ce_sum / ch.ce_count
            view.ce_history = tuple(ch.ce)
        view.depletion_index = ch.depletion_index
        view.pressure_pa = ch.pressure_pa
        view.alarms = tuple(ch.alarms)
        if ch.first_seen is not None and ch.last_seen is not None:
            dt_wall = ch.last_seen[1] - ch.first_seen[1]
            if dt_wall > 0.2:
                view.sim_rate = max((ch.last_seen[0] - ch.first_seen[0]) / dt_wall, 1e-9)
        if ch.state in ("completed", "aborted", "faulted"):
            view.step_text = ""
            view.run_fraction = 1.0 if ch.state == "completed" else view.run_fraction
            view.run_remaining_s = 0.0
            return view
        if running:
            est: RunEstimate = self.plan.estimate(position, ch.t_s - ch.step_start_s, abs(ch.step_charge_c), ch.t_s)
            view.step_fraction, view.step_remaining_s = est.step_fraction, est.step_remaining_s
            view.run_fraction, view.run_remaining_s = est.run_fraction, est.run_remaining_s
        return view


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
