"""Operational lifetime of LEDs: T95...T50, the live stop, and L0^n T50 = C.

:func:`lifetime_metrics` turns a constant-current ageing log (time, luminance) into the
figures of REFERENCE section 3: L0, L_max and t(L_max), T_x against L0 and against L_max,
each measured where the signal crosses and extrapolated from the fitted decay model (with
a 95 % interval) where it does not. :class:`DecayTracker` runs the same estimator live, so
a procedure's stop at L/L0 = x and the analysis of its file agree.
:func:`fit_acceleration` (module :mod:`~perovlab_daq.analysis.lifetime_acceleration`)
fits the acceleration law across initial luminances.

The estimator (log-time bins, the stretched-exponential model with optional brightening,
the robust fit, the smoothed signal) lives in :mod:`perovlab_daq.analysis.lifetime_fit`;
docs/procedures/lifetime.md section "Estimator" describes it and its limits.
"""

from __future__ import annotations

import collections
import logging
import math
import warnings

import numpy as np
from numpy.typing import ArrayLike

from perovlab_daq.analysis._validation import (
    FloatArray,
    as_float_array,
    as_positive,
    as_positive_scalar,
    require_paired_1d,
)
from perovlab_daq.analysis.lifetime_acceleration import AccelerationFit, fit_acceleration
from perovlab_daq.analysis.lifetime_fit import (
    BIN_GROWTH,
    MIN_DECAY,
    S_PER_H,
    SHRINK_SIGMAS,
    DecayFit,
    bin_index,
    bin_of,
    fit_decay,
    last_crossing_h,
    smoothed_signal,
    time_unit_s,
)

log = logging.getLogger(__name__)

# The acceleration law moved to lifetime_acceleration; importable from here as before.
__all__ = [
    "LIFETIME_LEVELS_PCT",
    "AccelerationFit",
    "DecayTracker",
    "fit_acceleration",
    "lifetime_from_stretched_exponential",
    "lifetime_metrics",
    "temperature_summary",
]

#: Percent levels reported by :func:`lifetime_metrics` (T95, T90, T80, T70, T50).
LIFETIME_LEVELS_PCT: tuple[int, ...] = (95, 90, 80, 70, 50)
_MIN_SAMPLES = 10


def _check_log(
    time_s: ArrayLike, luminance: ArrayLike, switch_on_s: float | None = None
) -> tuple[FloatArray, FloatArray]:
    """Validate an ageing log; return (elapsed s from switch-on, luminance).

    Switch-on is ``switch_on_s`` on the same clock, or the first sample if None.
    """
    times = as_float_array("time_s", time_s)
    values = as_float_array("luminance", luminance)
    require_paired_1d(time_s=times, luminance=values)
    if times.size < _MIN_SAMPLES:
        raise ValueError(f"time_s must have at least {_MIN_SAMPLES} samples; got {times.size}")
    steps = np.diff(times)
    if (steps < 0).any():
        index = int(np.flatnonzero(steps < 0)[0])
        raise ValueError(
            f"time_s must be non-decreasing; got {times[index]:g} s followed by "
            f"{times[index + 1]:g} s at index {index} (offset a resumed run's clock)"
        )
    zero = (
        float(times[0])
        if switch_on_s is None
        else float(as_float_array("switch_on_s", switch_on_s))
    )
    if zero > times[0]:
        raise ValueError(
            f"switch_on_s must not be after the first sample; got {zero:g} s > {times[0]:g} s"
        )
    elapsed = times - zero if zero else times  # a device-time column is used as it is
    if elapsed[-1] <= 0:
        raise ValueError(f"time_s must span a positive duration; got {elapsed[-1]:g} s")
    return elapsed, values


def _interval(value: float, stderr: float, quantile: float) -> tuple[float, float]:
    """Return the 95 % interval value * exp(+-q stderr / value) (log-normal, stays > 0)."""
    if not (math.isfinite(value) and math.isfinite(stderr)) or value <= 0:
        return math.nan, math.nan
    spread = quantile * stderr / value
    return value * math.exp(-spread), value * math.exp(spread)


