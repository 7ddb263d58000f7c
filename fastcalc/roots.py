"""Newton-Raphson for one equation, millions of independent equations at once, and systems.

:func:`newton` solves ``f(x) = 0`` for a scalar ``x0``, or elementwise for an array ``x0`` (one
independent equation per element, with per-element parameters). :func:`newton_system` solves
``F(x) = 0`` for ``x`` in R^n, or N independent systems in one call.

Stopping rule of :func:`newton` (per element), checked each time f is evaluated at an iterate x:

* ``f(x) == 0`` or ``|f(x)| <= ftol``: converged (status 0);
* the step that produced x satisfied ``|step| <= tau = tol + rtol * |x|``: with an analytic
  ``fprime`` and no bracket, converged (status 0; Newton's step then estimates the distance to
  a simple root). Otherwise -- finite-difference derivative, secant, or a bracket -- a short
  step is no evidence (an estimated slope can make it short anywhere, and at a multiple root
  the distance is (m - 1) steps), so f is evaluated at a probe tau from x towards the root (the
  other end of the bracket, or where the slope points): a sign change or a zero puts a root
  within tau of x, converged, and of x and the probe the one with the smaller ``|f|`` is
  returned; otherwise the probe is the next iterate (a step). So a root where f does not
  change sign (even multiplicity) needs ``f == 0`` or ``ftol`` there. x is always returned
  with ``fun = f(x)`` evaluated there, so ``x`` and ``fun`` belong together, and an element
  whose f is NaN or inf is never reported converged;
* with a ``bracket``: the bracket (which always holds the root, x at one end) has closed to
  ``tol + rtol * |x|``: converged. A secant step below the tolerance is not taken as
  convergence there (its slope may be a chord across the bracket, meaningless near x); x moves
  by half the tolerance towards the other end instead, so the bracket closes;
* ``f(x)`` NaN or inf, or a NaN/inf derivative or step: status 3; zero derivative: status 2 (with
  a bracket, a zero or non-finite derivative or step gives a bisection step instead);
  ``maxiter`` steps taken: status 1.
"""
import queue
import warnings

import numpy as np
from scipy.optimize import OptimizeResult

from ._arrays import read_only, real_array, real_number
from ._evaluate import FunctionKind, real_values, resolve
from ._parallel import n_threads_for
from ._roots import ElementwiseBatch, Method, NewtonBatch, block_values, compiled_values, \
    newton_block, newton_compiled
from ._systems import NO_DESCENT, STALLED, TrustRegionBatch, solve_linear_systems, \
    solve_systems_compiled
from ._status import ConvergenceError, Status, message_of, messages_of
from ._threads import run_on_threads

__all__ = ["newton", "newton_system"]

_EPS = np.finfo(np.float64).eps
# Elements per chunk of a batch with vectorized f and f' (see _newton_vectorized_plain):
# 512 kB per array of x, parameters, values and NumPy temporaries, mostly in L2; 32k and 64k
# measured alike (1e6 cube roots: 135-144 ns/equation in one piece, 91-100 chunked).
_NEWTON_CHUNK = 65_536
# Elements per call of a compiled block function: its x, f, f' and parameters (32 bytes an
# element with one parameter) stay in L1/L2 between the call and the update pass.
_BLOCK_SIZE = 512
_METHODS = {"newton": Method.NEWTON, "halley": Method.HALLEY, "secant": Method.SECANT}
_SYSTEM_METHODS = ("dogleg", "newton")


