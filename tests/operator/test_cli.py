"""The command line as an operator meets it: every mistake is a short message and a non-zero status
(no traceback); ``station check`` against emulated instruments; ``licycler demo`` to the end."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from licycler.protocols import protocol_path
from tests.operator.conftest import PYTHON, KnownRun

CALC_OK = ["--diffusivity", "3.22e-10 m^2/s", "--concentration", "1 M", "--transference-number", "0.38"]
UNREACHABLE_DB = "postgresql://licycler@127.0.0.1:1/licycler"


def _cli(*argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*PYTHON, *argv], capture_output=True, text=True, timeout=timeout)


def _assert_short_error(out: subprocess.CompletedProcess[str], *words: str, status: int = 2) -> None:
    lines = out.stderr.strip().splitlines()
    assert out.returncode == status, (out.returncode, out.stdout, out.stderr)
    assert 1 <= len(lines) <= 2, out.stderr
    assert "Traceback" not in out.stderr + out.stdout
    assert lines[0].startswith("licycler")
    for word in words:
        assert word in out.stderr, (word, out.stderr)


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    good = protocol_path("li-li-symmetric").read_text(encoding="utf-8")
    paths = {
        "bad_yaml": "name: broken\ncell: [Li||Li\n",
        "bad_unit": good.replace("current: 1 mA/cm^2", "current: 1 parsec", 1),
        "unknown_key": good.replace("record:", "recrod:", 1),
        "station_unknown_model": "name: s\ninstruments:\n  smu1: {model: keithley9999, resource: 'x'}\n"
                                 "channels:\n  A1: {instrument: smu1}\n",
        "station_unknown_instrument": "name: s\ninstruments:\n  smu1: {model: keithley2450, resource: 'x'}\n"
                                      "channels:\n  A1: {instrument: smu2}\n",
        "station_unreachable": "name: s\ninstruments:\n"
                               "  smu1: {model: keithley2450, resource: 'TCPIP::127.0.0.1::1::SOCKET'}\n"
                               "channels:\n  A1: {instrument: smu1, electrode_area: 1 cm^2}\n",
    }  # fmt: skip
    out = {}
    for name, text in paths.items():
        out[name] = tmp_path / f"{name}.yaml"
        out[name].write_text(text, encoding="utf-8")
    return out


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["run", "{tmp}/missing.yaml", "--sim"], ["missing.yaml", "no such file"]),
        (["run", "{bad_yaml}", "--sim"], ["bad_yaml.yaml:", "not valid YAML"]),
        (["run", "{bad_unit}", "--sim"], ["bad_unit.yaml:", "current", "parsec"]),
        (["run", "{unknown_key}", "--sim"], ["unknown_key.yaml:", "recrod"]),
        (["run", "no-such-protocol", "--sim"], ["no standard protocol"]),
        (["run", "li-li-symmetric", "--sim", "no-such-scenario"], ["no scenario named"]),
        (["run", "li-li-symmetric", "--sim", "--db", UNREACHABLE_DB], ["cannot open the database", "127.0.0.1"]),
        (["run", "li-li-symmetric", "--station", "{station_unknown_model}"], ["keithley9999"]),
        (["station", "check", "{station_unknown_model}"], ["station_unknown_model.yaml:", "keithley9999"]),
        (["station", "check", "{station_unknown_instrument}"], ["station_unknown_instrument.yaml:", "smu2"]),
        (["station", "check", "{station_unreachable}"], ["cannot open smu1"]),
        (["station", "check", "{tmp}/missing.yaml"], ["no such file"]),
        (["report", "abc123", "--db", UNREACHABLE_DB], ["cannot open the database"]),
        (["report", "--list", "--db", UNREACHABLE_DB], ["cannot open the database"]),
        (["report", "--db", "sqlite:///{tmp}/empty.db"], ["name a RUN"]),
        (["demo", "--cycles", "0", "--db", "sqlite:///{tmp}/d.db"], ["--cycles"]),
        (["demo", "--db", UNREACHABLE_DB], ["cannot open the database"]),
        (["sim-serve", "no-such-instrument"], ["unknown instrument"]),
        (["calc", "sand-time", *CALC_OK, "--current-density", "5 parsec"], ["--current-density"]),
        (["report", "abc123", "--db", "sqlite:///{tmp}/nothing-here.db"], ["no database at"]),
        (["no-such-command"], ["invalid choice"]),
    ],
)
def test_every_mistake_is_a_short_message(argv: list[str], words: list[str], files: dict[str, Path],
                                          tmp_path: Path) -> None:  # fmt: skip
    names = {k: str(v) for k, v in files.items()}
    _assert_short_error(_cli(*(a.format(tmp=tmp_path, **names) for a in argv)), *words)


def test_an_unknown_run_names_the_latest(known_run: KnownRun) -> None:
    _assert_short_error(_cli("report", "nosuchrun", "--db", known_run.url), "no run 'nosuchrun'", known_run.run_id)


@pytest.fixture
def served() -> Iterator[tuple[str, str]]:
    """An emulated Keithley 2450 on TCP and a Mark-10 force gauge on a pseudo-terminal."""
    procs = [subprocess.Popen([*PYTHON, "sim-serve", name], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              text=True) for name in ("keithley2450", "mark10")]  # fmt: skip
    try:
        resources = []
        for proc in procs:
            assert proc.stdout is not None
            resources.append(proc.stdout.readline().strip())
        yield resources[0], resources[1]
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=10)


def _station(tmp_path: Path, smu: str, gauge: str, pressure_min: str) -> Path:
    path = tmp_path / "station.yaml"
    path.write_text(f"""station: 1
