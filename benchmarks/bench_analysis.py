"""Benchmark the analysis API: peak_metrics against a curve_fit loop, and lifetime_metrics.

Run: ``python benchmarks/bench_analysis.py`` (a few seconds on 2 cores). Each line
prints: name, value, unit, baseline value, ratio, target, met or not.

- ``peak_metrics`` on 10,000 noisy Gaussian spectra of 1044 px (QE Pro-like grid, sloping
  baseline, SNR 200) against the obvious alternative, a per-spectrum
  ``scipy.optimize.curve_fit`` Gaussian + line. The loop is timed on a subsample of
  ``FIT_SUBSAMPLE`` spectra and scaled to 10,000 (the output says so); the centres are
  compared on that subsample.
- ``lifetime_metrics`` on 1,000,000 points of a noisy stretched-exponential decay.
"""

from __future__ import annotations

import logging
import math
import time

import numpy as np
from scipy.optimize import curve_fit

from perovlab_daq.analysis import lifetime_metrics, peak_metrics

log = logging.getLogger(__name__)

N_SPECTRA = 10_000
N_PIXELS = 1044
FIT_SUBSAMPLE = 300
N_LIFETIME_POINTS = 1_000_000
REPEATS = 3


def gaussian_with_line(
    x: np.ndarray, height: float, centre: float, sigma: float, offset: float, slope: float
) -> np.ndarray:
    return height * np.exp(-0.5 * ((x - centre) / sigma) ** 2) + offset + slope * (x - 700.0)


def make_spectra(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    wavelength_nm = np.linspace(350.0, 1100.0, N_PIXELS)
    centre = rng.uniform(520.0, 760.0, N_SPECTRA)
    sigma = rng.uniform(25.0, 40.0, N_SPECTRA) / (2 * math.sqrt(2 * math.log(2)))
    height = rng.uniform(0.5, 2.0, N_SPECTRA)
    spectra = height[:, None] * np.exp(
        -0.5 * ((wavelength_nm[None, :] - centre[:, None]) / sigma[:, None]) ** 2
    )
    spectra += 0.05 + rng.uniform(-1e-4, 1e-4, (N_SPECTRA, 1)) * (wavelength_nm - 700.0)
    spectra += 0.005 * height[:, None] * rng.standard_normal(spectra.shape)
    return wavelength_nm, spectra


def best_time(function, repeats: int = REPEATS) -> tuple[float, object]:
    best = math.inf
    result = None
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        best = min(best, time.perf_counter() - start)
    return best, result


def report(
    name: str, value: float, unit: str, baseline: float, ratio: float, target: str, met: bool
) -> None:
    baseline_text = "-" if math.isnan(baseline) else f"{baseline:.4g}"
    ratio_text = "-" if math.isnan(ratio) else f"{ratio:.1f}x"
    print(
        f"{name:<34} {value:>10.4g} {unit:<10} baseline {baseline_text:>9}  ratio {ratio_text:>7}"
        f"  target {target:<10} {'MET' if met else 'NOT MET'}"
    )


def bench_peak_metrics() -> None:
    wavelength_nm, spectra = make_spectra()
    vectorised_s, metrics = best_time(lambda: peak_metrics(wavelength_nm, spectra))

    subsample = spectra[:FIT_SUBSAMPLE]
    start = time.perf_counter()
    fitted_centres = np.empty(FIT_SUBSAMPLE)
    for i, row in enumerate(subsample):
        guess = (row.max() - row[:20].mean(), wavelength_nm[np.argmax(row)], 12.0, 0.0, 0.0)
        params, _ = curve_fit(gaussian_with_line, wavelength_nm, row, p0=guess)
        fitted_centres[i] = params[1]
    loop_s = (time.perf_counter() - start) * N_SPECTRA / FIT_SUBSAMPLE

    print(
        f"# peak_metrics: {N_SPECTRA} spectra x {N_PIXELS} px; curve_fit loop timed on "
        f"{FIT_SUBSAMPLE} spectra and scaled x{N_SPECTRA / FIT_SUBSAMPLE:.1f} to {N_SPECTRA}"
    )
    report(
        "peak_metrics time (10k spectra)",
        vectorised_s,
        "s",
        loop_s,
        loop_s / vectorised_s,
        ">= 50x",
        loop_s / vectorised_s >= 50,
    )
    difference = np.abs(metrics.centre_nm[:FIT_SUBSAMPLE] - fitted_centres)
    report(
        "centre max |diff| vs curve_fit",
        float(difference.max()),
        "nm",
        math.nan,
        math.nan,
        "<= 0.1 nm",
        bool(difference.max() <= 0.1),
    )
    report(
        "centre median |diff| vs curve_fit",
        float(np.median(difference)),
        "nm",
        math.nan,
        math.nan,
        "(info)",
        True,
    )


def bench_lifetime() -> None:
    rng = np.random.default_rng(1)
    time_s = np.linspace(0.0, 150 * 3600.0, N_LIFETIME_POINTS)
    tau_h, beta = 40.0, 0.8
    luminance = 914.0 * np.exp(-((time_s / 3600 / tau_h) ** beta))
    luminance *= 1 + 0.01 * rng.standard_normal(N_LIFETIME_POINTS)
    elapsed_s, metrics = best_time(lambda: lifetime_metrics(time_s, luminance))
    report(
        "lifetime_metrics time (1M points)",
        elapsed_s,
        "s",
        math.nan,
        math.nan,
        "< 1 s",
        elapsed_s < 1.0,
    )
    true_t50 = tau_h * math.log(2) ** (1 / beta)
    report(
        "lifetime_metrics T50 rel. error",
        abs(metrics["t50"] / true_t50 - 1),
        "",
        true_t50,
        metrics["t50"] / true_t50,
        "(info)",
        True,
    )


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    bench_peak_metrics()
    bench_lifetime()


if __name__ == "__main__":
    main()
