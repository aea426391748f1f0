"""Hardware-free channels around dummy cells for engine tests (exact, noise-free)."""

from __future__ import annotations

from pathlib import Path

import pytest

from licycler.engine import ChannelSetup
from licycler.engine.sim import sim_channel
from licycler.sim_instruments.dummy_cell import DummyCell
from licycler.store import Store


def dummy_channel(name: str = "ch0", resistance_ohm: float = 50.0, emf_v: float = 0.0) -> ChannelSetup:
    """An in-process SMU on a dummy cell; its readings never move, so the stuck test is off."""
    return sim_channel(name, DummyCell(emf_v, resistance_ohm), stuck_count=10**9)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(f"sqlite:///{tmp_path / 'run.db'}")
