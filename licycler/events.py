"""Events: every trip, transition, finding and decision, as one record type fanned out to sinks.

Sinks (the store, telemetry, the live view, tests) must never block the sender: :class:`FanOut`
calls each sink's ``emit`` and counts, but swallows, a sink's failure, so a full disk or a dead
broker never delays a safety action.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

__all__ = ["Event", "EventLog", "EventSink", "FanOut"]


@dataclass(frozen=True)
class Event:
    """Something that happened on a channel (or the station when ``channel`` is None).

    ``time_s`` is the run's clock time (s); ``wall_time_s`` the Unix time it was recorded.
    ``source`` says who emitted it (``safety``, ``engine``, ``monitor:<name>``), ``kind`` what it is
    (``trip``, ``estop``, ``secured``, ``transition``, ``finding``, ``decision``), ``cause`` a
    machine-readable code, ``message`` a sentence, ``values`` the numbers behind it (SI).
    """

    time_s: float
    source: str
    kind: str
    cause: str
    message: str
    channel: str | None = None
    values: Mapping[str, float | str | bool | None] = field(default_factory=dict)
    wall_time_s: float = field(default_factory=time.time)


@runtime_checkable
class EventSink(Protocol):
    """Receives events; ``emit`` must return at once (queue, don't wait)."""

    def emit(self, event: Event) -> None: ...


class EventLog:
    """An in-memory sink that keeps every event and lets a task wait for one that matches."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._changed = asyncio.Event()

    def emit(self, event: Event) -> None:
        self.events.append(event)
        self._changed.set()

    def of_kind(self, kind: str) -> list[Event]:
        return [e for e in self.events if e.kind == kind]

    async def wait_for(self, *, kind: str | None = None, cause: str | None = None) -> Event:
        """The first event (already logged or yet to come) with this kind and/or cause."""
        seen = 0
        while True:
            for event in self.events[seen:]:
                if (kind is None or event.kind == kind) and (cause is None or event.cause == cause):
                    return event
            seen = len(self.events)
            self._changed.clear()
            await self._changed.wait()


class FanOut:
    """Sends each event to every sink; a sink that raises is counted in ``failures``, never propagated."""

    def __init__(self, *sinks: EventSink) -> None:
        self.sinks: list[EventSink] = list(sinks)
        self.failures: dict[str, int] = {}

    def add(self, sink: EventSink) -> None:
        self.sinks.append(sink)

    def emit(self, event: Event) -> None:
        for sink in self.sinks:
            try:
                sink.emit(event)
            except Exception:  # a failing sink must never stop safety
                name = type(sink).__name__
                self.failures[name] = self.failures.get(name, 0) + 1
