"""Helpers of the reliability suite: runs on a simulated bench with faults, and what they left.

:func:`run_faulty` runs one procedure through :func:`perovlab_daq.runner.execute_run` (the
path ``perovlab-daq run`` takes) on the simulated bench with per-role fault options, keeps
the bench open afterwards and reads the source output and laser emission straight from the
simulated devices (no driver, so no injected fault can hide the answer).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from perovlab_daq.bench import Bench, BenchConfig, sim_bench
from perovlab_daq.runner import RunOutcome, execute_run, plan_run
from perovlab_daq.storage import HDF5Results, StorageError

log = logging.getLogger(__name__)

#: Short parameters of every procedure (about a second each on the simulated bench).
FAST_PARAMETERS: dict[str, dict[str, Any]] = {
    "jlv": {
        "start_voltage": 0.0,
        "stop_voltage": 4.0,
        "coarse_step": 0.5,
        "fine_step": 0.5,
        "changeover_voltage": 2.0,
        "dwell": 0.02,
        "dark_readings": 2,
        "el_integration": 50.0,
    },
    # Device time (x1000 on the simulated bench): 1.5 s of wall time, a sample every 0.05 s.
    "lifetime": {
        "max_duration": 1500.0,
        "first_interval": 50.0,
        "interval": 50.0,
        "dark_readings": 2,
        "dark_settle": 0.0,
        "checkpoint_interval": 1.0,
        "el_integration": 50.0,
    },
    "el-spectra": {"levels": "3, 4", "settle_time": 0.0, "integration_time": 0.05},
    "pl-spectrum": {"repeats": 2, "integration_time": 0.05},
    "pl-fluence": {
        "steps": 3,
        "power_min": 1e-3,
        "power_max": 0.02,
        "integration_time": 0.05,
    },
    # Device time (x60 on the simulated bench): 1.5 s of wall time, a spectrum every 0.3 s.
    "pl-stability": {"duration": 90.0, "interval": 18.0, "integration_time": 0.05},
    "plqy": {"integration_time": 0.2},
}

#: Preset each procedure is run on (a film for PL, an LED for the electrical ones).
PRESETS = {
    name: ("nc-hexane" if name.startswith("pl") else "qd-in-matrix") for name in FAST_PARAMETERS
}


@dataclass
class FaultyRun:
    """What a run on a faulty bench left: outcome, file, events and instrument states."""

    outcome: RunOutcome
    run: HDF5Results  # None only when the test moved the file away
    states: dict[str, str]
    injected: dict[str, dict[str, int]]
    commands: int
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def events(self) -> list[dict[str, Any]]:
        return self.run.events

    def kinds(self) -> set[str]:
        return {e["kind"] for e in self.events}


def bench_with_faults(
    preset: str, faults: Mapping[str, Mapping[str, Any]] | None = None, seed: int = 3
) -> BenchConfig:
    """Return the shipped simulated bench with ``faults`` (role -> fault options)."""
    base = sim_bench(preset, seed=seed)
    roles = dict(base.roles)
    for role, options in (faults or {}).items():
        roles[role] = dataclasses.replace(roles[role], faults=dict(options))
    return dataclasses.replace(base, roles=roles)


def device_states(bench: Bench) -> dict[str, str]:
    """Read source output and laser emission from the simulated devices themselves."""
    states: dict[str, str] = {}
    library = bench.visa_library
    for role, prop, is_on in (
        ("source_meter", "output", lambda v: int(v) != 0),
        ("laser", "emission", lambda v: str(v) == "ON"),
    ):
        if role in bench.config.roles:
            device = library.device(bench.config.roles[role].resource)
            states[role] = "on" if is_on(device._properties[prop].get_value()) else "off"
    if bench.world is not None:
        states["laser_output_w"] = f"{bench.world.laser_output_w():g}"
        states["led_current_a"] = f"{abs(bench.world.smu_reading().current_a):.3g}"
    return states


def run_faulty(
    name: str,
    tmp_path: Path,
    faults: Mapping[str, Mapping[str, Any]] | None = None,
    *,
    parameters: Mapping[str, Any] | None = None,
    preset: str | None = None,
    during: Callable[[Bench], None] | None = None,
    prepare: Callable[[Bench], None] | None = None,
    roles: list[str] | None = None,
    log_file: bool = False,
) -> FaultyRun:
    """Run procedure ``name`` with fast parameters on a bench with ``faults``.

    Parameters
    ----------
    during
        Called in a thread with the open bench while the run goes (e.g. to open the
        laser interlock after a delay).
    prepare
        Called with the open bench before the run starts, in this thread (e.g. to hook a
        fault onto a chosen instrument command, so that it lands at that moment whatever
        the machine's speed).
    roles
        Roles to open (default: every role of the simulated bench, so the laser is
        always there to be checked).
    """
    config = bench_with_faults(preset or PRESETS[name], faults)
    values = {**FAST_PARAMETERS[name], **dict(parameters or {})}
    plan = plan_run(name, bench_config=config, parameters=values, output=tmp_path)
    with Bench(config, procedure=name, roles=roles) as bench:
        if prepare is not None:
            prepare(bench)
        thread = None
        if during is not None:
            thread = threading.Thread(target=during, args=(bench,), daemon=True)
            thread.start()
        outcome = execute_run(plan, bench=bench, log_file=log_file)
        if thread is not None:
            thread.join(10)
        states = device_states(bench)
        injected = bench.visa_library.fault_counts()
        commands = bench.visa_library.command_count
    try:
        run = HDF5Results.load(outcome.path)
    except StorageError:  # the test took the file away (folder pulled mid-run)
        run = None
    return FaultyRun(outcome, run, states, injected, commands)
