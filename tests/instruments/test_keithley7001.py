"""Keithley 7001 pixel switch: protocol (expected_protocol) and the simulated instrument."""

import pytest
from perovlab_daq.instruments.keithley7001 import Keithley7001, SwitchError, parse_channel_list
from pymeasure.test import expected_protocol

from perovlab_daq.sim.visalib import SimBenchLibrary

RESOURCE = "GPIB0::7::INSTR"


def test_select_is_break_before_make_and_verified():
    with expected_protocol(
        Keithley7001,
        [(":ROUT:OPEN ALL", None), (":ROUT:CLOS (@1!3)", None), (":ROUT:CLOS?", "(@1!3)")],
    ) as switch:
        switch.select("1!3")


def test_select_refuses_a_wrong_read_back_and_opens_all():
    with expected_protocol(
        Keithley7001,
        [
            (":ROUT:OPEN ALL", None),
            (":ROUT:CLOS (@1!3)", None),
            (":ROUT:CLOS?", "(@1!2,1!3)"),
            (":ROUT:OPEN ALL", None),
        ],
    ) as switch:
        with pytest.raises(SwitchError, match="1!2"):
            switch.select("1!3")


def test_closed_channels_and_shutdown():
    with expected_protocol(
        Keithley7001, [(":ROUT:CLOS?", "(@)"), (":ROUT:OPEN ALL", None)]
    ) as switch:
        assert switch.closed_channels == []
        switch.shutdown()


def test_bad_channel_is_refused_before_anything_is_sent():
    with expected_protocol(Keithley7001, []) as switch:
        with pytest.raises(ValueError, match="card!channel"):
            switch.close_channel("3")


def test_parse_channel_list():
    assert parse_channel_list("(@1!1, 1!4)\n") == ["1!1", "1!4"]
    with pytest.raises(SwitchError):
        parse_channel_list("1!1")


def test_shutdown_never_raises_on_a_dead_connection():
    with expected_protocol(Keithley7001, []) as switch:
        switch.adapter.write = lambda *a, **k: (_ for _ in ()).throw(OSError("gone"))
        switch.shutdown()


def test_simulated_switch_keeps_one_channel_and_logs_commands():
    library = SimBenchLibrary(None, ["keithley7001"])
    switch = Keithley7001(RESOURCE, visa_library=library)
    assert "MODEL 7001" in switch.identity
    switch.select("1!2")
    assert switch.closed_channels == ["1!2"]
    switch.select("1!5")
    assert switch.closed_channels == ["1!5"]
    switch.shutdown()
    assert switch.closed_channels == []
    log = library.command_log(RESOURCE)
    assert log.count(":ROUT:CLOS (@1!5)") == 1
    assert log.index(":ROUT:OPEN ALL", log.index(":ROUT:CLOS (@1!2)")) < log.index(
        ":ROUT:CLOS (@1!5)"
    )
    switch.write(":ROUT:CLOS (@x)")
    assert switch.next_error[0] == -100
