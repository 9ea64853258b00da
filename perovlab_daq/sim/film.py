"""The simulated film: photoluminescence yield, photobleaching and halide segregation under light.

`FilmSample` holds the film's slow state (surviving emitters, segregated fraction) and
answers its PLQY at an excitation density and its PL bands; `World` gives it the
excitation density from the laser path and the device time to integrate over.
"""

from __future__ import annotations

import logging
import math

from perovlab_daq.sim.emission import Band, emission_bands, segregate
from perovlab_daq.sim.presets import FilmParameters

log = logging.getLogger(__name__)


class FilmSample:
    """The film of a preset.

    Parameters
    ----------
    params
        The preset's film parameters.

    Attributes
    ----------
    bleach_survival
        Fraction of emitters not yet photobleached (1 fresh).
    segregated_fraction
        Fraction of the emission from segregated (iodide-rich) domains.
    """

    def __init__(self, params: FilmParameters) -> None:
        self.params = params
        self.bleach_survival = 1.0
        self.segregated_fraction = 0.0

    def plqy_at(self, density_w_cm2: float) -> float:
        """Return the PLQY at an excitation density (W/cm^2), photobleaching included."""
        film = self.params
        if density_w_cm2 <= 0.0:
            base = film.plqy_reference if film.power_law_exponent == 1.0 else 0.0
        else:
            base = film.plqy_reference * (density_w_cm2 / film.plqy_reference_density_w_cm2) ** (
                film.power_law_exponent - 1.0
            )
        return min(base, film.plqy_ceiling) * self.bleach_survival

    def pl_bands(self) -> list[Band]:
        """Return the PL bands now (segregation applied)."""
        return emission_bands(
            self.params.pl_band, self.segregated_fraction, self.params.segregation
        )

    def integrate(self, dose_density_w_cm2: float, elapsed_device_s: float) -> None:
        """Bleach and segregate the film under an excitation density over device time."""
        film = self.params
        if film.bleach_time_s is not None and dose_density_w_cm2 > 0.0:
            bleach_rate = dose_density_w_cm2 / (
                film.bleach_reference_density_w_cm2 * film.bleach_time_s
            )
            self.bleach_survival *= math.exp(-bleach_rate * elapsed_device_s)
        if film.segregation is not None:
            light_rate = dose_density_w_cm2 / (
                film.segregation.reference_density_w_cm2 * film.segregation.time_constant_s
            )
            self.segregated_fraction = segregate(
                self.segregated_fraction, light_rate, film.segregation, elapsed_device_s
            )
