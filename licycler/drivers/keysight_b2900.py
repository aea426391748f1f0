"""One channel of a Keysight B2901A/B2902A SMU as a galvanostat (:class:`SourceMeasureChannel`).

Commands (B2900 SCPI command reference), each written once below, with the channel suffix ``c``
and channel list ``(@c)``: ``:SOUR<c>:FUNC:MODE CURR``, ``:SOUR<c>:CURR <A>``,
``:SOUR<c>:CURR:RANG``/``:RANG:AUTO ON``, ``:SENS<c>:VOLT:PROT <V>`` (compliance, read back) and
``:SENS<c>:VOLT:PROT:TRIP?``, ``:SENS<c>:FUNC "VOLT","CURR"``, ``:SENS<c>:VOLT:RANG``, NPLC,
``:OUTP<c>:OFF:MODE HIZ`` (read back), ``:OUTP<c>:ON:AUTO 0`` (a measurement must never switch the
output on by itself), ``:FORM:ELEM:SENS VOLT,CURR,TIME``, ``:MEAS? (@c)``, ``:OUTP<c> ON|OFF``,
``:SYST:ERR?`` (``+0,"No error"``). ``+9.910000E+37`` ("no data") is read as NaN.

Two channels of a B2902A are two drivers sharing one :class:`VisaTransport` (one lock, one
connection). :meth:`KeysightB2900.read_block` takes one spot measurement; time is the
instrument's timestamp (seconds of its timer, ``TIME`` element) plus the driver's time base.

The lease (:class:`~licycler.drivers.interfaces.LeasedChannel`, docs/lease-b2900.md): a finite
acquire trigger whose end turns the output off. ``:TRIG<c>:ACQ:SOUR TIM``, ``:TRIG<c>:ACQ:TIM
<period>``, ``:TRIG<c>:ACQ:COUN <N>`` (N = floor(duration / period), 1 to 100000), ``:ARM<c>:ACQ:COUN
1``, ``:OUTP<c>:OFF:MODE HIZ`` and ``:OUTP<c>:OFF:AUTO ON`` (the output goes off when the channel
changes from busy to idle), the readings into the trace buffer (``:TRAC<c>:FEED SENS``,
``:TRAC<c>:FEED:CONT NEXT``, ``:TRAC<c>:POIN 100000``), ``:INIT:ACQ (@c)``. Re-arming is one program
message, so that the sourced current never stops: the guard ``:OUTP<c>:OFF:AUTO OFF`` first (the abort
that follows makes the channel idle, which would turn the output off), ``:ABOR:ACQ (@c)``, the
trigger settings, ``:INIT:ACQ (@c)``, ``:OUTP<c>:OFF:AUTO ON``, then the queries that prove it took
(``:OUTP<c>:OFF:AUTO?``, ``:OUTP<c>?``, ``:SYST:ERR?``). While leased, :meth:`read_block` reads the new
trace entries (``:TRAC<c>:POIN:ACT?;:TRAC<c>:DATA? <k-1>``: one round trip, the first entry being the
last one already returned, which checks that the trace was not changed behind the driver's back),
never ``:MEAS?`` (refused while the acquire trigger runs).

The rest (``setpoint_s``, :attr:`KeysightB2900.lease_rests`): a transient action started with the
acquisition (``:INIT (@c)``, both actions) changes the output once, ``:TRIG<c>:TRAN:DEL <d>`` after the
start, to the triggered level ``:SOUR<c>:CURR:TRIG 0`` (``:SOUR<c>:CURR:MODE FIX``,
``:TRIG<c>:TRAN:SOUR AINT``, ``:TRIG<c>:TRAN:COUN 1``, ``:ARM<c>:TRAN:COUN 1``), while the timed
readings go on to N and the output goes off when the channel goes idle. d = (k + 1/2) x period, k the
index of the first reading at or after ``setpoint_s`` (at least 1): the switch falls half a period
after that reading. A re-arm aborts the transient too (``:ABOR:TRAN (@c)``) and puts the level this
driver last set back (``:SOUR<c>:CURR <A>``) before starting again, in the same line. While a rest is
armed, :meth:`KeysightB2900.set_current` sends ``:SOUR<c>:CURR:TRIG 0`` after the new level (whether
setting the immediate level also sets the triggered one is not known; either way the rest stays 0 A).
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from licycler.drivers.errors import DriverError, InstrumentReportedError
from licycler.drivers.interfaces import OutputOffMode, SampleBlock
from licycler.drivers.scpi import (
    ScpiDriver,
    expect_numbers,
    format_number,
    parse_error_entry,
    parse_int,
    parse_numbers,
)
from licycler.drivers.transport import VisaTransport

__all__ = ["KeysightB2900"]

_OFF_MODES = {
    OutputOffMode.HIGH_IMPEDANCE: "HIZ",
    OutputOffMode.NORMAL: "NORM",
    OutputOffMode.ZERO: "ZERO",
}
MAX_CURRENT_A = 3.03
VOLTAGE_LIMIT_RANGE_V = (0.0, 210.0)
NPLC_RANGE = (4e-4, 100.0)
TIMER_RANGE_S = (1e-5, 1e5)
"""``:TRIGger:ACQuire:TIMer`` interval, s."""
MAX_TRIGGER_COUNT = 100_000
TRANSIENT_DELAY_RANGE_S = (0.0, 1e5)
"""``:TRIGger:TRANsient:DELay``, s."""
TRACE_POINTS = 100_000
"""Size of a channel's trace buffer (``:TRACe:POINts`` maximum), readings."""
_ROW = 3  # VOLT, CURR, TIME per reading (:FORM:ELEM:SENS VOLT,CURR,TIME)


