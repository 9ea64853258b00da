"""The window's run queue on the HDF5 back end: pymeasure's Manager with a DaqWorker inside.

pymeasure's :class:`~pymeasure.display.manager.Manager` builds a plain ``Worker`` (CSV
recorder, a ZMQ port on every interface when pyzmq is installed) in ``next()``; this
subclass builds a :class:`GuiWorker` instead, a :class:`~perovlab_daq.storage.DaqWorker`
that also copies each row and spectrum into the run's in-memory
:class:`~perovlab_daq.gui.live.RunData` for the plots. No port is ever opened.

Threading model (see ``docs/gui.md``):

* The bench is opened once, in the GUI thread. While a run is going, only the worker
  thread talks to the instruments: the run's file is created (instrument snapshot) in
  the GUI thread *before* the worker starts, and the next run starts only after the
  previous worker thread has really ended (pymeasure's ``_clean_up`` joins with a zero
  timeout and announces "failed" before the procedure's shutdown has run; here the end
  of a run is announced only when the worker's last message has arrived and the thread
  is joined).
* The instrument status shown during a run is read by the worker thread itself, between
  two records of the procedure (every ``status_interval_s``), and handed over through a
  lock-protected slot; the GUI timer polls the instruments itself only when no worker
  thread is alive.
* Widgets are touched only in the GUI thread: the monitor thread emits Qt signals
  (queued connections), the plots read memory on a GUI timer.

Each run is announced to a :class:`~perovlab_daq.guardian.Guardian` (a process beside the
window) when it starts and when it has ended: if the window's process dies in between
(SIGKILL, OOM, crash), the guardian switches the outputs off, reads them back and closes
the run file ``killed`` (docs/reliability.md section 5).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from pymeasure.display.manager import Experiment, Manager
from pymeasure.display.Qt import QtCore
from pymeasure.experiment import Procedure

from perovlab_daq.guardian import Guardian
from perovlab_daq.storage import DaqWorker, HDF5Results

from .live import RunData

log = logging.getLogger(__name__)


class StatusSlot:
    """The latest instrument states read by the worker thread, for the GUI timer to pick up."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._states: dict[str, str] | None = None
        self._time = 0.0

    def put(self, states: Mapping[str, str]) -> None:
        """Store states just read (worker thread)."""
        with self._lock:
            self._states = dict(states)
            self._time = time.monotonic()

    def clear(self) -> None:
        """Forget the last reading (a new run starts)."""
        with self._lock:
            self._states = None

    def take(self) -> tuple[dict[str, str] | None, float]:
        """Return (latest states or None, age in s) (GUI thread)."""
        with self._lock:
            if self._states is None:
                return None, float("inf")
            return dict(self._states), time.monotonic() - self._time


class GuiWorker(DaqWorker):
    """A :class:`DaqWorker` that also feeds the run's in-memory copy and the status slot.

    Parameters
    ----------
    results
        The run's :class:`HDF5Results` (created, not started).
    run_data
        Where rows and spectra are copied for the plots.
    status_probe
        Called in the worker thread, between records, at most every ``status_interval_s``;
        returns instrument states (``Bench.output_states``). None: no reads during runs.
    status_slot
        Where the probe's answer goes.
    status_interval_s
        Minimum time between two probes.
    """

    def __init__(
        self,
        results: HDF5Results,
        run_data: RunData,
        status_probe: Callable[[], Mapping[str, str]] | None = None,
        status_slot: StatusSlot | None = None,
        status_interval_s: float = 2.0,
    ) -> None:
        super().__init__(results)
        self.run_data = run_data
        self.status_probe = status_probe
        self.status_slot = status_slot
        self.status_interval_s = float(status_interval_s)
        self._last_probe = 0.0

    def emit(self, topic: str, record: Any) -> None:
        """Store the record (as DaqWorker does), then copy rows and spectra to memory."""
        super().emit(topic, record)
        try:
            if topic == "results":
                self.run_data.append_row(record)
            elif topic == "batch results":
                self.run_data.append_rows(record)
            elif topic == "frame":
                self.run_data.append_frame(
                    record.get("stream", "spectra"),
                    record.get("wavelength"),
                    record.get("intensity"),
                    record.get("context"),
                    record.get("intensity_units", "counts"),
                )
            else:
                return
        except Exception:  # noqa: BLE001 - the plots must never stop a measurement
            log.exception("live copy of a %s record failed", topic)
        self._maybe_probe()

    def _maybe_probe(self) -> None:
        if self.status_probe is None or self.status_slot is None:
            return
        now = time.monotonic()
        if now - self._last_probe < self.status_interval_s:
            return
        self._last_probe = now
        try:
            self.status_slot.put(self.status_probe())
        except Exception as exc:  # noqa: BLE001 - a status read must never stop a run
            log.debug("status read during the run failed: %s", exc)

    def run(self) -> None:
        """Start the run's clock for spectra without a time, then run as DaqWorker does."""
        self.run_data.mark_start()
        super().run()


