"""Student-t quantiles for the analysis modules' confidence intervals.

One function, on :func:`scipy.special.stdtrit` (the inverse of the t distribution's
CDF, the same numbers as ``scipy.stats.t.ppf``): importing ``scipy.stats`` costs about
1.4 s and 22 MB, and every lifetime analysis needs nothing else from it.
"""

from __future__ import annotations

from scipy import special


def t_quantile(probability: float, dof: float) -> float:
    """Return the ``probability`` quantile of Student's t with ``dof`` degrees of freedom.

    Parameters
    ----------
    probability
        Lower-tail probability in (0, 1), e.g. 0.975 for a two-sided 95 % interval.
    dof
        Degrees of freedom (> 0; need not be an integer).

    Returns
    -------
    float
        The quantile (NaN for dof <= 0 or a probability outside (0, 1)).
    """
    return float(special.stdtrit(dof, probability))
