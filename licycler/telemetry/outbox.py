"""The station's bounded queues: reliable records until a recorder confirms them, and samples.

Nothing here waits: the engine's callbacks only append, and every bound is enforced by dropping
(counted), never by blocking. :class:`Outbox` keeps QoS 1 records (runs, cycles, steps, events) in
order until a recorder acknowledges their key (so a broker killed between its PUBACK and the
delivery loses nothing: the station sends again); :class:`SampleBuffer` keeps the newest samples
of each channel for the next batch.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass

import numpy as np

from licycler.store.sql import SampleRows

__all__ = ["Outbox", "Record", "SampleBuffer", "split_rows"]


@dataclass
class Record:
    """One message to deliver at QoS 1. ``key`` None: delivered once the broker has it (PUBACK);
    otherwise kept until a recorder acknowledges ``key``."""

    topic: str
    payload: bytes
    key: str | None
    retain: bool = False
    sent_at: float | None = None


class Outbox:
    """Reliable records in order, at most ``max_records``.

    A record moves: unsent -> in flight (handed to the client) -> sent (PUBACK) -> gone (acked by a
    recorder, or at PUBACK when it has no key). When full, the oldest *sent* record is evicted
    first (``evicted``: the broker had it, no recorder confirmed it), else the oldest unsent one
    (``dropped``: never left the station).
    """

    def __init__(self, max_records: int = 100_000) -> None:
        self.max_records = max_records
        self._next_id = 0
        self._unsent: OrderedDict[int, Record] = OrderedDict()
        self._inflight: dict[int, Record] = {}
        self._sent: OrderedDict[int, Record] = OrderedDict()
        self._by_key: dict[str, int] = {}
        self.put_count = 0
        self.acked = 0
        self.evicted = 0
        self.dropped = 0

    def __len__(self) -> int:
        return len(self._unsent) + len(self._inflight) + len(self._sent)

    @property
    def unsent(self) -> int:
        return len(self._unsent)

    @property
    def inflight(self) -> int:
        return len(self._inflight)

    @property
    def unconfirmed(self) -> int:
        """Records with a key that no recorder has acknowledged yet."""
        return len(self._by_key)

    def put(self, record: Record) -> None:
        """Queue ``record`` (replacing a queued record with the same key)."""
        if record.key is not None and record.key in self._by_key:
            self._remove(self._by_key.pop(record.key))
        while len(self) >= self.max_records:
            if self._sent:
                rid, old = self._sent.popitem(last=False)
                self.evicted += 1
            elif self._unsent:
                rid, old = self._unsent.popitem(last=False)
                self.dropped += 1
            else:  # everything is in flight: drop the newcomer
                self.dropped += 1
                return
            if old.key is not None:
                self._by_key.pop(old.key, None)
        rid = self._next_id
        self._next_id += 1
        self._unsent[rid] = record
        if record.key is not None:
            self._by_key[record.key] = rid
        self.put_count += 1

    def take(self, n: int) -> list[tuple[int, Record]]:
        """Up to ``n`` unsent records, oldest first, now in flight."""
        out: list[tuple[int, Record]] = []
        while self._unsent and len(out) < n:
            rid, record = self._unsent.popitem(last=False)
            self._inflight[rid] = record
            out.append((rid, record))
        return out

    def sent(self, rid: int, now_s: float) -> None:
        """The broker has record ``rid`` (PUBACK at ``now_s``, monotonic s)."""
        record = self._inflight.pop(rid, None)
        if record is None:
            return
        if record.key is None:
            return
        record.sent_at = now_s
        self._sent[rid] = record

    def ack(self, keys: list[str]) -> int:
        """A recorder has committed these keys; returns how many records that removed."""
        removed = 0
        for key in keys:
            rid = self._by_key.pop(key, None)
            if rid is not None and self._remove(rid):
                removed += 1
        self.acked += removed
        return removed

    def _remove(self, rid: int) -> bool:
        return any(queue.pop(rid, None) is not None for queue in (self._unsent, self._inflight, self._sent))

    def resend_all(self) -> None:
        """Everything not yet confirmed goes out again, in the original order (after a reconnect,
        or when a recorder comes online)."""
        merged = {**self._unsent, **self._inflight, **self._sent}
        self._inflight.clear()
        self._sent.clear()
        self._unsent = OrderedDict(sorted(merged.items()))
        for record in self._unsent.values():
            record.sent_at = None

    def resend_older(self, now_s: float, age_s: float) -> int:
        """Send again the records sent more than ``age_s`` ago and still unconfirmed."""
        stale = {rid: r for rid, r in self._sent.items() if r.sent_at is not None and now_s - r.sent_at >= age_s}
        if not stale:
            return 0
        for rid, record in stale.items():
            del self._sent[rid]
            record.sent_at = None
        self._unsent = OrderedDict(sorted({**self._unsent, **stale}.items()))
        return len(stale)

    def drained(self, *, need_acks: bool) -> bool:
        """Nothing left to send (and, with ``need_acks``, nothing left unconfirmed)."""
        if self._unsent or self._inflight:
            return False
        return not (need_acks and self._by_key)


class SampleBuffer:
    """The samples of each (run, channel) not yet published, at most ``max_rows`` in all: when
    full, the oldest blocks are dropped (counted per channel in ``dropped``). Adding is O(1)."""

    def __init__(self, max_rows: int = 200_000) -> None:
        self.max_rows = max_rows
        self.rows = 0
        self._fifo: deque[tuple[str, str, SampleRows]] = deque()
        self.dropped: dict[str, int] = {}
        self.added = 0

    def add(self, run_id: str, channel: str, rows: SampleRows) -> None:
        n = len(rows)
        if n == 0:
            return
        self.added += n
        if n > self.max_rows:
            self.dropped[channel] = self.dropped.get(channel, 0) + n
            return
        self._fifo.append((run_id, channel, rows))
        self.rows += n
        while self.rows > self.max_rows:
            _, old_channel, old = self._fifo.popleft()
            self.rows -= len(old)
            self.dropped[old_channel] = self.dropped.get(old_channel, 0) + len(old)

    @property
    def total_dropped(self) -> int:
        return sum(self.dropped.values())

    def take(self) -> list[tuple[str, str, SampleRows]]:
        """Every pending (run, channel, rows), each channel's blocks joined into one, in order."""
        grouped: dict[tuple[str, str], list[SampleRows]] = {}
        for run_id, channel, rows in self._fifo:
            grouped.setdefault((run_id, channel), []).append(rows)
        self._fifo.clear()
        self.rows = 0
        return [(run_id, channel, _concat(blocks)) for (run_id, channel), blocks in grouped.items()]


