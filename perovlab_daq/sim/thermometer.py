"""Personality of the simulated thermometer (Keithley 2000 reading a Pt100 on the device).

``:READ?`` answers the connected pixel's temperature from the world
(:meth:`perovlab_daq.sim.world.World.device_temperature_c`, self-heating of
:mod:`perovlab_daq.sim.thermal`) in the unit selected with ``:UNIT:TEMP``, when the
function is ``TEMP``; in any other function it reads 0 (no voltage on the RTD leads).
Kept beside :mod:`perovlab_daq.sim.personalities` so that module's SCPI matching is
untouched.
"""

from __future__ import annotations

import logging

from perovlab_daq.sim.personalities import Personality

log = logging.getLogger(__name__)


class ThermometerPersonality(Personality):
    """Keithley 2000 on a Pt100: ``:READ?`` -> ``world.device_temperature_c`` (C, F or K)."""

    def dynamic_reply(self, text: str) -> str | None:  # noqa: D102 - documented on the base class
        if text != ":READ?":
            return None
        if str(self.prop("sense_function")) != "TEMP":
            return f"{0.0:+.6E}"
        celsius = float(self.world.device_temperature_c())
        unit = str(self.prop("temperature_unit"))
        value = {"C": celsius, "K": celsius + 273.15, "F": celsius * 9 / 5 + 32}[unit]
        return f"{value:+.6E}"
