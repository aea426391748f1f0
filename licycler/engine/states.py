"""The run state machine of one channel: states, the transition table, and transition events.

Pause, resume, abort and suspension are states of the engine (as in bluesky's RunEngine), not
flags inside steps. Every transition emits an :class:`~licycler.events.Event` of kind
``transition``; an illegal transition raises :class:`IllegalTransition`.
"""

from __future__ import annotations

from enum import StrEnum

from licycler.clock import Clock
from licycler.events import Event, EventSink

__all__ = ["TERMINAL", "TRANSITIONS", "IllegalTransition", "RunState", "StateMachine"]


class RunState(StrEnum):
    IDLE = "idle"
    RUNNING = "running"
    PAUSED = "paused"
    SUSPENDED = "suspended"
    STOPPING = "stopping"
    COMPLETED = "completed"
    ABORTED = "aborted"
    FAULTED = "faulted"


S = RunState
TRANSITIONS: dict[RunState, frozenset[RunState]] = {
    S.IDLE: frozenset({S.RUNNING, S.ABORTED, S.FAULTED}),
    S.RUNNING: frozenset({S.PAUSED, S.SUSPENDED, S.STOPPING, S.COMPLETED, S.FAULTED}),
    S.PAUSED: frozenset({S.RUNNING, S.STOPPING, S.FAULTED}),
    S.SUSPENDED: frozenset({S.RUNNING, S.PAUSED, S.STOPPING, S.FAULTED}),
    S.STOPPING: frozenset({S.ABORTED, S.COMPLETED, S.FAULTED}),
    S.COMPLETED: frozenset(),
    S.ABORTED: frozenset(),
    S.FAULTED: frozenset(),
}
"""Allowed transitions. Completed, aborted and faulted are terminal."""

TERMINAL = frozenset({S.COMPLETED, S.ABORTED, S.FAULTED})


class IllegalTransition(RuntimeError):
    """A transition the table does not allow (e.g. resume a completed run)."""


class StateMachine:
    """The state of one channel's run; every change is checked against the table and emitted."""

    def __init__(self, channel: str, clock: Clock, events: EventSink, state: RunState = RunState.IDLE) -> None:
        self.channel = channel
        self.clock = clock
        self.events = events
        self.state = state

    def can(self, new: RunState) -> bool:
        return new in TRANSITIONS[self.state]

    def to(self, new: RunState, cause: str, message: str = "") -> None:
        """Move to ``new`` (emitting a ``transition`` event) or raise :class:`IllegalTransition`."""
        if not self.can(new):
            raise IllegalTransition(f"{self.channel}: cannot go from {self.state} to {new} ({cause})")
        old, self.state = self.state, new
        self.events.emit(
            Event(
                self.clock.now(),
                "engine",
                "transition",
                cause,
                message or f"{old} -> {new}",
                self.channel,
                {"from": str(old), "to": str(new)},
            )
        )
