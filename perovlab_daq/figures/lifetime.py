"""Key figures and report of an operational-lifetime run (procedure ``lifetime``).

Everything is computed from what the file holds: the stress rows (J-L-V sweep rows and
rows a later resumed segment superseded are left out, :func:`stress_series`) in *device*
time give L0, T95...T50 and the stretched-exponential fit
(:func:`perovlab_daq.analysis.lifetime_metrics`); the ``spectra`` stream gives the EL
peak against time (:func:`el_series`, read in blocks so 10,000 spectra never sit in
memory). ``key_figures`` and ``draw`` are what :mod:`perovlab_daq.figures` dispatches to.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from perovlab_daq.analysis.lifetime import temperature_summary
from perovlab_daq.figures import _run
from perovlab_daq.figures._run import AnalysisInputError

log = logging.getLogger(__name__)

S_PER_H = 3600.0
#: Lifetime levels reported (percent of L0 and of L_max).
LEVELS_PCT = (95, 90, 80, 70, 50)


#: Columns the lifetime analysis reads (the others are never loaded).
STRESS_COLUMNS = (
    "luminance",
    "time",
    "device_time",
    "jlv_sweep",
    "segment",
    "relative_luminance",
    "voltage",
    "current_density",
    "temperature",
)


def _stress_columns(run: Any) -> dict[str, np.ndarray]:
    """Return the columns of :data:`STRESS_COLUMNS` the run has, as float arrays.

    A :class:`~perovlab_daq.storage.HDF5Results` reads just these from the file
    (``read_columns``); any other run object is read through its ``data`` frame.
    """
    read_columns = getattr(run, "read_columns", None)
    if read_columns is not None:
        # Two reads: the flag columns first, made small, then the rest (a read per column
        # costs a pass over the file's columns; two passes, not nine).
        flags = [name for name in STRESS_COLUMNS if name in _FLAG_COLUMNS]
        columns = {
            name: _compact_flag(name, np.asarray(values, dtype=float))
            for name, values in read_columns(flags).items()
        }
        rest = [name for name in STRESS_COLUMNS if name not in _FLAG_COLUMNS]
        columns.update(
            {name: np.asarray(values, dtype=float) for name, values in read_columns(rest).items()}
        )
        # A file still being extended may have grown between the two reads.
        rows = min((len(v) for v in columns.values()), default=0)
        return {name: values[:rows] for name, values in columns.items()}
    data = run.data
    columns = {name: _run.column(data, name) for name in STRESS_COLUMNS}
    return {
        name: _compact_flag(name, values) for name, values in columns.items() if values is not None
    }


_FLAG_COLUMNS = frozenset({"jlv_sweep", "segment"})


def _compact_flag(name: str, values: np.ndarray) -> np.ndarray:
    """Hold the flag columns small: ``jlv_sweep`` as bool, ``segment`` (0, 1, ...) as float32.

    A 1M-row run's two flag columns are 16 MB as read and 5 MB this way.
    """
    if name == "jlv_sweep":
        return values > 0
    if name == "segment":
        return values.astype(np.float32)
    return values


def _acceleration(run: Any) -> float:
    """Return the run's ageing acceleration (1 on hardware and in files without it)."""
    return float(_run.metadata(run).get("ageing_acceleration", 1.0) or 1.0)


@dataclass
class StressSeries:
    """The constant-drive rows of a lifetime run, in device-time order.

    Rows of J-L-V sweeps are left out, and so are rows of a segment that a later segment
    superseded (on a simulated bench a continuation restarts from the last saved device
    state, which may be slightly older than the last row written before the kill).
    """

    device_time_s: np.ndarray
    time_s: np.ndarray
    luminance: np.ndarray
    relative_luminance: np.ndarray
    voltage: np.ndarray
    current_density: np.ndarray
    segment: np.ndarray
    superseded: int
    acceleration: float
    #: device temperature (C; NaN without a thermometer or in files from before it)
    temperature: np.ndarray | None = None


