"""What a fit result knows after the fit: the model's band at new x, and toy datasets.

``FitResult.band`` / ``BatchFitResult.band`` and ``.simulate`` are thin wrappers around these
functions, which work on batches (``(N, k)`` parameters): a single fit is a batch of one. The
fit itself hands over a :class:`FittedModel`, which evaluates the model as the fit did.
"""
import numpy as np
from scipy.special import ndtri

from .._arrays import read_only, real_array
from ._intervals import Intervals, profile_intervals
from ._validate import parameter_index
from ..propagate import propagate

__all__ = ["FittedModel", "band", "conf_interval", "simulate"]


class FittedModel:
    """The model of a fit and its noise, as the fit saw them.

    ``at(x_new)`` returns the function of the parameters to propagate for the model at
    ``x_new`` and whether it is vectorized; ``values(params, rows)`` is the model at the fit's
    own x (NaN where the data were missing); ``sigma(rows)`` the fit's sigma ``(len(rows), m)``
    or None; ``estimator`` and ``absolute_sigma`` as given to the fit.
    """

    def __init__(self, at, values, sigma, estimator, absolute_sigma, refit, lower, upper,
                 free_index, param_names):
        self.at = at
        self.values = values
        self.sigma = sigma
        self.estimator = estimator
        self.absolute_sigma = absolute_sigma
        self.refit = refit              # refit(rows, p0, k): fits with parameter k held
        self.lower = lower
        self.upper = upper
        self.free_index = free_index
        self.param_names = param_names


def _check_cl(cl):
    if isinstance(cl, (bool, np.bool_)) or not isinstance(cl, (int, float, np.floating)) \
            or not 0.0 < cl < 1.0:
        raise ValueError(f"cl must be a probability in (0, 1), got {cl!r}")
    return float(cl)


def _noise_scale(fitted, redchi2):
    """The factor on sigma (or, without sigma, the noise's standard deviation), a column of
    one per dataset."""
    redchi2 = np.asarray(redchi2, dtype=float).reshape(-1, 1)
    return np.ones_like(redchi2) if fitted.absolute_sigma else np.sqrt(redchi2)


def band(fitted, params, cov, redchi2, x_new, cl, kind, sigma):
    """``(lower, upper)`` ``(N, m_new)``: the model at ``x_new`` -+ z times its delta-method
    standard deviation (``"confidence"``), with the noise added in quadrature
    (``"prediction"``)."""
    cl = _check_cl(cl)
    if kind not in ("confidence", "prediction"):
        raise ValueError(f"kind must be 'confidence' or 'prediction', got {kind!r}")
    function, vectorized = fitted.at(x_new)
    result = propagate(function, params, cov, vectorized=vectorized)
    value, std = np.atleast_2d(result.value), np.atleast_2d(result.std)
    if kind == "prediction":
        std = np.sqrt(std ** 2 + _noise_variance(fitted, value, redchi2, sigma))
    elif sigma is not None:
        raise ValueError("sigma is for kind='prediction' (the noise at x_new)")
    z = ndtri(0.5 + 0.5 * cl)
    return value - z * std, value + z * std


def _noise_variance(fitted, value, redchi2, sigma):
    """The variance of a new data point at the model values ``value`` (N, m_new)."""
    if fitted.estimator == "poisson":
        if sigma is not None:
            raise ValueError("sigma must not be given for a Poisson fit (the variance of a "
                             "count is its mean)")
        return np.maximum(value, 0.0)
    scale = _noise_scale(fitted, redchi2)
    if sigma is None:
        fit_sigma = fitted.sigma(np.arange(value.shape[0]))
        if fit_sigma is not None:
            uniform = fit_sigma[:, :1]
            if not np.all(np.isnan(fit_sigma) | (fit_sigma == uniform)):
                raise ValueError("the fit's sigma varies from point to point: give sigma, the "
                                 "noise of a new point at x_new")
            return (scale * uniform) ** 2
        return scale ** 2 * np.ones_like(value)     # no sigma: the scatter is sqrt(redchi2)
    s = real_array(sigma, "sigma")
    try:
        s = np.broadcast_to(s, value.shape[-1:] if s.ndim <= 1 else value.shape)
    except ValueError:
        raise ValueError(f"sigma has shape {s.shape}, expected a scalar or ({value.shape[-1]},) "
                         "(one per point of x_new)") from None
    if not (np.isfinite(s).all() and (s > 0).all()):
        raise ValueError("sigma must be finite and > 0")
    return (scale * s) ** 2


def simulate(fitted, params, redchi2, n, rng, rows):
    """``n`` toy datasets per fit ``(N, n, m)`` from the fitted model and its noise."""
    if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"n must be a non-negative int, got {n!r}")
    rng = np.random.default_rng(rng)
    mean = fitted.values(params, rows)                  # (N, m), NaN where data were missing
    shape = (mean.shape[0], int(n), mean.shape[1])
    missing = np.isnan(mean)
    if fitted.estimator == "poisson":
        lam = np.where(missing | (mean < 0), 0.0, mean)
        toys = rng.poisson(np.broadcast_to(lam[:, None, :], shape)).astype(np.float64)
    else:
        sigma = fitted.sigma(rows)
        scale = _noise_scale(fitted, redchi2)
        noise = scale * (1.0 if sigma is None else sigma)
        toys = mean[:, None, :] + rng.standard_normal(shape) * noise[:, None, :]
    toys[np.broadcast_to(missing[:, None, :], shape)] = np.nan
    return toys


def python_model_at(model, x_new, nparams, batch):
    """The function of the parameters giving a Python model at ``x_new``: per point as in
    ``fit`` (the curve_fit convention), or vectorized with ``(n, 1)`` parameter columns as in
    ``fit_batch``."""
    x_new = read_only(real_array(x_new, "x_new"))
    if not batch:
        return (lambda p: model(x_new, *p)), False

    def columns(P):
        values = model(x_new, *(read_only(P[k][:, None]) for k in range(nparams)))
        return np.asarray(values, dtype=np.float64).T

    return columns, True


def conf_interval(fitted, params, cov, cost, dof, rows, cl, which):
    """Profile-likelihood intervals (:mod:`fastcalc.fitting._intervals`) of the parameters ``which``
    (names or indices; None: every free one) of the fits ``params`` of datasets ``rows``."""
    cl = _check_cl(cl)
    names = fitted.param_names
    if which is None:
        indices = [int(k) for k in fitted.free_index]
    else:
        items = [which] if isinstance(which, (str, int, np.integer)) else list(which)
        indices = [parameter_index(item, names, "params") for item in items]
        for k in indices:
            if k not in fitted.free_index:
                raise ValueError(f"params: {names[k]!r} was fixed in the fit")
    cost = np.asarray(cost, dtype=float).reshape(-1)
    dof = np.asarray(dof).reshape(-1)
    if fitted.absolute_sigma or fitted.estimator == "poisson":
        scale = np.ones_like(cost)
    else:                                    # the covariance was scaled by cost / dof
        with np.errstate(divide="ignore", invalid="ignore"):
            scale = np.where(dof > 0, cost / np.where(dof > 0, dof, 1), np.nan)

    def refit(local, p0, k):
        return fitted.refit(rows[local], np.clip(p0, fitted.lower, fitted.upper), k)

    limits, status, nfev = profile_intervals(refit, params, cov, cost, scale, fitted.lower,
                                             fitted.upper, indices, cl)
    return Intervals(limits, status, cl, [names[k] for k in indices], nfev)
