"""The simulated spectrometer (QE Pro-like): what reaches its fibre and the raw counts it reads.

`SpectrometerModel` holds the detector of a bench set-up (pixel wavelengths, sensitivity
calibration, fixed-pattern dark, nonlinearity, saturation). It composes the spectral power
at the fibre from the LED pixel, the film and the laser path (PL stage or de Mello sphere)
and turns it into one noisy raw frame.
"""

from __future__ import annotations

import logging

import numpy as np

from perovlab_daq.sim import optics
from perovlab_daq.sim.beam import LaserPath
from perovlab_daq.sim.emission import spectral_power_w_nm
from perovlab_daq.sim.film import FilmSample
from perovlab_daq.sim.optics import BenchSetup
from perovlab_daq.sim.pixel import LedPixel

log = logging.getLogger(__name__)


class SpectrometerModel:
    """Detector and fibre of the simulated spectrometer.

    Parameters
    ----------
    setup
        The bench: pixel count and range, sensitivity CSV, dark, noise, saturation,
        collection fractions.
    seed
        Seed of the fixed-pattern dark (drawn from its own stream, so it does not shift
        the world's noise sequence).

    Attributes
    ----------
    pixel_nm
        Pixel wavelengths (nm).
    saturation_counts
        Highest raw count.
    integration_limits_s
        Shortest and longest integration time (s).
    electric_dark_pixels
        Optically masked pixels at the blue end, like a real CCD's electric-dark pixels.
    """

    def __init__(self, setup: BenchSetup, seed: int) -> None:
        self.setup = setup
        self.saturation_counts: float = setup.spectrometer_saturation_counts
        self.integration_limits_s: tuple[float, float] = (
            setup.spectrometer_min_integration_s,
            setup.spectrometer_max_integration_s,
        )
        self.electric_dark_pixels: tuple[int, ...] = (0, 1, 2, 3)
        self.pixel_nm = setup.spectrometer_wavelengths_nm()
        self._sensitivity = optics.interpolate_calibration(
            setup.spectrometer_sensitivity_csv, self.pixel_nm
        )
        self._sensitivity[list(self.electric_dark_pixels)] = 0.0
        pattern_rng = np.random.default_rng([seed, 7])
        self._dark_offset = setup.spectrometer_dark_offset_counts * (
            1.0 + 0.01 * pattern_rng.standard_normal(setup.spectrometer_pixels)
        )
        self._dark_rate = setup.spectrometer_dark_rate_counts_per_s * (
            1.0 + 0.3 * np.abs(pattern_rng.standard_normal(setup.spectrometer_pixels))
        )
        self._nonlinearity_per_count = (
            setup.spectrometer_nonlinearity_at_saturation / setup.spectrometer_saturation_counts
        )

    @property
    def nonlinearity_coefficients(self) -> tuple[float, ...]:
        """Return seabreeze-style coefficients: true = raw / poly(raw), raw above the offset.

        The detector responds as raw = true (1 - a true) above its electronic offset; these
        are the first terms of the inverse series.
        """
        per_count = self._nonlinearity_per_count
        return (1.0, -per_count, -(per_count**2), -2.0 * per_count**3)

    def fibre_spectral_power_w_nm(
        self, pixel: LedPixel, film: FilmSample, beam: LaserPath
    ) -> np.ndarray:
        """Return the spectral power (W/nm) reaching the fibre at each pixel wavelength.

        On the stage the fibre sees the LED, the film's PL and some laser light; in the
        sphere configurations A/B/C it sees a fixed fraction of the light in the sphere.
        """
        setup = self.setup
        pixel_nm = self.pixel_nm
        spread_nm = setup.spectrometer_line_spread_fwhm_nm
        power_w = beam.power_after_filter_w()
        laser_photon_rate = power_w / float(optics.photon_energy_j(beam.wavelength_nm))
        laser_line = optics.gaussian_band(pixel_nm, beam.wavelength_nm, spread_nm)
        plqy = film.plqy_at(beam.beam_density_w_cm2())
        pl_bands = film.pl_bands()
        absorptance = film.params.absorptance_at_laser
        if beam.sample_position == "stage":
            point = pixel.operating_point()
            led_spectrum = spectral_power_w_nm(
                pixel_nm,
                pixel.el_bands(point.voltage_v),
                pixel.photon_rate_per_s(point),
                spread_nm,
            )
            pl_spectrum = spectral_power_w_nm(
                pixel_nm, pl_bands, laser_photon_rate * absorptance * plqy, spread_nm
            )
            return (
                setup.led_collection_fraction * led_spectrum
                + setup.pl_collection_fraction * pl_spectrum
                + setup.pl_laser_leakage_fraction * power_w * laser_line
            )
        diffuse_absorptance = absorptance * setup.sphere_diffuse_absorption_ratio
        if beam.sample_position == "A":
            laser_left, absorbed_fraction = 1.0, 0.0
        elif beam.sample_position == "B":
            laser_left, absorbed_fraction = 1.0 - diffuse_absorptance, diffuse_absorptance
        else:
            laser_left = (1.0 - absorptance) * (1.0 - diffuse_absorptance)
            absorbed_fraction = absorptance + (1.0 - absorptance) * diffuse_absorptance
        pl_spectrum = spectral_power_w_nm(
            pixel_nm, pl_bands, laser_photon_rate * absorbed_fraction * plqy, spread_nm
        )
        return setup.sphere_collection_fraction * (pl_spectrum + laser_left * power_w * laser_line)

    def counts(
        self, spectral_power_w_nm: np.ndarray, integration_time_s: float, rng: np.random.Generator
    ) -> np.ndarray:
        """Return one raw frame (counts per pixel) of a fibre spectrum over an integration.

        Dark offset + dark current + light, with shot and read noise (drawn from `rng`)
        and detector nonlinearity, rounded and clipped at the saturation level.
        """
        setup = self.setup
        light_counts = spectral_power_w_nm * self._sensitivity * integration_time_s
        dark_counts = self._dark_rate * integration_time_s
        generated = light_counts + dark_counts
        noise = rng.standard_normal((2, setup.spectrometer_pixels))
        generated = generated + noise[0] * np.sqrt(
            generated * setup.spectrometer_counts_per_electron
        )
        generated = np.maximum(generated, 0.0)
        # Nonlinear response of the photo-generated counts (not the electronic offset).
        generated = generated * (1.0 - self._nonlinearity_per_count * generated)
        raw = self._dark_offset + generated + noise[1] * setup.spectrometer_read_noise_counts
        return np.clip(np.rint(raw), 0.0, setup.spectrometer_saturation_counts)
