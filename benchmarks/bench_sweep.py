"""A sweep of 16 hardware-free runs of 200 Li||Li cycles (bench_engine's schedule) over a 4 x 4 grid of
scenario parameters, with one worker and with two, in child processes of this run: the speed-up of two
workers over one (the issue asks for >= 1.7 on this 2-core machine)."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.bench_engine import SCHEDULE
from benchmarks.harness import Result, ratio_result

VARY = ["--vary", "electrolyte.diffusivity=2.5e-10 m^2/s,3e-10 m^2/s,3.5e-10 m^2/s,4e-10 m^2/s",
        "--vary", "separator.thickness=20 um,25 um,30 um,40 um"]  # fmt: skip


def _sweep(tmp: str, cycles: int, workers: int, vary: list[str]) -> float:
    schedule = Path(tmp) / "sweep.yaml"
    schedule.write_text(SCHEDULE.format(cycles=cycles))
    db = Path(tmp) / f"sweep{workers}.db"
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "licycler", "sweep", str(schedule), "--sim", "default", *vary,
                    "--workers", str(workers), "--db", f"sqlite:///{db}", "--json"],
                   check=True, capture_output=True)  # fmt: skip
    return time.perf_counter() - start


def run(quick: bool) -> list[Result]:
    cycles = 5 if quick else 200
    vary = VARY[:2] if quick else VARY
    with tempfile.TemporaryDirectory() as tmp:
        one = _sweep(tmp, cycles, 1, vary)
        two = _sweep(tmp, cycles, 2, vary)
    runs = 4 if quick else 16
    return [
        ratio_result(f"sweep of {runs} x {cycles} cycles, speed-up of 2 workers", one / two, "x", 1.0, "1 worker",
                     target="" if quick else ">= 1.7", notes=f"1 worker {one:.1f} s, 2 workers {two:.1f} s"),
    ]  # fmt: skip
