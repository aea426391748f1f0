"""``licycler sim-serve`` and ``licycler instruments scan`` as a user runs them (subprocesses)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import pytest

from licycler.cli.main import main

PYTHON = [sys.executable, "-m", "licycler"]


@pytest.fixture
def served() -> Iterator[tuple[str, subprocess.Popen[str]]]:
    proc = subprocess.Popen(
        [*PYTHON, "sim-serve", "keysight-b2902a", "--port", "0", "--speed", "10"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    assert proc.stdout is not None
    first = proc.stdout.readline().strip()
    try:
        yield first, proc
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_sim_serve_prints_the_resource_first_and_serves_it(
    served: tuple[str, subprocess.Popen[str]],
) -> None:
    resource, proc = served
    assert resource.startswith("TCPIP0::127.0.0.1::")
    assert resource.endswith("::SOCKET")
    out = subprocess.run(
        [*PYTHON, "instruments", "scan", "--no-discover", "--resource", resource, "--json"],
        capture_output=True, text=True, timeout=30, check=True,
    )
    found = [json.loads(line) for line in out.stdout.splitlines()]
    assert found == [{
        "resource": resource, "identity": "Keysight Technologies,B2902A,MY51140123,3.4.2011.5100",
        "error": None, "probed": True,
    }]
    proc.terminate()
    assert proc.wait(timeout=10) == 0
    assert proc.stderr is not None
    assert "dummy cell" in proc.stderr.read()


def test_sim_serve_lists_the_instruments(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sim-serve", "--list"]) == 0
    names = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert {"keithley2450", "keysight-b2901a", "keysight-b2902a"} <= set(names)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["sim-serve", "nosuch"], "unknown instrument"),
        (["sim-serve"], "name an INSTRUMENT"),
        (["sim-serve", "keithley2450", "--speed", "0"], "--speed"),
        (["sim-serve", "keithley2450", "--scenario", "/nonexistent/x.yaml"], "x.yaml"),
        (["instruments", "scan", "--timeout", "-1"], "--timeout"),
    ],
)
def test_user_mistakes_exit_2(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_scan_reports_what_does_not_answer(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["instruments", "scan", "--no-discover", "--timeout", "0.2",
                 "--resource", "TCPIP::127.0.0.1::1::SOCKET"]) == 0
    out = capsys.readouterr().out
    assert "TCPIP::127.0.0.1::1::SOCKET" in out
    assert "could not open" in out
