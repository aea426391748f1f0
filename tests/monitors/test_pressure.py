"""Stack pressure and voids: a leak seen by its rate long before the pressure interlock trips; a
suspend rule with resume conditions on a pressure loss; a void predicted at the start of a strip
from the reference's t_f with the measured pressure."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from licycler.engine import RunState

from .conftest import num, run_twin

FARADAY = 96485.33212
LI_MOLAR_VOLUME = 1.30e-5

LEAK = """\
name: bolted cell with a leak
seed: 3
cell: {kind: li-li, area: 2.01 cm^2}
rig: {control: fixed-gap, setpoint: 1 MPa, creep_prefactor: 0}
faults:
  - {at: 1 h, kind: leak, time_constant: 1 h}
measurement: {voltage_noise: 50 uV, pressure_noise: 1 kPa}
"""

CYCLING = """\
name: cycling under pressure
cell: {{chemistry: Li||Li, electrode_area: 2.01 cm^2}}
limits: {{voltage_min: -1 V, voltage_max: 1 V{limits}}}
record: {{every: 10 s}}
{watch}
steps:
  - repeat:
      count: {count}
      steps:
        - plate: {{current: 2 mA/cm^2, until: {{capacity: 0.25 mAh/cm^2, voltage_below: -0.9 V}}}}
        - strip: {{current: 2 mA/cm^2, until: {{capacity: 0.25 mAh/cm^2, voltage_above: 0.9 V}}}}
"""


async def test_leak_found_by_its_rate_before_the_interlock_trips(tmp_path: Path, lead: Any) -> None:
    text = CYCLING.format(limits=", pressure_min: 500 kPa", watch="", count=8)
    run = await run_twin(text, LEAK, tmp_path)
    assert run.state is RunState.FAULTED  # the interlock ends it at 500 kPa
    trip = [e for e in run.log.events if e.kind == "trip" and e.cause == "pressure_out_of_window"]
    assert trip
    found = run.of("finding", "pressure_loss")
    assert len(found) == 1
    f = found[0]
    assert f.values["sign"] == "rate"
    assert 3600.0 < f.time_s < 3600.0 + 600.0  # within minutes of the leak starting
    assert f.values["reference_pa"] == pytest.approx(1e6, rel=0.01)
    # the rate fitted over the last 10 min (part of it before the leak) passes 10 % of 1 MPa per hour
    assert -1e6 / 3600.0 < num(f.values["rate_pa_s"]) < -0.1 * 1e6 / 3600.0
    lead("pressure leak (fixed gap, tau 1 h)", "pressure_loss (rate)", trip[0].time_s - f.time_s,
         "the 500 kPa interlock trips")  # fmt: skip


DIP = """\
name: pressure dip
seed: 3
cell: {kind: li-li, area: 2.01 cm^2}
rig: {control: constant-pressure, setpoint: 1 MPa}
faults:
  - {at: 1 h, kind: pressure_loss, to: 20 kPa}
  - {at: 2 h, kind: setpoint, pressure: 1 MPa}
measurement: {voltage_noise: 50 uV, pressure_noise: 1 kPa}
"""


async def test_suspend_rule_waits_for_its_resume_conditions(tmp_path: Path) -> None:
    watch = "watch: {rules: {pressure_loss: {action: suspend, resume_above: 800 kPa, settle: 5 min}}}"
    run = await run_twin(CYCLING.format(limits="", watch=watch, count=6), DIP, tmp_path)
    assert run.state is RunState.COMPLETED
    moves = [(e.time_s, e.values["to"], e.cause) for e in run.log.events if e.kind == "transition"]
    assert [m[1] for m in moves] == ["running", "suspended", "running", "completed"]
    t_suspend, t_resume = moves[1][0], moves[2][0]
    assert moves[1][2] == "monitor_pressure_loss"
    assert 3600.0 <= t_suspend <= 3600.0 + 61.0
    assert t_resume >= 7200.0 + 300.0  # restored at 2 h, then 5 min above 800 kPa
    decision = run.of("decision", "suspend")
    assert decision
    assert decision[0].values["resume_above"] == pytest.approx(8e5)
    assert run.store is not None
    samples = run.store.samples(run.run_id, "ch1")
    assert not ((samples.t_s > t_suspend + 10) & (samples.t_s < t_resume - 10)).any()  # no current meanwhile
    steps = run.store.steps(run.run_id, "ch1")
    assert all(abs(s["charge_c"]) == pytest.approx(0.25 * 3.6 * 2.01, rel=1e-3) for s in steps)


VOID = """\
name: stiff interface
seed: 0
cell: {kind: li-li, area: 2.01 cm^2}
separator: {thickness: 25 um, porosity: 0.4}
defects: {void_alpha: 2, void_area_fraction: 0.3, void_heal_charge: 0.5 mAh/cm^2}
rig: {control: constant-pressure, setpoint: 2 MPa, adhesion_strength: 0.5 MPa, contact_stiffness: 1e11 Pa/m,
      creep_prefactor: 0}
measurement: {voltage_noise: 50 uV}
"""

STRIP = """\
name: long strip
cell: {chemistry: Li||Li, electrode_area: 2.01 cm^2}
limits: {voltage_min: -1 V, voltage_max: 1 V}
record: {every: 1 s}
watch:
  model: {void_alpha: 2, contact_stiffness: 1e11 Pa/m, adhesion_strength: 0.5 MPa}
steps:
  - rest: 60 s
  - strip: {current: 5 mA/cm^2, until: {time: 1 h}}
  - rest: 60 s
"""


async def test_void_predicted_at_the_start_of_the_strip(tmp_path: Path, lead: Any) -> None:
    run = await run_twin(STRIP, VOID, tmp_path)
    voids = run.twin_events("void", "working")
    assert voids
    t_void = voids[0].t_s
    # the reference: t_f = (F / V_m) (p0 + sigma_c) / (k_n i_max), i_max = 2 x 5 mA/cm^2
    t_f = FARADAY / LI_MOLAR_VOLUME * (2e6 + 0.5e6) / (1e11 * 100.0)
    assert t_void - 60.0 == pytest.approx(t_f, rel=1e-3)
    found = run.of("finding", "void_risk")
    assert found
    assert found[0].time_s == pytest.approx(60.0)
    assert found[0].values["lead_s"] == pytest.approx(t_f, rel=1e-3)
    assert found[0].values["pressure_pa"] == pytest.approx(2e6, rel=1e-3)  # the measured pressure
    assert not run.of("finding", "voltage_divergence")  # a void is a jump, not a divergence
    void_times = np.array([m["value"] for m in run.metric("void_time_s")], dtype=float)
    assert void_times.size
    assert np.all(np.diff(void_times[: void_times.size // 2]) < 0)
    lead("void (2 MPa, stiff interface, 5 mA/cm^2)", "void_risk (forecast)", t_void - found[0].time_s,
         "the void opens (twin)")  # fmt: skip


async def test_no_pressure_loss_without_a_stack_pressure(tmp_path: Path) -> None:
    scenario = """\
name: no stack pressure
seed: 1
cell: {kind: li-li, area: 2.01 cm^2}
rig: {setpoint: 0 Pa}
measurement: {voltage_noise: 50 uV, pressure_noise: 1 kPa}
"""
    run = await run_twin(CYCLING.format(limits="", watch="", count=2), scenario, tmp_path)
    assert run.state is RunState.COMPLETED
    assert run.metric("pressure_pa")  # read, but nothing to lose
    assert not run.of("finding", "pressure_loss")
