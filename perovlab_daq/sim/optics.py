"""Physical set-up of the simulated bench: geometry, optics, calibration files, line shapes.

`BenchSetup` holds every constant of the bench that is not a property of the sample
(device area, photodiode geometry, laser spot, filter wheel, spectrometer). The bench file
passes it to :class:`perovlab_daq.sim.world.World`, and the procedures' analysis reads the
same numbers, so the simulated detectors and the formulas of REFERENCE §3 agree.

The calibration CSVs in ``sim_configs/calibration/`` are synthetic, smooth and plausible
(a generic Si photodiode; a QE Pro-like spectrometer); see ``docs/simulator.md``.
"""

from __future__ import annotations

import importlib.resources
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from scipy import constants

from perovlab_daq.calibration import load_calibration_csv

log = logging.getLogger(__name__)

PLANCK_J_S: float = constants.h
SPEED_OF_LIGHT_M_S: float = constants.c
ELEMENTARY_CHARGE_C: float = constants.e
#: Maximum luminous efficacy of radiation for photopic vision (lm/W).
KM_LM_PER_W: float = 683.0
#: FWHM = this factor times the Gaussian standard deviation.
FWHM_PER_SIGMA: float = 2.0 * math.sqrt(2.0 * math.log(2.0))

#: The calibration CSVs shipped in the ``perovlab_daq.sim_configs`` package (a real directory
#: in an installed wheel or a source checkout).
CALIBRATION_DIR: Path = (
    Path(str(importlib.resources.files("perovlab_daq.sim_configs"))) / "calibration"
)
DEFAULT_PHOTODIODE_RESPONSIVITY_CSV: Path = CALIBRATION_DIR / "photodiode_responsivity_si.csv"
DEFAULT_SPECTROMETER_SENSITIVITY_CSV: Path = CALIBRATION_DIR / "spectrometer_sensitivity_qepro.csv"

#: Wavelength grid (nm) on which the world integrates spectra for the photodiode and the
#: luminance: 0.5 nm steps are far finer than any band (FWHM >= 30 nm) or calibration curve.
MODEL_GRID_NM: np.ndarray = np.arange(300.0, 1100.0 + 0.25, 0.5)


