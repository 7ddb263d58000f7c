"""Gradient descent and Lagrange multipliers, with finite-difference derivatives when none given.

:func:`gradient_descent` minimizes a scalar field by steepest descent (Armijo backtracking or a
fixed step) and can return its path. :func:`lagrange` finds stationary points of a scalar field
subject to equality constraints by Newton-Raphson on the Lagrange system
``grad f(x) = sum_i lambda_i grad g_i(x)``, ``g(x) = 0``.

Derivatives that are not given come from :mod:`fastcalc.differentiate` (all finite differences
in this module go through :func:`_gradient`, :func:`_jacobian` and :func:`_hessian`).
"""
import numpy as np
from scipy.optimize import OptimizeResult

from ._arrays import real_array, real_number
from ._evaluate import real_values, resolve
from ._status import Status, message_of
from .differentiate import gradient as _fd_gradient
from .differentiate import hessian as _fd_hessian
from .differentiate import jacobian as _fd_jacobian

__all__ = ["gradient_descent", "lagrange"]


def _gradient(f, x, args, accuracy=2):
    return _fd_gradient(f, x, args=args, accuracy=accuracy)


def _jacobian(g, x, args, accuracy=2):
    return _fd_jacobian(g, x, args=args, accuracy=accuracy)


def _hessian(f, x, args):
    return _fd_hessian(f, x, args=args)


def _point(x0):
    x = real_array(x0, "x0")
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"x0 must be a non-empty 1-D array, got shape {x.shape}")
    return np.array(x, dtype=np.float64)


def _scalar(value, name="f"):
    """``value`` as a float; a TypeError naming the function that returned it unless it is
    one real number."""
    array = real_values(value, name)
    if array.size != 1:
        raise TypeError(f"{name} must return one real number, got {type(value).__name__} "
                        f"of shape {np.shape(value)}")
    return float(array.reshape(()))


def _args(args):
    if isinstance(args, tuple):
        return args
    return tuple(args) if isinstance(args, list) else (args,)


def _positive(name, value, allow_none=False):
    if value is None and allow_none:
        return None
    value = real_number(value, name)
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return value


def _maxiter(maxiter):
    if isinstance(maxiter, bool) or not isinstance(maxiter, (int, np.integer)) or maxiter < 0:
        raise ValueError(f"maxiter must be an int >= 0, got {maxiter!r}")
    return int(maxiter)


def _vector(value, n, name):
    array = real_values(value, name)
    if array.shape != (n,):
        raise ValueError(f"{name} returned shape {array.shape}, expected ({n},)")
    return array.astype(np.float64)


