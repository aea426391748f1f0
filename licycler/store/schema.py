"""The database schema (SQLAlchemy Core): runs, channels, steps, cycles, samples, events, checkpoints.

Every data table has a natural unique key (run, channel, sequence), so a batch written twice (a
replay after a crash, a recorder receiving a message again) changes nothing. SI units in the
column names. The same schema serves SQLite (the embedded default) and PostgreSQL.
"""

from __future__ import annotations

from sqlalchemy import (
    Column,
    Float,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

__all__ = [
    "SCHEMA_VERSION",
    "channels",
    "checkpoints",
    "cycles",
    "events",
    "metadata",
    "metrics",
    "runs",
    "sample_blocks",
    "samples",
    "steps",
    "sweep_results",
    "sweeps",
]

SCHEMA_VERSION = 2
"""1: one ``samples`` row a sample; 2: samples in ``sample_blocks`` (``samples`` still read)."""

metadata = MetaData()

runs = Table(
    "runs",
    metadata,
    Column("run_id", String(64), primary_key=True),
    Column("name", Text, nullable=False),
    Column("schedule_name", Text, nullable=False),
    Column("schedule_source", Text, nullable=False),
    Column("schedule_text", Text, nullable=False),
    Column("schedule_sha256", String(64), nullable=False),
    Column("scenario_text", Text),
    Column("station_text", Text),
    Column("software_version", String(64), nullable=False),
    Column("schema_version", Integer, nullable=False, default=SCHEMA_VERSION),
    Column("mode", String(16), nullable=False),  # "sim" or "station"
    Column("created_unix_s", Float, nullable=False),
    Column("status", String(16), nullable=False),  # running, completed, aborted, faulted
    Column("ended_unix_s", Float),
    Column("message", Text),
)

channels = Table(
    "channels",
    metadata,
    Column("run_id", String(64), primary_key=True),
    Column("channel", String(64), primary_key=True),
    Column("chemistry", String(16), nullable=False),
    Column("area_m2", Float, nullable=False),
    Column("seed", Integer),
    Column("instrument", Text),
    Column("status", String(16), nullable=False),
)

steps = Table(
    "steps",
    metadata,
    Column("run_id", String(64), primary_key=True),
    Column("channel", String(64), primary_key=True),
    Column("step_seq", Integer, primary_key=True),  # order of execution (a goto may repeat a step)
    Column("step_index", Integer, nullable=False),  # index in the expanded program
    Column("template", Integer, nullable=False),  # the step as written in the schedule
    Column("kind", String(16), nullable=False),
    Column("cycle", Integer, nullable=False),
    Column("start_s", Float, nullable=False),
    Column("end_s", Float, nullable=False),
    Column("charge_c", Float, nullable=False),  # signed, + strips the working electrode
    Column("energy_j", Float, nullable=False),
    Column("ended_by", String(32), nullable=False),
)

cycles = Table(
    "cycles",
    metadata,
    Column("run_id", String(64), primary_key=True),
    Column("channel", String(64), primary_key=True),
    Column("cycle", Integer, primary_key=True),
    Column("start_s", Float, nullable=False),
    Column("end_s", Float, nullable=False),
    Column("charge_plate_c", Float, nullable=False),
    Column("charge_strip_c", Float, nullable=False),
    Column("energy_plate_j", Float, nullable=False),
    Column("energy_strip_j", Float, nullable=False),
    Column("ce", Float),
    Column("mean_voltage_plate_v", Float),
    Column("mean_voltage_strip_v", Float),
)

samples = Table(
    "samples",
    metadata,
    Column("run_id", String(64), primary_key=True),
    Column("channel", String(64), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("t_s", Float, nullable=False),
    Column("voltage_v", Float, nullable=False),
    Column("current_a", Float, nullable=False),
    Column("charge_c", Float, nullable=False),  # cumulative in the step, signed
    Column("step_seq", Integer, nullable=False),
    Column("cycle", Integer, nullable=False),
    Column("pressure_pa", Float),
)

"""Version 1 stores' samples, one row each: still read (merged with the blocks), no longer written."""

sample_blocks = Table(
    "sample_blocks",
    metadata,
    Column("run_id", String(64), primary_key=True),
    Column("channel", String(64), primary_key=True),
    Column("first_seq", Integer, primary_key=True),
    Column("last_seq", Integer, nullable=False),
    Column("n", Integer, nullable=False),  # samples in the block
    Column("t_first_s", Float, nullable=False),
    Column("t_last_s", Float, nullable=False),
    Column("encoding", String(16), nullable=False),  # see licycler.store.blocks
    Column("data", LargeBinary, nullable=False),
)
"""A channel's samples, one row per block of consecutive samples, the columns coded in ``data``."""

events = Table(
    "events",
    metadata,
    Column("run_id", String(64), primary_key=True),
    Column("channel", String(64), primary_key=True),  # "" for the station
    Column("seq", Integer, primary_key=True),
    Column("time_s", Float, nullable=False),
    Column("unix_time_s", Float, nullable=False),
    Column("source", String(64), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("cause", String(64), nullable=False),
    Column("message", Text, nullable=False),
    Column("values_json", Text, nullable=False),
)

metrics = Table(
    "metrics",
    metadata,
    Column("run_id", String(64), primary_key=True),
    Column("channel", String(64), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("time_s", Float, nullable=False),
    Column("cycle", Integer, nullable=False),
    Column("name", String(64), nullable=False),  # e.g. depletion_index, nucleation_overpotential_v
    Column("value", Float),
)
"""Time series of what the monitors compute (one row per value), for reports and exports."""

checkpoints = Table(
    "checkpoints",
    metadata,
    Column("run_id", String(64), primary_key=True),
    Column("channel", String(64), primary_key=True),
    Column("updated_unix_s", Float, nullable=False),
    Column("sample_seq", Integer, nullable=False),  # samples with seq < this are covered
    Column("state_json", Text, nullable=False),
    Column("snapshot", LargeBinary),  # the simulated cell's state, for hardware-free runs
)

sweeps = Table(
    "sweeps",
    metadata,
    Column("sweep_id", String(64), primary_key=True),
    Column("schedule_name", Text, nullable=False),
    Column("scenario", Text, nullable=False),
    Column("vary_json", Text, nullable=False),  # [[parameter, [values...]], ...]
    Column("points", Integer, nullable=False),
    Column("created_unix_s", Float, nullable=False),
)
"""A parameter sweep (``licycler sweep``): one schedule over a grid of scenario parameters."""

sweep_results = Table(
    "sweep_results",
    metadata,
    Column("sweep_id", String(64), primary_key=True),
    Column("point", Integer, primary_key=True),
    Column("run_id", String(64), nullable=False),
    Column("params_json", Text, nullable=False),  # {parameter: value as given}
    Column("state", String(16), nullable=False),  # the channel's final state
    Column("cycles", Integer, nullable=False),  # cycles with a CE
    Column("cycles_to_failure", Integer),  # NULL when the schedule completed
    Column("mean_ce", Float),
    Column("last_ce", Float),
    Column("first_finding", String(64)),  # its cause, NULL when the monitors found nothing
    Column("first_finding_source", String(64)),
    Column("first_finding_s", Float),
)
"""One row per sweep point: the outcome of its recorded run."""
