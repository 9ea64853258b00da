"""The simulated SCPI instruments accept every spelling their manuals allow (issue 16).

``:OUTP?``, ``OUTP?``, ``:OUTP:STAT?``, ``OUTPut1:STATe?`` ... are one query on a Keithley
2400/2450; ``:OUTP ON`` = ``:OUTP 1``; ``SOURce:AM:STATe?`` = ``SOUR:AM:STAT?`` on the OBIS.
Checked through a raw PyVISA session on the in-process simulator and through a served
socket (pyvisa-py), so nothing above PyVISA helps.
"""

from __future__ import annotations

import pytest
import pyvisa

from perovlab_daq.bench import Bench, sim_bench
from perovlab_daq.sim.catalogue import SIM_INSTRUMENTS
from perovlab_daq.sim.personalities_scpi import canonical_mnemonic, header_key
from perovlab_daq.sim.serve import serve
from perovlab_daq.sim.visalib import SimBenchLibrary

SMU_TERM = {"read_termination": "\n", "write_termination": "\n", "timeout": 200}
OBIS_TERM = {"read_termination": "\r\n", "write_termination": "\r\n", "timeout": 200}
OUTPUT_QUERIES = [":OUTP?", "OUTP?", ":OUTP:STAT?", "OUTPUT?", ":outp:state?", "OUTPut1:STATe?"]
SETTINGS = [(":OUTP ON", "1"), (":OUTP OFF", "0"), (":OUTP 1", "1"), (":OUTP 0", "0")]
SETTINGS += [("outp:stat on", "1"), (":OUTPUT:STATE OFF", "0"), ("OUTPUT 1", "1")]


def test_mnemonics_short_and_long_are_one():
    assert {canonical_mnemonic(w) for w in ("OUTP", "OUTPUT", "output", "Outp1")} == {"OUTP"}
    assert canonical_mnemonic("OUTPU") == "OUTPU"  # not a legal abbreviation
    assert canonical_mnemonic("OUTP2") == "OUTP2"  # another output, not the default one
    assert header_key(":SOURce:VOLTage:LEVel:IMMediate:AMPLitude", ("LEV", "IMM", "AMPL")) == (
        ("SOUR", "VOLT"),
        False,
    )


def _library() -> SimBenchLibrary:
    bench = Bench(sim_bench())
    bench._build_simulator()
    return bench.visa_library


@pytest.mark.parametrize("driver", ["keithley2400", "keithley2450"])
def test_source_meters_answer_every_output_spelling(driver):
    resource = SIM_INSTRUMENTS[driver].resource
    library = SimBenchLibrary(instruments={resource: driver})
    smu = pyvisa.ResourceManager(library).open_resource(resource, **SMU_TERM)
    for query in OUTPUT_QUERIES:
        assert smu.query(query) == "0", query
    for setting, state in SETTINGS:
        smu.write(setting)
        assert [smu.query(q) for q in OUTPUT_QUERIES] == [state] * len(OUTPUT_QUERIES), setting
    assert smu.query("SYST:ERR?").startswith("0,")  # none of them was a command error
    smu.write(":OUTPU?")  # SCPI allows OUTP or OUTPUT, nothing in between
    assert smu.query("SYST:ERR?").startswith("-100,")
    smu.write(":OUTP MAYBE")  # refused as on the instrument: the state is unchanged
    assert smu.query(":OUTP?") == "1"


def test_other_settings_of_the_2400_in_long_and_default_forms():
    library = _library()
    smu = pyvisa.ResourceManager(library).open_resource("GPIB0::24::INSTR", **SMU_TERM)
    smu.write(":SOURce:FUNCtion CURRent")
    smu.write(":SOUR:CURR:LEV:IMM:AMPL 0.002")
    smu.write(":SENS:VOLT:PROT:LEV 6")
    assert smu.query(":SOUR:FUNC?") == "CURR"
    assert float(smu.query(":SOURCE:CURRENT?")) == pytest.approx(2e-3)
    assert float(smu.query(":VOLT:PROT?")) == pytest.approx(6)  # [:SENSe] left out
    smu.write(":OUTP ON")
    # The world sees the output switched by the short form: the LED conducts.
    reading = [float(x) for x in smu.query(":read?").split(",")]
    assert reading[1] == pytest.approx(2e-3, rel=0.05)


def test_6487_source_state_spellings():
    library = SimBenchLibrary(instruments={"GPIB0::22::INSTR": "keithley6487"})
    pico = pyvisa.ResourceManager(library).open_resource("GPIB0::22::INSTR", **SMU_TERM)
    for setting, state in [("SOUR:VOLT:STAT 1", "ON"), (":SOURce:VOLTage:STATe OFF", "OFF")]:
        pico.write(setting)
        assert pico.query("SOUR:VOLT:STAT?") == state
        assert pico.query(":source:voltage:state?") == state
    assert pico.query("SYST:ERR?").startswith("0,")


def _obis(laser, query: str) -> str:
    value = laser.query(query)
    assert laser.read() == "OK"
    return value


def test_obis_emission_in_long_and_short_forms():
    library = _library()
    laser = pyvisa.ResourceManager(library).open_resource("ASRL1::INSTR", **OBIS_TERM)
    assert _obis(laser, "SOUR:AM:STAT?") == "OFF"
    laser.write("SOURce:AM:STATe ON")
    assert laser.read() == "OK"
    assert [_obis(laser, q) for q in ("SOUR:AM:STAT?", "source:am:state?")] == ["ON", "ON"]
    laser.write("sour:am:stat 0")
    assert laser.read() == "OK"
    assert _obis(laser, "SOURce:AM:STATe?") == "OFF"
    # No default nodes on the OBIS: the output power and the setpoint stay two queries.
    laser.write("SOUR:POW:LEV:IMM:AMPL 0.02")
    assert laser.read() == "OK"
    assert float(_obis(laser, "SOURce:POWer:LEVel:IMMediate:AMPLitude?")) == pytest.approx(0.02)
    assert float(_obis(laser, "SOUR:POW:LEV?")) == 0.0  # emission is off


def test_spellings_through_a_served_socket():
    with serve(sim_bench()) as served:
        manager = pyvisa.ResourceManager("@py")
        smu = manager.open_resource(served.resources["source_meter"], **SMU_TERM)
        laser = manager.open_resource(served.resources["laser"], **OBIS_TERM)
        try:
            smu.timeout = laser.timeout = 2000
            smu.write(":OUTP ON")
            assert [smu.query(q) for q in OUTPUT_QUERIES] == ["1"] * len(OUTPUT_QUERIES)
            smu.write(":OUTP:STAT 0")
            assert smu.query(":OUTP?") == "0"
            laser.write("SOURce:AM:STATe ON")
            assert laser.read() == "OK"
            assert _obis(laser, "SOUR:AM:STAT?") == "ON"
            laser.write("SOUR:AM:STAT OFF")
            assert laser.read() == "OK"
            assert _obis(laser, "sour:am:stat?") == "OFF"
        finally:
            smu.close()
            laser.close()
