"""Key figures and report of a PLQY run (procedure ``plqy``): de Mello PLQY and absorptance.

Read from the run file only (:mod:`perovlab_daq.figures._run`); the numbers come from
:mod:`perovlab_daq.analysis`. ``key_figures`` and ``draw`` are what
:mod:`perovlab_daq.figures` dispatches to.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from perovlab_daq.analysis import plqy_de_mello
from perovlab_daq.analysis.windows import window_peak_metrics
from perovlab_daq.figures import _run
from perovlab_daq.figures._run import AnalysisInputError
from procedures._laser import LASER_GUARD_NM
from procedures.plqy import CONFIGURATIONS, EMISSION_HALF_WIDTH_FWHM

log = logging.getLogger(__name__)


def configuration_spectra(run: Any) -> tuple[np.ndarray, dict[str, np.ndarray], float]:
    """Return (grid, {A, B, C: spectrum normalised to the mean laser power}, laser nm)."""
    data = _run.columns(run, "configuration", "excitation_power", "laser_wavelength")
    frames = _run.frames(run)
    if "configuration" not in frames.context:
        raise AnalysisInputError("spectra frames lack the 'configuration' context")
    configs = frames.context["configuration"].to_numpy(dtype=float)
    powers = (
        frames.context["excitation_power_w"].to_numpy(dtype=float)
        if "excitation_power_w" in frames.context
        else np.ones(len(frames))
    )
    mean_power = float(np.nanmean(powers))
    spectra: dict[str, np.ndarray] = {}
    for index, name in enumerate(CONFIGURATIONS):
        rows = np.flatnonzero(configs == index)
        if rows.size == 0:
            raise AnalysisInputError(f"missing the configuration {name} spectrum")
        row = rows[-1]
        scale = mean_power / powers[row] if powers[row] > 0 else 1.0
        spectra[name] = frames.intensity[row] * scale
    return frames.wavelength, spectra, float(data["laser_wavelength"].iloc[0])


def windows(
    run: Any, grid: np.ndarray, spectra: Mapping[str, np.ndarray], laser_nm: float
) -> tuple[tuple[float, float], tuple[float, float]]:
    """Return the laser and emission windows (nm) used for the de Mello integrals."""
    half = float(_run.parameter(run, "laser_half_width_nm", 10.0))
    laser = (laser_nm - half, laser_nm + half)
    low = float(_run.parameter(run, "emission_window_low_nm", 0.0) or 0.0)
    high = float(_run.parameter(run, "emission_window_high_nm", 0.0) or 0.0)
    floor = laser[1] + LASER_GUARD_NM / 2
    if low <= 0 or high <= 0:
        figures = window_peak_metrics(grid, spectra["C"], laser_nm + LASER_GUARD_NM, grid[-1])
        centre, fwhm = float(figures["centre_wavelength"][0]), float(figures["fwhm"][0])
        if not (math.isfinite(centre) and math.isfinite(fwhm)):
            centre, fwhm = (laser_nm + LASER_GUARD_NM + grid[-1]) / 2, grid[-1]
        low = low if low > 0 else centre - EMISSION_HALF_WIDTH_FWHM * fwhm
        high = high if high > 0 else centre + EMISSION_HALF_WIDTH_FWHM * fwhm
    emission = (max(low, floor), min(high, float(grid[-1])))
    return laser, emission


def key_figures(run: Any) -> dict[str, float | str]:
    """Return PLQY and absorptance (percent) with the windows and excitation used."""
    grid, spectra, laser_nm = configuration_spectra(run)
    laser, emission = windows(run, grid, spectra, laser_nm)
    plqy, absorptance = plqy_de_mello(
        grid, spectra["A"], spectra["B"], spectra["C"], laser, emission
    )
    data = _run.columns(run, "power_density")
    figures = window_peak_metrics(grid, spectra["C"], *emission)
    return {
        "plqy_pct": 100.0 * plqy,
        "absorptance_pct": 100.0 * absorptance,
        "power_density_w_cm2": float(np.nanmean(data["power_density"])),
        "emission_peak_nm": float(figures["peak_wavelength"][0]),
        "laser_window": f"{laser[0]:.1f}-{laser[1]:.1f} nm",
        "emission_window": f"{emission[0]:.1f}-{emission[1]:.1f} nm",
    }


def draw(run: Any, figure: Any) -> None:
    """Draw the A, B and C spectra (laser and emission regions) with the windows."""
    figures = key_figures(run)
    grid, spectra, laser_nm = configuration_spectra(run)
    laser, emission = windows(run, grid, spectra, laser_nm)
    axes = figure.subplots(1, 2)
    for ax, (low, high), what in (
        (axes[0], laser, "laser window"),
        (axes[1], emission, "emission window"),
    ):
        # A margin either side of the laser window; none below the emission window,
        # whose lower side is the laser line that would swamp the scale.
        pad = 0.3 * (high - low) if what == "laser window" else 0.0
        keep = (grid >= low - pad) & (grid <= high + pad)
        top = 0.0
        for name in CONFIGURATIONS:
            ax.plot(grid[keep], spectra[name][keep], label=name)
            top = max(top, float(np.max(spectra[name][keep])))
        ax.axvspan(low, high, color="0.85", zorder=0)
        ax.set_ylim(-0.05 * top, 1.1 * top)
        ax.set_xlabel(f"wavelength (nm); shaded: {what}")
        ax.set_ylabel("spectral power (W/nm)")
        ax.legend(loc="best")
    axes[0].set_title(
        f"PLQY {figures['plqy_pct']:.1f} %, absorptance {figures['absorptance_pct']:.1f} % "
        f"at {figures['power_density_w_cm2']:.3g} W/cm$^2$"
    )
