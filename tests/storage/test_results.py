"""HDF5Results through pymeasure's machinery: layout, load, status, units, safety."""

from __future__ import annotations

import os
import shutil
import socket
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import h5py
import numpy as np
import psutil
import pytest
from perovlab_daq.procedures.lifetime import LifetimeProcedure
from pymeasure.experiment import Procedure, Worker
from storage_test_procedures import BadShutdownProcedure, PlainProcedure, SweepProcedure

import perovlab_daq
from perovlab_daq.storage import (
    DaqWorker,
    HDF5Results,
    StorageError,
    recover,
    run_file_path,
    sanitize_field,
)

HERE = Path(__file__).resolve().parent


def run(results: HDF5Results, worker_class: type = DaqWorker, **kwargs) -> Worker:
    worker = worker_class(results, **kwargs)
    worker.start()
    while worker.is_alive():  # pymeasure's join(t) would stop the run after t
        time.sleep(0.01)
    return worker


def drain(queue) -> list:
    items = []
    while not queue.empty():
        items.append(queue.get_nowait())
    return items


INSTRUMENTS = {
    "source_meter": {
        "driver": "keithley2400",
        "resource": "GPIB0::24::INSTR",
        "identity": "KEITHLEY INSTRUMENTS INC.,MODEL 2400,4096331,C32",
        "settings": {"nplc": 1.0, "compliance_current": {"value": 0.1, "units": "A"}},
    }
}


@pytest.fixture
def finished_run(tmp_path: Path) -> Path:
    calibration = tmp_path / "responsivity.csv"
    calibration.write_text("wavelength_nm,responsivity_a_w\n400,0.2\n800,0.5\n")
    instruments = {
        role: {**desc, "calibration_files": [calibration]} for role, desc in INSTRUMENTS.items()
    }
    procedure = SweepProcedure(points=50, spectra_every=5, stop_voltage=4.0)
    results = HDF5Results(
        procedure,
        tmp_path / "run.h5",
        metadata={"simulated": True, "preset": "qd-in-matrix", "ageing_acceleration": 1.0},
        instruments=instruments,
        sample={"sample": "S17", "device": "D3", "pixel": 2, "operator": "ana", "notes": "test"},
    )
    worker = run(results)
    assert results.status == "finished"
    assert worker.procedure.status == Procedure.FINISHED
    results.write_analysis({"turn_on_voltage": {"value": 2.6, "units": "V"}, "peak_eqe": 17.9})
    return tmp_path / "run.h5"


def test_a_run_through_the_worker_writes_the_documented_layout(finished_run: Path) -> None:
    with h5py.File(finished_run, "r") as file:
        assert file.attrs["perovlab_daq_version"] == perovlab_daq.__version__
        assert file.attrs["file_format_version"] == "1.0"
        entry = file["entry"]
        assert entry.attrs["NX_class"] == "NXentry"
        assert entry.attrs["default"] == "data"
        assert entry.attrs["procedure"] == "jlv"
        assert entry.attrs["procedure_class"] == "storage_test_procedures:SweepProcedure"
        assert entry.attrs["status"] == "finished"
        for key in ("start_time", "end_time"):
            text = entry.attrs[key]
            assert text[10] == "T" and text[-6] in "+-" and text[-3] == ":", text  # ISO + offset
        parameters = entry["parameters"]
        assert parameters["stop_voltage"][()] == 4.0
        assert parameters["stop_voltage"].attrs["units"] == "V"
        assert parameters["area"].attrs["units"] == "cm^2"
        assert parameters["points"][()] == 50
        data = entry["data"]
        assert data.attrs["NX_class"] == "NXdata"
        # The J-L-V default plot (docs/hdf5-layout.md): J against V (no luminance column here).
        assert data.attrs["axes"] == "voltage" and data.attrs["signal"] == "current_density"
        assert "auxiliary_signals" not in data.attrs
        assert list(data) == ["time", "voltage", "current", "current_density"]
        units = {name: data[name].attrs["units"] for name in data}
        assert units == {"time": "s", "voltage": "V", "current": "A", "current_density": "mA/cm^2"}
        assert {len(data[name]) for name in data} == {50}
        np.testing.assert_allclose(data["voltage"][-1], 4.0)
        spectra = entry["spectra"]
        assert spectra.attrs["NX_class"] == "NXdata" and spectra.attrs["signal"] == "intensity"
        assert spectra["intensity"].shape == (10, 1044)
        assert spectra["intensity"].chunks[1] == 1044  # chunked along frames
        assert spectra["intensity"].compression == "gzip"  # compacted once closed
        assert spectra["wavelength"].attrs["units"] == "nm"
        assert spectra["bias"].attrs["units"] == "V"
        assert len(spectra["time"]) == len(spectra["laser_power"]) == 10
        np.testing.assert_array_equal(spectra["intensity"][:, 0], np.arange(0, 50, 5))
        source_meter = entry["instrument/source_meter"]
        assert source_meter["driver"][()] == b"keithley2400"
        assert source_meter["settings/compliance_current"].attrs["units"] == "A"
        calibration = source_meter["calibration_files/responsivity.csv"]
        assert len(calibration.attrs["sha256"]) == 64
        assert b"responsivity_a_w" in calibration["data"][()]
        sample = entry["sample"]
        assert sample.attrs["NX_class"] == "NXsample"
        assert sample["sample"][()] == b"S17" and sample["pixel"][()] == 2
        assert entry["metadata"].attrs["preset"] == "qd-in-matrix"
        events = entry["events"]
        assert [k.decode() for k in events["kind"][()]] == ["sweep_done"]
        assert entry["analysis/turn_on_voltage"].attrs["units"] == "V"


