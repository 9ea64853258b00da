"""Spectrum analysis for EL/PL: peak centre and FWHM, power laws, de Mello PLQY, new peaks.

Everything here works on calibrated or at least dark-subtracted spectra on a strictly
increasing wavelength grid (nm); :func:`calibrate_spectrum` turns the spectrometer
facade's raw counts into spectral power. :func:`peak_metrics` is vectorised over rows
so that a whole photostability or lifetime series (thousands of spectra) is analysed
in one call without a per-spectrum fit.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import constants, ndimage

from perovlab_daq.analysis._student import t_quantile
from perovlab_daq.analysis._validation import (
    FloatArray,
    as_float_array,
    as_positive,
    as_positive_scalar,
    as_spectrum,
    as_wavelength_grid,
    require_paired_1d,
    require_positive_result,
)

log = logging.getLogger(__name__)

#: Elements (rows x pixels) processed at once by :func:`peak_metrics`: ~2 MB temporaries
#: stay in cache, which measured 1.5x faster than 32 MB chunks.
_CHUNK_ELEMENTS = 250_000
#: Fraction of the peak height above which :func:`peak_metrics` takes its centroid; 0.3
#: agreed better with Gaussian least-squares fits on noisy spectra than 0.5 or 0.1.
_CENTROID_LEVEL = 0.3
#: Half-width (pixels) of the window around each peak that :func:`peak_metrics` works
#: in; a wider peak falls back to the whole row. 128 px covers a FWHM of ~170 px.
_WINDOW_HALF_PX = 128
#: Binning (pixels) of the coarse copy used to locate each peak robustly against noise.
_COARSE_BIN_PX = 4


def calibrate_spectrum(
    counts: ArrayLike,
    dark_counts: ArrayLike,
    integration_time_s: float,
    sensitivity: ArrayLike,
) -> FloatArray:
    """Convert raw spectrometer counts into spectral power (W/nm).

    P_lambda = (counts - dark_counts) / (integration_time_s * sensitivity).

    Parameters
    ----------
    counts : array_like
        Raw counts, 1-D (n pixels) or 2-D (one spectrum per row), taken with
        ``integration_time_s``; nonlinearity-corrected beforehand if needed.
    dark_counts : array_like
        Dark frame (counts) at the same integration time, shape (n,) or that of
        ``counts``.
    integration_time_s : float
        Integration time (s), > 0.
    sensitivity : array_like
        Spectrometer sensitivity in counts s^-1 per (W/nm) at each pixel, shape (n,),
        > 0 everywhere (restrict the grid to the calibrated range first).

    Returns
    -------
    numpy.ndarray
        Spectral power (W/nm) on the spectrometer's grid, shape of ``counts``. Small
        negative values from noise in the dark subtraction are kept (clipping them
        would bias integrals upwards).
    """
    raw = as_float_array("counts", counts)
    dark = as_float_array("dark_counts", dark_counts)
    if raw.ndim not in (1, 2):
        raise ValueError(f"counts must be 1-D or 2-D (one spectrum per row); got {raw.shape}")
    if dark.shape not in (raw.shape, raw.shape[-1:]):
        raise ValueError(
            f"dark_counts must have shape {raw.shape[-1:]} or {raw.shape}; got {dark.shape}"
        )
    time_s = as_positive_scalar("integration_time_s", integration_time_s, "s")
    response = as_positive("sensitivity", sensitivity, "counts s^-1 (W/nm)^-1")
    if response.shape != raw.shape[-1:]:
        raise ValueError(
            f"sensitivity must have shape {raw.shape[-1:]} (one value per pixel); "
            f"got {response.shape}"
        )
    return (raw - dark) / (time_s * response)


@dataclass(frozen=True)
class PeakMetrics:
    """Peak figures of a set of spectra, one entry per spectrum row.

    Attributes
    ----------
    centre_nm : numpy.ndarray
        Centroid (nm) of the contiguous part of the peak above 30 % of its height,
        weighted by the height above that level; equals the peak position for a
        symmetric peak and averages dozens of pixels, so it is the least noisy
        position estimate.
    peak_nm : numpy.ndarray
        Wavelength of maximum intensity (nm), refined by a parabola through the
        highest smoothed pixel and its neighbours (differs from ``centre_nm`` for an
        asymmetric peak).
    fwhm_nm : numpy.ndarray
        Full width at half maximum (nm) from linearly interpolated half-maximum
        crossings either side of the maximum; NaN if the signal stays
        above half maximum up to an end of the grid.
    height : numpy.ndarray
        Peak height above the baseline (spectrum units).
    integrated_intensity : numpy.ndarray
        Trapezoidal integral of the baseline-corrected spectrum over the whole grid
        (spectrum units x nm).
    """

    centre_nm: FloatArray
    peak_nm: FloatArray
    fwhm_nm: FloatArray
    height: FloatArray
    integrated_intensity: FloatArray

    def __len__(self) -> int:
        return int(self.centre_nm.size)


def _baseline_coefficients(
    grid: FloatArray, rows: FloatArray, edge_px: int
) -> tuple[FloatArray, FloatArray, float]:
    """Return (value at ``anchor_nm``, slope per nm, anchor_nm) of each row's edge baseline.

    The baseline is the straight line through the mean of the first and the last
    ``edge_px`` pixels of the row.
    """
    anchor_nm = float(grid[:edge_px].mean())
    right_nm = float(grid[-edge_px:].mean())
    left = rows[:, :edge_px].mean(axis=1)
    slope = (rows[:, -edge_px:].mean(axis=1) - left) / (right_nm - anchor_nm)
    return left, slope, anchor_nm


def _linear_baseline(grid: FloatArray, rows: FloatArray, edge_px: int) -> FloatArray:
    """Return the edge baseline of every row evaluated on the whole grid."""
    left, slope, anchor_nm = _baseline_coefficients(grid, rows, edge_px)
    baseline = np.multiply.outer(slope, grid - anchor_nm)
    baseline += left[:, None]
    return baseline


def _crossing_indices(
    smoothed: FloatArray, level: FloatArray, top: NDArray[np.intp], columns: NDArray[np.intp]
) -> tuple[NDArray[np.intp], NDArray[np.intp], NDArray[np.bool_], NDArray[np.bool_]]:
    """Return the last pixel below ``level`` left of ``top`` and the first one right of it.

    Works on boolean masks (argmax finds the first True), which is several times faster
    than integer ``where`` reductions on a (rows x pixels) array. Also returns whether
    each side was found at all.
    """
    row_index = np.arange(smoothed.shape[0])
    below = smoothed < level[:, None]
    left_side = below & (columns < top[:, None])
    left = smoothed.shape[1] - 1 - np.argmax(left_side[:, ::-1], axis=1)
    right_side = below & (columns > top[:, None])
    right = np.argmax(right_side, axis=1)
    return left, right, left_side[row_index, left], right_side[row_index, right]


def _moving_average(rows: FloatArray, width: int) -> FloatArray:
    """Centred moving average along each row, repeating the edge pixels (ndimage "nearest").

    Equivalent to ``ndimage.uniform_filter1d(rows, width, axis=1, mode="nearest")`` for
    odd widths, but a sum of shifted slices, which is several times faster on many short
    rows (the ndimage call pays a per-row overhead).
    """
    before = width // 2
    after = width - 1 - before
    padded = np.concatenate(
        [np.repeat(rows[:, :1], before, axis=1), rows, np.repeat(rows[:, -1:], after, axis=1)],
        axis=1,
    )
    n_px = rows.shape[1]
    total = padded[:, :n_px].copy()
    for shift in range(1, width):
        total += padded[:, shift : shift + n_px]
    total /= width
    return total


def _peak_core(
    wavelength_nm: FloatArray, smoothed: FloatArray, pixel_weights: FloatArray
) -> tuple[tuple[FloatArray, ...], NDArray[np.bool_]]:
    """Peak figures of baseline-corrected, smoothed rows.

    ``wavelength_nm`` and ``pixel_weights`` (trapezoidal dlambda) have the shape of
    ``smoothed`` (each row its own window of the grid). Returns (centre, peak, fwhm,
    height) and, per row, whether all four crossings (half and centroid level) were
    found at least 3 pixels inside the row, which the windowed path needs to trust it.
    """
    n_rows, n_px = smoothed.shape
    rows = np.arange(n_rows)
    columns = np.arange(n_px)
    top = np.clip(np.argmax(smoothed, axis=1), 1, n_px - 2)
    before = smoothed[rows, top - 1]
    at_top = smoothed[rows, top]
    after = smoothed[rows, top + 1]
    curvature = before - 2.0 * at_top + after
    with np.errstate(divide="ignore", invalid="ignore"):
        offset = np.where(curvature < 0, 0.5 * (before - after) / curvature, 0.0)
    offset = np.clip(offset, -0.5, 0.5)
    height = at_top - 0.25 * (before - after) * offset
    x_top = wavelength_nm[rows, top]
    step_nm = np.where(
        offset >= 0, wavelength_nm[rows, top + 1] - x_top, x_top - wavelength_nm[rows, top - 1]
    )
    peak_nm = x_top + offset * step_nm

    half = 0.5 * height
    left, right, has_left, has_right = _crossing_indices(smoothed, half, top, columns)
    # Interpolated half-maximum crossings; the guard keeps a flat segment from dividing by 0.
    left_next = np.minimum(left + 1, n_px - 1)
    y0, y1 = smoothed[rows, left], smoothed[rows, left_next]
    x0, x1 = wavelength_nm[rows, left], wavelength_nm[rows, left_next]
    right_prev = np.maximum(right - 1, 0)
    ya, yb = smoothed[rows, right_prev], smoothed[rows, right]
    xa, xb = wavelength_nm[rows, right_prev], wavelength_nm[rows, right]
    left_nm = x0 + (half - y0) / np.where(y1 != y0, y1 - y0, 1.0) * (x1 - x0)
    right_nm = xa + (ya - half) / np.where(ya != yb, ya - yb, 1.0) * (xb - xa)
    fwhm = np.where(has_left & has_right, right_nm - left_nm, np.nan)

    # Centroid of the height above _CENTROID_LEVEL of the maximum, over the contiguous
    # region around the top: weights fall to zero at the region's edges, so which pixels
    # happen to be included barely matters, and ~60 % of the peak's pixels average noise.
    level = _CENTROID_LEVEL * height
    low, high, has_low, has_high = _crossing_indices(smoothed, level, top, columns)
    weight = smoothed - level[:, None]
    np.maximum(weight, 0.0, out=weight)
    weight *= (columns > np.where(has_low, low, -1)[:, None]) & (
        columns < np.where(has_high, high, n_px)[:, None]
    )
    weight *= pixel_weights
    weight_sum = weight.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        centre = (weight * wavelength_nm).sum(axis=1) / weight_sum

    no_peak = ~(height > 0) | ~(weight_sum > 0)
    centre[no_peak] = np.nan
    peak_nm[no_peak] = np.nan
    fwhm[no_peak] = np.nan
    inside = (low >= 3) & (high <= n_px - 4) & (left >= 3) & (right <= n_px - 4)
    trusted = has_left & has_right & has_low & has_high & inside & ~no_peak
    return (centre, peak_nm, fwhm, height), trusted


def _peak_metrics_full(
    grid: FloatArray, rows: FloatArray, edge_px: int, smoothing_px: int, weights: FloatArray
) -> tuple[FloatArray, ...]:
    """Peak figures computed on whole rows (the reference path)."""
    baseline = _linear_baseline(grid, rows, edge_px)
    if smoothing_px > 1:
        # A moving average of a straight line is the same line, so smooth then subtract.
        smoothed = _moving_average(rows, smoothing_px)
        smoothed -= baseline
    else:
        smoothed = rows - baseline
    shape = smoothed.shape
    figures, _ = _peak_core(np.broadcast_to(grid, shape), smoothed, np.broadcast_to(weights, shape))
    return figures


def _peak_metrics_chunk(
    grid: FloatArray, rows: FloatArray, edge_px: int, smoothing_px: int, weights: FloatArray
) -> tuple[FloatArray, ...]:
    """Peak figures of a block of rows, working on a window around each peak.

    A peak occupies a small part of a 1044-pixel spectrum, so each row is cut to
    +-_WINDOW_HALF_PX pixels around the maximum of a 4-pixel-binned, baseline-corrected
    copy; rows whose crossings are not safely inside their window (very broad peaks,
    peaks at the grid's edge, no peak) are redone on the whole row.
    """
    n_rows, n_px = rows.shape
    left, slope, anchor_nm = _baseline_coefficients(grid, rows, edge_px)
    integrated = rows @ weights - (left * weights.sum() + slope * ((grid - anchor_nm) @ weights))
    window = 2 * _WINDOW_HALF_PX + 1
    if n_px < 2 * window:
        return (*_peak_metrics_full(grid, rows, edge_px, smoothing_px, weights), integrated)

    n_blocks = n_px // _COARSE_BIN_PX
    usable = n_blocks * _COARSE_BIN_PX
    # Strided sums beat reshape().mean() here: numpy reduces short inner axes slowly.
    binned = sum(rows[:, k:usable:_COARSE_BIN_PX] for k in range(_COARSE_BIN_PX)) / _COARSE_BIN_PX
    binned_nm = grid[:usable].reshape(n_blocks, _COARSE_BIN_PX).mean(axis=1)
    binned -= left[:, None] + slope[:, None] * (binned_nm - anchor_nm)
    centre_px = np.argmax(binned, axis=1) * _COARSE_BIN_PX + _COARSE_BIN_PX // 2
    # Clipping repeats the edge pixel, which is what the full path's "nearest" mode does.
    index = np.clip(
        centre_px[:, None] + np.arange(-_WINDOW_HALF_PX, _WINDOW_HALF_PX + 1), 0, n_px - 1
    )
    window_nm = grid[index]
    smoothed = np.take_along_axis(rows, index, axis=1)
    smoothed -= left[:, None] + slope[:, None] * (window_nm - anchor_nm)
    if smoothing_px > 1:
        smoothed = _moving_average(smoothed, smoothing_px)
    window_weights = weights[index]
    # A pixel repeated by clipping must not count twice in the centroid.
    window_weights[:, 1:][index[:, 1:] == index[:, :-1]] = 0.0
    (centre, peak_nm, fwhm, height), trusted = _peak_core(window_nm, smoothed, window_weights)
    redo = np.flatnonzero(~trusted)
    if redo.size:
        full = _peak_metrics_full(grid, rows[redo], edge_px, smoothing_px, weights)
        for column, values in zip((centre, peak_nm, fwhm, height), full, strict=True):
            column[redo] = values
    return centre, peak_nm, fwhm, height, integrated


def peak_metrics(
    wavelength_nm: ArrayLike,
    spectra: ArrayLike,
    *,
    baseline_edge_fraction: float = 0.05,
    smoothing_px: int = 5,
) -> PeakMetrics:
    """Return centre, FWHM, height and integral of the main peak of each spectrum.

    Steps, all vectorised over rows: (1) subtract a straight baseline through the mean
    of the first and last ``baseline_edge_fraction`` of the pixels (at least 3 each);
    (2) smooth with a ``smoothing_px`` moving average, which leaves the centroid of a
    peak unchanged and widens a Gaussian's FWHM by a factor
    sqrt(1 + w^2 / (12 sigma^2)) (0.3 % for w = 5 px, sigma = 20 px); (3) refine the
    highest pixel with a parabola (height, ``peak_nm``); (4) find the half-maximum
    crossings either side with linear interpolation (FWHM); (5) take the centroid of
    the height above 30 % of the maximum over the contiguous region around the top
    (``centre_nm``; within 0.1 nm of a least-squares Gaussian fit on noisy Gaussian
    peaks, see benchmarks/bench_analysis.py).

    Parameters
    ----------
    wavelength_nm : array_like
        Strictly increasing wavelength grid (nm), 1-D, n >= 3.
    spectra : array_like
        Baseline-containing spectra on ``wavelength_nm``: shape (n,) for one, (m, n)
        for m spectra. The main peak must lie away from the edges used for the baseline.
    baseline_edge_fraction : float, default 0.05
        Fraction of pixels at each end used for the baseline (0 < f < 0.5).
    smoothing_px : int, default 5
        Moving-average width in pixels (1 disables); use 1 for lines only a few
        pixels wide.

    Returns
    -------
    PeakMetrics
        Arrays of length m (length 1 for a 1-D spectrum); NaN in centre, peak and FWHM
        for a spectrum with no positive peak, NaN FWHM when it stays above half
        maximum up to an end of the grid.
    """
    grid = as_wavelength_grid("wavelength_nm", wavelength_nm)
    rows = np.atleast_2d(as_spectrum("spectra", spectra, grid, allow_2d=True))
    if not 0 < baseline_edge_fraction < 0.5:
        raise ValueError(
            f"baseline_edge_fraction must be between 0 and 0.5; got {baseline_edge_fraction!r}"
        )
    if isinstance(smoothing_px, bool) or not isinstance(smoothing_px, int | np.integer):
        raise ValueError(f"smoothing_px must be an integer >= 1; got {smoothing_px!r}")
    if not 1 <= smoothing_px <= grid.size // 4:
        raise ValueError(
            f"smoothing_px must be between 1 and {grid.size // 4} (a quarter of the grid); "
            f"got {smoothing_px}"
        )
    n_px = grid.size
    edge_px = max(3, int(round(baseline_edge_fraction * n_px)))
    if 2 * edge_px >= n_px:
        raise ValueError(f"wavelength_nm has too few points ({n_px}) for a baseline from its edges")
    trapezoid_weights = np.zeros(n_px)
    trapezoid_weights[:-1] += 0.5 * np.diff(grid)
    trapezoid_weights[1:] += 0.5 * np.diff(grid)
    chunk_rows = max(1, _CHUNK_ELEMENTS // n_px)
    parts = [
        _peak_metrics_chunk(
            grid, rows[start : start + chunk_rows], edge_px, smoothing_px, trapezoid_weights
        )
        for start in range(0, rows.shape[0], chunk_rows)
    ]
    columns = [np.concatenate(values) for values in zip(*parts, strict=True)]
    return PeakMetrics(*columns)


@dataclass(frozen=True)
class PowerLawFit:
    """Result of :func:`power_law_slope`: I = prefactor * P^k.

    Attributes
    ----------
    k : float
        Exponent (slope of ln I against ln P over the fitted points).
    k_stderr : float
        Standard error of ``k`` from the residuals (NaN with only 2 points).
    prefactor : float
        C in I = C P^k (intensity units per power unit^k).
    local_slope : numpy.ndarray
        d ln I / d ln P at every input point, in the caller's order (central
        differences on the power-sorted data, one-sided at the ends).
    n_points_fit : int
        Number of points in the fit.
    """

    k: float
    k_stderr: float
    prefactor: float
    local_slope: FloatArray
    n_points_fit: int


def power_law_slope(
    power: ArrayLike,
    intensity: ArrayLike,
    *,
    power_range: tuple[float, float] | None = None,
) -> PowerLawFit:
    """Fit integrated PL (or EL) against excitation power to a power law I = C P^k.

    Least squares of ln I against ln P (REFERENCE section 3). k ~ 1 radiative/excitonic,
    k ~ 2 trap-limited free carriers, k < 1 saturation, Auger or heating.

    Parameters
    ----------
    power : array_like
        Excitation power, power density or fluence (any unit), 1-D, > 0, all distinct.
    intensity : array_like
        Integrated intensity, same shape, > 0.
    power_range : tuple of float, optional
        (low, high) inclusive power range for the fit; the local slope always covers
        every point.

    Returns
    -------
    PowerLawFit
        Exponent, its standard error, prefactor and local slopes.
    """
    powers = as_positive("power", power)
    intensities = as_positive("intensity", intensity)
    require_paired_1d(power=powers, intensity=intensities)
    if powers.size < 2:
        raise ValueError(f"power must have at least 2 points; got {powers.size}")
    order = np.argsort(powers)
    ln_power = np.log(powers[order])
    ln_intensity = np.log(intensities[order])
    if (np.diff(ln_power) == 0).any():
        raise ValueError("power must not repeat a value (average repeated points first)")
    local_sorted = np.gradient(ln_intensity, ln_power)
    local_slope = np.empty_like(local_sorted)
    local_slope[order] = local_sorted

    selected = np.ones(powers.size, dtype=bool)
    if power_range is not None:
        low, high = (float(v) for v in power_range)
        if not low < high:
            raise ValueError(f"power_range must be (low, high) with low < high; got {power_range}")
        selected = (powers >= low) & (powers <= high)
    n_fit = int(selected.sum())
    if n_fit < 2:
        raise ValueError(
            f"power_range {power_range} keeps {n_fit} point(s); the fit needs at least 2"
        )
    x = np.log(powers[selected])
    y = np.log(intensities[selected])
    x_mean = x.mean()
    sxx = float(((x - x_mean) ** 2).sum())
    slope = float(((x - x_mean) * (y - y.mean())).sum() / sxx)
    intercept = float(y.mean() - slope * x_mean)
    if n_fit > 2:
        residual = y - (intercept + slope * x)
        stderr = math.sqrt(float((residual**2).sum()) / (n_fit - 2) / sxx)
    else:
        stderr = math.nan
    return PowerLawFit(slope, stderr, math.exp(intercept), local_slope, n_fit)


def _check_window(name: str, window: tuple[float, float], grid: FloatArray) -> tuple[float, float]:
    try:
        low, high = (float(v) for v in window)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be (low_nm, high_nm); got {window!r}") from exc
    if not (math.isfinite(low) and math.isfinite(high)) or low >= high:
        raise ValueError(f"{name} must be (low_nm, high_nm) with low < high; got {window!r}")
    if low < grid[0] or high > grid[-1]:
        raise ValueError(
            f"{name} {window!r} must lie inside the wavelength grid {grid[0]:g}-{grid[-1]:g} nm"
        )
    return low, high


def _integrate_window(grid: FloatArray, values: FloatArray, low: float, high: float) -> float:
    """Trapezoidal integral from ``low`` to ``high``, interpolating the end points."""
    inside = (grid > low) & (grid < high)
    x = np.concatenate(([low], grid[inside], [high]))
    y = np.concatenate(
        ([np.interp(low, grid, values)], values[inside], [np.interp(high, grid, values)])
    )
    return float(np.trapezoid(y, x))


def plqy_de_mello(
    wavelength_nm: ArrayLike,
    spectrum_a: ArrayLike,
    spectrum_b: ArrayLike,
    spectrum_c: ArrayLike,
    laser_window_nm: tuple[float, float],
    emission_window_nm: tuple[float, float],
) -> tuple[float, float]:
    """Return PLQY and absorptance by the de Mello three-measurement method.

    Spectra are converted to photon numbers (x lambda / (h c)) and integrated over the
    laser window (L) and the emission window (P); then A = 1 - L_c / L_b and
    PLQY = [P_c - (1 - A) P_b] / (L_a A) (REFERENCE section 3; de Mello et al.,
    Adv. Mater. 9, 230 (1997)).

    Parameters
    ----------
    wavelength_nm : array_like
        Strictly increasing wavelength grid (nm), 1-D.
    spectrum_a, spectrum_b, spectrum_c : array_like
        Calibrated spectral power (W/nm, or proportional with one common factor) of
        (a) the empty sphere, (b) the sample in the sphere with the beam on the wall,
        (c) the beam on the sample; same integration settings.
    laser_window_nm, emission_window_nm : tuple of float
        (low, high) in nm, inside the grid, low < high, not overlapping.

    Returns
    -------
    tuple of float
        (plqy, absorptance), both as fractions (0-1), not percent.
    """
    grid = as_wavelength_grid("wavelength_nm", wavelength_nm)
    spectra = [
        as_spectrum(name, value, grid, allow_2d=False)
        for name, value in (
            ("spectrum_a", spectrum_a),
            ("spectrum_b", spectrum_b),
            ("spectrum_c", spectrum_c),
        )
    ]
    laser = _check_window("laser_window_nm", laser_window_nm, grid)
    emission = _check_window("emission_window_nm", emission_window_nm, grid)
    if laser[0] < emission[1] and emission[0] < laser[1]:
        raise ValueError(
            f"laser_window_nm {laser_window_nm!r} and emission_window_nm "
            f"{emission_window_nm!r} must not overlap"
        )
    to_photons = grid * 1e-9 / (constants.h * constants.c)
    photons = [spectrum * to_photons for spectrum in spectra]
    laser_a, laser_b, laser_c = (_integrate_window(grid, p, *laser) for p in photons)
    _, emission_b, emission_c = (_integrate_window(grid, p, *emission) for p in photons)
    require_positive_result("spectrum_a", laser_a, "the laser-window photon count")
    require_positive_result("spectrum_b", laser_b, "the laser-window photon count")
    absorptance = 1.0 - laser_c / laser_b
    if absorptance <= 0:
        raise ValueError(
            f"spectrum_c: absorptance 1 - L_c/L_b = {absorptance:.4g} must be > 0; the "
            "sample absorbs nothing measurable or spectra b and c are swapped"
        )
    plqy = (emission_c - (1.0 - absorptance) * emission_b) / (laser_a * absorptance)
    log.debug("de Mello: A=%.4g PLQY=%.4g", absorptance, plqy)
    return float(plqy), float(absorptance)


@dataclass(frozen=True)
class TInterval:
    """Mean of repeated measurements with its standard uncertainty and a t interval.

    Attributes
    ----------
    mean : float
        Mean of the repeats.
    standard_uncertainty : float
        Sample standard deviation over sqrt(N) (NaN for N = 1).
    low, high : float
        Interval ``mean -+ t(1 - (1 - confidence)/2, N - 1) * standard_uncertainty``
        (NaN for N = 1).
    degrees_of_freedom : int
        N - 1.
    confidence : float
        Coverage probability of the interval (e.g. 0.95).
    """

    mean: float
    standard_uncertainty: float
    low: float
    high: float
    degrees_of_freedom: int
    confidence: float


def mean_with_t_interval(values: ArrayLike, confidence: float = 0.95) -> TInterval:
    """Return the mean of repeats with a Student-t interval for the real degrees of freedom.

    Parameters
    ----------
    values : array_like
        Finite repeated results (1-D, at least one).
    confidence : float, default 0.95
        Coverage probability, 0 < confidence < 1.
    """
    repeats = as_float_array("values", values).reshape(-1)
    if repeats.size == 0:
        raise ValueError("values must hold at least one result")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1; got {confidence!r}")
    mean = float(repeats.mean())
    dof = repeats.size - 1
    if dof == 0:
        return TInterval(mean, math.nan, math.nan, math.nan, 0, confidence)
    u = float(repeats.std(ddof=1) / math.sqrt(repeats.size))
    half = t_quantile(0.5 + confidence / 2, dof) * u
    return TInterval(mean, u, mean - half, mean + half, dof, confidence)


def noise_sigma(spectra: ArrayLike) -> FloatArray:
    """Return the per-pixel noise (rms) of each spectrum from its second differences.

    A band tens of nm wide barely changes the second difference of sub-nm pixels, so
    the median absolute second difference measures the noise alone (1.4826 MAD /
    sqrt(6) for white noise).
    """
    rows = np.atleast_2d(np.asarray(spectra, dtype=float))
    second = np.diff(rows, n=2, axis=1)
    mad = np.median(np.abs(second - np.median(second, axis=1, keepdims=True)), axis=1)
    return 1.4826 * mad / math.sqrt(6.0)


#: Pixels over which :func:`local_noise_sigma` takes its running median (~20 nm of a
#: 0.3 nm-pitch detector: narrow enough to follow the calibrated noise, wide enough that
#: the median of |second differences| is good to ~15 %).
LOCAL_NOISE_WINDOW_PX = 64


def local_noise_sigma(spectrum: ArrayLike, window_px: int = LOCAL_NOISE_WINDOW_PX) -> FloatArray:
    """Return the noise (rms) at every pixel of one spectrum: a running :func:`noise_sigma`.

    A radiometrically calibrated spectrum is (counts - dark) / sensitivity, so its noise
    grows wherever the sensitivity falls (the detector's edges): one sigma for the whole
    spectrum (the median) under-states the noise there many times over. Here the robust
    estimate (1.4826 MAD / sqrt(6) of the second differences) is taken in a running
    window of ``window_px`` pixels (nearest-pixel padding at the ends), then the largest
    such value within the window, so the estimate does not lag a steep rise of the noise.

    Parameters
    ----------
    spectrum : array_like
        One spectrum (1-D, at least 3 pixels).
    window_px : int, default LOCAL_NOISE_WINDOW_PX
        Width of the running window (pixels, >= 1).
    """
    values = np.asarray(spectrum, dtype=float).reshape(-1)
    if values.size < 3:
        return np.full(values.size, np.nan)
    second = np.diff(values, n=2)
    deviation = np.abs(second - np.median(second))
    size = max(1, min(int(window_px), deviation.size))
    local = ndimage.median_filter(deviation, size=size, mode="nearest")
    # Where the noise changes steeply, a window's median sits between the two levels: take
    # the largest median within the window, so a pixel is never judged against less noise
    # than its neighbourhood has (conservative for a peak's significance).
    local = ndimage.maximum_filter1d(local, size=size, mode="nearest")
    # Second difference k is centred on pixel k + 1: repeat the end values for the ends.
    local = np.concatenate((local[:1], local, local[-1:]))
    return 1.4826 * local / math.sqrt(6.0)


def _find_peak_wavelengths(
    grid: FloatArray,
    spectrum: FloatArray,
    relative_prominence: float,
    smoothing_px: int,
    min_snr: float | None,
) -> FloatArray:
    corrected = spectrum - _linear_baseline(grid, spectrum[None, :], 3)[0]
    noise = local_noise_sigma(corrected)
    if smoothing_px > 1:
        corrected = ndimage.uniform_filter1d(corrected, smoothing_px, mode="nearest")
    top = corrected.max()
    if not top > 0:
        return np.empty(0)
    if min_snr is not None and not np.any(corrected > min_snr * noise):
        return np.empty(0)  # noise alone (e.g. a bleached film): no peak at all
    # Imported here: scipy.signal imports scipy.stats (~1.4 s, 22 MB) that nothing else needs.
    from scipy.signal import find_peaks

    indices, properties = find_peaks(corrected, prominence=relative_prominence * top)
    if min_snr is not None:
        # Each peak against the noise where it sits (the calibrated noise is not flat).
        indices = indices[properties["prominences"] >= min_snr * noise[indices]]
    return grid[indices]


def new_peaks(
    wavelength_nm: ArrayLike,
    reference_spectrum: ArrayLike,
    spectrum: ArrayLike,
    *,
    min_relative_prominence: float = 0.05,
    match_tolerance_nm: float = 10.0,
    smoothing_px: int = 5,
    min_snr: float | None = None,
) -> FloatArray:
    """Return wavelengths of peaks in ``spectrum`` that the reference does not have.

    Flags halide segregation: a mixed-halide film growing new iodide-rich peaks (e.g.
    at 650 and 700 nm in [P2]) beside its initial matrix peak. Each spectrum gets a
    straight baseline through its end points removed and a ``smoothing_px`` moving
    average; peaks are local maxima whose prominence exceeds ``min_relative_prominence``
    of that spectrum's maximum (scipy.signal.find_peaks). A peak is new if no reference
    peak lies within ``match_tolerance_nm``; a matrix peak that shifts by more than the
    tolerance is therefore reported too. With ``min_snr``, a peak must also stand out of
    the noise: its prominence at least ``min_snr`` times the noise sigma of the
    baseline-corrected, unsmoothed spectrum *at that peak* (:func:`local_noise_sigma`, a
    running estimate: calibrated noise grows where the sensitivity falls, at the detector's
    edges), and some pixel must exceed ``min_snr`` local sigmas, so the noise of a bleached
    film gives no peak, not even at the detector's edge.

    Parameters
    ----------
    wavelength_nm : array_like
        Strictly increasing wavelength grid (nm), 1-D.
    reference_spectrum, spectrum : array_like
        Spectra (any scale each) on ``wavelength_nm``, e.g. first and latest of a
        photostability series.
    min_relative_prominence : float, default 0.05
        Minimum prominence as a fraction of the spectrum's maximum (0 < p < 1).
    match_tolerance_nm : float, default 10.0
        A peak within this distance of a reference peak is not new (nm, > 0).
    smoothing_px : int, default 5
        Moving-average width (pixels) against noise peaks.
    min_snr : float, optional
        Minimum signal-to-noise ratio of a peak (prominence over the per-pixel noise
        sigma, > 0); None applies the relative prominence alone.

    Returns
    -------
    numpy.ndarray
        Wavelengths (nm, pixel resolution) of the new peaks, ascending; empty if none.
    """
    grid = as_wavelength_grid("wavelength_nm", wavelength_nm)
    reference = as_spectrum("reference_spectrum", reference_spectrum, grid, allow_2d=False)
    current = as_spectrum("spectrum", spectrum, grid, allow_2d=False)
    if not 0 < min_relative_prominence < 1:
        raise ValueError(
            f"min_relative_prominence must be between 0 and 1; got {min_relative_prominence!r}"
        )
    tolerance = as_positive_scalar("match_tolerance_nm", match_tolerance_nm, "nm")
    if isinstance(smoothing_px, bool) or not isinstance(smoothing_px, int | np.integer):
        raise ValueError(f"smoothing_px must be an integer >= 1; got {smoothing_px!r}")
    if smoothing_px < 1:
        raise ValueError(f"smoothing_px must be >= 1; got {smoothing_px}")
    if min_snr is not None:
        min_snr = as_positive_scalar("min_snr", min_snr, "noise sigma")
    options = (min_relative_prominence, smoothing_px, min_snr)
    reference_peaks = _find_peak_wavelengths(grid, reference, *options)
    current_peaks = _find_peak_wavelengths(grid, current, *options)
    if reference_peaks.size == 0:
        return current_peaks
    distance = np.abs(current_peaks[:, None] - reference_peaks[None, :]).min(axis=1)
    return current_peaks[distance > tolerance]
