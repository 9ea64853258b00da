"""Lifetime from the command line: kill, recover, resume in the same file; lifetime-fit.

Every run is at the default (device-time) schedule, only the current set; a bench file
(the shipped simulated bench with a higher lifetime ageing acceleration) is the only
thing that shortens them.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import perovlab_daq.sim_configs as sim_configs
import pytest
import yaml

from perovlab_daq.cli import main
from perovlab_daq.storage import HDF5Results

#: qd-in-matrix T50 at 20 mA/cm^2 (28 device h) in ~5 s of wall time.
ACCELERATION = 20000.0


def _bench_file(tmp_path: Path, sample: dict | None = None) -> Path:
    """The shipped simulated bench with the lifetime acceleration above (and sim.sample)."""
    source = Path(sim_configs.__file__).parent / "bench_sim.yaml"
    data = yaml.safe_load(source.read_text())
    data["sim"]["ageing_acceleration_by_procedure"]["lifetime"] = ACCELERATION
    if sample:
        data["sim"]["sample"] = sample
    for key in ("responsivity_file", "spectrometer_sensitivity_file"):
        data["setup"][key] = str(source.parent / data["setup"][key])
    path = tmp_path / "bench_fast.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _lifetime(tmp_path: Path, capsys, density: str, pixel: str) -> dict:
    code = main(
        [
            "run",
            "lifetime",
            "--bench",
            str(_bench_file(tmp_path)),
            "--pixel",
            pixel,
            "-o",
            str(tmp_path),
            "--json",
            "--set",
            f"current_density={density}",
        ]
    )
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 0, summary
    return summary


def test_lifetime_fit_over_three_cli_runs(tmp_path: Path, capsys):
    # Pixel 1 each time (a fresh simulated bench per run): the law is that of one device;
    # the other pixels of the simulated substrate differ by the pixel-to-pixel spread.
    files = [
        _lifetime(tmp_path, capsys, d, p)["file"]
        for d, p in (("20mA/cm^2", "1"), ("40mA/cm^2", "1"), ("0.08A/cm^2", "1"))
    ]
    figure = tmp_path / "fit.png"
    code = main(["lifetime-fit", *files, "--at", "100", "--json", "-o", str(figure)])
    report = json.loads(capsys.readouterr().out)
    assert code == 0
    assert report["n"] == pytest.approx(1.95, abs=0.05)
    assert report["n_ci95"][0] < 1.95 < report["n_ci95"][1]
    assert report["dof"] == 1
    (at_100,) = [row for row in report["at"] if row["luminance_cd_m2"] == 100]
    assert at_100["t50_h"] == pytest.approx(2100, rel=0.1)
    assert at_100["t50_ci95_low_h"] < 2100 < at_100["t50_ci95_high_h"]
    # three runs (1 degree of freedom): the fit says its interval is wide
    assert any("degree of freedom" in w for w in report["warnings"]), report["warnings"]
    assert figure.stat().st_size > 10_000


def test_lifetime_fit_refuses_too_few_runs(tmp_path: Path, capsys):
    file = _lifetime(tmp_path, capsys, "40mA/cm^2", "1")["file"]
    assert main(["lifetime-fit", file]) == 2
    err = capsys.readouterr().err
    assert "3" in err and "Traceback" not in err


def test_killed_recovered_resumed_through_the_cli(tmp_path: Path, wait_for_rows):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    run = [sys.executable, "-m", "perovlab_daq.cli"]
    proc = subprocess.Popen(
        [
            *run,
            "run",
            "lifetime",
            "--bench",
            str(_bench_file(tmp_path)),
            "-o",
            str(tmp_path),
            "--set",
            "current_density=20",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        start_new_session=True,
    )
    # Killed once the file holds 20 rows (past the L0 burst), whatever the machine's speed.
    wait_for_rows(tmp_path, 20)
    # Supervisor and acquisition killed together: nobody closes the file (needs recover).
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    (path,) = list(tmp_path.glob("*.h5"))
    rows_before = None
    recovered = subprocess.run(
        [*run, "recover", str(path)], capture_output=True, text=True, env=env
    )
    assert recovered.returncode == 0, recovered.stderr
    loaded = HDF5Results.load(path)
    assert loaded.status == "interrupted"
    rows_before = len(loaded.data)
    assert rows_before > 10
    resumed = subprocess.run(
        [*run, "run", "lifetime", "--resume", str(path), "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads(resumed.stdout.strip().splitlines()[-1])
    assert Path(summary["file"]) == path
    final = HDF5Results.load(path)
    assert final.status == "finished"
    assert len(final.data) > rows_before
    assert any(e["kind"] == "gap" for e in final.events)
    assert final.analysis["t50_h"] == pytest.approx(28.0, rel=0.15)
    # The killed run registered as running; its resumed end updates the same row, or
    # (catalogue slower than hooks.END_WAIT_S, e.g. on a loaded machine) says it did not.
    from perovlab_daq.catalog.engine import open_catalog
    from perovlab_daq.catalog.query import RunFilter, find_runs

    (row,) = find_runs(open_catalog(f"sqlite:///{tmp_path / 'catalog.sqlite'}"), RunFilter())
    assert row.path == str(path)
    assert row.status == "finished" or "has not taken the end" in resumed.stderr, row.status


def test_resume_only_for_lifetime(tmp_path: Path, capsys):
    assert main(["run", "jlv", "--resume", str(tmp_path / "x.h5")]) == 2
    assert "--resume applies to 'run lifetime' only" in capsys.readouterr().err
