"""Outputs end off whatever ends the program (issue 16), on a served simulated bench.

The bench is served by ``perovlab-daq sim serve`` in a process of its own, so
the instrument state outlives the processes under test, as on hardware. Each test starts
``perovlab-daq run PROCEDURE --bench <served bench file>`` (the supervisor, which starts
the acquisition process), waits until the run is going, ends it at a random moment - a
catchable signal to the process the user started, SIGKILL of that process, or SIGKILL of
the acquisition process - and then reads the served instruments from here: the source
meter must answer ``:OUTP?`` with 0 and the laser report emission off within 2 s of the
ending; the file opens with plain h5py, says how the run ended, and the exit code is the
documented one (docs/reliability.md).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from served_helpers import (
    ENV,
    SAFE_WITHIN_S,
    Outputs,
    end_and_time_off,
    hazard_on,
    run_status,
    served_bench,
    wait_running,
)

from perovlab_daq.bench import load_bench

pytestmark = pytest.mark.fault_class("process ended: supervisor on a served bench")
__all__ = ["served_bench"]  # the module-scoped fixture, one server for this module
#: Long runs (ended by the test long before they finish), a few rows per second.
RUNS = {
    "lifetime": [
        "current_density=20",
        "first_interval=0.02",
        "interval=0.1",
        "spectrum_interval=1",
        "dark_settle=0.05",
        "dark_readings=2",
        "max_duration=600",
    ],
    "pl-spectrum": ["repeats=1000", "integration_time=0.05", "interval=0"],
    "pl-stability": ["duration=600", "interval=0.3", "integration_time=0.01"],
}
CATCHABLE = ["SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1"]
ENDINGS = [*CATCHABLE, "SIGKILL-supervisor", "SIGKILL-acquisition"]
#: A quick cross-section runs by default; every pair is marked slow.
QUICK = {
    ("lifetime", "SIGTERM"),
    ("lifetime", "SIGKILL-acquisition"),
    ("pl-stability", "SIGHUP"),
    ("pl-stability", "SIGKILL-acquisition"),
    ("pl-spectrum", "SIGQUIT"),
    ("lifetime", "SIGKILL-supervisor"),
}


def _start(procedure: str, bench_file: Path, folder: Path) -> subprocess.Popen:
    sets = [arg for value in RUNS[procedure] for arg in ("--set", value)]
    return subprocess.Popen(
        [sys.executable, "-m", "perovlab_daq.cli", "run", procedure, "--bench", str(bench_file)]
        + ["-o", str(folder), "--json", *sets],
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _cases():
    for procedure in RUNS:
        for ending in ENDINGS:
            marks = () if (procedure, ending) in QUICK else (pytest.mark.slow,)
            yield pytest.param(procedure, ending, marks=marks, id=f"{procedure}-{ending}")


@pytest.mark.parametrize(("procedure", "ending"), list(_cases()))
def test_outputs_end_off_and_file_says_how(served_bench, tmp_path, procedure, ending):
    outputs = Outputs(served_bench)
    proc = _start(procedure, served_bench, tmp_path)
    try:
        pids = wait_running(proc, tmp_path, outputs, procedure)
        assert pids["supervisor"] == proc.pid
        acquisition = psutil.Process(pids["acquisition"])
        time.sleep(random.uniform(0.0, 1.5))  # a random moment of the run ...
        hazard_on(outputs, procedure)  # ... with the output on
        ended_at = time.monotonic()
        if ending == "SIGKILL-acquisition":
            acquisition.send_signal(signal.SIGKILL)
        elif ending == "SIGKILL-supervisor":
            proc.send_signal(signal.SIGKILL)
        else:
            proc.send_signal(getattr(signal, ending))
        took = outputs.wait_off(ended_at, limit_s=10.0)
        out, err = proc.communicate(timeout=120)
        acquisition.wait(60) if acquisition.is_running() else None
    finally:
        if proc.poll() is None:
            proc.kill()
        outputs.close()
    print(f"{procedure} {ending}: outputs read off {took:.2f} s after the ending")
    assert took <= SAFE_WITHIN_S, f"outputs off only {took:.2f} s after {ending}"
    path = next(tmp_path.glob("*.h5"))
    status, reason, kinds = run_status(path)
    assert not list(tmp_path.glob("*.pids"))
    if ending == "SIGKILL-supervisor":
        assert proc.returncode == -signal.SIGKILL
        assert status == "aborted" and "supervisor gone" in reason, (status, reason)
        assert "safe_state" in kinds
        return
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["outputs_off"] is True and summary["file_readable"] is True, summary
    assert set(summary["safe_state"].values()) == {"off"}, summary
    if ending == "SIGKILL-acquisition":
        assert proc.returncode == 1, err[-2000:]
        assert summary["status"] == "killed" and "SIGKILL" in summary["reason"]
        assert status == "interrupted", (status, reason)
        assert {"killed", "safe_state", "recovered"} <= set(kinds)
    else:
        assert proc.returncode == 130, err[-2000:]
        assert summary["status"] == "aborted"
        assert status == "aborted" and ending in reason, (status, reason)
        assert "safe_state" in kinds


@pytest.mark.parametrize("ending", ["SIGHUP", "SIGKILL-acquisition"])
def test_sequence_ends_safely_and_skips_the_rest(served_bench, tmp_path, ending):
    recipe = tmp_path / "recipe.yaml"
    sets = dict(value.split("=") for value in RUNS["pl-stability"])
    recipe.write_text(
        json.dumps({"name": "two", "runs": [{"procedure": "pl-stability", "parameters": sets}] * 2})
    )
    outputs = Outputs(served_bench)
    proc = subprocess.Popen(
        [sys.executable, "-m", "perovlab_daq.cli", "sequence", str(recipe)]
        + ["--bench", str(served_bench), "-o", str(tmp_path), "--json"],
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        pids = wait_running(proc, tmp_path, outputs, "pl-stability")
        time.sleep(random.uniform(0.0, 1.0))
        hazard_on(outputs, "pl-stability")
        if ending == "SIGKILL-acquisition":
            end = lambda: os.kill(pids["acquisition"], signal.SIGKILL)  # noqa: E731
        else:
            end = lambda: proc.send_signal(getattr(signal, ending))  # noqa: E731
        took, out, err = end_and_time_off(proc, outputs, end, timeout_s=120)
    finally:
        if proc.poll() is None:
            proc.kill()
        outputs.close()
    assert took <= SAFE_WITHIN_S, f"outputs off only {took:.2f} s after {ending}"
    rows = json.loads(out.strip().splitlines()[-1])
    assert rows[1]["note"].startswith("skipped") and not rows[1]["file"]
    files = list(tmp_path.glob("*.h5"))
    assert len(files) == 1
    status, reason, _kinds = run_status(files[0])
    if ending == "SIGHUP":
        assert proc.returncode == 130, err[-2000:]
        assert rows[0]["status"] == "aborted" and status == "aborted" and "SIGHUP" in reason
    else:
        assert proc.returncode == 1, err[-2000:]
        assert rows[0]["status"] == "killed" and status == "interrupted"


def test_a_child_rebuilds_the_same_bench_from_a_file_or_a_preset(served_bench):
    from dataclasses import replace

    from perovlab_daq.bench import sim_bench
    from perovlab_daq.supervisor import bench_spec

    assert bench_spec(sim_bench("qd-only", seed=3)) == {"sim": "qd-only", "seed": 3}
    assert bench_spec(load_bench(served_bench)) == {"file": str(served_bench.resolve())}
    edited = replace(load_bench(served_bench), setup={"device_area_cm2": 0.5})
    assert bench_spec(edited) is None  # not what the file says: runs unsupervised


@pytest.mark.parametrize("ending", ["SIGINT", "SIGHUP"])
def test_a_terminal_signal_during_the_acquisitions_start_up_ends_it_safely(
    served_bench, tmp_path, ending
):
    """Ctrl-C or a closed terminal signals the whole process group: the acquisition
    process too, while it may still be importing (1-2 s, before its handlers exist). The
    run must end as for any Ctrl-C (aborted, exit 130), not as a killed run (exit 1)."""
    outputs = Outputs(served_bench)
    sets = [arg for value in RUNS["lifetime"] for arg in ("--set", value)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "perovlab_daq.cli", "run", "lifetime", "--bench", str(served_bench)]
        + ["-o", str(tmp_path), "--json", *sets],
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # a process group of its own, as a terminal's job
    )
    try:
        deadline = time.monotonic() + 60
        while not list(tmp_path.glob("*.pids")):  # written once the acquisition is started
            assert proc.poll() is None and time.monotonic() < deadline, "no acquisition process"
            time.sleep(0.01)
        os.killpg(proc.pid, getattr(signal, ending))  # what the terminal does
        out, err = proc.communicate(timeout=120)
        took = outputs.wait_off(time.monotonic(), limit_s=10.0)
    finally:
        if proc.poll() is None:
            proc.kill()
        outputs.close()
    assert took <= SAFE_WITHIN_S
    assert proc.returncode == 130, err[-2000:]
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["status"] == "aborted" and ending in summary["reason"], summary
    assert summary["outputs_off"] is True and summary["file_readable"] is True, summary
    if list(tmp_path.glob("*.h5")):  # the file, if the run got that far, says why
        status, reason, _kinds = run_status(next(tmp_path.glob("*.h5")))
        assert status == "aborted" and ending in reason, (status, reason)