def newton(f, x0, fprime=None, *, args=(), fprime2=None, tol=1.48e-8, rtol=4 * _EPS, ftol=0.0,
           maxiter=50, bracket=None, method=None, full_output=False, n_threads=None):
    """Find a root of ``f`` by Newton-Raphson: one equation, or one per element of ``x0``.

    Parameters
    ----------
    f : callable, scipy.LowLevelCallable or numba cfunc
        ``f(x, *args)``. With a scalar ``x0``, ``x`` is a float. With an array ``x0``, ``f`` must
        be vectorized elementwise: it receives a 1-D array of the still-active elements and the
        matching 1-D slices of every per-element argument, and returns an array of the same
        length (a scalar is not broadcast to all elements: ValueError, as for ``fprime``
        and ``fprime2``). Both are read-only views (modifying them raises ValueError).
        With a vectorized ``fprime`` (plain Newton, no bracket), batches of more than 65,536
        elements are solved in chunks of that size, so that the working arrays stay in
        cache, on ``n_threads`` threads: ``f`` and ``fprime`` are then called once per round
        per chunk (more, smaller calls, concurrently from several threads), never with more
        than one chunk's active elements; the results do not depend on the chunking or on
        the number of threads. A compiled ``f`` has the C signature
        ``double f(double x, int k, double *p, void *user_data)``: ``p`` points to this element's
        ``k`` parameters, i.e. the values of ``args`` for this element, in order (row i of a
        C-contiguous ``(N, k)`` array); compiled functions run without the GIL on ``n_threads``.
        A compiled *block* function ``int f(int n, const double *x, int k, const double *p,
        double *fx, double *dfx, void *user_data)`` evaluates n elements per call (p: their
        rows of the ``(N, k)`` parameters; fx, dfx: f and f' at each, dfx NULL when f' is not
        wanted; return 0, non-zero = the call failed): its loop can vectorize. Newton then
        takes f' from the same call (no ``fprime``; plain or bracketed, method "newton"),
        threads work on blocks of 512 elements and a block's finished elements leave it.
        Results equal the per-element signature's (and do not depend on the block size or
        threads), except that a failed call ends every element still active in its block
        with status 5; ``nfev`` counts calls. NaN in fx gives that element status 3.
    x0 : float or array_like
        Starting point(s). May be None when ``bracket`` is given (start at its midpoint).
    fprime : callable, optional
        Derivative ``f'(x, *args)``, of the same kind as ``f``. None: a central finite
        difference (two extra evaluations of f) with step ``cbrt(eps) * max(1, |x|)``, or the
        shorter of the last two steps if that is shorter (down to ``2**-46 |x|``), so that
        the stencil shrinks with the distance to the root (multiple roots, roots far below 1).
    args : tuple, optional
        Extra arguments. With an array ``x0`` every argument with ``np.ndim >= 1`` (any
        array-like: ndarray, list, pandas Series, ``array.array``, ...) is a per-element
        parameter, broadcast to ``x0``'s shape and converted to float64; it follows the active
        elements (use a closure to pass an array shared by all elements). Scalars are passed
        unchanged (to compiled functions they become one parameter with the same value for all).
    fprime2 : callable, optional
        Second derivative; when given, Halley's method is used.
    tol, rtol : float, optional
        Status 0 promises a root within ``tol + rtol * |x|`` of x. A step with ``|step| <= tol +
        rtol * |x_new|`` ends the iteration once ``f(x_new)`` is evaluated and finite -- with an
        analytic ``fprime`` and no bracket; otherwise once a sign change confirms it (see the
        module docstring: one more evaluation of f). Defaults ``1.48e-8`` (SciPy's) and
        ``4 eps``.
    ftol : float, optional
        ``|f(x)| <= ftol`` also ends the iteration (default 0: only an exact zero).
    maxiter : int, optional
        Maximum number of steps per element.
    bracket : (a, b), optional
        End points (scalars or arrays broadcast to ``x0``) where f has opposite signs. The
        iteration is then safeguarded: a Newton step that leaves the current bracket, or does not
        halve it fast enough, is replaced by bisection, so iterates never leave ``[a, b]``; so is
        a step from a zero or non-finite derivative. f is never evaluated outside ``[a, b]``:
        near an end the finite-difference stencil shrinks to fit (one-sided at the end
        itself) and the secant's second start is mirrored inside. No sign change, or ``x0``
        outside ``[a, b]``: status 4 (non-finite ``x0``: status 3). Costs two evaluations of
        f per element.
    method : {"newton", "halley", "secant"}, optional
        Default: "halley" if ``fprime2`` is given, else "newton". "secant" uses the previous
        iterate instead of a derivative (second starting point ``x0 (1 + 1e-4) +- 1e-4``).
    full_output : bool, optional
        Return an ``OptimizeResult`` instead of the root(s); a scalar solve then never raises.
    n_threads : int, optional
        Threads (None or -1: the process-wide setting, :func:`fastcalc.get_num_threads`)
        for compiled functions, and for the chunks of a batch with
        vectorized ``f`` and ``fprime``: those two are then called from several threads at once
        and must be thread-safe (pure NumPy functions are); pass 1 for functions that are not.
        Results do not depend on it.

    Returns
    -------
    root : float or ndarray
        When ``full_output`` is False. A scalar solve that fails raises
        :class:`~fastcalc.ConvergenceError`; a batch warns (``RuntimeWarning``) and returns the
        last iterate of the elements that failed.
    result : scipy.optimize.OptimizeResult
        When ``full_output`` is True: ``x`` (also ``root``), ``fun``, ``converged`` (also
        ``success``), ``status`` (see ``fastcalc.Status``), ``nit`` (steps), ``nfev`` (evaluations
        of f, fprime and fprime2 together), ``message``; arrays shaped like ``x0`` in a batch.

    Raises
    ------
    ConvergenceError
        Scalar ``x0`` with ``full_output=False`` when the iteration fails (any non-zero status).
    ValueError
        Invalid ``tol``, ``rtol``, ``ftol``, ``maxiter``, ``method`` or ``bracket``; ``args`` or
        ``bracket`` arrays that do not broadcast to ``x0``; ``f`` or a derivative returning the
        wrong shape; ``n_threads`` below 1 (other than -1).
    TypeError
        ``x0``, ``bracket`` or a tolerance not real numbers (a bool is not a tolerance);
        ``f``/``fprime``/``fprime2`` mixing compiled and Python callables or of the wrong
        compiled signature; ``n_threads`` not an int.
    Exception
        Any exception raised by ``f``, ``fprime`` or ``fprime2`` propagates unchanged.

    Warns
    -----
    RuntimeWarning
        Array ``x0`` with ``full_output=False`` when some elements did not converge.

    Notes
    -----
    A batch with Python functions runs in rounds: f and the derivative(s) are evaluated together
    on the active elements (one call each), then one compiled pass updates every element;
    elements that finished leave the active set and are never evaluated again. So an element
    that converges had its derivative evaluated once more at its last iterate, and
    ``nfev = (nit + 1) * (1 + derivative evaluations per step)`` (plus 2 for a bracket, 1 for
    the secant start, and one round for a probe that confirms convergence). One equation
    (scalar ``x0``) and compiled functions evaluate the derivative only when a step is taken.

    Failure behaviour: every element gets a status, 1 (``MAX_ITERATIONS``; also a root that
    could not be confirmed, e.g. a double root without ``ftol``), 2 (zero derivative), 3
    (non-finite ``x0``, ``f`` or derivative: such an element is never reported converged), 4
    (no sign change between the bracket's ends, or ``x0`` outside the bracket: the message
    says which, with the values); a failed element keeps its last iterate and never affects
    the others.

    Examples
    --------
    >>> import numpy as np
    >>> from fastcalc import newton
    >>> round(newton(lambda x: x**3 - 2.0, 1.0, lambda x: 3 * x**2), 12)
    1.25992104989
    >>> a = np.array([1.0, 8.0, 27.0])
    >>> newton(lambda x, a: x**3 - a, np.full(3, 2.0), lambda x, a: 3 * x**2, args=(a,))
    array([1., 2., 3.])
    >>> r = newton(lambda x: x**2 + 1.0, 0.0, lambda x: 2 * x, full_output=True)
    >>> r.status, r.message
    (2, 'zero derivative or singular matrix')
    >>> r = newton(lambda x: (x - 1.0)**3, 2.0, maxiter=100, full_output=True)  # f' by FD
    >>> r.status, abs(r.x - 1.0) <= 1.48e-8
    (0, True)

    A compiled block function (here Cython's, shipped for tests; numba example in the
    docs) gives f and f' for many elements per call:

    >>> from fastcalc._testfunctions import low_level
    >>> newton(low_level("cube_root_block"), np.ones(3), args=(a,))
    array([1., 2., 3.])
    >>> r = newton(np.cos, None, bracket=(0.0, 1.0), full_output=True)
    >>> r.status, r.message.split(": ")[0]
    (4, 'no sign change in the bracket [0.0, 1.0]')
    """
    method = _newton_method(method, fprime2)
    _check_tolerances(tol=tol, rtol=rtol, ftol=ftol)
    maxiter = _check_maxiter(maxiter)
    n_threads_for(n_threads)        # validated whatever the kind of f
    if not isinstance(args, tuple):
        args = tuple(args) if isinstance(args, list) else (args,)
    f_user, fprime_user, fprime2_user = _elementwise_functions(f, fprime, fprime2, method)
    x_start, shape, a_end, b_end = _starting_points(x0, bracket)
    scalar = shape == ()

    settings = (float(tol), float(rtol), float(ftol), maxiter, _METHODS[method], n_threads)
    if f_user.kind == FunctionKind.COMPILED:
        x, fun, status, nit, nfev, end_values = _newton_compiled_f(
            f_user, fprime_user, fprime2_user, x_start, args, shape, a_end, b_end, *settings,
            details=full_output or scalar)
    else:
        x, fun, status, nit, nfev, end_values = _newton_python(
            f_user.function, fprime, fprime2, x_start, args, shape, scalar, a_end, b_end,
            *settings)
    messages, reasons = None, None
    if end_values is not None:
        messages, reasons = _bracket_messages(status, x_start, a_end, b_end, *end_values)
    outcome = (x, fun, status, nit, nfev)
    if scalar:
        return _scalar_outcome(outcome, messages, full_output)
    return _batch_outcome(outcome, shape, messages, reasons, full_output)


