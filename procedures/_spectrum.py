"""Spectrometer handling shared by every procedure that records EL or PL spectra.

A spectrometer has no shutter and returns raw counts, so everything between the raw
counts and a usable spectrum is the application's job (REFERENCE §2, §3):

* dark frames taken with the light source off, one per integration time (cached);
* an automatic integration time that keeps the highest pixel below saturation, snapped to
  a short ladder of values so that dark frames are reused;
* averaging of several frames;
* saturation detected and flagged on every frame (never clipped silently);
* the sensitivity (radiometric) calibration of the bench applied when given, so the
  processed spectrum is spectral power (W/nm at the fibre, relative) rather than counts.

:class:`SpectrumAcquirer` does all of this on the spectrometer facade
(:class:`instruments.spectrometer.Spectrometer`); the caller says how to switch its light
source on and off (``light`` and ``dark`` context factories), because only the procedure
knows whether that is a laser's emission or a source meter's output. Each acquisition
returns a :class:`SpectrumFrame` that keeps raw counts, the dark frame and the processed
spectrum; :meth:`SpectrumAcquirer.emit` records it as ``frame`` records (architecture §5, with
the intensity units added) in three streams:

``spectra``
    processed spectrum (``SpectrumFrame.corrected`` on ``corrected_wavelength_nm``):
    W/nm when a sensitivity file is used, else dark-subtracted counts per second;
``spectra_raw``
    the averaged raw counts of the light frame, full detector;
``spectra_dark``
    each dark frame once, when it is first used.

Every frame's context carries ``frame_index``, ``integration_time_s``, ``averages``,
``saturated`` (0/1), ``saturated_pixels``, ``peak_counts``, ``calibrated`` (0/1) and
``dark_index`` (the ``spectra_dark`` frame subtracted), plus the caller's own context.

Example (laser procedure; emission on only while the light frames are taken)::

    acquirer = SpectrumAcquirer.for_procedure(self, light=self.laser_emission)
    frame = acquirer.acquire(integration_time_s=None, averages=3)   # None: automatic
    acquirer.emit(self, frame, laser_power_w=0.01)
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from perovlab_daq.calibration import load_calibration_csv

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Integration times the automatic mode may choose, per decade (E6 series): a short ladder
#: makes successive spectra of a series reuse the same few dark frames.
INTEGRATION_LADDER: tuple[float, ...] = (1.0, 1.5, 2.2, 3.3, 4.7, 6.8)

#: Stream names of the records :meth:`SpectrumAcquirer.emit` writes.
STREAM_PROCESSED = "spectra"
STREAM_RAW = "spectra_raw"
STREAM_DARK = "spectra_dark"

LightControl = Callable[[], AbstractContextManager[Any]]


class SpectrumAcquisitionError(RuntimeError):
    """The spectrometer cannot deliver a usable spectrum (e.g. saturated at the shortest time)."""


# --------------------------------------------------------------------------- calibration
@dataclass(frozen=True)
class SensitivityCalibration:
    """Spectrometer sensitivity against wavelength: counts per second per (W/nm).

    Attributes
    ----------
    wavelength_nm : numpy.ndarray
        Calibration wavelengths (nm), strictly increasing.
    sensitivity : numpy.ndarray
        Counts s^-1 per (W/nm) at the fibre input, > 0.
    source : str
        Where the calibration came from (file path), recorded with the spectra.
    """

    wavelength_nm: np.ndarray
    sensitivity: np.ndarray
    source: str = ""

    @classmethod
    def from_csv(cls, path: str | Path) -> SensitivityCalibration:
        """Read a calibration CSV: ``#`` comment lines, one header, then ``nm,value`` rows.

        Parameters
        ----------
        path
            The bench's ``spectrometer_sensitivity_file``.

        Raises
        ------
        ValueError
            If the file has fewer than two rows, repeated wavelengths, or a value <= 0.
        """
        wavelength_nm, sensitivity = load_calibration_csv(path, positive=True)
        return cls(wavelength_nm, sensitivity, str(path))

    def on_grid(self, wavelength_nm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Interpolate onto a detector grid; return (mask of calibrated pixels, sensitivity).

        Pixels outside the calibrated range are not extrapolated: they are left out of
        the processed spectrum (``mask`` False, sensitivity NaN).
        """
        grid = np.asarray(wavelength_nm, dtype=float)
        mask = (grid >= self.wavelength_nm[0]) & (grid <= self.wavelength_nm[-1])
        values = np.full(grid.shape, np.nan)
        values[mask] = np.interp(grid[mask], self.wavelength_nm, self.sensitivity)
        return mask, values


