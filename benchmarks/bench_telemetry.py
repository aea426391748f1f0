"""Telemetry: 64 channels x 10 Hz published (batched) from a station, recorded by a recorder process.

Figures, all measured in the same run against a Mosquitto broker started here on a free port:

- the station's CPU (process time / wall time, % of one core) while 64 channels deliver one sample
  every 100 ms each (and close a cycle every 20 s each), with the telemetry batching each
  channel's samples into one QoS 0 message a second: against the required 5 %, and against a raw
  aiomqtt loop publishing the same number of messages of the same size;
- the recorder (``licycler recorder --samples`` in its own process, SQLite): the share of the
  published samples in its database once the station has stopped, its lag, and its CPU;
- an emergency stop sent over MQTT: the time until an emulated Keithley 2450 reads its output off.
"""

from __future__ import annotations

import asyncio
import getpass
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import numpy as np

from benchmarks.harness import Result, ratio_result
from licycler.clock import RealTimeClock
from licycler.drivers.keithley2450 import Keithley2450
from licycler.engine import ChannelSetup, RunController
from licycler.events import FanOut
from licycler.protocols import parse_schedule
from licycler.safety import ChannelSupervisor, Limits, LimitStack
from licycler.sim_instruments.dummy_cell import DummyCell
from licycler.sim_instruments.keithley2450 import Keithley2450 as Keithley2450Emulation
from licycler.sim_instruments.scpi.server import ScpiTcpServer
from licycler.store.sql import SampleRows
from licycler.telemetry import Telemetry, TelemetryOptions, attach, close_telemetry, command_topic, parse_mqtt_url
from licycler.telemetry.payloads import encode, sample_payload
from licycler.yamlsource import load_yaml_text

CHANNELS = 64
RATE_HZ = 10.0
CYCLE_EVERY_S = 20.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Broker:
    """A Mosquitto on a free loopback port for the benchmark's own traffic."""

    def __init__(self, folder: Path) -> None:
        self.port = _free_port()
        conf = folder / "mosquitto.conf"
        conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                        f"set_tcp_nodelay true\nlog_dest stderr\nuser {getpass.getuser()}\n")  # fmt: skip
        self.process = subprocess.Popen(["mosquitto", "-c", str(conf)], stderr=subprocess.PIPE, text=True)
        ready = threading.Event()

        def read() -> None:
            assert self.process.stderr is not None
            for line in self.process.stderr:
                if " running" in line:
                    ready.set()

        threading.Thread(target=read, daemon=True).start()
        if not ready.wait(10):
            raise RuntimeError("mosquitto did not start")
        self.url = f"mqtt://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