def _newton_method(method, fprime2):
    """The method's name: checked, or the default for the derivatives given."""
    if method is None:
        method = "halley" if fprime2 is not None else "newton"
    if method not in _METHODS:
        raise ValueError(f"method must be one of {sorted(_METHODS)}, got {method!r}")
    if method == "halley" and fprime2 is None:
        raise ValueError("method='halley' needs fprime2")
    return method


def _elementwise_functions(f, fprime, fprime2, method):
    """f, fprime and fprime2 resolved (None stays None); all compiled or none."""
    f_user = resolve(f, signatures=("elementwise", "block"), name="f")
    if f_user.signature == "block":
        _check_block_call(fprime, fprime2, method)
    derivatives = [resolve(g, signatures=("elementwise",), name=name) if g is not None else None
                   for g, name in ((fprime, "fprime"), (fprime2, "fprime2"))]
    compiled = f_user.kind == FunctionKind.COMPILED
    for g in derivatives:
        if g is not None and (g.kind == FunctionKind.COMPILED) != compiled:
            raise TypeError(f"{g.name} must be compiled if and only if f is compiled")
    return f_user, *derivatives


def _check_block_call(fprime, fprime2, method):
    """A block function gives f and f' in one call: plain (or bracketed) Newton only."""
    if fprime is not None or fprime2 is not None:
        raise TypeError("fprime and fprime2 must be None when f is a compiled block function "
                        "(it computes the derivative itself, into dfx)")
    if method != "newton":
        raise ValueError(f"method={method!r} is not available for a compiled block function "
                         "f: it gives f and f', for method='newton'")


def _starting_points(x0, bracket):
    """``(x_start, shape, a_end, b_end)``: x0 (the bracket's midpoint when None) flattened to
    float64, its shape, and the bracket's ends broadcast to it (empty without a bracket)."""
    if bracket is not None:
        try:
            a_end, b_end = bracket
        except (TypeError, ValueError):
            raise ValueError("bracket must be a pair (a, b)") from None
        a_end, b_end = (real_array(v, "bracket") for v in (a_end, b_end))
    if x0 is None:
        if bracket is None:
            raise ValueError("x0 is required unless bracket is given")
        try:
            x0 = 0.5 * (a_end + b_end)
        except ValueError:
            raise ValueError(f"bracket ends of shapes {a_end.shape} and {b_end.shape} do not "
                             "broadcast together") from None
    x0_array = real_array(x0, "x0")
    shape = x0_array.shape
    x_start = np.ascontiguousarray(x0_array, dtype=np.float64).reshape(-1)
    if bracket is not None:
        a_end, b_end = (_broadcast_float(v, shape, "bracket") for v in (a_end, b_end))
    else:
        a_end = b_end = np.empty(0)
    return x_start, shape, a_end, b_end


def _newton_compiled_f(f_user, fprime_user, fprime2_user, x_start, args, shape, a_end, b_end,
                       tol, rtol, ftol, maxiter, method, n_threads, details):
    """Newton with compiled functions (no GIL, ``n_threads``); as :func:`_newton_python`, the
    last item is f at the bracket's ends where an element has status 4, or None."""
    size = x_start.shape[0]
    params = _parameter_matrix(args, shape, size)
    block = f_user.signature == "block"
    if block:
        x, fun, status, nit, nfev = newton_block(
            f_user, x_start, params, a_end, b_end, tol, rtol, ftol, maxiter, n_threads,
            details, _BLOCK_SIZE)
    else:
        x, fun, status, nit, nfev = newton_compiled(
            f_user, fprime_user, fprime2_user, x_start, params, a_end, b_end,
            tol, rtol, ftol, maxiter, method, n_threads, details=details)
    end_values = None       # f at the bracket ends, for the messages of status 4
    outside = np.flatnonzero(status == Status.OUT_OF_BOUNDS) if a_end.size else ()
    if len(outside):
        end_values = np.full((2, size), np.nan)
        values_at = block_values if block else compiled_values
        for row, end in zip(end_values, (a_end, b_end)):
            row[outside] = values_at(f_user, end, params, outside)
    return x, fun, status, nit, nfev, end_values


def _scalar_outcome(outcome, messages, full_output):
    """One equation: the root, or the OptimizeResult; ConvergenceError on failure without
    ``full_output``."""
    x, fun, status, nit, nfev = (v[0].item() for v in outcome)
    message = messages[0] if messages is not None else message_of(status)
    result = OptimizeResult(x=x, root=x, fun=fun, status=status, converged=status == 0,
                            success=status == 0, nit=nit, nfev=nfev, message=message)
    if full_output:
        return result
    if status == Status.OUT_OF_BOUNDS:
        raise ConvergenceError(f"newton failed: {message}")
    if status != Status.SUCCESS:
        raise ConvergenceError(f"newton failed: {message} "
                               f"(x={x!r}, f(x)={fun!r}, {nit} iterations)")
    return x


