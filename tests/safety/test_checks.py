"""Block checks: each fault is found at the right sample, with its numbers."""

from __future__ import annotations

import numpy as np
import pytest

from licycler.drivers import SampleBlock
from licycler.safety import BlockChecker, Limits

LIMITS = Limits(voltage_min_v=-1.0, voltage_max_v=1.0, current_max_a=2e-3, charge_per_step_max_c=10.0)


def block(v: list[float] | np.ndarray, i: float | np.ndarray = 1e-3, t0: float = 0.0) -> SampleBlock:
    v = np.asarray(v, dtype=float)
    t = t0 + np.arange(v.size, dtype=float)
    cur = np.broadcast_to(np.asarray(i, dtype=float), v.shape).copy()
    return SampleBlock(t, v, cur)


def noisy(n: int, level: float = 0.1, seed: int = 0) -> np.ndarray:
    return level + 1e-6 * np.random.default_rng(seed).standard_normal(n)


def test_healthy_block_passes() -> None:
    assert BlockChecker().check(block(noisy(100)), LIMITS) is None


@pytest.mark.parametrize(
    ("values", "cause", "index"),
    [
        ([0.1, 0.2, 1.2, 0.3], "voltage_over_limit", 2),
        ([0.1, -1.5, 0.2, 0.3], "voltage_under_limit", 1),
        ([0.1, 0.2, float("nan"), 0.3], "nan_reading", 2),
        ([0.1, 9.91e37, 0.2, 0.3], "overrange", 1),
    ],
)
def test_voltage_faults(values: list[float], cause: str, index: int) -> None:
    v = BlockChecker().check(block(values), LIMITS)
    assert v is not None
    assert v.cause == cause
    assert v.time_s == index


def test_current_over_limit_and_density() -> None:
    i = np.array([1e-3, 1e-3, 3e-3, 1e-3])
    v = BlockChecker().check(block(noisy(4), i), LIMITS)
    assert v is not None
    assert v.cause == "current_over_limit"
    assert v.values["current_a"] == 3e-3
    # 1 mA on 1 cm2 is 10 A/m2: over a 5 A/m2 density limit
    checker = BlockChecker(area_m2=1e-4)
    found = checker.check(block(noisy(4)), Limits(current_density_max_a_m2=5.0))
    assert found is not None
    assert found.cause == "current_over_limit"


def test_charge_per_step_accumulates_across_blocks() -> None:
    checker = BlockChecker()
    # 1 mA for 4000 s = 4 C per block; the limit of 10 C is passed 10,000 s after the start
    for k in range(2):
        assert checker.check(block(noisy(4000, seed=k), 1e-3, t0=k * 4000.0), LIMITS) is None
    found = checker.check(block(noisy(4000, seed=9), 1e-3, t0=8000.0), LIMITS)
    assert found is not None
    assert found.cause == "charge_per_step_exceeded"
    assert found.values["charge_c"] == pytest.approx(10.0, abs=1.1e-3)
    assert found.time_s == pytest.approx(10_000.0, abs=1.0)
    checker.new_step()
    assert checker.step_charge_c == 0.0
    assert checker.run_charge_c > 10.0


def test_stuck_reading_across_blocks() -> None:
    checker = BlockChecker(stuck_count=20)
    assert checker.check(block(np.r_[noisy(10), np.full(12, 0.25)]), LIMITS) is None
    found = checker.check(block(np.full(10, 0.25), t0=22.0), LIMITS)
    assert found is not None
    assert found.cause == "stuck_reading"
    assert found.time_s == 22.0 + 7  # the 20th identical reading (12 + 8 readings, the first is a change)


def test_identical_readings_at_zero_current_are_not_stuck() -> None:
    assert BlockChecker(stuck_count=5).check(block(np.full(50, 0.25), 0.0), LIMITS) is None


def test_dv_dt() -> None:
    found = BlockChecker().check(block([0.1, 0.1001, 0.5, 0.5001]), Limits(dv_dt_max_v_per_s=0.1))
    assert found is not None
    assert found.cause == "dv_dt_over_limit"
    assert found.time_s == 2.0


class _AlwaysMasked(BlockChecker):
    """The same checks without the fast path for clean blocks (every mask built)."""

    def _within(self, v: np.ndarray, i: np.ndarray, limits: Limits, i_max: float | None) -> bool:
        return False


@pytest.mark.parametrize("seed", range(6))
def test_the_fast_path_for_clean_blocks_finds_what_the_masks_find(seed: int) -> None:
    """Random blocks (clean, with NaN, overrange, limit crossings, repeated readings, charge
    limits): both checkers give the same violation and keep the same counters, block after block."""
    rng = np.random.default_rng(seed)
    limits = Limits(voltage_min_v=-0.9, voltage_max_v=0.9, current_max_a=2e-3, charge_per_step_max_c=40.0,
                    dv_dt_max_v_per_s=0.15)  # fmt: skip
    fast, masked = BlockChecker(stuck_count=5), _AlwaysMasked(stuck_count=5)
    t0 = 0.0
    for _ in range(60):
        n = int(rng.integers(1, 40))
        t = t0 + 1.0 + np.arange(n, dtype=np.float64)
        t0 = float(t[-1])
        v = np.round(rng.normal(0.0, 0.05, n), 2)  # coarse: repeats happen
        i = rng.choice([0.0, -1e-3, 1e-3, 2.5e-3], n, p=[0.2, 0.39, 0.39, 0.02])
        kind = rng.integers(0, 5)
        if kind == 0:
            v[rng.integers(0, n)] = np.nan
        elif kind == 1:
            v[rng.integers(0, n)] = rng.choice([np.inf, -np.inf, 9.91e37])
        elif kind == 2:
            v[:] = v[0]  # a stuck instrument
        block = SampleBlock(t, v, i)
        a, b = fast.check(block, limits), masked.check(block, limits)
        assert repr(a) == repr(b)  # (NaN readings compare unequal to themselves)
        assert (fast.step_charge_c, fast.run_charge_c, fast._same_run, fast._last_v) == (
            masked.step_charge_c, masked.run_charge_c, masked._same_run, masked._last_v)  # fmt: skip
        if rng.random() < 0.1:
            fast.new_step()
            masked.new_step()