def stress_series(run: Any) -> StressSeries:
    """Return the stress rows of a lifetime run (see :class:`StressSeries`).

    Raises
    ------
    AnalysisInputError
        If the file lacks the ``luminance`` column or a time column.
    """
    columns = _stress_columns(run)
    acceleration = _acceleration(run)
    luminance = columns.get("luminance")
    if luminance is None:
        raise AnalysisInputError("missing column 'luminance'")
    wall = columns.get("time")
    device = columns.get("device_time")
    if device is None:
        if wall is None:
            raise AnalysisInputError("missing column 'device_time' (or 'time')")
        device = wall * acceleration
    if wall is None:
        wall = device / acceleration
    count = len(luminance)
    sweep = columns.pop("jlv_sweep", None)
    segment = columns.get("segment")
    if segment is None:
        segment = np.zeros(count)

    keep = np.isfinite(luminance) & np.isfinite(device)
    if sweep is not None:
        keep &= ~sweep
        del sweep
    # A later segment supersedes every earlier row at or after its first device time.
    superseded = np.zeros(count, dtype=bool)
    segments = np.unique(segment[keep & np.isfinite(segment)])
    for later in segments[1:]:
        rows = keep & (segment == later)
        if not rows.any():
            continue
        start = float(device[rows].min())
        superseded |= keep & (segment < later) & (device >= start)
    keep &= ~superseded
    # A single-segment run without J-L-V sweeps is already in device-time order: its
    # columns are used as read (a copy of 7 columns of a 1M-row run is 56 MB).
    pick: np.ndarray | slice
    if keep.all() and bool(np.all(device[1:] >= device[:-1])):
        pick = slice(None)
    else:
        order = np.argsort(device[keep], kind="stable")
        pick = np.flatnonzero(keep)[order]
        del order
    del keep

    def picked(values: np.ndarray | None) -> np.ndarray:
        if values is None:
            return np.full(count, np.nan)[pick]
        return values[pick]

    return StressSeries(
        device_time_s=device[pick],
        time_s=wall[pick],
        luminance=luminance[pick],
        relative_luminance=picked(columns.pop("relative_luminance", None)),
        voltage=picked(columns.pop("voltage", None)),
        current_density=picked(columns.pop("current_density", None)),
        temperature=picked(columns.pop("temperature", None)),
        segment=segment[pick],
        superseded=int(superseded.sum()),
        acceleration=acceleration,
    )


@dataclass
class ElSeries:
    """EL peak figures of a lifetime run's spectra against device time.

    The spectra themselves stay in the file: ``frame_index`` says which frame of the
    ``spectra`` stream each entry comes from (:func:`el_spectra` reads a few of them).
    """

    device_time_s: np.ndarray
    centre_nm: np.ndarray
    fwhm_nm: np.ndarray
    integrated: np.ndarray
    wavelength_nm: np.ndarray
    frame_index: np.ndarray


#: Spectra analysed at a time: 1024 spectra of 1044 px are 8.5 MB.
EL_BLOCK_FRAMES = 1024


def el_series(run: Any, acceleration: float = 1.0) -> ElSeries | None:
    """Return the EL peak centre, FWHM and intensity of the run's spectra (None if none).

    The spectra are read and analysed :data:`EL_BLOCK_FRAMES` at a time when the run
    can read them in blocks (``iter_frames``), so 10,000 spectra never sit in memory.
    """
    from perovlab_daq.analysis import peak_metrics

    blockwise = getattr(run, "iter_frames", None) is not None
    try:
        frames = run.frames("spectra", with_intensity=False) if blockwise else run.frames("spectra")
    except (KeyError, AttributeError):
        return None
    if len(frames) == 0:
        return None
    context = frames.context
    if "device_time" in context:
        device = np.asarray(context["device_time"], dtype=float)
    elif "time" in context:
        device = np.asarray(context["time"], dtype=float) * acceleration
    else:
        device = np.arange(len(frames), dtype=float)
    grid = np.asarray(frames.wavelength, dtype=float)
    good = np.isfinite(device)
    if "saturated" in context:
        good &= ~(np.asarray(context["saturated"], dtype=float) > 0)
    if grid.size < 3:
        return None
    blocks = (
        run.iter_frames("spectra", EL_BLOCK_FRAMES, stop=len(frames))
        if blockwise
        else [(0, np.asarray(frames.intensity, dtype=float))]
    )
    centre, fwhm, integrated = [], [], []
    for first, block in blocks:
        block = np.asarray(block, dtype=float)
        rows = slice(first, first + len(block))
        good[rows] &= np.all(np.isfinite(block), axis=1)
        chosen = good[rows]
        if not chosen.any():
            continue
        metrics = peak_metrics(grid, block if chosen.all() else block[chosen])
        centre.append(metrics.centre_nm)
        fwhm.append(metrics.fwhm_nm)
        integrated.append(metrics.integrated_intensity)
    if not good.any():
        return None
    order = np.argsort(device[good], kind="stable")
    return ElSeries(
        device_time_s=device[good][order],
        centre_nm=np.concatenate(centre)[order],
        fwhm_nm=np.concatenate(fwhm)[order],
        integrated=np.concatenate(integrated)[order],
        wavelength_nm=grid,
        frame_index=np.flatnonzero(good)[order],
    )


