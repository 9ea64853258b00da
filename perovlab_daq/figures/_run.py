"""Reading a loaded run for its figures: parameters, metadata, columns and frame streams.

The one set of helpers every ``perovlab_daq.figures.<procedure>`` module uses to read a
run opened by :func:`perovlab_daq.figures.load_run` (an
:class:`~perovlab_daq.storage.reader.OpenRun`: read lazily, no procedure built unless
:func:`parameter` needs its class defaults), a run being written
(:class:`~perovlab_daq.storage.HDF5Results`) or an in-memory stand-in (tests, the GUI's
live view). Whatever a figure needs and the run lacks is reported as an
:class:`AnalysisInputError` that names it.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np

from perovlab_daq.procedures._laser import LASER_GUARD_NM

log = logging.getLogger(__name__)

#: The processed spectra of a run (docs/hdf5-layout.md).
STREAM_SPECTRA = "spectra"


class AnalysisInputError(ValueError):
    """A file lacks what a figure needs; the message says what is missing."""


def plain(value: Any) -> Any:
    """Return a value read from HDF5 as a plain Python value (str, int, float...)."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray) and value.size == 1:
        return plain(value.reshape(-1)[0])
    return value


def parameter(run: Any, name: str, default: Any = None) -> Any:
    """Return a parameter value of a loaded run (``run.procedure`` or ``run.parameters``)."""
    procedure = getattr(run, "procedure", None)
    value = getattr(procedure, name, None) if procedure is not None else None
    if value is None:
        parameters = getattr(run, "parameters", None) or {}
        item = parameters.get(name) if hasattr(parameters, "get") else None
        value = getattr(item, "value", item)
    return default if value is None else value


def stored_parameters(run: Any) -> dict[str, Any]:
    """Return the parameters the file holds (not class defaults) by attribute name.

    An in-memory run (tests, the GUI's live view) has no file: its parameter objects' values.
    """
    stored = getattr(run, "stored_parameters", None)
    if stored is not None:
        return dict(stored)
    parameters = getattr(run, "parameters", None) or {}
    return {key: getattr(item, "value", item) for key, item in dict(parameters).items()}


def metadata(run: Any) -> dict[str, Any]:
    """Return the run's metadata (``entry/metadata``: bench, set-up, ageing acceleration)."""
    return dict(getattr(run, "metadata", None) or {})


def file_metadata(file: Any) -> dict[str, Any]:
    """Return ``entry/metadata`` of an open h5py file as plain values."""
    group = file.get("entry/metadata")
    if group is None:
        return {}
    return {key: plain(value) for key, value in group.attrs.items()}


def column(data: Any, name: str, what: str | None = None) -> np.ndarray | None:
    """Return a data column as floats.

    Parameters
    ----------
    data
        The run's rows (a DataFrame).
    name
        The column.
    what
        What the column is (meaning, unit): given, a missing column raises
        :class:`AnalysisInputError` naming it; omitted, a missing column gives None.
    """
    if name not in getattr(data, "columns", ()):
        if what is None:
            return None
        raise AnalysisInputError(f"missing column {name!r} ({what})")
    return np.asarray(data[name], dtype=float)


def columns(run: Any, *names: str) -> Any:
    """Return the run's data rows, checking that ``names`` are columns (AnalysisInputError)."""
    data = run.data
    for name in names:
        if name not in data.columns:
            raise AnalysisInputError(f"missing column {name!r}")
    if len(data) == 0:
        raise AnalysisInputError("the run holds no data rows")
    return data


def frames(run: Any, stream: str = STREAM_SPECTRA) -> Any:
    """Return the frames of ``stream`` of a loaded run; AnalysisInputError if there are none."""
    try:
        found = run.frames(stream)
    except KeyError:
        raise AnalysisInputError(f"missing frame stream {stream!r}") from None
    if len(found) == 0:
        raise AnalysisInputError(f"frame stream {stream!r} holds no spectra")
    return found


def frames_or_none(run: Any, stream: str) -> Any:
    """Return the frames of ``stream``, or None when the run has none (or cannot read them)."""
    reader = getattr(run, "frames", None)
    if reader is None:
        return None
    try:
        found = reader(stream)
    except (KeyError, ValueError, OSError):
        return None
    return found if len(found) else None


def laser_wavelength_nm(data: Any) -> float:
    """Return the laser wavelength (nm) of a PL run's rows; NaN without the column."""
    return float(data["laser_wavelength"].iloc[0]) if "laser_wavelength" in data else math.nan


def pl_window(run: Any, laser_nm: float, grid: np.ndarray) -> tuple[float, float]:
    """Return the PL analysis window of a run: the parameters, else laser + 20 nm to the end."""
    low = float(parameter(run, "pl_window_low", 0.0) or 0.0)
    high = float(parameter(run, "pl_window_high", 0.0) or 0.0)
    if low <= 0:
        low = (laser_nm if math.isfinite(laser_nm) else float(grid[0])) + LASER_GUARD_NM
    if high <= 0:
        high = float(grid[-1])
    return low, high


def close(run: Any) -> None:
    """Close a loaded run's file; never raises (closing must not hide results)."""
    closer = getattr(run, "close", None)
    if closer is not None:
        try:
            closer()
        except Exception as exc:  # noqa: BLE001
            log.debug("closing %r: %s", run, exc)
