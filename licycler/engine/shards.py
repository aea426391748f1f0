"""A station's channels sharded over worker processes: one event loop each, one supervisor per
channel as in any run; one station-level emergency stop, one store and one telemetry for the station.

One interpreter cannot read a few hundred channels at 10 Hz: :class:`ShardedStationRun` splits the
station (:func:`split_station`: an instrument's channels, and those sharing a pressure rig, stay
together), starts a worker per part (:mod:`licycler.engine.shard_worker`) and waits until every part
has opened, identified and secured its instruments; a part that cannot open ends the run before it
is recorded (the others are told to quit: their outputs were never turned on). Then it records the
run, tells every worker to go, and from then on holds the station's one store writer (fed with
the workers' batches, in order) and its one event stream (the workers' events, re-emitted here to
the sinks and observers attached, e.g. telemetry). Its :meth:`~ShardedStationRun.emergency_stop`
reaches every worker and returns once each has put every channel it holds in its safe state.

A worker that dies is reported: its channels are recorded faulted (each instrument's lease turns
its output off); a parent that dies leaves its workers to stop every output and end. The run is a
plain station run in the store: ``licycler resume`` continues it like any other.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import json
import multiprocessing
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

import numpy as np

from licycler.clock import RealTimeClock
from licycler.engine.run import WRITER_LINGER_S, close_run, record_run, run_status
from licycler.engine.runner import Progress, RunObserver
from licycler.engine.shard_worker import ShardSpec, shard_main
from licycler.engine.states import TERMINAL, RunState
from licycler.errors import UserError
from licycler.events import Event, EventSink, FanOut
from licycler.protocols.schedule import Schedule
from licycler.safety.station import StationSafety
from licycler.safety.supervisor import ChannelSupervisor
from licycler.station import StationConfig, instrument_label
from licycler.store.process_writer import widen_pipe
from licycler.store.sql import Store, StoreWriter, WriteBatch

__all__ = ["AUTO_SHARD_CHANNELS", "ShardedStationRun", "default_shards", "split_station"]

AUTO_SHARD_CHANNELS = 64
"""A station with more channels than this is sharded by default (one worker per core)."""
START_TIMEOUT_S = 120.0
"""How long a worker may take to open and secure its instruments (s)."""
STOP_TIMEOUT_S = 10.0
"""How long a worker may take to stop and report after an emergency stop or a quit (s)."""


def default_shards(config: StationConfig, cores: int | None = None) -> int:
    """Workers for ``config`` when the user does not say: one up to :data:`AUTO_SHARD_CHANNELS`
    channels, else one per core."""
    if len(config.channels) <= AUTO_SHARD_CHANNELS:
        return 1
    return max(1, min(cores or multiprocessing.cpu_count(), len(config.channels)))


def split_station(config: StationConfig, shards: int) -> list[StationConfig]:
    """``config`` split into at most ``shards`` stations of about equal channel counts; the channels
    of one instrument, and of instruments sharing a pressure rig, stay in one part."""
    if shards < 1:
        raise UserError(f"--shards must be at least 1, got {shards}")
    parent = {name: name for name in config.instruments}

    def root(name: str) -> str:
        while parent[name] != name:
            name = parent[name]
        return name

    for ch in config.channels.values():  # an instrument and its channels' rig are one unit
        if ch.rig is not None:
            parent[root(ch.rig)] = root(ch.instrument)
    units: dict[str, list[str]] = {}
    for ch in config.channels.values():
        units.setdefault(root(ch.instrument), []).append(ch.name)
    parts: list[list[str]] = [[] for _ in range(min(shards, len(units)))]
    for unit in sorted(units.values(), key=len, reverse=True):
        min(parts, key=len).extend(unit)
    order = {name: k for k, name in enumerate(config.channels)}
    configs = []
    for names in parts:
        names.sort(key=order.__getitem__)
        channels = {n: config.channels[n] for n in names}
        used = {c.instrument for c in channels.values()} | {c.rig for c in channels.values() if c.rig is not None}
        instruments = {n: i for n, i in config.instruments.items() if n in used}
        configs.append(dataclasses.replace(config, instruments=instruments, channels=channels))
    return configs


@dataclass
class ShardChannel:
    """A channel of a sharded run as the parent sees it (what telemetry reads of a run's setups)."""

    name: str
    clock: RealTimeClock
    instrument: str
    seed: int | None = None


class ChannelView:
    """A channel runner as the parent sees it: the number of the channel's latest event, its state
    and, at the end, its read lateness."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.progress = Progress()
        self.buffer = object()  # never among the parent's sinks: events arrive numbered
        self.state: RunState | None = None
        self.lateness_s = np.zeros(0)
        self.missed = 0


class _StopProxy:
    """A channel's emergency stop, carried out by the worker that holds the channel."""

    def __init__(self, run: ShardedStationRun, channel: str) -> None:
        self.run = run
        self.name = channel

    async def emergency_stop(self, reason: str = "emergency stop") -> None:
        await self.run.emergency_stop(reason, channel=self.name)


class _ShardedSafety(StationSafety):
    """The station's safety as the parent holds it: emergency stops go to the workers."""

    def __init__(self, run: ShardedStationRun) -> None:
        proxies = {name: _StopProxy(run, name) for name in run.config.channels}
        super().__init__(cast(Mapping[str, ChannelSupervisor], proxies))
        self.run = run

    async def emergency_stop(self, reason: str = "emergency stop") -> None:
        await self.run.emergency_stop(reason)


class _Forward:
    """Events emitted in the parent (a remote command's decision) go to be recorded by the worker
    that holds their channel (every worker for a station-wide event)."""

    def __init__(self, run: ShardedStationRun) -> None:
        self.run = run

    def emit(self, event: Event) -> None:
        for worker in self.run.workers_of(event.channel):
            worker.send(("emit", event))


class _Worker:
    """A worker process and the parent's ends of its pipes."""

    def __init__(self, spec: ShardSpec, ctx: Any) -> None:
        self.spec = spec
        self.channels = list(spec.config.channels)
        child_commands, self.commands = ctx.Pipe(duplex=False)
        self.data, child_data = ctx.Pipe(duplex=False)
        widen_pipe(child_data)
        self.process = ctx.Process(target=shard_main, args=(spec, child_commands, child_data),
                                   name=f"licycler-shard-{spec.index}", daemon=True)  # fmt: skip
        self.process.start()
        child_commands.close()
        child_data.close()
        loop = asyncio.get_running_loop()
        self.ready: asyncio.Future[dict[str, str]] = loop.create_future()
        self.done: asyncio.Future[None] = loop.create_future()
        self.gone = False

    def send(self, msg: tuple[Any, ...]) -> None:
        if not self.gone:
            with contextlib.suppress(OSError):
                self.commands.send(msg)

    def close(self) -> None:
        self.process.join(STOP_TIMEOUT_S)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(STOP_TIMEOUT_S)
        for conn in (self.commands, self.data):
            conn.close()


def _context() -> Any:
    """A fork server (fresh workers, forked from a process that never ran the parent's event loop
    or held its connections), else spawn."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["licycler.engine.shard_worker"])
        return ctx
    return multiprocessing.get_context("spawn")


class ShardedStationRun:
    """Runs ``schedule`` on the station ``config`` over ``shards`` worker processes, recorded in ``store``.

    It answers what the CLI, telemetry and remote commands ask of a
    :class:`~licycler.engine.run.RunController` (``run``, ``add_sink``, ``add_observer``, ``pause``,
    ``resume``, ``abort``, ``emergency_stop``, ``safety``, ``runners``, ``setups``, ``events``)."""

    def __init__(
        self, schedule: Schedule, config: StationConfig, store: Store | None, *, shards: int, run_id: str | None = None
    ) -> None:
        self.schedule = schedule
        self.config = config
        self.store = store
        self.run_id = run_id or uuid.uuid4().hex[:12]
        self.mode = "station"
        self.scenario_text: str | None = None
        self.station_text = config.text
        self.resuming = False
        self.parts = split_station(config, shards)
        self.origin_monotonic = time.monotonic()
        self.clock = RealTimeClock()
        self.setups = [
            ShardChannel(ch.name, self.clock, instrument_label(config.instruments[ch.instrument], ch.channel))
            for ch in config.channels.values()
        ]
        self._forward = _Forward(self)
        self.events = FanOut(self._forward)
        self.observers: list[RunObserver] = []
        self.runners: dict[str, ChannelView] = {}
        self.safety = _ShardedSafety(self)
        self.writer: StoreWriter | None = None
        self.workers: list[_Worker] = []
        self._owner: dict[str, _Worker] = {}
        self._acks: dict[int, asyncio.Future[None]] = {}
        self._requests = itertools.count()
        self._store_failure_told = False

    # --- what a controller offers -------------------------------------------------------------
    def add_sink(self, sink: EventSink) -> None:
        """Send every event of the run to ``sink`` too (telemetry)."""
        self.events.add(sink)

    def add_observer(self, observer: RunObserver) -> None:
        """Let ``observer`` see samples, steps, cycles and metrics as the workers record them."""
        self.observers.append(observer)

    def workers_of(self, channel: str | None) -> list[_Worker]:
        if channel is None:
            return [w for w in self.workers if not w.gone]
        if channel not in self.config.channels:
            raise UserError(f"no channel named '{channel}' in this run (channels: {', '.join(self.config.channels)})")
        worker = self._owner.get(channel)
        return [] if worker is None or worker.gone else [worker]

    def _command(self, verb: str, channel: str | None) -> None:
        for worker in self.workers_of(channel):
            worker.send((verb, channel))

    def pause(self, channel: str | None = None) -> None:
        self._command("pause", channel)

    def resume(self, channel: str | None = None) -> None:
        self._command("resume", channel)

    def abort(self, channel: str | None = None) -> None:
        self._command("abort", channel)

    async def emergency_stop(self, reason: str = "emergency stop", channel: str | None = None) -> None:
        """Every channel (or ``channel``) to its safe state: returns once each worker holding one has
        confirmed it (or has ended)."""
        loop = asyncio.get_running_loop()
        waits = []
        for worker in self.workers_of(channel):
            request = next(self._requests)
            self._acks[request] = ack = loop.create_future()
            worker.send(("estop", reason, channel, request))
            waits.append(asyncio.wait([ack, worker.done], return_when=asyncio.FIRST_COMPLETED))
        await asyncio.gather(*waits)

    # --- running ----------------------------------------------------------------------------------
    def _specs(self) -> list[ShardSpec]:
        total = len(self.config.channels)
        index = {name: k for k, name in enumerate(self.config.channels)}
        period = self.config.read_period_s
        return [
            ShardSpec(k, part, self.schedule.text, self.schedule.source, self.run_id, self.origin_monotonic,
                      tuple(period * index[name] / total for name in part.channels), observe=bool(self.observers))
            for k, part in enumerate(self.parts)
        ]  # fmt: skip

    async def run(self) -> dict[str, RunState]:
        """Start the workers, run every channel to its end; returns each channel's final state."""
        ctx = _context()
        loop = asyncio.get_running_loop()
        try:
            for spec in self._specs():
                worker = _Worker(spec, ctx)
                self.workers.append(worker)
                self._owner.update(dict.fromkeys(worker.channels, worker))
                loop.add_reader(worker.data.fileno(), self._readable, worker)
            await self._opened()
            if self.store is not None:
                channels = [(s.name, s.seed, s.instrument) for s in self.setups]
                record_run(self.store, self.run_id, self.schedule, channels, mode=self.mode,
                           station_text=self.station_text)  # fmt: skip
                self.writer = StoreWriter(self.store, linger_s=WRITER_LINGER_S)
            self.runners = {name: ChannelView(name) for name in self.config.channels}
            for worker in self.workers:
                worker.send(("go",))
            await asyncio.gather(*(w.done for w in self.workers))
        except asyncio.CancelledError:
            await self._stop_workers("the controller is stopping")
            if self.runners:
                await close_run(self.writer, self.store, self.run_id, "aborted", "cancelled", self.events)
            raise
        finally:
            await self._end_workers()
        states = {name: view.state or RunState.FAULTED for name, view in self.runners.items()}
        await close_run(self.writer, self.store, self.run_id, run_status(states),
                        json.dumps({k: str(v) for k, v in states.items()}), self.events)  # fmt: skip
        return states

    async def _opened(self) -> None:
        """Every worker has opened and secured its part, or the run ends here (nothing recorded)."""
        try:
            results = await asyncio.wait_for(
                asyncio.gather(*(w.ready for w in self.workers), return_exceptions=True), START_TIMEOUT_S
            )
        except TimeoutError:
            results = [UserError(f"{self.config.source}: the station's instruments did not open within "
                                 f"{START_TIMEOUT_S:g} s")]  # fmt: skip
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            await self._stop_workers("another part of the station did not open")
            messages = sorted({str(f) for f in failures})
            raise UserError("; ".join(messages))

    async def _stop_workers(self, reason: str) -> None:
        """Every worker told to stop its outputs and quit; wait (bounded) for each to report."""
        for worker in self.workers:
            worker.send(("quit",))
        pending = [w.done for w in self.workers if not w.done.done()]
        if pending:
            await asyncio.wait(pending, timeout=STOP_TIMEOUT_S)

    async def _end_workers(self) -> None:
        loop = asyncio.get_running_loop()
        for worker in self.workers:
            with contextlib.suppress(ValueError, OSError):
                loop.remove_reader(worker.data.fileno())
        await asyncio.gather(*(asyncio.to_thread(w.close) for w in self.workers))

    # --- what the workers send ------------------------------------------------------------------
    def _readable(self, worker: _Worker) -> None:
        try:
            while worker.data.poll():
                self._message(worker, worker.data.recv())
        except (EOFError, OSError):
            asyncio.get_running_loop().remove_reader(worker.data.fileno())
            self._lost(worker, f"the worker process of channels {', '.join(worker.channels)} ended")

    def _message(self, worker: _Worker, msg: tuple[Any, ...]) -> None:
        kind = msg[0]
        if kind == "batch":
            self._store(msg[1])
        elif kind == "event":
            event, seq = msg[1], msg[2]
            view = self.runners.get(event.channel) if event.channel is not None else None
            if view is not None and seq is not None:
                view.progress.event_seq = seq
            for sink in self.events.sinks:
                if sink is not self._forward:
                    sink.emit(event)
        elif kind == "observe":
            for what, channel, payload in msg[1]:
                for observer in self.observers:
                    method = getattr(observer, f"on_{what}", None)
                    if method is not None:
                        method(self.run_id, channel, payload)
        elif kind == "ack":
            ack = self._acks.pop(msg[1], None)
            if ack is not None and not ack.done():
                ack.set_result(None)
        elif kind == "ready":
            if not worker.ready.done():
                worker.ready.set_result(msg[1])
        elif kind == "error":
            if not worker.ready.done():
                worker.ready.set_exception(UserError(msg[1]))
            self._finish(worker)
        elif kind == "done":
            for name, state in msg[1].items():
                view = self.runners.get(name)
                if view is not None:
                    view.state = RunState(state)
                    view.lateness_s, view.missed = msg[2].get(name, (np.zeros(0), 0))
            self._finish(worker)
        elif kind == "crash":
            self._lost(worker, f"the worker process of channels {', '.join(worker.channels)} failed:\n{msg[1]}")

    def _store(self, batch: WriteBatch) -> None:
        if self.writer is None:
            return
        self.writer.submit(batch)
        if self.writer.failed is not None and not self._store_failure_told:
            self._store_failure_told = True
            for worker in self.workers:
                worker.send(("store_failed", str(self.writer.failed)))

    def _finish(self, worker: _Worker) -> None:
        if not worker.done.done():
            worker.done.set_result(None)

    def _lost(self, worker: _Worker, message: str) -> None:
        """A worker ended without reporting: its channels are faulted (their leases stop the outputs)."""
        worker.gone = True
        if not worker.ready.done():
            worker.ready.set_exception(UserError(message))
        if worker.done.done():
            return
        for name in worker.channels:
            view = self.runners.get(name)
            if view is None or view.state in TERMINAL:
                continue
            view.state = RunState.FAULTED
            event = Event(self.clock.now(), "engine", "transition", "shard_lost", message, name)
            view.progress.event_seq += 1
            self._store(WriteBatch(self.run_id, name, events=[(view.progress.event_seq, event)],
                                   channel_status=str(RunState.FAULTED)))  # fmt: skip
            for sink in self.events.sinks:
                if sink is not self._forward:
                    sink.emit(event)
        self._finish(worker)

    def install_signal_handlers(self, main_task: asyncio.Task[object]) -> None:
        """On SIGINT/SIGTERM: an emergency stop on every channel, then ``main_task`` cancelled."""
        self.safety.install_signal_handlers(main_task)
