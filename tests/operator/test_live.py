"""The live view: driven in a pseudo-terminal it shows every channel and updates; --json and --quiet."""

from __future__ import annotations

import fcntl
import io
import json
import os
import pty
import re
import select
import struct
import subprocess
import termios
from pathlib import Path

import pytest
from rich.console import Console

from licycler.events import Event
from licycler.live import LiveModel, StepPlan, format_duration, render_run, sparkline
from licycler.live.render import WIDE_COLUMNS
from licycler.protocols import parse_schedule
from tests.operator.conftest import PYTHON

SHORT = """
schedule: 1
name: live-view test
cell: {chemistry: Li||Li, electrode_area: 1.13 cm^2}
limits: {voltage_min: -1 V, voltage_max: 1 V, current_density_max: 5 mA/cm^2}
record: {every: 10 s, dv: 5 mV}
steps:
  - rest: 10 min
  - repeat:
      count: 3
      steps:
        - plate: {current: 1 mA/cm^2, until: {capacity: 0.5 mAh/cm^2}}
        - strip: {current: 1 mA/cm^2, until: {capacity: 0.5 mAh/cm^2}}
"""

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Z0-9]|\r")
CHANNELS = ("ch1", "ch2", "ch3")


def _run_in_pty(argv: list[str], columns: int = 180, rows: int = 50) -> tuple[int, str]:
    """Run ``argv`` with a pseudo-terminal as its stdout/stderr; returns (status, everything it wrote)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    env = {**os.environ, "COLUMNS": str(columns), "LINES": str(rows), "TERM": "xterm-256color"}
    env.pop("NO_COLOR", None)
    proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env, close_fds=True)
    os.close(slave)
    out = bytearray()
    while True:
        ready, _, _ = select.select([master], [], [], 60)
        if not ready:
            proc.kill()
            break
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        out += chunk
    os.close(master)
    return proc.wait(timeout=60), out.decode("utf-8", "replace")


def _frames(raw: str) -> list[str]:
    """The screens the live view drew: rich redraws its table in place, each frame starting with the title."""
    text = ANSI.sub("", raw)
    parts = text.split("· live-view test")  # the title (run id · schedule name) opens every frame
    return parts[1:]


def test_live_view_in_a_terminal_shows_every_channel_and_updates(tmp_path: Path) -> None:
    schedule = tmp_path / "short.yaml"
    schedule.write_text(SHORT, encoding="utf-8")
    status, raw = _run_in_pty([*PYTHON, "run", str(schedule), "--sim", "--channels", "3",
                               "--db", f"sqlite:///{tmp_path / 'live.db'}"])  # fmt: skip
    assert status == 0, raw[-2000:]
    assert "\x1b[" in raw  # drawn with terminal control sequences (colour, cursor movement)
    frames = _frames(raw)
    assert len(frames) >= 2, raw[-2000:]
    for frame in (frames[0], frames[-1]):
        for name in CHANNELS:
            assert re.search(rf"│\s*{name}\s*│", frame), frame
        for heading in ("state", "step", "cycle", "V", "I", "CE trend", "depletion", "pressure", "alarms"):
            assert heading in frame
    first, last = frames[0], frames[-1]
    assert first != last
    assert "completed" not in first  # drawn before any channel finished ...
    assert len(re.findall(r"│\s*completed\s*│", last)) == 3  # ... and redrawn when all three had
    assert re.search(r"run\s+100%", last)
    assert "ETA done" in last
    assert re.search(r"\d+\.\d{4} V", last)
    assert re.search(r"\d+\.\d{3} mA", last)
    assert "MPa" in last  # the twin's rig reading
    assert "Traceback" not in raw


def test_json_mode_prints_one_object_per_line(tmp_path: Path) -> None:
    schedule = tmp_path / "short.yaml"
    schedule.write_text(SHORT, encoding="utf-8")
    db = f"sqlite:///{tmp_path / 'json.db'}"
    out = subprocess.run([*PYTHON, "run", str(schedule), "--sim", "--channels", "2", "--json", "--db", db],
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stderr
    objects = [json.loads(line) for line in out.stdout.splitlines()]
    statuses = [o for o in objects if o["type"] == "status"]
    assert {o["channel"] for o in statuses} == {"ch1", "ch2"}
    final = {o["channel"]: o for o in statuses}
    assert all(o["state"] == "completed" and o["cycle"] == 3 for o in final.values())
    assert objects[-1]["type"] == "result"
    assert objects[-1]["states"] == {"ch1": "completed", "ch2": "completed"}


def test_quiet_prints_nothing(tmp_path: Path) -> None:
    schedule = tmp_path / "short.yaml"
    schedule.write_text(SHORT, encoding="utf-8")
    out = subprocess.run([*PYTHON, "run", str(schedule), "--sim", "--quiet", "--db", f"sqlite:///{tmp_path / 'q.db'}"],
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert out.returncode == 0
    assert out.stdout == ""
    assert out.stderr == ""


def test_model_alarms_and_progress() -> None:
    schedule = parse_schedule(SHORT, source="short.yaml")
    model = LiveModel("r1", schedule, ["ch1"], wall_clock=lambda: 0.0)
    model.emit(Event(0.0, "engine", "transition", "start", "from step 0", "ch1", {"from": "idle", "to": "running"}))
    model.emit(Event(5.0, "monitor:depletion", "finding", "depletion", "surface nearly depleted", "ch1",
                     {"depletion_index": 0.83}))  # fmt: skip
    model.emit(Event(6.0, "monitor:depletion", "decision", "continue", "continue after depletion", "ch1"))
    model.emit(Event(9.0, "safety", "trip", "voltage_under_limit", "voltage -1.2 V below the limit", "ch1"))
    (view,) = model.snapshot()
    assert view.state == "running"
    assert view.depletion_index == 0.83
    assert [a.severity for a in view.alarms] == ["warning", "alarm"]  # "continue" is not an alarm
    # a plate of 0.5 mAh/cm^2 at 1 mA/cm^2 lasts 30 min: a quarter of the charge after 450 s
    plan = StepPlan(schedule)
    est = plan.estimate(1, 450.0, 0.25 * 0.5 * 3.6 * 1.13, 1050.0)
    assert est.step_fraction is not None
    assert abs(est.step_fraction - 0.25) < 1e-12
    assert est.step_remaining_s is not None
    assert abs(est.step_remaining_s - 1350.0) < 1e-9
    # the rest of the run: 5 more half-cycles of 1800 s each
    assert est.run_remaining_s is not None
    assert abs(est.run_remaining_s - (1350.0 + 5 * 1800.0)) < 1e-6


@pytest.mark.parametrize("width", [80, 100, 120, 160, 200])
def test_the_table_fits_the_terminal(width: int) -> None:
    schedule = parse_schedule(SHORT, source="short.yaml")
    model = LiveModel("r1", schedule, list(CHANNELS), wall_clock=lambda: 0.0)
    for name in CHANNELS:
        model.emit(Event(0.0, "engine", "transition", "start", "", name, {"from": "idle", "to": "running"}))
    model.emit(Event(9.0, "safety", "trip", "pressure_out_of_window", "stack pressure 0.69 MPa outside the window",
                     "ch3"))  # fmt: skip
    console = Console(width=width, record=True, file=io.StringIO(), color_system=None)
    console.print(render_run("r1 · live-view test", model.snapshot(), list(model.log), width))
    lines = console.export_text().splitlines()
    assert max(len(line) for line in lines) <= width
    text = "\n".join(lines)
    for name in CHANNELS:
        assert name in text
    assert "pressure_out_of_window" in text
    assert ("CE trend" in text) == (width >= WIDE_COLUMNS)


def test_formatting() -> None:
    assert format_duration(3725) == "1:02:05"
    assert format_duration(None) == "–"
    assert format_duration(2 * 86400 + 3 * 3600) == "2 d 3 h"
    assert sparkline([1.0, 2.0, 3.0]) == "▁▅█"
