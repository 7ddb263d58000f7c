"""``python -m fastcalc bench``: fastcalc and SciPy timed side by side on the headline workloads.

Every row times one workload with fastcalc and with its SciPy (or numdifftools) counterpart in
the same run: the median of a few repeats, the speed-up ratio ``reference / fastcalc``, and the
error of both against the exact answer (or against the reference when nothing is exact).

A SciPy loop over many problems (``root`` per system, ``curve_fit`` per dataset) is timed on a
subset and scaled to the full size; the row's note says so. The problems themselves come from
:mod:`fastcalc.cli._workloads`, shared with the ``benchmarks/`` pytest-benchmark suites.
"""
import argparse
import json
import os
import platform
import statistics
import sys
import time
import warnings
from dataclasses import asdict, dataclass

import numpy as np

from . import _workloads as wl
from ._table import format_number, format_seconds, format_table

__all__ = ["AREAS", "SIZES", "BenchRow", "machine_info", "render_table", "run_areas", "add_parser", "run",
           "write_json", "write_plot"]

# Problem sizes per mode. "tiny" exists for the CLI's own tests (hidden option --sizes tiny).
SIZES = {
    "tiny": dict(repeats=1, derivative_points=1_000, gradient_n=20, python_n=6, hessian_n=10,
                 hessian_ndt_n=10, hessian_scipy_n=6, newton_n=2_000, systems_n=200,
                 systems_subset=20, fit_n=40, fit_subset=10, fit_points=32, g2d_n=40,
                 nist_problems=2, interval_n=20, interval_subset=2, numba_reference=False,
                 sparse_n=2_000, bratu_reference_n=500),
    "quick": dict(repeats=3, derivative_points=100_000, gradient_n=100, python_n=10,
                  hessian_n=100, hessian_ndt_n=100, hessian_scipy_n=20, newton_n=200_000,
                  systems_n=20_000, systems_subset=200, fit_n=10_000, fit_subset=200,
                  fit_points=64, g2d_n=10_000, nist_problems=None, interval_n=2_000,
                  interval_subset=10, numba_reference=True,
                  sparse_n=100_000, bratu_reference_n=10_000),
    "full": dict(repeats=7, derivative_points=1_000_000, gradient_n=100, python_n=10,
                 hessian_n=100, hessian_ndt_n=100, hessian_scipy_n=30, newton_n=1_000_000,
                 systems_n=100_000, systems_subset=1_000, fit_n=100_000, fit_subset=1_000,
                 fit_points=64, g2d_n=100_000, nist_problems=None, interval_n=10_000,
                 interval_subset=20, numba_reference=True,
                 sparse_n=100_000, bratu_reference_n=10_000),
}


@dataclass
class BenchRow:
    """One workload: fastcalc and its reference, timed in the same run."""

    area: str
    workload: str
    size: str
    fastcalc_s: float = None        # median seconds for the whole workload
    reference: str = ""             # what fastcalc is compared with
    reference_s: float = None       # median seconds (scaled from a subset when noted)
    ratio: float = None             # reference_s / fastcalc_s: > 1 means fastcalc is faster
    fastcalc_error: float = None
    reference_error: float = None
    metric: str = ""                # what the two error columns measure
    note: str = ""                  # subset scaling, skipped parts, size differences


