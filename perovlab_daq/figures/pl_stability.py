"""Key figures and report of a ``pl-stability`` run: centre shift, FWHM, new peaks.

Durations are in device time (``device_time_s`` of the frames; the wall time of files
written before device time was recorded, whose acceleration was then 1 or unknown). New
peaks are those above the run's ``new_peak_min_snr`` (noise sigmas; files without it use
:data:`procedures.pl_stability.NEW_PEAK_MIN_SNR`), and the threshold is reported.

Read from the run file only (:mod:`perovlab_daq.figures._run`); the numbers come from
:mod:`perovlab_daq.analysis`. ``key_figures`` and ``draw`` are what
:mod:`perovlab_daq.figures` dispatches to.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np

from perovlab_daq.analysis.windows import window_peak_metrics
from perovlab_daq.figures import _run
from perovlab_daq.procedures.pl_stability import NEW_PEAK_MIN_SNR, find_new_peaks

log = logging.getLogger(__name__)


def _times(frames: Any) -> tuple[np.ndarray, str]:
    """Return each frame's time (s) and its clock (``device`` or ``wall``)."""
    for name, clock in (("device_time_s", "device"), ("time_s", "wall"), ("time", "wall")):
        if name in frames.context:
            return frames.context[name].to_numpy(dtype=float), clock
    return np.full(len(frames), np.nan), "unknown"


def min_snr(run: Any) -> float:
    """Return the run's new-peak threshold (noise sigmas)."""
    return float(_run.parameter(run, "new_peak_min_snr", NEW_PEAK_MIN_SNR))


def key_figures(run: Any) -> dict[str, float | str]:
    """Return the centre shift, FWHM change, final relative PL and the new peaks.

    The new peaks are those of the last spectrum absent from the first one, above the
    run's signal-to-noise threshold (``new_peak_min_snr``). ``duration_s`` and
    ``new_peaks_first_seen_s`` are device time (``time_clock`` says which clock).
    """
    data = _run.columns(run, "time", "power_density")
    frames = _run.frames(run)
    laser_nm = _run.laser_wavelength_nm(data)
    low, high = _run.pl_window(run, laser_nm, frames.wavelength)
    figures = window_peak_metrics(frames.wavelength, frames.intensity, low, high)
    centre, fwhm = figures["centre_wavelength"], figures["fwhm"]
    integral = figures["integrated"]
    threshold = min_snr(run)
    peaks = find_new_peaks(
        frames.wavelength, frames.intensity[0], frames.intensity[-1], low, high, threshold
    )
    times, clock = _times(frames)
    result: dict[str, float | str] = {
        "duration_s": float(times[-1] - times[0]),
        "time_clock": clock,
        "new_peak_min_snr": threshold,
        "spectra_count": float(len(frames)),
        "power_density_w_cm2": float(np.nanmean(data["power_density"])),
        "initial_centre_nm": float(centre[0]),
        "final_centre_nm": float(centre[-1]),
        "centre_shift_nm": float(centre[-1] - centre[0]),
        "max_centre_shift_nm": float(np.nanmax(np.abs(centre - centre[0]))),
        "initial_fwhm_nm": float(fwhm[0]),
        "fwhm_change_nm": float(fwhm[-1] - fwhm[0]),
        "final_relative_intensity": float(integral[-1] / integral[0]) if integral[0] else math.nan,
        "new_peak_count": float(len(peaks)),
        "new_peaks_nm": ", ".join(f"{p:.1f}" for p in peaks) if len(peaks) else "none",
    }
    first_new = np.flatnonzero(frames.context.get("new_peak_count", np.zeros(len(frames))) > 0)
    if first_new.size:
        result["new_peaks_first_seen_s"] = float(times[first_new[0]] - times[0])
    return result


def draw(run: Any, figure: Any) -> None:
    """Draw spectra over time, centre and FWHM against time, and relative PL."""
    figures = key_figures(run)
    frames = _run.frames(run)
    data = _run.columns(run, "time")
    clock = "device_time" if "device_time" in data else "time"
    label = f"{clock.replace('_', ' ')} (s)"
    laser_nm = _run.laser_wavelength_nm(data)
    low, high = _run.pl_window(run, laser_nm, frames.wavelength)
    keep = (frames.wavelength >= low) & (frames.wavelength <= high)
    axes = figure.subplots(2, 2)
    colours = np.linspace(0.0, 1.0, max(len(frames), 2))
    for colour, row in zip(colours, frames.intensity, strict=False):
        axes[0, 0].plot(frames.wavelength[keep], row[keep], color=(colour, 0.2, 1 - colour))
    axes[0, 0].set_title(
        # Two lines: one is wider than the plot (its start fell off the A4 page).
        f"spectra (blue first, red last)\nnew peaks (>= {figures['new_peak_min_snr']:g} sigma): "
        f"{figures['new_peaks_nm']}"
    )
    axes[0, 0].set_xlabel("wavelength (nm)")
    axes[0, 0].set_ylabel(f"spectral power ({frames.units.get('intensity') or 'a.u.'})")
    for axis, column, ylabel in (
        (axes[0, 1], "centre_wavelength", "centre (nm)"),
        (axes[1, 0], "fwhm", "FWHM (nm)"),
        (axes[1, 1], "relative_intensity", "integrated PL / first (fraction)"),
    ):
        axis.plot(data[clock], data[column], "o-")
        axis.set_ylabel(ylabel)
        axis.set_xlabel(label)