#: Metric names (``{}`` is the level in %) of the :func:`_level_figures` of T_x below L0 ...
_FROM_L0_KEYS = (
    ("measured", "t{}"),
    ("best", "t{}_h"),
    ("extrapolated", "t{}_is_extrapolated"),
    ("extrapolated_best", "t{}_extrapolated"),
    ("model", "t{}_model_h"),
    ("stderr", "t{}_stderr_h"),
    ("low", "t{}_ci95_low_h"),
    ("high", "t{}_ci95_high_h"),
)
#: ... and below the maximum luminance L_max.
_FROM_LMAX_KEYS = (
    ("measured", "t{}_from_max"),
    ("best", "t{}_vs_lmax_h"),
    ("extrapolated", "t{}_vs_lmax_is_extrapolated"),
    ("low", "t{}_vs_lmax_ci95_low_h"),
    ("high", "t{}_vs_lmax_ci95_high_h"),
)


def _level_figures(
    fit: DecayFit,
    grid: tuple[FloatArray, FloatArray, FloatArray],
    reference: float,
    level: int,
    decayed: bool,
) -> dict[str, float]:
    """T_x of one level and reference: measured, model, extrapolated flag, 95 % interval."""
    time_h, signal, count = grid
    threshold = level / 100 * reference
    measured = last_crossing_h(fit, time_h, signal, count, threshold)
    model_h = fit.crossing_h(threshold) if decayed else math.nan
    stderr = fit.stderr(lambda p: fit.crossing_h(threshold, p)) if decayed else math.nan
    if math.isfinite(measured) and math.isfinite(stderr):
        # Noise of S at the crossing over the local slope of the model, added in quadrature.
        near = max(int(np.searchsorted(time_h, measured)), 1)
        local_n = float(count[near - 1 : near + 1].sum())
        slope = abs(float(fit(measured * 1.001) - fit(measured * 0.999))) / (0.002 * measured)
        if slope > 0:
            noise = fit.noise_rel * float(fit(measured)) / math.sqrt(local_n)
            stderr = math.hypot(stderr, noise / slope)
    extrapolated = not math.isfinite(measured)
    best = model_h if extrapolated else measured
    low, high = _interval(best, stderr, fit.t_quantile)
    finite_best = best if math.isfinite(best) else math.nan
    extrapolated = extrapolated and math.isfinite(best)
    return {
        "measured": measured,
        "best": finite_best,
        "extrapolated": float(extrapolated),
        "extrapolated_best": finite_best if extrapolated else math.nan,
        "model": model_h,
        "stderr": stderr,
        "low": low,
        "high": high,
    }


