"""Key figures and report of a ``pl-fluence`` run: power-law exponent and hysteresis.

Read from the run file only (:mod:`perovlab_daq.figures._run`); the numbers come from
:mod:`perovlab_daq.analysis`. ``key_figures`` and ``draw`` are what
:mod:`perovlab_daq.figures` dispatches to.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np
import pandas as pd

from perovlab_daq.analysis import power_law_slope
from perovlab_daq.analysis.windows import band_integrals, window_peak_metrics
from perovlab_daq.figures import _run
from perovlab_daq.figures._run import AnalysisInputError
from perovlab_daq.procedures.pl_fluence import BAND_HALF_WIDTH_FWHM, FIT_MIN_SNR

log = logging.getLogger(__name__)


def excitation_axis(data: Any) -> tuple[str, str]:
    """Return (column, unit) of the excitation: fluence when recorded, else power density."""
    if "fluence" in data and np.isfinite(data["fluence"]).any():
        return "fluence", "J/cm^2"
    return "power_density", "W/cm^2"


def power_series(run: Any) -> tuple[pd.DataFrame, str, str, str]:
    """Return the series (excitation, integrated PL, SNR, direction, centre) and its axis.

    With the ``spectra`` frames stored, the PL is re-integrated over the band of the
    brightest spectrum (centre +- 2 FWHM), which keeps the noise of the rest of the
    detector out of the weak steps; otherwise the ``integrated_pl`` column is used.

    Returns
    -------
    tuple
        (series, excitation column, its unit, description of the integration band).
    """
    data = _run.columns(run, "integrated_pl", "power_density", "direction", "step")
    column, unit = excitation_axis(data)
    series = pd.DataFrame(
        {
            "excitation": data[column].to_numpy(dtype=float),
            "integrated": data["integrated_pl"].to_numpy(dtype=float),
            "snr": data["signal_to_noise"].to_numpy(dtype=float)
            if "signal_to_noise" in data
            else np.full(len(data), np.inf),
            "direction": data["direction"].to_numpy(dtype=float),
            "centre": data["centre_wavelength"].to_numpy(dtype=float)
            if "centre_wavelength" in data
            else np.full(len(data), np.nan),
        }
    )
    band = "integrated_pl column"
    try:
        frames = run.frames("spectra")
    except KeyError:
        return series, column, unit, band
    steps = frames.context.get("step")
    if steps is None or len(frames) != len(data):
        return series, column, unit, band
    order = {int(step): i for i, step in enumerate(steps.to_numpy())}
    rows = [order.get(int(step)) for step in data["step"].to_numpy()]
    if any(r is None for r in rows):
        return series, column, unit, band
    spectra = frames.intensity[rows]
    laser_nm = _run.laser_wavelength_nm(data)
    low, high = _run.pl_window(run, laser_nm, frames.wavelength)
    brightest = int(np.nanargmax(series["integrated"].to_numpy()))
    figures = window_peak_metrics(frames.wavelength, spectra[brightest], low, high)
    centre, fwhm = float(figures["centre_wavelength"][0]), float(figures["fwhm"][0])
    if math.isfinite(centre) and math.isfinite(fwhm):
        low = max(low, centre - BAND_HALF_WIDTH_FWHM * fwhm)
        high = min(high, centre + BAND_HALF_WIDTH_FWHM * fwhm)
    integral, snr = band_integrals(frames.wavelength, spectra, low, high)
    series["integrated"] = integral
    series["snr"] = snr
    return series, column, unit, f"{low:.1f}-{high:.1f} nm"


def key_figures(run: Any) -> dict[str, float | str]:
    """Return the power-law exponent of the upward branch, its range and the hysteresis.

    The fit keeps the upward steps whose integrated PL has a signal-to-noise ratio of
    at least :data:`FIT_MIN_SNR` (all positive steps if fewer than 3 qualify).
    """
    series, column, unit, band = power_series(run)
    positive = (series["integrated"] > 0) & (series["excitation"] > 0)
    up_all = series[(series["direction"] >= 0) & positive]
    up = up_all[up_all["snr"] >= FIT_MIN_SNR]
    if len(up) < 3:
        up = up_all
    if len(up) < 2:
        raise AnalysisInputError(
            "the upward branch holds fewer than 2 steps with positive integrated PL"
        )
    up = up.groupby("excitation", as_index=False).mean(numeric_only=True)
    fit = power_law_slope(up["excitation"].to_numpy(), up["integrated"].to_numpy())
    unit_key = unit.replace("/", "_").replace("^2", "2").lower()
    result: dict[str, float | str] = {
        "power_law_exponent": fit.k,
        "power_law_exponent_stderr": fit.k_stderr,
        "power_law_points": float(fit.n_points_fit),
        f"{column}_fit_min_{unit_key}": float(up["excitation"].min()),
        f"{column}_fit_max_{unit_key}": float(up["excitation"].max()),
        "local_slope_min": float(np.min(fit.local_slope)),
        "local_slope_max": float(np.max(fit.local_slope)),
        "excitation_axis": column,
        "integration_band": band,
    }
    centres = up["centre"].to_numpy(dtype=float)
    finite = centres[np.isfinite(centres)]
    if finite.size >= 2:
        result["centre_shift_nm"] = float(finite[-1] - finite[0])
    down = series[(series["direction"] < 0) & positive & (series["snr"] >= FIT_MIN_SNR)]
    if len(down) >= 1:
        # PL of the downward branch against the upward branch at the same excitation.
        expected = np.exp(
            np.interp(
                np.log(down["excitation"].to_numpy()),
                np.log(up["excitation"].to_numpy()),
                np.log(up["integrated"].to_numpy()),
            )
        )
        ratio = down["integrated"].to_numpy() / expected
        result["hysteresis_mean_pct"] = float(100.0 * (np.mean(ratio) - 1.0))
        result["hysteresis_max_pct"] = float(100.0 * np.max(np.abs(ratio - 1.0)))
    return result


def draw(run: Any, figure: Any) -> None:
    """Draw integrated PL against excitation (log-log, fit), local slope and the spectra."""
    figures = key_figures(run)
    series, column, unit, band = power_series(run)
    axes = figure.subplots(1, 3)
    positive = series[(series["integrated"] > 0) & (series["excitation"] > 0)]
    for direction, label, marker in ((1, "up", "o"), (-1, "down", "s")):
        part = positive[np.sign(positive["direction"]) == direction]
        if len(part):
            axes[0].loglog(part["excitation"], part["integrated"], marker, label=label)
    up = positive[positive["direction"] >= 0].groupby("excitation", as_index=False).mean()
    k = float(figures["power_law_exponent"])
    anchor = up.iloc[len(up) // 2]
    x = np.geomspace(up["excitation"].min(), up["excitation"].max(), 50)
    axes[0].loglog(
        x, anchor["integrated"] * (x / anchor["excitation"]) ** k, "k--", label=f"k = {k:.3f}"
    )
    axes[0].set_xlabel(f"{column.replace('_', ' ')} ({unit})")
    axes[0].set_ylabel(f"integrated PL, {band} (a.u.)")
    axes[0].legend(loc="best")
    if len(up) >= 2:
        fit = power_law_slope(up["excitation"].to_numpy(), up["integrated"].to_numpy())
        axes[1].semilogx(up["excitation"], fit.local_slope, "o-")
    axes[1].axhline(1.0, color="0.6", linestyle=":")
    axes[1].set_xlabel(f"{column.replace('_', ' ')} ({unit})")
    axes[1].set_ylabel("local slope d ln PL / d ln P (dimensionless)")
    try:
        frames = run.frames("spectra")
    except KeyError:
        axes[2].set_axis_off()
        return
    data = _run.columns(run, "laser_wavelength")
    low, high = _run.pl_window(run, float(data["laser_wavelength"].iloc[0]), frames.wavelength)
    keep = (frames.wavelength >= low) & (frames.wavelength <= high)
    snr = frames.context.get("signal_to_noise")
    for i, row in enumerate(frames.intensity):
        top = np.max(row[keep])
        # Normalising a noise-dominated spectrum to its maximum shows only noise.
        if top > 0 and (snr is None or float(snr.iloc[i]) >= FIT_MIN_SNR):
            axes[2].plot(frames.wavelength[keep], row[keep] / top, lw=0.8)
    axes[2].set_xlabel("wavelength (nm)")
    axes[2].set_ylabel(f"normalised PL (steps with SNR >= {FIT_MIN_SNR:g})")
