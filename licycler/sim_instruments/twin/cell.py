"""The simulated cell: Li||Li or Li||Cu terminals driven through the CellTerminals Protocol.

State advances in segments of constant electrolyte current. Within a segment everything is
closed form, so a block of samples is a handful of vectorised numpy expressions:
- salt transport: the exact finite-gap operator of :mod:`licycler.physics.gap` (main column, plus a
  hot-spot column carrying alpha j when a defect is configured);
- inventory, SEI, nucleation charge, void recession, dendritic charge: linear in time;
- the voltage: :class:`~licycler.sim_instruments.twin.voltage.VoltageModel`.
Events end a segment at their exact time: surface depletion (Sand's time, found on the exact
solution), a hot spot depleting (growth turns dendritic), lithium exhausted on the stripping side,
a soft short forming after enough dendritic charge, a soft short turning hard, a void opening at
physics.void_time's t_f, contact healing, timed faults and control changes.

Sign convention (interfaces.py): a positive terminal current strips the working electrode (Li||Cu:
the Cu side); voltage is working minus counter. Electrode 0 is the working electrode at x = 0 of
the gap, electrode 1 the counter electrode at x = L. Charges per electrode are areal (C/m^2 of the
nominal area). Voltage-controlled blocks (``source_voltage``, also what a current source does at
its compliance) solve for the current sample by sample.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from licycler.physics.gap import GapSpec, GapState, GapTransport
from licycler.physics.mechanics import (
    creep_number,
    deposition_velocity,
    lithium_thickness,
    void_time,
)
from licycler.physics.transport import effective_diffusivity
from licycler.sim_instruments.twin.config import FaultConfig, TwinConfig
from licycler.sim_instruments.twin.rig import RIG_FAULTS, PressureRig
from licycler.sim_instruments.twin.voltage import ElectrodeInputs, VoltageModel, nucleation_shape

__all__ = ["TwinCell", "TwinEvent", "TwinState"]

FloatArray = npt.NDArray[np.float64]

_WE, _CE = 0, 1
_NAMES = ("working", "counter")
_NUCLEATION_DONE = 40.0  # nucleation charge (in q_n) after which the term is gone (e^-39)
_SHORT_CHUNKS_PER_DECAY = 50.0
_SHORT_CHUNK_MAX_S = 60.0
_SOLVE_POINTS = 17


@dataclass(frozen=True)
class TwinEvent:
    """Something that happened in the cell or rig at ``t_s``: ``kind`` and a readable ``detail``."""

    t_s: float
    kind: str
    detail: str = ""
    electrode: str = ""


@dataclass(frozen=True)
class TwinState:
    """The true internal state of the twin at ``t_s`` (for tests and monitors). SI units;
    pairs are (working, counter)."""

    t_s: float
    mode: str
    level: float
    cell_current_a: float
    surface_concentration_mol_m3: tuple[float, float]
    hot_spot_concentration_mol_m3: tuple[float, float]
    active_lithium_c_m2: tuple[float, float]
    dead_lithium_c_m2: tuple[float, float]
    cycle: int
    dendritic: tuple[bool, bool]
    dendritic_charge_c_m2: tuple[float, float]
    short: str
    short_resistance_ohm: float
    contact_fraction: float
    recession_m: tuple[float, float]
    pressure_pa: float
    temperature_k: float
    alpha: float
    sei_resistance_ohm_m2: tuple[float, float]
    ohmic_resistance_ohm: float


class TwinCell:
    """A digital-twin cell implementing :class:`~licycler.sim_instruments.interfaces.CellTerminals`.

    ``rig`` is the pressure rig acting on the stack (made from the config when not given).
    ``events`` lists what happened; :meth:`state` gives the true internal state.
    """

    def __init__(self, config: TwinConfig, rig: PressureRig | None = None, *, start_s: float = 0.0) -> None:
        self.config = config
        cell, el, sep, d = config.cell, config.electrolyte, config.separator, config.defects
        seeds = np.random.SeedSequence(config.seed).spawn(4)
        self._rng_phys, self._rng_short, self._rng_meas, rng_rig = (np.random.default_rng(s) for s in seeds)
        self.area_m2 = cell.area_m2
        alpha = d.alpha
        if d.alpha_spread > 0:
            alpha *= math.exp(d.alpha_spread * float(self._rng_phys.standard_normal()))
        self.alpha = max(1.0, alpha)
        self.spec = GapSpec(
            sep.thickness_m,
            el.diffusivity_m2_s,
            el.concentration_mol_m3,
            el.transference_number,
            sep.porosity,
            sep.bruggeman,
            sep.tortuosity,
        )
        self.gap = GapTransport(self.spec)
        self._g: GapState = self.gap.initial_state(start_s)
        self._hot: GapState | None = self.gap.initial_state(start_s) if self.alpha > 1.0 else None
        # MacMullin: conductivity scales with porosity/tortuosity as the diffusivity does
        kappa_eff = float(effective_diffusivity(el.conductivity_s_m, sep.porosity, sep.bruggeman, sep.tortuosity))
        self.electrolyte_resistance_ohm_m2 = sep.thickness_m / kappa_eff
        kin = cell.kinetics
        self.vmodel = VoltageModel(
            kin.exchange_current_density_a_m2, kin.alpha_a, kin.alpha_c, el.concentration_mol_m3, el.transference_number
        )
        self.temperature_k = cell.temperature_k
        self.events: list[TwinEvent] = []
        self.rig = rig or PressureRig(
            config.rig,
            cell.area_m2,
            config.faults,
            start_s=start_s,
            measurement=config.measurement,
            rng=rng_rig,
            on_event=self._rig_event,
        )
        self.t_s = float(start_s)
        self._last_call_s = float(start_s)
        self._mode = "open"
        self._level = 0.0
        self._pending: deque[tuple[float, str, float]] = deque()
        self._faults: deque[FaultConfig] = deque(
            sorted((f for f in config.faults if f.kind not in RIG_FAULTS), key=lambda f: f.at_s)
        )
        # electrochemical state
        self.i_cell_a = 0.0
        self.active = np.array([cell.working_lithium_c_m2, cell.counter_lithium_c_m2], dtype=np.float64)
        self.dead = np.zeros(2)
        self.cycled = np.zeros(2)
        self.ce_base = np.full(2, cell.efficiency.coulombic_efficiency)
        self._segment_ce = np.ones(2)
        self._last_plating: int | None = None
        self.cycle = 0
        self.nucleating = [False, False]
        self.nucleation_charge = np.zeros(2)
        self.dendritic = [False, False]
        self.dendritic_charge = np.zeros(2)
        self.depleted = [False, False]
        self.short = "none"
        self._short_t0 = 0.0
        self._short_r0 = math.inf
        self._short_tau = math.inf
        self.recession = np.zeros(2)
        self.contact_void = np.ones(2)
        self.healed = np.zeros(2)
        self.contact_fault = 1.0
        self._creep_pi = 0.0
        self._pred: tuple[float, str, int] | None = None
        self._stop_hi = math.inf
        self._stop_lo = -math.inf
        self._stopped_at = -1  # index (within the present run) of the sample that hit a stop
        self._chunk: tuple[float, float, float] | None = None  # (end, terminal I, cell I) under a short
        self._cv_history: tuple[tuple[float, float], ...] = ()  # last solved (t, I) under voltage control
        self._bare_tol = 1e-9 * cell.efficiency.coverage_charge_c_m2
        self._update_rig_lithium()

    # ================================================================ CellTerminals
    def source_current(self, current_a: float, t_s: float) -> None:
        """From ``t_s`` on, force ``current_a`` (A) through the terminals."""
        self._control(t_s, "current", float(current_a))

    def source_voltage(self, voltage_v: float, t_s: float) -> None:
        """From ``t_s`` on, hold the terminal voltage at ``voltage_v`` (V), solving for the current."""
        self._control(t_s, "voltage", float(voltage_v))

    def open_circuit(self, t_s: float) -> None:
        """From ``t_s`` on, no terminal current."""
        self._control(t_s, "open", 0.0)

    def _control(self, t_s: float, mode: str, level: float) -> None:
        t_s = float(t_s)
        if t_s < self._last_call_s:
            raise ValueError(f"time went backwards: {t_s} < {self._last_call_s}")
        if not math.isfinite(level):
            raise ValueError(f"{mode} level must be finite, got {level}")
        self._last_call_s = t_s
        self._pending.append((t_s, mode, level))
        self._chunk = None

    def sample(
        self,
        times_s: FloatArray,
        *,
        stop_above_v: float | None = None,
        stop_below_v: float | None = None,
    ) -> tuple[FloatArray, FloatArray]:
        """Advance to ``times_s[-1]``; (voltage V, current A) at each of ``times_s`` (true values;
        +-inf voltage where no finite voltage carries a forced current).

        With ``stop_above_v`` / ``stop_below_v`` the run stops right after the first sample whose
        voltage is above / below the bound: the arrays end there and so does the cell's time.
        """
        times = np.atleast_1d(np.asarray(times_s, dtype=np.float64))
        m = times.size
        v_out = np.empty(m)
        i_out = np.empty(m)
        if m == 0:
            return v_out, i_out
        if times[0] < self.t_s or (times[1:] < times[:-1]).any():
            raise ValueError("sample times must be non-decreasing and not earlier than the last sample")
        self._stop_hi = math.inf if stop_above_v is None else float(stop_above_v)
        self._stop_lo = -math.inf if stop_below_v is None else float(stop_below_v)
        self._stopped_at = -1
        try:
            end = self._sample(times, v_out, i_out)
        finally:
            self._stop_hi, self._stop_lo = math.inf, -math.inf
        self._last_call_s = max(self._last_call_s, float(times[end - 1]))
        return v_out[:end], i_out[:end]

    def _sample(self, times: FloatArray, v_out: FloatArray, i_out: FloatArray) -> int:
        """Fill the outputs; returns how many samples were taken (fewer after a stop)."""
        pos = 0
        m = times.size
        while True:
            t_ctrl = self._pending[0][0] if self._pending else math.inf
            t_fault = self._faults[0].at_s if self._faults else math.inf
            t_rig = self.rig.next_fault_s()
            boundary = min(t_ctrl, t_fault, t_rig)
            if boundary > times[-1]:
                self._run(times[pos:], v_out[pos:], i_out[pos:], float(times[-1]), include_end=True)
                return m if self._stopped_at < 0 else pos + self._stopped_at + 1
            stop = int(np.searchsorted(times, boundary, side="left"))
            self._run(times[pos:stop], v_out[pos:stop], i_out[pos:stop], max(boundary, self.t_s), include_end=False)
            if self._stopped_at >= 0:
                return pos + self._stopped_at + 1
            pos = stop
            if t_rig == boundary:
                self.rig.advance_to(boundary)  # the rig applies (and logs) its fault
                self._pred = None
                self._chunk = None
            elif t_ctrl <= t_fault:
                _, self._mode, self._level = self._pending.popleft()
                self._chunk = None
            else:
                self._apply_fault(self._faults.popleft())

    def advance_to(self, t_s: float) -> None:
        """Advance the state to ``t_s`` without sampling (applies due controls and faults)."""
        if t_s > self.t_s:
            self.sample(np.array([float(t_s)]))

    # ================================================================ extras
    def measure(
        self,
        times_s: FloatArray,
        *,
        stop_above_v: float | None = None,
        stop_below_v: float | None = None,
    ) -> tuple[FloatArray, FloatArray]:
        """:meth:`sample` (with the same stops, on the true voltage) plus the scenario's
        measurement noise and resolution (V, A)."""
        v, i = self.sample(times_s, stop_above_v=stop_above_v, stop_below_v=stop_below_v)
        mc = self.config.measurement
        if mc.voltage_noise_v > 0:
            v = v + self._rng_meas.normal(0.0, mc.voltage_noise_v, v.shape)
        if mc.current_noise_a > 0:
            i = i + self._rng_meas.normal(0.0, mc.current_noise_a, i.shape)
        if mc.voltage_resolution_v > 0:
            with np.errstate(invalid="ignore"):
                v = np.where(np.isfinite(v), np.round(v / mc.voltage_resolution_v) * mc.voltage_resolution_v, v)
        if mc.current_resolution_a > 0:
            i = np.round(i / mc.current_resolution_a) * mc.current_resolution_a
        return v, i

    def read_temperature_k(self, t_s: float) -> float:
        """A temperature reading of the cell (K) with the scenario's noise."""
        sigma = self.config.measurement.temperature_noise_k
        return self.temperature_k + (float(self._rng_meas.normal(0.0, sigma)) if sigma > 0 else 0.0)

    def concentration_profile(self, x_m: npt.ArrayLike) -> FloatArray:
        """The salt concentration (mol/m^3) across the gap at the present time, x in [0, L]."""
        return self.gap.profile(self._g, x_m)

    @property
    def contact_fraction(self) -> float:
        """Fraction of the electrode area in contact (voids and contact-loss faults)."""
        return self.contact_fault * float(np.min(self.contact_void))

    def sei_resistance_ohm_m2(self) -> FloatArray:
        """SEI resistance of (working, counter), ohm m^2, grown with the charge cycled."""
        sei = self.config.cell.sei
        return sei.resistance_ohm_m2 + sei.growth_ohm_m2_per_c_m2 * self.cycled

    def ohmic_resistance_ohm(self) -> float:
        """Electrolyte + SEI + contact resistance of the cell on its contacted area now, ohm."""
        p = self.rig.pressure_pa(self.t_s)
        r = self.electrolyte_resistance_ohm_m2 + float(np.sum(self.sei_resistance_ohm_m2()))
        r += float(self._contact_resistance(np.array([p]))[0])
        return r / (self.area_m2 * self.contact_fraction)

    def short_resistance_ohm(self, t_s: float | None = None) -> float:
        """Resistance of the short at ``t_s`` (default now) without noise; inf when there is none."""
        t = self.t_s if t_s is None else t_s
        if self.short == "none":
            return math.inf
        hard = self.config.defects.hard_short_resistance_ohm
        if self.short == "hard":
            return self._short_r0
        return max(hard, self._short_r0 * math.exp(-(t - self._short_t0) / self._short_tau))

    def state(self) -> TwinState:
        """The true internal state at the present time."""
        c_we, c_ce = self.gap.evaluate(self._g, np.array([self.t_s]))
        if self._hot is not None:
            h_we, h_ce = self.gap.evaluate(self._hot, np.array([self.t_s]))
            hot = (float(h_we[0]), float(h_ce[0]))
        else:
            hot = (float(c_we[0]), float(c_ce[0]))
        sei = self.sei_resistance_ohm_m2()
        return TwinState(
            t_s=self.t_s,
            mode=self._mode,
            level=self._level,
            cell_current_a=self.i_cell_a,
            surface_concentration_mol_m3=(float(c_we[0]), float(c_ce[0])),
            hot_spot_concentration_mol_m3=hot,
            active_lithium_c_m2=(float(self.active[0]), float(self.active[1])),
            dead_lithium_c_m2=(float(self.dead[0]), float(self.dead[1])),
            cycle=self.cycle,
            dendritic=(self.dendritic[0], self.dendritic[1]),
            dendritic_charge_c_m2=(float(self.dendritic_charge[0]), float(self.dendritic_charge[1])),
            short=self.short,
            short_resistance_ohm=self.short_resistance_ohm(),
            contact_fraction=self.contact_fraction,
            recession_m=(float(self.recession[0]), float(self.recession[1])),
            pressure_pa=self.rig.pressure_pa(self.t_s),
            temperature_k=self.temperature_k,
            alpha=self.alpha,
            sei_resistance_ohm_m2=(float(sei[0]), float(sei[1])),
            ohmic_resistance_ohm=self.ohmic_resistance_ohm(),
        )

    # ================================================================ events
    def _log(self, t_s: float, kind: str, detail: str = "", electrode: int | None = None) -> None:
        self.events.append(TwinEvent(float(t_s), kind, detail, _NAMES[electrode] if electrode is not None else ""))

    def _rig_event(self, t_s: float, kind: str, detail: str) -> None:
        self._log(t_s, kind, detail)
        self._pred = None
        self._chunk = None

    def _apply_fault(self, fault: FaultConfig) -> None:
        self._run(np.zeros(0), np.zeros(0), np.zeros(0), max(fault.at_s, self.t_s), include_end=False)
        d = self.config.defects
        if fault.kind == "soft_short":
            self._start_short(
                fault.get("resistance", d.short_resistance_ohm), fault.get("decay_time", d.short_decay_time_s)
            )
            self._log(self.t_s, "soft_short", f"injected, {self._short_r0:g} ohm")
        elif fault.kind == "hard_short":
            self.short = "hard"
            self._short_r0 = fault.get("resistance", d.hard_short_resistance_ohm)
            self._log(self.t_s, "hard_short", f"injected, {self._short_r0:g} ohm")
        elif fault.kind == "contact_loss":
            self.contact_fault *= 1.0 - fault.get("fraction", 0.0)
            self._log(self.t_s, "contact_loss", f"contact fraction {self.contact_fraction:.3g}")
        elif fault.kind == "temperature":
            self.temperature_k = fault.get("to", self.temperature_k)
            self._log(self.t_s, "temperature", f"{self.temperature_k:g} K")
        elif fault.kind == "defect":
            self.alpha = max(1.0, fault.get("alpha", self.alpha))
            if self._hot is None and self.alpha > 1.0:
                self._hot = self._g.copy()
            self._log(self.t_s, "defect", f"alpha {self.alpha:g}")
        self._pred = None
        self._chunk = None
        self._set_transport_current()

    def _start_short(self, r0: float, tau: float) -> None:
        self.short = "soft"
        self._short_t0 = self.t_s
        self._short_r0 = r0
        self._short_tau = tau

    def _apply_event(self, kind: str, e: int) -> None:
        t = self.t_s
        d = self.config.defects
        if kind == "exhausted":
            self.active[e] = 0.0
            self._log(t, "lithium_exhausted", f"no lithium left to strip on the {_NAMES[e]} electrode", e)
        elif kind == "short":
            self._start_short(d.short_resistance_ohm, d.short_decay_time_s)
            self._log(t, "soft_short", f"dendrites bridged the gap, {self._short_r0:g} ohm", e)
        elif kind == "hard":
            self.short = "hard"
            self._short_r0 = d.hard_short_resistance_ohm
            self._log(t, "hard_short", f"{self._short_r0:g} ohm")
        elif kind == "void":
            rc = self.config.rig
            p = self.rig.pressure_pa(t)
            if rc.contact_stiffness_pa_m * self.recession[e] >= (p + rc.adhesion_strength_pa) * (1.0 - 1e-6):
                self.contact_void[e] *= 1.0 - d.void_area_fraction
                self.recession[e] = 0.0
                self.healed[e] = 0.0
                self._log(t, "void", f"void opened, contact fraction {self.contact_fraction:.3g}", e)
        elif kind == "heal":
            self.contact_void[e] = 1.0
            self.healed[e] = 0.0
            self._log(t, "contact_restored", "plating refilled the voids", e)
        elif kind == "depletion":
            self.depleted[e] = True
            self._log(t, "depletion", "surface salt concentration reached zero (Sand's time)", e)
            if self._hot is None and not self.dendritic[e]:
                self.dendritic[e] = True
                self._log(t, "dendritic", "growth turned dendritic", e)
        elif kind == "dendrite":
            self.dendritic[e] = True
            self._log(t, "dendritic", f"hot spot (alpha {self.alpha:.3g}) depleted; growth turned dendritic", e)
        self._pred = None
        self._chunk = None
        self._set_transport_current()

    # ================================================================ segments
    def _plating_electrode(self, i_cell: float) -> int | None:
        if i_cell < 0:
            return _WE
        if i_cell > 0:
            return _CE
        return None

    def _local_current_density(self, i_cell: float) -> float:
        """Current density on the contacted area, A/m^2 (anodic at the working electrode)."""
        return i_cell / (self.area_m2 * self.contact_fraction)

    def _set_transport_current(self) -> None:
        j_gap = -self._local_current_density(self.i_cell_a)  # > 0 plates at x = 0
        self.gap.set_current(self._g, j_gap, self.t_s)
        if self._hot is not None:
            self.gap.set_current(self._hot, self.alpha * j_gap, self.t_s)

    def _ensure_current(self, i_cell: float) -> None:
        """Make ``i_cell`` (A) the electrolyte current from now, with plating-onset bookkeeping."""
        if i_cell != self.i_cell_a:
            self.i_cell_a = i_cell
            e_p = self._plating_electrode(i_cell)
            if e_p is not None and e_p != self._last_plating:
                self._plating_onset(e_p)
            self._set_transport_current()
            self._pred = None
        if self._pred is None:
            self._begin_segment()

    def _plating_onset(self, e: int) -> None:
        eff = self.config.cell.efficiency
        if e == _WE:
            self.cycle += 1
        ce = eff.coulombic_efficiency + eff.drift_per_cycle * self.cycle
        if eff.noise > 0:
            ce += eff.noise * float(self._rng_phys.standard_normal())
        self.ce_base[e] = min(1.0, max(0.0, ce))
        self.depleted[e] = False
        if self.active[e] <= self._bare_tol and self.config.cell.nucleation.overpotential_v > 0:
            self.nucleating[e] = True
            self.nucleation_charge[e] = 0.0
        self._last_plating = e

    def _begin_segment(self) -> None:
        """Constants of the segment starting now, the rig's inputs, and the next analytic event."""
        i = self.i_cell_a
        e_p = self._plating_electrode(i)
        cfg = self.config
        eff = cfg.cell.efficiency
        p = self.rig.pressure_pa(self.t_s)
        j_loc = abs(self._local_current_density(i))
        self._segment_ce = np.ones(2)
        self._creep_pi = 0.0
        if e_p is not None:
            loss = 1.0 - self.ce_base[e_p]
            if eff.current_exponent:
                loss *= (abs(i) / self.area_m2 / eff.reference_current_density_a_m2) ** eff.current_exponent
            if eff.pressure_exponent:
                loss *= (eff.reference_pressure_pa / max(p, 1.0)) ** eff.pressure_exponent
            if self.dendritic[e_p]:
                loss *= eff.dendritic_loss_factor
            self._segment_ce[e_p] = 1.0 - min(1.0, max(0.0, loss))
            if cfg.rig.creep_prefactor > 0:
                self._creep_pi = float(
                    creep_number(
                        cfg.rig.creep_prefactor,
                        cfg.rig.creep_exponent,
                        cfg.defects.stress_concentration,
                        p,
                        cfg.defects.protrusion_length_m,
                        j_loc,
                    )
                )
        # thickness rate of the stack: plated lithium (expanded) minus stripped dense lithium
        v = float(deposition_velocity(abs(i) / self.area_m2))
        rate = 0.0
        if e_p is not None:
            e_s = 1 - e_p
            rate = cfg.rig.deposit_expansion * v - (v if self.active[e_s] > 0 else 0.0)
        self.rig.thickness_rate_m_s = rate
        self._pred = self._predict()

    def _predict(self) -> tuple[float, str, int]:
        """The next analytic event (time, kind, electrode) under the present current."""
        t = self.t_s
        best: tuple[float, str, int] = (math.inf, "", 0)

        def consider(dt: float, kind: str, e: int) -> None:
            nonlocal best
            if math.isfinite(dt) and t + max(dt, 0.0) < best[0]:
                best = (t + max(dt, 0.0), kind, e)

        d = self.config.defects
        rc = self.config.rig
        if self.short == "soft":
            hard = d.hard_short_resistance_ohm
            consider(self._short_t0 + self._short_tau * math.log(self._short_r0 / hard) - t, "hard", 0)
        i = self.i_cell_a
        e_p = self._plating_electrode(i)
        if e_p is None:
            return best
        e_s = 1 - e_p
        areal = abs(i) / self.area_m2
        j_loc = abs(self._local_current_density(i))
        if self.active[e_s] > self._bare_tol:
            consider(self.active[e_s] / areal, "exhausted", e_s)
        if self.dendritic[e_p] and self.short == "none":
            rate = areal / (1.0 + self._creep_pi)
            consider((d.short_charge_c_m2 - self.dendritic_charge[e_p]) / rate, "short", e_p)
        if self.contact_void[e_p] < 1.0:
            consider((d.void_heal_charge_c_m2 - self.healed[e_p]) / areal, "heal", e_p)
        if self.active[e_s] > self._bare_tol:
            i_max = d.void_alpha * j_loc
            v = float(deposition_velocity(i_max))
            p = self.rig.pressure_pa(t)
            p_rate = self.rig.pressure_rate_pa_s()
            k_eff = rc.contact_stiffness_pa_m - p_rate / v
            if k_eff > 0:
                p_left = p - rc.contact_stiffness_pa_m * self.recession[e_s]
                consider(float(void_time(p_left, rc.adhesion_strength_pa, k_eff, i_max)), "void", e_s)
        return best

    # ================================================================ per-sample physics
    def _contact_resistance(self, p: FloatArray) -> FloatArray:
        rc = self.config.rig
        if rc.contact_resistance_ohm_m2 == 0:
            return np.zeros(p.shape)
        floor = 1e-3 * rc.reference_pressure_pa
        return rc.contact_resistance_ohm_m2 * (rc.reference_pressure_pa / np.maximum(p, floor)) ** rc.contact_exponent

    def _inputs(
        self,
        i_cell: float | FloatArray,
        tau: float | FloatArray,
        c_we: FloatArray,
        c_ce: FloatArray,
        p: FloatArray | None,
    ) -> tuple[ElectrodeInputs, ElectrodeInputs, float | FloatArray]:
        """Electrode inputs and area resistance (ohm m^2) ``tau`` s after now at cell current
        ``i_cell`` (either may be an array)."""
        cell = self.config.cell
        i_arr = np.asarray(i_cell, dtype=np.float64)
        areal = np.abs(i_arr) / self.area_m2
        q = areal * np.asarray(tau)
        electrodes = []
        for e, conc in ((_WE, c_we), (_CE, c_ce)):
            stripping = i_arr > 0 if e == _WE else i_arr < 0
            plating = i_arr < 0 if e == _WE else i_arr > 0
            left = self.active[e] - np.where(stripping, q, 0.0)
            cov = cell.efficiency.coverage_charge_c_m2
            coverage: float | FloatArray = 1.0
            if (left < cov).any():
                coverage = np.clip(left / cov, 0.0, 1.0)
            equilibrium: float | FloatArray = 0.0
            if self.active[e] <= self._bare_tol or (left <= 0).any():
                equilibrium = np.where(plating | (left > self._bare_tol), 0.0, cell.substrate_ocv_v)
            nucleation: float | FloatArray = 0.0
            nuc = cell.nucleation
            starts = self.active[e] <= self._bare_tol and self._last_plating != e
            if nuc.overpotential_v > 0 and (self.nucleating[e] or starts):
                q0 = self.nucleation_charge[e] if self.nucleating[e] else 0.0
                nucleation = np.where(
                    plating, nuc.overpotential_v * np.asarray(nucleation_shape(q0 + q, nuc.charge_c_m2)), 0.0
                )
            electrodes.append(ElectrodeInputs(conc, coverage, equilibrium, nucleation))
        growth = cell.sei.growth_ohm_m2_per_c_m2
        r_area: float | FloatArray = (
            self.electrolyte_resistance_ohm_m2 + 2.0 * cell.sei.resistance_ohm_m2 + growth * float(np.sum(self.cycled))
        )
        if growth and np.any(q):
            r_area = r_area + growth * 2.0 * q
        if p is not None:
            r_area = r_area + self._contact_resistance(p)
        return electrodes[0], electrodes[1], r_area

    def _short_noise(self, n: int) -> FloatArray:
        sigma = self.config.defects.short_noise
        if sigma <= 0 or self.short != "soft":  # a hard (metallic) short is quiet
            return np.ones(n)
        return np.exp(sigma * self._rng_short.standard_normal(n))

    def _needs_pressure(self) -> bool:
        return self.config.rig.contact_resistance_ohm_m2 > 0

    # ================================================================ running
    def _run(self, times: FloatArray, v_out: FloatArray, i_out: FloatArray, t_end: float, *, include_end: bool) -> None:
        """Sample ``times`` and advance to ``t_end`` under the present control (no control change
        or fault inside). ``include_end``: a sample at ``t_end`` belongs to this run."""
        if self._mode == "voltage":
            self._run_voltage(times, v_out, i_out, t_end, include_end)
            return
        i_term = self._level if self._mode == "current" else 0.0
        pos = 0
        n = times.size
        while True:
            chunk_end = math.inf
            if self.short == "none":
                i_cell = i_term
            elif self._chunk is not None and self._chunk[1] == i_term and self.t_s < self._chunk[0]:
                chunk_end, _, i_cell = self._chunk  # the chunk started in an earlier call goes on
            else:
                i_cell = self._solve_cell_current(self.t_s, self._short_target(i_term, self.short_resistance_ohm()))
                chunk_end = self.t_s + self._short_chunk_s()
                self._chunk = (chunk_end, i_term, i_cell)
            self._ensure_current(i_cell)
            assert self._pred is not None
            t_ev, kind, e = self._pred
            limit = min(t_ev, chunk_end, t_end)
            right = limit == t_end and include_end
            stop = int(np.searchsorted(times, limit, side="right" if right else "left"))
            stop = max(stop, pos)
            done, lazy, stopped = self._block(times[pos:stop], i_term, v_out[pos:stop], i_out[pos:stop], limit)
            pos += done
            if stopped:
                self._stopped_at = pos - 1
                return
            if lazy is not None:
                self._apply_event(*lazy)
                continue
            if limit == t_ev and t_ev <= t_end:
                self._apply_event(kind, e)
                if t_ev < t_end or pos < n:
                    continue
            if limit >= t_end and pos >= n:
                return

    @staticmethod
    def _short_target(i_term: float, r_short: float) -> Callable[[FloatArray], FloatArray]:
        """The voltage across the short when the cell carries ``c`` of ``i_term``: (I - c) R_s."""

        def target(c: FloatArray) -> FloatArray:
            return (i_term - c) * r_short

        return target

    def _short_chunk_s(self) -> float:
        if self.short == "hard":
            return _SHORT_CHUNK_MAX_S
        return min(_SHORT_CHUNK_MAX_S, self._short_tau / _SHORT_CHUNKS_PER_DECAY)

    def _block(
        self, times: FloatArray, i_term: float, v_out: FloatArray, i_out: FloatArray, t_stop: float
    ) -> tuple[int, tuple[str, int] | None, bool]:
        """Evaluate ``times`` (within [now, t_stop]) at the present cell current and commit to
        ``t_stop``, or stop early at a depletion found on the way or right after a sample beyond
        the voltage stops. Returns (samples done, event found, stopped by a voltage bound)."""
        i_cell = self.i_cell_a
        e_p = self._plating_electrode(i_cell)
        check_times = times if (times.size and times[-1] == t_stop) else np.append(times, t_stop)
        c_we, c_ce = self.gap.evaluate(self._g, check_times)
        lazy: tuple[float, str, int] | None = None
        if e_p is not None:
            c_p = c_we if e_p == _WE else c_ce
            if not self.depleted[e_p] and (c_p <= 0.0).any():
                lazy = (self.t_s + self.gap.time_to_depletion(self._g), "depletion", e_p)
            if self._hot is not None and not self.dendritic[e_p]:
                h_we, h_ce = self.gap.evaluate(self._hot, check_times[-1:])
                if (h_we if e_p == _WE else h_ce)[0] <= 0.0:
                    t_h = self.t_s + self.gap.time_to_depletion(self._hot)
                    if lazy is None or t_h < lazy[0]:
                        lazy = (t_h, "dendrite", e_p)
        n = times.size
        done = n
        end = t_stop
        if lazy is not None:
            end = min(max(lazy[0], self.t_s), t_stop)
            done = int(np.searchsorted(times, end, side="left"))
        if done:
            tau = times[:done] - self.t_s
            p = self.rig.pressure_at(times[:done]) if self._needs_pressure() else None
            working, counter, r_area = self._inputs(i_cell, tau, c_we[:done], c_ce[:done], p)
            area = self.area_m2 * self.contact_fraction
            v_cell = self.vmodel.voltage(i_cell, area, working, counter, r_area, self.temperature_k)
            if self.short == "none":
                v_out[:done] = v_cell
            else:
                r_s = (
                    self.short_resistance_ohm() * np.exp(-np.maximum(tau, 0.0) / self._short_tau)
                    if self.short == "soft"
                    else np.full(done, self._short_r0)
                )
                r_s = np.maximum(r_s, self.config.defects.hard_short_resistance_ohm if self.short == "soft" else 0.0)
                r_s = r_s * self._short_noise(done)
                r = self.vmodel.small_signal_resistance(i_cell, area, working, counter, r_area, self.temperature_k)
                v_out[:done] = (v_cell + r * (i_term - i_cell)) / (1.0 + r / r_s)
            i_out[:done] = i_term
            if self._stop_hi < math.inf or self._stop_lo > -math.inf:
                vv = v_out[:done]
                hit = np.flatnonzero((vv > self._stop_hi) | (vv < self._stop_lo))
                if hit.size:
                    done = int(hit[0]) + 1
                    self._commit(float(times[done - 1]))
                    return done, None, True
        self._commit(end)
        return done, (None if lazy is None else (lazy[1], lazy[2])), False

    def _commit(self, t_end: float) -> None:
        """Advance every state variable linearly to ``t_end`` at the present cell current."""
        dt = t_end - self.t_s
        if dt < 0:
            raise ValueError(f"time went backwards: {t_end} < {self.t_s}")
        if dt == 0:
            return
        self.gap.evolve(self._g, t_end)
        if self._hot is not None:
            self.gap.evolve(self._hot, t_end)
        i = self.i_cell_a
        e_p = self._plating_electrode(i)
        if e_p is not None:
            e_s = 1 - e_p
            q = abs(i) / self.area_m2 * dt
            self.active[e_s] = max(0.0, self.active[e_s] - q)
            ce = float(self._segment_ce[e_p])
            self.active[e_p] += ce * q
            self.dead[e_p] += (1.0 - ce) * q
            self.cycled += q
            if self.nucleating[e_p]:
                self.nucleation_charge[e_p] += q
                if self.nucleation_charge[e_p] > _NUCLEATION_DONE * self.config.cell.nucleation.charge_c_m2:
                    self.nucleating[e_p] = False
            if self.dendritic[e_p]:
                self.dendritic_charge[e_p] += q / (1.0 + self._creep_pi)
            if self.contact_void[e_p] < 1.0:
                self.healed[e_p] += q
            j_loc = abs(self._local_current_density(i))
            d = self.config.defects
            self.recession[e_s] += float(deposition_velocity(d.void_alpha * j_loc)) * dt
            self.recession[e_p] = max(0.0, self.recession[e_p] - float(deposition_velocity(j_loc)) * dt)
            self._update_rig_lithium()
        self.t_s = t_end

    def _update_rig_lithium(self) -> None:
        self.rig.lithium_thickness_m = float(lithium_thickness(float(np.sum(self.active + self.dead))))

    # ================================================================ voltage control
    def _candidate_voltage(self, t_s: float) -> Callable[[FloatArray], FloatArray]:
        """A function giving the cell voltage at ``t_s`` for each candidate current (A) flowing
        from now until then (what depends only on ``t_s`` is computed once)."""
        tau = t_s - self.t_s
        c_free, _ = self.gap.evaluate(self._g, np.array([t_s]))
        area = self.area_m2 * self.contact_fraction
        g_now = self._g.gradient_mol_m4
        k = float(self.gap.step_response(np.array([tau]))[0]) if tau > 0 else 0.0
        p = self.rig.pressure_at(np.array([t_s])) if self._needs_pressure() else None
        c_total = 2.0 * self.spec.concentration_mol_m3

        def voltage(currents: FloatArray) -> FloatArray:
            g_new = np.asarray(self.spec.gradient(-currents / area))
            c_we = c_free[0] + (g_new - g_now) * k
            working, counter, r_area = self._inputs(currents, tau, c_we, c_total - c_we, p)
            return self.vmodel.voltage(currents, area, working, counter, r_area, self.temperature_k)

        return voltage

    def _solve_cell_current(
        self,
        t_s: float,
        target: Callable[[FloatArray], FloatArray],
        guess: float | None = None,
        half_width: float | None = None,
    ) -> float:
        """The electrolyte current I (A) with V_cell(I) = target(I) at ``t_s`` (V_cell - target
        increases with I): bracket around ``guess`` (default the present current), then secant
        steps checked by a narrow bracket, with a grid search as the fallback."""
        v_cell = self._candidate_voltage(t_s)

        def resid(c: FloatArray) -> FloatArray:
            with np.errstate(invalid="ignore"):
                r = v_cell(c) - np.asarray(target(c))
            return np.asarray(np.where(np.isnan(r), np.inf, r), dtype=np.float64)

        scale = 1e-3 * self.config.cell.kinetics.exchange_current_density_a_m2 * self.area_m2
        if guess is None:
            guess = self.i_cell_a
        half = 1e-3 * abs(guess) + 1e-6 * scale if half_width is None else half_width
        lo, hi = guess - half, guess + half
        r_lo = r_hi = math.nan
        for _ in range(200):
            r = resid(np.array([lo, hi]))
            r_lo, r_hi = float(r[0]), float(r[1])
            if r_lo <= 0.0 <= r_hi:
                break
            width = hi - lo
            if r_lo > 0.0:
                lo -= 9.0 * width
            if r_hi < 0.0:
                hi += 9.0 * width
        tol = 1e-11 * max(abs(lo), abs(hi), scale)
        for _ in range(60):
            if hi - lo <= tol:
                break
            if math.isfinite(r_lo) and math.isfinite(r_hi) and r_hi > r_lo:
                x = lo - r_lo * (hi - lo) / (r_hi - r_lo)
                if r_hi - r_lo < 1e-12 or hi - lo <= 1e-6 * max(abs(x), scale):
                    return x  # a secant across so narrow a bracket is exact to ~1e-14
                d = max(1e-3 * (hi - lo), 0.4 * tol)
                r = resid(np.array([x - d, x + d]))
                if r[0] <= 0.0 <= r[1]:
                    lo, hi, r_lo, r_hi = x - d, x + d, float(r[0]), float(r[1])
                    continue
            grid = np.linspace(lo, hi, _SOLVE_POINTS)
            r = resid(grid)
            j = min(max(int(np.searchsorted(r, 0.0, side="left")), 1), _SOLVE_POINTS - 1)
            lo, hi, r_lo, r_hi = float(grid[j - 1]), float(grid[j]), float(r[j - 1]), float(r[j])
        if math.isfinite(r_lo) and math.isfinite(r_hi) and r_hi > r_lo:
            return lo - r_lo * (hi - lo) / (r_hi - r_lo)
        return 0.5 * (lo + hi)

    def _cv_prediction(self, t: float) -> tuple[float | None, float | None]:
        """Guess and bracket half-width for the next voltage-controlled current, extrapolated
        from the last two solved samples (None: no history, use the defaults)."""
        hist = self._cv_history
        if len(hist) < 2 or hist[-1][0] != self.t_s or self._pred is None:
            return None, None
        (t0, i0), (t1, i1) = hist
        if t1 <= t0:
            return None, None
        guess = i1 + (i1 - i0) * (t - t1) / (t1 - t0)
        return guess, 0.05 * abs(guess - i1) + 1e-9 * abs(guess) + 1e-15

    def _run_voltage(
        self, times: FloatArray, v_out: FloatArray, i_out: FloatArray, t_end: float, include_end: bool
    ) -> None:
        v_set = self._level
        n = times.size
        if not include_end:
            n = int(np.searchsorted(times, t_end, side="left"))
        targets = list(times[:n])
        if not targets or targets[-1] < t_end:
            targets.append(t_end)
        out = 0
        for t in targets:
            while True:
                if t <= self.t_s:
                    i_cell = self.i_cell_a
                else:
                    # a short in parallel sees the same terminal voltage: the cell obeys V_cell = v_set
                    guess, half = self._cv_prediction(t)
                    i_cell = self._solve_cell_current(t, lambda c: np.full(np.shape(c), v_set), guess, half)
                    self._cv_history = (*self._cv_history[-1:], (t, i_cell))
                self._ensure_current(i_cell)
                assert self._pred is not None
                t_ev, kind, e = self._pred
                if t_ev < t:
                    self._block(np.zeros(0), 0.0, np.zeros(0), np.zeros(0), t_ev)
                    self._apply_event(kind, e)
                    continue
                _, lazy, _ = self._block(np.zeros(0), 0.0, np.zeros(0), np.zeros(0), t)
                if lazy is not None:
                    self._apply_event(*lazy)
                    if self.t_s < t:
                        continue
                break
            if out < n:
                i_term = self.i_cell_a
                if self.short != "none":
                    i_term += v_set / (self.short_resistance_ohm() * float(self._short_noise(1)[0]))
                v_out[out] = v_set
                i_out[out] = i_term
                out += 1
                if v_set > self._stop_hi or v_set < self._stop_lo:
                    self._stopped_at = out - 1
                    return
