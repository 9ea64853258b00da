"""Photoluminescence quantum yield by the de Mello three-measurement method (``plqy``).

Integrating sphere, three configurations (REFERENCE §3; de Mello et al., Adv. Mater. 9,
230 (1997)): (A) empty sphere, (B) sample in the sphere with the beam on the wall,
(C) beam on the sample. Each spectrum is dark-subtracted and sensitivity-calibrated
(:mod:`procedures._spectrum`), normalised to the laser power the power meter read during
it, and :func:`perovlab_daq.analysis.plqy_de_mello` turns the three into absorptance and
PLQY (:mod:`perovlab_daq.figures.plqy`). [P1] Table 1 quotes PLQY under a 405 nm CW laser
at 125 uW/cm^2, the default here.

Moving the sample between A, B and C:

* with a ``sample_stage`` role on the bench, the procedure moves it;
* otherwise the operator is asked through ``procedure.prompt`` (a callable the GUI or an
  interactive runner sets: it shows the message and returns True when the sample is in
  place, False to abort);
* a headless run with neither stops in ``startup`` with a message saying so, before the
  laser is switched on.

Emission is on only while each configuration's spectrum and power are measured.

Uncertainty: the whole A-B-C cycle is repeated ``repeats`` times (default 3), as a lab
does to include the repositioning of the sample, laser drift and detector noise, and
:mod:`perovlab_daq.figures.plqy` reports the mean PLQY with its standard uncertainty
(standard deviation of the cycles over sqrt(N)) and a 95 % interval from Student's t with
N - 1 degrees of freedom (docs/procedures/spectroscopy.md).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import numpy as np
from perovlab_daq.procedures._laser import POWER_MODES, LaserSpectroscopyProcedure
from perovlab_daq.procedures.base import ParameterError
from pymeasure.experiment import FloatParameter, IntegerParameter, ListParameter

log = logging.getLogger(__name__)

CONFIGURATIONS = ("A", "B", "C")
DESCRIPTIONS = {
    "A": "empty sphere (sample out)",
    "B": "sample in the sphere, beam on the sphere wall",
    "C": "beam on the sample",
}
#: Emission window when not given: the configuration-C band centre +- this many FWHM.
EMISSION_HALF_WIDTH_FWHM = 3.0


class PlqyProcedure(LaserSpectroscopyProcedure):
    """de Mello PLQY: spectra in configurations A, B and C, absorptance and PLQY."""

    SUMMARY_FIGURES = ("plqy_pct", "absorptance_pct")

    NAME: ClassVar[str] = "plqy"
    TITLE: ClassVar[str] = "PLQY (de Mello integrating sphere)"
    REQUIRED_ROLES: ClassVar[tuple[str, ...]] = ("laser", "spectrometer", "power_meter")
    OPTIONAL_ROLES: ClassVar[tuple[str, ...]] = ("filter_wheel", "sample_stage")
    COLUMNS: ClassVar[dict[str, str]] = {
        "time": "s",
        "repeat": "",
        "configuration": "",
        "laser_wavelength": "nm",
        "laser_power_setpoint": "W",
        "filter_position": "",
        "excitation_power": "W",
        "power_density": "W/cm^2",
        "integration_time": "s",
        "saturated": "",
        "laser_band_integral": "a.u.",
    }

    power_mode = ListParameter("Excitation set as", choices=POWER_MODES, default="power density")
    laser_power = FloatParameter(
        "Power into the sphere", units="W", minimum=0.0, maximum=1.0, default=1e-5
    )
    power_density = FloatParameter(
        "Power density on the sample", units="W/cm^2", minimum=0.0, maximum=1e5, default=125e-6
    )
    spot_area = FloatParameter(
        "Beam spot on the sample in the sphere",
        units="cm^2",
        minimum=1e-9,
        maximum=100.0,
        default=0.08,
    )
    laser_half_width = FloatParameter(
        "Laser window half width", units="nm", minimum=1.0, maximum=50.0, default=10.0
    )
    emission_window_low = FloatParameter(
        "Emission window start (0 = from the C spectrum)",
        units="nm",
        minimum=0.0,
        maximum=2000.0,
        default=0.0,
    )
    emission_window_high = FloatParameter(
        "Emission window end (0 = from the C spectrum)",
        units="nm",
        minimum=0.0,
        maximum=2000.0,
        default=0.0,
    )

    repeats = IntegerParameter("Repeated A-B-C cycles", minimum=1, maximum=100, default=3)

    #: Operator prompt: called with a message, returns True when the sample is in place.
    prompt: Callable[[str], bool] | None = None

    @classmethod
    def check_consistency(cls, values: Mapping[str, Any]) -> None:
        """Refuse a zero excitation and an inverted emission window."""
        super().check_consistency(values)
        mode = values.get("power_mode", "power density")
        key = "laser_power" if mode == "power" else "power_density"
        if not float(values.get(key, 0) or 0) > 0:
            raise ParameterError(key, values.get(key), "> 0")
        low = float(values.get("emission_window_low", 0) or 0)
        high = float(values.get("emission_window_high", 0) or 0)
        if low > 0 and high > 0 and high <= low + 5:
            raise ParameterError("emission_window_high", high, f"more than {low + 5:g} nm")

    def startup(self) -> None:
        """Check how the sample will be moved, then prepare laser and spectrometer.

        Raises
        ------
        RuntimeError
            Headless without a ``sample_stage`` role and without an operator prompt.
        """
        if not self.has_role("sample_stage") and self.prompt is None:
            raise RuntimeError(
                "plqy needs a sample_stage on the bench or an operator prompt (run it from the "
                "GUI, or interactively) to move the sample between configurations A, B and C"
            )
        self.prepare_laser()
        self.make_acquirer()
        self.area_cm2 = float(self.spot_area)
        self.target_w = (
            self.laser_power if self.power_mode == "power" else self.power_density * self.area_cm2
        )
        self.started = time.monotonic()

    def move_to(self, configuration: str) -> bool:
        """Bring the sample into ``configuration``; return False if the operator aborts."""
        if self.has_role("sample_stage"):
            self.place_sample(configuration)
            return True
        assert self.prompt is not None
        message = (
            f"PLQY: put the sample in configuration {configuration}: "
            + (DESCRIPTIONS[configuration])
        )
        self.emit_event("info", "prompt", message)
        return bool(self.prompt(message))

    def execute(self) -> None:
        """Measure A, B and C in turn, ``repeats`` times; emission on only while measuring."""
        total = int(self.repeats) * len(CONFIGURATIONS)
        try:
            for repeat in range(int(self.repeats)):
                for index, configuration in enumerate(CONFIGURATIONS):
                    if self.should_stop():
                        log.warning("plqy aborted before configuration %s", configuration)
                        return
                    if not self.move_to(configuration):
                        self.emit_event("warning", "abort", "operator cancelled the PLQY run")
                        return
                    self.measure(index, configuration, repeat)
                    done = repeat * len(CONFIGURATIONS) + index + 1
                    self.emit_progress(100.0 * done / total)
        finally:
            self.laser_off()
            if self.has_role("sample_stage"):
                try:
                    self.place_sample("STAGE")
                except Exception as exc:  # noqa: BLE001 - leaving the stage is not a safety issue
                    log.warning("could not return the sample stage: %s", exc)

    def measure(self, index: int, configuration: str, repeat: int = 0) -> None:
        """Take and record the spectrum of one configuration in cycle ``repeat``."""
        step = self.set_power_at_sample(self.target_w)
        with self.emission():
            before = self.read_power_w()
            corrected = self.correct_power(step, before)
            if corrected is not step:
                step = corrected
                before = self.read_power_w()
            frame = self.acquire_spectrum()
            after = self.read_power_w()
        power = float(np.mean([before, after]))
        half = float(self.laser_half_width)
        laser_band = frame.integrated(
            self.laser_wavelength_nm - half, self.laser_wavelength_nm + half
        )
        elapsed = time.monotonic() - self.started
        self.acquirer.emit(
            self,
            frame,
            time_s=elapsed,
            repeat=float(repeat),
            configuration=float(index),
            excitation_power_w=power,
            power_density_w_cm2=power / self.area_cm2,
        )
        self.emit_row(
            time=elapsed,
            repeat=repeat,
            configuration=index,
            laser_wavelength=self.laser_wavelength_nm,
            laser_power_setpoint=step.setpoint_w,
            filter_position=step.filter_position,
            excitation_power=power,
            power_density=power / self.area_cm2,
            integration_time=frame.integration_time_s,
            saturated=float(frame.saturated),
            laser_band_integral=laser_band,
        )
        self.emit_event(
            "info",
            "plqy",
            f"cycle {repeat + 1}/{int(self.repeats)}: configuration {configuration} measured "
            f"at {power:.4g} W "
            f"({frame.integration_time_s:g} s x {frame.averages})",
        )
