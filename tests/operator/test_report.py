"""The report's figures rendered from a known run: panels, axes, units, data, events; PNGs and the page."""

from __future__ import annotations

import base64
import math
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
from matplotlib.axes import Axes
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure

from licycler.report import (
    FIGURES,
    build_report,
    ce_projection,
    envelope,
    load_run,
    render_figures,
    summary_rows,
)
from tests.operator.conftest import METRICS, PYTHON, KnownRun, with_known_metrics

UNIT = re.compile(r"\((?:[^()]|\([^()]*\))+\)$")
"""An axis label ends with its unit in parentheses: 'Voltage (V)', 'Cycle number (–)'."""

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def figures(known_run: KnownRun) -> dict[str, Figure]:
    return render_figures(with_known_metrics(load_run(known_run.store, known_run.run_id)))


def _panels(fig: Figure) -> list[Axes]:
    return list(fig.axes)


def _noted(ax: Axes) -> str:
    return " ".join(t.get_text() for t in ax.texts)


def test_the_known_run_ran_as_designed(known_run: KnownRun) -> None:
    assert known_run.states == {"ch1": "completed", "ch2": "faulted"}


def test_every_figure_is_there_in_page_order(figures: dict[str, Figure]) -> None:
    assert list(figures) == ["voltage", "profiles", "ce", "depletion", "overpotential", "pressure"]
    assert list(figures) == list(FIGURES)
    panels = {name: len(_panels(fig)) for name, fig in figures.items()}
    assert panels == {"voltage": 2, "profiles": 2, "ce": 2, "depletion": 1, "overpotential": 2, "pressure": 1}


def test_every_axis_has_a_label_with_its_unit(figures: dict[str, Figure]) -> None:
    for name, fig in figures.items():
        assert fig.get_suptitle(), name
        for ax in _panels(fig):
            if ax.get_xlabel() or not ax.get_shared_x_axes().get_siblings(ax)[1:]:
                assert UNIT.search(ax.get_xlabel()), (name, ax.get_xlabel())
            assert UNIT.search(ax.get_ylabel()), (name, ax.get_ylabel())


def test_voltage_panels_plot_the_recorded_voltage_with_steps_shaded(known_run: KnownRun,
                                                                      figures: dict[str, Figure]) -> None:  # fmt: skip
    store = known_run.store
    axes = _panels(figures["voltage"])
    assert [ax.get_title(loc="left").split()[0] for ax in axes] == ["ch1", "ch2"]
    assert axes[-1].get_xlabel() == "Time (min)"  # the run lasts about 40 min
    for ax, channel in zip(axes, ("ch1", "ch2"), strict=True):
        samples = store.samples(known_run.run_id, channel)
        line = ax.get_lines()[0]
        np.testing.assert_allclose(line.get_xdata(), samples.t_s / 60.0)
        np.testing.assert_allclose(line.get_ydata(), samples.voltage_v)
        assert ax.get_ylabel() == "Voltage (V)"
        shaded = [c for c in ax.collections if isinstance(c, PolyCollection)]
        steps = store.steps(known_run.run_id, channel)
        assert sum(len(c.get_paths()) for c in shaded) == sum(1 for s in steps if s["kind"] in ("plate", "strip"))
    assert sum(len(c.get_paths()) for c in axes[0].collections if isinstance(c, PolyCollection)) == 6  # 3 cycles


def test_voltage_panel_marks_the_trip(known_run: KnownRun, figures: dict[str, Figure]) -> None:
    ch1, ch2 = _panels(figures["voltage"])
    trip = next(e for e in known_run.store.events(known_run.run_id, "ch2") if e["kind"] == "trip")
    assert trip["cause"] == "charge_per_step_exceeded"
    vertical = [ln for ln in ch2.get_lines()[1:] if len(set(ln.get_xdata())) == 1]
    assert vertical
    assert math.isclose(vertical[0].get_xdata()[0], trip["time_s"] / 60.0)
    assert "(faulted)" in ch2.get_title(loc="left")
    assert "(completed)" in ch1.get_title(loc="left")
    legend = figures["voltage"].legends[0]
    assert {t.get_text() for t in legend.get_texts()} >= {"plating", "stripping", "trip"}


