"""Error propagation: the mean, standard deviation and covariance of a derived quantity.

For parameters ``p`` with covariance ``C`` and a quantity ``y = f(p)`` (a scalar or a vector),
the delta method linearises ``f`` at ``p``: ``cov(y) = J C J^T`` with ``J`` the Jacobian of
``f``. With ``order=2`` the quadratic term of the Taylor expansion is kept too, for Gaussian
parameters: the mean shifts by ``0.5 tr(H_i C)`` and the covariance gains
``0.5 tr(H_i C H_j C)`` (``H_i`` the Hessian of output ``i``). Both are exact for an ``f``
that is linear (order 1) or quadratic (order 2) in the parameters.

The derivatives are central finite differences, computed for a whole batch of parameter vectors
with one evaluation of the user function per chunk of points (one call for a vectorized
function, a ``nogil`` loop for a compiled one). The step along parameter ``j`` is
``c * max(|p_j|, sigma_j)`` (``sigma_j = sqrt(C_jj)``), so it follows the scale on which the
parameter is known as well as its size; the first derivatives use the accuracy-4 stencil
(``c = eps**(1/5)``) and the accuracy-2 stencil on the same points measures their error.
"""
import numpy as np
from scipy.optimize import OptimizeResult

from ._arrays import real_array
from ._evaluate import resolve
from ._status import Status

__all__ = ["propagate", "Propagation"]

_EPS = np.finfo(np.float64).eps
_STEP = _EPS ** 0.2            # optimal relative step of the accuracy-4 central stencil
# A batch is evaluated in chunks of about this many points, to bound the memory of the stencil.
_CHUNK_POINTS = 1 << 16
# status 1 when the derivatives' measured error moves a standard deviation by more than this
_STD_TOLERANCE = 1e-3


class Propagation(OptimizeResult):
    """Result of :func:`propagate`.

    Attributes
    ----------
    value : float or ndarray
        ``f(params)``: ``()`` or ``(m,)`` for one parameter vector, ``(N,)`` or ``(N, m)`` for a
        batch.
    mean : float or ndarray
        The propagated mean (``value`` for ``order=1``; ``value + 0.5 tr(H C)`` for
        ``order=2``), of the shape of ``value``.
    std : float or ndarray
        The propagated standard deviation, of the shape of ``value``.
    cov : float or ndarray
        The propagated covariance: the variance for a scalar ``f`` (shape of ``value``),
        ``(m, m)`` or ``(N, m, m)`` for a vector-valued one.
    jac : ndarray
        The Jacobian of ``f`` at ``params``: ``(k,)``, ``(m, k)``, ``(N, k)`` or ``(N, m, k)``.
    status : int or ndarray of int
        Per parameter vector: 0 success; 1 the finite-difference derivatives could not be
        measured to better than ``1e-3`` of a standard deviation (``f`` varies on a scale much
        finer than the steps, see the module notes; the values are then unreliable); 3 a
        non-finite parameter, covariance or value of ``f`` (NaN results).
    success : bool
        True when every status is 0.
    message : str
        What the worst status means.
    nfev : int
        Number of points at which ``f`` was evaluated.
    """


