"""Drivers driving the simulated instruments through the VISA layer only (SimBenchLibrary)."""

from dataclasses import dataclass

import numpy as np
import pytest
from perovlab_daq.instruments.fw102c import FW102C
from perovlab_daq.instruments.keithley2400 import Keithley2400
from perovlab_daq.instruments.keithley2450 import Keithley2450
from perovlab_daq.instruments.keithley6485 import Keithley6485
from perovlab_daq.instruments.obis import CoherentObis, ObisError
from perovlab_daq.instruments.photodetector import SourceMeterPhotodetector
from perovlab_daq.instruments.pm100 import ThorlabsPM100
from perovlab_daq.instruments.sample_stage import SampleStage
from perovlab_daq.instruments.spectrometer import SpectrometerError, VisaSpectrometer
from pyvisa import constants
from pyvisa.errors import VisaIOError

from perovlab_daq.sim.faults import FaultSpec
from perovlab_daq.sim.visalib import ResourceNotServedError, SimBenchLibrary

SMU = "GPIB0::24::INSTR"
PICO = "GPIB0::14::INSTR"
LASER = "ASRL1::INSTR"
METER = "USB0::0x1313::0x8078::P0012345::INSTR"
SPEC = "TCPIP0::127.0.0.1::5025::SOCKET"


@dataclass
class Reading:
    voltage_v: float
    current_a: float
    in_compliance: bool


class FakeWorld:
    """The World API of docs/architecture.md §1, with trivial physics and a call log."""

    laser_wavelength_nm = 405.0
    laser_max_power_w = 0.1
    laser_min_power_w = 0.0005
    spectrometer_saturation_counts = 262143
    spectrometer_nonlinearity_coefficients = (1.0, 2.0e-7, -1.0e-12, 0.0)
    spectrometer_electric_dark_pixels = ()
    closed_channels = ()  # no pixel switch wired

    def set_switch_closed(self, channels):
        self.calls.append(("set_switch_closed", tuple(channels)))

    def __init__(self):
        self.calls = []
        self.drive = ("VOLT", 0.0, 0.0, False)
        self.laser = (0.0, False)
        self.interlock_closed = True
        self.photocurrent_a = 1e-6
        self.filter_position = 1
        self.sample_position = "stage"
        self.last_integration_s = None

    def set_drive(self, mode, level, compliance, output_on):
        self.calls.append(("set_drive", mode, level, compliance, output_on))
        self.drive = (mode, level, compliance, output_on)

    def smu_reading(self):
        mode, level, compliance, on = self.drive
        if not on:
            return Reading(0.0, 0.0, False)
        current = level / 1000.0  # a 1 kOhm LED
        if abs(current) > compliance:
            return Reading(compliance * 1000.0, compliance, True)
        return Reading(level, current, False)

    def photodiode_current_a(self):
        return self.photocurrent_a

    def set_laser(self, power_setpoint_w, emission_on):
        self.calls.append(("set_laser", power_setpoint_w, emission_on))
        self.laser = (power_setpoint_w, emission_on)

    def laser_output_w(self):
        power, on = self.laser
        return power if on and self.interlock_closed else 0.0

    def set_filter_position(self, pos):
        self.filter_position = pos

    def power_meter_w(self, wavelength_nm):
        self.calls.append(("power_meter_w", wavelength_nm))
        return 0.5 * self.laser_output_w()

    def set_sample_position(self, pos):
        self.sample_position = pos

    def spectrometer_wavelengths_nm(self):
        return np.linspace(350.0, 1150.0, 1044)

    def spectrometer_counts(self, integration_time_s):
        self.last_integration_s = integration_time_s
        return np.full(1044, 1000.0) + np.arange(1044)


@pytest.fixture
def world():
    return FakeWorld()


@pytest.fixture
def lib(world):
    return SimBenchLibrary(world)


@pytest.fixture
def closing():
    """Close every instrument a test opens (QCoDeS-style fixture)."""
    opened = []
    yield opened.append
    for inst in opened:
        inst.adapter.close()


