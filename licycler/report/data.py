"""A recorded run read back from the store for a report: samples, steps, cycles, events, monitor metrics.

Monitor values come from the ``metrics`` table (one row per value); a run recorded without monitors
simply has none, and the figures say so instead of failing. Stack pressure comes from the samples'
``pressure_pa`` column where the engine recorded it, else from a ``pressure_pa`` metric.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from licycler.errors import UserError
from licycler.physics import cycles_to_retention
from licycler.store.sql import SampleRows, Store

__all__ = [
    "ALARM_EVENT_KINDS",
    "METRIC_ALIASES",
    "CEProjection",
    "ChannelData",
    "RunData",
    "ce_projection",
    "load_run",
]

FloatArray = npt.NDArray[np.float64]

METRIC_ALIASES: dict[str, tuple[str, ...]] = {
    "depletion_index": ("depletion_index",),
    "nucleation_overpotential_v": ("nucleation_overpotential_v",),
    "plateau_overpotential_plate_v": ("plateau_overpotential_plate_v", "plateau_overpotential_v"),
    "plateau_overpotential_strip_v": ("plateau_overpotential_strip_v",),
    "strip_end_overpotential_v": ("strip_end_overpotential_v",),
    "pressure_pa": ("pressure_pa", "stack_pressure_pa"),
}
"""The metric names a report reads (first found wins) for each quantity it plots."""

ALARM_EVENT_KINDS = ("trip", "estop", "finding", "decision")

TERMINAL_STATES = ("completed", "aborted", "faulted")

RETENTION = 0.8
"""The retention the CE projection looks for (80 %)."""


@dataclass(frozen=True)
class CEProjection:
    """Lithium retained by cycle (cumulative product of CE, fraction), and when it reaches ``retention``:
    ``cycle`` (measured if it already did, else projected at ``ce_recent``, the mean of the last cycles),
    None when no fade is measurable."""

    cycles: npt.NDArray[np.int64]
    retained: FloatArray
    ce_recent: float | None
    cycle: float | None
    measured: bool
    retention: float = RETENTION


def ce_projection(cycles: Sequence[int], ce: Sequence[float], *, recent: int = 10,
                  retention: float = RETENTION) -> CEProjection:  # fmt: skip
    """Retention CE_1 x ... x CE_n after each cycle, and the cycle where it falls to ``retention``
    (by ``n = ln(r) / ln(CE)``, :func:`licycler.physics.cycles_to_retention`, from the last point on)."""
    c = np.asarray(cycles, dtype=np.int64)
    e = np.asarray(ce, dtype=np.float64)
    if not e.size:
        return CEProjection(c, e, None, None, False, retention)
    retained: FloatArray = np.cumprod(e).astype(np.float64)
    below = np.nonzero(retained <= retention)[0]
    ce_recent = float(np.mean(e[-recent:]))
    if below.size:
        return CEProjection(c, retained, ce_recent, float(c[below[0]]), True, retention)
    if ce_recent >= 1.0 - 1e-9:
        return CEProjection(c, retained, ce_recent, None, False, retention)
    more = float(cycles_to_retention(ce_recent, retention / float(retained[-1])))
    return CEProjection(c, retained, ce_recent, float(c[-1]) + more, False, retention)


@dataclass
class ChannelData:
    """One channel of a recorded run."""

    name: str
    area_m2: float
    status: str
    samples: SampleRows
    steps: list[dict[str, Any]]
    cycles: list[dict[str, Any]]
    events: list[dict[str, Any]]
    metrics: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def metric(self, quantity: str) -> tuple[FloatArray, FloatArray, npt.NDArray[np.int64]]:
        """(time s, value, cycle) of a monitor quantity (see :data:`METRIC_ALIASES`); empty when absent."""
        for name in METRIC_ALIASES.get(quantity, (quantity,)):
            rows = [r for r in self.metrics.get(name, []) if r["value"] is not None]
            if rows:
                return (np.array([r["time_s"] for r in rows], dtype=np.float64),
                        np.array([r["value"] for r in rows], dtype=np.float64),
                        np.array([r["cycle"] for r in rows], dtype=np.int64))  # fmt: skip
        return np.empty(0), np.empty(0), np.empty(0, dtype=np.int64)

    def pressure(self) -> tuple[FloatArray, FloatArray]:
        """(time s, stack pressure Pa): recorded with the samples, else the monitors' metric."""
        p = self.samples.pressure_pa
        if p is not None and len(p):
            ok = np.isfinite(p)
            if ok.any():
                return self.samples.t_s[ok], p[ok]
        t, v, _ = self.metric("pressure_pa")
        return t, v

    def alarms(self) -> list[dict[str, Any]]:
        """Trips, emergency stops, findings and decisions, in order."""
        return [e for e in self.events if e["kind"] in ALARM_EVENT_KINDS]

    def ce(self) -> tuple[list[int], list[float]]:
        """Cycles with a CE and their CE (fraction)."""
        rows = [c for c in self.cycles if c["ce"] is not None]
        return [int(c["cycle"]) for c in rows], [float(c["ce"]) for c in rows]

    def projection(self) -> CEProjection:
        cycles, ce = self.ce()
        return ce_projection(cycles, ce)


@dataclass
class RunData:
    """A run (its ``runs`` row) and its channels."""

    run: dict[str, Any]
    channels: list[ChannelData]

    @property
    def run_id(self) -> str:
        return str(self.run["run_id"])

    @property
    def end_s(self) -> float:
        """The latest recorded time of any channel (s)."""
        ends = [float(ch.samples.t_s[-1]) for ch in self.channels if len(ch.samples)]
        ends += [float(s["end_s"]) for ch in self.channels for s in ch.steps[-1:]]
        return max(ends, default=0.0)


def load_run(store: Store, run_id: str) -> RunData:
    """Everything a report needs about ``run_id`` (raises :class:`UserError` for an unknown run)."""
    run = store.run(run_id)
    if run is None:
        known = [r["run_id"] for r in store.runs()[-5:]]
        hint = f" (latest: {', '.join(known)})" if known else " (the database has no runs)"
        raise UserError(f"no run '{run_id}' in {store.url}{hint}")
    channels = []
    for row in store.channels(run_id):
        name = row["channel"]
        metrics: dict[str, list[dict[str, Any]]] = {}
        for m in store.metrics(run_id, name):
            metrics.setdefault(str(m["name"]), []).append(m)
        events = store.events(run_id, name)
        channels.append(ChannelData(
            name, float(row["area_m2"]), _status(run, row, events), store.samples(run_id, name),
            store.steps(run_id, name), store.cycles(run_id, name), events, metrics,
        ))  # fmt: skip
    return RunData(run, channels)


def _status(run: dict[str, Any], row: dict[str, Any], events: list[dict[str, Any]]) -> str:
    """The channel's state: its last recorded transition, or its status in the channels table; a
    channel of an ended run still marked running ended in a trip (faulted) or as the run did."""
    state = str(row["status"])
    for e in reversed(events):
        if e["kind"] == "transition" and e["values"].get("to"):
            state = str(e["values"]["to"])
            break
    if state in TERMINAL_STATES or run["status"] == "running":
        return state
    return "faulted" if any(e["kind"] in ("trip", "estop") for e in events) else str(run["status"])
