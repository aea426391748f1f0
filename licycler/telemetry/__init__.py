"""Live telemetry and remote control over MQTT (aiomqtt), for a fleet of stations and a recorder.

A station publishes its run on ``licycler/<station>/<channel>/{state,samples,cycle,step,event}``
(see :mod:`licycler.telemetry.topics`, payload schemas in ``schema/``, ``docs/telemetry.md``)
and takes ``pause``/``resume``/``abort``/``estop`` commands on ``.../cmd/<verb>``. One call wires
it onto a run: ``attach(controller, "mqtt://host", "bench-1")`` before ``controller.run()``, and
``await close_telemetry(controller)`` after (or ``run_with_telemetry(controller, url, station)``).

The names below are loaded on first use, so importing this package (as ``licycler run`` does for
its ``--mqtt`` option) costs nothing until telemetry is asked for.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from licycler.telemetry.attach import attach, default_station_name, run_with_telemetry
    from licycler.telemetry.commands import CommandHandler, CommandResult
    from licycler.telemetry.connection import Backoff, MqttConfig, parse_mqtt_url, stay_connected
    from licycler.telemetry.hooks import close_telemetry, telemetry_hook, telemetry_options
    from licycler.telemetry.outbox import Outbox, Record, SampleBuffer
    from licycler.telemetry.payloads import (
        PAYLOAD_TYPES,
        PAYLOAD_VERSION,
        PayloadError,
        decode,
        encode,
        schema,
        validate,
    )
    from licycler.telemetry.station import Telemetry, TelemetryOptions
    from licycler.telemetry.topics import (
        ALL_CHANNELS,
        COMMAND_VERBS,
        channel_topic,
        command_topic,
        parse_topic,
        reply_topic,
        station_topic,
    )

_WHERE = {
    "attach": "attach", "default_station_name": "attach", "run_with_telemetry": "attach",
    "CommandHandler": "commands", "CommandResult": "commands",
    "Backoff": "connection", "MqttConfig": "connection", "parse_mqtt_url": "connection", "stay_connected": "connection",
    "close_telemetry": "hooks", "telemetry_hook": "hooks", "telemetry_options": "hooks",
    "Outbox": "outbox", "Record": "outbox", "SampleBuffer": "outbox",
    "PAYLOAD_TYPES": "payloads", "PAYLOAD_VERSION": "payloads", "PayloadError": "payloads", "decode": "payloads",
    "encode": "payloads", "schema": "payloads", "validate": "payloads",
    "Telemetry": "station", "TelemetryOptions": "station",
    "ALL_CHANNELS": "topics", "COMMAND_VERBS": "topics", "channel_topic": "topics", "command_topic": "topics",
    "parse_topic": "topics", "reply_topic": "topics", "station_topic": "topics",
}  # fmt: skip


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'licycler.telemetry' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"licycler.telemetry.{module}"), name)
    globals()[name] = value
    return value


__all__ = [
    "ALL_CHANNELS",
    "COMMAND_VERBS",
    "PAYLOAD_TYPES",
    "PAYLOAD_VERSION",
    "Backoff",
    "CommandHandler",
    "CommandResult",
    "MqttConfig",
    "Outbox",
    "PayloadError",
    "Record",
    "SampleBuffer",
    "Telemetry",
    "TelemetryOptions",
    "attach",
    "channel_topic",
    "close_telemetry",
    "command_topic",
    "decode",
    "default_station_name",
    "encode",
    "parse_mqtt_url",
    "parse_topic",
    "reply_topic",
    "run_with_telemetry",
    "schema",
    "station_topic",
    "stay_connected",
    "telemetry_hook",
    "telemetry_options",
    "validate",
]
