"""The decay model behind every lifetime figure: log-time bins, a robust fit, intervals.

One estimator serves the end-of-run analysis (:func:`perovlab_daq.analysis.lifetime_metrics`)
and the live stop (:class:`perovlab_daq.analysis.DecayTracker`):

1. **Log-time bins.** Sample ``(t, L)`` goes to bin ``k = floor(ln(1 + t/u) / ln(1 + rho))``
   with ``u`` the logging interval at the start and ``rho`` = 2 %: bins hold one sample
   each while ``t`` is below ~50 ``u`` and are 2 % of ``t`` wide later. Each bin keeps
   the sum of its times, its luminances and its count, so adding a sample is O(1) and a
   run of 10^6 samples at 1 s is ~700 bins; a run logged every hour is left unbinned.
2. **Model.** ``L(t) = L0 (1 + a (1 - exp(-t/t_b))) exp(-(t/tau)^beta)``: a stretched
   exponential (REFERENCE section 3) with optional initial brightening of relative size
   ``a`` and time constant ``t_b``. The 3-parameter form (a = 0) and the 5-parameter form
   are both fitted; the brightening is kept only if it lowers the robust chi^2 by more than
   the BIC penalty ``2 ln(bins)``.
3. **Fit.** Weighted least squares of the relative residual of each bin mean,
   ``(L_k - M(t_k)) / M(t_k) * sqrt(n_k)`` (multiplicative noise), with a soft-L1 loss
   (robust to spikes, dropouts and a dip) in two passes: the second scales the residuals
   by the noise found in the first (1.4826 x median absolute residual). The covariance of
   the parameters is ``s^2 (J^T J)^-1`` with ``s`` the noise of the second pass and
   ``bins - parameters`` degrees of freedom.
4. **Smoothed signal.** ``S_k = M(t_k) + soft(L_k - M(t_k))``: the fitted model plus the
   bin's residual shrunk towards zero by twice its own noise ``2 s M / sqrt(n_k)`` (soft
   thresholding). Where the data agree with the model within noise, S is the model (full
   precision at any logging interval); where they disagree (a dip, a model misfit) S
   follows the data.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from scipy import optimize

from perovlab_daq.analysis._student import t_quantile
from perovlab_daq.analysis._validation import FloatArray

log = logging.getLogger(__name__)

S_PER_H = 3600.0
#: Relative width of a log-time bin (2 % of the elapsed time).
BIN_GROWTH = 0.02
_LN_GROWTH = math.log1p(BIN_GROWTH)
#: A bin residual counts as real only beyond this many of its standard deviations.
SHRINK_SIGMAS = 2.0
#: Residual scale (in noise units) beyond which the soft-L1 loss stops being quadratic.
_ROBUST_SCALE = 3.0
#: Noise floor (relative) so that noise-free data do not divide by zero.
_MIN_NOISE = 1e-7
#: Below this fraction of L0 the relative weight stops growing (luminance near zero).
_WEIGHT_FLOOR = 0.02
#: The model is used for T_x only if it fell below this fraction of L0 over the record.
MIN_DECAY = 0.98
#: Fewer bins than this are fitted without the brightening term (too few to tell).
MIN_BINS_BRIGHTENING = 20
#: Samples that must lie after a crossing (below it) for the crossing to count as measured.
MIN_SAMPLES_AFTER = 3


def time_unit_s(elapsed_s: FloatArray) -> float:
    """Return the bin unit ``u``: median of the first (up to) 10 positive sample intervals."""
    steps = np.diff(elapsed_s[:64])
    steps = steps[steps > 0][:10]
    if steps.size == 0:
        return float(elapsed_s[-1]) if elapsed_s[-1] > 0 else 1.0
    return float(np.median(steps))


def bin_index(
    elapsed_s: FloatArray, unit_s: float, *, min_width_s: float | None = None
) -> np.ndarray:
    """Return the log-time bin of each elapsed time (s from switch-on).

    With ``min_width_s``, bins narrower than that (early times) are replaced by linear
    bins of that width, numbered before the log bins that follow.
    """
    # In place, one float and one integer array at a time (a 1M-row run: 16 MB, not 40).
    scaled = np.divide(elapsed_s, unit_s, dtype=np.float64)
    np.log1p(scaled, out=scaled)
    scaled /= _LN_GROWTH
    index = scaled.astype(np.int64)
    del scaled
    if min_width_s is None:
        return index
    switch_s = max(min_width_s / BIN_GROWTH - unit_s, 0.0)
    first_log = int(math.log1p(switch_s / unit_s) / _LN_GROWTH)
    offset = int(switch_s // min_width_s) + 1 - first_log
    early = elapsed_s < switch_s
    index += offset
    index[early] = np.floor(elapsed_s[early] / min_width_s).astype(np.int64)
    return index


def bin_of(elapsed_s: float, unit_s: float) -> int:
    """Return the log-time bin of one elapsed time (the live path)."""
    return int(math.log1p(elapsed_s / unit_s) / _LN_GROWTH)


def model(time_h: FloatArray | float, params: FloatArray) -> FloatArray:
    """Evaluate the decay model; ``params`` = (ln L0, ln tau_h, beta[, a, ln t_b_h])."""
    t = np.asarray(time_h, dtype=np.float64)
    value = np.exp(params[0] - np.power(t / math.exp(params[1]), params[2]))
    if params.size == 5:
        value = value * (1.0 - params[3] * np.expm1(-t / math.exp(params[4])))
    return value


@dataclass(frozen=True)
class DecayFit:
    """A fitted decay model with its covariance (times in hours)."""

    params: FloatArray
    covariance: FloatArray
    noise_rel: float
    dof: int
    end_h: float

    @cached_property
    def l0(self) -> float:
        """Return the model luminance at switch-on (read at every live sample: kept)."""
        return math.exp(float(self.params[0]))

    @property
    def t_quantile(self) -> float:
        """Return the two-sided 95 % Student t quantile for the fit's degrees of freedom."""
        return t_quantile(0.975, max(self.dof, 1))

    def __call__(self, time_h: FloatArray | float) -> FloatArray:
        """Return the model luminance at ``time_h``."""
        return model(time_h, self.params)

    @cached_property
    def _scalars(self) -> tuple[float, ...]:
        """(ln L0, tau h, beta[, a, t_b h]) as Python floats, for :meth:`value`."""
        p = [float(v) for v in self.params]
        p[1] = math.exp(p[1])
        if len(p) == 5:
            p[4] = math.exp(p[4])
        return tuple(p)

    def value(self, time_h: float) -> float:
        """Return the model luminance at one time (scalar arithmetic, for the live path)."""
        p = self._scalars
        result = math.exp(p[0] - (time_h / p[1]) ** p[2])
        if len(p) == 5:
            result *= 1.0 - p[3] * math.expm1(-time_h / p[4])
        return result

    def peak(self) -> tuple[float, float]:
        """Return (time h, luminance) of the model maximum (switch-on without brightening)."""
        if self.params.size == 3 or self.params[3] <= 0:
            return 0.0, self.l0
        tau = math.exp(float(self.params[1]))
        grid = np.concatenate(([0.0], np.geomspace(1e-6 * tau, 10 * tau, 400)))
        values = self(grid)
        i = int(np.argmax(values))
        if 0 < i < grid.size - 1:
            result = optimize.minimize_scalar(
                lambda t: -float(self(t)), bounds=(grid[i - 1], grid[i + 1]), method="bounded"
            )
            return float(result.x), float(-result.fun)
        return float(grid[i]), float(values[i])

    def crossing_h(self, level: float, params: FloatArray | None = None) -> float:
        """Return the time (h) the model falls through ``level`` for the last time."""
        p = self.params if params is None else params
        l0 = math.exp(float(p[0]))
        tau = math.exp(float(p[1]))
        if p.size == 3 or p[3] <= 0:
            ratio = level / l0
            if not 0 < ratio < 1:
                return 0.0 if ratio >= 1 else math.inf
            return tau * (-math.log(ratio)) ** (1.0 / float(p[2]))
        fit = DecayFit(p, self.covariance, self.noise_rel, self.dof, self.end_h)
        t_peak, l_peak = fit.peak()
        if level >= l_peak:
            return t_peak
        high = max(tau, t_peak, 1e-9)
        while float(model(high, p)) > level:
            high *= 2.0
            if high > 1e12 * tau:
                return math.inf
        return float(optimize.brentq(lambda t: float(model(t, p)) - level, t_peak, high))

    def stderr(self, function: Callable[[FloatArray], float]) -> float:
        """Return the delta-method standard error of ``function(params)``."""
        if not np.isfinite(self.covariance).all():
            return math.nan
        sd = np.sqrt(np.clip(np.diag(self.covariance), 0, None))
        gradient = np.zeros(self.params.size)
        for i in range(self.params.size):
            step = max(1e-3 * sd[i], 1e-8 * max(1.0, abs(float(self.params[i]))))
            up, down = self.params.copy(), self.params.copy()
            up[i] += step
            down[i] -= step
            try:
                gradient[i] = (function(up) - function(down)) / (2 * step)
            except (ValueError, RuntimeError, ZeroDivisionError):
                return math.nan
        if not np.isfinite(gradient).all():
            return math.nan
        return math.sqrt(max(float(gradient @ self.covariance @ gradient), 0.0))


