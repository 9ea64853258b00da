"""Lifetime runs beyond one file: key figures, report, acceleration fit and ``--resume``.

What the command line needs for operational-lifetime runs (procedure ``lifetime``,
``procedures/lifetime.py``), kept out of the CLI so it is testable and usable from a
notebook:

* :func:`lifetime_figures` / :func:`draw_lifetime_report` - the procedure's
  ``analyze_results`` and ``draw_report`` (docs/architecture.md section 6);
* :func:`lifetime_fit_report` / :func:`draw_lifetime_fit` - ``perovlab-daq lifetime-fit``:
  the acceleration law L0^n T50 = C fitted across runs at several initial luminances,
  with n, its standard error and T50 extrapolated to chosen luminances;
* :func:`plan_resume` / :func:`execute_resume` - ``perovlab-daq run lifetime --resume FILE``:
  continue a run left ``interrupted`` (after ``perovlab-daq recover``) in the same file.

A resumed run is recorded as *segments*: column ``segment`` is 0 for the original run and
k for the k-th continuation. The continuation runs through the ordinary runner into a
temporary segment file beside the run file (``<stem>.segment<k>.h5``) and is then appended
to the run file (rows, frames, events, final status), so the continuation has every
guarantee of a normal run (journal, recover) and the result is one file.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import math
import shutil
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

S_PER_H = 3600.0
PROCEDURE_NAME = "lifetime"
LEVELS_PCT = (95, 90, 80, 70, 50)
DEFAULT_FIT_LUMINANCES_CD_M2 = (100.0, 1000.0)


# =========================================================================== reading a run
def _analysis_error(message: str) -> Exception:
    from perovlab_daq.figures import AnalysisInputError

    return AnalysisInputError(message)


def run_metadata(run: Any) -> dict[str, Any]:
    """Return the run's metadata (bench: simulated, preset, ageing_acceleration, setup_*)."""
    return dict(getattr(run, "metadata", None) or {})


def _file_metadata(file: Any) -> dict[str, Any]:
    group = file.get("entry/metadata")
    if group is None:
        return {}
    values: dict[str, Any] = {}
    for key, value in group.attrs.items():
        values[key] = value.decode() if isinstance(value, bytes) else _plain(value)
    return values


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return value


def _parameter(run: Any, name: str, default: Any = None) -> Any:
    procedure = getattr(run, "procedure", None)
    value = getattr(procedure, name, None) if procedure is not None else None
    if value is None:
        parameter = (getattr(run, "parameters", None) or {}).get(name)
        value = getattr(parameter, "value", parameter)
    return default if value is None else value


def _column(data: Any, name: str) -> np.ndarray | None:
    if name not in getattr(data, "columns", ()):
        return None
    return np.asarray(data[name], dtype=float)


#: Columns the lifetime analysis reads (the others are never loaded).
_STRESS_COLUMNS = (
    "luminance",
    "time",
    "device_time",
    "jlv_sweep",
    "segment",
    "relative_luminance",
    "voltage",
    "current_density",
)


def _stress_columns(run: Any) -> dict[str, np.ndarray]:
    """Return the columns of :data:`_STRESS_COLUMNS` the run has, as float arrays.

    A :class:`~perovlab_daq.storage.HDF5Results` reads just these from the file
    (``read_columns``); any other run object is read through its ``data`` frame.
    """
    read_columns = getattr(run, "read_columns", None)
    if read_columns is not None:
        return {k: np.asarray(v, dtype=float) for k, v in read_columns(_STRESS_COLUMNS).items()}
    data = run.data
    columns = {name: _column(data, name) for name in _STRESS_COLUMNS}
    return {name: values for name, values in columns.items() if values is not None}


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


def stress_series(run: Any) -> StressSeries:
    """Return the stress rows of a lifetime run (see :class:`StressSeries`).

    Raises
    ------
    perovlab_daq.figures.AnalysisInputError
        If the file lacks the ``luminance`` column or a time column.
    """
    columns = _stress_columns(run)
    meta = run_metadata(run)
    acceleration = float(meta.get("ageing_acceleration", 1.0) or 1.0)
    luminance = columns.get("luminance")
    if luminance is None:
        raise _analysis_error("missing column 'luminance'")
    wall = columns.get("time")
    device = columns.get("device_time")
    if device is None:
        if wall is None:
            raise _analysis_error("missing column 'device_time' (or 'time')")
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
        keep &= ~(sweep > 0)
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


