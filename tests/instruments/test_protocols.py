"""Protocol tests: every driver property and facade method against expected message pairs."""

import math
from unittest.mock import Mock

import pytest
from perovlab_daq.instruments.fw102c import FW102C, FW102CError
from perovlab_daq.instruments.keithley2400 import Keithley2400
from perovlab_daq.instruments.keithley2450 import Keithley2450
from perovlab_daq.instruments.keithley6485 import Keithley6485, Keithley6487
from perovlab_daq.instruments.obis import CoherentObis, ObisError
from perovlab_daq.instruments.photodetector import SourceMeterPhotodetector
from perovlab_daq.instruments.pm100 import ThorlabsPM100
from perovlab_daq.instruments.sample_stage import SampleStage
from perovlab_daq.instruments.spectrometer import SpectrometerError, VisaSpectrometer
from pymeasure.test import expected_protocol

K2400_INIT = [(":FORM:ELEM VOLT,CURR,RES,TIME,STAT", None)]
OBIS_INIT = [("SYST:COMM:HAND ON", "OK")]


def obis_query(command, reply):
    return [(command, reply), (None, "OK")]


# (class, init pairs, property, pairs, value read or written)
GETTERS = [
    (Keithley2400, K2400_INIT, "output_enabled", [("OUTPUT?", "1")], True),
    (Keithley2400, K2400_INIT, "source_voltage", [(":SOURCE:VOLTAGE?", "+3.0E+00")], 3.0),
    (Keithley2400, K2400_INIT, "source_current", [(":SOURCE:CURRENT?", "1e-3")], 1e-3),
    (
        Keithley2400,
        K2400_INIT,
        "sense_functions",
        [(":SENSE:FUNCTION:ON?", '"VOLT","CURR"')],
        '"VOLT","CURR"',
    ),
    (Keithley2450, [], "source_mode", [(":SOUR:FUNC?", "VOLT")], "voltage"),
    (Keithley2450, [], "sense_function", [(":SENS:FUNC?", '"CURR:DC"')], "CURR"),
    (Keithley2450, [], "source_voltage", [(":SOUR:VOLT?", "2.5")], 2.5),
    (Keithley2450, [], "source_current", [(":SOUR:CURR?", "0.01")], 0.01),
    (Keithley2450, [], "compliance_current", [(":SOUR:VOLT:ILIM?", "0.1")], 0.1),
    (Keithley2450, [], "compliance_voltage", [(":SOUR:CURR:VLIM?", "21")], 21.0),
    (Keithley2450, [], "current_nplc", [(":SENS:CURR:NPLC?", "1")], 1.0),
    (Keithley2450, [], "voltage_nplc", [(":SENS:VOLT:NPLC?", "2")], 2.0),
    (Keithley2450, [], "output_enabled", [(":OUTP?", "0")], False),
    (Keithley6485, [], "zero_check_enabled", [("SYST:ZCH?", "1")], True),
    (Keithley6485, [], "zero_check_enabled", [("SYST:ZCH?", "OFF")], False),
    (Keithley6485, [], "current_range", [("CURR:RANG?", "2.0E-09")], 2e-9),
    (Keithley6485, [], "current_range_auto_enabled", [("CURR:RANG:AUTO?", "0")], False),
    (Keithley6485, [], "nplc", [("CURR:NPLC?", "6")], 6.0),
    (Keithley6485, [], "data_elements", [("FORM:ELEM?", "READ,TIME,STAT")], "READ,TIME,STAT"),
    (Keithley6487, [], "source_voltage", [("SOUR:VOLT?", "-10")], -10.0),
    (Keithley6487, [], "source_enabled", [("SOUR:VOLT:STAT?", "1")], True),
    (CoherentObis, OBIS_INIT, "wavelength_nm", obis_query("SYST:INF:WAV?", "405"), 405.0),
    (
        CoherentObis,
        OBIS_INIT,
        "power_limit_low_w",
        obis_query("SOUR:POW:LIM:LOW?", "0.0005"),
        0.0005,
    ),
    (CoherentObis, OBIS_INIT, "power_limit_high_w", obis_query("SOUR:POW:LIM:HIGH?", "0.11"), 0.11),
    (
        CoherentObis,
        OBIS_INIT,
        "power_setpoint_w",
        obis_query("SOUR:POW:LEV:IMM:AMPL?", "0.05000"),
        0.05,
    ),
    (CoherentObis, OBIS_INIT, "power_w", obis_query("SOUR:POW:LEV?", "0.04990"), 0.0499),
    (CoherentObis, OBIS_INIT, "emission_enabled", obis_query("SOUR:AM:STAT?", "ON"), True),
    (CoherentObis, OBIS_INIT, "operating_mode", obis_query("SOUR:AM:SOUR?", "CWP"), "CWP"),
    (CoherentObis, OBIS_INIT, "interlock_closed", obis_query("SYST:LOCK?", "OFF"), False),
    (CoherentObis, OBIS_INIT, "fault_code", obis_query("SYST:FAUL?", "00000400"), 0x400),
    (
        CoherentObis,
        OBIS_INIT,
        "identity",
        obis_query("*IDN?", "Coherent, Inc - OBIS"),
        "Coherent, Inc - OBIS",
    ),
    (ThorlabsPM100, [], "wavelength_nm", [("SENS:CORR:WAV?", "4.050000E+02")], 405.0),
    (ThorlabsPM100, [], "averaging_count", [("SENS:AVER:COUN?", "100")], 100),
    (ThorlabsPM100, [], "power_range_auto_enabled", [("SENS:POW:RANG:AUTO?", "1")], True),
    (ThorlabsPM100, [], "power_w", [("MEAS:POW?", "1.234E-03")], 1.234e-3),
    (
        ThorlabsPM100,
        [],
        "sensor_id",
        [("SYST:SENS:IDN?", "S120C,123,01-Jan-2020,1,18,289")],
        "S120C,123,01-Jan-2020,1,18,289",
    ),
    (VisaSpectrometer, [], "pixel_count", [("SPEC:PIX?", "1044")], 1044),
    (VisaSpectrometer, [], "integration_time_us", [("SPEC:INT?", "100000")], 100000),
    (VisaSpectrometer, [], "integration_time_min_us", [("SPEC:INT:MIN?", "8000")], 8000),
    (
        VisaSpectrometer,
        [],
        "integration_time_max_us",
        [("SPEC:INT:MAX?", "3600000000")],
        3600000000,
    ),
    (VisaSpectrometer, [], "saturation_counts", [("SPEC:SAT?", "200000")], 200000.0),
    (VisaSpectrometer, [], "max_intensity", [("SPEC:SAT?", "200000")], 200000.0),
    (VisaSpectrometer, [], "pixels", [("SPEC:PIX?", "1044")], 1044),
    (VisaSpectrometer, [], "model", [("*IDN?", "Ocean,QE-PRO,QEP01234,1.0")], "QE-PRO"),
    (VisaSpectrometer, [], "serial_number", [("*IDN?", "Ocean,QE-PRO,QEP01234,1.0")], "QEP01234"),
    (SampleStage, [], "position", [("POS?", "B")], "B"),
    (FW102C, [], "position", [("pos?", "pos?"), (None, "3"), (None, ">")], 3),
    (FW102C, [], "position_count", [("pcount?", "pcount?"), (None, "6"), (None, ">")], 6),
]

