"""Unit tests of the shared spectrometer handling (procedures/_spectrum.py) on a fake detector."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from perovlab_daq.procedures._spectrum import (
    STREAM_DARK,
    STREAM_PROCESSED,
    STREAM_RAW,
    SensitivityCalibration,
    SpectrumAcquirer,
    SpectrumAcquisitionError,
    snap_integration_time,
)


class FakeSpectrometer:
    """Seabreeze-like detector: offset + dark rate + a Gaussian line while the light is on."""

    def __init__(self, peak_rate: float = 1e6, saturation: float = 200_000.0) -> None:
        self.grid = np.linspace(350.0, 950.0, 1044)
        self.light_on = False
        self.peak_rate = peak_rate
        self.saturation = saturation
        self.time_us = 100_000
        self.reads = 0
        self.reads_with_light = 0
        self.set_calls: list[int] = []
        self.rng = np.random.default_rng(1)

    def wavelengths(self) -> np.ndarray:
        return self.grid.copy()

    def intensities(
        self, correct_dark_counts: bool = False, correct_nonlinearity: bool = False
    ) -> np.ndarray:
        if correct_nonlinearity:
            from perovlab_daq.instruments.spectrometer import SpectrometerError

            raise SpectrometerError("no usable nonlinearity coefficients (empty or all zero)")
        self.reads += 1
        seconds = self.time_us * 1e-6
        counts = 1500.0 + 20.0 * seconds + self.rng.normal(0, 5.0, self.grid.size)
        if self.light_on:
            self.reads_with_light += 1
            line = np.exp(-0.5 * ((self.grid - 650.0) / 15.0) ** 2)
            counts = counts + self.peak_rate * seconds * line
        return np.minimum(counts, self.saturation)

    def integration_time_micros(self, micros: int) -> None:
        self.time_us = int(micros)
        self.set_calls.append(int(micros))

    @property
    def integration_time_micros_limits(self) -> tuple[int, int]:
        return 8000, 60_000_000

    @property
    def max_intensity(self) -> float:
        return self.saturation


def light_of(spectrometer: FakeSpectrometer):
    @contextlib.contextmanager
    def light() -> Iterator[None]:
        spectrometer.light_on = True
        try:
            yield
        finally:
            spectrometer.light_on = False

    return light


def test_snap_integration_time_uses_ladder_and_limits() -> None:
    assert snap_integration_time(0.1, 0.008, 10) == pytest.approx(0.1)
    assert snap_integration_time(0.099, 0.008, 10) == pytest.approx(0.068)
    assert snap_integration_time(0.001, 0.008, 10) == pytest.approx(0.008)
    assert snap_integration_time(100.0, 0.008, 10) == pytest.approx(10)
    assert snap_integration_time(0.5, 0.008, 10) == pytest.approx(0.47)


def test_auto_integration_keeps_peak_below_saturation_and_darks_are_cached() -> None:
    spec = FakeSpectrometer(peak_rate=1e6)
    events: list[tuple[str, str, str]] = []
    acq = SpectrumAcquirer(spec, light=light_of(spec), on_event=lambda *e: events.append(e))
    frame = acq.acquire(averages=2)
    assert not frame.saturated
    # Peak at 65 % of full scale snapped down to the ladder: between ~30 % and 65 %.
    assert 0.3 * spec.saturation < frame.peak_counts < 0.66 * spec.saturation
    assert frame.integration_time_s == pytest.approx(0.1)
    # The dark was taken with the light off: no line in it.
    assert frame.dark_counts.max() < 1600
    assert frame.signal_counts.max() == pytest.approx(1e6 * 0.1, rel=0.01)
    assert frame.corrected_units == "counts/s"
    reads_after_first = spec.reads
    acq.acquire(averages=2)
    # The second spectrum reused the dark (auto probe + 2 light frames only).
    assert spec.reads - reads_after_first == 3
    assert not events


def test_saturation_at_fixed_time_is_flagged_not_hidden() -> None:
    spec = FakeSpectrometer(peak_rate=1e7)
    events: list[tuple[str, str, str]] = []
    acq = SpectrumAcquirer(spec, light=light_of(spec), on_event=lambda *e: events.append(e))
    frame = acq.acquire(integration_time_s=1.0)
    assert frame.saturated
    assert frame.saturated_pixels > 0
    assert frame.context()["saturated"] == 1.0
    assert any(kind == "saturation" for _level, kind, _msg in events)
    auto = acq.acquire()
    assert not auto.saturated


def test_saturated_even_at_shortest_time_raises() -> None:
    spec = FakeSpectrometer(peak_rate=1e10)
    acq = SpectrumAcquirer(spec, light=light_of(spec))
    with pytest.raises(SpectrumAcquisitionError, match="shortest integration time"):
        acq.acquire()


def test_sensitivity_calibration_gives_spectral_power(tmp_path: Path) -> None:
    csv = tmp_path / "sens.csv"
    csv.write_text(
        "# flat 1e6 counts/s per W/nm from 400 to 900 nm\nwavelength_nm,sensitivity\n"
        "400,2e6\n900,2e6\n",
        encoding="utf-8",
    )
    calibration = SensitivityCalibration.from_csv(csv)
    spec = FakeSpectrometer(peak_rate=1e6)
    acq = SpectrumAcquirer(spec, sensitivity=calibration, light=light_of(spec))
    frame = acq.acquire(0.05)
    assert frame.calibrated and frame.corrected_units == "W/nm"
    assert frame.corrected_wavelength_nm.min() >= 400
    assert frame.corrected_wavelength_nm.max() <= 900
    assert frame.corrected.max() == pytest.approx(0.5, rel=0.02)
    assert frame.raw_counts.shape == frame.wavelength_nm.shape


def test_bad_sensitivity_file_is_refused(tmp_path: Path) -> None:
    csv = tmp_path / "bad.csv"
    csv.write_text("wavelength_nm,sensitivity\n400,1\n500,-1\n", encoding="utf-8")
    with pytest.raises(ValueError, match="> 0"):
        SensitivityCalibration.from_csv(csv)


def test_nonlinearity_fallback_warns_once() -> None:
    spec = FakeSpectrometer()
    events: list[tuple[str, str, str]] = []
    acq = SpectrumAcquirer(
        spec,
        light=light_of(spec),
        correct_nonlinearity=True,
        on_event=lambda *e: events.append(e),
    )
    acq.acquire(0.05)
    acq.acquire(0.05)
    assert [kind for _l, kind, _m in events] == ["calibration"]


def test_emit_writes_processed_raw_and_dark_once() -> None:
    spec = FakeSpectrometer()
    acq = SpectrumAcquirer(spec, light=light_of(spec))
    records: list[dict] = []

    from perovlab_daq.procedures.base import DaqProcedure

    class Proc(DaqProcedure):
        def emit(self, topic, record):
            assert topic == "frame"
            records.append(record)

    for _ in range(2):
        frame = acq.acquire(0.05)
        acq.emit(Proc(), frame, laser_power_w=1e-3)
    streams = [r["stream"] for r in records]
    assert streams == [STREAM_DARK, STREAM_PROCESSED, STREAM_RAW, STREAM_PROCESSED, STREAM_RAW]
    assert records[1]["context"]["laser_power_w"] == 1e-3
    assert records[3]["context"]["frame_index"] == 1.0
    assert records[1]["context"]["integration_time_s"] == pytest.approx(0.05)
    assert records[1]["intensity_units"] == "counts/s"
    assert records[0]["intensity_units"] == "counts"
