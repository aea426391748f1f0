"""``licycler recorder --mqtt URL --db URL [--samples] [--name NAME]``: record every station.

Subscribes to every station on the broker and writes their runs, cycles, steps and events (and with
``--samples`` their samples) into the database, idempotently, until SIGINT or SIGTERM. Prints one
line when it is subscribed (``recorder NAME: ready``) and its counts when it stops.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
from typing import Any

from sqlalchemy.engine import make_url

from licycler.store import Store

__all__ = ["register"]


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """Add the ``recorder`` sub-command."""
    p = sub.add_parser("recorder", help="record every station's runs, cycles and events from MQTT into a database",
                       description=__doc__.splitlines()[0])  # fmt: skip
    p.add_argument("--mqtt", required=True, metavar="URL", help="broker: mqtt://[USER[:PASSWORD]@]HOST[:PORT]")
    p.add_argument("--db", required=True, metavar="URL",
                   help="database: postgresql://USER@HOST/DB (psycopg) or sqlite:///FILE")  # fmt: skip
    p.add_argument("--samples", action="store_true", help="record samples too (batched)")
    p.add_argument("--name", default="main", help="recorder name: its persistent MQTT session [main]")
    p.set_defaults(handler=run)


async def _record(args: argparse.Namespace) -> int:
    from licycler.recorder import Recorder, RecorderOptions, database_url  # MQTT code only when recording
    from licycler.telemetry.connection import parse_mqtt_url

    mqtt = parse_mqtt_url(args.mqtt)
    store = await asyncio.to_thread(Store, database_url(args.db))
    recorder = Recorder(mqtt, store, name=args.name, options=RecorderOptions(samples=args.samples))
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, recorder.stop)
    db = make_url(store.url).render_as_string(hide_password=True)
    print(f"recorder {recorder.name}: {mqtt.safe_url} -> {db}"
          + (" (with samples)" if args.samples else ""), flush=True)  # fmt: skip

    async def announce() -> None:
        await recorder.ready.wait()
        print(f"recorder {recorder.name}: ready", flush=True)

    task = asyncio.create_task(announce())
    try:
        await recorder.run()
    finally:
        task.cancel()
        store.close()
    print(f"recorder {recorder.name}: stopped {json.dumps(recorder.stats())}", flush=True)
    return 0


def run(args: argparse.Namespace) -> int:
    return asyncio.run(_record(args))
