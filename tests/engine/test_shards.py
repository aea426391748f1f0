"""A station's channels sharded over worker processes: the split keeps an instrument's channels (and a
shared rig's) together; a sharded run on emulated 2450s over TCP is one run in the store with every
channel's data; one emergency stop turns every output off (asked at each instrument); a part of the
station that cannot open ends the run before anything is recorded."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from licycler.clock import RealTimeClock
from licycler.engine import RunState
from licycler.engine.shards import ShardedStationRun, default_shards, split_station
from licycler.errors import UserError
from licycler.protocols import parse_schedule
from licycler.sim_instruments.dummy_cell import DummyCell
from licycler.sim_instruments.keithley2450 import Keithley2450 as Keithley2450Emulation
from licycler.sim_instruments.scpi.server import ScpiTcpServer
from licycler.station import load_station_text
from licycler.store import Store
from licycler.yamlsource import load_yaml_text

CHANNELS = 6


def schedule(plate_s: float, strip_s: float):  # type: ignore[no-untyped-def]
    text = f"""\
name: sharded
cell: {{chemistry: Li||Li, electrode_area: 1 cm^2}}
limits: {{voltage_min: -1 V, voltage_max: 1 V}}
record: {{every: 0.5 s}}
steps:
  - plate: {{current: 1 mA/cm^2, until: {{time: {plate_s} s}}}}
  - strip: {{current: 1 mA/cm^2, until: {{time: {strip_s} s}}}}
"""
    return parse_schedule(load_yaml_text(text, "sharded.yaml"), text, "sharded.yaml")


class Bench:
    """Emulated 2450s served on TCP, each with an event set when its output turns on."""

    def __init__(self, n: int) -> None:
        self.emulations = [Keithley2450Emulation(DummyCell(0.0, 20.0), RealTimeClock(), seed=k) for k in range(n)]
        self.servers = [ScpiTcpServer(e) for e in self.emulations]
        self.all_on = asyncio.Event()
        for emulation in self.emulations:
            execute = emulation.execute_line

            async def watched(line: str, execute=execute) -> str | None:  # type: ignore[no-untyped-def]
                reply = await execute(line)
                if all(e.smu.output_on for e in self.emulations):
                    self.all_on.set()
                return reply

            emulation.execute_line = watched  # type: ignore[method-assign]

    def station_text(self, extra: str = "") -> str:
        instruments = "\n".join(f'  smu{k}: {{model: keithley2450, resource: "{s.resource}", timeout: 1 s}}'
                                for k, s in enumerate(self.servers))  # fmt: skip
        n = len(self.servers)
        channels = "\n".join(f"  A{k}: {{instrument: smu{k}, electrode_area: 1 cm^2}}" for k in range(n))
        return (f"name: sharded bench\nread_period: 0.1 s\nlimits: {{voltage_min: -2 V, voltage_max: 2 V, "
                f"current_max: 10 mA}}\ninstruments:\n{instruments}\n{extra}channels:\n{channels}\n")  # fmt: skip


@pytest.fixture
async def bench() -> AsyncIterator[Bench]:
    bench = Bench(CHANNELS)
    for server in bench.servers:
        await server.start()
    yield bench
    for server in bench.servers:
        await server.stop()


STATION = """\
name: mixed
instruments:
  k1: {model: keithley2450, resource: "TCPIP::127.0.0.1::5001::SOCKET"}
  k2: {model: keithley2450, resource: "TCPIP::127.0.0.1::5002::SOCKET"}
  k3: {model: keithley2450, resource: "TCPIP::127.0.0.1::5003::SOCKET"}
  b1: {model: keysight-b2902a, resource: "TCPIP::127.0.0.1::5004::SOCKET"}
  k4: {model: keithley2450, resource: "TCPIP::127.0.0.1::5005::SOCKET"}
  rig: {model: alicat-pc, resource: "ASRL/dev/null::INSTR"}
channels:
  A1: {instrument: k1}
  A2: {instrument: k2, rig: rig}
  A3: {instrument: k3, rig: rig}
  B1: {instrument: b1, channel: 1}
  B2: {instrument: b1, channel: 2}
  A4: {instrument: k4}
