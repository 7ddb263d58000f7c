"""fastcalc.newton and fastcalc.newton_system against SciPy, exact roots, and bad input."""
import math
import warnings

import numpy as np
import pytest
import scipy.optimize as so

from fastcalc import ConvergenceError, Status, newton, newton_system
from fastcalc._testfunctions import low_level

EPS = np.finfo(float).eps


def cube(x, a):
    return x**3 - a


def cube_prime(x, a):
    return 3.0 * x**2


def cube_prime2(x, a):
    return 6.0 * x


# ---------------------------------------------------------------- scalar newton vs SciPy

SCALAR_PROBLEMS = [
    (lambda x: math.cos(x) - x, lambda x: -math.sin(x) - 1.0, 1.0),
    (lambda x: x**3 - 2.0 * x - 5.0, lambda x: 3.0 * x**2 - 2.0, 2.0),
    (lambda x: math.exp(x) - 3.0, math.exp, 0.0),
    (lambda x: math.atan(x), lambda x: 1.0 / (1.0 + x * x), 1.0),
]


@pytest.mark.parametrize("f, fprime, x0", SCALAR_PROBLEMS)
def test_scalar_matches_scipy_newton(f, fprime, x0):
    expected = so.newton(f, x0, fprime, tol=1e-14)
    assert isinstance(newton(f, x0, fprime), float)
    assert newton(f, x0, fprime) == pytest.approx(expected, rel=4 * EPS, abs=4 * EPS)
    # finite-difference derivative, secant and a bracket reach the same root
    assert newton(f, x0) == pytest.approx(expected, rel=1e-12, abs=1e-14)
    assert newton(f, x0, method="secant") == pytest.approx(expected, rel=1e-12, abs=1e-14)
    bracketed = so.root_scalar(f, bracket=(expected - 0.7, expected + 0.4), method="brentq",
                               xtol=1e-15).root
    assert newton(f, None, fprime, bracket=(expected - 0.7, expected + 0.4)) == \
        pytest.approx(bracketed, rel=1e-13, abs=1e-14)


def test_scalar_halley_matches_root_scalar_and_takes_fewer_steps():
    f, fp, fpp = (lambda x: x**3 - 2.0 * x - 5.0), (lambda x: 3 * x**2 - 2.0), (lambda x: 6 * x)
    ref = so.root_scalar(f, x0=3.0, fprime=fp, fprime2=fpp, method="halley", xtol=1e-15)
    halley = newton(f, 3.0, fp, fprime2=fpp, full_output=True)
    plain = newton(f, 3.0, fp, full_output=True)
    assert halley.x == pytest.approx(ref.root, rel=2 * EPS)
    assert halley.converged and halley.nit < plain.nit


def test_scalar_result_fields_are_consistent():
    r = newton(lambda x: x * x - 2.0, 1.0, lambda x: 2.0 * x, full_output=True)
    assert r.x == r.root == pytest.approx(math.sqrt(2), rel=EPS)
    assert r.fun == r.x**2 - 2.0          # fun is f at the returned x
    assert r.success and r.converged and r.status == 0 and r.message == "converged"
    assert r.nfev == 2 * r.nit + 1        # f at every iterate, f' at every step


def test_scalar_failure_raises_convergence_error_unless_full_output():
    with pytest.raises(ConvergenceError, match="zero derivative"):
        newton(lambda x: x * x + 1.0, 0.0, lambda x: 2.0 * x)
    with pytest.raises(ConvergenceError, match="maximum number of iterations"):
        newton(lambda x: x * x + 1.0, 0.5, lambda x: 2.0 * x, maxiter=5)
    assert issubclass(ConvergenceError, RuntimeError)
    r = newton(lambda x: x * x + 1.0, 0.5, lambda x: 2.0 * x, maxiter=5, full_output=True)
    assert r.status == Status.MAX_ITERATIONS and r.nit == 5 and not r.converged


def test_nan_value_is_never_converged():
    # SciPy's array newton reports this element converged; fastcalc must not.
    r = newton(lambda x: math.sqrt(x) - 3.0 if x >= 0 else math.nan, -1.0, lambda x: 1.0,
               full_output=True)
    assert r.status == Status.NON_FINITE and not r.converged and math.isnan(r.fun)
    with np.errstate(invalid="ignore"):
        r = newton(lambda x: np.sqrt(x) - 3.0, np.array([-1.0, 4.0]),
                   lambda x: 0.5 / np.sqrt(x), full_output=True)
    np.testing.assert_array_equal(r.status, [Status.NON_FINITE, Status.SUCCESS])
    assert r.x[1] == pytest.approx(9.0, rel=4 * EPS)


def test_nan_derivative_gives_status_3():
    r = newton(lambda x: x - 1.0, 3.0, lambda x: math.nan, full_output=True)
    assert r.status == Status.NON_FINITE


def test_tolerances_are_honoured():
    # ftol alone stops as soon as |f| <= ftol
    r = newton(lambda x: x**3 - 2.0, 1.0, lambda x: 3 * x**2, ftol=1e-3, tol=0, rtol=0,
               full_output=True)
    assert abs(r.fun) <= 1e-3 and r.converged
    assert abs(r.x - 2 ** (1 / 3)) > 1e-8     # it did stop early
    # a loose step tolerance returns one step after the step that met it
    loose = newton(lambda x: x**3 - 2.0, 1.0, lambda x: 3 * x**2, tol=1e-2, full_output=True)
    tight = newton(lambda x: x**3 - 2.0, 1.0, lambda x: 3 * x**2, full_output=True)
    assert loose.nit < tight.nit and loose.converged


# ---------------------------------------------------------------- batch newton

def test_batch_matches_scipy_array_newton(rng):
    a = rng.uniform(0.1, 100.0, 2000)
    x0 = rng.uniform(1.0, 5.0, 2000)
    expected = so.newton(cube, x0, cube_prime, args=(a,), tol=1e-14)
    result = newton(cube, x0, cube_prime, args=(a,), full_output=True)
    assert result.converged.all()
    np.testing.assert_allclose(result.x, expected, rtol=4 * EPS)
    np.testing.assert_allclose(result.x, np.cbrt(a), rtol=4 * EPS)
    np.testing.assert_array_equal(result.fun, cube(result.x, a))
    assert result.x.shape == result.nit.shape == result.status.shape == (2000,)


@pytest.mark.parametrize("kind", ["python", "compiled"])
@pytest.mark.parametrize("method", ["newton", "fd", "halley", "secant", "bracket"])
def test_batch_cube_roots_exact(rng, kind, method):
    a = rng.uniform(-50.0, 50.0, 5000)
    x0 = np.where(a > 0, 1.0, -1.0) * rng.uniform(0.5, 4.0, 5000)
    if kind == "python":
        f, fp, fpp = cube, cube_prime, cube_prime2
    else:
        f, fp, fpp = (low_level(n) for n in ("cube_root_eq", "cube_root_eq_prime",
                                             "cube_root_eq_prime2"))
    kw = {"newton": dict(fprime=fp), "fd": {}, "halley": dict(fprime=fp, fprime2=fpp),
          "secant": dict(method="secant"),
          "bracket": dict(fprime=fp, bracket=(np.where(a > 0, 0.0, -4.0),
                                              np.where(a > 0, 4.0, 0.0)))}[method]
    r = newton(f, x0, args=(a,), full_output=True, **kw)
    assert r.converged.all(), np.unique(r.status)
    # the step test (tol=1.48e-8) is met one step before the returned iterate: Newton-type
    # steps then sit at rounding level; the secant method (order 1.6) a little above it
    rtol = {"fd": 1e-14, "secant": 1e-11}.get(method, 4 * EPS)
    np.testing.assert_allclose(r.x, np.cbrt(a), rtol=rtol)
    if method == "bracket":
        assert r.x.min() >= -4.0 and r.x.max() <= 4.0


