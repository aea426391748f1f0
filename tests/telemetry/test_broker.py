"""Telemetry and remote control against real Mosquitto brokers: the machine's, and one started here
with a password file and an ACL."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiomqtt
import numpy as np
import pytest

from licycler.clock import RealTimeClock
from licycler.drivers.keithley2450 import Keithley2450
from licycler.engine import ChannelSetup, RunController, RunState
from licycler.engine.states import TERMINAL
from licycler.events import EventLog, FanOut
from licycler.safety import ChannelSupervisor, Limits, LimitStack
from licycler.sim_instruments.dummy_cell import DummyCell
from licycler.sim_instruments.keithley2450 import Keithley2450 as Keithley2450Emulation
from licycler.sim_instruments.scpi.server import ScpiTcpServer
from licycler.store import Store
from licycler.telemetry import TelemetryOptions, attach, close_telemetry, command_topic, parse_mqtt_url, validate

from .helpers import (
    clear_retained,
    command,
    controller,
    long_schedule,
    mqtt_client,
    next_message,
    schedule,
    send_command,
    station_name,
)
from .services import Mosquitto, ensure_system_broker, make_certificates, mosquitto

FAST = TelemetryOptions(sample_interval_s=0.05, status_interval_s=0.5, drain_timeout_s=10.0)

STATION = "bench-1"
ACL = f"""\
user station
topic readwrite licycler/{STATION}/#
topic read licycler/_recorder/+/status

user operator
topic write licycler/{STATION}/+/cmd/+
topic read licycler/#

