"""The finite-gap salt transport against the closed forms of transport-model.md.

References used (never the module's own output): the semi-infinite surface concentration and
Sand's time (physics.transport), the steady linear profile c0 + g (x - L/2) with
g = (1 - t+) j / (F D_eff), the limiting current, the slowest relaxation time L^2 / (pi^2 Dt),
conservation of salt, math.erfc, and the constant-current mode sum of transport-model.md
superposed over current steps (summed with very many modes where it converges).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from licycler.physics import (
    FARADAY_C_PER_MOL,
    apparent_diffusivity,
    diffusive_demand,
    effective_diffusivity,
    gap_relaxation_time,
    limiting_current_density,
    sand_time,
    semi_infinite_surface_concentration,
)
from licycler.physics.gap import GapSpec, GapTransport, erfc, ierfc

MA_CM2 = 10.0  # 1 mA/cm^2 in A/m^2
# parameters.md: Valoen & Reimers (LiPF6 EC:DMC) and Nyman (LiPF6 EC:EMC)
ELECTROLYTES = [(3.22e-10, 0.38), (1.77e-10, 0.2594)]
C0 = 1000.0


def _gradient(j: float, d: float, t_plus: float, eps: float = 1.0, b: float = 1.5) -> float:
    return float(diffusive_demand(j, t_plus)) / float(effective_diffusivity(d, eps, b))


def _mode_sum_reference(
    spec: GapSpec, times: np.ndarray, steps: list[tuple[float, float]], n_modes: int = 400_000
) -> np.ndarray:
    """c(0, t) by superposing transport-model.md's constant-current solution over the steps."""
    L = spec.thickness_m
    dt = float(apparent_diffusivity(spec.diffusivity_m2_s, spec.porosity, spec.bruggeman))
    n = 2.0 * np.arange(n_modes) + 1.0
    lam = dt * (n * np.pi / L) ** 2
    amp = 4.0 * L / (n**2 * np.pi**2)
    out = []
    for t in times:
        g_prev, c = 0.0, C0
        for t_k, j in steps:
            if t_k > t:
                break
            g = _gradient(j, spec.diffusivity_m2_s, spec.transference_number, spec.porosity, spec.bruggeman)
            dg = g - g_prev
            c += dg * (-0.5 * L + float(np.sum(amp * np.exp(-lam * (t - t_k)))))
            g_prev = g
        out.append(c)
    return np.array(out)


def test_erfc_matches_the_standard_library() -> None:
    x = np.concatenate([np.linspace(-3.0, 7.0, 2001), [10.0, 26.0]])
    ref = np.array([math.erfc(v) for v in x])
    assert np.max(np.abs(erfc(x) - ref)) < 2e-15
    # ierfc(x) = exp(-x^2)/sqrt(pi) - x erfc(x): ierfc(0) = 1/sqrt(pi), and 0 at infinity
    assert ierfc(np.array([0.0]))[0] == pytest.approx(1.0 / math.sqrt(math.pi), rel=1e-15)
    assert ierfc(np.array([np.inf]))[0] == 0.0


@pytest.mark.parametrize(("diffusivity", "t_plus"), ELECTROLYTES)
@pytest.mark.parametrize("j_ma_cm2", [1.0, 5.0, 10.0, 20.0])
def test_thick_gap_follows_the_semi_infinite_solution_and_depletes_at_sand_time(
    diffusivity: float, t_plus: float, j_ma_cm2: float
) -> None:
    j = j_ma_cm2 * MA_CM2
    t_s = float(sand_time(diffusivity, C0, t_plus, j))
    L = 10.0 * math.sqrt(diffusivity * t_s)  # the diffusion length is a tenth of the gap
    gap = GapTransport(GapSpec(L, diffusivity, C0, t_plus))
    state = gap.initial_state(0.0, j)
    times = np.linspace(0.0, t_s, 501)
    c_0, c_l = gap.evaluate(state, times)
    expected = semi_infinite_surface_concentration(times, diffusivity, C0, t_plus, j)
    assert np.max(np.abs(c_0 - expected)) < 1e-6 * C0
    assert np.allclose(c_l, 2.0 * C0 - expected, atol=1e-6 * C0)  # salt made at x = L
    assert gap.time_to_depletion(state) == pytest.approx(t_s, rel=1e-6)


@pytest.mark.parametrize("porosity", [0.4, 0.9])
def test_porous_thick_gap_depletes_at_the_porous_sand_time(porosity: float) -> None:
    d, t_plus, j = 3.22e-10, 0.38, 50.0
    t_s = float(sand_time(d, C0, t_plus, j, porosity=porosity))
    dt = float(apparent_diffusivity(d, porosity))
    gap = GapTransport(GapSpec(12.0 * math.sqrt(dt * t_s), d, C0, t_plus, porosity))
    assert gap.time_to_depletion(gap.initial_state(0.0, j)) == pytest.approx(t_s, rel=1e-6)


