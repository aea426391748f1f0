"""Serve an emulated serial instrument on a pseudo-terminal, with injectable faults.

:class:`PtySerialServer` opens a pty pair (``pty.openpty()``), sets the terminal raw at once
(no echo, no CR/LF translation), keeps the slave fd open (reading the master fails with EIO once
no slave fd is open) and reads the master fd with an asyncio reader. Clients open the slave by its
path (``/dev/pts/N``; VISA resource ``ASRL/dev/pts/N::INSTR``) with pyserial or pyvisa-py.

Incoming bytes are cut into command lines at the emulation's terminators and handed, in order,
to :meth:`SerialEmulation.handle_line`; the emulation answers through :class:`ReplyChannel`.
Replies pass the fault filter (:class:`Faults`): slow reply, lost reply, garbage, stuck reading
(half a reply, then no more answers), and disconnect (both pty fds closed: the device is gone).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import pty
import tty
from collections import deque
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

__all__ = ["Faults", "PtySerialServer", "ReplyChannel", "SerialEmulation", "visa_resource"]

_log = logging.getLogger(__name__)

GARBAGE = b"\x15#\xfe?\x02garbage\xff"
"""What a garbage reply looks like: bytes no instrument protocol here accepts (not ASCII)."""


def visa_resource(device_path: str) -> str:
    """The VISA resource name of a serial device path (``/dev/pts/3`` -> ``ASRL/dev/pts/3::INSTR``)."""
    return f"ASRL{device_path}::INSTR"


class ReplyChannel(Protocol):
    """How an emulation answers: ``send`` bytes exactly as the instrument would put them on the wire."""

    def send(self, data: bytes) -> None: ...


@runtime_checkable
class SerialEmulation(Protocol):
    """An instrument that speaks a line protocol over a serial port.

    ``input_terminators``: bytes any of which ends a command (``b"\\n"``, ``b"\\r"``, ``b"\\r\\n"``
    meaning CR or LF). ``keep_empty_lines``: whether an empty command line is passed on (MethodSCRIPT
    ends a script with one) or dropped (CR LF pairs).
    """

    model: str
    input_terminators: bytes
    keep_empty_lines: bool

    async def handle_line(self, line: str, reply: ReplyChannel) -> None:
        """Act on one command line (terminator removed); may start tasks that reply later."""
        ...

    async def shutdown(self) -> None:
        """Stop any running activity (called when the server stops)."""
        ...


@dataclass
class Faults:
    """Faults applied to the next replies (each reply line counts once). Mutate at any time.

    - ``slow_reply_s``: every reply line is held back this long (real seconds) before it is sent;
    - ``lose_replies``: the next N reply lines are dropped;
    - ``garbage_replies``: the next N reply lines are replaced by :data:`GARBAGE` + terminator;
    - ``stuck``: the next reply line is cut in half (no terminator) and from then on the device
      neither reads nor answers, until ``stuck`` is cleared.
    """

    slow_reply_s: float = 0.0
    lose_replies: int = 0
    garbage_replies: int = 0
    stuck: bool = False

    @property
    def armed(self) -> bool:
        return bool(self.slow_reply_s > 0 or self.lose_replies or self.garbage_replies or self.stuck)


class PtySerialServer:
    """One emulated instrument on one pseudo-terminal.

    ``async with PtySerialServer(emulation) as server:`` -> ``server.device_path`` (``/dev/pts/N``)
    and ``server.resource`` (``ASRL/dev/pts/N::INSTR``). ``server.received`` keeps the last command
    lines (for transcripts in tests); ``server.faults`` are the faults to inject.
    """

    def __init__(self, emulation: SerialEmulation, *, faults: Faults | None = None, history: int = 10000) -> None:
        self.emulation = emulation
        self.faults = faults if faults is not None else Faults()
        self.received: deque[str] = deque(maxlen=history)
        self._master: int | None = None
        self._slave: int | None = None
        self._device_path: str | None = None
        self._inbuf = bytearray()
        self._lines: asyncio.Queue[str | None] = asyncio.Queue()
        self._out: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._pending_out = bytearray()
        self._tasks: list[asyncio.Task[None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stuck_now = False
        self.disconnected = False

    # ---------------------------------------------------------------- lifecycle

    @property
    def device_path(self) -> str:
        if self._device_path is None:
            raise RuntimeError("server not started")
        return self._device_path

    @property
    def resource(self) -> str:
        return visa_resource(self.device_path)

    async def start(self) -> str:
        """Open the pty and start serving; returns the device path to open."""
        master, slave = pty.openpty()
        tty.setraw(slave)
        tty.setraw(master)
        os.set_blocking(master, False)
        self._master, self._slave = master, slave
        self._device_path = os.ttyname(slave)
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(master, self._on_readable)
        self._tasks = [
            asyncio.create_task(self._dispatch(), name=f"{self.emulation.model} commands"),
            asyncio.create_task(self._writer(), name=f"{self.emulation.model} replies"),
        ]
        _log.info("%s served on %s", self.emulation.model, self._device_path)
        return self._device_path

    async def stop(self) -> None:
        """Stop the emulation and close the pty (idempotent)."""
        with contextlib.suppress(Exception):
            await self.emulation.shutdown()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        self._close_fds()

    async def __aenter__(self) -> PtySerialServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def disconnect(self) -> None:
        """Fault: the device vanishes (both pty fds closed; the client's reads and writes fail)."""
        self.disconnected = True
        self._close_fds()

    def _close_fds(self) -> None:
        master, slave = self._master, self._slave
        self._master = self._slave = None
        if master is not None and self._loop is not None:
            with contextlib.suppress(Exception):
                self._loop.remove_reader(master)
            with contextlib.suppress(Exception):
                self._loop.remove_writer(master)
        for fd in (master, slave):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)

    # ---------------------------------------------------------------- input

    def _on_readable(self) -> None:
        if self._master is None:
            return
        try:
            data = os.read(self._master, 65536)
        except BlockingIOError:
            return
        except OSError as exc:  # EIO: no slave open (cannot happen while we hold it)
            if exc.errno != errno.EIO:
                _log.warning("%s: pty read failed: %s", self.emulation.model, exc)
            return
        if self.faults.stuck and self._stuck_now:
            return  # a stuck device reads nothing
        self._inbuf += data
        self._split_lines()

    def _split_lines(self) -> None:
        terms = self.emulation.input_terminators
        buf = self._inbuf
        start = 0
        i = 0
        while i < len(buf):
            if buf[i] in terms:
                line = bytes(buf[start:i]).decode("ascii", errors="replace")
                # a CR LF pair ends one line, not two (when both are terminators)
                if buf[i] == 0x0D and i + 1 < len(buf) and buf[i + 1] == 0x0A and 0x0A in terms:
                    i += 1
                start = i + 1
                if line or self.emulation.keep_empty_lines:
                    self._lines.put_nowait(line)
            i += 1
        del buf[:start]

    async def _dispatch(self) -> None:
        while True:
            line = await self._lines.get()
            if line is None:
                return
            self.received.append(line)
            try:
                await self.emulation.handle_line(line, self)
            except Exception:
                _log.exception("%s: emulation failed on %r", self.emulation.model, line)

    # ---------------------------------------------------------------- output

    def send(self, data: bytes) -> None:
        """Queue reply bytes (as the instrument puts them on the wire)."""
        if data:
            self._out.put_nowait(data)

    async def _writer(self) -> None:
        while True:
            data = await self._out.get()
            if data is None:
                return
            if self.faults.armed:
                for piece in _split_keep(data):
                    out = self._apply_faults(piece)
                    if self.faults.slow_reply_s > 0:
                        await asyncio.sleep(self.faults.slow_reply_s)
                    if out:
                        self._write(out)
            elif not (self._stuck_now and self.faults.stuck):
                self._write(data)

    def _apply_faults(self, line: bytes) -> bytes:
        f = self.faults
        if not f.stuck:
            self._stuck_now = False
        if self._stuck_now:
            return b""
        if f.stuck:
            self._stuck_now = True
            return line[: max(1, len(line.rstrip(b"\r\n")) // 2)]
        if f.lose_replies > 0:
            f.lose_replies -= 1
            return b""
        if f.garbage_replies > 0:
            f.garbage_replies -= 1
            body = line.rstrip(b"\r\n")
            return GARBAGE + line[len(body) :]
        return line

    def _write(self, data: bytes) -> None:
        if self._master is None:
            return
        self._pending_out += data
        self._flush()

    def _flush(self) -> None:
        if self._master is None or self._loop is None:
            self._pending_out.clear()
            return
        while self._pending_out:
            try:
                n = os.write(self._master, self._pending_out)
            except BlockingIOError:
                self._loop.add_writer(self._master, self._on_writable)
                return
            except OSError as exc:
                _log.warning("%s: pty write failed: %s", self.emulation.model, exc)
                self._pending_out.clear()
                return
            del self._pending_out[:n]

    def _on_writable(self) -> None:
        if self._master is not None and self._loop is not None:
            self._loop.remove_writer(self._master)
        self._flush()


def _split_keep(data: bytes) -> list[bytes]:
    """Split into lines keeping each line's terminator (LF-terminated, or CR-only protocols)."""
    sep = b"\n" if b"\n" in data else b"\r"
    parts = data.split(sep)
    out = [p + sep for p in parts[:-1]]
    if parts[-1]:
        out.append(parts[-1])
    return out
