"""Inference after a batch fit: profile intervals and toys, against per-dataset references.

Targets (issue 14): profile intervals of 10,000 gaussian fits (4 parameters, both limits) at
least 50x a per-dataset loop of iminuit's MINOS (when installed) or of a brute-force profile
(brentq on refits with the parameter held); 1000 toys of a 64-point gaussian simulated and
refitted in under 0.1 s. Run as a script for the figures in one run:

    python benchmarks/bench_inference.py
    python -m pytest benchmarks/bench_inference.py --benchmark-disable     # smoke test
"""
import timeit

import numpy as np
import pytest
from scipy.optimize import brentq

from fastcalc import fit, fit_batch, models

N_FAST = 10_000
N_LOOP = 20
SIGMA = 0.1
TRUTH = np.array([3.0, 0.5, 1.2, 0.2])


def data(n, seed=9):
    rng = np.random.default_rng(seed)
    x = np.linspace(-5.0, 5.0, 64)
    return x, models.gaussian(x, *TRUTH) + rng.normal(0, SIGMA, (n, x.size))


def fastcalc_intervals(x, Y):
    fits = fit_batch(models.gaussian, x, Y, p0=TRUTH, sigma=SIGMA, absolute_sigma=True)
    return fits.conf_interval()


def brute_force_intervals(x, Y):
    """Per dataset and parameter: brentq on the profile, each trial a refit with it held."""
    out = np.empty((len(Y), 4, 2))
    for i, y in enumerate(Y):
        r = fit(models.gaussian, x, y, p0=TRUTH, sigma=SIGMA, absolute_sigma=True)
        for k in range(4):
            def rise(t):
                p0 = r.params.copy()
                p0[k] = t
                return fit(models.gaussian, x, y, p0=p0, sigma=SIGMA, absolute_sigma=True,
                           fixed=[k]).chi2 - r.chi2 - 1.0
            for j, side in enumerate((-1, 1)):
                out[i, k, j] = brentq(rise, r.params[k], r.params[k] + 3 * side * r.stderr[k],
                                      xtol=1e-8 * r.stderr[k])
    return out


def minos_intervals(x, Y):
    """Per dataset: iminuit's MIGRAD, then MINOS on every parameter."""
    from iminuit import Minuit
    from iminuit.cost import LeastSquares
    out = np.empty((len(Y), 4, 2))
    for i, y in enumerate(Y):
        m = Minuit(LeastSquares(x, y, SIGMA, lambda x, a, mu, s, c: models.gaussian(x, a, mu,
                                                                                      s, c)),
                   *TRUTH)
        m.migrad()
        m.minos()
        for k, name in enumerate(m.parameters):
            out[i, k] = m.values[name] + np.array([m.merrors[name].lower, m.merrors[name].upper])
    return out


def toys(x, y):
    r = fit(models.gaussian, x, y, sigma=SIGMA, absolute_sigma=True)
    return fit_batch(models.gaussian, x, r.simulate(1000, rng=1), p0=r.params, sigma=SIGMA,
                     absolute_sigma=True)


def test_fastcalc_intervals(benchmark):
    x, Y = data(N_FAST)
    result = benchmark(fastcalc_intervals, x, Y)
    assert (result.status == 0).mean() > 0.99


def test_brute_force_intervals(benchmark):
    x, Y = data(2)
    benchmark(brute_force_intervals, x, Y)


def test_toys(benchmark):
    x, Y = data(1)
    assert (benchmark(toys, x, Y[0]).status == 0).mean() > 0.99


def _best(function, *args, repeat=3):
    """The best of ``repeat`` timings of ``function(*args)``, in seconds."""
    return min(timeit.repeat(lambda: function(*args), number=1, repeat=repeat))


if __name__ == "__main__":
    x, Y = data(N_FAST)
    ours = _best(fastcalc_intervals, x, Y) / N_FAST
    print(f"profile intervals, fastcalc batch: {ours * 1e6:.1f} us per dataset (4 params x 2)")
    loops = {"brute-force profile": brute_force_intervals}
    try:
        import iminuit  # noqa: F401
        loops["iminuit MINOS"] = minos_intervals
    except ImportError:
        print("iminuit not installed: no MINOS reference")
    for name, function in loops.items():
        theirs = _best(function, x, Y[:N_LOOP], repeat=1) / N_LOOP
        print(f"{name} loop: {theirs * 1e6:.0f} us per dataset, ratio {theirs / ours:.0f}x")
    print(f"1000 toys simulated and refitted: {_best(toys, x, Y[0]) * 1e3:.1f} ms")
