"""Command/response transcripts from the manuals' examples, replayed over a raw socket.

Each file in ``transcripts/`` lists the lines sent (``> ``) and the replies expected (``< ``);
numeric fields are compared to 1e-6 relative, other fields literally with ``*`` as a wildcard.
"""

from __future__ import annotations

import fnmatch
import math
from pathlib import Path

import pytest

from licycler.sim_instruments.clock import VirtualClock
from licycler.sim_instruments.dummy_cell import DummyCell
from licycler.sim_instruments.keithley2450 import Keithley2450
from licycler.sim_instruments.keysight_b2900 import KeysightB2900
from licycler.sim_instruments.scpi.instrument import ScpiInstrument
from licycler.sim_instruments.scpi.server import ScpiTcpServer
from tests.sim_scpi.conftest import RawClient

HERE = Path(__file__).parent / "transcripts"


def parse_transcript(path: Path) -> list[tuple[str, str | None]]:
    steps: list[tuple[str, str | None]] = []
    for raw in path.read_text().splitlines():
        if raw.startswith("> "):
            steps.append((raw[2:], None))
        elif raw.startswith("< "):
            line, reply = steps[-1]
            assert reply is None, f"two replies to {line!r}"
            steps[-1] = (line, raw[2:])
    return steps


def field_matches(expected: str, actual: str) -> bool:
    try:
        e, a = float(expected), float(actual)
    except ValueError:
        return fnmatch.fnmatchcase(actual, expected)
    return math.isclose(e, a, rel_tol=1e-6, abs_tol=1e-12)


def reply_matches(expected: str, actual: str) -> bool:
    e_fields = expected.replace(";", ",").split(",")
    a_fields = actual.replace(";", ",").split(",")
    if "*" in expected and len(e_fields) != len(a_fields):
        return fnmatch.fnmatchcase(actual, expected)
    return len(e_fields) == len(a_fields) and all(
        field_matches(e, a) for e, a in zip(e_fields, a_fields, strict=True)
    )


def instrument_for(path: Path) -> ScpiInstrument:
    clock = VirtualClock()
    if path.name.startswith("keithley2450"):
        return Keithley2450(DummyCell(3.0, 100.0), clock, noise=False)
    return KeysightB2900(DummyCell(3.0, 100.0), clock, model="B2902A", noise=False)


@pytest.mark.parametrize("path", sorted(HERE.glob("*.txt")), ids=lambda p: p.stem)
async def test_transcript(path: Path) -> None:
    steps = parse_transcript(path)
    assert steps
    async with ScpiTcpServer(instrument_for(path)) as server:
        client = RawClient(server.port)
        try:
            for line, expected in steps:
                if expected is None:
                    await client.send(line)
                    continue
                actual = await client.ask(line)
                assert reply_matches(expected, actual), f"{line!r}: expected {expected!r}, got {actual!r}"
        finally:
            client.close()


def test_matcher_is_strict() -> None:
    assert reply_matches("1.000000E-03,HIMP", "1.0000001E-03,HIMP")
    assert not reply_matches("1.000000E-03", "1.1E-03")
    assert not reply_matches("0", "1")
    assert reply_matches('-222,"Data out of range;1;*"', '-222,"Data out of range;1;17 5"')
    assert not reply_matches('-222,"Data out of range;1;*"', '-113,"Undefined header;1;1 2"')
