"""A killed rack: each channel's file is recovered and its run continues on its own device."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import pytest
from rack_helpers import write_rack_bench, write_recipe

from perovlab_daq.bench import load_bench
from perovlab_daq.cli import main
from perovlab_daq.rack import channel_of, resume_channel
from perovlab_daq.runner import RunInputError
from perovlab_daq.storage import HDF5Results, recover

#: The rack in a process of its own (killed by the test): sequence's parallel path.
_RACK = """
import sys
from perovlab_daq.bench import load_bench
from perovlab_daq.cli import main
from perovlab_daq.sequence import load_recipe, plan_recipe, run_recipe
bench = load_bench(sys.argv[1])
steps = plan_recipe(load_recipe(sys.argv[2]), bench_config=bench, output=sys.argv[3])
run_recipe(steps)
"""


def _rows(path: Path) -> int:
    try:
        with h5py.File(path, "r", locking=False, swmr=True) as file:
            return int(file["entry/data/time"].shape[0])
    except Exception:  # noqa: BLE001 - the writer may be between sessions
        return 0


@pytest.mark.slow  # ~40 s: a rack run, killed, recovered, both channels resumed to T50
def test_killed_rack_channels_recover_and_resume(tmp_path: Path) -> None:
    bench_path = write_rack_bench(tmp_path, acceleration=2_000.0)
    recipe = write_recipe(
        tmp_path,
        "runs:\n  - parallel:\n"
        "      - {procedure: lifetime, channel: 3, pixel: A, parameters: {current_density: 50}}\n"
        "      - {procedure: lifetime, channel: 5, pixel: B, parameters: {current_density: 50}}\n",
    )
    data = tmp_path / "data"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    process = subprocess.Popen(
        [sys.executable, "-c", _RACK, str(bench_path), str(recipe), str(data)],
        env=env,
        cwd=tmp_path,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60.0
        while time.monotonic() < deadline:
            files = sorted(data.glob("*.h5")) if data.exists() else []
            if len(files) == 2 and all(_rows(f) > 40 for f in files):
                break
            time.sleep(0.1)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(10)
    files = sorted(data.glob("*.h5"))
    assert len(files) == 2
    bench = load_bench(bench_path)
    for path, channel in zip(files, ("3", "5"), strict=True):
        assert recover(path).status == "interrupted"
        assert channel_of(path) == channel
        if channel == "3":
            outcome = resume_channel(path, bench)
            assert outcome.status == "finished", outcome.reason
            t50_h = outcome.figures["t50_h"]
        else:  # through the command line: the file says which channel it was
            code = main(["run", "lifetime", "--resume", str(path), "--bench", str(bench_path)])
            assert code == 0
            t50_h = HDF5Results.load(path).analysis["t50_h"]
        loaded = HDF5Results.load(path)
        try:
            segments = set(loaded.data["segment"].unique())
            temperatures = loaded.data["temperature"]
        finally:
            loaded.close()
        assert segments == {0.0, 1.0}
        assert temperatures.notna().all()
        assert t50_h > 0
    with pytest.raises(RunInputError, match="status"):
        resume_channel(files[0], bench)