def lifetime_metrics(
    time_s: ArrayLike,
    luminance: ArrayLike,
    *,
    smoothing_window_s: float | None = None,
    l0_window_s: float | None = None,
    time_unit: float | None = None,
    switch_on_s: float | None = None,
) -> dict[str, float]:
    """Return L0, L_max, T95...T50 (measured or extrapolated, with 95 % intervals) of a run.

    Estimator (module :mod:`~perovlab_daq.analysis.lifetime_fit`): the samples are
    averaged in log-time bins (one sample per bin at the start, 2 % of t wide later) and
    the model ``L0 (1 + a (1 - exp(-t/t_b))) exp(-(t/tau)^beta)`` is fitted to the bins by
    robust weighted least squares of the relative residual (brightening term kept only
    if the BIC prefers it). **L0 is the model at t = 0**, so it uses the whole early
    decay, not a median of the first samples. The smoothed signal S is the model plus
    each bin's residual shrunk by twice its noise. T_x is the LAST downward crossing of
    ``x L_ref`` by S, solved between the two bins around it (model plus interpolated
    residual), provided at least 3 samples follow it; otherwise T_x comes from the
    model's last crossing and is flagged ``extrapolated``.

    Intervals: the delta method on the fit covariance ``s^2 (J^T J)^-1`` (``s`` the robust
    noise, ``J`` the Jacobian of the weighted residuals) gives the standard error of each
    model T_x; a measured T_x adds the noise of S at the crossing divided by the model
    slope, in quadrature. The 95 % interval is ``T exp(+-q se / T)`` with ``q`` the
    Student t quantile (0.975) for ``bins - parameters`` degrees of freedom. It covers
    noise and fit uncertainty within the model, not a decay that changes shape later.

    Parameters
    ----------
    time_s : array_like
        Time stamps (s), 1-D, non-decreasing, first sample at switch-on (a resumed run
        may have gaps but must continue the same clock), at least 10 samples.
    luminance : array_like
        Luminance (cd/m^2, or anything proportional to it), same shape, finite; negative
        noise is kept as it is (no clipping). L0 must come out > 0.
    smoothing_window_s : float, optional
        Minimum width (s) of the bins; default none (log-time bins only). A wider bin
        hides short features (a dip) from the smoothed signal.
    l0_window_s : float, optional
        Accepted for compatibility and ignored (L0 now comes from the model fit); a
        :class:`DeprecationWarning` says so.
    time_unit : float, optional
        Bin unit ``u`` (s); default the median of the first 10 sample intervals.
    switch_on_s : float, optional
        Time (s, same clock as ``time_s``) the stress was switched on: L0 and every T_x
        refer to it. Default: the first sample. Pass it (0 for a device-time column)
        whenever the first sample can come late: with a stretched exponential the
        luminance falls fastest right after switch-on, so a first sample 1-2 % of T50
        late lowers an L0 taken there by several %.

    Returns
    -------
    dict of str to float
        ``l0`` (with ``l0_stderr``, ``l0_ci95_low``, ``l0_ci95_high``), ``l_max``,
        ``t_l_max`` (h); per level x in 95, 90, 80, 70, 50 (all times in h from switch-on):
        ``tx`` measured against L0 (NaN if not crossed), ``tx_h`` best value (measured, or
        the model if not crossed), ``tx_is_extrapolated`` (1.0/0.0), ``tx_extrapolated``
        (model value if not crossed, else NaN), ``tx_model_h``, ``tx_stderr_h``,
        ``tx_ci95_low_h``, ``tx_ci95_high_h``; the same against L_max as
        ``tx_from_max`` (measured), ``tx_vs_lmax_h``, ``tx_vs_lmax_is_extrapolated``,
        ``tx_vs_lmax_ci95_low_h``, ``tx_vs_lmax_ci95_high_h``; the model ``tau_h``,
        ``beta`` and their ``*_stderr``, ``brightening`` (a) and ``brightening_time_h``
        (NaN without), ``fit_parameters`` (3 or 5), ``fit_dof``, ``noise_rel``,
        ``fit_time_origin_h`` (0: the model starts at switch-on), ``t50_fit`` (= model
        T50), ``duration_h``, ``smoothing_window_s`` (width of the last bin),
        ``l0_window_s`` (NaN), ``time_unit_s``, ``n_bins``, ``n_points``. Model values are
        NaN if the model never falls below 98 % of L0 within the record (too little decay
        to extrapolate).
    """
    elapsed, values = _check_log(time_s, luminance, switch_on_s)
    if l0_window_s is not None:
        warnings.warn(
            "lifetime_metrics(l0_window_s=...) is ignored: L0 comes from the decay-model fit",
            DeprecationWarning,
            stacklevel=2,
        )
    unit = (
        time_unit_s(elapsed)
        if time_unit is None
        else as_positive_scalar("time_unit", time_unit, "s")
    )
    window = (
        None
        if smoothing_window_s is None
        else as_positive_scalar("smoothing_window_s", smoothing_window_s, "s")
    )
    count, sum_t, sum_l = _bin_sums(elapsed, values, unit, window)
    keep = count > 0
    count = count[keep]
    bin_t = sum_t[keep] / count
    bin_l = sum_l[keep] / count
    return _metrics_from_bins(bin_t / S_PER_H, bin_l, count, float(elapsed[-1]), unit, window)


#: Samples binned at a time by :func:`_bin_sums` (a 1M-row run needs no 8 MB temporaries).
_BIN_BLOCK = 1 << 16


