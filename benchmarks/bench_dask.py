"""Gaussian fits (64 points each) through fastcalc.dask vs the in-memory fit_batch (and SciPy);
batch Newton through fastcalc.dask vs the in-memory newton.

Sizes: a smoke run by default (CI, ``--benchmark-disable``); ``FASTCALC_BENCH_FULL=1`` runs the
real thing, 1e6 fits and 4e6 equations::

    FASTCALC_BENCH_FULL=1 python -m pytest benchmarks/bench_dask.py --benchmark-only

Compared, on the same data: in-memory ``fastcalc.fit_batch`` on every core; the Dask threaded
scheduler with 1 and 2 workers (1 -> 2 shows the kernels release the GIL) and several chunk sizes;
each chunk on one kernel thread (the default) vs on every core; a 2-worker ``distributed``
LocalCluster (the same data, generated on the workers beforehand: ``compute()`` of the whole
result, and of ``params`` alone); and SciPy's ``curve_fit`` looped over a subset, per fit.
Batch Newton (compiled cube-root equations): in-memory on every core vs the threaded scheduler
with several chunk sizes.
"""
import os
import time

import numpy as np
import pytest

da = pytest.importorskip("dask.array",
                         reason="fastcalc.dask needs dask (pip install fastcalc[dask])")
distributed = pytest.importorskip("distributed", reason="the cluster benchmark needs distributed")

import fastcalc  # noqa: E402
import fastcalc.dask as fdask  # noqa: E402
from fastcalc.models import gaussian  # noqa: E402

FULL = os.environ.get("FASTCALC_BENCH_FULL") == "1"
N_FITS = 1_000_000 if FULL else 4_000
N_POINTS = 64
CHUNK = 100_000 if FULL else 500
CHUNK_SWEEP = (2_000, 20_000, 50_000, 250_000) if FULL else (250, 1_000)
N_SCIPY = 500 if FULL else 20
ROUNDS = 1


def lazy_spectra():
    """The benchmark data as a Dask array, generated chunk by chunk where it is computed (the
    same values on any scheduler): noisy Gaussian peaks on a constant background."""
    rng = da.random.default_rng(7)
    x = np.linspace(-4.0, 4.0, N_POINTS)
    column = dict(size=(N_FITS, 1), chunks=(CHUNK, 1))
    amplitude = rng.uniform(1.0, 5.0, **column)
    centre = rng.uniform(-1.0, 1.0, **column)
    width = rng.uniform(0.5, 1.5, **column)
    noise = rng.normal(0.0, 0.05, size=(N_FITS, N_POINTS), chunks=(CHUNK, N_POINTS))
    return x, amplitude * da.exp(-(x - centre) ** 2 / (2 * width ** 2)) + 0.2 + noise


@pytest.fixture(scope="module")
def spectra():
    x, Y = lazy_spectra()
    return x, Y.compute()


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=None)
    with distributed.Client(cluster) as dask_client:
        # warm the workers up (imports) outside the timings
        x = np.linspace(-1.0, 1.0, 8)
        fdask.fit_batch(gaussian, x, da.ones((4, 8), chunks=2) * gaussian(x, 1, 0, 1, 0)).compute()
        yield dask_client
    cluster.close()


def record(benchmark, fits):
    benchmark.extra_info["fits"] = fits
    if benchmark.stats is not None:       # None under --benchmark-disable
        benchmark.extra_info["fits_per_s"] = round(fits / benchmark.stats.stats.min)


def workers_cpu_seconds(client):
    return sum(client.run(time.process_time).values()) if client is not None else 0.0


def run(benchmark, function, *args, client=None, **kwargs):
    """Time ``function`` once per round; also record the CPU seconds it used (this process
    and, on a cluster, its workers), a figure that other load on the machine barely changes."""
    cpu_seconds = []

    def timed():
        start = time.process_time() + workers_cpu_seconds(client)
        out = function(*args, **kwargs)
        cpu_seconds.append(time.process_time() + workers_cpu_seconds(client) - start)
        return out

    result = benchmark.pedantic(timed, rounds=ROUNDS, iterations=1, warmup_rounds=0)
    benchmark.extra_info["cpu_s"] = round(min(cpu_seconds), 3)
    return result


