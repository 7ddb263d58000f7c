"""Closed-form and linear least squares: chi2, linear_fit, polyfit."""
import numpy as np

from .._arrays import real_array
from ._results import FitResult

__all__ = ["chi2", "linear_fit", "polyfit"]


def _weights(sigma, shape, name="sigma"):
    """(w, e): the weights 1/sigma are w * 2**e, with w <= 1 at its largest (so that neither
    1/sigma for a tiny sigma nor w**2 overflows, and a uniform sigma gives a uniform w)."""
    if sigma is None:
        return np.ones(shape), 0
    sigma = real_array(sigma, name)
    try:
        sigma = np.broadcast_to(sigma, shape)
    except ValueError:
        raise ValueError(f"{name} has shape {sigma.shape}, incompatible with y of shape {shape}") \
            from None
    if not np.all(np.isfinite(sigma)) or np.any(sigma <= 0):
        raise ValueError(f"{name} must be finite and > 0")
    e = _exponent(np.min(sigma)) - 1 if sigma.size else 0      # sigma / 2**e >= 1
    with np.errstate(under="ignore"):    # a weight 2**-1074 times the largest does not count
        return 1.0 / np.ldexp(sigma, -e), -e


def _exponent(value):
    """e with |value| in [2**(e-1), 2**e) (0 for 0)."""
    return int(np.frexp(float(value))[1])


