"""fastcalc finite differences vs SciPy (approx_derivative, scipy.differentiate) and numdifftools.

Every benchmark records the max relative error against the exact derivative in ``extra_info``
so that speed is always read together with accuracy. Run:

    python -m pytest benchmarks/bench_differentiate.py --benchmark-only

SciPy's ``scipy.differentiate.hessian`` (~7 s) and numdifftools (~3 s) are too slow for a
benchmark loop at n = 100: they are timed at n = 20 (group ``hessian-n20``), and at n = 100 only
with ``FASTCALC_BENCH_SLOW=1`` (one round each).
"""
import os

import numpy as np
import pytest
import scipy.differentiate
from scipy.optimize import rosen, rosen_der, rosen_hess
from scipy.optimize._numdiff import approx_derivative

from fastcalc import derivative, gradient, hessian, jacobian
from fastcalc._testfunctions import low_level

try:
    import numdifftools
except ImportError:  # optional comparison (pip install fastcalc[bench])
    numdifftools = None

needs_numdifftools = pytest.mark.skipif(numdifftools is None, reason="numdifftools not installed")
slow = pytest.mark.skipif(os.environ.get("FASTCALC_BENCH_SLOW") != "1",
                          reason="several seconds per call; set FASTCALC_BENCH_SLOW=1")

ROSENBROCK = low_level("rosenbrock")


def point(n):
    return np.random.default_rng(20261124).uniform(-2, 2, n)


def record(benchmark, value, exact):
    error = float(np.max(np.abs(value - exact)) / np.max(np.abs(exact)))
    benchmark.extra_info["rel_error"] = error
    return error


def rosen_columns(X):
    """Rosenbrock in scipy.differentiate's convention (variables along axis 0, any trailing)."""
    return rosen(X)


# ---------------------------------------------------------------------------------------------
# gradient, n = 100 Rosenbrock

X100 = point(100)
GRAD100 = rosen_der(X100)


def numpy_batched_central(x, f=rosen):
    """The floor: one batched NumPy call of a 3-point central difference."""
    h = 6.055e-6 * np.maximum(1.0, np.abs(x))
    h = (x + h) - x
    steps = np.diag(h)
    values = f(np.concatenate([x[:, None] + steps, x[:, None] - steps], axis=1))
    n = x.size
    return (values[:n] - values[n:]) / (2 * h)


@pytest.mark.benchmark(group="gradient-n100")
def test_gradient_fastcalc_vectorized(benchmark):
    value = benchmark(gradient, rosen, X100, vectorized=True)
    assert record(benchmark, value, GRAD100) < 1e-7


@pytest.mark.benchmark(group="gradient-n100")
def test_gradient_fastcalc_compiled(benchmark):
    value = benchmark(gradient, ROSENBROCK, X100)
    assert record(benchmark, value, GRAD100) < 1e-7


@pytest.mark.benchmark(group="gradient-n100")
def test_gradient_fastcalc_python(benchmark):
    value = benchmark(gradient, rosen, X100)
    assert record(benchmark, value, GRAD100) < 1e-7


@pytest.mark.benchmark(group="gradient-n100")
def test_gradient_fastcalc_richardson_vectorized(benchmark):
    value = benchmark(gradient, rosen, X100, vectorized=True, method="richardson")
    assert record(benchmark, value, GRAD100) < 1e-12


@pytest.mark.benchmark(group="gradient-n100")
def test_gradient_numpy_one_batched_call(benchmark):
    value = benchmark(numpy_batched_central, X100)
    assert record(benchmark, value, GRAD100) < 1e-7


@pytest.mark.benchmark(group="gradient-n100")
def test_gradient_scipy_approx_derivative_3point(benchmark):
    value = benchmark(approx_derivative, rosen, X100, method="3-point")
    assert record(benchmark, value, GRAD100) < 1e-6


@pytest.mark.benchmark(group="gradient-n100")
def test_gradient_scipy_differentiate_jacobian(benchmark):
    result = benchmark.pedantic(scipy.differentiate.jacobian, (rosen_columns, X100), rounds=3)
    assert record(benchmark, result.df, GRAD100) < 1e-6


@needs_numdifftools
@pytest.mark.benchmark(group="gradient-n100")
def test_gradient_numdifftools(benchmark):
    grad = numdifftools.Gradient(rosen)
    value = benchmark.pedantic(grad, (X100,), rounds=3)
    assert record(benchmark, value, GRAD100) < 1e-6


# ---------------------------------------------------------------------------------------------
# gradient, n = 10, plain Python function: overhead over the bare 2n calls

X10 = point(10)
GRAD10 = rosen_der(X10)
POINTS10 = [X10.copy() for _ in range(20)]


def bare_calls():
    return [rosen(p) for p in POINTS10]


@pytest.mark.benchmark(group="gradient-n10-python")
def test_gradient10_bare_2n_calls(benchmark):
    benchmark(bare_calls)


@pytest.mark.benchmark(group="gradient-n10-python")
def test_gradient10_fastcalc(benchmark):
    value = benchmark(gradient, rosen, X10)
    assert record(benchmark, value, GRAD10) < 1e-7


