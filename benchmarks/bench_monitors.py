"""What the live monitors cost: the same hardware-free run (twin, safety supervisor, SQLite store)
with every monitor on (the default ``watch:``) against ``watch: {enabled: false}``.

Two cells: the default Li||Li coin cell in its pressure rig and the Li||Cu cell (nucleation, CE,
inventory). The issue asks that all monitors together cost less than 25 % of the run's time
(ratio <= 1.25).

The ratio is the median of the ratios of 21 pairs of runs (with / without monitors, run one after
the other, alternating which goes first); the figures shown are the medians of each side. On a
shared 2-core machine the same run's time varies by +-15 % from one run to the next (a plain
Python loop timed in a row does too), so a single pair's ratio ranges over about 0.9 to 1.4 and a
best-of-three moves by 0.1 either way; the median of 21 pair ratios is stable to a few hundredths.
The notes give the spread of the pair ratios, the ratio of the medians and of the best times.
"""

from __future__ import annotations

import asyncio
import statistics
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


PAIRS = 21


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
    for path in db.parent.glob(db.name + "*"):  # the database, its WAL and shared memory: 44 runs add up
        path.unlink()
    return elapsed, rows, samples


def _pairs(template: str, scenario: str, cycles: int, tmp: Path, pairs: int) -> tuple[float, float, float, str]:
    """Median time with monitors, median without, the median pair ratio, and notes."""
    on = template.format(watch="", cycles=cycles)
    off = template.format(watch="watch: {enabled: false}", cycles=cycles)
    t_on: list[float] = []
    t_off: list[float] = []
    rows = samples = 0
    for k in range(pairs):
        order = (("off", off), ("on", on)) if k % 2 == 0 else (("on", on), ("off", off))
        for label, text in order:
            elapsed, n_rows, n_samples = _run_once(text, scenario, tmp / f"{scenario}-{label}-{k}.db")
            if label == "on":
                t_on.append(elapsed)
                rows, samples = n_rows, n_samples
            else:
                t_off.append(elapsed)
    ratios = sorted(a / b for a, b in zip(t_on, t_off, strict=True))
    med_on, med_off = statistics.median(t_on), statistics.median(t_off)
    notes = (f"{samples:,} samples, {rows:,} metric rows; median of {pairs} pair ratios (alternating order), "
             f"pairs {ratios[0]:.2f} to {ratios[-1]:.2f}; ratio of medians {med_on / med_off:.3f}, "
             f"of best times {min(t_on) / min(t_off):.3f}")  # fmt: skip
    return med_on, med_off, statistics.median(ratios), notes


def run(quick: bool) -> list[Result]:
    cycles = 3 if quick else 20
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, template, scenario in (("Li||Li", LI_LI, "default"), ("Li||Cu", LI_CU, "li-cu")):
            t_on, t_off, ratio, notes = _pairs(template, scenario, cycles, Path(tmp), 3 if quick else PAIRS)
            results.append(
                ratio_result(
                    f"hardware-free run with all monitors vs without ({name}, {cycles} cycles)",
                    t_on, "s", t_off, "the same run, watch: {enabled: false}",
                    target="<= 1.25" if not quick else "",
                    notes=notes,
                    ratio=ratio,
                )
            )  # fmt: skip
    return results
