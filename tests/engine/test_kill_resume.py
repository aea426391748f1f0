"""SIGKILL a hardware-free run at random points, resume it, and compare with an uninterrupted run.

Each kill stops a real ``licycler run`` process (nothing of it runs after the signal: mid-step,
mid-batch, wherever it was); ``licycler resume`` then continues from the store alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from licycler.store import Store

SCHEDULE = """\
name: kill-resume Li||Cu
cell: {chemistry: Li||Cu, electrode_area: 1 cm^2}
limits: {voltage_min: -1 V, voltage_max: 3.5 V}
record: {every: 1 s}
steps:
  - rest: 60 s
  - repeat:
      count: 100
      steps:
        - plate: {current: 2 mA/cm^2, until: {capacity: 0.5 mAh/cm^2, voltage_below: -1 V}}
        - strip: {current: 2 mA/cm^2, until: {voltage_above: 1 V, time: 2 h}}
"""
KILLS = 20
PARALLEL = 2


async def cli(*args: str) -> int:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "licycler", *args, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    _, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    return proc.returncode


async def start_run(schedule: Path, url: str) -> asyncio.subprocess.Process:
    """A ``licycler run`` process, returned once its run has started cycling."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "licycler", "run", str(schedule), "--sim", "li-cu", "--db", url, "--json",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.stdout is not None
    while b'"transition"' not in await proc.stdout.readline():  # the run has started
        pass
    return proc


async def kill_and_resume(schedule: Path, db: Path, delay_s: float) -> bool:
    """Start a run, SIGKILL it ``delay_s`` after it started cycling, resume it; False when it
    finished before the kill."""
    url = f"sqlite:///{db}"
    proc = await start_run(schedule, url)
    try:
        await asyncio.wait_for(proc.wait(), delay_s)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):  # it may have ended just now
            os.kill(proc.pid, signal.SIGKILL)
        await proc.wait()
    if proc.returncode == 0 or not db.exists():
        return False
    store = Store(url)
    runs = store.runs()
    if not runs or store.checkpoint(runs[0]["run_id"], "ch1") is None:
        store.close()
        return False  # killed before the first checkpoint: nothing to resume, a fresh start
    if runs[0]["status"] == "completed":  # killed while exiting, after the run was complete
        store.close()
        return False
    run_id = runs[0]["run_id"]
    store.close()
    await cli("resume", run_id, "--db", url, "--quiet")
    return True


@pytest.mark.slow
async def test_sigkill_at_random_points_then_resume_equals_uninterrupted(tmp_path: Path) -> None:
    schedule = tmp_path / "schedule.yaml"
    schedule.write_text(SCHEDULE)
    ref_db = tmp_path / "ref.db"
    proc = await start_run(schedule, f"sqlite:///{ref_db}")
    started = time.perf_counter()
    assert proc.stdout is not None
    await proc.stdout.read()
    assert await proc.wait() == 0
    span_s = time.perf_counter() - started  # kills land within the run however fast it goes
    ref = Store(f"sqlite:///{ref_db}")
    ref_id = ref.runs()[0]["run_id"]
    ref_samples = ref.samples(ref_id, "ch1")
    ref_cycles = ref.cycles(ref_id, "ch1")
    assert len(ref_cycles) == 100

    rng = random.Random(20261124)
    done = 0
    attempt = 0
    while done < KILLS:
        assert attempt < 3 * KILLS, f"only {done} kills landed inside a run"
        jobs = []
        for _ in range(PARALLEL):
            jobs.append(kill_and_resume(schedule, tmp_path / f"k{attempt}.db", rng.uniform(0.0, span_s)))
            attempt += 1
        results = await asyncio.gather(*jobs)
        for k, landed in enumerate(results):
            if not landed:
                continue
            done += 1
            store = Store(f"sqlite:///{tmp_path / f'k{attempt - PARALLEL + k}.db'}")
            run_id = store.runs()[0]["run_id"]
            assert store.run(run_id)["status"] == "completed"  # type: ignore[index]
            samples = store.samples(run_id, "ch1")
            assert np.array_equal(samples.seq, np.arange(len(samples)))  # no duplicate, no gap
            assert len(samples) == len(ref_samples)
            assert np.array_equal(samples.t_s, ref_samples.t_s)
            assert np.array_equal(samples.voltage_v, ref_samples.voltage_v)
            cycles = store.cycles(run_id, "ch1")
            assert [c["cycle"] for c in cycles] == list(range(1, 101))
            assert [c["ce"] for c in cycles] == [c["ce"] for c in ref_cycles]
            store.close()
    assert done >= KILLS
