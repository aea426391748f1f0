"""One shard of a sharded station run: a worker process with its own event loop, running its part of
the station (see :mod:`licycler.engine.shards`, which starts it and reads what it sends).

The worker opens its channels' instruments (identified and secured first, as any station run
starts), layers the schedule's limits, says ``ready`` and waits for ``go``; then it runs a
:class:`~licycler.engine.run.RunController` on its channels and sends the parent, over its data pipe,
every store batch, every event (with the number the channel's event log gives it) and, when the
parent has observers, what they would see. It takes the parent's commands (pause, resume, abort,
emergency stop, events to record, quit) from its command pipe. When that pipe ends (the parent died)
it stops every output it holds and ends; SIGTERM does the same. SIGINT is the parent's to handle.

Messages are tuples, the first item naming them. To the parent: ``("ready", labels)``,
``("error", message)``, ``("batch", batch)``, ``("event", event, seq)``, ``("observe", items)``,
``("ack", request)``, ``("done", states, reads)``, ``("crash", text)``. From the parent:
``("go",)``, ``("pause"|"resume"|"abort", channel)``, ``("estop", reason, channel, request)``,
``("emit", event)``, ``("store_failed", message)``, ``("quit",)``.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing.connection as mpc
import signal
import time
import traceback
from dataclasses import dataclass
from typing import Any

from licycler.clock import RealTimeClock
from licycler.engine.run import ChannelSetup, RunController
from licycler.errors import UserError
from licycler.events import Event
from licycler.protocols.parse import parse_schedule
from licycler.protocols.schedule import Schedule
from licycler.station import Station, StationConfig, open_station
from licycler.store.blocks import SampleRows
from licycler.store.sql import StoreError, WriteBatch
from licycler.yamlsource import load_yaml_text

__all__ = ["OBSERVE_FLUSH_S", "PipeWriter", "ShardSpec", "shard_main"]

OBSERVE_FLUSH_S = 0.05
"""How long what the observers see gathers in a shard before it goes to the parent in one message (s)."""


@dataclass(frozen=True)
class ShardSpec:
    """What a shard is given: its part of the station, the run, and its place on the station's clock."""

    index: int
    config: StationConfig
    schedule_text: str
    """The schedule's text (read again in the worker: what the run recorded, validated the same way)."""
    schedule_source: str
    run_id: str
    origin_monotonic: float
    """``time.monotonic()`` at the station's time zero (the clock is system-wide: every shard shares it)."""
    read_phases_s: tuple[float, ...]
    """Each channel's read phase within the period (s): the station's channels interleaved across shards."""
    observe: bool = False

    def schedule(self) -> Schedule:
        return parse_schedule(load_yaml_text(self.schedule_text, self.schedule_source), self.schedule_text,
                              self.schedule_source)  # fmt: skip


class PipeWriter:
    """The shard's store writer: each batch goes to the parent (which holds the one store writer of the
    station) in order, with the events. A store failure is reported back by the parent."""

    def __init__(self, conn: mpc.Connection) -> None:
        self.conn = conn
        self.failed: BaseException | None = None

    def submit(self, batch: WriteBatch) -> None:
        if self.failed is None:
            self.conn.send(("batch", batch.coded()))

    @property
    def pending(self) -> int:
        return 0

    async def wait_below(self, batches: int) -> None:
        return None

    async def flush(self) -> None:
        return None

    async def close(self) -> None:
        return None


class _PipeSink:
    """Sends every event to the parent with the number the channel's event log will give it (the
    sink is added before the runners', so the number is the one they are about to use)."""

    def __init__(self, conn: mpc.Connection, controller: RunController) -> None:
        self.conn = conn
        self.controller = controller
        self.skip: Event | None = None
        """An event the parent sent to be recorded here: not sent back."""

    def emit(self, event: Event) -> None:
        if event is self.skip:
            return
        runner = self.controller.runners.get(event.channel) if event.channel is not None else None
        self.conn.send(("event", event, None if runner is None else runner.progress.event_seq))


class _PipeObserver:
    """What the parent's observers (telemetry) would see, gathered for :data:`OBSERVE_FLUSH_S`."""

    def __init__(self, conn: mpc.Connection) -> None:
        self.conn = conn
        self.items: list[tuple[str, str, Any]] = []
        self._timer: asyncio.TimerHandle | None = None

    def _add(self, kind: str, channel: str, payload: Any) -> None:
        self.items.append((kind, channel, payload))
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(OBSERVE_FLUSH_S, self.flush)

    def flush(self) -> None:
        self._timer = None
        if self.items:
            items, self.items = self.items, []
            self.conn.send(("observe", items))

    def on_samples(self, run_id: str, channel: str, rows: SampleRows) -> None:
        self._add("samples", channel, rows)

    def on_cycle(self, run_id: str, channel: str, row: dict[str, Any]) -> None:
        self._add("cycle", channel, row)

    def on_step(self, run_id: str, channel: str, row: dict[str, Any]) -> None:
        self._add("step", channel, row)

    def on_metrics(self, run_id: str, channel: str, rows: list[dict[str, Any]]) -> None:
        self._add("metrics", channel, rows)


