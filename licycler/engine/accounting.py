"""Per-block bookkeeping of a channel: step charge, cycle totals, and which samples to record.

All of it works on numpy sample blocks and carries only a few numbers from one block to the next,
so it is the same whether a step arrives in one block or in a thousand (what lets a resumed run
reproduce an uninterrupted one).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from licycler.arrays import diff_from

__all__ = ["CycleAccounting", "CycleTotals", "RecordFilter", "interval_products"]

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


def interval_products(t: FloatArray, i: FloatArray, v: FloatArray, t_prev: float) -> tuple[FloatArray, FloatArray]:
    """Charge (C) and energy (J) of each sample's interval: I_k (t_k - t_{k-1}) and V_k I_k (t_k - t_{k-1}).

    The current sourced during (t_{k-1}, t_k] is the one read at t_k (constant-current steps make
    this exact); ``t_prev`` is the time before the first sample (the step start or the last sample).
    """
    dt = diff_from(t, t_prev)
    dq = i * dt
    return dq, v * dq


@dataclass
class CycleTotals:
    """Charges (C, magnitudes) of one cycle's plating and stripping, and the integrals of V dq (J)
    over each: the energy the instrument delivered into the cell (plating) and drew from it (strip)
    when the cell's voltage opposes the current; their ratio to the charges are the mean voltages."""

    cycle: int
    start_s: float
    end_s: float = 0.0
    charge_plate_c: float = 0.0
    charge_strip_c: float = 0.0
    energy_plate_j: float = 0.0
    energy_strip_j: float = 0.0

    def row(self) -> dict[str, Any]:
        """The cycles-table row, with CE = Q_strip / Q_plate and charge-weighted mean voltages."""
        ce = self.charge_strip_c / self.charge_plate_c if self.charge_plate_c > 0 else None
        return {
            **asdict(self),
            "ce": ce,
            "mean_voltage_plate_v": -self.energy_plate_j / self.charge_plate_c if self.charge_plate_c > 0 else None,
            "mean_voltage_strip_v": self.energy_strip_j / self.charge_strip_c if self.charge_strip_c > 0 else None,
        }


@dataclass
class CycleAccounting:
    """Numbers cycles and totals their charges. A cycle starts with a plate step that follows a
    strip (or with the first plate step); rests and holds belong to the cycle they fall in."""

    cycle: int = 0
    stripped: bool = False
    totals: CycleTotals = field(default_factory=lambda: CycleTotals(0, 0.0))

    def on_step_start(self, kind: str, t_s: float) -> CycleTotals | None:
        """Open a new cycle when a plate step follows a strip; returns the cycle it closed, if any."""
        if kind == "strip":
            self.stripped = True
            return None
        if kind != "plate" or (self.cycle > 0 and not self.stripped):
            return None
        closed = self.totals if self.cycle > 0 else None
        if closed is not None:
            closed.end_s = t_s
        self.cycle += 1
        self.stripped = False
        self.totals = CycleTotals(self.cycle, t_s)
        return closed

    def add(self, t: FloatArray, dq: FloatArray, de: FloatArray) -> None:
        """Add a block's per-sample charges ``dq`` (C, signed) and energies ``de`` (J)."""
        if not len(t):
            return
        plating = dq < 0
        tot = self.totals
        tot.charge_plate_c += float(-dq[plating].sum())
        tot.charge_strip_c += float(dq[~plating].sum())
        tot.energy_plate_j += float(de[plating].sum())  # V dq: both negative while plating a Li||Li cell
        tot.energy_strip_j += float(de[~plating].sum())
        tot.end_s = float(t[-1])

    def close(self) -> CycleTotals | None:
        """The last cycle at the end of a run (None before the first plate)."""
        return self.totals if self.cycle > 0 else None

    def state(self) -> dict[str, Any]:
        return {"cycle": self.cycle, "stripped": self.stripped, "totals": asdict(self.totals)}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> CycleAccounting:
        return cls(state["cycle"], state["stripped"], CycleTotals(**state["totals"]))


@dataclass
class RecordFilter:
    """Which samples of a step to keep: the first and last, and every sample where the time grid
    (``every_s`` from the step start), the voltage grid (``dv_v``) or the step-charge grid
    (``dq_c``) moves on. Grid crossings depend only on a sample and the one before it."""

    every_s: float
    dv_v: float | None = None
    dq_c: float | None = None
    _t0: float = 0.0
    _prev: list[float] | None = None  # grid cells (time, voltage, charge) of the last sample

    def start_step(self, t0: float) -> None:
        self._t0 = t0
        self._prev = None

    def keep(self, t: FloatArray, v: FloatArray, q: FloatArray, last: bool) -> BoolArray:
        """Mask of samples to record; ``last`` marks the block that ends the step."""
        cells = [np.floor((t - self._t0) / self.every_s + 1e-9)]
        if self.dv_v:
            cells.append(np.floor(np.where(np.isfinite(v), v, 0.0) / self.dv_v))
        if self.dq_c:
            cells.append(np.floor(np.abs(q) / self.dq_c))
        keep = np.zeros(len(t), dtype=bool)
        if not len(t):
            return keep
        for n, cell in enumerate(cells):
            before = np.concatenate(([math.nan if self._prev is None else self._prev[n]], cell[:-1]))
            keep |= cell != before
        if self._prev is None:
            keep[0] = True
        if last:
            keep[-1] = True
        self._prev = [float(c[-1]) for c in cells]
        return keep
