"""Read and validate a schedule file (YAML) into a :class:`~licycler.protocols.schedule.Schedule`.

Every mistake is one :class:`~licycler.yamlsource.InputError` naming file, line and field path.
Quantities carry units and are converted once, here, to SI. See ``docs/schedule.md``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

from licycler import units as u
from licycler.protocols.schedule import (
    TERMINATION_FIELDS,
    WATCH_ACTIONS,
    WATCH_FINDINGS,
    WATCH_RESUME,
    Action,
    Cell,
    RecordSpec,
    Schedule,
    Step,
    SuspendRule,
    Until,
    Watch,
    WatchModel,
    WatchRule,
)
from licycler.safety.limits import Limits
from licycler.sim_instruments.twin.config import ELECTROLYTE_PRESETS
from licycler.yamlsource import Field, InputError, load_yaml, load_yaml_text

__all__ = ["MAX_STEPS", "load_schedule", "parse_schedule"]

MAX_STEPS = 2_000_000
"""Largest program after expanding repeats and pulses (a longer one is almost surely a mistake)."""

CHEMISTRIES = ("Li||Li", "Li||Cu")
STEP_KINDS = ("rest", "plate", "strip", "hold", "pulse", "pressure", "repeat")
TOP_KEYS = ("schedule", "name", "description", "cell", "limits", "record", "suspend", "watch", "steps")
WATCH_KEYS = ("enabled", "every", "period", "model", "retention", "target_cycles", "ce_window", "reservoir", "rules")
MODEL_KEYS = ("electrolyte", "separator", "alpha", "void_alpha", "contact_stiffness", "adhesion_strength",
              "stack_pressure", "creep", "inventory")  # fmt: skip
LIMIT_KEYS: dict[str, tuple[str, u.Dimension]] = {
    "voltage_min": ("voltage_min_v", u.VOLTAGE),
    "voltage_max": ("voltage_max_v", u.VOLTAGE),
    "current_max": ("current_max_a", u.CURRENT),
    "current_density_max": ("current_density_max_a_m2", u.CURRENT_DENSITY),
    "charge_per_step_max": ("charge_per_step_max_c", u.CHARGE),
    "charge_per_run_max": ("charge_per_run_max_c", u.CHARGE),
    "pressure_min": ("pressure_min_pa", u.PRESSURE),
    "pressure_max": ("pressure_max_pa", u.PRESSURE),
    "temperature_max": ("temperature_max_k", u.TEMPERATURE),
    "dv_dt_max": ("dv_dt_max_v_per_s", u.VOLTAGE / u.TIME),
}
COMMON_STEP_KEYS = ("label", "until", "on", "resume", "limits")


@dataclass
class _Context:
    source: str
    area_m2: float
    steps: list[Step] = field(default_factory=list)
    template: int = 0
    # (step index, action field, goto label, line) to resolve once every label is known
    gotos: list[tuple[int, str, Field]] = field(default_factory=list)

    def charge(self, f: Field, what: str = "a charge") -> float:
        """A charge given absolute (mAh) or areal (mAh/cm^2, times the electrode area), C."""
        try:
            return f.quantity(u.CHARGE, positive=True)
        except InputError:
            pass
        try:
            return f.quantity(u.AREAL_CHARGE, positive=True) * self.area_m2
        except InputError as exc:
            if "greater than zero" in exc.detail:
                raise
            raise f.error(f"expected {what} such as '1 mAh' or '1 mAh/cm^2', got '{f.value}'") from None

    def current(self, f: Field) -> float:
        """A current magnitude, absolute (mA) or as a density (mA/cm^2, times the area), A."""
        try:
            return f.quantity(u.CURRENT, positive=True)
        except InputError as exc:
            if "greater than zero" in exc.detail:
                raise f.error(f"give the magnitude (> 0); the step sets the sign, got '{f.value}'") from None
        try:
            return f.quantity(u.CURRENT_DENSITY, positive=True) * self.area_m2
        except InputError as exc:
            if "greater than zero" in exc.detail:
                raise f.error(f"give the magnitude (> 0); the step sets the sign, got '{f.value}'") from None
            raise f.error(f"expected a current such as '0.5 mA' or '0.5 mA/cm^2', got '{f.value}'") from None


def load_schedule(path: str | Path) -> Schedule:
    """Read and validate the schedule file at ``path``."""
    data, text = load_yaml(path)
    return parse_schedule(data, text, str(path))


def parse_schedule(data: Any, text: str = "", source: str = "<string>") -> Schedule:
    """Validate parsed YAML ``data`` (from :func:`licycler.yamlsource.load_yaml_text`) into a Schedule."""
    if isinstance(data, str) and not text:
        text, data = data, load_yaml_text(data, source)
    root = Field(data, source).mapping(TOP_KEYS, required=("name", "cell", "limits", "steps"))
    if (version := root.get("schedule")) is not None and version.integer() != 1:
        raise version.error("this licycler reads schedule format 1")
    cell_f = root["cell"].mapping(("chemistry", "electrode_area"), required=("chemistry", "electrode_area"))
    cell = Cell(cell_f["chemistry"].text(CHEMISTRIES), cell_f["electrode_area"].quantity(u.AREA, positive=True))
    ctx = _Context(source, cell.area_m2)
    limits = _limits(root["limits"], ctx)
    if limits.voltage_min_v is None or limits.voltage_max_v is None:
        raise root["limits"].error("a schedule must give voltage_min and voltage_max (the run's voltage window)")
    record = _record(root.get("record"), ctx)
    suspend = _suspend(root.get("suspend"))
    watch = _watch(root.get("watch"), ctx)
    steps_f = root["steps"]
    if not steps_f.sequence():
        raise steps_f.error("a schedule needs at least one step")
    _steps(steps_f, ctx)
    _resolve_gotos(ctx)
    return Schedule(
        name=root["name"].text(),
        description=root.get("description").text() if root.get("description") else "",  # type: ignore[union-attr]
        cell=cell,
        limits=limits,
        record=record,
        steps=tuple(ctx.steps),
        suspend=suspend,
        watch=watch,
        source=source,
        text=text,
        sha256=hashlib.sha256(text.encode()).hexdigest(),
        template_count=ctx.template,
    )


def _limits(f: Field, ctx: _Context) -> Limits:
    f.mapping(tuple(LIMIT_KEYS))
    values: dict[str, float] = {}
    for key, child in f.items():
        name, dim = LIMIT_KEYS[key]
        if key.startswith("charge"):
            values[name] = ctx.charge(child)
        elif key == "current_max":
            values[name] = ctx.current(child)
        else:
            values[name] = child.quantity(dim, positive=key not in ("voltage_min", "voltage_max"))
    try:
        return Limits(**values)
    except ValueError as exc:
        raise f.error(str(exc)) from None


def _record(f: Field | None, ctx: _Context) -> RecordSpec:
    if f is None:
        return RecordSpec()
    f.mapping(("every", "dv", "dq"))
    every = f.get("every")
    dv = f.get("dv")
    dq = f.get("dq")
    return RecordSpec(
        every_s=every.quantity(u.TIME, positive=True) if every else 1.0,
        dv_v=dv.quantity(u.VOLTAGE, positive=True) if dv else None,
        dq_c=ctx.charge(dq) if dq else None,
    )


def _suspend(f: Field | None) -> SuspendRule | None:
    if f is None:
        return None
    f.mapping(("pressure",), required=("pressure",))
    p = f["pressure"].mapping(("below", "resume_above", "settle"), required=("below", "resume_above"))
    below = p["below"].quantity(u.PRESSURE, positive=True)
    above = p["resume_above"].quantity(u.PRESSURE, positive=True)
    if above <= below:
        raise p["resume_above"].error("must be above 'below', so that suspending and resuming do not chatter")
    settle = p.get("settle")
    return SuspendRule(below, above, settle.quantity(u.TIME, non_negative=True) if settle else 60.0)


def _watch(f: Field | None, ctx: _Context) -> Watch:
    """The ``watch:`` section (docs/schedule.md, docs/monitors.md); absent: every default."""
    if f is None:
        return Watch()
    f.mapping(WATCH_KEYS)
    enabled = f.get("enabled")
    every = f.get("every")
    period = f.get("period")
    retention = f.get("retention")
    target = f.get("target_cycles")
    window = f.get("ce_window")
    reservoir = f.get("reservoir")
    labels = ("reservoir", "final-strip")
    if reservoir is not None:
        reservoir.mapping(("plate", "final_strip"))
        labels = (
            reservoir["plate"].text() if reservoir.get("plate") else labels[0],
            reservoir["final_strip"].text() if reservoir.get("final_strip") else labels[1],
        )
    return Watch(
        enabled=enabled.boolean() if enabled else True,
        every_s=every.quantity(u.TIME, positive=True) if every else 300.0,
        period_s=period.quantity(u.TIME, positive=True) if period else 60.0,
        model=_watch_model(f.get("model"), ctx),
        rules=_watch_rules(f.get("rules")),
        retention=retention.quantity(u.DIMENSIONLESS, positive=True, maximum=1.0) if retention else 0.8,
        target_cycles=float(target.integer(minimum=1)) if target else 1000.0,
        ce_window=window.integer(minimum=2) if window else 10,
        reservoir_label=labels[0],
        final_strip_label=labels[1],
    )


def _watch_model(f: Field | None, ctx: _Context) -> WatchModel:
    if f is None:
        return WatchModel()
    f.mapping(MODEL_KEYS)
    values: dict[str, Any] = {}
    if (el := f.get("electrolyte")) is not None:
        el.mapping(("preset", "diffusivity", "concentration", "transference_number"))
        if (preset := el.get("preset")) is not None:
            base = ELECTROLYTE_PRESETS[preset.text(tuple(ELECTROLYTE_PRESETS))]
            values.update(diffusivity_m2_s=base.diffusivity_m2_s, concentration_mol_m3=base.concentration_mol_m3,
                          transference_number=base.transference_number)  # fmt: skip
        if (d := el.get("diffusivity")) is not None:
            values["diffusivity_m2_s"] = d.quantity(u.DIFFUSIVITY, positive=True)
        if (c := el.get("concentration")) is not None:
            values["concentration_mol_m3"] = c.quantity(u.CONCENTRATION, positive=True)
        if (t := el.get("transference_number")) is not None:
            values["transference_number"] = t.quantity(u.DIMENSIONLESS, non_negative=True, maximum=0.999)
    if (sep := f.get("separator")) is not None:
        sep.mapping(("thickness", "porosity", "bruggeman", "tortuosity"))
        if (th := sep.get("thickness")) is not None:
            values["thickness_m"] = th.quantity(u.LENGTH, positive=True)
        if (po := sep.get("porosity")) is not None:
            values["porosity"] = po.quantity(u.DIMENSIONLESS, positive=True, maximum=1.0)
        if (br := sep.get("bruggeman")) is not None:
            values["bruggeman"] = br.quantity(u.DIMENSIONLESS, non_negative=True)
        if (to := sep.get("tortuosity")) is not None:
            values["tortuosity"] = to.quantity(u.DIMENSIONLESS, minimum=1.0)
    for key, name, dim in (
        ("alpha", "alpha", u.DIMENSIONLESS),
        ("void_alpha", "void_alpha", u.DIMENSIONLESS),
    ):
        if (v := f.get(key)) is not None:
            values[name] = v.quantity(dim, minimum=1.0)
    if (k := f.get("contact_stiffness")) is not None:
        values["contact_stiffness_pa_m"] = k.quantity(u.CONTACT_STIFFNESS, positive=True)
    if (a := f.get("adhesion_strength")) is not None:
        values["adhesion_strength_pa"] = a.quantity(u.PRESSURE, non_negative=True)
    if (p := f.get("stack_pressure")) is not None:
        values["stack_pressure_pa"] = p.quantity(u.PRESSURE, non_negative=True)
    if (cr := f.get("creep")) is not None:
        cr.mapping(("prefactor", "exponent", "protrusion_length", "stress_concentration"))
        if (pf := cr.get("prefactor")) is not None:
            values["creep_prefactor"] = pf.quantity(u.DIMENSIONLESS, non_negative=True)
        if (ex := cr.get("exponent")) is not None:
            values["creep_exponent"] = ex.quantity(u.DIMENSIONLESS, positive=True)
        if (pl := cr.get("protrusion_length")) is not None:
            values["protrusion_length_m"] = pl.quantity(u.LENGTH, positive=True)
        if (sc := cr.get("stress_concentration")) is not None:
            values["stress_concentration"] = sc.quantity(u.DIMENSIONLESS, minimum=1.0)
    if (inv := f.get("inventory")) is not None:
        values["inventory_c"] = ctx.charge(inv, "a lithium inventory")
    return WatchModel(**values)


def _watch_rules(f: Field | None) -> MappingProxyType[str, WatchRule]:
    rules = dict(Watch().rules)
    if f is None:
        return MappingProxyType(rules)
    f.mapping(tuple(WATCH_FINDINGS))
    for name, child in f.items():
        default_action, spec = WATCH_FINDINGS[name]
        params = {k: v[1] for k, v in spec.items()}
        if isinstance(child.value, str):
            action = child.text(WATCH_ACTIONS)
            body: Field | None = None
        else:
            body = child.mapping(("action", *spec, *WATCH_RESUME))
            action = body["action"].text(WATCH_ACTIONS) if body.get("action") else default_action
        where = body["action"] if body is not None and body.get("action") else child
        if action == "derate" and name != "depletion":
            raise where.error("derate lowers the current against depletion; use it only for 'depletion'")
        if body is not None:
            for key, value in body.items():
                if key == "action":
                    continue
                if key in WATCH_RESUME:
                    if action != "suspend":
                        raise value.error(f"'{key}' is a resume condition: only a 'suspend' rule takes it")
                    dim = WATCH_RESUME[key][0]
                    params[key] = value.quantity(dim, non_negative=True)
                    continue
                dim = spec[key][0]
                number = value.quantity(dim, positive=True)
                if key in ("threshold", "min_fraction", "fraction", "polarization_drop", "collapse") and number >= 1:
                    raise value.error(f"must be below 1 (a fraction), got '{value.value}'")
                params[key] = number
        rules[name] = WatchRule(action, MappingProxyType(params))
    return MappingProxyType(rules)


def _steps(f: Field, ctx: _Context) -> None:
    for item in f.sequence():
        item.mapping(STEP_KINDS)
        if len(item.value) != 1:
            raise item.error(f"a step has exactly one of: {', '.join(STEP_KINDS)}; got {', '.join(item.value)}")
        kind, body = next(iter(item.items()))
        if kind == "repeat":
            _repeat(body, ctx)
            continue
        ctx.template += 1
        if kind == "pulse":
            _pulse(body, ctx)
        else:
            _simple_step(kind, body, ctx)
        if len(ctx.steps) > MAX_STEPS:
            raise item.error(f"the schedule expands to more than {MAX_STEPS:,} steps")


def _repeat(f: Field, ctx: _Context) -> None:
    f.mapping(("count", "steps"), required=("count", "steps"))
    count_f = f["count"]
    if count_f.value in ("forever", "inf", float("inf")):
        raise count_f.error("a repeat must end: give a whole number of repetitions")
    count = count_f.integer(minimum=1)
    start_template, start = ctx.template, len(ctx.steps)
    _steps(f["steps"], ctx)
    body = ctx.steps[start:]
    gotos = [g for g in ctx.gotos if g[0] >= start]
    if not body:
        raise f["steps"].error("a repeat needs at least one step")
    if len(body) * count + start > MAX_STEPS:
        raise count_f.error(f"the schedule expands to more than {MAX_STEPS:,} steps")
    for k in range(1, count):
        offset = k * len(body)
        for s in body:
            ctx.steps.append(replace(s, index=s.index + offset))
        ctx.gotos.extend((i + offset, name, label) for i, name, label in gotos)
    del start_template


def _until(f: Field | None, ctx: _Context, allowed: tuple[str, ...]) -> Until:
    if f is None:
        return Until()
    f.mapping(allowed)
    values: dict[str, Any] = {}
    for key, child in f.items():
        name = TERMINATION_FIELDS[key]
        if key == "capacity" and child.value == "previous":
            values["capacity_previous"] = True
        elif key == "time":
            values[name] = child.quantity(u.TIME, positive=True)
        elif key == "capacity":
            values[name] = ctx.charge(child, "a capacity")
        elif key.startswith("voltage"):
            values[name] = child.quantity(u.VOLTAGE)
        elif key.startswith("dv_dt"):
            values[name] = child.quantity(u.VOLTAGE / u.TIME, positive=True)
        else:
            values[name] = ctx.current(child)
    return Until(**values)


GAP_RULES = {"continue": "remaining", "restart": "restart", "stop": "stop"}
"""``on: {controller_gap: ...}``: what a resumed station run does with the step its controller died in."""


def _actions(f: Field | None, until: Until, index: int, ctx: _Context) -> dict[str, Action]:
    if f is None:
        return {}
    f.mapping((*until.names(), "controller_gap"))
    out: dict[str, Action] = {}
    for key, child in f.items():
        value = child.value
        if key == "controller_gap":
            child.text(tuple(GAP_RULES))
            continue
        if value in ("next", "stop"):
            out[key] = Action(value)
        elif isinstance(value, str) and value.startswith("goto "):
            out[key] = Action("goto", label=value.removeprefix("goto ").strip())
            ctx.gotos.append((index, key, child))
        elif isinstance(value, dict):
            child.mapping(("goto", "times"), required=("goto",))
            times = child.get("times")
            out[key] = Action("goto", label=child["goto"].text(), times=times.integer(minimum=1) if times else None)
            ctx.gotos.append((index, key, child))
        else:
            raise child.error(f"expected next, stop, 'goto LABEL' or {{goto: LABEL, times: N}}, got '{value}'")
    return out


def _common(f: Field, ctx: _Context, kind: str, until: Until) -> dict[str, Any]:
    index = len(ctx.steps)
    label = f.get("label")
    resume = f.get("resume")
    on = f.get("on")
    gap = on.get("controller_gap") if on is not None and isinstance(on.value, dict) else None
    if resume is not None and gap is not None:
        raise gap.error("give either 'resume' or 'on: {controller_gap: ...}', not both")
    step_limits = f.get("limits")
    return {
        "index": index,
        "label": label.text() if label else None,
        "on": _actions(f.get("on"), until, index, ctx),
        "resume": resume.text(("remaining", "restart", "stop")) if resume else (
            GAP_RULES[gap.text(tuple(GAP_RULES))] if gap else "remaining"
        ),
        "limits": _limits(step_limits, ctx) if step_limits else None,
        "line": f.line,
        "template": ctx.template - 1,
    }


def _simple_step(kind: str, f: Field, ctx: _Context) -> None:
    if kind == "rest" and not isinstance(f.value, dict):
        until = Until(time_s=f.quantity(u.TIME, positive=True))
        ctx.steps.append(Step(len(ctx.steps), "rest", until, line=f.line, template=ctx.template - 1))
        return
    if kind == "rest":
        f.mapping(COMMON_STEP_KEYS, required=("until",))
        until = _until(f["until"], ctx, ("time", "dv_dt_below", "voltage_above", "voltage_below"))
        ctx.steps.append(Step(kind="rest", until=until, **_common(f, ctx, kind, until)))
    elif kind in ("plate", "strip"):
        f.mapping((*COMMON_STEP_KEYS, "current"), required=("current", "until"))
        allowed = ("time", "capacity", "voltage_above", "voltage_below", "dv_dt_above")
        until = _until(f["until"], ctx, allowed)
        sign = -1.0 if kind == "plate" else 1.0
        current = sign * ctx.current(f["current"])
        ctx.steps.append(Step(kind=kind, until=until, current_a=current, **_common(f, ctx, kind, until)))  # type: ignore[arg-type]
    elif kind == "hold":
        f.mapping((*COMMON_STEP_KEYS, "voltage"), required=("voltage", "until"))
        until = _until(f["until"], ctx, ("time", "current_below", "capacity"))
        if until.time_s is None and until.capacity_c is None:
            raise f["until"].error("a hold must end on time or capacity (current_below alone may never come)")
        voltage = f["voltage"].quantity(u.VOLTAGE)
        ctx.steps.append(Step(kind="hold", until=until, voltage_v=voltage, **_common(f, ctx, kind, until)))
    elif kind == "pressure":
        f.mapping(("label", "set", "settle"), required=("set",))
        settle = f.get("settle")
        until = Until(time_s=settle.quantity(u.TIME, positive=True) if settle else 60.0)
        pressure = f["set"].quantity(u.PRESSURE, positive=True)
        ctx.steps.append(Step(kind="pressure", until=until, pressure_pa=pressure, **_common(f, ctx, kind, until)))
    if not ctx.steps[-1].until.names():
        raise f.error(f"this {kind} step never ends: give until: time, capacity or a voltage")


def _pulse(f: Field, ctx: _Context) -> None:
    f.mapping(("label", "direction", "current", "width", "rest", "count"), required=("current", "width", "count"))
    direction = f["direction"].text(("plate", "strip")) if f.get("direction") else "plate"
    sign = -1.0 if direction == "plate" else 1.0
    current = sign * ctx.current(f["current"])
    width = f["width"].quantity(u.TIME, positive=True)
    rest = f.get("rest")
    rest_s = rest.quantity(u.TIME, positive=True) if rest else None
    count = f["count"].integer(minimum=1)
    label = f.get("label")
    if len(ctx.steps) + count * (2 if rest_s else 1) > MAX_STEPS:
        raise f["count"].error(f"the schedule expands to more than {MAX_STEPS:,} steps")
    for k in range(count):
        ctx.steps.append(
            Step(len(ctx.steps), direction, Until(time_s=width), current_a=current,  # type: ignore[arg-type]
                 label=label.text() if (label and k == 0) else None, line=f.line, template=ctx.template - 1)
        )  # fmt: skip
        if rest_s:
            ctx.steps.append(Step(len(ctx.steps), "rest", Until(time_s=rest_s), line=f.line, template=ctx.template - 1))


def _resolve_gotos(ctx: _Context) -> None:
    labels: dict[str, list[int]] = {}
    for s in ctx.steps:
        if s.label:
            labels.setdefault(s.label, []).append(s.index)
    for index, key, f in ctx.gotos:
        action = ctx.steps[index].on[key]
        assert action.label is not None
        where = labels.get(action.label)
        if not where:
            known = ", ".join(sorted(labels)) or "none"
            raise f.error(f"no step is labelled '{action.label}' (labels: {known})")
        if len(set(where)) > 1:
            raise f.error(f"label '{action.label}' is inside a repeat; a goto needs a label that occurs once")
        target = where[0]
        if target <= index and action.times is None:
            raise f.error(
                f"a goto back to '{action.label}' can loop without end: write {{goto: {action.label}, times: N}}"
            )
        on = dict(ctx.steps[index].on)
        on[key] = replace(action, target=target)
        ctx.steps[index] = replace(ctx.steps[index], on=on)
