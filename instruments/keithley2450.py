"""Keithley 2450 SourceMeter driver in its SCPI command set (LED drive, alternative to the 2400).

pymeasure's ``Keithley2450`` reads every quantity with its own ``:READ?``; this driver
takes source value, reading and time from one buffer read
(``:READ? "defbuffer1", SOUR, READ, REL``) and the compliance flag from the limit-trip
query (2450 reference manual, ``:SOURce:VOLTage:ILIMit:TRIPped?``).
"""

from __future__ import annotations

import logging

from perovlab_daq.instruments._common import (
    COMPLIANCE_BIT,
    SMU_OUTPUT,
    SMU_SOURCE_CURRENT,
    SMU_SOURCE_VOLTAGE,
    ScpiDriver,
    SourceMeterFacadeMixin,
    SourceMeterReading,
)
from pymeasure.instruments import Instrument
from pymeasure.instruments.validators import strict_discrete_set, strict_range

log = logging.getLogger(__name__)

READ_COMMAND = ':READ? "defbuffer1", SOUR, READ, REL'
#: Source mode -> the function measured while sourcing it.
SENSE_OF_SOURCE = {"voltage": "CURR", "current": "VOLT"}


class Keithley2450(SourceMeterFacadeMixin, ScpiDriver):
    """Keithley 2450 SourceMeter (SCPI command set) with the bench source-meter facade.

    Constructed as every bench driver: ``(adapter, name=None, **kwargs)``, see
    :class:`~instruments._common.BenchDriverMixin`.
    """

    DEFAULT_NAME = "Keithley 2450 SourceMeter"

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

    source_voltage = Instrument.control(":SOUR:VOLT?", ":SOUR:VOLT %g", **SMU_SOURCE_VOLTAGE)
    source_current = Instrument.control(":SOUR:CURR?", ":SOUR:CURR %g", **SMU_SOURCE_CURRENT)
    output_enabled = Instrument.control(":OUTP?", ":OUTP %d", **SMU_OUTPUT)

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

    def _select_sense(self, mode: str) -> None:
        self.sense_function = SENSE_OF_SOURCE[mode]

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
