"""Clocks: the Protocol every time-keeping part uses, a virtual clock and a real-time clock x speed.

The engine, the safety supervisor's watchdog and the simulated instruments all take a :class:`Clock`,
so a hardware-free run goes as fast as the machine allows on a :class:`VirtualClock` and a served
instrument keeps (scaled) wall-clock time on a :class:`RealTimeClock`.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol, runtime_checkable

__all__ = ["Clock", "RealTimeClock", "VirtualClock"]


@runtime_checkable
class Clock(Protocol):
    """A source of time in seconds: virtual (as fast as the machine allows) or real (x speed)."""

    def now(self) -> float:
        """The present time, s."""
        ...

    async def sleep_until(self, t_s: float) -> None:
        """Return once the clock has reached ``t_s`` (s); a virtual clock may jump there."""
        ...

    async def wait_until(self, t_s: float) -> None:
        """Return once the clock has reached ``t_s`` without moving it (watchdogs use this)."""
        ...


class VirtualClock:
    """Time that only moves when told to; :meth:`sleep_until` advances it at once.

    Many tasks may wait on one virtual clock: a waiter is released as soon as some task moves the
    clock past its deadline, or immediately when ``auto_advance`` is set (the default), in which
    case the clock jumps forward to the requested time (an in-process, hardware-free run).
    """

    def __init__(self, start_s: float = 0.0, *, auto_advance: bool = True) -> None:
        self._now = float(start_s)
        self.auto_advance = auto_advance
        self._changed: asyncio.Event | None = None

    def now(self) -> float:
        """The present virtual time, s."""
        return self._now

    def advance_to(self, t_s: float) -> None:
        """Move the clock forward to ``t_s`` (never backwards), waking tasks waiting on it."""
        if t_s > self._now:
            self._now = float(t_s)
            if self._changed is not None:
                self._changed.set()
                self._changed = None

    def advance_by(self, dt_s: float) -> None:
        """Move the clock forward by ``dt_s`` seconds."""
        self.advance_to(self._now + dt_s)

    async def sleep_until(self, t_s: float) -> None:
        """Return once the clock has reached ``t_s``; yields to the event loop once in any case."""
        if self.auto_advance:
            self.advance_to(t_s)
            await asyncio.sleep(0)
            return
        await self.wait_until(t_s)

    async def wait_until(self, t_s: float) -> None:
        """Return once another task has moved the clock to ``t_s``; never moves it itself."""
        while self._now < t_s:
            if self._changed is None:
                self._changed = asyncio.Event()
            await self._changed.wait()


class RealTimeClock:
    """Wall-clock (monotonic) time scaled by ``speed``, starting at ``start_s``.

    ``speed=10`` makes simulated time run ten times faster than real time: served instruments
    use it so that a week of cycling can be tried in hours.
    """

    def __init__(self, speed: float = 1.0, start_s: float = 0.0) -> None:
        if not speed > 0:
            raise ValueError(f"clock speed must be > 0, got {speed}")
        self.speed = float(speed)
        self._origin = time.monotonic()
        self._start = float(start_s)

    def now(self) -> float:
        """Simulated seconds since start, s."""
        return self._start + (time.monotonic() - self._origin) * self.speed

    async def sleep_until(self, t_s: float) -> None:
        """Sleep (in real time) until the simulated clock reaches ``t_s``."""
        delay = (t_s - self.now()) / self.speed
        if delay > 0:
            await asyncio.sleep(delay)

    async def wait_until(self, t_s: float) -> None:
        """The same as :meth:`sleep_until`: real time moves by itself."""
        await self.sleep_until(t_s)