SETTERS = [
    (Keithley2400, K2400_INIT, "output_enabled", [("OUTPUT 0", None)], False),
    (Keithley2400, K2400_INIT, "source_voltage", [(":SOURCE:VOLTAGE 5", None)], 5),
    (Keithley2400, K2400_INIT, "source_current", [(":SOURCE:CURRENT 0.001", None)], 1e-3),
    (Keithley2450, [], "source_mode", [(":SOUR:FUNC CURR", None)], "current"),
    (Keithley2450, [], "sense_function", [(':SENS:FUNC "VOLT"', None)], "VOLT"),
    (Keithley2450, [], "source_voltage", [(":SOUR:VOLT 1e-05", None)], 1e-5),
    (Keithley2450, [], "source_current", [(":SOUR:CURR -0.5", None)], -0.5),
    (Keithley2450, [], "compliance_current", [(":SOUR:VOLT:ILIM 0.1", None)], 0.1),
    (Keithley2450, [], "compliance_voltage", [(":SOUR:CURR:VLIM 21", None)], 21),
    (Keithley2450, [], "current_nplc", [(":SENS:CURR:NPLC 0.5", None)], 0.5),
    (Keithley2450, [], "voltage_nplc", [(":SENS:VOLT:NPLC 10", None)], 10),
    (Keithley2450, [], "output_enabled", [(":OUTP 1", None)], True),
    (Keithley6485, [], "zero_check_enabled", [("SYST:ZCH OFF", None)], False),
    (Keithley6485, [], "current_range", [("CURR:RANG 2e-09", None)], 2e-9),
    (Keithley6485, [], "current_range_auto_enabled", [("CURR:RANG:AUTO ON", None)], True),
    (Keithley6485, [], "nplc", [("CURR:NPLC 1", None)], 1),
    (Keithley6485, [], "data_elements", [("FORM:ELEM READ,TIME,STAT", None)], "READ,TIME,STAT"),
    (Keithley6487, [], "source_voltage", [("SOUR:VOLT 10", None)], 10),
    (Keithley6487, [], "source_enabled", [("SOUR:VOLT:STAT OFF", None)], False),
    (CoherentObis, OBIS_INIT, "power_setpoint_w", [("SOUR:POW:LEV:IMM:AMPL 0.05", "OK")], 0.05),
    (CoherentObis, OBIS_INIT, "emission_enabled", [("SOUR:AM:STAT OFF", "OK")], False),
    (CoherentObis, OBIS_INIT, "operating_mode", [("SOUR:AM:INT CWP", "OK")], "CWP"),
    (ThorlabsPM100, [], "wavelength_nm", [("SENS:CORR:WAV 445", None)], 445),
    (ThorlabsPM100, [], "averaging_count", [("SENS:AVER:COUN 10", None)], 10),
    (ThorlabsPM100, [], "power_range_auto_enabled", [("SENS:POW:RANG:AUTO 1", None)], True),
    (VisaSpectrometer, [], "integration_time_us", [("SPEC:INT 20000", None)], 20000),
    (SampleStage, [], "position", [("POS C", None)], "C"),
    (FW102C, [], "position", [("pos=2", "pos=2"), (None, ">")], 2),
]

