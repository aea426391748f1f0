"""``licycler sweep``: a grid of scenario parameters, run in worker processes, one row a point."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from licycler.cli.main import main
from licycler.store import Store

SCHEDULE = """\
name: sweep Li||Li
cell: {chemistry: Li||Li, electrode_area: 2.01 cm^2}
limits: {voltage_min: -1 V, voltage_max: 1 V}
record: {every: 10 s}
steps:
  - repeat:
      count: 3
      steps:
        - plate: {current: 2 mA/cm^2, until: {capacity: 1 mAh/cm^2, voltage_below: -0.9 V}}
        - strip: {current: 2 mA/cm^2, until: {capacity: 1 mAh/cm^2, voltage_above: 0.9 V}}
"""


def test_a_grid_runs_every_point_and_its_rows_are_the_recorded_runs(tmp_path: Path) -> None:
    schedule = tmp_path / "s.yaml"
    schedule.write_text(SCHEDULE)
    url = f"sqlite:///{tmp_path / 'sweep.db'}"
    status = main(["sweep", str(schedule), "--sim", "soft-short", "--vary", "defects.alpha=1,25",
                   "--vary", "separator.thickness=25 um,260 um", "--workers", "2", "--db", url, "--json"])  # fmt: skip
    store = Store(url)
    (sweep,) = store.sweeps()
    rows = store.sweep_results(sweep["sweep_id"])
    assert [json.loads(r["params_json"]) for r in rows] == [
        {"defects.alpha": a, "separator.thickness": t} for a in (1, 25) for t in ("25 um", "260 um")
    ]
    for row in rows:  # each row says what its recorded run did
        run = store.run(row["run_id"])
        assert run is not None
        assert run["mode"] == "sim"
        assert store.sample_count(row["run_id"]) == 0  # a sweep keeps its runs' summaries, not samples
        ces = [c["ce"] for c in store.cycles(row["run_id"], "ch1") if c["ce"] is not None]
        assert row["cycles"] == len(ces)
        assert row["last_ce"] == ces[-1]
        findings = [e for e in store.events(row["run_id"], "ch1") if e["kind"] == "finding"]
        assert row["first_finding"] == (findings[0]["cause"] if findings else None)
        assert (row["cycles_to_failure"] is None) == (row["state"] == "completed")
    by = {(json.loads(r["params_json"])["defects.alpha"], json.loads(r["params_json"])["separator.thickness"]): r
          for r in rows}  # fmt: skip
    # the physics: a hot spot of alpha 25 carries 25 x the mean current; on the thick glass-fibre
    # separator that is beyond its limiting current, so it depletes, turns dendritic and shorts
    # (the scenario's story); alpha 1 on the same separator, or a thin one, stays healthy
    assert by[(25, "260 um")]["first_finding"] == "soft_short"
    assert by[(25, "260 um")]["state"] != "completed"
    assert by[(1, "260 um")]["state"] == "completed"
    assert by[(1, "25 um")]["first_finding"] is None
    assert status == 1  # a point did not complete


@pytest.mark.parametrize(
    ("vary", "says"),
    [
        (["defects.alpah=1,2"], "defects.alpah: unknown key (did you mean 'alpha'?)"),
        (["separator.thickness=25 parsecs"], "unknown unit 'parsecs'"),
        (["defects.alpha="], "no value for defects.alpha"),
        (["alpha"], "give PARAM=V1,V2,..."),
        ([], "give at least one --vary"),
    ],
)
def test_bad_input_gets_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str], vary: list[str],
                                            says: str) -> None:  # fmt: skip
    schedule = tmp_path / "s.yaml"
    schedule.write_text(SCHEDULE)
    args = [a for v in vary for a in ("--vary", v)]
    assert main(["sweep", str(schedule), "--sim", "soft-short", *args, "--db", f"sqlite:///{tmp_path / 'x.db'}"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert says in err
