"""Schedule validation: every standard protocol validates; each mistake is one located error."""

from __future__ import annotations

import copy
import math
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from licycler.cli.main import main
from licycler.protocols import MAX_STEPS, list_protocols, load_protocol, load_schedule, parse_schedule
from licycler.yamlsource import InputError, load_yaml_text

AREA_CM2 = 1.13
GOOD = """\
schedule: 1
name: test
cell:
  chemistry: Li||Cu
  electrode_area: 1.13 cm^2
limits:
  voltage_min: -1 V
  voltage_max: 1.5 V
record:
  every: 5 s
steps:
  - rest: 10 min
  - repeat:
      count: 3
      steps:
        - plate:
            current: 0.5 mA/cm^2
            until: {capacity: 1 mAh/cm^2, voltage_below: -1 V}
            on: {voltage_below: stop}
        - strip:
            current: 0.5 mA
            until: {voltage_above: 1 V, time: 4 h}
"""


def parse(text: str) -> Any:
    return parse_schedule(load_yaml_text(text, "s.yaml"), text, "s.yaml")


def test_every_standard_protocol_validates() -> None:
    names = list_protocols()
    assert set(names) >= {
        "li-cu-ce", "li-cu-reservoir-ce", "li-li-symmetric", "sand-time",
        "critical-current-density", "nucleation-cu", "pressure-sweep",
    }  # fmt: skip
    for name in names:
        schedule = load_protocol(name)
        assert len(schedule.steps) > 0
        assert schedule.limits.voltage_min_v is not None


def test_good_schedule_in_si() -> None:
    s = parse(GOOD)
    assert s.cell.area_m2 == pytest.approx(AREA_CM2 * 1e-4)
    assert len(s.steps) == 1 + 3 * 2
    plate, strip = s.steps[1], s.steps[2]
    assert plate.kind == "plate"
    assert plate.current_a == pytest.approx(-0.5e-3 * AREA_CM2)  # plating is negative
    assert plate.until.capacity_c == pytest.approx(3.6 * AREA_CM2)  # 1 mAh/cm2 x 1.13 cm2
    assert plate.action("voltage_below").kind == "stop"
    assert strip.current_a == pytest.approx(0.5e-3)
    assert strip.until.time_s == 4 * 3600
    assert s.steps[3].index == 3
    assert s.steps[3].template == plate.template  # the same written step, repeated
    assert s.record.every_s == 5.0
    assert s.steps[0].until.time_s == 600


def test_reservoir_protocol_matches_adams_2018_structure() -> None:
    s = load_protocol("li-cu-reservoir-ce")
    area = s.cell.area_m2
    reservoir = next(x for x in s.steps if x.label == "reservoir")
    assert reservoir.until.capacity_c == pytest.approx(5 * 36_000 * area)  # Q_T = 5 mAh/cm2
    cycled = s.steps[reservoir.index + 1 : reservoir.index + 21]
    assert [x.kind for x in cycled] == ["strip", "plate"] * 10  # n = 10 cycles of Q_C
    assert all(x.until.capacity_c == pytest.approx(36_000 * area) for x in cycled)
    assert s.steps[-1].label == "final-strip"
    assert s.steps[-1].until.voltage_above_v == 1.0


def test_goto_forward_and_counted_backward() -> None:
    text = (
        GOOD.replace(
            "        - strip:\n            current: 0.5 mA\n",
            "        - strip:\n            current: 0.5 mA\n            on: {time: goto end}\n",
        )
        + "  - rest: {label: end, until: {time: 1 min}}\n"
    )
    s = parse(text)
    assert s.steps[2].action("time").target == len(s.steps) - 1
    back = (
        GOOD + "  - rest: {label: again, until: {time: 1 min}}\n"
        "  - strip: {current: 1 mA, until: {voltage_above: 1 V}, on: {voltage_above: {goto: again, times: 3}}}\n"
    )
    s2 = parse(back)
    action = s2.steps[-1].action("voltage_above")
    assert (action.kind, action.target, action.times) == ("goto", len(s2.steps) - 2, 3)


