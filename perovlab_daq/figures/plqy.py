"""Key figures and report of a PLQY run (procedure ``plqy``): de Mello PLQY and absorptance.

Read from the run file only (:mod:`perovlab_daq.figures._run`); the numbers come from
:mod:`perovlab_daq.analysis`. ``key_figures`` and ``draw`` are what
:mod:`perovlab_daq.figures` dispatches to.

Uncertainty: a run holds ``repeats`` full A-B-C cycles (``repeat`` in the frames' context;
files without it hold one). Each cycle gives a PLQY with the same windows; the key figure
is their mean with the standard uncertainty s/sqrt(N) and the 95 % interval of Student's t
with N - 1 degrees of freedom (:func:`perovlab_daq.analysis.spectra.mean_with_t_interval`);
with one cycle the uncertainty is NaN (unknown), never zero.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from perovlab_daq.analysis import plqy_de_mello
from perovlab_daq.analysis.spectra import mean_with_t_interval
from perovlab_daq.analysis.windows import window_peak_metrics
from perovlab_daq.figures import _run
from perovlab_daq.figures._run import AnalysisInputError
from perovlab_daq.procedures._laser import LASER_GUARD_NM
from perovlab_daq.procedures.plqy import CONFIGURATIONS, EMISSION_HALF_WIDTH_FWHM

log = logging.getLogger(__name__)


def cycle_spectra(run: Any) -> tuple[np.ndarray, list[dict[str, np.ndarray]], float]:
    """Return (grid, one {A, B, C: spectrum} per cycle, laser nm).

    Spectra are normalised to the mean laser power of the run (each by the power the
    power meter read during it). Cycles missing a configuration are left out.
    """
    data = _run.columns(run, "configuration", "excitation_power", "laser_wavelength")
    frames = _run.frames(run)
    if "configuration" not in frames.context:
        raise AnalysisInputError("spectra frames lack the 'configuration' context")
    configs = frames.context["configuration"].to_numpy(dtype=float)
    repeats = (
        np.nan_to_num(frames.context["repeat"].to_numpy(dtype=float))
        if "repeat" in frames.context
        else np.zeros(len(frames))
    )
    powers = (
        frames.context["excitation_power_w"].to_numpy(dtype=float)
        if "excitation_power_w" in frames.context
        else np.ones(len(frames))
    )
    mean_power = float(np.nanmean(powers))
    cycles: list[dict[str, np.ndarray]] = []
    for repeat in np.unique(repeats):
        spectra: dict[str, np.ndarray] = {}
        for index, name in enumerate(CONFIGURATIONS):
            rows = np.flatnonzero((configs == index) & (repeats == repeat))
            if rows.size:
                row = rows[-1]
                scale = mean_power / powers[row] if powers[row] > 0 else 1.0
                spectra[name] = frames.intensity[row] * scale
        if len(spectra) == len(CONFIGURATIONS):
            cycles.append(spectra)
    if not cycles:
        missing = [n for i, n in enumerate(CONFIGURATIONS) if not (configs == i).any()]
        raise AnalysisInputError(
            f"missing the configuration {', '.join(missing) or 'A, B, C'} spectrum "
            "(no complete A-B-C cycle)"
        )
    return frames.wavelength, cycles, float(data["laser_wavelength"].iloc[0])


def configuration_spectra(run: Any) -> tuple[np.ndarray, dict[str, np.ndarray], float]:
    """Return (grid, {A, B, C: spectrum averaged over the cycles}, laser nm)."""
    grid, cycles, laser_nm = cycle_spectra(run)
    mean = {name: np.mean([c[name] for c in cycles], axis=0) for name in CONFIGURATIONS}
    return grid, mean, laser_nm


def windows(
    run: Any, grid: np.ndarray, spectra: Mapping[str, np.ndarray], laser_nm: float
) -> tuple[tuple[float, float], tuple[float, float]]:
    """Return the laser and emission windows (nm) used for the de Mello integrals."""
    half = float(_run.parameter(run, "laser_half_width", 10.0))
    laser = (laser_nm - half, laser_nm + half)
    low = float(_run.parameter(run, "emission_window_low", 0.0) or 0.0)
    high = float(_run.parameter(run, "emission_window_high", 0.0) or 0.0)
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
    """Return PLQY and absorptance (percent) with their uncertainty, windows and excitation.

    ``plqy_pct`` is the mean over the A-B-C cycles; ``plqy_u_pct`` its standard
    uncertainty, ``plqy_ci95_low_pct``/``plqy_ci95_high_pct`` the 95 % Student-t
    interval with ``plqy_dof`` = cycles - 1 degrees of freedom (NaN with one cycle).
    """
    grid, cycles, laser_nm = cycle_spectra(run)
    mean = {name: np.mean([c[name] for c in cycles], axis=0) for name in CONFIGURATIONS}
    laser, emission = windows(run, grid, mean, laser_nm)
    results = np.array(
        [plqy_de_mello(grid, c["A"], c["B"], c["C"], laser, emission) for c in cycles]
    )
    plqy = mean_with_t_interval(100.0 * results[:, 0])
    absorptance = mean_with_t_interval(100.0 * results[:, 1])
    data = _run.columns(run, "power_density")
    figures = window_peak_metrics(grid, mean["C"], *emission)
    return {
        "plqy_pct": plqy.mean,
        "plqy_u_pct": plqy.standard_uncertainty,
        "plqy_ci95_low_pct": plqy.low,
        "plqy_ci95_high_pct": plqy.high,
        "plqy_dof": float(plqy.degrees_of_freedom),
        "plqy_cycles": float(len(cycles)),
        "absorptance_pct": absorptance.mean,
        "absorptance_u_pct": absorptance.standard_uncertainty,
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
    # Two lines: one is wider than the plot (its start fell off the A4 page).
    axes[0].set_title(
        f"PLQY {figures['plqy_pct']:.1f} % (95 % CI {figures['plqy_ci95_low_pct']:.1f}-"
        f"{figures['plqy_ci95_high_pct']:.1f}, {figures['plqy_cycles']:.0f} cycles)\n"
        f"absorptance {figures['absorptance_pct']:.1f} % "
        f"at {figures['power_density_w_cm2']:.3g} W/cm$^2$",
        fontsize="small",
    )
