"""Thorlabs PM100D/PM100USB optical power meter driver (laser power behind the filter wheel).

SCPI over USBTMC (PM100D/PM100USB "Write your own application" command reference):
``MEAS:POW?`` in W, ``SENS:CORR:WAV`` in nm, ``SENS:AVER:COUN`` samples (about 3 ms
each), ``SYST:SENS:IDN?`` for the connected sensor head.
"""

from __future__ import annotations

import logging

from perovlab_daq.instruments._common import BOOL_1_0, ScpiDriver
from pymeasure.instruments import Instrument
from pymeasure.instruments.validators import strict_range

log = logging.getLogger(__name__)


class ThorlabsPM100(ScpiDriver):
    """Thorlabs PM100D / PM100USB console with the bench power-meter facade.

    Constructed as every bench driver: ``(adapter, name=None, **kwargs)``, see
    :class:`~instruments._common.BenchDriverMixin`. The resource name is
    ``USB0::0x1313::0x8078::<serial>::INSTR``.
    """

    DEFAULT_NAME = "Thorlabs PM100 power meter"
    SNAPSHOT = {
        "identity": "identity",
        "sensor_id": "sensor_id",
        "wavelength_nm": "wavelength_nm",
        "averaging_count": "averaging_count",
        "power_range_auto": "power_range_auto_enabled",
    }

    wavelength_nm = Instrument.control(
        "SENS:CORR:WAV?",
        "SENS:CORR:WAV %g",
        """Control the correction wavelength in nm (float strictly from 185 to 25000;
        the sensor head accepts a narrower band).""",
        validator=strict_range,
        values=[185, 25000],
    )

    averaging_count = Instrument.control(
        "SENS:AVER:COUN?",
        "SENS:AVER:COUN %d",
        """Control the number of samples averaged per reading (int strictly from 1 to 10000).""",
        validator=strict_range,
        values=[1, 10000],
        cast=int,
    )

    power_range_auto_enabled = Instrument.control(
        "SENS:POW:RANG:AUTO?",
        "SENS:POW:RANG:AUTO %d",
        """Control whether power auto-range is on (bool).""",
        **BOOL_1_0,
        cast=int,
    )

    power_w = Instrument.measurement(
        "MEAS:POW?",
        """Measure the optical power in W (float).""",
    )

    sensor_id = Instrument.measurement(
        "SYST:SENS:IDN?",
        """Get the sensor head identification (str: name, serial, date, type, subtype, flags).""",
        cast=str,
        maxsplit=0,
    )
