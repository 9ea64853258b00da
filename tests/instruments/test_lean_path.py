"""The per-point driver path: same messages and message log as pymeasure's, fewer calls."""

from __future__ import annotations

import logging
import math

import pytest
from perovlab_daq.instruments._common import PhotodetectorReading, SourceMeterReading

from perovlab_daq.bench import Bench, sim_bench


def test_lean_reads_on_a_visa_adapter_keep_pymeasures_message_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with Bench(sim_bench(), roles=["source_meter", "photodetector"]) as bench:
        smu, pd = bench["source_meter"], bench["photodetector"]
        assert type(smu.adapter).__name__ == "VISAAdapter"  # the direct path is taken
        smu.apply_current_source(compliance_voltage_v=12.0, nplc=1.0)
        smu.source_current = 1e-3
        smu.output_enabled = True
        with caplog.at_level(logging.DEBUG, logger=smu.adapter.log.name):
            reading = smu.read_all()
            photo = pd.read_current()
        smu.output_enabled = False
    assert isinstance(reading, SourceMeterReading) and isinstance(photo, PhotodetectorReading)
    assert reading.current_a == pytest.approx(1e-3, rel=0.01)
    assert math.isfinite(reading.voltage_v) and reading.voltage_v > 0
    assert math.isfinite(photo.current_a) and not photo.overflow
    messages = [record.getMessage() for record in caplog.records]
    assert "WRITE::READ?" in messages and "WRITE:READ?" in messages
    assert sum(message.startswith("READ:") for message in messages) == 2