# =========================================================================== figures
def lifetime_figures(run: Any) -> dict[str, float | str]:
    """Return the key figures of a lifetime run, computed only from what the file holds.

    Lifetime figures come from :func:`perovlab_daq.analysis.lifetime_metrics` on the
    stress rows (:func:`stress_series`) in *device* time: L0 (median of the first
    samples), L_max and t(L_max), T95...T50 against L0 and against L_max (last crossing
    of the time-binned median), and the stretched-exponential fit with T50
    extrapolated when the run stopped early. EL figures come from
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
    perovlab_daq.figures.AnalysisInputError
        If a column is missing or there are too few usable rows.
    """
    from perovlab_daq.analysis import lifetime_metrics

    series = stress_series(run)
    if series.device_time_s.size < 10:
        raise _analysis_error(
            f"only {series.device_time_s.size} usable stress rows; at least 10 are needed"
        )
    try:
        metrics = lifetime_metrics(series.device_time_s, series.luminance)
    except ValueError as exc:
        raise _analysis_error(str(exc)) from None
    figures: dict[str, float | str] = {
        "l0_cd_m2": metrics["l0"],
        "l_max_cd_m2": metrics["l_max"],
        "t_l_max_h": metrics["t_l_max"],
    }
    for level in LEVELS_PCT:
        figures[f"t{level}_h"] = metrics[f"t{level}"]
    for level in LEVELS_PCT:
        figures[f"t{level}_from_max_h"] = metrics[f"t{level}_from_max"]
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
    figures.update(_event_figures(run, series))
    el = el_series(run, series.acceleration)
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


# =========================================================================== report
def draw_lifetime_report(run: Any, figure: Any) -> None:
    """Draw L/L0 against device time (linear and log), voltage, T-markers and EL drift.

    Parameters
    ----------
    run
        A loaded lifetime run.
    figure
        A matplotlib :class:`~matplotlib.figure.Figure` (Agg).
    """
    series = stress_series(run)
    figures = lifetime_figures(run)
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
        ax.set_ylabel("L / L0")
    ax_lin.set_title(f"L0 = {l0:.4g} cd/m$^2$, T50 = {_hours_text(figures)}")
    ax_log.set_title("log time")
    ax_v.plot(hours, series.voltage, ".", ms=2, color="tab:green")
    ax_v.set_xlabel("device time (h)")
    ax_v.set_ylabel("voltage (V)")
    ax_v.set_title(f"{float(figures['current_density_ma_cm2']):.4g} mA/cm$^2$")
    _shade_segments(ax_v, series)
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


# =========================================================================== lifetime-fit
def _load_lifetime_run(path: str | Path) -> Any:
    from perovlab_daq.figures import load_run

    cls, run = load_run(path)
    if getattr(cls, "NAME", "") != PROCEDURE_NAME:
        _close(run)
        raise _analysis_error(f"{path}: a {getattr(cls, 'NAME', '?')!r} run, not a lifetime run")
    return run


def _close(run: Any) -> None:
    close = getattr(run, "close", None)
    if close is not None:
        try:
            close()
        except Exception as exc:  # noqa: BLE001 - closing a reader must not hide results
            log.debug("closing %r: %s", run, exc)


