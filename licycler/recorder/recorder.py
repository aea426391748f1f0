"""The lab recorder: every station's runs, cycles, steps and events (and optionally samples) from
MQTT into one database, idempotently.

It holds a persistent MQTT session (``clean_session`` off, a fixed client id), so QoS 1 records
published while it is away are queued by the broker. It writes in batches (one transaction per
run and channel) and only then acknowledges the records' keys to their station on
``licycler/<station>/ack``; a station keeps every record until acknowledged and sends it again
after a reconnect or when this recorder announces itself online. So neither a broker restart
(even one that loses its queues) nor a recorder restart loses a QoS 1 record, and the natural
keys make the second copy a no-op.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import aiomqtt

from licycler.recorder.db import write_payloads
from licycler.store.sql import Store
from licycler.telemetry.connection import Backoff, MqttConfig, stay_connected
from licycler.telemetry.payloads import PAYLOAD_VERSION, PayloadError, decode, encode
from licycler.telemetry.topics import ROOT, ack_topic, check_name, parse_topic, recorder_status_topic

__all__ = ["Recorder", "RecorderOptions"]

_log = logging.getLogger(__name__)

_STORED = ("run", "cycle", "step", "event", "samples")


@dataclass
class RecorderOptions:
    """``batch_interval_s``: how often pending records are written (s); ``max_batch``: write at
    once beyond this many messages; ``samples``: record samples too (QoS 0, no confirmation)."""

    samples: bool = False
    batch_interval_s: float = 0.2
    max_batch: int = 5_000
    backoff: Backoff | None = None


class Recorder:
    """Subscribes to every station on the broker of ``mqtt`` and writes into ``store``."""

    def __init__(self, mqtt: MqttConfig, store: Store, *, name: str = "main", options: RecorderOptions | None = None):
        self.mqtt = mqtt
        self.store = store
        self.name = check_name(name, "recorder")
        self.options = options or RecorderOptions()
        self.ready = asyncio.Event()
        self.counters: dict[str, int] = {
            "messages": 0, "invalid": 0, "batches": 0, "write_failures": 0, "acks_published": 0, "connects": 0,
            "connection_failures": 0,
        }  # fmt: skip
        self.written: dict[str, int] = {}
        self.stations: dict[str, str] = {}
        self._pending: deque[dict[str, Any]] = deque()
        self._more = asyncio.Event()
        self._stop = asyncio.Event()

    def stop(self) -> None:
        """Ask :meth:`run` to write what it has, say offline and return."""
        self._stop.set()
        self._more.set()

    async def run(self) -> None:
        """Record until :meth:`stop` is called."""
        client = self.mqtt.client(
            identifier=f"licycler-recorder-{self.name}", clean_session=False,
            will=aiomqtt.Will(recorder_status_topic(self.name), encode(self._status("offline")), 1, True),
        )  # fmt: skip
        await stay_connected(client, self._session, self._stop, backoff=self.options.backoff,
                             name=f"recorder {self.name} ({self.mqtt.safe_url})", on_failure=self._failed)  # fmt: skip
        if self._pending:  # the broker was gone at the end: what arrived is still written (not acknowledged)
            await self._write(None)

    def _failed(self, exc: BaseException) -> None:
        self.counters["connection_failures"] += 1

    def _status(self, status: str) -> dict[str, Any]:
        return {"v": PAYLOAD_VERSION, "type": "recorder", "recorder": self.name, "status": status,
                "unix_time_s": time.time()}  # fmt: skip

    async def _session(self, client: aiomqtt.Client) -> None:
        topics: list[tuple[str, int]] = [(f"{ROOT}/+/run", 1), (f"{ROOT}/+/status", 1)]
        topics += [(f"{ROOT}/+/+/{kind}", 1) for kind in ("cycle", "step", "event")]
        if self.options.samples:
            topics.append((f"{ROOT}/+/+/samples", 0))
        await client.subscribe(topics)
        await client.publish(recorder_status_topic(self.name), encode(self._status("online")), 1, True)
        self.counters["connects"] += 1
        self.ready.set()
        receiver = asyncio.create_task(self._receive(client))
        writer = asyncio.create_task(self._writer(client))
        try:
            done, _ = await asyncio.wait((receiver, writer), return_when=asyncio.FIRST_COMPLETED)
            if writer in done:
                writer.result()
                with contextlib.suppress(aiomqtt.MqttError):
                    await client.publish(recorder_status_topic(self.name), encode(self._status("offline")), 1, True,
                                         timeout=2.0)  # fmt: skip
                return
            receiver.result()
            raise aiomqtt.MqttError("message stream ended")
        finally:
            for task in (receiver, writer):
                task.cancel()
            await asyncio.gather(receiver, writer, return_exceptions=True)

    async def _receive(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            self.counters["messages"] += 1
            topic = parse_topic(str(message.topic))
            if topic is None or not isinstance(message.payload, (bytes, bytearray)):
                continue
            if topic.kind == "status":
                self._station_status(topic.station, bytes(message.payload))
                continue
            if topic.kind not in _STORED:
                continue
            try:
                payload = decode(topic.kind, bytes(message.payload))
                if payload["station"] != topic.station or payload.get("channel", topic.channel) != topic.channel:
                    raise PayloadError("the payload's station or channel is not its topic's")
            except PayloadError as exc:
                self.counters["invalid"] += 1
                _log.warning("ignored a message on %s: %s", message.topic, exc)
                continue
            self._pending.append(payload)
            if len(self._pending) >= self.options.max_batch:
                self._more.set()

    def _station_status(self, station: str, data: bytes) -> None:
        if not data:  # a retained status being cleared
            return
        try:
            self.stations[station] = str(decode("status", data)["status"])
        except PayloadError:
            self.counters["invalid"] += 1

    async def _writer(self, client: aiomqtt.Client) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._more.wait(), self.options.batch_interval_s)
            self._more.clear()
            if self._pending:
                await self._write(client)
            if self._stop.is_set():
                return

    async def _write(self, client: aiomqtt.Client | None) -> None:
        items = list(self._pending)
        self._pending.clear()
        try:
            written = await asyncio.to_thread(write_payloads, self.store, items)
        except Exception as exc:  # the database is down or full: nothing is acknowledged; stations send again
            self.counters["write_failures"] += 1
            _log.error("recorder %s: writing %d record(s) failed: %s", self.name, len(items), exc)
            self._pending.extendleft(reversed(items[-100_000:]))
            await asyncio.sleep(min(5.0, 0.5 * self.counters["write_failures"]))
            return
        self.counters["batches"] += 1
        for kind, n in written.counts.items():
            self.written[kind] = self.written.get(kind, 0) + n
        if client is None:
            return
        for station, keys in written.keys.items():
            for start in range(0, len(keys), 2_000):
                ack = {"v": PAYLOAD_VERSION, "type": "ack", "recorder": self.name, "keys": keys[start : start + 2_000]}
                await client.publish(ack_topic(station), encode(ack), 1)
                self.counters["acks_published"] += 1

    def stats(self) -> dict[str, Any]:
        return {**self.counters, "written": dict(self.written), "pending": len(self._pending)}
