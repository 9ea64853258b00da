"""The simulated LED pixel: its drive, electrical response, electroluminescence and ageing.

`LedPixel` holds what the source meter sets (`DriveSetting`) and the pixel's slow state
(reduced age, ion migration, halide segregation under bias). It turns the drive into an
operating point through `LedElectricalModel`, the operating point into EL bands and a photon
rate, and integrates the operational ageing law (stretched exponential with
``L0^n * T50 = C``) over device time. No locking and no noise: `World` does both.
"""

from __future__ import annotations

import logging
import math
from typing import Literal, NamedTuple

import numpy as np
from scipy.optimize import brentq

from perovlab_daq.sim import optics
from perovlab_daq.sim.emission import (
    Band,
    emission_bands,
    relax,
    segregate,
    smoothstep,
    spectral_power_w_nm,
)
from perovlab_daq.sim.led import LedElectricalModel, OperatingPoint
from perovlab_daq.sim.optics import BenchSetup
from perovlab_daq.sim.presets import EmissionBand, Preset

log = logging.getLogger(__name__)

DriveMode = Literal["VOLT", "CURR"]

#: Largest increment of the reduced age per integration sub-step: in voltage mode the
#: current falls as the pixel ages, so long intervals are integrated in pieces.
_MAX_REDUCED_AGE_STEP: float = 0.02
_MAX_SUBSTEPS: int = 400


class DriveSetting(NamedTuple):
    """What the source meter applies to the LED (arguments of `World.set_drive`)."""

    mode: DriveMode
    level: float
    compliance: float
    output_on: bool


#: Resistance of a shorted pixel (ohm): a pinhole through the stack.
SHORT_RESISTANCE_OHM: float = 5.0


def _faulty_operating_point(fault: str, mode: str, level: float, limit: float) -> OperatingPoint:
    """Operating point of a shorted (ohmic) or open pixel: no current through the junction."""
    if fault == "open":
        if mode == "VOLT":
            return OperatingPoint(level, 0.0, 0.0, False)
        return OperatingPoint(math.copysign(limit, level) if level else 0.0, 0.0, 0.0, bool(level))
    if mode == "VOLT":
        current_a = level / SHORT_RESISTANCE_OHM
        if abs(current_a) > limit:
            current_a = math.copysign(limit, current_a)
            return OperatingPoint(current_a * SHORT_RESISTANCE_OHM, current_a, 0.0, True)
        return OperatingPoint(level, current_a, 0.0, False)
    voltage_v = level * SHORT_RESISTANCE_OHM
    if abs(voltage_v) > limit:
        voltage_v = math.copysign(limit, voltage_v)
        return OperatingPoint(voltage_v, voltage_v / SHORT_RESISTANCE_OHM, 0.0, True)
    return OperatingPoint(voltage_v, level, 0.0, False)


