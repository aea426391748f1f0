"""A station's telemetry: an :class:`~licycler.events.EventSink` and
:class:`~licycler.engine.RunObserver` on a run controller that publishes over MQTT and takes
remote commands.

The engine's callbacks (``emit``, ``on_samples``, ``on_cycle``, ``on_step``) only append to
bounded queues and return; one task owns the connection and publishes:

- samples, batched per channel every ``sample_interval_s``, at QoS 0; when the broker is slow or
  gone the oldest are dropped beyond ``max_sample_rows`` (counted, reported in the status message
  and as a ``telemetry`` event in the run's log);
- state (retained), cycle, step, event and run records at QoS 1; cycles, steps, events and the
  run are kept in the :class:`~licycler.telemetry.outbox.Outbox` until a recorder acknowledges
  them, and sent again after a reconnect or when a recorder comes online;
- ``licycler/<station>/status``: ``online`` with counters (retained), ``offline`` as the last will.

Control never waits on any of it: a dead broker costs samples, never a late decision.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiomqtt

from licycler import __version__
from licycler.engine.run import RunController
from licycler.engine.states import TERMINAL, RunState
from licycler.events import Event
from licycler.store.sql import SampleRows
from licycler.telemetry.commands import CommandHandler
from licycler.telemetry.connection import Backoff, MqttConfig, stay_connected
from licycler.telemetry.outbox import Outbox, Record, SampleBuffer, split_rows
from licycler.telemetry.payloads import (
    PAYLOAD_VERSION,
    PayloadError,
    decode,
    encode,
    event_payload,
    record_key,
    row_payload,
    sample_payload,
)
from licycler.telemetry.topics import (
    ROOT,
    ack_topic,
    channel_topic,
    check_name,
    parse_topic,
    reply_topic,
    station_topic,
)

__all__ = ["Telemetry", "TelemetryOptions"]

_log = logging.getLogger(__name__)


@dataclass
class TelemetryOptions:
    """Tuning of a station's telemetry (times in s)."""

    sample_interval_s: float = 1.0
    max_sample_rows: int = 200_000
    max_rows_per_message: int = 5_000
    max_records: int = 100_000
    max_inflight: int = 100
    status_interval_s: float = 10.0
    resend_after_s: float = 30.0
    max_command_age_s: float = 30.0
    drain_timeout_s: float = 10.0
    backoff: Backoff = field(default_factory=Backoff)


@dataclass
class _ChannelState:
    state: str = "idle"
    cause: str | None = None
    time_s: float = 0.0
    cycle: int = 0
    step_seq: int = 0
    step_kind: str | None = None