def _cpu_s(pid: int) -> float:
    """User + system CPU time of a process (s), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _block(seq: int) -> SampleRows:
    i = np.array([seq], dtype=np.int64)
    t = i * (1.0 / RATE_HZ)
    return SampleRows(i, t, 0.05 + 1e-4 * np.sin(t), np.full(1, -1e-3), -1e-3 * t, np.ones(1, np.int64),
                      np.ones(1, np.int64))  # fmt: skip


def _cycle_row(n: int) -> dict[str, object]:
    return {"cycle": n, "start_s": 20.0 * n, "end_s": 20.0 * n + 20, "charge_plate_c": 0.01, "charge_strip_c": 0.0099,
            "energy_plate_j": 5e-4, "energy_strip_j": 5e-4, "ce": 0.99, "mean_voltage_plate_v": -0.05,
            "mean_voltage_strip_v": 0.05}  # fmt: skip


async def _feed(telemetry: Telemetry, seconds: float) -> int:
    """64 channels, one sample each every 100 ms (as runners hand them over), for ``seconds``."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    tick = 0
    names = [f"ch{k:02d}" for k in range(CHANNELS)]
    per_cycle = int(CYCLE_EVERY_S * RATE_HZ)
    while tick < seconds * RATE_HZ:
        for k, name in enumerate(names):
            telemetry.on_samples("bench", name, _block(tick))
            if (tick + k) % per_cycle == 0:
                telemetry.on_cycle("bench", name, _cycle_row(tick // per_cycle + 1))
        tick += 1
        await asyncio.sleep(max(0.0, start + tick / RATE_HZ - loop.time()))
    return tick * CHANNELS


async def _station(url: str, seconds: float) -> tuple[float, int, Telemetry]:
    options = TelemetryOptions(sample_interval_s=1.0, status_interval_s=5.0)
    telemetry = Telemetry(parse_mqtt_url(url), f"bench-{uuid.uuid4().hex[:6]}", options=options)
    telemetry.start()
    await asyncio.wait_for(telemetry.connected.wait(), 10)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    published = await _feed(telemetry, seconds)
    cpu = (time.process_time() - cpu0) / (time.perf_counter() - wall0)
    await telemetry.close(10.0)
    return cpu, published, telemetry


class _NoTelemetry:
    """Takes the hand-over and does nothing: what the feeding alone costs."""

    def on_samples(self, run_id: str, channel: str, rows: SampleRows) -> None:
        return None

    def on_cycle(self, run_id: str, channel: str, row: dict[str, object]) -> None:
        return None


async def _feed_alone(seconds: float) -> float:
    cpu0, wall0 = time.process_time(), time.perf_counter()
    await _feed(_NoTelemetry(), seconds)  # type: ignore[arg-type]
    return (time.process_time() - cpu0) / (time.perf_counter() - wall0)


async def _raw_loop(url: str, seconds: float, payload: bytes) -> float:
    """The same traffic with aiomqtt alone: 64 pre-encoded messages a second."""
    config = parse_mqtt_url(url)
    async with config.client() as client:
        loop = asyncio.get_running_loop()
        cpu0, wall0, start = time.process_time(), time.perf_counter(), loop.time()
        for second in range(int(seconds)):
            for k in range(CHANNELS):
                await client.publish(f"licycler/raw/ch{k:02d}/samples", payload, 0)
            await asyncio.sleep(max(0.0, start + second + 1 - loop.time()))
        return (time.process_time() - cpu0) / (time.perf_counter() - wall0)


def _count_samples(db: Path) -> int:
    import sqlite3

    if not db.exists():
        return 0
    with sqlite3.connect(db) as conn:
        try:
            return int(conn.execute("SELECT coalesce(sum(n), 0) FROM sample_blocks").fetchone()[0])
        except sqlite3.OperationalError:
            return 0


def _estop_schedule() -> object:
    text = """\
name: estop-bench
cell: {chemistry: Li||Li, electrode_area: 1 cm^2}
limits: {voltage_min: -1 V, voltage_max: 1 V}
record: {every: 1 s}
steps:
  - plate: {current: 1 mA/cm^2, until: {time: 86400 s}}
"""
    return parse_schedule(load_yaml_text(text, "estop.yaml"), text, "estop.yaml")


async def _estop_once(url: str) -> float:
    """Publish an estop for a running 2450 channel; seconds until ``:OUTP?`` reads 0."""
    import aiomqtt

    clock = RealTimeClock()
    emulation = Keithley2450Emulation(DummyCell(0.0, 50.0), clock, noise=False)
    async with ScpiTcpServer(emulation) as server:
        driver = Keithley2450.for_resource(server.resource, timeout_s=2.0)
        await driver.connect()
        limits = LimitStack()
        limits.push("instrument", Limits(voltage_min_v=-21.0, voltage_max_v=21.0, current_max_a=1.05))
        supervisor = ChannelSupervisor("A1", driver, clock=clock, events=FanOut(), limits=limits)
        ctl = RunController(_estop_schedule(), [ChannelSetup("A1", supervisor, clock)], None, mode="station")  # type: ignore[arg-type]
        station = f"estop-{uuid.uuid4().hex[:6]}"
        attach(ctl, url, station)
        run = asyncio.create_task(ctl.run())
        host, port = server.resource.split("::")[1:3]
        reader, writer = await asyncio.open_connection(host, int(port))

        async def output() -> str:
            writer.write(b":OUTP?\n")
            await writer.drain()
            return (await reader.readline()).decode().strip()

        try:
            while await output() != "1":
                await asyncio.sleep(0.01)
            async with parse_mqtt_url(url).client() as operator:
                body = json.dumps({"v": 1, "id": "b1", "issued_unix_s": time.time()}).encode()
                start = time.perf_counter()
                await operator.publish(command_topic(station, "A1", "estop"), body, 1)
                while await output() != "0":
                    pass
                elapsed = time.perf_counter() - start
            await asyncio.wait_for(run, 10)
        except aiomqtt.MqttError:
            raise
        finally:
            writer.close()
            await close_telemetry(ctl, 2.0)
            await driver.close()
    return elapsed


def run(quick: bool) -> list[Result]:
    seconds = 4.0 if quick else 15.0
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        broker = _Broker(folder)
        db = folder / "lab.db"
        try:
            recorder = subprocess.Popen(
                [sys.executable, "-m", "licycler", "recorder", "--mqtt", broker.url, "--db", f"sqlite:///{db}",
                 "--samples", "--name", "bench"],
                stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )  # fmt: skip
            assert recorder.stdout is not None
            for line in recorder.stdout:
                if "ready" in line:
                    break
            rec_cpu0, rec_wall0 = _cpu_s(recorder.pid), time.perf_counter()
            cpu, published, telemetry = asyncio.run(_station(broker.url, seconds))
            end = time.perf_counter()
            while _count_samples(db) < published and time.perf_counter() - end < 30:
                time.sleep(0.05)
            lag = time.perf_counter() - end
            written = _count_samples(db)
            rec_cpu = (_cpu_s(recorder.pid) - rec_cpu0) / (time.perf_counter() - rec_wall0)
            estops = [asyncio.run(_estop_once(broker.url)) for _ in range(3 if quick else 7)]  # recorded too
            recorder.send_signal(signal.SIGINT)
            recorder.communicate(timeout=30)
            example = encode(sample_payload(_concat_example(), station="bench", run_id="bench", channel="ch00"))
            raw_cpu = asyncio.run(_raw_loop(broker.url, seconds, example))
            feed_cpu = asyncio.run(_feed_alone(max(2.0, seconds / 3)))
        finally:
            broker.stop()
    stats = telemetry.stats()
    notes = (f"{CHANNELS} ch x {RATE_HZ:g} Hz for {seconds:g} s: {published} samples in "
             f"{stats['messages_published']} messages, dropped {stats['samples_dropped']}")  # fmt: skip
    estop_notes = f"median {1e3 * statistics.median(estops):.1f} ms of {len(estops)}, emulated 2450 over TCP"
    return [
        ratio_result("telemetry CPU, 64 ch x 10 Hz batched", 100 * cpu, "% core", 5.0, "required 5 %",
                     target="<= 1.0", notes=notes),
        ratio_result("telemetry CPU vs raw aiomqtt loop", 100 * cpu, "% core", 100 * raw_cpu,
                     "raw aiomqtt publish (same messages)",
                     notes=f"the raw loop sends pre-encoded payloads; the hand-over of 640 blocks/s alone takes "
                           f"{100 * feed_cpu:.2f} % of the telemetry figure's core"),
        ratio_result("recorder: samples in its database", written, "samples", published, "published",
                     target=">= 1.0", notes=f"all in {lag:.2f} s after the last sample; SQLite"),
        ratio_result("recorder CPU", 100 * rec_cpu, "% core", 100.0, "one core", target="<= 0.5"),
        ratio_result("estop over MQTT to output off (max)", 1e3 * max(estops), "ms", 200.0, "required 200 ms",
                     target="<= 1.0", notes=estop_notes),
    ]  # fmt: skip


def _concat_example() -> SampleRows:
    n = int(RATE_HZ)
    i = np.arange(n, dtype=np.int64)
    t = i / RATE_HZ
    return SampleRows(i, t, 0.05 + 1e-4 * np.sin(t), np.full(n, -1e-3), -1e-3 * t, np.ones(n, np.int64),
                      np.ones(n, np.int64))  # fmt: skip
