"""Continue a run whose controller died: from each channel's last checkpoint.

Hardware-free runs restore the simulated cell from the checkpoint and run again from the step
boundary; the data recorded after the checkpoint is discarded first and comes back identical
(same seed, same state, same sample numbers), so the resumed run equals an uninterrupted one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from licycler.engine.run import ChannelSetup
from licycler.engine.runner import Progress
from licycler.engine.sim import restore_sim_channel
from licycler.errors import UserError
from licycler.monitors import MonitorSuite
from licycler.protocols.parse import parse_schedule
from licycler.protocols.schedule import Schedule
from licycler.store.sql import Store
from licycler.yamlsource import load_yaml_text

__all__ = ["ResumePlan", "close_finished_run", "plan_resume", "unfinished_run"]


@dataclass
class ResumePlan:
    """What a resume needs: the run's schedule (from its stored text) and each channel's setup."""

    run_id: str
    schedule: Schedule
    mode: str
    setups: list[ChannelSetup]
    finished: list[str]
    scenario_text: str | None


def unfinished_run(store: Store, run_id: str) -> dict[str, Any]:
    """The run's record; UserError when there is no such run or it is already completed."""
    run = store.run(run_id)
    if run is None:
        known = ", ".join(r["run_id"] for r in store.runs()[-5:]) or "none"
        raise UserError(f"no run '{run_id}' in {store.url} (latest: {known})")
    if run["status"] == "completed":
        raise UserError(f"run '{run_id}' is already completed")
    return run


def close_finished_run(store: Store, run_id: str) -> str | None:
    """A run still marked running whose every channel had finished (the controller died as it
    closed the run): record the run's end from its channels' and return that status; None when
    the run is not in that state."""
    run = store.run(run_id)
    if run is None or run["status"] != "running":
        return None
    statuses = [c["status"] for c in store.channels(run_id)]
    if not statuses or "running" in statuses:
        return None
    if all(st == "completed" for st in statuses):
        status = "completed"
    elif all(st in ("completed", "aborted") for st in statuses):
        status = "aborted"
    else:
        status = "faulted"
    message = "every channel had finished when the controller stopped; the run's end recorded on resume"
    store.set_run_status(run_id, status, message)
    return status


def plan_resume(store: Store, run_id: str, *, stuck_count: int = 20) -> ResumePlan:
    """Read the run and its checkpoints; refuse a run that is unknown, complete or not resumable.

    ``stuck_count`` is the supervisor's stuck-reading setting for the restored channels.
    """
    run = unfinished_run(store, run_id)
    if run["mode"] != "sim":
        raise UserError(f"run '{run_id}' ran on a station; resuming station runs needs the station file")
    schedule = parse_schedule(load_yaml_text(run["schedule_text"], run["schedule_source"]), run["schedule_text"],
                              run["schedule_source"])  # fmt: skip
    setups: list[ChannelSetup] = []
    finished: list[str] = []
    for channel in store.channels(run_id):
        name = channel["channel"]
        checkpoint = store.checkpoint(run_id, name)
        if checkpoint is None or checkpoint["snapshot"] is None:
            raise UserError(f"run '{run_id}' channel {name} has no checkpoint to resume from")
        progress = Progress(**json.loads(checkpoint["state_json"]))
        if progress.finished:
            finished.append(name)
            continue
        store.discard_after(run_id, name, sample_seq=progress.sample_seq, event_seq=progress.event_seq,
                            step_seq=progress.step_seq, cycle=progress.accounting["cycle"],
                            metric_seq=MonitorSuite.metric_seq(progress.monitors))  # fmt: skip
        setups.append(
            restore_sim_channel(name, checkpoint["snapshot"], progress, seed=channel["seed"], stuck_count=stuck_count)
        )
    return ResumePlan(run_id, schedule, run["mode"], setups, finished, run["scenario_text"])
