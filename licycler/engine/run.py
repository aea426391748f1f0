"""A run: one schedule on many channels at once, recorded in the store, resumable after a crash.

:class:`RunController` creates the run's record, layers the schedule's limits onto each channel's
supervisor (a schedule that asks for more than the station allows is refused before any output
turns on), secures every channel first, then runs one :class:`ChannelRunner` task per channel.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from licycler import __version__
from licycler.clock import Clock, VirtualClock
from licycler.drivers.interfaces import SampleBlock
from licycler.engine.runner import ChannelRunner, Progress, RunObserver
from licycler.engine.states import RunState
from licycler.errors import UserError
from licycler.events import Event, EventSink, FanOut
from licycler.protocols.schedule import Schedule
from licycler.safety.limits import LimitsRefused
from licycler.safety.station import StationSafety
from licycler.safety.supervisor import ChannelSupervisor
from licycler.store.process_writer import ProcessStoreWriter, process_writer_fits
from licycler.store.sql import BatchWriter, Store, StoreWriter

__all__ = ["ChannelSetup", "RunController", "close_run", "exit_status", "record_run", "run_status"]


WRITER_LINGER_S = 0.5
"""On real time, how long the store writer gathers batches into one transaction (s): longer than
the burst of a station's channels ending a step together (see :class:`~licycler.store.StoreWriter`)."""


@dataclass
class ChannelSetup:
    """Everything a channel needs to run: its supervisor (with the instrument), clock, and for
    hardware-free runs a snapshot function and the seed of its simulated cell."""

    name: str
    supervisor: ChannelSupervisor
    clock: Clock
    snapshot: Callable[[], bytes] | None = None
    progress: Progress | None = None
    instrument: str = ""
    seed: int | None = None
    replay: list[tuple[SampleBlock, bool]] | None = None
    """A station resume: the interrupted step's blocks so far (stored, and read back from the instrument)."""
    resumed: list[Event] = field(default_factory=list)
    """A station resume: what it found (a ``controller_gap`` event), recorded as the channel starts."""


def _writer(store: Store | None, setups: list[ChannelSetup]) -> BatchWriter | None:
    """The run's store writer: in a process of its own for a hardware-free run (every channel on a
    virtual clock, a store a child can open), else a thread (lingering on real time)."""
    if store is None:
        return None
    if setups and all(isinstance(s.clock, VirtualClock) for s in setups) and process_writer_fits(store):
        return ProcessStoreWriter(store)
    linger_s = WRITER_LINGER_S if any(not isinstance(s.clock, VirtualClock) for s in setups) else 0.0
    return StoreWriter(store, linger_s=linger_s)


def record_run(
    store: Store, run_id: str, schedule: Schedule, channels: list[tuple[str, int | None, str]], *, mode: str,
    scenario_text: str | None = None, station_text: str | None = None,
) -> None:  # fmt: skip
    """Create the run's record: the run (status ``running``) and its ``(name, seed, instrument)`` channels."""
    store.create_run(
        {
            "run_id": run_id, "name": schedule.name, "schedule_name": schedule.name,
            "schedule_source": schedule.source, "schedule_text": schedule.text,
            "schedule_sha256": schedule.sha256, "scenario_text": scenario_text,
            "station_text": station_text, "software_version": __version__, "mode": mode,
            "created_unix_s": time.time(), "status": "running",
        },
        [
            {"run_id": run_id, "channel": name, "chemistry": schedule.cell.chemistry,
             "area_m2": schedule.cell.area_m2, "seed": seed, "instrument": instrument, "status": "running"}
            for name, seed, instrument in channels
        ],
    )  # fmt: skip


async def close_run(
    writer: BatchWriter | None, store: Store | None, run_id: str, status: str, message: str, events: EventSink
) -> None:
    """End a run: every batch written (a store failure makes the run ``faulted``), then its status recorded."""
    if writer is not None:
        await writer.close()
        failed = writer.failed
        if failed is not None:
            status, message = "faulted", f"store failure: {failed}"
    if store is not None:
        try:
            await asyncio.to_thread(store.set_run_status, run_id, status, message)
        except Exception as exc:  # the store itself may be what failed
            events.emit(Event(0.0, "engine", "store", "store_failure", str(exc)))


def run_status(states: dict[str, RunState]) -> str:
    """The run's recorded status from its channels' final states: completed, aborted or faulted."""
    if exit_status(states) == 0:
        return "completed"
    return "aborted" if all(s in (RunState.ABORTED, RunState.COMPLETED) for s in states.values()) else "faulted"


def exit_status(states: dict[str, RunState]) -> int:
    """0 when every channel completed, 1 otherwise (an abort or a fault on any channel)."""
    return 0 if all(s is RunState.COMPLETED for s in states.values()) else 1


