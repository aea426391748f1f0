"""An emulated Keithley 2450 SourceMeter in SCPI mode, driving simulated cell terminals.

The command set follows the 2450 reference manual (2450-901-01), SCPI command reference: source
function and levels, the voltage limit while sourcing current and its trip query, the sense
function as a quoted string, NPLC and ranges (``[:SENSe[1]]`` is optional, as on the instrument),
output on/off and the output-off state ``:OUTP:<function>:SMOD NORM|HIMP|ZERO|GUAR``, ``:READ?``,
``:MEAS:<function>?``, ``:FETC?``, reading buffers (``:TRAC:ACT?``, ``:TRAC:DATA?`` with buffer
elements, ``:TRAC:CLE``, ``:TRAC:POIN``, ``:TRAC:MAKE``, ``:TRAC:TRIG``), ``:COUNt``, ``:INIT`` /
``:ABOR`` (readings are taken in the background one reading period apart), the trigger model
(``:TRIGger:LOAD "Empty"``, ``:TRIGger:BLOCk:MEASure|DELay:CONStant|BRANch:COUNter|BRANch:ALWays|
SOURce:STATe|CONFig:RECall|BUFFer:CLEar|NOP``, ``:TRIGger:BLOCk:LIST?``, ``:TRIGger:STATe?``; see
:mod:`licycler.sim_instruments.trigger_model`), run on the instrument's own clock, so that a model
ending in a source-output-off block turns the output off when it ends whether or not anyone is
connected, source configuration lists (``:SOURce:CONFiguration:LIST:CREate|STORe|RECall|SIZE?|
CATalog?|DELete``; :mod:`licycler.sim_instruments.source_config`), and the error queue in the
2450's format ``0,"No error;0;0 0"`` /
``-113,"Undefined header;1;<s> <ns>"``.
"""

from __future__ import annotations

import datetime as dt
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from licycler.sim_instruments.interfaces import CellTerminals, Clock
from licycler.sim_instruments.scpi import (
    Boolean,
    Call,
    Choice,
    Command,
    Numeric,
    QuotedChoice,
    Readings,
    ScpiError,
    ScpiInstrument,
    SmuChannel,
    String,
)
from licycler.sim_instruments.source_config import SourceConfigLists
from licycler.sim_instruments.trigger_model import Block, TriggerModel

__all__ = ["Keithley2450"]

_FUNC_UNITS = {"VOLT:DC": "Volt DC", "CURR:DC": "Amp DC", "RES": "Ohm"}
_FUNC_CODES = {"VOLT:DC": 0, "CURR:DC": 1, "RES": 2}
_CODE_FUNCS = {v: k for k, v in _FUNC_CODES.items()}
_ELEMENTS = (
    "DATE",
    "FORMatted",
    "FRACtional",
    "READing",
    "RELative",
    "SEConds",
    "SOURce",
    "SOURFORMatted",
    "SOURSTATus",
    "SOURUNIT",
    "STATus",
    "TIME",
    "TSTamp",
    "UNIT",
)
_STATUS_LIMIT = 0x08  # "source limit reached" flag in a reading's status word


