"""Continue a station run whose controller died: same instruments, the interrupted step where it stood.

A station run cannot be run again from a checkpoint: the cell has received the charge. So a resume
(:func:`resume_station`) keeps every sample the store has and takes up the step where the data ends:

1. the station file (given, or the one recorded with the run) is opened; every channel is put in its
   safe state before anything else (the lease of a dead controller may still run);
2. each instrument must be the one the run was recorded on: maker, model and serial number of its
   identity are compared with the checkpoint's (another instrument at the same address is refused);
3. the instrument's lease buffer is read back (driver time base and instrument-to-clock offset as
   the dead controller had them), and the readings newer than the last stored sample are kept;
4. the interrupted step's stored samples and those readings are fed to the engine before the
   instrument is read again: its charge counter, the cycle's accounting and the monitors stand where
   the cell is; only the read-back readings are recorded (once);
5. a ``controller_gap`` event says how long the controller was away and when the lease ran out; the
   step continues with what is left of its capacity (time away does not count as step time).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from licycler.clock import RealTimeClock
from licycler.drivers.interfaces import LeasedChannel, SampleBlock
from licycler.engine.resume import unfinished_run
from licycler.engine.run import ChannelSetup
from licycler.engine.runner import Progress
from licycler.errors import UserError
from licycler.events import Event
from licycler.monitors import MonitorSuite
from licycler.protocols.parse import parse_schedule
from licycler.protocols.schedule import Schedule
from licycler.station import Station, StationConfig, load_station, load_station_text, open_station
from licycler.store.sql import Store
from licycler.yamlsource import load_yaml_text

__all__ = ["StationResume", "resume_station", "same_instrument"]


@dataclass
class StationResume:
    """An opened, secured station and what each channel needs to continue."""

    run_id: str
    schedule: Schedule
    station: Station
    setups: list[ChannelSetup]
    finished: list[str]


def same_instrument(recorded: str, found: str) -> bool:
    """Whether two identity strings name the same instrument: maker, model and serial (the first three
    comma-separated fields, case and spaces aside; the firmware may differ)."""

    def key(identity: str) -> list[str]:
        return [f.strip().upper() for f in identity.split(",")[:3]]

    return key(recorded) == key(found)


def _station_config(run: dict[str, object], path: str | None) -> StationConfig:
    if path is not None:
        return load_station(path)
    text = run.get("station_text")
    if not isinstance(text, str) or not text:
        raise UserError(f"run '{run['run_id']}' has no station file recorded: give it with --station FILE")
    return load_station_text(text, f"the station file recorded with run {run['run_id']}")


def _latest_mapping(store: Store, run_id: str, channel: str, progress: Progress) -> dict[str, Any]:
    """The instrument-to-clock mapping of the channel: the newest of the checkpoint's and of the
    ``time_base`` events recorded after it."""
    state: dict[str, Any] = dict(progress.station)
    for event in store.events(run_id, channel):
        if event["kind"] == "time_base" and event["seq"] >= progress.event_seq:
            state.update(event["values"])
    return state


def _stored_block(store: Store, run_id: str, channel: str, first_seq: int, step_seq: int) -> SampleBlock:
    rows = store.samples(run_id, channel, from_seq=first_seq)
    mine = rows.step_seq == step_seq
    return SampleBlock(rows.t_s[mine].copy(), rows.voltage_v[mine].copy(), rows.current_a[mine].copy())


def _next_seq(store: Store, run_id: str, channel: str, first_seq: int, kind: str) -> int:
    if kind == "samples":
        seqs = store.samples(run_id, channel, from_seq=first_seq).seq
        return int(seqs.max()) + 1 if len(seqs) else first_seq
    events = [e["seq"] for e in store.events(run_id, channel) if e["seq"] >= first_seq]
    return max(events) + 1 if events else first_seq


async def resume_station(store: Store, run_id: str, station_path: str | None = None) -> StationResume:
    """Open the run's station, check its instruments, read back what they kept; raises UserError
    (after securing every channel) when the run cannot be continued."""
    run = unfinished_run(store, run_id)
    if run["mode"] != "station":
        raise UserError(f"run '{run_id}' is a hardware-free run: resume it without --station")
    config = _station_config(run, station_path)
    schedule = parse_schedule(load_yaml_text(run["schedule_text"], run["schedule_source"]), run["schedule_text"],
                              run["schedule_source"])  # fmt: skip
    progresses: dict[str, tuple[Progress, int]] = {}
    finished: list[str] = []
    for channel in store.channels(run_id):
        name = channel["channel"]
        checkpoint = store.checkpoint(run_id, name)
        if checkpoint is None:
            raise UserError(f"run '{run_id}' channel {name} has no checkpoint to resume from")
        progress = Progress(**json.loads(checkpoint["state_json"]))
        if progress.finished:
            finished.append(name)
        else:
            progresses[name] = (progress, int(checkpoint["sample_seq"]))
        if name not in config.channels:
            raise UserError(f"{config.source}: has no channel {name}, which run '{run_id}' ran on")
    epochs = [float(p.station["clock_epoch_unix_s"]) for p, _ in progresses.values() if p.station]
    clock = RealTimeClock(start_s=time.time() - min(epochs)) if epochs else RealTimeClock()
    station = await open_station(config, clock=clock)  # every channel secured first
    try:
        setups = [await _channel(store, run_id, name, station, p, first) for name, (p, first) in progresses.items()]
    except BaseException:
        await station.close()
        raise
    return StationResume(run_id, schedule, station, setups, finished)


async def _channel(
    store: Store, run_id: str, name: str, station: Station, progress: Progress, first_seq: int
) -> ChannelSetup:
    sup = station.supervisors[name]
    recorded = progress.station.get("identity")
    found = await sup.check_identity()
    if isinstance(recorded, str) and recorded and not same_instrument(recorded, found):
        inst = station.config.instruments[station.config.channels[name].instrument]
        raise UserError(
            f"channel {name}: the instrument at {inst.resource} is '{found}', but run '{run_id}' was recorded on "
            f"'{recorded}': refusing to continue on another instrument (its output is off)"
        )
    step_seq = progress.step_seq + 1  # the step the checkpoint was written before
    stored = _stored_block(store, run_id, name, first_seq, step_seq)
    last_stored_s = float(stored.time_s[-1]) if len(stored) else progress.t_s
    sup.restore_time_mapping(_latest_mapping(store, run_id, name, progress))
    kept = SampleBlock.empty()
    if isinstance(sup.channel, LeasedChannel):
        back = sup.to_clock(await sup.channel.read_lease_buffer())
        newer = back.time_s > last_stored_s + 1e-9
        kept = SampleBlock(back.time_s[newer].copy(), back.voltage_v[newer].copy(), back.current_a[newer].copy())
    progress.sample_seq = _next_seq(store, run_id, name, first_seq, "samples")
    progress.event_seq = _next_seq(store, run_id, name, progress.event_seq, "events")
    huge = 2**62  # keep the samples, events and steps: the cell lived through them
    store.discard_after(run_id, name, sample_seq=huge, event_seq=huge, step_seq=huge, cycle=huge,
                        metric_seq=MonitorSuite.metric_seq(progress.monitors))  # fmt: skip
    now = sup.clock.now()
    last_s = float(kept.time_s[-1]) if len(kept) else last_stored_s
    gap = Event(now, "engine", "controller_gap", "controller_gap",
                f"the controller was away for {now - last_s:.1f} s; {len(kept)} reading(s) the instrument kept "
                f"read back; the step continues where its charge counter stands", name,
                {"gap_s": now - last_s, "last_stored_s": last_stored_s, "last_reading_s": last_s,
                 "lease_expired_s": last_s + sup.read_period_s if len(kept) else None,
                 "readings_recovered": len(kept), "step_seq": step_seq})  # fmt: skip
    replay: Sequence[tuple[SampleBlock, bool]] = [(b, rec) for b, rec in ((stored, False), (kept, True)) if len(b)]
    return ChannelSetup(name, sup, sup.clock, progress=progress, instrument=sup.channel.name,
                        replay=list(replay), resumed=[gap])  # fmt: skip
