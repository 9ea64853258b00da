"""What the simulated world hands back: instrument readings and noise-free truth records.

`World` returns these; they are plain records (no physics). `LedTruth` and `FilmTruth` are
for tests and documentation only: procedures read the instruments, never the truth.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import NamedTuple

log = logging.getLogger(__name__)


class SmuReading(NamedTuple):
    """One source-meter reading (a ``:READ?``)."""

    voltage_v: float
    current_a: float
    in_compliance: bool


class LaserSetting(NamedTuple):
    """What the laser is set to (arguments of `World.set_laser`)."""

    power_setpoint_w: float
    emission_on: bool


@dataclass(frozen=True)
class LedTruth:
    """Noise-free state of the LED pixel, for tests and documentation (not for procedures).

    Attributes
    ----------
    voltage_v, current_a
        Terminal voltage and total current.
    in_compliance
        Whether the source meter limits the drive.
    current_density_ma_cm2
        Total current density.
    eqe
        Photons out of the front per electron of the total current.
    luminance_cd_m2
        Luminance of the pixel (Lambertian), from the EL spectrum and V(lambda).
    optical_power_w
        Forward optical power.
    el_peak_nm
        Peak of the (main) EL band.
    relative_output
        Ageing factor on the photon output (1 fresh; includes initial brightening).
    reduced_age
        Reduced ageing time u (T50 at constant current is reached at the preset's u50).
    voltage_rise_v
        Ageing rise of the junction voltage.
    """

    voltage_v: float
    current_a: float
    in_compliance: bool
    current_density_ma_cm2: float
    eqe: float
    luminance_cd_m2: float
    optical_power_w: float
    el_peak_nm: float
    relative_output: float
    reduced_age: float
    voltage_rise_v: float


@dataclass(frozen=True)
class FilmTruth:
    """Noise-free state of the film, for tests and documentation (not for procedures).

    Attributes
    ----------
    excitation_density_w_cm2
        Laser power density on the film now (0 when dark or out of the beam).
    plqy
        PL quantum yield now (photobleaching included).
    bleach_survival
        Fraction of emitters not yet photobleached.
    segregated_fraction
        Fraction of the emission from segregated (iodide-rich) domains.
    absorbed_photon_rate_per_s
        Laser photons absorbed per second.
    """

    excitation_density_w_cm2: float
    plqy: float
    bleach_survival: float
    segregated_fraction: float
    absorbed_photon_rate_per_s: float
