"""`perovlab-daq bench check`: identities on the simulated bench, exit 2 naming the bad entry."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml

from perovlab_daq.bench import Bench, BenchError, sim_bench
from perovlab_daq.cli import main


def _sim_bench_file(tmp_path: Path, **role_changes) -> Path:
    from importlib import resources

    data = yaml.safe_load(
        (resources.files("perovlab_daq.sim_configs") / "bench_sim.yaml").read_text()
    )
    base = resources.files("perovlab_daq.sim_configs")
    for key in ("responsivity_file", "spectrometer_sensitivity_file"):
        data["setup"][key] = str(Path(str(base)) / data["setup"][key])
    for role, change in role_changes.items():
        if change is None:
            data["roles"].pop(role)
        else:
            data["roles"][role].update(change)
    path = tmp_path / "bench.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_check_sim_lists_every_role_with_identity(capsys):
    assert main(["bench", "check", "--sim", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    roles = {r["role"]: r for r in out["roles"]}
    assert {"source_meter", "photodetector", "spectrometer", "laser", "power_meter"} <= set(roles)
    assert "MODEL 2400" in roles["source_meter"]["identity"]
    assert "6485" in roles["photodetector"]["identity"]
    assert "OBIS" in roles["laser"]["identity"]
    assert all(r["ok"] for r in roles.values())


def test_check_bench_file_passes(tmp_path: Path, capsys):
    assert main(["bench", "check", "--bench", str(_sim_bench_file(tmp_path))]) == 0
    assert "MODEL 2400" in capsys.readouterr().out


def test_misspelt_resource_is_caught(tmp_path: Path, capsys):
    path = _sim_bench_file(tmp_path, laser={"resource": "ASRL11::INSTR"})
    assert main(["bench", "check", "--bench", str(path)]) == 2
    err = capsys.readouterr().err
    assert "roles.laser.resource" in err and "ASRL11::INSTR" in err
    assert "Traceback" not in err


def test_unknown_driver_exits_2(tmp_path: Path, capsys):
    path = _sim_bench_file(tmp_path, laser={"driver": "obis9000"})
    assert main(["bench", "check", "--bench", str(path)]) == 2
    err = capsys.readouterr().err
    assert "roles.laser.driver" in err and "obis9000" in err


def test_missing_role_exits_2(tmp_path: Path, capsys):
    path = _sim_bench_file(tmp_path, photodetector=None)
    assert main(["bench", "check", "--bench", str(path)]) == 2
    assert "missing role(s) photodetector" in capsys.readouterr().err


def test_wrong_instrument_at_address_exits_2(tmp_path: Path, capsys):
    path = _sim_bench_file(tmp_path, source_meter={"expect_identity": "MODEL 2450"})
    assert main(["bench", "check", "--bench", str(path)]) == 2
    assert "roles.source_meter.expect_identity" in capsys.readouterr().err


def test_driver_talking_to_wrong_instrument(tmp_path: Path, capsys):
    # The laser driver at the power meter's address: the identity query gets no OBIS answer.
    path = _sim_bench_file(tmp_path, laser={"resource": "USB0::0x1313::0x8078::P0012345::INSTR"})
    assert main(["bench", "check", "--bench", str(path)]) == 2
    assert "roles.laser" in capsys.readouterr().err


def test_open_bench_safe_state_and_close():
    with Bench(sim_bench(), roles=["source_meter", "laser"]) as bench:
        smu = bench["source_meter"]
        laser = bench["laser"]
        smu.apply_voltage_source(compliance_current_a=0.1, nplc=1)
        smu.source_voltage = 3.0
        smu.output_enabled = True
        laser.emission_enabled = True
        assert smu.output_enabled and laser.emission_enabled
        report = bench.safe_state()
        assert report == {"source_meter": "ok", "laser": "ok"}
        assert not smu.output_enabled
        assert not laser.emission_enabled
        with pytest.raises(KeyError, match="not open"):
            bench["spectrometer"]


def test_snapshot_records_calibrations_with_sha256():
    with Bench(sim_bench(), roles=["source_meter", "photodetector"]) as bench:
        snap = bench.snapshot()
        assert snap["source_meter"]["driver"] == "keithley2400"
        assert snap["source_meter"]["settings"]
        files = snap["photodetector"]["calibration_files"]
        (entry,) = files.values()
        assert len(entry["sha256"]) == 64
        meta = bench.metadata()
        assert meta["simulated"] is True and meta["sim_preset"] == "qd-in-matrix"
        assert meta["ageing_acceleration"] == 1.0


def test_faults_from_bench_reach_the_driver(tmp_path: Path):
    from perovlab_daq.bench import load_bench

    path = _sim_bench_file(tmp_path, photodetector={"faults": {"timeout_rate": 1.0}})
    with Bench(load_bench(path), roles=["source_meter"]) as bench:
        assert "2400" in bench["source_meter"].identity
    with pytest.raises(BenchError, match="roles.photodetector"):
        Bench(load_bench(path), roles=["photodetector"]).open()


def test_reopen_keeps_driver_working():
    with Bench(sim_bench(), roles=["source_meter"]) as bench:
        smu = bench["source_meter"]
        before = smu.identity
        bench.reopen("source_meter")
        assert smu.identity == before


def test_unreachable_visa_resource_is_bench_error():
    config = sim_bench()
    bench = Bench(config, roles=["source_meter"])
    bench._build_simulator()
    from perovlab_daq.bench import RoleConfig

    with pytest.raises(BenchError, match="cannot open"):
        bench._open_role(RoleConfig("source_meter", "keithley2400", "GPIB0::3::INSTR"))


def test_presets_list_published_figures(capsys):
    assert main(["bench", "presets"]) == 0
    out = capsys.readouterr().out
    for name in (
        "qd-in-matrix",
        "qd-only",
        "matrix-only",
        "nc-hexane",
        "nc-methyl-acetate",
        "nc-acetone",
        "nc-butanol",
    ):
        assert f"{name}:" in out
    assert "2100 h" in out and "[P2]" in out and "[P1] Table 1" in out
    assert main(["bench", "presets", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    hexane = {f["quantity"]: f["value"] for f in data["nc-hexane"]["published"]}
    assert any(v == 653 for v in hexane.values())


def test_internal_error_is_one_line_exit_1(monkeypatch, capsys):
    import perovlab_daq.cli as cli

    def broken(args):
        raise RuntimeError("boom")

    monkeypatch.setattr(cli, "_cmd_bench_presets", broken)
    assert main(["bench", "presets"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("internal error: RuntimeError: boom") and "Traceback" not in err


def test_console_log_is_one_line_per_error_unless_vv():
    import logging

    from perovlab_daq.cli import _ConsoleFormatter

    try:
        raise RuntimeError("disk full")
    except RuntimeError:
        record = logging.getLogger("x").makeRecord(
            "x", logging.ERROR, __file__, 1, "run failed: %s", ("disk full",), sys.exc_info()
        )
    quiet = _ConsoleFormatter("%(levelname)s %(message)s", tracebacks=False).format(record)
    loud = _ConsoleFormatter("%(levelname)s %(message)s", tracebacks=True).format(record)
    assert quiet == "ERROR run failed: disk full"
    assert "Traceback" in loud and "RuntimeError: disk full" in loud
