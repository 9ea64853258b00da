"""Benchmark a DEFAULT lifetime run on the shipped simulated bench (issue 15).

Run: ``python benchmarks/bench_lifetime_default.py [--current-density 30] [--repeats 1]``
(about a minute per run). Each line prints: name, value, unit, baseline value, ratio,
target, met or not.

The run is ``perovlab-daq run lifetime --sim`` with only the current density set: every
schedule at its default in device time (first interval 1 s, log-spaced, then 60 s; an EL
spectrum every 600 s), the shipped ``ageing_acceleration`` for lifetime (1000) and the
live stop at L/L0 = 0.5. Figures:

- wall time from start to stop, against the bare simulated world's T50 in wall time
  (``World.t50_device_s / acceleration``: the least any run to T50 can take);
- readings between switch-on and the true T50, against the readings the default
  schedule asks for in that device time (``sampling_interval_s`` summed), target >= 200;
- the stop ratio (median L/L0 of the last 5 readings), target 0.5 +- 2 %;
- T50 from the file (the lifetime estimator) against the world's T50, target 3 %.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

from bench_procedure import report
from perovlab_daq.procedures.lifetime import LifetimeProcedure, sampling_interval_s

from perovlab_daq.bench import sim_bench
from perovlab_daq.runner import execute_run, plan_run
from perovlab_daq.sim.world import World
from perovlab_daq.storage import HDF5Results

log = logging.getLogger(__name__)


def scheduled_readings(until_s: float) -> int:
    """Readings the default schedule takes in ``until_s`` device seconds after switch-on."""
    specs = LifetimeProcedure.parameter_specs()
    first, interval = specs["first_interval"]["default"], specs["interval"]["default"]
    per_decade = specs["points_per_decade"]["default"]
    t, count = 0.0, 0
    while t < until_s:
        count += 1
        t += sampling_interval_s(t, first, interval, per_decade)
    return count


def one_run(density: float, folder: Path) -> None:
    """Run once at ``density`` mA/cm^2 and print the figures."""
    config = sim_bench("qd-in-matrix")
    acceleration = config.sim.acceleration_for("lifetime")
    truth_s = World("qd-in-matrix").t50_device_s(density)
    plan = plan_run(
        "lifetime",
        bench_config=config,
        parameters={"current_density": density},
        output=folder,
        sample={"sample": "bench", "device": "D1", "pixel": "1", "operator": "bench"},
    )
    start = time.monotonic()
    outcome = execute_run(plan, log_file=False)
    wall_s = time.monotonic() - start
    if outcome.status != "finished":
        raise SystemExit(f"run ended {outcome.status}: {outcome.reason}")
    loaded = HDF5Results.load(outcome.path)
    try:
        device_s = loaded.data["device_time"].to_numpy()
    finally:
        loaded.close()
    figures = outcome.figures
    before = int((device_s < truth_s).sum())
    print(
        f"# {density:g} mA/cm^2: acceleration {acceleration:g}, world T50 "
        f"{truth_s / 3600:.4g} device h, L0 {figures['l0_cd_m2']:.5g} cd/m^2, "
        f"{int(figures['n_points'])} readings"
    )
    report("default run wall time to stop", wall_s, "s", truth_s / acceleration, "~60 s", None)
    report(
        "readings before T50",
        before,
        "",
        scheduled_readings(truth_s),
        ">= 200",
        before >= 200,
    )
    stop = figures["final_relative_luminance"]
    report("stop ratio L/L0", stop, "", 0.5, "0.5 +- 2 %", abs(stop / 0.5 - 1) <= 0.02)
    t50_h = figures["t50_h"]
    report(
        "T50 from the file",
        t50_h,
        "h",
        truth_s / 3600,
        "+- 3 %",
        abs(t50_h * 3600 / truth_s - 1) <= 0.03,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--current-density", type=float, default=30.0, help="mA/cm^2")
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    print(f"# Python {sys.version.split()[0]}; repeats {args.repeats}")
    with tempfile.TemporaryDirectory() as folder:
        for _ in range(args.repeats):
            one_run(args.current_density, Path(folder))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