def lifetime_fit_report(
    paths: Sequence[str | Path], at: Iterable[float] = DEFAULT_FIT_LUMINANCES_CD_M2
) -> dict[str, Any]:
    """Fit the acceleration law L0^n T50 = C over lifetime runs; extrapolate T50.

    Each file gives (L0, T50) in device hours: the measured T50 when the run reached it,
    otherwise the stretched-exponential extrapolation (flagged ``"extrapolated"``). n is
    fitted by :func:`perovlab_daq.analysis.fit_acceleration` (least squares of ln T50 on
    ln L0). For each luminance in ``at`` the report gives T50 = C / L^n with a one-sigma
    band from the regression's prediction error, and the extrapolation ratio
    T50(L) / T50(L0,ref) = (L0,ref / L)^n, where L0,ref is the tested L0 closest to L
    (in log) - the smallest extrapolation the data allow.

    Parameters
    ----------
    paths
        At least three lifetime run files at different initial luminances.
    at
        Luminances (cd/m^2) to extrapolate T50 to (default 100 and 1000).

    Returns
    -------
    dict
        ``runs`` (per file: l0_cd_m2, t50_h, t50_source, ageing_acceleration,
        current_density_ma_cm2), ``n``, ``n_stderr``, ``c``, ``residual_rms_ln``,
        ``n_points`` and ``at`` (per luminance: t50_h, t50_low_h, t50_high_h,
        reference_l0_cd_m2, extrapolation_ratio).

    Raises
    ------
    perovlab_daq.figures.AnalysisInputError
        For a file that is not a usable lifetime run, fewer than three usable runs, or
        a luminance in ``at`` that is not > 0.
    """
    from perovlab_daq.analysis import fit_acceleration

    targets = [float(value) for value in at]
    if not targets or any(not (math.isfinite(v) and v > 0) for v in targets):
        raise _analysis_error(f"--at luminances must be numbers > 0 cd/m^2; got {targets}")
    runs = []
    for path in paths:
        run = _load_lifetime_run(path)
        try:
            figures = lifetime_figures(run)
        finally:
            _close(run)
        t50 = float(figures["t50_h"])
        source = "measured"
        if not math.isfinite(t50):
            t50 = float(figures["t50_extrapolated_h"])
            source = "extrapolated"
        if not (math.isfinite(t50) and t50 > 0):
            raise _analysis_error(f"{path}: no T50 (not reached and no usable lifetime fit)")
        runs.append(
            {
                "file": str(path),
                "l0_cd_m2": float(figures["l0_cd_m2"]),
                "t50_h": t50,
                "t50_source": source,
                "ageing_acceleration": float(figures["ageing_acceleration"]),
                "current_density_ma_cm2": float(figures["current_density_ma_cm2"]),
            }
        )
    if len(runs) < 3:
        raise _analysis_error(
            f"lifetime-fit needs at least 3 runs at different initial luminances; got {len(runs)}"
        )
    l0 = np.array([r["l0_cd_m2"] for r in runs])
    t50 = np.array([r["t50_h"] for r in runs])
    try:
        fit = fit_acceleration(l0, t50)
    except ValueError as exc:
        raise _analysis_error(str(exc)) from None
    x = np.log(l0)
    residual = np.log(t50) - (math.log(fit.c) - fit.n * x)
    dof = max(1, x.size - 2)
    scatter = math.sqrt(float((residual**2).sum()) / dof)
    sxx = float(((x - x.mean()) ** 2).sum())
    extrapolations = []
    for luminance in targets:
        x0 = math.log(luminance)
        predicted = float(fit.t50_at(luminance))
        spread = scatter * math.sqrt(1.0 / x.size + (x0 - x.mean()) ** 2 / sxx)
        reference = float(l0[np.argmin(np.abs(x - x0))])
        extrapolations.append(
            {
                "luminance_cd_m2": luminance,
                "t50_h": predicted,
                "t50_low_h": predicted * math.exp(-spread),
                "t50_high_h": predicted * math.exp(spread),
                "reference_l0_cd_m2": reference,
                "extrapolation_ratio": float(fit.extrapolation_ratio(reference, luminance)),
            }
        )
    return {
        "runs": runs,
        "n": fit.n,
        "n_stderr": fit.n_stderr,
        "c": fit.c,
        "residual_rms_ln": fit.residual_rms_ln,
        "n_points": fit.n_points,
        "at": extrapolations,
    }


