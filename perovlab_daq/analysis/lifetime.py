"""Operational lifetime of LEDs: T95...T50, stretched-exponential fits, L0^n T50 = C.

:func:`lifetime_metrics` turns a constant-current ageing log (time, luminance) into the
figures of REFERENCE section 3: L0, L_max and t(L_max) for positive ageing, T_x against
both L0 and L_max from the last threshold crossing of a smoothed signal, and a
stretched-exponential fit that extrapolates T50 when the run stopped early.
:func:`fit_acceleration` fits the acceleration law across initial luminances.

Smoothing is a time-binned median: the log is cut into consecutive windows of fixed
duration (default 1/500 of the run, at least 5 median sample intervals) and each
window is replaced by the median luminance at the mean time of its points. That is
robust to spikes and dropouts, needs one sort of the data (1,000,000 points in well
under a second), and a gap in time (a resumed run) simply leaves windows empty.
"""

from __future__ import annotations

import logging
import math
import warnings
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy import optimize

from perovlab_daq.analysis._validation import (
    FloatArray,
    as_float_array,
    as_positive,
    as_positive_scalar,
)

log = logging.getLogger(__name__)

#: Percent levels reported by :func:`lifetime_metrics` (T95, T90, T80, T70, T50).
LIFETIME_LEVELS_PCT: tuple[int, ...] = (95, 90, 80, 70, 50)
_S_PER_H = 3600.0
_DEFAULT_WINDOWS_PER_RUN = 500
_MIN_SAMPLES_PER_WINDOW = 5
_MIN_L0_SAMPLES = 10
#: The stretched exponential is fitted only if the smoothed signal falls below this
#: fraction of L_max; a flatter run constrains tau and beta too weakly to extrapolate.
_FIT_MIN_DECAY = 0.98


