"""Operator window on the simulated bench: runs, plots equal the file, abort, re-open, close."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from pymeasure.display.Qt import QtCore
from pymeasure.experiment import Procedure

from perovlab_daq.storage import HDF5Results

from .helpers import TEST_PARAMETERS, queue_run

ROOT = Path(__file__).resolve().parents[2]


def _expected(spec, data):
    """Plot coordinates the file's rows should give (finite points only)."""

    def column(axis):
        if axis.column.startswith("__"):
            index = 0 if axis.column == "__first__" else 1
            return np.asarray(data.iloc[:, index], dtype=float)
        return np.asarray(data[axis.column], dtype=float)

    x, y = spec.x.transform(column(spec.x)), spec.y.transform(column(spec.y))
    keep = np.isfinite(x) & np.isfinite(y)
    return x[keep], y[keep]


def assert_plots_match_file(experiment, path):
    run = HDF5Results.load(path)
    data = run.data
    curves = experiment.curve_list[0]
    assert len(data) > 0
    for spec in curves.wdg.plot_specs:
        x, y = curves.plotted(spec.key)
        ex, ey = _expected(spec, data)
        assert len(x) == len(ex), spec.key
        np.testing.assert_array_equal(x, ex, err_msg=spec.key)
        np.testing.assert_array_equal(y, ey, err_msg=spec.key)
    streams = run.streams()
    if "spectra" in streams:
        frames = run.frames("spectra")
        shown_x, shown_y = curves.spectrum.xData, curves.spectrum.yData
        np.testing.assert_array_equal(shown_x, frames.wavelength)
        np.testing.assert_array_equal(shown_y, frames.intensity[-1])
        view = curves.wdg
        if view.image_run is curves:
            np.testing.assert_array_equal(view.image_data(), frames.intensity)
            assert view.image.image.shape == frames.intensity.shape  # one row per spectrum


@pytest.mark.parametrize("name", list(TEST_PARAMETERS))
def test_queued_run_plots_the_rows_of_its_file(window, qtbot, name):
    experiment = queue_run(window, name)
    qtbot.waitUntil(
        lambda: experiment.procedure.status != Procedure.QUEUED and not window.manager.is_busy(),
        timeout=60_000,
    )
    results = experiment.results
    assert isinstance(results, HDF5Results)
    assert results.status == "finished", (results.status, results.status_reason)
    assert window.tabs.currentWidget() is experiment.view
    assert experiment.view.handles(name)
    assert experiment.browser_item.text(3) == "Finished"
    assert experiment.procedure.bench is None  # the bench stays with the window
    with h5py.File(results.data_filename, "r") as file:
        assert file["entry"].attrs["status"] == "finished"
        assert "analysis" in file["entry"]
    assert_plots_match_file(experiment, results.data_filename)
    # The window's runs register in the catalogue beside their files, as the CLI's do.
    from perovlab_daq.catalog.engine import open_catalog
    from perovlab_daq.catalog.query import RunFilter, find_runs

    folder = Path(results.data_filename).parent
    engine = open_catalog(f"sqlite:///{folder / 'catalog.sqlite'}")
    path = str(Path(results.data_filename).resolve())

    def registered() -> list:
        return [r for r in find_runs(engine, RunFilter()) if r.path == path]

    # The row's end is written in the background (the window goes on meanwhile).
    qtbot.waitUntil(lambda: [r.status for r in registered()] == ["finished"], timeout=30_000)
    assert registered()[0].procedure == name


def test_invalid_value_is_refused_naming_the_parameter(window):
    window.select_procedure("jlv")
    cls = window.classes["jlv"]
    procedure = cls()
    procedure.start_voltage, procedure.stop_voltage = 5.0, 2.0
    window.warnings.clear()
    count = len(window.manager.experiments.queue)
    assert window.queue(procedure=procedure) is None
    assert len(window.manager.experiments.queue) == count
    assert window.warnings and "stop_voltage" in window.warnings[-1][1]


def test_abort_from_the_window_ends_aborted_with_output_off(window, qtbot):
    experiment = queue_run(window, "lifetime", max_duration=600_000.0)  # device s
    qtbot.waitUntil(lambda: len(experiment.run_data) > 5, timeout=30_000)
    assert window.abort_button.isEnabled()
    window.abort_button.click()
    qtbot.waitUntil(lambda: not window.manager.is_busy(), timeout=30_000)
    results = experiment.results
    assert results.status == "aborted"
    assert experiment.browser_item.text(3) == "Aborted"
    states = window.bench.output_states()
    assert states and all(state == "off" for state in states.values()), states
    reopened = HDF5Results.load(results.data_filename)
    assert reopened.status == "aborted"
    kinds = [event["kind"] for event in reopened.events]
    assert "safe_state" in kinds
    window.poll_status()
    assert window.status_panel.chip_text("source_meter output").endswith("OFF")
    # nothing was queued behind it: the next run starts when queued, as before the abort
    assert window.abort_button.text() == "Abort" and not window.abort_button.isEnabled()


