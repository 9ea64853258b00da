"""Several stations and an indexer writing to one catalogue at once lose no row.

Four processes each register 50 runs through the runner's hooks (start, then end read
back from the file) while a fifth runs ``runs index`` over the first 50 files, into a new
catalogue (so the first-use migration races too): on SQLite (WAL, IMMEDIATE
transactions) and on a real PostgreSQL server started by the tests (conftest.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from catalog_helpers import write_runs
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from perovlab_daq.catalog.engine import open_catalog
from perovlab_daq.catalog.models import KeyFigure, Run
from perovlab_daq.catalog.query import find_runs

HERE = Path(__file__).resolve().parent
STATIONS = 4
RUNS_PER_STATION = 50


@pytest.fixture(scope="module")
def run_files(tmp_path_factory: pytest.TempPathFactory):
    return write_runs(tmp_path_factory.mktemp("runs"), STATIONS * RUNS_PER_STATION, seed=3)


def _child(*args: str) -> subprocess.Popen:
    # The child imports perovlab_daq as this process does (installed, or PYTHONPATH).
    paths = [str(HERE), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(paths))
    return subprocess.Popen(
        [sys.executable, str(HERE / "catalog_child.py"), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _write_at_once(url: str, run_files, folder: Path) -> None:
    children = []
    for k in range(STATIONS):
        mine = run_files[k * RUNS_PER_STATION : (k + 1) * RUNS_PER_STATION]
        runs = [
            {"path": str(t.path), "run_id": t.run_id, "procedure": t.procedure}
            | {"sample": t.sample, "pixel": t.pixel}
            for t in mine
        ]
        plan = folder / f"writer-{k}.json"
        plan.write_text(json.dumps(runs))
        children.append(_child("register", url, f"writer-{k}", str(plan)))
    # the indexer works over the first station's files while that station registers them
    first = run_files[:RUNS_PER_STATION]
    children.append(_child("index", url, *(str(t.path) for t in first)))
    for child in children:
        out, err = child.communicate(timeout=600)
        assert child.returncode == 0, err[-3000:]
        # "has not taken ... yet" is expected: runs end back to back and each end waits
        # at most 1 s; a write that failed would say "not updated".
        assert "not updated" not in err, err[-3000:]


def _assert_no_row_lost(url: str, run_files) -> None:
    engine = open_catalog(url)
    with Session(engine) as session:
        assert session.scalar(select(func.count()).select_from(Run)) == len(run_files)
        assert session.scalar(select(func.count()).select_from(KeyFigure)) == 2 * len(run_files)
    stored = {run.run_id: run for run in find_runs(engine)}
    assert set(stored) == {t.run_id for t in run_files}
    for truth in run_files:
        run = stored[truth.run_id]
        assert run.status == truth.status  # the end row, read from the file, came last
        assert {f.name: f.value for f in run.figures} == truth.figures


@pytest.mark.timeout(900)
def test_sqlite_catalogue_loses_no_row(run_files, tmp_path):
    url = f"sqlite:///{tmp_path / 'shared' / 'catalog.sqlite'}"
    _write_at_once(url, run_files, tmp_path)
    _assert_no_row_lost(url, run_files)


@pytest.mark.timeout(900)
def test_postgresql_catalogue_loses_no_row(run_files, postgres_url, tmp_path):
    _write_at_once(postgres_url, run_files, tmp_path)
    _assert_no_row_lost(postgres_url, run_files)
