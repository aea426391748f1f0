"""Exact salt transport across a finite gap under any piecewise-constant current (transport-model.md).

A binary electrolyte fills a gap 0 <= x <= L (separator thickness L, porosity eps, Bruggeman
exponent b or tortuosity tau). A current density j (A/m^2, positive plates lithium at x = 0 and
strips it at x = L) imposes dc/dx = g = (1 - t+) j / (F D_eff) at both ends. The profile is

    c(x, t) = c0 + g (x - L/2) + sum over odd n of z_n cos(n pi x / L),

with z_n decaying as exp(-lam_n t), lam_n = Dt (n pi / L)^2, and a jump dg of g adding
dg * 4 L / (n^2 pi^2) to every z_n. Only odd modes are ever excited, so c(L) = 2 c0 - c(0) and the
salt in the gap stays c0 L.

The first N modes (the slow ones, N chosen so that lam_(N+1) * horizon >= 40) are kept as
amplitudes; the fast rest of every recent current step is added in closed form: the full step
response (the method of images with erfc integrals at short times, the mode sum at long times)
minus its first N modes. A step is dropped from the recent list once its fast part has decayed
below the tolerance, by then it lives on only in the N amplitudes. So the surface concentration is
exact (to ~1e-12 c0) at any sample spacing, in the thick-gap (semi-infinite, Sand's time) and the
thin-separator (steady linear profile, limiting current) regimes alike, and a constant-current
run of M samples costs one exponential outer product over only the modes still alive.

SI units throughout: m, s, mol/m^3, A/m^2. Pure numpy, no I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from licycler.physics.transport import (
    apparent_diffusivity,
    diffusive_demand,
    effective_diffusivity,
    gap_relaxation_time,
    limiting_current_density,
    sand_time,
)

__all__ = ["GapSpec", "GapState", "GapTransport", "erfc", "ierfc"]

FloatArray = npt.NDArray[np.float64]

_SQRT_PI = math.sqrt(math.pi)
_DECAY_LOG = 40.0  # e^-40 ~ 4e-18: a mode this far decayed is gone
_IMAGE_LIMIT = 0.1  # Dt tau / L^2 below which the image series is used
_IMAGE_K = np.arange(-3, 4, dtype=np.float64)  # image indices: ~1e-40 truncation at the limit
_TAIL_EXTRA_MODES = 24  # modes summed directly for the fast tail at long times
_SCALAR_ERFC_MAX = 64  # up to this many values erfc is taken element by element from libm
_CACHE_MAX = 256


def erfc(x: npt.ArrayLike) -> FloatArray:
    """Complementary error function, vectorised (absolute error < 1e-15), any real x."""
    xa = np.asarray(x, dtype=np.float64)
    if xa.size <= _SCALAR_ERFC_MAX:  # a few values: the C library's erfc is faster
        return np.fromiter((math.erfc(v) for v in xa.ravel()), np.float64, xa.size).reshape(xa.shape)
    ax = np.abs(xa)
    out = np.empty_like(ax)
    small = ax < 2.5
    if np.any(small):
        xs = ax[small]
        term = xs.copy()
        total = xs.copy()
        r = 2.0 * xs * xs
        for k in range(70):  # erf = 2/sqrt(pi) e^-x^2 sum 2^k x^(2k+1) / (2k+1)!!
            term = term * r / (2 * k + 3)
            total = total + term
        out[small] = 1.0 - 2.0 / _SQRT_PI * np.exp(-xs * xs) * total
    if not np.all(small):
        xl = ax[~small]
        f = xl.copy()
        for k in range(60, 0, -1):  # Laplace's continued fraction
            f = xl + (0.5 * k) / f
        out[~small] = np.exp(-xl * xl) / (_SQRT_PI * f)
    return np.where(xa < 0, 2.0 - out, out)


def ierfc(x: npt.ArrayLike) -> FloatArray:
    """First integral of erfc: ierfc(x) = exp(-x^2)/sqrt(pi) - x erfc(x); ierfc(inf) = 0."""
    xa = np.asarray(x, dtype=np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        val = np.exp(-xa * xa) / _SQRT_PI - xa * erfc(xa)
    return np.where(np.isinf(xa) & (xa > 0), 0.0, val)


@dataclass(frozen=True)
class GapSpec:
    """Geometry and electrolyte of a gap.

    ``thickness_m`` L (m), ``diffusivity_m2_s`` free salt diffusivity D (m^2/s),
    ``concentration_mol_m3`` c0 (mol/m^3), ``transference_number`` t+, ``porosity`` eps (1 for a
    free liquid), ``bruggeman`` b (D_eff = D eps^b) or ``tortuosity`` (D_eff = D eps / tau).
    """

    thickness_m: float
    diffusivity_m2_s: float
    concentration_mol_m3: float
    transference_number: float
    porosity: float = 1.0
    bruggeman: float = 1.5
    tortuosity: float | None = None

    def __post_init__(self) -> None:
        for name in ("thickness_m", "diffusivity_m2_s", "concentration_mol_m3"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if not 0.0 < self.porosity <= 1.0:
            raise ValueError(f"porosity must be in (0, 1], got {self.porosity}")
        if not self.transference_number < 1.0:
            raise ValueError(f"transference_number must be < 1, got {self.transference_number}")
        if self.tortuosity is not None and not self.tortuosity >= 1.0:
            raise ValueError(f"tortuosity must be >= 1, got {self.tortuosity}")

    @property
    def effective_diffusivity_m2_s(self) -> float:
        """D_eff, the diffusivity in the flux, m^2/s."""
        return float(effective_diffusivity(self.diffusivity_m2_s, self.porosity, self.bruggeman, self.tortuosity))

    @property
    def apparent_diffusivity_m2_s(self) -> float:
        """Dt = D_eff / eps, the diffusivity that sets time scales, m^2/s."""
        return float(apparent_diffusivity(self.diffusivity_m2_s, self.porosity, self.bruggeman, self.tortuosity))

    def gradient(self, current_density: npt.ArrayLike) -> float | FloatArray:
        """Boundary gradient g = (1 - t+) j / (F D_eff), mol/m^4, for j in A/m^2."""
        demand = diffusive_demand(current_density, self.transference_number)
        return demand / self.effective_diffusivity_m2_s

    @property
    def limiting_current_density_a_m2(self) -> float:
        """j_lim = 2 F c0 D_eff / ((1 - t+) L), A/m^2: below it the gap never depletes."""
        return float(
            limiting_current_density(
                self.diffusivity_m2_s,
                self.concentration_mol_m3,
                self.transference_number,
                self.thickness_m,
                self.porosity,
                self.bruggeman,
                self.tortuosity,
            )
        )

    @property
    def relaxation_time_s(self) -> float:
        """Slowest relaxation time L^2 / (pi^2 Dt), s."""
        return float(
            gap_relaxation_time(self.thickness_m, self.diffusivity_m2_s, self.porosity, self.bruggeman, self.tortuosity)
        )

    def sand_time_s(self, current_density: float, alpha: float = 1.0) -> float:
        """Semi-infinite Sand's time in this (porous) electrolyte at j (A/m^2), s."""
        return float(
            sand_time(
                self.diffusivity_m2_s,
                self.concentration_mol_m3,
                self.transference_number,
                abs(current_density),
                alpha,
                self.porosity,
                self.bruggeman,
                self.tortuosity,
            )
        )

    def steady_profile(self, current_density: float, x_m: npt.ArrayLike) -> FloatArray:
        """Steady linear profile c0 + g (x - L/2) under constant j, mol/m^3 (may go negative
        above the limiting current, where the real surface has depleted)."""
        g = float(self.gradient(current_density))
        x = np.asarray(x_m, dtype=np.float64)
        return self.concentration_mol_m3 + g * (x - 0.5 * self.thickness_m)