class RunController:
    """Runs ``schedule`` on every channel of ``setups`` and records it in ``store``."""

    def __init__(
        self,
        schedule: Schedule,
        setups: list[ChannelSetup],
        store: Store | None,
        *,
        run_id: str | None = None,
        mode: str = "sim",
        scenario_text: str | None = None,
        station_text: str | None = None,
        events: FanOut | None = None,
        resuming: bool = False,
        writer: BatchWriter | None = None,
    ) -> None:
        self.schedule = schedule
        self.setups = setups
        self.store = store
        self.run_id = run_id or uuid.uuid4().hex[:12]
        self.mode = mode
        self.scenario_text = scenario_text
        self.station_text = station_text
        self.events = events or FanOut()
        self.resuming = resuming
        self.writer = writer if writer is not None else _writer(store, setups)
        self.record_samples = True
        """False: store the run's steps, cycles, events and metrics but not its samples (a sweep)."""
        self.read_phases_s: list[float] | None = None
        """Each channel's read phase within the read period (s; None: spread evenly over the channels)."""
        self.sim_checkpoint_period_s: float | None = None
        """A hardware-free run's checkpoint period (s of wall time; None: the runner's default)."""
        self.runners: dict[str, ChannelRunner] = {}
        self.observers: list[RunObserver] = []
        self.safety = StationSafety({s.name: s.supervisor for s in setups})
        self._limits_layered = False
        for setup in setups:
            setup.supervisor.events = self.events

    def _register(self) -> None:
        if self.store is None or self.resuming:
            return
        record_run(self.store, self.run_id, self.schedule, [(s.name, s.seed, s.instrument) for s in self.setups],
                   mode=self.mode, scenario_text=self.scenario_text, station_text=self.station_text)  # fmt: skip

    def layer_limits(self) -> None:
        """Put the schedule's limits on every channel's supervisor (once); raise :class:`UserError`
        naming a channel whose station or instrument allows less than the schedule asks for."""
        if self._limits_layered:
            return
        for setup in self.setups:
            sup = setup.supervisor
            if sup.area_m2 is None:
                sup.area_m2 = self.schedule.cell.area_m2
                sup.checker.area_m2 = sup.area_m2
            try:
                sup.limits.push("protocol", self.schedule.limits)
            except LimitsRefused as exc:
                raise UserError(f"{self.schedule.source}: channel {setup.name}: {exc}") from None
        self._limits_layered = True

    def add_sink(self, sink: EventSink) -> None:
        """Send every event of the run to ``sink`` too (telemetry, the live view)."""
        self.events.add(sink)

    def add_observer(self, observer: RunObserver) -> None:
        """Let ``observer`` see samples, steps and cycles as they are recorded (never blocking)."""
        self.observers.append(observer)

    async def run(self) -> dict[str, RunState]:
        """Run every channel to its end; returns each channel's final state."""
        self.layer_limits()
        self._register()
        await self.safety.secure_all("startup", "securing every channel before the run")
        for k, setup in enumerate(self.setups):
            self.runners[setup.name] = ChannelRunner(
                setup.name, self.schedule, setup.supervisor, clock=setup.clock, run_id=self.run_id,
                writer=self.writer, events=self.events, progress=setup.progress, snapshot=setup.snapshot,
                throttle_store=isinstance(setup.clock, VirtualClock), read_period_s=setup.supervisor.read_period_s,
                read_phase_s=self._read_phase_s(k), replay=setup.replay,
                resumed=setup.resumed,
            )  # fmt: skip
            self.runners[setup.name].observers.extend(self.observers)
            self.runners[setup.name].record_samples = self.record_samples
            if self.sim_checkpoint_period_s is not None:
                self.runners[setup.name].sim_checkpoint_period_s = self.sim_checkpoint_period_s
        tasks = {name: asyncio.create_task(r.run(), name=f"channel:{name}") for name, r in self.runners.items()}
        try:
            results = await asyncio.gather(*tasks.values(), return_exceptions=True)
        except asyncio.CancelledError:
            for task in tasks.values():
                task.cancel()
            await asyncio.gather(*tasks.values(), return_exceptions=True)
            await self._close("aborted", "cancelled")
            raise
        states: dict[str, RunState] = {}
        for name, result in zip(tasks, results, strict=True):
            states[name] = result if isinstance(result, RunState) else RunState.FAULTED
        await self._close(run_status(states), json.dumps({k: str(v) for k, v in states.items()}))
        return states

    def _read_phase_s(self, k: int) -> float:
        if self.read_phases_s is not None:
            return self.read_phases_s[k]
        return self.setups[k].supervisor.read_period_s * k / len(self.setups)

    async def _close(self, status: str, message: str) -> None:
        await close_run(self.writer, self.store, self.run_id, status, message, self.events)

    # --- operator commands ---------------------------------------------------------------------------
    def _targets(self, channel: str | None) -> list[ChannelRunner]:
        if channel is None:
            return list(self.runners.values())
        if channel not in self.runners:
            raise UserError(f"no channel named '{channel}' in this run (channels: {', '.join(self.runners)})")
        return [self.runners[channel]]

    def pause(self, channel: str | None = None) -> None:
        for r in self._targets(channel):
            r.pause()

    def resume(self, channel: str | None = None) -> None:
        for r in self._targets(channel):
            r.resume()

    def abort(self, channel: str | None = None) -> None:
        for r in self._targets(channel):
            r.abort()

    async def emergency_stop(self, reason: str = "emergency stop") -> None:
        """Every channel of the station to its safe state at once."""
        await self.safety.emergency_stop(reason)
