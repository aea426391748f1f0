"""Keithley 2450 SourceMeter in SCPI mode as a galvanostat channel (:class:`SourceMeasureChannel`).

Commands (2450 reference manual, SCPI command reference), each written once below:
``:SOUR:FUNC CURR``, ``:SOUR:CURR <A>``, ``:SOUR:CURR:RANG``/``:RANG:AUTO ON``,
``:SOUR:CURR:VLIM <V>`` (read back) and ``:SOUR:CURR:VLIM:TRIP?``, ``:SENS:FUNC "VOLT"``,
``:SENS:VOLT:RANG``/``:RANG:AUTO ON``, ``:SENS:VOLT:NPLC``, ``:OUTP:CURR:SMOD HIMP`` (read back: a
cell must never see a 0 V source when the output goes off), ``:OUTP ON|OFF``, ``:OUTP?``.

Readings go through the default reading buffer: :meth:`Keithley2450.read_block` returns every
reading stored since the previous call (taking one with ``:READ?`` when there is none), fetched
with ``:TRAC:DATA? a,b,"defbuffer1",READ,REL,SOUR`` (voltage, time relative to the buffer's first
reading, sourced current read back). Time is seconds since the first reading this driver saw, kept
continuous across buffer clears by anchoring each buffer epoch on its first reading's UTC time
(``SEC,FRAC``). The buffer is cleared every ``clear_after_readings`` readings.
"""

from __future__ import annotations

import numpy as np

from licycler.drivers.errors import DriverError
from licycler.drivers.interfaces import OutputOffMode, SampleBlock
from licycler.drivers.scpi import ScpiDriver, expect_numbers, format_number, parse_int
from licycler.drivers.transport import VisaTransport

__all__ = ["Keithley2450"]

_BUFFER = '"defbuffer1"'
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
        self._epoch_offset_s: float | None = None
        self._origin_utc_s: float | None = None

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
        self._restart_epoch()
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
        count = await t.query_as(f":TRAC:ACT? {_BUFFER}", parse_int)
        if count < self._next_index - 1:  # cleared behind our back (e.g. *RST)
            self._restart_epoch()
        if count < self._next_index:
            reply = await t.query_as(
                f":READ? {_BUFFER};:TRAC:ACT? {_BUFFER}", _second_field_int
            )
            count = reply
            if count < self._next_index:
                raise DriverError(self.name, ":READ?", "the reading did not reach the buffer")
        if self._epoch_offset_s is None:
            anchor = await t.query_as(
                f":TRAC:DATA? 1,1,{_BUFFER},SEC,FRAC", expect_numbers(2)
            )
            utc = float(anchor[0] + anchor[1])
            if self._origin_utc_s is None:
                self._origin_utc_s = utc
            self._epoch_offset_s = utc - self._origin_utc_s
        first = self._next_index
        n = count - first + 1
        data = await t.query_as(
            f":TRAC:DATA? {first},{count},{_BUFFER},READ,REL,SOUR", expect_numbers(3 * n)
        )
        rows = data.reshape(n, 3)
        self._next_index = count + 1
        block = SampleBlock(
            time_s=np.ascontiguousarray(rows[:, 1] + self._epoch_offset_s),
            voltage_v=np.ascontiguousarray(rows[:, 0]),
            current_a=np.ascontiguousarray(rows[:, 2]),
        )
        if count >= self.clear_after_readings:
            await t.write(f":TRAC:CLE {_BUFFER}", idempotent=True)
            self._restart_epoch()
        return block

    def _restart_epoch(self) -> None:
        self._next_index = 1
        self._epoch_offset_s = None


def _second_field_int(reply: str) -> int:
    """The ``:TRAC:ACT?`` count of a ``:READ?;:TRAC:ACT?`` reply."""
    parts = reply.split(";")
    if len(parts) != 2:
        raise ValueError(f"expected two replies, got {reply!r}")
    float(parts[0])  # the reading must be a number too
    return parse_int(parts[1])
