"""Resources: no memory growth over 10^4 calls, and thread-safe, deterministic concurrency.

Memory is measured three ways after a warm-up: ``tracemalloc`` over 300 calls (Python-level
allocations, NumPy's data buffers included), then over 10^4 calls glibc's
``mallinfo2().uordblks`` (bytes currently malloc'ed, which also sees C scratch a Cython kernel
forgets to free) and the process RSS. A leak of 100 bytes per call exceeds the bounds.
Concurrency: several Python threads call each routine on different inputs at the same time
(Python, vectorized and compiled callables, built-in models); every result must be bitwise the
one of a serial call.
"""
import ctypes
import gc
import os
import threading
import time
import tracemalloc
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import fastcalc as fc
from fastcalc import models
from fastcalc._testfunctions import low_level

REPEATS = 10_000
WARMUP = 100
TRACED_CALLS = 300
TRACED_GROWTH = 16 * 1024         # bytes over TRACED_CALLS calls: ~55 bytes per call
MALLOC_GROWTH = 512 * 1024        # bytes over REPEATS calls: ~50 bytes per call
RSS_GROWTH = 8 * 1024 * 1024

X = np.linspace(0, 4, 12)
Y = 2.0 * np.exp(-X / 1.5) + 0.5 + 0.01 * np.sin(7 * X)
ROSENBROCK = low_level("rosenbrock")
VECTOR_FIELD = low_level("vector_field")
CUBE_ROOT, CUBE_ROOT_PRIME = low_level("cube_root_eq"), low_level("cube_root_eq_prime")
CIRCLE_EXP, CIRCLE_EXP_JAC = low_level("circle_exp_system"), low_level("circle_exp_jacobian")
GAUSS_MODEL = low_level("gaussian_model")


def _circle_exp(v):
    return np.array([v[0] ** 2 + v[1] ** 2 - 4.0, np.exp(v[0]) + v[1] - 1.0])


def _gauss(x, a, mu, s, c):
    return a * np.exp(-(x - mu) ** 2 / (2 * s ** 2)) + c


# name -> call(i): a small problem; i varies the input (for the concurrency test).
CALLS = {
    "derivative": lambda i: fc.derivative(np.sin, X[:3] + i, accuracy=4),
    "derivative_richardson": lambda i: fc.derivative(np.exp, 0.1 * i, order=2,
                                                     method="richardson"),
    "gradient_compiled": lambda i: fc.gradient(ROSENBROCK, [1.0 + 0.1 * i, 2.0, 0.5]),
    "gradient_python": lambda i: fc.gradient(lambda v: v[0] * np.sin(v[1]), [1.0, 0.1 * i],
                                             full_output=True),
    "jacobian_compiled": lambda i: fc.jacobian(VECTOR_FIELD, [1.0, 0.1 * i, 0.3]),
    "jacobian_vectorized": lambda i: fc.jacobian(lambda V: np.stack([V[0] * V[1], V[1] ** 2]),
                                                 [1.0, 0.1 * i], vectorized=True),
    "hessian_compiled": lambda i: fc.hessian(ROSENBROCK, [1.0, 2.0 + 0.1 * i], accuracy=4),
    "check_grad": lambda i: fc.check_grad(lambda v: v[0] * v[1],
                                          lambda v: np.array([v[1], v[0]]), [1.0, 2.0 + i]),
    "taylor": lambda i: fc.taylor(np.exp, 0.1 * i, 2),
    "newton_scalar": lambda i: fc.newton(lambda t: t * t - 2.0 - i, 1.0, lambda t: 2 * t),
    "newton_batch_python": lambda i: fc.newton(lambda t, a: t ** 3 - a, np.full(4, 2.0),
                                               lambda t, a: 3 * t * t,
                                               args=(np.arange(1.0, 5.0) + i,)),
    # n_threads=1: with the default (all cores) each tiny call opens an OpenMP region, which
    # costs 0.3-4 ms per call on a loaded machine instead of ~0.04 ms (see _THREADED_CALLS).
    "newton_batch_compiled": lambda i: fc.newton(CUBE_ROOT, np.full(4, 2.0), CUBE_ROOT_PRIME,
                                                 args=(np.arange(1.0, 5.0) + i,),
                                                 full_output=True, n_threads=1),
    "newton_system_compiled": lambda i: fc.newton_system(CIRCLE_EXP, [1.0, -1.5 - 0.01 * i],
                                                         CIRCLE_EXP_JAC, n_threads=1),
    "newton_system_python": lambda i: fc.newton_system(_circle_exp, [1.0, -1.5 - 0.01 * i]),
    "gradient_descent": lambda i: fc.gradient_descent(lambda v: float(v @ v), [1.0, 2.0 + i],
                                                      lambda v: 2 * v),
    "lagrange": lambda i: fc.lagrange(lambda v: v[0] + v[1], lambda v: v[0] ** 2 + v[1] ** 2 - 1,
                                      [1.0, 0.5 + 0.01 * i], grad=lambda v: np.ones(2),
                                      constraints_jac=lambda v: 2 * v[None, :]),
    "chi2": lambda i: fc.chi2(Y, Y + 0.1 * i),
    "linear_fit": lambda i: fc.linear_fit(X, Y + i),
    "polyfit": lambda i: fc.polyfit(X, Y + i, 2),
    "fit_builtin": lambda i: fc.fit(models.exponential, X, Y + i),
    "fit_python": lambda i: fc.fit(lambda x, a, tau, c: a * np.exp(-x / tau) + c, X, Y + i,
                                   p0=[1.0, 1.0, 0.0]),
    "fit_compiled": lambda i: fc.fit(GAUSS_MODEL, X, _gauss(X, 3.0, 2.0 + 0.01 * i, 0.7, 0.2),
                                     p0=[2.0, 2.2, 0.8, 0.0]),
    "fit_batch_builtin": lambda i: fc.fit_batch(models.exponential, X, np.stack([Y, Y + i])),
    "fit_batch_python": lambda i: fc.fit_batch(lambda x, a, tau, c: a * np.exp(-x / tau) + c, X,
                                               np.stack([Y, Y + i]), p0=[1.0, 1.0, 0.0]),
    "model_call": lambda i: models.exponential(X, 2.0, 1.5 + i, 0.5),
    "model_jacobian": lambda i: models.exponential.jacobian(X, 2.0, 1.5 + i, 0.5),
    "model_guess": lambda i: models.exponential.guess(X, Y + i),
}


