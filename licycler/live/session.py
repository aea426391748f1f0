"""The live view attached to a run: redrawn a few times a second of wall-clock time, never per event.

Modes: ``live`` (a rich table in the terminal, redrawn in place; event lines printed above it),
``json`` (one ``{"type": "status", ...}`` object per channel per second on stdout, for scripts and
services), ``quiet`` and ``text`` (nothing from here; the run command prints its event lines).
``licycler run`` attaches it through :func:`live_hook` and ends it with :func:`close_live`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import weakref
from typing import Any, TextIO

from rich.console import Console
from rich.live import Live

from licycler.engine.run import RunController
from licycler.live.model import MONITOR_KEYS, LiveModel
from licycler.live.render import render_run

__all__ = ["LiveSession", "attach_live", "close_live", "live_hook", "live_mode", "live_options"]

REFRESH_HZ = 8.0
"""Redraws per second of the terminal view."""

JSON_PERIOD_S = 1.0
"""Seconds between status objects per channel in ``--json`` mode."""

MONITOR_ROWS_SCANNED = 500
"""Most recent monitor rows looked at per channel and redraw."""

_ATTACHED: weakref.WeakKeyDictionary[RunController, LiveSession] = weakref.WeakKeyDictionary()


class LiveSession:
    """Watches ``controller`` (as event sink and observer) and draws it in ``mode``."""

    def __init__(
        self,
        controller: RunController,
        mode: str = "live",
        *,
        title: str | None = None,
        console: Console | None = None,
        out: TextIO | None = None,
        refresh_hz: float = REFRESH_HZ,
        json_period_s: float = JSON_PERIOD_S,
    ) -> None:
        self.controller = controller
        self.mode = mode
        self.title = title or f"{controller.run_id} · {controller.schedule.name}"
        self.out = out or sys.stdout
        self.console = console or Console(file=self.out)
        self.period_s = 1.0 / refresh_hz if mode == "live" else json_period_s
        self.model = LiveModel(controller.run_id, controller.schedule, [s.name for s in controller.setups],
                               positions=self._positions, monitor_values=self._monitor_values)  # fmt: skip
        self._live: Live | None = None
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self.redraws = 0

    def _positions(self) -> dict[str, int]:
        return {name: r.progress.position for name, r in self.controller.runners.items()}

    def _monitor_values(self) -> dict[str, dict[str, Any]]:
        """The latest depletion index and pressure among each channel's monitor rows not yet
        written (the runner's monitor suite keeps the open cycle's rows); empty without monitors."""
        out: dict[str, dict[str, Any]] = {}
        for name, runner in self.controller.runners.items():
            rows = getattr(getattr(getattr(runner, "monitors", None), "metrics", None), "open_rows", None)
            if not isinstance(rows, list):
                continue
            found: dict[str, Any] = {}
            for row in reversed(rows[-MONITOR_ROWS_SCANNED:]):
                key = row.get("name") if isinstance(row, dict) else None
                if key in MONITOR_KEYS and key not in found and row.get("value") is not None:
                    found[key] = row["value"]
            out[name] = found
        return out

    def start(self) -> None:
        """Attach to the controller and start redrawing (call inside the running loop)."""
        self.controller.add_sink(self.model)
        self.controller.add_observer(self.model)
        if self.mode not in ("live", "json"):
            return
        if self.mode == "live":
            self._live = Live(console=self.console, auto_refresh=False, transient=False, redirect_stdout=True,
                              redirect_stderr=True, vertical_overflow="visible")  # fmt: skip
            self._live.start()
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="live-view")

    async def _loop(self) -> None:
        while not self._stop.is_set():
            self.draw()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.period_s)

    def draw(self) -> None:
        """Redraw once (the terminal view) or print one status object per channel (JSON)."""
        self.redraws += 1
        views = self.model.snapshot()
        if self.mode == "live" and self._live is not None:
            frame = render_run(self.title, views, list(self.model.log), self.console.width)
            self._live.update(frame, refresh=True)
        elif self.mode == "json":
            for view in views:
                print(json.dumps({"type": "status", "run_id": self.controller.run_id, **view.to_json()}),
                      file=self.out, flush=True)  # fmt: skip

    async def close(self) -> None:
        """Stop redrawing; the last frame (or status objects) shows how every channel ended."""
        self._stop.set()
        if self._task is not None:
            if not self._task.done():
                with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                    await asyncio.wait_for(self._task, 1.0)
            self._task = None
            self.draw()
        if self._live is not None:
            self._live.stop()
            self._live = None


def live_mode(args: argparse.Namespace, stream: TextIO | None = None) -> str:
    """``json``, ``quiet``, ``live`` (``--live``, or a terminal unless ``--no-live``) or ``text``."""
    if getattr(args, "json", False):
        return "json"
    if getattr(args, "quiet", False):
        return "quiet"
    wanted: Any = getattr(args, "live", None)
    if wanted is None:
        wanted = (stream or sys.stdout).isatty()
    return "live" if wanted else "text"


def attach_live(controller: RunController, mode: str = "live", **kwargs: Any) -> LiveSession:
    """Start a :class:`LiveSession` on ``controller`` (inside the running loop, before it runs)."""
    session = LiveSession(controller, mode, **kwargs)
    session.start()
    _ATTACHED[controller] = session
    return session


async def close_live(controller: RunController) -> None:
    """End the live view attached to ``controller``, if any (its last frame stays on screen)."""
    session = _ATTACHED.pop(controller, None)
    if session is not None:
        await session.close()


def live_hook(controller: RunController, args: argparse.Namespace) -> None:
    """The ``licycler run`` controller hook: the live view in the mode the options ask for."""
    mode = live_mode(args)
    if mode in ("live", "json"):
        attach_live(controller, mode)


def live_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--live``/``--no-live`` (default: live in a terminal) to a run command's parser."""
    parser.add_argument("--live", action=argparse.BooleanOptionalAction, default=None,
                        help="redraw a live table of every channel (default: on a terminal)")  # fmt: skip
