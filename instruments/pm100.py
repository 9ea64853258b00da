"""Thorlabs PM100D/PM100USB optical power meter driver (laser power behind the filter wheel).

SCPI over USBTMC (PM100D/PM100USB "Write your own application" command reference):
``MEAS:POW?`` in W, ``SENS:CORR:WAV`` in nm, ``SENS:AVER:COUN`` samples (about 3 ms
each), ``SYST:SENS:IDN?`` for the connected sensor head.
"""

from __future__ import annotations

import logging
from typing import Any

from pymeasure.instruments import Instrument, SCPIMixin
from pymeasure.instruments.validators import strict_discrete_set, strict_range

from instruments._common import StrictRepliesMixin

log = logging.getLogger(__name__)


class ThorlabsPM100(StrictRepliesMixin, SCPIMixin, Instrument):
    """Thorlabs PM100D / PM100USB console with the bench power-meter facade.

    Parameters
    ----------
    adapter : str or pymeasure Adapter
        VISA resource name (``USB0::0x1313::0x8078::<serial>::INSTR``) or adapter.
    name : str
        Human-readable name used in logs.
    **kwargs
        Passed on to the adapter.
    """

    def __init__(self, adapter: Any, name: str = "Thorlabs PM100 power meter", **kwargs: Any):
        kwargs.setdefault("read_termination", "\n")
        kwargs.setdefault("write_termination", "\n")
        kwargs.setdefault("timeout", 5000)
        super().__init__(adapter, name, **kwargs)

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
        validator=strict_discrete_set,
        values={True: 1, False: 0},
        map_values=True,
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

    @property
    def identity(self) -> str:
        """Get the ``*IDN?`` answer (str)."""
        return str(self.id).strip()

    def snapshot(self) -> dict[str, Any]:
        """Return the settings worth recording with every run.

        Returns
        -------
        dict
            Identity, sensor, wavelength, averaging and auto-range.
        """
        return {
            "identity": self.identity,
            "sensor_id": self.sensor_id,
            "wavelength_nm": self.wavelength_nm,
            "averaging_count": self.averaging_count,
            "power_range_auto": self.power_range_auto_enabled,
        }

    def shutdown(self) -> None:
        """Mark the meter shut down (it has no output to switch off); never raises."""
        self.isShutdown = True
