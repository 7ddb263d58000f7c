"""Bad-input matrix: every public routine x every class of bad input, crash-safe.

Each routine's cases run in ONE child interpreter (this file run as a script), so a segfault or
an abort fails the cases of that routine instead of killing the pytest run; inside the child a
``faulthandler`` watchdog ends a case that hangs (even one stuck in C code holding the GIL). The
child prints one JSON line when a case starts and one with its outcome; the parent turns every
case into its own pytest item.

The documented outcome of a bad input is one of
* a ``ValueError``/``TypeError`` whose message names the offending argument,
* a per-problem status (``fastcalc.Status``) with NaN where no value exists, the good problems of a
  batch unaffected,
* for integer, float32, read-only and non-contiguous inputs: a float64 result bitwise equal to
  the one computed from the float64 C-contiguous copy of the same values.
"""
import json
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np

import fastcalc as fc
from fastcalc import Status, models
from fastcalc._testfunctions import low_level

CASE_TIMEOUT = 30.0          # seconds per case inside the child (a hang fails that case)
CASES = {}                   # routine -> {case name: function}; a case raises AssertionError
KNOWN_BUGS = {}              # (routine, case) -> reason: xfail(strict=True) until fixed



class Boom(Exception):
    """The exception user callbacks raise in these tests (must reach the caller unchanged)."""


def case(routine, name, bug=None):
    def register(function):
        CASES.setdefault(routine, {})[name] = function
        if bug:
            KNOWN_BUGS[(routine, name)] = bug
        return function
    return register


# ---------------------------------------------------------------- outcome helpers
def _names(message, name):
    """Whether ``message`` names the argument ``name`` as a whole word (case-insensitive)."""
    pattern = r"(?<![A-Za-z0-9_])" + re.escape(name) + r"(?![A-Za-z0-9_])"
    return re.search(pattern, message, flags=re.IGNORECASE) is not None


def expect_error(types, name, function):
    """``function()`` raises one of ``types`` with a message naming ``name`` (or one of a tuple
    of acceptable names)."""
    names = (name,) if isinstance(name, str) else name
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            outcome = function()
    except types as exc:
        assert any(_names(str(exc), n) for n in names), \
            f"{type(exc).__name__} does not name {name!r}: {exc}"
        return
    except BaseException as exc:
        raise AssertionError(f"expected {types} naming {name!r}, got {type(exc).__name__}: "
                             f"{exc}") from exc
    raise AssertionError(f"expected {types} naming {name!r}; returned {outcome!r:.200}")


def arrays(result):
    """The numeric content of any fastcalc result, as a tuple of arrays."""
    if isinstance(result, dict):        # OptimizeResult, DifferentiationResult
        keys = [k for k in ("x", "df", "multipliers", "fun", "status", "params", "cov", "chi2",
                            "stderr", "error") if k in result]
        return tuple(np.asarray(result[k]) for k in keys)
    for attributes in (("params", "cov", "chi2", "status"), ("coef",)):
        if all(hasattr(result, a) for a in attributes):
            return tuple(np.asarray(getattr(result, a)) for a in attributes)
    return (np.asarray(result),)


def expect_same(got, want, what):
    got, want = arrays(got), arrays(want)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        if w.dtype.kind == "f":
            assert g.dtype == np.float64, f"{what}: result dtype {g.dtype}, expected float64"
        assert g.shape == w.shape, f"{what}: shape {g.shape} vs {w.shape}"
        assert np.array_equal(g, w, equal_nan=w.dtype.kind in "fc"), \
            f"{what}: result differs from the float64 input's: {g!r:.300} vs {w!r:.300}"


