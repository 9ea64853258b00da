"""Emission spectra and slow relaxation shared by the simulated LED pixel and film.

An emission is a list of Gaussian bands ``(peak_nm, fwhm_nm, weight)`` whose weights split a
photon rate; halide segregation turns one parent band into the parent plus iodide-rich
bands. The slow processes (ion migration, segregation) relax exponentially towards an
equilibrium over each integration step. Pure functions on numbers and arrays.
"""

from __future__ import annotations

import logging
import math

import numpy as np

from perovlab_daq.sim import optics
from perovlab_daq.sim.presets import EmissionBand, SegregationParameters

log = logging.getLogger(__name__)

#: One emission band: (peak_nm, fwhm_nm, share of the photons).
Band = tuple[float, float, float]


def smoothstep(fraction: float) -> float:
    """Return the cubic smooth step 3x^2 - 2x^3 of a fraction clipped to [0, 1]."""
    clipped = min(max(fraction, 0.0), 1.0)
    return clipped * clipped * (3.0 - 2.0 * clipped)


def relax(value: float, equilibrium: float, rate_per_s: float, dt_s: float) -> float:
    """Exact solution of dx/dt = -rate (x - equilibrium) over dt at a constant rate."""
    return equilibrium + (value - equilibrium) * math.exp(-rate_per_s * dt_s)


def segregate(
    fraction: float, drive_rate: float, params: SegregationParameters, dt_s: float
) -> float:
    """Advance a segregated fraction over dt: driven towards saturation, remixing in the dark.

    Parameters
    ----------
    fraction
        Segregated fraction now.
    drive_rate
        Segregation rate (1/s) from the light or current now.
    params
        The film's segregation parameters.
    dt_s
        Device time step (s).
    """
    recovery_rate = 1.0 / params.dark_recovery_time_s
    total_rate = drive_rate + recovery_rate
    equilibrium = params.max_fraction * drive_rate / total_rate
    return relax(fraction, equilibrium, total_rate, dt_s)


def emission_bands(
    parent: EmissionBand, fraction: float, params: SegregationParameters | None
) -> list[Band]:
    """Return the bands of an emission whose parent band may be partly segregated.

    Parameters
    ----------
    parent
        The unsegregated band.
    fraction
        Segregated fraction of the emission (ignored without `params`).
    params
        Segregation parameters, or None: the parent band alone.
    """
    if params is None:
        return [(parent.peak_nm, parent.fwhm_nm, 1.0)]
    parent_peak_nm = parent.peak_nm + params.parent_shift_nm * fraction / params.max_fraction
    bands = [(parent_peak_nm, parent.fwhm_nm, 1.0 - fraction)]
    for band, weight in zip(params.segregated_bands, params.segregated_weights, strict=True):
        bands.append((band.peak_nm, band.fwhm_nm, fraction * weight))
    return bands


def spectral_power_w_nm(
    wavelength_nm: np.ndarray,
    bands: list[Band],
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
