"""Finite-difference calculus: derivatives, gradients, Jacobians, Hessians, Taylor polynomials.

Every routine builds a *plan* (the points to evaluate and the weights that combine their values),
evaluates the user function on all points at once (one call for a vectorized function, a ``nogil``
loop for a compiled one) and combines the values in a compiled kernel
(:mod:`fastcalc._differentiate`).

Methods
-------
``"central"``
    Central differences, ``accuracy`` 2, 4, 6 or 8 (order of the truncation error).
``"forward"``, ``"backward"``
    One-sided differences, ``accuracy`` 1 to 4.
``"complex"``
    Complex step ``Im f(x + ih) / h``: first derivatives exact to rounding. ``f`` must accept
    complex input; compiled callables cannot (they are real by signature). The default step is
    ``1e-100 |x|`` (``1e-100`` at ``x = 0``, at least the smallest normal number).
``"richardson"``
    Central differences at the steps ``h, h/2, h/4, ...`` extrapolated (Romberg); the reported
    error estimate comes from the extrapolation table plus the rounding error. The table is a
    window of 6 steps that slides to smaller steps (down to ``h / 2**29``) until every
    difference of its first column shrinks at the rate of the stencil (or is at rounding
    level); if the budget ends first, the component gets status 1 (``MAX_ITERATIONS``).
    For :func:`derivative` of order 2 to 4 and :func:`hessian`, a converged table is also
    checked against one more difference at ``2**-0.5`` times its smallest step: steps near
    multiples of the period of an oscillation (``sin`` at ``|x| ~ 1e8``) make a table converge
    perfectly to an aliased, wrong value, which the incommensurate step exposes; such a table
    slides on (status 1 if the budget ends). First derivatives (:func:`derivative`,
    :func:`gradient`, :func:`jacobian`) are not cross-checked (one more stencil per element
    on the commonest workload): they can still alias for oscillating functions at
    ``|x| >~ 1e6``. The rounding error counted includes that of the points ``x + s h``
    themselves (``|f'|`` times their rounding, which dominates at large ``|x|``).

Steps are relative by default, ``h = c * max(1, |x|)`` with ``c`` minimizing truncation plus
rounding error of the stencil, except that above ``|x| = 10`` the step is at most
``max(10 c, c_rel |x|)`` with ``c_rel**order = 1e-4``: a relative step suits functions whose
scale grows with ``|x|`` (``log``, ``x**k``: rounding error ~1e-12 or less at any ``|x|``),
but for functions of unit scale (``sin``, ``exp``) a step that is a sizeable fraction of
``|x|`` is useless, and the large ``c`` of high accuracies made it so (h = 18 at x = 1000 for
accuracy 8). The limit only binds when ``c > c_rel`` (high accuracies and orders, and the
largest ``"richardson"`` step; accuracy-2 first derivatives keep ``c * max(1, |x|)``
exactly). Limits of the rule: a unit-scale function far from 0 gets steps too large for it:
first derivatives at ``|x| >> 1e3``, and already at ``|x| ~ 10 to 100`` for orders 2 to 4 at
accuracy 6 or 8 (the order-3, accuracy-8 derivative of ``sin`` at 100 is 100% off, the
order-4 one of ``exp`` at 20 10x); so do functions varying on scales much below 1 near
``|x| <= 1``. There, pass ``step=`` or use ``"richardson"``, which measures its error and
slides to smaller steps; ``full_output=True`` says where (status 1, below).

Error estimates (``full_output=True``). The fixed stencils (central, forward, backward, and
the Hessian's) are evaluated at four more steps, ``h/2, h/4, h/8, h/sqrt(2)`` (so full_output
costs 5x the evaluations; the plain call is unchanged and returns the same values). Their
error estimate is the rounding error plus twice the truncation error
``|D(h) - D(h/2)| 2**p / (2**p - 1)`` (``p`` the accuracy). It is trusted only when the
differences of ``D(h), ..., D(h/8)`` shrink at the stencil's rate (or are at rounding level)
and ``D(h/sqrt(2))`` is the value that rate predicts (a step near multiples of the period of
an oscillation converges to an aliased value); a Hessian cross entry also shares the doubts
of its two diagonal entries. Where the check fails (a step beyond the scale of f: ``sin`` at
``1e8``, ``sqrt`` at ``1e-6`` with a bound at 0), the component keeps its value with status 1
(``MAX_ITERATIONS``): the value and its estimate are not to be trusted; pass a smaller
``step=`` or use ``"richardson"``. ``"complex"`` reports the rounding error only (its
truncation, ``h**2 |f'''| / 6`` with ``h = 1e-100 |x|``, is nil), assuming that ``f``
computes its imaginary part to a few ulps (NumPy's complex power does not: 36 ulps for
``x**2.5`` at 1e-8). ``python benchmarks/audit_error_estimates.py`` measures how often a
status-0 estimate is below the actual error, on 435 cases (elementary functions at points from
1e-8 to 1e8, with and without bounds).

Steps are made exactly representable (``(x + h) - x == h``). ``step=`` gives absolute steps
(for ``"richardson"``: the largest step).

A component whose stencil meets a non-finite value is recomputed, whatever the method, with
accuracy-2 one-sided differences extrapolated like ``"richardson"`` (from the method's step,
sliding to smaller steps until the table converges), the side without the bad value first: a
non-finite value within a step of ``x`` means an edge of the domain or a singularity nearby,
where a single one-sided difference at that step can be 100% wrong (``log`` near 0). Such a
component gets the extrapolation's error estimate (truncation + rounding), status 1
(``MAX_ITERATIONS``) if its table does not converge, and only if both sides fail is it NaN
with status 3 (:class:`fastcalc.Status` ``NON_FINITE``). ``bounds=(lb, ub)`` keeps every
evaluation inside by switching components near a bound to a one-sided stencil of the same
accuracy as the central one (accuracy-2 one-sided differences, extrapolated, for
``"richardson"``). Where no stencil fits at the step (tight bounds on both sides), the step
shrinks: to the largest central one that fits if its rounding error is the smaller, else to
the largest one-sided one.
"""
import math
import warnings
from contextlib import contextmanager
from functools import lru_cache, wraps

import numpy as np
from numpy.polynomial import Polynomial
from scipy.optimize import OptimizeResult

from ._arrays import read_only, real_array
from ._differentiate import (axis_differences, build_points, combine, compiled_values,
                             elementwise_combine, elementwise_values, point_shifts,
                             relative_steps, romberg, stencil, unconverged_columns)
from ._evaluate import FunctionKind, real_values, resolve
from ._parallel import n_threads_for
from ._status import Status, messages_of

__all__ = ["DifferentiationResult", "check_grad", "derivative", "gradient", "hessian",
           "jacobian", "taylor"]

_EPS = np.finfo(np.float64).eps


# Library arithmetic on points and differences (x + h overflowing near DBL_MAX, inf - inf in a
# table) must not raise NumPy warnings: the results are checked for finiteness instead. User
# functions are never called under it, so their warnings stay the caller's.
def _quiet():
    return np.errstate(all="ignore")


def _quietly(function):
    """``function`` run under :func:`_quiet` (pure library arithmetic only)."""
    @wraps(function)
    def quiet(*args, **kwargs):
        with _quiet():
            return function(*args, **kwargs)
    return quiet


_ACCURACIES = {"central": (2, 4, 6, 8), "forward": (1, 2, 3, 4), "backward": (1, 2, 3, 4)}
_METHODS = ("central", "forward", "backward", "complex", "richardson")
_OPPOSITE = {"forward": "backward", "backward": "forward"}
# Richardson: number of halvings of the step, and the largest step (relative) per derivative order.
_RICHARDSON_LEVELS = 6
# Step budget of the adaptive tables: the window of _RICHARDSON_LEVELS steps slides down to at
# most h / 2**(_RICHARDSON_MAX_LEVELS - 1).
_RICHARDSON_MAX_LEVELS = 30
_RICHARDSON_STEP = {1: 2.0 ** -3, 2: 2.0 ** -2, 3: 2.0 ** -1, 4: 2.0 ** -1}
_COMPLEX_STEP = 1e-100
# Safety factor on Richardson's error estimate (the extrapolation difference underestimates the
# error when the table has not reached its asymptotic regime) and function-rounding allowance.
_RICHARDSON_SAFETY = 4.0
_ROUNDING_ULPS = 4.0
# With full_output, a fixed stencil's value at h is checked against the same stencil at these
# steps (factors of h, see _truncation): h/2, h/4, h/8 for its rate of convergence, and
# h/sqrt(2), incommensurate with them, against aliasing. With h/2, h/4 alone (one ratio)
# steps far beyond the scale of f passed by chance (sin at 1e8, h = 600), with h/8 (two) they
# still did for 1% of the cases, and steps near multiples of the period of an oscillation
# (sin at 1e6: 9.04 periods at h/8) converge to an aliased value; h/sqrt(2) instead of h/8
# left 0.3% of them.
_CHECK_STEPS = np.array([1.0, 0.5, 0.25, 0.125, 2.0 ** -0.5])
_TRUNCATION_SAFETY = 2.0      # on the leading-term truncation estimate from D(h) - D(h/2)


class DifferentiationResult(OptimizeResult):
    """Result of a finite-difference routine called with ``full_output=True``.

    Attributes
    ----------
    df : ndarray
        The derivative (gradient, Jacobian, Hessian).
    error : ndarray
        Error estimate of each entry, truncation + rounding: from the extrapolation table for
        ``"richardson"`` and the one-sided fallback after a non-finite value, from the same
        stencil at four smaller steps for the fixed stencils (module documentation); the
        rounding error alone for ``"complex"``.
    status : ndarray of int
        Per component: 0 success, 1 a Richardson table (or extrapolated fallback) that did
        not converge, or a fixed stencil whose values at ``h, h/2, h/4, h/8, h/sqrt(2)`` do
        not converge at its rate (its value and error estimate are unreliable), 3 a non-finite
        value that no stencil could avoid.
    success : bool
        True when every status is 0.
    nfev : int
        Number of function evaluations (points; a vectorized call counts its columns).
    message : str
        Message of the worst status.
    """


def _result(df, error, status, nfev):
    status = np.asarray(status, dtype=np.int8)
    worst = int(status.max()) if status.size else 0
    return DifferentiationResult(df=df, error=error, status=status, success=worst == 0,
                                 nfev=int(nfev), message=str(messages_of(worst)))


# --------------------------------------------------------------------------------------------
# validation

def _check_point(x, name="x"):
    """``x`` as a finite, non-empty 1-D float64 array (read-only views are fine: never written)."""
    if type(x) is np.ndarray and x.dtype == np.float64 and x.ndim == 1 and x.size \
            and x.flags.c_contiguous and np.isfinite(x.sum()):
        return x
    arr = real_array(x, name)
    if arr.ndim == 0:
        arr = arr.reshape(1)
    elif arr.ndim != 1:
        raise ValueError(f"{name} must be a scalar or a 1-D array, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} must not be empty")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} must be finite (no NaN or inf)")
    return np.ascontiguousarray(arr)


def _check_method(method, accuracy, allowed=_METHODS):
    if method not in allowed:
        raise ValueError(f"method must be one of {', '.join(map(repr, allowed))}; got {method!r}")
    # "richardson" and "complex" do not use accuracy, but an invalid one is still an error
    allowed_accuracies = _ACCURACIES.get(method, _ACCURACIES["central"])
    if isinstance(accuracy, bool) or not isinstance(accuracy, (int, np.integer)) \
            or accuracy not in allowed_accuracies:
        raise ValueError(f"accuracy for method {method!r} must be one of "
                         f"{allowed_accuracies}; got {accuracy!r}")
    return int(accuracy) if method in _ACCURACIES else 2


def _check_args(args):
    if isinstance(args, tuple):
        return args
    if isinstance(args, list):
        return tuple(args)
    return (args,)


def _elementwise_steps(step, shape):
    """``step`` broadcast to the shape of ``x`` and flattened (None stays None)."""
    if step is None:
        return None
    step = real_array(step, "step")
    try:
        return np.broadcast_to(step, shape).ravel()
    except ValueError:
        raise ValueError(f"step must be broadcastable to the shape of x {shape}, got shape "
                         f"{np.shape(step)}") from None