def test_batch_keeps_x0_shape_and_broadcasts_args():
    a = np.array([[1.0, 8.0, 27.0], [64.0, 125.0, 216.0]])
    r = newton(cube, np.full((2, 3), 2.0), cube_prime, args=(a,), full_output=True)
    assert r.x.shape == r.status.shape == r.nit.shape == (2, 3)
    np.testing.assert_allclose(r.x, [[1, 2, 3], [4, 5, 6]], rtol=4 * EPS)
    # a row of parameters broadcast against x0, and a scalar argument passed as is
    x = newton(lambda x, a, c: c * (x**3 - a), np.full((2, 3), 2.0), lambda x, a, c: 3 * c * x**2,
               args=(np.array([1.0, 8.0, 27.0]), 2.0))
    np.testing.assert_allclose(x, [[1, 2, 3], [1, 2, 3]], rtol=4 * EPS)


def test_converged_elements_are_not_evaluated_again(rng):
    a = rng.uniform(1.0, 1000.0, 3000)
    calls = []

    def f(x, a):
        assert x.shape == a.shape
        calls.append(x.size)
        return x**3 - a

    r = newton(f, np.ones(3000), cube_prime, args=(a,), full_output=True)
    assert r.converged.all()
    assert calls[0] == 3000 and calls == sorted(calls, reverse=True) and calls[-1] < 3000
    # each element was passed to f once per iteration plus once to confirm convergence
    assert sum(calls) == (r.nit + 1).sum()
    assert (r.nfev == 2 * (r.nit + 1)).all()


def test_kepler_equation_1e5_against_long_double_bisection(rng):
    n = 100_000
    e = rng.uniform(0.0, 0.99, n)
    M = rng.uniform(0.0, 2 * np.pi, n)
    # reference: bisection in extended precision on E - e sin E = M, E in [M - e, M + e]
    el, Ml = e.astype(np.longdouble), M.astype(np.longdouble)
    lo, hi = Ml - el, Ml + el
    for _ in range(70):
        mid = (lo + hi) / 2
        positive = mid - el * np.sin(mid) - Ml > 0
        hi = np.where(positive, mid, hi)
        lo = np.where(positive, lo, mid)
    reference = ((lo + hi) / 2).astype(np.float64)
    slope = 1.0 - e * np.cos(reference)
    bound = 8 * EPS * np.maximum(1.0, np.abs(reference)) / slope

    # Danby's starting guess (plain Newton from E = M diverges for some e near 1), and the
    # safeguarded iteration in the bracket [M - e, M + e] from E = M
    start = M + 0.85 * e * np.sign(np.sin(M))
    python = newton(lambda E, e, M: E - e * np.sin(E) - M, start,
                    lambda E, e, M: 1.0 - e * np.cos(E), args=(e, M), full_output=True)
    compiled = newton(low_level("kepler_eq"), start, low_level("kepler_eq_prime"), args=(e, M),
                      full_output=True)
    bracketed = newton(low_level("kepler_eq"), M, low_level("kepler_eq_prime"), args=(e, M),
                       bracket=(M - e, M + e), full_output=True)
    for r in (python, compiled, bracketed):
        assert r.converged.all()
        assert (np.abs(r.x - reference) <= bound).all()


def test_polynomial_roots_against_numpy_roots(rng):
    n = 300
    roots = np.sort(rng.uniform(-5.0, 5.0, (n, 3)), axis=1)
    roots[:, 1] += 0.2 * np.arange(n) / n          # keep them apart
    roots[:, 2] += 0.5
    coeffs = np.array([np.poly(r) for r in roots])   # (n, 4), highest power first
    expected = np.array([np.sort(np.roots(c).real) for c in coeffs])
    c = tuple(coeffs.T)

    def p(x, c3, c2, c1, c0):
        return ((c3 * x + c2) * x + c1) * x + c0

    def dp(x, c3, c2, c1, c0):
        return (3 * c3 * x + 2 * c2) * x + c1

    # the middle root, bracketed between the outer ones
    lo = (roots[:, 0] + roots[:, 1]) / 2
    hi = (roots[:, 1] + roots[:, 2]) / 2
    r = newton(p, None, dp, args=c, bracket=(lo, hi), full_output=True)
    assert r.converged.all()
    np.testing.assert_allclose(r.x, expected[:, 1], rtol=1e-10, atol=1e-12)
    assert ((r.x >= lo) & (r.x <= hi)).all()


def test_compiled_and_python_agree_and_threads_do_not_matter(rng):
    a = rng.uniform(0.0, 1000.0, 20_001)
    x0 = np.ones_like(a)
    f, fp = low_level("cube_root_eq"), low_level("cube_root_eq_prime")
    one = newton(f, x0, fp, args=(a,), full_output=True, n_threads=1)
    two = newton(f, x0, fp, args=(a,), full_output=True, n_threads=2)
    for key in ("x", "fun", "status", "nit", "nfev"):
        np.testing.assert_array_equal(one[key], two[key])
    python = newton(cube, x0, cube_prime, args=(a,), full_output=True)
    np.testing.assert_allclose(one.x, python.x, rtol=4 * EPS)
    np.testing.assert_allclose(one.x, np.cbrt(a), rtol=4 * EPS)


def test_compiled_failures_give_statuses():
    # log(x) = p: Newton from far right overshoots to x < 0 (log -> NaN): status 3
    f, fp = low_level("log_eq"), low_level("log_eq_prime")
    r = newton(f, np.array([1.0, 100.0, 0.0]), fp, args=(np.array([0.5, 0.5, 0.5]),),
               full_output=True)
    assert r.status[0] == Status.SUCCESS and r.x[0] == pytest.approx(math.exp(0.5), rel=4 * EPS)
    assert r.status[1] == Status.NON_FINITE
    assert r.status[2] == Status.NON_FINITE        # log(0) = -inf
    r = newton(low_level("cube_root_eq"), np.array([0.0, 2.0]), low_level("cube_root_eq_prime"),
               args=(np.array([1.0, 8.0]),), full_output=True)
    np.testing.assert_array_equal(r.status, [Status.SINGULAR, Status.SUCCESS])


# ---------------------------------------------------------------- bad input in a batch

def test_one_bad_element_spoils_nothing(rng):
    a = rng.uniform(1.0, 100.0, 1000)
    x0 = rng.uniform(1.0, 5.0, 1000)
    clean = newton(cube, x0, cube_prime, args=(a,), full_output=True)
    x0_bad, a_bad = x0.copy(), a.copy()
    x0_bad[3] = np.nan           # non-finite start
    a_bad[7] = np.inf            # non-finite parameter
    x0_bad[11] = 0.0             # zero derivative
    r = newton(cube, x0_bad, cube_prime, args=(a_bad,), full_output=True)
    assert r.status[3] == r.status[7] == Status.NON_FINITE and r.status[11] == Status.SINGULAR
    good = np.setdiff1d(np.arange(1000), [3, 7, 11])
    np.testing.assert_array_equal(r.x[good], clean.x[good])
    np.testing.assert_array_equal(r.nit[good], clean.nit[good])
    assert r.status[good].max() == 0


def test_batch_failure_warns_without_full_output():
    with pytest.warns(RuntimeWarning, match="1 of 2 elements did not converge"):
        x = newton(cube, np.array([0.0, 2.0]), cube_prime, args=(np.array([1.0, 8.0]),))
    assert x[1] == 2.0


@pytest.mark.parametrize("compiled", [False, True])
def test_batch_failure_warning_points_at_the_caller(compiled):
    f, fp = ((low_level("cube_root_eq"), low_level("cube_root_eq_prime")) if compiled
             else (cube, cube_prime))
    with pytest.warns(RuntimeWarning, match="1 of 2 elements") as record:
        newton(f, np.array([0.0, 2.0]), fp, args=(np.array([1.0, 8.0]),))
    assert record[0].filename == __file__


def test_no_root_in_bracket_and_start_outside_bracket():
    a = np.array([8.0, 8.0, 8.0])
    r = newton(cube, np.array([1.0, 1.0, 5.0]), cube_prime, args=(a,),
               bracket=(np.array([0.0, 3.0, 0.0]), np.array([4.0, 4.0, 4.0])), full_output=True)
    np.testing.assert_array_equal(r.status, [Status.SUCCESS, Status.OUT_OF_BOUNDS,
                                             Status.OUT_OF_BOUNDS])
    assert r.x[0] == 2.0
    with pytest.raises(ConvergenceError, match="bracket"):
        newton(lambda x: x * x + 1.0, 0.0, bracket=(-1.0, 1.0))


