"""The simulated bench's physics, seen only through the drivers (issue 2's done-when).

Every measurement here goes driver -> PyVISA -> simulated VISA library -> world, exactly
as a procedure's would; the world's noise-free truth is used only for the expected values.
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
import pytest
from perovlab_daq.instruments import load_driver
from pyvisa.constants import VI_ERROR_TMO
from pyvisa.errors import VisaIOError

from perovlab_daq.analysis import luminance_from_photocurrent, peak_metrics
from perovlab_daq.bench import Bench, sim_bench
from perovlab_daq.sim.optics import load_calibration_csv


def _setup(bench: Bench) -> dict:
    return dict(bench.config.setup)


def _responsivity_on(bench: Bench, wavelength_nm: np.ndarray) -> np.ndarray:
    grid, values = load_calibration_csv(_setup(bench)["responsivity_file"])
    return np.interp(wavelength_nm, grid, values)


def _spectral_power(bench: Bench, integration_s: float, light: callable) -> tuple:
    """Dark-subtracted, sensitivity-corrected spectrum through the spectrometer driver."""
    spectrometer = bench["spectrometer"]
    spectrometer.integration_time_micros(int(integration_s * 1e6))
    wavelength = np.asarray(spectrometer.wavelengths())
    light(False)
    dark = np.asarray(spectrometer.intensities(), dtype=float)
    light(True)
    counts = np.asarray(spectrometer.intensities(), dtype=float)
    light(False)
    grid, sensitivity = load_calibration_csv(_setup(bench)["spectrometer_sensitivity_file"])
    power = (counts - dark) / integration_s / np.interp(wavelength, grid, sensitivity)
    assert counts.max() < spectrometer.max_intensity, "the test spectrum must not saturate"
    return wavelength, power


def _sweep(smu, pd, voltages, compliance_a):
    pd.configure(nplc=1, current_range_a=None)
    smu.apply_voltage_source(compliance_current_a=compliance_a, nplc=1)
    smu.output_enabled = True
    rows = []
    for volts in voltages:
        smu.source_voltage = float(volts)
        reading = smu.read_all()
        rows.append(
            (
                reading.voltage_v,
                reading.current_a,
                reading.in_compliance,
                pd.read_current().current_a,
            )
        )
    smu.output_enabled = False
    return np.array(rows, dtype=float)


def test_current_rises_exponentially_then_clamps_at_compliance_with_status_bit():
    with Bench(sim_bench("qd-in-matrix"), roles=["source_meter", "photodetector"]) as bench:
        rows = _sweep(bench["source_meter"], bench["photodetector"], np.arange(0, 8.01, 0.1), 0.005)
    voltage, current, compliance = rows[:, 0], rows[:, 1], rows[:, 2].astype(bool)
    # Past turn-on, ln(I) grows linearly with V (diode): a decade in a few tenths of a volt.
    window = (voltage > 2.05) & (voltage < 2.45)
    slope_decades_per_v = np.polyfit(voltage[window], np.log10(current[window]), 1)[0]
    assert slope_decades_per_v > 2.0
    # Clamped at the 5 mA compliance, status bit 3 set, voltage below the programmed level.
    assert compliance[-1] and not compliance[:20].any()
    assert current[compliance] == pytest.approx(0.005, rel=0.01)
    assert (voltage[compliance] < np.arange(0, 8.01, 0.1)[compliance]).all()


def test_photocurrent_follows_current_times_eqe():
    with Bench(sim_bench("qd-in-matrix"), roles=["source_meter", "photodetector"]) as bench:
        smu, pd, world = bench["source_meter"], bench["photodetector"], bench.world
        pd.configure(nplc=1, current_range_a=None)
        smu.apply_voltage_source(compliance_current_a=0.1, nplc=1)
        smu.output_enabled = True
        ratios = []
        for volts in (2.6, 3.0, 4.0, 5.0, 6.0):
            smu.source_voltage = volts
            reading = smu.read_all()
            truth = world.led_truth()
            ratios.append(pd.read_current().current_a / (reading.current_a * truth.eqe))
        smu.output_enabled = False
    # The photocurrent per (electron x EQE) is the fixed optics of the bench, so it is
    # the same at every drive while EQE itself changes with current density.
    assert np.ptp(ratios) / np.mean(ratios) < 0.03


def test_luminance_from_photodiode_peaks_near_published_4700():
    roles = ["source_meter", "photodetector", "spectrometer"]
    with Bench(sim_bench("qd-in-matrix"), roles=roles) as bench:
        smu, pd = bench["source_meter"], bench["photodetector"]
        pd.configure(nplc=1, current_range_a=None)
        smu.output_enabled = False
        dark = np.mean([pd.read_current().current_a for _ in range(5)])
        rows = _sweep(smu, pd, np.arange(2.0, 8.01, 0.1), 0.1)
        brightest = float(rows[np.argmax(rows[:, 3]), 0])

        def light(on: bool) -> None:
            smu.source_voltage = brightest
            smu.output_enabled = on

        wavelength, spectrum = _spectral_power(bench, 0.05, light)
        setup = _setup(bench)
        luminance = luminance_from_photocurrent(
            rows[:, 3] - dark,
            wavelength,
            spectrum,
            _responsivity_on(bench, wavelength),
            setup["device_area_cm2"],
            setup["photodiode_radius_mm"],
            setup["photodiode_distance_mm"],
        )
    assert luminance.max() == pytest.approx(4700, rel=0.15)


def test_constant_current_photocurrent_halves_after_predicted_t50():
    config = sim_bench("qd-in-matrix")
    with Bench(config, procedure="lifetime", roles=["source_meter", "photodetector"]) as bench:
        smu, pd, world = bench["source_meter"], bench["photodetector"], bench.world
        pd.configure(nplc=1, current_range_a=None)
        acceleration = config.sim.acceleration_for("lifetime")
        density_ma_cm2 = 80.0
        expected_wall_s = world.t50_device_s(density_ma_cm2) / acceleration
        assert 0.5 < expected_wall_s < 10
        smu.apply_current_source(compliance_voltage_v=12, nplc=1)
        smu.source_current = density_ma_cm2 * 1e-3 * config.setup["device_area_cm2"]
        smu.output_enabled = True
        start = time.monotonic()
        first = pd.read_current().current_a
        times, values = [], []
        while time.monotonic() - start < 3 * expected_wall_s:
            values.append(pd.read_current().current_a)
            times.append(time.monotonic() - start)
            time.sleep(0.01)
        smu.output_enabled = False
    values = np.asarray(values)
    below = np.flatnonzero(values < 0.5 * first)
    assert below.size and values[-1] < values[0]
    crossing_s = times[below[0]]
    assert crossing_s == pytest.approx(expected_wall_s, rel=0.2)


def test_power_meter_follows_the_laser_setpoint():
    with Bench(sim_bench("nc-hexane"), roles=["laser", "power_meter"]) as bench:
        laser, meter = bench["laser"], bench["power_meter"]
        meter.wavelength_nm = laser.wavelength_nm
        readings = {}
        for setpoint in (0.002, 0.01, 0.05, 0.1):
            # As the manual says: CDRH delay, then wait for stable power.
            laser.start_emission(setpoint)
            readings[setpoint] = meter.power_w
        laser.stop_emission()
        dark = meter.power_w
    for setpoint, measured in readings.items():
        assert measured == pytest.approx(setpoint, rel=0.05)
    assert abs(dark) < 1e-6


@pytest.mark.parametrize(
    ("preset", "peak_nm", "fwhm_nm"),
    [
        ("nc-hexane", 653, 35),
        ("nc-methyl-acetate", 638, 35),
        ("nc-acetone", 599, 32),
        ("nc-butanol", 533, 34),
    ],
)
def test_pl_spectrum_matches_table1_film(preset, peak_nm, fwhm_nm):
    with Bench(sim_bench(preset), roles=["laser", "spectrometer"]) as bench:
        laser = bench["laser"]
        laser.power_setpoint_w = 0.01

        def light(on: bool) -> None:
            # Emission on waits out the CDRH delay and the power rise (OBIS start-up).
            if on:
                laser.start_emission(0.01)
            else:
                laser.stop_emission()

        wavelength, spectrum = _spectral_power(bench, 0.02, light)
        laser_nm = laser.wavelength_nm
    window = wavelength > laser_nm + 30  # leave the laser line out
    metrics = peak_metrics(wavelength[window], spectrum[window])
    assert float(metrics.centre_nm[0]) == pytest.approx(peak_nm, abs=2)
    assert float(metrics.fwhm_nm[0]) == pytest.approx(fwhm_nm, abs=2)


def test_injected_timeout_raises_pyvisa_timeout_at_the_driver():
    config = sim_bench()
    roles = dict(config.roles)
    roles["photodetector"] = replace(roles["photodetector"], faults={"timeout_rate": 1.0})
    bench = Bench(replace(config, roles=roles), roles=["photodetector"])
    bench._build_simulator()
    picoammeter = load_driver("keithley6485")(
        roles["photodetector"].resource, visa_library=bench.visa_library
    )
    with pytest.raises(VisaIOError) as info:
        picoammeter.read_current()
    assert info.value.error_code == VI_ERROR_TMO
