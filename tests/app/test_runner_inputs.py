"""Run input checks: units, ranges, identifiers, output paths - all before anything is touched."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from perovlab_daq.procedures.base import DaqProcedure, ParameterError
from pymeasure.experiment import BooleanParameter, FloatParameter, IntegerParameter, ListParameter

from perovlab_daq import runner
from perovlab_daq.bench import parse_bench
from perovlab_daq.runner import RunInputError, check_identifier, parse_quantity, plan_run


class FakeProcedure(DaqProcedure):
    """A procedure used only to test input handling."""

    NAME = "fake"
    TITLE = "Fake"
    REQUIRED_ROLES = ("source_meter",)
    COLUMNS = {"time": "s", "voltage": "V"}
    current_density = FloatParameter(
        "Current density", units="mA/cm^2", minimum=0.1, maximum=1000, default=20
    )
    duration = FloatParameter("Duration", units="s", minimum=0, maximum=3600, default=10)
    points = IntegerParameter("Points", minimum=1, maximum=100, default=10)
    direction = ListParameter(
        "Direction", choices=["forward", "reverse", "both"], default="forward"
    )
    dark = BooleanParameter("Measure dark", default=True)
    start_voltage = FloatParameter("Start", units="V", minimum=-5, maximum=20, default=0)
    stop_voltage = FloatParameter("Stop", units="V", minimum=-5, maximum=20, default=8)

    @classmethod
    def check_consistency(cls, values):
        if values["stop_voltage"] <= values["start_voltage"]:
            raise ParameterError(
                "stop_voltage",
                values["stop_voltage"],
                f"must exceed start_voltage = {values['start_voltage']} V",
            )


BENCH = parse_bench(
    {
        "simulated": True,
        "roles": {"source_meter": {"driver": "keithley2400", "resource": "GPIB0::24::INSTR"}},
    }
)


@pytest.fixture(autouse=True)
def only_fake(monkeypatch):
    monkeypatch.setattr(runner, "procedure_classes", lambda: {"fake": FakeProcedure})


@pytest.mark.parametrize(
    ("text", "units", "expected"),
    [
        ("20", "mA/cm^2", 20.0),
        ("20mA/cm^2", "mA/cm^2", 20.0),
        ("0.2 A/cm^2", "mA/cm^2", 200.0),
        ("200 A/m^2", "mA/cm^2", 20.0),
        ("1.5 min", "s", 90.0),
        ("500 mV", "V", 0.5),
        ("1e-3", "A", 1e-3),
    ],
)
def test_parse_quantity_converts_units(text, units, expected):
    assert parse_quantity("p", text, units) == pytest.approx(expected)


@pytest.mark.parametrize(
    "text", ["20 V", "3 kg", "20 furlongs/fortnight", "abc", "", "__import__('os')"]
)
def test_parse_quantity_refuses_wrong_units(text):
    with pytest.raises(RunInputError, match="parameter 'p'"):
        parse_quantity("p", text, "mA/cm^2")


def _plan(tmp_path, **params):
    return plan_run("fake", bench_config=BENCH, parameters=params, output=tmp_path)


def test_plan_converts_and_checks(tmp_path: Path):
    plan = _plan(tmp_path, current_density="0.1 A/cm^2", points="5", direction="both", dark="no")
    assert plan.parameters == {
        "current_density": 100.0,
        "points": 5,
        "direction": "both",
        "dark": False,
    }
    assert plan.path.parent == tmp_path
    assert not plan.path.exists()


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({"current_density": "5000"}, "'current_density'"),
        ({"current_density": "nan"}, "'current_density'"),
        ({"current_density": "inf"}, "'current_density'"),
        ({"current_density": "1e400"}, "'current_density'"),
        ({"current_density": "-1"}, "0.1 to 1000 mA/cm^2"),
        ({"current_density": "20 V"}, "wrong unit"),
        ({"points": "2.5"}, "whole number"),
        ({"points": "0"}, "'points'"),
        ({"direction": "sideways"}, "one of forward, reverse, both"),
        ({"dark": "maybe"}, "true or false"),
        ({"voltage": "3"}, "unknown parameter 'voltage'"),
        ({"start_voltage": "5", "stop_voltage": "4"}, "'stop_voltage'"),
    ],
)
def test_bad_parameters_name_parameter_and_range(tmp_path: Path, params, words):
    with pytest.raises(RunInputError) as info:
        _plan(tmp_path, **params)
    assert words in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_unknown_procedure(tmp_path: Path):
    with pytest.raises(RunInputError, match="unknown procedure 'jvl'.*known: fake"):
        plan_run("jvl", bench_config=BENCH, output=tmp_path)


def test_missing_role(tmp_path: Path):
    bench = parse_bench(
        {"simulated": True, "roles": {"laser": {"driver": "obis", "resource": "ASRL1::INSTR"}}}
    )
    with pytest.raises(RunInputError, match="missing role.*source_meter"):
        plan_run("fake", bench_config=bench, output=tmp_path)


@pytest.mark.parametrize(
    "identifier",
    [
        "../../etc/passwd",
        "a/b",
        "a\\b",
        "..",
        ".hidden",
        "x" * 65,
        "tab\there",
        "new\nline",
        "nul\x00",
    ],
)
def test_identifiers_cannot_escape(tmp_path: Path, identifier):
    with pytest.raises(RunInputError, match="not allowed"):
        plan_run("fake", bench_config=BENCH, output=tmp_path, sample={"sample": identifier})


def test_good_identifier_lands_in_file_name(tmp_path: Path):
    plan = plan_run(
        "fake", bench_config=BENCH, output=tmp_path, sample={"sample": "B12-x", "pixel": "A1"}
    )
    assert "B12-x" in plan.path.name and "A1" in plan.path.name and "fake" in plan.path.name
    assert check_identifier("pixel", "A 1.2+") == "A 1.2+"


def test_existing_output_file_is_not_overwritten(tmp_path: Path):
    target = tmp_path / "run.h5"
    target.write_bytes(b"precious")
    with pytest.raises(RunInputError, match="exists already"):
        plan_run("fake", bench_config=BENCH, output=target)
    assert target.read_bytes() == b"precious"


def test_output_folder_must_exist_for_a_file(tmp_path: Path):
    with pytest.raises(RunInputError, match="does not exist"):
        plan_run("fake", bench_config=BENCH, output=tmp_path / "no" / "run.h5")


def test_durability_range(tmp_path: Path):
    with pytest.raises(RunInputError, match="durability"):
        plan_run("fake", bench_config=BENCH, output=tmp_path, durability_interval_s=0)
    assert math.isclose(
        plan_run(
            "fake", bench_config=BENCH, output=tmp_path, durability_interval_s=2
        ).durability_interval_s,
        2,
    )
