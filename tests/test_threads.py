"""Thread counts: the process-wide controls, and routines called from several Python threads.

Each routine called concurrently from 8 threads must give bitwise what a serial call gives
(kernels keep no state between calls; every thread starts its own OpenMP team).
"""
import os
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import fastcalc
from fastcalc import models
from fastcalc._parallel import HAVE_OPENMP, n_threads_for
from fastcalc._testfunctions import low_level
from fastcalc._threads import run_on_threads

needs_openmp = pytest.mark.skipif(not HAVE_OPENMP, reason="without OpenMP every count is 1")


@pytest.fixture
def process_setting():
    """Restores the process-wide setting after the test."""
    previous = fastcalc.set_num_threads(None)
    yield
    fastcalc.set_num_threads(previous)


# ---------------------------------------------------------------- controls

@needs_openmp
def test_precedence_explicit_block_process_openmp(process_setting):
    default = fastcalc.get_num_threads()
    assert fastcalc.set_num_threads(3) is None
    assert fastcalc.get_num_threads() == n_threads_for(None) == n_threads_for(-1) == 3
    with fastcalc.num_threads(2):
        assert fastcalc.get_num_threads() == 2
        assert n_threads_for(1) == 1                    # explicit n_threads first
        with fastcalc.num_threads(None):                # back to the process-wide setting
            assert fastcalc.get_num_threads() == 3
        assert fastcalc.get_num_threads() == 2
    assert fastcalc.get_num_threads() == 3
    assert fastcalc.set_num_threads(-1) == 3
    assert fastcalc.get_num_threads() == default


@needs_openmp
def test_a_block_concerns_its_own_thread_only(process_setting):
    fastcalc.set_num_threads(3)
    inside, seen = threading.Event(), []

    def other():
        inside.wait()
        seen.append(fastcalc.get_num_threads())

    thread = threading.Thread(target=other)
    thread.start()
    with fastcalc.num_threads(1):
        inside.set()
        thread.join()
        assert fastcalc.get_num_threads() == 1
    assert seen == [3]


def test_thread_pieces_run_kernels_on_one_thread():
    """run_on_threads is the parallelism: kernels inside its pieces get one thread each."""
    seen = []
    run_on_threads(lambda item: seen.append(fastcalc.get_num_threads()), range(4), workers=2)
    assert seen == [1] * 4
    with fastcalc.num_threads(2):                       # one worker: the caller's own setting
        run_on_threads(lambda item: seen.append(fastcalc.get_num_threads()), [0], workers=2)
    assert seen[-1] == (2 if HAVE_OPENMP else 1)


@pytest.mark.parametrize("bad, error", [(0, ValueError), (-2, ValueError), (1.5, TypeError),
                                        (True, TypeError), ("2", TypeError)])
def test_bad_settings_name_the_argument(bad, error, process_setting):
    with pytest.raises(error, match="n must be"):
        fastcalc.set_num_threads(bad)
    with pytest.raises(error, match="n must be"):
        with fastcalc.num_threads(bad):
            pass
    assert fastcalc.set_num_threads(None) is None       # nothing was set


@needs_openmp
def test_threadpoolctl_limits_apply(process_setting):
    threadpoolctl = pytest.importorskip("threadpoolctl", reason="in the test extra")
    default = fastcalc.get_num_threads()
    with threadpoolctl.threadpool_limits(1):
        assert fastcalc.get_num_threads() == n_threads_for(None) == 1
        with fastcalc.num_threads(2):                   # fastcalc's own setting first
            assert fastcalc.get_num_threads() == 2
    with threadpoolctl.threadpool_limits(1, user_api="openmp"):
        assert fastcalc.get_num_threads() == 1
    assert fastcalc.get_num_threads() == default


@needs_openmp
def test_omp_num_threads_applies():
    code = "import fastcalc; print(fastcalc.get_num_threads())"
    env = dict(os.environ, OMP_NUM_THREADS="3")
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=120)
    assert run.stdout.strip() == "3", run.stderr


# ---------------------------------------------------------------- 8 concurrent threads

