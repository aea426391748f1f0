"""Recorded command/response transcripts of the driver session (tests/drivers/session.py).

1. Live: the drivers' wire traffic against the emulations matches the recorded transcript
   (commands exactly, replies numerically).
2. Replay: a plain asyncio server (nothing of licycler) answers from the recorded transcript and
   refuses anything else; the drivers run the same session through it and read the same values.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from licycler.drivers import Keithley2450, KeysightB2900
from licycler.drivers.scpi import ScpiDriver
from licycler.sim_instruments.clock import VirtualClock
from licycler.sim_instruments.dummy_cell import DummyCell
from licycler.sim_instruments.keithley2450 import Keithley2450 as Keithley2450Emulation
from licycler.sim_instruments.keysight_b2900 import KeysightB2900 as B2900Emulation
from licycler.sim_instruments.scpi.instrument import ScpiInstrument
from licycler.sim_instruments.scpi.server import ScpiTcpServer
from tests.drivers.session import run_session
from tests.sim_scpi.test_transcripts import parse_transcript, reply_matches

HERE = Path(__file__).parent / "transcripts"
CASES = {
    "keithley2450_session": (
        Keithley2450,
        lambda: Keithley2450Emulation(DummyCell(3.0, 100.0), VirtualClock(), noise=False,
                                      epoch_s=1.7e9),
    ),
    "keysight_b2901a_session": (
        KeysightB2900,
        lambda: B2900Emulation(DummyCell(3.0, 100.0), VirtualClock(), model="B2901A", noise=False),
    ),
}


def driver_for(name: str, resource: str) -> ScpiDriver:
    cls = CASES[name][0]
    return cls.for_resource(resource, timeout_s=0.5, retries=0)


@pytest.mark.parametrize("name", sorted(CASES))
async def test_live_traffic_matches_the_recording(name: str) -> None:
    expected = parse_transcript(HERE / f"{name}.txt")
    emulation: ScpiInstrument = CASES[name][1]()
    emulation.log = []
    async with ScpiTcpServer(emulation) as server:
        await run_session(driver_for(name, server.resource))  # type: ignore[arg-type]
    assert [line for line, _ in emulation.log] == [line for line, _ in expected]
    for (line, reply), (_, want) in zip(emulation.log, expected, strict=True):
        assert (reply is None) == (want is None), line
        if reply is not None and want is not None:
            assert reply_matches(want, reply), f"{line!r}: expected {want!r}, got {reply!r}"


class ReplayServer:
    """Answers each line with the recorded reply if it is the next recorded line; else stops."""

    def __init__(self, steps: list[tuple[str, str | None]]) -> None:
        self.steps = steps
        self.position = 0
        self.mismatch: str | None = None
        self.server: asyncio.Server | None = None

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while line := await reader.readline():
            text = line.decode().rstrip("\n")
            if self.position >= len(self.steps) or self.steps[self.position][0] != text:
                self.mismatch = f"unexpected {text!r} at step {self.position}"
                break
            reply = self.steps[self.position][1]
            self.position += 1
            if reply is not None:
                writer.write(reply.encode() + b"\n")
                await writer.drain()
        writer.close()

    async def start(self) -> str:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        return f"TCPIP::127.0.0.1::{self.server.sockets[0].getsockname()[1]}::SOCKET"

    def close(self) -> None:
        assert self.server is not None
        self.server.close()


@pytest.mark.parametrize("name", sorted(CASES))
async def test_driver_runs_on_the_recorded_replies(name: str) -> None:
    replay = ReplayServer(parse_transcript(HERE / f"{name}.txt"))
    resource = await replay.start()
    try:
        blocks = await run_session(driver_for(name, resource))  # type: ignore[arg-type]
    finally:
        replay.close()
    assert replay.mismatch is None
    assert replay.position == len(replay.steps)
    np.testing.assert_allclose([b.voltage_v[0] for b in blocks], [3.1, 3.5])
    np.testing.assert_allclose([b.current_a[0] for b in blocks], [1e-3, 5e-3])
    assert blocks[1].time_s[0] > blocks[0].time_s[0]
