"""The writer of a live run: queues, one background thread, journal commits, HDF5 appends.

The acquisition thread only queues records (a deque append per row); one writer thread
commits them to the SQLite journal in group commits (every quarter durability interval,
or every :attr:`LiveRunWriter.WAKE_ROWS` rows), appends them to the SWMR HDF5 file in
column chunks and flushes the file every half durability interval. Before a batch goes
into HDF5 the free disk space is checked (:mod:`~perovlab_daq.storage.batches`), so a
full disk ends the run with
:class:`~perovlab_daq.storage.DiskFullError` and a closable file instead of an HDF5 write
error; any writer failure is kept and raised at the next record.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import threading
import time
import weakref
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from pathlib import Path
from typing import Any

import numpy as np

from . import layout
from .batches import batch_bytes, chunk_bytes, ensure_room, frame_batch, rows_to_array
from .compact import compact_run_file
from .errors import StorageError
from .files import claim_run_file, disk_unusable, fsync_file, open_hdf5, open_rw
from .journal import Journal, journal_path

log = logging.getLogger(__name__)

_NAN = float("nan")


@dataclass
class RunState:
    """What a run is and has recorded beyond its rows, shared by the run and its writer.

    Attributes
    ----------
    status, status_reason
        Current status string and why the run ended so.
    start_time, end_time
        ISO 8601 times ('' until known).
    start_monotonic
        ``time.monotonic()`` at the start: event and frame times count from here.
    events
        Every event of the run (also those a failed disk could not take).
    analysis, run_metadata
        Figures and evaluated pymeasure metadata, written when the run closes.
    """

    status: str = layout.QUEUED
    status_reason: str = ""
    start_time: str = ""
    end_time: str = ""
    start_monotonic: float = field(default_factory=time.monotonic)
    events: list[dict[str, Any]] = field(default_factory=list)
    analysis: dict[str, Any] = field(default_factory=dict)
    run_metadata: dict[str, Any] = field(default_factory=dict)


def new_event(state: RunState, level: str, kind: str, message: str) -> dict[str, Any]:
    """Return an event dict stamped with the run time and the wall time."""
    return {
        "time": time.monotonic() - state.start_monotonic,
        "timestamp": layout.now_iso(),
        "level": str(level),
        "kind": str(kind),
        "message": str(message),
    }


class LiveRunWriter:
    """Queue the records of one run and write them from a background thread.

    The file is created at once (status ``queued``); :meth:`start` opens the journal and
    the live SWMR file and starts the thread; :meth:`close` drains the queues, writes the
    final status from ``state`` and syncs the file.

    Parameters
    ----------
    path
        The run file (must not exist).
    header
        The run description from :func:`~perovlab_daq.storage.header.run_header`.
    state
        Status, times, events, analysis and metadata shared with the run object.

    Raises
    ------
    StorageError
        If the file cannot be created.
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
    WAKE_ROWS = 4096

    def __init__(self, path: Path, header: dict[str, Any], state: RunState) -> None:
        self.path = path
        self.header = header
        self.state = state
        self.durability_interval_s = float(header["durability_interval_s"])
        self.power_loss_safe = bool(header["power_loss_safe"])
        self.lock = threading.RLock()  # guards the h5py file between writer and readers
        self.error: StorageError | None = None
        self.accepting = False
        self.closed = False
        self.done = False  # the thread has closed the file (finished or failed)
        self._columns: list[list[str]] = header["columns"]
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
        self._rows: deque[tuple[Any, ...]] = deque()
        self._other: deque[tuple[str, Any]] = deque()
        self._pending_frames = 0
        self._unflushed_bytes = 0  # given to HDF5 since its last flush (may sit in its cache)
        self._stream_pixels: dict[str, int] = {}
        self._warned_columns: set[str] = set()
        self._wake = threading.Event()
        self._closing = False
        self._flush_request: threading.Event | None = None
        self._journal: Journal | None = None
        self._thread: threading.Thread | None = None
        self.file = None  # the live h5py.File while the thread runs
        # The name is claimed now: another run may have taken it since it was planned.
        self.file_writer, self.path = claim_run_file(path, header)

    @property
    def live(self) -> bool:
        """Whether the writer thread has the file open (readers then use :attr:`file`)."""
        return self.file is not None and self.file_writer.file is not None

    # ------------------------------------------------------------------ acquisition side
    def start(self) -> None:
        """Open the journal and the live SWMR file and start the writer thread; idempotent.

        Raises
        ------
        StorageError
            If the run is closed or failed, or the file cannot be opened for writing.
        """
        if self.accepting:
            return
        if self.error is not None:
            raise self.error
        if self.done or self.closed:
            raise StorageError(f"{self.path} is not open for writing (existing or closed run file)")
        if self._thread is not None:
            return
        state = self.state
        state.start_time = layout.now_iso()
        state.start_monotonic = time.monotonic()
        state.status = layout.RUNNING
        try:
            self._journal = Journal(
                journal_path(self.path), create=True, power_loss_safe=self.power_loss_safe
            )
            self._journal.append("header", self.header)
            self._journal.append("start", {"start_time": state.start_time})
            self._journal.commit()
            file = open_hdf5(self.path, "r+")
            self.file_writer.attach(file)
            self.file_writer.start_run(state.start_time)
            file.swmr_mode = True
            file.flush()
            self.file = file
        except (OSError, ValueError) as exc:
            error = (
                exc
                if isinstance(exc, StorageError)
                else StorageError(f"cannot open {self.path} for writing: {exc}")
            )
            self.error = error
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
        self.accepting = True
        self._thread.start()
        _OPEN_WRITERS.add(self)

    def _not_accepting(self) -> None:
        if self.error is not None:
            raise StorageError(str(self.error)) from self.error
        if self.closed:
            raise StorageError(f"{self.path} is closed; no more records can be added")
        self.start()

    def append_row(self, record: Mapping[str, Any]) -> None:
        """Queue one data row ``{column: value}``; missing columns are stored as NaN.

        Raises
        ------
        StorageError
            If writing has failed (disk full, folder gone) or the file is closed.
        """
        if not self.accepting:
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
        append_row = self.append_row
        for index in range(count):
            append_row({key: values[index] for key, values in columns.items()})

    def _check_first_row(self, record: Mapping[str, Any]) -> None:
        self._first_row_checked = True
        unknown = [key for key in record if key not in self._units]
        if unknown:
            event = new_event(
                self.state,
                "warning",
                "unknown_columns",
                f"row keys not in the procedure's columns are not stored: {unknown}",
            )
            self.state.events.append(event)
            self.take_event(event)

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
        if not self.accepting:
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
        ctx.setdefault("time", time.monotonic() - self.state.start_monotonic)
        self._other.append(
            ("frame", (stream, wavelength, intensity, ctx, dict(units or {}), intensity_units))
        )
        self._pending_frames += 1
        if self._pending_frames >= self.MAX_PENDING_FRAMES:
            self._wait_for_writer()

    def take_event(self, event: dict[str, Any]) -> bool:
        """Queue ``event`` (starting the writer if needed); False once writing is over.

        Never raises for storage reasons: an event the writer cannot start for stays in
        ``state.events`` only.
        """
        if self.accepting:
            self._other.append(("event", event))
            return True
        if self.done or self.closed or self.error is not None:
            return False
        with contextlib.suppress(StorageError):
            self.start()
            self._other.append(("event", event))
        return True

    def queue(self, kind: str, payload: Any) -> bool:
        """Queue a ``status``, ``metadata`` or ``analysis`` record; False if not running."""
        if not self.accepting:
            return False
        self._other.append((kind, payload))
        if kind == "analysis":
            self._wake.set()
        return True

    def flush(self, timeout: float = 30.0) -> None:
        """Wait until every queued record is committed to the journal and the file is flushed."""
        if not self.accepting:
            if self.error is not None:
                raise self.error
            return
        self._flush_request = threading.Event()
        self._other.append(("flush", self._flush_request))
        self._wake.set()
        if not self._flush_request.wait(timeout):
            raise StorageError(f"writer of {self.path} did not flush within {timeout} s")
        if self.error is not None:
            raise self.error

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
        if self.error is not None:
            raise StorageError(str(self.error)) from self.error

    def close(self) -> None:
        """Drain the queues, write the final status from ``state``, close and sync the file.

        Raises
        ------
        StorageError
            If writing failed at any point; the file is then marked ``failed`` as far as
            the disk allows, and the journal is kept for ``perovlab-daq recover``.
        """
        if self.closed:
            return
        self.closed = True
        _OPEN_WRITERS.discard(self)
        if self._thread is None:  # never started: the file stays a valid queued skeleton
            self.accepting = False
            return
        self._closing = True
        self._wake.set()
        self._thread.join()
        self.accepting = False
        if self.error is not None:
            raise self.error

    # ------------------------------------------------------------------ writer thread
    def _writer_loop(self) -> None:
        try:
            while True:
                self._wake.wait(self._commit_period)
                self._wake.clear()
                closing = self._closing
                flushes = self._process_pending()
                now = time.monotonic()
                due = self._unflushed_bytes and now - self._last_flush >= self._flush_period
                if flushes or closing or due:
                    with self.lock:
                        self.file.flush()
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
        if not count and not self._other:
            return []  # an idle cycle: no journal, no free-space check, no HDF5 call
        batch = [rows.popleft() for _ in range(count)]
        others = []
        while self._other:
            others.append(self._other.popleft())
        flushes = []
        journal = self._journal
        values = rows_to_array(batch, self._columns, self._warned_columns) if batch else None
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
                    self.state.run_metadata.update(payload)
        frame_batches = [
            frame_batch(stream, items, self._units) for stream, items in frames.items()
        ]
        for meta, arrays, _batch in frame_batches:
            journal.append("frames", meta, arrays)
        journal.commit()  # the durable point: a kill from here on loses nothing above
        # After the journal (SQLite fails cleanly on a full disk), before HDF5 (which
        # must never meet one): the batch is already durable if this stops the run.
        batches = [batch for _meta, _arrays, batch in frame_batches]
        batch_bytes = self._check_disk_space(values, batches, events)
        writer = self.file_writer
        with self.lock:
            if values is not None:
                writer.append_rows(values)
            for stream, wavelength, intensity, context, context_units, iunits in batches:
                if not writer.has_stream(stream, context):
                    self._restructure(
                        lambda w, s=stream, wl=wavelength, cu=context_units, iu=iunits: (
                            w.add_stream(s, wl, cu, iu)
                        )
                    )
                writer.append_frames(stream, intensity, context)
            if events:
                writer.append_events(events)
        self._unflushed_bytes += batch_bytes
        self._pending_frames -= sum(len(items) for items in frames.values())
        return flushes

    def _check_disk_space(
        self, values: np.ndarray | None, frame_batches: list[tuple[Any, ...]], events: list[Any]
    ) -> int:
        """Stop the run before HDF5 would meet a full disk; return the batch's bytes."""
        size = batch_bytes(values, frame_batches, events)
        ensure_room(self.path.parent, size + self._unflushed_bytes, self._chunk_bytes)
        return size

    def _chunk_bytes(self) -> int:
        with self.lock:
            return 0 if self.file is None else chunk_bytes(self.file)

    def _restructure(self, change: Any) -> None:
        """Leave SWMR mode, apply ``change(writer)``, and resume SWMR (new objects only)."""
        self.file.flush()
        self.file.close()
        file = open_rw(self.path)
        self.file_writer.attach(file)
        change(self.file_writer)
        file.swmr_mode = True
        file.flush()
        self.file = file

    def _finalize(self) -> None:
        state = self.state
        state.end_time = layout.now_iso()
        if state.status in (layout.RUNNING, layout.QUEUED):
            state.status = layout.FINISHED
        self._journal.append(
            "status",
            {"status": state.status, "reason": state.status_reason, "end_time": state.end_time},
        )
        self._journal.commit()
        with self.lock:
            self.file.close()
            self.file = None
            with open_rw(self.path) as file:
                self.file_writer.attach(file)
                self.file_writer.finalize(
                    state.status,
                    state.status_reason,
                    state.end_time,
                    analysis=state.analysis,
                    run_metadata=state.run_metadata,
                )
            self.file_writer.file = None
        fsync_file(self.path)
        self._journal.remove()
        self._journal = None
        self._compact()
        self.done = True
        log.info("run file %s closed: %s, %d rows", self.path, state.status, self.file_writer.rows)

    def _compact(self) -> None:
        """Drop the live file's slack (docs/hdf5-layout.md, "Chunk sizes"); never raises.

        The file is complete and its journal gone: a failed or killed compaction leaves
        it exactly as it is.
        """
        try:
            sizes = compact_run_file(self.path)
        except Exception as exc:  # noqa: BLE001 - the run is recorded; compaction is extra
            log.warning("run file %s not compacted (%s); it is complete as it is", self.path, exc)
            return
        if sizes is not None:
            log.debug("run file %s compacted: %d -> %d bytes", self.path, *sizes)

    def _fail(self, exc: BaseException) -> None:
        message = (
            f"storage failed for {self.path}: {exc}. Data recorded before this point is kept "
            f"(run 'perovlab-daq recover {self.path}' if the file does not open)."
        )
        error = StorageError(message)
        error.__cause__ = exc
        self.error = error
        self.accepting = False
        log.error("%s", message, exc_info=exc)
        self.state.status = layout.FAILED
        self.state.status_reason = message
        # Best effort: mark the file failed and close it; the journal stays for recovery.
        # Not on a full, read-only or vanished disk: HDF5 can hang for ever rewriting a
        # file it cannot extend, and recover() rebuilds it from the journal anyway.
        unusable = disk_unusable(exc)
        with contextlib.suppress(Exception):
            if self._journal is not None:
                self._journal.append(
                    "status",
                    {"status": layout.FAILED, "reason": message, "end_time": layout.now_iso()},
                )
                self._journal.commit()
        with contextlib.suppress(Exception), self.lock:
            if self.file is not None:
                self.file.close()
                self.file = None
            if not unusable:
                with open_rw(self.path) as file:
                    self.file_writer.attach(file)
                    self.file_writer.finalize(layout.FAILED, message, layout.now_iso())
            self.file_writer.file = None
        with contextlib.suppress(Exception):
            if self._journal is not None:
                self._journal.close()
        self.done = True
        if self._flush_request is not None:
            self._flush_request.set()


#: Runs still open when the interpreter exits are closed so their files are finalised.
_OPEN_WRITERS: weakref.WeakSet[LiveRunWriter] = weakref.WeakSet()


def _close_open_writers() -> None:
    for writer in list(_OPEN_WRITERS):
        with contextlib.suppress(Exception):
            writer.close()


atexit.register(_close_open_writers)
