"""Reading a run file, finished or still being written, without building a procedure.

:class:`RunReader` opens the file for each read (never holding it, so a writer can re-open
it) and returns plain values: status, parameters, metadata, columns (only those asked
for, one read per column), frames (spectra in blocks), events, analysis and segments.
The functions below it work on an open :class:`h5py.File` and are shared with
:class:`~perovlab_daq.storage.HDF5Results`, which also reads the file its writer thread
holds open.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pandas as pd

from perovlab_daq.procedures.parameter_names import canonical_name

from . import layout
from .errors import StorageError
from .files import open_for_reading, update_closed_file
from .journal import journal_path, writer_alive

log = logging.getLogger(__name__)

#: ``[[key, dataset_name, units], ...]``: the data columns of a run, in order.
ColumnSpecs = list[list[str]]


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


@dataclass
class RunInfo:
    """Everything of a run file but its columns' values and its frames (all plain values).

    Attributes
    ----------
    procedure
        The procedure name (``entry/procedure``).
    status, status_reason
        Run status (``interrupted`` if the writer died) and why it ended so.
    start_time, end_time
        ISO 8601 times ('' if not set).
    columns
        ``[[key, dataset_name, units], ...]`` of the 1-D datasets in ``entry/data``.
    parameters
        ``entry/parameters`` as stored: key -> value (absent if the file lacks it).
    parameter_names
        Key -> the parameter's display name (``name`` attribute).
    metadata, analysis
        ``entry/metadata`` (attributes and datasets) and ``entry/analysis``.
    events
        Dicts with time (s), timestamp, level, kind, message.
    """

    procedure: str = ""
    status: str = layout.FINISHED
    status_reason: str = ""
    start_time: str = ""
    end_time: str = ""
    columns: ColumnSpecs = field(default_factory=list)
    parameters: dict[str, Any] = field(default_factory=dict)
    parameter_names: dict[str, str] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    analysis: dict[str, Any] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)


def read_attr(attrs: Any, name: str, default: Any) -> Any:
    """Return attribute ``name`` as a plain Python value (text decoded), or ``default``."""
    value = attrs.get(name, default)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.generic):
        return value.item()
    return value


def run_entry(file: h5py.File) -> h5py.Group:
    """Return the file's ``entry`` group.

    Raises
    ------
    StorageError
        If there is none (not a run file).
    """
    if "entry" not in file:
        raise StorageError(f"{file.filename} has no 'entry' group: not a run file")
    return file["entry"]


def read_run_info(file: h5py.File, path: Path) -> RunInfo:
    """Read the description of the run in ``file`` (stored at ``path``).

    A file still marked ``running`` whose writer is gone (journal left, or left in SWMR
    mode) reads as ``interrupted`` with a reason that says how to recover it.
    """
    entry = run_entry(file)
    attrs = entry.attrs
    info = RunInfo(
        procedure=str(read_attr(attrs, "procedure", "")),
        status=str(read_attr(attrs, "status", layout.FINISHED)) or layout.FINISHED,
        status_reason=str(read_attr(attrs, "status_reason", "")),
        start_time=str(read_attr(attrs, "start_time", "")),
        end_time=str(read_attr(attrs, "end_time", "")),
    )
    if info.status == layout.RUNNING and not writer_alive(path):
        if journal_path(path).exists() or file.swmr_mode:
            info.status = layout.INTERRUPTED
            info.status_reason = (
                f"the writer stopped without closing the file; run 'perovlab-daq recover {path}'"
            )
    info.columns = read_column_specs(entry)
    info.events = read_events(entry)
    info.parameters, info.parameter_names = read_parameters(entry)
    info.metadata = read_metadata(entry)
    if "analysis" in entry:
        info.analysis = layout.read_mapping(entry["analysis"])
    return info


def read_column_specs(entry: h5py.Group) -> ColumnSpecs:
    """Return ``[[key, dataset_name, units], ...]`` of the 1-D datasets in ``entry/data``."""
    specs: ColumnSpecs = []
    group = entry.get("data")
    if isinstance(group, h5py.Group):
        for name, dataset in group.items():
            if isinstance(dataset, h5py.Dataset) and dataset.ndim == 1:
                key = str(read_attr(dataset.attrs, "long_name", name))
                specs.append([key, name, str(read_attr(dataset.attrs, "units", ""))])
    return specs


def read_parameters(entry: h5py.Group) -> tuple[dict[str, Any], dict[str, str]]:
    """Return ``entry/parameters`` as stored (key -> value) and key -> display name."""
    values: dict[str, Any] = {}
    names: dict[str, str] = {}
    group = entry.get("parameters")
    if isinstance(group, h5py.Group):
        for key, dataset in group.items():
            if isinstance(dataset, h5py.Dataset):
                key = canonical_name(key)  # files written before the rename: old names
                values[key] = layout.read_value(dataset)
                names[key] = str(read_attr(dataset.attrs, "name", key))
    return values, names


def read_metadata(entry: h5py.Group) -> dict[str, Any]:
    """Return ``entry/metadata``: its attributes, then its datasets (``{}`` without it)."""
    group = entry.get("metadata")
    if not isinstance(group, h5py.Group):
        return {}
    values = {key: read_attr(group.attrs, key, None) for key in group.attrs if key != "NX_class"}
    values.update(layout.read_mapping(group))
    return values


def read_events(entry: h5py.Group) -> list[dict[str, Any]]:
    """Return the events of ``entry`` as dicts (time, timestamp, level, kind, message)."""
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


def read_rows(
    file: h5py.File, columns: ColumnSpecs, have: int, rows: int | None = None
) -> tuple[dict[str, Any], int]:
    """Return ``({key: rows have..available}, available)`` of every column, or ``({}, 0)``.

    ``rows``: the row count the file's own writer has reached (a file it holds open);
    default: the shortest column.
    """
    group = file["entry/data"] if "entry/data" in file else None
    if group is None:
        return {}, 0
    datasets = [group[name] for _key, name, _units in columns if name in group]
    if len(datasets) != len(columns):
        return {}, 0
    available = min((len(d) for d in datasets), default=0) if rows is None else rows
    keys = [key for key, _name, _units in columns]
    return {key: ds[have:available] for key, ds in zip(keys, datasets, strict=True)}, available


def read_columns(
    file: h5py.File, columns: ColumnSpecs, keys: Sequence[str], rows: int | None = None
) -> dict[str, np.ndarray]:
    """Return the named columns (known ones only) up to the row every column has reached.

    One read per column asked for; the other columns are never read. A column the file
    lacks makes the result empty (a file that is not a complete run). ``rows`` as for
    :func:`read_rows`.
    """
    names = {key: name for key, name, _units in columns}
    wanted = [key for key in dict.fromkeys(keys) if key in names]
    if "entry/data" not in file:
        return {}
    group = file["entry/data"]
    present = [key for key in wanted if names[key] in group]
    if len(present) < len(wanted):
        return {}
    if rows is None:
        if file.swmr_mode:
            for key in present:
                group[names[key]].refresh()
        rows = complete_rows(file, columns)
    return {key: group[names[key]][:rows] for key in present}


def complete_rows(file: h5py.File, columns: ColumnSpecs) -> int:
    """Return the number of rows every data column has reached (0 without ``entry/data``).

    All columns end at the same row except in a file a writer is extending.
    """
    if "entry/data" not in file:
        return 0
    group = file["entry/data"]
    return min((len(group[name]) for _key, name, _units in columns if name in group), default=0)


def stream_names(file: h5py.File) -> list[str]:
    """Return the names of the frame streams (groups holding ``intensity``) of a run."""
    return [
        name
        for name, item in file["entry"].items()
        if isinstance(item, h5py.Group) and "intensity" in item
    ]


def frame_group(file: h5py.File, stream: str) -> h5py.Group:
    """Return the group of frame stream ``stream``.

    Raises
    ------
    KeyError
        If the run has no such stream (yet).
    """
    name = layout.dataset_name(stream)
    if "entry" not in file or name not in file["entry"]:
        raise KeyError(f"no frame stream {stream!r} in {file.filename}")
    return file["entry"][name]


def read_frames(
    file: h5py.File, stream: str, count: int | None = None, with_intensity: bool = True
) -> FrameSet:
    """Return the first ``count`` frames of ``stream`` (default: all every dataset has).

    Raises
    ------
    KeyError
        If the run has no such stream (yet).
    """
    group = frame_group(file, stream)
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
    units = {name: str(read_attr(group[name].attrs, "units", "")) for name in names}
    units["intensity"] = str(read_attr(intensity_ds.attrs, "units", ""))
    units["wavelength"] = str(read_attr(group["wavelength"].attrs, "units", "nm"))
    return FrameSet(
        wavelength=group["wavelength"][()],
        intensity=intensity_ds[:count] if with_intensity else np.empty((count, 0)),
        context=context,
        units=units,
    )


def iter_blocks(
    read: Callable[[int, int], np.ndarray],
    count: int,
    block_frames: int,
    start: int = 0,
    stop: int | None = None,
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(first, read(first, last))`` for blocks of ``block_frames`` of ``start..stop``.

    Raises
    ------
    ValueError
        If ``block_frames`` is below 1.
    """
    if block_frames < 1:
        raise ValueError(f"block_frames must be >= 1, got {block_frames}")
    end = count if stop is None else min(stop, count)
    for first in range(start, end, block_frames):
        yield first, read(first, min(first + block_frames, end))


