"""Benchmark of the HDF5 storage back end against pymeasure's CSV Results.

Run: ``python benchmarks/bench_storage.py [--rows N] [--spectra N] [--million N]``.
Prints one line per figure: name, value, unit, baseline, ratio, target, met.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import psutil
from pymeasure.experiment import IntegerParameter, Procedure, Results, Worker

from perovlab_daq.storage import DaqWorker, HDF5Results

log = logging.getLogger(__name__)

COLUMNS = {"time": "s", "voltage": "V", "current": "A", "luminance": "cd/m^2"}


class RowsProcedure(Procedure):
    """Emit ``rows`` rows as fast as possible; time the emit calls."""

    COLUMNS = COLUMNS
    DATA_COLUMNS = list(COLUMNS)
    rows = IntegerParameter("Rows", default=1000, minimum=0, maximum=100_000_000)
    emit_seconds = 0.0

    def execute(self) -> None:
        emit = self.emit
        start = time.perf_counter()
        for index in range(self.rows):
            emit(
                "results",
                {"time": index * 0.01, "voltage": 1.5, "current": 1e-3, "luminance": 100.0},
            )
        type(self).emit_seconds = time.perf_counter() - start


class SpectraProcedure(Procedure):
    """Emit ``frames`` QE Pro-sized (1044 px) spectra as fast as possible."""

    COLUMNS = {"time": "s"}
    DATA_COLUMNS = ["time"]
    frames = IntegerParameter("Frames", default=1000, minimum=0, maximum=10_000_000)

    def execute(self) -> None:
        wavelength = np.linspace(350.0, 1100.0, 1044)
        intensity = np.random.default_rng(0).normal(1000.0, 30.0, 1044)
        for index in range(self.frames):
            self.emit(
                "frame",
                {
                    "stream": "spectra",
                    "wavelength": wavelength,
                    "intensity": intensity,
                    "context": {"bias": 3.0, "laser_power": 1e-3, "index": index},
                },
            )


def run_worker(worker: Worker) -> float:
    start = time.perf_counter()
    worker.start()
    while worker.is_alive():  # pymeasure's join(t) would stop the run after t
        time.sleep(0.002)
    return time.perf_counter() - start


def bench_csv(folder: Path, rows: int) -> tuple[float, float]:
    procedure = RowsProcedure(rows=rows)
    results = Results(procedure, str(folder / "csv.csv"))
    elapsed = run_worker(Worker(results, log_level=logging.ERROR))
    return rows / elapsed, RowsProcedure.emit_seconds / rows


def bench_hdf5(folder: Path, name: str, rows: int, power_loss_safe: bool) -> tuple[float, float]:
    procedure = RowsProcedure(rows=rows)
    results = HDF5Results(procedure, folder / name, power_loss_safe=power_loss_safe)
    elapsed = run_worker(DaqWorker(results))
    assert results.status == "finished", results.status_reason
    return rows / elapsed, RowsProcedure.emit_seconds / rows


def bench_raw_h5py(folder: Path, rows: int, interval_s: float = 1.0) -> float:
    """Hand-written SWMR appender: rows buffered, written and flushed every interval/2."""
    start = time.perf_counter()
    with h5py.File(folder / "raw.h5", "w", libver=("v110", "v110")) as file:
        datasets = [
            file.create_dataset(n, shape=(0,), maxshape=(None,), chunks=(4096,), dtype="f8")
            for n in COLUMNS
        ]
        file.swmr_mode = True
        buffer: list[tuple[float, ...]] = []
        written = 0
        last = time.monotonic()

        def write() -> None:
            nonlocal written
            values = np.array(buffer)
            for index, dataset in enumerate(datasets):
                dataset.resize((written + len(values),))
                dataset[written:] = values[:, index]
            written += len(values)
            buffer.clear()
            file.flush()

        for index in range(rows):
            record = {"time": index * 0.01, "voltage": 1.5, "current": 1e-3, "luminance": 100.0}
            buffer.append(tuple(record[n] for n in COLUMNS))
            if time.monotonic() - last >= interval_s / 2:
                write()
                last = time.monotonic()
        write()
    return rows / (time.perf_counter() - start)


def bench_spectra(folder: Path, frames: int) -> tuple[float, float]:
    procedure = SpectraProcedure(frames=frames)
    path = folder / "spectra.h5"
    results = HDF5Results(procedure, path)
    elapsed = run_worker(DaqWorker(results))
    assert results.status == "finished", results.status_reason
    assert len(HDF5Results.load(path, procedure_class=SpectraProcedure).frames()) == frames
    return frames / elapsed, path.stat().st_size / frames


def bench_memory(folder: Path, rows: int) -> tuple[float, float, float]:
    gc.collect()
    process = psutil.Process()
    before = process.memory_info().rss
    procedure = RowsProcedure(rows=rows)
    path = folder / "million.h5"
    results = HDF5Results(procedure, path)
    run_worker(DaqWorker(results))
    del results, procedure
    gc.collect()
    after = process.memory_info().rss
    return before / 2**20, after / 2**20, path.stat().st_size / rows


def line(name: str, value: float, unit: str, baseline: float | None, target: str, met: bool | None):
    ratio = f"{value / baseline:8.2f}" if baseline else f"{'-':>8}"
    base = f"{baseline:12.4g}" if baseline is not None else f"{'-':>12}"
    verdict = {True: "met", False: "NOT MET", None: "-"}[met]
    print(f"{name:<44} {value:12.4g} {unit:<9} {base} {ratio}  {target:<28} {verdict}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=300_000)
    parser.add_argument("--spectra", type=int, default=5_000)
    parser.add_argument("--million", type=int, default=1_000_000)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    for noisy in ("pymeasure", "perovlab_daq"):
        logging.getLogger(noisy).setLevel(logging.ERROR)

    with tempfile.TemporaryDirectory(prefix="bench_storage_") as tmp:
        folder = Path(tmp)
        print(
            f"# {args.rows} rows x {len(COLUMNS)} columns; h5py {h5py.version.version}, "
            f"HDF5 {h5py.version.hdf5_version}; {os.cpu_count()} CPUs; folder {folder}"
        )
        print(
            f"{'name':<44} {'value':>12} {'unit':<9} {'baseline':>12} {'ratio':>8}  "
            f"{'target':<28} met"
        )
        csv_rate, csv_latency = bench_csv(folder, args.rows)
        kill_rate, kill_latency = bench_hdf5(folder, "kill.h5", args.rows, False)
        power_rate, power_latency = bench_hdf5(folder, "power.h5", args.rows, True)
        raw_rate = bench_raw_h5py(folder, args.rows)
        line("pymeasure CSV Results, Worker", csv_rate, "rows/s", None, "baseline", None)
        line(
            "HDF5Results, DaqWorker (process-kill safe)",
            kill_rate,
            "rows/s",
            csv_rate,
            ">= CSV rows/s",
            kill_rate >= csv_rate,
        )
        line(
            "HDF5Results, DaqWorker (power-loss safe)",
            power_rate,
            "rows/s",
            csv_rate,
            ">= CSV / 1.5",
            power_rate >= csv_rate / 1.5,
        )
        line(
            "raw h5py SWMR, flush every 0.5 s",
            raw_rate,
            "rows/s",
            kill_rate,
            "comparison",
            None,
        )
        line("per-row emit latency, CSV", csv_latency * 1e6, "us/row", None, "baseline", None)
        line(
            "per-row emit latency, HDF5 process-kill",
            kill_latency * 1e6,
            "us/row",
            csv_latency * 1e6,
            "<= CSV",
            kill_latency <= csv_latency,
        )
        line(
            "per-row emit latency, HDF5 power-loss",
            power_latency * 1e6,
            "us/row",
            csv_latency * 1e6,
            "<= 1.5 x CSV",
            power_latency <= 1.5 * csv_latency,
        )
        spectra_rate, frame_bytes = bench_spectra(folder, args.spectra)
        line(
            "spectra (1044 px), DaqWorker",
            spectra_rate,
            "frames/s",
            None,
            "> 1000",
            spectra_rate > 1000,
        )
        line("bytes per spectrum (1044 x float64)", frame_bytes, "B", 1044 * 8, "-", None)
        before, after, row_bytes = bench_memory(folder, args.million)
        line("bytes per row (4 float64 columns)", row_bytes, "B", 4 * 8, "-", None)
        line(f"RSS before {args.million} rows", before, "MB", None, "-", None)
        line(f"RSS after {args.million} rows", after, "MB", before, "-", None)
        line("RSS growth", after - before, "MB", None, "< 50", after - before < 50)
    return 0


if __name__ == "__main__":
    sys.exit(main())
