"""Two hundred run files indexed into a fresh SQLite catalogue answer filters exactly.

The files (3 procedures, 5 samples, 3 stations, 30 days, 3 statuses) are real run files
of the storage writer (see catalog_helpers); the truth of each is known, so every filter
is checked against the set of runs it must return. Re-indexing adds nothing; a damaged
(truncated) and a foreign file are reported and skipped.
"""

from __future__ import annotations

import json
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

import h5py
import pytest
from catalog_helpers import RunTruth, write_runs
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from perovlab_daq.catalog.engine import open_catalog
from perovlab_daq.catalog.index import index_paths, read_run_record
from perovlab_daq.catalog.models import KeyFigure, Run
from perovlab_daq.catalog.query import RunFilter, find_runs, parse_condition
from perovlab_daq.cli import main


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """200 runs, a damaged and a foreign file, indexed once with ``runs index``."""
    folder = tmp_path_factory.mktemp("runs")
    truths = write_runs(folder, 200)
    damaged = folder / "station-1" / "damaged.h5"
    data = truths[0].path.read_bytes()
    damaged.write_bytes(data[: len(data) // 3])  # a copy cut short
    foreign = folder / "station-2" / "foreign.h5"
    with h5py.File(foreign, "w") as file:
        file["x"] = [1, 2, 3]
    url = f"sqlite:///{tmp_path_factory.mktemp('catalog') / 'catalog.sqlite'}"
    return {"folder": folder, "truths": truths, "url": url, "damaged": damaged, "foreign": foreign}


def _index(capsys: pytest.CaptureFixture[str], url: str, *paths: Path) -> tuple[int, dict, str]:
    code = main(["runs", "--catalog", url, "index", *map(str, paths), "-j", "2", "--json"])
    captured = capsys.readouterr()
    return code, json.loads(captured.out.strip().splitlines()[-1]), captured.err


def test_index_adds_every_run_and_skips_damaged_and_foreign(catalogue, capsys):
    code, summary, err = _index(capsys, catalogue["url"], catalogue["folder"])
    assert summary["added"] == 200 and summary["updated"] == 0
    skipped = {Path(item["file"]).name: item["problem"] for item in summary["skipped"]}
    assert set(skipped) == {"damaged.h5", "foreign.h5"}
    assert "damaged" in skipped["damaged.h5"] or "truncated" in skipped["damaged.h5"]
    assert "not a run file" in skipped["foreign.h5"]
    assert f"skipped: {catalogue['damaged']}" in err
    assert code == 1  # something was skipped
    engine = open_catalog(catalogue["url"])
    with Session(engine) as session:
        assert session.scalar(select(func.count()).select_from(Run)) == 200
        assert session.scalar(select(func.count()).select_from(KeyFigure)) == 400
        paths = set(session.scalars(select(Run.path)))
    assert str(catalogue["damaged"]) not in paths and str(catalogue["foreign"]) not in paths


def test_reindexing_adds_nothing(catalogue, capsys):
    _index(capsys, catalogue["url"], catalogue["folder"])
    code, summary, _err = _index(capsys, catalogue["url"], catalogue["folder"])
    assert (summary["added"], summary["updated"], summary["unchanged"]) == (0, 0, 200)
    engine = open_catalog(catalogue["url"])
    station = catalogue["folder"] / "station-1"
    count = len([t for t in catalogue["truths"] if t.station == "station-1"])
    report = index_paths(engine, [station], reread=True)  # every file read again
    assert (len(report.added), len(report.updated), len(report.unchanged)) == (0, 0, count)
    # the same files under another path (a copy on a share) are the same runs
    copy = catalogue["folder"].parent / "share-copy"
    shutil.copytree(catalogue["folder"] / "station-3", copy)
    report = index_paths(engine, [copy])
    assert not report.added and len(report.updated) == len(list(copy.glob("*.h5")))
    assert find_runs(engine, RunFilter(station=["station-3"]))[0].path.startswith(str(copy))
    with Session(engine) as session:
        assert session.scalar(select(func.count()).select_from(Run)) == 200


def _expected(truths: list[RunTruth], keep) -> set[str]:
    return {t.run_id for t in truths if keep(t)}


def _found(engine, run_filter: RunFilter) -> set[str]:
    return {run.run_id for run in find_runs(engine, run_filter)}


def _when(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC).replace(tzinfo=None)


def _filter_cases(truths: list[RunTruth]) -> list[tuple[RunFilter, set[str]]]:
    """Filters and the run ids each must return, from the truth of ``truths``."""
    since, until = _when("2026-11-10T00:00:00+00:00"), _when("2026-11-20T12:00:00+00:00")
    cases = [
        (RunFilter(sample=["S1"]), lambda t: t.sample == "S1"),
        (RunFilter(sample=["S1", "S3"]), lambda t: t.sample in ("S1", "S3")),
        (RunFilter(procedure=["jlv"]), lambda t: t.procedure == "jlv"),
        (RunFilter(status=["failed"]), lambda t: t.status == "failed"),
        (RunFilter(station=["station-2"]), lambda t: t.station == "station-2"),
        (
            RunFilter(since=since, until=until),
            lambda t: since <= t.started.replace(tzinfo=None) < until,
        ),
        (
            RunFilter(where=[parse_condition("peak_eqe_pct>=10")]),
            lambda t: t.figures.get("peak_eqe_pct", -1) >= 10,
        ),
        (
            RunFilter(
                procedure=["lifetime"],
                station=["station-2", "station-3"],
                where=[parse_condition("t50_h < 250"), parse_condition("l0_cd_m2>1000")],
            ),
            lambda t: (
                t.procedure == "lifetime"
                and t.station in ("station-2", "station-3")
                and t.figures["t50_h"] < 250
                and t.figures["l0_cd_m2"] > 1000
            ),
        ),
        (
            RunFilter(sample=["S0"], status=["finished"], since=since),
            lambda t: (
                t.sample == "S0"
                and t.status == "finished"
                and t.started.replace(tzinfo=None) >= since
            ),
        ),
        (RunFilter(where=[parse_condition("fwhm_nm != 0")]), lambda t: "fwhm_nm" in t.figures),
        (
            RunFilter(where=[parse_condition("max_luminance_cd_m2<=5000")], until=until),
            lambda t: (
                t.figures.get("max_luminance_cd_m2", 1e9) <= 5000
                and t.started.replace(tzinfo=None) < until
            ),
        ),
    ]
    return [(run_filter, _expected(truths, keep)) for run_filter, keep in cases]


def test_filters_answer_exactly(catalogue, capsys):
    _index(capsys, catalogue["url"], catalogue["folder"])
    engine = open_catalog(catalogue["url"])
    for run_filter, expected in _filter_cases(catalogue["truths"]):
        assert expected, run_filter  # every case selects something ...
        assert len(expected) < 200, run_filter  # ... and leaves something out
        assert _found(engine, run_filter) == expected, run_filter


def test_postgresql_catalogue_answers_the_same(catalogue, postgres_url):
    """The PostgreSQL path: index (one station's files) and filter on a real server."""
    folder = catalogue["folder"] / "station-1"
    truths = [t for t in catalogue["truths"] if t.station == "station-1"]
    engine = open_catalog(postgres_url)
    report = index_paths(engine, [folder, catalogue["damaged"]])  # damaged.h5 is in folder too
    assert len(report.added) == len(truths)
    assert [Path(p).name for p, _problem in report.skipped] == ["damaged.h5"]
    assert not index_paths(engine, [folder]).added  # idempotent
    assert not index_paths(engine, [folder], reread=True).updated
    for run_filter, expected in _filter_cases(truths):
        assert _found(engine, run_filter) == expected, run_filter
    (run,) = find_runs(
        engine,
        RunFilter(
            sample=[truths[0].sample],
            where=[parse_condition(f"{name}={value}") for name, value in truths[0].figures.items()],
        ),
    )
    assert run.run_id == truths[0].run_id
    assert run.started_utc == truths[0].started.replace(tzinfo=None)


def test_runs_command_filters_and_prints_json(catalogue, capsys):
    _index(capsys, catalogue["url"], catalogue["folder"])
    code = main(
        [
            "runs",
            "--catalog",
            catalogue["url"],
            "--procedure",
            "jlv",
            "--station",
            "station-1",
            "--where",
            "max_luminance_cd_m2>=20000",
            "--since",
            "2026-11-05T00:00+00:00",
            "--json",
        ]
    )
    document = json.loads(capsys.readouterr().out)
    expected = _expected(
        catalogue["truths"],
        lambda t: (
            t.procedure == "jlv"
            and t.station == "station-1"
            and t.figures["max_luminance_cd_m2"] >= 20000
            and t.started >= datetime(2026, 11, 5, tzinfo=UTC)
        ),
    )
    assert code == 0 and expected
    assert {run["run_id"] for run in document["runs"]} == expected
    assert document["count"] == len(expected)
    first = document["runs"][0]
    truth = next(t for t in catalogue["truths"] if t.run_id == first["run_id"])
    assert first["figures"]["peak_eqe_pct"] == truth.figures["peak_eqe_pct"]
    assert first["units"]["max_luminance_cd_m2"] == "cd/m^2"
    assert first["sample"] == truth.sample and first["pixel"] == truth.pixel
    assert first["simulated"] is True
    # the table: one line per run plus header and count
    assert main(["runs", "--catalog", catalogue["url"], "--sample", "S2"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    count = len(_expected(catalogue["truths"], lambda t: t.sample == "S2"))
    assert lines[-1] == f"{count} run(s)" and len(lines) == count + 2


@pytest.mark.parametrize(
    "args",
    [
        ["--where", "peak_eqe_pct>>3"],
        ["--where", "__import__('os').system('true')>1"],
        ["--where", "peak_eqe_pct>=nan"],
        ["--since", "last tuesday"],
    ],
)
def test_bad_filters_are_bad_input(catalogue, capsys, args):
    assert main(["runs", "--catalog", catalogue["url"], *args]) == 2
    assert capsys.readouterr().err.startswith("error: ")


def test_a_changed_file_updates_its_row(catalogue, tmp_path):
    truth = catalogue["truths"][5]
    path = tmp_path / truth.path.name
    shutil.copyfile(truth.path, path)
    engine = open_catalog(f"sqlite:///{tmp_path / 'c.sqlite'}")
    assert index_paths(engine, [path]).added == [truth.run_id]
    with h5py.File(path, "r+") as file:
        file["entry"].attrs["status"] = "interrupted"
        del file["entry/analysis"][next(iter(truth.figures))]
    os.utime(path, ns=(1, 1))  # a different modification time, whatever the clock did
    assert index_paths(engine, [path]).updated == [truth.run_id]
    (run,) = find_runs(engine)
    assert run.status == "interrupted" and len(run.figures) == len(truth.figures) - 1


def test_a_file_without_run_id_gets_a_stable_one(catalogue, tmp_path):
    path = tmp_path / "older.h5"
    shutil.copyfile(catalogue["truths"][7].path, path)
    with h5py.File(path, "r+") as file:
        del file["entry/provenance/run_id"]
    first = read_run_record(path).run_id
    assert first != catalogue["truths"][7].run_id and first == read_run_record(path).run_id


def test_folders_leave_out_hidden_files_and_continuation_segments(catalogue, tmp_path):
    source = catalogue["truths"][9].path
    shutil.copyfile(source, tmp_path / "run.h5")
    shutil.copyfile(catalogue["truths"][12].path, tmp_path / "run.segment1.h5")
    shutil.copyfile(catalogue["truths"][15].path, tmp_path / ".run.h5.123.abc.updating.h5")
    engine = open_catalog(f"sqlite:///{tmp_path / 'c.sqlite'}")
    assert index_paths(engine, [tmp_path]).added == [catalogue["truths"][9].run_id]
    # given by name, a file is always read
    assert index_paths(engine, [tmp_path / "run.segment1.h5"]).added


def test_copies_edited_into_other_runs_keep_their_own_rows(catalogue, tmp_path):
    """Files made by copying one run file and editing who/when keep the copied run id."""
    template = catalogue["truths"][0]
    stations = {}
    for k in range(12):
        path = tmp_path / f"copy{k:02d}.h5"
        shutil.copyfile(template.path, path)
        with h5py.File(path, "r+") as file:
            entry = file["entry"]
            del entry["provenance/station"]
            entry["provenance/station"] = f"bench-{k % 4}"
            entry.attrs["start_time"] = f"2026-10-{k + 1:02d}T10:00:00.000+00:00"
        stations[path.name] = f"bench-{k % 4}"
    shutil.copyfile(tmp_path / "copy00.h5", tmp_path / "same-run-again.h5")  # a true copy
    engine = open_catalog(f"sqlite:///{tmp_path / 'c.sqlite'}")
    report = index_paths(engine, [tmp_path])
    assert len(report.added) == 12 and len(report.updated) == 1  # the copy moved its row
    assert template.run_id in report.added
    assert index_paths(engine, [tmp_path], reread=True).summary()["added"] == 0
    runs = find_runs(engine, RunFilter(station=["bench-1"]))
    assert sorted(Path(run.path).name for run in runs) == ["copy01.h5", "copy05.h5", "copy09.h5"]
    assert len(find_runs(engine)) == 12


def test_copies_differing_only_in_results_are_other_runs(catalogue, tmp_path):
    template = catalogue["truths"][3]
    name = next(iter(template.figures))
    for k, status in enumerate(["finished", "failed", "finished"]):
        path = tmp_path / f"c{k}.h5"
        shutil.copyfile(template.path, path)
        with h5py.File(path, "r+") as file:
            file["entry"].attrs["status"] = status
            del file["entry/analysis"][name]
            file["entry/analysis"][name] = float(k)
    engine = open_catalog(f"sqlite:///{tmp_path / 'c.sqlite'}")
    assert len(index_paths(engine, [tmp_path]).added) == 3
    (failed,) = find_runs(engine, RunFilter(status=["failed"]))
    assert failed.path.endswith("c1.h5")
    assert len(find_runs(engine, RunFilter(where=[parse_condition(f"{name}>=1")]))) == 2
    # a row keyed by a reused id stays the row of its file when the file changes
    with h5py.File(tmp_path / "c2.h5", "r+") as file:
        file["entry"].attrs["status"] = "aborted"
    os.utime(tmp_path / "c2.h5", ns=(1, 1))
    report = index_paths(engine, [tmp_path])
    assert (len(report.added), len(report.updated)) == (0, 1)


def test_index_on_a_dask_cluster_gives_the_rows_of_one_process(catalogue, tmp_path, capsys):
    distributed = pytest.importorskip("distributed")
    station = catalogue["folder"] / "station-2"  # its runs and the foreign file
    here = open_catalog(f"sqlite:///{tmp_path / 'here.sqlite'}")
    expected = index_paths(here, [station])
    url = f"sqlite:///{tmp_path / 'cluster.sqlite'}"
    with distributed.LocalCluster(
        n_workers=1,
        threads_per_worker=2,
        processes=False,
        protocol="tcp",
        host="127.0.0.1",
        dashboard_address=None,
    ) as cluster:
        code = main(
            ["runs", "--catalog", url, "index", str(station), "--json"]
            + ["--scheduler", cluster.scheduler_address]
        )
        summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 1  # the foreign file is skipped there too
    assert summary["added"] == len(expected.added) > 0
    assert [Path(s["file"]).name for s in summary["skipped"]] == ["foreign.h5"]
    rows_here = {r.run_id: (r.path, r.status) for r in find_runs(here, RunFilter())}
    rows_cluster = {r.run_id: (r.path, r.status) for r in find_runs(open_catalog(url), RunFilter())}
    assert rows_cluster == rows_here


def test_index_with_an_unreachable_scheduler_is_bad_input(catalogue, tmp_path, capsys):
    pytest.importorskip("distributed")
    url = f"sqlite:///{tmp_path / 'c.sqlite'}"
    station = catalogue["folder"] / "station-1"
    code = main(
        ["runs", "--catalog", url, "index", str(station), "--scheduler", "tcp://127.0.0.1:9"]
    )
    assert code == 2
    assert "--scheduler tcp://127.0.0.1:9" in capsys.readouterr().err
