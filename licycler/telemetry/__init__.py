"""Live telemetry and remote control over MQTT (aiomqtt), for a fleet of stations and a recorder.

A station publishes its run on ``licycler/<station>/<channel>/{state,samples,cycle,step,event}``
(see :mod:`licycler.telemetry.topics`, payload schemas in ``schema/``, ``docs/telemetry.md``)
and takes ``pause``/``resume``/``abort``/``estop`` commands on ``.../cmd/<verb>``. One call wires
it onto a run: ``attach(controller, "mqtt://host", "bench-1")`` before ``controller.run()``, and
``await close_telemetry(controller)`` after (or ``run_with_telemetry(controller, url, station)``).
"""

from licycler.telemetry.attach import (
    attach,
    close_telemetry,
    default_station_name,
    run_with_telemetry,
    telemetry_hook,
    telemetry_options,
)
from licycler.telemetry.commands import CommandHandler, CommandResult
from licycler.telemetry.connection import Backoff, MqttConfig, parse_mqtt_url, stay_connected
from licycler.telemetry.outbox import Outbox, Record, SampleBuffer
from licycler.telemetry.payloads import PAYLOAD_TYPES, PAYLOAD_VERSION, PayloadError, decode, encode, schema, validate
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
