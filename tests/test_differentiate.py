"""Finite-difference calculus against exact derivatives and SciPy.

Test set: Rosenbrock (scipy.optimize.rosen_der / rosen_hess), a sum of exp(x_i) sin(x_{i+1})
(the compiled ``exp_sin``), a cyclic vector field (the compiled ``vector_field``), each with
exact derivatives, at random points; functions of 100 variables included.
"""
import numpy as np
import pytest
import scipy.differentiate
from numpy.polynomial import Polynomial
from scipy.optimize import rosen, rosen_der, rosen_hess
from scipy.optimize._numdiff import approx_derivative

from fastcalc import (DifferentiationResult, Status, check_grad, derivative, gradient, hessian,
                      jacobian, taylor)
from fastcalc._differentiate import stencil
from fastcalc._testfunctions import low_level

# ------------------------------------------------------------------------------------------
# test functions with exact derivatives (Python versions accept (n,) and (n, k) arrays)


def exp_sin(x):
    return np.sum(np.exp(x[0:-1:2]) * np.sin(x[1::2]), axis=0)


def exp_sin_grad(x):
    g = np.zeros_like(x)
    g[0:-1:2] = np.exp(x[0:-1:2]) * np.sin(x[1::2])
    g[1::2] = np.exp(x[0:-1:2]) * np.cos(x[1::2])
    return g


def exp_sin_hess(x):
    n = x.size
    h = np.zeros((n, n))
    for i in range(0, n - 1, 2):
        e, s, c = np.exp(x[i]), np.sin(x[i + 1]), np.cos(x[i + 1])
        h[i, i], h[i + 1, i + 1] = e * s, -e * s
        h[i, i + 1] = h[i + 1, i] = e * c
    return h


def field(x):
    n = x.shape[0]
    i = np.arange(n)
    return x**2 * np.sin(x[(i + 1) % n]) + np.exp(x[(i - 1) % n]) * np.cos(x)


def field_jac(x):
    n = x.size
    jac = np.zeros((n, n))
    for i in range(n):
        up, down = (i + 1) % n, (i - 1) % n
        jac[i, i] += 2 * x[i] * np.sin(x[up]) - np.exp(x[down]) * np.sin(x[i])
        jac[i, up] += x[i] ** 2 * np.cos(x[up])
        jac[i, down] += np.exp(x[down]) * np.cos(x[i])
    return jac


def relative_error(value, exact):
    return np.max(np.abs(value - exact)) / np.max(np.abs(exact))


@pytest.fixture
def cases(rng):
    """(routine, python f, compiled name, x, exact) for gradient/jacobian."""
    out = []
    for _ in range(2):
        x = rng.uniform(-2, 2, 100)
        out.append((gradient, rosen, "rosenbrock", x, rosen_der(x)))
        x = rng.uniform(-2, 2, 100)
        out.append((gradient, exp_sin, "exp_sin", x, exp_sin_grad(x)))
        x = rng.uniform(-2, 2, 20)
        out.append((jacobian, field, "vector_field", x, field_jac(x)))
    return out


# ------------------------------------------------------------------------------------------
# stencils

@pytest.mark.parametrize("kind,accuracies", [("central", (2, 4, 6, 8)),
                                             ("forward", (1, 2, 3, 4)),
                                             ("backward", (1, 2, 3, 4))])
@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_stencils_are_exact_on_polynomials(kind, accuracies, order):
    for accuracy in accuracies:
        offsets, weights, _ = stencil(kind, accuracy, order)
        s, w = np.array(offsets), np.array(weights)
        for degree in range(order + accuracy):
            exact = float(np.prod(np.arange(1, order + 1))) if degree == order else 0.0
            assert abs(np.sum(w * s**degree) - exact) < 1e-9, (kind, accuracy, order, degree)
        # and not exact one degree higher (the accuracy is what is claimed, not more)
        assert abs(np.sum(w * s ** (order + accuracy))) > 1e-9


