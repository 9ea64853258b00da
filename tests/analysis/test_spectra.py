"""Spectrum analysis: peak metrics against Gaussian fits, power laws, de Mello PLQY, new peaks."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy import constants
from scipy.optimize import curve_fit

from perovlab_daq.analysis import (
    PeakMetrics,
    calibrate_spectrum,
    new_peaks,
    peak_metrics,
    plqy_de_mello,
    power_law_slope,
)

QEPRO_NM = np.linspace(350.0, 1100.0, 1044)  # QE Pro-like grid, ~0.72 nm per pixel
FWHM_PER_SIGMA = 2 * math.sqrt(2 * math.log(2))


def gaussian(grid: np.ndarray, centre_nm: float, fwhm_nm: float) -> np.ndarray:
    return np.exp(-0.5 * ((grid - centre_nm) / (fwhm_nm / FWHM_PER_SIGMA)) ** 2)


def gaussian_with_line(
    x: np.ndarray, height: float, centre: float, sigma: float, offset: float, slope: float
) -> np.ndarray:
    return height * np.exp(-0.5 * ((x - centre) / sigma) ** 2) + offset + slope * (x - 700.0)


def noisy_gaussians(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centre = rng.uniform(520.0, 760.0, n)
    fwhm = rng.uniform(25.0, 40.0, n)  # [P1]: 32-35 nm
    height = rng.uniform(0.5, 2.0, n)
    rows = height[:, None] * gaussian(QEPRO_NM[None, :], centre[:, None], fwhm[:, None])
    rows += 0.05 + rng.uniform(-1e-4, 1e-4, (n, 1)) * (QEPRO_NM - 700.0)  # sloping baseline
    rows += 0.005 * height[:, None] * rng.standard_normal(rows.shape)  # SNR 200
    return rows, centre, fwhm, height


def test_centres_agree_with_per_spectrum_gaussian_fit_within_0p1_nm() -> None:
    rows, centre, fwhm, height = noisy_gaussians(40, seed=11)
    metrics = peak_metrics(QEPRO_NM, rows)
    fitted = np.array(
        [
            curve_fit(
                gaussian_with_line,
                QEPRO_NM,
                row,
                p0=(row.max(), QEPRO_NM[np.argmax(row)], 15.0, 0.0, 0.0),
            )[0][1]
            for row in rows
        ]
    )
    assert np.abs(metrics.centre_nm - fitted).max() <= 0.1
    np.testing.assert_allclose(metrics.fwhm_nm, fwhm, rtol=0.02)
    np.testing.assert_allclose(metrics.height, height, rtol=0.03)
    np.testing.assert_allclose(metrics.peak_nm, centre, atol=1.0)


def test_noise_free_gaussian_is_exact_on_a_non_uniform_grid() -> None:
    grid = np.sort(np.random.default_rng(2).uniform(400.0, 900.0, 2000))
    spectrum = 3.0 * gaussian(grid, 653.0, 35.0) + 0.2 + 1e-3 * (grid - 400.0)
    metrics = peak_metrics(grid, spectrum, smoothing_px=1)
    assert len(metrics) == 1
    assert metrics.centre_nm[0] == pytest.approx(653.0, abs=0.02)
    assert metrics.peak_nm[0] == pytest.approx(653.0, abs=0.05)
    assert metrics.fwhm_nm[0] == pytest.approx(35.0, rel=2e-3)
    assert metrics.height[0] == pytest.approx(3.0, rel=1e-3)
    area = 3.0 * 35.0 / FWHM_PER_SIGMA * math.sqrt(2 * math.pi)
    assert metrics.integrated_intensity[0] == pytest.approx(area, rel=2e-3)


def test_asymmetric_peak_separates_maximum_from_centroid() -> None:
    sigma = np.where(QEPRO_NM < 650.0, 8.0, 25.0)  # a red tail
    spectrum = np.exp(-0.5 * ((QEPRO_NM - 650.0) / sigma) ** 2)
    metrics = peak_metrics(QEPRO_NM, spectrum, smoothing_px=1)
    assert metrics.peak_nm[0] == pytest.approx(650.0, abs=0.3)
    assert metrics.centre_nm[0] > 655.0
    # Smoothing drags the maximum of an asymmetric peak towards its tail, by < 1 nm here.
    assert 650.0 < peak_metrics(QEPRO_NM, spectrum).peak_nm[0] < 651.0
    assert metrics.fwhm_nm[0] == pytest.approx((8.0 + 25.0) * FWHM_PER_SIGMA / 2, rel=0.02)


def test_rows_without_a_peak_give_nan() -> None:
    rows = np.stack([gaussian(QEPRO_NM, 600.0, 30.0), np.zeros(QEPRO_NM.size)])  # lit, dark
    metrics = peak_metrics(QEPRO_NM, rows)
    assert isinstance(metrics, PeakMetrics)
    assert not np.isnan(metrics.fwhm_nm[0])
    assert np.isnan(metrics.centre_nm[1]) and np.isnan(metrics.fwhm_nm[1])


def test_narrow_lines_need_smoothing_off() -> None:
    for fwhm in (3.0, 5.0, 10.0):  # 4-14 pixels
        metrics = peak_metrics(QEPRO_NM, gaussian(QEPRO_NM, 600.0, fwhm), smoothing_px=1)
        assert metrics.centre_nm[0] == pytest.approx(600.0, abs=0.05)
        assert metrics.fwhm_nm[0] == pytest.approx(fwhm, rel=0.02)


def test_rows_are_independent_of_batching() -> None:
    rows, *_ = noisy_gaussians(700, seed=5)  # more rows than one internal chunk
    batch = peak_metrics(QEPRO_NM, rows)
    single = peak_metrics(QEPRO_NM, rows[613])
    assert batch.centre_nm[613] == single.centre_nm[0]
    assert batch.fwhm_nm[613] == single.fwhm_nm[0]


@settings(max_examples=30, deadline=None)
@given(centre=st.floats(450.0, 1000.0), fwhm=st.floats(20.0, 60.0), scale=st.floats(1e-3, 1e6))
def test_peak_metrics_invariants(centre: float, fwhm: float, scale: float) -> None:
    # Documented precondition: the band stays clear of the baseline windows (the outer
    # 5 % of the grid, 350-387.5 and 1062.5-1100 nm here); 2 FWHM leaves < 0.1 % there.
    assume(centre - 2 * fwhm > 387.5 and centre + 2 * fwhm < 1062.5)
    spectrum = gaussian(QEPRO_NM, centre, fwhm)
    metrics = peak_metrics(QEPRO_NM, scale * spectrum)
    assert metrics.centre_nm[0] == pytest.approx(centre, abs=0.05)
    assert metrics.fwhm_nm[0] == pytest.approx(fwhm, rel=0.01)
    assert metrics.height[0] == pytest.approx(scale, rel=0.01)
    shifted = peak_metrics(QEPRO_NM, scale * spectrum + 7.0 * scale)  # constant offset
    assert shifted.centre_nm[0] == pytest.approx(metrics.centre_nm[0], abs=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"spectra": np.ones((2, 5))}, "spectra must have 1044 samples"),
        ({"spectra": np.ones((2, 2, 1044))}, "spectra must be 1-D or 2-D"),
        ({"wavelength_nm": np.r_[QEPRO_NM[:-1], 0.0]}, "strictly increasing"),
        ({"spectra": np.r_[np.ones(1043), np.nan]}, "spectra must be finite"),
        ({"smoothing_px": 0}, "smoothing_px must be between 1"),
        ({"smoothing_px": 2.5}, "smoothing_px must be an integer"),
        ({"baseline_edge_fraction": 0.6}, "baseline_edge_fraction must be between"),
    ],
)
def test_peak_metrics_rejects_bad_input(kwargs: dict, match: str) -> None:
    arguments = {"wavelength_nm": QEPRO_NM, "spectra": gaussian(QEPRO_NM, 600.0, 30.0)} | kwargs
    with pytest.raises(ValueError, match=match):
        peak_metrics(**arguments)


# --- power law -------------------------------------------------------------------------


def test_power_law_exponent_and_local_slope() -> None:
    power = np.geomspace(1e-3, 1.0, 13)
    fit = power_law_slope(power, 4.0 * power**1.5)
    assert fit.k == pytest.approx(1.5)
    assert fit.k_stderr == pytest.approx(0.0, abs=1e-12)
    assert fit.prefactor == pytest.approx(4.0)
    np.testing.assert_allclose(fit.local_slope, 1.5)
    assert fit.n_points_fit == 13


def test_power_law_local_slope_follows_a_knee_in_the_callers_order() -> None:
    power = np.geomspace(1e-2, 1e2, 41)
    intensity = np.where(power < 1.0, power**2, power)  # trap filling, then radiative
    order = np.random.default_rng(0).permutation(power.size)
    fit = power_law_slope(power[order], intensity[order])
    expected = np.where(power < 0.5, 2.0, np.where(power > 2.0, 1.0, np.nan))[order]
    known = ~np.isnan(expected)
    np.testing.assert_allclose(fit.local_slope[known], expected[known], atol=1e-9)
    low = power_law_slope(power, intensity, power_range=(1e-2, 0.5))
    assert low.k == pytest.approx(2.0)


def test_power_law_with_noise_has_a_standard_error() -> None:
    rng = np.random.default_rng(1)
    power = np.geomspace(1, 100, 20)
    fit = power_law_slope(power, power**1.2 * np.exp(0.05 * rng.standard_normal(20)))
    assert fit.k == pytest.approx(1.2, abs=4 * fit.k_stderr)
    assert 0 < fit.k_stderr < 0.05


@pytest.mark.parametrize(
    ("power", "intensity", "kwargs", "match"),
    [
        ([1.0, 2.0, -3.0], [1.0, 2.0, 3.0], {}, r"power must be > 0.*-3"),
        ([1.0, 2.0, 3.0], [1.0, 0.0, 3.0], {}, "intensity must be > 0"),
        ([1.0, 2.0, 2.0], [1.0, 2.0, 3.0], {}, "must not repeat"),
        ([1.0, 2.0], [1.0, 2.0, 3.0], {}, "same length"),
        ([1.0, 2.0, 3.0], [1.0, 2.0, 3.0], {"power_range": (5.0, 9.0)}, "keeps 0 point"),
        ([1.0, 2.0, 3.0], [1.0, 2.0, 3.0], {"power_range": (3.0, 1.0)}, "low < high"),
    ],
)
def test_power_law_rejects_bad_input(
    power: list, intensity: list, kwargs: dict, match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        power_law_slope(power, intensity, **kwargs)


# --- de Mello PLQY ---------------------------------------------------------------------

SPHERE_NM = np.arange(380.0, 800.0, 0.5)
LASER_WINDOW = (395.0, 415.0)
EMISSION_WINDOW = (560.0, 760.0)


def de_mello_spectra(
    plqy: float, absorptance: float, diffuse_absorptance: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sphere spectra as spectral POWER (W/nm) from the de Mello model in photon numbers."""
    laser_shape = gaussian(SPHERE_NM, 405.0, 2.0)
    laser_shape /= np.trapezoid(laser_shape, SPHERE_NM)
    emission_shape = gaussian(SPHERE_NM, 653.0, 35.0)  # [P1] unwashed film
    emission_shape /= np.trapezoid(emission_shape, SPHERE_NM)
    photons_a = 1e15
    # (b): beam on the wall, the sample only sees diffuse light.
    laser_b = photons_a * (1 - diffuse_absorptance)
    emission_b = plqy * photons_a * diffuse_absorptance
    # (c): beam on the sample, the unabsorbed part then behaves as in (b).
    laser_c = photons_a * (1 - absorptance) * (1 - diffuse_absorptance)
    emission_c = plqy * photons_a * (absorptance + (1 - absorptance) * diffuse_absorptance)
    photon_energy_j = constants.h * constants.c / (SPHERE_NM * 1e-9)

    def power(laser: float, emission: float) -> np.ndarray:
        return (laser * laser_shape + emission * emission_shape) * photon_energy_j

    return power(photons_a, 0.0), power(laser_b, emission_b), power(laser_c, emission_c)