class _Shard:
    """The shard's state while it runs: its station, controller and the parent's commands."""

    def __init__(self, spec: ShardSpec, commands: mpc.Connection, data: mpc.Connection) -> None:
        self.spec = spec
        self.commands = commands
        self.data = data
        self.station: Station | None = None
        self.controller: RunController | None = None
        self.sink: _PipeSink | None = None
        self.observer: _PipeObserver | None = None
        self.go = asyncio.Event()
        self.main: asyncio.Task[Any] | None = None
        self.tasks: set[asyncio.Task[None]] = set()

    # --- the parent's commands --------------------------------------------------------------
    def readable(self) -> None:
        try:
            while self.commands.poll():
                self.command(self.commands.recv())
        except (EOFError, OSError):  # the parent is gone: nobody else will stop these outputs
            asyncio.get_running_loop().remove_reader(self.commands.fileno())
            self.spawn(self.stop_all("the controller's parent process ended"))

    def spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def stop_all(self, reason: str) -> None:
        try:
            if self.controller is not None:
                await self.controller.emergency_stop(reason)
        finally:
            if self.main is not None:
                self.main.cancel(reason)

    def command(self, msg: tuple[Any, ...]) -> None:
        verb, ctl = msg[0], self.controller
        if verb == "go":
            self.go.set()
        elif verb == "quit":
            if self.main is not None:
                self.main.cancel("the parent asked the shard to quit")
        elif verb == "estop":
            self.spawn(self.estop(*msg[1:]))
        elif verb == "store_failed" and ctl is not None and ctl.writer is not None:
            ctl.writer.failed = StoreError(msg[1])
        elif verb == "emit" and ctl is not None and self.sink is not None:
            self.sink.skip = msg[1]
            try:
                ctl.events.emit(msg[1])
            finally:
                self.sink.skip = None
        elif verb in ("pause", "resume", "abort") and ctl is not None and ctl.runners:
            with contextlib.suppress(UserError):
                getattr(ctl, verb)(msg[1])

    async def estop(self, reason: str, channel: str | None, request: int) -> None:
        try:
            ctl = self.controller
            if ctl is not None:
                if channel is None:
                    await ctl.emergency_stop(reason)
                else:
                    await ctl.safety.supervisors[channel].emergency_stop(reason)
        finally:
            self.data.send(("ack", request))

    # --- the run ------------------------------------------------------------------------------
    async def open(self) -> bool:
        """Open, secure and check the shard's channels; False (and an ``error`` sent) when that fails."""
        spec = self.spec
        clock = RealTimeClock(start_s=time.monotonic() - spec.origin_monotonic)
        try:
            self.station = await open_station(spec.config, clock=clock)
            setups = [ChannelSetup(name, sup, clock, instrument=sup.channel.name)
                      for name, sup in self.station.supervisors.items()]  # fmt: skip
            ctl = RunController(spec.schedule(), setups, None, run_id=spec.run_id, mode="station",
                                station_text=spec.config.text, writer=PipeWriter(self.data))  # fmt: skip
            ctl.layer_limits()
        except UserError as exc:
            self.data.send(("error", str(exc)))
            return False
        ctl.read_phases_s = list(spec.read_phases_s)
        self.sink = _PipeSink(self.data, ctl)
        ctl.add_sink(self.sink)
        if spec.observe:
            self.observer = _PipeObserver(self.data)
            ctl.add_observer(self.observer)
        self.controller = ctl
        self.data.send(("ready", {s.name: s.instrument for s in setups}))
        return True

    async def run(self) -> None:
        ctl = self.controller
        assert ctl is not None
        await self.go.wait()
        try:
            states = await ctl.run()
        except asyncio.CancelledError:
            states = {name: r.machine.state for name, r in ctl.runners.items()}
        if self.observer is not None:
            self.observer.flush()
        reads = {name: (r.reads.lateness_s(), r.reads.missed) for name, r in ctl.runners.items()}
        with contextlib.suppress(OSError):  # a parent that is gone has nobody to tell
            self.data.send(("done", {k: str(v) for k, v in states.items()}, reads))


async def _serve(spec: ShardSpec, commands: mpc.Connection, data: mpc.Connection) -> None:
    loop = asyncio.get_running_loop()
    shard = _Shard(spec, commands, data)
    shard.main = asyncio.current_task()
    loop.add_signal_handler(signal.SIGTERM, lambda: shard.spawn(shard.stop_all("SIGTERM received")))
    loop.add_reader(commands.fileno(), shard.readable)
    try:
        if await shard.open():
            await shard.run()
    except asyncio.CancelledError:  # quit before the run started (another shard failed to open)
        pass
    finally:
        with contextlib.suppress(ValueError, OSError):
            loop.remove_reader(commands.fileno())
        if shard.station is not None:
            await shard.station.close()


def shard_main(spec: ShardSpec, commands: mpc.Connection, data: mpc.Connection) -> None:
    """The worker process's entry point: run the shard to its end."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C for the whole station
    try:
        asyncio.run(_serve(spec, commands, data))
    except BaseException:
        with contextlib.suppress(OSError):
            data.send(("crash", traceback.format_exc()))
        raise
