"""A writer batch: queued records turned into arrays, and the disk-space check before HDF5.

The writer thread drains its queues into one batch per commit: rows become one float64
array (numbers, numeric strings and pint quantities in the column's unit; anything else
NaN, warned once per column), the frames of each stream one stacked array with its
per-frame context. :func:`ensure_room` stops the run with :class:`DiskFullError` before
HDF5 would meet a full disk.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from . import layout
from .errors import DiskFullError, StorageError

log = logging.getLogger(__name__)

#: Room kept free on the disk for closing the run file (status, events, analysis).
DISK_RESERVE_BYTES = 1024 * 1024
#: Above this much free space the per-batch disk check does nothing more than one statvfs.
DISK_COMFORTABLE_BYTES = 64 * 1024 * 1024

_NAN = float("nan")


def rows_to_array(
    batch: list[tuple[Any, ...]], columns: list[list[str]], warned: set[str]
) -> np.ndarray:
    """Return queued rows as an ``(n, n_columns)`` float64 array.

    Parameters
    ----------
    batch
        Row tuples in column order.
    columns
        ``[[key, dataset_name, units], ...]`` of the run.
    warned
        Columns already warned about a value that is not a number (updated).
    """
    width = len(columns)
    try:
        values = np.array(batch, dtype=np.float64)
        if values.shape == (len(batch), width):
            return values
    except (TypeError, ValueError):
        pass
    values = np.full((len(batch), width), np.nan)
    for row_index, row in enumerate(batch):
        for col_index, value in enumerate(row[:width]):
            key, _name, units = columns[col_index]
            values[row_index, col_index] = to_float(value, key, units, warned)
    return values


def to_float(value: Any, key: str, units: str, warned: set[str]) -> float:
    """Return ``value`` of column ``key`` as a float in ``units``, or NaN (warned once)."""
    if isinstance(value, bool | int | float | np.number):
        return float(value)
    magnitude = getattr(value, "magnitude", None)
    if magnitude is not None and hasattr(value, "m_as"):  # pint Quantity
        try:
            return float(value.m_as(units)) if units else float(magnitude)
        except Exception:  # noqa: BLE001 - wrong dimension: stored as NaN
            pass
    elif isinstance(value, str):
        with contextlib.suppress(ValueError):
            return float(value)
    if key not in warned:
        warned.add(key)
        hint = " (arrays go in frames, not rows)" if np.ndim(value) else ""
        log.warning("column %r: value %r is not a number; stored as NaN%s", key, value, hint)
    return _NAN


def frame_batch(
    stream: str, items: list[tuple[Any, ...]], column_units: Mapping[str, str]
) -> tuple[dict[str, Any], dict[str, np.ndarray], tuple[Any, ...]]:
    """Stack the queued frames of one stream.

    Parameters
    ----------
    stream
        The stream's name.
    items
        Queued ``(stream, wavelength, intensity, context, units, intensity_units)``.
    column_units
        Units of the run's data columns (a context key named like one takes its unit).

    Returns
    -------
    tuple
        The journal record's meta and arrays, and the HDF5 batch ``(stream, wavelength,
        intensity, context, context_units, intensity_units)``.
    """
    wavelength = items[0][1]
    intensity = np.stack([item[2] for item in items])
    keys: list[str] = []
    for item in items:
        keys.extend(k for k in item[3] if k not in keys)
    context = {k: np.array([item[3].get(k, _NAN) for item in items]) for k in keys}
    units: dict[str, str] = {}
    for item in items:
        units.update(item[4])
    context_units = {
        k: units.get(k) or column_units.get(k) or layout.KNOWN_UNITS.get(k, "") for k in keys
    }
    meta = {
        "stream": stream,
        "context_units": context_units,
        "intensity_units": items[0][5],
        "keys": keys,
    }
    arrays = {"wavelength": wavelength, "intensity": intensity}
    arrays.update({f"ctx{i}": context[k] for i, k in enumerate(keys)})
    return meta, arrays, (stream, wavelength, intensity, context, context_units, items[0][5])


def batch_bytes(
    values: np.ndarray | None, frame_batches: list[tuple[Any, ...]], events: list[Any]
) -> int:
    """Return the bytes a batch adds to the file (rows, frames, ~512 per event)."""
    total = 0 if values is None else values.nbytes
    for _stream, _wavelength, intensity, context, _units, _iunits in frame_batches:
        total += intensity.nbytes + sum(np.asarray(v).nbytes for v in context.values())
    return total + 512 * len(events)


def chunk_bytes(file: h5py.File) -> int:
    """Return the bytes of one chunk of every chunked dataset in ``file``."""
    total = 0

    def visit(_name: str, item: Any) -> None:
        nonlocal total
        if isinstance(item, h5py.Dataset) and item.chunks is not None:
            total += int(np.prod(item.chunks)) * item.dtype.itemsize

    file.visititems(visit)
    return total


#: Free space below which a run is refused before it starts (skeleton, a batch, the reserve).
RUN_MINIMUM_BYTES = DISK_RESERVE_BYTES + 512 * 1024


def check_room_before_run(folder: Path, estimated_bytes: int = 0) -> str:
    """Check the free space of ``folder`` before a run; return a warning text or ``""``.

    Parameters
    ----------
    folder
        The data folder.
    estimated_bytes
        The run's expected file size if the caller knows it (0: unknown).

    Raises
    ------
    DiskFullError
        If the space is clearly insufficient: below :data:`RUN_MINIMUM_BYTES`, or below
        half the estimate. The message names the folder and both sizes.
    """
    try:
        free = shutil.disk_usage(folder).free
    except OSError as exc:
        raise StorageError(f"cannot check free space in {folder}: {exc}") from exc
    needed = max(RUN_MINIMUM_BYTES, estimated_bytes // 2 + DISK_RESERVE_BYTES)
    if free < needed:
        raise DiskFullError(
            f"disk full: {free / 1e6:.2f} MB free in {folder}; a run needs at least "
            f"{needed / 1e6:.2f} MB. Free disk space or choose another folder."
        )
    tight = max(DISK_COMFORTABLE_BYTES, 2 * estimated_bytes)
    if free < tight:
        return (
            f"only {free / 1e6:.1f} MB free in {folder}: the run stops (status failed, "
            "data kept) if the disk fills up"
        )
    return ""


def ensure_room(folder: Path, pending_bytes: int, file_chunk_bytes: Callable[[], int]) -> None:
    """Stop the run before HDF5 would meet a full disk.

    A write that fails inside HDF5 leaves the library in a state where closing the file
    (or just exiting) can crash the process. So a batch goes into the HDF5 file only if
    the disk has room for it and for what HDF5 still holds in its chunk cache since the
    last flush (``pending_bytes``), for one new chunk of every dataset
    (``file_chunk_bytes()``, asked only when space is short) and for closing the file.

    Raises
    ------
    DiskFullError
        If it has not: the run ends with the file closable.
    StorageError
        If the free space cannot be read.
    """
    try:
        free = shutil.disk_usage(folder).free
    except OSError as exc:
        raise StorageError(f"cannot check free space in {folder}: {exc}") from exc
    if free >= DISK_COMFORTABLE_BYTES:
        return
    needed = pending_bytes + file_chunk_bytes() + DISK_RESERVE_BYTES
    if free < needed:
        raise DiskFullError(
            f"disk full: {free / 1e6:.2f} MB free in {folder}, writing on "
            f"needs {needed / 1e6:.2f} MB; the run stopped with everything recorded so "
            "far kept"
        )