def test_bracket_never_left_even_when_newton_would_jump():
    # Newton from 0.1 on atan jumps far away; the safeguard keeps every iterate inside.
    seen = []

    def f(x):
        seen.append(x)
        return math.atan(x)

    r = newton(f, 1.45, lambda x: 1.0 / (1.0 + x * x), bracket=(-1.0, 1.5), full_output=True)
    assert r.converged and abs(r.x) < 1e-12
    assert min(seen) >= -1.0 and max(seen) <= 1.5
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)    # plain Newton diverges
        plain = so.newton(math.atan, 1.45, lambda x: 1.0 / (1.0 + x * x), maxiter=50,
                          disp=False)
    assert plain != pytest.approx(0.0, abs=1e-3)


def _recording(f, seen):
    def recorded(x, *args):
        seen.append(np.array(x, dtype=float).ravel())
        return f(x, *args)
    return recorded


def _compiled_recording(seen):
    """log(x) - p[0] as a compiled (ctypes) elementwise function that records its x."""
    import ctypes
    from scipy import LowLevelCallable
    proto = ctypes.CFUNCTYPE(ctypes.c_double, ctypes.c_double, ctypes.c_int,
                             ctypes.POINTER(ctypes.c_double), ctypes.c_void_p)

    def log_eq(x, k, p, data):
        seen.append(np.array([x]))
        return math.log(x) - p[0] if x > 0 else math.nan

    callback = proto(log_eq)
    llc = LowLevelCallable(callback, signature="double (double, int, double *, void *)")
    return llc, callback        # (the callback must outlive the call)


def test_bracket_contains_every_evaluation_and_bad_derivatives_bisect():
    # Roots exp(p) lie in [1e-300, 3]; the FD stencil x +- h (h ~ 6e-6) and the secant's
    # second start used to leave the bracket (log of a negative number: status 3), and a NaN
    # derivative gave status 3 instead of a bisection step.
    p = np.array([-13.0, -12.0, 0.0, 0.5])
    a, b = np.full(4, 1e-300), np.full(4, 3.0)
    log_eq = lambda x, p: np.log(x) - p             # noqa: E731
    cases = [dict(), dict(method="secant"), dict(fprime=lambda x, p: np.full_like(x, np.nan)),
             dict(fprime=lambda x, p: 1.0 / x, fprime2=lambda x, p: np.full_like(x, np.inf))]
    for kw in cases:
        seen = []
        f = _recording(log_eq, seen)
        with np.errstate(all="ignore"):
            batch = newton(f, None, args=(p,), bracket=(a, b), tol=1e-13, full_output=True,
                           **kw)
            one = newton(f, 1e-300, args=(p[0],), bracket=(1e-300, 3.0), tol=1e-13,
                         full_output=True, **kw)
        seen = np.concatenate(seen)
        assert seen.min() >= 1e-300 and seen.max() <= 3.0, kw
        np.testing.assert_array_equal(batch.status, 0)
        np.testing.assert_allclose(batch.x, np.exp(p), rtol=1e-6, atol=2e-13)
        assert one.status == 0 and abs(one.x - math.exp(p[0])) <= 2e-13
    for method in ("newton", "secant"):
        seen = []
        llc, keep = _compiled_recording(seen)
        r = newton(llc, None, args=(p,), bracket=(a, b), tol=1e-13, method=method,
                   full_output=True, n_threads=1)
        seen = np.concatenate(seen)
        assert seen.min() >= 1e-300 and seen.max() <= 3.0, method
        np.testing.assert_array_equal(r.status, 0)
        np.testing.assert_allclose(r.x, np.exp(p), rtol=1e-6, atol=2e-13)
    # x0 at an end: the secant start x0 (1 + 1e-4) + 1e-4 is outside; it is mirrored inside
    seen = []
    f = _recording(lambda x: np.sqrt(4.0 - x) - 1.9, seen)
    r = newton(f, 4.0, method="secant", bracket=(0.0, 4.0), full_output=True)
    # a bracketed secant converges when the bracket has closed to tol (default 1.48e-8)
    assert r.status == 0 and abs(r.x - (4.0 - 1.9**2)) <= 1.48e-8
    r = newton(f, 4.0, method="secant", bracket=(0.0, 4.0), tol=0.0, rtol=1e-14,
               full_output=True)
    assert r.status == 0 and abs(r.x - (4.0 - 1.9**2)) < 1e-13
    assert min(map(min, seen)) >= 0.0 and max(map(max, seen)) <= 4.0
    r = newton(lambda x: x**3 - 1e-3, np.array([1.5]), lambda x: np.full_like(x, np.nan),
               bracket=(0, 3), full_output=True)
    assert r.status[0] == 0 and abs(r.x[0] - 0.1) < 1e-8
    # a NaN x0 is non-finite (3), not "outside the bracket" (4)
    for f in (lambda x, c: x**3 - c, low_level("cube_root_eq")):
        r = newton(f, np.array([np.nan, 1.0]), args=(1e-3,), bracket=(0, 3), full_output=True)
        np.testing.assert_array_equal(r.status, [Status.NON_FINITE, 0])


def test_n_threads_validated_for_every_kind_of_function():
    # a Python F used to ignore n_threads entirely; an array gave numpy's "truth value" error
    for F, x0, kw in ((lambda x: x - 1.0, [2.0], {}),
                      (lambda X: X - 1.0, [[2.0]], dict(vectorized=True)),
                      (low_level("circle_exp_system"), [2.0, 1.0], {})):
        for bad, error in ((0, ValueError), (-2, ValueError), ("x", TypeError),
                           (1.5, TypeError), (True, TypeError), (np.array([1, 2]), TypeError)):
            with pytest.raises(error, match="n_threads"):
                newton_system(F, x0, n_threads=bad, **kw)
    with pytest.raises(TypeError, match="n_threads"):
        newton(cube, np.ones(3), cube_prime, args=(8.0,), n_threads=np.array([1, 2]))


def test_any_array_like_arg_is_per_element():
    # only ndarray/list/tuple were per-element for Python f: a Series or array.array was
    # passed whole (to every call, whatever the active elements)
    import array
    a = [1.0, 8.0, 27.0]
    likes = [array.array("d", a), range(1, 4), memoryview(np.array(a))]
    pandas = pytest.importorskip("pandas")
    likes.append(pandas.Series(a))
    for like in likes:
        expected = np.cbrt(np.asarray(like, dtype=float))
        for kw in (dict(fprime=cube_prime), dict(), dict(method="secant")):
            r = newton(cube, np.full(3, 2.0), args=(like,), full_output=True, **kw)
            np.testing.assert_array_equal(r.status, 0)
            np.testing.assert_allclose(r.x, expected, rtol=1e-12)


def test_bad_tolerances_and_brackets_name_the_argument():
    # used to fail inside numpy ("ufunc 'isfinite' not supported", "'<' not supported",
    # "'int' object is not subscriptable", IndexError) or accept True as 1
    f = lambda x: x - 1.0         # noqa: E731
    for name in ("tol", "rtol", "ftol"):
        for bad in ("1e-8", 1j, True, np.bool_(True), None, [1e-8]):
            with pytest.raises(TypeError, match=f"^{name} must be a real number"):
                newton(f, 0.0, **{name: bad})
            with pytest.raises(TypeError, match=f"^{name} must be a real number"):
                newton_system(lambda x: x - 1.0, [0.0], **{name: bad})
    for bracket, error in (((0,), ValueError), (5, ValueError), ("abc", ValueError),
                           ("ab", TypeError), ((0j, 3), TypeError), (("a", 3), TypeError),
                           ((np.zeros(2), np.ones(3)), ValueError)):
        for x0 in (None, 0.5):
            with pytest.raises(error, match="bracket"):
                newton(f, x0, bracket=bracket)
    assert newton(f, None, bracket=(0, 3)) == 1.0
    assert newton(f, 0.0, tol=np.float32(1e-8)) == 1.0


