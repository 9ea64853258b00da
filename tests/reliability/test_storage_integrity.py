"""No run file lost or corrupted (issue 17): atomic updates, merging recovery, names, disk.

* every change to a closed run file (analysis write-back, resume append) is made on a copy
  that atomically replaces the file: SIGKILLs at random moments never tear it;
* ``recover`` keeps the larger of the HDF5 file's and the torn journal's rows and refuses
  (byte-identical) a file perovlab-daq did not write;
* concurrent identical runs each claim their own file; a planted symlink is not followed;
* a run into a real, tiny, full file system ends ``failed`` with exit 1, no signal death.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from perovlab_daq.resume import append_segment
from perovlab_daq.storage import ForeignFileError, HDF5Results, recover, run_file_path
from perovlab_daq.storage.files import create_run_file, update_closed_file
from perovlab_daq.storage.journal import journal_path
from perovlab_daq.storage.recovery import _journal_records
from perovlab_daq.storage.salvage import read_salvage

ROOT = Path(__file__).resolve().parents[2]
ENV = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONPATH=str(ROOT))
STORAGE_TESTS = ROOT / "tests" / "storage"

# A writer that records ROWS rows, waits for them to be durable, writes MORE rows
# without waiting, then kills itself: the HDF5 file and the journal both hold a prefix.
_KILLED_WRITER = """
import os, signal, sys
sys.path.insert(0, sys.argv[4])
from storage_test_procedures import SweepProcedure
from perovlab_daq.storage import HDF5Results
path, rows, more = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
results = HDF5Results(SweepProcedure(points=0), path, durability_interval_s=0.05)
for i in range(rows + more):
    results.append_row({"time": float(i), "voltage": i * 1e-3, "current": float(i),
                        "current_density": 2.0 * i})
    if i == rows - 1:
        results.flush()
