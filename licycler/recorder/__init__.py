"""The lab recorder: every station's runs, cycles, steps, events (and optionally samples) from MQTT
into one database (PostgreSQL for a lab; SQLite works too), idempotently."""

from licycler.recorder.db import Written, database_url, write_payloads
from licycler.recorder.recorder import Recorder, RecorderOptions

__all__ = ["Recorder", "RecorderOptions", "Written", "database_url", "write_payloads"]