BAD = [
    # (replace this, with that, error fragment, line)
    ("0.5 mA/cm^2", "0.5 mAh/cm^2", "expected a current", 17),
    ("{capacity: 1 mAh/cm^2,", "{capacity: -1 mAh/cm^2,", "greater than zero", 18),
    ("record:\n  every: 5 s", "record:\n  evry: 5 s", "unknown key (did you mean 'every'?)", 10),
    ("count: 3", "count: forever", "a repeat must end", 14),
    ("count: 3", "count: 0", ">= 1", 14),
    ("chemistry: Li||Cu", "chemistry: Li-Cu", "expected one of Li||Li, Li||Cu", 4),
    ("voltage_min: -1 V", "voltage_min: 2 V", "voltage_min_v = 2 is above voltage_max_v", 6),
    ("electrode_area: 1.13 cm^2", "electrode_area: 1.13 cm", "expected an area", 5),
    ("  - rest: 10 min", "  - rest: 10 mins", "unknown unit", 12),
    ("  - rest: 10 min", "  - nap: 10 min", "unknown key", 12),
    ("on: {voltage_below: stop}", "on: {voltage_above: stop}", "unknown key", 19),
    ("on: {voltage_below: stop}", "on: {voltage_below: halt}", "expected next, stop", 19),
    ("on: {voltage_below: stop}", "on: {voltage_below: goto nowhere}", "no step is labelled 'nowhere'", 19),
    ("until: {voltage_above: 1 V, time: 4 h}", "label: x", "missing required key 'until'", 20),
    ("until: {voltage_above: 1 V, time: 4 h}", "until: {}", "never ends", 20),
    ("schedule: 1", "schedule: 2", "format 1", 1),
    ("name: test", "name: test\nname: again", "duplicate key", 3),
    ("    count: 3", "   count: [3", "not valid YAML", None),
]


@pytest.mark.parametrize(("old", "new", "fragment", "line"), BAD, ids=[b[2][:30] for b in BAD])
def test_malformed_schedules_give_one_located_error(old: str, new: str, fragment: str, line: int | None) -> None:
    assert old in GOOD
    with pytest.raises(InputError) as info:
        parse(GOOD.replace(old, new, 1))
    message = str(info.value)
    assert fragment in message
    assert message.startswith("s.yaml:")
    assert len(message.splitlines()) == 1
    if line is not None:
        assert info.value.line == line


def test_backward_goto_without_a_count_is_a_loop_without_end() -> None:
    text = (
        GOOD + "  - rest: {label: again, until: {time: 1 min}}\n"
        "  - strip: {current: 1 mA, until: {voltage_above: 1 V}, on: {voltage_above: goto again}}\n"
    )
    with pytest.raises(InputError, match="loop without end"):
        parse(text)


def test_goto_into_a_repeat_is_ambiguous() -> None:
    text = GOOD.replace("        - plate:\n", "        - plate:\n            label: inner\n") + (
        "  - strip: {current: 1 mA, until: {voltage_above: 1 V}, on: {voltage_above: goto inner}}\n"
    )
    with pytest.raises(InputError, match="inside a repeat"):
        parse(text)


def test_huge_expansion_is_refused() -> None:
    text = GOOD.replace("count: 3", f"count: {MAX_STEPS}")
    with pytest.raises(InputError, match="expands to more than"):
        parse(text)


def test_validate_command(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(GOOD)
    assert main(["validate", str(good)]) == 0
    assert "valid" in capsys.readouterr().out
    bad = tmp_path / "bad.yaml"
    bad.write_text(GOOD.replace("0.5 mA/cm^2", "fast"))
    assert main(["validate", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert f"{bad}:17: steps[1].repeat.steps[0].plate.current" in err[0]
    assert main(["validate", str(tmp_path / "missing.yaml")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_protocols_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["protocols", "list"]) == 0
    out = capsys.readouterr().out
    assert "li-cu-reservoir-ce" in out
    assert main(["protocols", "show", "sand-time"]) == 0
    assert "Sand" in capsys.readouterr().out
    assert main(["protocols", "show", "sand-tim"]) == 2
    assert "did you mean 'sand-time'" in capsys.readouterr().err


# --- generated malformed schedules ---------------------------------------------------------------
GOOD_DATA = yaml.safe_load(GOOD.replace("on: {voltage_below: stop}", "'on': {voltage_below: stop}"))
JUNK = st.one_of(
    st.text(max_size=8), st.integers(-5, 5), st.floats(allow_nan=True), st.none(), st.booleans(),
    st.just("-3 mAh"), st.just("1 parsec"), st.just([1, 2]), st.just({"x": 1}),
)  # fmt: skip


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*prefix, i))
    return out


PATHS = _paths(GOOD_DATA)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(PATHS), JUNK, st.booleans())
def test_generated_mutations_are_accepted_or_refused_with_a_located_error(
    path: tuple[Any, ...], junk: Any, rename: bool
) -> None:
    data = copy.deepcopy(GOOD_DATA)
    parent = data
    for key in path[:-1]:
        parent = parent[key]
    last = path[-1]
    if rename and isinstance(last, str):
        parent[last + "_x"] = parent.pop(last)
        must_fail = True
    else:
        parent[last] = junk
        must_fail = False
    text = yaml.safe_dump(data)
    error: InputError | None = None
    try:
        schedule = parse(text)
    except InputError as exc:
        error = exc
    if error is not None:
        assert str(error).startswith("s.yaml")
        assert error.line is not None or "not valid YAML" in str(error)
        return
    assert not must_fail, f"a renamed key {path} was accepted"
    for step in schedule.steps:
        assert math.isfinite(step.current_a)
        assert step.until.names()


def test_loads_from_file(tmp_path: Any) -> None:
    f = tmp_path / "x.yaml"
    f.write_text(GOOD)
    assert load_schedule(f).source == str(f)