def gradient_descent(f, x0, grad=None, *, step=None, maxiter=10_000, tol=1e-6, args=(),
                     callback=None, return_path=False):
    """Minimize a scalar field by steepest descent.

    Each iteration moves ``x -> x - t grad f(x)``. With ``step=None`` the step ``t`` is found by
    backtracking (Armijo): starting from twice the last accepted step (1 at first), it is
    halved until ``f`` decreases by at least ``1e-4 t |grad f|^2``. With a fixed ``step`` no
    line search is made (the course's method: too large a step diverges, giving status 3).

    Parameters
    ----------
    f : callable or scipy.LowLevelCallable
        ``f(x, *args) -> float``, ``x`` of shape ``(n,)`` (a copy of the iterate, as for
        ``grad`` and ``callback``); or a compiled scalar field
        ``double f(int n, double *x, void *user_data)``.
    x0 : array_like, shape (n,)
        Starting point (never modified).
    grad : callable, optional
        ``grad(x, *args) -> (n,)``. None: central finite differences (``2 n`` evaluations).
    step : float, optional
        Fixed step length; None: backtracking line search.
    maxiter : int, optional
        Maximum number of iterations.
    tol : float, optional
        Converged when ``max |grad f(x)| <= tol``. The line search compares values of f, so it
        cannot make progress once ``|grad f|^2 t`` is below the rounding of f (roughly
        ``|grad f| < sqrt(eps |f| L)`` for curvature ``L``); asking for less ends in status 1.
    args : tuple, optional
        Extra arguments of ``f`` and ``grad``.
    callback : callable, optional
        ``callback(x)`` after every iteration (a copy of the iterate); exceptions propagate.
    return_path : bool, optional
        Also return the iterates as ``result.path`` (shape ``(nit + 1, n)``, starting at x0).

    Returns
    -------
    result : scipy.optimize.OptimizeResult
        ``x``, ``fun``, ``jac`` (gradient at x), ``nit``, ``nfev`` (evaluations of f, those of
        finite differences included), ``njev`` (gradient evaluations), ``status`` (0 converged,
        1 maxiter or the line search could not decrease f, 3 non-finite value or gradient, or a
        gradient norm beyond the float range),
        ``success``, ``message``, and ``path`` if asked.

    Raises
    ------
    ValueError
        ``x0`` empty or not 1-D; ``step``, ``tol`` or ``maxiter`` invalid; ``grad`` returning
        the wrong shape.
    TypeError
        ``x0``, ``step`` or ``tol`` not real numbers (bools rejected); ``grad`` or ``callback``
        not callable; ``f``/``grad`` returning non-numbers (strings included).
    Exception
        Any exception raised by ``f``, ``grad`` or ``callback`` propagates unchanged.

    Notes
    -----
    Failure behaviour: never raises for a numerical failure: a non-finite ``x0``, value or
    gradient gives status 3 (``NON_FINITE``), running out of iterations or of line-search
    progress status 1; ``x`` is then the last iterate.

    Examples
    --------
    >>> import numpy as np
    >>> from fastcalc import gradient_descent
    >>> f = lambda x: (x[0] - 1.0) ** 2 + 10.0 * (x[1] + 2.0) ** 2
    >>> r = gradient_descent(f, [0.0, 0.0], tol=1e-8)
    >>> r.status, np.round(r.x, 6)
    (0, array([ 1., -2.]))
    >>> r = gradient_descent(f, [0.0, 0.0], step=0.04, maxiter=500, return_path=True)
    >>> r.success, r.path.shape[1]
    (True, 2)
    """
    x = _point(x0)
    n = x.size
    args = _args(args)
    step = _positive("step", step, allow_none=True)
    tol = _positive("tol", tol)
    maxiter = _maxiter(maxiter)
    function = resolve(f, args=args, signatures=("scalar",), name="f")
    for name, fn in (("grad", grad), ("callback", callback)):
        if fn is not None and not callable(fn):
            raise TypeError(f"{name} must be callable, got {type(fn).__name__}")
    nfev = njev = 0

    def value(point):
        nonlocal nfev
        nfev += 1
        return _scalar(function(point))     # a UserFunction: f gets its own copy of x

    def slope(point):
        nonlocal nfev, njev
        njev += 1
        if grad is not None:
            return _vector(grad(point.copy(), *args), n, "grad")
        nfev += 2 * n
        return _gradient(f, point, args)

    path = [x.copy()] if return_path else None
    fx = value(x)
    g = slope(x) if np.isfinite(fx) else np.full(n, np.nan)
    t = 1.0 if step is None else step
    nit = 0
    status = Status.MAX_ITERATIONS
    while True:
        if not (np.isfinite(fx) and np.isfinite(g).all()):
            status = Status.NON_FINITE
            break
        if np.abs(g).max() <= tol:
            status = Status.SUCCESS
            break
        if nit >= maxiter:
            break
        if step is None:
            # |g| scaled by its largest component: g @ g overflows for |g| > 1e154, and an
            # infinite |g|^2 would fail every Armijo test (and 0 * inf stall the loop below).
            g_max = float(np.abs(g).max())
            g_norm = g_max * float(np.sqrt((g / g_max) @ (g / g_max)))
            if not np.isfinite(g_norm):
                status = Status.NON_FINITE
                break
            t = min(2.0 * t, 1e300)
            # t * |g| halves each pass, so the escape test ends the search within ~2100 passes
            # (the bound only guards against a NaN in the test).
            for _ in range(2200):
                trial = x - t * g
                f_trial = value(trial)
                # (t |g|) |g| rather than t |g|^2: finite whenever the step is
                if f_trial <= fx - 1e-4 * (t * g_norm) * g_norm:    # NaN fails: backtrack
                    break
                t *= 0.5
                if not t * g_norm > 1e-16 * max(1.0, np.abs(x).max()):
                    trial = None       # the step no longer changes x: no descent possible
                    break
            else:
                trial = None
            if trial is None:
                break
        else:
            trial = x - t * g
            f_trial = value(trial)
        x, fx = trial, f_trial
        nit += 1
        g = slope(x) if np.isfinite(fx) else np.full(n, np.nan)
        if return_path:
            path.append(x.copy())
        if callback is not None:
            callback(x.copy())
    result = OptimizeResult(x=x, fun=fx, jac=g, nit=nit, nfev=nfev, njev=njev,
                            status=int(status), success=status == Status.SUCCESS,
                            message=message_of(status))
    if return_path:
        result.path = np.array(path)
    return result


