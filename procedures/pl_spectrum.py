"""PL spectrum of a film under the CW laser at a set power or power density (``pl-spectrum``).

The laser is set to the wanted power at the sample (through the ND filter wheel when the
power lies below the laser's regulated range), emission is switched on only while the
power meter and the spectrometer take their readings, and the spectrum is dark-subtracted
and sensitivity-calibrated by :class:`procedures._spectrum.SpectrumAcquirer`. Several
repeats may be taken (each with the laser switched off in between).

Records: one row per spectrum (columns :attr:`PlSpectrumProcedure.COLUMNS`) and the
``spectra`` / ``spectra_raw`` / ``spectra_dark`` frame streams; see
docs/procedures/spectroscopy.md.
"""

from __future__ import annotations

import logging
import math
import time
from typing import ClassVar

import numpy as np
from perovlab_daq.procedures._laser import FixedExcitationProcedure
from pymeasure.experiment import FloatParameter, IntegerParameter

from perovlab_daq.analysis.windows import window_peak_metrics

log = logging.getLogger(__name__)


class PlSpectrumProcedure(FixedExcitationProcedure):
    """PL spectrum at one excitation power: peak, centre, FWHM and integrated PL."""

    SUMMARY_FIGURES = ("peak_wavelength_nm", "fwhm_nm", "power_density_w_cm2")

    NAME: ClassVar[str] = "pl-spectrum"
    TITLE: ClassVar[str] = "PL spectrum"
    COLUMNS: ClassVar[dict[str, str]] = {
        "time": "s",
        "repeat": "",
        "laser_wavelength": "nm",
        "laser_power_setpoint": "W",
        "filter_position": "",
        "excitation_power": "W",
        "power_density": "W/cm^2",
        "integration_time": "s",
        "averages": "",
        "saturated": "",
        "peak_wavelength": "nm",
        "centre_wavelength": "nm",
        "fwhm": "nm",
        "integrated_pl": "a.u.",
    }

    repeats = IntegerParameter("Spectra taken", minimum=1, maximum=1000, default=1)
    interval = FloatParameter(
        "Laser-off time between repeats", units="s", minimum=0.0, maximum=3600.0, default=0.0
    )

    def startup(self) -> None:
        """Laser safe and in CW power mode, sample on the PL stage, spectrometer ready."""
        self.prepare_fixed_excitation()
        self.started = time.monotonic()

    def execute(self) -> None:
        """Take the spectra; emission is on only while each one is measured."""
        try:
            for repeat in range(int(self.repeats)):
                if self.should_stop():
                    log.warning("pl-spectrum aborted before repeat %d", repeat)
                    return
                self.measure(repeat)
                self.emit_progress(100.0 * (repeat + 1) / self.repeats)
                if repeat + 1 < self.repeats and not self.sleep(self.interval):
                    return
        finally:
            self.laser_off()

    def measure(self, repeat: int) -> None:
        """Take and record one spectrum at the target power."""
        with self.emission():
            step, measured = self.start_excitation()
            frame = self.acquire_spectrum()
            after = self.read_power_w()
        power = float(np.nanmean([measured, after])) if math.isfinite(measured) else step.target_w
        density = power / self.area_cm2
        low, high = self.pl_window_nm(self.pl_window_low, self.pl_window_high)
        figures = window_peak_metrics(frame.corrected_wavelength_nm, frame.corrected, low, high)
        context = {
            "time_s": time.monotonic() - self.started,
            "repeat": float(repeat),
            "excitation_power_w": power,
            "power_density_w_cm2": density,
            "laser_power_setpoint_w": step.setpoint_w,
            "filter_position": float(step.filter_position),
        }
        self.acquirer.emit(self, frame, **context)
        self.emit_row(
            time=context["time_s"],
            repeat=repeat,
            laser_wavelength=self.laser_wavelength_nm,
            laser_power_setpoint=step.setpoint_w,
            filter_position=step.filter_position,
            excitation_power=power,
            power_density=density,
            integration_time=frame.integration_time_s,
            averages=frame.averages,
            saturated=float(frame.saturated),
            peak_wavelength=float(figures["peak_wavelength"][0]),
            centre_wavelength=float(figures["centre_wavelength"][0]),
            fwhm=float(figures["fwhm"][0]),
            integrated_pl=float(figures["integrated"][0]),
        )
