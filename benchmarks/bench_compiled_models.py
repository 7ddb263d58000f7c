"""Compiled fit models with their Jacobian (numba cfunc) against the built-in models and a numba
``prange`` Levenberg-Marquardt written per dataset (its code: benchmarks/numba_lm.py), and the
built-in models against that LM, in the same run and from the same p0.

Everything runs on one thread and is timed in CPU time (``time.process_time``): on a shared
machine wall-clock times of either side mostly measure the other processes, and the datasets are
independent, so both sides scale alike over threads. ``extra_info["fits_per_s"]`` holds the
throughput.

    python -m pytest benchmarks/bench_compiled_models.py --benchmark-only
    python -m pytest benchmarks/bench_compiled_models.py --benchmark-disable     # smoke test
"""
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from fastcalc import fit_batch, models
from fastcalc.cli import _workloads as wl

numba = pytest.importorskip("numba", reason="the reference is written in numba")
sys.path.insert(0, str(Path(__file__).parent))
import numba_lm  # noqa: E402

N = 20_000
TOL = 1e-12                 # fastcalc's default ftol, xtol, gtol


@pytest.fixture(scope="module", params=["exponential", "gaussian", "gaussian_2d"])
def case(request):
    name = request.param
    p = wl.gaussian_2d_problem(N) if name == "gaussian_2d" else wl.peak_fit_problem(name, N)
    x2 = np.atleast_2d(p.x)
    fitter = numba_lm.make_fitter(name)
    maxiter = 200 * (p.p0.shape[1] + 1)
    fitter(x2, p.Y[:2], p.sigma, p.p0[:2], maxiter, TOL, TOL, TOL)      # compile
    model = models.compiled(numba_lm.cfunc_model(name), p.param_names, x_dim=x2.shape[0])
    numba.set_num_threads(1)
    return name, p, x2, fitter, maxiter, model


def _record(benchmark, result):
    benchmark.extra_info["fits_per_s"] = N / benchmark.stats.stats.min if benchmark.stats else None
    return result


@pytest.mark.benchmark(group="compiled models", timer=time.process_time)
def test_builtin_model(benchmark, case):
    name, p, *_ = case
    r = benchmark(fit_batch, models.get_model(name), p.x, p.Y, p.p0, sigma=p.sigma,
                  absolute_sigma=True, n_threads=1)
    assert np.mean(r.status == 0) > 0.99
    _record(benchmark, r)


@pytest.mark.benchmark(group="compiled models", timer=time.process_time)
def test_numba_cfunc_model_with_jacobian(benchmark, case):
    name, p, _, _, _, model = case
    r = benchmark(fit_batch, model, p.x, p.Y, p.p0, sigma=p.sigma, absolute_sigma=True,
                  n_threads=1)
    builtin = fit_batch(models.get_model(name), p.x, p.Y, p.p0, sigma=p.sigma,
                        absolute_sigma=True, n_threads=1)
    np.testing.assert_allclose(r.params, builtin.params, rtol=1e-9, atol=1e-12)
    _record(benchmark, r)


@pytest.mark.benchmark(group="compiled models", timer=time.process_time)
def test_numba_prange_lm(benchmark, case):
    name, p, x2, fitter, maxiter, _ = case
    params, cov, chi2, nit, status = benchmark(fitter, x2, p.Y, p.sigma, p.p0, maxiter, TOL,
                                               TOL, TOL)
    builtin = fit_batch(models.get_model(name), p.x, p.Y, p.p0, sigma=p.sigma,
                        absolute_sigma=True, n_threads=1)
    # the same minima (to well within the statistical errors) and covariances
    assert np.max(np.abs(params - builtin.params) / builtin.stderr) < 1e-3
    np.testing.assert_allclose(np.sqrt(np.diagonal(cov, axis1=1, axis2=2)), builtin.stderr,
                               rtol=1e-3)
    _record(benchmark, params)