def _sum_of_squares(r, exponent=0, axis=-1):
    """sum((r * 2**exponent)**2) over axis without overflow or underflow of the squares: the
    rows are divided by a power of two near their largest entry first. A total beyond the
    double range is inf (or 0)."""
    r = np.asarray(r, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        largest = np.max(np.abs(r), axis=axis, keepdims=True, initial=0.0)
    e = np.frexp(np.where(np.isfinite(largest), largest, 1.0))[1]
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        scaled = np.ldexp(r, -e)
        total = np.sum(scaled * scaled, axis=axis, keepdims=True)
        return np.squeeze(np.ldexp(total, 2 * (e + exponent)), axis=axis)


def chi2(y, y_model, sigma=None):
    """Chi-squared ``sum(((y - y_model) / sigma) ** 2)`` over the last axis.

    NaN in ``y`` marks a missing point (not counted).

    Parameters
    ----------
    y, y_model : array_like, (m,) or (N, m)
    sigma : array_like, optional
        Standard deviations, broadcastable to ``y``; 1 when omitted.

    Returns
    -------
    float, or ndarray (N,) for 2-D ``y``.

    Raises
    ------
    ValueError
        ``y_model`` or ``sigma`` not broadcastable to ``y``; ``sigma`` not finite and positive.
    TypeError
        Complex or non-numeric ``y``, ``y_model`` or ``sigma``.

    Notes
    -----
    Failure behaviour: NaN in ``y`` is a missing point (not counted); NaN in ``y_model`` gives
    NaN and inf in ``y`` gives inf (never an exception). The squares are summed scaled by powers
    of two, so they neither overflow nor underflow; only a total beyond the double range is inf
    (or 0), without a warning.

    Examples
    --------
    >>> chi2([1.0, 2.0, 3.0], [1.0, 2.5, 2.0], sigma=0.5)
    5.0
    """
    y = real_array(y, "y")
    y_model = real_array(y_model, "y_model")
    try:
        y, y_model = np.broadcast_arrays(y, y_model)
    except ValueError:
        raise ValueError(f"y_model has shape {y_model.shape}, incompatible with y of shape "
                         f"{y.shape}") from None
    w, e = _weights(sigma, y.shape)
    with np.errstate(over="ignore", invalid="ignore"):  # inf in y or y_model: an inf chi2
        d = y - y_model
    r = np.where(np.isnan(y), 0.0, d * w)        # w <= 1: no overflow
    total = _sum_of_squares(r, e)
    return float(total) if np.ndim(total) == 0 else total


def _valid_xy(x, y, name_x="x"):
    x = real_array(x, name_x)
    y = real_array(y, "y")
    if x.ndim != 1 or y.shape != x.shape:
        raise ValueError(f"x and y must be 1-D of the same length, got {x.shape} and {y.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name_x} contains NaN or inf")
    if np.any(np.isinf(y)):
        raise ValueError("y contains inf (use NaN for missing points)")
    return x, y


def _scale_exponent(values):
    """k with max|values| in [2**k, 2**(k+1)) (0 for all zero): dividing by 2**k is exact,
    and keeps sums of squares of huge or tiny x or y from overflowing or underflowing."""
    largest = float(np.max(np.abs(values))) if values.size else 0.0
    return _exponent(largest) - 1 if largest != 0.0 else 0


def linear_fit(x, y, sigma=None, *, absolute_sigma=False):
    """Closed-form weighted straight-line fit ``y = a + b * x`` (the ``line`` model).

    Parameters
    ----------
    x, y : array_like (m,)
        Data; NaN in ``y`` marks a missing point.
    sigma : array_like, optional
        Standard deviations of ``y`` (scalar or (m,)).
    absolute_sigma : bool
        As in ``scipy.optimize.curve_fit``: if False the covariance is scaled by ``chi2 / dof``.

    Returns
    -------
    FitResult
        params ``(a, b)``: intercept and slope, as :data:`fastcalc.models.line`.

    Raises
    ------
    ValueError
        ``x`` and ``y`` not 1-D of the same length; NaN or inf in ``x``; inf in ``y``; fewer
        than 2 valid points or all ``x`` equal; ``sigma`` not finite and positive or of the
        wrong shape.
    TypeError
        Complex or non-numeric ``x``, ``y`` or ``sigma``.

    Notes
    -----
    Failure behaviour: NaN in ``y`` marks a missing point; every other failure raises
    ``ValueError``/``TypeError`` (no status). ``x``, ``y`` and the weights are scaled internally
    by powers of two, so any representable ``x``, ``y`` and ``sigma`` (e.g. 1e300 or 1e-300)
    work, and the parameters do not depend on a uniform ``sigma``; a result beyond the double
    range (e.g. chi2 ~ 1e400 for y ~ 1e200) is inf or 0, without a warning. The standard
    errors are scaled back on their own, so they stay finite where only the variances in
    ``cov`` leave the range.

    Examples
    --------
    >>> r = linear_fit([0.0, 1.0, 2.0, 3.0], [1.0, 3.1, 4.9, 7.0])
    >>> r.params.round(6).tolist()
    [1.03, 1.98]
    """
    x, y = _valid_xy(x, y)
    w, we = _weights(sigma, y.shape)
    valid = np.isfinite(y)
    if valid.sum() < 2:
        raise ValueError("linear_fit needs at least 2 valid points")
    # x and y are divided by powers of two and the weights come as w * 2**we (all exact), so
    # that no sum of squares overflows or underflows; the results are scaled back at the end
    kx, ky = _scale_exponent(x[valid]), _scale_exponent(y[valid])
    uv, yv = np.ldexp(x[valid], -kx), np.ldexp(y[valid], -ky)
    with np.errstate(under="ignore"):    # a weight far below the largest does not count
        wv = w[valid] ** 2
    s = wv.sum()
    um = (wv * uv).sum() / s
    t = uv - um
    stt = (wv * t * t).sum()
    if stt == 0.0:
        raise ValueError("linear_fit needs at least 2 distinct x values")
    # y centred too: sum(w t) is zero only to rounding, and times a large mean of y that
    # rounding swamped the slope (x ~ 1e6 + 1e-5 u, y ~ 1e4 + ...: 6x off)
    ym = (wv * yv).sum() / s
    slope_u = (wv * t * (yv - ym)).sum() / stt
    intercept_u = ym - um * slope_u
    resid_u = yv - (slope_u * uv + intercept_u)
    chi_u = float(np.sum((resid_u * w[valid]) ** 2))
    cov = np.array([[1.0 / s + um * um / stt, -um / stt], [-um / stt, 1.0 / stt]])
    dof = int(valid.sum()) - 2
    # back to the units of x and y: one exact (or, beyond the double range, inf or 0) ldexp
    k = np.arange(2)
    cov, stderr = _covariance_scaled_back(cov, chi_u, dof, absolute_sigma, k, kx, ky, we)
    with np.errstate(over="ignore", under="ignore"):
        intercept, slope = np.ldexp([intercept_u, slope_u], ky - k * kx)
        chi = float(np.ldexp(chi_u, 2 * (ky + we)))
        resid = np.full(y.shape, np.nan)
        resid[valid] = y[valid] - np.ldexp(slope_u * uv + intercept_u, ky)
    return FitResult([intercept, slope], cov, chi, dof, 0, 0, 0, resid, ("a", "b"),
                     stderr=stderr)


def _covariance_scaled_back(cov_u, chi_u, dof, absolute_sigma, k, kx, ky, we):
    """``(cov, stderr)`` of ``c_k = d_k 2**(ky - k kx)`` from the covariance ``cov_u`` of the
    ``d_k`` fitted to x, y divided by ``2**kx``, ``2**ky`` with weights ``w 2**we``.

    Each is one exact ldexp (inf or 0 only beyond the double range). The standard errors are
    scaled back from ``sqrt(diag(cov_u))`` (half the exponent), not taken from the scaled-back
    variances, so a representable one (1e199) is not lost to its variance (1e398)."""
    if absolute_sigma:
        exponents = -k * kx - we
    elif dof > 0:
        cov_u = cov_u * (chi_u / dof)
        exponents = ky - k * kx
    else:
        return np.full(cov_u.shape, np.inf), np.full(k.size, np.inf)
    with np.errstate(over="ignore", under="ignore"):
        return (np.ldexp(cov_u, np.add.outer(exponents, exponents)),
                np.ldexp(np.sqrt(np.diagonal(cov_u)), exponents))


def polyfit(x, y, deg, sigma=None, *, absolute_sigma=False):
    """Weighted least-squares polynomial fit by QR (no normal equations).

    Coefficients are ordered lowest power first, ``c0 + c1 x + ... + c_deg x^deg`` (as
    :func:`fastcalc.models.polynomial` and ``numpy.polynomial``; the reverse of ``numpy.polyfit``).
    The weighted Vandermonde matrix has its columns scaled to unit norm before the QR
    factorisation.

    Parameters
    ----------
    x, y : array_like (m,)
        Data; NaN in ``y`` marks a missing point.
    deg : int
        Degree.
    sigma : array_like, optional
        Standard deviations of ``y``.
    absolute_sigma : bool
        If False (default) the covariance is scaled by ``chi2 / dof`` (as
        ``numpy.polyfit(..., cov=True)`` and ``curve_fit``).

    Returns
    -------
    FitResult
        params ``(c0, ..., c_deg)``.

    Raises
    ------
    ValueError
        As for :func:`linear_fit`; also ``deg`` not a non-negative int, fewer than ``deg + 1``
        valid points, or a singular weighted Vandermonde matrix.
    TypeError
        As for :func:`linear_fit`.

    Notes
    -----
    Failure behaviour: NaN in ``y`` marks a missing point; every other failure raises
    ``ValueError`` (no status). Extreme scales of ``x``, ``y`` and ``sigma`` are handled as in
    :func:`linear_fit`.

    Examples
    --------
    >>> polyfit([0.0, 1.0, 2.0, 3.0], [1.0, 2.0, 5.0, 10.0], 2).params.round(10).tolist()
    [1.0, 0.0, 1.0]
    """
    if isinstance(deg, bool) or not isinstance(deg, (int, np.integer)) or deg < 0:
        raise ValueError(f"deg must be a non-negative int, got {deg!r}")
    x, y = _valid_xy(x, y)
    w, we = _weights(sigma, y.shape)
    valid = np.isfinite(y)
    n = int(deg) + 1
    if valid.sum() < n:
        raise ValueError(f"polyfit of degree {deg} needs at least {n} valid points")
    # x and y are divided by powers of two (exact; the column scaling below makes the QR
    # identical) and the weights come as w * 2**we, so that no power or square overflows or
    # underflows; the results are scaled back at the end
    kx, ky = _scale_exponent(x[valid]), _scale_exponent(y[valid])
    uv, yv = np.ldexp(x[valid], -kx), np.ldexp(y[valid], -ky)
    with np.errstate(under="ignore"):
        A = np.vander(uv, n, increasing=True) * w[valid, None]
    b = yv * w[valid]
    norms = np.linalg.norm(A, axis=0)
    norms[norms == 0] = 1.0
    q, r = np.linalg.qr(A / norms)
    diag = np.abs(np.diagonal(r))
    if np.any(diag <= 1e-13 * max(diag.max(), 1e-300)):
        raise ValueError("polyfit: the weighted Vandermonde matrix is singular "
                         "(too few distinct x values for this degree)")
    coef_u = np.linalg.solve(r, q.T @ b) / norms
    rinv = np.linalg.solve(r, np.eye(n))
    cov_u = (rinv @ rinv.T) / np.outer(norms, norms)
    fitted_u = np.polyval(coef_u[::-1], uv)
    chi_u = float(np.sum(((yv - fitted_u) * w[valid]) ** 2))
    dof = int(valid.sum()) - n
    # back to the units of x and y, c_k = d_k 2**(ky - k kx): one exact (or, beyond the double
    # range, inf or 0) ldexp
    k = np.arange(n)
    cov, stderr = _covariance_scaled_back(cov_u, chi_u, dof, absolute_sigma, k, kx, ky, we)
    with np.errstate(over="ignore", under="ignore"):
        coef = np.ldexp(coef_u, ky - k * kx)
        chi = float(np.ldexp(chi_u, 2 * (ky + we)))
        resid = np.full(y.shape, np.nan)
        resid[valid] = y[valid] - np.ldexp(fitted_u, ky)
    names = tuple(f"c{k}" for k in range(n))
    return FitResult(coef, cov, chi, dof, 0, 0, 0, resid, names, stderr=stderr)