def test_batch_function_returning_one_value_for_all_elements_raises():
    # a scalar (or shape (1,)) return used to be broadcast: f returning 0.0 marked every
    # element converged at x0, and fprime = lambda x: 2.0 gave every element the same slope
    x0 = np.array([1.0, 2.0, 3.0])
    for kw in (dict(fprime=lambda x: 2.0 * x), dict(), dict(method="secant"),
               dict(fprime=lambda x: 2.0 * x, bracket=(0.0, 5.0))):
        for bad in (lambda x: 0.0, lambda x: np.zeros(1)):
            with pytest.raises(ValueError, match=r"^f returned shape"):
                newton(bad, x0, **kw)
    for kw in (dict(), dict(bracket=(0.0, 5.0))):
        for bad in (lambda x: 2.0, lambda x: np.array([2.0])):
            with pytest.raises(ValueError, match=r"^fprime returned shape"):
                newton(lambda x: x - 1.5, x0, bad, **kw)
    # one equation takes a number or a length-1 array
    assert newton(lambda x: np.array([x - 1.5]), 1.0, lambda x: 1.0) == 1.5


def test_exception_in_callback_propagates_unchanged():
    class Boom(ValueError):
        pass

    def f(x, a):
        raise Boom("from f")

    for x0 in (1.0, np.ones(4)):
        with pytest.raises(Boom, match="from f"):
            newton(f, x0, cube_prime, args=(np.ones(4),) if np.ndim(x0) else (1.0,))
    with pytest.raises(Boom, match="from f"):
        newton_system(lambda x: (_ for _ in ()).throw(Boom("from f")), [1.0, 2.0])


def test_wrong_shapes_and_types_raise_clear_errors():
    with pytest.raises(ValueError, match="f returned shape"):
        newton(lambda x: np.ones(3), np.ones(4), lambda x: np.ones(4))
    with pytest.raises(ValueError, match="fprime returned shape"):
        newton(lambda x: x - 1.0, np.ones(4), lambda x: np.ones(2))
    with pytest.raises(ValueError, match=r"args\[0\]"):
        newton(cube, np.ones(4), cube_prime, args=(np.ones(3),))
    with pytest.raises(ValueError, match="bracket"):
        newton(cube, np.ones(4), cube_prime, args=(1.0,), bracket=(np.zeros(3), 1.0))
    with pytest.raises(TypeError, match="x0"):
        newton(cube, "abc", cube_prime)
    with pytest.raises(TypeError, match="f must be callable"):
        newton(3.0, 1.0)
    with pytest.raises(TypeError, match="compiled"):
        newton(low_level("cube_root_eq"), 1.0, cube_prime, args=(1.0,))
    with pytest.raises(TypeError, match="signature"):
        newton(low_level("rosenbrock"), 1.0)
    with pytest.raises(ValueError, match="method"):
        newton(cube, 1.0, method="regula falsi")
    with pytest.raises(ValueError, match="tol"):
        newton(cube, 1.0, tol=-1.0)
    with pytest.raises(ValueError, match="maxiter"):
        newton(cube, 1.0, maxiter=2.5)
    with pytest.raises(ValueError, match="x0"):
        newton_system(lambda x: x, np.ones((2, 2, 2)))
    with pytest.raises(ValueError, match="F returned shape"):
        newton_system(lambda x: x[:1], np.ones(2))
    with pytest.raises(ValueError, match="jac returned shape"):
        newton_system(lambda x: x, np.ones(2), jac=lambda x: np.eye(3))
    with pytest.raises(ValueError, match="F returned shape"):
        newton_system(lambda X: X[:1], np.ones((3, 2)), vectorized=True)


def test_several_per_element_args_follow_the_active_elements(rng):
    # two parameter arrays and a scalar: every call sees x and both arrays compacted alike,
    # all read-only (the first round passes the caller's own arrays)
    a = rng.uniform(1.0, 1000.0, 5000)
    scale = rng.uniform(0.5, 2.0, 5000)
    seen = []

    def f(x, a, scale, c):
        assert x.shape == a.shape == scale.shape and c == 3.0
        assert not (x.flags.writeable or a.flags.writeable or scale.flags.writeable)
        seen.append(x.size)
        return scale * (x * x * x - a)

    def fprime(x, a, scale, c):
        return c * scale * x * x

    r = newton(f, np.ones(5000), fprime, args=(a, scale, 3.0), full_output=True)
    assert r.converged.all() and sum(seen) == (r.nit + 1).sum()
    np.testing.assert_allclose(r.x, np.cbrt(a), rtol=4 * EPS)
    assert a.flags.writeable and scale.flags.writeable
    # no per-element argument at all, and an empty batch
    np.testing.assert_allclose(newton(lambda x: x * x - 2.0, np.full(3, 1.0), lambda x: 2 * x),
                               np.sqrt(2.0), rtol=4 * EPS)
    assert newton(cube, np.empty(0), cube_prime, args=(np.empty(0),)).shape == (0,)


def test_inputs_are_not_mutated_and_read_only_inputs_work(rng):
    a = rng.uniform(1.0, 10.0, 100)
    x0 = rng.uniform(1.0, 3.0, 100)
    lo, hi = np.zeros(100), np.full(100, 3.0)
    for arr in (a, x0, lo, hi):
        arr.flags.writeable = False
    copies = [arr.copy() for arr in (a, x0, lo, hi)]
    for f, fp in [(cube, cube_prime), (low_level("cube_root_eq"), low_level("cube_root_eq_prime"))]:
        for kw in ({}, {"bracket": (lo, hi)}):
            x = newton(f, x0, fp, args=(a,), **kw)
            np.testing.assert_allclose(x, np.cbrt(a), rtol=4 * EPS)
    X0 = np.ascontiguousarray(np.stack([x0, -x0], axis=1))
    X0.flags.writeable = False
    X0_copy = X0.copy()
    newton_system(low_level("circle_exp_system"), X0)
    newton_system(lambda X: np.stack([X[0]**2 + X[1]**2 - 4, np.exp(X[0]) + X[1] - 1]), X0,
                  vectorized=True)
    for arr, copy in zip((a, x0, lo, hi, X0), copies + [X0_copy]):
        np.testing.assert_array_equal(arr, copy)


def test_user_function_cannot_corrupt_the_iterates():
    def f(x):
        x *= 2.0          # the active iterates are passed read-only
        return x

    with pytest.raises(ValueError, match="read-only"):
        newton(f, np.ones(3), lambda x: np.ones_like(x))


def test_user_function_cannot_change_its_parameters_or_system_points():
    # per-element args were writable on the FD, secant, Halley and bracket paths, so
    # `a += 1` silently changed the equations; the points of a vectorized system were a
    # writable view of the solver's iterates
    def f(x, a):
        r = x**2 - a
        a += 1.0
        return r

    fp = lambda x, a: 2.0 * x            # noqa: E731
    for kw in (dict(), dict(method="secant"), dict(fprime=fp, fprime2=lambda x, a: 2.0 + 0 * x),
               dict(fprime=fp, bracket=(0.0, 10.0)), dict(fprime=fp)):
        a = np.array([4.0, 9.0])
        with pytest.raises(ValueError, match="read-only"):
            newton(f, np.array([1.0, 1.0]), args=(a,), **kw)
        np.testing.assert_array_equal(a, [4.0, 9.0])

    def F(X):
        value = X**2 - 4.0
        X *= 2.0
        return value

    with pytest.raises(ValueError, match="read-only"):
        newton_system(F, [[1.0], [3.0]], vectorized=True)
    c = np.array([4.0, 9.0])

    def G(x, c):
        c += 1.0          # c is this system's (0-d) slice of the per-system argument
        return x**2 - c

    with pytest.raises(ValueError, match="read-only"):
        newton_system(G, [[1.0], [3.0]], args=(c,))
    np.testing.assert_array_equal(c, [4.0, 9.0])


