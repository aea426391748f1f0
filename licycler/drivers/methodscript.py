"""PalmSens MethodSCRIPT codec: data packets, script literals, errors, and the constant-current script.

Written from the MethodSCRIPT manual (v1.x) and the EmStat4 communication protocol; no vendor code.

Data packets (instrument -> host), one line each::

    Pda7F85F3Fu;ba48D503Dp,10,288

``P`` then ``;``-separated variables. A variable is a 2-letter type (``da`` applied potential,
``ba`` WE current, ...), 7 hex digits and one SI prefix character (``' '`` for none, ``i`` for an
integer): value = (hex - 2**27) x prefix. ``     nan`` (5 spaces + ``nan``) is an invalid value.
Optional ``,``-separated metadata follow: ``1X`` status bits (:class:`Status`), ``2XX`` the range
code (hex). Script literals (host -> instrument) are an integer with an optional SI prefix
(``100m``, ``-57850n``); the language has no decimal point.

Decoding and encoding work on whole blocks of packets with numpy (no per-sample Python loop on
the usual path: packets of one measurement loop share one layout); a line that breaks the layout
falls back to the strict one-line parser, which names what is wrong.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import IntFlag

import numpy as np
import numpy.typing as npt

__all__ = [
    "EMSTAT4_CURRENT_RANGES_A",
    "ERROR_MESSAGES",
    "LEASE_DIRECTORY",
    "NAN_FIELD",
    "SI_PREFIXES",
    "VALUE_OFFSET",
    "VARIABLE_TYPES",
    "Column",
    "ConstantCurrentScript",
    "LeasedCurrentScript",
    "MethodScriptError",
    "PacketBlock",
    "ScriptError",
    "Status",
    "Variable",
    "current_range_code",
    "decode_packets",
    "decode_value",
    "encode_packets",
    "encode_value",
    "format_literal",
    "format_packet",
    "lease_file_path",
    "lease_file_start_ms",
    "open_circuit_script",
    "parse_error",
    "parse_literal",
    "parse_packet",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

SI_PREFIXES: dict[str, float] = {
    "a": 1e-18, "f": 1e-15, "p": 1e-12, "n": 1e-9, "u": 1e-6, "m": 1e-3, " ": 1.0,
    "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18,
}  # fmt: skip
"""SI prefix character -> factor (``' '``: none). ``i`` marks an integer (factor 1)."""

VALUE_OFFSET = 1 << 27
"""Packet values are unsigned 28-bit hex; the signed value is hex - 2**27."""

_VALUE_LIMIT = VALUE_OFFSET - 1
_LITERAL_LIMIT = 2**31 - 1
NAN_FIELD = "     nan"

VARIABLE_TYPES: dict[str, tuple[str, str]] = {
    "aa": ("unknown", ""),
    "ab": ("WE vs RE potential", "V"),
    "ac": ("CE vs GND potential", "V"),
    "ba": ("WE current", "A"),
    "da": ("applied potential", "V"),
    "db": ("applied current", "A"),
    "eb": ("time", "s"),
    "ja": ("generic 1", ""),
}
"""The variable types this codec names (manual appendix); other well-formed codes decode too."""

EMSTAT4_CURRENT_RANGES_A: dict[int, float] = {
    3: 1e-9, 6: 10e-9, 9: 100e-9, 12: 1e-6, 15: 10e-6, 18: 100e-6, 21: 1e-3, 24: 10e-3, 27: 100e-3,
}  # fmt: skip
"""EmStat4 current range code (packet metadata ``2XX``) -> full scale, A (1 nA ... 100 mA; LR
models stop at 10 mA, HR models start at 100 nA)."""

ERROR_MESSAGES: dict[int, str] = {
    0x0001: "unspecified error",
    0x0002: "wrong variable type",
    0x0003: "unknown command",
    0x0006: "command not valid in the current state (e.g. abort with nothing running)",
    0x0007: "invalid parameter value",
    0x000C: "no script loaded",
    0x0014: "cannot measure the open-circuit potential while the cell is on",
    0x4001: "unknown script command",
    0x4004: "unexpected character in script",
    0x400B: "measurement loops cannot be nested",
    0x4018: "script ended unexpectedly",
    0x401A: "command not allowed inside a measurement loop",
    0x400C: "command not allowed here",
    0x4026: "variable declared twice",
    0x4027: "the cell must be on (cell_on) first",
    0x4204: "parameter must be positive",
    0x4205: "parameter out of range for this command",
    0x420A: "too many parameters",
    0x420B: "variable used before it was declared",
}
"""MethodSCRIPT error codes (``!XXXX``) that the emulation produces and the driver names."""


class MethodScriptError(ValueError):
    """Text that is not valid MethodSCRIPT output (a malformed packet, literal or error line)."""


class Status(IntFlag):
    """Packet metadata ``1X`` status bits."""

    OK = 0
    TIMING_ERROR = 0x1
    OVERLOAD = 0x2
    UNDERLOAD = 0x4
    OVERLOAD_WARNING = 0x8


# --------------------------------------------------------------------------------------------
# scalar values


def decode_value(field_text: str) -> float:
    """8 characters (7 hex digits + prefix, or ``     nan``) -> value in SI units."""
    if field_text == NAN_FIELD:
        return math.nan
    if len(field_text) != 8:
        raise MethodScriptError(f"value field {field_text!r} is not 8 characters")
    digits, prefix = field_text[:7], field_text[7]
    if not _is_hex(digits):
        raise MethodScriptError(f"value field {field_text!r} is not 7 hex digits")
    raw = int(digits, 16) - VALUE_OFFSET
    if prefix == "i":
        return float(raw)
    factor = SI_PREFIXES.get(prefix)
    if factor is None:
        raise MethodScriptError(f"unknown SI prefix {prefix!r} in {field_text!r}")
    return raw * factor


def encode_value(value: float, *, integer: bool = False) -> str:
    """Value -> 8 characters, with the finest prefix whose mantissa fits (as the instrument does)."""
    field_bytes: bytes = _encode_fields(np.asarray([value], dtype=np.float64), integer=integer)[0]
    return field_bytes.decode("ascii")


def _is_hex(text: str) -> bool:
    return bool(text) and all(c in "0123456789abcdefABCDEF" for c in text)


# --------------------------------------------------------------------------------------------
# variables and packets (one line)


@dataclass(frozen=True)
class Variable:
    """One variable of a packet: type code, SI value (NaN if invalid), status bits, range code."""

    type_code: str
    value: float
    status: int = 0
    current_range: int | None = None

    @property
    def unit(self) -> str:
        return VARIABLE_TYPES.get(self.type_code, ("", ""))[1]


_TYPE_RE = re.compile(r"[a-z]{2}\Z")


def _parse_variable(text: str) -> Variable:
    type_code, value_field, meta = text[:2], text[2:10], text[10:]
    if not _TYPE_RE.match(type_code):
        raise MethodScriptError(f"variable {text!r}: type {type_code!r} is not 2 letters a-z")
    value = decode_value(value_field)
    status, current_range = 0, None
    if meta:
        if meta[0] != ",":
            raise MethodScriptError(f"variable {text!r}: unexpected {meta[:8]!r} after the value")
        for token in meta[1:].split(","):
            if not _is_hex(token):
                raise MethodScriptError(f"variable {text!r}: metadata {token!r} is not hex")
            if token[0] == "1" and len(token) == 2:
                status = int(token[1], 16)
            elif token[0] == "2" and len(token) == 3:
                current_range = int(token[1:], 16)
            # other metadata kinds (e.g. 4X noise) are skipped: newer firmware may add more
    return Variable(type_code, value, status, current_range)


def parse_packet(line: str) -> tuple[Variable, ...]:
    """One ``P...`` line (terminator optional) -> its variables; MethodScriptError if malformed."""
    body = line.rstrip("\r\n")
    if not body.startswith("P") or len(body) < 2:
        raise MethodScriptError(f"not a data packet: {body[:40]!r}")
    return tuple(_parse_variable(part) for part in body[1:].split(";"))


def format_packet(variables: Sequence[Variable]) -> str:
    """Variables -> one ``P...`` line (no terminator); status/range written when non-default."""
    columns = [
        Column(
            v.type_code,
            np.asarray([v.value]),
            None if not v.status and v.current_range is None else np.asarray([v.status]),
            None if v.current_range is None else np.asarray([v.current_range]),
        )
        for v in variables
    ]
    return encode_packets(columns).decode("ascii").rstrip("\n")


# --------------------------------------------------------------------------------------------
# blocks of packets (vectorised)


@dataclass(frozen=True)
class Column:
    """One variable of every packet in a block: type code, values (SI), and optional metadata
    (status bits, range code) per packet."""

    type_code: str
    values: FloatArray
    status: IntArray | None = None
    current_range: IntArray | None = None


@dataclass(frozen=True)
class PacketBlock:
    """Decoded packets: ``values[i, j]`` is variable j of packet i (SI units, NaN if invalid);
    ``status`` the status bits (0 if absent); ``current_range`` the range code (-1 if absent)."""

    type_codes: tuple[str, ...]
    values: FloatArray
    status: IntArray
    current_range: IntArray
    rejected: tuple[str, ...] = field(default=())
    """Lines that were dropped because they were not valid packets (with ``strict=False``)."""

    def __len__(self) -> int:
        return int(self.values.shape[0])

    def column(self, type_code: str) -> FloatArray:
        """The values of the first variable of that type (KeyError if the packets have none)."""
        return self.values[:, self._index(type_code)]

    def column_status(self, type_code: str) -> IntArray:
        return self.status[:, self._index(type_code)]

    def column_range(self, type_code: str) -> IntArray:
        return self.current_range[:, self._index(type_code)]

    def _index(self, type_code: str) -> int:
        try:
            return self.type_codes.index(type_code)
        except ValueError:
            raise KeyError(f"packets have no variable of type {type_code!r}") from None


_HEX_DIGITS = np.frombuffer(b"0123456789ABCDEF", dtype=np.uint8)
_PREFIX_CHARS = "afpnum kMGTPE"
_PREFIX_EXPONENTS = np.arange(-18, 19, 3)
_NIBBLE_SHIFTS = np.arange(24, -1, -4, dtype=np.int64)

# byte -> nibble value (255: not a hex digit); byte -> prefix factor (NaN: not a prefix)
_NIBBLE_LUT = np.full(256, 255, dtype=np.uint8)
for _i, _c in enumerate(b"0123456789ABCDEF"):
    _NIBBLE_LUT[_c] = _i
for _i, _c in enumerate(b"abcdef"):
    _NIBBLE_LUT[_c] = 10 + _i
_PREFIX_LUT = np.full(256, np.nan)
for _ch, _factor in SI_PREFIXES.items():
    _PREFIX_LUT[ord(_ch)] = _factor
_PREFIX_LUT[ord("i")] = 1.0
_NAN_BYTES = np.frombuffer(NAN_FIELD.encode(), dtype=np.uint8)


def _encode_fields(values: FloatArray, *, integer: bool = False) -> npt.NDArray[np.bytes_]:
    """Values -> array of 8-byte value fields (vectorised)."""
    v = np.asarray(values, dtype=np.float64).ravel()
    n = v.size
    if integer:
        mantissa = np.rint(np.nan_to_num(v)).astype(np.int64)
        prefix_bytes = np.full(n, ord("i"), dtype=np.uint8)
        bad = ~np.isfinite(v) | (np.abs(mantissa) > _VALUE_LIMIT)
    else:
        magnitude = np.abs(v)
        with np.errstate(divide="ignore", invalid="ignore"):
            needed = np.log10(magnitude / _VALUE_LIMIT)
        exponent = np.where(magnitude > 0, np.ceil(np.nan_to_num(needed, nan=-18.0, neginf=-18.0) / 3) * 3, 0)
        exponent = np.clip(exponent, -18, 18).astype(np.int64)
        with np.errstate(invalid="ignore", over="ignore"):
            scaled = np.rint(v / 10.0 ** exponent.astype(np.float64))
            # rounding can carry over the limit: take the next prefix up
            over = np.abs(scaled) > _VALUE_LIMIT
            exponent = np.where(over & (exponent < 18), exponent + 3, exponent)
            scaled = np.rint(v / 10.0 ** exponent.astype(np.float64))
        bad = ~np.isfinite(scaled) | (np.abs(scaled) > _VALUE_LIMIT)
        mantissa = np.where(bad, 0, scaled).astype(np.int64)
        prefix_idx = (exponent + 18) // 3
        prefix_bytes = np.frombuffer(_PREFIX_CHARS.encode(), dtype=np.uint8)[prefix_idx]
    unsigned = mantissa + VALUE_OFFSET
    digits = _HEX_DIGITS[(unsigned[:, None] >> _NIBBLE_SHIFTS) & 0xF]
    out = np.empty((n, 8), dtype=np.uint8)
    out[:, :7] = digits
    out[:, 7] = prefix_bytes
    out[bad] = _NAN_BYTES
    return out.view("S8").ravel()


def encode_packets(columns: Sequence[Column]) -> bytes:
    """A block of packets, one ``P...\\n`` line each, as bytes ready to send (vectorised).

    Each column with ``status`` gets ``,1X`` and with ``current_range`` gets ``,2XX``.
    """
    if not columns:
        raise ValueError("a packet needs at least one variable")
    n = int(np.asarray(columns[0].values).size)
    pieces: list[npt.NDArray[np.uint8]] = [np.full((n, 1), ord("P"), dtype=np.uint8)]
    for j, col in enumerate(columns):
        if not _TYPE_RE.match(col.type_code):
            raise ValueError(f"variable type {col.type_code!r} is not 2 letters a-z")
        values = np.asarray(col.values, dtype=np.float64).ravel()
        if values.size != n:
            raise ValueError("all columns of a block need the same number of packets")
        head = (";" if j else "") + col.type_code
        pieces.append(np.tile(np.frombuffer(head.encode(), dtype=np.uint8), (n, 1)))
        pieces.append(_encode_fields(values).view(np.uint8).reshape(n, 8))
        if col.status is not None:
            status = np.asarray(col.status, dtype=np.int64).ravel() & 0xF
            meta = np.empty((n, 3), dtype=np.uint8)
            meta[:, 0], meta[:, 1], meta[:, 2] = ord(","), ord("1"), _HEX_DIGITS[status]
            pieces.append(meta)
        if col.current_range is not None:
            rng = np.asarray(col.current_range, dtype=np.int64).ravel() & 0xFF
            meta = np.empty((n, 4), dtype=np.uint8)
            meta[:, 0], meta[:, 1] = ord(","), ord("2")
            meta[:, 2], meta[:, 3] = _HEX_DIGITS[rng >> 4], _HEX_DIGITS[rng & 0xF]
            pieces.append(meta)
    pieces.append(np.full((n, 1), ord("\n"), dtype=np.uint8))
    return np.hstack(pieces).tobytes()


@dataclass(frozen=True)
class _Layout:
    """Byte offsets of one packet layout (taken from the first line of a block)."""

    length: int
    type_codes: tuple[str, ...]
    value_offsets: tuple[int, ...]
    status_offsets: tuple[int | None, ...]
    range_offsets: tuple[int | None, ...]
    fixed: npt.NDArray[np.intp]  # offsets of bytes that must equal the template's


def _layout_of(line: str) -> _Layout:
    parse_packet(line)  # validates the template itself
    types: list[str] = []
    value_offsets: list[int] = []
    status_offsets: list[int | None] = []
    range_offsets: list[int | None] = []
    fixed: list[int] = [0]
    pos = 1
    for k, part in enumerate(line[1:].split(";")):
        if k:
            fixed.append(pos - 1)  # the ';'
        types.append(part[:2])
        fixed += [pos, pos + 1]
        value_offsets.append(pos + 2)
        status_at: int | None = None
        range_at: int | None = None
        meta_pos = pos + 10
        for token in part[10:].split(",")[1:] if len(part) > 10 else []:
            fixed += [meta_pos, meta_pos + 1]  # ',' and the kind digit
            if token[0] == "1" and len(token) == 2:
                status_at = meta_pos + 2
            elif token[0] == "2" and len(token) == 3:
                range_at = meta_pos + 2
            else:
                fixed += list(range(meta_pos + 2, meta_pos + 1 + len(token)))
            meta_pos += 1 + len(token)
        status_offsets.append(status_at)
        range_offsets.append(range_at)
        pos += len(part) + 1
    return _Layout(
        len(line),
        tuple(types),
        tuple(value_offsets),
        tuple(status_offsets),
        tuple(range_offsets),
        np.asarray(fixed, dtype=np.intp),
    )


def _decode_fixed(lines: Sequence[str], layout: _Layout) -> PacketBlock | None:
    """Decode lines that all share ``layout``; None if any byte breaks it."""
    n, width = len(lines), layout.length
    try:
        raw = "".join(lines).encode("ascii")
    except UnicodeEncodeError:
        return None
    if len(raw) != n * width:
        return None
    m = np.frombuffer(raw, dtype=np.uint8).reshape(n, width)
    if not np.array_equal(m[:, layout.fixed], np.broadcast_to(m[0, layout.fixed], (n, layout.fixed.size))):
        return None
    k = len(layout.type_codes)
    values = np.empty((n, k))
    status = np.zeros((n, k), dtype=np.int64)
    rng = np.full((n, k), -1, dtype=np.int64)
    for j, off in enumerate(layout.value_offsets):
        fld = m[:, off : off + 8]
        is_nan = np.all(fld == _NAN_BYTES, axis=1)
        nibbles = _NIBBLE_LUT[fld[:, :7]]
        factor = _PREFIX_LUT[fld[:, 7]]
        if np.any(((nibbles == 255).any(axis=1) | np.isnan(factor)) & ~is_nan):
            return None
        unsigned = (nibbles.astype(np.int64) << _NIBBLE_SHIFTS).sum(axis=1)
        values[:, j] = np.where(is_nan, np.nan, (unsigned - VALUE_OFFSET) * np.nan_to_num(factor))
        s_off, r_off = layout.status_offsets[j], layout.range_offsets[j]
        if s_off is not None:
            s = _NIBBLE_LUT[m[:, s_off]]
            if np.any(s == 255):
                return None
            status[:, j] = s
        if r_off is not None:
            r = _NIBBLE_LUT[m[:, r_off : r_off + 2]]
            if np.any(r == 255):
                return None
            rng[:, j] = (r[:, 0].astype(np.int64) << 4) | r[:, 1]
    return PacketBlock(layout.type_codes, values, status, rng)


def decode_packets(lines: Sequence[str], *, strict: bool = True) -> PacketBlock:
    """A block of ``P...`` lines (terminators stripped) -> :class:`PacketBlock`.

    All packets must carry the same variable types in the same order. With ``strict`` a malformed
    line raises :class:`MethodScriptError`; otherwise it is dropped and listed in ``rejected``.
    """
    lines = [ln.rstrip("\r\n") for ln in lines]
    if not lines:
        return PacketBlock((), np.empty((0, 0)), np.empty((0, 0), np.int64), np.empty((0, 0), np.int64))
    try:
        layout = _layout_of(lines[0])
        block = _decode_fixed(lines, layout)
    except MethodScriptError:
        block = None
    if block is not None:
        return block
    # slow path: line by line, naming (or dropping) what is wrong
    parsed: list[tuple[Variable, ...]] = []
    rejected: list[str] = []
    types: tuple[str, ...] | None = None
    for line in lines:
        try:
            variables = parse_packet(line)
            these = tuple(v.type_code for v in variables)
            if types is not None and these != types:
                raise MethodScriptError(f"packet {line[:40]!r} has variables {these}, not {types}")
        except MethodScriptError:
            if strict:
                raise
            rejected.append(line)
            continue
        types = these
        parsed.append(variables)
    if types is None:
        empty = np.empty((0, 0))
        return PacketBlock((), empty, empty.astype(np.int64), empty.astype(np.int64), tuple(rejected))
    values = np.array([[v.value for v in p] for p in parsed], dtype=np.float64)
    status = np.array([[v.status for v in p] for p in parsed], dtype=np.int64)
    rng = np.array(
        [[-1 if v.current_range is None else v.current_range for v in p] for p in parsed],
        dtype=np.int64,
    )
    return PacketBlock(types, values, status, rng, tuple(rejected))


# --------------------------------------------------------------------------------------------
# script literals


def format_literal(value: float) -> str:
    """A number as a script literal: an integer with the coarsest SI prefix that keeps 9
    significant digits (0.0015 -> ``1500u``, -0.5 -> ``-500m``, 2 -> ``2``, 0 -> ``0``)."""
    if isinstance(value, bool) or not math.isfinite(value):
        raise ValueError(f"{value!r} cannot be written as a MethodSCRIPT literal")
    if value == 0:
        return "0"
    rounded = float(f"{value:.9g}")
    for prefix in ("T", "G", "M", "k", " ", "m", "u", "n", "p", "f", "a"):
        scaled = rounded / SI_PREFIXES[prefix]
        nearest = round(scaled)
        if nearest == 0 or abs(nearest) > _LITERAL_LIMIT:
            continue
        if abs(scaled - nearest) <= 1e-9 * abs(nearest):
            return f"{nearest}{prefix.strip()}"
    raise ValueError(f"{value!r} cannot be written as an integer with an SI prefix")


_LITERAL_RE = re.compile(r"([+-]?\d+)([afpnumkMGTPE]?)\Z")
_INT_LITERAL_RE = re.compile(r"([+-]?\d+)i\Z")
_HEX_LITERAL_RE = re.compile(r"0x([0-9A-Fa-f]+)i?\Z")


def parse_literal(text: str) -> float:
    """A script literal (``100m``, ``-5``, ``12i``, ``0x1Fi``) -> value; MethodScriptError if not one."""
    m = _HEX_LITERAL_RE.match(text)
    if m:
        return float(int(m.group(1), 16))
    m = _INT_LITERAL_RE.match(text)
    if m:
        return float(int(m.group(1)))
    m = _LITERAL_RE.match(text)
    if m:
        return int(m.group(1)) * SI_PREFIXES[m.group(2) or " "]
    raise MethodScriptError(f"{text!r} is not a MethodSCRIPT number (integer + SI prefix)")


# --------------------------------------------------------------------------------------------
# errors


@dataclass(frozen=True)
class ScriptError:
    """An ``!XXXX`` error the instrument reported, with the script line/column when given."""

    code: int
    line: int | None = None
    column: int | None = None

    @property
    def message(self) -> str:
        text = ERROR_MESSAGES.get(self.code, "unlisted MethodSCRIPT error")
        if self.line is not None:
            text += f" (script line {self.line}" + (f", column {self.column})" if self.column is not None else ")")
        return text


_ERROR_RE = re.compile(r"!([0-9A-Fa-f]{4})(?::\s*Line\s+(\d+)(?:,\s*Col\s+(\d+))?)?")


def parse_error(line: str) -> ScriptError | None:
    """The error in a reply line (``Z!0006``, ``e!4001: Line 3, Col 1``, ``!4205: Line 12``), or None."""
    m = _ERROR_RE.search(line)
    if m is None:
        return None
    return ScriptError(
        int(m.group(1), 16),
        int(m.group(2)) if m.group(2) else None,
        int(m.group(3)) if m.group(3) else None,
    )


def current_range_code(current_range_a: float) -> int:
    """The EmStat4 range code of the smallest range that holds ``current_range_a`` (A)."""
    for code, full_scale in sorted(EMSTAT4_CURRENT_RANGES_A.items()):
        if abs(current_range_a) <= full_scale * (1 + 1e-9):
            return code
    raise ValueError(f"{current_range_a!r} A is above the largest EmStat4 range (100 mA)")


# --------------------------------------------------------------------------------------------
# scripts


GALVANOSTATIC_MODE = 6
"""``set_pgstat_mode`` value for galvanostatic operation (EmStat4 / Nexus)."""


@dataclass(frozen=True)
class ConstantCurrentScript:
    """A constant-current measurement loop (chronopotentiometry) as MethodSCRIPT lines.

    The loop applies ``current_a`` (A) for ``run_time_s`` (s), sending one packet every
    ``interval_s`` (s) with the time since the loop started (``eb``), the WE potential (``ab``)
    and the WE current (``ba``). ``current_range_a`` selects the galvanostat's range (A);
    ``potential_range_v`` fixes the potential range (None: autorange up to ``voltage_limit_v``).
    When ``voltage_limit_v`` is set the loop breaks as soon as |E| exceeds it (the cell is then
    switched off by ``on_finished:``). Every script ends with ``on_finished:`` / ``cell_off``.
    """

    current_a: float
    interval_s: float
    run_time_s: float
    current_range_a: float
    voltage_limit_v: float | None = None
    potential_range_v: float | None = None
    max_bandwidth_hz: float | None = None

    def __post_init__(self) -> None:
        if not self.interval_s > 0:
            raise ValueError(f"interval_s must be > 0, got {self.interval_s}")
        if not self.run_time_s >= self.interval_s:
            raise ValueError(f"run_time_s ({self.run_time_s}) must be >= interval_s ({self.interval_s})")
        if abs(self.current_a) > abs(self.current_range_a) * (1 + 1e-9):
            raise ValueError(f"current {self.current_a} A is outside the {self.current_range_a} A range")
        if self.voltage_limit_v is not None and not self.voltage_limit_v > 0:
            raise ValueError(f"voltage_limit_v must be > 0, got {self.voltage_limit_v}")

    def lines(self) -> list[str]:
        """The script lines (without the leading ``e`` and the closing empty line)."""
        out = ["var t", "var p", "var c", *self._setup_lines(), "timer_start", self._loop_line(), *self._body_lines()]
        out += ["endloop", "on_finished:", "cell_off"]
        return out

    def _loop_line(self) -> str:
        lit = format_literal
        return f"meas_loop_cp p c {lit(self.current_a)} {lit(self.interval_s)} {lit(self.run_time_s)}"

    def _limit_checks(self, indent: str) -> list[str]:
        """``breakloop`` when |p| exceeds the voltage limit (none without a limit)."""
        if self.voltage_limit_v is None:
            return []
        lit = format_literal
        return [
            f"{indent}if p > {lit(self.voltage_limit_v)}",
            f"{indent}  breakloop",
            f"{indent}endif",
            f"{indent}if p < {lit(-self.voltage_limit_v)}",
            f"{indent}  breakloop",
            f"{indent}endif",
        ]

    def _body_lines(self) -> list[str]:
        """The measurement loop's body: one packet (t, p, c), then the limit checks."""
        packet = ["  timer_get t", "  pck_start", "  pck_add t", "  pck_add p", "  pck_add c", "  pck_end"]
        return [*packet, *self._limit_checks("  ")]

    def _setup_lines(self) -> list[str]:
        """Channel, galvanostatic mode, bandwidth, ranges, then the cell on at 0 A."""
        lit = format_literal
        out = ["set_pgstat_chan 0", f"set_pgstat_mode {GALVANOSTATIC_MODE}"]
        if self.max_bandwidth_hz is not None:
            out.append(f"set_max_bandwidth {lit(self.max_bandwidth_hz)}")
        out.append(f"set_range ba {lit(abs(self.current_range_a))}")
        if self.potential_range_v is not None:
            out.append(f"set_range ab {lit(self.potential_range_v)}")
        elif self.voltage_limit_v is not None:
            out.append(f"set_autoranging ab 50m {lit(self.voltage_limit_v)}")
        out += ["set_i 0", "cell_on"]
        return out


