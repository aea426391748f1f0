"""Soft short: dendrites from an alpha = 25 hot spot bridge the separator; the monitor sees the
rising noise and falling polarization at constant current well before the short turns hard, and
by default aborts the run (a decision event carrying the numbers)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from licycler.engine import RunState

from .conftest import run_twin

SHORTING = """\
name: soft short, fast decay
seed: 1
cell: {kind: li-li, area: 2.01 cm^2}
electrolyte: {preset: lipf6-ec-dmc}
separator: {thickness: 260 um, porosity: 0.9}
defects: {alpha: 25, short_charge: 0.3 mAh/cm^2, short_resistance: 500 ohm, short_decay_time: 15 min,
          short_noise: 0.15, hard_short_resistance: 0.5 ohm}
measurement: {voltage_noise: 50 uV}
"""


def cycling(rules: str) -> str:
    return f"""\
name: symmetric cycling
cell: {{chemistry: Li||Li, electrode_area: 2.01 cm^2}}
limits: {{voltage_min: -1 V, voltage_max: 1 V}}
record: {{every: 1 s}}
watch: {{rules: {rules}}}
steps:
  - rest: 60 s
  - repeat:
      count: 12
      steps:
        - plate: {{current: 2 mA/cm^2, until: {{capacity: 0.25 mAh/cm^2, voltage_below: -0.9 V}}}}
        - strip: {{current: 2 mA/cm^2, until: {{capacity: 0.25 mAh/cm^2, voltage_above: 0.9 V}}}}
"""


async def test_soft_short_found_before_it_turns_hard(tmp_path: Path, lead: Any) -> None:
    run = await run_twin(cycling("{soft_short: continue}"), SHORTING, tmp_path)
    formed = run.twin_events("soft_short")
    hard = run.twin_events("hard_short")
    assert formed
    assert hard
    found = run.of("finding", "soft_short")
    assert len(found) == 1
    f = found[0]
    assert formed[0].t_s < f.time_s < hard[0].t_s
    assert f.values["sign"] in ("noise", "polarization_fall", "collapse")
    assert f.source == "monitor:overpotential"
    assert [d.cause for d in run.monitor_decisions()] == ["continue"]
    lead("soft short (alpha 25, glass fibre)", "soft_short", hard[0].t_s - f.time_s, "the hard short (twin)")
    lead("soft short (alpha 25, glass fibre)", "soft_short (delay)", formed[0].t_s - f.time_s,
         "(negative: after the soft short formed)")  # fmt: skip


async def test_soft_short_aborts_by_default(tmp_path: Path) -> None:
    run = await run_twin(cycling("{}"), SHORTING, tmp_path)
    assert run.state is RunState.ABORTED
    decision = run.of("decision", "abort")
    assert len(decision) == 1
    assert decision[0].values["finding"] == "soft_short"
    secured = [e for e in run.log.events if e.kind == "secured" and e.cause == "monitor_abort"]
    assert secured
    assert secured[0].values["finding"] == "soft_short"
    assert not run.twin_events("hard_short")  # stopped while the short was still soft
    assert run.store is not None
    record = run.store.run(run.run_id)
    assert record is not None
    assert record["status"] == "aborted"
