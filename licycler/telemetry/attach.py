"""Wiring telemetry onto a run: one call to attach (:func:`attach`), one to close
(:func:`~licycler.telemetry.hooks.close_telemetry`), or both around a run (:func:`run_with_telemetry`).
"""

from __future__ import annotations

import socket

import yaml

from licycler.engine.run import RunController
from licycler.engine.states import RunState
from licycler.errors import UserError
from licycler.telemetry.connection import parse_mqtt_url
from licycler.telemetry.hooks import ATTACHED, close_telemetry
from licycler.telemetry.station import Telemetry, TelemetryOptions
from licycler.telemetry.topics import check_name

__all__ = ["attach", "default_station_name", "run_with_telemetry"]


def attach(
    controller: RunController, url: str, station: str | None = None, *, options: TelemetryOptions | None = None
) -> Telemetry:
    """Publish ``controller``'s run on the MQTT broker at ``url`` as ``station`` and take remote
    commands for it; call inside the running loop, before ``controller.run()``. Returns the
    started :class:`Telemetry` (end it with ``await close_telemetry(controller)``)."""
    if controller in ATTACHED:
        raise UserError("telemetry is already attached to this run")
    name = station or default_station_name(controller)
    telemetry = Telemetry(parse_mqtt_url(url), name, controller, options=options)
    controller.add_sink(telemetry)
    controller.add_observer(telemetry)
    telemetry.start()
    ATTACHED[controller] = telemetry
    return telemetry


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
