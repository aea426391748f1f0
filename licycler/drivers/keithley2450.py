"""Keithley 2450 SourceMeter in SCPI mode as a galvanostat channel (:class:`SourceMeasureChannel`).

Commands (2450 reference manual, SCPI command reference), each written once below:
``:SOUR:FUNC CURR``, ``:SOUR:CURR <A>``, ``:SOUR:CURR:RANG``/``:RANG:AUTO ON``,
``:SOUR:CURR:VLIM <V>`` (read back) and ``:SOUR:CURR:VLIM:TRIP?``, ``:SENS:FUNC "VOLT"``,
``:SENS:VOLT:RANG``/``:RANG:AUTO ON``, ``:SENS:VOLT:NPLC``, ``:OUTP:CURR:SMOD HIMP`` (read back: a
cell must never see a 0 V source when the output goes off), ``:OUTP ON|OFF``, ``:OUTP?``.

Readings go through the default reading buffer. :meth:`Keithley2450.read_block` takes one reading
and learns whether the instrument took others by itself, in one round trip:
``:TRAC:ACT? "defbuffer1";:READ? "defbuffer1",READ,SEC,FRAC,SOUR;:TRAC:ACT? "defbuffer1"``
(voltage, UTC seconds and fraction, sourced current read back). Readings stored since the previous
call come first, fetched with ``:TRAC:DATA? a,b,"defbuffer1",READ,SEC,FRAC,SOUR`` (rare: only a
trigger model started by someone else makes them). Time is seconds since the first reading this
driver saw, from the instrument's UTC timestamps, so it is continuous across buffer clears. The
buffer is cleared when the driver configures the source (readings from before are not ours) and
every ``clear_after_readings`` readings.

The lease (:class:`~licycler.drivers.interfaces.LeasedChannel`) is a trigger model (reference
manual, "Trigger model"; ``:TRIGger:BLOCk:...``)::

    :TRIG:LOAD "Empty"
    :TRIG:BLOC:MEAS 1, "defbuffer1"            a reading at the setpoint into the lease buffer
    :TRIG:BLOC:BRAN:COUN 2, <N1>, 5             N1 readings at the setpoint (to the step's end)
    :TRIG:BLOC:CONF:REC 3, "LICYCLER_REST", 1   then the rest: 0 A, the output still on
    :TRIG:BLOC:BRAN:ALW 4, 7
    :TRIG:BLOC:DEL:CONS 5, <period - reading time>
    :TRIG:BLOC:BRAN:ALW 6, 1
    :TRIG:BLOC:DEL:CONS 7, <period - reading time>
    :TRIG:BLOC:MEAS 8, "defbuffer1"            N2 readings at rest (N1 + N2 = lease / period)
    :TRIG:BLOC:BRAN:COUN 9, <N2>, 7
    :TRIG:BLOC:DEL:CONS 10, <period - reading time>
    :TRIG:BLOC:SOUR:STAT 11, OFF               then the output off (HIMP: the relay opens)
    :INIT

The rest point is a source configuration list stored by :meth:`Keithley2450.configure_current_source`
with the output off (``:SOUR:CURR 0``, ``:SOUR:CONF:LIST:CRE "LICYCLER_REST"``, ``:SOUR:CONF:LIST:STOR
"LICYCLER_REST", 1``: the configured limit, range and output-off state at 0 A). N1 covers the lease
unless the engine says where the step ends (``setpoint_s``): then the setpoint stops right after the
first reading at or after it, as the step would have. Re-armed by ``:ABOR;:SOUR:CURR <setpoint>;
:INIT;:TRIG:STAT?;:OUTP?`` in one program message: the abort leaves the output as it is, the level
is put back (a rest may have begun) and the model restarts at once with its counters reset, so the
current never stops. While the
lease runs the instrument reads by itself (``:READ?`` is refused), and :meth:`Keithley2450.read_block`
fetches the readings it took since the previous call from the buffer (``:TRAC:ACT?`` and, when
there are new ones, ``:TRAC:DATA?``). The lease alternates between ``defbuffer1`` and
``defbuffer2``: when the active one is half full, a re-arm switches the measure block to the
other one (cleared in the same message); the old one is drained by the next read and left as it
is until the switch after, so the readings of the last hours are always in the instrument.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from licycler.drivers.errors import DriverError
from licycler.drivers.interfaces import OutputOffMode, SampleBlock
from licycler.drivers.scpi import ScpiDriver, expect_numbers, format_number, parse_int
from licycler.drivers.transport import VisaTransport

__all__ = ["Keithley2450"]

_BUFFER = '"defbuffer1"'
_LEASE_BUFFERS = ("defbuffer1", "defbuffer2")
_FETCH_CHUNK = 5000
"""Readings fetched per ``:TRAC:DATA?`` when a whole buffer is read back."""
_ELEMENTS = "READ,SEC,FRAC,SOUR"
_OFF_MODES = {
    OutputOffMode.HIGH_IMPEDANCE: "HIMP",
    OutputOffMode.NORMAL: "NORM",
    OutputOffMode.ZERO: "ZERO",
}
MAX_CURRENT_A = 1.05
VOLTAGE_LIMIT_RANGE_V = (0.02, 210.0)
NPLC_RANGE = (0.01, 10.0)


_REST_LIST = '"LICYCLER_REST"'
"""The source configuration list whose one point is the lease's rest (0 A, the configured limit)."""


