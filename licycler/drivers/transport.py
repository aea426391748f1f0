"""One message-based connection to an instrument through pyvisa (``@py``: pyvisa-py, pyserial).

:class:`VisaTransport` is what every driver talks through. It guarantees:

- all traffic of one resource (port) is serialised by one asyncio lock, shared by every transport
  opened on the same resource in the same event loop (the lock is re-entrant for the task holding
  it, so a driver can hold it across a multi-line exchange with :meth:`VisaTransport.locked`);
- blocking pyvisa calls run in a worker thread (``asyncio.to_thread``), bounded by the resource's
  timeout and by a guard deadline after which the connection is abandoned (never a hang). On a
  pyvisa-py TCP socket (the common case) a query does not need the thread: the event loop waits
  until the socket is writable and until the whole reply line has arrived, and only then calls
  pyvisa, which therefore returns at once (a reply that arrives in pieces is finished in a worker
  thread). That saves the thread hop (~90 us, more than a whole query to an instrument on
  loopback), so a query costs about what a bare pyvisa query costs;
- after a timeout or a garbled reply the connection is *resynchronised* before it is used again:
  a TCP socket is reopened (a new connection cannot carry the late reply of the old one), any other
  resource is flushed and drained until it stays quiet for one timeout. A stale reply is therefore
  never taken as the answer to the next command;
- before a query, input already waiting (a late or extra reply, garbage) or a connection the
  instrument closed is detected, and the connection is resynchronised first; before a write, a
  closed connection is reopened (a write into it would be lost silently);
- only idempotent queries are retried (``retries`` times); a lost connection is reopened with
  exponential backoff (``reconnect_backoff_s`` x 1, 2, 4 ...);
- every failure raises :class:`~licycler.drivers.errors.DriverError` naming the instrument, the
  command and the cause.

Resources: ``TCPIP::host::port::SOCKET`` (raw SCPI sockets, port 5025 on most SMUs) and
``ASRL/dev/pts/N::INSTR`` or ``ASRL/dev/ttyUSB0::INSTR`` (pyvisa-py opens them with pyserial's
``serial_for_url``); USB and GPIB resources go through the same code.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import logging
import select
import socket
import sys
import threading
import time
import weakref
from collections.abc import AsyncIterator, Callable
from types import TracebackType
from typing import Any, NamedTuple, TypeVar

import pyvisa
from pyvisa import constants as visa_constants
from pyvisa.errors import VisaIOError

from licycler.drivers.errors import DriverError

__all__ = ["VisaTransport", "resource_key", "visa_resource_manager"]

_log = logging.getLogger(__name__)

T = TypeVar("T")

_GUARD_MARGIN_S = 1.0
"""Extra time a worker thread gets beyond the resource timeout before the connection is abandoned."""

_PEEK = int(socket.MSG_PEEK | socket.MSG_DONTWAIT)
"""recv flags: look at waiting input without consuming it or blocking."""

_SAFE_UNCONFIRMED_BYTES = 4096
"""Bytes that may be written on a socket since the peer last replied without checking that the
send buffer has room (Linux never makes a TCP send buffer smaller than this)."""

_MAX_DRAIN_S = 10.0
"""Upper bound on draining a chattering resource (a device that never goes quiet)."""


class _Timeout(Exception):
    """The instrument did not answer within the timeout."""


class _ConnectionLost(Exception):
    """The connection is broken (peer closed, refused, device gone)."""


class _BadReply(Exception):
    """The reply could not be decoded or parsed."""


# --------------------------------------------------------------------------------------------
# resource managers and per-port locks


_RM_LOCK = threading.Lock()
_RESOURCE_MANAGERS: dict[str, Any] = {}


def visa_resource_manager(visa_library: str = "@py") -> Any:
    """One pyvisa ResourceManager per VISA library string, created once per process."""
    with _RM_LOCK:
        rm = _RESOURCE_MANAGERS.get(visa_library)
        if rm is None:
            rm = pyvisa.ResourceManager(visa_library)
            _RESOURCE_MANAGERS[visa_library] = rm
        return rm


def resource_key(resource: str) -> str:
    """A canonical spelling of a VISA resource name (``TCPIP::h::p::SOCKET`` = ``tcpip0::h::p::socket``).

    Used to find the one lock of a port; falls back to the upper-cased name for names pyvisa
    cannot parse.
    """
    try:
        return str(pyvisa.rname.parse_resource_name(resource)).upper()
    except Exception:
        return resource.strip().upper()


class _PortLock:
    """A fair asyncio lock that the task holding it may enter again (one per port and loop).

    Released ownership is handed to the first waiter directly (no barging).
    """

    _HANDED = object()

    def __init__(self) -> None:
        self._owner: object = None
        self._depth = 0
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    async def __aenter__(self) -> None:
        task = asyncio.current_task()
        owner = self._owner
        if owner is None:
            self._owner, self._depth = task, 1
            return
        if owner is task:
            self._depth += 1
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():  # it was handed to us: pass it on
                self._owner, self._depth = task, 1
                self._release()
            else:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(fut)
            raise
        self._owner, self._depth = task, 1

    async def __aexit__(self, *exc: object) -> None:
        self._depth -= 1
        if self._depth == 0:
            self._release()

    def _release(self) -> None:
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                self._owner = self._HANDED
                fut.set_result(None)
                return
        self._owner = None


_PORT_LOCKS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, _PortLock]] = (
    weakref.WeakKeyDictionary()
)


def _port_lock(key: str) -> _PortLock:
    """The lock of the port ``key`` (a :func:`resource_key`) in the running event loop."""
    loop = asyncio.get_running_loop()
    locks = _PORT_LOCKS.setdefault(loop, {})
    lock = locks.get(key)
    if lock is None:
        lock = locks[key] = _PortLock()
    return lock


def _is_timeout(exc: BaseException) -> bool:
    return isinstance(exc, VisaIOError) and exc.error_code == visa_constants.StatusCode.error_timeout


# --------------------------------------------------------------------------------------------


class VisaTransport:
    """An async, serialised, self-healing line-oriented connection to one VISA resource.

    ``timeout_s`` bounds every read and write (s); ``retries`` is how many times an idempotent
    query is repeated after a timeout, a garbled reply or a lost connection; reconnecting waits
    ``reconnect_backoff_s`` x 2**k (s) before attempt k + 1. ``baud_rate`` applies to ASRL
    resources only. ``name`` is how errors name the instrument.
    """

    def __init__(
        self,
        resource: str,
        *,
        name: str,
        read_termination: str = "\n",
        write_termination: str = "\n",
        timeout_s: float = 2.0,
        baud_rate: int | None = None,
        visa_library: str = "@py",
        retries: int = 2,
        reconnect_backoff_s: float = 0.2,
    ) -> None:
        if not timeout_s > 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
        if retries < 0:
            raise ValueError(f"retries must be >= 0, got {retries}")
        self.resource = resource
        self.name = name
        self.read_termination = read_termination
        self.write_termination = write_termination
        self.timeout_s = float(timeout_s)
        self.baud_rate = baud_rate
        self.visa_library = visa_library
        self.retries = int(retries)
        self.reconnect_backoff_s = float(reconnect_backoff_s)
        self.key = resource_key(resource)
        self.is_socket = self.key.endswith("::SOCKET")
        self._lock_of: tuple[asyncio.AbstractEventLoop, _PortLock] | None = None
        self._res: Any = None
        self._session: Any = None
        self._sock: socket.socket | None = None
        self._unconfirmed = 0
        self._scratch = bytearray(1 << 16)
        self._term = (read_termination or "\n")[-1].encode("ascii")
        """The byte that ends a reply (pyvisa-py stops reading at the termination's last char)."""
        self._waiter: asyncio.Future[bool] | None = None
        self._watched: socket.socket | None = None
        self._watch_loop: asyncio.AbstractEventLoop | None = None
        self._ever_opened = False
        self._stale = False
        self._inflight: asyncio.Future[Any] | None = None
        self._closed = True
        self.reconnects = 0
        """How many times the connection was reopened after a failure (for diagnostics)."""

    def __repr__(self) -> str:
        state = "closed" if self._res is None else "open"
        return f"VisaTransport({self.resource!r}, name={self.name!r}, {state})"

    # ---------------------------------------------------------------- lifecycle

    async def open(self) -> None:
        """Open the resource (with reconnect backoff); raises DriverError if it cannot be reached."""
        async with self._lock:
            self._closed = False
            await self._ensure_open(None)

    async def close(self) -> None:
        """Close the resource; later calls raise DriverError until :meth:`open` is called again."""
        async with self._lock:
            self._closed = True
            await self._wait_inflight()
            await self._drop()

    async def __aenter__(self) -> VisaTransport:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def is_open(self) -> bool:
        """Whether a pyvisa resource is currently held."""
        return self._res is not None

    @property
    def _lock(self) -> _PortLock:
        loop = asyncio.get_running_loop()
        cached = self._lock_of
        if cached is None or cached[0] is not loop:
            cached = self._lock_of = (loop, _port_lock(self.key))
        return cached[1]

    @contextlib.asynccontextmanager
    async def locked(self) -> AsyncIterator[VisaTransport]:
        """Hold the port's lock across several calls (e.g. write a script, read its lines).

        Calls made by the same task inside the block do not wait for the lock again.
        """
        async with self._lock:
            yield self

    # ---------------------------------------------------------------- public I/O

    async def write(self, command: str, *, idempotent: bool = False) -> None:
        """Send one command (the write termination is appended).

        A write that fails because the connection broke is resent after reconnecting only when
        ``idempotent`` (setting a level is; starting a trigger or clearing a buffer is not).
        """
        await self._run(command, _Op(send=command), idempotent=idempotent)

    async def write_raw(self, data: bytes) -> None:
        """Send bytes as they are (no termination appended); never resent."""
        await self._run(repr(data), _Op(send=data), idempotent=False)

    async def query(self, command: str, *, idempotent: bool = True) -> str:
        """Send ``command`` and return its one-line reply (termination stripped).

        Retried after a timeout, a garbled reply or a lost connection only if ``idempotent``.
        """
        return await self.query_as(command, _identity, idempotent=idempotent)

    async def query_as(
        self, command: str, parse: Callable[[str], T], *, idempotent: bool = True
    ) -> T:
        """:meth:`query`, then ``parse`` the reply; a ``ValueError`` from ``parse`` is a garbled
        reply: the connection is resynchronised and an idempotent query is asked again."""
        op = _Op(send=command, reply=True, parse=parse, check_sync=True)
        result: T = await self._run(command, op, idempotent=idempotent)
        return result

    async def read_line(self, *, timeout_s: float | None = None) -> str:
        """Read one line (termination stripped), waiting at most ``timeout_s`` (default: the
        transport's timeout). A timeout raises DriverError and marks the connection for a drain."""
        op = _Op(reply=True, parse=_identity, timeout_s=timeout_s)
        text: str = await self._run(None, op, idempotent=False)
        return text

    async def resync(self) -> None:
        """Discard anything pending (drain or reopen) now, e.g. after aborting a stream."""
        async with self._lock:
            self._stale = True
            await self._ensure_open(None)

    # ---------------------------------------------------------------- machinery

    async def _run(self, command: str | None, op: _Op, *, idempotent: bool) -> Any:
        attempts = 1 + (self.retries if idempotent else 0)
        cause = ""
        async with self._lock:
            if self._closed:
                raise DriverError(self.name, command, "transport is closed (call open() first)")
            for attempt in range(attempts):
                if self._res is None or self._stale or self._inflight is not None:
                    await self._ensure_open(command)
                try:
                    if self._sock is not None:
                        return await self._on_loop(op)
                    timeout = op.timeout_s if op.timeout_s is not None else self.timeout_s
                    return await self._in_thread(
                        functools.partial(_sync_op, op=op, session=self._session),
                        guard_s=timeout + _GUARD_MARGIN_S,
                    )
                except _Timeout:
                    self._stale = True
                    waited = op.timeout_s if op.timeout_s is not None else self.timeout_s
                    cause = f"no reply within {waited:g} s (timeout)"
                except _BadReply as exc:
                    self._stale = True
                    cause = str(exc)
                except _ConnectionLost as exc:
                    await self._drop()
                    cause = f"connection lost: {exc}"
                if attempt + 1 < attempts:
                    _log.info("%s: %r failed (%s); retrying", self.name, command, cause)
            tries = f" after {attempts} attempts" if attempts > 1 else ""
            raise DriverError(self.name, command, cause + tries)

    async def _on_loop(self, op: _Op) -> Any:
        """One operation on a pyvisa-py TCP socket without a worker thread.

        The event loop waits for the socket to be writable / for a whole reply line to be in
        the socket, and only then calls pyvisa, which therefore never blocks. A reply that is
        only partly there (a long buffer dump) is finished in a worker thread.
        """
        res, session, sock = self._res, self._session, self._sock
        assert sock is not None
        timeout = op.timeout_s if op.timeout_s is not None else self.timeout_s
        deadline = time.monotonic() + timeout  # the event loop's clock is time.monotonic()
        try:
            try:
                if op.check_sync:
                    if getattr(session, "_pending_buffer", None):
                        raise _BadReply("unread input was pending before the query")
                    if select.select([sock], [], [], 0)[0]:
                        _check_alive(sock)
                        raise _BadReply("unread input was pending before the query")
                elif op.send is not None:  # a write into a connection the peer closed is lost
                    _check_alive(sock)
            except Exception as exc:
                raise _translate(exc) from exc
            if op.send is not None:
                # the peer read everything up to its last reply; beyond a few kB unconfirmed,
                # make sure the send buffer has room (pyvisa-py would block in select otherwise)
                if self._unconfirmed > _SAFE_UNCONFIRMED_BYTES and not _writable_now(sock):
                    await _wait_fd(asyncio.get_running_loop(), sock, deadline, write=True)
                send = op.send
                self._unconfirmed += len(send) + len(self.write_termination)
                try:
                    if isinstance(send, str):
                        res.write(send)
                    else:
                        res.write_raw(send)
                except Exception as exc:
                    raise _translate(exc) from exc
            if not op.reply:
                return None
            term = self._term
            pending = getattr(session, "_pending_buffer", None)
            if pending and term in pending:  # a line left over by pyvisa-py's last read
                return _parse(op, _call_translated(_read_text, res))
            # the reply may be there already (a fast instrument): look once before parking
            state = _peek_state(sock, term, self._scratch)
            while state == "empty":
                await self._wait_readable(asyncio.get_running_loop(), sock, deadline)
                state = _peek_state(sock, term, self._scratch)
            if state == "line":
                try:
                    text = _read_text(res)
                except (_BadReply, _ConnectionLost, _Timeout):
                    raise
                except Exception as exc:
                    raise _translate(exc) from exc
            else:  # only part of the reply is there: the rest is on its way, read it in a thread
                remaining = max(deadline - time.monotonic(), 0.001)
                rest = _Op(reply=True, parse=_identity, timeout_s=remaining)
                text = await self._in_thread(
                    functools.partial(_sync_op, op=rest, session=None),
                    guard_s=remaining + _GUARD_MARGIN_S,
                )
            self._unconfirmed = 0
        except asyncio.CancelledError:
            self._stale = True  # the reply may still come: never read it as the next one
            raise
        return _parse(op, text)

    async def _in_thread(self, action: Callable[[Any], T], *, guard_s: float) -> T:
        """Run ``action(resource)`` in a worker thread, translating failures.

        If the thread outlives the guard deadline the connection is abandoned (closed from the
        side; the thread fails and is forgotten). If the caller is cancelled, the thread is let
        finish before the port is used again and the connection is marked stale.
        """
        res = self._res
        task = asyncio.ensure_future(asyncio.to_thread(_call_translated, action, res))
        try:
            done, _ = await asyncio.wait({task}, timeout=guard_s)
        except asyncio.CancelledError:
            self._inflight = task
            self._stale = True
            raise
        if not done:
            self._inflight = None
            await self._abandon(res)
            raise _Timeout()
        return task.result()

    async def _wait_inflight(self) -> None:
        task, self._inflight = self._inflight, None
        if task is None or task.done():
            return
        done, _ = await asyncio.wait({task}, timeout=self.timeout_s + _GUARD_MARGIN_S)
        if not done:
            await self._abandon(self._res)

    async def _ensure_open(self, command: str | None) -> None:
        """Make sure a usable, synchronised connection is held; reconnect with backoff."""
        if self._closed:
            raise DriverError(self.name, command, "transport is closed (call open() first)")
        await self._wait_inflight()
        if self._res is not None and self._stale:
            if self.is_socket:
                await self._drop()  # a new connection cannot carry the old reply
            else:
                try:
                    await asyncio.to_thread(_drain, self._res, self.timeout_s)
                    self._stale = False
                except Exception as exc:
                    _log.info("%s: drain failed (%s); reopening", self.name, exc)
                    await self._drop()
        if self._res is not None:
            return
        cause = ""
        for attempt in range(self.retries + 1):
            if attempt:
                await asyncio.sleep(self.reconnect_backoff_s * 2 ** (attempt - 1))
            try:
                self._res = await asyncio.wait_for(
                    asyncio.to_thread(self._open_sync), self.timeout_s + _GUARD_MARGIN_S
                )
            except TimeoutError:
                cause = f"could not open {self.resource} within {self.timeout_s:g} s"
                continue
            except Exception as exc:
                cause = f"could not open {self.resource}: {_describe(exc)}"
                continue
            self._stale = False
            self._session = _session_of(self._res)
            self._sock = _socket_of(self._session) if sys.platform != "win32" else None
            self._unconfirmed = 0
            if self._ever_opened:
                self.reconnects += 1
            self._ever_opened = True
            _log.debug("%s: opened %s", self.name, self.resource)
            return
        raise DriverError(self.name, command, f"{cause} after {self.retries + 1} attempts")

    def _open_sync(self) -> Any:
        rm = visa_resource_manager(self.visa_library)
        timeout_ms = int(self.timeout_s * 1000)
        kwargs: dict[str, Any] = {
            "read_termination": self.read_termination,
            "write_termination": self.write_termination,
            "timeout": timeout_ms,
            "open_timeout": timeout_ms,
        }
        if self.baud_rate is not None and self.key.startswith("ASRL"):
            kwargs["baud_rate"] = self.baud_rate
        res = rm.open_resource(self.resource, **kwargs)
        try:
            _check_socket(res)
        except Exception:
            with contextlib.suppress(Exception):
                res.close()
            raise
        return res

    async def _wait_readable(
        self, loop: asyncio.AbstractEventLoop, sock: socket.socket, deadline: float
    ) -> None:
        """Wait until ``sock`` has data (or EOF) or ``deadline`` (loop time) passes.

        The socket stays registered with the event loop between waits (no registration
        syscalls per query); if it turns readable while nobody waits (unsolicited input), the
        registration is dropped at once so that the loop does not spin on it.
        """
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise _Timeout()
        fut: asyncio.Future[bool] = loop.create_future()
        self._waiter = fut
        if self._watched is not sock:
            self._unwatch()
            loop.add_reader(sock.fileno(), self._on_readable)
            self._watched = sock
            self._watch_loop = loop
        timer = loop.call_later(remaining, _settle, fut, False)
        try:
            ready = await fut
        finally:
            timer.cancel()
            self._waiter = None
        if not ready:
            raise _Timeout()

    def _on_readable(self) -> None:
        fut = self._waiter
        if fut is None:
            self._unwatch()
        elif (
            not fut.done()
            and self._watched is not None
            # an event collected before the last reply was read may arrive late: check
            and select.select([self._watched], [], [], 0)[0]
        ):
            fut.set_result(True)

    def _unwatch(self) -> None:
        """Unregister the watched socket from the event loop (before it is closed)."""
        sock, loop = self._watched, self._watch_loop
        self._watched = self._watch_loop = None
        if sock is not None and loop is not None and not loop.is_closed():
            with contextlib.suppress(Exception):
                loop.remove_reader(sock.fileno())

    async def _drop(self) -> None:
        """Close the held resource (if any), ignoring errors: the next call reopens."""
        self._unwatch()
        res, self._res = self._res, None
        self._session = None
        self._sock = None
        self._stale = False
        if res is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.to_thread(res.close), _GUARD_MARGIN_S)

    async def _abandon(self, res: Any) -> None:
        """Give up a connection whose worker thread is stuck: shut its socket down so that the
        thread fails, and forget it (a new connection is opened on next use)."""
        _log.warning("%s: worker stuck past its deadline; abandoning the connection", self.name)
        self._unwatch()
        if res is self._res:
            self._res = None
            self._session = None
            self._sock = None
        self._stale = False
        sock = _socket_of(_session_of(res))
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        threading.Thread(target=_close_quietly, args=(res,), daemon=True).start()


