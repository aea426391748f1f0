"""Safety limits and their layering: instrument, station, protocol, step; each can only tighten.

SI units. A bound left as None is not constrained by that layer. Layers combine by intersection;
a layer that asks for more than the layers before it allow is refused (:class:`LimitsRefused`), so a
schedule that wants 10 mA on a channel the station caps at 5 mA fails before any output turns on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace

__all__ = ["LimitStack", "Limits", "LimitsRefused", "SetpointRefused"]


class LimitsRefused(ValueError):
    """A limit layer asks for a wider bound than the layers below it allow."""


class SetpointRefused(ValueError):
    """A setpoint lies outside the effective limits; it never reaches an instrument."""


_LOWER = ("voltage_min_v", "pressure_min_pa")
"""Bounds where a larger value is tighter; every other bound is an upper bound."""


@dataclass(frozen=True)
class Limits:
    """One layer of limits (SI). None means "not constrained by this layer".

    Currents are magnitudes (both signs); current density is |I| / electrode area.
    ``dv_dt_max_v_per_s`` bounds |dV/dt| between successive readings.
    """

    voltage_min_v: float | None = None
    voltage_max_v: float | None = None
    current_max_a: float | None = None
    current_density_max_a_m2: float | None = None
    charge_per_step_max_c: float | None = None
    charge_per_run_max_c: float | None = None
    pressure_min_pa: float | None = None
    pressure_max_pa: float | None = None
    temperature_max_k: float | None = None
    dv_dt_max_v_per_s: float | None = None

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None and math.isnan(value):
                raise ValueError(f"limit {f.name} is NaN")
        for lo, hi in (("voltage_min_v", "voltage_max_v"), ("pressure_min_pa", "pressure_max_pa")):
            a, b = getattr(self, lo), getattr(self, hi)
            if a is not None and b is not None and a > b:
                raise ValueError(f"{lo} = {a:g} is above {hi} = {b:g}")

    def intersect(self, other: Limits) -> Limits:
        """The tighter of the two on every bound (None defers to the other)."""
        changes: dict[str, float | None] = {}
        for f in fields(self):
            a, b = getattr(self, f.name), getattr(other, f.name)
            if a is None or b is None:
                changes[f.name] = b if a is None else a
            else:
                changes[f.name] = max(a, b) if f.name in _LOWER else min(a, b)
        return replace(self, **changes)

    def looser_than(self, base: Limits) -> list[str]:
        """The bounds on which this layer asks for more than ``base`` allows (described)."""
        out = []
        for f in fields(self):
            mine, theirs = getattr(self, f.name), getattr(base, f.name)
            if mine is None or theirs is None:
                continue
            wider = mine < theirs if f.name in _LOWER else mine > theirs
            if wider:
                out.append(f"{f.name} = {mine:g} exceeds {theirs:g}")
        return out

    def check_current(self, current_a: float, area_m2: float | None = None) -> None:
        """Raise :class:`SetpointRefused` when ``current_a`` (A) is outside these limits."""
        if not math.isfinite(current_a):
            raise SetpointRefused(f"current setpoint {current_a!r} A is not a finite number")
        if self.current_max_a is not None and abs(current_a) > self.current_max_a:
            raise SetpointRefused(f"current {current_a:g} A exceeds the limit of {self.current_max_a:g} A")
        if self.current_density_max_a_m2 is not None and area_m2:
            density = abs(current_a) / area_m2
            if density > self.current_density_max_a_m2:
                raise SetpointRefused(
                    f"current density {density:g} A/m^2 exceeds the limit of {self.current_density_max_a_m2:g} A/m^2"
                )


class LimitStack:
    """Named layers of limits, bottom (instrument) to top (step); the effective limits are their
    intersection. ``push`` refuses a layer that would loosen any bound."""

    def __init__(self) -> None:
        self._layers: list[tuple[str, Limits]] = []
        self._effective = Limits()

    @property
    def effective(self) -> Limits:
        """The intersection of all layers."""
        return self._effective

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self._layers]

    def push(self, name: str, limits: Limits) -> Limits:
        """Add a layer on top; raise :class:`LimitsRefused` naming each bound it would loosen."""
        wider = limits.looser_than(self._effective)
        if wider:
            below = self._layers[-1][0] if self._layers else "nothing"
            raise LimitsRefused(f"{name} limits ask for more than {below} allows: " + "; ".join(wider))
        self._layers.append((name, limits))
        self._effective = self._effective.intersect(limits)
        return self._effective

    def pop(self, name: str) -> Limits:
        """Remove the top layer, which must be ``name`` (e.g. a step's limits when the step ends)."""
        if not self._layers or self._layers[-1][0] != name:
            raise ValueError(f"the top limit layer is not {name!r} (layers: {self.names})")
        self._layers.pop()
        effective = Limits()
        for _, layer in self._layers:
            effective = effective.intersect(layer)
        self._effective = effective
        return effective
