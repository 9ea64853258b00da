"""The simulated laser path: laser, interlock, ND filter wheel and where the film sits.

`LaserPath` holds what the OBIS, the filter wheel and the sample stage are set to and
answers how much light leaves the laser, passes the filter and excites the film in each
sample position (the PL stage or the de Mello sphere configurations A, B, C).
"""

from __future__ import annotations

import logging
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

    Attributes
    ----------
    setpoint_w, emission_on, interlock_closed
        Laser power setpoint (clipped to the maximum), emission and interlock state.
    filter_position
        Filter-wheel position (1-based).
    sample_position
        "stage", "A", "B" or "C".
    """

    def __init__(self, setup: BenchSetup) -> None:
        self.setup = setup
        self.wavelength_nm: float = setup.laser_wavelength_nm
        self.max_power_w: float = setup.laser_max_power_w
        self.min_power_w: float = setup.laser_min_power_w
        self.filter_optical_densities: tuple[float, ...] = setup.filter_optical_densities
        self.setpoint_w = 0.0
        self.emission_on = False
        self.interlock_closed = True
        self.filter_position = 1
        self.sample_position: SamplePosition = "stage"

    def output_w(self) -> float:
        """Return the noise-free emitted power (W): 0 when off or with the interlock open."""
        if not (self.emission_on and self.interlock_closed):
            return 0.0
        if self.setpoint_w <= 0.0:
            return 0.0
        # The OBIS does not regulate below its minimum power.
        return max(self.setpoint_w, self.min_power_w)

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