# --------------------------------------------------------------------------- frames
@dataclass(frozen=True)
class SpectrumFrame:
    """One acquired spectrum: raw counts, the dark frame subtracted, the processed spectrum.

    Attributes
    ----------
    wavelength_nm : numpy.ndarray
        Wavelength of every detector pixel (nm).
    raw_counts : numpy.ndarray
        Mean raw counts of the light frames (what the detector returned, nonlinearity-
        corrected if that was asked for and possible).
    dark_counts : numpy.ndarray
        Mean dark frame at the same integration time.
    corrected_wavelength_nm : numpy.ndarray
        Grid of the processed spectrum: the calibrated pixels (all pixels without a
        calibration).
    corrected : numpy.ndarray
        Processed spectrum: (raw - dark) / (t * sensitivity) in W/nm when calibrated,
        else (raw - dark) / t in counts/s.
    corrected_units : str
        ``"W/nm"`` or ``"counts/s"``.
    integration_time_s : float
        Integration time of every frame (s).
    averages : int
        Number of light frames averaged.
    saturated : bool
        True when any light frame had a pixel at or above the saturation threshold;
        the processed spectrum is then too low around those pixels.
    saturated_pixels : int
        Number of pixels at or above the threshold in the worst light frame.
    peak_counts : float
        Highest raw count in any light frame.
    saturation_counts : float
        Saturation level of the detector (counts).
    calibrated : bool
        Whether the sensitivity calibration was applied.
    nonlinearity_corrected : bool
        Whether the detector nonlinearity correction was applied.
    dark_index : int
        Index of the dark frame (in the order darks were taken) that was subtracted.
    index : int
        Index of this frame among the acquirer's frames (0 first).
    timestamp : float
        ``time.time()`` at the end of the acquisition.
    """

    wavelength_nm: np.ndarray
    raw_counts: np.ndarray
    dark_counts: np.ndarray
    corrected_wavelength_nm: np.ndarray
    corrected: np.ndarray
    corrected_units: str
    integration_time_s: float
    averages: int
    saturated: bool
    saturated_pixels: int
    peak_counts: float
    saturation_counts: float
    calibrated: bool
    nonlinearity_corrected: bool
    dark_index: int
    index: int = 0
    timestamp: float = field(default_factory=time.time)

    @property
    def signal_counts(self) -> np.ndarray:
        """Return the dark-subtracted counts (raw - dark), full detector."""
        return self.raw_counts - self.dark_counts

    def context(self) -> dict[str, float]:
        """Return the frame's acquisition settings as numbers for a frame context."""
        return {
            "integration_time_s": float(self.integration_time_s),
            "averages": float(self.averages),
            "saturated": float(self.saturated),
            "saturated_pixels": float(self.saturated_pixels),
            "peak_counts": float(self.peak_counts),
            "calibrated": float(self.calibrated),
            "dark_index": float(self.dark_index),
            "frame_index": float(self.index),
        }

    def window(self, low_nm: float, high_nm: float) -> tuple[np.ndarray, np.ndarray]:
        """Return (wavelength, processed spectrum) restricted to ``low_nm``..``high_nm``."""
        grid = self.corrected_wavelength_nm
        keep = (grid >= low_nm) & (grid <= high_nm)
        return grid[keep], self.corrected[keep]

    def integrated(self, low_nm: float, high_nm: float) -> float:
        """Return the trapezoidal integral of the processed spectrum over a window."""
        grid, values = self.window(low_nm, high_nm)
        if grid.size < 2:
            return math.nan
        return float(np.trapezoid(values, grid))


@dataclass
class _Dark:
    counts: np.ndarray
    averages: int
    index: int
    emitted: bool = False


