"""Where the broker is and how to stay connected: an MQTT URL, and a reconnecting session loop.

URL forms::

    mqtt://[USER[:PASSWORD]@]HOST[:PORT]            plain TCP (port 1883)
    mqtts://[USER[:PASSWORD]@]HOST[:PORT]?ca=FILE   TLS (port 8883); ``ca`` the CA certificate
                                                    (default: the system's), ``insecure=1`` skips
                                                    the host name check, ``cert``/``key`` a client
                                                    certificate

A password can also come from ``?password_file=FILE`` or the ``LICYCLER_MQTT_PASSWORD``
environment variable, which keeps it out of process listings.

:func:`stay_connected` runs a session on one :class:`aiomqtt.Client` (created in the running
loop, reused across reconnects as aiomqtt 2.x wants) with exponential backoff, until asked to stop.
Every connection sets ``TCP_NODELAY``: without it Nagle's algorithm and delayed ACKs add tens of
milliseconds to a command on loopback.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import aiomqtt

from licycler.errors import UserError

__all__ = ["Backoff", "MqttConfig", "parse_mqtt_url", "stay_connected"]

_log = logging.getLogger(__name__)
PASSWORD_ENV = "LICYCLER_MQTT_PASSWORD"


@dataclass(frozen=True)
class MqttConfig:
    """How to reach the broker (see the module doc for the URL form)."""

    host: str
    port: int = 1883
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: bool = False
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    tls_insecure: bool = False
    keepalive_s: int = 30
    timeout_s: float = 10.0

    @property
    def safe_url(self) -> str:
        """The URL without the password (for logs and messages)."""
        user = f"{self.username}@" if self.username else ""
        return f"{'mqtts' if self.tls else 'mqtt'}://{user}{self.host}:{self.port}"

    def client(
        self,
        *,
        identifier: str | None = None,
        will: aiomqtt.Will | None = None,
        clean_session: bool = True,
        max_inflight: int = 100,
        max_queued_incoming: int = 0,
    ) -> aiomqtt.Client:
        """A new client (must be called inside the running event loop)."""
        tls_params = None
        if self.tls:
            tls_params = aiomqtt.TLSParameters(
                ca_certs=self.ca_file, certfile=self.cert_file, keyfile=self.key_file,
                cert_reqs=ssl.CERT_REQUIRED,
            )  # fmt: skip
        client = aiomqtt.Client(
            self.host, self.port, username=self.username, password=self.password, identifier=identifier,
            will=will, clean_session=clean_session, keepalive=self.keepalive_s, timeout=self.timeout_s,
            tls_params=tls_params, tls_insecure=self.tls_insecure if self.tls else None,
            max_inflight_messages=max_inflight, max_queued_incoming_messages=max_queued_incoming,
            socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
        )  # fmt: skip
        client.pending_calls_threshold = 10 * max_inflight  # aiomqtt warns above this many awaited publishes
        return client


def parse_mqtt_url(url: str) -> MqttConfig:
    """An :class:`MqttConfig` from ``mqtt://`` or ``mqtts://`` URL; a :class:`UserError` when malformed."""
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts", "tcp", "ssl"):
        raise UserError(f"MQTT URL {url!r}: expected mqtt://HOST[:PORT] or mqtts://HOST[:PORT]")
    tls = parts.scheme in ("mqtts", "ssl")
    try:
        port = parts.port or (8883 if tls else 1883)
    except ValueError:
        raise UserError(f"MQTT URL {url!r}: bad port") from None
    if not parts.hostname:
        raise UserError(f"MQTT URL {url!r}: no host")
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    unknown = set(query) - {"ca", "cert", "key", "insecure", "password_file"}
    if unknown:
        raise UserError(f"MQTT URL {url!r}: unknown option(s) {', '.join(sorted(unknown))}")
    password = unquote(parts.password) if parts.password is not None else None
    if password is None and "password_file" in query:
        try:
            password = Path(query["password_file"]).read_text().strip()
        except OSError as exc:
            raise UserError(f"MQTT URL: cannot read the password file: {exc}") from None
    if password is None and parts.username:
        password = os.environ.get(PASSWORD_ENV)
    for key in ("ca", "cert", "key"):
        if key in query and not Path(query[key]).is_file():
            raise UserError(f"MQTT URL {url!r}: {key} file {query[key]} not found")
    return MqttConfig(
        parts.hostname, port, unquote(parts.username) if parts.username else None, password, tls,
        query.get("ca"), query.get("cert"), query.get("key"), query.get("insecure", "0") in ("1", "true", "yes"),
    )  # fmt: skip


@dataclass
class Backoff:
    """Reconnect delays: ``initial_s`` doubling up to ``max_s`` (s); reset after a connection."""

    initial_s: float = 0.2
    max_s: float = 10.0
    delay_s: float = 0.0

    def next(self) -> float:
        self.delay_s = self.initial_s if self.delay_s == 0.0 else min(self.delay_s * 2.0, self.max_s)
        return self.delay_s

    def reset(self) -> None:
        self.delay_s = 0.0


Session = Callable[[aiomqtt.Client], Awaitable[None]]


async def stay_connected(
    client: aiomqtt.Client,
    session: Session,
    stop: asyncio.Event,
    *,
    backoff: Backoff | None = None,
    name: str = "mqtt",
    on_failure: Callable[[BaseException], None] | None = None,
) -> None:
    """Run ``session(client)`` while connected; reconnect with ``backoff`` when the connection fails
    or is refused, until ``stop`` is set. ``session`` returns when ``stop`` is set (a clean end) and
    raises :class:`aiomqtt.MqttError` when the connection is lost."""
    backoff = backoff or Backoff()
    while not stop.is_set():
        try:
            async with client:
                backoff.reset()
                await session(client)
        except Exception as exc:  # a lost connection (MqttError) or a bug: never ends the caller's run
            if not isinstance(exc, aiomqtt.MqttError):
                _log.exception("%s: session failed", name)
            if on_failure is not None:
                on_failure(exc)
            delay = backoff.next()
            if delay >= backoff.max_s:
                _log.warning("%s: %s; retrying in %.1f s", name, exc, delay)
            else:
                _log.info("%s: %s; retrying in %.1f s", name, exc, delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
