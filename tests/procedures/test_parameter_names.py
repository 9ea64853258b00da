"""One name per quantity (issue 22 part 4): the documented table, ``list --json``, old names."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import h5py
import pytest
from perovlab_daq.procedures.parameter_names import RENAMED, canonical_parameters
from perovlab_daq.procedures.parameter_table import BEGIN, END, markdown_tables, parameter_rows

from perovlab_daq.bench import sim_bench
from perovlab_daq.cli import main
from perovlab_daq.figures import analyze_file, draw_report
from perovlab_daq.runner import RunInputError, execute_run, plan_run
from perovlab_daq.storage import RunReader

DOC = Path(__file__).resolve().parents[2] / "docs" / "parameters.md"
FAST_JLV = {"stop_voltage": 4.0, "fine_step": 0.5, "coarse_step": 0.5, "dwell": 0.0}


def test_documented_table_matches_the_procedures():
    text = DOC.read_text(encoding="utf-8")
    documented = text.split(BEGIN, 1)[1].split(END, 1)[0].lstrip("\n")
    assert documented == markdown_tables(), (
        "docs/parameters.md is out of date: regenerate it with "
        "'python -m perovlab_daq.procedures.parameter_table' and paste between the markers"
    )


def test_one_unit_per_name_and_no_old_name():
    units = defaultdict(set)
    for row in parameter_rows():
        units[row["name"]].add(row["units"])
        assert row["name"] not in RENAMED, f"{row['procedure']}: old name {row['name']!r}"
        assert not row["name"].endswith(("_v", "_a", "_s", "_nm", "_cm2", "_w", "_mm", "_ms"))
    assert {name: u for name, u in units.items() if len(u) > 1} == {}
    assert units["device_area"] == {"cm^2"} and units["compliance_current"] == {"A"}
    # every new name is a parameter of some procedure (the rename table has no dead entries)
    assert set(RENAMED.values()) <= set(units)


def test_list_json_gives_name_unit_default_range(capsys):
    assert main(["list", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    seen = defaultdict(set)
    for procedure, entry in listing.items():
        for name, spec in entry["parameters"].items():
            assert spec["name"] == name
            assert {"units", "default", "minimum", "maximum"} <= set(spec), (procedure, name)
            if spec["type"] in {"float", "integer"}:
                assert spec["minimum"] <= spec["default"] <= spec["maximum"], (procedure, name)
            seen[name].add(procedure)
    assert seen["device_area"] == {"jlv", "el-spectra", "lifetime"}
    assert seen["compliance_current"] == {"jlv", "el-spectra", "lifetime"}
    assert not set(seen) & set(RENAMED)


def test_old_input_names_run_with_a_deprecation_warning(tmp_path: Path):
    with pytest.warns(DeprecationWarning, match="'stop_v' is now called 'stop_voltage'"):
        plan = plan_run(
            "jlv",
            bench_config=sim_bench(),
            output=tmp_path,
            parameters={"stop_v": "4 V", "dwell_s": 0},
        )
    assert plan.parameters["stop_voltage"] == pytest.approx(4.0)
    assert plan.parameters["dwell"] == 0.0
    assert "stop_v" not in plan.parameters


def test_old_and_new_name_together_are_refused(tmp_path: Path):
    with pytest.raises(RunInputError, match="'stop_v' is the old name of 'stop_voltage'"):
        plan_run(
            "jlv",
            bench_config=sim_bench(),
            output=tmp_path,
            parameters={"stop_v": 4, "stop_voltage": 5},
        )


def test_rename_applies_only_to_procedures_that_have_the_new_name():
    known = {"interval": None}
    assert canonical_parameters({"interval_s": 3}, known=known, warn=False) == {"interval": 3}
    assert canonical_parameters({"dwell_s": 3}, known=known, warn=False) == {"dwell_s": 3}


def test_file_written_with_old_names_reads_and_analyses_the_same(tmp_path: Path):
    plan = plan_run("jlv", bench_config=sim_bench(seed=1), output=tmp_path, parameters=FAST_JLV)
    outcome = execute_run(plan)
    assert outcome.status == "finished"
    before = analyze_file(plan.path, store=False)
    # Turn the file into one written before the rename: old names in entry/parameters.
    with h5py.File(plan.path, "r+") as file:
        group = file["entry/parameters"]
        for old, new in RENAMED.items():
            if new in group and old not in group:
                group.move(new, old)
        assert "stop_v" in group and "stop_voltage" not in group
        assert "device_area_cm2" in group
    params = RunReader(plan.path).parameters
    assert params["stop_voltage"] == pytest.approx(4.0) and "stop_v" not in params
    after = analyze_file(plan.path, store=False)
    assert draw_report(plan.path, tmp_path / "old.png").stat().st_size > 0
    assert after.keys() == before.keys()
    for key, value in before.items():
        if isinstance(value, float):
            assert after[key] == pytest.approx(value, nan_ok=True), key
        else:
            assert after[key] == value, key
