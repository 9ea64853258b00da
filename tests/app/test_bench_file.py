"""Bench-file validation: every malformed entry is refused with the entry named."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from perovlab_daq.bench import BenchError, load_bench, parse_bench, sim_bench

GOOD = {
    "format": 1,
    "name": "test bench",
    "simulated": True,
    "sim": {"preset": "qd-only", "seed": 3},
    "roles": {
        "source_meter": {"driver": "keithley2400", "resource": "GPIB0::24::INSTR"},
        "photodetector": {"driver": "keithley6485", "resource": "GPIB0::14::INSTR"},
    },
    "setup": {"device_area_cm2": 0.09},
}


def _variant(**changes):
    data = yaml.safe_load(yaml.safe_dump(GOOD))
    for dotted, value in changes.items():
        node = data
        keys = dotted.split("__")
        for key in keys[:-1]:
            node = node[key]
        if value is _DELETE:
            del node[keys[-1]]
        else:
            node[keys[-1]] = value
    return data


_DELETE = object()


def test_good_bench_parses():
    config = parse_bench(GOOD)
    assert config.simulated
    assert config.sim.preset == "qd-only"
    assert config.sim.seed == 3
    assert set(config.roles) == {"source_meter", "photodetector"}
    assert config.setup["device_area_cm2"] == pytest.approx(0.09)


@pytest.mark.parametrize(
    ("changes", "entry", "words"),
    [
        (
            {"roles__source_meter__driver": "keithley9999"},
            "roles.source_meter.driver",
            "unknown driver",
        ),
        ({"roles__sourcemeter": {"driver": "keithley2400"}}, "roles.sourcemeter", "unknown role"),
        ({"roles": {}}, "roles", "no roles"),
        ({"setup__device_area_cm2": -1}, "setup.device_area_cm2", "outside"),
        ({"setup__device_area_cm2": float("nan")}, "setup.device_area_cm2", "outside"),
        ({"setup__device_area_cm2": "big"}, "setup.device_area_cm2", "expected a number"),
        ({"setup__pixel_pitch": 1}, "setup.pixel_pitch", "unknown entry"),
        ({"setup__responsivity_file": "nope.csv"}, "setup.responsivity_file", "does not exist"),
        ({"sim__preset": "qd-in-matrx"}, "sim.preset", "unknown preset"),
        ({"sim__seed": -4}, "sim.seed", "whole number"),
        ({"sim__ageing_acceleration": 0}, "sim.ageing_acceleration", "outside"),
        ({"format": 2}, "format", "unsupported"),
        ({"colour": "red"}, "colour", "unknown entry"),
        ({"simulated": "yes"}, "simulated", "true or false"),
        ({"roles__laser": "obis"}, "roles.laser", "expected a mapping"),
    ],
)
def test_bad_entries_are_named(changes, entry, words):
    with pytest.raises(BenchError) as info:
        parse_bench(_variant(**changes))
    message = str(info.value)
    assert entry in message
    assert words in message


def test_faults_only_on_simulated_bench():
    data = _variant(simulated=False, sim=_DELETE)
    data["roles"]["source_meter"]["faults"] = {"timeout_rate": 0.1}
    with pytest.raises(BenchError, match="roles.source_meter.faults"):
        parse_bench(data)


def test_sim_section_needs_simulated_true():
    with pytest.raises(BenchError, match="'sim' section needs"):
        parse_bench(_variant(simulated=False))


def test_bad_yaml_reports_line(tmp_path: Path):
    path = tmp_path / "bench.yaml"
    path.write_text("roles:\n  source_meter: {driver: keithley2400\n  x: [\n")
    with pytest.raises(BenchError, match=r"not a valid YAML bench file at line \d+"):
        load_bench(path)


def test_yaml_is_safe_loaded(tmp_path: Path):
    path = tmp_path / "bench.yaml"
    path.write_text("!!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(BenchError):
        load_bench(path)


def test_missing_file(tmp_path: Path):
    with pytest.raises(BenchError, match="cannot read bench file"):
        load_bench(tmp_path / "none.yaml")


def test_relative_calibration_files_resolve_against_bench_folder(tmp_path: Path):
    (tmp_path / "cal").mkdir()
    (tmp_path / "cal" / "r.csv").write_text(
        "wavelength_nm,responsivity_a_per_w\n400,0.2\n800,0.5\n"
    )
    data = _variant(setup__responsivity_file="cal/r.csv")
    path = tmp_path / "bench.yaml"
    path.write_text(yaml.safe_dump(data))
    config = load_bench(path)
    assert Path(config.setup["responsivity_file"]) == (tmp_path / "cal" / "r.csv").resolve()


def test_shipped_sim_bench_and_preset_override():
    config = sim_bench()
    assert config.simulated and config.sim.preset == "qd-in-matrix"
    for key in ("responsivity_file", "spectrometer_sensitivity_file"):
        assert Path(config.setup[key]).is_file()
    other = sim_bench("nc-acetone", seed=9)
    assert other.sim.preset == "nc-acetone" and other.sim.seed == 9
    with pytest.raises(BenchError, match="unknown preset"):
        sim_bench("nc-acetnoe")


def test_acceleration_per_procedure():
    config = sim_bench()
    assert config.sim.acceleration_for("jlv") == 1.0
    assert config.sim.acceleration_for("lifetime") > 100


def test_require_roles_names_missing():
    config = parse_bench(GOOD)
    with pytest.raises(BenchError, match="missing role.*laser"):
        config.require_roles(["source_meter", "laser"])


def test_acceleration_per_preset():
    assert sim_bench("qd-only").sim.acceleration_for("lifetime") < sim_bench().sim.acceleration_for(
        "lifetime"
    )
    data = _variant(
        sim={
            "preset": "nc-acetone",
            "ageing_acceleration_by_procedure": {
                "lifetime": {"default": 100, "nc-acetone": 7},
                "pl-stability": 3,
            },
        }
    )
    config = parse_bench(data)
    assert config.sim.acceleration_for("lifetime") == 7
    assert config.sim.acceleration_for("pl-stability") == 3
    assert config.sim.acceleration_for("jlv") == 1.0
    bad = _variant(sim={"ageing_acceleration_by_procedure": {"lifetime": {"qd-onyl": 5}}})
    with pytest.raises(BenchError, match="lifetime.qd-onyl.*unknown preset"):
        parse_bench(bad)


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("wavelength_nm,responsivity\n400,0.2\n", "at least two"),
        ("wavelength_nm,responsivity\n400,0.2\nfour hundred,0.3\n", "line 3"),
        ("wavelength_nm,responsivity\n400,0.2\n400,0.3\n", "repeat"),
        ("wavelength_nm,responsivity\n400,nan\n500,0.3\n", "finite"),
    ],
)
def test_malformed_calibration_file_is_refused_naming_the_entry(tmp_path: Path, content, words):
    (tmp_path / "r.csv").write_text(content)
    with pytest.raises(BenchError) as info:
        parse_bench(_variant(setup__responsivity_file="r.csv"), base=tmp_path)
    assert "setup.responsivity_file" in str(info.value) and words in str(info.value)


def test_sensitivity_must_be_positive(tmp_path: Path):
    (tmp_path / "s.csv").write_text("wavelength_nm,sensitivity\n400,1e9\n500,0\n")
    with pytest.raises(BenchError, match="setup.spectrometer_sensitivity_file.*> 0"):
        parse_bench(_variant(setup__spectrometer_sensitivity_file="s.csv"), base=tmp_path)
