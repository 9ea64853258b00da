"""Key figures and report of a ``pl-spectrum`` run: peak, centre, FWHM, integrated PL.

Read from the run file only (:mod:`perovlab_daq.figures._run`); the numbers come from
:mod:`perovlab_daq.analysis`. ``key_figures`` and ``draw`` are what
:mod:`perovlab_daq.figures` dispatches to.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from perovlab_daq.analysis.windows import window_peak_metrics
from perovlab_daq.figures import _run

log = logging.getLogger(__name__)


def key_figures(run: Any) -> dict[str, float | str]:
    """Return peak, centre, FWHM and integrated PL of the mean processed spectrum."""
    data = _run.columns(run, "power_density")
    frames = _run.frames(run)
    laser_nm = _run.laser_wavelength_nm(data)
    low, high = _run.pl_window(run, laser_nm, frames.wavelength)
    mean_spectrum = np.mean(frames.intensity, axis=0)
    figures = window_peak_metrics(frames.wavelength, mean_spectrum, low, high)
    result: dict[str, float | str] = {
        "peak_wavelength_nm": float(figures["peak_wavelength"][0]),
        "centre_wavelength_nm": float(figures["centre_wavelength"][0]),
        "fwhm_nm": float(figures["fwhm"][0]),
        "integrated_pl_au": float(figures["integrated"][0]),
        "power_density_w_cm2": float(np.nanmean(data["power_density"])),
        "spectra_count": float(len(frames)),
        "pl_window": f"{low:.1f}-{high:.1f} nm",
    }
    if "saturated" in frames.context:
        result["saturated_spectra"] = float(np.nansum(frames.context["saturated"]))
    return result


def draw(run: Any, figure: Any) -> None:
    """Draw the processed spectrum (with peak and FWHM) and the raw counts with the dark."""
    figures = key_figures(run)
    frames = _run.frames(run)
    axes = figure.subplots(1, 2)
    spectrum = np.mean(frames.intensity, axis=0)
    axes[0].plot(frames.wavelength, spectrum, color="C3")
    peak = figures["peak_wavelength_nm"]
    axes[0].axvline(peak, color="0.5", linestyle="--")
    axes[0].set_title(
        f"PL: peak {peak:.1f} nm, FWHM {figures['fwhm_nm']:.1f} nm, "
        f"{figures['power_density_w_cm2']:.3g} W/cm$^2$"
    )
    axes[0].set_xlabel("wavelength (nm)")
    axes[0].set_ylabel(f"spectral power ({frames.units.get('intensity') or 'a.u.'})")
    draw_raw_and_dark(run, axes[1])


def draw_raw_and_dark(run: Any, axes: Any) -> None:
    """Plot the last raw frame and the dark frames (when the run stored them)."""
    try:
        raw = run.frames("spectra_raw")
        axes.plot(raw.wavelength, raw.intensity[-1], label="raw (last)", color="C0")
        saturation = raw.context.get("peak_counts")
        if saturation is not None and len(saturation):
            axes.set_title(f"raw counts, peak {float(saturation.iloc[-1]):.0f}")
    except KeyError:
        axes.text(0.5, 0.5, "no raw spectra stored", ha="center", transform=axes.transAxes)
    try:
        dark = run.frames("spectra_dark")
        axes.plot(dark.wavelength, dark.intensity[-1], label="dark (last)", color="0.4")
    except KeyError:
        pass
    axes.set_xlabel("wavelength (nm)")
    axes.set_ylabel("intensity (counts)")
    axes.legend(loc="best")
