"""HDF5Results: PyMeasure's ``Results`` on a crash-safe, live-readable HDF5 file per run.

The worker thread only queues records (a deque append per row); one writer thread commits
them to the SQLite journal in group commits, appends them to the SWMR HDF5 file and flushes
the file every half durability interval, so

* a killed process loses nothing committed to the journal (at most a fraction of the
  durability interval), and :func:`perovlab_daq.storage.recover` rebuilds the file;
* readers in this process (``.data``), in another process or in a notebook
  (``h5py.File(path, "r", swmr=True)`` or :meth:`HDF5Results.load`) see rows as they come;
* a full disk or unwritable folder raises :class:`StorageError` in the worker at the next
  record, so the run stops ``failed`` with the reason while everything before is kept.

The layout is documented in ``docs/hdf5-layout.md`` and written by
:class:`perovlab_daq.storage.layout.RunFileWriter`.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import logging
import os
import re
import shutil
import threading
import time
import weakref
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pandas as pd
from pymeasure.experiment import Procedure, Results
from pymeasure.experiment.procedure import UnknownProcedure

import perovlab_daq

from . import layout
from .errors import DiskFullError, StorageError
from .journal import Journal, fsync_directory, journal_path, writer_alive
from .layout import RunFileWriter

log = logging.getLogger(__name__)

#: Room kept free on the disk for closing the run file (status, events, analysis).
DISK_RESERVE_BYTES = 1024 * 1024
#: Above this much free space the per-batch disk check does nothing more than one statvfs.
DISK_COMFORTABLE_BYTES = 64 * 1024 * 1024

_NAN = float("nan")

#: pymeasure's integer statuses and ours.
PYMEASURE_TO_STATUS = {
    Procedure.QUEUED: layout.QUEUED,
    Procedure.RUNNING: layout.RUNNING,
    Procedure.FINISHED: layout.FINISHED,
    Procedure.ABORTED: layout.ABORTED,
    Procedure.FAILED: layout.FAILED,
}
STATUS_TO_PYMEASURE = {
    layout.QUEUED: Procedure.QUEUED,
    layout.RUNNING: Procedure.RUNNING,
    layout.FINISHED: Procedure.FINISHED,
    layout.ABORTED: Procedure.ABORTED,
    layout.FAILED: Procedure.FAILED,
    # pymeasure has no 'interrupted'; its GUI shows it as failed.
    layout.INTERRUPTED: Procedure.FAILED,
}


def status_string(status: int | str) -> str:
    """Return our status string for a pymeasure status number or a status string."""
    if isinstance(status, str):
        text = status.strip().lower()
        if text not in layout.STATUSES:
            raise ValueError(f"unknown run status {status!r}; one of {layout.STATUSES}")
        return text
    return PYMEASURE_TO_STATUS[int(status)]


@dataclass
class FrameSet:
    """The frames of one stream: ``intensity[i]`` was taken at ``context.iloc[i]``.

    Attributes
    ----------
    wavelength
        1-D wavelengths in nm.
    intensity
        2-D array, one row per frame.
    context
        One column per per-frame quantity (``time`` and the frame's context).
    units
        Units of ``intensity``, ``wavelength`` and each context column.
    """

    wavelength: np.ndarray
    intensity: np.ndarray
    context: pd.DataFrame
    units: dict[str, str] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.intensity)


def procedure_name(procedure_class: type) -> str:
    """Return the short procedure name (``NAME`` or the snake_case class name)."""
    name = getattr(procedure_class, "NAME", "") or ""
    if name:
        return str(name)
    base = procedure_class.__name__.removesuffix("Procedure") or procedure_class.__name__
    return re.sub(r"(?<!^)(?=[A-Z])", "_", base).lower()


def column_specs(procedure: Procedure) -> list[list[str]]:
    """Return ``[[key, dataset_name, units], ...]`` from ``COLUMNS`` and ``DATA_COLUMNS``."""
    declared = dict(getattr(procedure, "COLUMNS", None) or {})
    keys = list(getattr(procedure, "DATA_COLUMNS", None) or []) or list(declared)
    specs: list[list[str]] = []
    used: set[str] = set()
    for key in keys:
        name = layout.dataset_name(key)
        base, n = name, 1
        while name in used:
            n += 1
            name = f"{base}_{n}"
        used.add(name)
        units = declared.get(key)
        if units is None:
            units = layout.unit_from_column_name(key)
        specs.append([str(key), name, str(units or "")])
    return specs


def _parameter_records(procedure: Procedure) -> list[dict[str, Any]]:
    records = []
    for key, parameter in procedure.parameter_objects().items():
        try:
            value = parameter.value
        except ValueError:  # not set
            value = None
        records.append(
            {
                "key": key,
                "name": parameter.name,
                "value": value,
                "units": getattr(parameter, "units", None) or "",
                "type": type(parameter).__name__,
            }
        )
    return records


def describe_instrument(instrument: Any) -> dict[str, Any]:
    """Describe a connected instrument (a driver object or a ready-made mapping).

    A mapping is taken as ``{driver, resource, identity, settings, calibration_files}``;
    from a driver object the description is read from ``snapshot()``, ``identity`` and its
    adapter. Nothing here raises: a failing snapshot is recorded as ``snapshot_error``.
    """
    if isinstance(instrument, Mapping):
        description = dict(instrument)
    else:
        cls = type(instrument)
        description = {"driver": f"{cls.__module__}:{cls.__qualname__}"}
        adapter = getattr(instrument, "adapter", None)
        connection = getattr(adapter, "connection", None)
        resource = getattr(connection, "resource_name", None) or getattr(
            instrument, "resource", None
        )
        description["resource"] = resource
        try:
            description["identity"] = getattr(instrument, "identity", None)
        except Exception as exc:  # noqa: BLE001 - a snapshot must never stop a run
            description["identity_error"] = str(exc)
        try:
            description["settings"] = instrument.snapshot()
        except Exception as exc:  # noqa: BLE001
            description["snapshot_error"] = str(exc)
        description["calibration_files"] = list(getattr(instrument, "calibration_files", []) or [])
    calibrations = description.get("calibration_files") or []
    description["calibration_files"] = [
        c if isinstance(c, Mapping) and "sha256" in c else layout.calibration_record(c)
        for c in calibrations
    ]
    for key in ("driver", "resource", "identity"):
        if description.get(key) is None:
            description[key] = ""
    return description


class _RecordCapture:
    """Formatter handed to pymeasure's CSV ``Recorder``: it captures rows instead of text.

    pymeasure's plain :class:`~pymeasure.experiment.Worker` writes each 'results' record
    through ``FileHandler``s of ``results.data_filenames`` formatted by
    ``results.formatter``; pointing the file at the null device and the formatter here
    routes those rows to the HDF5 back end. :class:`perovlab_daq.storage.DaqWorker` does
    not need this path.
    """

    def __init__(self, results: HDF5Results) -> None:
        self._results = weakref.ref(results)

    def format(self, record: Any) -> str:
        results = self._results()
        if results is not None and isinstance(record, Mapping):
            results.append_row(record)
        return ""

    def format_header(self) -> str:
        return ""


class HDF5Results(Results):
    """Results of one run in one self-describing HDF5 file, usable where pymeasure wants Results.

    If ``data_filename`` exists it is opened for reading (as pymeasure's ``Results`` does);
    otherwise a new file is created at once (status ``queued``) so an unwritable folder
    fails before the run starts. Writing starts with :meth:`start` (called by
    :class:`~perovlab_daq.storage.DaqWorker`, or by the first record).

    Parameters
    ----------
    procedure
        The pymeasure procedure of the run (its parameters and column units are stored).
    data_filename
        Path of the ``.h5`` file.
    durability_interval_s
        Nothing recorded longer ago than this before a kill (or, with
        ``power_loss_safe``, a power cut) is lost.
    power_loss_safe
        fsync every journal commit, so records also survive a power cut.
    metadata
        Free-form run attributes (simulated, preset, ageing_acceleration, ...).
    instruments
        ``{role: description or driver}``; see :func:`describe_instrument`.
    sample
        Sample, device and pixel identifiers, operator, notes.

    Raises
    ------
    StorageError
        When the file or its journal cannot be created.
    """

    #: Rows queued but not yet written after which the worker waits for the writer
    #: (~440 bytes each as Python tuples: 14 MB; half a minute of a 1 kHz run). At
    #: 100,000 a run faster than the writer held 44 MB of tuples plus their batch copies.
    MAX_PENDING_ROWS = 32_768
    #: Frames queued but not yet written after which the worker waits (16 KB each at
    #: 1044 px with their wavelength copy).
    MAX_PENDING_FRAMES = 256
    #: The writer is woken every this many queued rows (a column chunk), so a fast run
    #: is written in chunk-sized batches instead of one batch per commit period.
    WAKE_ROWS = layout.ROW_CHUNK

    def __init__(
        self,
        procedure: Procedure,
        data_filename: str | os.PathLike[str] | Sequence[str],
        *,
        durability_interval_s: float = 1.0,
        power_loss_safe: bool = False,
        metadata: Mapping[str, Any] | None = None,
        instruments: Mapping[str, Any] | None = None,
        sample: Mapping[str, Any] | None = None,
    ) -> None:
        if not isinstance(procedure, Procedure):
            raise ValueError("HDF5Results needs a pymeasure Procedure object")
        if isinstance(data_filename, list | tuple):
            data_filename = data_filename[0]
        if not durability_interval_s > 0:
            raise ValueError("durability_interval_s must be positive")
        self.procedure = procedure
        self.procedure_class = type(procedure)
        self.parameters = procedure.parameter_objects()
        self.path = Path(os.fspath(data_filename))
        self.data_filename = os.fspath(self.path)
        # pymeasure's Recorder opens a FileHandler per entry here: give it the null device.
        self.data_filenames = [os.devnull]
        self.formatter = _RecordCapture(self)
        self.durability_interval_s = float(durability_interval_s)
        self.power_loss_safe = bool(power_loss_safe)

        self._lock = threading.RLock()  # guards the h5py file between writer and readers
        self._status = layout.QUEUED
        self._status_reason = ""
        self._events: list[dict[str, Any]] = []
        self._data: pd.DataFrame | None = None
        self._writer: RunFileWriter | None = None
        self._file: h5py.File | None = None
        self._journal: Journal | None = None
        self._thread: threading.Thread | None = None
        self._error: StorageError | None = None
        self._accepting = False
        self._closed = False
        self._rows: deque[tuple[Any, ...]] = deque()
        self._other: deque[tuple[str, Any]] = deque()
        self._pending_frames = 0
        self._unflushed_bytes = 0  # given to HDF5 since its last flush (may sit in its cache)
        self._wake = threading.Event()
        self._closing = False
        self._analysis: dict[str, Any] = {}
        self._run_metadata: dict[str, Any] = {}
        self._start_monotonic = time.monotonic()
        self._start_time = ""
        self._end_time = ""
        self._stream_pixels: dict[str, int] = {}

        if self.path.exists():
            self._mode = "read"
            self._load_from_file()
            return
        self._mode = "write"
        self._columns = column_specs(procedure)
        self._column_keys = [key for key, _name, _units in self._columns]
        self._units = {key: units for key, _name, units in self._columns}
        if len(self._column_keys) == 1:
            key = self._column_keys[0]
            self._getter = lambda record: (record[key],)
        elif self._column_keys:
            self._getter = itemgetter(*self._column_keys)
        else:
            self._getter = lambda record: ()
        self._first_row_checked = False
        self._header = self._make_header(metadata, instruments, sample)
        self._create_file()

    # ------------------------------------------------------------------ creation
    def _make_header(
        self,
        metadata: Mapping[str, Any] | None,
        instruments: Mapping[str, Any] | None,
        sample: Mapping[str, Any] | None,
    ) -> dict[str, Any]:
        cls = self.procedure_class
        return {
            "perovlab_daq_version": perovlab_daq.__version__,
            "file_format_version": layout.FILE_FORMAT_VERSION,
            "created": layout.now_iso(),
            "procedure": procedure_name(cls),
            "procedure_class": f"{cls.__module__}:{cls.__qualname__}",
            "title": getattr(cls, "TITLE", "") or "",
            "columns": self._columns,
            "parameters": _parameter_records(self.procedure),
            "instruments": {
                str(role): describe_instrument(inst) for role, inst in (instruments or {}).items()
            },
            "sample": dict(sample or {}),
            "metadata": dict(metadata or {}),
            "durability_interval_s": self.durability_interval_s,
            "power_loss_safe": self.power_loss_safe,
        }

    def _create_file(self) -> None:
        """Write the skeleton under a temporary name, then link it into place.

        A process killed while creating leaves either no run file or a complete one
        (never a torn skeleton without a journal); the link fails if the name is taken,
        so a run is never overwritten.
        """
        folder = self.path.parent
        temporary = folder / f".{self.path.name}.{os.getpid()}.creating"
        if self.path.exists():
            raise StorageError(f"{self.path} already exists; runs are never overwritten")
        try:
            # 0o644 (minus umask): run files are never world-writable.
            fd = os.open(temporary, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            os.close(fd)
        except OSError as exc:
            raise StorageError(
                f"cannot create the run file {self.path}: {exc.strerror or exc}. "
                f"Check that the folder {folder} exists and is writable."
            ) from exc
        try:
            self._writer = RunFileWriter(self._header)
            with h5py.File(
                temporary,
                "w",
                libver=layout.LIBVER,
                locking=False,
                rdcc_nbytes=layout.CHUNK_CACHE_BYTES,
            ) as file:
                self._writer.write_skeleton(file)
            self._writer.file = None
            _fsync_file(temporary)
            try:
                os.link(temporary, self.path)
            except FileExistsError:
                raise StorageError(
                    f"{self.path} already exists; runs are never overwritten"
                ) from None
            except OSError:  # file system without hard links: exclusive rename-free path
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
                os.close(fd)
                os.replace(temporary, self.path)
            fsync_directory(folder)
        except StorageError:
            raise
        except (OSError, ValueError) as exc:
            raise StorageError(f"cannot write the run file {self.path}: {exc}") from exc
        finally:
            with contextlib.suppress(OSError):
                temporary.unlink()

    # ------------------------------------------------------------------ writer side
    @property
    def error(self) -> StorageError | None:
        """The storage error that stopped writing, if any."""
        return self._error

    def start(self) -> None:
        """Open the journal and the live SWMR file and start the writer thread; idempotent.

        Raises
        ------
        StorageError
            If the file is read-only here, closed, or cannot be opened for writing.
        """
        if self._accepting:
            return
        if self._error is not None:
            raise self._error
        if self._mode != "write" or self._closed:
            raise StorageError(f"{self.path} is not open for writing (existing or closed run file)")
        if self._thread is not None:
            return
        self._start_time = layout.now_iso()
        self._start_monotonic = time.monotonic()
        self._status = layout.RUNNING
        try:
            self._journal = Journal(
                journal_path(self.path), create=True, power_loss_safe=self.power_loss_safe
            )
            self._journal.append("header", self._header)
            self._journal.append("start", {"start_time": self._start_time})
            self._journal.commit()
            file = h5py.File(
                self.path,
                "r+",
                libver=layout.LIBVER,
                locking=False,
                rdcc_nbytes=layout.CHUNK_CACHE_BYTES,
            )
            self._writer.attach(file)
            self._writer.start_run(self._start_time)
            file.swmr_mode = True
            file.flush()
            self._file = file
        except (OSError, ValueError) as exc:
            error = (
                exc
                if isinstance(exc, StorageError)
                else StorageError(f"cannot open {self.path} for writing: {exc}")
            )
            self._error = error
            raise error from exc
        self._last_flush = time.monotonic()
        # Each commit costs the same fixed work whatever its size (a journal commit,
        # a resize and write of every column and event dataset, ~1 ms under the GIL the
        # worker needs): a quarter of the durability interval keeps the guarantee
        # (a kill loses less than it) with 2.5x fewer commits than a 0.1 s cap did. Live
        # readers see rows at each flush (every half interval) either way; a fast run
        # still wakes the writer every WAKE_ROWS rows.
        self._commit_period = self.durability_interval_s / 4
        self._flush_period = self.durability_interval_s / 2
        self._thread = threading.Thread(
            target=self._writer_loop, name=f"hdf5-writer {self.path.name}", daemon=True
        )
        self._accepting = True
        self._thread.start()
        _OPEN_RESULTS.add(self)

    def _not_accepting(self) -> None:
        if self._error is not None:
            raise StorageError(str(self._error)) from self._error
        if self._closed:
            raise StorageError(f"{self.path} is closed; no more records can be added")
        self.start()

    def append_row(self, record: Mapping[str, Any]) -> None:
        """Queue one data row ``{column: value}``; missing columns are stored as NaN.

        Raises
        ------
        StorageError
            If writing has failed (disk full, folder gone) or the file is closed.
        """
        if not self._accepting:
            self._not_accepting()
        if not self._first_row_checked:
            self._check_first_row(record)
        try:
            values = self._getter(record)
        except (KeyError, TypeError):
            values = tuple(record.get(key, _NAN) for key in self._column_keys)
        rows = self._rows
        rows.append(values)
        queued = len(rows)
        if not queued % self.WAKE_ROWS:
            self._wake.set()
            if queued >= self.MAX_PENDING_ROWS:
                self._wait_for_writer()

    def append_rows(self, columns: Mapping[str, Sequence[Any]]) -> None:
        """Queue many rows given as ``{column: sequence}`` (pymeasure's 'batch results')."""
        lengths = {len(v) for v in columns.values()}
        if len(lengths) > 1:
            raise ValueError(f"columns of a batch differ in length: {sorted(lengths)}")
        count = lengths.pop() if lengths else 0
        for index in range(count):
            self.append_row({key: values[index] for key, values in columns.items()})

    def _check_first_row(self, record: Mapping[str, Any]) -> None:
        self._first_row_checked = True
        unknown = [key for key in record if key not in self._units]
        if unknown:
            self.add_event(
                "warning",
                "unknown_columns",
                f"row keys not in the procedure's columns are not stored: {unknown}",
            )

    def append_frame(
        self,
        stream: str = "spectra",
        *,
        wavelength: Any,
        intensity: Any,
        context: Mapping[str, Any] | None = None,
        units: Mapping[str, str] | None = None,
        intensity_units: str = "counts",
    ) -> None:
        """Queue one array frame (a spectrum) with its per-frame context.

        ``time`` (seconds since the run started) is added to the context if absent.

        Raises
        ------
        ValueError
            If the frame's length differs from the wavelength axis or earlier frames.
        StorageError
            If writing has failed or the file is closed.
        """
        if not self._accepting:
            self._not_accepting()
        intensity = np.array(intensity, dtype=np.float64)
        wavelength = np.array(wavelength, dtype=np.float64)
        if intensity.ndim != 1 or wavelength.shape != intensity.shape:
            raise ValueError(
                f"frame of stream {stream!r}: intensity {intensity.shape} and wavelength "
                f"{wavelength.shape} must be 1-D and of equal length"
            )
        pixels = self._stream_pixels.setdefault(stream, len(intensity))
        if pixels != len(intensity):
            raise ValueError(
                f"stream {stream!r} has {pixels} pixels per frame, got {len(intensity)}"
            )
        ctx = {}
        for key, value in (context or {}).items():
            try:
                ctx[str(key)] = float(value)
            except (TypeError, ValueError):
                ctx[str(key)] = _NAN
        ctx.setdefault("time", time.monotonic() - self._start_monotonic)
        self._other.append(
            ("frame", (stream, wavelength, intensity, ctx, dict(units or {}), intensity_units))
        )
        self._pending_frames += 1
        if self._pending_frames >= self.MAX_PENDING_FRAMES:
            self._wait_for_writer()

    def add_event(self, level: str, kind: str, message: str) -> None:
        """Record a time-stamped event (warning, fault, retry, pause...).

        Events are kept even when the writer has failed (they are logged), so this never
        raises for storage reasons.
        """
        event = {
            "time": time.monotonic() - self._start_monotonic,
            "timestamp": layout.now_iso(),
            "level": str(level),
            "kind": str(kind),
            "message": str(message),
        }
        self._events.append(event)
        if self._accepting:
            self._other.append(("event", event))
        elif self._mode == "write" and not self._closed and self._error is None:
            with contextlib.suppress(StorageError):
                self.start()
                self._other.append(("event", event))
        elif self._error is not None:  # the disk failed: never touch the file again
            log.error("event %s kept in memory only (storage failed): %s", kind, message)
        elif self._mode == "read":  # a closed or loaded run: append to the file itself
            try:
                with _open_rw(self.path) as file:
                    if "entry/events/time" in file:
                        writer = RunFileWriter({})
                        writer.file = file
                        writer.append_closed_events([event])
                _fsync_file(self.path)
            except OSError as exc:
                log.error("event %s not stored in %s: %s", kind, self.path, exc)

    def set_status(self, status: int | str, reason: str | None = None) -> None:
        """Set the run status (string or pymeasure number) and, for failures, the reason."""
        text = status_string(status)
        self._status = text
        if reason is not None:
            self._status_reason = str(reason)
        if self._accepting:
            self._other.append(("status", {"status": text, "reason": self._status_reason}))

    def store_metadata(self) -> None:
        """Store the procedure's evaluated pymeasure ``Metadata`` (called by the worker)."""
        values = {}
        for key, item in self.procedure.metadata_objects().items():
            try:
                value = item.value
            except ValueError:
                value = None
            values[key] = {"value": value, "units": getattr(item, "units", None) or ""}
        if not values:
            return
        self._run_metadata.update(values)
        if self._accepting:
            self._other.append(("metadata", values))

    def write_analysis(self, analysis: Mapping[str, Any]) -> None:
        """Store figures computed at the end of a run in ``entry/analysis``.

        Values are numbers, strings, arrays, ``{"value": v, "units": u}`` or nested
        mappings. Works while the run is open (written at close) and after it is closed.
        """
        analysis = dict(analysis)
        if self._error is not None:
            raise StorageError(f"analysis not written: {self._error}") from self._error
        if self._accepting:
            self._analysis.update(analysis)
            self._other.append(("analysis", analysis))
            self._wake.set()
            return
        try:
            with _open_rw(self.path) as file:
                layout.write_mapping(layout.analysis_group(file), analysis)
            _fsync_file(self.path)
        except OSError as exc:
            raise StorageError(f"cannot write the analysis into {self.path}: {exc}") from exc
        self._analysis.update(analysis)

    def flush(self, timeout: float = 30.0) -> None:
        """Wait until every queued record is committed to the journal and the file is flushed."""
        if not self._accepting:
            if self._error is not None:
                raise self._error
            return
        self._flush_request = threading.Event()
        self._other.append(("flush", self._flush_request))
        self._wake.set()
        if not self._flush_request.wait(timeout):
            raise StorageError(f"writer of {self.path} did not flush within {timeout} s")
        if self._error is not None:
            raise self._error

    def _wait_for_writer(self) -> None:
        # Back-pressure keeps memory bounded when the writer falls behind.
        self._wake.set()
        while (
            (
                len(self._rows) >= self.MAX_PENDING_ROWS // 2
                or self._pending_frames >= self.MAX_PENDING_FRAMES // 2
            )
            and self._thread is not None
            and self._thread.is_alive()
        ):
            time.sleep(0.002)
        if self._error is not None:
            raise StorageError(str(self._error)) from self._error

    def close(self, status: int | str | None = None, reason: str | None = None) -> None:
        """Finish the run: drain the queue, write the final status, close and sync the file.

        Parameters
        ----------
        status
            Final status; default: the last status set, or ``finished`` if still running.
        reason
            Why the run failed or was aborted.

        Raises
        ------
        StorageError
            If writing failed at any point; the file is then marked ``failed`` as far as
            the disk allows, and the journal is kept for ``perovlab-daq recover``.
        """
        if status is not None:
            self.set_status(status, reason)
        elif reason is not None:
            self._status_reason = str(reason)
        if self._closed:
            return
        self._closed = True
        _OPEN_RESULTS.discard(self)
        if self._thread is None:  # never started: the file stays a valid queued skeleton
            self._accepting = False
            return
        self._closing = True
        self._wake.set()
        self._thread.join()
        self._accepting = False
        if self._error is not None:
            raise self._error

    # ------------------------------------------------------------------ writer thread
    def _writer_loop(self) -> None:
        try:
            while True:
                self._wake.wait(self._commit_period)
                self._wake.clear()
                closing = self._closing
                flushes = self._process_pending()
                now = time.monotonic()
                if flushes or closing or now - self._last_flush >= self._flush_period:
                    with self._lock:
                        self._file.flush()
                    self._unflushed_bytes = 0
                    self._last_flush = now
                for request in flushes:
                    request.set()
                if closing and not self._rows and not self._other:
                    break
            self._finalize()
        except BaseException as exc:  # noqa: BLE001 - reported to the worker, never lost
            self._fail(exc)

    def _process_pending(self) -> list[threading.Event]:
        rows = self._rows
        count = len(rows)
        batch = [rows.popleft() for _ in range(count)]
        others = []
        while self._other:
            others.append(self._other.popleft())
        flushes = []
        journal = self._journal
        values = self._rows_to_array(batch) if batch else None
        if values is not None:
            journal.append("rows", {}, {"values": values})
        frames: dict[str, list] = {}
        events = []
        for kind, payload in others:
            if kind == "frame":
                frames.setdefault(payload[0], []).append(payload)
            elif kind == "event":
                events.append(payload)
                journal.append("event", payload)
            elif kind == "flush":
                flushes.append(payload)
            else:  # status, metadata, analysis: kept for the end of the run
                journal.append(kind, payload)
                if kind == "metadata":
                    self._run_metadata.update(payload)
        frame_batches = []
        for stream, items in frames.items():
            wavelength = items[0][1]
            intensity = np.stack([item[2] for item in items])
            keys: list[str] = []
            for item in items:
                keys.extend(k for k in item[3] if k not in keys)
            context = {k: np.array([item[3].get(k, _NAN) for item in items]) for k in keys}
            units = {}
            for item in items:
                units.update(item[4])
            context_units = {
                k: units.get(k) or self._units.get(k) or layout.KNOWN_UNITS.get(k, "") for k in keys
            }
            meta = {
                "stream": stream,
                "context_units": context_units,
                "intensity_units": items[0][5],
                "keys": keys,
            }
            arrays = {"wavelength": wavelength, "intensity": intensity}
            arrays.update({f"ctx{i}": context[k] for i, k in enumerate(keys)})
            journal.append("frames", meta, arrays)
            frame_batches.append(
                (stream, wavelength, intensity, context, context_units, items[0][5])
            )
        journal.commit()  # the durable point: a kill from here on loses nothing above
        # After the journal (SQLite fails cleanly on a full disk), before HDF5 (which
        # must never meet one): the batch is already durable if this stops the run.
        batch_bytes = self._check_disk_space(values, frame_batches, events)
        with self._lock:
            if values is not None:
                self._writer.append_rows(values)
            for stream, wavelength, intensity, context, context_units, iunits in frame_batches:
                if not self._writer.has_stream(stream, context):
                    self._restructure(
                        lambda w, s=stream, wl=wavelength, cu=context_units, iu=iunits: (
                            w.add_stream(s, wl, cu, iu)
                        )
                    )
                self._writer.append_frames(stream, intensity, context)
            if events:
                self._writer.append_events(events)
        self._unflushed_bytes += batch_bytes
        self._pending_frames -= sum(len(items) for items in frames.values())
        return flushes

    def _check_disk_space(
        self, values: np.ndarray | None, frame_batches: list[tuple[Any, ...]], events: list[Any]
    ) -> int:
        """Stop the run before HDF5 would meet a full disk; return the batch's bytes.

        A write that fails inside HDF5 leaves the library in a state where closing the
        file (or just exiting) can crash the process. So a batch goes into the HDF5 file
        only if the disk has room for it, for what HDF5 still holds in its chunk cache
        since the last flush, for one new chunk of every dataset, and for closing the
        file; otherwise :class:`DiskFullError` ends the run with the file closable.
        """
        batch_bytes = 0 if values is None else values.nbytes
        for _stream, _wavelength, intensity, context, _units, _iunits in frame_batches:
            batch_bytes += intensity.nbytes + sum(np.asarray(v).nbytes for v in context.values())
        batch_bytes += 512 * len(events)
        try:
            free = shutil.disk_usage(self.path.parent).free
        except OSError as exc:
            raise StorageError(f"cannot check free space in {self.path.parent}: {exc}") from exc
        if free >= DISK_COMFORTABLE_BYTES:
            return batch_bytes
        needed = batch_bytes + self._unflushed_bytes + self._chunk_bytes() + DISK_RESERVE_BYTES
        if free < needed:
            raise DiskFullError(
                f"disk full: {free / 1e6:.2f} MB free in {self.path.parent}, writing on "
                f"needs {needed / 1e6:.2f} MB; the run stopped with everything recorded so "
                "far kept"
            )
        return batch_bytes

    def _chunk_bytes(self) -> int:
        """Return the bytes of one chunk of every chunked dataset in the run file."""
        total = 0

        def visit(_name: str, item: Any) -> None:
            nonlocal total
            if isinstance(item, h5py.Dataset) and item.chunks is not None:
                total += int(np.prod(item.chunks)) * item.dtype.itemsize

        with self._lock:
            if self._file is not None:
                self._file.visititems(visit)
        return total

    def _rows_to_array(self, batch: list[tuple[Any, ...]]) -> np.ndarray:
        width = len(self._column_keys)
        try:
            values = np.array(batch, dtype=np.float64)
            if values.shape == (len(batch), width):
                return values
        except (TypeError, ValueError):
            pass
        values = np.full((len(batch), width), np.nan)
        for row_index, row in enumerate(batch):
            for col_index, value in enumerate(row[:width]):
                values[row_index, col_index] = self._to_float(col_index, value)
        return values

    def _to_float(self, col_index: int, value: Any) -> float:
        if isinstance(value, bool | int | float | np.number):
            return float(value)
        units = self._columns[col_index][2]
        magnitude = getattr(value, "magnitude", None)
        if magnitude is not None and hasattr(value, "m_as"):  # pint Quantity
            try:
                return float(value.m_as(units)) if units else float(magnitude)
            except Exception:  # noqa: BLE001 - wrong dimension: stored as NaN
                pass
        elif isinstance(value, str):
            with contextlib.suppress(ValueError):
                return float(value)
        key = self._column_keys[col_index]
        if key not in getattr(self, "_warned_columns", set()):
            self._warned_columns = getattr(self, "_warned_columns", set()) | {key}
            hint = " (arrays go in frames, not rows)" if np.ndim(value) else ""
            log.warning("column %r: value %r is not a number; stored as NaN%s", key, value, hint)
        return _NAN

    def _restructure(self, change: Any) -> None:
        """Leave SWMR mode, apply ``change(writer)``, and resume SWMR (new objects only)."""
        self._file.flush()
        self._file.close()
        file = _open_rw(self.path)
        self._writer.attach(file)
        change(self._writer)
        file.swmr_mode = True
        file.flush()
        self._file = file

    def _finalize(self) -> None:
        self._end_time = layout.now_iso()
        if self._status in (layout.RUNNING, layout.QUEUED):
            self._status = layout.FINISHED
        self._journal.append(
            "status",
            {"status": self._status, "reason": self._status_reason, "end_time": self._end_time},
        )
        self._journal.commit()
        with self._lock:
            self._file.close()
            self._file = None
            with _open_rw(self.path) as file:
                self._writer.attach(file)
                self._writer.finalize(
                    self._status,
                    self._status_reason,
                    self._end_time,
                    analysis=self._analysis,
                    run_metadata=self._run_metadata,
                )
            self._writer.file = None
        _fsync_file(self.path)
        self._journal.remove()
        self._journal = None
        self._mode = "read"
        self.procedure.status = STATUS_TO_PYMEASURE[self._status]
        log.info("run file %s closed: %s, %d rows", self.path, self._status, self._writer.rows)

    def _fail(self, exc: BaseException) -> None:
        message = (
            f"storage failed for {self.path}: {exc}. Data recorded before this point is kept "
            f"(run 'perovlab-daq recover {self.path}' if the file does not open)."
        )
        error = StorageError(message)
        error.__cause__ = exc
        self._error = error
        self._accepting = False
        log.error("%s", message, exc_info=exc)
        self._status = layout.FAILED
        self._status_reason = message
        # Best effort: mark the file failed and close it; the journal stays for recovery.
        # Not on a full, read-only or vanished disk: HDF5 can hang for ever rewriting a
        # file it cannot extend, and recover() rebuilds it from the journal anyway.
        disk_unusable = _disk_unusable(exc)
        with contextlib.suppress(Exception):
            if self._journal is not None:
                self._journal.append(
                    "status",
                    {"status": layout.FAILED, "reason": message, "end_time": layout.now_iso()},
                )
                self._journal.commit()
        with contextlib.suppress(Exception), self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None
            if not disk_unusable:
                with _open_rw(self.path) as file:
                    self._writer.attach(file)
                    self._writer.finalize(layout.FAILED, message, layout.now_iso())
            self._writer.file = None
        with contextlib.suppress(Exception):
            if self._journal is not None:
                self._journal.close()
        self._mode = "read"
        flush_request = getattr(self, "_flush_request", None)
        if flush_request is not None:
            flush_request.set()

    # ------------------------------------------------------------------ reading
    @property
    def status(self) -> str:
        """Run status: queued, running, finished, aborted, failed or interrupted."""
        return self._status

    @property
    def status_reason(self) -> str:
        """Why the run failed, was aborted or was interrupted ('' otherwise)."""
        return self._status_reason

    @property
    def metadata(self) -> dict[str, Any]:
        """Return the run metadata (``entry/metadata``): bench, preset, acceleration, set-up.

        While a run is being written this is what it was created with plus the pymeasure
        metadata evaluated so far; for a loaded file, what the file holds.
        """
        if hasattr(self, "_file_metadata"):
            return dict(self._file_metadata)
        return {**(self._header.get("metadata") or {}), **self._run_metadata}

    @property
    def stored_parameters(self) -> dict[str, Any]:
        """Return the parameters exactly as stored in ``entry/parameters``.

        Unlike ``procedure`` (whose class fills in defaults), a parameter the file lacks
        is absent here, so an analysis can tell "missing" from "default".
        """
        if hasattr(self, "_stored_parameters"):
            return dict(self._stored_parameters)
        return dict(self.procedure.parameter_values())

    @property
    def columns(self) -> dict[str, str]:
        """Column name -> unit, in column order."""
        return dict(self._units)

    @property
    def events(self) -> list[dict[str, Any]]:
        """Events of the run: dicts with time (s), timestamp, level, kind, message."""
        return list(self._events)

    @property
    def analysis(self) -> dict[str, Any]:
        """Figures stored in ``entry/analysis``."""
        return dict(self._analysis)

    @property
    def data(self) -> pd.DataFrame:
        """The data rows as a DataFrame; each call appends only rows new since the last."""
        have = 0 if self._data is None else len(self._data)
        with self._lock:
            if self._live_writer():
                available = self._writer.rows
                new = {
                    key: ds[have:available]
                    for key, ds in zip(self._column_keys, self._writer.column_datasets, strict=True)
                }
            else:
                with self._reader() as file:
                    new, available = self._read_rows(file, have) if file else ({}, 0)
        if self._data is None:
            self._data = pd.DataFrame({key: pd.Series(dtype="f8") for key in self._column_keys})
        if available > have and new:
            # The arrays were just read for this frame: no copy (a default DataFrame
            # consolidates them into one block, doubling the memory of a 1M-row run).
            frame = pd.DataFrame(new, index=pd.RangeIndex(have, available), copy=False)
            self._data = frame if have == 0 else pd.concat([self._data, frame])
        return self._data

    def reload(self) -> None:
        """Re-read everything from the file on the next access."""
        self._data = None

    def _live_writer(self) -> bool:
        return self._file is not None and self._writer is not None and self._writer.file is not None

    @contextlib.contextmanager
    def _reader(self) -> Iterator[h5py.File | None]:
        """Open the file for one read (never held open, so writers can re-open it)."""
        if self._mode == "write":
            yield None  # not started, or the writer is between sessions: use the cache
            return
        file = _open_for_reading(self.path)
        try:
            yield file
        finally:
            file.close()

    def _read_rows(self, file: h5py.File, have: int) -> tuple[dict[str, np.ndarray], int]:
        group = file["entry/data"] if "entry/data" in file else None
        if group is None:
            return {}, 0
        datasets = [group[name] for _key, name, _units in self._columns if name in group]
        if len(datasets) != len(self._columns):
            return {}, 0
        available = min((len(d) for d in datasets), default=0)
        return {
            key: ds[have:available] for key, ds in zip(self._column_keys, datasets, strict=True)
        }, available

    def read_columns(self, keys: Sequence[str]) -> dict[str, np.ndarray]:
        """Return only the named data columns as arrays; columns the run lacks are left out.

        Unlike :attr:`data`, nothing is cached and the other columns are never read: an
        end-of-run analysis that needs 8 of 12 columns of a 1M-row run holds 64 MB
        instead of a 96 MB data frame that stays alive with the run object.

        Parameters
        ----------
        keys : sequence of str
            Column names (as in :attr:`columns`).

        Returns
        -------
        dict
            Column name -> float64 array of all rows written so far, in ``keys`` order.
        """
        wanted = [key for key in dict.fromkeys(keys) if key in self._units]
        if self._data is not None and len(self._data) and not self._live_writer():
            return {key: self._data[key].to_numpy() for key in wanted}
        names = {key: name for key, name, _units in self._columns}
        with self._lock:
            if self._live_writer():
                available = self._writer.rows
                datasets = dict(zip(self._column_keys, self._writer.column_datasets, strict=True))
                return {key: datasets[key][:available] for key in wanted}
            with self._reader() as file:
                if file is None or "entry/data" not in file:
                    return {}
                group = file["entry/data"]
                present = [key for key in wanted if names[key] in group]
                if len(present) < len(wanted):
                    return {}
                if file.swmr_mode:
                    for key in present:
                        group[names[key]].refresh()
                # All columns end at the same row except in a file a writer is extending.
                available = min(
                    (len(group[name]) for _key, name, _units in self._columns if name in group),
                    default=0,
                )
                return {key: group[names[key]][:available] for key in present}

    def frames(self, stream: str = "spectra", *, with_intensity: bool = True) -> FrameSet:
        """Return the frames of ``stream`` (wavelength, 2-D intensity, context columns).

        Parameters
        ----------
        stream : str
            Name of the frame stream.
        with_intensity : bool
            False: leave the spectra in the file (``intensity`` then has shape
            ``(frames, 0)``, so ``len()`` still counts frames); read them in blocks with
            :meth:`iter_frames`. 10,000 spectra of 1044 px are 84 MB.

        Raises
        ------
        KeyError
            If the run has no such stream (yet).
        """
        with self._lock:
            if self._live_writer():
                count = self._writer.frames.get(stream)
                if count is None:
                    raise KeyError(f"no frame stream {stream!r} in {self.path}")
                return _read_frames(self._writer.file, stream, count, with_intensity)
            with self._reader() as file:
                if file is None or layout.dataset_name(stream) not in file["entry"]:
                    raise KeyError(f"no frame stream {stream!r} in {self.path}")
                return _read_frames(file, stream, None, with_intensity)

    def iter_frames(
        self,
        stream: str = "spectra",
        block_frames: int = 1024,
        *,
        start: int = 0,
        stop: int | None = None,
    ) -> Iterator[tuple[int, np.ndarray]]:
        """Yield the spectra of ``stream`` in blocks, so no more than one block is held.

        Parameters
        ----------
        stream : str
            Name of the frame stream.
        block_frames : int
            Frames per block (1024 frames of 1044 px are 8.5 MB).
        start, stop : int
            Range of frames to read (default: all frames written so far).

        Yields
        ------
        tuple
            Index of the block's first frame, and its ``(k, pixels)`` intensities.

        Raises
        ------
        KeyError
            If the run has no such stream (yet).
        """
        if block_frames < 1:
            raise ValueError(f"block_frames must be >= 1, got {block_frames}")
        name = layout.dataset_name(stream)
        with self._lock:
            live = self._live_writer()
        if live:
            # The writer thread shares the file: hold the lock for one block at a time.
            count = self._writer.frames.get(stream)
            if count is None:
                raise KeyError(f"no frame stream {stream!r} in {self.path}")
            end = count if stop is None else min(stop, count)
            for first in range(start, end, block_frames):
                with self._lock:
                    dataset = self._writer.file["entry"][name]["intensity"]
                    block = dataset[first : min(first + block_frames, end)]
                yield first, block
            return
        with self._reader() as file:
            if file is None or name not in file["entry"]:
                raise KeyError(f"no frame stream {stream!r} in {self.path}")
            dataset = file["entry"][name]["intensity"]
            if file.swmr_mode:
                dataset.refresh()
            end = len(dataset) if stop is None else min(stop, len(dataset))
            for first in range(start, end, block_frames):
                yield first, dataset[first : min(first + block_frames, end)]

    def streams(self) -> list[str]:
        """Names of the frame streams of this run."""
        with self._lock:
            if self._live_writer():
                return list(self._writer.frames)
            with self._reader() as file:
                if file is None:
                    return []
                return [
                    name
                    for name, item in file["entry"].items()
                    if isinstance(item, h5py.Group) and "intensity" in item
                ]

    # ------------------------------------------------------------------ loading
    @staticmethod
    def load(
        data_filename: str | os.PathLike[str], procedure_class: type | None = None
    ) -> HDF5Results:
        """Open a run file: procedure (class re-imported, parameters set), status, data.

        A file still being written is read live (SWMR); a file whose writer died reads
        as ``interrupted`` until recovered. If the procedure class cannot be imported, a
        pymeasure ``UnknownProcedure`` carries the parameters.

        Raises
        ------
        StorageError
            If the file cannot be opened as a run file.
        """
        path = Path(os.fspath(data_filename))
        if not path.exists():
            raise StorageError(f"no run file at {path}")
        file = _open_for_reading(path)
        try:
            procedure = _procedure_from_file(file, procedure_class)
        finally:
            file.close()
        return HDF5Results(procedure, path)

    def _load_from_file(self) -> None:
        with _open_for_reading(self.path) as file:
            self._read_header(file)

    def _read_header(self, file: h5py.File) -> None:
        entry = file["entry"] if "entry" in file else None
        if entry is None:
            raise StorageError(f"{self.path} has no 'entry' group: not a run file")
        attrs = entry.attrs
        self._status = str(_attr(attrs, "status", layout.FINISHED)) or layout.FINISHED
        self._status_reason = str(_attr(attrs, "status_reason", ""))
        self._start_time = str(_attr(attrs, "start_time", ""))
        self._end_time = str(_attr(attrs, "end_time", ""))
        if self._status == layout.RUNNING and not writer_alive(self.path):
            if journal_path(self.path).exists() or file.swmr_mode:
                self._status = layout.INTERRUPTED
                self._status_reason = (
                    "the writer stopped without closing the file; run "
                    f"'perovlab-daq recover {self.path}'"
                )
        self._columns = []
        if "data" in entry:
            for name, dataset in entry["data"].items():
                if isinstance(dataset, h5py.Dataset) and dataset.ndim == 1:
                    key = str(_attr(dataset.attrs, "long_name", name))
                    self._columns.append([key, name, str(_attr(dataset.attrs, "units", ""))])
        self._column_keys = [key for key, _name, _units in self._columns]
        self._units = {key: units for key, _name, units in self._columns}
        if not getattr(self.procedure, "DATA_COLUMNS", None) or isinstance(
            self.procedure, UnknownProcedure
        ):
            self.procedure.DATA_COLUMNS = list(self._column_keys)
        self._events = _read_events(entry)
        self._stored_parameters = (
            layout.read_mapping(entry["parameters"]) if "parameters" in entry else {}
        )
        self._file_metadata: dict[str, Any] = {}
        if "metadata" in entry:
            group = entry["metadata"]
            self._file_metadata.update(
                {key: _attr(group.attrs, key, None) for key in group.attrs if key != "NX_class"}
            )
            self._file_metadata.update(layout.read_mapping(group))
        if "analysis" in entry:
            self._analysis = layout.read_mapping(entry["analysis"])
        self.procedure.status = STATUS_TO_PYMEASURE.get(self._status, Procedure.FINISHED)

    def __getstate__(self) -> dict[str, Any]:
        raise TypeError("HDF5Results cannot be pickled; pass the file path instead")

    def __repr__(self) -> str:
        return (
            f"<HDF5Results(path='{self.data_filename}', procedure="
            f"{self.procedure_class.__name__}, status={self._status})>"
        )

    # pymeasure CSV API that has no meaning here
    def header(self) -> str:
        """Return '' (pymeasure's CSV header; the HDF5 file describes itself)."""
        return ""

    def labels(self) -> str:
        """Return '' (pymeasure's CSV column line)."""
        return ""


def _attr(attrs: Any, name: str, default: Any) -> Any:
    value = attrs.get(name, default)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.generic):
        return value.item()
    return value


#: errno values of a disk that cannot take more writes (full, quota, size cap, read-only).
_DISK_ERRNOS = {28, 122, 27, 30, 5, 2, 20}
_DISK_TEXTS = (
    "no space left",
    "disk is full",
    "disk quota",
    "file too large",
    "read-only file system",
    "errno = 28",
    "errno = 30",
    "errno = 27",
    "readonly database",
    "disk i/o error",
)


def _disk_unusable(exc: BaseException | None) -> bool:
    """Return whether ``exc`` (or its causes) says the disk cannot be written any more."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, OSError) and exc.errno in _DISK_ERRNOS:
            return True
        text = str(exc).lower()
        if any(marker in text for marker in _DISK_TEXTS):
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    fsync_directory(path.parent)


def _open_rw(path: Path, attempts: int = 40) -> h5py.File:
    """Open a run file for writing outside SWMR mode, waiting for in-process readers."""
    for attempt in range(attempts):
        try:
            return h5py.File(
                path,
                "r+",
                libver=layout.LIBVER,
                locking=False,
                rdcc_nbytes=layout.CHUNK_CACHE_BYTES,
            )
        except OSError as exc:
            # Another handle in this process (a reader) has the file open read-only.
            if "already open" not in str(exc) or attempt == attempts - 1:
                raise
            time.sleep(0.05)
    raise AssertionError("unreachable")


def _open_for_reading(path: Path, attempts: int = 5) -> h5py.File:
    """Open a run file read-only, live (SWMR) if a writer has it open; retry briefly."""
    last: Exception | None = None
    for attempt in range(attempts):
        for swmr in (False, True):
            try:
                return h5py.File(
                    path,
                    "r",
                    swmr=swmr,
                    locking=False,
                    rdcc_nbytes=layout.CHUNK_CACHE_BYTES,
                )
            except OSError as exc:
                last = exc
        time.sleep(0.05 * (attempt + 1))  # the writer may be between SWMR sessions
    raise StorageError(
        f"cannot open {path} as HDF5: {last}. If a run was killed, run "
        f"'perovlab-daq recover {path}'."
    ) from last


def _read_events(entry: h5py.Group) -> list[dict[str, Any]]:
    if "events" not in entry or "time" not in entry["events"]:
        return []
    group = entry["events"]
    count = min(len(group[n]) for n in ("time", *layout.EVENT_FIELDS) if n in group)
    columns: dict[str, list[Any]] = {"time": group["time"][:count].tolist()}
    for name in layout.EVENT_FIELDS:
        if name in group:
            columns[name] = [
                v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)
                for v in group[name][:count]
            ]
    return [{name: values[i] for name, values in columns.items()} for i in range(count)]


def _read_frames(
    file: h5py.File, stream: str, count: int | None, with_intensity: bool = True
) -> FrameSet:
    group = file["entry"][layout.dataset_name(stream)]
    intensity_ds = group["intensity"]
    if file.swmr_mode and count is None:
        intensity_ds.refresh()
    names = [
        n
        for n in group
        if n not in ("wavelength", "intensity")
        and isinstance(group[n], h5py.Dataset)
        and group[n].ndim == 1
    ]
    if count is None:
        count = len(intensity_ds)
        for name in names:
            if file.swmr_mode:
                group[name].refresh()
            count = min(count, len(group[name]))
    context = pd.DataFrame({name: group[name][:count] for name in names})
    units = {name: str(_attr(group[name].attrs, "units", "")) for name in names}
    units["intensity"] = str(_attr(intensity_ds.attrs, "units", ""))
    units["wavelength"] = str(_attr(group["wavelength"].attrs, "units", "nm"))
    return FrameSet(
        wavelength=group["wavelength"][()],
        intensity=intensity_ds[:count] if with_intensity else np.empty((count, 0)),
        context=context,
        units=units,
    )


def _import_procedure_class(spec: str) -> type | None:
    module_name, _, qualname = spec.partition(":")
    if not module_name or not qualname:
        return None
    try:
        target: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as exc:
        log.warning("procedure class %s cannot be imported (%s); using UnknownProcedure", spec, exc)
        return None
    return target if isinstance(target, type) and issubclass(target, Procedure) else None


def _procedure_from_file(file: h5py.File, procedure_class: type | None) -> Procedure:
    if "entry" not in file:
        raise StorageError(f"{file.filename} has no 'entry' group: not a run file")
    entry = file["entry"]
    stored: dict[str, tuple[str, Any]] = {}
    if "parameters" in entry:
        for key, dataset in entry["parameters"].items():
            if isinstance(dataset, h5py.Dataset):
                name = str(_attr(dataset.attrs, "name", key))
                stored[key] = (name, layout.read_value(dataset))
    if procedure_class is None:
        procedure_class = _import_procedure_class(str(_attr(entry.attrs, "procedure_class", "")))
    if procedure_class is None:
        from pymeasure.experiment import Parameter

        parameters = {}
        for key, (name, value) in stored.items():
            parameter = Parameter(name, default=value)
            parameter.value = value
            parameters[key] = parameter
        procedure = UnknownProcedure(parameters)
        for key, parameter in parameters.items():
            setattr(procedure, key, parameter.value)
        return procedure
    procedure = procedure_class()
    by_name = {name: value for name, value in stored.values()}
    for key, parameter in procedure.parameter_objects().items():
        if key in stored:
            value = stored[key][1]
        elif parameter.name in by_name:
            value = by_name[parameter.name]
        else:
            log.warning("parameter %r not in %s; keeping its default", key, file.filename)
            continue
        try:
            setattr(procedure, key, parameter.convert(value) if value is not None else None)
        except (ValueError, TypeError) as exc:
            log.warning("parameter %r: stored value %r refused (%s)", key, value, exc)
    with contextlib.suppress(Exception):
        procedure.refresh_parameters()
    return procedure


#: Runs still open when the interpreter exits are closed so their files are finalised.
_OPEN_RESULTS: weakref.WeakSet[HDF5Results] = weakref.WeakSet()


def _close_open_results() -> None:
    for results in list(_OPEN_RESULTS):
        with contextlib.suppress(Exception):
            results.close()


atexit.register(_close_open_results)
