"""A controller killed (SIGKILL) or hung (SIGSTOP) during plating: the instrument turns its own output
off within its lease, and ``licycler resume RUN --station FILE`` completes the run from the store and
the readings the instrument kept.

The emulated Keithley 2450 and Keysight B2901A run in this process on real time over TCP, the
EmStat4 on a pseudo-terminal (the digital twin of a Li||Cu cell behind each); the controller is a
``licycler run --station`` subprocess reaching it through pyvisa-py. The output state is checked by a
separate raw-socket (or serial) client, the renewals are read from the instrument's own record of
the lines it received.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import serial

from licycler.cli.sim_serve import build_world
from licycler.clock import RealTimeClock
from licycler.sim_instruments.emstat4 import EmStat4Emulation
from licycler.sim_instruments.interfaces import CellTerminals
from licycler.sim_instruments.keithley2450 import Keithley2450
from licycler.sim_instruments.keysight_b2900 import KeysightB2900
from licycler.sim_instruments.scpi import ScpiInstrument, SmuChannel
from licycler.sim_instruments.scpi.server import ScpiTcpServer
from licycler.sim_instruments.serial_server import PtySerialServer, ReplyChannel
from licycler.store import Store
from tests.safety.conftest import KILL_FIGURES

LEASE_S = 2.0
READ_PERIOD_S = 0.1
PLATE_S = 90.0
CURRENT_A = 2e-3
STRIP_TO_CUTOFF = "voltage_above: 1 V, time: {cap:g} s"
STRIP_BY_TIME = "time: {quarter:g} s"
"""The potentiostat's reading overloads (NaN, a trip) in the strip's final jump to the compliance: there
the strip stops by time, with three quarters of the plated lithium stripped."""
SCHEDULE = """\
name: lease kill Li||Cu
cell: {chemistry: Li||Cu, electrode_area: 1 cm^2}
limits: {voltage_min: -1 V, voltage_max: 3.5 V}
record: {every: 0.5 s}
watch: {enabled: false}
steps:
  - rest: 1 s
  - plate: {current: 2 mA/cm^2, until: {capacity: @CAPACITY@ mAh/cm^2, voltage_below: -1 V}}
  - strip: {current: 6 mA/cm^2, until: {@STRIP@}}