class _Buffer:
    """A reading buffer of ``capacity`` readings, oldest first: columns time (clock s), reading,
    source, status word and function code, in one array that grows by doubling (appending a
    reading costs the same in a full buffer of a million as in an empty one)."""

    _COLUMNS = 5

    def __init__(self, capacity: int, continuous: bool = True) -> None:
        self.capacity = capacity
        self.continuous = continuous
        """CONTinuous fill: the oldest readings make room; ONCE: readings past the capacity are dropped."""
        self._data = np.empty((0, self._COLUMNS))
        self._start = 0
        self._end = 0

    def __len__(self) -> int:
        return self._end - self._start

    def _column(self, k: int) -> npt.NDArray[np.float64]:
        return self._data[self._start : self._end, k]

    @property
    def time_s(self) -> npt.NDArray[np.float64]:
        return self._column(0)

    @property
    def reading(self) -> npt.NDArray[np.float64]:
        return self._column(1)

    @property
    def source(self) -> npt.NDArray[np.float64]:
        return self._column(2)

    @property
    def status(self) -> npt.NDArray[np.float64]:
        return self._column(3)

    @property
    def func(self) -> npt.NDArray[np.float64]:
        return self._column(4)

    def clear(self) -> None:
        self._start = self._end = 0

    def append(self, r: Readings, values: npt.NDArray[np.float64], func: int) -> None:
        status = np.where(r.in_compliance, _STATUS_LIMIT, 0)
        rows = np.column_stack((r.time_s, values, r.source, status, np.full(len(r), func)))
        if not self.continuous:
            rows = rows[: max(self.capacity - len(self), 0)]
        elif rows.shape[0] > self.capacity:
            rows = rows[-self.capacity :]
        n = rows.shape[0]
        if self._end + n > self._data.shape[0]:  # compact the live readings into a larger array
            live = self._data[self._start : self._end]
            grown = np.empty((max(2 * (live.shape[0] + n), 1024), self._COLUMNS))
            grown[: live.shape[0]] = live
            self._data, self._start, self._end = grown, 0, live.shape[0]
        self._data[self._end : self._end + n] = rows
        self._end += n
        if len(self) > self.capacity:
            self._start = self._end - self.capacity


@dataclass
class _Acquisition:
    """A background acquisition started by ``:INIT``: ``count`` readings, one per period."""

    start_s: float
    period_s: float
    count: int
    buffer: str
    taken: int = 0

    @property
    def end_s(self) -> float:
        return self.start_s + self.period_s * self.count