@pytest.mark.parametrize(("plqy", "absorptance"), [(0.819, 0.4), (0.101, 0.8), (0.45, 0.15)])
def test_de_mello_recovers_the_model_quantities(plqy: float, absorptance: float) -> None:
    spectra = de_mello_spectra(plqy, absorptance, diffuse_absorptance=0.1)
    got_plqy, got_absorptance = plqy_de_mello(SPHERE_NM, *spectra, LASER_WINDOW, EMISSION_WINDOW)
    assert got_absorptance == pytest.approx(absorptance, rel=1e-6)
    # Recovering PLQY from spectral power proves the conversion to photon numbers: in
    # power units the 653 nm photons would count 405/653 of their number.
    assert got_plqy == pytest.approx(plqy, rel=1e-3)


def test_de_mello_is_independent_of_a_common_scale() -> None:
    spectra = de_mello_spectra(0.6, 0.5, 0.05)
    scaled = [1e9 * s for s in spectra]
    assert plqy_de_mello(SPHERE_NM, *scaled, LASER_WINDOW, EMISSION_WINDOW) == pytest.approx(
        plqy_de_mello(SPHERE_NM, *spectra, LASER_WINDOW, EMISSION_WINDOW)
    )


@pytest.mark.parametrize(
    ("laser", "emission", "match"),
    [
        ((300.0, 415.0), EMISSION_WINDOW, "laser_window_nm .* must lie inside"),
        (LASER_WINDOW, (560.0, 900.0), "emission_window_nm .* must lie inside"),
        ((415.0, 395.0), EMISSION_WINDOW, "low < high"),
        ((395.0, 600.0), EMISSION_WINDOW, "must not overlap"),
        ((395.0, "x"), EMISSION_WINDOW, "laser_window_nm must be"),
    ],
)
def test_de_mello_rejects_bad_windows(laser: tuple, emission: tuple, match: str) -> None:
    spectra = de_mello_spectra(0.5, 0.5, 0.1)
    with pytest.raises(ValueError, match=match):
        plqy_de_mello(SPHERE_NM, *spectra, laser, emission)


