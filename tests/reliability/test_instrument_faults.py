"""Instrument faults on the simulated bench, for every procedure, through the real run path.

Each case runs a procedure with :func:`perovlab_daq.runner.execute_run` on a simulated bench
with one fault class injected, then checks the guarantees of ``docs/reliability.md``:

* transient faults (timeouts, garbled replies, an outage that ends) are retried, logged as
  ``retry``/``reopen`` events, and the run finishes with every row it should have;
* permanent faults (an instrument gone for good, a refused setting, the laser interlock
  opening) end the run ``failed`` with the reason;
* compliance and detector saturation are measurement conditions, recorded as events;
* in every case the source output and the laser emission end off, read back from the
  simulated devices themselves, and the file loads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from reliability_helpers import FAST_PARAMETERS, FaultyRun, run_faulty

from perovlab_daq.bench import Bench

ALL = list(FAST_PARAMETERS)
ELECTRICAL = ["jlv", "lifetime", "el-spectra"]
LASER = ["pl-spectrum", "pl-fluence", "pl-stability", "plqy"]
EVERY_ROLE = [
    "source_meter",
    "photodetector",
    "spectrometer",
    "laser",
    "power_meter",
    "filter_wheel",
    "sample_stage",
]
#: Rows a fault-free run of the fast parameters stores. Time-driven runs (lifetime,
#: pl-stability) sample on the wall clock, so how many samples fit depends on the machine's
#: speed: for them this is a floor that holds on any machine (lifetime: more than its
#: 5-sample L0 burst; pl-stability: more than the first spectrum), and "no data lost" is
#: checked exactly against the samples the procedure took (:func:`count_samples`).
CLEAN_ROWS = {
    "jlv": 9,
    "lifetime": 6,
    "el-spectra": 2,
    "pl-spectrum": 2,
    "pl-fluence": 3,
    # Time-driven in device time: every retried timeout costs wall time that the simulated
    # film ages through, so a loaded machine takes fewer spectra. "Nothing lost" is the
    # exact check (rows == spectra taken); the floor only proves the run got going.
    "pl-stability": 2,
    "plqy": 9,  # 3 configurations x 3 A-B-C cycles (the default repeats)
}
EXACT_ROWS = {"jlv", "el-spectra", "pl-spectrum", "pl-fluence", "plqy"}
#: The procedure method that takes one sample of a time-driven run, and the frame stream
#: whose every frame also used one call (lifetime reads the drive and photodiode once more
#: for each EL spectrum, into the spectrum's context, not into a row).
SAMPLE_METHOD = {
    "lifetime": ("perovlab_daq.procedures.lifetime", "LifetimeProcedure", "_read_point", "spectra"),
    "pl-stability": (
        "perovlab_daq.procedures.pl_stability",
        "PlStabilityProcedure",
        "measure",
        None,
    ),
}
#: The instrument each procedure reads all the time (the one an outage hurts).
BUSY_ROLE = {name: "photodetector" for name in ("jlv", "lifetime")} | {
    name: "spectrometer" for name in ("el-spectra", *LASER)
}
#: The instrument whose output is the hazard.
HAZARD = {name: ("source_meter", "output", "1") for name in ELECTRICAL} | {
    name: ("laser", "emission", "ON") for name in LASER
}


def assert_safe_and_readable(result: FaultyRun) -> None:
    """Source output off, laser emission off (from the devices), file loads with a final status."""
    states = result.states
    assert states["source_meter"] == "off", states
    assert states["laser"] == "off", states
    assert float(states["laser_output_w"]) == 0.0, states
    assert result.run.status in {"finished", "failed"}, result.run.status
    assert "safe_state" in result.kinds()
    _ = result.run.data  # the rows read back


def count_samples(name: str, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the samples a time-driven procedure takes (calls of its sampling method that
    returned); a one-element list, [0] for procedures with a fixed number of rows."""
    counter = [0]
    if name not in SAMPLE_METHOD:
        return counter
    import importlib

    module, cls_name, method, _stream = SAMPLE_METHOD[name]
    cls = getattr(importlib.import_module(module), cls_name)
    original = getattr(cls, method)

    def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
        value = original(self, *args, **kwargs)
        counter[0] += 1
        return value

    monkeypatch.setattr(cls, method, counted)
    return counter


