"""Physics world of the simulated bench: one LED pixel, one film, a laser and the detectors.

Every simulated instrument reads and writes one `World`, so the photodiode sees the LED the
source meter drives and the spectrometer sees the film the laser excites. The contract is
docs/architecture.md §1; the model, its parameters and the presets are docs/simulator.md.

Slow processes (operational ageing, ion migration, photobleaching, halide segregation)
are integrated lazily at the start of every call, from the drive and laser state held
since the previous call, over device time = wall time x `ageing_acceleration`. The
electrical and optical response is instantaneous and never accelerated.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import numpy as np
from scipy.optimize import brentq

from perovlab_daq.sim import optics
from perovlab_daq.sim.led import LedElectricalModel, OperatingPoint
from perovlab_daq.sim.optics import BenchSetup
from perovlab_daq.sim.presets import EmissionBand, Preset, SegregationParameters, get_preset

log = logging.getLogger(__name__)

DriveMode = Literal["VOLT", "CURR"]
SamplePosition = Literal["stage", "A", "B", "C"]
SAMPLE_POSITIONS: tuple[str, ...] = ("stage", "A", "B", "C")
STATE_FORMAT_VERSION: int = 1

#: Largest increment of the reduced age per integration sub-step: in voltage mode the
#: current falls as the pixel ages, so long intervals are integrated in pieces.
_MAX_REDUCED_AGE_STEP: float = 0.02
_MAX_SUBSTEPS: int = 400

# Source-meter noise: a 2400-class reading at a medium NPLC.
_SMU_VOLTAGE_NOISE_RELATIVE = 2e-5
_SMU_VOLTAGE_NOISE_V = 20e-6
_SMU_CURRENT_NOISE_RELATIVE = 1e-4
_SMU_CURRENT_NOISE_A = 20e-12
_PHOTODIODE_NOISE_RELATIVE = 2e-4
_LASER_POWER_NOISE_RELATIVE = 1e-3


class SmuReading(NamedTuple):
    """One source-meter reading (a ``:READ?``)."""

    voltage_v: float
    current_a: float
    in_compliance: bool


@dataclass(frozen=True)
class LedTruth:
    """Noise-free state of the LED pixel, for tests and documentation (not for procedures).

    Attributes
    ----------
    voltage_v, current_a
        Terminal voltage and total current.
    in_compliance
        Whether the source meter limits the drive.
    current_density_ma_cm2
        Total current density.
    eqe
        Photons out of the front per electron of the total current.
    luminance_cd_m2
        Luminance of the pixel (Lambertian), from the EL spectrum and V(lambda).
    optical_power_w
        Forward optical power.
    el_peak_nm
        Peak of the (main) EL band.
    relative_output
        Ageing factor on the photon output (1 fresh; includes initial brightening).
    reduced_age
        Reduced ageing time u (T50 at constant current is reached at the preset's u50).
    voltage_rise_v
        Ageing rise of the junction voltage.
    """

    voltage_v: float
    current_a: float
    in_compliance: bool
    current_density_ma_cm2: float
    eqe: float
    luminance_cd_m2: float
    optical_power_w: float
    el_peak_nm: float
    relative_output: float
    reduced_age: float
    voltage_rise_v: float


@dataclass(frozen=True)
class FilmTruth:
    """Noise-free state of the film, for tests and documentation (not for procedures).

    Attributes
    ----------
    excitation_density_w_cm2
        Laser power density on the film now (0 when dark or out of the beam).
    plqy
        PL quantum yield now (photobleaching included).
    bleach_survival
        Fraction of emitters not yet photobleached.
    segregated_fraction
        Fraction of the emission from segregated (iodide-rich) domains.
    absorbed_photon_rate_per_s
        Laser photons absorbed per second.
    """

    excitation_density_w_cm2: float
    plqy: float
    bleach_survival: float
    segregated_fraction: float
    absorbed_photon_rate_per_s: float


def _smoothstep(fraction: float) -> float:
    clipped = min(max(fraction, 0.0), 1.0)
    return clipped * clipped * (3.0 - 2.0 * clipped)


def _relax(value: float, equilibrium: float, rate_per_s: float, dt_s: float) -> float:
    """Exact solution of dx/dt = -rate (x - equilibrium) over dt at a constant rate."""
    return equilibrium + (value - equilibrium) * math.exp(-rate_per_s * dt_s)


class World:
    """Physics of the simulated bench (see docs/architecture.md §1 and docs/simulator.md).

    Parameters
    ----------
    preset
        Preset name or `Preset` instance: the film on the stage and the LED pixel.
    seed
        Seed of the numpy Generator that draws every noise sample: same seed and same call
        sequence give the same numbers.
    ageing_acceleration
        Device seconds per wall second for ageing, ion migration, photobleaching and halide
        segregation; settable later through the attribute.
    clock
        Wall clock in seconds (monotonic); inject a fake one to drive time in tests.
    setup
        Geometry, optics and calibration files: a `BenchSetup`, or a bench file's
        ``setup:`` mapping (see `BenchSetup.from_mapping`); defaults in `BenchSetup`.
    """

    def __init__(
        self,
        preset: str | Preset = "qd-in-matrix",
        *,
        seed: int = 0,
        ageing_acceleration: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        setup: BenchSetup | Mapping[str, Any] | None = None,
    ) -> None:
        self._lock = threading.RLock()
        self.preset: Preset = get_preset(preset) if isinstance(preset, str) else preset
        if setup is None:
            setup = BenchSetup()
        elif not isinstance(setup, BenchSetup):
            setup = BenchSetup.from_mapping(setup)
        self.setup: BenchSetup = setup
        self._seed = seed
        self._rng = np.random.default_rng(seed)
        self._clock = clock
        if ageing_acceleration <= 0:
            raise ValueError("ageing_acceleration must be > 0")
        self._ageing_acceleration = float(ageing_acceleration)
        self._last_update_s = clock()
        self._device_time_s = 0.0

        # Slow state (what state_dict persists).
        self._led_reduced_age = 0.0
        self._led_ion_migration = 0.0
        self._led_segregation = 0.0
        self._film_bleach_survival = 1.0
        self._film_segregation = 0.0

        # Instrument-facing state.
        self._drive_mode: DriveMode = "VOLT"
        self._drive_level = 0.0
        self._drive_compliance = 0.1
        self._output_on = False
        self._laser_setpoint_w = 0.0
        self._laser_emission_on = False
        self._interlock_closed = True
        self._filter_position = 1
        self._sample_position: SamplePosition = "stage"

        self.laser_wavelength_nm: float = self.setup.laser_wavelength_nm
        self.laser_max_power_w: float = self.setup.laser_max_power_w
        self.laser_min_power_w: float = self.setup.laser_min_power_w
        self.filter_optical_densities: tuple[float, ...] = self.setup.filter_optical_densities
        self.spectrometer_saturation_counts: float = self.setup.spectrometer_saturation_counts
        self.spectrometer_integration_limits_s: tuple[float, float] = (
            self.setup.spectrometer_min_integration_s,
            self.setup.spectrometer_max_integration_s,
        )
        # Optically masked pixels at the blue end, like a real CCD's electric-dark pixels.
        self.spectrometer_electric_dark_pixels: tuple[int, ...] = (0, 1, 2, 3)

        self._led_model = LedElectricalModel(
            self.preset.led.diode, self.preset.led.efficiency, self.setup.device_area_cm2
        )
        self._precompute_optics(seed)
        self._precompute_ageing()
        log.debug("World created: preset %s, seed %d", self.preset.name, seed)

    # --- set-up ------------------------------------------------------------------------

    def _precompute_optics(self, seed: int) -> None:
        setup = self.setup
        grid_nm = optics.MODEL_GRID_NM
        self._grid_photon_energy_j = optics.photon_energy_j(grid_nm)
        self._grid_responsivity_a_w = optics.interpolate_calibration(
            setup.photodiode_responsivity_csv, grid_nm
        )
        self._grid_photopic = optics.photopic_on_model_grid()
        self._pixel_nm = setup.spectrometer_wavelengths_nm()
        self._pixel_sensitivity = optics.interpolate_calibration(
            setup.spectrometer_sensitivity_csv, self._pixel_nm
        )
        self._pixel_sensitivity[list(self.spectrometer_electric_dark_pixels)] = 0.0
        # Fixed-pattern dark from its own stream so it does not shift the noise sequence.
        pattern_rng = np.random.default_rng([seed, 7])
        self._pixel_dark_offset = setup.spectrometer_dark_offset_counts * (
            1.0 + 0.01 * pattern_rng.standard_normal(setup.spectrometer_pixels)
        )
        self._pixel_dark_rate = setup.spectrometer_dark_rate_counts_per_s * (
            1.0 + 0.3 * np.abs(pattern_rng.standard_normal(setup.spectrometer_pixels))
        )
        self._nonlinearity_per_count = (
            setup.spectrometer_nonlinearity_at_saturation / setup.spectrometer_saturation_counts
        )
        fresh_shape = optics.gaussian_band(
            grid_nm, self.preset.led.el_band.peak_nm, self.preset.led.el_band.fwhm_nm
        )
        # Luminance per photon/s of the fresh EL spectrum: turns photon output into the
        # luminance L0 that the acceleration law L0^n T50 = C is written in.
        self._fresh_cd_m2_per_photon_s = (
            optics.KM_LM_PER_W
            * np.trapezoid(fresh_shape * self._grid_photopic, grid_nm)
            / np.trapezoid(fresh_shape / self._grid_photon_energy_j, grid_nm)
            / (math.pi * setup.device_area_m2)
        )

    def _precompute_ageing(self) -> None:
        ageing = self.preset.led.ageing

        def relative_output_minus_half(reduced_age: float) -> float:
            return self._relative_output(reduced_age) - 0.5

        # u50: reduced age at which the output (brightening included) falls to half.
        self._reduced_age_at_t50 = brentq(relative_output_minus_half, 0.0, 50.0, xtol=1e-12)
        if ageing.reference_luminance_cd_m2 is not None:
            reference_luminance = ageing.reference_luminance_cd_m2
        elif ageing.reference_current_density_ma_cm2 is not None:
            reference_luminance = self.fresh_luminance_cd_m2(
                ageing.reference_current_density_ma_cm2
            )
        else:
            raise ValueError(f"preset {self.preset.name}: ageing needs a reference condition")
        # C in L0^n * T50 = C (units cd^n m^-2n s).
        self.ageing_constant = (
            reference_luminance**ageing.acceleration_exponent * ageing.t50_reference_s
        )

    # --- time --------------------------------------------------------------------------

    @property
    def ageing_acceleration(self) -> float:
        """Device seconds per wall second for the slow processes (> 0)."""
        with self._lock:
            return self._ageing_acceleration

    @ageing_acceleration.setter
    def ageing_acceleration(self, factor: float) -> None:
        if factor <= 0:
            raise ValueError("ageing_acceleration must be > 0")
        with self._lock:
            # Time already elapsed ages at the old factor.
            self._advance()
            self._ageing_acceleration = float(factor)

    def device_time_s(self) -> float:
        """Return the accelerated time since creation (device seconds)."""
        with self._lock:
            self._advance()
            return self._device_time_s

    def _advance(self) -> None:
        now_s = self._clock()
        elapsed_wall_s = now_s - self._last_update_s
        self._last_update_s = now_s
        if elapsed_wall_s <= 0.0:
            return
        elapsed_device_s = elapsed_wall_s * self._ageing_acceleration
        self._device_time_s += elapsed_device_s
        self._integrate_led(elapsed_device_s)
        self._integrate_film(elapsed_device_s)

    def _integrate_led(self, elapsed_device_s: float) -> None:
        led = self.preset.led
        remaining_s = elapsed_device_s
        substeps = 0
        while remaining_s > 0.0:
            point = self._operating_point()
            diode_j_ma_cm2 = self._current_density_ma_cm2(max(point.diode_current_a, 0.0))
            age_rate_per_s = self._reduced_age_rate_per_s(diode_j_ma_cm2)
            step_s = remaining_s
            if age_rate_per_s > 0.0 and substeps < _MAX_SUBSTEPS - 1:
                step_s = min(remaining_s, _MAX_REDUCED_AGE_STEP / age_rate_per_s)
            substeps += 1
            remaining_s -= step_s
            self._led_reduced_age += age_rate_per_s * step_s
            if diode_j_ma_cm2 > 0.0 and led.drift.migration_target_nm is not None:
                migration_rate = diode_j_ma_cm2 / (
                    led.drift.migration_reference_ma_cm2 * led.drift.migration_time_s
                )
                self._led_ion_migration = _relax(
                    self._led_ion_migration, 1.0, migration_rate, step_s
                )
            segregation = self.preset.film.segregation
            if led.segregates_under_bias and segregation is not None:
                drive_rate = diode_j_ma_cm2 / (
                    segregation.led_reference_ma_cm2 * segregation.time_constant_s
                )
                self._led_segregation = self._segregate(
                    self._led_segregation, drive_rate, segregation, step_s
                )

    def _integrate_film(self, elapsed_device_s: float) -> None:
        film = self.preset.film
        density_w_cm2 = self._film_dose_density_w_cm2()
        if film.bleach_time_s is not None and density_w_cm2 > 0.0:
            bleach_rate = density_w_cm2 / (film.bleach_reference_density_w_cm2 * film.bleach_time_s)
            self._film_bleach_survival *= math.exp(-bleach_rate * elapsed_device_s)
        if film.segregation is not None:
            light_rate = density_w_cm2 / (
                film.segregation.reference_density_w_cm2 * film.segregation.time_constant_s
            )
            self._film_segregation = self._segregate(
                self._film_segregation, light_rate, film.segregation, elapsed_device_s
            )

    @staticmethod
    def _segregate(
        fraction: float, drive_rate: float, params: SegregationParameters, dt_s: float
    ) -> float:
        recovery_rate = 1.0 / params.dark_recovery_time_s
        total_rate = drive_rate + recovery_rate
        equilibrium = params.max_fraction * drive_rate / total_rate
        return _relax(fraction, equilibrium, total_rate, dt_s)

    # --- ageing law --------------------------------------------------------------------

    def _relative_output(self, reduced_age: float) -> float:
        ageing = self.preset.led.ageing
        brightening = 1.0 + ageing.brightening_fraction * (
            1.0 - math.exp(-reduced_age / ageing.brightening_reduced_time)
        )
        return brightening * math.exp(-(reduced_age**ageing.stretch_exponent))

    def _voltage_rise_v(self) -> float:
        lost = 1.0 - math.exp(-(self._led_reduced_age**self.preset.led.ageing.stretch_exponent))
        return self.preset.led.ageing.voltage_rise_at_t50_v * lost / 0.5

    def _reduced_age_rate_per_s(self, diode_current_density_ma_cm2: float) -> float:
        if diode_current_density_ma_cm2 <= 0.0:
            return 0.0
        return self._reduced_age_at_t50 / self.t50_device_s(diode_current_density_ma_cm2)

    def fresh_luminance_cd_m2(self, current_density_ma_cm2: float) -> float:
        """Return the luminance of the fresh pixel at a junction current density.

        This is the L0 of the acceleration law for a constant-current run at that density.
        """
        if current_density_ma_cm2 <= 0.0:
            return 0.0
        current_a = current_density_ma_cm2 * 1e-3 * self.setup.device_area_cm2
        photon_rate = (
            self._led_model.radiative_efficiency(current_density_ma_cm2)
            * current_a
            / optics.ELEMENTARY_CHARGE_C
        )
        return photon_rate * self._fresh_cd_m2_per_photon_s

    def t50_device_s(self, current_density_ma_cm2: float) -> float:
        """Return T50 (device seconds) of a fresh pixel at a constant current density.

        From the preset's acceleration law: T50 = C / L0^n with L0 the fresh luminance.
        """
        exponent = self.preset.led.ageing.acceleration_exponent
        return self.ageing_constant / self.fresh_luminance_cd_m2(current_density_ma_cm2) ** exponent

    # --- source meter ------------------------------------------------------------------

    def set_drive(self, mode: DriveMode, level: float, compliance: float, output_on: bool) -> None:
        """Set the source meter driving the LED.

        Parameters
        ----------
        mode
            "VOLT" (source voltage, `level` in V, `compliance` in A) or "CURR" (source
            current, `level` in A, `compliance` in V).
        level
            Source level.
        compliance
            Compliance limit (> 0) of the other quantity.
        output_on
            Output relay state; off means no current.
        """
        if mode not in ("VOLT", "CURR"):
            raise ValueError(f"mode must be 'VOLT' or 'CURR', not {mode!r}")
        if compliance <= 0:
            raise ValueError("compliance must be > 0")
        with self._lock:
            self._advance()
            self._drive_mode = mode
            self._drive_level = float(level)
            self._drive_compliance = float(compliance)
            self._output_on = bool(output_on)

    def _operating_point(self) -> OperatingPoint:
        if not self._output_on:
            return OperatingPoint(0.0, 0.0, 0.0, False)
        offset_v = self._voltage_rise_v()
        model = self._led_model
        limit = self._drive_compliance
        if self._drive_mode == "VOLT":
            point = model.at_voltage(self._drive_level, offset_v)
            if abs(point.current_a) > limit:
                clamped = model.at_current(math.copysign(limit, point.current_a), offset_v)
                return OperatingPoint(
                    clamped.voltage_v, clamped.current_a, clamped.diode_current_a, True
                )
            return point
        point = model.at_current(self._drive_level, offset_v)
        if abs(point.voltage_v) > limit:
            clamped = model.at_voltage(math.copysign(limit, point.voltage_v), offset_v)
            return OperatingPoint(
                clamped.voltage_v, clamped.current_a, clamped.diode_current_a, True
            )
        return point

    def _current_density_ma_cm2(self, current_a: float) -> float:
        return current_a * 1e3 / self.setup.device_area_cm2

    def smu_reading(self) -> SmuReading:
        """Return a noisy source-meter reading of the LED (voltage, current, compliance)."""
        with self._lock:
            self._advance()
            point = self._operating_point()
            noise = self._rng.standard_normal(2)
            voltage_v = point.voltage_v + noise[0] * (
                _SMU_VOLTAGE_NOISE_V + _SMU_VOLTAGE_NOISE_RELATIVE * abs(point.voltage_v)
            )
            current_a = point.current_a + noise[1] * (
                _SMU_CURRENT_NOISE_A + _SMU_CURRENT_NOISE_RELATIVE * abs(point.current_a)
            )
            return SmuReading(voltage_v, current_a, point.in_compliance)

    # --- LED emission ------------------------------------------------------------------

    def _el_bands(self, voltage_v: float) -> list[tuple[float, float, float]]:
        led = self.preset.led
        peak_nm = led.el_band.peak_nm
        drift = led.drift
        if drift.migration_target_nm is not None:
            peak_nm += (drift.migration_target_nm - peak_nm) * self._led_ion_migration
        if drift.high_field_shift_nm:
            span_v = drift.high_field_full_v - drift.high_field_onset_v
            peak_nm += drift.high_field_shift_nm * _smoothstep(
                (abs(voltage_v) - drift.high_field_onset_v) / span_v
            )
        band = EmissionBand(peak_nm, led.el_band.fwhm_nm)
        segregation = self.preset.film.segregation
        if led.segregates_under_bias and segregation is not None:
            return self._segregated_bands(band, self._led_segregation, segregation)
        return [(band.peak_nm, band.fwhm_nm, 1.0)]

    @staticmethod
    def _segregated_bands(
        parent: EmissionBand, fraction: float, params: SegregationParameters
    ) -> list[tuple[float, float, float]]:
        parent_peak_nm = parent.peak_nm + params.parent_shift_nm * fraction / params.max_fraction
        bands = [(parent_peak_nm, parent.fwhm_nm, 1.0 - fraction)]
        for band, weight in zip(params.segregated_bands, params.segregated_weights, strict=True):
            bands.append((band.peak_nm, band.fwhm_nm, fraction * weight))
        return bands

    def _led_photon_rate_per_s(self, point: OperatingPoint) -> float:
        diode_j = self._current_density_ma_cm2(point.diode_current_a)
        if diode_j <= 0.0:
            return 0.0
        return (
            self._led_model.radiative_efficiency(diode_j)
            * point.diode_current_a
            / optics.ELEMENTARY_CHARGE_C
            * self._relative_output(self._led_reduced_age)
        )

    @staticmethod
    def _spectral_power_w_nm(
        wavelength_nm: np.ndarray,
        bands: list[tuple[float, float, float]],
        photon_rate_per_s: float,
        broadening_fwhm_nm: float = 0.0,
    ) -> np.ndarray:
        """Return spectral power (W/nm) of bands carrying a photon rate in total.

        Each band's share of the photons is its weight; broadening adds in quadrature to
        the FWHM (the spectrometer's line-spread function).
        """
        grid_nm = optics.MODEL_GRID_NM
        grid_energy_j = optics.photon_energy_j(grid_nm)
        spectrum = np.zeros_like(wavelength_nm, dtype=float)
        if photon_rate_per_s <= 0.0:
            return spectrum
        for peak_nm, fwhm_nm, weight in bands:
            if weight <= 0.0:
                continue
            # Photons per joule of this band's shape, to convert a photon rate into watts.
            photons_per_j = np.trapezoid(
                optics.gaussian_band(grid_nm, peak_nm, fwhm_nm) / grid_energy_j, grid_nm
            )
            seen_fwhm = math.hypot(fwhm_nm, broadening_fwhm_nm)
            spectrum += (
                weight
                * photon_rate_per_s
                / photons_per_j
                * optics.gaussian_band(wavelength_nm, peak_nm, seen_fwhm)
            )
        return spectrum

    def _led_spectrum_on_grid(self) -> tuple[OperatingPoint, np.ndarray]:
        point = self._operating_point()
        bands = self._el_bands(point.voltage_v)
        photon_rate = self._led_photon_rate_per_s(point)
        spectrum = self._spectral_power_w_nm(optics.MODEL_GRID_NM, bands, photon_rate)
        return point, spectrum

    def photodiode_current_a(self) -> float:
        """Return the photodiode current (A): LED photocurrent + dark current + noise.

        The photodiode faces the LED on axis and collects F = r^2 / (r^2 + d^2) of its
        forward flux; it does not see the film or the laser.
        """
        with self._lock:
            self._advance()
            _, spectrum = self._led_spectrum_on_grid()
            photocurrent_a = self.setup.photodiode_collection_fraction * np.trapezoid(
                spectrum * self._grid_responsivity_a_w, optics.MODEL_GRID_NM
            )
            noise_a = self._rng.standard_normal() * (
                self.setup.photodiode_noise_a + _PHOTODIODE_NOISE_RELATIVE * photocurrent_a
            )
            return float(photocurrent_a + self.setup.photodiode_dark_current_a + noise_a)

    def led_truth(self) -> LedTruth:
        """Return the noise-free LED state (tests, documentation; never for procedures)."""
        with self._lock:
            self._advance()
            point, spectrum = self._led_spectrum_on_grid()
            grid_nm = optics.MODEL_GRID_NM
            optical_power_w = float(np.trapezoid(spectrum, grid_nm))
            luminance = (
                optics.KM_LM_PER_W
                * float(np.trapezoid(spectrum * self._grid_photopic, grid_nm))
                / (math.pi * self.setup.device_area_m2)
            )
            photon_rate = self._led_photon_rate_per_s(point)
            eqe = (
                photon_rate * optics.ELEMENTARY_CHARGE_C / point.current_a
                if point.current_a > 0.0
                else 0.0
            )
            return LedTruth(
                voltage_v=point.voltage_v,
                current_a=point.current_a,
                in_compliance=point.in_compliance,
                current_density_ma_cm2=self._current_density_ma_cm2(point.current_a),
                eqe=eqe,
                luminance_cd_m2=luminance,
                optical_power_w=optical_power_w,
                el_peak_nm=self._el_bands(point.voltage_v)[0][0],
                relative_output=self._relative_output(self._led_reduced_age),
                reduced_age=self._led_reduced_age,
                voltage_rise_v=self._voltage_rise_v(),
            )

    # --- laser, filter wheel, power meter ----------------------------------------------

    def set_laser(self, power_setpoint_w: float, emission_on: bool) -> None:
        """Set the laser power setpoint (W, clipped to the laser's range) and emission."""
        if power_setpoint_w < 0:
            raise ValueError("laser power setpoint must be >= 0")
        with self._lock:
            self._advance()
            self._laser_setpoint_w = min(float(power_setpoint_w), self.laser_max_power_w)
            self._laser_emission_on = bool(emission_on)

    def set_interlock(self, closed: bool) -> None:
        """Close or open the laser interlock (open stops emission)."""
        with self._lock:
            self._advance()
            self._interlock_closed = bool(closed)

    @property
    def interlock_closed(self) -> bool:
        """Whether the laser interlock is closed."""
        with self._lock:
            return self._interlock_closed

    @property
    def filter_position(self) -> int:
        """Current filter-wheel position (1-based)."""
        with self._lock:
            return self._filter_position

    @property
    def sample_position(self) -> str:
        """Current sample position: "stage", "A", "B" or "C"."""
        with self._lock:
            return self._sample_position

    def _true_laser_output_w(self) -> float:
        if not (self._laser_emission_on and self._interlock_closed):
            return 0.0
        if self._laser_setpoint_w <= 0.0:
            return 0.0
        # The OBIS does not regulate below its minimum power.
        return max(self._laser_setpoint_w, self.laser_min_power_w)

    def laser_output_w(self) -> float:
        """Return the power the laser emits (W): 0 when off or with the interlock open."""
        with self._lock:
            self._advance()
            power_w = self._true_laser_output_w()
            return power_w * (1.0 + _LASER_POWER_NOISE_RELATIVE * self._rng.standard_normal())

    def set_filter_position(self, pos: int) -> None:
        """Move the ND filter wheel to a position (1 .. number of filters)."""
        count = len(self.filter_optical_densities)
        if not 1 <= int(pos) <= count:
            raise ValueError(f"filter position must be 1..{count}, not {pos}")
        with self._lock:
            self._advance()
            self._filter_position = int(pos)

    def _power_after_filter_w(self) -> float:
        optical_density = self.filter_optical_densities[self._filter_position - 1]
        return self._true_laser_output_w() * 10.0 ** (-optical_density)

    def power_meter_w(self, wavelength_nm: float) -> float:
        """Return the power meter reading (W) after the filter wheel.

        Parameters
        ----------
        wavelength_nm
            The meter's wavelength correction setting; a setting different from the laser
            line scales the reading by the sensor's responsivity ratio, as on a real meter.
        """
        with self._lock:
            self._advance()
            true_w = self._power_after_filter_w()
            response = optics.interpolate_calibration(
                self.setup.photodiode_responsivity_csv,
                np.array([self.laser_wavelength_nm, wavelength_nm], dtype=float),
            )
            scale = response[0] / response[1] if response[1] > 0 else 0.0
            noise = self._rng.standard_normal(2)
            return float(
                true_w * scale * (1.0 + self.setup.power_meter_noise_relative * noise[0])
                + self.setup.power_meter_noise_w * noise[1]
            )

    # --- film --------------------------------------------------------------------------

    def set_sample_position(self, pos: SamplePosition) -> None:
        """Place the film: "stage" (PL geometry) or the de Mello sphere configurations.

        "A": empty sphere; "B": film in the sphere, beam on the wall; "C": beam on the film.
        In A/B/C the spectrometer fibre looks into the sphere (the LED is not seen).
        """
        if pos not in SAMPLE_POSITIONS:
            raise ValueError(f"sample position must be one of {SAMPLE_POSITIONS}, not {pos!r}")
        with self._lock:
            self._advance()
            self._sample_position = pos

    def _plqy_at(self, density_w_cm2: float) -> float:
        film = self.preset.film
        if density_w_cm2 <= 0.0:
            base = film.plqy_reference if film.power_law_exponent == 1.0 else 0.0
        else:
            base = film.plqy_reference * (density_w_cm2 / film.plqy_reference_density_w_cm2) ** (
                film.power_law_exponent - 1.0
            )
        return min(base, film.plqy_ceiling) * self._film_bleach_survival

    def _beam_density_w_cm2(self) -> float:
        """Excitation density that sets the PLQY: beam power over the spot it would make."""
        power_w = self._power_after_filter_w()
        if self._sample_position == "stage":
            return power_w / self.setup.laser_spot_area_cm2
        return power_w / self.setup.sphere_spot_area_cm2

    def _film_dose_density_w_cm2(self) -> float:
        """Excitation density that drives photobleaching and segregation."""
        if self._sample_position in ("stage", "C"):
            return self._beam_density_w_cm2()
        if self._sample_position == "B":
            # Diffuse sphere light only: weak.
            return self._beam_density_w_cm2() * self.setup.sphere_diffuse_absorption_ratio
        return 0.0

    def _pl_bands(self) -> list[tuple[float, float, float]]:
        film = self.preset.film
        if film.segregation is not None:
            return self._segregated_bands(film.pl_band, self._film_segregation, film.segregation)
        return [(film.pl_band.peak_nm, film.pl_band.fwhm_nm, 1.0)]

    def film_truth(self) -> FilmTruth:
        """Return the noise-free film state (tests, documentation; never for procedures)."""
        with self._lock:
            self._advance()
            density = self._film_dose_density_w_cm2()
            absorbed = 0.0
            if self._sample_position != "A":
                absorbed = (
                    self._power_after_filter_w()
                    / float(optics.photon_energy_j(self.laser_wavelength_nm))
                    * self.preset.film.absorptance_at_laser
                )
            return FilmTruth(
                excitation_density_w_cm2=density,
                plqy=self._plqy_at(self._beam_density_w_cm2()),
                bleach_survival=self._film_bleach_survival,
                segregated_fraction=self._film_segregation,
                absorbed_photon_rate_per_s=absorbed,
            )

    # --- spectrometer ------------------------------------------------------------------

    def spectrometer_wavelengths_nm(self) -> np.ndarray:
        """Return the spectrometer's pixel wavelengths (nm), 1044 pixels, 350-950 nm."""
        return self._pixel_nm.copy()

    @property
    def spectrometer_nonlinearity_coefficients(self) -> tuple[float, ...]:
        """Return seabreeze-style coefficients: true = raw / poly(raw), raw above the offset.

        The detector responds as raw = true (1 - a true) above its electronic offset; these
        are the first terms of the inverse series.
        """
        per_count = self._nonlinearity_per_count
        return (1.0, -per_count, -(per_count**2), -2.0 * per_count**3)

    def _fibre_spectral_power_w_nm(self) -> np.ndarray:
        """Spectral power (W/nm) reaching the fibre at each pixel wavelength."""
        setup = self.setup
        pixel_nm = self._pixel_nm
        spread_nm = setup.spectrometer_line_spread_fwhm_nm
        power_w = self._power_after_filter_w()
        laser_photon_rate = power_w / float(optics.photon_energy_j(self.laser_wavelength_nm))
        laser_line = optics.gaussian_band(pixel_nm, self.laser_wavelength_nm, spread_nm)
        film = self.preset.film
        plqy = self._plqy_at(self._beam_density_w_cm2())
        pl_bands = self._pl_bands()
        if self._sample_position == "stage":
            point = self._operating_point()
            led_spectrum = self._spectral_power_w_nm(
                pixel_nm,
                self._el_bands(point.voltage_v),
                self._led_photon_rate_per_s(point),
                spread_nm,
            )
            pl_spectrum = self._spectral_power_w_nm(
                pixel_nm, pl_bands, laser_photon_rate * film.absorptance_at_laser * plqy, spread_nm
            )
            return (
                setup.led_collection_fraction * led_spectrum
                + setup.pl_collection_fraction * pl_spectrum
                + setup.pl_laser_leakage_fraction * power_w * laser_line
            )
        # de Mello configurations: the sphere mixes everything; the fibre sees a fixed
        # fraction of the light in the sphere.
        absorptance = film.absorptance_at_laser
        diffuse_absorptance = absorptance * setup.sphere_diffuse_absorption_ratio
        if self._sample_position == "A":
            laser_left, absorbed_fraction = 1.0, 0.0
        elif self._sample_position == "B":
            laser_left, absorbed_fraction = 1.0 - diffuse_absorptance, diffuse_absorptance
        else:
            laser_left = (1.0 - absorptance) * (1.0 - diffuse_absorptance)
            absorbed_fraction = absorptance + (1.0 - absorptance) * diffuse_absorptance
        pl_spectrum = self._spectral_power_w_nm(
            pixel_nm, pl_bands, laser_photon_rate * absorbed_fraction * plqy, spread_nm
        )
        return setup.sphere_collection_fraction * (pl_spectrum + laser_left * power_w * laser_line)

    def spectrometer_counts(self, integration_time_s: float) -> np.ndarray:
        """Return one raw spectrum (counts per pixel) over an integration time.

        Dark offset + dark current + light, with shot and read noise and detector
        nonlinearity, rounded and clipped at `spectrometer_saturation_counts`. The state at
        the call is used for the whole integration (the caller waits out the time).
        """
        if integration_time_s <= 0:
            raise ValueError("integration time must be > 0")
        with self._lock:
            self._advance()
            setup = self.setup
            light_counts = (
                self._fibre_spectral_power_w_nm() * self._pixel_sensitivity * integration_time_s
            )
            dark_counts = self._pixel_dark_rate * integration_time_s
            generated = light_counts + dark_counts
            noise = self._rng.standard_normal((2, setup.spectrometer_pixels))
            generated = generated + noise[0] * np.sqrt(
                generated * setup.spectrometer_counts_per_electron
            )
            generated = np.maximum(generated, 0.0)
            # Nonlinear response of the photo-generated counts (not the electronic offset).
            generated = generated * (1.0 - self._nonlinearity_per_count * generated)
            raw = (
                self._pixel_dark_offset
                + generated
                + noise[1] * setup.spectrometer_read_noise_counts
            )
            return np.clip(np.rint(raw), 0.0, setup.spectrometer_saturation_counts)

    # --- persistence -------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Return the slow state (ageing history and noise state) as a JSON-able dict.

        The drive, laser and positions are not included: a resumed run sets them again.
        """
        with self._lock:
            self._advance()
            return {
                "format_version": STATE_FORMAT_VERSION,
                "preset": self.preset.name,
                "seed": self._seed,
                "ageing_acceleration": self._ageing_acceleration,
                "device_time_s": self._device_time_s,
                "led_reduced_age": self._led_reduced_age,
                "led_ion_migration": self._led_ion_migration,
                "led_segregation": self._led_segregation,
                "film_bleach_survival": self._film_bleach_survival,
                "film_segregation": self._film_segregation,
                "rng_state": self._rng.bit_generator.state,
            }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the slow state saved by `state_dict` (same preset required).

        Time between saving and loading does not age the device: the lazy integration
        restarts from the moment of loading. The acceleration factor is kept as it is.
        """
        if state.get("format_version") != STATE_FORMAT_VERSION:
            raise ValueError(f"unsupported world state format {state.get('format_version')!r}")
        if state.get("preset") != self.preset.name:
            raise ValueError(
                f"state is for preset {state.get('preset')!r}, world is {self.preset.name!r}"
            )
        with self._lock:
            self._device_time_s = float(state["device_time_s"])
            self._led_reduced_age = float(state["led_reduced_age"])
            self._led_ion_migration = float(state["led_ion_migration"])
            self._led_segregation = float(state["led_segregation"])
            self._film_bleach_survival = float(state["film_bleach_survival"])
            self._film_segregation = float(state["film_segregation"])
            if "rng_state" in state:
                self._rng.bit_generator.state = state["rng_state"]
            self._last_update_s = self._clock()

    def __repr__(self) -> str:
        return (
            f"World(preset={self.preset.name!r}, seed={self._seed}, "
            f"ageing_acceleration={self._ageing_acceleration:g})"
        )
