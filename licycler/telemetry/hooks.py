"""What ``licycler run``/``resume`` call: their ``--mqtt`` options, the controller hook, and the
close at the end of a run. Light on purpose: MQTT and schema code is imported only when
``--mqtt`` is given, so a run without telemetry starts as fast as before."""

from __future__ import annotations

import argparse
import weakref
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from licycler.engine.run import RunController
    from licycler.telemetry.station import Telemetry

__all__ = ["ATTACHED", "close_telemetry", "telemetry_hook", "telemetry_options"]

ATTACHED: weakref.WeakKeyDictionary[RunController, Telemetry] = weakref.WeakKeyDictionary()
"""The telemetry attached to each controller (see :func:`licycler.telemetry.attach`)."""


async def close_telemetry(controller: RunController, timeout_s: float | None = None) -> bool:
    """Flush and stop the telemetry attached to ``controller`` (if any); True when nothing was
    left unpublished or (when the lab has a recorder) unconfirmed."""
    telemetry = ATTACHED.pop(controller, None)
    if telemetry is None:
        return True
    return await telemetry.close(timeout_s)


def telemetry_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--mqtt URL`` and ``--mqtt-station NAME`` to a run command's parser."""
    parser.add_argument("--mqtt", metavar="URL", default=None,
                        help="publish telemetry and take remote commands on this MQTT broker "
                             "(mqtt://[USER[:PASSWORD]@]HOST[:PORT], mqtts://...?ca=FILE)")  # fmt: skip
    parser.add_argument("--mqtt-station", metavar="NAME", default=None,
                        help="station name in MQTT topics (default: the station file's name, else the host name)")


def telemetry_hook(controller: RunController, args: argparse.Namespace) -> None:
    """The ``licycler run`` controller hook: attach telemetry when ``--mqtt`` was given."""
    url = getattr(args, "mqtt", None)
    if url:
        from licycler.telemetry.attach import attach

        attach(controller, str(url), getattr(args, "mqtt_station", None))