# --------------------------------------------------------------------------------------------
# blocking helpers (run in worker threads)


def _identity(text: str) -> str:
    return text


class _Op(NamedTuple):
    """One exchange: what to send (str: a command, termination added; bytes: raw), whether a
    reply line is read and how it is parsed, whether the input must be empty first, and a read
    timeout overriding the transport's."""

    send: str | bytes | None = None
    reply: bool = False
    parse: Callable[[str], Any] | None = None
    check_sync: bool = False
    timeout_s: float | None = None


def _parse(op: _Op, text: str) -> Any:
    if op.parse is None:
        return text
    try:
        return op.parse(text)
    except (ValueError, IndexError) as exc:
        raise _BadReply(f"bad reply {text[:60]!r}: {exc}") from exc


def _sync_op(res: Any, op: _Op, session: Any) -> Any:
    """Run ``op`` with blocking pyvisa calls (in a worker thread)."""
    if op.check_sync:
        _check_in_sync(session)
    if isinstance(op.send, str):
        res.write(op.send)
    elif op.send is not None:
        res.write_raw(op.send)
    if not op.reply:
        return None
    if op.timeout_s is None:
        return _parse(op, _read_text(res))
    previous = res.timeout
    res.timeout = max(int(op.timeout_s * 1000), 1)
    try:
        return _parse(op, _read_text(res))
    finally:
        res.timeout = previous


