"""A hardware-free 1000-cycle Li||Li run (1 mA/cm^2, 1 mAh/cm^2 half-cycles, 1 s records: 7.2 million samples)
with every safety check, the monitors and the SQLite store, against the raw pipeline it is built on: the twin
filling the same samples in large blocks plus raw sqlite3 inserting the same rows. Time and peak memory of
each, measured in child processes of this run; the peak memory counts the run's process and its store
writer's (a child of it), and is measured again on 4000 cycles to show it does not grow with the run."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

from benchmarks.harness import Result, ratio_result

SCHEDULE = """\
name: benchmark Li||Li {cycles} cycles
cell: {{chemistry: Li||Li, electrode_area: 1 cm^2}}
limits: {{voltage_min: -1 V, voltage_max: 1 V}}
record: {{every: 1 s}}
steps:
  - repeat:
      count: {cycles}
      steps:
        - plate: {{current: 1 mA/cm^2, until: {{capacity: 1 mAh/cm^2, voltage_below: -0.9 V}}}}
        - strip: {{current: 1 mA/cm^2, until: {{capacity: 1 mAh/cm^2, voltage_above: 0.9 V}}}}
"""

ENGINE = """
import asyncio, json, time, sys
from licycler.engine import RunController
from licycler.engine.sim import twin_setups
from licycler.protocols import load_schedule
from licycler.store import Store
sched = load_schedule(sys.argv[1])
store = Store("sqlite:///" + sys.argv[2])
setups, _ = twin_setups(sched)
start = time.perf_counter()
ctl = RunController(sched, setups, store)
states = asyncio.run(ctl.run())
elapsed = time.perf_counter() - start
n = store.sample_count(ctl.run_id)
import resource
peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
writer_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0  # the store's writer process
print(json.dumps({"seconds": elapsed, "samples": n, "state": str(states["ch1"]), "peak_mb": peak_mb,
                  "writer_mb": writer_mb}))
"""

RAW = """
import json, sqlite3, time, sys, dataclasses
import numpy as np
from licycler.sim_instruments.scenario import load_scenario
from licycler.sim_instruments.twin import Twin
from licycler.store import Store, SampleRows
cycles = int(sys.argv[1])
Store("sqlite:///" + sys.argv[2]).close()
conn = sqlite3.connect(sys.argv[2]); conn.execute("PRAGMA journal_mode=WAL"); conn.execute("PRAGMA synchronous=NORMAL")
cfg = load_scenario("default")
twin = Twin(dataclasses.replace(cfg, cell=dataclasses.replace(cfg.cell, area_m2=1e-4)))
sql = "INSERT INTO samples VALUES (?,?,?,?,?,?,?,?,?,?)"
start = time.perf_counter()
t0, seq = 0.0, 0
for k in range(2 * cycles):
    current = -1e-3 if k % 2 == 0 else 1e-3
    twin.cell.source_current(current, t0)
    for b in range(0, 3600, 1000):
        n = min(1000, 3600 - b)
        t = t0 + 1.0 + np.arange(b, b + n, dtype=np.float64)
        v, i = twin.cell.measure(t)
        block = SampleRows(np.arange(seq, seq + n), t, v, i, np.cumsum(i), np.full(n, k), np.full(n, k // 2))
        rows = block.rows("r", "c")
        with conn:
            conn.executemany(sql, rows)
        seq += n
    t0 += 3600.0
print(json.dumps({"seconds": time.perf_counter() - start, "samples": seq}))
"""


def _child(code: str, *args: str) -> dict[str, float]:
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def _engine(tmp: str, cycles: int) -> dict[str, float]:
    schedule = Path(tmp) / f"bench{cycles}.yaml"
    schedule.write_text(SCHEDULE.format(cycles=cycles))
    db = Path(tmp) / f"engine{cycles}.db"
    try:
        return _child(textwrap.dedent(ENGINE), str(schedule), str(db))
    finally:
        for f in Path(tmp).glob(f"engine{cycles}.db*"):
            f.unlink()


def run(quick: bool) -> list[Result]:
    cycles, long_cycles = (20, 80) if quick else (1000, 4000)
    with tempfile.TemporaryDirectory() as tmp:
        raw = _child(textwrap.dedent(RAW), str(cycles), str(Path(tmp) / "raw.db"))
        engine = _engine(tmp, cycles)
        long = _engine(tmp, long_cycles)
    peak_mb = engine["peak_mb"] + engine["writer_mb"]
    long_mb = long["peak_mb"] + long["writer_mb"]
    samples = engine["samples"]
    notes = f"{cycles} cycles, {samples:,} samples recorded, final state {engine['state']}"
    memory = (
        f"run {engine['peak_mb']:.0f} MB + its store writer {engine['writer_mb']:.0f} MB; {long_cycles} "
        f"cycles: {long['peak_mb']:.0f} + {long['writer_mb']:.0f} MB in {long['seconds']:.1f} s (an upper bound: "
        "the forked writer's peak counts the pages it shares with the run)"
    )
    target = "" if quick else "<= 1.0"
    return [
        ratio_result(f"hardware-free run, {cycles} cycles (s)", engine["seconds"], "s", 10.0, "the 10 s target",
                     target=target, notes=notes),
        ratio_result(f"hardware-free run, {cycles} cycles, vs the goal (s)", engine["seconds"], "s", 5.0,
                     "the 5 s goal"),
        ratio_result("hardware-free run vs raw twin + sqlite3 (time)", engine["seconds"], "s", raw["seconds"],
                     "raw twin blocks + executemany", notes=f"{raw['samples']:,} raw samples"),
        ratio_result("hardware-free run, peak memory (MB)", peak_mb, "MB", 300.0, "the 300 MB budget",
                     target=target, notes=memory),
        ratio_result(f"peak memory, {long_cycles} vs {cycles} cycles", long_mb, "MB", peak_mb,
                     f"{cycles} cycles", target="" if quick else "<= 1.1"),
    ]  # fmt: skip