def _check_elementwise_args(args, shape):
    """Array ``args`` hold per-element parameters: they must broadcast to ``x.shape`` (they
    are then broadcast against the points ``(points,) + x.shape``)."""
    for i, arg in enumerate(args):
        if isinstance(arg, np.ndarray) and arg.ndim:
            try:
                fits = arg.ndim <= len(shape) and np.broadcast_shapes(arg.shape, shape) == shape
            except ValueError:
                fits = False
            if not fits:
                raise ValueError(f"args[{i}] (shape {arg.shape}) must broadcast against the "
                                 f"shape of x {shape}") from None


@lru_cache(maxsize=None)
def _relative_step(kind, accuracy, order):
    """The ``c`` of ``h = c * max(1, |x|)``.

    First derivatives use the classical ``eps ** (1 / (1 + accuracy))``: it assumes nothing about
    the size of the higher derivatives, whereas the step that is optimal for unit-scale f is about
    2x larger and, for functions whose derivatives grow with their order (exp(sin x), 1/(1+x^2)),
    measured up to 300x less accurate at accuracy 8. Higher orders, whose rounding error grows
    as ``h ** -order``, keep the step that balances truncation and rounding for unit-scale f.
    """
    if kind == "complex":
        return _COMPLEX_STEP
    if kind == "richardson":
        return _RICHARDSON_STEP[order]
    if order == 1:
        return _EPS ** (1.0 / (1 + accuracy))
    _, weights, truncation = stencil(kind, accuracy, order)
    rounding = _ROUNDING_ULPS * _EPS * sum(abs(w) for w in weights)
    return (order * rounding / (accuracy * truncation)) ** (1.0 / (order + accuracy))


# The relative part of a default step, c_rel * |x|, keeps the rounding error of the derivative
# of a power law (log, x**k: f^(j) ~ f / x**j) near eps / c_rel**order ~ 1e-12 or below.
_RELATIVE_LIMIT = 1e-4


@lru_cache(maxsize=None)
def _step_coefficients(kind, accuracy, order):
    """``(c, c_rel)`` of the default step ``h = c * max(1, |x|)`` limited, for ``|x| > 10``, to
    ``max(10 c, c_rel |x|)``.

    ``c * |x|`` is the right step for a function whose scale grows like ``|x|`` (a power law),
    but for one of unit scale (sin, exp) a step that is a sizeable fraction of ``|x|`` is
    useless (high accuracies have c up to 0.13: h = 126 at x = 1000). ``c_rel`` is the largest
    relative step whose rounding error on a power law stays ~ 1e-12 (``c_rel**order = 1e-4``);
    it only binds when ``c`` is larger (accuracy 2 keeps ``c * max(1, |x|)`` exactly).
    """
    c = _relative_step(kind, accuracy, order)
    return c, min(c, _RELATIVE_LIMIT ** (1.0 / order))


def _default_steps(x, kind, accuracy, order):
    """The default steps of :func:`_step_coefficients` (not yet made representable)."""
    c, c_rel = _step_coefficients(kind, accuracy, order)
    size = np.abs(x)
    if kind == "complex":
        # No cancellation in Im f(x + ih), so the step may be as small as wanted: relative to
        # |x| for |x| < 1 too (h = 1e-100 at x = 1e-120 gave 1.6e100 for d log/dx = 1e120);
        # 1e-100 at x = 0, never below the smallest normal number.
        return np.maximum(c * np.where(size > 0.0, size, 1.0), np.finfo(np.float64).tiny)
    h = c * np.maximum(1.0, size)
    if c_rel == c:
        return h
    return np.where(size > 10.0, np.minimum(h, np.maximum(10.0 * c, c_rel * size)), h)


def _steps(x, step, kind, accuracy, order, name="step"):
    """Per-component steps, exactly representable: ``(x + h) - x == h``."""
    if step is None and kind != "complex":
        # the same steps in one compiled pass (never below the spacing of x)
        return relative_steps(np.ascontiguousarray(x, dtype=np.float64),
                              *_step_coefficients(kind, accuracy, order))
    if step is None:
        h = _default_steps(x, kind, accuracy, order)
    else:
        h = real_array(step, name)
        if h.ndim > x.ndim or (h.ndim and h.shape != x.shape):
            raise ValueError(f"{name} must be a scalar or have the shape of x {x.shape}, "
                             f"got {h.shape}")
        if not (np.isfinite(h).all() and (h > 0).all()):
            raise ValueError(f"{name} must be positive and finite")
        h = np.broadcast_to(h, x.shape)
    if kind == "complex":
        return np.array(h, dtype=np.float64)
    with _quiet():
        exact = (x + h) - x
        # near DBL_MAX x + h overflows: make the step representable on the other side
        exact = np.where(np.isfinite(exact), exact, x - (x - h))
        # A step below the spacing of x rounds to zero: fall back to one unit in the last place.
        return np.where(exact > 0, exact, np.spacing(np.abs(x)))


def _check_bounds(bounds, x):
    if bounds is None:
        return None
    try:
        lower, upper = bounds
    except (TypeError, ValueError) as exc:
        raise ValueError("bounds must be a pair (lb, ub)") from exc
    lower = real_array(-np.inf if lower is None else lower, "bounds (lb)")
    upper = real_array(np.inf if upper is None else upper, "bounds (ub)")
    try:
        lower, upper = np.broadcast_to(lower, x.shape), np.broadcast_to(upper, x.shape)
    except ValueError:
        raise ValueError(f"bounds: lb (shape {lower.shape}) and ub (shape {upper.shape}) must "
                         f"be scalars or have the shape of x {x.shape}") from None
    if np.isnan(lower).any() or np.isnan(upper).any() or (lower >= upper).any():
        raise ValueError("bounds must satisfy lb < ub with no NaN")
    if ((x < lower) | (x > upper)).any():
        raise ValueError("x must lie within bounds")
    return lower, upper


# --------------------------------------------------------------------------------------------
# plans along coordinate axes (gradient, Jacobian)

@lru_cache(maxsize=256)
def _template(count, kind, accuracy, order):
    """Structure of a plan differentiating ``count`` components with one stencil.

    Point 0 is ``x`` itself when the stencil uses it; component ``i`` owns the next points.
    """
    offsets, weights, _ = stencil(kind, accuracy, order)
    offsets = np.array(offsets)
    weights = np.array(weights)
    moved = offsets != 0
    uses_center = not moved.all()
    per = int(moved.sum())
    first = 1 if uses_center else 0
    own = first + np.arange(count * per).reshape(count, per)
    point = np.zeros((count, offsets.size), dtype=np.intp)
    point[:, moved] = own
    template = dict(
        offsets=offsets[moved], per=per, uses_center=uses_center, npoints=first + count * per,
        output=np.repeat(np.arange(count, dtype=np.intp), offsets.size),
        point=point.ravel(), coefficient=np.tile(weights, count),
        side=np.tile(np.sign(offsets).astype(np.int8), count))
    for value in template.values():
        if isinstance(value, np.ndarray):
            value.setflags(write=False)
    return template


class _Plan:
    """Points and terms of one batch of finite differences (several stencil groups)."""

    def __init__(self, x):
        self.x = x
        self.parts = []            # (first_index, first_value, output, point, coefficient, side)
        self.scales = []
        self.npoints = 0
        self.noutputs = 0

    def add_axis_group(self, components, h, kind, accuracy, order):
        """Differences of ``components`` (indices into x) with steps ``h`` and one stencil."""
        count = components.size
        t = _template(count, kind, accuracy, order)
        base = self.npoints
        first_index = np.repeat(components, t["per"])
        with _quiet():    # points beyond DBL_MAX are inf: non-finite values, then a fallback
            first_value = (self.x[components][:, None] + h[:, None] * t["offsets"]).ravel()
        if t["uses_center"]:
            first_index = np.concatenate(([-1], first_index))
            first_value = np.concatenate(([0.0], first_value))
        self.parts.append((first_index, first_value, t["output"] + self.noutputs,
                           t["point"] + base, t["coefficient"], t["side"]))
        self.scales.append(h ** -order)
        self.npoints += t["npoints"]
        self.noutputs += count

    def arrays(self):
        if len(self.parts) == 1:
            columns = self.parts[0]
            scale = self.scales[0]
        else:
            columns = [np.concatenate(c) for c in zip(*self.parts)]
            scale = np.concatenate(self.scales)
        return columns, scale


_NO_INDEX = np.empty(0, dtype=np.intp)


def _values(function, x, first_index, first_value, second_index=None, second_value=None,
            m=None, n_threads=None):
    """Function values at the plan points: ``(K, m)`` (``m`` = 1 for a scalar field)."""
    k = first_index.shape[0]
    if second_index is None:
        second_index = np.full(k, -1, dtype=np.intp)
        second_value = np.zeros(k)
    if function.kind == FunctionKind.COMPILED:
        if function.signature == "scalar":
            return compiled_values(function, x, first_index, first_value, second_index,
                                   second_value, -1, n_threads)[:, None]
        return compiled_values(function, x, first_index, first_value, second_index,
                               second_value, m, n_threads)
    points = build_points(x, first_index, first_value, second_index, second_value)
    if m is None:
        return function.scalar_values(points)[:, None]
    values = function.vector_values(points, m)
    return np.ascontiguousarray(values)


def _run_plan(function, plan, m, n_threads):
    (first_index, first_value, output, point, coefficient, side), scale = plan.arrays()
    values = _values(function, plan.x, first_index, first_value, m=m, n_threads=n_threads)
    df, magnitude, bad = combine(values, output, point, coefficient, side, scale)
    return df, magnitude, bad, first_index.shape[0], values.shape[1]


def _stage(function, x, components, h, kinds, richardson, accuracy, m, n_threads,
           estimate=False):
    """Differences of ``components`` with per-component stencil ``kinds`` (one evaluation batch).

    Returns ``(df (c, m), error (c, m), bad (c,), nfev, m)``; ``bad`` holds the non-finite flags
    of :func:`fastcalc._differentiate.combine` (and ``_UNCONVERGED``). With ``estimate``, a
    fixed stencil's error includes its truncation (:func:`_truncation`).
    """
    levels = _RICHARDSON_LEVELS if richardson else (_CHECK_STEPS.size if estimate else 1)
    factors = _CHECK_STEPS if estimate and not richardson else 2.0 ** -np.arange(levels)
    base_accuracy = 2 if richardson else accuracy
    plan = _Plan(x)
    groups = []
    for kind in ("central", "forward", "backward"):
        selected = np.flatnonzero(kinds == kind)
        if selected.size == 0:
            continue
        kind_accuracy = base_accuracy + (base_accuracy % 2 if kind == "central" else 0)
        for level in range(levels):
            plan.add_axis_group(components[selected], h[selected] * factors[level], kind,
                                kind_accuracy, 1)
        groups.append((kind, selected))
    df, magnitude, bad, nfev, m = _run_plan(function, plan, m, n_threads)
    rounding = _ROUNDING_ULPS * _EPS * magnitude
    if not richardson and levels == 1:
        order = np.concatenate([selected for _, selected in groups])
        if order.size > 1 and (order[1:] < order[:-1]).any():
            inverse = np.empty_like(order)
            inverse[order] = np.arange(order.size)
            df, rounding, bad = df[inverse], rounding[inverse], bad[inverse]
        return df, rounding, bad, nfev, m
    rounding += _argument_rounding(df, np.concatenate(
        [np.tile(x[components[selected]], levels) for _, selected in groups]),
        np.concatenate(plan.scales))
    out = np.empty((components.size, m))
    error = np.empty((components.size, m))
    flags = np.zeros(components.size, dtype=np.uint8)
    start = 0
    for kind, selected in groups:
        size = selected.size * levels
        block = slice(start, start + size)
        shape = (levels, selected.size, m)
        kind_accuracy = base_accuracy + (base_accuracy % 2 if kind == "central" else 0)
        if not richardson:
            out[selected], error[selected], flags[selected] = _checked(
                df[block].reshape(shape), rounding[block].reshape(shape),
                bad[block].reshape(levels, -1), kind, kind_accuracy)
            start += size
            continue

        def extend(level, rows, kind=kind, selected=selected, kind_accuracy=kind_accuracy):
            more = _Plan(x)
            more.add_axis_group(components[selected[rows]], h[selected[rows]] * 2.0 ** -level,
                                kind, kind_accuracy, 1)
            e, magnitude, b, count, _ = _run_plan(function, more, m, n_threads)
            r = _ROUNDING_ULPS * _EPS * magnitude + _argument_rounding(
                e, x[components[selected[rows]]], more.scales[0])
            return e, r, b, count

        out[selected], error[selected], flags[selected], extra = _adaptive_romberg(
            df[block].reshape(shape), rounding[block].reshape(shape),
            bad[block].reshape(levels, -1), kind, extend)
        nfev += extra
        start += size
    return out, error, flags, nfev, m


