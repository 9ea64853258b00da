"""LED efficiency from photodiode and spectrometer readings: luminance, EQE, cd/A, lm/W, CIE xy.

Implements the formulas of REFERENCE section 3 for a Lambertian emitter seen by an
on-axis photodiode of radius r at distance d, which collects the fraction
F = r^2 / (r^2 + d^2) of the forward flux. ``spectrum`` is always a relative spectral
power on ``wavelength_nm`` (dark-subtracted counts times the sensitivity calibration,
see :func:`perovlab_daq.analysis.spectra.calibrate_spectrum`), never raw counts; only
its shape matters, so any scale works. Integrals over wavelength use the trapezoidal
rule on the caller's grid, which need not be uniform. V(lambda) and the CIE 1931
colour-matching functions come from colour-science (see ``_cie``).

All functions are pure and vectorised: photocurrents, currents and luminances may be
arrays of any shape (one spectrum shared by all of them).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy import constants

from perovlab_daq.analysis import _cie
from perovlab_daq.analysis._validation import (
    FloatArray,
    as_float_array,
    as_positive,
    as_positive_scalar,
    as_spectrum,
    as_wavelength_grid,
    broadcast_same_shape,
    require_positive_result,
)

log = logging.getLogger(__name__)

#: Maximum luminous efficacy of radiation for photopic vision (lm/W), by definition of
#: the candela at 540 THz (555 nm).
K_M_LM_PER_W = 683.0

_Q = constants.e
_H = constants.h
_C = constants.c
_NM = 1e-9
#: 1 mA/cm^2 = 10 A/m^2
_A_M2_PER_MA_CM2 = 10.0
_M2_PER_CM2 = 1e-4
_NO_SPECTRUM = "pass wavelength_nm and spectrum together (or neither)"
#: Grid (nm) of the nominal EL band used when no spectrum was measured.
NOMINAL_GRID_NM = np.arange(350.0, 1000.0 + 0.25, 0.5)


def _integrate(values: FloatArray, wavelength_nm: FloatArray) -> FloatArray:
    """Integrate over the last axis (the wavelength axis) with the trapezoidal rule."""
    return np.trapezoid(values, wavelength_nm, axis=-1)


def _scalar_or_array(value: FloatArray) -> FloatArray | float:
    """Return a Python float for 0-d results so notebook output stays readable."""
    return float(value) if np.ndim(value) == 0 else value


def collected_fraction(pd_radius_mm: float, pd_distance_mm: float) -> float:
    """Return the fraction of a Lambertian emitter's forward flux hitting an on-axis photodiode.

    Parameters
    ----------
    pd_radius_mm : float
        Radius of the photodiode's active area (mm), > 0.
    pd_distance_mm : float
        Distance from the emitting pixel to the photodiode (mm), > 0.

    Returns
    -------
    float
        F = r^2 / (r^2 + d^2) (dimensionless, 0 < F < 1). A small-pixel approximation:
        the emitting area must be small compared with d.
    """
    radius = as_positive_scalar("pd_radius_mm", pd_radius_mm, "mm")
    distance = as_positive_scalar("pd_distance_mm", pd_distance_mm, "mm")
    return radius**2 / (radius**2 + distance**2)


def current_density_ma_cm2(current_a: ArrayLike, area_cm2: float) -> FloatArray | float:
    """Return the current density J = I / A in mA/cm^2.

    Parameters
    ----------
    current_a : array_like
        Device current (A), any sign (reverse bias gives negative J).
    area_cm2 : float
        Emitting (overlap or masked) area (cm^2), > 0; 0.09 cm^2 in [P2].

    Returns
    -------
    float or numpy.ndarray
        J in mA/cm^2, same shape as ``current_a``.
    """
    current = as_float_array("current_a", current_a)
    area = as_positive_scalar("area_cm2", area_cm2, "cm^2")
    return _scalar_or_array(current * 1e3 / area)


def _photodiode_inputs(
    photocurrent_a: ArrayLike,
    wavelength_nm: ArrayLike,
    spectrum: ArrayLike,
    responsivity_a_per_w: ArrayLike,
    pd_radius_mm: float,
    pd_distance_mm: float,
) -> tuple[FloatArray, FloatArray, FloatArray, float, float]:
    """Validate the common arguments; return photocurrent, grid, spectrum, int(S R), F."""
    photocurrent = as_float_array("photocurrent_a", photocurrent_a)
    grid = as_wavelength_grid("wavelength_nm", wavelength_nm)
    relative_spectrum = as_spectrum("spectrum", spectrum, grid, allow_2d=False)
    responsivity = as_spectrum("responsivity_a_per_w", responsivity_a_per_w, grid, allow_2d=False)
    if (responsivity < 0).any():
        raise ValueError(
            "responsivity_a_per_w must be >= 0 A/W at every wavelength; "
            f"got minimum {responsivity.min():g}"
        )
    fraction = collected_fraction(pd_radius_mm, pd_distance_mm)
    spectral_current = float(_integrate(relative_spectrum * responsivity, grid))
    require_positive_result(
        "spectrum, responsivity_a_per_w",
        spectral_current,
        "the integral of spectrum x responsivity (the photodiode must see the emission)",
    )
    return photocurrent, grid, relative_spectrum, spectral_current, fraction


def optical_power_from_photocurrent(
    photocurrent_a: ArrayLike,
    wavelength_nm: ArrayLike,
    spectrum: ArrayLike,
    responsivity_a_per_w: ArrayLike,
    pd_radius_mm: float,
    pd_distance_mm: float,
) -> FloatArray | float:
    """Return the forward optical power of a Lambertian emitter from the photocurrent.

    P = (I_PD / F) * int(S) / int(S R) (REFERENCE section 3).

    Parameters
    ----------
    photocurrent_a : array_like
        Dark-subtracted photodiode current (A); taken with its sign, so pass
        ``abs()`` if your wiring reads light as negative.
    wavelength_nm : array_like
        Strictly increasing wavelength grid (nm), 1-D.
    spectrum : array_like
        Relative spectral power of the emission on ``wavelength_nm`` (any scale).
    responsivity_a_per_w : array_like
        Photodiode responsivity (A/W) on ``wavelength_nm``, >= 0.
    pd_radius_mm, pd_distance_mm : float
        Photodiode radius and distance from the pixel (mm), > 0.

    Returns
    -------
    float or numpy.ndarray
        Optical power emitted into the forward hemisphere (W), shape of ``photocurrent_a``.
    """
    photocurrent, grid, relative_spectrum, spectral_current, fraction = _photodiode_inputs(
        photocurrent_a, wavelength_nm, spectrum, responsivity_a_per_w, pd_radius_mm, pd_distance_mm
    )
    spectral_power = float(_integrate(relative_spectrum, grid))
    return _scalar_or_array(photocurrent / fraction * spectral_power / spectral_current)


def luminance_from_photocurrent(
    photocurrent_a: ArrayLike,
    wavelength_nm: ArrayLike,
    spectrum: ArrayLike,
    responsivity_a_per_w: ArrayLike,
    area_cm2: float,
    pd_radius_mm: float,
    pd_distance_mm: float,
) -> FloatArray | float:
    """Return the luminance (cd/m^2) of a Lambertian pixel from the photodiode current.

    L = K_m (I_PD / F) int(S V) / int(S R) / (pi A), with K_m = 683 lm/W and
    F = r^2 / (r^2 + d^2) (REFERENCE section 3).

    Parameters
    ----------
    photocurrent_a : array_like
        Dark-subtracted photodiode current (A), any shape; taken with its sign.
    wavelength_nm : array_like
        Strictly increasing wavelength grid (nm), 1-D.
    spectrum : array_like
        Relative spectral power of the emission on ``wavelength_nm`` (any scale; shared
        by every photocurrent).
    responsivity_a_per_w : array_like
        Photodiode responsivity (A/W) on ``wavelength_nm``, >= 0.
    area_cm2 : float
        Emitting area (cm^2), > 0.
    pd_radius_mm, pd_distance_mm : float
        Photodiode radius and distance from the pixel (mm), > 0.

    Returns
    -------
    float or numpy.ndarray
        Luminance in cd/m^2, shape of ``photocurrent_a``.

    Examples
    --------
    >>> import numpy as np
    >>> wl = np.arange(500.0, 611.0)
    >>> line = np.where(wl == 555.0, 1.0, 0.0)
    >>> flat = np.full(wl.size, 0.3)  # A/W
    >>> round(luminance_from_photocurrent(0.3e-6, wl, line, flat, 0.09, 5.0, 50.0), 1)
    2439.8
    """
    photocurrent, grid, relative_spectrum, spectral_current, fraction = _photodiode_inputs(
        photocurrent_a, wavelength_nm, spectrum, responsivity_a_per_w, pd_radius_mm, pd_distance_mm
    )
    area_m2 = as_positive_scalar("area_cm2", area_cm2, "cm^2") * _M2_PER_CM2
    photopic = float(_integrate(relative_spectrum * _cie.photopic_on_grid(grid), grid))
    luminance = K_M_LM_PER_W * photocurrent / fraction * photopic / spectral_current
    return _scalar_or_array(luminance / (math.pi * area_m2))


def radiance_from_photocurrent(
    photocurrent_a: ArrayLike,
    wavelength_nm: ArrayLike,
    spectrum: ArrayLike,
    responsivity_a_per_w: ArrayLike,
    area_cm2: float,
    pd_radius_mm: float,
    pd_distance_mm: float,
) -> FloatArray | float:
    """Return the radiance (W sr^-1 m^-2) of a Lambertian pixel from the photodiode current.

    L_e = (I_PD / F) int(S) / int(S R) / (pi A) (REFERENCE section 3); the figure of
    merit for near-infrared devices, where V(lambda) ~ 0 makes luminance meaningless.
    Parameters as for :func:`luminance_from_photocurrent`.

    Returns
    -------
    float or numpy.ndarray
        Radiance in W sr^-1 m^-2, shape of ``photocurrent_a``.
    """
    power_w = optical_power_from_photocurrent(
        photocurrent_a, wavelength_nm, spectrum, responsivity_a_per_w, pd_radius_mm, pd_distance_mm
    )
    area_m2 = as_positive_scalar("area_cm2", area_cm2, "cm^2") * _M2_PER_CM2
    return _scalar_or_array(np.asarray(power_w) / (math.pi * area_m2))


def eqe_from_photocurrent(
    photocurrent_a: ArrayLike,
    current_a: ArrayLike,
    wavelength_nm: ArrayLike,
    spectrum: ArrayLike,
    responsivity_a_per_w: ArrayLike,
    pd_radius_mm: float,
    pd_distance_mm: float,
) -> FloatArray | float:
    """Return the external quantum efficiency (%) from the photodiode and device currents.

    eta = (q / (h c)) (I_PD / F) int(S lambda) / int(S R) / I (REFERENCE section 3):
    photons emitted forward per electron injected.

    Parameters
    ----------
    photocurrent_a : array_like
        Dark-subtracted photodiode current (A); taken with its sign.
    current_a : array_like
        Device current (A), > 0 everywhere (EQE is undefined without forward
        injection: select the forward-bias part of a sweep first, e.g.
        ``mask = current_a > 0``). Broadcast against ``photocurrent_a``.
    wavelength_nm : array_like
        Strictly increasing wavelength grid (nm), 1-D.
    spectrum : array_like
        Relative spectral power of the emission on ``wavelength_nm`` (any scale).
    responsivity_a_per_w : array_like
        Photodiode responsivity (A/W) on ``wavelength_nm``, >= 0.
    pd_radius_mm, pd_distance_mm : float
        Photodiode radius and distance from the pixel (mm), > 0.

    Returns
    -------
    float or numpy.ndarray
        EQE in percent.
    """
    photocurrent, grid, relative_spectrum, spectral_current, fraction = _photodiode_inputs(
        photocurrent_a, wavelength_nm, spectrum, responsivity_a_per_w, pd_radius_mm, pd_distance_mm
    )
    current = as_positive("current_a", current_a, "A")
    photocurrent, current = broadcast_same_shape(photocurrent_a=photocurrent, current_a=current)
    photon_weighted = float(_integrate(relative_spectrum * grid * _NM, grid))
    photons_per_s = photocurrent / fraction * photon_weighted / spectral_current / (_H * _C)
    return _scalar_or_array(100.0 * _Q * photons_per_s / current)


def _radiance_on_grid(
    wavelength_nm: ArrayLike, spectral_radiance_w_sr_m2_nm: ArrayLike
) -> tuple[FloatArray, FloatArray]:
    """Validate a wavelength grid and the spectral radiance (1-D or one row per spectrum) on it."""
    grid = as_wavelength_grid("wavelength_nm", wavelength_nm)
    radiance = as_spectrum(
        "spectral_radiance_w_sr_m2_nm", spectral_radiance_w_sr_m2_nm, grid, allow_2d=True
    )
    return grid, radiance


def _luminance_and_current_density(
    luminance_cd_m2: ArrayLike, current_density_ma_cm2: ArrayLike
) -> tuple[FloatArray, ...]:
    """Validate luminance and (> 0) current density and broadcast them together."""
    luminance = as_float_array("luminance_cd_m2", luminance_cd_m2)
    current_density = as_positive("current_density_ma_cm2", current_density_ma_cm2, "mA/cm^2")
    return broadcast_same_shape(luminance_cd_m2=luminance, current_density_ma_cm2=current_density)


def luminance_from_radiance(
    wavelength_nm: ArrayLike, spectral_radiance_w_sr_m2_nm: ArrayLike
) -> FloatArray | float:
    """Return luminance (cd/m^2) from a radiometrically calibrated spectral radiance.

    L = K_m int(L_e,lambda V(lambda) dlambda) (REFERENCE section 3).

    Parameters
    ----------
    wavelength_nm : array_like
        Strictly increasing wavelength grid (nm), 1-D.
    spectral_radiance_w_sr_m2_nm : array_like
        Spectral radiance (W sr^-1 m^-2 nm^-1) on ``wavelength_nm``; 1-D, or 2-D with
        one spectrum per row.

    Returns
    -------
    float or numpy.ndarray
        Luminance in cd/m^2 (one value per row for 2-D input).
    """
    grid, radiance = _radiance_on_grid(wavelength_nm, spectral_radiance_w_sr_m2_nm)
    photopic = _cie.photopic_on_grid(grid)
    return _scalar_or_array(K_M_LM_PER_W * _integrate(radiance * photopic, grid))


def eqe_from_radiance(
    wavelength_nm: ArrayLike,
    spectral_radiance_w_sr_m2_nm: ArrayLike,
    current_density_ma_cm2: ArrayLike,
) -> FloatArray | float:
    """Return EQE (%) of a Lambertian emitter from its calibrated spectral radiance.

    Photon flux per area N/A = pi int(L_e,lambda lambda / (h c)), eta = q (N/A) / J
    (REFERENCE section 3). Works for near-infrared emitters too.

    Parameters
    ----------
    wavelength_nm : array_like
        Strictly increasing wavelength grid (nm), 1-D.
    spectral_radiance_w_sr_m2_nm : array_like
        Spectral radiance (W sr^-1 m^-2 nm^-1); 1-D, or 2-D with one spectrum per row.
    current_density_ma_cm2 : array_like
        Current density (mA/cm^2), > 0; one per spectrum row (or a scalar).

    Returns
    -------
    float or numpy.ndarray
        EQE in percent.
    """
    grid, radiance = _radiance_on_grid(wavelength_nm, spectral_radiance_w_sr_m2_nm)
    current_density = as_positive("current_density_ma_cm2", current_density_ma_cm2, "mA/cm^2")
    photon_flux_m2 = math.pi * _integrate(radiance * grid * _NM, grid) / (_H * _C)
    photon_flux_m2, current_density = broadcast_same_shape(
        spectral_radiance_w_sr_m2_nm=photon_flux_m2, current_density_ma_cm2=current_density
    )
    return _scalar_or_array(100.0 * _Q * photon_flux_m2 / (current_density * _A_M2_PER_MA_CM2))


def eqe_from_luminance(
    luminance_cd_m2: ArrayLike,
    current_density_ma_cm2: ArrayLike,
    wavelength_nm: ArrayLike,
    spectrum: ArrayLike,
) -> FloatArray | float:
    """Return EQE (%) of a Lambertian emitter from its luminance and relative spectrum.

    eta = pi q L int(S lambda) / (K_m h c J int(S V)) (REFERENCE section 3): the
    spectrum converts luminance back into photon flux.

    Parameters
    ----------
    luminance_cd_m2 : array_like
        Luminance (cd/m^2), any sign (noise near zero is allowed).
    current_density_ma_cm2 : array_like
        Current density (mA/cm^2), > 0; broadcast against ``luminance_cd_m2``.
    wavelength_nm : array_like
        Strictly increasing wavelength grid (nm), 1-D.
    spectrum : array_like
        Relative spectral power of the emission (any scale), 1-D; must overlap
        V(lambda) (for near-infrared devices use :func:`eqe_from_radiance`).

    Returns
    -------
    float or numpy.ndarray
        EQE in percent.
    """
    luminance, current_density = _luminance_and_current_density(
        luminance_cd_m2, current_density_ma_cm2
    )
    grid = as_wavelength_grid("wavelength_nm", wavelength_nm)
    relative_spectrum = as_spectrum("spectrum", spectrum, grid, allow_2d=False)
    photopic = float(_integrate(relative_spectrum * _cie.photopic_on_grid(grid), grid))
    require_positive_result(
        "spectrum", photopic, "its overlap with V(lambda) (the emission must be visible)"
    )
    photon_weighted = float(_integrate(relative_spectrum * grid * _NM, grid))
    eqe = (
        math.pi
        * _Q
        * luminance
        * photon_weighted
        / (K_M_LM_PER_W * _H * _C * current_density * _A_M2_PER_MA_CM2 * photopic)
    )
    return _scalar_or_array(100.0 * eqe)


def current_efficiency_cd_a(
    luminance_cd_m2: ArrayLike, current_density_ma_cm2: ArrayLike
) -> FloatArray | float:
    """Return the current efficiency L / J in cd/A (J converted to A/m^2).

    Parameters
    ----------
    luminance_cd_m2 : array_like
        Luminance (cd/m^2).
    current_density_ma_cm2 : array_like
        Current density (mA/cm^2), > 0; broadcast against ``luminance_cd_m2``.

    Returns
    -------
    float or numpy.ndarray
        Current efficiency in cd/A.
    """
    luminance, current_density = _luminance_and_current_density(
        luminance_cd_m2, current_density_ma_cm2
    )
    return _scalar_or_array(luminance / (current_density * _A_M2_PER_MA_CM2))


def luminous_efficacy_lm_w(
    luminance_cd_m2: ArrayLike, current_density_ma_cm2: ArrayLike, voltage_v: ArrayLike
) -> FloatArray | float:
    """Return the luminous (power) efficacy pi (cd/A) / V in lm/W of a Lambertian emitter.

    Parameters
    ----------
    luminance_cd_m2 : array_like
        Luminance (cd/m^2).
    current_density_ma_cm2 : array_like
        Current density (mA/cm^2), > 0.
    voltage_v : array_like
        Drive voltage (V), > 0.

    Returns
    -------
    float or numpy.ndarray
        Luminous efficacy in lm/W.
    """
    efficiency = np.asarray(current_efficiency_cd_a(luminance_cd_m2, current_density_ma_cm2))
    voltage = as_positive("voltage_v", voltage_v, "V")
    efficiency, voltage = broadcast_same_shape(luminance_cd_m2=efficiency, voltage_v=voltage)
    return _scalar_or_array(math.pi * efficiency / voltage)


def cie_xy(wavelength_nm: ArrayLike, spectrum: ArrayLike) -> tuple[Any, Any]:
    """Return the CIE 1931 (2-degree observer) chromaticity x, y of a spectrum.

    X = int(S xbar), Y = int(S ybar), Z = int(S zbar); x = X / (X+Y+Z),
    y = Y / (X+Y+Z) (REFERENCE section 3).

    Parameters
    ----------
    wavelength_nm : array_like
        Strictly increasing wavelength grid (nm), 1-D.
    spectrum : array_like
        Relative spectral power (any scale); 1-D, or 2-D with one spectrum per row.

    Returns
    -------
    tuple
        (x, y): floats for a 1-D spectrum, arrays (one per row) for 2-D input.
    """
    grid = as_wavelength_grid("wavelength_nm", wavelength_nm)
    relative_spectrum = as_spectrum("spectrum", spectrum, grid, allow_2d=True)
    tristimulus = np.trapezoid(
        relative_spectrum[..., :, None] * _cie.cmfs_on_grid(grid), grid, axis=-2
    )
    total = tristimulus.sum(axis=-1)
    require_positive_result(
        "spectrum", total, "X + Y + Z (the spectrum must overlap 360-830 nm and be positive)"
    )
    x = tristimulus[..., 0] / total
    y = tristimulus[..., 1] / total
    return _scalar_or_array(x), _scalar_or_array(y)


def _interpolate_at_current_density(
    current_density: FloatArray, values: FloatArray, target: float
) -> float:
    """Interpolate ``values`` (in ln J) where the sweep first reaches ``target`` J, else NaN."""
    below = current_density[:-1]
    above = current_density[1:]
    crossing = np.flatnonzero((below > 0) & (below <= target) & (above >= target))
    exact = np.flatnonzero(current_density == target)
    if exact.size and (not crossing.size or exact[0] <= crossing[0]):
        return float(values[exact[0]])
    if not crossing.size:
        return math.nan
    i = int(crossing[0])
    if above[i] == below[i]:
        return float(values[i])
    weight = (math.log(target) - math.log(below[i])) / (math.log(above[i]) - math.log(below[i]))
    return float(values[i] + weight * (values[i + 1] - values[i]))


def _max_with_location(values: FloatArray, where: FloatArray, location: FloatArray) -> tuple:
    """Return (max of values[where], location at that max), NaN when nothing qualifies."""
    if not where.any():
        return math.nan, math.nan
    masked = np.where(where, values, -np.inf)
    index = int(np.argmax(masked))
    return float(values[index]), float(location[index])


def jlv_figures(
    voltage_v: ArrayLike,
    current_density_ma_cm2: ArrayLike,
    luminance_cd_m2: ArrayLike,
    eqe_pct: ArrayLike,
    wavelength_nm: ArrayLike | None = None,
    spectrum: ArrayLike | None = None,
    *,
    turn_on_threshold_cd_m2: float = 1.0,
    eqe_reference_current_density_ma_cm2: float = 100.0,
) -> dict[str, float]:
    """Summarise a J-L-V sweep with the figures of merit reported for PeLEDs.

    Parameters
    ----------
    voltage_v, current_density_ma_cm2, luminance_cd_m2, eqe_pct : array_like
        One 1-D array per quantity, same length, in sweep order (V, mA/cm^2, cd/m^2,
        %). Reverse-bias points are allowed; efficiencies there are ignored. EQE may be
        NaN where it is undefined (no forward current, below turn-on); the others must be
        finite.
    wavelength_nm, spectrum : array_like, optional
        An EL spectrum (relative spectral power) for peak, FWHM and colour.
    turn_on_threshold_cd_m2 : float, default 1.0
        Luminance defining turn-on (REFERENCE section 3 uses 1 cd/m^2).
    eqe_reference_current_density_ma_cm2 : float, default 100.0
        Current density at which EQE is interpolated (roll-off figure; [P2] reports
        about 13 % at 100 mA/cm^2).

    Returns
    -------
    dict of str to float
        ``turn_on_voltage_v`` (the first swept voltage with L >= threshold; not
        interpolated, so its resolution is the sweep step), ``turn_on_threshold_cd_m2``,
        ``max_luminance_cd_m2``, ``voltage_at_max_luminance_v``, ``max_eqe_pct``,
        ``current_density_at_max_eqe_ma_cm2``, ``eqe_at_reference_pct`` (interpolated
        linearly in ln J where the sweep first reaches the reference; NaN if it never
        does), ``eqe_reference_current_density_ma_cm2``, ``max_current_efficiency_cd_a``,
        ``max_luminous_efficacy_lm_w``, ``el_peak_nm``, ``el_fwhm_nm``, ``cie_x``,
        ``cie_y`` (NaN without a spectrum). Efficiency maxima are taken only over
        points with J > 0, V > 0 and L >= threshold: below turn-on the photocurrent is
        noise and L/J of noise over leakage gives meaningless maxima. NaN where no
        point qualifies.
    """
    voltage = as_float_array("voltage_v", voltage_v)
    current_density = as_float_array("current_density_ma_cm2", current_density_ma_cm2)
    luminance = as_float_array("luminance_cd_m2", luminance_cd_m2)
    eqe = np.asarray(eqe_pct, dtype=float)
    if np.isinf(eqe).any():
        raise ValueError("eqe_pct must be finite or NaN (undefined); got an infinite value")
    if voltage.ndim != 1:
        raise ValueError(f"voltage_v must be 1-D (one sweep); got shape {voltage.shape}")
    for name, array in (
        ("current_density_ma_cm2", current_density),
        ("luminance_cd_m2", luminance),
        ("eqe_pct", eqe),
    ):
        if array.shape != voltage.shape:
            raise ValueError(
                f"{name} must have the shape of voltage_v {voltage.shape}; got {array.shape}"
            )
    threshold = as_positive_scalar("turn_on_threshold_cd_m2", turn_on_threshold_cd_m2, "cd/m^2")
    reference_j = as_positive_scalar(
        "eqe_reference_current_density_ma_cm2", eqe_reference_current_density_ma_cm2, "mA/cm^2"
    )

    lit = luminance >= threshold
    turn_on = float(voltage[np.argmax(lit)]) if lit.any() else math.nan
    max_index = int(np.argmax(luminance))
    qualifying = lit & (current_density > 0) & (voltage > 0) & np.isfinite(eqe)
    safe_j = np.where(current_density > 0, current_density, 1.0)
    safe_v = np.where(voltage > 0, voltage, 1.0)
    cd_per_a = luminance / (safe_j * _A_M2_PER_MA_CM2)
    lm_per_w = math.pi * cd_per_a / safe_v
    max_eqe, j_at_max_eqe = _max_with_location(eqe, qualifying, current_density)
    figures: dict[str, float] = {
        "turn_on_voltage_v": turn_on,
        "turn_on_threshold_cd_m2": threshold,
        "max_luminance_cd_m2": float(luminance[max_index]),
        "voltage_at_max_luminance_v": float(voltage[max_index]),
        "max_eqe_pct": max_eqe,
        "current_density_at_max_eqe_ma_cm2": j_at_max_eqe,
        "eqe_at_reference_pct": _interpolate_at_current_density(current_density, eqe, reference_j),
        "eqe_reference_current_density_ma_cm2": reference_j,
        "max_current_efficiency_cd_a": _max_with_location(cd_per_a, qualifying, voltage)[0],
        "max_luminous_efficacy_lm_w": _max_with_location(lm_per_w, qualifying, voltage)[0],
        "el_peak_nm": math.nan,
        "el_fwhm_nm": math.nan,
        "cie_x": math.nan,
        "cie_y": math.nan,
    }
    if (wavelength_nm is None) != (spectrum is None):
        raise ValueError(f"wavelength_nm and spectrum: {_NO_SPECTRUM}")
    if wavelength_nm is not None:
        from perovlab_daq.analysis.spectra import peak_metrics

        peak = peak_metrics(wavelength_nm, spectrum)
        figures["el_peak_nm"] = float(peak.peak_nm[0])
        figures["el_fwhm_nm"] = float(peak.fwhm_nm[0])
        figures["cie_x"], figures["cie_y"] = cie_xy(wavelength_nm, spectrum)
    log.debug("J-L-V figures: %s", figures)
    return figures


def nominal_el_spectrum(peak_nm: float, fwhm_nm: float) -> tuple[np.ndarray, np.ndarray]:
    """Return a Gaussian EL band (relative spectral power) on :data:`NOMINAL_GRID_NM`."""
    sigma = fwhm_nm / (2.0 * math.sqrt(2.0 * math.log(2.0)))
    return NOMINAL_GRID_NM.copy(), np.exp(-0.5 * ((NOMINAL_GRID_NM - peak_nm) / sigma) ** 2)


@dataclass(frozen=True)
class PhotometricFactors:
    """Per-ampere conversion of photocurrent for one EL spectrum and set-up.

    ``luminance = luminance_per_a * I_PD``; ``eqe = eqe_pct_per_ratio * I_PD / I``.
    """

    luminance_per_a: float
    eqe_pct_per_ratio: float

    @classmethod
    def compute(
        cls,
        wavelength_nm: np.ndarray,
        spectrum: np.ndarray,
        responsivity: tuple[np.ndarray, np.ndarray],
        area_cm2: float,
        pd_radius_mm: float,
        pd_distance_mm: float,
    ) -> PhotometricFactors:
        """Compute the factors with :mod:`perovlab_daq.analysis` (REFERENCE section 3).

        The responsivity curve is interpolated onto the spectrum's grid (0 A/W outside
        the calibrated range).
        """
        grid = np.asarray(wavelength_nm, dtype=float)
        response = np.interp(grid, responsivity[0], responsivity[1], left=0.0, right=0.0)
        luminance = luminance_from_photocurrent(
            1.0, grid, spectrum, response, area_cm2, pd_radius_mm, pd_distance_mm
        )
        eqe = eqe_from_photocurrent(
            1.0, 1.0, grid, spectrum, response, pd_radius_mm, pd_distance_mm
        )
        return cls(float(luminance), float(eqe))


def interpolate_in_bias(
    bias_v: ArrayLike, measured_bias_v: ArrayLike, values: ArrayLike
) -> FloatArray:
    """Interpolate per-spectrum values (photometric factors, CIE) to other biases.

    Linear in bias between the measured biases, the nearest measured value outside
    them; several spectra at one bias (forward and reverse sweeps) are averaged first.

    Parameters
    ----------
    bias_v : array_like
        Biases (V) wanted.
    measured_bias_v, values : array_like
        Bias (V) of each measured spectrum and its value, same length, >= 1 finite pair.

    Returns
    -------
    numpy.ndarray
        The values at ``bias_v`` (NaN where ``bias_v`` is NaN).
    """
    measured = np.asarray(measured_bias_v, dtype=float)
    value = np.asarray(values, dtype=float)
    ok = np.isfinite(measured) & np.isfinite(value)
    if not ok.any():
        raise ValueError("interpolate_in_bias needs at least one finite (bias, value) pair")
    unique, inverse = np.unique(measured[ok], return_inverse=True)
    mean = np.bincount(inverse, weights=value[ok]) / np.bincount(inverse)
    return np.interp(np.asarray(bias_v, dtype=float), unique, mean)
