"""Start the operator window (``perovlab-daq gui``), optionally run and take a screenshot.

``perovlab-daq gui --sim`` opens the window on the simulated bench; ``--bench FILE`` on a
real one. ``--screenshot OUT.png [--run PROCEDURE ...]`` queues the named procedures with
short demonstration parameters, waits for them to finish and saves a picture of the
window (for the README and for review), then closes.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: Short parameters for demonstration runs on the simulated bench (seconds, not hours).
DEMO_PARAMETERS: dict[str, dict[str, Any]] = {
    "jlv": {"direction": "both", "dwell": 0.01, "el_biases": "4, 6"},
    "lifetime": {  # device time: about 20 s of wall time at the simulated acceleration
        "current_density": 200.0,
        "first_interval": 20.0,
        "interval": 100.0,
        "spectrum_interval": 1000.0,
        "dark_settle": 0.05,
        "max_duration": 20000.0,
    },
    "el-spectra": {"levels": "4, 6, 8, 10, 12, 14, 16", "settle_time": 0.05},
    "pl-spectrum": {"laser_power": 0.005, "repeats": 5},
    "pl-fluence": {"steps": 10},
    "pl-stability": {"laser_power": 0.1, "duration": 120, "interval": 10},
    "plqy": {},
}


def open_bench(config: Any) -> tuple[Any, list[str]]:
    """Open every role of ``config`` that answers; return (bench, roles not connected).

    Raises
    ------
    perovlab_daq.bench.BenchError
        If no role at all can be opened.
    """
    from perovlab_daq.bench import Bench, BenchError

    try:
        return Bench(config).open(), []
    except BenchError as exc:
        log.warning("not every instrument answered: %s", exc)
    statuses = Bench(config).check()
    good = [s.role for s in statuses if s.ok]
    missing = [s.role for s in statuses if not s.ok]
    if not good:
        raise BenchError(
            "no instrument of the bench answered: " + "; ".join(s.problem for s in statuses)
        )
    return Bench(config, roles=good).open(), missing


def run_gui(
    config: Any,
    *,
    data_dir: str | os.PathLike[str] = "data",
    procedure: str | None = None,
    values: Mapping[str, str] | None = None,
    screenshot: str | os.PathLike[str] | None = None,
    runs: Sequence[str] = (),
    timeout_s: float = 600.0,
    while_running_s: float | None = None,
) -> int:
    """Open the window on ``config``'s bench and run the Qt event loop; return an exit code.

    Parameters
    ----------
    config
        A :class:`~perovlab_daq.bench.BenchConfig`.
    data_dir
        Default folder of the run files.
    procedure
        Procedure selected at start.
    values
        Parameter values put into the selected procedure's inputs.
    screenshot
        Save a picture of the window here when the ``runs`` have finished, then quit.
    runs
        Procedures queued at start with :data:`DEMO_PARAMETERS` (screenshot mode).
    timeout_s
        Longest wait for the runs in screenshot mode.
    while_running_s
        Screenshot mode: take the picture this long after the last run started, while it
        is going (strip showing outputs ON, progress, ETA, live figure), then abort it
        and close, instead of waiting for the end.

    Returns
    -------
    int
        0; 2 (:data:`~perovlab_daq.gui.qtcheck.EXIT_NO_DISPLAY`) when Qt cannot open a
        window here (one line names the missing Debian packages, nothing is opened); 3 if
        an output did not read back off at close; 130 after a signal.
    """
    from perovlab_daq.runner import RunInputError, procedure_classes

    from .qtcheck import EXIT_NO_DISPLAY, qt_platform_problem

    classes = procedure_classes()
    for name in [*runs, *([procedure] if procedure else [])]:
        if name not in classes:
            raise RunInputError(f"unknown procedure {name!r} (known: {', '.join(classes)})")
    from pymeasure.display.Qt import QtCore, QtWidgets

    problem = None if QtWidgets.QApplication.instance() else qt_platform_problem()
    if problem:  # Qt would abort (exit 134) with a page that names no package
        print(f"error: {problem}", file=sys.stderr)
        return EXIT_NO_DISPLAY

    from .window import OperatorWindow

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(sys.argv[:1])
    bench, missing = open_bench(config)
    try:
        window = OperatorWindow(
            bench,
            data_dir=data_dir,
            procedure_classes=classes,
            initial=procedure or (runs[0] if runs else None),
            missing_roles=missing,
        )
    except BaseException:
        bench.close()
        raise
    if values:
        window.set_inputs(_coerced(classes[window.current_name], values))
    window.show()
    from .signal_stop import SignalStop

    # Every catchable signal goes through the window's safe path, in screenshot mode too
    # (its runs drive real outputs as well).
    stopper = SignalStop(window.stop_for_signal, app)
    if screenshot is None:
        try:
            code = app.exec_()
            window.shutdown()
        finally:
            stopper.uninstall()
        return exit_code(window, int(code))

    status = {"code": 0}

    def take_picture() -> None:
        if window.stopped_by:  # stopped by a signal: no picture, just close
            app.quit()
            return
        path = Path(screenshot)
        path.parent.mkdir(parents=True, exist_ok=True)
        app.processEvents()
        window.export_figure(path, whole_window=True)
        print(f"screenshot: {path}")
        window.close()
        app.quit()

    def start_runs() -> None:
        # No modal message box in screenshot mode: a refusal is logged and gives exit 2.
        window.warn = lambda title, text: log.error("%s: %s", title, text)
        for key, value in (("sample", "demo"), ("operator", "screenshot")):
            window.sample_fields[key].setText(value)
        for name in runs:
            window.select_procedure(name)
            window.set_inputs(DEMO_PARAMETERS.get(name, {}))
            if window.queue() is None:
                status["code"] = 2
        if while_running_s is not None:
            window.confirm_close = lambda: True  # the picture is taken: abort, close
            if not _wait_running(window, while_running_s, timeout_s):
                status["code"] = 1
        elif not window.wait_idle(timeout_s):
            log.error("the runs did not finish within %g s", timeout_s)
            status["code"] = 1
        if runs:
            window.select_procedure(runs[-1])
        QtCore.QTimer.singleShot(800, take_picture)

    QtCore.QTimer.singleShot(300, start_runs)
    try:
        app.exec_()
        window.shutdown()
    finally:
        stopper.uninstall()
    return exit_code(window, status["code"])


def _wait_running(window: Any, seconds: float, timeout_s: float) -> bool:
    """Process events until the last queued run has been going ``seconds`` (or all ended)."""
    from pymeasure.display.Qt import QtCore, QtWidgets

    app = QtWidgets.QApplication.instance()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        app.processEvents(QtCore.QEventLoop.ProcessEventsFlag.AllEvents, 50)
        queue = window.manager.experiments.queue
        progress = getattr(queue[-1], "progress", None) if queue else None
        if progress is not None and time.monotonic() - progress.eta.started >= seconds:
            window.poll_status()
            return True
        if not window.manager.is_busy() and not window.manager.experiments.has_next():
            return True
        time.sleep(0.01)
    log.error("the last run was not going %g s within %g s", seconds, timeout_s)
    return False


def exit_code(window: Any, code: int = 0) -> int:
    """Return the window's exit code (the codes of :mod:`perovlab_daq.runner`).

    3 if an output did not read back off at close, 130 after a signal or logout, else
    Qt's (0).
    """
    from perovlab_daq.runner import EXIT_INTERRUPTED, EXIT_OUTPUT_NOT_OFF

    if any(state != "off" for state in window.final_states.values()):
        return EXIT_OUTPUT_NOT_OFF
    return EXIT_INTERRUPTED if window.stopped_by else code


def _coerced(procedure_class: type, values: Mapping[str, str]) -> dict[str, Any]:
    from perovlab_daq.runner import coerce_parameters

    return coerce_parameters(procedure_class, dict(values))
