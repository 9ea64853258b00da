"""The lifetime estimator at every logging interval (1 s to 1 h) and the live stop.

Synthetic runs L0 (1 + a (1 - exp(-t/t_b))) exp(-(t/tau)^beta) with multiplicative noise,
T50 = 100 h, brightening a = 0 or 0.1 over t_b = 3 % of T50, logged every 1 s ... 3600 s,
run past T50 or stopped just after T80. Truths are solved exactly from the noise-free
curve (last crossing after the maximum).
"""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
from scipy import optimize

from perovlab_daq.analysis import DecayTracker, lifetime_metrics

H = 3600.0
L0 = 1000.0
T50_H = 100.0
NOISE = 0.005
LEVELS = (95, 80, 50)


def clean(time_h: np.ndarray | float, beta: float, gain: float, t50_h: float = T50_H):
    tau = t50_h / math.log(2) ** (1 / beta)
    t_b = 0.03 * t50_h
    return (1 + gain * -np.expm1(-np.asarray(time_h) / t_b)) * np.exp(-((time_h / tau) ** beta))


def true_tx(level: int, beta: float, gain: float, t50_h: float = T50_H) -> float:
    grid = np.geomspace(1e-6 * t50_h, 50 * t50_h, 20_000)
    start = float(grid[int(np.argmax(clean(grid, beta, gain, t50_h)))]) if gain else 0.0
    high = t50_h
    while clean(high, beta, gain, t50_h) > level / 100:
        high *= 2
    return optimize.brentq(lambda t: clean(t, beta, gain, t50_h) - level / 100, start, high)