def _batch_outcome(outcome, shape, messages, reasons, full_output):
    """A batch: the OptimizeResult of arrays shaped like x0, or the roots with a RuntimeWarning
    counting the elements that failed, by reason."""
    if full_output:
        x, fun, status, nit, nfev = (v.reshape(shape) for v in outcome)
        converged = status == 0
        message = messages.reshape(shape) if messages is not None else messages_of(status)
        return OptimizeResult(x=x, root=x, fun=fun, status=status, converged=converged,
                              success=converged, nit=nit, nfev=nfev, message=message)
    x, _, status, _, _ = outcome       # fun, nit, nfev: None from compiled f without details
    x, status = x.reshape(shape), status.reshape(shape)
    failed = np.count_nonzero(status)
    if failed:
        kinds = reasons if reasons is not None else messages_of(status.reshape(-1))
        codes = ", ".join(f"{np.count_nonzero(kinds == k)} {k!r}"
                          for k in dict.fromkeys(kinds[status.reshape(-1) != 0]))
        warnings.warn(f"newton: {failed} of {status.size} elements did not converge ({codes}); "
                      "use full_output=True for per-element status", RuntimeWarning,
                      stacklevel=3)     # the caller of newton
    return x


_NO_SIGN_CHANGE = "no sign change in the bracket"
_OUTSIDE = "x0 outside the bracket"


def _bracket_messages(status, x0, a, b, fa, fb):
    """Per-element messages, and reasons (the messages without values), where elements with
    status 4 (found before any step) get what went wrong: no sign change of f between the
    bracket's ends, or x0 outside the bracket."""
    messages = messages_of(status).astype(object)
    reasons = messages.copy()
    for i in np.flatnonzero(status == Status.OUT_OF_BOUNDS):
        ai, bi, fai, fbi, x0i = (float(v[i]) for v in (a, b, fa, fb, x0))
        if (fai > 0) == (fbi > 0):
            reasons[i] = _NO_SIGN_CHANGE
            messages[i] = (f"no sign change in the bracket [{ai!r}, {bi!r}]: f(a) = {fai!r} "
                           f"and f(b) = {fbi!r} have the same sign")
        else:
            reasons[i] = _OUTSIDE
            messages[i] = f"x0 = {x0i!r} is outside the bracket [{ai!r}, {bi!r}]"
    return messages, reasons


def _check_tolerances(**values):
    for name, value in values.items():
        if type(value) is not float:        # (the common case needs no ABC check)
            value = real_number(value, name)
        if not 0.0 <= value < np.inf:
            raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")


def _check_maxiter(maxiter):
    if isinstance(maxiter, bool) or not isinstance(maxiter, (int, np.integer)) or maxiter < 0:
        raise ValueError(f"maxiter must be an int >= 0, got {maxiter!r}")
    return int(min(maxiter, 2**31 - 1))


def _broadcast_float(value, shape, name):
    if type(value) is np.ndarray and value.dtype == np.float64 and value.shape == shape:
        return np.ascontiguousarray(value).reshape(-1)      # (small batches: no broadcast_to)
    array = real_array(value, name)
    try:
        array = np.broadcast_to(array, shape)
    except ValueError:
        raise ValueError(f"{name} of shape {array.shape} does not broadcast to x0's shape "
                         f"{shape}") from None
    return np.ascontiguousarray(array, dtype=np.float64).reshape(-1)


def _parameter_matrix(args, shape, size):
    """The ``(N, k)`` C-contiguous parameters of compiled elementwise functions."""
    columns = [_broadcast_float(a, shape, f"args[{i}]") for i, a in enumerate(args)]
    if not columns:
        return np.empty((size, 0))
    if len(columns) == 1:
        return columns[0].reshape(size, 1)      # a view: no copy of a single parameter array
    return np.ascontiguousarray(np.stack(columns, axis=1))


def _split_args(args, shape, size):
    """Per-element array arguments as 1-D float64 rows of length N; the rest unchanged.

    Returns ``(rows, layout)``: a list of rows, and layout[i] a row index or None (argument
    passed as is).
    """
    rows, layout = [], []
    for i, a in enumerate(args):
        if isinstance(a, np.ndarray) and a.ndim == 0:
            a = a[()]
        # Any array-like of ndim >= 1 (pandas Series, array.array, range, ...) is per-element,
        # as for compiled f; scalars and other objects pass unchanged.
        try:
            ndim = np.ndim(a)
        except ValueError:
            raise ValueError(f"args[{i}] is not a rectangular array") from None
        if ndim == 0:
            layout.append(None)
            continue
        layout.append(len(rows))
        rows.append(_broadcast_float(a, shape, f"args[{i}]"))
    return rows, layout


def _newton_python(f, fprime, fprime2, x_start, args, shape, scalar, a_end, b_end,
                   tol, rtol, ftol, maxiter, method, n_threads):
    """Batch Newton for Python callables, compacted to the active elements each step."""
    size = x_start.shape[0]
    if scalar:
        rows, layout = [], [None] * len(args)
    else:
        rows, layout = _split_args(args, shape, size)
    bracket_on = a_end.shape[0] > 0
    if method == Method.NEWTON and fprime is not None and not bracket_on and not scalar:
        return *_newton_vectorized_plain(f, fprime, x_start, args, rows, layout, tol, rtol,
                                         ftol, maxiter, n_threads), None
    rows = np.stack(rows) if rows else np.empty((0, size))
    fd = fprime is None and method != Method.SECANT
    # evaluations of fprime, fprime2 (or of f for a finite difference) per round
    deriv_cost = (0 if method == Method.SECANT else 2 if fd else 1) + (method == Method.HALLEY)
    batch = ElementwiseBatch(x_start, rows, tol, rtol, ftol, maxiter, method, bracket_on, fd,
                             deriv_cost)
    params = batch.params

    def call(function, name, points):
        n = batch.n_active
        if scalar:
            return _values(function(float(points[0]), *args), n, name, scalar=True)
        # read-only views: f must not change the batch's iterates or parameters
        call_args = [a if row is None else read_only(params[row, :n])
                     for a, row in zip(args, layout)]
        return _values(function(read_only(points[:n]), *call_args), n, name)

    end_values = None
    if bracket_on:
        end_values = call(f, "f", a_end), call(f, "f", b_end)
        batch.start_bracket(a_end, b_end, *end_values)
    if method == Method.SECANT and batch.n_active:
        batch.start_secant(call(f, "f", batch.secant_points()))
    # A batch evaluates f and f' together each round (one pass over the state); one equation
    # evaluates f first and f' only if a step is taken.
    checked = scalar
    while batch.n_active:
        x = batch.x
        fx = call(f, "f", x)
        if checked and not batch.check_values(fx):
            continue        # finished, or f is wanted at a probe first
        d2f = call(fprime2, "fprime2", x) if method == Method.HALLEY else None
        if method == Method.SECANT:
            batch.iterate(fx, None, d2f, checked=checked)
        elif fprime is not None:
            batch.iterate(fx, call(fprime, "fprime", x), d2f, checked=checked)
        else:
            x_plus, x_minus = batch.fd_points(a_end, b_end) if bracket_on else batch.fd_points()
            batch.iterate(fx, None, d2f, call(f, "f", x_plus), call(f, "f", x_minus),
                          x_plus, x_minus, checked=checked)
    batch.finish()
    return (batch.x_out, batch.fun_out, batch.status_out, batch.nit_out, batch.nfev_out,
            end_values)


