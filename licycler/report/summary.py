"""The summary table of a report: one row per channel, the numbers a lab notebook would keep."""

from __future__ import annotations

from typing import Any

import numpy as np

from licycler.report.data import ChannelData, RunData

__all__ = ["SUMMARY_COLUMNS", "channel_summary", "summary_rows"]

SUMMARY_COLUMNS: dict[str, str] = {
    "channel": "channel",
    "status": "status",
    "cycles": "cycles",
    "duration_h": "duration (h)",
    "ce_first": "CE, cycle 1 (%)",
    "ce_last": "CE, last (%)",
    "ce_mean": "mean CE after cycle 1 (%)",
    "cycles_to_80": "cycles to 80 %",
    "polarization_first_mv": "polarization, first (mV)",
    "polarization_last_mv": "polarization, last (mV)",
    "pressure_min_mpa": "lowest pressure (MPa)",
    "trips": "trips",
    "findings": "findings",
    "decisions": "decisions",
}
"""Summary keys (SI-derived units in the names) and their column headings."""


def _polarization_mv(row: dict[str, Any]) -> float | None:
    values = [abs(v) for v in (row["mean_voltage_plate_v"], row["mean_voltage_strip_v"]) if v is not None]
    return float(np.mean(values)) * 1e3 if values else None


def channel_summary(ch: ChannelData) -> dict[str, Any]:
    """The summary row of one channel (None where the run has no such data)."""
    _, ce = ch.ce()
    proj = ch.projection()
    ends = [float(s["end_s"]) for s in ch.steps[-1:]] + ([float(ch.samples.t_s[-1])] if len(ch.samples) else [])
    polar = [p for p in (_polarization_mv(r) for r in ch.cycles) if p is not None]
    _, pressure = ch.pressure()
    kinds = [e["kind"] for e in ch.events]
    return {
        "channel": ch.name,
        "status": ch.status,
        "cycles": len(ch.cycles),
        "duration_h": max(ends, default=0.0) / 3600.0,
        "ce_first": ce[0] * 100 if ce else None,
        "ce_last": ce[-1] * 100 if ce else None,
        "ce_mean": float(np.mean(ce[1:])) * 100 if len(ce) > 1 else None,
        "cycles_to_80": proj.cycle,
        "cycles_to_80_measured": proj.measured,
        "polarization_first_mv": polar[0] if polar else None,
        "polarization_last_mv": polar[-1] if polar else None,
        "pressure_min_mpa": float(pressure.min()) / 1e6 if pressure.size else None,
        "trips": kinds.count("trip") + kinds.count("estop"),
        "findings": kinds.count("finding"),
        "decisions": kinds.count("decision"),
    }


def summary_rows(data: RunData) -> list[dict[str, Any]]:
    """One summary row per channel of the run."""
    return [channel_summary(ch) for ch in data.channels]