def test_load_gives_back_procedure_parameters_status_data_frames_events(finished_run: Path):
    loaded = HDF5Results.load(finished_run)
    assert type(loaded.procedure) is SweepProcedure
    assert loaded.procedure.points == 50 and loaded.procedure.stop_voltage == 4.0
    assert loaded.procedure.status == Procedure.FINISHED
    assert loaded.status == "finished" and loaded.status_reason == ""
    assert list(loaded.data.columns) == ["time", "voltage", "current", "current_density"]
    assert len(loaded.data) == 50
    assert loaded.columns["current_density"] == "mA/cm^2"
    frames = loaded.frames("spectra")
    assert frames.intensity.shape == (10, 1044) and frames.wavelength.shape == (1044,)
    assert list(frames.context.columns) == ["bias", "laser_power", "time"]
    assert frames.units["bias"] == "V"
    assert [e["kind"] for e in loaded.events] == ["sweep_done"]
    assert loaded.analysis["peak_eqe"] == pytest.approx(17.9)
    with pytest.raises(KeyError):
        loaded.frames("photoluminescence")
    loaded.add_event("error", "analysis", "analysis failed after the run")
    assert [e["kind"] for e in HDF5Results.load(finished_run).events] == ["sweep_done", "analysis"]


def test_failure_is_stored_with_its_reason(tmp_path: Path) -> None:
    results = HDF5Results(SweepProcedure(points=30, fail_at=12), tmp_path / "fail.h5")
    worker = run(results)
    assert results.status == "failed"
    assert "simulated fault at point 12" in results.status_reason
    statuses = [
        v for topic, v in (i for i in drain(worker.monitor_queue) if i) if topic == "status"
    ]
    assert statuses[0] == Procedure.RUNNING and statuses[-1] == Procedure.FAILED
    loaded = HDF5Results.load(tmp_path / "fail.h5")
    assert loaded.status == "failed" and "RuntimeError" in loaded.status_reason
    assert len(loaded.data) == 12
    assert loaded.procedure.status == Procedure.FAILED


def test_a_shutdown_that_raises_still_ends_the_run(tmp_path: Path) -> None:
    results = HDF5Results(BadShutdownProcedure(points=5), tmp_path / "bad.h5")
    worker = run(results)
    items = drain(worker.monitor_queue)
    assert items[-1] is None  # the GUI's monitor is released
    assert results.status == "failed"
    assert "laser did not switch off" in results.status_reason
    loaded = HDF5Results.load(tmp_path / "bad.h5")
    assert loaded.status == "failed" and len(loaded.data) == 5
    assert "shutdown_failed" in [e["kind"] for e in loaded.events]


def test_abort_is_stored_as_aborted(tmp_path: Path) -> None:
    results = HDF5Results(SweepProcedure(points=100_000, delay=0.001), tmp_path / "abort.h5")
    worker = DaqWorker(results)
    worker.start()
    while len(results.data) < 5:
        time.sleep(0.01)
    worker.stop()
    while worker.is_alive():
        time.sleep(0.01)
    loaded = HDF5Results.load(tmp_path / "abort.h5")
    assert loaded.status == "aborted"
    assert 5 <= len(loaded.data) < 100_000


