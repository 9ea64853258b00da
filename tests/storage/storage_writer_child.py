"""Writer processes for the crash tests: run a procedure into HDF5Results until killed.

``python storage_writer_child.py writer PATH LOG ROWS DELAY INTERVAL PLS`` runs one writer;
``python storage_writer_child.py zygote`` imports everything once, then for each request
line on stdin forks a writer, SIGKILLs it after the requested delay and reports the kill
time, so twenty-odd kills take seconds instead of twenty interpreter start-ups.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from pymeasure.experiment import FloatParameter, IntegerParameter, Parameter  # noqa: E402
from storage_test_procedures import SweepProcedure  # noqa: E402

from perovlab_daq.storage import DaqWorker, HDF5Results  # noqa: E402


class LoggedProcedure(SweepProcedure):
    """Emits rows (and a spectrum every 10 rows), logging each emit to an append-only file."""

    NAME = "logged"
    rows = IntegerParameter("Rows", default=1000, minimum=0, maximum=10_000_000)
    row_delay = FloatParameter("Row delay", units="s", default=0.001, minimum=0, maximum=1)
    log_path = Parameter("Log path", default="")

    def execute(self) -> None:
        fd = os.open(self.log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        wavelength = np.linspace(400.0, 800.0, 64)
        for index in range(self.rows):
            if self.should_stop():
                break
            voltage = index * 1e-3
            self.emit(
                "results",
                {
                    "time": time.time(),
                    "voltage": voltage,
                    "current": float(index),
                    "current_density": 2.0 * index,
                },
            )
            frame = index % 10 == 0
            if frame:
                self.emit(
                    "frame",
                    {
                        "wavelength": wavelength,
                        "intensity": np.full(64, float(index)),
                        "context": {"index": float(index)},
                    },
                )
            # A write(2) per emitted record survives SIGKILL: the test's ground truth.
            os.write(fd, f"{index} {time.time():.6f} {int(frame)}\n".encode())
            if self.row_delay:
                time.sleep(self.row_delay)
        os.close(fd)


def run_writer(path: str, log: str, rows: int, delay: float, interval: float, pls: bool) -> None:
    """Run one LoggedProcedure through DaqWorker into ``path``."""
    procedure = LoggedProcedure(rows=rows, row_delay=delay, log_path=log)
    results = HDF5Results(
        procedure,
        path,
        durability_interval_s=interval,
        power_loss_safe=pls,
        metadata={"simulated": True},
    )
    worker = DaqWorker(results)
    worker.start()
    while worker.is_alive():  # not worker.join(t): pymeasure's join stops the run after t
        time.sleep(0.05)


def _wait_for_first_row(log: Path, deadline_s: float) -> None:
    """Return once ``log`` holds a complete line (or after ``deadline_s``, a hang guard)."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        try:
            if b"\n" in log.read_bytes():
                return
        except FileNotFoundError:
            pass
        time.sleep(0.002)


def zygote() -> None:
    """Serve fork-and-kill requests (one JSON object per stdin line) until EOF."""
    print("ready", flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:  # child: write until killed (or finished)
            try:
                run_writer(
                    request["path"],
                    request["log"],
                    request["rows"],
                    request["delay"],
                    request["interval"],
                    request["pls"],
                )
            finally:
                os._exit(0)
        if request.get("after_first_row"):
            # Time the kill from the writer's first emitted row, not from the fork: on a
            # loaded machine start-up alone can take longer than the whole kill window.
            _wait_for_first_row(Path(request["log"]), deadline_s=60.0)
        time.sleep(request["kill_after"])
        killed_at = time.time()
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        print(json.dumps({"path": request["path"], "killed_at": killed_at}), flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "zygote":
        zygote()
    else:
        _, _, path, log, rows, delay, interval, pls = sys.argv
        run_writer(path, log, int(rows), float(delay), float(interval), pls == "1")
