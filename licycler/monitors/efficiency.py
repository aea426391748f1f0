"""Cycle accounting and efficiency: CE per cycle and its rolling mean with uncertainty, reservoir
CE, voltage and energy efficiency, hysteresis, projected cycles to a retention, the CE a target
needs, and the lithium inventory where it is known (with the lithium-exhaustion finding).

Per-cycle charges and energies come from the engine's cycle accounting (the cycles-table row);
every relation is the one in :mod:`licycler.physics.efficiency`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from licycler.monitors.base import Chunk, Finding, StepContext
from licycler.physics.efficiency import (
    coulombic_efficiency,
    cycles_to_retention,
    energy_efficiency_from_energies,
    required_ce,
    reservoir_ce,
    voltage_efficiency,
)
from licycler.protocols.schedule import Watch

__all__ = ["EfficiencyMonitor"]


class EfficiencyMonitor:
    """CE and friends per cycle; lithium inventory and exhaustion; reservoir CE at its final strip."""

    name = "efficiency"

    def __init__(self, watch: Watch, area_m2: float) -> None:
        self.watch = watch
        self.area_m2 = area_m2
        self.window = watch.ce_window
        self.ces: list[float] = []
        self.losses: list[float] = []
        self.cycles = 0
        self.inventory_c = watch.model.inventory_c
        self.last_plate_c = 0.0
        self.exhaustion_latched = False
        self.required_sent = False
        # reservoir protocol: Q_T, the cycled charges, Q_S
        self.reservoir: dict[str, Any] = {"q_t": None, "plates": [], "done": False}

    # --- cycles ------------------------------------------------------------------------------
    def end_cycle(self, ctx: StepContext, row: Mapping[str, Any]) -> list[Finding]:
        q_plate = float(row.get("charge_plate_c") or 0.0)
        q_strip = float(row.get("charge_strip_c") or 0.0)
        if q_plate <= 0 or q_strip <= 0:
            return []
        t = float(row.get("end_s") or ctx.t0_s)
        m = ctx.metrics
        ce = float(coulombic_efficiency(q_strip, q_plate))
        self.cycles += 1
        self.ces = [*self.ces, ce][-self.window :]
        # lithium lost in the cycle: what the working electrode did not give back, and the same
        # fraction of what was plated back onto the counter electrode (1 - CE) Q_strip
        self.losses = [*self.losses, (q_plate - q_strip) * (1.0 + ce)][-self.window :]
        self.last_plate_c = q_plate
        arr = np.array(self.ces)
        mean = float(arr.mean())
        std = float(arr.std(ddof=1)) if arr.size > 1 else math.nan
        m.add(t, "ce", ce)
        m.add(t, "ce_rolling_mean", mean)
        m.add(t, "ce_rolling_std", std)
        m.add(t, "ce_rolling_stderr", std / math.sqrt(arr.size) if arr.size > 1 else math.nan)
        retention, target = self.watch.retention, self.watch.target_cycles
        m.add(t, "ce_projected_cycles", float(cycles_to_retention(min(mean, 1.0), retention)))
        if not self.required_sent:
            m.add(t, "ce_required", float(required_ce(target, retention)))
            self.required_sent = True
        v_plate, v_strip = row.get("mean_voltage_plate_v"), row.get("mean_voltage_strip_v")
        if v_plate is not None and v_strip is not None:
            m.add(t, "hysteresis_v", float(v_strip) - float(v_plate))
            if v_plate != 0:
                eta_v = float(voltage_efficiency(v_strip, v_plate))
                m.add(t, "voltage_efficiency", eta_v)
        e_plate, e_strip = float(row.get("energy_plate_j") or 0.0), float(row.get("energy_strip_j") or 0.0)
        if e_plate != 0:
            m.add(t, "energy_efficiency", float(energy_efficiency_from_energies(e_strip, e_plate)))
        return self._inventory(ctx, t, self.losses[-1])

    def _inventory(self, ctx: StepContext, t: float, loss_c: float) -> list[Finding]:
        if self.inventory_c is None:
            return []
        self.inventory_c -= loss_c
        ctx.metrics.add(t, "lithium_inventory_c", self.inventory_c)
        per_cycle = float(np.mean(self.losses))
        left = (self.inventory_c - self.last_plate_c) / per_cycle if per_cycle > 0 else math.inf
        ctx.metrics.add(t, "cycles_to_exhaustion", left)
        limit = self.watch.rule("lithium_exhaustion")["cycles"]
        if self.exhaustion_latched or left >= limit:
            return []
        self.exhaustion_latched = True
        return [Finding(self.name, "lithium_exhaustion", "inventory", t,
                        f"{self.inventory_c / 3.6:.4g} mAh of lithium left, {left:.3g} cycles of "
                        f"{self.last_plate_c / 3.6:.4g} mAh at the present loss of {per_cycle / 3.6:.3g} mAh per cycle",
                        {"inventory_c": self.inventory_c, "cycles_left": left, "loss_per_cycle_c": per_cycle,
                         "plate_charge_c": self.last_plate_c, "ce_rolling_mean": float(np.mean(self.ces))},
                        lead_s=None)]  # fmt: skip

    # --- steps: the observed sign of exhaustion and the reservoir protocol -------------------
    def start_step(self, ctx: StepContext) -> list[Finding]:
        return []

    def observe(self, ctx: StepContext, chunk: Chunk) -> list[Finding]:
        return []

    def end_step(self, ctx: StepContext, ended_by: str) -> list[Finding]:
        step = ctx.step
        findings: list[Finding] = []
        t = ctx.t0_s + ctx.elapsed_s
        cap = step.until.capacity_c
        if (
            cap is not None
            and ctx.chemistry == "Li||Cu"
            and abs(ctx.charge_c) < cap * (1 - 1e-3)
            and ended_by
            in (
                "voltage_below",
                "voltage_above",
            )
        ):
            side = "counter electrode (the lithium source)" if step.kind == "plate" else "working electrode"
            findings.append(Finding(self.name, "lithium_exhaustion", "cutoff", t,
                                    f"{step.kind} step {step.index} ended on {ended_by} after "
                                    f"{abs(ctx.charge_c) / 3.6:.4g} of {cap / 3.6:.4g} mAh: no lithium left to strip "
                                    f"on the {side}",
                                    {"charge_c": abs(ctx.charge_c), "capacity_c": cap,
                                     "step": step.index}))  # fmt: skip
        self._reservoir_step(ctx, ended_by, t)
        return findings

    def _reservoir_step(self, ctx: StepContext, ended_by: str, t: float) -> None:
        r = self.reservoir
        label = ctx.step.label
        if label == self.watch.reservoir_label and ctx.step.kind == "plate":
            r.update(q_t=abs(ctx.charge_c), plates=[], done=False)
        elif r["q_t"] is not None and not r["done"]:
            if label == self.watch.final_strip_label and ctx.step.kind == "strip":
                plates = r["plates"]
                n = len(plates)
                q_c = float(np.mean(plates)) if n else 0.0
                ce = float(reservoir_ce(r["q_t"], q_c, n, abs(ctx.charge_c)))
                ctx.metrics.add(t, "reservoir_ce", ce)
                ctx.metrics.add(t, "reservoir_charge_c", r["q_t"])
                ctx.metrics.add(t, "reservoir_cycled_charge_c", q_c)
                ctx.metrics.add(t, "reservoir_cycles", n)
                ctx.metrics.add(t, "reservoir_final_strip_charge_c", abs(ctx.charge_c))
                r["done"] = True
            elif ctx.step.kind == "plate":
                r["plates"] = [*r["plates"], abs(ctx.charge_c)]

    # --- checkpoint ----------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {"ces": self.ces, "losses": self.losses, "cycles": self.cycles, "inventory_c": self.inventory_c,
                "last_plate_c": self.last_plate_c, "exhaustion_latched": self.exhaustion_latched,
                "required_sent": self.required_sent, "reservoir": self.reservoir}  # fmt: skip

    def restore(self, state: dict[str, Any]) -> None:
        self.ces = [float(x) for x in state["ces"]]
        self.losses = [float(x) for x in state["losses"]]
        self.cycles = int(state["cycles"])
        self.inventory_c = None if state["inventory_c"] is None else float(state["inventory_c"])
        self.last_plate_c = float(state["last_plate_c"])
        self.exhaustion_latched = bool(state["exhaustion_latched"])
        self.required_sent = bool(state["required_sent"])
        self.reservoir = dict(state["reservoir"])
