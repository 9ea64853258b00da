"""The acceleration-law report of ``perovlab-daq lifetime-fit`` across lifetime runs.

L0^n T50 = C is fitted over runs at several initial luminances
(:func:`perovlab_daq.analysis.fit_acceleration`); the report gives n, its standard error
and T50 extrapolated to chosen luminances (:func:`lifetime_fit_report`), as text
(:func:`format_fit_report`) or a log-log figure (:func:`draw_lifetime_fit`). Each run's
T50 comes from :func:`perovlab_daq.figures.lifetime.key_figures`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from perovlab_daq.figures import _run, load_run
from perovlab_daq.figures._run import AnalysisInputError
from perovlab_daq.figures.lifetime import key_figures

log = logging.getLogger(__name__)

PROCEDURE_NAME = "lifetime"
DEFAULT_FIT_LUMINANCES_CD_M2 = (100.0, 1000.0)


def _load_lifetime_run(path: str | Path) -> Any:
    try:
        name, run = load_run(path)
    except AnalysisInputError as exc:
        raise AnalysisInputError(f"{path}: {exc}") from None
    if name != PROCEDURE_NAME:
        _run.close(run)
        raise AnalysisInputError(f"{path}: a {name!r} run, not a lifetime run")
    return run


def lifetime_fit_report(
    paths: Sequence[str | Path], at: Iterable[float] = DEFAULT_FIT_LUMINANCES_CD_M2
) -> dict[str, Any]:
    """Fit the acceleration law L0^n T50 = C over lifetime runs; extrapolate T50.

    Each file gives (L0, T50, its standard error) in device hours from the lifetime
    estimator: the measured T50 when the run reached it, otherwise the model's (flagged
    ``"extrapolated"``). n is fitted by :func:`perovlab_daq.analysis.fit_acceleration`
    (least squares of ln T50 on ln L0 weighted by each run's T50 uncertainty, Student t
    quantiles for the real degrees of freedom), with its 95 % interval. For each
    luminance in ``at`` the report gives T50 = C / L^n with its 95 % interval, the fit's
    warnings (fewer than 3 luminances, a target more than 10x outside the tested
    range), and the extrapolation ratio
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
        ``runs`` (per file: l0_cd_m2, t50_h, t50_stderr_h, t50_source,
        ageing_acceleration, current_density_ma_cm2, temperature_mean_c,
        temperature_at_t50_c), ``n``, ``n_stderr``, ``n_ci95``,
        ``dof``, ``t_quantile``, ``weighted``, ``c``, ``residual_rms_ln``, ``n_points``,
        ``warnings`` and ``at`` (per luminance: t50_h, t50_ci95_low_h, t50_ci95_high_h,
        reference_l0_cd_m2, extrapolation_ratio).

    Raises
    ------
    AnalysisInputError
        For a file that is not a usable lifetime run, fewer than three usable runs, or
        a luminance in ``at`` that is not > 0.
    """
    from perovlab_daq.analysis import fit_acceleration

    targets = [float(value) for value in at]
    if not targets or any(not (math.isfinite(v) and v > 0) for v in targets):
        raise AnalysisInputError(f"--at luminances must be numbers > 0 cd/m^2; got {targets}")
    runs = []
    for path in paths:
        run = _load_lifetime_run(path)
        try:
            figures = key_figures(run)
        finally:
            _run.close(run)
        t50 = float(figures["t50_h"])
        extrapolated = bool(figures.get("t50_is_extrapolated", 0.0))
        if not (math.isfinite(t50) and t50 > 0):
            raise AnalysisInputError(f"{path}: no T50 (not reached and no usable lifetime fit)")
        runs.append(
            {
                "file": str(path),
                "l0_cd_m2": float(figures["l0_cd_m2"]),
                "t50_h": t50,
                "t50_stderr_h": float(figures.get("t50_stderr_h", math.nan)),
                "t50_source": "extrapolated" if extrapolated else "measured",
                "ageing_acceleration": float(figures["ageing_acceleration"]),
                "current_density_ma_cm2": float(figures["current_density_ma_cm2"]),
                # the temperature of each point (NaN without a thermometer)
                "temperature_mean_c": float(figures.get("temperature_mean_c", math.nan)),
                "temperature_at_t50_c": float(figures.get("temperature_at_t50_c", math.nan)),
            }
        )
    if len(runs) < 3:
        raise AnalysisInputError(
            f"lifetime-fit needs at least 3 runs at different initial luminances; got {len(runs)}"
        )
    l0 = np.array([r["l0_cd_m2"] for r in runs])
    t50 = np.array([r["t50_h"] for r in runs])
    stderr = np.array([r["t50_stderr_h"] for r in runs])
    weights = stderr if np.all(np.isfinite(stderr) & (stderr > 0)) else None
    warnings: list[str] = []
    extrapolations = []
    fit = None
    for luminance in targets:
        try:
            # Weighted by each run's T50 standard error; t quantiles for the real dof.
            fit = fit_acceleration(l0, t50, weights, target_l0_cd_m2=luminance)
        except ValueError as exc:
            raise AnalysisInputError(str(exc)) from None
        warnings.extend(w for w in fit.warnings if w not in warnings)
        predicted, low, high = fit.t50_interval(luminance)
        reference = float(l0[np.argmin(np.abs(np.log(l0) - math.log(luminance)))])
        extrapolations.append(
            {
                "luminance_cd_m2": luminance,
                "t50_h": float(predicted),
                "t50_ci95_low_h": float(low),
                "t50_ci95_high_h": float(high),
                "reference_l0_cd_m2": reference,
                "extrapolation_ratio": float(fit.extrapolation_ratio(reference, luminance)),
            }
        )
    assert fit is not None  # targets is not empty
    for message in warnings:
        log.warning("lifetime-fit: %s", message)
    return {
        "runs": runs,
        "n": fit.n,
        "n_stderr": fit.n_stderr,
        "n_ci95": [float(fit.n_ci95[0]), float(fit.n_ci95[1])],
        "dof": int(fit.dof),
        "t_quantile": float(fit.t_quantile),
        "weighted": bool(fit.weighted),
        "c": fit.c,
        "residual_rms_ln": fit.residual_rms_ln,
        "n_points": fit.n_points,
        "at": extrapolations,
        "warnings": warnings,
    }


def format_fit_report(report: Mapping[str, Any]) -> str:
    """Return the lifetime-fit report as text for a terminal."""
    lines = []
    for run in report["runs"]:
        flag = "" if run["t50_source"] == "measured" else " (extrapolated)"
        temperature = run.get("temperature_mean_c", math.nan)
        warm = f", {temperature:.1f} C" if math.isfinite(temperature) else ""
        lines.append(
            f"{run['file']}: L0 {run['l0_cd_m2']:.4g} cd/m^2, T50 {run['t50_h']:.4g} h{flag} "
            f"[{run['current_density_ma_cm2']:.4g} mA/cm^2{warm}, acceleration "
            f"{run['ageing_acceleration']:g}]"
        )
    low, high = report["n_ci95"]
    lines.append(
        f"n = {report['n']:.3f} +/- {report['n_stderr']:.3f}, 95 % interval {low:.3f} to "
        f"{high:.3f} (L0^n T50 = C, {report['n_points']} runs, {report['dof']} dof, "
        f"rms residual {report['residual_rms_ln']:.3g} in ln T50)"
    )
    for item in report["at"]:
        lines.append(
            f"T50 at {item['luminance_cd_m2']:g} cd/m^2: {item['t50_h']:.4g} h "
            f"(95 % interval {item['t50_ci95_low_h']:.4g} to {item['t50_ci95_high_h']:.4g} h), "
            f"extrapolation ratio {item['extrapolation_ratio']:.3g} from L0 "
            f"{item['reference_l0_cd_m2']:.4g} cd/m^2"
        )
    lines.extend(f"warning: {message}" for message in report.get("warnings", []))
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
    for run, x, y in zip(report["runs"], l0, t50, strict=True):
        temperature = run.get("temperature_mean_c", math.nan)
        if math.isfinite(temperature):  # each point's device temperature
            ax.annotate(
                f"{temperature:.1f} C",
                (x, y),
                fontsize=7,
                xytext=(4, -9),
                textcoords="offset points",
                color="tab:red",
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
        error = [[value - item["t50_ci95_low_h"]], [item["t50_ci95_high_h"] - value]]
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