@dataclass
class _Lease:
    """The lease in force: the delay between readings (s), readings at the setpoint and at rest,
    the buffer in use."""

    delay_s: float
    at_setpoint: int
    at_rest: int
    buffer: int = 0
    capacity: int = 100_000


class Keithley2450(ScpiDriver):
    """One Keithley 2450 used as a current source that senses voltage.

    Build it on a :class:`VisaTransport` (or with :meth:`for_resource`), then ``await
    connect()`` (opens, checks ``*IDN?``, clears status).
    """

    manufacturers = ("KEITHLEY",)
    models = ("2450",)
    lease_mechanism = (
        "trigger model :TRIG:BLOC:MEAS/BRAN:COUN N1/CONF:REC rest (0 A)/MEAS/BRAN:COUN N2/SOUR:STAT OFF, "
        're-armed by ":ABOR;:SOUR:CURR <A>;:INIT"'
    )
    lease_rests = True

    def __init__(
        self,
        transport: VisaTransport,
        *,
        name: str | None = None,
        clear_after_readings: int = 10_000,
    ) -> None:
        super().__init__(transport, name=name)
        self.clear_after_readings = clear_after_readings
        self.off_mode = OutputOffMode.HIGH_IMPEDANCE
        self._next_index = 1
        self._origin: tuple[float, float] | None = None
        self._nplc = 1.0
        self._line_frequency_hz: float | None = None
        self._lease: _Lease | None = None
        self._level_a = 0.0
        """The setpoint (A): a re-arm puts it back, the lease's rest may have replaced it."""
        self._drain: tuple[str, int] | None = None
        """A lease buffer left behind by a switch, and the next reading of it not fetched yet."""

    @classmethod
    def for_resource(
        cls,
        resource: str,
        *,
        name: str | None = None,
        timeout_s: float = 2.0,
        retries: int = 2,
        reconnect_backoff_s: float = 0.2,
    ) -> Keithley2450:
        """A driver on a new transport to ``resource`` (not opened yet: ``await connect()``)."""
        label = name or f"Keithley 2450 at {resource}"
        transport = VisaTransport(
            resource, name=label, timeout_s=timeout_s, retries=retries,
            reconnect_backoff_s=reconnect_backoff_s,
        )
        return cls(transport, name=label)

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
        if not lo <= voltage_limit_v <= hi:
            raise ValueError(f"voltage_limit_v must be in [{lo}, {hi}] V, got {voltage_limit_v}")
        if not NPLC_RANGE[0] <= nplc <= NPLC_RANGE[1]:
            raise ValueError(f"nplc must be in {NPLC_RANGE}, got {nplc}")
        t = self.transport
        commands = [
            ":SOUR:FUNC CURR",
            ":SOUR:CURR:RANG:AUTO ON" if current_range_a is None
            else f":SOUR:CURR:RANG {format_number(current_range_a)}",
            f":SOUR:CURR:VLIM {format_number(voltage_limit_v)}",
            ":SOUR:CURR:READ:BACK ON",
            ':SENS:FUNC "VOLT"',
            ":SENS:VOLT:RANG:AUTO ON" if voltage_range_v is None
            else f":SENS:VOLT:RANG {format_number(voltage_range_v)}",
            f":SENS:VOLT:NPLC {format_number(nplc)}",
            ":SENS:COUN 1",
            f":OUTP:CURR:SMOD {_OFF_MODES[off_mode]}",
            f":TRAC:CLE {_BUFFER}",  # readings taken before this configuration are not ours
            ":SOUR:CURR 0",  # the lease's rest point: these settings at 0 A (the output is off)
        ]
        if self._lease is not None:  # a trigger model must not run while the source is set up
            commands.insert(0, ":ABOR")
        for command in commands:
            await t.write(command, idempotent=True)
        self._lease = None
        self._drain = None
        self._nplc = nplc
        self._next_index = 1
        self._level_a = 0.0
        await self._store_rest_point()
        await self.check_errors("configure_current_source")
        limit = await self.query_number(":SOUR:CURR:VLIM?")
        if not abs(limit - voltage_limit_v) <= 1e-6 * max(1.0, abs(voltage_limit_v)):
            raise DriverError(
                self.name, ":SOUR:CURR:VLIM?",
                f"voltage limit reads back {limit} V, expected {voltage_limit_v} V",
            )
        smode = (await t.query(":OUTP:CURR:SMOD?")).strip().upper()
        if smode != _OFF_MODES[off_mode]:
            raise DriverError(
                self.name, ":OUTP:CURR:SMOD?",
                f"output-off state reads back {smode!r}, expected {_OFF_MODES[off_mode]}",
            )
        self.off_mode = off_mode

    # ---------------------------------------------------------------- source and output

    async def set_current(self, current_a: float) -> None:
        """Set the level; while a lease runs the model is stopped and started again around it in
        the same message (a setting is never changed under a running trigger model)."""
        if not abs(current_a) <= MAX_CURRENT_A:
            raise ValueError(f"current_a must be within +-{MAX_CURRENT_A} A, got {current_a}")
        level = f":SOUR:CURR {format_number(current_a)}"
        lease = self._lease
        if lease is not None and lease.at_rest > 1:  # a new setpoint holds to the lease's end (until a renewal says)
            lease.at_setpoint, lease.at_rest = lease.at_setpoint + lease.at_rest - 1, 1
            level += f";:TRIG:BLOC:BRAN:COUN 2, {lease.at_setpoint}, 5;:TRIG:BLOC:BRAN:COUN 9, 1, 7"
        await self.transport.write(f":ABOR;{level};:INIT" if lease is not None else level, idempotent=True)
        self._level_a = current_a

    async def output_on(self) -> None:
        await self.transport.write(":OUTP ON", idempotent=True)

    async def output_off(self) -> None:
        await self.transport.write(":ABOR;:OUTP OFF" if self._lease is not None else ":OUTP OFF", idempotent=True)
        self._end_lease()

    async def output_enabled(self) -> bool:
        return await self.query_bool(":OUTP?")

    async def voltage_limit_tripped(self) -> bool:
        return await self.query_bool(":SOUR:CURR:VLIM:TRIP?")

    async def safe_state(self) -> None:
        """The lease's trigger model stopped, output-off state high impedance for both source
        functions (read back before the output goes off), 0 A, output off (read back). The lease
        buffers are left as they are (a resume reads them back)."""
        await self.transport.write(":ABOR", idempotent=True)
        self._end_lease()
        await self.confirm(
            (":OUTP:CURR:SMOD HIMP", ":OUTP:VOLT:SMOD HIMP"),
            ":OUTP:CURR:SMOD?;:OUTP:VOLT:SMOD?", "HIMP;HIMP",
        )
        await self.confirm((":SOUR:CURR 0", ":OUTP OFF"), ":OUTP?", "0")
        self.off_mode = OutputOffMode.HIGH_IMPEDANCE

    # ---------------------------------------------------------------- readings

    # ---------------------------------------------------------------- the lease

    async def _reading_time_s(self) -> float:
        """How long one reading takes: NPLC power-line cycles (``:SYST:LFR?``, asked once), s."""
        if self._line_frequency_hz is None:
            self._line_frequency_hz = await self.query_number(":SYST:LFR?")
        return self._nplc / self._line_frequency_hz

    async def _store_rest_point(self) -> None:
        """The active source settings (at 0 A, the output off) as the lease's rest: point 1 of
        ``LICYCLER_REST``, made or overwritten (a list lives until the instrument is switched off)."""
        t = self.transport
        if _REST_LIST not in await t.query(":SOUR:CONF:LIST:CAT?"):
            await t.write(f":SOUR:CONF:LIST:CRE {_REST_LIST}", idempotent=True)
            await t.write(f":SOUR:CONF:LIST:STOR {_REST_LIST}", idempotent=True)
        elif int(await self.query_number(f":SOUR:CONF:LIST:SIZE? {_REST_LIST}")) > 0:
            await t.write(f":SOUR:CONF:LIST:STOR {_REST_LIST}, 1", idempotent=True)
        else:
            await t.write(f":SOUR:CONF:LIST:STOR {_REST_LIST}", idempotent=True)

    async def arm_lease(self, duration_s: float, read_period_s: float, setpoint_s: float | None = None) -> None:
        if not duration_s > 0 or not read_period_s > 0:
            raise ValueError(f"lease and read period must be > 0 s, got {duration_s}, {read_period_s}")
        reading_s = await self._reading_time_s()
        delay_s = max(read_period_s - reading_s, 0.0)
        count = max(2, math.floor(duration_s / read_period_s + 1e-9))
        # reading k (from 1) ends at (k - 1) * period + reading time: the first at or after setpoint_s
        first = count - 1 if setpoint_s is None else math.ceil((setpoint_s - reading_s) / read_period_s + 1 - 1e-9)
        at_setpoint = min(max(first, 1), count - 1)
        at_rest = count - at_setpoint
        lease = self._lease
        if lease is None:  # build the model (the output is on, the source set up)
            capacity = int(await self.query_number(f":TRAC:POIN? {_BUFFER}"))
            lease = _Lease(delay_s, at_setpoint, at_rest, 0, capacity)
            self._next_index = int(await self.query_number(f":TRAC:ACT? {_BUFFER}")) + 1
            buf, d = f'"{_LEASE_BUFFERS[0]}"', format_number(delay_s)
            for command in (':TRIG:LOAD "Empty"', f":TRIG:BLOC:MEAS 1, {buf}",
                            f":TRIG:BLOC:BRAN:COUN 2, {at_setpoint}, 5", f":TRIG:BLOC:CONF:REC 3, {_REST_LIST}, 1",
                            ":TRIG:BLOC:BRAN:ALW 4, 7", f":TRIG:BLOC:DEL:CONS 5, {d}",
                            ":TRIG:BLOC:BRAN:ALW 6, 1", f":TRIG:BLOC:DEL:CONS 7, {d}",
                            f":TRIG:BLOC:MEAS 8, {buf}", f":TRIG:BLOC:BRAN:COUN 9, {at_rest}, 7",
                            f":TRIG:BLOC:DEL:CONS 10, {d}", ":TRIG:BLOC:SOUR:STAT 11, OFF"):  # fmt: skip
                await self.transport.write(command, idempotent=True)
            await self.check_errors("arming the lease")
            message = ":INIT"
        else:
            message = f":ABOR;:SOUR:CURR {format_number(self._level_a)}"
            if lease.delay_s != delay_s:
                d = format_number(delay_s)
                message += f";:TRIG:BLOC:DEL:CONS 5, {d};:TRIG:BLOC:DEL:CONS 7, {d};:TRIG:BLOC:DEL:CONS 10, {d}"
            if (lease.at_setpoint, lease.at_rest) != (at_setpoint, at_rest):
                message += f";:TRIG:BLOC:BRAN:COUN 2, {at_setpoint}, 5;:TRIG:BLOC:BRAN:COUN 9, {at_rest}, 7"
            lease.delay_s, lease.at_setpoint, lease.at_rest = delay_s, at_setpoint, at_rest
            if self._next_index - 1 > lease.capacity // 2 and self._drain is None:  # switch buffers
                self._drain = (_LEASE_BUFFERS[lease.buffer], self._next_index)
                lease.buffer = 1 - lease.buffer
                other = f'"{_LEASE_BUFFERS[lease.buffer]}"'
                message += f";:TRAC:CLE {other};:TRIG:BLOC:MEAS 1, {other};:TRIG:BLOC:MEAS 8, {other}"
                self._next_index = 1
            message += ";:INIT"
        reply = await self.transport.query(f"{message};:TRIG:STAT?;:OUTP?", idempotent=True)
        state, _, output = reply.rpartition(";")
        if not state.upper().startswith("RUNNING"):
            self._lease = None
            raise DriverError(self.name, ":TRIG:STAT?", f"the lease's trigger model is not running: {state!r}")
        if output.strip() not in ("1", "ON"):  # renewing never turns an output back on
            await self.transport.write(":ABOR", idempotent=True)
            self._lease = None
            raise DriverError(self.name, ":OUTP?", "the lease had run out: the instrument has turned its output off")
        self._lease = lease

    async def release_lease(self) -> None:
        if self._lease is not None:
            await self.transport.write(":ABOR", idempotent=True)
            self._end_lease()

    def _end_lease(self) -> None:
        """Back to measuring on request: the buffer's position is found again at the next read
        (readings the model took after the last read stay in the instrument)."""
        if self._lease is not None:
            self._lease = None
            self._drain = None
            self._next_index = -1

    def time_base(self) -> dict[str, float]:
        """The instrument's UTC seconds and fraction of the reading at time 0 (``SEC``, ``FRAC``)."""
        if self._origin is None:
            return {}
        return {"origin_seconds": self._origin[0], "origin_fraction": self._origin[1]}

    def restore_time_base(self, state: dict[str, float]) -> None:
        if state:
            self._origin = (float(state["origin_seconds"]), float(state["origin_fraction"]))

    async def read_lease_buffer(self) -> SampleBlock:
        """Every reading in both lease buffers, oldest first (``:TRAC:ACT?``, ``:TRAC:DATA?`` in
        chunks of ``_FETCH_CHUNK``)."""
        parts: list[npt.NDArray[np.float64]] = []
        for name in _LEASE_BUFFERS:
            count = int(await self.query_number(f':TRAC:ACT? "{name}"'))
            for first in range(1, count + 1, _FETCH_CHUNK):
                parts.append(await self._fetch_rows(name, first, min(first + _FETCH_CHUNK - 1, count)))
        rows = np.concatenate(parts) if parts else np.empty((0, 4))
        return self._block(rows[np.argsort(rows[:, 1] + rows[:, 2], kind="stable")])

    async def _fetch_rows(self, buffer: str, first: int, last: int) -> npt.NDArray[np.float64]:
        n = last - first + 1
        data = await self.transport.query_as(
            f':TRAC:DATA? {first},{last},"{buffer}",{_ELEMENTS}', expect_numbers(4 * n)
        )
        return data.reshape(n, 4)

    def _block(self, rows: npt.NDArray[np.float64]) -> SampleBlock:
        """Rows of (reading, seconds, fraction, source) as a block on the driver's time base."""
        if not rows.shape[0]:
            return SampleBlock.empty()
        if self._origin is None:
            self._origin = (float(rows[0, 1]), float(rows[0, 2]))
        sec0, frac0 = self._origin
        return SampleBlock(
            time_s=(rows[:, 1] - sec0) + (rows[:, 2] - frac0),
            voltage_v=np.ascontiguousarray(rows[:, 0]),
            current_a=np.ascontiguousarray(rows[:, 3]),
        )

    async def _read_leased(self, lease: _Lease) -> SampleBlock:
        """The readings the lease's model took since the previous call: what is left of a buffer
        switched away from first, then the active buffer's new ones (none is possible)."""
        parts: list[npt.NDArray[np.float64]] = []
        if self._drain is not None:
            name, first = self._drain
            count = int(await self.query_number(f':TRAC:ACT? "{name}"'))
            if count >= first:
                parts.append(await self._fetch_rows(name, first, count))
            self._drain = None
        name = _LEASE_BUFFERS[lease.buffer]
        count = int(await self.query_number(f':TRAC:ACT? "{name}"'))
        if count < self._next_index - 1:  # cleared behind our back: all it holds is new
            self._next_index = 1
        if count >= self._next_index:
            parts.append(await self._fetch_rows(name, self._next_index, count))
            self._next_index = count + 1
        return self._block(np.concatenate(parts) if parts else np.empty((0, 4)))

    # ---------------------------------------------------------------- readings

    async def read_block(self) -> SampleBlock:
        if self._lease is not None:
            return await self._read_leased(self._lease)
        t = self.transport
        query = f":TRAC:ACT? {_BUFFER};:READ? {_BUFFER},{_ELEMENTS};:TRAC:ACT? {_BUFFER}"
        before, mine, after = await t.query_as(query, _read_reply)
        if self._next_index < 0:  # after a lease: what the buffer held before this reading is not new
            self._next_index = before + 1
        if before < self._next_index - 1:  # cleared behind our back (e.g. *RST): all it holds is new
            self._next_index = 1
        if after < max(before + 1, self._next_index):
            raise DriverError(self.name, ":READ?", "the reading did not reach the buffer")
        if after == self._next_index:  # the usual case: ours is the only new reading
            rows = mine.reshape(1, 4)
        else:  # readings the instrument took by itself since the last call (a trigger model) come first
            first, n = self._next_index, after - self._next_index + 1
            data = await t.query_as(f":TRAC:DATA? {first},{after},{_BUFFER},{_ELEMENTS}", expect_numbers(4 * n))
            rows = data.reshape(n, 4)
        self._next_index = after + 1
        block = self._block(rows)
        if after >= self.clear_after_readings:
            await t.write(f":TRAC:CLE {_BUFFER}", idempotent=True)
            self._next_index = 1
        return block


def _read_reply(reply: str) -> tuple[int, npt.NDArray[np.float64], int]:
    """``count;reading,seconds,fraction,source;count`` of the compound read query."""
    parts = reply.split(";")
    if len(parts) != 3:
        raise ValueError(f"expected 3 replies, got {len(parts)}")
    return parse_int(parts[0]), expect_numbers(4)(parts[1]), parse_int(parts[2])