X = np.linspace(-3.0, 3.0, 32)
WIDTH = np.linspace(0.5, 1.5, 24)[:, None]
Y = 2.0 * np.exp(-0.5 * ((X - 0.2) / WIDTH) ** 2) + 0.3 + 0.01 * np.sin(7.0 * X + WIDTH)
A = np.linspace(1.0, 8.0, 4096)
SYSTEMS = np.column_stack([np.linspace(0.5, 1.5, 64), np.linspace(-1.5, -0.5, 64)])


def python_gaussian(x, A, mu, s, c):
    return A * np.exp(-0.5 * ((x - mu) / s) ** 2) + c


def circle_exp_columns(X):
    return np.stack([X[0] ** 2 + X[1] ** 2 - 4.0, np.exp(X[0]) + X[1] - 1.0])


def fit_fields(r):
    return r.params, r.cov, r.chi2, r.nfev, r.status


def root_fields(r):
    return r.x, r.fun, r.nit, r.nfev, r.status


# Built-in, compiled and Python functions; the compiled gradient, Hessian, batch Newton and
# built-in/compiled fit_batch are large enough to start OpenMP teams.
CALLS = {
    "derivative": lambda: fastcalc.derivative(np.sin, np.linspace(0, 3, 200), method="richardson",
                                              full_output=True).df,
    "gradient compiled": lambda: fastcalc.gradient(low_level("rosenbrock"), np.linspace(-1, 1, 1500)),
    "gradient python": lambda: fastcalc.gradient(lambda x: np.sum(np.cos(x) * x ** 2),
                                                 np.linspace(-1, 1, 20)),
    "jacobian compiled": lambda: fastcalc.jacobian(low_level("vector_field"),
                                                   np.linspace(-1, 1, 40), n_out=40),
    "jacobian python": lambda: fastcalc.jacobian(lambda x: np.sin(x) * x[::-1],
                                                 np.linspace(-1, 1, 20)),
    "hessian compiled": lambda: fastcalc.hessian(low_level("rosenbrock"), np.linspace(-1, 1, 150)),
    "hessian python": lambda: fastcalc.hessian(lambda x: np.sum(np.exp(x) * x[::-1]),
                                               np.linspace(-1, 1, 8)),
    "newton compiled": lambda: root_fields(fastcalc.newton(
        low_level("cube_root_eq"), np.full(A.size, 2.0), args=(A,), full_output=True)),
    "newton python": lambda: root_fields(fastcalc.newton(
        lambda x, a: x ** 3 - a, np.full(A.size, 2.0), lambda x, a: 3 * x ** 2, args=(A,),
        full_output=True)),
    "newton_system compiled": lambda: root_fields(fastcalc.newton_system(
        low_level("circle_exp_system"), SYSTEMS)),
    "newton_system python": lambda: root_fields(fastcalc.newton_system(
        circle_exp_columns, SYSTEMS, vectorized=True)),
    "fit built-in": lambda: fit_fields(fastcalc.fit(models.gaussian, X, Y[3])),
    "fit python": lambda: fit_fields(fastcalc.fit(python_gaussian, X, Y[3], p0=[2, 0, 1, 0])),
    "fit_batch built-in": lambda: fit_fields(fastcalc.fit_batch(models.gaussian, X, Y)),
    "fit_batch compiled": lambda: fit_fields(fastcalc.fit_batch(
        low_level("gaussian_model"), X, Y, p0=[2.0, 0.0, 1.0, 0.0])),
    "fit_batch python": lambda: fit_fields(fastcalc.fit_batch(
        python_gaussian, X, Y, p0=[2.0, 0.0, 1.0, 0.0])),
}


def as_bytes(value):
    values = value if isinstance(value, tuple) else (value,)
    return [(np.asarray(v).dtype, np.asarray(v).shape, np.asarray(v).tobytes()) for v in values]


def test_eight_threads_give_the_serial_results():
    names = list(CALLS)
    serial = {name: as_bytes(CALLS[name]()) for name in names}
    start = threading.Barrier(8)

    def worker(k):
        start.wait()
        # each thread takes the routines in its own order, so different ones overlap
        order = names[k:] + names[:k]
        return {name: as_bytes(CALLS[name]()) for name in order}

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(worker, range(8)))
    for k, result in enumerate(results):
        for name in names:
            assert result[name] == serial[name], f"thread {k}: {name} differs from the serial call"
