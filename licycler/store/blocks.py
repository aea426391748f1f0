"""Recorded samples as column arrays, and their compact form in the store: one row per block.

A block of a channel's samples is stored as one row of ``sample_blocks`` whose ``data`` holds its
columns back to back (little-endian float64/int64), each column coded as absent, constant (one
value), an increasing run (``seq``: its first value) or in full. A hardware-free run's block thus
takes 4 x 8 bytes a sample (time, voltage, current, charge), its sequence numbers, step and cycle
next to nothing. Decoding is exact: the same bits come back.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from itertools import repeat
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["BLOCK_ENCODING", "SampleRows", "decode_block", "encode_block", "merge_samples"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

BLOCK_ENCODING = "lcb1"
"""The name of the coding below, stored with every block (a later coding gets a new name)."""

_ABSENT, _CONSTANT, _FULL, _RUN = 0, 1, 2, 3
_INT_COLUMNS = frozenset({"seq", "step_seq", "cycle"})


@dataclass
class SampleRows:
    """Recorded samples of one channel as column arrays (equal lengths; SI units: s, V, A, C, Pa).

    ``charge_c`` is cumulative in the step (signed); ``pressure_pa`` is None when no rig was read
    (NaN marks a sample without a pressure reading)."""

    seq: IntArray
    t_s: FloatArray
    voltage_v: FloatArray
    current_a: FloatArray
    charge_c: FloatArray
    step_seq: IntArray
    cycle: IntArray
    pressure_pa: FloatArray | None = None

    def __len__(self) -> int:
        return int(self.seq.shape[0])

    @classmethod
    def empty(cls) -> SampleRows:
        f, i = np.empty(0, np.float64), np.empty(0, np.int64)
        return cls(i, f, f.copy(), f.copy(), f.copy(), i.copy(), i.copy(), f.copy())

    def take(self, index: npt.NDArray[Any] | slice) -> SampleRows:
        """The samples at ``index`` (a boolean mask, indices or a slice), as new arrays."""
        p = self.pressure_pa
        return SampleRows(
            self.seq[index].copy(), self.t_s[index].copy(), self.voltage_v[index].copy(),
            self.current_a[index].copy(), self.charge_c[index].copy(), self.step_seq[index].copy(),
            self.cycle[index].copy(), None if p is None else p[index].copy(),
        )  # fmt: skip

    @classmethod
    def concat(cls, parts: Sequence[SampleRows]) -> SampleRows:
        """The parts one after the other (pressure NaN where a part had none)."""
        if not parts:
            return cls.empty()
        with_p = any(p.pressure_pa is not None for p in parts)
        cols: dict[str, Any] = {}
        for f in fields(cls):
            if f.name == "pressure_pa":
                cols[f.name] = (
                    np.concatenate([p.pressure_pa if p.pressure_pa is not None else np.full(len(p), np.nan)
                                    for p in parts]) if with_p else None
                )  # fmt: skip
            else:
                cols[f.name] = np.concatenate([getattr(p, f.name) for p in parts])
        return cls(**cols)

    def rows(self, run_id: str, channel: str) -> list[tuple[Any, ...]]:
        """One tuple a sample, in the column order of the (legacy) ``samples`` table."""
        pressure: Iterable[float | None] = (
            repeat(None)
            if self.pressure_pa is None
            else [None if math.isnan(p) else p for p in self.pressure_pa.tolist()]
        )
        return list(
            zip(
                repeat(run_id), repeat(channel), self.seq.tolist(), self.t_s.tolist(), self.voltage_v.tolist(),
                self.current_a.tolist(), self.charge_c.tolist(), self.step_seq.tolist(), self.cycle.tolist(), pressure,
            )
        )  # fmt: skip


_COLUMNS = tuple(f.name for f in fields(SampleRows))


def _column_bytes(name: str, a: npt.NDArray[Any] | None) -> list[bytes]:
    if a is None or (name == "pressure_pa" and bool(np.all(np.isnan(a)))):
        return [bytes([_ABSENT])]
    dtype = "<i8" if name in _INT_COLUMNS else "<f8"
    a = np.ascontiguousarray(a, dtype=dtype)
    bits = a.view("<i8")
    first = a[:1].tobytes()
    if name == "seq" and bool(np.array_equal(a - a[0], np.arange(len(a)))):
        return [bytes([_RUN]), first]
    if bool(np.all(bits == bits[0])):  # the same bits throughout (-0.0 and NaNs kept exactly)
        return [bytes([_CONSTANT]), first]
    return [bytes([_FULL]), a.tobytes()]


def encode_block(rows: SampleRows) -> bytes:
    """The columns of ``rows`` (at least one sample) in the :data:`BLOCK_ENCODING` coding."""
    if not len(rows):
        raise ValueError("a stored block holds at least one sample")
    return b"".join(part for name in _COLUMNS for part in _column_bytes(name, getattr(rows, name)))


def decode_block(data: bytes, n: int) -> SampleRows:
    """The ``n`` samples of a block coded by :func:`encode_block` (read-only views of ``data``)."""
    view = memoryview(data)
    offset = 0
    cols: dict[str, Any] = {}
    for name in _COLUMNS:
        code = view[offset]
        offset += 1
        dtype = np.dtype("<i8" if name in _INT_COLUMNS else "<f8")
        if code == _ABSENT:
            cols[name] = np.full(n, np.nan) if name == "pressure_pa" else None
            continue
        count = n if code == _FULL else 1
        a = np.frombuffer(view, dtype=dtype, count=count, offset=offset)
        offset += count * 8
        if code == _CONSTANT:
            a = np.broadcast_to(a, (n,))
        elif code == _RUN:
            a = a[0] + np.arange(n, dtype=np.int64)
        cols[name] = a
    if offset != len(data):
        raise ValueError(f"a stored sample block has {len(data) - offset} bytes more than its {n} samples")
    return SampleRows(**cols)


def merge_samples(parts: Sequence[SampleRows], from_seq: int) -> SampleRows:
    """The samples of ``parts`` with ``seq >= from_seq``, in sequence order, each sequence number
    once (where two parts hold one, the earlier part's sample: the two hold the same reading)."""
    merged = SampleRows.concat(parts)
    if merged.pressure_pa is None:
        merged.pressure_pa = np.full(len(merged), np.nan)
    seq = merged.seq
    if len(seq) and (seq[0] < from_seq or not bool(np.all(seq[1:] > seq[:-1]))):
        order = np.argsort(seq, kind="stable")
        ordered = seq[order]
        keep = np.ones(len(order), dtype=bool)
        keep[1:] = ordered[1:] != ordered[:-1]
        keep &= ordered >= from_seq
        merged = merged.take(order[keep])
    return merged
