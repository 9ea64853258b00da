"""Keithley 6485/6487 picoammeter driver: reads the photodiode current facing the LED.

No pymeasure driver exists for these models. ``READ?`` answers
``reading,timestamp,status`` once ``FORM:ELEM READ,TIME,STAT`` is selected; an
overflowed reading is reported as 9.9e37 (6485 reference manual, "Data elements").
"""

from __future__ import annotations

import logging
from typing import Any

from pymeasure.instruments import Instrument, SCPIMixin
from pymeasure.instruments.validators import strict_discrete_set, strict_range

from instruments._common import (
    OVERFLOW,
    LeanQueryMixin,
    PhotodetectorReading,
    StrictRepliesMixin,
    parse_float,
    shutdown_step,
)

log = logging.getLogger(__name__)


def _on_off(value: str) -> str:
    """Map the SCPI boolean reply ``1``/``0`` to ``ON``/``OFF`` (and keep ``ON``/``OFF``)."""
    text = str(value).strip()
    return {"1": "ON", "0": "OFF"}.get(text, text)


class Keithley6485(LeanQueryMixin, StrictRepliesMixin, SCPIMixin, Instrument):
    """Keithley 6485 picoammeter (SCPI over GPIB/RS-232) with the photodetector facade.

    Parameters
    ----------
    adapter : str or pymeasure Adapter
        VISA resource name or adapter.
    name : str
        Human-readable name used in logs.
    **kwargs
        Passed on to the adapter.
    """

    def __init__(self, adapter: Any, name: str = "Keithley 6485 Picoammeter", **kwargs: Any):
        kwargs.setdefault("read_termination", "\n")
        kwargs.setdefault("write_termination", "\n")
        kwargs.setdefault("timeout", 5000)
        super().__init__(adapter, name, **kwargs)

    zero_check_enabled = Instrument.control(
        "SYST:ZCH?",
        "SYST:ZCH %s",
        """Control whether zero check is on (bool); the input is shunted while it is on.""",
        validator=strict_discrete_set,
        values={True: "ON", False: "OFF"},
        map_values=True,
        cast=str,
        get_process=_on_off,
    )

    current_range = Instrument.control(
        "CURR:RANG?",
        "CURR:RANG %g",
        """Control the current range in A (float strictly from 0 to 0.021); setting it
        switches auto-range off.""",
        validator=strict_range,
        values=[0, 0.021],
    )

    current_range_auto_enabled = Instrument.control(
        "CURR:RANG:AUTO?",
        "CURR:RANG:AUTO %s",
        """Control whether current auto-range is on (bool).""",
        validator=strict_discrete_set,
        values={True: "ON", False: "OFF"},
        map_values=True,
        cast=str,
        get_process=_on_off,
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
        if current_range_a is None:
            self.current_range_auto_enabled = True
        else:
            self.current_range = current_range_a
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

    @property
    def identity(self) -> str:
        """Get the ``*IDN?`` answer (str)."""
        return str(self.id).strip()

    def snapshot(self) -> dict[str, Any]:
        """Return the settings worth recording with every run.

        Returns
        -------
        dict
            Identity, NPLC, range, auto-range and zero-check state.
        """
        return {
            "identity": self.identity,
            "nplc": self.nplc,
            "current_range_a": self.current_range,
            "current_range_auto": self.current_range_auto_enabled,
            "zero_check": self.zero_check_enabled,
        }

    def shutdown(self) -> None:
        """Put the input under zero check; never raises (failures are logged)."""
        shutdown_step(self.name, "zero check on", lambda: setattr(self, "zero_check_enabled", True))
        self.isShutdown = True


class Keithley6487(Keithley6485):
    """Keithley 6487 picoammeter/voltage source: a 6485 plus a ±505 V bias source.

    Parameters
    ----------
    adapter : str or pymeasure Adapter
        VISA resource name or adapter.
    name : str
        Human-readable name used in logs.
    **kwargs
        Passed on to the adapter.
    """

    def __init__(self, adapter: Any, name: str = "Keithley 6487 Picoammeter", **kwargs: Any):
        super().__init__(adapter, name, **kwargs)

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
        validator=strict_discrete_set,
        values={True: "ON", False: "OFF"},
        map_values=True,
        cast=str,
        get_process=_on_off,
    )

    def shutdown(self) -> None:
        """Switch the bias source off and zero check on; never raises."""
        shutdown_step(self.name, "source off", lambda: setattr(self, "source_enabled", False))
        super().shutdown()
