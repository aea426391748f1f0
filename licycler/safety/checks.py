"""Checks of sample blocks against the effective limits, vectorised over each block.

A :class:`BlockChecker` keeps what must carry across blocks (charge passed in the step and the
run, the last reading for dV/dt and for the stuck-reading test) and returns the first
:class:`Violation` in time order, or None.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from licycler.arrays import diff_from
from licycler.drivers.interfaces import SampleBlock
from licycler.safety.limits import Limits

__all__ = ["OVERRANGE", "BlockChecker", "Violation"]

OVERRANGE = 9.9e37
"""Readings at or beyond this magnitude are instrument sentinels (B2900 9.91E+37, 2450 overflow)."""


@dataclass(frozen=True)
class Violation:
    """Why the supervisor trips: a cause code, a sentence, the offending values (SI) and the time (s)."""

    cause: str
    message: str
    time_s: float
    values: dict[str, float | str | bool | None] = field(default_factory=dict)


@dataclass
class BlockChecker:
    """Stateful checks over successive sample blocks of one channel.

    ``current_tolerance`` allows measured |I| to exceed the current limit by this fraction (reading
    noise); ``stuck_count`` identical consecutive readings of V while current flows count as a
    stuck instrument (real readings always move in their last digits).
    """

    area_m2: float | None = None
    current_tolerance: float = 0.02
    stuck_count: int = 20
    step_charge_c: float = 0.0
    run_charge_c: float = 0.0
    _last_t: float | None = None
    _last_v: float | None = None
    _last_i: float = 0.0
    _same_run: int = 0

    def new_step(self) -> None:
        """Start counting the charge of a new step."""
        self.step_charge_c = 0.0

    def check(self, block: SampleBlock, limits: Limits) -> Violation | None:
        """The first violation in ``block`` (time order), or None; updates the charge counters."""
        if len(block) == 0:
            return None
        t, v, i = block.time_s, block.voltage_v, block.current_a
        found: list[Violation] = []
        i_max = limits.current_max_a
        if limits.current_density_max_a_m2 is not None and self.area_m2:
            by_density = limits.current_density_max_a_m2 * self.area_m2
            i_max = by_density if i_max is None else min(i_max, by_density)
        if self._within(v, i, limits, i_max):  # the usual block: every reading finite and within the limits
            self._check_charge(t, i, None, limits, found)
            self._check_dv_dt(t, v, None, limits, found)
            self._check_stuck(t, v, i, None, found)
            return min(found, key=lambda x: x.time_s) if found else None

        def first(mask: np.ndarray, cause: str, message: str, **extra: float) -> None:
            if mask.any():
                k = int(np.argmax(mask))
                values: dict[str, float | str | bool | None] = {
                    "voltage_v": float(v[k]),
                    "current_a": float(i[k]),
                    **extra,
                }
                found.append(Violation(cause, message.format(v=v[k], i=i[k]), float(t[k]), values))

        bad = np.isnan(v) | np.isnan(i)
        first(bad, "nan_reading", "reading is not a number (V = {v}, I = {i})")
        over = (np.abs(v) >= OVERRANGE) | (np.abs(i) >= OVERRANGE)  # +-inf or an unmapped sentinel
        first(over & ~bad, "overrange", "reading is beyond the instrument's range (V = {v:g}, I = {i:g})")
        ok = ~bad & ~over
        if limits.voltage_max_v is not None:
            first(
                ok & (v > limits.voltage_max_v),
                "voltage_over_limit",
                f"voltage {{v:.6g}} V above the limit of {limits.voltage_max_v:g} V",
                limit_v=limits.voltage_max_v,
            )
        if limits.voltage_min_v is not None:
            first(
                ok & (v < limits.voltage_min_v),
                "voltage_under_limit",
                f"voltage {{v:.6g}} V below the limit of {limits.voltage_min_v:g} V",
                limit_v=limits.voltage_min_v,
            )
        if i_max is not None:
            first(
                ok & (np.abs(i) > i_max * (1 + self.current_tolerance)),
                "current_over_limit",
                f"current {{i:.6g}} A above the limit of {i_max:g} A",
                limit_a=i_max,
            )
        self._check_charge(t, i, ok, limits, found)
        self._check_dv_dt(t, v, ok, limits, found)
        self._check_stuck(t, v, i, ok, found)
        return min(found, key=lambda x: x.time_s) if found else None

    def _within(self, v: np.ndarray, i: np.ndarray, limits: Limits, i_max: float | None) -> bool:
        """Whether no reading is NaN or overrange and none passes a voltage or current limit
        (then the masks of :meth:`check` are all False and need not be built)."""
        v_hi, v_lo, i_hi = float(v.max()), float(v.min()), float(np.abs(i).max())
        if not (v_lo > -OVERRANGE and v_hi < OVERRANGE and i_hi < OVERRANGE):  # also False for NaN
            return False
        if limits.voltage_max_v is not None and v_hi > limits.voltage_max_v:
            return False
        if limits.voltage_min_v is not None and v_lo < limits.voltage_min_v:
            return False
        return not (i_max is not None and i_hi > i_max * (1 + self.current_tolerance))

    def _check_charge(
        self, t: np.ndarray, i: np.ndarray, ok: np.ndarray | None, limits: Limits, found: list[Violation]
    ) -> None:
        """``ok``: the readings to count (None: all of them)."""
        t_prev = t[0] if self._last_t is None else self._last_t
        i_safe = i if ok is None else np.where(ok, i, 0.0)
        dt = diff_from(t, t_prev)
        i_prev = np.concatenate(([self._last_i], i_safe[:-1]))
        dq = np.abs(0.5 * (i_safe + i_prev) * dt)
        cum = np.cumsum(dq)
        step_q, run_q = self.step_charge_c + cum, self.run_charge_c + cum
        for total, limit, cause in (
            (step_q, limits.charge_per_step_max_c, "charge_per_step_exceeded"),
            (run_q, limits.charge_per_run_max_c, "charge_per_run_exceeded"),
        ):
            if limit is not None and total[-1] > limit:
                k = int(np.argmax(total > limit))
                found.append(
                    Violation(
                        cause,
                        f"charge {total[k]:.6g} C passed the limit of {limit:g} C",
                        float(t[k]),
                        {"charge_c": float(total[k]), "limit_c": limit},
                    )
                )
        self.step_charge_c, self.run_charge_c = float(step_q[-1]), float(run_q[-1])
        self._last_t, self._last_i = float(t[-1]), float(i_safe[-1])

    def _check_dv_dt(
        self, t: np.ndarray, v: np.ndarray, ok: np.ndarray | None, limits: Limits, found: list[Violation]
    ) -> None:
        if limits.dv_dt_max_v_per_s is None or (t.size if ok is None else int(ok.sum())) < 2:
            return
        tv, vv = (t, v) if ok is None else (t[ok], v[ok])
        dt = np.diff(tv)
        with np.errstate(divide="ignore", invalid="ignore"):
            rate = np.abs(np.diff(vv)) / dt
        mask = (dt > 0) & (rate > limits.dv_dt_max_v_per_s)
        if mask.any():
            k = int(np.argmax(mask))
            found.append(
                Violation(
                    "dv_dt_over_limit",
                    f"|dV/dt| = {rate[k]:.4g} V/s above {limits.dv_dt_max_v_per_s:g} V/s",
                    float(tv[k + 1]),
                    {"dv_dt_v_per_s": float(rate[k]), "voltage_v": float(vv[k + 1])},
                )
            )

    def _check_stuck(
        self, t: np.ndarray, v: np.ndarray, i: np.ndarray, ok: np.ndarray | None, found: list[Violation]
    ) -> None:
        flowing = np.abs(i) > 0 if ok is None else ok & (np.abs(i) > 0)
        prev = np.concatenate(([np.nan if self._last_v is None else self._last_v], v[:-1]))
        same = flowing & (v == prev)
        if self.stuck_count > 1 and not same.any():  # no repeated reading: every run is 0
            self._same_run = 0
            if ok is None or ok[-1]:
                self._last_v = float(v[-1])
            return
        # length of the run of identical readings ending at each sample, carried over from the last block
        idx = np.arange(len(v))
        breaks = np.where(~same, idx, -1)
        last_break = np.maximum.accumulate(breaks)
        run = np.where(last_break < 0, idx + 1 + self._same_run, idx - last_break)
        run = np.where(same, run, 0)  # repeats of the reading before; identical readings = run + 1
        if run.size and run.max() + 1 >= self.stuck_count:
            k = int(np.argmax(run + 1 >= self.stuck_count))
            found.append(
                Violation(
                    "stuck_reading",
                    f"the voltage reading has not changed for {int(run[k]) + 1} readings",
                    float(t[k]),
                    {"voltage_v": float(v[k]), "readings": float(run[k] + 1)},
                )
            )
        self._same_run = int(run[-1]) if run.size else self._same_run
        if ok is None:
            self._last_v = float(v[-1])
        elif v[ok].size:
            self._last_v = float(v[-1]) if ok[-1] else self._last_v
