"""The Battery Data Format export opens with pandas, has the BDF columns and units, and gives back
the stored values; cycles and events come along."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from licycler.cli.main import main
from licycler.engine import RunController
from licycler.export import export_run
from licycler.store import Store
from licycler.store.sql import SampleRows, WriteBatch
from tests.telemetry.helpers import dummy_channel, schedule

LABEL = re.compile(r"^[A-Z][A-Za-z ]+ / (s|V|A|1|Ah|Wh|Pa)$")
REQUIRED = ["Test Time / s", "Voltage / V", "Current / A"]
RECOMMENDED = ["Unix Time / s", "Cycle Count / 1", "Step Count / 1"]
MAH = 3.6  # coulombs


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Store, str]:
    """Three cycles of 20 s plating and stripping at 1 mA on a 50 ohm dummy cell, two channels."""
    import asyncio

    store = Store(f"sqlite:///{tmp_path_factory.mktemp('bdf') / 'run.db'}")
    ctl = RunController(schedule(3), [dummy_channel("ch1"), dummy_channel("ch2")], store)
    asyncio.run(ctl.run())
    return store, ctl.run_id


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_bdf_time_series_round_trips_with_the_bdf_labels(recorded: tuple[Store, str], tmp_path: Path, fmt: str) -> None:
    store, run_id = recorded
    paths = export_run(store, run_id, fmt, tmp_path)
    assert {p.name for p in paths} >= {f"{run_id}__ch1.bdf.{fmt}", f"{run_id}__ch2.cycles.{fmt}",
                                       f"{run_id}.events.{fmt}", f"{run_id}.metadata.json"}  # fmt: skip
    path = tmp_path / f"{run_id}__ch1.bdf.{fmt}"
    df = pd.read_csv(path) if fmt == "csv" else pd.read_parquet(path)
    for label in REQUIRED + RECOMMENDED:
        assert label in df.columns
    for label in df.columns:
        assert LABEL.match(label) or label == "Step Type", label
    s = store.samples(run_id, "ch1")
    assert np.array_equal(df["Test Time / s"].to_numpy(), s.t_s)
    assert np.array_equal(df["Voltage / V"].to_numpy(), s.voltage_v)
    assert np.array_equal(df["Current / A"].to_numpy(), s.current_a)
    assert np.array_equal(df["Cycle Count / 1"].to_numpy(), s.cycle)
    assert np.array_equal(df["Step Count / 1"].to_numpy(), s.step_seq)
    assert np.array_equal(df["Record Index / 1"].to_numpy(), s.seq)
    run = store.run(run_id)
    assert run is not None
    assert np.allclose(df["Unix Time / s"] - df["Test Time / s"], run["created_unix_s"], rtol=0, atol=1e-6)
    # 1 mA/cm^2 on 1 cm^2 through 50 ohm: -50 mV while plating (negative current: discharging in BDF terms)
    plating = df[df["Step Type"] == "plate"]
    assert np.allclose(plating["Current / A"], -1e-3)
    assert np.allclose(plating["Voltage / V"], -0.05)
    # a 20 s plating step at 1 mA ends at -20 mC = -(20/3600) mAh
    ends = plating.groupby("Step Count / 1").last()
    assert np.allclose(ends["Step Net Capacity / Ah"], -20e-3 / 3600)
    assert np.allclose(ends["Step Time / s"], 20.0)
    assert set(df["Step Index / 1"]) == set(range(7))  # the rest and three expanded plate/strip pairs


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_cycles_table_and_event_log(recorded: tuple[Store, str], tmp_path: Path, fmt: str) -> None:
    store, run_id = recorded
    export_run(store, run_id, fmt, tmp_path)
    read = pd.read_csv if fmt == "csv" else pd.read_parquet
    cycles = read(tmp_path / f"{run_id}__ch2.cycles.{fmt}")
    assert list(cycles["Cycle Count / 1"]) == [1, 2, 3]
    q_ah = 20e-3 / 3600  # 1 mA for 20 s each way
    assert np.allclose(cycles["Cycle Discharging Capacity / Ah"], q_ah)  # plating
    assert np.allclose(cycles["Cycle Charging Capacity / Ah"], q_ah)  # stripping
    assert np.allclose(cycles["Coulombic Efficiency / 1"], 1.0)
    assert np.allclose(cycles["Mean Plating Overpotential / V"], -0.05)
    assert np.allclose(cycles["Mean Stripping Overpotential / V"], 0.05)
    # energy into the cell both ways: V I t = 0.05 V x 1 mA x 20 s, in Wh; discharging energy is -V I t
    assert np.allclose(cycles["Cycle Charging Energy / Wh"], 0.05 * 1e-3 * 20 / 3600)
    assert np.allclose(cycles["Cycle Discharging Energy / Wh"], -0.05 * 1e-3 * 20 / 3600)
    events = read(tmp_path / f"{run_id}.events.{fmt}")
    stored = store.events(run_id)
    assert len(events) == len(stored)
    assert list(events["Kind"]) == [e["kind"] for e in stored]
    assert json.loads(events["Values"].iloc[0]) == stored[0]["values"]
    meta = json.loads((tmp_path / f"{run_id}.metadata.json").read_text())
    assert meta["bdf_ontology_version"] == "1.3.0"
    assert meta["columns"]["Voltage / V"]["iri"].endswith("#voltage_volt")
    assert [c["channel"] for c in meta["channels"]] == ["ch1", "ch2"]


def test_applied_pressure_is_exported_when_recorded(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'p.db'}")
    run = {"run_id": "p1", "name": "p", "schedule_name": "p", "schedule_source": "p.yaml", "schedule_text": "",
           "schedule_sha256": "0", "software_version": "0", "mode": "sim", "created_unix_s": 1.7e9,
           "status": "completed"}  # fmt: skip
    channel = {"run_id": "p1", "channel": "A1", "chemistry": "Li||Li", "area_m2": 1e-4, "status": "completed"}
    store.create_run(run, [channel])
    n = 5
    pressure = np.array([1e6, 1e6, np.nan, 1.1e6, 1.2e6])
    rows = SampleRows(np.arange(n), np.arange(n, dtype=float), np.zeros(n), np.zeros(n), np.zeros(n),
                      np.ones(n, np.int64), np.zeros(n, np.int64), pressure)  # fmt: skip
    store.write(WriteBatch("p1", "A1", samples=[rows]))
    (path,) = [p for p in export_run(store, "p1", "parquet", tmp_path, channels=["A1"]) if ".bdf." in p.name]
    df = pd.read_parquet(path)
    assert np.allclose(df["Applied Pressure / Pa"], pressure, equal_nan=True)
    assert df["Step Index / 1"].isna().all()  # no step row was ever written for this channel


def test_export_command_and_a_clear_error_without_pyarrow(
    recorded: tuple[Store, str], tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    store, run_id = recorded
    assert main(["export", run_id, "--format", "csv", "--db", store.url, "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out.split()
    assert str(tmp_path / f"{run_id}__ch1.bdf.csv") in printed
    assert main(["export", "no-such-run", "--db", store.url, "--out", str(tmp_path)]) == 2
    assert "no run 'no-such-run'" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # as if pyarrow were not installed
    assert main(["export", run_id, "--format", "parquet", "--db", store.url, "--out", str(tmp_path / "pq")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "pyarrow" in err
    assert not (tmp_path / "pq").exists()
