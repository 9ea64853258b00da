"""Excitation-power (fluence) series of PL spectra and the PL power law (``pl-fluence``).

The laser power at the sample is stepped on a logarithmic grid over the laser's regulated
range, extended downwards through the ND filter wheel when one is fitted (each filter's
transmission is measured first). At every step the power meter is read and a
dark-subtracted, calibrated spectrum is taken with emission on only for those readings.
The series goes up and, optionally, back down so that hysteresis (photo-brightening,
bleaching, segregation) shows as a difference between the two branches.

Excitation (REFERENCE §3): CW power density I = P / A_spot (W/cm^2); for a pulsed source
with repetition rate f, pulse energy E_p = P / f and fluence per pulse F = E_p / A_spot
(J/cm^2, flat-top spot convention; the Gaussian peak fluence would be 2x for A = pi w^2 / 2).
The analysis (:mod:`perovlab_daq.figures.pl_fluence`) fits integrated PL = C x^k on the
upward branch (x = power density or fluence) with
:func:`perovlab_daq.analysis.power_law_slope`.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
from perovlab_daq.procedures._laser import (
    CLAMP_TOLERANCE,
    LaserSpectroscopyProcedure,
    log_spaced,
)
from perovlab_daq.procedures.base import ParameterError
from pymeasure.experiment import BooleanParameter, FloatParameter, IntegerParameter, ListParameter

from perovlab_daq.analysis.windows import window_peak_metrics

log = logging.getLogger(__name__)

EXCITATION_KINDS = ("cw", "pulsed")
#: Steps whose integrated PL has a lower signal-to-noise ratio are left out of the fit.
FIT_MIN_SNR = 20.0
#: The PL band integrated for the power law: the brightest spectrum's centre +- this many FWHM.
BAND_HALF_WIDTH_FWHM = 2.0


class PlFluenceProcedure(LaserSpectroscopyProcedure):
    """PL spectra against excitation power, up then optionally down; power-law exponent."""

    SUMMARY_FIGURES = ("power_law_exponent", "power_law_exponent_stderr", "centre_shift_nm")

    NAME: ClassVar[str] = "pl-fluence"
    TITLE: ClassVar[str] = "PL excitation-power (fluence) series"
    REQUIRED_ROLES: ClassVar[tuple[str, ...]] = ("laser", "spectrometer", "power_meter")
    OPTIONAL_ROLES: ClassVar[tuple[str, ...]] = ("filter_wheel", "sample_stage")
    COLUMNS: ClassVar[dict[str, str]] = {
        "time": "s",
        "step": "",
        "direction": "",
        "laser_wavelength": "nm",
        "laser_power_setpoint": "W",
        "filter_position": "",
        "excitation_power": "W",
        "power_density": "W/cm^2",
        "pulse_energy": "J",
        "fluence": "J/cm^2",
        "integration_time": "s",
        "saturated": "",
        "peak_wavelength": "nm",
        "centre_wavelength": "nm",
        "fwhm": "nm",
        "integrated_pl": "a.u.",
        "signal_to_noise": "",
    }

    power_min = FloatParameter(
        "Lowest power at the sample (0 = lowest reachable)",
        units="W",
        minimum=0.0,
        maximum=1.0,
        default=0.0,
    )
    power_max = FloatParameter(
        "Highest power at the sample (0 = laser maximum)",
        units="W",
        minimum=0.0,
        maximum=1.0,
        default=0.0,
    )
    steps = IntegerParameter("Power steps (log-spaced)", minimum=2, maximum=200, default=12)
    sweep_down = BooleanParameter("Sweep back down (hysteresis)", default=False)
    excitation = ListParameter("Excitation", choices=EXCITATION_KINDS, default="cw")
    repetition_rate = FloatParameter(
        "Repetition rate (pulsed)", units="Hz", minimum=0.0, maximum=1e10, default=0.0
    )
    dwell = FloatParameter(
        "Laser-off wait between steps", units="s", minimum=0.0, maximum=600.0, default=0.0
    )
    pl_window_low = FloatParameter(
        "PL window start (0 = laser + 20 nm)", units="nm", minimum=0.0, maximum=2000.0, default=0.0
    )
    pl_window_high = FloatParameter(
        "PL window end (0 = detector end)", units="nm", minimum=0.0, maximum=2000.0, default=0.0
    )

    @classmethod
    def check_consistency(cls, values: Mapping[str, Any]) -> None:
        """Refuse an inverted power range and a pulsed series without a repetition rate."""
        super().check_consistency(values)
        low = float(values.get("power_min", 0) or 0)
        high = float(values.get("power_max", 0) or 0)
        if low > 0 and high > 0 and high <= low:
            raise ParameterError("power_max", high, f"more than power_min = {low:g} W")
        if values.get("excitation") == "pulsed" and not float(
            values.get("repetition_rate", 0) or 0
        ):
            raise ParameterError(
                "repetition_rate", values.get("repetition_rate"), "> 0 Hz for pulsed"
            )

    def startup(self) -> None:
        """Laser ready, filter transmissions measured, power grid planned."""
        self.prepare_laser()
        self.place_sample("STAGE")
        self.make_acquirer()
        self.area_cm2 = self.laser_spot_area()
        assert self._planner is not None
        reach_low, reach_high = self._planner.reachable_w
        low = self.power_min if self.power_min > 0 else reach_low
        high = self.power_max if self.power_max > 0 else reach_high
        margin = 1.0 + CLAMP_TOLERANCE
        if low < reach_low / margin or high > reach_high * margin:
            raise RuntimeError(
                f"power range {low:.4g} to {high:.4g} W is outside what this bench reaches at "
                f"the sample ({reach_low:.4g} to {reach_high:.4g} W"
                f"{'' if self.has_role('filter_wheel') else '; no filter wheel fitted'})"
            )
        if high <= low:
            raise RuntimeError(f"power range {low:.4g} to {high:.4g} W is empty")
        upward = log_spaced(low, high, int(self.steps))
        self.plan = [(float(p), 1) for p in upward]
        if self.sweep_down:
            self.plan += [(float(p), -1) for p in upward[-2::-1]]
        self.emit_event(
            "info",
            "plan",
            f"{len(self.plan)} steps from {low:.4g} to {high:.4g} W "
            f"({'up and down' if self.sweep_down else 'up'}), spot {self.area_cm2:.4g} cm^2",
        )
        self.started = time.monotonic()

    def execute(self) -> None:
        """Step the power; emission on only while each step is measured."""
        try:
            for index, (target_w, direction) in enumerate(self.plan):
                if self.should_stop():
                    log.warning("pl-fluence aborted at step %d", index)
                    return
                self.measure(index, target_w, direction)
                self.emit_progress(100.0 * (index + 1) / len(self.plan))
                if self.dwell > 0 and not self.sleep(self.dwell):
                    return
        finally:
            self.laser_off()

    def measure(self, index: int, target_w: float, direction: int) -> None:
        """Take and record the spectrum of one power step."""
        step = self.set_power_at_sample(target_w)
        with self.emission():
            measured = self.read_power_w()
            corrected = self.correct_power(step, measured)
            if corrected is not step:
                step = corrected
                measured = self.read_power_w()
            frame = self.acquire_spectrum()
            after = self.read_power_w()
        power = float(np.mean([measured, after]))
        density = power / self.area_cm2
        pulsed = self.excitation == "pulsed"
        pulse_energy = power / self.repetition_rate if pulsed else math.nan
        fluence = pulse_energy / self.area_cm2 if pulsed else math.nan
        low, high = self.pl_window_nm(self.pl_window_low, self.pl_window_high)
        figures = window_peak_metrics(frame.corrected_wavelength_nm, frame.corrected, low, high)
        elapsed = time.monotonic() - self.started
        self.acquirer.emit(
            self,
            frame,
            time_s=elapsed,
            step=float(index),
            direction=float(direction),
            excitation_power_w=power,
            power_density_w_cm2=density,
            fluence_j_cm2=fluence,
            filter_position=float(step.filter_position),
            signal_to_noise=float(figures["snr"][0]),
        )
        self.emit_row(
            time=elapsed,
            step=index,
            direction=direction,
            laser_wavelength=self.laser_wavelength_nm,
            laser_power_setpoint=step.setpoint_w,
            filter_position=step.filter_position,
            excitation_power=power,
            power_density=density,
            pulse_energy=pulse_energy,
            fluence=fluence,
            integration_time=frame.integration_time_s,
            saturated=float(frame.saturated),
            peak_wavelength=float(figures["peak_wavelength"][0]),
            centre_wavelength=float(figures["centre_wavelength"][0]),
            fwhm=float(figures["fwhm"][0]),
            integrated_pl=float(figures["integrated"][0]),
            signal_to_noise=float(figures["snr"][0]),
        )
