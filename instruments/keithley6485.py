"""Keithley 6485/6487 picoammeter driver: reads the photodiode current facing the LED.

No pymeasure driver exists for these models. ``READ?`` answers
``reading,timestamp,status`` once ``FORM:ELEM READ,TIME,STAT`` is selected; an
overflowed reading is reported as 9.9e37 (6485 reference manual, "Data elements").
"""

from __future__ import annotations

import logging

from perovlab_daq.instruments._common import (
    BOOL_ON_OFF,
    OVERFLOW,
    LeanQueryMixin,
    PhotodetectorReading,
    ScpiDriver,
    parse_float,
    set_current_range,
)
from pymeasure.instruments import Instrument
from pymeasure.instruments.validators import strict_discrete_set, strict_range

log = logging.getLogger(__name__)


class Keithley6485(LeanQueryMixin, ScpiDriver):
    """Keithley 6485 picoammeter (SCPI over GPIB/RS-232) with the photodetector facade.

    Constructed as every bench driver: ``(adapter, name=None, **kwargs)``, see
    :class:`~instruments._common.BenchDriverMixin`.
    """

    DEFAULT_NAME = "Keithley 6485 Picoammeter"
    SNAPSHOT = {
        "identity": "identity",
        "nplc": "nplc",
        "current_range_a": "current_range",
        "current_range_auto": "current_range_auto_enabled",
        "zero_check": "zero_check_enabled",
    }
    SHUTDOWN_STEPS = (("zero check on", "zero_check_enabled", True),)

    zero_check_enabled = Instrument.control(
        "SYST:ZCH?",
        "SYST:ZCH %s",
        """Control whether zero check is on (bool); the input is shunted while it is on.""",
        **BOOL_ON_OFF,
    )

    current_range_auto_enabled = Instrument.control(
        "CURR:RANG:AUTO?",
        "CURR:RANG:AUTO %s",
        """Control whether current auto-range is on (bool).""",
        **BOOL_ON_OFF,
    )

    current_range = Instrument.control(
        "CURR:RANG?",
        "CURR:RANG %g",
        """Control the current range in A (float strictly from 0 to 0.021); setting it
        switches auto-range off.""",
        validator=strict_range,
        values=[0, 0.021],
    )

    nplc = Instrument.control(
        "CURR:NPLC?",
        "CURR:NPLC %g",
        """Control the integration time in power-line cycles (float strictly from 0.01 to 50).""",
        validator=strict_range,
        values=[0.01, 50],
    )

    data_elements = Instrument.control(
        "FORM:ELEM?",
        "FORM:ELEM %s",
        """Control the elements READ? returns (str, strictly 'READ,TIME,STAT').""",
        validator=strict_discrete_set,
        values=["READ,TIME,STAT"],
        get_process=lambda v: v if isinstance(v, str) else ",".join(v),
        separator="|",
    )

    def configure(self, nplc: float = 1.0, current_range_a: float | None = None) -> None:
        """Prepare current readings: elements, NPLC, range, zero check off.

        Parameters
        ----------
        nplc : float
            Integration time in power-line cycles (0.01 to 50).
        current_range_a : float or None
            Fixed range in A (up to 0.021), or None for auto-range.
        """
        self.data_elements = "READ,TIME,STAT"
        self.nplc = nplc
        set_current_range(self, current_range_a)
        self.zero_check_enabled = False

    def read_current(self) -> PhotodetectorReading:
        """Trigger and read one current with ``READ?``.

        Returns
        -------
        PhotodetectorReading
            Current in A (NaN on overflow) and the overflow flag.

        Raises
        ------
        ValueError
            If the reply holds no number.
        """
        # Called at every point: one query through the adapter (LeanQueryMixin).
        reply = self.query_reply("READ?")
        first = reply.strip().split(",", 1)[0]
        if not first:
            raise ValueError(f"{self.name}: empty READ? reply")
        value = parse_float(first)
        overflow = abs(value) >= OVERFLOW
        return PhotodetectorReading(
            current_a=float("nan") if overflow else value, overflow=overflow
        )


class Keithley6487(Keithley6485):
    """Keithley 6487 picoammeter/voltage source: a 6485 plus a ±505 V bias source.

    Constructed as every bench driver: ``(adapter, name=None, **kwargs)``, see
    :class:`~instruments._common.BenchDriverMixin`.
    """

    DEFAULT_NAME = "Keithley 6487 Picoammeter"
    SHUTDOWN_STEPS = (("source off", "source_enabled", False), *Keithley6485.SHUTDOWN_STEPS)

    source_voltage = Instrument.control(
        "SOUR:VOLT?",
        "SOUR:VOLT %g",
        """Control the bias voltage in V (float strictly from -505 to 505).""",
        validator=strict_range,
        values=[-505, 505],
    )

    source_enabled = Instrument.control(
        "SOUR:VOLT:STAT?",
        "SOUR:VOLT:STAT %s",
        """Control whether the bias source output is on (bool).""",
        **BOOL_ON_OFF,
    )
