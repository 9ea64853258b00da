"""Operational lifetime (T50) of an LED: luminance and voltage at constant drive until L/L0 drops.

The procedure ``lifetime`` holds the pixel at a constant current density (or current, or
voltage) and logs, against time, the photodiode current turned into luminance, the
voltage and the current; it takes EL spectra every so often (peak centre, FWHM and
intensity against time, [P1] Figs. 6-7), can interrupt the stress for short J-L-V sweeps
at set times, and stops when the luminance has fallen below a fraction of its initial
value L0 (default 0.5: T50), after a maximum duration, or on an operator abort.

Two clocks are recorded: ``time``, wall seconds since the run started, and
``device_time``, time under stress x the bench's ``ageing_acceleration`` (1 on real
hardware; the simulated bench ages the device faster). Every schedule (sampling, spectra,
dark readings, J-L-V sweeps, maximum duration) and every lifetime figure is in device time
(:class:`procedures._clock.DeviceClock`); time zero is the switch-on (event ``switch_on``).
The live stop uses the analysis's own estimator (:mod:`procedures._lifetime_stop`).
Unattended runs: instrument calls are retried and re-opened, schedule slips are ``gap``
events, and an ``interrupted`` run continues in the same file with ``--resume``
(:mod:`perovlab_daq.resume`; the simulated device's state is checkpointed in the file).

See ``docs/procedures/lifetime.md`` for parameters, stop conditions and the analysis.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

import numpy as np
from perovlab_daq.procedures._clock import DeviceClock, ageing_acceleration
from perovlab_daq.procedures._lifetime_state import (
    COMPLIANCE_STOP_SAMPLES,
    DRIVE_MODES,
    EVENT_DEVICE_STATE,
    EVENT_GAP,
    EVENT_RESUME,
    EVENT_STOP,
    EVENT_SWITCH_ON,
    L0_SAMPLES,
    S_PER_H,
    ResumeState,
    SamplingSchedule,
    check_schedule,
    device_state_message,
    drive_text,
    parse_time_list,
    read_resume_state,
    restore_world,
    sampling_interval_s,  # noqa: F401 - re-exported: the schedule of a lifetime run
)
from perovlab_daq.procedures._lifetime_stop import LiveStop
from perovlab_daq.procedures._temperature import open_thermometer, read_temperature_c
from perovlab_daq.procedures.base import DaqProcedure, ParameterError
from pymeasure.experiment import (
    BooleanParameter,
    FloatParameter,
    IntegerParameter,
    ListParameter,
    Parameter,
)

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- procedure
class LifetimeProcedure(DaqProcedure):
    """Operational lifetime: luminance and voltage under constant drive until L/L0 < fraction.

    See ``docs/procedures/lifetime.md``.
    """

    SUMMARY_FIGURES = ("l0_cd_m2", "t50_h", "t50_extrapolated_h", "ageing_acceleration")

    NAME: ClassVar[str] = "lifetime"
    TITLE: ClassVar[str] = "Operational lifetime (T50) at constant drive"
    REQUIRED_ROLES: ClassVar[tuple[str, ...]] = ("source_meter", "photodetector")
    OPTIONAL_ROLES: ClassVar[tuple[str, ...]] = ("spectrometer", "thermometer")
    COLUMNS: ClassVar[dict[str, str]] = {
        "time": "s",  # wall time since the run started
        "device_time": "s",  # time under stress x ageing_acceleration
        "voltage": "V",
        "current": "A",
        "current_density": "mA/cm^2",
        "photocurrent": "A",  # dark-subtracted
        "luminance": "cd/m^2",
        "relative_luminance": "",  # L / L0
        "dark_current": "A",  # photodiode dark level subtracted
        "in_compliance": "",  # 1 while the source meter is in compliance
        "jlv_sweep": "",  # 0 for stress rows, k for points of the k-th short J-L-V sweep
        "segment": "",  # 0, then 1, 2... for each resume
        "temperature": "degC",  # device temperature (thermometer role; NaN without one)
    }

    # -- drive ----------------------------------------------------------------------------
    drive_mode = ListParameter("Drive mode", choices=list(DRIVE_MODES), default="current_density")
    current_density = FloatParameter(
        "Current density", units="mA/cm^2", minimum=0.001, maximum=5000, default=20.0
    )
    current = FloatParameter("Current", units="A", minimum=1e-9, maximum=1.0, default=0.0018)
    voltage = FloatParameter("Voltage", units="V", minimum=0.0, maximum=100.0, default=4.0)
    compliance_voltage = FloatParameter(
        "Voltage compliance (current drive)", units="V", minimum=0.1, maximum=210, default=12.0
    )
    compliance_current = FloatParameter(
        "Current compliance (voltage drive)", units="A", minimum=1e-6, maximum=1.0, default=0.1
    )
    nplc = FloatParameter("Source meter NPLC", minimum=0.01, maximum=10, default=1.0)
    settle_time = FloatParameter(
        "Rest before stress, output off (no J-L-V)",
        units="s",
        minimum=0,
        maximum=86400,
        default=0.0,
    )
    # -- sampling -------------------------------------------------------------------------
    # 0 s: sample as fast as the instruments answer (no wait between samples).
    first_interval = FloatParameter(
        "First sampling interval (0 = as fast as possible)",
        units="s",
        minimum=0.0,
        maximum=3600,
        default=1.0,
    )
    interval = FloatParameter(
        "Sampling interval (linear part; 0 = as fast as possible)",
        units="s",
        minimum=0.0,
        maximum=86400,
        default=60.0,
    )
    points_per_decade = IntegerParameter(
        "Samples per decade (log part)", minimum=1, maximum=1000, default=20
    )
    # -- stop conditions ------------------------------------------------------------------
    stop_fraction = FloatParameter("Stop below L/L0", minimum=0.01, maximum=0.99, default=0.5)
    max_duration = FloatParameter(
        "Maximum stress duration (device time)",
        units="s",
        minimum=0.1,
        maximum=3.2e7,
        default=604800.0,
    )
    stop_at_compliance = BooleanParameter("Stop when the drive stays in compliance", default=True)
    # -- photodiode -----------------------------------------------------------------------
    pd_nplc = FloatParameter("Photodetector NPLC", minimum=0.01, maximum=50, default=1.0)
    pd_range = FloatParameter(
        "Photodetector range (0 = auto)", units="A", minimum=0, maximum=0.021, default=0.0
    )
    dark_readings = IntegerParameter("Dark readings averaged", minimum=1, maximum=1000, default=10)
    dark_interval = FloatParameter(
        "Dark level again every (0 = only before)",
        units="s",
        minimum=0,
        maximum=1e7,
        default=0.0,
    )
    dark_settle = FloatParameter(
        "Wait after output off before a dark reading",
        units="s",
        minimum=0,
        maximum=600,
        default=1.0,
    )
    device_area = FloatParameter(
        "Device area (0 = bench setup)", units="cm^2", minimum=0, maximum=100, default=0.0
    )
    # -- EL spectra -----------------------------------------------------------------------
    spectrum_interval = FloatParameter(
        "EL spectrum every (0 = only one at the start)",
        units="s",
        minimum=0,
        maximum=1e7,
        default=600.0,
    )
    el_integration = FloatParameter(
        "EL integration time (0 = automatic)", units="ms", minimum=0, maximum=60000, default=0.0
    )
    el_averages = IntegerParameter("EL spectra averaged", minimum=1, maximum=100, default=1)
    el_peak = FloatParameter(
        "Nominal EL peak (no spectrometer)", units="nm", minimum=300, maximum=1100, default=650.0
    )
    el_fwhm = FloatParameter(
        "Nominal EL FWHM (no spectrometer)", units="nm", minimum=1, maximum=300, default=30.0
    )
    # -- periodic J-L-V sweeps ------------------------------------------------------------
    jlv_times = Parameter("Short J-L-V sweeps at stress times (s, comma separated)", default="")
    jlv_stop_voltage = FloatParameter(
        "J-L-V sweep top voltage", units="V", minimum=0.1, maximum=100, default=6.0
    )
    jlv_step = FloatParameter(
        "J-L-V sweep step", units="V", minimum=0.001, maximum=10, default=0.25
    )
    jlv_dwell = FloatParameter(
        "J-L-V dwell per point", units="s", minimum=0, maximum=60, default=0.0
    )
    # -- robustness -----------------------------------------------------------------------
    max_consecutive_failures = IntegerParameter(
        "Consecutive instrument failures before the run fails", minimum=1, maximum=100, default=5
    )
    checkpoint_interval = FloatParameter(
        "Simulated device state saved every (wall)",
        units="s",
        minimum=0.01,
        maximum=3600,
        default=0.2,
    )
    resume_file = Parameter("Run file this run continues (set by --resume)", default="")

    # ------------------------------------------------------------------ validation
    @classmethod
    def check_consistency(cls, values: Mapping[str, Any]) -> None:
        """Refuse combinations that are each in range but wrong together.

        Raises
        ------
        ParameterError
            Naming the parameter to change.
        """
        times = check_schedule(values)
        mode = values.get("drive_mode", "current_density")
        if mode == "voltage" and float(values.get("voltage", 4.0)) <= 0:
            raise ParameterError("voltage", values.get("voltage"), "> 0 V for a voltage drive")
        if times and mode != "voltage":
            top = float(values.get("jlv_stop_voltage", 6.0))
            limit = float(values.get("compliance_voltage", 12.0))
            if top > limit:
                raise ParameterError(
                    "jlv_stop_voltage", top, f"at most compliance_voltage ({limit:g} V)"
                )

    # ------------------------------------------------------------------ start-up
    def startup(self) -> None:
        """Resolve the set-up, load calibrations, configure the instruments, measure the dark.

        Raises
        ------
        RuntimeError
            If the bench lacks a role or a set-up value, or a calibration cannot be read
            (before the output is switched on).
        """
        from perovlab_daq.procedures.jlv import nominal_el_spectrum

        from perovlab_daq.calibration import load_calibration_csv

        self.check_consistency(
            {name: getattr(self, name) for name in self.parameter_objects_of_class()}
        )
        self.MAX_CONSECUTIVE_FAILURES = int(self.max_consecutive_failures)
        self.smu = self.instrument("source_meter")
        self.photodetector = self.instrument("photodetector")
        self.spectrometer = (
            self.bench.get("spectrometer") if self.has_role("spectrometer") else None
        )
        self.acceleration = ageing_acceleration(self.bench)
        setup = dict(getattr(getattr(self.bench, "config", None), "setup", {}) or {})
        self.area_cm2 = self._resolve(self.device_area, setup, "device_area_cm2")
        self.pd_radius_mm = self._resolve(0.0, setup, "photodiode_radius_mm")
        self.pd_distance_mm = self._resolve(0.0, setup, "photodiode_distance_mm")
        responsivity_path = setup.get("responsivity_file")
        if not responsivity_path:
            raise RuntimeError(
                "the bench setup has no responsivity_file (photodiode A/W against nm): "
                "luminance cannot be computed"
            )
        self.responsivity = load_calibration_csv(responsivity_path)
        self.nominal_spectrum = nominal_el_spectrum(self.el_peak, self.el_fwhm)
        self.luminance_per_a = self._luminance_per_a(*self.nominal_spectrum)
        self.jlv_schedule = parse_time_list(self.jlv_times)
        self.schedule = SamplingSchedule(self.first_interval, self.interval, self.points_per_decade)
        self.resume: ResumeState | None = None
        if self.resume_file:
            self.resume = read_resume_state(self.resume_file)
        self.segment = self.resume.segment if self.resume else 0
        self.time_origin = time.monotonic() - (self.resume.time_offset_s if self.resume else 0.0)
        self.acquirer: Any = None
        self.spectrum_measured = False
        self.output_was_on = False
        self.spectra_taken = self.resume.spectra_done if self.resume else 0
        self.jlv_done = self.resume.jlv_done if self.resume else 0

        if self.resume and self.resume.world_state is not None:
            level, message = restore_world(self.bench, self.resume)
            self.emit_event(level, EVENT_RESUME, message)

        range_a = self.pd_range if self.pd_range > 0 else None
        self.call_with_retry(
            lambda: self.photodetector.configure(nplc=self.pd_nplc, current_range_a=range_a),
            "photodetector configure",
            role="photodetector",
        )
        if self.resume is not None:
            self._note_output_state_at_resume()
        self.call_with_retry(self._configure_source, "source meter configure", role="source_meter")
        self.thermometer = open_thermometer(self)
        if self.settle_time > 0:
            self.emit_event(
                "info", "settle", f"rest {self.settle_time:g} s with the output off before stress"
            )
            self.sleep(self.settle_time)
        self.dark_a = self._measure_dark(settle=False)

    def _resolve(self, value: float, setup: Mapping[str, Any], key: str) -> float:
        if value and value > 0:
            return float(value)
        if setup.get(key) is None:
            raise RuntimeError(f"{key}: not set as a parameter and missing from the bench setup")
        return float(setup[key])

    def _luminance_per_a(self, wavelength_nm: np.ndarray, spectrum: np.ndarray) -> float:
        from perovlab_daq.procedures.jlv import PhotometricFactors

        factors = PhotometricFactors.compute(
            wavelength_nm,
            spectrum,
            self.responsivity,
            self.area_cm2,
            self.pd_radius_mm,
            self.pd_distance_mm,
        )
        return float(factors.luminance_per_a)

    def _configure_source(self) -> None:
        self.smu.output_enabled = False
        if self.drive_mode == "voltage":
            self.smu.apply_voltage_source(
                compliance_current_a=self.compliance_current, nplc=self.nplc
            )
            self.smu.source_voltage = 0.0
        else:
            self.smu.apply_current_source(
                compliance_voltage_v=self.compliance_voltage, nplc=self.nplc
            )
            self.smu.source_current = 0.0

    def _note_output_state_at_resume(self) -> None:
        """Record whether the source was still driving the pixel when the run was resumed."""
        try:
            was_on = bool(self.smu.output_enabled)
        except Exception as exc:  # noqa: BLE001 - informative only
            self.emit_event("warning", EVENT_RESUME, f"output state unknown at resume: {exc}")
            return
        self.output_was_on = was_on
        if was_on:
            self.emit_event(
                "warning",
                EVENT_RESUME,
                "the source output was still on when the run was resumed: the pixel was "
                "stressed during the gap, so device time includes the gap",
            )

    # ------------------------------------------------------------------ drive helpers
    @property
    def drive_level(self) -> float:
        """Return the source level of the stress: A for current drives, V for voltage."""
        if self.drive_mode == "current_density":
            return self.current_density * 1e-3 * self.area_cm2
        if self.drive_mode == "current":
            return float(self.current)
        return float(self.voltage)

    def _set_level(self, level: float) -> None:
        attribute = "source_voltage" if self.drive_mode == "voltage" else "source_current"
        self.call_with_retry(
            lambda: setattr(self.smu, attribute, float(level)),
            f"set {attribute} {level:g}",
            role="source_meter",
        )

    def _set_output(self, enabled: bool) -> None:
        self.call_with_retry(
            lambda: setattr(self.smu, "output_enabled", bool(enabled)),
            "output on" if enabled else "output off",
            role="source_meter",
        )

    @contextlib.contextmanager
    def _stress_paused(self, why: str) -> Iterator[None]:
        """Switch the output off for a while (dark level, dark frames); device time stops."""
        started = time.monotonic()
        self._set_output(False)
        try:
            yield
        finally:
            self._set_output(True)
            paused = time.monotonic() - started
            self.clock.pause(paused)
            self.emit_event("info", "pause", f"stress paused {paused:.3g} s for {why}")

    # ------------------------------------------------------------------ readings
    def _measure_dark(self, *, settle: bool = True) -> float:
        """Average the photodiode with the LED off; return the dark current (A)."""
        if settle and self.dark_settle > 0:
            self.sleep(self.dark_settle)
        readings = []
        for _ in range(int(self.dark_readings)):
            reading = self.call_with_retry(
                self.photodetector.read_current, "photodetector dark reading", role="photodetector"
            )
            if not reading.overflow and math.isfinite(reading.current_a):
                readings.append(float(reading.current_a))
        if not readings:
            raise RuntimeError("the photodiode overflowed on every dark reading: check its range")
        dark = float(np.mean(readings))
        spread = float(np.std(readings)) if len(readings) > 1 else 0.0
        self.emit_event(
            "info",
            "dark",
            f"photodiode dark {dark:.4g} A (sd {spread:.2g} A, {len(readings)} readings, "
            "output off); subtracted from every point",
        )
        return dark

    def _read_point(self) -> tuple[Any, Any]:
        smu = self.call_with_retry(self.smu.read_all, "source meter read", role="source_meter")
        pd = self.call_with_retry(
            self.photodetector.read_current, "photodetector read", role="photodetector"
        )
        self.temperature_c = read_temperature_c(self, self.thermometer)
        return smu, pd

    def _device_time_s(self) -> float:
        """Device time (s) of the run: time under stress x ageing_acceleration, plus offset."""
        clock = getattr(self, "clock", None)
        return clock.device_s() if clock is not None else self.device_offset_s

    def _row(self, smu: Any, pd: Any, jlv_sweep: int = 0) -> dict[str, float]:
        now = time.monotonic()
        current = float(smu.current_a)
        photocurrent = math.nan if pd.overflow else float(pd.current_a) - self.dark_a
        luminance = self.luminance_per_a * photocurrent
        relative = luminance / self.l0 if self.l0 and math.isfinite(self.l0) else math.nan
        return {
            "time": now - self.time_origin,
            "device_time": self._device_time_s(),
            "voltage": float(smu.voltage_v),
            "current": current,
            "current_density": current * 1e3 / self.area_cm2,
            "photocurrent": photocurrent,
            "luminance": luminance,
            "relative_luminance": relative,
            "dark_current": self.dark_a,
            "in_compliance": float(bool(smu.in_compliance)),
            "jlv_sweep": float(jlv_sweep),
            "segment": float(self.segment),
            "temperature": self.temperature_c,
        }

    # ------------------------------------------------------------------ execute
    def execute(self) -> None:
        """Switch the stress on and log until a stop condition; rows, frames, events live.

        Every schedule (sampling intervals, spectra, dark readings, J-L-V sweeps, maximum
        duration) is in device time (:class:`procedures._clock.DeviceClock`): the wall
        wait before a due job is the device interval divided by ``ageing_acceleration``.
        Time zero is the switch-on; the first reading follows it at once, the first EL
        spectrum comes after the first ``L0_SAMPLES`` readings.
        """
        self.l0 = self.resume.l0_cd_m2 if self.resume else math.nan
        self.device_offset_s = self.resume.device_time_s if self.resume else 0.0
        if (
            self.resume is not None
            and self.output_was_on
            and getattr(self.bench, "world", None) is None
        ):
            gap_s = max(0.0, self.resume.time_offset_s - self.resume.last_time_s)
            self.device_offset_s = self.resume.last_device_time_s + gap_s * self.acceleration
        self._announce()
        if self.resume is not None:
            text = self.resume.gap_message(self.segment, self.device_offset_s)
            self.emit_event("warning", EVENT_GAP, text)
        # One estimator for the live stop and the analysis; a resumed run feeds it the
        # rows kept before the device-state checkpoint (later ones are superseded).
        history = None
        if self.resume is not None and self.resume.samples is not None:
            times, values = self.resume.samples
            history = (times[times <= self.device_offset_s], values[times <= self.device_offset_s])
        self.live_stop = LiveStop(self.stop_fraction, history)
        self._set_level(self.drive_level)
        self._set_output(True)
        self.clock = DeviceClock(acceleration=self.acceleration, offset_s=self.device_offset_s)
        self.emit_event(
            "info",
            EVENT_SWITCH_ON,
            f"stress on: {drive_text(self)}; time zero of segment {self.segment}: "
            f"wall_time_s={self.clock.start_wall_s - self.time_origin:.6f} "
            f"device_time_s={self.device_offset_s:.6f} "
            f"(ageing_acceleration {self.acceleration:g})",
        )
        stop_reason = self._log_until_stop()
        if stop_reason is None:
            return
        self._checkpoint()
        self.emit_event("info", EVENT_STOP, stop_reason)
        self._set_output(False)
        self.emit_progress(100.0)

    def _log_until_stop(self) -> str | None:
        """Sample on the device-time schedule until a stop condition (None: operator abort)."""
        next_checkpoint = time.monotonic() + self.checkpoint_interval
        next_dark = self._first_due(self.dark_interval)
        next_spectrum = self._first_due(self.spectrum_interval) if self.spectrometer else math.inf
        pending: list[tuple[Any, Any, dict[str, float]]] = []
        readings = 0
        compliance_run = 0
        next_sample = self.clock.device_s()  # the first reading at once
        while True:
            if self.should_stop():
                self.emit_event("warning", EVENT_STOP, "stopped by the operator")
                self._store_unfinished_l0(pending)
                return None
            device_s = self.clock.device_s()
            if device_s >= self.max_duration and not self.live_stop.reason:
                self._store_unfinished_l0(pending)
                return f"maximum stress duration {self.max_duration:g} device s reached"
            # -- occasional jobs: after the first readings, never inside the L0 burst -------
            if readings and not pending:
                if (
                    self.jlv_done < len(self.jlv_schedule)
                    and device_s >= self.jlv_schedule[self.jlv_done]
                ):
                    self._short_jlv()
                    next_sample = self.clock.device_s()
                    continue
                if device_s >= next_dark:
                    with self._stress_paused("the photodiode dark level"):
                        self.dark_a = self._measure_dark()
                    next_dark = self.clock.device_s() + self.dark_interval
                    next_sample = self.clock.device_s()
                    continue
                if device_s >= next_spectrum or (
                    self.spectrometer is not None and not self.spectrum_measured
                ):
                    self._take_spectrum()
                    next_spectrum = self.clock.device_s() + (self.spectrum_interval or math.inf)
                    next_sample = self.clock.device_s()
                    continue
                if time.monotonic() >= next_checkpoint:
                    self._checkpoint()
                    next_checkpoint = time.monotonic() + self.checkpoint_interval
            # -- one sample (device-time schedule, wall wait = device wait / acceleration) --
            if device_s < next_sample:
                wait_wall = self.clock.wall_until(next_sample)
                if not self.sleep(min(wait_wall, 0.5)):
                    continue
                device_s = self.clock.device_s()
                if device_s < next_sample:
                    continue
            wait = self.schedule(device_s)
            late_wall = (device_s - next_sample) / self.acceleration
            if late_wall > max(2.0 * wait / self.acceleration, 0.5):
                self.emit_event(
                    "warning",
                    EVENT_GAP,
                    f"no sample for {late_wall * self.acceleration + wait:.3g} device s "
                    f"(schedule interval {wait:.3g} s) at device time "
                    f"{device_s / S_PER_H:.4g} h",
                )
            smu, pd = self._read_point()
            readings += 1
            row = self._row(smu, pd)
            next_sample = max(next_sample + wait, row["device_time"])
            if not math.isfinite(self.l0) or (
                self.spectrometer is not None and not self.spectrum_measured
            ):
                # The first readings wait for L0 and for the first EL spectrum (a resumed
                # segment too), which turns their photocurrent into luminance.
                pending.append((smu, pd, row))
                if len(pending) >= L0_SAMPLES:
                    self._finish_l0(pending)
                    pending = []
                continue
            self._track(row)
            self.emit_row(row)
            # -- stop conditions -------------------------------------------------------
            compliance_run = compliance_run + 1 if row["in_compliance"] else 0
            if (
                self.stop_at_compliance
                and self.drive_mode != "voltage"
                and compliance_run >= COMPLIANCE_STOP_SAMPLES
            ):
                reason = (
                    f"the source stayed in compliance ({self.compliance_voltage:g} V) for "
                    f"{compliance_run} readings: the set current can no longer be driven"
                )
                self.emit_event("warning", "compliance", reason)
                return reason
            if self.live_stop.done(row["device_time"]):
                return self.live_stop.reason
            self._progress(row)

    def _track(self, row: dict[str, float]) -> None:
        """Feed the live stop; L/L0 is against the estimator's L0 once it has one."""
        if row["jlv_sweep"] == 0:
            self.live_stop.add(row["device_time"], row["luminance"], self.l0)
            l0 = self.live_stop.l0
            if math.isfinite(l0):
                self.l0 = l0
        row["relative_luminance"] = row["luminance"] / self.l0

    # ------------------------------------------------------------------ pieces
    def expected_row_interval_s(self, row: Mapping[str, float]) -> float | None:
        """Return the wall-time sampling interval here (the schedule is in device time)."""
        if row.get("jlv_sweep", 0) > 0:
            return None
        device_s = row.get("device_time")
        if device_s is None:
            device_s = self._device_time_s()
        return self.schedule(float(device_s)) / self.acceleration

    def _first_due(self, every_s: float) -> float:
        """Device time at which a job repeated every ``every_s`` device s is first due."""
        return self.clock.device_s() + every_s if every_s > 0 else math.inf

    def _announce(self) -> None:
        bench_kind = "simulated" if getattr(self.bench, "world", None) is not None else "real"
        self.emit_event(
            "info",
            "clock",
            f"device_time = wall time under stress x ageing_acceleration {self.acceleration:g} "
            f"({bench_kind} bench; 1 on real hardware)",
        )
        if self.spectrometer is None:
            self.emit_event(
                "warning",
                "nominal_spectrum",
                "no spectrometer: luminance uses a nominal Gaussian EL spectrum (peak "
                f"{self.el_peak:g} nm, FWHM {self.el_fwhm:g} nm)",
            )

    def _finish_l0(self, pending: list[tuple[Any, Any, dict[str, float]]]) -> None:
        """Fix the live L0 from the first samples (after the first spectrum) and emit them."""
        if self.spectrometer is not None and not self.spectrum_measured:
            self._take_spectrum()
        values = []
        for _smu, _pd, row in pending:
            row["luminance"] = self.luminance_per_a * row["photocurrent"]
            values.append(row["luminance"])
        finite = [v for v in values if math.isfinite(v)]
        if math.isfinite(self.l0):  # a resumed segment keeps its L0
            for _smu, _pd, row in pending:
                row["relative_luminance"] = row["luminance"] / self.l0
                self._track(row)
                self.emit_row(**row)
            return
        if not finite and all(pd.overflow for _smu, pd, _row in pending):
            raise RuntimeError(
                f"the photodiode overflowed on all {len(pending)} samples that fix L0: "
                "widen its range (pd_range, 0 = auto) or reduce the drive"
            )
        self.l0 = float(np.median(finite)) if finite else math.nan
        if not (self.l0 > 0):
            raise RuntimeError(
                f"initial luminance {self.l0:.4g} cd/m^2 is not positive: is the pixel lit, "
                "the photodiode facing it and its sign right?"
            )
        self.emit_event(
            "info",
            "l0",
            f"provisional L0 = {self.l0:.6g} cd/m^2 (median of the first {len(pending)} "
            "samples) until the decay fit gives L0 at switch-on",
        )
        for _smu, _pd, row in pending:
            row["relative_luminance"] = row["luminance"] / self.l0
            self._track(row)
            self.emit_row(**row)

    def _store_unfinished_l0(self, pending: list[tuple[Any, Any, dict[str, float]]]) -> None:
        """Store the samples of an L0 burst the run ended in the middle of (never drop data)."""
        if not pending:
            return
        for _smu, _pd, row in pending:
            self.emit_row(**row)
        self.emit_event(
            "warning",
            "l0",
            f"the run ended after {len(pending)} of the {L0_SAMPLES} samples that fix L0: "
            "they are stored without L/L0",
        )

    def _progress(self, row: Mapping[str, float]) -> None:
        by_time = row["device_time"] / self.max_duration
        relative = row["relative_luminance"]
        by_decay = (1.0 - relative) / (1.0 - self.stop_fraction) if math.isfinite(relative) else 0
        self.emit_progress(100.0 * min(0.99, max(0.0, by_time, by_decay)))

    def _checkpoint(self) -> None:
        """Save the simulated device's ageing state into the run (nothing on real hardware)."""
        world = getattr(self.bench, "world", None)
        if world is None or not hasattr(world, "state_dict"):
            return
        text = device_state_message(
            time.monotonic() - self.time_origin,
            self._device_time_s(),
            self.segment,
            world.state_dict(),
        )
        self.emit("event", {"level": "info", "kind": EVENT_DEVICE_STATE, "message": text})

    def _take_spectrum(self) -> None:
        """Take an EL spectrum under stress, record it and use it for the luminance."""
        from perovlab_daq.procedures._spectrum import SpectrumAcquirer

        if self.acquirer is None:
            self.acquirer = SpectrumAcquirer.for_procedure(
                self, dark=lambda: self._stress_paused("spectrometer dark frames")
            )
        before = time.monotonic()
        frame = self.acquirer.acquire(
            integration_time_s=self.el_integration / 1e3 or None, averages=int(self.el_averages)
        )
        smu, pd = self._read_point()
        grid = frame.corrected_wavelength_nm
        spectrum = np.asarray(frame.corrected, dtype=float)
        if np.count_nonzero(spectrum > 0) >= 3 and not frame.saturated:
            self.luminance_per_a = self._luminance_per_a(grid, spectrum)
            self.spectrum_measured = True
        elif not self.spectrum_measured:
            self.emit_event(
                "warning",
                "nominal_spectrum",
                "the EL spectrum is saturated or empty: luminance keeps the nominal spectrum "
                "until a usable one is measured",
            )
            self.spectrum_measured = True
        row = self._row(smu, pd)
        self.spectra_taken += 1
        context = {
            "time": row["time"],
            "device_time": row["device_time"],
            "voltage": row["voltage"],
            "current_density": row["current_density"],
            "photocurrent": row["photocurrent"],
            "luminance": row["luminance"],
            "relative_luminance": row["relative_luminance"],
            "segment": float(self.segment),
            "acquisition_s": time.monotonic() - before,
        }
        self.acquirer.emit(self, frame, **context)

    def _short_jlv(self) -> None:
        """Interrupt the stress for a short J-L-V sweep, then resume the stress."""
        from perovlab_daq.procedures.jlv import sweep_voltages

        index = self.jlv_done + 1
        top = self.jlv_stop_voltage
        voltages = sweep_voltages(0.0, top, top, self.jlv_step, self.jlv_step)
        self.emit_event(
            "info",
            "jlv",
            f"short J-L-V sweep {index}: 0 to {top:g} V in {self.jlv_step:g} V steps "
            f"at device time {self._device_time_s() / S_PER_H:.4g} h; stress resumes after",
        )
        mode = self.drive_mode
        try:
            self.call_with_retry(
                lambda: self.smu.apply_voltage_source(
                    compliance_current_a=self.compliance_current, nplc=self.nplc
                ),
                "source meter to voltage source",
                role="source_meter",
            )
            self.drive_mode = "voltage"
            for voltage in voltages:
                if self.should_stop():
                    return
                self._set_level(float(voltage))
                if self.jlv_dwell > 0 and not self.sleep(self.jlv_dwell):
                    return
                smu, pd = self._read_point()
                self.emit_row(**self._row(smu, pd, jlv_sweep=index))
                if smu.in_compliance:
                    self.emit_event(
                        "info", "jlv", f"sweep {index} stopped at {voltage:g} V (compliance)"
                    )
                    break
        finally:
            self.drive_mode = mode
            self.jlv_done = index
            self.call_with_retry(self._restore_stress, "stress restored", role="source_meter")
        self.emit_event("info", "jlv", f"short J-L-V sweep {index} done; stress resumed")

    def _restore_stress(self) -> None:
        if self.drive_mode == "voltage":
            self.smu.apply_voltage_source(
                compliance_current_a=self.compliance_current, nplc=self.nplc
            )
            self.smu.source_voltage = self.drive_level
        else:
            self.smu.apply_current_source(
                compliance_voltage_v=self.compliance_voltage, nplc=self.nplc
            )
            self.smu.source_current = self.drive_level
        self.smu.output_enabled = True

    # ------------------------------------------------------------------ analysis and report