def iter_file_frames(
    file: h5py.File, stream: str, block_frames: int, start: int = 0, stop: int | None = None
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield the spectra of ``stream`` in ``file`` in blocks (see :func:`iter_blocks`).

    Raises
    ------
    KeyError
        If the run has no such stream (yet).
    """
    dataset = frame_group(file, stream)["intensity"]
    if file.swmr_mode:
        dataset.refresh()
    yield from iter_blocks(lambda a, b: dataset[a:b], len(dataset), block_frames, start, stop)


def segment_ranges(segment: np.ndarray | None, rows: int) -> list[tuple[int, int, int]]:
    """Return ``(segment, first_row, stop_row)`` of each stretch of equal ``segment`` values.

    A run without a ``segment`` column is one segment 0 of all its rows (a resumed
    lifetime run numbers its continuations 1, 2, ...).
    """
    if segment is None or not len(segment):
        return [(0, 0, rows)] if rows else []
    values = np.nan_to_num(np.asarray(segment, dtype=np.float64), nan=-1.0)
    edges = np.flatnonzero(np.diff(values)) + 1
    starts = np.concatenate([[0], edges])
    stops = np.concatenate([edges, [len(values)]])
    return [(int(values[a]), int(a), int(b)) for a, b in zip(starts, stops, strict=True)]


class RunReader:
    """Read one run file by path, finished or live; no procedure class is needed.

    Parameters
    ----------
    path
        The run's ``.h5`` file.

    Raises
    ------
    StorageError
        If the file does not exist or is not a run file.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(os.fspath(path))
        if not self.path.exists():
            raise StorageError(f"no run file at {self.path}")
        self.info = self.refresh()

    def _open(self) -> h5py.File:
        return open_for_reading(self.path)

    def refresh(self) -> RunInfo:
        """Re-read the run's description (status, events, ... of a live run) and return it."""
        with self._open() as file:
            self.info = read_run_info(file, self.path)
        return self.info

    @property
    def procedure(self) -> str:
        """The procedure name stored in the file (``entry/procedure``)."""
        return self.info.procedure

    @property
    def status(self) -> str:
        """Run status: queued, running, finished, aborted, failed or interrupted."""
        return self.info.status

    @property
    def parameters(self) -> dict[str, Any]:
        """The parameters as stored (plain values; no class defaults filled in)."""
        return dict(self.info.parameters)

    @property
    def metadata(self) -> dict[str, Any]:
        """The run metadata (``entry/metadata``)."""
        return dict(self.info.metadata)

    @property
    def columns(self) -> dict[str, str]:
        """Column name -> unit, in column order."""
        return {key: units for key, _name, units in self.info.columns}

    @property
    def events(self) -> list[dict[str, Any]]:
        """Events of the run (as of the last :meth:`refresh`)."""
        return list(self.info.events)

    @property
    def analysis(self) -> dict[str, Any]:
        """Figures stored in ``entry/analysis``."""
        return dict(self.info.analysis)

    def read_columns(self, keys: Sequence[str]) -> dict[str, np.ndarray]:
        """Return only the named data columns (one read each); unknown names are left out."""
        with self._open() as file:
            return read_columns(file, self.info.columns, keys)

    def frames(self, stream: str = "spectra", *, with_intensity: bool = True) -> FrameSet:
        """Return the frames of ``stream``; see :meth:`HDF5Results.frames`."""
        with self._open() as file:
            return read_frames(file, stream, None, with_intensity)

    def iter_frames(
        self,
        stream: str = "spectra",
        block_frames: int = 1024,
        *,
        start: int = 0,
        stop: int | None = None,
    ) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(first index, (k, pixels) intensities)`` blocks of the spectra of ``stream``.

        Raises
        ------
        KeyError
            If the run has no such stream (yet).
        """
        with self._open() as file:
            yield from iter_file_frames(file, stream, block_frames, start, stop)

    def streams(self) -> list[str]:
        """Names of the frame streams of this run."""
        with self._open() as file:
            return stream_names(file)

    def segments(self) -> list[tuple[int, int, int]]:
        """Return ``(segment, first_row, stop_row)`` of each segment of a resumed run."""
        keys = [key for key, _name, _units in self.info.columns]
        with self._open() as file:
            columns = read_columns(file, self.info.columns, keys[:1] + ["segment"])
        rows = len(next(iter(columns.values()))) if columns else 0
        return segment_ranges(columns.get("segment"), rows)


def stored_procedure_name(entry: h5py.Group) -> str | None:
    """Return the procedure name of a run (``entry/procedure`` field, else attribute)."""
    value = entry.get("procedure")
    if value is None:
        value = entry.attrs.get("procedure")
    if value is None:
        return None
    if isinstance(value, h5py.Dataset):
        value = value.asstr()[()] if value.dtype.kind in "SO" else value[()]
    if isinstance(value, np.ndarray) and value.size == 1:
        value = value.reshape(-1)[0]
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return str(value)


class OpenRun:
    """One run file held open for reading: each part is read once, when first asked for.

    What ``analyze``, ``report`` and ``lifetime-fit`` read through (the same interface
    the figures modules use on an :class:`~perovlab_daq.storage.HDF5Results`), without
    building a procedure or reading what the figures do not need: a lifetime run's key
    figures read 8 columns (one read each), one metadata group and the events, not the
    32 parameters nor the instrument snapshot. ``procedure`` is built only when asked
    for, by ``procedure_factory(info)`` (parameters with class defaults filled in).

    Parameters
    ----------
    path
        The run's ``.h5`` file.
    procedure_factory
        Builds the procedure from a :class:`RunInfo` holding the stored parameters.

    Raises
    ------
    StorageError
        If the file does not exist, does not open as HDF5 or has no ``entry`` group.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        procedure_factory: Callable[[RunInfo], Any] | None = None,
    ) -> None:
        self.path = Path(os.fspath(path))
        if not self.path.exists():
            raise StorageError(f"no run file at {self.path}")
        self.procedure_factory = procedure_factory
        self._file: h5py.File | None = open_for_reading(self.path)
        self._cache: dict[str, Any] = {}

    # ------------------------------------------------------------------ plumbing
    def _cached(self, key: str, read: Callable[[], Any]) -> Any:
        if key not in self._cache:
            self._cache[key] = read()
        return self._cache[key]

    @property
    def file(self) -> h5py.File:
        """The open h5py file (StorageError once closed)."""
        if self._file is None:
            raise StorageError(f"{self.path} was closed")
        return self._file

    def close(self) -> None:
        """Close the file; the values read so far stay available."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> OpenRun:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def _entry(self) -> h5py.Group:
        return self._cached("entry", lambda: run_entry(self.file))

    # ------------------------------------------------------------------ description
    @property
    def procedure_name(self) -> str | None:
        """The stored procedure name (``entry/procedure``), None if the file has none."""
        return self._cached("name", lambda: stored_procedure_name(self._entry))

    @property
    def status(self) -> str:
        """Run status as stored (``finished`` when the file does not say)."""
        return str(read_attr(self._entry.attrs, "status", layout.FINISHED)) or layout.FINISHED

    @property
    def status_reason(self) -> str:
        """Why the run ended as it did ('' if not said)."""
        return str(read_attr(self._entry.attrs, "status_reason", ""))

    @property
    def stored_parameters(self) -> dict[str, Any]:
        """The parameters exactly as stored (no class defaults)."""
        return dict(self._cached("parameters", lambda: read_parameters(self._entry))[0])

    @property
    def parameters(self) -> dict[str, Any]:
        """The same as :attr:`stored_parameters`."""
        return self.stored_parameters

    @property
    def procedure(self) -> Any:
        """The procedure with the stored parameters set (None without a factory)."""
        if self.procedure_factory is None:
            return None

        def build() -> Any:
            values, names = self._cached("parameters", lambda: read_parameters(self._entry))
            info = RunInfo(
                procedure=self.procedure_name or "",
                parameters=dict(values),
                parameter_names=dict(names),
            )
            return self.procedure_factory(info)

        return self._cached("procedure", build)

    @property
    def metadata(self) -> dict[str, Any]:
        """``entry/metadata`` (attributes and datasets)."""
        return dict(self._cached("metadata", lambda: read_metadata(self._entry)))

    @property
    def analysis(self) -> dict[str, Any]:
        """Figures stored in ``entry/analysis``."""
        group = self._entry.get("analysis")
        return layout.read_mapping(group) if isinstance(group, h5py.Group) else {}

    @property
    def events(self) -> list[dict[str, Any]]:
        """Events of the run (dicts with time, timestamp, level, kind, message)."""
        return list(self._cached("events", lambda: read_events(self._entry)))

    @property
    def column_specs(self) -> ColumnSpecs:
        """``[[key, dataset_name, units], ...]`` of the data columns."""
        return self._cached("columns", lambda: read_column_specs(self._entry))

    @property
    def columns(self) -> dict[str, str]:
        """Column name -> unit, in column order."""
        return {key: units for key, _name, units in self.column_specs}

    # ------------------------------------------------------------------ values
    @property
    def data(self) -> pd.DataFrame:
        """Every data column as a DataFrame (read once, one read per column)."""

        def read() -> pd.DataFrame:
            specs = self.column_specs
            values = read_columns(self.file, specs, [key for key, _n, _u in specs])
            if not values:
                return pd.DataFrame({key: pd.Series(dtype="f8") for key, _n, _u in specs})
            return pd.DataFrame(values, copy=False)

        return self._cached("data", read)

    def read_columns(self, keys: Sequence[str]) -> dict[str, np.ndarray]:
        """Return only the named columns (one read each); unknown names are left out."""
        if "data" in self._cache:
            data = self._cache["data"]
            return {k: data[k].to_numpy() for k in dict.fromkeys(keys) if k in data.columns}
        rows = self._cached("rows", lambda: complete_rows(self.file, self.column_specs))
        return read_columns(self.file, self.column_specs, keys, rows)

    def frames(self, stream: str = "spectra", *, with_intensity: bool = True) -> FrameSet:
        """Return the frames of ``stream`` (KeyError if the run has none)."""
        return read_frames(self.file, stream, None, with_intensity)

    def iter_frames(
        self,
        stream: str = "spectra",
        block_frames: int = 1024,
        *,
        start: int = 0,
        stop: int | None = None,
    ) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(first index, (k, pixels) intensities)`` blocks of ``stream``."""
        yield from iter_file_frames(self.file, stream, block_frames, start, stop)

    def streams(self) -> list[str]:
        """Names of the frame streams of this run."""
        return stream_names(self.file)

    def add_event(self, level: str, kind: str, message: str) -> None:
        """Append an event to the closed run's file (closes the file; copy-and-replace).

        Its ``time`` is NaN (the run's clock has stopped); ``timestamp`` says when.
        Never raises for storage reasons: an event that cannot be stored is logged.
        """
        self.close()
        event = {
            "time": float("nan"),
            "timestamp": layout.now_iso(),
            "level": str(level),
            "kind": str(kind),
            "message": str(message),
        }
        try:
            update_closed_file(self.path, lambda file: layout.append_closed_event(file, event))
        except OSError as exc:
            log.error("event %s not stored in %s: %s", kind, self.path, exc)

    def write_analysis(self, analysis: Mapping[str, Any]) -> None:
        """Store figures in ``entry/analysis`` (closes the file; a safe copy-and-replace).

        Raises
        ------
        StorageError
            If the file cannot be updated.
        """
        self.close()
        figures = dict(analysis)
        try:
            update_closed_file(
                self.path, lambda file: layout.write_mapping(layout.analysis_group(file), figures)
            )
        except OSError as exc:
            raise StorageError(f"cannot write the analysis into {self.path}: {exc}") from exc