def _equilibrated(matrix):
    """``matrix`` with rows, then columns, scaled by powers of two to max-norm in [1/2, 1).

    Exact (no rounding), and undoes the scaling of f and of each constraint, which multiplies
    the condition number of the KKT matrix (by ~scale^2) without making it any more singular;
    a zero row or column stays zero, so truly singular matrices stay singular.
    """
    for axis in (1, 0):
        largest = np.abs(matrix).max(axis=axis, keepdims=True)
        exponent = np.frexp(np.where(largest > 0, largest, 1.0))[1]
        matrix = np.ldexp(matrix, -exponent)
    return matrix


def _constraint_function(constraints):
    """One vector function g(x) -> (m,) from a callable or a sequence of scalar callables."""
    if callable(constraints):
        parts = (constraints,)
        single = True
    else:
        try:
            parts = tuple(constraints)
        except TypeError:
            raise TypeError("constraints must be a callable or a sequence of callables") \
                from None
        if not parts or not all(callable(c) for c in parts):
            raise TypeError("constraints must be a callable or a non-empty sequence of "
                            "callables")
        single = False

    def g(x, *extra):
        values = []
        for c in parts:
            v = real_values(c(x.copy(), *extra), "constraints")
            if v.ndim > 1 or (not single and v.ndim != 0):
                raise ValueError(f"constraints returned shape {v.shape}: a single callable "
                                 "returns a scalar or a 1-D array, each of a sequence a scalar")
            values.append(v.reshape(-1))
        return np.concatenate(values).astype(np.float64)

    return g


