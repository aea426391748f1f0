"""Station-wide safety: secure every channel at start-up, emergency stop, and signals.

A controller that starts (perhaps after a crash) first calls :meth:`StationSafety.secure_all`, so
every channel it owns is in its safe state before anything else is sent. SIGINT and SIGTERM run an
emergency stop and then cancel the main task, whose ``guard`` blocks see the cancellation.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Mapping

from licycler.safety.supervisor import ChannelSupervisor

__all__ = ["StationSafety"]


class StationSafety:
    """All the channel supervisors of one station."""

    def __init__(self, supervisors: Mapping[str, ChannelSupervisor]) -> None:
        self.supervisors = dict(supervisors)
        self.signalled: int | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def secure_all(self, cause: str = "startup", message: str = "securing every channel") -> dict[str, bool]:
        """Safe state on every channel at once; returns channel -> output off confirmed."""
        names = list(self.supervisors)
        results = await asyncio.gather(*(self.supervisors[n].secure(cause, message) for n in names))
        return dict(zip(names, results, strict=True))

    async def emergency_stop(self, reason: str = "emergency stop") -> None:
        """Every channel to its safe state, concurrently (one round trip per channel, in parallel)."""
        await asyncio.gather(*(s.emergency_stop(reason) for s in self.supervisors.values()))

    def install_signal_handlers(self, main_task: asyncio.Task[object]) -> None:
        """On SIGINT/SIGTERM: emergency stop on every channel, then cancel ``main_task``."""
        loop = asyncio.get_running_loop()

        def handler(signum: int) -> None:
            self.signalled = signum
            name = signal.Signals(signum).name

            async def stop() -> None:
                try:
                    await self.emergency_stop(f"{name} received")
                finally:
                    main_task.cancel(f"{name} received")

            task = loop.create_task(stop())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, handler, sig)
