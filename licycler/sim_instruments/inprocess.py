"""An in-process source-measure unit on a virtual clock, for hardware-free runs as fast as the machine allows.

It is a :class:`~licycler.drivers.interfaces.SourceMeasureChannel` (and can also source voltage)
driving any :class:`~licycler.sim_instruments.interfaces.CellTerminals` on a sample grid of
``sample_period_s``. Like a cycler channel's firmware it can run a segment on its own:
:meth:`InProcessSMU.run_segment` sources the present setpoint for up to N samples and stops right
after the first sample beyond a voltage bound, so a step ends at the same sample however the
segments are cut (what makes a resumed hardware-free run reproduce an uninterrupted one).

Voltage bounds (the step's stop conditions and the compliance limit) are approached in chunks
that shrink as the voltage nears the bound, predicted from the last readings' slope, so the cell is
driven past a bound for at most one sample. A cell that offers ``sample(times, stop_above_v=...,
stop_below_v=...)`` does this exactly and is used that way.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable

import numpy as np

from licycler.clock import Clock
from licycler.drivers.errors import DriverError
from licycler.drivers.interfaces import InstrumentError, OutputOffMode, RigStatus, SampleBlock
from licycler.sim_instruments.interfaces import CellTerminals, FloatArray, PressureRigModel

__all__ = ["InProcessRig", "InProcessSMU"]

_EMPTY = np.empty(0, dtype=np.float64)


class InProcessSMU:
    """An SMU channel as a Python object: no transport, same capability interface, virtual time."""

    def __init__(
        self,
        cell: CellTerminals,
        clock: Clock,
        *,
        name: str = "inprocess",
        sample_period_s: float = 1.0,
        max_chunk: int = 4096,
    ) -> None:
        if not sample_period_s > 0:
            raise ValueError(f"sample_period_s must be > 0, got {sample_period_s}")
        self.cell = cell
        self.clock = clock
        self.name = name
        self.sample_period_s = float(sample_period_s)
        self.max_chunk = max_chunk
        self.output = False
        self.mode = "current"
        self.level = 0.0  # A in current mode, V in voltage mode
        self.voltage_limit_v = 21.0
        self.off_mode = OutputOffMode.HIGH_IMPEDANCE
        self.in_compliance = False
        self.connected = True
        self._k = 0  # index of the last sample taken (sample k is at k * period)
        self._last_v = math.nan
        self._slope = 0.0  # V per sample, from the last readings
        # a cell that models its own measurement noise and resolution (the twin) is read through it
        self._measure: Callable[..., tuple[FloatArray, FloatArray]] = getattr(cell, "measure", cell.sample)
        self._exact_stops = _supports_stops(self._measure)
        self.cell.open_circuit(self._t(0))

    # --- time ----------------------------------------------------------------------------------
    def _t(self, k: int) -> float:
        return k * self.sample_period_s

    def now(self) -> float:
        return self._t(self._k)

    def _check(self, command: str) -> None:
        if not self.connected:
            raise DriverError(self.name, command, "disconnected")

    # --- SourceMeasureChannel ------------------------------------------------------------------
    async def identify(self) -> str:
        self._check("identify")
        return "licycler,InProcessSMU,0,1.0"

    async def configure_current_source(
        self,
        *,
        voltage_limit_v: float,
        current_range_a: float | None = None,
        voltage_range_v: float | None = None,
        nplc: float = 1.0,
        off_mode: OutputOffMode = OutputOffMode.HIGH_IMPEDANCE,
    ) -> None:
        self._check("configure")
        if not voltage_limit_v > 0:
            raise DriverError(self.name, "configure", f"voltage limit must be > 0, got {voltage_limit_v}")
        self.voltage_limit_v = float(voltage_limit_v)
        self.off_mode = off_mode
        self.mode = "current"
        self._apply()

    async def set_current(self, current_a: float) -> None:
        self._check("set_current")
        self.mode, self.level, self.in_compliance = "current", float(current_a), False
        self._apply()

    async def set_voltage(self, voltage_v: float) -> None:
        """Source a voltage (V) instead of a current (a potentiostatic hold)."""
        self._check("set_voltage")
        self.mode, self.level, self.in_compliance = "voltage", float(voltage_v), False
        self._apply()

    async def output_on(self) -> None:
        self._check("output_on")
        self.output = True
        self._apply()

    async def output_off(self) -> None:
        self._check("output_off")
        self.output = False
        self._apply()

    async def output_enabled(self) -> bool:
        self._check("output_enabled")
        return self.output

    async def voltage_limit_tripped(self) -> bool:
        self._check("voltage_limit_tripped")
        return self.in_compliance

    async def drain_errors(self) -> list[InstrumentError]:
        self._check("drain_errors")
        return []

    async def safe_state(self) -> None:
        self._check("safe_state")
        self.mode, self.level, self.in_compliance = "current", 0.0, False
        self.off_mode = OutputOffMode.HIGH_IMPEDANCE
        self.output = False
        self._apply()

    async def close(self) -> None:
        return None

    async def read_block(self) -> SampleBlock:
        """Every sample due since the last read, up to the clock's present time (at least one)."""
        self._check("read_block")
        due = max(1, math.floor(self.clock.now() / self.sample_period_s + 1e-9) - self._k)
        return self._take(due, None, None)

    async def run_segment(
        self, n_samples: int, *, stop_above_v: float | None = None, stop_below_v: float | None = None
    ) -> SampleBlock:
        """Source the present setpoint for up to ``n_samples`` samples; stop after the first sample
        whose voltage is above ``stop_above_v`` or below ``stop_below_v`` (V)."""
        self._check("run_segment")
        # time that passed on the clock without readings (a suspension, a pause): those samples were not taken
        self._k = max(self._k, math.floor(self.clock.now() / self.sample_period_s + 1e-9))
        return self._take(max(1, int(n_samples)), stop_above_v, stop_below_v)

    # --- the physics of an SMU ------------------------------------------------------------------
    def _apply(self) -> None:
        t = self.now()
        if not self.output:
            if self.off_mode is OutputOffMode.HIGH_IMPEDANCE:
                self.cell.open_circuit(t)
            else:
                self.cell.source_voltage(0.0, t)
        elif self.mode == "voltage" or self.in_compliance:
            level = self.level if self.mode == "voltage" else math.copysign(self.voltage_limit_v, self.level)
            self.cell.source_voltage(level, t)
        else:
            self.cell.source_current(self.level, t)

    def _bounds(self, stop_above: float | None, stop_below: float | None) -> tuple[float, float]:
        hi, lo = math.inf, -math.inf
        if self.output and self.mode == "current" and not self.in_compliance:
            hi, lo = self.voltage_limit_v, -self.voltage_limit_v
        if stop_above is not None:
            hi = min(hi, stop_above)
        if stop_below is not None:
            lo = max(lo, stop_below)
        return hi, lo

    def _chunk(self, remaining: int, hi: float, lo: float) -> int:
        """How many samples may be taken before a bound could be crossed (at least one)."""
        if not math.isfinite(self._last_v) or (math.isinf(hi) and math.isinf(lo)):
            return min(remaining, 1 if math.isnan(self._last_v) else self.max_chunk)
        margin = min(hi - self._last_v, self._last_v - lo)
        if margin <= 0:
            return 1
        rate = abs(self._slope)
        steps = self.max_chunk if rate == 0 else int(0.5 * margin / rate)
        return max(1, min(remaining, steps, self.max_chunk))

    def _take(self, n: int, stop_above: float | None, stop_below: float | None) -> SampleBlock:
        times_out: list[FloatArray] = []
        v_out: list[FloatArray] = []
        i_out: list[FloatArray] = []
        taken = 0
        while taken < n:
            hi, lo = self._bounds(stop_above, stop_below)
            chunk = n - taken if self._exact_stops else self._chunk(n - taken, hi, lo)
            times = self._t(self._k + 1) + self.sample_period_s * np.arange(chunk, dtype=np.float64)
            if self._exact_stops:
                v, i = self._measure(
                    times, stop_above_v=None if math.isinf(hi) else hi, stop_below_v=None if math.isinf(lo) else lo
                )
                times = times[: len(v)]
            else:
                v, i = self._measure(times)
            compliance_hit = False
            if self.output and self.mode == "current" and not self.in_compliance and len(v):
                over = ~(np.abs(v) <= self.voltage_limit_v)  # also catches +-inf and NaN
                if over.any():
                    # the source holds its voltage limit from the first reading beyond it on: that
                    # reading shows the limit; what follows is sampled under voltage control
                    k = int(np.argmax(over))
                    times, v, i = times[: k + 1], v[: k + 1].copy(), i[: k + 1]
                    v[k] = math.copysign(self.voltage_limit_v, v[k] if math.isfinite(v[k]) else self.level)
                    compliance_hit = True
            self._k += len(times)
            taken += len(times)
            times_out.append(times)
            v_out.append(v)
            i_out.append(i)
            if len(v):
                if len(v) >= 2:
                    self._slope = float(v[-1] - v[-2])
                elif math.isfinite(self._last_v):
                    self._slope = float(v[-1] - self._last_v)
                self._last_v = float(v[-1])
            if compliance_hit:
                self.in_compliance = True
                self._apply()
            if len(v) and (
                (stop_above is not None and v[-1] > stop_above) or (stop_below is not None and v[-1] < stop_below)
            ):
                break
        advance = getattr(self.clock, "advance_to", None)
        if advance is not None:
            advance(self.now())
        if not times_out:
            return SampleBlock(_EMPTY, _EMPTY.copy(), _EMPTY.copy())
        return SampleBlock(np.concatenate(times_out), np.concatenate(v_out), np.concatenate(i_out))

    # --- checkpoints ---------------------------------------------------------------------------
    def __getstate__(self) -> dict[str, object]:
        state = dict(self.__dict__)
        state["clock"] = None  # clocks are rebuilt on resume
        return state


