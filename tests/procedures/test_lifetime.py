"""Lifetime procedure: schedule, parameters, headless runs on the simulated bench, safe stops."""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from typing import Any

import numpy as np
import pytest
from perovlab_daq.procedures.base import InstrumentFault, ParameterError
from perovlab_daq.procedures.lifetime import LifetimeProcedure, parse_time_list, sampling_interval_s

from perovlab_daq.bench import Bench, sim_bench


def sim_config(preset: str, acceleration: float, *, seed: int = 1, faults: dict | None = None):
    """Shipped simulated bench with another preset, lifetime acceleration and faults."""
    config = sim_bench(preset, seed=seed)
    sim = dataclasses.replace(
        config.sim, ageing_acceleration_by_procedure={"lifetime": float(acceleration)}
    )
    roles = dict(config.roles)
    if faults:
        roles["photodetector"] = dataclasses.replace(roles["photodetector"], faults=faults)
    return dataclasses.replace(config, sim=sim, roles=roles)


class Recorder:
    """Fake ``emit`` and ``should_stop`` of a worker."""

    def __init__(self, stop_after_rows: int | None = None) -> None:
        self.rows: list[dict[str, float]] = []
        self.events: list[dict[str, str]] = []
        self.frames: list[dict[str, Any]] = []
        self.stop_after_rows = stop_after_rows
        self.output_at_stop: bool | None = None
        self.bench: Bench | None = None

    def emit(self, topic: str, record: Any) -> None:
        if topic == "results":
            assert set(record) <= set(LifetimeProcedure.COLUMNS)
            self.rows.append(dict(record))
        elif topic == "event":
            self.events.append(dict(record))
        elif topic == "frame":
            self.frames.append(dict(record))

    def should_stop(self) -> bool:
        stop = self.stop_after_rows is not None and len(self.rows) >= self.stop_after_rows
        if stop and self.output_at_stop is None and self.bench is not None:
            self.output_at_stop = bool(self.bench["source_meter"].output_enabled)
        return stop

    def kinds(self) -> Counter:
        return Counter(e["kind"] for e in self.events)


def run_headless(
    config: Any, recorder: Recorder, roles: tuple[str, ...], **parameters: Any
) -> tuple[LifetimeProcedure, Bench, BaseException | None]:
    """startup/execute/shutdown as a worker does; return the procedure and the open bench."""
    bench = Bench(config, procedure="lifetime", roles=list(roles)).open()
    recorder.bench = bench
    procedure = LifetimeProcedure(**LifetimeProcedure.checked_parameters(parameters))
    procedure.bench = bench
    procedure.emit = recorder.emit
    procedure.should_stop = recorder.should_stop
    error = None
    try:
        procedure.startup()
        procedure.execute()
    except Exception as exc:  # noqa: BLE001 - returned to the test
        error = exc
    finally:
        procedure.shutdown()
    return procedure, bench, error


# --------------------------------------------------------------------------- unit
def test_schedule_is_log_spaced_then_linear() -> None:
    times, t = [], 0.0
    while t < 3600.0:
        times.append(t)
        t += sampling_interval_s(t, 1.0, 60.0, 20)
    steps = np.diff(times)
    assert steps[0] == pytest.approx(1.0)
    assert steps.max() == pytest.approx(60.0)
    assert np.all(np.diff(steps) >= -1e-12)  # never denser later
    # the first minute is resolved, an hour costs < 120 samples, a week ~ 60/h
    assert sum(1 for x in times if x < 60) >= 20
    assert len(times) < 120


def test_parse_time_list() -> None:
    assert parse_time_list("") == ()
    assert parse_time_list("3600, 600;1200s") == (600.0, 1200.0, 3600.0)
    with pytest.raises(ParameterError, match="jlv_times"):
        parse_time_list("ten")
    with pytest.raises(ParameterError, match="jlv_times"):
        parse_time_list("-5")


@pytest.mark.parametrize(
    ("values", "name"),
    [
        ({"first_interval": 10.0, "interval": 5.0}, "first_interval"),
        ({"interval": 100.0, "max_duration": 50.0}, "interval"),
        ({"jlv_times": "100, 5000", "max_duration": 1000.0}, "jlv_times"),
        (
            {"jlv_times": "10", "jlv_stop_voltage": 20.0, "compliance_voltage": 10.0},
            "jlv_stop_voltage",
        ),
    ],
)
def test_check_consistency_names_the_parameter(values: dict, name: str) -> None:
    with pytest.raises(ParameterError) as info:
        LifetimeProcedure.checked_parameters(values)
    assert info.value.name == name


def test_parameters_have_units_and_ranges() -> None:
    specs = LifetimeProcedure.parameter_specs()
    assert specs["current_density"]["units"] == "mA/cm^2"
    assert specs["stop_fraction"]["default"] == 0.5
    assert specs["drive_mode"]["choices"] == ["current_density", "current", "voltage"]
    with pytest.raises(ParameterError, match="stop_fraction"):
        LifetimeProcedure.checked_parameters({"stop_fraction": 1.5})