def format_fit_report(report: Mapping[str, Any]) -> str:
    """Return the lifetime-fit report as text for a terminal."""
    lines = []
    for run in report["runs"]:
        flag = "" if run["t50_source"] == "measured" else " (extrapolated)"
        lines.append(
            f"{run['file']}: L0 {run['l0_cd_m2']:.4g} cd/m^2, T50 {run['t50_h']:.4g} h{flag} "
            f"[{run['current_density_ma_cm2']:.4g} mA/cm^2, acceleration "
            f"{run['ageing_acceleration']:g}]"
        )
    lines.append(
        f"n = {report['n']:.3f} +/- {report['n_stderr']:.3f} (L0^n T50 = C, "
        f"{report['n_points']} runs, rms residual {report['residual_rms_ln']:.3g} in ln T50)"
    )
    for item in report["at"]:
        lines.append(
            f"T50 at {item['luminance_cd_m2']:g} cd/m^2: {item['t50_h']:.4g} h "
            f"(1 sigma {item['t50_low_h']:.4g} to {item['t50_high_h']:.4g} h), "
            f"extrapolation ratio {item['extrapolation_ratio']:.3g} from L0 "
            f"{item['reference_l0_cd_m2']:.4g} cd/m^2"
        )
    return "\n".join(lines)