def assert_all_rows(
    name: str, result: FaultyRun, samples: list[int], floor: int | None = None
) -> None:
    """Every row stored: the exact count, or for a time-driven run every sample it took
    (and at least ``floor`` rows, default :data:`CLEAN_ROWS`)."""
    rows = len(result.run.data)
    if name in EXACT_ROWS:
        assert rows == CLEAN_ROWS[name], f"{rows} rows stored, {CLEAN_ROWS[name]} expected"
    else:
        stream = SAMPLE_METHOD[name][3]
        taken = samples[0] - (len(result.run.frames(stream)) if stream else 0)
        assert rows == taken, f"{rows} rows stored, {taken} samples taken"
        floor = CLEAN_ROWS[name] if floor is None else floor
        assert rows >= floor, f"only {rows} rows stored"


#: The query that marks "mid-measurement" for each procedure's busy instrument.
BUSY_QUERY = {"photodetector": "READ?", "spectrometer": "SPEC:DATA?"}


def on_command(role: str, command: str, when: Any, then: Any) -> Any:
    """Return a ``prepare`` callback: the first time ``command`` is written to ``role`` while
    ``when(bench)`` holds, call ``then(bench)`` at once, inside that write.

    The fault lands exactly between a query and its reply, whatever the machine's speed (a
    watcher thread polling the command log missed short runs on a loaded machine).
    """

    def prepare(bench: Bench) -> None:
        from pyvisa import constants, rname

        library = bench.visa_library
        wanted = rname.to_canonical_name(bench.config.roles[role].resource)
        original = library.write
        fired: list[bool] = []

        def write(session: Any, data: bytes) -> Any:
            result = original(session, data)
            if not fired and data.decode("ascii", errors="replace").strip() == command:
                attrs = library.sessions[session].attrs
                if attrs[constants.ResourceAttribute.resource_name] == wanted and when(bench):
                    fired.append(True)
                    then(bench)
            return result

        library.write = write

    return prepare


def when_measuring(name: str, then: Any) -> Any:
    """Return a ``prepare`` callback: once the hazard is on AND the busy instrument has just
    been sent its reading query, call ``then(bench)`` (the fault lands in the middle of the
    measurement)."""
    role, prop, on_value = HAZARD[name]
    busy = BUSY_ROLE[name]

    def hazard_on(bench: Bench) -> bool:
        device = bench.visa_library.device(bench.config.roles[role].resource)
        return str(device._properties[prop].get_value()) == on_value

    return on_command(busy, BUSY_QUERY[busy], hazard_on, then)


def outage(role: str, seconds: float | None) -> Any:
    def start(bench: Bench) -> None:
        spec: dict[str, Any] = {"disconnect_after_s": 0.0}
        if seconds is not None:
            spec["disconnect_for_s"] = seconds
        bench.visa_library.inject(bench.config.roles[role].resource, spec)

    return start


