"""Provenance in every run file: calibration and bench files, versions, host and station.

The sha256 stored for each calibration file must be the sha256 of that file on disk, its
content the file's text, its path both as the bench file gave it and resolved.
"""

from __future__ import annotations

import hashlib
import socket
from pathlib import Path
from typing import Any

import h5py
import pytest
from storage_test_procedures import SweepProcedure

import perovlab_daq
from perovlab_daq.bench import BenchError, load_bench, parse_bench, sim_bench
from perovlab_daq.storage import HDF5Results
from perovlab_daq.storage.header import git_describe, provenance


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class _BenchStub:
    """What the header reads from an open bench: its config."""

    def __init__(self, config: Any) -> None:
        self.config = config


@pytest.fixture
def run_file(tmp_path: Path) -> Path:
    """A finished run of a small procedure whose bench is the shipped simulated bench."""
    procedure = SweepProcedure()
    procedure.points = 3
    procedure.bench = _BenchStub(sim_bench())
    path = tmp_path / "run.h5"
    results = HDF5Results(procedure, path)
    results.start()
    for index in range(3):
        results.append_row({"time": index, "voltage": index, "current": 0.0, "current_density": 0})
    results.set_status(3)  # finished
    results.close()
    return path


def test_calibration_sha256_in_the_file_equals_the_files_on_disk(run_file: Path) -> None:
    config = sim_bench()
    expected = config.calibration_files()
    assert set(expected) == {"responsivity_file", "spectrometer_sensitivity_file"}
    with h5py.File(run_file, "r") as file:
        stored = file["entry/provenance/calibration_files"]
        assert set(stored) == set(expected)
        for key, path in expected.items():
            note = stored[key]
            assert note.attrs["NX_class"] == "NXnote"
            raw = Path(path).read_bytes()
            assert _text(note["sha256"][()]) == hashlib.sha256(raw).hexdigest()
            assert _text(note["data"][()]) == raw.decode("utf-8")
            assert _text(note["path"][()]) == str(Path(path).resolve())
            assert _text(note["file_name"][()]) == config.files_as_given[key]
            assert _text(note["file_name"][()]).startswith("calibration/")  # as written
            assert "cannot read" not in note


def test_bench_file_versions_host_and_station_are_recorded(run_file: Path) -> None:
    config = sim_bench()
    with h5py.File(run_file, "r") as file:
        group = file["entry/provenance"]
        bench = group["bench_file"]
        raw = Path(config.path).read_bytes()
        assert _text(bench["data"][()]) == raw.decode("utf-8")
        assert _text(bench["sha256"][()]) == hashlib.sha256(raw).hexdigest()
        assert _text(group["package_version"][()]) == perovlab_daq.__version__
        assert _text(group["host"][()]) == socket.gethostname()
        assert _text(group["station"][()]) == "sim-station-1" == config.station
        assert _text(group["git_describe"][()]) == git_describe()


def test_instrument_calibration_records_are_the_files_not_their_names(tmp_path: Path) -> None:
    """Bench.snapshot() gives {name: {path, sha256}}: each becomes the file's full record."""
    calibration = Path(sim_bench().setup["responsivity_file"])
    instruments = {
        "photodetector": {
            "driver": "keithley6485",
            "calibration_files": {calibration.name: {"path": str(calibration), "sha256": "x"}},
        }
    }
    path = tmp_path / "run.h5"
    results = HDF5Results(SweepProcedure(), path, instruments=instruments)
    results.close()
    with h5py.File(path, "r") as file:
        note = file["entry/instrument/photodetector/calibration_files"][calibration.name]
        digest = hashlib.sha256(calibration.read_bytes()).hexdigest()
        assert _text(note["sha256"][()]) == digest
        assert _text(note["path"][()]) == str(calibration.resolve())
        assert "error" not in note


def test_git_describe_outside_a_checkout_is_empty(tmp_path: Path) -> None:
    assert git_describe(tmp_path / "pkg") == ""


def test_provenance_without_a_bench_still_names_version_and_host() -> None:
    record = provenance(None)
    assert record["package_version"] == perovlab_daq.__version__
    assert record["host"] == socket.gethostname()
    assert record["station"] == "" and record["calibration_files"] == {}


def test_station_must_be_text(tmp_path: Path) -> None:
    data = {"roles": {"source_meter": {"driver": "keithley2400", "resource": "GPIB0::24"}}}
    assert parse_bench({**data, "station": "lab2-bench1"}).station == "lab2-bench1"
    assert parse_bench(data).station == ""
    with pytest.raises(BenchError, match="station"):
        parse_bench({**data, "station": ["a"]})
    bench_file = tmp_path / "bench.yaml"
    bench_file.write_text("station: b7\nroles:\n  source_meter: {driver: keithley2400}\n")
    assert load_bench(bench_file).station == "b7"