# ---------------------------------------------------------------- newton_system

def circle_exp(x):
    return np.array([x[0] ** 2 + x[1] ** 2 - 4.0, np.exp(x[0]) + x[1] - 1.0])


def circle_exp_jac(x):
    return np.array([[2 * x[0], 2 * x[1]], [np.exp(x[0]), 1.0]])


def circle_exp_columns(X):
    return np.stack([X[0] ** 2 + X[1] ** 2 - 4.0, np.exp(X[0]) + X[1] - 1.0])


def circle_exp_jac_columns(X):
    return np.array([[2 * X[0], 2 * X[1]], [np.exp(X[0]), np.ones_like(X[0])]])


SYSTEM_VARIANTS = {
    "python-fd": dict(F=circle_exp),
    "python-jac": dict(F=circle_exp, jac=circle_exp_jac),
    "vectorized-fd": dict(F=circle_exp_columns, vectorized=True),
    "vectorized-jac": dict(F=circle_exp_columns, jac=circle_exp_jac_columns, vectorized=True),
    "compiled-fd": dict(F="circle_exp_system"),
    "compiled-jac": dict(F="circle_exp_system", jac="circle_exp_jacobian"),
}


@pytest.mark.parametrize("variant", sorted(SYSTEM_VARIANTS))
def test_systems_match_root_hybr_and_fsolve(rng, variant):
    kw = {k: low_level(v) if isinstance(v, str) else v for k, v in SYSTEM_VARIANTS[variant].items()}
    X0 = np.concatenate([rng.uniform(0.5, 2.0, (20, 1)), rng.uniform(-2.5, -1.0, (20, 1))],
                        axis=1)
    X0[10:] *= -1
    r = newton_system(x0=X0, **kw)
    assert r.x.shape == r.fun.shape == (20, 2) and r.status.shape == (20,)
    assert r.converged.all()
    for i in range(20):
        hybr = so.root(circle_exp, X0[i], jac=circle_exp_jac, method="hybr", tol=1e-14)
        fsolve = so.fsolve(circle_exp, X0[i], fprime=circle_exp_jac, xtol=1e-14)
        np.testing.assert_allclose(r.x[i], hybr.x, rtol=1e-13, atol=1e-14)
        np.testing.assert_allclose(r.x[i], fsolve, rtol=1e-13, atol=1e-14)
    np.testing.assert_array_equal(r.fun, np.array([circle_exp(x) for x in r.x]))


def test_single_system_result_and_a_larger_system():
    r = newton_system(circle_exp, [1.0, -1.5])
    assert r.x.shape == (2,) and isinstance(r.status, int) and r.success
    assert r.message == "converged"
    # Broyden's tridiagonal system (n = 8), from a start where full steps increase ||F||
    def broyden(x):
        padded = np.concatenate([[0.0], x, [0.0]])
        return (3 - 2 * x) * x - padded[:-2] - 2 * padded[2:] + 1

    x0 = -np.ones(8) * 3.0
    ours = newton_system(broyden, x0)
    ref = so.root(broyden, x0, method="hybr", tol=1e-14)
    assert ours.success and ref.success
    np.testing.assert_allclose(ours.x, ref.x, rtol=1e-12)
    assert np.abs(ours.fun).max() < 1e-13


@pytest.mark.parametrize("method", ["newton", "dogleg"])
def test_system_statuses_per_system(method):
    # J is singular at the origin: it ends Newton's solve; the dogleg gets past it (the
    # origin is a stationary point of ||F|| with singular J: it follows J's null direction)
    X0 = np.array([[1.0, -1.5], [0.0, 0.0], [np.nan, 1.0], [-2.0, 1.0]])
    at_origin = Status.SINGULAR if method == "newton" else Status.SUCCESS
    for kw in (dict(F=circle_exp), dict(F=low_level("circle_exp_system"))):
        r = newton_system(x0=X0, method=method, **kw)
        np.testing.assert_array_equal(r.status, [Status.SUCCESS, at_origin,
                                                 Status.NON_FINITE, Status.SUCCESS])
        good = newton_system(x0=X0[[0, 3]], method=method, **kw)
        np.testing.assert_array_equal(r.x[[0, 3]], good.x)
        assert np.abs(r.fun[[0, 1, 3] if method == "dogleg" else [0, 3]]).max() < 1e-14
    r = newton_system(circle_exp, [1.0, -1.5], maxiter=1, method=method)
    assert r.status == Status.MAX_ITERATIONS and r.nit == 1


def test_system_without_root_is_not_converged_by_a_tiny_damped_step():
    # ||F|| has a minimum 1e-4 > 0 at x = 0 (SciPy's hybr reports failure): near it the Newton
    # step is huge and the line search damps it to ~1e-9, which used to count as converged
    F = lambda x: np.array([x[0]**2 + x[1]**2 + 1e-4, x[0] - x[1]])        # noqa: E731
    jac = lambda x: np.array([[2 * x[0], 2 * x[1]], [1.0, -1.0]])         # noqa: E731
    FX = lambda X: np.stack([X[0]**2 + X[1]**2 + 1e-4, X[0] - X[1]])      # noqa: E731
    runs = [newton_system(F, [1.0, 2.0]), newton_system(F, [1.0, 2.0], jac),
            newton_system(FX, [[1.0, 2.0]], vectorized=True),
            newton_system(lambda x: x**2 + 1e-4, [3.0], lambda x: np.array([[2 * x[0]]]))]
    numba = pytest.importorskip("numba")
    sig = numba.types.intc(numba.types.intc, numba.types.CPointer(numba.types.float64),
                           numba.types.intc, numba.types.CPointer(numba.types.float64),
                           numba.types.voidptr)

    @numba.cfunc(sig)
    def compiled(n, x, m, out, data):
        for i in range(n):
            out[i] = x[i] * x[i] + 1e-4
        return 0

    @numba.cfunc(sig)
    def compiled_jac(n, x, m, out, data):
        out[0] = 2.0 * x[0]
        return 0

    runs += [newton_system(compiled, [3.0]), newton_system(compiled, [3.0], compiled_jac)]
    for r in runs:
        # no descent possible along the Newton direction: status 2, not "converged"
        assert np.all(r.status == Status.SINGULAR) and not np.any(r.success)
        assert np.abs(r.fun).max() >= 1e-4 * (1 - 1e-12)


def test_system_threads_do_not_matter(rng):
    X0 = rng.uniform(-3, 3, (5001, 2))
    F, J = low_level("circle_exp_system"), low_level("circle_exp_jacobian")
    for jac in (None, J):
        one = newton_system(F, X0, jac, n_threads=1)
        two = newton_system(F, X0, jac, n_threads=2)
        for key in ("x", "fun", "status", "nit", "nfev"):
            np.testing.assert_array_equal(one[key], two[key])


def test_vectorized_system_per_system_args_follow_active_systems(rng):
    # x^2 = c_i, y = 2 x: columns of X are systems; c has one entry per system
    c = rng.uniform(1.0, 9.0, 50)

    def F(X, c):
        assert X.shape[1] == c.shape[-1]
        return np.stack([X[0] ** 2 - c, X[1] - 2 * X[0]])

    r = newton_system(F, np.ones((50, 2)), args=(c,), vectorized=True)
    assert r.converged.all()
    np.testing.assert_allclose(r.x[:, 0], np.sqrt(c), rtol=4 * EPS)
    np.testing.assert_allclose(r.x[:, 1], 2 * np.sqrt(c), rtol=4 * EPS)


