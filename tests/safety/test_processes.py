"""A controller process against an emulated 2450 it reaches over TCP: SIGTERM secures the output;
after SIGKILL the output stays on (as a real instrument's would) until a controller starts again,
whose first commands put it in the safe state."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from licycler.clock import RealTimeClock
from licycler.sim_instruments.dummy_cell import DummyCell
from licycler.sim_instruments.keithley2450 import Keithley2450 as Keithley2450Emulation
from licycler.sim_instruments.scpi.server import ScpiTcpServer
from licycler.store import Store

SCHEDULE = """\
name: plate for an hour
cell: {chemistry: Li||Li, electrode_area: 1 cm^2}
limits: {voltage_min: -1 V, voltage_max: 1 V}
record: {every: 1 s}
steps:
  - plate: {current: 1 mA/cm^2, until: {time: 1 h}}
"""


@dataclass
class Served:
    server: ScpiTcpServer
    emulation: Keithley2450Emulation
    lines: list[str] = field(default_factory=list)
    output_on: asyncio.Event = field(default_factory=asyncio.Event)

    def output(self) -> bool:
        return bool(self.emulation.smu.output_on)


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    emulation = Keithley2450Emulation(DummyCell(0.0, 20.0), RealTimeClock(), noise=True)
    async with ScpiTcpServer(emulation) as server:
        served = Served(server, emulation)
        execute = emulation.execute_line

        async def logged(line: str) -> str | None:
            served.lines.append(line)
            reply = await execute(line)
            if "OUTP ON" in line.upper() and served.output():
                served.output_on.set()
            return reply

        emulation.execute_line = logged  # type: ignore[method-assign]
        yield served


def station_file(tmp_path: Path, served: Served) -> Path:
    path = tmp_path / "station.yaml"
    path.write_text(f"""\
name: test bench
limits: {{voltage_min: -2 V, voltage_max: 2 V, current_max: 10 mA}}
instruments:
  smu1: {{model: keithley2450, resource: "{served.server.resource}", timeout: 1 s}}
channels:
  A1: {{instrument: smu1, electrode_area: 1 cm^2}}
""")
    return path


async def start_controller(tmp_path: Path, served: Served) -> asyncio.subprocess.Process:
    schedule = tmp_path / "schedule.yaml"
    schedule.write_text(SCHEDULE)
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "licycler", "run", str(schedule), "--station", str(station_file(tmp_path, served)),
        "--db", f"sqlite:///{tmp_path / 'run.db'}", "--quiet",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


async def test_sigterm_secures_the_output(tmp_path: Path, served: Served) -> None:
    proc = await start_controller(tmp_path, served)
    await asyncio.wait_for(served.output_on.wait(), 30)
    os.kill(proc.pid, signal.SIGTERM)
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 130, err.decode()
    assert not served.output()  # off at the instrument
    store = Store(f"sqlite:///{tmp_path / 'run.db'}")
    run_id = store.runs()[0]["run_id"]
    causes = {(e["kind"], e["cause"]) for e in store.events(run_id)}
    assert ("trip", "estop") in causes
    estop = next(e for e in store.events(run_id) if e["kind"] == "trip" and e["cause"] == "estop")
    assert "SIGTERM" in estop["message"]
    assert estop["values"]["output_off_verified"] is True


async def test_after_sigkill_a_new_controller_secures_first(tmp_path: Path, served: Served) -> None:
    proc = await start_controller(tmp_path, served)
    await asyncio.wait_for(served.output_on.wait(), 30)
    os.kill(proc.pid, signal.SIGKILL)
    await proc.wait()
    assert served.output()  # nothing ran after SIGKILL: the instrument still sources current
    served.lines.clear()
    served.output_on.clear()
    again = await start_controller(tmp_path, served)  # the controller starts again (same station)
    await asyncio.wait_for(served.output_on.wait(), 30)
    os.kill(again.pid, signal.SIGTERM)
    await asyncio.wait_for(again.communicate(), 30)
    assert not served.output()
    session = [line.upper() for line in served.lines]
    # its very first command is part of the safe-state sequence, and the output is off before it
    # identifies the instrument or configures anything
    assert any(word in session[0] for word in (":ABOR", "SMOD HIMP", "OUTP OFF", "SOUR:CURR 0")), session[:6]
    off = next(k for k, line in enumerate(session) if "OUTP OFF" in line)
    assert not any("IDN" in line or "SOUR:FUNC" in line or "VLIM " in line for line in session[:off]), session[
        : off + 1
    ]
