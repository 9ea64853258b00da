"""In-memory copy of a run for the plots: the worker appends, the GUI timer reads.

The worker thread appends each data row and spectrum here (a few microseconds, under a
lock) right after handing it to the HDF5 back end; the plots read only what is new since
their last refresh, so a week-long run of a million rows never goes back to disk and is
never copied whole. A finished or interrupted run re-opened from its file fills the same
structure once (:meth:`RunData.from_results`), so live and re-opened runs draw alike.

Nothing here imports Qt: the object is shared between the worker thread and the GUI thread
and is safe to use from both.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

_NAN = float("nan")


def _as_float(value: Any) -> float:
    if isinstance(value, bool | int | float | np.number):
        return float(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        return _NAN


class FrameBuffer:
    """Spectra of one stream: a wavelength axis and one intensity row per frame.

    Attributes
    ----------
    wavelength
        1-D wavelengths in nm (set by the first frame).
    units
        Units of the intensity (``counts`` unless the procedure says otherwise).
    """

    def __init__(self, wavelength: np.ndarray, units: str = "counts") -> None:
        self.wavelength = np.asarray(wavelength, dtype=np.float64).copy()
        self.units = units
        self._intensity = np.full((16, len(self.wavelength)), np.nan)
        self._time = np.full(16, np.nan)
        self._contexts: list[dict[str, float]] = []
        self.count = 0

    def append(self, intensity: np.ndarray, context: Mapping[str, float]) -> None:
        """Append one frame (caller holds the run's lock)."""
        if self.count == len(self._time):
            grown = max(16, 2 * self.count)
            intensity_buffer = np.full((grown, len(self.wavelength)), np.nan)
            intensity_buffer[: self.count] = self._intensity[: self.count]
            time_buffer = np.full(grown, np.nan)
            time_buffer[: self.count] = self._time[: self.count]
            self._intensity, self._time = intensity_buffer, time_buffer
        self._intensity[self.count] = intensity
        self._time[self.count] = context.get("time", _NAN)
        self._contexts.append(dict(context))
        self.count += 1

    def view(self) -> tuple[int, np.ndarray, np.ndarray]:
        """Return (count, intensity rows, times); rows below count never change."""
        return self.count, self._intensity, self._time

    def context(self, index: int) -> dict[str, float]:
        """Return the context (time, bias, laser power, ...) of frame ``index``."""
        return dict(self._contexts[index])


class RunData:
    """Rows and spectra of one run in memory, appended by one thread and read by another.

    Parameters
    ----------
    columns
        Column name -> unit, in column order (the procedure's ``COLUMNS``).
    """

    def __init__(self, columns: Mapping[str, str]) -> None:
        self.columns = list(columns)
        self.units = dict(columns)
        self._index = {name: i for i, name in enumerate(self.columns)}
        self._rows = np.full((4096, max(1, len(self.columns))), np.nan)
        self._count = 0
        self._streams: dict[str, FrameBuffer] = {}
        self._lock = threading.Lock()
        self._start = time.monotonic()
        #: Increases with every record, so a reader can tell cheaply that nothing changed.
        self.version = 0
        #: True while a worker appends (False for a run read from its file).
        self.live = True

    # ------------------------------------------------------------------ writer side
    def mark_start(self) -> None:
        """Take now as the run's time zero (for frames that carry no time)."""
        self._start = time.monotonic()

    def append_row(self, record: Mapping[str, Any]) -> None:
        """Append one data row ``{column: value}``; missing or non-numeric values are NaN."""
        values = [_as_float(record.get(name, _NAN)) for name in self.columns]
        with self._lock:
            if self._count == len(self._rows):
                grown = np.full((2 * len(self._rows), self._rows.shape[1]), np.nan)
                grown[: self._count] = self._rows[: self._count]
                self._rows = grown  # readers keep the old array: rows below count never move
            if values:
                self._rows[self._count] = values
            self._count += 1
            self.version += 1

    def append_rows(self, columns: Mapping[str, Sequence[Any]]) -> None:
        """Append many rows given as ``{column: sequence}``."""
        lengths = {len(v) for v in columns.values()}
        for index in range(lengths.pop() if len(lengths) == 1 else 0):
            self.append_row({key: values[index] for key, values in columns.items()})

    def append_frame(
        self,
        stream: str,
        wavelength: Any,
        intensity: Any,
        context: Mapping[str, Any] | None = None,
        intensity_units: str = "counts",
    ) -> None:
        """Append one spectrum of ``stream`` with its context (time added if absent)."""
        intensity_array = np.asarray(intensity, dtype=np.float64)
        ctx = {str(k): _as_float(v) for k, v in (context or {}).items()}
        ctx.setdefault("time", time.monotonic() - self._start)
        with self._lock:
            buffer = self._streams.get(stream)
            if buffer is None:
                buffer = FrameBuffer(np.asarray(wavelength, dtype=np.float64), intensity_units)
                self._streams[stream] = buffer
            if intensity_array.shape != buffer.wavelength.shape:
                log.warning("frame of %s with %d pixels ignored", stream, intensity_array.size)
                return
            buffer.append(intensity_array, ctx)
            self.version += 1

    # ------------------------------------------------------------------ reader side
    def __len__(self) -> int:
        return self._count

    def rows(self) -> tuple[int, np.ndarray]:
        """Return (row count, row array); read only rows below the count."""
        with self._lock:
            return self._count, self._rows

    def column(self, name: str, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Return a copy of column ``name`` from row ``start`` to ``stop`` (default: all)."""
        count, rows = self.rows()
        stop = count if stop is None else min(stop, count)
        if name not in self._index:
            return np.full(max(0, stop - start), np.nan)
        return rows[start:stop, self._index[name]].copy()

    def has_column(self, name: str) -> bool:
        """Return whether the run has a column ``name``."""
        return name in self._index

    def streams(self) -> list[str]:
        """Names of the frame streams received so far."""
        with self._lock:
            return list(self._streams)

    def frames(self, stream: str | None = None) -> FrameBuffer | None:
        """Return the frame buffer of ``stream``.

        Default: ``spectra`` (the processed spectra of docs/hdf5-layout.md); a run without
        it (a file from another program) shows its first stream.
        """
        with self._lock:
            if stream is None:
                stream = "spectra" if "spectra" in self._streams else next(iter(self._streams), "")
                if stream != "spectra" and self.live:
                    return None  # live: the spectra stream may come after calibration frames
            return self._streams.get(stream)

    def newest_frames(self) -> tuple[FrameBuffer, int, np.ndarray, np.ndarray] | None:
        """Return the default frame buffer (see :meth:`frames`) with a consistent view of it.

        Returns
        -------
        tuple or None
            ``(buffer, count, intensity rows, times)`` read under the lock (rows below
            ``count`` never change), or None while the run has no frames to show.
        """
        frames = self.frames()
        if frames is None:
            return None
        with self._lock:
            count, intensity, times = frames.view()
        return frames, count, intensity, times

    def lock(self) -> threading.Lock:
        """Return the lock guarding growth (hold it to read a frame buffer consistently)."""
        return self._lock

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_arrays(cls, columns: Mapping[str, str], values: Mapping[str, Any]) -> RunData:
        """Return a run holding the given columns (equal-length arrays), e.g. for benchmarks."""
        run = cls(columns)
        count = len(next(iter(values.values()))) if values else 0
        run._rows = np.full((max(count, 16), len(run.columns)), np.nan)
        for i, name in enumerate(run.columns):
            if name in values:
                run._rows[:count, i] = np.asarray(values[name], dtype=np.float64)
        run._count = count
        run.version = count
        return run

    @classmethod
    def from_results(cls, results: Any) -> RunData:
        """Fill a :class:`RunData` once from an opened run file.

        Parameters
        ----------
        results
            An opened run (``figures.load_run(path)``, or an ``HDF5Results``), finished,
            aborted, failed or interrupted; a file still being written is read as far as
            it goes.
        """
        data = results.data
        units = dict(getattr(results, "columns", {}) or {})
        columns = {name: units.get(name, "") for name in data.columns}
        run = cls(columns)
        count = len(data)
        if count and run.columns:
            run._rows = np.full((max(count, 16), len(run.columns)), np.nan)
            for i, name in enumerate(run.columns):
                run._rows[:count, i] = np.asarray(data[name], dtype=np.float64)
        run._count = count
        streams = results.streams() if hasattr(results, "streams") else []
        for stream in streams:
            try:
                frames = results.frames(stream)
            except KeyError:
                continue
            buffer = FrameBuffer(frames.wavelength, frames.units.get("intensity", "") or "counts")
            names = list(frames.context.columns)
            values = frames.context.to_numpy(dtype=np.float64) if names else None
            for index in range(len(frames)):
                context = {} if values is None else dict(zip(names, values[index], strict=True))
                buffer.append(frames.intensity[index], context)
            run._streams[stream] = buffer
        run.version = count + sum(b.count for b in run._streams.values())
        run.live = False
        return run


def finite_positive(values: np.ndarray) -> np.ndarray:
    """Return a mask of values that are finite and > 0 (what a log axis can show)."""
    with np.errstate(invalid="ignore"):
        return np.isfinite(values) & (values > 0)


def crossing_index(relative: np.ndarray, level: float, start: int = 0) -> int | None:
    """Return the first index at or after ``start`` where ``relative`` falls below ``level``."""
    if start >= len(relative):
        return None
    with np.errstate(invalid="ignore"):
        below = np.flatnonzero(relative[start:] < level)
    return int(start + below[0]) if len(below) else None
