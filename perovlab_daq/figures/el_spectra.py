"""Key figures and report of an ``el-spectra`` run: peak, centre and FWHM per level.

Read from the run file only (:mod:`perovlab_daq.figures._run`); the numbers come from
:mod:`perovlab_daq.analysis`. ``key_figures`` and ``draw`` are what
:mod:`perovlab_daq.figures` dispatches to.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from perovlab_daq.figures import _run
from perovlab_daq.figures._run import AnalysisInputError

log = logging.getLogger(__name__)


def key_figures(run: Any) -> dict[str, float | str]:
    """Return the peak, centre and FWHM at the first and last level and the shift."""
    data = _run.columns(run, "voltage", "centre_wavelength", "fwhm", "peak_wavelength")
    lit = data[np.isfinite(data["centre_wavelength"].to_numpy(dtype=float))]
    if "signal_to_noise" in lit:
        bright = lit[lit["signal_to_noise"] >= 10]
        if len(bright):
            lit = bright
    if len(lit) == 0:
        raise AnalysisInputError("no level gave a measurable EL peak")
    first, last = lit.iloc[0], lit.iloc[-1]
    brightest = lit.iloc[int(np.argmax(lit["integrated_el"].to_numpy()))]
    return {
        "levels_measured": float(len(data)),
        "levels_with_el": float(len(lit)),
        "first_level_voltage_v": float(first["voltage"]),
        "last_level_voltage_v": float(last["voltage"]),
        "first_peak_nm": float(first["peak_wavelength"]),
        "last_peak_nm": float(last["peak_wavelength"]),
        "first_centre_nm": float(first["centre_wavelength"]),
        "last_centre_nm": float(last["centre_wavelength"]),
        "centre_shift_nm": float(last["centre_wavelength"] - first["centre_wavelength"]),
        "max_centre_shift_nm": float(
            np.max(np.abs(lit["centre_wavelength"] - first["centre_wavelength"]))
        ),
        "brightest_centre_nm": float(brightest["centre_wavelength"]),
        "brightest_fwhm_nm": float(brightest["fwhm"]),
        "brightest_voltage_v": float(brightest["voltage"]),
    }


def draw(run: Any, figure: Any) -> None:
    """Draw the normalised EL spectra per level and centre/FWHM against voltage."""
    frames = _run.frames(run)
    data = _run.columns(run, "voltage", "centre_wavelength", "fwhm")
    axes = figure.subplots(1, 2)
    volts = frames.context.get("voltage_v")
    for i, row in enumerate(frames.intensity):
        top = np.max(row)
        if top > 0:
            label = f"{float(volts.iloc[i]):.2f} V" if volts is not None else str(i)
            axes[0].plot(frames.wavelength, row / top, lw=0.8, label=label)
    axes[0].set_xlabel("wavelength (nm)")
    axes[0].set_ylabel("EL (normalised to peak)")
    axes[0].legend(loc="best", fontsize="small")
    axes[1].plot(data["voltage"], data["centre_wavelength"], "o-", label="centre")
    axes[1].set_xlabel("voltage (V)")
    axes[1].set_ylabel("centre (nm)")
    twin = axes[1].twinx()
    twin.plot(data["voltage"], data["fwhm"], "s--", color="C1", label="FWHM")
    twin.set_ylabel("FWHM (nm)")
