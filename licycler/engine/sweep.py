"""Parameter sweeps: one schedule, hardware-free, over a grid of scenario parameters, in parallel.

Each point of the grid (the cartesian product of the ``--vary PARAM=V1,V2,...`` values) is a
scenario: the base scenario's YAML with the parameters set at their dotted paths (``defects.alpha``,
``separator.thickness``), read by the scenario reader like any scenario file (so its units and
checks apply). Every point is a recorded hardware-free run with the same seed, so points differ
only by their parameters; a worker process runs whole runs. Each point's outcome (cycles, cycles to
failure, CE, first finding) is one row of ``sweep_results``.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import multiprocessing
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from licycler.engine.run import RunController
from licycler.engine.sim import twin_setups
from licycler.errors import UserError
from licycler.protocols.parse import parse_schedule
from licycler.protocols.schedule import Schedule
from licycler.sim_instruments.scenario import parse_scenario, scenario_path
from licycler.store.sql import Store
from licycler.yamlsource import load_yaml_text

__all__ = ["SweepPoint", "grid", "parse_vary", "point_scenarios", "run_sweep"]


@dataclass(frozen=True)
class SweepPoint:
    """One grid point: its number, its parameter values (as written) and its scenario text."""

    index: int
    params: dict[str, Any]
    scenario_text: str


def parse_vary(specs: Sequence[str]) -> list[tuple[str, list[Any]]]:
    """``PARAM=V1,V2,...`` specs as (dotted path, values); values as YAML scalars ("25 um", 0.5)."""
    out: list[tuple[str, list[Any]]] = []
    for spec in specs:
        name, sep, values = spec.partition("=")
        name = name.strip()
        if not sep or not name or any(not part for part in name.split(".")):
            raise UserError(f"--vary {spec!r}: give PARAM=V1,V2,... (PARAM a scenario key such as defects.alpha)")
        items = [v.strip() for v in values.split(",")]
        if not values.strip() or any(not v for v in items):
            raise UserError(f"--vary {spec!r}: no value for {name} (give V1,V2,...)")
        if name in (n for n, _ in out):
            raise UserError(f"--vary {spec!r}: {name} is varied twice")
        out.append((name, [yaml.safe_load(v) for v in items]))
    if not out:
        raise UserError("give at least one --vary PARAM=V1,V2,...")
    return out


def grid(varies: Sequence[tuple[str, list[Any]]]) -> list[dict[str, Any]]:
    """Every combination of the values, the first parameter varying slowest."""
    names = [n for n, _ in varies]
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*(v for _, v in varies))]


def _set(data: dict[str, Any], path: str, value: Any) -> None:
    keys = path.split(".")
    node = data
    for key in keys[:-1]:
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            raise UserError(f"--vary {path}: '{key}' is not a section of the scenario")
        node = child
    node[keys[-1]] = value


def point_scenarios(scenario: str | Path, varies: Sequence[tuple[str, list[Any]]]) -> list[SweepPoint]:
    """The grid's scenarios, each checked by the scenario reader (a bad parameter or value is a
    UserError naming the point)."""
    path = scenario_path(scenario)
    base = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    points = []
    for k, params in enumerate(grid(varies)):
        data = json.loads(json.dumps(base))  # a deep copy
        for name, value in params.items():
            _set(data, name, value)
        text = yaml.safe_dump(data, sort_keys=False)
        said = ", ".join(f"{n}={v}" for n, v in params.items())
        parse_scenario(text, f"{path.name} with {said}")
        points.append(SweepPoint(k, params, text))
    return points


def _run_point(schedule_text: str, source: str, point: SweepPoint, url: str, seed: int | None,
               scratch: str, samples: bool) -> dict[str, Any]:  # fmt: skip
    """In a worker: one recorded hardware-free run of ``point``; its row of ``sweep_results``."""
    schedule = parse_schedule(load_yaml_text(schedule_text, source), schedule_text, source)
    scenario_file = Path(scratch) / f"point{point.index}.yaml"
    scenario_file.write_text(point.scenario_text, encoding="utf-8")
    store = Store(url, create=False)
    try:
        setups, text = twin_setups(schedule, scenario_file, seed=seed)
        ctl = RunController(schedule, setups, store, scenario_text=text)
        ctl.record_samples = samples
        states = asyncio.run(ctl.run())
        return _outcome(store, ctl.run_id, point, str(states["ch1"]))
    finally:
        store.close()


def _outcome(store: Store, run_id: str, point: SweepPoint, state: str) -> dict[str, Any]:
    cycles = [c for c in store.cycles(run_id, "ch1") if c["ce"] is not None]
    findings = [e for e in store.events(run_id, "ch1") if e["kind"] == "finding"]
    first = findings[0] if findings else None
    ces = [float(c["ce"]) for c in cycles]
    return {
        "point": point.index, "run_id": run_id, "params_json": json.dumps(point.params), "state": state,
        "cycles": len(cycles), "cycles_to_failure": None if state == "completed" else len(cycles),
        "mean_ce": sum(ces) / len(ces) if ces else None, "last_ce": ces[-1] if ces else None,
        "first_finding": None if first is None else first["cause"],
        "first_finding_source": None if first is None else first["source"],
        "first_finding_s": None if first is None else float(first["time_s"]),
    }  # fmt: skip


def run_sweep(
    schedule: Schedule,
    scenario: str | Path,
    varies: Sequence[tuple[str, list[Any]]],
    store: Store,
    *,
    workers: int,
    seed: int | None = None,
    scratch: str,
    samples: bool = False,
) -> tuple[str, list[dict[str, Any]]]:
    """Run every point (``workers`` processes) and record the sweep; returns its id and rows in
    point order. A point's row is written when its run has ended (never half of one). ``samples``:
    store every run's samples too (a 1000-cycle Li||Li run holds 230 MB of them; by default a
    point keeps its steps, cycles, events and metrics, which its row and a report's summary need)."""
    points = point_scenarios(scenario, varies)
    sweep_id = uuid.uuid4().hex[:12]
    store.add_sweep({"sweep_id": sweep_id, "schedule_name": schedule.name, "scenario": str(scenario),
                     "vary_json": json.dumps([[n, v] for n, v in varies]), "points": len(points),
                     "created_unix_s": time.time()})  # fmt: skip
    rows: list[dict[str, Any]] = []
    # a fork server: the pool's own threads make a plain fork of this process unsafe
    ctx = multiprocessing.get_context("forkserver" if "forkserver" in multiprocessing.get_all_start_methods()
                                      else "spawn")  # fmt: skip
    with ProcessPoolExecutor(max_workers=max(1, workers), mp_context=ctx) as pool:
        futures = [pool.submit(_run_point, schedule.text, schedule.source, p, store.url, seed, scratch, samples)
                   for p in points]  # fmt: skip
        for future in futures:
            row = {"sweep_id": sweep_id, **future.result()}
            store.add_sweep_result(row)
            rows.append(row)
    return sweep_id, rows