def test_ce_panel_and_projection_follow_the_cycles_table(known_run: KnownRun, figures: dict[str, Figure]) -> None:
    ax_ce, ax_ret = _panels(figures["ce"])
    cycles = known_run.store.cycles(known_run.run_id, "ch1")
    ce = np.array([c["ce"] for c in cycles])
    assert len(ce) == 3
    line = ax_ce.get_lines()[0]
    np.testing.assert_allclose(line.get_xdata(), [1, 2, 3])
    np.testing.assert_allclose(line.get_ydata(), ce * 100)
    assert ax_ce.get_ylabel() == "Coulombic efficiency (%)"
    retained = ax_ret.get_lines()
    np.testing.assert_allclose(retained[0].get_ydata(), np.cumprod(ce) * 100)
    # projection to 80 %: CE^n more cycles at the mean CE from the last retention: n = ln(0.8 / R) / ln(CE)
    r, c = np.prod(ce), np.mean(ce)
    expected = 3 + math.log(0.8 / r) / math.log(c)
    dashed = next(ln for ln in retained if ln.get_linestyle() == "--")
    assert math.isclose(dashed.get_xdata()[-1], expected, rel_tol=1e-9)
    assert math.isclose(dashed.get_ydata()[-1], 80.0, rel_tol=1e-9)
    assert any(ln.get_ydata()[0] == 80 for ln in retained if len(ln.get_ydata()) == 2)  # the 80 % line


def test_ce_projection_of_a_fading_and_a_flat_cell() -> None:
    fading = ce_projection([1, 2, 3, 4], [0.98, 0.98, 0.98, 0.98])
    assert math.isclose(fading.cycle or 0.0, math.log(0.8) / math.log(0.98), rel_tol=1e-9)  # 11.0 cycles
    assert not fading.measured
    flat = ce_projection([1, 2], [1.0, 1.0])
    assert flat.cycle is None
    gone = ce_projection(list(range(1, 13)), [0.98] * 12)
    assert gone.measured
    assert gone.cycle == 12


def test_monitor_panels_show_the_metrics_and_say_when_absent(known_run: KnownRun, figures: dict[str, Figure]) -> None:
    (ax,) = _panels(figures["depletion"])
    depletion = [(t, v) for t, _c, n, v in METRICS if n == "depletion_index"]
    (line,) = [ln for ln in ax.get_lines() if ln.get_label() == "ch1"]
    np.testing.assert_allclose(line.get_xdata(), [t / 60.0 for t, _ in depletion])
    np.testing.assert_allclose(line.get_ydata(), [v for _, v in depletion])
    assert ax.get_ylabel() == "Depletion index (–)"
    ax_n, ax_p = _panels(figures["overpotential"])
    nucleation = next(ln for ln in ax_n.get_lines() if ln.get_label() == "ch1 nucleation")
    np.testing.assert_allclose(nucleation.get_ydata(), [61.0, 52.0])  # |eta| in mV per cycle
    assert ax_n.get_ylabel() == "Overpotential (mV)"
    plating = next(ln for ln in ax_p.get_lines() if ln.get_label() == "ch1 plating")
    cycles = known_run.store.cycles(known_run.run_id, "ch1")
    np.testing.assert_allclose(plating.get_ydata(), [abs(c["mean_voltage_plate_v"]) * 1e3 for c in cycles])


def test_pressure_comes_from_the_samples_else_from_the_metrics(known_run: KnownRun) -> None:
    data = with_known_metrics(load_run(known_run.store, known_run.run_id))
    ch1 = data.channels[0]
    recorded = ch1.samples.pressure_pa
    (ax,) = _panels(render_figures(data)["pressure"])
    assert ax.get_ylabel() == "Stack pressure (MPa)"
    line = next(ln for ln in ax.get_lines() if ln.get_label() == "ch1")
    if recorded is not None and np.isfinite(recorded).any():  # the engine records the rig with the samples
        np.testing.assert_allclose(line.get_ydata(), recorded[np.isfinite(recorded)] / 1e6)
    ch1.samples.pressure_pa = None
    (ax,) = _panels(render_figures(data)["pressure"])
    line = next(ln for ln in ax.get_lines() if ln.get_label() == "ch1")
    np.testing.assert_allclose(line.get_xdata(), [10.0, 20.0, 30.0])  # min
    np.testing.assert_allclose(line.get_ydata(), [1.0, 0.95, 0.9])  # MPa


