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
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from licycler.drivers.errors import DriverError
from licycler.drivers.interfaces import OutputOffMode, SampleBlock
from licycler.drivers.scpi import ScpiDriver, expect_numbers, format_number, parse_int
from licycler.drivers.transport import VisaTransport

__all__ = ["Keithley2450"]

_BUFFER = '"defbuffer1"'
_ELEMENTS = "READ,SEC,FRAC,SOUR"
_OFF_MODES = {
    OutputOffMode.HIGH_IMPEDANCE: "HIMP",
    OutputOffMode.NORMAL: "NORM",
    OutputOffMode.ZERO: "ZERO",
}
MAX_CURRENT_A = 1.05
VOLTAGE_LIMIT_RANGE_V = (0.02, 210.0)
NPLC_RANGE = (0.01, 10.0)


class Keithley2450(ScpiDriver):
    """One Keithley 2450 used as a current source that senses voltage.

    Build it on a :class:`VisaTransport` (or with :meth:`for_resource`), then ``await
    connect()`` (opens, checks ``*IDN?``, clears status).
    """

    manufacturers = ("KEITHLEY",)
    models = ("2450",)

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
        ]
        for command in commands:
            await t.write(command, idempotent=True)
        self._next_index = 1
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
        if not abs(current_a) <= MAX_CURRENT_A:
            raise ValueError(f"current_a must be within +-{MAX_CURRENT_A} A, got {current_a}")
        await self.transport.write(f":SOUR:CURR {format_number(current_a)}", idempotent=True)

    async def output_on(self) -> None:
        await self.transport.write(":OUTP ON", idempotent=True)

    async def output_off(self) -> None:
        await self.transport.write(":OUTP OFF", idempotent=True)

    async def output_enabled(self) -> bool:
        return await self.query_bool(":OUTP?")

    async def voltage_limit_tripped(self) -> bool:
        return await self.query_bool(":SOUR:CURR:VLIM:TRIP?")

    async def safe_state(self) -> None:
        """Output-off state high impedance for both source functions (read back before the
        output goes off), 0 A, output off (read back)."""
        await self.confirm(
            (":OUTP:CURR:SMOD HIMP", ":OUTP:VOLT:SMOD HIMP"),
            ":OUTP:CURR:SMOD?;:OUTP:VOLT:SMOD?", "HIMP;HIMP",
        )
        await self.confirm((":SOUR:CURR 0", ":OUTP OFF"), ":OUTP?", "0")
        self.off_mode = OutputOffMode.HIGH_IMPEDANCE

    # ---------------------------------------------------------------- readings

    async def read_block(self) -> SampleBlock:
        t = self.transport
        query = f":TRAC:ACT? {_BUFFER};:READ? {_BUFFER},{_ELEMENTS};:TRAC:ACT? {_BUFFER}"
        before, mine, after = await t.query_as(query, _read_reply)
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
        if self._origin is None:
            self._origin = (float(rows[0, 1]), float(rows[0, 2]))
        sec0, frac0 = self._origin
        block = SampleBlock(
            time_s=(rows[:, 1] - sec0) + (rows[:, 2] - frac0),
            voltage_v=np.ascontiguousarray(rows[:, 0]),
            current_a=np.ascontiguousarray(rows[:, 3]),
        )
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
