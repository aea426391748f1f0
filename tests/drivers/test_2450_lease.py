"""The Keithley 2450's lease: a trigger model that ends in a source-output-off block.

Over real TCP through pyvisa-py, on a virtual clock that only the test moves. The semantics are the
reference manual's: a counter branch repeats its target ``count`` times in all; ``:ABORt`` leaves the
output as it is; a source-state block at the end turns the output off, in the output-off state set
with ``:OUTP:CURR:SMOD`` (HIMP opens the relay: the cell sees no source at all).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import numpy as np
import pytest

from licycler.drivers.keithley2450 import Keithley2450
from licycler.drivers.transport import VisaTransport
from licycler.sim_instruments.keithley2450 import Keithley2450 as Emulation
from tests.drivers import lease_bench
from tests.drivers.lease_bench import LeaseBench, served_2450

CURRENT_A = 5e-3
PERIOD_S = 0.1
NPLC = 1.0
READING_S = NPLC / 60 + 2e-4
"""How long the emulation takes for one reading (NPLC line cycles at 60 Hz, plus its overhead)."""


@dataclass
class Bench(LeaseBench):
    emulation: Emulation

    def driver(self) -> Keithley2450:
        transport = VisaTransport(self.server.resource, name="2450", timeout_s=1.0, retries=1, reconnect_backoff_s=0.01)
        return Keithley2450(transport, name="2450 under test")


@pytest.fixture
async def bench() -> AsyncIterator[Bench]:
    async with served_2450() as served:
        yield Bench(*served)


async def sourcing(driver: Keithley2450) -> None:
    await lease_bench.sourcing(driver, CURRENT_A, NPLC)


async def test_counter_branch_repeats_as_the_manual_example(bench: Bench) -> None:
    # the manual's example: 5 readings in an inner loop, three more times around it: 15 readings
    driver = bench.driver()
    await driver.connect()
    for line in ('TRIG:LOAD "EMPTY"', "TRIG:BLOC:BUFF:CLEAR 1", "TRIG:BLOC:MEAS 2", "TRIG:BLOC:BRAN:COUN 3, 5, 2",
                 "TRIG:BLOC:DEL:CONS 4, 1", "TRIG:BLOC:BRAN:COUN 5, 3, 2", "INIT"):  # fmt: skip
        await driver.transport.write(line)
    assert (await bench.raw(":TRIG:STAT?")).startswith("RUNNING")
    await bench.move_to(bench.clock.now() + 15 * READING_S + 2.5)
    assert await bench.raw(":TRIG:STAT?") == "RUNNING;RUNNING;4"  # in the third delay
    await bench.move_to(bench.clock.now() + 0.5 + 1e-6)
    assert await bench.raw(':TRAC:ACT? "defbuffer1"') == "15"
    assert await bench.raw(":TRIG:STAT?") == "IDLE;IDLE;5"
    await driver.close()


async def test_a_lease_not_renewed_turns_the_output_off_in_high_impedance_by_itself(bench: Bench) -> None:
    driver = bench.driver()
    await sourcing(driver)
    lease_s = 2.0
    t0 = bench.clock.now()
    await driver.arm_lease(lease_s, PERIOD_S)
    await bench.move_to(t0 + 0.95 * lease_s)
    assert await bench.raw(":OUTP?") == "1"
    # nothing is sent from now on: the instrument ends the model by itself
    await bench.move_to(t0 + 1.05 * lease_s)
    assert not bench.emulation.smu.output_on
    t_open, mode, _ = bench.cell.drive[-1]
    assert mode == "open"  # HIMP: the relay opened, no 0 V source across the cell
    # 20 rounds of (reading + delay): the lease, give or take the reading overhead per round
    assert t_open - t0 == pytest.approx(lease_s, abs=20 * 2e-4 + 1e-9)
    assert await bench.raw(":OUTP?") == "0"
    assert await bench.raw(":OUTP:CURR:SMOD?") == "HIMP"
    assert await bench.raw(":TRIG:STAT?") == "IDLE;IDLE;11"  # the source-state block, the model's last
    await driver.close()


async def test_renewals_never_open_a_gap_and_every_reading_arrives(bench: Bench) -> None:
    driver = bench.driver()
    await sourcing(driver)
    t_on = bench.clock.now()
    mark = len(bench.cell.drive) - 1  # the output just went on: the cell is driven by the current
    await driver.arm_lease(2.0, PERIOD_S)
    times: list[np.ndarray] = []
    for k in range(200):  # a read every period, a renewal every 0.5 s, for 20 s
        await bench.move_to(t_on + (k + 1) * PERIOD_S)
        block = await driver.read_block()
        times.append(block.time_s)
        assert np.allclose(block.current_a, CURRENT_A)
        if k % 5 == 4:
            await driver.arm_lease(2.0, PERIOD_S)
    t_end = bench.clock.now()
    drive_after_on = bench.cell.drive[mark:]
    assert all(mode == "current" and level == CURRENT_A for _, mode, level in drive_after_on), drive_after_on[:5]
    assert bench.emulation.smu.output_on
    t = np.concatenate(times)
    assert len(t) >= 190  # one reading per period, none twice
    assert np.all(np.diff(t) > 0)
    assert np.max(np.diff(t)) < PERIOD_S + 2 * READING_S  # a renewal restarts the round: never a hole
    assert t[-1] >= t_end - t_on - 2 * PERIOD_S - t[0]  # up to date
    await driver.close()


async def test_the_setpoint_ends_at_the_reading_that_completes_the_step_and_the_cell_rests(bench: Bench) -> None:
    driver = bench.driver()
    await sourcing(driver)
    t0 = bench.clock.now()
    mark = len(bench.cell.drive)
    setpoint_s = 0.73  # the step is due to end 0.73 s from now; the controller dies at once
    await driver.arm_lease(2.0, PERIOD_S, setpoint_s)
    await bench.move_to(t0 + 3.0)
    assert not bench.emulation.smu.output_on  # the lease still ends in high impedance
    assert bench.cell.drive[-1][1] == "open"
    drive = bench.cell.drive[mark:]
    rest = next(t for t, mode, level in drive if mode == "current" and level == 0.0)
    # reading k ends at (k - 1) * (period + overhead) + reading time: the first at or after 0.73 s is k = 9
    first_at_or_after = 8 * (PERIOD_S + 2e-4) + READING_S
    assert rest - t0 == pytest.approx(first_at_or_after, abs=1e-6)  # right after that reading
    assert rest - t0 >= setpoint_s
    # the charge delivered is the setpoint's up to there: the step's, to within one read period
    assert CURRENT_A * (rest - t0) == pytest.approx(CURRENT_A * setpoint_s, abs=CURRENT_A * PERIOD_S)
    back = await driver.read_block()
    assert np.allclose(back.current_a[:9], CURRENT_A)
    assert np.allclose(back.current_a[9:], 0.0, atol=1e-9)  # readings at rest, output still on
    assert len(back) == 20
    await driver.close()


async def test_a_renewal_during_the_rest_puts_the_setpoint_back(bench: Bench) -> None:
    driver = bench.driver()
    await sourcing(driver)
    t0 = bench.clock.now()
    await driver.arm_lease(2.0, PERIOD_S, 0.0)  # rest after the next reading
    await bench.move_to(t0 + 0.5)
    assert bench.emulation.smu.current_level_a == 0.0
    await driver.arm_lease(2.0, PERIOD_S)  # the controller says the step goes on
    assert bench.emulation.smu.current_level_a == CURRENT_A
    await bench.move_to(t0 + 1.5)
    block = await driver.read_block()
    late = block.current_a[block.time_s > block.time_s[0] + 0.6]
    assert len(late) >= 8
    assert np.allclose(late, CURRENT_A)
    await driver.close()


async def test_spot_readings_are_refused_while_leased_and_safe_state_stops_the_lease(bench: Bench) -> None:
    driver = bench.driver()
    await sourcing(driver)
    await driver.arm_lease(10.0, PERIOD_S)
    await bench.move_to(bench.clock.now() + 1.0)
    reply = await bench.raw(':READ? "defbuffer1";:SYST:ERR?')  # the reading fails: only the error answers
    assert "Trigger model is running" in reply
    assert "," in reply
    assert ";" not in reply.split('"')[0]
    await driver.safe_state()
    assert (await bench.raw(":TRIG:STAT?")).startswith("ABORTED")
    assert not bench.emulation.smu.output_on
    reading = asyncio.create_task(driver.read_block())  # back to readings on request, which take
    while not reading.done():  # their time on the clock: move it until the reading is in
        await bench.move_to(bench.clock.now() + READING_S)
        await asyncio.wait({reading}, timeout=0.01)
    assert len(reading.result()) == 1
    await driver.close()


async def test_readings_taken_while_the_controller_was_away_are_read_back_on_the_same_time_base(
    bench: Bench,
) -> None:
    first = bench.driver()
    await sourcing(first)
    t0 = bench.clock.now()
    await first.arm_lease(2.0, PERIOD_S)
    await bench.move_to(t0 + 0.5)
    seen = await first.read_block()
    base = first.time_base()
    await first.transport.close()  # the controller dies here: nothing more is read or renewed
    await bench.move_to(t0 + 5.0)
    assert not bench.emulation.smu.output_on

    second = bench.driver()  # a new controller
    second.restore_time_base(base)
    await second.transport.open()
    await second.safe_state()
    back = await second.read_lease_buffer()
    assert np.array_equal(back.time_s[: len(seen)], seen.time_s)  # the same readings at the same times
    assert len(back) == 20  # every round of the lease took its reading before the output went off
    assert np.allclose(back.current_a[:-1], CURRENT_A)
    assert back.current_a[-1] == pytest.approx(0.0, abs=1e-9)  # its last round rests the cell
    assert back.time_s[-1] - seen.time_s[0] == pytest.approx(19 * (PERIOD_S + 2e-4), abs=1e-6)
    await second.close()


async def test_the_lease_switches_buffers_when_one_is_half_full_and_loses_no_reading(bench: Bench) -> None:
    driver = bench.driver()
    await sourcing(driver)
    for name in ("defbuffer1", "defbuffer2"):
        await driver.transport.write(f':TRAC:POIN 40, "{name}"')
    assert await driver.transport.query(':TRAC:POIN? "defbuffer2"') == "40"
    t_on = bench.clock.now()
    await driver.arm_lease(2.0, PERIOD_S)
    times: list[np.ndarray] = []
    for k in range(153):  # 7 switches; the last one a few reads before the end
        await bench.move_to(t_on + (k + 1) * PERIOD_S)
        times.append((await driver.read_block()).time_s)
        if k % 5 == 4:
            await driver.arm_lease(2.0, PERIOD_S)
    t = np.concatenate(times)
    assert np.all(np.diff(t) > 0)
    assert np.max(np.diff(t)) < PERIOD_S + 2 * READING_S
    assert len(t) >= 140
    counts = [int(await bench.raw(f':TRAC:ACT? "{n}"')) for n in ("defbuffer1", "defbuffer2")]
    assert max(counts) <= 40  # both in use, neither ever overwrote a reading
    assert min(counts) > 0
    await driver.close()