def _check_alive(sock: socket.socket) -> None:
    """Raise _ConnectionLost if the peer has closed the connection (EOF waiting)."""
    if not select.select([sock], [], [], 0)[0]:
        return
    try:
        peek = sock.recv(1, _PEEK)
    except (BlockingIOError, InterruptedError):
        return
    except OSError as exc:
        raise _ConnectionLost(_describe(exc)) from exc
    if not peek:
        raise _ConnectionLost("connection closed by the instrument")


def _writable_now(sock: socket.socket) -> bool:
    return bool(select.select([], [sock], [], 0)[1])


def _peek_state(sock: socket.socket, term: bytes, scratch: bytearray) -> str:
    """After the socket turned readable: ``line`` if a whole reply line is there, ``partial`` if
    only part of one, ``empty`` if nothing after all; raises _ConnectionLost if the peer hung up.
    Nothing is consumed (the peek goes into ``scratch``)."""
    try:
        n = sock.recv_into(scratch, len(scratch), _PEEK)
    except (BlockingIOError, InterruptedError):
        return "empty"
    except OSError as exc:
        raise _ConnectionLost(_describe(exc)) from exc
    if n == 0:
        raise _ConnectionLost("connection closed by the instrument")
    return "line" if scratch.find(term, 0, n) >= 0 else "partial"