class LedPixel:
    """One LED pixel of a preset on a bench set-up.

    Parameters
    ----------
    preset
        The sample: its ``led`` parameters, and its film's segregation when the LED
        segregates under bias.
    setup
        The bench (device area).
    fault
        None for a working pixel; "short" (ohmic, ``SHORT_RESISTANCE_OHM``, no light) or
        "open" (no current: also what an open pixel switch presents).

    Attributes
    ----------
    drive
        Present source-meter setting (output off at 0 V to start).
    reduced_age, ion_migration, segregated_fraction
        Slow state: reduced ageing time u, progress of the EL drift (0..1), segregated
        fraction of the emission.
    ageing_constant
        C in ``L0^n * T50 = C`` (cd^n m^-2n s).
    """

    def __init__(self, preset: Preset, setup: BenchSetup, fault: str | None = None) -> None:
        if fault not in (None, "short", "open"):
            raise ValueError(f"pixel fault must be 'short', 'open' or None, not {fault!r}")
        self.fault = fault
        self.led = preset.led
        self.setup = setup
        self.segregation = preset.film.segregation if preset.led.segregates_under_bias else None
        self.model = LedElectricalModel(
            preset.led.diode, preset.led.efficiency, setup.device_area_cm2
        )
        self.drive = DriveSetting("VOLT", 0.0, 0.1, False)
        self.reduced_age = 0.0
        self.ion_migration = 0.0
        self.segregated_fraction = 0.0

        grid_nm = optics.MODEL_GRID_NM
        fresh_shape = optics.gaussian_band(
            grid_nm, self.led.el_band.peak_nm, self.led.el_band.fwhm_nm
        )
        # Luminance per photon/s of the fresh EL spectrum: turns photon output into the
        # luminance L0 that the acceleration law L0^n T50 = C is written in.
        self._fresh_cd_m2_per_photon_s = (
            optics.KM_LM_PER_W
            * np.trapezoid(fresh_shape * optics.photopic_on_model_grid(), grid_nm)
            / np.trapezoid(fresh_shape / optics.photon_energy_j(grid_nm), grid_nm)
            / (math.pi * setup.device_area_m2)
        )

        ageing = self.led.ageing

        def relative_output_minus_half(reduced_age: float) -> float:
            return self.relative_output(reduced_age) - 0.5

        # u50: reduced age at which the output (brightening included) falls to half.
        self._reduced_age_at_t50 = brentq(relative_output_minus_half, 0.0, 50.0, xtol=1e-12)
        if ageing.reference_luminance_cd_m2 is not None:
            reference_luminance = ageing.reference_luminance_cd_m2
        elif ageing.reference_current_density_ma_cm2 is not None:
            reference_luminance = self.fresh_luminance_cd_m2(
                ageing.reference_current_density_ma_cm2
            )
        else:
            raise ValueError(f"preset {preset.name}: ageing needs a reference condition")
        self.ageing_constant: float = (
            reference_luminance**ageing.acceleration_exponent * ageing.t50_reference_s
        )

    # --- ageing law --------------------------------------------------------------------

    def relative_output(self, reduced_age: float) -> float:
        """Return the ageing factor on the photon output at a reduced age (1 fresh)."""
        ageing = self.led.ageing
        brightening = 1.0 + ageing.brightening_fraction * (
            1.0 - math.exp(-reduced_age / ageing.brightening_reduced_time)
        )
        return brightening * math.exp(-(reduced_age**ageing.stretch_exponent))

    def voltage_rise_v(self) -> float:
        """Return the ageing rise of the junction voltage now (V)."""
        lost = 1.0 - math.exp(-(self.reduced_age**self.led.ageing.stretch_exponent))
        return self.led.ageing.voltage_rise_at_t50_v * lost / 0.5

    def fresh_luminance_cd_m2(self, current_density_ma_cm2: float) -> float:
        """Return the luminance of the fresh pixel at a junction current density."""
        if current_density_ma_cm2 <= 0.0:
            return 0.0
        current_a = current_density_ma_cm2 * 1e-3 * self.setup.device_area_cm2
        photon_rate = (
            self.model.radiative_efficiency(current_density_ma_cm2)
            * current_a
            / optics.ELEMENTARY_CHARGE_C
        )
        return photon_rate * self._fresh_cd_m2_per_photon_s

    def t50_device_s(self, current_density_ma_cm2: float) -> float:
        """Return T50 (device s) of a fresh pixel at a constant current density: C / L0^n."""
        exponent = self.led.ageing.acceleration_exponent
        return self.ageing_constant / self.fresh_luminance_cd_m2(current_density_ma_cm2) ** exponent

    def _reduced_age_rate_per_s(self, diode_current_density_ma_cm2: float) -> float:
        if diode_current_density_ma_cm2 <= 0.0:
            return 0.0
        return self._reduced_age_at_t50 / self.t50_device_s(diode_current_density_ma_cm2)

    def integrate(self, elapsed_device_s: float) -> None:
        """Age the pixel under the present drive over device time (sub-stepped)."""
        drift = self.led.drift
        remaining_s = elapsed_device_s
        substeps = 0
        while remaining_s > 0.0:
            point = self.operating_point()
            diode_j_ma_cm2 = self.current_density_ma_cm2(max(point.diode_current_a, 0.0))
            age_rate_per_s = self._reduced_age_rate_per_s(diode_j_ma_cm2)
            step_s = remaining_s
            if age_rate_per_s > 0.0 and substeps < _MAX_SUBSTEPS - 1:
                step_s = min(remaining_s, _MAX_REDUCED_AGE_STEP / age_rate_per_s)
            substeps += 1
            remaining_s -= step_s
            self.reduced_age += age_rate_per_s * step_s
            if diode_j_ma_cm2 > 0.0 and drift.migration_target_nm is not None:
                migration_rate = diode_j_ma_cm2 / (
                    drift.migration_reference_ma_cm2 * drift.migration_time_s
                )
                self.ion_migration = relax(self.ion_migration, 1.0, migration_rate, step_s)
            if self.segregation is not None:
                drive_rate = diode_j_ma_cm2 / (
                    self.segregation.led_reference_ma_cm2 * self.segregation.time_constant_s
                )
                self.segregated_fraction = segregate(
                    self.segregated_fraction, drive_rate, self.segregation, step_s
                )

    # --- electrical --------------------------------------------------------------------

    def operating_point(self) -> OperatingPoint:
        """Return the operating point under the present drive, compliance applied."""
        mode, level, limit, output_on = self.drive
        if not output_on:
            return OperatingPoint(0.0, 0.0, 0.0, False)
        if self.fault is not None:
            return _faulty_operating_point(self.fault, mode, level, limit)
        offset_v = self.voltage_rise_v()
        model = self.model
        # Source one quantity; if the other exceeds the compliance, source that at the limit.
        if mode == "VOLT":
            point = model.at_voltage(level, offset_v)
            limited, at_limit = point.current_a, model.at_current
        else:
            point = model.at_current(level, offset_v)
            limited, at_limit = point.voltage_v, model.at_voltage
        if abs(limited) > limit:
            clamped = at_limit(math.copysign(limit, limited), offset_v)
            return OperatingPoint(
                clamped.voltage_v, clamped.current_a, clamped.diode_current_a, True
            )
        return point

    def current_density_ma_cm2(self, current_a: float) -> float:
        """Return the current density (mA/cm^2) of a current through the pixel."""
        return current_a * 1e3 / self.setup.device_area_cm2

    # --- emission ----------------------------------------------------------------------

    def el_bands(self, voltage_v: float) -> list[Band]:
        """Return the EL bands at a terminal voltage (drift and segregation applied)."""
        led = self.led
        peak_nm = led.el_band.peak_nm
        drift = led.drift
        if drift.migration_target_nm is not None:
            peak_nm += (drift.migration_target_nm - peak_nm) * self.ion_migration
        if drift.high_field_shift_nm:
            span_v = drift.high_field_full_v - drift.high_field_onset_v
            peak_nm += drift.high_field_shift_nm * smoothstep(
                (abs(voltage_v) - drift.high_field_onset_v) / span_v
            )
        band = EmissionBand(peak_nm, led.el_band.fwhm_nm)
        return emission_bands(band, self.segregated_fraction, self.segregation)

    def photon_rate_per_s(self, point: OperatingPoint) -> float:
        """Return the forward photon rate at an operating point (ageing applied)."""
        diode_j = self.current_density_ma_cm2(point.diode_current_a)
        if diode_j <= 0.0:
            return 0.0
        return (
            self.model.radiative_efficiency(diode_j)
            * point.diode_current_a
            / optics.ELEMENTARY_CHARGE_C
            * self.relative_output(self.reduced_age)
        )

    def spectrum_on_grid(self) -> tuple[OperatingPoint, np.ndarray]:
        """Return the operating point and the forward EL spectrum (W/nm) on the model grid."""
        point = self.operating_point()
        bands = self.el_bands(point.voltage_v)
        photon_rate = self.photon_rate_per_s(point)
        spectrum = spectral_power_w_nm(optics.MODEL_GRID_NM, bands, photon_rate)
        return point, spectrum