def test_smu_drives_the_world_and_reads_it_back(lib, world, closing):
    smu = Keithley2400(SMU, visa_library=lib)
    closing(smu)
    smu.apply_voltage_source(compliance_current_a=0.01, nplc=1)
    smu.source_voltage = 3.0
    smu.output_enabled = True
    assert world.drive == ("VOLT", 3.0, 0.01, True)
    reading = smu.read_all()
    assert reading.voltage_v == pytest.approx(3.0)
    assert reading.current_a == pytest.approx(3e-3)
    assert not reading.in_compliance
    smu.source_voltage = 20.0  # 20 mA into 1 kOhm exceeds 10 mA compliance
    assert smu.read_all().in_compliance
    smu.shutdown()
    assert world.drive[3] is False


def test_smu_setter_out_of_range_lands_in_error_queue(lib, closing):
    smu = Keithley2400(SMU, visa_library=lib)
    closing(smu)
    smu.write(":SOURCE:VOLTAGE 500")
    errors = smu.check_errors()
    assert [int(e[0]) for e in errors] == [-100]
    assert smu.source_voltage == 0.0  # the simulated instrument kept its old value


def test_smu_2450_reads_buffer_and_trip(world, closing):
    lib = SimBenchLibrary(world, ["keithley2450"])
    smu = Keithley2450("USB0::0x05E6::0x2450::04096331::INSTR", visa_library=lib)
    closing(smu)
    smu.apply_voltage_source(0.001, 1)
    smu.source_voltage = 5.0
    smu.output_enabled = True
    reading = smu.read_all()
    assert reading.in_compliance and reading.current_a == pytest.approx(1e-3)
    assert smu.check_errors() == []


def test_picoammeter_reads_photodiode_and_overflows_on_a_small_range(lib, world, closing):
    pico = Keithley6485(PICO, visa_library=lib)
    closing(pico)
    pico.configure(nplc=1, current_range_a=None)
    assert pico.read_current().current_a == pytest.approx(1e-6)
    pico.configure(nplc=1, current_range_a=2e-9)
    reading = pico.read_current()
    assert reading.overflow and np.isnan(reading.current_a)
    pico.shutdown()
    assert pico.zero_check_enabled


def test_smu_photodetector_reads_photodiode_without_touching_the_led(world, closing):
    lib = SimBenchLibrary(world, ["keithley2400", "smu-photodetector"])
    detector = SourceMeterPhotodetector("GPIB0::25::INSTR", visa_library=lib)
    closing(detector.smu)
    detector.configure(nplc=1, current_range_a=None)
    assert detector.read_current().current_a == pytest.approx(1e-6)
    assert not [c for c in world.calls if c[0] == "set_drive"]


def test_laser_handshake_ok_lines_are_consumed(lib, world, closing):
    laser = CoherentObis(LASER, visa_library=lib)
    closing(laser)
    assert laser.power_limits_w == (0.0005, 0.1)  # from the world, not the YAML
    laser.set_cw_power_mode()
    laser.power_setpoint_w = 0.05
    laser.emission_enabled = True
    assert world.laser == (0.05, True)
    # Each reply's OK line was consumed: replies stay aligned over many queries.
    for _ in range(3):
        assert laser.power_w == pytest.approx(0.05)
        assert laser.interlock_closed is True
        assert laser.wavelength_nm == 405.0
    assert laser.fault_code == 0
    world.interlock_closed = False
    assert laser.interlock_closed is False and laser.power_w == 0.0
    laser.shutdown()
    assert world.laser == (0.05, False)


def test_laser_rejects_power_above_the_world_limit(world, closing):
    lib = SimBenchLibrary(world, ["obis"])
    laser = CoherentObis(LASER, visa_library=lib)
    closing(laser)
    with pytest.raises(ObisError, match="ERR-102"):
        laser.write("SOUR:POW:LEV:IMM:AMPL 0.105")
    with pytest.raises(ObisError, match="ERR-100"):
        laser.ask("BOGUS?")
    assert laser.emission_enabled is False  # still aligned after the errors