def _settle(fut: asyncio.Future[bool], value: bool) -> None:
    if not fut.done():
        fut.set_result(value)


async def _wait_fd(
    loop: asyncio.AbstractEventLoop, sock: socket.socket, deadline: float, *, write: bool
) -> None:
    """Wait until ``sock`` is readable (or writable) or ``deadline`` (loop time) passes."""
    remaining = deadline - loop.time()
    if remaining <= 0:
        raise _Timeout()
    fut: asyncio.Future[bool] = loop.create_future()

    def done(ready: bool) -> None:
        if not fut.done():
            fut.set_result(ready)

    fd = sock.fileno()
    if write:
        loop.add_writer(fd, done, True)
    else:
        loop.add_reader(fd, done, True)
    timer = loop.call_later(remaining, done, False)
    try:
        ready = await fut
    finally:
        timer.cancel()
        if write:
            loop.remove_writer(fd)
        else:
            loop.remove_reader(fd)
    if not ready:
        raise _Timeout()


def _read_text(res: Any) -> str:
    raw = res.read_raw()
    try:
        text: str = raw.decode("ascii")
    except UnicodeDecodeError as exc:
        raise _BadReply(f"undecodable reply {bytes(raw[:40])!r}") from exc
    term = res.read_termination
    if term and text.endswith(term):
        text = text[: -len(term)]
    elif term:
        raise _BadReply(f"reply without its termination {text[:60]!r}")
    return text


