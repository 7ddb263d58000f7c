"""What ``fit`` and ``fit_batch`` minimise: the estimator names, checked, as the kernels' codes.

The kernels' side is ``fastcalc.fitting._estimator`` (one switch inside the Levenberg-Marquardt
kernel). ``cost`` picks the likelihood (``"chi2"``: Gaussian noise; ``"poisson"``: counts);
``loss`` a robust loss of the chi-squared residuals, with the meaning of
``scipy.optimize.least_squares``'s ``loss`` and ``f_scale``.
"""
from typing import NamedTuple

import numpy as np
from scipy.special import chdtrc

from .._arrays import real_number

__all__ = ["Estimator", "estimator", "goodness_of_fit"]

# the codes of fastcalc/fitting/_estimator.pxd
_COSTS = {"chi2": 0, "poisson": 1}
_LOSSES = {"linear": 0, "soft_l1": 2, "huber": 3, "cauchy": 4, "arctan": 5}


class Estimator(NamedTuple):
    name: str           # "chi2", "poisson" or the robust loss's name
    code: int           # the kernels' code
    f_scale: float


def estimator(cost, loss, f_scale, sigma):
    """The :class:`Estimator` for ``fit``'s ``cost``, ``loss`` and ``f_scale`` arguments."""
    if not isinstance(cost, str) or cost not in _COSTS:
        raise ValueError(f"cost must be one of {', '.join(map(repr, _COSTS))}, got {cost!r}")
    if not isinstance(loss, str) or loss not in _LOSSES:
        raise ValueError(f"loss must be one of {', '.join(map(repr, _LOSSES))}, got {loss!r}")
    f_scale = real_number(f_scale, "f_scale")
    if not (0.0 < f_scale < np.inf):
        raise ValueError(f"f_scale must be positive and finite, got {f_scale!r}")
    if cost == "poisson":
        if loss != "linear":
            raise ValueError("loss applies to cost='chi2' only (the Poisson likelihood has no "
                             f"robust variant here), got loss={loss!r} with cost='poisson'")
        if sigma is not None:
            raise ValueError("sigma must not be given with cost='poisson': the variance of a "
                             "count is its mean")
        return Estimator("poisson", _COSTS["poisson"], f_scale)
    if loss == "linear":
        return Estimator("chi2", _COSTS["chi2"], f_scale)
    return Estimator(loss, _LOSSES[loss], f_scale)


def goodness_of_fit(cost, dof, nfree, name):
    """``(aic, bic, pvalue)`` from the cost (-2 ln L up to a constant), arrays or scalars.

    ``aic = cost + 2 k``, ``bic = cost + k ln(n)`` (``k`` free parameters, ``n = dof + k``
    valid points) and ``pvalue = P(chi2_dof > cost)``, which only the chi-squared and Poisson
    costs have (NaN for robust losses, whose cost has no known distribution).
    """
    cost = np.asarray(cost, dtype=np.float64)
    dof = np.asarray(dof)
    n = dof + nfree
    with np.errstate(divide="ignore", invalid="ignore"):
        aic = cost + 2.0 * nfree
        bic = np.where(n > 0, cost + nfree * np.log(np.where(n > 0, n, 1)), np.nan)
        if name in ("chi2", "poisson"):
            pvalue = np.where(dof > 0, chdtrc(np.where(dof > 0, dof, 1), cost), np.nan)
        else:
            pvalue = np.full(np.shape(cost), np.nan)
    if np.ndim(aic) == 0:
        return float(aic), float(bic), float(pvalue)
    return aic, bic, pvalue
