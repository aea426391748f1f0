"""What the lease costs a station: renewals of the 2450's trigger-model lease against its reads.

The emulated Keithley 2450 runs in its own process (``licycler sim-serve keithley2450``, real time,
exact readings) on a dummy cell; the driver sources 1 mA with the lease armed and, for ``N``
rounds, reads the buffer once per read period and renews the lease after every read (the engine
renews every third of the lease: this is the worst case, ``N`` renewals in a row). Reported:

- the time one renewal (``:ABOR;:INIT;:TRIG:STAT?;:OUTP?``) takes, against one read period: the
  issue's bound is "less than one read period";
- renewal time against a leased read's time (the baseline: what a station spends per read);
- the fraction of a station's read time the renewals cost at the engine's rate (10 s lease renewed
  every 3.3 s, 10 Hz reads: one renewal per 33 reads);
- continuity: every reading at the sourced current and none missing (the largest spacing of the
  instrument's reading times, against the read period), and the trigger model still running.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time

import numpy as np

from benchmarks.harness import Result, ratio_result
from licycler.drivers.keithley2450 import Keithley2450

CURRENT_A = 1e-3
LEASE_S = 10.0
ENGINE_READS_PER_RENEWAL = 33  # 10 Hz reads, a 10 s lease renewed every third of it


def _serve() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "licycler", "sim-serve", "keithley2450", "--port", "0", "--no-noise"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


async def _measure(resource: str, rounds: int, period_s: float) -> dict[str, float]:
    driver = Keithley2450.for_resource(resource, name="2450 (bench)", timeout_s=2.0)
    await driver.connect()
    await driver.configure_current_source(voltage_limit_v=5.0, nplc=0.5)
    await driver.set_current(CURRENT_A)
    await driver.output_on()
    await driver.arm_lease(LEASE_S, period_s)
    reads, renewals = np.empty(rounds), np.empty(rounds)
    times: list[np.ndarray] = []
    currents: list[np.ndarray] = []
    start = time.monotonic()
    for k in range(rounds):
        await asyncio.sleep(max(start + (k + 1) * period_s - time.monotonic(), 0.0))
        t0 = time.perf_counter()
        block = await driver.read_block()
        t1 = time.perf_counter()
        await driver.arm_lease(LEASE_S, period_s)
        t2 = time.perf_counter()
        reads[k], renewals[k] = t1 - t0, t2 - t1
        times.append(block.time_s)
        currents.append(block.current_a)
    running = (await driver.transport.query(":TRIG:STAT?;:OUTP?")).upper()
    await driver.safe_state()
    await driver.close()
    t = np.concatenate(times)
    i = np.concatenate(currents)
    return {
        "read_s": float(np.median(reads)), "renew_s": float(np.median(renewals)),
        "renew_p99_s": float(np.percentile(renewals, 99)), "max_spacing_s": float(np.max(np.diff(t))),
        "readings": float(len(t)), "off_current": float(np.sum(np.abs(i - CURRENT_A) > 1e-6 * CURRENT_A)),
        "running": float(running.startswith("RUNNING") and running.endswith(";1")),
    }  # fmt: skip


def run(quick: bool) -> list[Result]:
    rounds = 500 if quick else 10_000
    period_s = 0.02
    proc, resource = _serve()
    try:
        m = asyncio.run(_measure(resource, rounds, period_s))
    finally:
        proc.terminate()
        proc.wait(10)
    continuity = (f"{rounds} renewals in a row, one after every read: {int(m['readings'])} readings, largest spacing "
                  f"{m['max_spacing_s'] * 1e3:.1f} ms (read period {period_s * 1e3:g} ms), "
                  f"{int(m['off_current'])} readings off the sourced current, model still running and output on: "
                  f"{bool(m['running'])}; renewal p99 {m['renew_p99_s'] * 1e3:.2f} ms")  # fmt: skip
    fraction = m["renew_s"] / (ENGINE_READS_PER_RENEWAL * m["read_s"])
    return [
        ratio_result("lease renewal vs one read period", m["renew_s"] * 1e3, "ms", period_s * 1e3, "read period (ms)",
                     "<= 1.0", continuity),
        ratio_result("lease renewal vs one leased read", m["renew_s"] * 1e3, "ms", m["read_s"] * 1e3,
                     "leased read_block (ms)", notes="median of each"),
        ratio_result("renewal cost / station read time (engine rate)", fraction, "", 1.0, "read time",
                     notes=f"one renewal per {ENGINE_READS_PER_RENEWAL} reads (10 s lease, 10 Hz)"),
    ]  # fmt: skip
