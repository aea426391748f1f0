"""Wiring telemetry onto a run: one call to attach, one to close, and the ``licycler run`` options.

``licycler run``/``resume`` take ``--mqtt URL`` (and ``--mqtt-station NAME``, by default the
station file's name or this host's name); :func:`telemetry_hook` is their controller hook and
:func:`close_telemetry` runs when the run ends (it publishes what is queued and says ``offline``).
"""

from __future__ import annotations

import argparse
import socket
import weakref
from typing import Any

import yaml

from licycler.engine.run import RunController
from licycler.engine.states import RunState
from licycler.errors import UserError
from licycler.telemetry.connection import parse_mqtt_url
from licycler.telemetry.station import Telemetry, TelemetryOptions
from licycler.telemetry.topics import check_name

__all__ = [
    "attach",
    "close_telemetry",
    "default_station_name",
    "run_with_telemetry",
    "telemetry_hook",
    "telemetry_options",
]

_ATTACHED: weakref.WeakKeyDictionary[RunController, Telemetry] = weakref.WeakKeyDictionary()


def attach(
    controller: RunController, url: str, station: str | None = None, *, options: TelemetryOptions | None = None
) -> Telemetry:
    """Publish ``controller``'s run on the MQTT broker at ``url`` as ``station`` and take remote
    commands for it; call inside the running loop, before ``controller.run()``. Returns the
    started :class:`Telemetry` (end it with ``await close_telemetry(controller)``)."""
    if controller in _ATTACHED:
        raise UserError("telemetry is already attached to this run")
    name = station or default_station_name(controller)
    telemetry = Telemetry(parse_mqtt_url(url), name, controller, options=options)
    controller.add_sink(telemetry)
    controller.add_observer(telemetry)
    telemetry.start()
    _ATTACHED[controller] = telemetry
    return telemetry


async def close_telemetry(controller: RunController, timeout_s: float | None = None) -> bool:
    """Flush and stop the telemetry attached to ``controller`` (if any); True when nothing was
    left unpublished or (with a recorder online) unconfirmed."""
    telemetry = _ATTACHED.pop(controller, None)
    if telemetry is None:
        return True
    return await telemetry.close(timeout_s)


async def run_with_telemetry(
    controller: RunController, url: str | None, station: str | None = None, *, options: TelemetryOptions | None = None
) -> dict[str, RunState]:
    """``controller.run()`` with telemetry on ``url`` (none when ``url`` is None)."""
    if url is None:
        return await controller.run()
    attach(controller, url, station, options=options)
    try:
        return await controller.run()
    finally:
        await close_telemetry(controller)


def default_station_name(controller: RunController) -> str:
    """The ``name`` of the controller's station file, else this host's name (made topic-safe)."""
    if controller.station_text:
        try:
            data = yaml.safe_load(controller.station_text)
        except yaml.YAMLError:
            data = None
        if isinstance(data, dict) and isinstance(data.get("name"), str):
            return check_name(data["name"], "station")
    host = "".join(c if c.isalnum() or c in "._-" else "-" for c in socket.gethostname()).strip("-._")
    return check_name(host or "station", "station")


def telemetry_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--mqtt URL`` and ``--mqtt-station NAME`` to a run command's parser."""
    parser.add_argument("--mqtt", metavar="URL", default=None,
                        help="publish telemetry and take remote commands on this MQTT broker "
                             "(mqtt://[USER[:PASSWORD]@]HOST[:PORT], mqtts://...?ca=FILE)")  # fmt: skip
    parser.add_argument("--mqtt-station", metavar="NAME", default=None,
                        help="station name in MQTT topics (default: the station file's name, else the host name)")


def telemetry_hook(controller: RunController, args: argparse.Namespace) -> None:
    """The ``licycler run`` controller hook: attach telemetry when ``--mqtt`` was given."""
    url: Any = getattr(args, "mqtt", None)
    if url:
        attach(controller, str(url), getattr(args, "mqtt_station", None))
