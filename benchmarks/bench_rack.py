"""Rack benchmark: 16 simulated lifetime channels at one reading per second each, in one process.

Builds a simulated bench with 16 channels (each its own device, source meter,
photodetector and Keithley 2000 thermometer), starts 16 ``lifetime`` runs together through
:func:`perovlab_daq.rack.run_parallel` (the path of a recipe's ``parallel:`` entry), lets
them run for a set wall time, stops them safely, and reports:

* resident memory (RSS) of the process, sampled every second: peak and end;
* CPU used by the process over the run, as a fraction of one core;
* rows: every row a channel emitted (counted by the live tap in the worker thread) must
  be in its file (rows kept = rows emitted), and the sampling rate per channel;
* the final source outputs, read back off.

Sampling is the lifetime procedure's default schedule (device time: 1 s first interval,
20 per decade, 60 s linear); the simulated bench's ageing acceleration 60 makes the 60 s
device interval one reading per wall second per channel. Limits (issue 20): RSS under
400 MB and CPU under half a core, every row kept.

Usage::

    python benchmarks/bench_rack.py --seconds 120 --figure rack.png
    python benchmarks/bench_rack.py --seconds 30 --json

Exit code 0 when every check passes, 1 otherwise.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

CHANNELS = 16
RSS_LIMIT_MB = 400.0
CPU_LIMIT_CORES = 0.5
#: Device seconds per wall second: the default 60 s device interval becomes 1 s of wall time.
ACCELERATION = 60.0


def _rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 1e6


def rack_config(channels: int) -> Any:
    """Return the shipped simulated bench with ``channels`` channels at acceleration 60."""
    from perovlab_daq.bench import RoleConfig, sim_bench

    config = sim_bench("qd-in-matrix")
    rack = {
        str(k): {
            "source_meter": RoleConfig("source_meter", "keithley2400", f"GPIB1::{k}::INSTR"),
            "photodetector": RoleConfig("photodetector", "keithley6485", f"GPIB2::{k}::INSTR"),
            "thermometer": RoleConfig("thermometer", "keithley2000", f"GPIB3::{k}::INSTR"),
        }
        for k in range(1, channels + 1)
    }
    sim = dataclasses.replace(
        config.sim, ageing_acceleration_by_procedure={"lifetime": ACCELERATION}
    )
    return dataclasses.replace(config, sim=sim, channels=rack)


def run_rack(seconds: float, channels: int, folder: Path) -> dict[str, Any]:
    """Run the rack for ``seconds`` of wall time and return the measured figures."""
    import h5py
    import psutil

    from perovlab_daq.rack import ChannelRun, LiveChannel, run_parallel
    from perovlab_daq.runner import plan_run

    config = rack_config(channels)
    runs = []
    for k in range(1, channels + 1):
        plan = plan_run(
            "lifetime",
            bench_config=config.channel_config(k),
            parameters={"current_density": 10.0 + 2.0 * k},
            output=folder,
            sample={"sample": "bench", "pixel": f"ch{k}"},
        )
        runs.append(ChannelRun(str(k), f"ch{k}", plan))
    live = {r.channel: LiveChannel(r.channel, r.label) for r in runs}
    stop = threading.Event()
    process = psutil.Process()
    samples: list[tuple[float, float, float]] = []  # wall s, RSS MB, CPU cores
    ended: list[Any] = []

    def rack() -> None:
        ended.extend(run_parallel(runs, stop_event=stop, live=live))

    rss_start = _rss_mb()
    thread = threading.Thread(target=rack, name="rack")
    started = time.monotonic()
    cpu_started = sum(process.cpu_times()[:2])
    thread.start()
    last_wall, last_cpu = started, cpu_started
    while time.monotonic() - started < seconds:
        time.sleep(1.0)
        now, cpu = time.monotonic(), sum(process.cpu_times()[:2])
        samples.append((now - started, _rss_mb(), (cpu - last_cpu) / (now - last_wall)))
        last_wall, last_cpu = now, cpu
    cpu_fraction = (sum(process.cpu_times()[:2]) - cpu_started) / (time.monotonic() - started)
    rows_at_stop = {k: c.rows for k, c in live.items()}
    stop.reason = "benchmark over"  # type: ignore[attr-defined]
    stop.set()
    thread.join(120)
    per_channel = []
    for result in ended:
        outcome = result.outcome
        with h5py.File(outcome.path, "r", locking=False) as file:  # as the program opens it
            stored = int(file["entry/data/time"].shape[0])
            temperature = file["entry/data/temperature"][()]
        emitted = live[result.channel].rows
        per_channel.append(
            {
                "channel": result.channel,
                "status": outcome.status,
                "rows_emitted": emitted,
                "rows_stored": stored,
                "rows_per_s": rows_at_stop[result.channel] / seconds,
                "temperature_end_c": float(temperature[-1]),
                "outputs_off": outcome.outputs_off,
            }
        )
    rss = [s[1] for s in samples]
    return {
        "channels": channels,
        "seconds": seconds,
        "rss_start_mb": rss_start,
        "rss_peak_mb": max(rss),
        "rss_end_mb": rss[-1],
        "cpu_cores": cpu_fraction,
        "rows_emitted": sum(c["rows_emitted"] for c in per_channel),
        "rows_stored": sum(c["rows_stored"] for c in per_channel),
        "min_rows_per_s": min(c["rows_per_s"] for c in per_channel),
        "all_outputs_off": all(c["outputs_off"] for c in per_channel),
        "per_channel": per_channel,
        "samples": samples,
    }


def checks(report: dict[str, Any]) -> dict[str, bool]:
    """Return each limit of the issue and whether the run met it."""
    return {
        f"RSS peak < {RSS_LIMIT_MB:g} MB": report["rss_peak_mb"] < RSS_LIMIT_MB,
        f"CPU < {CPU_LIMIT_CORES:g} core": report["cpu_cores"] < CPU_LIMIT_CORES,
        "every row kept": report["rows_emitted"] == report["rows_stored"],
        "every channel >= 0.9 reading/s": report["min_rows_per_s"] >= 0.9,
        "outputs read back off": report["all_outputs_off"],
    }


def draw(report: dict[str, Any], path: Path) -> None:
    """Draw RSS and CPU against time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t, rss, cpu = zip(*report["samples"], strict=True)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 5), sharex=True)
    top.plot(t, rss)
    top.axhline(RSS_LIMIT_MB, color="r", ls="--", label="limit")
    top.set_ylabel("RSS (MB)")
    top.set_ylim(0, RSS_LIMIT_MB * 1.1)
    top.legend()
    bottom.plot(t, cpu)
    bottom.axhline(CPU_LIMIT_CORES, color="r", ls="--")
    bottom.set_ylabel("CPU (cores)")
    bottom.set_xlabel("wall time (s)")
    fig.suptitle(
        f"{report['channels']} lifetime channels, 1 reading/s each: "
        f"{report['rows_stored']} of {report['rows_emitted']} rows kept"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print the figures (or JSON); exit 0 when every check passes."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--channels", type=int, default=CHANNELS)
    parser.add_argument("--figure", type=Path)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="bench-rack-") as folder:
        report = run_rack(args.seconds, args.channels, Path(folder))
    results = checks(report)
    if args.figure is not None:
        draw(report, args.figure)
    if args.json:
        print(json.dumps({**report, "checks": results}))
    else:
        print(
            f"{report['channels']} channels for {report['seconds']:g} s (pid {os.getpid()}): "
            f"RSS {report['rss_start_mb']:.0f} -> peak {report['rss_peak_mb']:.0f} MB, "
            f"CPU {report['cpu_cores']:.2f} cores, rows {report['rows_stored']} stored of "
            f"{report['rows_emitted']} emitted, slowest channel "
            f"{report['min_rows_per_s']:.2f} readings/s"
        )
        for name, ok in results.items():
            print(f"  {'ok  ' if ok else 'FAIL'} {name}")
    return 0 if all(results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