def _newton_vectorized_plain(f, fprime, x_start, args, rows, layout, tol, rtol, ftol, maxiter,
                             n_threads):
    """Batch Newton with vectorized f and f' (the common case): see :class:`NewtonBatch`.

    Solved in chunks of ``_NEWTON_CHUNK`` elements, each to completion: the chunk's iterates,
    parameters, f/f' values and the user's temporaries then stay in cache between f, f' and the
    update pass (much faster than streaming whole-batch arrays through memory every round).
    The chunks run on ``n_threads`` threads, each thread reusing one batch's buffers. Each
    element's iteration is independent, so results do not depend on the chunking or the
    threads; a batch no larger than one chunk is solved in one piece.
    """
    size = x_start.shape[0]
    chunk = min(size, _NEWTON_CHUNK)
    outputs = (np.empty(size), np.empty(size), np.empty(size, dtype=np.intp),
               np.empty(size, dtype=np.intp), np.empty(size, dtype=np.intp))
    idle = queue.SimpleQueue()      # batches (buffers for one chunk) not in use by a thread

    def solve_chunk(begin):
        try:
            batch = idle.get_nowait()
        except queue.Empty:
            batch = NewtonBatch(chunk, len(rows), tol, rtol, ftol, maxiter)
        end = min(begin + chunk, size)
        if chunk == size:
            batch.start(x_start, rows)
        else:
            batch.start(x_start[begin:end], [row[begin:end] for row in rows])
        while batch.n_active:
            n = batch.n_active
            x, row_values = batch.sources()
            x, *row_values = (read_only(v) for v in (x, *row_values))
            call_args = [a if row is None else row_values[row] for a, row in zip(args, layout)]
            fx = _values(f(x, *call_args), n, "f")
            df = _values(fprime(x, *call_args), n, "fprime")
            batch.iterate(fx, df)
        batch.finish(*(out[begin:end] for out in outputs))
        idle.put(batch)             # (not after an exception: its chunk is unfinished)

    run_on_threads(solve_chunk, range(0, size, max(chunk, 1)), n_threads_for(n_threads))
    x, fun, status, nit, nfev = outputs
    return x, fun, status, nit, nfev


def _values(value, n, name, scalar=False):
    """A user function's return as a C-contiguous float64 array of length n.

    A batch needs exactly one value per active element: a scalar (say, an f' written as
    ``lambda x: 2.0``) broadcast to all would give every element the same value silently.
    One equation (``scalar``) takes a number or a length-1 array."""
    array = real_values(value, name)
    if array.shape != (n,):
        if not (scalar and array.size == 1):
            raise ValueError(f"{name} returned shape {array.shape}, expected ({n},) "
                             "(one value per active element)")
        array = array.reshape(n)
    return np.ascontiguousarray(array, dtype=np.float64)


