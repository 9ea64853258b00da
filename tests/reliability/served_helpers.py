"""What the supervisor tests share: a bench served by ``perovlab-daq sim serve`` and its outputs.

The server runs in a process of its own, so the instrument state outlives the processes
under test, as on hardware. :class:`Outputs` reads the source meter (``:OUTP?``, the
2400's own short form) and the laser (``SOUR:AM:STAT?``) over pyvisa-py connections of
the test's own, never through the code under test.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import psutil
import pytest
import pyvisa

from perovlab_daq.bench import load_bench

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "QT_QPA_PLATFORM": "offscreen"}
#: Longest time from an ending to both outputs reading off (the issue's requirement).
SAFE_WITHIN_S = 2.0


def start_server(folder: Path, *extra: str) -> tuple[subprocess.Popen, Path]:
    """Start ``perovlab-daq sim serve --write-bench FILE`` and wait for its bench file."""
    bench_file = folder / "served_bench.yaml"
    err = folder / "server.err"
    with open(err, "wb") as stderr:
        server = subprocess.Popen(
            [sys.executable, "-m", "perovlab_daq.cli", "sim", "serve", *extra]
            + ["--write-bench", str(bench_file)],
            cwd=folder,
            env=ENV,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    deadline = time.monotonic() + 60
    while not bench_file.exists():
        if server.poll() is not None or time.monotonic() > deadline:
            server.kill()
            pytest.fail(f"server did not start: {err.read_text()}")
        time.sleep(0.05)
    return server, bench_file


def listening_addresses(pid: int) -> set[str]:
    """Return the addresses a process listens on (TCP)."""
    return {
        c.laddr.ip
        for c in psutil.Process(pid).net_connections(kind="inet")
        if c.status == psutil.CONN_LISTEN
    }


def stop_server(server: subprocess.Popen) -> int:
    """SIGTERM the server; return its exit code (killed after 10 s)."""
    server.send_signal(signal.SIGTERM)
    try:
        return server.wait(10)
    except subprocess.TimeoutExpired:
        server.kill()
        return server.wait()


@pytest.fixture(scope="module")
def served_bench(tmp_path_factory):
    """A bench served by ``perovlab-daq sim serve`` in its own process; yields its bench file."""
    server, bench_file = start_server(tmp_path_factory.mktemp("served"), "--sim", "qd-in-matrix")
    yield bench_file
    assert stop_server(server) == 0


class Outputs:
    """The served source meter and laser, read over connections of the test's own."""

    def __init__(self, bench_file: Path) -> None:
        roles = load_bench(bench_file).roles
        manager = pyvisa.ResourceManager("@py")
        self.smu = manager.open_resource(
            roles["source_meter"].resource,
            timeout=2000,
            read_termination="\n",
            write_termination="\n",
        )
        self.laser = manager.open_resource(
            roles["laser"].resource,
            timeout=2000,
            read_termination="\r\n",
            write_termination="\r\n",
        )

    def source_on(self) -> bool:
        """Ask the source meter ``:OUTP?`` (the 2400's short form)."""
        return self.smu.query(":OUTP?").strip() != "0"

    def emission_on(self) -> bool:
        """Ask the laser ``SOUR:AM:STAT?`` (value line, then its ``OK``)."""
        value = self.laser.query("SOUR:AM:STAT?").strip()
        assert self.laser.read().strip() == "OK"
        return value != "OFF"

    def wait_off(self, since: float, limit_s: float) -> float:
        """Poll until both read off; return the seconds since ``since`` it took."""
        while True:
            if not self.source_on() and not self.emission_on():
                return time.monotonic() - since
            if time.monotonic() - since > limit_s:
                pytest.fail(
                    f"outputs still on {limit_s} s after the ending: source "
                    f"{self.source_on()}, emission {self.emission_on()}"
                )
            time.sleep(0.02)

    def close(self) -> None:
        """Close the test's connections."""
        self.smu.close()
        self.laser.close()


def wait_running(
    proc: subprocess.Popen, folder: Path, outputs: Outputs, procedure: str, *, pids: bool = True
) -> dict | None:
    """Wait for the run file (and pid file) and the hazard switched on once; return the pids."""
    deadline = time.monotonic() + 90
    found = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"run ended early ({proc.returncode}): {proc.stderr.read()[-2000:]}")
        files = list(folder.glob("*.pids"))
        if list(folder.glob("*.h5")) and found is None:
            try:
                found = json.loads(files[0].read_text()) if pids else {}
            except (ValueError, IndexError):
                found = None
        if found is not None and (
            outputs.source_on() if procedure == "lifetime" else outputs.emission_on()
        ):
            return found or None
        time.sleep(0.05)
    pytest.fail("the run did not get going within 90 s")


def hazard_on(outputs: Outputs, procedure: str) -> None:
    """Wait (up to 10 s) until the run's hazard is on, so the ending has something to stop."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if outputs.source_on() if procedure == "lifetime" else outputs.emission_on():
            return
        time.sleep(0.01)
    pytest.fail(f"{procedure}: its output never came on")


def end_and_time_off(
    proc: subprocess.Popen, outputs: Outputs, end: object, timeout_s: float = 60.0
) -> tuple[float, str, str]:
    """Call ``end()`` (a signal to some process), then time the outputs going off.

    Returns (seconds from ``end`` until both outputs read off, stdout, stderr of ``proc``
    once it has exited). The caller kills ``proc`` and closes ``outputs`` in its finally.
    """
    ended_at = time.monotonic()
    end()  # type: ignore[operator]
    took = outputs.wait_off(ended_at, limit_s=10.0)
    out, err = proc.communicate(timeout=timeout_s)
    return took, out or "", err or ""


def run_status(path: Path) -> tuple[str, str, list[str]]:
    """Open a run file with plain h5py (no repair); return status, reason, event kinds."""
    with h5py.File(path, "r") as file:
        entry = file["entry"]
        kinds = [k.decode() if isinstance(k, bytes) else str(k) for k in entry["events/kind"][:]]
        return str(entry.attrs["status"]), str(entry.attrs["status_reason"]), kinds
