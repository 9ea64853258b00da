"""Keithley 2400 SourceMeter driver for the LED drive (and, at 0 V, a photodiode readout).

Built on pymeasure's reworked :class:`pymeasure.instruments.keithley.Keithley2400`
(protocol-tested upstream) and narrowed to the facade of ``docs/architecture.md`` §2.
Only commands without a trailing ``;`` are used: the 2400 (and pyvisa-sim) treat the
empty command after it as a command error.
"""

from __future__ import annotations

import logging
import math

from perovlab_daq.instruments._common import (
    COMPLIANCE_BIT,
    OVERFLOW,
    SMU_OUTPUT,
    SMU_SOURCE_CURRENT,
    SMU_SOURCE_VOLTAGE,
    BenchDriverMixin,
    LeanQueryMixin,
    SourceMeterFacadeMixin,
    SourceMeterReading,
    StrictRepliesMixin,
)
from pymeasure.instruments import Instrument
from pymeasure.instruments.keithley import Keithley2400 as _PymeasureKeithley2400
from pymeasure.instruments.validators import strict_discrete_set

log = logging.getLogger(__name__)

#: ``:FORM:ELEM`` order of the 2400; ``:READ?`` answers in this order whatever is asked.
READ_ELEMENTS = ("voltage_v", "current_a", "resistance_ohm", "time_s", "status")


class Keithley2400(
    SourceMeterFacadeMixin,
    BenchDriverMixin,
    LeanQueryMixin,
    StrictRepliesMixin,
    _PymeasureKeithley2400,
):
    """Keithley 2400 SourceMeter (SCPI, GPIB/RS-232), with the bench source-meter facade.

    Constructed as every bench driver: ``(adapter, name=None, **kwargs)``, see
    :class:`~instruments._common.BenchDriverMixin`.

    Examples
    --------
    >>> smu = Keithley2400("GPIB0::24::INSTR", visa_library=lib)  # doctest: +SKIP
    >>> smu.apply_voltage_source(compliance_current_a=0.1, nplc=1)  # doctest: +SKIP
    >>> smu.source_voltage = 3.0; smu.output_enabled = True  # doctest: +SKIP
    >>> smu.read_all().current_a  # doctest: +SKIP
    """

    DEFAULT_NAME = "Keithley 2400 SourceMeter"

    def reset_data_format(self) -> None:
        """Select the ``:READ?`` elements V, I, R, time, status (the order the 2400 uses)."""
        self.write(":FORM:ELEM VOLT,CURR,RES,TIME,STAT")

    source_voltage = Instrument.control(
        ":SOURCE:VOLTAGE?", ":SOURCE:VOLTAGE %g", **SMU_SOURCE_VOLTAGE
    )
    source_current = Instrument.control(
        ":SOURCE:CURRENT?", ":SOURCE:CURRENT %g", **SMU_SOURCE_CURRENT
    )
    output_enabled = Instrument.control("OUTPUT?", "OUTPUT %d", **SMU_OUTPUT)

    sense_functions = Instrument.control(
        ":SENSE:FUNCTION:ON?",
        ":SENSE:FUNCTION:ON %s",
        """Control which functions are measured concurrently (str, strictly
        '"VOLT","CURR"' for both voltage and current).""",
        validator=strict_discrete_set,
        values=['"VOLT","CURR"'],
        get_process=lambda v: v if isinstance(v, str) else ",".join(v),
        separator="|",
    )

    def _select_sense(self, mode: str) -> None:
        # The 2400 measures voltage and current concurrently whatever it sources.
        self.sense_functions = '"VOLT","CURR"'

    def read_all(self) -> SourceMeterReading:
        """Trigger one measurement with ``:READ?`` and decode V, I, time and status.

        Returns
        -------
        SourceMeterReading
            Voltage and current (NaN where the instrument reports 9.91e37), the
            instrument timestamp, the status word and whether bit 3 (compliance) is set.

        Raises
        ------
        ValueError
            If the reply does not hold the five ``:FORM:ELEM`` elements
            (:class:`~instruments._common.GarbledReplyError` if one is not a number).
        """
        # Called at every point of a sweep: one query and a lean parse (LeanQueryMixin).
        values = self.query_numbers(":READ?")
        if len(values) != len(READ_ELEMENTS):
            raise ValueError(f"{self.name}: :READ? returned {values!r}, expected 5 numbers")
        voltage, current, _resistance, time_s, status_value = values
        status = int(status_value)
        return SourceMeterReading(
            voltage_v=math.nan if abs(voltage) >= OVERFLOW else voltage,
            current_a=math.nan if abs(current) >= OVERFLOW else current,
            time_s=time_s,
            status=status,
            in_compliance=bool(status & COMPLIANCE_BIT),
        )