def test_de_mello_refuses_swapped_measurements() -> None:
    spectrum_a, spectrum_b, spectrum_c = de_mello_spectra(0.5, 0.5, 0.1)
    with pytest.raises(ValueError, match="absorptance .* must be > 0"):
        plqy_de_mello(SPHERE_NM, spectrum_a, spectrum_c, spectrum_b, LASER_WINDOW, EMISSION_WINDOW)


# --- new peaks and calibration ---------------------------------------------------------


def test_halide_segregation_peaks_are_flagged() -> None:
    rng = np.random.default_rng(3)
    matrix = gaussian(QEPRO_NM, 610.0, 30.0)
    # Later: matrix slightly red-shifted, new iodide-rich peaks at 650 and 700 nm ([P2]).
    aged = (
        0.8 * gaussian(QEPRO_NM, 614.0, 30.0)
        + 0.5 * gaussian(QEPRO_NM, 650.0, 15.0)
        + 0.3 * gaussian(QEPRO_NM, 700.0, 20.0)
    )
    noise = 0.005 * rng.standard_normal((2, QEPRO_NM.size))
    found = new_peaks(QEPRO_NM, matrix + noise[0], aged + noise[1])
    assert found.shape == (2,)
    np.testing.assert_allclose(found, [650.0, 700.0], atol=2.0)


