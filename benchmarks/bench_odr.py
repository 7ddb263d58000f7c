"""Orthogonal distance regression (errors in x): fit_batch(sigma_x=) against a loop of
scipy.odr (ODRPACK), and against the direct minimisation over (params, delta) with
least_squares, on 64-point exponential decays with errors in x and y.

Target (issue 15): 10,000 datasets at least 100x a scipy.odr loop. Run as a script for the
figures in one run (the loops timed on a subset and scaled; CPU time is printed too, as wall
time on a shared machine also measures the other processes):

    python benchmarks/bench_odr.py
    python -m pytest benchmarks/bench_odr.py --benchmark-disable     # smoke test
"""
import time
import warnings

import numpy as np
from scipy.optimize import least_squares

from fastcalc import fit_batch, models
from fastcalc.cli._bench import odr_problem

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)     # scipy.odr is deprecated in 1.17
    from scipy import odr

N_FAST = 10_000
N_LOOP = 100
SIGMA = 0.05


def exponential(t, a, tau, c):
    return a * np.exp(-t / tau) + c


def fastcalc_odr(X, Y, p0, model=models.exponential, n_threads=None):
    return fit_batch(model, X, Y, p0=p0, sigma=SIGMA, sigma_x=SIGMA, n_threads=n_threads)


def scipy_odr_loop(X, Y, p0):
    out = np.empty((len(Y), p0.size))
    model = odr.Model(lambda B, t: exponential(t, *B))
    for i in range(len(Y)):
        out[i] = odr.ODR(odr.RealData(X[i], Y[i], sx=SIGMA, sy=SIGMA), model, beta0=p0).run().beta
    return out


def direct_loop(X, Y, p0):
    """least_squares over (params, delta) per dataset (the problem ODRPACK solves)."""
    out = np.empty((len(Y), p0.size))
    k = p0.size
    for i in range(len(Y)):
        x, y = X[i], Y[i]

        def residuals(z):
            return np.concatenate([(exponential(x + z[k:], *z[:k]) - y) / SIGMA, z[k:] / SIGMA])
        out[i] = least_squares(residuals, np.concatenate([p0, np.zeros(x.size)])).x[:k]
    return out


def test_fastcalc_odr(benchmark):
    x, X, Y, truth = odr_problem(N_FAST, 64)
    result = benchmark(fastcalc_odr, X, Y, truth)
    assert (result.status == 0).mean() > 0.99


def test_fastcalc_odr_python_model(benchmark):
    x, X, Y, truth = odr_problem(N_FAST // 10, 64)
    result = benchmark(fastcalc_odr, X, Y, truth, exponential)
    assert (result.status == 0).mean() > 0.99


def test_scipy_odr_loop(benchmark):
    x, X, Y, truth = odr_problem(10, 64)
    benchmark(scipy_odr_loop, X, Y, truth)


def _timed(function, *args, repeat=3):
    """(best wall seconds, best CPU seconds, result) of ``function(*args)``."""
    best_wall = best_cpu = np.inf
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        result = function(*args)
        best_wall = min(best_wall, time.perf_counter() - wall)
        best_cpu = min(best_cpu, time.process_time() - cpu)
    return best_wall, best_cpu, result


if __name__ == "__main__":
    x, X, Y, truth = odr_problem(N_FAST, 64)
    rows = {}
    for name, call, n in (
            ("fastcalc built-in, all threads", lambda: fastcalc_odr(X, Y, truth), N_FAST),
            ("fastcalc built-in, 1 thread",
             lambda: fastcalc_odr(X, Y, truth, n_threads=1), N_FAST),
            ("fastcalc Python model, 1 thread",
             lambda: fastcalc_odr(X, Y, truth, exponential, 1), N_FAST),
            ("scipy.odr loop", lambda: scipy_odr_loop(X[:N_LOOP], Y[:N_LOOP], truth), N_LOOP),
            ("least_squares loop", lambda: direct_loop(X[:N_LOOP // 5], Y[:N_LOOP // 5], truth),
             N_LOOP // 5)):
        wall, cpu, result = _timed(call, repeat=3 if n == N_FAST else 1)
        rows[name] = (wall / n, cpu / n, result)
    reference = rows["scipy.odr loop"][2]
    fast = rows["fastcalc built-in, all threads"][2]
    off = np.abs(fast.params[:N_LOOP] - reference) / fast.stderr[:N_LOOP]
    for name, (wall, cpu, _) in rows.items():
        print(f"{name:<34} {wall * 1e6:11.1f} us wall {cpu * 1e6:11.1f} us CPU per dataset")
    for loop in ("scipy.odr loop", "least_squares loop"):
        for name in ("fastcalc built-in, all threads", "fastcalc built-in, 1 thread",
                     "fastcalc Python model, 1 thread"):
            print(f"{loop} / {name}: {rows[loop][0] / rows[name][0]:.1f}x wall, "
                  f"{rows[loop][1] / rows[name][1]:.1f}x CPU")
    print(f"max |params - scipy.odr| / stderr over {N_LOOP} datasets: {off.max():.2e}; "
          f"fastcalc status 0 for {np.mean(fast.status == 0):.1%}")
