"""``licycler calc``: every relation from the command line, with units, JSON and clear errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from licycler.cli.calc import RELATIONS
from licycler.cli.main import main

SAND = [
    "calc", "sand-time", "--diffusivity", "3.22e-10", "--concentration", "1 M",
    "--transference-number", "0.38", "--current-density", "1 mA/cm^2", "--json",
]  # fmt: skip


def run_json(capsys: pytest.CaptureFixture[str], argv: list[str]) -> dict[str, object]:
    assert main([*argv, "--json"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1
    return json.loads(out[0])  # type: ignore[no-any-return]


def test_sand_time_json_has_inputs_in_si_and_the_result(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(SAND) == 0
    obj = json.loads(capsys.readouterr().out)
    assert obj["inputs"]["current_density"] == pytest.approx(10.0)
    assert obj["inputs"]["concentration"] == pytest.approx(1000.0)
    assert obj["sand_time_s"] / 3600 == pytest.approx(17.0, abs=0.05)
    assert obj["result"]["sand_time_s"] == obj["sand_time_s"]


def test_sand_time_with_alpha(capsys: pytest.CaptureFixture[str]) -> None:
    obj = run_json(capsys, [*SAND[:-1], "--alpha", "4"])
    assert obj["sand_time_s"] / 3600 == pytest.approx(17.0 / 16, rel=3e-3)


# (argv without --json, result key, expected value, relative tolerance), from the reference numbers
CASES = [
    (["required-ce", "--cycles", "1000", "--retention", "80 %"], "required_ce", 0.99978, 1e-5),
    (["cycle-life", "--ce", "0.98", "--retention", "0.8"], "cycles", 11.0, 5e-3),
    (["cycle-life", "--ce", "99.9 %", "--retention", "0.8"], "cycles", 223.0, 5e-3),
    (["reservoir-ce", "--reservoir-charge", "5 mAh/cm^2", "--cycled-charge", "1 mAh/cm^2", "--cycles", "10",
      "--stripped-charge", "4.9 mAh/cm^2"], "ce", 0.9933, 1e-4),
    (["reservoir-ce", "--reservoir-charge", "5 mAh", "--cycled-charge", "1 mAh", "--cycles", "10",
      "--stripped-charge", "4.6 mAh"], "ce", 0.9733, 1e-4),
    (["limiting-current", "--diffusivity", "3.22e-10", "--concentration", "1000", "--transference-number", "0.38",
      "--separator-thickness", "25 um", "--porosity", "0.4", "--bruggeman", "1.5"],
     "limiting_current_density_a_m2", 1010.0, 0.01),
    (["void-time", "--stack-pressure", "1 MPa", "--adhesion-strength", "0.5 MPa", "--contact-stiffness", "1e13 Pa/m",
      "--current-density", "2 mA/cm^2"], "void_time_s", 96485.33212 / 1.3e-5 * 1.5e6 / (1e13 * 20.0), 1e-9),
    (["creep-number", "--creep-prefactor", "1e-40", "--creep-exponent", "6.6", "--alpha", "3", "--stack-pressure",
      "1 MPa", "--length", "1 um", "--current-density", "1 mA/cm^2"], "creep_number",
     1e-40 * 3e6**6.6 * 1e-6 / (10.0 * 1.3e-5 / 96485.33212), 1e-9),
    (["ce", "--strip-charge", "0.99 mAh", "--plate-charge", "1 mAh"], "ce", 0.99, 1e-12),
    (["capacity-after", "--initial-capacity", "1 mAh", "--ce", "0.98", "--cycles", "11"], "capacity", 0.8 * 3.6, 5e-3),
    (["diffusive-demand", "--current-density", "1 mA/cm^2", "--transference-number", "0.6"],
     "diffusive_flux_mol_m2_s", 0.4 * 10 / 96485.33212, 1e-12),
    (["critical-alpha", "--diffusivity", "3.22e-10", "--concentration", "1 M", "--transference-number", "0.38",
      "--current-density", "1 mA/cm^2", "--plating-time", "1 h"], "critical_alpha", (61247.0 / 3600) ** 0.5, 1e-3),
    (["voltage-efficiency", "--discharge-voltage", "3.4 V", "--charge-voltage", "3.6 V"],
     "voltage_efficiency", 3.4 / 3.6, 1e-12),
    (["energy-efficiency", "--voltage-efficiency", "0.9", "--ce", "0.99"], "energy_efficiency", 0.891, 1e-12),
    (["butler-volmer", "--overpotential", "0 V", "--exchange-current-density", "7 mA/cm^2"],
     "current_density_a_m2", 0.0, 1e-12),
    (["overpotential", "--current-density", "-7 mA/cm^2", "--exchange-current-density", "7 mA/cm^2"],
     "overpotential_v", -2 * 0.0256926 * 0.48121182505960347, 1e-4),
    (["deposition-velocity", "--current-density", "1 mA/cm^2"], "deposition_velocity_m_s", 4.85e-6 / 3600, 3e-3),
    (["lithium-thickness", "--areal-charge", "1 mAh/cm^2"], "thickness_m", 4.85e-6, 3e-3),
    (["sei-resistance", "--inner-thickness", "5 nm", "--inner-conductivity", "1e-6 S/m", "--outer-thickness", "20 nm",
      "--outer-conductivity", "1e-5", "--charge-transfer-resistance", "10 ohm cm^2"], "resistance_ohm_m2", 8e-3, 1e-9),
    (["sei-sensitivity", "--inner-thickness", "5 nm", "--inner-conductivity", "1e-6", "--outer-thickness", "20 nm",
      "--outer-conductivity", "1e-5", "--charge-transfer-resistance", "1e-3", "--mode", "galvanostatic",
      "--drive", "1 mA/cm^2"], "sensitivity_a_m3", 10.0 / (8e-3 * 1e-6), 1e-9),
    (["nucleation-overpotential", "--tip-voltage", "-110 mV", "--tip-current", "-1 mA", "--plateau-voltage",
      "-40 mV", "--plateau-current", "-1 mA", "--resistance", "10 ohm"], "nucleation_overpotential_v", 0.07, 1e-9),
]  # fmt: skip


@pytest.mark.parametrize(("argv", "key", "expected", "rel"), CASES, ids=[c[0][0] + str(i) for i, c in enumerate(CASES)])
def test_relation(
    capsys: pytest.CaptureFixture[str], argv: list[str], key: str, expected: float, rel: float
) -> None:
    obj = run_json(capsys, ["calc", *argv])
    assert obj[key] == pytest.approx(expected, rel=rel, abs=1e-12)


def test_every_relation_is_exercised() -> None:
    covered = {c[0][0] for c in CASES} | {"sand-time"}
    assert covered == set(RELATIONS)


def test_human_output(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(SAND[:-1]) == 0
    out = capsys.readouterr().out
    assert "sand_time_s = 61" in out
    assert "(17.01 h)" in out


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--current-density", "5 mA"], "--current-density: expected a current density"),
        (["--current-density", "fast"], "--current-density"),
        (["--transference-number", "1.3"], "--transference-number"),
        (["--diffusivity", "-1e-10"], "--diffusivity"),
    ],
)
def test_bad_values_give_one_line_and_status_2(
    capsys: pytest.CaptureFixture[str], argv: list[str], fragment: str
) -> None:
    base = dict(zip(SAND[2:-1:2], SAND[3:-1:2], strict=True))
    base.update(dict(zip(argv[::2], argv[1::2], strict=True)))
    flat = [x for kv in base.items() for x in kv]
    assert main(["calc", "sand-time", *flat]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert fragment in err[0]


def test_missing_option_is_named(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["calc", "required-ce", "--cycles", "1000"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "missing --retention" in err[0]


def test_mixed_absolute_and_areal_charges_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["calc", "reservoir-ce", "--reservoir-charge", "5 mAh", "--cycled-charge", "1 mAh/cm^2",
            "--cycles", "10", "--stripped-charge", "4.9 mAh"]  # fmt: skip
    assert main(argv) == 2
    assert "absolute or all areal" in capsys.readouterr().err


def test_installed_command_rejects_bad_input_without_traceback() -> None:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    bad = [sys.executable, "-m", "licycler", "calc", "sand-time", "--diffusivity", "3e-10", "--concentration", "1 M",
           "--transference-number", "0.4", "--current-density", "5 mA"]  # fmt: skip
    proc = subprocess.run(bad, capture_output=True, text=True, env=env, check=False)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    unknown = subprocess.run(
        [sys.executable, "-m", "licycler", "calc", "no-such"], capture_output=True, text=True, check=False
    )
    assert unknown.returncode == 2
    assert "Traceback" not in unknown.stderr
    assert "invalid choice" in unknown.stderr
    good = subprocess.run([sys.executable, "-m", "licycler", *SAND], capture_output=True, text=True, check=False)
    assert good.returncode == 0
    assert json.loads(good.stdout)["sand_time_s"] == pytest.approx(61247, rel=1e-3)