def test_in_memory_fit_batch(benchmark, spectra):
    benchmark.group = "fit 64-point gaussians"
    x, Y = spectra
    result = run(benchmark, fastcalc.fit_batch, gaussian, x, Y)
    assert np.mean(result.success) > 0.99
    record(benchmark, N_FITS)


@pytest.mark.parametrize("workers", [1, 2])
def test_dask_threaded(benchmark, spectra, workers):
    benchmark.group = "fit 64-point gaussians"
    x, Y = spectra
    lazy = fdask.fit_batch(gaussian, x, da.from_array(Y, chunks=(CHUNK, N_POINTS)))
    result = run(benchmark, lazy.compute, scheduler="threads", num_workers=workers)
    assert np.mean(result.success) > 0.99
    record(benchmark, N_FITS)


def test_dask_threaded_every_core_per_chunk(benchmark, spectra):
    benchmark.group = "fit 64-point gaussians"
    x, Y = spectra
    lazy = fdask.fit_batch(gaussian, x, da.from_array(Y, chunks=(CHUNK, N_POINTS)), n_threads=None)
    run(benchmark, lazy.compute, scheduler="threads", num_workers=2)
    record(benchmark, N_FITS)


@pytest.mark.parametrize("chunk", CHUNK_SWEEP)
def test_dask_threaded_chunk_size(benchmark, spectra, chunk):
    benchmark.group = "chunk size (threads, 2 workers)"
    x, Y = spectra
    lazy = fdask.fit_batch(gaussian, x, da.from_array(Y, chunks=(chunk, N_POINTS)))
    run(benchmark, lazy.params.compute, scheduler="threads", num_workers=2)
    record(benchmark, N_FITS)


@pytest.mark.parametrize("what", ["whole result", "params only"])
def test_dask_local_cluster(benchmark, spectra, client, what):
    benchmark.group = "fit 64-point gaussians"
    x, _ = spectra
    on_workers = client.persist(lazy_spectra()[1])     # generated on the workers
    distributed.wait(on_workers)
    lazy = fdask.fit_batch(gaussian, x, on_workers)
    if what == "whole result":
        result = run(benchmark, lazy.compute, client=client)
        assert np.mean(result.success) > 0.99
    else:
        params = run(benchmark, lazy.params.compute, client=client)
        assert params.shape == (N_FITS, 4)
    record(benchmark, N_FITS)


def test_scipy_curve_fit_loop(benchmark, spectra):
    benchmark.group = "fit 64-point gaussians"
    from scipy.optimize import curve_fit
    x, Y = spectra
    p0 = np.array([gaussian.guess(x, y) for y in Y[:N_SCIPY]])

    def fit_each():
        return [curve_fit(gaussian, x, Y[k], p0=p0[k], jac=gaussian.jacobian)[0]
                for k in range(N_SCIPY)]

    run(benchmark, fit_each)
    record(benchmark, N_SCIPY)


N_EQUATIONS = 4_000_000 if FULL else 100_000
NEWTON_CHUNK_SWEEP = (10_000, 100_000, 500_000, 2_000_000) if FULL else (10_000, 50_000)


@pytest.fixture(scope="module")
def cube_roots():
    from fastcalc._testfunctions import low_level
    c = np.random.default_rng(3).uniform(0.5, 20.0, N_EQUATIONS)
    return low_level("cube_root_eq"), low_level("cube_root_eq_prime"), c


def test_in_memory_newton(benchmark, cube_roots):
    benchmark.group = "newton: cube roots (compiled)"
    f, fprime, c = cube_roots
    result = run(benchmark, fastcalc.newton, f, np.full(c.size, 2.0), fprime, args=(c,),
                 full_output=True)
    assert result.converged.all()
    benchmark.extra_info["equations"] = N_EQUATIONS


@pytest.mark.parametrize("chunk", NEWTON_CHUNK_SWEEP)
def test_dask_newton_chunk_size(benchmark, cube_roots, chunk):
    benchmark.group = "newton: cube roots (compiled)"
    f, fprime, c = cube_roots
    lazy = fdask.newton(f, da.full(c.size, 2.0, chunks=chunk), fprime,
                        args=(da.from_array(c, chunks=chunk),))
    x = run(benchmark, lazy.x.compute, scheduler="threads", num_workers=2)
    np.testing.assert_allclose(x, np.cbrt(c), rtol=1e-12)
    benchmark.extra_info["equations"] = N_EQUATIONS