def test_per_system_keyword_keeps_a_shared_vector_of_length_n_whole():
    # with n == N the default rule slices a shared coefficient vector per system too;
    # per_system says which arguments are per-system
    coef = np.array([1.0, 2.0])                # shared by both systems: F_i = coef_i x_i - c
    c = np.array([2.0, 4.0])                   # one value per system
    F = lambda X, coef, c: coef[:, None] * X - c                  # noqa: E731
    f = lambda x, coef, c: coef * x - c                          # noqa: E731
    exact = c[:, None] / coef[None, :]
    for kw in (dict(F=F, vectorized=True), dict(F=f)):
        for per_system in ((False, True), [False, True]):
            r = newton_system(x0=np.ones((2, 2)), args=(coef, c), per_system=per_system, **kw)
            np.testing.assert_array_equal(r.status, 0)
            np.testing.assert_allclose(r.x, exact, rtol=4 * EPS)
    with pytest.raises(ValueError, match="per_system"):
        newton_system(F, np.ones((2, 2)), args=(coef, c), vectorized=True, per_system=(True,))
    with pytest.raises(ValueError, match=r"args\[1\] is per-system"):
        newton_system(F, np.ones((2, 2)), args=(coef, np.ones(3)), vectorized=True,
                      per_system=(False, True))


def test_compiled_python_and_scalar_paths_take_identical_steps(rng):
    # x*x*x and 3.0*x*x round identically in C and NumPy, so every path must agree bitwise:
    # the compiled lanes, the vectorized round and the general per-element logic (scalar x0)
    n = 2000
    a = rng.uniform(-100.0, 100.0, n)
    x0 = rng.uniform(-5.0, 5.0, n)
    x0[:4] = [0.0, np.nan, 1e300, -1e-300]
    a[4] = np.nan
    kw = dict(full_output=True, maxiter=8)
    compiled = newton(low_level("cube_root_eq"), x0, low_level("cube_root_eq_prime"), args=(a,),
                      **kw)
    with np.errstate(over="ignore", invalid="ignore"):
        python = newton(lambda x, a: x * x * x - a, x0, lambda x, a: 3.0 * x * x, args=(a,),
                        **kw)
    assert set(np.unique(compiled.status)) == {0, 1, 2, 3}
    for key in ("x", "fun", "status", "nit"):
        np.testing.assert_array_equal(compiled[key], python[key])
    for i in list(range(6)) + list(range(6, n, 97)):
        one = newton(lambda x: x * x * x - a[i], x0[i], lambda x: 3.0 * x * x, **kw)
        assert (one.status, one.nit) == (compiled.status[i], compiled.nit[i])
        np.testing.assert_array_equal([one.x, one.fun], [compiled.x[i], compiled.fun[i]])


def _mixed_batch(rng, n):
    """x^3 + c x - a = 0 with every status: NaN parameters, zero derivatives, overflow."""
    a = rng.uniform(-1000.0, 1000.0, n)
    c = rng.choice([0.0, 1.0, -3.0, 0.5], n)
    x0 = rng.uniform(-5.0, 5.0, n)
    pick = rng.random(n)
    a[pick < 0.01] = np.nan                             # status 3
    x0[(pick >= 0.01) & (pick < 0.03)] = 0.0            # with c == 0: f' = 0, status 2
    a[(pick >= 0.03) & (pick < 0.035)] = 1e300          # overflow to inf
    x0[(pick >= 0.035) & (pick < 0.04)] = 1e6           # slow: maxiter
    return x0, a, c


def _mixed_f(x, a, c, s):
    return x**3 + c * x - s * a


def _mixed_fprime(x, a, c, s):
    return 3.0 * x**2 + c


def test_chunked_batch_is_bitwise_identical_to_one_piece(rng, monkeypatch):
    # A batch with vectorized f and f' is solved in chunks of roots._NEWTON_CHUNK elements;
    # per-element results must not depend on the chunking (one piece is the unchunked solver).
    from fastcalc import roots
    assert roots._NEWTON_CHUNK < 300_000
    x0, a, c = _mixed_batch(rng, 300_000)
    statuses = set()
    with np.errstate(over="ignore", invalid="ignore"):
        for maxiter, ftol in [(0, 0.0), (1, 1e-6), (3, 0.0), (8, 1.0), (50, 0.0), (50, 1e-6)]:
            kw = dict(args=(a, c, 1.0), maxiter=maxiter, ftol=ftol, full_output=True)
            chunked = newton(_mixed_f, x0, _mixed_fprime, **kw)
            with monkeypatch.context() as m:
                m.setattr(roots, "_NEWTON_CHUNK", 10**9)
                whole = newton(_mixed_f, x0, _mixed_fprime, **kw)
            for key in ("x", "fun", "status", "nit", "nfev"):
                assert chunked[key].dtype == whole[key].dtype
                assert chunked[key].tobytes() == whole[key].tobytes(), (maxiter, ftol, key)
            statuses |= set(np.unique(chunked.status).tolist())
    assert statuses == {0, 1, 2, 3}


def test_chunks_on_threads_are_bitwise_identical(rng, monkeypatch):
    # the chunks of a vectorized batch run on n_threads threads; nothing may depend on that
    from fastcalc import roots
    monkeypatch.setattr(roots, "_NEWTON_CHUNK", 777)
    x0, a, c = _mixed_batch(rng, 6000)
    with np.errstate(over="ignore", invalid="ignore"):
        results = [newton(_mixed_f, x0, _mixed_fprime, args=(a, c, 1.0), maxiter=30,
                          full_output=True, n_threads=t) for t in (1, 2, 3)]
    assert set(np.unique(results[0].status).tolist()) == {0, 1, 2, 3}
    for r in results[1:]:
        for key in ("x", "fun", "status", "nit", "nfev"):
            assert r[key].tobytes() == results[0][key].tobytes(), key


def test_chunk_threads_keep_the_callers_errstate_and_propagate_exceptions(rng, monkeypatch):
    from fastcalc import roots
    monkeypatch.setattr(roots, "_NEWTON_CHUNK", 500)
    x0 = np.full(4000, 2.0)
    a = np.full(4000, 8.0)
    a[3900] = 1e300                     # only the last chunk overflows

    def f(x, a):
        return x**3 - a * 1e10

    for threads in (1, 2):
        # np.errstate is context-local: the worker threads must see the caller's
        with np.errstate(over="raise"), pytest.raises(FloatingPointError):
            newton(f, x0, lambda x, a: 3 * x**2, args=(a,), n_threads=threads)

    def g(x, a):
        if np.any(a > 100.0):
            raise ArithmeticError("bad chunk")
        return x**3 - a

    for threads in (1, 2):
        with pytest.raises(ArithmeticError, match="bad chunk"):
            newton(g, x0, lambda x, a: 3 * x**2, args=(a,), n_threads=threads)
    with pytest.raises(ValueError, match="n_threads"):
        newton(g, x0, lambda x, a: 3 * x**2, args=(np.full(4000, 8.0),), n_threads=0)


def test_chunks_evaluate_only_active_elements_with_their_args(rng, monkeypatch):
    # uneven chunks: f sees at most one chunk, only running elements, each with its own
    # parameters; a finished element is never evaluated again
    from fastcalc import roots
    monkeypatch.setattr(roots, "_NEWTON_CHUNK", 777)
    n = 5000
    x0, a, c = _mixed_batch(rng, n)
    saved = x0.copy(), a.copy()
    for array in (x0, a):       # read-only inputs: chunks are views of them
        array.flags.writeable = False
    ident = np.arange(n, dtype=float)
    evaluated = np.zeros(n, dtype=np.intp)

    def f(x, a_, c_, s, i):
        k = i.astype(np.intp)
        assert x.size <= 777 and np.array_equal(k, np.sort(k))
        assert np.array_equal(a_, a[k], equal_nan=True) and np.array_equal(c_, c[k])
        evaluated[k] += 1
        return _mixed_f(x, a_, c_, s)

    with np.errstate(over="ignore", invalid="ignore"):
        r = newton(f, x0, lambda x, a_, c_, s, i: _mixed_fprime(x, a_, c_, s),
                   args=(a, c, 1.0, ident), maxiter=20, full_output=True)
    assert set(np.unique(r.status).tolist()) == {0, 1, 2, 3}
    np.testing.assert_array_equal(evaluated, r.nit + 1)
    np.testing.assert_array_equal(r.nfev, 2 * (r.nit + 1))
    np.testing.assert_array_equal(x0, saved[0])
    np.testing.assert_array_equal(a, saved[1])


