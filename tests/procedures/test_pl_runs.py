"""Spectroscopy procedures through the runner into HDF5: analysis, report, live reading, abort."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from perovlab_daq.bench import Bench, sim_bench
from perovlab_daq.figures import analyze_file, draw_report
from perovlab_daq.runner import execute_run, plan_run
from perovlab_daq.storage import HDF5Results

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pl_helpers import laser_emitting  # noqa: E402

FAST = {
    "pl-spectrum": ("nc-methyl-acetate", {"power_density": "60 W/cm^2"}),
    "pl-fluence": (
        "nc-butanol",
        {"power_min": "10uW", "power_max": "100mW", "steps": 6, "sweep_down": True},
    ),
    "plqy": ("nc-hexane", {"max_integration_time": 1.0}),
    "el-spectra": ("qd-in-matrix", {"levels": "3, 5", "settle_time": 0}),
}


@pytest.mark.parametrize("name", sorted(FAST))
def test_run_into_hdf5_then_analyze_and_report(name: str, tmp_path: Path) -> None:
    preset, parameters = FAST[name]
    if name == "pl-spectrum":
        parameters = {**parameters, "power_mode": "power density"}
    plan = plan_run(
        name,
        bench_config=sim_bench(preset),
        parameters=parameters,
        output=tmp_path / f"{name}.h5",
        sample={"sample": preset},
    )
    outcome = execute_run(plan, log_file=False)
    assert outcome.status == "finished", outcome.reason
    assert outcome.figures, "the runner stored no analysis"
    again = analyze_file(outcome.path, store=False)
    for key, value in outcome.figures.items():
        if isinstance(value, float):
            assert again[key] == pytest.approx(value, rel=1e-9, nan_ok=True)
    picture = draw_report(outcome.path, tmp_path / f"{name}.png")
    assert picture.stat().st_size > 10_000
    run = HDF5Results.load(str(outcome.path))
    try:
        assert {"spectra", "spectra_raw", "spectra_dark"} <= set(run.streams())
        assert run.frames("spectra").units["intensity"] == "W/nm"
    finally:
        run.close()
    if name == "pl-fluence":
        assert outcome.figures["power_law_exponent"] == pytest.approx(1.10, abs=0.05)
    if name == "plqy":
        assert outcome.figures["plqy_pct"] == pytest.approx(81.9, abs=3.0)


_READER = """
import sys
from perovlab_daq.storage import RunReader
try:
    print(len(RunReader(sys.argv[1]).frames("spectra", with_intensity=False)))
except Exception:
    print(0)
"""


def _frames_seen_by_another_process(path: Path) -> int:
    done = subprocess.run(
        [sys.executable, "-c", _READER, str(path)], capture_output=True, text=True, timeout=60
    )
    try:
        return int(done.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return 0


def test_long_series_is_readable_mid_run_and_abort_leaves_laser_off(tmp_path: Path) -> None:
    config = sim_bench("qd-in-matrix")
    plan = plan_run(
        "pl-stability",
        bench_config=config,
        parameters={"laser_power": "20 mW"},  # default 600 s of device time, ~10 s wall
        output=tmp_path / "stability.h5",
        durability_interval_s=0.1,
    )
    stop = threading.Event()
    outcome_box: dict = {}
    roles = ["laser", "spectrometer", "power_meter", "filter_wheel", "sample_stage"]
    with Bench(config, procedure="pl-stability", roles=roles) as bench:
        worker = threading.Thread(
            target=lambda: outcome_box.update(
                outcome=execute_run(plan, stop_event=stop, log_file=False, bench=bench)
            )
        )
        worker.start()
        try:
            # Read from another process, as a second program (or the GUI of another
            # bench) would: HDF5 keeps one handle per file per process, so a reader in the
            # writer's own process is not the situation this guarantees.
            seen = 0
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and seen < 3:
                time.sleep(0.3)
                if not plan.path.exists():
                    continue
                seen = _frames_seen_by_another_process(plan.path)
            assert seen >= 3, "spectra were not readable while the run was going"
            assert worker.is_alive(), "the series ended before it was read mid-run"
            assert bench["laser"].emission_enabled is True  # exposure in progress
        finally:
            stop.set()
            worker.join(30)
        outcome = outcome_box["outcome"]
        assert outcome.status == "aborted"
        assert not laser_emitting(bench)