"""
PLATE_C = CURRENT_A * PLATE_S
CE_SPREAD = 6e-3
"""How far a resumed run's CE may be from the uninterrupted one's: the strip ends in a jump to the
compliance, which the emulations (eleven in this process's loop) time to within a few readings."""


@dataclass(frozen=True)
class Kind:
    """An instrument model as the station file names it, its emulation, and how to ask its output."""

    model: str
    serial: str
    off_query: str
    off_reply: str
    strip: str = STRIP_TO_CUTOFF

    def schedule(self, plate_s: float = PLATE_S) -> str:
        """The schedule with a plating step of ``plate_s`` (s) at 2 mA."""
        strip = self.strip.format(cap=2 * plate_s / 3, quarter=plate_s / 4)
        return SCHEDULE.replace("@STRIP@", strip).replace("@CAPACITY@", f"{CURRENT_A * plate_s / 3.6:.6g}")

    def make(self, cell: CellTerminals, clock: RealTimeClock, serial: str | None = None) -> ScpiInstrument:
        if self.model == "keithley2450":
            emulation = Keithley2450(cell, clock, noise=False)
            emulation.identity = emulation.identity.replace(self.serial, serial or self.serial)
            return emulation
        return KeysightB2900([cell], clock, model="B2901A", serial=serial or self.serial, noise=False)

    @staticmethod
    def smu(emulation: ScpiInstrument) -> SmuChannel:
        return emulation.smu if isinstance(emulation, Keithley2450) else emulation.ch[1].smu  # type: ignore[attr-defined]


K2450 = Kind("keithley2450", "04365704", ":OUTP?;:OUTP:CURR:SMOD?", "0;HIMP")
B2901A = Kind("keysight-b2901a", "MY51140123", ":OUTP1?;:OUTP1:OFF:MODE?", "0;HIZ")
EMSTAT4 = Kind("emstat4", "", "", "", STRIP_BY_TIME)


@dataclass
class Bench:
    """One emulated instrument on a Li||Cu twin, served on loopback, with a record of when it did what."""

    server: ScpiTcpServer
    emulation: ScpiInstrument
    clock: RealTimeClock
    kind: Kind
    inits: list[float] = field(default_factory=list)
    """Clock times of the lines that (re)started the lease's trigger model."""
    started: float | None = None
    """Clock time the controller said the run started."""

    async def raw(self, line: str) -> str:
        """One query over a separate raw socket (not the controller's connection)."""
        reader, writer = await asyncio.open_connection(self.server.host, self.server.port)
        try:
            writer.write(line.encode() + b"\n")
            await writer.drain()
            return (await asyncio.wait_for(reader.readline(), 5)).decode().strip()
        finally:
            writer.close()
            await writer.wait_closed()

    async def output_off_at(self, timeout_s: float) -> float:
        """Poll the instrument until its output reads off and high impedance; the clock time then."""
        deadline = self.clock.now() + timeout_s
        while self.clock.now() < deadline:
            if await self.is_off():
                return self.clock.now()
            await asyncio.sleep(0.02)  # a client polling an instrument: the interval of its queries
        raise AssertionError(f"the output was still on {timeout_s} s later")

    async def is_off(self) -> bool:
        return await self.raw(self.kind.off_query) == self.kind.off_reply

    def plating(self) -> bool:
        smu = self.kind.smu(self.emulation)
        return abs(smu.current_level_a + CURRENT_A) < 1e-9 and smu.output_on

    def resource(self) -> str:
        return self.server.resource

    def station(self, tmp: Path) -> Path:
        path = tmp / "station.yaml"
        path.write_text(f"""\
name: lease bench
lease: {LEASE_S} s
read_period: {READ_PERIOD_S} s
limits: {{voltage_min: -1 V, voltage_max: 3.5 V, current_max: 10 mA}}
instruments:
  smu1: {{model: {self.kind.model}, resource: "{self.resource()}", timeout: 1 s}}
channels:
  ch1: {{instrument: smu1, electrode_area: 1 cm^2}}
""")
        return path


@dataclass
class SerialBench(Bench):
    """The EmStat4 on a pseudo-terminal: no SCPI; a separate serial client asks it."""

    pty: PtySerialServer | None = None

    async def is_off(self) -> bool:
        """A new client on the pseudo-terminal: ``Z`` answers ``Z!0006`` (nothing to abort) once the
        lease's script has ended by itself with its ``on_finished: cell_off``."""
        assert self.pty is not None
        port = serial.Serial(self.pty.device_path, 921600, timeout=2.0)
        try:
            await asyncio.to_thread(port.write, b"\nZ\n")
            while (line := await asyncio.to_thread(port.read_until, b"\n")) not in (b"Z!0006\n", b""):
                if line == b"Z\n":  # a script was running: it is aborted now, not off by itself
                    return False
            emulation = self.emulation
            assert isinstance(emulation, EmStat4Emulation)
            return line == b"Z!0006\n" and not emulation.cell_on
        finally:
            port.close()

    def plating(self) -> bool:  # the rest step takes 1 s
        return self.started is not None and self.clock.now() >= self.started + 1.3

    async def output_off_at(self, timeout_s: float) -> float:
        """When the instrument's own record says the cell went off (a ``Z`` from a client would
        abort a script still running), then confirmed by a separate serial client."""
        emulation = self.emulation
        assert isinstance(emulation, EmStat4Emulation)
        deadline = self.clock.now() + timeout_s
        while emulation.cell_on or emulation.running:
            assert self.clock.now() < deadline, f"the cell was still on {timeout_s} s later"
            await asyncio.sleep(0.02)
        off = emulation.cell_log[-1][0]
        assert await self.is_off()
        return off

    def resource(self) -> str:
        assert self.pty is not None
        return self.pty.resource


@asynccontextmanager
async def bench(kind: Kind, serial: str | None = None, port: int = 0) -> AsyncIterator[Bench]:
    if kind is EMSTAT4:
        async with serial_bench() as b:
            yield b
        return
    clock = RealTimeClock()
    world = build_world("li-cu", clock)
    # exact readings: a Li||Cu strip ends in a jump to the compliance (the voltage limit), which a
    # noisy reading would put above the limit (a trip instead of the step's end)
    emulation = kind.make(world.cell, clock, serial)
    async with ScpiTcpServer(emulation, port=port) as server:
        served = Bench(server, emulation, clock, kind)
        execute = emulation.execute_line

        async def recorded(line: str) -> str | None:
            reply = await execute(line)
            if ":INIT" in line.upper() and kind.smu(emulation).output_on:  # a lease (re)started
                served.inits.append(clock.now())
            return reply

        emulation.execute_line = recorded  # type: ignore[method-assign]
        yield served


@asynccontextmanager
async def serial_bench() -> AsyncIterator[SerialBench]:
    clock = RealTimeClock()
    emulation = EmStat4Emulation(build_world("li-cu", clock).cell, clock)
    async with PtySerialServer(emulation) as pty:
        served = SerialBench(None, emulation, clock, EMSTAT4, pty=pty)  # type: ignore[arg-type]
        handle = emulation.handle_line

        async def recorded(line: str, reply: ReplyChannel) -> None:
            await handle(line, reply)
            if line.strip() in ("Y", ""):  # a re-arm, or the end of a script sent (it starts)
                served.inits.append(clock.now())

        emulation.handle_line = recorded  # type: ignore[method-assign]
        yield served


async def licycler(*args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "licycler", *args, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    _, err = await asyncio.wait_for(proc.communicate(), 600)
    assert proc.returncode is not None
    return proc.returncode, err.decode()


async def start_run(tmp: Path, b: Bench, plate_s: float = PLATE_S) -> asyncio.subprocess.Process:
    (tmp / "schedule.yaml").write_text(b.kind.schedule(plate_s))
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "licycler", "run", str(tmp / "schedule.yaml"), "--station", str(b.station(tmp)),
        "--db", f"sqlite:///{tmp / 'run.db'}", "--json",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip


async def until_plating(proc: asyncio.subprocess.Process, b: Bench) -> float:
    """Wait (on the controller's own output) for the plating step; the clock time it began."""
    assert proc.stdout is not None
    while True:
        line = await asyncio.wait_for(proc.stdout.readline(), 60)
        assert line, "the controller ended before plating"
        if b'"transition"' in line:
            b.started = b.clock.now()
            break
    # the rest step is 1 s: plating starts once the level goes to the plating current
    deadline = b.clock.now() + 30.0
    while not b.plating():
        assert proc.returncode is None, "the controller ended before plating"
        assert b.clock.now() < deadline, "no plating within 30 s"
        await asyncio.sleep(0.02)
    return b.clock.now()


@dataclass
class Outcome:
    killed_at_s: float
    off_after_renewal_s: float
    run_id: str
    db: Path


async def kill_once(
    tmp: Path, kind: Kind, when_s: float, how: signal.Signals, *, serve: bool = False, plate_s: float = PLATE_S
) -> Outcome:
    """Run, SIGKILL (or SIGSTOP, then SIGKILL) ``when_s`` into plating, see the output go off, resume
    (``licycler resume``, or ``licycler station serve`` as a service would after a reboot)."""
    tmp.mkdir()
    async with bench(kind) as b:
        proc = await start_run(tmp, b, plate_s)
        start = await until_plating(proc, b)
        await asyncio.sleep(max(start + when_s - b.clock.now(), 0.0))  # the random moment of the kill
        os.kill(proc.pid, how)
        killed = b.clock.now()
        off = await b.output_off_at(LEASE_S + 5.0)
        last_renewal = max(t for t in b.inits if t <= killed + 0.05)
        if how is signal.SIGSTOP:
            os.kill(proc.pid, signal.SIGKILL)
        await proc.wait()
        store = Store(f"sqlite:///{tmp / 'run.db'}")
        run_id = store.runs()[0]["run_id"]
        store.close()
        db = f"sqlite:///{tmp / 'run.db'}"
        station = str(tmp / "station.yaml")
        how_resumed = ("station", "serve", station) if serve else ("resume", run_id, "--station", station)
        code, err = await licycler(*how_resumed, "--db", db, "--quiet")
        assert code == 0, err
        assert await b.is_off()  # the resumed run ended secured
    return Outcome(killed - start, off - last_renewal, run_id, tmp / "run.db")


def check_completed(outcome: Outcome, ref_ce: float, model: str) -> None:
    store = Store(f"sqlite:///{outcome.db}")
    try:
        assert store.run(outcome.run_id)["status"] == "completed"  # type: ignore[index]
        samples = store.samples(outcome.run_id, "ch1")
        assert np.array_equal(samples.seq, np.arange(len(samples)))  # no duplicate, no gap in numbering
        assert np.all(np.diff(samples.t_s) > 0)  # each reading once, in time order
        steps = store.steps(outcome.run_id, "ch1")
        assert [s["kind"] for s in steps] == ["rest", "plate", "strip"]
        plate = steps[1]
        cycles = store.cycles(outcome.run_id, "ch1")
        KILL_FIGURES.append((model, outcome.killed_at_s, abs(plate["charge_c"]) / PLATE_C - 1,
                             cycles[0]["ce"] - ref_ce, outcome.off_after_renewal_s))  # fmt: skip
        assert abs(plate["charge_c"]) == pytest.approx(PLATE_C, rel=5e-3)  # delivered as scheduled
        in_plate = samples.step_seq == plate["step_seq"]
        t = samples.t_s[in_plate]
        i = samples.current_a[in_plate]
        sourced = np.abs(i) > 0.5 * CURRENT_A
        # the readings the instrument kept while the controller was away are stored: plating
        # readings continue at the record interval up to where the lease ended; the one gap is
        # from there to the resume
        spacing = np.sort(np.diff(t[sourced]))
        assert spacing[-2] < 0.5 + 2 * READ_PERIOD_S
        gaps = [e for e in store.events(outcome.run_id, "ch1") if e["kind"] == "controller_gap"]
        assert len(gaps) == 1
        assert gaps[0]["values"]["readings_recovered"] > 0
        assert len(cycles) == 1
        assert cycles[0]["ce"] == pytest.approx(ref_ce, abs=CE_SPREAD)
    finally:
        store.close()


async def reference_ce(tmp: Path, kind: Kind) -> float:
    tmp.mkdir()
    async with bench(kind) as b:
        proc = await start_run(tmp, b)
        await asyncio.wait_for(proc.wait(), 600)
        assert proc.returncode == 0
    store = Store(f"sqlite:///{tmp / 'run.db'}")
    cycles = store.cycles(store.runs()[0]["run_id"], "ch1")
    store.close()
    assert len(cycles) == 1
    return float(cycles[0]["ce"])


KILLS = {"keithley2450": 4, "keysight-b2901a": 3, "emstat4": 3}
"""Ten random moments of plating over the three transports (each instrument's in one round)."""


@pytest.mark.slow
@pytest.mark.parametrize("kind", [K2450, B2901A, EMSTAT4], ids=list(KILLS))
async def test_sigkill_at_random_moments_of_plating_the_instrument_stops_and_resume_completes(
    tmp_path: Path, kind: Kind
) -> None:
    rng = random.Random(f"20261207 {kind.model}")
    moments = [rng.uniform(1.0, PLATE_S - 0.5) for _ in range(KILLS[kind.model])]
    moments[-1] = PLATE_S - 0.4  # one just before the step's end: the lease stops at the step's end
    jobs = [kill_once(tmp_path / f"k{k}", kind, when, signal.SIGKILL) for k, when in enumerate(moments)]
    reference = asyncio.create_task(reference_ce(tmp_path / "ref", kind))  # beside the kills
    outcomes = await asyncio.gather(*jobs)
    ref = await reference
    for outcome in outcomes:
        assert outcome.off_after_renewal_s <= LEASE_S + 1.0, outcome
        check_completed(outcome, ref, kind.model)


@pytest.mark.slow
async def test_a_hung_controller_is_treated_like_a_dead_one(tmp_path: Path) -> None:
    # resumed by the service, as after a reboot
    outcome = await kill_once(tmp_path / "stop", K2450, 5.0, signal.SIGSTOP, serve=True, plate_s=15.0)
    assert outcome.off_after_renewal_s <= LEASE_S + 1.0
    store = Store(f"sqlite:///{outcome.db}")
    assert store.run(outcome.run_id)["status"] == "completed"  # type: ignore[index]
    store.close()


async def test_a_swapped_instrument_is_refused_on_resume_and_left_secured(tmp_path: Path) -> None:
    async with bench(K2450) as b:
        proc = await start_run(tmp_path, b)
        await until_plating(proc, b)
        os.kill(proc.pid, signal.SIGKILL)
        await proc.wait()
        port = b.server.port
        await b.output_off_at(LEASE_S + 5.0)
    async with bench(K2450, serial="04999999", port=port) as swapped:  # another 2450 at the same address
        await swapped.raw(":OUTP:CURR:SMOD NORM;:SOUR:CURR -1E-3;:OUTP ON;*OPC?")  # left sourcing by someone
        store = Store(f"sqlite:///{tmp_path / 'run.db'}")
        run_id = store.runs()[0]["run_id"]
        store.close()
        code, err = await licycler("resume", run_id, "--db", f"sqlite:///{tmp_path / 'run.db'}")
        assert code == 2
        lines = err.strip().splitlines()
        assert len(lines) == 1, err
        assert "04999999" in lines[0]
        assert "04365704" in lines[0]
        assert "refusing" in lines[0]
        assert await swapped.raw(":OUTP?;:OUTP:CURR:SMOD?") == "0;HIMP"  # untouched but secured
    store = Store(f"sqlite:///{tmp_path / 'run.db'}")
    assert store.run(run_id)["status"] != "completed"  # type: ignore[index]
    assert not store.steps(run_id, "ch1")[1:]  # nothing ran on the other instrument
    store.close()
