"""Fault injection: user callbacks that raise, return NaN somewhere, and Ctrl-C mid-batch.

* An exception raised by a callback on its k-th call (first, second, middle, last) reaches the
  caller unchanged (the same object, the callback's frame in its traceback); the next call of
  the same routine works and gives bitwise the result of a fresh call: no leaked state.
* A NaN at one point is handled: finite-difference stencils fall back to one-sided ones (correct
  value, status 0), batches give that problem a status and leave the others untouched.
* SIGINT during a long batch (Python callback, built-in model, compiled callable) makes the
  process exit with KeyboardInterrupt within a couple of seconds.
"""
import os
import signal
import subprocess
import sys
import textwrap
import time
import traceback
import warnings
from pathlib import Path

import numpy as np
import pytest
from scipy import optimize

import fastcalc as fc
from fastcalc import Status


class Injected(Exception):
    """Raised by the callbacks below on their k-th call."""


class CountingCallback:
    """Wraps ``function``; raises ``Injected`` on call number ``fail_at`` (0: never)."""

    def __init__(self, function, fail_at=0):
        self.function, self.fail_at, self.calls = function, fail_at, 0
        self.raised = None

    def __call__(self, *args, **kwargs):
        self.calls += 1
        if self.calls == self.fail_at:
            self.raised = Injected(f"call {self.calls}")
            raise self.raised
        return self.function(*args, **kwargs)


def _field(x):
    return float(np.sum(np.sin(x) * x ** 2) + x[0] * x[-1])


def _field_grad(x):
    g = np.cos(x) * x ** 2 + 2 * x * np.sin(x)
    g[0] += x[-1]
    g[-1] += x[0]
    return g


def _field_vectorized(X):
    return np.sum(np.sin(X) * X ** 2, axis=0) + X[0] * X[-1]


def _vector(x):
    return np.array([x[0] * x[1], np.sin(x[2]), x.sum()])


def _circle_exp(x):
    return np.array([x[0] ** 2 + x[1] ** 2 - 4.0, np.exp(x[0]) + x[1] - 1.0])


def _circle_exp_vectorized(X):
    return np.stack([X[0] ** 2 + X[1] ** 2 - 4.0, np.exp(X[0]) + X[1] - 1.0])


def _cubic(x):
    return x ** 3 - 2.0 * x - 5.0


def _gauss(x, a, mu, s, c):
    return a * np.exp(-(x - mu) ** 2 / (2 * s ** 2)) + c


X_DATA = np.linspace(0, 10, 40)
Y_DATA = _gauss(X_DATA, 50.0, 4.0, 1.3, 2.0) + np.sin(9 * X_DATA)
P0 = [40.0, 4.5, 1.0, 0.0]
POINT = np.array([1.0, 2.0, -0.5])

