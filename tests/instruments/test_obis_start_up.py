"""OBIS start-up and shut-down as the manual says: protocol tests with a fake clock.

The sequence (REFERENCE §6 "laser start-up"): interlock and fault register checked, setpoint,
emission on (read back), CDRH delay allowed for, power polled until stable; shut-down
switches emission off and reads it back.
"""

import pytest
from perovlab_daq.instruments.obis import (
    CDRH_DELAY_S,
    CoherentObis,
    ObisEmissionStillOn,
    ObisPowerTimeout,
    ObisStartError,
    decode_faults,
)
from pymeasure.test import expected_protocol

OBIS_INIT = [("SYST:COMM:HAND ON", "OK")]


def q(command, reply):
    """A query with handshaking on: reply line, then OK."""
    return [(command, reply), (None, "OK")]


class FakeTime:
    """Clock and sleep for the driver: sleeping advances the clock, nothing waits."""

    def __init__(self):
        self.now = 0.0
        self.sleeps = []

    def clock(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


def on_sequence(setpoint="0.05", cdrh="ON"):
    return (
        OBIS_INIT
        + q("SYST:LOCK?", "ON")
        + q("SYST:FAUL?", "00000000")
        + [(f"SOUR:POW:LEV:IMM:AMPL {setpoint}", "OK")]
        + q("SYST:CDRH?", cdrh)
        + [("SOUR:AM:STAT ON", "OK")]
        + q("SOUR:AM:STAT?", "ON")
    )


OFF_SEQUENCE = [("SOUR:AM:STAT OFF", "OK")] + q("SOUR:AM:STAT?", "OFF")


@pytest.mark.parametrize(("reply", "value"), [("ON", True), ("OFF", False)])
def test_cdrh_enabled(reply, value):
    with expected_protocol(CoherentObis, OBIS_INIT + q("SYST:CDRH?", reply)) as laser:
        assert laser.cdrh_enabled is value


def test_faults_are_decoded_to_names():
    with expected_protocol(CoherentObis, OBIS_INIT + q("SYST:FAUL?", "00000801")) as laser:
        assert laser.faults == ["base plate temperature out of range", "CCB error"]
    assert decode_faults(0) == []
    assert decode_faults(0x80000) == ["bit 0x80000"]  # unknown bits are named, not dropped


def test_power_reading_is_the_actual_power():
    with expected_protocol(CoherentObis, OBIS_INIT + q("SOUR:POW:LEV?", "0.04990")) as laser:
        assert laser.power_w == pytest.approx(0.0499)


def test_start_waits_through_the_cdrh_delay_until_power_is_stable():
    dark = q("SOUR:POW:LEV?", "0.00000")
    pairs = on_sequence() + dark * 3 + q("SOUR:POW:LEV?", "0.03000")
    pairs += q("SOUR:POW:LEV?", "0.04950") + q("SOUR:POW:LEV?", "0.05010")
    pairs += q("SOUR:POW:LEV?", "0.04990")
    fake = FakeTime()
    with expected_protocol(CoherentObis, pairs) as laser:
        stable = laser.start_emission(
            0.05, timeout_s=5.0, poll_s=2.0, clock=fake.clock, sleep=fake.sleep
        )
    assert stable == pytest.approx((0.0495 + 0.0501 + 0.0499) / 3)
    # The dark readings of the CDRH delay did not end the wait (2 s polls, budget 5 s delay + 5 s).
    assert fake.now == pytest.approx(12.0) and fake.now > CDRH_DELAY_S


def test_start_times_out_naming_setpoint_reading_and_tolerance_then_switches_off():
    fake = FakeTime()
    low = q("SOUR:POW:LEV?", "0.04000")
    pairs = on_sequence(cdrh="OFF") + low * 4 + OFF_SEQUENCE
    with expected_protocol(CoherentObis, pairs) as laser:
        with pytest.raises(ObisPowerTimeout, match=r"setpoint 0.05 W.*0.04 W.*2.0%"):
            laser.start_emission(
                0.05, timeout_s=1.0, poll_s=0.5, clock=fake.clock, sleep=fake.sleep
            )
    # CDRH off: no 5 s added to the timeout.
    assert fake.now == pytest.approx(1.5)


def test_start_below_the_regulated_minimum_accepts_a_plateau():
    fake = FakeTime()
    pairs = on_sequence(setpoint="0.0002", cdrh="OFF")
    for reading in ("0.00000", "0.00099", "0.00100", "0.00101"):
        pairs += q("SOUR:POW:LEV?", reading)
    with expected_protocol(CoherentObis, pairs) as laser:
        stable = laser.start_emission(
            0.0002, regulated_min_w=0.001, poll_s=0.1, clock=fake.clock, sleep=fake.sleep
        )
    assert stable == pytest.approx(0.001)


def test_open_interlock_refuses_before_any_command_that_emits():
    with expected_protocol(CoherentObis, OBIS_INIT + q("SYST:LOCK?", "OFF")) as laser:
        with pytest.raises(ObisStartError, match="interlock open"):
            laser.start_emission(0.05)


def test_fault_refuses_naming_the_fault():
    pairs = OBIS_INIT + q("SYST:LOCK?", "ON") + q("SYST:FAUL?", "00000020")
    with expected_protocol(CoherentObis, pairs) as laser:
        with pytest.raises(ObisStartError, match="0x00000020.*diode over-current"):
            laser.start_emission(0.05)


def test_emission_not_confirmed_on_is_an_error_and_switches_off():
    pairs = on_sequence(cdrh="OFF")
    pairs[-2] = ("SOUR:AM:STAT?", "OFF")
    pairs += OFF_SEQUENCE
    with expected_protocol(CoherentObis, pairs) as laser:
        with pytest.raises(ObisStartError, match="reads back OFF"):
            laser.start_emission(0.05)


def test_stop_emission_reads_back():
    with expected_protocol(CoherentObis, OBIS_INIT + OFF_SEQUENCE) as laser:
        laser.stop_emission()


def test_stop_emission_still_on_is_loud():
    pairs = OBIS_INIT + [("SOUR:AM:STAT OFF", "OK")] + q("SOUR:AM:STAT?", "ON")
    with expected_protocol(CoherentObis, pairs) as laser:
        with pytest.raises(ObisEmissionStillOn):
            laser.stop_emission()