def _supports_stops(sample: Callable[..., object]) -> bool:
    try:
        params = inspect.signature(sample).parameters
    except (TypeError, ValueError):
        return False
    return "stop_above_v" in params and "stop_below_v" in params


class InProcessRig:
    """A :class:`~licycler.drivers.interfaces.PressureRig` reading a simulated rig model in-process
    (the twin's rig), at the time of ``clock``. A setpoint is sent only when the model has one."""

    def __init__(self, model: PressureRigModel, clock: Clock, *, name: str = "in-process rig") -> None:
        self.model = model
        self.clock = clock
        self.name = name
        self.can_set_pressure = True
        self._setpoint: float | None = None

    async def identify(self) -> str:
        return f"licycler,InProcessRig,{type(self.model).__name__}"

    async def read_pressure_pa(self) -> float:
        reader = getattr(self.model, "measure_pressure_pa", self.model.pressure_pa)
        return float(reader(self.clock.now()))

    async def set_pressure_setpoint_pa(self, pressure_pa: float) -> None:
        self.model.set_pressure_setpoint(pressure_pa, self.clock.now())
        self._setpoint = pressure_pa

    async def status(self) -> RigStatus:
        return RigStatus(await self.read_pressure_pa(), self._setpoint)

    async def close(self) -> None:
        return None

    def __getstate__(self) -> dict[str, object]:
        state = dict(self.__dict__)
        state["clock"] = None
        return state
