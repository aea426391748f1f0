"""Real services for the telemetry tests: Mosquitto brokers the tests start (own port, optional
password file and ACL) or the machine's broker, and a fresh PostgreSQL database.

Outside CI a test whose service is missing is skipped with a one-line reason; with ``CI=true``
it fails instead. A service that is installed but stopped is started.
"""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import socket
import subprocess
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

SYSTEM_BROKER = ("127.0.0.1", 1883)
POSTGRES = ("127.0.0.1", 5432)


def unavailable(reason: str) -> None:
    """Skip (or, in CI, fail) because a service the test needs is missing."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"CI: {reason}")
    pytest.skip(reason)


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ensure_system_broker() -> str:
    """The machine's Mosquitto at 127.0.0.1:1883 (started if installed and down); its URL."""
    if not port_open(*SYSTEM_BROKER):
        if shutil.which("mosquitto") and Path("/etc/mosquitto/mosquitto.conf").exists():
            subprocess.run(["mosquitto", "-d", "-c", "/etc/mosquitto/mosquitto.conf"], check=False, timeout=10)
        if not _wait_port(*SYSTEM_BROKER):
            unavailable("no MQTT broker at 127.0.0.1:1883 (install mosquitto)")
    return "mqtt://127.0.0.1:1883"


def _wait_port(host: str, port: int, tries: int = 50) -> bool:
    ready = threading.Event()
    for _ in range(tries):
        if port_open(host, port):
            return True
        ready.wait(0.1)  # a service starting in the background: nothing to wait on but its port
    return False


@dataclass
class Mosquitto:
    """A Mosquitto broker run by the test on its own loopback port (killed at the end).

    ``users`` maps user names to passwords (none: anonymous allowed); ``acl`` is the ACL file text.
    """

    folder: Path
    users: dict[str, str] = field(default_factory=dict)
    acl: str | None = None
    tls: tuple[Path, Path, Path] | None = None  # CA, server certificate, server key
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[str] | None = None
    log: list[str] = field(default_factory=list)
    _running: threading.Event = field(default_factory=threading.Event)

    def url(self, user: str | None = None, password: str | None = None) -> str:
        if user is None:
            return f"mqtt://127.0.0.1:{self.port}"
        secret = self.users.get(user, "") if password is None else password
        return f"mqtt://{user}:{secret}@127.0.0.1:{self.port}"

    def _config(self) -> Path:
        lines = [f"listener {self.port} 127.0.0.1", "persistence false", "set_tcp_nodelay true",
                 "log_dest stderr", "log_type error", "log_type warning", "log_type notice", "log_type information",
                 f"user {getpass.getuser()}", "max_queued_messages 100000"]  # fmt: skip
        if self.tls is not None:
            ca, cert, key = self.tls
            lines += [f"cafile {ca}", f"certfile {cert}", f"keyfile {key}"]
        if self.users:
            passwd = self.folder / "passwd"
            passwd.touch(mode=0o600)
            for name, secret in self.users.items():
                subprocess.run(["mosquitto_passwd", "-b", str(passwd), name, secret], check=True, timeout=10)
            lines += ["allow_anonymous false", f"password_file {passwd}"]
            if self.acl is not None:
                acl = self.folder / "acl"
                acl.write_text(self.acl)
                acl.chmod(0o600)
                lines.append(f"acl_file {acl}")
        else:
            lines.append("allow_anonymous true")
        conf = self.folder / "mosquitto.conf"
        conf.write_text("\n".join(lines) + "\n")
        return conf

    def start(self) -> None:
        """Start (or start again, on the same port) and wait until it listens."""
        if shutil.which("mosquitto") is None:
            unavailable("mosquitto is not installed")
        conf = self._config()
        self._running.clear()
        self.process = subprocess.Popen(
            ["mosquitto", "-c", str(conf)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        threading.Thread(target=self._read, args=(self.process,), daemon=True).start()
        if not self._running.wait(10):
            self.stop()
            raise RuntimeError("mosquitto did not start:\n" + "\n".join(self.log[-20:]))

    def _read(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            self.log.append(line.rstrip())
            if " running" in line:
                self._running.set()

    def kill(self) -> None:
        """SIGKILL: the broker dies without saving anything."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


def make_certificates(folder: Path) -> tuple[Path, Path, Path]:
    """A throw-away CA and a server certificate for 127.0.0.1 signed by it: (ca, cert, key)."""
    if shutil.which("openssl") is None:
        unavailable("openssl is not installed")
    ca, ca_key = folder / "ca.pem", folder / "ca.key"
    cert, key, csr, ext = folder / "server.pem", folder / "server.key", folder / "server.csr", folder / "san.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1\n")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    for command in (
        ["req", "-x509", *ec, "-keyout", ca_key, "-out", ca, "-days", "1", "-subj", "/CN=licycler test CA"],
        ["req", *ec, "-keyout", key, "-out", csr, "-subj", "/CN=127.0.0.1"],
        ["x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-out", cert, "-days", "1",
         "-extfile", ext],
    ):  # fmt: skip
        subprocess.run(["openssl", *map(str, command)], check=True, capture_output=True, timeout=30)
    key.chmod(0o600)
    return ca, cert, key


@contextmanager
def mosquitto(
    folder: Path,
    users: dict[str, str] | None = None,
    acl: str | None = None,
    tls: tuple[Path, Path, Path] | None = None,
) -> Iterator[Mosquitto]:
    broker = Mosquitto(folder, users or {}, acl, tls)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


def ensure_postgres() -> None:
    if port_open(*POSTGRES):
        return
    if shutil.which("pg_ctlcluster") and Path("/etc/postgresql").is_dir():
        for version in os.listdir("/etc/postgresql"):
            subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start"], check=False,
                           timeout=60)  # fmt: skip
    if not _wait_port(*POSTGRES):
        unavailable("no PostgreSQL at 127.0.0.1:5432")


@contextmanager
def fresh_database() -> Iterator[str]:
    """A new PostgreSQL database (dropped afterwards); yields its SQLAlchemy URL."""
    ensure_postgres()
    import psycopg

    name = f"licycler_test_{uuid.uuid4().hex[:10]}"
    admin = "host=127.0.0.1 port=5432 user=postgres dbname=test"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
