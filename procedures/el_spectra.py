"""EL spectra of an LED pixel at a list of biases, currents or current densities (``el-spectra``).

At every level the source meter drives the pixel, the spectrum is taken with
:class:`procedures._spectrum.SpectrumAcquirer` (automatic integration time, dark frame
with the output off, sensitivity calibration), and the source meter reading (V, I) is
recorded with it. The output is on only while a level is being measured, so the pixel
ages no more than needed. Peak, centre and FWHM at each level show bias-induced shifts
(e.g. [P2]: none at 10 V, about 5 nm above 15 V).

:func:`el_drive` is the light control the J-L-V and lifetime procedures can reuse for
their own EL spectra.
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
import time
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

from perovlab_daq.procedures._spectrum import (
    SpectrumAcquirer,
)
from perovlab_daq.procedures.base import DaqProcedure, ParameterError
from pymeasure.experiment import FloatParameter, IntegerParameter, ListParameter, Parameter

from perovlab_daq.analysis.windows import window_peak_metrics

log = logging.getLogger(__name__)

DRIVE_MODES = {"voltage": "V", "current": "A", "current density": "mA/cm^2"}
MAX_LEVELS = 100
_NUMBER = re.compile(r"^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$")
#: Limits of the levels per mode (Keithley 2400 ranges; 1 A over 0.01 cm^2 = 1e5 mA/cm^2).
LEVEL_LIMITS = {"voltage": 210.0, "current": 1.05, "current density": 1.0e5}


def parse_levels(text: str, mode: str = "voltage") -> tuple[float, ...]:
    """Parse a list of drive levels such as ``"3, 4, 5.5"`` (commas, semicolons or spaces).

    Parameters
    ----------
    text
        Plain numbers in the unit of ``mode`` (V, A or mA/cm^2); nothing is evaluated.
    mode
        A key of :data:`DRIVE_MODES`.

    Raises
    ------
    ParameterError
        Naming ``levels`` for an empty list, a non-number, too many items or a level
        beyond the source meter's range.
    """
    unit = DRIVE_MODES.get(mode, "")
    items = [item for item in re.split(r"[,;\s]+", str(text or "").strip()) if item]
    if not items:
        raise ParameterError("levels", text, f"one or more numbers in {unit}, e.g. 3, 4, 5")
    if len(items) > MAX_LEVELS:
        raise ParameterError("levels", text, f"at most {MAX_LEVELS} levels")
    values = []
    limit = LEVEL_LIMITS.get(mode, math.inf)
    for item in items:
        if not _NUMBER.match(item):
            raise ParameterError("levels", text, f"numbers in {unit} ({item!r} is not one)")
        value = float(item)
        if not math.isfinite(value) or abs(value) > limit:
            raise ParameterError("levels", text, f"levels within +-{limit:g} {unit}")
        values.append(value)
    return tuple(values)


def el_drive(
    procedure: DaqProcedure,
    mode: str,
    level: float,
    *,
    compliance_current_a: float,
    compliance_voltage_v: float,
    settle_s: float,
    nplc: float = 1.0,
    readings: list[Any] | None = None,
) -> Any:
    """Return a light-context factory that drives the pixel only inside the ``with`` block.

    Parameters
    ----------
    procedure
        The procedure (its ``source_meter`` and retries are used).
    mode
        ``"voltage"`` (``level`` in V) or ``"current"`` (``level`` in A).
    level
        Source level.
    compliance_current_a, compliance_voltage_v
        Compliance of the voltage or current source.
    settle_s
        Wait after switching the output on.
    nplc
        Source meter integration (power-line cycles).
    readings
        When given, a :class:`~instruments._common.SourceMeterReading` taken at the end of
        each block (before the output goes off) is appended to it.
    """
    smu = procedure.instrument("source_meter")

    @contextlib.contextmanager
    def drive() -> Iterator[None]:
        def configure() -> None:
            if mode == "voltage":
                smu.apply_voltage_source(compliance_current_a=compliance_current_a, nplc=nplc)
                smu.source_voltage = level
            else:
                smu.apply_current_source(compliance_voltage_v=compliance_voltage_v, nplc=nplc)
                smu.source_current = level
            smu.output_enabled = True

        try:
            procedure.call_with_retry(configure, "source meter on", role="source_meter")
            if settle_s > 0:
                time.sleep(settle_s)
            yield
            if readings is not None:
                readings.append(
                    procedure.call_with_retry(smu.read_all, "source meter", role="source_meter")
                )
        finally:
            source_off(procedure)

    return drive


def source_off(procedure: DaqProcedure) -> None:
    """Switch the source meter output off; never raise (the base shutdown tries again)."""
    smu = procedure.bench.get("source_meter") if procedure.bench is not None else None
    if smu is None:
        return
    try:
        smu.output_enabled = False
    except Exception as exc:  # noqa: BLE001 - a safety path must not raise
        log.error("source meter output off failed: %s", exc)


class ElSpectraProcedure(DaqProcedure):
    """EL spectra at a list of drive levels, with the source meter reading at each."""

    SUMMARY_FIGURES = ("brightest_centre_nm", "brightest_fwhm_nm", "max_centre_shift_nm")

    NAME: ClassVar[str] = "el-spectra"
    TITLE: ClassVar[str] = "EL spectra at a list of biases or currents"
    REQUIRED_ROLES: ClassVar[tuple[str, ...]] = ("source_meter", "spectrometer")
    OPTIONAL_ROLES: ClassVar[tuple[str, ...]] = ()
    COLUMNS: ClassVar[dict[str, str]] = {
        "time": "s",
        "level_index": "",
        "level_setpoint": "",
        "voltage": "V",
        "current": "A",
        "current_density": "mA/cm^2",
        "in_compliance": "",
        "integration_time": "s",
        "saturated": "",
        "peak_wavelength": "nm",
        "centre_wavelength": "nm",
        "fwhm": "nm",
        "integrated_el": "a.u.",
        "signal_to_noise": "",
    }

    drive_mode = ListParameter("Drive", choices=tuple(DRIVE_MODES), default="voltage")
    levels = Parameter("Levels (V, A or mA/cm^2 by drive)", default="3, 4, 5")
    compliance_current = FloatParameter(
        "Current compliance (voltage drive)", units="A", minimum=1e-6, maximum=1.05, default=0.1
    )
    compliance_voltage = FloatParameter(
        "Voltage compliance (current drive)", units="V", minimum=0.1, maximum=210, default=12.0
    )
    device_area = FloatParameter(
        "Device area (0 = bench setup)", units="cm^2", minimum=0.0, maximum=100.0, default=0.0
    )
    settle_time = FloatParameter(
        "Wait after switching on", units="s", minimum=0.0, maximum=600.0, default=0.2
    )
    nplc = FloatParameter("Source meter NPLC", minimum=0.01, maximum=10.0, default=1.0)
    integration_time = FloatParameter(
        "Integration time (0 = automatic)", units="s", minimum=0.0, maximum=60.0, default=0.0
    )
    max_integration_time = FloatParameter(
        "Longest automatic integration time", units="s", minimum=0.008, maximum=60.0, default=2.0
    )
    averages = IntegerParameter("Spectra averaged", minimum=1, maximum=1000, default=1)
    el_window_low = FloatParameter(
        "EL window start (0 = detector start)", units="nm", minimum=0, maximum=2000, default=0.0
    )
    el_window_high = FloatParameter(
        "EL window end (0 = detector end)", units="nm", minimum=0, maximum=2000, default=0.0
    )

    @classmethod
    def check_consistency(cls, values: Mapping[str, Any]) -> None:
        """Check the level list against the drive mode and the integration time."""
        super().check_consistency(values)
        parse_levels(values.get("levels", "3, 4, 5"), values.get("drive_mode", "voltage"))
        fixed = float(values.get("integration_time", 0.0) or 0.0)
        if 0 < fixed < 0.008:
            raise ParameterError("integration_time", fixed, "0 (automatic) or >= 0.008 s")

    def area(self) -> float:
        """Return the pixel area (cm^2): the parameter, else the bench set-up."""
        if self.device_area and self.device_area > 0:
            return float(self.device_area)
        setup = getattr(getattr(self.bench, "config", None), "setup", {}) or {}
        area = setup.get("device_area_cm2")
        if not area:
            raise RuntimeError("no pixel area: set device_area or setup.device_area_cm2")
        return float(area)

    def startup(self) -> None:
        """Output off, levels parsed, acquirer ready."""
        source_off(self)
        self.level_list = parse_levels(self.levels, self.drive_mode)
        self.area_cm2 = self.area()
        self.acquirer = SpectrumAcquirer.for_procedure(
            self, max_auto_integration_s=float(self.max_integration_time)
        )
        self.started = time.monotonic()

    def source_level(self, level: float) -> tuple[str, float]:
        """Return (source mode, level in V or A) for a level in the drive's unit."""
        if self.drive_mode == "voltage":
            return "voltage", level
        if self.drive_mode == "current":
            return "current", level
        return "current", level * self.area_cm2 * 1e-3

    def execute(self) -> None:
        """Measure every level; the output is on only while a level is measured."""
        try:
            for index, level in enumerate(self.level_list):
                if self.should_stop():
                    log.warning("el-spectra aborted at level %d", index)
                    return
                self.measure(index, level)
                self.emit_progress(100.0 * (index + 1) / len(self.level_list))
        finally:
            source_off(self)

    def measure(self, index: int, level: float) -> None:
        """Take and record the EL spectrum of one level."""
        mode, source = self.source_level(level)
        readings: list[Any] = []
        self.acquirer.light = el_drive(
            self,
            mode,
            source,
            compliance_current_a=self.compliance_current,
            compliance_voltage_v=self.compliance_voltage,
            settle_s=self.settle_time,
            nplc=self.nplc,
            readings=readings,
        )
        fixed = float(self.integration_time)
        frame = self.acquirer.acquire(fixed if fixed > 0 else None, int(self.averages))
        reading = readings[-1]
        if reading.in_compliance:
            self.emit_event("warning", "compliance", f"level {level:g}: source meter in compliance")
        grid = frame.corrected_wavelength_nm
        low = self.el_window_low or float(grid[0])
        high = self.el_window_high or float(grid[-1])
        figures = window_peak_metrics(grid, frame.corrected, low, high)
        density = reading.current_a / self.area_cm2 * 1e3
        elapsed = time.monotonic() - self.started
        self.acquirer.emit(
            self,
            frame,
            time_s=elapsed,
            level_index=float(index),
            level_setpoint=level,
            voltage_v=reading.voltage_v,
            current_a=reading.current_a,
            current_density_ma_cm2=density,
        )
        self.emit_row(
            time=elapsed,
            level_index=index,
            level_setpoint=level,
            voltage=reading.voltage_v,
            current=reading.current_a,
            current_density=density,
            in_compliance=float(reading.in_compliance),
            integration_time=frame.integration_time_s,
            saturated=float(frame.saturated),
            peak_wavelength=float(figures["peak_wavelength"][0]),
            centre_wavelength=float(figures["centre_wavelength"][0]),
            fwhm=float(figures["fwhm"][0]),
            integrated_el=float(figures["integrated"][0]),
            signal_to_noise=float(figures["snr"][0]),
        )

    def shutdown(self) -> None:
        """Output off, then the bench's safe state; never raises."""
        source_off(self)
        super().shutdown()
