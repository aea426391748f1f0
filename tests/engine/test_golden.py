"""The speed work changed no result: three 20-cycle hardware-free runs record exactly what the code
before it recorded for the same seeds (see :mod:`tests.engine.golden`)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from .golden import GOLDEN, RUNS, fingerprint_run

GOLDEN_DATA: dict[str, Any] = json.loads(GOLDEN.read_text(encoding="utf-8"))


@pytest.mark.parametrize("key", list(RUNS))
def test_a_seeded_run_records_what_the_code_before_the_speed_work_recorded(key: str) -> None:
    expected = GOLDEN_DATA["runs"][key]
    got = fingerprint_run(key)
    assert sorted(got) == sorted(expected)
    for channel, want in expected.items():
        have = got[channel]
        assert have["samples"] == want["samples"], channel
        assert have["sums"] == want["sums"], channel  # readable when a column below differs
        assert have["columns"] == want["columns"], channel  # every sample, bit for bit
        assert have["steps"] == want["steps"], channel
        assert have["ce"] == want["ce"], channel
        assert have["events"] == want["events"], channel
        assert have["metric_names"] == want["metric_names"], channel
        assert have["metrics"] == want["metrics"], channel
        assert have["status"] == want["status"], channel


def test_the_pinned_runs_exercise_findings_and_more_than_one_channel() -> None:
    """The pin means something: samples on every channel, cycles with a CE, a monitor finding."""
    runs = GOLDEN_DATA["runs"]
    assert len(runs["li-li-20"]) == 2
    assert all(ch["samples"] > 10_000 for run in runs.values() for ch in run.values())
    assert all(len(ch["ce"]) >= 2 for run in runs.values() for ch in run.values())
    kinds = {e[3] for run in runs.values() for ch in run.values() for e in ch["events"]}
    assert "finding" in kinds or "decision" in kinds, kinds