def _translate(exc: Exception) -> Exception:
    """Map a pyvisa/OS failure onto the transport's failure kinds (timeout or lost connection).

    OSError: broken pipe, reset, EIO on a vanished pty; ValueError/AttributeError/TypeError: a
    resource closed under our feet (pyvisa-py sets its interface to None); anything else
    (serial.SerialException ...): the backend failed.
    """
    if isinstance(exc, (_Timeout, _BadReply, _ConnectionLost)):
        return exc
    if isinstance(exc, VisaIOError) and _is_timeout(exc):
        return _Timeout()
    return _ConnectionLost(_describe(exc))


def _call_translated(action: Callable[[Any], T], res: Any) -> T:
    """Run ``action`` and map pyvisa/OS failures onto the transport's three failure kinds."""
    if res is None:
        raise _ConnectionLost("no connection")
    try:
        return action(res)
    except (_Timeout, _BadReply, _ConnectionLost):
        raise
    except Exception as exc:
        raise _translate(exc) from exc


def _drain(res: Any, quiet_s: float) -> None:
    """Discard pending input until the resource stays quiet for ``quiet_s`` (bounded)."""
    with contextlib.suppress(Exception):
        res.flush(visa_constants.BufferOperation.discard_read_buffer)
    previous = res.timeout
    res.timeout = max(int(quiet_s * 1000), 1)
    deadline = time.monotonic() + _MAX_DRAIN_S
    try:
        while time.monotonic() < deadline:
            try:
                res.read_raw()
            except VisaIOError as exc:
                if _is_timeout(exc):
                    return
                raise
    finally:
        res.timeout = previous
    raise OSError("the device never went quiet while draining")