def _residuals(
    params: FloatArray, time_h: FloatArray, mean: FloatArray, root_n: FloatArray, scale: float
) -> FloatArray:
    predicted = model(time_h, params)
    floor = _WEIGHT_FLOOR * math.exp(params[0])
    return (mean - predicted) / np.maximum(predicted, floor) * root_n / scale


def _jacobian(
    params: FloatArray, time_h: FloatArray, mean: FloatArray, root_n: FloatArray, scale: float
) -> FloatArray:
    """Analytic Jacobian of :func:`_residuals` (d residual / d params)."""
    l0 = math.exp(params[0])
    ratio = time_h / math.exp(params[1])
    with np.errstate(divide="ignore", invalid="ignore"):
        stretched = np.power(ratio, params[2])
        log_ratio = np.where(time_h > 0, np.log(np.where(time_h > 0, ratio, 1.0)), 0.0)
    columns = [np.ones_like(time_h), params[2] * stretched, -stretched * log_ratio]
    if params.size == 5:
        rise = -np.expm1(-time_h / math.exp(params[4]))
        brightening = 1.0 + params[3] * rise
        columns.append(rise / brightening)
        columns.append(-params[3] * (1.0 - rise) * (time_h / math.exp(params[4])) / brightening)
    dlog = np.column_stack(columns)
    predicted = model(time_h, params)
    floor = _WEIGHT_FLOOR * l0
    weight = root_n / scale
    above = predicted >= floor
    # Above the floor r = (L/m - 1) w: dr = -(L/m) w dln m. Below, r = (L - m) w / (f L0).
    factor = np.where(above, -mean / np.where(above, predicted, 1.0), -predicted / floor) * weight
    jac = dlog * factor[:, None]
    jac[~above, 0] = (-mean / floor * weight)[~above]
    return jac