# ----------------------------------------------------------------------- transient faults
@pytest.mark.fault_class("visa timeouts (5 % of replies lost)")
@pytest.mark.parametrize("name", ALL)
def test_timeouts_are_retried_without_losing_data(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    faults = {role: {"timeout_rate": 0.05, "seed": 11} for role in EVERY_ROLE}
    samples = count_samples(name, monkeypatch)
    result = run_faulty(name, tmp_path, faults)
    assert result.outcome.status == "finished", result.outcome.reason
    assert_all_rows(name, result, samples)
    injected = sum(c.get("timeout", 0) for c in result.injected.values())
    assert injected > 0
    assert "retry" in result.kinds()
    assert_safe_and_readable(result)


@pytest.mark.fault_class("garbled replies (8 % corrupted)")
@pytest.mark.parametrize("name", ALL)
def test_garbled_replies_are_retried_without_losing_data(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    faults = {role: {"garble_rate": 0.08, "seed": 5} for role in EVERY_ROLE}
    samples = count_samples(name, monkeypatch)
    result = run_faulty(name, tmp_path, faults)
    assert result.outcome.status == "finished", result.outcome.reason
    assert_all_rows(name, result, samples)
    assert sum(c.get("garble", 0) for c in result.injected.values()) > 0
    assert "retry" in result.kinds()
    assert_safe_and_readable(result)


@pytest.mark.fault_class("instrument gone for 0.8 s, then back")
@pytest.mark.parametrize("name", ALL)
def test_outage_that_ends_is_ridden_out(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    role = BUSY_ROLE[name]
    # lifetime: 3 s of stress, so that sampling goes on after the outage and its retries.
    parameters = {"max_duration": 3000.0} if name == "lifetime" else {}  # device s, x1000
    samples = count_samples(name, monkeypatch)
    result = run_faulty(
        name, tmp_path, prepare=when_measuring(name, outage(role, 0.8)), parameters=parameters
    )
    assert result.outcome.status == "finished", result.outcome.reason
    counts = result.injected.get(_resource(role), {})
    assert sum(counts.values()) > 0, "the outage hit nothing"
    assert {"retry", "reopen"} <= result.kinds()
    # Time-driven runs lose part of their time to the outage (pl-stability: most of its
    # 1.5 s), but no sample they took.
    assert_all_rows(name, result, samples, floor=1)
    assert_safe_and_readable(result)


def _resource(role: str) -> str:
    from pyvisa import rname

    from perovlab_daq.bench import sim_bench

    return rname.to_canonical_name(sim_bench().roles[role].resource)


# ----------------------------------------------------------------------- permanent faults
@pytest.mark.fault_class("instrument gone for good")
@pytest.mark.parametrize("name", ALL)
def test_instrument_that_never_comes_back_fails_the_run(name: str, tmp_path: Path) -> None:
    role = BUSY_ROLE[name]
    result = run_faulty(name, tmp_path, prepare=when_measuring(name, outage(role, None)))
    assert result.outcome.status == "failed"
    assert "InstrumentFault" in result.outcome.reason or "failed" in result.outcome.reason
    assert result.run.status_reason == result.outcome.reason
    assert "fault" in result.kinds()
    assert_safe_and_readable(result)


@pytest.mark.fault_class("instrument gone for good")
@pytest.mark.parametrize("name", ["lifetime", "pl-stability"])
def test_hazard_instrument_gone_is_reported_unreadable(name: str, tmp_path: Path) -> None:
    """The one case where the output cannot be switched off: the file says so, loudly."""
    role = HAZARD[name][0]
    result = run_faulty(name, tmp_path, prepare=when_measuring(name, outage(role, None)))
    assert result.outcome.status == "failed"
    safe = [e for e in result.events if e["kind"] == "safe_state"]
    assert safe and safe[-1]["level"] == "error"
    assert "unreadable" in safe[-1]["message"]
    other = "laser" if role == "source_meter" else "source_meter"
    assert result.states[other] == "off"


@pytest.mark.fault_class("error-queue entry after a setting")
@pytest.mark.parametrize("name", ALL)
def test_refused_setting_fails_the_run_with_the_instrument_error(name: str, tmp_path: Path) -> None:
    if name in ELECTRICAL:
        faults = {"source_meter": {"error_after_write": {":SOUR": '-222,"Data out of range"'}}}
    else:
        faults = {"spectrometer": {"error_after_write": {"SPEC:INT": '-222,"Data out of range"'}}}
    result = run_faulty(name, tmp_path, faults)
    assert result.outcome.status == "failed"
    assert "-222" in result.outcome.reason
    assert "instrument_error" in result.kinds()
    assert_safe_and_readable(result)


@pytest.mark.fault_class("laser interlock opening mid-run")
@pytest.mark.parametrize("name", LASER)
def test_interlock_opening_fails_the_run(name: str, tmp_path: Path) -> None:
    def emitting(bench: Bench) -> bool:
        laser = bench.visa_library.device(bench.config.roles["laser"].resource)
        return str(laser._properties["emission"].get_value()) == "ON"

    def open_interlock(bench: Bench) -> None:
        bench.world.set_interlock(False)

    # The interlock opens while a spectrum is being read, under emission.
    opens_mid_spectrum = on_command("spectrometer", "SPEC:DATA?", emitting, open_interlock)
    result = run_faulty(name, tmp_path, prepare=opens_mid_spectrum)
    assert result.outcome.status == "failed"
    assert "interlock" in result.outcome.reason
    assert "interlock" in result.kinds()
    assert_safe_and_readable(result)


# ----------------------------------------------------------------------- measurement limits
@pytest.mark.fault_class("compliance reached")
@pytest.mark.parametrize(
    ("name", "parameters", "kind"),
    [
        ("jlv", {"compliance_current": 2e-4}, "compliance"),
        ("lifetime", {"compliance_voltage": 2.0}, "compliance"),
        ("el-spectra", {"compliance_current": 1e-4}, "compliance"),
    ],
    ids=["jlv", "lifetime", "el-spectra"],
)
def test_compliance_is_recorded(
    name: str, parameters: dict[str, Any], kind: str, tmp_path: Path
) -> None:
    result = run_faulty(name, tmp_path, parameters=parameters)
    assert result.outcome.status in {"finished", "failed"}
    text = " ".join(e["message"] for e in result.events) + result.outcome.reason
    assert kind in text, sorted(result.kinds())
    assert_safe_and_readable(result)


@pytest.mark.fault_class("photodiode saturation")
@pytest.mark.parametrize(
    ("name", "parameters"),
    [("jlv", {"pd_range": 2e-9}), ("lifetime", {"pd_range": 2e-10})],
    ids=["jlv", "lifetime"],
)
def test_photodiode_overflow_is_recorded(
    name: str, parameters: dict[str, Any], tmp_path: Path
) -> None:
    result = run_faulty(name, tmp_path, parameters=parameters)
    assert result.outcome.status in {"finished", "failed"}
    text = " ".join(e["message"] for e in result.events) + result.outcome.reason
    assert "overflow" in text or "saturat" in text, result.kinds()
    assert_safe_and_readable(result)


SATURATING = {
    "jlv": {"el_integration": 3000.0},
    "lifetime": {"el_integration": 3000.0, "current_density": 100.0},
    "el-spectra": {"integration_time": 3.0},
    "pl-spectrum": {"integration_time": 3.0, "laser_power": 0.1, "power_mode": "power"},
    "pl-fluence": {"integration_time": 3.0, "steps": 2, "power_max": 0.1},
    # interval = 0 (back to back) also guards the run that never ended (fixed bug).
    "pl-stability": {"integration_time": 3.0, "duration": 1.0, "interval": 0.0},
    "plqy": {"integration_time": 3.0, "power_mode": "power", "laser_power": 0.1},
}


@pytest.mark.fault_class("spectrometer saturation")
@pytest.mark.parametrize("name", ALL)
def test_spectrometer_saturation_is_flagged(name: str, tmp_path: Path) -> None:
    result = run_faulty(name, tmp_path, parameters=SATURATING[name])
    assert result.outcome.status in {"finished", "failed"}
    text = " ".join(e["message"] for e in result.events) + result.outcome.reason
    assert "saturat" in text, sorted(result.kinds())
    assert_safe_and_readable(result)
