"""The report as files: a PNG per figure, ``summary.json``, and one self-contained HTML page
(figures embedded as base64 PNG, no external resource)."""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from licycler.report.data import RunData, load_run
from licycler.report.figures import FIGURES, render_figures
from licycler.report.summary import SUMMARY_COLUMNS, summary_rows
from licycler.store.sql import Store

__all__ = ["DPI", "Report", "build_report", "default_report_dir", "html_page", "write_report"]

DPI = 130
"""Resolution of the PNG figures (dots per inch; the figures are 10 in wide)."""

MAX_EVENT_ROWS = 300
"""Alarm, finding and decision rows listed on the page (the rest are counted)."""

CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;max-width:1100px;color:#222;
padding:0 1em}
h1{font-size:1.5em;margin-bottom:.2em}h2{font-size:1.15em;margin-top:1.8em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:.85em;margin:.5em 0}
td,th{border:1px solid #ccc;padding:.25em .5em;text-align:right}
th{background:#f3f3f3}td.l,th.l{text-align:left}.meta td{text-align:left}.bad{color:#b00;font-weight:bold}
.warn{color:#a66b00}figure{margin:1em 0}figcaption{font-size:.9em;color:#555}img{max-width:100%}
pre{background:#f7f7f7;padding:.7em;font-size:.8em;overflow-x:auto}
"""


@dataclass(frozen=True)
class Report:
    """Where a report was written: the HTML page, the PNG figures (by name) and the summary JSON."""

    run_id: str
    html: Path
    figures: dict[str, Path]
    summary: Path


def default_report_dir(db_url: str, run_id: str) -> Path:
    """``reports/RUN`` beside an SQLite database file, else ``licycler-data/reports/RUN``."""
    if db_url.startswith("sqlite:///") and not db_url.startswith("sqlite:///:memory:"):
        return Path(db_url.removeprefix("sqlite:///")).parent / "reports" / run_id
    return Path("licycler-data") / "reports" / run_id


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 1000 else f"{value:.0f}"
    return html.escape(str(value))


def _summary_table(rows: list[dict[str, Any]]) -> str:
    head = "".join(f"<th{' class=l' if k in ('channel', 'status') else ''}>{html.escape(v)}</th>"
                   for k, v in SUMMARY_COLUMNS.items())  # fmt: skip
    body = []
    for row in rows:
        cells = []
        for key in SUMMARY_COLUMNS:
            value = row.get(key)
            text = _cell(value)
            if key == "cycles_to_80" and value is not None:
                text += " (measured)" if row.get("cycles_to_80_measured") else " (projected)"
            css = ""
            if key == "status" and value in ("faulted", "aborted"):
                css = " class='l bad'"
            elif key in ("channel", "status"):
                css = " class=l"
            elif key == "trips" and value:
                css = " class=bad"
            cells.append(f"<td{css}>{text}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _events_table(data: RunData) -> str:
    rows = sorted(((e["time_s"], ch.name, e) for ch in data.channels for e in ch.alarms()), key=lambda r: r[0])
    if not rows:
        return "<p>No trip, finding or decision: every channel ran without an alarm.</p>"
    out = ["<table><tr><th>time (h)</th><th class=l>channel</th><th class=l>kind</th><th class=l>cause</th>"
           "<th class=l>message</th></tr>"]  # fmt: skip
    for t, name, e in rows[:MAX_EVENT_ROWS]:
        css = "bad" if e["kind"] in ("trip", "estop") else "warn"
        out.append(f"<tr><td>{t / 3600:.3f}</td><td class=l>{html.escape(name)}</td><td class='l {css}'>"
                   f"{html.escape(e['kind'])}</td><td class=l>{html.escape(e['cause'])}</td>"
                   f"<td class=l>{html.escape(e['message'])}</td></tr>")  # fmt: skip
    out.append("</table>")
    if len(rows) > MAX_EVENT_ROWS:
        out.append(f"<p>… and {len(rows) - MAX_EVENT_ROWS} more.</p>")
    return "".join(out)


def html_page(data: RunData, pngs: dict[str, bytes], summary: list[dict[str, Any]]) -> str:
    """The self-contained page: run metadata, summary, figures (base64), alarms, schedule text."""
    run = data.run
    created = dt.datetime.fromtimestamp(float(run["created_unix_s"]), tz=dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    meta = [("run", run["run_id"]), ("schedule", f"{run['schedule_name']} ({run['schedule_source']})"),
            ("mode", "hardware-free (digital twin)" if run["mode"] == "sim" else run["mode"]),
            ("status", run["status"]), ("started", created), ("channels", len(data.channels)),
            ("licycler", run["software_version"]), ("schedule sha256", run["schedule_sha256"][:16])]  # fmt: skip
    parts = [
        "<!DOCTYPE html><html lang=en><head><meta charset=utf-8>",
        f"<title>licycler report {html.escape(data.run_id)}</title><style>{CSS}</style></head><body>",
        f"<h1>{html.escape(str(run['name']))}</h1>",
        "<table class=meta>" + "".join(f"<tr><th class=l>{k}</th><td>{_cell(v)}</td></tr>" for k, v in meta)
        + "</table>",
        "<h2>Summary</h2>", _summary_table(summary),
    ]  # fmt: skip
    for name, (caption, _make) in FIGURES.items():
        if name not in pngs:
            continue
        b64 = base64.b64encode(pngs[name]).decode("ascii")
        title = html.escape(caption)
        parts.append(f"<h2>{title}</h2><figure><img alt='{title}' src='data:image/png;base64,{b64}'>"
                     f"<figcaption>{title}</figcaption></figure>")  # fmt: skip
    parts += ["<h2>Alarms, findings and decisions</h2>", _events_table(data)]
    parts.append(f"<h2>Schedule</h2><details><summary>{html.escape(str(run['schedule_source']))}</summary>"
                 f"<pre>{html.escape(str(run['schedule_text']))}</pre></details>")  # fmt: skip
    if run.get("scenario_text"):
        parts.append(f"<h2>Scenario</h2><details><summary>digital-twin scenario</summary>"
                     f"<pre>{html.escape(str(run['scenario_text']))}</pre></details>")  # fmt: skip
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(data: RunData, out_dir: str | Path) -> Report:
    """Render every figure of ``data`` and write the PNGs, ``summary.json`` and ``report.html`` to ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    figures = render_figures(data)
    pngs = {name: _png(fig) for name, fig in figures.items()}
    paths = {}
    for name, content in pngs.items():
        paths[name] = out / f"{name}.png"
        paths[name].write_bytes(content)
    summary = summary_rows(data)
    summary_path = out / "summary.json"
    summary_path.write_text(json.dumps({"run_id": data.run_id, "channels": summary}, indent=1) + "\n", encoding="utf-8")
    page = out / "report.html"
    page.write_text(html_page(data, pngs, summary), encoding="utf-8")
    return Report(data.run_id, page, paths, summary_path)


def build_report(store: Store, run_id: str, out_dir: str | Path | None = None) -> Report:
    """Read ``run_id`` from ``store`` and write its report (default directory: :func:`default_report_dir`)."""
    data = load_run(store, run_id)
    return write_report(data, out_dir if out_dir is not None else default_report_dir(store.url, run_id))
