"""Built-in models (fastcalc.models) vs the NumPy formulas SciPy users write.

Three questions, each a benchmark group:

- ``values-jacobian``: model values and analytic Jacobian over 100k points, compiled vs
  the NumPy expressions (the Jacobian is what curve_fit would otherwise approximate with
  nparams extra model calls).
- ``curve_fit-gaussian``: one 64-point Gaussian fit with ``scipy.optimize.curve_fit``,
  using the built-in model with its analytic Jacobian and guess, vs a NumPy lambda with
  curve_fit's finite differences and a hand-made p0.
- ``guess``: cost of ``Model.guess`` per 64-point dataset through the Python wrapper
  (inside ``fit_batch`` the same kernels run without it).

Accuracy is recorded in ``extra_info`` so speed is read together with it. Run:

    python -m pytest benchmarks/bench_models.py --benchmark-only
"""
import warnings

import numpy as np
import pytest
from scipy.optimize import curve_fit

from fastcalc import models

X_LARGE = np.linspace(-10, 10, 100_000)
GAUSS_P = (3.0, 0.5, 1.5, 0.2)


def numpy_gaussian(x, A, mu, sigma, c):
    return A * np.exp(-(x - mu) ** 2 / (2 * sigma**2)) + c


def numpy_gaussian_jacobian(x, A, mu, sigma, c):
    e = np.exp(-(x - mu) ** 2 / (2 * sigma**2))
    return np.column_stack([e, A * e * (x - mu) / sigma**2,
                            A * e * (x - mu) ** 2 / sigma**3, np.ones_like(x)])


@pytest.mark.benchmark(group="values-jacobian")
def test_fastcalc_gaussian_values(benchmark):
    values = benchmark(models.gaussian, X_LARGE, *GAUSS_P)
    np.testing.assert_allclose(values, numpy_gaussian(X_LARGE, *GAUSS_P), rtol=1e-13)


@pytest.mark.benchmark(group="values-jacobian")
def test_numpy_gaussian_values(benchmark):
    benchmark(numpy_gaussian, X_LARGE, *GAUSS_P)


@pytest.mark.benchmark(group="values-jacobian")
def test_fastcalc_gaussian_jacobian(benchmark):
    jac = benchmark(models.gaussian.jacobian, X_LARGE, *GAUSS_P)
    np.testing.assert_allclose(jac, numpy_gaussian_jacobian(X_LARGE, *GAUSS_P),
                               rtol=1e-12, atol=1e-300)


@pytest.mark.benchmark(group="values-jacobian")
def test_numpy_gaussian_jacobian(benchmark):
    benchmark(numpy_gaussian_jacobian, X_LARGE, *GAUSS_P)


# ---------------------------------------------------------------------------------------
# one curve_fit

X64 = np.linspace(-10, 10, 64)
Y64 = numpy_gaussian(X64, *GAUSS_P) + np.random.default_rng(1).normal(0, 0.1, 64)
REFERENCE = curve_fit(numpy_gaussian, X64, Y64, p0=GAUSS_P)[0]


def record(benchmark, popt):
    error = float(np.max(np.abs(popt - REFERENCE) / np.abs(REFERENCE)))
    benchmark.extra_info["max_rel_diff_vs_reference_fit"] = error
    assert error < 1e-6


@pytest.mark.benchmark(group="curve_fit-gaussian")
def test_curve_fit_builtin_model_guess_and_jacobian(benchmark):
    def run():
        model = models.gaussian
        return curve_fit(model, X64, Y64, p0=model.guess(X64, Y64), jac=model.jacobian)[0]
    record(benchmark, benchmark(run))


@pytest.mark.benchmark(group="curve_fit-gaussian")
def test_curve_fit_numpy_model_finite_differences(benchmark):
    def run():
        p0 = (Y64.max() - Y64.min(), X64[np.argmax(Y64)], 1.0, Y64.min())
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return curve_fit(numpy_gaussian, X64, Y64, p0=p0)[0]
    record(benchmark, benchmark(run))


# ---------------------------------------------------------------------------------------
# guesses

GUESS_DATA = {
    "line": (X64, 1.0 + 2.0 * X64),
    "gaussian": (X64, Y64),
    "exponential": (np.linspace(0, 10, 64), 3.0 * np.exp(-np.linspace(0, 10, 64) / 3) + 0.2),
    "logistic": (X64, models.logistic(X64, 3.0, 0.5, 1.5, 0.2)),
    "sine": (np.linspace(0, 10, 64), models.sine(np.linspace(0, 10, 64), 3.0, 2.0, 0.5, 0.2)),
}


@pytest.mark.benchmark(group="guess")
@pytest.mark.parametrize("name", sorted(GUESS_DATA))
def test_guess(benchmark, name):
    model = models.get_model(name)
    x, y = GUESS_DATA[name]
    p0 = benchmark(model.guess, x, y)
    assert np.all(np.isfinite(p0))
