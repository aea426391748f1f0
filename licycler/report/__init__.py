"""Reports of recorded runs: PNG figures (matplotlib, Agg) and one self-contained HTML page.

``build_report(store, run_id, out_dir)`` writes them; ``render_figures(load_run(store, run_id))``
returns the matplotlib figures themselves.
"""

from licycler.report.data import METRIC_ALIASES, CEProjection, ChannelData, RunData, ce_projection, load_run
from licycler.report.figures import (
    FIGURES,
    ce_figure,
    depletion_figure,
    envelope,
    overpotential_figure,
    pressure_figure,
    profile_figure,
    render_figures,
    time_scale,
    voltage_figure,
)
from licycler.report.page import Report, build_report, default_report_dir, html_page, write_report
from licycler.report.summary import SUMMARY_COLUMNS, channel_summary, summary_rows

__all__ = [
    "FIGURES",
    "METRIC_ALIASES",
    "SUMMARY_COLUMNS",
    "CEProjection",
    "ChannelData",
    "Report",
    "RunData",
    "build_report",
    "ce_figure",
    "ce_projection",
    "channel_summary",
    "default_report_dir",
    "depletion_figure",
    "envelope",
    "html_page",
    "load_run",
    "overpotential_figure",
    "pressure_figure",
    "profile_figure",
    "render_figures",
    "summary_rows",
    "time_scale",
    "voltage_figure",
    "write_report",
]
