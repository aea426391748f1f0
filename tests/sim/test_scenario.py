"""YAML scenarios: bundled ones load and behave as documented; mistakes are reported by file, line, field."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np
import pytest

from licycler.errors import UserError
from licycler.physics import sand_time, void_time
from licycler.sim_instruments.clock import VirtualClock
from licycler.sim_instruments.scenario import build_twin, list_scenarios, load_scenario, parse_scenario
from licycler.sim_instruments.twin import FAULT_KINDS, TwinCell, TwinConfig

from .drive import hold

MA_CM2 = 10.0
DOCS = Path(__file__).resolve().parents[2] / "docs" / "scenario.md"


def test_bundled_scenarios_are_all_there() -> None:
    assert set(list_scenarios()) >= {"default", "li-cu", "soft-short", "thick-gap", "void", "pressure-faults"}


@pytest.mark.parametrize("name", ["default", "li-cu", "soft-short", "thick-gap", "void", "pressure-faults"])
def test_every_bundled_scenario_runs(name: str) -> None:
    clock = VirtualClock(start_s=100.0)
    twin = build_twin(name, clock)
    assert twin.cell.t_s == 100.0
    i = 0.5 * MA_CM2 * twin.cell.area_m2
    _, v, _ = hold(twin.cell, -i, 100.0, 600.0, 10.0)
    assert np.all(np.isfinite(v))
    assert np.all(v < 0)


def test_units_are_parsed_to_si() -> None:
    config = parse_scenario(
        """
cell:
  area: 1.13 cm^2
  temperature: 25 degC
  sei:
    resistance: 10 ohm cm^2
    growth: 0.1 ohm cm^2/(mAh/cm^2)
electrolyte:
  preset: lipf6-ec-emc
  conductivity: 9.5 mS/cm
separator:
  thickness: 260 um
  porosity: 90 %
rig:
  setpoint: 750 kPa
faults:
  - at: 2 h
    kind: leak
    time_constant: 30 min
