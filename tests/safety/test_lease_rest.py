"""A lone instrument ends the step where the step would have ended: the supervisor's renewals say
where the step is due to end, the instrument holds the setpoint to the first reading at or after
it and then rests the cell at 0 A (output on) until the lease ends in high impedance.

Over real TCP through pyvisa-py to the emulated Keithley 2450 on a recording cell; a virtual clock
that only the test moves (a controller that stops reading is a dead one).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from licycler.drivers.keithley2450 import Keithley2450
from licycler.drivers.transport import VisaTransport
from licycler.events import EventLog
from licycler.safety import ChannelSupervisor, Limits, LimitStack
from tests.drivers.lease_bench import LeaseBench, served_2450

CURRENT_A = -2e-3  # plating
PERIOD_S = 0.1
LEASE_S = 2.0


@pytest.fixture
async def bench() -> AsyncIterator[LeaseBench]:
    async with served_2450() as served:
        yield LeaseBench(*served)


def supervised(bench: LeaseBench, horizon: list[float | None]) -> ChannelSupervisor:
    transport = VisaTransport(bench.server.resource, name="2450", timeout_s=1.0, retries=1, reconnect_backoff_s=0.01)
    limits = LimitStack()
    limits.push("station", Limits(voltage_min_v=2.0, voltage_max_v=3.5, current_max_a=5e-3))
    supervisor = ChannelSupervisor(
        "A1",
        Keithley2450(transport, name="2450"),
        clock=bench.clock,
        events=EventLog(),
        limits=limits,
        read_period_s=PERIOD_S,
        lease_s=LEASE_S,
        stuck_count=10**6,
    )  # fmt: skip  (an exact emulation: readings repeat)
    supervisor.lease_horizon = lambda: horizon[0]
    return supervisor


def delivered_c(bench: LeaseBench, until_s: float) -> float:
    """The charge the cell was driven with (C), from its drive record, up to ``until_s``."""
    q = 0.0
    drive = bench.cell.drive
    for (t, mode, level), (t_next, _, _) in zip(drive, [*drive[1:], (until_s, "", 0.0)], strict=True):
        if mode == "current":
            q += abs(level) * (min(t_next, until_s) - t)
    return q


async def start(bench: LeaseBench, supervisor: ChannelSupervisor) -> float:
    await supervisor.channel.connect()
    await supervisor.arm()
    await supervisor.set_current(CURRENT_A)
    await supervisor.output_on()
    return bench.clock.now()


@pytest.mark.parametrize("left_s", [0.05, 0.45, 1.23])  # the step ends inside the last lease
async def test_a_dead_controller_s_instrument_ends_the_step_at_its_charge_and_rests(
    bench: LeaseBench, left_s: float
) -> None:
    horizon: list[float | None] = [None]
    supervisor = supervised(bench, horizon)
    t_on = await start(bench, supervisor)
    step_end = t_on + 6.0 + left_s  # where the step is due to end; the controller dies 6 s in
    horizon[0] = step_end
    await supervisor.renew_lease()  # as the engine does when the step starts
    t = t_on
    while t < t_on + 6.0:  # alive: a read every period renews every third of the lease
        t += PERIOD_S
        await bench.move_to(t)
        await supervisor.read_block()
    last_renewal = supervisor._leased_at  # when the dead controller renewed last
    assert last_renewal is not None
    await bench.move_to(t + 3 * LEASE_S)  # dead: nothing is read or renewed from here
    assert not bench.emulation.smu.output_on
    assert bench.cell.drive[-1][1] == "open"  # high impedance at the lease's end
    t_open = bench.cell.drive[-1][0]
    assert t_open <= last_renewal + LEASE_S + PERIOD_S
    plated = [t for t, mode, level in bench.cell.drive if mode == "current" and level == CURRENT_A]
    rest = next(t for t, mode, level in bench.cell.drive if t > plated[0] and mode == "current" and level == 0.0)
    assert step_end <= rest <= step_end + PERIOD_S  # right after the first reading at or after the step's end
    # the charge is the step's, to within one read period of current (it was up to 3 periods more)
    scheduled_c = abs(CURRENT_A) * (step_end - t_on)
    assert delivered_c(bench, t_open) == pytest.approx(scheduled_c, abs=abs(CURRENT_A) * PERIOD_S)
    await supervisor.channel.close()


async def test_an_alive_controller_never_sees_the_rest_and_a_step_s_end_rests_at_once(bench: LeaseBench) -> None:
    horizon: list[float | None] = [None]
    supervisor = supervised(bench, horizon)
    t_on = await start(bench, supervisor)
    step_end = t_on + 4.05
    horizon[0] = step_end
    await supervisor.renew_lease()
    t = t_on
    while t < step_end:  # reads up to the step's end, renewing on the way
        t += PERIOD_S
        await bench.move_to(t)
        block = await supervisor.read_block()
        assert len(block) == 0 or abs(block.current_a[0] - CURRENT_A) < 1e-9 or t >= step_end
    horizon[0] = None
    await supervisor.renew_lease(rest=True)  # the step has ended: the cell rests until the next setpoint
    ended = bench.clock.now()
    await bench.move_to(ended + 0.5)
    assert bench.emulation.smu.output_on
    assert bench.emulation.smu.current_level_a == 0.0  # a rest, the relay closed
    levels = [level for t, mode, level in bench.cell.drive if mode == "current" and t_on <= t < step_end]
    assert set(levels) == {CURRENT_A}  # no rest before the step's end while the controller lived
    await supervisor.set_current(-CURRENT_A)  # the next step's setpoint ends the rest
    await supervisor.renew_lease()
    await bench.move_to(ended + 1.5)
    assert bench.emulation.smu.current_level_a == -CURRENT_A
    await supervisor.channel.close()
