"""HDF5Results: PyMeasure's ``Results`` on a crash-safe, live-readable HDF5 file per run.

A thin composition: :class:`~perovlab_daq.storage.writer.LiveRunWriter` queues and writes
the records of a new run from one background thread (journal first, then the SWMR file),
and :mod:`perovlab_daq.storage.reader` reads a finished or live file. So

* a killed process loses nothing committed to the journal (at most a fraction of the
  durability interval), and :func:`perovlab_daq.storage.recover` rebuilds the file;
* readers in this process (``.data``), in another process or in a notebook
  (``h5py.File(path, "r", swmr=True)``, :class:`~perovlab_daq.storage.reader.RunReader`
  or :meth:`HDF5Results.load`) see rows as they come;
* a full disk or unwritable folder raises :class:`StorageError` in the worker at the next
  record, so the run stops ``failed`` with the reason while everything before is kept.

:meth:`HDF5Results.load` builds the procedure from the class registered under the file's
procedure name (``procedures.registry``); nothing read from a file is ever imported.
The layout is documented in ``docs/hdf5-layout.md``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import weakref
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pandas as pd
from pymeasure.experiment import Procedure, Results
from pymeasure.experiment.procedure import UnknownProcedure

from . import layout
from .errors import StorageError
from .files import open_for_reading, update_closed_file
from .header import column_specs, describe_instrument, procedure_from_info, run_header
from .layout import RunFileWriter
from .reader import (
    FrameSet,
    RunInfo,
    frame_group,
    iter_blocks,
    iter_file_frames,
    read_columns,
    read_frames,
    read_rows,
    read_run_info,
    stream_names,
)
from .writer import LiveRunWriter, RunState, new_event

log = logging.getLogger(__name__)

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

__all__ = ["FrameSet", "HDF5Results", "describe_instrument", "status_string"]


def status_string(status: int | str) -> str:
    """Return our status string for a pymeasure status number or a status string."""
    if isinstance(status, str):
        text = status.strip().lower()
        if text not in layout.STATUSES:
            raise ValueError(f"unknown run status {status!r}; one of {layout.STATUSES}")
        return text
    return PYMEASURE_TO_STATUS[int(status)]


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
    new_run
        Always start a new run file, even when a file exists at ``data_filename`` (it was
        claimed by a concurrent run: this one takes the next free name). Without it an
        existing file is loaded for reading.

    Raises
    ------
    StorageError
        When the file or its journal cannot be created.
    """

    #: Queue limits and wake-up batch of the writer (see :class:`LiveRunWriter`).
    MAX_PENDING_ROWS = LiveRunWriter.MAX_PENDING_ROWS
    MAX_PENDING_FRAMES = LiveRunWriter.MAX_PENDING_FRAMES
    WAKE_ROWS = LiveRunWriter.WAKE_ROWS

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
        new_run: bool = False,
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
        self._state = RunState()
        self._data: pd.DataFrame | None = None
        self._info: RunInfo | None = None  # what a loaded file holds
        self._live: LiveRunWriter | None = None
        self._closed = False
        self._last_states: dict[str, str] = {}  # last stored state event of each kind

        # A new run never loads what is at its planned name: another run may have claimed
        # that name a moment ago, and this one then moves on to the next free name.
        if self.path.exists() and not new_run:
            self._lock = threading.RLock()
            self._load_from_file()
            return
        self._set_columns(column_specs(procedure))
        self._header = run_header(
            procedure,
            self._columns,
            durability_interval_s=self.durability_interval_s,
            power_loss_safe=self.power_loss_safe,
            metadata=metadata,
            instruments=instruments,
            sample=sample,
        )
        self._live = LiveRunWriter(self.path, self._header, self._state)
        self.path = self._live.path  # another run may have claimed the planned name first
        self.data_filename = os.fspath(self.path)
        self._lock = self._live.lock
        # The per-row path goes straight to the writer (one call per row, not two).
        self.append_row = self._live.append_row

    def _set_columns(self, columns: list[list[str]]) -> None:
        self._columns = columns
        self._column_keys = [key for key, _name, _units in columns]
        self._units = {key: units for key, _name, units in columns}

    @property
    def _mode(self) -> str:
        """``write`` until the writer has closed the file, then ``read``."""
        return "write" if self._live is not None and not self._live.done else "read"

    @property
    def _start_time(self) -> str:
        """ISO 8601 time the run started ('' before)."""
        return self._state.start_time

    # ------------------------------------------------------------------ writing
    @property
    def error(self) -> StorageError | None:
        """The storage error that stopped writing, if any."""
        return None if self._live is None else self._live.error

    def start(self) -> None:
        """Open the journal and the live SWMR file and start the writer thread; idempotent.

        Raises
        ------
        StorageError
            If the file is read-only here, closed, or cannot be opened for writing.
        """
        if self._live is None:
            raise StorageError(f"{self.path} is not open for writing (existing or closed run file)")
        self._live.start()

    def append_row(self, record: Mapping[str, Any]) -> None:
        """Queue one data row ``{column: value}`` (see :meth:`LiveRunWriter.append_row`).

        A new run's instance routes this straight to its writer; a loaded run raises
        :class:`StorageError`.
        """
        self.start()  # a loaded run: raises (a new run's rows go to its writer directly)

    def append_rows(self, columns: Mapping[str, Sequence[Any]]) -> None:
        """Queue many rows given as ``{column: sequence}`` (pymeasure's 'batch results')."""
        if self._live is None:
            self.start()
        self._live.append_rows(columns)

    def append_frame(self, stream: str = "spectra", **frame: Any) -> None:
        """Queue one array frame (``wavelength``, ``intensity``, ``context``, ``units``...).

        See :meth:`LiveRunWriter.append_frame
        <perovlab_daq.storage.writer.LiveRunWriter.append_frame>`.

        Raises
        ------
        ValueError
            If the frame's length differs from the wavelength axis or earlier frames.
        StorageError
            If writing has failed or the file is closed.
        """
        if self._live is None:
            self.start()
        self._live.append_frame(stream, **frame)

    def add_event(self, level: str, kind: str, message: str) -> None:
        """Record a time-stamped event (warning, fault, retry, pause...).

        Events are kept even when the writer has failed (they are logged), so this never
        raises for storage reasons.
        """
        if kind in layout.STATE_EVENT_KINDS:  # changes only (docs/hdf5-layout.md)
            if not layout.state_changed(self._last_states.get(kind), message):
                return
            self._last_states[kind] = message
        event = new_event(self._state, level, kind, message)
        self._state.events.append(event)
        if self._live is not None and self._live.take_event(event):
            return
        if self.error is not None:  # the disk failed: never touch the file again
            log.error("event %s kept in memory only (storage failed): %s", kind, message)
        elif self._mode == "read":  # a closed or loaded run: append to the file itself
            try:
                update_closed_file(self.path, lambda file: layout.append_closed_event(file, event))
            except OSError as exc:
                log.error("event %s not stored in %s: %s", kind, self.path, exc)

    def set_status(self, status: int | str, reason: str | None = None) -> None:
        """Set the run status (string or pymeasure number) and, for failures, the reason."""
        state = self._state
        state.status = status_string(status)
        if reason is not None:
            state.status_reason = str(reason)
        if self._live is not None:
            self._live.queue("status", {"status": state.status, "reason": state.status_reason})

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
        self._state.run_metadata.update(values)
        if self._live is not None:
            self._live.queue("metadata", values)

    def write_analysis(self, analysis: Mapping[str, Any]) -> None:
        """Store figures computed at the end of a run in ``entry/analysis``.

        Values are numbers, strings, arrays, ``{"value": v, "units": u}`` or nested
        mappings. Works while the run is open (written at close) and after it is closed.
        """
        analysis = dict(analysis)
        if self.error is not None:
            raise StorageError(f"analysis not written: {self.error}") from self.error
        if self._live is not None and self._live.accepting:
            self._state.analysis.update(analysis)
            self._live.queue("analysis", analysis)
            return
        try:
            update_closed_file(
                self.path, lambda file: layout.write_mapping(layout.analysis_group(file), analysis)
            )
        except OSError as exc:
            raise StorageError(f"cannot write the analysis into {self.path}: {exc}") from exc
        self._state.analysis.update(analysis)

    def flush(self, timeout: float = 30.0) -> None:
        """Wait until every queued record is committed to the journal and the file is flushed."""
        if self._live is not None:
            self._live.flush(timeout)

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
            self._state.status_reason = str(reason)
        if self._closed:
            return
        self._closed = True
        if self._live is None:
            return
        self._live.close()
        if self._live.done:
            self.procedure.status = STATUS_TO_PYMEASURE[self._state.status]

    # ------------------------------------------------------------------ reading
    @property
    def run_id(self) -> str:
        """The new run's unique id (``entry/provenance/run_id``); '' for a loaded file."""
        header = getattr(self, "_header", None) or {}
        return str((header.get("provenance") or {}).get("run_id", ""))

    @property
    def status(self) -> str:
        """Run status: queued, running, finished, aborted, failed or interrupted."""
        return self._state.status

    @property
    def status_reason(self) -> str:
        """Why the run failed, was aborted or was interrupted ('' otherwise)."""
        return self._state.status_reason

    @property
    def metadata(self) -> dict[str, Any]:
        """Return the run metadata (``entry/metadata``): bench, preset, acceleration, set-up.

        While a run is being written this is what it was created with plus the pymeasure
        metadata evaluated so far; for a loaded file, what the file holds.
        """
        if self._info is not None:
            return dict(self._info.metadata)
        return {**(self._header.get("metadata") or {}), **self._state.run_metadata}

    @property
    def stored_parameters(self) -> dict[str, Any]:
        """Return the parameters exactly as stored in ``entry/parameters``.

        Unlike ``procedure`` (whose class fills in defaults), a parameter the file lacks
        is absent here, so an analysis can tell "missing" from "default".
        """
        if self._info is not None:
            return dict(self._info.parameters)
        return dict(self.procedure.parameter_values())

    @property
    def columns(self) -> dict[str, str]:
        """Column name -> unit, in column order."""
        return dict(self._units)

    @property
    def events(self) -> list[dict[str, Any]]:
        """Events of the run: dicts with time (s), timestamp, level, kind, message."""
        return list(self._state.events)

    @property
    def analysis(self) -> dict[str, Any]:
        """Figures stored in ``entry/analysis``."""
        return dict(self._state.analysis)

    @property
    def data(self) -> pd.DataFrame:
        """The data rows as a DataFrame; each call appends only rows new since the last."""
        have = 0 if self._data is None else len(self._data)
        with self._source() as (file, live):
            rows = None if live is None else live.rows
            new, available = read_rows(file, self._columns, have, rows) if file else ({}, 0)
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
        return self._live is not None and self._live.live

    @contextlib.contextmanager
    def _source(self) -> Iterator[tuple[h5py.File | None, RunFileWriter | None]]:
        """Hold the lock and give the file to read and, while it writes, the live writer.

        While the writer thread has the file open it is shared under the lock (its
        writer knows how far each dataset is written); otherwise the file is opened for
        this one read and never held, so a writer can re-open it. ``None``: a new run
        not started, or its writer between sessions.
        """
        with self._lock:
            if self._live_writer():
                yield self._live.file, self._live.file_writer
            elif self._mode == "write":
                yield None, None
            else:
                with open_for_reading(self.path) as file:
                    yield file, None

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
        with self._source() as (file, live):
            rows = None if live is None else live.rows
            return {} if file is None else read_columns(file, self._columns, wanted, rows)

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
        with self._source() as (file, live):
            count = None if live is None else live.frames.get(stream)
            if file is None or (live is not None and count is None):
                raise KeyError(f"no frame stream {stream!r} in {self.path}")
            return read_frames(file, stream, count, with_intensity)

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
        with self._lock:
            live = self._live.file_writer if self._live_writer() else None
        if live is None:
            with self._source() as (file, _live):
                if file is None:
                    raise KeyError(f"no frame stream {stream!r} in {self.path}")
                yield from iter_file_frames(file, stream, block_frames, start, stop)
            return
        # The writer thread shares the file: hold the lock for one block at a time.
        count = live.frames.get(stream)
        if count is None:
            raise KeyError(f"no frame stream {stream!r} in {self.path}")

        def read(first: int, last: int) -> np.ndarray:
            with self._lock:
                return frame_group(live.file, stream)["intensity"][first:last]

        yield from iter_blocks(read, count, block_frames, start, stop)

    def streams(self) -> list[str]:
        """Names of the frame streams of this run."""
        with self._source() as (file, _live):
            return [] if file is None else stream_names(file)

    # ------------------------------------------------------------------ loading
    @staticmethod
    def load(
        data_filename: str | os.PathLike[str], procedure_class: type | None = None
    ) -> HDF5Results:
        """Open a run file: procedure (parameters set), status, data.

        The procedure class is the one installed under the file's procedure name
        (``entry/procedure``, looked up in ``procedures.registry``); ``procedure_class``
        overrides it. The class path the file also stores is never imported. A file still
        being written is read live (SWMR); a file whose writer died reads as
        ``interrupted`` until recovered.

        Raises
        ------
        StorageError
            If the file cannot be opened as a run file.
        procedures.registry.UnknownProcedureError
            If no procedure is installed under the file's name and none is given.
        """
        path = Path(os.fspath(data_filename))
        if not path.exists():
            raise StorageError(f"no run file at {path}")
        with open_for_reading(path) as file:
            info = read_run_info(file, path)
        procedure = procedure_from_info(info, procedure_class, path)
        return HDF5Results(procedure, path)

    def _load_from_file(self) -> None:
        with open_for_reading(self.path) as file:
            info = read_run_info(file, self.path)
        self._info = info
        state = self._state
        state.status, state.status_reason = info.status, info.status_reason
        state.start_time, state.end_time = info.start_time, info.end_time
        state.events = list(info.events)
        state.analysis = dict(info.analysis)
        self._set_columns(info.columns)
        if not getattr(self.procedure, "DATA_COLUMNS", None) or isinstance(
            self.procedure, UnknownProcedure
        ):
            self.procedure.DATA_COLUMNS = list(self._column_keys)
        self.procedure.status = STATUS_TO_PYMEASURE.get(info.status, Procedure.FINISHED)

    def __getstate__(self) -> dict[str, Any]:
        raise TypeError("HDF5Results cannot be pickled; pass the file path instead")

    def __repr__(self) -> str:
        return (
            f"<HDF5Results(path='{self.data_filename}', procedure="
            f"{self.procedure_class.__name__}, status={self.status})>"
        )

    # pymeasure CSV API that has no meaning here
    def header(self) -> str:
        """Return '' (pymeasure's CSV header; the HDF5 file describes itself)."""
        return ""

    def labels(self) -> str:
        """Return '' (pymeasure's CSV column line)."""
        return ""
