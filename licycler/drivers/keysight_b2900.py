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
instrument's timestamp (seconds of its timer, ``TIME`` element).
"""

from __future__ import annotations

from licycler.drivers.errors import DriverError
from licycler.drivers.interfaces import OutputOffMode, SampleBlock
from licycler.drivers.scpi import ScpiDriver, expect_numbers, format_number
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


class KeysightB2900(ScpiDriver):
    """Channel ``channel`` (1 or 2) of a B2901A/B2902A used as a current source sensing voltage."""

    manufacturers = ("KEYSIGHT", "AGILENT")
    models = ("B2901", "B2902", "B2911", "B2912")

    def __init__(
        self, transport: VisaTransport, *, channel: int = 1, name: str | None = None
    ) -> None:
        if channel not in (1, 2):
            raise ValueError(f"channel must be 1 or 2, got {channel}")
        super().__init__(transport, name=name)
        self.channel = channel
        self.off_mode = OutputOffMode.HIGH_IMPEDANCE

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
        await self.transport.write(
            f":SOUR{self.channel}:CURR {format_number(current_a)}", idempotent=True
        )

    async def output_on(self) -> None:
        await self.transport.write(f":OUTP{self.channel} ON", idempotent=True)

    async def output_off(self) -> None:
        await self.transport.write(f":OUTP{self.channel} OFF", idempotent=True)

    async def output_enabled(self) -> bool:
        return await self.query_bool(f":OUTP{self.channel}?")

    async def voltage_limit_tripped(self) -> bool:
        return await self.query_bool(f":SENS{self.channel}:VOLT:PROT:TRIP?")

    async def safe_state(self) -> None:
        """Off mode HIZ (read back before the output goes off), 0 A, output off (read back)."""
        c = self.channel
        await self.confirm((f":OUTP{c}:OFF:MODE HIZ",), f":OUTP{c}:OFF:MODE?", "HIZ")
        await self.confirm((f":SOUR{c}:CURR 0", f":OUTP{c} OFF"), f":OUTP{c}?", "0")
        self.off_mode = OutputOffMode.HIGH_IMPEDANCE

    # ---------------------------------------------------------------- readings

    async def read_block(self) -> SampleBlock:
        """One spot measurement ``:MEAS? (@c)``: voltage, current, instrument time."""
        values = await self.transport.query_as(
            f":MEAS? (@{self.channel})", expect_numbers(3)
        )
        return SampleBlock(
            time_s=values[2:3].copy(), voltage_v=values[0:1].copy(), current_a=values[1:2].copy()
        )
