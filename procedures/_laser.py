"""Laser excitation shared by the PL procedures: safe emission, power at the sample, filters.

:class:`LaserSpectroscopyProcedure` is the base of ``pl-spectrum``, ``pl-fluence``,
``pl-stability`` and ``plqy``. It provides

* laser safety: :meth:`~LaserSpectroscopyProcedure.emission` switches emission on only for
  the ``with`` block and off on every way out (normal end, abort, exception), and
  :meth:`~LaserSpectroscopyProcedure.shutdown` switches it off again before the base
  class puts the whole bench in its safe state;
* laser start-up as the OBIS manual says (REFERENCE §6): emission is switched on with the
  driver's ``start_emission`` (interlock and faults checked, CDRH delay allowed for, power
  stable within :data:`POWER_STABLE_TOLERANCE` before the first spectrum; the wait is
  bounded by the ``laser_settle`` parameter), off with ``stop_emission`` (read back);
  a setpoint change while emitting also waits for stable power;
* the excitation plan: a wanted power at the sample is reached with the laser setpoint
  and, when a filter wheel is fitted, the ND filter whose measured transmission puts the
  setpoint inside the laser's regulated range (:class:`ExcitationPlanner`);
* excitation quantities from the spot area (REFERENCE §3): CW power density P / A and,
  for a pulsed source, fluence per pulse P / (f A);
* the spectrometer set-up common to all of them (:class:`procedures._spectrum.SpectrumAcquirer`).

The module starts with ``_`` so the runner does not list it as a procedure.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from perovlab_daq.procedures._spectrum import SpectrumAcquirer, SpectrumFrame
from perovlab_daq.procedures.base import DaqProcedure, ParameterError
from pymeasure.experiment import FloatParameter, IntegerParameter, ListParameter

log = logging.getLogger(__name__)

#: The OBIS regulates its output only down to about 1 % of its maximum power (REFERENCE §2,
#: OBIS manual); below that the setpoint is not trusted even if the laser accepts it.
REGULATED_FRACTION_OF_MAX = 0.01
#: Reference setpoint (fraction of the laser maximum) used to measure the filter transmissions.
TRANSMISSION_REFERENCE_FRACTION = 0.1
#: A setpoint is corrected once when the power meter disagrees with the plan by more than this.
POWER_CORRECTION_TOLERANCE = 0.02
#: A wanted power up to this fraction beyond the reachable range is clamped to it, not refused
#: (the transmissions are measured with noise, and 600 W/cm^2 on a 1.667e-4 cm^2 spot is
#: 100.02 mW on a 100 mW laser).
CLAMP_TOLERANCE = 0.03
#: Relative tolerance within which the laser output must be stable before a spectrum.
POWER_STABLE_TOLERANCE = 0.02
#: Nanometres kept clear of the laser line when a PL window starts "after the laser".
LASER_GUARD_NM = 20.0


@dataclass(frozen=True)
class ExcitationStep:
    """How one excitation power is reached.

    Attributes
    ----------
    target_w : float
        Wanted power at the sample (W).
    setpoint_w : float
        Laser setpoint (W).
    filter_position : int
        Filter-wheel position (0 when there is no wheel).
    transmission : float
        Measured transmission of that position (1 without a wheel).
    """

    target_w: float
    setpoint_w: float
    filter_position: int
    transmission: float


class ExcitationPlanner:
    """Choose a laser setpoint and an ND filter for a wanted power at the sample.

    Parameters
    ----------
    low_w, high_w
        Regulated setpoint range of the laser (W).
    transmissions
        Filter position -> measured transmission (0-1]; empty without a wheel.
    """

    def __init__(self, low_w: float, high_w: float, transmissions: Mapping[int, float]) -> None:
        if not 0 < low_w < high_w:
            raise ValueError(f"laser range must satisfy 0 < low < high; got {low_w}, {high_w}")
        self.low_w = low_w
        self.high_w = high_w
        self.transmissions = dict(transmissions)

    @property
    def reachable_w(self) -> tuple[float, float]:
        """Return the (lowest, highest) power at the sample that can be set."""
        if not self.transmissions:
            return self.low_w, self.high_w
        values = self.transmissions.values()
        return self.low_w * min(values), self.high_w * max(values)

    def plan(self, target_w: float) -> ExcitationStep:
        """Return the step reaching ``target_w`` with the least attenuation possible.

        Raises
        ------
        ValueError
            If no filter puts the setpoint inside the laser's range.
        """
        tolerance = 1.0 + CLAMP_TOLERANCE
        if not self.transmissions:
            if not self.low_w / tolerance <= target_w <= self.high_w * tolerance:
                raise ValueError(
                    f"{target_w:.4g} W is outside the laser's regulated range "
                    f"{self.low_w:.4g} to {self.high_w:.4g} W and no filter wheel is fitted"
                )
            setpoint = min(max(target_w, self.low_w), self.high_w)
            return ExcitationStep(target_w, setpoint, 0, 1.0)
        candidates = [
            (transmission, position)
            for position, transmission in self.transmissions.items()
            if self.low_w / tolerance <= target_w / transmission <= self.high_w * tolerance
        ]
        if not candidates:
            low, high = self.reachable_w
            raise ValueError(
                f"{target_w:.4g} W cannot be reached: laser and filters give {low:.4g} "
                f"to {high:.4g} W at the sample"
            )
        transmission, position = max(candidates)
        setpoint = min(max(target_w / transmission, self.low_w), self.high_w)
        return ExcitationStep(target_w, setpoint, position, transmission)


POWER_MODES = ("power", "power density")


def excitation_target_w(mode: str, power_w: float, density_w_cm2: float, area_cm2: float) -> float:
    """Return the wanted power at the sample (W) from a power or a power density.

    Parameters
    ----------
    mode
        ``"power"`` or ``"power density"``.
    power_w
        Wanted power (W), used in ``"power"`` mode.
    density_w_cm2
        Wanted CW power density (W/cm^2), used with ``area_cm2`` otherwise.
    area_cm2
        Laser spot area (cm^2).
    """
    if mode == "power density":
        return density_w_cm2 * area_cm2
    return power_w


def log_spaced(low: float, high: float, steps: int) -> np.ndarray:
    """Return ``steps`` values from ``low`` to ``high`` equally spaced in log (both > 0)."""
    if steps == 1:
        return np.array([low])
    return np.geomspace(low, high, steps)


class LaserSpectroscopyProcedure(DaqProcedure):
    """Base of the laser procedures: safe emission, excitation planning, spectra.

    Subclasses set ``NAME`` etc. and implement ``execute``; their ``startup`` should
    call :meth:`prepare_laser` and :meth:`make_acquirer`.
    """

    REQUIRED_ROLES: ClassVar[tuple[str, ...]] = ("laser", "spectrometer")
    OPTIONAL_ROLES: ClassVar[tuple[str, ...]] = ("power_meter", "filter_wheel", "sample_stage")

    spot_area = FloatParameter(
        "Laser spot area (0 = bench set-up)",
        units="cm^2",
        minimum=0.0,
        maximum=100.0,
        default=0.0,
    )
    integration_time = FloatParameter(
        "Integration time (0 = automatic)",
        units="s",
        minimum=0.0,
        maximum=60.0,
        default=0.0,
    )
    max_integration_time = FloatParameter(
        "Longest automatic integration time",
        units="s",
        minimum=0.008,
        maximum=60.0,
        default=2.0,
    )
    averages = IntegerParameter("Spectra averaged", minimum=1, maximum=1000, default=1)
    laser_settle = FloatParameter(
        "Longest wait for stable laser power (after the CDRH delay)",
        units="s",
        minimum=0.5,
        maximum=60.0,
        default=10.0,
    )

    # state set by prepare_laser()
    _laser: Any = None
    _planner: ExcitationPlanner | None = None
    _acquirer: SpectrumAcquirer | None = None
    _filter_position: int = 0
    _emitting: bool = False
    laser_limits_w: tuple[float, float] = (0.0, 0.0)

    @classmethod
    def check_consistency(cls, values: Mapping[str, Any]) -> None:
        """Refuse a fixed integration time below the spectrometer's usual minimum."""
        super().check_consistency(values)
        fixed = float(values.get("integration_time", 0.0) or 0.0)
        if 0 < fixed < 0.008:
            raise ParameterError(
                "integration_time", fixed, "0 (automatic) or at least 0.008 s (QE Pro minimum)"
            )

    # -- laser -------------------------------------------------------------------------
    @property
    def laser(self) -> Any:
        """Return the bench laser."""
        if self._laser is None:
            self._laser = self.instrument("laser")
        return self._laser

    def laser_spot_area(self) -> float:
        """Return the laser spot area in cm^2: the parameter, else the bench set-up.

        Raises
        ------
        RuntimeError
            If neither gives one (a power density cannot be computed).
        """
        if self.spot_area and self.spot_area > 0:
            return float(self.spot_area)
        setup = getattr(getattr(self.bench, "config", None), "setup", {}) or {}
        area = setup.get("laser_spot_area_cm2")
        if not area:
            raise RuntimeError(
                "no laser spot area: set the spot_area parameter or setup.laser_spot_area_cm2 "
                "in the bench file"
            )
        return float(area)

    def laser_off(self) -> bool:
        """Switch emission off, check it, never raise; return whether it is confirmed off."""
        self._emitting = False
        laser = self._laser if self._laser is not None else (self.bench or {}).get("laser")
        if laser is None:
            return True
        for attempt in range(3):
            try:
                laser.stop_emission()  # SOUR:AM:STAT OFF, read back; raises if still on
                return True
            except Exception as exc:  # noqa: BLE001 - the safety path must keep trying
                log.error("laser emission off, attempt %d failed: %s", attempt + 1, exc)
            time.sleep(0.05)
        try:
            self.emit_event("error", "laser", "could not confirm laser emission off")
        except Exception:  # noqa: BLE001
            log.error("could not confirm laser emission off")
        return False

    @contextlib.contextmanager
    def emission(self) -> Iterator[None]:
        """Switch laser emission on for the ``with`` block; off on every way out.

        The block starts once the power is stable (:meth:`start_laser`).
        """
        try:
            self.start_laser()
            yield
        finally:
            self.laser_off()

    def start_laser(self) -> float:
        """Leave standby at the present setpoint and wait for stable power; return it (W).

        The driver's ``start_emission`` checks interlock and faults, switches emission on
        (read back), allows for the CDRH delay and waits until ``SOUR:POW:LEV?`` is within
        :data:`POWER_STABLE_TOLERANCE` of the setpoint, for at most ``laser_settle``
        beyond the CDRH delay. A setpoint below the regulated range (e.g. 0 before the
        excitation is planned) is raised to its lower end first.
        """
        laser = self.laser
        low = self.laser_limits_w[0]
        setpoint = float(
            self.call_with_retry(lambda: laser.power_setpoint_w, "laser setpoint", role="laser")
        )
        if setpoint < low:
            setpoint = low
        started = time.monotonic()
        power = self.call_with_retry(
            lambda: laser.start_emission(
                setpoint,
                stable_tolerance=POWER_STABLE_TOLERANCE,
                timeout_s=float(self.laser_settle),
                regulated_min_w=low,
            ),
            "laser emission on",
            role="laser",
        )
        self._emitting = True
        log.info("laser on: %.4g W stable after %.2f s", power, time.monotonic() - started)
        return float(power)

    def set_laser_setpoint(self, setpoint_w: float) -> None:
        """Set the laser power setpoint; while emitting, wait until the power is stable."""
        laser = self.laser
        self.call_with_retry(
            lambda: setattr(laser, "power_setpoint_w", setpoint_w), "laser power", role="laser"
        )
        if self._emitting:
            self.call_with_retry(
                lambda: laser.wait_for_stable_power(
                    setpoint_w,
                    stable_tolerance=POWER_STABLE_TOLERANCE,
                    timeout_s=float(self.laser_settle),
                    regulated_min_w=self.laser_limits_w[0],
                ),
                "laser power stable",
                role="laser",
            )

    def prepare_laser(self) -> None:
        """Check the interlock, select CW constant power, emission off, sample on the stage.

        Also sets the power meter to the laser wavelength and measures the filter-wheel
        transmissions (emission on briefly) so that :meth:`set_power_at_sample` can plan.

        Raises
        ------
        RuntimeError
            If the interlock is open or the laser reports a fault.
        """
        laser = self.laser
        self.laser_off()
        if not self.call_with_retry(
            lambda: laser.interlock_closed, "laser interlock", role="laser"
        ):
            raise RuntimeError("the laser interlock is open: close the enclosure and retry")
        fault = self.call_with_retry(lambda: laser.fault_code, "laser fault", role="laser")
        if fault:
            raise RuntimeError(f"the laser reports fault code 0x{int(fault):X}")
        set_cw = getattr(laser, "set_cw_power_mode", None)
        if set_cw is not None:
            self.call_with_retry(set_cw, "laser CW mode", role="laser")
        self.laser_wavelength_nm = float(
            self.call_with_retry(lambda: laser.wavelength_nm, "laser wavelength", role="laser")
        )
        low, high = self.call_with_retry(lambda: laser.power_limits_w, "laser limits", role="laser")
        self.laser_limits_w = (
            max(float(low), REGULATED_FRACTION_OF_MAX * float(high)),
            float(high),
        )
        if self.has_role("power_meter"):
            meter = self.bench["power_meter"]
            self.call_with_retry(
                lambda: setattr(meter, "wavelength_nm", self.laser_wavelength_nm),
                "power meter wavelength",
                role="power_meter",
            )
        transmissions = self.measure_filter_transmissions() if self.has_role("filter_wheel") else {}
        self._planner = ExcitationPlanner(*self.laser_limits_w, transmissions)

    def check_interlock(self) -> None:
        """Refuse to go on when the laser interlock is open (emission stopped behind our back).

        Called after the light frames of every spectrum: an enclosure opened mid-run
        stops the laser, and the spectra after that point would be dark frames stored as
        PL. The run ends ``failed`` with the reason; emission is switched off on the way out.

        Raises
        ------
        LaserInterlockOpen
            If the laser reports its interlock open.
        """
        laser = self.laser
        closed = self.call_with_retry(
            lambda: laser.interlock_closed, "laser interlock", role="laser"
        )
        if not closed:
            message = (
                "the laser interlock opened during the run (emission stopped); the spectrum "
                "taken meanwhile was discarded: close the enclosure and run again"
            )
            self.emit_event("error", "interlock", message)
            raise LaserInterlockOpen(message)

    def place_sample(self, position: str) -> None:
        """Move the optional sample stage to ``position`` (``STAGE``, ``A``, ``B``, ``C``)."""
        if not self.has_role("sample_stage"):
            return
        stage = self.bench["sample_stage"]
        self.call_with_retry(
            lambda: setattr(stage, "position", position),
            f"sample to {position}",
            role="sample_stage",
        )

    # -- power -------------------------------------------------------------------------
    def read_power_w(self) -> float:
        """Return the power meter reading (W), NaN without a power meter."""
        if not self.has_role("power_meter"):
            return math.nan
        meter = self.bench["power_meter"]
        return float(self.call_with_retry(lambda: meter.power_w, "power meter", role="power_meter"))

    def set_filter(self, position: int) -> None:
        """Move the filter wheel to ``position`` (no-op for 0 or when already there)."""
        if position <= 0 or not self.has_role("filter_wheel") or position == self._filter_position:
            return
        wheel = self.bench["filter_wheel"]
        self.call_with_retry(
            lambda: setattr(wheel, "position", int(position)), "filter wheel", role="filter_wheel"
        )
        self._filter_position = int(position)

    def measure_filter_transmissions(self) -> dict[int, float]:
        """Measure every filter position's transmission with the power meter.

        The laser runs at a reference setpoint with emission on only for the
        measurement. Without a power meter the wheel is left at position 1 and only that
        position is used (its transmission taken as 1).
        """
        wheel = self.bench["filter_wheel"]
        count = int(
            self.call_with_retry(lambda: wheel.position_count, "filter count", role="filter_wheel")
        )
        if not self.has_role("power_meter"):
            self.emit_event(
                "warning",
                "filter",
                "filter wheel without a power meter: transmissions unknown, position 1 only",
            )
            self._filter_position = 0
            self.set_filter(1)
            return {1: 1.0}
        low, high = self.laser_limits_w
        reference = max(low, TRANSMISSION_REFERENCE_FRACTION * high)
        self.set_laser_setpoint(reference)
        readings: dict[int, float] = {}
        self._filter_position = 0
        with self.emission():
            for position in range(1, count + 1):
                self.set_filter(position)
                readings[position] = self.read_power_w()
        best = max(readings.values())
        noise_floor = 1e-9
        transmissions = {
            position: value / best for position, value in readings.items() if value > noise_floor
        }
        described = ", ".join(f"{p}: {t:.3g}" for p, t in sorted(transmissions.items()))
        self.emit_event("info", "filter", f"filter transmissions measured: {described}")
        return transmissions

    def set_power_at_sample(self, target_w: float) -> ExcitationStep:
        """Set filter and laser setpoint for ``target_w`` at the sample (emission unchanged).

        Raises
        ------
        ValueError
            If the power cannot be reached with this laser and filter wheel.
        """
        assert self._planner is not None, "prepare_laser() first"
        step = self._planner.plan(target_w)
        self.set_filter(step.filter_position)
        self.set_laser_setpoint(step.setpoint_w)
        return step

    def correct_power(self, step: ExcitationStep, measured_w: float) -> ExcitationStep:
        """Adjust the setpoint once if the power meter disagrees with the plan (emission on)."""
        if not math.isfinite(measured_w) or measured_w <= 0:
            return step
        error = measured_w / step.target_w - 1.0
        if abs(error) <= POWER_CORRECTION_TOLERANCE:
            return step
        low, high = self.laser_limits_w
        setpoint = min(max(step.setpoint_w / (1.0 + error), low), high)
        self.set_laser_setpoint(setpoint)
        return ExcitationStep(step.target_w, setpoint, step.filter_position, step.transmission)

    # -- spectra -----------------------------------------------------------------------
    def make_acquirer(self) -> SpectrumAcquirer:
        """Build the spectrum acquirer.

        Light frames are taken inside the caller's :meth:`emission` block; dark frames
        switch emission off for their duration (:func:`dark_with_emission_off`).
        """
        self._acquirer = SpectrumAcquirer.for_procedure(
            self,
            dark=dark_with_emission_off(self),
            max_auto_integration_s=float(self.max_integration_time),
            light_check=self.check_interlock,
        )
        return self._acquirer

    @property
    def acquirer(self) -> SpectrumAcquirer:
        """Return the acquirer made in startup."""
        if self._acquirer is None:
            return self.make_acquirer()
        return self._acquirer

    def acquire_spectrum(self) -> SpectrumFrame:
        """Take one spectrum with the procedure's integration settings (emission must be on).

        The dark frame for a new integration time is measured with emission off, then
        emission is restored.
        """
        fixed = float(self.integration_time)
        return self.acquirer.acquire(fixed if fixed > 0 else None, int(self.averages))

    def pl_window_nm(self, low_nm: float = 0.0, high_nm: float = 0.0) -> tuple[float, float]:
        """Return the PL window: (laser + guard, detector end) unless given (0 = default)."""
        grid = self.acquirer.wavelength_nm
        low = low_nm if low_nm > 0 else self.laser_wavelength_nm + LASER_GUARD_NM
        high = high_nm if high_nm > 0 else float(grid[-1])
        return low, high

    def shutdown(self) -> None:
        """Switch emission off (checked), then the base safe state. Never raises."""
        try:
            self.laser_off()
        except Exception as exc:  # noqa: BLE001 - shutdown must never raise
            log.error("laser off in shutdown failed: %s", exc)
        super().shutdown()


