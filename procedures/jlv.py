"""J-L-V sweeps of a perovskite LED: current density, luminance and EQE against voltage.

The procedure ``jlv`` steps the source meter through a voltage ramp (a fine step below a
changeover voltage, a coarse step above it), forward, reverse or both ways (hysteresis),
and at each point records the device current and the photodiode current facing the
pixel. The dark level of the photodiode (mean and noise of ``dark_readings`` readings) is
measured before the sweep and subtracted, never clipped: negative photocurrent is noise.
At every point where the photodiode sees light (photocurrent above ``el_detect_sigma``
times the dark noise) an EL spectrum is taken at that bias (``el_each_point``, default on),
so that luminance and EQE of each point use the spectrum at its own bias (the EL of many
samples shifts with bias; REFERENCE section 3). An EL spectrum taken after the sweep at a
chosen bias (by default the brightest point) is kept as the single-spectrum fallback.

Luminance strategy (docs/procedures/jlv.md): the live ``luminance``/``eqe``/
``current_efficiency``/``luminous_efficacy`` columns are *provisional*: they use the
point's own spectrum when one was taken, else the last one, else the nominal EL band of
the parameters (a Gaussian at ``el_peak`` with ``el_fwhm``). The key figures and the report
(:mod:`perovlab_daq.figures.jlv`) are always recomputed from the stored raw columns
(``photocurrent``, ``current``, ``voltage``), the stored EL spectrum and the stored
set-up, so a file written by another program is analysed the same way, and the
provisional columns never leak into a reported figure.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
from perovlab_daq.procedures._jlv_sweep import (  # re-exported: the sweep plan and its parsing
    MAX_EL_BIASES,
    MAX_POINTS_PER_SWEEP,
    parse_bias_list,
    parse_el_bias,
    parse_voltage,
    sweep_voltages,
)
from perovlab_daq.procedures.base import DaqProcedure, ParameterError
from pymeasure.experiment import (
    BooleanParameter,
    FloatParameter,
    IntegerParameter,
    ListParameter,
    Metadata,
    Parameter,
)

from perovlab_daq.analysis.efficiency import (  # re-exported: the J-L-V photometry
    NOMINAL_GRID_NM,
    PhotometricFactors,
    nominal_el_spectrum,
)
from perovlab_daq.calibration import load_calibration_csv

__all__ = [
    "MAX_EL_BIASES",
    "MAX_POINTS_PER_SWEEP",
    "MIN_POINT_SPECTRUM_SNR",
    "NOMINAL_GRID_NM",
    "RESPONSIVITY_STREAM",
    "SPECTRA_STREAM",
    "JlvProcedure",
    "PhotometricFactors",
    "nominal_el_spectrum",
    "parse_bias_list",
    "parse_el_bias",
    "parse_voltage",
    "sweep_voltages",
]

log = logging.getLogger(__name__)

#: A lit point's EL spectrum is used for that point (live columns and analysis) only when
#: its peak is this many times its per-pixel noise sigma; dimmer points, just above the
#: photodiode's threshold, are interpolated from their neighbours instead.
MIN_POINT_SPECTRUM_SNR = 20.0
#: Frame stream of the EL spectra, and of the photodiode responsivity curve.
SPECTRA_STREAM = "spectra"
RESPONSIVITY_STREAM = "responsivity"

_DIRECTIONS = {"forward": (1,), "reverse": (-1,), "both": (1, -1)}


# --------------------------------------------------------------------------- procedure
class JlvProcedure(DaqProcedure):
    """J-L-V sweep: J, photocurrent, luminance and EQE against voltage; EL spectra at biases.

    See ``docs/procedures/jlv.md`` for the parameters, what is recorded and how luminance
    and EQE are computed.
    """

    SUMMARY_FIGURES = (
        "peak_eqe_pct",
        "eqe_at_100_ma_cm2_pct",
        "max_luminance_cd_m2",
        "turn_on_voltage_v",
    )

    NAME: ClassVar[str] = "jlv"
    TITLE: ClassVar[str] = "J-L-V sweep (current density, luminance, EQE against voltage)"
    REQUIRED_ROLES: ClassVar[tuple[str, ...]] = ("source_meter", "photodetector")
    OPTIONAL_ROLES: ClassVar[tuple[str, ...]] = ("spectrometer",)
    COLUMNS: ClassVar[dict[str, str]] = {
        "time": "s",
        "voltage_setpoint": "V",
        "voltage": "V",
        "current": "A",
        "current_density": "mA/cm^2",
        "photocurrent": "A",
        "luminance": "cd/m^2",
        "eqe": "%",
        "current_efficiency": "cd/A",
        "luminous_efficacy": "lm/W",
        "sweep_index": "",
        "direction": "",
        "in_compliance": "",
        "photodiode_overflow": "",
    }

    # -- sweep ------------------------------------------------------------------------
    start_voltage = FloatParameter(
        "Start voltage", units="V", minimum=-20, maximum=100, default=0.0
    )
    stop_voltage = FloatParameter("Stop voltage", units="V", minimum=-20, maximum=100, default=8.0)
    changeover_voltage = FloatParameter(
        "Changeover voltage", units="V", minimum=-20, maximum=100, default=3.0
    )
    fine_step = FloatParameter(
        "Fine step (below changeover)", units="V", minimum=0.001, maximum=10, default=0.05
    )
    coarse_step = FloatParameter(
        "Coarse step (above changeover)", units="V", minimum=0.001, maximum=10, default=0.1
    )
    direction = ListParameter(
        "Sweep direction", choices=["forward", "reverse", "both"], default="forward"
    )
    dwell = FloatParameter("Dwell per point", units="s", minimum=0, maximum=60, default=0.05)
    prebias_voltage = FloatParameter(
        "Pre-bias voltage", units="V", minimum=-20, maximum=100, default=0.0
    )
    prebias_time = FloatParameter("Pre-bias time", units="s", minimum=0, maximum=600, default=0.0)
    compliance_current = FloatParameter(
        "Current compliance", units="A", minimum=1e-6, maximum=1.0, default=0.1
    )
    nplc = FloatParameter("Source meter NPLC", minimum=0.01, maximum=10, default=1.0)
    stop_at_compliance = BooleanParameter("Stop the upward sweep at compliance", default=True)
    stop_at_saturation = BooleanParameter(
        "Stop the upward sweep when the photodiode overflows", default=True
    )
    luminance_limit = FloatParameter(
        "Stop the upward sweep above luminance (0 = no limit)",
        units="cd/m^2",
        minimum=0,
        maximum=1e7,
        default=0.0,
    )
    # -- photodiode and set-up ----------------------------------------------------------
    pd_nplc = FloatParameter("Photodetector NPLC", minimum=0.01, maximum=50, default=1.0)
    pd_range = FloatParameter(
        "Photodetector range (0 = auto)", units="A", minimum=0, maximum=0.021, default=0.0
    )
    dark_readings = IntegerParameter("Dark readings averaged", minimum=1, maximum=1000, default=10)
    device_area = FloatParameter(
        "Device area (0 = bench setup)", units="cm^2", minimum=0, maximum=100, default=0.0
    )
    pd_radius = FloatParameter(
        "Photodiode radius (0 = bench setup)", units="mm", minimum=0, maximum=100, default=0.0
    )
    pd_distance = FloatParameter(
        "Photodiode distance (0 = bench setup)", units="mm", minimum=0, maximum=10000, default=0.0
    )
    # -- EL spectra ---------------------------------------------------------------------
    el_bias = Parameter("EL spectrum bias (V or auto)", default="auto")
    el_biases = Parameter("Extra EL spectra at biases (V, comma separated)", default="")
    el_integration = FloatParameter(
        "EL integration time (0 = automatic)", units="ms", minimum=0, maximum=60000, default=0.0
    )
    el_averages = IntegerParameter("EL spectra averaged", minimum=1, maximum=100, default=1)
    el_each_point = BooleanParameter("EL spectrum at every lit sweep point", default=True)
    el_detect_sigma = FloatParameter(
        "Lit point threshold (photocurrent over dark noise)",
        units="dark sigma",
        minimum=1.0,
        maximum=1e6,
        default=10.0,
    )
    el_peak = FloatParameter(
        "Nominal EL peak (no spectrometer)", units="nm", minimum=300, maximum=1100, default=660.0
    )
    el_fwhm = FloatParameter(
        "Nominal EL FWHM (no spectrometer)", units="nm", minimum=1, maximum=300, default=30.0
    )

    # -- recorded after startup (entry/metadata) -----------------------------------------
    # Keys of entry/metadata: evaluated after startup (pymeasure Metadata).
    dark_photocurrent_a = Metadata("Dark photocurrent", fget="_dark_photocurrent_a", units="A")
    dark_photocurrent_noise_a = Metadata(
        "Dark photocurrent noise (standard deviation)", fget="_dark_noise_a", units="A"
    )
    resolved_device_area_cm2 = Metadata("Device area used", fget="_area_cm2", units="cm^2")
    resolved_photodiode_radius_mm = Metadata(
        "Photodiode radius used", fget="_pd_radius_mm", units="mm"
    )
    resolved_photodiode_distance_mm = Metadata(
        "Photodiode distance used", fget="_pd_distance_mm", units="mm"
    )
    responsivity_file = Metadata("Responsivity file", fget="_responsivity_path")
    responsivity_sha256 = Metadata("Responsivity file sha256", fget="_responsivity_sha256")
    spectrometer_sensitivity_file = Metadata("Sensitivity file", fget="_sensitivity_path")
    spectrometer_sensitivity_sha256 = Metadata(
        "Sensitivity file sha256", fget="_sensitivity_sha256"
    )
    el_spectrum_plan = Metadata("EL spectrum for luminance/EQE", fget="_spectrum_plan")

    # ------------------------------------------------------------------ validation
    @classmethod
    def check_consistency(cls, values: Mapping[str, Any]) -> None:
        """Refuse sweeps whose parameters are each valid but wrong together.

        Raises
        ------
        ParameterError
            Naming the parameter to change: ``stop_voltage`` not above ``start_voltage``,
            ``changeover_voltage`` outside the sweep, a step not smaller than the range it
            covers, too many points, a pre-bias without time, or an unreadable
            ``el_bias``/``el_biases``.
        """
        start, stop = float(values["start_voltage"]), float(values["stop_voltage"])
        changeover = float(values["changeover_voltage"])
        fine, coarse = float(values["fine_step"]), float(values["coarse_step"])
        if stop <= start:
            raise ParameterError(
                "stop_voltage", stop, f"a voltage above start_voltage = {start:g} V"
            )
        if not start <= changeover <= stop:
            raise ParameterError(
                "changeover_voltage",
                changeover,
                f"a voltage from start_voltage {start:g} to stop_voltage {stop:g} V",
            )
        if changeover > start and fine >= changeover - start:
            raise ParameterError(
                "fine_step",
                fine,
                f"a step smaller than changeover_voltage - start_voltage"
                f" = {changeover - start:g} V",
            )
        if stop > changeover and coarse >= stop - changeover:
            raise ParameterError(
                "coarse_step",
                coarse,
                f"a step smaller than stop_voltage - changeover_voltage = {stop - changeover:g} V",
            )
        count = sweep_voltages(start, stop, changeover, fine, coarse).size
        if count > MAX_POINTS_PER_SWEEP:
            raise ParameterError(
                "fine_step",
                fine,
                f"steps giving at most {MAX_POINTS_PER_SWEEP} points per sweep "
                f"(these give {count})",
            )
        if (
            float(values.get("prebias_voltage") or 0.0) != 0.0
            and float(values.get("prebias_time") or 0) == 0
        ):
            raise ParameterError(
                "prebias_time", values.get("prebias_time"), "a time > 0 s with a pre-bias"
            )
        el_bias = parse_el_bias(str(values.get("el_bias", "auto")))
        biases = parse_bias_list(str(values.get("el_biases") or ""), "el_biases")
        for name, bias in [("el_bias", el_bias), *(("el_biases", b) for b in biases)]:
            if bias is not None and not -20.0 <= bias <= 100.0:
                raise ParameterError(name, bias, "a bias from -20 to 100 V")

    # ------------------------------------------------------------------ life cycle
    def startup(self) -> None:
        """Resolve the set-up, load the calibration files, configure both instruments.

        Raises
        ------
        RuntimeError
            If the bench lacks a role, the set-up lacks a value, or the responsivity
            file cannot be read (before any output is switched on).
        """
        from perovlab_daq.storage.layout import sha256_of

        self.check_consistency(
            {name: getattr(self, name) for name in self.parameter_objects_of_class()}
        )
        self.smu = self.instrument("source_meter")
        self.photodetector = self.instrument("photodetector")
        self.spectrometer = (
            self.bench.get("spectrometer") if self.has_role("spectrometer") else None
        )
        setup = dict(getattr(getattr(self.bench, "config", None), "setup", {}) or {})
        self._area_cm2 = self._resolve(self.device_area, setup, "device_area_cm2")
        self._pd_radius_mm = self._resolve(self.pd_radius, setup, "photodiode_radius_mm")
        self._pd_distance_mm = self._resolve(self.pd_distance, setup, "photodiode_distance_mm")
        responsivity_path = setup.get("responsivity_file")
        if not responsivity_path:
            raise RuntimeError(
                "the bench setup has no responsivity_file (photodiode A/W against nm): "
                "luminance and EQE cannot be computed"
            )
        self.responsivity = load_calibration_csv(responsivity_path)
        self._responsivity_path = str(responsivity_path)
        self._responsivity_sha256 = sha256_of(responsivity_path)
        sensitivity_path = setup.get("spectrometer_sensitivity_file")
        self._sensitivity_path = str(sensitivity_path or "")
        self._sensitivity_sha256 = sha256_of(sensitivity_path) if sensitivity_path else ""
        self._spectrum_plan = "measured" if self.spectrometer is not None else "nominal"
        self._dark_photocurrent_a = math.nan
        self._dark_noise_a = math.nan
        self.rows: list[dict[str, float]] = []
        self.acquirer: Any = None
        self.factors = PhotometricFactors.compute(
            *nominal_el_spectrum(self.el_peak, self.el_fwhm),
            self.responsivity,
            self._area_cm2,
            self._pd_radius_mm,
            self._pd_distance_mm,
        )

        range_a = self.pd_range if self.pd_range > 0 else None
        self.call_with_retry(
            lambda: self.photodetector.configure(nplc=self.pd_nplc, current_range_a=range_a),
            "photodetector configure",
            role="photodetector",
        )

        def configure_source() -> None:
            self.smu.output_enabled = False
            self.smu.apply_voltage_source(
                compliance_current_a=self.compliance_current, nplc=self.nplc
            )
            self.smu.source_voltage = 0.0

        self.call_with_retry(configure_source, "source meter configure", role="source_meter")
        self._dark_photocurrent_a = self._measure_dark()

    def _resolve(self, value: float, setup: Mapping[str, Any], key: str) -> float:
        if value and value > 0:
            return float(value)
        if setup.get(key) is None:
            raise RuntimeError(
                f"{key}: not set as a parameter and missing from the bench setup ({key})"
            )
        return float(setup[key])

    def _measure_dark(self) -> float:
        """Average the photodiode with the LED output off: the level subtracted from every point."""
        readings = []
        for _ in range(int(self.dark_readings)):
            reading = self.call_with_retry(
                self.photodetector.read_current, "photodetector dark reading", role="photodetector"
            )
            if not reading.overflow and math.isfinite(reading.current_a):
                readings.append(reading.current_a)
        if not readings:
            raise RuntimeError("the photodiode overflowed on every dark reading: check its range")
        dark = float(np.mean(readings))
        self._dark_noise_a = float(np.std(readings, ddof=1)) if len(readings) > 1 else math.nan
        log.info("dark photocurrent %.4g A from %d readings", dark, len(readings))
        return dark

    def _lit(self, row: Mapping[str, float]) -> bool:
        """Return whether the photodiode sees light at a row (``el_detect_sigma`` rule).

        With a single dark reading the noise is unknown: any positive photocurrent counts.
        """
        noise = self._dark_noise_a if math.isfinite(self._dark_noise_a) else 0.0
        photocurrent = row["photocurrent"]
        return bool(
            math.isfinite(photocurrent)
            and not row["photodiode_overflow"]
            and photocurrent > self.el_detect_sigma * noise
            and photocurrent > 0
        )

    def execute(self) -> None:
        """Pre-bias, sweep, then take the EL spectra; rows, frames and events are emitted live."""
        # The curve goes into the file so that the analysis needs nothing outside it.
        self.emit_frame(
            self.responsivity[1], self.responsivity[0], RESPONSIVITY_STREAM, intensity_units="A/W"
        )
        self.emit_event(
            "info",
            "dark",
            f"dark photocurrent {self._dark_photocurrent_a:.4g} A "
            f"(mean of {self.dark_readings} readings, output off; noise "
            f"{self._dark_noise_a:.3g} A); subtracted from every point",
        )
        if self.spectrometer is not None and self.el_each_point:
            self.emit_event(
                "info",
                "el_each_point",
                "an EL spectrum is taken at every point whose photocurrent exceeds "
                f"{self.el_detect_sigma:g} x the dark noise; each point's luminance and EQE "
                "use the spectrum at its own bias",
            )
        self.emit_event(
            "info",
            "provisional",
            "live luminance/EQE columns use the latest point spectrum, else the nominal EL "
            f"band ({self.el_peak:g} nm, FWHM {self.el_fwhm:g} nm); the analysis "
            "recomputes them from photocurrent, current and the stored EL spectra",
        )
        if self.spectrometer is None:
            self.emit_event(
                "warning",
                "nominal_spectrum",
                "no spectrometer on the bench: luminance and EQE use a nominal Gaussian EL "
                f"spectrum (peak {self.el_peak:g} nm, FWHM {self.el_fwhm:g} nm)",
            )
        points = sweep_voltages(
            self.start_voltage,
            self.stop_voltage,
            self.changeover_voltage,
            self.fine_step,
            self.coarse_step,
        )
        signs = _DIRECTIONS[self.direction]
        self._total_points = len(points) * len(signs)
        self._done_points = 0
        self._t0 = time.monotonic()

        self.call_with_retry(
            lambda: setattr(self.smu, "output_enabled", True), "output on", role="source_meter"
        )
        if self.prebias_time > 0:
            self.emit_event(
                "info",
                "prebias",
                f"pre-bias {self.prebias_voltage:g} V for {self.prebias_time:g} s",
            )
            self._set_voltage(self.prebias_voltage)
            if not self.sleep(self.prebias_time):
                return
        top_index = len(points) - 1
        for sweep_index, sign in enumerate(signs):
            if sign > 0:
                voltages = points[: top_index + 1]
            elif sweep_index == 0:
                voltages = points[::-1]
            else:
                # The reverse half of a hysteresis loop starts below the last point reached.
                voltages = points[:top_index][::-1]
            completed, top_index = self._sweep(sweep_index, sign, voltages, top_index)
            if not completed:
                return
        self._set_voltage(0.0)
        self._take_el_spectra()
        self._set_voltage(0.0)
        self.call_with_retry(
            lambda: setattr(self.smu, "output_enabled", False), "output off", role="source_meter"
        )
        self.emit_progress(100.0)

    # ------------------------------------------------------------------ sweep
    def _set_voltage(self, voltage_v: float) -> None:
        self.call_with_retry(
            lambda: setattr(self.smu, "source_voltage", float(voltage_v)),
            f"set {voltage_v:g} V",
            role="source_meter",
        )

    def _measure_point(self) -> tuple[Any, Any]:
        smu = self.call_with_retry(self.smu.read_all, "source meter read", role="source_meter")
        pd = self.call_with_retry(
            self.photodetector.read_current, "photodetector read", role="photodetector"
        )
        return smu, pd

    def _sweep(
        self, sweep_index: int, sign: int, voltages: Sequence[float], top_index: int
    ) -> tuple[bool, int]:
        """Run one sweep; return (not aborted, index of the highest point reached)."""
        label = "forward" if sign > 0 else "reverse"
        started = time.monotonic()
        if len(voltages):
            self.emit_event(
                "info",
                "sweep",
                f"sweep {sweep_index} {label}: {voltages[0]:g} V to {voltages[-1]:g} V, "
                f"{len(voltages)} points, dwell {self.dwell:g} s, pre-bias "
                f"{self.prebias_voltage:g} V for {self.prebias_time:g} s",
            )
        reached = top_index
        for position, voltage in enumerate(voltages):
            if self.should_stop():
                log.warning("sweep %d aborted at %g V", sweep_index, voltage)
                return False, reached
            self._set_voltage(voltage)
            # No sleep call for dwell 0: should_stop was just checked above.
            if self.dwell > 0 and not self.sleep(self.dwell):
                return False, reached
            smu, pd = self._measure_point()
            row = self._row(voltage, smu, pd, sweep_index, sign)
            if self.spectrometer is not None and self.el_each_point and self._lit(row):
                if self._point_spectrum(len(self.rows), row):
                    # The live columns use this point's own spectrum from now on.
                    row = {**self._row(voltage, smu, pd, sweep_index, sign), "time": row["time"]}
            self.rows.append(row)
            self.emit_row(**row)
            self._done_points += 1
            self.emit_progress(95.0 * self._done_points / max(1, self._total_points))
            if sign > 0:
                reached = min(top_index, position) if sweep_index else position
                reason = self._stop_reason(row)
                if reason:
                    self.emit_event(
                        "warning",
                        "sweep_stopped",
                        f"sweep {sweep_index} stopped at {voltage:g} V: {reason}",
                    )
                    self._total_points -= len(voltages) - position - 1
                    break
            else:
                reason = self._stop_reason(row)
                if reason:
                    self.emit_event(
                        "warning", "limit", f"{voltage:g} V: {reason} (downward sweep continues)"
                    )
        elapsed = time.monotonic() - started
        swept = self.rows[-1]["voltage_setpoint"] - voltages[0] if len(voltages) else 0.0
        rate = abs(swept) / elapsed if elapsed > 0 else math.nan
        self.emit_event(
            "info", "sweep_done", f"sweep {sweep_index} {label} done: mean rate {rate:.4g} V/s"
        )
        return True, reached

    def _row(self, setpoint: float, smu: Any, pd: Any, sweep_index: int, sign: int) -> dict:
        current = float(smu.current_a)
        photocurrent = (
            float(pd.current_a) - self._dark_photocurrent_a if not pd.overflow else math.nan
        )
        voltage = float(smu.voltage_v)
        density = current * 1e3 / self._area_cm2
        luminance = self.factors.luminance_per_a * photocurrent
        eqe = self.factors.eqe_pct_per_ratio * photocurrent / current if current > 0 else math.nan
        cd_a = luminance / (density * 10.0) if density > 0 else math.nan
        lm_w = math.pi * cd_a / voltage if voltage > 0 and density > 0 else math.nan
        if not self._lit({"photocurrent": photocurrent, "photodiode_overflow": pd.overflow}):
            # Below turn-on the ratios of noise are undefined: NaN, never a negative EQE.
            eqe = cd_a = lm_w = math.nan
        return {
            "time": time.monotonic() - self._t0,
            "voltage_setpoint": float(setpoint),
            "voltage": voltage,
            "current": current,
            "current_density": density,
            "photocurrent": photocurrent,
            "luminance": luminance,
            "eqe": eqe,
            "current_efficiency": cd_a,
            "luminous_efficacy": lm_w,
            "sweep_index": float(sweep_index),
            "direction": float(sign),
            "in_compliance": float(bool(smu.in_compliance)),
            "photodiode_overflow": float(bool(pd.overflow)),
        }

    def _stop_reason(self, row: Mapping[str, float]) -> str:
        if self.stop_at_compliance and row["in_compliance"]:
            return f"current compliance {self.compliance_current:g} A reached"
        if self.stop_at_saturation and row["photodiode_overflow"]:
            return "photodiode overflow (saturation)"
        limit = self.luminance_limit
        if limit > 0 and row["luminance"] >= limit:
            return f"luminance {row['luminance']:.4g} cd/m^2 above the limit {limit:g} cd/m^2"
        return ""

    # ------------------------------------------------------------------ EL spectra
    def _brightest_setpoint(self) -> float | None:
        lit = [
            r
            for r in self.rows
            if math.isfinite(r["photocurrent"]) and not r["photodiode_overflow"]
        ]
        if not lit:
            return None
        return max(lit, key=lambda r: r["photocurrent"])["voltage_setpoint"]

    def _take_el_spectra(self) -> None:
        if self.spectrometer is None:
            return
        main_bias = parse_el_bias(self.el_bias)
        if main_bias is None:
            main_bias = self._brightest_setpoint()
            if main_bias is None:
                self.emit_event("warning", "el_spectrum", "no usable sweep point: no EL spectrum")
                return
            self.emit_event(
                "info", "el_spectrum", f"EL spectrum at the brightest point, {main_bias:g} V"
            )
        jobs = [(main_bias, 1.0), *((b, 0.0) for b in parse_bias_list(self.el_biases))]
        from perovlab_daq.procedures._spectrum import SpectrumAcquisitionError
        from perovlab_daq.procedures.base import InstrumentFault

        for bias, for_eqe in jobs:
            if self.should_stop():
                return
            try:
                self._el_spectrum_at(bias, for_eqe)
            except (SpectrumAcquisitionError, InstrumentFault) as exc:
                # The sweep is stored already; a missing spectrum only changes which
                # spectrum the analysis uses (another frame, else the nominal band).
                self.emit_event("error", "el_spectrum", f"no EL spectrum at {bias:g} V: {exc}")

    def _point_spectrum(self, row_index: int, row: Mapping[str, float]) -> bool:
        """Take the EL spectrum of one lit sweep point, at its bias, indexed to its row.

        Returns whether the live photometric factors now come from this spectrum.
        """
        from perovlab_daq.procedures._spectrum import SpectrumAcquirer, SpectrumAcquisitionError
        from perovlab_daq.procedures.base import InstrumentFault

        if self.acquirer is None:
            self.acquirer = SpectrumAcquirer.for_procedure(self, dark=self._led_off)
        try:
            frame = self.acquirer.acquire(
                integration_time_s=self.el_integration / 1e3 if self.el_integration else None,
                averages=int(self.el_averages),
            )
        except (SpectrumAcquisitionError, InstrumentFault) as exc:
            # The analysis interpolates between the spectra of the neighbouring points.
            self.emit_event(
                "warning", "el_spectrum", f"no EL spectrum at {row['voltage_setpoint']:g} V: {exc}"
            )
            return False
        self.acquirer.emit(
            self,
            frame,
            bias=row["voltage_setpoint"],
            voltage=row["voltage"],
            current=row["current"],
            current_density=row["current_density"],
            photocurrent=row["photocurrent"],
            eqe_spectrum=0.0,
            row_index=float(row_index),
            sweep_index=row["sweep_index"],
        )
        from perovlab_daq.analysis.windows import spectrum_snr

        if frame.saturated or not spectrum_snr(frame.corrected) >= MIN_POINT_SPECTRUM_SNR:
            return False
        try:
            self.factors = PhotometricFactors.compute(
                frame.corrected_wavelength_nm,
                frame.corrected,
                self.responsivity,
                self._area_cm2,
                self._pd_radius_mm,
                self._pd_distance_mm,
            )
        except ValueError:  # a spectrum of noise alone: keep the previous factors
            return False
        return True

    @contextlib.contextmanager
    def _led_off(self) -> Iterator[None]:
        """Switch the LED output off for a spectrometer dark frame, then back on."""
        self.call_with_retry(
            lambda: setattr(self.smu, "output_enabled", False), "output off", role="source_meter"
        )
        try:
            yield
        finally:
            self.call_with_retry(
                lambda: setattr(self.smu, "output_enabled", True), "output on", role="source_meter"
            )

    def _el_spectrum_at(self, bias_v: float, for_eqe: float) -> None:
        """Take one EL spectrum at ``bias_v``; record it with the electrical state around it."""
        from perovlab_daq.procedures._spectrum import SpectrumAcquirer

        if self.acquirer is None:
            self.acquirer = SpectrumAcquirer.for_procedure(self, dark=self._led_off)
        self._set_voltage(bias_v)
        if not self.sleep(self.dwell):
            return
        smu_before, pd_before = self._measure_point()
        frame = self.acquirer.acquire(
            integration_time_s=self.el_integration / 1e3 if self.el_integration else None,
            averages=int(self.el_averages),
        )
        # The dark frame switched the output off and on again: let the LED settle.
        if not self.sleep(self.dwell):
            return
        smu_after, pd_after = self._measure_point()
        current = 0.5 * (smu_before.current_a + smu_after.current_a)
        photocurrent = 0.5 * (pd_before.current_a + pd_after.current_a) - self._dark_photocurrent_a
        self.acquirer.emit(
            self,
            frame,
            bias=float(bias_v),
            voltage=0.5 * (smu_before.voltage_v + smu_after.voltage_v),
            current=current,
            current_density=current * 1e3 / self._area_cm2,
            photocurrent=photocurrent,
            eqe_spectrum=for_eqe,
            row_index=math.nan,
            sweep_index=math.nan,
        )
