"""Benchmark reading run files: ``analyze`` against a plain h5py script, start-up, file sizes.

Run: ``python benchmarks/bench_read.py`` (~3 min on 2 quiet cores; ``--files 60
--repeats 1`` for a quick look). Each line prints: name, value, unit, baseline value,
ratio, target, met or not. Install what it imports with ``pip install -e .[bench]``.

- ``analyze`` per file (:func:`perovlab_daq.figures.analyze_files`, one process, figures
  not stored) over ``--files`` lifetime files of 1,000 rows, against a plain h5py
  script that opens each file, reads the same datasets (the 8 stress columns, the
  ageing acceleration, the events) and computes the same lifetime figures with
  :func:`perovlab_daq.analysis.lifetime_metrics` (what a lab script does; the fit of
  the stretched exponential is most of the time of both). The two run interleaved,
  ``--repeats`` times; the best pass of each counts. Target: within 1.5x. The same
  read without the fit is printed for information.
- ``analyze --jobs 2`` against ``--jobs 1`` on the same files: the speed-up against the
  cores other processes left free (``/proc/stat`` during the one-process pass).
- Start-up: wall time of ``perovlab-daq --help`` and ``perovlab-daq list`` (listing
  cache warm), best of 5, against a bare ``python -c pass``. Target: under 0.3 s.
- File sizes: a 1,000-row lifetime file and a one-spectrum ``pl-spectrum`` run on the
  simulated bench, against the same file repacked contiguously (``h5repack -l CONTI``,
  the smallest HDF5 layout of the same content). Target: within 2x of it.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

from perovlab_daq.analysis import lifetime_metrics
from perovlab_daq.figures.lifetime import STRESS_COLUMNS

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[1]
FILE_ROWS = 1_000
DISTINCT_FILES = 10


def report(
    name: str, value: float, unit: str, baseline: float, ratio: float, target: str, met: bool
) -> None:
    baseline_text = "-" if math.isnan(baseline) else f"{baseline:.4g}"
    ratio_text = "-" if math.isnan(ratio) else f"{ratio:.2f}x"
    print(
        f"{name:<40} {value:>10.4g} {unit:<6} baseline {baseline_text:>9}  ratio {ratio_text:>7}"
        f"  target {target:<12} {'MET' if met else 'NOT MET'}",
        flush=True,
    )


def make_files(folder: Path, count: int) -> list[Path]:
    """Write ``count`` lifetime files of :data:`FILE_ROWS` rows (copies of a few distinct)."""
    from perovlab_daq.testing import write_synthetic_lifetime_run

    distinct = []
    for index in range(DISTINCT_FILES):
        tau = 1.4e5 * (1 + 0.5 * np.random.default_rng(index).random())
        path = folder / f"distinct{index}.h5"
        distinct.append(write_synthetic_lifetime_run(path, FILE_ROWS, tau, noise=2e-3, seed=index))
    paths = []
    for index in range(count):
        path = folder / f"run{index:04d}.h5"
        shutil.copyfile(distinct[index % DISTINCT_FILES], path)
        paths.append(path)
    return paths


def plain_script(path: Path, fit: bool = True) -> float:
    """What a lab script does with h5py: read the datasets, compute T50 (returned)."""
    with h5py.File(path, "r") as file:
        data = file["entry/data"]
        columns = {name: data[name][()] for name in STRESS_COLUMNS if name in data}
        acceleration = float(file["entry/metadata"].attrs.get("ageing_acceleration", 1.0))
        events = file["entry/events"]
        _events = {name: events[name][()] for name in events}
    if not fit:
        return math.nan
    device = columns["device_time"] if acceleration else columns["time"]
    return float(lifetime_metrics(device, columns["luminance"], switch_on_s=0.0)["t50"])


def _cpu_s() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _machine_busy_s() -> float:
    """CPU seconds all processes of the machine have used (``/proc/stat``; NaN elsewhere)."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return math.nan
    user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def timed(function) -> tuple[float, float]:
    """Return (wall s, CPU s of this process and its children) of ``function()``."""
    cpu, wall = _cpu_s(), time.perf_counter()
    function()
    return time.perf_counter() - wall, _cpu_s() - cpu


