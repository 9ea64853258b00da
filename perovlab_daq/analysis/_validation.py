"""Input checks shared by the analysis modules, with messages that name the parameter.

Every public analysis function funnels its arguments through these helpers so a bad
argument fails early with a ``ValueError`` saying which parameter, what value and
what is allowed, instead of a NaN surfacing three functions later.
"""

from __future__ import annotations

import logging

import numpy as np
from numpy.typing import ArrayLike, NDArray

log = logging.getLogger(__name__)

FloatArray = NDArray[np.float64]


def _describe(values: NDArray[np.float64]) -> str:
    """Summarise an offending array for an error message (first bad values)."""
    flat = np.ravel(values)
    shown = ", ".join(f"{v:.6g}" for v in flat[:3])
    more = f" (and {flat.size - 3} more)" if flat.size > 3 else ""
    return f"[{shown}]{more}"


def as_float_array(name: str, value: ArrayLike) -> FloatArray:
    """Convert ``value`` to a float64 array, refusing non-numeric and non-finite entries.

    Parameters
    ----------
    name : str
        Parameter name used in the error message.
    value : array_like
        Scalar or array of numbers.

    Returns
    -------
    numpy.ndarray
        The values as float64 (a scalar becomes a 0-d array).

    Raises
    ------
    ValueError
        If the value is not numeric, is empty, or contains NaN or infinity.
    """
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be numeric; got {value!r}") from exc
    if array.size == 0:
        raise ValueError(f"{name} must not be empty; got an array of shape {array.shape}")
    finite = np.isfinite(array)
    if not finite.all():
        bad = array[~finite]
        raise ValueError(
            f"{name} must be finite; got {bad.size} NaN/inf value(s) {_describe(bad)}; "
            "drop or mask those points first"
        )
    return array


def as_positive(name: str, value: ArrayLike, unit: str = "") -> FloatArray:
    """Like :func:`as_float_array`, and every entry must be strictly positive."""
    array = as_float_array(name, value)
    bad = array[array <= 0]
    if bad.size:
        unit_text = f" {unit}" if unit else ""
        raise ValueError(
            f"{name} must be > 0{unit_text}; got {bad.size} non-positive value(s) {_describe(bad)}"
        )
    return array


def as_positive_scalar(name: str, value: float, unit: str = "") -> float:
    """Return ``value`` as a float, refusing arrays, NaN, infinity and values <= 0."""
    array = as_positive(name, value, unit)
    if array.ndim != 0:
        raise ValueError(f"{name} must be a single number; got an array of shape {array.shape}")
    return float(array)


def as_wavelength_grid(name: str, value: ArrayLike) -> FloatArray:
    """Return a 1-D, finite, positive, strictly increasing wavelength grid (nm)."""
    grid = as_float_array(name, value)
    if grid.ndim != 1 or grid.size < 3:
        raise ValueError(
            f"{name} must be a 1-D array of at least 3 wavelengths in nm; got shape {grid.shape}"
        )
    if grid[0] <= 0:
        raise ValueError(f"{name} must be positive wavelengths in nm; got first value {grid[0]:g}")
    steps = np.diff(grid)
    if (steps <= 0).any():
        index = int(np.flatnonzero(steps <= 0)[0])
        raise ValueError(
            f"{name} must be strictly increasing; got {grid[index]:g} followed by "
            f"{grid[index + 1]:g} at index {index}"
        )
    return grid


def as_spectrum(name: str, value: ArrayLike, grid: FloatArray, *, allow_2d: bool) -> FloatArray:
    """Return spectra whose last axis matches ``grid`` (1-D, or 2-D rows if allowed)."""
    spectrum = as_float_array(name, value)
    allowed = "1-D" + (" or 2-D (one spectrum per row)" if allow_2d else "")
    if spectrum.ndim not in ((1, 2) if allow_2d else (1,)):
        raise ValueError(f"{name} must be {allowed}; got shape {spectrum.shape}")
    if spectrum.shape[-1] != grid.size:
        raise ValueError(
            f"{name} must have {grid.size} samples along its last axis (one per wavelength); "
            f"got shape {spectrum.shape}"
        )
    return spectrum


def require_positive_result(name: str, value: FloatArray | float, what: str) -> None:
    """Refuse a derived quantity (an integral, a sum) that must be positive."""
    array = np.asarray(value)
    if not (np.isfinite(array) & (array > 0)).all():
        raise ValueError(f"{name}: {what} must be > 0; got {_describe(array)}")


def broadcast_same_shape(**arrays: FloatArray) -> tuple[FloatArray, ...]:
    """Broadcast named arrays together, naming them if their shapes are incompatible."""
    try:
        return tuple(np.broadcast_arrays(*arrays.values()))
    except ValueError as exc:
        shapes = ", ".join(f"{key} {np.shape(val)}" for key, val in arrays.items())
        raise ValueError(f"shapes do not broadcast together: {shapes}") from exc


def require_paired_1d(**arrays: FloatArray) -> None:
    """Refuse two named arrays unless both are 1-D and of the same length (x and y of a fit)."""
    (first_name, first), (second_name, second) = arrays.items()
    if first.ndim != 1 or first.shape != second.shape:
        raise ValueError(
            f"{first_name} and {second_name} must be 1-D arrays of the same length; "
            f"got shapes {first.shape} and {second.shape}"
        )