def test_thin_separator_below_the_limiting_current_reaches_the_steady_linear_profile() -> None:
    d, t_plus, L, eps = 3.22e-10, 0.38, 25e-6, 0.4
    j_lim = float(limiting_current_density(d, C0, t_plus, L, eps))
    assert j_lim / MA_CM2 == pytest.approx(101, rel=0.01)  # parameters.md: ~101 mA/cm^2
    gap = GapTransport(GapSpec(L, d, C0, t_plus, eps))
    j = 0.8 * j_lim
    state = gap.initial_state(0.0, j)
    tau = float(gap_relaxation_time(L, d, eps))
    times = np.linspace(0.0, 30.0 * tau, 20001)
    c_0, _ = gap.advance(state, times)
    assert np.all(c_0 > 0.0)
    assert gap.time_to_depletion(state) == math.inf
    x = np.linspace(0.0, L, 41)
    linear = C0 + _gradient(j, d, t_plus, eps) * (x - 0.5 * L)
    assert np.max(np.abs(gap.profile(state, x) - linear)) < 1e-6 * C0
    assert np.allclose(gap.spec.steady_profile(j, x), linear, rtol=1e-12)


def test_thin_separator_above_the_limiting_current_depletes() -> None:
    d, t_plus, L, eps = 3.22e-10, 0.38, 25e-6, 0.4
    j_lim = float(limiting_current_density(d, C0, t_plus, L, eps))
    gap = GapTransport(GapSpec(L, d, C0, t_plus, eps))
    state = gap.initial_state(0.0, 1.1 * j_lim)
    t_dep = gap.time_to_depletion(state)
    assert math.isfinite(t_dep)
    c_before, _ = gap.evaluate(state, np.array([0.999 * t_dep]))
    c_after, _ = gap.evaluate(state, np.array([1.001 * t_dep]))
    assert c_before[0] > 0.0 > c_after[0]
    # close to the limit the steady surface value c0 - g L/2 is just below zero
    steady = C0 - 0.5 * _gradient(1.1 * j_lim, d, t_plus, eps) * L
    assert steady == pytest.approx(-0.1 * C0, rel=1e-9)


def test_piecewise_current_matches_the_superposed_mode_sum() -> None:
    spec = GapSpec(100e-6, 3.22e-10, C0, 0.38, 0.5)
    gap = GapTransport(spec)
    steps = [(0.0, 80.0), (3.0, -120.0), (3.5, 20.0), (20.0, 0.0)]
    wanted = np.array([0.5, 1.0, 2.9, 3.01, 3.2, 3.49, 3.6, 5.0, 19.0, 20.2, 30.0, 60.0])
    # the current given with each sample holds from that sample on: put the steps on the grid
    times = np.union1d(wanted, [t_k for t_k, _ in steps[1:]])
    currents = np.array([[j for t_k, j in steps if t_k <= t][-1] for t in times])
    state = gap.initial_state(0.0, 80.0)
    c_0, c_l = gap.advance(state, times, currents)
    keep = np.isin(times, wanted)
    c_0, c_l = c_0[keep], c_l[keep]
    reference = _mode_sum_reference(spec, wanted, steps)
    assert np.max(np.abs(c_0 - reference)) < 2e-5 * C0
    assert np.allclose(c_0 + c_l, 2.0 * C0)


def test_a_sign_switch_relaxes_with_the_slowest_time_constant() -> None:
    d, t_plus, L, eps = 3.22e-10, 0.38, 50e-6, 0.5
    tau = float(gap_relaxation_time(L, d, eps))
    gap = GapTransport(GapSpec(L, d, C0, t_plus, eps))
    j = 100.0
    state = gap.initial_state(0.0, j)
    gap.evolve(state, 40.0 * tau)
    gap.set_current(state, -j, 40.0 * tau)
    times = 40.0 * tau + np.linspace(3.0 * tau, 6.0 * tau, 50)
    c_0, _ = gap.evaluate(state, times)
    steady = C0 + 0.5 * _gradient(j, d, t_plus, eps) * L  # the new steady value at x = 0
    slope = np.polyfit(times, np.log(np.abs(c_0 - steady)), 1)[0]
    assert -1.0 / slope == pytest.approx(tau, rel=1e-3)
    # switched off instead, the profile relaxes back to c0 with the same time constant
    rest = gap.initial_state(0.0, j)
    gap.evolve(rest, 40.0 * tau)
    gap.set_current(rest, 0.0, 40.0 * tau)
    c_r, _ = gap.evaluate(rest, times)
    slope_r = np.polyfit(times, np.log(np.abs(c_r - C0)), 1)[0]
    assert -1.0 / slope_r == pytest.approx(tau, rel=1e-3)