def _least_squares(
    start: FloatArray,
    bounds: tuple[list[float], list[float]],
    data: tuple[FloatArray, FloatArray, FloatArray],
    scale: float,
    max_nfev: int = 100,
) -> optimize.OptimizeResult:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return optimize.least_squares(
            _residuals,
            np.clip(start, np.array(bounds[0]) + 1e-9, np.array(bounds[1]) - 1e-9),
            jac=_jacobian,
            bounds=bounds,
            args=(*data, scale),
            loss="soft_l1",
            f_scale=_ROBUST_SCALE,
            x_scale="jac",
            max_nfev=max_nfev,
        )


def _robust_cost(
    params: FloatArray, data: tuple[FloatArray, FloatArray, FloatArray], scale: float
) -> float:
    """Return the soft-L1 cost of ``params`` with residuals in units of ``scale``."""
    z = (_residuals(params, *data, scale) / _ROBUST_SCALE) ** 2
    return float(_ROBUST_SCALE**2 * np.sum(np.sqrt(1.0 + z) - 1.0))


def _robust_noise(residual: FloatArray) -> float:
    return max(1.4826 * float(np.median(np.abs(residual))), _MIN_NOISE)


def _fit_form(
    start: FloatArray,
    bounds: tuple[list[float], list[float]],
    data: tuple[FloatArray, FloatArray, FloatArray],
    noise_guess: float,
) -> tuple[optimize.OptimizeResult, float]:
    """Two robust passes; return the result and the noise its residuals are scaled by."""
    first = _least_squares(start, bounds, data, noise_guess)
    noise = _robust_noise(first.fun * noise_guess)
    return _least_squares(first.x, bounds, data, noise), noise