_UNCONVERGED = 8      # a flag beside those of combine: the Richardson table did not converge
# Slowest shrinking of a table's differences accepted as the stencil's rate 2**base, as a
# factor below it: 1.5 accepted h**1.5 for h**2 (x**2.5 at 1e-8 with steps >> x), whose
# extrapolation then claimed 8x too small an error.
_SLOWEST = 1.25


@_quietly
def _argument_rounding(estimates, x, inverse_h):
    """Error of difference quotients ``(c, m)`` from the rounding of their points ``x + s h``
    (about ``eps |x| |f'|`` per value, which ``_ROUNDING_ULPS * eps * |f|`` misses when
    ``|x| >> h``): ``4 eps |x| |estimate| / h``, the estimate standing in for
    ``f' h**(1-order)``."""
    return (4.0 * _EPS) * np.abs(x)[:, None] * np.abs(estimates) * np.abs(inverse_h)[:, None]


@_quietly
def _unconverged(estimates, rounding, kind, base=2):
    """Where a Richardson table (``estimates[k]`` at steps ``h / 2**k``) shows no convergence:
    every difference of its first column must shrink by about ``2**base`` (the order of the
    stencil) from one step to the next, unless it is at rounding level. Steps too large for
    the function (beyond the radius of convergence of its Taylor series, or many periods of an
    oscillation) give differences that do not; their extrapolations can agree by accident, so
    the value and error estimate of such a table cannot be trusted."""
    if estimates.shape[0] < 3:
        return np.zeros(estimates.shape[1:], dtype=bool)
    fastest = 2.0 ** (base + (2 if kind == "central" else 1)) * 1.5
    if estimates.ndim == 3 and estimates.shape[2] == 1:
        # elementwise tables (L, N, 1): one compiled pass, the same tests as below
        return unconverged_columns(
            np.ascontiguousarray(estimates[:, :, 0]), np.ascontiguousarray(rounding[:, :, 0]),
            2.0 ** base / _SLOWEST, fastest)[:, None]
    difference = np.abs(np.diff(estimates, axis=0))
    quiet = difference <= 10.0 * (rounding[1:] + rounding[:-1])
    # Nor may they shrink much faster than the next term allows (2**(base + 2) central,
    # 2**(base + 1) one-sided): that is a step far beyond the scale of f (exp(300 x) at
    # h = 1/8), whose table looks converged long before it is.
    ratio_ok = ((difference[:-1] >= difference[1:] * (2.0 ** base / _SLOWEST))
                & (difference[:-1] <= difference[1:] * fastest))
    shrinking = quiet[1:] | ratio_ok
    return ~shrinking.all(axis=0)


@_quietly
def _truncation(estimates, rounding, kind, accuracy):
    """Error estimate of ``estimates[0]``, a fixed stencil of ``accuracy`` at the step ``h``,
    from the same stencil at the other ``_CHECK_STEPS`` (``estimates``, ``rounding``:
    ``(5, ...)`` at ``h, h/2, h/4, h/8, h/sqrt(2)``).

    Where ``D(h) - f' ~ C h**p``, the truncation error of ``D(h)`` is
    ``|D(h) - D(h/2)| 2**p / (2**p - 1)``; it is counted twice, plus the rounding error. The
    estimate is trusted only where ``D(h), ..., D(h/8)`` converge at the stencil's rate or
    are at rounding level (:func:`_unconverged`), and ``D(h/sqrt(2))`` is the predicted
    ``D(h) - q (D(h) - D(h/2))``, ``q = (1 - 2**(-p/2)) / (1 - 2**-p)`` (the next term of the
    error moves q by less than 0.1), within half of ``|D(h) - D(h/2)|``. A step beyond the scale
    of f (sqrt at 1e-6 with h = 6e-6, sin at 1e8 with h = 600) gives values without pattern,
    which can agree by accident, or near multiples of a period aliased values that converge
    (to a wrong limit). Returns ``(error, unreliable)``, of the shape of ``estimates[0]``.
    """
    p = float(accuracy)
    first = estimates[0] - estimates[1]
    error = rounding[0] + _TRUNCATION_SAFETY * np.abs(first) * (2.0 ** p / (2.0 ** p - 1.0))
    q = (1.0 - 2.0 ** (-p / 2.0)) / (1.0 - 2.0 ** -p)
    predicted = estimates[0] - q * first
    agrees = (np.abs(estimates[-1] - predicted)
              <= 0.5 * np.abs(first) + 10.0 * (rounding[-1] + rounding[0] + rounding[1]))
    return error, _unconverged(estimates[:-1], rounding[:-1], kind, base=accuracy) | ~agrees


def _checked(estimates, rounding, bad, kind, accuracy):
    """A fixed stencil's value at ``h`` with the error estimate of :func:`_truncation`:
    ``estimates``, ``rounding`` ``(5, c, m)`` and ``bad`` ``(5, c)`` at ``h * _CHECK_STEPS``.
    Returns ``(value (c, m), error (c, m), flags (c,))``: the non-finite flags at ``h`` (the
    fallback's business), else ``_UNCONVERGED`` where the estimate cannot be trusted (or a
    smaller step met a non-finite value)."""
    error, unreliable = _truncation(estimates, rounding, kind, accuracy)
    flags = bad[0].copy()
    unreliable = unreliable.reshape(flags.size, -1).any(axis=1) | (bad[1:] != 0).any(axis=0)
    flags |= np.where((flags == 0) & unreliable, _UNCONVERGED, 0).astype(np.uint8)
    return estimates[0], error, flags


def _adaptive_romberg(estimates, rounding, bad, kind, extend, base=2, cross_check=False):
    """Romberg extrapolation over a window of steps that slides to smaller steps until the
    table converges (:func:`_unconverged`) or the step budget ends.

    ``estimates``, ``rounding``: ``(W, c, m)`` at steps ``h / 2**k``; ``bad``: ``(W, c)``
    non-finite flags (all three are updated in place). ``extend(level, rows)`` returns
    ``(estimates (r, m), rounding, bad (r,), nfev)`` at step ``h / 2**level`` for the
    components ``rows`` (``level`` a scalar, or a float array per row for the cross-check). A
    component whose window meets a non-finite value slides on while its newest step is clean
    (large steps reaching outside the domain). With ``cross_check``, a converged table is
    checked against one more difference at a step incommensurate with its own (``2**-0.5``
    times its smallest): steps near a multiple of the period of an oscillation (sin at
    ``|x| = 1e8``, steps ~1e5) give tables that converge perfectly, to an aliased value
    (``f^(k) (h_eff / h)**k``), which that step exposes. A table failing it is unconverged.
    Returns ``(value (c, m), error (c, m), flags (c,), nfev)``: flags hold the non-finite
    flags of the final window and ``_UNCONVERGED`` when the budget ran out.
    """
    window = estimates.shape[0]

    def state(rows=slice(None)):
        flags = np.bitwise_or.reduce(bad[:, rows], axis=0)
        unconverged = _unconverged(estimates[:, rows], rounding[:, rows], kind, base)
        return flags, unconverged.reshape(flags.size, -1).any(axis=1)

    # the state of every component, updated for those whose window slides
    flags, unconverged = state()
    active = np.flatnonzero(np.where(flags != 0, bad[-1] == 0, unconverged))
    nfev = 0
    newest = np.full(flags.size, window - 1)     # level of each window's smallest step
    checked = np.zeros(flags.size, dtype=bool)   # window cross-checked (as it is now)
    if cross_check:
        values, errors = np.empty(estimates.shape[1:]), np.empty(estimates.shape[1:])
    while True:
        active = active[newest[active] < _RICHARDSON_MAX_LEVELS - 1]
        if active.size:
            levels = newest[active] + 1
            # one level for all (the usual case; the Hessian's extend needs it)
            level = int(levels[0]) if (levels == levels[0]).all() else levels
            e, r, b, count = extend(level, active)
            nfev += count
            estimates[:, active] = np.concatenate([estimates[1:, active], e[None]])
            rounding[:, active] = np.concatenate([rounding[1:, active], r[None]])
            bad[:, active] = np.concatenate([bad[1:, active], b[None]])
            newest[active] = levels
            checked[active] = False
            flags[active], unconverged[active] = state(active)
            active = active[np.where(flags[active] != 0, bad[-1, active] == 0,
                                     unconverged[active])]
            continue
        rows = np.flatnonzero((flags == 0) & ~unconverged & ~checked) if cross_check else ()
        if not len(rows):
            break
        # all converged tables checked in one evaluation
        value, error = _romberg(estimates[:, rows], rounding[:, rows], kind, base)
        values[rows], errors[rows] = value, error
        e, r, b, count = extend(newest[rows] + 0.5, rows)
        nfev += count
        with _quiet():
            # in the asymptotic regime e - value ~ (estimates[-1] - value) / 2
            allowed = (np.abs(estimates[-1, rows] - value) + error
                       + 10.0 * (r + rounding[-1, rows]))
            aliased = ~(np.abs(e - value) <= allowed).all(axis=1) | (b != 0)
        checked[rows] = True
        # an aliased table slides on, to steps below the aliasing
        unconverged[rows[aliased]] = True
        active = rows[aliased]
    if cross_check:      # the windows not cross-checked (unconverged or non-finite) remain
        rest = np.flatnonzero(~checked)
        if rest.size:
            values[rest], errors[rest] = _romberg(estimates[:, rest], rounding[:, rest], kind,
                                                  base)
        value, error = values, errors
    else:
        value, error = _romberg(estimates, rounding, kind, base)
    flags = flags | np.where((flags == 0) & unconverged, _UNCONVERGED, 0).astype(np.uint8)
    return value, error, flags, nfev


def _romberg(estimates, rounding, kind, base=2):
    """Richardson extrapolation of ``estimates[k]`` (shape ``(levels, ...)``) computed with steps
    ``h / 2**k``: the table entry with the smallest error estimate, and that estimate.

    Central differences have error terms in ``h**2, h**4, ...``; one-sided ones in every power
    from ``h**base`` on.
    """
    levels = estimates.shape[0]
    increment = 2 if kind == "central" else 1
    powers = base + increment * np.arange(levels, dtype=np.float64)
    shape = estimates.shape[1:]
    value, error = romberg(np.ascontiguousarray(estimates.reshape(levels, -1)),
                           np.ascontiguousarray(rounding.reshape(levels, -1)), powers,
                           _RICHARDSON_SAFETY)
    return value.reshape(shape), error.reshape(shape)


