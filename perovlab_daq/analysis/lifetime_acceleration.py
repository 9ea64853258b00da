"""The acceleration law L0^n T50 = C across initial luminances, with honest intervals.

:func:`fit_acceleration` fits ln T50 = ln C - n ln L0 by weighted least squares (weights
from each run's own T50 uncertainty), gives n with a Student-t 95 % interval for
(points - 2) degrees of freedom and T50 at a target luminance with the covariance of
slope and intercept (REFERENCE sections 3 and 6), and says in ``warnings`` what makes
the result weak.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike

from perovlab_daq.analysis._student import t_quantile
from perovlab_daq.analysis._validation import FloatArray, as_positive, as_positive_scalar

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AccelerationFit:
    """Acceleration law L0^n T50 = C fitted by (weighted) least squares of ln T50 on ln L0.

    Attributes
    ----------
    n : float
        Acceleration exponent ([P2]: 1.95).
    n_stderr : float
        Standard error of ``n`` (0 for points on an exact line without given errors).
    c : float
        Constant C in (cd/m^2)^n h.
    n_points : int
        Number of (L0, T50) pairs fitted.
    residual_rms_ln : float
        RMS residual of ln T50 (a fractional scatter, 0.1 ~ 10 %).
    dof : int
        Degrees of freedom, ``n_points - 2``.
    t_quantile : float
        Student t quantile (0.975, ``dof``) used for every 95 % interval.
    n_ci95 : tuple of float
        95 % interval on ``n``: ``n +- t_quantile * n_stderr``.
    covariance : tuple of tuple of float
        Covariance of (intercept ln C, slope -n) of ln T50 = ln C - n ln L0.
    weighted : bool
        True if per-run T50 uncertainties weighted the fit.
    scale : float
        Factor applied to the given uncertainties: sqrt(chi^2 / dof), at least 1 when
        uncertainties were given (they are a floor, extra scatter widens the interval).
    warnings : tuple of str
        What makes the result weak (fewer than 3 distinct luminances, 1 degree of
        freedom, target far outside the measured range).
    target_l0_cd_m2, t50_target_h, t50_target_ci95_h
        The requested target luminance, T50 there and its 95 % interval (NaN if none).
    """

    n: float
    n_stderr: float
    c: float
    n_points: int
    residual_rms_ln: float
    dof: int = 0
    t_quantile: float = math.nan
    n_ci95: tuple[float, float] = (math.nan, math.nan)
    covariance: tuple[tuple[float, float], tuple[float, float]] = (
        (math.nan, math.nan),
        (math.nan, math.nan),
    )
    weighted: bool = False
    scale: float = math.nan
    warnings: tuple[str, ...] = ()
    target_l0_cd_m2: float = math.nan
    t50_target_h: float = math.nan
    t50_target_ci95_h: tuple[float, float] = (math.nan, math.nan)
    l0_range_cd_m2: tuple[float, float] = field(default=(math.nan, math.nan))

    def t50_at(self, luminance_cd_m2: ArrayLike) -> FloatArray | float:
        """Return the predicted T50 (h) at initial luminance ``luminance_cd_m2`` (> 0)."""
        luminance = as_positive("luminance_cd_m2", luminance_cd_m2, "cd/m^2")
        result = self.c / luminance**self.n
        return float(result) if result.ndim == 0 else result

    def t50_interval(self, luminance_cd_m2: float) -> tuple[float, float, float]:
        """Return (T50, low, high) in h at ``luminance_cd_m2``: the 95 % interval.

        ``ln T50 = b0 + b1 ln L`` has variance ``v00 + 2 ln L v01 + ln L^2 v11`` from the
        covariance of intercept and slope; the interval is ``exp(ln T50 +- q sd)`` with
        the Student t quantile of the fit.
        """
        luminance = as_positive_scalar("luminance_cd_m2", luminance_cd_m2, "cd/m^2")
        x = math.log(luminance)
        (v00, v01), (_, v11) = self.covariance
        spread = self.t_quantile * math.sqrt(max(v00 + 2 * x * v01 + x * x * v11, 0.0))
        t50 = float(self.t50_at(luminance))
        return t50, t50 * math.exp(-spread), t50 * math.exp(spread)

    def extrapolation_ratio(
        self, from_luminance_cd_m2: ArrayLike, to_luminance_cd_m2: ArrayLike
    ) -> FloatArray | float:
        """Return T50(to) / T50(from) = (from / to)^n, e.g. from the test L0 to 100 cd/m^2."""
        source = as_positive("from_luminance_cd_m2", from_luminance_cd_m2, "cd/m^2")
        target = as_positive("to_luminance_cd_m2", to_luminance_cd_m2, "cd/m^2")
        result = (source / target) ** self.n
        return float(result) if result.ndim == 0 else result


def fit_acceleration(
    l0_cd_m2: ArrayLike,
    t50_h: ArrayLike,
    t50_err_h: ArrayLike | None = None,
    *,
    target_l0_cd_m2: float | None = None,
) -> AccelerationFit:
    """Fit the acceleration law L0^n T50 = C to lifetimes at several initial luminances.

    ``ln T50 = ln C - n ln L0`` by least squares, weighted by ``1 / (t50_err / t50)^2``
    (the variance of ln T50) when ``t50_err_h`` is given. The covariance of (ln C, -n) is
    ``s^2 (X^T W X)^-1`` with ``s^2 = chi^2 / (points - 2)``; with given uncertainties
    ``s`` is at least 1 (they are not trusted to be too large; the scatter can only
    widen the interval). Every 95 % interval uses the Student t quantile with
    ``points - 2`` degrees of freedom: 12.7 for 3 points, so the interval on n is wide
    with three luminances, and the result says so in ``warnings``.

    Parameters
    ----------
    l0_cd_m2 : array_like
        Initial luminances (cd/m^2), 1-D, > 0, at least 3 with at least 2 distinct.
    t50_h : array_like
        T50 (h) measured at each initial luminance, same shape, > 0.
    t50_err_h : array_like, optional
        Standard uncertainty of each T50 (h), same shape, > 0 (e.g. ``t50_stderr_h``
        from :func:`lifetime_metrics`).
    target_l0_cd_m2 : float, optional
        Luminance (cd/m^2) at which to report T50 with its interval (e.g. 100).

    Returns
    -------
    AccelerationFit
        With ``t50_at``, ``t50_interval`` and ``extrapolation_ratio``.
    """
    luminance = as_positive("l0_cd_m2", l0_cd_m2, "cd/m^2")
    lifetime = as_positive("t50_h", t50_h, "h")
    if luminance.ndim != 1 or luminance.shape != lifetime.shape:
        raise ValueError(
            "l0_cd_m2 and t50_h must be 1-D arrays of the same length; "
            f"got shapes {luminance.shape} and {lifetime.shape}"
        )
    if luminance.size < 3:
        raise ValueError(
            f"l0_cd_m2 must have at least 3 initial luminances to fit n with an error; "
            f"got {luminance.size}"
        )
    x = np.log(luminance)
    y = np.log(lifetime)
    if float(np.ptp(x)) <= 1e-12 * max(1.0, float(np.abs(x).max())):
        raise ValueError(f"l0_cd_m2 must contain at least 2 distinct values; got {luminance}")
    weighted = t50_err_h is not None
    if weighted:
        errors = as_positive("t50_err_h", t50_err_h, "h")
        if errors.shape != lifetime.shape:
            raise ValueError(
                f"t50_err_h must have the shape of t50_h {lifetime.shape}; got {errors.shape}"
            )
        weight = (lifetime / errors) ** 2
    else:
        weight = np.ones_like(x)
    design = np.column_stack((np.ones_like(x), x))
    normal = design.T @ (design * weight[:, None])
    unscaled = np.linalg.inv(normal)
    intercept, slope = (float(v) for v in unscaled @ (design.T @ (weight * y)))
    residual = y - (intercept + slope * x)
    dof = luminance.size - 2
    chi2_red = float((weight * residual**2).sum()) / dof
    scale2 = max(chi2_red, 1.0) if weighted else chi2_red
    covariance = unscaled * scale2
    stderr = math.sqrt(max(float(covariance[1, 1]), 0.0))
    quantile = t_quantile(0.975, dof)
    notes: list[str] = []
    distinct = np.unique(np.round(x, 9)).size
    if distinct < 3:
        notes.append(
            f"only {distinct} distinct initial luminances: n is not tested for linearity "
            "in ln L0; measure at >= 3"
        )
    if dof == 1:
        notes.append(f"1 degree of freedom: the 95 % interval uses t = {quantile:.1f} and is wide")
    low, high = float(luminance.min()), float(luminance.max())
    fit = AccelerationFit(
        n=-slope,
        n_stderr=stderr,
        c=math.exp(intercept),
        n_points=int(luminance.size),
        residual_rms_ln=math.sqrt(float((residual**2).mean())),
        dof=dof,
        t_quantile=quantile,
        n_ci95=(-slope - quantile * stderr, -slope + quantile * stderr),
        covariance=(
            (float(covariance[0, 0]), float(covariance[0, 1])),
            (float(covariance[1, 0]), float(covariance[1, 1])),
        ),
        weighted=weighted,
        scale=math.sqrt(scale2),
        l0_range_cd_m2=(low, high),
    )
    if target_l0_cd_m2 is None:
        return _with_notes(fit, notes)
    target = as_positive_scalar("target_l0_cd_m2", target_l0_cd_m2, "cd/m^2")
    if target < low / 10 or target > 10 * high:
        notes.append(
            f"target {target:g} cd/m^2 lies more than 10x outside the measured L0 range "
            f"{low:g}-{high:g} cd/m^2: the law is extrapolated far"
        )
    t50, t50_low, t50_high = fit.t50_interval(target)
    return _with_notes(
        dataclasses.replace(
            fit,
            target_l0_cd_m2=target,
            t50_target_h=t50,
            t50_target_ci95_h=(t50_low, t50_high),
        ),
        notes,
    )


def _with_notes(fit: AccelerationFit, notes: list[str]) -> AccelerationFit:
    for note in notes:
        log.warning("acceleration fit: %s", note)
    return dataclasses.replace(fit, warnings=tuple(notes))