class DaqMonitor(QtCore.QThread):
    """Relay a worker's monitor queue to Qt signals; announce the end only at the very end.

    pymeasure's ``Monitor`` reports "failed" as soon as the status changes, while the
    procedure's shutdown (outputs off) is still running in the worker; this one reports
    the final status when the worker's last message (``None``) has arrived.
    """

    status = QtCore.Signal(int)
    progress = QtCore.Signal(float)
    running = QtCore.Signal()
    ended = QtCore.Signal(int)

    def __init__(self, monitor_queue: queue.Queue) -> None:
        super().__init__()
        self.monitor_queue = monitor_queue

    def run(self) -> None:
        """Read until the worker's final ``None``."""
        final = Procedure.FAILED
        while True:
            item = self.monitor_queue.get()
            if item is None:
                break
            topic, record = item
            if topic == "status":
                final = int(record)
                self.status.emit(final)
                if final == Procedure.RUNNING:
                    self.running.emit()
            elif topic == "progress":
                try:
                    self.progress.emit(float(record))
                except (TypeError, ValueError):
                    pass
        if final in (Procedure.RUNNING, Procedure.QUEUED):
            final = Procedure.FAILED
        self.ended.emit(final)


class DaqManager(Manager):
    """pymeasure's Manager running each queued experiment through a :class:`GuiWorker`.

    Parameters
    ----------
    widget_list, browser
        As for pymeasure's Manager.
    prepare
        Called in the GUI thread just before a run starts, with the experiment; creates
        its :class:`HDF5Results` (and hands the bench to the procedure). An exception
        marks the experiment failed and the queue moves on.
    finish
        Called in the GUI thread after the worker thread has ended (analysis, status).
    status_probe, status_slot, status_interval_s
        See :class:`GuiWorker`.
    """

    started = QtCore.Signal(object)

    def __init__(
        self,
        widget_list: Any,
        browser: Any,
        *,
        prepare: Callable[[Experiment], None],
        finish: Callable[[Experiment, int], None],
        status_probe: Callable[[], Mapping[str, str]] | None = None,
        status_slot: StatusSlot | None = None,
        status_interval_s: float = 2.0,
        parent: Any = None,
    ) -> None:
        super().__init__(widget_list, browser, port=None, parent=parent)
        self.port = None
        self.prepare = prepare
        self.finish = finish
        self.status_probe = status_probe
        self.status_slot = status_slot
        self.status_interval_s = status_interval_s
        #: Switches the outputs off if this process dies during a run. Started with the
        #: window, so that its imports are done before the first run (a death mid-run is
        #: then answered within 2 s).
        self.guardian = Guardian()
        self.guardian.start()

    def is_busy(self) -> bool:
        """Return whether a worker thread is alive (instruments in use by a run)."""
        worker = self._worker
        return self.is_running() or (worker is not None and worker.is_alive())

    def next(self) -> None:
        """Start the next queued experiment, if any and if nothing runs."""
        if self.is_busy():
            raise RuntimeError("another run is going")
        while self.experiments.has_next():
            experiment = self.experiments.next()
            try:
                self.prepare(experiment)
            except Exception as exc:  # noqa: BLE001 - reported, and the queue goes on
                log.error("run %s could not start: %s", experiment.data_filename, exc)
                experiment.procedure.status = Procedure.FAILED
                experiment.browser_item.setStatus(Procedure.FAILED)
                experiment.browser_item.setToolTip(1, str(exc))
                self.failed.emit(experiment)
                continue
            self._start(experiment)
            return

    def _start(self, experiment: Experiment) -> None:
        self._running_experiment = experiment
        if self.status_slot is not None:
            self.status_slot.clear()
        worker = GuiWorker(
            experiment.results,
            experiment.run_data,
            status_probe=self.status_probe,
            status_slot=self.status_slot,
            status_interval_s=self.status_interval_s,
        )
        worker.is_last = lambda: not self.experiments.has_next()
        monitor = DaqMonitor(worker.monitor_queue)
        monitor.status.connect(self._update_status)
        monitor.progress.connect(self._update_progress)
        monitor.running.connect(self._running)
        monitor.ended.connect(self._ended)
        self._worker = worker
        self._monitor = monitor
        self._guard(experiment)
        monitor.start()
        worker.start()
        self.started.emit(experiment)

    def _guard(self, experiment: Experiment) -> None:
        """Announce the run to the guardian (bench, procedure, file); never raises."""
        bench = getattr(experiment.procedure, "bench", None)
        results = getattr(experiment, "results", None)
        if bench is None or results is None:
            log.warning("run %s not guarded: no bench or file yet", experiment.data_filename)
            return
        try:
            self.guardian.run_started(bench.config, experiment.procedure.NAME, results.path)
        except Exception:  # noqa: BLE001 - the run goes on, unguarded, as before
            log.exception("run %s not guarded", experiment.data_filename)

    def _clean_up(self) -> None:
        worker, monitor = self._worker, self._monitor
        if worker is not None:
            # Thread.join, not pymeasure's join(): that one only sets the stop flag.
            threading.Thread.join(worker, 60.0)
            if worker.is_alive():
                log.error("the worker thread did not end within 60 s")
        if monitor is not None:
            monitor.wait(5000)
        self._worker = None
        self._monitor = None
        self._running_experiment = None

    def _ended(self, status: int) -> None:
        experiment = self._running_experiment
        if experiment is None:
            return
        self._clean_up()
        self.guardian.run_ended()  # the run ended through its own safe path
        experiment.procedure.status = status
        experiment.browser_item.setStatus(status)
        try:
            self.finish(experiment, status)
        except Exception:  # noqa: BLE001 - the queue must go on
            log.exception("after-run step failed for %s", experiment.data_filename)
        for curve in experiment.curve_list:
            if curve:
                curve.update_data()
        if status == Procedure.FINISHED:
            experiment.browser_item.setProgress(100)
            self.finished.emit(experiment)
            if self._is_continuous:
                self.next()
        elif status == Procedure.ABORTED:
            self.abort_returned.emit(experiment)
        else:
            # As pymeasure does: a failed run (instrument fault, full disk) stops the queue
            # until the operator looks; queueing another run starts the waiting ones.
            self.failed.emit(experiment)

    def abort(self, stopped_by: str = "") -> None:
        """Ask the running procedure to stop; outputs go off in its shutdown.

        Parameters
        ----------
        stopped_by
            What ended the run when it was not the operator (a signal's name, "logout"):
            the file's reason is then "stopped safely: <stopped_by>", as for the command
            line, instead of "aborted by the user".
        """
        if not self.is_running():
            raise RuntimeError("no run to abort")
        results = getattr(self._running_experiment, "results", None)
        if stopped_by and results is not None:
            results.set_status("running", f"stopped safely: {stopped_by}")
            results.add_event("warning", "stop", f"stop requested: {stopped_by}")
        self._start_on_add = False
        self._is_continuous = False
        self._worker.stop()
        self.aborted.emit(self._running_experiment)