def test_power_meter_reads_the_world_at_its_wavelength(lib, world, closing):
    world.set_laser(0.02, True)
    meter = ThorlabsPM100(METER, visa_library=lib)
    closing(meter)
    meter.wavelength_nm = 445
    assert meter.power_w == pytest.approx(0.01)
    assert ("power_meter_w", 445.0) in world.calls
    assert meter.sensor_id.startswith("S120C")


def test_whole_spectrum_read(lib, world, closing):
    spec = VisaSpectrometer(SPEC, visa_library=lib)
    closing(spec)
    spec.integration_time_micros(20000)
    wavelengths = spec.wavelengths()
    counts = spec.intensities()
    assert wavelengths.shape == counts.shape == (1044,)
    assert counts[0] == 1000 and counts[-1] == 1000 + 1043
    assert world.last_integration_s == pytest.approx(0.02)
    assert spec.max_intensity == 262143
    assert spec.pixels == 1044
    corrected = spec.intensities(correct_nonlinearity=True)
    assert np.all(corrected < counts)
    with pytest.raises(SpectrometerError):
        spec.intensities(correct_dark_counts=True)  # the simulated device has no dark pixels


def test_filter_wheel_and_sample_stage_move_the_world(world, closing):
    lib = SimBenchLibrary(world, ["fw102c", "sim-sample-stage"])
    wheel = FW102C("ASRL2::INSTR", visa_library=lib)
    stage = SampleStage("ASRL3::INSTR", visa_library=lib)
    closing(wheel)
    closing(stage)
    wheel.position = 4
    stage.position = "C"
    assert (world.filter_position, world.sample_position) == (4, "C")
    stage.position = "STAGE"
    assert world.sample_position == "stage"
    assert wheel.position == 4


def test_misspelt_resource_fails_clearly(lib):
    with pytest.raises(VisaIOError) as info:
        Keithley2400("GPIB0::42::INSTR", visa_library=lib)
    assert info.value.error_code == constants.StatusCode.error_resource_not_found
    assert isinstance(info.value, ResourceNotServedError)
    assert "GPIB0::24::INSTR" in str(info.value)


def test_only_the_instruments_asked_for_are_served(world):
    lib = SimBenchLibrary(world, {"GPIB0::5::INSTR": "keithley2400"})
    assert lib.served_resources() == ("GPIB0::5::INSTR",)
    with pytest.raises(VisaIOError):
        Keithley2400(SMU, visa_library=lib)
    with pytest.raises(ValueError, match="no simulator"):
        SimBenchLibrary(world, ["seabreeze"])


def test_timeout_raises_pyvisa_timeout_at_the_driver(world, closing):
    lib = SimBenchLibrary(world, ["keithley6485"], faults={PICO: FaultSpec(timeout_rate=1.0)})
    pico = Keithley6485(PICO, visa_library=lib, timeout=60000)
    closing(pico)
    with pytest.raises(VisaIOError) as info:
        pico.read_current()
    assert info.value.error_code == constants.StatusCode.error_timeout


def test_partial_timeout_rate_loses_some_replies_but_never_shifts_them(world, closing):
    faults = {PICO: {"timeout_rate": 0.3, "seed": 3}}
    lib = SimBenchLibrary(world, ["keithley6485"], faults=faults)
    pico = Keithley6485(PICO, visa_library=lib)
    closing(pico)
    outcomes = []
    for _ in range(40):
        try:
            outcomes.append(pico.id.startswith("KEITHLEY"))
        except VisaIOError:
            outcomes.append(None)
    assert None in outcomes and True in outcomes and False not in outcomes


def test_garbled_replies_are_corrupted(world, closing):
    lib = SimBenchLibrary(world, ["keithley6485"], faults={PICO: FaultSpec(garble_rate=1.0)})
    pico = Keithley6485(PICO, visa_library=lib)
    closing(pico)
    idn = pico.ask("*IDN?").strip()
    assert idn != "KEITHLEY INSTRUMENTS INC.,MODEL 6485,1234567,B04   Jan 23 2006 10:09:42/A02  /E"
    assert len(idn) == len(
        "KEITHLEY INSTRUMENTS INC.,MODEL 6485,1234567,B04   Jan 23 2006 10:09:42/A02  /E"
    )