def _bin_sums(
    elapsed: FloatArray, values: FloatArray, unit: float, window: float | None
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Return the count, sum of time and sum of values in each bin of :func:`bin_index`."""
    count = np.zeros(0)
    sum_t = np.zeros(0)
    sum_l = np.zeros(0)
    for start in range(0, elapsed.size, _BIN_BLOCK):
        block_t = elapsed[start : start + _BIN_BLOCK]
        block_l = values[start : start + _BIN_BLOCK]
        index = bin_index(block_t, unit, min_width_s=window)
        size = int(index.max()) + 1
        if size > count.size:  # bins only grow with time: extend the sums
            count, sum_t, sum_l = (np.pad(a, (0, size - count.size)) for a in (count, sum_t, sum_l))
        count[:size] += np.bincount(index, minlength=size)
        sum_t[:size] += np.bincount(index, weights=block_t, minlength=size)
        sum_l[:size] += np.bincount(index, weights=block_l, minlength=size)
    return count, sum_t, sum_l


def _metrics_from_bins(
    time_h: FloatArray,
    mean: FloatArray,
    count: FloatArray,
    duration_s: float,
    unit: float,
    min_width_s: float | None = None,
) -> dict[str, float]:
    """Fit the bins and derive every lifetime figure (shared by the batch and live paths)."""
    if mean.size < 4 or float(np.median(mean[: max(1, min(5, mean.size))])) <= 0:
        raise ValueError(
            "luminance at the start of stress (median of the first bins) must be > 0; got "
            f"{float(np.median(mean[:5])):g} (check the photodetector sign and dark subtraction)"
        )
    fit = fit_decay(time_h, mean, count)
    l0 = fit.l0
    if not l0 > 0:
        raise ValueError(f"luminance at the start of stress (model L0) must be > 0; got {l0:g}")
    signal = smoothed_signal(fit, time_h, mean, count)
    grid = (time_h, signal, count)
    i_max = int(np.argmax(signal))
    l_max = max(float(signal[i_max]), l0)
    t_l_max = float(time_h[i_max]) if signal[i_max] > l0 else 0.0
    decayed = float(fit(fit.end_h)) < MIN_DECAY * l0
    q = fit.t_quantile
    l0_se = l0 * math.sqrt(fit.covariance[0, 0]) if np.isfinite(fit.covariance[0, 0]) else math.nan
    l0_low, l0_high = _interval(l0, l0_se, q)
    metrics: dict[str, float] = {
        "l0": l0,
        "l0_stderr": l0_se,
        "l0_ci95_low": l0_low,
        "l0_ci95_high": l0_high,
        "l_max": l_max,
        "t_l_max": t_l_max,
    }
    for reference, names in ((l0, _FROM_L0_KEYS), (l_max, _FROM_LMAX_KEYS)):
        for level in LIFETIME_LEVELS_PCT:
            figures = _level_figures(fit, grid, reference, level, decayed)
            metrics.update({name.format(level): figures[key] for key, name in names})
    sd = np.sqrt(np.clip(np.diag(fit.covariance), 0, None))
    tau_h = math.exp(float(fit.params[1]))
    has_brightening = fit.params.size == 5
    if not decayed:
        log.info("luminance fell by less than %.0f %%: no lifetime fit", 100 * (1 - MIN_DECAY))
    metrics.update(
        {
            "tau_h": tau_h if decayed else math.nan,
            "beta": float(fit.params[2]) if decayed else math.nan,
            "tau_h_stderr": tau_h * float(sd[1]) if decayed else math.nan,
            "beta_stderr": float(sd[2]) if decayed else math.nan,
            "brightening": float(fit.params[3]) if has_brightening else math.nan,
            "brightening_time_h": math.exp(float(fit.params[4])) if has_brightening else math.nan,
            "fit_parameters": float(fit.params.size),
            "fit_dof": float(fit.dof),
            "noise_rel": fit.noise_rel,
            "fit_time_origin_h": 0.0,
            "t50_fit": metrics["t50_model_h"],
            "duration_h": duration_s / S_PER_H,
            "smoothing_window_s": min_width_s or BIN_GROWTH * (duration_s + unit),
            "l0_window_s": math.nan,
            "time_unit_s": unit,
            "n_bins": float(mean.size),
            "n_points": float(count.sum()),
        }
    )
    return metrics


class DecayTracker:
    """The lifetime estimator fed live, sample by sample: current L0 and the stop decision.

    Samples go into the same log-time bins as :func:`lifetime_metrics` (O(1) each); the
    same decay model is refitted on the bins when ``refit_every`` samples have arrived
    since the last fit, or when both the elapsed time and the number of samples have grown
    by ``refit_growth`` (5 %) since then, so a run of N samples costs at most about
    ``N / refit_every + ln(N) / 0.05`` fits of at most ~700 bins: O(1) amortised per
    sample. The current smoothed level is the model at the
    last sample plus the mean residual of the last ``recent`` samples, shrunk towards zero
    by twice its noise, exactly as the analysis smooths a bin; :meth:`fallen_to` compares
    it with ``fraction x L0`` and refits before it answers yes.

    Parameters
    ----------
    time_unit_s : float, optional
        Bin unit (s); default the median of the first 10 sample intervals (the first 11
        samples are then held back until it is known).
    refit_every : int
        Refit after at most this many new samples.
    refit_growth : float
        Refit when the elapsed time and the sample count have both grown by this
        fraction since the last fit.
    recent : int
        Samples whose mean residual corrects the model for the current level.
    switch_on_s : float, optional
        Switch-on time on the clock of the samples (as in :func:`lifetime_metrics`);
        default the first sample.

    Examples
    --------
    >>> tracker = DecayTracker()
    >>> for t, value in zip(time_s, luminance):          # doctest: +SKIP
    ...     tracker.add(t, value)
    ...     if tracker.fallen_to(0.5):
    ...         break
    """

    def __init__(
        self,
        *,
        time_unit_s: float | None = None,
        refit_every: int = 1000,
        refit_growth: float = 0.05,
        recent: int = 20,
        switch_on_s: float | None = None,
    ) -> None:
        self._unit = (
            None if time_unit_s is None else as_positive_scalar("time_unit_s", time_unit_s, "s")
        )
        self.refit_every = int(refit_every)
        self.refit_growth = float(refit_growth)
        self._start_s = math.nan if switch_on_s is None else float(switch_on_s)
        self._pending: list[tuple[float, float]] = []
        self._sums = np.zeros((3, 256))  # time, luminance, count per bin
        self._recent: collections.deque[tuple[float, float]] = collections.deque(maxlen=recent)
        self._fit: DecayFit | None = None
        self._full_bins = 0
        self._residual_fit: DecayFit | None = None
        self._residuals: collections.deque[float] = collections.deque(maxlen=recent)
        self._residual_sum = 0.0
        self._since_fit = 0
        self._fit_until_s = 0.0
        self._last_s = math.nan
        self.n_samples = 0
        self.n_fits = 0
        #: level() between two adds: the live stop asks at every sample, data come in batches.
        self._level: float | None = None

    # -- feeding --------------------------------------------------------------------------
    def add(self, time_s: ArrayLike, luminance: ArrayLike) -> None:
        """Add one sample or a batch (times in s, same clock as the run, non-decreasing)."""
        times = np.atleast_1d(np.asarray(time_s, dtype=np.float64))
        values = np.atleast_1d(np.asarray(luminance, dtype=np.float64))
        if times.shape != values.shape:
            raise ValueError(
                f"time_s and luminance must match; got {times.shape} and {values.shape}"
            )
        self._level = None
        if times.size > 2 * _MIN_SAMPLES and self._unit is not None:
            self._add_batch(times, values)
        else:
            self._add_each(times, values)
        if self._due():
            self._refit()

    def _add_batch(self, times: FloatArray, values: FloatArray) -> None:
        """Vectorised add of a batch once the bin unit is known (same result as one by one)."""
        finite = np.isfinite(times) & np.isfinite(values)
        times, values = times[finite], values[finite]
        if times.size == 0:
            return
        elapsed = times - self._start_s
        previous = 0.0 if math.isnan(self._last_s) else self._last_s
        if elapsed[0] < previous or (np.diff(elapsed) < 0).any():
            raise ValueError("time_s must be non-decreasing within and across batches")
        index = bin_index(elapsed, self._unit)  # type: ignore[arg-type]
        top = int(index[-1])
        if top >= self._sums.shape[1]:
            grown = np.zeros((3, max(2 * self._sums.shape[1], top + 1)))
            grown[:, : self._sums.shape[1]] = self._sums
            self._sums = grown
        size = self._sums.shape[1]
        self._sums[0] += np.bincount(index, weights=elapsed, minlength=size)
        self._sums[1] += np.bincount(index, weights=values, minlength=size)
        self._sums[2] += np.bincount(index, minlength=size)
        self._last_s = float(elapsed[-1])
        self.n_samples += times.size
        self._since_fit += times.size
        keep = self._recent.maxlen or 1
        self._recent.extend(zip(elapsed[-keep:].tolist(), values[-keep:].tolist(), strict=True))
        self._residual_fit = None  # recomputed from `_recent` at the next level()

    def _add_each(self, times: FloatArray, values: FloatArray) -> None:
        for t, value in zip(times.tolist(), values.tolist(), strict=True):
            if not (math.isfinite(t) and math.isfinite(value)):
                continue  # a failed reading: skipped, as the analysis drops NaN rows
            if math.isnan(self._start_s):
                self._start_s = t
            elapsed = t - self._start_s
            if elapsed < (0.0 if math.isnan(self._last_s) else self._last_s):
                raise ValueError(f"time_s must be non-decreasing; got {t:g} s after a later sample")
            self._last_s = elapsed
            self.n_samples += 1
            self._since_fit += 1
            self._recent.append((elapsed, value))
            if self._residual_fit is not None:
                # Running sum of the recent residuals against the current fit: O(1).
                if len(self._residuals) == self._residuals.maxlen:
                    self._residual_sum -= self._residuals[0]
                residual = value - self._residual_fit.value(elapsed / S_PER_H)
                self._residuals.append(residual)
                self._residual_sum += residual
            if self._unit is None:
                self._pending.append((elapsed, value))
                if len(self._pending) > _MIN_SAMPLES or (
                    len(self._pending) == _MIN_SAMPLES and elapsed > 0
                ):
                    self._unit = time_unit_s(np.array([p[0] for p in self._pending]))
                    for held_t, held_value in self._pending:
                        self._accumulate(held_t, held_value)
                    self._pending.clear()
            else:
                self._accumulate(elapsed, value)

    def _accumulate(self, elapsed: float, value: float) -> None:
        k = bin_of(elapsed, self._unit)  # type: ignore[arg-type]
        if k >= self._sums.shape[1]:
            grown = np.zeros((3, max(2 * self._sums.shape[1], k + 1)))
            grown[:, : self._sums.shape[1]] = self._sums
            self._sums = grown
        self._sums[0, k] += elapsed
        self._sums[1, k] += value
        self._sums[2, k] += 1.0

    def _bins(self) -> tuple[FloatArray, FloatArray, FloatArray]:
        count = self._sums[2]
        keep = count > 0
        return (
            self._sums[0, keep] / count[keep] / S_PER_H,
            self._sums[1, keep] / count[keep],
            count[keep],
        )

    def _due(self) -> bool:
        if self._unit is None or self.n_samples < _MIN_SAMPLES:
            return False
        # Time growth alone would refit at nearly every sample of a log-spaced schedule
        # (20 per decade: +12 % each); new information is new samples, so both must grow.
        return (
            self._fit is None
            or self._since_fit >= self.refit_every
            or (
                self._last_s > (1.0 + self.refit_growth) * self._fit_until_s
                and self._since_fit >= self.refit_growth * self.n_samples
            )
        )

    def _refit(self) -> None:
        time_h, mean, count = self._bins()
        if mean.size < 4:
            return
        # A full search (both forms, two passes) when the bins grew by half since the
        # last one (~10 times in a run); one warm-started pass in between.
        full = self._fit is None or mean.size > 1.5 * self._full_bins
        try:
            self._fit = fit_decay(time_h, mean, count, None if full else self._fit)
        except (ValueError, RuntimeError, np.linalg.LinAlgError) as exc:
            log.warning("live decay fit failed: %s", exc)
            return
        self._since_fit = 0
        self._fit_until_s = self._last_s
        self.n_fits += 1
        self._level = None
        if full:
            self._full_bins = mean.size

    # -- answers --------------------------------------------------------------------------
    @property
    def l0(self) -> float:
        """Return the current L0 estimate (model at switch-on), NaN before the first fit."""
        return self._fit.l0 if self._fit is not None else math.nan

    def level(self) -> float:
        """Return the current smoothed luminance (model + shrunk recent residual), NaN early."""
        if self._level is not None:
            return self._level
        if self._fit is None or not self._recent:
            return math.nan
        if self._residual_fit is not self._fit:
            # New fit: residuals of the recent samples against it (at most `recent` of them).
            self._residuals = collections.deque(
                (value - self._fit.value(t / S_PER_H) for t, value in self._recent),
                maxlen=self._recent.maxlen,
            )
            self._residual_sum = math.fsum(self._residuals)
            self._residual_fit = self._fit
        now = self._fit.value(self._last_s / S_PER_H)
        residual = self._residual_sum / len(self._residuals)
        sigma = SHRINK_SIGMAS * self._fit.noise_rel * now / math.sqrt(len(self._residuals))
        self._level = now + math.copysign(max(abs(residual) - sigma, 0.0), residual)
        return self._level

    def relative(self) -> float:
        """Return the current smoothed L / L0 (NaN before the first fit)."""
        return self.level() / self.l0 if self._fit is not None else math.nan

    def fallen_to(self, fraction: float) -> bool:
        """Return True once the smoothed L / L0 is at or below ``fraction`` (e.g. 0.5).

        Before answering True it refits on everything so far (if any sample arrived since
        the last fit), so the decision rests on the current L0.
        """
        ratio = self.relative()
        if not ratio <= fraction:
            return False
        # Refit before a yes, but not at every sample while the level hovers at the line.
        if self._since_fit >= 10 or (
            self._since_fit > 0 and self._last_s > 1.01 * self._fit_until_s
        ):
            self._refit()
            ratio = self.relative()
        return bool(ratio <= fraction)

    def metrics(self) -> dict[str, float]:
        """Return :func:`lifetime_metrics`-style figures from the bins collected so far."""
        if self._fit is None:
            raise ValueError(f"too few samples for a fit; got {self.n_samples}")
        time_h, mean, count = self._bins()
        return _metrics_from_bins(time_h, mean, count, self._last_s, float(self._unit))  # type: ignore[arg-type]


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


def temperature_summary(
    device_time_s: np.ndarray, temperature_c: np.ndarray, t50_s: float = math.nan
) -> dict[str, float]:
    """Summarise the device temperature of a lifetime run (thermometer on the device).

    Parameters
    ----------
    device_time_s
        Device time of the stress rows (s), increasing.
    temperature_c
        Temperature of each row (C); NaN where none was measured.
    t50_s
        T50 in device seconds, for the temperature at T50 (NaN: not given).

    Returns
    -------
    dict
        ``temperature_start_c`` (median of the first 5 readings), ``temperature_end_c``
        (of the last 5), ``temperature_mean_c`` (time-weighted over the run),
        ``temperature_max_c``, ``temperature_rise_c`` (end - start) and
        ``temperature_at_t50_c`` (interpolated); all NaN without readings.
    """
    t = np.asarray(device_time_s, dtype=float)
    temperature = np.asarray(temperature_c, dtype=float)
    keep = np.isfinite(t) & np.isfinite(temperature)
    keys = ("start", "end", "mean", "max", "rise", "at_t50")
    if keep.sum() == 0:
        return {f"temperature_{k}_c": math.nan for k in keys}
    t, temperature = t[keep], temperature[keep]
    start = float(np.median(temperature[:5]))
    end = float(np.median(temperature[-5:]))
    if t.size > 1 and t[-1] > t[0]:
        mean = float(np.trapezoid(temperature, t) / (t[-1] - t[0]))
    else:
        mean = float(np.mean(temperature))
    at_t50 = math.nan
    if math.isfinite(t50_s) and t[0] <= t50_s <= t[-1]:
        at_t50 = float(np.interp(t50_s, t, temperature))
    return {
        "temperature_start_c": start,
        "temperature_end_c": end,
        "temperature_mean_c": mean,
        "temperature_max_c": float(np.max(temperature)),
        "temperature_rise_c": end - start,
        "temperature_at_t50_c": at_t50,
    }