@dataclass
class GapState:
    """The salt profile at time ``t_s`` under ``current_density_a_m2`` (A/m^2, held from then).

    ``amplitudes`` are the slow modal amplitudes z_n (mol/m^3); ``step_times_s`` and
    ``step_gradients`` (mol/m^4) are the recent current steps whose fast part is still alive.
    """

    t_s: float
    current_density_a_m2: float
    gradient_mol_m4: float
    amplitudes: FloatArray
    step_times_s: FloatArray = field(default_factory=lambda: np.zeros(0))
    step_gradients: FloatArray = field(default_factory=lambda: np.zeros(0))

    def copy(self) -> GapState:
        """An independent copy (the arrays are copied)."""
        return GapState(
            self.t_s,
            self.current_density_a_m2,
            self.gradient_mol_m4,
            self.amplitudes.copy(),
            self.step_times_s.copy(),
            self.step_gradients.copy(),
        )


class GapTransport:
    """The exact operator of a gap: slow modes plus the closed-form fast tail of recent steps.

    ``horizon_s`` sets how long a step's fast part is kept in closed form (the first N modes are
    those with lam_n * horizon < 40, at most ``max_modes``); ``tolerance`` is the absolute error
    allowed per term, as a fraction of c0.
    """

    def __init__(
        self,
        spec: GapSpec,
        *,
        horizon_s: float = 1.0,
        max_modes: int = 256,
        tolerance: float = 1e-13,
    ) -> None:
        self.spec = spec
        self.length_m = spec.thickness_m
        self.c0 = spec.concentration_mol_m3
        self.dt_m2_s = spec.apparent_diffusivity_m2_s
        lam1 = self.dt_m2_s * (math.pi / self.length_m) ** 2
        n_needed = math.sqrt(_DECAY_LOG / (horizon_s * lam1))
        count = int(min(max_modes, max(1, math.ceil((n_needed + 1.0) / 2.0) - 1)))
        self.n = 2.0 * np.arange(count, dtype=np.float64) + 1.0
        self.lam = lam1 * self.n**2
        self.unit_amplitudes = 4.0 * self.length_m / (self.n**2 * math.pi**2)
        self.n_next = 2.0 * count + 1.0
        self.lam_next = lam1 * self.n_next**2
        self.tail_at_zero = 0.5 * self.length_m - float(np.sum(self.unit_amplitudes))
        self.tol = tolerance * self.c0
        self._tail_n = self.n_next + 2.0 * np.arange(_TAIL_EXTRA_MODES, dtype=np.float64)
        self._tail_lam = lam1 * self._tail_n**2
        self._tail_amp = 4.0 * self.length_m / (self._tail_n**2 * math.pi**2)
        self._step_cache: dict[tuple[float, float], float] = {}

    # ----------------------------------------------------------------- states
    def initial_state(self, t_s: float = 0.0, current_density: float = 0.0) -> GapState:
        """Uniform c0 at ``t_s`` (rest), then ``current_density`` (A/m^2) switched on at ``t_s``."""
        state = GapState(float(t_s), 0.0, 0.0, np.zeros(self.n.size))
        if current_density:
            self._step(state, float(current_density))
        return state

    def set_current(self, state: GapState, current_density: float, t_s: float) -> None:
        """Advance ``state`` to ``t_s`` under its present current, then switch to ``current_density``."""
        self.evolve(state, t_s)
        self._step(state, float(current_density))

    def evolve(self, state: GapState, t_s: float) -> None:
        """Advance ``state`` to ``t_s`` (s) under its present current."""
        dt = float(t_s) - state.t_s
        if dt < 0:
            raise ValueError(f"time went backwards: {t_s} < {state.t_s}")
        if dt == 0:
            return
        state.amplitudes = state.amplitudes * np.exp(-self.lam * dt)
        state.t_s = float(t_s)
        self._prune(state)

    def _step(self, state: GapState, current_density: float) -> None:
        g_new = float(self.spec.gradient(current_density))
        dg = g_new - state.gradient_mol_m4
        state.current_density_a_m2 = current_density
        if dg == 0.0:
            return
        state.gradient_mol_m4 = g_new
        state.amplitudes = state.amplitudes + dg * self.unit_amplitudes
        state.step_times_s = np.append(state.step_times_s, state.t_s)
        state.step_gradients = np.append(state.step_gradients, dg)

    def _step_cutoff(self, dg: FloatArray) -> FloatArray:
        """Age (s) beyond which a step's fast part is below the tolerance."""
        size = np.abs(dg) * self.tail_at_zero
        with np.errstate(divide="ignore"):
            return np.log(np.maximum(size, 1e-300) / self.tol) / self.lam_next

    def _prune(self, state: GapState) -> None:
        if state.step_times_s.size:
            keep = state.t_s - state.step_times_s < self._step_cutoff(state.step_gradients)
            if not keep.all():
                state.step_times_s = state.step_times_s[keep]
                state.step_gradients = state.step_gradients[keep]

    # ------------------------------------------------------------- kernels
    def _full_sum(self, xi: float, tau: FloatArray) -> FloatArray:
        """sum over all odd n of (4L/(n^2 pi^2)) cos(n pi xi) e^(-lam_n tau), xi = x/L in [0, 1]."""
        L = self.length_m
        out = np.empty_like(tau)
        img = tau * self.dt_m2_s < _IMAGE_LIMIT * L * L
        if img.any():
            ti = tau[img]
            s = 2.0 * np.sqrt(self.dt_m2_s * ti)
            x = xi * L
            with np.errstate(divide="ignore", invalid="ignore"):
                sink = np.abs(x - 2.0 * _IMAGE_K * L)[None, :] / s[:, None]
                source = np.abs(x - (2.0 * _IMAGE_K + 1.0) * L)[None, :] / s[:, None]
                u = -s * np.sum(ierfc(sink) - ierfc(source), axis=1)
            u = np.where(ti == 0.0, 0.0, u)
            out[img] = u - (x - 0.5 * L)
        if not img.all():
            tm = tau[~img]
            nn = 2.0 * np.arange(16, dtype=np.float64) + 1.0
            lam = self.dt_m2_s * (nn * math.pi / L) ** 2
            amp = 4.0 * L / (nn**2 * math.pi**2) * np.cos(nn * math.pi * xi)
            out[~img] = np.exp(-np.outer(tm, lam)) @ amp
        return out

    def _tail(self, xi: float, tau: FloatArray) -> FloatArray:
        """The part of the unit step response beyond the first N modes, at x = xi L, age tau."""
        L = self.length_m
        out = np.empty_like(tau)
        img = tau * self.dt_m2_s < _IMAGE_LIMIT * L * L
        if img.any():
            ti = tau[img]
            amp = self.unit_amplitudes * np.cos(self.n * math.pi * xi)
            out[img] = self._full_sum(xi, ti) - np.exp(-np.outer(ti, self.lam)) @ amp
        if not img.all():
            tm = tau[~img]
            amp_t = self._tail_amp * np.cos(self._tail_n * math.pi * xi)
            out[~img] = np.exp(-np.outer(tm, self._tail_lam)) @ amp_t
        return out

    def step_response(self, tau_s: npt.ArrayLike, x_m: float = 0.0) -> FloatArray:
        """c(x, tau) - c0 per unit gradient g (mol/m^4) switched on from rest, m.

        Multiply by g to get mol/m^3; at x = 0 it starts at 0 and tends to -L/2.
        """
        tau = np.atleast_1d(np.asarray(tau_s, dtype=np.float64))
        xi = float(x_m) / self.length_m
        if tau.size == 1:  # sample spacings repeat: remember single values
            key = (float(tau[0]), xi)
            hit = self._step_cache.get(key)
            if hit is None:
                if len(self._step_cache) >= _CACHE_MAX:
                    self._step_cache.clear()
                hit = (x_m - 0.5 * self.length_m) + float(self._full_sum(xi, tau)[0])
                self._step_cache[key] = hit
            return np.array([hit])
        return (x_m - 0.5 * self.length_m) + self._full_sum(xi, tau)

    # ---------------------------------------------------------- evaluation
    def _deviation(self, state: GapState, times: FloatArray, xi: float = 0.0) -> FloatArray:
        """sum of modes and recent fast tails at ``times`` (>= state.t_s), at x = xi L."""
        tau = times - state.t_s
        out = np.zeros(times.shape)
        z = state.amplitudes
        if xi != 0.0:
            z = z * np.cos(self.n * math.pi * xi)
        az = np.abs(z)
        if z.size and (az > self.tol).any():
            with np.errstate(divide="ignore"):
                cut = np.log(np.maximum(az, 1e-300) / self.tol) / self.lam
            cut_rev = np.maximum.accumulate(cut[::-1])[::-1]  # non-increasing in n
            # active count at tau: number of n with cut_rev[n] > tau
            counts = np.searchsorted(-cut_rev, -tau, side="left")
            self._modal_sum(tau, counts, z, out)
        for tk, dg in zip(state.step_times_s, state.step_gradients, strict=True):
            age = times - tk
            stop = int(np.searchsorted(age, self._step_cutoff(np.array([dg]))[0], side="left"))
            if stop > 0:
                out[:stop] += dg * self._tail(xi, age[:stop])
        return out

    def _modal_sum(self, tau: FloatArray, counts: npt.NDArray[np.intp], z: FloatArray, out: FloatArray) -> None:
        """out += sum_{n < counts[i]} z_n e^(-lam_n tau_i); counts non-increasing along tau."""
        m = tau.size
        if m == 0 or counts[0] == 0:
            return
        if counts[-1] == counts[0] and m * counts[0] <= 4_000_000:
            k = int(counts[0])
            out += np.exp(-np.outer(tau, self.lam[:k])) @ z[:k]
            return
        # bucket by powers of two of the active count; counts is non-increasing, so buckets are slices
        bucket = np.where(counts > 0, 1 << np.ceil(np.log2(np.maximum(counts, 1))).astype(np.int64), 0)
        edges = np.flatnonzero(np.diff(bucket)) + 1
        starts = np.concatenate(([0], edges))
        ends = np.concatenate((edges, [m]))
        for a, b in zip(starts, ends, strict=True):
            k = int(min(bucket[a], z.size))
            if k == 0:
                continue
            chunk = max(1, 4_000_000 // k)
            for c in range(a, b, chunk):
                e = min(b, c + chunk)
                out[c:e] += np.exp(-np.outer(tau[c:e], self.lam[:k])) @ z[:k]

    def evaluate(self, state: GapState, times_s: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
        """Surface concentrations (c(0), c(L)) in mol/m^3 at ``times_s`` (sorted, >= state.t_s)
        under the state's present current; ``state`` is not changed."""
        times = np.atleast_1d(np.asarray(times_s, dtype=np.float64))
        if times.size and times[0] < state.t_s:
            raise ValueError(f"time went backwards: {times[0]} < {state.t_s}")
        c_0 = self.c0 - 0.5 * state.gradient_mol_m4 * self.length_m + self._deviation(state, times)
        return c_0, 2.0 * self.c0 - c_0

    def advance(
        self,
        state: GapState,
        times_s: npt.ArrayLike,
        current_density: npt.ArrayLike | None = None,
    ) -> tuple[FloatArray, FloatArray]:
        """Surface concentrations (c(0), c(L)), mol/m^3, at ``times_s``; ``state`` moves to the last.

        ``current_density`` (A/m^2): None keeps the present current; a scalar switches to it at
        ``times_s[0]``; an array gives the current that holds from each sample time to the next
        (piecewise constant, sample and hold). Runs of equal current are evaluated in one piece.
        """
        times = np.atleast_1d(np.asarray(times_s, dtype=np.float64))
        m = times.size
        c_0 = np.empty(m)
        if m == 0:
            return c_0, c_0.copy()
        if np.any(np.diff(times) < 0):
            raise ValueError("times_s must be non-decreasing")
        if current_density is None:
            currents = np.full(m, state.current_density_a_m2)
        else:
            currents = np.broadcast_to(np.asarray(current_density, dtype=np.float64), (m,))
        prev = np.concatenate(([state.current_density_a_m2], currents[:-1]))
        changes = np.flatnonzero(currents != prev)
        starts = np.concatenate(([0], changes)) if (changes.size == 0 or changes[0] != 0) else changes
        ends = np.concatenate((starts[1:], [m]))
        for a, b in zip(starts, ends, strict=True):
            if currents[a] != state.current_density_a_m2:
                self.set_current(state, float(currents[a]), float(times[a]))
            seg = times[a:b]
            c_0[a:b] = self.c0 - 0.5 * state.gradient_mol_m4 * self.length_m + self._deviation(state, seg)
            self.evolve(state, float(seg[-1]))
        return c_0, 2.0 * self.c0 - c_0

    def profile(self, state: GapState, x_m: npt.ArrayLike) -> FloatArray:
        """The concentration profile c(x) (mol/m^3) at ``state.t_s``, at positions ``x_m`` in [0, L]."""
        x = np.atleast_1d(np.asarray(x_m, dtype=np.float64))
        t = np.array([state.t_s])
        out = np.empty(x.shape)
        for i, xv in enumerate(x.ravel()):
            xi = float(xv) / self.length_m
            lin = state.gradient_mol_m4 * (float(xv) - 0.5 * self.length_m)
            out.flat[i] = self.c0 + lin + float(self._deviation(state, t, xi)[0])
        return out

    def lower_bound(self, state: GapState) -> float:
        """A floor (mol/m^3) under the plating-surface concentration at every time from now on, with
        the state's current held: its steady value c0 - |g| L / 2 less every deviation the transient
        could still add (the sum of |z_n| and, for each recent step, |dg| times its fast part at
        age 0, which bounds it at every age). Cheap: no evaluation in time."""
        steady = self.c0 - 0.5 * abs(state.gradient_mol_m4) * self.length_m
        modes = float(np.sum(np.abs(state.amplitudes)))
        tails = float(np.sum(np.abs(state.step_gradients))) * self.tail_at_zero
        return steady - (modes + tails) * (1.0 + 1e-9) - self.tol

    def never_depletes(self, state: GapState) -> bool:
        """True when the plating surface provably stays above zero under the state's current held
        for ever (:meth:`lower_bound` > 0); False does not mean it will deplete."""
        return self.lower_bound(state) > 0.0

    def time_to_depletion(
        self, state: GapState, current_density: float | None = None, *, rel_tol: float = 1e-10
    ) -> float:
        """Seconds after ``state.t_s`` until the plating surface reaches zero concentration under
        ``current_density`` (A/m^2, default the present one) held from now; inf if it never does.

        The plating surface is x = 0 for j > 0 and x = L for j < 0. Found on a logarithmic grid
        then refined by bracketing, on the exact solution.
        """
        s = state.copy()
        if current_density is not None:
            self._step(s, float(current_density))
        j = s.current_density_a_m2
        sign = 1.0 if j >= 0 else -1.0

        def plating_c(times: FloatArray) -> FloatArray:
            c_0, c_l = self.evaluate(s, s.t_s + times)
            return c_0 if sign > 0 else c_l

        if self.never_depletes(s):
            return math.inf
        if plating_c(np.zeros(1))[0] <= 0.0:
            return 0.0
        lam1 = float(self.dt_m2_s * (math.pi / self.length_m) ** 2)
        t_end = 60.0 / lam1
        if j != 0:
            t_end = min(t_end, max(100.0 * self.spec.sand_time_s(j), 1e-6 / lam1))
            steady = self.c0 - 0.5 * abs(s.gradient_mol_m4) * self.length_m
            if steady > 0 and t_end < 60.0 / lam1:
                t_end = 60.0 / lam1
        grid = np.concatenate(([0.0], np.geomspace(t_end * 1e-14, t_end, 600)))
        c = plating_c(grid)
        below = np.flatnonzero(c <= 0.0)
        if below.size == 0:
            return math.inf
        hi_i = int(below[0])
        lo, hi = float(grid[hi_i - 1]), float(grid[hi_i])
        while hi - lo > rel_tol * hi:
            sub = np.linspace(lo, hi, 33)
            cs = plating_c(sub)
            k = int(np.flatnonzero(cs <= 0.0)[0])
            lo, hi = float(sub[k - 1]), float(sub[k])
        return hi