def test_unchanged_spectrum_has_no_new_peaks() -> None:
    rng = np.random.default_rng(4)
    matrix = gaussian(QEPRO_NM, 653.0, 35.0)
    later = 0.7 * matrix + 0.01 * rng.standard_normal(QEPRO_NM.size)  # dimmer, noisy
    assert new_peaks(QEPRO_NM, matrix, later).size == 0


def test_new_peaks_rejects_bad_options() -> None:
    spectrum = gaussian(QEPRO_NM, 653.0, 35.0)
    with pytest.raises(ValueError, match="min_relative_prominence must be between 0 and 1"):
        new_peaks(QEPRO_NM, spectrum, spectrum, min_relative_prominence=1.5)
    with pytest.raises(ValueError, match="match_tolerance_nm must be > 0"):
        new_peaks(QEPRO_NM, spectrum, spectrum, match_tolerance_nm=0.0)


def test_calibrate_spectrum_inverts_the_detector_model() -> None:
    sensitivity = 2.0e15 * (0.3 + gaussian(QEPRO_NM, 650.0, 400.0))  # counts s^-1 (W/nm)^-1
    power_w_nm = 1e-12 * gaussian(QEPRO_NM, 653.0, 35.0)
    dark = np.full(QEPRO_NM.size, 1500.0)
    integration_time_s = 0.1
    counts = dark + integration_time_s * sensitivity * power_w_nm
    got = calibrate_spectrum(counts, dark, integration_time_s, sensitivity)
    np.testing.assert_allclose(got, power_w_nm, rtol=1e-9, atol=1e-24)
    rows = calibrate_spectrum(np.stack([counts, counts]), dark, integration_time_s, sensitivity)
    assert rows.shape == (2, QEPRO_NM.size)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"integration_time_s": 0.0}, "integration_time_s must be > 0 s"),
        ({"sensitivity": np.zeros(4)}, "sensitivity must be > 0"),
        ({"sensitivity": np.ones(3)}, "sensitivity must have shape"),
        ({"dark_counts": np.ones(5)}, "dark_counts must have shape"),
    ],
)
def test_calibrate_spectrum_rejects_bad_input(kwargs: dict, match: str) -> None:
    arguments = {
        "counts": np.ones(4),
        "dark_counts": np.zeros(4),
        "integration_time_s": 0.1,
        "sensitivity": np.ones(4),
    } | kwargs
    with pytest.raises(ValueError, match=match):
        calibrate_spectrum(**arguments)