"""


def test_split_keeps_instruments_and_shared_rigs_together() -> None:
    config = load_station_text(STATION, "mixed.yaml")
    parts = split_station(config, 3)
    assert len(parts) == 3
    owner = {name: k for k, part in enumerate(parts) for name in part.channels}
    assert sorted(owner) == sorted(config.channels)  # every channel once
    assert owner["B1"] == owner["B2"]  # one instrument's two channels
    assert owner["A2"] == owner["A3"]  # one rig under two instruments
    assert sorted(len(p.channels) for p in parts) == [2, 2, 2]
    for part in parts:  # each part holds exactly the instruments its channels use
        used = {c.instrument for c in part.channels.values()} | {c.rig for c in part.channels.values() if c.rig}
        assert set(part.instruments) == used
    assert len(split_station(config, 10)) == 4  # no more parts than units
    with pytest.raises(UserError, match="at least 1"):
        split_station(config, 0)
    assert default_shards(config, cores=2) == 1  # a small station needs no workers


async def test_sharded_run_is_one_run_with_every_channels_data(tmp_path: Path, bench: Bench) -> None:
    config = load_station_text(bench.station_text(), "bench.yaml")
    store = Store(f"sqlite:///{tmp_path / 'run.db'}")
    run = ShardedStationRun(schedule(2.0, 1.0), config, store, shards=2)
    assert len(run.parts) == 2
    states = await asyncio.wait_for(run.run(), 60)
    assert states == {f"A{k}": RunState.COMPLETED for k in range(CHANNELS)}
    runs = store.runs()
    assert len(runs) == 1
    assert runs[0]["status"] == "completed"
    assert runs[0]["mode"] == "station"
    for k in range(CHANNELS):
        samples = store.samples(run.run_id, f"A{k}")
        assert len(samples) >= 4  # recorded every 0.5 s over 3 s of steps
        steps = store.steps(run.run_id, f"A{k}")
        assert [s["kind"] for s in steps] == ["plate", "strip"]
        # 1 mA plated for 2 s (2 mC), as the schedule says, within 5 % (the step ends on a read)
        assert abs(steps[0]["charge_c"]) == pytest.approx(2e-3, rel=0.05)
        events = store.events(run.run_id, f"A{k}")
        seqs = [e["seq"] for e in events]
        assert len(seqs) == len(set(seqs))
        assert any(e["kind"] == "transition" for e in events)
    for emulation in bench.emulations:  # every output off at the end, high impedance
        assert await emulation.execute_line(":OUTP?") == "0"
    reads = [view.missed for view in run.runners.values()]
    assert all(len(view.lateness_s) > 0 for view in run.runners.values())
    assert sum(reads) == 0


async def test_one_emergency_stop_reaches_every_channel(tmp_path: Path, bench: Bench) -> None:
    config = load_station_text(bench.station_text(), "bench.yaml")
    store = Store(f"sqlite:///{tmp_path / 'run.db'}")
    run = ShardedStationRun(schedule(3600.0, 10.0), config, store, shards=2)
    task = asyncio.create_task(run.run())
    await asyncio.wait_for(bench.all_on.wait(), 60)
    await asyncio.wait_for(run.emergency_stop("test e-stop"), 10)
    for emulation in bench.emulations:  # asked at each instrument as soon as the stop returns
        assert await emulation.execute_line(":OUTP?") == "0"
        assert await emulation.execute_line(":OUTP:CURR:SMOD?") == "HIMP"
    states = await asyncio.wait_for(task, 60)  # a tripped channel ends its run by itself
    assert set(states.values()) == {RunState.FAULTED}
    assert store.run(run.run_id)["status"] == "faulted"
    for k in range(CHANNELS):
        trips = [e for e in store.events(run.run_id, f"A{k}") if e["kind"] == "trip"]
        assert any(e["cause"] == "estop" and "test e-stop" in e["message"] for e in trips)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_a_part_that_cannot_open_ends_the_run_unrecorded(tmp_path: Path, bench: Bench) -> None:
    dead = f'  dead: {{model: keithley2450, resource: "TCPIP::127.0.0.1::{_closed_port()}::SOCKET", timeout: 1 s}}\n'
    text = bench.station_text().replace("channels:\n", "channels:\n  X1: {instrument: dead}\n")
    text = text.replace("instruments:\n", f"instruments:\n{dead}")
    config = load_station_text(text, "bench.yaml")
    store = Store(f"sqlite:///{tmp_path / 'run.db'}")
    run = ShardedStationRun(schedule(3600.0, 10.0), config, store, shards=2)
    with pytest.raises(UserError, match="cannot open dead"):
        await asyncio.wait_for(run.run(), 60)
    assert store.runs() == []
    for emulation in bench.emulations:  # the parts that opened were secured and never turned on
        assert await emulation.execute_line(":OUTP?") == "0"
    assert all(not w.process.is_alive() for w in run.workers)
