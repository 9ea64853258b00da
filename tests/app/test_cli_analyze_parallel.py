"""`perovlab-daq analyze` over many files in worker processes: same output, order, exit codes."""

from __future__ import annotations

import concurrent.futures
import json
import multiprocessing
import os
import sys
from pathlib import Path

import pytest

from perovlab_daq.cli import main
from perovlab_daq.figures import analyze_files
from perovlab_daq.testing import write_synthetic_lifetime_run


def _lifetime_file(path: Path, rows: int, tau_device_s: float) -> Path:
    """Write a small lifetime run file (stretched-exponential decay) without instruments."""
    return write_synthetic_lifetime_run(path, rows, tau_device_s, seed=int(tau_device_s))


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Good files with different T50s, a file that is not HDF5 and a missing one, mixed."""
    folder = tmp_path_factory.mktemp("many")
    good = [_lifetime_file(folder / f"run{i}.h5", 400, 5e4 * (i + 1)) for i in range(6)]
    bad = folder / "not_a_run.h5"
    bad.write_text("not HDF5")
    missing = folder / "missing.h5"
    return [good[3], bad, good[0], good[5], missing, good[1], good[4], good[2]]


def _analyze(files: list[Path], jobs: int, capsys: pytest.CaptureFixture[str]):
    code = main(["analyze", *map(str, files), "--json", "--no-store", "--jobs", str(jobs)])
    captured = capsys.readouterr()
    return code, json.loads(captured.out), captured.err.strip().splitlines()


def test_parallel_output_matches_sequential_in_input_order(files, capsys):
    code_1, out_1, err_1 = _analyze(files, 1, capsys)
    code_2, out_2, err_2 = _analyze(files, 2, capsys)
    assert code_1 == code_2 == 2  # bad input reported, the good files still analysed
    assert out_2 == out_1
    good = [str(p) for p in files if p.exists() and p.name.startswith("run")]
    assert list(out_2) == good  # the order given, not the order of completion
    t50 = [out_2[p]["t50_h"] for p in good]
    assert len(set(t50)) == len(t50)  # each file's own figures, not a neighbour's
    assert err_2 == err_1
    assert [line.split(": ")[1] for line in err_2] == [str(files[1]), str(files[4])]
    assert "no such file" in err_2[1]


def test_several_jobs_use_a_process_pool(files, monkeypatch):
    pools: list[int] = []
    real_pool = concurrent.futures.ProcessPoolExecutor

    class CountingPool(real_pool):  # type: ignore[misc, valid-type]
        def __init__(self, max_workers: int | None = None, **kwargs):
            pools.append(max_workers or 0)
            super().__init__(max_workers=max_workers, **kwargs)

    monkeypatch.setattr(concurrent.futures, "ProcessPoolExecutor", CountingPool)
    results = list(analyze_files(files, store=False, jobs=2))
    assert pools == [2]
    assert [path for path, _ in results] == files
    assert isinstance(results[1][1], ValueError) and isinstance(results[4][1], FileNotFoundError)
    assert all(isinstance(r, dict) for i, (_p, r) in enumerate(results) if i not in (1, 4))


def test_jobs_must_be_a_positive_whole_number(files, capsys):
    assert main(["analyze", str(files[0]), "--jobs", "0"]) == 2
    assert "--jobs" in capsys.readouterr().err


def _where(path: Path, store: bool) -> dict[str, object]:
    """Stand-in for one file's analysis: which process did it, with what loaded."""
    return {"pid": os.getpid(), "h5py": "h5py" in sys.modules}


def test_workers_are_started_once_and_reused_with_the_analysis_loaded(files, monkeypatch):
    import perovlab_daq.figures as figures

    monkeypatch.setattr(figures, "_analyze_one", _where)
    many = [p for p in files if p.exists()] * 8
    results = list(analyze_files(many, store=False, jobs=2))
    assert [p for p, _r in results] == many
    pids = {r["pid"] for _p, r in results}
    assert 1 <= len(pids) <= 2 and os.getpid() not in pids  # 2 workers for 56 files
    assert all(r["h5py"] for _p, r in results)
    if "fork" in multiprocessing.get_all_start_methods():
        assert figures._pool_context().get_start_method() == "fork"


def test_analyze_on_a_dask_cluster_matches_one_process(files, capsys):
    distributed = pytest.importorskip("distributed")
    code_1, out_1, err_1 = _analyze(files, 1, capsys)
    with distributed.LocalCluster(
        n_workers=1,
        threads_per_worker=1,
        processes=False,
        protocol="tcp",
        host="127.0.0.1",
        dashboard_address=None,
    ) as cluster:
        address = cluster.scheduler_address
        assert address.startswith("tcp://127.0.0.1:")
        code = main(["analyze", *map(str, files), "--json", "--no-store", "--scheduler", address])
        captured = capsys.readouterr()
    assert code == code_1 == 2
    assert json.loads(captured.out) == out_1
    assert list(json.loads(captured.out)) == list(out_1)  # input order
    assert captured.err.strip().splitlines() == err_1


def test_an_unreachable_scheduler_is_bad_input(files, capsys):
    pytest.importorskip("distributed")
    code = main(["analyze", str(files[0]), "--no-store", "--scheduler", "tcp://127.0.0.1:9"])
    assert code == 2
    assert "--scheduler tcp://127.0.0.1:9" in capsys.readouterr().err


def test_a_damaged_file_error_survives_the_trip_back_from_a_worker():
    import pickle

    from perovlab_daq.filecheck import DamagedFileError, NotHdf5Error

    for cls in (DamagedFileError, NotHdf5Error):
        error = pickle.loads(pickle.dumps(cls("/data/run.h5", "cannot be analysed")))
        assert type(error) is cls and str(error) == "/data/run.h5: cannot be analysed"
        assert (error.path, error.problem) == ("/data/run.h5", "cannot be analysed")
