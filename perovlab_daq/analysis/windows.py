"""Peak figures and band integrals of spectra inside a wavelength window, with their noise.

What the spectroscopy procedures compute live for every spectrum (their ``centre``,
``fwhm``, ``integrated`` and ``signal_to_noise`` columns) and what
:mod:`perovlab_daq.figures` recomputes from a file: one implementation for both. Pure
numpy on arrays; :func:`window_peak_metrics` calls
:func:`perovlab_daq.analysis.spectra.peak_metrics` on the window.
"""

from __future__ import annotations

import logging
import math

import numpy as np

from perovlab_daq.analysis.spectra import noise_sigma, peak_metrics

log = logging.getLogger(__name__)


def window_peak_metrics(
    wavelength_nm: np.ndarray, spectra: np.ndarray, low_nm: float, high_nm: float
) -> dict[str, np.ndarray]:
    """Return peak figures of spectra restricted to a wavelength window.

    Uses :func:`perovlab_daq.analysis.peak_metrics` (baseline from the window's edges, so
    choose a window that ends in background on both sides, clear of the laser line).

    Parameters
    ----------
    wavelength_nm
        Grid of the spectra (nm).
    spectra
        One spectrum (1-D) or one per row (2-D).
    low_nm, high_nm
        The window (nm).

    Returns
    -------
    dict
        ``peak_wavelength``, ``centre_wavelength``, ``fwhm`` (nm), ``height`` and
        ``integrated`` (spectrum units x nm), one value per spectrum.
    """
    grid = np.asarray(wavelength_nm, dtype=float)
    rows = np.atleast_2d(np.asarray(spectra, dtype=float))
    keep = (grid >= low_nm) & (grid <= high_nm)
    if np.count_nonzero(keep) < 20:
        raise ValueError(
            f"window {low_nm:g}-{high_nm:g} nm holds {np.count_nonzero(keep)} pixels; need 20"
        )
    metrics = peak_metrics(grid[keep], rows[:, keep])
    noise = noise_sigma(rows[:, keep])
    with np.errstate(divide="ignore", invalid="ignore"):
        snr = np.where(noise > 0, metrics.height / noise, np.inf)
    return {
        "peak_wavelength": metrics.peak_nm,
        "centre_wavelength": metrics.centre_nm,
        "fwhm": metrics.fwhm_nm,
        "height": metrics.height,
        "integrated": metrics.integrated_intensity,
        "noise": noise,
        "snr": snr,
    }


def band_integrals(
    wavelength_nm: np.ndarray, spectra: np.ndarray, low_nm: float, high_nm: float
) -> tuple[np.ndarray, np.ndarray]:
    """Return (trapezoidal integral over a band, its signal-to-noise) for each spectrum."""
    grid = np.asarray(wavelength_nm, dtype=float)
    rows = np.atleast_2d(np.asarray(spectra, dtype=float))
    keep = (grid >= low_nm) & (grid <= high_nm)
    if np.count_nonzero(keep) < 3:
        raise ValueError(f"band {low_nm:g}-{high_nm:g} nm holds fewer than 3 pixels")
    integral = np.trapezoid(rows[:, keep], grid[keep], axis=1)
    pitch = float(np.mean(np.diff(grid[keep])))
    noise = noise_sigma(rows) * pitch * math.sqrt(np.count_nonzero(keep))
    with np.errstate(divide="ignore", invalid="ignore"):
        snr = np.where(noise > 0, integral / noise, np.inf)
    return integral, snr


def spectrum_snr(spectrum: np.ndarray) -> float:
    """Return a spectrum's peak over its per-pixel noise sigma (:func:`noise_sigma`).

    Infinite for a noise-free positive spectrum, NaN with fewer than 3 pixels or no
    positive value.
    """
    values = np.asarray(spectrum, dtype=float)
    values = values[np.isfinite(values)]
    if values.size < 3:
        return math.nan
    noise = float(noise_sigma(values)[0])
    top = float(np.max(values))
    if noise > 0:
        return top / noise
    return math.inf if top > 0 else math.nan
