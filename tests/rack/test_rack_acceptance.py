"""Issue 20's Done-when: six parallel lifetime channels on the simulated bench.

Three current densities, two pixels (channels) each, started together by a recipe's
``parallel:`` entry: six files whose time ranges overlap, temperature in every row, each
pixel's own T50, and ``lifetime-fit`` over the six gives the preset's n within 0.1. Then a
channel made to fail (its source meter disconnected for longer than the retry budget)
ends alone with its file saying why while the other five finish. Runs are shortened only
through the simulated bench's ageing acceleration.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import h5py
import numpy as np
import pytest
from rack_helpers import write_rack_bench, write_recipe

from perovlab_daq.bench import load_bench
from perovlab_daq.figures.lifetime_fit import lifetime_fit_report
from perovlab_daq.sequence import load_recipe, plan_recipe, recipe_exit_code, run_recipe

pytestmark = pytest.mark.slow

DENSITIES = (25.0, 50.0, 100.0)


def six_channel_recipe(densities: tuple[float, ...] = DENSITIES) -> str:
    lines = ["name: rack acceptance", "defaults: {sample: R20, operator: ci}", "runs:"]
    lines += ["  - name: six channels", "    parallel:"]
    for index, density in enumerate(densities):
        for pixel in (1, 2):
            channel = 2 * index + pixel
            lines.append(
                f"      - {{procedure: lifetime, channel: {channel}, pixel: P{channel}, "
                f"parameters: {{current_density: {density:g}mA/cm^2}}}}"
            )
    return "\n".join(lines) + "\n"


def run_six(tmp_path: Path, **bench_options) -> list:
    bench = load_bench(write_rack_bench(tmp_path, **bench_options))
    recipe = load_recipe(write_recipe(tmp_path, six_channel_recipe()))
    steps = plan_recipe(recipe, bench_config=bench, output=tmp_path / "data")
    assert len(steps) == 1 and len(steps[0].channels) == 6
    return run_recipe(steps)


def time_range(path: Path) -> tuple[float, float]:
    """Wall-clock range of a run's rows (the file's start time + the time column)."""
    with h5py.File(path, "r", locking=False) as file:
        start = datetime.fromisoformat(str(file["entry"].attrs["start_time"])).timestamp()
        t = file["entry/data/time"][()]
    return start + float(t[0]), start + float(t[-1])


@pytest.mark.timeout(600)
def test_six_parallel_channels_recover_the_acceleration_law(tmp_path: Path) -> None:
    results = run_six(tmp_path, acceleration=2_000.0)
    assert [r.status for r in results] == ["finished"] * 6, [r.error for r in results]
    paths = [r.outcome.path for r in results]
    assert len(set(paths)) == 6
    ranges = [time_range(p) for p in paths]
    # Every pair of runs overlaps in wall time: they ran together.
    assert max(lo for lo, _ in ranges) < min(hi for _, hi in ranges)
    t50 = []
    for path in paths:
        with h5py.File(path, "r", locking=False) as file:
            temperature = file["entry/data/temperature"][()]
            assert temperature.size > 50 and np.isfinite(temperature).all()
            assert np.all((temperature > 20) & (temperature < 40))
            assert str(file["entry"].attrs["status"]) == "finished"
        t50.append(next(r for r in results if r.outcome.path == path).outcome.figures["t50_h"])
    assert np.isfinite(t50).all() and len(set(np.round(t50, 6))) == 6  # each pixel's own T50
    # Self-heating: the pixels at the highest current run warmest.
    report = lifetime_fit_report(paths, at=[100.0])
    print(f"T50 {np.round(t50, 3)} h; n = {report['n']:.3f} [{report['n_ci95']}]")
    assert report["n"] == pytest.approx(1.95, abs=0.1)
    temps = [r["temperature_mean_c"] for r in report["runs"]]
    assert temps[4] > temps[2] > temps[0]


@pytest.mark.timeout(600)
def test_a_failed_channel_ends_alone(tmp_path: Path) -> None:
    outage = {"source_meter": {"disconnect_after_s": 1.5, "disconnect_for_s": 120}}
    results = run_six(tmp_path, acceleration=40_000.0, faults={"2": outage})
    by_label = {r.label: r for r in results}
    failed = [r for r in results if r.status != "finished"]
    assert len(failed) == 1, [(r.label, r.status) for r in results]
    broken = failed[0]
    assert "ch2" in broken.label
    assert broken.outcome is not None and broken.outcome.status == "failed"
    with h5py.File(broken.outcome.path, "r", locking=False) as file:
        reason = str(file["entry"].attrs["status_reason"])
    assert "failed" in reason and "times in a row" in reason, reason
    # The source meter could not be read back off while it was off the bus: said loudly.
    assert recipe_exit_code(results) in (1, 3)
    assert sum(r.status == "finished" for r in by_label.values()) == 5