def quiet(function, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return function(*args, **kwargs)


def readonly(a):
    a = np.array(a, dtype=np.float64)
    a.flags.writeable = False
    return a


def strided(a):
    """A non-contiguous float64 view holding the values of ``a`` (last axis strided)."""
    a = np.asarray(a, dtype=np.float64)
    big = np.zeros(a.shape[:-1] + (2 * a.shape[-1],)) if a.ndim else None
    if big is None:
        return a
    big[..., ::2] = a
    view = big[..., ::2]
    assert not view.flags.c_contiguous
    return view


def fortran(a):
    f = np.asfortranarray(np.asarray(a, dtype=np.float64))
    assert a.ndim < 2 or not f.flags.c_contiguous
    return f


# ------------------------------------------------ generic input-variant cases (one per class)
def register_input_variants(routine, run, good, name, *, nan="error", inf="error",
                            empty="error", wrong_ndim="error", bugs=None, names=None):
    """Cases for the primary array argument ``name`` of ``routine``: ``run(value)`` calls it.

    ``good`` is an integer-valued float64 array so that the integer variant holds the same
    values. ``nan``, ``inf``, ``empty``, ``wrong_ndim``: "error" (ValueError naming ``name``),
    None (not applicable) or a function ``check(run)`` asserting the documented outcome.
    """
    good = np.asarray(good, dtype=np.float64)
    bugs = bugs or {}
    names = names or {}

    def variant(label, make):
        def check():
            want = run(good)
            expect_same(run(make(good)), want, f"{routine} with {label} {name}")
        case(routine, label, bugs.get(label))(check)

    variant("integer", lambda a: a.astype(np.int64))
    variant("int32", lambda a: a.astype(np.int32))
    variant("readonly", readonly)
    variant("noncontiguous", strided)
    if good.ndim >= 2:
        variant("fortran_order", fortran)
    if good.ndim >= 1:
        variant("list", lambda a: a.tolist())

    def float32_check():
        f32 = (good + 0.1).astype(np.float32)       # not exactly representable: real rounding
        expect_same(run(f32), run(f32.astype(np.float64)), f"{routine} with float32 {name}")
    case(routine, "float32", bugs.get("float32"))(float32_check)

    def bad(label, value, expected):
        if expected is None:
            return
        if expected == "error":
            check = lambda: expect_error((ValueError,), names.get(label, name),  # noqa: E731
                                         lambda: run(value))
        else:
            check = lambda: expected(run)  # noqa: E731
        case(routine, label, bugs.get(label))(check)

    with_nan = good.copy()
    with_nan.flat[min(1, good.size - 1)] = np.nan
    with_inf = good.copy()
    with_inf.flat[0] = np.inf
    bad("nan", with_nan, nan)
    bad("inf", with_inf, inf)
    bad("empty", good.reshape(-1)[:0].reshape(good.shape[:-1] + (0,)) if good.ndim else
        np.empty(0), empty)
    bad("wrong_ndim", good[..., None, None], wrong_ndim)

    def complex_check():
        expect_error((TypeError, ValueError), names.get("complex", name), lambda: run(good + 1j))
    case(routine, "complex", bugs.get("complex"))(complex_check)

    def text_check():
        expect_error((TypeError, ValueError), names.get("strings", name),
                     lambda: run(np.array(["a"] * good.size).reshape(good.shape)))
    case(routine, "strings", bugs.get("strings"))(text_check)


def register_callback_faults(routine, call, name, *, nan_check, wrong_shape, bugs=None):
    """Cases for a user callback: ``call(callback_wrapper)`` runs ``routine`` with the callback
    replaced by ``callback_wrapper(original)``; ``nan_check(result)`` asserts the NaN outcome;
    ``wrong_shape(original)`` makes a callback returning the wrong shape."""
    bugs = bugs or {}

    def raising():
        counter = [0]
        raised = Boom("k-th call")
        fail_at = [0]          # first a counting run; then raise half-way through the calls

        def wrap(original):
            def callback(*a, **k):
                counter[0] += 1
                if counter[0] == fail_at[0]:
                    raise raised
                return original(*a, **k)
            return callback
        quiet(call, wrap)
        fail_at[0], counter[0] = max(1, (counter[0] + 1) // 2), 0
        try:
            quiet(call, wrap)
        except Boom as exc:
            assert exc is raised, "a different Boom instance reached the caller"
        except BaseException as exc:
            raise AssertionError(f"{name} raised Boom but the caller got "
                                 f"{type(exc).__name__}: {exc}") from exc
        else:
            raise AssertionError(f"{name} raised Boom on call {fail_at[0]} but nothing propagated")
        # No leaked state: the next call works and equals a fresh reference call.
        expect_same(quiet(call, lambda original: original), quiet(call, lambda original: original),
                    "call after a propagated exception")

    def returns_nan():
        def wrap(original):
            def callback(*a, **k):
                value = np.asarray(original(*a, **k), dtype=float)
                return value * np.nan if value.ndim else float("nan")
            return callback
        nan_check(quiet(call, wrap))

    def wrong():
        expect_error((ValueError, TypeError), name, lambda: call(wrong_shape))

    def returns_none():
        expect_error((ValueError, TypeError), name, lambda: call(lambda original:
                                                                 (lambda *a, **k: None)))

    for label, check in (("callback_raises", raising), ("callback_nan", returns_nan),
                         ("callback_wrong_shape", wrong), ("callback_returns_none", returns_none)):
        case(routine, label, bugs.get(label))(check)


def is_status(result, code, where=None):
    status = np.asarray(result.status if hasattr(result, "status") else result["status"])
    selected = status if where is None else status[where]
    assert np.all(selected == code), f"status {status!r}, expected {code} at {where}"
    return status


# =========================================================== differentiation
def _sin_poly(x):
    return np.sin(x) * x ** 2 + 0.5 * x


def _scalar_field(x):
    return float(np.sum(np.sin(x) * x ** 2) + x[0] * x[-1])


def _scalar_field_grad(x):
    g = np.cos(x) * x ** 2 + 2 * x * np.sin(x)
    g[0] += x[-1]
    g[-1] += x[0]
    return g


def _vector_field(x):
    return np.array([x[0] * x[1], np.sin(x[2]), x.sum()])


GOOD_POINT = np.array([1.0, 2.0, -3.0])


register_input_variants("derivative", lambda v: fc.derivative(_sin_poly, v, accuracy=4),
                        np.array([0.0, 1.0, 2.0, -3.0]), "x", wrong_ndim=None)


@case("derivative", "step_wrong_shape")
def _():
    expect_error((ValueError,), "step", lambda: fc.derivative(np.sin, [1.0, 2.0], step=[0.1] * 3))


@case("derivative", "step_nonpositive")
def _():
    expect_error((ValueError,), "step", lambda: fc.derivative(np.sin, [1.0, 2.0], step=0.0))
    expect_error((ValueError,), "step", lambda: fc.derivative(np.sin, [1.0, 2.0], step=np.nan))


@case("derivative", "bad_order_method_accuracy")
def _():
    expect_error((ValueError,), "order", lambda: fc.derivative(np.sin, 1.0, order=5))
    expect_error((ValueError,), "method", lambda: fc.derivative(np.sin, 1.0, method="magic"))
    expect_error((ValueError,), "accuracy", lambda: fc.derivative(np.sin, 1.0, accuracy=3))


@case("derivative", "args_do_not_broadcast")
def _():
    expect_error((ValueError,), ("args", "args[0]"), lambda: fc.derivative(
        lambda x, a: a * x, np.array([1.0, 2.0]), args=(np.ones(3),)))


# Compiled elementwise functions given too few parameters (k) must not crash or read past
# the parameter array: the shipped equations check k and report NaN (a status).
@case("derivative", "compiled_without_parameters")
def _():
    r = fc.derivative(low_level("cube_root_eq"), np.array([1.0, 2.0]), full_output=True)
    assert np.all(r.status != 0), r


@case("newton_batch", "compiled_without_parameters")
def _():
    r = quiet(fc.newton, low_level("kepler_eq"), np.ones(2), args=(np.full(2, 0.5),),
              full_output=True)
    assert np.all(r.status != 0), r


@case("derivative", "f_not_callable")
def _():
    expect_error((TypeError,), "f", lambda: fc.derivative(3.0, 1.0))


register_callback_faults(
    "derivative", lambda wrap: fc.derivative(wrap(_sin_poly), np.array([1.0, 2.0]),
                                             full_output=True),
    "f", nan_check=lambda r: (is_status(r, Status.NON_FINITE), _all_nan(r.df)),
    wrong_shape=lambda original: (lambda x: np.ones(3)))


def _all_nan(a):
    assert np.all(np.isnan(a)), f"expected NaN where no value exists, got {a!r}"


for _routine, _run, _fn_name, _nan in (
        ("gradient", lambda v: fc.gradient(_scalar_field, v, accuracy=4), "f", None),
        ("jacobian", lambda v: fc.jacobian(_vector_field, v), "f", None),
        ("hessian", lambda v: fc.hessian(_scalar_field, v), "f", None),
        ("check_grad", lambda v: fc.check_grad(_scalar_field, _scalar_field_grad, v), "f", None)):
    register_input_variants(_routine, _run, GOOD_POINT, "x")


@case("gradient", "bounds_bad")
def _():
    expect_error((ValueError,), "bounds", lambda: fc.gradient(_scalar_field, GOOD_POINT,
                                                              bounds=([0.0] * 3, [5.0] * 3)))
    expect_error((ValueError,), "bounds", lambda: fc.gradient(_scalar_field, GOOD_POINT,
                                                              bounds=(1.0,)))


@case("gradient", "compiled_nan_status")
def _():
    r = fc.gradient(low_level("nan_scalar"), GOOD_POINT, full_output=True)
    is_status(r, Status.NON_FINITE)
    _all_nan(r.df)


@case("jacobian", "compiled_failure_status")
def _():
    r = fc.jacobian(low_level("failing_vector"), GOOD_POINT, full_output=True)
    is_status(r, Status.NON_FINITE)
    _all_nan(r.df)


@case("hessian", "compiled_nan_status")
def _():
    r = fc.hessian(low_level("nan_scalar"), GOOD_POINT, full_output=True)
    is_status(r, Status.NON_FINITE)
    _all_nan(r.df)


register_callback_faults(
    "gradient", lambda wrap: fc.gradient(wrap(_scalar_field), GOOD_POINT, full_output=True),
    "f", nan_check=lambda r: (is_status(r, Status.NON_FINITE), _all_nan(r.df)),
    wrong_shape=lambda original: (lambda x: np.ones(2)))
register_callback_faults(
    "jacobian", lambda wrap: fc.jacobian(wrap(_vector_field), GOOD_POINT, full_output=True),
    "f", nan_check=lambda r: (is_status(r, Status.NON_FINITE), _all_nan(r.df)),
    wrong_shape=lambda original: (lambda x: np.ones((2, 2))))
register_callback_faults(
    "hessian", lambda wrap: fc.hessian(wrap(_scalar_field), GOOD_POINT, full_output=True),
    "f", nan_check=lambda r: (is_status(r, Status.NON_FINITE), _all_nan(r.df)),
    wrong_shape=lambda original: (lambda x: np.ones(2)))
register_callback_faults(
    "check_grad", lambda wrap: fc.check_grad(_scalar_field, wrap(_scalar_field_grad), GOOD_POINT),
    "grad", nan_check=lambda r: _all_nan(r),
    wrong_shape=lambda original: (lambda x: np.ones(2)))


@case("check_grad", "f_raises")
def _():
    def f(x):
        raise Boom("f")
    try:
        fc.check_grad(f, _scalar_field_grad, GOOD_POINT)
    except Boom:
        return
    raise AssertionError("Boom from f did not propagate")


# taylor: x0 is a scalar.
def _taylor_run(v):
    return fc.taylor(np.exp, v, 3)


@case("taylor", "integer")
def _():
    expect_same(_taylor_run(1), _taylor_run(1.0), "taylor with int x0")
    expect_same(_taylor_run(np.int32(1)), _taylor_run(1.0), "taylor with np.int32 x0")


@case("taylor", "float32")
def _():
    x32 = np.float32(0.3)
    expect_same(_taylor_run(x32), _taylor_run(float(x32)), "taylor with float32 x0")


@case("taylor", "readonly_0d")
def _():
    expect_same(_taylor_run(readonly(0.5)), _taylor_run(0.5), "taylor with read-only 0-d x0")


@case("taylor", "nan_inf_array")
def _():
    for bad in (np.nan, np.inf, [1.0, 2.0], np.empty(0)):
        expect_error((ValueError,), "x0", lambda: _taylor_run(bad))
    expect_error((ValueError,), "order", lambda: fc.taylor(np.exp, 0.0, 7))


register_callback_faults(
    "taylor", lambda wrap: fc.taylor(wrap(np.exp), 0.5, 3), "f",
    nan_check=lambda p: _all_nan(p.coef),
    wrong_shape=lambda original: (lambda x: np.ones(3)))


# =========================================================== roots
def _cubic(x):
    return x ** 3 - 2.0 * x - 5.0


def _cubic_prime(x):
    return 3.0 * x ** 2 - 2.0


CUBIC_ROOT = 2.0945514815423265


def _newton_scalar(v):
    return fc.newton(_cubic, v, _cubic_prime, full_output=True)


@case("newton_scalar", "integer")
def _():
    expect_same(_newton_scalar(3), _newton_scalar(3.0), "newton int x0")


@case("newton_scalar", "float32")
def _():
    expect_same(_newton_scalar(np.float32(2.7)), _newton_scalar(float(np.float32(2.7))),
                "newton float32 x0")


@case("newton_scalar", "nan_inf")
def _():
    for bad in (np.nan, np.inf):
        r = _newton_scalar(bad)
        assert not r.converged and r.status != 0, r
        try:
            fc.newton(_cubic, bad, _cubic_prime)
        except fc.ConvergenceError:
            pass
        else:
            raise AssertionError("newton with a non-finite x0 did not raise ConvergenceError")


@case("newton_scalar", "strings_complex")
def _():
    expect_error((TypeError,), "x0", lambda: fc.newton(_cubic, "1.0"))
    expect_error((TypeError,), "x0", lambda: fc.newton(_cubic, 1.0 + 1j))


@case("newton_scalar", "non_convergent")
def _():
    r = fc.newton(lambda x: x * x + 1.0, 0.5, lambda x: 2 * x, full_output=True)
    assert r.status in (Status.MAX_ITERATIONS, Status.SINGULAR) and not r.success, r
    try:
        fc.newton(lambda x: x * x + 1.0, 0.5, lambda x: 2 * x)
    except fc.ConvergenceError:
        return
    raise AssertionError("non-convergent scalar newton did not raise ConvergenceError")


@case("newton_scalar", "zero_derivative")
def _():
    r = fc.newton(lambda x: x * x + 1.0, 0.0, lambda x: 2 * x, full_output=True)
    is_status(r, Status.SINGULAR)


@case("newton_scalar", "bad_options")
def _():
    expect_error((ValueError,), "tol", lambda: fc.newton(_cubic, 2.0, tol=-1.0))
    expect_error((ValueError,), "maxiter", lambda: fc.newton(_cubic, 2.0, maxiter=-1))
    expect_error((ValueError,), "bracket", lambda: fc.newton(_cubic, 2.0, bracket=(1.0,)))
    expect_error((ValueError,), "method", lambda: fc.newton(_cubic, 2.0, method="magic"))


@case("newton_scalar", "bracket_without_sign_change")
def _():
    r = fc.newton(_cubic, 2.5, bracket=(2.2, 3.0), full_output=True)
    is_status(r, Status.OUT_OF_BOUNDS)


register_callback_faults(
    "newton_scalar", lambda wrap: fc.newton(wrap(_cubic), 3.0, _cubic_prime, full_output=True),
    "f", nan_check=lambda r: is_status(r, Status.NON_FINITE),
    wrong_shape=lambda original: (lambda x: np.ones(3)))
register_callback_faults(
    "newton_fprime", lambda wrap: fc.newton(_cubic, 3.0, wrap(_cubic_prime), full_output=True),
    "fprime", nan_check=lambda r: is_status(r, Status.NON_FINITE),
    wrong_shape=lambda original: (lambda x: np.ones(3)))

BATCH_X0 = np.array([1.0, 2.0, 3.0, 4.0, -2.0])


def _newton_batch(v):
    return quiet(fc.newton, _cubic, v, _cubic_prime, full_output=True)


def _batch_nan_check(run):
    x0 = BATCH_X0.copy()
    x0[1] = np.nan
    r = run(x0)
    is_status(r, Status.NON_FINITE, where=1)
    good = np.arange(x0.size) != 1
    reference = _newton_batch(BATCH_X0[good])
    assert np.array_equal(r.x[good], reference.x) and np.all(r.status[good] == 0), \
        "a NaN start spoiled the other elements"


def _batch_inf_row_check(run):
    # an inf in one dataset is that dataset's status (NON_FINITE), not an error for the batch
    Y = Y_BATCH.copy()
    Y[1, 3] = np.inf
    r = run(Y)
    assert r.status[1] == Status.NON_FINITE and np.all(r.status[[0, 2]] == 0), r.status
    alone = run(Y_BATCH[[0, 2]])
    assert np.array_equal(r.params[[0, 2]], alone.params), "an inf dataset spoiled the others"


def _batch_empty_check(run):
    r = run(np.empty(0))
    assert r.x.shape == (0,) and r.status.shape == (0,), r


register_input_variants("newton_batch", _newton_batch, BATCH_X0, "x0", nan=_batch_nan_check,
                        inf=None, empty=_batch_empty_check, wrong_ndim=None)


@case("newton_batch", "args_do_not_broadcast")
def _():
    expect_error((ValueError,), "args[0]", lambda: fc.newton(
        low_level("cube_root_eq"), BATCH_X0, args=(np.ones(3),)))
    expect_error((ValueError,), "bracket", lambda: fc.newton(
        _cubic, BATCH_X0, bracket=(np.zeros(3), np.ones(3))))


@case("newton_batch", "nan_parameter_isolated")
def _():
    a = np.array([1.0, 8.0, np.nan, 27.0])
    r = quiet(fc.newton, low_level("cube_root_eq"), np.full(4, 2.0),
              low_level("cube_root_eq_prime"), args=(a,), full_output=True)
    assert r.status[2] != 0 and np.all(r.status[[0, 1, 3]] == 0), r.status
    np.testing.assert_allclose(r.x[[0, 1, 3]], [1.0, 2.0, 3.0], rtol=1e-14)


@case("newton_batch", "compiled_non_finite_status")
def _():
    # log(x) - p: from a negative start every value is NaN.
    r = quiet(fc.newton, low_level("log_eq"), np.array([-1.0, 2.0]),
              low_level("log_eq_prime"), args=(np.array([0.0, 1.0]),), full_output=True)
    assert r.status[0] == Status.NON_FINITE and r.status[1] == 0, r.status
    np.testing.assert_allclose(r.x[1], np.e, rtol=1e-14)


# A huge n_threads is capped (or refused with a ValueError naming it), never a crash.
def _huge_threads(run):
    for n_threads in (50_000, 1_000_000):
        try:
            run(n_threads)
        except ValueError as exc:
            assert _names(str(exc), "n_threads"), exc


@case("newton_batch", "n_threads_huge")
def _():
    _huge_threads(lambda nt: fc.newton(low_level("cube_root_eq"), np.full(3, 2.0),
                                       low_level("cube_root_eq_prime"),
                                       args=(np.arange(1.0, 4.0),), n_threads=nt))


@case("newton_system", "n_threads_huge")
def _():
    _huge_threads(lambda nt: fc.newton_system(low_level("circle_exp_system"), [1.0, -1.5],
                                              low_level("circle_exp_jacobian"), n_threads=nt))


@case("gradient", "n_threads_huge")
def _():
    _huge_threads(lambda nt: fc.gradient(low_level("rosenbrock"), [1.0, 2.0], n_threads=nt))
    _huge_threads(lambda nt: fc.hessian(low_level("rosenbrock"), [1.0, 2.0], n_threads=nt))
    _huge_threads(lambda nt: fc.jacobian(low_level("vector_field"), [1.0, 2.0], n_threads=nt))


@case("fit_batch", "n_threads_huge")
def _():
    _huge_threads(lambda nt: fc.fit_batch(low_level("gaussian_model"), X_DATA, Y_BATCH,
                                          p0=GAUSS_P0, n_threads=nt))


@case("newton_batch", "n_threads_invalid")
def _():
    for bad, error in ((0, ValueError), (-5, ValueError), (2.5, TypeError), ("2", TypeError),
                       (True, TypeError)):
        expect_error((error,), "n_threads", lambda: fc.newton(
            low_level("cube_root_eq"), np.full(3, 2.0), args=(np.ones(3),), n_threads=bad))
        expect_error((error,), "n_threads", lambda: fc.fit_batch(
            models.line, X_DATA, Y_BATCH, n_threads=bad))


@case("newton_batch", "non_convergent_warns")
def _():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        x = fc.newton(lambda x: x * x + 1.0, np.array([0.5, 0.7]), lambda x: 2 * x)
    assert any(issubclass(w.category, RuntimeWarning) for w in caught), "no RuntimeWarning"
    assert x.shape == (2,)


register_callback_faults(
    "newton_batch", lambda wrap: fc.newton(wrap(_cubic), BATCH_X0, _cubic_prime,
                                           full_output=True),
    "f", nan_check=lambda r: is_status(r, Status.NON_FINITE),
    wrong_shape=lambda original: (lambda x: np.ones(x.size + 1)))


def _circle_exp(x):
    return np.array([x[0] ** 2 + x[1] ** 2 - 4.0, np.exp(x[0]) + x[1] - 1.0])


def _circle_exp_jac(x):
    return np.array([[2 * x[0], 2 * x[1]], [np.exp(x[0]), 1.0]])


def _newton_system(v):
    return fc.newton_system(_circle_exp, v, _circle_exp_jac)


def _system_nan_check(run):
    r = run(np.array([1.0, np.nan]))
    assert r.status == Status.NON_FINITE and not r.success, r


register_input_variants("newton_system", _newton_system, np.array([1.0, -2.0]), "x0",
                        nan=_system_nan_check, inf=_system_nan_check)

SYSTEM_X0 = np.array([[1.0, -2.0], [-2.0, 1.0], [2.0, 0.0]])


def _system_batch_nan_check(run):
    x0 = SYSTEM_X0.copy()
    x0[1, 0] = np.nan
    r = run(x0)
    assert r.status[1] == Status.NON_FINITE and r.status[0] == 0 and r.status[2] == 0, r.status
    reference = run(SYSTEM_X0[[0, 2]])
    assert np.array_equal(r.x[[0, 2]], reference.x), "a NaN start spoiled other systems"


register_input_variants("newton_system_batch", _newton_system, SYSTEM_X0, "x0",
                        nan=_system_batch_nan_check, inf=None, empty=None)


@case("newton_system", "singular_status")
def _():
    r = fc.newton_system(lambda x: np.array([x[0] + x[1], x[0] + x[1] + 1.0]), [1.0, 2.0])
    assert r.status in (Status.SINGULAR, Status.MAX_ITERATIONS) and not r.success, r


@case("newton_system", "non_convergent_status")
def _():
    r = fc.newton_system(lambda x: np.array([x[0] ** 2 + 1.0, x[1] ** 2 + 1.0]), [0.5, 0.7],
                         maxiter=20)
    assert r.status != 0 and not r.success, r


@case("newton_system", "compiled_failure_status")
def _():
    r = fc.newton_system(low_level("failing_vector"), [1.0, 2.0])
    assert r.status == Status.NON_FINITE, r


register_callback_faults(
    "newton_system", lambda wrap: fc.newton_system(wrap(_circle_exp), [1.0, -2.0],
                                                   _circle_exp_jac),
    "F", nan_check=lambda r: is_status(r, Status.NON_FINITE),
    wrong_shape=lambda original: (lambda x: np.ones(3)))
register_callback_faults(
    "newton_system_jac", lambda wrap: fc.newton_system(_circle_exp, [1.0, -2.0],
                                                       wrap(_circle_exp_jac)),
    "jac", nan_check=lambda r: is_status(r, Status.NON_FINITE),
    wrong_shape=lambda original: (lambda x: np.ones(2)))


# =========================================================== optimize
def _bowl(x):
    return float((x[0] - 1.0) ** 2 + 10.0 * (x[1] + 2.0) ** 2)


def _bowl_grad(x):
    return np.array([2.0 * (x[0] - 1.0), 20.0 * (x[1] + 2.0)])


def _descent(v):
    return fc.gradient_descent(_bowl, v, _bowl_grad, tol=1e-8)


def _descent_nan_check(run):
    # Either a ValueError naming x0 or status 3: both are clear; a silent success is not.
    try:
        r = run(np.array([0.0, np.nan]))
    except ValueError as exc:
        assert _names(str(exc), "x0"), exc
        return
    assert r.status == Status.NON_FINITE and not r.success, r


register_input_variants("gradient_descent", _descent, np.array([0.0, 0.0]), "x0",
                        nan=_descent_nan_check, inf=_descent_nan_check)


@case("gradient_descent", "non_convergent_status")
def _():
    r = fc.gradient_descent(_bowl, [0.0, 0.0], _bowl_grad, maxiter=3)
    is_status(r, Status.MAX_ITERATIONS)
    r = quiet(fc.gradient_descent, lambda x: -float(np.sum(x ** 2)), [1.0, 1.0], maxiter=2000)
    assert r.status in (Status.NON_FINITE, Status.MAX_ITERATIONS) and not r.success, r


@case("gradient_descent", "diverging_fixed_step")
def _():
    r = quiet(fc.gradient_descent, _bowl, [0.0, 0.0], _bowl_grad, step=1.0, maxiter=5000)
    is_status(r, Status.NON_FINITE)


@case("gradient_descent", "bad_options")
def _():
    expect_error((ValueError,), "step", lambda: fc.gradient_descent(_bowl, [0.0, 0.0], step=-1.0))
    expect_error((ValueError,), "maxiter",
                 lambda: fc.gradient_descent(_bowl, [0.0, 0.0], maxiter=-1))
    expect_error((TypeError,), "grad", lambda: fc.gradient_descent(_bowl, [0.0, 0.0], grad=3))


register_callback_faults(
    "gradient_descent", lambda wrap: fc.gradient_descent(wrap(_bowl), [0.0, 0.0], _bowl_grad),
    "f", nan_check=lambda r: is_status(r, Status.NON_FINITE),
    wrong_shape=lambda original: (lambda x: np.ones(2)))
register_callback_faults(
    "gradient_descent_grad", lambda wrap: fc.gradient_descent(_bowl, [0.0, 0.0],
                                                              wrap(_bowl_grad)),
    "grad", nan_check=lambda r: is_status(r, Status.NON_FINITE),
    wrong_shape=lambda original: (lambda x: np.ones(3)))


@case("gradient_descent", "callback_option_raises")
def _():
    raised = Boom("callback")

    def callback(x):
        raise raised
    try:
        fc.gradient_descent(_bowl, [0.0, 0.0], _bowl_grad, callback=callback)
    except Boom as exc:
        assert exc is raised
        return
    raise AssertionError("exception from callback= did not propagate")


def _linear(x):
    return float(x[0] + x[1])


def _circle(x):
    return float(x[0] ** 2 + x[1] ** 2 - 1.0)


def _lagrange(v):
    return fc.lagrange(_linear, _circle, v)


register_input_variants("lagrange", _lagrange, np.array([1.0, 1.0]), "x0")


@case("lagrange", "too_many_constraints")
def _():
    expect_error((ValueError,), "constraints", lambda: fc.lagrange(
        _linear, [_circle, lambda x: x[0], lambda x: x[1]], [1.0, 1.0]))


@case("lagrange", "non_convergent_status")
def _():
    r = fc.lagrange(_linear, _circle, [1.0, 0.5], maxiter=1)
    is_status(r, Status.MAX_ITERATIONS)


@case("lagrange", "multipliers0_wrong_shape")
def _():
    expect_error((ValueError,), "multipliers0",
                 lambda: fc.lagrange(_linear, _circle, [1.0, 0.5], multipliers0=[1.0, 2.0]))


register_callback_faults(
    "lagrange", lambda wrap: fc.lagrange(wrap(_linear), _circle, [1.0, 0.5]), "f",
    nan_check=lambda r: is_status(r, Status.NON_FINITE),
    wrong_shape=lambda original: (lambda x: np.ones(2)))
register_callback_faults(
    "lagrange_constraints", lambda wrap: fc.lagrange(_linear, wrap(_circle), [1.0, 0.5]),
    "constraints", nan_check=lambda r: is_status(r, Status.NON_FINITE),
    wrong_shape=lambda original: (lambda x: np.ones((2, 2))))


# =========================================================== fitting
X_DATA = np.arange(12.0)
Y_LINE = np.array([3.0, 5.0, 8.0, 9.0, 11.0, 14.0, 15.0, 17.0, 20.0, 21.0, 23.0, 26.0])
Y_GAUSS = np.round(200 * np.exp(-(X_DATA - 5.3) ** 2 / (2 * 2.1 ** 2)) + 10
                   + 3 * np.sin(7 * X_DATA))


def _chi2(v):
    return fc.chi2(v, Y_LINE[: np.shape(v)[-1]] + 0.5, sigma=2.0)


def _chi2_nan_check(run):
    y = Y_LINE.copy()
    y[3] = np.nan
    keep = np.arange(y.size) != 3
    want = fc.chi2(Y_LINE[keep], Y_LINE[keep] + 0.5, sigma=2.0)
    assert run(y) == want, "NaN in y is documented as a missing point"


register_input_variants("chi2", _chi2, Y_LINE, "y", nan=_chi2_nan_check,
                        inf=lambda run: _expect_inf(run(np.r_[np.inf, Y_LINE[1:]])),
                        empty=lambda run: _expect_value(run(np.empty(0)), 0.0),
                        wrong_ndim=None)


def _expect_inf(value):
    assert value == np.inf, f"chi2 with inf data: {value!r}, expected inf"


def _expect_value(value, want):
    assert value == want, f"got {value!r}, expected {want!r}"


@case("chi2", "shape_mismatch")
def _():
    expect_error((ValueError,), "y_model", lambda: fc.chi2(Y_LINE, Y_LINE[:-1]))
    expect_error((ValueError,), "sigma", lambda: fc.chi2(Y_LINE, Y_LINE, sigma=np.ones(3)))
    expect_error((ValueError,), "sigma", lambda: fc.chi2(Y_LINE, Y_LINE, sigma=0.0))
    expect_error((ValueError,), "sigma", lambda: fc.chi2(Y_LINE, Y_LINE, sigma=np.nan))


for _routine, _fitter in (("linear_fit", fc.linear_fit),
                          ("polyfit", lambda x, y: fc.polyfit(x, y, 2))):
    def _run_y(v, fitter=_fitter):
        return fitter(X_DATA[: np.shape(v)[-1]] if np.ndim(v) else X_DATA, v)

    def _run_x(v, fitter=_fitter):
        return fitter(v, Y_LINE[: np.shape(v)[-1]] if np.ndim(v) else Y_LINE)

    def _nan_y_check(run, fitter=_fitter):
        y = Y_LINE.copy()
        y[3] = np.nan
        keep = np.arange(y.size) != 3
        expect_same(run(y), fitter(X_DATA[keep], Y_LINE[keep]), "NaN y as missing point")

    register_input_variants(_routine + "_y", _run_y, Y_LINE, "y", nan=_nan_y_check,
                            names={"empty": ("y", "points")})
    register_input_variants(_routine + "_x", _run_x, X_DATA, "x",
                            names={"empty": ("x", "points")})


@case("polyfit_y", "bad_degree")
def _():
    expect_error((ValueError,), "deg", lambda: fc.polyfit(X_DATA, Y_LINE, -1))
    expect_error((ValueError, TypeError), "deg", lambda: fc.polyfit(X_DATA, Y_LINE, 1.5))
    expect_error((ValueError,), "polyfit", lambda: fc.polyfit(X_DATA[:3], Y_LINE[:3], 5))


_HUGE_X = np.array([1e160, 2e160, 3e160])
_HUGE_X_Y = np.array([1.0, 2.0, 3.0])          # exactly y = 1e-160 * x


@case("linear_fit_x", "huge_x_values")
def _():
    r = fc.linear_fit(_HUGE_X, _HUGE_X_Y)
    np.testing.assert_allclose(r.params, [0.0, 1e-160], rtol=1e-12, atol=1e-12)


@case("polyfit_x", "huge_x_values")
def _():
    r = fc.polyfit(_HUGE_X, _HUGE_X_Y, 1)
    np.testing.assert_allclose(r.params, [0.0, 1e-160], rtol=1e-12, atol=1e-12)
    r = fc.polyfit(_HUGE_X * 1e40, _HUGE_X_Y, 1)
    np.testing.assert_allclose(r.params, [0.0, 1e-200], rtol=1e-12, atol=1e-12)


@case("fit_x", "huge_x_values")
def _():
    r = quiet(fc.fit, models.line, _HUGE_X * 1e40, _HUGE_X_Y)
    assert r.success, r
    np.testing.assert_allclose(r.params, [0.0, 1e-200], rtol=1e-9, atol=1e-12)


@case("linear_fit_x", "all_x_equal")
def _():
    expect_error((ValueError,), "x", lambda: fc.linear_fit(np.ones(5), np.arange(5.0)))


def _gauss_py(x, a, mu, s, c):
    return a * np.exp(-(x - mu) ** 2 / (2 * s ** 2)) + c


GAUSS_P0 = [150.0, 5.0, 2.0, 5.0]


def _fit_builtin(v):
    return quiet(fc.fit, models.gaussian, X_DATA[: np.shape(v)[-1]], v)


def _fit_python(v):
    return quiet(fc.fit, _gauss_py, X_DATA[: np.shape(v)[-1]], v, p0=GAUSS_P0)


def _fit_nan_check(run):
    y = Y_GAUSS.copy()
    y[3] = np.nan
    keep = np.arange(y.size) != 3
    got = run(y)
    want = run(Y_GAUSS)   # same model, point 3 dropped explicitly below
    assert got.success and got.dof == want.dof - 1, (got, want)
    dropped = quiet(fc.fit, models.gaussian, X_DATA[keep], Y_GAUSS[keep])
    # Same minimum; the Python model's forward-difference Jacobian leaves ~1e-7 differences.
    np.testing.assert_allclose(got.params, dropped.params, rtol=1e-6)


for _routine, _run in (("fit_builtin_y", _fit_builtin), ("fit_python_y", _fit_python)):
    register_input_variants(_routine, _run, Y_GAUSS, "y", nan=_fit_nan_check)

register_input_variants(
    "fit_x", lambda v: quiet(fc.fit, models.gaussian, v, Y_GAUSS[: np.shape(v)[-1]]), X_DATA, "x",
    empty=lambda run: expect_error((ValueError,), "y", lambda: run(np.empty(0))))


@case("fit_builtin_y", "non_convergent_status_and_warning")
def _():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        r = fc.fit(models.gaussian, X_DATA, Y_GAUSS, maxiter=1)
    assert r.status == Status.MAX_ITERATIONS and not r.success, r
    assert any(issubclass(w.category, RuntimeWarning) for w in caught), "no RuntimeWarning"


@case("fit_builtin_y", "bad_options")
def _():
    expect_error((ValueError,), "sigma", lambda: fc.fit(models.line, X_DATA, Y_LINE, sigma=-1.0))
    expect_error((ValueError,), "sigma",
                 lambda: fc.fit(models.line, X_DATA, Y_LINE, sigma=np.ones(3)))
    expect_error((ValueError,), "p0", lambda: fc.fit(models.line, X_DATA, Y_LINE, p0=[1.0]))
    expect_error((ValueError,), "p0", lambda: fc.fit(models.line, X_DATA, Y_LINE,
                                                     p0=[np.nan, 1.0]))
    expect_error((ValueError,), "method", lambda: fc.fit(models.line, X_DATA, Y_LINE,
                                                         method="magic"))
    expect_error((ValueError,), "bounds", lambda: fc.fit(models.line, X_DATA, Y_LINE,
                                                         bounds=([1.0, 1.0], [0.0, 0.0])))
    expect_error((ValueError,), "fixed", lambda: fc.fit(models.line, X_DATA, Y_LINE,
                                                        fixed=["nope"]))
    expect_error((ValueError,), "maxiter", lambda: fc.fit(models.line, X_DATA, Y_LINE,
                                                          maxiter=0))
    expect_error((TypeError,), "model", lambda: fc.fit(3.0, X_DATA, Y_LINE))


@case("fit_builtin_y", "too_few_points")
def _():
    expect_error((ValueError,), "points", lambda: fc.fit(models.gaussian, X_DATA[:3], Y_GAUSS[:3],
                                                         p0=GAUSS_P0))


def _gauss_py_jac(x, a, mu, s, c):
    e = np.exp(-(x - mu) ** 2 / (2 * s ** 2))
    return np.stack([e, a * e * (x - mu) / s ** 2, a * e * (x - mu) ** 2 / s ** 3,
                     np.ones_like(x)], axis=1)


register_callback_faults(
    "fit_python_jac", lambda wrap: quiet(fc.fit, _gauss_py, X_DATA, Y_GAUSS, p0=GAUSS_P0,
                                         jac=wrap(_gauss_py_jac)),
    "jac", nan_check=lambda r: is_status(r, Status.NON_FINITE),
    wrong_shape=lambda original: (lambda x, *p: np.ones((4, x.size))))


@case("fit_compiled", "failing_model_status")
def _():
    r = quiet(fc.fit, low_level("failing_model"), X_DATA, Y_GAUSS, p0=GAUSS_P0)
    assert r.status != 0 and not r.success, r


@case("fit_compiled", "p0_required")
def _():
    expect_error((ValueError,), "p0", lambda: fc.fit(low_level("gaussian_model"), X_DATA, Y_GAUSS))


register_callback_faults(
    "fit_python_y", lambda wrap: quiet(fc.fit, wrap(_gauss_py), X_DATA, Y_GAUSS, p0=GAUSS_P0),
    "model", nan_check=lambda r: is_status(r, Status.NON_FINITE),
    wrong_shape=lambda original: (lambda x, *p: np.ones(x.size + 1)))

Y_BATCH = np.stack([Y_GAUSS, Y_GAUSS[::-1], np.round(Y_GAUSS * 0.5 + X_DATA)])


def _fit_batch(v):
    return quiet(fc.fit_batch, models.gaussian, X_DATA[: np.shape(v)[-1]], v)


def _batch_nan_row_check(run):
    Y = Y_BATCH.copy()
    Y[1] = np.nan
    r = run(Y)
    assert r.status[1] != 0 and np.all(r.status[[0, 2]] == 0), r.status
    alone = run(Y_BATCH[[0, 2]])
    assert np.array_equal(r.params[[0, 2]], alone.params), "a NaN dataset spoiled the others"


def _batch_empty_check(run):
    r = run(np.empty((0, X_DATA.size)))
    assert r.params.shape == (0, 4), r.params.shape


register_input_variants("fit_batch", _fit_batch, Y_BATCH, "Y", nan=_batch_nan_row_check,
                        inf=_batch_inf_row_check, empty=None)


@case("fit_batch", "no_datasets")
def _():
    r = quiet(fc.fit_batch, models.gaussian, X_DATA, np.empty((0, X_DATA.size)))
    assert np.shape(r.params) == (0, 4), np.shape(r.params)
    # with one p0 for every dataset too (it was indexed as if there were a first dataset)
    r = quiet(fc.fit_batch, models.gaussian, X_DATA, np.empty((0, X_DATA.size)), p0=GAUSS_P0)
    assert np.shape(r.params) == (0, 4), np.shape(r.params)


@case("fit_batch", "one_diverging_dataset_isolated")
def _():
    Y = Y_BATCH.copy()
    Y[1] = 1e300 * np.sin(np.arange(X_DATA.size) * 17.0)     # nothing to fit, huge values
    r = quiet(fc.fit_batch, models.gaussian, X_DATA, Y, p0=GAUSS_P0)
    alone = quiet(fc.fit_batch, models.gaussian, X_DATA, Y_BATCH[[0, 2]], p0=GAUSS_P0)
    assert np.array_equal(r.params[[0, 2]], alone.params), "one dataset spoiled the others"


@case("fit_batch", "python_model_isolated_nan")
def _():
    def model(x, a, mu, s, c):
        out = _gauss_py(x, a, mu, s, c)
        return np.where(a < -1e9, np.nan, out)   # broadcasting; NaN for one parameter regime
    Y = Y_BATCH.copy()
    r = quiet(fc.fit_batch, model, X_DATA, Y, p0=np.array([GAUSS_P0, [-2e9, 5, 2, 5], GAUSS_P0]))
    assert r.status[1] == Status.NON_FINITE and np.all(r.status[[0, 2]] == 0), r.status


register_callback_faults(
    "fit_batch_python", lambda wrap: quiet(fc.fit_batch, wrap(_gauss_py), X_DATA, Y_BATCH,
                                           p0=GAUSS_P0),
    "model", nan_check=lambda r: is_status(r, Status.NON_FINITE),
    wrong_shape=lambda original: (lambda x, *p: np.ones((7, 3))))


# =========================================================== models
GAUSS_PARAMS = (100.0, 2.0, 1.5, 3.0)


def _model_nan_check(evaluate):
    def check(run):
        x = X_DATA.copy()
        x[1] = np.nan
        got = run(x)
        want = evaluate(X_DATA)
        assert np.all(np.isnan(got[1])), "NaN x must give NaN there"
        keep = np.arange(x.size) != 1
        assert np.array_equal(got[keep], want[keep]), \
            f"one NaN x spoils the other points: {got!r:.200}"
    return check


def _model_call(v):
    return models.gaussian(v, *GAUSS_PARAMS)


def _model_jacobian(v):
    return models.gaussian.jacobian(v, *GAUSS_PARAMS)


def _model_inf_check(evaluate):
    def check(run):
        x = X_DATA.copy()
        x[0] = np.inf
        got = run(x)
        keep = np.arange(x.size) != 0
        assert np.array_equal(got[keep], evaluate(X_DATA)[keep]), "inf x spoils other points"
        assert np.all(np.isfinite(got[0])), "gaussian at x=inf is the offset (finite)"
    return check


register_input_variants("model_call", _model_call, X_DATA, "x",
                        nan=_model_nan_check(_model_call), inf=_model_inf_check(_model_call),
                        empty=lambda run: _expect_shape(run(np.empty(0)), (0,)), wrong_ndim=None)
register_input_variants("model_jacobian", _model_jacobian, X_DATA, "x",
                        nan=_model_nan_check(_model_jacobian),
                        inf=_model_inf_check(_model_jacobian),
                        empty=lambda run: _expect_shape(run(np.empty(0)), (0, 4)),
                        wrong_ndim=None)


def _expect_shape(a, shape):
    assert np.shape(a) == shape, f"shape {np.shape(a)}, expected {shape}"


@case("model_call", "wrong_parameter_count")
def _():
    expect_error((TypeError,), "gaussian", lambda: models.gaussian(X_DATA, 1.0, 2.0))
    expect_error((TypeError, ValueError), "params", lambda: models.gaussian(X_DATA, "a", 1, 1, 1))


@case("model_call", "gaussian_2d_wrong_shape")
def _():
    expect_error((ValueError,), "x", lambda: models.gaussian_2d(X_DATA, 1, 0, 0, 1, 0))


@case("model_call", "outside_domain_point")
def _():
    got = models.power_law(np.array([-1.0, 1.0, 2.0]), 1.0, 0.5)
    assert np.isnan(got[0]) and np.array_equal(got[1:], np.sqrt([1.0, 2.0])), got


@case("model_call", "nan_parameter")
def _():
    assert np.all(np.isnan(models.gaussian(X_DATA, 1.0, np.nan, 1.0, 0.0)))


def _model_guess(v):
    return models.gaussian.guess(X_DATA[: np.shape(v)[-1]], v)


def _guess_nan_check(run):
    y = Y_GAUSS.copy()
    y[3] = np.nan
    keep = np.arange(y.size) != 3
    expect_same(run(y), models.gaussian.guess(X_DATA[keep], Y_GAUSS[keep]), "NaN y ignored")


register_input_variants("model_guess", _model_guess, Y_GAUSS, "y", nan=_guess_nan_check)


@case("model_guess", "x_nan")
def _():
    x = X_DATA.copy()
    x[2] = np.nan
    expect_error((ValueError,), "x", lambda: models.gaussian.guess(x, Y_GAUSS))


# ================================================================ driver
def _child_main(routine, first=0):
    import faulthandler
    warnings.simplefilter("ignore")
    for name, function in list(CASES[routine].items())[first:]:
        print(json.dumps({"case": name, "event": "start"}), flush=True)
        faulthandler.dump_traceback_later(CASE_TIMEOUT, exit=True)
        try:
            function()
            outcome, detail = "pass", ""
        except AssertionError as exc:
            outcome, detail = "fail", str(exc)
        except BaseException as exc:  # noqa: BLE001 - reported to the parent
            outcome, detail = "error", f"{type(exc).__name__}: {exc}"
        faulthandler.cancel_dump_traceback_later()
        print(json.dumps({"case": name, "event": outcome, "detail": detail[:2000]}), flush=True)


_RUNS = {}


def _run_routine(routine):
    """Run every case of ``routine`` in child interpreters; {case: (outcome, detail)}.

    A case that kills its child (segfault, abort, hang) is recorded as a crash and a new child
    resumes with the next case, so one crash does not hide the other outcomes.
    """
    if routine in _RUNS:
        return _RUNS[routine]
    root = str(Path(fc.__file__).resolve().parents[1])
    env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""),
               OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "2"))
    names = list(CASES[routine])
    outcomes, first = {}, 0
    while first < len(names):
        budget = 60 + CASE_TIMEOUT * (len(names) - first)
        try:
            done = subprocess.run([sys.executable, __file__, routine, str(first)],
                                  capture_output=True, text=True, env=env, cwd=root,
                                  timeout=budget)
            stdout, stderr, code = done.stdout, done.stderr, done.returncode
        except subprocess.TimeoutExpired as exc:
            stdout, stderr, code = exc.stdout or "", exc.stderr or "", "timeout"
            stdout = stdout.decode() if isinstance(stdout, bytes) else stdout
            stderr = stderr.decode() if isinstance(stderr, bytes) else stderr
        started = None
        for line in stdout.splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if record["event"] == "start":
                started = record["case"]
            else:
                outcomes[record["case"]] = (record["event"], record["detail"])
                started = None
        if started is None:
            break
        outcomes[started] = ("crash", f"child exit {code} during this case (segfault, abort "
                                      f"or hang past {CASE_TIMEOUT}s); stderr tail:\n"
                                      f"{stderr[-3000:]}")
        first = names.index(started) + 1
    for name in names:
        outcomes.setdefault(name, ("crash", "never ran: the child interpreter died"))
    _RUNS[routine] = outcomes
    return outcomes


def _params():
    import pytest
    for routine, cases in CASES.items():
        for name in cases:
            marks = ()
            if (routine, name) in KNOWN_BUGS:
                marks = (pytest.mark.xfail(strict=True, reason=KNOWN_BUGS[(routine, name)]),)
            yield pytest.param(routine, name, id=f"{routine}-{name}", marks=marks)


if __name__ == "__main__":
    _child_main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 0)
else:
    import pytest

    @pytest.mark.parametrize("routine, name", list(_params()))
    def test_bad_input(routine, name):
        outcome, detail = _run_routine(routine)[name]
        assert outcome == "pass", f"{routine} / {name}: {outcome}: {detail}"

    def test_every_public_routine_is_covered():
        covered = {r.split("_")[0] for r in CASES} | set(CASES)
        for routine in ("derivative", "gradient", "jacobian", "hessian", "check_grad", "taylor",
                        "newton_scalar", "newton_batch", "newton_system", "gradient_descent",
                        "lagrange", "chi2", "linear_fit_y", "polyfit_y", "fit_builtin_y",
                        "fit_batch", "model_call", "model_jacobian", "model_guess"):
            assert routine in covered, routine