def el_spectra(run: Any, el: ElSeries, positions: Sequence[int]) -> np.ndarray:
    """Return the spectra at ``positions`` of an :class:`ElSeries` (rows in that order).

    Parameters
    ----------
    run
        The run ``el`` was computed from.
    el : ElSeries
        From :func:`el_series`.
    positions : sequence of int
        Positions in the series (0 is the earliest spectrum).

    Returns
    -------
    numpy.ndarray
        ``(len(positions), pixels)`` intensities.
    """
    indices = [int(el.frame_index[p]) for p in positions]
    if getattr(run, "iter_frames", None) is None:
        return np.asarray(run.frames("spectra").intensity, dtype=float)[indices]
    rows = []
    for index in indices:
        for _first, block in run.iter_frames("spectra", 1, start=index, stop=index + 1):
            rows.append(np.asarray(block[0], dtype=float))
    return np.array(rows).reshape(len(indices), el.wavelength_nm.size)


def _fit_drift(time_h: np.ndarray, centre_nm: np.ndarray) -> tuple[float, float]:
    """Fit centre = target - (target - start) exp(-t / tau); return (target nm, tau h)."""
    from scipy import optimize

    ok = np.isfinite(time_h) & np.isfinite(centre_nm)
    t, y = time_h[ok] - time_h[ok][0], centre_nm[ok]
    if t.size < 4 or t[-1] <= 0 or abs(y[-1] - y[0]) < 1.0:
        return math.nan, math.nan

    def model(x: np.ndarray, target: float, start: float, tau: float) -> np.ndarray:
        return target - (target - start) * np.exp(-x / tau)

    try:
        params, _ = optimize.curve_fit(
            model,
            t,
            y,
            p0=(y[-1], y[0], max(t[-1] / 3.0, 1e-9)),
            bounds=((200.0, 200.0, 1e-9), (1200.0, 1200.0, 1e3 * t[-1])),
            max_nfev=2000,
        )
    except (RuntimeError, ValueError) as exc:
        log.info("EL drift fit failed: %s", exc)
        return math.nan, math.nan
    return float(params[0]), float(params[2])