def propagate(f, params, cov, *, args=(), order=1, vectorized=False, n_out=None):
    """Propagate the covariance of parameters to a quantity derived from them.

    Parameters
    ----------
    f : callable or compiled callable
        The derived quantity ``f(p, *args)``, a scalar or a 1-D array of ``m`` values. The three
        kinds of user function are accepted (docs/user_guide/functions.rst): a Python callable
        called once per point, a vectorized one (``vectorized=True``) called with ``P`` of shape
        ``(k, n)`` whose column ``j`` is point ``j`` and returning ``(n,)`` or ``(m, n)``, or a
        compiled scalar or vector field.
    params : array_like, shape (k,) or (N, k)
        One parameter vector, or a batch of ``N`` (the ``params`` of a ``BatchFitResult``).
    cov : array_like, shape (k, k) or (N, k, k)
        The covariance of each parameter vector (symmetric, non-negative diagonal).
    args : tuple, optional
        Extra arguments of ``f``, the same for every parameter vector.
    order : {1, 2}, optional
        1: the delta method (linear). 2: adds the second-order mean shift and covariance term,
        exact for Gaussian parameters and an ``f`` quadratic in them.
    vectorized : bool, optional
        ``f`` takes many points at once (see ``f``).
    n_out : int, optional
        The number of outputs ``m`` of a compiled vector field (required for one).

    Returns
    -------
    Propagation
        ``value``, ``mean``, ``std``, ``cov``, ``jac``, ``status``, ``success``, ``message``
        and ``nfev``. In a batch a parameter vector that failed (NaN, as a failed fit leaves
        it) has status 3 and NaN results; the others are unaffected.

    Raises
    ------
    ValueError
        ``params`` or ``cov`` of the wrong shape, a non-finite value in one parameter vector
        (in a batch that is a status), a covariance that is not symmetric or has a negative
        variance, ``order`` not 1 or 2, ``n_out`` missing for a compiled vector field.
    TypeError
        ``f`` not callable, or compiled with another signature; ``args`` given to a compiled
        ``f``.

    Notes
    -----
    The steps follow each parameter's size and uncertainty, ``c * max(|p_j|, sigma_j)``; an
    ``f`` that varies on a much finer scale than both is outside what a Taylor expansion can
    describe anyway, and gets status 1. The batch is evaluated in chunks of about 65,536
    points. Results are the same whatever the batch around a parameter vector.

    Examples
    --------
    The area ``A sigma sqrt(2 pi)`` of a Gaussian peak from fitted amplitude and width:

    >>> import numpy as np
    >>> from fastcalc import propagate
    >>> area = lambda p: p[0] * p[1] * np.sqrt(2 * np.pi)
    >>> r = propagate(area, [10.0, 2.0], [[0.04, 0.0], [0.0, 0.01]])
    >>> round(float(r.value), 4), round(float(r.std), 4)
    (50.1326, 2.6997)

    The same for a batch of fits, with a function of the parameter columns:

    >>> P = np.array([[10.0, 2.0], [5.0, 1.0]])
    >>> C = np.array([np.diag([0.04, 0.01]), np.diag([0.01, 0.0025])])
    >>> r = propagate(lambda p: p[0] * p[1] * np.sqrt(2 * np.pi), P, C, vectorized=True)
    >>> np.round(r.std, 4)
    array([2.6997, 0.6749])
    """
    if order not in (1, 2) or isinstance(order, bool):
        raise ValueError(f"order must be 1 or 2, got {order!r}")
    P, C, single, bad = _checked_inputs(params, cov)
    function = resolve(f, args=args, vectorized=vectorized, name="f")
    N, k = P.shape
    if single and bad[0]:
        raise ValueError("params and cov must be finite (no NaN or inf)")
    P_eval = np.where(bad[:, None], 0.0, P)           # a failed row is evaluated harmlessly
    sigma = np.where(bad[:, None], 0.0, np.sqrt(np.diagonal(C, axis1=1, axis2=2)))
    h = _steps(P_eval, sigma)
    scalar, m = _output_kind(function, P_eval[0], n_out)
    stencil = _Stencil(k, order)
    chunk = max(1, _CHUNK_POINTS // stencil.size)
    value = np.empty((N, m))
    jac = np.empty((N, m, k))
    jac_error = np.empty((N, m, k))
    hess = np.empty((N, m, k, k)) if order == 2 else None
    for start in range(0, N, chunk):
        rows = slice(start, min(N, start + chunk))
        values = _evaluate(function, stencil.points(P_eval[rows], h[rows]), scalar, m)
        values = values.reshape(rows.stop - rows.start, stencil.size, m)
        value[rows] = values[:, 0]
        jac[rows], jac_error[rows] = stencil.first(values, h[rows])
        if hess is not None:
            hess[rows] = stencil.second(values, h[rows])
    # (+1: the probe of the output's shape)
    return _result(value, jac, jac_error, hess, C, sigma, bad, scalar, single,
                   N * stencil.size + (not function.is_compiled))


def _checked_inputs(params, cov):
    """``(P, C, single, bad)``: params as ``(N, k)``, cov as ``(N, k, k)`` (symmetrised), and
    the rows where either is not finite (a failed fit)."""
    P = real_array(params, "params")
    C = real_array(cov, "cov")
    if P.ndim not in (1, 2) or P.shape[-1] == 0 or (P.ndim == 2 and P.shape[0] == 0):
        raise ValueError(f"params must have shape (k,) or (N, k) with k, N >= 1, got {P.shape}")
    single = P.ndim == 1
    P = P.reshape(1, -1) if single else P
    wanted = P.shape[1:] * 2 if single else (P.shape[0],) + P.shape[1:] * 2
    if C.shape != wanted:
        raise ValueError(f"cov must have shape {wanted} for params of shape "
                         f"{P.shape[1:] if single else P.shape}, got {C.shape}")
    C = C.reshape((-1,) + wanted[-2:])
    finite = np.isfinite(C).all(axis=(1, 2))
    Cf = np.where(finite[:, None, None], C, 0.0)
    asymmetry = np.abs(Cf - Cf.transpose(0, 2, 1))
    scale = np.abs(np.diagonal(Cf, axis1=1, axis2=2))
    limit = 1e-8 * np.sqrt(scale[:, :, None] * scale[:, None, :]) + 1e-300
    if (asymmetry > limit).any():
        raise ValueError("cov must be symmetric")
    if (np.diagonal(Cf, axis1=1, axis2=2) < 0).any():
        raise ValueError("cov must have a non-negative diagonal (variances)")
    bad = ~(np.isfinite(P).all(axis=1) & finite)
    return np.ascontiguousarray(P), 0.5 * (C + C.transpose(0, 2, 1)), single, bad


def _output_kind(function, p, n_out):
    """``(scalar, m)``: whether ``f`` returns a scalar, and its number of outputs."""
    if function.is_compiled:
        if function.signature == "scalar":
            return True, 1
        if n_out is None or isinstance(n_out, bool) or int(n_out) != n_out or n_out < 1:
            raise ValueError("n_out (a positive int) must be given for a compiled vector field, "
                             f"got {n_out!r}")
        return False, int(n_out)
    first = np.asarray(function(p))
    if first.ndim > 1:
        raise ValueError(f"f must return a scalar or a 1-D array, got shape {first.shape}")
    return first.ndim == 0, max(first.size, 1) if first.ndim else 1


def _steps(P, sigma):
    """Steps ``c * max(|p|, sigma)`` (``c`` where both are 0), exactly representable."""
    scale = np.maximum(np.abs(P), sigma)
    h = _STEP * np.where(scale > 0.0, scale, 1.0)
    exact = (P + h) - P
    return np.where(exact > 0.0, exact, np.spacing(np.abs(P)))


def _evaluate(function, points, scalar, m):
    """Values at each row of ``points``, as ``(n, m)``."""
    if scalar:
        return function.scalar_values(points)[:, None]
    return function.vector_values(points, m)


class _Stencil:
    """The points around each parameter vector, and the derivatives from their values.

    Point 0 is ``p``; for parameter ``j`` the points ``p + s h_j e_j`` for ``s = 1, -1, 2, -2``;
    with ``order=2`` also ``p + (a h_i e_i + b h_j e_j)`` for ``i < j`` and ``a, b = +-1``.
    """

    _AXIS = np.array([1.0, -1.0, 2.0, -2.0])
    _PAIR = np.array([[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, -1.0]])

    def __init__(self, k, order):
        self.k = k
        self.pairs = np.array(np.triu_indices(k, 1)).T if order == 2 else np.empty((0, 2), int)
        self.size = 1 + 4 * k + 4 * len(self.pairs)

    def points(self, P, h):
        n, k = P.shape
        shifts = np.zeros((n, self.size, k))
        axis = shifts[:, 1:1 + 4 * k].reshape(n, k, 4, k)
        for j in range(k):
            axis[:, j, :, j] = self._AXIS[None, :] * h[:, j, None]
        pair = shifts[:, 1 + 4 * k:].reshape(n, len(self.pairs), 4, k)
        for q, (i, j) in enumerate(self.pairs):
            pair[:, q, :, i] = self._PAIR[None, :, 0] * h[:, i, None]
            pair[:, q, :, j] = self._PAIR[None, :, 1] * h[:, j, None]
        return np.ascontiguousarray((P[:, None, :] + shifts).reshape(-1, k))

    def _axis_values(self, values):
        """``(n, m, k, 4)``: the values at ``p + s h_j e_j``, ``s = 1, -1, 2, -2``."""
        n, _, m = values.shape
        return values[:, 1:1 + 4 * self.k].reshape(n, self.k, 4, m).transpose(0, 3, 1, 2)

    def first(self, values, h):
        """The accuracy-4 Jacobian ``(n, m, k)`` and its error: its distance to the accuracy-2
        one (a bound on its truncation error) plus the rounding error of the differences."""
        a = self._axis_values(values)
        hh = h[:, None, :]
        d2 = (a[..., 0] - a[..., 1]) / (2.0 * hh)
        d4 = (8.0 * (a[..., 0] - a[..., 1]) - (a[..., 2] - a[..., 3])) / (12.0 * hh)
        size = np.abs(a).max(axis=-1)
        return d4, np.abs(d4 - d2) + 4.0 * _EPS * size / hh

    def second(self, values, h):
        """The Hessians ``(n, m, k, k)`` (accuracy-2 stencils on the same steps)."""
        n, _, m = values.shape
        centre = values[:, 0][:, :, None]
        a = self._axis_values(values)
        H = np.empty((n, m, self.k, self.k))
        diag = (a[..., 0] - 2.0 * centre + a[..., 1]) / (h * h)[:, None, :]
        H[:, :, np.arange(self.k), np.arange(self.k)] = diag
        if len(self.pairs):
            b = values[:, 1 + 4 * self.k:].reshape(n, len(self.pairs), 4, m)
            i, j = self.pairs.T
            mixed = (b[:, :, 0] - b[:, :, 1] - b[:, :, 2] + b[:, :, 3]) / \
                (4.0 * h[:, i] * h[:, j])[:, :, None]
            H[:, :, i, j] = H[:, :, j, i] = mixed.transpose(0, 2, 1)
        return H


def _result(value, jac, jac_error, hess, C, sigma, bad, scalar, single, nfev):
    cov = np.einsum("nik,nkl,njl->nij", jac, C, jac)
    mean = value.copy()
    if hess is not None:
        HC = np.einsum("nikl,nlj->nikj", hess, C)
        mean += 0.5 * np.einsum("nikk->ni", HC)
        cov += 0.5 * np.einsum("nikl,njlk->nij", HC, HC)
    std = np.sqrt(np.maximum(np.diagonal(cov, axis1=1, axis2=2), 0.0))
    # the derivatives' measured error, as a shift of each standard deviation
    std_error = np.sqrt(((jac_error * sigma[:, None, :]) ** 2).sum(axis=-1))
    finite = np.isfinite(value).all(axis=1) & np.isfinite(jac).all(axis=(1, 2)) & ~bad
    if hess is not None:
        finite &= np.isfinite(hess).all(axis=(1, 2, 3))
    status = np.where(finite, np.where((std_error > _STD_TOLERANCE * std + _rounding(value))
                                       .any(axis=1), 1, 0), Status.NON_FINITE).astype(np.int8)
    failed = status == Status.NON_FINITE
    for array in (value, mean, std, cov, jac):
        array[failed] = np.nan
    if scalar:
        value, mean, std, cov, jac = value[:, 0], mean[:, 0], std[:, 0], cov[:, 0, 0], jac[:, 0]
    if single:
        value, mean, std, cov, jac, status = value[0], mean[0], std[0], cov[0], jac[0], status[0]
    worst = int(np.max(status))
    return Propagation(value=value, mean=mean, std=std, cov=cov, jac=jac,
                       status=int(status) if single else status, success=worst == 0,
                       message=_MESSAGES[worst], nfev=int(nfev))


def _rounding(value):
    """The smallest change of ``f`` a difference of values can resolve."""
    return 8.0 * _EPS * np.abs(value)


_MESSAGES = {
    0: "success",
    1: "the finite-difference derivatives could not be measured to 1e-3 of a standard "
       "deviation (f varies on a scale much finer than its parameters' size and uncertainty)",
    int(Status.NON_FINITE): "a parameter, covariance or value of f was not finite (NaN or inf)",
}
