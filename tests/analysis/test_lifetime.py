"""Lifetime metrics on synthetic ageing logs with known answers; the acceleration law of [P2]."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from perovlab_daq.analysis import (
    LIFETIME_LEVELS_PCT,
    AccelerationFit,
    fit_acceleration,
    lifetime_from_stretched_exponential,
    lifetime_metrics,
)

H = 3600.0
TAU_H = 40.0
BETA = 0.8
L0 = 914.0  # [P2] ageing figure


def stretched(time_h: np.ndarray, tau_h: float = TAU_H, beta: float = BETA) -> np.ndarray:
    return np.exp(-((time_h / tau_h) ** beta))


def analytic_tx(level_pct: float, tau_h: float = TAU_H, beta: float = BETA) -> float:
    return tau_h * (-math.log(level_pct / 100)) ** (1 / beta)


def ageing_log(
    duration_h: float, n: int, noise: float = 0.0, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    time_s = np.linspace(0.0, duration_h * H, n)
    luminance = L0 * stretched(time_s / H) * (1 + noise * rng.standard_normal(n))
    return time_s, luminance


def test_noise_free_decay_gives_analytic_lifetimes() -> None:
    metrics = lifetime_metrics(*ageing_log(200.0, 20_000))
    assert metrics["l0"] == pytest.approx(L0, rel=2e-3)
    for level in LIFETIME_LEVELS_PCT:
        tolerance = 0.03 if level == 95 else 0.015  # T95 is the most sensitive to L0
        assert metrics[f"t{level}"] == pytest.approx(analytic_tx(level), rel=tolerance)
    assert metrics["t50_from_max"] == pytest.approx(metrics["t50"], rel=1e-6)
    assert metrics["tau_h"] == pytest.approx(TAU_H, rel=0.02)
    assert metrics["beta"] == pytest.approx(BETA, rel=0.02)
    assert math.isnan(metrics["t50_extrapolated"])  # T50 was measured
    assert metrics["t50_fit"] == pytest.approx(analytic_tx(50), rel=0.02)


def test_noisy_million_point_log_is_handled() -> None:
    metrics = lifetime_metrics(*ageing_log(150.0, 1_000_000, noise=0.01, seed=3))
    assert metrics["n_points"] == 1_000_000
    assert metrics["l0"] == pytest.approx(L0, rel=5e-3)
    for level in (90, 80, 70, 50):
        assert metrics[f"t{level}"] == pytest.approx(analytic_tx(level), rel=0.03)


def test_l0_ignores_switch_on_spikes() -> None:
    time_s, luminance = ageing_log(100.0, 50_000, noise=0.005, seed=1)
    luminance[:3] *= 5.0  # capacitive switch-on transient
    luminance[10] = 0.0  # one dropped reading
    assert lifetime_metrics(time_s, luminance)["l0"] == pytest.approx(L0, rel=5e-3)


def test_brief_dip_does_not_shorten_the_lifetime() -> None:
    time_s, luminance = ageing_log(200.0, 20_000)
    reference = lifetime_metrics(time_s, luminance)
    dipped = luminance.copy()
    # A 2 h dip to 30 % of L0 at 10 h (a loose contact): longer than a smoothing window,
    # so the first crossing of 50 % would be at 10 h.
    in_dip = (time_s > 10 * H) & (time_s < 12 * H)
    dipped[in_dip] = 0.3 * L0
    metrics = lifetime_metrics(time_s, dipped)
    assert metrics["t50"] == pytest.approx(reference["t50"], rel=1e-3)
    assert metrics["t50"] > 20.0


def test_positive_ageing_reports_both_references() -> None:
    time_h = np.linspace(0.0, 300.0, 30_000)
    # Brightens by 25 % with a 3 h time constant, then decays.
    luminance = L0 * (1 + 0.25 * (1 - np.exp(-time_h / 3.0))) * stretched(time_h, 80.0, 1.0)
    metrics = lifetime_metrics(time_h * H, luminance)
    peak = int(np.argmax(luminance))
    assert metrics["l0"] == pytest.approx(L0, rel=2e-3)
    assert metrics["l_max"] == pytest.approx(luminance[peak], rel=2e-3)
    assert metrics["t_l_max"] == pytest.approx(time_h[peak], abs=1.0)

    def true_crossing(threshold: float) -> float:
        above = np.flatnonzero(luminance >= threshold)
        return float(time_h[above[-1]])

    for level in (90, 50):
        assert metrics[f"t{level}"] == pytest.approx(true_crossing(level / 100 * L0), rel=0.01)
        assert metrics[f"t{level}_from_max"] == pytest.approx(
            true_crossing(level / 100 * luminance[peak]), rel=0.01
        )
    assert metrics["t50_from_max"] < metrics["t50"]  # L_max > L0: its 50 % comes sooner
    assert metrics["t95"] > metrics["t_l_max"]  # T95 vs L0 only after the brightening


def test_run_stopped_before_t50_is_extrapolated() -> None:
    stop_h = analytic_tx(70) * 1.05  # stopped just after T70
    metrics = lifetime_metrics(*ageing_log(stop_h, 20_000, noise=0.003, seed=2))
    assert math.isnan(metrics["t50"])
    assert metrics["t70"] == pytest.approx(analytic_tx(70), rel=0.02)
    assert metrics["t50_extrapolated"] == pytest.approx(analytic_tx(50), rel=0.05)


def test_gap_from_a_resumed_run_is_tolerated() -> None:
    time_s, luminance = ageing_log(200.0, 20_000, noise=0.002, seed=4)
    kept = (time_s < 15 * H) | (time_s > 40 * H)  # down from 15 h to 40 h, T50 inside
    metrics = lifetime_metrics(time_s[kept], luminance[kept])
    assert metrics["t80"] == pytest.approx(analytic_tx(80), rel=0.02)
    # T50 (about 25 h) fell in the gap: interpolated across it, so within the gap.
    assert 15.0 < metrics["t50"] < 40.0
    assert metrics["t50_fit"] == pytest.approx(analytic_tx(50), rel=0.03)


def test_flat_run_reaches_nothing_and_skips_the_fit() -> None:
    time_s = np.linspace(0, 10 * H, 1000)
    metrics = lifetime_metrics(time_s, np.full(1000, 500.0))
    assert metrics["l0"] == pytest.approx(500.0, rel=1e-9)  # model L0 of a flat log
    for level in LIFETIME_LEVELS_PCT:
        assert math.isnan(metrics[f"t{level}"])
    assert math.isnan(metrics["tau_h"])
    assert math.isnan(metrics["t50_extrapolated"])


def test_smoothing_window_is_a_settable_minimum_and_l0_window_is_deprecated() -> None:
    time_s, luminance = ageing_log(100.0, 10_000)
    metrics = lifetime_metrics(time_s, luminance, smoothing_window_s=600.0)
    assert metrics["smoothing_window_s"] == 600.0
    assert metrics["t50"] == pytest.approx(analytic_tx(50), rel=0.01)
    default = lifetime_metrics(time_s, luminance)
    # Log-time bins: 2 % of the elapsed time wide at the end of the run.
    assert default["smoothing_window_s"] == pytest.approx(0.02 * 100 * H, rel=0.01)
    with pytest.warns(DeprecationWarning, match="l0_window_s"):
        ignored = lifetime_metrics(time_s, luminance, l0_window_s=60.0)
    assert math.isnan(ignored["l0_window_s"])
    assert ignored["l0"] == default["l0"]


@pytest.mark.parametrize(
    ("time_s", "luminance", "match"),
    [
        (np.arange(20.0)[::-1], np.ones(20), "time_s must be non-decreasing"),
        (np.arange(20.0), np.r_[np.ones(19), np.nan], "luminance must be finite"),
        (np.arange(20.0), np.ones(19), "same length"),
        (np.arange(5.0), np.ones(5), "at least 10 samples"),
        (np.zeros(20), np.ones(20), "positive duration"),
        (np.arange(20.0), -np.ones(20), "start of stress .* must be > 0"),
    ],
)
def test_lifetime_metrics_rejects_bad_input(
    time_s: np.ndarray, luminance: np.ndarray, match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        lifetime_metrics(time_s, luminance)


def test_stretched_exponential_lifetime_formula() -> None:
    assert lifetime_from_stretched_exponential(100.0, 1.0, 50.0) == pytest.approx(100 * math.log(2))
    np.testing.assert_allclose(
        lifetime_from_stretched_exponential(TAU_H, BETA, [80.0, 50.0]),
        [analytic_tx(80), analytic_tx(50)],
    )
    with pytest.raises(ValueError, match="level_pct must be below 100"):
        lifetime_from_stretched_exponential(1.0, 1.0, 100.0)


# --- acceleration law ------------------------------------------------------------------

P2_N = 1.95
P2_T50_AT_100_H = 2100.0
P2_C = P2_T50_AT_100_H * 100.0**P2_N


def test_acceleration_fit_recovers_p2_exponent_and_t50_at_100_cd_m2() -> None:
    l0 = np.array([914.0, 1500.0, 2500.0, 4000.0])
    t50 = P2_C / l0**P2_N
    fit = fit_acceleration(l0, t50)
    assert fit.n == pytest.approx(P2_N, abs=1e-9)
    assert fit.n_stderr == pytest.approx(0.0, abs=1e-9)
    assert fit.t50_at(100.0) == pytest.approx(P2_T50_AT_100_H, rel=1e-9)
    assert fit.extrapolation_ratio(914.0, 100.0) == pytest.approx(9.14**P2_N)
    assert fit.t50_at(914.0) * fit.extrapolation_ratio(914.0, 100.0) == pytest.approx(2100.0)
    assert fit.n_points == 4


def test_acceleration_fit_with_scatter_has_a_standard_error() -> None:
    rng = np.random.default_rng(7)
    l0 = np.geomspace(500, 5000, 8)
    t50 = P2_C / l0**P2_N * np.exp(0.05 * rng.standard_normal(8))
    fit = fit_acceleration(l0, t50)
    assert fit.n == pytest.approx(P2_N, abs=4 * fit.n_stderr)
    assert 0.0 < fit.n_stderr < 0.2
    assert fit.residual_rms_ln == pytest.approx(0.05, abs=0.04)


def test_acceleration_fit_is_frozen() -> None:
    fit = fit_acceleration([100.0, 200.0, 400.0], [30.0, 8.0, 2.0])
    assert isinstance(fit, AccelerationFit)
    with pytest.raises(dataclasses.FrozenInstanceError):
        fit.n = 2.0  # type: ignore[misc]


@pytest.mark.parametrize(
    ("l0", "t50", "match"),
    [
        ([100.0, 200.0], [10.0, 3.0], "l0_cd_m2 must have at least 3 .*got 2"),
        ([100.0, -200.0, 300.0], [10.0, 3.0, 1.0], r"l0_cd_m2 must be > 0 cd/m\^2.*-200"),
        ([100.0, 200.0, 300.0], [10.0, 0.0, 1.0], r"t50_h must be > 0 h.*\[0\]"),
        ([100.0, np.nan, 300.0], [10.0, 3.0, 1.0], "l0_cd_m2 must be finite.*nan"),
        ([100.0, 100.0, 100.0], [10.0, 9.0, 11.0], "at least 2 distinct"),
        ([100.0, 200.0, 300.0], [10.0, 3.0], "same length"),
    ],
)
def test_acceleration_fit_refuses_bad_input(l0: list, t50: list, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        fit_acceleration(l0, t50)


@settings(max_examples=50, deadline=None)
@given(
    n=st.floats(1.0, 3.0),
    log_c=st.floats(5.0, 25.0),
    luminances=st.lists(st.floats(10.0, 1e4), min_size=3, max_size=8, unique=True),
)
def test_acceleration_fit_inverts_the_law(n: float, log_c: float, luminances: list) -> None:
    l0 = np.array(luminances)
    if np.ptp(np.log(l0)) < 0.1:
        return  # nearly equal luminances constrain n too weakly for an exact check
    fit = fit_acceleration(l0, math.exp(log_c) / l0**n)
    assert fit.n == pytest.approx(n, rel=1e-6)
    np.testing.assert_allclose(fit.t50_at(l0), math.exp(log_c) / l0**n, rtol=1e-6)


# --- acceleration law with uncertainties ---------------------------------------------

THREE_L0 = np.array([1000.0, 2000.0, 4000.0])


def test_acceleration_interval_on_n_covers_the_truth_with_three_weighted_points() -> None:
    rng = np.random.default_rng(3)
    relative_error = np.array([0.05, 0.08, 0.10])
    hits = 0
    for _ in range(200):
        truth = P2_C / THREE_L0**P2_N
        t50 = truth * np.exp(relative_error * rng.standard_normal(3))
        fit = fit_acceleration(THREE_L0, t50, relative_error * t50)
        low, high = fit.n_ci95
        hits += low <= P2_N <= high
        t50_100, t50_low, t50_high = fit.t50_interval(100.0)
        assert t50_low < t50_100 < t50_high
    assert hits >= 190  # 95 % nominal; the scale >= 1 rule makes it conservative


def test_acceleration_uses_student_t_and_widens_with_fewer_points() -> None:
    three = fit_acceleration(THREE_L0, P2_C / THREE_L0**P2_N, 0.05 * P2_C / THREE_L0**P2_N)
    assert three.dof == 1
    assert three.t_quantile == pytest.approx(stats.t.ppf(0.975, 1))
    assert three.n_ci95[1] - three.n_ci95[0] == pytest.approx(
        2 * stats.t.ppf(0.975, 1) * three.n_stderr
    )
    six_l0 = np.geomspace(1000.0, 4000.0, 6)
    six = fit_acceleration(six_l0, P2_C / six_l0**P2_N, 0.05 * P2_C / six_l0**P2_N)
    assert six.t_quantile == pytest.approx(stats.t.ppf(0.975, 4))
    assert six.n_ci95[1] - six.n_ci95[0] < (three.n_ci95[1] - three.n_ci95[0]) / 4
    # Exact points with given errors: the errors alone set the interval (scale = 1).
    assert three.scale == 1.0
    assert three.n == pytest.approx(P2_N)


def test_acceleration_target_interval_uses_the_slope_intercept_covariance() -> None:
    rng = np.random.default_rng(4)
    t50 = P2_C / THREE_L0**P2_N * np.exp(0.05 * rng.standard_normal(3))
    fit = fit_acceleration(THREE_L0, t50, 0.05 * t50, target_l0_cd_m2=100.0)
    x = math.log(100.0)
    (v00, v01), (_, v11) = fit.covariance
    sd = math.sqrt(v00 + 2 * x * v01 + x * x * v11)
    assert v01 < 0  # intercept and slope are correlated: ignoring it would be wrong
    assert fit.t50_target_h == pytest.approx(fit.t50_at(100.0))
    assert fit.t50_target_ci95_h[1] == pytest.approx(
        fit.t50_target_h * math.exp(stats.t.ppf(0.975, 1) * sd)
    )
    assert fit.t50_target_ci95_h[0] < P2_T50_AT_100_H < fit.t50_target_ci95_h[1]


def test_acceleration_weights_follow_the_t50_uncertainties() -> None:
    l0 = np.array([500.0, 1000.0, 2000.0, 4000.0])
    t50 = P2_C / l0**P2_N
    t50[3] *= 2.0  # one bad run ...
    errors = 0.02 * t50
    errors[3] = 5.0 * t50[3]  # ... that says it is bad
    weighted = fit_acceleration(l0, t50, errors)
    plain = fit_acceleration(l0, t50)
    assert weighted.weighted and not plain.weighted
    assert abs(weighted.n - P2_N) < 0.05 < abs(plain.n - P2_N)


def test_acceleration_warnings_fire() -> None:
    fit = fit_acceleration(THREE_L0, P2_C / THREE_L0**P2_N, target_l0_cd_m2=200.0)
    assert any("1 degree of freedom" in note for note in fit.warnings)
    assert not any("outside" in note for note in fit.warnings)
    far = fit_acceleration(THREE_L0, P2_C / THREE_L0**P2_N, target_l0_cd_m2=10.0)
    assert any("more than 10x outside" in note for note in far.warnings)
    two_levels = fit_acceleration([1000.0, 1000.0, 3000.0, 3000.0], [60.0, 55.0, 7.0, 8.0])
    assert any("2 distinct initial luminances" in note for note in two_levels.warnings)
    many = np.geomspace(100.0, 1000.0, 5)
    assert fit_acceleration(many, P2_C / many**P2_N, target_l0_cd_m2=100.0).warnings == ()
