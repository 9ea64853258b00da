"""Soak benchmark: an accelerated lifetime run on the simulated bench with faults injected.

Runs one ``lifetime`` procedure through the same path as ``perovlab-daq run`` (the runner,
the pymeasure worker, the HDF5 storage) for a set wall time while the simulated source
meter and photodiode lose and garble replies and the photodiode drops off the bus once for
a few seconds. At the end it prints, and checks:

* points expected (stress time / sampling interval) and points stored in the file;
* points lost: every gap between stored rows longer than two intervals is a lost point,
  and each must be explained by a fault event (``retry``, ``reopen``, ``gap``) recorded
  inside that gap; *unexplained* lost points must be 0;
* faults injected (counted by the simulator) and faults survived (retry events);
* resident memory at start and end (growth must stay under 20 MB);
* the final instrument states read back from the simulated instruments (source output
  off, laser emission off).

Usage::

    python benchmarks/soak.py --minutes 10          # the Done-when run
    python benchmarks/soak.py --minutes 1 --json    # what tests/reliability runs in CI

Exit code 0 when every check passes, 1 otherwise.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import logging
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

#: Memory growth the Done-when allows over a 10-minute soak.
MEMORY_GROWTH_LIMIT_MB = 20.0
#: qd-in-matrix T50 at 20 mA/cm^2 in device hours (docs/simulator.md section 8).
T50_DEVICE_H = 28.1
FAULT_EVENT_KINDS = ("retry", "reopen", "gap", "fault")


def _rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 1e6


def soak_bench(
    minutes: float,
    *,
    seed: int,
    timeout_rate: float,
    garble_rate: float,
    outage_s: float,
) -> Any:
    """Return the simulated bench config with the soak's faults and ageing acceleration.

    The acceleration puts T50 at about half the wall time, so the run ages well past
    T50 without reaching the (very low) stop fraction and ends at ``max_duration``.
    """
    from perovlab_daq.bench import sim_bench

    base = sim_bench("qd-in-matrix", seed=seed)
    faults = {"timeout_rate": timeout_rate, "garble_rate": garble_rate}
    outage = {}
    if outage_s > 0:
        # The photodiode drops off the bus once, 40 % into the run, and comes back.
        outage = {"disconnect_after_s": 0.4 * minutes * 60.0, "disconnect_for_s": outage_s}
    roles = dict(base.roles)
    roles["source_meter"] = dataclasses.replace(roles["source_meter"], faults=dict(faults))
    roles["photodetector"] = dataclasses.replace(
        roles["photodetector"], faults={**faults, **outage}
    )
    acceleration = T50_DEVICE_H * 3600.0 / (0.5 * minutes * 60.0)
    sim = dataclasses.replace(
        base.sim,
        ageing_acceleration_by_procedure={"lifetime": acceleration},
    )
    return dataclasses.replace(base, roles=roles, sim=sim)


def lost_points(
    times: np.ndarray, interval_s: float, events: list[dict[str, Any]]
) -> tuple[int, int]:
    """Return (lost points explained by a fault event, lost points not explained).

    A gap between consecutive rows longer than two intervals lost ``round(gap/I) - 1``
    points; it is explained when a fault event (retry, reopen, gap, fault) falls inside
    it (events are time-stamped on the same run clock as the rows).
    """
    fault_times = np.array(
        sorted(float(e["time"]) for e in events if e.get("kind") in FAULT_EVENT_KINDS)
    )
    explained = unexplained = 0
    if len(times) < 2:
        return 0, 0
    steps = np.diff(times)
    for index in np.flatnonzero(steps > 2.0 * interval_s):
        start, end = times[index], times[index + 1]
        missing = int(round(steps[index] / interval_s)) - 1
        inside = fault_times[(fault_times >= start - 0.05) & (fault_times <= end + 0.05)]
        if inside.size:
            explained += missing
        else:
            unexplained += missing
    return explained, unexplained


def run_soak(
    minutes: float = 10.0,
    *,
    output: Path | None = None,
    interval_s: float = 0.2,
    timeout_rate: float = 0.02,
    garble_rate: float = 0.01,
    outage_s: float = 3.0,
    seed: int = 7,
) -> dict[str, Any]:
    """Run the soak and return its figures (see the module docstring).

    Parameters
    ----------
    minutes
        Wall time of the stress (the run's ``max_duration``).
    output
        Folder of the run file (default: a temporary folder, kept).
    interval_s
        Sampling interval (constant: ``first_interval = interval``).
    timeout_rate, garble_rate
        Fault rates on every reply of the source meter and the photodiode.
    outage_s
        Length of the photodiode's one outage (0: none).
    seed
        Noise and fault seed.
    """
    from perovlab_daq.bench import Bench
    from perovlab_daq.runner import execute_run, plan_run
    from perovlab_daq.storage import HDF5Results

    gc.collect()
    rss_process = _rss_mb()
    folder = Path(output) if output else Path(tempfile.mkdtemp(prefix="perovlab-soak-"))
    folder.mkdir(parents=True, exist_ok=True)
    config = soak_bench(
        minutes, seed=seed, timeout_rate=timeout_rate, garble_rate=garble_rate, outage_s=outage_s
    )
    duration_s = minutes * 60.0
    # Lifetime schedules are in device time: the soak's wall-time duration and sampling
    # interval are scaled by the bench's ageing acceleration so the run lasts `minutes`.
    device_per_wall = config.sim.acceleration_for("lifetime")
    plan = plan_run(
        "lifetime",
        bench_config=config,
        parameters={
            "current_density": 20.0,
            "first_interval": interval_s * device_per_wall,
            "interval": interval_s * device_per_wall,
            "max_duration": duration_s * device_per_wall,
            "stop_fraction": 0.01,
            "dark_readings": 3,
            "dark_settle": 0.0,
            "checkpoint_interval": 5.0,
            "spectrum_interval": 0.0,
            # An outage of a few seconds must be ridden out: 8 retries back off 7 s.
            "max_consecutive_failures": 8,
        },
        output=folder,
        sample={"sample": "soak", "pixel": "1"},
    )
    roles = ["source_meter", "photodetector", "laser"]
    started = time.monotonic()
    sampler = _MemorySampler(warm_up_s=min(10.0, 0.1 * duration_s))
    with Bench(config, procedure="lifetime", roles=roles) as bench:
        sampler.start()
        try:
            outcome = execute_run(plan, bench=bench, log_file=True)
        finally:
            sampler.stop()
        wall_s = time.monotonic() - started
        gc.collect()
        rss_end = _rss_mb()
        library = bench.visa_library
        injected = library.fault_counts()
        final_states = _final_states(bench)
    run = HDF5Results.load(outcome.path)
    data = run.data
    events = run.events
    times = data["time"].to_numpy(dtype=float)
    stress = times[np.isfinite(times)]
    explained, unexplained = lost_points(stress, interval_s, events)
    kinds: dict[str, int] = {}
    for event in events:
        kinds[event["kind"]] = kinds.get(event["kind"], 0) + 1
    injected_total = sum(sum(counts.values()) for counts in injected.values())
    figures = {
        "minutes": minutes,
        "wall_s": round(wall_s, 1),
        "status": outcome.status,
        "reason": outcome.reason,
        "file": str(outcome.path),
        "interval_s": interval_s,
        "points_expected": int(duration_s / interval_s),
        "points_stored": len(data),
        "points_lost_explained": explained,
        "points_lost_unexplained": unexplained,
        "faults_injected": injected_total,
        "faults_injected_by_resource": injected,
        "faults_survived": kinds.get("retry", 0),
        "events_by_kind": kinds,
        "memory_process_mb": round(rss_process, 1),
        "memory_warm_up_s": sampler.warm_up_s,
        "memory_start_mb": round(sampler.start_mb, 1),
        "memory_end_mb": round(rss_end, 1),
        "memory_peak_mb": round(max(sampler.peak_mb, rss_end), 1),
        "memory_growth_mb": round(rss_end - sampler.start_mb, 1),
        "final_states": final_states,
    }
    figures["checks"] = _checks(figures)
    return figures


class _MemorySampler:
    """Resident memory once the run is warm (imports, file, caches) and its peak after."""

    def __init__(self, warm_up_s: float) -> None:
        import threading

        self.warm_up_s = round(warm_up_s, 1)
        self.start_mb = math.nan
        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="soak-memory", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        if not math.isfinite(self.start_mb):
            self.start_mb = _rss_mb()

    def _run(self) -> None:
        if self._stop.wait(self.warm_up_s):
            return
        gc.collect()
        self.start_mb = _rss_mb()
        while not self._stop.wait(1.0):
            self.peak_mb = max(self.peak_mb, _rss_mb())


def _final_states(bench: Any) -> dict[str, str]:
    """Read the outputs back from the simulated devices themselves (no driver, no faults)."""
    library = bench.visa_library
    states = {}
    for role, prop, on in (
        ("source_meter", "output", lambda v: int(v) != 0),
        ("laser", "emission", lambda v: str(v) == "ON"),
    ):
        device = library.device(bench.config.roles[role].resource)
        states[role] = "on" if on(device._properties[prop].get_value()) else "off"
    states["laser_output_w"] = f"{bench.world.laser_output_w():.3g}"
    return states


def _checks(figures: dict[str, Any]) -> dict[str, bool]:
    return {
        "finished": figures["status"] == "finished",
        "no_unexplained_loss": figures["points_lost_unexplained"] == 0,
        "memory_growth_under_20_mb": figures["memory_growth_mb"] < MEMORY_GROWTH_LIMIT_MB,
        "source_output_off": figures["final_states"]["source_meter"] == "off",
        "laser_emission_off": figures["final_states"]["laser"] == "off",
        "faults_were_injected": figures["faults_injected"] > 0,
    }


def _print(figures: dict[str, Any]) -> None:
    lines = [
        f"soak: {figures['minutes']:g} min lifetime run, {figures['status']} "
        f"({figures['wall_s']} s wall) -> {figures['file']}",
        f"points expected      {figures['points_expected']}",
        f"points stored        {figures['points_stored']}",
        f"points lost          {figures['points_lost_explained']} accounted for by fault "
        f"events, {figures['points_lost_unexplained']} unexplained",
        f"faults injected      {figures['faults_injected']} "
        f"{json.dumps(figures['faults_injected_by_resource'])}",
        f"faults survived      {figures['faults_survived']} (retry events)",
        f"memory               {figures['memory_start_mb']} MB at start (after "
        f"{figures['memory_warm_up_s']:g} s of run), {figures['memory_end_mb']} MB at end "
        f"({figures['memory_growth_mb']:+} MB; peak {figures['memory_peak_mb']} MB; "
        f"{figures['memory_process_mb']} MB before the bench opened)",
        "final states         " + ", ".join(f"{k} {v}" for k, v in figures["final_states"].items()),
        "checks               "
        + ", ".join(f"{k} {'ok' if v else 'FAILED'}" for k, v in figures["checks"].items()),
    ]
    print("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    """Run the soak from the command line; exit 0 when every check passes."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="wall time (default 10)")
    parser.add_argument("--interval", type=float, default=0.2, help="sampling interval, s")
    parser.add_argument("--timeout-rate", type=float, default=0.02)
    parser.add_argument("--garble-rate", type=float, default=0.01)
    parser.add_argument("--outage", type=float, default=3.0, help="photodiode outage, s")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("-o", "--output", type=Path, default=None, help="folder of the run file")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    figures = run_soak(
        args.minutes,
        output=args.output,
        interval_s=args.interval,
        timeout_rate=args.timeout_rate,
        garble_rate=args.garble_rate,
        outage_s=args.outage,
        seed=args.seed,
    )
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        _print(figures)
    return 0 if all(figures["checks"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
