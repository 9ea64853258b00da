"""Headless runs: validate input, open the bench, run a procedure through pymeasure's worker.

Everything the command line, the sequencer, the demo and the tests use to run a procedure
goes through :func:`execute_run`, so every run has the same guarantees:

* all input (procedure name, parameters with units, sample identifiers, bench roles,
  output path) is checked before any instrument is touched and before a file exists;
* the run streams into one HDF5 file (:mod:`perovlab_daq.storage`) with a log file beside it;
* whatever happens (finish, abort, Ctrl-C, SIGTERM, instrument fault, storage failure),
  the bench is put in its safe state (source output off, laser emission off) and the file
  records how the run ended.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import queue
import re
import reprlib
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from perovlab_daq import stop_signals
from perovlab_daq.procedures.parameter_names import canonical_parameters
from perovlab_daq.procedures.registry import PROCEDURES
from perovlab_daq.safe_input import (
    UnsafeInputError,
    check_new_output_file,
    check_output_folder,
    load_yaml_file,
)

log = logging.getLogger(__name__)

#: Characters allowed in sample, device and pixel identifiers and operator names.
IDENTIFIER_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.+-]{0,63}$")
DEFAULT_FILE_PATTERN = "{date}_{sample}_{procedure}_{pixel}.h5"
#: Longest text ``--set`` or a file may give for one number with its unit.
MAX_QUANTITY_TEXT = 40
#: A unit expression pint may see: names of letters (no digits, no underscores), each with
#: at most a one-digit exponent, joined by ``*``, ``/`` or a space - a grammar with no
#: way to build a huge number (``cm^9^9^9`` or ``**99999`` are refused before pint runs).
_UNIT_FACTOR = r"[A-Za-zµ°%Ω]{1,12}(?:(?:\^|\*\*)-?[1-9])?"
_QUANTITY_TEXT = re.compile(
    r"^(?P<number>[-+]?(?:\d{1,20}\.?\d{0,20}|\.\d{1,20})(?:[eE][-+]?\d{1,3})?)\s?"
    rf"(?P<unit>{_UNIT_FACTOR}(?:\s?[*/ ]\s?{_UNIT_FACTOR}){{0,3}})$"
)


class RunInputError(ValueError):
    """Bad input for a run (exit code 2): raised before any instrument or file is touched."""


# --------------------------------------------------------------------------- procedures
def procedure_classes() -> dict[str, type]:
    """Return command-line name -> procedure class for every installed procedure.

    The names come from :data:`procedures.registry.PROCEDURES`; nothing is imported by a
    name read from a file or typed by a user.
    """
    return dict(PROCEDURES)


def get_procedure_class(name: str) -> type:
    """Return the procedure class called ``name``; :class:`RunInputError` listing the known ones."""
    classes = procedure_classes()
    if name not in classes:
        raise RunInputError(f"unknown procedure {str(name)[:80]!r} (known: {', '.join(classes)})")
    return classes[name]


# --------------------------------------------------------------------------- values
def parse_quantity(name: str, text: str, units: str) -> float:
    """Convert ``text`` (``"20"``, ``"20mA/cm^2"``, ``"0.2 A/cm^2"``) to a number in ``units``.

    Raises
    ------
    RunInputError
        Naming the parameter when the text is not a number or its unit is incompatible.
    """
    stripped = str(text).strip()
    shown = _short(stripped)
    if len(stripped) > MAX_QUANTITY_TEXT:
        raise RunInputError(
            f"parameter {name!r}: {shown} is longer than {MAX_QUANTITY_TEXT} characters"
        )
    try:
        number = float(stripped)
    except ValueError:
        pass
    else:
        if not math.isfinite(number):
            raise RunInputError(f"parameter {name!r}: {shown} is not a finite number")
        return number
    if not units:
        raise RunInputError(f"parameter {name!r}: {shown} is not a number")
    if not _QUANTITY_TEXT.match(stripped):
        raise RunInputError(
            f"parameter {name!r}: cannot read {shown} as a value in {units} "
            "(a number, optionally followed by a unit such as mA/cm^2)"
        )
    from pint import UnitRegistry
    from pint.errors import DimensionalityError, PintError

    registry = _unit_registry(UnitRegistry)
    try:
        quantity = registry.Quantity(stripped.replace("^", "**"))
        value = quantity.to(registry.Unit(units.replace("^", "**"))).magnitude
    except DimensionalityError:
        raise RunInputError(
            f"parameter {name!r}: {shown} has the wrong unit (expected a value in {units})"
        ) from None
    except (
        PintError,
        ValueError,
        TypeError,
        AttributeError,
        SyntaxError,
        AssertionError,
        ArithmeticError,
    ):
        raise RunInputError(
            f"parameter {name!r}: cannot read {shown} as a value in {units}"
        ) from None
    value = float(value)
    if not math.isfinite(value):
        raise RunInputError(f"parameter {name!r}: {shown} is not a finite value in {units}")
    return value


def _short(value: Any) -> str:
    """Return a bounded repr of a user value for a message (never the whole of a huge one)."""
    return reprlib.repr(value)


_REGISTRY: Any = None


def _unit_registry(factory: Callable[[], Any]) -> Any:
    global _REGISTRY
    if _REGISTRY is None:
        _REGISTRY = factory()
    return _REGISTRY


def coerce_parameters(procedure_cls: type, raw: Mapping[str, Any]) -> dict[str, Any]:
    """Turn raw values (strings with units from ``--set``, YAML values) into checked values.

    Raises
    ------
    RunInputError
        For an unknown parameter, an unreadable value, a wrong unit, NaN, or a value out of
        its allowed range; the message names the parameter, the value and the allowed range.
    """
    from pymeasure.experiment import FloatParameter, IntegerParameter

    from perovlab_daq.procedures.base import ParameterError

    objects = procedure_cls.parameter_objects_of_class()
    raw = _current_names(raw, objects)
    prepared: dict[str, Any] = {}
    for name, value in raw.items():
        parameter = objects.get(name)
        if parameter is None:
            raise RunInputError(
                f"{procedure_cls.NAME}: unknown parameter {name!r} "
                f"(known: {', '.join(sorted(objects))})"
            )
        if isinstance(parameter, FloatParameter | IntegerParameter) and isinstance(value, str):
            value = parse_quantity(name, value, getattr(parameter, "units", "") or "")
        prepared[name] = value
    try:
        return procedure_cls.checked_parameters(prepared)
    except ParameterError as exc:
        raise RunInputError(f"{procedure_cls.NAME}: {exc}") from None


def _current_names(raw: Mapping[str, Any], objects: Mapping[str, Any]) -> dict[str, Any]:
    """Rename old parameter names (``stop_v`` -> ``stop_voltage``) with a deprecation warning."""
    try:
        return canonical_parameters(raw, known=objects)
    except ValueError as exc:
        raise RunInputError(str(exc)) from None


def read_parameter_file(path: Path) -> dict[str, Any]:
    """Read a YAML (or JSON) mapping of parameter values: plain data, bounded in size."""
    try:
        data = load_yaml_file(path, "parameter file")
    except UnsafeInputError as exc:
        raise RunInputError(str(exc)) from None
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise RunInputError(f"{path}: expected a mapping of parameter: value, got {_short(data)}")
    return {str(k): v for k, v in data.items()}


def check_identifier(field_name: str, value: str | None) -> str:
    """Check a user-entered identifier (sample, device, pixel, operator).

    Identifiers end up in file names, so they may not contain path separators, ``..``,
    control characters or start with a dot.
    """
    if value is None or value == "":
        return ""
    if not isinstance(value, str) or not IDENTIFIER_PATTERN.match(value) or ".." in value:
        raise RunInputError(
            f"{field_name} {value!r} is not allowed (1-64 characters: letters, digits, "
            "space, '_', '-', '.', '+'; no path separators or '..')"
        )
    return value


# --------------------------------------------------------------------------- outcome
#: Exit codes of a run (the command line returns them; README and docs/reliability.md).
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INTERRUPTED = stop_signals.EXIT_INTERRUPTED  # 130, defined beside the signal handlers
#: A source output or the laser emission did not read back off: switch it off by hand.
EXIT_OUTPUT_NOT_OFF = 3


@dataclass
class RunOutcome:
    """How a run ended, with the output states as read back from the instruments.

    ``status`` is the file's status, or ``killed`` when the acquisition process died
    without its safe path and its supervisor ended the run (the file then says
    ``interrupted``, the reason and a ``killed`` event say how).
    """

    path: Path
    status: str
    reason: str = ""
    figures: dict[str, Any] = field(default_factory=dict)
    interrupted_by: str = ""
    elapsed_s: float = 0.0
    #: role -> result of the switch-off command (``"ok"`` or the error)
    safe_state: dict[str, str] = field(default_factory=dict)
    #: "<role> output|emission" -> ``"off"``, ``"on"`` or ``"unreadable: ..."``, read back
    outputs: dict[str, str] = field(default_factory=dict)
    #: whether the file opened with plain h5py (read-only) once the run had ended
    file_readable: bool = True
    file_problem: str = ""

    @property
    def outputs_off(self) -> bool:
        """Return whether every hazardous output read back ``off`` (none left means off)."""
        return all(state == "off" for state in self.outputs.values())

    @property
    def exit_code(self) -> int:
        """Return the command-line exit code of this outcome.

        3 if any output did not read back off (it overrides everything), 0 finished with a
        readable file, 130 stopped by a signal or the user, 1 otherwise (failed, killed,
        file unreadable).
        """
        if not self.outputs_off:
            return EXIT_OUTPUT_NOT_OFF
        if not self.file_readable:
            return EXIT_FAILED
        return {"finished": EXIT_OK, "aborted": EXIT_INTERRUPTED}.get(self.status, EXIT_FAILED)

    def summary(self) -> dict[str, Any]:
        """Return a JSON-friendly summary (file, status, read-back safe state, key figures)."""
        return {
            "file": str(self.path),
            "status": self.status,
            "reason": self.reason,
            "elapsed_s": round(self.elapsed_s, 3),
            "figures": {k: jsonable(v) for k, v in self.figures.items()},
            "safe_state": dict(self.outputs),
            "outputs_off": self.outputs_off,
            "file_readable": self.file_readable,
            "file_problem": self.file_problem,
            "shutdown_commands": dict(self.safe_state),
            "exit_code": self.exit_code,
            "simulated": self.simulated,
        }

    @property
    def simulated(self) -> bool:
        """Return whether the run file says it was taken on the simulated bench."""
        import h5py

        from perovlab_daq.storage.layout import file_is_simulated

        try:
            with h5py.File(self.path, "r", locking=False) as file:
                return file_is_simulated(file)
        except (OSError, ValueError):
            return False

    def safe_state_line(self) -> str:
        """Return one line for the console: the outputs as read back and the file's state."""
        states = ", ".join(f"{k} {v}" for k, v in self.outputs.items()) or "no hazardous output"
        readable = (
            "file readable" if self.file_readable else f"FILE UNREADABLE: {self.file_problem}"
        )
        if self.outputs_off:
            return f"read back: {states}; {readable}"
        return (
            f"DANGER: outputs not confirmed off ({states}): switch them off at the "
            f"instrument; {readable}"
        )