@dataclass(frozen=True)
class BenchSetup:
    """Constants of the (simulated) bench that the world and the procedures' analysis share.

    Parameters
    ----------
    device_area_cm2
        Emitting area of one LED pixel (cm^2); [P2] used a 0.09 cm^2 mask.
    photodiode_radius_mm, photodiode_distance_mm
        On-axis photodiode radius r and distance d from the pixel; the detector collects
        F = r^2 / (r^2 + d^2) of a Lambertian emitter's forward flux (REFERENCE §3).
    photodiode_responsivity_csv
        Responsivity (A/W) against nm that the simulated photodiode obeys.
    photodiode_dark_current_a
        Dark current of the photodiode + picoammeter (A).
    photodiode_noise_a
        Fixed rms noise of a photocurrent reading (A); a relative noise adds on top.
    laser_wavelength_nm, laser_max_power_w, laser_min_power_w
        CW diode laser (OBIS 405 nm 100 mW class); the OBIS regulates from ~1 % of max.
    laser_spot_area_cm2
        Focused spot on the film at the PL stage. The default, 1.67e-4 cm^2 (about 146 um
        diameter), gives 600 W/cm^2 at 100 mW, the photostability condition of [P2].
    sphere_spot_area_cm2
        Unfocused beam spot on the sample in the integrating sphere (PLQY configurations).
        With 10 uW (1 mW through OD 2) it gives the 125 uW/cm^2 of [P1] Table 1.
    filter_optical_densities
        ND filter wheel optical density per position (position 1 first), assumed flat.
    spectrometer_pixels
        Detector pixels (QE Pro: 1044).
    spectrometer_first_nm, spectrometer_last_nm
        Wavelength of the first and last pixel; the calibration is mildly quadratic.
    spectrometer_sensitivity_csv
        Counts per second per pixel for 1 W/nm at the fibre, against nm.
    spectrometer_line_spread_fwhm_nm
        Instrument line-spread function (slit + optics), Gaussian FWHM in nm.
    spectrometer_saturation_counts
        Counts at which the ADC clips (QE Pro full scale ~200,000).
    spectrometer_dark_offset_counts, spectrometer_dark_rate_counts_per_s
        Electronic offset per pixel and dark-current counts per second (TE-cooled CCD).
    spectrometer_read_noise_counts
        Read noise rms per pixel per frame.
    spectrometer_counts_per_electron
        ADC gain, sets the shot noise: variance = counts x counts_per_electron.
    spectrometer_nonlinearity_at_saturation
        Fractional count deficit at full scale (raw = true (1 - a true)).
    spectrometer_min_integration_s, spectrometer_max_integration_s
        Integration-time limits (QE Pro: 8 ms to 60 min).
    led_collection_fraction
        Fraction of the LED's forward flux that the spectrometer fibre collects.
    pl_collection_fraction
        Fraction of the film's emitted PL that the fibre collects at the PL stage.
    pl_laser_leakage_fraction
        Fraction of the laser reaching the fibre at the PL stage (through a long-pass filter).
    sphere_collection_fraction
        Fraction of the light inside the integrating sphere that reaches the fibre port
        (spectrally flat sphere coating assumed).
    sphere_diffuse_absorption_ratio
        Fraction of the sample's direct-beam absorptance that it absorbs from the diffuse
        sphere light in configuration B (de Mello's mu = ratio x A).
    power_meter_noise_relative, power_meter_noise_w
        Power meter relative rms noise and noise floor (W).
    """

    device_area_cm2: float = 0.09
    photodiode_radius_mm: float = 5.0
    photodiode_distance_mm: float = 20.0
    photodiode_responsivity_csv: Path = DEFAULT_PHOTODIODE_RESPONSIVITY_CSV
    photodiode_dark_current_a: float = 2.0e-12
    photodiode_noise_a: float = 5.0e-14
    laser_wavelength_nm: float = 405.0
    laser_max_power_w: float = 0.100
    laser_min_power_w: float = 0.001
    laser_spot_area_cm2: float = 1.667e-4
    sphere_spot_area_cm2: float = 0.08
    filter_optical_densities: tuple[float, ...] = (0.0, 0.5, 1.0, 2.0, 3.0, 4.0)
    spectrometer_pixels: int = 1044
    spectrometer_first_nm: float = 350.0
    spectrometer_last_nm: float = 950.0
    spectrometer_sensitivity_csv: Path = DEFAULT_SPECTROMETER_SENSITIVITY_CSV
    spectrometer_line_spread_fwhm_nm: float = 1.5
    spectrometer_saturation_counts: float = 200_000.0
    spectrometer_dark_offset_counts: float = 1500.0
    spectrometer_dark_rate_counts_per_s: float = 20.0
    spectrometer_read_noise_counts: float = 6.0
    spectrometer_counts_per_electron: float = 1.0
    spectrometer_nonlinearity_at_saturation: float = 0.03
    spectrometer_min_integration_s: float = 0.008
    spectrometer_max_integration_s: float = 3600.0
    led_collection_fraction: float = 1.0e-5
    pl_collection_fraction: float = 1.0e-6
    pl_laser_leakage_fraction: float = 1.0e-9
    sphere_collection_fraction: float = 2.0e-5
    sphere_diffuse_absorption_ratio: float = 0.25
    power_meter_noise_relative: float = 2.0e-3
    power_meter_noise_w: float = 1.0e-10

    @property
    def device_area_m2(self) -> float:
        """Return the pixel area in m^2."""
        return self.device_area_cm2 * 1e-4

    @property
    def photodiode_collection_fraction(self) -> float:
        """Return F = r^2 / (r^2 + d^2), the forward-flux fraction on the photodiode."""
        radius_sq = self.photodiode_radius_mm**2
        return radius_sq / (radius_sq + self.photodiode_distance_mm**2)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> BenchSetup:
        """Build a set-up from a bench file's ``setup:`` mapping (defaults for the rest).

        Parameters
        ----------
        values
            Field names of this class; the bench-file names ``responsivity_file`` and
            ``spectrometer_sensitivity_file`` are accepted for the two calibration CSVs.

        Raises
        ------
        ValueError
            On an unknown key (a misspelt constant must not silently fall back).
        """
        known = {f.name for f in fields(cls)}
        kwargs: dict[str, Any] = {}
        for key, value in values.items():
            name = _SETUP_ALIASES.get(key, key)
            if name not in known:
                allowed = ", ".join(sorted(known | set(_SETUP_ALIASES)))
                raise ValueError(f"unknown set-up entry {key!r} (allowed: {allowed})")
            if name.endswith("_csv"):
                value = Path(value)
            elif name == "filter_optical_densities":
                value = tuple(float(od) for od in value)
            elif name == "spectrometer_pixels":
                value = int(value)
            else:
                value = float(value)
            kwargs[name] = value
        return cls(**kwargs)

    def spectrometer_wavelengths_nm(self) -> np.ndarray:
        """Return the pixel wavelengths (nm), a gently quadratic calibration like a real unit.

        The quadratic term makes the pixel pitch vary from about 0.60 nm (blue) to about
        0.55 nm (red), so analysis code must use the returned axis, not a uniform one.
        """
        pixel = np.arange(self.spectrometer_pixels, dtype=float)
        span = self.spectrometer_last_nm - self.spectrometer_first_nm
        last = self.spectrometer_pixels - 1
        # Chosen so pixel 0 and the last pixel land exactly on the configured end points.
        curvature = -0.08 * span / last**2
        linear = span / last - curvature * last
        return self.spectrometer_first_nm + linear * pixel + curvature * pixel**2