user visitor
topic read licycler/#
"""
USERS = {"station": "st-secret", "operator": "op-secret", "visitor": "vi-secret"}


@pytest.fixture
def auth_broker(tmp_path: Path) -> Iterator[Mosquitto]:
    with mosquitto(tmp_path, USERS, ACL) as broker:
        yield broker


async def test_a_subscriber_on_the_machines_broker_sees_valid_payloads_of_the_whole_run(tmp_path: Path) -> None:
    url = ensure_system_broker()
    station = station_name("sub")
    store = Store(f"sqlite:///{tmp_path / 'station.db'}")
    ctl = controller(schedule(3), store, ["ch1", "ch2"])
    seen: list[tuple[str, dict[str, Any]]] = []
    try:
        async with mqtt_client(url) as sub:
            await sub.subscribe(f"licycler/{station}/#", qos=1)
            telemetry = attach(ctl, url, station, options=FAST)
            states = await ctl.run()
            await close_telemetry(ctl, 2.0)  # a shared broker may know a recorder that is away: do not wait long
            assert telemetry.published()
            async for message in sub.messages:  # until the station says it is offline
                payload = json.loads(message.payload)  # type: ignore[arg-type]
                seen.append((str(message.topic), payload))
                if payload["type"] == "status" and payload["status"] == "offline":
                    break
    finally:
        await clear_retained(url, station, ["ch1", "ch2"])
    assert states == {"ch1": RunState.COMPLETED, "ch2": RunState.COMPLETED}
    for topic, payload in seen:
        validate(payload["type"], payload)  # every payload follows its schema file
        assert topic.startswith(f"licycler/{station}/")
        assert payload["v"] == 1
    by_type: dict[str, list[dict[str, Any]]] = {}
    for topic, payload in seen:
        by_type.setdefault(payload["type"], []).append(payload)
        if "channel" in payload:
            assert topic.split("/")[2] == payload["channel"]
    for ch in ("ch1", "ch2"):
        cycles = [p for p in by_type["cycle"] if p["channel"] == ch]
        assert [c["cycle"] for c in cycles] == [1, 2, 3]
        stored = store.cycles(ctl.run_id, ch)
        assert [c["ce"] for c in cycles] == [c["ce"] for c in stored]
        assert all(c["ce"] == pytest.approx(1.0) for c in cycles)  # a resistor gives back what it took
        samples = [p for p in by_type["samples"] if p["channel"] == ch]
        seq = np.concatenate([p["seq"] for p in samples])
        voltage = np.concatenate([p["voltage_v"] for p in samples])
        recorded = store.samples(ctl.run_id, ch)
        assert np.array_equal(seq, recorded.seq)
        assert np.array_equal(voltage, recorded.voltage_v)
        assert set(np.round(voltage[voltage != 0], 12)) == {-0.05, 0.05}  # 1 mA through 50 ohm, both ways
        final_state = [p for p in by_type["state"] if p["channel"] == ch][-1]
        assert final_state["state"] == "completed"
    runs = by_type["run"]
    assert [r["status"] for r in runs] == ["running", "completed"]
    assert [s["status"] for s in by_type["status"]][-1] == "offline"
    assert telemetry.stats()["samples_dropped"] == 0


@pytest.fixture
async def running_station(
    auth_broker: Mosquitto, tmp_path: Path
) -> AsyncIterator[tuple[RunController, str, asyncio.Task[dict[str, RunState]]]]:
    """A run on a paced dummy channel, publishing as user ``station`` on the broker with an ACL."""
    station = STATION  # the broker is this test's own
    ctl = controller(long_schedule(), Store(f"sqlite:///{tmp_path / 'st.db'}"), ["ch1"], speed=50.0)
    async with mqtt_client(auth_broker.url("visitor")) as watcher:
        await watcher.subscribe(f"licycler/{station}/ch1/state", qos=1)
        attach(ctl, auth_broker.url("station"), station, options=FAST)
        task = asyncio.create_task(ctl.run())
        await next_message(watcher, lambda p: p.get("state") == "running")
        yield ctl, station, task
        ctl.abort()
        await asyncio.wait_for(task, 10)
        await close_telemetry(ctl, 2.0)


async def test_wrong_password_and_commands_outside_the_acl_are_refused(
    auth_broker: Mosquitto, running_station: tuple[RunController, str, Any]
) -> None:
    ctl, station, _ = running_station
    with pytest.raises(aiomqtt.MqttError):  # a wrong password never gets a connection
        async with mqtt_client(auth_broker.url("operator", "wrong")) as intruder:
            await intruder.publish(command_topic(station, "ch1", "estop"), command(), qos=1)
    with pytest.raises(aiomqtt.MqttError):
        async with mqtt_client(auth_broker.url()) as anonymous:
            await anonymous.publish(command_topic(station, "*", "abort"), command(), qos=1)
    async with mqtt_client(auth_broker.url("visitor")) as visitor:  # may read, may not command
        await visitor.publish(command_topic(station, "ch1", "estop"), command(), qos=1)  # PUBACKed, then dropped
        await visitor.publish(command_topic(station, "*", "abort"), command(), qos=1)
    async with mqtt_client(auth_broker.url("operator")) as operator:
        reply = await send_command(operator, station, "ch1", "pause")
    assert reply["ok"], reply
    telemetry_stats = ctl.events.sinks[0].stats()  # type: ignore[attr-defined]
    assert telemetry_stats["commands_accepted"] == 1  # the operator's pause, and nothing before it
    assert telemetry_stats["commands_refused"] == 0
    supervisor = ctl.safety.supervisors["ch1"]
    assert supervisor.tripped is None  # no estop reached the station
    assert ctl.runners["ch1"].machine.state in (RunState.RUNNING, RunState.PAUSED)


async def test_operator_commands_are_validated_and_carried_out(
    auth_broker: Mosquitto, running_station: tuple[RunController, str, Any]
) -> None:
    ctl, station, run = running_station
    async with mqtt_client(auth_broker.url("operator")) as operator:
        await operator.subscribe(f"licycler/{station}/ch1/state", qos=1)
        stale = await send_command(operator, station, "ch1", "pause", command(issued=time.time() - 3600))
        assert not stale["ok"]
        assert "ago" in stale["error"]
        bad = await send_command(operator, station, "ch1", "pause", b'{"v": 1, "id": "x1"}')
        assert not bad["ok"]
        assert "issued_unix_s" in bad["error"]
        unknown = await send_command(operator, station, "nope", "pause")
        assert not unknown["ok"]
        assert "no channel" in unknown["error"]
        verb = await send_command(operator, station, "ch1", "explode")
        assert not verb["ok"]
        assert ctl.runners["ch1"].machine.state is RunState.RUNNING
        assert (await send_command(operator, station, "ch1", "pause"))["ok"]
        await next_message(operator, lambda p: p.get("type") == "state" and p["state"] == "paused")
        assert (await send_command(operator, station, "*", "resume"))["ok"]
        await next_message(operator, lambda p: p.get("type") == "state" and p["state"] == "running")
        assert (await send_command(operator, station, "ch1", "abort"))["ok"]
        await next_message(operator, lambda p: p.get("type") == "state" and p["state"] == "aborted")
    await asyncio.wait_for(asyncio.shield(run), 10)  # the run's log is in its store once it has ended
    decisions = [e for e in ctl.store.events(ctl.run_id, "ch1") if e["source"] == "telemetry"]  # type: ignore[union-attr]
    assert [e["cause"] for e in decisions] == ["remote_pause", "remote_resume", "remote_abort"]


async def _query(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, line: str) -> str:
    writer.write(line.encode() + b"\n")
    await writer.drain()
    return (await reader.readline()).decode().strip()


async def test_estop_over_mqtt_turns_an_emulated_2450_output_off_within_200_ms(auth_broker: Mosquitto) -> None:
    clock = RealTimeClock()
    emulation = Keithley2450Emulation(DummyCell(0.0, 50.0), clock, noise=False)
    async with ScpiTcpServer(emulation) as server:
        driver = Keithley2450.for_resource(server.resource, timeout_s=2.0)
        await driver.connect()
        limits = LimitStack()
        limits.push("instrument", Limits(voltage_min_v=-21.0, voltage_max_v=21.0, current_max_a=1.05))
        supervisor = ChannelSupervisor("A1", driver, clock=clock, events=FanOut(), limits=limits)
        log = EventLog()
        ctl = RunController(long_schedule(), [ChannelSetup("A1", supervisor, clock, instrument="2450")], None,
                            mode="station", events=FanOut(log))  # fmt: skip
        station = STATION
        attach(ctl, auth_broker.url("station"), station, options=FAST)
        run = asyncio.create_task(ctl.run())
        host, port = server.resource.split("::")[1:3]
        reader, writer = await asyncio.open_connection(host, int(port))  # the test's own line to the instrument
        try:
            async with mqtt_client(auth_broker.url("operator")) as operator:
                await operator.subscribe(f"licycler/{station}/A1/state", qos=1)
                await operator.subscribe(f"licycler/{station}/A1/cmd/estop/reply", qos=1)
                await next_message(operator, lambda p: p.get("state") == "running")
                await log.wait_for(kind="armed")
                while await _query(reader, writer, ":OUTP?") != "1":  # until the runner has turned it on
                    await asyncio.sleep(0)
                start = time.perf_counter()
                await operator.publish(command_topic(station, "A1", "estop"), command("test estop"), qos=1)
                while await _query(reader, writer, ":OUTP?") != "0":
                    pass
                off_after_s = time.perf_counter() - start
                reply = await next_message(operator, lambda p: p.get("type") == "reply")
            states = await asyncio.wait_for(run, 10)
        finally:
            writer.close()
            await close_telemetry(ctl, 2.0)
            await driver.close()
    print(f"estop over MQTT: output queried off {off_after_s * 1e3:.1f} ms after publishing")
    assert reply["ok"], reply
    assert off_after_s < 0.2, f"output off {off_after_s * 1e3:.0f} ms after the estop was published"
    assert await _smode_is_high_impedance(emulation)
    assert states["A1"] in TERMINAL
    assert states["A1"] is not RunState.COMPLETED
    assert any(e.kind == "trip" and e.cause == "estop" for e in log.events)
    assert any(e.cause == "remote_estop" for e in log.events)


async def _smode_is_high_impedance(emulation: Keithley2450Emulation) -> bool:
    return str(emulation.smode.get("CURR", "")).upper().startswith("HIMP")


async def test_telemetry_over_tls_with_a_password(tmp_path: Path) -> None:
    ca, cert, key = make_certificates(tmp_path)
    with mosquitto(tmp_path, USERS, ACL, tls=(ca, cert, key)) as broker:
        tls = f"mqtts://{{}}@127.0.0.1:{broker.port}?ca={ca}"
        station = STATION
        ctl = controller(schedule(2), None, ["ch1"])
        async with mqtt_client(tls.format("visitor:vi-secret")) as watcher:
            await watcher.subscribe(f"licycler/{station}/ch1/cycle", qos=1)
            attach(ctl, tls.format("station:st-secret"), station, options=FAST)
            await ctl.run()
            first = await next_message(watcher, lambda p: p.get("type") == "cycle")
            await close_telemetry(ctl)
        assert first["cycle"] == 1
        with pytest.raises(aiomqtt.MqttError):  # TLS without the lab's CA: the certificate is not trusted
            async with mqtt_client(f"mqtts://visitor:vi-secret@127.0.0.1:{broker.port}"):
                pass
        plain = dataclasses.replace(parse_mqtt_url(broker.url("visitor")), timeout_s=0.5)
        with pytest.raises(aiomqtt.MqttError):  # plain TCP to a TLS listener: no CONNACK ever comes
            async with plain.client():
                pass