class KeysightB2900(ScpiDriver):
    """Channel ``channel`` (1 or 2) of a B2901A/B2902A used as a current source sensing voltage."""

    manufacturers = ("KEYSIGHT", "AGILENT")
    models = ("B2901", "B2902", "B2911", "B2912")
    lease_mechanism = (
        "B2900 finite acquire trigger (:TRIG:ACQ:SOUR TIM, :TRIG:ACQ:COUN N) with :OUTP:OFF:AUTO ON"
        " and :OUTP:OFF:MODE HIZ, re-armed in one line :OUTP:OFF:AUTO OFF;:ABOR:ACQ;...;"
        ":INIT:ACQ;:OUTP:OFF:AUTO ON; readings in the trace buffer (:TRAC:FEED:CONT NEXT); the rest"
        " at the step's end a transient :SOUR:CURR:TRIG 0 after :TRIG:TRAN:DEL, started with it (:INIT)"
    )
    lease_rests = True

    def __init__(
        self, transport: VisaTransport, *, channel: int = 1, name: str | None = None
    ) -> None:
        if channel not in (1, 2):
            raise ValueError(f"channel must be 1 or 2, got {channel}")
        super().__init__(transport, name=name)
        self.channel = channel
        self.off_mode = OutputOffMode.HIGH_IMPEDANCE
        self.timer_offset_s = 0.0
        """Reported time = the instrument's TIME element (its timer, s) + this, s."""
        self._lease_n: int | None = None  # readings of the lease in force (None: not leased)
        self._lease_may_run = True  # a lease (ours or a dead controller's) may be running: released first
        self._next: int | None = None  # trace index of the first entry not returned yet
        self._last_time: float | None = None  # TIME of the entry at _next - 1
        self._known_count = 0  # entries in the trace when last seen
        self._pending: list[npt.NDArray[np.float64]] = []  # rows fetched by a clearing re-arm
        self._level_a: float | None = None  # the level last set (set_current), A
        self._rest_armed = False  # a lease of this driver rests (its transient may be pending or done)
        self._rest_may_run = True  # a rest (ours or a dead controller's) may be armed: aborted first

    @classmethod
    def for_resource(
        cls,
        resource: str,
        *,
        channel: int = 1,
        name: str | None = None,
        timeout_s: float = 2.0,
        retries: int = 2,
        reconnect_backoff_s: float = 0.2,
    ) -> KeysightB2900:
        """A driver on a new transport to ``resource`` (not opened yet: ``await connect()``)."""
        label = name or f"Keysight B2900 channel {channel} at {resource}"
        transport = VisaTransport(
            resource, name=label, timeout_s=timeout_s, retries=retries,
            reconnect_backoff_s=reconnect_backoff_s,
        )
        return cls(transport, channel=channel, name=label)

    async def connect(self) -> str:
        identity = await super().connect()
        model = identity.split(",")[1].strip().upper() if "," in identity else ""
        if self.channel == 2 and model.startswith(("B2901", "B2911")):
            raise DriverError(self.name, "*IDN?", f"{model} has no channel 2")
        return identity

    # ---------------------------------------------------------------- configuration

    async def configure_current_source(
        self,
        *,
        voltage_limit_v: float,
        current_range_a: float | None = None,
        voltage_range_v: float | None = None,
        nplc: float = 1.0,
        off_mode: OutputOffMode = OutputOffMode.HIGH_IMPEDANCE,
    ) -> None:
        lo, hi = VOLTAGE_LIMIT_RANGE_V
        if not lo < voltage_limit_v <= hi:
            raise ValueError(f"voltage_limit_v must be in ({lo}, {hi}] V, got {voltage_limit_v}")
        if not NPLC_RANGE[0] <= nplc <= NPLC_RANGE[1]:
            raise ValueError(f"nplc must be in {NPLC_RANGE}, got {nplc}")
        c = self.channel
        commands = [
            f":OUTP{c}:ON:AUTO 0",
            f":SOUR{c}:FUNC:MODE CURR",
            f":SOUR{c}:CURR:RANG:AUTO ON" if current_range_a is None
            else f":SOUR{c}:CURR:RANG {format_number(current_range_a)}",
            f":SENS{c}:VOLT:PROT {format_number(voltage_limit_v)}",
            f':SENS{c}:FUNC "VOLT","CURR"',
            f":SENS{c}:VOLT:RANG:AUTO ON" if voltage_range_v is None
            else f":SENS{c}:VOLT:RANG {format_number(voltage_range_v)}",
            f":SENS{c}:VOLT:NPLC {format_number(nplc)}",
            f":SENS{c}:CURR:NPLC {format_number(nplc)}",
            f":OUTP{c}:OFF:MODE {_OFF_MODES[off_mode]}",
            ":FORM:ELEM:SENS VOLT,CURR,TIME",
        ]
        for command in commands:
            await self.transport.write(command, idempotent=True)
        await self.check_errors("configure_current_source")
        limit = await self.query_number(f":SENS{c}:VOLT:PROT?")
        if not abs(limit - voltage_limit_v) <= 1e-6 * max(1.0, abs(voltage_limit_v)):
            raise DriverError(
                self.name, f":SENS{c}:VOLT:PROT?",
                f"compliance reads back {limit} V, expected {voltage_limit_v} V",
            )
        mode = (await self.transport.query(f":OUTP{c}:OFF:MODE?")).strip().upper()
        if mode != _OFF_MODES[off_mode]:
            raise DriverError(
                self.name, f":OUTP{c}:OFF:MODE?",
                f"output-off mode reads back {mode!r}, expected {_OFF_MODES[off_mode]}",
            )
        if await self.query_bool(f":OUTP{c}:ON:AUTO?"):
            raise DriverError(self.name, f":OUTP{c}:ON:AUTO?", "auto output-on is still enabled")
        self.off_mode = off_mode

    # ---------------------------------------------------------------- source and output

    async def set_current(self, current_a: float) -> None:
        if not abs(current_a) <= MAX_CURRENT_A:
            raise ValueError(f"current_a must be within +-{MAX_CURRENT_A} A, got {current_a}")
        c = self.channel
        command = f":SOUR{c}:CURR {format_number(current_a)}"
        if self._rest_armed:  # the rest stays 0 A, whether or not the triggered level follows
            command += f";:SOUR{c}:CURR:TRIG 0"
        await self.transport.write(command, idempotent=True)
        self._level_a = current_a

    async def output_on(self) -> None:
        await self.transport.write(f":OUTP{self.channel} ON", idempotent=True)

    async def output_off(self) -> None:
        await self.transport.write(f":OUTP{self.channel} OFF", idempotent=True)

    async def output_enabled(self) -> bool:
        return await self.query_bool(f":OUTP{self.channel}?")

    async def voltage_limit_tripped(self) -> bool:
        return await self.query_bool(f":SENS{self.channel}:VOLT:PROT:TRIP?")

    async def safe_state(self) -> None:
        """Release the lease if one may run (:meth:`release_lease`), then off mode HIZ (read back
        before the output goes off), 0 A, output off (read back)."""
        c = self.channel
        if self._lease_may_run:
            await self.release_lease()
        await self.confirm((f":OUTP{c}:OFF:MODE HIZ",), f":OUTP{c}:OFF:MODE?", "HIZ")
        await self.confirm((f":SOUR{c}:CURR 0", f":OUTP{c} OFF"), f":OUTP{c}?", "0")
        self._level_a = 0.0
        self.off_mode = OutputOffMode.HIGH_IMPEDANCE

    # ---------------------------------------------------------------- readings

    async def read_block(self) -> SampleBlock:
        """One spot measurement ``:MEAS? (@c)``: voltage, current, instrument time; while a lease
        runs, the trace entries taken since the previous call instead (possibly none)."""
        if self._lease_n is not None:
            return self._block(await self._new_entries())
        values = await self.transport.query_as(
            f":MEAS? (@{self.channel})", expect_numbers(3)
        )
        rows = values.reshape(1, _ROW)
        if self._pending:  # trace entries a released lease left unread come first
            rows = np.concatenate([*self._pending, rows])
            self._pending = []
        return self._block(rows)

    def _block(self, rows: npt.NDArray[np.float64]) -> SampleBlock:
        return SampleBlock(
            time_s=rows[:, 2] + self.timer_offset_s,
            voltage_v=np.ascontiguousarray(rows[:, 0]),
            current_a=np.ascontiguousarray(rows[:, 1]),
        )

    # ---------------------------------------------------------------- the lease

    async def arm_lease(
        self, duration_s: float, read_period_s: float, setpoint_s: float | None = None
    ) -> None:
        """Arm (or re-arm, without a gap in the sourced current) a lease of ``duration_s`` (s)
        reading every ``read_period_s`` (s): N = floor(duration / period) timer-triggered readings
        into the trace, then the output goes off in high impedance by itself.

        ``setpoint_s`` (s from now): the level holds up to and including reading k, the first at or
        after it (k = ceil(setpoint_s / period), at least 1), and a transient action sets 0 A half a
        period later (``:TRIG:TRAN:DEL (k + 1/2) x period``); when k >= N the lease ends first and no
        transient is armed (as with None). A re-arm aborts a rest armed before and puts the level
        last set by :meth:`set_current` back. Raises ValueError for a negative or non-finite
        ``setpoint_s``, or a rest further than the transient delay can reach (1E+5 s).

        Raises DriverError if the output is off after arming (a lease that already ran out: the
        instrument turned the output off, and arming does not turn it on again), and
        InstrumentReportedError if the instrument queued an error for the line. When the trace
        could not hold the new lease's N readings, it is cleared inside the re-arm line after the
        entries not yet returned are fetched (they come first in the next :meth:`read_block`)."""
        lo, hi = TIMER_RANGE_S
        if not lo <= read_period_s <= hi:
            raise ValueError(f"read_period_s must be in [{lo}, {hi}] s, got {read_period_s}")
        n = math.floor(duration_s / read_period_s + 1e-9)
        if not 1 <= n <= MAX_TRIGGER_COUNT:
            raise ValueError(
                f"duration_s / read_period_s must give 1 to {MAX_TRIGGER_COUNT} readings, got {n}"
            )
        rest_delay_s: float | None = None
        if setpoint_s is not None:
            if not (math.isfinite(setpoint_s) and setpoint_s >= 0):
                raise ValueError(f"setpoint_s must be finite and >= 0, got {setpoint_s}")
            k = max(1, math.ceil(setpoint_s / read_period_s - 1e-9))
            if k < n:
                rest_delay_s = (k + 0.5) * read_period_s
                if rest_delay_s > TRANSIENT_DELAY_RANGE_S[1]:
                    raise ValueError(
                        f"setpoint_s {setpoint_s} s: the rest would start {rest_delay_s} s from now,"
                        f" beyond the transient delay's {TRANSIENT_DELAY_RANGE_S[1]:g} s"
                    )
        c = self.channel
        setup: list[str] = []
        if self._next is None:
            setup = await self._adopt_trace()
        could_hold = self._known_count + (self._lease_n or 0) if self._lease_may_run else (
            self._known_count
        )
        clear = bool(setup) or could_hold + n > TRACE_POINTS
        if clear and not setup and not self._next:
            # the line fetches from the last entry returned: read what is there first (if the
            # trace is still empty, it needs no clearing)
            self._pending = [await self._new_entries()]
            clear = bool(self._next)
        fetching = clear and not setup
        fetch_from = (self._next or 1) - 1
        units = [
            f":OUTP{c}:OFF:MODE HIZ",
            # the window: from here to OFF:AUTO ON the output is on without a lease
            f":OUTP{c}:OFF:AUTO OFF",
            f":ABOR:ACQ (@{c})",
        ]
        if self._rest_may_run:  # a rest armed before: stopped, and the setpoint back
            units.append(f":ABOR:TRAN (@{c})")
            if self._level_a is not None:
                units.append(f":SOUR{c}:CURR {format_number(self._level_a)}")
        if rest_delay_s is not None:
            units += [
                f":SOUR{c}:CURR:MODE FIX",
                f":SOUR{c}:CURR:TRIG 0",
                f":TRIG{c}:TRAN:SOUR AINT",
                f":TRIG{c}:TRAN:DEL {format_number(rest_delay_s)}",
                f":TRIG{c}:TRAN:COUN 1",
                f":ARM{c}:TRAN:COUN 1",
            ]
        units += [
            f":TRIG{c}:ACQ:SOUR TIM",
            f":TRIG{c}:ACQ:TIM {format_number(read_period_s)}",
            f":TRIG{c}:ACQ:COUN {n}",
            f":ARM{c}:ACQ:COUN 1",
        ]
        if clear:
            if fetching:  # what was not returned yet, then the buffer is cleared
                units += [f":TRAC{c}:POIN:ACT?", f":TRAC{c}:DATA? {fetch_from}"]
            units += [f":TRAC{c}:FEED:CONT NEV", *setup, f":TRAC{c}:CLE"]
        units += [
            f":TRAC{c}:FEED:CONT NEXT",
            f":INIT:ACQ (@{c})" if rest_delay_s is None else f":INIT (@{c})",  # (both actions)
            f":OUTP{c}:OFF:AUTO ON",
            # proof that the line was executed to its end
            f":OUTP{c}:OFF:AUTO?",
            f":OUTP{c}?",
            ":SYST:ERR?",
        ]
        line = ";".join(units)
        self._lease_may_run = True
        self._rest_may_run = self._rest_may_run or rest_delay_s is not None
        self._rest_armed = self._rest_armed or rest_delay_s is not None
        # re-sending a plain re-arm is harmless; re-sending a clearing one would lose what it fetched
        reply = await self.transport.query(line, idempotent=not clear)
        parts = reply.split(";")
        expected = 5 if fetching else 3
        if len(parts) != expected:
            await self.check_errors("arm_lease")
            raise DriverError(self.name, line, f"expected {expected} replies, got {reply!r}")
        if fetching:
            count = parse_int(parts[0])
            rows = parse_numbers(parts[1]).reshape(-1, _ROW)
            self._pending.append(self._after_last(rows, count))
        auto, output, error = parts[-3:]
        entry = parse_error_entry(error)
        if entry.code != 0:
            more = await self.drain_errors()
            raise InstrumentReportedError(self.name, "arm_lease", entry.code, entry.message + (
                f" (+{len(more)} more)" if more else ""))
        if auto.strip() not in ("1", "+1"):
            raise DriverError(self.name, line, f":OUTP{c}:OFF:AUTO? reads {auto!r} after arming")
        self._lease_n = n
        self._rest_armed = self._rest_may_run = rest_delay_s is not None
        self.off_mode = OutputOffMode.HIGH_IMPEDANCE
        if clear:
            self._next, self._last_time, self._known_count = 0, None, 0
        if output.strip() not in ("1", "+1"):
            raise DriverError(
                self.name, line, "the output is off: the lease had run out before it was renewed"
            )

    async def _adopt_trace(self) -> list[str]:
        """First arm of this driver: keep a trace set up as leases leave it (its entries are an
        earlier lease's, for :meth:`read_lease_buffer`), else the commands that set it up."""
        c = self.channel
        reply = await self.transport.query(f":TRAC{c}:POIN:ACT?;:TRAC{c}:FEED?;:TRAC{c}:POIN?")
        try:
            count_text, feed, points = reply.split(";")
            count, size = parse_int(count_text), parse_int(points)
        except ValueError as exc:
            raise DriverError(self.name, ":TRAC:POIN:ACT?", f"bad reply {reply!r}") from exc
        if feed.strip().upper().startswith("SENS") and size == TRACE_POINTS:
            self._next, self._known_count = count, count
            self._last_time = None if count == 0 else await self._time_of(count - 1)
            return []
        self._next, self._known_count = 0, 0
        return [f":TRAC{c}:FEED SENS", f":TRAC{c}:POIN {TRACE_POINTS}"]

    async def _time_of(self, index: int) -> float:
        rows = await self.transport.query_as(
            f":TRAC{self.channel}:DATA? {index},1", expect_numbers(_ROW)
        )
        return float(rows[2])

    def _after_last(self, rows: npt.NDArray[np.float64], count: int) -> npt.NDArray[np.float64]:
        """The rows of a fetch from index ``_next - 1`` (or 0) that were not returned yet."""
        start = self._next or 0
        if start == 0:
            self._known_count = max(count, rows.shape[0])
            return rows
        if rows.shape[0] == 0 or rows[0, 2] != self._last_time:
            raise DriverError(
                self.name, f":TRAC{self.channel}:DATA?",
                "the trace buffer changed behind the driver's back (cleared or reset)",
            )
        self._known_count = max(count, start - 1 + rows.shape[0])
        return rows[1:]

    async def _new_entries(self) -> npt.NDArray[np.float64]:
        """The trace entries not returned yet (those a clearing re-arm fetched first)."""
        c = self.channel
        k = self._next or 0
        if k == 0:
            count = await self.transport.query_as(f":TRAC{c}:POIN:ACT?", parse_int)
            data = (
                await self.transport.query_as(
                    f":TRAC{c}:DATA? 0,{count}", expect_numbers(_ROW * count)
                ) if count else np.empty(0)
            )
            fresh = self._after_last(data.reshape(-1, _ROW), count)
        else:
            reply = await self.transport.query(f":TRAC{c}:POIN:ACT?;:TRAC{c}:DATA? {k - 1}")
            parts = reply.split(";")
            if len(parts) != 2:  # the data query failed: fewer entries than returned already
                await self.drain_errors()
                raise DriverError(
                    self.name, f":TRAC{c}:DATA? {k - 1}",
                    f"the trace buffer holds fewer entries than were read ({reply!r})",
                )
            rows = parse_numbers(parts[1]).reshape(-1, _ROW)
            fresh = self._after_last(rows, parse_int(parts[0]))
        rows = np.concatenate([*self._pending, fresh]) if self._pending else fresh
        self._pending = []
        if fresh.shape[0]:
            self._next = k + fresh.shape[0]
            self._last_time = float(fresh[-1, 2])
        return rows.reshape(-1, _ROW)

    async def release_lease(self) -> None:
        """Stop the acquire trigger and a rest's transient (``:OUTP:OFF:AUTO OFF;:ABOR:ACQ;
        :ABOR:TRAN``, read back), leaving the output as it is; the trace keeps its entries. Those a
        lease of this driver took since the last :meth:`read_block` are fetched and come first in
        the next one."""
        c = self.channel
        await self.confirm(
            (f":OUTP{c}:OFF:AUTO OFF;:ABOR:ACQ (@{c});:ABOR:TRAN (@{c})",), f":OUTP{c}:OFF:AUTO?", "0"
        )
        self._rest_armed = self._rest_may_run = False
        if self._lease_n is not None and self._next is not None:
            self._pending = [await self._new_entries()]
        self._lease_n = None
        self._lease_may_run = False

    def time_base(self) -> dict[str, float]:
        """``{"timer_offset_s": s}``: reported times are the instrument's timer (TIME element,
        stable across controller processes) plus this offset."""
        return {"timer_offset_s": self.timer_offset_s}

    def restore_time_base(self, state: dict[str, float]) -> None:
        """Report times on an earlier driver's base (:meth:`time_base`); the trace may hold an
        earlier lease's entries, so :meth:`safe_state` releases a lease from now on."""
        offset = float(state["timer_offset_s"])
        if not math.isfinite(offset):
            raise ValueError(f"timer_offset_s must be finite, got {offset}")
        self.timer_offset_s = offset
        self._lease_may_run = self._rest_may_run = True

    async def read_lease_buffer(self) -> SampleBlock:
        """Every entry of the trace buffer, oldest first (``:TRAC<c>:DATA? 0,<count>``); the
        output is not touched. Later :meth:`read_block` calls of a lease return what comes after."""
        c = self.channel
        self._lease_may_run = self._rest_may_run = True
        count = await self.transport.query_as(f":TRAC{c}:POIN:ACT?", parse_int)
        if count == 0:
            rows = np.empty((0, _ROW))
        else:
            data = await self.transport.query_as(
                f":TRAC{c}:DATA? 0,{count}", expect_numbers(_ROW * count)
            )
            rows = data.reshape(count, _ROW)
        self._next, self._known_count, self._pending = count, count, []
        self._last_time = float(rows[-1, 2]) if count else None
        return self._block(rows)
