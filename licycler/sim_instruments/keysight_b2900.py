"""An emulated Keysight B2901A/B2902A precision source/measure unit driving simulated cells.

The command set follows the B2900 SCPI command reference: ``[:SOURce[c]]`` optional with channel
suffixes (``:SOUR2:CURR``), channel lists ``(@1)``, ``(@1,2)``, ``(@1:2)`` on the measurement and
trigger commands (no list means channel 1), ``:SOUR:FUNC:MODE CURR|VOLT``, the compliance
``:SENS:VOLT:PROT`` (2 V after reset) and ``:SENS:VOLT:PROT:TRIP?``, ``:OUTP:OFF:MODE
NORM|HIZ|ZERO``, ``:OUTP:ON:AUTO`` (on after reset: ``:INIT``, ``:READ?`` and ``:MEAS?`` switch the
output on by themselves), ``:FORM:ELEM:SENS`` (elements always in the order VOLT, CURR, RES, TIME,
STAT, SOUR; all six until set), ``+9.910000E+37`` for "no data" (a function not enabled), and the
error queue format ``+0,"No error"``.
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


@dataclass
class _Channel:
    smu: SmuChannel
    functions: set[str] = field(default_factory=lambda: {"VOLT", "CURR"})
    nplc: dict[str, float] = field(default_factory=dict)
    auto_on: bool = True
    off_mode: str = "NORM"
    count: int = 1
    acq_start_s: float = 0.0
    acq_period_s: float = 0.0
    acq_count: int = 0
    acq_taken: int = 0
    running: bool = False
    data: list[Readings] = field(default_factory=list)

    @property
    def acq_end_s(self) -> float:
        return self.acq_start_s + self.acq_period_s * self.acq_count


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
            c.running = False
            c.data = []
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
        return max(ends) if ends else -math.inf

    def advance(self) -> None:
        for c in self.ch.values():
            now = c.smu.now()
            if c.running:
                due = min(c.acq_count, math.floor((now - c.acq_start_s) / c.acq_period_s + 1e-9))
                if due > c.acq_taken:
                    k = np.arange(c.acq_taken + 1, due + 1)
                    times = np.asarray(c.acq_start_s + c.acq_period_s * k, dtype=np.float64)
                    c.data.append(c.smu.measure(times))
                    c.acq_taken = due
                if c.acq_taken >= c.acq_count:
                    c.running = False
            c.smu.advance_to(now)

    # ---------------------------------------------------------------- measuring

    def _start(self, channels: tuple[int, ...], count: int | None = None) -> None:
        for n in channels:
            c = self.ch[n]
            if c.running:
                raise ScpiError(-213)
            if c.auto_on and not c.smu.output_on:
                c.smu.update(output_on=True)
            c.data = []
            c.running = True
            c.acq_start_s = c.smu.now()
            c.acq_period_s = c.smu.reading_period_s
            c.acq_count = c.count if count is None else count
            c.acq_taken = 0

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
        t = np.concatenate([r.time_s for r in c.data])
        v = np.concatenate([r.voltage_v for r in c.data])
        i = np.concatenate([r.current_a for r in c.data])
        s = np.concatenate([r.source for r in c.data])
        comp = np.concatenate([r.in_compliance for r in c.data])
        if which == "latest":
            t, v, i, s, comp = t[-1:], v[-1:], i[-1:], s[-1:], comp[-1:]
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
        c.smu.update(output_on=bool(call.args[0]), off_mode=c.off_mode)

    def _set_off_mode(self, call: Call) -> None:
        c = self.ch[call.channel]
        c.off_mode = call.args[0]
        c.smu.update(off_mode=c.off_mode)

    def _set_elements(self, call: Call) -> None:
        chosen = set(call.args[0])
        self.elements = tuple(e for e in _ELEMENT_ORDER if e in chosen)

    def _set_count(self, call: Call) -> None:
        self.ch[call.channel].count = int(call.args[0])

    def _abort(self, call: Call) -> None:
        for n in call.arg(0) or tuple(self.ch):
            self.ch[n].running = False

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
        cmds.append(self._smu_attr(
            "[:SOURce#]:CURRent[:LEVel][:IMMediate][:AMPLitude]", "current_level_a",
            Numeric(minimum=-3.03, maximum=3.03, default_value=0.0, unit="A")))
        cmds.append(self._smu_attr(
            "[:SOURce#]:VOLTage[:LEVel][:IMMediate][:AMPLitude]", "voltage_level_v",
            Numeric(minimum=-210, maximum=210, default_value=0.0, unit="V")))
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
        cmds.append(self.setting(":OUTPut#:OFF:AUTO", "outp.off.auto", Boolean(), False))
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
        for header in (":INITiate[:IMMediate][:ALL]", ":INITiate[:IMMediate]:ACQuire",
                       ":INITiate[:IMMediate]:TRANsient"):
            cmds.append(Command(header, set=lambda c: self._start(c.arg(0) or (1,)),
                                params=[chans]))
        for header in (":ABORt[:ALL]", ":ABORt:ACQuire", ":ABORt:TRANsient"):
            cmds.append(Command(header, set=self._abort, params=[chans]))
        count = Numeric(minimum=1, maximum=100000, integer=True, default_value=1)
        for header in (":TRIGger#[:ALL]:COUNt", ":TRIGger#:ACQuire:COUNt"):
            cmds.append(Command(header, set=self._set_count,
                                query=lambda c: f"{self.ch[c.channel].count:+d}",
                                params=[count]))
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
            }
            for n, c in self.ch.items()
        }
