"""Keithley 2000 multimeter as the thermometer of a lifetime channel: a Pt100 read 4-wire.

Built on pymeasure's :class:`pymeasure.instruments.keithley.Keithley2000` and narrowed to
the thermometer facade (``configure_rtd``, ``read_temperature_c``). The 2000 measures a
four-wire RTD with ``:SENS:FUNC 'TEMP'``, ``:SENS:TEMP:TRAN FRTD`` and
``:SENS:TEMP:FRTD:TYPE PT100``; ``:READ?`` then answers the temperature in the unit of
``:UNIT:TEMP`` (here C). An overflowed (open sensor) reading is 9.9e37. A DMM6500 in its
2000 command set, or a TEC controller's sensor with a driver of the same facade, plays the
same role.
"""

from __future__ import annotations

import logging
import math
import warnings

from perovlab_daq.instruments._common import (
    OVERFLOW,
    BenchDriverMixin,
    LeanQueryMixin,
    StrictRepliesMixin,
    parse_float,
)
from pymeasure.instruments import Instrument
from pymeasure.instruments.keithley import Keithley2000 as _PymeasureKeithley2000
from pymeasure.instruments.validators import strict_discrete_set, strict_range

log = logging.getLogger(__name__)

# pymeasure marks its 2000 as "SCPI unknown" and warns on every construction; the 2000 is
# a SCPI instrument (reference manual, section 5) and this driver declares its commands.
warnings.filterwarnings(
    "ignore",
    message="It is not known whether this device support SCPI",
    category=FutureWarning,
)


class Keithley2000(BenchDriverMixin, LeanQueryMixin, StrictRepliesMixin, _PymeasureKeithley2000):
    """Keithley 2000 multimeter reading a Pt100 (4-wire RTD), with the thermometer facade.

    Constructed as every bench driver: ``(adapter, name=None, **kwargs)``, see
    :class:`~instruments._common.BenchDriverMixin`.

    Examples
    --------
    >>> dmm = Keithley2000("GPIB3::1::INSTR", visa_library=lib)  # doctest: +SKIP
    >>> dmm.configure_rtd(nplc=1)  # doctest: +SKIP
    >>> dmm.read_temperature_c()  # doctest: +SKIP
    """

    DEFAULT_NAME = "Keithley 2000 Multimeter"
    SNAPSHOT = {
        "identity": "identity",
        "sense_function": "sense_function",
        "transducer": "temperature_transducer",
        "rtd_type": "rtd_type",
        "temperature_unit": "temperature_unit",
        "nplc": "temperature_nplc",
    }

    sense_function = Instrument.control(
        ":SENS:FUNC?",
        ":SENS:FUNC '%s'",
        """Control the measured function (str strictly 'TEMP' or 'VOLT:DC').""",
        validator=strict_discrete_set,
        values=["TEMP", "VOLT:DC"],
        cast=str,
        get_process=lambda v: str(v).strip().strip("\"'"),
    )

    temperature_transducer = Instrument.control(
        ":SENS:TEMP:TRAN?",
        ":SENS:TEMP:TRAN %s",
        """Control the temperature transducer (str strictly 'FRTD' (4-wire RTD), 'RTD' or 'TC').""",
        validator=strict_discrete_set,
        values=["FRTD", "RTD", "TC"],
        cast=str,
    )

    rtd_type = Instrument.control(
        ":SENS:TEMP:FRTD:TYPE?",
        ":SENS:TEMP:FRTD:TYPE %s",
        """Control the 4-wire RTD type (str strictly 'PT100', 'D100', 'F100', 'PT3916'
        or 'PT385').""",
        validator=strict_discrete_set,
        values=["PT100", "D100", "F100", "PT3916", "PT385"],
        cast=str,
    )

    temperature_unit = Instrument.control(
        ":UNIT:TEMP?",
        ":UNIT:TEMP %s",
        """Control the temperature unit (str strictly 'C', 'F' or 'K').""",
        validator=strict_discrete_set,
        values=["C", "F", "K"],
        cast=str,
    )

    temperature_nplc = Instrument.control(
        ":SENS:TEMP:NPLC?",
        ":SENS:TEMP:NPLC %g",
        """Control the temperature integration time in power-line cycles (float strictly
        from 0.01 to 10).""",
        validator=strict_range,
        values=[0.01, 10],
    )

    def configure_rtd(self, nplc: float = 1.0) -> None:
        """Select a Pt100 read 4-wire, in degrees Celsius.

        Parameters
        ----------
        nplc : float
            Integration time in power-line cycles (0.01 to 10).
        """
        self.sense_function = "TEMP"
        self.temperature_transducer = "FRTD"
        self.rtd_type = "PT100"
        self.temperature_unit = "C"
        self.temperature_nplc = nplc

    def read_temperature_c(self) -> float:
        """Trigger and read one temperature with ``:READ?``.

        Returns
        -------
        float
            Temperature in degrees Celsius; NaN when the reading overflowed (open sensor).

        Raises
        ------
        ValueError
            If the reply holds no number.
        """
        reply = self.query_reply(":READ?").strip().split(",", 1)[0]
        if not reply:
            raise ValueError(f"{self.name}: empty :READ? reply")
        value = parse_float(reply)
        return math.nan if abs(value) >= OVERFLOW else value