def key_figures(run: Any) -> dict[str, float | str]:
    """Return the key figures of a lifetime run, computed only from what the file holds.

    Lifetime figures come from :func:`perovlab_daq.analysis.lifetime_metrics` on the
    stress rows (:func:`stress_series`) in *device* time from the switch-on (device time
    0): L0 (the decay model at switch-on), L_max and t(L_max), T95...T50 against L0 and
    against L_max (measured last crossing, or the model's, flagged ``*_is_extrapolated``)
    with standard errors and 95 % intervals. EL figures come from
    :func:`perovlab_daq.analysis.peak_metrics` on the ``spectra`` stream.

    Parameters
    ----------
    run
        A loaded run (:class:`perovlab_daq.storage.HDF5Results`) of procedure ``lifetime``.

    Returns
    -------
    dict
        Keys with units in the names (``l0_cd_m2``, ``t50_h``, ``t50_extrapolated_h``,
        ``tau_h``, ``beta``, ``ageing_acceleration``, ``el_peak_shift_nm``, ...).

    Raises
    ------
    AnalysisInputError
        If a column is missing or there are too few usable rows.
    """
    from perovlab_daq.analysis import lifetime_metrics

    # EL first: its spectra blocks and the stress columns are then never in memory at once.
    el = el_series(run, _acceleration(run))
    series = stress_series(run)
    if series.device_time_s.size < 10:
        raise AnalysisInputError(
            f"only {series.device_time_s.size} usable stress rows; at least 10 are needed"
        )
    try:
        # Time zero is the switch-on: device time 0 (docs/procedures/lifetime.md).
        metrics = lifetime_metrics(series.device_time_s, series.luminance, switch_on_s=0.0)
    except ValueError as exc:
        raise AnalysisInputError(str(exc)) from None
    figures: dict[str, float | str] = {
        "l0_cd_m2": metrics["l0"],
        "l_max_cd_m2": metrics["l_max"],
        "t_l_max_h": metrics["t_l_max"],
    }
    for level in LEVELS_PCT:
        # Best value: measured (last crossing) where the run got there, else the model's.
        for suffix in ("h", "is_extrapolated", "stderr_h", "ci95_low_h", "ci95_high_h"):
            figures[f"t{level}_{suffix}"] = metrics[f"t{level}_{suffix}"]
    for level in LEVELS_PCT:
        figures[f"t{level}_from_max_h"] = metrics[f"t{level}_from_max"]
        for suffix in ("h", "is_extrapolated", "ci95_low_h", "ci95_high_h"):
            figures[f"t{level}_vs_lmax_{suffix}"] = metrics[f"t{level}_vs_lmax_{suffix}"]
    figures.update(
        l0_stderr_cd_m2=metrics["l0_stderr"],
        l0_ci95_low_cd_m2=metrics["l0_ci95_low"],
        l0_ci95_high_cd_m2=metrics["l0_ci95_high"],
        brightening=metrics["brightening"],
        fit_dof=metrics["fit_dof"],
    )
    figures.update(
        t50_extrapolated_h=metrics["t50_extrapolated"],
        t50_fit_h=metrics["t50_fit"],
        tau_h=metrics["tau_h"],
        tau_h_stderr=metrics["tau_h_stderr"],
        beta=metrics["beta"],
        beta_stderr=metrics["beta_stderr"],
        duration_h=metrics["duration_h"],
        smoothing_window_s=metrics["smoothing_window_s"],
        ageing_acceleration=series.acceleration,
        wall_duration_s=float(series.time_s[-1] - series.time_s[0]),
        final_relative_luminance=float(
            np.median(series.luminance[-min(5, series.luminance.size) :]) / metrics["l0"]
        ),
        current_density_ma_cm2=float(np.nanmedian(series.current_density)),
        voltage_start_v=float(np.nanmedian(series.voltage[: min(5, series.voltage.size)])),
        voltage_end_v=float(np.nanmedian(series.voltage[-min(5, series.voltage.size) :])),
        n_points=float(series.device_time_s.size),
    )
    figures["voltage_rise_v"] = float(figures["voltage_end_v"]) - float(figures["voltage_start_v"])
    t50_s = float(metrics["t50_h"]) * S_PER_H
    figures.update(temperature_summary(series.device_time_s, series.temperature, t50_s))
    figures.update(_event_figures(run, series))
    if el is not None:
        figures.update(
            el_spectra=float(el.centre_nm.size),
            el_peak_start_nm=float(el.centre_nm[0]),
            el_peak_end_nm=float(el.centre_nm[-1]),
            el_peak_shift_nm=float(el.centre_nm[-1] - el.centre_nm[0]),
            el_fwhm_start_nm=float(el.fwhm_nm[0]),
            el_fwhm_end_nm=float(el.fwhm_nm[-1]),
            el_intensity_end_ratio=float(el.integrated[-1] / el.integrated[0])
            if el.integrated[0] > 0
            else math.nan,
        )
        target, tau = _fit_drift(el.device_time_s / S_PER_H, el.centre_nm)
        figures["el_peak_target_nm"] = target
        figures["el_drift_tau_h"] = tau
    return figures


def _event_figures(run: Any, series: StressSeries) -> dict[str, float | str]:
    events = list(getattr(run, "events", []) or [])
    kinds = [str(e.get("kind", "")) for e in events]
    stops = [str(e.get("message", "")) for e in events if e.get("kind") == "stop"]
    segments = np.unique(series.segment)
    gap_s = 0.0
    for later in segments[1:]:
        before = series.time_s[series.segment < later]
        after = series.time_s[series.segment == later]
        if before.size and after.size:
            gap_s += max(0.0, float(after.min() - before.max()))
    return {
        "retries": float(kinds.count("retry")),
        "faults": float(kinds.count("fault")),
        "reopens": float(kinds.count("reopen")),
        "gaps": float(kinds.count("gap")),
        "segments": float(segments.size),
        "resume_gap_s": gap_s,
        "superseded_rows": float(series.superseded),
        "stop_reason": stops[-1] if stops else "",
    }


