"""An emulated Keysight B2901A/B2902A precision source/measure unit driving simulated cells.

The command set follows the B2900 SCPI command reference: ``[:SOURce[c]]`` optional with channel
suffixes (``:SOUR2:CURR``), channel lists ``(@1)``, ``(@1,2)``, ``(@1:2)`` on the measurement and
trigger commands (no list means channel 1), ``:SOUR:FUNC:MODE CURR|VOLT``, the compliance
``:SENS:VOLT:PROT`` (2 V after reset) and ``:SENS:VOLT:PROT:TRIP?``, ``:OUTP:OFF:MODE
NORM|HIZ|ZERO``, ``:OUTP:ON:AUTO`` (on after reset: ``:INIT``, ``:READ?`` and ``:MEAS?`` switch the
output on by themselves), ``:FORM:ELEM:SENS`` (elements always in the order VOLT, CURR, RES, TIME,
STAT, SOUR; all six until set), ``+9.910000E+37`` for "no data" (a function not enabled), and the
error queue format ``+0,"No error"``.

The acquire trigger system of each channel (the ARM-TRIGger model of the B2900 User's Guide, "Trigger
System"), on the instrument's own clock: ``:TRIGger[c]:ACQuire:SOURce AINT|TIMer`` (AINT: one reading
after another, each one reading period long; TIMer: one reading every ``:TRIGger[c]:ACQuire:TIMer``
seconds, 1E-5 to 1E+5), ``:TRIGger[c]:ACQuire:COUNt`` (1 to 100000, or INFinity = 2147483647) times
``:ARM[c]:ACQuire:COUNt`` readings, ``:INITiate[:IMMediate]:ACQuire (@c)`` (-213 "Init ignored" when the
channel is busy), ``:ABORt:ACQuire (@c)``. Reading k of an acquisition started at t0 is taken (and
time-stamped) at t0 + k * period.

The transient (source output) action beside it, in the same ARM-TRIGger model: ``:TRIGger[c]:TRANsient
:SOURce AINT|TIMer``, ``:TRIGger[c]:TRANsient:TIMer``, ``:TRIGger[c]:TRANsient:COUNt`` (times
``:ARM[c]:TRANsient:COUNt``), ``:TRIGger[c]:TRANsient:DELay`` (0 to 1E+5 s: the device action comes
that long after its trigger), ``:INITiate[:IMMediate]:TRANsient (@c)``, ``:ABORt:TRANsient (@c)``;
``:INITiate[:IMMediate][:ALL] (@c)`` and ``:ABORt[:ALL] (@c)`` act on both actions, the ``[:ALL]`` forms
of COUNt, SOURce and TIMer set both. With AINT, action k of a transient started at t0 comes at t0 + k *
delay (each trigger at once, each action a delay after it); with TIMer at t0 + k * timer + delay (a
trigger missed during a delay longer than the timer is not modelled). The device action in the fixed
source mode (``[:SOURce[c]]:CURRent|VOLTage:MODE FIXed``, the reset mode) changes the output to the
triggered level, ``[:SOURce[c]]:CURRent|VOLTage[:LEVel]:TRIGgered[:AMPLitude]`` (0 after reset), at
that instant on the cell. A transient is refused with -221 in LIST and SWEep modes (sweeps and lists
are not emulated). Setting the immediate level ``[:SOURce[c]]:CURRent`` changes the output at once and
sets the triggered level to the same value (an assumption: a later ``:TRIGgered`` level is kept until the
next immediate one); ``:SOURce:CURRent?`` reports the immediate level even after a transient changed the
output to the triggered one.

A channel is busy while either action runs; it goes from busy to idle when the last one completes (the
N-th reading, the last transient action) or is aborted, and with ``:OUTPut[c]:OFF:AUTO ON`` its output
is turned off at that instant, in the ``:OUTP:OFF:MODE`` in force (HIZ opens the cell). So an
``:ABORt:ACQuire`` while a transient waits out its delay leaves the output on, the transient's end then
turning it off. Events of a channel are run in time order: a reading taken at the instant of a transient
action sees the level before it. ``:INITiate`` of an action already running is refused with -213, a spot
measurement (``:MEASure?``) on a busy channel too. :meth:`KeysightB2900.next_event_s` is the time of the
next transient action or acquisition end, so a served instrument changes its level and turns its output
off then with no client talking. ``:READ?`` and ``:MEASure?`` run the acquire action only.

The trace buffer of each channel: ``:TRACe[c]:FEED SENSe`` (what it stores), ``:TRACe[c]:FEED:CONTrol
NEXT|NEVer`` (NEXT stores readings until the buffer is full, then becomes NEVer by itself; NEVer after
reset), ``:TRACe[c]:POINts`` (1 to 100000, settable in NEVer only), ``:TRACe[c]:POINts:ACTual?``,
``:TRACe[c]:FREE?`` (available,total), ``:TRACe[c]:CLEar`` (in NEVer only: -221 Settings conflict in
NEXT) and ``:TRACe[c]:DATA? [offset[,size]]`` (offset 0-based or STARt, size all by default; the
:FORMat:ELEMents:SENSe elements of each stored reading; -222 for an offset beyond the data). The TIME
element is the timer (``:SYSTem:TIME:TIMer:COUNt``) when the reading was taken.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from licycler.sim_instruments.dummy_cell import DummyCell
from licycler.sim_instruments.interfaces import CellTerminals, Clock
from licycler.sim_instruments.scpi import (
    Boolean,
    Call,
    ChannelList,
    Choice,
    Command,
    Numeric,
    Param,
    QuotedChoice,
    Readings,
    ScpiError,
    ScpiInstrument,
    SmuChannel,
)

__all__ = ["KeysightB2900"]

_ELEMENT_ORDER = ("VOLT", "CURR", "RES", "TIME", "STAT", "SOUR")
_STATUS_COMPLIANCE = 1 << 3
_NO_DATA = math.nan
_MODELS = {"B2901A": 1, "B2902A": 2, "B2911A": 1, "B2912A": 2}
_INFINITY_COUNT = 2147483647
TRACE_POINTS_MAX = 100_000


@dataclass
class _Channel:
    smu: SmuChannel
    functions: set[str] = field(default_factory=lambda: {"VOLT", "CURR"})
    nplc: dict[str, float] = field(default_factory=dict)
    auto_on: bool = True
    off_mode: str = "NORM"
    count: int = 1
    arm_count: int = 1
    trigger_source: str = "AINT"
    timer_s: float = 1e-4
    off_auto: bool = False
    tran_count: int = 1
    tran_arm_count: int = 1
    tran_source: str = "AINT"
    tran_timer_s: float = 1e-4
    tran_delay_s: float = 0.0
    tran_running: bool = False
    tran_start_s: float = 0.0
    tran_total: int = 0
    tran_done: int = 0
    source_mode: dict[str, str] = field(default_factory=lambda: {"CURR": "FIX", "VOLT": "FIX"})
    immediate: dict[str, float] = field(default_factory=lambda: {"CURR": 0.0, "VOLT": 0.0})
    """The immediate levels as set (``:SOUR:CURR``), A and V."""
    triggered: dict[str, float] = field(default_factory=lambda: {"CURR": 0.0, "VOLT": 0.0})
    """The triggered levels (``:SOUR:CURR:TRIG``): the output after a transient action, A and V."""
    acq_start_s: float = 0.0
    acq_period_s: float = 0.0
    acq_count: int = 0
    acq_taken: int = 0
    running: bool = False
    data: list[Readings] = field(default_factory=list)
    trace_feed: str = "SENS"
    trace_control: str = "NEV"
    trace_points: int = TRACE_POINTS_MAX
    trace: list[dict[str, float]] = field(default_factory=list)
    """One row per stored reading: the six elements, TIME as the timer then."""
    output_log: list[tuple[float, bool, str]] = field(default_factory=list)
    """(clock s, output on, why) of every change of the output state, for tests and logs."""

    @property
    def acq_end_s(self) -> float:
        return self.acq_start_s + self.acq_period_s * self.acq_count

    @property
    def busy(self) -> bool:
        """Whether either action (acquire, transient) runs."""
        return self.running or self.tran_running

    def transient_action_s(self, k: int) -> float:
        """Clock time of action ``k`` (1-based) of the transient started at ``tran_start_s``."""
        if self.tran_source == "TIM":
            return self.tran_start_s + k * self.tran_timer_s + self.tran_delay_s
        return self.tran_start_s + k * self.tran_delay_s


class KeysightB2900(ScpiInstrument):
    """A B2901A (one channel) or B2902A (two channels) on :class:`SmuChannel` physics.

    ``cells`` gives each channel its cell; missing ones get a 1 kOhm dummy load.
    """

    error_queue_size = 30
    VOLTAGE_RANGES_V = (0.2, 2.0, 20.0, 200.0)
    CURRENT_RANGES_A = (1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0, 1.5, 3.0)

    def __init__(
        self,
        cells: CellTerminals | Sequence[CellTerminals],
        clock: Clock,
        *,
        model: str = "B2902A",
        serial: str = "MY51140123",
        noise: bool = True,
        seed: int = 0,
    ) -> None:
        if model not in _MODELS:
            raise ValueError(f"unknown model {model!r}; expected one of {sorted(_MODELS)}")
        self.model = model
        self.channels = _MODELS[model]
        self.identity = f"Keysight Technologies,{model},{serial},3.4.2011.5100"
        cell_list = [cells] if not isinstance(cells, Sequence) else list(cells)
        while len(cell_list) < self.channels:
            cell_list.append(DummyCell(0.0, 1000.0))
        self.ch: dict[int, _Channel] = {
            n: _Channel(
                SmuChannel(
                    cell_list[n - 1],
                    clock,
                    voltage_ranges_v=self.VOLTAGE_RANGES_V,
                    current_ranges_a=self.CURRENT_RANGES_A,
                    noise=noise,
                    seed=seed + n,
                )
            )
            for n in range(1, self.channels + 1)
        }
        self.elements: tuple[str, ...] = _ELEMENT_ORDER
        self.timer_origin_s = clock.now()
        super().__init__(clock)
        self.reset()

    # ---------------------------------------------------------------- IEEE 488.2 hooks

    def reset(self) -> None:
        self.reset_settings()
        self.elements = _ELEMENT_ORDER
        for c in self.ch.values():
            c.functions = {"VOLT", "CURR"}
            c.nplc = {"VOLT": 0.1, "CURR": 0.1, "RES": 0.1}
            c.auto_on = True
            c.off_mode = "NORM"
            c.count = 1
            c.arm_count = 1
            c.trigger_source = "AINT"
            c.timer_s = 1e-4
            c.off_auto = False
            c.tran_count = 1
            c.tran_arm_count = 1
            c.tran_source = "AINT"
            c.tran_timer_s = 1e-4
            c.tran_delay_s = 0.0
            c.tran_running = False
            c.source_mode = {"CURR": "FIX", "VOLT": "FIX"}
            c.immediate = {"CURR": 0.0, "VOLT": 0.0}
            c.triggered = {"CURR": 0.0, "VOLT": 0.0}
            c.running = False
            c.data = []
            c.trace_feed = "SENS"
            c.trace_control = "NEV"
            c.trace_points = TRACE_POINTS_MAX
            c.trace = []
            if c.smu.output_on:
                c.output_log.append((c.smu.now(), False, "*RST"))
            c.smu.update(
                source_function="VOLT",
                current_level_a=0.0,
                voltage_level_v=0.0,
                voltage_limit_v=2.0,
                current_limit_a=1e-4,
                output_on=False,
                off_mode="NORM",
                nplc=0.1,
                voltage_range_v=None,
                current_range_a=None,
                readback=False,
            )

    def format_error(self, code: int, message: str) -> str:
        return f'{code:+d},"{message}"'

    def format_number(self, value: float) -> str:
        if math.isnan(value):
            return "+9.910000E+37"
        if math.isinf(value):
            return "+9.900000E+37" if value > 0 else "-9.900000E+37"
        return f"{value:+.6E}"

    def pending_until(self) -> float:
        ends = [c.acq_end_s for c in self.ch.values() if c.running]
        ends += [c.transient_action_s(c.tran_total) for c in self.ch.values() if c.tran_running]
        return max(ends) if ends else -math.inf

    def next_event_s(self) -> float:
        """When a channel next acts by itself: a transient action (the output level changes) or an
        acquisition's end (it goes idle, and with ``:OUTP:OFF:AUTO ON`` its output goes off), clock
        s; inf when neither runs."""
        events = [c.acq_end_s for c in self.ch.values() if c.running]
        events += [c.transient_action_s(c.tran_done + 1) for c in self.ch.values() if c.tran_running]
        return min(events) if events else math.inf

    def advance(self) -> None:
        for c in self.ch.values():
            now = c.smu.now()
            self._run(c, now)
            c.smu.advance_to(now)

    def _run(self, c: _Channel, now: float) -> None:
        """Bring the channel's trigger system up to ``now``, its events in time order. In the fixed
        source mode every transient action sets the same triggered level: the first one due changes
        the output, the others due by ``now`` are counted (an INFinite count stays cheap)."""
        if c.tran_running and c.transient_action_s(c.tran_done + 1) <= now:
            first = c.transient_action_s(c.tran_done + 1)
            self._take_readings(c, first)  # a reading at the instant sees the level before it
            function = c.smu.source_function
            attr = "current_level_a" if function == "CURR" else "voltage_level_v"
            c.smu.update(at_s=first, **{attr: c.triggered[function]})
            c.tran_done = max(c.tran_done + 1, self._transient_actions_by(c, now))
            if c.tran_done >= c.tran_total:
                end = c.transient_action_s(c.tran_total)
                self._take_readings(c, end)
                c.tran_running = False
                self._went_idle(c, end, "transient complete")
        self._take_readings(c, now)

    @staticmethod
    def _transient_actions_by(c: _Channel, t_s: float) -> int:
        """How many actions of the running transient are due by ``t_s``."""
        if c.tran_source == "TIM":
            n = math.floor((t_s - c.tran_start_s - c.tran_delay_s) / c.tran_timer_s + 1e-9)
        elif c.tran_delay_s > 0:
            n = math.floor((t_s - c.tran_start_s) / c.tran_delay_s + 1e-9)
        else:
            n = c.tran_total  # each trigger at once, no delay: all at the start
        return max(0, min(n, c.tran_total))

    def _take_readings(self, c: _Channel, until_s: float) -> None:
        """The readings of the running acquisition due by ``until_s``; its end if it is reached."""
        if not c.running:
            return
        due = min(c.acq_count, math.floor((until_s - c.acq_start_s) / c.acq_period_s + 1e-9))
        if due > c.acq_taken:
            k = np.arange(c.acq_taken + 1, due + 1)
            times = np.asarray(c.acq_start_s + c.acq_period_s * k, dtype=np.float64)
            readings = c.smu.measure(times)
            c.data.append(readings)
            self._store(c, readings)
            c.acq_taken = due
        if c.acq_taken >= c.acq_count:
            c.running = False
            self._went_idle(c, c.acq_end_s, "acquisition complete")

    def _went_idle(self, c: _Channel, at_s: float, why: str) -> None:
        """An action stopped at ``at_s``: if the channel is idle now (neither action runs), with
        OFF:AUTO its output goes off then."""
        if not c.busy and c.off_auto and c.smu.output_on:
            self._output(c, False, f"{why}, :OUTP:OFF:AUTO ON", at_s=at_s)

    def _output(self, c: _Channel, on: bool, why: str, at_s: float | None = None) -> None:
        """Turn the output on or off (in the channel's off mode), from ``at_s`` (default now)."""
        if on != c.smu.output_on:
            c.output_log.append((c.smu.now() if at_s is None else at_s, on, why))
        c.smu.update(at_s=at_s, output_on=on, off_mode=c.off_mode)

    def _store(self, c: _Channel, readings: Readings) -> None:
        """Readings into the trace buffer while it is fed (NEXT), until it is full."""
        if c.trace_control != "NEXT" or c.trace_feed != "SENS":
            return
        cols = self._element_columns(c, [readings])
        room = c.trace_points - len(c.trace)
        for k in range(min(room, len(readings))):
            c.trace.append({e: float(cols[e][k]) for e in _ELEMENT_ORDER})
        if len(c.trace) >= c.trace_points:
            c.trace_control = "NEV"  # buffer full: NEXT becomes NEVer by itself, no error

    # ---------------------------------------------------------------- measuring

    def _start(
        self, channels: tuple[int, ...], count: int | None = None, actions: str = "ACQ"
    ) -> None:
        """Initiate the ``actions`` ("ACQ", "TRAN" or "ALL") of ``channels`` (``count``: a spot
        measurement of that many readings, one reading period apart, whatever the trigger
        settings)."""
        acquire, transient = actions in ("ACQ", "ALL"), actions in ("TRAN", "ALL")
        for n in channels:
            c = self.ch[n]
            if (c.busy if count is not None else (acquire and c.running) or (transient and c.tran_running)):
                raise ScpiError(-213)
            if transient and c.source_mode[c.smu.source_function] != "FIX":
                raise ScpiError(-221)  # sweeps and lists are not emulated
        for n in channels:
            c = self.ch[n]
            if c.auto_on and not c.smu.output_on:
                self._output(c, True, ":OUTP:ON:AUTO ON")
            now = c.smu.now()
            if acquire:
                c.data = []
                c.running = True
                c.acq_start_s = now
                timed = count is None and c.trigger_source == "TIM"
                c.acq_period_s = max(c.timer_s, 1e-9) if timed else c.smu.reading_period_s
                c.acq_count = c.count * c.arm_count if count is None else count
                c.acq_taken = 0
            if transient:
                c.tran_running = True
                c.tran_start_s = now
                c.tran_total = c.tran_count * c.tran_arm_count
                c.tran_done = 0
            self._run(c, now)  # a transient action due at once (no delay) acts at once

    async def _wait(self, channels: tuple[int, ...]) -> None:
        end = max((self.ch[n].acq_end_s for n in channels if self.ch[n].running), default=None)
        if end is not None:
            await self.clock.sleep_until(end)
            self.advance()

    def _columns(self, n: int, which: str) -> dict[str, npt.NDArray[np.float64]]:
        """All six elements of channel ``n``'s last acquisition (``which``: all or latest);
        functions not enabled (or no data at all) read as NaN ("no data")."""
        c = self.ch[n]
        if not c.data:
            return {e: np.array([_NO_DATA]) for e in _ELEMENT_ORDER}
        cols = self._element_columns(c, c.data)
        if which == "latest":
            cols = {e: v[-1:] for e, v in cols.items()}
        return cols

    def _element_columns(
        self, c: _Channel, data: Sequence[Readings]
    ) -> dict[str, npt.NDArray[np.float64]]:
        """The six elements of ``data`` (TIME on the timer as it is now)."""
        t = np.concatenate([r.time_s for r in data])
        v = np.concatenate([r.voltage_v for r in data])
        i = np.concatenate([r.current_a for r in data])
        s = np.concatenate([r.source for r in data])
        comp = np.concatenate([r.in_compliance for r in data])
        with np.errstate(divide="ignore", invalid="ignore"):
            res = v / i
        nodata = np.full(t.shape, _NO_DATA)
        return {
            "VOLT": v if "VOLT" in c.functions else nodata,
            "CURR": i if "CURR" in c.functions else nodata,
            "RES": res if "RES" in c.functions else nodata,
            "TIME": t - self.timer_origin_s,
            "STAT": np.where(comp, float(_STATUS_COMPLIANCE), 0.0),
            "SOUR": s,
        }

    def _format_rows(self, channels: tuple[int, ...], which: str, only: str | None) -> str:
        out: list[str] = []
        names = (only,) if only is not None else self.elements
        for n in channels:
            cols = self._columns(n, which)
            for k in range(cols["TIME"].shape[0]):
                out.extend(self._fmt(e, float(cols[e][k])) for e in names)
        return ",".join(out)

    def _fmt(self, element: str, value: float) -> str:
        if element == "STAT" and math.isfinite(value):
            return f"{value:+.6E}"
        return self.format_number(value)

    async def _measure(self, call: Call, only: str | None = None) -> str:
        channels: tuple[int, ...] = call.arg(0) or (1,)
        if only is not None:
            for n in channels:
                self.ch[n].functions.add(only)
        self._start(channels, count=1)
        await self._wait(channels)
        return self._format_rows(channels, "latest", only)

    async def _read(self, call: Call, which: str, only: str | None = None) -> str:
        channels: tuple[int, ...] = call.arg(0) or (1,)
        self._start(channels)
        await self._wait(channels)
        return self._format_rows(channels, which, only)

    async def _fetch(self, call: Call, which: str, only: str | None = None) -> str:
        channels: tuple[int, ...] = call.arg(0) or (1,)
        await self._wait(channels)
        return self._format_rows(channels, which, only)

    # ---------------------------------------------------------------- handler factories

    def _smu_attr(self, header: str, attr: str, param: Numeric) -> Command:
        def set_(call: Call) -> None:
            self.ch[call.channel].smu.update(**{attr: float(call.args[0])})

        def query(call: Call) -> str:
            which = call.arg(0)
            bounds = {"MIN": param.minimum, "MAX": param.maximum, "DEF": param.default_value}
            if which is not None:
                return self.format_number(float(bounds[which] or 0.0))
            return self.format_number(float(getattr(self.ch[call.channel].smu, attr)))

        return Command(
            header, set=set_, query=query, params=[param],
            query_params=[Choice(("MINimum", "MAXimum", "DEFault"), optional=True)],
        )

    def _tripped(self, function: str) -> Callable[[Call], str]:
        def query(call: Call) -> str:
            smu = self.ch[call.channel].smu
            return "1" if smu.tripped and smu.source_function == function else "0"

        return query

    def _nplc(self, function: str) -> tuple[Callable[[Call], None], Callable[[Call], str]]:
        def set_(call: Call) -> None:
            c = self.ch[call.channel]
            c.nplc[function] = float(call.args[0])
            c.smu.update(nplc=max(c.nplc.values()))

        def query(call: Call) -> str:
            return self.format_number(self.ch[call.channel].nplc[function])

        return set_, query

    def _range(self, quantity: str) -> tuple[Callable[[Call], None], ...]:
        ranges = self.VOLTAGE_RANGES_V if quantity == "VOLT" else self.CURRENT_RANGES_A
        attr = "voltage_range_v" if quantity == "VOLT" else "current_range_a"

        def set_range(call: Call) -> None:
            value = abs(float(call.args[0]))
            chosen = next((r for r in ranges if r >= value * (1 - 1e-9)), ranges[-1])
            self.ch[call.channel].smu.update(**{attr: chosen})

        def set_auto(call: Call) -> None:
            smu = self.ch[call.channel].smu
            if call.args[0]:
                smu.update(**{attr: None})
            elif getattr(smu, attr) is None:
                smu.update(**{attr: ranges[-2]})

        return set_range, set_auto

    def _range_queries(self, quantity: str) -> tuple[Callable[[Call], str], ...]:
        ranges = self.VOLTAGE_RANGES_V if quantity == "VOLT" else self.CURRENT_RANGES_A
        attr = "voltage_range_v" if quantity == "VOLT" else "current_range_a"

        def query_range(call: Call) -> str:
            fixed = getattr(self.ch[call.channel].smu, attr)
            return self.format_number(fixed if fixed is not None else ranges[-1])

        def query_auto(call: Call) -> str:
            return "1" if getattr(self.ch[call.channel].smu, attr) is None else "0"

        return query_range, query_auto

    def _set_functions(self, mode: str) -> Callable[[Call], None]:
        def set_(call: Call) -> None:
            c = self.ch[call.channel]
            names = {str(f).split(":")[0] for f in call.args[0]} if call.args else set()
            if mode == "on":
                c.functions |= names
            elif mode == "off":
                c.functions -= names
            else:
                c.functions = {"VOLT", "CURR", "RES"}

        return set_

    def _query_functions(self, mode: str) -> Callable[[Call], str]:
        def query(call: Call) -> str:
            c = self.ch[call.channel]
            names = [f for f in ("VOLT", "CURR", "RES") if (f in c.functions) == (mode == "on")]
            return ",".join(f'"{f}"' for f in names)

        return query

    def _set_source_function(self, call: Call) -> None:
        self.ch[call.channel].smu.update(source_function=call.args[0])

    def _set_output(self, call: Call) -> None:
        c = self.ch[call.channel]
        self._output(c, bool(call.args[0]), f":OUTP {'ON' if call.args[0] else 'OFF'}")

    def _set_off_mode(self, call: Call) -> None:
        c = self.ch[call.channel]
        c.off_mode = call.args[0]
        c.smu.update(off_mode=c.off_mode)

    def _set_elements(self, call: Call) -> None:
        chosen = set(call.args[0])
        self.elements = tuple(e for e in _ELEMENT_ORDER if e in chosen)

    def _trigger_setting(self, attrs: tuple[str, ...], convert: type) -> Callable[[Call], None]:
        """A setter of the channel attributes ``attrs`` (both actions for the [:ALL] forms)."""

        def set_(call: Call) -> None:
            for attr in attrs:
                setattr(self.ch[call.channel], attr, convert(call.args[0]))

        return set_

    def _trigger_query(self, attr: str, fmt: Callable[[Any], str]) -> Callable[[Call], str]:
        return lambda call: fmt(getattr(self.ch[call.channel], attr))

    def _initiate(self, actions: str) -> Callable[[Call], None]:
        return lambda call: self._start(call.arg(0) or (1,), actions=actions)

    def _aborting(self, actions: str) -> Callable[[Call], None]:
        return lambda call: self._abort(call, actions)

    def _source_mode(self, quantity: str) -> tuple[Callable[[Call], None], Callable[[Call], str]]:
        def set_(call: Call) -> None:
            self.ch[call.channel].source_mode[quantity] = call.args[0]

        def query(call: Call) -> str:
            return self.ch[call.channel].source_mode[quantity]

        return set_, query

    def _level(self, function: str, param: Numeric) -> tuple[Command, Command]:
        """The immediate and the triggered level of ``function`` (CURR, VOLT)."""
        attr = "current_level_a" if function == "CURR" else "voltage_level_v"
        word = "CURRent" if function == "CURR" else "VOLTage"
        bounds = {"MIN": param.minimum, "MAX": param.maximum, "DEF": param.default_value}

        def set_immediate(call: Call) -> None:
            c = self.ch[call.channel]
            value = float(call.args[0])
            c.immediate[function] = c.triggered[function] = value
            c.smu.update(**{attr: value})

        def set_triggered(call: Call) -> None:
            self.ch[call.channel].triggered[function] = float(call.args[0])

        def query(levels: str) -> Callable[[Call], str]:
            def answer(call: Call) -> str:
                which = call.arg(0)
                if which is not None:
                    return self.format_number(float(bounds[which] or 0.0))
                return self.format_number(getattr(self.ch[call.channel], levels)[function])

            return answer

        which = [Choice(("MINimum", "MAXimum", "DEFault"), optional=True)]
        return (
            Command(f"[:SOURce#]:{word}[:LEVel][:IMMediate][:AMPLitude]", set=set_immediate,
                    query=query("immediate"), params=[param], query_params=which),
            Command(f"[:SOURce#]:{word}[:LEVel]:TRIGgered[:AMPLitude]", set=set_triggered,
                    query=query("triggered"), params=[param], query_params=which),
        )

    def _abort(self, call: Call, actions: str) -> None:
        for n in call.arg(0) or tuple(self.ch):
            c = self.ch[n]
            was_busy = c.busy
            if actions in ("ACQ", "ALL"):
                c.running = False
            if actions in ("TRAN", "ALL"):
                c.tran_running = False
            if was_busy:
                self._went_idle(c, c.smu.now(), ":ABOR")

    # ---------------------------------------------------------------- trace buffer

    def _trace_control(self, call: Call) -> None:
        self.ch[call.channel].trace_control = call.args[0]

    def _trace_needs_never(self, call: Call) -> _Channel:
        c = self.ch[call.channel]
        if c.trace_control != "NEV":
            raise ScpiError(-221)
        return c

    def _trace_feed(self, call: Call) -> None:
        self._trace_needs_never(call).trace_feed = call.args[0]

    def _trace_points(self, call: Call) -> None:
        c = self._trace_needs_never(call)
        c.trace_points = int(call.args[0])
        del c.trace[c.trace_points :]

    def _trace_clear(self, call: Call) -> None:
        self._trace_needs_never(call).trace = []

    def _trace_data(self, call: Call) -> str:
        c = self.ch[call.channel]
        offset = int(call.arg(0, 0))
        if offset >= len(c.trace):
            raise ScpiError(-222)
        size = call.arg(1)
        rows = c.trace[offset:] if size is None else c.trace[offset : offset + int(size)]
        return ",".join(self._fmt(e, row[e]) for row in rows for e in self.elements)

    def _data_query(
        self, kind: str, which: str, only: str | None
    ) -> Callable[[Call], Awaitable[str]]:
        if kind == "meas":
            return lambda call: self._measure(call, only)
        if kind == "read":
            return lambda call: self._read(call, which, only)
        return lambda call: self._fetch(call, which, only)

    def build_commands(self) -> list[Command]:
        chans = ChannelList(channels=self.channels, default=None)
        cmds: list[Command] = []

        # -- source
        cmds.append(Command(
            "[:SOURce#]:FUNCtion:MODE", set=self._set_source_function,
            query=lambda c: self.ch[c.channel].smu.source_function,
            params=[Choice(("CURRent", "VOLTage"))],
        ))
        cmds.extend(self._level("CURR", Numeric(minimum=-3.03, maximum=3.03, default_value=0.0,
                                                unit="A")))
        cmds.extend(self._level("VOLT", Numeric(minimum=-210, maximum=210, default_value=0.0,
                                                unit="V")))
        for quantity, word in (("CURR", "CURRent"), ("VOLT", "VOLTage")):
            set_mode, query_mode = self._source_mode(quantity)
            cmds.append(Command(f"[:SOURce#]:{word}:MODE", set=set_mode, query=query_mode,
                                params=[Choice(("FIXed", "LIST", "SWEep"))]))
        for q, top in (("CURRent", 3.03), ("VOLTage", 210.0)):
            cmds.append(self.setting(f"[:SOURce#]:{q}:RANGe[:UPPer]", f"sour.{q}.rang",
                                     Numeric(minimum=-top, maximum=top, unit=q[0]), top))
            cmds.append(self.setting(f"[:SOURce#]:{q}:RANGe:AUTO", f"sour.{q}.rang.auto",
                                     Boolean(), True))
        # -- sense
        cmds.append(self._smu_attr(
            ":SENSe#:VOLTage[:DC]:PROTection[:LEVel]", "voltage_limit_v",
            Numeric(minimum=0.0, maximum=210, default_value=2.0, unit="V")))
        cmds.append(self._smu_attr(
            ":SENSe#:CURRent[:DC]:PROTection[:LEVel]", "current_limit_a",
            Numeric(minimum=0.0, maximum=3.03, default_value=1e-4, unit="A")))
        cmds.append(Command(":SENSe#:VOLTage[:DC]:PROTection:TRIPped",
                            query=self._tripped("CURR")))
        cmds.append(Command(":SENSe#:CURRent[:DC]:PROTection:TRIPped",
                            query=self._tripped("VOLT")))
        for q, key, top in (("VOLTage[:DC]", "VOLT", 210.0), ("CURRent[:DC]", "CURR", 3.03),
                            ("RESistance", "RES", 0.0)):
            set_n, query_n = self._nplc(key)
            cmds.append(Command(f":SENSe#:{q}:NPLCycles", set=set_n, query=query_n,
                                params=[Numeric(minimum=4e-4, maximum=100, default_value=0.1)]))
            if key == "RES":
                continue
            set_r, set_a = self._range(key)
            query_r, query_a = self._range_queries(key)
            cmds.append(Command(f":SENSe#:{q}:RANGe[:UPPer]", set=set_r, query=query_r,
                                params=[Numeric(minimum=-top, maximum=top, unit=key[0])]))
            cmds.append(Command(f":SENSe#:{q}:RANGe:AUTO", set=set_a, query=query_a,
                                params=[Boolean()]))
        function = QuotedChoice(("VOLTage[:DC]", "CURRent[:DC]", "RESistance"),
                                canonical=("VOLT", "CURR", "RES"), variadic=True)
        cmds.append(Command(":SENSe#:FUNCtion[:ON]", set=self._set_functions("on"),
                            query=self._query_functions("on"), params=[function]))
        cmds.append(Command(":SENSe#:FUNCtion:OFF", set=self._set_functions("off"),
                            query=self._query_functions("off"), params=[function]))
        cmds.append(Command(":SENSe#:FUNCtion:ALL", set=self._set_functions("all")))
        cmds.append(self.setting(":SENSe#:REMote", "sens.rem", Boolean(), False))
        # -- output
        cmds.append(Command(":OUTPut#[:STATe]", set=self._set_output,
                            query=lambda c: "1" if self.ch[c.channel].smu.output_on else "0",
                            params=[Boolean()]))
        cmds.append(Command(":OUTPut#:OFF:MODE", set=self._set_off_mode,
                            query=lambda c: self.ch[c.channel].off_mode,
                            params=[Choice(("NORMal", "HIZ", "ZERO"))]))
        cmds.append(Command(
            ":OUTPut#:ON:AUTO",
            set=lambda c: setattr(self.ch[c.channel], "auto_on", bool(c.args[0])),
            query=lambda c: "1" if self.ch[c.channel].auto_on else "0", params=[Boolean()],
        ))
        cmds.append(Command(
            ":OUTPut#:OFF:AUTO",
            set=lambda c: setattr(self.ch[c.channel], "off_auto", bool(c.args[0])),
            query=lambda c: "1" if self.ch[c.channel].off_auto else "0", params=[Boolean()],
        ))
        # -- format
        cmds.append(Command(
            ":FORMat:ELEMents:SENSe", set=self._set_elements,
            query=lambda c: ",".join(self.elements),
            params=[Choice(("VOLTage", "CURRent", "RESistance", "TIME", "STATus", "SOURce"),
                           variadic=True)],
        ))
        cmds.append(self.setting(":FORMat[:DATA]", "form.data",
                                 Choice(("ASCii", "REAL")), "ASC"))
        # -- measurement and trigger
        plain = [("", None), (":VOLTage[:DC]", "VOLT"), (":CURRent[:DC]", "CURR"),
                 (":RESistance", "RES")]
        for suffix, only in plain:
            cmds.append(Command(f":MEASure{suffix}", query=self._data_query("meas", "", only),
                                query_params=[chans]))
        for node, kind in ((":READ", "read"), (":FETCh", "fetch")):
            for suffix, only in [*plain, (":TIME", "TIME"), (":SOURce", "SOUR"),
                                 (":STATus", "STAT")]:
                cmds.append(Command(f"{node}[:SCALar]{suffix}",
                                    query=self._data_query(kind, "latest", only),
                                    query_params=[chans]))
                cmds.append(Command(f"{node}:ARRay{suffix}",
                                    query=self._data_query(kind, "all", only),
                                    query_params=[chans]))
        for header, actions in ((":INITiate[:IMMediate][:ALL]", "ALL"),
                                (":INITiate[:IMMediate]:ACQuire", "ACQ"),
                                (":INITiate[:IMMediate]:TRANsient", "TRAN")):
            cmds.append(Command(header, set=self._initiate(actions), params=[chans]))
        for header, actions in ((":ABORt[:ALL]", "ALL"), (":ABORt:ACQuire", "ACQ"),
                                (":ABORt:TRANsient", "TRAN")):
            cmds.append(Command(header, set=self._aborting(actions), params=[chans]))
        count = Numeric(minimum=1, maximum=100000, integer=True, default_value=1,
                        extra_words={"INF": _INFINITY_COUNT, "INFINITY": _INFINITY_COUNT})
        source = Choice(("AINT", "TIMer"))
        timer = Numeric(minimum=1e-5, maximum=1e5, default_value=1e-4, unit="S")
        # (node, acquire attribute, transient attribute, parameter, reply format)
        settings: list[tuple[str, str, str, Param, Callable[[Any], str]]] = [
            (":TRIGger#{}:COUNt", "count", "tran_count", count, lambda v: f"{v:+d}"),
            (":ARM#{}:COUNt", "arm_count", "tran_arm_count", count, lambda v: f"{v:+d}"),
            (":TRIGger#{}:SOURce", "trigger_source", "tran_source", source, str),
            (":TRIGger#{}:TIMer", "timer_s", "tran_timer_s", timer, self.format_number),
        ]
        for pattern, acq, tran, param, fmt in settings:
            convert: type = str if isinstance(param, Choice) else int if param is count else float
            for layer, attrs in (("[:ALL]", (acq, tran)), (":ACQuire", (acq,)),
                                 (":TRANsient", (tran,))):
                cmds.append(Command(
                    pattern.format(layer), set=self._trigger_setting(attrs, convert),
                    query=self._trigger_query(attrs[0], fmt), params=[param],
                ))
        cmds.append(Command(
            ":TRIGger#:TRANsient:DELay", set=self._trigger_setting(("tran_delay_s",), float),
            query=lambda c: self.format_number(self.ch[c.channel].tran_delay_s),
            params=[Numeric(minimum=0.0, maximum=1e5, default_value=0.0, unit="S")],
        ))
        # -- trace buffer
        cmds.append(Command(":TRACe#:FEED", set=self._trace_feed,
                            query=lambda c: self.ch[c.channel].trace_feed,
                            params=[Choice(("SENSe", "MATH", "LIMit"))]))
        cmds.append(Command(":TRACe#:FEED:CONTrol", set=self._trace_control,
                            query=lambda c: self.ch[c.channel].trace_control,
                            params=[Choice(("NEXT", "NEVer"))]))
        cmds.append(Command(
            ":TRACe#:POINts", set=self._trace_points,
            query=lambda c: f"{self.ch[c.channel].trace_points:+d}",
            params=[Numeric(minimum=1, maximum=TRACE_POINTS_MAX, integer=True,
                            default_value=TRACE_POINTS_MAX)],
        ))
        cmds.append(Command(":TRACe#:POINts:ACTual",
                            query=lambda c: f"{len(self.ch[c.channel].trace):+d}"))
        cmds.append(Command(
            ":TRACe#:FREE",
            query=lambda c: (f"{self.ch[c.channel].trace_points - len(self.ch[c.channel].trace):+d},"
                             f"{self.ch[c.channel].trace_points:+d}"),
        ))
        cmds.append(Command(":TRACe#:CLEar", set=self._trace_clear))
        cmds.append(Command(
            ":TRACe#:DATA", query=self._trace_data,
            query_params=[
                Numeric(minimum=0, maximum=TRACE_POINTS_MAX - 1, integer=True, optional=True,
                        extra_words={"STAR": 0, "START": 0}),
                Numeric(minimum=1, maximum=TRACE_POINTS_MAX, integer=True, optional=True),
            ],
        ))
        # -- system
        cmds.append(Command(":SYSTem:ERRor[:NEXT]",
                            query=lambda c: self.format_error(*self.pop_error())))
        cmds.append(Command(":SYSTem:ERRor:CODE[:NEXT]",
                            query=lambda c: f"{self.pop_error()[0]:+d}"))
        cmds.append(Command(":SYSTem:ERRor:ALL", query=self._all_errors))
        cmds.append(Command(":SYSTem:ERRor:COUNt", query=lambda c: f"{len(self.errors):+d}"))
        cmds.append(Command(":SYSTem:TIME:TIMer:COUNt",
                            query=lambda c: self.format_number(
                                self.clock.now() - self.timer_origin_s)))
        cmds.append(Command(":SYSTem:TIME:TIMer:COUNt:RESet", set=self._reset_timer))
        cmds.append(Command(":SYSTem:LFRequency", query=lambda c: "+60"))
        cmds.append(self.setting(":SYSTem:BEEPer:STATe", "syst.beep", Boolean(), True))
        return cmds

    def _all_errors(self, call: Call) -> str:
        entries = [self.format_error(*self.pop_error())]
        while self.errors:
            entries.append(self.format_error(*self.pop_error()))
        return ",".join(entries)

    def _reset_timer(self, call: Call) -> None:
        self.timer_origin_s = self.clock.now()

    def describe(self) -> dict[int, dict[str, Any]]:
        """A summary of the channels' state (for logs and tests)."""
        return {
            n: {
                "function": c.smu.source_function,
                "output": c.smu.output_on,
                "tripped": c.smu.tripped,
                "off_mode": c.off_mode,
                "off_auto": c.off_auto,
                "acquiring": c.running,
                "transient": c.tran_running,
                "trace_points": len(c.trace),
            }
            for n, c in self.ch.items()
        }