# (class, init pairs, property, invalid value)
INVALID = [
    (Keithley2400, K2400_INIT, "source_voltage", 211),
    (Keithley2400, K2400_INIT, "source_current", 1.1),
    (Keithley2400, K2400_INIT, "output_enabled", 2),
    (Keithley2450, [], "compliance_current", 0),
    (Keithley2450, [], "compliance_voltage", 0.01),
    (Keithley2450, [], "source_mode", "resistance"),
    (Keithley6485, [], "current_range", 0.03),
    (Keithley6485, [], "nplc", 0.001),
    (Keithley6487, [], "source_voltage", 600),
    (CoherentObis, OBIS_INIT, "power_setpoint_w", 1.5),
    (CoherentObis, OBIS_INIT, "power_setpoint_w", -0.01),
    (CoherentObis, OBIS_INIT, "operating_mode", "DIGITAL"),
    (ThorlabsPM100, [], "wavelength_nm", 100),
    (ThorlabsPM100, [], "averaging_count", 0),
    (VisaSpectrometer, [], "integration_time_us", 7999),
    (SampleStage, [], "position", "D"),
    (FW102C, [], "position", 7),
    (FW102C, [], "position", 2.5),
]


def _id(case):
    return f"{case[0].__name__}.{case[2]}"


@pytest.mark.parametrize("case", GETTERS, ids=_id)
def test_getter(case):
    cls, init, prop, pairs, value = case
    with expected_protocol(cls, init + pairs) as inst:
        got = getattr(inst, prop)
    assert got == pytest.approx(value) if isinstance(value, float) else got == value


@pytest.mark.parametrize("case", SETTERS, ids=_id)
def test_setter(case):
    cls, init, prop, pairs, value = case
    with expected_protocol(cls, init + pairs) as inst:
        setattr(inst, prop, value)


@pytest.mark.parametrize("case", INVALID, ids=_id)
def test_setter_rejects_out_of_range(case):
    cls, init, prop, value = case
    with expected_protocol(cls, init) as inst:
        with pytest.raises(ValueError):
            setattr(inst, prop, value)


