"""The simulated laser path: laser, interlock, ND filter wheel and where the film sits.

`LaserPath` holds what the OBIS, the filter wheel and the sample stage are set to and
answers how much light leaves the laser, passes the filter and excites the film in each
sample position (the PL stage or the de Mello sphere configurations A, B, C).

The laser leaves standby as an OBIS does: with CDRH mode on, light starts
``cdrh_delay_s`` after emission is switched on, and the output then approaches the
setpoint exponentially with the time constant ``rise_time_s`` (also after a setpoint
change while emitting). Times come from the world's clock.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Literal

from perovlab_daq.sim.optics import BenchSetup

log = logging.getLogger(__name__)

SamplePosition = Literal["stage", "A", "B", "C"]
SAMPLE_POSITIONS: tuple[str, ...] = ("stage", "A", "B", "C")


class LaserPath:
    """Laser and optics between it and the film.

    Parameters
    ----------
    setup
        The bench: laser line and power range, filter optical densities, spot areas.
    clock
        Monotonic clock (s) timing the CDRH delay and the power rise.

    Attributes
    ----------
    setpoint_w, emission_on, interlock_closed
        Laser power setpoint (clipped to the maximum), emission and interlock state.
    cdrh_enabled, cdrh_delay_s, rise_time_s
        Start-up behaviour: off, 0 and 0 (light at once) until the simulated OBIS sets
        its own (CDRH on, see sim_configs/obis.yaml).
    filter_position
        Filter-wheel position (1-based).
    sample_position
        "stage", "A", "B" or "C".
    """

    def __init__(self, setup: BenchSetup, clock: Callable[[], float] = time.monotonic) -> None:
        self.setup = setup
        self._clock = clock
        self.cdrh_enabled = False
        self.cdrh_delay_s = 0.0
        self.rise_time_s = 0.0
        self._emission_on = False
        self._setpoint_w = 0.0
        self._switched_on_s = 0.0
        self._ramp_start_s = 0.0
        self._ramp_from_w = 0.0
        self.wavelength_nm: float = setup.laser_wavelength_nm
        self.max_power_w: float = setup.laser_max_power_w
        self.min_power_w: float = setup.laser_min_power_w
        self.filter_optical_densities: tuple[float, ...] = setup.filter_optical_densities
        self.interlock_closed = True
        self.filter_position = 1
        self.sample_position: SamplePosition = "stage"

    @property
    def emission_on(self) -> bool:
        """Emission state as set (light follows after the CDRH delay)."""
        return self._emission_on

    @emission_on.setter
    def emission_on(self, on: bool) -> None:
        if on and not self._emission_on:
            self._switched_on_s = self._clock()
            self._ramp_from_w = 0.0
            self._ramp_start_s = self._switched_on_s
        self._emission_on = bool(on)

    @property
    def setpoint_w(self) -> float:
        """Power setpoint (W); a change while emitting ramps from the present output."""
        return self._setpoint_w

    @setpoint_w.setter
    def setpoint_w(self, value: float) -> None:
        if value != self._setpoint_w and self._emission_on:
            self._ramp_from_w = self.output_w()
            self._ramp_start_s = self._clock()
        self._setpoint_w = float(value)

    def light_starts_s(self) -> float:
        """Return the clock time at which light starts (switch-on time + CDRH delay)."""
        return self._switched_on_s + (self.cdrh_delay_s if self.cdrh_enabled else 0.0)

    def output_w(self) -> float:
        """Return the noise-free emitted power (W), rising towards the regulated setpoint.

        0 when emission is off, with the interlock open and during the CDRH delay.
        """
        if not (self._emission_on and self.interlock_closed):
            return 0.0
        now = self._clock()
        light_s = self.light_starts_s()
        if now < light_s:
            return 0.0
        # The OBIS does not regulate below its minimum power.
        target = max(self._setpoint_w, self.min_power_w) if self._setpoint_w > 0.0 else 0.0
        start_s = max(light_s, self._ramp_start_s)
        start_w = self._ramp_from_w if self._ramp_start_s > light_s else 0.0
        if self.rise_time_s <= 0.0:
            return target
        return target + (start_w - target) * math.exp(-(now - start_s) / self.rise_time_s)

    def power_after_filter_w(self) -> float:
        """Return the power (W) that leaves the filter wheel."""
        optical_density = self.filter_optical_densities[self.filter_position - 1]
        return self.output_w() * 10.0 ** (-optical_density)

    def beam_density_w_cm2(self) -> float:
        """Excitation density that sets the PLQY: beam power over the spot it would make."""
        power_w = self.power_after_filter_w()
        if self.sample_position == "stage":
            return power_w / self.setup.laser_spot_area_cm2
        return power_w / self.setup.sphere_spot_area_cm2

    def film_dose_density_w_cm2(self) -> float:
        """Excitation density that drives photobleaching and segregation."""
        if self.sample_position in ("stage", "C"):
            return self.beam_density_w_cm2()
        if self.sample_position == "B":
            # Diffuse sphere light only: weak.
            return self.beam_density_w_cm2() * self.setup.sphere_diffuse_absorption_ratio
        return 0.0
