"""Lifetime from the command line: kill, recover, resume in the same file; lifetime-fit."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from perovlab_daq.cli import main
from perovlab_daq.storage import HDF5Results

FAST = [
    "--set",
    "first_interval=0.02",
    "--set",
    "interval=0.1",
    "--set",
    "spectrum_interval=0",
    "--set",
    "dark_settle=0.05",
]


def _lifetime(tmp_path: Path, capsys, density: str, pixel: str) -> dict:
    code = main(
        [
            "run",
            "lifetime",
            "--sim",
            "--pixel",
            pixel,
            "-o",
            str(tmp_path),
            "--json",
            "--set",
            f"current_density={density}",
            *FAST,
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
    assert report["n"] == pytest.approx(1.95, abs=0.15)
    (at_100,) = [row for row in report["at"] if row["luminance_cd_m2"] == 100]
    assert at_100["t50_h"] == pytest.approx(2100, rel=0.25)
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
            "--sim",
            "-o",
            str(tmp_path),
            "--set",
            "current_density=20",
            *FAST,
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


def test_resume_only_for_lifetime(tmp_path: Path, capsys):
    assert main(["run", "jlv", "--resume", str(tmp_path / "x.h5")]) == 2
    assert "--resume applies to 'run lifetime' only" in capsys.readouterr().err