# -- facade methods ------------------------------------------------------------------------
def test_k2400_apply_voltage_source_and_read_all_compliance_bit():
    pairs = K2400_INIT + [
        (":SOURCE:FUNCTION VOLT", None),
        (':SENSE:FUNCTION:ON "VOLT","CURR"', None),
        (":SENSE:CURRENT:PROTECTION 0.01", None),
        (":SENSE:CURRENT:NPLCYCLES 1", None),
        (":READ?", "+3.000000E+00,+1.000000E-02,+9.910000E+37,+1.250000E+01,+8.000000E+00"),
        (":READ?", "+3.000000E+00,+9.910000E+37,+9.910000E+37,+1.300000E+01,+0.000000E+00"),
    ]
    with expected_protocol(Keithley2400, pairs) as smu:
        smu.apply_voltage_source(compliance_current_a=0.01, nplc=1)
        first = smu.read_all()
        second = smu.read_all()
    assert first.voltage_v == 3.0 and first.current_a == 0.01 and first.time_s == 12.5
    assert first.status == 8 and first.in_compliance
    assert math.isnan(second.current_a) and not second.in_compliance


def test_k2400_apply_current_source():
    pairs = K2400_INIT + [
        (":SOURCE:FUNCTION CURR", None),
        (':SENSE:FUNCTION:ON "VOLT","CURR"', None),
        (":SENSE:VOLTAGE:PROTECTION 10", None),
        (":SENSE:VOLTAGE:NPLCYCLES 0.1", None),
    ]
    with expected_protocol(Keithley2400, pairs) as smu:
        smu.apply_current_source(compliance_voltage_v=10, nplc=0.1)


def test_k2400_read_all_rejects_short_reply():
    with expected_protocol(Keithley2400, K2400_INIT + [(":READ?", "1,2")]) as smu:
        with pytest.raises(ValueError):
            smu.read_all()


def test_k2400_shutdown_never_raises():
    with expected_protocol(Keithley2400, K2400_INIT) as smu:
        smu.write = Mock(side_effect=OSError("bus gone"))
        smu.shutdown()
        assert smu.isShutdown
        smu.write.assert_called_once_with("OUTPUT 0")


def test_k2400_shutdown_switches_output_off():
    with expected_protocol(Keithley2400, K2400_INIT + [("OUTPUT 0", None)]) as smu:
        smu.shutdown()


def test_k2450_read_all_uses_one_buffer_read_and_trip_flag():
    pairs = [
        (":SOUR:FUNC VOLT", None),
        (':SENS:FUNC "CURR"', None),
        (":SOUR:VOLT:ILIM 0.01", None),
        (":SENS:CURR:NPLC 1", None),
        (':READ? "defbuffer1", SOUR, READ, REL', "5.0,0.01,1.5"),
        (":SOUR:VOLT:ILIM:TRIP?", "1"),
    ]
    with expected_protocol(Keithley2450, pairs) as smu:
        smu.apply_voltage_source(0.01, 1)
        reading = smu.read_all()
    assert (reading.voltage_v, reading.current_a, reading.time_s) == (5.0, 0.01, 1.5)
    assert reading.in_compliance and reading.status == 8


def test_k6485_configure_and_read_current():
    pairs = [
        ("FORM:ELEM READ,TIME,STAT", None),
        ("CURR:NPLC 1", None),
        ("CURR:RANG 2e-06", None),
        ("SYST:ZCH OFF", None),
        ("READ?", "-1.234000E-09A,+1.2E+01,+0.0E+00"),
        ("READ?", "+9.900000E+37,+1.3E+01,+0.0E+00"),
    ]
    with expected_protocol(Keithley6485, pairs) as pa:
        pa.configure(nplc=1, current_range_a=2e-6)
        ok = pa.read_current()
        over = pa.read_current()
    assert ok.current_a == pytest.approx(-1.234e-9) and not ok.overflow
    assert over.overflow and math.isnan(over.current_a)


