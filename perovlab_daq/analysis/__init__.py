"""Public analysis API: device efficiency, lifetime, spectra. Pure numpy/scipy, no Qt, no I/O.

Everything a notebook or a procedure needs is importable from here::

    from perovlab_daq.analysis import luminance_from_photocurrent, lifetime_metrics, peak_metrics

Units are in the parameter names (``_nm``, ``_cd_m2``, ``_ma_cm2``, ``_s``, ``_h``);
see docs/analysis.md for the formulas and conventions.
"""

import logging

from perovlab_daq.analysis.efficiency import (
    K_M_LM_PER_W,
    cie_xy,
    collected_fraction,
    current_density_ma_cm2,
    current_efficiency_cd_a,
    eqe_from_luminance,
    eqe_from_photocurrent,
    eqe_from_radiance,
    jlv_figures,
    luminance_from_photocurrent,
    luminance_from_radiance,
    luminous_efficacy_lm_w,
    optical_power_from_photocurrent,
    radiance_from_photocurrent,
)
from perovlab_daq.analysis.lifetime import (
    LIFETIME_LEVELS_PCT,
    DecayTracker,
    lifetime_from_stretched_exponential,
    lifetime_metrics,
)
from perovlab_daq.analysis.lifetime_acceleration import AccelerationFit, fit_acceleration
from perovlab_daq.analysis.spectra import (
    PeakMetrics,
    PowerLawFit,
    calibrate_spectrum,
    new_peaks,
    peak_metrics,
    plqy_de_mello,
    power_law_slope,
)
from perovlab_daq.analysis.windows import band_integrals, noise_sigma, window_peak_metrics

log = logging.getLogger(__name__)

__all__ = [
    "K_M_LM_PER_W",
    "LIFETIME_LEVELS_PCT",
    "AccelerationFit",
    "DecayTracker",
    "PeakMetrics",
    "PowerLawFit",
    "band_integrals",
    "calibrate_spectrum",
    "cie_xy",
    "collected_fraction",
    "current_density_ma_cm2",
    "current_efficiency_cd_a",
    "eqe_from_luminance",
    "eqe_from_photocurrent",
    "eqe_from_radiance",
    "fit_acceleration",
    "jlv_figures",
    "lifetime_from_stretched_exponential",
    "lifetime_metrics",
    "luminance_from_photocurrent",
    "luminance_from_radiance",
    "luminous_efficacy_lm_w",
    "new_peaks",
    "noise_sigma",
    "optical_power_from_photocurrent",
    "peak_metrics",
    "plqy_de_mello",
    "power_law_slope",
    "radiance_from_photocurrent",
    "window_peak_metrics",
]