# routine name -> run(callback) with the callback in the place of the Python user function.
ROUTINES = {
    "derivative": lambda cb: fc.derivative(cb, np.array([0.5, 1.0, 2.0]), accuracy=4),
    "derivative_richardson": lambda cb: fc.derivative(cb, 0.7, order=2, method="richardson"),
    "gradient": lambda cb: fc.gradient(cb, POINT, method="richardson"),
    "gradient_vectorized": lambda cb: fc.gradient(cb, POINT, vectorized=True),
    "jacobian": lambda cb: fc.jacobian(cb, POINT, accuracy=4),
    "hessian": lambda cb: fc.hessian(cb, POINT, accuracy=4),
    "hessian_grad": lambda cb: fc.hessian(None, POINT, grad=cb),
    "check_grad_f": lambda cb: fc.check_grad(cb, _field_grad, POINT),
    "check_grad_grad": lambda cb: fc.check_grad(_field, cb, POINT),
    "taylor": lambda cb: fc.taylor(cb, 0.3, 4),
    "newton_scalar": lambda cb: fc.newton(cb, 3.0),
    "newton_batch": lambda cb: fc.newton(cb, np.linspace(1.0, 4.0, 7), full_output=True),
    "newton_secant": lambda cb: fc.newton(cb, np.linspace(1.0, 4.0, 7), method="secant",
                                          full_output=True),
    "newton_system": lambda cb: fc.newton_system(cb, [1.0, -1.5]),
    "newton_system_batch": lambda cb: fc.newton_system(
        cb, np.array([[1.0, -1.5], [-2.0, 1.0], [1.5, -1.0]]), vectorized=True),
    "gradient_descent": lambda cb: fc.gradient_descent(cb, [0.3, -0.2, 0.1], tol=1e-6,
                                                       maxiter=200),
    "lagrange": lambda cb: fc.lagrange(cb, lambda x: x[0] ** 2 + x[1] ** 2 - 1.0, [1.0, 0.5]),
    "lagrange_constraint": lambda cb: fc.lagrange(lambda x: x[0] + x[1], cb, [1.0, 0.5]),
    "fit": lambda cb: fc.fit(cb, X_DATA, Y_DATA, p0=P0),
    "fit_gd": lambda cb: fc.fit(cb, X_DATA, Y_DATA, p0=P0, method="gd", maxiter=300),
    "fit_batch": lambda cb: fc.fit_batch(cb, X_DATA, np.stack([Y_DATA, Y_DATA[::-1], Y_DATA + 1]),
                                         p0=P0),
}
USER_FUNCTIONS = {
    "derivative": lambda x: np.sin(x) * np.exp(x / 3),
    "derivative_richardson": lambda x: np.sin(x) * np.exp(x / 3),
    "gradient": _field, "gradient_vectorized": _field_vectorized, "jacobian": _vector,
    "hessian": _field, "hessian_grad": _field_grad, "check_grad_f": _field,
    "check_grad_grad": _field_grad, "taylor": lambda x: np.exp(np.sin(x)),
    "newton_scalar": _cubic, "newton_batch": _cubic, "newton_secant": _cubic,
    "newton_system": _circle_exp, "newton_system_batch": _circle_exp_vectorized,
    "gradient_descent": lambda x: float(np.sum((x - 0.1) ** 2 * np.arange(1, x.size + 1))),
    "lagrange": lambda x: x[0] + x[1],
    "lagrange_constraint": lambda x: x[0] ** 2 + x[1] ** 2 - 1.0,
    "fit": _gauss, "fit_gd": _gauss, "fit_batch": _gauss,
}


def _arrays(result):
    if isinstance(result, dict):
        return [np.asarray(result[k]) for k in sorted(result) if k not in ("message",)
                and np.asarray(result[k]).dtype != object]
    if hasattr(result, "params"):
        return [np.asarray(result.params), np.asarray(result.cov), np.asarray(result.status)]
    if hasattr(result, "coef"):
        return [result.coef]
    return [np.asarray(result)]


def _assert_identical(got, want):
    for g, w in zip(_arrays(got), _arrays(want), strict=True):
        # equal_nan only for numbers (lagrange's kind is a string)
        assert np.array_equal(g, w, equal_nan=g.dtype.kind not in "SU"), (g, w)


def _run(name, callback):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return ROUTINES[name](callback)


