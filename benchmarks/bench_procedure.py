"""Benchmark whole-application runs against a bare PyVISA loop on the simulated bench.

Run: ``python benchmarks/bench_procedure.py`` (about 3 minutes on 2 cores). Each line
prints: name, value, unit, baseline value, ratio, target, met or not.

- J-L-V: a 9,999-point hysteresis loop (0 to 4.999 V and back in 1 mV steps, the most
  one sweep allows, dwell 0) through ``plan_run``/``execute_run`` (procedure, DaqWorker,
  HDF5 storage, events, end-of-run analysis) against a bare loop that sends the same
  ``:SOURCE:VOLTAGE``, ``:READ?`` and ``READ?`` to the same simulated instruments with
  PyVISA and stores the numbers in a numpy array. The run takes no EL spectrum at each
  lit point (``el_each_point`` off; on by default): the loop sends no spectrometer
  command, and with it the run would compare 9,999 spectra against none (8-9x, measured).
- Lifetime: about 100,000 samples at constant current, sampling as fast as the
  instruments answer (``interval=0``), against a bare ``:READ?`` + ``READ?`` loop. The
  run length is set from a short calibration run, so the count varies a little.
- Per point means the steady state: time between the first and last rows of the file
  (the application) or of the loop (the baseline). The whole run, fixed costs
  included, is printed as information. The simulated instruments cost the same in both;
  the ratio is what the application adds on top.
- Peak memory of a lifetime run with 1,000,000 rows and 10,000 spectra (1044 px), in a
  fresh process: the real procedure, worker, storage and end-of-run analysis, with the
  readings made up in the process (the simulator would need ~5 minutes for a million
  readings), against a lab script that holds the same data in numpy arrays and writes
  them with h5py at the end.

Both are run ``--repeats`` times (default 5) as pairs, in alternating order (bare then
application, then application then bare, ...), and the verdict is on the pair with the
median ratio. The simulator's cost per reading drifts by up to 30 % over minutes on a
shared 2-core VM (the same bare loop measured 391 and 537 us minutes apart), so a
comparison of the best of each side, taken at different moments, swung from 0.87x to
1.39x between pairs; a pair's two runs are adjacent in time and the median of several
pairs is not moved by one slow stretch. The range of the ratios and the best of each
side are printed too.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import h5py
import numpy as np

log = logging.getLogger(__name__)

JLV_STEP_V = 0.001
JLV_TOP_V = 4.999
LIFETIME_POINTS = 30_000
CALIBRATION_S = 3.0
MEMORY_ROWS = 1_000_000
MEMORY_SPECTRA = 10_000
PIXELS = 1044
MEMORY_LIMIT_MB = 300.0
RATIO_TARGET = 1.2


def report(
    name: str, value: float, unit: str, baseline: float, target: str, met: bool | None
) -> None:
    """Print one figure: name, value, unit, baseline, ratio, target, met."""
    base = "-" if baseline is None or math.isnan(baseline) else f"{baseline:.4g}"
    ratio = "-" if baseline is None or math.isnan(baseline) else f"{value / baseline:.2f}x"
    verdict = {True: "met", False: "NOT MET", None: "-"}[met]
    print(
        f"{name:<44} {value:>10.4g} {unit:<7} baseline {base:>9}  ratio {ratio:>7}"
        f"  target {target:<12} {verdict}",
        flush=True,
    )


# --------------------------------------------------------------------------- bench
def bench_config() -> Any:
    """Return the shipped simulated bench with no ageing acceleration for any procedure.

    At the shipped 1e4 the lifetime pixel would reach T50 within seconds and stop the run;
    ageing is integrated lazily at every reading whatever the factor, so the cost per
    reading is the same.
    """
    from perovlab_daq.bench import sim_bench

    config = sim_bench()
    sim = dataclasses.replace(config.sim, ageing_acceleration_by_procedure={})
    return dataclasses.replace(config, sim=sim)


def open_bench(procedure: str) -> Any:
    """Open the source meter and photodiode of the simulated bench."""
    from perovlab_daq.bench import Bench

    return Bench(
        bench_config(), procedure=procedure, roles=["source_meter", "photodetector"]
    ).open()


def jlv_voltages() -> np.ndarray:
    """Return the set-points of the J-L-V loop, as the procedure sweeps them."""
    from perovlab_daq.procedures.jlv import sweep_voltages

    up = sweep_voltages(0.0, JLV_TOP_V, JLV_TOP_V, JLV_STEP_V, 1.0)
    return np.concatenate([up, up[:-1][::-1]])


# --------------------------------------------------------------------------- baselines
def bare_jlv() -> tuple[float, int]:
    """Bare loop: set V, ``:READ?``, ``READ?``, numbers into a numpy array; s per point."""
    voltages = jlv_voltages()
    with open_bench("jlv") as bench:
        smu, pd = bench["source_meter"], bench["photodetector"]
        # Configured as the procedure configures them; only the loop is timed.
        pd.configure(nplc=1.0, current_range_a=None)
        smu.apply_voltage_source(compliance_current_a=0.1, nplc=1.0)
        smu.source_voltage = 0.0
        smu.output_enabled = True
        smu_io, pd_io = smu.adapter.connection, pd.adapter.connection
        data = np.empty((len(voltages), 5))
        start = time.perf_counter()
        for index, voltage in enumerate(voltages):
            smu_io.write(f":SOURCE:VOLTAGE {voltage:g}")
            smu_values = smu_io.query(":READ?").split(",")
            pd_values = pd_io.query("READ?").split(",")
            data[index] = (
                time.monotonic(),
                voltage,
                float(smu_values[0]),
                float(smu_values[1]),
                float(pd_values[0]),
            )
        elapsed = time.perf_counter() - start
        smu.output_enabled = False
    return elapsed / (len(voltages) - 1), len(voltages)


def bare_lifetime(points: int) -> tuple[float, int]:
    """Bare loop at constant current: ``:READ?`` + ``READ?`` into a numpy array; s per point."""
    with open_bench("lifetime") as bench:
        smu, pd = bench["source_meter"], bench["photodetector"]
        pd.configure(nplc=1.0, current_range_a=None)
        smu.apply_current_source(compliance_voltage_v=12.0, nplc=1.0)
        smu.source_current = 20.0 * 1e-3 * 0.09  # 20 mA/cm^2 on the 0.09 cm^2 pixel
        smu.output_enabled = True
        smu_io, pd_io = smu.adapter.connection, pd.adapter.connection
        data = np.empty((points, 4))
        start = time.perf_counter()
        for index in range(points):
            smu_values = smu_io.query(":READ?").split(",")
            pd_values = pd_io.query("READ?").split(",")
            data[index] = (
                time.monotonic(),
                float(smu_values[0]),
                float(smu_values[1]),
                float(pd_values[0]),
            )
        elapsed = time.perf_counter() - start
        smu.output_enabled = False
    return elapsed / (points - 1), points


# --------------------------------------------------------------------------- application
def run_application(procedure: str, folder: Path, parameters: dict[str, Any]) -> tuple[Any, float]:
    """Plan and execute a run as the command line does; return (outcome, wall seconds)."""
    from perovlab_daq.runner import execute_run, plan_run

    plan = plan_run(
        procedure,
        bench_config=bench_config(),
        parameters=parameters,
        output=folder,
        sample={"sample": "bench", "pixel": "1"},  # the bench switch maps pixels 1-6
    )
    start = time.perf_counter()
    outcome = execute_run(plan)
    elapsed = time.perf_counter() - start
    if outcome.status != "finished":
        raise RuntimeError(f"{procedure} run ended {outcome.status}: {outcome.reason}")
    return outcome, elapsed


def app_jlv(folder: Path) -> tuple[float, int, float]:
    """Run the J-L-V loop; return (s per point in the sweep, points, whole-run s)."""
    outcome, elapsed = run_application(
        "jlv",
        folder,
        {
            "start_voltage": 0.0,
            "stop_voltage": JLV_TOP_V,
            "changeover_voltage": JLV_TOP_V,
            "fine_step": JLV_STEP_V,
            "coarse_step": 1.0,
            "direction": "both",
            "dwell": 0.0,
            "stop_at_compliance": False,
            "stop_at_saturation": False,
            # The bare loop reads the source meter and photodiode only; a spectrum at every
            # lit point (the default) is spectrometer work the loop does not do.
            "el_each_point": False,
        },
    )
    with h5py.File(outcome.path, "r") as file:
        times = file["entry/data/time"][:]
    return (times[-1] - times[0]) / (times.size - 1), times.size, elapsed


def app_lifetime(folder: Path, duration_s: float) -> tuple[float, int, float]:
    """Run a free-running lifetime for ``duration_s``; return (s per point, points, run s)."""
    outcome, elapsed = run_application(
        "lifetime",
        folder,
        {
            "first_interval": 0.0,
            "interval": 0.0,
            "max_duration": duration_s,
            "spectrum_interval": 0.0,
            "checkpoint_interval": 0.2,
        },
    )
    with h5py.File(outcome.path, "r") as file:
        times = file["entry/data/time"][:]
        stress = file["entry/data/jlv_sweep"][:] == 0
    times = times[stress][5:]  # after the L0 burst (held back until the first spectrum)
    return (times[-1] - times[0]) / (times.size - 1), int(stress.sum()), elapsed


# --------------------------------------------------------------------------- memory
def peak_rss_mb() -> float:
    """Return this process's own peak resident memory (MB).

    Linux's ``VmHWM`` belongs to the process's address space, which ``exec`` replaces.
    ``getrusage(RUSAGE_SELF).ru_maxrss`` does not restart at ``exec``: a child started
    by this benchmark after its own runs inherits the parent's peak (seen: 382.9 MB on
    both sides, the parent's size, not the children's). ``ru_maxrss`` only where there
    is no ``/proc``.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def memory_child(kind: str, folder: Path) -> None:
    """In a fresh process: do one memory run and print its peak RSS as JSON."""
    import gc

    baseline_mb = peak_rss_mb()
    if kind == "application":
        _memory_application(folder)
    else:
        _memory_lab_script(folder)
    gc.collect()
    peak_mb = peak_rss_mb()
    print(json.dumps({"peak_mb": peak_mb, "start_mb": baseline_mb}))