def newton_system(F, x0, jac=None, *, args=(), tol=1.48e-8, rtol=4 * _EPS, ftol=0.0,
                  maxiter=100, vectorized=False, n_threads=None, per_system=None,
                  method="dogleg", sparsity=None):
    """Solve ``F(x) = 0``, ``x`` in R^n, by Newton-Raphson globalised by a trust region (or a
    line search); or N such systems at once.

    ``method="dogleg"`` (default): Powell's dogleg trust region of MINPACK's hybrj
    (``scipy.optimize.root(method="hybr")``), with the exact or finite-difference Jacobian
    at every accepted point instead of Broyden updates. Each step minimises ``||F + J s||``
    within a region ``||D s|| <= delta`` (D: the largest column norms of J so far) on the path
    between the steepest-descent and the Newton step (LU by LAPACK ``dgesv``); ``delta``
    grows or shrinks with the ratio of the actual to the predicted reduction of ``||F||``. A
    singular or ill-conditioned Jacobian (at ``x0`` or on the way) does not end the solve: the
    step turns towards steepest descent of ``||F||^2``. Near a regular root the steps are
    Newton steps. ``method="newton"``: each step solves ``J(x) s = -F(x)`` (LAPACK ``dgesv``)
    and backtracks ``x + t s`` with ``t = 1, 1/2, 1/4, ...`` until ``||F||^2`` decreases
    (Armijo condition); a singular Jacobian ends the solve (status 2). Cheaper per step, but
    a bad start or a singular J is fatal more often: on the More-Garbow-Hillstrom problems
    from x0, 10 x0 and 100 x0 (``tests/test_systems_mgh.py``) the dogleg solves more (see
    ``python -m fastcalc bench``, area ``systems``).

    Parameters
    ----------
    F : callable, scipy.LowLevelCallable or numba cfunc
        The system. Python: ``F(x, *args)`` with ``x`` of shape ``(n,)`` returning ``(n,)``.
        Vectorized (``vectorized=True``): ``F(X, *args)`` with ``X`` of shape ``(n, k)``, column
        ``j`` being system j's point, returning ``(n, k)``; it is called once per evaluation with
        the still-active systems only. Compiled: the vector-field signature
        ``int F(int n, double *x, int m, double *out, void *user_data)`` (``m == n``, 0 = success),
        run without the GIL over the systems on ``n_threads``. A Python ``F`` gets a copy of
        ``x``; a vectorized one a read-only ``X``; per-system argument slices are read-only.
    x0 : array_like, shape (n,) or (N, n)
        Starting point of one system, or of N independent systems (one per row).
    jac : callable, optional
        Jacobian ``J[i, j] = dF_i/dx_j``. Python: ``(n, n)``; vectorized: ``(n, n, k)`` for
        ``X`` of shape ``(n, k)``; compiled: the vector-field signature with ``m == n * n``,
        writing J row-major. None: central finite differences (``2 n`` evaluations of F).
    args : tuple, optional
        Extra arguments of F and jac (not for compiled functions). With N systems, a
        per-system argument is sliced on its last axis to the systems being evaluated (like
        the columns of ``X``); other arguments pass unchanged. Which arguments are per-system:
        see ``per_system`` -- by default every ndarray whose last axis has length N, so a
        shared coefficient vector of length N (e.g. ``n == N``) would be cut up too: pass
        ``per_system`` then.
    tol, rtol : float, optional
        Converged when the full Newton step ``s`` from x has ``max|s| <= tol + rtol *
        max|x_new|``, ``x_new`` the point returned (``newton``: the line search's;
        ``dogleg``: ``x + s``, or x if F is no smaller there). ``x`` and ``fun = F(x)``
        belong together. A small damped step ``t s`` or a small trust region is not
        convergence: near a minimum of ``||F||`` that is no root the iteration ends with
        status 2 (no descent possible) or 1. Neither is a singular Jacobian's step, which is
        long.
    ftol : float, optional
        Also converged when ``max|F(x)| <= ftol`` (default 0: only an exact zero).
    maxiter : int, optional
        Maximum number of steps per system (Newton: line searches; dogleg: trial steps,
        accepted or not).
    vectorized : bool, optional
        Whether a Python ``F`` (and ``jac``) takes all points at once, as above.
    n_threads : int, optional
        Threads for compiled F (None or -1: the process-wide setting,
        :func:`fastcalc.get_num_threads`; validated for every kind of F). Results do
        not depend on it.
    per_system : bool or sequence of bool, optional
        Which of ``args`` are per-system (N systems only): one flag per argument, or one for
        all. A per-system argument must be an ndarray whose last axis has length N. None
        (default): the ndarrays whose last axis has length N.
    method : {"dogleg", "newton"}, optional
        Globalisation: Powell's dogleg trust region (default) or a backtracking line search
        along the Newton step, as above.
    sparsity : array_like or scipy.sparse matrix, shape (n, n), optional
        Non-zero pattern of the Jacobian of ONE large system (``x0`` of shape ``(n,)``):
        the Jacobian is then a grouped central-difference estimate (``2 * groups``
        evaluations of F per step, :func:`fastcalc.group_columns`; a vectorized F gets them
        in one call) or ``jac(x, *args)`` returning a scipy.sparse (or dense) matrix, and
        each step is solved by SuperLU (:func:`scipy.sparse.linalg.splu`) or LAPACK's banded
        solver; the globalisation is the line search of ``method="newton"`` whatever
        ``method`` says, with the same stopping rules, statuses and fields. ``n_threads`` and ``per_system`` are
        not used; a compiled ``jac`` is not supported.

    Returns
    -------
    result : scipy.optimize.OptimizeResult
        ``x``, ``fun`` (F at x), ``status`` (0 converged, 1 maxiter, 2 singular Jacobian or no
        descent possible (``newton``), or ``||F||`` stopped decreasing (``dogleg``: a
        stationary point of ``||F||`` that is no root), 3 non-finite F or J),
        ``success``/``converged``, ``nit``, ``nfev`` (evaluations of F, plus one per analytic
        Jacobian or 2 n per finite-difference one), ``message`` (status 2 says which and names
        the point, e.g. ``'singular Jacobian at x = [0., 1.]'``). With N systems every field
        has a leading axis N (``message`` an object array of N messages, status 2 saying
        ``'... at this system's x'``: its row of ``x``).

    Raises
    ------
    ValueError
        ``x0`` not of shape ``(n,)`` or ``(N, n)``; invalid tolerances or ``maxiter``; ``F`` or
        ``jac`` returning the wrong shape; ``n_threads`` below 1 (other than -1); an unknown
        ``method``.
    TypeError
        ``x0`` or a tolerance not real numbers (a bool is not a tolerance); ``F``/``jac``
        mixing compiled and Python callables or of the wrong compiled signature;
        ``n_threads`` not an int.
    Exception
        Any exception raised by ``F`` or ``jac`` propagates unchanged.

    Notes
    -----
    Failure behaviour: never raises for a numerical failure: ``status`` 1 (``maxiter``),
    2 (``newton``: singular Jacobian or no descent possible; ``dogleg``: ``||F||`` stopped
    decreasing -- the trust region shrank to rounding level, or ten steps in a row reduced
    ``||F||`` by less than 0.1% -- away from a root), 3 (non-finite ``x0``, ``F`` or
    ``J``; a compiled ``F`` returning non-zero counts as non-finite; a non-finite F at a
    trial point only shrinks the trust region or the line search step). With N systems each
    has its own status and a failing system never affects the others.

    Examples
    --------
    >>> import numpy as np
    >>> from fastcalc import newton_system
    >>> F = lambda x: np.array([x[0]**2 + x[1]**2 - 4.0, np.exp(x[0]) + x[1] - 1.0])
    >>> r = newton_system(F, [1.0, -1.5])
    >>> r.status, np.round(r.x, 6)
    (0, array([ 1.004169, -1.729637]))
    >>> X0 = np.array([[1.0, -1.5], [-2.0, 1.0]])
    >>> FX = lambda X: np.stack([X[0]**2 + X[1]**2 - 4.0, np.exp(X[0]) + X[1] - 1.0])
    >>> np.round(newton_system(FX, X0, vectorized=True).x, 6)
    array([[ 1.004169, -1.729637],
           [-1.816264,  0.837368]])
    >>> F = lambda x: np.array([x[0] * x[1], x[0] - 1.0])
    >>> J = lambda x: np.array([[x[1], x[0]], [1.0, 0.0]])     # singular where x[0] = 0
    >>> r = newton_system(F, [0.0, 2.0], J)                    # the dogleg gets past it
    >>> r.status, np.round(r.x, 6)
    (0, array([1., 0.]))
    >>> r = newton_system(F, [0.0, 2.0], J, method="newton")
    >>> r.status, r.message
    (2, 'singular Jacobian at x = [0., 2.]')
    """
    _check_tolerances(tol=tol, rtol=rtol, ftol=ftol)
    maxiter = _check_maxiter(maxiter)
    n_threads_for(n_threads)        # validated whatever the kind of F
    if not (isinstance(method, str) and method in _SYSTEM_METHODS):
        raise ValueError(f"method must be one of {_SYSTEM_METHODS}, got {method!r}")
    trust_region = method == "dogleg"
    if not isinstance(args, tuple):
        args = tuple(args) if isinstance(args, list) else (args,)
    if sparsity is not None:
        from ._sparse_newton import newton_sparse_system   # (it builds on this module)
        return newton_sparse_system(F, x0, jac, sparsity=sparsity, args=args, tol=tol,
                                    rtol=rtol, ftol=ftol, maxiter=maxiter, vectorized=vectorized)
    x0_array = real_array(x0, "x0")
    if x0_array.ndim not in (1, 2):
        raise ValueError(f"x0 must have shape (n,) or (N, n), got {x0_array.shape}")
    if x0_array.shape[-1] == 0:
        raise ValueError(f"x0 must have at least one unknown (n >= 1), got shape "
                         f"{x0_array.shape}")
    single = x0_array.ndim == 1
    X0 = np.ascontiguousarray(np.atleast_2d(x0_array), dtype=np.float64)
    F_user = resolve(F, args=args, vectorized=vectorized, signatures=("vector",), name="F")
    jac_user = None if jac is None else resolve(jac, args=args, vectorized=vectorized,
                                                signatures=("vector",), name="jac")
    compiled = F_user.kind == FunctionKind.COMPILED
    if jac_user is not None and (jac_user.kind == FunctionKind.COMPILED) != compiled:
        raise TypeError("jac must be compiled if and only if F is compiled")
    per_system = _per_system_flags(per_system, args, single, X0.shape[0])
    if compiled:
        x, fun, status, nit, nfev = solve_systems_compiled(
            F_user, jac_user, X0, float(tol), float(rtol), float(ftol), maxiter, n_threads,
            trust_region)
    else:
        solver = _SystemSolver(F, jac, X0, args, single, vectorized, tol, rtol, ftol, maxiter,
                               per_system)
        x, fun, status, nit, nfev = solver.trust_region() if trust_region else solver.solve()
    message = _system_messages(x, status, single)
    status[(status == NO_DESCENT) | (status == STALLED)] = Status.SINGULAR
    if single:
        x, fun = x[0], fun[0]
        status, nit, nfev, message = int(status[0]), int(nit[0]), int(nfev[0]), message[0]
    converged = status == 0
    return OptimizeResult(x=x, fun=fun, status=status, success=converged, converged=converged,
                          nit=nit, nfev=nfev, message=message)


