"""Fingerprints of hardware-free runs, to pin that speed work changes no result.

``python -m tests.engine.golden`` runs :data:`RUNS` and writes their fingerprints to
:data:`GOLDEN` (done once, on the code before the speed work of issue 16, at the commit named in
the file); ``tests/engine/test_golden.py`` runs them again with today's code and compares. A
fingerprint holds every recorded sample column (as SHA-256 of its exact float64/int64 bytes, and
a few sums to read when they differ), every event and monitor metric (time, kind, cause, message,
values), every step and the CE of every cycle.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from licycler.engine import RunController
from licycler.engine.sim import twin_setups
from licycler.protocols import load_schedule
from licycler.store import Store

GOLDEN = Path(__file__).with_name("golden_runs.json")

CYCLING = """\
name: golden {name}
cell: {{chemistry: Li||Li, electrode_area: {area}}}
limits: {{voltage_min: -1 V, voltage_max: 1 V}}
record: {{every: 1 s}}
{watch}steps:
  - rest: {rest}
  - repeat:
      count: 20
      steps:
        - plate: {{current: {current}, until: {{capacity: 1 mAh/cm^2, voltage_below: -0.9 V}}}}
        - strip: {{current: {current}, until: {{capacity: 1 mAh/cm^2, voltage_above: 0.9 V}}}}
"""

LI_LI = CYCLING.format(name="Li||Li", area="1 cm^2", watch="", rest="10 min", current="1 mA/cm^2")

HOT_SPOT = CYCLING.format(
    name="hot spot, derated", area="2.01 cm^2", rest="5 min", current="2 mA/cm^2",
    watch="watch:\n  model: {separator: {thickness: 260 um, porosity: 0.9}, alpha: 25}\n"
          "  rules: {soft_short: continue, depletion: derate}\n",
)  # fmt: skip

RUNS: dict[str, dict[str, Any]] = {
    "li-li-20": {"schedule": LI_LI, "scenario": None, "channels": 2, "seed": 7},
    "li-cu-ce-20": {"schedule": "li-cu-ce", "scenario": None, "channels": 1, "seed": 11, "cycles": 20},
    "hot-spot": {"schedule": HOT_SPOT, "scenario": "soft-short", "channels": 1, "seed": 3},
}
"""Three 20-cycle runs: a plain Li||Li on two cells, a Li||Cu CE run, and the soft-short scenario's
hot spot (alpha 25 on glass fibre), whose depletion the monitors find and derate every plating."""


def _digest(a: np.ndarray) -> str:
    """SHA-256 of the exact bytes, with -0.0 read as 0.0: the version 1 store's SQLite REAL column
    kept no sign of a zero (the twin's rest readings hold a few -0.0), the block store keeps it."""
    if a.dtype.kind == "f":
        a = a + 0.0
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()[:24]


def _schedule_file(tmp: Path, spec: dict[str, Any]) -> Path:
    text = spec["schedule"]
    if "\n" not in text:  # a library protocol, shortened to ``cycles``
        from licycler.protocols.library import protocol_path

        text = protocol_path(text).read_text(encoding="utf-8")
        if "cycles" in spec:
            text = text.replace("count: 100", f"count: {spec['cycles']}").replace(
                "count: 50", f"count: {spec['cycles']}"
            )
    path = tmp / "schedule.yaml"
    path.write_text(text, encoding="utf-8")
    return path


_STEP_FIELDS = ("step_seq", "kind", "start_s", "end_s", "charge_c", "energy_j", "ended_by")


def _metric_row(m: dict[str, Any]) -> list[float]:
    return [m["seq"], m["time_s"], m["cycle"], np.nan if m["value"] is None else m["value"]]


def fingerprint_store(store: Store, run_id: str) -> dict[str, Any]:
    """What a run recorded, channel by channel, in a form that compares exactly."""
    out: dict[str, Any] = {}
    for ch in store.channels(run_id):
        name = ch["channel"]
        s = store.samples(run_id, name)
        cols = {
            "seq": s.seq, "t_s": s.t_s, "voltage_v": s.voltage_v, "current_a": s.current_a, "charge_c": s.charge_c,
            "step_seq": s.step_seq, "cycle": s.cycle,
            "pressure_pa": s.pressure_pa if s.pressure_pa is not None else np.empty(0),
        }  # fmt: skip
        out[name] = {
            "status": ch["status"],
            "samples": len(s),
            "columns": {k: _digest(v) for k, v in cols.items()},
            "sums": {k: float(np.nansum(v)) for k, v in cols.items()},
            "events": [
                [e["seq"], e["time_s"], e["source"], e["kind"], e["cause"], e["message"], e["values"]]
                for e in store.events(run_id, name)
            ],
            "metrics": _digest(np.array([_metric_row(m) for m in store.metrics(run_id, name)])),
            "metric_names": sorted({m["name"] for m in store.metrics(run_id, name)}),
            "steps": [[r[k] for k in _STEP_FIELDS] for r in store.steps(run_id, name)],
            "ce": [c["ce"] for c in store.cycles(run_id, name)],
        }
    return out


def fingerprint_run(key: str) -> dict[str, Any]:
    """Run ``RUNS[key]`` hardware-free in a temporary store and fingerprint it."""
    spec = RUNS[key]
    with tempfile.TemporaryDirectory() as tmp:
        sched = load_schedule(_schedule_file(Path(tmp), spec))
        store = Store(f"sqlite:///{Path(tmp) / 'run.db'}")
        setups, text = twin_setups(sched, spec["scenario"], channels=spec["channels"], seed=spec["seed"])
        ctl = RunController(sched, setups, store, scenario_text=text)
        asyncio.run(ctl.run())
        result = fingerprint_store(store, ctl.run_id)
        store.close()
    return result


def main() -> None:
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    data = {"commit": commit, "runs": {key: fingerprint_run(key) for key in RUNS}}
    GOLDEN.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {GOLDEN} at {commit}", file=sys.stderr)


if __name__ == "__main__":
    main()