def _fake_spectrum(wavelength: np.ndarray, index: int) -> np.ndarray:
    centre = 662.0 + 2.0 * index / MEMORY_SPECTRA
    return 1500.0 + 5e4 * np.exp(-0.5 * ((wavelength - centre) / 13.6) ** 2)


def _memory_application(folder: Path) -> None:
    """A lifetime run of 1e6 rows and 1e4 spectra through worker, storage and analysis."""
    from perovlab_daq.procedures._lifetime_state import SamplingSchedule
    from perovlab_daq.procedures.lifetime import LifetimeProcedure

    from perovlab_daq.bench import sim_bench
    from perovlab_daq.figures import analyse_and_store
    from perovlab_daq.runner import _close_results
    from perovlab_daq.storage import DaqWorker, HDF5Results

    class MadeUpReadings(LifetimeProcedure):
        """The lifetime procedure's rows and spectra, with made-up numbers (no instruments)."""

        def startup(self) -> None:
            # What the real startup sets that the procedure's row hooks read.
            self.acceleration = 1e4
            self.clock = None
            self.device_offset_s = 0.0
            self.schedule = SamplingSchedule(
                self.first_interval, self.interval, self.points_per_decade
            )

        def execute(self) -> None:
            wavelength = np.linspace(350.0, 950.0, PIXELS)
            every = MEMORY_ROWS // MEMORY_SPECTRA
            l0 = 914.0
            for index in range(MEMORY_ROWS):
                t = index * 0.01
                device_t = t * self.acceleration
                relative = math.exp(-((device_t / 1.4e5) ** 0.7))
                self.emit_row(
                    time=t,
                    device_time=device_t,
                    voltage=3.1,
                    current=1.8e-3,
                    current_density=20.0,
                    photocurrent=1e-7 * relative,
                    luminance=l0 * relative,
                    relative_luminance=relative,
                    dark_current=2e-12,
                    in_compliance=0.0,
                    jlv_sweep=0.0,
                    segment=0.0,
                )
                if index % every == 0:
                    self.emit_frame(
                        _fake_spectrum(wavelength, index // every),
                        wavelength,
                        time=t,
                        device_time=device_t,
                        luminance=l0 * relative,
                        relative_luminance=relative,
                    )

    config = sim_bench()
    procedure = MadeUpReadings()
    results = HDF5Results(
        procedure,
        folder / "memory.h5",
        metadata={"ageing_acceleration": 1e4, "simulated": True}
        | {f"setup_{k}": v for k, v in config.setup.items()},
    )
    worker = DaqWorker(results)
    worker.start()
    while worker.is_alive():
        time.sleep(0.05)
    if results.status != "finished":
        raise RuntimeError(f"memory run ended {results.status}: {results.status_reason}")
    figures = analyse_and_store(LifetimeProcedure, results)
    _close_results(results)
    if not figures:
        raise RuntimeError("the end-of-run analysis of the memory run failed")


def _memory_lab_script(folder: Path) -> None:
    """What a lab script does: the same numbers in numpy arrays, written at the end."""
    wavelength = np.linspace(350.0, 950.0, PIXELS)
    rows = np.empty((MEMORY_ROWS, 12))
    spectra = np.empty((MEMORY_SPECTRA, PIXELS))
    every = MEMORY_ROWS // MEMORY_SPECTRA
    for index in range(MEMORY_ROWS):
        t = index * 0.01
        relative = math.exp(-((t * 1e4 / 1.4e5) ** 0.7))
        rows[index] = (
            t,
            t * 1e4,
            3.1,
            1.8e-3,
            20.0,
            1e-7 * relative,
            914.0 * relative,
            relative,
            2e-12,
            0.0,
            0.0,
            0.0,
        )
        if index % every == 0:
            spectra[index // every] = _fake_spectrum(wavelength, index // every)
    with h5py.File(folder / "lab_script.h5", "w") as file:
        file["rows"] = rows
        file["spectra"] = spectra
        file["wavelength"] = wavelength


def measure_memory(kind: str) -> tuple[float, float]:
    """Run one memory measurement in a fresh interpreter; return its (peak, start) RSS (MB)."""
    with tempfile.TemporaryDirectory(prefix="bench_memory_") as tmp:
        completed = subprocess.run(
            [sys.executable, __file__, "--memory-child", kind, "--folder", tmp],
            check=True,
            capture_output=True,
            text=True,
        )
    figures = json.loads(completed.stdout.strip().splitlines()[-1])
    return float(figures["peak_mb"]), float(figures["start_mb"])


# --------------------------------------------------------------------------- main
def run_pairs(repeats: int, bare: Any, app: Any) -> list[tuple[float, float, Any]]:
    """Run ``repeats`` (application, bare) pairs in alternating order; return them.

    ``bare()`` returns s per point; ``app()`` returns (s per point, extra). Each entry is
    (application s per point, bare s per point, extra).
    """
    pairs = []
    for index in range(repeats):
        if index % 2 == 0:
            bare_s = bare()
            app_s, extra = app()
        else:
            app_s, extra = app()
            bare_s = bare()
        pairs.append((app_s, bare_s, extra))
    return pairs


def median_pair(pairs: list[tuple[float, float, Any]]) -> tuple[float, float, Any]:
    """Return the pair whose app/bare ratio is the median (the lower one of an even count)."""
    ordered = sorted(pairs, key=lambda pair: pair[0] / pair[1])
    return ordered[(len(ordered) - 1) // 2]


def report_pairs(
    name: str, pairs: list[tuple[float, float, Any]], whole_runs_s: list[float]
) -> None:
    """Print the verdict (median pair), the spread of the pairs and the best of each side."""
    ratios = sorted(app / bare for app, bare, _ in pairs)
    app_s, bare_s, _ = median_pair(pairs)
    print(
        f"# {name}: {len(pairs)} pairs, app/bare per point "
        + ", ".join(f"{ratio:.2f}" for ratio in ratios)
        + f"; best of each side {min(p[0] for p in pairs) / min(p[1] for p in pairs):.2f}x"
    )
    print(
        "#   pairs in run order, app/bare us per point: "
        + ", ".join(f"{app * 1e6:.0f}/{bare * 1e6:.0f}" for app, bare, _ in pairs)
    )
    report(
        f"{name} per point, app (median pair)",
        app_s * 1e6,
        "us",
        bare_s * 1e6,
        f"<= {RATIO_TARGET}x",
        app_s <= RATIO_TARGET * bare_s,
    )
    report(
        f"{name} whole run per point (info)",
        statistics.median(whole_runs_s) * 1e6,
        "us",
        bare_s * 1e6,
        "-",
        None,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="application/bare pairs (default 5)")
    parser.add_argument("--lifetime-points", type=int, default=LIFETIME_POINTS)
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--skip-jlv", action="store_true", help="leave out the J-L-V pairs")
    parser.add_argument(
        "--memory-child", choices=["application", "lab-script"], help=argparse.SUPPRESS
    )
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    from perovlab_daq.cli import configure_logging

    configure_logging(0)
    if args.memory_child:
        memory_child(args.memory_child, args.folder)
        return 0

    print(f"# {os.cpu_count()} CPUs; Python {sys.version.split()[0]}; repeats {args.repeats}")
    with tempfile.TemporaryDirectory(prefix="bench_procedure_") as tmp:
        folder = Path(tmp)
        if not args.skip_jlv:

            def one_jlv() -> tuple[float, tuple[int, float]]:
                app_s, points, whole = app_jlv(folder)
                return app_s, (points, whole)

            pairs = run_pairs(args.repeats, lambda: bare_jlv()[0], one_jlv)
            points = pairs[0][2][0]
            report_pairs(
                f"J-L-V ({points} pts)", pairs, [whole / n for _a, _b, (n, whole) in pairs]
            )

        calibration, _n, _t = app_lifetime(folder, CALIBRATION_S)
        duration = args.lifetime_points * calibration

        def one_lifetime() -> tuple[float, tuple[int, float]]:
            app_s, count, whole = app_lifetime(folder, duration)
            return app_s, (count, whole)

        pairs = run_pairs(
            args.repeats, lambda: bare_lifetime(args.lifetime_points)[0], one_lifetime
        )
        print(
            f"# lifetime: {pairs[-1][2][0]} points in the last run ({duration:.1f} s set "
            f"from a {CALIBRATION_S:g} s calibration run)"
        )
        report_pairs(
            f"lifetime (~{args.lifetime_points} pts)",
            pairs,
            [whole / n for _a, _b, (n, whole) in pairs],
        )

    if not args.skip_memory:
        lab, lab_start = measure_memory("lab-script")
        app_peak, app_start = measure_memory("application")
        print(
            f"# peak RSS after imports, before the run: application {app_start:.1f} MB, "
            f"lab script {lab_start:.1f} MB"
        )
        report(
            f"peak RSS, {MEMORY_ROWS} rows + {MEMORY_SPECTRA} spectra",
            app_peak,
            "MB",
            lab,
            f"< {MEMORY_LIMIT_MB:g} MB",
            app_peak < MEMORY_LIMIT_MB,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