LEASE_DIRECTORY = "/licycler"
"""Where the lease scripts keep their readings on the instrument's storage."""


def lease_file_path(start_utc_ms: int) -> str:
    """The file of the lease script started at ``start_utc_ms`` (UTC, ms since the epoch)."""
    return f"{LEASE_DIRECTORY}/{int(start_utc_ms):013d}.txt"


def lease_file_start_ms(name: str) -> int | None:
    """The start (UTC ms) named by a lease file (``1733530000123.txt``), or None if not one."""
    stem, dot, ext = name.rpartition("/")[2].partition(".")
    return int(stem) if dot and ext == "txt" and stem.isdigit() else None


@dataclass(frozen=True)
class LeasedCurrentScript(ConstantCurrentScript):
    """:class:`ConstantCurrentScript` as an instrument-side dead-man lease.

    The ``meas_loop_cp`` runs for ``run_time_s`` (the lease) inside a ``loop`` that starts it again
    only when it ended early, i.e. when the host aborted the measurement loop alone (``Y``: the
    re-arm; the cell stays on, the script's timer ``eb`` runs on). A loop that ran its full time
    (no re-arm), or a voltage-limit break, leaves the ``loop``; ``on_finished:`` then switches the
    cell off. Output goes to the serial line and to ``file_path`` on the instrument's storage
    (``file_open`` mode 1: create or append; ``set_script_output 3``: both).

    ``rest_at_s`` (s on the script's timer, from its ``timer_start``), when given: the setpoint
    holds up to and including the first reading taken at or after it (``if t >= r`` breaks the
    measurement loop there); the rest of that bounded loop's lease is a second ``meas_loop_cp`` at
    0 A (the cell on, at rest) that ends at the lease's last reading. A ``Y`` during the rest ends
    it too: the script starts the next bounded loop at the setpoint, which holds for one reading
    when ``rest_at_s`` has passed. None: no rest (the setpoint to the lease's end).
    """

    file_path: str = ""
    rest_at_s: float | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.file_path.startswith("/") or '"' in self.file_path or " " in self.file_path:
            raise ValueError(f"file_path must be an absolute path without quotes or spaces: {self.file_path!r}")
        if self.rest_at_s is not None and not (math.isfinite(self.rest_at_s) and self.rest_at_s >= 0):
            raise ValueError(f"rest_at_s must be finite and >= 0, got {self.rest_at_s}")

    @property
    def full_run_threshold_s(self) -> float:
        """A measurement loop that lasted at least this long (s) ran out (half an interval short
        of its run time, which it ends at after its last point)."""
        points = math.floor(self.run_time_s / self.interval_s + 1e-9)
        return (points - 0.5) * self.interval_s

    def lines(self) -> list[str]:
        lit = format_literal
        threshold = lit(self.full_run_threshold_s)
        rest = self.rest_at_s is not None
        out = ["var t", "var p", "var c", "var s", "var e", *(["var r", "var d"] if rest else [])]
        out += [f'file_open "{self.file_path}" 1', "set_script_output 3"]
        out += self._setup_lines()
        out += ["store_var p 0 ab", "store_var e 0 eb"]
        if self.rest_at_s is not None:
            out.append(f"store_var r {lit(round(self.rest_at_s, 6))} eb")
        out += ["timer_start", f"loop e < {threshold}", "  timer_get s"]
        if rest:
            out.append("  store_var t -1 eb")  # no reading of this bounded loop yet
        out += ["  " + self._loop_line()]
        out += ["  " + ln for ln in self._body_lines()]
        if rest:
            out += ["    if t >= r", "      breakloop", "    endif"]
        out += ["  endloop", "  timer_get e", "  sub_var e s", *self._limit_checks("  ")]
        if rest:
            # the setpoint's time is up before the lease's: 0 A to the lease's last reading
            zero = f"meas_loop_cp p c 0 {lit(self.interval_s)} {lit(self.run_time_s)}"
            out += ["  if t >= r", f"    if e < {threshold}"]
            out += [f"      store_var d {threshold} eb", "      add_var d s", "      " + zero]
            out += ["      " + ln for ln in self._body_lines()]
            out += ["        if t >= d", "          breakloop", "        endif", "      endloop"]
            out += ["      timer_get e", "      sub_var e s", *self._limit_checks("      "), "    endif", "  endif"]
        out += ["endloop", "on_finished:", "cell_off", "file_close"]
        return out


def open_circuit_script(interval_s: float) -> list[str]:
    """One open-circuit reading (``meas_loop_ocp``): a packet with time, potential (cell off)."""
    lit = format_literal(interval_s)
    return [
        "var t",
        "var p",
        "set_pgstat_chan 0",
        "set_pgstat_mode 2",
        "cell_off",
        "timer_start",
        f"meas_loop_ocp p {lit} {lit}",
        "  timer_get t",
        "  pck_start",
        "  pck_add t",
        "  pck_add p",
        "  pck_end",
        "endloop",
        "on_finished:",
        "cell_off",
    ]
