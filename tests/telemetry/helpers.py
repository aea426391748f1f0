"""Runs for the telemetry tests: dummy-cell channels (optionally paced in real time, so a run lasts
long enough to act on it), schedules, and MQTT helpers."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import aiomqtt

from licycler.drivers.interfaces import SampleBlock
from licycler.engine import ChannelSetup, RunController
from licycler.engine.sim import sim_channel
from licycler.protocols import parse_schedule
from licycler.protocols.schedule import Schedule
from licycler.sim_instruments.dummy_cell import DummyCell
from licycler.telemetry import command_topic, parse_mqtt_url
from licycler.yamlsource import load_yaml_text


def schedule(cycles: int, *, step_s: float = 20.0, rest_s: float = 5.0) -> Schedule:
    """``cycles`` cycles of 1 mA/cm^2 plating then stripping, each ``step_s`` long, after a rest."""
    text = f"""\
name: telemetry-test
cell: {{chemistry: Li||Li, electrode_area: 1 cm^2}}
limits: {{voltage_min: -1 V, voltage_max: 1 V}}
record: {{every: 1 s}}
steps:
  - rest: {rest_s:g} s
  - repeat:
      count: {cycles}
      steps:
        - plate: {{current: 1 mA/cm^2, until: {{time: {step_s:g} s}}}}
        - strip: {{current: 1 mA/cm^2, until: {{time: {step_s:g} s}}}}
"""
    return parse_schedule(load_yaml_text(text, "telemetry-test.yaml"), text, "telemetry-test.yaml")


def long_schedule() -> Schedule:
    """One plating step of a day: a run that is running until aborted."""
    text = """\
name: long-plate
cell: {chemistry: Li||Li, electrode_area: 1 cm^2}
limits: {voltage_min: -1 V, voltage_max: 1 V}
record: {every: 1 s}
steps:
  - plate: {current: 1 mA/cm^2, until: {time: 86400 s}}
"""
    return parse_schedule(load_yaml_text(text, "long.yaml"), text, "long.yaml")


class Paced:
    """An in-process SMU whose segments take real time: ``speed`` simulated seconds per second,
    in pieces of about 20 ms (so commands are taken between them promptly)."""

    def __init__(self, inner: Any, speed: float) -> None:
        self._inner = inner
        self._speed = speed

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def run_segment(
        self, n_samples: int, *, stop_above_v: float | None = None, stop_below_v: float | None = None
    ) -> SampleBlock:
        period = self._inner.sample_period_s
        n = max(1, min(n_samples, round(0.02 * self._speed / period)))
        await asyncio.sleep(n * period / self._speed)
        return await self._inner.run_segment(n, stop_above_v=stop_above_v, stop_below_v=stop_below_v)


def dummy_channel(name: str, *, speed: float | None = None, max_segment: int = 1000) -> ChannelSetup:
    """A 50 ohm dummy cell behind the in-process SMU (1 s samples), paced at ``speed`` if given."""
    setup = sim_channel(name, DummyCell(0.0, 50.0), stuck_count=10**9)
    if speed is not None:
        setup.supervisor.channel = Paced(setup.supervisor.channel, speed)  # type: ignore[assignment]
    return setup


def controller(sched: Schedule, store: Any, names: list[str], *, speed: float | None = None) -> RunController:
    return RunController(sched, [dummy_channel(n, speed=speed) for n in names], store)


def station_name(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def command(reason: str = "test", *, issued: float | None = None, command_id: str | None = None) -> bytes:
    return json.dumps({"v": 1, "id": command_id or uuid.uuid4().hex[:12], "issued_unix_s": issued or time.time(),
                       "reason": reason}).encode()  # fmt: skip


def mqtt_client(url: str, **kwargs: Any) -> aiomqtt.Client:
    return parse_mqtt_url(url).client(**kwargs)


async def send_command(
    client: aiomqtt.Client, station: str, channel: str, verb: str, payload: bytes | None = None
) -> dict[str, Any]:
    """Publish a command and return the station's reply (the client must be connected; it
    subscribes to the reply topic first)."""
    body = payload or command()
    wanted = json.loads(body).get("id") if body.startswith(b"{") else None
    await client.subscribe(command_topic(station, channel, verb) + "/reply", qos=1)
    await client.publish(command_topic(station, channel, verb), body, qos=1)
    return await next_message(client, lambda p: p.get("type") == "reply" and p.get("id") == wanted)


async def next_message(client: aiomqtt.Client, match: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """The next JSON message (already subscribed) that ``match`` accepts."""
    async for message in client.messages:
        try:
            payload = json.loads(message.payload) if isinstance(message.payload, (bytes, bytearray)) else None
        except ValueError:
            continue
        if isinstance(payload, dict) and match(payload):
            return payload
    raise AssertionError("the message stream ended")


async def clear_retained(url: str, station: str, channels: list[str]) -> None:
    """Remove what a test station left retained on a shared broker."""
    async with mqtt_client(url) as client:
        for topic in [f"licycler/{station}/status", f"licycler/{station}/run"] + [
            f"licycler/{station}/{c}/state" for c in channels
        ]:
            await client.publish(topic, b"", qos=1, retain=True)
