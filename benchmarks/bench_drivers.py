"""A driver query through pyvisa against the emulated Keithley 2450, in the same run as the same
command over a raw socket and as a bare pyvisa query.

The emulation is served by ``licycler sim-serve keithley2450`` in its own process (as an
instrument would be); every client sends ``:SOUR:CURR:VLIM:TRIP?`` and reads the reply:

- raw socket: ``sendall`` + read to LF (the floor: emulation + loopback);
- bare pyvisa: ``resource.query`` on a pyvisa-py ``TCPIP::...::SOCKET`` resource;
- driver: ``Keithley2450.voltage_limit_tripped()`` (VisaTransport: port lock, worker thread,
  sync check, parse) awaited in an asyncio loop.

Target: the driver's time per query is at most 1.3x the bare pyvisa query's.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time

import pyvisa

from benchmarks.harness import Result, ratio_result
from licycler.drivers.keithley2450 import Keithley2450

COMMAND = ":SOUR:CURR:VLIM:TRIP?"


def _serve() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "licycler", "sim-serve", "keithley2450", "--port", "0", "--no-noise"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


def _time_per_call(call: object, n: int) -> tuple[float, float]:
    """(wall, CPU) seconds per call of ``call``."""
    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(n):
        call()  # type: ignore[operator]
    return (time.perf_counter() - start) / n, (time.process_time() - cpu) / n


async def _measure(resource: str, n: int, rounds: int) -> tuple[list[float], list[float]]:
    """Best per-query wall and CPU times (s) of raw socket, bare pyvisa and driver over
    ``rounds`` interleaved rounds of ``n`` queries."""
    port = int(resource.split("::")[2])
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    stream = sock.makefile("rb")
    data = COMMAND.encode() + b"\n"

    def raw_query() -> None:
        sock.sendall(data)
        if not stream.readline().endswith(b"\n"):
            raise RuntimeError("no reply")

    rm = pyvisa.ResourceManager("@py")
    res = rm.open_resource(resource, read_termination="\n", write_termination="\n", timeout=2000)
    driver = Keithley2450.for_resource(resource, timeout_s=2.0)
    await driver.connect()
    wall = [float("inf")] * 3
    cpu = [float("inf")] * 3
    try:
        for _ in range(rounds):
            timings = [_time_per_call(raw_query, n), _time_per_call(lambda: res.query(COMMAND), n)]
            start, cpu0 = time.perf_counter(), time.process_time()
            for _ in range(n):
                await driver.voltage_limit_tripped()
            timings.append(((time.perf_counter() - start) / n, (time.process_time() - cpu0) / n))
            for k, (w, c) in enumerate(timings):
                wall[k], cpu[k] = min(wall[k], w), min(cpu[k], c)
    finally:
        await driver.close()
        res.close()
        stream.close()
        sock.close()
    return wall, cpu


def run(quick: bool) -> list[Result]:
    n = 100 if quick else 300
    rounds = 5 if quick else 30
    proc, resource = _serve()
    try:
        wall, cpu = asyncio.run(_measure(resource, n, rounds))
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    t_raw, t_bare, t_drv = (t * 1e6 for t in wall)
    c_bare, c_drv = cpu[1] * 1e6, cpu[2] * 1e6
    notes = f"best of {rounds} interleaved rounds of {n} queries; emulation in a sim-serve process"
    return [
        ratio_result("driver query vs bare pyvisa (per query)", t_drv, "us", t_bare,
                     "bare pyvisa query", target="<= 1.3", notes=notes),
        ratio_result("driver query vs raw socket (per query)", t_drv, "us", t_raw,
                     "raw socket", notes=notes),
        ratio_result("bare pyvisa query vs raw socket (per query)", t_bare, "us", t_raw,
                     "raw socket", notes=notes),
        ratio_result("driver query CPU vs bare pyvisa CPU (per query)", c_drv, "us", c_bare,
                     "bare pyvisa CPU", notes="client process CPU time; " + notes),
    ]