def draw(run: Any, figure: Any) -> None:
    """Draw L/L0 against device time (linear and log), voltage, T-markers and EL drift.

    Parameters
    ----------
    run
        A loaded lifetime run.
    figure
        A matplotlib :class:`~matplotlib.figure.Figure` (Agg).
    """
    series = stress_series(run)
    figures = key_figures(run)
    l0 = float(figures["l0_cd_m2"])
    hours = series.device_time_s / S_PER_H
    relative = series.luminance / l0
    axes = figure.subplots(2, 3)
    ax_lin, ax_log, ax_v = axes[0]
    ax_peak, ax_int, ax_spec = axes[1]
    for ax, log_x in ((ax_lin, False), (ax_log, True)):
        shown = hours > 0 if log_x else np.ones(hours.size, bool)
        ax.plot(hours[shown], relative[shown], ".", ms=2, color="tab:blue", label="L/L0")
        for level in LEVELS_PCT:
            t_level = float(figures.get(f"t{level}_h", math.nan))
            ax.axhline(level / 100, color="0.8", lw=0.6)
            if math.isfinite(t_level) and (t_level > 0 or not log_x):
                ax.axvline(t_level, color="tab:red", lw=0.8, ls="--")
                ax.annotate(
                    f"T{level}",
                    (t_level, level / 100),
                    fontsize=7,
                    color="tab:red",
                    xytext=(2, 2),
                    textcoords="offset points",
                )
        extrapolated = float(figures.get("t50_extrapolated_h", math.nan))
        if math.isfinite(extrapolated):
            ax.axvline(extrapolated, color="tab:purple", lw=0.8, ls=":")
            ax.annotate("T50 (extrapolated)", (extrapolated, 0.5), fontsize=7, color="tab:purple")
        _shade_segments(ax, series)
        if log_x:
            ax.set_xscale("log")
        ax.set_xlabel("device time (h)")
        ax.set_ylabel("L / L0 (fraction)")
    ax_lin.set_title(f"L0 = {l0:.4g} cd/m$^2$, T50 = {_hours_text(figures)}")
    ax_log.set_title("log time")
    ax_v.plot(hours, series.voltage, ".", ms=2, color="tab:green")
    ax_v.set_xlabel("device time (h)")
    ax_v.set_ylabel("voltage (V)")
    ax_v.set_title(f"{float(figures['current_density_ma_cm2']):.4g} mA/cm$^2$")
    _shade_segments(ax_v, series)
    if series.temperature is not None and np.isfinite(series.temperature).any():
        ax_t = ax_v.twinx()  # the device temperature (thermometer role) beside the voltage
        ax_t.plot(hours, series.temperature, ".", ms=1, color="tab:red")
        ax_t.set_ylabel("temperature (C)", color="tab:red")
    el = el_series(run, series.acceleration)
    if el is None:
        for ax in (ax_peak, ax_int, ax_spec):
            ax.text(0.5, 0.5, "no EL spectra", ha="center", va="center", transform=ax.transAxes)
            ax.set_axis_off()
        return
    el_hours = el.device_time_s / S_PER_H
    ax_peak.plot(el_hours, el.centre_nm, "o-", ms=3, color="tab:red", label="peak centre")
    ax_peak.set_xlabel("device time (h)")
    ax_peak.set_ylabel("EL peak centre (nm)")
    ax_peak.ticklabel_format(axis="y", useOffset=False)
    twin = ax_peak.twinx()
    twin.plot(el_hours, el.fwhm_nm, "s--", ms=2, color="tab:gray", label="FWHM")
    twin.set_ylabel("FWHM (nm)")
    ax_peak.set_title("EL peak against time")
    ax_int.plot(el_hours, el.integrated / el.integrated[0], "o-", ms=3, color="tab:orange")
    ax_int.set_xlabel("device time (h)")
    ax_int.set_ylabel("EL intensity (rel. to first)")
    ax_int.set_title("EL intensity against time")
    picks = sorted({0, el.centre_nm.size // 2, el.centre_nm.size - 1})
    for index, spectrum in zip(picks, el_spectra(run, el, picks), strict=True):
        peak = np.nanmax(spectrum)
        ax_spec.plot(
            el.wavelength_nm,
            spectrum / peak if peak > 0 else spectrum,
            lw=1,
            label=f"{el_hours[index]:.3g} h",
        )
    centre = float(np.nanmedian(el.centre_nm))
    width = float(np.nanmax(el.fwhm_nm)) if np.isfinite(el.fwhm_nm).any() else 100.0
    shift = float(np.nanmax(el.centre_nm) - np.nanmin(el.centre_nm))
    ax_spec.set_xlim(centre - 3 * width - shift, centre + 3 * width + shift)
    ax_spec.set_xlabel("wavelength (nm)")
    ax_spec.set_ylabel("EL (normalised)")
    ax_spec.legend(fontsize=7)
    ax_spec.set_title("EL spectra")


def _hours_text(figures: Mapping[str, Any]) -> str:
    t50 = float(figures.get("t50_h", math.nan))
    if math.isfinite(t50):
        return f"{t50:.4g} h"
    extrapolated = float(figures.get("t50_extrapolated_h", math.nan))
    if math.isfinite(extrapolated):
        return f"{extrapolated:.4g} h (extrapolated)"
    return "not reached"


def _shade_segments(ax: Any, series: StressSeries) -> None:
    """Mark where a resumed run continued (the wall-clock gap) with a vertical line."""
    for later in np.unique(series.segment)[1:]:
        first = series.device_time_s[series.segment == later]
        if first.size:
            ax.axvline(first.min() / S_PER_H, color="0.4", lw=1.0, ls="-.")