def _system_messages(X, status, single):
    """Per-system messages; the three causes of status 2 (``status`` still holds the kernels'
    NO_DESCENT and STALLED codes) are told apart. One system's message names the point where
    the iteration stopped; in a batch it is that system's row of ``x`` (formatting thousands
    of points cost more than the solve)."""
    kernel_codes = (status == NO_DESCENT) | (status == STALLED)
    messages = messages_of(np.where(kernel_codes, Status.SINGULAR, status)).astype(object)
    for code, text, after in ((Status.SINGULAR, "singular Jacobian", ""),
                              (NO_DESCENT, "no step along the Newton direction decreases ||F||",
                               " (a local minimum of ||F|| that is no root)"),
                              (STALLED, "||F|| stopped decreasing",
                               " (a stationary point of ||F||, e.g. a local minimum, that is "
                               "no root)")):
        rows = status == code
        if rows.any():
            point = f"x = {_point(X[0])}" if single else "this system's x"
            messages[rows] = f"{text} at {point}{after}"
    return messages


def _point(x):
    return np.array2string(np.asarray(x), separator=", ", threshold=8, edgeitems=3,
                           floatmode="unique")


class _SystemSolver:
    """Damped Newton-Raphson (``solve``) or the dogleg (``trust_region``) on the active
    systems, Python F (vectorized or one call per system); the linear algebra runs in the
    compiled kernels (one LAPACK loop; the dogleg's per-system algorithm)."""

    def __init__(self, F, jac, X0, args, single, vectorized, tol, rtol, ftol, maxiter,
                 per_system):
        self.F, self.jac, self.args = F, jac, args
        self.vectorized = vectorized
        self.N, self.n = X0.shape
        self.tol, self.rtol, self.ftol, self.maxiter = tol, rtol, ftol, maxiter
        self.per_system = per_system
        self.X = X0.copy()
        self.fun = np.full((self.N, self.n), np.nan)
        self.status = np.full(self.N, -1, dtype=np.intp)
        self.nit = np.zeros(self.N, dtype=np.intp)
        self.nfev = np.zeros(self.N, dtype=np.intp)

    def _args_for(self, systems):
        # read-only: a system's slice of a per-system argument is a view of the caller's array
        return [read_only(a[..., systems]) if per else a
                for a, per in zip(self.args, self.per_system)]

    def values(self, points, systems):
        """F at ``points`` (k, n), row j belonging to system ``systems[j]`` -> (k, n)."""
        k, n = points.shape
        if self.vectorized:     # (a read-only view: points may be self.X)
            value = np.asarray(self.F(read_only(points.T), *self._args_for(systems)))
            return _checked(value, (n, k), "F", "F(X) for X of shape (n, k)").T
        out = np.empty((k, n))
        for j in range(k):
            args = self._args_for(systems[j])
            out[j] = _checked(np.asarray(self.F(points[j].copy(), *args)), (n,), "F", "F(x)")
        return out

    def jacobians(self, points, values, systems):
        """Jacobians at ``points`` (k, n) -> (k, n, n), and the F evaluations it cost each."""
        k, n = points.shape
        if self.jac is not None:
            if self.vectorized:
                value = np.asarray(self.jac(read_only(points.T), *self._args_for(systems)))
                J = _checked(value, (n, n, k), "jac", "jac(X) for X of shape (n, k)")
                return np.moveaxis(J, 2, 0), 1
            J = np.empty((k, n, n))
            for j in range(k):
                value = np.asarray(self.jac(points[j].copy(), *self._args_for(systems[j])))
                J[j] = _checked(value, (n, n), "jac", "jac(x)")
            return J, 1
        # Central differences: all 2 n shifted copies of every point in one evaluation.
        h = np.float64(6.055454452393343e-06) * np.maximum(1.0, np.abs(points))
        h = (points + h) - points
        shifted = np.repeat(points[None, None, :, :], 2, axis=0).repeat(n, axis=1)  # (2, n, k, n)
        idx = np.arange(n)
        shifted[0, idx, :, idx] += h.T
        shifted[1, idx, :, idx] -= h.T
        flat = shifted.reshape(2 * n * k, n)
        F_shift = self.values(flat, np.tile(systems, 2 * n)).reshape(2, n, k, n)
        # J[s, i, j] = (F_i(x + h_j e_j) - F_i(x - h_j e_j)) / (2 h_j)
        J = (F_shift[0] - F_shift[1]) / (2.0 * h.T)[:, :, None]     # (j, s, i)
        return np.ascontiguousarray(J.transpose(1, 2, 0)), 2 * n

    def finish(self, systems, code):
        self.status[systems] = code

    def trust_region(self):
        """The dogleg: the kernel's TrustRegionBatch decides, this loop evaluates F and J
        (all systems that need them in one call each)."""
        f0 = np.ascontiguousarray(self.values(self.X, np.arange(self.N)), dtype=np.float64)
        batch = TrustRegionBatch(self.X, f0, self.tol, self.rtol, self.ftol, self.maxiter)
        while True:
            systems = batch.jacobians_needed()
            if systems.size:
                points = batch.x[systems]
                J, cost = self.jacobians(points, None, systems)
                batch.factor(systems, np.ascontiguousarray(J, dtype=np.float64), cost)
            systems, trials = batch.propose()
            if not systems.size:
                break
            batch.assess(systems, np.ascontiguousarray(self.values(trials, systems),
                                                       dtype=np.float64))
        return batch.x, batch.fun, batch.status, batch.nit, batch.nfev

    def solve(self):
        n = self.n
        active = np.arange(self.N)
        Fx = self.values(self.X, active)
        self.nfev += 1
        self.fun[:] = Fx
        bad = ~np.isfinite(Fx).all(axis=1)
        self.finish(active[bad], Status.NON_FINITE)
        active = active[~bad]
        phi = 0.5 * np.einsum("ij,ij->i", Fx, Fx)
        while active.size:
            Fa = self.fun[active]
            done = np.abs(Fa).max(axis=1) <= self.ftol
            self.finish(active[done], Status.SUCCESS)
            out = ~done & (self.nit[active] >= self.maxiter)
            self.finish(active[out], Status.MAX_ITERATIONS)
            active = active[~done & ~out]
            if not active.size:
                break
            Xa = self.X[active]
            J, cost = self.jacobians(Xa, self.fun[active], active)
            self.nfev[active] += cost
            bad = ~np.isfinite(J).all(axis=(1, 2))
            self.finish(active[bad], Status.NON_FINITE)
            active, Xa, J = active[~bad], Xa[~bad], J[~bad]
            # dgesv wants column-major matrices: pass each J transposed (row-major J^T).
            lu = np.ascontiguousarray(J.transpose(0, 2, 1))
            step = np.ascontiguousarray(-self.fun[active])
            info = solve_linear_systems(lu, step)
            bad = (info != 0) | ~np.isfinite(step).all(axis=1)
            self.finish(active[bad], Status.SINGULAR)
            active, Xa, step = active[~bad], Xa[~bad], step[~bad]
            if not active.size:
                break
            # Backtracking line search on ||F||^2, all searching systems evaluated together.
            t = np.ones(active.size)
            accepted = np.zeros(active.size, dtype=bool)
            X_new = Xa.copy()
            F_new = np.empty_like(Xa)
            searching = np.arange(active.size)
            for _ in range(41):
                trial = Xa[searching] + t[searching, None] * step[searching]
                F_trial = self.values(trial, active[searching])
                self.nfev[active[searching]] += 1
                phi_trial = 0.5 * np.einsum("ij,ij->i", F_trial, F_trial)
                with np.errstate(invalid="ignore"):
                    ok = np.isfinite(F_trial).all(axis=1) & (
                        phi_trial <= (1.0 - 2e-4 * t[searching]) * phi[active[searching]])
                good = searching[ok]
                X_new[good], F_new[good] = trial[ok], F_trial[ok]
                accepted[good] = True
                searching = searching[~ok]
                if not searching.size:
                    break
                t[searching] *= 0.5
            self.nit[active] += 1
            self.finish(active[~accepted], NO_DESCENT)
            active, Xa, X_new, F_new, step = (v[accepted]
                                              for v in (active, Xa, X_new, F_new, step))
            # The full Newton step, not the damped one: near a minimum of ||F|| that is no
            # root, s is large but t s tiny, and that must not count as convergence.
            step_norm = np.abs(step).max(axis=1)
            self.X[active] = X_new
            self.fun[active] = F_new
            phi[active] = 0.5 * np.einsum("ij,ij->i", F_new, F_new)
            small = step_norm <= self.tol + self.rtol * np.abs(X_new).max(axis=1)
            self.finish(active[small], Status.SUCCESS)
            active = active[~small]
        return self.X, self.fun, self.status, self.nit, self.nfev


