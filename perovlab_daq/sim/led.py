"""Electrical and efficiency model of a simulated perovskite LED pixel.

A single-diode equivalent circuit (ideality factor, series and shunt resistance) gives the
current at a voltage or the voltage at a current; an EQE curve against the current density
through the diode (rise at low injection, roll-off at high injection) gives the photons.
Current through the shunt emits nothing, so the measured EQE (photons per electron of the
total current) falls at low bias as it does on a real leaky pixel.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq

from perovlab_daq.sim.presets import DiodeParameters, EfficiencyParameters

log = logging.getLogger(__name__)

#: k T / q at 300 K (V).
THERMAL_VOLTAGE_V: float = 0.025852
#: exp() argument cap: keeps absurd drives (hundreds of V) finite instead of overflowing.
_MAX_EXPONENT: float = 600.0


@dataclass(frozen=True)
class OperatingPoint:
    """Electrical state of the pixel at one drive.

    Attributes
    ----------
    voltage_v
        Voltage across the pixel terminals (V).
    current_a
        Total current (A): diode plus shunt.
    diode_current_a
        Current through the junction, the part that can emit (A).
    in_compliance
        True when the source meter's compliance limited the drive.
    """

    voltage_v: float
    current_a: float
    diode_current_a: float
    in_compliance: bool


class LedElectricalModel:
    """Single-diode model with series and shunt resistance for one pixel.

    Parameters
    ----------
    diode
        Preset diode parameters (per unit area).
    efficiency
        Preset EQE-curve parameters.
    area_cm2
        Pixel area (cm^2).
    """

    def __init__(
        self, diode: DiodeParameters, efficiency: EfficiencyParameters, area_cm2: float
    ) -> None:
        self.diode = diode
        self.efficiency = efficiency
        self.area_cm2 = area_cm2
        self.slope_v = diode.ideality_factor * THERMAL_VOLTAGE_V
        reference_current_a = diode.reference_current_density_ma_cm2 * 1e-3 * area_cm2
        # Saturation current chosen so the junction sits at the preset's reference voltage
        # at the reference current density: easier to reason about than a raw I0.
        self.saturation_current_a = reference_current_a / math.expm1(
            diode.junction_voltage_at_reference_v / self.slope_v
        )
        self.series_resistance_ohm = diode.series_resistance_ohm_cm2 / area_cm2
        self.shunt_resistance_ohm = diode.shunt_resistance_ohm_cm2 / area_cm2
        grid_ma_cm2 = np.logspace(-6, 5, 4000)
        self._eqe_shape_max = float(np.max(self._eqe_shape(grid_ma_cm2)))

    def junction_current_a(
        self, junction_voltage_v: float, voltage_offset_v: float = 0.0
    ) -> tuple[float, float]:
        """Return (diode current, shunt current) at a junction voltage.

        Parameters
        ----------
        junction_voltage_v
            Voltage across the junction (terminal voltage minus I Rs).
        voltage_offset_v
            Ageing voltage rise: shifts the diode characteristic to higher voltage.
        """
        exponent = min((junction_voltage_v - voltage_offset_v) / self.slope_v, _MAX_EXPONENT)
        diode_current_a = self.saturation_current_a * math.expm1(exponent)
        return diode_current_a, junction_voltage_v / self.shunt_resistance_ohm

    def _terminal_current(self, junction_voltage_v: float, voltage_offset_v: float) -> float:
        diode_a, shunt_a = self.junction_current_a(junction_voltage_v, voltage_offset_v)
        return diode_a + shunt_a

    def at_voltage(self, voltage_v: float, voltage_offset_v: float = 0.0) -> OperatingPoint:
        """Return the operating point with the terminals held at a voltage."""
        if voltage_v == 0.0:
            junction_v = 0.0
        else:
            # V = Vj + Rs I(Vj) is monotonic in Vj and Vj lies between 0 and V.
            low, high = sorted((0.0, voltage_v))
            junction_v = brentq(
                lambda vj: (
                    vj
                    + self.series_resistance_ohm * self._terminal_current(vj, voltage_offset_v)
                    - voltage_v
                ),
                low,
                high,
                xtol=1e-13,
                rtol=1e-12,
            )
        diode_a, shunt_a = self.junction_current_a(junction_v, voltage_offset_v)
        return OperatingPoint(voltage_v, diode_a + shunt_a, diode_a, False)

    def at_current(self, current_a: float, voltage_offset_v: float = 0.0) -> OperatingPoint:
        """Return the operating point with a current forced through the pixel."""
        low, high = -1.0, 1.0
        # Expand the bracket until it straddles the root; the I(Vj) curve is monotonic.
        while self._terminal_current(low, voltage_offset_v) > current_a:
            low *= 4.0
        while self._terminal_current(high, voltage_offset_v) < current_a:
            high *= 2.0
        junction_v = brentq(
            lambda vj: self._terminal_current(vj, voltage_offset_v) - current_a,
            low,
            high,
            xtol=1e-13,
            rtol=1e-12,
        )
        diode_a, _ = self.junction_current_a(junction_v, voltage_offset_v)
        voltage_v = junction_v + self.series_resistance_ohm * current_a
        return OperatingPoint(voltage_v, current_a, diode_a, False)

    def _eqe_shape(self, current_density_ma_cm2: np.ndarray | float) -> np.ndarray | float:
        eff = self.efficiency
        rise = (np.asarray(current_density_ma_cm2) / eff.rise_current_density_ma_cm2) ** (
            eff.rise_exponent
        )
        rolloff = (
            np.asarray(current_density_ma_cm2) / eff.rolloff_current_density_ma_cm2
        ) ** eff.rolloff_exponent
        quench = (
            np.asarray(current_density_ma_cm2) / eff.quench_current_density_ma_cm2
        ) ** eff.quench_exponent
        return rise / (1.0 + rise) / (1.0 + rolloff) / (1.0 + quench)

    def radiative_efficiency(self, diode_current_density_ma_cm2: float) -> float:
        """Return photons out of the front per electron through the junction.

        Parameters
        ----------
        diode_current_density_ma_cm2
            Junction (not shunt) current density (mA/cm^2).

        Returns
        -------
        float
            Scaled so its maximum is the preset's ``peak_eqe`` (at high current densities
            the shunt is negligible and this is the EQE a J-L-V sweep measures).
        """
        if diode_current_density_ma_cm2 <= 0.0:
            return 0.0
        shape = float(self._eqe_shape(diode_current_density_ma_cm2))
        return self.efficiency.peak_eqe * shape / self._eqe_shape_max
