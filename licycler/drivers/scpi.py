"""What every SCPI driver shares: numbers on the wire, the error queue, the ``*IDN?`` check.

- :func:`parse_number` / :func:`parse_numbers`: NR1/NR2/NR3 replies; the SCPI "not a number" and
  overflow sentinels (9.91E+37, 9.9E+37, any magnitude >= 9.9E+37) become NaN;
- :func:`format_number`: a value for a command, exact to 10 significant digits;
- :func:`parse_error_entry`: one error-queue entry in any of the usual dialects
  (``0,"No error"``, ``+0,"No error"``, ``-113,"Undefined header;1;1700000000 123"``);
- :class:`ScpiDriver`: transport, ``*IDN?`` check, error-queue draining and "configure then
  check the queue" for the concrete drivers.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt

from licycler.drivers.errors import DriverError, IdentityMismatch, InstrumentReportedError
from licycler.drivers.interfaces import InstrumentError
from licycler.drivers.transport import VisaTransport

__all__ = [
    "SCPI_NAN_THRESHOLD",
    "ScpiDriver",
    "check_identity",
    "expect_numbers",
    "format_number",
    "parse_bool",
    "parse_error_entry",
    "parse_int",
    "parse_number",
    "parse_numbers",
]

SCPI_NAN_THRESHOLD = 9.9e37
"""Readings of this magnitude or more are SCPI sentinels: overflow (9.9E+37, read as +-inf) or
"not a number" / no data (9.91E+37, read as NaN)."""
SCPI_NOT_A_NUMBER = 9.905e37
"""Between the overflow (9.9E+37) and not-a-number (9.91E+37) sentinels."""

_ERROR_ENTRY = re.compile(r'\s*([+-]?\d+)\s*,\s*"(.*)"\s*', re.S)


def parse_number(text: str) -> float:
    """One numeric reply as a float; overflow is +-inf and no data NaN (ValueError if not a
    number, which the transport treats as a garbled reply)."""
    return float(_sentinels(np.array([float(text)]))[0])


def parse_numbers(text: str) -> npt.NDArray[np.float64]:
    """A comma-separated list of numbers (overflow as +-inf, no data as NaN)."""
    if not text.strip():
        return np.empty(0)
    return _sentinels(np.array([float(x) for x in text.split(",")], dtype=np.float64))


def _sentinels(values: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    magnitude = np.abs(values)
    values = np.where(magnitude >= SCPI_NAN_THRESHOLD, np.copysign(np.inf, values), values)
    values[magnitude >= SCPI_NOT_A_NUMBER] = np.nan
    return values


def expect_numbers(n: int) -> Callable[[str], npt.NDArray[np.float64]]:
    """A parser of exactly ``n`` comma-separated numbers (a different count is a garbled reply)."""

    def parse(text: str) -> npt.NDArray[np.float64]:
        values = parse_numbers(text)
        if values.shape[0] != n:
            raise ValueError(f"expected {n} numbers, got {values.shape[0]}")
        return values

    return parse


def parse_int(text: str) -> int:
    """An integer reply (``+12``, ``12``, ``1.2E+01``)."""
    value = float(text)
    if not value.is_integer():
        raise ValueError(f"expected an integer, got {text!r}")
    return int(value)


def parse_bool(text: str) -> bool:
    """A boolean reply: ``0``/``1`` (also ``+0``, ``ON``/``OFF``)."""
    t = text.strip().upper()
    if t in ("1", "+1", "ON"):
        return True
    if t in ("0", "+0", "OFF"):
        return False
    raise ValueError(f"expected 0 or 1, got {text!r}")


def format_number(value: float) -> str:
    """A number for a SCPI command (``1E-03`` style, 10 significant digits)."""
    if not math.isfinite(value):
        raise ValueError(f"cannot send a non-finite number: {value}")
    return f"{value:.10G}"


def parse_error_entry(reply: str) -> InstrumentError:
    """One ``:SYST:ERR?`` entry; the message stops at the first ``;`` (Keithley appends severity
    and time)."""
    m = _ERROR_ENTRY.fullmatch(reply)
    if m is None:
        raise ValueError(f"not an error-queue entry: {reply!r}")
    return InstrumentError(int(m.group(1)), m.group(2).split(";")[0].strip())


class ScpiDriver:
    """Base of the SCPI drivers: a :class:`VisaTransport`, an identity to check, an error queue.

    ``manufacturers`` and ``models`` are the accepted spellings (case-insensitive substrings of
    the first and second ``*IDN?`` fields).
    """

    manufacturers: tuple[str, ...] = ()
    models: tuple[str, ...] = ()
    error_query = ":SYST:ERR?"
    max_error_entries = 200

    def __init__(self, transport: VisaTransport, *, name: str | None = None) -> None:
        self.transport = transport
        self.name = name or transport.name
        self.identity: str | None = None

    async def connect(self) -> str:
        """Open the transport, check ``*IDN?``, clear status; returns the identity."""
        await self.transport.open()
        identity = await self.identify()
        await self.transport.write("*CLS", idempotent=True)
        return identity

    async def identify(self) -> str:
        idn = (await self.transport.query("*IDN?")).strip()
        self.identity = idn
        check_identity(self.name, idn, self.manufacturers, self.models)
        return idn

    async def drain_errors(self) -> list[InstrumentError]:
        """Read the error queue until it says no error (at most ``max_error_entries``).

        Reading an entry removes it, so the query is not repeated after a lost reply (the entry
        would be lost silently): a failure raises DriverError instead.
        """
        found: list[InstrumentError] = []
        for _ in range(self.max_error_entries):
            entry = await self.transport.query_as(
                self.error_query, parse_error_entry, idempotent=False
            )
            if entry.code == 0:
                return found
            found.append(entry)
        raise DriverError(self.name, self.error_query, "the error queue never emptied")

    async def check_errors(self, after: str) -> None:
        """Raise :class:`InstrumentReportedError` for the first error queued (``after`` names
        what was being done)."""
        errors = await self.drain_errors()
        if errors:
            first = errors[0]
            more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
            raise InstrumentReportedError(self.name, after, first.code, first.message + more)

    async def confirm(
        self, writes: Sequence[str], query: str, expected: str, *, rounds: int = 3
    ) -> None:
        """Send ``writes`` then check ``query`` answers ``expected`` (case-insensitive); repeat
        the writes up to ``rounds`` times (a write into a connection that broke is lost without
        an error: only a query proves it arrived). DriverError if it never reads back."""
        reply = ""
        for _ in range(rounds):
            for command in writes:
                await self.transport.write(command, idempotent=True)
            reply = (await self.transport.query(query)).strip()
            if reply.upper() == expected.upper():
                return
        raise DriverError(self.name, query, f"reads {reply!r} after {rounds} tries, expected {expected!r}")

    async def query_number(self, command: str, *, idempotent: bool = True) -> float:
        return await self.transport.query_as(command, parse_number, idempotent=idempotent)

    async def query_bool(self, command: str) -> bool:
        return await self.transport.query_as(command, parse_bool)

    async def close(self) -> None:
        """Release the connection (the output is left as it is)."""
        await self.transport.close()


def check_identity(
    name: str, idn: str, manufacturers: Sequence[str], models: Sequence[str]
) -> None:
    """Raise :class:`IdentityMismatch` unless ``idn`` names one of the accepted makers/models."""
    fields = [f.strip() for f in idn.split(",")]
    if len(fields) < 2:
        raise IdentityMismatch(name, "*IDN?", f"not an identity string: {idn!r}")
    maker, model = fields[0].upper(), fields[1].upper()
    if manufacturers and not any(m.upper() in maker for m in manufacturers):
        raise IdentityMismatch(
            name, "*IDN?", f"expected a {'/'.join(manufacturers)} instrument, got {idn!r}"
        )
    if models and not any(m.upper() in model for m in models):
        raise IdentityMismatch(name, "*IDN?", f"expected model {'/'.join(models)}, got {idn!r}")
