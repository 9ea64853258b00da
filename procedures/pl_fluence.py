"""Excitation-power (fluence) series of PL spectra and the PL power law (``pl-fluence``).

The laser power at the sample is stepped on a logarithmic grid over the laser's regulated
range, extended downwards through the ND filter wheel when one is fitted (each filter's
transmission is measured first). At every step the power meter is read and a
dark-subtracted, calibrated spectrum is taken with emission on only for those readings.
The series goes up and, optionally, back down so that hysteresis (photo-brightening,
bleaching, segregation) shows as a difference between the two branches.

Excitation (REFERENCE §3): CW power density I = P / A_spot (W/cm^2); for a pulsed source
with repetition rate f, pulse energy E_p = P / f and fluence per pulse F = E_p / A_spot
(J/cm^2, flat-top spot convention; the Gaussian peak fluence would be 2x for A = pi w^2 / 2).
The analysis fits integrated PL = C x^k on the upward branch (x = power density or fluence)
with :func:`perovlab_daq.analysis.power_law_slope`.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from pymeasure.experiment import BooleanParameter, FloatParameter, IntegerParameter, ListParameter

from procedures._laser import (
    CLAMP_TOLERANCE,
    LaserSpectroscopyProcedure,
    log_spaced,
    pl_window,
)
from procedures._spectrum import band_integrals, run_columns, window_peak_metrics
from procedures.base import ParameterError

log = logging.getLogger(__name__)

EXCITATION_KINDS = ("cw", "pulsed")
#: Steps whose integrated PL has a lower signal-to-noise ratio are left out of the fit.
FIT_MIN_SNR = 20.0
#: The PL band integrated for the power law: the brightest spectrum's centre +- this many FWHM.
BAND_HALF_WIDTH_FWHM = 2.0


class PlFluenceProcedure(LaserSpectroscopyProcedure):
    """PL spectra against excitation power, up then optionally down; power-law exponent."""

    SUMMARY_FIGURES = ("power_law_exponent", "power_law_exponent_stderr", "centre_shift_nm")

    NAME: ClassVar[str] = "pl-fluence"
    TITLE: ClassVar[str] = "PL excitation-power (fluence) series"
    REQUIRED_ROLES: ClassVar[tuple[str, ...]] = ("laser", "spectrometer", "power_meter")
    OPTIONAL_ROLES: ClassVar[tuple[str, ...]] = ("filter_wheel", "sample_stage")
    COLUMNS: ClassVar[dict[str, str]] = {
        "time": "s",
        "step": "",
        "direction": "",
        "laser_wavelength": "nm",
        "laser_power_setpoint": "W",
        "filter_position": "",
        "excitation_power": "W",
        "power_density": "W/cm^2",
        "pulse_energy": "J",
        "fluence": "J/cm^2",
        "integration_time": "s",
        "saturated": "",
        "peak_wavelength": "nm",
        "centre_wavelength": "nm",
        "fwhm": "nm",
        "integrated_pl": "a.u.",
        "signal_to_noise": "",
    }

    power_min_w = FloatParameter(
        "Lowest power at the sample (0 = lowest reachable)",
        units="W",
        minimum=0.0,
        maximum=1.0,
        default=0.0,
    )
    power_max_w = FloatParameter(
        "Highest power at the sample (0 = laser maximum)",
        units="W",
        minimum=0.0,
        maximum=1.0,
        default=0.0,
    )
    steps = IntegerParameter("Power steps (log-spaced)", minimum=2, maximum=200, default=12)
    sweep_down = BooleanParameter("Sweep back down (hysteresis)", default=False)
    excitation = ListParameter("Excitation", choices=EXCITATION_KINDS, default="cw")
    repetition_rate_hz = FloatParameter(
        "Repetition rate (pulsed)", units="Hz", minimum=0.0, maximum=1e10, default=0.0
    )
    dwell_s = FloatParameter(
        "Laser-off wait between steps", units="s", minimum=0.0, maximum=600.0, default=0.0
    )
    pl_window_low_nm = FloatParameter(
        "PL window start (0 = laser + 20 nm)", units="nm", minimum=0.0, maximum=2000.0, default=0.0
    )
    pl_window_high_nm = FloatParameter(
        "PL window end (0 = detector end)", units="nm", minimum=0.0, maximum=2000.0, default=0.0
    )

    @classmethod
    def check_consistency(cls, values: Mapping[str, Any]) -> None:
        """Refuse an inverted power range and a pulsed series without a repetition rate."""
        super().check_consistency(values)
        low = float(values.get("power_min_w", 0) or 0)
        high = float(values.get("power_max_w", 0) or 0)
        if low > 0 and high > 0 and high <= low:
            raise ParameterError("power_max_w", high, f"more than power_min_w = {low:g} W")
        if values.get("excitation") == "pulsed" and not float(
            values.get("repetition_rate_hz", 0) or 0
        ):
            raise ParameterError(
                "repetition_rate_hz", values.get("repetition_rate_hz"), "> 0 Hz for pulsed"
            )

    def startup(self) -> None:
        """Laser ready, filter transmissions measured, power grid planned."""
        self.prepare_laser()
        self.place_sample("STAGE")
        self.make_acquirer()
        self.area_cm2 = self.spot_area()
        assert self._planner is not None
        reach_low, reach_high = self._planner.reachable_w
        low = self.power_min_w if self.power_min_w > 0 else reach_low
        high = self.power_max_w if self.power_max_w > 0 else reach_high
        margin = 1.0 + CLAMP_TOLERANCE
        if low < reach_low / margin or high > reach_high * margin:
            raise RuntimeError(
                f"power range {low:.4g} to {high:.4g} W is outside what this bench reaches at "
                f"the sample ({reach_low:.4g} to {reach_high:.4g} W"
                f"{'' if self.has_role('filter_wheel') else '; no filter wheel fitted'})"
            )
        if high <= low:
            raise RuntimeError(f"power range {low:.4g} to {high:.4g} W is empty")
        upward = log_spaced(low, high, int(self.steps))
        self.plan = [(float(p), 1) for p in upward]
        if self.sweep_down:
            self.plan += [(float(p), -1) for p in upward[-2::-1]]
        self.emit_event(
            "info",
            "plan",
            f"{len(self.plan)} steps from {low:.4g} to {high:.4g} W "
            f"({'up and down' if self.sweep_down else 'up'}), spot {self.area_cm2:.4g} cm^2",
        )
        self.started = time.monotonic()

    def execute(self) -> None:
        """Step the power; emission on only while each step is measured."""
        try:
            for index, (target_w, direction) in enumerate(self.plan):
                if self.should_stop():
                    log.warning("pl-fluence aborted at step %d", index)
                    return
                self.measure(index, target_w, direction)
                self.emit("progress", 100.0 * (index + 1) / len(self.plan))
                if self.dwell_s > 0 and not self.sleep(self.dwell_s):
                    return
        finally:
            self.laser_off()

    def measure(self, index: int, target_w: float, direction: int) -> None:
        """Take and record the spectrum of one power step."""
        step = self.set_power_at_sample(target_w)
        with self.emission():
            measured = self.read_power_w()
            corrected = self.correct_power(step, measured)
            if corrected is not step:
                step = corrected
                measured = self.read_power_w()
            frame = self.acquire_spectrum()
            after = self.read_power_w()
        power = float(np.mean([measured, after]))
        density = power / self.area_cm2
        pulsed = self.excitation == "pulsed"
        pulse_energy = power / self.repetition_rate_hz if pulsed else math.nan
        fluence = pulse_energy / self.area_cm2 if pulsed else math.nan
        low, high = self.pl_window_nm(self.pl_window_low_nm, self.pl_window_high_nm)
        figures = window_peak_metrics(frame.corrected_wavelength_nm, frame.corrected, low, high)
        elapsed = time.monotonic() - self.started
        self.acquirer.emit(
            self,
            frame,
            time_s=elapsed,
            step=float(index),
            direction=float(direction),
            excitation_power_w=power,
            power_density_w_cm2=density,
            fluence_j_cm2=fluence,
            filter_position=float(step.filter_position),
            signal_to_noise=float(figures["snr"][0]),
        )
        self.emit_row(
            time=elapsed,
            step=index,
            direction=direction,
            laser_wavelength=self.laser_wavelength_nm,
            laser_power_setpoint=step.setpoint_w,
            filter_position=step.filter_position,
            excitation_power=power,
            power_density=density,
            pulse_energy=pulse_energy,
            fluence=fluence,
            integration_time=frame.integration_time_s,
            saturated=float(frame.saturated),
            peak_wavelength=float(figures["peak_wavelength"][0]),
            centre_wavelength=float(figures["centre_wavelength"][0]),
            fwhm=float(figures["fwhm"][0]),
            integrated_pl=float(figures["integrated"][0]),
            signal_to_noise=float(figures["snr"][0]),
        )

    # -- analysis ------------------------------------------------------------------------
    @staticmethod
    def excitation_axis(data: Any) -> tuple[str, str]:
        """Return (column, unit) of the excitation: fluence when recorded, else power density."""
        if "fluence" in data and np.isfinite(data["fluence"]).any():
            return "fluence", "J/cm^2"
        return "power_density", "W/cm^2"

    @classmethod
    def power_series(cls, run: Any) -> tuple[pd.DataFrame, str, str, str]:
        """Return the series (excitation, integrated PL, SNR, direction, centre) and its axis.

        With the ``spectra`` frames stored, the PL is re-integrated over the band of the
        brightest spectrum (centre +- 2 FWHM), which keeps the noise of the rest of the
        detector out of the weak steps; otherwise the ``integrated_pl`` column is used.

        Returns
        -------
        tuple
            (series, excitation column, its unit, description of the integration band).
        """
        data = run_columns(run, "integrated_pl", "power_density", "direction", "step")
        column, unit = cls.excitation_axis(data)
        series = pd.DataFrame(
            {
                "excitation": data[column].to_numpy(dtype=float),
                "integrated": data["integrated_pl"].to_numpy(dtype=float),
                "snr": data["signal_to_noise"].to_numpy(dtype=float)
                if "signal_to_noise" in data
                else np.full(len(data), np.inf),
                "direction": data["direction"].to_numpy(dtype=float),
                "centre": data["centre_wavelength"].to_numpy(dtype=float)
                if "centre_wavelength" in data
                else np.full(len(data), np.nan),
            }
        )
        band = "integrated_pl column"
        try:
            frames = run.frames("spectra")
        except KeyError:
            return series, column, unit, band
        steps = frames.context.get("step")
        if steps is None or len(frames) != len(data):
            return series, column, unit, band
        order = {int(step): i for i, step in enumerate(steps.to_numpy())}
        rows = [order.get(int(step)) for step in data["step"].to_numpy()]
        if any(r is None for r in rows):
            return series, column, unit, band
        spectra = frames.intensity[rows]
        laser_nm = (
            float(data["laser_wavelength"].iloc[0]) if "laser_wavelength" in data else math.nan
        )
        low, high = pl_window(run, laser_nm, frames.wavelength)
        brightest = int(np.nanargmax(series["integrated"].to_numpy()))
        figures = window_peak_metrics(frames.wavelength, spectra[brightest], low, high)
        centre, fwhm = float(figures["centre_wavelength"][0]), float(figures["fwhm"][0])
        if math.isfinite(centre) and math.isfinite(fwhm):
            low = max(low, centre - BAND_HALF_WIDTH_FWHM * fwhm)
            high = min(high, centre + BAND_HALF_WIDTH_FWHM * fwhm)
        integral, snr = band_integrals(frames.wavelength, spectra, low, high)
        series["integrated"] = integral
        series["snr"] = snr
        return series, column, unit, f"{low:.1f}-{high:.1f} nm"

    @classmethod
    def analyze_results(cls, run: Any) -> dict[str, float | str]:
        """Return the power-law exponent of the upward branch, its range and the hysteresis.

        The fit keeps the upward steps whose integrated PL has a signal-to-noise ratio of
        at least :data:`FIT_MIN_SNR` (all positive steps if fewer than 3 qualify).
        """
        from perovlab_daq.analysis import power_law_slope
        from perovlab_daq.figures import AnalysisInputError

        series, column, unit, band = cls.power_series(run)
        positive = (series["integrated"] > 0) & (series["excitation"] > 0)
        up_all = series[(series["direction"] >= 0) & positive]
        up = up_all[up_all["snr"] >= FIT_MIN_SNR]
        if len(up) < 3:
            up = up_all
        if len(up) < 2:
            raise AnalysisInputError(
                "the upward branch holds fewer than 2 steps with positive integrated PL"
            )
        up = up.groupby("excitation", as_index=False).mean(numeric_only=True)
        fit = power_law_slope(up["excitation"].to_numpy(), up["integrated"].to_numpy())
        unit_key = unit.replace("/", "_").replace("^2", "2").lower()
        result: dict[str, float | str] = {
            "power_law_exponent": fit.k,
            "power_law_exponent_stderr": fit.k_stderr,
            "power_law_points": float(fit.n_points_fit),
            f"{column}_fit_min_{unit_key}": float(up["excitation"].min()),
            f"{column}_fit_max_{unit_key}": float(up["excitation"].max()),
            "local_slope_min": float(np.min(fit.local_slope)),
            "local_slope_max": float(np.max(fit.local_slope)),
            "excitation_axis": column,
            "integration_band": band,
        }
        centres = up["centre"].to_numpy(dtype=float)
        finite = centres[np.isfinite(centres)]
        if finite.size >= 2:
            result["centre_shift_nm"] = float(finite[-1] - finite[0])
        down = series[(series["direction"] < 0) & positive & (series["snr"] >= FIT_MIN_SNR)]
        if len(down) >= 1:
            # PL of the downward branch against the upward branch at the same excitation.
            expected = np.exp(
                np.interp(
                    np.log(down["excitation"].to_numpy()),
                    np.log(up["excitation"].to_numpy()),
                    np.log(up["integrated"].to_numpy()),
                )
            )
            ratio = down["integrated"].to_numpy() / expected
            result["hysteresis_mean_pct"] = float(100.0 * (np.mean(ratio) - 1.0))
            result["hysteresis_max_pct"] = float(100.0 * np.max(np.abs(ratio - 1.0)))
        return result

    @classmethod
    def draw_report(cls, run: Any, figure: Any) -> None:
        """Draw integrated PL against excitation (log-log, fit), local slope and the spectra."""
        from perovlab_daq.analysis import power_law_slope

        figures = cls.analyze_results(run)
        series, column, unit, band = cls.power_series(run)
        axes = figure.subplots(1, 3)
        positive = series[(series["integrated"] > 0) & (series["excitation"] > 0)]
        for direction, label, marker in ((1, "up", "o"), (-1, "down", "s")):
            part = positive[np.sign(positive["direction"]) == direction]
            if len(part):
                axes[0].loglog(part["excitation"], part["integrated"], marker, label=label)
        up = positive[positive["direction"] >= 0].groupby("excitation", as_index=False).mean()
        k = float(figures["power_law_exponent"])
        anchor = up.iloc[len(up) // 2]
        x = np.geomspace(up["excitation"].min(), up["excitation"].max(), 50)
        axes[0].loglog(
            x, anchor["integrated"] * (x / anchor["excitation"]) ** k, "k--", label=f"k = {k:.3f}"
        )
        axes[0].set_xlabel(f"{column.replace('_', ' ')} ({unit})")
        axes[0].set_ylabel(f"integrated PL, {band} (a.u.)")
        axes[0].legend(loc="best")
        if len(up) >= 2:
            fit = power_law_slope(up["excitation"].to_numpy(), up["integrated"].to_numpy())
            axes[1].semilogx(up["excitation"], fit.local_slope, "o-")
        axes[1].axhline(1.0, color="0.6", linestyle=":")
        axes[1].set_xlabel(f"{column.replace('_', ' ')} ({unit})")
        axes[1].set_ylabel("local slope d ln PL / d ln P")
        try:
            frames = run.frames("spectra")
        except KeyError:
            axes[2].set_axis_off()
            return
        data = run_columns(run, "laser_wavelength")
        low, high = pl_window(run, float(data["laser_wavelength"].iloc[0]), frames.wavelength)
        keep = (frames.wavelength >= low) & (frames.wavelength <= high)
        snr = frames.context.get("signal_to_noise")
        for i, row in enumerate(frames.intensity):
            top = np.max(row[keep])
            # Normalising a noise-dominated spectrum to its maximum shows only noise.
            if top > 0 and (snr is None or float(snr.iloc[i]) >= FIT_MIN_SNR):
                axes[2].plot(frames.wavelength[keep], row[keep] / top, lw=0.8)
        axes[2].set_xlabel("wavelength (nm)")
        axes[2].set_ylabel(f"normalised PL (steps with SNR >= {FIT_MIN_SNR:g})")
