"""The generic SCPI driver's lease, declared in the command map's ``lease`` section.

Over real TCP through pyvisa-py against the 2450 emulation, on a virtual clock only the test moves:
the bundled 2450 map's trigger-model lease, and the checks of a ``lease`` section.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from licycler.drivers.generic_scpi import CommandMap, GenericScpiSmu, LeasedGenericScpiSmu, bundled_map
from licycler.drivers.interfaces import LeasedChannel, SourceMeasureChannel
from licycler.errors import UserError
from licycler.sim_instruments.keithley2450 import Keithley2450 as Emulation
from tests.drivers import lease_bench
from tests.drivers.lease_bench import LeaseBench, served_2450

CURRENT_A = 5e-3
PERIOD_S = 0.1
NPLC = 1.0
READING_S = NPLC / 60 + 2e-4
"""How long the emulation takes for one reading (NPLC line cycles at 60 Hz, plus its overhead)."""
MAPS = Path(__file__).parents[2] / "licycler/drivers/command_maps"


def map_data(name: str = "keithley2450") -> dict[str, Any]:
    data = yaml.safe_load((MAPS / f"{name}.yaml").read_text())
    assert isinstance(data, dict)
    return data


@dataclass
class Bench(LeaseBench):
    emulation: Emulation

    def driver(self, command_map: CommandMap | None = None) -> LeasedGenericScpiSmu:
        driver = GenericScpiSmu.for_resource(
            self.server.resource, command_map or bundled_map("keithley2450"),
            name="generic 2450 under test", timeout_s=1.0,
        )
        assert isinstance(driver, LeasedGenericScpiSmu)
        return driver


@pytest.fixture
async def bench() -> AsyncIterator[Bench]:
    async with served_2450() as served:
        yield Bench(*served)


async def sourcing(driver: GenericScpiSmu) -> None:
    await lease_bench.sourcing(driver, CURRENT_A, NPLC)


async def test_the_bundled_2450_map_gives_a_leased_channel_whose_readings_arrive_in_read_block(
    bench: Bench,
) -> None:
    driver = bench.driver()
    assert isinstance(driver, LeasedChannel)
    assert isinstance(driver, SourceMeasureChannel)
    assert "TRIG:BLOC" in driver.lease_mechanism
    await sourcing(driver)
    t0 = bench.clock.now()
    await driver.arm_lease(2.0, PERIOD_S)
    assert (await bench.raw(":TRIG:STAT?")).startswith("RUNNING")
    await bench.move_to(t0 + 1.0 + 1e-6)
    block = await driver.read_block()
    assert len(block) == 10  # one reading per round of (reading + delay)
    assert np.allclose(block.current_a, CURRENT_A)
    assert np.allclose(block.voltage_v, 3.0 + 100.0 * CURRENT_A)
    assert np.diff(block.time_s) == pytest.approx(np.full(9, PERIOD_S), abs=5e-4)
    assert len(await driver.read_block()) == 0  # nothing new since
    await bench.move_to(t0 + 1.5 + 1e-6)
    later = await driver.read_block()
    assert len(later) == 5
    assert later.time_s[0] > block.time_s[-1]
    assert await driver.drain_errors() == []
    await driver.close()


async def test_renewals_keep_the_output_on_and_every_reading_arrives(bench: Bench) -> None:
    driver = bench.driver()
    await sourcing(driver)
    t_on = bench.clock.now()
    mark = len(bench.cell.drive) - 1  # the output just went on: the cell is driven by the current
    await driver.arm_lease(2.0, PERIOD_S)
    times: list[np.ndarray] = []
    for k in range(100):  # a read every period, a renewal every 0.5 s, for 10 s (5 leases)
        await bench.move_to(t_on + (k + 1) * PERIOD_S)
        block = await driver.read_block()
        times.append(block.time_s)
        assert np.allclose(block.current_a, CURRENT_A)
        if k % 5 == 4:
            await driver.arm_lease(2.0, PERIOD_S)
    drive_after_on = bench.cell.drive[mark:]
    assert all(mode == "current" and level == CURRENT_A for _, mode, level in drive_after_on)
    assert bench.emulation.smu.output_on
    assert await bench.raw(":OUTP?") == "1"
    t = np.concatenate(times)
    assert len(t) >= 95
    assert np.all(np.diff(t) > 0)  # none twice
    assert np.max(np.diff(t)) < PERIOD_S + 2 * READING_S  # a renewal restarts the round: no hole
    await driver.close()


async def test_a_lease_not_renewed_turns_the_output_off_in_high_impedance_by_itself(
    bench: Bench,
) -> None:
    driver = bench.driver()
    await sourcing(driver)
    lease_s = 2.0
    t0 = bench.clock.now()
    await driver.arm_lease(lease_s, PERIOD_S)
    await driver.transport.close()  # the controller goes away: nothing is sent from now on
    await bench.move_to(t0 + 0.95 * lease_s)
    assert await bench.raw(":OUTP?") == "1"
    await bench.move_to(t0 + 1.05 * lease_s)
    assert not bench.emulation.smu.output_on
    t_open, mode, _ = bench.cell.drive[-1]
    assert mode == "open"  # HIMP: the relay opened, no 0 V source across the cell
    assert t_open - t0 == pytest.approx(lease_s, abs=20 * 2e-4 + 1e-6)
    assert await bench.raw(":OUTP?") == "0"
    assert await bench.raw(":OUTP:CURR:SMOD?") == "HIMP"


async def test_a_renewal_after_the_lease_ran_out_is_an_error(bench: Bench) -> None:
    from licycler.drivers.errors import DriverError

    driver = bench.driver()
    await sourcing(driver)
    t0 = bench.clock.now()
    await driver.arm_lease(1.0, PERIOD_S)
    await bench.move_to(t0 + 1.5)
    with pytest.raises(DriverError, match="run out"):
        await driver.arm_lease(1.0, PERIOD_S)
    await driver.safe_state()
    assert (await bench.raw(":TRIG:STAT?")).startswith("ABORTED")
    await driver.close()


async def test_the_lease_switches_buffers_and_loses_no_reading(bench: Bench) -> None:
    data = map_data()
    data["lease"]["switch"]["after"] = 12
    driver = bench.driver(CommandMap.from_dict(data, "switching.yaml"))
    await sourcing(driver)
    t_on = bench.clock.now()
    await driver.arm_lease(2.0, PERIOD_S)
    times: list[np.ndarray] = []
    for k in range(80):  # about 5 switches
        await bench.move_to(t_on + (k + 1) * PERIOD_S)
        times.append((await driver.read_block()).time_s)
        if k % 5 == 4:
            await driver.arm_lease(2.0, PERIOD_S)
    t = np.concatenate(times)
    assert np.all(np.diff(t) > 0)
    assert np.max(np.diff(t)) < PERIOD_S + 2 * READING_S
    assert len(t) >= 75
    counts = [int(await bench.raw(f':TRAC:ACT? "{n}"')) for n in ("defbuffer1", "defbuffer2")]
    assert max(counts) <= 12 + 6  # each buffer is cleared when the lease switches to it
    assert min(counts) > 0
    await driver.close()


async def test_safe_state_releases_and_the_readings_left_come_first(bench: Bench) -> None:
    driver = bench.driver()
    await sourcing(driver)
    t0 = bench.clock.now()
    await driver.arm_lease(10.0, PERIOD_S)
    await bench.move_to(t0 + 0.5 + 1e-6)
    await driver.safe_state()
    assert (await bench.raw(":TRIG:STAT?")).startswith("ABORTED")
    assert not bench.emulation.smu.output_on
    reading = asyncio.create_task(driver.read_block())  # a reading on request takes clock time
    while not reading.done():
        await bench.move_to(bench.clock.now() + READING_S)
        await asyncio.wait({reading}, timeout=0.01)
    block = reading.result()
    assert len(block) == 5 + 1  # the lease's five, then the one measured
    assert np.all(np.diff(block.time_s) > 0)
    assert block.current_a[-1] == pytest.approx(0.0, abs=1e-12)
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
    assert set(base) == {"origin_seconds", "origin_fraction"}
    await first.transport.close()  # the controller dies here
    await bench.move_to(t0 + 5.0)
    assert not bench.emulation.smu.output_on

    second = bench.driver()
    second.restore_time_base(base)
    await second.transport.open()
    await second.safe_state()
    back = await second.read_lease_buffer()
    assert np.array_equal(back.time_s[: len(seen)], seen.time_s)
    assert len(back) == 20
    assert np.allclose(back.current_a, CURRENT_A)
    await second.close()


async def test_a_map_without_lease_is_not_a_leased_channel(bench: Bench) -> None:
    data = map_data()
    del data["lease"]
    plain = GenericScpiSmu.for_resource(bench.server.resource, CommandMap.from_dict(data, "plain.yaml"))
    assert isinstance(plain, SourceMeasureChannel)
    assert not isinstance(plain, LeasedChannel)
    assert type(plain) is GenericScpiSmu
    b2901a = GenericScpiSmu.for_resource("TCPIP::127.0.0.1::1::SOCKET", bundled_map("keysight_b2901a"))
    assert not isinstance(b2901a, LeasedChannel)
    direct = GenericScpiSmu(plain.transport, bundled_map("keithley2450"))  # the constructor: as called
    assert not isinstance(direct, LeasedChannel)
    with pytest.raises(ValueError, match="no lease section"):
        LeasedGenericScpiSmu(plain.transport, CommandMap.from_dict(data, "plain.yaml"))


def _set(path: str, value: object) -> dict[str, Any]:
    data = copy.deepcopy(map_data())
    *parents, last = path.split(".")
    target = data
    for key in parents:
        target = target[key]
    if value is None:
        del target[last]
    else:
        target[last] = value
    return data


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("lease.colour", "red", r"lease: unknown key\(s\) colour"),
        ("lease.release", None, r"lease: missing key\(s\) release"),
        ("lease.rearm", ":ABOR;:INIT {when}", r"lease.rearm: unknown placeholder\(s\) \{when\}"),
        ("lease.switch", None, r"lease.data_query: unknown placeholder.*\{buffer\} needs switch"),
        ("lease.data_query", ':TRAC:DATA? 1,"{buffer}"', r"lease.data_query: .*\{first\}"),
        ("lease.fields", ["voltage", "current"], r"lease.fields: .*need a time"),
        ("lease.fields", ["voltage", "time"], r"lease.fields: .*one time base"),
        ("lease.arm", [], r"lease.arm: expected a list"),
        ("lease.arm", [":INIT", 5], r"lease.arm: expected a command string"),
        ("lease.switch.after", 0, r"lease.switch.after: expected a positive integer"),
        ("lease.switch.buffers", ["defbuffer1"], r"lease.switch.buffers: "),
        ("lease.switch.rearm", ":ABOR;:INIT", r"lease.switch.rearm: .*\{buffer\}"),
        ("lease.reading_time", "fast", r"lease.reading_time: expected a number"),
        ("lease.first_index", 2, r"lease.first_index: expected 0 or 1"),
        ("lease.set_current", ":SOUR:CURR {value} {x}", r"lease.set_current: unknown placeholder"),
        ("lease", ":ABOR", r"lease: expected a mapping"),
    ],
)
def test_lease_mistakes_are_user_errors_naming_the_file_and_key(
    path: str, value: object, message: str
) -> None:
    with pytest.raises(UserError, match=f"^mine.yaml: {message}"):
        CommandMap.from_dict(_set(path, value), "mine.yaml")


def test_a_lease_mistake_in_a_yaml_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "my_smu.yaml"
    path.write_text(yaml.safe_dump(_set("lease.running_query", "")))
    with pytest.raises(UserError, match=r"my_smu.yaml: lease.running_query: expected a command"):
        CommandMap.from_yaml(path)
