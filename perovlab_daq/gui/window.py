"""The operator window: pymeasure's ManagedWindow machinery for every procedure, on HDF5.

:class:`OperatorWindow` is a pymeasure ``ManagedWindowBase``: inputs built from the
procedure's parameters, Queue and Abort/Resume, the browser of runs with its check boxes
and menu, and a sequencer. What it adds:

* a procedure selector (one inputs page and one sequencer per procedure, built when first
  selected), sample identifiers and a data folder;
* number fields that refuse (never clamp) values outside their range, marked at the
  field (:mod:`perovlab_daq.gui.inputs`), then validation with
  :func:`perovlab_daq.runner.plan_run` before queueing (a message box names the
  parameter, the value and the allowed range);
* runs stream into HDF5 files through :class:`~perovlab_daq.gui.manager.DaqManager`;
  the file of a queued run is created when it starts (instrument snapshot taken then);
* plots per procedure fed from memory (:mod:`perovlab_daq.gui.plots`);
* File > Open for finished or interrupted runs, overlay, File > Export figure;
* a simulated-bench banner and a safety strip across the top (outputs, laser, the run
  with its ETA and live figure; :mod:`perovlab_daq.gui.status`), a layout that fits
  1280x800, and a prompt before closing while a run is going; closing puts the bench in
  its safe state.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pyqtgraph as pg
from pymeasure.display.browser import BrowserItem
from pymeasure.display.manager import Experiment
from pymeasure.display.Qt import QtCore, QtGui, QtWidgets
from pymeasure.display.widgets import BrowserWidget, LogWidget
from pymeasure.display.windows.managed_window import ManagedWindowBase
from pymeasure.experiment import Parameter, Procedure

from perovlab_daq.catalog import register_run_end, register_run_start
from perovlab_daq.figures import AnalysisInputError, analyse_and_store, load_run
from perovlab_daq.figures import close as close_run
from perovlab_daq.storage import HDF5Results, StorageError

from .inputs import (
    FieldProblem,
    ProcedurePage,
    bench_limits,
    build_inputs_panel,
    parameter_order,
)
from .live import RunData
from .manager import DaqManager, StatusSlot
from .plots import ProcedureView, make_views
from .rack import RackView
from .runinfo import OpenedRun, figures_text, run_sample
from .status import InstrumentStatusPanel, RunProgress, SimulatedBanner

log = logging.getLogger(__name__)

#: Extra browser columns after pymeasure's Graph, Filename, Progress, Status.
BROWSER_COLUMNS = ("Procedure", "Sample", "Pixel", "Key figures")
RUN_FILE_FILTER = "Run files (*.h5 *.hdf5 *.nxs);;All files (*)"


class PendingRun:
    """Stands in for a queued run's results until it starts (its file does not exist yet).

    pymeasure's browser and queue read ``procedure`` and ``data_filename``; the file name
    is chosen, and the file created, when the run starts, so that nothing touches the
    instruments while another run is going.
    """

    def __init__(self, procedure: Procedure, name: str, plan: Any) -> None:
        self.procedure = procedure
        self.procedure_name = name
        self.plan = plan
        self.data_filename = f"(queued) {plan.path.name}"
        self.status = "queued"


class OperatorWindow(ManagedWindowBase):
    """The operator window for one open bench.

    Parameters
    ----------
    bench
        An open :class:`~perovlab_daq.bench.Bench`; the window keeps it open and closes
        it (safe state) when the window closes.
    data_dir
        Folder the run files go to (the operator can change it).
    procedure_classes
        Name -> procedure class (default: every procedure found).
    initial
        Procedure selected at start.
    missing_roles
        Roles of the bench file that could not be opened (shown, and refused).
    refresh_ms
        Refresh period of the plots.
    status_interval_s
        How often instrument states are read (by the GUI when idle, by the worker
        thread between records during a run).
    durability_interval_s
        Passed to every run file (most data a crash may cost).
    """

    def __init__(
        self,
        bench: Any,
        *,
        data_dir: str | os.PathLike[str] = "data",
        procedure_classes: Mapping[str, type] | None = None,
        initial: str | None = None,
        missing_roles: Iterable[str] = (),
        refresh_ms: int = 200,
        status_interval_s: float = 2.0,
        durability_interval_s: float = 1.0,
    ) -> None:
        from perovlab_daq.runner import procedure_classes as discover

        self.bench = bench
        self.bench_config = bench.config
        self.classes = dict(procedure_classes or discover())
        if not self.classes:
            raise ValueError("no procedures to offer")
        self.data_dir = Path(data_dir)
        self.missing_roles = list(missing_roles)
        self.status_interval_s = float(status_interval_s)
        self.durability_interval_s = float(durability_interval_s)
        self.status_slot = StatusSlot()
        self.bench_limits = bench_limits(bench)
        self.views: list[ProcedureView] = make_views(refresh_ms)
        self.log_widget = LogWidget("Log")
        self.pages: dict[str, ProcedurePage] = {}
        self._closing = False
        self._bench_closed = False
        #: signal (or "logout") that closed the window; outputs read back at shutdown
        self.stopped_by = ""
        self.final_states: dict[str, str] = {}
        name = initial if initial in self.classes else ("jlv" if "jlv" in self.classes else "")
        self.current_name = name or next(iter(self.classes))
        first = self.classes[self.current_name]
        super().__init__(
            first,
            widget_list=(*self.views, self.log_widget),
            inputs=tuple(parameter_order(first)),
            displays=(),
            sequencer=False,
            enable_file_input=False,
        )
        self.log_handler = self.log_widget.handler
        logging.getLogger().addHandler(self.log_handler)
        self.setWindowTitle(f"perovlab-daq - {self.bench_config.name}")
        self._build_menus()
        self.select_procedure(self.current_name)
        self.status_timer = QtCore.QTimer(self)
        self.status_timer.timeout.connect(self.poll_status)
        self.status_timer.start(int(self.status_interval_s * 1000))
        self.resize(1280, 800)
        QtCore.QTimer.singleShot(0, self.poll_status)

    # ------------------------------------------------------------------ construction
    def _setup_ui(self) -> None:
        """Build pymeasure's widgets, with a procedure selector and the HDF5 manager."""
        self.queue_button = QtWidgets.QPushButton("Queue", self)
        self.queue_button.clicked.connect(self._queue)
        self.abort_button = QtWidgets.QPushButton("Abort", self)
        self.abort_button.setEnabled(False)
        self.abort_button.clicked.connect(self.abort)

        self.procedure_box = QtWidgets.QComboBox(self)
        for name, cls in self.classes.items():
            self.procedure_box.addItem(f"{name}  -  {cls.TITLE}", name)
        self.procedure_box.currentIndexChanged.connect(
            lambda index: self.select_procedure(self.procedure_box.itemData(index))
        )
        self.sample_fields: dict[str, QtWidgets.QLineEdit] = {}
        for key in ("sample", "device", "pixel", "operator"):
            field = QtWidgets.QLineEdit(self)
            field.setPlaceholderText(key)
            self.sample_fields[key] = field
        self.notes_field = QtWidgets.QLineEdit(self)
        self.notes_field.setPlaceholderText("notes stored with the run")
        self.folder_field = QtWidgets.QLineEdit(str(self.data_dir), self)
        self.folder_button = QtWidgets.QPushButton("...", self)
        self.folder_button.setMaximumWidth(30)
        self.folder_button.clicked.connect(self._choose_folder)
        self.page_stack = QtWidgets.QStackedWidget(self)
        self.sequencer_stack = QtWidgets.QStackedWidget(self)

        self.browser_widget = BrowserWidget(self.procedure_class, (), [], parent=self)
        self.browser = self.browser_widget.browser
        labels = ["Graph", "Filename", "Progress", "Status", *BROWSER_COLUMNS]
        self.browser.setColumnCount(len(labels))
        self.browser.setHeaderLabels(labels)
        self.browser.header().resizeSection(1, 260)
        self.browser_widget.show_button.clicked.connect(self.show_experiments)
        self.browser_widget.hide_button.clicked.connect(self.hide_experiments)
        self.browser_widget.clear_button.clicked.connect(self.clear_experiments)
        self.browser_widget.open_button.clicked.connect(self.open_experiment)
        self.browser.setContextMenuPolicy(QtCore.Qt.ContextMenuPolicy.CustomContextMenu)
        self.browser.customContextMenuRequested.connect(self.browser_item_menu)
        self.browser.itemChanged.connect(self.browser_item_changed)

        self.manager = DaqManager(
            self.widget_list,
            self.browser,
            prepare=self._prepare_run,
            finish=self._after_run,
            status_probe=self.bench.output_states,
            status_slot=self.status_slot,
            status_interval_s=self.status_interval_s,
            parent=self,
        )
        self.manager.abort_returned.connect(self.abort_returned)
        self.manager.queued.connect(self.queued)
        self.manager.running.connect(self.running)
        self.manager.finished.connect(self.finished)
        self.manager.failed.connect(self.failed)
        self.manager.started.connect(self._run_started)
        self.manager.log.connect(self.log.handle)

        config = self.bench_config
        self.banner: SimulatedBanner | None = None
        if config.simulated:
            preset = config.sim.preset if config.sim is not None else ""
            bench_label = "simulated"  # the banner above says it in full
            self.banner = SimulatedBanner(preset, self)
        else:
            bench_label = f"REAL bench: {config.name}"
        self.status_panel = InstrumentStatusPanel(
            bench_label,
            config.simulated,
            list(self.bench.instruments),
            self.missing_roles,
            parent=self,
        )

    def _layout(self) -> None:
        """Banner and safety strip across the top; inputs | plots over the browser below.

        Everything below the strip sits in splitters and scroll areas, so the window fits
        a 1280x800 screen and the strip (outputs, laser) is always in view.
        """
        self.main = QtWidgets.QWidget(self)
        self.side_tabs = QtWidgets.QTabWidget(self.main)
        self.side_tabs.addTab(build_inputs_panel(self), "Input Parameters")
        self.side_tabs.addTab(self.sequencer_stack, "Sequencer")

        self.tabs = QtWidgets.QTabWidget(self.main)
        self.tabs.setUsesScrollButtons(True)
        for widget in self.widget_list:
            self.tabs.addTab(widget, widget.name)
        self.rack_view = RackView(self.bench.config, data_dir=self.data_dir)
        self.tabs.addTab(self.rack_view, self.rack_view.name)
        plots = QtWidgets.QSplitter(QtCore.Qt.Orientation.Vertical)
        plots.addWidget(self.tabs)
        plots.addWidget(self.browser_widget)
        plots.setStretchFactor(0, 3)
        plots.setStretchFactor(1, 1)
        plots.setChildrenCollapsible(False)
        body = QtWidgets.QSplitter(QtCore.Qt.Orientation.Horizontal)
        body.addWidget(self.side_tabs)
        body.addWidget(plots)
        body.setStretchFactor(0, 0)
        body.setStretchFactor(1, 1)
        body.setChildrenCollapsible(False)
        body.setSizes([360, 920])
        vbox = QtWidgets.QVBoxLayout(self.main)
        vbox.setSpacing(2)
        vbox.setContentsMargins(4, 2, 4, 2)
        if self.banner is not None:
            vbox.addWidget(self.banner)
        vbox.addWidget(self.status_panel)
        vbox.addWidget(body, 1)
        self.setCentralWidget(self.main)

    def _build_menus(self) -> None:
        menu = self.menuBar().addMenu("&File")
        action = menu.addAction("&Open run file...")
        action.setShortcut(QtGui.QKeySequence.StandardKey.Open)
        action.triggered.connect(self.open_experiment)
        action = menu.addAction("&Export figure...")
        action.triggered.connect(self._export_dialog)
        menu.addSeparator()
        action = menu.addAction("&Quit")
        action.triggered.connect(self.close)

    # ------------------------------------------------------------------ procedures
    @property
    def current_page(self) -> ProcedurePage:
        """The inputs page of the selected procedure."""
        return self.pages[self.current_name]

    def select_procedure(self, name: str) -> None:
        """Show the inputs, sequencer and plots of procedure ``name``."""
        if name not in self.classes:
            raise KeyError(f"unknown procedure {name!r}")
        page = self.pages.get(name)
        if page is None:
            page = ProcedurePage(self, self.classes[name])
            self.pages[name] = page
            self.page_stack.addWidget(page)
            self.sequencer_stack.addWidget(page.sequencer)
        self.current_name = name
        self.procedure_class = self.classes[name]
        self.inputs = page.inputs
        self.displays = page.displays
        self.page_stack.setCurrentWidget(page)
        self.sequencer_stack.setCurrentWidget(page.sequencer)
        index = self.procedure_box.findData(name)
        if index != self.procedure_box.currentIndex():
            self.procedure_box.blockSignals(True)
            self.procedure_box.setCurrentIndex(index)
            self.procedure_box.blockSignals(False)
        self.tabs.setCurrentWidget(self.view_for(name))

    def view_for(self, procedure_name: str) -> ProcedureView:
        """Return the tab that draws runs of ``procedure_name``."""
        for view in self.views:
            if view.handles(procedure_name):
                return view
        return next(v for v in self.views if v.handles("*"))

    def set_inputs(self, values: Mapping[str, Any]) -> None:
        """Put values into the selected procedure's inputs (by parameter attribute name)."""
        procedure = self.current_page.make_procedure()
        procedure.set_parameters(dict(values))
        self.inputs.set_parameters(procedure.parameter_objects())

    def set_parameters(self, parameters: Mapping[str, Parameter]) -> None:
        """Select the procedure these parameters belong to and show them (browser menu)."""
        for name, cls in self.classes.items():
            if set(parameter_order(cls)) == set(parameters):
                self.select_procedure(name)
                break
        self.inputs.set_parameters(parameters)

    def sample(self) -> dict[str, str]:
        """Return the sample identifiers and notes typed in the window."""
        values = {key: field.text().strip() for key, field in self.sample_fields.items()}
        values["notes"] = self.notes_field.text()
        return values

    def _choose_folder(self) -> None:
        folder = QtWidgets.QFileDialog.getExistingDirectory(
            self, "Data folder", self.folder_field.text()
        )
        if folder:
            self.folder_field.setText(folder)

    # ------------------------------------------------------------------ queue
    def queue(self, procedure: Procedure | None = None) -> Experiment | None:
        """Validate the inputs and queue a run; return its experiment (None if refused).

        A refused value is reported in a message box naming the parameter, the value and
        the allowed range, and marked at its field; nothing is created. The run's file is
        created when the run starts.
        """
        from perovlab_daq.bench import BenchError
        from perovlab_daq.runner import RunInputError, plan_run

        if self._closing:
            return None
        if procedure is None:
            problems = self.current_page.field_problems()
            if problems:
                self.refuse_fields(problems)
                return None
            procedure = self.make_procedure()
        cls = type(procedure)
        name = getattr(cls, "NAME", "") or self.current_name
        values = {key: getattr(procedure, key) for key in parameter_order(cls)}
        folder = Path(self.folder_field.text().strip() or "data")
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            self.warn("Cannot queue", f"data folder {folder}: {exc.strerror or exc}")
            return None
        try:
            plan = plan_run(
                name,
                bench_config=self.bench_config,
                parameters=values,
                output=folder,
                sample=self.sample(),
                durability_interval_s=self.durability_interval_s,
            )
        except (RunInputError, BenchError) as exc:
            self.warn("Cannot queue", str(exc))
            return None
        missing = [r for r in cls.REQUIRED_ROLES if r not in self.bench.instruments]
        if missing:
            self.warn(
                "Cannot queue",
                f"{name} needs {', '.join(missing)}, not connected on this bench",
            )
            return None
        checked = cls(**plan.parameters)
        checked.status = Procedure.QUEUED
        run = RunData(getattr(cls, "COLUMNS", None) or {c: "" for c in cls.DATA_COLUMNS})
        experiment = self.new_experiment(PendingRun(checked, name, plan), run)
        self.manager.queue(experiment)
        return experiment

    def refuse_fields(self, problems: list[FieldProblem]) -> None:
        """Say which entries are refused and what each allows; nothing is queued."""
        self.warn("Cannot queue", "\n".join(problem.message() for problem in problems))

    def _prepare_run(self, experiment: Experiment) -> None:
        """Create the run's file just before it starts (GUI thread, no worker alive)."""
        from perovlab_daq.runner import plan_run

        pending: PendingRun = experiment.results
        procedure = experiment.procedure
        name = pending.procedure_name
        plan = pending.plan
        # Choose the name now: queued runs of the same minute must not collide.
        plan = plan_run(
            name,
            bench_config=self.bench_config,
            parameters=plan.parameters,
            output=plan.path.parent,
            sample=plan.sample,
            durability_interval_s=plan.durability_interval_s,
        )
        bench = self.bench
        bench.procedure = name
        world = getattr(bench, "world", None)
        sim = getattr(self.bench_config, "sim", None)
        if world is not None and sim is not None:
            world.ageing_acceleration = sim.acceleration_for(name)
        procedure.bench = bench
        try:
            results = HDF5Results(
                procedure,
                plan.path,
                durability_interval_s=plan.durability_interval_s,
                metadata=bench.metadata(),
                instruments=bench.snapshot(),
                sample=plan.sample,
            )
        except Exception:
            procedure.bench = None
            raise
        results.procedure_name = name
        experiment.registration = register_run_start(plan, results)  # never raises
        experiment.results = results
        experiment.data_filename = results.data_filename
        experiment.browser_item.setText(1, os.path.basename(results.data_filename))
        experiment.browser_item.setToolTip(1, results.data_filename)
        log.info("run %s -> %s", name, results.data_filename)

    def _run_started(self, experiment: Experiment) -> None:
        self.tabs.setCurrentWidget(experiment.view)
        experiment.progress = RunProgress(experiment.results.procedure_name, experiment.run_data)
        self.status_panel.show_run(experiment.progress.text(0.0))

    def _after_run(self, experiment: Experiment, status: int) -> None:
        """Analyse the finished run into its file and show the key figures (GUI thread)."""
        results = experiment.results
        experiment.procedure.bench = None  # the bench stays with the window only
        item = experiment.browser_item
        item.setText(3, str(getattr(results, "status", "")).capitalize() or item.text(3))
        if getattr(results, "status_reason", ""):
            item.setToolTip(3, results.status_reason)
        figures = self.analyse(experiment)
        # After the analysis: the row gets the key figures just stored in the file.
        register_run_end(getattr(experiment, "registration", None), results)
        if figures:
            item.setText(7, figures_text(figures))
            item.setToolTip(7, "\n".join(f"{k}: {v}" for k, v in figures.items()))
        self.status_panel.show_run("idle")
        QtCore.QTimer.singleShot(0, self.poll_status)

    def analyse(self, experiment: Experiment) -> dict[str, Any]:
        """Compute the procedure's key figures and store them in the run file."""
        results = experiment.results
        if not isinstance(results, HDF5Results):
            return {}
        started = time.monotonic()
        # From the closed file, exactly as 'perovlab-daq analyze FILE' reads it.
        path = results.data_filename
        try:
            _name, run = load_run(path)
        except Exception as exc:  # noqa: BLE001 - an unreadable file must not stop the GUI
            log.warning("analysis of %s: %s", path, exc)
            return {}
        try:
            figures = analyse_and_store(type(experiment.procedure), run)
        finally:
            close_run(run)
        log.info(
            "analysis of %s (%.2f s): %s",
            os.path.basename(path),
            time.monotonic() - started,
            figures_text(figures),
        )
        return figures

    def new_experiment(self, results: Any, run: RunData | None = None, curve: Any = None):
        """Build the experiment of a run: its curves in its procedure's tab, a browser row."""
        name = getattr(results, "procedure_name", "") or getattr(
            type(results.procedure), "NAME", ""
        )
        view = self.view_for(name)
        color = pg.intColor(self.browser.topLevelItemCount() % 8, hues=8)
        if run is None:
            run = RunData({})
        curves = view.new_curve(results, color=color, run=run)
        experiment = Experiment(results, [curves], BrowserItem(results, color))
        experiment.run_data = run
        experiment.view = view
        item = experiment.browser_item
        sample = getattr(getattr(results, "plan", None), "sample", None) or {}
        item.setText(4, name or "?")
        item.setText(5, sample.get("sample", ""))
        item.setText(6, sample.get("pixel", ""))
        return experiment

    # ------------------------------------------------------------------ files
    def open_experiment(self) -> None:
        """Ask for run files and open them (browser Open button, File > Open)."""
        paths, _ = QtWidgets.QFileDialog.getOpenFileNames(
            self, "Open run files", self.folder_field.text(), RUN_FILE_FILTER
        )
        self.open_files(paths)

    def open_files(self, paths: Iterable[str | os.PathLike[str]]) -> list[Experiment]:
        """Open finished, aborted, failed or interrupted runs and overlay their curves."""
        opened = []
        for path in map(str, paths):
            if not path:
                continue
            if any(os.path.samefile(e.data_filename, path) for e in self._file_experiments()):
                self.warn("Already open", f"{os.path.basename(path)} is already in the browser")
                continue
            try:
                # Checked, opened once, read in a few large reads: no Results object.
                name, run = load_run(path)
            except (AnalysisInputError, StorageError, OSError, KeyError, ValueError) as exc:
                self.warn("Cannot open", f"{path}: {exc}")
                continue
            try:
                data = RunData.from_results(run)
                status, reason, analysis = run.status, run.status_reason, run.analysis
                meta_sample = run_sample(run)
                procedure = run.procedure  # built once, from the parameters read
            except (StorageError, OSError, KeyError, ValueError) as exc:
                self.warn("Cannot open", f"{path}: {exc}")
                continue
            finally:
                close_run(run)
            results = OpenedRun(run.path, name, status, reason, procedure)
            experiment = self.new_experiment(results, data)
            item = experiment.browser_item
            item.setText(3, status.capitalize())
            item.setToolTip(3, reason)
            item.setProgress(100 if status == "finished" else 0)
            item.setToolTip(1, path)
            if analysis:
                item.setText(7, figures_text(analysis))
            item.setText(5, meta_sample.get("sample", ""))
            item.setText(6, meta_sample.get("pixel", ""))
            self.manager.load(experiment)
            self.browser_widget.show_button.setEnabled(True)
            self.browser_widget.hide_button.setEnabled(True)
            self.browser_widget.clear_button.setEnabled(not self.manager.is_running())
            self.tabs.setCurrentWidget(experiment.view)
            log.info("opened %s (%s, %d rows)", path, status, len(data))
            opened.append(experiment)
        return opened

    def _file_experiments(self) -> list[Experiment]:
        return [
            e
            for e in self.manager.experiments.queue
            if isinstance(e.results, (HDF5Results, OpenedRun)) and os.path.exists(e.data_filename)
        ]

    def export_figure(self, path: str | os.PathLike[str], whole_window: bool = False) -> Path:
        """Save the plots of the current tab (or the whole window) as a PNG picture."""
        target = Path(path)
        if target.suffix.lower() != ".png":
            target = target.with_suffix(".png")
        widget = self if whole_window else self.tabs.currentWidget()
        for view in self.views:
            view.refresh()
        if not widget.grab().save(str(target), "PNG"):
            raise OSError(f"cannot write {target}")
        log.info("figure saved to %s", target)
        return target

    def _export_dialog(self) -> None:
        path, _ = QtWidgets.QFileDialog.getSaveFileName(
            self, "Export figure", self.folder_field.text(), "PNG image (*.png)"
        )
        if path:
            try:
                self.export_figure(path)
            except OSError as exc:
                self.warn("Export failed", str(exc))

    # ------------------------------------------------------------------ status
    def poll_status(self) -> None:
        """Show instrument states: read here when idle, else the worker's latest reading."""
        if self._bench_closed:
            return
        if self.manager.is_busy():
            states, age = self.status_slot.take()
            if states is not None:
                self.status_panel.show_states(states, f"read by the run {age:.0f} s ago")
            experiment = self.manager._running_experiment
            progress = getattr(experiment, "progress", None)
            if progress is not None:
                percent = experiment.browser_item.progressbar.value()
                self.status_panel.show_run(progress.text(percent))
            return
        self.status_panel.show_states(self.bench.output_states(), "read when idle")

    def warn(self, title: str, text: str) -> None:
        """Tell the operator something went wrong (message box; logged too)."""
        log.warning("%s: %s", title, text)
        QtWidgets.QMessageBox.warning(self, title, text)

    def confirm_close(self) -> bool:
        """Ask whether to abort the running run and close (True: close)."""
        answer = QtWidgets.QMessageBox.question(
            self,
            "A run is going",
            "A run is going. Abort it (outputs off, file closed) and close the window?",
            QtWidgets.QMessageBox.StandardButton.Yes | QtWidgets.QMessageBox.StandardButton.No,
            QtWidgets.QMessageBox.StandardButton.No,
        )
        return answer == QtWidgets.QMessageBox.StandardButton.Yes

    def abort_returned(self, experiment: Experiment) -> None:
        """Handle the end of an aborted run: queued runs wait for Resume; none: reset Abort.

        pymeasure leaves the queue paused even when nothing is queued, so the next run
        queued would wait for a Resume the operator has no reason to press.
        """
        if self.manager.experiments.has_next():
            self.abort_button.setText("Resume")
            self.abort_button.setEnabled(True)
            return
        self.browser_widget.clear_button.setEnabled(True)
        self.manager._start_on_add = True
        self.manager._is_continuous = True
        self.abort_button.setText("Abort")
        self.abort_button.clicked.disconnect()
        self.abort_button.clicked.connect(self.abort)
        self.abort_button.setEnabled(False)

    def failed(self, experiment: Experiment) -> None:
        """Re-enable the controls after a failed run, as pymeasure does after an abort."""
        self.abort_button.setEnabled(self.manager.experiments.has_next())
        self.browser_widget.clear_button.setEnabled(True)

    def wait_idle(self, timeout_s: float = 60.0) -> bool:
        """Process events until no run is going or queued (for scripts and tests)."""
        deadline = time.monotonic() + timeout_s
        app = QtWidgets.QApplication.instance()
        while time.monotonic() < deadline:
            app.processEvents(QtCore.QEventLoop.ProcessEventsFlag.AllEvents, 50)
            if not self.manager.is_busy() and not self.manager.experiments.has_next():
                return True
            if not self.manager.is_busy() and not self.manager._is_continuous:
                return True
            time.sleep(0.01)
        return False

    def closeEvent(self, event: QtGui.QCloseEvent) -> None:  # noqa: N802 - Qt name
        """Ask before closing during a run; on close, abort, wait, and make the bench safe."""
        if self._bench_closed:
            event.accept()
            return
        if self.manager.is_busy():
            if not (self.stopped_by or self.confirm_close()):
                event.ignore()
                return
            self._closing = True
            if self.manager.is_running():
                self.manager.abort()
            self.wait_idle(120.0)
        self.shutdown()
        event.accept()

    def stop_for_signal(self, name: str) -> None:
        """Abort the running procedure (safe path) and close, without asking (a signal)."""
        self.stopped_by = self.stopped_by or name
        if self.manager.is_running():
            self.manager.abort(stopped_by=name)
        QtCore.QTimer.singleShot(0, self.close)

    def quit(self, evt: Any = None) -> None:
        """Close at application exit (pymeasure connects this to aboutToQuit)."""
        if not self._bench_closed:
            self.close()

    def shutdown(self) -> None:
        """Stop the timers, put the bench in its safe state and close it; never raises."""
        if self._bench_closed:
            return
        self._bench_closed = True
        self._closing = True
        self.rack_view.shutdown()
        for timer_owner in (self, *self.views):
            timer = getattr(timer_owner, "status_timer" if timer_owner is self else "timer", None)
            if timer is not None:
                timer.stop()
        try:
            self.bench.safe_state()
            self.final_states = self.bench.output_states()
            level = logging.INFO if set(self.final_states.values()) <= {"off"} else logging.ERROR
            log.log(level, "outputs read back at close: %s", self.final_states)
            self.bench.close()
        except Exception:  # noqa: BLE001 - closing must finish
            log.exception("closing the bench failed")
        logging.getLogger().removeHandler(self.log_handler)
        # pymeasure's log tab blinks on each record; a record logged while closing would
        # restart its timer, whose tick then reaches a deleted tab widget.
        blink = getattr(self.log_widget, "_blink_qtimer", None)
        if blink is not None:
            blink.stop()
            with contextlib.suppress(TypeError):  # nothing connected
                blink.timeout.disconnect()
