"""The benchmark harness: every figure is reported with its ratio to a raw baseline of the same run.

A benchmark module ``benchmarks/bench_*.py`` defines ``def run(quick: bool) -> list[Result]``.
``python -m benchmarks.run`` (or ``python benchmarks/run.py``) imports each, runs it, and prints
one table; ``--json`` prints JSON lines; ``--quick`` uses smaller sizes (for a smoke test).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["Result", "best_of", "ratio_result"]


@dataclass(frozen=True)
class Result:
    """One measured figure against its baseline.

    ``ratio`` is figure / baseline; ``target`` says what ratio the issue asks for, as text such as
    ``">= 1.0"`` or ``"<= 1.3"`` (empty when the figure is only reported); ``passed`` is None then.
    """

    name: str
    figure: float
    unit: str
    baseline: float
    baseline_name: str
    ratio: float
    target: str = ""
    passed: bool | None = None
    notes: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def best_of(func: Callable[[], object], repeat: int = 3) -> float:
    """The shortest wall time (s) of ``repeat`` calls of ``func`` (the usual noise-robust choice)."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        func()
        best = min(best, time.perf_counter() - start)
    return best


def ratio_result(
    name: str,
    figure: float,
    unit: str,
    baseline: float,
    baseline_name: str,
    target: str = "",
    notes: str = "",
    ratio: float | None = None,
) -> Result:
    """A :class:`Result` with its ratio, and ``passed`` judged from ``target`` (``">= x"``/``"<= x"``).

    ``ratio`` defaults to figure / baseline; a benchmark that estimates it otherwise (the median of
    paired ratios) passes it, and says how in ``notes``."""
    if ratio is None:
        ratio = figure / baseline if baseline else float("inf")
    passed: bool | None = None
    if target:
        op, value = target.split()
        passed = ratio >= float(value) if op == ">=" else ratio <= float(value)
    return Result(name, figure, unit, baseline, baseline_name, ratio, target, passed, notes)
