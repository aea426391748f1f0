"""JSON payloads of every telemetry topic, their schema files, and validation.

Each payload is a JSON object with ``"v": 1`` (the format version) and ``"type"``; the JSON Schema
of each type is ``licycler/telemetry/schema/<type>.json`` (draft 2020-12; documented in
``docs/telemetry.md``). Payloads are strict JSON: a non-finite number in a sample array is
``null``; in an event's values it is the string ``"NaN"``, ``"Infinity"`` or ``"-Infinity"``.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from functools import cache
from importlib import resources
from typing import Any

import numpy as np
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from licycler.events import Event
from licycler.store.sql import SampleRows

__all__ = [
    "PAYLOAD_TYPES",
    "PAYLOAD_VERSION",
    "PayloadError",
    "decode",
    "encode",
    "event_from_payload",
    "event_payload",
    "now_s",
    "record_key",
    "row_payload",
    "sample_payload",
    "sample_rows_from_payload",
    "schema",
    "validate",
]

PAYLOAD_VERSION = 1
PAYLOAD_TYPES = (
    "state", "samples", "cycle", "step", "event", "run", "status", "command", "reply", "ack", "recorder",
)  # fmt: skip
_SCHEMA_BASE = "https://licycler.invalid/telemetry/"


class PayloadError(ValueError):
    """A payload that is not JSON or does not follow its schema (the message says where)."""


@cache
def _registry() -> Registry[Any]:
    folder = resources.files("licycler.telemetry").joinpath("schema")
    resources_ = []
    for name in ("common", *PAYLOAD_TYPES):
        contents = json.loads(folder.joinpath(f"{name}.json").read_text(encoding="utf-8"))
        resources_.append((_SCHEMA_BASE + f"{name}.json", Resource.from_contents(contents)))
    return Registry().with_resources(resources_)


def schema(kind: str) -> dict[str, Any]:
    """The JSON Schema of payload type ``kind``."""
    if kind not in PAYLOAD_TYPES:
        raise KeyError(f"no payload type {kind!r} (types: {', '.join(PAYLOAD_TYPES)})")
    contents: dict[str, Any] = _registry()[_SCHEMA_BASE + f"{kind}.json"].contents
    return contents


@cache
def _validator(kind: str) -> Draft202012Validator:
    return Draft202012Validator(schema(kind), registry=_registry())


def validate(kind: str, payload: Any) -> None:
    """Raise :class:`PayloadError` unless ``payload`` follows the schema of ``kind``."""
    error = next(iter(_validator(kind).iter_errors(payload)), None)
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "(top)"
        raise PayloadError(f"{kind} payload: {where}: {error.message[:200]}")


def decode(kind: str, data: bytes | bytearray | str) -> dict[str, Any]:
    """Parse and validate a payload of type ``kind``."""
    try:
        payload = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise PayloadError(f"{kind} payload is not JSON: {exc}") from None
    validate(kind, payload)
    if not isinstance(payload, dict):  # the schemas only admit objects
        raise PayloadError(f"{kind} payload is not an object")
    return payload


def encode(payload: Mapping[str, Any]) -> bytes:
    """Compact strict JSON (a non-finite float is a bug here: sanitise before)."""
    return json.dumps(payload, separators=(",", ":"), allow_nan=False).encode()


def record_key(kind: str, run_id: str, channel: str | None = None, number: int | str | None = None) -> str:
    """The identity of a reliable record (what a recorder acknowledges)."""
    parts = [kind, run_id] + ([channel] if channel is not None else []) + ([str(number)] if number is not None else [])
    return "/".join(parts)


def _finite_or_none(x: float | None) -> float | None:
    return x if x is None or math.isfinite(x) else None


def _scalar(value: Any) -> float | str | bool | None:
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        x = float(value)
        if math.isfinite(x):
            return x
        return "NaN" if math.isnan(x) else ("Infinity" if x > 0 else "-Infinity")
    if value is None or isinstance(value, str):
        return value
    return str(value)


def event_payload(
    event: Event, *, station: str, run_id: str, channel: str, seq: int | None, key: str | None
) -> dict[str, Any]:
    """The payload of ``event`` as sent on ``channel`` with its number ``seq`` in that channel."""
    return {
        "v": PAYLOAD_VERSION, "type": "event", "station": station, "channel": channel, "run_id": run_id, "key": key,
        "seq": seq, "time_s": _finite_or_none(float(event.time_s)) or 0.0, "unix_time_s": float(event.wall_time_s),
        "source": event.source, "kind": event.kind, "cause": event.cause, "message": event.message,
        "values": {str(k): _scalar(v) for k, v in event.values.items()},
    }  # fmt: skip


def event_from_payload(payload: Mapping[str, Any]) -> Event:
    """The :class:`Event` a payload describes (event values keep their JSON form)."""
    return Event(
        payload["time_s"], payload["source"], payload["kind"], payload["cause"], payload["message"],
        payload["channel"], dict(payload["values"]), payload["unix_time_s"],
    )  # fmt: skip


def _column(values: np.ndarray) -> list[Any]:
    """A float column as a JSON list: non-finite entries become null (checked per block)."""
    listed: list[Any] = values.tolist()
    if not np.isfinite(values).all():
        listed = [x if math.isfinite(x) else None for x in listed]
    return listed


def sample_payload(
    rows: SampleRows, *, station: str, run_id: str, channel: str, dropped: int = 0
) -> dict[str, Any]:
    """A ``samples`` payload holding ``rows`` (columns, SI)."""
    return {
        "v": PAYLOAD_VERSION, "type": "samples", "station": station, "channel": channel, "run_id": run_id,
        "seq": rows.seq.tolist(), "t_s": _column(rows.t_s), "voltage_v": _column(rows.voltage_v),
        "current_a": _column(rows.current_a), "charge_c": _column(rows.charge_c), "step_seq": rows.step_seq.tolist(),
        "cycle": rows.cycle.tolist(), "pressure_pa": None if rows.pressure_pa is None else _column(rows.pressure_pa),
        "dropped": dropped,
    }  # fmt: skip


def sample_rows_from_payload(payload: Mapping[str, Any]) -> SampleRows:
    """The :class:`SampleRows` of a ``samples`` payload (null readings back to NaN)."""

    def floats(name: str) -> np.ndarray:
        return np.array(payload[name], dtype=np.float64)  # numpy turns null (None) into NaN

    n = len(payload["seq"])
    names = ("t_s", "voltage_v", "current_a", "charge_c", "step_seq", "cycle")
    if any(len(payload[k]) != n for k in names) or (payload.get("pressure_pa") is not None
                                                     and len(payload["pressure_pa"]) != n):  # fmt: skip
        raise PayloadError("samples payload: columns of different lengths")
    pressure = payload.get("pressure_pa")
    return SampleRows(
        np.array(payload["seq"], dtype=np.int64), floats("t_s"), floats("voltage_v"), floats("current_a"),
        floats("charge_c"), np.array(payload["step_seq"], dtype=np.int64), np.array(payload["cycle"], dtype=np.int64),
        None if pressure is None else floats("pressure_pa"),
    )  # fmt: skip


def row_payload(
    kind: str, row: Mapping[str, Any], *, station: str, run_id: str, channel: str, key: str
) -> dict[str, Any]:
    """A ``cycle`` or ``step`` payload from a row of the store's table of that kind."""
    fields = {k: (_finite_or_none(v) if isinstance(v, float) else v) for k, v in row.items()
              if k not in ("run_id", "channel")}  # fmt: skip
    return {"v": PAYLOAD_VERSION, "type": kind, "station": station, "channel": channel, "run_id": run_id, "key": key,
            **fields}  # fmt: skip


def now_s() -> float:
    """Unix time, s."""
    return time.time()