@pytest.mark.parametrize("kw", [{}, {"tol": 0.0, "rtol": 1e-13}])
def test_bracketed_secant_never_reports_a_tiny_chord_step_as_a_root(kw):
    # expm1(k (x - r)) on (0, 1): after a bisection the secant slope was a chord of ~1e17, its
    # step ~1e-17 was taken for convergence (111 of 500 status 0 up to 0.39 from the root)
    rng = np.random.default_rng(1)
    k = np.exp(rng.uniform(0.0, np.log(630.0), 500))
    root = rng.uniform(0.05, 0.95, 500)
    x0 = rng.uniform(0.0, 1.0, 500)
    r = newton(lambda x, k, root: np.expm1(k * (x - root)), x0, args=(k, root),
               bracket=(0.0, 1.0), method="secant", full_output=True, **kw)
    np.testing.assert_array_equal(r.status, 0)
    tolerance = kw.get("tol", 1.48e-8) + kw.get("rtol", 4 * np.finfo(float).eps) * root
    assert (np.abs(r.x - root) <= tolerance + 1e-15).all()
    one = newton(lambda x: np.expm1(100 * (x - 0.5)), 0.9, bracket=(0.0, 1.0),
                 method="secant", full_output=True)
    assert one.status == 0 and abs(one.x - 0.5) <= 1.48e-8


# ------------------------------------------- evidence for status 0 without an exact derivative
# A finite-difference (or secant) slope can make a Newton step tiny far from the root: near a
# multiple root a stencil much wider than the distance measures f's slope far away. Status 0
# must then mean what the docs say: a root within tol + rtol |x| of x.

def _within(r, root, tol=1.48e-8, rtol=4 * EPS):
    """Status 0 only where a root is within the tolerance; the statuses."""
    x, status = np.atleast_1d(r.x), np.atleast_1d(r.status)
    root = np.broadcast_to(root, x.shape)
    ok = status == 0
    assert (np.abs(x[ok] - root[ok]) <= tol + rtol * np.abs(x[ok])).all(), (
        x[ok], np.abs(x[ok] - root[ok]).max())
    return status


@pytest.mark.parametrize("f, root, x0, bracket", [
    (lambda x: 6 * (x - 2) ** 5, 2.0, 1.3, (1.0, 3.0)),       # the cases (there a
    (lambda x: 6 * (x - 2) ** 5, 2.0, 2.9, (1.0, 3.0)),       # former status 0 was 2e-6 and
    (lambda x: x**9, 0.0, None, (-1.0, 2.0)),                 # 1.4e-6 off)
    (lambda x: x**9, 0.0, 0.7, (-1.0, 2.0)),
    (lambda x: (x - 1) ** 3, 1.0, 2.0, None),                 # formerly 8e-7 off
    (lambda x: 6 * (x - 2) ** 5, 2.0, 1.3, None),
])
@pytest.mark.parametrize("method", ["fd", "secant"])
def test_multiple_roots_without_fprime_converge_or_fail_honestly(f, root, x0, bracket, method):
    kw = dict(bracket=bracket, full_output=True, method="secant" if method == "secant" else None)
    r = newton(f, x0, **kw)
    _within(r, root)
    # with room for Newton's linear convergence there, every case converges honestly
    long = newton(f, x0, maxiter=400, **kw)
    assert _within(long, root) == 0
    # the batch (vectorized f) takes the same steps as one equation
    many = newton(f, np.full(3, np.mean(bracket) if x0 is None else x0), maxiter=400, **kw)
    np.testing.assert_array_equal(many.x, np.full(3, long.x))
    np.testing.assert_array_equal(many.nit, np.full(3, long.nit))


def test_analytic_derivative_in_a_bracket_needs_evidence_too():
    # at a multiple root the error is (m - 1) Newton steps: a step below tol is no evidence
    # (6 (x-2)^5 from 1.3: formerly status 0 with 5.7e-8 > tol = 1.48e-8)
    f, fp = (lambda x: 6 * (x - 2) ** 5), (lambda x: 30 * (x - 2) ** 4)
    for maxiter in (50, 400):
        r = newton(f, 1.3, fp, bracket=(1.0, 3.0), maxiter=maxiter, full_output=True)
        assert _within(r, 2.0) == (0 if maxiter == 400 else r.status)
    assert r.status == 0


@pytest.mark.parametrize("f, kw", [
    (lambda x: x - 1e-30, {}),
    (lambda x: x - 1e-30, dict(tol=0.0, rtol=1e-12)),
    (lambda x: (x - 1e-30) ** 3, {}),
    (lambda x: (x - 1e-30) ** 3, dict(tol=0.0, rtol=1e-6, maxiter=200)),
    (lambda x: 1e40 * (x - 1e-30) ** 3, dict(tol=0.0, rtol=1e-6, maxiter=200)),
    (lambda x: (x - 1e-30) ** 3, dict(tol=0.0, rtol=1e-6, bracket=(0.0, 1e-28), maxiter=200)),
])
def test_roots_near_1e_minus_30_converge_at_their_scale(f, kw):
    tol, rtol = kw.get("tol", 1.48e-8), kw.get("rtol", 4 * EPS)
    r = newton(f, 1e-29, full_output=True, **kw)
    assert _within(r, 1e-30, tol, rtol) == 0
    if tol == 0.0:
        np.testing.assert_allclose(r.x, 1e-30, rtol=rtol)


def test_start_point_is_not_returned_as_a_root_far_below_one():
    # the step from a stencil of 6e-6 around 1e-29 is 2e-77: formerly "converged" at x0
    # (9e-30 from the root, 1e10 times rtol |x|); too few steps now give status 1
    f = lambda x: (x - 1e-30) ** 3        # noqa: E731
    for x0 in (1e-29, np.full(2, 1e-29)):
        r = newton(f, x0, tol=0.0, rtol=1e-10, maxiter=5, full_output=True)
        assert (np.asarray(r.status) == Status.MAX_ITERATIONS).all()
        assert (np.asarray(r.nit) == 5).all()
    # a probe that finds no sign change after the last step allowed ends there (maxiter 1)
    r = newton(f, 1e-29, tol=0.0, rtol=1e-10, maxiter=1, full_output=True)
    assert (r.status, r.nit, r.x) == (Status.MAX_ITERATIONS, 1, 1e-29)
    assert r.fun == f(1e-29)
    compiled = newton(low_level("cube_root_eq"), np.full(2, 1e-9), args=(np.zeros(2),),
                      tol=0.0, rtol=1e-10, maxiter=5, full_output=True)
    assert (compiled.status == Status.MAX_ITERATIONS).all()


def test_even_multiplicity_is_converged_only_with_a_zero_or_ftol():
    # no sign change exists at (x - 1)^2: a tiny step proves nothing (x^2 + 1e-18 would give
    # the same steps and has no root), so without an exact zero or ftol it is status 1
    f = lambda x: (x - 1.0) ** 2 + 1e-18      # noqa: E731
    r = newton(f, 3.0, full_output=True)
    assert r.status != 0
    r = newton(lambda x: (x - 1.0) ** 2, 3.0, ftol=1e-16, full_output=True)
    assert r.status == 0 and abs(r.x - 1.0) <= 1e-8


