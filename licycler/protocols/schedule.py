"""The schedule as data: what the engine executes. Built by :mod:`licycler.protocols.parse`.

SI throughout. Sign convention (as the instruments see it): a positive current strips lithium
from the working electrode (Li||Cu: the Cu side), a negative one plates onto it. Nested repeats
and pulses are expanded into a flat tuple of :class:`Step`, so a position in a run is one index
(what checkpoints store) and a ``goto`` is a jump to an index.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from licycler import units as u
from licycler.safety.limits import Limits

__all__ = [
    "WATCH_ACTIONS",
    "WATCH_FINDINGS",
    "WATCH_RESUME",
    "Action",
    "Cell",
    "RecordSpec",
    "Schedule",
    "Step",
    "StepKind",
    "SuspendRule",
    "Until",
    "Watch",
    "WatchModel",
    "WatchRule",
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
    ``pressure_pa`` the rig setpoint for ``pressure``. ``resume`` says what a resumed station run does
    with the step its controller died in (``on: {controller_gap: continue|restart|stop}``):
    ``remaining`` continues with what is left of its capacity and time, ``restart`` runs it again
    (its charge and time counted from the resume; the cycle keeps every coulomb), ``stop`` ends the
    run there. ``line`` is where the step is written in the schedule file.
    """

    index: int
    kind: StepKind
    until: Until
    current_a: float = 0.0
    voltage_v: float | None = None
    pressure_pa: float | None = None
    label: str | None = None
    on: dict[str, Action] = field(default_factory=dict)
    resume: Literal["remaining", "restart", "stop"] = "remaining"
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


WATCH_ACTIONS = ("continue", "derate", "suspend", "abort")
"""What a ``watch:`` rule may do with a finding (``derate`` only for ``depletion``)."""

WATCH_FINDINGS: dict[str, tuple[str, dict[str, tuple[u.Dimension, float, str]]]] = {
    "depletion": ("derate", {
        "threshold": (u.DIMENSIONLESS, 0.8, "depletion index (0 fresh, 1 depleted) the surface must stay below"),
        "horizon": (u.TIME, 3600.0, "how far ahead to look in a step with no time or capacity end"),
        "min_fraction": (u.DIMENSIONLESS, 0.05, "lowest current a derate may set, as a fraction of the step's"),
    }),
    "voltage_divergence": ("continue", {
        "window": (u.TIME, 10.0, "averaging window of |V| for the accelerating-divergence test"),
        "min_rise": (u.VOLTAGE, 5e-3, "smallest rise of |V| per window that counts"),
    }),
    "soft_short": ("abort", {
        "noise_ratio": (u.DIMENSIONLESS, 3.0, "voltage noise at constant current, over the run's early noise"),
        "noise_floor": (u.VOLTAGE, 20e-6, "noise below this never counts"),
        "polarization_drop": (u.DIMENSIONLESS, 0.1, "fall of the plateau |V| from earlier steps at the same current"),
        "collapse": (u.DIMENSIONLESS, 0.3, "|V| below this fraction of the plateau at constant current"),
    }),
    "pressure_loss": ("continue", {
        "fraction": (u.DIMENSIONLESS, 0.2, "loss of stack pressure from its reference"),
        "rate": (u.DIMENSIONLESS / u.TIME, 0.1 / 3600.0, "rate of loss, as a fraction of the reference per time"),
        "window": (u.TIME, 600.0, "time over which the rate is fitted"),
    }),
    "void_risk": ("continue", {
        "margin": (u.DIMENSIONLESS, 1.0, "warn when the predicted time to void is below margin x the step's time left"),
    }),
    "lithium_exhaustion": ("continue", {
        "cycles": (u.DIMENSIONLESS, 2.0, "warn when fewer cycles than this are left in the lithium inventory"),
    }),
    "nucleation_drift": ("continue", {
        "change": (u.VOLTAGE, 10e-3, "change of the nucleation overpotential from its baseline"),
        "fraction": (u.DIMENSIONLESS, 0.25, "... or this fraction of the baseline, whichever is larger"),
        "baseline_cycles": (u.DIMENSIONLESS, 3.0, "bare-substrate platings that make the baseline"),
    }),
    "overpotential_spike": ("continue", {
        "size": (u.VOLTAGE, 50e-3, "a single reading this far above both neighbours at constant current"),
    }),
}  # fmt: skip
"""Findings a ``watch:`` rule can name: (default action, {parameter: (dimension, default SI, meaning)})."""

