"""Sand's-time determination: fit the time to voltage divergence against j^-2.

For galvanostatic plating from rest in a thick (semi-infinite) electrolyte,
t_s = pi D F^2 c0^2 / (4 (1 - t+)^2 j^2), so the slope K of t_s against j^-2 gives
D / (1 - t+)^2 = 4 K / (pi F^2 c0^2) (``physics.transport.sand_coefficient_fit``). Each plating step
of the ``sand-time`` protocol that ended on its voltage cutoff gives one point.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from licycler.errors import UserError
from licycler.physics.transport import sand_coefficient_fit

__all__ = ["SandFit", "sand_time_fit"]


@dataclass(frozen=True)
class SandFit:
    """Points (current density A/m^2, Sand's time s) and the fitted D / (1 - t+)^2 (m^2/s)."""

    current_density_a_m2: tuple[float, ...]
    sand_time_s: tuple[float, ...]
    sand_coefficient_m2_s: float


def sand_time_fit(steps: Sequence[dict[str, Any]], area_m2: float, concentration_mol_m3: float) -> SandFit:
    """Fit the plating steps (rows of the steps table) that ended on their voltage cutoff.

    The current density of a step is its charge over its duration and the electrode area; its
    Sand's time is its duration. Raises :class:`UserError` with fewer than two such steps.
    """
    points = [
        (abs(s["charge_c"]) / (s["end_s"] - s["start_s"]) / area_m2, s["end_s"] - s["start_s"])
        for s in steps
        if s["kind"] == "plate" and s["ended_by"] == "voltage_below" and s["end_s"] > s["start_s"]
    ]
    if len(points) < 2:
        raise UserError(f"a Sand's-time fit needs two or more plating steps that reached the cutoff, got {len(points)}")
    j = np.array([p[0] for p in points])
    t = np.array([p[1] for p in points])
    coefficient = sand_coefficient_fit(j, t, concentration_mol_m3)
    return SandFit(tuple(j.tolist()), tuple(t.tolist()), coefficient)
