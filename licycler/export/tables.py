"""A run as tables in the Battery Data Format (BDF, ontology 1.3.0 labels): the time series of each
channel (one cell per file, as BDF requires), a cycles table and the event log.

Time series columns (BDF preferred labels; units fixed by the label):

=========================  ==============================================================
``Test Time / s``          time since the run started (the channel's clock)
``Unix Time / s``          the run's start (Unix time) plus the test time
``Voltage / V``            cell voltage
``Current / A``            positive charges the test object, as in BDF: for licycler's
                           Li||Li and Li||Cu cells positive strips the working electrode
``Cycle Count / 1``        licycler's cycle (0 before the first plating step)
``Step Count / 1``         steps executed so far, counting repeats (licycler's ``step_seq``)
``Step Index / 1``         the step's position in the expanded program (empty if unknown)
``Step Type``              plate, strip, rest, hold, pressure ...
``Step Time / s``          time since the step started
``Step Net Capacity / Ah`` charge since the step started, signed as the current
``Record Index / 1``       the sample's number in the channel
``Applied Pressure / Pa``  stack pressure (only when the channel has a rig)
=========================  ==============================================================

The cycles table uses the BDF cycle-scope labels where one exists (``Cycle Charging Capacity /
Ah`` is the stripping charge, ``Cycle Discharging Capacity / Ah`` the plating charge, and likewise
for energy); coulombic efficiency and the charge-weighted mean voltages while plating and
stripping (the overpotentials against the lithium counter electrode) have their own labels.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from licycler.errors import UserError
from licycler.store.sql import Store

__all__ = ["BDF_ONTOLOGY_VERSION", "BDF_REQUIRED", "Column", "Table", "bdf_table", "cycles_table", "events_table"]

BDF_ONTOLOGY_VERSION = "1.3.0"
BDF_REQUIRED = ("Test Time / s", "Voltage / V", "Current / A")
BDF_IRI = "https://w3id.org/battery-data-alliance/ontology/battery-data-format#"
SECONDS_PER_HOUR = 3600.0

# label -> BDF machine-readable name (None: a licycler column without a BDF term)
TERMS: dict[str, str | None] = {
    "Test Time / s": "test_time_second",
    "Unix Time / s": "unix_time_second",
    "Voltage / V": "voltage_volt",
    "Current / A": "current_ampere",
    "Cycle Count / 1": "cycle_count",
    "Step Count / 1": "step_count",
    "Step Index / 1": "step_index",
    "Step Type": "step_type",
    "Step Time / s": "step_time_second",
    "Step Net Capacity / Ah": "step_net_capacity_ah",
    "Record Index / 1": "record_index",
    "Applied Pressure / Pa": "applied_pressure_pa",
    "Cycle Charging Capacity / Ah": "cycle_charging_capacity_ah",
    "Cycle Discharging Capacity / Ah": "cycle_discharging_capacity_ah",
    "Cycle Charging Energy / Wh": "cycle_charging_energy_wh",
    "Cycle Discharging Energy / Wh": "cycle_discharging_energy_wh",
}


@dataclass
class Column:
    """Values of one column; ``valid`` marks the entries that exist (None: all of them)."""

    values: npt.NDArray[Any]
    valid: npt.NDArray[np.bool_] | None = None


Table = dict[str, Column]
"""Columns by label, in file order."""


def _steps_lookup(store: Store, run_id: str, channel: str, step_seq: npt.NDArray[np.int64]) -> dict[str, Column]:
    steps = store.steps(run_id, channel)
    known = np.array([s["step_seq"] for s in steps], dtype=np.int64)
    order = np.argsort(known)
    known = known[order]
    pos = np.clip(np.searchsorted(known, step_seq), 0, max(len(known) - 1, 0))
    found = (known[pos] == step_seq) if len(known) else np.zeros(len(step_seq), dtype=bool)
    index = np.array([s["step_index"] for s in steps], dtype=np.int64)[order] if steps else np.zeros(1, np.int64)
    kind = np.array([s["kind"] for s in steps], dtype=object)[order] if steps else np.array([""], dtype=object)
    start = np.array([s["start_s"] for s in steps], dtype=np.float64)[order] if steps else np.zeros(1)
    return {
        "index": Column(index[pos], found), "kind": Column(kind[pos], found), "start": Column(start[pos], found),
    }  # fmt: skip


def bdf_table(store: Store, run_id: str, channel: str) -> Table:
    """The BDF time series of one channel of a run."""
    run = store.run(run_id)
    if run is None:
        raise UserError(f"no run '{run_id}' in {store.url}")
    s = store.samples(run_id, channel)
    steps = _steps_lookup(store, run_id, channel, s.step_seq)
    # a step without its row (the run stopped inside it) starts, here, at its first sample
    monotonic = bool(np.all(np.diff(s.step_seq) >= 0))
    first_t = s.t_s[np.searchsorted(s.step_seq, s.step_seq)] if monotonic else s.t_s
    found = steps["start"].valid
    step_start = np.where(found, steps["start"].values, first_t) if found is not None else steps["start"].values
    table: Table = {
        "Test Time / s": Column(s.t_s),
        "Unix Time / s": Column(float(run["created_unix_s"]) + s.t_s),
        "Voltage / V": Column(s.voltage_v),
        "Current / A": Column(s.current_a),
        "Cycle Count / 1": Column(s.cycle),
        "Step Count / 1": Column(s.step_seq),
        "Step Index / 1": steps["index"],
        "Step Type": steps["kind"],
        "Step Time / s": Column(s.t_s - step_start),
        "Step Net Capacity / Ah": Column(s.charge_c / SECONDS_PER_HOUR),
        "Record Index / 1": Column(s.seq),
    }
    if s.pressure_pa is not None and np.isfinite(s.pressure_pa).any():
        table["Applied Pressure / Pa"] = Column(s.pressure_pa, np.isfinite(s.pressure_pa))
    return table


def _optional(values: list[float | None]) -> Column:
    valid = np.array([v is not None for v in values], dtype=bool)
    return Column(np.array([np.nan if v is None else v for v in values], dtype=np.float64), valid)


def cycles_table(store: Store, run_id: str, channel: str) -> Table:
    """One row per cycle of a channel: time span, charges, energies, CE, mean voltages."""
    rows = store.cycles(run_id, channel)

    def col(name: str) -> npt.NDArray[np.float64]:
        return np.array([r[name] for r in rows], dtype=np.float64)

    return {
        "Cycle Count / 1": Column(np.array([r["cycle"] for r in rows], dtype=np.int64)),
        "Start Test Time / s": Column(col("start_s")),
        "End Test Time / s": Column(col("end_s")),
        "Cycle Charging Capacity / Ah": Column(col("charge_strip_c") / SECONDS_PER_HOUR),
        "Cycle Discharging Capacity / Ah": Column(col("charge_plate_c") / SECONDS_PER_HOUR),
        "Cycle Charging Energy / Wh": Column(col("energy_strip_j") / SECONDS_PER_HOUR),
        "Cycle Discharging Energy / Wh": Column(-col("energy_plate_j") / SECONDS_PER_HOUR),
        "Coulombic Efficiency / 1": _optional([r["ce"] for r in rows]),
        "Mean Plating Overpotential / V": _optional([r["mean_voltage_plate_v"] for r in rows]),
        "Mean Stripping Overpotential / V": _optional([r["mean_voltage_strip_v"] for r in rows]),
    }


def events_table(store: Store, run_id: str) -> Table:
    """The run's event log, every channel, in channel then sequence order."""
    rows = store.events(run_id)

    def obj(name: str) -> npt.NDArray[Any]:
        return np.array([r[name] for r in rows], dtype=object)

    return {
        "Channel": Column(obj("channel")),
        "Event Index / 1": Column(np.array([r["seq"] for r in rows], dtype=np.int64)),
        "Test Time / s": Column(np.array([r["time_s"] for r in rows], dtype=np.float64)),
        "Unix Time / s": Column(np.array([r["unix_time_s"] for r in rows], dtype=np.float64)),
        "Source": Column(obj("source")),
        "Kind": Column(obj("kind")),
        "Cause": Column(obj("cause")),
        "Message": Column(obj("message")),
        "Values": Column(np.array([json.dumps(r["values"], default=str) for r in rows], dtype=object)),
    }