seed: 4
"""
    )
    assert config.cell.area_m2 == pytest.approx(1.13e-4)
    assert config.cell.temperature_k == pytest.approx(298.15)
    assert config.cell.sei.resistance_ohm_m2 == pytest.approx(1e-3)
    assert config.cell.sei.growth_ohm_m2_per_c_m2 == pytest.approx(1e-5 / 36000.0)
    assert config.electrolyte.diffusivity_m2_s == 1.77e-10  # the preset (parameters.md: Nyman 2008)
    assert config.electrolyte.transference_number == 0.2594
    assert config.electrolyte.conductivity_s_m == pytest.approx(0.95)
    assert config.separator.thickness_m == pytest.approx(260e-6)
    assert config.separator.porosity == pytest.approx(0.9)
    assert config.rig.setpoint_pa == pytest.approx(7.5e5)
    assert config.faults[0].at_s == 7200.0
    assert config.faults[0].params == {"time_constant": 1800.0}
    assert config.seed == 4
    assert parse_scenario("") == TwinConfig()


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("cell:\n  kind: li-na\n", 2, r"cell\.kind: expected one of li-li, li-cu"),
        ("cell:\n  area: 5 mA\n", 2, r"cell\.area: expected an area"),
        ("separator:\n  porosity: 1.5\n", 2, r"separator\.porosity: must be at most 1"),
        ("seed: 1\nseperator:\n  porosity: 0.5\n", 2, r"seperator: unknown key \(did you mean 'separator'\?\)"),
        ("cell:\n  sei:\n    growht: 1\n", 3, r"cell\.sei\.growht: unknown key \(did you mean 'growth'\?\)"),
        ("faults:\n  - at: 1 h\n    kind: leak\n", 2, r"faults\[0\]: missing required key 'time_constant'"),
        ("faults:\n  - at: 1 h\n    kind: melt\n", 3, r"faults\[0\]\.kind: expected one of"),
        ("faults:\n  - at: 1 h\n    kind: leak\n    time_constant: 2 V\n", 4, r"time_constant: expected a time"),
        ("rig:\n  setpoint: -1 MPa\n", 2, r"rig\.setpoint: must be at least 0"),
        ("electrolyte:\n  preset: salt water\n", 2, r"electrolyte\.preset: expected one of"),
        ("cell:\n  efficiency:\n    coulombic_efficiency: 1.2\n", 3, r"coulombic_efficiency: must be at most 1"),
        ("cell: [1, 2]\n", 1, r"cell: expected a mapping"),
        ("cell:\n  kind: li-li\n kind: x\n", None, r"not valid YAML"),
    ],
)
def test_mistakes_are_reported_with_file_line_and_field(
    tmp_path: Path, text: str, line: int | None, message: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(UserError, match=message) as info:
        load_scenario(path)
    where = f"{path}:{line}: " if line is not None else f"{path}"
    assert str(info.value).startswith(where)


def test_an_unknown_scenario_name_lists_the_bundled_ones() -> None:
    with pytest.raises(UserError, match=r"bundled: .*default"):
        load_scenario("no-such-scenario")


def test_the_documentation_covers_every_key() -> None:
    text = DOCS.read_text()
    config = TwinConfig()
    sections = [config.cell, config.cell.kinetics, config.cell.sei, config.cell.nucleation, config.cell.efficiency]
    sections += [config.electrolyte, config.separator, config.defects, config.rig, config.measurement]
    for section in sections:
        for f in dataclasses.fields(section):
            if "key" in f.metadata:
                assert re.search(rf"`{f.metadata['key']}`", text), f"{type(section).__name__}.{f.metadata['key']}"
    for kind, params in FAULT_KINDS.items():
        assert f"`{kind}`" in text
        for name in params:
            assert f"`{name}`" in text


def test_thick_gap_scenario_depletes_at_the_worked_sand_time() -> None:
    cell = TwinCell(load_scenario("thick-gap"))
    j = 10.0 * MA_CM2
    t_s = float(sand_time(3.22e-10, 1000.0, 0.38, j))
    assert t_s == pytest.approx(613, abs=1)  # parameters.md
    times, v, _ = hold(cell, -j * cell.area_m2, 0.0, 700.0, 0.5)
    assert float(times[np.argmax(~np.isfinite(v))]) == pytest.approx(t_s, rel=0.02)


def test_void_scenario_opens_a_void_at_its_t_f() -> None:
    cell = TwinCell(load_scenario("void"))
    j = 1.0 * MA_CM2
    t_f = float(void_time(2e6, 0.5e6, 1e11, 2.0 * j))  # i_max = void_alpha x j
    hold(cell, j * cell.area_m2, 0.0, 1.2 * t_f, 30.0)
    voids = [e.t_s for e in cell.events if e.kind == "void"]
    assert voids
    assert voids[0] == pytest.approx(t_f, rel=0.05)


def test_pressure_faults_scenario_leaks_then_loses_its_pressure() -> None:
    cell = TwinCell(load_scenario("pressure-faults"))
    i = 0.5 * MA_CM2 * cell.area_m2
    t = 0.0
    for k in range(12):  # 24 h of 1 h half-cycles
        hold(cell, -i if k % 2 == 0 else i, t, 3600.0, 60.0)
        hold(cell, i if k % 2 == 0 else -i, t + 3600.0, 3600.0, 60.0)
        t += 7200.0
    rig = cell.rig
    assert [(e.t_s, e.kind) for e in cell.events if e.kind in ("leak", "pressure_loss")] == [
        (36000.0, "leak"),
        (72000.0, "pressure_loss"),
    ]
    assert rig.pressure_pa(1.0) < 1.5e6  # creep relaxes the bolted stack from the start
    assert rig.pressure_pa(36000.0) > rig.pressure_pa(71999.0)  # the leak
    assert rig.pressure_pa(72000.0 + 1e-3) == pytest.approx(2e4, rel=0.01)