WATCH_RESUME: dict[str, tuple[u.Dimension, str]] = {
    "resume_above": (u.PRESSURE, "resume once the stack pressure is back above this"),
    "resume_below": (u.DIMENSIONLESS, "resume once the depletion index has relaxed below this"),
    "resume_after": (u.TIME, "resume after this long"),
    "settle": (u.TIME, "the resume conditions must hold this long"),
}
"""Resume conditions of a ``suspend`` rule (all given ones must hold for ``settle``)."""


@dataclass(frozen=True)
class WatchRule:
    """What to do with one kind of finding: ``action`` and the detection/resume ``params`` (SI).

    ``params`` holds every parameter of the finding (defaults filled in) and the resume conditions
    given for a ``suspend``.
    """

    action: str
    params: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))

    def __getitem__(self, name: str) -> float:
        return self.params[name]

    def get(self, name: str) -> float | None:
        return self.params.get(name)


def _default_rules() -> Mapping[str, WatchRule]:
    return MappingProxyType(
        {name: WatchRule(action, MappingProxyType({k: v[1] for k, v in params.items()}))
         for name, (action, params) in WATCH_FINDINGS.items()}
    )  # fmt: skip


@dataclass(frozen=True)
class WatchModel:
    """What the monitors assume about the cell (SI): electrolyte and gap for depletion, hot spots,
    interface mechanics for voids and creep, and the lithium inventory when it is known.

    Defaults: 1 M LiPF6 in EC:DMC (Valoen & Reimers 2005) in a 25 um, 40 % porous separator, no
    hot spot, the twin's default interface (k_n 2e10 Pa/m, sigma_c 0.1 MPa) and Li creep (n 6.6).
    """

    diffusivity_m2_s: float = 3.22e-10
    concentration_mol_m3: float = 1000.0
    transference_number: float = 0.38
    thickness_m: float = 25e-6
    porosity: float = 0.4
    bruggeman: float = 1.5
    tortuosity: float | None = None
    alpha: float = 1.0
    void_alpha: float = 1.0
    contact_stiffness_pa_m: float = 2e10
    adhesion_strength_pa: float = 1e5
    stack_pressure_pa: float | None = None
    creep_prefactor: float = 2.5e-46
    creep_exponent: float = 6.6
    protrusion_length_m: float = 1e-6
    stress_concentration: float = 1.0
    inventory_c: float | None = None
    """Lithium in the cell that can be cycled (C; Li||Cu: counter plus working), None when unknown."""


@dataclass(frozen=True)
class Watch:
    """The schedule's ``watch:`` section: live monitors and what to do with their findings.

    ``every_s`` is the period of time-series metrics; ``period_s`` how much data (s) the monitors
    take at a time; ``retention`` and ``target_cycles`` set the projected and required CE;
    ``ce_window`` the cycles in the rolling CE; ``reservoir_label`` and ``final_strip_label`` name
    the steps of a reservoir (Adams) CE protocol.
    """

    enabled: bool = True
    every_s: float = 300.0
    period_s: float = 60.0
    model: WatchModel = field(default_factory=WatchModel)
    rules: Mapping[str, WatchRule] = field(default_factory=_default_rules)
    retention: float = 0.8
    target_cycles: float = 1000.0
    ce_window: int = 10
    reservoir_label: str = "reservoir"
    final_strip_label: str = "final-strip"

    def rule(self, finding: str) -> WatchRule:
        """The rule for ``finding`` (every finding has one: its default when the schedule gives none)."""
        return self.rules[finding]


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
    watch: Watch = field(default_factory=Watch)
    source: str = "<string>"
    text: str = ""
    sha256: str = ""
    template_count: int = 0

    def __len__(self) -> int:
        return len(self.steps)
