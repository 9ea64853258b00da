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
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: Short parameters for demonstration runs on the simulated bench (seconds, not hours).
DEMO_PARAMETERS: dict[str, dict[str, Any]] = {
    "jlv": {"direction": "both", "dwell": 0.01, "el_biases": "4, 6"},
    "lifetime": {
        "current_density": 20.0,
        "first_interval": 0.02,
        "interval": 0.1,
        "spectrum_interval": 1.0,
        "dark_settle": 0.05,
        "max_duration": 30.0,
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
    """
    from pymeasure.display.Qt import QtCore, QtWidgets

    from perovlab_daq.runner import RunInputError, procedure_classes

    from .window import OperatorWindow

    classes = procedure_classes()
    for name in [*runs, *([procedure] if procedure else [])]:
        if name not in classes:
            raise RunInputError(f"unknown procedure {name!r} (known: {', '.join(classes)})")
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
    if screenshot is None:
        from .signal_stop import SignalStop

        stopper = SignalStop(window.stop_for_signal, app)
        try:
            code = app.exec_()
            window.shutdown()
        finally:
            stopper.uninstall()
        return exit_code(window, int(code))

    status = {"code": 0}

    def take_picture() -> None:
        path = Path(screenshot)
        path.parent.mkdir(parents=True, exist_ok=True)
        app.processEvents()
        window.export_figure(path, whole_window=True)
        print(f"screenshot: {path}")
        window.close()
        app.quit()

    def start_runs() -> None:
        for key, value in (("sample", "demo"), ("pixel", "A1"), ("operator", "screenshot")):
            window.sample_fields[key].setText(value)
        for name in runs:
            window.select_procedure(name)
            window.set_inputs(DEMO_PARAMETERS.get(name, {}))
            if window.queue() is None:
                status["code"] = 2
        if not window.wait_idle(timeout_s):
            log.error("the runs did not finish within %g s", timeout_s)
            status["code"] = 1
        if runs:
            window.select_procedure(runs[-1])
        QtCore.QTimer.singleShot(800, take_picture)

    QtCore.QTimer.singleShot(300, start_runs)
    app.exec_()
    window.shutdown()
    return status["code"]


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
