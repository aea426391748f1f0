"""Progress and time left: of the present step and of the rest of a channel's schedule (run time, s).

A step's expected duration is known from the schedule when a capacity (capacity / |current|) or a
time ends it; a step that only a voltage ends (a Li||Cu strip to 1 V) is learned from the steps of
the same template (the step as written) that have already ended. Jumps (``goto``) are not predicted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from licycler.protocols.schedule import Schedule, Step

__all__ = ["RunEstimate", "StepPlan", "expected_duration_s"]


def expected_duration_s(step: Step) -> float:
    """How long ``step`` should last from the schedule alone (s); NaN when only a voltage or a
    rate can end it."""
    u = step.until
    candidates = []
    if u.capacity_c is not None and step.kind in ("plate", "strip") and step.current_a:
        candidates.append(u.capacity_c / abs(step.current_a))
    if u.time_s is not None:
        candidates.append(u.time_s)
    return min(candidates) if candidates else math.nan


@dataclass(frozen=True)
class RunEstimate:
    """Fraction done (0..1) and run time left (s) of the present step and of the whole schedule;
    None where nothing is known yet."""

    step_fraction: float | None
    step_remaining_s: float | None
    run_fraction: float | None
    run_remaining_s: float | None


class StepPlan:
    """Expected step durations of a schedule, refined by the steps that have ended."""

    def __init__(self, schedule: Schedule) -> None:
        self.steps = schedule.steps
        self.static: npt.NDArray[np.float64] = np.array([expected_duration_s(s) for s in self.steps], dtype=np.float64)
        self.templates: npt.NDArray[np.int64] = np.array([s.template for s in self.steps], dtype=np.int64)
        self._learned: dict[int, tuple[float, int]] = {}
        self._suffix: npt.NDArray[np.float64] | None = None

    def learn(self, index: int, duration_s: float) -> None:
        """A step (by flat index) ended after ``duration_s`` (s)."""
        if not 0 <= index < len(self.steps) or not math.isfinite(duration_s):
            return
        template = int(self.templates[index])
        total, n = self._learned.get(template, (0.0, 0))
        self._learned[template] = (total + duration_s, n + 1)
        self._suffix = None

    def expected(self) -> npt.NDArray[np.float64]:
        """Expected duration of every step (s): learned means where known, else the schedule's; NaN unknown."""
        out = self.static.copy()
        for template, (total, n) in self._learned.items():
            out[self.templates == template] = total / n
        return out

    def _rest_after(self, position: int) -> float:
        if self._suffix is None:
            expected = np.nan_to_num(self.expected(), nan=0.0)
            self._suffix = np.concatenate((np.cumsum(expected[::-1])[::-1], [0.0]))
        return float(self._suffix[min(position + 1, len(self._suffix) - 1)])

    def estimate(self, position: int, elapsed_s: float, charge_c: float, t_s: float) -> RunEstimate:
        """Where the channel stands at ``position`` after ``elapsed_s`` (s) in its step with ``charge_c``
        (C, magnitude) passed, at run time ``t_s`` (s)."""
        if not 0 <= position < len(self.steps):
            return RunEstimate(None, None, 1.0, 0.0)
        step = self.steps[position]
        u = step.until
        fractions = []
        if u.capacity_c is not None and step.kind in ("plate", "strip"):
            fractions.append(charge_c / u.capacity_c)
        if u.time_s is not None and u.time_s > 0:
            fractions.append(elapsed_s / u.time_s)
        template = int(self.templates[position])
        if not fractions and template in self._learned:
            total, n = self._learned[template]
            if total > 0:
                fractions.append(min(elapsed_s / (total / n), 0.99))
        step_fraction = min(max(fractions), 1.0) if fractions else None
        step_left: float | None = None
        if step_fraction is not None:
            step_left = elapsed_s * (1 - step_fraction) / step_fraction if step_fraction > 0 else None
            if step_left is None:
                expected = self.expected()[position]
                step_left = None if math.isnan(expected) else float(expected)
        run_left = (step_left or 0.0) + self._rest_after(position)
        total_s = max(t_s, 0.0) + run_left
        run_fraction = max(t_s, 0.0) / total_s if total_s > 0 else None
        return RunEstimate(step_fraction, step_left, run_fraction, run_left)
