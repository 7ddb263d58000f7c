"""fit_batch with the Poisson likelihood and robust losses, against least squares and SciPy loops.

Targets (issue 14): each estimator at least 0.7x the throughput of the least-squares fit_batch
on the same 64-point gaussian datasets, and at least 30x a loop of ``least_squares(loss=...)`` /
``minimize`` on the deviance. ``fits_per_s`` is recorded in ``extra_info``; run as a script for
the ratio table in one run:

    python benchmarks/bench_estimators.py
    python -m pytest benchmarks/bench_estimators.py --benchmark-disable     # smoke test
"""
import timeit

import numpy as np
import pytest
from scipy.optimize import least_squares, minimize

from fastcalc import fit_batch, models

N_FAST = 20_000
N_LOOP = 50
ESTIMATORS = {"chi2": {}, "poisson": dict(cost="poisson"), "soft_l1": dict(loss="soft_l1"),
              "huber": dict(loss="huber"), "cauchy": dict(loss="cauchy"),
              "arctan": dict(loss="arctan")}


def gaussian(x, a, mu, s, c):
    return a * np.exp(-0.5 * ((x - mu) / s) ** 2) + c


def data(n, seed=7):
    """64-point gaussian peaks as counts (Poisson) and with Gaussian noise plus outliers."""
    rng = np.random.default_rng(seed)
    x = np.linspace(-5.0, 5.0, 64)
    P = np.column_stack([rng.uniform(10, 30, n), rng.uniform(-1, 1, n),
                         rng.uniform(0.7, 1.5, n), rng.uniform(1, 3, n)])
    mean = gaussian(x, *[P[:, k:k + 1] for k in range(4)])
    counts = rng.poisson(mean).astype(float)
    noisy = mean + rng.normal(0, 1.0, mean.shape)
    outliers = rng.random(mean.shape) < 0.03
    noisy[outliers] += rng.normal(0, 10.0, outliers.sum())
    return x, counts, noisy, P


def scipy_loop(name, x, Y, P):
    """The reference: one SciPy fit per dataset from the same start as fastcalc's (the truth)."""
    out = np.empty_like(P)
    for i in range(len(Y)):
        y = Y[i]
        if name == "poisson":
            def deviance(p):
                mu = gaussian(x, *p)
                if not np.all(mu > 0):
                    return np.inf
                return 2 * np.sum(mu - y + np.where(y > 0, y * np.log(np.where(y > 0, y, 1) / mu),
                                                    0.0))
            out[i] = minimize(deviance, P[i], method="BFGS").x
        else:
            out[i] = least_squares(lambda p: y - gaussian(x, *p), P[i],
                                   loss="linear" if name == "chi2" else name).x
    return out


def fastcalc_fits(name, x, Y, P):
    return fit_batch(models.gaussian, x, Y, p0=P, **ESTIMATORS[name])


def _inputs(name, n):
    x, counts, noisy, P = data(n)
    return x, (counts if name == "poisson" else noisy), P


@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_fastcalc_estimator(benchmark, name):
    x, Y, P = _inputs(name, N_FAST)
    result = benchmark(fastcalc_fits, name, x, Y, P)
    assert (result.status == 0).mean() > 0.99
    if benchmark.stats is not None:
        benchmark.extra_info["fits_per_s"] = N_FAST / benchmark.stats.stats.min


@pytest.mark.parametrize("name", ["poisson", "huber"])
def test_scipy_loop(benchmark, name):
    x, Y, P = _inputs(name, N_LOOP)
    benchmark(scipy_loop, name, x, Y, P)
    if benchmark.stats is not None:
        benchmark.extra_info["fits_per_s"] = N_LOOP / benchmark.stats.stats.min


def _best(function, *args, repeat=3):
    """The best of ``repeat`` timings of ``function(*args)``, in seconds."""
    return min(timeit.repeat(lambda: function(*args), number=1, repeat=repeat))


if __name__ == "__main__":
    rates, baseline = {}, {}
    for name in ESTIMATORS:
        x, Y, P = _inputs(name, N_FAST)
        fastcalc_fits(name, x, Y[:100], P[:100])                # warm up
        rates[name] = N_FAST / _best(fastcalc_fits, name, x, Y, P)
        # least squares on the same datasets, the throughput each estimator is compared with
        baseline[name] = N_FAST / _best(fastcalc_fits, "chi2", x, Y, P)
    print(f"{'estimator':<10} {'fits/s':>12} {'vs chi2, same data':>19} {'SciPy fits/s':>13} "
          f"{'ratio':>8}")
    for name, rate in rates.items():
        x, Y, P = _inputs(name, N_LOOP)
        reference = N_LOOP / _best(scipy_loop, name, x, Y, P, repeat=1)
        print(f"{name:<10} {rate:>12.0f} {rate / baseline[name]:>19.2f} {reference:>13.0f} "
              f"{rate / reference:>8.0f}")
