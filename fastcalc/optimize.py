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
from .differentiate import _steps as _fd_steps

__all__ = ["gradient_descent", "lagrange"]


def _gradient(f, x, args, accuracy=2):
    return _fd_gradient(f, x, args=args, accuracy=accuracy)


def _jacobian(g, x, args, accuracy=2):
    return _fd_jacobian(g, x, args=args, accuracy=accuracy)


def _hessian(f, x, args, **options):
    return _fd_hessian(f, x, args=args, **options)


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


_KINDS = ("any", "minimum", "maximum")
# Restarts when the stationary point found is not of the kind asked for: from x + t d for the
# (at most) two directions d of the most wrong curvature, t = each step times max(1, max|x|).
_RESTART_DIRECTIONS = 2
_RESTART_STEPS = (0.5, -0.5, 1.0, -1.0, 2.0, -2.0)


def _wanted_kind(kind):
    if not isinstance(kind, str) or kind not in _KINDS:
        raise ValueError(f"kind must be 'any', 'minimum' or 'maximum', got {kind!r}")
    return kind


def _tangent_basis(J):
    """An orthonormal basis ``(n, n - m)`` of the null space of ``J`` (the tangent space of the
    constraints) and the condition number of ``J``."""
    _, singular, vt = np.linalg.svd(J)
    with np.errstate(divide="ignore"):
        return vt[J.shape[0]:].T, singular[0] / singular[-1]


def _curvature_of_sign(H, J, sign):
    """``H`` changed on the tangent space of the constraints so that its eigenvalues there,
    ``mu``, become ``sign * max(|mu|, 1e-3 max|mu|)``: the Newton step then goes downhill
    (``sign = 1``) or uphill (-1) on f along the constraints, as far from a stationary point of
    the wanted kind as near one (where H is unchanged)."""
    tangent, _ = _tangent_basis(J)
    curvature, vectors = np.linalg.eigh(tangent.T @ H @ tangent)
    largest = np.abs(curvature).max()
    if not largest > 0:
        largest = max(1.0, np.abs(H).max())
    wanted = sign * np.maximum(np.abs(curvature), 1e-3 * largest)
    directions = tangent @ vectors
    return H + (directions * (wanted - curvature)) @ directions.T


def _second_order_test(H, error, tangent, condition):
    """Kind of a stationary point from the Hessian ``H`` of the Lagrangian, ``error`` bounding
    the error of each entry (inf: unknown).

    The eigenvalues of ``Z^T H Z`` (``Z`` = ``tangent``) are the curvatures of the Lagrangian
    along the constraint set: all positive, a strict local minimum; all negative, a maximum;
    of both signs, a saddle (neither). They are uncertain by ``|Z^T dH Z|_2 <= ||Z|^T E |Z||_F``
    (Weyl; entries of H outside the tangent space do not count), and by ``~|H| |dZ|`` from the
    error of the constraint Jacobian (taken as ``sqrt(eps)`` relative, times its condition
    number); a curvature within that of 0 decides nothing.
    """
    weight = np.abs(tangent)
    reach = weight.max(axis=1)
    unknown = ~(np.isfinite(error) & np.isfinite(H))
    if (unknown & (np.outer(reach, reach) > 0)).any():
        return {"kind": "unknown"}
    H, error = np.where(unknown, 0.0, H), np.where(unknown, 0.0, error)
    reduced = tangent.T @ H @ tangent
    curvature, vectors = np.linalg.eigh(0.5 * (reduced + reduced.T))
    tolerance = (np.sqrt(((weight.T @ error @ weight) ** 2).sum())
                 + np.sqrt(np.finfo(np.float64).eps) * condition * np.abs(H).sum(axis=1).max())
    if not np.isfinite(tolerance):
        return {"kind": "unknown"}
    verdict = {"curvature": curvature, "curvature_error": tolerance,
               "directions": tangent @ vectors}
    positive, negative = curvature > tolerance, curvature < -tolerance
    if positive.all():
        return dict(verdict, kind="minimum")
    if negative.all():
        return dict(verdict, kind="maximum")
    if positive.any() and negative.any():
        return dict(verdict, kind="saddle")
    return dict(verdict, kind="degenerate")