class Bench:
    """Times workloads and collects rows, printing progress to stderr."""

    def __init__(self, sizes, stream=sys.stderr, nist_dir=None):
        self.sizes = sizes
        self.nist_dir = nist_dir
        self.repeats = sizes["repeats"]
        self.rows = []
        self.stream = stream
        self._cache = {}

    def progress(self, text):
        print(f"[bench] {text}", file=self.stream, flush=True)

    def time(self, call, clock=None):
        """Return (median seconds per call, result of the last call) of ``call()``.

        The first call warms up. A fast call (< 10 ms) is then timed in batches of calls lasting
        about 20 ms each (like ``timeit``), so microsecond timings are not clock noise; a slow
        one (> 0.5 s) is timed fewer times so that full mode stays within minutes. ``clock``:
        ``time.process_time`` times single-threaded work in CPU time, which other processes on
        a busy machine do not inflate (default: ``time.perf_counter``, wall time).
        """
        clock = clock or time.perf_counter
        start = clock()
        result = call()
        first = clock() - start
        if self.repeats <= 1:
            return first, result
        if first >= 0.5:
            samples = [first]
            for _ in range(max(1, self.repeats // 3) - 1):
                start = clock()
                result = call()
                samples.append(clock() - start)
            return statistics.median(samples), result
        number = max(1, int(0.02 / first)) if first < 0.01 else 1
        samples = []
        for _ in range(self.repeats):
            start = clock()
            for _ in range(number):
                result = call()
            samples.append((clock() - start) / number)
        return statistics.median(samples), result

    def reference(self, key, call, clock=None):
        """Time a reference once per run, even when several rows compare against it."""
        if key not in self._cache:
            self._cache[key] = self.time(call, clock)
        return self._cache[key]

    def add(self, row):
        if row.fastcalc_s and row.reference_s:
            row.ratio = row.reference_s / row.fastcalc_s
        self.rows.append(row)
        if row.fastcalc_s is None:
            self.progress(f"  {row.area}: {row.workload}: {row.note}")
        else:
            self.progress(f"  {row.area}: {row.workload} [{row.size}]: fastcalc "
                          f"{format_seconds(row.fastcalc_s)}, {row.reference} "
                          f"{format_seconds(row.reference_s)}"
                          + (f" (x{row.ratio:.3g})" if row.ratio else ""))

    def skip(self, area, workload, reason):
        self.add(BenchRow(area, workload, "-", note=f"skipped: {reason}"))

    def attempt(self, area, workload, make_row):
        """Add the row ``make_row()`` builds; a failure skips only this workload."""
        self.progress(f"{area}: {workload} ...")
        try:
            row = make_row()
        except Skip as reason:
            self.skip(area, workload, str(reason))
        except ImportError as exc:
            self.skip(area, workload, f"not in this build ({exc})")
        except Exception as exc:   # report and go on: one broken workload must not stop the run
            self.add(BenchRow(area, workload, "-", note=f"FAILED: {type(exc).__name__}: {exc}"))
        else:
            self.add(row)


class Skip(Exception):
    """A workload that cannot run here (optional package, data or routine missing)."""


def _max_rel_error(value, exact):
    value, exact = np.asarray(value, float), np.asarray(exact, float)
    scale = np.maximum(np.abs(exact), 1.0)
    return float(np.max(np.abs(value - exact) / scale))


def _approx_derivative():
    try:
        from scipy.optimize._numdiff import approx_derivative
    except ImportError:  # older SciPy exported it publicly
        from scipy.optimize import approx_derivative
    return approx_derivative


# ----------------------------------------------------------------------------------------------
# Areas. Each adds its rows to the Bench; a routine missing from this build gives a skipped row.

def bench_derivatives(bench):
    s = bench.sizes
    area = "derivatives"
    from scipy import differentiate
    approx_derivative = _approx_derivative()
    metric = "max rel. error vs exact"

    n_points = s["derivative_points"]
    x = np.linspace(-3.0, 3.0, n_points)
    exact = wl.exp_sin_elementwise_derivative(x)

    def elementwise(method):
        def row():
            from fastcalc.differentiate import derivative
            f = wl.exp_sin_elementwise
            t_sp, d_sp = bench.reference(("scipy.derivative", n_points),
                                         lambda: differentiate.derivative(f, x).df)
            t_fc, d_fc = bench.time(lambda: derivative(f, x, method=method))
            return BenchRow(area, f"derivative exp(sin x), {method}", f"{n_points:,} points",
                            t_fc, "scipy.differentiate.derivative", t_sp, None,
                            _max_rel_error(d_fc, exact), _max_rel_error(d_sp, exact), metric)
        bench.attempt(area, f"derivative exp(sin x), {method}", row)

    elementwise("central")
    elementwise("richardson")

    n = s["gradient_n"]
    problem = wl.rosenbrock_problem(n)

    def reference():
        return bench.reference(("approx_derivative", n), lambda: approx_derivative(
            problem.f, problem.x, method="3-point"))

    def gradient_row(label, call):
        def row():
            from fastcalc.differentiate import gradient
            t_sp, g_sp = reference()
            t_fc, g_fc = bench.time(lambda: call(gradient))
            return BenchRow(area, f"gradient rosenbrock, {label}", f"n={n}", t_fc,
                            "approx_derivative 3-point", t_sp, None,
                            _max_rel_error(g_fc, problem.gradient),
                            _max_rel_error(g_sp, problem.gradient), metric)
        bench.attempt(area, f"gradient rosenbrock, {label}", row)

    gradient_row("vectorized f", lambda gradient: gradient(problem.f, problem.x, vectorized=True))
    from fastcalc._testfunctions import low_level
    compiled = low_level(problem.compiled_name)
    gradient_row("compiled f", lambda gradient: gradient(compiled, problem.x))

    def python_gradient():
        from fastcalc.differentiate import gradient
        n = s["python_n"]
        small = wl.rosenbrock_problem(n)
        t_sp, g_sp = bench.time(lambda: approx_derivative(small.f, small.x, method="3-point"))
        t_fc, g_fc = bench.time(lambda: gradient(small.f, small.x))
        return BenchRow(area, "gradient rosenbrock, Python f", f"n={n}", t_fc,
                        "approx_derivative 3-point", t_sp, None,
                        _max_rel_error(g_fc, small.gradient), _max_rel_error(g_sp, small.gradient),
                        metric)

    bench.attempt(area, "gradient rosenbrock, Python f", python_gradient)


def bench_hessian(bench):
    s = bench.sizes
    area = "hessian"
    from fastcalc._testfunctions import low_level
    metric = "max rel. error vs exact"
    n, n_ndt = s["hessian_n"], s["hessian_ndt_n"]
    compiled = low_level("rosenbrock")

    def numdifftools_row(label, call):
        def row():
            from fastcalc.differentiate import hessian
            try:
                import numdifftools
            except ImportError:
                raise Skip("numdifftools not installed") from None
            small = wl.rosenbrock_problem(n_ndt)
            t_ref, h_ref = bench.reference(("numdifftools", n_ndt),
                                           lambda: numdifftools.Hessian(small.f)(small.x))
            t_fc, h_fc = bench.time(lambda: call(hessian, small))
            note = f"numdifftools is slow at n={n}: both timed at n={n_ndt}" if n_ndt != n else ""
            return BenchRow(area, f"hessian rosenbrock, {label}", f"n={n_ndt}", t_fc,
                            "numdifftools.Hessian", t_ref, None,
                            _max_rel_error(h_fc, small.hessian),
                            _max_rel_error(h_ref, small.hessian), metric, note)
        bench.attempt(area, f"hessian rosenbrock, {label}", row)

    numdifftools_row("vectorized f", lambda hessian, p: hessian(p.f, p.x, vectorized=True))
    numdifftools_row("compiled f", lambda hessian, p: hessian(compiled, p.x))
    numdifftools_row("vectorized f, accuracy 4",
                     lambda hessian, p: hessian(p.f, p.x, vectorized=True, accuracy=4))

    def scipy_row():
        from fastcalc.differentiate import hessian
        from scipy import differentiate
        n_sp = s["hessian_scipy_n"]
        small = wl.rosenbrock_problem(n_sp)
        t_sp, h_sp = bench.time(lambda: differentiate.hessian(small.f, small.x).ddf)
        t_fc, h_fc = bench.time(lambda: hessian(small.f, small.x, vectorized=True))
        return BenchRow(area, "hessian rosenbrock, vectorized f", f"n={n_sp}", t_fc,
                        "scipy.differentiate.hessian", t_sp, None,
                        _max_rel_error(h_fc, small.hessian), _max_rel_error(h_sp, small.hessian),
                        metric, f"scipy.differentiate.hessian is slow at n={n}: both timed at "
                        f"n={n_sp}" if n_sp != n else "")

    bench.attempt(area, "hessian rosenbrock vs scipy.differentiate", scipy_row)


def bench_newton(bench):
    s = bench.sizes
    area = "newton"
    from scipy import optimize
    size = s["newton_n"]
    p = wl.cube_root_problem(size)
    metric = "max rel. error vs cbrt"

    def reference():
        return bench.reference(("scipy.newton", size), lambda: optimize.newton(
            p.f, p.x0, p.fprime, args=(p.a,)))

    def vectorized():
        from fastcalc.roots import newton
        t_sp, r_sp = reference()
        t_fc, r_fc = bench.time(lambda: newton(p.f, p.x0, p.fprime, args=(p.a,)))
        return BenchRow(area, "newton x^3 = a, vectorized f", f"N={size:,}", t_fc,
                        "scipy.optimize.newton (array)", t_sp, None, _max_rel_error(r_fc, p.root),
                        _max_rel_error(r_sp, p.root), metric)

    def compiled():
        from fastcalc._testfunctions import low_level
        from fastcalc.roots import newton
        f_c, fprime_c = low_level("cube_root_eq"), low_level("cube_root_eq_prime")
        t_sp, r_sp = reference()
        t_fc, r_fc = bench.time(lambda: newton(f_c, p.x0, fprime_c, args=(p.a,)))
        return BenchRow(area, "newton x^3 = a, compiled f", f"N={size:,}", t_fc,
                        "scipy.optimize.newton (array)", t_sp, None, _max_rel_error(r_fc, p.root),
                        _max_rel_error(r_sp, p.root), metric)

    bench.attempt(area, "newton x^3 = a, vectorized f", vectorized)
    bench.attempt(area, "newton x^3 = a, compiled f", compiled)


def bench_block_newton(bench):
    """newton with block-compiled f (numba) against the per-element compiled path, the
    whole-array floor (JAX's jitted loop when installed, else NumPy), and 1 -> 2 threads."""
    s = bench.sizes
    area = "block_newton"
    size = s["newton_n"]
    metric = "max abs. error vs exact / |f|"

    def blocks():
        try:
            return wl.numba_block_equations()
        except ImportError:
            raise Skip("numba not installed") from None

    def problems():
        from fastcalc._testfunctions import low_level
        cube_block, kepler_block = blocks()
        a = wl.cube_root_problem(size).a
        k = wl.kepler_problem(size)
        return [("x^3 = a", cube_block, low_level("cube_root_eq"),
                 low_level("cube_root_eq_prime"), np.ones(size), (a,), wl.cube_and_prime,
                 lambda x: np.abs(x - np.cbrt(a)).max()),
                ("Kepler", kepler_block, low_level("kepler_eq"), low_level("kepler_eq_prime"),
                 k.x0, (k.e, k.m), wl.kepler_and_prime,
                 lambda x: np.abs(wl.kepler_and_prime(x, k.e, k.m)[0]).max())]

    def per_element_row(index):
        def row():
            from fastcalc.roots import newton
            label, block, f, fprime, x0, args, _, error = problems()[index]
            t_ref, x_ref = bench.time(lambda: newton(f, x0, fprime, args=args))
            t_fc, x_fc = bench.time(lambda: newton(block, x0, args=args))
            return BenchRow(area, f"newton {label}, numba block f", f"N={size:,}", t_fc,
                            "per-element compiled f, f'", t_ref, None, error(x_fc),
                            error(x_ref), metric)
        return row

    def floor_row(index):
        def row():
            from fastcalc.roots import newton
            label, block, _, _, x0, args, f_and_prime, error = problems()[index]
            r = newton(block, x0, args=args, full_output=True)
            iterations = int(r.nit.max())
            t_fc, x_fc = bench.time(lambda: newton(block, x0, args=args))
            try:
                import jax
                jax.config.update("jax_enable_x64", True)
                floor = _jax_floor(jax, f_and_prime, iterations)
                jargs = [jax.numpy.asarray(v) for v in (x0, *args)]
                t_ref, x_ref = bench.time(lambda: np.asarray(floor(*jargs).block_until_ready()))
                reference = f"JAX jit whole-array loop, {iterations} steps"
            except ImportError:
                t_ref, x_ref = bench.time(
                    lambda: wl.numpy_newton_floor(f_and_prime, x0, args, iterations))
                reference = f"NumPy whole-array loop, {iterations} steps (JAX not installed)"
            return BenchRow(area, f"newton {label}, numba block f", f"N={size:,}", t_fc,
                            reference, t_ref, None, error(x_fc), error(x_ref), metric,
                            "the floor runs every element for the slowest one's steps")
        return row

    def scaling_row(which):
        def row():
            from fastcalc._testfunctions import low_level
            from fastcalc.roots import newton
            p = wl.cube_root_problem(size)
            if which == "numba":
                try:
                    import numba
                    solve = wl.numba_prange_newton()
                except ImportError:
                    raise Skip("numba not installed") from None

                def run(threads):
                    numba.set_num_threads(threads)
                    return solve(p.x0, p.a, 1.48e-8, 50)
                label, how = "numba prange loop", "numba"
            else:
                f, fprime = low_level("cube_root_eq"), low_level("cube_root_eq_prime")

                def run(threads):
                    return newton(f, p.x0, fprime, args=(p.a,), n_threads=threads)
                label, how = "newton x^3 = a, compiled f", "fastcalc"
            run(1)      # (numba compiles on the first call)
            t1, x1 = bench.time(lambda: run(1))
            t2, x2 = bench.time(lambda: run(2))
            return BenchRow(area, f"{label}, 2 threads", f"N={size:,}", t2,
                            f"{how} on 1 thread", t1, None, _max_rel_error(x2, p.root),
                            _max_rel_error(x1, p.root), "max rel. error vs cbrt",
                            "ratio = thread scaling 1 -> 2")
        return row

    bench.attempt(area, "newton x^3 = a, numba block f", per_element_row(0))
    bench.attempt(area, "newton Kepler, numba block f", per_element_row(1))
    bench.attempt(area, "newton x^3 = a vs whole-array floor", floor_row(0))
    bench.attempt(area, "newton Kepler vs whole-array floor", floor_row(1))
    bench.attempt(area, "newton thread scaling", scaling_row("fastcalc"))
    bench.attempt(area, "numba thread scaling", scaling_row("numba"))


def _jax_floor(jax, f_and_prime, iterations):
    """A jitted fixed-iteration whole-array Newton loop (the f_and_prime formulas in jax.numpy)."""
    jnp = jax.numpy
    if f_and_prime is wl.cube_and_prime:
        def step(x, a):
            return x - (x * x * x - a) / (3.0 * x * x)
    else:
        def step(x, e, m):
            return x - (x - e * jnp.sin(x) - m) / (1.0 - e * jnp.cos(x))

    @jax.jit
    def solve(x, *params):
        return jax.lax.fori_loop(0, iterations, lambda _, x: step(x, *params), x)
    return solve


def bench_systems(bench):
    s = bench.sizes
    area = "systems"
    from scipy import optimize
    size, subset = s["systems_n"], s["systems_subset"]

    def system_row(label, setup, metric, about=""):
        """fastcalc on all systems against a ``root`` loop on a subset; ``setup()`` returns the
        problem, the fastcalc call and the ``args`` of system ``i`` for ``root``."""
        def row():
            problem, solve, scipy_args = setup()

            def scipy_loop():
                return np.array([optimize.root(problem.F, problem.x0[i], args=scipy_args(i),
                                               jac=problem.jac, method="hybr").x
                                 for i in range(subset)])

            t_sub, r_sp = bench.time(scipy_loop)
            t_fc, res = bench.time(solve)
            return BenchRow(area, label, f"N={size:,}", t_fc, "scipy.optimize.root(hybr) loop",
                            t_sub * size / subset, None,
                            float(np.max(np.abs(res.x - problem.root))),
                            float(np.max(np.abs(r_sp - problem.root[:subset]))), metric,
                            f"{about}root timed on {subset:,} of {size:,} systems and scaled; "
                            f"per system: fastcalc {format_seconds(t_fc / size)}, SciPy "
                            f"{format_seconds(t_sub / subset)}")
        bench.attempt(area, label, row)

    def vectorized():
        from fastcalc.roots import newton_system
        p = wl.circle_line_problem(size)
        return (p, lambda: newton_system(p.F, p.x0, p.jac, args=(p.r, p.b), vectorized=True),
                lambda i: (p.r[i], p.b[i]))

    def compiled():
        from fastcalc._testfunctions import low_level
        from fastcalc.roots import newton_system
        q = wl.circle_exp_problem(size)
        F_c, jac_c = low_level("circle_exp_system"), low_level("circle_exp_jacobian")
        return q, lambda: newton_system(F_c, q.x0, jac_c), lambda i: ()

    system_row("newton_system 2-D, vectorized F and jac", vectorized,
               "max abs. error vs exact root")
    system_row("newton_system 2-D, compiled F and jac", compiled,
               "max abs. error vs the root (hybr, xtol 1e-15)", "x^2 + y^2 = 4, exp(x) + y = 1; ")
    bench.attempt(area, "newton_system MGH systems from x0, 10 x0, 100 x0 (dogleg)",
                  lambda: _mgh_row(bench, area))


def _mgh_row(bench, area):
    """The More-Garbow-Hillstrom systems (Python F, finite-difference J) from bad starts:
    cases solved by newton_system's default dogleg (one vectorized batch per problem) and by
    a root(hybr) loop, each with 1000 (n + 1) evaluations of F allowed."""
    from .._mgh_systems import batches, hybr_solves
    from ..roots import newton_system
    # tiny sizes (the CLI's own tests): the starts x0 only
    factors = (1.0,) if bench.sizes["systems_n"] < 1_000 else (1.0, 10.0, 100.0)
    problems = batches(factors)
    n_cases = sum(len(X0) for _, _, X0 in problems)

    def ours():
        return sum(int(np.sum(newton_system(F, X0, vectorized=True, maxiter=1000).status == 0))
                   for _, F, X0 in problems)

    def hybr():
        return sum(hybr_solves(F, x0, 1e-8, maxfev=1000 * (x0.size + 1))
                   for _, F, X0 in problems for x0 in X0)

    t_sp, solved_sp = bench.time(hybr)
    t_fc, solved_fc = bench.time(ours)
    return BenchRow(area, "newton_system MGH systems from x0, 10 x0, 100 x0 (dogleg)",
                    f"{n_cases} cases", t_fc, "scipy.optimize.root(hybr) loop", t_sp, None,
                    float(n_cases - solved_fc), float(n_cases - solved_sp),
                    "cases not solved", "14 More-Garbow-Hillstrom systems, Python F, FD "
                    "Jacobians; solved: status 0 (max|F| <= 1e-10 there) / hybr max|F| <= 1e-8")


BUILTIN_STARTS = "fastcalc from the model's own guess (no p0), curve_fit from p0 near the truth"


def _chi2_excess(problem, params_fc, params_ref, sigma):
    """Max relative chi2 excess of each solution over the better of the two, per dataset."""
    count = len(params_ref)

    def chi2(params):
        model = problem.model(problem.x, *np.asarray(params).T[:, :, None])
        return np.sum(((problem.Y[:count] - model) / sigma) ** 2, axis=1)

    c_fc, c_ref = chi2(params_fc[:count]), chi2(params_ref)
    best = np.fmin(c_fc, c_ref)

    def excess(c):
        return float(np.max(np.where(np.isfinite(c), (c - best) / best, np.inf)))
    return excess(c_fc), excess(c_ref)


def _curve_fit_loop(problem, subset, func=None):
    from scipy.optimize import curve_fit
    func = func or problem.model
    sigma = np.full(problem.Y.shape[1], problem.sigma)

    def loop():
        out = np.full((subset, problem.params.shape[1]), np.nan)
        for i in range(subset):
            try:
                out[i] = curve_fit(func, problem.x, problem.Y[i], p0=problem.p0[i], sigma=sigma,
                                   absolute_sigma=True)[0]
            except RuntimeError:   # curve_fit raises when it does not converge
                pass
        return out
    return loop


def _lmfit_loop(problem, subset):
    """lmfit.Model.fit per dataset (lmfit's usual interface), from the same p0 as curve_fit."""
    import lmfit
    model = lmfit.Model(problem.model)
    weights = np.full(problem.Y.shape[1], 1.0 / problem.sigma)

    def loop():
        out = np.full((subset, problem.params.shape[1]), np.nan)
        for i in range(subset):
            params = model.make_params(**dict(zip(problem.param_names, problem.p0[i])))
            result = model.fit(problem.Y[i], params, x=problem.x, weights=weights,
                               scale_covar=False)
            out[i] = [result.params[name].value for name in problem.param_names]
        return out
    return loop


def _fit_batch_row(bench, area, label, problem, fit_call, subset, starts, reference="curve_fit"):
    def row():
        size = problem.Y.shape[0]
        if reference == "lmfit":
            try:
                import lmfit  # noqa: F401
            except ImportError:
                raise Skip("lmfit not installed") from None
            t_sub, p_ref = bench.time(_lmfit_loop(problem, subset))
        else:
            # The same datasets and starts in several rows: time the curve_fit loop once.
            t_sub, p_ref = bench.reference(("curve_fit", problem.model_name, size, subset),
                                           _curve_fit_loop(problem, subset))
        # Rows comparing the same call with two references share one timing of it.
        t_fc, result = bench.reference((label, id(problem)), fit_call)
        err_fc, err_ref = _chi2_excess(problem, np.asarray(result.params), p_ref, problem.sigma)
        ok = float(np.mean(np.asarray(result.status) == 0))
        return BenchRow(area, label, f"N={size:,} x {problem.Y.shape[1]} pts", t_fc,
                        f"{reference} loop", t_sub * size / subset, None, err_fc, err_ref,
                        "max rel. chi2 excess over the better fit",
                        f"{reference} timed on {subset:,} of {size:,} datasets and scaled; "
                        f"fastcalc status 0 for {ok:.1%}; starts: {starts}")
    bench.attempt(area, f"{label} vs {reference}", row)


def bench_fitting(bench):
    s = bench.sizes
    area = "fitting"
    size, subset, points = s["fit_n"], s["fit_subset"], s["fit_points"]

    def single():
        from fastcalc import models
        from fastcalc.fitting import fit
        from scipy.optimize import curve_fit
        problem = wl.peak_fit_problem("gaussian", 1, points=points)
        x, y, sigma = problem.x, problem.Y[0], np.full(points, problem.sigma)
        t_sp, p_sp = bench.time(lambda: curve_fit(problem.model, x, y, p0=problem.p0[0],
                                                  sigma=sigma, absolute_sigma=True)[0])
        t_fc, res = bench.time(lambda: fit(models.gaussian, x, y, sigma=sigma,
                                           absolute_sigma=True))
        err_fc, err_sp = _chi2_excess(problem, np.atleast_2d(res.params), np.atleast_2d(p_sp),
                                      problem.sigma)
        return BenchRow(area, "fit gaussian, one dataset, built-in model", f"{points} pts", t_fc,
                        "curve_fit", t_sp, None, err_fc, err_sp,
                        "rel. chi2 excess over the better fit",
                        f"starts: {BUILTIN_STARTS}")

    bench.attempt(area, "fit gaussian, one dataset", single)
    for name in ("gaussian", "exponential"):
        problem = wl.peak_fit_problem(name, size, points=points)

        def call(problem=problem, name=name):
            from fastcalc import models
            from fastcalc.fitting import fit_batch
            return fit_batch(models.get_model(name), problem.x, problem.Y, sigma=problem.sigma,
                             absolute_sigma=True)
        _fit_batch_row(bench, area, f"fit_batch {name}, built-in model", problem, call, subset,
                       BUILTIN_STARTS)
        if name == "gaussian":
            _fit_batch_row(bench, area, f"fit_batch {name}, built-in model", problem, call,
                           subset, BUILTIN_STARTS.replace("curve_fit", "lmfit"), "lmfit")

    problem = wl.peak_fit_problem("gaussian", size, points=points)

    def python_model():
        from fastcalc.fitting import fit_batch
        return fit_batch(problem.model, problem.x, problem.Y, problem.p0, sigma=problem.sigma,
                         absolute_sigma=True)
    _fit_batch_row(bench, area, "fit_batch gaussian, Python model", problem, python_model, subset,
                   "the same p0 near the truth for both")


def bench_gaussian_2d(bench):
    s = bench.sizes
    problem = wl.gaussian_2d_problem(s["g2d_n"])

    def call():
        from fastcalc import models
        from fastcalc.fitting import fit_batch
        return fit_batch(models.gaussian_2d, problem.x, problem.Y, sigma=problem.sigma,
                         absolute_sigma=True)
    _fit_batch_row(bench, "gaussian_2d", "fit_batch gaussian_2d 5x5 stamps, built-in model",
                   problem, call, s["fit_subset"], BUILTIN_STARTS)


def bench_nist(bench):
    area = "nist"

    def row():
        from fastcalc import nist
        from fastcalc.fitting import fit  # noqa: F401  (nist.fastcalc_fitter needs it)
        try:
            problems = nist.load_all(bench.nist_dir)
        except FileNotFoundError as exc:
            raise Skip(str(exc)) from None
        if bench.sizes["nist_problems"]:
            problems = problems[:bench.sizes["nist_problems"]]
        fits = 2 * len(problems)
        t_fc, rows_fc = bench.time(lambda: nist.score_all(nist.fastcalc_fitter, problems))
        t_sp, rows_sp = bench.time(lambda: nist.score_all(nist.curve_fit_fitter, problems))
        solved_fc = sum(r["solved"] for r in rows_fc)
        solved_sp = sum(r["solved"] for r in rows_sp)
        silent_fc = sum(r["silent_failure"] for r in rows_fc)
        silent_sp = sum(r["silent_failure"] for r in rows_sp)
        return BenchRow(area, "NIST StRD nonlinear regression, both starts",
                        f"{len(problems)} problems", t_fc, "curve_fit (lmder)", t_sp, None,
                        solved_fc, solved_sp, f"fits with LRE >= 4 (of {fits})",
                        f"both with analytic Jacobians; success reported with LRE < 4: fastcalc "
                        f"{silent_fc}, curve_fit {silent_sp}")

    bench.attempt(area, "NIST StRD", row)



def _deviance(y, mu):
    """The Poisson deviance of counts y (rows) at means mu (inf where a mean is <= 0)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = mu - y + np.where(y > 0, y * np.log(np.where(y > 0, y, 1.0) / mu), 0.0)
    return np.where(np.all(mu > 0, axis=-1), 2.0 * np.sum(terms, axis=-1), np.inf)


def _excess(cost_fc, cost_ref):
    """Max relative excess of each solution's cost over the better of the two."""
    best = np.fmin(cost_fc, cost_ref)

    def excess(c):
        return float(np.max(np.where(np.isfinite(c), (c - best) / best, np.inf)))
    return excess(cost_fc), excess(cost_ref)


def bench_inference(bench):
    """The estimators and profile intervals against per-dataset SciPy loops."""
    from scipy.optimize import brentq, least_squares, minimize
    s = bench.sizes
    area = "inference"
    size, subset, points = s["fit_n"], s["fit_subset"], s["fit_points"]

    def estimator_row(label, problem, options, reference, reference_fit, cost_of, metric):
        """fit_batch with ``options`` against ``reference_fit(i)`` per dataset, both scored by
        ``cost_of(Y, model values)``."""
        from fastcalc import models
        from fastcalc.fitting import fit_batch
        p = problem
        t_ref, p_ref = bench.time(lambda: np.array([reference_fit(i) for i in range(subset)]))
        t_fc, r = bench.time(lambda: fit_batch(models.gaussian, p.x, p.Y, p.p0, **options))
        err_fc, err_ref = _excess(r.cost[:subset],
                                  cost_of(p.Y[:subset], p.model(p.x, *p_ref.T[:, :, None])))
        return BenchRow(area, label, f"N={size:,} x {points} pts", t_fc, f"{reference} loop",
                        t_ref * size / subset, None, err_fc, err_ref,
                        f"max rel. {metric} excess over the better fit",
                        f"{reference} timed on {subset:,} datasets and scaled; fastcalc status 0 "
                        f"for {np.mean(r.status == 0):.1%}; the same p0 near the truth for both")

    def poisson():
        p = wl.count_peak_problem(size, points=points)
        return estimator_row(
            "fit_batch gaussian counts, Poisson likelihood", p, dict(cost="poisson"),
            "minimize(deviance, BFGS)",
            lambda i: minimize(lambda q: _deviance(p.Y[i], p.model(p.x, *q)), p.p0[i],
                               method="BFGS").x, _deviance, "deviance")

    def huber():
        p = wl.outlier_peak_problem(size, points=points)

        def huber_cost(Y, values):
            z = ((Y - values) / p.sigma) ** 2
            return np.sum(np.where(z <= 1, z, 2 * np.sqrt(z) - 1), axis=-1)
        return estimator_row(
            "fit_batch gaussian with 3% outliers, huber loss", p,
            dict(sigma=p.sigma, loss="huber"), "least_squares(loss='huber')",
            lambda i: least_squares(lambda q: (p.Y[i] - p.model(p.x, *q)) / p.sigma, p.p0[i],
                                    loss="huber").x, huber_cost, "cost")

    def intervals():
        from fastcalc import models
        from fastcalc.fitting import fit, fit_batch
        n, few = s["interval_n"], s["interval_subset"]
        p = wl.peak_fit_problem("gaussian", n, points=points)
        opts = dict(sigma=p.sigma, absolute_sigma=True)
        fits = fit_batch(models.gaussian, p.x, p.Y, p0=p.p0, **opts)
        t_fc, ci = bench.time(lambda: fits.conf_interval())

        def loop():
            out = np.empty((few, 4, 2))
            for i in range(few):
                best = fits[i]
                for k in range(4):
                    def rise(t, k=k):
                        q = best.params.copy()
                        q[k] = t
                        refit = fit(models.gaussian, p.x, p.Y[i], p0=q, fixed=[k], **opts)
                        return refit.chi2 - best.chi2 - 1.0
                    for j, side in enumerate((-1.0, 1.0)):
                        out[i, k, j] = brentq(rise, best.params[k],
                                              best.params[k] + 3 * side * best.stderr[k],
                                              xtol=1e-9 * best.stderr[k])
            return out
        t_ref, limits = bench.time(loop)
        off = np.abs(ci.limits[:few] - limits) / fits.stderr[:few, :, None]
        return BenchRow(area, "profile-likelihood intervals, gaussian fits (4 params x 2)",
                        f"N={n:,} x {points} pts", t_fc, "brute-force profile loop (brentq)",
                        t_ref * n / few, None, float(np.max(off)), 0.0,
                        "max abs(limit - brute force) / stderr",
                        f"brute force timed on {few} datasets and scaled; fastcalc limits found "
                        f"for {np.mean(ci.status == 0):.1%}")

    bench.attempt(area, "Poisson likelihood", poisson)
    bench.attempt(area, "huber loss", huber)
    bench.attempt(area, "profile intervals", intervals)


def odr_problem(n, points, seed=15):
    """``(x, X, Y, truth)``: n exponential decays measured with errors in x (0.05) and y (0.05),
    x the true abscissae and X the measured ones."""
    rng = np.random.default_rng(seed)
    truth = np.array([2.0, 1.5, 0.1])
    x = np.linspace(0.0, 5.0, points)
    X = x + rng.normal(0, 0.05, (n, points))
    Y = truth[0] * np.exp(-x / truth[1]) + truth[2] + rng.normal(0, 0.05, (n, points))
    return x, X, Y, truth


def bench_odr(bench):
    """Orthogonal distance regression (errors in x): fit_batch(sigma_x=) against a loop of
    scipy.odr (ODRPACK), the same start and tolerances."""
    s = bench.sizes
    area = "odr"
    size, subset, points = s["fit_n"], s["fit_subset"], s["fit_points"]

    def rows(label, model):
        import warnings as _warnings
        from fastcalc.fitting import fit_batch
        with _warnings.catch_warnings():
            _warnings.simplefilter("ignore", DeprecationWarning)
            from scipy import odr
        x, X, Y, truth = odr_problem(size, points)

        def scipy_loop():
            out = np.empty((subset, truth.size))
            for i in range(subset):
                data = odr.RealData(X[i], Y[i], sx=0.05, sy=0.05)
                run = odr.ODR(data, odr.Model(lambda B, t: B[0] * np.exp(-t / B[1]) + B[2]),
                              beta0=truth).run()
                out[i] = run.beta
            return out
        t_ref, p_ref = bench.time(scipy_loop)
        t_fc, r = bench.time(lambda: fit_batch(model, X, Y, p0=truth, sigma=0.05,
                                               sigma_x=0.05))
        off = np.abs(r.params[:subset] - p_ref) / r.stderr[:subset]
        return BenchRow(area, label, f"N={size:,} x {points} pts", t_fc, "scipy.odr loop",
                        t_ref * size / subset, None, float(np.max(off)), 0.0,
                        "max abs(params - scipy.odr) / stderr",
                        f"scipy.odr (Python model, its default tolerances) timed on {subset:,} "
                        f"datasets and scaled; fastcalc status 0 for {np.mean(r.status == 0):.1%}")

    def builtin():
        from fastcalc import models
        return rows("fit_batch(sigma_x=) exponential, built-in model", models.exponential)

    def python():
        return rows("fit_batch(sigma_x=) exponential, Python model",
                    lambda t, a, tau, c: a * np.exp(-t / tau) + c)

    bench.attempt(area, "built-in model", builtin)
    bench.attempt(area, "Python model", python)
def _global_problem(n, points, seed=15):
    """x, Y, p0 of n gaussian datasets sharing mu = 0.4 and sigma = 0.8 (noise 0.05)."""
    rng = np.random.default_rng(seed)
    x = np.linspace(-3.0, 3.0, points)
    A, c = rng.uniform(1.0, 3.0, n), rng.uniform(-0.5, 0.5, n)
    Y = (A[:, None] * np.exp(-0.5 * ((x - 0.4) / 0.8) ** 2) + c[:, None]
         + rng.normal(0.0, 0.05, (n, points)))
    return x, Y, np.column_stack([A * 1.1, np.full(n, 0.3), np.full(n, 0.9), c + 0.05])


def _least_squares_global(x, Y, p0):
    """least_squares (trf, jac_sparsity) on the concatenated residuals of _global_problem;
    z = (mu, sigma, A_0, c_0, A_1, c_1, ...)."""
    from scipy.optimize import least_squares
    from scipy.sparse import coo_matrix
    n, points = Y.shape
    rows = np.arange(n * points)
    columns = np.column_stack([np.zeros_like(rows), np.ones_like(rows),
                               2 + 2 * (rows // points), 3 + 2 * (rows // points)])
    sparsity = coo_matrix((np.ones(columns.size), (np.repeat(rows, 4), columns.ravel())),
                          shape=(rows.size, 2 + 2 * n))

    def residuals(z):
        A, c = z[2::2, None], z[3::2, None]
        return ((Y - A * np.exp(-0.5 * ((x - z[0]) / z[1]) ** 2) - c) / 0.05).ravel()
    z0 = np.concatenate([p0[0, 1:3], p0[:, [0, 3]].ravel()])
    return least_squares(residuals, z0, jac_sparsity=sparsity, method="trf", x_scale="jac",
                         ftol=1e-10, xtol=1e-10, gtol=1e-10).x


def bench_global(bench):
    """fit_global (2 shared + 2 local gaussian parameters) against least_squares with
    jac_sparsity on the concatenated residuals, and its growth from N to 10 N datasets."""
    s = bench.sizes
    area, points = "global", s["fit_points"]
    n = max(4, min(s["fit_n"] // 10, 1_000))      # least_squares' size: seconds, not minutes

    def fit(x, Y, p0):
        from fastcalc import fit_global, models
        return fit_global(models.gaussian, x, Y, p0, shared=["mu", "sigma"], sigma=0.05)

    def against_least_squares():
        x, Y, p0 = _global_problem(n, points)
        t_fc, r = bench.time(lambda: fit(x, Y, p0))
        t_ref, z = bench.time(lambda: _least_squares_global(x, Y, p0))
        error = float(np.max(np.abs(r.shared - z[:2]) / r.shared_stderr))
        return BenchRow(area, "fit_global gaussian, mu and sigma shared",
                        f"N={n:,} x {points} pts", t_fc, "least_squares(jac_sparsity)", t_ref,
                        None, error, 0.0, "max |shared - least_squares| / stderr",
                        f"status {int(r.status)}, {r.nit} iterations; least_squares trf with "
                        "x_scale='jac', tolerances 1e-10")

    def linear_growth():
        x, Y, p0 = _global_problem(10 * n, points)
        t_big, r = bench.time(lambda: fit(x, Y, p0))
        t_small, _ = bench.time(lambda: fit(x, Y[:n], p0[:n]))
        return BenchRow(area, "fit_global growth N -> 10 N (ratio > 0.83: within 12x)",
                        f"N={10 * n:,} x {points} pts", t_big, f"10 x fit_global at N={n:,}",
                        10 * t_small, None, None, None, "",
                        f"status {int(r.status)}; linear growth gives ratio 1")

    bench.attempt(area, "fit_global vs least_squares", against_least_squares)
    bench.attempt(area, "fit_global growth", linear_growth)
def _numba_lm():
    """benchmarks/numba_lm.py (the numba prange LM reference; a source checkout only)."""
    import importlib.util
    from pathlib import Path
    try:
        import numba  # noqa: F401
    except ImportError:
        raise Skip("numba not installed") from None
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "numba_lm.py"
    if not path.exists():
        raise Skip("benchmarks/numba_lm.py is not here (not a source checkout)")
    spec = importlib.util.spec_from_file_location("fastcalc_bench_numba_lm", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def bench_compiled_models(bench):
    """Compiled models with their Jacobian (numba cfunc) against the built-in model and a
    numba prange Levenberg-Marquardt per dataset (benchmarks/numba_lm.py), and the built-in
    models against that LM; every fit from the same p0, everything on one thread, timed in
    CPU time."""
    s = bench.sizes
    area = "compiled_models"
    compiled = {}       # numba compiles each LM and cfunc once per run (seconds each)

    def numba_parts(name, x2, p, maxiter):
        if not s.get("numba_reference", True):
            raise Skip("numba compiles its reference for a minute or more; not at tiny sizes")
        if name not in compiled:
            lm = _numba_lm()
            fitter = lm.make_fitter(name)
            fitter(x2, p.Y[:2], p.sigma, p.p0[:2], maxiter, 1e-12, 1e-12, 1e-12)
            compiled[name] = fitter, lm.cfunc_model(name)
        return compiled[name]

    def problem_of(name):
        if name == "gaussian_2d":
            return wl.gaussian_2d_problem(s["g2d_n"])
        return wl.peak_fit_problem(name, s["fit_n"], points=s["fit_points"])

    def row(name, kind, threads):
        from fastcalc import models
        from fastcalc.fitting import fit_batch
        import numba
        cpu = time.process_time     # one thread: CPU time, robust to a busy machine
        p = problem_of(name)
        x2 = np.atleast_2d(p.x)
        builtin = models.get_model(name)
        options = dict(sigma=p.sigma, absolute_sigma=True, n_threads=threads)
        maxiter = 200 * (p.p0.shape[1] + 1)
        fitter, cfunc = numba_parts(name, x2, p, maxiter)
        previous = numba.get_num_threads()
        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
        try:
            t_lm, ref = bench.reference(("numba_lm", name, threads), lambda: fitter(
                x2, p.Y, p.sigma, p.p0, maxiter, 1e-12, 1e-12, 1e-12), cpu)
        finally:
            numba.set_num_threads(previous)
        t_builtin, r_builtin = bench.reference(("builtin", name, threads), lambda: fit_batch(
            builtin, p.x, p.Y, p.p0, **options), cpu)
        if kind == "builtin":
            t_fc, r, against, t_ref = t_builtin, r_builtin, "numba prange LM", t_lm
            label = f"fit_batch {name}, built-in model, one thread"
        else:
            model = models.compiled(cfunc, p.param_names, x_dim=x2.shape[0])
            t_fc, r = bench.reference(("cfunc", name, threads), lambda: fit_batch(
                model, p.x, p.Y, p.p0, **options), cpu)
            label = f"fit_batch {name}, numba cfunc model with Jacobian, one thread"
            against, t_ref = (("built-in model", t_builtin) if kind == "vs_builtin"
                              else ("numba prange LM", t_lm))
        scale = r_builtin.stderr
        err_fc = float(np.nanmax(np.abs(r.params - r_builtin.params) / scale))
        err_ref = (0.0 if against == "built-in model"
                   else float(np.nanmax(np.abs(ref[0] - r_builtin.params) / scale)))
        return BenchRow(area, label, f"N={p.Y.shape[0]:,} x {p.Y.shape[1]} pts", t_fc, against,
                        t_ref, None, err_fc, err_ref,
                        "max |params - built-in's| / stderr",
                        f"the same p0 near the truth for all; status 0 for "
                        f"{np.mean(r.status == 0):.1%} (numba LM {np.mean(ref[4] == 0):.1%}); "
                        "CPU time")

    # One thread each: on a shared machine two-thread timings of either side mostly measure
    # the other processes (both scale alike: prange over independent datasets).
    for name in ("exponential", "gaussian"):
        for kind in ("vs_builtin", "vs_numba"):
            bench.attempt(area, f"{name} cfunc {kind}",
                          lambda name=name, kind=kind: row(name, kind, 1))
    for name in ("gaussian", "gaussian_2d"):
        bench.attempt(area, f"{name} built-in vs numba LM",
                      lambda name=name: row(name, "builtin", 1))
def bench_sparse(bench):
    """Sparse Jacobians by column grouping and newton_system(sparsity=) (issue 16)."""
    from scipy.optimize import root
    from scipy.optimize._numdiff import approx_derivative
    from scipy.sparse.linalg import LinearOperator

    from ..differentiate import jacobian
    from ..roots import newton_system
    area = "sparse"
    n, n_ref = bench.sizes["sparse_n"], bench.sizes["bratu_reference_n"]

    def jacobian_row(label, options, scipy_method, points):
        p = wl.tridiagonal_jacobian_problem(n)

        def error(J):
            return max(float(np.abs(J.diagonal(k) - d).max())
                       for k, d in zip((-1, 0, 1), p.diagonals))

        def row():
            block = np.ascontiguousarray(np.repeat(p.x[:, None], points, axis=1))
            t_ref, J_ref = bench.time(lambda: approx_derivative(p.f, p.x, method=scipy_method,
                                                                sparsity=p.sparsity))
            t_fc, J = bench.time(lambda: jacobian(p.f, p.x, sparsity=p.sparsity,
                                                  vectorized=True, **options))
            t_floor, _ = bench.time(lambda: p.f(block))
            return BenchRow(area, f"tridiagonal jacobian, vectorized f, {label}", f"n={n:,}",
                            t_fc, f"approx_derivative({scipy_method!r}, sparsity)", t_ref,
                            None, error(J), error(J_ref), "max abs. error vs exact J",
                            f"floor (f on the (n, {points}) block of points): "
                            f"{format_seconds(t_floor)}, fastcalc {t_fc / t_floor:.2g}x it")
        bench.attempt(area, f"tridiagonal jacobian {label}", row)

    jacobian_row("forward", dict(method="forward", accuracy=1), "2-point", 4)
    jacobian_row("central", dict(method="central"), "3-point", 7)

    def bratu_row():
        p, q = wl.bratu_problem(n), wl.bratu_problem(n_ref)
        t_fc, r = bench.time(lambda: newton_system(p.F, p.x0, sparsity=p.sparsity,
                                                   vectorized=True))
        t_small, r_small = bench.time(lambda: newton_system(q.F, q.x0, sparsity=q.sparsity,
                                                            vectorized=True))
        M = LinearOperator((n_ref, n_ref), matvec=q.laplacian_solve)
        t_ref, r_ref = bench.time(lambda: root(q.F, q.x0, method="krylov",
                                               options={"jac_options": {"inner_M": M}}))
        return BenchRow(area, "Bratu 1-D, newton_system(sparsity=), vectorized F",
                        f"n={n_ref:,}", t_small, "root(krylov), Laplacian preconditioner",
                        t_ref, None, float(np.abs(r_small.fun).max()),
                        float(np.abs(r_ref.fun).max()), "max |F| at the solution",
                        f"at n={n:,} fastcalc takes {format_seconds(t_fc)} (status "
                        f"{r.status}, max|F| {np.abs(r.fun).max():.1e}); root(krylov) did not "
                        "finish in 100 s at n=50,000 on the development VM")
    bench.attempt(area, "Bratu 1-D", bratu_row)


AREAS = {
    "derivatives": bench_derivatives,
    "hessian": bench_hessian,
    "newton": bench_newton,
    "systems": bench_systems,
    "fitting": bench_fitting,
    "gaussian_2d": bench_gaussian_2d,
    "inference": bench_inference,
    "compiled_models": bench_compiled_models,
    "nist": bench_nist,
    "odr": bench_odr,
    "global": bench_global,
    "sparse": bench_sparse,
    "block_newton": bench_block_newton,
}


# ----------------------------------------------------------------------------------------------
# Machine description, table, JSON and plot.

def _cpu_model():
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info():
    """Return the machine and library versions a benchmark ran with."""
    import scipy

    import fastcalc
    from fastcalc._parallel import HAVE_OPENMP, max_threads
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "fastcalc": fastcalc.__version__,
        "threads": max_threads(),
        "openmp": bool(HAVE_OPENMP),
        "numdifftools": _version_of("numdifftools"),
        "lmfit": _version_of("lmfit"),
        "load_average": _load_average(),
    }


def _load_average():
    """The 1-minute load average (other processes compete for the cores), or None."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def _version_of(package):
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version(package)
    except PackageNotFoundError:
        return None


def run_areas(areas, mode, stream=sys.stderr, nist_dir=None):
    """Run the benchmark ``areas`` (names of :data:`AREAS`) at ``mode`` sizes; return the rows."""
    bench = Bench(SIZES[mode], stream=stream, nist_dir=nist_dir)
    with warnings.catch_warnings():
        # SciPy's array newton and curve_fit warn about non-converged elements; the error
        # columns report accuracy instead.
        warnings.simplefilter("ignore")
        np_state = np.seterr(all="ignore")
        try:
            for area in areas:
                bench.progress(f"area {area}")
                AREAS[area](bench)
        finally:
            np.seterr(**np_state)
    return bench.rows


def render_table(rows, info, mode):
    header = (f"fastcalc {info['fastcalc']} benchmark ({mode} mode): {info['cpu']}, "
              f"{info['cores']} cores, {info['threads']} threads"
              f"{'' if info['openmp'] else ' (no OpenMP)'}\n"
              f"Python {info['python']}, numpy {info['numpy']}, scipy {info['scipy']}"
              + "".join(f", {name} {info[name]}" for name in ("numdifftools", "lmfit")
                        if info.get(name))
              + (f"; load average {info['load_average']} at start"
                 if info.get("load_average") is not None else "")
              + "\ntimes are medians of repeats; ratio = reference time / fastcalc time "
              "(> 1: fastcalc is faster); errors against exact answers unless stated")
    table = format_table(
        ["area", "workload", "size", "fastcalc", "reference", "ref. time", "ratio",
         "fastcalc err", "ref. err", "error metric"],
        [[r.area, r.workload, r.size, format_seconds(r.fastcalc_s), r.reference or "-",
          format_seconds(r.reference_s), _ratio_text(r.ratio) if r.ratio else "-",
          format_number(r.fastcalc_error), format_number(r.reference_error), r.metric or "-"]
         for r in rows],
        right_align=(3, 5, 6, 7, 8))
    notes = [f"  [{i}] {r.area}: {r.workload}: {r.note}" for i, r in enumerate(rows, 1) if r.note]
    return header + "\n\n" + table + ("\n\nnotes:\n" + "\n".join(notes) if notes else "")


def write_json(path, rows, info, mode):
    with open(path, "w") as out:
        json.dump({"mode": mode, "sizes": SIZES[mode], "machine": info,
                   "rows": [asdict(r) for r in rows]}, out, indent=2)


def _ratio_text(ratio):
    """``12.3x``; whole numbers from 100 up (``4,260x``, not ``4.26e+03x``)."""
    return f"{ratio:,.0f}x" if ratio >= 100 else f"{ratio:.3g}x"


def write_plot(path, rows, info, mode):
    """Write a horizontal bar chart of the speed-up ratios (log scale) to ``path`` (PNG)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    timed = [r for r in rows if r.ratio]
    labels = [f"{r.area}: {r.workload} ({r.size})\nvs {r.reference}" for r in timed]
    ratios = [r.ratio for r in timed]
    fig, ax = plt.subplots(figsize=(10, 0.55 * len(timed) + 1.6))
    colors = ["tab:green" if q >= 1 else "tab:red" for q in ratios]
    y = np.arange(len(timed))[::-1]
    ax.barh(y, ratios, color=colors, height=0.6)
    ax.set_yticks(y, labels, fontsize=8)
    ax.set_xscale("log")
    ax.axvline(1.0, color="black", linewidth=0.8)
    for yi, q in zip(y, ratios):
        ax.text(q, yi, f" {_ratio_text(q)}", va="center", fontsize=8)
    if ratios:   # room for the labels right of the longest bar, and left of the shortest
        ax.set_xlim(min(0.5, min(ratios) / 2), max(ratios) * 4)
    ax.set_xlabel("speed-up over the reference (log scale; > 1: fastcalc faster)")
    ax.set_title(f"fastcalc {info['fastcalc']} against SciPy, numdifftools and lmfit ({mode} "
                 f"sizes)\n{info['cpu']}, {info['cores']} cores, {info['threads']} threads",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _area_list(text):
    areas = [a.strip() for a in text.split(",") if a.strip()]
    unknown = [a for a in areas if a not in AREAS]
    if unknown or not areas:
        raise argparse.ArgumentTypeError(
            f"unknown area {', '.join(unknown) or repr(text)}; choose from {', '.join(AREAS)}")
    return areas


def add_parser(commands):
    """Add the ``bench`` subcommand to ``commands`` (argparse's subparsers)."""
    bench = commands.add_parser(
        "bench", help="time fastcalc against SciPy on the headline workloads",
        description="Time fastcalc and SciPy (and numdifftools) side by side: median times, "
                    "speed-up ratio and accuracy of both, per workload. Progress goes to stderr, "
                    "the table to stdout.")
    bench.add_argument("--quick", action="store_true",
                       help="smaller problems and fewer repeats (under a minute on 2 cores)")
    bench.add_argument("--only", type=_area_list, metavar="AREA[,AREA...]",
                       help=f"run only these areas: {', '.join(AREAS)}")
    bench.add_argument("--json", metavar="PATH", help="also write every row as JSON to PATH")
    bench.add_argument("--plot", metavar="PATH",
                       help="also write a PNG bar chart of the speed-up ratios (needs matplotlib)")
    bench.add_argument("--nist-dir", metavar="DIR",
                       help="folder of NIST StRD .dat files (default: fastcalc.nist's search)")
    # Tiny sizes for the command's own tests; overrides --quick.
    bench.add_argument("--sizes", choices=("tiny", "quick", "full"), help=argparse.SUPPRESS)


def run(args):
    """The ``bench`` command: run, print the table, write JSON/PNG; return the exit status."""
    from ._errors import UsageError, check_image_format
    if args.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise UsageError("--plot needs matplotlib: pip install 'fastcalc[plot]'") from None
        check_image_format("--plot", args.plot)
    for option, path in (("--json", args.json), ("--plot", args.plot)):
        folder = os.path.dirname(os.path.abspath(path)) if path else None
        if folder and not os.path.isdir(folder):   # fail now, not after minutes of timing
            raise UsageError(f"{option} {path}: folder {folder} does not exist")
    mode = args.sizes or ("quick" if args.quick else "full")
    areas = args.only or list(AREAS)
    info = machine_info()
    start = time.perf_counter()
    if args.nist_dir is not None and not os.path.isdir(args.nist_dir):
        raise UsageError(f"--nist-dir {args.nist_dir}: no such directory")
    rows = run_areas(areas, mode, nist_dir=args.nist_dir)
    print(render_table(rows, info, mode))
    failed = sum(r.note.startswith("FAILED") for r in rows)
    print(f"[bench] done in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    for path, write in ((args.json, write_json), (args.plot, write_plot)):
        if path:
            try:
                write(path, rows, info, mode)
            except OSError as exc:
                raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None
            print(f"[bench] wrote {path}", file=sys.stderr)
    return 1 if failed else 0