@pytest.mark.benchmark(group="gradient-n10-python")
def test_gradient10_scipy_approx_derivative(benchmark):
    value = benchmark(approx_derivative, rosen, X10, method="3-point")
    assert record(benchmark, value, GRAD10) < 1e-6


# ---------------------------------------------------------------------------------------------
# Hessian, n = 100 (fastcalc) and n = 20 (everything, SciPy and numdifftools being slow)

HESS100 = rosen_hess(X100)
X20 = point(20)
HESS20 = rosen_hess(X20)


@pytest.mark.benchmark(group="hessian-n100")
def test_hessian_fastcalc_vectorized(benchmark):
    value = benchmark(hessian, rosen, X100, vectorized=True)
    assert record(benchmark, value, HESS100) <= 1e-7


@pytest.mark.benchmark(group="hessian-n100")
def test_hessian_fastcalc_compiled(benchmark):
    value = benchmark(hessian, ROSENBROCK, X100)
    assert record(benchmark, value, HESS100) <= 1e-7


@pytest.mark.benchmark(group="hessian-n100")
def test_hessian_fastcalc_from_gradient(benchmark):
    value = benchmark(hessian, None, X100, grad=rosen_der, vectorized=True)
    assert record(benchmark, value, HESS100) <= 1e-7


@pytest.mark.benchmark(group="hessian-n100")
def test_hessian_scipy_approx_derivative_of_gradient(benchmark):
    value = benchmark(approx_derivative, rosen_der, X100, method="3-point")
    assert record(benchmark, value, HESS100) <= 1e-6


@slow
@pytest.mark.benchmark(group="hessian-n100")
def test_hessian_scipy_differentiate_n100(benchmark):
    result = benchmark.pedantic(scipy.differentiate.hessian, (rosen_columns, X100), rounds=1)
    record(benchmark, result.ddf, HESS100)


@slow
@needs_numdifftools
@pytest.mark.benchmark(group="hessian-n100")
def test_hessian_numdifftools_n100(benchmark):
    value = benchmark.pedantic(numdifftools.Hessian(rosen), (X100,), rounds=1)
    record(benchmark, value, HESS100)


@pytest.mark.benchmark(group="hessian-n20")
def test_hessian20_fastcalc_vectorized(benchmark):
    value = benchmark(hessian, rosen, X20, vectorized=True)
    assert record(benchmark, value, HESS20) <= 1e-7


@pytest.mark.benchmark(group="hessian-n20")
def test_hessian20_fastcalc_richardson(benchmark):
    value = benchmark(hessian, rosen, X20, vectorized=True, method="richardson")
    assert record(benchmark, value, HESS20) <= 1e-10


@pytest.mark.benchmark(group="hessian-n20")
def test_hessian20_scipy_differentiate(benchmark):
    result = benchmark.pedantic(scipy.differentiate.hessian, (rosen_columns, X20), rounds=1)
    assert record(benchmark, result.ddf, HESS20) <= 1e-6


@needs_numdifftools
@pytest.mark.benchmark(group="hessian-n20")
def test_hessian20_numdifftools(benchmark):
    value = benchmark.pedantic(numdifftools.Hessian(rosen), (X20,), rounds=1)
    assert record(benchmark, value, HESS20) <= 1e-6


# ---------------------------------------------------------------------------------------------
# Jacobian of a vector field, n = 100, and elementwise derivatives of 100 000 points


def field(x):
    n = x.shape[0]
    i = np.arange(n)
    return x**2 * np.sin(x[(i + 1) % n]) + np.exp(x[(i - 1) % n]) * np.cos(x)


JAC_REFERENCE = jacobian(field, X100, method="complex")


@pytest.mark.benchmark(group="jacobian-n100")
def test_jacobian_fastcalc_vectorized(benchmark):
    value = benchmark(jacobian, field, X100, vectorized=True)
    assert record(benchmark, value, JAC_REFERENCE) < 1e-8


@pytest.mark.benchmark(group="jacobian-n100")
def test_jacobian_fastcalc_compiled(benchmark):
    value = benchmark(jacobian, low_level("vector_field"), X100)
    assert record(benchmark, value, JAC_REFERENCE) < 1e-8


@pytest.mark.benchmark(group="jacobian-n100")
def test_jacobian_scipy_approx_derivative(benchmark):
    value = benchmark(approx_derivative, field, X100, method="3-point")
    assert record(benchmark, value, JAC_REFERENCE) < 1e-6


XS = np.linspace(-3, 3, 100_000)


@pytest.mark.benchmark(group="derivative-1e5")
def test_derivative_fastcalc_richardson(benchmark):
    value = benchmark(derivative, np.exp, XS, method="richardson")
    assert record(benchmark, value, np.exp(XS)) < 1e-12


@pytest.mark.benchmark(group="derivative-1e5")
def test_derivative_fastcalc_central4(benchmark):
    value = benchmark(derivative, np.exp, XS, accuracy=4)
    assert record(benchmark, value, np.exp(XS)) < 1e-10


@pytest.mark.benchmark(group="derivative-1e5")
def test_derivative_scipy_differentiate(benchmark):
    result = benchmark.pedantic(scipy.differentiate.derivative, (np.exp, XS), rounds=3)
    assert record(benchmark, result.df, np.exp(XS)) < 1e-10