def _per_system_flags(per_system, args, single, N):
    """Whether each of ``args`` is sliced per system (see newton_system's ``per_system``)."""
    if per_system is None:      # arrays whose last axis has length N (several systems only)
        return [not single and isinstance(a, np.ndarray) and a.ndim >= 1 and a.shape[-1] == N
                for a in args]
    flags = [per_system] * len(args) if isinstance(per_system, (bool, np.bool_)) \
        else list(per_system) if isinstance(per_system, (list, tuple)) else None
    if flags is None or len(flags) != len(args) or \
            not all(isinstance(v, (bool, np.bool_)) for v in flags):
        raise ValueError(f"per_system must be a bool or one bool per argument ({len(args)}), "
                         f"got {per_system!r}")
    for i, (a, per) in enumerate(zip(args, flags)):
        if per and not single and not (isinstance(a, np.ndarray) and a.ndim >= 1
                                       and a.shape[-1] == N):
            raise ValueError(f"args[{i}] is per-system, so it must be an ndarray whose last "
                             f"axis has length N = {N}, got {type(a).__name__} of shape "
                             f"{np.shape(a)}")
    return [bool(per) and not single for per in flags]


def _checked(value, shape, name, what):
    value = real_values(value, name)
    if value.shape != shape:
        raise ValueError(f"{name} returned shape {value.shape}, expected {shape} ({what})")
    return value