def test_random_multiple_roots_every_path(rng):
    # (x - r)^m, m = 1..5, from random starts, with and without a bracket: Python batch,
    # one equation and compiled (x^3 - a with a = 0: a triple root at 0) paths; status 0
    # only within the tolerance, and most converge
    n = 300
    r0 = rng.uniform(-3.0, 3.0, n)
    m = rng.integers(1, 6, n).astype(float)
    x0 = r0 + rng.choice([-1.0, 1.0], n) * 10.0 ** rng.uniform(-6, 0.5, n)
    f = lambda x, r0, m: (x - r0) ** m        # noqa: E731
    odd = m % 2 == 1
    for bracket in (None, (r0 - 4.0, r0 + 5.0)):
        r = newton(f, x0, args=(r0, m), bracket=bracket, maxiter=300, full_output=True)
        status = _within(r, r0)
        assert r.nit.max() <= 300
        if bracket is None:
            assert (status[odd] == 0).mean() > 0.95
        else:
            assert (status[odd] == 0).all()
        for i in range(0, n, 37):
            one = newton(lambda x: (x - r0[i]) ** m[i], x0[i], maxiter=300, full_output=True,
                         bracket=None if bracket is None else (bracket[0][i], bracket[1][i]))
            assert (one.x, one.status, one.nit) == (r.x[i], r.status[i], r.nit[i])
    # compiled: x^3 - a with a = 0 and a tiny
    a = np.where(rng.random(n) < 0.5, 0.0, rng.uniform(-1.0, 1.0, n) ** 3 * 1e-60)
    for bracket in (None, (np.full(n, -2.0), np.full(n, 3.0))):
        x0c = rng.uniform(-2.0, 3.0, n)
        compiled = newton(low_level("cube_root_eq"), x0c, args=(a,), bracket=bracket,
                          maxiter=300, full_output=True)
        assert (_within(compiled, np.cbrt(a)) == 0).all()
        python = newton(lambda x, a: x * x * x - a, x0c, args=(a,), bracket=bracket,
                        maxiter=300, full_output=True)
        for key in ("x", "fun", "status", "nit"):
            np.testing.assert_array_equal(compiled[key], python[key])


def test_simple_roots_without_fprime_keep_full_accuracy(rng):
    # the check costs one evaluation at the end; the answer is the candidate, not the probe
    a = rng.uniform(1.0, 1000.0, 200)
    x0 = rng.uniform(1.0, 10.0, 200)
    for kw in ({}, dict(bracket=(np.zeros(200), np.full(200, 11.0)))):
        r = newton(cube, x0, args=(a,), full_output=True, **kw)
        assert (r.status == 0).all()
        np.testing.assert_allclose(r.x, np.cbrt(a), rtol=4 * EPS)
    for i in range(0, 200, 41):
        ref = so.brentq(lambda x: math.cos(x) - a[i] * 1e-3 * x, 0.0, 2.0, xtol=1e-15)
        got = newton(lambda x: math.cos(x) - a[i] * 1e-3 * x, 1.0)
        assert abs(got - ref) <= 1e-14


def test_nfev_counts_every_evaluation_with_probes():
    calls = []

    def f(x):
        calls.append(np.size(x))
        return (x - 1.0) ** 3

    for x0, kw in [(2.0, {}), (np.array([2.0, 0.5, 1.7]), {}), (2.0, dict(bracket=(0.0, 3.0))),
                   (np.array([2.0, 0.5]), dict(bracket=(0.0, 3.0))), (2.0, dict(method="secant"))]:
        calls.clear()
        r = newton(f, x0, maxiter=200, full_output=True, **kw)
        assert (np.asarray(r.status) == 0).all()
        assert np.sum(r.nfev) == sum(calls), kw


# ------------------------------------------------------------ messages of the failures

def test_no_sign_change_says_so_with_the_values():
    with pytest.raises(ConvergenceError, match=r"no sign change in the bracket \[0.0, 1.0\]: "
                       r"f\(a\) = 1.0 and f\(b\) = 0.5403023058681398"):
        newton(np.cos, None, bracket=(0.0, 1.0))
    r = newton(np.cos, None, bracket=(0.0, 1.0), full_output=True)
    assert r.status == Status.OUT_OF_BOUNDS and r.message.startswith("no sign change")
    r = newton(np.cos, np.array([0.5, 0.5, 3.0, 1.0]), full_output=True,
               bracket=(np.array([0.0, 1.0, 0.0, 0.0]), np.array([1.0, 2.0, 2.0, 2.0])))
    np.testing.assert_array_equal(r.status, [4, 4, 4, 0])
    assert r.message[0].startswith("no sign change in the bracket [0.0, 1.0]: f(a) = 1.0")
    assert r.message[1] == "x0 = 0.5 is outside the bracket [1.0, 2.0]"
    assert r.message[2] == "x0 = 3.0 is outside the bracket [0.0, 2.0]"
    assert r.message[3] == "converged"
    with pytest.warns(RuntimeWarning, match="1 'no sign change in the bracket', "
                      "2 'x0 outside the bracket'"):
        newton(np.cos, np.array([0.5, 0.5, 3.0]),
               bracket=(np.array([0.0, 1.0, 0.0]), np.array([1.0, 2.0, 2.0])))
    # compiled: x^3 - a on [0, 1] with a = -1 has no sign change; the values are f's
    r = newton(low_level("cube_root_eq"), np.array([0.5, 0.5]), args=(np.array([-1.0, 0.125]),),
               bracket=(0.0, 1.0), full_output=True)
    np.testing.assert_array_equal(r.status, [4, 0])
    assert r.message[0] == ("no sign change in the bracket [0.0, 1.0]: f(a) = 1.0 and "
                            "f(b) = 2.0 have the same sign")
    with pytest.raises(ConvergenceError, match=r"f\(a\) = 1.0 and f\(b\) = 2.0"):
        newton(low_level("cube_root_eq"), 0.5, args=(-1.0,), bracket=(0.0, 1.0))


@pytest.mark.parametrize("kind", ["python", "vectorized", "compiled"])
def test_singular_jacobian_is_named_with_its_point(kind):
    # F = (x0 x1, x0 - 1): J = [[x1, x0], [1, 0]] is singular where x0 = 0
    if kind == "compiled":
        F, x0 = low_level("circle_exp_system"), np.array([[0.0, 0.0], [1.0, -1.5]])
        kw = {}       # J = [[2x, 2y], [e^x, 1]]: singular at the origin
    elif kind == "vectorized":
        F, x0 = (lambda X: np.stack([X[0] * X[1], X[0] - 1.0])), np.array([[0.0, 2.0],
                                                                           [2.0, 3.0]])
        kw = dict(vectorized=True, jac=lambda X: np.array([[X[1], X[0]],
                                                           [np.ones_like(X[0]),
                                                            np.zeros_like(X[0])]]))
    else:
        F, x0 = (lambda x: np.array([x[0] * x[1], x[0] - 1.0])), np.array([[0.0, 2.0],
                                                                           [2.0, 3.0]])
        kw = dict(jac=lambda x: np.array([[x[1], x[0]], [1.0, 0.0]]))
    kw["method"] = "newton"        # (the default dogleg gets past a singular Jacobian)
    r = newton_system(F, x0, **kw)
    np.testing.assert_array_equal(r.status, [Status.SINGULAR, Status.SUCCESS])
    # in a batch the point is the system's row of x (not formatted into thousands of messages)
    assert r.message[0] == "singular Jacobian at this system's x"
    np.testing.assert_array_equal(r.x[0], x0[0])
    assert r.message[1] == "converged"
    one = newton_system(F, x0[0], **kw) if kind != "vectorized" else \
        newton_system(F, x0[:1], **kw)
    assert np.all(one.status == Status.SINGULAR)
    if kind != "vectorized":       # one system: the message names the point
        assert one.message == f"singular Jacobian at x = [{x0[0, 0]:.0f}., {x0[0, 1]:.0f}.]"
    else:
        assert one.message[0] == "singular Jacobian at this system's x"


def test_no_descent_is_told_apart_from_a_singular_jacobian():
    F = lambda x: np.array([x[0] ** 2 + 1.0, x[1] ** 2 + 1.0])       # noqa: E731
    r = newton_system(F, [0.5, 0.7], maxiter=200, method="newton")
    assert r.status == Status.SINGULAR
    assert r.message.startswith("no step along the Newton direction decreases ||F|| at x = [")
    assert "singular Jacobian" not in r.message
    # the dogleg ends near the minimum ||F|| = sqrt(2) at the origin, and says so
    r = newton_system(F, [0.5, 0.7], maxiter=200)
    assert r.status == Status.SINGULAR and np.abs(r.x).max() < 1e-3
    assert r.message.startswith("||F|| stopped decreasing at x = [")
    assert r.message.endswith("(a stationary point of ||F||, e.g. a local minimum, that is "
                              "no root)")
