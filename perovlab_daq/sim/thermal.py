"""Self-heating of the simulated LED pixel: the temperature a thermometer on the device reads.

A pixel driven at current density J warms towards ``ambient + k J`` with a first-order
thermal time constant (the glass substrate and its holder):

    dT/dt = (ambient + k J - T) / tau

integrated exactly between drive changes (J is constant in between). With the defaults a
pixel at 100 mA/cm^2 ends 6 K above a 25 C ambient, in line with REFERENCE §6 ("a pixel
under 50-100 mA/cm^2 warms by several kelvin"). Heat flows in wall time: the time constant
is never scaled by the ageing acceleration (like the electrical and optical response).

The temperature does **not** feed back into the ageing law: the presets' acceleration
exponent n is the one measured on real benches, where self-heating at each drive is
already part of the measured T50 (an extra Arrhenius factor would count it twice and
change the n that ``lifetime-fit`` must reproduce). docs/simulator.md §11 says so.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass
class ThermalModel:
    """First-order self-heating of one pixel (wall-time integration, exact between changes).

    Attributes
    ----------
    ambient_c : float
        Temperature of the holder (degrees C).
    k_c_per_ma_cm2 : float
        Steady-state rise per mA/cm^2 of drive (K cm^2/mA).
    tau_s : float
        Thermal time constant (wall s).
    noise_c : float
        Standard deviation of a thermometer reading (K), Pt100 on a 2000 at 1 NPLC.
    """

    ambient_c: float = 25.0
    k_c_per_ma_cm2: float = 0.06
    tau_s: float = 5.0
    noise_c: float = 0.005
    temperature_c: float = math.nan
    current_density_ma_cm2: float = 0.0
    last_s: float = math.nan

    def advance(self, now_s: float) -> float:
        """Integrate up to ``now_s`` at the present drive; return the temperature (C)."""
        if math.isnan(self.temperature_c) or math.isnan(self.last_s):
            self.temperature_c = self.ambient_c
            self.last_s = now_s
        elapsed = max(0.0, now_s - self.last_s)
        self.last_s = now_s
        target = self.steady_state_c(self.current_density_ma_cm2)
        if self.tau_s <= 0:
            self.temperature_c = target
        else:
            self.temperature_c = target + (self.temperature_c - target) * math.exp(
                -elapsed / self.tau_s
            )
        return self.temperature_c

    def set_drive(self, now_s: float, current_density_ma_cm2: float) -> None:
        """Integrate up to ``now_s`` at the old drive, then hold ``current_density_ma_cm2``."""
        self.advance(now_s)
        self.current_density_ma_cm2 = abs(float(current_density_ma_cm2))

    def steady_state_c(self, current_density_ma_cm2: float) -> float:
        """Return the temperature reached after a long time at a drive (C)."""
        return self.ambient_c + self.k_c_per_ma_cm2 * abs(current_density_ma_cm2)