# --------------------------------------------------------------------------- headless
def test_headless_run_to_t50_on_the_simulated_bench() -> None:
    """80 mA/cm^2 on qd-in-matrix at the default schedule (device time): T50 2.6 device
    hours, ~4.7 s of wall time at 2000x (a stall of the loaded test machine ages the
    device acceleration x longer before the stop can act)."""
    recorder = Recorder()
    procedure, bench, error = run_headless(
        sim_config("qd-in-matrix", 2000),
        recorder,
        ("source_meter", "photodetector", "spectrometer"),
        current_density=80.0,
    )
    try:
        assert error is None
        truth_t50_h = bench.world.t50_device_s(80.0) / 3600
        assert bench["source_meter"].output_enabled is False
    finally:
        bench.close()
    rows = recorder.rows
    assert len(rows) > 50
    device_h = np.array([r["device_time"] for r in rows]) / 3600
    relative = np.array([r["relative_luminance"] for r in rows])
    assert np.all(np.diff(device_h) > 0)
    assert np.median(relative[:5]) == pytest.approx(1.0, abs=0.02)
    # Time zero is the switch-on; the first reading follows at once (nothing before it).
    switch_on = [e for e in recorder.events if e["kind"] == "switch_on"]
    assert len(switch_on) == 1 and "device_time_s=0.000000" in switch_on[0]["message"]
    first_spectrum = min(
        f["context"]["device_time"] for f in recorder.frames if f["stream"] == "spectra"
    )
    assert device_h[0] * 3600 < 30.0  # 15 ms of wall time at 2000x
    assert first_spectrum > device_h[4] * 3600  # after the first 5 readings
    # The live stop ends at 0.5 +- 2 %. (At 2000x a reading costs a few device s, so fewer
    # than the >= 200 of a default run at the shipped 1000x: test_defaults.py.)
    assert (device_h < truth_t50_h).sum() >= 100
    assert np.median(relative[-5:]) == pytest.approx(0.5, rel=0.02)
    crossing = device_h[np.flatnonzero(relative >= 0.5)[-1]]
    assert crossing == pytest.approx(truth_t50_h, rel=0.02)
    # luminance from the photodiode and a measured EL spectrum: ~3100 cd/m^2 at 80 mA/cm^2
    assert rows[0]["luminance"] == pytest.approx(3094, rel=0.05)
    kinds = recorder.kinds()
    assert kinds["l0"] == 1 and kinds["stop"] == 1 and kinds["dark"] >= 1
    assert kinds["device_state"] >= 2
    spectra = [f for f in recorder.frames if f["stream"] == "spectra"]
    assert len(spectra) >= 3
    assert {"device_time", "luminance", "voltage"} <= set(spectra[0]["context"])


def test_abort_stops_safely_with_the_output_off() -> None:
    recorder = Recorder(stop_after_rows=40)
    procedure, bench, error = run_headless(
        sim_config("qd-in-matrix", 100),
        recorder,
        ("source_meter", "photodetector"),
        dark_interval=20.0,  # device s: 0.2 s of wall time at 100x
        dark_settle=0.01,
    )
    try:
        assert error is None
        assert recorder.output_at_stop is True  # it was driving when the operator stopped
        assert bench["source_meter"].output_enabled is False
    finally:
        bench.close()
    assert any(e["kind"] == "stop" and "operator" in e["message"] for e in recorder.events)
    # the dark level is measured again during the run, with the stress paused meanwhile
    kinds = recorder.kinds()
    assert kinds["dark"] >= 2 and kinds["pause"] >= 1
    assert len({r["dark_current"] for r in recorder.rows}) >= 2


def test_instrument_that_keeps_failing_ends_the_run_with_the_output_off() -> None:
    """The photodetector drops off the bus for good: retries, re-opens, then a fault."""
    recorder = Recorder()
    procedure, bench, error = run_headless(
        sim_config("qd-in-matrix", 100, faults={"disconnect_after_s": 0.8}),
        recorder,
        ("source_meter", "photodetector"),
        max_consecutive_failures=3,
    )
    try:
        assert isinstance(error, InstrumentFault)
        assert "photodetector" in str(error)
        assert bench["source_meter"].output_enabled is False
    finally:
        bench.close()
    kinds = recorder.kinds()
    assert kinds["retry"] == 3
    assert kinds["fault"] == 1
    assert kinds["reopen"] >= 1


def test_voltage_drive_and_a_short_jlv_sweep_resume_the_stress() -> None:
    recorder = Recorder()
    procedure, bench, error = run_headless(
        sim_config("qd-in-matrix", 2000),
        recorder,
        ("source_meter", "photodetector"),
        drive_mode="voltage",
        voltage=3.2,
        jlv_times="600",  # device s: 0.3 s of wall time at 2000x
        jlv_stop_voltage=4.0,
        jlv_step=0.5,
        stop_fraction=0.9,
    )
    try:
        assert error is None, error
    finally:
        bench.close()
    sweep = [r for r in recorder.rows if r["jlv_sweep"] == 1]
    assert [round(r["voltage"], 1) for r in sweep][:3] == [0.0, 0.5, 1.0]
    stress_after = [
        r for r in recorder.rows if r["jlv_sweep"] == 0 and r["time"] > sweep[-1]["time"]
    ]
    assert stress_after, "the stress must resume after the sweep"
    assert all(abs(r["voltage"] - 3.2) < 0.01 for r in stress_after)
    assert recorder.kinds()["jlv"] == 2
    assert math.isfinite(stress_after[-1]["relative_luminance"])
