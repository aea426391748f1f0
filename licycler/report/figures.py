"""The report's figures (matplotlib, object API on the Agg canvas; no pyplot state, no display).

Each function takes a :class:`~licycler.report.data.RunData` and returns a
:class:`~matplotlib.figure.Figure` whose every axis is labelled with its unit. A quantity that the
run did not record (no monitors, no pressure rig) keeps its panel, with a note saying why it is empty.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt
from matplotlib import colormaps as cmaps
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from licycler.report.data import ChannelData, RunData

__all__ = [
    "FIGURES",
    "ce_figure",
    "depletion_figure",
    "envelope",
    "overpotential_figure",
    "pressure_figure",
    "profile_figure",
    "render_figures",
    "time_scale",
    "voltage_figure",
]

FloatArray = npt.NDArray[np.float64]

STEP_COLOURS = {"plate": ("#4c72b0", "plating"), "strip": ("#dd8452", "stripping"), "hold": ("#55a868", "hold"),
                "pressure": ("#8172b3", "pressure step")}  # fmt: skip
EVENT_STYLES = {"trip": ("red", "v", "trip"), "estop": ("red", "X", "emergency stop"),
                "finding": ("#e6a100", "^", "monitor finding"), "decision": ("#7a2fa8", "D", "decision")}  # fmt: skip
MAX_POINTS = 20_000
"""Points per channel in a time plot; longer records are reduced to their min/max envelope."""
MAX_SHADED_STEPS = 5_000
"""Beyond this many steps per channel the step shading is left out (it would be a solid block)."""
WIDTH_IN = 10.0
NO_DATA_STYLE = {"ha": "center", "va": "center", "fontsize": 10, "color": "0.35", "wrap": True}


def time_scale(end_s: float) -> tuple[float, str]:
    """(seconds per unit, unit) for a time axis that ends at ``end_s`` (s): s, min, h or d."""
    if end_s > 4 * 86400:
        return 86400.0, "d"
    if end_s > 2 * 3600:
        return 3600.0, "h"
    if end_s > 120:
        return 60.0, "min"
    return 1.0, "s"


def envelope(t: FloatArray, y: FloatArray, max_points: int = MAX_POINTS) -> tuple[FloatArray, FloatArray]:
    """At most about ``max_points`` points that keep every bin's minimum and maximum in time order
    (spikes and dips survive the reduction)."""
    n = len(t)
    if n <= max_points:
        return t, y
    k = int(np.ceil(n / (max_points // 2)))
    rows = int(np.ceil(n / k))
    padded = np.concatenate((y, np.full(rows * k - n, y[-1])))
    block = padded.reshape(rows, k)
    base = np.arange(rows) * k
    lo, hi = base + block.argmin(axis=1), base + block.argmax(axis=1)
    idx = np.minimum(np.sort(np.stack((lo, hi), axis=1), axis=1).ravel(), n - 1)
    return t[idx], y[idx]


def _note(ax: Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, **NO_DATA_STYLE)  # type: ignore[arg-type]


def _colour(k: int) -> str:
    return f"C{k % 10}"


def _new(rows: int, cols: int = 1, *, height_in: float, sharex: bool = False) -> tuple[Figure, list[Axes]]:
    fig = Figure(figsize=(WIDTH_IN, height_in), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, cols, sharex=sharex, squeeze=False)
    return fig, list(axes.ravel())


def _shade_steps(ax: Axes, ch: ChannelData, scale: float) -> set[str]:
    if len(ch.steps) > MAX_SHADED_STEPS:
        return set()
    shaded = set()
    for kind, (colour, _label) in STEP_COLOURS.items():
        spans = [(s["start_s"] / scale, (s["end_s"] - s["start_s"]) / scale) for s in ch.steps if s["kind"] == kind]
        if spans:
            ax.broken_barh(spans, (0, 1), transform=ax.get_xaxis_transform(), facecolors=colour, alpha=0.13,
                           linewidth=0)  # fmt: skip
            shaded.add(kind)
    return shaded


def _mark_events(ax: Axes, ch: ChannelData, scale: float) -> set[str]:
    marked = set()
    for kind, (colour, marker, _label) in EVENT_STYLES.items():
        times = np.array([e["time_s"] for e in ch.events if e["kind"] == kind and not _routine(e)],
                         dtype=np.float64) / scale  # fmt: skip
        if not times.size:
            continue
        if kind in ("trip", "estop"):
            for t in np.unique(times):
                ax.axvline(t, color=colour, linewidth=1.0, alpha=0.8)
        ax.scatter(times, np.full(times.size, 0.97), transform=ax.get_xaxis_transform(), color=colour, marker=marker,
                   s=28, zorder=5, clip_on=False)  # fmt: skip
        marked.add(kind)
    return marked


def _routine(event: dict[str, object]) -> bool:
    """A monitor's decision to ``continue`` (listed in the report's table, not marked on figures)."""
    return event["kind"] == "decision" and event["cause"] == "continue"


def voltage_figure(data: RunData) -> Figure:
    """Cell voltage against time, one panel per channel, steps shaded and events marked."""
    scale, unit = time_scale(data.end_s)
    n = max(len(data.channels), 1)
    fig, axes = _new(n, height_in=1.2 + 2.0 * n, sharex=True)
    shaded: set[str] = set()
    marked: set[str] = set()
    for k, (ax, ch) in enumerate(zip(axes, data.channels, strict=False)):
        if len(ch.samples):
            t, v = envelope(ch.samples.t_s, ch.samples.voltage_v)
            ax.plot(t / scale, v, color=_colour(k), linewidth=0.7)
        else:
            _note(ax, "no samples recorded")
        shaded |= _shade_steps(ax, ch, scale)
        marked |= _mark_events(ax, ch, scale)
        ax.set_ylabel("Voltage (V)")
        ax.set_title(f"{ch.name} ({ch.status})", loc="left", fontsize=10)
        ax.grid(alpha=0.3)
    for ax in axes[len(data.channels) :]:
        ax.set_ylabel("Voltage (V)")
        _note(ax, "no channels")
    axes[-1].set_xlabel(f"Time ({unit})")
    handles: list[Patch | Line2D] = [Patch(facecolor=STEP_COLOURS[k][0], alpha=0.3, label=STEP_COLOURS[k][1])
                                     for k in STEP_COLOURS if k in shaded]  # fmt: skip
    handles += [Line2D([], [], color=c, marker=m, linestyle="", label=label)
                for k, (c, m, label) in EVENT_STYLES.items() if k in marked]  # fmt: skip
    if handles:
        fig.legend(handles=handles, loc="outside upper right", ncols=len(handles), fontsize=8, frameon=False)
    fig.suptitle("Voltage against time", x=0.02, ha="left", fontweight="bold")
    return fig


def _step_kinds(ch: ChannelData) -> npt.NDArray[np.str_]:
    """The kind of step (``plate``, ``strip`` ...) each sample was taken in."""
    if not ch.steps or not len(ch.samples):
        return np.full(len(ch.samples), "", dtype="<U8")
    seqs = np.array([s["step_seq"] for s in ch.steps], dtype=np.int64)
    kinds = np.array([s["kind"] for s in ch.steps], dtype="<U8")
    order = np.argsort(seqs)
    pos = np.clip(np.searchsorted(seqs[order], ch.samples.step_seq), 0, len(seqs) - 1)
    found = seqs[order][pos] == ch.samples.step_seq
    return np.where(found, kinds[order][pos], "")


def profile_figure(data: RunData, max_cycles: int = 5, max_channels: int = 4) -> Figure:
    """Voltage against areal capacity for a few cycles (first, last and between), plating and
    stripping, one panel per channel: the nucleation dip, the plateaus and their drift."""
    chans = data.channels[:max_channels]
    fig, axes = _new(1, max(len(chans), 1), height_in=3.8)
    for ax, ch in zip(axes, chans, strict=False):
        s = ch.samples
        kinds = _step_kinds(ch)
        sourcing = (kinds == "plate") | (kinds == "strip")
        cycles = np.unique(s.cycle[sourcing]) if len(s) else np.empty(0, dtype=np.int64)
        if not cycles.size:
            _note(ax, "no plating or stripping recorded")
        else:
            pick = cycles[np.unique(np.linspace(0, cycles.size - 1, min(max_cycles, cycles.size)).round().astype(int))]
            colours = [cmaps["viridis"](x) for x in np.linspace(0.0, 0.85, pick.size)]
            per_cm2 = 3.6 * ch.area_m2 * 1e4  # C per mAh/cm^2
            for colour, c in zip(colours, pick, strict=True):
                for kind, style in (("plate", "-"), ("strip", "--")):
                    m = (s.cycle == c) & (kinds == kind)
                    if m.any():
                        ax.plot(np.abs(s.charge_c[m]) / per_cm2, s.voltage_v[m] * 1e3, linestyle=style, color=colour,
                                linewidth=0.9, label=f"cycle {c}" if kind == "plate" else None)  # fmt: skip
            v = s.voltage_v[sourcing] * 1e3
            lo, hi = np.percentile(v, [0.5, 99.5])
            pad = 0.15 * max(hi - lo, 1.0)
            ax.set_ylim(lo - pad, hi + pad)
            ax.legend(fontsize=7, frameon=False)
        ax.set_title(f"{ch.name} (solid: plating, dashed: stripping)", loc="left", fontsize=9)
        ax.set_xlabel("Areal capacity (mAh/cm²)")
        ax.set_ylabel("Voltage (mV)")
        ax.grid(alpha=0.3)
    if not chans:
        axes[0].set_xlabel("Areal capacity (mAh/cm²)")
        axes[0].set_ylabel("Voltage (mV)")
        _note(axes[0], "no channels")
    fig.suptitle("Voltage profiles of selected cycles", x=0.02, ha="left", fontweight="bold")
    return fig


def ce_figure(data: RunData) -> Figure:
    """Coulombic efficiency per cycle, and the lithium retained (cumulative CE) with its projection to 80 %."""
    fig, (ax_ce, ax_ret) = _new(1, 2, height_in=4.0)
    any_ce = False
    for k, ch in enumerate(data.channels):
        cycles, ce = ch.ce()
        if not ce:
            continue
        any_ce = True
        colour = _colour(k)
        ax_ce.plot(cycles, np.asarray(ce) * 100, marker="o", markersize=3, linewidth=0.9, color=colour, label=ch.name)
        proj = ch.projection()
        ax_ret.plot(proj.cycles, proj.retained * 100, marker="o", markersize=3, linewidth=0.9, color=colour,
                    label=ch.name)  # fmt: skip
        if proj.cycle is not None and proj.measured:
            ax_ret.annotate(f"{proj.cycle:.0f}", (proj.cycle, proj.retention * 100), textcoords="offset points",
                            xytext=(4, 6), fontsize=8, color=colour)  # fmt: skip
        elif proj.cycle is not None and proj.ce_recent is not None:
            last = float(proj.cycles[-1])
            ahead = np.linspace(last, proj.cycle, 50)
            ax_ret.plot(ahead, proj.retained[-1] * proj.ce_recent ** (ahead - last) * 100, linestyle="--",
                        color=colour, linewidth=0.9)  # fmt: skip
            ax_ret.plot([proj.cycle], [proj.retention * 100], marker="x", color=colour, markersize=7)
            ax_ret.annotate(f"{proj.cycle:.0f}", (proj.cycle, proj.retention * 100), textcoords="offset points",
                            xytext=(4, 6), fontsize=8, color=colour)  # fmt: skip
    ax_ce.set_xlabel("Cycle number (–)")
    ax_ce.set_ylabel("Coulombic efficiency (%)")
    ax_ce.set_title("CE per cycle", loc="left", fontsize=10)
    ax_ret.axhline(80, color="0.3", linestyle=":", linewidth=1)
    ax_ret.set_xlabel("Cycle number (–)")
    ax_ret.set_ylabel("Lithium retained, Π CE (%)")
    ax_ret.set_title("Retention and projection to 80 % (dashed)", loc="left", fontsize=10)
    for ax in (ax_ce, ax_ret):
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if any_ce:
            ax.legend(fontsize=8, frameon=False)
        else:
            _note(ax, "no complete cycle with plating and stripping")
    fig.suptitle("Coulombic efficiency", x=0.02, ha="left", fontweight="bold")
    return fig


def depletion_figure(data: RunData) -> Figure:
    """The depletion index (0 fresh electrolyte at the surface, 1 depleted) against time."""
    scale, unit = time_scale(data.end_s)
    fig, (ax,) = _new(1, height_in=3.4)
    found = False
    for k, ch in enumerate(data.channels):
        t, d, _ = ch.metric("depletion_index")
        if t.size:
            found = True
            tt, dd = envelope(t, d)
            ax.plot(tt / scale, dd, color=_colour(k), linewidth=0.8, label=ch.name)
    ax.axhline(1.0, color="red", linestyle=":", linewidth=1, label="depleted")
    ax.set_ylim(-0.02, 1.08)
    ax.set_xlabel(f"Time ({unit})")
    ax.set_ylabel("Depletion index (–)")
    ax.grid(alpha=0.3)
    if found:
        ax.legend(fontsize=8, frameon=False, loc="upper left")
    else:
        _note(ax, "no depletion index in this run (recorded by the depletion monitor)")
    fig.suptitle("Approach to Sand's time: depletion index", x=0.02, ha="left", fontweight="bold")
    return fig


def _per_cycle(t: FloatArray, value: FloatArray, cycle: npt.NDArray[np.int64]) -> tuple[FloatArray, FloatArray]:
    """The last value of each cycle (cycles ascending)."""
    if not value.size:
        return np.empty(0), np.empty(0)
    order = np.lexsort((t, cycle))
    c, v = cycle[order], value[order]
    last = np.r_[c[1:] != c[:-1], True]
    return c[last].astype(np.float64), v[last]


OVERPOTENTIALS = (
    ("nucleation_overpotential_v", "o", "-", "nucleation"),
    ("plateau_overpotential_plate_v", "s", "--", "plateau, plating"),
    ("plateau_overpotential_strip_v", "^", ":", "plateau, stripping"),
    ("strip_end_overpotential_v", "x", "-.", "end of stripping"),
)
"""Monitor metrics of the overpotential panel: (quantity, marker, line style, label)."""


def overpotential_figure(data: RunData) -> Figure:
    """Nucleation, plateau and end-of-strip overpotentials per cycle (the overpotential monitor's
    metrics; a rising end-of-strip overpotential is the sign of dead lithium), and the mean polarization of each
    plating and stripping half-cycle (from the cycles' charge-weighted mean voltages)."""
    fig, (ax_n, ax_p) = _new(1, 2, height_in=4.0)
    found = False
    for k, ch in enumerate(data.channels):
        colour = _colour(k)
        for quantity, marker, style, label in OVERPOTENTIALS:
            c, v = _per_cycle(*ch.metric(quantity))
            if c.size:
                found = True
                ax_n.plot(c, np.abs(v) * 1e3, marker=marker, linestyle=style, markersize=3, linewidth=0.9,
                          color=colour, label=f"{ch.name} {label}")  # fmt: skip
    ax_n.set_xlabel("Cycle number (–)")
    ax_n.set_ylabel("Overpotential (mV)")
    ax_n.set_title("Nucleation and plateau overpotential", loc="left", fontsize=10)
    if found:
        ax_n.legend(fontsize=7, frameon=False, ncols=2, loc="best")
    else:
        _note(ax_n, "no overpotential metrics in this run\n(recorded by the overpotential monitor)")
    any_cycle = False
    for k, ch in enumerate(data.channels):
        rows = [c for c in ch.cycles if c["mean_voltage_plate_v"] is not None or c["mean_voltage_strip_v"] is not None]
        if not rows:
            continue
        any_cycle = True
        cyc = [r["cycle"] for r in rows]
        plate = [_mv(r["mean_voltage_plate_v"]) for r in rows]
        strip = [_mv(r["mean_voltage_strip_v"]) for r in rows]
        ax_p.plot(cyc, plate, marker="v", markersize=3, linewidth=0.9, color=_colour(k), label=f"{ch.name} plating")
        ax_p.plot(cyc, strip, marker="^", markersize=3, linewidth=0.9, linestyle="--", color=_colour(k),
                  label=f"{ch.name} stripping")  # fmt: skip
    ax_p.set_xlabel("Cycle number (–)")
    ax_p.set_ylabel("Mean |V| per half-cycle (mV)")
    ax_p.set_title("Polarization", loc="left", fontsize=10)
    if any_cycle:
        ax_p.legend(fontsize=8, frameon=False)
    else:
        _note(ax_p, "no complete cycle")
    for ax in (ax_n, ax_p):
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.suptitle("Overpotentials per cycle", x=0.02, ha="left", fontweight="bold")
    return fig


def _mv(volts: float | None) -> float:
    return float("nan") if volts is None else abs(volts) * 1e3


def pressure_figure(data: RunData) -> Figure:
    """Stack pressure against time, trips marked."""
    scale, unit = time_scale(data.end_s)
    fig, (ax,) = _new(1, height_in=3.4)
    found = False
    for k, ch in enumerate(data.channels):
        t, p = ch.pressure()
        if t.size:
            found = True
            tt, pp = envelope(t, p)
            ax.plot(tt / scale, pp / 1e6, color=_colour(k), linewidth=0.8, label=ch.name)
            _mark_events(ax, ch, scale)
    ax.set_xlabel(f"Time ({unit})")
    ax.set_ylabel("Stack pressure (MPa)")
    ax.grid(alpha=0.3)
    if found:
        ax.legend(fontsize=8, frameon=False)
    else:
        _note(ax, "no stack pressure recorded in this run")
    fig.suptitle("Stack pressure", x=0.02, ha="left", fontweight="bold")
    return fig


FIGURES: dict[str, tuple[str, Callable[[RunData], Figure]]] = {
    "voltage": ("Voltage against time", voltage_figure),
    "profiles": ("Voltage profiles of selected cycles", profile_figure),
    "ce": ("Coulombic efficiency and projection to 80 %", ce_figure),
    "depletion": ("Depletion index", depletion_figure),
    "overpotential": ("Overpotentials per cycle", overpotential_figure),
    "pressure": ("Stack pressure", pressure_figure),
}
"""Every figure of a report: file stem -> (caption, function), in the order of the page."""


def render_figures(data: RunData) -> dict[str, Figure]:
    """Every figure of :data:`FIGURES` for ``data``."""
    return {name: make(data) for name, (_caption, make) in FIGURES.items()}