def _salt(gap: GapTransport, state: object) -> float:
    x = np.linspace(0.0, gap.length_m, 401)
    c = gap.profile(state, x)  # type: ignore[arg-type]
    h = x[1] - x[0]
    return float(h / 3.0 * (c[0] + c[-1] + 4.0 * np.sum(c[1:-1:2]) + 2.0 * np.sum(c[2:-1:2])))


@settings(max_examples=20, deadline=None)
@given(st.lists(st.tuples(st.floats(0.01, 3.0), st.floats(-150.0, 150.0)), min_size=1, max_size=6))
def test_salt_is_conserved_and_the_partition_of_samples_does_not_matter(
    history: list[tuple[float, float]],
) -> None:
    spec = GapSpec(40e-6, 3.22e-10, C0, 0.38, 0.45)
    gap = GapTransport(spec)
    times = np.cumsum([dt for dt, _ in history])
    currents = np.array([j for _, j in history])
    whole = gap.initial_state()
    c_whole, _ = gap.advance(whole, times, currents)
    parts = gap.initial_state()
    c_parts = np.concatenate([gap.advance(parts, times[k : k + 1], currents[k : k + 1])[0] for k in range(times.size)])
    assert np.allclose(c_whole, c_parts, rtol=0.0, atol=1e-9 * C0)
    assert _salt(gap, whole) == pytest.approx(C0 * spec.thickness_m, rel=1e-9)


def test_short_times_are_exact_with_few_modes() -> None:
    """Microseconds after a step the answer is still the semi-infinite one, in a thin gap."""
    d, t_plus, L, eps = 3.22e-10, 0.38, 25e-6, 0.4
    gap = GapTransport(GapSpec(L, d, C0, t_plus, eps))
    assert gap.n.size < 10
    state = gap.initial_state(0.0, 200.0)
    times = np.geomspace(1e-9, 1e-2, 30)
    c_0, _ = gap.evaluate(state, times)
    expected = semi_infinite_surface_concentration(times, d, C0, t_plus, 200.0, porosity=eps)
    assert np.max(np.abs(c_0 - expected)) < 1e-9 * C0


def test_gap_spec_rejects_unphysical_values() -> None:
    with pytest.raises(ValueError, match="porosity"):
        GapSpec(25e-6, 3e-10, C0, 0.38, porosity=1.5)
    with pytest.raises(ValueError, match="transference"):
        GapSpec(25e-6, 3e-10, C0, 1.0)
    assert FARADAY_C_PER_MOL > 0


@settings(max_examples=30, deadline=None)
@given(
    st.lists(st.tuples(st.floats(0.05, 20.0), st.floats(-150.0, 150.0)), min_size=1, max_size=5),
    st.floats(-120.0, 120.0),
)
def test_the_lower_bound_holds_at_every_later_time(history: list[tuple[float, float]], j_next: float) -> None:
    """Whatever the history, the bound is below the plating surface's exact future (held current),
    and it is positive once a current below the limiting one has held for a few relaxation times."""
    spec = GapSpec(25e-6, 3.22e-10, C0, 0.38, 0.4)
    gap = GapTransport(spec)
    state = gap.initial_state()
    times = np.cumsum([dt for dt, _ in history])
    gap.advance(state, times, np.array([j for _, j in history]))
    gap.set_current(state, j_next, state.t_s)
    tau = float(gap_relaxation_time(25e-6, 3.22e-10, 0.4))
    future = state.t_s + np.concatenate(([0.0], np.geomspace(1e-6, 50.0 * tau, 400)))
    c_0, c_l = gap.evaluate(state, future)
    plating = c_0 if j_next >= 0 else c_l
    floor = gap.lower_bound(state)
    assert floor <= float(np.min(plating)) + 1e-9 * C0
    # the limiting current of this separator is ~101 mA/cm^2; at 12 mA/cm^2 or less, after 10 tau
    # the transient is gone and the bound is the steady value c0 - |g| L / 2 > 0
    gap.evolve(state, state.t_s + 10.0 * tau)
    steady = C0 - 0.5 * abs(_gradient(j_next, 3.22e-10, 0.38, 0.4)) * 25e-6
    assert gap.lower_bound(state) == pytest.approx(steady, abs=1e-3 * C0)
    assert gap.never_depletes(state)
    assert gap.time_to_depletion(state) == math.inf
