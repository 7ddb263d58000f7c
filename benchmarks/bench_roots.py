"""Newton-Raphson at scale: fastcalc vs SciPy in the same run.

* 1e6 equations x^3 - a_i = 0 with the analytic derivative: ``scipy.optimize.newton`` with an
  array ``x0``, a plain NumPy Newton loop, fastcalc with the same vectorized Python functions,
  and fastcalc with compiled functions (all threads, and one thread). Two workloads: "wide"
  (a_i uniform in [0, 1000], start 1: 2 to 15 steps, SciPy iterates all until the slowest is
  done) and "narrow" (a_i uniform in [1, 10], start 1.5: 2 to 6 steps).
* 1e5 independent 2-D systems (x^2 + y^2 = 4, e^x + y = 1) in one ``newton_system`` call
  (compiled F, vectorized Python F; analytic and finite-difference Jacobians) vs a loop of
  ``scipy.optimize.root(method="hybr")`` on 200 of them.

``extra_info["ns_per_item"]`` / ``["us_per_system"]`` hold the per-equation / per-system times
(mean over rounds); ``["max_error"]`` the accuracy against the exact roots.

Run: ``python -m pytest benchmarks/bench_roots.py --benchmark-only``
(``--benchmark-disable`` runs each case once as a smoke test).
"""
import numpy as np
import pytest
import scipy.optimize as so

from fastcalc import newton, newton_system
from fastcalc._testfunctions import low_level
from fastcalc.cli._workloads import circle_exp_problem

N_EQUATIONS = 1_000_000
N_SYSTEMS = 100_000
N_SCIPY_SYSTEMS = 200


def cube(x, a):
    return x**3 - a


def cube_prime(x, a):
    return 3.0 * x**2


@pytest.fixture(scope="module", params=["wide", "narrow"])
def cube_roots(request):
    rng = np.random.default_rng(1)
    if request.param == "wide":
        a = rng.uniform(0.0, 1000.0, N_EQUATIONS)
        x0 = np.ones(N_EQUATIONS)
    else:
        a = rng.uniform(1.0, 10.0, N_EQUATIONS)
        x0 = np.full(N_EQUATIONS, 1.5)
    return request.param, a, x0, np.cbrt(a)


def plain_numpy_newton(a, x0, tol=1.48e-8, maxiter=50):
    x = x0.copy()
    for _ in range(maxiter):
        step = cube(x, a) / cube_prime(x, a)
        x -= step
        if np.all(np.abs(step) <= tol):
            break
    return x


def _record(benchmark, result, exact, items, unit="ns_per_item", scale=1e9):
    benchmark.extra_info["max_error"] = float(np.max(np.abs(result - exact)))
    stats = getattr(benchmark, "stats", None)
    if stats is not None and stats.stats.data:
        benchmark.extra_info[unit] = float(np.mean(stats.stats.data)) / items * scale


CUBE_SOLVERS = {
    "scipy_newton_array": lambda a, x0: so.newton(cube, x0, cube_prime, args=(a,)),
    "numpy_plain_loop": plain_numpy_newton,
    "fastcalc_vectorized": lambda a, x0: newton(cube, x0, cube_prime, args=(a,)),
    "fastcalc_compiled": lambda a, x0: newton(low_level("cube_root_eq"), x0,
                                              low_level("cube_root_eq_prime"), args=(a,)),
    "fastcalc_compiled_1thread": lambda a, x0: newton(low_level("cube_root_eq"), x0,
                                                      low_level("cube_root_eq_prime"),
                                                      args=(a,), n_threads=1),
}


@pytest.mark.parametrize("solver", list(CUBE_SOLVERS))
def test_batch_newton_cube_roots(benchmark, cube_roots, solver):
    workload, a, x0, exact = cube_roots
    benchmark.group = f"batch newton 1e6 x^3 - a ({workload})"
    result = benchmark.pedantic(CUBE_SOLVERS[solver], args=(a, x0), rounds=5, iterations=1,
                                warmup_rounds=1)
    _record(benchmark, result, exact, N_EQUATIONS)
    assert np.max(np.abs(result - exact)) < 1e-11