def _sleepy_domain(x):
    time.sleep(0.002)
    x = np.asarray(x, dtype=float)
    return np.where(x >= 1.0, x * x * x, np.nan)


# The compiled batch paths with their default thread count, and calls whose input SHAPE
# changes with i (state kept between calls, e.g. on a module or function object, would mix
# shapes across threads), for the concurrency test only.
_THREADED_CALLS = {
    "derivative_shapes": lambda i: fc.derivative(np.sin, np.linspace(0, 1, (i % 4 + 1) * 3)
                                                 .reshape(i % 4 + 1, 3), accuracy=4),
    # f sleeps (releases the GIL) and forces a one-sided second stage: another thread runs
    # between the two stages of one call.
    "derivative_fallback_shapes": lambda i: fc.derivative(
        _sleepy_domain, np.linspace(1.0, 2.0, (i % 4 + 1) * 2).reshape(i % 4 + 1, 2)),
    "gradient_shapes": lambda i: fc.gradient(lambda v: float(np.sum(np.sin(v))),
                                             np.linspace(0, 1, i % 5 + 1)),
    "hessian_shapes": lambda i: fc.hessian(ROSENBROCK, np.linspace(0, 1, i % 4 + 2)),
    "newton_batch_shapes": lambda i: fc.newton(lambda t: t ** 3 - 2.0, np.full(i % 5 + 1, 1.5),
                                               full_output=True),
    "fit_batch_shapes": lambda i: fc.fit_batch(models.exponential, X, np.tile(Y, (i % 4 + 1, 1))
                                               + 0.01 * i),
    "newton_batch_compiled_threads": lambda i: fc.newton(
        CUBE_ROOT, np.full(300, 2.0), CUBE_ROOT_PRIME, args=(np.linspace(1, 50, 300) + i,),
        full_output=True),
    "newton_system_compiled_threads": lambda i: fc.newton_system(
        CIRCLE_EXP, np.column_stack([np.ones(50), np.linspace(-1.5, -1.0, 50) - 0.01 * i]),
        CIRCLE_EXP_JAC),
    "gradient_compiled_threads": lambda i: fc.gradient(ROSENBROCK, np.linspace(0, 1, 40) + i,
                                                       n_threads=2),
    "fit_batch_compiled_threads": lambda i: fc.fit_batch(
        GAUSS_MODEL, X, _gauss(X, 3.0, 2.0, 0.7, 0.2) + np.linspace(0, 0.1, 30)[:, None] * i,
        p0=[2.0, 2.2, 0.8, 0.0]),
}


def _arrays(result):
    if isinstance(result, dict):
        return [np.asarray(result[k]) for k in sorted(result)
                if np.asarray(result[k]).dtype != object]
    if hasattr(result, "params"):
        return [np.asarray(getattr(result, k)) for k in ("params", "cov", "chi2", "status",
                                                         "nit", "nfev")]
    if hasattr(result, "coef"):
        return [result.coef]
    return [np.asarray(result)]


def _identical(a, b):
    return all(np.array_equal(u, v, equal_nan=u.dtype.kind in "fc")
               for u, v in zip(_arrays(a), _arrays(b), strict=True))


# ------------------------------------------------------------------------------- memory
class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]


