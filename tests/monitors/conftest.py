"""Runs on the digital twin for the monitor tests, and the lead-time table they report.

Each test builds its scenario (YAML in tmp_path) and schedule, runs it hardware-free through the
real engine, and reads the findings and decisions from the events, the metrics from the store and
what really happened from the twin's own event log.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from licycler.engine import RunController, RunObserver, RunState
from licycler.engine.sim import twin_setups
from licycler.events import Event, EventLog, FanOut
from licycler.protocols import parse_schedule
from licycler.protocols.schedule import Schedule
from licycler.sim_instruments.twin import TwinCell, TwinEvent
from licycler.store import Store
from licycler.yamlsource import load_yaml_text

LEAD_TIMES: list[tuple[str, str, float, str]] = []
"""(scenario, monitor finding, lead time s, what it is measured against), printed at the end."""


def num(value: object) -> float:
    """An event value that must be a number, as a float."""
    assert isinstance(value, int | float), value
    return float(value)


def schedule(text: str) -> Schedule:
    return parse_schedule(load_yaml_text(text, "schedule.yaml"), text, "schedule.yaml")


@dataclass
class TwinRun:
    """What a run left behind: final state, events, store, run id, the twin's cell."""

    state: RunState
    log: EventLog
    store: Store | None
    run_id: str
    cell: TwinCell
    controller: RunController
    steps: list[dict[str, Any]] = field(default_factory=list)

    def of(self, kind: str, cause: str | None = None) -> list[Event]:
        return [e for e in self.log.events if e.kind == kind and (cause is None or e.cause == cause)]

    @property
    def findings(self) -> list[Event]:
        return self.of("finding")

    @property
    def decisions(self) -> list[Event]:
        return self.of("decision", None)

    def monitor_decisions(self) -> list[Event]:
        return [e for e in self.decisions if e.source.startswith("monitor:")]

    def twin_events(self, kind: str, electrode: str | None = None) -> list[TwinEvent]:
        return [e for e in self.cell.events if e.kind == kind and (electrode is None or e.electrode == electrode)]

    def metric(self, name: str) -> list[dict[str, Any]]:
        assert self.store is not None
        return self.store.metrics(self.run_id, "ch1", name)


class _Steps:
    """Keeps every step row and the twin's true state at each step end."""

    def __init__(self, cell: TwinCell, rows: list[dict[str, Any]]) -> None:
        self.cell = cell
        self.rows = rows

    def on_samples(self, run_id: str, channel: str, rows: Any) -> None:
        return None

    def on_cycle(self, run_id: str, channel: str, row: dict[str, Any]) -> None:
        return None

    def on_step(self, run_id: str, channel: str, row: dict[str, Any]) -> None:
        self.rows.append({**row, "twin": self.cell.state()})

    def on_metrics(self, run_id: str, channel: str, rows: list[dict[str, Any]]) -> None:
        return None


async def run_twin(
    sched_text: str,
    scenario: str | Path,
    tmp_path: Path | None = None,
    *,
    seed: int | None = None,
    observers: Iterable[RunObserver] = (),
    cell_observer: Callable[[TwinCell], RunObserver] | None = None,
    store: bool = True,
) -> TwinRun:
    """Run ``sched_text`` on a twin of ``scenario`` (a bundled name, a path, or YAML text);
    ``cell_observer`` makes an observer that acts on the twin's cell (fault injection)."""
    if isinstance(scenario, str) and "\n" in scenario:
        assert tmp_path is not None
        path = tmp_path / "scenario.yaml"
        path.write_text(scenario)
        scenario = path
    sched = schedule(sched_text)
    setups, _ = twin_setups(sched, scenario, seed=seed)
    log = EventLog()
    db = Store(f"sqlite:///{tmp_path / 'run.db'}") if store and tmp_path is not None else None
    ctl = RunController(sched, setups, db, events=FanOut(log))
    cell = setups[0].supervisor.channel.cell  # type: ignore[attr-defined]
    rows: list[dict[str, Any]] = []
    ctl.add_observer(_Steps(cell, rows))
    for obs in observers:
        ctl.add_observer(obs)
    if cell_observer is not None:
        ctl.add_observer(cell_observer(cell))
    states = await ctl.run()
    return TwinRun(states["ch1"], log, db, ctl.run_id, cell, ctl, rows)


def report_lead(scenario: str, finding: str, lead_s: float, against: str) -> None:
    LEAD_TIMES.append((scenario, finding, lead_s, against))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not LEAD_TIMES:
        return
    terminalreporter.section("monitor lead times (finding before the fault, on the twin)")
    for scenario, finding, lead, against in LEAD_TIMES:
        terminalreporter.write_line(f"{scenario:34s} {finding:34s} {lead:10.1f} s  before {against}")


@pytest.fixture
def lead() -> Any:
    return report_lead