def test_disconnect_window_then_recovery(world, closing):
    now = [0.0]
    spec = FaultSpec(disconnect_after_s=10.0, disconnect_for_s=5.0)
    lib = SimBenchLibrary(world, ["keithley6485"], faults={PICO: spec}, clock=lambda: now[0])
    pico = Keithley6485(PICO, visa_library=lib)
    closing(pico)
    assert "6485" in pico.identity
    now[0] = 12.0
    with pytest.raises(VisaIOError):
        _ = pico.identity
    now[0] = 16.0
    assert "6485" in pico.identity


def test_disconnect_forever(world, closing):
    now = [0.0]
    spec = FaultSpec(disconnect_after_s=1.0, disconnect_for_s=None)
    lib = SimBenchLibrary(world, ["obis"], faults={LASER: spec}, clock=lambda: now[0])
    laser = CoherentObis(LASER, visa_library=lib)
    closing(laser)
    now[0] = 1e6
    with pytest.raises(VisaIOError) as info:
        _ = laser.power_w
    assert info.value.error_code == constants.StatusCode.error_timeout


def test_error_after_write_appears_in_the_error_queue(world, closing):
    spec = FaultSpec(error_after_write={":SOURCE:VOLTAGE": '-222,"Data out of range"'})
    lib = SimBenchLibrary(world, ["keithley2400"], faults={SMU: spec})
    smu = Keithley2400(SMU, visa_library=lib)
    closing(smu)
    smu.source_voltage = 1.0
    smu.output_enabled = True
    errors = smu.check_errors()
    assert len(errors) == 1 and int(errors[0][0]) == -222 and "Data out of range" in errors[0][1]
    assert smu.check_errors() == []


def test_reset_restores_power_on_state_and_keeps_sessions(lib, closing):
    smu = Keithley2400(SMU, visa_library=lib)
    closing(smu)
    smu.source_voltage = 7.0
    smu.write(":SOURCE:VOLTAGE 999")  # leaves an entry in the error queue
    lib.reset()
    assert smu.source_voltage == 0.0
    assert smu.check_errors() == []


def test_world_less_library_serves_static_yaml():
    lib = SimBenchLibrary(None, ["keithley2400"])
    smu = Keithley2400(SMU, visa_library=lib)
    assert smu.read_all().current_a == 0.0
    smu.adapter.close()


def test_unknown_fault_options_and_resources_are_rejected(world):
    with pytest.raises(ValueError, match="unknown fault option"):
        SimBenchLibrary(world, ["keithley2400"], faults={SMU: {"timeout": 0.1}})
    with pytest.raises(ValueError, match="does not serve"):
        SimBenchLibrary(world, ["keithley2400"], faults={PICO: FaultSpec(timeout_rate=0.1)})


def test_libraries_are_independent(world):
    first = SimBenchLibrary(world, ["keithley2400"])
    second = SimBenchLibrary(world, ["keithley6485"])
    assert first is not second
    assert first.served_resources() != second.served_resources()


def test_real_world_if_available(closing):
    world_module = pytest.importorskip("perovlab_daq.sim.world")
    world = world_module.World(seed=1)
    lib = SimBenchLibrary(world)
    smu = Keithley2400(SMU, visa_library=lib)
    pico = Keithley6485(PICO, visa_library=lib)
    closing(smu)
    closing(pico)
    smu.apply_voltage_source(compliance_current_a=0.1, nplc=1)
    smu.source_voltage = 4.0
    smu.output_enabled = True
    reading = smu.read_all()
    pico.configure(nplc=1, current_range_a=None)
    assert np.isfinite(reading.current_a)
    assert np.isfinite(pico.read_current().current_a) or pico.read_current().overflow