def test_k6485_configure_auto_range():
    pairs = [
        ("FORM:ELEM READ,TIME,STAT", None),
        ("CURR:NPLC 6", None),
        ("CURR:RANG:AUTO ON", None),
        ("SYST:ZCH OFF", None),
    ]
    with expected_protocol(Keithley6485, pairs) as pa:
        pa.configure(nplc=6, current_range_a=None)


def test_k6487_shutdown_source_off_then_zero_check():
    pairs = [("SOUR:VOLT:STAT OFF", None), ("SYST:ZCH ON", None)]
    with expected_protocol(Keithley6487, pairs) as pa:
        pa.shutdown()


def test_smu_photodetector_configure_and_overflow_on_compliance():
    pairs = K2400_INIT + [
        (":SOURCE:FUNCTION VOLT", None),
        (':SENSE:FUNCTION:ON "VOLT","CURR"', None),
        (":SENSE:CURRENT:PROTECTION 0.001", None),
        (":SENSE:CURRENT:NPLCYCLES 2", None),
        (":SOURCE:VOLTAGE 0", None),
        (":SENSE:CURRENT:RANGE:AUTO 1", None),
        ("OUTPUT 1", None),
        (":READ?", "0,1e-6,9.91e37,1,0"),
        (":READ?", "0,1e-3,9.91e37,2,8"),
        ("OUTPUT 0", None),
    ]
    with expected_protocol(SourceMeterPhotodetector, pairs, compliance_current_a=1e-3) as pd:
        pd.configure(nplc=2, current_range_a=None)
        ok = pd.read_current()
        over = pd.read_current()
        pd.shutdown()
    assert ok.current_a == 1e-6 and not ok.overflow
    assert over.overflow and math.isnan(over.current_a)


def test_obis_error_reply_raises_obis_error():
    pairs = OBIS_INIT + [("SOUR:POW:LEV:IMM:AMPL 0.05", "ERR-102")]
    with expected_protocol(CoherentObis, pairs) as laser:
        with pytest.raises(ObisError, match="ERR-102"):
            laser.power_setpoint_w = 0.05


def test_obis_query_error_raises():
    with expected_protocol(CoherentObis, OBIS_INIT + [("SYST:FAUL?", "ERR-100")]) as laser:
        with pytest.raises(ObisError):
            _ = laser.fault_code


def test_obis_power_limits_narrow_setpoint_validator():
    pairs = (
        OBIS_INIT
        + obis_query("SOUR:POW:LIM:LOW?", "0.0005")
        + obis_query("SOUR:POW:LIM:HIGH?", "0.11")
    )
    with expected_protocol(CoherentObis, pairs) as laser:
        assert laser.power_limits_w == (0.0005, 0.11)
        with pytest.raises(ValueError):
            laser.power_setpoint_w = 0.2


def test_obis_shutdown_emission_off_and_never_raises():
    with expected_protocol(CoherentObis, OBIS_INIT + [("SOUR:AM:STAT OFF", "OK")]) as laser:
        laser.shutdown()
    with expected_protocol(CoherentObis, OBIS_INIT + [("SOUR:AM:STAT OFF", "ERR-500")]) as laser:
        laser.shutdown()


def test_visa_spectrometer_intensities_with_corrections():
    pairs = [
        ("SPEC:DATA?", "1010,1110,2010"),
        ("SPEC:WAV?", "500,501,502"),
        ("SPEC:EDARK?", "0"),
        ("SPEC:NLIN?", "1.0,0,0"),
    ]
    with expected_protocol(VisaSpectrometer, pairs) as spec:
        counts = spec.intensities(correct_dark_counts=True, correct_nonlinearity=True)
    assert list(counts) == [0.0, 100.0, 1000.0]


def test_visa_spectrometer_refuses_dark_correction_without_dark_pixels():
    pairs = [("SPEC:DATA?", "1,2"), ("SPEC:WAV?", "500,501"), ("SPEC:EDARK?", "")]
    with expected_protocol(VisaSpectrometer, pairs) as spec:
        with pytest.raises(SpectrometerError, match="dark"):
            spec.intensities(correct_dark_counts=True)


def test_visa_spectrometer_refuses_zero_nonlinearity_coefficients():
    pairs = [("SPEC:DATA?", "1,2"), ("SPEC:WAV?", "500,501"), ("SPEC:NLIN?", "0,0,0")]
    with expected_protocol(VisaSpectrometer, pairs) as spec:
        with pytest.raises(SpectrometerError, match="nonlinearity"):
            spec.intensities(correct_nonlinearity=True)


