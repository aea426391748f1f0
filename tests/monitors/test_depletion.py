"""Depletion: the approach to Sand's time caught before the twin depletes, in a thick cell at high
current and at a configured defect (alpha); derating keeps the surface above its threshold and
still delivers the step's capacity; the model is right in thick and in thin gaps."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from licycler.engine import RunState
from licycler.monitors import DepletionMonitor

from .conftest import num, run_twin, schedule

# parameters.md: 1 M LiPF6 (D 3.22e-10, t+ 0.38), Sand's time 613 s at 10 mA/cm^2, 2452 s at 5
SAND_10_S = 613.0
SAND_5_S = 2452.0

THICK = """\
name: capillary
seed: 0
cell: {kind: li-li, area: 0.0314 cm^2}
electrolyte: {preset: lipf6-ec-dmc}
separator: {thickness: 1 cm, porosity: 1}
rig: {setpoint: 0 Pa, contact_stiffness: 1 Pa/m}
measurement: {voltage_noise: 50 uV}
"""
DEFECT = THICK.replace("rig:", "defects: {alpha: 3}\nrig:")

MODEL = "{electrolyte: {preset: lipf6-ec-dmc}, separator: {thickness: 1 cm, porosity: 1}, contact_stiffness: 1 Pa/m"


def sand_schedule(action: str, current: str = "10 mA/cm^2", time: str = "20 min", alpha: float = 1.0) -> str:
    return f"""\
name: plate into depletion
cell: {{chemistry: Li||Li, electrode_area: 0.0314 cm^2}}
limits: {{voltage_min: -3 V, voltage_max: 3 V}}
record: {{every: 1 s}}
watch:
  model: {MODEL}, alpha: {alpha}}}
  rules: {{depletion: {action}}}
steps:
  - rest: 60 s
  - plate: {{current: {current}, until: {{time: {time}, voltage_below: -2.5 V}}}}
  - rest: 60 s
