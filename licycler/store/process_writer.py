"""A store writer in a process of its own, for hardware-free runs.

A writer thread shares the interpreter lock with control: measured on a 1000-cycle hardware-free
run, every numpy call of the twin and the monitors that lets the lock go hands it to the writer,
and the run's own code ran 1.6 times slower beside it. :class:`ProcessStoreWriter` keeps the same
interface as :class:`~licycler.store.StoreWriter` (``submit`` / ``pending`` / ``failed`` /
``flush`` / ``close``) but writes in a child process fed through a pipe: the engine only pickles
each batch (numpy columns copy as bytes) into it, and a pipe that is full (the database behind)
holds the engine back, as a hardware-free run should be.

Only for runs on a virtual clock: ``submit`` may wait for the child. The child opens the store
from its URL, so it is used for a plain :class:`~licycler.store.Store` on a file or server.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import multiprocessing.connection as mpc
import multiprocessing.forkserver
import multiprocessing.popen_fork
import multiprocessing.popen_forkserver
import multiprocessing.popen_spawn_posix
import multiprocessing.resource_tracker
import multiprocessing.spawn
import os
import signal
import sqlite3  # noqa: F401  # (these imported here, not in the starting thread: see _start)
import sys
import threading
from multiprocessing.process import BaseProcess
from typing import Any

from licycler.store.sql import Store, StoreError, StoreWriter, WriteBatch, batch_sample_count

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["ProcessStoreWriter", "process_writer_fits", "widen_pipe"]

_POLL_S = 0.002

CHILD_QUEUE = 32
"""Batches the child holds before it stops reading the pipe (which then holds the engine back)."""

EARLY_ROWS = 500_000
"""Samples kept while the child starts (some 30 MB); more wait for it."""

PIPE_BYTES = 1 << 20
"""Buffer asked for the pipe (Linux caps it at /proc/sys/fs/pipe-max-size)."""


def process_writer_fits(store: Store) -> bool:
    """Whether a child process can open ``store`` itself (a plain Store on a file or a server)."""
    return type(store) is Store and ":memory:" not in store.url and store.url != "sqlite://"


def _context() -> Any:
    """A plain fork while this process has a single thread (the child is there at once, with the
    store's modules loaded); else a fork server where there is one (a fresh process the first time,
    then forks of it), else spawn: never a fork of a process that holds other threads."""
    methods = multiprocessing.get_all_start_methods()
    if threading.active_count() == 1 and "fork" in methods:
        return multiprocessing.get_context("fork")
    if sys.platform != "win32" and "forkserver" in methods:
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["licycler.store.sql"])
        return ctx
    return multiprocessing.get_context("spawn")


def _serve(
    url: str,
    batches: mpc.Connection,
    lifeline: mpc.Connection,
    acks: mpc.Connection,
    engine_ends: tuple[mpc.Connection, ...] = (),
) -> None:
    """The child: hand what arrives to a :class:`StoreWriter` (its thread coalesces what queues up
    into transactions) and report how many batches it has written, and its failure, as they change.

    The engine never writes to ``lifeline``: it becomes readable when the engine is gone (SIGKILL,
    power loss). The child then ends at once, an open transaction rolled back, like a writer thread
    dying with its process: what it wrote is what a resume starts from, nothing lands after."""
    for conn in engine_ends:
        conn.close()
    for sig in (signal.SIGINT, signal.SIGTERM):  # the engine decides when the writing ends
        signal.signal(sig, signal.SIG_IGN)
    with contextlib.suppress(ValueError):
        signal.set_wakeup_fd(-1)  # a forked event loop's wake-up pipe is the engine's
    writer: StoreWriter | None = None
    try:
        writer = StoreWriter(Store(url, create=False))
    except Exception as exc:
        acks.send(("failed", 0, f"{type(exc).__name__}: {exc}"))
        return
    told: tuple[int, str | None] = (0, None)

    def report() -> None:
        nonlocal told
        now = (writer.written_batches, None if writer.failed is None else _said(writer.failed))
        if now != told:
            acks.send(("written", *now))
            told = now

    while True:
        ready = mpc.wait([batches, lifeline], None if writer.pending == 0 else _POLL_S)
        if lifeline in ready:
            os._exit(0)
        if batches in ready:
            try:
                item = batches.recv()
            except EOFError:
                os._exit(0)
            if item is None:  # the engine closes the writer: write everything, then end
                break
            while writer.pending >= CHILD_QUEUE and writer.failed is None:
                if mpc.wait([lifeline], _POLL_S):
                    os._exit(0)
                report()
            writer.submit(item)
        report()
    writer.stop()
    report()
    writer.store.close()


def _said(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def widen_pipe(conn: mpc.Connection) -> None:
    """Give the pipe the largest buffer the system allows (Linux), so the engine rarely waits."""
    setpipe = getattr(fcntl, "F_SETPIPE_SZ", None) if fcntl is not None else None
    if setpipe is None:
        return
    with contextlib.suppress(OSError):
        fcntl.fcntl(conn.fileno(), setpipe, PIPE_BYTES)


class ProcessStoreWriter:
    """Writes batches in a child process (started at once, in the background), one transaction per
    batch or per several queued ones; see the module's text."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.failed: BaseException | None = None
        self.written_batches = 0
        self._submitted = 0
        self._process: BaseProcess | None = None
        self._batches: mpc.Connection | None = None
        self._acks: mpc.Connection | None = None
        self._early: list[WriteBatch] = []
        self._early_rows = 0
        self._lifeline: mpc.Connection | None = None
        self._starting = threading.Thread(target=self._start, name="licycler-store-start", daemon=True)
        if threading.active_count() == 1:  # a plain fork: at once
            self._start()
        else:
            self._starting.start()

    def _start(self) -> None:
        """Start the child (in a thread of its own: a fork server takes a moment the first time).

        What it needs is imported with this module: Python 3.11 compiling in two threads at once
        (an import here while the main thread imports) can fail ("AST constructor recursion depth")."""
        try:
            ctx = _context()
            child_reads, we_send = ctx.Pipe(duplex=False)
            we_read, child_acks = ctx.Pipe(duplex=False)
            child_lifeline, self._lifeline = ctx.Pipe(duplex=False)
            # a forked child holds copies of the engine's ends too: it closes them first (else the
            # lifeline could never report the engine gone)
            ours = (we_send, we_read, self._lifeline) if ctx.get_start_method() == "fork" else ()
            process = ctx.Process(target=_serve, args=(self.store.url, child_reads, child_lifeline, child_acks, ours),
                                  name="licycler-store", daemon=True)  # fmt: skip
            process.start()
            for conn in (child_reads, child_lifeline, child_acks):
                conn.close()
            widen_pipe(we_send)
            self._process, self._batches, self._acks = process, we_send, we_read
        except Exception as exc:
            self.failed = StoreError(f"the store's writer process did not start: {_said(exc)}")

    def _connection(self) -> mpc.Connection | None:
        if self._starting.ident is not None:
            self._starting.join()
        return self._batches

    def submit(self, batch: WriteBatch) -> None:
        """Send ``batch`` to the child (waits only while the pipe is full); while the child is
        still starting, keep it in order to send."""
        if self.failed is not None:
            return
        self._submitted += 1
        batch = batch.coded()
        self._early.append(batch)
        self._early_rows += batch_sample_count(batch)
        if self._early_rows < EARLY_ROWS and self._starting.is_alive():
            return
        self._send_early()

    def _send_early(self) -> None:
        conn = self._connection()
        early, self._early, self._early_rows = self._early, [], 0
        if self.failed is not None or conn is None:
            return
        try:
            for batch in early:
                conn.send(batch)
        except OSError as exc:  # the child is gone
            self.failed = StoreError(f"the store's writer process ended: {exc}")

    def _drain(self) -> None:
        acks = self._acks
        if acks is None:
            return
        try:
            while acks.poll():
                _kind, written, failure = acks.recv()
                self.written_batches = max(self.written_batches, int(written))
                if failure is not None and self.failed is None:
                    self.failed = StoreError(f"the store failed: {failure}")
        except (EOFError, OSError):
            if self.written_batches < self._submitted and self.failed is None:
                self.failed = StoreError("the store's writer process ended with batches unwritten")

    @property
    def pending(self) -> int:
        """Batches sent and not yet written (those kept while the child starts do not count: they
        are bounded by :data:`EARLY_ROWS`)."""
        if self._early and not self._starting.is_alive():
            self._send_early()
        self._drain()
        if self.failed is not None:
            return 0
        return self._submitted - len(self._early) - self.written_batches

    async def wait_below(self, batches: int) -> None:
        """Return once at most ``batches`` are pending (or the writer failed)."""
        while self.pending > batches:
            await asyncio.sleep(_POLL_S)

    async def flush(self) -> None:
        """Wait (without blocking the event loop) until every submitted batch is written."""
        if self._starting.is_alive():
            await asyncio.to_thread(self._starting.join)
        self._send_early()
        await self.wait_below(0)

    async def close(self) -> None:
        await self.flush()
        if self._batches is None:
            return
        with contextlib.suppress(OSError):  # a child already gone has nothing left to write
            self._batches.send(None)
        await asyncio.to_thread(self._join)

    def _join(self) -> None:
        assert self._process is not None
        self._process.join()
        self._drain()
        for conn in (self._batches, self._acks, self._lifeline):
            if conn is not None:
                conn.close()
        self._batches = self._acks = self._lifeline = None

    def __getstate__(self) -> dict[str, Any]:
        raise TypeError("a ProcessStoreWriter belongs to the process that started it")