def bench_analyze(paths: list[Path], repeats: int) -> None:
    from perovlab_daq.figures import analyze_files

    def analyze(jobs: int = 1) -> None:
        failed = [
            p for p, r in analyze_files(paths, store=False, jobs=jobs) if not isinstance(r, dict)
        ]
        if failed:
            raise RuntimeError(f"{len(failed)} files failed, e.g. {failed[0]}")

    plain_script(paths[0])
    analyze_files(paths[:2], store=False, jobs=1)  # imports
    best = {"plain": math.inf, "read": math.inf, "analyze": math.inf}
    cpu = dict(best)
    for _ in range(repeats):
        for name, function in (
            ("plain", lambda: [plain_script(p) for p in paths]),
            ("analyze", analyze),
            ("read", lambda: [plain_script(p, fit=False) for p in paths]),
        ):
            wall, used = timed(function)
            best[name] = min(best[name], wall / len(paths))
            cpu[name] = min(cpu[name], used / len(paths))
    n = len(paths)
    print(f"# analyze: {n} lifetime files of {FILE_ROWS} rows, 1 process, best of {repeats}")
    ratio = best["analyze"] / best["plain"]
    report(
        f"analyze per file ({n} files)",
        best["analyze"] * 1e3,
        "ms",
        best["plain"] * 1e3,
        ratio,
        "<= 1.5x",
        ratio <= 1.5,
    )
    cpu_ratio = cpu["analyze"] / cpu["plain"]
    report(
        "analyze per file, CPU time",
        cpu["analyze"] * 1e3,
        "ms",
        cpu["plain"] * 1e3,
        cpu_ratio,
        "<= 1.5x",
        cpu_ratio <= 1.5,
    )
    overhead = best["analyze"] - best["plain"]
    report(
        "analyze overhead per file (read+check)",
        overhead * 1e3,
        "ms",
        best["read"] * 1e3,
        overhead / best["read"],
        "(info)",
        True,
    )

    # Cores other processes used, measured during the one-process pass (its own CPU time
    # is exact; the pool's workers are not all reaped in time for RUSAGE_CHILDREN).
    busy_before = _machine_busy_s()
    wall_1, cpu_1 = timed(lambda: analyze(1))
    others = max(0.0, (_machine_busy_s() - busy_before - cpu_1) / wall_1)
    free = max(0.5, min(2.0, 2.0 - others)) if math.isfinite(others) else 2.0
    wall_2, _cpu_2 = timed(lambda: analyze(2))
    speed_up = wall_1 / wall_2
    print(f"# --jobs 2 against --jobs 1; other processes used {others:.2f} of 2 cores")
    report(
        f"analyze {n} files, --jobs 2 speed-up",
        speed_up,
        "x",
        free,
        speed_up / free,
        ">= 0.8 x free",
        speed_up >= 0.8 * free,
    )


def _wall(command: list[str], env: dict[str, str], runs: int = 5) -> tuple[float, float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(command, env=env, cwd=ROOT, capture_output=True, check=True)
        times.append(time.perf_counter() - start)
    return min(times), statistics.median(times)


def bench_startup(cache: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PEROVLAB_DAQ_CACHE_DIR": str(cache)}
    python = [sys.executable]
    bare, _ = _wall([*python, "-c", "pass"], env)
    cli = [*python, "-m", "perovlab_daq.cli"]
    subprocess.run([*cli, "list"], env=env, cwd=ROOT, capture_output=True, check=True)  # cache
    for args in (["--help"], ["list"]):
        best, median = _wall([*cli, *args], env)
        report(
            f"perovlab-daq {' '.join(args)} (median {median:.2f} s)",
            best,
            "s",
            bare,
            best / bare,
            "< 0.3 s",
            best < 0.3,
        )


def _compacted_size(path: Path, folder: Path) -> float:
    repack = shutil.which("h5repack")
    if repack is None:
        return math.nan
    target = folder / f"{path.stem}.conti.h5"
    subprocess.run([repack, "-l", "CONTI", str(path), str(target)], check=True, capture_output=True)
    return float(target.stat().st_size)


def bench_sizes(folder: Path) -> None:
    from perovlab_daq.testing import write_synthetic_lifetime_run

    lifetime = write_synthetic_lifetime_run(folder / "size_lifetime.h5", FILE_ROWS, 1.4e5)
    pl = folder / "size_pl.h5"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run(
        [sys.executable, "-m", "perovlab_daq.cli", "run", "pl-spectrum", "--sim", "-o", str(pl)],
        env=env,
        cwd=folder,
        capture_output=True,
        check=True,
    )
    for name, path in ((f"{FILE_ROWS}-row lifetime file", lifetime), ("one-spectrum PL file", pl)):
        size = path.stat().st_size
        compact = _compacted_size(path, folder)
        report(
            f"size of a {name}",
            size / 1e3,
            "kB",
            compact / 1e3,
            size / compact,
            "<= 2x",
            not size > 2 * compact,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=200, help="lifetime files (default 200)")
    parser.add_argument("--repeats", type=int, default=2, help="interleaved passes (default 2)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("pymeasure").setLevel(logging.ERROR)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else math.nan
    print(f"# {os.cpu_count()} CPUs, load average {load:.2f} at the start")
    with tempfile.TemporaryDirectory(prefix="bench_read_") as tmp:
        folder = Path(tmp)
        bench_startup(folder / "cache")
        bench_sizes(folder)
        bench_analyze(make_files(folder, args.files), args.repeats)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else math.nan
    print(f"# load average {load:.2f} at the end")


if __name__ == "__main__":
    main()
