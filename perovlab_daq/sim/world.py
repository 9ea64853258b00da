"""Physics world of the simulated bench: a substrate of LED pixels, a film, a laser, detectors.

Every simulated instrument reads and writes one `World`, so the photodiode sees the LED the
source meter drives and the spectrometer sees the film the laser excites. The contract is
docs/architecture.md §1; the model, its parameters and the presets are docs/simulator.md.

`World` is the facade: it owns the lock, the clock, the noise generator and the persisted
state, and delegates the physics to one object per subsystem: the LED pixel
(:mod:`~perovlab_daq.sim.pixel`), the film (:mod:`~perovlab_daq.sim.film`), the laser path
(:mod:`~perovlab_daq.sim.beam`) and the spectrometer (:mod:`~perovlab_daq.sim.spectrometer`).

The substrate (:mod:`~perovlab_daq.sim.substrate`) holds N pixels, each its own device. On
a bench with a pixel switch the switch's closed channel decides which pixel the source
meter and the photodiode see (none closed: an open circuit); without one pixel ``1`` is
always connected. The switch powers on with the first pixel connected. Only the connected
pixel is driven, so only it ages.

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
from typing import Any

import numpy as np

from perovlab_daq.sim import optics
from perovlab_daq.sim.beam import SAMPLE_POSITIONS, LaserPath, SamplePosition
from perovlab_daq.sim.film import FilmSample
from perovlab_daq.sim.optics import BenchSetup
from perovlab_daq.sim.pixel import DriveMode, DriveSetting, LedPixel
from perovlab_daq.sim.presets import Preset, get_preset
from perovlab_daq.sim.readings import FilmTruth, LaserSetting, LedTruth, SmuReading
from perovlab_daq.sim.spectrometer import SpectrometerModel
from perovlab_daq.sim.substrate import PixelTruth, build_substrate
from perovlab_daq.sim.thermal import ThermalModel

log = logging.getLogger(__name__)

__all__ = [
    "SAMPLE_POSITIONS",
    "STATE_FORMAT_VERSION",
    "DriveMode",
    "DriveSetting",
    "FilmTruth",
    "LaserSetting",
    "LedTruth",
    "SamplePosition",
    "SmuReading",
    "World",
]

STATE_FORMAT_VERSION: int = 1

# Source-meter noise: a 2400-class reading at a medium NPLC.
_SMU_VOLTAGE_NOISE_RELATIVE = 2e-5
_SMU_VOLTAGE_NOISE_V = 20e-6
_SMU_CURRENT_NOISE_RELATIVE = 1e-4
_SMU_CURRENT_NOISE_A = 20e-12
_PHOTODIODE_NOISE_RELATIVE = 2e-4
_LASER_POWER_NOISE_RELATIVE = 1e-3


class World:
    """Physics of the simulated bench (see docs/architecture.md §1 and docs/simulator.md).

    Parameters
    ----------
    preset
        Preset name or `Preset` instance: the film on the stage and the LED pixel.
    seed
        Seed of the numpy Generators that draw every noise sample (the laser's power
        readback has its own stream): same seed and same call sequence give the same
        numbers, however often the laser power is polled.
    ageing_acceleration
        Device seconds per wall second for ageing, ion migration, photobleaching and halide
        segregation; settable later through the attribute.
    clock
        Wall clock in seconds (monotonic); inject a fake one to drive time in tests.
    setup
        Geometry, optics and calibration files: a `BenchSetup`, or a bench file's
        ``setup:`` mapping (see `BenchSetup.from_mapping`); defaults in `BenchSetup`.
    pixel_channels
        Pixel name -> switch channel of a bench with a pixel switch (substrate order);
        None: one pixel ``1``, always connected (no switch).
    faulty_pixels
        Pixel name -> "short" or "open".
    thermal
        Self-heating of the connected pixel (:mod:`~perovlab_daq.sim.thermal`; default
        `ThermalModel()`), read by a simulated thermometer through `device_temperature_c`.
    """

    def __init__(
        self,
        preset: str | Preset = "qd-in-matrix",
        *,
        seed: int = 0,
        ageing_acceleration: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        setup: BenchSetup | Mapping[str, Any] | None = None,
        pixel_channels: Mapping[str, str] | None = None,
        faulty_pixels: Mapping[str, str] | None = None,
        thermal: ThermalModel | None = None,
    ) -> None:
        self._lock = threading.RLock()
        self._thermal = thermal or ThermalModel()
        # Thermometer noise has a stream of its own: reading the temperature must not
        # shift the noise of the other instruments (a seed still reproduces a run).
        self._thermal_rng = np.random.default_rng(None if seed is None else [seed, 2])
        self.preset: Preset = get_preset(preset) if isinstance(preset, str) else preset
        if setup is None:
            setup = BenchSetup()
        elif not isinstance(setup, BenchSetup):
            setup = BenchSetup.from_mapping(setup)
        self.setup: BenchSetup = setup
        self._seed = seed
        self._rng = np.random.default_rng(seed)
        # The laser's power readback has a stream of its own: the OBIS start-up polls it
        # until the power is stable, a number of times that follows the wall clock, and
        # drawing those from the shared stream would shift every later spectrum's and
        # power reading's noise, so a seed would no longer reproduce a run.
        self._laser_rng = np.random.default_rng(None if seed is None else [seed, 1])
        self._clock = clock
        if ageing_acceleration <= 0:
            raise ValueError("ageing_acceleration must be > 0")
        self._ageing_acceleration = float(ageing_acceleration)
        self._last_update_s = clock()
        self._device_time_s = 0.0

        self.has_switch: bool = pixel_channels is not None
        self._channels: dict[str, str] = dict(pixel_channels or {})
        names = list(self._channels) if self.has_switch else ["1"]
        self._pixels, self._pixel_truths = build_substrate(
            self.preset,
            setup,
            names,
            seed=seed,
            channels=self._channels,
            faults={str(k): str(v) for k, v in (faulty_pixels or {}).items()},
        )
        self._open_circuit = LedPixel(self.preset, setup, fault="open")
        self._drive = self._open_circuit.drive
        # The switch's power-on setup (a 7001 restores a saved setup, :SYST:POS SAV0)
        # connects the first pixel, so a client that never switches measures pixel 1.
        self._connected: str | None = names[0]
        #: Every switch change: (closed channels, source output on at that moment).
        self.switch_history: list[tuple[tuple[str, ...], bool]] = []
        self._film = FilmSample(self.preset.film)
        self._beam = LaserPath(setup, clock=clock)
        self._spectrometer = SpectrometerModel(setup, seed)
        self._grid_responsivity_a_w = optics.interpolate_calibration(
            setup.photodiode_responsivity_csv, optics.MODEL_GRID_NM
        )
        self._grid_photopic = optics.photopic_on_model_grid()
        log.debug("World created: preset %s, seed %d", self.preset.name, seed)

    @property
    def _pixel(self) -> LedPixel:
        """The pixel the source meter sees (an open circuit when none is connected)."""
        if self._connected is None:
            return self._open_circuit
        return self._pixels[self._connected]

    # --- substrate and pixel switch ----------------------------------------------------

    @property
    def pixel_names(self) -> tuple[str, ...]:
        """Names of the substrate's pixels, in order."""
        return tuple(self._pixels)

    @property
    def closed_channels(self) -> tuple[str, ...]:
        """Switch channels closed now (the switch simulator starts from these)."""
        with self._lock:
            if not self.has_switch or self._connected is None:
                return ()
            return (self._channels[self._connected],)

    @property
    def connected_pixel(self) -> str | None:
        """Name of the pixel the switch connects (None: open circuit)."""
        with self._lock:
            return self._connected

    def set_switch_closed(self, channels: tuple[str, ...]) -> None:
        """Tell the world which switch channels are closed (the pixel switch calls this).

        One closed channel connects its pixel; none (or a channel with no pixel) leaves the
        source meter on an open circuit. Two closed channels would put pixels in parallel,
        which is not modelled: the first is connected and a warning logged. The drive
        moves with the connection; a pixel left behind is undriven and stops ageing.
        """
        with self._lock:
            self._advance()
            self.switch_history.append((tuple(channels), self._drive.output_on))
            if self._drive.output_on:
                log.warning("pixel switch changed with the source output on (%s)", channels)
            by_channel = {channel: name for name, channel in self._channels.items()}
            wired = [by_channel[c] for c in channels if c in by_channel]
            if len(wired) > 1:
                log.warning("pixels %s in parallel are not modelled; %s connected", wired, wired[0])
            self._pixel.drive = self._drive._replace(output_on=False)
            self._connected = wired[0] if wired else None
            self._pixel.drive = self._drive
            self._update_heating()

    def pixel_truth(self, name: str) -> PixelTruth:
        """Return how pixel ``name`` was made (spread, fault; tests and docs only)."""
        return self._pixel_truths[name]

    def _device(self, pixel: str | None) -> LedPixel:
        if pixel is None:
            return self._pixel if self._connected is not None else next(iter(self._pixels.values()))
        if pixel not in self._pixels:
            raise KeyError(f"no pixel {pixel!r} on the substrate ({', '.join(self._pixels)})")
        return self._pixels[pixel]

    # --- constants of the bench --------------------------------------------------------

    @property
    def laser_wavelength_nm(self) -> float:
        """Laser line (nm)."""
        return self._beam.wavelength_nm

    @property
    def laser_max_power_w(self) -> float:
        """Highest laser setpoint (W); higher setpoints are clipped to it."""
        return self._beam.max_power_w

    @property
    def laser_min_power_w(self) -> float:
        """Power the OBIS regulates from (W): setpoints below emit this."""
        return self._beam.min_power_w

    @property
    def filter_optical_densities(self) -> tuple[float, ...]:
        """Optical density of each filter-wheel position (position 1 first)."""
        return self._beam.filter_optical_densities

    @property
    def spectrometer_saturation_counts(self) -> float:
        """Highest raw count of the spectrometer."""
        return self._spectrometer.saturation_counts

    @property
    def spectrometer_integration_limits_s(self) -> tuple[float, float]:
        """Shortest and longest spectrometer integration time (s)."""
        return self._spectrometer.integration_limits_s

    @property
    def spectrometer_electric_dark_pixels(self) -> tuple[int, ...]:
        """Optically masked spectrometer pixels (indices)."""
        return self._spectrometer.electric_dark_pixels

    @property
    def ageing_constant(self) -> float:
        """C in the preset's acceleration law ``L0^n * T50 = C`` (cd^n m^-2n s)."""
        return self._device(None).ageing_constant

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
        self._pixel.integrate(elapsed_device_s)  # only the connected pixel is driven
        self._film.integrate(self._beam.film_dose_density_w_cm2(), elapsed_device_s)

    # --- ageing law --------------------------------------------------------------------

    def fresh_luminance_cd_m2(
        self, current_density_ma_cm2: float, pixel: str | None = None
    ) -> float:
        """Return the luminance of the fresh pixel at a junction current density.

        This is the L0 of the acceleration law for a constant-current run at that density.
        `pixel` names one (default: the connected pixel, or the first when none is).
        """
        return self._device(pixel).fresh_luminance_cd_m2(current_density_ma_cm2)

    def t50_device_s(self, current_density_ma_cm2: float, pixel: str | None = None) -> float:
        """Return T50 (device seconds) of a fresh pixel at a constant current density.

        From the pixel's acceleration law: T50 = C / L0^n with L0 the fresh luminance.
        `pixel` names one (default: the connected pixel, or the first when none is).
        """
        return self._device(pixel).t50_device_s(current_density_ma_cm2)

    # --- source meter, photodiode ------------------------------------------------------

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
            self._drive = DriveSetting(mode, float(level), float(compliance), bool(output_on))
            self._pixel.drive = self._drive
            self._update_heating()

    def _update_heating(self) -> None:
        """Hold the self-heating of the new operating point from now on (lock held)."""
        current_a = self._pixel.operating_point().current_a
        self._thermal.set_drive(self._clock(), self._pixel.current_density_ma_cm2(current_a))

    def device_temperature_c(self) -> float:
        """Return a thermometer reading of the connected pixel (C): self-heating plus noise."""
        with self._lock:
            temperature_c = self._thermal.advance(self._clock())
            return float(
                temperature_c + self._thermal_rng.standard_normal() * self._thermal.noise_c
            )

    @property
    def drive_setting(self) -> DriveSetting:
        """The source meter's present setting: ``world.set_drive(*setting)`` restores it."""
        with self._lock:
            return self._drive

    def smu_reading(self) -> SmuReading:
        """Return a noisy source-meter reading of the LED (voltage, current, compliance)."""
        with self._lock:
            self._advance()
            point = self._pixel.operating_point()
            noise = self._rng.standard_normal(2)
            voltage_v = point.voltage_v + noise[0] * (
                _SMU_VOLTAGE_NOISE_V + _SMU_VOLTAGE_NOISE_RELATIVE * abs(point.voltage_v)
            )
            current_a = point.current_a + noise[1] * (
                _SMU_CURRENT_NOISE_A + _SMU_CURRENT_NOISE_RELATIVE * abs(point.current_a)
            )
            return SmuReading(voltage_v, current_a, point.in_compliance)

    def photodiode_current_a(self) -> float:
        """Return the photodiode current (A): LED photocurrent + dark current + noise.

        The photodiode faces the LED on axis and collects F = r^2 / (r^2 + d^2) of its
        forward flux; it does not see the film or the laser.
        """
        with self._lock:
            self._advance()
            _, spectrum = self._pixel.spectrum_on_grid()
            photocurrent_a = self.setup.photodiode_collection_fraction * np.trapezoid(
                spectrum * self._grid_responsivity_a_w, optics.MODEL_GRID_NM
            )
            noise_a = self._rng.standard_normal() * (
                self.setup.photodiode_noise_a + _PHOTODIODE_NOISE_RELATIVE * photocurrent_a
            )
            return float(photocurrent_a + self.setup.photodiode_dark_current_a + noise_a)

    def led_truth(self, pixel: str | None = None) -> LedTruth:
        """Return the noise-free LED state (tests, documentation; never for procedures).

        `pixel` names one (default: the connected pixel, or the first when none is); a
        pixel that is not connected is undriven.
        """
        with self._lock:
            self._advance()
            pixel = self._device(pixel)
            point, spectrum = pixel.spectrum_on_grid()
            grid_nm = optics.MODEL_GRID_NM
            optical_power_w = float(np.trapezoid(spectrum, grid_nm))
            luminance = (
                optics.KM_LM_PER_W
                * float(np.trapezoid(spectrum * self._grid_photopic, grid_nm))
                / (math.pi * self.setup.device_area_m2)
            )
            photon_rate = pixel.photon_rate_per_s(point)
            eqe = (
                photon_rate * optics.ELEMENTARY_CHARGE_C / point.current_a
                if point.current_a > 0.0
                else 0.0
            )
            return LedTruth(
                voltage_v=point.voltage_v,
                current_a=point.current_a,
                in_compliance=point.in_compliance,
                current_density_ma_cm2=pixel.current_density_ma_cm2(point.current_a),
                eqe=eqe,
                luminance_cd_m2=luminance,
                optical_power_w=optical_power_w,
                el_peak_nm=pixel.el_bands(point.voltage_v)[0][0],
                relative_output=pixel.relative_output(pixel.reduced_age),
                reduced_age=pixel.reduced_age,
                voltage_rise_v=pixel.voltage_rise_v(),
            )

    # --- laser, filter wheel, power meter ----------------------------------------------

    def set_laser(self, power_setpoint_w: float, emission_on: bool) -> None:
        """Set the laser power setpoint (W, clipped to the laser's range) and emission."""
        if power_setpoint_w < 0:
            raise ValueError("laser power setpoint must be >= 0")
        with self._lock:
            self._advance()
            self._beam.setpoint_w = min(float(power_setpoint_w), self._beam.max_power_w)
            self._beam.emission_on = bool(emission_on)

    def set_laser_start_up(
        self, cdrh_enabled: bool, cdrh_delay_s: float, rise_time_s: float
    ) -> None:
        """Set how the laser leaves standby: CDRH delay (if on) and power rise time (s)."""
        with self._lock:
            self._advance()
            self._beam.cdrh_enabled = bool(cdrh_enabled)
            self._beam.cdrh_delay_s = float(cdrh_delay_s)
            self._beam.rise_time_s = float(rise_time_s)

    @property
    def laser_setting(self) -> LaserSetting:
        """The laser's present setting: ``world.set_laser(*setting)`` restores it."""
        with self._lock:
            return LaserSetting(self._beam.setpoint_w, self._beam.emission_on)

    def set_interlock(self, closed: bool) -> None:
        """Close or open the laser interlock (open stops emission)."""
        with self._lock:
            self._advance()
            self._beam.interlock_closed = bool(closed)

    @property
    def interlock_closed(self) -> bool:
        """Whether the laser interlock is closed."""
        with self._lock:
            return self._beam.interlock_closed

    @property
    def filter_position(self) -> int:
        """Current filter-wheel position (1-based)."""
        with self._lock:
            return self._beam.filter_position

    @property
    def sample_position(self) -> str:
        """Current sample position: "stage", "A", "B" or "C"."""
        with self._lock:
            return self._beam.sample_position

    def laser_output_w(self) -> float:
        """Return the power the laser emits (W): 0 when off or with the interlock open."""
        with self._lock:
            self._advance()
            power_w = self._beam.output_w()
            noise = self._laser_rng.standard_normal()
            return power_w * (1.0 + _LASER_POWER_NOISE_RELATIVE * noise)

    def set_filter_position(self, pos: int) -> None:
        """Move the ND filter wheel to a position (1 .. number of filters)."""
        count = len(self.filter_optical_densities)
        if not 1 <= int(pos) <= count:
            raise ValueError(f"filter position must be 1..{count}, not {pos}")
        with self._lock:
            self._advance()
            self._beam.filter_position = int(pos)

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
            true_w = self._beam.power_after_filter_w()
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
            self._beam.sample_position = pos

    def film_truth(self) -> FilmTruth:
        """Return the noise-free film state (tests, documentation; never for procedures)."""
        with self._lock:
            self._advance()
            beam = self._beam
            density = beam.film_dose_density_w_cm2()
            absorbed = 0.0
            if beam.sample_position != "A":
                absorbed = (
                    beam.power_after_filter_w()
                    / float(optics.photon_energy_j(beam.wavelength_nm))
                    * self.preset.film.absorptance_at_laser
                )
            return FilmTruth(
                excitation_density_w_cm2=density,
                plqy=self._film.plqy_at(beam.beam_density_w_cm2()),
                bleach_survival=self._film.bleach_survival,
                segregated_fraction=self._film.segregated_fraction,
                absorbed_photon_rate_per_s=absorbed,
            )

    # --- spectrometer ------------------------------------------------------------------

    def spectrometer_wavelengths_nm(self) -> np.ndarray:
        """Return the spectrometer's pixel wavelengths (nm), 1044 pixels, 350-950 nm."""
        return self._spectrometer.pixel_nm.copy()

    @property
    def spectrometer_nonlinearity_coefficients(self) -> tuple[float, ...]:
        """Return seabreeze-style coefficients: true = raw / poly(raw), raw above the offset."""
        return self._spectrometer.nonlinearity_coefficients

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
            spectrometer = self._spectrometer
            fibre_w_nm = spectrometer.fibre_spectral_power_w_nm(self._pixel, self._film, self._beam)
            return spectrometer.counts(fibre_w_nm, integration_time_s, self._rng)

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
                "led_reduced_age": self._device(None).reduced_age,
                "led_ion_migration": self._device(None).ion_migration,
                "led_segregation": self._device(None).segregated_fraction,
                "pixel_states": {
                    name: [p.reduced_age, p.ion_migration, p.segregated_fraction]
                    for name, p in self._pixels.items()
                },
                "film_bleach_survival": self._film.bleach_survival,
                "film_segregation": self._film.segregated_fraction,
                "rng_state": self._rng.bit_generator.state,
                "laser_rng_state": self._laser_rng.bit_generator.state,
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
            device = self._device(None)
            device.reduced_age = float(state["led_reduced_age"])
            device.ion_migration = float(state["led_ion_migration"])
            device.segregated_fraction = float(state["led_segregation"])
            for name, values in (state.get("pixel_states") or {}).items():
                if name in self._pixels:
                    pixel = self._pixels[name]
                    pixel.reduced_age, pixel.ion_migration, pixel.segregated_fraction = map(
                        float, values
                    )
            self._film.bleach_survival = float(state["film_bleach_survival"])
            self._film.segregated_fraction = float(state["film_segregation"])
            if "rng_state" in state:
                self._rng.bit_generator.state = state["rng_state"]
            if "laser_rng_state" in state:
                self._laser_rng.bit_generator.state = state["laser_rng_state"]
            self._last_update_s = self._clock()

    def __repr__(self) -> str:
        return (
            f"World(preset={self.preset.name!r}, seed={self._seed}, "
            f"ageing_acceleration={self._ageing_acceleration:g})"
        )