def test_windowed_fast_path_matches_the_whole_row_path() -> None:
    from perovlab_daq.analysis import spectra

    rows, *_ = noisy_gaussians(60, seed=8)
    extra = np.stack(
        [
            gaussian(QEPRO_NM, 700.0, 250.0),  # broader than the window: falls back
            gaussian(QEPRO_NM, 372.0, 20.0),  # next to the blue end, window clipped
            np.zeros(QEPRO_NM.size),  # dark frame
        ]
    )
    rows = np.vstack([rows, extra])
    weights = np.zeros(QEPRO_NM.size)
    weights[:-1] += 0.5 * np.diff(QEPRO_NM)
    weights[1:] += 0.5 * np.diff(QEPRO_NM)
    fast = spectra._peak_metrics_chunk(QEPRO_NM, rows, 52, 5, weights)
    full = spectra._peak_metrics_full(QEPRO_NM, rows, 52, 5, weights)
    for fast_values, full_values in zip(fast[:4], full, strict=True):
        np.testing.assert_allclose(fast_values, full_values, rtol=1e-9, atol=1e-9)
    assert fast[2][-3] == pytest.approx(250.0, rel=0.02)


def test_noise_of_a_bleached_film_gives_no_new_peak_above_the_snr_threshold() -> None:
    rng = np.random.default_rng(5)
    fresh = gaussian(QEPRO_NM, 655.0, 34.0)
    bleached = 0.002 * fresh + 0.01 * rng.standard_normal(QEPRO_NM.size)  # noise dominates
    assert new_peaks(QEPRO_NM, fresh, bleached).size > 0  # relative prominence alone
    assert new_peaks(QEPRO_NM, fresh, bleached, min_snr=5.0).size == 0
    # Real new peaks well above the noise survive the threshold.
    aged = 0.8 * fresh + 0.5 * gaussian(QEPRO_NM, 720.0, 15.0)
    noisy = aged + 0.01 * rng.standard_normal(QEPRO_NM.size)
    np.testing.assert_allclose(new_peaks(QEPRO_NM, fresh, noisy, min_snr=5.0), [720.0], atol=2)
    with pytest.raises(ValueError, match="min_snr"):
        new_peaks(QEPRO_NM, fresh, noisy, min_snr=0.0)