def _start_values(time_h: FloatArray, mean: FloatArray, l0_guess: float) -> tuple[float, float]:
    """Return (tau_h, beta) from the linearised form ln(-ln y) = beta ln t - beta ln tau."""
    relative = mean / l0_guess
    usable = (time_h > 0) & (relative > 0.03) & (relative < 0.985)
    end = float(time_h[-1]) if time_h[-1] > 0 else 1.0
    if usable.sum() >= 3:
        slope, intercept = np.polyfit(np.log(time_h[usable]), np.log(-np.log(relative[usable])), 1)
        if 0.1 < slope < 3:
            return float(np.exp(-intercept / slope)), float(slope)
    last = float(np.median(relative[-max(3, relative.size // 10) :]))
    if 0 < last < 1:
        return end / -math.log(last), 1.0
    return 100.0 * end, 1.0


def _bounds5(
    time_h: FloatArray, lo3: list[float], hi3: list[float]
) -> tuple[list[float], list[float]]:
    """Bounds of the 5-parameter form: 0 <= a <= 3, t_b from 1e-3 t_1 to a third of the record."""
    return (
        [*lo3, 0.0, math.log(max(1e-3 * float(time_h[1]), 1e-12))],
        [*hi3, 3.0, math.log(float(time_h[-1]) / 3.0)],
    )


def _fit_brightening(
    data: tuple[FloatArray, FloatArray, FloatArray],
    plain: FloatArray,
    lo3: list[float],
    hi3: list[float],
    noise: float,
) -> tuple[optimize.OptimizeResult, float] | None:
    """Fit the 5-parameter form; return it only if the data clearly ask for it.

    Kept if (a) the robust chi^2 drops by more than ``2 ln(bins) + 6`` (BIC for two
    extra parameters plus a margin: p < 0.01 for a small record) and (b) the brightening
    time is at most a third of the record (a later "brightening" is a change of shape).
    """
    time_h, mean, _ = data
    end = float(time_h[-1])
    lo5, hi5 = _bounds5(time_h, lo3, hi3)
    # Brightening can hide inside a fast early decay (beta ~ 0.5): no visible peak to
    # start from, so screen a small grid of t_b and beta with one pass each and polish
    # the best start with the two-pass fit.
    ln_l0 = math.log(float(mean[0])) if mean[0] > 0 else float(plain[0])
    screened = []
    for t_b in np.geomspace(max(float(time_h[1]), 1e-3 * end), end / 3.0, 4):
        for beta in (float(plain[2]), 0.5 if plain[2] > 0.75 else 1.0):
            start = np.array([ln_l0, plain[1], beta, 0.1, math.log(float(t_b))])
            trial = _least_squares(start, (lo5, hi5), data, noise, max_nfev=20)
            screened.append((_robust_cost(trial.x, data, noise), trial.x))
    start = min(screened, key=lambda item: item[0])[1]
    chosen: tuple[optimize.OptimizeResult, float] | None = _fit_form(start, (lo5, hi5), data, noise)
    assert chosen is not None
    result, result_noise = chosen
    # Costs are chi^2 / 2, both in the noise of the larger model.
    drop = _robust_cost(plain, data, result_noise) - _robust_cost(result.x, data, result_noise)
    if drop <= math.log(mean.size) + 3.0:
        return None
    return chosen


def fit_decay(
    time_h: FloatArray, mean: FloatArray, count: FloatArray, previous: DecayFit | None = None
) -> DecayFit:
    """Fit the decay model to binned data (see the module docstring).

    Parameters
    ----------
    time_h, mean, count : numpy.ndarray
        Bin mean times (h from switch-on), bin mean luminances and sample counts.
    previous : DecayFit, optional
        A fit of the same run on fewer bins (the live path): one robust pass of the same
        form starts from it instead of the full search (3- and 5-parameter forms).

    Returns
    -------
    DecayFit
        The 3- or 5-parameter fit, whichever the BIC prefers.
    """
    root_n = np.sqrt(count)
    data = (time_h, mean, root_n)
    end = max(float(time_h[-1]), 1e-9)
    head = mean[: max(3, min(10, mean.size // 20))]
    l0_guess = float(np.median(head)) if np.median(head) > 0 else float(np.abs(mean).max())
    tau0, beta0 = _start_values(time_h, mean, l0_guess)
    ln_l0 = math.log(l0_guess)
    lo3 = [ln_l0 - 3.0, math.log(1e-4 * end), 0.1]
    hi3 = [ln_l0 + 3.0, math.log(1e6 * end), 3.0]
    if previous is not None:
        ln_l0 = float(previous.params[0])
        lo3 = [ln_l0 - 3.0, math.log(1e-4 * end), 0.1]
        hi3 = [ln_l0 + 3.0, math.log(1e6 * end), 3.0]
        bounds = (lo3, hi3) if previous.params.size == 3 else _bounds5(time_h, lo3, hi3)
        best = _least_squares(previous.params, bounds, data, previous.noise_rel)
        return _finish(best, previous.noise_rel, mean.size, end)
    noise_guess = 0.01
    best, noise = _fit_form(np.array([ln_l0, math.log(tau0), beta0]), (lo3, hi3), data, noise_guess)
    if mean.size >= MIN_BINS_BRIGHTENING and model(end, best.x) < MIN_DECAY * math.exp(best.x[0]):
        brightened = _fit_brightening(data, best.x, lo3, hi3, noise)
        if brightened is not None:
            best, noise = brightened
    return _finish(best, noise, mean.size, end)


def _finish(best: optimize.OptimizeResult, scale: float, n_bins: int, end: float) -> DecayFit:
    """Return the DecayFit of a least-squares result whose residuals are in ``scale`` units.

    The noise is the RMS of the inlier residuals (within 5 robust sigmas) with
    ``inliers - parameters`` degrees of freedom, which is what the t quantile assumes.
    """
    residual = np.asarray(best.fun)
    inlier = np.abs(residual) < 5.0 * _robust_noise(residual)
    dof = int(inlier.sum() - best.x.size)
    ratio = math.sqrt(float((residual[inlier] ** 2).sum()) / dof) if dof > 0 else math.nan
    ratio = max(ratio, _MIN_NOISE / scale) if math.isfinite(ratio) else _robust_noise(residual)
    jacobian = np.asarray(best.jac)[inlier]
    try:
        covariance = np.linalg.inv(jacobian.T @ jacobian) * ratio**2
    except np.linalg.LinAlgError:
        covariance = np.full((best.x.size, best.x.size), np.nan)
    if dof < 1:
        covariance = np.full((best.x.size, best.x.size), np.nan)
    return DecayFit(np.asarray(best.x, dtype=np.float64), covariance, ratio * scale, dof, end)


def smoothed_signal(
    fit: DecayFit, time_h: FloatArray, mean: FloatArray, count: FloatArray
) -> FloatArray:
    """Return S_k = M(t_k) + the bin residual soft-thresholded at 2 of its sigmas."""
    predicted = fit(time_h)
    residual = mean - predicted
    sigma = SHRINK_SIGMAS * fit.noise_rel * np.abs(predicted) / np.sqrt(count)
    return predicted + np.sign(residual) * np.maximum(np.abs(residual) - sigma, 0.0)


def last_crossing_h(
    fit: DecayFit,
    time_h: FloatArray,
    signal: FloatArray,
    count: FloatArray,
    level: float,
) -> float:
    """Return the last downward crossing (h) of ``level`` by S, NaN if not measured.

    Between the two grid points around the crossing, S is the model plus the linearly
    interpolated (shrunk) residual, solved exactly; the crossing counts only if at least
    :data:`MIN_SAMPLES_AFTER` samples lie after it.
    """
    at_or_above = np.flatnonzero(signal >= level)
    if at_or_above.size == 0:
        return float(time_h[0])
    i = int(at_or_above[-1])
    if i == signal.size - 1 or float(count[i + 1 :].sum()) < MIN_SAMPLES_AFTER:
        return math.nan
    t0, t1 = float(time_h[i]), float(time_h[i + 1])
    r0 = float(signal[i] - fit(t0))
    r1 = float(signal[i + 1] - fit(t1))

    def excess(t: float) -> float:
        weight = (t - t0) / (t1 - t0) if t1 > t0 else 0.0
        return float(fit(t)) + r0 + weight * (r1 - r0) - level

    if t1 <= t0 or excess(t0) < 0 or excess(t1) > 0:
        return t0
    return float(optimize.brentq(excess, t0, t1))