def check_file_readable(path: Path) -> tuple[bool, str]:
    """Open a run file read-only with plain h5py; return (readable, problem)."""
    import h5py

    try:
        with h5py.File(path, "r") as file:
            status = file["entry"].attrs.get("status", "")
    except (OSError, KeyError) as exc:
        return False, f"{type(exc).__name__}: {exc}"
    if isinstance(status, bytes):
        status = status.decode("utf-8", "replace")
    if str(status) in {"running", "queued", ""}:
        return False, f"file status is {status!r} after the run ended"
    return True, ""


def record_outputs_not_off(path: Path, outcome: RunOutcome) -> None:
    """Add an ``error`` event to a closed run file when an output did not read back off."""
    if outcome.outputs_off:
        return
    from perovlab_daq.storage import HDF5Results, StorageError

    message = outcome.safe_state_line()
    log.error("%s", message)
    try:
        HDF5Results.load(path).add_event("error", "outputs_not_off", message)
    except (StorageError, OSError) as exc:
        log.error("could not record it in %s: %s", path, exc)


def jsonable(value: Any) -> Any:
    """Return ``value`` as JSON can hold it: numbers as float (NaN/inf as None), else text."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return value if isinstance(value, str | bool | int | type(None)) else str(value)
    if isinstance(value, bool):
        return value
    return number if math.isfinite(number) else None


@dataclass
class RunPlan:
    """A fully validated run, ready to execute: nothing has been touched yet."""

    procedure_cls: type
    parameters: dict[str, Any]
    bench_config: Any
    path: Path
    sample: dict[str, str]
    durability_interval_s: float = 1.0
    power_loss_safe: bool = False


def plan_run(
    procedure: str,
    *,
    bench_config: Any,
    parameters: Mapping[str, Any] | None = None,
    output: Path | str | None = None,
    sample: Mapping[str, str | None] | None = None,
    file_pattern: str = DEFAULT_FILE_PATTERN,
    durability_interval_s: float = 1.0,
    power_loss_safe: bool = False,
) -> RunPlan:
    """Validate everything about a run and choose its file name; touch nothing.

    Parameters
    ----------
    procedure
        Command-line name of the procedure (``perovlab-daq list``).
    bench_config
        A :class:`perovlab_daq.bench.BenchConfig`.
    parameters
        Parameter values; strings may carry units (``"20mA/cm^2"``).
    output
        A folder (the file name comes from ``file_pattern``) or a ``.h5`` file that must
        not exist yet. Default: ``./data``.
    sample
        ``sample``, ``device``, ``pixel``, ``operator`` identifiers and free ``notes``.

    Raises
    ------
    RunInputError
        For any bad input, before anything is opened or created.
    """
    from perovlab_daq.bench import BenchError

    procedure_cls = get_procedure_class(procedure)
    values = coerce_parameters(procedure_cls, parameters or {})
    try:
        bench_config.require_roles(procedure_cls.REQUIRED_ROLES)
    except BenchError as exc:
        raise RunInputError(f"{procedure}: {exc}") from None
    sample_in = dict(sample or {})
    unknown = set(sample_in) - {"sample", "device", "pixel", "operator", "notes"}
    if unknown:
        raise RunInputError(f"unknown sample field(s): {', '.join(sorted(unknown))}")
    clean_sample = {
        key: check_identifier(key, sample_in.get(key))
        for key in ("sample", "device", "pixel", "operator")
    }
    notes = sample_in.get("notes") or ""
    if not isinstance(notes, str) or len(notes) > 10_000:
        raise RunInputError("notes must be text of at most 10,000 characters")
    clean_sample["notes"] = notes
    try:  # a bench with a pixel switch connects a pixel of its map (the first by default)
        clean_sample["pixel"] = bench_config.pixel_channel(clean_sample["pixel"])[0] or None
    except BenchError as exc:
        raise RunInputError(f"pixel: {exc}") from None
    if not (0.01 <= durability_interval_s <= 60):
        raise RunInputError(
            f"durability interval {durability_interval_s!r} s is outside 0.01 to 60 s"
        )
    path = _choose_path(output, file_pattern, procedure, clean_sample)
    return RunPlan(
        procedure_cls=procedure_cls,
        parameters=values,
        bench_config=bench_config,
        path=path,
        sample=clean_sample,
        durability_interval_s=durability_interval_s,
        power_loss_safe=power_loss_safe,
    )


def _choose_path(
    output: Path | str | None, pattern: str, procedure: str, sample: Mapping[str, str]
) -> Path:
    """Propose a free file name (claimed when the run file is created); check free space."""
    from perovlab_daq.storage import run_file_path

    target = Path(output) if output is not None else Path("data")
    if target.suffix.lower() in {".h5", ".hdf5", ".nxs"}:
        if not target.parent.exists():
            raise RunInputError(f"output folder {str(target.parent)!r} does not exist")
        if os.path.lexists(target):
            raise RunInputError(f"output file {str(target)!r} exists already (never overwritten)")
        try:
            checked = check_new_output_file(target)
        except UnsafeInputError as exc:
            raise RunInputError(str(exc)) from None
        try:
            _check_free_space(target.parent)
        except OSError as exc:
            raise RunInputError(str(exc)) from None
        return checked
    if target.exists() and not target.is_dir():
        raise RunInputError(f"output {str(target)!r} is neither a folder nor a new .h5 file")
    try:
        check_output_folder(target)
    except UnsafeInputError as exc:
        raise RunInputError(str(exc)) from None
    fields = {
        "date": datetime.now().strftime("%Y%m%d-%H%M%S"),
        "sample": sample.get("sample") or "sample",
        "pixel": sample.get("pixel") or "px",
        "device": sample.get("device") or "device",
        "operator": sample.get("operator") or "operator",
        "procedure": procedure,
    }
    try:
        _check_free_space(target)
        return Path(run_file_path(target, pattern, **fields))
    except (KeyError, ValueError) as exc:
        raise RunInputError(f"file pattern {pattern!r}: {exc}") from None
    except OSError as exc:  # the folder could not be created after all (raced, quota...)
        raise RunInputError(
            f"output folder {str(target)!r} cannot be used ({exc.strerror or exc})"
        ) from None


def _check_free_space(folder: Path) -> None:
    """Refuse (``OSError``) a folder whose disk is clearly too full; warn when tight."""
    from perovlab_daq.storage.batches import check_room_before_run

    probe = folder
    while not probe.exists() and probe != probe.parent:  # a folder created by the run
        probe = probe.parent
    warning = check_room_before_run(probe)
    if warning:
        log.warning("%s", warning)


# --------------------------------------------------------------------------- execution
ProgressCallback = Callable[[float, str], None]


def execute_run(
    plan: RunPlan,
    *,
    stop_event: threading.Event | None = None,
    on_progress: ProgressCallback | None = None,
    log_file: bool = True,
    bench: Any = None,
    on_record: Callable[[str, Any], None] | None = None,
) -> RunOutcome:
    """Run a planned procedure to its end and return how it ended.

    Parameters
    ----------
    plan
        From :func:`plan_run`.
    stop_event
        Set it (e.g. from a SIGINT/SIGTERM handler) to abort safely.
    on_progress
        Called with (percent, message) from this thread as the run progresses; the
        message is the live figure (lifetime: ``L/L0 0.931 at 1.2 h, T95 0.8 h``) or
        empty.
    log_file
        Write ``<file>.log`` beside the data file.
    bench
        An already open :class:`~perovlab_daq.bench.Bench` to use (kept open afterwards,
        but left in its safe state); default: open one from ``plan.bench_config``.
    on_record
        Called ``(topic, record)`` in the worker thread after each record is stored
        (a rack's live view and alerts); it must be quick and must not raise.

    Raises
    ------
    perovlab_daq.bench.BenchError
        When an instrument cannot be reached (nothing has been written then).
    """
    from perovlab_daq.bench import Bench
    from perovlab_daq.catalog import register_run_end, register_run_start
    from perovlab_daq.run_progress import LiveFigures, TrackingWorker
    from perovlab_daq.storage import HDF5Results

    cls = plan.procedure_cls
    own_bench = bench is None
    if own_bench:
        roles = [
            *cls.REQUIRED_ROLES,
            *(r for r in (*cls.OPTIONAL_ROLES, "pixel_switch") if r in plan.bench_config.roles),
        ]
        bench = Bench(plan.bench_config, procedure=cls.NAME, roles=roles).open()
    handler: logging.Handler | None = None
    started = time.monotonic()
    stop_event = stop_event or threading.Event()
    interrupted_by = ""
    try:
        if log_file:
            handler = _attach_log_file(plan.path.with_suffix(plan.path.suffix + ".log"))
        procedure = cls(**plan.parameters)
        procedure.bench = bench
        procedure.pixel = plan.sample.get("pixel") or ""
        results = HDF5Results(
            procedure,
            plan.path,
            durability_interval_s=plan.durability_interval_s,
            power_loss_safe=plan.power_loss_safe,
            metadata=bench.metadata(),
            instruments=bench.snapshot(),
            sample=plan.sample,
            new_run=True,
        )
        registration = register_run_start(plan, results)
        worker = TrackingWorker(results, LiveFigures(cls.NAME))
        if on_record is not None:
            worker.emit = _tapped(worker.emit, on_record)  # the procedure's emit is worker.emit
        worker.start()
        last_progress = -1.0
        while worker.is_alive():
            # Not worker.join(): pymeasure's StoppableThread.join() stops the thread.
            threading.Thread.join(worker, 0.1)
            if stop_event.is_set() and not worker.should_stop():
                interrupted_by = getattr(stop_event, "reason", "") or "stop requested"
                log.warning("stopping the run safely (%s)", interrupted_by)
                # The reason the file keeps for its 'aborted' status (not "by the user").
                results.set_status("running", f"stopped safely: {interrupted_by}")
                results.add_event("warning", "stop", f"stop requested: {interrupted_by}")
                worker.stop()
            last_progress = _drain_progress(worker, on_progress, last_progress)
        _drain_progress(worker, on_progress, last_progress)
    finally:
        safe = bench.safe_state() if bench is not None else {}
        outputs = bench.output_states() if bench is not None else {}
        if own_bench and bench is not None:
            bench.close()
        if handler is not None:
            logging.getLogger().removeHandler(handler)
            try:
                handler.close()
            except OSError as exc:  # a full or vanished disk must not hide how the run ended
                log.error("closing the log file failed: %s", exc)
    outcome = RunOutcome(
        path=Path(results.path),  # the name claimed at creation (another run may have won)
        status=str(results.status),
        reason=str(getattr(results, "status_reason", "") or ""),
        interrupted_by=interrupted_by,
        elapsed_s=time.monotonic() - started,
        safe_state=safe,
        outputs=outputs,
    )
    from perovlab_daq.figures import analyse_and_store

    outcome.figures = analyse_and_store(cls, results)
    _close_results(results)
    record_outputs_not_off(outcome.path, outcome)
    outcome.file_readable, outcome.file_problem = check_file_readable(outcome.path)
    register_run_end(registration, outcome)
    return outcome


def _tapped(emit: Callable[[str, Any], None], tap: Callable[[str, Any], None]) -> Any:
    def emit_and_tap(topic: str, record: Any) -> None:
        emit(topic, record)
        tap(topic, record)

    return emit_and_tap


def _drain_progress(worker: Any, callback: ProgressCallback | None, last: float) -> float:
    while True:
        try:
            item = worker.monitor_queue.get_nowait()
        except queue.Empty:
            return last
        if item is None:
            continue
        topic, record = item
        if topic == "progress" and callback is not None:
            try:
                value = float(record)
            except (TypeError, ValueError):
                continue
            if value != last:
                callback(value, worker.live.text())  # lifetime: L/L0 and T_x so far
                last = value


def _close_results(results: Any) -> None:
    try:
        results.close()
    except Exception as exc:  # noqa: BLE001
        log.error("closing the results file failed: %s", exc)


class _RunLogHandler(logging.FileHandler):
    """The run's log file; on a write error (disk full) it says so once and stops."""

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 - logging API
        if getattr(self, "_failed", False):
            return
        self._failed = True
        print(
            f"warning: the run log {self.baseFilename} cannot be written any more "
            "(disk full or folder gone?); the run goes on without it",
            file=sys.stderr,
        )
        with contextlib.suppress(Exception):
            self.close()

    def emit(self, record: logging.LogRecord) -> None:
        if not getattr(self, "_failed", False):
            super().emit(record)


def _attach_log_file(path: Path) -> logging.Handler:
    # Created 0644 (minus umask) first: FileHandler alone would give 0666 under umask 0.
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY | os.O_APPEND, 0o644))
    handler = _RunLogHandler(path, encoding="utf-8")
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger().addHandler(handler)
    return handler
