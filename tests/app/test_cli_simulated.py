"""Simulation is always explicit and visible (issue 22 part 2).

``run``/``sequence`` refuse to start without ``--sim``, ``--bench`` or the default bench
file of ``$PEROVLAB_DAQ_BENCH``; a simulated run says so in the file (NeXus field
``entry/instrument/simulated``, title), on the console and in the JSON summary.
"""

from __future__ import annotations

import json
from importlib import resources

import h5py
import pytest

from perovlab_daq.cli import main
from perovlab_daq.cli_args import BENCH_ENV, default_bench_file

FAST_JLV = ["--set", "stop_voltage=3", "--set", "fine_step=0.5", "--set", "coarse_step=0.5"]


@pytest.mark.parametrize("command", [["run", "jlv"], ["sequence", "RECIPE"]])
def test_no_bench_choice_exits_2_naming_sim_and_bench(tmp_path, capsys, monkeypatch, command):
    monkeypatch.delenv(BENCH_ENV, raising=False)
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("runs:\n  - procedure: jlv\n", encoding="utf-8")
    argv = [str(recipe) if part == "RECIPE" else part for part in command]
    out = tmp_path / "out"
    assert main([*argv, "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "--sim" in err and "--bench" in err and BENCH_ENV in err
    assert len(err.strip().splitlines()) == 1
    assert not out.exists() or not any(out.iterdir())  # no data file


def test_default_bench_file_from_the_environment(tmp_path):
    assert default_bench_file({}) is None
    assert default_bench_file({BENCH_ENV: "  "}) is None
    assert default_bench_file({BENCH_ENV: str(tmp_path / "b.yaml")}) == tmp_path / "b.yaml"


def test_simulated_run_is_marked_in_file_console_and_summary(tmp_path, capsys, monkeypatch):
    # The default bench file is the shipped simulated one: the run still says SIMULATED.
    with resources.as_file(resources.files("perovlab_daq.sim_configs") / "bench_sim.yaml") as bench:
        monkeypatch.setenv(BENCH_ENV, str(bench))
        code = main(["run", "jlv", "--sample", "S7", "-o", str(tmp_path), "--json", *FAST_JLV])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    summary = json.loads(captured.out.strip().splitlines()[-1])
    assert summary["simulated"] is True
    assert "SIMULATED" in captured.err
    with h5py.File(summary["file"], "r") as file:
        assert bool(file["entry/instrument/simulated"][()]) is True
        assert file["entry"].attrs["simulated"]
        assert file["entry/title"][()].decode().startswith("SIMULATED")


def test_text_summary_says_simulated(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv(BENCH_ENV, raising=False)
    assert main(["run", "jlv", "--sim", "-o", str(tmp_path), *FAST_JLV]) == 0
    out = capsys.readouterr().out
    assert "SIMULATED" in out.splitlines()[-1]
