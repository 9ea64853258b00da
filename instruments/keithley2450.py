"""Keithley 2450 SourceMeter driver in its SCPI command set (LED drive, alternative to the 2400).

pymeasure's ``Keithley2450`` reads every quantity with its own ``:READ?``; this driver
takes source value, reading and time from one buffer read
(``:READ? "defbuffer1", SOUR, READ, REL``) and the compliance flag from the limit-trip
query (2450 reference manual, ``:SOURce:VOLTage:ILIMit:TRIPped?``).
"""

from __future__ import annotations

import logging
from typing import Any

from pymeasure.instruments import Instrument, SCPIMixin
from pymeasure.instruments.validators import strict_discrete_set, strict_range

from instruments._common import (
    COMPLIANCE_BIT,
    SourceMeterFacadeMixin,
    SourceMeterReading,
    StrictRepliesMixin,
)

log = logging.getLogger(__name__)

READ_COMMAND = ':READ? "defbuffer1", SOUR, READ, REL'


class Keithley2450(SourceMeterFacadeMixin, StrictRepliesMixin, SCPIMixin, Instrument):
    """Keithley 2450 SourceMeter (SCPI command set) with the bench source-meter facade.

    Parameters
    ----------
    adapter : str or pymeasure Adapter
        VISA resource name or adapter.
    name : str
        Human-readable name used in logs.
    **kwargs
        Passed on to the adapter.
    """

    def __init__(self, adapter: Any, name: str = "Keithley 2450 SourceMeter", **kwargs: Any):
        kwargs.setdefault("read_termination", "\n")
        kwargs.setdefault("write_termination", "\n")
        kwargs.setdefault("timeout", 5000)
        super().__init__(adapter, name, **kwargs)

    source_mode = Instrument.control(
        ":SOUR:FUNC?",
        ":SOUR:FUNC %s",
        """Control the source function (str strictly 'voltage' or 'current').""",
        validator=strict_discrete_set,
        values={"voltage": "VOLT", "current": "CURR"},
        map_values=True,
    )

    sense_function = Instrument.control(
        ":SENS:FUNC?",
        ':SENS:FUNC "%s"',
        """Control the measured function (str strictly 'CURR' or 'VOLT').""",
        validator=strict_discrete_set,
        values=["CURR", "VOLT"],
        get_process=lambda v: str(v).strip('"').split(":")[0],
    )

    source_voltage = Instrument.control(
        ":SOUR:VOLT?",
        ":SOUR:VOLT %g",
        """Control the source voltage in V (float strictly from -210 to 210).""",
        validator=strict_range,
        values=[-210, 210],
    )

    source_current = Instrument.control(
        ":SOUR:CURR?",
        ":SOUR:CURR %g",
        """Control the source current in A (float strictly from -1.05 to 1.05).""",
        validator=strict_range,
        values=[-1.05, 1.05],
    )

    compliance_current = Instrument.control(
        ":SOUR:VOLT:ILIM?",
        ":SOUR:VOLT:ILIM %g",
        """Control the current limit while sourcing voltage in A (float strictly from
        1e-9 to 1.05).""",
        validator=strict_range,
        values=[1e-9, 1.05],
    )

    compliance_voltage = Instrument.control(
        ":SOUR:CURR:VLIM?",
        ":SOUR:CURR:VLIM %g",
        """Control the voltage limit while sourcing current in V (float strictly from
        0.02 to 210).""",
        validator=strict_range,
        values=[0.02, 210],
    )

    current_nplc = Instrument.control(
        ":SENS:CURR:NPLC?",
        ":SENS:CURR:NPLC %g",
        """Control the current integration time in power-line cycles (float strictly from
        0.01 to 10).""",
        validator=strict_range,
        values=[0.01, 10],
    )

    voltage_nplc = Instrument.control(
        ":SENS:VOLT:NPLC?",
        ":SENS:VOLT:NPLC %g",
        """Control the voltage integration time in power-line cycles (float strictly from
        0.01 to 10).""",
        validator=strict_range,
        values=[0.01, 10],
    )

    output_enabled = Instrument.control(
        ":OUTP?",
        ":OUTP %d",
        """Control whether the source output is on (bool).""",
        validator=strict_discrete_set,
        values={True: 1, False: 0},
        map_values=True,
    )

    def apply_voltage_source(self, compliance_current_a: float, nplc: float = 1.0) -> None:
        """Configure a voltage source that measures current.

        Parameters
        ----------
        compliance_current_a : float
            Current limit in A (1e-9 to 1.05).
        nplc : float
            Integration time in power-line cycles (0.01 to 10).
        """
        self.source_mode = "voltage"
        self.sense_function = "CURR"
        self.compliance_current = compliance_current_a
        self.current_nplc = nplc
        self._mode = "voltage"

    def apply_current_source(self, compliance_voltage_v: float, nplc: float = 1.0) -> None:
        """Configure a current source that measures voltage.

        Parameters
        ----------
        compliance_voltage_v : float
            Voltage limit in V (0.02 to 210).
        nplc : float
            Integration time in power-line cycles (0.01 to 10).
        """
        self.source_mode = "current"
        self.sense_function = "VOLT"
        self.compliance_voltage = compliance_voltage_v
        self.voltage_nplc = nplc
        self._mode = "current"

    def read_all(self) -> SourceMeterReading:
        """Read source value, measurement and time with one ``:READ?``, then the limit trip.

        Returns
        -------
        SourceMeterReading
            Voltage, current, relative time, a 2400-style status word (bit 3 set when the
            limit tripped) and the compliance flag.
        """
        mode = getattr(self, "_mode", None) or self.source_mode
        values = self.values(READ_COMMAND)
        if len(values) != 3:
            raise ValueError(f"{self.name}: :READ? returned {values!r}, expected 3 numbers")
        source, reading, rel_time = (float(v) for v in values)
        trip_query = ":SOUR:VOLT:ILIM:TRIP?" if mode == "voltage" else ":SOUR:CURR:VLIM:TRIP?"
        tripped = int(float(self.ask(trip_query))) == 1
        voltage, current = (source, reading) if mode == "voltage" else (reading, source)
        return SourceMeterReading(
            voltage_v=voltage,
            current_a=current,
            time_s=rel_time,
            status=COMPLIANCE_BIT if tripped else 0,
            in_compliance=tripped,
        )

    @property
    def identity(self) -> str:
        """Get the ``*IDN?`` answer (str)."""
        return str(self.id).strip()
