"""MQTT topic names: one tree per station, one branch per channel.

```
licycler/<station>/status                      station online/offline (retained; the last will)
licycler/<station>/run                         the run record (retained, QoS 1)
licycler/<station>/ack                         a recorder's acknowledgements (QoS 1)
licycler/<station>/<channel>/state             run state of a channel (retained, QoS 1)
licycler/<station>/<channel>/samples           sample batches (QoS 0)
licycler/<station>/<channel>/cycle             a closed cycle (QoS 1)
licycler/<station>/<channel>/step              an ended step (QoS 1)
licycler/<station>/<channel>/event             an event (QoS 1)
licycler/<station>/<channel>/cmd/<verb>        remote control: pause, resume, abort, estop
licycler/<station>/<channel>/cmd/<verb>/reply  the station's reply to a command
licycler/_recorder/<name>/status               a recorder online/offline (retained; the last will)
```

``<channel>`` is ``*`` in a command for every channel of the station.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from licycler.errors import UserError

__all__ = [
    "ALL_CHANNELS",
    "CHANNEL_KINDS",
    "COMMAND_VERBS",
    "ROOT",
    "ParsedTopic",
    "ack_topic",
    "channel_topic",
    "check_name",
    "command_topic",
    "parse_topic",
    "recorder_status_topic",
    "reply_topic",
    "station_topic",
]

ROOT = "licycler"
ALL_CHANNELS = "*"
CHANNEL_KINDS = ("state", "samples", "cycle", "step", "event")
STATION_KINDS = ("status", "run", "ack")
COMMAND_VERBS = ("pause", "resume", "abort", "estop")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")


def check_name(name: str, what: str) -> str:
    """``name`` if it can be one level of a topic (letters, digits, ``._:-``, at most 64, not
    starting with ``_``); a :class:`UserError` otherwise."""
    if not _NAME.match(name):
        raise UserError(
            f"{what} name {name!r} cannot be used in MQTT topics: use letters, digits and . _ : - "
            "(at most 64, starting with a letter or digit)"
        )
    return name


def station_topic(station: str, kind: str) -> str:
    return f"{ROOT}/{station}/{kind}"


def ack_topic(station: str) -> str:
    return station_topic(station, "ack")


def channel_topic(station: str, channel: str, kind: str) -> str:
    return f"{ROOT}/{station}/{channel}/{kind}"


def command_topic(station: str, channel: str, verb: str) -> str:
    return f"{ROOT}/{station}/{channel}/cmd/{verb}"


def reply_topic(station: str, channel: str, verb: str) -> str:
    return command_topic(station, channel, verb) + "/reply"


def recorder_status_topic(name: str) -> str:
    return f"{ROOT}/_recorder/{name}/status"


@dataclass(frozen=True)
class ParsedTopic:
    """What a topic names: ``kind`` is a station kind, a channel kind, ``cmd``, ``reply`` or
    ``recorder``; ``channel`` and ``verb`` where they apply."""

    station: str
    kind: str
    channel: str | None = None
    verb: str | None = None


def parse_topic(topic: str) -> ParsedTopic | None:
    """The parts of a licycler topic, or None for anything else."""
    parts = topic.split("/")
    if len(parts) < 3 or parts[0] != ROOT:
        return None
    if parts[1] == "_recorder":
        return ParsedTopic(parts[2], "recorder") if len(parts) == 4 and parts[3] == "status" else None
    station = parts[1]
    if len(parts) == 3:
        return ParsedTopic(station, parts[2]) if parts[2] in STATION_KINDS else None
    channel = parts[2]
    if len(parts) == 4 and parts[3] in CHANNEL_KINDS:
        return ParsedTopic(station, parts[3], channel)
    if len(parts) in (5, 6) and parts[3] == "cmd":
        if len(parts) == 6:
            return ParsedTopic(station, "reply", channel, parts[4]) if parts[5] == "reply" else None
        return ParsedTopic(station, "cmd", channel, parts[4])
    return None