#: Bench-file names of set-up entries that differ from the field names.
_SETUP_ALIASES: dict[str, str] = {
    "responsivity_file": "photodiode_responsivity_csv",
    "spectrometer_sensitivity_file": "spectrometer_sensitivity_csv",
}


def interpolate_calibration(path: Path | str, wavelength_nm: np.ndarray) -> np.ndarray:
    """Interpolate a calibration curve onto wavelengths, zero outside its range."""
    cal_nm, cal_values = _cached_calibration(str(path))
    return np.interp(wavelength_nm, cal_nm, cal_values, left=0.0, right=0.0)


@lru_cache(maxsize=8)
def _cached_calibration(path: str) -> tuple[np.ndarray, np.ndarray]:
    return load_calibration_csv(path)


@lru_cache(maxsize=1)
def photopic_on_model_grid() -> np.ndarray:
    """Return the CIE 1924 photopic V(lambda) on `MODEL_GRID_NM` (zero outside 360-830 nm)."""
    # Imported here: colour-science takes ~1 s to import and only the luminance needs it.
    import colour

    photopic = colour.SDS_LEFS["CIE 1924 Photopic Standard Observer"]
    return np.interp(MODEL_GRID_NM, photopic.wavelengths, photopic.values, left=0.0, right=0.0)


def gaussian_band(wavelength_nm: np.ndarray, peak_nm: float, fwhm_nm: float) -> np.ndarray:
    """Return a Gaussian spectral power shape normalised to unit area over nm.

    The shape is Gaussian in spectral power against wavelength, so a spectrum measured
    in W/nm (sensitivity-corrected counts) shows exactly this peak and FWHM.
    """
    sigma_nm = fwhm_nm / FWHM_PER_SIGMA
    return np.exp(-0.5 * ((wavelength_nm - peak_nm) / sigma_nm) ** 2) / (
        sigma_nm * math.sqrt(2.0 * math.pi)
    )


def photon_energy_j(wavelength_nm: float | np.ndarray) -> float | np.ndarray:
    """Return the photon energy h c / lambda (J)."""
    return PLANCK_J_S * SPEED_OF_LIGHT_M_S / (np.asarray(wavelength_nm) * 1e-9)