class LaserInterlockOpen(RuntimeError):
    """The laser interlock opened while the procedure needed emission."""


def dark_with_emission_off(procedure: LaserSpectroscopyProcedure) -> Any:
    """Return a context factory that switches emission off for a dark frame, then on again.

    Switching on again is a full start-up (:meth:`LaserSpectroscopyProcedure.start_laser`):
    with CDRH mode on every dark frame costs the CDRH delay.
    """

    @contextlib.contextmanager
    def dark() -> Iterator[None]:
        procedure.laser_off()
        try:
            yield
        finally:
            procedure.start_laser()

    return dark


class FixedExcitationProcedure(LaserSpectroscopyProcedure):
    """Base of the procedures that excite at one power or power density (spectrum, stability)."""

    power_mode = ListParameter("Excitation set as", choices=POWER_MODES, default="power")
    laser_power = FloatParameter(
        "Power at the sample", units="W", minimum=0.0, maximum=1.0, default=0.01
    )
    power_density = FloatParameter(
        "CW power density at the sample", units="W/cm^2", minimum=0.0, maximum=1e5, default=60.0
    )
    pl_window_low = FloatParameter(
        "PL window start (0 = laser + 20 nm)", units="nm", minimum=0.0, maximum=2000.0, default=0.0
    )
    pl_window_high = FloatParameter(
        "PL window end (0 = detector end)", units="nm", minimum=0.0, maximum=2000.0, default=0.0
    )

    @classmethod
    def check_consistency(cls, values: Mapping[str, Any]) -> None:
        """Refuse a zero excitation and an inverted or too narrow PL window."""
        super().check_consistency(values)
        mode = values.get("power_mode", "power")
        if mode == "power" and not float(values.get("laser_power", 0) or 0) > 0:
            raise ParameterError("laser_power", values.get("laser_power"), "> 0 W")
        if mode == "power density" and not float(values.get("power_density", 0) or 0) > 0:
            raise ParameterError("power_density", values.get("power_density"), "> 0 W/cm^2")
        low = float(values.get("pl_window_low", 0) or 0)
        high = float(values.get("pl_window_high", 0) or 0)
        if low > 0 and high > 0 and high <= low + 10:
            raise ParameterError("pl_window_high", high, f"more than {low + 10:g} nm")

    def prepare_fixed_excitation(self) -> None:
        """Laser ready, sample on the PL stage, acquirer made, target power computed."""
        self.prepare_laser()
        self.place_sample("STAGE")
        self.make_acquirer()
        self.area_cm2 = self.laser_spot_area()
        self.target_w = excitation_target_w(
            self.power_mode, self.laser_power, self.power_density, self.area_cm2
        )

    def start_excitation(self) -> tuple[ExcitationStep, float]:
        """Set the target power with emission ON; return the step and the measured power (W).

        Call inside :meth:`emission`. The setpoint is corrected once from the power meter.
        """
        step = self.set_power_at_sample(self.target_w)
        measured = self.read_power_w()
        corrected = self.correct_power(step, measured)
        if corrected is not step:
            step = corrected
            measured = self.read_power_w()
        return step, measured