def test_visa_spectrometer_pixel_mismatch_raises():
    pairs = [("SPEC:DATA?", "1,2,3"), ("SPEC:WAV?", "500,501")]
    with expected_protocol(VisaSpectrometer, pairs) as spec:
        with pytest.raises(SpectrometerError, match="pixels"):
            spec.intensities()


def test_visa_spectrometer_limits_and_integration_time():
    pairs = [("SPEC:INT:MIN?", "10000"), ("SPEC:INT:MAX?", "20000"), ("SPEC:INT 15000", None)]
    with expected_protocol(VisaSpectrometer, pairs) as spec:
        assert spec.integration_time_micros_limits == (10000, 20000)
        spec.integration_time_micros(15000)
        with pytest.raises(SpectrometerError):
            spec.integration_time_micros(25000)


def test_fw102c_error_reply_raises():
    pairs = [("pos=6", "pos=6"), (None, "C"), (None, "ommand error CMD_ARG_INVALID"), (None, ">")]
    with expected_protocol(FW102C, pairs) as wheel:
        with pytest.raises(FW102CError):
            wheel.position = 6


def test_pm100_snapshot_lists_settings():
    pairs = [
        ("*IDN?", "Thorlabs,PM100D,P0012345,2.8.0"),
        ("SYST:SENS:IDN?", "S120C,1,2,3"),
        ("SENS:CORR:WAV?", "405"),
        ("SENS:AVER:COUN?", "1"),
        ("SENS:POW:RANG:AUTO?", "1"),
    ]
    with expected_protocol(ThorlabsPM100, pairs) as meter:
        snap = meter.snapshot()
    assert snap["wavelength_nm"] == 405 and snap["identity"].startswith("Thorlabs")


def test_k6485_snapshot_reads_its_table_in_order():
    pairs = [
        ("*IDN?", "KEITHLEY INSTRUMENTS INC.,MODEL 6485,1234567,B04"),
        ("CURR:NPLC?", "1"),
        ("CURR:RANG?", "2.0E-06"),
        ("CURR:RANG:AUTO?", "0"),
        ("SYST:ZCH?", "0"),
    ]
    with expected_protocol(Keithley6485, pairs) as pa:
        snap = pa.snapshot()
    assert list(snap) == ["identity", "nplc", "current_range_a", "current_range_auto", "zero_check"]
    assert snap["identity"].startswith("KEITHLEY") and snap["current_range_a"] == 2e-6
    assert snap["current_range_auto"] is False and snap["zero_check"] is False


def test_k6487_shutdown_goes_on_after_a_failed_step():
    with expected_protocol(Keithley6487, []) as pa:
        pa.write = Mock(side_effect=[OSError("bus gone"), None])
        pa.shutdown()
    assert [c.args[0] for c in pa.write.call_args_list] == ["SOUR:VOLT:STAT OFF", "SYST:ZCH ON"]
    assert pa.isShutdown


def test_constructor_keyword_overrides_connection_defaults_without_touching_them(monkeypatch):
    from pymeasure.adapters import ProtocolAdapter

    opened = {}

    def fake_visa_adapter(resource, **kwargs):
        opened.update(kwargs, resource=resource)
        return ProtocolAdapter([])

    monkeypatch.setattr("pymeasure.instruments.instrument.VISAAdapter", fake_visa_adapter)
    wheel = FW102C("ASRL2::INSTR", timeout=1234)
    assert wheel.name == "Thorlabs FW102C filter wheel"
    assert opened == {
        "resource": "ASRL2::INSTR",
        "read_termination": "\r",
        "write_termination": "\r",
        "timeout": 1234,
        "asrl": {"baud_rate": 115200},
    }
    opened["asrl"]["baud_rate"] = 9600  # an adapter that edits its settings
    assert FW102C.CONNECTION["timeout"] == 5000
    assert FW102C.CONNECTION["asrl"] == {"baud_rate": 115200}
    assert SampleStage("ASRL3::INSTR", name="stage 2").name == "stage 2"
