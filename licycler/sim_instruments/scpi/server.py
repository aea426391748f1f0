"""A raw-socket SCPI server (like an instrument's port 5025) for one emulated instrument.

Every received line (LF-terminated; a CR before it is ignored) is executed under the instrument's
lock, so several connections see one instrument; a reply is sent with a LF. Port 0 picks a free
port; :attr:`ScpiTcpServer.resource` is the VISA resource string to open.

Faults are injected through :class:`FaultInjector` (``server.faults``), each for the next
``count`` matching lines (a case-insensitive substring ``match``, or any line):

- ``slow``: the reply is sent ``delay_s`` late;
- ``lost``: the line is executed but no reply is sent;
- ``garbage``: the line is executed and ``payload`` (undecodable bytes, two lines) is sent
  instead of the reply;
- ``disconnect``: the connection is closed on receipt (the line is not executed);
- ``stuck``: the instrument stops reading: the line and everything after it wait (holding the
  instrument, so other connections wait too) for ``delay_s`` or until :meth:`FaultInjector.release`;
  the line is then dropped;
- error-queue entries: :meth:`FaultInjector.queue_error` puts entries in the error queue now.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from dataclasses import dataclass
from types import TracebackType

from licycler.sim_instruments.scpi.instrument import ScpiInstrument

__all__ = ["Fault", "FaultInjector", "ScpiTcpServer"]

_log = logging.getLogger(__name__)

FAULT_KINDS = ("slow", "lost", "garbage", "disconnect", "stuck")
DEFAULT_GARBAGE = b"\x8f\xfe#@!?\xff\n\xa7\n"


@dataclass
class Fault:
    """One armed fault: ``kind`` (see module doc), for ``count`` matching lines (-1: forever)."""

    kind: str
    count: int = 1
    match: str | None = None
    delay_s: float = 0.5
    payload: bytes = DEFAULT_GARBAGE

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; expected one of {FAULT_KINDS}")

    def hits(self, line: str) -> bool:
        return self.match is None or self.match.upper() in line.upper()


class FaultInjector:
    """The faults armed on a server; ``take`` consumes the first that matches a line."""

    def __init__(self, instrument: ScpiInstrument) -> None:
        self.instrument = instrument
        self.faults: list[Fault] = []
        self.fired: list[tuple[str, str]] = []
        """(kind, line) of every fault that fired, for tests and logs."""
        self._release = asyncio.Event()

    def add(self, fault: Fault) -> Fault:
        self.faults.append(fault)
        return fault

    def slow_reply(self, delay_s: float, *, count: int = 1, match: str | None = None) -> Fault:
        return self.add(Fault("slow", count, match, delay_s=delay_s))

    def lost_reply(self, *, count: int = 1, match: str | None = None) -> Fault:
        return self.add(Fault("lost", count, match))

    def garbage(
        self, *, count: int = 1, match: str | None = None, payload: bytes = DEFAULT_GARBAGE
    ) -> Fault:
        return self.add(Fault("garbage", count, match, payload=payload))

    def disconnect(self, *, count: int = 1, match: str | None = None) -> Fault:
        return self.add(Fault("disconnect", count, match))

    def stuck(
        self, *, delay_s: float = math.inf, count: int = 1, match: str | None = None
    ) -> Fault:
        self._release = asyncio.Event()
        return self.add(Fault("stuck", count, match, delay_s=delay_s))

    def release(self) -> None:
        """End a ``stuck`` fault now."""
        self._release.set()

    def queue_error(self, code: int, message: str | None = None) -> None:
        """Put an entry in the instrument's error queue (as a device error would)."""
        self.instrument.push_error(code, message)

    def clear(self) -> None:
        self.faults.clear()
        self._release.set()

    def take(self, line: str) -> Fault | None:
        """The first armed fault for ``line`` (reply faults only fire on queries)."""
        is_query = "?" in line
        for fault in self.faults:
            if fault.kind in ("slow", "lost", "garbage") and not is_query:
                continue
            if fault.count != 0 and fault.hits(line):
                if fault.count > 0:
                    fault.count -= 1
                if fault.count == 0:
                    self.faults.remove(fault)
                self.fired.append((fault.kind, line))
                return fault
        return None

    async def wait_stuck(self, delay_s: float) -> None:
        event = self._release
        if math.isinf(delay_s):
            await event.wait()
        else:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), delay_s)