def _outcome(state):
    """What one Newton-Raphson run reached, in words."""
    if state["status"] != Status.SUCCESS:
        return "did not converge"
    if state["kind"] == "degenerate":
        return ("reached a degenerate stationary point (a curvature along the constraints is 0 "
                "within its error: the second-order test cannot tell)")
    if state["kind"] == "unknown":
        return "reached a stationary point of unknown kind"
    return f"reached a {state['kind']}"


def lagrange(f, constraints, x0, *, kind="any", args=(), tol=1e-10, maxiter=100,
             multipliers0=None, grad=None, constraints_jac=None):
    """Stationary point of ``f`` subject to equality constraints ``g_i(x) = 0``.

    Solves ``grad f(x) = sum_i lambda_i grad g_i(x)``, ``g(x) = 0`` for ``x`` and the
    multipliers ``lambda`` by Newton-Raphson on this system. Its Jacobian is the KKT matrix
    ``[[H, -J^T], [J, 0]]`` with ``H`` the Hessian of ``f - lambda . g`` (finite differences of
    values) and ``J`` the constraint Jacobian; gradients and ``J`` are 4th-order central
    differences unless given. Which stationary point is found depends on ``x0``; the result
    says which kind it is (``kind``), and ``kind="minimum"`` or ``"maximum"`` asks for one.

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
    kind : {"any", "minimum", "maximum"}, optional
        The stationary point wanted. ``"any"``: the one Newton-Raphson reaches from ``x0``.
        ``"minimum"`` (``"maximum"``): a strict local minimum (maximum) on the constraint set,
        the first reached by these runs: Newton-Raphson steered downhill (uphill, Notes)
        from ``x0``; plain Newton-Raphson from ``x0``, reaching ``x``; steered runs from
        ``x + t d`` along the (at most two) directions ``d`` of the most negative (positive)
        curvature at ``x``, ``t = +-0.5, +-1, +-2`` times ``max(1, max|x|)``. When none
        reaches one, the result is ``x`` with status 1 (2 if ``x`` is degenerate; its own
        if it did not converge), never 0, and ``message`` says what each run found.
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
        (max-norm of the Lagrange system at x), ``kind``, ``curvature``,
        ``curvature_error``, ``nit``, ``nfev``
        (evaluations of f and g, those of finite differences and of every run included),
        ``status`` (0 converged, 1 maxiter or no stationary point of the ``kind`` asked for,
        2 singular KKT matrix or, with a ``kind`` asked for, a degenerate point, 3 non-finite
        values), ``success``, ``message``.

        ``kind`` is the second-order test at ``x``: ``"minimum"`` / ``"maximum"`` (a strict
        local minimum / maximum of f on the constraint set), ``"saddle"`` (neither),
        ``"degenerate"`` (a curvature is 0 within its error: the test cannot tell), or
        ``"unknown"`` (status not 0, or no finite Hessian). ``curvature`` holds its
        evidence: the eigenvalues, ascending, of the Hessian of ``f - lambda . g``
        restricted to the tangent space of the constraints (an orthonormal basis of the null
        space of ``J``, from its SVD), and ``curvature_error`` a bound on their error (from
        the Hessian's error estimate, and the constraint Jacobian's taken as ``sqrt(eps)``
        relative); both NaN when ``kind`` is ``"unknown"``.

    Raises
    ------
    ValueError
        ``x0`` empty, not 1-D or not finite; not ``1 <= m < n`` constraints; constraints,
        ``grad``, ``constraints_jac`` or ``multipliers0`` of the wrong shape; invalid ``tol`` or
        ``maxiter``; ``kind`` not one of the three.
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

    The Hessian of the test extrapolates Newton's last one (step h) with one at step 2h (4th
    order), its error taken as their difference plus their rounding errors; when that leaves
    a curvature within its error of 0, the Hessian is recomputed by Richardson extrapolation
    (:func:`fastcalc.hessian`, ``method="richardson"``) with its own error estimate. The test
    costs ``1 + n + n**2`` evaluations (of f and g), more only in that case.

    With a ``kind`` asked for, the steered runs are Newton-Raphson (``maxiter`` steps each)
    whose steps see the curvature along the constraints made of the wanted sign (its
    eigenvalues ``mu -> +-max(|mu|, 1e-3 max|mu|)``): they go downhill (uphill) until near a
    stationary point of that kind, where the steps are Newton's. Where f is unbounded they
    run to ``maxiter``: up to 14 runs when none of the kind exists.

    Examples
    --------
    Extremize ``x + y`` on the unit circle (the maximum, from a start near it):

    >>> import numpy as np
    >>> from fastcalc import lagrange
    >>> r = lagrange(lambda x: x[0] + x[1], lambda x: x[0]**2 + x[1]**2 - 1.0, [1.0, 0.5])
    >>> r.status, bool(np.abs(r.x - np.sqrt(0.5)).max() < 1e-12), r.multipliers.round(12).tolist()
    (0, True, [0.707106781187])
    >>> r.kind, r.curvature.round(6).tolist()
    ('maximum', [-1.414214])

    Ask for the minimum instead (Newton-Raphson steered downhill from the same start):

    >>> r = lagrange(lambda x: x[0] + x[1], lambda x: x[0]**2 + x[1]**2 - 1.0, [1.0, 0.5],
    ...              kind="minimum")
    >>> r.status, r.kind, bool(np.abs(r.x + np.sqrt(0.5)).max() < 1e-12)
    (0, 'minimum', True)
    """
    x = _point(x0)
    if not np.isfinite(x).all():
        raise ValueError("x0 must be finite (no NaN or inf)")
    n = x.size
    args = _args(args)
    tol = _positive("tol", tol)
    maxiter = _maxiter(maxiter)
    wanted = _wanted_kind(kind)
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
    if multipliers0 is not None:
        multipliers0 = np.array(real_array(multipliers0, "multipliers0")).reshape(-1)
        if multipliers0.shape != (m,):
            raise ValueError(f"multipliers0 must have shape ({m},), got {np.shape(multipliers0)}")
    counts = {"nfev": 1, "nit": 0}

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

    def lagrangian(lam):
        return lambda p, *a: _scalar(function(p)) - lam @ g(p, *a)

    def lagrangian_hessian(point, lam, **options):
        result = _hessian(lagrangian(lam), point, args, full_output=True, **options)
        counts["nfev"] += result.nfev
        return result

    def residual(point, lam):
        gf, J, gv = grad_f(point), jac_g(point), g(point, *args)
        counts["nfev"] += 1
        return np.concatenate([gf - J.T @ lam, gv]), gf, J, gv

    def solve(x, lam, sign=0.0):
        """Newton-Raphson on the Lagrange system from (x, lam); the state at its end. With
        ``sign`` +-1 the steps see the curvature along the constraints made of that sign
        (:func:`_curvature_of_sign`): towards a minimum (+1) or maximum (-1)."""
        if lam is None:
            J0, gf0 = jac_g(x), grad_f(x)
            if np.isfinite(J0).all() and np.isfinite(gf0).all():
                lam = np.linalg.lstsq(J0.T, gf0, rcond=None)[0]
            else:       # LAPACK must not see NaN: the residual below reports status 3
                lam = np.full(m, np.nan)
        F, gf, J, gv = residual(x, lam)
        newton = None
        nit = 0
        status = Status.MAX_ITERATIONS
        while True:
            if not (np.isfinite(F).all() and np.isfinite(J).all()):
                status = Status.NON_FINITE
                break
            if nit >= maxiter:
                break
            newton = lagrangian_hessian(x, lam)
            H = newton.df
            if not np.isfinite(H).all():
                status = Status.NON_FINITE
                break
            kkt = np.block([[_curvature_of_sign(H, J, sign) if sign else H, -J.T],
                            [J, np.zeros((m, m))]])
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
        counts["nit"] += nit
        state = dict(x=x, multipliers=lam, constraints=gv, jac=gf,
                     residual=float(np.abs(F).max()), status=status, kind="unknown",
                     curvature=np.full(n - m, np.nan), curvature_error=np.nan)
        if status == Status.SUCCESS:
            state.update(classify(x, lam, J, newton))
        return state

    def classify(x, lam, J, newton):
        """The second-order test at a stationary point (:func:`_second_order_test`)."""
        tangent, condition = _tangent_basis(J)
        # Newton's last Hessian (step h, at the previous iterate) and one at step 2h: their
        # difference (3 times the h^2 error term of Newton's, with the drift of the last step)
        # bounds the error of their 4th-order extrapolation. Richardson's Hessian (5 stencils
        # or more) only when that cannot decide.
        coarse = lagrangian_hessian(x, lam, step=2.0 * _fd_steps(x, None, "central", 2, 2))
        value = newton.df + (newton.df - coarse.df) / 3.0
        error = np.where((newton.status == 0) & (coarse.status == 0),
                         np.abs(newton.df - coarse.df) + newton.error + coarse.error, np.inf)
        verdict = _second_order_test(value, error, tangent, condition)
        if verdict["kind"] in ("degenerate", "unknown"):
            fine = lagrangian_hessian(x, lam, method="richardson")
            # an entry whose table did not converge (often one at rounding level, as a 0
            # entry) keeps the error measured above, if larger
            fine_error = np.where(fine.status == 0, fine.error, np.maximum(
                fine.error, np.abs(fine.df - value) + error))
            test = _second_order_test(fine.df, fine_error, tangent, condition)
            if test["kind"] != "unknown":
                verdict = test
        return verdict

    def search(x, lam):
        """A stationary point of the kind wanted: ``(state, message)``, the state being the
        plain Newton-Raphson point from x0 when no run reaches one."""
        sign = 1.0 if wanted == "minimum" else -1.0
        # steered from x0 first: its steps go downhill (uphill) along the constraints
        steered = solve(x, lam, sign)
        if steered["kind"] == wanted:
            return steered, "converged"
        plain = solve(x, lam)
        if plain["kind"] == wanted:
            return plain, "converged"
        outcomes = [_outcome(steered)]
        what = _outcome(plain)
        if plain["status"] == Status.SUCCESS and plain["kind"] != "unknown":
            # restarts along its directions of wrong curvature (or none), the most wrong first
            curvature, directions = plain["curvature"], plain["directions"]
            order = [i for i in np.argsort(sign * curvature)
                     if not sign * curvature[i] > plain["curvature_error"]]
            scale = max(1.0, np.abs(plain["x"]).max())
            for i in order[:_RESTART_DIRECTIONS]:
                for step in _RESTART_STEPS:
                    state = solve(plain["x"] + step * scale * directions[:, i], None, sign)
                    if state["kind"] == wanted:
                        return state, (f"converged to a {wanted} from restart "
                                       f"{len(outcomes)} (Newton-Raphson from x0 {what})")
                    outcomes.append(_outcome(state))
        message = (f"no {wanted} found: Newton-Raphson from x0 {what} (the x returned); "
                   f"steered towards a {wanted} from x0, it {outcomes[0]}")
        restarts = outcomes[1:]
        if restarts:
            summary = ", ".join(f"{restarts.count(k)} {k}" for k in dict.fromkeys(restarts))
            message += (f"; of {len(restarts)} steered restarts from x along its directions of "
                        f"{'negative' if wanted == 'minimum' else 'positive'} or zero curvature, "
                        f"{summary}")
        return plain, message

    best, message = search(x, multipliers0) if wanted != "any" else (
        solve(x, multipliers0), None)
    status = best["status"]
    if message is None:
        message = message_of(status)
    elif best["kind"] != wanted and status == Status.SUCCESS:
        # a stationary point, but not of the kind asked for: never status 0
        status = Status.SINGULAR if best["kind"] == "degenerate" else Status.MAX_ITERATIONS
    fx = _scalar(function(best["x"]))
    counts["nfev"] += 1
    return OptimizeResult(x=best["x"], multipliers=best["multipliers"], fun=fx,
                          constraints=best["constraints"], jac=best["jac"],
                          residual=best["residual"], kind=best["kind"],
                          curvature=best["curvature"],
                          curvature_error=best["curvature_error"], nit=counts["nit"],
                          nfev=counts["nfev"], status=int(status),
                          success=status == Status.SUCCESS, message=message)