def _binned_median(
    time_s: FloatArray, values: FloatArray, window_s: float
) -> tuple[FloatArray, FloatArray]:
    """Return (mean time, median value) of consecutive time windows holding data.

    ``time_s`` must be non-decreasing, so every window is a contiguous slice. The
    median of all windows comes from one sort of a composite key, window rank + a
    value scaled into [0, 0.5), which keeps windows apart and orders values within
    each window.
    """
    # In-place steps throughout: on a 1M-point run every temporary is 8 MB, and the
    # end-of-run analysis must fit beside the run in a few hundred MB.
    position = time_s - time_s[0]
    position /= window_s
    np.floor(position, out=position)
    window_index = position.astype(np.int64)
    del position
    change = np.empty(time_s.size, dtype=bool)
    change[0] = True
    np.not_equal(window_index[1:], window_index[:-1], out=change[1:])
    del window_index
    starts = np.flatnonzero(change)
    del change
    counts = np.diff(np.append(starts, time_s.size))
    rank = np.repeat(np.arange(starts.size, dtype=np.float64), counts)
    low = values.min()
    span = values.max() - low
    scale = 0.5 / span if span > 0 else 0.0
    ordered = values - low
    ordered *= scale
    ordered += rank
    ordered.sort()
    ordered -= rank  # rank is sorted, so aligned
    del rank
    lower_middle = ordered[starts + (counts - 1) // 2]
    upper_middle = ordered[starts + counts // 2]
    median = (
        low + 0.5 * (lower_middle + upper_middle) / scale if scale else np.full(starts.size, low)
    )
    mean_time = np.add.reduceat(time_s, starts) / counts
    return mean_time, median


def _start_luminance(elapsed_s: FloatArray, values: FloatArray) -> float:
    """Extrapolate the luminance at switch-on from the first samples, robustly.

    The samples are split into an earlier and a later half; the straight line through
    the (median time, median luminance) of each half is evaluated at t = 0. Medians
    ignore spikes (a switch-on transient, a dropout) in up to half of either half, and
    the extrapolation removes the bias a plain median has when the luminance changes
    quickly at the start, as it does under positive ageing or a stretched-exponential
    decay with beta < 1. Falls back to the plain median if the halves share one time.
    """
    middle = values.size // 2
    early_t, late_t = np.median(elapsed_s[:middle]), np.median(elapsed_s[middle:])
    early_l, late_l = np.median(values[:middle]), np.median(values[middle:])
    if late_t <= early_t:
        return float(np.median(values))
    return float(early_l - (late_l - early_l) / (late_t - early_t) * early_t)


def _last_crossing(times: FloatArray, values: FloatArray, threshold: float) -> float:
    """Time where ``values`` falls below ``threshold`` for the last time, NaN if it ends above.

    Linear interpolation between the last point at or above the threshold and the next
    one; a crossing inside a gap in the data is interpolated across the gap.
    """
    at_or_above = np.flatnonzero(values >= threshold)
    if at_or_above.size == 0:
        return float(times[0])
    i = int(at_or_above[-1])
    if i == values.size - 1:
        return math.nan
    fraction = (values[i] - threshold) / (values[i] - values[i + 1])
    return float(times[i] + fraction * (times[i + 1] - times[i]))


def _stretched_exponential(time_h: FloatArray, tau_h: float, beta: float) -> FloatArray:
    return np.exp(-np.power(time_h / tau_h, beta))


def _fit_stretched_exponential(
    time_h: FloatArray, relative: FloatArray
) -> tuple[float, float, float, float]:
    """Fit relative = exp(-(t/tau)^beta); return tau, beta and their standard errors."""
    usable = (time_h > 0) & (relative > 0.02) & (relative < 0.995)
    tau_guess, beta_guess = float(time_h[-1]), 1.0
    if usable.sum() >= 3:
        # Linearised form ln(-ln y) = beta ln t - beta ln tau gives the starting point.
        slope, intercept = np.polyfit(np.log(time_h[usable]), np.log(-np.log(relative[usable])), 1)
        if slope > 0:
            beta_guess = float(np.clip(slope, 0.1, 3.0))
            tau_guess = float(np.exp(-intercept / slope))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optimize.OptimizeWarning)
        params, covariance = optimize.curve_fit(
            _stretched_exponential,
            time_h,
            relative,
            p0=(max(tau_guess, 1e-9), beta_guess),
            bounds=((1e-12, 0.05), (np.inf, 5.0)),
            max_nfev=2000,
        )
    errors = np.sqrt(np.diag(covariance)) if np.isfinite(covariance).all() else (math.nan,) * 2
    return float(params[0]), float(params[1]), float(errors[0]), float(errors[1])


def lifetime_metrics(
    time_s: ArrayLike,
    luminance: ArrayLike,
    *,
    smoothing_window_s: float | None = None,
    l0_window_s: float | None = None,
) -> dict[str, float]:
    """Return L0, L_max, T95...T50 and a stretched-exponential fit of an ageing run.

    L0 is extrapolated to switch-on from the raw samples in the first ``l0_window_s``
    (default a quarter of a smoothing window, never fewer than 10 samples): the line through
    the (median time, median luminance) of the earlier and the later half of those
    samples, evaluated at t = 0. Medians make it robust to noise and spikes; the
    extrapolation keeps the fast change right after switch-on (brightening, or a
    stretched exponential with beta < 1) from biasing it as a plain average would.
    The smoothed signal (see
    the module docstring) starts at (switch-on, L0). T_x is the time of the LAST
    downward crossing of x % of the reference, so noise or a brief dip followed by
    recovery does not shorten the lifetime; it is NaN if the signal ends above the
    threshold. Times are from the first sample (switch-on).

    The stretched exponential L/L_max = exp(-((t - t(L_max)) / tau)^beta) is fitted to
    the smoothed signal from its maximum on (for a device without positive ageing
    L_max = L0 and t(L_max) = 0, i.e. the usual L/L0 = exp(-(t/tau)^beta)); it gives
    T_x = t(L_max) + tau (-ln(x L0 / (100 L_max)))^(1/beta) (REFERENCE section 3).

    Parameters
    ----------
    time_s : array_like
        Time stamps (s), 1-D, non-decreasing (a resumed run may have gaps but must
        continue the same clock), at least 10 samples spanning a positive duration.
    luminance : array_like
        Luminance (cd/m^2, or any quantity proportional to it such as photocurrent),
        same shape, finite; L0 must come out > 0.
    smoothing_window_s : float, optional
        Width (s) of the median windows; default max(duration / 500, 5 x the median
        sample interval).
    l0_window_s : float, optional
        Length (s) of the start-of-stress window for L0; default a quarter of the smoothing
        window.

    Returns
    -------
    dict of str to float
        ``l0`` and ``l_max`` (luminance units), ``t_l_max`` (h); ``t95``, ``t90``,
        ``t80``, ``t70``, ``t50`` (h, against L0) and ``t95_from_max`` ... ``t50_from_max``
        (h from switch-on, against L_max); ``tau_h``, ``beta`` and their ``*_stderr``,
        ``fit_time_origin_h`` (= t(L_max)), ``t50_fit`` (h, model), ``t50_extrapolated``
        (h, the model T50 when the run stopped before T50, else NaN);
        ``duration_h``, ``smoothing_window_s``, ``l0_window_s``, ``n_points``.
        Fit values are NaN if the signal never fell below 98 % of L_max.
    """
    times = as_float_array("time_s", time_s)
    values = as_float_array("luminance", luminance)
    if times.ndim != 1 or times.shape != values.shape:
        raise ValueError(
            "time_s and luminance must be 1-D arrays of the same length; "
            f"got shapes {times.shape} and {values.shape}"
        )
    if times.size < 10:
        raise ValueError(f"time_s must have at least 10 samples; got {times.size}")
    steps = np.diff(times)
    if (steps < 0).any():
        index = int(np.flatnonzero(steps < 0)[0])
        raise ValueError(
            f"time_s must be non-decreasing; got {times[index]:g} s followed by "
            f"{times[index + 1]:g} s at index {index} (offset a resumed run's clock)"
        )
    elapsed_s = times - times[0]
    duration_s = float(elapsed_s[-1])
    if duration_s <= 0:
        raise ValueError(f"time_s must span a positive duration; got {duration_s:g} s")

    if smoothing_window_s is None:
        positive_steps = steps[steps > 0]
        del steps
        window_s = max(
            duration_s / _DEFAULT_WINDOWS_PER_RUN,
            # overwrite_input: the median partitions this temporary instead of a copy.
            _MIN_SAMPLES_PER_WINDOW * float(np.median(positive_steps, overwrite_input=True)),
        )
        del positive_steps
    else:
        del steps
        window_s = as_positive_scalar("smoothing_window_s", smoothing_window_s, "s")
    start_window_s = (
        0.25 * window_s
        if l0_window_s is None
        else as_positive_scalar("l0_window_s", l0_window_s, "s")
    )
    n_start = max(_MIN_L0_SAMPLES, int(np.searchsorted(elapsed_s, start_window_s, side="right")))
    l0 = _start_luminance(elapsed_s[:n_start], values[:n_start])
    if l0 <= 0:
        raise ValueError(
            f"luminance at the start of stress (from the first {n_start} samples) must be "
            f"> 0; got {l0:g} (check the photodetector sign and dark subtraction)"
        )

    bin_time_s, bin_median = _binned_median(elapsed_s, values, window_s)
    curve_h = np.concatenate(([0.0], bin_time_s)) / _S_PER_H
    curve = np.concatenate(([l0], bin_median))
    i_max = int(np.argmax(curve))
    l_max = float(curve[i_max])
    t_l_max_h = float(curve_h[i_max])

    metrics: dict[str, float] = {"l0": l0, "l_max": l_max, "t_l_max": t_l_max_h}
    for level in LIFETIME_LEVELS_PCT:
        metrics[f"t{level}"] = _last_crossing(curve_h, curve, level / 100 * l0)
    for level in LIFETIME_LEVELS_PCT:
        metrics[f"t{level}_from_max"] = _last_crossing(curve_h, curve, level / 100 * l_max)

    tau_h = beta = tau_err = beta_err = t50_fit = math.nan
    decay_h = curve_h[i_max:] - t_l_max_h
    decay = curve[i_max:] / l_max
    if decay.size >= 4 and decay.min() < _FIT_MIN_DECAY:
        try:
            tau_h, beta, tau_err, beta_err = _fit_stretched_exponential(decay_h, decay)
            t50_fit = t_l_max_h + tau_h * (-math.log(0.5 * l0 / l_max)) ** (1.0 / beta)
        except (RuntimeError, ValueError) as exc:
            log.warning("stretched-exponential fit failed: %s", exc)
    else:
        log.info("luminance fell by less than %.0f %%: no lifetime fit", 100 * (1 - _FIT_MIN_DECAY))
    metrics.update(
        {
            "tau_h": tau_h,
            "beta": beta,
            "tau_h_stderr": tau_err,
            "beta_stderr": beta_err,
            "fit_time_origin_h": t_l_max_h,
            "t50_fit": t50_fit,
            "t50_extrapolated": t50_fit if math.isnan(metrics["t50"]) else math.nan,
            "duration_h": duration_s / _S_PER_H,
            "smoothing_window_s": window_s,
            "l0_window_s": start_window_s,
            "n_points": float(times.size),
        }
    )
    return metrics


def lifetime_from_stretched_exponential(
    tau_h: float, beta: float, level_pct: ArrayLike
) -> FloatArray | float:
    """Return T_x = tau (-ln(x/100))^(1/beta) in hours (REFERENCE section 3).

    Parameters
    ----------
    tau_h : float
        Characteristic time (h), > 0.
    beta : float
        Stretch exponent, > 0.
    level_pct : array_like
        Remaining luminance x in percent of the reference, 0 < x < 100.

    Returns
    -------
    float or numpy.ndarray
        T_x in hours.
    """
    tau = as_positive_scalar("tau_h", tau_h, "h")
    stretch = as_positive_scalar("beta", beta)
    levels = as_positive("level_pct", level_pct, "%")
    if (levels >= 100).any():
        raise ValueError(f"level_pct must be below 100 %; got {levels[levels >= 100][:3]}")
    result = tau * (-np.log(levels / 100.0)) ** (1.0 / stretch)
    return float(result) if result.ndim == 0 else result


@dataclass(frozen=True)
class AccelerationFit:
    """Acceleration law L0^n T50 = C fitted by least squares of ln T50 against ln L0.

    Attributes
    ----------
    n : float
        Acceleration exponent ([P2]: 1.95).
    n_stderr : float
        Standard error of ``n`` (0 for 3 points on an exact line).
    c : float
        Constant C in (cd/m^2)^n h.
    n_points : int
        Number of (L0, T50) pairs fitted.
    residual_rms_ln : float
        RMS residual of ln T50 (a fractional scatter, 0.1 ~ 10 %).
    """

    n: float
    n_stderr: float
    c: float
    n_points: int
    residual_rms_ln: float

    def t50_at(self, luminance_cd_m2: ArrayLike) -> FloatArray | float:
        """Return the predicted T50 (h) at initial luminance ``luminance_cd_m2`` (> 0)."""
        luminance = as_positive("luminance_cd_m2", luminance_cd_m2, "cd/m^2")
        result = self.c / luminance**self.n
        return float(result) if result.ndim == 0 else result

    def extrapolation_ratio(
        self, from_luminance_cd_m2: ArrayLike, to_luminance_cd_m2: ArrayLike
    ) -> FloatArray | float:
        """Return T50(to) / T50(from) = (from / to)^n, e.g. from the test L0 to 100 cd/m^2."""
        source = as_positive("from_luminance_cd_m2", from_luminance_cd_m2, "cd/m^2")
        target = as_positive("to_luminance_cd_m2", to_luminance_cd_m2, "cd/m^2")
        result = (source / target) ** self.n
        return float(result) if result.ndim == 0 else result


def fit_acceleration(l0_cd_m2: ArrayLike, t50_h: ArrayLike) -> AccelerationFit:
    """Fit the acceleration law L0^n T50 = C to lifetimes at several initial luminances.

    ln T50 = ln C - n ln L0 by ordinary least squares; the standard error of n comes
    from the residuals with n_points - 2 degrees of freedom (REFERENCE section 3).

    Parameters
    ----------
    l0_cd_m2 : array_like
        Initial luminances (cd/m^2), 1-D, > 0, at least 3 with at least 2 distinct.
    t50_h : array_like
        T50 (h) measured at each initial luminance, same shape, > 0.

    Returns
    -------
    AccelerationFit
        With ``t50_at(luminance)`` and ``extrapolation_ratio(from, to)``.
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
    x_mean = x.mean()
    sxx = float(((x - x_mean) ** 2).sum())
    if sxx <= 1e-12 * max(1.0, float(np.abs(x).max())):
        raise ValueError(f"l0_cd_m2 must contain at least 2 distinct values; got {luminance}")
    slope = float(((x - x_mean) * (y - y.mean())).sum() / sxx)
    intercept = float(y.mean() - slope * x_mean)
    residual = y - (intercept + slope * x)
    dof = luminance.size - 2
    stderr = math.sqrt(float((residual**2).sum()) / dof / sxx)
    rms = math.sqrt(float((residual**2).mean()))
    return AccelerationFit(-slope, stderr, math.exp(intercept), int(luminance.size), rms)
