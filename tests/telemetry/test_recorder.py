"""The recorder: idempotent writes, and no QoS 1 record lost when the broker is killed mid-run."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from licycler.engine import RunState
from licycler.recorder import Recorder, RecorderOptions, write_payloads
from licycler.store import Store
from licycler.store.sql import SampleRows
from licycler.telemetry import Backoff, TelemetryOptions, attach, close_telemetry, parse_mqtt_url

from .helpers import controller, schedule, station_name
from .services import free_port, mosquitto

QUICK = Backoff(initial_s=0.05, max_s=0.5)


class CycleWatch:
    """A run observer that lets the test wait until a channel has closed N cycles."""

    def __init__(self, channel: str) -> None:
        self.channel = channel
        self.closed = 0
        self._changed = asyncio.Event()

    def on_samples(self, run_id: str, channel: str, rows: SampleRows) -> None:
        return None

    def on_step(self, run_id: str, channel: str, row: dict[str, Any]) -> None:
        return None

    def on_cycle(self, run_id: str, channel: str, row: dict[str, Any]) -> None:
        if channel == self.channel:
            self.closed = row["cycle"]
            self._changed.set()

    async def reached(self, n: int) -> None:
        while self.closed < n:
            self._changed.clear()
            await self._changed.wait()


def same_records(station: Store, recorder: Store, run_id: str, channels: list[str]) -> None:
    for ch in channels:
        assert recorder.cycles(run_id, ch) == station.cycles(run_id, ch)
        assert recorder.steps(run_id, ch) == station.steps(run_id, ch)
        assert recorder.events(run_id, ch) == station.events(run_id, ch)


async def test_killing_the_broker_mid_run_loses_no_cycle_or_event_record(tmp_path: Path) -> None:
    (tmp_path / "broker").mkdir()
    with mosquitto(tmp_path / "broker") as broker:  # persistence off: a killed broker forgets everything
        mqtt = parse_mqtt_url(broker.url())
        lab = Store(f"sqlite:///{tmp_path / 'lab.db'}")
        recorder = Recorder(mqtt, lab, name="kill-test",
                            options=RecorderOptions(batch_interval_s=0.05, backoff=QUICK))  # fmt: skip
        recording = asyncio.create_task(recorder.run())
        await asyncio.wait_for(recorder.ready.wait(), 10)
        store = Store(f"sqlite:///{tmp_path / 'station.db'}")
        ctl = controller(schedule(12), store, ["ch1", "ch2"], speed=300.0)
        watch = CycleWatch("ch1")
        ctl.add_observer(watch)
        telemetry = attach(ctl, broker.url(), station_name("kill"), options=TelemetryOptions(
            sample_interval_s=0.05, status_interval_s=0.25, resend_after_s=1.0, backoff=QUICK))  # fmt: skip
        run = asyncio.create_task(ctl.run())
        await watch.reached(3)
        broker.kill()
        await watch.reached(7)  # four cycles close with no broker at all
        await asyncio.to_thread(broker.start)
        states = await asyncio.wait_for(run, 60)
        assert await close_telemetry(ctl, 30.0)  # every record confirmed by the recorder
        recorder.stop()
        await asyncio.wait_for(recording, 10)
    assert states == {"ch1": RunState.COMPLETED, "ch2": RunState.COMPLETED}
    stats = telemetry.stats()
    assert stats["connection_failures"] >= 1
    assert stats["connects"] >= 2
    assert recorder.counters["connects"] >= 2
    assert [c["cycle"] for c in lab.cycles(ctl.run_id, "ch1")] == list(range(1, 13))
    same_records(store, lab, ctl.run_id, ["ch1", "ch2"])
    run_row = lab.run(ctl.run_id)
    assert run_row is not None
    assert run_row["status"] == "completed"
    assert {c["status"] for c in lab.channels(ctl.run_id)} == {"completed"}


def _cycle(run_id: str, n: int, station: str = "s1") -> dict[str, Any]:
    return {"v": 1, "type": "cycle", "station": station, "channel": "ch1", "run_id": run_id,
            "key": f"cycle/{run_id}/ch1/{n}", "cycle": n, "start_s": 10.0 * n, "end_s": 10.0 * n + 10,
            "charge_plate_c": 1.0, "charge_strip_c": 0.99, "energy_plate_j": 0.05, "energy_strip_j": 0.05,
            "ce": 0.99, "mean_voltage_plate_v": -0.05, "mean_voltage_strip_v": 0.05}  # fmt: skip


def test_a_record_written_twice_is_stored_once(tmp_path: Path) -> None:
    lab = Store(f"sqlite:///{tmp_path / 'lab.db'}")
    first = write_payloads(lab, [_cycle("r1", 1), _cycle("r1", 2)])
    again = write_payloads(lab, [_cycle("r1", 2), _cycle("r1", 1), _cycle("r1", 3)])
    assert first.keys == {"s1": ["cycle/r1/ch1/1", "cycle/r1/ch1/2"]}
    assert len(again.keys["s1"]) == 3  # all acknowledged: the recorder has each of them
    assert [c["cycle"] for c in lab.cycles("r1", "ch1")] == [1, 2, 3]
    assert lab.cycles("r1", "ch1")[0]["ce"] == 0.99


async def test_a_resumed_run_sends_the_recorder_what_it_recorded_before_the_crash(tmp_path: Path) -> None:
    from licycler.engine import RunController
    from licycler.engine.resume import plan_resume
    from tests.engine.test_resume import crash_after

    store = Store(f"sqlite:///{tmp_path / 'station.db'}")
    run_id = await crash_after(schedule(4), store, keep=7)  # no telemetry at all before the crash
    assert len(store.cycles(run_id, "ch0")) >= 1
    (tmp_path / "broker").mkdir()
    with mosquitto(tmp_path / "broker") as broker:
        lab = Store(f"sqlite:///{tmp_path / 'lab.db'}")
        recorder = Recorder(parse_mqtt_url(broker.url()), lab, name="resume-test",
                            options=RecorderOptions(batch_interval_s=0.05))  # fmt: skip
        recording = asyncio.create_task(recorder.run())
        await asyncio.wait_for(recorder.ready.wait(), 10)
        plan = plan_resume(store, run_id, stuck_count=10**9)
        ctl = RunController(plan.schedule, plan.setups, store, run_id=run_id, resuming=True)
        attach(ctl, broker.url(), station_name("resume"), options=TelemetryOptions(sample_interval_s=0.05))
        assert await ctl.run() == {"ch0": RunState.COMPLETED}
        assert await close_telemetry(ctl, 30.0)
        recorder.stop()
        await asyncio.wait_for(recording, 10)
    assert [c["cycle"] for c in lab.cycles(run_id, "ch0")] == [1, 2, 3, 4]
    same_records(store, lab, run_id, ["ch0"])


async def test_records_the_broker_accepted_then_lost_reach_the_recorder_when_it_returns(tmp_path: Path) -> None:
    """The broker accepts every record while the recorder is away, then dies with them (no
    persistence): only the station's outbox still has them, and sends them when the recorder is back."""
    (tmp_path / "broker").mkdir()
    with mosquitto(tmp_path / "broker") as broker:
        mqtt = parse_mqtt_url(broker.url())
        lab = Store(f"sqlite:///{tmp_path / 'lab.db'}")
        options = RecorderOptions(batch_interval_s=0.05, backoff=QUICK)
        first = Recorder(mqtt, lab, name="away", options=options)
        recording = asyncio.create_task(first.run())
        await asyncio.wait_for(first.ready.wait(), 10)
        first.stop()  # its persistent session stays: the broker queues its records
        await asyncio.wait_for(recording, 10)
        store = Store(f"sqlite:///{tmp_path / 'station.db'}")
        ctl = controller(schedule(5), store, ["ch1"])
        telemetry = attach(ctl, broker.url(), station_name("lost"),
                           options=TelemetryOptions(sample_interval_s=0.05, backoff=QUICK))  # fmt: skip
        await ctl.run()
        assert await telemetry.wait_until(telemetry.published, 10.0)  # the broker has accepted every record
        broker.kill()
        await asyncio.to_thread(broker.start)
        back = Recorder(mqtt, lab, name="away", options=options)
        recording = asyncio.create_task(back.run())
        assert await close_telemetry(ctl, 30.0)  # waits for the returning recorder's acknowledgements
        back.stop()
        await asyncio.wait_for(recording, 10)
    assert [c["cycle"] for c in lab.cycles(ctl.run_id, "ch1")] == [1, 2, 3, 4, 5]
    same_records(store, lab, ctl.run_id, ["ch1"])


async def test_with_no_broker_the_run_goes_on_and_dropped_samples_are_counted_and_logged(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'station.db'}")
    ctl = controller(schedule(3), store, ["ch1"], speed=250.0)
    telemetry = attach(ctl, f"mqtt://127.0.0.1:{free_port()}", station_name("nobroker"),  # nothing listens there
                       options=TelemetryOptions(max_sample_rows=50, status_interval_s=0.05, backoff=QUICK))  # fmt: skip
    states = await asyncio.wait_for(ctl.run(), 30)
    assert states == {"ch1": RunState.COMPLETED}
    assert not await close_telemetry(ctl, 0.1)  # nothing could be delivered, and it says so
    recorded = len(store.samples(ctl.run_id, "ch1"))
    stats = telemetry.stats()
    assert stats["samples_dropped"] == recorded - 50  # only the newest 50 were kept for the broker
    assert stats["connects"] == 0
    assert stats["connection_failures"] >= 1
    drops = [e for e in store.events(ctl.run_id, "ch1") if e["cause"] == "samples_dropped"]
    assert drops, "the drops are in the run's own log"
    assert sum(e["values"]["dropped"] for e in drops) <= stats["samples_dropped"]