def draw_lifetime_fit(
    paths: Sequence[str | Path],
    figure: Any,
    at: Iterable[float] = DEFAULT_FIT_LUMINANCES_CD_M2,
    *,
    report: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Draw T50 against L0 on log-log axes with the fitted law and the extrapolations.

    Parameters
    ----------
    paths
        Lifetime run files (ignored when ``report`` is given).
    figure
        A matplotlib Figure (Agg).
    at
        Luminances to extrapolate to.
    report
        A :func:`lifetime_fit_report` result, to avoid analysing the files twice.

    Returns
    -------
    dict
        The report drawn.
    """
    report = dict(report) if report is not None else lifetime_fit_report(paths, at)
    ax = figure.subplots()
    l0 = np.array([r["l0_cd_m2"] for r in report["runs"]])
    t50 = np.array([r["t50_h"] for r in report["runs"]])
    measured = np.array([r["t50_source"] == "measured" for r in report["runs"]])
    ax.loglog(l0[measured], t50[measured], "o", color="tab:blue", label="T50 measured")
    if (~measured).any():
        ax.loglog(
            l0[~measured],
            t50[~measured],
            "o",
            mfc="none",
            color="tab:blue",
            label="T50 extrapolated (stretched exp.)",
        )
    targets = [item["luminance_cd_m2"] for item in report["at"]]
    span = np.geomspace(min(min(l0), *targets) / 1.5, max(max(l0), *targets) * 1.5, 100)
    ax.loglog(
        span,
        report["c"] / span ** report["n"],
        "-",
        color="tab:gray",
        label=f"L0$^n$ T50 = C, n = {report['n']:.2f} $\\pm$ {report['n_stderr']:.2f}",
    )
    for item in report["at"]:
        value = item["t50_h"]
        error = [[value - item["t50_low_h"]], [item["t50_high_h"] - value]]
        ax.errorbar(
            [item["luminance_cd_m2"]], [value], yerr=error, fmt="s", color="tab:red", capsize=3
        )
        ax.annotate(
            f"{value:.3g} h @ {item['luminance_cd_m2']:g} cd/m$^2$\n"
            f"(x{item['extrapolation_ratio']:.3g})",
            (item["luminance_cd_m2"], value),
            fontsize=8,
            xytext=(6, 4),
            textcoords="offset points",
        )
    ax.set_xlabel("initial luminance L0 (cd/m$^2$)")
    ax.set_ylabel("T50 (device hours)")
    ax.grid(True, which="both", lw=0.3)
    ax.legend(fontsize=8)
    ax.set_title("Acceleration law")
    return report


# =========================================================================== resume
class ResumeError(ValueError):
    """A run file cannot be resumed (wrong status, procedure, bench); nothing was touched."""


def _epoch(iso: str) -> float:
    try:
        return _dt.datetime.fromisoformat(str(iso)).timestamp()
    except ValueError:
        return math.nan


def _read_text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def read_resume_state(path: str | Path) -> Any:
    """Read where an interrupted lifetime run stopped (for its continuation).

    On the simulated bench the state comes from the last ``device_state`` event (the
    simulated device's ageing state and the device time it was saved at); on real
    hardware the device time carries on from the last row.

    Returns
    -------
    procedures.lifetime.ResumeState

    Raises
    ------
    ResumeError
        If the file holds no usable stress row.
    """
    import h5py

    from procedures.lifetime import EVENT_DEVICE_STATE, ResumeState

    file_path = Path(path)
    with h5py.File(file_path, "r", locking=False) as file:
        entry = file["entry"]
        start_epoch = _epoch(_read_text(entry.attrs.get("start_time", "")))
        data = entry["data"]
        columns = {name: np.asarray(ds[()], dtype=float) for name, ds in data.items()}
        kinds = [_read_text(v) for v in entry["events/kind"][()]] if "events" in entry else []
        messages = [_read_text(v) for v in entry["events/message"][()]] if "events" in entry else []
        spectra = len(entry["spectra/intensity"]) if "spectra" in entry else 0
    luminance = columns.get("luminance")
    relative = columns.get("relative_luminance")
    device = columns.get("device_time")
    wall = columns.get("time")
    if luminance is None or relative is None or device is None or wall is None:
        raise ResumeError(f"{file_path}: not a lifetime run file (columns missing)")
    sweep = columns.get("jlv_sweep", np.zeros(luminance.size))
    segment = columns.get("segment", np.zeros(luminance.size))
    stress = np.isfinite(luminance) & np.isfinite(relative) & (relative > 0) & ~(sweep > 0)
    if not stress.any():
        raise ResumeError(f"{file_path}: no stress row with a luminance: nothing to resume from")
    l0 = float(np.median(luminance[stress] / relative[stress]))
    last = int(np.flatnonzero(np.isfinite(device))[-1])
    checkpoint = None
    for kind, message in zip(reversed(kinds), reversed(messages), strict=True):
        if kind == EVENT_DEVICE_STATE:
            try:
                checkpoint = json.loads(message)
            except json.JSONDecodeError:
                continue
            break
    now_offset = time.time() - start_epoch if math.isfinite(start_epoch) else float(wall[last])
    state = ResumeState(
        segment=int(np.nanmax(segment)) + 1 if segment.size else 1,
        time_offset_s=max(now_offset, float(wall[last])),
        device_time_s=float(device[last]),
        l0_cd_m2=l0,
        last_time_s=float(wall[last]),
        last_device_time_s=float(device[last]),
        jlv_done=int(np.nanmax(sweep)) if sweep.size and np.isfinite(sweep).any() else 0,
        spectra_done=int(spectra),
    )
    if checkpoint is not None and isinstance(checkpoint.get("world"), Mapping):
        state.world_state = dict(checkpoint["world"])
        state.device_time_s = float(checkpoint.get("device_time_s", state.device_time_s))
        state.notes.append(
            f"device state saved at device time {state.device_time_s / S_PER_H:.4g} h"
        )
    return state


@dataclass
class ResumePlan:
    """A validated continuation of an interrupted lifetime run; nothing touched yet.

    Attributes
    ----------
    path
        The run file to continue.
    segment_path
        Temporary file the continuation runs into before it is appended to ``path``.
    run_plan
        The :class:`perovlab_daq.runner.RunPlan` of the continuation.
    segment
        Index of the new segment.
    """

    path: Path
    segment_path: Path
    run_plan: Any
    segment: int


def _segment_path(path: Path, segment: int) -> Path:
    return path.with_name(f"{path.stem}.segment{segment}{path.suffix}")


def _leftover_segments(path: Path) -> list[Path]:
    return sorted(path.parent.glob(f"{path.stem}.segment*{path.suffix}"))


def plan_resume(
    path: str | Path,
    bench_config: Any,
    *,
    durability_interval_s: float = 1.0,
    power_loss_safe: bool = False,
) -> ResumePlan:
    """Check that a run file can be continued on this bench and plan the continuation.

    Parameters
    ----------
    path
        A lifetime run file with status ``interrupted`` (run ``perovlab-daq recover`` on a
        file a killed run left behind first).
    bench_config
        The bench to continue on; a simulated file needs the simulated bench with the
        same preset, a real one a real bench.

    Raises
    ------
    perovlab_daq.runner.RunInputError
        For a missing file, another procedure, a status other than ``interrupted``, or a
        bench that does not match; nothing is opened or created.
    """
    import h5py

    from perovlab_daq.runner import RunInputError, plan_run

    file_path = Path(path)
    if not file_path.exists():
        raise RunInputError(f"--resume {file_path}: no such file")
    try:
        with h5py.File(file_path, "r", locking=False) as file:
            entry = file["entry"]
            procedure = _read_text(entry.attrs.get("procedure", ""))
            status = _read_text(entry.attrs.get("status", ""))
            meta = _file_metadata(file)
            parameters = {
                name: _plain(ds[()]) if ds.shape is not None else None
                for name, ds in entry["parameters"].items()
            }
    except OSError as exc:
        raise RunInputError(
            f"--resume {file_path}: cannot read it ({exc}); if the run was killed, run "
            f"'perovlab-daq recover {file_path}' first"
        ) from None
    except KeyError as exc:
        raise RunInputError(f"--resume {file_path}: not a run file ({exc})") from None
    if procedure != PROCEDURE_NAME:
        raise RunInputError(f"--resume {file_path}: a {procedure!r} run; only lifetime runs resume")
    if status != "interrupted":
        hint = (
            f"; run 'perovlab-daq recover {file_path}' first"
            if status == "running"
            else " (only an interrupted run can be continued)"
        )
        raise RunInputError(f"--resume {file_path}: status is {status!r}{hint}")
    simulated = bool(meta.get("simulated", False))
    if simulated != bool(bench_config.simulated):
        raise RunInputError(
            f"--resume {file_path}: the run was on a {'simulated' if simulated else 'real'} "
            f"bench; continue it on the same kind of bench"
        )
    if simulated and bench_config.sim is not None:
        preset = str(meta.get("sim_preset", ""))
        if preset and preset != bench_config.sim.preset:
            raise RunInputError(
                f"--resume {file_path}: simulated preset {preset!r}, the bench has "
                f"{bench_config.sim.preset!r} (use --sim {preset})"
            )
    if not _leftover_segments(file_path):
        try:
            read_resume_state(file_path)
        except (ResumeError, KeyError) as exc:
            raise RunInputError(f"--resume {file_path}: {exc}") from None
    for leftover in _leftover_segments(file_path):
        log.info("a previous continuation %s will be appended first", leftover)
    segment = _next_segment(file_path)
    segment_path = _segment_path(file_path, segment)
    from procedures.lifetime import LifetimeProcedure

    known = LifetimeProcedure.parameter_objects_of_class()
    values = {k: _read_text(v) if isinstance(v, bytes) else v for k, v in parameters.items()}
    values = {k: v for k, v in values.items() if k in known and v is not None}
    values["resume_file"] = str(file_path.resolve())
    run_plan = plan_run(
        PROCEDURE_NAME,
        bench_config=bench_config,
        parameters=values,
        output=segment_path,
        sample=_file_sample(file_path),
        durability_interval_s=durability_interval_s,
        power_loss_safe=power_loss_safe,
    )
    return ResumePlan(file_path, segment_path, run_plan, segment)


def simulated_bench_of(path: str | Path) -> Any:
    """Return the shipped simulated bench with the preset and seed a run file was taken with.

    For ``run lifetime --resume FILE --sim`` without a preset: the continuation must run on
    the same simulated sample.

    Raises
    ------
    perovlab_daq.runner.RunInputError
        If the file was not taken on the simulated bench or cannot be read.
    """
    import h5py

    from perovlab_daq.bench import sim_bench
    from perovlab_daq.runner import RunInputError

    try:
        with h5py.File(Path(path), "r", locking=False) as file:
            meta = _file_metadata(file)
    except OSError as exc:
        raise RunInputError(f"--resume {path}: cannot read it ({exc})") from None
    if not meta.get("simulated"):
        raise RunInputError(f"--resume {path}: the run was on real instruments; give --bench")
    seed = meta.get("sim_seed")
    return sim_bench(str(meta.get("sim_preset")) or None, seed=None if seed is None else int(seed))


def _next_segment(path: Path) -> int:
    import h5py

    with h5py.File(path, "r", locking=False) as file:
        data = file["entry/data"]
        seg = np.asarray(data["segment"][()], dtype=float) if "segment" in data else np.zeros(1)
    done = int(np.nanmax(seg)) if seg.size and np.isfinite(seg).any() else 0
    leftovers = [_segment_index(p) for p in _leftover_segments(path)]
    return max([done, *leftovers]) + 1


def _segment_index(path: Path) -> int:
    text = path.stem.rsplit(".segment", 1)[-1]
    return int(text) if text.isdigit() else 0


def _file_sample(path: Path) -> dict[str, str]:
    import h5py

    sample: dict[str, str] = {}
    with h5py.File(path, "r", locking=False) as file:
        group = file.get("entry/sample")
        if group is None:
            return sample
        for key in ("sample", "device", "pixel", "operator", "notes"):
            if key in group:
                sample[key] = _read_text(group[key][()])
    return sample


def execute_resume(
    plan: ResumePlan,
    *,
    stop_event: threading.Event | None = None,
    on_progress: Callable[[float, str], None] | None = None,
    bench: Any = None,
) -> Any:
    """Continue an interrupted lifetime run and append the continuation to its file.

    Steps: append any earlier continuation left behind by a killed resume (recovering
    it first); run the procedure with ``resume_file`` set through
    :func:`perovlab_daq.runner.execute_run` into ``plan.segment_path`` (so it has the
    journal, safe stop and status handling of every run); append its rows, frames and
    events to the run file; set the run's final status; recompute and store the
    analysis; delete the segment file (its log is appended to the run's log).

    A continuation that failed before it recorded any row (e.g. an instrument missing)
    only adds its events; the run file stays ``interrupted`` and can be resumed again.

    Returns
    -------
    perovlab_daq.runner.RunOutcome
        With ``path`` the run file and the figures of the whole run.
    """
    from perovlab_daq.runner import RunOutcome, execute_run

    for leftover in _leftover_segments(plan.path):
        if leftover != plan.segment_path:
            _append_leftover(plan.path, leftover)
    outcome = execute_run(
        plan.run_plan, stop_event=stop_event, on_progress=on_progress, bench=bench
    )
    rows = append_segment(plan.path, plan.segment_path, outcome.status, outcome.reason)
    _discard_segment(plan.path, plan.segment_path)
    figures: dict[str, Any] = {}
    if rows:
        figures = _store_figures(plan.path)
    return RunOutcome(
        path=plan.path,
        status=outcome.status if rows else "interrupted",
        reason=outcome.reason,
        figures=figures,
        interrupted_by=outcome.interrupted_by,
        elapsed_s=outcome.elapsed_s,
        safe_state=outcome.safe_state,
    )


def _append_leftover(path: Path, leftover: Path) -> None:
    import h5py

    from perovlab_daq.storage import recover

    with h5py.File(leftover, "r", locking=False, swmr=True) as file:
        status = _read_text(file["entry"].attrs.get("status", ""))
    if status in {"running", "queued"}:
        recover(leftover)
        with h5py.File(leftover, "r", locking=False) as file:
            status = _read_text(file["entry"].attrs.get("status", ""))
    append_segment(path, leftover, "interrupted" if status == "finished" else status, "")
    _discard_segment(path, leftover)


def _store_figures(path: Path) -> dict[str, Any]:
    from perovlab_daq.storage import HDF5Results

    run = HDF5Results.load(path)
    try:
        figures = lifetime_figures(run)
    except ValueError as exc:
        log.error("analysis of %s failed: %s", path, exc)
        return {}
    finally:
        _close(run)
    try:
        HDF5Results.load(path).write_analysis(figures)
    except Exception as exc:  # noqa: BLE001 - the figures are returned anyway
        log.error("could not store the analysis in %s: %s", path, exc)
    return figures


def _discard_segment(path: Path, segment_path: Path) -> None:
    log_src = segment_path.with_suffix(segment_path.suffix + ".log")
    if log_src.exists():
        log_dst = path.with_suffix(path.suffix + ".log")
        with open(log_dst, "a", encoding="utf-8") as out, open(log_src, encoding="utf-8") as src:
            out.write(f"\n--- continuation {segment_path.name} ---\n")
            shutil.copyfileobj(src, out)
        log_src.unlink()
    for leftover in (segment_path, segment_path.with_suffix(segment_path.suffix + ".journal")):
        if leftover.exists():
            leftover.unlink()


def _append_dataset(target: Any, values: np.ndarray) -> None:
    start = target.shape[0]
    target.resize((start + values.shape[0], *target.shape[1:]))
    target[start:] = values


def append_segment(path: Path, segment_path: Path, status: str, reason: str) -> int:
    """Append a continuation's rows, frames and events to the run file; set its status.

    Event times are moved onto the run file's clock (seconds since its start). Frame
    streams are extended (``dark_index``/``frame_index`` contexts offset so they still
    point at the right frames); a stream new in the continuation is copied whole.

    Returns
    -------
    int
        Number of rows appended (0: only the events were appended and the status kept).
    """
    import h5py

    if not segment_path.exists():
        return 0
    with (
        h5py.File(path, "r+", locking=False) as dst,
        h5py.File(segment_path, "r", locking=False) as src,
    ):
        target, source = dst["entry"], src["entry"]
        shift = _epoch(_read_text(source.attrs.get("start_time", ""))) - _epoch(
            _read_text(target.attrs.get("start_time", ""))
        )
        shift = 0.0 if not math.isfinite(shift) else shift
        rows = min(
            (len(d) for d in source["data"].values() if isinstance(d, h5py.Dataset)), default=0
        )
        if rows:
            for name, dataset in target["data"].items():
                if not isinstance(dataset, h5py.Dataset):
                    continue
                if name in source["data"]:
                    values = np.asarray(source["data"][name][:rows], dtype=float)
                else:
                    values = np.full(rows, np.nan)
                _append_dataset(dataset, values)
        if "events" in source and "events" in target:
            count = len(source["events/time"])
            for name, dataset in source["events"].items():
                values = dataset[:count]
                if name == "time":
                    values = np.asarray(values, dtype=float) + shift
                if name in target["events"]:
                    _append_dataset(target["events"][name], np.asarray(values))
        offsets = {
            "frame_index": _frame_count(target, "spectra"),
            "dark_index": _frame_count(target, "spectra_dark"),
        }
        for stream, group in source.items():
            if not (isinstance(group, h5py.Group) and "intensity" in group):
                continue
            _append_stream(target, stream, group, source, offsets)
        if rows:
            target.attrs["status"] = status
            target.attrs["status_reason"] = reason or ""
            target.attrs["end_time"] = _read_text(source.attrs.get("end_time", ""))
        segments = target.require_group("segments")
        segments.attrs["NX_class"] = "NXcollection"
        record = segments.create_group(segment_path.stem.rsplit(".", 1)[-1] + f"_{len(segments)}")
        for key in ("start_time", "end_time", "status", "status_reason"):
            record.attrs[key] = _read_text(source.attrs.get(key, ""))
        record.attrs["rows"] = rows
    return rows


def _frame_count(entry: Any, stream: str) -> int:
    return entry[f"{stream}/intensity"].shape[0] if stream in entry else 0


def _append_stream(
    target: Any, stream: str, group: Any, source: Any, offsets: Mapping[str, int]
) -> None:
    import h5py

    if stream not in target:
        source.copy(group, target, name=stream)
        return
    existing = target[stream]
    if existing["intensity"].shape[1] != group["intensity"].shape[1]:
        name = f"{stream}_segment"
        log.warning("stream %s changed its pixel count; appended as %s", stream, name)
        if name not in target:
            source.copy(group, target, name=name)
        return
    before = existing["intensity"].shape[0]
    count = group["intensity"].shape[0]
    _append_dataset(existing["intensity"], group["intensity"][:count])
    names = [n for n, d in group.items() if isinstance(d, h5py.Dataset) and d.ndim == 1]
    for name in names:
        if name in ("wavelength",):
            continue
        values = np.asarray(group[name][:count], dtype=float)
        if name in offsets and not (stream == "spectra_dark" and name == "frame_index"):
            values = values + offsets[name]
        if name not in existing:
            dataset = existing.create_dataset(
                name,
                shape=(before,),
                maxshape=(None,),
                chunks=(1024,),
                dtype="f8",
                fillvalue=np.nan,
            )
            dataset.attrs["units"] = group[name].attrs.get("units", "")
        _append_dataset(existing[name], values)
    for name, dataset in existing.items():
        if (
            isinstance(dataset, h5py.Dataset)
            and dataset.ndim == 1
            and name not in names
            and name != "wavelength"
        ):
            _append_dataset(dataset, np.full(count, np.nan))
    existing.attrs["context"] = [
        n
        for n in existing
        if n not in ("wavelength", "intensity") and isinstance(existing[n], h5py.Dataset)
    ]
