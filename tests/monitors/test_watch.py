"""The schedule's ``watch:`` section: defaults, overrides in SI, one located error per mistake,
and ``enabled: false`` running without monitors."""

from __future__ import annotations

from pathlib import Path

import pytest

from licycler.protocols.schedule import WATCH_FINDINGS, Watch
from licycler.yamlsource import InputError

from .conftest import run_twin, schedule

BASE = """\
name: watch test
cell: {{chemistry: Li||Cu, electrode_area: 2 cm^2}}
limits: {{voltage_min: -1 V, voltage_max: 1 V}}
{watch}
steps:
  - rest: 10 s
"""


def watch(text: str) -> Watch:
    return schedule(BASE.format(watch=text)).watch


def test_defaults_without_a_watch_section() -> None:
    w = schedule(BASE.format(watch="")).watch
    assert w.enabled
    assert w.period_s == 60.0
    assert w.every_s == 300.0
    assert {name: w.rule(name).action for name in WATCH_FINDINGS} == {
        "depletion": "derate", "voltage_divergence": "continue", "soft_short": "abort", "pressure_loss": "continue",
        "void_risk": "continue", "lithium_exhaustion": "continue", "nucleation_drift": "continue",
        "overpotential_spike": "continue",
    }  # fmt: skip
    assert w.rule("depletion")["threshold"] == 0.8
    assert w.model.thickness_m == 25e-6
    assert w.model.inventory_c is None


def test_overrides_are_converted_to_si() -> None:
    w = watch("""\
watch:
  every: 10 min
  model:
    electrolyte: {preset: lipf6-ec-emc, concentration: 1.2 M}
    separator: {thickness: 260 um, porosity: 0.9}
    alpha: 3
    inventory: 5 mAh/cm^2
    creep: {protrusion_length: 5 um}
  rules:
    depletion: {action: suspend, threshold: 0.7, resume_below: 0.2, settle: 1 min}
    pressure_loss: {rate: 20 %/h}
    soft_short: continue""")
    assert w.every_s == 600.0
    m = w.model
    assert m.diffusivity_m2_s == 1.77e-10
    assert m.transference_number == 0.2594
    assert m.concentration_mol_m3 == 1200.0
    assert m.thickness_m == pytest.approx(260e-6)
    assert m.porosity == 0.9
    assert m.alpha == 3.0
    assert m.inventory_c == pytest.approx(5 * 3.6 * 2)  # 5 mAh/cm^2 on 2 cm^2, in C
    assert m.protrusion_length_m == pytest.approx(5e-6)
    rule = w.rule("depletion")
    assert rule.action == "suspend"
    assert rule["threshold"] == 0.7
    assert rule["resume_below"] == 0.2
    assert rule["settle"] == 60.0
    assert rule["horizon"] == 3600.0
    assert w.rule("pressure_loss")["rate"] == pytest.approx(0.2 / 3600.0)
    assert w.rule("pressure_loss").action == "continue"
    assert w.rule("soft_short").action == "continue"


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("watch:\n  rules: {soft_shrot: abort}", 5, "did you mean 'soft_short'"),
        ("watch:\n  rules: {soft_short: explode}", 5, "expected one of continue, derate, suspend, abort"),
        ("watch:\n  rules:\n    pressure_loss: derate", 6, "only for 'depletion'"),
        ("watch:\n  rules:\n    void_risk: {action: abort, resume_after: 5 min}", 6, "only a 'suspend' rule"),
        ("watch:\n  rules:\n    depletion: {threshold: 1.2}", 6, "must be below 1"),
        ("watch:\n  rules:\n    depletion: {horizon: 5 mA}", 6, "expected a time"),
        ("watch:\n  model: {separator: {thickness: 3 V}}", 5, "expected a length"),
        ("watch:\n  model: {electrolyte: {preset: seawater}}", 5, "expected one of lipf6-ec-dmc"),
        ("watch:\n  model: {alpha: 0.5}", 5, "must be at least 1"),
        ("watch:\n  retention: 120 %", 5, "must be at most 1"),
    ],
)
def test_mistakes_are_located(text: str, line: int, words: str) -> None:
    with pytest.raises(InputError) as err:
        watch(text)
    assert err.value.line == line
    assert words in str(err.value)
    assert "schedule.yaml" in str(err.value)


async def test_disabled_watch_runs_without_monitors(tmp_path: Path) -> None:
    text = """\
name: no monitors
cell: {chemistry: Li||Li, electrode_area: 2.01 cm^2}
limits: {voltage_min: -1 V, voltage_max: 1 V}
watch: {enabled: false}
steps:
  - plate: {current: 2 mA/cm^2, until: {time: 5 min}}
  - strip: {current: 2 mA/cm^2, until: {time: 5 min}}
"""
    run = await run_twin(text, "default", tmp_path)
    assert run.controller.runners["ch1"].monitors is None
    assert run.store is not None
    assert run.store.metrics(run.run_id) == []