def test_scipy_central_weights():
    assert stencil("central", 2, 1)[:2] == ((-1.0, 1.0), (-0.5, 0.5))
    assert stencil("central", 2, 2)[:2] == ((-1.0, 0.0, 1.0), (1.0, -2.0, 1.0))
    assert stencil("forward", 2, 1)[:2] == ((0.0, 1.0, 2.0), (-1.5, 2.0, -0.5))


# ------------------------------------------------------------------------------------------
# gradient and Jacobian: every method, every kind of function, exact references

TOLERANCE = {("central", 2): 1e-8, ("central", 4): 1e-10, ("central", 6): 1e-10,
             ("central", 8): 1e-10, ("forward", 1): 1e-6, ("forward", 2): 1e-8,
             ("forward", 3): 1e-9, ("forward", 4): 1e-9, ("backward", 1): 1e-6,
             ("backward", 2): 1e-8, ("backward", 3): 1e-9, ("backward", 4): 1e-9,
             ("complex", 2): 1e-14, ("richardson", 2): 1e-12}


@pytest.mark.parametrize("method,accuracy", sorted(TOLERANCE))
def test_all_methods_and_kinds_match_exact_derivatives(cases, method, accuracy):
    tolerance = TOLERANCE[method, accuracy]
    for routine, f, compiled_name, x, exact in cases[:3]:
        kinds = [dict(f=f), dict(f=f, vectorized=True)]
        if method != "complex":
            kinds.append(dict(f=low_level(compiled_name)))
        for kind in kinds:
            f_kind = kind.pop("f")
            value = routine(f_kind, x, method=method, accuracy=accuracy, **kind)
            assert value.shape == exact.shape
            assert relative_error(value, exact) < tolerance, (routine.__name__, method, kind)


def test_accuracy_targets_on_the_test_set(cases):
    """central <= 1e-9 (already at accuracy 2), Richardson <= 1e-12, complex <= 1e-14."""
    worst = {}
    for method, accuracy in [("central", 2), ("central", 4), ("richardson", 2), ("complex", 2)]:
        worst[method, accuracy] = max(
            relative_error(routine(f, x, method=method, accuracy=accuracy, vectorized=True),
                           exact) for routine, f, _, x, exact in cases)
    assert worst["central", 2] <= 1e-9
    assert worst["central", 4] <= 1e-10
    assert worst["richardson", 2] <= 1e-12
    assert worst["complex", 2] <= 1e-14


def test_richardson_error_estimate_is_honest(cases):
    """The estimate bounds every component's actual error, and the largest estimate is within
    100x of the largest actual error of each problem."""
    for routine, f, _, x, exact in cases:
        result = routine(f, x, method="richardson", vectorized=True, full_output=True)
        actual = np.abs(result.df - exact)
        assert (actual <= result.error).all()
        assert result.error.max() <= 100 * actual.max()


def test_compiled_and_python_agree_to_rounding(cases):
    for routine, f, compiled_name, x, _ in cases[:3]:
        a = routine(f, x, vectorized=True)
        b = routine(low_level(compiled_name), x)
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9 * np.abs(a).max())


def test_matches_scipy_approx_derivative(rng):
    x = rng.uniform(-2, 2, 30)
    for method, scipy_method in [("central", "3-point"), ("forward", "2-point")]:
        ours = gradient(rosen, x, method=method, accuracy=2 if method == "central" else 1)
        theirs = approx_derivative(rosen, x, method=scipy_method)
        assert relative_error(ours, theirs) < 1e-6
    ours = jacobian(field, x, method="complex")
    np.testing.assert_allclose(ours, approx_derivative(field, x, method="cs"), rtol=1e-12,
                               atol=1e-13)


