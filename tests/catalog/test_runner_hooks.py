"""Every run registers itself; a catalogue that is down or slow never stops or slows a run.

Real runs of the J-L-V procedure on the simulated bench, through the runner: with the
default catalogue (SQLite beside the data), with a PostgreSQL URL on a closed port, and
with a catalogue that takes 5 s to answer. The last two finish normally with at most
about a second spent in the catalogue hooks, and ``runs index`` catches them up.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import socket
import time
from pathlib import Path

import h5py
import pytest

import perovlab_daq.catalog as catalog
from perovlab_daq.bench import sim_bench
from perovlab_daq.catalog import engine as catalog_engine
from perovlab_daq.catalog import hooks
from perovlab_daq.catalog.engine import open_catalog
from perovlab_daq.catalog.query import RunFilter, find_runs
from perovlab_daq.cli import main
from perovlab_daq.runner import execute_run, plan_run

FAST_JLV = {"stop_voltage": 4, "fine_step": 0.2, "coarse_step": 0.5}


def _run(tmp_path: Path, config) -> object:
    plan = plan_run(
        "jlv",
        bench_config=config,
        output=tmp_path,
        parameters=FAST_JLV,
        sample={"sample": "QD7", "pixel": "2", "operator": "ci"},
    )
    return execute_run(plan, log_file=False)


@pytest.fixture
def hook_time(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Seconds the runner spent inside each catalogue hook call."""
    spent: list[float] = []

    def timed(function):
        def wrapper(*args, **kwargs):
            started = time.monotonic()
            try:
                return function(*args, **kwargs)
            finally:
                spent.append(time.monotonic() - started)

        return wrapper

    monkeypatch.setattr(catalog, "register_run_start", timed(hooks.register_run_start))
    monkeypatch.setattr(catalog, "register_run_end", timed(hooks.register_run_end))
    return spent


def _run_id(path: Path) -> str:
    with h5py.File(path, "r") as file:
        return file["entry/provenance/run_id"][()].decode()


def test_a_run_registers_itself_beside_its_data(tmp_path, hook_time):
    config = sim_bench()
    outcome = _run(tmp_path, config)
    assert outcome.status == "finished" and outcome.exit_code == 0
    assert len(hook_time) == 2  # one call at the start, one at the end
    (run,) = find_runs(open_catalog(f"sqlite:///{tmp_path / 'catalog.sqlite'}"))
    assert run.run_id == _run_id(outcome.path) and len(run.run_id) == 32
    assert run.path == str(outcome.path.resolve())
    assert (run.status, run.procedure, run.sample, run.pixel) == ("finished", "jlv", "QD7", "2")
    assert run.station == config.station and run.simulated is True
    assert run.started_utc is not None and run.ended_utc > run.started_utc
    numbers = {k: v for k, v in outcome.figures.items() if isinstance(v, float)}
    stored = {f.name: f.value for f in run.figures}
    assert numbers and set(numbers) <= set(stored)
    for name, value in numbers.items():  # NaN (undefined) is stored as no number
        assert stored[name] == (None if math.isnan(value) else pytest.approx(value)), name
    assert {f.name: f.unit for f in run.figures}["peak_eqe_pct"] == "%"


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])  # nothing listens once the probe is closed


def _catches_up(tmp_path: Path, outcome, capsys) -> None:
    url = f"sqlite:///{tmp_path / 'later.sqlite'}"
    assert main(["runs", "--catalog", url, "index", str(tmp_path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["added"] == 1
    (run,) = find_runs(open_catalog(url), RunFilter(sample=["QD7"]))
    assert run.run_id == _run_id(outcome.path) and run.status == "finished"
    assert run.figures


def test_a_catalogue_that_is_down_costs_the_run_nothing(tmp_path, hook_time, caplog, capsys):
    url = f"postgresql://catalog@127.0.0.1:{_closed_port()}/runs"
    config = dataclasses.replace(sim_bench(), catalog=url)
    with caplog.at_level(logging.WARNING, logger="perovlab_daq.catalog"):
        outcome = _run(tmp_path, config)
    assert outcome.status == "finished" and outcome.exit_code == 0
    assert sum(hook_time) < hooks.END_WAIT_S + 0.3, hook_time
    assert "runs index' catches up" in caplog.text
    assert not (tmp_path / "catalog.sqlite").exists()  # the bench's URL, not the default
    _catches_up(tmp_path, outcome, capsys)


def test_a_slow_catalogue_never_holds_the_run_up(tmp_path, hook_time, monkeypatch, capsys):
    def slow(url, **kwargs):
        time.sleep(5)
        raise OSError("catalogue server not answering")

    monkeypatch.setattr(catalog_engine, "open_catalog", slow)
    outcome = _run(tmp_path, sim_bench())
    assert outcome.status == "finished" and outcome.exit_code == 0
    assert sum(hook_time) < hooks.END_WAIT_S + 0.3, hook_time
    monkeypatch.undo()
    _catches_up(tmp_path, outcome, capsys)


def test_catalog_off_registers_nothing(tmp_path, hook_time):
    outcome = _run(tmp_path, dataclasses.replace(sim_bench(), catalog="off"))
    assert outcome.status == "finished"
    assert not list(tmp_path.glob("catalog.sqlite*"))


def test_a_lifetime_continuation_is_no_run_of_its_own(tmp_path):
    from types import SimpleNamespace

    plan = SimpleNamespace(
        bench_config=sim_bench(),
        parameters={"resume_file": str(tmp_path / "run.h5")},
        sample={},
        procedure_cls=SimpleNamespace(NAME="lifetime"),
    )
    results = SimpleNamespace(path=tmp_path / "run.segment1.h5", run_id="ab" * 16)
    assert hooks.register_run_start(plan, results) is None
    hooks.register_run_end(None, SimpleNamespace(path=results.path))  # nothing, no error
    assert not list(tmp_path.iterdir())
