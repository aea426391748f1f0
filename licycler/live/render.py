"""Drawing the live view with rich: a header with the run's progress, a row per channel, recent alarms."""

from __future__ import annotations

import math
from collections.abc import Sequence

from rich.console import Group, RenderableType
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from licycler.live.model import Alarm, ChannelView

__all__ = ["STATE_STYLES", "format_current", "format_duration", "render_run", "sparkline"]

STATE_STYLES = {
    "idle": "dim", "running": "green", "paused": "yellow", "suspended": "yellow bold", "stopping": "yellow",
    "completed": "blue", "aborted": "magenta", "faulted": "red bold",
}  # fmt: skip
SEVERITY_STYLES = {"alarm": "red bold", "warning": "yellow", "info": "cyan"}
BARS = "▁▂▃▄▅▆▇█"
CE_SPAN = 0.002
"""Smallest CE range (fraction) the CE trend spans: changes below 0.2 % look flat."""


def format_duration(seconds: float | None) -> str:
    """``1:02:03`` (h:mm:ss), ``3 d 4 h`` beyond a day, ``–`` when unknown."""
    if seconds is None or not math.isfinite(seconds):
        return "–"
    seconds = max(seconds, 0.0)
    if seconds >= 86400:
        return f"{int(seconds // 86400)} d {int(seconds % 86400 // 3600)} h"
    s = round(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def format_current(current_a: float | None) -> str:
    """A current with a readable prefix (A, mA, µA, nA)."""
    if current_a is None or not math.isfinite(current_a):
        return "–"
    magnitude = abs(current_a)
    for scale, unit in ((1.0, "A"), (1e-3, "mA"), (1e-6, "µA")):
        if magnitude >= scale:
            return f"{current_a / scale:+.3f} {unit}"
    return f"{current_a / 1e-9:+.3f} nA" if magnitude > 0 else "0 mA"


def sparkline(values: Sequence[float], width: int = 8, min_span: float = 0.0) -> str:
    """The last ``width`` values as bar characters scaled between their min and max, over at least
    ``min_span`` (so that noise on a flat series stays flat)."""
    tail = list(values)[-width:]
    if not tail:
        return ""
    low, high = min(tail), max(tail)
    if high - low < min_span:
        mid = 0.5 * (high + low)
        low, high = mid - 0.5 * min_span, mid + 0.5 * min_span
    if high - low < 1e-12:
        return BARS[3] * len(tail)
    return "".join(BARS[min(int((v - low) / (high - low) * (len(BARS) - 1) + 0.5), len(BARS) - 1)] for v in tail)


def _ce(view: ChannelView, trend: bool = True) -> Text:
    if view.ce_last is None:
        return Text("–", style="dim")
    text = Text(f"{view.ce_last * 100:.2f} %")
    if trend and len(view.ce_history) > 1:
        text.append(" " + sparkline(view.ce_history, min_span=CE_SPAN), style="cyan")
    return text


def _depletion(view: ChannelView) -> Text:
    d = view.depletion_index
    if d is None:
        return Text("–", style="dim")
    style = "green" if d < 0.5 else ("yellow" if d < 0.8 else "red bold")
    return Text(f"{d:.2f}", style=style)


def _pressure(view: ChannelView) -> Text:
    p = view.pressure_pa
    if p is None:
        return Text("–", style="dim")
    return Text(f"{p / 1e6:.3f} MPa" if abs(p) >= 1e5 else f"{p / 1e3:.1f} kPa")


def _progress(fraction: float | None, eta_s: float | None, width: int = 10) -> RenderableType:
    if fraction is None:
        return Text("–", style="dim")
    if width <= 0:
        return Text(f"{fraction * 100:3.0f}% {format_duration(eta_s)}")
    grid = Table.grid(padding=(0, 1))
    grid.add_row(ProgressBar(total=1.0, completed=min(max(fraction, 0.0), 1.0), width=width),
                 Text(f"{fraction * 100:3.0f}% {format_duration(eta_s)}"))  # fmt: skip
    return grid


def _alarm(alarms: Sequence[Alarm]) -> Text:
    if not alarms:
        return Text("ok", style="green")
    last = alarms[-1]
    return Text(f"{last.cause}: {last.message}", style=SEVERITY_STYLES.get(last.severity, ""), overflow="ellipsis")


WIDE_COLUMNS = 150
"""Terminals at least this wide get progress bars and CE sparklines; narrower ones a compact table."""


def render_run(
    title: str, views: Sequence[ChannelView], log: Sequence[tuple[str, Alarm]] = (), width: int = WIDE_COLUMNS
) -> RenderableType:
    """The whole view: title and run progress with ETA, the channel table, the latest alarms.
    ``width`` is the terminal's (columns): below :data:`WIDE_COLUMNS` the table is compact."""
    wide = width >= WIDE_COLUMNS
    live = [v for v in views if v.state not in ("completed", "aborted", "faulted")]
    fractions = [1.0 if v not in live else (v.run_fraction or 0.0) for v in views]  # an ended channel is done
    overall = sum(fractions) / len(fractions) if fractions else 0.0
    etas = [v.eta_run_wall_s for v in live if v.eta_run_wall_s is not None]
    rates = [v.sim_rate for v in views if v.sim_rate is not None]
    pace = f"  ×{sum(rates) / len(rates):,.0f} real time" if rates and sum(rates) / len(rates) > 1.5 else ""
    eta = format_duration(max(etas)) if etas else ("done" if not live else "–")
    head = Table.grid(padding=(0, 2))
    head.add_row(
        Text(title, style="bold", overflow="ellipsis", no_wrap=True),
        ProgressBar(total=1.0, completed=overall if not live else min(overall, 0.999), width=24 if wide else 12),
        Text(f"run {overall * 100:3.0f}%  ETA {eta}{pace}", no_wrap=True),
    )
    table = _wide_table(views) if wide else _compact_table(views)
    parts: list[RenderableType] = [head, table]
    for channel, alarm in log:
        line = f"[{channel}] t={format_duration(alarm.time_s)} {alarm.cause}: {alarm.message}"
        parts.append(Text(line, style=SEVERITY_STYLES.get(alarm.severity, ""), overflow="ellipsis", no_wrap=True))
    return Group(*parts)


def _wide_table(views: Sequence[ChannelView]) -> Table:
    """One line per channel, a column per quantity, progress bars and CE sparklines."""
    table = Table(expand=True, pad_edge=False, header_style="bold")
    for name, kwargs in (
        ("channel", {"no_wrap": True}), ("state", {"no_wrap": True}), ("step", {"ratio": 2, "min_width": 9}),
        ("cycle", {"justify": "right", "no_wrap": True}), ("V", {"justify": "right", "no_wrap": True}),
        ("I", {"justify": "right", "no_wrap": True}), ("CE trend", {"no_wrap": True}),
        ("depletion", {"justify": "right", "no_wrap": True}), ("pressure", {"justify": "right", "no_wrap": True}),
        ("step progress, ETA", {"no_wrap": True}), ("alarms", {"ratio": 3, "min_width": 8, "overflow": "ellipsis"}),
    ):  # fmt: skip
        table.add_column(name, **kwargs)
    for v in views:
        table.add_row(
            v.name, Text(v.state, style=STATE_STYLES.get(v.state, "")), f"{v.step_number}/{v.step_count} {v.step_text}",
            str(v.cycle), "–" if v.voltage_v is None else f"{v.voltage_v:+.4f} V", format_current(v.current_a),
            _ce(v), _depletion(v), _pressure(v), _progress(v.step_fraction, v.eta_step_wall_s), _alarm(v.alarms),
        )  # fmt: skip
    return table


def _compact_table(views: Sequence[ChannelView]) -> Table:
    """Two lines per channel in fewer columns, for terminals narrower than :data:`WIDE_COLUMNS`."""
    table = Table(expand=True, pad_edge=False, header_style="bold")
    for name, kwargs in (
        ("channel\nstate", {"no_wrap": True}),
        ("step\ncycle", {"no_wrap": True, "overflow": "ellipsis", "max_width": 18}),
        ("V\nI", {"justify": "right", "no_wrap": True}), ("CE\ndepletion", {"justify": "right", "no_wrap": True}),
        ("pressure\nstep ETA", {"justify": "right", "no_wrap": True}),
        ("alarms", {"ratio": 1, "min_width": 8, "overflow": "ellipsis"}),
    ):  # fmt: skip
        table.add_column(name, **kwargs)
    for v in views:
        state = Text(v.name + "\n")
        state.append(v.state, style=STATE_STYLES.get(v.state, ""))
        volts = "–" if v.voltage_v is None else f"{v.voltage_v:+.4f} V"
        ce = _ce(v, trend=False)
        ce.append("\n")
        ce.append_text(_depletion(v))
        pressure = _pressure(v)
        pressure.append("\n")
        step_eta = _progress(v.step_fraction, v.eta_step_wall_s, 0)
        pressure.append_text(step_eta if isinstance(step_eta, Text) else Text("–"))
        table.add_row(
            state, f"{v.step_number}/{v.step_count} {v.step_text}\ncycle {v.cycle}",
            f"{volts}\n{format_current(v.current_a)}", ce, pressure, _alarm(v.alarms),
        )  # fmt: skip
    return table