def _malloc_in_use():
    """Bytes currently allocated by glibc malloc (None where mallinfo2 is unavailable)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallinfo2.restype = _MallInfo2
    except (OSError, AttributeError):
        return None
    info = libc.mallinfo2()
    return info.uordblks + info.hblkhd


def _rss():
    try:
        with open(f"/proc/{os.getpid()}/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return None


# Python-heavy routines costing ~1 ms or more per call run fewer repeats (file budget < 60 s);
# their malloc/RSS bounds are scaled so the bytes-per-call sensitivity stays the same.
SLOW_REPEATS = {"lagrange": 1_000, "newton_system_python": 2_000, "fit_batch_python": 3_000,
                "fit_python": 3_000, "taylor": 3_000, "check_grad": 3_000}


@pytest.mark.parametrize("name", sorted(CALLS))
def test_repeated_calls_do_not_grow_memory(name):
    call = CALLS[name]
    repeats = SLOW_REPEATS.get(name, REPEATS)
    scale = repeats / REPEATS
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(WARMUP):
            call(1)
        gc.collect()
        # Python-level allocations over TRACED_CALLS calls (tracemalloc slows calls down).
        tracemalloc.start()
        try:
            for _ in range(50):
                call(1)
            gc.collect()
            traced0 = tracemalloc.get_traced_memory()[0]
            for _ in range(TRACED_CALLS):
                call(1)
            gc.collect()
            traced1 = tracemalloc.get_traced_memory()[0]
        finally:
            tracemalloc.stop()
        gc.collect()
        rss0, malloc0 = _rss(), _malloc_in_use()
        for _ in range(repeats):
            call(1)
        gc.collect()
        rss1, malloc1 = _rss(), _malloc_in_use()
    assert traced1 - traced0 < TRACED_GROWTH, \
        f"traced memory grew {traced1 - traced0} bytes over {TRACED_CALLS} calls"
    if malloc0 is not None:
        assert malloc1 - malloc0 < MALLOC_GROWTH * scale, \
            f"malloc'ed bytes grew {malloc1 - malloc0} over {repeats} calls"
    if rss0 is not None:
        assert rss1 - rss0 < RSS_GROWTH * scale, f"RSS grew {rss1 - rss0} over {repeats} calls"


def test_memory_bounds_detect_a_leak():
    """The three measures see a leak of 200 bytes per call (so the test above can fail)."""
    kept = []
    gc.collect()
    rss0, malloc0 = _rss(), _malloc_in_use()
    tracemalloc.start()
    traced0 = tracemalloc.get_traced_memory()[0]
    for _ in range(TRACED_CALLS):
        kept.append(np.empty(25))                    # 200 bytes of data + the array object
    traced1 = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    assert traced1 - traced0 > TRACED_GROWTH
    for _ in range(REPEATS):
        kept.append(np.empty(25))
    if malloc0 is not None:
        assert _malloc_in_use() - malloc0 > MALLOC_GROWTH
    assert rss0 is None or _rss() >= rss0


# --------------------------------------------------------------------------- concurrency
N_TASKS = 12
N_WORKERS = 4


@pytest.mark.parametrize("name", sorted(CALLS) + sorted(_THREADED_CALLS))
def test_concurrent_calls_equal_serial_calls(name):
    call = CALLS[name] if name in CALLS else _THREADED_CALLS[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        serial = [call(i) for i in range(N_TASKS)]
        start = threading.Barrier(N_WORKERS)

        def task(i):
            if i < N_WORKERS:
                start.wait(timeout=30)               # maximise overlap of the first calls
            return [call(i) for _ in range(3)]
        with ThreadPoolExecutor(N_WORKERS) as pool:
            concurrent = list(pool.map(task, range(N_TASKS)))
    for i, results in enumerate(concurrent):
        for result in results:
            assert _identical(result, serial[i]), f"{name}: task {i} differs from serial"


@pytest.mark.parametrize("n_threads", [1, 2, 3])
def test_batch_results_do_not_depend_on_thread_count(n_threads):
    rng = np.random.default_rng(7)
    Ybatch = 3.0 * np.exp(-X / 1.2) + 0.4 + rng.normal(0, 0.01, (64, X.size))
    a = rng.uniform(1, 100, 257)
    reference = (fc.fit_batch(models.exponential, X, Ybatch, n_threads=1),
                 fc.newton(CUBE_ROOT, np.full(257, 3.0), CUBE_ROOT_PRIME, args=(a,),
                           full_output=True, n_threads=1))
    got = (fc.fit_batch(models.exponential, X, Ybatch, n_threads=n_threads),
           fc.newton(CUBE_ROOT, np.full(257, 3.0), CUBE_ROOT_PRIME, args=(a,),
                     full_output=True, n_threads=n_threads))
    assert _identical(got[0], reference[0]) and _identical(got[1], reference[1])