os.kill(os.getpid(), signal.SIGKILL)
"""


def _rows(path: Path) -> int:
    with h5py.File(path, "r", locking=False) as file:  # plain h5py: no SWMR, no h5clear
        return len(file["entry/data/time"])


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _finished_run(path: Path, rows: int = 200) -> Path:
    from storage_test_procedures import SweepProcedure

    results = HDF5Results(SweepProcedure(points=0), path)
    for i in range(rows):
        results.append_row(
            {"time": float(i), "voltage": i * 1e-3, "current": float(i), "current_density": i}
        )
    results.close()
    return path


@pytest.fixture(autouse=True)
def _storage_procedures() -> None:
    if str(STORAGE_TESTS) not in sys.path:
        sys.path.insert(0, str(STORAGE_TESTS))


# ----------------------------------------------------------------------- atomic updates
def _change_in_child(kind: str, path: Path, segment: Path) -> None:
    """Child process body: change the closed run file the way ``kind`` does, forever."""
    big = {f"figure_{i}": np.arange(2000.0) * i for i in range(20)}
    while True:
        if kind == "analyze":
            HDF5Results.load(path).write_analysis(big)
        elif kind == "end_of_run":
            update_closed_file(path, lambda file: file["entry"].attrs.__setitem__("note", "x"))
        else:
            append_segment(path, segment, "interrupted", "")


@pytest.mark.fault_class("SIGKILL during a closed-file update")
@pytest.mark.slow
def test_thirty_kills_during_write_back_leave_complete_files(tmp_path: Path) -> None:
    rng = random.Random(17)
    segment = _finished_run(tmp_path / "segment.h5", rows=50)
    base = _finished_run(tmp_path / "base.h5", rows=300)
    results = []
    for trial in range(30):
        kind = ("analyze", "end_of_run", "resume")[trial % 3]
        path = tmp_path / f"run{trial}.h5"
        shutil.copy(base, path)
        pid = os.fork()
        if pid == 0:  # pragma: no cover - child
            try:
                _change_in_child(kind, path, segment)
            finally:
                os._exit(0)
        time.sleep(rng.uniform(0.0, 0.4))
        os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        assert os.WIFSIGNALED(status)
        rows = _rows(path)  # opens with plain h5py, no h5clear
        assert rows >= 300 and (rows - 300) % 50 == 0, (kind, rows)
        results.append((kind, rows))
    assert len(results) == 30


def test_failed_change_leaves_the_file_byte_identical(tmp_path: Path) -> None:
    path = _finished_run(tmp_path / "run.h5", rows=20)
    before = _sha256(path)

    def broken(file: h5py.File) -> None:
        file["entry"].attrs["half"] = "written"
        raise RuntimeError("killed half-way")

    with pytest.raises(RuntimeError):
        update_closed_file(path, broken)
    assert _sha256(path) == before
    assert [p.name for p in tmp_path.iterdir()] == ["run.h5"]  # no temporary left


# ------------------------------------------------------------------------------ recover
def _killed_run(path: Path, rows: int, more: int) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", _KILLED_WRITER, str(path), str(rows), str(more), str(STORAGE_TESTS)],
        env=ENV,
        capture_output=True,
        timeout=120,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()


@pytest.mark.fault_class("torn journal beside a partly written file")
def test_recover_keeps_the_larger_of_file_and_torn_journal(tmp_path: Path) -> None:
    rng = random.Random(1717)
    template = tmp_path / "template"
    template.mkdir()
    source = template / "run.h5"
    _killed_run(source, 400, 300)
    journal = journal_path(source)
    parts = [Path(f"{journal}{s}") for s in ("", "-wal") if Path(f"{journal}{s}").exists()]
    assert parts
    for trial in range(12):
        folder = tmp_path / f"t{trial}"
        shutil.copytree(template, folder)
        path = folder / "run.h5"
        victim = folder / parts[trial % len(parts)].name
        size = victim.stat().st_size
        with open(victim, "r+b") as handle:
            handle.truncate(rng.randrange(0, size + 1))
        h5_rows = read_salvage(path).rows
        journal_rows = sum(
            len(arrays["values"])
            for kind, _meta, arrays in _journal_records(journal_path(path), [])
            if kind == "rows"
        )
        report = recover(path)
        assert report.rows >= max(h5_rows, journal_rows), (trial, h5_rows, journal_rows)
        assert _rows(path) == report.rows
        with h5py.File(path, "r") as file:
            times = file["entry/data/time"][:]
        assert list(times) == [float(i) for i in range(report.rows)]  # in order, intact
        assert not journal_path(path).exists()


def test_recover_refuses_a_foreign_file_and_leaves_it_untouched(tmp_path: Path) -> None:
    foreign = tmp_path / "other.h5"
    with h5py.File(foreign, "w") as file:
        file.create_dataset("x", data=np.arange(10))
    text = tmp_path / "notes.h5"
    text.write_text("not hdf5")
    for path in (foreign, text):
        before = _sha256(path)
        with pytest.raises(ForeignFileError, match="perovlab-daq"):
            recover(path)
        assert _sha256(path) == before
        proc = subprocess.run(
            [sys.executable, "-m", "perovlab_daq.cli", "recover", str(path)],
            env=ENV,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 2, proc.stderr
        assert "perovlab-daq" in proc.stderr
        assert _sha256(path) == before


# ------------------------------------------------------------------------------- names
def test_run_files_never_follow_a_planted_symlink(tmp_path: Path) -> None:
    from storage_test_procedures import SweepProcedure

    outside = tmp_path / "outside.txt"
    outside.write_text("precious")
    folder = tmp_path / "data"
    folder.mkdir()
    fields = {"sample": "S", "procedure": "jlv", "pixel": 1, "date": "2026-01-01"}
    (folder / "2026-01-01_S_jlv_1.h5").symlink_to(outside)
    assert run_file_path(folder, **fields).name == "2026-01-01_S_jlv_1_2.h5"
    # Planted after planning (a race): a dangling link to where the attacker wants a file.
    planned = run_file_path(folder, **fields)
    elsewhere = tmp_path / "elsewhere.h5"
    planned.symlink_to(elsewhere)
    results = HDF5Results(SweepProcedure(points=0), planned)
    results.append_row({"time": 0.0, "voltage": 0.0, "current": 0.0, "current_density": 0.0})
    results.close()
    assert results.path.name == "2026-01-01_S_jlv_1_2_2.h5"  # the next free name
    assert _rows(results.path) == 1 and not results.path.is_symlink()
    assert not elsewhere.exists() and planned.is_symlink()
    assert outside.read_text() == "precious"
    with pytest.raises(OSError, match="already exists"):
        create_run_file(folder / "2026-01-01_S_jlv_1.h5", {})
    assert outside.read_text() == "precious"


@pytest.mark.fault_class("concurrent identical runs")
@pytest.mark.slow
def test_four_identical_runs_started_at_once_get_four_files(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "perovlab_daq.cli", "run", "jlv", "--sim", "qd-in-matrix"]
    command += ["--sample", "S", "--pixel", "1", "-o", str(tmp_path)]
    procs = [
        subprocess.Popen(command, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(4)
    ]
    codes = [proc.wait(timeout=600) for proc in procs]
    for proc in procs:
        proc.communicate()
    assert codes == [0, 0, 0, 0]
    files = sorted(tmp_path.glob("*.h5"))
    assert len(files) == 4
    assert all(_rows(path) > 0 for path in files)


# ---------------------------------------------------------------------------- full disk
@pytest.fixture(params=["2m"])
def tiny_disk(tmp_path: Path, request: pytest.FixtureRequest):
    mount = tmp_path / "tiny"
    mount.mkdir()
    try:
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={request.param}", "tmpfs", str(mount)],
            capture_output=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"cannot mount a tmpfs: {exc}")
    if done.returncode != 0:
        pytest.skip(f"mounting a 2 MB tmpfs is not permitted here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], capture_output=True, timeout=30)


@pytest.mark.fault_class("full disk")
def test_run_into_a_real_full_file_system_fails_cleanly(tiny_disk: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "perovlab_daq.cli", "run", "jlv", "--sim", "qd-in-matrix"]
        + ["--sample", "S", "--pixel", "1", "-o", str(tiny_disk)],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 1, proc.stderr  # not a negative (signal) exit
    output = proc.stdout + proc.stderr
    assert "disk full" in output and str(tiny_disk) in output
    assert "output off" in output
    (path,) = tiny_disk.glob("*.h5")
    with h5py.File(path, "r") as file:  # opens with its rows, status failed
        assert len(file["entry/data/time"]) > 0
        assert file["entry"].attrs["status"] == "failed"
        assert "disk full" in file["entry"].attrs["status_reason"]


@pytest.mark.fault_class("full disk")
@pytest.mark.parametrize("tiny_disk", ["1m"], indirect=True)
def test_run_onto_a_clearly_too_full_disk_is_refused_before_it_starts(tiny_disk: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "perovlab_daq.cli", "run", "jlv", "--sim", "qd-in-matrix"]
        + ["--sample", "S", "--pixel", "1", "-o", str(tiny_disk)],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 2, proc.stderr
    assert "disk full" in proc.stderr and str(tiny_disk) in proc.stderr
    assert "started" not in proc.stdout  # refused before any instrument was opened
    assert list(tiny_disk.iterdir()) == []
