"""What every monitor shares: the data it sees (a chunk of samples and its step), what it says
(findings and metric rows), and the small Protocol each monitor family implements.

Monitors are plain synchronous objects working on numpy arrays: they never wait, never touch an
instrument, and carry only a few numbers from one chunk to the next (their ``state``, JSON, is
what a checkpoint keeps). SI units throughout; currents are signed as the instruments see them
(positive strips the working electrode, plate steps are negative).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from licycler.protocols.schedule import Schedule, Step, Watch

__all__ = [
    "Chunk",
    "Finding",
    "FloatArray",
    "MetricLog",
    "Monitor",
    "StepContext",
    "Value",
    "finite_or_none",
    "least_squares_slope",
]

FloatArray = npt.NDArray[np.float64]
Value = float | str | bool | None


def finite_or_none(x: float) -> float | None:
    """``x`` as a float, or None when it is infinite or NaN (what the store and JSON keep)."""
    return float(x) if math.isfinite(x) else None


@dataclass(frozen=True)
class Finding:
    """Something a monitor noticed: ``cause`` names the finding (a ``watch:`` rule key such as
    ``depletion``), ``sign`` how it was seen (``forecast``, ``threshold``, ``noise`` ...),
    ``values`` the numbers behind it (SI). ``lead_s`` is the predicted time until the fault for a
    forecast (None when the fault is observed as it happens)."""

    monitor: str
    cause: str
    sign: str
    time_s: float
    message: str
    values: Mapping[str, Value] = field(default_factory=dict)
    lead_s: float | None = None


@dataclass(frozen=True)
class Chunk:
    """Samples of one step, in time order: ``t_s`` (s), ``voltage_v`` (V), ``current_a`` (A);
    ``t_prev_s`` is the time before the first sample (the current read at t_k flowed during
    (t_(k-1), t_k]); ``pressure_pa`` a stack-pressure reading at the end (None without a rig);
    ``first`` marks the step's first chunk.

    Columns several monitors use are derived once, when the chunk is made: ``abs_voltage_v`` (|V|,
    V), ``voltage_finite`` (every voltage reading is finite: the usual case, no mask needed) and
    ``dt_s`` (s, the interval each reading's current flowed for, from the previous reading)."""

    t_s: FloatArray
    voltage_v: FloatArray
    current_a: FloatArray
    t_prev_s: float
    pressure_pa: float | None = None
    first: bool = False
    abs_voltage_v: FloatArray = field(init=False, repr=False)
    voltage_finite: bool = field(init=False, repr=False)
    dt_s: FloatArray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        t = self.t_s
        dt = np.empty(t.shape)
        if t.size:
            dt[0] = t[0] - self.t_prev_s
            np.subtract(t[1:], t[:-1], out=dt[1:])
        a = np.abs(self.voltage_v)
        finite = bool(np.isfinite(a.max())) if a.size else True  # NaN and inf propagate to the max
        object.__setattr__(self, "abs_voltage_v", a)
        object.__setattr__(self, "voltage_finite", finite)
        object.__setattr__(self, "dt_s", dt)

    def __len__(self) -> int:
        return int(self.t_s.shape[0])

    @property
    def end_s(self) -> float:
        return float(self.t_s[-1]) if len(self) else self.t_prev_s


def least_squares_slope(x: Sequence[float], y: Sequence[float]) -> float:
    """Slope of the least-squares line through the points (x, y) (y units per x unit); 0 with
    fewer than two distinct x. Plain floats: the monitors fit a few points at a time."""
    n = len(x)
    if n < 2:
        return 0.0
    mx = math.fsum(x) / n
    my = math.fsum(y) / n
    sxx = math.fsum((xi - mx) ** 2 for xi in x)
    sxy = math.fsum((xi - mx) * (yi - my) for xi, yi in zip(x, y, strict=True))
    return sxy / sxx if sxx > 0 else 0.0


class MetricLog:
    """Metric rows for the store's ``metrics`` table (seq, time_s, cycle, name, value), numbered
    from ``seq`` (a resumed run goes on from its checkpoint's number: the store deleted the rows
    from there on). The open cycle's rows are kept in memory too (``open_rows``: a live view reads
    the latest values from them)."""

    def __init__(self, seq: int = 0) -> None:
        self.seq = seq
        self.rows: list[dict[str, Any]] = []
        self.open_rows: list[dict[str, Any]] = []
        self.cycle = 0

    def add(self, time_s: float, name: str, value: float | None) -> None:
        """One value of metric ``name`` at ``time_s`` (non-finite values are stored as NULL)."""
        row = {"seq": self.seq, "time_s": float(time_s), "cycle": self.cycle, "name": name,
               "value": None if value is None else finite_or_none(float(value))}  # fmt: skip
        self.seq += 1
        self.rows.append(row)
        self.open_rows.append(row)

    def new_cycle(self, cycle: int) -> None:
        if cycle != self.cycle:
            self.cycle = cycle
            self.open_rows = []

    def take(self) -> list[dict[str, Any]]:
        rows, self.rows = self.rows, []
        return rows


@dataclass
class StepContext:
    """The step the monitors are watching and where it stands.

    ``setpoint_a`` is the current being sourced (after any derating, A); ``charge_c`` the signed
    charge passed so far in the step (C) and ``elapsed_s`` the time in it (pauses not counted);
    ``time_limit_s`` the step's time termination (extended by a derate) or None.
    """

    schedule: Schedule
    step: Step
    step_seq: int
    t0_s: float
    cycle: int
    setpoint_a: float
    metrics: MetricLog
    charge_c: float = 0.0
    elapsed_s: float = 0.0
    time_limit_s: float | None = None
    pressure_pa: float | None = None
    previous_end: str = ""
    """How the previous current step ended (``voltage_above``, ``capacity`` ...), "" at the start."""
    previous_kind: str = ""
    ended: bool = False
    """The step has ended (its end-of-step findings are being made)."""

    @property
    def watch(self) -> Watch:
        return self.schedule.watch

    @property
    def area_m2(self) -> float:
        return self.schedule.cell.area_m2

    @property
    def chemistry(self) -> str:
        return self.schedule.cell.chemistry

    @property
    def sourcing(self) -> bool:
        """A constant-current step with current (plate or strip)."""
        return self.step.kind in ("plate", "strip") and self.setpoint_a != 0.0

    def remaining_s(self, horizon_s: float, current_a: float | None = None) -> float:
        """Time (s) until the step ends at ``current_a`` (default the setpoint): the sooner of its
        time limit and its capacity, or ``horizon_s`` when it has neither."""
        current = abs(self.setpoint_a if current_a is None else current_a)
        left = math.inf
        if self.time_limit_s is not None:
            left = max(0.0, self.time_limit_s - self.elapsed_s)
        cap = self.step.until.capacity_c
        if cap is not None and current > 0:
            left = min(left, max(0.0, cap - abs(self.charge_c)) / current)
        return horizon_s if math.isinf(left) else left


@runtime_checkable
class Monitor(Protocol):
    """A monitor family. Every method returns at once with what it found (usually nothing);
    metrics go to ``ctx.metrics``. ``state``/``restore`` carry it across a checkpoint (JSON)."""

    name: str

    def start_step(self, ctx: StepContext) -> list[Finding]:
        """A step begins (its setpoint is not applied yet)."""
        ...

    def observe(self, ctx: StepContext, chunk: Chunk) -> list[Finding]:
        """New samples of the step (vectorised; no per-sample Python loop)."""
        ...

    def end_step(self, ctx: StepContext, ended_by: str) -> list[Finding]:
        """The step ended by ``ended_by`` (a termination name, or ``aborted``)."""
        ...

    def end_cycle(self, ctx: StepContext, row: Mapping[str, Any]) -> list[Finding]:
        """A cycle closed: ``row`` is its cycles-table row (charges, energies, CE, mean voltages)."""
        ...

    def state(self) -> dict[str, Any]: ...

    def restore(self, state: dict[str, Any]) -> None: ...
