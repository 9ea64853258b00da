"""The command line end to end on the simulated bench: every exit code, safe stops, bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from perovlab_daq.bench import Bench, sim_bench
from perovlab_daq.cli import main
from perovlab_daq.runner import execute_run, plan_run

FAST_JLV = ["--set", "stop_voltage=4", "--set", "fine_step=0.2", "--set", "coarse_step=0.5"]


def _status(path: Path) -> str:
    from perovlab_daq.storage import HDF5Results

    return HDF5Results.load(path).status


def test_run_finishes_exit_0_with_json_summary(tmp_path: Path, capsys):
    code = main(
        [
            "run",
            "jlv",
            "--sim",
            "--sample",
            "S1",
            "--pixel",
            "1",
            "-o",
            str(tmp_path),
            "--json",
            *FAST_JLV,
        ]
    )
    assert code == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    path = Path(summary["file"])
    assert path.exists() and path.parent == tmp_path
    assert summary["status"] == "finished" and _status(path) == "finished"
    assert Path(str(path) + ".log").exists()
    assert summary["figures"]["max_luminance_cd_m2"] > 100


class _Touched(Exception):
    pass


@pytest.fixture
def no_instrument(monkeypatch):
    """Fail the test if anything builds the simulated instruments."""
    import perovlab_daq.sim.visalib as visalib

    def refuse(*args, **kwargs):
        raise _Touched("an instrument was touched")

    monkeypatch.setattr(visalib.SimBenchLibrary, "__init__", refuse)


def _bad_bench(tmp_path: Path, text: str) -> str:
    path = tmp_path / "bad_bench.yaml"
    path.write_text(text)
    return str(path)


MALFORMED = [
    (["run", "jvl", "--sim"], "unknown procedure"),
    (["run", "jlv", "--sim", "--set", "stop_volts=5"], "unknown parameter 'stop_volts'"),
    (["run", "jlv", "--sim", "--set", "stop_voltage=500"], "'stop_voltage'"),
    (["run", "jlv", "--sim", "--set", "stop_voltage=-50"], "'stop_voltage'"),
    (["run", "jlv", "--sim", "--set", "stop_voltage=nan"], "'stop_voltage'"),
    (["run", "jlv", "--sim", "--set", "stop_voltage=inf"], "'stop_voltage'"),
    (["run", "jlv", "--sim", "--set", "stop_voltage=1e308"], "'stop_voltage'"),
    (["run", "jlv", "--sim", "--set", "stop_voltage=9e999"], "'stop_voltage'"),
    (["run", "jlv", "--sim", "--set", "stop_voltage=5 mA"], "wrong unit"),
    (["run", "jlv", "--sim", "--set", "stop_voltage=five"], "'stop_voltage'"),
    (["run", "jlv", "--sim", "--set", "stop_voltage=5 parsecs"], "'stop_voltage'"),
    (["run", "jlv", "--sim", "--set", "stop_voltage"], "NAME=VALUE"),
    (["run", "jlv", "--sim", "--set", "=3"], "NAME=VALUE"),
    (["run", "jlv", "--sim", "--set", "direction=sideways"], "'direction'"),
    (["run", "jlv", "--sim", "--set", "dark_readings=2.5"], "whole number"),
    (["run", "jlv", "--sim", "--set", "dark_readings=0"], "'dark_readings'"),
    (["run", "jlv", "--sim", "--set", "stop_at_compliance=perhaps"], "true or false"),
    (["run", "jlv", "--sim", "--set", "dwell=-1"], "'dwell'"),
    (["run", "jlv", "--sim", "--set", "compliance_current=20 V"], "wrong unit"),
    (["run", "jlv", "--sim", "--set", "el_biases=__import__('os').system('ls')"], "el_biases"),
    (["run", "jlv", "--sim", "--sample", "../../etc"], "sample"),
    (["run", "jlv", "--sim", "--sample", "a/b"], "sample"),
    (["run", "jlv", "--sim", "--pixel", ".."], "pixel"),
    (["run", "jlv", "--sim", "--operator", "x" * 100], "operator"),
    (["run", "jlv", "--sim", "--sample", ".hidden"], "sample"),
    (["run", "jlv", "--sim", "nc-acetnoe"], "unknown preset 'nc-acetnoe'"),
    (["run", "jlv", "--sim", "qd-inmatrix"], "unknown preset"),
    (["run", "jlv", "--bench", "/nonexistent/bench.yaml"], "cannot read bench file"),
    (["run", "jlv", "--sim", "--bench", "x.yaml"], "not allowed with argument"),
    (["run", "jlv", "--sim", "--durability", "0"], "durability"),
    (["run", "jlv", "--sim", "--durability", "abc"], "invalid float"),
    (["run", "jlv", "--sim", "--params", "/nonexistent.yaml"], "cannot read parameter file"),
    (["run"], "arguments are required"),
    (["frobnicate"], "invalid choice"),
    (["run", "jlv", "--sim", "--sample", "S1", "--sample2", "x"], "unrecognized arguments"),
    (["bench", "check", "--sim", "--require", "toaster"], "missing role"),
    (["analyze", "/nonexistent.h5"], "no such file"),
    (["report", "/nonexistent.h5", "-o", "x.png"], "no such file"),
    (["recover", "/nonexistent.h5"], "no such file"),
]


@pytest.mark.parametrize(("argv", "words"), MALFORMED, ids=[" ".join(a)[:60] for a, _ in MALFORMED])
def test_malformed_input_exit_2_one_line(
    tmp_path: Path, monkeypatch, capsys, no_instrument, argv, words
):
    monkeypatch.chdir(tmp_path)
    code = main(
        argv + (["-o", str(tmp_path / "out")] if argv[:1] == ["run"] and "-o" not in argv else [])
    )
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert words in err
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1, err
    out = tmp_path / "out"
    assert not out.exists() or not any(out.iterdir())


BAD_BENCH_FILES = [
    (
        "roles: {source_meter: {driver: k2400, resource: 'GPIB0::24::INSTR'}}",
        "roles.source_meter.driver",
    ),
    ("roles: [1, 2]", "roles"),
    ("simulated: true\nroles:\n  source_meter: {driver: keithley2400\n", "not a valid YAML"),
    ("!!python/object/apply:os.system ['touch pwned']", "bench"),
    (
        "simulated: true\n"
        "roles: {source_meter: {driver: keithley2400, resource: 'GPIB0::24::INSTR'}}\n"
        "setup: {device_area_cm2: -3}",
        "setup.device_area_cm2",
    ),
]


@pytest.mark.parametrize(("text", "words"), BAD_BENCH_FILES)
def test_bad_bench_files_exit_2(tmp_path: Path, capsys, no_instrument, text, words):
    code = main(["run", "jlv", "--bench", _bad_bench(tmp_path, text), "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and words in err and len(err.splitlines()) == 1
    assert not (tmp_path / "pwned").exists()
    assert not (tmp_path / "out").exists()


def test_instrument_that_never_comes_back_exit_1(tmp_path: Path, capsys):
    from importlib import resources

    import yaml

    data = yaml.safe_load(
        (resources.files("perovlab_daq.sim_configs") / "bench_sim.yaml").read_text()
    )
    base = Path(str(resources.files("perovlab_daq.sim_configs")))
    for key in ("responsivity_file", "spectrometer_sensitivity_file"):
        data["setup"][key] = str(base / data["setup"][key])
    data["roles"]["photodetector"]["faults"] = {"disconnect_after_s": 1.0, "disconnect_for_s": None}
    bench = tmp_path / "bench.yaml"
    bench.write_text(yaml.safe_dump(data))
    code = main(
        [
            "run",
            "jlv",
            "--bench",
            str(bench),
            "-o",
            str(tmp_path),
            "--json",
            "--set",
            "dwell=0.2",
            "--set",
            "stop_voltage=6",
        ]
    )
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 1
    assert summary["status"] == "failed" and summary["reason"]
    assert _status(Path(summary["file"])) == "failed"


def test_stop_request_aborts_with_outputs_off(tmp_path: Path):
    config = sim_bench()
    plan = plan_run(
        "jlv", bench_config=config, output=tmp_path, parameters={"dwell": 0.2, "stop_voltage": 8}
    )
    stop = threading.Event()
    with Bench(
        config, procedure="jlv", roles=["source_meter", "photodetector", "spectrometer"]
    ) as bench:
        timer = threading.Timer(1.5, stop.set)
        timer.start()
        outcome = execute_run(plan, stop_event=stop, bench=bench)
        timer.cancel()
        assert outcome.status == "aborted" and outcome.exit_code == 130
        assert bench["source_meter"].output_enabled is False
    assert _status(plan.path) == "aborted"


# SIGTERM on a laser run is in the default run (tests/reliability); here it is slow.
@pytest.mark.parametrize(
    "sig", [signal.SIGINT, pytest.param(signal.SIGTERM, marks=pytest.mark.slow)]
)
def test_signal_to_running_process_exit_130_file_aborted(tmp_path: Path, sig, wait_for_rows):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "perovlab_daq.cli",
            "run",
            "jlv",
            "--sim",
            "-o",
            str(tmp_path),
            "--json",
            "--set",
            "dwell=0.3",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    wait_for_rows(tmp_path, 2)  # mid-sweep, whatever the machine's speed
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["status"] == "aborted"
    assert summary["shutdown_commands"]["source_meter"] == "ok"
    assert summary["safe_state"]["source_meter output"] == "off"  # read back, not assumed
    assert summary["outputs_off"] is True and summary["file_readable"] is True
    path = Path(summary["file"])
    assert _status(path) == "aborted"
    from perovlab_daq.storage import HDF5Results

    messages = [event["message"] for event in HDF5Results.load(path).events]
    assert any("source_meter output off" in m for m in messages)
