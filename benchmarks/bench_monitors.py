"""What the live monitors cost: the same hardware-free run (twin, safety supervisor, SQLite store)
with every monitor on (the default ``watch:``) against ``watch: {enabled: false}``.

Two cells: the default Li||Li coin cell in its pressure rig (blocks of 10 readings between pressure
reads, the engine's busiest case per sample) and the Li||Cu cell (nucleation, CE, inventory). Runs
alternate, best of three each; the issue asks that all monitors together cost less than 25 % of the
run's time (ratio <= 1.25).
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

from benchmarks.harness import Result, ratio_result
from licycler.engine import RunController
from licycler.engine.sim import twin_setups
from licycler.protocols import parse_schedule
from licycler.store import Store
from licycler.yamlsource import load_yaml_text

LI_LI = """\
name: benchmark Li||Li
cell: {{chemistry: Li||Li, electrode_area: 2.01 cm^2}}
limits: {{voltage_min: -1 V, voltage_max: 1 V}}
record: {{every: 1 s}}
{watch}
steps:
  - repeat:
      count: {cycles}
      steps:
        - plate: {{current: 1 mA/cm^2, until: {{capacity: 1 mAh/cm^2, voltage_below: -0.9 V}}}}
        - strip: {{current: 1 mA/cm^2, until: {{capacity: 1 mAh/cm^2, voltage_above: 0.9 V}}}}
"""

LI_CU = """\
name: benchmark Li||Cu
cell: {{chemistry: Li||Cu, electrode_area: 2.01 cm^2}}
limits: {{voltage_min: -3.5 V, voltage_max: 3.5 V}}
record: {{every: 1 s}}
{watch}
steps:
  - repeat:
      count: {cycles}
      steps:
        - plate:
            current: 1 mA/cm^2
            until: {{capacity: 1 mAh/cm^2, voltage_below: -0.9 V}}
            on: {{voltage_below: stop}}
        - strip: {{current: 1 mA/cm^2, until: {{voltage_above: 1 V, time: 2 h}}}}
"""


def _run_once(text: str, scenario: str, db: Path) -> tuple[float, int, int]:
    sched = parse_schedule(load_yaml_text(text, "bench.yaml"), text, "bench.yaml")
    setups, _ = twin_setups(sched, scenario)
    store = Store(f"sqlite:///{db}")
    start = time.perf_counter()
    ctl = RunController(sched, setups, store)
    asyncio.run(ctl.run())
    elapsed = time.perf_counter() - start
    rows = len(store.metrics(ctl.run_id))
    samples = len(store.samples(ctl.run_id, "ch1"))
    store.close()
    return elapsed, rows, samples


def _pair(template: str, scenario: str, cycles: int, tmp: Path, repeat: int = 3) -> tuple[float, float, str]:
    on = template.format(watch="", cycles=cycles)
    off = template.format(watch="watch: {enabled: false}", cycles=cycles)
    best_on = best_off = float("inf")
    rows = samples = 0
    for k in range(repeat):
        t_off, _, _ = _run_once(off, scenario, tmp / f"{scenario}-off-{k}.db")
        t_on, rows, samples = _run_once(on, scenario, tmp / f"{scenario}-on-{k}.db")
        best_off, best_on = min(best_off, t_off), min(best_on, t_on)
    return best_on, best_off, f"{samples:,} samples, {rows:,} metric rows"


def run(quick: bool) -> list[Result]:
    cycles = 3 if quick else 20
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, template, scenario in (("Li||Li", LI_LI, "default"), ("Li||Cu", LI_CU, "li-cu")):
            t_on, t_off, notes = _pair(template, scenario, cycles, Path(tmp))
            results.append(
                ratio_result(
                    f"hardware-free run with all monitors vs without ({name}, {cycles} cycles)",
                    t_on, "s", t_off, "the same run, watch: {enabled: false}",
                    target="<= 1.25" if not quick else "",
                    notes=notes,
                )
            )  # fmt: skip
    return results