@pytest.mark.parametrize("name", sorted(ROUTINES))
def test_callback_exception_on_kth_call_propagates_and_leaves_no_state(name):
    function = USER_FUNCTIONS[name]
    counter = CountingCallback(function)
    reference = _run(name, counter)
    total = counter.calls
    assert total >= 1
    for fail_at in sorted({1, 2, (total + 1) // 2, total} - {0}):
        if fail_at > total:
            continue
        callback = CountingCallback(function, fail_at)
        with pytest.raises(Injected) as info:
            _run(name, callback)
        assert info.value is callback.raised, "a different exception object reached the caller"
        frames = [frame.name for frame in traceback.extract_tb(info.value.__traceback__)]
        assert "__call__" in frames, f"the callback's frame is missing from {frames}"
        assert callback.calls == fail_at, "the routine kept calling after the exception"
        _assert_identical(_run(name, CountingCallback(function)), reference)


def test_keyboard_interrupt_in_callback_is_not_swallowed():
    def f(x):
        raise KeyboardInterrupt
    for run in (lambda: fc.gradient(f, POINT), lambda: fc.newton(f, np.ones(3)),
                lambda: fc.fit(lambda x, *p: f(x), X_DATA, Y_DATA, p0=P0),
                lambda: fc.fit_batch(lambda x, *p: f(x), X_DATA, Y_DATA[None], p0=P0),
                lambda: fc.newton_system(f, [1.0, 2.0]),
                lambda: fc.gradient_descent(f, [1.0, 2.0])):
        with pytest.raises(KeyboardInterrupt):
            run()


# ----------------------------------------------------------------------- NaN at one point
def _log_domain(x):
    """log(x) with NaN for x < 1 (a domain edge right at the point of differentiation)."""
    x = np.asarray(x, dtype=float)
    return np.where(x >= 1.0, np.log(np.maximum(x, 1.0)), np.nan)


def _rational(x):
    # Only + - * / (correctly rounded), so values never depend on SIMD paths of libm ufuncs.
    return x * x * x - 2.0 / x


def _rational_domain(x):
    x = np.asarray(x, dtype=float)
    return np.where(x >= 1.0, _rational(np.maximum(x, 1.0)), np.nan)


def test_derivative_nan_on_one_side_falls_back_to_one_sided():
    r = fc.derivative(_rational_domain, np.array([1.0, 2.0]), accuracy=4, full_output=True)
    assert np.all(r.status == 0)
    np.testing.assert_allclose(r.df, [5.0, 12.5], rtol=1e-9)
    # The other element kept its central stencil: identical to the NaN-free function's.
    assert r.df[1] == fc.derivative(_rational, np.array([1.0, 2.0]), accuracy=4)[1]


@pytest.mark.parametrize("accuracy", [4, 6, 8])
def test_derivative_element_independent_of_batch(accuracy):
    alone = fc.derivative(_rational, np.array([2.0]), accuracy=accuracy)[0]
    for others in ([1.5], [1.5, 3.0, 4.0], list(np.linspace(1, 3, 17))):
        batch = fc.derivative(_rational, np.array(others + [2.0]), accuracy=accuracy)
        assert batch[-1] == alone, (accuracy, len(others))


def test_derivative_element_independent_of_batch_accuracy2_and_richardson():
    for kwargs in ({}, {"method": "richardson"}, {"method": "forward", "accuracy": 1}):
        alone = fc.derivative(_rational, np.array([2.0]), **kwargs)[0]
        batch = fc.derivative(_rational, np.linspace(1, 3, 17).tolist() + [2.0], **kwargs)
        assert batch[-1] == alone, kwargs


def _sqrt_domain(x):
    x = np.asarray(x, dtype=float)
    return np.sqrt(np.where(x >= 0, x, np.nan))


@pytest.mark.parametrize("x0", [
    1e-3, 1e-2, 0.1, 1.0])
def test_richardson_error_estimate_honest_after_one_sided_fallback(x0):
    r = fc.derivative(_sqrt_domain, x0, method="richardson", full_output=True)
    exact = 0.5 / np.sqrt(x0)
    assert r.status != 0 or abs(float(r.df) - exact) <= float(r.error), \
        (float(r.df), exact, float(r.error))
    g = fc.gradient(lambda v: float(np.sqrt(v[0])), [x0], method="richardson",
                    bounds=([0.0], [np.inf]), full_output=True)
    assert g.status[0] != 0 or abs(g.df[0] - exact) <= g.error[0], (g.df[0], exact, g.error[0])


def test_gradient_and_jacobian_nan_on_one_side_fall_back():
    def f(v):
        return float(_log_domain(v[0]) + v[1] ** 2)
    r = fc.gradient(f, [1.0, 2.0], full_output=True)
    assert np.all(r.status == 0)
    np.testing.assert_allclose(r.df, [1.0, 4.0], rtol=1e-7)
    J = fc.jacobian(lambda v: np.array([f(v), v[0] * v[1]]), [1.0, 2.0], full_output=True)
    assert np.all(J.status == 0)
    np.testing.assert_allclose(J.df, [[1.0, 4.0], [2.0, 1.0]], rtol=1e-7)


def test_hessian_nan_on_one_side_falls_back():
    def f(v):
        return float(_log_domain(v[0]) * v[1] ** 2)
    r = fc.hessian(f, [1.0, 2.0], full_output=True)
    assert np.all(r.status == 0)
    np.testing.assert_allclose(r.df, [[-4.0, 4.0], [4.0, 0.0]], rtol=1e-5, atol=1e-5)


def test_nan_everywhere_around_a_point_gives_status_not_value():
    def f(v):
        return float(v[0] ** 2) if v[0] == 1.0 else np.nan     # finite only at x itself
    r = fc.gradient(f, [1.0, 2.0], full_output=True)
    assert r.status[0] == Status.NON_FINITE and np.isnan(r.df[0])


def test_batch_newton_nan_at_one_element_isolated():
    x0 = np.array([1.0, 2.0, 3.0, 4.0])

    def f(x):
        return np.where(x == 3.0, np.nan, _cubic(x))
    r = fc.newton(f, x0, full_output=True)
    assert r.status.tolist() == [0, 0, Status.NON_FINITE, 0]
    clean = fc.newton(_cubic, x0[[0, 1, 3]], full_output=True)
    assert np.array_equal(r.x[[0, 1, 3]], clean.x)


def test_newton_system_batch_nan_at_one_system_isolated():
    X0 = np.array([[1.0, -1.5], [-2.0, 1.0], [1.5, -1.0]])

    def F(X):
        out = _circle_exp_vectorized(X)
        return np.where(np.isclose(X[0], -2.0) & np.isclose(X[1], 1.0), np.nan, out)
    r = fc.newton_system(F, X0, vectorized=True)
    assert r.status.tolist() == [0, Status.NON_FINITE, 0]
    clean = fc.newton_system(_circle_exp_vectorized, X0[[0, 2]], vectorized=True)
    assert np.array_equal(r.x[[0, 2]], clean.x)


def test_fit_model_nan_outside_domain_still_converges_like_curve_fit():
    x = np.linspace(1, 10, 30)
    y = 2 * np.sqrt(x - 0.8) + 0.01 * np.sin(5 * x)

    def model(x, a, b):
        with np.errstate(invalid="ignore"):
            return a * np.sqrt(x - b)            # NaN wherever a trial step puts b above an x
    for p0 in ([1.0, 0.0], [1.0, 0.95], [5.0, -5.0]):
        r = fc.fit(model, x, y, p0=p0)
        ref, _ = optimize.curve_fit(model, x, y, p0=p0)
        assert r.success
        np.testing.assert_allclose(r.params, ref, rtol=1e-6)


def test_gradient_descent_nan_beyond_a_region_backtracks():
    def f(x):
        return float(np.sum((x - 1.0) ** 2)) if np.all(np.abs(x) < 2.5) else np.nan
    r = fc.gradient_descent(f, [2.0, -2.0], tol=1e-7)
    assert r.status == 0
    np.testing.assert_allclose(r.x, [1.0, 1.0], atol=1e-6)


def test_fit_batch_one_dataset_model_nan_isolated():
    Y = np.stack([Y_DATA, Y_DATA * 2, Y_DATA + 3])

    def model(x, a, mu, s, c):
        values = _gauss(x, a, mu, s, c)
        return np.where(np.abs(a) > 75, np.nan, values)  # dataset 1 needs a ~ 100: NaN there
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = fc.fit_batch(model, X_DATA, Y, p0=P0)
        clean = fc.fit_batch(_gauss, X_DATA, Y[[0, 2]], p0=P0)
    assert r.status[0] == 0 and r.status[2] == 0
    assert np.array_equal(r.params[[0, 2]], clean.params)
    assert r.status[1] != 0 or abs(r.params[1][0]) <= 75


# ---------------------------------------------------------------------------- Ctrl-C
_CHILD_PRELUDE = """
import signal, sys
# what the test runner left (reported on failure), then the interpreter's own Ctrl-C handling
inherited = (signal.getsignal(signal.SIGINT), sorted(signal.pthread_sigmask(signal.SIG_BLOCK, [])))
print("inherited SIGINT handler and blocked signals:", inherited, file=sys.stderr, flush=True)
signal.signal(signal.SIGINT, signal.default_int_handler)
signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGINT])
import sys, time, numpy as np, fastcalc as fc
from fastcalc import models
from fastcalc._testfunctions import low_level
x = np.linspace(1, 10, 40)
y = 2 * np.sqrt(x - 0.8) + 0.01 * np.sin(5 * x)
def gauss(x, a, mu, s, c):
    return a * np.exp(-(x - mu) ** 2 / (2 * s ** 2)) + c
def kepler(E, e, M):
    return E - e * np.sin(E) - M
def kepler_prime(E, e, M):
    return 1 - e * np.cos(E)
try:
    print("ready", flush=True)
    started = time.perf_counter()
{work}
    print("finished without interruption", flush=True)
    sys.exit(3)
except KeyboardInterrupt:
    print("interrupted", flush=True)
    sys.exit(42)
"""

_WORKLOADS = {
    # A Gaussian fitted by gradient descent to square-root data crawls until maxiter: each call
    # would run for minutes if not interrupted.
    # Python callbacks: the interrupt surfaces in the callback and propagates.
    "fit_batch_python": "fc.fit_batch(gauss, x, np.tile(y, (20, 1)), p0=[1, 0, 1, 0], "
                        "method='gd', maxiter=10**7)",
    "newton_batch_python": "fc.newton(kepler, np.full(200, 2.0), kepler_prime, "
                           "args=(np.full(200, 3.0), np.full(200, 1.0)), tol=0, rtol=0, "
                           "maxiter=10**8, full_output=True)",
    # Built-in / compiled: the kernel runs without the GIL.
    "fit_batch_builtin": "fc.fit_batch(models.gaussian, x, np.tile(y, (2000, 1)), "
                         "p0=[1, 0, 1, 0], method='gd', maxiter=10**6)",
    "fit_batch_compiled": "fc.fit_batch(low_level('gaussian_model'), x, np.tile(y, (2000, 1)), "
                          "p0=[1, 0, 1, 0], method='gd', maxiter=10**6)",
    "newton_batch_compiled": "fc.newton(low_level('kepler_eq'), np.full(20000, 2.0), "
                             "low_level('kepler_eq_prime'), args=(np.full(20000, 3.0), "
                             "np.full(20000, 1.0)), tol=0, rtol=0, maxiter=2**31 - 1, "
                             "full_output=True)",
}
PROMPT_SECONDS = 3.0


def _interrupt_child(work):
    root = str(Path(fc.__file__).resolve().parents[1])
    source = _CHILD_PRELUDE.replace("{work}", textwrap.indent(work, " " * 4))
    env = dict(os.environ, PYTHONPATH=root, OMP_NUM_THREADS="2")
    child = subprocess.Popen([sys.executable, "-c", source], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=env, cwd=root)
    try:
        assert child.stdout.readline().strip() == "ready"
        time.sleep(1.0)                                 # well inside the long call
        assert child.poll() is None, "the workload finished before the interrupt"
        child.send_signal(signal.SIGINT)
        sent = time.perf_counter()
        try:
            out, err = child.communicate(timeout=PROMPT_SECONDS)
        except subprocess.TimeoutExpired:
            child.kill()
            _, err = child.communicate()
            raise AssertionError(f"not interrupted within {PROMPT_SECONDS} s of SIGINT; "
                                 f"child's stderr: {err[-2000:]}")
        elapsed = time.perf_counter() - sent
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()
    assert child.returncode == 42 and "interrupted" in out, (child.returncode, out, err[-2000:])
    return elapsed


@pytest.mark.parametrize("workload", sorted(_WORKLOADS))
def test_keyboard_interrupt_during_long_batch(workload):
    assert _interrupt_child(_WORKLOADS[workload]) < PROMPT_SECONDS

