"""The schedule as data: what the engine executes. Built by :mod:`licycler.protocols.parse`.

SI throughout. Sign convention (as the instruments see it): a positive current strips lithium
from the working electrode (Li||Cu: the Cu side), a negative one plates onto it. Nested repeats
and pulses are expanded into a flat tuple of :class:`Step`, so a position in a run is one index
(what checkpoints store) and a ``goto`` is a jump to an index.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from licycler.safety.limits import Limits

__all__ = [
    "Action",
    "Cell",
    "RecordSpec",
    "Schedule",
    "Step",
    "StepKind",
    "SuspendRule",
    "Until",
]

StepKind = Literal["rest", "plate", "strip", "hold", "pressure"]


@dataclass(frozen=True)
class Cell:
    """The cell a schedule is written for: ``chemistry`` ``Li||Li`` or ``Li||Cu``, electrode area (m^2)."""

    chemistry: str
    area_m2: float


@dataclass(frozen=True)
class RecordSpec:
    """Keep a sample every ``every_s`` (s), or sooner when V moved ``dv_v`` (V) or Q moved ``dq_c`` (C)."""

    every_s: float = 1.0
    dv_v: float | None = None
    dq_c: float | None = None


@dataclass(frozen=True)
class Until:
    """Terminations of a step; the first that holds ends it (SI, None: not used).

    ``capacity_c`` is the magnitude of charge passed in the step; ``capacity_previous`` makes it the
    charge the previous step passed (``capacity: previous``: strip back what was just plated);
    ``dv_dt_*`` compare |dV/dt|.
    """

    time_s: float | None = None
    capacity_c: float | None = None
    voltage_above_v: float | None = None
    voltage_below_v: float | None = None
    dv_dt_above_v_per_s: float | None = None
    dv_dt_below_v_per_s: float | None = None
    current_below_a: float | None = None
    capacity_previous: bool = False

    def names(self) -> list[str]:
        """The termination names in use (as in the YAML: ``time``, ``voltage_above`` ...)."""
        return [
            n
            for n in TERMINATION_FIELDS
            if getattr(self, TERMINATION_FIELDS[n]) is not None or (n == "capacity" and self.capacity_previous)
        ]


TERMINATION_FIELDS = {
    "time": "time_s",
    "capacity": "capacity_c",
    "voltage_above": "voltage_above_v",
    "voltage_below": "voltage_below_v",
    "dv_dt_above": "dv_dt_above_v_per_s",
    "dv_dt_below": "dv_dt_below_v_per_s",
    "current_below": "current_below_a",
}


@dataclass(frozen=True)
class Action:
    """What happens when a termination fires: ``next`` step, ``stop`` the run, or ``goto`` a step
    (``target`` its index, at most ``times`` jumps from this step for a backward goto)."""

    kind: Literal["next", "stop", "goto"] = "next"
    target: int | None = None
    label: str | None = None
    times: int | None = None


@dataclass(frozen=True)
class Step:
    """One constant-setpoint step of the flat program.

    ``current_a`` is signed (plate < 0 < strip); ``voltage_v`` is the hold voltage for ``hold``;
    ``pressure_pa`` the rig setpoint for ``pressure``. ``resume`` says what a resumed run does with
    an interrupted step: ``remaining`` continues with what is left of its capacity and time,
    ``restart`` runs it again. ``line`` is where the step is written in the schedule file.
    """

    index: int
    kind: StepKind
    until: Until
    current_a: float = 0.0
    voltage_v: float | None = None
    pressure_pa: float | None = None
    label: str | None = None
    on: dict[str, Action] = field(default_factory=dict)
    resume: Literal["remaining", "restart"] = "remaining"
    limits: Limits | None = None
    line: int | None = None
    template: int = 0
    """Index of the step as written (before repeats and pulses were expanded): the step number a user sees."""

    def action(self, termination: str) -> Action:
        return self.on.get(termination, Action())


@dataclass(frozen=True)
class SuspendRule:
    """Suspend current when pressure falls below ``below_pa`` (Pa); resume once it is back above
    ``resume_above_pa`` and has stayed there for ``settle_s`` (s)."""

    below_pa: float
    resume_above_pa: float
    settle_s: float


@dataclass(frozen=True)
class Schedule:
    """A validated schedule: cell, run limits, recording, the flat program and its source."""

    name: str
    cell: Cell
    limits: Limits
    record: RecordSpec
    steps: tuple[Step, ...]
    description: str = ""
    suspend: SuspendRule | None = None
    source: str = "<string>"
    text: str = ""
    sha256: str = ""
    template_count: int = 0

    def __len__(self) -> int:
        return len(self.steps)
