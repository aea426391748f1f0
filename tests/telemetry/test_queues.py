"""The station's queues, topics, URLs and payload schemas, without a broker."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from jsonschema import Draft202012Validator

from licycler.errors import UserError
from licycler.events import Event
from licycler.store.sql import SampleRows
from licycler.telemetry import Outbox, Record, SampleBuffer, parse_mqtt_url, parse_topic, schema
from licycler.telemetry.payloads import (
    PAYLOAD_TYPES,
    PayloadError,
    decode,
    encode,
    event_payload,
    sample_payload,
    sample_rows_from_payload,
)
from licycler.telemetry.topics import channel_topic, command_topic, reply_topic

SCHEMA_DIR = Path(__file__).parents[2] / "licycler" / "telemetry" / "schema"


def rows(first: int, n: int) -> SampleRows:
    seq = np.arange(first, first + n, dtype=np.int64)
    t = seq.astype(np.float64)
    return SampleRows(seq, t, 0.1 * t, np.full(n, -1e-3), -1e-3 * t, np.ones(n, np.int64), np.ones(n, np.int64))


def test_outbox_keeps_records_until_a_recorder_acknowledges_them() -> None:
    box = Outbox(max_records=10)
    for k in range(3):
        box.put(Record(f"t/{k}", b"x", f"cycle/r/ch/{k}"))
    box.put(Record("t/state", b"y", None))
    batch = box.take(10)
    assert [r.topic for _, r in batch] == ["t/0", "t/1", "t/2", "t/state"]
    for rid, _ in batch:
        box.sent(rid, 1.0)
    assert len(box) == 3  # the keyless record is done at PUBACK; the keyed ones wait for a recorder
    assert not box.drained(need_acks=True)
    assert box.drained(need_acks=False)
    assert box.ack(["cycle/r/ch/0", "cycle/r/ch/2", "unknown"]) == 2
    box.resend_all()
    assert [r.topic for _, r in box.take(10)] == ["t/1"]


def test_outbox_bound_evicts_sent_records_before_unsent_ones() -> None:
    box = Outbox(max_records=3)
    for k in range(3):
        box.put(Record(f"t/{k}", b"x", f"k{k}"))
    (rid, _), = box.take(1)
    box.sent(rid, 0.0)
    box.put(Record("t/3", b"x", "k3"))  # full: the sent (broker has it) record goes first
    assert (box.evicted, box.dropped) == (1, 0)
    box.put(Record("t/4", b"x", "k4"))  # full of unsent records: the oldest never leaves
    assert (box.evicted, box.dropped) == (1, 1)
    assert [r.topic for _, r in box.take(10)] == ["t/2", "t/3", "t/4"]


def test_outbox_replaces_a_record_with_the_same_key_and_resends_stale_ones() -> None:
    box = Outbox()
    box.put(Record("a", b"old", "run/r/running"))
    box.put(Record("a", b"new", "run/r/running"))
    (rid, record), = box.take(5)
    assert record.payload == b"new"
    box.sent(rid, 10.0)
    assert box.resend_older(now_s=20.0, age_s=30.0) == 0
    assert box.resend_older(now_s=41.0, age_s=30.0) == 1
    assert [r.payload for _, r in box.take(5)] == [b"new"]


def test_sample_buffer_drops_the_oldest_and_counts_per_channel() -> None:
    buf = SampleBuffer(max_rows=25)
    buf.add("r", "a", rows(0, 10))
    buf.add("r", "b", rows(0, 10))
    buf.add("r", "a", rows(10, 10))  # 30 > 25: a's first block goes
    assert buf.dropped == {"a": 10}
    assert buf.rows == 20
    taken = {ch: r for _, ch, r in buf.take()}
    assert taken["a"].seq.tolist() == list(range(10, 20))
    assert taken["b"].seq.tolist() == list(range(10))
    assert buf.rows == 0


def test_sample_payload_round_trips_and_turns_non_finite_readings_into_null() -> None:
    r = rows(5, 4)
    r.voltage_v[2] = np.nan
    payload = sample_payload(r, station="s1", run_id="run1", channel="ch1", dropped=3)
    data = encode(payload)
    assert b"NaN" not in data
    back = decode("samples", data)
    assert back["voltage_v"][2] is None
    restored = sample_rows_from_payload(back)
    assert np.array_equal(restored.seq, r.seq)
    assert np.array_equal(restored.t_s, r.t_s)
    assert np.allclose(restored.voltage_v, r.voltage_v, equal_nan=True)


def test_event_values_stay_strict_json() -> None:
    event = Event(1.5, "safety", "trip", "overvoltage", "V > max", "ch1", {"v": float("inf"), "x": float("nan"),
                                                                           "n": np.float64(2.0), "ok": True})
    payload = event_payload(event, station="s", run_id="r", channel="ch1", seq=3, key="event/r/ch1/3")
    back = decode("event", encode(payload))
    assert back["values"] == {"v": "Infinity", "x": "NaN", "n": 2.0, "ok": True}


def test_schemas_are_valid_json_schema_files() -> None:
    files = sorted(p.stem for p in SCHEMA_DIR.glob("*.json"))
    assert set(files) == {"common", *PAYLOAD_TYPES}
    for name in PAYLOAD_TYPES:
        Draft202012Validator.check_schema(json.loads((SCHEMA_DIR / f"{name}.json").read_text()))
        assert schema(name)["properties"]["v"] == {"$ref": "common.json#/$defs/version"}


def test_a_payload_of_another_version_or_with_extra_fields_is_refused() -> None:
    good = {"v": 1, "id": "a1", "issued_unix_s": 1.7e9}
    decode("command", json.dumps(good))
    for bad in ({**good, "v": 2}, {**good, "extra": 1}, {"v": 1, "id": "a1"}, {**good, "id": ""}):
        with pytest.raises(PayloadError):
            decode("command", json.dumps(bad))
    with pytest.raises(PayloadError, match="not JSON"):
        decode("command", b"\xff{")


def test_topics_round_trip() -> None:
    assert parse_topic(channel_topic("st1", "ch1", "cycle")) == parse_topic("licycler/st1/ch1/cycle")
    t = parse_topic(command_topic("st1", "*", "estop"))
    assert t is not None
    assert (t.kind, t.station, t.channel, t.verb) == ("cmd", "st1", "*", "estop")
    r = parse_topic(reply_topic("st1", "ch1", "pause"))
    assert r is not None
    assert (r.kind, r.verb) == ("reply", "pause")
    assert parse_topic("licycler/st1/ack").kind == "ack"  # type: ignore[union-attr]
    assert parse_topic("licycler/_recorder/main/status").kind == "recorder"  # type: ignore[union-attr]
    assert parse_topic("other/st1/ch1/cycle") is None
    assert parse_topic("licycler/st1/ch1/unknown") is None


def test_mqtt_urls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    c = parse_mqtt_url("mqtt://op:p%40ss@broker.lab:1884")
    assert (c.host, c.port, c.username, c.password, c.tls) == ("broker.lab", 1884, "op", "p@ss", False)
    assert "p@ss" not in c.safe_url
    assert "p@ss" not in repr(c)
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    t = parse_mqtt_url(f"mqtts://op@broker.lab?ca={ca}")
    assert (t.port, t.tls, t.ca_file) == (8883, True, str(ca))
    monkeypatch.setenv("LICYCLER_MQTT_PASSWORD", "from-env")
    assert parse_mqtt_url("mqtt://op@h").password == "from-env"
    secret = tmp_path / "pw"
    secret.write_text("from-file\n")
    assert parse_mqtt_url(f"mqtt://op@h?password_file={secret}").password == "from-file"
    for bad in ("http://h", "mqtt://", "mqtt://h:99999", "mqtt://h?bogus=1", "mqtts://h?ca=/nonexistent"):
        with pytest.raises(UserError):
            parse_mqtt_url(bad)
