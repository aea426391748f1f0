"""One emulated source-measure channel driving simulated cell terminals.

The channel sources current (or voltage) into a :class:`~licycler.sim_instruments.interfaces.
CellTerminals` on a clock, and enforces the compliance limit the way an SMU does: while sourcing
current, the moment the cell voltage would exceed the voltage limit (in magnitude) the channel
holds the limit voltage instead (``source_voltage``) and reports the limit as tripped; it returns
to current control as soon as the cell would draw at least the programmed current at that
voltage. (Sourcing voltage with a current limit is the mirror image.) Output off in high
impedance opens the terminals (``open_circuit``); NORMAL and ZERO off modes put 0 V across the
cell (``source_voltage(0)``) -- the dangerous mode, emulated faithfully.

Compliance is tracked on a control grid (``control_step_s``) in adaptive blocks: each block is
sized from the rate at which the margin to the limit shrinks (so that the limit cannot be reached
in less than two blocks at that rate), doubling while the margin does not shrink, between one
step and 256 steps. Readings get Gaussian noise that falls as 1/sqrt(NPLC)
and the resolution of the range in use (auto-ranged unless a range is fixed); a reading beyond a
fixed range is an overflow (+inf, which the instruments print as 9.9E+37).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from licycler.sim_instruments.interfaces import CellTerminals, Clock, FloatArray

__all__ = ["Readings", "SmuChannel"]

_MAX_CHUNK = 256
_MAX_GRID = 50_000


@dataclass(frozen=True)
class Readings:
    """Readings taken at ``time_s`` (clock s): measured V and I, the source value reported
    (readback or programmed), and whether the limit was in force at each."""

    time_s: FloatArray
    voltage_v: FloatArray
    current_a: FloatArray
    source: FloatArray
    in_compliance: npt.NDArray[np.bool_]

    def __len__(self) -> int:
        return int(self.time_s.shape[0])


class SmuChannel:
    """The source, limit, output and measurement state of one channel, and its physics.

    Settings are plain attributes; call :meth:`apply` after changing any of them (the
    emulations do, through :meth:`update`).
    """

    def __init__(
        self,
        cell: CellTerminals,
        clock: Clock,
        *,
        voltage_ranges_v: Sequence[float],
        current_ranges_a: Sequence[float],
        line_frequency_hz: float = 60.0,
        reading_overhead_s: float = 2e-4,
        noise: bool = True,
        seed: int = 0,
        control_step_s: float = 0.01,
    ) -> None:
        self.cell = cell
        self.clock = clock
        self._stops = "stop_above_v" in inspect.signature(cell.sample).parameters
        """Whether the cell can stop sampling at a voltage bound (the twin can): then a current
        source's compliance is found exactly, at the first sample beyond the limit."""
        self.voltage_ranges_v = tuple(sorted(voltage_ranges_v))
        self.current_ranges_a = tuple(sorted(current_ranges_a))
        self.line_frequency_hz = line_frequency_hz
        self.reading_overhead_s = reading_overhead_s
        self.noise = noise
        self.control_step_s = control_step_s
        self._rng = np.random.default_rng(seed)
        self._t = clock.now()
        self._chunk = 1
        self._probe: tuple[float, float] | None = None
        self.tripped = False
        self._clamp = 0.0
        # settings (the instrument's *RST values are set by the emulation)
        self.source_function = "VOLT"
        self.current_level_a = 0.0
        self.voltage_level_v = 0.0
        self.voltage_limit_v = 21.0
        self.current_limit_a = 1.05e-4
        self.output_on = False
        self.off_mode = "NORM"
        self.nplc = 1.0
        self.voltage_range_v: float | None = None
        self.current_range_a: float | None = None
        self.readback = True
        self.apply()

    # ---------------------------------------------------------------- time

    def now(self) -> float:
        """The channel's present time: the clock, never before the last cell call."""
        return max(self.clock.now(), self._t)

    @property
    def cell_time_s(self) -> float:
        """How far the cell has been run (clock s): nothing can happen to it before this."""
        return self._t

    @property
    def reading_period_s(self) -> float:
        """Time one reading takes: NPLC power-line cycles plus overhead, s."""
        return self.nplc / self.line_frequency_hz + self.reading_overhead_s

    # ---------------------------------------------------------------- control

    def update(self, *, at_s: float | None = None, **settings: object) -> None:
        """Bring the world to now (or to ``at_s``, clock s, when the change happened earlier: an
        instrument's own action found by a late :meth:`advance`), change settings (attribute
        names), and re-apply the source from then on."""
        t = self.now() if at_s is None else max(at_s, self._t)
        self.advance_to(t)
        for name, value in settings.items():
            if not hasattr(self, name):
                raise AttributeError(name)
            setattr(self, name, value)
        self.tripped = False
        self.apply(t)

    def apply(self, at_s: float | None = None) -> None:
        """Drive the cell according to the settings from the present time (or ``at_s``, not before
        the last cell call), and check the limit at once."""
        t = self.now() if at_s is None else max(at_s, self._t)
        self._t = t
        self._chunk = 1
        self._probe = None
        if not self.output_on:
            self.tripped = False
            if self.off_mode in ("HIMP", "HIZ", "GUAR"):
                self.cell.open_circuit(t)
            else:
                self.cell.source_voltage(0.0, t)
            return
        self._drive(t)
        v, i = self.cell.sample(np.array([t]))
        idx = self._violation(v, i)
        if idx is not None:
            self._toggle(float(v[0]), float(i[0]), t)

    def _drive(self, t: float) -> None:
        if self.source_function == "CURR":
            if self.tripped:
                self.cell.source_voltage(self._clamp, t)
            else:
                self.cell.source_current(self.current_level_a, t)
        elif self.tripped:
            self.cell.source_current(self._clamp, t)
        else:
            self.cell.source_voltage(self.voltage_level_v, t)

    def _margin(self, v: FloatArray, i: FloatArray) -> FloatArray | None:
        """How far each sample is from a change of control mode (negative: change now), in
        the unit of the watched quantity; None when the output is off."""
        if not self.output_on:
            return None
        if self.source_function == "CURR":
            observed, level, limit, limited = i, self.current_level_a, self.voltage_limit_v, v
        else:
            observed, level, limit, limited = v, self.voltage_level_v, self.current_limit_a, i
        if not self.tripped:
            return np.asarray(limit - np.abs(limited), dtype=np.float64)
        s = 1.0 if self._clamp > 0 else -1.0
        return np.asarray(s * (level - observed), dtype=np.float64)

    def _violation(self, v: FloatArray, i: FloatArray) -> int | None:
        margin = self._margin(v, i)
        if margin is None:
            return None
        hits = np.flatnonzero(margin < 0)
        return int(hits[0]) if hits.size else None

    def _next_chunk(self, block: FloatArray, v: FloatArray, i: FloatArray) -> None:
        """Size the next block so that, at the rate the margin shrinks, it cannot be crossed in
        less than two blocks (doubling while the margin does not shrink)."""
        margin = self._margin(v, i)
        if margin is None:
            return
        t_end, g_end = float(block[-1]), float(margin[-1])
        rate = 0.0
        if self._probe is not None and t_end > self._probe[0]:
            rate = (self._probe[1] - g_end) / (t_end - self._probe[0])
        self._probe = (t_end, g_end)
        if rate <= 0:
            self._chunk = min(self._chunk * 2, _MAX_CHUNK)
            return
        spacing = (
            float(block[-1] - block[0]) / (block.shape[0] - 1)
            if block.shape[0] > 1
            else self.control_step_s
        )
        horizon_s = 0.5 * g_end / rate
        self._chunk = int(min(max(horizon_s / max(spacing, 1e-12), 1.0), _MAX_CHUNK))

    def _toggle(self, v: float, i: float, t: float) -> None:
        if self.tripped:
            self.tripped = False
        else:
            self.tripped = True
            if self.source_function == "CURR":
                self._clamp = math.copysign(self.voltage_limit_v, v)
            else:
                self._clamp = math.copysign(self.current_limit_a, i)
        self._drive(t)

    # ---------------------------------------------------------------- running the world

    def _run(self, times: FloatArray) -> tuple[FloatArray, FloatArray]:
        """True (V, I) at sorted ``times`` (not before the channel's time), with compliance."""
        n = times.shape[0]
        v_out = np.empty(n)
        i_out = np.empty(n)
        k = 0
        while k < n:
            if not self.output_on:
                v, i = self.cell.sample(times[k:])
                v_out[k:], i_out[k:] = v, i
                break
            exact = self._stops and self.source_function == "CURR" and not self.tripped
            block = times[k : k + (_MAX_CHUNK if exact else self._chunk)]
            if exact:
                # the cell stops right after the first sample beyond the limit: no overshoot
                limit = self.voltage_limit_v
                v, i = self.cell.sample(block, stop_above_v=limit, stop_below_v=-limit)  # type: ignore[call-arg]
            else:
                v, i = self.cell.sample(block)
            got = v.shape[0]
            idx = self._violation(v, i)
            if idx is None:
                v_out[k : k + got], i_out[k : k + got] = v, i
                self._next_chunk(block[:got], v, i)
            else:
                v_out[k : k + idx], i_out[k : k + idx] = v[:idx], i[:idx]
                t_switch = float(block[got - 1])  # where the cell is now
                self._toggle(float(v[idx]), float(i[idx]), t_switch)
                v2, i2 = self.cell.sample(block[got - 1 : got])
                v_out[k + idx : k + got], i_out[k + idx : k + got] = v2[0], i2[0]
                self._chunk = 1
                self._probe = None
            k += got
        if n:
            self._t = max(self._t, float(times[-1]))
        return v_out, i_out

    def advance_to(
        self, t_end: float, reading_times: FloatArray | None = None
    ) -> tuple[FloatArray, FloatArray]:
        """Run the world to ``t_end`` (tracking compliance on the control grid) and return the
        true (V, I) at ``reading_times`` (sorted, within (now, t_end])."""
        t0 = self._t
        parts: list[FloatArray] = []
        if self.output_on and t_end > t0:
            step = max(self.control_step_s, (t_end - t0) / _MAX_GRID)
            grid = np.arange(t0 + step, t_end, step)
            parts.append(grid)
            parts.append(np.array([t_end]))
        if reading_times is not None and reading_times.size:
            parts.append(reading_times)
        if not parts:
            self._t = max(t0, t_end)
            empty = np.empty(0)
            return empty, empty
        times = np.unique(np.concatenate(parts))
        times = times[times >= t0]
        v, i = self._run(times)
        self._t = max(self._t, t_end)
        if reading_times is None or not reading_times.size:
            empty = np.empty(0)
            return empty, empty
        idx = np.searchsorted(times, reading_times)
        return v[idx], i[idx]

    # ---------------------------------------------------------------- measuring

    def measure(self, times: FloatArray) -> Readings:
        """Readings at ``times`` (clock s, sorted, not before now): noise, resolution, range."""
        v_true, i_true = self.advance_to(float(times[-1]), times)
        in_compliance = np.full(times.shape, self.tripped)
        v = self._observe(v_true, self.voltage_range_v, self.voltage_ranges_v)
        i = self._observe(i_true, self.current_range_a, self.current_ranges_a)
        if self.readback:
            source = i if self.source_function == "CURR" else v
        else:
            level = self.current_level_a if self.source_function == "CURR" else self.voltage_level_v
            source = np.full(times.shape, level if self.output_on else 0.0)
        return Readings(times.copy(), v, i, source, in_compliance)

    def measure_block(self, count: int, start_s: float | None = None) -> Readings:
        """``count`` readings one reading period apart, the first one period after ``start_s``
        (default: now)."""
        t0 = self.now() if start_s is None else start_s
        times = np.asarray(t0 + self.reading_period_s * np.arange(1, count + 1), dtype=np.float64)
        return self.measure(times)

    def _observe(
        self, true: FloatArray, fixed_range: float | None, ranges: Sequence[float]
    ) -> FloatArray:
        mag = np.abs(true)
        if fixed_range is None:
            idx = np.searchsorted(np.asarray(ranges), mag * 1.0000001)
            rng = np.asarray(ranges)[np.minimum(idx, len(ranges) - 1)]
        else:
            rng = np.full(true.shape, fixed_range)
        out = true.copy()
        if self.noise:
            sigma = 2e-6 * rng / math.sqrt(max(self.nplc, 1e-3))
            out = out + self._rng.normal(0.0, 1.0, true.shape) * sigma
            quantum = rng * 1e-7
            out = np.round(out / quantum) * quantum
        overflow = mag > 1.05 * rng
        out[overflow] = np.copysign(np.inf, true[overflow])
        return out