# ------------------------------------------------------------------- 2-D systems

# The system of fastcalc.cli._workloads (and of the compiled circle_exp_system), shared with
# `python -m fastcalc bench`: its F and jac take one point (2,) or columns of points (2, k).
_SYSTEM = circle_exp_problem(1)
circle_exp = circle_exp_columns = _SYSTEM.F
circle_exp_jac = circle_exp_jac_columns = _SYSTEM.jac


@pytest.fixture(scope="module")
def system_starts():
    rng = np.random.default_rng(2)
    # starts near either root: (1.004, -1.730) and (-1.816, 0.837)
    right = np.array([1.0, -1.7]) + rng.uniform(-0.4, 0.4, (N_SYSTEMS // 2, 2))
    left = np.array([-1.8, 0.8]) + rng.uniform(-0.4, 0.4, (N_SYSTEMS - N_SYSTEMS // 2, 2))
    return np.ascontiguousarray(np.concatenate([right, left]))


SYSTEM_SOLVERS = {
    "fastcalc_compiled_jac": lambda X0: newton_system(
        low_level("circle_exp_system"), X0, low_level("circle_exp_jacobian")),
    "fastcalc_compiled_fd": lambda X0: newton_system(low_level("circle_exp_system"), X0),
    "fastcalc_vectorized_jac": lambda X0: newton_system(
        circle_exp_columns, X0, circle_exp_jac_columns, vectorized=True),
    "fastcalc_vectorized_fd": lambda X0: newton_system(circle_exp_columns, X0, vectorized=True),
}


def _exact_roots(X0):
    # eliminate y = 1 - e^x: one equation in x, solved to full precision by Brent's method
    def on_circle(x):
        return x * x + (1.0 - np.exp(x)) ** 2 - 4.0

    roots = [(x, 1.0 - np.exp(x)) for x in (so.brentq(on_circle, 0.5, 1.5, xtol=1e-16),
                                            so.brentq(on_circle, -2.5, -1.5, xtol=1e-16))]
    return np.where((X0[:, 0] > -0.4)[:, None], roots[0], roots[1])


@pytest.mark.parametrize("solver", list(SYSTEM_SOLVERS))
def test_newton_systems(benchmark, system_starts, solver):
    benchmark.group = "1e5 independent 2-D systems (per-system time in extra_info)"
    result = benchmark.pedantic(SYSTEM_SOLVERS[solver], args=(system_starts,), rounds=3,
                                iterations=1, warmup_rounds=1)
    assert result.converged.all()
    _record(benchmark, result.x, _exact_roots(system_starts), N_SYSTEMS, "us_per_system", 1e6)


@pytest.mark.parametrize("method", ["root_hybr", "fsolve"])
def test_scipy_root_loop(benchmark, system_starts, method):
    benchmark.group = "1e5 independent 2-D systems (per-system time in extra_info)"
    starts = system_starts[:: N_SYSTEMS // N_SCIPY_SYSTEMS][:N_SCIPY_SYSTEMS]

    def loop():
        if method == "fsolve":
            return np.array([so.fsolve(circle_exp, x0, fprime=circle_exp_jac) for x0 in starts])
        return np.array([so.root(circle_exp, x0, jac=circle_exp_jac, method="hybr").x
                         for x0 in starts])

    result = benchmark.pedantic(loop, rounds=3, iterations=1, warmup_rounds=1)
    _record(benchmark, result, _exact_roots(starts), len(starts), "us_per_system", 1e6)


# ------------------------------------------------------------------- block-compiled equations
# newton with a numba block function (f and f' of many elements per call) against the
# per-element compiled path, the whole-array floor (JAX's jitted fixed-iteration loop when jax
# is installed, else NumPy's) and, for thread scaling, a numba prange loop.

from fastcalc.cli import _workloads as wl  # noqa: E402

try:
    CUBE_BLOCK, KEPLER_BLOCK = wl.numba_block_equations()
except ImportError:     # numba is optional
    CUBE_BLOCK = KEPLER_BLOCK = None
needs_numba = pytest.mark.skipif(CUBE_BLOCK is None, reason="numba not installed")
try:
    import jax
    jax.config.update("jax_enable_x64", True)
except ImportError:     # optional reference (pip install jax)
    jax = None


@pytest.fixture(scope="module", params=["cube", "kepler"])
def block_problem(request):
    if request.param == "cube":
        a = np.random.default_rng(5).uniform(0.0, 1000.0, N_EQUATIONS)
        return ("x^3 = a", CUBE_BLOCK, low_level("cube_root_eq"), low_level("cube_root_eq_prime"),
                np.ones(N_EQUATIONS), (a,), wl.cube_and_prime,
                lambda x: np.abs(x - np.cbrt(a)).max())
    k = wl.kepler_problem(N_EQUATIONS)
    return ("Kepler", KEPLER_BLOCK, low_level("kepler_eq"), low_level("kepler_eq_prime"),
            k.x0, (k.e, k.m), wl.kepler_and_prime,
            lambda x: np.abs(wl.kepler_and_prime(x, k.e, k.m)[0]).max())


def _floor(problem):
    """The whole-array floor for this problem: (name, call) with the block solve's max steps."""
    label, block, _, _, x0, args, f_and_prime, _ = problem
    steps = int(newton(block, x0, args=args, full_output=True).nit.max())
    if jax is None:
        return "numpy", lambda: wl.numpy_newton_floor(f_and_prime, x0, args, steps)
    from fastcalc.cli._bench import _jax_floor
    solve = _jax_floor(jax, f_and_prime, steps)
    jargs = [jax.numpy.asarray(v) for v in (x0, *args)]
    return "jax", lambda: np.asarray(solve(*jargs).block_until_ready())


@needs_numba
@pytest.mark.parametrize("solver", ["block_numba", "per_element_compiled", "whole_array_floor"])
def test_block_newton(benchmark, block_problem, solver):
    label, block, f, fprime, x0, args, _, error = block_problem
    benchmark.group = f"newton 1e6 {label}: block f vs per-element f and the whole-array floor"
    if solver == "block_numba":
        call = lambda: newton(block, x0, args=args)     # noqa: E731
    elif solver == "per_element_compiled":
        call = lambda: newton(f, x0, fprime, args=args)     # noqa: E731
    else:
        name, call = _floor(block_problem)
        benchmark.extra_info["floor"] = name
    result = benchmark.pedantic(call, rounds=5, iterations=1, warmup_rounds=1)
    benchmark.extra_info["max_error"] = float(error(result))
    assert error(result) < 1e-11


@needs_numba
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("solver", ["fastcalc_compiled", "fastcalc_block_numba", "numba_prange"])
def test_newton_thread_scaling(benchmark, threads, solver):
    import numba
    p = wl.cube_root_problem(N_EQUATIONS)
    benchmark.group = f"newton 1e6 x^3 = a thread scaling: {solver}"
    if solver == "numba_prange":
        solve = wl.numba_prange_newton()
        numba.set_num_threads(threads)
        call = lambda: solve(p.x0, p.a, 1.48e-8, 50)    # noqa: E731
    elif solver == "fastcalc_block_numba":
        call = lambda: newton(CUBE_BLOCK, p.x0, args=(p.a,), n_threads=threads)   # noqa: E731
    else:
        call = lambda: newton(low_level("cube_root_eq"), p.x0,     # noqa: E731
                              low_level("cube_root_eq_prime"), args=(p.a,), n_threads=threads)
    result = benchmark.pedantic(call, rounds=5, iterations=1, warmup_rounds=1)
    assert np.max(np.abs(result - p.root)) < 1e-11
