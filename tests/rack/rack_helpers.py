"""Helpers of the rack tests: a simulated rack bench file written next to the test's files."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import yaml


def write_rack_bench(
    folder: Path,
    *,
    acceleration: float,
    faults: dict[str, dict[str, Any]] | None = None,
    alerts: dict[str, Any] | None = None,
    channels: int | None = None,
) -> Path:
    """Write the shipped simulated bench with a lifetime acceleration, channel faults, alerts.

    Only the simulated bench's ageing acceleration is changed to shorten the runs (the
    procedures' schedules stay at their defaults, in device time).
    """
    ref = resources.files("perovlab_daq.sim_configs") / "bench_sim.yaml"
    data = yaml.safe_load(ref.read_text(encoding="utf-8"))
    with resources.as_file(ref) as shipped:
        base = Path(shipped).parent
        for key in ("responsivity_file", "spectrometer_sensitivity_file"):
            data["setup"][key] = str((base / data["setup"][key]).resolve())
    data["sim"]["ageing_acceleration_by_procedure"]["lifetime"] = {"default": acceleration}
    if channels is not None:
        data["channels"] = {
            k: {
                "source_meter": {"driver": "keithley2400", "resource": f"GPIB1::{k}::INSTR"},
                "photodetector": {"driver": "keithley6485", "resource": f"GPIB2::{k}::INSTR"},
                "thermometer": {"driver": "keithley2000", "resource": f"GPIB3::{k}::INSTR"},
            }
            for k in range(1, channels + 1)
        }
    for channel, roles in (faults or {}).items():
        for role, spec in roles.items():
            data["channels"][int(channel)][role]["faults"] = spec
    if alerts is not None:
        data["alerts"] = alerts
    path = folder / "rack_bench.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def write_recipe(folder: Path, text: str) -> Path:
    """Write a recipe file and return its path."""
    path = folder / "recipe.yaml"
    path.write_text(text, encoding="utf-8")
    return path