class Telemetry:
    """Publishes ``controller``'s run as station ``station`` on the broker of ``mqtt`` and carries
    out remote commands on it. Attach with :func:`licycler.telemetry.attach`, or by hand:
    ``controller.add_sink(t); controller.add_observer(t); t.start()``; end with ``await t.close()``.
    Without a controller it publishes what it is given (benchmarks, tools) and refuses commands.
    """

    def __init__(
        self,
        mqtt: MqttConfig,
        station: str,
        controller: RunController | None = None,
        *,
        options: TelemetryOptions | None = None,
    ) -> None:
        self.mqtt = mqtt
        self.station = check_name(station, "station")
        self.controller = controller
        self.options = options or TelemetryOptions()
        self.run_id = controller.run_id if controller is not None else None
        self.channels: list[str] = [check_name(s.name, "channel") for s in controller.setups] if controller else []
        self.outbox = Outbox(self.options.max_records)
        self.samples = SampleBuffer(self.options.max_sample_rows)
        self.commands = CommandHandler(controller, max_age_s=self.options.max_command_age_s)
        self.connected = asyncio.Event()
        self.counters: dict[str, int] = {
            "connects": 0, "connection_failures": 0, "messages_published": 0, "samples_published": 0,
            "records_published": 0, "unencodable": 0,
        }  # fmt: skip
        self.created_unix_s = time.time()
        self._states: dict[str, _ChannelState] = {name: _ChannelState() for name in self.channels}
        self._dirty: set[str] = set()
        self._seq_offsets: dict[str, int] = {}
        self._recorders: dict[str, bool] = {}
        self._run_final: str | None = None
        self._wake = asyncio.Event()
        self._progress = asyncio.Event()
        self._stop = asyncio.Event()
        self._flush_samples = False
        self._reported_drops = 0
        self._task: asyncio.Task[None] | None = None
        self._reporter: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False

    # --- the engine's side: queue and return --------------------------------------------------
    def emit(self, event: Event) -> None:
        """An event of the run (EventSink): queued per channel with its number in that channel."""
        if self._closed or self.run_id is None:
            return
        targets = [event.channel] if event.channel is not None else list(self.channels)
        for channel in targets:
            seq = self._event_seq(channel)
            key = record_key("event", self.run_id, channel, seq) if seq is not None else None
            payload = event_payload(event, station=self.station, run_id=self.run_id, channel=channel, seq=seq, key=key)
            self._put(Record(channel_topic(self.station, channel, "event"), b"", key), payload)
        if event.kind == "transition" and event.channel in self._states:
            st = self._states[event.channel]
            st.state, st.cause, st.time_s = str(event.values.get("to", st.state)), event.cause, event.time_s
            self._dirty.add(event.channel)
            self._check_run_end()
        self._wake.set()

    def on_samples(self, run_id: str, channel: str, rows: SampleRows) -> None:
        """Samples just recorded (RunObserver): kept for the next batch."""
        if not self._closed:
            self.samples.add(run_id, channel, rows)

    def on_cycle(self, run_id: str, channel: str, row: dict[str, Any]) -> None:
        """A cycle just closed (RunObserver)."""
        self._put_row("cycle", run_id, channel, row, row["cycle"])

    def on_step(self, run_id: str, channel: str, row: dict[str, Any]) -> None:
        """A step just ended (RunObserver)."""
        self._put_row("step", run_id, channel, row, row["step_seq"])
        st = self._states.get(channel)
        if st is not None:
            st.cycle, st.step_seq, st.step_kind = int(row["cycle"]), int(row["step_seq"]), str(row["kind"])
            self._dirty.add(channel)

    def _put_row(self, kind: str, run_id: str, channel: str, row: dict[str, Any], number: int) -> None:
        if self._closed:
            return
        key = record_key(kind, run_id, channel, number)
        payload = row_payload(kind, row, station=self.station, run_id=run_id, channel=channel, key=key)
        self._put(Record(channel_topic(self.station, channel, kind), b"", key), payload)
        self._wake.set()

    def _put(self, record: Record, payload: dict[str, Any]) -> None:
        """Queue ``record`` with ``payload`` encoded; a payload that cannot be encoded is counted
        and logged (never raised into the engine)."""
        try:
            record.payload = encode(payload)
        except (TypeError, ValueError) as exc:
            self.counters["unencodable"] += 1
            _log.error("telemetry %s: cannot encode a %s record: %s", self.station, payload.get("type"), exc)
            return
        self.outbox.put(record)

    def _event_seq(self, channel: str) -> int | None:
        """The number the channel's runner gives this event in the store's event log (None before
        the runner exists: such events are published but no recorder stores them)."""
        ctl = self.controller
        runner = ctl.runners.get(channel) if ctl is not None else None
        if ctl is None or runner is None:
            return None
        offset = self._seq_offsets.get(channel)
        if offset is None:  # the runner's buffer numbers the event when the fan-out reaches it
            sinks = ctl.events.sinks
            mine = next((k for k, s in enumerate(sinks) if s is self), len(sinks))
            theirs = next((k for k, s in enumerate(sinks) if s is runner.buffer), len(sinks))
            offset = self._seq_offsets[channel] = -1 if theirs < mine else 0
        return runner.progress.event_seq + offset

    def _check_run_end(self) -> None:
        if self._run_final is not None or not self.channels:
            return
        states = [RunState(self._states[c].state) for c in self.channels]
        if not all(s in TERMINAL for s in states):
            return
        if all(s is RunState.COMPLETED for s in states):
            status = "completed"
        elif all(s in (RunState.ABORTED, RunState.COMPLETED) for s in states):
            status = "aborted"
        else:
            status = "faulted"
        self._run_final = status
        self._put_run(status)

    # --- the run record ---------------------------------------------------------------------
    def _run_payload(self, status: str) -> dict[str, Any]:
        ctl = self.controller
        assert ctl is not None
        assert self.run_id is not None
        sched = ctl.schedule
        final = status != "running"
        return {
            "v": PAYLOAD_VERSION, "type": "run", "station": self.station, "run_id": self.run_id,
            "key": record_key("run", self.run_id, None, status), "name": sched.name, "schedule_name": sched.name,
            "schedule_source": sched.source, "schedule_text": sched.text, "schedule_sha256": sched.sha256,
            "scenario_text": ctl.scenario_text, "station_text": ctl.station_text, "software_version": __version__,
            "mode": ctl.mode, "created_unix_s": self.created_unix_s, "status": status,
            "ended_unix_s": time.time() if final else None, "message": None,
            "channels": [
                {"channel": s.name, "chemistry": sched.cell.chemistry, "area_m2": sched.cell.area_m2, "seed": s.seed,
                 "instrument": s.instrument, "status": self._states[s.name].state if final else "running"}
                for s in ctl.setups
            ],
        }  # fmt: skip

    def _put_run(self, status: str) -> None:
        payload = self._run_payload(status)
        self._put(Record(station_topic(self.station, "run"), b"", payload["key"], retain=True), payload)
        self._wake.set()

    # --- lifecycle ----------------------------------------------------------------------------
    def start(self) -> None:
        """Start publishing (call inside the running event loop, before or during the run)."""
        if self._task is not None:
            return
        loop = asyncio.get_running_loop()
        self._task = loop.create_task(self._main(), name=f"telemetry:{self.station}")
        self._reporter = loop.create_task(self._report_periodically(), name=f"telemetry-drops:{self.station}")

    async def _report_periodically(self) -> None:
        """Drops are reported whether or not the broker is there (it is when it is not that they happen)."""
        while True:
            await asyncio.sleep(self.options.status_interval_s)
            self._report_drops()

    async def _main(self) -> None:
        if self.controller is not None:
            if self.controller.resuming:
                await self._backfill()
            self._put_run("running")
        client = self.mqtt.client(
            identifier=f"licycler-{self.station}-{uuid.uuid4().hex[:8]}",
            will=aiomqtt.Will(station_topic(self.station, "status"), encode(self._status("offline")), 1, True),
            max_inflight=self.options.max_inflight,
        )  # fmt: skip
        name = f"telemetry {self.station} ({self.mqtt.safe_url})"
        await stay_connected(client, self._session, self._stop, backoff=self.options.backoff, name=name,
                             on_failure=self._failed)  # fmt: skip

    async def _backfill(self) -> None:
        """A resumed run: queue what the station's database already holds of this run (records a
        crash may have kept from any recorder; a recorder ignores those it has)."""
        ctl = self.controller
        assert ctl is not None
        assert self.run_id is not None
        store, run_id = ctl.store, self.run_id
        if store is None:
            return
        try:
            run, cycles, steps, events = await asyncio.to_thread(
                lambda: (store.run(run_id), store.cycles(run_id), store.steps(run_id), store.events(run_id))
            )
        except Exception as exc:  # the station's own store failing is the engine's business
            _log.warning("telemetry backfill of run %s failed: %s", run_id, exc)
            return
        if run is not None:
            self.created_unix_s = float(run["created_unix_s"])
        for kind, rows, number in (("cycle", cycles, "cycle"), ("step", steps, "step_seq")):
            for row in rows:
                self._put_row(kind, run_id, row["channel"], row, row[number])
        for row in events:
            key = record_key("event", run_id, row["channel"], row["seq"])
            ev = Event(row["time_s"], row["source"], row["kind"], row["cause"], row["message"], row["channel"],
                       row["values"], row["unix_time_s"])  # fmt: skip
            payload = event_payload(ev, station=self.station, run_id=run_id, channel=row["channel"], seq=row["seq"],
                                    key=key)  # fmt: skip
            self._put(Record(channel_topic(self.station, row["channel"], "event"), b"", key), payload)

    def _failed(self, exc: BaseException) -> None:
        self.counters["connection_failures"] += 1
        self.connected.clear()

    def published(self) -> bool:
        """Everything handed to the broker (samples sent, records acknowledged by it)."""
        return self.samples.rows == 0 and not self._dirty and self.outbox.drained(need_acks=False)

    def drained(self) -> bool:
        """Everything published and, when this lab has a recorder (one has announced itself, even
        if it is offline now), confirmed by it."""
        return self.published() and self.outbox.drained(need_acks=bool(self._recorders))

    @property
    def recorder_online(self) -> bool:
        return any(self._recorders.values())

    async def wait_until(self, condition: Callable[[], bool], timeout_s: float) -> bool:
        """Wait (at most ``timeout_s``) until ``condition()`` holds, checking whenever something
        was published or confirmed; returns whether it holds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while not condition() and loop.time() < deadline:
            self._progress.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._progress.wait(), max(0.0, deadline - loop.time()))
        return condition()

    async def close(self, timeout_s: float | None = None) -> bool:
        """Publish what is queued and, when the lab has a recorder, wait for its confirmations (at
        most ``timeout_s``, default ``drain_timeout_s``); say ``offline``; disconnect. Returns True
        when nothing was left behind."""
        if self._task is None or self._closed:
            self._closed = True
            return True
        timeout = self.options.drain_timeout_s if timeout_s is None else timeout_s
        self._flush_samples = True
        self._wake.set()
        await self.wait_until(self.drained, timeout)
        drained = self.drained()
        self._report_drops()
        if self._reporter is not None:
            self._reporter.cancel()
        self._closed = True
        self._stop.set()
        self._wake.set()
        try:
            await asyncio.wait_for(asyncio.shield(self._task), 5.0)
        except TimeoutError:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        except Exception:  # the connection task failed: what it left is reported below
            _log.exception("telemetry %s: the connection task failed", self.station)
        if not drained:
            _log.warning(
                "telemetry %s closed with %d record(s) unconfirmed and %d sample(s) unsent",
                self.station, self.outbox.unconfirmed + self.outbox.unsent, self.samples.rows,
            )  # fmt: skip
        return drained

    async def __aenter__(self) -> Telemetry:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- the connection -----------------------------------------------------------------------
    async def _session(self, client: aiomqtt.Client) -> None:
        self.outbox.resend_all()
        self._dirty |= set(self._states)
        await client.subscribe([
            (f"{ROOT}/{self.station}/+/cmd/+", 1), (ack_topic(self.station), 1), (f"{ROOT}/_recorder/+/status", 1),
        ])  # fmt: skip
        await client.publish(station_topic(self.station, "status"), encode(self._status("online")), 1, True)
        self.counters["connects"] += 1
        self.connected.set()
        self._progress.set()
        receiver = asyncio.create_task(self._receive(client))
        sender = asyncio.create_task(self._send(client))
        try:
            done, _ = await asyncio.wait((receiver, sender), return_when=asyncio.FIRST_COMPLETED)
            if sender in done:
                sender.result()  # raises if the connection failed while sending
                with contextlib.suppress(aiomqtt.MqttError):
                    await client.publish(station_topic(self.station, "status"), encode(self._status("offline")),
                                         1, True, timeout=2.0)  # fmt: skip
                return
            receiver.result()
            raise aiomqtt.MqttError("message stream ended")
        finally:
            for task in (receiver, sender):
                task.cancel()
            await asyncio.gather(receiver, sender, return_exceptions=True)
            self.connected.clear()

    async def _receive(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            topic = parse_topic(str(message.topic))
            if topic is None or not isinstance(message.payload, (bytes, bytearray)):
                continue
            data = bytes(message.payload)
            if topic.kind == "cmd" and topic.station == self.station and topic.channel and topic.verb:
                self._spawn(self._command(client, topic.channel, topic.verb, data))
            elif topic.kind == "ack" and topic.station == self.station:
                self._on_ack(data)
            elif topic.kind == "recorder":
                self._on_recorder(topic.station, data, retained=bool(message.retain))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _command(self, client: aiomqtt.Client, channel: str, verb: str, data: bytes) -> None:
        result = await self.commands.handle(channel, verb, data)
        states = {name: st.state for name, st in self._states.items()}
        try:
            await client.publish(reply_topic(self.station, channel, verb),
                                 encode(result.reply(self.station, states)), 1)  # fmt: skip
        except aiomqtt.MqttError as exc:
            _log.warning("could not reply to command %s on %s: %s", verb, channel, exc)

    def _on_ack(self, data: bytes) -> None:
        try:
            ack = decode("ack", data)
        except PayloadError as exc:
            _log.warning("ignored an acknowledgement: %s", exc)
            return
        if self.outbox.ack(ack["keys"]):
            self._progress.set()
        self._recorders.setdefault(ack["recorder"], True)

    def _on_recorder(self, name: str, data: bytes, *, retained: bool) -> None:
        try:
            status = decode("recorder", data)
        except PayloadError:
            return
        online = status["status"] == "online"
        self._recorders[name] = online
        if online and not retained:  # a recorder (re)connected: give it whatever it has not confirmed
            self.outbox.resend_all()
            self._wake.set()
        self._progress.set()

    async def _send(self, client: aiomqtt.Client) -> None:
        loop = asyncio.get_running_loop()
        opts = self.options
        next_samples = loop.time() + opts.sample_interval_s
        next_status = loop.time() + opts.status_interval_s
        while True:
            self._wake.clear()
            await self._publish_states(client)
            await self._publish_records(client)
            now = loop.time()
            if now >= next_samples or self._flush_samples or self._stop.is_set():
                self._flush_samples = False
                await self._publish_samples(client)
                next_samples = now + opts.sample_interval_s
            if now >= next_status:
                next_status = now + opts.status_interval_s
                await client.publish(station_topic(self.station, "status"), encode(self._status("online")), 1, True)
                if self.recorder_online:
                    self.outbox.resend_older(now, opts.resend_after_s)
            self._progress.set()
            if self._stop.is_set():
                await self._publish_records(client)
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), max(0.0, min(next_samples, next_status) - loop.time()))

    async def _publish_states(self, client: aiomqtt.Client) -> None:
        while self._dirty:
            channel = self._dirty.pop()
            st = self._states[channel]
            payload = {
                "v": PAYLOAD_VERSION, "type": "state", "station": self.station, "channel": channel,
                "run_id": self.run_id, "state": st.state, "cause": st.cause, "time_s": st.time_s, "cycle": st.cycle,
                "step_seq": st.step_seq, "step_kind": st.step_kind, "unix_time_s": time.time(),
            }  # fmt: skip
            try:
                await client.publish(channel_topic(self.station, channel, "state"), encode(payload), 1, True)
            except BaseException:
                self._dirty.add(channel)
                raise
            self.counters["messages_published"] += 1

    async def _publish_records(self, client: aiomqtt.Client) -> None:
        loop = asyncio.get_running_loop()
        while batch := self.outbox.take(self.options.max_inflight):

            async def one(rid: int, record: Record) -> None:
                await client.publish(record.topic, record.payload, 1, record.retain)
                self.outbox.sent(rid, loop.time())

            try:
                async with asyncio.TaskGroup() as group:
                    for rid, record in batch:
                        group.create_task(one(rid, record))
            except BaseExceptionGroup as group_error:
                raise group_error.exceptions[0] from None
            self.counters["records_published"] += len(batch)
            self.counters["messages_published"] += len(batch)
            self._progress.set()

    async def _publish_samples(self, client: aiomqtt.Client) -> None:
        for run_id, channel, rows in self.samples.take():
            dropped = self.samples.dropped.get(channel, 0)
            for piece in split_rows(rows, self.options.max_rows_per_message):
                payload = sample_payload(piece, station=self.station, run_id=run_id, channel=channel, dropped=dropped)
                await client.publish(channel_topic(self.station, channel, "samples"), encode(payload), 0)
                self.counters["samples_published"] += len(piece)
                self.counters["messages_published"] += 1

    def _report_drops(self) -> None:
        """Samples dropped since the last report: a warning and an event in the run's log."""
        dropped = self.samples.total_dropped
        if dropped <= self._reported_drops:
            return
        new, self._reported_drops = dropped - self._reported_drops, dropped
        _log.warning("telemetry %s dropped %d sample(s) (%d in all): the broker is slow or unreachable",
                     self.station, new, dropped)  # fmt: skip
        if self.controller is not None and self._run_final is None:  # into the run's log while it runs
            setups = self.controller.setups
            self.controller.events.emit(Event(
                setups[0].clock.now() if setups else 0.0, "telemetry", "telemetry", "samples_dropped",
                f"telemetry dropped {new} sample(s) ({dropped} in all): the broker was slow or unreachable", None,
                {"dropped": new, "dropped_total": dropped},
            ))  # fmt: skip

    def stats(self) -> dict[str, int]:
        """Every counter: published, dropped, queued, confirmed, connections, commands."""
        return {
            **self.counters, "samples_dropped": self.samples.total_dropped, "samples_pending": self.samples.rows,
            "records_queued": self.outbox.put_count, "records_pending": len(self.outbox),
            "records_unconfirmed": self.outbox.unconfirmed, "records_acked": self.outbox.acked,
            "records_evicted": self.outbox.evicted, "records_dropped": self.outbox.dropped,
            "commands_accepted": self.commands.accepted, "commands_refused": self.commands.refused,
        }  # fmt: skip

    def _status(self, status: str) -> dict[str, Any]:
        payload: dict[str, Any] = {"v": PAYLOAD_VERSION, "type": "status", "station": self.station, "status": status,
                                   "unix_time_s": time.time(), "run_id": self.run_id, "software_version": __version__,
                                   "channels": list(self.channels)}  # fmt: skip
        if status == "online":
            payload["counters"] = self.stats()
        return payload
