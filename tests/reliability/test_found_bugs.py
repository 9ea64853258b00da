"""Regression tests for the bugs the reliability work found (each named in docs/reliability.md)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from perovlab_daq.instruments._common import GarbledReplyError, is_transient_error
from perovlab_daq.instruments.pm100 import ThorlabsPM100
from reliability_helpers import run_faulty

from perovlab_daq.sim.visalib import SimBenchLibrary
from perovlab_daq.sim.world import World


@pytest.mark.fault_class("regressions of bugs found")
def test_pl_stability_back_to_back_spectra_end_at_duration(tmp_path: Path) -> None:
    """interval = 0 used to loop forever (the next spectrum was always due at t = 0)."""
    started = time.monotonic()
    result = run_faulty("pl-stability", tmp_path, parameters={"interval": 0.0, "duration": 1.0})
    assert result.outcome.status == "finished"
    assert time.monotonic() - started < 30
    assert len(result.run.data) >= 2


@pytest.mark.fault_class("regressions of bugs found")
def test_lifetime_ending_inside_the_l0_burst_keeps_its_samples(tmp_path: Path) -> None:
    """Samples of an unfinished L0 burst used to be dropped when the run ended."""
    result = run_faulty(
        "lifetime",
        tmp_path,
        # device s (x1000 on the simulated bench): 0.4 s and 0.9 s of wall time
        parameters={"first_interval": 400.0, "interval": 400.0, "max_duration": 900.0},
    )
    assert result.outcome.status == "finished"
    assert 1 <= len(result.run.data) < 5
    assert "l0" in {e["kind"] for e in result.events if e["level"] == "warning"}


@pytest.mark.fault_class("regressions of bugs found")
def test_garbled_number_is_a_transient_error_not_a_string() -> None:
    """pymeasure returned '9.99E&0%' as a string; the caller's float() failed outside any retry."""
    library = SimBenchLibrary(World("nc-hexane"), ["pm100d"])
    meter = ThorlabsPM100("USB0::0x1313::0x8078::P0012345::INSTR", visa_library=library)
    library.inject("USB0::0x1313::0x8078::P0012345::INSTR", {"garble_rate": 1.0, "seed": 1})
    with pytest.raises(Exception) as caught:
        for _ in range(20):  # a garble may hit only the exponent's sign: try a few replies
            float(meter.power_w)
    assert is_transient_error(caught.value)
    assert isinstance(caught.value, GarbledReplyError | ValueError | KeyError)
    meter.adapter.close()


@pytest.mark.fault_class("regressions of bugs found")
def test_spectrometer_and_laser_communication_errors_are_transient() -> None:
    """The spectrometer wrapped timeouts into a SpectrometerError nobody retried."""
    from perovlab_daq.instruments.fw102c import FW102CCommunicationError, FW102CError
    from perovlab_daq.instruments.obis import ObisCommunicationError, ObisError
    from perovlab_daq.instruments.spectrometer import (
        SpectrometerCommunicationError,
        SpectrometerError,
    )
    from perovlab_daq.procedures.base import ParameterError

    from perovlab_daq.storage import StorageError

    assert is_transient_error(SpectrometerCommunicationError("timeout"))
    assert not is_transient_error(SpectrometerError("integration time out of range"))
    assert is_transient_error(ObisCommunicationError("O#", "SOUR:AM:STAT ON"))
    assert not is_transient_error(ObisError("ERR-102", "SOUR:POW:LEV:IMM:AMPL 5"))
    assert is_transient_error(FW102CCommunicationError("echo lost"))
    assert not is_transient_error(FW102CError("Command error CMD_NOT_DEFINED"))
    assert not is_transient_error(StorageError("disk full"))
    assert not is_transient_error(ParameterError("x", 1, "no"))
    assert not is_transient_error(KeyboardInterrupt())