def _session_of(res: Any) -> Any:
    """pyvisa-py's session object behind a resource (best effort: None for other backends)."""
    try:
        return res.visalib.sessions[res.session]
    except Exception:
        return None


def _socket_of(session: Any) -> socket.socket | None:
    """The OS socket under a pyvisa-py TCPIP SOCKET session (None otherwise)."""
    sock = getattr(session, "interface", None)
    return sock if isinstance(sock, socket.socket) else None


def _check_socket(res: Any) -> None:
    """pyvisa-py reports a refused TCP connection as opened: look at the socket's error."""
    sock = _socket_of(_session_of(res))
    if sock is None:
        return
    err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    if err:
        raise ConnectionRefusedError(err, f"connect failed (errno {err})")
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _check_in_sync(session: Any) -> None:
    """Before a query: nothing may be waiting to be read, and the peer must not have hung up.

    Unsolicited input (a late reply, garbage) would otherwise be taken as the answer.
    """
    if session is None:
        return
    if getattr(session, "_pending_buffer", None):
        raise _BadReply("unread input was pending before the query")
    sock = _socket_of(session)
    if sock is not None:
        if not select.select([sock], [], [], 0)[0]:  # the usual case, without an exception
            return
        _check_alive(sock)
        raise _BadReply("unread input was pending before the query")
    serial_port = getattr(session, "interface", None)
    waiting = getattr(serial_port, "in_waiting", 0)
    if isinstance(waiting, int) and waiting > 0:
        raise _BadReply("unread input was pending before the query")


def _close_quietly(res: Any) -> None:
    with contextlib.suppress(Exception):
        res.close()


def _describe(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if type(exc).__name__ not in text else text
