"""Efficiency: the monitor's CE equals the twin's configured CE within its noise; the reservoir
(Adams) CE matches its formula; lithium exhaustion in Li||Cu is foreseen from the inventory."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from .conftest import num, run_twin

LI_CU = """\
name: li-cu, CE {ce}
seed: {seed}
cell:
  kind: li-cu
  area: 1 cm^2
  working_lithium: 0 mAh/cm^2
  counter_lithium: {counter} mAh/cm^2
  efficiency: {{coulombic_efficiency: {ce}, noise: {noise}}}
measurement: {{voltage_noise: 50 uV}}
"""

CE_CYCLING = """\
name: Li||Cu CE
cell: {{chemistry: Li||Cu, electrode_area: 1 cm^2}}
limits: {{voltage_min: -3.5 V, voltage_max: 3.5 V}}
record: {{every: 1 s}}
watch: {{ce_window: {window}{model}}}
steps:
  - rest: 60 s
  - repeat:
      count: {count}
      steps:
        - plate:
            current: 2 mA/cm^2
            until: {{capacity: {q} mAh/cm^2, voltage_below: -0.9 V}}
            on: {{voltage_below: stop}}
        - strip: {{current: 2 mA/cm^2, until: {{voltage_above: 1 V, time: 1 h}}}}
"""


async def test_ce_equals_the_twins_within_its_noise(tmp_path: Path) -> None:
    noise = 0.001
    scenario = LI_CU.format(ce=0.98, noise=noise, counter=100, seed=5)
    run = await run_twin(CE_CYCLING.format(window=12, model="", count=12, q=1), scenario, tmp_path)
    ce = np.array([m["value"] for m in run.metric("ce")])
    assert ce.size == 12
    assert run.store is not None
    cycles = run.store.cycles(run.run_id, "ch1")
    assert ce == pytest.approx([c["charge_strip_c"] / c["charge_plate_c"] for c in cycles], rel=1e-12)
    # the mean of 12 draws of CE ~ N(0.98, 0.001): within 4 standard errors, plus the reading
    # resolution of a strip to a cutoff (its last 1 s reading counts whole: 1 s of an 1800 s plating)
    assert abs(ce.mean() - 0.98) < 4 * noise / math.sqrt(ce.size) + 1 / 1800
    mean = run.metric("ce_rolling_mean")[-1]["value"]
    std = run.metric("ce_rolling_std")[-1]["value"]
    stderr = run.metric("ce_rolling_stderr")[-1]["value"]
    assert mean == pytest.approx(ce.mean(), rel=1e-12)
    assert 0.5 * noise < std < 1.6 * noise  # the twin's noise, measured
    assert stderr == pytest.approx(std / math.sqrt(12), rel=1e-9)
    # parameters.md: CE 0.98 keeps 80 % for 11.0 cycles; 1000 cycles at 80 % need 0.99978
    assert run.metric("ce_projected_cycles")[-1]["value"] == pytest.approx(11.0, rel=0.03)
    assert run.metric("ce_required")[0]["value"] == pytest.approx(0.99978, abs=1e-5)
    assert not run.findings


RESERVOIR = """\
name: reservoir CE, short
cell: {chemistry: Li||Cu, electrode_area: 1 cm^2}
limits: {voltage_min: -3.5 V, voltage_max: 3.5 V}
record: {every: 1 s}
steps:
  - rest: 60 s
  - plate: {label: condition, current: 2 mA/cm^2, until: {capacity: 0.5 mAh/cm^2}}
  - strip: {current: 2 mA/cm^2, until: {voltage_above: 1.0 V, time: 2 h}}
  - plate: {label: reservoir, current: 2 mA/cm^2, until: {capacity: 1 mAh/cm^2}}
  - repeat:
      count: 5
      steps:
        - strip: {current: 2 mA/cm^2, until: {capacity: 0.25 mAh/cm^2, voltage_above: 1.0 V}, on: {voltage_above: stop}}
        - plate: {current: 2 mA/cm^2, until: {capacity: 0.25 mAh/cm^2}}
  - strip: {label: final-strip, current: 2 mA/cm^2, until: {voltage_above: 1.0 V, time: 4 h}}
"""


async def test_reservoir_ce_matches_its_formula(tmp_path: Path) -> None:
    run = await run_twin(RESERVOIR, LI_CU.format(ce=0.95, noise=0, counter=100, seed=0), tmp_path)
    assert run.store is not None
    steps = run.store.steps(run.run_id, "ch1")
    q_t = abs(steps[3]["charge_c"])
    cycled = [abs(s["charge_c"]) for s in steps[4:-1] if s["kind"] == "plate"]
    q_s = abs(steps[-1]["charge_c"])
    n = len(cycled)
    assert n == 5
    assert q_t == pytest.approx(3.6, rel=1e-5)
    q_c = float(np.mean(cycled))
    expected = (n * q_c + q_s) / (n * q_c + q_t)  # Adams et al. 2018
    assert run.metric("reservoir_ce")[0]["value"] == pytest.approx(expected, rel=1e-12)
    assert run.metric("reservoir_cycles")[0]["value"] == n
    # every plating keeps 0.95 of its charge, so the reservoir CE is the twin's CE (less the
    # lithium the last strip cannot reach before its 1 V cutoff)
    assert expected == pytest.approx(0.95, abs=0.005)


async def test_lithium_exhaustion_foreseen_from_the_inventory(tmp_path: Path, lead: Any) -> None:
    scenario = LI_CU.format(ce=0.9, noise=0.002, counter=0.6, seed=0)
    text = CE_CYCLING.format(window=10, model=", model: {inventory: 0.6 mAh/cm^2}", count=20, q=0.25)
    run = await run_twin(text, scenario, tmp_path)
    exhausted = run.twin_events("lithium_exhausted", "counter")
    assert exhausted
    t_ex = exhausted[0].t_s
    found = run.of("finding", "lithium_exhaustion")
    signs = [f.values["sign"] for f in found]
    assert signs == ["inventory", "cutoff"]
    predicted, seen = found
    assert predicted.time_s < t_ex
    assert num(predicted.values["cycles_left"]) < 2
    assert seen.time_s == pytest.approx(t_ex, abs=2.0)  # the plating ended on its cutoff right there
    # the monitor's inventory follows the twin's lithium: what is left on the counter electrode
    left = run.metric("lithium_inventory_c")[-1]["value"]
    last_strip = [r for r in run.steps if r["kind"] == "strip"][-1]["twin"]
    twin_left = (last_strip.active_lithium_c_m2[1] + last_strip.active_lithium_c_m2[0]) * 1e-4
    assert left == pytest.approx(twin_left, rel=0.05)
    lead("Li||Cu, 0.6 mAh/cm^2 of lithium, CE 0.9", "lithium_exhaustion (inventory)", t_ex - predicted.time_s,
         "the counter electrode runs out (twin)")  # fmt: skip
