"""The paths supervised last (issue 16): ``run --resume``, ``demo`` and the operator window.

Each is ended by SIGKILL of the process that holds the instruments, with the source on:

* ``run lifetime --resume`` on a bench served by ``perovlab-daq sim serve``: SIGKILL of
  the acquisition process; the source meter answers ``:OUTP?`` with 0 within 2 s (read
  from here), the run file opens with plain h5py, stays ``interrupted`` (resumable) and
  holds the ``killed`` event of the continuation, the segment file is gone, exit 1;
* ``demo`` (in-process simulator, so the outputs cannot be read from outside: the
  supervisor's own read-back is checked): SIGKILL of the acquisition process of the first
  run ends that run ``killed``, the file opens without repair, the rest is skipped;
* ``perovlab-daq gui`` on the served bench: SIGKILL of the window's process during a
  lifetime run; its guardian switches the source off within 2 s and closes the file
  ``killed``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import yaml
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

from perovlab_daq.storage.journal import journal_path

pytestmark = pytest.mark.fault_class("process ended: supervisor on a served bench")
__all__ = ["served_bench"]  # the module-scoped fixture, one server for this module

LIFETIME = [
    "current_density=20",
    "first_interval=0.02",
    "interval=0.1",
    "spectrum_interval=1",
    "dark_settle=0.05",
    "dark_readings=2",
    "max_duration=600",
]


def _cli(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "perovlab_daq.cli", *args],
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _window_running(served_bench: Path, folder: Path, procedure: str) -> subprocess.Popen:
    """Start ``perovlab-daq gui`` on the served bench, running ``procedure`` (screenshot mode).

    The window's screenshot runs use pixel 'A1', which the served switch does not have:
    the window gets the same served instruments without the switch.
    """
    bench = yaml.safe_load(served_bench.read_text())
    del bench["roles"]["pixel_switch"]
    no_switch = folder / "no_switch.yaml"
    no_switch.write_text(yaml.safe_dump(bench))
    shot = folder / "shot.png"
    return _cli(
        "gui", "--bench", str(no_switch), "-o", str(folder), "--screenshot", str(shot),
        "--run", procedure,
    )  # fmt: skip


def _kill_acquisition_with_source_on(
    proc: subprocess.Popen, folder: Path, outputs: Outputs, after_s: float = 0.0
) -> float:
    """SIGKILL the acquisition process ``after_s`` after the source came on; return the
    seconds until it reads off."""
    pids = wait_running(proc, folder, outputs, "lifetime")
    time.sleep(after_s)
    hazard_on(outputs, "lifetime")
    ended_at = time.monotonic()
    psutil.Process(pids["acquisition"]).send_signal(signal.SIGKILL)
    return outputs.wait_off(ended_at, limit_s=10.0)


@pytest.mark.slow
def test_killed_resume_ends_off_and_stays_resumable(served_bench, tmp_path):
    outputs = Outputs(served_bench)
    sets = [arg for value in LIFETIME for arg in ("--set", value)]
    bench = ["--bench", str(served_bench)]
    try:
        first = _cli("run", "lifetime", *bench, "-o", str(tmp_path), "--json", *sets)
        # after 4 s: the L0 burst is over and stress rows (what a resume needs) are stored
        assert _kill_acquisition_with_source_on(first, tmp_path, outputs, 4.0) <= SAFE_WITHIN_S
        first.communicate(timeout=120)
        assert first.returncode == 1
        path = next(tmp_path.glob("*.h5"))
        assert run_status(path)[0] == "interrupted"
        resumed = _cli("run", "lifetime", "--resume", str(path), *bench, "--json")
        took = _kill_acquisition_with_source_on(resumed, tmp_path, outputs)
        out, err = resumed.communicate(timeout=120)
    finally:
        outputs.close()
    print(f"resume SIGKILL-acquisition: source read off {took:.2f} s after the kill")
    assert took <= SAFE_WITHIN_S, f"source off only {took:.2f} s after the kill"
    assert resumed.returncode == 1, err[-2000:]
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["status"] == "killed" and Path(summary["file"]) == path, summary
    assert summary["outputs_off"] and summary["file_readable"], summary
    status, _reason, kinds = run_status(path)  # plain h5py, no repair
    assert status == "interrupted"  # can be resumed again
    assert kinds.count("killed") == 2, kinds  # the first run's and the continuation's
    assert not list(tmp_path.glob("*.segment*")), list(tmp_path.iterdir())
    assert not list(tmp_path.glob("*.pids"))


def _event_messages(path: Path, kind: str) -> list[str]:
    import h5py

    with h5py.File(path, "r") as file:
        events = file["entry/events"]
        kinds = [k.decode() if isinstance(k, bytes) else str(k) for k in events["kind"][:]]
        messages = [m.decode() if isinstance(m, bytes) else str(m) for m in events["message"][:]]
    return [m for k, m in zip(kinds, messages, strict=True) if k == kind]


def _waiting(process: psutil.Process) -> bool:
    """Return whether a process has slept for the last 0.5 s (done with its start-up)."""
    for _ in range(10):
        if process.status() != psutil.STATUS_SLEEPING:
            return False
        time.sleep(0.05)
    return True


def _wait_for(condition, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} within {timeout_s} s")
        time.sleep(0.05)


@pytest.mark.slow
def test_killed_demo_run_is_switched_off_and_closed_killed(tmp_path):
    folder = tmp_path / "demo"
    demo = _cli("demo", "-o", str(folder), "--seed", "3")
    try:
        _wait_for(lambda: list(folder.glob("*.pids")) and list(folder.glob("*.h5")), 90, "run")
        pid_file = next(folder.glob("*.pids"))
        path = pid_file.with_name(pid_file.name.removesuffix(".pids"))
        pids = json.loads(pid_file.read_text())
        assert pids["supervisor"] == demo.pid  # the demo supervises its runs
        # Killed before its writer started, a run's file stays a valid "queued" skeleton
        # (seen once in CI under load, 1 s after the file appeared): wait for the
        # journal, which the writer creates when the run starts.
        _wait_for(lambda: journal_path(path).exists(), 90, "start of the run")
        time.sleep(1.0)
        psutil.Process(pids["acquisition"]).send_signal(signal.SIGKILL)
        _wait_for(lambda: not pid_file.exists(), 30, "end of the killed run")
        demo.send_signal(signal.SIGTERM)  # the tour goes on with its next run: end it
        out, err = demo.communicate(timeout=180)
    finally:
        if demo.poll() is None:
            demo.kill()
    assert demo.returncode in (1, 130), err[-2000:]
    assert "killed" in out
    status, reason, kinds = run_status(path)  # plain h5py, no repair
    assert status == "interrupted", (status, reason)
    assert {"killed", "safe_state", "recovered"} <= set(kinds), kinds
    assert "SIGKILL" in _event_messages(path, "killed")[0]
    # the supervisor's own read-back (the in-process simulator cannot be read from here)
    assert "output off" in _event_messages(path, "safe_state")[-1]


@pytest.mark.slow
def test_killed_operator_window_is_switched_off_by_its_guardian(served_bench, tmp_path):
    outputs = Outputs(served_bench)
    window = _window_running(served_bench, tmp_path, "lifetime")
    try:
        wait_running(window, tmp_path, outputs, "lifetime", pids=False)
        guardians = psutil.Process(window.pid).children()
        assert len(guardians) == 1 and "perovlab_daq.guardian" in guardians[0].cmdline()
        # Screenshot mode starts the run 0.3 s after the window opens; an operator takes
        # longer, long enough for the guardian's imports (seconds on a loaded machine).
        _wait_for(lambda: _waiting(guardians[0]), 60, "guardian waiting in its loop")
        hazard_on(outputs, "lifetime")
        took, _out, _err = end_and_time_off(
            window, outputs, lambda: window.send_signal(signal.SIGKILL), timeout_s=30
        )
        guardians[0].wait(60)  # it has closed the file (exit code: not our child)
    finally:
        if window.poll() is None:
            window.kill()
        outputs.close()
    print(f"operator window SIGKILL: source read off {took:.2f} s after the kill")
    assert took <= SAFE_WITHIN_S, f"source off only {took:.2f} s after the kill"
    (path,) = tmp_path.glob("*.h5")
    status, reason, kinds = run_status(path)  # plain h5py, no repair
    assert status == "interrupted", (status, reason)
    assert any("guardian" in m for m in _event_messages(path, "killed")), kinds
    assert {"killed", "safe_state", "recovered"} <= set(kinds), kinds


def test_guardian_leaves_quietly_when_the_window_closes_with_no_run(tmp_path):
    from perovlab_daq.bench import sim_bench
    from perovlab_daq.guardian import Guardian, _exiting

    assert not _exiting(os.getpid())
    guardian = Guardian()
    assert guardian.start()
    pid = guardian.pid
    process = psutil.Process(pid)
    run_file = tmp_path / "never-written.h5"
    assert guardian.run_started(sim_bench(seed=2), "lifetime", run_file)
    guardian.run_ended()  # the window's own safe path ended the run
    guardian.close()  # window closed: end of file with no run going
    assert not process.is_running() or process.status() == psutil.STATUS_ZOMBIE
    assert guardian.pid is None and not run_file.exists()  # nothing touched


@pytest.mark.slow
@pytest.mark.parametrize(
    ("procedure", "name"),
    [
        ("lifetime", "SIGTERM"),
        ("lifetime", "SIGHUP"),
        ("pl-spectrum", "SIGINT"),
        ("pl-stability", "SIGQUIT"),
        ("pl-stability", "SIGUSR1"),
    ],
)
def test_signal_to_the_operator_window_ends_its_run_safely(
    served_bench, tmp_path, procedure: str, name: str
):
    """A catchable signal to the window: outputs read off (from here) within 2 s, 130."""
    outputs = Outputs(served_bench)
    window = _window_running(served_bench, tmp_path, procedure)
    try:
        wait_running(window, tmp_path, outputs, procedure, pids=False)
        hazard_on(outputs, procedure)
        took, _out, err = end_and_time_off(
            window, outputs, lambda: window.send_signal(getattr(signal, name))
        )
    finally:
        if window.poll() is None:
            window.kill()
        outputs.close()
    print(f"operator window {name} during {procedure}: outputs read off after {took:.2f} s")
    assert took <= SAFE_WITHIN_S, f"outputs off only {took:.2f} s after {name}"
    assert window.returncode == 130, err[-2000:]
    (path,) = tmp_path.glob("*.h5")
    status, reason, _kinds = run_status(path)  # plain h5py, no repair
    assert status == "aborted", (status, reason)
    assert reason == f"stopped safely: {name}"