def test_reopened_files_show_their_curves_and_overlay(window, qtbot, tmp_path):
    finished = [
        e.results.data_filename
        for e in window.manager.experiments.queue
        if isinstance(e.results, HDF5Results) and e.results.procedure_name == "lifetime"
    ]
    assert finished, "run the procedure tests first (same module)"
    source = Path(finished[0])
    first = tmp_path / "copy-a.h5"
    interrupted = tmp_path / "copy-b.h5"
    shutil.copy(source, first)
    shutil.copy(source, interrupted)
    with h5py.File(interrupted, "r+") as file:
        file["entry"].attrs["status"] = "interrupted"
    opened = window.open_files([first, interrupted])
    assert len(opened) == 2
    for experiment in opened:
        assert_plots_match_file(experiment, experiment.data_filename)
        assert experiment.view is window.view_for("lifetime")
    assert opened[1].browser_item.text(3) == "Interrupted"
    view = opened[0].view
    plot = view.plots["relative"]
    shown = [
        c
        for c in plot.listDataItems()
        if c
        in (opened[0].curve_list[0].curves["relative"], opened[1].curve_list[0].curves["relative"])
    ]
    assert len(shown) == 2  # overlaid in one plot
    assert window.open_files([first]) == []  # not twice
    picture = window.export_figure(tmp_path / "figure.png")
    assert picture.stat().st_size > 10_000
    opened[1].browser_item.setCheckState(0, QtCore.Qt.CheckState.Unchecked)
    assert opened[1].curve_list[0] not in view.loaded


def test_log_time_axis_keeps_every_point(window, qtbot):
    view = window.view_for("lifetime")
    curves = view.loaded[-1]
    before = len(curves.plotted("relative")[0])
    view.log_time.setChecked(True)
    x, _ = curves.plotted("relative")
    data = HDF5Results.load(curves.results.data_filename).data
    hours = np.asarray(data["device_time"], dtype=float) / 3600
    expected = np.log10(hours[(hours > 0) & np.isfinite(data["relative_luminance"])])
    np.testing.assert_allclose(x, expected)
    assert len(x) <= before
    view.log_time.setChecked(False)
    assert len(curves.plotted("relative")[0]) == before


def test_status_during_a_run_and_closing_prompts_then_aborts(window, qtbot):
    window.status_interval_s = 0.2
    window.manager.status_interval_s = 0.2
    experiment = queue_run(window, "lifetime", max_duration=600_000.0)  # device s
    qtbot.waitUntil(
        lambda: (
            window.status_slot.take()[0] is not None
            and window.status_slot.take()[0].get("source_meter output") == "on"
        ),
        timeout=30_000,
    )
    window.poll_status()
    assert window.status_panel.chip_text("source_meter output").endswith("ON")
    asked = []
    window.confirm_close = lambda: asked.append(True) or False
    window.close()
    assert asked and window.manager.is_busy()  # refused: the run goes on
    assert window.bench.instruments
    assert experiment.procedure.status == Procedure.RUNNING
    # accepted: the run is aborted, its file closed, and the bench left safe and closed
    window.confirm_close = lambda: True
    window.close()
    assert not window.manager.is_busy()
    assert experiment.results.status == "aborted"
    assert HDF5Results.load(experiment.results.data_filename).status == "aborted"
    assert not window.bench.instruments  # bench.close(): safe state, connections closed


def test_no_qt_below_the_gui_package():
    offenders = []
    for folder in ("perovlab_daq", "procedures", "instruments"):
        for path in (ROOT / folder).rglob("*.py"):
            if "gui" in path.relative_to(ROOT).parts:
                continue
            text = path.read_text(encoding="utf-8")
            for needle in ("PyQt", "PySide", "qtpy", "pyqtgraph", "pymeasure.display"):
                if f"import {needle}" in text or f"from {needle}" in text:
                    offenders.append(f"{path}: {needle}")
    assert not offenders
    code = (
        "import sys, perovlab_daq.cli, perovlab_daq.runner, perovlab_daq.storage;"
        "from perovlab_daq.runner import procedure_classes; procedure_classes();"
        "bad=[m for m in sys.modules if m.split('.')[0] in ('PyQt5','PySide6','pyqtgraph','qtpy')];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