def test_new_peak_snr_uses_the_noise_where_the_peak_sits_not_the_median_noise() -> None:
    """Calibrated noise grows where the sensitivity falls off (detector edge): no new peak."""
    from perovlab_daq.analysis import spectra

    rng = np.random.default_rng(7)
    fresh = gaussian(QEPRO_NM, 655.0, 34.0)
    # Sensitivity falls ~20x over the last 60 nm, so the calibrated noise rises ~20x there.
    sensitivity = 1.0 / (1.0 + 19.0 / (1.0 + np.exp(-(QEPRO_NM - 1070.0) / 8.0)))
    sigma = 0.01 / sensitivity
    bleached = 0.002 * fresh + sigma * rng.standard_normal(QEPRO_NM.size)
    local = spectra.local_noise_sigma(bleached)
    assert local[-5] > 8 * local[QEPRO_NM.size // 2]  # follows the edge's noise
    assert local[QEPRO_NM.size // 2] == pytest.approx(0.01, rel=0.3)
    for seed in range(20):
        noise = sigma * np.random.default_rng(seed).standard_normal(QEPRO_NM.size)
        assert new_peaks(QEPRO_NM, fresh, 0.002 * fresh + noise, min_snr=5.0).size == 0
    # A real new peak in the quiet region still counts.
    aged = 0.8 * fresh + 0.5 * gaussian(QEPRO_NM, 720.0, 15.0)
    noisy = aged + sigma * rng.standard_normal(QEPRO_NM.size)
    np.testing.assert_allclose(new_peaks(QEPRO_NM, fresh, noisy, min_snr=5.0), [720.0], atol=2)


@pytest.mark.parametrize("repeats", [2, 3, 5, 20])
def test_t_interval_covers_the_true_mean_95_percent_of_the_time(repeats: int) -> None:
    from scipy import stats

    from perovlab_daq.analysis.spectra import mean_with_t_interval

    rng = np.random.default_rng(repeats)
    trials = 4000
    covered = 0
    for _ in range(trials):
        interval = mean_with_t_interval(rng.normal(10.0, 2.0, repeats))
        covered += interval.low <= 10.0 <= interval.high
    assert covered / trials == pytest.approx(0.95, abs=0.015)
    values = np.array([1.0, 2.0, 4.0])
    interval = mean_with_t_interval(values)
    u = values.std(ddof=1) / math.sqrt(3)
    assert interval.standard_uncertainty == pytest.approx(u)
    assert interval.high - interval.mean == pytest.approx(stats.t.ppf(0.975, 2) * u)
    assert interval.degrees_of_freedom == 2
    single = mean_with_t_interval([3.0])
    assert single.mean == 3.0 and math.isnan(single.standard_uncertainty)
