"""Benchmark of one live-plot refresh tick against pymeasure's default ManagedWindow plot.

Run: ``python benchmarks/bench_gui.py [--rows N] [--spectra N] [--ticks N]``
(offscreen Qt; about a minute). Both sides get the same week-long lifetime run (1,000,000
rows) and, each tick, the same 10 new rows as a live run would, and are then painted:

* ours: the operator window's Lifetime tab (L/L0 and voltage against time, newest spectrum,
  1,000-spectrum waterfall, one new spectrum per tick), fed from memory;
* baseline: pymeasure's ``PlotWidget`` as ``ManagedWindow`` builds it (one
  ``ResultsCurve`` of L/L0 against time, read from pymeasure's CSV ``Results`` every tick,
  no downsampling); it cannot show spectra at all, so it does less work than ours.

Prints one line per figure: name, value, unit, baseline, ratio, target, met.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

log = logging.getLogger(__name__)

WEEK_S = 7 * 24 * 3600.0
TARGET_TICK_MS = 20.0
TARGET_RATIO = 5.0


def lifetime_rows(count: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Return a week of lifetime rows: log-spaced start, then linear; noisy decay."""
    rng = np.random.default_rng(seed)
    head = min(2000, count // 10)
    times = np.concatenate(
        [np.logspace(-1, 3, head, endpoint=False), np.linspace(1e3, WEEK_S, count - head)]
    )
    relative = np.exp(-((times / 2.0e5) ** 0.6)) * (1 + 0.003 * rng.standard_normal(count))
    voltage = 3.0 + 0.4 * (1 - np.exp(-times / 1e5)) + 0.002 * rng.standard_normal(count)
    return {
        "time": times,
        "device_time": times,
        "voltage": voltage,
        "relative_luminance": relative,
        "luminance": 1000.0 * relative,
    }


def spectrum(index: int, wavelength: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Return one EL spectrum (counts) that slowly fades and red-shifts."""
    peak = 660.0 + 0.005 * index
    return 5e4 * np.exp(-index / 3000) * np.exp(-0.5 * ((wavelength - peak) / 12.0) ** 2) + (
        50 * rng.standard_normal(len(wavelength))
    )


def median_ms(samples: list[float]) -> float:
    """Return the median of samples given in seconds, in milliseconds."""
    return 1e3 * statistics.median(samples)


def bench_ours(
    rows: dict[str, np.ndarray], spectra: int, ticks: int, log_time: bool
) -> tuple[float, float]:
    """Return the median tick (s) of the Lifetime tab, appending 10 rows + 1 spectrum each.

    Returns (wall, CPU) medians: on a loaded machine the CPU time of the GUI thread says
    what the tick itself costs; the wall time is what the target is set on.
    """
    from perovlab_daq.procedures.lifetime import LifetimeProcedure
    from pymeasure.display.Qt import QtWidgets

    from perovlab_daq.gui.live import RunData
    from perovlab_daq.gui.plots import ProcedureView, view_specs

    spec = next(s for s in view_specs() if s.name == "Lifetime")
    view = ProcedureView(spec, refresh_ms=10_000_000)  # ticks driven by hand
    view.timer.stop()
    view.resize(1400, 800)
    view.show()
    QtWidgets.QApplication.processEvents()
    count = len(rows["time"]) - 10 * (ticks + 3)
    run = RunData.from_arrays(LifetimeProcedure.COLUMNS, {k: v[:count] for k, v in rows.items()})
    rng = np.random.default_rng(1)
    wavelength = np.linspace(350.0, 1100.0, 1044)
    for index in range(spectra - ticks - 3):
        run.append_frame(
            "spectra", wavelength, spectrum(index, wavelength, rng), {"time": index * 600.0}
        )
    curves = view.new_curve(None, color=None, run=run)
    view.load(curves)
    if log_time:
        view.log_time.setChecked(True)
    view.repaint()
    samples = []
    cpu = []
    done = count
    for tick in range(ticks + 3):
        block = {k: v[done : done + 10] for k, v in rows.items()}
        run.append_rows(block)
        done += 10
        index = spectra - ticks - 3 + tick
        run.append_frame(
            "spectra", wavelength, spectrum(index, wavelength, rng), {"time": index * 600.0}
        )
        start, start_cpu = time.perf_counter(), time.thread_time()
        view.refresh()
        view.grab()  # render the whole tab now (plots, image, axes), as the screen would
        if tick >= 3:  # the first ticks build caches
            samples.append(time.perf_counter() - start)
            cpu.append(time.thread_time() - start_cpu)
    shown = len(curves.plotted("relative")[0])
    assert shown == done, (shown, done)
    view.close()
    return statistics.median(samples), statistics.median(cpu)


def bench_pymeasure(rows: dict[str, np.ndarray], ticks: int, folder: Path) -> float:
    """Return the median tick (s) of pymeasure's default plot on a CSV Results, 10 rows each."""
    from pymeasure.display.Qt import QtWidgets
    from pymeasure.display.widgets import PlotWidget
    from pymeasure.experiment import Procedure, Results

    class LifetimeCsv(Procedure):
        DATA_COLUMNS = ["device_time", "voltage", "relative_luminance"]

    procedure = LifetimeCsv()
    path = folder / "lifetime.csv"
    results = Results(procedure, str(path))
    count = len(rows["time"]) - 10 * (ticks + 2)
    frame = pd.DataFrame({c: rows[c] for c in LifetimeCsv.DATA_COLUMNS})
    frame.iloc[:count].to_csv(path, mode="a", header=False, index=False)
    widget = PlotWidget(
        "Results Graph", LifetimeCsv.DATA_COLUMNS, "device_time", "relative_luminance"
    )
    widget.plot_frame.timer.stop()  # ticks driven by hand
    widget.resize(1400, 800)
    widget.show()
    curve = widget.new_curve(results)
    widget.load(curve)
    procedure.status = Procedure.RUNNING
    QtWidgets.QApplication.processEvents()
    samples = []
    done = count
    for tick in range(ticks + 2):
        frame.iloc[done : done + 10].to_csv(path, mode="a", header=False, index=False)
        done += 10
        start = time.perf_counter()
        widget.plot_frame.update_curves()  # what its 0.2 s timer calls
        widget.grab()
        if tick >= 2:
            samples.append(time.perf_counter() - start)
    assert len(curve.xData) == done, (len(curve.xData), done)
    widget.close()
    return statistics.median(samples)


def line(name: str, value: float, unit: str, baseline: str, ratio: str, target: str, met: bool):
    """Print one result line."""
    print(
        f"{name:<44} {value:10.2f} {unit:<3} baseline {baseline:<48} ratio {ratio:<8} "
        f"target {target:<14} {'met' if met else 'NOT MET'}",
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the result lines."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--spectra", type=int, default=1000)
    parser.add_argument("--ticks", type=int, default=20)
    parser.add_argument("--baseline-ticks", type=int, default=5)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    from pymeasure.display.Qt import QtWidgets

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(sys.argv[:1])
    rows = lifetime_rows(args.rows)
    started = time.perf_counter()
    ours, ours_cpu = bench_ours(rows, args.spectra, args.ticks, log_time=False)
    ours_log, ours_log_cpu = bench_ours(rows, args.spectra, args.ticks, log_time=True)
    with tempfile.TemporaryDirectory() as folder:
        baseline = bench_pymeasure(rows, args.baseline_ticks, Path(folder))
    label = f"pymeasure PlotWidget+CSV {args.rows:,} pts {median_ms([baseline]):.1f} ms"
    what = f"{args.rows // 1000}k-pt lifetime + {args.spectra}-spectrum waterfall"
    for name, value in (("tick (linear time)", ours), ("tick (log time)", ours_log)):
        value_ms = 1e3 * value
        ratio = baseline / value
        line(
            f"gui refresh {name}, {what}",
            value_ms,
            "ms",
            label,
            f"{ratio:.0f}x",
            f"<{TARGET_TICK_MS:g} ms, >={TARGET_RATIO:g}x",
            value_ms < TARGET_TICK_MS and ratio >= TARGET_RATIO,
        )
    print(
        f"# CPU time of the GUI thread per tick (median): linear {1e3 * ours_cpu:.1f} ms, "
        f"log {1e3 * ours_log_cpu:.1f} ms; load average {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    print(
        f"# total {time.perf_counter() - started:.0f} s; baseline draws the curve only "
        "(pymeasure cannot show spectra)",
        flush=True,
    )
    app.processEvents()
    return 0


if __name__ == "__main__":
    sys.exit(main())
