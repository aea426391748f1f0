"""Execute a schedule on one channel: steps, terminations, operator commands, suspension, checkpoints.

The runner is the only place where a schedule meets an instrument, and every setpoint and every
sample block it handles goes through the channel's :class:`~licycler.safety.ChannelSupervisor`.
Data flows one way: supervisor -> runner (terminations, accounting, recording) -> store and
telemetry sinks, which never block it. A checkpoint is written at every step boundary in the same
transaction as the data before it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math
import pickle
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, fields
from typing import Any, Protocol, runtime_checkable

import numpy as np

from licycler.clock import Clock, VirtualClock
from licycler.drivers.errors import NotSupported
from licycler.drivers.interfaces import SampleBlock, SourceMeasureChannel
from licycler.engine.accounting import CycleAccounting, RecordFilter, interval_products
from licycler.engine.states import RunState, StateMachine
from licycler.events import Event, EventSink, FanOut
from licycler.monitors import Decision, MonitorSuite
from licycler.protocols.schedule import Schedule, Step
from licycler.safety.checks import Violation
from licycler.safety.supervisor import ChannelSupervisor, SafetyTripped
from licycler.store.sql import BatchWriter, SampleRows, WriteBatch

__all__ = [
    "ChannelRunner",
    "Progress",
    "ReadSchedule",
    "RunObserver",
    "SegmentChannel",
    "StepEnd",
    "VoltageSource",
    "pickle_snapshot",
]

CAPACITY_TOLERANCE = 1e-6
"""A capacity termination fires within 1 ppm of the target (so reading noise costs no extra sample)."""

PRESSURE_PERIOD_S = 10.0
"""Longest a segment runs before the stack pressure is read again (s), when the pressure matters:
a rig with a pressure window in the limits or a suspension rule in the schedule."""

STORE_LAG_BATCHES = 32
"""How far the store may fall behind a hardware-free run before the run waits for it."""

SIM_CHECKPOINT_PERIOD_S = 0.1
"""A hardware-free run checkpoints at the first step boundary after this much wall time (s): a
crash costs at most that much work again, and a checkpoint (the cell's pickled state, about 0.5 ms)
is not paid for at every step of a run that goes through hundreds a second."""

FLUSH_ROWS = 20_000
"""Samples kept in memory before a batch goes to the store (also flushed at every step end)."""

FLUSH_PERIOD_S = 5.0
"""On real time, the longest the recorded samples wait in memory before a batch goes to the store (s):
what a dead controller can lose of its own, and the instrument's lease buffer still holds."""


@runtime_checkable
class SegmentChannel(Protocol):
    """An instrument that runs a segment on its own and stops at a voltage bound (cycler firmware,
    the in-process SMU). The runner uses it when available; otherwise it reads blocks on a period."""

    sample_period_s: float

    async def run_segment(
        self, n_samples: int, *, stop_above_v: float | None = None, stop_below_v: float | None = None
    ) -> SampleBlock: ...


@runtime_checkable
class RunObserver(Protocol):
    """Something that watches a run live (telemetry, the live view). Every method must return at
    once (queue, never wait): observers never delay control. Events arrive through ``EventSink``."""

    def on_samples(self, run_id: str, channel: str, rows: SampleRows) -> None:
        """Samples just recorded (SI columns, see :class:`~licycler.store.sql.SampleRows`)."""

    def on_cycle(self, run_id: str, channel: str, row: dict[str, Any]) -> None:
        """A cycle just closed (a row of the cycles table: charges, energies, CE, mean voltages)."""

    def on_step(self, run_id: str, channel: str, row: dict[str, Any]) -> None:
        """A step just ended (a row of the steps table)."""

    # An observer may also define ``on_metrics(run_id, channel, rows)``: monitor values just
    # computed (rows of the metrics table: seq, time_s, cycle, name, value). It is called when present.


@runtime_checkable
class VoltageSource(Protocol):
    """An instrument that can source a voltage (for ``hold`` steps)."""

    async def set_voltage(self, voltage_v: float) -> None: ...


@dataclass
class Progress:
    """Where a channel's run stands: what a checkpoint stores (JSON) and a resume restores."""

    position: int = 0
    step_seq: int = 0
    sample_seq: int = 0
    event_seq: int = 0
    t_s: float = 0.0
    run_charge_c: float = 0.0
    last_step_charge_c: float = 0.0
    jumps: dict[str, int] = field(default_factory=dict)
    accounting: dict[str, Any] = field(default_factory=lambda: CycleAccounting().state())
    finished: bool = False
    monitors: dict[str, Any] = field(default_factory=dict)
    station: dict[str, Any] = field(default_factory=dict)
    """On a station: the instrument's identity and how its readings map onto the run's clock
    (see :meth:`ChannelSupervisor.resume_state`), for a resume by another controller."""

    def to_json(self) -> dict[str, Any]:
        """The fields as a dict for ``json.dumps`` at once (shallow: nested values are shared)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class StepEnd:
    """How a step ended: the termination name (``time``, ``capacity``, ``voltage_above`` ...) or
    ``aborted``, and at what time (s)."""

    by: str
    t_s: float


class ReadSchedule:
    """Reads at a fixed rate (k x period from the first), not "period after the last read", so the
    rate does not drift; keeps how late each read started and how many were missed (s). Channels of
    one station get different phases so that their reads do not all fall due at the same instant."""

    def __init__(self, period_s: float, keep: int = 100_000, phase_s: float = 0.0) -> None:
        self.period_s = period_s
        self.phase_s = phase_s
        self.missed = 0
        self.count = 0
        self._due: float | None = None
        self._lateness = np.zeros(keep)

    def next_due(self, now: float) -> float:
        if self._due is None:
            self._due = now + self.phase_s
        else:
            self._due += self.period_s
            if now > self._due + self.period_s:  # a whole period passed: those reads are lost
                skipped = int((now - self._due) // self.period_s)
                self.missed += skipped
                self._due += skipped * self.period_s
        return self._due

    def started(self, now: float) -> None:
        assert self._due is not None
        self._lateness[self.count % len(self._lateness)] = max(0.0, now - self._due)
        self.count += 1

    def lateness_s(self) -> np.ndarray:
        """How late the kept reads started (s)."""
        return self._lateness[: min(self.count, len(self._lateness))].copy()


class _EventBuffer:
    """Numbers this channel's events and keeps them for the next store batch."""

    def __init__(self, channel: str, progress: Progress) -> None:
        self.channel = channel
        self.progress = progress
        self.pending: list[tuple[int, Event]] = []

    def emit(self, event: Event) -> None:
        if event.channel not in (None, self.channel):
            return
        self.pending.append((self.progress.event_seq, event))
        self.progress.event_seq += 1


class ChannelRunner:
    """Runs ``schedule`` on one channel through its supervisor.

    ``snapshot`` (hardware-free runs) returns the simulated cell's state as bytes for checkpoints.
    ``read_period_s`` is the read period for instruments without segments; ``throttle_store``
    (hardware-free runs) lets the run wait for a store that falls behind.
    """

    def __init__(
        self,
        name: str,
        schedule: Schedule,
        supervisor: ChannelSupervisor,
        *,
        clock: Clock,
        run_id: str,
        writer: BatchWriter | None,
        events: FanOut,
        progress: Progress | None = None,
        snapshot: Callable[[], bytes] | None = None,
        read_period_s: float = 1.0,
        max_segment: int = 1000,
        throttle_store: bool = False,
        read_phase_s: float = 0.0,
        replay: list[tuple[SampleBlock, bool]] | None = None,
        resumed: list[Event] | None = None,
    ) -> None:
        self.name = name
        self.schedule = schedule
        self.supervisor = supervisor
        self.channel: SourceMeasureChannel = supervisor.channel
        self._segment_period_s: float | None = (  # a segment-running instrument's sample period (s)
            self.channel.sample_period_s if isinstance(self.channel, SegmentChannel) else None
        )  # (decided once: a protocol check costs some 40 us)
        self.clock = clock
        self.run_id = run_id
        self.writer = writer
        self.progress = progress or Progress()
        self.snapshot = snapshot
        self.read_period_s = read_period_s
        self.max_segment = max_segment
        self.throttle_store = throttle_store
        self.buffer = _EventBuffer(name, self.progress)
        events.add(self.buffer)
        self.events: EventSink = events
        self.machine = StateMachine(name, clock, events)
        self.accounting = CycleAccounting.from_state(self.progress.accounting)
        rec = schedule.record
        self.recorder = RecordFilter(rec.every_s, rec.dv_v, rec.dq_c)
        self._samples: list[SampleRows] = []
        self._pending_rows = 0
        self._steps: list[dict[str, Any]] = []
        self._cycles: list[dict[str, Any]] = []
        self._command: str | None = None
        self._wake = asyncio.Event()
        self.last_block: SampleBlock | None = None
        self.failure: str | None = None
        self.observers: list[RunObserver] = []
        self._reach_cache: tuple[object, bool] = (None, False)
        self.reads = ReadSchedule(read_period_s, phase_s=read_phase_s)
        self._replay = list(replay or [])
        """Blocks the interrupted step already had, fed before the instrument is read: (block, whether
        to record it) -- stored samples are not recorded again, the instrument's read-back ones are."""
        self._replay_record = True
        self._gap_from: float | None = self.progress.t_s if replay is not None else None
        """A station resume: the clock time of the last reading known before the controller was away."""
        self._resumed = list(resumed or [])
        self._skip_checkpoint = replay is not None
        self._last_flush = clock.now()
        self._checkpoint_wall_s = -math.inf
        self.sim_checkpoint_period_s = SIM_CHECKPOINT_PERIOD_S
        self.record_samples = True
        """False: the run's steps, cycles, events and metrics are stored, its samples not (a sweep)."""
        """See :data:`SIM_CHECKPOINT_PERIOD_S` (0: a checkpoint at every step boundary)."""
        self._step: Step | None = None
        self._t0 = 0.0
        self.supervisor.lease_horizon = self._step_horizon
        self.monitors: MonitorSuite | None = (
            MonitorSuite(schedule, name, self.events.emit, self.progress.monitors) if schedule.watch.enabled else None
        )
        if self.monitors is not None and not isinstance(self.channel, SegmentChannel) and read_period_s > 0:
            # on real time, channels that step together process their data at staggered moments
            self.monitors.phase = (read_phase_s / read_period_s) % 1.0

    # --- operator commands (states of the engine, not flags in steps) ---------------------------
    def pause(self) -> None:
        self._command = "pause"
        self._wake.set()

    def resume(self) -> None:
        self._command = "resume"
        self._wake.set()

    def abort(self) -> None:
        self._command = "abort"
        self._wake.set()

    # --- the run --------------------------------------------------------------------------------
    async def run(self) -> RunState:
        """Execute from ``progress.position`` to the end; returns the final state."""
        steps = self.schedule.steps
        self.machine.to(RunState.RUNNING, "start", f"from step {self.progress.position}")
        for event in self._resumed:  # what the resume found (controller_gap ...), numbered as this channel's
            self.events.emit(event)
        if self.supervisor.lease_waived:
            self.events.emit(Event(self.clock.now(), "safety", "warning", "no_lease",
                                   f"{self.channel.name} runs without a lease (station file: lease: none): if the "
                                   "controller dies, its output stays on until someone comes", self.name))  # fmt: skip
        if self.progress.step_seq == 0 and self._gap_from is None:  # a new run starts now on the clock
            self.progress.t_s = max(self.progress.t_s, self.clock.now())
        try:
            async with self.supervisor.guard(f"on {self.name}"):
                await self.supervisor.arm()
                await self.supervisor.set_current(0.0)
                await self.supervisor.output_on()
                if not isinstance(self.clock, VirtualClock):  # on real time: no fresh sample -> safe state
                    self.supervisor.start_watchdog()
                while self.progress.position < len(steps):
                    if not self._skip_checkpoint:  # a station resume continues the checkpoint it started from
                        await self._checkpoint(step_boundary=True)
                    self._skip_checkpoint = False
                    step = steps[self.progress.position]
                    end = await self._run_step(step)
                    if end.by == "aborted":
                        break
                    if not self._advance(step, end):
                        break
                await self._finish()
        except SafetyTripped as exc:
            self.failure = exc.violation.cause
            self.machine.to(RunState.FAULTED, exc.violation.cause, exc.violation.message)
            self._flush(final=True)  # after the transition, so the store has the final state
            return self.machine.state
        except Exception as exc:
            self.failure = type(exc).__name__
            self.machine.to(RunState.FAULTED, "exception", f"{type(exc).__name__}: {exc}")
            self._flush(final=True)
            return self.machine.state
        except asyncio.CancelledError:  # SIGINT/SIGTERM or the controller stopping: already secured
            if self.machine.can(RunState.STOPPING):
                self.machine.to(RunState.STOPPING, "cancelled", "the controller is stopping")
            if self.machine.can(RunState.ABORTED):
                self.machine.to(RunState.ABORTED, "cancelled", "the controller stopped the run")
            self._flush(final=True)
            raise
        finally:
            await self.supervisor.stop_watchdog()
        final = RunState.ABORTED if self._command == "abort" else RunState.COMPLETED
        if final is RunState.ABORTED and self.machine.state is not RunState.STOPPING:
            self.machine.to(RunState.STOPPING, "abort", "operator abort")
        self.machine.to(final, "end", "schedule finished" if final is RunState.COMPLETED else "aborted")
        if self.writer is not None:  # the end, its events and the channel's status in one transaction
            batch = self._checkpoint_batch()
            batch.channel_status = str(self.machine.state)
            self.writer.submit(batch)
        return self.machine.state

    def _advance(self, step: Step, end: StepEnd) -> bool:
        """Move ``progress.position`` per the step's action; False when the run stops here."""
        if end.by == "controller_gap":  # on: {controller_gap: stop}
            said = f"step {step.index} interrupted by the controller's absence: stop (on: controller_gap)"
            self.events.emit(Event(end.t_s, "engine", "decision", "stop", said, self.name, {"step": step.index}))
            self.progress.position = len(self.schedule.steps)
            return False
        action = step.action(end.by) if end.by in step.until.names() else None
        if action is None or action.kind == "next":
            self.progress.position += 1
            return True
        if action.kind == "stop":
            self.events.emit(Event(end.t_s, "engine", "decision", "stop", f"step {step.index} ended by {end.by}: stop",
                                   self.name, {"step": step.index}))  # fmt: skip
            self.progress.position = len(self.schedule.steps)
            return False
        key = str(step.index)
        jumps = self.progress.jumps.get(key, 0)
        assert action.target is not None
        if action.times is not None and jumps >= action.times:
            self.progress.position += 1
            return True
        self.progress.jumps[key] = jumps + 1
        self.progress.position = action.target
        return True

    async def _finish(self) -> None:
        closed = self.accounting.close()
        if closed is not None:
            self._add_cycle(closed.row())
        await self.supervisor.secure("end", "schedule finished")
        self.progress.finished = True
        self.progress.position = len(self.schedule.steps)

    # --- one step -------------------------------------------------------------------------------
    async def _run_step(self, step: Step) -> StepEnd:
        if step.until.capacity_previous:  # capacity: previous -> the charge the last step passed
            until = dataclasses.replace(step.until, capacity_c=abs(self.progress.last_step_charge_c))
            step = dataclasses.replace(step, until=until)
        p = self.progress
        p.step_seq += 1
        t0 = p.t_s
        closed = self.accounting.on_step_start(step.kind, t0)
        if closed is not None:
            self._add_cycle(closed.row())
        if step.limits is not None:
            self.supervisor.limits.push(f"step {step.index}", step.limits)
        self.supervisor.checker.new_step()
        self.recorder.start_step(t0)
        self._step_q = self._step_e = self._paused_s = 0.0
        self._t0 = t0
        try:
            step, stop = await self._monitor_start(step, t0)
            if stop:
                end = StepEnd("aborted", t0)
            else:
                self._step = step
                await self._apply_setpoint(step)
                await self.supervisor.renew_lease()  # a new step: a new horizon for the lease
                end = await self._step_loop(step, t0)
                self._step = None  # until the next step's setpoint: the whole lease, not the ended step's
                if end.by != "aborted":
                    await self.supervisor.renew_lease(rest=True)  # the cell rests (0 A) where it can
        finally:
            if step.limits is not None:
                self.supervisor.limits.pop(f"step {step.index}")
        step_row = {
            "step_seq": p.step_seq, "step_index": step.index, "template": step.template, "kind": step.kind,
            "cycle": self.accounting.cycle, "start_s": t0, "end_s": end.t_s, "charge_c": self._step_q,
            "energy_j": self._step_e, "ended_by": end.by,
        }  # fmt: skip
        self._steps.append(step_row)
        p.last_step_charge_c = self._step_q
        self._notify("on_step", step_row)
        return await self._monitor_end(end, t0)

    async def _apply_setpoint(self, step: Step) -> None:
        if step.kind == "hold":
            if not isinstance(self.channel, VoltageSource):
                raise NotSupported(self.name, "hold", "this instrument cannot source a voltage")
            await self.channel.set_voltage(step.voltage_v or 0.0)
            self.supervisor.setpoint_is_current = False
            return
        if step.kind == "pressure" and self.supervisor.rig is not None and step.pressure_pa is not None:
            await self.supervisor.rig.set_pressure_setpoint_pa(step.pressure_pa)
        await self.supervisor.set_current(step.current_a if step.kind in ("plate", "strip") else 0.0)

    async def _step_loop(self, step: Step, t0: float) -> StepEnd:
        self._step_q = 0.0
        self._step_e = 0.0
        self._tail_t: list[float] = []
        self._tail_v: list[float] = []
        # self._paused_s (set in _run_step): time paused or suspended does not count toward the step's time
        while True:
            if self._command is not None and await self._handle_command(step) == "abort":
                return StepEnd("aborted", self.progress.t_s)
            if self.schedule.suspend is not None and await self._suspend_if_needed(step) == "abort":
                return StepEnd("aborted", self.progress.t_s)
            if self._gap_from is not None and not self._replay and step.resume == "stop":
                self._gap_from = None  # what the instrument kept is in; the step's rule ends the run here
                return StepEnd("controller_gap", self.progress.t_s)
            block = await self._next_block(step, t0 + self._paused_s)
            t_prev = self.progress.t_s
            end = self._consume(step, t0 + self._paused_s, block)
            if self.monitors is not None:
                step, stop = await self._monitor_block(step, t0, t_prev, block, end is None)
                self._step = step
                if stop:
                    return StepEnd("aborted", self.progress.t_s)
            until = step.until  # a derate may have stretched it
            if self._pending_rows >= FLUSH_ROWS or (
                not self.throttle_store and self.clock.now() - self._last_flush >= FLUSH_PERIOD_S
            ):
                await self._check_store()
                self._flush()
                await self._keep_up()
            if end is not None:
                return end
            if until.time_s is not None and self.progress.t_s - t0 - self._paused_s >= until.time_s - 1e-9:
                return StepEnd("time", self.progress.t_s)

    def _step_horizon(self) -> float | None:
        """Where the running step is due to end (clock s): its time limit, or its capacity at its
        current; None when it has neither (or between steps). The lease reaches no further."""
        step = self._step
        if step is None:
            return None
        until = step.until
        ends: list[float] = []
        if until.time_s is not None:
            ends.append(self._t0 + self._paused_s + until.time_s)
        if until.capacity_c is not None and step.kind in ("plate", "strip") and step.current_a:
            left = max(until.capacity_c - abs(self._step_q), 0.0)
            ends.append(self.progress.t_s + left / abs(step.current_a))
        return min(ends) if ends else None

    def _end_gap(self, step: Step) -> None:
        """The controller was away from the last reading to now: not step time, and no charge across
        the gap. The step's ``on: {controller_gap: ...}`` rule: continue, or restart its counters."""
        now = self.clock.now()
        self._paused_s += max(now - (self._gap_from or now), 0.0)
        self.progress.t_s = max(self.progress.t_s, now)
        self._gap_from = None
        if step.resume == "restart":  # the step again from here (the cycle keeps what it passed)
            self._step_q = self._step_e = 0.0
            self._paused_s = now - self._t0
            self.recorder.start_step(now)

    async def _next_block(self, step: Step, t0: float) -> SampleBlock:
        if self._replay:
            block, self._replay_record = self._replay.pop(0)
            if len(block):
                self._gap_from = float(block.time_s[-1])
            return block
        self._replay_record = True
        if self._gap_from is not None:
            self._end_gap(step)
        if self._segment_period_s is not None:
            n = self._segment_length(step, t0, self._segment_period_s)
            block = await self.supervisor.read_segment(
                n, stop_above_v=step.until.voltage_above_v, stop_below_v=step.until.voltage_below_v
            )
        else:
            await self.clock.sleep_until(self.reads.next_due(self.clock.now()))
            self.reads.started(self.clock.now())
            block = await self.supervisor.read_block()
        self.last_block = block
        await asyncio.sleep(0)  # let other channels, commands and sinks run between blocks
        return block

    def _depletion_in_reach(self, step: Step) -> bool:
        """Whether the monitors' gap model can deplete the surface at this step's current within ten
        times the step's time limit (or at all when it has none): then segments stay at the monitors'
        period. Below the limiting current of a thin separator it never can. Cached per step."""
        if self.monitors is None or step.kind not in ("plate", "strip") or not step.current_a:
            return False
        key = (self.progress.step_seq, step.current_a)
        if self._reach_cache[0] != key:
            area = self.schedule.cell.area_m2
            t_dep = self.monitors.depletion.time_to_depletion_at(self.progress.t_s, abs(step.current_a) / area)
            horizon = 10 * step.until.time_s if step.until.time_s is not None else math.inf
            self._reach_cache = (key, math.isfinite(t_dep) and t_dep < horizon)
        return self._reach_cache[1]

    def _pressure_period_s(self) -> float | None:
        """How often (s) the stack pressure must be read between segments, None when it need not.

        Safety (a pressure window), the schedule's suspension rule and a watch rule that acts on a
        pressure finding need it every ``PRESSURE_PERIOD_S``; otherwise the monitors ask for it at
        their metrics period while the pressure moves, and take the one read with each segment while
        it holds steady; without a rig there is nothing to read."""
        if self.supervisor.rig is None:
            return None
        eff = self.supervisor.limits.effective
        watch = self.schedule.watch
        acting = watch.enabled and any(
            watch.rule(name).action != "continue" for name in ("pressure_loss", "void_risk") if name in watch.rules
        )
        window = eff.pressure_min_pa is not None or eff.pressure_max_pa is not None
        if self.schedule.suspend is not None or window or acting:
            return PRESSURE_PERIOD_S
        return self.monitors.pressure_period_s if self.monitors is not None else None

    def _segment_length(self, step: Step, t0: float, dt: float) -> int:
        n = self.max_segment
        pressure_period = self._pressure_period_s()
        if pressure_period is not None:  # the stack pressure is read between segments
            n = min(n, math.ceil(pressure_period / dt))
        if self._depletion_in_reach(step):  # the depletion monitor looks at every period's data
            n = min(n, math.ceil(self.schedule.watch.period_s / dt))
        until = step.until
        if until.time_s is not None:
            n = min(n, math.ceil((t0 + until.time_s - self.progress.t_s) / dt - 1e-9))
        if until.capacity_c is not None and step.kind in ("plate", "strip") and step.current_a:
            left = until.capacity_c * (1 - CAPACITY_TOLERANCE) - abs(self._step_q)
            n = min(n, math.ceil(left / (abs(step.current_a) * dt) - 1e-9))
        return max(1, n)

    def _consume(self, step: Step, t0: float, block: SampleBlock) -> StepEnd | None:
        """Account for ``block``, find the first termination in it, record what is kept."""
        if not len(block):
            return None
        t, v, i = block.time_s, block.voltage_v, block.current_a
        dq, de = interval_products(t, i, v, self.progress.t_s)
        q = self._step_q + np.cumsum(dq)
        k, by = self._first_termination(step, t0, t, v, i, q)
        # readings after the termination inside the same block were taken under this step's setpoint:
        # they belong to it (nothing measured is dropped); a segment-running instrument stops exactly
        self.accounting.add(t, dq, de)
        self._step_q = float(q[-1])
        self._step_e += float(de.sum())
        self.progress.run_charge_c += float(np.abs(dq).sum())
        self.progress.t_s = float(t[-1])
        self._record(t, v, i, q, last=k is not None)
        return None if k is None else StepEnd(by, float(t[-1]))

    def _first_termination(
        self, step: Step, t0: float, t: np.ndarray, v: np.ndarray, i: np.ndarray, q: np.ndarray
    ) -> tuple[int | None, str]:
        u = step.until
        checks: list[tuple[str, np.ndarray]] = []
        if u.time_s is not None:
            checks.append(("time", t - t0 >= u.time_s - 1e-9))
        if u.capacity_c is not None:
            checks.append(("capacity", np.abs(q) >= u.capacity_c * (1 - CAPACITY_TOLERANCE)))
        if u.voltage_above_v is not None:
            checks.append(("voltage_above", v > u.voltage_above_v))
        if u.voltage_below_v is not None:
            checks.append(("voltage_below", v < u.voltage_below_v))
        if u.current_below_a is not None:
            checks.append(("current_below", np.abs(i) < u.current_below_a))
        if u.dv_dt_above_v_per_s is not None or u.dv_dt_below_v_per_s is not None:
            rate, valid = self._dv_dt(t, v)
            if u.dv_dt_above_v_per_s is not None:
                checks.append(("dv_dt_above", valid & (rate > u.dv_dt_above_v_per_s)))
            if u.dv_dt_below_v_per_s is not None:
                checks.append(("dv_dt_below", valid & (rate < u.dv_dt_below_v_per_s)))
        best: tuple[int | None, str] = (None, "")
        for name, mask in checks:
            if mask.any():
                k = int(np.argmax(mask))
                if best[0] is None or k < best[0]:
                    best = (k, name)
        return best

    def _dv_dt(self, t: np.ndarray, v: np.ndarray, window_s: float = 60.0) -> tuple[np.ndarray, np.ndarray]:
        """|dV/dt| over a trailing window of ``window_s`` (s) at each sample, and where it is defined."""
        tt = np.concatenate((self._tail_t, t))
        vv = np.concatenate((self._tail_v, v))
        start = np.searchsorted(tt, tt - window_s, side="right") - 1
        ok = start >= 0
        start = np.clip(start, 0, None)
        span = tt - tt[start]
        with np.errstate(divide="ignore", invalid="ignore"):
            rate = np.abs(vv - vv[start]) / span
        n = len(t)
        keep = tt >= tt[-1] - window_s
        self._tail_t = tt[keep].tolist()
        self._tail_v = vv[keep].tolist()
        return rate[-n:], (ok & (span > 0))[-n:]

    # --- commands and suspension ------------------------------------------------------------------
    async def _handle_command(self, step: Step) -> str:
        command, self._command = self._command, None
        if command == "abort":
            self.machine.to(RunState.STOPPING, "abort", "operator abort")
            self._command = "abort"
            await self.supervisor.secure("abort", "operator abort")
            return "abort"
        if command == "pause" and self.machine.state is RunState.RUNNING:
            self.machine.to(RunState.PAUSED, "pause", "operator pause")
            await self.supervisor.secure("pause", "paused by the operator")
            paused_at = self.clock.now()
            while True:
                self._wake.clear()
                await self._wake.wait()
                latest = self._latest_command()
                if latest == "abort":
                    return await self._handle_command(step)
                if latest == "resume":
                    self._command = None
                    break
            await self.supervisor.arm()
            await self._apply_setpoint(step)
            await self.supervisor.output_on()
            self._paused_s += self.clock.now() - paused_at
            self.progress.t_s = max(self.progress.t_s, self.clock.now())
            self.machine.to(RunState.RUNNING, "resume", "operator resume")
        return command or ""

    async def _suspend_if_needed(self, step: Step) -> str:
        """Suspension on a condition: stack pressure below the schedule's ``suspend`` threshold stops
        the current (safe state) until the pressure is back above the resume threshold and has stayed
        there for the settle time; then the step continues. Time in suspension does not count."""
        rule, rig = self.schedule.suspend, self.supervisor.rig
        if rule is None or rig is None:
            return ""
        pressure = await rig.read_pressure_pa()
        if pressure >= rule.below_pa:
            return ""

        async def restored(_since: float, _now: float) -> tuple[bool, str]:
            p = await rig.read_pressure_pa()
            return p >= rule.resume_above_pa, f"stack pressure {p:.4g} Pa"

        return await self._suspend(
            step, ("pressure_low", f"stack pressure {pressure:.4g} Pa below {rule.below_pa:.4g} Pa"),
            ("current stopped while the stack pressure is low", {"pressure_pa": pressure}),
            restored, rule.settle_s, "pressure_restored",
        )  # fmt: skip

    async def _suspend(
        self,
        step: Step | None,
        why: tuple[str, str],
        secure: tuple[str, dict[str, Any]],
        ready: Callable[[float, float], Awaitable[tuple[bool, str]]],
        settle_s: float,
        resumed_cause: str,
    ) -> str:
        """Stop the current (safe state) until ``ready(suspended_at, now)`` has held for ``settle_s``,
        then source ``step``'s setpoint again (none when None). Time suspended does not count."""
        self.machine.to(RunState.SUSPENDED, *why)
        await self.supervisor.secure("suspended", *secure)
        suspended_at = self.clock.now()
        settled_since: float | None = None
        poll_s = max(self.read_period_s, settle_s / 20.0) if settle_s else self.read_period_s
        while True:
            if self._latest_command() == "abort":
                return "abort"
            now = self.clock.now()
            ok, said = await ready(suspended_at, now)
            if ok:
                settled_since = now if settled_since is None else settled_since
                if now - settled_since >= settle_s:
                    break
            else:
                settled_since = None
            await self.clock.sleep_until(now + poll_s)
        await self.supervisor.arm()
        if step is not None:
            await self._apply_setpoint(step)
        else:
            await self.supervisor.set_current(0.0)
        await self.supervisor.output_on()
        self._paused_s += self.clock.now() - suspended_at
        self.progress.t_s = self.clock.now()  # the current restarts now: no charge across the gap
        self.machine.to(RunState.RUNNING, resumed_cause, f"{said}, settled for {settle_s:g} s")
        return "resumed"

    # --- monitors (licycler.monitors): their findings become decisions, applied here --------------
    async def _monitor_pressure(self, fresh: bool = False) -> float | None:
        """The stack pressure for the monitors: the supervisor's reading with the last block, or a
        new reading (``fresh``, or none taken yet)."""
        rig = self.supervisor.rig
        if rig is None:
            return None
        if not fresh and self.supervisor.last_pressure_pa is not None:
            return self.supervisor.last_pressure_pa
        try:
            return await rig.read_pressure_pa()
        except Exception:  # a monitor's reading never stops control (the supervisor checks the rig)
            return None

    def _monitor_failed(self, exc: Exception) -> None:
        self.monitors = None
        self.events.emit(Event(self.progress.t_s, "engine", "monitor", "monitor_failure",
                               f"monitors stopped: {type(exc).__name__}: {exc}", self.name))  # fmt: skip

    async def _monitor_start(self, step: Step, t0: float) -> tuple[Step, bool]:
        if self.monitors is None:
            return step, False
        try:
            pressure = await self._monitor_pressure()
            decisions = self.monitors.start_step(step, self.progress.step_seq, t0, self.accounting.cycle, pressure)
        except Exception as exc:
            self._monitor_failed(exc)
            return step, False
        return await self._apply_decision(step, decisions, sourcing=False)

    async def _monitor_block(
        self, step: Step, t0: float, t_prev: float, block: SampleBlock, running: bool
    ) -> tuple[Step, bool]:
        assert self.monitors is not None
        try:
            elapsed = self.progress.t_s - t0 - self._paused_s
            due = self.monitors.add_block(block.time_s, block.voltage_v, block.current_a, t_prev, self._step_q, elapsed)
            decisions = self.monitors.process(await self._monitor_pressure()) if due and running else []
        except Exception as exc:
            self._monitor_failed(exc)
            return step, False
        return await self._apply_decision(step, decisions, sourcing=True)

    async def _monitor_end(self, end: StepEnd, t0: float) -> StepEnd:
        if self.monitors is None:
            return end
        try:
            elapsed = end.t_s - t0 - self._paused_s
            decisions = self.monitors.end_step(end.by, self._step_q, elapsed, await self._monitor_pressure())
        except Exception as exc:
            self._monitor_failed(exc)
            return end
        if end.by == "aborted":  # the run is stopping already: the findings are reported, nothing more
            return end
        _, stop = await self._apply_decision(None, decisions, sourcing=False)
        return StepEnd("aborted", end.t_s) if stop and end.by != "aborted" else end

    async def _apply_decision(self, step: Any, decisions: list[Decision], *, sourcing: bool) -> tuple[Any, bool]:
        """Apply the monitors' decisions (their events are already out). ``step`` is the running step
        (None once it has ended), ``sourcing`` whether its setpoint is on. Returns the step (a derate
        lowers its current and stretches its time) and whether the run stops here."""
        for d in decisions:
            if d.action == "derate" and step is not None and d.current_a is not None:
                until = step.until if d.time_limit_s is None else dataclasses.replace(step.until, time_s=d.time_limit_s)
                step = dataclasses.replace(step, current_a=d.current_a, until=until)
                if sourcing:
                    await self.supervisor.set_current(d.current_a)  # checked like any setpoint
                if self.monitors is not None:
                    self.monitors.applied_derate(d)
            elif d.action == "suspend" and self.monitors is not None:
                suite = self.monitors

                async def ready(
                    since: float, now: float, d: Decision = d, suite: MonitorSuite = suite
                ) -> tuple[bool, str]:
                    return suite.resume_ready(d, since, now, await self._monitor_pressure(fresh=True))

                numbers: dict[str, Any] = {k: v for k, v in d.values.items() if isinstance(v, int | float)}
                why = (f"monitor_{d.finding.cause}", d.message)
                settle = float(d.resume.get("settle", 0.0))
                if await self._suspend(step, why, (d.message, numbers), ready, settle, "monitor_resume") == "abort":
                    return step, True
            elif d.action == "abort":
                self.machine.to(RunState.STOPPING, "monitor_abort", d.message)
                said: dict[str, Any] = {k: v for k, v in d.values.items() if isinstance(v, int | float | str)}
                await self.supervisor.secure("monitor_abort", d.message, {"finding": d.finding.cause, **said})
                self._command = "abort"
                return step, True
        return step, False

    def _latest_command(self) -> str | None:
        """The command most recently given (read through a call: other tasks set it)."""
        return self._command

    # --- recording and checkpoints ----------------------------------------------------------------
    def _record(self, t: np.ndarray, v: np.ndarray, i: np.ndarray, q: np.ndarray, *, last: bool) -> None:
        keep = self.recorder.keep(t, v, q, last)
        n = int(keep.sum())
        if not n or not self._replay_record or not self.record_samples:  # nothing kept, or not to be stored
            return
        p = self.progress
        seq = np.arange(p.sample_seq, p.sample_seq + n, dtype=np.int64)
        p.sample_seq += n
        rows = SampleRows(
            seq,
            t[keep],
            v[keep],
            i[keep],
            q[keep],
            np.full(n, p.step_seq, dtype=np.int64),
            np.full(n, self.accounting.cycle, dtype=np.int64),
            None if self.supervisor.last_pressure_pa is None else np.full(n, self.supervisor.last_pressure_pa),
        )
        self._samples.append(rows)
        self._notify("on_samples", rows)
        self._pending_rows += n

    def _notify(self, method: str, payload: Any) -> None:
        for observer in self.observers:
            handler = getattr(observer, method, None)  # an observer may watch only some of these
            if handler is None:
                continue
            try:
                handler(self.run_id, self.name, payload)
            except Exception as exc:  # an observer's failure never stops control; it is reported once
                self.observers.remove(observer)
                self.events.emit(Event(self.progress.t_s, "engine", "observer", "observer_failure",
                                       f"{type(observer).__name__} removed: {exc}", self.name))  # fmt: skip

    def _add_cycle(self, row: dict[str, Any]) -> None:
        self._cycles.append(row)
        self._notify("on_cycle", row)
        if self.monitors is not None:
            try:
                self.monitors.end_cycle(row)
            except Exception as exc:
                self._monitor_failed(exc)

    def _batch(self) -> WriteBatch:
        metrics = self.monitors.take_metrics() if self.monitors is not None else []
        if metrics:
            self._notify("on_metrics", metrics)
        batch = WriteBatch(self.run_id, self.name, self._samples, self._steps, self._cycles, self.buffer.pending,
                           metrics)  # fmt: skip
        self._samples, self._steps, self._cycles, self.buffer.pending = [], [], [], []
        self._pending_rows = 0
        self._last_flush = self.clock.now()
        return batch

    def _flush(self, final: bool = False) -> None:
        if self.writer is None:
            return
        batch = self._batch()
        if final:
            batch.channel_status = str(self.machine.state)
        self.writer.submit(batch)

    async def _check_store(self) -> None:
        """A failed store (full disk, lost database) secures the channel: data that cannot be kept
        must not be produced."""
        if self.writer is not None and self.writer.failed is not None:
            violation = _store_violation(self.clock.now(), self.writer.failed)
            await self.supervisor.trip(violation)
            raise SafetyTripped(violation)

    async def _keep_up(self) -> None:
        """On a virtual clock the engine can outrun the database: wait for the writer when it falls
        behind (a hardware-free run goes at the store's pace, its memory bounded). Never on real time."""
        if self.throttle_store and self.writer is not None and self.writer.pending > STORE_LAG_BATCHES:
            await self.writer.wait_below(STORE_LAG_BATCHES // 4)

    async def _checkpoint(self, *, step_boundary: bool = False) -> None:
        """Commit a checkpoint with all data up to here, in one transaction: at every step boundary
        on real time; in a hardware-free run at most every :data:`SIM_CHECKPOINT_PERIOD_S` of wall
        time, ``sim_checkpoint_period_s`` (a resume regenerates what follows its checkpoint identically)."""
        if self.writer is None:
            return
        if step_boundary and self.throttle_store:
            if time.monotonic() - self._checkpoint_wall_s < self.sim_checkpoint_period_s:
                return
            self._checkpoint_wall_s = time.monotonic()
        await self._check_store()
        self.writer.submit(self._checkpoint_batch())
        await self._keep_up()

    def _checkpoint_batch(self) -> WriteBatch:
        """The data since the last batch, with the checkpoint that covers it."""
        self.progress.accounting = self.accounting.state()
        if self.monitors is not None:
            self.progress.monitors = self.monitors.state()
        self.progress.station = self.supervisor.resume_state()
        batch = self._batch()
        batch.checkpoint = {
            "sample_seq": self.progress.sample_seq,
            "state_json": _json(self.progress.to_json()),
            "snapshot": self.snapshot() if self.snapshot is not None else None,
        }
        return batch


def _store_violation(t_s: float, exc: BaseException) -> Violation:
    return Violation("store_failure", f"the store failed: {type(exc).__name__}: {exc}", t_s)


def _json(value: Any) -> str:
    return json.dumps(value)


def pickle_snapshot(*objects: object) -> Callable[[], bytes]:
    """A snapshot function for hardware-free runs: the pickled simulated objects."""
    return lambda: pickle.dumps(objects, protocol=pickle.HIGHEST_PROTOCOL)