def decay_log(
    interval_s: float, beta: float, gain: float, *, stop_level: int = 50, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    stop_h = true_tx(stop_level, beta, gain) * (1.2 if stop_level == 50 else 1.02)
    time_s = np.arange(0.0, stop_h * H + interval_s, interval_s)
    rng = np.random.default_rng(seed)
    noise = 1 + NOISE * rng.standard_normal(time_s.size)
    return time_s, L0 * clean(time_s / H, beta, gain) * noise


CASES = [
    (interval, beta, gain)
    for interval in (1.0, 60.0, 600.0, 3600.0)
    for beta in (0.5, 1.0)
    for gain in (0.0, 0.1)
]


@pytest.mark.parametrize(("interval_s", "beta", "gain"), CASES)
def test_full_run_is_right_at_every_logging_interval(
    interval_s: float, beta: float, gain: float
) -> None:
    metrics = lifetime_metrics(*decay_log(interval_s, beta, gain, seed=int(interval_s)))
    assert metrics["l0"] == pytest.approx(L0, rel=0.01)
    covered = 0
    for level in LEVELS:
        truth = true_tx(level, beta, gain)
        estimate = metrics[f"t{level}_h"]
        assert metrics[f"t{level}_is_extrapolated"] == 0.0  # the run passed every level
        assert metrics[f"t{level}"] == estimate
        if level == 50 or interval_s <= 1 or metrics[f"t{level}_stderr_h"] < 0.01 * truth:
            # Wherever the data pin T_x to 1 % (1 sigma), it is within 3 %.
            assert estimate == pytest.approx(truth, rel=0.03), level
        covered += metrics[f"t{level}_ci95_low_h"] <= truth <= metrics[f"t{level}_ci95_high_h"]
    if not gain:
        # One miss in three allowed for a 95 % interval on one seed. With brightening the
        # 5-parameter fit's interval is too narrow in some seeds (docs: Estimator, limits).
        assert covered >= 2
    if gain:
        assert metrics["fit_parameters"] == 5.0  # the brightening was found
        assert metrics["l_max"] >= metrics["l0"]
    else:
        assert metrics["fit_parameters"] == 3.0


@pytest.mark.parametrize(("interval_s", "beta", "gain"), [c for c in CASES if c[0] > 1])
def test_run_stopped_at_t80_extrapolates_t50_with_an_interval(
    interval_s: float, beta: float, gain: float
) -> None:
    metrics = lifetime_metrics(*decay_log(interval_s, beta, gain, stop_level=80, seed=7))
    # 10-30 samples before T80 at 1 h logging pin L0 to ~1 %, finer logging to 0.3 %.
    assert metrics["l0"] == pytest.approx(L0, rel=0.02 if interval_s >= 3600 else 0.01)
    assert math.isnan(metrics["t50"])
    assert metrics["t50_is_extrapolated"] == 1.0
    assert metrics["t50_extrapolated"] == metrics["t50_h"] == metrics["t50_model_h"]
    low, high = metrics["t50_ci95_low_h"], metrics["t50_ci95_high_h"]
    assert low < metrics["t50_h"] < high
    assert low <= true_tx(50, beta, gain) <= high
    assert metrics["t95_is_extrapolated"] == 0.0


def test_extrapolation_interval_covers_the_truth_over_seeds() -> None:
    hits = total = 0
    for interval_s, beta in ((600.0, 1.0), (3600.0, 0.5), (60.0, 0.8)):
        for seed in range(8):
            metrics = lifetime_metrics(*decay_log(interval_s, beta, 0.0, stop_level=80, seed=seed))
            assert metrics["t50_is_extrapolated"] == 1.0
            truth = true_tx(50, beta, 0.0)
            hits += metrics["t50_ci95_low_h"] <= truth <= metrics["t50_ci95_high_h"]
            total += 1
    assert hits >= total - 2  # 24 runs: a 95 % interval misses ~1


def test_negative_noise_is_not_clipped() -> None:
    # Additive photodiode noise around a signal that decays to ~0: clipping would bias
    # the late bins up and the measured T10-like tail long.
    rng = np.random.default_rng(5)
    time_s = np.arange(0.0, 600 * H, 600.0)
    truth = 100.0 * np.exp(-time_s / (100 * H))
    noisy = truth + 0.5 * rng.standard_normal(time_s.size)
    assert (noisy < 0).any()
    metrics = lifetime_metrics(time_s, noisy)
    assert metrics["t50_h"] == pytest.approx(100 * math.log(2), rel=0.03)
    assert metrics["beta"] == pytest.approx(1.0, abs=0.05)


def test_million_samples_are_cheap() -> None:
    time_s = np.arange(1_000_000, dtype=np.float64)  # 1 s logging, 278 h, past T50
    rng = np.random.default_rng(2)
    luminance = L0 * clean(time_s / H, 0.8, 0.1) * (1 + NOISE * rng.standard_normal(time_s.size))
    start = time.perf_counter()
    metrics = lifetime_metrics(time_s, luminance)
    elapsed = time.perf_counter() - start
    assert metrics["n_points"] == 1_000_000
    assert metrics["n_bins"] < 1000
    assert elapsed < 5.0  # ~0.3 s on an idle core; generous for a shared machine
    assert metrics["t50_h"] == pytest.approx(true_tx(50, 0.8, 0.1), rel=0.01)


# --- live stop -------------------------------------------------------------------------


def feed_until_stop(
    interval_s: float, t50_h: float, beta: float, gain: float, *, batch_until: float = 1.0
) -> tuple[float, DecayTracker]:
    """Feed a noisy decay to a DecayTracker until it says L/L0 <= 0.5; return the true ratio.

    Samples go in one by one once the tracker's ratio is below ``batch_until`` (before
    that in batches of 10 min of data, as a procedure reading a buffer would).
    """
    rng = np.random.default_rng(11)
    tracker = DecayTracker()
    time_s = np.arange(0.0, 3 * t50_h * H, interval_s)
    truth = clean(time_s / H, beta, gain, t50_h)
    luminance = L0 * truth * (1 + NOISE * rng.standard_normal(time_s.size))
    i = 0
    while i < time_s.size:
        step = max(1, int(600 / interval_s)) if not tracker.relative() <= batch_until else 1
        tracker.add(time_s[i : i + step], luminance[i : i + step])
        i += step
        if tracker.fallen_to(0.5):
            return float(truth[min(i, time_s.size) - 1]), tracker
    raise AssertionError("the tracker never said stop")


@pytest.mark.parametrize(
    ("interval_s", "t50_h", "beta", "gain"),
    [
        (1.0, 0.5, 0.7, 0.0),
        (1.0, 0.5, 1.0, 0.1),
        (60.0, T50_H, 0.5, 0.0),
        (60.0, T50_H, 0.8, 0.1),
        (600.0, T50_H, 1.0, 0.0),
        (600.0, T50_H, 0.6, 0.1),
        (3600.0, T50_H, 0.5, 0.0),
        (3600.0, T50_H, 1.0, 0.1),
    ],
)
def test_live_stop_ends_within_two_percent_of_the_target(
    interval_s: float, t50_h: float, beta: float, gain: float
) -> None:
    ratio, tracker = feed_until_stop(interval_s, t50_h, beta, gain)
    assert ratio == pytest.approx(0.5, rel=0.02)
    assert tracker.l0 == pytest.approx(L0, rel=0.01)
    # O(1) amortised: fits ~ samples / refit_every + log-time growth steps.
    bound = tracker.n_samples / tracker.refit_every + math.log(tracker.n_samples) / 0.04 + 20
    assert tracker.n_fits <= bound


@pytest.mark.slow
def test_live_stop_at_one_second_logging_over_a_hundred_hours() -> None:
    ratio, tracker = feed_until_stop(1.0, T50_H, 0.8, 0.0, batch_until=0.6)
    assert ratio == pytest.approx(0.5, rel=0.02)
    assert tracker.n_samples > 300_000
    assert tracker.n_fits < 1000


def test_tracker_and_analysis_are_one_estimator() -> None:
    time_s, luminance = decay_log(600.0, 0.8, 0.1)
    tracker = DecayTracker()
    for t, value in zip(time_s, luminance, strict=True):
        tracker.add(t, value)
    live = tracker.metrics()
    offline = lifetime_metrics(time_s, luminance)
    for key in ("l0", "t95_h", "t50_h", "beta", "fit_parameters"):
        assert live[key] == pytest.approx(offline[key], rel=1e-9), key


def test_tracker_says_nothing_before_it_has_a_fit() -> None:
    tracker = DecayTracker()
    tracker.add(np.arange(5.0), np.full(5, 100.0))
    assert math.isnan(tracker.l0)
    assert not tracker.fallen_to(0.99)
    with pytest.raises(ValueError, match="too few samples"):
        tracker.metrics()


def test_switch_on_time_is_the_reference_when_the_first_sample_comes_late() -> None:
    # First sample 2 h after switch-on (a settle, a slow first reading): referred to the
    # switch-on it is still right; referred to the first sample L0 is that sample's level.
    time_s, luminance = decay_log(600.0, 0.7, 0.0)
    late = time_s >= 2 * H
    metrics = lifetime_metrics(time_s[late], luminance[late], switch_on_s=0.0)
    assert metrics["l0"] == pytest.approx(L0, rel=0.01)
    assert metrics["t50_h"] == pytest.approx(true_tx(50, 0.7, 0.0), rel=0.03)
    shifted = lifetime_metrics(time_s[late], luminance[late])
    assert shifted["l0"] < 0.97 * L0
    tracker = DecayTracker(switch_on_s=0.0)
    tracker.add(time_s[late], luminance[late])
    assert tracker.metrics()["l0"] == pytest.approx(metrics["l0"], rel=1e-9)
    with pytest.raises(ValueError, match="switch_on_s must not be after the first sample"):
        lifetime_metrics(time_s[late], luminance[late], switch_on_s=3 * H)


def test_kept_level_follows_every_add_and_refit() -> None:
    # level() is kept between adds (the live stop asks at every sample); every add, one
    # by one or in a batch, and every refit must give the level computed afresh.
    time_s, luminance = decay_log(600.0, 0.8, 0.05)
    tracker = DecayTracker(refit_every=50)
    steps = [(slice(i, i + 1)) for i in range(0, 400)] + [
        slice(i, i + 97) for i in range(400, time_s.size - 97, 97)
    ]
    checked = 0
    for step in steps:
        tracker.add(time_s[step], luminance[step])
        kept = tracker.level()
        assert tracker.level() == kept or math.isnan(kept)
        tracker._level = None  # what level() computes with nothing kept
        fresh = tracker.level()
        if math.isnan(fresh):
            assert math.isnan(kept)
            continue
        assert kept == fresh
        checked += 1
    assert checked > 300
    assert tracker.n_fits > 5
