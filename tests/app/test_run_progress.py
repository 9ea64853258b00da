"""Progress lines: ETA and, for lifetime, L/L0 and T_x so far; pymeasure's pyzmq notice."""

from __future__ import annotations

import logging
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from perovlab_daq.bench import sim_bench
from perovlab_daq.cli._common import Progress, quiet_pymeasure_tcp_notice
from perovlab_daq.run_progress import EtaClock, LiveFigures, format_duration
from perovlab_daq.runner import execute_run, plan_run

ROOT = Path(__file__).resolve().parents[2]


def test_eta_is_linear_in_the_time_spent():
    now = [100.0]
    eta = EtaClock(clock=lambda: now[0])
    assert eta.text(0.0) == "ETA ?"
    now[0] = 160.0  # 60 s for 25 %: 180 s to go
    assert eta.remaining_s(25.0) == pytest.approx(180.0)
    assert eta.text(25.0) == "ETA 0:03:00"
    assert eta.remaining_s(100.0) == 0.0
    assert format_duration(2 * 86400 + 3661) == "2 d 1:01:01"
    assert format_duration(math.nan) == "?"


def test_lifetime_figures_follow_the_rows():
    live = LiveFigures("lifetime")
    assert "not yet" in live.text()
    live.add_row({"relative_luminance": math.nan, "device_time": 10.0})  # L0 burst
    assert "not yet" in live.text()
    live.add_row({"relative_luminance": 0.97, "device_time": 1800.0})
    assert live.text() == "L/L0 0.970 at 30 min"
    live.add_row({"relative_luminance": 0.94, "device_time": 3600.0})
    live.add_row({"relative_luminance": 0.2, "device_time": 4000.0, "jlv_sweep": 1})  # sweep
    live.add_row({"relative_luminance": 0.85, "device_time": 7200.0})
    assert live.text() == "L/L0 0.850 at 2 h, T95 1 h, T90 2 h"
    assert LiveFigures("jlv").text() == ""


def test_console_line_has_eta_and_live_figure(capsys):
    progress = Progress("lifetime -> x.h5")
    progress.interactive = False
    with progress:
        progress.update(0.0, "L/L0 not yet (L0 being measured)")
        progress.update(12.0, "L/L0 0.950 at 1 h, T95 1 h")
    err = capsys.readouterr().err
    assert "x.h5:  12.0 %, ETA " in err
    assert "L/L0 0.950 at 1 h, T95 1 h" in err


def test_runner_reports_l_over_l0_of_a_lifetime_run(tmp_path):
    plan = plan_run(
        "lifetime",
        bench_config=sim_bench(),
        parameters={
            "current_density": 200.0,
            "first_interval": 20.0,
            "interval": 100.0,
            "spectrum_interval": 5000.0,
            "max_duration": 4000.0,
        },
        output=tmp_path,
    )
    messages: list[tuple[float, str]] = []
    outcome = execute_run(plan, on_progress=lambda p, m: messages.append((p, m)), log_file=False)
    assert outcome.status == "finished"
    last = messages[-1][1]
    assert last.startswith("L/L0 0.")
    final = outcome.figures["final_relative_luminance"]
    assert float(last.split()[1]) == pytest.approx(final, abs=0.02)
    assert any("T95" in m for _, m in messages)


def test_pyzmq_notice_is_dropped_and_other_warnings_pass(caplog):
    quiet_pymeasure_tcp_notice()
    workers = logging.getLogger("pymeasure.experiment.workers")
    with caplog.at_level(logging.WARNING):
        workers.warning("ZMQ and cloudpickle are required for TCP communication")
        workers.warning("something else")
    assert [r.getMessage() for r in caplog.records] == ["something else"]


def test_no_pyzmq_notice_on_a_run_without_pyzmq(tmp_path):
    code = (
        "import sys; sys.modules['zmq'] = None\n"  # as on a lab PC without pyzmq
        "from perovlab_daq.cli import main\n"
        "sys.exit(main(['run', 'pl-spectrum', '--sim', '-o', sys.argv[1],"
        " '--set', 'repeats=1', '--set', 'laser_power=0.005']))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "ZMQ" not in done.stderr
    assert "ETA" in done.stderr  # the plain progress lines
