"""Remote control: a command received on ``licycler/<station>/<channel>/cmd/<verb>`` checked and
carried out on the run controller.

Only clients the broker lets publish there are heard at all (username/password, the station's ACL,
TLS where configured): the broker drops anything else before it reaches the station. What does
arrive is validated against ``schema/command.json`` and refused when older than ``max_age_s`` (a
command held up somewhere is never executed late). Every verb acts through the engine and its
safety supervisors; none sets a value of its own:

- ``pause``, ``resume``, ``abort``: :meth:`RunController.pause` / ``resume`` / ``abort``;
- ``estop``: the channel's supervisor (``*``: every channel, :meth:`RunController.emergency_stop`)
  puts it in its safe state at once, then the channel's run is aborted.

Every accepted command is logged as an event (source ``telemetry``, kind ``decision``) before it
is carried out, so the run's record says who asked for what and why.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from licycler.engine.run import RunController
from licycler.errors import UserError
from licycler.events import Event
from licycler.telemetry.payloads import PAYLOAD_VERSION, PayloadError, decode
from licycler.telemetry.topics import ALL_CHANNELS, COMMAND_VERBS

__all__ = ["CommandHandler", "CommandResult"]

_log = logging.getLogger(__name__)


@dataclass
class CommandResult:
    """What became of a command: ``ok``, or the ``error`` that refused it."""

    verb: str
    channel: str
    id: str | None
    ok: bool
    error: str | None = None

    def reply(self, station: str, states: dict[str, str]) -> dict[str, Any]:
        return {
            "v": PAYLOAD_VERSION, "type": "reply", "station": station, "channel": self.channel, "verb": self.verb,
            "id": self.id, "ok": self.ok, "error": self.error, "unix_time_s": time.time(), "states": states,
        }  # fmt: skip


class CommandHandler:
    """Checks and executes commands on ``controller`` (None: every command is refused)."""

    def __init__(
        self, controller: RunController | None, *, max_age_s: float = 30.0, clock: Callable[[], float] = time.time
    ) -> None:
        self.controller = controller
        self.max_age_s = max_age_s
        self.clock = clock
        self.accepted = 0
        self.refused = 0

    def _refuse(self, verb: str, channel: str, command_id: str | None, error: str) -> CommandResult:
        self.refused += 1
        _log.warning("refused command %s on %s (id %s): %s", verb, channel, command_id, error)
        return CommandResult(verb, channel, command_id, False, error)

    async def handle(self, channel: str, verb: str, data: bytes) -> CommandResult:
        """Check and execute one command; never raises."""
        command_id = _peek_id(data)
        if verb not in COMMAND_VERBS:
            known = ", ".join(COMMAND_VERBS)
            return self._refuse(verb, channel, command_id, f"unknown command '{verb}' (known: {known})")
        try:
            command = decode("command", data)
        except PayloadError as exc:
            return self._refuse(verb, channel, command_id, str(exc))
        command_id = str(command["id"])
        age = self.clock() - float(command["issued_unix_s"])
        if not -self.max_age_s <= age <= self.max_age_s:
            return self._refuse(verb, channel, command_id,
                                f"command issued {age:.1f} s ago; only commands within {self.max_age_s:g} s are "
                                "executed (check the sender's clock)")  # fmt: skip
        ctl = self.controller
        if ctl is None:
            return self._refuse(verb, channel, command_id, "no run on this station")
        names = [s.name for s in ctl.setups]
        if channel != ALL_CHANNELS and channel not in names:
            return self._refuse(verb, channel, command_id, f"no channel '{channel}' (channels: {', '.join(names)})")
        target = None if channel == ALL_CHANNELS else channel
        reason = str(command.get("reason") or f"remote {verb}")
        operator = str(command.get("operator") or "")
        ctl.events.emit(Event(
            _clock_of(ctl, target), "telemetry", "decision", f"remote_{verb}",
            f"remote {verb} on {channel}" + (f" by {operator}" if operator else "") + f": {reason}", target,
            {"command_id": command_id, "operator": operator or None},
        ))  # fmt: skip
        try:
            await self._execute(ctl, verb, target, reason)
        except UserError as exc:
            return self._refuse(verb, channel, command_id, str(exc))
        except Exception as exc:  # an instrument failure during an estop is reported, never raised here
            _log.exception("command %s on %s failed", verb, channel)
            return self._refuse(verb, channel, command_id, f"{type(exc).__name__}: {exc}")
        self.accepted += 1
        return CommandResult(verb, channel, command_id, True)

    @staticmethod
    async def _execute(ctl: RunController, verb: str, channel: str | None, reason: str) -> None:
        if verb == "estop":
            if channel is None:
                await ctl.emergency_stop(reason)
            else:
                await ctl.safety.supervisors[channel].emergency_stop(reason)
            if ctl.runners:  # then end the run on those channels (already in their safe state)
                ctl.abort(channel)
            return
        if not ctl.runners:
            raise UserError(f"the run has not started yet; cannot {verb}")
        getattr(ctl, verb)(channel)


def _clock_of(ctl: RunController, channel: str | None) -> float:
    setups = [s for s in ctl.setups if channel is None or s.name == channel]
    return setups[0].clock.now() if setups else 0.0


def _peek_id(data: bytes) -> str | None:
    """The command's id if the payload has one (to answer even an invalid command)."""
    try:
        value = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return None
    found = value.get("id") if isinstance(value, dict) else None
    return found[:64] if isinstance(found, str) else None
