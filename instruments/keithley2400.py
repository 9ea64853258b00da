"""Keithley 2400 SourceMeter driver for the LED drive (and, at 0 V, a photodiode readout).

Built on pymeasure's reworked :class:`pymeasure.instruments.keithley.Keithley2400`
(protocol-tested upstream) and narrowed to the facade of ``docs/architecture.md`` §2.
Only commands without a trailing ``;`` are used: the 2400 (and pyvisa-sim) treat the
empty command after it as a command error.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from pymeasure.instruments import Instrument
from pymeasure.instruments.keithley import Keithley2400 as _PymeasureKeithley2400
from pymeasure.instruments.validators import strict_discrete_set, strict_range

from instruments._common import (
    COMPLIANCE_BIT,
    OVERFLOW,
    LeanQueryMixin,
    SourceMeterFacadeMixin,
    SourceMeterReading,
    StrictRepliesMixin,
)

log = logging.getLogger(__name__)

#: ``:FORM:ELEM`` order of the 2400; ``:READ?`` answers in this order whatever is asked.
READ_ELEMENTS = ("voltage_v", "current_a", "resistance_ohm", "time_s", "status")


class Keithley2400(
    SourceMeterFacadeMixin, LeanQueryMixin, StrictRepliesMixin, _PymeasureKeithley2400
):
    """Keithley 2400 SourceMeter (SCPI, GPIB/RS-232), with the bench source-meter facade.

    Parameters
    ----------
    adapter : str or pymeasure Adapter
        VISA resource name or adapter.
    name : str
        Human-readable name used in logs.
    **kwargs
        Passed on to the adapter (e.g. ``visa_library``, ``timeout``).

    Examples
    --------
    >>> smu = Keithley2400("GPIB0::24::INSTR", visa_library=lib)  # doctest: +SKIP
    >>> smu.apply_voltage_source(compliance_current_a=0.1, nplc=1)  # doctest: +SKIP
    >>> smu.source_voltage = 3.0; smu.output_enabled = True  # doctest: +SKIP
    >>> smu.read_all().current_a  # doctest: +SKIP
    """

    def __init__(self, adapter: Any, name: str = "Keithley 2400 SourceMeter", **kwargs: Any):
        kwargs.setdefault("read_termination", "\n")
        kwargs.setdefault("write_termination", "\n")
        kwargs.setdefault("timeout", 5000)
        super().__init__(adapter, name, **kwargs)

    def reset_data_format(self) -> None:
        """Select the ``:READ?`` elements V, I, R, time, status (the order the 2400 uses)."""
        self.write(":FORM:ELEM VOLT,CURR,RES,TIME,STAT")

    output_enabled = Instrument.control(
        "OUTPUT?",
        "OUTPUT %d",
        """Control whether the source output is on (bool).""",
        validator=strict_discrete_set,
        values={True: 1, False: 0},
        map_values=True,
    )

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

    source_voltage = Instrument.control(
        ":SOURCE:VOLTAGE?",
        ":SOURCE:VOLTAGE %g",
        """Control the source voltage in V (float strictly from -210 to 210).""",
        validator=strict_range,
        values=[-210, 210],
    )

    source_current = Instrument.control(
        ":SOURCE:CURRENT?",
        ":SOURCE:CURRENT %g",
        """Control the source current in A (float strictly from -1.05 to 1.05).""",
        validator=strict_range,
        values=[-1.05, 1.05],
    )

    def apply_voltage_source(self, compliance_current_a: float, nplc: float = 1.0) -> None:
        """Configure a voltage source that measures current.

        Parameters
        ----------
        compliance_current_a : float
            Current compliance in A (-1.05 to 1.05).
        nplc : float
            Integration time in power-line cycles (0.01 to 10).
        """
        self.source_mode = "voltage"
        self.sense_functions = '"VOLT","CURR"'
        self.compliance_current = compliance_current_a
        self.current_nplc = nplc

    def apply_current_source(self, compliance_voltage_v: float, nplc: float = 1.0) -> None:
        """Configure a current source that measures voltage.

        Parameters
        ----------
        compliance_voltage_v : float
            Voltage compliance in V (-210 to 210).
        nplc : float
            Integration time in power-line cycles (0.01 to 10).
        """
        self.source_mode = "current"
        self.sense_functions = '"VOLT","CURR"'
        self.compliance_voltage = compliance_voltage_v
        self.voltage_nplc = nplc

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

    @property
    def identity(self) -> str:
        """Get the ``*IDN?`` answer (str)."""
        return str(self.id).strip()