@contextmanager
def _complex_safe(name):
    """Complex-step evaluations of ``name``: NumPy's ComplexWarning (the imaginary part
    discarded, e.g. by ``math.sin`` or ``float``) would make the derivative silently 0; it
    becomes a TypeError naming the function."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", np.exceptions.ComplexWarning)
        try:
            yield
        except np.exceptions.ComplexWarning as exc:
            raise TypeError(f"{name} is not complex-safe (it discarded the imaginary part: "
                            f"{exc}); method='complex' needs f to accept complex input") from None


def _complex_stage(function, x, components, h, m):
    """Complex-step first derivatives ``Im f(x + i h e_j) / h`` (Python callables only)."""
    if function.kind == FunctionKind.COMPILED:
        raise TypeError(f"{function.name}: method='complex' needs a Python function that "
                        "accepts complex input; compiled callables are real-valued")
    count = components.size
    points = np.repeat(x.astype(np.complex128)[None, :], count, axis=0)
    points[np.arange(count), components] += 1j * h
    with _complex_safe(function.name):
        return _complex_values(function, points, count, h, m)


def _complex_values(function, points, count, h, m):
    if function.kind == FunctionKind.VECTORIZED:
        values = real_values(function.function(points.T, *function.args), function.name,
                             complex_ok=True)
        if m is None:
            if values.shape != (count,):
                raise ValueError(f"{function.name} (vectorized scalar field) returned shape "
                                 f"{values.shape}, expected ({count},)")
            values = values[:, None]
        else:
            if values.ndim == 1 and m in (-1, 1) and values.shape[0] == count:
                values = values[None, :]
            if values.ndim != 2 or values.shape[1] != count or (m > 0 and values.shape[0] != m):
                raise ValueError(f"{function.name} (vectorized vector field) returned shape "
                                 f"{values.shape}, expected (m, {count})")
            values = values.T
    else:
        rows = [real_values(function.function(p, *function.args), function.name,
                            complex_ok=True) for p in points]
        if m is None:
            bad_shape = [r.shape for r in rows if r.size != 1]
            if bad_shape:
                raise ValueError(f"{function.name} must return a scalar, got an array of shape "
                                 f"{bad_shape[0]}")
            values = np.array([r.reshape(()) for r in rows])[:, None]
        else:
            values = np.array([r.reshape(-1) for r in rows])
    if not np.iscomplexobj(values):
        values = values.astype(np.complex128)
    df = values.imag / h[:, None]
    finite = np.isfinite(values).all(axis=1)   # a NaN real part also condemns the point
    bad = np.where(finite, 0, 3).astype(np.uint8)
    df[~finite] = np.nan
    return df, _ROUNDING_ULPS * _EPS * np.abs(df), bad, count, df.shape[1]


def _extent(kind, accuracy):
    """How many steps a first-derivative stencil reaches below and above ``x``."""
    offsets = stencil(kind, accuracy + (accuracy % 2 if kind == "central" else 0), 1)[0]
    return max(0.0, -min(offsets)), max(0.0, max(offsets))


def _weight_sum(kind, accuracy):
    """``sum |w|`` of a first-derivative stencil: its rounding error in units of eps |f| / h."""
    weights = stencil(kind, accuracy + (accuracy % 2 if kind == "central" else 0), 1)[1]
    return sum(abs(w) for w in weights)


def _one_sided_kinds(x, h, candidates, accuracy, bounds):
    """Per component, the first of ``candidates`` (kinds per component, in preference order)
    that stays within bounds; None where none does."""
    chosen = np.full(x.shape, None, dtype=object)
    for kinds in candidates:
        for kind in ("central", "forward", "backward"):
            mask = (kinds == kind) & (chosen == None)  # noqa: E711 (object array)
            if not mask.any():
                continue
            if bounds is not None:
                down, up = _extent(kind, accuracy)
                lower, upper = bounds
                mask &= (x - down * h >= lower) & (x + up * h <= upper)
            chosen[mask] = kind
    return chosen


def _bounded_kinds(method, accuracy, x, h, bounds):
    """Stencil kind of each component: one-sided near a bound (of the same ``accuracy``).

    Where no stencil fits between the bounds at the step ``h``, ``h`` is shrunk (in place) to
    the largest that fits for the central stencil or for the one-sided one on the roomier
    side, whichever has the smaller rounding error.
    """
    kind = "central" if method == "richardson" else method
    kinds = np.full(x.shape, kind, dtype=object)
    if bounds is None:
        return kinds
    lower, upper = bounds
    room_up, room_down = upper - x, x - lower
    roomier = np.where(room_up >= room_down, "forward", "backward").astype(object)
    other = np.where(room_up >= room_down, "backward", "forward").astype(object)
    chosen = _one_sided_kinds(x, h, [kinds, roomier, other], accuracy, bounds)
    squeezed = np.flatnonzero(chosen == None)  # noqa: E711 (object array)
    if squeezed.size:
        # The largest step of each stencil that fits: central (symmetric, the nearer bound)
        # or one-sided (the roomier side). Both are below the default step, where rounding
        # dominates, so the smaller rounding error sum|w| / h wins: central within
        # [x - 3e-9, x + 2e-9] (h = 2e-9, sum|w| = 1, against 1.5e-9 and 4: 6x less error;
        # SciPy takes central when its step is at least the one-sided one).
        one_sided = np.maximum(room_up, room_down)[squeezed] / _extent("forward", accuracy)[1]
        central = np.minimum(room_up, room_down)[squeezed] / _extent("central", accuracy)[1]
        central_wins = (_weight_sum("central", accuracy) * one_sided
                        <= _weight_sum("forward", accuracy) * central)
        chosen[squeezed] = np.where(central_wins, "central", roomier[squeezed])
        shrunk = np.where(central_wins, central, one_sided) * (1.0 - 1e-9)
        h[squeezed] = np.minimum(h[squeezed], (x[squeezed] + shrunk) - x[squeezed])
        # (x + shrunk) - x rounds: to 0 (no step at all) or up, putting x + reach * h outside
        # the bounds. Halve until the evaluated points themselves fit.
        for _ in range(4):
            fits = (h[squeezed] > 0) & (_one_sided_kinds(
                x[squeezed], h[squeezed], [chosen[squeezed]], accuracy,
                (lower[squeezed], upper[squeezed])) != None)  # noqa: E711
            if fits.all():
                break
            retry = squeezed[~fits]
            h[retry] = (x[retry] + 0.5 * h[retry]) - x[retry]
        else:
            tight = squeezed[~fits][0]
            raise ValueError(f"bounds too narrow: no stencil of accuracy {accuracy} "
                             f"fits between lb = {float(lower[tight])!r} and ub = "
                             f"{float(upper[tight])!r} around x[{tight}] = {float(x[tight])!r}")
    return chosen


def _axis_derivatives(function, x, *, method, accuracy, step, bounds, m, n_threads,
                      estimate=False):
    """First derivatives along every axis: ``(df (n, m), error (n, m), status (n,), nfev, m)``.

    ``estimate`` (full_output): the fixed stencils' errors include their truncation, measured
    at four more steps (:func:`_checked`); the values are those of the plain call."""
    n = x.size
    richardson = method == "richardson"
    if method == "complex":
        h = _steps(x, step, "complex", 2, 1)
        df, error, bad, nfev, m = _complex_stage(function, x, np.arange(n, dtype=np.intp), h, m)
        h = _steps(x, None, "central", 2, 1)   # real step for the fallback
        accuracy = 2
    elif bounds is None and not richardson:
        # the fast path: one stencil for every component
        if step is None:
            h = relative_steps(x, *_step_coefficients(method, accuracy, 1))
        else:
            h = _steps(x, step, method, accuracy, 1)
        offsets, weights, _ = stencil(method, accuracy, 1)
        vector = m is not None
        df, error, bad, nfev, nbad = axis_differences(
            function, x, h, offsets, weights, vector, m if vector else -1, n_threads,
            _ROUNDING_ULPS * _EPS)
        m = df.shape[1]
        if estimate:
            levels = [(df, error + _argument_rounding(df, x, 1.0 / h), bad)]
            for factor in _CHECK_STEPS[1:]:
                d, e, b, count, _ = axis_differences(function, x, h * factor, offsets,
                                                     weights, vector, m, n_threads,
                                                     _ROUNDING_ULPS * _EPS)
                levels.append((d, e + _argument_rounding(d, x, 1.0 / (h * factor)), b))
                nfev += count
            df, error, bad = _checked(*(np.stack(c) for c in zip(*levels)), method, accuracy)
        elif not nbad:
            return df, error, np.zeros(n, dtype=np.int8), nfev, m
    else:
        h = np.array(_steps(x, step, method, accuracy, 1))
        kinds = _bounded_kinds(method, 2 if richardson else accuracy, x, h, bounds)
        df, error, bad, nfev, m = _stage(function, x, np.arange(n, dtype=np.intp), h, kinds,
                                         richardson, accuracy, m, n_threads, estimate)
    status = np.zeros(n, dtype=np.int8)
    unconverged = (bad & _UNCONVERGED) != 0
    bad = bad & ~np.uint8(_UNCONVERGED)
    if bad.any():
        nfev += _fallback(function, x, h, np.flatnonzero(bad), bad, df, error, status, method,
                          accuracy, bounds, m, n_threads)
    status[unconverged & (bad == 0)] = Status.MAX_ITERATIONS
    return df, error, status, nfev, m


def _fallback(function, x, h, failed, bad, df, error, status, method, accuracy, bounds, m,
              n_threads):
    """Recompute failed components with one-sided stencils, the side without non-finite values
    first; components that still fail become NaN with status NON_FINITE. Updates the arrays in
    place and returns the number of extra evaluations."""
    nfev = 0
    # Extrapolated accuracy-2 one-sided differences whatever the method: a non-finite value
    # within a step of x means an edge or singularity nearby, where one one-sided difference
    # at that step was up to 100% wrong (log, sqrt near 0) with status 0; the Richardson
    # table slides to steps that resolve it, or ends with status 1.
    one_sided = 2
    clean_forward = (bad & 1) == 0
    first = np.where(clean_forward, "forward", "backward").astype(object)
    second = np.where(clean_forward, "backward", "forward").astype(object)
    attempts = [first, second]
    if method in ("forward", "backward"):
        attempts = [np.full(x.shape, _OPPOSITE[method], dtype=object)]
    remaining = failed
    for candidates in attempts:
        kinds = _one_sided_kinds(x[remaining], h[remaining], [candidates[remaining]],
                                 one_sided, None if bounds is None else
                                 (bounds[0][remaining], bounds[1][remaining]))
        usable = np.flatnonzero(kinds != None)  # noqa: E711 (object array)
        if usable.size == 0:
            continue
        targets = remaining[usable]
        sub_df, sub_error, sub_bad, extra, _ = _stage(
            function, x, targets, h[targets], kinds[usable], True, one_sided, m, n_threads)
        nfev += extra
        ok = (sub_bad & ~np.uint8(_UNCONVERGED)) == 0
        df[targets[ok]] = sub_df[ok]
        error[targets[ok]] = sub_error[ok]
        status[targets[ok & ((sub_bad & _UNCONVERGED) != 0)]] = Status.MAX_ITERATIONS
        remaining = np.setdiff1d(remaining, targets[ok])
        if remaining.size == 0:
            break
    df[remaining] = np.nan
    error[remaining] = np.nan
    status[remaining] = Status.NON_FINITE
    return nfev


# --------------------------------------------------------------------------------------------
# public API

def gradient(f, x, *, method="central", accuracy=2, step=None, bounds=None, args=(),
             vectorized=False, full_output=False, n_threads=None):
    """Gradient of a scalar field by finite differences.

    Parameters
    ----------
    f : callable, scipy.LowLevelCallable or numba cfunc
        ``f(x, *args) -> float`` with ``x`` of shape ``(n,)``; with ``vectorized=True``
        ``f(X, *args) -> (k,)`` with ``X`` of shape ``(n, k)`` (all stencil points in one
        call); or a compiled ``double f(int n, double *x, void *user_data)``.
    x : array_like, shape (n,)
        Point of differentiation (finite; never modified).
    method : {"central", "forward", "backward", "complex", "richardson"}
        See the module documentation. ``"complex"`` needs ``f`` to accept complex input.
    accuracy : int
        Order of the truncation error: 2, 4, 6, 8 (central) or 1 to 4 (one-sided).
        ``"richardson"`` and ``"complex"`` do not use it, but it must still be 2, 4, 6 or 8.
    step : float or array_like, optional
        Absolute step(s); default ``c * max(1, |x|)`` with ``c`` optimal for the stencil,
        limited above ``|x| = 10`` (module documentation).
    bounds : (lb, ub), optional
        No evaluation leaves ``lb <= x <= ub``: components near a bound use one-sided stencils
        of the same accuracy, with a smaller step where needed (module documentation).
    args : tuple
        Extra arguments of ``f``.
    vectorized : bool
        ``f`` accepts an ``(n, k)`` array of points as columns.
    full_output : bool
        Return a :class:`DifferentiationResult` (``df``, ``error``, ``status``, ``nfev``,
        ``success``) instead of the gradient. The fixed stencils then also run at four
        smaller steps to estimate their truncation error (module documentation).
    n_threads : int, optional
        Threads for compiled callables on large problems (None: the process-wide setting,
        :func:`fastcalc.get_num_threads`; results do not depend on it).

    Returns
    -------
    ndarray, shape (n,), or DifferentiationResult

    Raises
    ------
    ValueError
        ``x`` empty, not 1-D or not finite; ``method``/``accuracy`` invalid; ``step`` not
        positive and finite or of the wrong shape; ``bounds`` malformed, not containing ``x``
        or so narrow (a few ulps) that no stencil fits between them;
        ``f`` returning a value of the wrong shape; ``n_threads`` below 1 (other than -1).
    TypeError
        ``x`` complex or not numeric; ``f`` not callable, of the wrong compiled signature, or
        returning anything but real numbers (bool, int, float, NumPy integers and floats; not
        strings, None, Decimal, Fraction, nor complex values outside ``method="complex"``);
        ``n_threads`` not an int; ``method="complex"`` with a compiled
        ``f`` or an ``f`` that is not complex-safe (it discards the imaginary part, e.g.
        ``math.sin``: NumPy's ``ComplexWarning`` is turned into this error).
    Exception
        Any exception raised by ``f`` propagates unchanged.

    Notes
    -----
    Failure behaviour: a component whose stencil meets a non-finite value is recomputed with
    extrapolated accuracy-2 one-sided differences (module documentation; status 1 if their
    table does not converge); if that fails too it is NaN with status 3 (``NON_FINITE``) in the
    ``full_output`` result (a compiled callable returning NaN is handled the same way). With
    ``method="richardson"``, an extrapolation table (central, fallback or bounds) whose
    differences still do not shrink at the rate of the stencil when the steps have slid down
    to ``h / 2**29`` (near a singularity, or noise) keeps its last value but gets status 1
    (``MAX_ITERATIONS``): its error estimate is not reliable. So does, with ``full_output``,
    a fixed stencil whose values at ``h, h/2, h/4, h/8, h/sqrt(2)`` do not converge at its
    rate (its step is beyond the scale of f). No exception or warning is raised for it:
    check ``status``.

    Examples
    --------
    >>> import numpy as np
    >>> from fastcalc import gradient
    >>> gradient(lambda x: x[0] ** 2 * np.sin(x[1]), [1.0, 0.5], accuracy=4)
    array([0.95885108, 0.87758256])
    """
    x = _check_point(x)
    accuracy = _check_method(method, accuracy)
    n_threads_for(n_threads)    # validated for every kind of f, not only compiled ones
    function = resolve(f, args=_check_args(args), vectorized=vectorized, signatures=("scalar",))
    bounds = _check_bounds(bounds, x)
    df, error, status, nfev, _ = _axis_derivatives(function, x, method=method, accuracy=accuracy,
                                                   step=step, bounds=bounds, m=None,
                                                   n_threads=n_threads, estimate=full_output)
    if full_output:
        return _result(df[:, 0], error[:, 0], status, nfev)
    return df[:, 0]


def jacobian(f, x, *, method="central", accuracy=2, step=None, bounds=None, args=(),
             vectorized=False, full_output=False, n_out=None, n_threads=None, sparsity=None,
             groups=None, check=False):
    """Jacobian matrix of a vector field by finite differences.

    Parameters
    ----------
    f : callable, scipy.LowLevelCallable or numba cfunc
        ``f(x, *args) -> (m,)`` with ``x`` of shape ``(n,)``; with ``vectorized=True``
        ``f(X, *args) -> (m, k)`` for ``X`` of shape ``(n, k)``; or a compiled
        ``int f(int n, double *x, int m, double *out, void *user_data)`` (0 = success).
    x : array_like, shape (n,)
        Point of differentiation (finite; never modified).
    method, accuracy, step, bounds, args, vectorized, full_output, n_threads
        As for :func:`gradient`.
    n_out : int, optional
        Output size ``m`` of a compiled vector field, which cannot tell it; default ``n``.
        For Python callables it is checked when given and inferred otherwise.
    sparsity : array_like or scipy.sparse matrix, shape (m, n), optional
        Non-zero pattern of the Jacobian (boolean/numeric, non-zero = structural; explicit
        zeros of a sparse matrix are not). Columns that share no row are perturbed together
        (:func:`fastcalc.group_columns`): ``groups * len(stencil) + 1`` evaluations (a
        vectorized ``f`` gets them in ONE call), and the result is a
        ``scipy.sparse.csr_array`` with exactly this pattern. Methods: ``"forward"``,
        ``"backward"`` (accuracy 1-4), ``"central"`` (2-8), ``"complex"``; not
        ``"richardson"``. ``bounds`` make the columns near a bound one-sided (grouped apart).
        Entries outside the pattern are NOT computed (and a missed non-zero corrupts the
        entries of its group's columns in its row): see ``check``. A column with a
        non-finite stencil value is recomputed alone with the one-sided fallback below (its
        points evaluate all ``m`` outputs).
    groups : array_like of int, shape (n,), optional
        Column groups of ``sparsity`` (from :func:`fastcalc.group_columns`, to reuse them);
        checked against the pattern.
    check : bool, optional
        With ``sparsity``: also compute the dense Jacobian (with ``full_output``, its cost
        times 5) and raise a ValueError naming the entries outside the pattern where it is
        non-zero beyond its error estimate. For tests of a pattern, not production.

    Returns
    -------
    ndarray, shape (m, n), or scipy.sparse.csr_array, or DifferentiationResult
        ``J[i, j] = d f_i / d x_j``; ``status`` in the result is per column (input component).

    Raises
    ------
    ValueError
        As for :func:`gradient`; also ``f`` returning arrays of inconsistent or wrong shape, or
        an invalid ``n_out``.
    TypeError
        As for :func:`gradient`.
    Exception
        Any exception raised by ``f`` propagates unchanged.

    Notes
    -----
    Failure behaviour: as for :func:`gradient`, per column: a column that no stencil can
    compute is NaN with status 3; a compiled vector field returning non-zero counts as
    non-finite values.

    Examples
    --------
    >>> import numpy as np
    >>> from fastcalc import jacobian
    >>> jacobian(lambda x: np.array([x[0] * x[1], x[0] + 3 * x[1]]), [2.0, 5.0])
    array([[5., 2.],
           [1., 3.]])
    """
    if sparsity is not None or groups is not None:
        from .sparse import sparse_jacobian    # (sparse builds on this module)
        return sparse_jacobian(f, x, sparsity=sparsity, groups=groups, check=check,
                               method=method, accuracy=accuracy, step=step, bounds=bounds,
                               args=args, vectorized=vectorized, full_output=full_output,
                               n_out=n_out, n_threads=n_threads)
    x = _check_point(x)
    accuracy = _check_method(method, accuracy)
    n_threads_for(n_threads)    # validated for every kind of f, not only compiled ones
    function = resolve(f, args=_check_args(args), vectorized=vectorized, signatures=("vector",))
    bounds = _check_bounds(bounds, x)
    if n_out is None:
        m = x.size if function.kind == FunctionKind.COMPILED else -1
    else:
        if isinstance(n_out, bool) or not isinstance(n_out, (int, np.integer)) or n_out < 1:
            raise ValueError(f"n_out must be a positive int, got {n_out!r}")
        m = int(n_out)
    df, error, status, nfev, _ = _axis_derivatives(function, x, method=method, accuracy=accuracy,
                                                   step=step, bounds=bounds, m=m,
                                                   n_threads=n_threads, estimate=full_output)
    if full_output:
        return _result(df.T.copy(), error.T.copy(), status, nfev)
    return df.T.copy()



# --------------------------------------------------------------------------------------------
# Hessian: a symmetric 2-D stencil on f values

@lru_cache(maxsize=32)
def _hessian_template(n):
    """Terms of the second differences for the n(n+1)/2 unique entries (diagonal first):
    :func:`_pair_template` of every pair i < j."""
    return _pair_template(n, *np.triu_indices(n, 1))


def _pair_template(n, upper_i, upper_j):
    """Terms of the second differences for the n diagonal entries and the pairs
    ``(upper_i[k], upper_j[k])``, ``upper_i < upper_j`` (diagonal first).

    Points: 0 = x; 1+i = x + h_i e_i; 1+n+i = x - h_i e_i; then x + h_i e_i + h_j e_j and
    x - h_i e_i - h_j e_j for each pair i < j. With ``u = h_i e_i``, ``v = h_j e_j``:
    ``H_ii = (f(x+u) + f(x-u) - 2 f(x)) / h_i^2`` and
    ``H_ij = (f(x+u+v) + f(x-u-v) - f(x+u) - f(x-u) - f(x+v) - f(x-v) + 2 f(x)) / (2 h_i h_j)``,
    both with O(h^2) truncation error.
    """
    pairs = upper_i.size
    diagonal = np.arange(n)
    plus, minus = 1 + diagonal, 1 + n + diagonal
    pair = np.arange(pairs)
    both_plus, both_minus = 1 + 2 * n + pair, 1 + 2 * n + pairs + pair
    zeros_n, zeros_p = np.zeros(n, dtype=np.intp), np.zeros(pairs, dtype=np.intp)
    output = np.concatenate([np.repeat(diagonal, 3), np.repeat(n + pair, 7)]).astype(np.intp)
    point = np.concatenate([
        np.stack([plus, minus, zeros_n], axis=1).ravel(),
        np.stack([both_plus, both_minus, plus[upper_i], minus[upper_i], plus[upper_j],
                  minus[upper_j], zeros_p], axis=1).ravel()]).astype(np.intp)
    coefficient = np.concatenate([np.tile([1.0, 1.0, -2.0], n),
                                  np.tile([1.0, 1.0, -1.0, -1.0, -1.0, -1.0, 2.0], pairs)])
    side = np.concatenate([np.tile(np.array([1, -1, 0], dtype=np.int8), n),
                           np.tile(np.array([1, -1, 1, -1, 1, -1, 0], dtype=np.int8), pairs)])
    first_index = np.concatenate([[-1], diagonal, diagonal, upper_i, upper_i]).astype(np.intp)
    second_index = np.concatenate([[-1], np.full(2 * n, -1), upper_j, upper_j]).astype(np.intp)
    return dict(upper_i=upper_i, upper_j=upper_j, output=output, point=point,
                coefficient=coefficient, side=side, first_index=first_index,
                second_index=second_index, npoints=1 + 2 * n + 2 * pairs,
                noutputs=n + pairs)


def _hessian_levels(function, x, h, levels, ratio, n_threads):
    """Second differences at steps ``h * ratio**k`` (k < levels), all in one evaluation batch.

    Returns ``(entries (levels, n(n+1)/2), rounding, bad, nfev)``.
    """
    n = x.size
    t = _hessian_template(n)
    ui, uj = t["upper_i"], t["upper_j"]
    parts = []
    for level in range(levels):
        step = h * ratio ** level
        with _quiet():
            up, down = (x + step), (x - step)
        first_value = np.concatenate([[0.0], up, down, up[ui], down[ui]])
        second_value = np.concatenate([[0.0], np.zeros(2 * n), up[uj], down[uj]])
        scale = np.concatenate([step ** -2, 0.5 / (step[ui] * step[uj])])
        parts.append((first_value, second_value, scale))
    first_value, second_value, scale = (np.concatenate(c) for c in zip(*parts))
    k, nv = t["npoints"], t["noutputs"]
    first_index = np.tile(t["first_index"], levels)
    second_index = np.tile(t["second_index"], levels)
    shift = np.repeat(np.arange(levels, dtype=np.intp), t["point"].size)
    output = np.tile(t["output"], levels) + shift * nv
    point = np.tile(t["point"], levels) + shift * k
    values = _values(function, x, first_index, first_value, second_index, second_value,
                     n_threads=n_threads)
    entries, magnitude, bad = combine(values, output, point, np.tile(t["coefficient"], levels),
                                      np.tile(t["side"], levels), scale)
    shape = (levels, nv)
    size = np.tile(np.maximum(np.abs(x)[np.concatenate([np.arange(n), ui])],
                              np.abs(x)[np.concatenate([np.arange(n), uj])]), levels)
    with _quiet():
        rounding = _ROUNDING_ULPS * _EPS * magnitude + _argument_rounding(
            entries, size, np.sqrt(np.abs(scale)))
    return (entries.reshape(shape), rounding.reshape(shape), bad.reshape(shape), k * levels)


def _symmetric(entries, n):
    """The symmetric (n, n) matrix with the unique entries (diagonal first, then triu pairs)."""
    t = _hessian_template(n)
    matrix = np.empty((n, n), dtype=entries.dtype)
    diagonal = np.arange(n)
    matrix[diagonal, diagonal] = entries[:n]
    matrix[t["upper_i"], t["upper_j"]] = entries[n:]
    matrix[t["upper_j"], t["upper_i"]] = entries[n:]
    return matrix


def hessian(f, x, *, method="central", accuracy=2, step=None, grad=None, args=(),
            vectorized=False, full_output=False, n_threads=None, sparsity=None):
    """Hessian matrix of a scalar field by finite differences.

    Without ``grad``, the n(n+1)/2 unique entries come from a symmetric 2-D stencil on values
    of ``f`` (``1 + n + n**2`` points for accuracy 2, all in one batch; never a Jacobian of a
    Jacobian). Higher accuracies extrapolate the same stencil at steps ``h, 2h, ...``
    (``accuracy // 2`` steps; the default step of the accuracy is the largest). With
    ``grad``, the Hessian is the central-difference Jacobian of ``grad``, symmetrized. The
    result is exactly symmetric.

    Parameters
    ----------
    f : callable, scipy.LowLevelCallable or numba cfunc
        Scalar field, as for :func:`gradient` (unused when ``grad`` is given, may be None).
    x : array_like, shape (n,)
        Point of differentiation (finite; never modified).
    method : {"central", "richardson"}
        ``"richardson"`` extrapolates adaptively and estimates the error.
    accuracy : {2, 4, 6, 8}
        Order of the truncation error for ``method="central"`` (``"richardson"`` does not use
        it, but it must still be one of these).
    step : float or array_like, optional
        Absolute step(s); default relative (module documentation). For ``"central"`` the base
        step ``h`` (accuracies above 2 extrapolate from ``h, 2h, ...``, up to ``8h``); for
        ``"richardson"`` the largest step (the steps then slide down until the table
        converges and agrees with one more difference at an incommensurate step; status 1
        if it does not).
    grad : callable, scipy.LowLevelCallable or numba cfunc, optional
        Gradient ``grad(x, *args) -> (n,)`` (vectorized: ``(n, k) -> (n, k)``; compiled: a
        vector field with ``m = n``).
    args, vectorized, full_output, n_threads
        As for :func:`gradient`; ``vectorized`` applies to ``f`` or ``grad``, whichever is used.
    sparsity : array_like or scipy.sparse matrix, shape (n, n), optional
        Non-zero pattern of the Hessian (made symmetric: its union with its transpose); the
        result is then a ``scipy.sparse.csr_array`` with that pattern, ``status`` per column.
        With ``grad``: the grouped sparse Jacobian of ``grad`` (:func:`jacobian` with
        ``sparsity``, ``2 groups + 1`` evaluations of ``grad``), symmetrized. Without: the
        symmetric stencil above on the diagonal and the pattern's pairs only, ``1 + 2 n + 2
        p`` evaluations of ``f`` (``p`` pairs ``i < j``; accuracy 2, ``method="central"``):
        linear in ``n`` for a banded pattern, but each point is an n-vector: for large
        ``n`` pass ``grad``.

    Returns
    -------
    ndarray, shape (n, n), or scipy.sparse.csr_array, or DifferentiationResult
        ``status`` in the result is per entry ``(n, n)``. An entry whose stencil meets a
        non-finite value is recomputed with one-sided stencils (accuracy 2, the first
        forward/backward combination of its two axes whose points are finite),
        Richardson-extrapolated at steps sliding down from the accuracy-2 step (from the
        largest Richardson step for ``"richardson"``) until the table converges: its error
        estimate then includes the truncation error, and an entry whose table does not
        converge (no finite second derivative, e.g. ``sqrt`` at 0) gets status 1. Only if
        every combination fails is it NaN with status 3. The ``grad`` path has the
        per-component fallback of :func:`jacobian`.

    Raises
    ------
    ValueError
        As for :func:`gradient`; also ``grad`` returning the wrong shape.
    TypeError
        As for :func:`gradient`.
    Exception
        Any exception raised by ``f`` or ``grad`` propagates unchanged.

    Notes
    -----
    Failure behaviour: entries whose stencil meets non-finite values fall back to extrapolated
    one-sided stencils (status 1 if they do not converge); entries that still fail are NaN with
    status 3 (no exception, no warning).

    Examples
    --------
    >>> import numpy as np
    >>> from fastcalc import hessian
    >>> np.round(hessian(lambda x: x[0] ** 3 * x[1], [1.0, 2.0], accuracy=4), 8)
    array([[12.,  3.],
           [ 3.,  0.]])
    """
    if sparsity is not None:
        from .sparse import sparse_hessian    # (sparse builds on this module)
        return sparse_hessian(f, x, sparsity=sparsity, method=method, accuracy=accuracy,
                              step=step, grad=grad, args=args, vectorized=vectorized,
                              full_output=full_output, n_threads=n_threads)
    x = _check_point(x)
    accuracy = _check_method(method, accuracy, ("central", "richardson"))
    n_threads_for(n_threads)
    n = x.size
    args = _check_args(args)
    if grad is not None:
        grad = resolve(grad, args=args, vectorized=vectorized, signatures=("vector",),
                       name="grad")
        # (the error estimate's extra evaluations only when it is asked for)
        result = jacobian(grad, x, method=method, accuracy=accuracy, step=step, args=args,
                          vectorized=vectorized, full_output=full_output, n_out=n,
                          n_threads=n_threads)
        jac = result.df if full_output else result
        if jac.shape != (n, n):
            raise ValueError(f"grad must return an array of shape ({n},), got "
                             f"({jac.shape[0]},)")
        df = 0.5 * (jac + jac.T)
        if not full_output:
            return df
        error = 0.5 * (result.error + result.error.T)
        status = np.maximum(result.status[:, None], result.status[None, :])
        nfev = result.nfev
    else:
        function = resolve(f, args=args, vectorized=vectorized, signatures=("scalar",))
        richardson = method == "richardson"
        if richardson:   # steps h, h/2, h/4, ... from a large h
            h = np.array(_steps(x, step, "richardson", 2, 2))
            levels, ratio = _RICHARDSON_LEVELS - 1, 0.5
        else:            # steps h, 2h, 4h, ... (accuracy // 2 of them)
            levels, ratio = accuracy // 2, 2.0
            h = np.array(_steps(x, step, "central", accuracy, 2))
            if step is None and levels > 1:
                # the default step of the accuracy is the LARGEST of the ladder: starting
                # from it (up to 8h) reached far beyond the stencil's own extent
                h = _steps(x, h / 2.0 ** (levels - 1), "central", accuracy, 2)
        entries, rounding, bad, nfev = _hessian_levels(function, x, h, levels, ratio, n_threads)
        unconverged = np.zeros(entries.shape[1], dtype=bool)
        if levels == 1:
            value, estimate = entries[0], rounding[0]
        elif richardson:
            def extend(level, rows):
                # the whole stencil at each distinct level (per row for the cross-check)
                levels = np.broadcast_to(level, rows.shape)
                e, r = np.empty((rows.size, 1)), np.empty((rows.size, 1))
                b, count = np.empty(rows.size, dtype=np.uint8), 0
                for distinct in np.unique(levels):
                    mine = levels == distinct
                    le, lr, lb, n_points = _hessian_levels(function, x, h * ratio ** distinct,
                                                           1, ratio, n_threads)
                    e[mine, 0], r[mine, 0], b[mine] = (le[0, rows[mine]], lr[0, rows[mine]],
                                                       lb[0, rows[mine]])
                    count += n_points
                return e, r, b, count

            # cross-checked: steps near multiples of a period (sin at 1e6) alias
            value, estimate, flags, extra = _adaptive_romberg(
                entries[:, :, None], rounding[:, :, None], bad, "central", extend,
                cross_check=True)
            value, estimate, nfev = value[:, 0], estimate[:, 0], nfev + extra
            unconverged = (flags & _UNCONVERGED) != 0
            bad = (flags & ~np.uint8(_UNCONVERGED))[None, :]
        else:
            value, estimate = _extrapolate(entries[::-1], rounding[::-1])
        failed = np.bitwise_or.reduce(bad, axis=0) != 0
        if full_output and not richardson:
            estimate, unconverged, extra = _hessian_truncation(
                function, x, h, entries, rounding, bad, accuracy, n_threads)
            nfev += extra
        if failed.any():
            base_h = np.array(_steps(x, step, "central", 2, 2))   # suits accuracy 2
            fixed, fixed_value, fixed_error, fixed_unconverged, extra = _hessian_fallback(
                function, x, h if richardson else base_h, np.flatnonzero(failed), n_threads)
            value[fixed], estimate[fixed] = fixed_value, fixed_error
            unconverged[fixed] = fixed_unconverged
            failed[fixed] = False
            nfev += extra
        value = np.where(failed, np.nan, value)
        estimate = np.where(failed, np.nan, estimate)
        df = _symmetric(value, n)
        error = _symmetric(estimate, n)
        status = _symmetric(np.where(failed, Status.NON_FINITE, np.where(
            unconverged, Status.MAX_ITERATIONS, 0)).astype(np.int8), n)
    if full_output:
        return _result(df, error, status, nfev)
    return df


def _hessian_truncation(function, x, h, entries, rounding, bad, accuracy, n_threads):
    """Error estimate of the fixed Hessian (its ladder ``entries`` at ``h, 2h, ...``, shape
    ``(levels, n(n+1)/2)``) including truncation: the same ladder from ``h * _CHECK_STEPS``
    (:func:`_checked`; those from ``h / 2**k`` share all but k steps with it).
    Returns ``(error, unconverged, nfev)``."""
    n, levels = x.size, entries.shape[0]
    k = _CHECK_STEPS.size - 2      # smaller steps h / 2**k ... h / 2
    below, below_rounding, below_bad, nfev = _hessian_levels(function, x, h * _CHECK_STEPS[k],
                                                             k, 2.0, n_threads)
    steps = [np.concatenate([a, b]) for a, b in ((below, entries), (below_rounding, rounding),
                                                  (below_bad, bad))]
    ladders = [[a[k - j:k - j + levels] for a in steps] for j in range(k + 1)]
    cross = _hessian_levels(function, x, h * _CHECK_STEPS[-1], levels, 2.0, n_threads)
    ladders.append(cross[:3])
    values = [_extrapolate(e[::-1], r[::-1]) for e, r, _ in ladders]
    flags = np.stack([np.bitwise_or.reduce(b, axis=0) for _, _, b in ladders])
    _, error, flags = _checked(np.stack([v for v, _ in values])[:, :, None],
                               np.stack([r for _, r in values])[:, :, None], flags,
                               "central", accuracy)
    unconverged = (flags & _UNCONVERGED) != 0
    # A cross entry's steps along axis i are those of the diagonal entry i: where they do not
    # resolve f, neither do they for the cross entry (x**-2 at 1e-8: its cross entries agreed
    # at every step, 2.5e15 for 7e23).
    t = _hessian_template(n)
    unconverged[n:] |= unconverged[t["upper_i"]] | unconverged[t["upper_j"]]
    unconverged &= (flags & ~np.uint8(_UNCONVERGED)) == 0    # (non-finite: the fallback's)
    return error[:, 0], unconverged, nfev + cross[3]


def _hessian_fallback(function, x, h, failed, n_threads):
    """One-sided second differences (accuracy 2), Richardson-extrapolated, for the unique
    entries ``failed``.

    Every sign combination of the one-sided stencils (forward/backward along each axis of the
    entry) is evaluated at the steps ``h / 2**k`` (``k < 6``) in one batch; an entry takes the
    first combination whose points are all finite (else the first whose smallest step is, the
    steps then sliding down past the non-finite region). Its table then slides to smaller
    steps until it converges (:func:`_adaptive_romberg`), which gives an honest error estimate:
    a single one-sided difference at a step comparable to the distance to a singularity (the
    edge of the domain of ``sqrt`` or ``log``) was wrong by up to 100% with the rounding error
    as its estimate. Returns ``(fixed entries, values, errors, unconverged (of fixed), nfev)``.
    """
    n = x.size
    t = _hessian_template(n)
    rows = np.concatenate([np.arange(n), t["upper_i"]])[failed]
    cols = np.concatenate([np.arange(n), t["upper_j"]])[failed]
    # one row per (entry, sign combination); its terms f(x + a h_i e_i + b h_j e_j) * w
    row_entry, row_i, row_j = [], [], []
    term_row, term_a, term_b, term_w = [], [], [], []
    for position, (i, j) in enumerate(zip(rows, cols)):
        if i == j:
            combinations = [[(s, 0.0, w) for s, w in zip(*stencil(kind, 2, 2)[:2])]
                            for kind in ("forward", "backward")]
        else:
            one_sided = [stencil(kind, 2, 1)[:2] for kind in ("forward", "backward")]
            combinations = [[(a, b, wa * wb) for a, wa in zip(*side_i) for b, wb in zip(*side_j)]
                            for side_i in one_sided for side_j in one_sided]
        for terms in combinations:
            for a, b, w in terms:
                term_row.append(len(row_entry)), term_a.append(a), term_b.append(b)
                term_w.append(w)
            row_entry.append(position), row_i.append(i), row_j.append(j)
    row_entry, row_i, row_j = np.array(row_entry), np.array(row_i), np.array(row_j)
    term_row, term_a, term_b, term_w = (np.array(term_row), np.array(term_a), np.array(term_b),
                                        np.array(term_w))
    diagonal = row_i == row_j
    size = np.maximum(np.abs(x[row_i]), np.abs(x[row_j]))

    @_quietly
    def levels(selected, factors):
        """Differences of the rows ``selected`` at the steps ``h * factors[k]``:
        ``(estimates (L, r), rounding (L, r), bad (L, r), nfev)``."""
        terms = np.flatnonzero(np.isin(term_row, selected))
        local = np.searchsorted(selected, term_row[terms])   # row of each term within selected
        count = len(factors)
        shift = np.repeat(np.arange(count), terms.size)
        factor = np.repeat(np.asarray(factors, dtype=np.float64), terms.size)
        tr = np.tile(term_row[terms], count)
        a, b = np.tile(term_a[terms], count), np.tile(term_b[terms], count)
        i, j = row_i[tr], row_j[tr]
        first_value = x[i] + a * (h[i] * factor)
        second_value = x[j] + b * (h[j] * factor)
        first_index = np.where(a != 0, i, -1).astype(np.intp)
        second_index = np.where((b != 0) & ~diagonal[tr], j, -1).astype(np.intp)
        values = _values(function, x, first_index, np.where(a != 0, first_value, 0.0),
                         second_index, np.where(second_index >= 0, second_value, 0.0),
                         n_threads=n_threads)
        steps = np.asarray(factors, dtype=np.float64)[:, None]
        scale = (1.0 / ((h[row_i[selected]] * steps) * (h[row_j[selected]] * steps))).ravel()
        output = (np.tile(local, count) + shift * selected.size).astype(np.intp)
        result, magnitude, bad = combine(values, output, np.arange(output.size, dtype=np.intp),
                                         np.tile(term_w[terms], count),
                                         np.zeros(output.size, dtype=np.int8), scale)
        # The rounding of the points moves each value by the shift of its point (computed
        # exactly) times the slope of f along that axis, |f(x + a h e) - f(x)| / (|a| h) at
        # the most (largest over the stencil). (|H| h in place of the slope was 1/h too small
        # at a domain edge, log at 1: the table then slid on into rounding noise.)
        center = np.zeros(scale.size)
        at_x = (a == 0) & (b == 0)
        center[output[at_x]] = values[at_x, 0]
        change = np.abs(values[:, 0] - center[output])
        rounding = _ROUNDING_ULPS * _EPS * magnitude[:, 0]
        # (diagonal entries: b = 0, the second axis contributes nothing)
        for offset, index, value, along in ((a, i, first_value, (a != 0) & (b == 0)),
                                            (b, j, second_value, (a == 0) & (b != 0))):
            moving = np.where(offset != 0, np.abs((value - x[index])
                                                  - offset * (h[index] * factor)), 0.0)
            weighted = np.bincount(output, np.abs(np.tile(term_w[terms], count)) * moving,
                                   minlength=scale.size)
            slope = np.zeros(scale.size)
            np.maximum.at(slope, output[along],
                          change[along] / (np.abs(offset[along]) * (h[index] * factor)[along]))
            rounding += 2.0 * slope * weighted * np.abs(scale)
        shape = (count, selected.size)
        return (result.reshape(shape), rounding.reshape(shape), bad.reshape(shape),
                output.size)

    everything = np.arange(row_entry.size)
    estimates, rounding, bad, nfev = levels(everything,
                                            2.0 ** -np.arange(_RICHARDSON_LEVELS))
    clean = (bad == 0).all(axis=0)
    chosen = np.full(failed.size, -1)
    for position in range(failed.size):
        candidates = np.flatnonzero(row_entry == position)
        for usable in (clean[candidates], bad[-1, candidates] == 0):
            if usable.any():     # all steps clean first, else the smallest step clean
                chosen[position] = candidates[np.argmax(usable)]
                break
    ok = chosen >= 0
    selected = chosen[ok]
    if selected.size == 0:
        empty = np.empty(0)
        return np.empty(0, dtype=np.intp), empty, empty, np.empty(0, dtype=bool), nfev

    def extend(level, active):
        e, r, b, count = levels(selected[active], [2.0 ** -level])
        return e[0, :, None], r[0, :, None], b[0], count

    value, error, flags, extra = _adaptive_romberg(
        estimates[:, selected, None], rounding[:, selected, None], bad[:, selected],
        "forward", extend)     # (indexing by selected copies: the tables may be slid in place)
    fixed = (flags & ~np.uint8(_UNCONVERGED)) == 0
    unconverged = (flags & _UNCONVERGED) != 0
    return (failed[ok][fixed], value[fixed, 0], error[fixed, 0], unconverged[fixed],
            nfev + extra)


@_quietly
def _extrapolate(estimates, rounding):
    """Full Richardson extrapolation (powers 2, 4, ...) of estimates at steps ``h / 2**k``."""
    table, errors = estimates, rounding
    for column in range(estimates.shape[0] - 1):
        factor = 4.0 ** (column + 1)
        table = table[1:] + (table[1:] - table[:-1]) / (factor - 1.0)
        errors = errors[1:] * (factor + 1.0) / (factor - 1.0)
    return table[0], errors[0]



# --------------------------------------------------------------------------------------------
# elementwise derivatives, gradient check, Taylor polynomials

def _call_elementwise(f, points, args, name="f", complex_ok=False):
    """``f(points, *args)`` checked to return one real value per point (same shape); complex
    values only with ``complex_ok`` (complex step)."""
    values = real_values(f(points, *args), name, complex_ok)
    # No broadcasting: a scalar from an array call (np.sum(x**2)) is not elementwise, and
    # broadcasting it would give silently zero derivatives.
    if values.shape != points.shape:
        raise ValueError(f"{name} must be elementwise: called with shape {points.shape}, "
                         f"it returned shape {values.shape} (a constant function must return "
                         "an array of its input's shape, e.g. np.full_like(x, c))")
    return values


def _elementwise_levels(f, x, h, offsets, weights, factors, order, args, shape):
    """One stencil at the steps ``h * factors[l]`` for every element (one call of f).

    Returns ``(estimates (L, N), rounding (L, N), bad (L, N), nfev)``, ``bad`` with the flags of
    ``combine`` per level.
    """
    # points[level, offset, element] = x + offset * h * factor
    deltas = (factors[:, None, None] * offsets[None, :, None]) * h[None, None, :]
    with _quiet():
        points = x[None, None, :] + deltas
    # sum |w| |shift| of the rounded points, for their rounding error (orders above 1)
    shift = point_shifts(np.ascontiguousarray(x), np.ascontiguousarray(h),
                         np.ascontiguousarray(offsets, dtype=np.float64),
                         np.ascontiguousarray(weights, dtype=np.float64),
                         np.ascontiguousarray(factors, dtype=np.float64)) if order > 1 else None
    values = np.ascontiguousarray(_call_elementwise(f, points.reshape((-1,) + shape),
                                                    args).reshape(points.shape))
    a, b = _innermost_pair(offsets) if order > 1 else (0, 0)
    # one compiled pass: the differences, their rounding error and the non-finite flags
    return (*elementwise_combine(values, np.ascontiguousarray(x), np.ascontiguousarray(h),
                                 np.ascontiguousarray(offsets, dtype=np.float64),
                                 np.ascontiguousarray(weights, dtype=np.float64),
                                 np.ascontiguousarray(factors, dtype=np.float64), order,
                                 _ROUNDING_ULPS, shift, a, b), values.size)


def _innermost_pair(offsets):
    """Indices ``(a, b)`` of two stencil points whose difference gives a first derivative:
    offsets 1 and -1 when both are there, else 1 and 0, else 0 and -1."""
    offsets = list(offsets)
    for high, low in ((1, -1), (1, 0), (0, -1)):
        if high in offsets and low in offsets:
            return offsets.index(high), offsets.index(low)
    raise ValueError(f"no first difference in the stencil {offsets}")


def _restricted(args, shape, rows, compiled):
    """``args`` for the elements ``rows`` (flat indices) of x: per-element arrays cut to those
    elements (a compiled function's ``(N, k)`` parameter matrix by row), the rest unchanged."""
    if compiled:
        return tuple(a[rows] for a in args)
    return tuple(np.broadcast_to(a, shape).reshape(-1)[rows]
                 if isinstance(a, np.ndarray) and a.ndim else a for a in args)


def _elementwise_stage(f, x, h, kind, accuracy, order, richardson, args, shape, compiled,
                       estimate=False):
    """Derivatives of ``f`` at every element of ``x`` with one stencil kind.

    Returns ``(df, error, bad, nfev)`` flattened, ``bad`` with the flags of ``combine`` (and
    ``_UNCONVERGED``). With ``estimate``, a fixed stencil's error includes its truncation
    (:func:`_checked`).
    """
    base = 2 if richardson else accuracy
    base += base % 2 if kind == "central" else 0
    offsets, weights, _ = stencil(kind, base, order)
    offsets, weights = np.array(offsets), np.array(weights)
    if not richardson:
        estimates, rounding, bad, nfev = _elementwise_levels(
            f, x, h, offsets, weights, np.ones(1), order, args, shape)
        if not estimate:
            return estimates[0], rounding[0], bad[0], nfev
        # the smaller steps in a call of their own: the values at h are the plain call's
        more = _elementwise_levels(f, x, h, offsets, weights,
                                   _CHECK_STEPS[1:], order, args, shape)
        df, error, bad = _checked(*(np.concatenate([a, b])[:, :, None] for a, b in zip(
            (estimates, rounding), more[:2])), np.concatenate([bad, more[2]]), kind, base)
        return df[:, 0], error[:, 0], bad, nfev + more[3]
    estimates, rounding, bad, nfev = _elementwise_levels(
        f, x, h, offsets, weights, 2.0 ** -np.arange(_RICHARDSON_LEVELS), order, args, shape)

    def extend(level, rows):
        # only the elements whose tables have not converged yet (level: scalar or per row)
        e, r, b, count = _elementwise_levels(f, x[rows], h[rows] * 2.0 ** -level, offsets,
                                             weights, np.ones(1), order,
                                             _restricted(args, shape, rows, compiled),
                                             (rows.size,))
        return e[0, :, None], r[0, :, None], b[0], count

    # the cross-check costs one stencil per element: not for first derivatives (the bulk of
    # the work, whose default steps at large |x| are much smaller)
    df, error, bad, extra = _adaptive_romberg(estimates[:, :, None], rounding[:, :, None], bad,
                                              kind, extend, cross_check=order > 1)
    return df[:, 0], error[:, 0], bad, nfev + extra


def derivative(f, x, *, order=1, method="central", accuracy=2, step=None, args=(),
               full_output=False):
    """Derivative of order 1 to 4 of an elementwise function at every element of ``x``.

    ``f`` is applied elementwise (like a NumPy ufunc): all stencil points are evaluated in ONE
    call, on an array of shape ``(points,) + x.shape``; array ``args`` broadcast against it
    (per-element parameters).

    Parameters
    ----------
    f : callable, scipy.LowLevelCallable or numba cfunc
        ``f(x, *args)`` returning an array of the shape of ``x``; or a compiled elementwise
        ``double f(double x, int k, double *p, void *user_data)``, whose per-element
        parameters are given as ``args=(p,)`` with ``p`` of shape ``x.shape + (k,)``; or a
        compiled block function ``int f(int n, const double *x, int k, const double *p,
        double *fx, double *dfx, void *user_data)`` (see :func:`fastcalc.newton`; called with
        dfx NULL on blocks of up to 512 stencil points; a failed call makes its values NaN).
    x : float or array_like
        Points of differentiation (finite; never modified).
    order : {1, 2, 3, 4}
        Order of the derivative.
    method : {"central", "forward", "backward", "complex", "richardson"}
        ``"complex"`` (order 1 only) needs ``f`` to accept complex input.
    accuracy : int
        Order of the truncation error: 2, 4, 6, 8 (central) or 1 to 4 (one-sided).
        ``"richardson"`` and ``"complex"`` do not use it, but it must still be 2, 4, 6 or 8.
    step : float or array_like, optional
        Absolute step(s) broadcastable to ``x``; default ``c * max(1, |x|)``, limited above
        ``|x| = 10`` (module documentation).
    args : tuple
        Extra arguments of ``f`` (array ones: per-element parameters, passed to f read-only).
    full_output : bool
        Return a :class:`DifferentiationResult` with per-element ``df``, ``error``, ``status``
        (the fixed stencils' error estimates take four more steps: module documentation).

    Returns
    -------
    float, ndarray (shape of x) or DifferentiationResult

    Raises
    ------
    ValueError
        ``x`` empty or not finite; ``order``, ``method`` or ``accuracy`` invalid; ``step`` not
        positive and finite or not broadcastable to ``x``; ``f`` not returning exactly the shape
        of its input (no broadcasting: a constant must be returned as ``np.full_like(x, c)``);
        the parameters ``args[0]`` of a compiled ``f`` not of shape ``x.shape + (k,)``.
    TypeError
        ``x`` complex or not numeric; ``f`` not callable or returning anything but real
        numbers (as for :func:`gradient`); parameters
        of a compiled ``f`` not real numbers;
        ``method="complex"`` with a compiled ``f`` or an ``f`` that is not complex-safe (it
        discards the imaginary part, e.g. ``math.sin``: NumPy's ``ComplexWarning`` is turned
        into this error).
    Exception
        Any exception raised by ``f`` propagates unchanged.

    Notes
    -----
    Failure behaviour: an element whose stencil meets a non-finite value of ``f`` is recomputed
    with extrapolated accuracy-2 one-sided differences (module documentation; status 1 if
    their table does not converge); if that fails too its derivative is NaN with status 3
    (``NON_FINITE``) in the ``full_output`` result. With ``method="richardson"`` an element
    whose extrapolation table does not converge within the step budget (or, for orders 2 to
    4, whose converged table is contradicted by a difference at an incommensurate step:
    aliasing of an oscillation) keeps its value with status 1 (``MAX_ITERATIONS``; its value
    and error estimate are unreliable). No exception or warning
    is raised for it: check ``status`` (or NaN). Other elements are unaffected.

    Examples
    --------
    >>> import numpy as np
    >>> from fastcalc import derivative
    >>> np.round(derivative(np.sin, [0.0, np.pi / 3], accuracy=4), 10)
    array([1. , 0.5])
    >>> round(derivative(np.exp, 1.0, order=2, method="richardson"), 10)
    2.7182818285
    """
    function = resolve(f, signatures=("elementwise", "block"))
    if isinstance(order, bool) or not isinstance(order, (int, np.integer)) \
            or not 1 <= order <= 4:
        raise ValueError(f"order must be 1, 2, 3 or 4, got {order!r}")
    accuracy = _check_method(method, accuracy)
    if method == "complex" and order != 1:
        raise ValueError("method='complex' computes first derivatives only (order=1)")
    args = _check_args(args)
    x_arr = real_array(x, "x")
    if x_arr.size == 0:
        raise ValueError("x must not be empty")
    if not np.isfinite(x_arr).all():
        raise ValueError("x must be finite (no NaN or inf)")
    shape = x_arr.shape
    flat = x_arr.ravel()
    compiled = function.kind == FunctionKind.COMPILED
    if compiled:
        f, args = _compiled_elementwise(function, args, shape, method)
    else:
        _check_elementwise_args(args, shape)
        # read-only: f must not change the caller's per-element parameters
        args = tuple(read_only(a) if isinstance(a, np.ndarray) else a for a in args)
    richardson = method == "richardson"
    if method == "complex":
        h = _steps(flat, _elementwise_steps(step, shape),
                   "complex", 2, 1)
        with _complex_safe("f"):
            values = _call_elementwise(f, (flat + 1j * h).reshape(shape), args,
                                       complex_ok=True).ravel()
        df = np.asarray(values.imag, dtype=np.float64) / h
        error = _ROUNDING_ULPS * _EPS * np.abs(df)
        bad = np.where(np.isfinite(values), 0, 3).astype(np.uint8)
        nfev = flat.size
        h = _steps(flat, None, "central", 2, 1)
        accuracy, method = 2, "central"
    else:
        kind = "central" if richardson else method
        h = _steps(flat, _elementwise_steps(step, shape),
                   "richardson" if richardson else kind, accuracy, order)
        df, error, bad, nfev = _elementwise_stage(f, flat, h, kind, accuracy, order,
                                                  richardson, args, shape, compiled,
                                                  full_output)
    status = np.zeros(flat.size, dtype=np.int8)
    # a fixed stencil whose error estimate cannot be trusted keeps its value (that of the
    # plain call) with status 1; only non-finite values call for the fallback
    unchecked = (bad & _UNCONVERGED) != 0 if not richardson else np.zeros(flat.size, bool)
    status[unchecked] = Status.MAX_ITERATIONS
    failed = (bad & ~np.uint8(_UNCONVERGED) if not richardson else bad) != 0
    if failed.any():
        clean_forward = (bad & 1) == 0
        attempts = [("forward", failed & clean_forward), ("backward", failed & ~clean_forward),
                    ("backward", failed & clean_forward), ("forward", failed & ~clean_forward)]
        if method in ("forward", "backward"):
            attempts = [(_OPPOSITE[method], failed)]
        # extrapolated one-sided differences whatever the method (as in _fallback)
        for kind, wanted in attempts:
            wanted = wanted & failed
            if not wanted.any():
                continue
            sub_df, sub_error, sub_bad, extra = _elementwise_stage(
                f, flat, h, kind, 2, order, True, args, shape, compiled)
            nfev += extra
            fixed = wanted & ((sub_bad & ~np.uint8(_UNCONVERGED)) == 0)
            df[fixed], error[fixed] = sub_df[fixed], sub_error[fixed]
            status[fixed & ((sub_bad & _UNCONVERGED) != 0)] = Status.MAX_ITERATIONS
            failed = failed & ~fixed
        df[failed] = np.nan
        error[failed] = np.nan
        status[failed] = Status.NON_FINITE
    df, error, status = df.reshape(shape), error.reshape(shape), status.reshape(shape)
    if full_output:
        return _result(df[()], error[()], status, nfev)
    return df[()] if df.ndim else float(df)


def _compiled_elementwise(function, args, shape, method):
    """A compiled elementwise function as an array function ``(f, args)``: ``f(points, *args)``
    with ``args`` the ``(N, k)`` matrix of the parameter array ``args[0]`` of shape
    ``x.shape + (k,)`` (``k`` parameters per element), if one is given."""
    if method == "complex":
        raise TypeError("f: method='complex' needs a Python function that accepts complex "
                        "input; compiled callables are real-valued")
    if len(args) > 1:
        raise TypeError("f: a compiled elementwise function takes one parameter array "
                        "(shape x.shape + (k,)) in args")
    if not args:
        return (lambda points: elementwise_values(function, points)), ()
    parameters = np.ascontiguousarray(real_array(args[0], "args[0]"))
    # Only the documented layout: a transposed (k, N) array has the right size but would give
    # each element another element's parameters.
    if parameters.shape[:-1] != shape or parameters.ndim != len(shape) + 1:
        raise ValueError(f"args[0] must have shape x.shape + (k,) = {shape + ('k',)}, "
                         f"got {parameters.shape}".replace("'k'", "k"))
    # the (N, k) matrix stays an argument, so that it can be cut to some elements
    return (lambda points, p: elementwise_values(function, points, p)), (
        parameters.reshape(math.prod(shape), -1),)


def check_grad(f, grad, x, *, args=()):
    """Largest discrepancy between ``grad`` and a finite-difference gradient of ``f``.

    The reference is a Richardson-extrapolated central-difference gradient. The discrepancy is
    ``max|grad(x) - g_fd| / max(|grad(x)|_max, |g_fd|_max)`` (0 when both vanish): about 1e-10
    or less for a correct gradient, order 1 for a wrong one.

    Parameters
    ----------
    f : callable, scipy.LowLevelCallable or numba cfunc
        Scalar field, as for :func:`gradient`.
    grad : callable, scipy.LowLevelCallable or numba cfunc
        ``grad(x, *args) -> (n,)``, or a compiled vector field with ``m = n``.
    x : array_like, shape (n,)
    args : tuple
        Extra arguments of ``f`` and ``grad``.

    Returns
    -------
    float

    Raises
    ------
    ValueError
        ``x`` empty, not 1-D or not finite; ``grad`` returning the wrong shape.
    TypeError
        ``f`` or ``grad`` not callable or returning non-numbers.
    Exception
        Any exception raised by ``f`` or ``grad`` propagates unchanged.

    Notes
    -----
    Failure behaviour: NaN (never an exception) when ``grad`` or the finite-difference
    reference is not finite.

    Examples
    --------
    >>> from scipy.optimize import rosen, rosen_der
    >>> from fastcalc import check_grad
    >>> check_grad(rosen, rosen_der, [1.2, 0.8, -0.5]) < 1e-10
    True
    >>> check_grad(rosen, lambda x: 2 * rosen_der(x), [1.2, 0.8, -0.5]) > 0.4
    True
    """
    x = _check_point(x)
    args = _check_args(args)
    gradient_function = resolve(grad, args=args, signatures=("vector",), name="grad")
    analytic = gradient_function.vector_values(x[None, :].copy(), x.size)[0]
    reference = gradient(f, x, method="richardson", args=args)
    scale = max(np.max(np.abs(analytic)), np.max(np.abs(reference)))
    if not np.isfinite(scale):
        return float("nan")
    if scale == 0:
        return 0.0
    return float(np.max(np.abs(analytic - reference)) / scale)


def taylor(f, x0, order, *, args=()):
    """Taylor polynomial of ``f`` about ``x0`` from finite-difference derivatives.

    Parameters
    ----------
    f : callable, scipy.LowLevelCallable or numba cfunc
        Elementwise function of one variable, as for :func:`derivative` (a compiled
        ``double f(double x, int k, double *p, void *user_data)`` takes its parameters as
        ``args=(p,)`` with ``p`` of shape ``(k,)``).
    x0 : float
        Expansion point.
    order : {0, 1, 2, 3, 4}
        Degree of the polynomial.
    args : tuple
        Extra arguments of ``f``.

    Returns
    -------
    numpy.polynomial.Polynomial
        ``p.coef[k] = f^(k)(x0) / k!``, coefficients of powers of ``(x - x0)``; its domain is
        shifted so that ``p(x)`` evaluates the Taylor approximation at ``x`` directly.
        Derivatives come from Richardson extrapolation.

    Raises
    ------
    ValueError
        ``x0`` not a finite scalar; ``order`` not an int from 0 to 4; ``f`` not elementwise.
    TypeError
        ``f`` not callable, of the wrong compiled signature, or returning non-numbers.
    Exception
        Any exception raised by ``f`` propagates unchanged.

    Notes
    -----
    Failure behaviour: coefficients whose derivative does not succeed (status other than 0
    in :func:`derivative` with ``method="richardson"``: non-finite values of ``f`` on both
    sides of ``x0``, or an extrapolation that does not converge) are NaN; no exception or
    warning.

    Examples
    --------
    >>> import numpy as np
    >>> from fastcalc import taylor
    >>> p = taylor(np.exp, 0.0, 3)
    >>> np.round(p.coef, 10)
    array([1.        , 1.        , 0.5       , 0.16666667])
    >>> round(float(p(0.1)), 6)
    1.105167
    """
    if isinstance(order, bool) or not isinstance(order, (int, np.integer)) \
            or not 0 <= order <= 4:
        raise ValueError(f"order must be an int from 0 to 4, got {order!r}")
    x0 = _check_point(x0, "x0")
    if x0.size != 1:
        raise ValueError("x0 must be a scalar")
    args = _check_args(args)
    center = float(x0[0])
    # f(x0) through the same layer as the derivatives (compiled callables included)
    function = resolve(f, signatures=("elementwise", "block"))
    if function.kind == FunctionKind.COMPILED:
        call, call_args = _compiled_elementwise(function, args, (), "richardson")
    else:
        _check_elementwise_args(args, ())
        call, call_args = f, args
    coefficients = [float(_call_elementwise(call, np.array([center]), call_args)[0])]
    for k in range(1, order + 1):
        result = derivative(f, center, order=k, method="richardson", args=args,
                            full_output=True)
        # an unconverged or failed derivative gives NaN, as documented, not a wrong number
        coefficients.append(result.df / math.factorial(k) if result.status == 0 else np.nan)
    return Polynomial(coefficients, domain=[center - 1.0, center + 1.0], window=[-1.0, 1.0])
