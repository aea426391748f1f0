"""Nucleation overpotential on bare Cu: measured per plating (iR-corrected) as the twin sets it,
and its drift caught against the baseline of the first platings."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from licycler.sim_instruments.twin import TwinCell

from .conftest import run_twin

LI_CU = """\
name: li-cu nucleation
seed: 2
cell:
  kind: li-cu
  area: 1 cm^2
  working_lithium: 0 mAh/cm^2
  counter_lithium: 100 mAh/cm^2
  nucleation: {overpotential: 60 mV, charge: 0.005 mAh/cm^2}
  efficiency: {coulombic_efficiency: 0.98, noise: 0.001}
measurement: {voltage_noise: 50 uV}
"""

CYCLES = """\
name: nucleation on Cu
cell: {chemistry: Li||Cu, electrode_area: 1 cm^2}
limits: {voltage_min: -3.5 V, voltage_max: 3.5 V}
record: {every: 1 s}
steps:
  - rest: 60 s
  - repeat:
      count: 8
      steps:
        - plate: {current: 2 mA/cm^2, until: {capacity: 0.1 mAh/cm^2, voltage_below: -0.9 V}, on: {voltage_below: stop}}
        - strip: {current: 2 mA/cm^2, until: {voltage_above: 1 V, time: 1 h}}
"""

DRIFT_FROM_CYCLE = 4
DRIFT_V_PER_CYCLE = 0.005


class NucleationDrift:
    """Raises the twin's nucleation overpotential by 5 mV per cycle from cycle 4 on (the twin has no
    drift parameter for it, so the test changes the cell's configuration between cycles)."""

    def __init__(self, cell: TwinCell) -> None:
        self.cell = cell

    def on_samples(self, run_id: str, channel: str, rows: Any) -> None:
        return None

    def on_step(self, run_id: str, channel: str, row: dict[str, Any]) -> None:
        return None

    def on_metrics(self, run_id: str, channel: str, rows: list[dict[str, Any]]) -> None:
        return None

    def on_cycle(self, run_id: str, channel: str, row: dict[str, Any]) -> None:
        upcoming = int(row["cycle"]) + 1  # the cycle that starts now, before its plating
        cfg = self.cell.config
        eta = 0.060 + DRIFT_V_PER_CYCLE * max(0, upcoming - DRIFT_FROM_CYCLE + 1)
        nucleation = dataclasses.replace(cfg.cell.nucleation, overpotential_v=eta)
        self.cell.config = dataclasses.replace(cfg, cell=dataclasses.replace(cfg.cell, nucleation=nucleation))


async def test_nucleation_overpotential_is_measured_each_plating(tmp_path: Path) -> None:
    run = await run_twin(CYCLES, LI_CU, tmp_path)
    etas = [m["value"] for m in run.metric("nucleation_overpotential_v")]
    assert len(etas) == 8
    assert etas == pytest.approx([0.060] * 8, abs=1.5e-3)  # the twin's eta_n, through 50 uV noise
    assert run.metric("resistance_ohm")
    assert not run.findings


async def test_nucleation_drift_is_caught(tmp_path: Path, lead: Any) -> None:
    run = await run_twin(CYCLES, LI_CU, tmp_path, cell_observer=NucleationDrift)
    etas = [m["value"] for m in run.metric("nucleation_overpotential_v")]
    expected = [0.060 + DRIFT_V_PER_CYCLE * max(0, c - DRIFT_FROM_CYCLE + 1) for c in range(1, 9)]
    assert etas == pytest.approx(expected, abs=1.5e-3)
    found = run.of("finding", "nucleation_drift")
    assert len(found) == 1
    f = found[0]
    assert f.values["baseline_v"] == pytest.approx(0.060, abs=1e-3)
    # the limit is max(10 mV, 25 % of 60 mV) = 15 mV: the third drifted plating (+15 mV) crosses it
    assert f.values["platings"] == DRIFT_FROM_CYCLE + 2
    plates = [r for r in run.steps if r["kind"] == "plate"]
    drift_start = plates[DRIFT_FROM_CYCLE - 1]["start_s"]
    assert f.time_s == pytest.approx(plates[DRIFT_FROM_CYCLE + 1]["end_s"])
    lead("Li||Cu, eta_n +5 mV per cycle", "nucleation_drift", drift_start - f.time_s,
         "(negative: after the drift began, 3 platings)")  # fmt: skip
