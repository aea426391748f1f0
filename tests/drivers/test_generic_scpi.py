"""The generic SCPI driver: bundled command maps against the emulations, and map validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from licycler.drivers import CommandMap, GenericScpiSmu, IdentityMismatch, bundled_map
from licycler.drivers.interfaces import SourceMeasureChannel
from licycler.errors import UserError
from tests.drivers.conftest import EMF_V, RESISTANCE_OHM, Served, transport_for


async def test_keithley2450_map_drives_a_2450(served_2450: Served) -> None:
    await drive_with_map(served_2450, "keithley2450")


async def test_b2901a_map_drives_a_b2901a(served_b2901a: Served) -> None:
    await drive_with_map(served_b2901a, "keysight_b2901a")


async def drive_with_map(served: Served, map_name: str) -> None:
    driver = GenericScpiSmu(transport_for(served), bundled_map(map_name))
    assert isinstance(driver, SourceMeasureChannel)
    await driver.connect()
    await driver.configure_current_source(voltage_limit_v=3.5, nplc=0.1)
    await driver.set_current(1e-3)
    await driver.output_on()
    block = await driver.read_block()
    assert block.voltage_v[0] == pytest.approx(EMF_V + RESISTANCE_OHM * 1e-3, rel=1e-6)
    assert block.current_a[0] == pytest.approx(1e-3, rel=1e-6)
    assert not await driver.voltage_limit_tripped()
    await driver.set_current(10e-3)
    block = await driver.read_block()
    assert block.voltage_v[0] == pytest.approx(3.5, rel=1e-6)
    assert await driver.voltage_limit_tripped()
    await driver.safe_state()
    assert not await driver.output_enabled()
    assert await driver.drain_errors() == []
    await driver.close()


async def test_map_identity_is_checked(served_b2901a: Served) -> None:
    driver = GenericScpiSmu(transport_for(served_b2901a), bundled_map("keithley2450"))
    with pytest.raises(IdentityMismatch):
        await driver.connect()
    await driver.close()


def test_map_from_yaml_file(tmp_path: Path) -> None:
    source = Path(__file__).parents[2] / "licycler/drivers/command_maps/keithley2450.yaml"
    copy = tmp_path / "mine.yaml"
    copy.write_text(source.read_text())
    assert CommandMap.from_yaml(copy) == bundled_map("keithley2450")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"colour": "red"}, "unknown key"),
        ({"set_current": ":SOUR:CURR"}, "must contain {value}"),
        ({"measure": {"query": ":READ?", "fields": ["current"]}}, "one voltage"),
        ({"off_mode": {"normal": ":OUTP:SMOD NORM"}}, "high_impedance"),
        ({"identity": "KEITHLEY"}, "identity"),
    ],
)
def test_map_mistakes_are_user_errors(change: dict[str, object], message: str) -> None:
    import yaml

    source = Path(__file__).parents[2] / "licycler/drivers/command_maps/keithley2450.yaml"
    data = yaml.safe_load(source.read_text())
    data.update(change)
    with pytest.raises(UserError, match=message):
        CommandMap.from_dict(data, "mine.yaml")


def test_missing_keys_are_named() -> None:
    with pytest.raises(UserError, match=r"missing key.*set_current"):
        CommandMap.from_dict({"name": "x"}, "mine.yaml")