class Keithley2450(ScpiInstrument):
    """The 2450's SCPI command set on a :class:`SmuChannel` (one channel, suffix 1 only)."""

    identity = "KEITHLEY INSTRUMENTS,MODEL 2450,04365704,1.6.4c"
    error_queue_size = 100
    channels = 1
    VOLTAGE_RANGES_V = (0.02, 0.2, 2.0, 20.0, 200.0)
    CURRENT_RANGES_A = (1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0)
    DEFAULT_BUFFER_POINTS = 100_000

    def __init__(
        self,
        cell: CellTerminals,
        clock: Clock,
        *,
        noise: bool = True,
        seed: int = 0,
        epoch_s: float | None = None,
    ) -> None:
        self.smu = SmuChannel(
            cell,
            clock,
            voltage_ranges_v=self.VOLTAGE_RANGES_V,
            current_ranges_a=self.CURRENT_RANGES_A,
            noise=noise,
            seed=seed,
        )
        self.epoch_s = time.time() - clock.now() if epoch_s is None else epoch_s
        """UTC seconds at clock time 0 (for the SEConds/DATE/TIME buffer elements)."""
        self.buffers: dict[str, _Buffer] = {}
        self._acq: _Acquisition | None = None
        self.trigger = TriggerModel()
        self.config_lists = SourceConfigLists()
        """Kept through ``*RST``, as the instrument keeps them until power-off."""
        self.sense_function = "CURR:DC"
        self.count = 1
        self.nplc = {"VOLT:DC": 1.0, "CURR:DC": 1.0, "RES": 1.0}
        self.smode = {"CURR": "NORM", "VOLT": "NORM"}
        super().__init__(clock)
        self.reset()

    # ---------------------------------------------------------------- IEEE 488.2 hooks

    def reset(self) -> None:
        self._acq = None
        self.trigger.reset()
        self.reset_settings()
        self.sense_function = "CURR:DC"
        self.count = 1
        self.nplc = {"VOLT:DC": 1.0, "CURR:DC": 1.0, "RES": 1.0}
        self.smode = {"CURR": "NORM", "VOLT": "NORM"}
        self.buffers = {
            "defbuffer1": _Buffer(self.DEFAULT_BUFFER_POINTS),
            "defbuffer2": _Buffer(self.DEFAULT_BUFFER_POINTS),
        }
        self.smu.update(
            source_function="VOLT",
            current_level_a=0.0,
            voltage_level_v=0.0,
            voltage_limit_v=21.0,
            current_limit_a=1.05e-4,
            output_on=False,
            off_mode="NORM",
            nplc=1.0,
            voltage_range_v=None,
            current_range_a=None,
            readback=True,
        )

    def format_error(self, code: int, message: str) -> str:
        if code == 0:
            return '0,"No error;0;0 0"'
        t = self.epoch_s + self.clock.now()
        seconds = int(t)
        nanos = round((t - seconds) * 1e9)
        return f'{code},"{message};1;{seconds} {nanos}"'

    def format_number(self, value: float) -> str:
        if math.isnan(value):
            return "9.91E+37"
        if math.isinf(value):
            return "9.9E+37" if value > 0 else "-9.9E+37"
        return f"{value:.6E}"

    def extra_common(self, name: str, is_query: bool, tokens: list[str]) -> str | None:
        if name == "LANG":
            if is_query:
                return "SCPI"
            if tokens and tokens[0].upper() in ("SCPI", "TSP", "SCPI2400"):
                return None
            raise ScpiError(-224)
        if name == "TRG":
            return None
        raise ScpiError(-113)

    def pending_until(self) -> float:
        if self.trigger.running:
            return self.trigger.lookahead()[1]
        return self._acq.end_s if self._acq is not None else -math.inf

    def next_event_s(self) -> float:
        """The trigger model's next output change or its end; a simple acquisition's end."""
        if self.trigger.running:
            return min(self.trigger.lookahead())
        return self._acq.end_s if self._acq is not None else math.inf

    def _run_trigger_model(self, now: float) -> None:
        """Apply what the trigger model did by ``now``, in order: readings (taken together while
        nothing else happens between them), output changes at their own times, buffer clears."""
        times: list[float] = []
        into = ""

        def take() -> None:
            if times:
                at = np.maximum(np.asarray(times, dtype=np.float64), self.smu.cell_time_s)
                self._store(into, self.smu.measure(at))
                times.clear()

        for action in self.trigger.run_until(now):
            if action.kind == "measure":
                if action.buffer != into:
                    take()
                    into = action.buffer
                times.append(action.t_s)
                continue
            take()
            if action.kind == "output":
                self.smu.update(at_s=action.t_s, output_on=action.state)
            elif action.kind == "recall":
                self._recall(action.buffer, action.index, at_s=action.t_s)
            else:
                self._buffer(action.buffer).clear()
        take()

    def advance(self) -> None:
        """Store the readings a running acquisition has taken by now, apply what the trigger model
        did by now; run the world to now."""
        now = self.smu.now()
        if self.trigger.running:
            self._run_trigger_model(now)
        acq = self._acq
        if acq is not None:
            due = min(acq.count, math.floor((now - acq.start_s) / acq.period_s + 1e-9))
            if due > acq.taken:
                k = np.arange(acq.taken + 1, due + 1)
                times = np.asarray(acq.start_s + acq.period_s * k, dtype=np.float64)
                self._store(acq.buffer, self.smu.measure(times))
                acq.taken = due
            if acq.taken >= acq.count:
                self._acq = None
        self.smu.advance_to(now)

    # ---------------------------------------------------------------- helpers

    def _buffer(self, name: str | None) -> _Buffer:
        key = "defbuffer1" if name is None else name.strip().lower()
        buf = self.buffers.get(key)
        if buf is None:
            raise ScpiError(-224, "Buffer not found")
        return buf

    def _values_of(self, r: Readings) -> npt.NDArray[np.float64]:
        if self.sense_function == "VOLT:DC":
            return r.voltage_v
        if self.sense_function == "CURR:DC":
            return r.current_a
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.asarray(r.voltage_v / r.current_a, dtype=np.float64)

    def _store(self, buffer: str, r: Readings) -> None:
        self._buffer(buffer).append(r, self._values_of(r), _FUNC_CODES[self.sense_function])

    def _recall(self, name: str, index: int, *, at_s: float | None = None) -> None:
        """Make point ``index`` of configuration list ``name`` the active source settings."""
        point = dict(self.config_lists.point(name, index))
        smode = point.pop("smode")
        assert isinstance(smode, dict)
        self.smode = dict(smode)
        self.smu.update(at_s=at_s, **point, off_mode=self.smode[str(point["source_function"])])

    def _config_list_commands(self) -> list[Command]:
        """``:SOURce:CONFiguration:LIST:...`` (the source configuration lists)."""
        lists = self.config_lists
        name = String(name="list")
        index = Numeric(name="index", minimum=1, maximum=300_000, integer=True, optional=True)

        def opt(call: Call) -> int | None:
            value = call.arg(1)
            return None if value is None else int(value)

        head = ":SOURce#:CONFiguration:LIST"
        return [
            Command(f"{head}:CREate", set=lambda c: lists.create(str(c.args[0])), params=[name]),
            Command(f"{head}:STORe", set=lambda c: lists.store(str(c.args[0]), opt(c), self.smu, self.smode),
                    params=[name, index]),
            Command(f"{head}:RECall", set=lambda c: self._recall(str(c.args[0]), opt(c) or 1), params=[name, index]),
            Command(f"{head}:DELete", set=lambda c: lists.delete(str(c.args[0]), opt(c)), params=[name, index]),
            Command(f"{head}:SIZE", query=lambda c: str(lists.size(str(c.args[0]))), query_params=[name]),
            Command(f"{head}:CATalog", query=lambda c: lists.catalog()),
        ]  # fmt: skip

    def _sync_smu(self) -> None:
        """Push the active function's NPLC and output-off state into the channel."""
        self.smu.update(
            nplc=self.nplc[self.sense_function], off_mode=self.smode[self.smu.source_function]
        )

    def _element(self, buf: _Buffer, i: int, element: str) -> str:
        t = float(buf.time_s[i])
        func = _CODE_FUNCS[int(buf.func[i])]
        src_unit = "Amp DC" if self.smu.source_function == "CURR" else "Volt DC"
        utc = self.epoch_s + t
        if element == "READ":
            return self.format_number(float(buf.reading[i]))
        if element == "REL":
            return f"{t - float(buf.time_s[0]):.9f}"
        if element == "SOUR":
            return self.format_number(float(buf.source[i]))
        if element == "SEC":
            return str(int(utc))
        if element == "FRAC":
            return f"{utc - int(utc):.9f}"
        if element == "STAT":
            return str(int(buf.status[i]))
        if element == "SOURSTAT":
            return str(int(buf.status[i]))
        if element == "UNIT":
            return _FUNC_UNITS[func]
        if element == "SOURUNIT":
            return src_unit
        when = dt.datetime.fromtimestamp(utc, tz=dt.UTC)
        if element == "DATE":
            return when.strftime("%m/%d/%Y")
        if element == "TIME":
            return when.strftime("%H:%M:%S.") + f"{utc - int(utc):.9f}"[2:]
        if element == "TST":
            return when.strftime("%m/%d/%Y %H:%M:%S.") + f"{utc - int(utc):.9f}"[2:]
        if element == "FORM":
            return f"{float(buf.reading[i]):+.5f} {_FUNC_UNITS[func].split()[0][0]}"
        return f"{float(buf.source[i]):+.5f} {src_unit.split()[0][0]}"  # SOURFORM

    def _format(self, buf: _Buffer, start: int, end: int, elements: tuple[str, ...]) -> str:
        els = elements or ("READ",)
        if els == ("READ",):
            return ",".join(self.format_number(float(x)) for x in buf.reading[start:end])
        return ",".join(self._element(buf, i, e) for i in range(start, end) for e in els)

    async def _measure_into(self, buffer: str) -> _Buffer:
        if self._acq is not None or self.trigger.running:
            raise ScpiError(-200, "Trigger model is running")
        buf = self._buffer(buffer)
        readings = self.smu.measure_block(self.count)
        await self.clock.sleep_until(float(readings.time_s[-1]))
        self._store(buffer, readings)
        return buf

    # ---------------------------------------------------------------- command handlers

    async def _read(self, call: Call) -> str:
        buffer = call.arg(0) or "defbuffer1"
        buf = await self._measure_into(buffer)
        return self._format(buf, len(buf) - 1, len(buf), call.arg(1, ()))

    async def _measure(self, call: Call, function: str) -> str:
        self.sense_function = function
        self._sync_smu()
        return await self._read(call)

    def _fetch(self, call: Call) -> str:
        buf = self._buffer(call.arg(0))
        if not len(buf):
            raise ScpiError(-230)
        return self._format(buf, len(buf) - 1, len(buf), call.arg(1, ()))

    def _trace_data(self, call: Call) -> str:
        start, end = int(call.args[0]), int(call.args[1])
        buf = self._buffer(call.arg(2))
        if start > end or end > len(buf):
            raise ScpiError(-222)
        return self._format(buf, start - 1, end, call.arg(3, ()))

    async def _trace_trigger(self, call: Call) -> None:
        await self._measure_into(call.arg(0) or "defbuffer1")

    def _trace_points(self, call: Call) -> None:
        buf = self._buffer(call.arg(1))
        buf.capacity = int(call.args[0])
        buf.clear()

    def _trace_make(self, call: Call) -> None:
        name = str(call.args[0]).strip().lower()
        if name in self.buffers:
            raise ScpiError(-221, "Buffer already exists")
        self.buffers[name] = _Buffer(int(call.args[1]))

    def _trace_delete(self, call: Call) -> None:
        name = str(call.args[0]).strip().lower()
        if name.startswith("defbuffer") or name not in self.buffers:
            raise ScpiError(-224, "Buffer not found")
        del self.buffers[name]

    def _initiate(self, call: Call) -> None:
        if self._acq is not None:
            raise ScpiError(-213)
        if self.trigger.blocks:
            for block in self.trigger.blocks.values():
                if block.kind in ("measure", "buffer_clear"):
                    self._buffer(block.buffer)  # -224 Buffer not found, before anything runs
            self.trigger.start(self.smu.now(), self.smu.reading_period_s)
            return
        period = self.smu.reading_period_s
        self._acq = _Acquisition(self.smu.now(), period, self.count, "defbuffer1")

    def _abort(self, call: Call) -> None:
        self._acq = None
        self.trigger.abort()

    def _recall_block(self, call: Call) -> Block:
        """A ``CONFig:RECall`` block: the list must exist (its point is checked when it runs)."""
        name = str(call.args[1])
        self.config_lists.size(name)
        return Block("config_recall", buffer=name, count=int(call.arg(2, 1) or 1))

    def _trigger_commands(self) -> list[Command]:
        """``:TRIGger:LOAD "Empty"``, the blocks a lease needs and a few more, the model's state."""
        number = Numeric(name="block", minimum=1, maximum=63, integer=True)
        buffer_name = String(name="buffer", optional=True, default="defbuffer1")
        model = self.trigger

        def block(header: str, make: Any, params: list[Any]) -> Command:
            return Command(f":TRIGger:BLOCk:{header}", set=lambda c: model.define(int(c.args[0]), make(c)),
                           params=[number, *params])  # fmt: skip

        def load(call: Call) -> None:
            if str(call.args[0]).strip().lower() != "empty":
                raise ScpiError(-224, "Trigger model template not supported by this emulation")
            model.clear()

        count = Numeric(name="count", minimum=1, maximum=2**31 - 1, integer=True)
        return [
            Command(":TRIGger:LOAD", set=load, params=[String(name="template")]),
            block("MEASure", lambda c: Block("measure", buffer=str(c.args[1]).strip().lower(), count=int(c.args[2])),
                  [buffer_name, Numeric(name="count", minimum=1, maximum=2**31 - 1, integer=True, optional=True,
                                        default=1)]),
            block("DELay:CONStant", lambda c: Block("delay", delay_s=float(c.args[1])),
                  [Numeric(name="delay", minimum=0.0, maximum=10_000.0, unit="S")]),
            block("BRANch:COUNter", lambda c: Block("branch_counter", count=int(c.args[1]), target=int(c.args[2])),
                  [count, number]),
            block("BRANch:ALWays", lambda c: Block("branch_always", target=int(c.args[1])), [number]),
            block("SOURce:STATe", lambda c: Block("source_state", state=bool(c.args[1])), [Boolean()]),
            block("BUFFer:CLEar", lambda c: Block("buffer_clear", buffer=str(c.args[1]).strip().lower()),
                  [buffer_name]),
            block("CONFig:RECall", self._recall_block,
                  [String(name="list"), Numeric(name="index", minimum=1, maximum=300_000, integer=True, optional=True,
                                                default=1)]),
            block("NOP", lambda c: Block("nop"), []),
            Command(":TRIGger:BLOCk:LIST", query=lambda c: model.listing()),
            Command(":TRIGger:STATe", query=lambda c: model.query_state()),
        ]  # fmt: skip

    def _set_output(self, call: Call) -> None:
        self.smu.update(output_on=bool(call.args[0]))

    def _query_smode(self, function: str) -> Callable[[Call], str]:
        return lambda call: self.smode[function]

    def _measure_function(self, function: str) -> Callable[[Call], Awaitable[str]]:
        return lambda call: self._measure(call, function)

    def _set_smode(self, function: str) -> Any:
        def handler(call: Call) -> None:
            self.smode[function] = call.args[0]
            self._sync_smu()

        return handler

    def _range(self, quantity: str) -> Any:
        ranges = self.VOLTAGE_RANGES_V if quantity == "VOLT" else self.CURRENT_RANGES_A
        attr = "voltage_range_v" if quantity == "VOLT" else "current_range_a"

        def set_range(call: Call) -> None:
            value = abs(float(call.args[0]))
            chosen = next((r for r in ranges if r >= value * (1 - 1e-9)), ranges[-1])
            self.smu.update(**{attr: chosen})

        def query_range(call: Call) -> str:
            fixed = getattr(self.smu, attr)
            return self.format_number(fixed if fixed is not None else ranges[-2])

        def set_auto(call: Call) -> None:
            if call.args[0]:
                self.smu.update(**{attr: None})
            elif getattr(self.smu, attr) is None:
                self.smu.update(**{attr: ranges[-2]})

        def query_auto(call: Call) -> str:
            return "1" if getattr(self.smu, attr) is None else "0"

        return set_range, query_range, set_auto, query_auto

    def _nplc(self, function: str) -> tuple[Any, Any]:
        def set_(call: Call) -> None:
            self.nplc[function] = float(call.args[0])
            self._sync_smu()

        def query(call: Call) -> str:
            return self.format_number(self.nplc[function])

        return set_, query

    def _level(self, header: str, attr: str, param: Numeric) -> Command:
        def set_(call: Call) -> None:
            self.smu.update(**{attr: float(call.args[0])})

        def query(call: Call) -> str:
            which = call.arg(0)
            if which == "MIN":
                return self.format_number(param.minimum)
            if which == "MAX":
                return self.format_number(param.maximum)
            if which == "DEF":
                return self.format_number(param.default_value or 0.0)
            return self.format_number(float(getattr(self.smu, attr)))

        return Command(
            header, set=set_, query=query, params=[param],
            query_params=[Choice(("MINimum", "MAXimum", "DEFault"), optional=True)],
        )

    def _set_source_function(self, call: Call) -> None:
        self.smu.update(source_function=call.args[0])
        self._sync_smu()

    def _set_sense_function(self, call: Call) -> None:
        self.sense_function = call.args[0]
        self._sync_smu()

    def build_commands(self) -> list[Command]:
        smu = self.smu
        buffer_name = String(name="buffer", optional=True)
        elements = Choice(_ELEMENTS, name="elements", optional=True, default=(), variadic=True)
        read_params = [buffer_name, elements]
        cmds: list[Command] = []

        def level(header: str, attr: str, param: Numeric) -> None:
            cmds.append(self._level(header, attr, param))

        # -- source
        cmds.append(Command(
            ":SOURce#:FUNCtion[:MODE]",
            set=self._set_source_function,
            query=lambda c: smu.source_function,
            params=[Choice(("CURRent", "VOLTage"))],
        ))
        level(":SOURce#:CURRent[:LEVel][:IMMediate][:AMPLitude]", "current_level_a",
              Numeric(minimum=-1.05, maximum=1.05, default_value=0.0, unit="A"))
        level(":SOURce#:VOLTage[:LEVel][:IMMediate][:AMPLitude]", "voltage_level_v",
              Numeric(minimum=-210.0, maximum=210.0, default_value=0.0, unit="V"))
        level(":SOURce#:CURRent:VLIMit[:LEVel]", "voltage_limit_v",
              Numeric(minimum=0.02, maximum=210.0, default_value=21.0, unit="V"))
        level(":SOURce#:VOLTage:ILIMit[:LEVel]", "current_limit_a",
              Numeric(minimum=1e-9, maximum=1.05, default_value=1.05e-4, unit="A"))
        cmds.append(Command(
            ":SOURce#:CURRent:VLIMit[:LEVel]:TRIPped",
            query=lambda c: "1" if smu.tripped and smu.source_function == "CURR" else "0",
        ))
        cmds.append(Command(
            ":SOURce#:VOLTage:ILIMit[:LEVel]:TRIPped",
            query=lambda c: "1" if smu.tripped and smu.source_function == "VOLT" else "0",
        ))
        for q, top in (("CURRent", 1.05), ("VOLTage", 210.0)):
            cmds.append(self.setting(f":SOURce#:{q}:RANGe", f"sour.{q}.rang",
                                     Numeric(minimum=-top, maximum=top, unit=q[0]), top))
            cmds.append(self.setting(f":SOURce#:{q}:RANGe:AUTO", f"sour.{q}.rang.auto",
                                     Boolean(), True))
            cmds.append(Command(
                f":SOURce#:{q}:READ:BACK",
                set=lambda c: smu.update(readback=bool(c.args[0])),
                query=lambda c: "1" if smu.readback else "0",
                params=[Boolean()],
            ))
            cmds.append(self.setting(f":SOURce#:{q}:DELay", f"sour.{q}.del",
                                     Numeric(minimum=0, maximum=10000, unit="S"), 0.0))
            cmds.append(self.setting(f":SOURce#:{q}:DELay:AUTO", f"sour.{q}.del.auto",
                                     Boolean(), True))
        # -- sense
        cmds.append(Command(
            "[:SENSe#]:FUNCtion[:ON]",
            set=self._set_sense_function,
            query=lambda c: f'"{self.sense_function}"',
            params=[QuotedChoice(("VOLTage[:DC]", "CURRent[:DC]", "RESistance"),
                                 canonical=("VOLT:DC", "CURR:DC", "RES"))],
        ))
        for q, func in (("VOLTage", "VOLT:DC"), ("CURRent", "CURR:DC")):
            set_r, query_r, set_a, query_a = self._range(q[:4].upper())
            top = 210.0 if q == "VOLTage" else 1.05
            cmds.append(Command(f"[:SENSe#]:{q}[:DC]:RANGe[:UPPer]", set=set_r, query=query_r,
                                params=[Numeric(minimum=-top, maximum=top, unit=q[0])]))
            cmds.append(Command(f"[:SENSe#]:{q}[:DC]:RANGe:AUTO", set=set_a, query=query_a,
                                params=[Boolean()]))
            set_n, query_n = self._nplc(func)
            cmds.append(Command(f"[:SENSe#]:{q}[:DC]:NPLCycles", set=set_n, query=query_n,
                                params=[Numeric(minimum=0.01, maximum=10, default_value=1.0)]))
            cmds.append(self.setting(f"[:SENSe#]:{q}[:DC]:RSENse", f"sens.{q}.rsen",
                                     Boolean(), False))
        set_n, query_n = self._nplc("RES")
        cmds.append(Command("[:SENSe#]:RESistance:NPLCycles", set=set_n, query=query_n,
                            params=[Numeric(minimum=0.01, maximum=10, default_value=1.0)]))
        cmds.append(Command(
            "[:SENSe#]:COUNt",
            set=lambda c: setattr(self, "count", int(c.args[0])),
            query=lambda c: str(self.count),
            params=[Numeric(minimum=1, maximum=300000, integer=True, default_value=1)],
        ))
        # -- output
        cmds.append(Command(":OUTPut#[:STATe]", set=self._set_output,
                            query=lambda c: "1" if smu.output_on else "0", params=[Boolean()]))
        for q, key in (("CURRent", "CURR"), ("VOLTage", "VOLT")):
            cmds.append(Command(
                f":OUTPut#:{q}:SMODe", set=self._set_smode(key),
                query=self._query_smode(key),
                params=[Choice(("NORMal", "HIMPedance", "ZERO", "GUARd"))],
            ))
        # -- readings
        cmds.append(Command(":READ", query=self._read, query_params=read_params))
        cmds.append(Command(":FETCh", query=self._fetch, query_params=read_params))
        cmds.append(Command(":MEASure", query=self._read, query_params=read_params))
        for q, func in (("VOLTage[:DC]", "VOLT:DC"), ("CURRent[:DC]", "CURR:DC"),
                        ("RESistance", "RES")):
            cmds.append(Command(f":MEASure:{q}",
                                query=self._measure_function(func),
                                query_params=read_params))
        # -- buffers
        cmds.append(Command(":TRACe:ACTual", query=lambda c: str(len(self._buffer(c.arg(0)))),
                            query_params=[buffer_name]))
        cmds.append(Command(":TRACe:ACTual:STARt",
                            query=lambda c: "1" if len(self._buffer(c.arg(0))) else "0",
                            query_params=[buffer_name]))
        cmds.append(Command(":TRACe:ACTual:END", query=lambda c: str(len(self._buffer(c.arg(0)))),
                            query_params=[buffer_name]))
        cmds.append(Command(":TRACe:CLEar", set=lambda c: self._buffer(c.arg(0)).clear(),
                            params=[buffer_name]))
        cmds.append(Command(":TRACe:POINts", set=self._trace_points,
                            query=lambda c: str(self._buffer(c.arg(0)).capacity),
                            params=[Numeric(minimum=1, maximum=11_000_000, integer=True),
                                    buffer_name],
                            query_params=[buffer_name]))
        cmds.append(Command(":TRACe:MAKE", set=self._trace_make,
                            params=[String(name="name"),
                                    Numeric(minimum=1, maximum=11_000_000, integer=True),
                                    Choice(("STANdard", "COMPact", "FULL", "WRITable",
                                            "FULLWRITable"), optional=True)]))
        cmds.append(Command(":TRACe:DELete", set=self._trace_delete, params=[String()]))
        cmds.append(Command(
            ":TRACe:FILL:MODE",
            set=lambda c: setattr(self._buffer(c.arg(1)), "continuous", c.args[0] == "CONT"),
            query=lambda c: "CONT" if self._buffer(c.arg(0)).continuous else "ONCE",
            params=[Choice(("CONTinuous", "ONCE")), buffer_name], query_params=[buffer_name],
        ))
        cmds.append(Command(
            ":TRACe:DATA", query=self._trace_data,
            query_params=[Numeric(minimum=1, maximum=11_000_000, integer=True),
                          Numeric(minimum=1, maximum=11_000_000, integer=True),
                          buffer_name, elements],
        ))
        cmds.append(Command(":TRACe:TRIGger", set=self._trace_trigger, params=[buffer_name]))
        # -- trigger model
        cmds.append(Command(":INITiate[:IMMediate]", set=self._initiate))
        cmds.append(Command(":ABORt", set=self._abort))
        cmds.extend(self._trigger_commands())
        cmds.extend(self._config_list_commands())
        # -- system
        cmds.append(Command(":SYSTem:ERRor[:NEXT]",
                            query=lambda c: self.format_error(*self.pop_error())))
        cmds.append(Command(":SYSTem:ERRor:CODE[:NEXT]",
                            query=lambda c: str(self.pop_error()[0])))
        cmds.append(Command(":SYSTem:ERRor:COUNt", query=lambda c: str(len(self.errors))))
        cmds.append(Command(":SYSTem:CLEar", set=lambda c: self.errors.clear()))
        cmds.append(Command(":SYSTem:LFRequency", query=lambda c: "60"))
        cmds.append(Command(":SYSTem:VERSion", query=lambda c: "1999.0"))
        cmds.append(Command(":SYSTem:BEEPer[:IMMediate]", set=lambda c: None,
                            params=[Numeric(minimum=20, maximum=8000), Numeric(minimum=0.001,
                                                                              maximum=100)]))
        cmds.append(self.setting(":ROUTe:TERMinals", "rout.term", Choice(("FRONt", "REAR")),
                                 "FRON"))
        cmds.append(self.setting(":FORMat[:DATA]", "form.data",
                                 Choice(("ASCii", "REAL", "SREal")), "ASC"))
        return cmds