def _listening_ports() -> set[int]:
    me = psutil.Process()
    return {c.laddr.port for c in me.net_connections(kind="tcp") if c.status == "LISTEN"}


def test_the_worker_never_opens_a_port_even_when_given_one(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    before = _listening_ports()
    results = HDF5Results(SweepProcedure(points=3), tmp_path / "port.h5")
    worker = DaqWorker(results, port=port)
    assert worker.publisher is None and worker.context is None
    assert port not in _listening_ports() - before
    run_worker = worker
    run_worker.start()
    while run_worker.is_alive():
        time.sleep(0.01)
    assert results.status == "finished"


def test_live_data_view_appends_only_new_rows(tmp_path: Path) -> None:
    results = HDF5Results(SweepProcedure(points=0), tmp_path / "live.h5")
    results.start()
    assert results.data.empty and list(results.data.columns)[0] == "time"
    for index in range(10):
        results.append_row({"time": index, "voltage": 1.0, "current": 2.0})
    results.flush()
    first = results.data
    assert len(first) == 10
    assert np.isnan(first["current_density"]).all()  # missing column -> NaN
    for index in range(10, 15):
        results.append_row({"time": index, "voltage": 1.0, "current": 2.0, "current_density": 3})
    results.flush()
    second = results.data
    assert len(second) == 15 and list(second.index) == list(range(15))
    assert second.iloc[:10].equals(first)  # earlier rows were not re-read or changed
    assert results.data is second  # nothing new: the same object
    results.close()
    assert results.status == "finished"


def test_plain_pymeasure_procedure_and_worker_work_on_the_back_end(tmp_path: Path) -> None:
    """pymeasure's own Worker (as its Manager builds it) writes rows into the HDF5 file."""
    results = HDF5Results(PlainProcedure(iterations=7), tmp_path / "plain.h5")
    run(results, Worker)
    results.close(results.procedure.status)
    with h5py.File(tmp_path / "plain.h5", "r") as file:
        data = file["entry/data"]
        assert data["Voltage (V)"].attrs["units"] == "V"
        assert data["Comment"].attrs["units"] == ""
    loaded = HDF5Results.load(tmp_path / "plain.h5")
    assert loaded.status == "finished"
    assert list(loaded.data.columns) == ["Voltage (V)", "Current (A)", "Comment"]
    np.testing.assert_array_equal(loaded.data["Voltage (V)"], np.arange(7))


def test_a_file_without_optional_groups_loads(finished_run: Path) -> None:
    with h5py.File(finished_run, "r+") as file:
        for name in ("spectra", "events", "instrument", "sample", "analysis", "metadata"):
            del file["entry"][name]
    loaded = HDF5Results.load(finished_run)
    assert len(loaded.data) == 50 and loaded.events == [] and loaded.streams() == []


def test_a_file_written_by_another_program_loads(tmp_path: Path) -> None:
    path = tmp_path / "foreign.h5"
    with h5py.File(path, "w") as file:
        entry = file.create_group("entry")
        entry.attrs["NX_class"] = "NXentry"
        entry.attrs["procedure"] = "lifetime"
        entry.attrs["status"] = "finished"
        entry.create_group("parameters").create_dataset("current_density", data=20.0)
        data = entry.create_group("data")
        data.create_dataset("time", data=np.arange(4.0)).attrs["units"] = "s"
        data.create_dataset("luminance", data=np.ones(4)).attrs["units"] = "cd/m^2"
    loaded = HDF5Results.load(path)
    # The class is the one installed under the file's name (procedures.registry).
    assert type(loaded.procedure) is LifetimeProcedure
    assert loaded.procedure.current_density == 20.0
    assert loaded.status == "finished"
    assert sorted(loaded.data.columns) == ["luminance", "time"]
    assert loaded.columns["luminance"] == "cd/m^2"


def test_stored_class_path_is_not_used_the_name_is(finished_run: Path) -> None:
    """The class path a file stores is never imported: the procedure comes by name."""
    with h5py.File(finished_run, "r+") as file:
        file["entry"].attrs["procedure_class"] = "no_such_module:Gone"
    loaded = HDF5Results.load(finished_run)
    assert type(loaded.procedure) is SweepProcedure
    assert loaded.procedure.stop_voltage == 4.0


def test_units_of_non_numbers_and_quantities(tmp_path: Path) -> None:
    from pymeasure.units import ureg

    results = HDF5Results(SweepProcedure(points=0), tmp_path / "q.h5")
    results.append_row({"time": 0, "voltage": ureg.Quantity(1500, "mV"), "current": "oops"})
    results.append_row({"time": 1, "voltage": np.arange(3), "current": True})
    results.close()
    data = HDF5Results.load(tmp_path / "q.h5").data
    assert data["voltage"][0] == pytest.approx(1.5)
    assert np.isnan(data["current"][0]) and np.isnan(data["voltage"][1])
    assert data["current"][1] == 1.0


def test_frame_shape_errors_are_refused_at_once(tmp_path: Path) -> None:
    results = HDF5Results(SweepProcedure(points=0), tmp_path / "f.h5")
    results.append_frame(wavelength=np.arange(8.0), intensity=np.ones(8))
    with pytest.raises(ValueError, match="8 pixels"):
        results.append_frame(wavelength=np.arange(9.0), intensity=np.ones(9))
    with pytest.raises(ValueError, match="equal length"):
        results.append_frame("other", wavelength=np.arange(3.0), intensity=np.ones(4))
    results.close()
    assert len(HDF5Results.load(tmp_path / "f.h5").frames()) == 1


def test_never_overwrites_and_never_world_writable(tmp_path: Path) -> None:
    old_umask = os.umask(0)
    try:
        HDF5Results(SweepProcedure(points=0), tmp_path / "a.h5").close()
    finally:
        os.umask(old_umask)
    assert not os.stat(tmp_path / "a.h5").st_mode & stat.S_IWOTH
    before = (tmp_path / "a.h5").read_bytes()
    reader = HDF5Results(SweepProcedure(points=0), tmp_path / "a.h5")  # existing: read-only
    with pytest.raises(StorageError):
        reader.append_row({"time": 1})
    assert (tmp_path / "a.h5").read_bytes() == before


def test_an_unwritable_folder_raises_storage_error(tmp_path: Path) -> None:
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("x")
    with pytest.raises(StorageError, match="writable"):
        HDF5Results(SweepProcedure(points=0), not_a_folder / "run.h5")


def test_a_full_disk_stops_the_run_failed_and_keeps_earlier_rows(tmp_path: Path) -> None:
    """A file-size limit makes every write past 1 MiB fail as a full disk would."""
    script = f"""
import resource, signal, sys, time
sys.path.insert(0, {str(HERE)!r})
from storage_test_procedures import SweepProcedure
from perovlab_daq.storage import DaqWorker, HDF5Results
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
results = HDF5Results(SweepProcedure(points=10_000_000, delay=0.00002),
                      {str(tmp_path / "full.h5")!r}, durability_interval_s=0.2)
resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))
worker = DaqWorker(results)
worker.start()
while worker.is_alive():
    time.sleep(0.01)
print(results.status)
print(results.status_reason)
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    status, reason = done.stdout.splitlines()[:2]
    assert status == "failed"
    assert "StorageError" in reason and "storage failed" in reason
    path = tmp_path / "full.h5"
    report = recover(path)
    loaded = HDF5Results.load(path)
    assert loaded.status in ("failed", "interrupted"), report
    current = loaded.data["time"].to_numpy()
    assert len(current) > 1000
    np.testing.assert_array_equal(current, np.arange(len(current)))  # no gap, no damage


@pytest.mark.skipif(shutil.which("h5dump") is None, reason="h5dump (hdf5-tools) not installed")
def test_files_read_with_h5dump(finished_run: Path) -> None:
    done = subprocess.run(
        ["h5dump", "-A", str(finished_run)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert 'ATTRIBUTE "status"' in done.stdout and '"finished"' in done.stdout
    done = subprocess.run(
        ["h5dump", "-d", "/entry/data/voltage", str(finished_run)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert "SIMPLE { ( 50 ) / ( H5S_UNLIMITED ) }" in done.stdout


def test_recover_on_a_cleanly_closed_file_changes_nothing(finished_run: Path) -> None:
    before = finished_run.read_bytes()
    report = recover(finished_run)
    assert report.action == "none" and report.status == "finished"
    assert finished_run.read_bytes() == before


def test_power_loss_safe_run(tmp_path: Path) -> None:
    results = HDF5Results(SweepProcedure(points=200), tmp_path / "pls.h5", power_loss_safe=True)
    run(results)
    loaded = HDF5Results.load(tmp_path / "pls.h5")
    assert loaded.status == "finished" and len(loaded.data) == 200
    with h5py.File(tmp_path / "pls.h5") as file:
        assert bool(file["entry"].attrs["power_loss_safe"])


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("S1/../../etc", "S1-.-.-etc"),
        ("..", "unknown"),
        ("a b\\c", "a-b-c"),
        (".hidden", "hidden"),
    ],
)
def test_sanitize_field(value: str, expected: str) -> None:
    assert sanitize_field(value) == expected


def test_run_file_path_is_safe_and_never_reuses_a_name(tmp_path: Path) -> None:
    first = run_file_path(
        tmp_path, sample="../../evil", procedure="jlv", pixel=3, date="2026-01-02"
    )
    assert first.parent == tmp_path
    assert first.name == "2026-01-02_evil_jlv_3.h5"
    first.write_bytes(b"")
    second = run_file_path(
        tmp_path, sample="../../evil", procedure="jlv", pixel=3, date="2026-01-02"
    )
    assert second.name == "2026-01-02_evil_jlv_3_2.h5"
    assert run_file_path(tmp_path, "{sample}-{pixel:02d}", sample="S", pixel=4).name == "S-04.h5"
    with pytest.raises(ValueError, match="needs field 'pixel'"):
        run_file_path(tmp_path, sample="S", procedure="jlv")
    with pytest.raises(ValueError, match="folder"):
        run_file_path(tmp_path, "../{sample}.h5", sample="S")


def test_metadata_and_stored_parameters_are_public(tmp_path):
    """Analyses read run metadata and the parameters as stored (no class defaults)."""
    import h5py
    from storage_test_procedures import SweepProcedure

    from perovlab_daq.storage import HDF5Results

    path = tmp_path / "run.h5"
    procedure = SweepProcedure(points=3)
    results = HDF5Results(procedure, path, metadata={"ageing_acceleration": 250.0, "preset": "x"})
    assert results.metadata["ageing_acceleration"] == 250.0
    results.start()
    results.close("finished")
    loaded = HDF5Results.load(path)
    assert loaded.metadata["ageing_acceleration"] == 250.0
    assert loaded.metadata["preset"] == "x"
    assert loaded.stored_parameters["points"] == 3
    with h5py.File(path, "r+") as handle:
        del handle["entry/parameters/points"]
    assert "points" not in HDF5Results.load(path).stored_parameters


def test_run_stops_before_hdf5_meets_a_full_disk(tmp_path: Path, monkeypatch) -> None:
    """Free space below what the next batch needs: the run fails cleanly, the file closes.

    HDF5 that meets ENOSPC mid-write can crash the process when the file is closed; the
    writer must stop first, with the file still closable and the rows before intact.
    """
    from collections import namedtuple

    import perovlab_daq.storage.batches as results_module
    from perovlab_daq.storage import DiskFullError

    usage = namedtuple("usage", "total used free")
    free = {"bytes": 10 << 30}
    real = results_module.shutil.disk_usage

    def fake_disk_usage(path):
        if Path(path) == tmp_path:
            return usage(20 << 30, 0, free["bytes"])
        return real(path)

    monkeypatch.setattr(results_module.shutil, "disk_usage", fake_disk_usage)
    path = tmp_path / "tight.h5"
    results = HDF5Results(
        SweepProcedure(points=10_000_000, delay=0.0001), path, durability_interval_s=0.2
    )
    worker = DaqWorker(results)
    worker.start()
    deadline = time.monotonic() + 60  # a hang guard: wait for rows, not for wall seconds
    while len(results.data) < 200 and time.monotonic() < deadline:
        time.sleep(0.05)  # rows flow while the disk has room
    free["bytes"] = 1 << 20  # the disk is nearly full now
    threading.Thread.join(worker, 30)
    assert not worker.is_alive()
    assert results.status == "failed"
    assert isinstance(results.error, StorageError)
    assert isinstance(results.error.__cause__, DiskFullError)
    assert "disk full" in results.status_reason
    loaded = HDF5Results.load(path)  # closed cleanly: no recover needed
    assert loaded.status == "failed"
    rows = loaded.data["time"].to_numpy()
    assert len(rows) >= 200
    np.testing.assert_array_equal(rows, np.arange(len(rows)))
