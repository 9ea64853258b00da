"""Benchmark the analysis API: peak_metrics against a curve_fit loop, and lifetime_metrics.

Run: ``python benchmarks/bench_analysis.py`` (a few seconds on 2 cores). Each line
prints: name, value, unit, baseline value, ratio, target, met or not.

- ``peak_metrics`` on 10,000 noisy Gaussian spectra of 1044 px (QE Pro-like grid, sloping
  baseline, SNR 200) against the obvious alternative, a per-spectrum
  ``scipy.optimize.curve_fit`` Gaussian + line. The loop is timed on a subsample of
  ``FIT_SUBSAMPLE`` spectra and scaled to 10,000 (the output says so); the centres are
  compared on that subsample.
- ``lifetime_metrics`` on 1,000,000 points of a noisy stretched-exponential decay.
- ``perovlab-daq analyze`` (:func:`perovlab_daq.figures.analyze_files`) over 1,000 small
  lifetime run files (1,000 rows each) with one worker process per core, against the
  same files analysed one after the other in one process (what a lab script does); the
  cores kept busy come from the CPU time of the worker processes.
- Time to analyse one lifetime file of 10^3, 10^4, 10^5 and 10^6 rows, and how it grows
  for each tenfold (linear growth would be 10x).
"""

from __future__ import annotations

import logging
import math
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy.optimize import curve_fit

from perovlab_daq.analysis import lifetime_metrics, peak_metrics

log = logging.getLogger(__name__)

N_SPECTRA = 10_000
N_PIXELS = 1044
FIT_SUBSAMPLE = 300
N_LIFETIME_POINTS = 1_000_000
REPEATS = 3
N_FILES = 1_000
FILE_ROWS = 1_000
DISTINCT_FILES = 20
GROWTH_ROWS = (1_000, 10_000, 100_000, 1_000_000)


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


def make_lifetime_file(path: Path, rows: int, seed: int = 0) -> Path:
    """Write a lifetime run file of ``rows`` rows (a noisy stretched-exponential decay)."""
    from perovlab_daq.testing import write_synthetic_lifetime_run

    tau = 1.4e5 * (1 + 0.5 * np.random.default_rng(seed).random())
    return write_synthetic_lifetime_run(path, rows, tau, noise=2e-3, seed=seed)


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _self_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _machine_busy_s() -> float:
    """CPU seconds all processes of the machine have used (``/proc/stat``; NaN elsewhere)."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return math.nan
    user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def bench_many_files(folder: Path) -> None:
    from perovlab_daq.figures import analyze_files, default_jobs

    distinct = [
        make_lifetime_file(folder / f"distinct{i}.h5", FILE_ROWS, seed=i)
        for i in range(DISTINCT_FILES)
    ]
    paths = []
    for index in range(N_FILES):
        path = folder / f"run{index:04d}.h5"
        shutil.copyfile(distinct[index % DISTINCT_FILES], path)
        paths.append(path)

    def analyse(jobs: int) -> float:
        start = time.perf_counter()
        results = list(analyze_files(paths, store=False, jobs=jobs))
        elapsed = time.perf_counter() - start
        failed = [p for p, r in results if not isinstance(r, dict)]
        if failed:
            raise RuntimeError(f"{len(failed)} files failed, e.g. {failed[0]}")
        return elapsed

    jobs = default_jobs()
    list(analyze_files(paths[:2], store=False, jobs=1))  # imports, caches
    sequential_s = analyse(1)
    cpu_before = _children_cpu_s() + _self_cpu_s()
    machine_before = _machine_busy_s()
    parallel_s = analyse(jobs)
    ours = _children_cpu_s() + _self_cpu_s() - cpu_before
    busy = ours / parallel_s
    # On a shared machine other processes take cores too: what was left for us.
    others = max(0.0, (_machine_busy_s() - machine_before - ours) / parallel_s)
    available = max(0.5, min(float(jobs), jobs - others)) if math.isfinite(others) else jobs
    print(
        f"# analyze: {N_FILES} lifetime files of {FILE_ROWS} rows; {jobs} worker processes "
        f"(--jobs default) against one process; other processes used {others:.2f} cores "
        f"meanwhile, leaving {available:.2f}"
    )
    report(
        f"analyze {N_FILES} files, per file",
        parallel_s / N_FILES * 1e3,
        "ms",
        sequential_s / N_FILES * 1e3,
        parallel_s / sequential_s,
        "(info)",
        True,
    )
    report(
        f"analyze {N_FILES} files, speed-up",
        sequential_s / parallel_s,
        "x",
        float(jobs),
        sequential_s / parallel_s / jobs,
        f">= {0.75 * jobs:g}x",
        sequential_s / parallel_s >= 0.75 * jobs,
    )
    report(
        f"analyze {N_FILES} files, cores busy",
        busy,
        "cores",
        available,
        busy / available,
        ">= 0.9 x free",
        busy >= 0.9 * available,
    )


def bench_growth(folder: Path) -> None:
    from perovlab_daq.figures import analyze_file

    times = []
    for rows in GROWTH_ROWS:
        path = make_lifetime_file(folder / f"rows{rows}.h5", rows, seed=rows)
        elapsed, _figures = best_time(lambda p=path: analyze_file(p, store=False))
        times.append(elapsed)
        report(
            f"analyze one file of {rows:.0e} rows",
            elapsed * 1e3,
            "ms",
            math.nan,
            math.nan,
            "(info)",
            True,
        )
    for (small, t_small), (large, t_large) in zip(
        zip(GROWTH_ROWS, times, strict=True),
        zip(GROWTH_ROWS[1:], times[1:], strict=True),
        strict=False,
    ):
        growth = t_large / t_small
        report(
            f"analyze time growth {small:.0e}->{large:.0e}",
            growth,
            "x",
            large / small,
            growth / (large / small),
            f"<= {large / small:g}x",
            growth <= large / small,
        )


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("pymeasure").setLevel(logging.ERROR)
    print(f"# {os.cpu_count()} CPUs")
    bench_peak_metrics()
    bench_lifetime()
    with tempfile.TemporaryDirectory(prefix="bench_analysis_") as tmp:
        bench_many_files(Path(tmp))
        bench_growth(Path(tmp))


if __name__ == "__main__":
    main()