def _concat(blocks: list[SampleRows]) -> SampleRows:
    if len(blocks) == 1:
        return blocks[0]
    pressure = None
    if any(b.pressure_pa is not None for b in blocks):
        pressure = np.concatenate(
            [b.pressure_pa if b.pressure_pa is not None else np.full(len(b), np.nan) for b in blocks]
        )
    return SampleRows(
        np.concatenate([b.seq for b in blocks]), np.concatenate([b.t_s for b in blocks]),
        np.concatenate([b.voltage_v for b in blocks]), np.concatenate([b.current_a for b in blocks]),
        np.concatenate([b.charge_c for b in blocks]), np.concatenate([b.step_seq for b in blocks]),
        np.concatenate([b.cycle for b in blocks]), pressure,
    )  # fmt: skip


def split_rows(rows: SampleRows, max_rows: int) -> list[SampleRows]:
    """``rows`` cut into pieces of at most ``max_rows``."""
    n = len(rows)
    if n <= max_rows:
        return [rows]
    out = []
    for start in range(0, n, max_rows):
        s = slice(start, start + max_rows)
        out.append(SampleRows(
            rows.seq[s], rows.t_s[s], rows.voltage_v[s], rows.current_a[s], rows.charge_c[s], rows.step_seq[s],
            rows.cycle[s], None if rows.pressure_pa is None else rows.pressure_pa[s],
        ))  # fmt: skip
    return out
