"""VisaTransport through real pyvisa-py sockets and a pseudo-terminal (ASRL), against tiny servers.

The servers here are plain asyncio/pty code (nothing of licycler): each answers ``<line> #<n>``
where n counts the lines received, and misbehaves on purpose for some commands.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import tty
from collections.abc import AsyncIterator

import pytest

from licycler.drivers.errors import DriverError
from licycler.drivers.transport import VisaTransport, resource_key

TIMEOUT_S = 0.2


class LineServer:
    """Answers ``<line> #<n>``. ``LOSE`` lines get no answer the first time, ``SLOW`` lines are
    answered after ``slow_s``, ``BYE`` closes the connection, ``GARBAGE`` first gets bytes that
    are not ASCII, ``TWICE`` gets two lines, ``MUTE`` and ``SET`` lines get none."""

    def __init__(self, slow_s: float = 2.5 * TIMEOUT_S) -> None:
        self.slow_s = slow_s
        self.received: list[str] = []
        self.connections = 0
        self.lost_once: set[str] = set()
        self.server: asyncio.Server | None = None
        self.port = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while line := await reader.readline():
                text = line.decode().rstrip("\n")
                self.received.append(text)
                answer = f"{text} #{len(self.received)}\n".encode()
                if text == "BYE":
                    break
                if text.startswith("LOSE") and text not in self.lost_once:
                    self.lost_once.add(text)
                    continue
                if text.startswith(("MUTE", "SET")):  # SET: a command, no reply (as SCPI)
                    continue
                if text.startswith("SLOW"):
                    await asyncio.sleep(self.slow_s)
                if text.startswith("GARBAGE") and text not in self.lost_once:
                    self.lost_once.add(text)
                    answer = b"\xff\xfe\x80\n"
                if text.startswith("TWICE"):
                    answer = answer + answer
                if text.startswith("PIECES"):  # a long reply that arrives in two parts
                    answer = b"x" * 100_000 + answer
                    writer.write(answer[:50_000])
                    await writer.drain()
                    await asyncio.sleep(0.05)
                    answer = answer[50_000:]
                writer.write(answer)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def __aenter__(self) -> LineServer:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()

    @property
    def resource(self) -> str:
        return f"TCPIP::127.0.0.1::{self.port}::SOCKET"

    def count(self, command: str) -> int:
        return sum(1 for r in self.received if r == command)


@pytest.fixture
async def line_server() -> AsyncIterator[LineServer]:
    async with LineServer() as server:
        yield server


def make(resource: str, *, retries: int = 2) -> VisaTransport:
    return VisaTransport(
        resource, name="line server", timeout_s=TIMEOUT_S, retries=retries, reconnect_backoff_s=0.01
    )


async def test_query_write_and_context_manager(line_server: LineServer) -> None:
    async with make(line_server.resource) as t:
        assert await t.query("HELLO") == "HELLO #1"
        await t.write("SET 1")
        assert await t.query("AGAIN") == "AGAIN #3"
        await t.write_raw(b"RAW\n")
        assert await t.read_line() == "RAW #4"
    assert not t.is_open


async def test_a_reply_arriving_in_pieces_is_read_whole(line_server: LineServer) -> None:
    async with make(line_server.resource) as t:
        reply = await t.query("PIECES")
        assert reply.endswith("PIECES #1")
        assert len(reply) == 100_000 + len("PIECES #1")
        assert await t.query("AFTER") == "AFTER #2"


async def test_concurrent_queries_are_serialised(line_server: LineServer) -> None:
    async with make(line_server.resource) as t:
        answers = await asyncio.gather(*(t.query(f"Q{i}") for i in range(25)))
    assert [a.split(" #")[0] for a in answers] == [f"Q{i}" for i in range(25)]


async def test_one_lock_per_port_whatever_the_spelling(line_server: LineServer) -> None:
    a = make(line_server.resource)
    b = make(f"TCPIP0::127.0.0.1::{line_server.port}::SOCKET")
    assert resource_key(a.resource) == resource_key(b.resource)
    assert a._lock is b._lock
    async with a, b:
        answers = await asyncio.gather(*(x.query(f"P{i}") for i, x in enumerate([a, b] * 5)))
    assert sorted(int(s.split("#")[1]) for s in answers) == list(range(1, 11))


async def test_timeout_names_instrument_command_and_cause(line_server: LineServer) -> None:
    async with make(line_server.resource) as t:
        with pytest.raises(DriverError) as info:
            await t.query("MUTE", idempotent=False)
    err = info.value
    assert err.instrument == "line server"
    assert err.command == "MUTE"
    assert "timeout" in err.cause
    assert line_server.count("MUTE") == 1  # not idempotent: never resent


async def test_idempotent_query_is_retried_after_a_lost_reply(line_server: LineServer) -> None:
    async with make(line_server.resource) as t:
        assert (await t.query("LOSE A")).startswith("LOSE A #")
    assert line_server.count("LOSE A") == 2


async def test_retries_are_bounded(line_server: LineServer) -> None:
    async with make(line_server.resource, retries=1) as t:
        with pytest.raises(DriverError, match="after 2 attempts"):
            await t.query("MUTE")
    assert line_server.count("MUTE") == 2


async def test_late_reply_is_never_taken_as_the_next_answer(line_server: LineServer) -> None:
    async with make(line_server.resource) as t:
        with pytest.raises(DriverError):
            await t.query("SLOW", idempotent=False)
        assert (await t.query("NEXT")).startswith("NEXT #")
        assert (await t.query("THEN")).startswith("THEN #")


async def test_an_extra_line_is_detected_before_the_next_query(line_server: LineServer) -> None:
    async with make(line_server.resource) as t:
        assert (await t.query("TWICE")).startswith("TWICE #")
        # the second copy is waiting: it must not be read as the answer to NEXT
        assert (await t.query("NEXT")).startswith("NEXT #")


async def test_garbage_reply_is_resynchronised_and_retried(line_server: LineServer) -> None:
    async with make(line_server.resource) as t:
        assert (await t.query("GARBAGE 1")).startswith("GARBAGE 1 #")
    assert line_server.count("GARBAGE 1") == 2


async def test_parse_failure_is_a_bad_reply(line_server: LineServer) -> None:
    async with make(line_server.resource, retries=1) as t:
        with pytest.raises(DriverError, match="bad reply"):
            await t.query_as("NUMBER", float)
    assert line_server.count("NUMBER") == 2


async def test_reconnects_after_the_instrument_hangs_up(line_server: LineServer) -> None:
    async with make(line_server.resource) as t:
        assert (await t.query("ONE")).startswith("ONE")
        with pytest.raises(DriverError):
            await t.query("BYE", idempotent=False)
        assert (await t.query("TWO")).startswith("TWO")
        assert t.reconnects >= 1
    assert line_server.connections >= 2


async def test_refused_connection_raises_after_backoff() -> None:
    async with LineServer() as server:
        resource = server.resource
    t = make(resource, retries=1)
    with pytest.raises(DriverError, match="could not open") as info:
        await t.open()
    assert info.value.command is None


async def test_closed_transport_raises(line_server: LineServer) -> None:
    t = make(line_server.resource)
    with pytest.raises(DriverError, match="closed"):
        await t.query("X")


async def test_cancelled_query_does_not_desynchronise(line_server: LineServer) -> None:
    async with make(line_server.resource) as t:
        task = asyncio.create_task(t.query("SLOW C", idempotent=False))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert (await t.query("AFTER")).startswith("AFTER #")


async def test_read_line_times_out(line_server: LineServer) -> None:
    async with make(line_server.resource) as t:
        with pytest.raises(DriverError, match="timeout"):
            await t.read_line(timeout_s=0.05)
        assert (await t.query("OK")).startswith("OK #")


async def test_locked_block_is_reentrant_for_its_task(line_server: LineServer) -> None:
    async with make(line_server.resource) as t:
        other = asyncio.create_task(t.query("OTHER"))
        async with t.locked():
            await t.write("FIRST")
            assert (await t.read_line()).startswith("FIRST #")
            assert (await t.query("SECOND")).startswith("SECOND #")
        assert (await other).startswith("OTHER #")
    assert line_server.received.index("OTHER") > line_server.received.index("SECOND")


# ------------------------------------------------------------------------------ ASRL over a pty


class PtyResponder:
    """Answers lines on a pseudo-terminal from a thread; ``SLOW`` lines late, ``MUTE`` never."""

    def __init__(self, slow_s: float) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        self.path = os.ttyname(self.slave)
        self.slow_s = slow_s
        self.stop = threading.Event()
        self.received: list[str] = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        buf = b""
        while not self.stop.is_set():
            try:
                chunk = os.read(self.master, 1024)
            except OSError:
                return
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                text = line.decode()
                self.received.append(text)
                if text.startswith("MUTE"):
                    continue
                if text.startswith("SLOW"):
                    self.stop.wait(self.slow_s)
                with contextlib.suppress(OSError):
                    os.write(self.master, f"{text} #{len(self.received)}\n".encode())

    def close(self) -> None:
        self.stop.set()
        os.close(self.slave)
        os.close(self.master)


async def test_asrl_pty_query_and_drain_of_a_late_reply() -> None:
    responder = PtyResponder(slow_s=1.5 * TIMEOUT_S)
    t = VisaTransport(
        f"ASRL{responder.path}::INSTR", name="pty device", timeout_s=TIMEOUT_S, baud_rate=115200,
        retries=1, reconnect_backoff_s=0.01,
    )
    try:
        async with t:
            assert await t.query("PING") == "PING #1"
            with pytest.raises(DriverError, match="timeout"):
                await t.query("SLOW", idempotent=False)
            # the late "SLOW #2" arrives while draining; the next answer is the right one
            assert await t.query("PONG") == "PONG #3"
            with pytest.raises(DriverError) as info:
                await t.query("MUTE")
        assert info.value.command == "MUTE"
        assert responder.received.count("MUTE") == 2  # retried once
    finally:
        responder.close()