def test_jacobian_matches_scipy_differentiate(rng):
    x = rng.uniform(-1, 1, 6)
    theirs = scipy.differentiate.jacobian(field, x).df
    ours = jacobian(field, x, method="richardson", vectorized=True)
    np.testing.assert_allclose(ours, theirs, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(ours, field_jac(x), rtol=1e-12, atol=1e-12)


def test_vectorized_function_is_called_once_with_columns_as_points(rng):
    x = rng.uniform(-1, 1, 7)
    shapes = []

    def f(X):
        shapes.append(X.shape)
        return rosen(X)

    gradient(f, x, vectorized=True)
    assert shapes == [(7, 14)]
    shapes.clear()
    gradient(f, x, vectorized=True, method="richardson")
    assert len(shapes) == 1
    shapes.clear()
    hessian(f, x, vectorized=True)
    assert shapes == [(7, 1 + 7 + 49)]


def test_python_function_call_count(rng):
    x = rng.uniform(-1, 1, 10)
    calls = []
    result = gradient(lambda v: calls.append(1) or rosen(v), x, full_output=True)
    # the error estimate evaluates the stencil at 4 more steps (h/2, h/4, h/8, h/sqrt(2))
    assert len(calls) == 20 * 5 == result.nfev
    calls.clear()
    gradient(lambda v: calls.append(1) or rosen(v), x)
    assert len(calls) == 20
    calls.clear()
    result = gradient(lambda v: calls.append(1) or rosen(v), x, method="forward", accuracy=1,
                      full_output=True)
    assert len(calls) == 11 * 5 == result.nfev     # (x itself at each of the 5 steps)


def test_args_are_passed(rng):
    x = rng.uniform(-1, 1, 4)
    scale = 3.0

    def f(v, a, b):
        return a * rosen(v) + b

    g = gradient(f, x, args=(scale, 1.0))
    np.testing.assert_allclose(g, scale * rosen_der(x), rtol=1e-8)
    g = gradient(f, x, args=(scale, 1.0), vectorized=True, method="complex")
    np.testing.assert_allclose(g, scale * rosen_der(x), rtol=1e-14)


def test_compiled_vector_field_n_out(rng):
    x = rng.uniform(-1, 1, 5)
    np.testing.assert_allclose(jacobian(low_level("vector_field"), x, n_out=5), field_jac(x),
                               rtol=1e-8, atol=1e-9)
    # the test field reports failure when m != n: every column is NaN, status 3
    result = jacobian(low_level("vector_field"), x, n_out=3, full_output=True)
    assert np.isnan(result.df).all() and (result.status == Status.NON_FINITE).all()


def test_compiled_results_do_not_depend_on_thread_count(rng):
    x = rng.uniform(-2, 2, 2000)   # 4000 points x 2000 coordinates: the parallel path
    f = low_level("rosenbrock")
    one = gradient(f, x, n_threads=1)
    two = gradient(f, x, n_threads=2)
    np.testing.assert_array_equal(one, two)
    assert relative_error(one, rosen_der(x)) < 1e-8


def test_numba_cfunc():
    numba = pytest.importorskip("numba", reason="numba is optional")
    from numba import types

    signature = types.double(types.intc, types.CPointer(types.double), types.voidptr)

    @numba.cfunc(signature)
    def rosen_c(n, x_ptr, user_data):
        x = numba.carray(x_ptr, (n,))
        total = 0.0
        for i in range(n - 1):
            total += 100.0 * (x[i + 1] - x[i] ** 2) ** 2 + (1 - x[i]) ** 2
        return total

    x = np.linspace(-1, 1, 12)
    assert relative_error(gradient(rosen_c, x, accuracy=4), rosen_der(x)) < 1e-10
    np.testing.assert_allclose(hessian(rosen_c, x, accuracy=4), rosen_hess(x), rtol=1e-7,
                               atol=1e-6)


# ------------------------------------------------------------------------------------------
# Hessian

def test_hessian_rosenbrock_100_variables(rng):
    x = rng.uniform(-2, 2, 100)
    exact = rosen_hess(x)
    for f, kwargs in [(rosen, dict(vectorized=True)), (low_level("rosenbrock"), {})]:
        h = hessian(f, x, **kwargs)
        assert relative_error(h, exact) <= 1e-7
        np.testing.assert_array_equal(h, h.T)


@pytest.mark.parametrize("method,accuracy,tolerance", [("central", 2, 1e-7), ("central", 4, 1e-9),
                                                       ("central", 6, 1e-9),
                                                       ("central", 8, 1e-10),
                                                       ("richardson", 2, 1e-11)])
def test_hessian_methods_exact(rng, method, accuracy, tolerance):
    x = rng.uniform(-1.5, 1.5, 8)
    for f, exact in [(exp_sin, exp_sin_hess(x)), (rosen, rosen_hess(x))]:
        for kwargs in [dict(vectorized=True), {}]:
            result = hessian(f, x, method=method, accuracy=accuracy, full_output=True, **kwargs)
            assert relative_error(result.df, exact) <= tolerance
            np.testing.assert_array_equal(result.df, result.df.T)
            assert result.success and result.status.shape == (8, 8)
            # richardson: 5 steps + the cross-check of the converged table at one more step;
            # central: its ladder of steps, 3 smaller ones and the ladder from h / sqrt(2)
            # for the truncation error estimate
            assert result.nfev == (1 + 8 + 64) * (6 if method == "richardson"
                                                  else 2 * (accuracy // 2) + 3)
    np.testing.assert_allclose(hessian(low_level("exp_sin"), x, method=method, accuracy=accuracy),
                               exp_sin_hess(x), atol=tolerance * np.abs(exp_sin_hess(x)).max())


def test_hessian_from_gradient_is_symmetric_and_accurate(rng):
    x = rng.uniform(-2, 2, 50)
    h = hessian(None, x, grad=rosen_der)
    np.testing.assert_array_equal(h, h.T)
    assert relative_error(h, rosen_hess(x)) < 1e-9
    calls = []
    hessian(None, x, grad=lambda X: calls.append(X.shape) or rosen_der(X), vectorized=True)
    assert calls == [(50, 100)]
    with pytest.raises(ValueError, match="grad"):
        hessian(None, x, grad=lambda v: v[:3])


def test_hessian_matches_scipy_differentiate(rng):
    x = rng.uniform(-1, 1, 4)
    theirs = scipy.differentiate.hessian(exp_sin, x).ddf
    np.testing.assert_allclose(hessian(exp_sin, x, method="richardson"), theirs, rtol=1e-9,
                               atol=1e-10)


@pytest.mark.parametrize("method,accuracy", [("central", 2), ("central", 4), ("richardson", 2)])
def test_hessian_non_finite_switches_to_one_sided(method, accuracy):
    def f(x):   # x0^3 x1^2 + x1^3, NaN where x0 > 1 (and x1 < 1.5 in the second case)
        return np.where(x[0] > 1.0, np.nan, x[0] ** 3 * x[1] ** 2 + x[1] ** 3)

    exact = np.array([[6 * 4.0, 6 * 2.0], [6 * 2.0, 2 + 12.0]])
    for vectorized in (False, True):
        result = hessian(f, [1.0, 2.0], method=method, accuracy=accuracy,
                         vectorized=vectorized, full_output=True)
        assert result.success
        np.testing.assert_allclose(result.df, exact, rtol=1e-5)
        np.testing.assert_array_equal(result.df, result.df.T)

    def g(x):   # NaN on both sides of x0 = 1: no stencil can work for row/column 0
        return np.where(x[0] != 1.0, np.nan, x[1] ** 3)
    result = hessian(g, [1.0, 2.0], vectorized=True, full_output=True)
    assert result.status.tolist() == [[3, 3], [3, 0]] and not result.success
    assert np.isnan(result.df[0]).all() and abs(result.df[1, 1] - 12.0) < 1e-6


def test_hessian_non_finite_compiled():
    result = hessian(low_level("nan_scalar"), np.ones(3), full_output=True)
    assert (result.status == Status.NON_FINITE).all() and np.isnan(result.df).all()


# ------------------------------------------------------------------------------------------
# elementwise derivative

SIN_DERIVATIVES = [np.cos, lambda x: -np.sin(x), lambda x: -np.cos(x), np.sin]
DERIVATIVE_TOLERANCE = {  # (method, accuracy) -> tolerance per order 1..4
    ("central", 2): (1e-9, 1e-6, 1e-5, 1e-3), ("central", 4): (1e-11, 1e-8, 1e-7, 1e-5),
    ("central", 8): (1e-11, 1e-9, 1e-8, 1e-6), ("forward", 1): (1e-7, 1e-4, 1e-2, 1e-1),
    ("forward", 4): (1e-10, 1e-7, 1e-5, 1e-3), ("backward", 2): (1e-9, 1e-5, 1e-4, 1e-2),
    ("richardson", 2): (1e-13, 1e-11, 1e-10, 1e-8)}


@pytest.mark.parametrize("method,accuracy", sorted(DERIVATIVE_TOLERANCE))
@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_derivative_orders(method, accuracy, order):
    x = np.linspace(-3, 3, 13).reshape(1, 13)
    value = derivative(np.sin, x, order=order, method=method, accuracy=accuracy)
    assert value.shape == x.shape
    assert np.max(np.abs(value - SIN_DERIVATIVES[order - 1](x))) < \
        10 * DERIVATIVE_TOLERANCE[method, accuracy][order - 1]


def test_derivative_complex_and_scalar():
    x = np.linspace(-2, 2, 9)
    np.testing.assert_allclose(derivative(np.exp, x, method="complex"), np.exp(x), rtol=1e-15)
    value = derivative(np.exp, 0.5)
    assert isinstance(value, float) and abs(value - np.exp(0.5)) < 1e-9


def test_derivative_compiled_elementwise_numba():
    numba = pytest.importorskip("numba", reason="numba is optional")
    from numba import types

    signature = types.double(types.double, types.intc, types.CPointer(types.double),
                             types.voidptr)

    @numba.cfunc(signature)
    def scaled_exp(x, k, p, user_data):   # p[0] * exp(p[1] * x), or exp(x) without parameters
        if k == 0:
            return np.exp(x)
        return p[0] * np.exp(p[1] * x)

    x = np.linspace(-1, 1, 6)
    np.testing.assert_allclose(derivative(scaled_exp, x, method="richardson"), np.exp(x),
                               rtol=1e-12)
    params = np.stack([np.linspace(1, 2, 6), np.linspace(-1, 1, 6)], axis=1)
    expected = params[:, 0] * params[:, 1] ** 2 * np.exp(params[:, 1] * x)
    np.testing.assert_allclose(derivative(scaled_exp, x, order=2, args=(params,), accuracy=4),
                               expected, rtol=1e-7, atol=1e-8)
    with pytest.raises(TypeError, match="complex"):
        derivative(scaled_exp, x, method="complex")
    with pytest.raises(TypeError, match="signature"):
        derivative(low_level("rosenbrock"), x)


def test_derivative_matches_scipy_differentiate():
    x = np.linspace(1.0, 3.0, 5)   # SciPy's first step (0.5) reaches log(0) at x = 0.5
    theirs = scipy.differentiate.derivative(np.log, x).df
    np.testing.assert_allclose(derivative(np.log, x, method="richardson"), theirs, rtol=1e-10)
    np.testing.assert_allclose(derivative(np.log, x, method="richardson"), 1 / x, rtol=1e-13)


def test_derivative_array_args_and_one_call():
    x = np.linspace(-1, 1, 6)
    rates = np.linspace(0.5, 2.0, 6)
    shapes = []

    def f(v, rate):
        shapes.append(v.shape)
        return np.exp(rate * v)

    value = derivative(f, x, args=(rates,), method="richardson")
    np.testing.assert_allclose(value, rates * np.exp(rates * x), rtol=1e-12)
    assert len(shapes) == 1


def test_derivative_fallback_and_full_output():
    x = np.array([0.0, 1e-3, 1.0])
    with np.errstate(invalid="ignore", divide="ignore"):
        result = derivative(np.log, x, full_output=True)
    assert isinstance(result, DifferentiationResult)
    assert result.status.tolist() == [Status.NON_FINITE, 0, 0]
    # default steps are relative to max(1, |x|): near 0 the curvature of log limits accuracy
    np.testing.assert_allclose(result.df[1:], 1 / x[1:], rtol=1e-4)
    assert not result.success
    # f = v^2 + v for v >= 0 and NaN left of 0: the forward stencil is used at 0
    for method in ("central", "richardson", "complex"):
        with np.errstate(invalid="ignore"):
            value = derivative(lambda v: np.sqrt(v) ** 4 + v, [0.0, 1.0], method=method)
        np.testing.assert_allclose(value, [1.0, 3.0], rtol=1e-8)


# ------------------------------------------------------------------------------------------
# check_grad, taylor

def test_check_grad(rng):
    x = rng.uniform(-2, 2, 10)
    assert check_grad(rosen, rosen_der, x) < 1e-11
    assert check_grad(low_level("rosenbrock"), rosen_der, x) < 1e-11
    wrong = check_grad(rosen, lambda v: rosen_der(v) * (1 + 1e-4 * (np.arange(10) == 3)), x)
    assert 1e-6 < wrong < 1e-3
    assert check_grad(exp_sin, exp_sin_grad, x) < 1e-11
    assert check_grad(lambda v: 0.0, lambda v: np.zeros(10), x) == 0.0


def test_taylor():
    p = taylor(np.exp, 0.5, 4)
    assert isinstance(p, Polynomial)
    exact = np.exp(0.5) / np.array([1, 1, 2, 6, 24])
    np.testing.assert_allclose(p.coef, exact, rtol=1e-8)
    assert abs(p(0.6) - np.sum(exact * 0.1 ** np.arange(5))) < 1e-12
    assert abs(p(0.6) - np.exp(0.6)) < 1e-6
    np.testing.assert_allclose(taylor(np.sin, 0.0, 3).coef, [0, 1, 0, -1 / 6], atol=1e-10)
    with pytest.raises(ValueError, match="order"):
        taylor(np.sin, 0.0, 5)


# ------------------------------------------------------------------------------------------
# full_output, bounds, non-finite fallback

def test_full_output_fields(rng):
    x = rng.uniform(-1, 1, 5)
    result = gradient(rosen, x, full_output=True)
    assert set(result) >= {"df", "error", "status", "nfev", "success", "message"}
    assert result.df.shape == result.error.shape == result.status.shape == (5,)
    assert result.success and (result.status == 0).all() and result.nfev == 10 * 5
    assert (result.error > 0).all()
    jac = jacobian(field, x, full_output=True)
    assert jac.df.shape == jac.error.shape == (5, 5) and jac.status.shape == (5,)


@pytest.mark.parametrize("method,accuracy", [("central", 2), ("central", 8), ("forward", 4),
                                             ("backward", 3), ("richardson", 2)])
def test_bounds_keep_every_evaluation_inside(method, accuracy):
    lower = np.array([0.0, -1.0, 0.0, 2.0])
    upper = np.array([1.0, 0.0, 1.0, 2.0 + 1e-6])
    x = np.array([0.0, 0.0, 0.5, 2.0 + 5e-7])     # on a bound, on a bound, inside, narrow box
    seen = []

    def f(v):
        seen.append(v.copy())
        return exp_sin(v) + np.sum(v**3)

    def exact(v):
        return exp_sin_grad(v) + 3 * v**2

    result = gradient(f, x, method=method, accuracy=accuracy, bounds=(lower, upper),
                      full_output=True)
    points = np.array(seen)
    assert (points >= lower).all() and (points <= upper).all()
    assert result.success
    tolerance = 1e-9 if method == "richardson" else TOLERANCE[method, accuracy] * 100
    assert np.max(np.abs(result.df - exact(x))[:3]) < tolerance
    assert abs(result.df[3] - exact(x)[3]) < 1e-3 * abs(exact(x)[3])   # narrow box: tiny step
    # vectorized and compiled respect bounds too
    vec_seen = []
    gradient(lambda X: vec_seen.append(X.copy()) or exp_sin(X), x, bounds=(lower, upper),
             method=method, accuracy=accuracy, vectorized=True)
    columns = np.concatenate(vec_seen, axis=1)
    assert (columns >= lower[:, None]).all() and (columns <= upper[:, None]).all()


def test_bounds_errors():
    with pytest.raises(ValueError, match="within bounds"):
        gradient(rosen, [2.0, 0.0], bounds=([0, 0], [1, 1]))
    with pytest.raises(ValueError, match="lb < ub"):
        gradient(rosen, [0.5, 0.5], bounds=([1, 0], [0, 1]))
    with pytest.raises(ValueError, match="bounds"):
        gradient(rosen, [0.5, 0.5], bounds=[0, 1, 2])


def nan_right_of_one(x):
    """x0^3 + x1^2, NaN where x0 > 1: the central stencil at x0 = 1 meets a NaN."""
    return np.where(x[0] > 1.0, np.nan, x[0] ** 3 + x[1] ** 2)


@pytest.mark.parametrize("method,accuracy", [("central", 2), ("central", 4), ("forward", 2),
                                             ("richardson", 2), ("complex", 2)])
def test_non_finite_switches_to_one_sided(method, accuracy):
    for vectorized in (False, True):
        result = gradient(nan_right_of_one, [1.0, 2.0], method=method, accuracy=accuracy,
                          vectorized=vectorized, full_output=True)
        assert result.success and (result.status == 0).all()
        np.testing.assert_allclose(result.df, [3.0, 4.0], rtol=1e-6)


def test_non_finite_everywhere_gives_nan_and_status():
    result = gradient(low_level("nan_scalar"), np.ones(3), full_output=True)
    assert np.isnan(result.df).all() and (result.status == Status.NON_FINITE).all()
    assert not result.success and "not finite" in result.message
    # one bad component does not spoil the others
    result = gradient(lambda x: np.nan if x[1] != 2.0 else x[0] ** 2, [3.0, 2.0],
                      full_output=True)
    assert result.status.tolist() == [0, Status.NON_FINITE]
    assert abs(result.df[0] - 6.0) < 1e-8 and np.isnan(result.df[1])
    assert np.isnan(gradient(low_level("nan_scalar"), np.ones(2))).all()


# ------------------------------------------------------------------------------------------
# bad input, non-mutation

@pytest.mark.parametrize("x,error,match", [
    (np.zeros((2, 2)), ValueError, "x must be a scalar or a 1-D"),
    (np.array([]), ValueError, "x must not be empty"),
    (np.array([1.0, np.nan]), ValueError, "x must be finite"),
    (np.array([1.0, np.inf]), ValueError, "x must be finite"),
    (["a", "b"], TypeError, "x must be real"),
    (np.array([1 + 1j]), TypeError, "x must be real"),
    (object(), TypeError, "x must be real"),
])
def test_bad_x(x, error, match):
    for routine in (gradient, jacobian, hessian):
        with pytest.raises(error, match=match):
            routine(rosen, x)


def test_bad_options():
    x = np.ones(3)
    with pytest.raises(ValueError, match="method"):
        gradient(rosen, x, method="secant")
    with pytest.raises(ValueError, match="accuracy"):
        gradient(rosen, x, accuracy=3)
    with pytest.raises(ValueError, match="accuracy"):
        gradient(rosen, x, method="forward", accuracy=5)
    with pytest.raises(ValueError, match="step"):
        gradient(rosen, x, step=-1e-3)
    with pytest.raises(ValueError, match="step"):
        gradient(rosen, x, step=[1e-3, 1e-3])
    with pytest.raises(ValueError, match="n_out"):
        jacobian(field, x, n_out=0)
    with pytest.raises(ValueError, match="order"):
        derivative(np.sin, 1.0, order=5)
    with pytest.raises(ValueError, match="order=1"):
        derivative(np.sin, 1.0, order=2, method="complex")
    with pytest.raises(ValueError, match="method"):
        hessian(rosen, x, method="forward")
    with pytest.raises(TypeError, match="f must be callable"):
        gradient(3.0, x)
    with pytest.raises(TypeError, match="complex"):
        gradient(low_level("rosenbrock"), x, method="complex")
    with pytest.raises(TypeError, match="signature"):
        gradient(low_level("vector_field"), x)


def test_callback_errors_propagate_unchanged():
    class Boom(Exception):
        pass

    def f(x):
        raise Boom("inside f")

    for call in (lambda: gradient(f, [1.0]), lambda: jacobian(f, [1.0]),
                 lambda: hessian(f, [1.0, 2.0]), lambda: derivative(f, 1.0),
                 lambda: gradient(f, [1.0], vectorized=True, method="richardson"),
                 lambda: gradient(f, [1.0], bounds=([0], [2])), lambda: taylor(f, 0.0, 2),
                 lambda: check_grad(f, lambda x: x, [1.0])):
        with pytest.raises(Boom, match="inside f"):
            call()


def test_wrong_return_shapes():
    x = np.ones(3)
    with pytest.raises(ValueError, match="f must return a scalar"):
        gradient(lambda v: v, x)
    with pytest.raises(ValueError, match="shape"):
        gradient(lambda X: X, x, vectorized=True)
    with pytest.raises(ValueError, match="shape"):
        jacobian(lambda v: np.ones(2) if v[0] == 1.0 else np.ones(3), x)
    with pytest.raises(ValueError, match="elementwise"):
        derivative(lambda v: np.ones(3), np.ones(2))
    with pytest.raises(TypeError, match="real"):
        gradient(lambda v: "text", x)


def test_inputs_are_not_mutated_and_views_work(rng):
    base = rng.uniform(-1, 1, 20)
    x = base[::2]                          # non-contiguous
    readonly = base[:10].copy()
    readonly.setflags(write=False)         # read-only
    before = base.copy()
    step = np.full(10, 1e-4)
    step.setflags(write=False)
    lower, upper = np.full(10, -1.0), np.full(10, 1.0)
    for data in (x, readonly):
        for routine in (gradient, hessian):
            value = routine(rosen, data)
            exact = rosen_der(np.array(data)) if routine is gradient else rosen_hess(data)
            assert relative_error(value, exact) < 1e-6
        gradient(rosen, data, step=step, bounds=(lower, upper), method="richardson")
        jacobian(field, data, method="complex")
        derivative(np.sin, data, order=2)
        check_grad(rosen, rosen_der, data)
    np.testing.assert_array_equal(base, before)
    assert (step == 1e-4).all() and (lower == -1).all() and (upper == 1).all()


def test_default_steps_are_exactly_representable(rng):
    x = np.concatenate([rng.uniform(-1e6, 1e6, 5), rng.uniform(-1, 1, 5), [0.0, 1e-300]])
    seen = []
    gradient(lambda v: seen.append(v.copy()) or 0.0, x)
    points = np.array(seen)
    steps = np.abs(points - x).max(axis=0)
    assert (steps > 0).all()
    assert ((x + steps) - x == steps).all()
