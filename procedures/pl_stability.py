"""Photostability of a film: PL spectra at an interval under constant excitation (``pl-stability``).

The film is held at one power (or power density) for a set time; here the exposure is
the experiment, so emission stays on for the whole series (and is switched off on every
way out, and briefly for a dark frame when the integration time has to change). Every
spectrum gives the peak centre, FWHM and integrated PL against time, and is compared
with the first one by :func:`perovlab_daq.analysis.new_peaks`: a film that segregates
into iodide-rich domains grows new peaks (at about 650 and 700 nm for the mixed-halide
matrix of [P2]), which are flagged as a ``new-peaks`` event and counted in the
``new_peak_count`` column. A photostable film (QD-in-matrix, [P2]: no shift or shape
change over 10 min at ~600 W/cm^2) shows no shift and no new peak.

A peak counts as new only when it stands out of the spectrum's noise: prominence at least
``new_peak_min_snr`` (default 5) times the per-pixel noise sigma, as well as 5 % of the
spectrum's maximum; the noise of a bleached film therefore gives no new peak.

Duration and interval are in *device time* (:mod:`procedures._clock`): on the simulated
bench photobleaching and segregation run ``ageing_acceleration`` times faster than the wall
clock (bench file, ``ageing_acceleration_by_procedure``; the factor is in the run's
metadata), so the schedule follows the film's clock; on real hardware the factor is 1.
Rows and frames record both ``device_time`` and wall ``time``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
from perovlab_daq.procedures._clock import DeviceClock
from perovlab_daq.procedures._laser import POWER_MODES, FixedExcitationProcedure
from perovlab_daq.procedures._spectrum import (
    SpectrumFrame,
)
from perovlab_daq.procedures.base import ParameterError
from pymeasure.experiment import FloatParameter, ListParameter

from perovlab_daq.analysis.windows import window_peak_metrics

log = logging.getLogger(__name__)

#: A peak counts as new when its prominence is this fraction of the spectrum maximum...
NEW_PEAK_MIN_PROMINENCE = 0.05
#: ...and no peak of the first spectrum lies within this distance (nm)...
NEW_PEAK_TOLERANCE_NM = 10.0
#: ...and its prominence is at least this many noise sigmas (default of ``new_peak_min_snr``).
NEW_PEAK_MIN_SNR = 5.0


def find_new_peaks(
    wavelength_nm: np.ndarray,
    reference: np.ndarray,
    spectrum: np.ndarray,
    low: float,
    high: float,
    min_snr: float = NEW_PEAK_MIN_SNR,
) -> np.ndarray:
    """Return the wavelengths of peaks of ``spectrum`` absent from ``reference`` in a window.

    A peak must reach ``min_snr`` times the spectrum's per-pixel noise sigma
    (:func:`perovlab_daq.analysis.new_peaks`).
    """
    from perovlab_daq.analysis import new_peaks

    keep = (wavelength_nm >= low) & (wavelength_nm <= high)
    return new_peaks(
        wavelength_nm[keep],
        reference[keep],
        spectrum[keep],
        min_relative_prominence=NEW_PEAK_MIN_PROMINENCE,
        match_tolerance_nm=NEW_PEAK_TOLERANCE_NM,
        min_snr=min_snr,
    )


class PlStabilityProcedure(FixedExcitationProcedure):
    """PL spectra at an interval under constant excitation: shift, width, intensity, new peaks."""

    SUMMARY_FIGURES = ("centre_shift_nm", "final_relative_intensity", "new_peaks_nm")

    NAME: ClassVar[str] = "pl-stability"
    TITLE: ClassVar[str] = "PL photostability"
    COLUMNS: ClassVar[dict[str, str]] = {
        "time": "s",  # wall time since the exposure started
        "device_time": "s",  # time x ageing_acceleration: the film's clock
        "laser_wavelength": "nm",
        "laser_power_setpoint": "W",
        "filter_position": "",
        "excitation_power": "W",
        "power_density": "W/cm^2",
        "integration_time": "s",
        "saturated": "",
        "peak_wavelength": "nm",
        "centre_wavelength": "nm",
        "fwhm": "nm",
        "integrated_pl": "a.u.",
        "relative_intensity": "",
        "new_peak_count": "",
    }

    # [P2] held its films at about 600 W/cm^2 for more than 10 min.
    power_mode = ListParameter("Excitation set as", choices=POWER_MODES, default="power density")
    power_density = FloatParameter(
        "CW power density at the sample", units="W/cm^2", minimum=0.0, maximum=1e5, default=600.0
    )
    duration = FloatParameter(
        "Exposure time (device time)", units="s", minimum=1.0, maximum=30 * 86400.0, default=600.0
    )
    interval = FloatParameter(
        "Spectrum interval (device time)", units="s", minimum=0.0, maximum=86400.0, default=10.0
    )
    new_peak_min_snr = FloatParameter(
        "New peak threshold (prominence over noise sigma)",
        units="sigma",
        minimum=1.0,
        maximum=1000.0,
        default=NEW_PEAK_MIN_SNR,
    )

    @classmethod
    def check_consistency(cls, values: Mapping[str, Any]) -> None:
        """Refuse an interval longer than the exposure."""
        super().check_consistency(values)
        duration = float(values.get("duration", 600.0))
        interval = float(values.get("interval", 10.0))
        if interval > duration:
            raise ParameterError("interval", interval, f"at most duration = {duration:g} s")

    def startup(self) -> None:
        """Laser ready, sample on the PL stage, target power computed."""
        self.prepare_fixed_excitation()
        self.reference: np.ndarray | None = None
        self.reference_integral = math.nan
        self.flagged: set[int] = set()
        self.fixed_time_s = float(self.integration_time) or None

    def execute(self) -> None:
        """Expose the film for ``duration`` with spectra every ``interval`` (device time).

        A spectrum is due at ``k x interval`` and the last one at ``duration``; when a
        spectrum takes longer than the interval the next one is taken at once. The series
        ends with the first spectrum at or after ``duration`` of device time.
        """
        try:
            with self.emission():
                self.step, _measured = self.start_excitation()
                self.clock = DeviceClock.for_bench(self.bench)
                self.emit_event(
                    "info",
                    "clock",
                    f"schedule in device time: ageing_acceleration {self.clock.acceleration:g} "
                    f"device s per wall s; {self.duration:g} s exposure, spectra every "
                    f"{self.interval:g} s",
                )
                index = 0
                while True:
                    if self.should_stop():
                        log.warning("pl-stability aborted after %d spectra", index)
                        return
                    device_s = self.measure(index)
                    index += 1
                    self.emit_progress(min(100.0, 100.0 * device_s / self.duration))
                    if device_s >= self.duration:
                        break
                    due = min(index * self.interval, self.duration)
                    if not self.sleep(self.clock.wall_until(due)):
                        return
                self.emit_progress(100.0)
        finally:
            self.laser_off()

    def take_spectrum(self) -> SpectrumFrame:
        """Take a spectrum at the kept integration time; re-choose it only if it saturates."""
        frame = self.acquirer.acquire(self.fixed_time_s, int(self.averages))
        if self.integration_time <= 0:
            if frame.saturated:
                frame = self.acquirer.acquire(None, int(self.averages))
            self.fixed_time_s = frame.integration_time_s
        return frame

    def measure(self, index: int) -> float:
        """Take, analyse and record one spectrum of the series; return its device time (s)."""
        device_s, wall_s = self.clock.device_s(), self.clock.wall_s()
        before = self.read_power_w()
        frame = self.take_spectrum()
        after = self.read_power_w()
        power = float(np.mean([before, after])) if math.isfinite(before) else self.target_w
        density = power / self.area_cm2
        low, high = self.pl_window_nm(self.pl_window_low, self.pl_window_high)
        grid, spectrum = frame.corrected_wavelength_nm, frame.corrected
        figures = window_peak_metrics(grid, spectrum, low, high)
        integral = float(figures["integrated"][0])
        if self.reference is None:
            self.reference = spectrum.copy()
            self.reference_integral = integral
        peaks = find_new_peaks(
            grid, self.reference, spectrum, low, high, float(self.new_peak_min_snr)
        )
        fresh = {int(round(p)) for p in peaks} - self.flagged
        if fresh and not any(
            abs(f - g) <= NEW_PEAK_TOLERANCE_NM for f in fresh for g in self.flagged
        ):
            self.emit_event(
                "warning",
                "new-peaks",
                f"new PL peak(s) at {', '.join(f'{p:.0f}' for p in sorted(peaks))} nm "
                f"after {device_s:.1f} s of device time (halide segregation?)",
            )
            self.flagged |= fresh
        relative = integral / self.reference_integral if self.reference_integral else math.nan
        self.acquirer.emit(
            self,
            frame,
            time_s=wall_s,
            device_time_s=device_s,
            excitation_power_w=power,
            power_density_w_cm2=density,
            new_peak_count=float(len(peaks)),
        )
        self.emit_row(
            time=wall_s,
            device_time=device_s,
            laser_wavelength=self.laser_wavelength_nm,
            laser_power_setpoint=self.step.setpoint_w,
            filter_position=self.step.filter_position,
            excitation_power=power,
            power_density=density,
            integration_time=frame.integration_time_s,
            saturated=float(frame.saturated),
            peak_wavelength=float(figures["peak_wavelength"][0]),
            centre_wavelength=float(figures["centre_wavelength"][0]),
            fwhm=float(figures["fwhm"][0]),
            integrated_pl=integral,
            relative_intensity=relative,
            new_peak_count=float(len(peaks)),
        )
        return device_s