"""


async def test_high_current_depletion_is_forecast_then_seen_before_sands_time(tmp_path: Path, lead: Any) -> None:
    run = await run_twin(sand_schedule("continue"), THICK, tmp_path)
    depleted = run.twin_events("depletion", "working")
    assert depleted, "without a derate the twin must reach depletion"
    t_dep = depleted[0].t_s
    assert t_dep - 60.0 == pytest.approx(SAND_10_S, rel=0.01)
    found = run.of("finding", "depletion")
    forecast = [e for e in found if e.values["sign"] == "forecast"]
    threshold = [e for e in found if e.values["sign"] == "threshold"]
    assert forecast
    assert threshold
    # the forecast at the step start predicts the twin's depletion time (same transport, same current)
    assert forecast[0].time_s == pytest.approx(60.0)
    assert forecast[0].values["lead_s"] == pytest.approx(t_dep - 60.0, rel=1e-3)
    # index 0.8 = sqrt(t / t_s) in a semi-infinite electrolyte: 0.64 t_s; seen within one monitor period
    assert 60.0 + 0.64 * SAND_10_S <= threshold[0].time_s <= 60.0 + 0.64 * SAND_10_S + 61.0
    divergence = run.of("finding", "voltage_divergence")
    assert divergence
    assert divergence[0].time_s < t_dep
    assert all(d.cause == "continue" for d in run.monitor_decisions())
    lead("thick gap, 10 mA/cm^2", "depletion (forecast)", t_dep - forecast[0].time_s, "Sand's time (twin)")
    lead("thick gap, 10 mA/cm^2", "depletion (index 0.8)", t_dep - threshold[0].time_s, "Sand's time (twin)")
    lead("thick gap, 10 mA/cm^2", "voltage_divergence (d2V/dt2)", t_dep - divergence[0].time_s, "Sand's time (twin)")


async def test_derating_keeps_the_surface_above_threshold_and_delivers_the_capacity(tmp_path: Path) -> None:
    run = await run_twin(sand_schedule("derate"), THICK, tmp_path)
    assert run.state == "completed"
    assert not run.twin_events("depletion")
    derates = [d for d in run.monitor_decisions() if d.cause == "derate"]
    assert len(derates) == 1
    d = derates[0]
    assert d.time_s == pytest.approx(60.0)  # before any current flowed
    assert 0.05 < num(d.values["fraction"]) < 1.0
    assert num(d.values["forecast_index_max"]) < 0.8
    plate = next(r for r in run.steps if r["kind"] == "plate")
    # the step's capacity, 10 mA/cm^2 for 20 min, delivered at the lower current over a longer time
    capacity_c = 10e-3 / 1e-4 * 0.0314e-4 * 1200.0
    assert abs(plate["charge_c"]) == pytest.approx(capacity_c, rel=1e-3)
    assert plate["ended_by"] == "time"
    assert plate["end_s"] - plate["start_s"] == pytest.approx(num(d.values["new_time_limit_s"]), abs=1.0)
    # the twin's true plating surface (lowest at the end of the plating) stayed above the threshold
    c0 = 1000.0
    twin_c = plate["twin"].surface_concentration_mol_m3[0]
    assert twin_c >= c0 * (1 - 0.8)
    # ... and the monitor's estimate of it is the twin's (same exact transport, measured current)
    monitor_c = [m for m in run.metric("surface_concentration_mol_m3") if m["time_s"] == pytest.approx(plate["end_s"])]
    assert monitor_c
    assert monitor_c[-1]["value"] == pytest.approx(twin_c, rel=1e-6)


async def test_defect_alpha_depletes_a_hot_spot_that_the_global_model_misses(tmp_path: Path, lead: Any) -> None:
    plain = await run_twin(sand_schedule("continue", "5 mA/cm^2", "10 min"), DEFECT, tmp_path)
    dendritic = plain.twin_events("dendritic", "working")
    assert dendritic, "the alpha = 3 hot spot depletes at t_s / alpha^2"
    t_hot = dendritic[0].t_s
    assert t_hot - 60.0 == pytest.approx(SAND_5_S / 9.0, rel=0.01)
    assert not plain.of("finding", "depletion")  # alpha 1 assumed: 10 min is well inside Sand's time
    (tmp_path / "b").mkdir()
    run = await run_twin(sand_schedule("continue", "5 mA/cm^2", "10 min", alpha=3.0), DEFECT, tmp_path / "b")
    forecast = [e for e in run.of("finding", "depletion") if e.values["sign"] == "forecast"]
    assert forecast
    assert forecast[0].time_s == pytest.approx(60.0)
    assert forecast[0].values["lead_s"] == pytest.approx(t_hot - 60.0, rel=1e-3)
    assert forecast[0].values["alpha"] == 3.0
    lead("thick gap, defect alpha 3, 5 mA/cm^2", "depletion (forecast)", t_hot - forecast[0].time_s,
         "hot-spot depletion (twin)")  # fmt: skip


def _monitor(text: str) -> DepletionMonitor:
    sched = schedule(text)
    return DepletionMonitor(sched.watch, sched.cell.area_m2)


WATCH_ONLY = """\
name: model
cell: {{chemistry: Li||Li, electrode_area: 1 cm^2}}
limits: {{voltage_min: -1 V, voltage_max: 1 V}}
watch: {{model: {{separator: {separator}}}}}
steps: [{{rest: 1 s}}]
"""


def test_model_follows_sands_time_in_a_thick_gap_and_the_limiting_current_in_a_thin_one() -> None:
    thick = _monitor(WATCH_ONLY.format(separator="{thickness: 1 cm, porosity: 1}"))
    for j_ma_cm2, sand_s in ((10.0, SAND_10_S), (5.0, SAND_5_S)):
        j = j_ma_cm2 * 10.0  # A/m^2
        t_cross, _ = thick.forecast(0.0, j, 10 * sand_s, 0.0)
        assert t_cross == pytest.approx(sand_s, rel=0.005)
    thin = _monitor(WATCH_ONLY.format(separator="{thickness: 25 um, porosity: 0.4}"))
    j_lim = thin.spec.limiting_current_density_a_m2
    assert j_lim / 10.0 == pytest.approx(101.0, rel=0.02)  # parameters.md: ~101 mA/cm^2
    t_below, peak = thin.forecast(0.0, 0.9 * j_lim, 3600.0, 0.0)
    assert t_below is None
    assert peak == pytest.approx(0.9, rel=1e-3)
    t_above, _ = thin.forecast(0.0, 1.2 * j_lim, 3600.0, 0.0)
    assert t_above is not None
    assert t_above < 10 * thin.spec.relaxation_time_s
    assert math.isinf(thin.time_to_depletion_at(0.0, 0.9 * j_lim))


async def test_a_step_that_no_derate_can_save_is_aborted(tmp_path: Path) -> None:
    # 10 h at half of 10 mA/cm^2 or more: above the 1 cm gap's limiting current (~1 mA/cm^2), no
    # allowed current keeps the surface from depleting before the step's 100 mAh/cm^2 are through
    action = "{action: derate, min_fraction: 0.5}"
    run = await run_twin(sand_schedule(action, "10 mA/cm^2", "10 h"), THICK, tmp_path)
    assert run.state is RunState.ABORTED
    decision = run.of("decision", "abort")
    assert len(decision) == 1
    assert decision[0].values["finding"] == "depletion"
    assert decision[0].time_s == pytest.approx(60.0)  # before any current of the step flowed
    plate = next(r for r in run.steps if r["kind"] == "plate")
    assert plate["charge_c"] == 0.0
    assert not run.twin_events("depletion")
