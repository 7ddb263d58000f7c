"""fit_batch throughput against a Python loop of scipy.optimize.curve_fit, in the same run.

Each benchmark records ``fits_per_s`` (best round) in ``extra_info`` (shown with ``--benchmark-json`` or
``--benchmark-columns``). The curve_fit loops run on a few hundred datasets; their fits/s is
``datasets / time``, comparable with fastcalc's because every fit is independent.

    python -m pytest benchmarks/bench_fitting.py --benchmark-only
    python -m pytest benchmarks/bench_fitting.py --benchmark-disable     # smoke test
"""
import warnings

import numpy as np
import pytest
from scipy.optimize import curve_fit

from fastcalc import fit_batch, models
from fastcalc._testfunctions import low_level

N_FAST = 40_000       # datasets per fastcalc call (built-in / compiled models)
N_PYTHON = 4_000      # datasets per fastcalc call with a Python-callable model
N_LOOP = 200          # datasets in the curve_fit loop


def gaussian(x, a, mu, s, c):
    return a * np.exp(-0.5 * ((x - mu) / s) ** 2) + c


def exponential(x, a, tau, c):
    return a * np.exp(-x / tau) + c


def gaussian_2d(xy, a, x0, y0, s, b):
    return a * np.exp(-((xy[0] - x0) ** 2 + (xy[1] - y0) ** 2) / (2 * s * s)) + b


def _data(kind, n, seed=7):
    rng = np.random.default_rng(seed)
    if kind == "gaussian":
        x = np.linspace(-5.0, 5.0, 64)
        P = np.column_stack([rng.uniform(1, 3, n), rng.uniform(-1, 1, n), rng.uniform(0.6, 1.5, n),
                             rng.uniform(0, 1, n)])
        Y = gaussian(x, *[P[:, k:k + 1] for k in range(4)]) + rng.normal(0, 0.05, (n, x.size))
    elif kind == "exponential":
        x = np.linspace(0.0, 5.0, 64)
        P = np.column_stack([rng.uniform(1, 3, n), rng.uniform(0.5, 2, n), rng.uniform(0, 1, n)])
        Y = exponential(x, *[P[:, k:k + 1] for k in range(3)]) + rng.normal(0, 0.02, (n, x.size))
    else:   # 5x5-pixel 2-D gaussian spots (Gpufit's benchmark problem)
        g = np.arange(5.0)
        x = np.array(np.meshgrid(g, g)).reshape(2, 25)
        P = np.column_stack([rng.uniform(500, 1000, n), rng.uniform(1.5, 2.5, n),
                             rng.uniform(1.5, 2.5, n), rng.uniform(0.8, 1.2, n),
                             rng.uniform(5, 15, n)])
        xy = x[:, None, :]
        Y = gaussian_2d(xy, *[P[:, k:k + 1] for k in range(5)])
        Y = Y + rng.normal(0, 1.0, Y.shape) * np.sqrt(Y)
    return x, Y, P


PY_MODELS = {"gaussian": gaussian, "exponential": exponential, "gaussian_2d": gaussian_2d}


def _starts(kind, P, rng_seed=11):
    """Starts 10-20% off the truth, as a pipeline seeding fits from a coarse estimate would."""
    rng = np.random.default_rng(rng_seed)
    return P * rng.uniform(0.9, 1.1, P.shape)


def _record(benchmark, n):
    """fits/s of the best round (the least disturbed by other processes on a shared machine)."""
    stats = getattr(benchmark, "stats", None)
    if stats is not None and getattr(stats, "stats", None) is not None:
        benchmark.extra_info["fits_per_s"] = round(n / stats.stats.min)


def _curve_fit_loop(kind, x, Y, p0):
    f = PY_MODELS[kind]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i in range(Y.shape[0]):
            curve_fit(f, x, Y[i], p0=p0[i])


@pytest.mark.parametrize("kind", ["gaussian", "exponential", "gaussian_2d"])
def test_curve_fit_loop(benchmark, kind):
    x, Y, P = _data(kind, N_LOOP)
    p0 = _starts(kind, P)
    benchmark.group = f"fit {kind}"
    benchmark.pedantic(_curve_fit_loop, args=(kind, x, Y, p0), rounds=3, iterations=1)
    _record(benchmark, N_LOOP)


@pytest.mark.parametrize("kind", ["gaussian", "exponential", "gaussian_2d"])
def test_fit_batch_builtin(benchmark, kind):
    x, Y, P = _data(kind, N_FAST)
    p0 = _starts(kind, P)
    model = getattr(models, kind)
    benchmark.group = f"fit {kind}"
    result = benchmark.pedantic(fit_batch, args=(model, x, Y, p0), rounds=5, iterations=1)
    assert result.success.mean() > 0.99
    _record(benchmark, N_FAST)


def test_fit_batch_builtin_with_guesses(benchmark):
    x, Y, _ = _data("gaussian", N_FAST)
    benchmark.group = "fit gaussian"
    result = benchmark.pedantic(fit_batch, args=(models.gaussian, x, Y), rounds=5, iterations=1)
    assert result.success.mean() > 0.99
    _record(benchmark, N_FAST)


def test_fit_batch_compiled_callable(benchmark):
    x, Y, P = _data("gaussian", N_FAST)
    p0 = _starts("gaussian", P)
    benchmark.group = "fit gaussian"
    result = benchmark.pedantic(fit_batch, args=(low_level("gaussian_model"), x, Y, p0),
                                rounds=3, iterations=1)
    assert result.success.mean() > 0.99
    _record(benchmark, N_FAST)


@pytest.mark.parametrize("threads", [None, 1], ids=["all-cores", "1-thread"])
@pytest.mark.parametrize("kind", ["gaussian", "exponential"])
def test_fit_batch_python_callable(benchmark, kind, threads):
    x, Y, P = _data(kind, N_PYTHON)
    p0 = _starts(kind, P)
    benchmark.group = f"fit {kind}"
    result = benchmark.pedantic(fit_batch, args=(PY_MODELS[kind], x, Y, p0),
                                kwargs={"n_threads": threads}, rounds=5, iterations=1)
    assert result.success.mean() > 0.99
    benchmark.extra_info["mean_nfev"] = float(result.nfev.mean())
    _record(benchmark, N_PYTHON)


def gaussian_jac(x, a, mu, s, c):
    d = (x - mu) / s
    e = np.exp(-0.5 * d * d)
    return e, a * e * d / s, a * e * d * d / s, 1.0


def test_fit_batch_python_callable_with_jac(benchmark):
    x, Y, P = _data("gaussian", N_PYTHON)
    p0 = _starts("gaussian", P)
    benchmark.group = "fit gaussian"
    result = benchmark.pedantic(fit_batch, args=(gaussian, x, Y, p0), kwargs={"jac": gaussian_jac},
                                rounds=3, iterations=1)
    assert result.success.mean() > 0.99
    _record(benchmark, N_PYTHON)


@pytest.mark.parametrize("method", ["lm", "gd"])
def test_method_cost(benchmark, method):
    n = 4_000
    x, Y, P = _data("gaussian", n)
    p0 = _starts("gaussian", P)
    benchmark.group = "method gaussian (lm vs gd)"
    result = benchmark.pedantic(fit_batch, args=(models.gaussian, x, Y, p0),
                                kwargs={"method": method}, rounds=3, iterations=1)
    assert result.success.mean() > 0.99
    benchmark.extra_info["mean_nit"] = float(result.nit.mean())
    _record(benchmark, n)
