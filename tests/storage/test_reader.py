"""Reading runs: RunReader without a procedure, and HDF5Results' column and frame reads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from storage_test_procedures import SweepProcedure

from perovlab_daq.storage import HDF5Results, RunReader, StorageError
from perovlab_daq.storage.reader import segment_ranges

WAVELENGTH = np.linspace(400.0, 800.0, 16)


def write_run(path: Path, rows: int = 30, frames: int = 7, segments: bool = False) -> Path:
    procedure = SweepProcedure(points=rows, stop_voltage=3.0)
    if segments:
        procedure.COLUMNS = {**SweepProcedure.COLUMNS, "segment": ""}
        procedure.DATA_COLUMNS = list(procedure.COLUMNS)
    results = HDF5Results(procedure, path, metadata={"preset": "x"})
    results.start()
    for index in range(rows):
        row = {"time": float(index), "voltage": 0.1 * index, "current": 2.0 * index}
        row["current_density"] = -1.0
        if segments:
            row["segment"] = float(index >= 20)
        results.append_row(row)
    for index in range(frames):
        results.append_frame(
            wavelength=WAVELENGTH, intensity=np.full(16, float(index)), context={"bias": index}
        )
    results.add_event("info", "marker", "half way")
    results.close("finished")
    return path


def test_run_reader_gives_plain_values_without_a_procedure(tmp_path: Path) -> None:
    reader = RunReader(write_run(tmp_path / "run.h5"))
    assert reader.procedure == "jlv" and reader.status == "finished"
    assert reader.parameters["points"] == 30 and reader.parameters["stop_voltage"] == 3.0
    assert reader.metadata["preset"] == "x"
    assert reader.columns == {
        "time": "s",
        "voltage": "V",
        "current": "A",
        "current_density": "mA/cm^2",
    }
    assert [e["kind"] for e in reader.events] == ["marker"]
    columns = reader.read_columns(["current", "time", "no_such_column"])
    assert list(columns) == ["current", "time"]
    np.testing.assert_array_equal(columns["current"], 2.0 * np.arange(30))
    frames = reader.frames(with_intensity=False)
    assert len(frames) == 7 and frames.intensity.shape == (7, 0)
    np.testing.assert_array_equal(frames.context["bias"], np.arange(7.0))
    assert frames.units["wavelength"] == "nm"
    blocks = list(reader.iter_frames(block_frames=3, start=1))
    assert [first for first, _block in blocks] == [1, 4]
    np.testing.assert_array_equal(np.vstack([b for _f, b in blocks])[:, 0], np.arange(1.0, 7.0))
    assert reader.streams() == ["spectra"]
    assert reader.segments() == [(0, 0, 30)]
    with pytest.raises(KeyError, match="no frame stream 'other'"):
        reader.frames("other")
    with pytest.raises(StorageError, match="no run file"):
        RunReader(tmp_path / "missing.h5")


def test_segments_of_a_resumed_run(tmp_path: Path) -> None:
    reader = RunReader(write_run(tmp_path / "run.h5", segments=True))
    assert reader.segments() == [(0, 0, 20), (1, 20, 30)]
    assert segment_ranges(np.array([0.0, 0.0, 2.0, 1.0]), 4) == [(0, 0, 2), (2, 2, 3), (1, 3, 4)]
    assert segment_ranges(None, 0) == []


def test_results_read_columns_and_frames_match_the_reader(tmp_path: Path) -> None:
    path = write_run(tmp_path / "run.h5")
    loaded = HDF5Results.load(path)
    reader = RunReader(path)
    for key, values in reader.read_columns(["voltage", "time"]).items():
        np.testing.assert_array_equal(loaded.read_columns([key])[key], values)
    np.testing.assert_array_equal(
        np.vstack([block for _first, block in loaded.iter_frames(block_frames=2)]),
        reader.frames().intensity,
    )
    with pytest.raises(ValueError, match="block_frames"):
        next(loaded.iter_frames(block_frames=0))


def test_reads_while_the_writer_thread_holds_the_file(tmp_path: Path) -> None:
    """In the writing process, reads go through the writer's own handle."""
    results = HDF5Results(SweepProcedure(points=0), tmp_path / "live.h5")
    results.start()
    for index in range(100):
        results.append_row(
            {"time": float(index), "voltage": 1.0, "current": 0.0, "current_density": 0.0}
        )
    for index in range(5):
        results.append_frame(wavelength=WAVELENGTH, intensity=np.full(16, float(index)))
    results.flush()
    assert results._live_writer()
    np.testing.assert_array_equal(results.read_columns(["time"])["time"], np.arange(100.0))
    assert len(results.data) == 100
    assert len(results.frames()) == 5 and results.streams() == ["spectra"]
    blocks = list(results.iter_frames(block_frames=2))
    assert [first for first, _block in blocks] == [0, 2, 4]
    with pytest.raises(KeyError):
        results.frames("other")
    results.close()
    assert results.status == "finished"
    np.testing.assert_array_equal(results.read_columns(["time"])["time"], np.arange(100.0))


def test_open_run_reads_what_is_asked_for_and_matches_a_loaded_run(tmp_path: Path) -> None:
    from perovlab_daq.storage.header import procedure_from_info
    from perovlab_daq.storage.reader import OpenRun

    path = write_run(tmp_path / "run.h5")
    loaded = HDF5Results.load(path)
    built: list[object] = []

    def factory(info):  # noqa: ANN001, ANN202
        built.append(info)
        return procedure_from_info(info, SweepProcedure, path)

    with OpenRun(path, factory) as run:
        assert run.procedure_name == "jlv" and run.status == "finished"
        columns = run.read_columns(["current", "no_such_column"])
        assert list(columns) == ["current"]
        assert built == []  # reading values never builds the procedure
        assert run.stored_parameters == loaded.stored_parameters
        assert run.metadata == loaded.metadata and run.events == loaded.events
        assert run.columns == loaded.columns
        assert run.data.equals(loaded.data)
        assert run.procedure.points == loaded.procedure.points == 30
        assert run.procedure is run.procedure and len(built) == 1
        frames = run.frames()
        np.testing.assert_array_equal(frames.intensity, loaded.frames().intensity)
        blocks = list(run.iter_frames(block_frames=4))
        assert [first for first, _b in blocks] == [0, 4]
        with pytest.raises(KeyError):
            run.frames("other")
    with pytest.raises(StorageError, match="closed"):
        run.frames()
    assert run.metadata["preset"] == "x"  # what was read stays available
    run.write_analysis({"answer": 42.0})
    assert HDF5Results.load(path).analysis["answer"] == 42.0
    with pytest.raises(StorageError, match="no run file"):
        OpenRun(tmp_path / "missing.h5")


def test_an_open_run_appends_an_event_to_its_closed_file(tmp_path: Path) -> None:
    """The after-run analysis records its failure through OpenRun.add_event (GUI, CLI)."""
    from perovlab_daq.storage.reader import OpenRun

    path = write_run(tmp_path / "run.h5")
    before = len(RunReader(path).events)
    run = OpenRun(path)
    assert run.status == "finished"
    run.add_event("error", "analysis", "analysis failed: made up")
    events = RunReader(path).events
    assert len(events) == before + 1
    assert (events[-1]["level"], events[-1]["kind"]) == ("error", "analysis")
    assert events[-1]["message"] == "analysis failed: made up"
    assert RunReader(path).status == "finished"