name: bench-1
limits: {{voltage_min: -2 V, voltage_max: 2 V, current_max: 20 mA, pressure_min: {pressure_min}, pressure_max: 5 MPa}}
instruments:
  smu1: {{model: keithley2450, resource: "{smu}", timeout: 2 s}}
  rig1: {{model: mark10, resource: "{gauge}", area: 1.13 cm^2}}
channels:
  A1: {{instrument: smu1, electrode_area: 1.13 cm^2, rig: rig1, limits: {{current_max: 5 mA}}}}
""", encoding="utf-8")  # fmt: skip
    return path


def test_station_check_passes_and_fails_on_the_pressure_interlock(served: tuple[str, str], tmp_path: Path) -> None:
    smu, gauge = served
    ok = _cli("station", "check", str(_station(tmp_path, smu, gauge, "0.1 MPa")), "--json", timeout=60)
    assert ok.returncode == 0, ok.stderr
    (result,) = [json.loads(line) for line in ok.stdout.splitlines()]
    assert result["ok"] is True
    assert result["identity"].startswith("KEITHLEY INSTRUMENTS,MODEL 2450")
    assert result["output_off"] is True  # secured, nothing sourced
    assert result["limits"]["current_max_a"] == pytest.approx(5e-3)  # the channel's layer tightens the station's
    assert 0.1e6 < result["pressure_pa"] < 5e6
    bad = _cli("station", "check", str(_station(tmp_path, smu, gauge, "4 MPa")), timeout=60)
    assert bad.returncode == 1
    assert "FAIL A1" in bad.stdout
    assert "outside the window" in bad.stdout
    assert "Traceback" not in bad.stdout + bad.stderr


def test_demo_runs_to_the_end_with_its_reports(tmp_path: Path) -> None:
    out = _cli("demo", "--cycles", "1", "--no-live", "--db", f"sqlite:///{tmp_path / 'demo.db'}", timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    reports = [Path(line.split(maxsplit=1)[1]) for line in out.stdout.splitlines() if line.startswith("report:")]
    assert len(reports) == 2
    for page in reports:
        assert page.exists()
        assert page.read_text(encoding="utf-8").count("data:image/png;base64,") == 6
    assert "demo finished" in out.stdout
    assert f"sqlite:///{tmp_path / 'demo.db'}" in out.stdout
    assert "Traceback" not in out.stderr