def test_panels_without_data_say_why(known_run: KnownRun) -> None:
    data = load_run(known_run.store, known_run.run_id)
    for ch in data.channels:
        ch.metrics = {}
        ch.samples.pressure_pa = None  # a cell without a pressure rig
    figs = render_figures(data)
    assert "no depletion index" in _noted(_panels(figs["depletion"])[0])
    assert "no overpotential metrics" in _noted(_panels(figs["overpotential"])[0])
    assert "no stack pressure" in _noted(_panels(figs["pressure"])[0])
    for fig in figs.values():
        for ax in _panels(fig):
            assert UNIT.search(ax.get_ylabel())


def test_profiles_are_voltage_against_areal_capacity(known_run: KnownRun, figures: dict[str, Figure]) -> None:
    ax = _panels(figures["profiles"])[0]
    assert ax.get_xlabel() == "Areal capacity (mAh/cm²)"
    plated = [ln for ln in ax.get_lines() if ln.get_linestyle() == "-"]
    assert len(plated) == 3  # one plating per cycle
    # every plating passes 0.2 mAh/cm^2 (its capacity), in mV below zero
    for ln in plated:
        assert math.isclose(max(ln.get_xdata()), 0.2, rel_tol=0.02)
        assert np.median(ln.get_ydata()) < 0


def test_summary_rows(known_run: KnownRun) -> None:
    rows = {r["channel"]: r for r in summary_rows(load_run(known_run.store, known_run.run_id))}
    assert rows["ch1"]["cycles"] == 3
    assert rows["ch1"]["status"] == "completed"
    assert rows["ch1"]["trips"] == 0
    assert rows["ch2"]["status"] == "faulted"
    assert rows["ch2"]["trips"] == 1
    assert 0.5 < rows["ch1"]["pressure_min_mpa"] < 1.5  # about the li-cu scenario's 1 MPa
    ce = [c["ce"] for c in known_run.store.cycles(known_run.run_id, "ch1")]
    assert rows["ch1"]["ce_last"] == pytest.approx(ce[-1] * 100)


def test_envelope_keeps_every_spike() -> None:
    t = np.arange(1_000_000, dtype=np.float64)
    y = np.sin(t / 5e4)
    y[123_457] = 5.0
    y[876_543] = -5.0
    tt, yy = envelope(t, y, 2000)
    assert len(tt) <= 2002
    assert np.all(np.diff(tt) >= 0)
    assert yy.max() == 5.0
    assert yy.min() == -5.0
    assert 123_457 in tt
    assert 876_543 in tt


def test_report_files_and_self_contained_page(known_run: KnownRun, tmp_path: Path) -> None:
    report = build_report(known_run.store, known_run.run_id, tmp_path / "out")
    assert set(report.figures) == set(FIGURES)
    for path in report.figures.values():
        assert path.read_bytes().startswith(PNG_MAGIC)
    page = report.html.read_text(encoding="utf-8")
    images = re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", page)
    assert len(images) == len(FIGURES)
    assert all(base64.b64decode(b).startswith(PNG_MAGIC) for b in images)
    assert not re.search(r"(src|href)=['\"]?(https?:|//)", page)  # nothing fetched from elsewhere
    assert "charge_per_step_exceeded" in page
    assert known_run.run_id in page


def test_report_command(known_run: KnownRun, tmp_path: Path) -> None:
    out = subprocess.run([*PYTHON, "report", known_run.run_id, "--db", known_run.url, "--out", str(tmp_path)],
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert str(tmp_path / "report.html") in out.stdout
    assert (tmp_path / "voltage.png").exists()
    listed = subprocess.run([*PYTHON, "report", "--list", "--db", known_run.url], capture_output=True, text=True,
                            timeout=60)  # fmt: skip
    assert known_run.run_id in listed.stdout
    assert "test Li||Cu" in listed.stdout


def test_the_monitors_recorded_metrics_are_what_is_plotted(known_run: KnownRun) -> None:
    """Whatever the monitors wrote to the metrics table for this run is what the depletion panel shows."""
    data = load_run(known_run.store, known_run.run_id)
    rows = [r for r in known_run.store.metrics(known_run.run_id, "ch1", "depletion_index") if r["value"] is not None]
    (ax,) = _panels(render_figures(data)["depletion"])
    lines = [ln for ln in ax.get_lines() if ln.get_label() == "ch1"]
    if not rows:  # recorded without monitors: the panel says so
        assert not lines
        assert "no depletion index" in _noted(ax)
        return
    np.testing.assert_allclose(lines[0].get_ydata(), [r["value"] for r in rows])
    assert all(0.0 <= r["value"] <= 1.0 for r in rows)
