"""Issue 15's Done-when: the acceleration law from three DEFAULT lifetime runs.

Three runs at current densities drawn (fixed seed) from 10-100 mA/cm^2, only the current
set, then ``lifetime-fit --at 100``: n within 1.95 +- 0.05, T50(100 cd/m^2) within 10 %
of 2100 h ([P2]), and the reported 95 % intervals contain both; the same for a device of
other n and T50 given by a bench file's ``sim.sample``. The only thing shortened is the
simulated bench's ageing acceleration (so each T50 lasts ~15 s of wall time); every
schedule of the procedure is at its default, in device time.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from perovlab_daq.bench import sim_bench
from perovlab_daq.figures.lifetime_fit import lifetime_fit_report
from perovlab_daq.runner import execute_run, plan_run
from perovlab_daq.sim.presets import get_preset, with_ageing
from perovlab_daq.sim.world import World

pytestmark = pytest.mark.slow

#: Wall seconds the T50 of each run lasts (through the ageing acceleration only).
T50_WALL_S = 15.0


def default_run(tmp_path: Path, density: float, sample: dict[str, Any]) -> Path:
    """One lifetime run with only the current density set; returns its file."""
    config = sim_bench("qd-in-matrix")
    world = World(with_ageing(get_preset("qd-in-matrix"), sample))
    acceleration = world.t50_device_s(density) / T50_WALL_S
    sim = dataclasses.replace(
        config.sim, sample=sample, ageing_acceleration_by_procedure={"lifetime": acceleration}
    )
    plan = plan_run(
        "lifetime",
        bench_config=dataclasses.replace(config, sim=sim),
        parameters={"current_density": density},
        output=tmp_path,
        sample={"sample": f"J{density:.3g}", "device": "D1", "pixel": "1", "operator": "ci"},
    )
    outcome = execute_run(plan, log_file=False)
    assert outcome.status == "finished", outcome.reason
    # The live stop ends within 2 % of the target ratio.
    assert outcome.figures["final_relative_luminance"] == pytest.approx(0.5, rel=0.02)
    return outcome.path


@pytest.mark.timeout(600)
@pytest.mark.parametrize(
    ("sample", "n_true", "t50_true_h"),
    [
        ({}, 1.95, 2100.0),
        (
            {
                "acceleration_exponent": 1.7,
                "t50_reference_s": 600.0 * 3600,
                "reference_luminance_cd_m2": 100.0,
                "stretch_exponent": 0.55,
            },
            1.7,
            600.0,
        ),
    ],
    ids=["qd-in-matrix", "custom-sample"],
)
def test_three_default_runs_recover_the_acceleration_law(
    tmp_path: Path, sample: dict[str, Any], n_true: float, t50_true_h: float
) -> None:
    densities = np.sort(np.random.default_rng(15).uniform(10.0, 100.0, 3))
    paths = [default_run(tmp_path, float(j), sample) for j in densities]
    report = lifetime_fit_report(paths, at=[100.0])
    at_100 = report["at"][0]
    print(
        f"J {np.round(densities, 1)} mA/cm^2: n = {report['n']:.4f} "
        f"[{report['n_ci95'][0]:.4f}, {report['n_ci95'][1]:.4f}], T50(100) = "
        f"{at_100['t50_h']:.1f} h [{at_100['t50_ci95_low_h']:.1f}, "
        f"{at_100['t50_ci95_high_h']:.1f}]"
    )
    assert report["n"] == pytest.approx(n_true, abs=0.05)
    assert at_100["t50_h"] == pytest.approx(t50_true_h, rel=0.10)
    assert report["n_ci95"][0] <= n_true <= report["n_ci95"][1]
    assert at_100["t50_ci95_low_h"] <= t50_true_h <= at_100["t50_ci95_high_h"]
    assert report["dof"] == 1