# --------------------------------------------------------------------------- acquirer
def snap_integration_time(time_s: float, low_s: float, high_s: float) -> float:
    """Return the largest ladder value (:data:`INTEGRATION_LADDER`) <= ``time_s`` in limits.

    Parameters
    ----------
    time_s
        Wanted integration time (s).
    low_s, high_s
        The detector's limits (s); the result is clipped into them.
    """
    time_s = min(max(time_s, low_s), high_s)
    decade = math.floor(math.log10(time_s))
    best = low_s
    for exponent in (decade - 1, decade):
        for step in INTEGRATION_LADDER:
            # Rounded so ladder values are exact micro-second counts (no float drift).
            candidate = round(step * 10.0**exponent, 9)
            if low_s <= candidate <= time_s * (1 + 1e-9):
                best = max(best, candidate)
    return best


class SpectrumAcquirer:
    """Dark frames, automatic integration time, averaging, saturation and calibration.

    Parameters
    ----------
    spectrometer
        A :class:`instruments.spectrometer.Spectrometer` facade.
    sensitivity
        Sensitivity calibration, or None for counts/s.
    light
        Factory of a context manager entered while light frames are taken (e.g. laser
        emission on, then off). Default: nothing to switch.
    dark
        Factory of a context manager entered while dark frames are taken (e.g. the LED's
        source output off, then restored). Default: nothing to switch (the light
        context being exited is enough for a laser).
    correct_nonlinearity
        Ask the detector for its nonlinearity correction; when its coefficients are
        unusable the frames stay uncorrected and a warning is reported once.
    saturation_fraction
        Counts at or above this fraction of ``max_intensity`` count as saturated.
    target_fraction
        The automatic integration time aims the highest pixel at this fraction of
        ``max_intensity``.
    max_auto_integration_s
        Longest integration time the automatic mode may choose (s).
    call
        Wrapper for every spectrometer call, ``call(function, description)``; the
        procedure helper uses it for retries. Default: call directly.
    on_event
        ``on_event(level, kind, message)`` for warnings (saturation, calibration).
    light_check
        Called after the light frames of every spectrum, with the light still on; it
        raises to refuse the frame when the light source cannot be trusted (e.g. the
        laser interlock opened during the integration).
    """

    def __init__(
        self,
        spectrometer: Any,
        *,
        sensitivity: SensitivityCalibration | None = None,
        light: LightControl | None = None,
        dark: LightControl | None = None,
        correct_nonlinearity: bool = False,
        saturation_fraction: float = 0.98,
        target_fraction: float = 0.65,
        max_auto_integration_s: float = 5.0,
        call: Callable[[Callable[[], Any], str], Any] | None = None,
        on_event: Callable[[str, str, str], None] | None = None,
        light_check: Callable[[], None] | None = None,
    ) -> None:
        if not 0 < target_fraction < saturation_fraction <= 1:
            raise ValueError(
                "need 0 < target_fraction < saturation_fraction <= 1; got "
                f"{target_fraction!r}, {saturation_fraction!r}"
            )
        self.spectrometer = spectrometer
        self.sensitivity = sensitivity
        self.light: LightControl = light or contextlib.nullcontext
        self.dark_control: LightControl = dark or contextlib.nullcontext
        self.correct_nonlinearity = correct_nonlinearity
        self.saturation_fraction = saturation_fraction
        self.target_fraction = target_fraction
        self.max_auto_integration_s = max_auto_integration_s
        self._call = call or (lambda function, _what: function())
        self._light_check = light_check
        self._on_event = on_event
        self._darks: dict[int, _Dark] = {}
        self._dark_count = 0
        self._frame_count = 0
        self._current_us: int | None = None
        self._last_auto_s: float | None = None
        self._nonlinearity_ok = correct_nonlinearity
        self._wavelengths: np.ndarray | None = None
        self._limits_s: tuple[float, float] | None = None
        self._saturation: float | None = None
        self._calibration_grid: tuple[np.ndarray, np.ndarray] | None = None

    # -- construction for a procedure ----------------------------------------------------
    @classmethod
    def for_procedure(
        cls,
        procedure: Any,
        *,
        role: str = "spectrometer",
        sensitivity_file: str | Path | None = None,
        **options: Any,
    ) -> SpectrumAcquirer:
        """Build an acquirer on a procedure's spectrometer, with its retries and events.

        Parameters
        ----------
        procedure
            A :class:`procedures.base.DaqProcedure` with an open bench.
        role
            Bench role of the spectrometer.
        sensitivity_file
            Sensitivity CSV; default the bench set-up's ``spectrometer_sensitivity_file``
            (none: spectra stay in counts/s, with an info event).
        **options
            Passed on to :class:`SpectrumAcquirer` (``light``, ``dark``, ...).
        """
        spectrometer = procedure.instrument(role)
        if sensitivity_file is None:
            setup = getattr(getattr(procedure.bench, "config", None), "setup", {}) or {}
            sensitivity_file = setup.get("spectrometer_sensitivity_file")
        calibration = None
        if sensitivity_file:
            calibration = SensitivityCalibration.from_csv(sensitivity_file)
        else:
            procedure.emit_event(
                "info",
                "calibration",
                "no spectrometer_sensitivity_file on this bench: spectra are in counts/s, "
                "not spectral power",
            )

        def call(function: Callable[[], T], what: str) -> T:
            return procedure.call_with_retry(function, f"spectrometer {what}", role=role)

        options.setdefault("call", call)
        options.setdefault("on_event", procedure.emit_event)
        # The detector's factory nonlinearity polynomial is applied whenever it is usable
        # (refused coefficients fall back to raw counts with an event): uncorrected counts
        # read a strong laser line ~2 % low and bias a de Mello PLQY upwards.
        options.setdefault("correct_nonlinearity", True)
        return cls(spectrometer, sensitivity=calibration, **options)

    # -- detector properties -----------------------------------------------------------
    @property
    def wavelength_nm(self) -> np.ndarray:
        """Return the detector's wavelength axis (nm), read once."""
        if self._wavelengths is None:
            self._wavelengths = np.asarray(
                self._call(self.spectrometer.wavelengths, "wavelengths"), dtype=float
            )
        return self._wavelengths

    @property
    def integration_limits_s(self) -> tuple[float, float]:
        """Return the detector's (shortest, longest) integration time in s."""
        if self._limits_s is None:
            low, high = self._call(
                lambda: self.spectrometer.integration_time_micros_limits, "integration limits"
            )
            self._limits_s = (float(low) * 1e-6, float(high) * 1e-6)
        return self._limits_s

    @property
    def saturation_counts(self) -> float:
        """Return the detector's saturation level (counts)."""
        if self._saturation is None:
            self._saturation = float(
                self._call(lambda: self.spectrometer.max_intensity, "saturation level")
            )
        return self._saturation

    def _event(self, level: str, kind: str, message: str) -> None:
        if self._on_event is not None:
            self._on_event(level, kind, message)
        else:
            getattr(log, level if level in {"info", "warning", "error"} else "info")(message)

    # -- low-level frames ------------------------------------------------------------
    def set_integration_time(self, integration_time_s: float) -> int:
        """Set the integration time (s) if it changed; return it in microseconds.

        Raises
        ------
        ValueError
            If the time lies outside the detector's limits.
        """
        low, high = self.integration_limits_s
        micros = int(round(integration_time_s * 1e6))
        if not round(low * 1e6) <= micros <= round(high * 1e6):
            raise ValueError(
                f"integration time {integration_time_s:g} s is outside the spectrometer's "
                f"{low:g} to {high:g} s"
            )
        if micros != self._current_us:
            self._call(lambda: self.spectrometer.integration_time_micros(micros), "set time")
            self._current_us = micros
        return micros

    def _read_counts(self) -> np.ndarray:
        if self._nonlinearity_ok:
            try:
                return np.asarray(
                    self.spectrometer.intensities(correct_nonlinearity=True), dtype=float
                )
            except Exception as exc:  # noqa: BLE001 - garbage coefficients: keep raw counts
                if "nonlinearity" not in str(exc).lower():
                    raise
                self._nonlinearity_ok = False
                self._event(
                    "warning",
                    "calibration",
                    f"nonlinearity correction unavailable ({exc}); spectra are uncorrected",
                )
        return np.asarray(self.spectrometer.intensities(), dtype=float)

    def _frames(self, averages: int) -> tuple[np.ndarray, float, int]:
        """Return (mean counts, highest count, most saturated pixels) of ``averages`` frames."""
        threshold = self.saturation_fraction * self.saturation_counts
        total: np.ndarray | None = None
        peak = -math.inf
        worst = 0
        for _ in range(averages):
            counts = self._call(self._read_counts, "spectrum")
            peak = max(peak, float(np.max(counts)))
            worst = max(worst, int(np.count_nonzero(counts >= threshold)))
            total = counts.copy() if total is None else total + counts
        assert total is not None
        return total / averages, peak, worst

    # -- dark frames -------------------------------------------------------------------
    def dark(self, integration_time_s: float, averages: int = 1) -> np.ndarray:
        """Return the dark frame at this integration time, measuring it if not cached.

        A cached dark taken with fewer frames than ``averages`` is measured again so
        that the dark is never noisier than the light frames it is subtracted from.
        """
        return self._dark_entry(integration_time_s, averages).counts

    def _dark_entry(self, integration_time_s: float, averages: int) -> _Dark:
        micros = int(round(integration_time_s * 1e6))
        cached = self._darks.get(micros)
        if cached is not None and cached.averages >= averages:
            return cached
        with self.dark_control():
            self.set_integration_time(integration_time_s)
            counts, _peak, saturated = self._frames(averages)
        if saturated:
            self._event(
                "warning",
                "dark",
                f"dark frame at {integration_time_s:g} s has {saturated} saturated pixel(s): "
                "is the light source really off?",
            )
        entry = _Dark(counts, averages, self._dark_count)
        self._dark_count += 1
        self._darks[micros] = entry
        log.debug("dark frame %d at %d us (%d averages)", entry.index, micros, averages)
        return entry

    def clear_darks(self) -> None:
        """Forget every cached dark frame (e.g. after the detector temperature changed)."""
        self._darks.clear()

    # -- automatic integration time ----------------------------------------------------
    def auto_integration_time(self, start_s: float | None = None, max_iterations: int = 8) -> float:
        """Find an integration time that puts the highest pixel near ``target_fraction``.

        Must be called with the light on (:meth:`acquire` does). Starts at ``start_s``
        (default the last automatic choice, else 0.1 s), divides by ten while saturated,
        then scales with the signal above the detector offset; the result is snapped
        down to :data:`INTEGRATION_LADDER` within the limits.

        Raises
        ------
        SpectrumAcquisitionError
            If the detector saturates even at its shortest integration time.
        """
        low, high = self.integration_limits_s
        ceiling = max(low, min(high, self.max_auto_integration_s))
        saturation = self.saturation_counts
        time_s = snap_integration_time(start_s or self._last_auto_s or 0.1, low, ceiling)
        for _ in range(max_iterations):
            self.set_integration_time(time_s)
            counts, peak, saturated = self._frames(1)
            if saturated:
                if time_s <= low * (1 + 1e-9):
                    raise SpectrumAcquisitionError(
                        f"the spectrometer saturates ({peak:.0f} counts) even at its shortest "
                        f"integration time {low:g} s: reduce the light"
                    )
                time_s = snap_integration_time(time_s / 10.0, low, ceiling)
                continue
            # The detector offset does not grow with time; the signal above it does.
            offset = float(np.percentile(counts, 5))
            signal = max(peak - offset, 1.0)
            wanted = time_s * (self.target_fraction * saturation - offset) / signal
            chosen = snap_integration_time(wanted, low, ceiling)
            if chosen == time_s:
                break
            grows = chosen > time_s
            time_s = chosen
            if not grows:
                # Scaling down from an unsaturated frame is safe: signal is linear in time.
                break
        self._last_auto_s = time_s
        return time_s

    # -- acquisition ---------------------------------------------------------------------
    def acquire(
        self,
        integration_time_s: float | None = None,
        averages: int = 1,
        *,
        retry_saturated: bool = True,
    ) -> SpectrumFrame:
        """Take a spectrum: light frames (light on), then the matching dark (light off).

        Parameters
        ----------
        integration_time_s
            Integration time (s); None chooses it automatically (with the light on).
        averages
            Light frames averaged (>= 1); the dark is averaged as much.
        retry_saturated
            In automatic mode, if the light frames saturate anyway (the light grew),
            shorten the time once and take them again.

        Returns
        -------
        SpectrumFrame
            Raw, dark and processed spectrum with the saturation flag.
        """
        if averages < 1:
            raise ValueError(f"averages must be >= 1; got {averages}")
        automatic = integration_time_s is None
        with self.light():
            if integration_time_s is None:
                integration_time_s = self.auto_integration_time()
            self.set_integration_time(integration_time_s)
            raw, peak, saturated = self._frames(averages)
            if saturated and automatic and retry_saturated:
                low, _high = self.integration_limits_s
                shorter = snap_integration_time(integration_time_s / 3.0, low, integration_time_s)
                if shorter < integration_time_s:
                    integration_time_s = shorter
                    self._last_auto_s = shorter
                    self.set_integration_time(shorter)
                    raw, peak, saturated = self._frames(averages)
            if self._light_check is not None:
                self._light_check()
        dark = self._dark_entry(integration_time_s, averages)
        self._frame_count += 1
        frame = self._process(raw, dark, integration_time_s, averages, peak, saturated)
        if frame.saturated:
            self._event(
                "warning",
                "saturation",
                f"spectrum at {integration_time_s:g} s has {saturated} saturated pixel(s) "
                f"(peak {peak:.0f} of {self.saturation_counts:.0f} counts); flagged, not clipped",
            )
        return frame

    def _process(
        self,
        raw: np.ndarray,
        dark: _Dark,
        integration_time_s: float,
        averages: int,
        peak: float,
        saturated: int,
    ) -> SpectrumFrame:
        grid = self.wavelength_nm
        if raw.shape != grid.shape:
            raise SpectrumAcquisitionError(
                f"spectrum has {raw.size} pixels but the wavelength axis {grid.size}"
            )
        signal_rate = (raw - dark.counts) / integration_time_s
        if self.sensitivity is not None:
            if self._calibration_grid is None:
                self._calibration_grid = self.sensitivity.on_grid(grid)
            mask, response = self._calibration_grid
            corrected_grid = grid[mask]
            corrected = signal_rate[mask] / response[mask]
            units = "W/nm"
        else:
            corrected_grid = grid
            corrected = signal_rate
            units = "counts/s"
        return SpectrumFrame(
            wavelength_nm=grid,
            raw_counts=raw,
            dark_counts=dark.counts,
            corrected_wavelength_nm=corrected_grid,
            corrected=corrected,
            corrected_units=units,
            integration_time_s=float(integration_time_s),
            averages=int(averages),
            saturated=saturated > 0,
            saturated_pixels=int(saturated),
            peak_counts=float(peak),
            saturation_counts=self.saturation_counts,
            calibrated=self.sensitivity is not None,
            nonlinearity_corrected=self._nonlinearity_ok,
            dark_index=dark.index,
            index=self._frame_count - 1,
        )

    # -- records -----------------------------------------------------------------------
    def emit(
        self, procedure: Any, frame: SpectrumFrame, *, raw: bool = True, **context: float
    ) -> int:
        """Record a frame as ``frame`` records of ``procedure``; return its frame index.

        Emits the processed spectrum (stream ``spectra``), the raw counts
        (``spectra_raw``, unless ``raw`` is False) and, the first time it is used, the
        dark frame (``spectra_dark``). ``context`` (numbers: bias, laser power, time...)
        is added to the acquisition settings in every frame's context.

        The records are those of :meth:`procedures.base.DaqProcedure.emit_frame` plus
        ``intensity_units`` (``W/nm``, ``counts/s`` or ``counts``), which the storage
        worker writes as the ``units`` attribute of the stream's intensity.
        """
        shared = {**frame.context(), **context}
        micros = int(round(frame.integration_time_s * 1e6))
        dark = self._darks.get(micros)
        if dark is not None and dark.index == frame.dark_index and not dark.emitted:
            _emit_frame(
                procedure,
                STREAM_DARK,
                frame.wavelength_nm,
                frame.dark_counts,
                "counts",
                {
                    "dark_index": float(dark.index),
                    "integration_time_s": frame.integration_time_s,
                    "averages": float(dark.averages),
                },
            )
            dark.emitted = True
        _emit_frame(
            procedure,
            STREAM_PROCESSED,
            frame.corrected_wavelength_nm,
            frame.corrected,
            frame.corrected_units,
            shared,
        )
        if raw:
            _emit_frame(
                procedure, STREAM_RAW, frame.wavelength_nm, frame.raw_counts, "counts", shared
            )
        return frame.index


def _emit_frame(
    procedure: Any,
    stream: str,
    wavelength: np.ndarray,
    intensity: np.ndarray,
    units: str,
    context: dict[str, float],
) -> None:
    procedure.emit_frame(intensity, wavelength, stream, intensity_units=units, **context)
