"""Personalities of a simulated Keithley 2600 (TSP): one SMU drives the channel's LED.

In a rack each channel has its own simulated library and world, so a 2602B whose
``smua`` is channel 1's source meter and whose ``smub`` is channel 2's is simulated as
two instances of the instrument, one per channel: in each, the SMU of that channel
(``SMU_NAME``) drives the world, and the other SMU reads zeros. ``print(smuX.measure.iv())``
answers current, tab, voltage; ``print(smuX.source.compliance)`` answers ``true`` or
``false``. Kept beside :mod:`perovlab_daq.sim.personalities` so that module's SCPI
matching is untouched.
"""

from __future__ import annotations

import logging
from typing import ClassVar

from perovlab_daq.sim.personalities import Personality

log = logging.getLogger(__name__)


class TspSmuPersonality(Personality):
    """Keithley 2600 on the LED through ``smua``: setters -> ``world.set_drive``."""

    SMU_NAME: ClassVar[str] = "smua"

    def _prop(self, key: str) -> float:
        return float(self.prop(f"{self.SMU_NAME}_{key}"))

    def sync_world(self) -> None:  # noqa: D102 - documented on the base class
        if int(self._prop("source_func")) == 1:
            mode, level, limit = "VOLT", self._prop("source_levelv"), self._prop("source_limiti")
        else:
            mode, level, limit = "CURR", self._prop("source_leveli"), self._prop("source_limitv")
        output = bool(int(self._prop("source_output")))
        self.world.set_drive(mode, level, abs(limit), output)

    def dynamic_reply(self, text: str) -> str | None:  # noqa: D102
        if text == f"print({self.SMU_NAME}.measure.iv())":
            reading = self.world.smu_reading()
            return f"{reading.current_a:.6e}\t{reading.voltage_v:.6e}"
        if text == f"print({self.SMU_NAME}.source.compliance)":
            return "true" if self.world.smu_reading().in_compliance else "false"
        return None


class TspSmuBPersonality(TspSmuPersonality):
    """Keithley 2600 on the LED through ``smub``."""

    SMU_NAME: ClassVar[str] = "smub"