class ScpiTcpServer:
    """Serve ``instrument`` on ``host:port`` (asyncio). Use as ``async with`` or start/close."""

    def __init__(
        self, instrument: ScpiInstrument, *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.instrument = instrument
        self.host = host
        self.port = port
        self.faults = FaultInjector(instrument)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._timer: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()
        self._watched_due = math.inf
        """The autonomous event the server's own clock waits for (clock s)."""
        self.connections = 0
        """Connections accepted so far."""

    @property
    def resource(self) -> str:
        """The VISA resource string of this server (``TCPIP0::host::port::SOCKET``)."""
        return f"TCPIP0::{self.host}::{self.port}::SOCKET"

    @property
    def address(self) -> str:
        """What a client opens: the VISA resource string (same as :attr:`resource`)."""
        return self.resource

    async def stop(self) -> None:
        """Same as :meth:`close` (the name the serial servers use)."""
        await self.close()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        self._changed = asyncio.Event()
        self._timer = asyncio.create_task(self._own_clock(), name=f"clock:{type(self.instrument).__name__}")
        _log.info("serving %s on %s", type(self.instrument).__name__, self.resource)

    async def close(self) -> None:
        self.faults.clear()
        if self._timer is not None:
            self._timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._timer
            self._timer = None
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.close()
        for writer in list(self._writers):
            with contextlib.suppress(Exception):
                await writer.wait_closed()
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def serve_forever(self) -> None:
        if self._server is None:
            await self.start()
        assert self._server is not None
        await self._server.serve_forever()

    async def __aenter__(self) -> ScpiTcpServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def disconnect_all(self) -> None:
        """Drop every open connection (an instrument reboot or a cable pulled)."""
        for writer in list(self._writers):
            writer.close()

    async def _own_clock(self) -> None:
        """Let the instrument act when nothing arrives: at its next autonomous event (a lease that
        runs out), bring it up to date under its lock, as the instrument's firmware would."""
        instrument = self.instrument
        while True:
            due = self._watched_due = instrument.next_event_s()
            self._changed.clear()
            if math.isfinite(due):
                sleeper = asyncio.create_task(instrument.clock.wait_until(due))
                changed = asyncio.create_task(self._changed.wait())
                try:
                    await asyncio.wait((sleeper, changed), return_when=asyncio.FIRST_COMPLETED)
                finally:
                    sleeper.cancel()
                    changed.cancel()
                if instrument.clock.now() >= due:
                    async with instrument.lock:
                        instrument.advance()
            else:
                await self._changed.wait()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.add(writer)
        try:
            while True:
                raw = await reader.readline()
                if not raw or not raw.endswith(b"\n"):
                    break
                line = raw.decode("ascii", errors="replace").rstrip("\r\n")
                fault = self.faults.take(line)
                if fault is not None and fault.kind == "disconnect":
                    break
                if fault is not None and fault.kind == "stuck":
                    async with self.instrument.lock:
                        await self.faults.wait_stuck(fault.delay_s)
                    continue
                async with self.instrument.lock:
                    reply = await self.instrument.execute_line(line)
                if self.instrument.next_event_s() != self._watched_due:
                    self._changed.set()  # the line armed or moved an autonomous event
                if reply is None:
                    continue
                if fault is not None and fault.kind == "lost":
                    continue
                if fault is not None and fault.kind == "slow":
                    await asyncio.sleep(fault.delay_s)
                data = fault.payload if fault is not None and fault.kind == "garbage" else None
                writer.write(data if data is not None else reply.encode("ascii") + b"\n")
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            raise
        except Exception:
            _log.exception("error serving %s", type(self.instrument).__name__)
        finally:
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
