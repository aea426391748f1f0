"""64 channels served by simulated instruments over TCP (emulated Keithley 2450s in a separate process,
on real time) and read at 10 Hz by the engine through the drivers and the safety supervisors, with the
SQLite store, with the default monitors (they process their data mid-step and at the step change): missed
reads and read lateness (p99), against raw asyncio sockets reading the same instruments on the same 10 Hz
schedule in the same run."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.harness import Result, ratio_result

SERVER = """
import asyncio, json, sys
from licycler.clock import RealTimeClock
from licycler.sim_instruments.dummy_cell import DummyCell
from licycler.sim_instruments.keithley2450 import Keithley2450
from licycler.sim_instruments.scpi.server import ScpiTcpServer
async def main(n):
    servers = [ScpiTcpServer(Keithley2450(DummyCell(0.0, 20.0), RealTimeClock(), seed=k)) for k in range(n)]
    for s in servers:
        await s.start()
    print(json.dumps([s.resource for s in servers]), flush=True)
    await asyncio.Event().wait()
asyncio.run(main(int(sys.argv[1])))
"""

SCHEDULE = """\
name: 64-channel read-rate benchmark
cell: {{chemistry: Li||Li, electrode_area: 1 cm^2}}
limits: {{voltage_min: -1 V, voltage_max: 1 V}}
record: {{every: 1 s}}
steps:
  - plate: {{current: 0.1 mA/cm^2, until: {{time: {plate} s}}}}
  - strip: {{current: 0.1 mA/cm^2, until: {{time: {strip} s}}}}
"""
PERIOD_S = 0.1


async def _engine(resources: list[str], seconds: float, db: Path) -> tuple[np.ndarray, int, int]:
    from licycler.clock import RealTimeClock
    from licycler.drivers.keithley2450 import Keithley2450
    from licycler.engine import ChannelSetup, RunController
    from licycler.events import FanOut
    from licycler.protocols import parse_schedule
    from licycler.safety import ChannelSupervisor, Limits, LimitStack
    from licycler.station import INSTRUMENT_LIMITS
    from licycler.store import Store
    from licycler.yamlsource import load_yaml_text

    # a plating step long enough for the monitors to process their data mid-step, then a step change
    text = SCHEDULE.format(plate=0.7 * seconds, strip=0.3 * seconds)
    schedule = parse_schedule(load_yaml_text(text, "bench.yaml"), text, "bench.yaml")
    clock = RealTimeClock()
    setups = []
    for k, resource in enumerate(resources):
        driver = Keithley2450.for_resource(resource, name=f"smu{k}", timeout_s=1.0)
        await driver.connect()
        limits = LimitStack()
        limits.push("instrument", INSTRUMENT_LIMITS["keithley2450"])
        limits.push("station", Limits(voltage_min_v=-2.0, voltage_max_v=2.0, current_max_a=0.01))
        sup = ChannelSupervisor(f"ch{k}", driver, clock=clock, events=FanOut(), limits=limits, read_period_s=PERIOD_S)
        setups.append(ChannelSetup(f"ch{k}", sup, clock))
    controller = RunController(schedule, setups, Store(f"sqlite:///{db}"), mode="station")
    states = await controller.run()
    lateness = np.concatenate([r.reads.lateness_s() for r in controller.runners.values()])
    missed = sum(r.reads.missed for r in controller.runners.values())
    completed = sum(str(s) == "completed" for s in states.values())
    for setup in setups:
        await setup.supervisor.channel.close()
    return lateness, missed, completed


async def _raw(resources: list[str], seconds: float) -> tuple[np.ndarray, int]:
    lateness: list[float] = []
    missed = 0

    async def channel(resource: str) -> None:
        nonlocal missed
        _, host, port, _ = resource.split("::")
        reader, writer = await asyncio.open_connection(host, int(port))
        loop = asyncio.get_running_loop()
        start = loop.time()
        for k in range(int(seconds / PERIOD_S)):
            due = start + k * PERIOD_S
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            late = loop.time() - due
            missed += late > PERIOD_S
            lateness.append(late)
            writer.write(b":READ?\n")
            await writer.drain()
            await reader.readline()
        writer.close()

    await asyncio.gather(*(channel(r) for r in resources))
    return np.array(lateness), missed


def run(quick: bool) -> list[Result]:
    n, seconds = (16, 5.0) if quick else (64, 100.0)
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(n)], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        resources = json.loads(server.stdout.readline())
        raw_late, raw_missed = asyncio.run(_raw(resources, min(seconds, 30.0)))
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            late, missed, completed = asyncio.run(_engine(resources, seconds, Path(tmp) / "bench.db"))
            wall = time.perf_counter() - t0
    finally:
        server.terminate()
        server.wait()
    p99, raw_p99 = float(np.percentile(late, 99)) * 1e3, float(np.percentile(raw_late, 99)) * 1e3
    notes = f"{n} channels x {1 / PERIOD_S:g} Hz for {seconds:g} s: {len(late)} reads, {missed} missed, " \
            f"worst {float(np.max(late)) * 1e3:.1f} ms late, {completed}/{n} completed, {wall:.1f} s wall"  # fmt: skip
    return [
        ratio_result("p99 read lateness, engine + drivers + safety + store", p99, "ms", 10.0, "the 10 ms budget",
                     target="<= 1.0" if not quick else "", notes=notes),
        ratio_result("p99 read lateness vs raw asyncio sockets", p99, "ms", max(raw_p99, 1e-3), "raw sockets",
                     notes=f"raw: {len(raw_late)} reads, {raw_missed} missed"),
        ratio_result("missed reads (engine)", float(missed), "reads", 1.0, "none allowed",
                     target="<= 0.0" if not quick else ""),
    ]  # fmt: skip
