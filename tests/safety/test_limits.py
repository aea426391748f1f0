"""Limit layers combine by intersection; no setpoint outside it ever reaches an instrument."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from licycler.safety import Limits, LimitsRefused, LimitStack, SetpointRefused


def bound() -> st.SearchStrategy[float | None]:
    return st.none() | st.floats(0.0, 10.0, allow_nan=False)


@st.composite
def layers(draw: st.DrawFn) -> Limits:
    vmin = draw(st.none() | st.floats(-10.0, 0.0))
    vmax = draw(st.none() | st.floats(0.0, 10.0))
    return Limits(voltage_min_v=vmin, voltage_max_v=vmax, current_max_a=draw(bound()),
                  current_density_max_a_m2=draw(bound()))  # fmt: skip


def test_a_looser_layer_is_refused_and_names_the_bound() -> None:
    stack = LimitStack()
    stack.push("instrument", Limits(current_max_a=1.05, voltage_min_v=-21, voltage_max_v=21))
    stack.push("station", Limits(current_max_a=5e-3, voltage_min_v=-1, voltage_max_v=1))
    with pytest.raises(LimitsRefused, match=r"current_max_a = 0\.01 exceeds 0\.005"):
        stack.push("protocol", Limits(current_max_a=10e-3))
    with pytest.raises(LimitsRefused, match="voltage_min_v"):
        stack.push("protocol", Limits(voltage_min_v=-2))
    eff = stack.push("protocol", Limits(current_max_a=2e-3, voltage_max_v=0.5))
    assert eff.current_max_a == 2e-3
    assert eff.voltage_max_v == 0.5
    assert eff.voltage_min_v == -1
    assert stack.pop("protocol").current_max_a == 5e-3


def test_inverted_window_is_rejected() -> None:
    with pytest.raises(ValueError, match="voltage_min_v"):
        Limits(voltage_min_v=1.0, voltage_max_v=0.0)


@given(st.lists(layers(), min_size=1, max_size=5), st.floats(-20.0, 20.0), st.floats(1e-6, 1.0))
def test_no_setpoint_outside_the_intersection_passes(stack_layers: list[Limits], current_a: float, area: float) -> None:
    """Whatever layers are accepted, a current passes only if every accepted layer allows it."""
    stack = LimitStack()
    accepted: list[Limits] = []
    for k, layer in enumerate(stack_layers):
        try:
            stack.push(f"layer{k}", layer)
        except LimitsRefused:
            continue
        accepted.append(layer)
    allowed_by_all = all(
        (lay.current_max_a is None or abs(current_a) <= lay.current_max_a)
        and (lay.current_density_max_a_m2 is None or abs(current_a) / area <= lay.current_density_max_a_m2)
        for lay in accepted
    )
    try:
        stack.effective.check_current(current_a, area)
        passed = True
    except SetpointRefused:
        passed = False
    assert passed == allowed_by_all


@given(layers(), layers())
def test_intersection_is_tighter_than_both(a: Limits, b: Limits) -> None:
    try:
        both = a.intersect(b)
    except ValueError:  # disjoint voltage windows cannot be combined
        return
    for name in ("current_max_a", "current_density_max_a_m2", "voltage_max_v"):
        x, y, z = getattr(a, name), getattr(b, name), getattr(both, name)
        for side in (x, y):
            if side is not None:
                assert z is not None
                assert z <= side
    for side in (a.voltage_min_v, b.voltage_min_v):
        if side is not None:
            assert both.voltage_min_v is not None
            assert both.voltage_min_v >= side


def test_non_finite_setpoints_are_refused() -> None:
    with pytest.raises(SetpointRefused, match="finite"):
        Limits(current_max_a=1.0).check_current(math.nan)
