"""Two stations (``licycler run --sim --mqtt`` processes) and one recorder process on loopback,
recording into a fresh PostgreSQL database: every cycle of both reaches it exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from sqlalchemy import text

from licycler.store import Store

from .helpers import station_name
from .services import fresh_database, mosquitto

SCHEDULE = """\
schedule: 1
name: fleet test
cell: {chemistry: Li||Li, electrode_area: 1 cm^2}
limits: {voltage_min: -1 V, voltage_max: 1 V}
record: {every: 10 s}
steps:
  - rest: 60 s
  - repeat:
      count: 6
      steps:
        - plate: {current: 1 mA/cm^2, until: {capacity: 0.1 mAh/cm^2}}
        - strip: {current: 1 mA/cm^2, until: {capacity: 0.1 mAh/cm^2}}
"""
CHANNELS = ["ch1", "ch2"]


def licycler(*args: str, **kwargs: object) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "licycler", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env, **kwargs)  # type: ignore[call-overload]  # fmt: skip


def wait_for_line(process: subprocess.Popen[str], marker: str) -> list[str]:
    lines = []
    assert process.stdout is not None
    for line in process.stdout:
        lines.append(line)
        if marker in line:
            return lines
    raise AssertionError(f"process ended before '{marker}':\n{''.join(lines)}")


def test_two_stations_and_one_recorder_write_every_cycle_exactly_once(tmp_path: Path) -> None:
    (tmp_path / "broker").mkdir()
    sched = tmp_path / "fleet.yaml"
    sched.write_text(SCHEDULE)
    names = [station_name("fleet-a"), station_name("fleet-b")]
    with fresh_database() as db_url, mosquitto(tmp_path / "broker") as broker:
        recorder = licycler("recorder", "--mqtt", broker.url(), "--db", db_url, "--name", names[0])
        try:
            wait_for_line(recorder, "ready")
            stations = [
                licycler(
                    "run", str(sched), "--sim", "--channels", "2", "--seed", str(7 + k), "--quiet",
                    "--db", f"sqlite:///{tmp_path / f'{name}.db'}", "--mqtt", broker.url(), "--mqtt-station", name,
                )
                for k, name in enumerate(names)
            ]
            outputs = [p.communicate(timeout=120)[0] for p in stations]
            for p, out in zip(stations, outputs, strict=True):
                assert p.returncode == 0, out
        finally:
            recorder.send_signal(signal.SIGINT)
            tail = recorder.communicate(timeout=30)[0]
        assert recorder.returncode == 0, tail
        assert "stopped" in tail
        lab = Store(db_url, create=False)
        expected = 0
        for name in names:
            station = Store(f"sqlite:///{tmp_path / f'{name}.db'}", create=False)
            (run,) = station.runs()
            for ch in CHANNELS:
                cycles = station.cycles(run["run_id"], ch)
                assert [c["cycle"] for c in cycles] == list(range(1, 7))
                assert lab.cycles(run["run_id"], ch) == cycles
                assert lab.events(run["run_id"], ch) == station.events(run["run_id"], ch)
                expected += len(cycles)
            recorded = lab.run(run["run_id"])
            assert recorded is not None
            assert recorded["status"] == "completed"
            assert recorded["schedule_sha256"] == run["schedule_sha256"]
            station.close()
        with lab.engine.connect() as conn:
            total = conn.execute(text("SELECT count(*) FROM cycles")).scalar_one()
            repeated = conn.execute(text(
                "SELECT count(*) FROM (SELECT run_id, channel, cycle FROM cycles "
                "GROUP BY run_id, channel, cycle HAVING count(*) > 1) AS d")).scalar_one()  # fmt: skip
        lab.close()
        assert total == expected == 2 * 2 * 6
        assert repeated == 0