def lagrange(f, constraints, x0, *, args=(), tol=1e-10, maxiter=100, multipliers0=None,
             grad=None, constraints_jac=None):
    """Stationary point of ``f`` subject to equality constraints ``g_i(x) = 0``.

    Solves ``grad f(x) = sum_i lambda_i grad g_i(x)``, ``g(x) = 0`` for ``x`` and the
    multipliers ``lambda`` by Newton-Raphson on this system. Its Jacobian is the KKT matrix
    ``[[H, -J^T], [J, 0]]`` with ``H`` the Hessian of ``f - lambda . g`` (finite differences of
    values) and ``J`` the constraint Jacobian; gradients and ``J`` are 4th-order central
    differences unless given. Which stationary point (minimum, maximum or saddle on the
    constraint set) is found depends on ``x0``.

    Parameters
    ----------
    f : callable or scipy.LowLevelCallable
        ``f(x, *args) -> float`` (or a compiled scalar field); ``f``, the constraints and the
        derivatives get copies of ``x``.
    constraints : callable or sequence of callables
        ``g(x, *args)`` returning a scalar or an ``(m,)`` array, or a sequence of callables each
        returning a scalar; the constraints are ``g(x) = 0``. Fewer constraints than variables.
    x0 : array_like, shape (n,)
        Starting point (never modified).
    args : tuple, optional
        Extra arguments of ``f``, the constraints and the derivatives.
    tol : float, optional
        Converged when a Newton step changes ``x`` by at most ``tol * max(1, max|x|)`` and the
        multipliers by at most ``tol * max(1, max|lambda|)``; the returned point is the one
        after that step.
    maxiter : int, optional
        Maximum number of Newton steps.
    multipliers0 : array_like, shape (m,), optional
        Starting multipliers; default the least-squares solution of
        ``J(x0)^T lambda = grad f(x0)``.
    grad : callable, optional
        ``grad(x, *args) -> (n,)``, the gradient of f.
    constraints_jac : callable, optional
        ``constraints_jac(x, *args) -> (m, n)``, the constraint Jacobian.

    Returns
    -------
    result : scipy.optimize.OptimizeResult
        ``x``, ``multipliers`` (``lambda``, with ``grad f = sum lambda_i grad g_i``), ``fun``
        (``f(x)``), ``constraints`` (``g(x)``), ``jac`` (``grad f(x)``), ``residual``
        (max-norm of the Lagrange system at x), ``nit``, ``nfev`` (evaluations of f and g, those
        of finite differences included), ``status`` (0 converged, 1 maxiter, 2 singular KKT
        matrix, 3 non-finite values), ``success``, ``message``.

    Raises
    ------
    ValueError
        ``x0`` empty, not 1-D or not finite; not ``1 <= m < n`` constraints; constraints,
        ``grad``, ``constraints_jac`` or ``multipliers0`` of the wrong shape; invalid ``tol`` or
        ``maxiter``.
    TypeError
        ``f``, constraints or derivatives not callable or returning non-numbers (complex
        included); ``multipliers0`` or ``tol`` not real numbers.
    Exception
        Any exception raised by ``f``, the constraints or the derivatives propagates unchanged.

    Notes
    -----
    Failure behaviour: never raises for a numerical failure: status 1 (``maxiter``), 2
    (singular KKT matrix: condition number above 1e14 after its rows and columns are scaled
    by powers of two, so scaling f or a constraint does not matter) or 3 (non-finite values);
    ``x`` and ``multipliers`` are then the last iterate.

    Examples
    --------
    Extremize ``x + y`` on the unit circle (the maximum, from a start near it):

    >>> import numpy as np
    >>> from fastcalc import lagrange
    >>> r = lagrange(lambda x: x[0] + x[1], lambda x: x[0]**2 + x[1]**2 - 1.0, [1.0, 0.5])
    >>> r.status, bool(np.abs(r.x - np.sqrt(0.5)).max() < 1e-12), r.multipliers.round(12).tolist()
    (0, True, [0.707106781187])
    """
    x = _point(x0)
    if not np.isfinite(x).all():
        raise ValueError("x0 must be finite (no NaN or inf)")
    n = x.size
    args = _args(args)
    tol = _positive("tol", tol)
    maxiter = _maxiter(maxiter)
    function = resolve(f, args=args, signatures=("scalar",), name="f")
    g = _constraint_function(constraints)
    for name, fn in (("grad", grad), ("constraints_jac", constraints_jac)):
        if fn is not None and not callable(fn):
            raise TypeError(f"{name} must be callable, got {type(fn).__name__}")
    gx = g(x, *args)
    m = gx.size
    if not 0 < m < n:
        raise ValueError(f"lagrange needs 1 <= m < n constraints for n = {n} variables, "
                         f"got m = {m}")
    counts = {"nfev": 1}

    def grad_f(point):
        if grad is not None:
            return _vector(grad(point.copy(), *args), n, "grad")
        counts["nfev"] += 4 * n
        return _gradient(f, point, args, accuracy=4)

    def jac_g(point):
        if constraints_jac is not None:
            J = real_array(constraints_jac(point.copy(), *args), "constraints_jac's value")
            if J.shape != (m, n):
                raise ValueError(f"constraints_jac returned shape {J.shape}, expected ({m}, {n})")
            return J
        counts["nfev"] += 4 * n
        return _jacobian(g, point, args, accuracy=4).reshape(m, n)

    def lagrangian_hessian(point, lam):
        counts["nfev"] += 1 + n + n * n
        return _hessian(lambda p, *a: _scalar(function(p)) - lam @ g(p, *a), point, args)

    def residual(point, lam):
        gf, J, gv = grad_f(point), jac_g(point), g(point, *args)
        counts["nfev"] += 1
        return np.concatenate([gf - J.T @ lam, gv]), gf, J, gv

    if multipliers0 is None:
        J0, gf0 = jac_g(x), grad_f(x)
        if np.isfinite(J0).all() and np.isfinite(gf0).all():
            lam = np.linalg.lstsq(J0.T, gf0, rcond=None)[0]
        else:       # LAPACK must not see NaN: the residual below reports status 3
            lam = np.full(m, np.nan)
    else:
        lam = np.array(real_array(multipliers0, "multipliers0")).reshape(-1)
        if lam.shape != (m,):
            raise ValueError(f"multipliers0 must have shape ({m},), got {np.shape(multipliers0)}")
    F, gf, J, gv = residual(x, lam)
    nit = 0
    status = Status.MAX_ITERATIONS
    while True:
        if not (np.isfinite(F).all() and np.isfinite(J).all()):
            status = Status.NON_FINITE
            break
        if nit >= maxiter:
            break
        H = lagrangian_hessian(x, lam)
        if not np.isfinite(H).all():
            status = Status.NON_FINITE
            break
        kkt = np.block([[H, -J.T], [J, np.zeros((m, m))]])
        try:
            delta = np.linalg.solve(kkt, -F)
        except np.linalg.LinAlgError:
            status = Status.SINGULAR
            break
        if not np.isfinite(delta).all() or np.linalg.cond(_equilibrated(kkt)) > 1e14:
            status = Status.SINGULAR
            break
        x = x + delta[:n]
        lam = lam + delta[n:]
        nit += 1
        F, gf, J, gv = residual(x, lam)
        # x and the multipliers each relative to their own size: one multiplier of 1e12
        # must not loosen the test on x to an absolute 100
        if (np.abs(delta[:n]).max() <= tol * max(1.0, np.abs(x).max())
                and np.abs(delta[n:]).max(initial=0.0) <= tol * max(1.0, np.abs(lam).max())
                and np.isfinite(F).all()):
            status = Status.SUCCESS
            break
    fx = _scalar(function(x))
    counts["nfev"] += 1
    return OptimizeResult(x=x, multipliers=lam, fun=fx, constraints=gv, jac=gf,
                          residual=float(np.abs(F).max()), nit=nit, nfev=counts["nfev"],
                          status=int(status), success=status == Status.SUCCESS,
                          message=message_of(status))
