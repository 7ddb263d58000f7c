"""``python -m fastcalc bench``: fastcalc and SciPy timed side by side on the headline workloads.

Every row times one workload with fastcalc and with its SciPy (or numdifftools) counterpart in
the same run: the median of a few repeats, the speed-up ratio ``reference / fastcalc``, and the
error of both against the exact answer (or against the reference when nothing is exact).

A SciPy loop over many problems (``root`` per system, ``curve_fit`` per dataset) is timed on a
subset and scaled to the full size; the row's note says so. The problems themselves come from
:mod:`fastcalc._workloads`, shared with the ``benchmarks/`` pytest-benchmark suites.
"""
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

__all__ = ["AREAS", "SIZES", "BenchRow", "run", "machine_info", "render_table", "write_json",
           "write_plot"]

# Problem sizes per mode. "tiny" exists for the CLI's own tests (hidden option --sizes tiny).
SIZES = {
    "tiny": dict(repeats=1, derivative_points=1_000, gradient_n=20, python_n=6, hessian_n=10,
                 hessian_ndt_n=10, hessian_scipy_n=6, newton_n=2_000, systems_n=200,
                 systems_subset=20, fit_n=40, fit_subset=10, fit_points=32, g2d_n=40,
                 nist_problems=2),
    "quick": dict(repeats=3, derivative_points=100_000, gradient_n=100, python_n=10,
                  hessian_n=100, hessian_ndt_n=40, hessian_scipy_n=20, newton_n=200_000,
                  systems_n=20_000, systems_subset=200, fit_n=2_000, fit_subset=100,
                  fit_points=64, g2d_n=2_000, nist_problems=None),
    "full": dict(repeats=7, derivative_points=1_000_000, gradient_n=100, python_n=10,
                 hessian_n=100, hessian_ndt_n=100, hessian_scipy_n=30, newton_n=1_000_000,
                 systems_n=100_000, systems_subset=1_000, fit_n=20_000, fit_subset=500,
                 fit_points=64, g2d_n=20_000, nist_problems=None),
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

    def __init__(self, sizes, stream=sys.stderr):
        self.sizes = sizes
        self.repeats = sizes["repeats"]
        self.rows = []
        self.stream = stream
        self._cache = {}

    def progress(self, text):
        print(f"[bench] {text}", file=self.stream, flush=True)

    def time(self, call):
        """Return (median seconds, result of the last call) of ``call()``.

        A fast call is warmed up once and then repeated; a slow one (> 0.5 s) is timed fewer
        times so that full mode stays within minutes.
        """
        start = time.perf_counter()
        result = call()
        first = time.perf_counter() - start
        if self.repeats <= 1:
            return first, result
        times = []
        count = self.repeats if first < 0.5 else max(1, self.repeats // 3)
        if first >= 0.5:
            times.append(first)
            count -= 1
        for _ in range(count):
            start = time.perf_counter()
            result = call()
            times.append(time.perf_counter() - start)
        return statistics.median(times), result

    def reference(self, key, call):
        """Time a reference once per run, even when several rows compare against it."""
        if key not in self._cache:
            self._cache[key] = self.time(call)
        return self._cache[key]

    def add(self, row):
        if row.fastcalc_s and row.reference_s:
            row.ratio = row.reference_s / row.fastcalc_s
        self.rows.append(row)
        if row.fastcalc_s is None:
            self.progress(f"  {row.area}: {row.workload}: skipped ({row.note})")
        else:
            self.progress(f"  {row.area}: {row.workload} [{row.size}]: fastcalc "
                          f"{format_seconds(row.fastcalc_s)}, {row.reference} "
                          f"{format_seconds(row.reference_s)}"
                          + (f" (x{row.ratio:.3g})" if row.ratio else ""))

    def skip(self, area, workload, reason):
        self.add(BenchRow(area, workload, "-", note=f"skipped: {reason}"))


def _missing(exc):
    return f"not available in this build ({exc})"


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
    try:
        from fastcalc.differentiate import derivative, gradient
    except ImportError as exc:
        bench.skip(area, "derivative / gradient", _missing(exc))
        return
    from scipy import differentiate
    approx_derivative = _approx_derivative()

    # Elementwise derivative over many points.
    n_points = s["derivative_points"]
    x = np.linspace(-3.0, 3.0, n_points)

    def f(t):
        return np.exp(np.sin(t))

    exact = np.cos(x) * np.exp(np.sin(x))
    bench.progress(f"{area}: derivative of exp(sin x) at {n_points:,} points")
    t_fc, d_fc = bench.time(lambda: derivative(f, x))
    t_sp, d_sp = bench.time(lambda: differentiate.derivative(f, x).df)
    bench.add(BenchRow(area, "derivative exp(sin x), elementwise", f"{n_points:,} points",
                       t_fc, "scipy.differentiate.derivative", t_sp, None,
                       _max_rel_error(d_fc, exact), _max_rel_error(d_sp, exact),
                       "max rel. error vs exact"))

    # Gradient of Rosenbrock: vectorized, compiled, plain Python.
    n = s["gradient_n"]
    problem = wl.rosenbrock_problem(n)
    bench.progress(f"{area}: gradient of Rosenbrock, n={n}")
    t_sp, g_sp = bench.reference(("approx_derivative", n),
                                 lambda: approx_derivative(problem.f, problem.x, method="3-point"))
    err_sp = _max_rel_error(g_sp, problem.gradient)
    t_fc, g_fc = bench.time(lambda: gradient(problem.f, problem.x, vectorized=True))
    bench.add(BenchRow(area, "gradient rosenbrock, vectorized f", f"n={n}", t_fc,
                       "approx_derivative 3-point", t_sp, None,
                       _max_rel_error(g_fc, problem.gradient), err_sp, "max rel. error vs exact"))
    from fastcalc._testfunctions import low_level
    compiled = low_level(problem.compiled_name)
    t_fc, g_fc = bench.time(lambda: gradient(compiled, problem.x))
    bench.add(BenchRow(area, "gradient rosenbrock, compiled f", f"n={n}", t_fc,
                       "approx_derivative 3-point", t_sp, None,
                       _max_rel_error(g_fc, problem.gradient), err_sp, "max rel. error vs exact"))

    n = s["python_n"]
    problem = wl.rosenbrock_problem(n)
    t_sp, g_sp = bench.time(lambda: approx_derivative(problem.f, problem.x, method="3-point"))
    t_fc, g_fc = bench.time(lambda: gradient(problem.f, problem.x))
    bench.add(BenchRow(area, "gradient rosenbrock, Python f", f"n={n}", t_fc,
                       "approx_derivative 3-point", t_sp, None,
                       _max_rel_error(g_fc, problem.gradient),
                       _max_rel_error(g_sp, problem.gradient), "max rel. error vs exact"))


def bench_hessian(bench):
    s = bench.sizes
    area = "hessian"
    try:
        from fastcalc.differentiate import hessian
    except ImportError as exc:
        bench.skip(area, "hessian", _missing(exc))
        return
    from fastcalc._testfunctions import low_level

    metric = "max rel. error vs exact"
    n = s["hessian_n"]
    n_ndt = s["hessian_ndt_n"]
    try:
        import numdifftools
    except ImportError:
        numdifftools = None
    problem = wl.rosenbrock_problem(n)
    compiled = low_level(problem.compiled_name)
    bench.progress(f"{area}: Hessian of Rosenbrock, n={n}")
    for label, call in (("vectorized f", lambda p: hessian(p.f, p.x, vectorized=True)),
                        ("compiled f", lambda p: hessian(compiled, p.x))):
        t_fc, h_fc = bench.time(lambda: call(problem))
        err_fc = _max_rel_error(h_fc, problem.hessian)
        if numdifftools is None:
            bench.add(BenchRow(area, f"hessian rosenbrock, {label}", f"n={n}", t_fc, "-", None,
                               None, err_fc, None, metric, "numdifftools not installed"))
            continue
        small = wl.rosenbrock_problem(n_ndt)
        note = ""
        if n_ndt != n:
            # numdifftools is timed at a smaller n; compare fastcalc at that n too.
            t_fc, h_fc = bench.time(lambda: call(small))
            err_fc = _max_rel_error(h_fc, small.hessian)
            note = f"numdifftools too slow at n={n}: both at n={n_ndt}"
        t_ref, h_ref = bench.reference(("numdifftools", n_ndt),
                                       lambda: numdifftools.Hessian(small.f)(small.x))
        bench.add(BenchRow(area, f"hessian rosenbrock, {label}", f"n={n_ndt}", t_fc,
                           "numdifftools.Hessian", t_ref, None, err_fc,
                           _max_rel_error(h_ref, small.hessian), metric, note))

    n_sp = s["hessian_scipy_n"]
    small = wl.rosenbrock_problem(n_sp)
    from scipy import differentiate
    t_fc, h_fc = bench.time(lambda: hessian(small.f, small.x, vectorized=True))
    t_sp, h_sp = bench.time(lambda: differentiate.hessian(small.f, small.x).ddf)
    bench.add(BenchRow(area, "hessian rosenbrock, vectorized f", f"n={n_sp}", t_fc,
                       "scipy.differentiate.hessian", t_sp, None,
                       _max_rel_error(h_fc, small.hessian), _max_rel_error(h_sp, small.hessian),
                       metric, f"scipy.differentiate too slow at n={n}: both at n={n_sp}"
                       if n_sp != n else ""))


def bench_newton(bench):
    s = bench.sizes
    area = "newton"
    try:
        from fastcalc.roots import newton
    except ImportError as exc:
        bench.skip(area, "newton", _missing(exc))
        return
    from scipy import optimize

    size = s["newton_n"]
    p = wl.cube_root_problem(size)
    metric = "max rel. error vs cbrt"
    bench.progress(f"{area}: {size:,} equations x^3 = a")
    t_sp, r_sp = bench.reference(("scipy.newton", size), lambda: optimize.newton(
        p.f, p.x0, p.fprime, args=(p.a,)))
    err_sp = _max_rel_error(r_sp, p.root)
    t_fc, r_fc = bench.time(lambda: newton(p.f, p.x0, p.fprime, args=(p.a,)))
    bench.add(BenchRow(area, "newton x^3 - a, vectorized f", f"N={size:,}", t_fc,
                       "scipy.optimize.newton (array)", t_sp, None, _max_rel_error(r_fc, p.root),
                       err_sp, metric))
    compiled = _compiled_cube_root()
    if compiled is None:
        bench.skip(area, "newton x^3 - a, compiled f", "no compiled cube-root test function")
        return
    f_c, fprime_c = compiled
    t_fc, r_fc = bench.time(lambda: newton(f_c, p.x0, fprime_c, args=(p.a,)))
    bench.add(BenchRow(area, "newton x^3 - a, compiled f", f"N={size:,}", t_fc,
                       "scipy.optimize.newton (array)", t_sp, None, _max_rel_error(r_fc, p.root),
                       err_sp, metric))


def _compiled_cube_root():
    """The compiled elementwise x^3 - p[0] and its derivative, if this build ships them."""
    from fastcalc import _testfunctions
    names = [("cube_minus", "cube_minus_prime")]
    for f_name, fprime_name in names:
        if hasattr(_testfunctions, "__pyx_capi__") and f_name in _testfunctions.__pyx_capi__:
            return _testfunctions.low_level(f_name), _testfunctions.low_level(fprime_name)
    return None


def bench_systems(bench):
    s = bench.sizes
    area = "systems"
    try:
        from fastcalc.roots import newton_system
    except ImportError as exc:
        bench.skip(area, "newton_system", _missing(exc))
        return
    from scipy import optimize

    size, subset = s["systems_n"], s["systems_subset"]
    p = wl.circle_line_problem(size)
    metric = "max abs. error vs exact root"
    bench.progress(f"{area}: {size:,} 2-D systems (circle meets line)")

    def scipy_loop():
        return np.array([optimize.root(p.F, p.x0[i], args=(p.r[i], p.b[i]), jac=p.jac,
                                       method="hybr").x for i in range(subset)])

    t_sub, r_sp = bench.time(scipy_loop)
    t_sp = t_sub * size / subset
    err_sp = float(np.max(np.abs(r_sp - p.root[:subset])))
    note = (f"root(hybr) timed on {subset:,} of {size:,} systems and scaled; "
            f"per system: fastcalc {{}}, SciPy {format_seconds(t_sub / subset)}")

    def vectorized_F(X, r, b):
        return p.F(X, r, b)

    t_fc, res = bench.time(lambda: newton_system(vectorized_F, p.x0, args=(p.r, p.b),
                                                 vectorized=True))
    x_fc = getattr(res, "x", res)
    bench.add(BenchRow(area, "newton_system 2-D, vectorized F", f"N={size:,}", t_fc,
                       "scipy.optimize.root loop", t_sp, None,
                       float(np.max(np.abs(x_fc - p.root))), err_sp, metric,
                       note.format(format_seconds(t_fc / size))))


def _chi2_excess(problem, params_fc, params_ref, sigma):
    """Max relative chi2 excess of each solution over the better of the two, per dataset."""
    def chi2(params):
        model = problem.model(problem.x, *np.asarray(params).T[:, :, None])
        return np.nansum(((problem.Y[:len(params)] - model) / sigma) ** 2, axis=1)

    c_fc, c_ref = chi2(params_fc[:len(params_ref)]), chi2(params_ref)
    best = np.fmin(c_fc, c_ref)
    excess = lambda c: float(np.nanmax(np.where(np.isfinite(c), (c - best) / best, np.inf)))
    return excess(c_fc), excess(c_ref)


def _curve_fit_loop(problem, subset, sigma, func=None):
    from scipy.optimize import curve_fit
    func = func or problem.model
    sigma_vec = np.full(problem.Y.shape[1], sigma)

    def loop():
        out = np.full((subset, problem.params.shape[1]), np.nan)
        for i in range(subset):
            try:
                out[i] = curve_fit(func, problem.x, problem.Y[i], p0=problem.p0[i],
                                   sigma=sigma_vec, absolute_sigma=True)[0]
            except RuntimeError:   # curve_fit raises when it does not converge
                pass
        return out
    return loop


def _params_in_order(result, problem, model):
    """fastcalc parameters reordered to the workload's NumPy model order."""
    params = np.asarray(result.params)
    names = list(getattr(model, "param_names", problem.param_names))
    if names == list(problem.param_names):
        return params
    return params[:, [names.index(name) for name in problem.param_names]]


def _fit_row(bench, area, label, problem, fit_call, model, subset):
    size = problem.Y.shape[0]
    sigma = problem.sigma
    t_sub, p_ref = bench.time(_curve_fit_loop(problem, subset, sigma))
    t_ref = t_sub * size / subset
    t_fc, result = bench.time(fit_call)
    p_fc = _params_in_order(result, problem, model)
    err_fc, err_ref = _chi2_excess(problem, p_fc, p_ref, sigma)
    ok = float(np.mean(np.asarray(result.status) == 0))
    bench.add(BenchRow(area, label, f"N={size:,} x {problem.Y.shape[1]} pts", t_fc,
                       "curve_fit loop", t_ref, None, err_fc, err_ref,
                       "max rel. chi2 excess over best",
                       f"curve_fit timed on {subset:,} of {size:,} datasets and scaled; "
                       f"fastcalc converged {ok:.1%}"))


def bench_fitting(bench):
    s = bench.sizes
    area = "fitting"
    try:
        from fastcalc import models
        from fastcalc.fitting import fit, fit_batch
    except ImportError as exc:
        bench.skip(area, "fit / fit_batch", _missing(exc))
        return
    size, subset, points = s["fit_n"], s["fit_subset"], s["fit_points"]
    for name in ("gaussian", "exponential"):
        problem = wl.peak_fit_problem(name, size, points=points)
        model = models.get_model(name)
        bench.progress(f"{area}: fit_batch {name}, {size:,} datasets of {points} points")
        _fit_row(bench, area, f"fit_batch {name}, built-in model", problem,
                 lambda: fit_batch(model, problem.x, problem.Y, sigma=problem.sigma,
                                   absolute_sigma=True), model, subset)
    problem = wl.peak_fit_problem("gaussian", size, points=points)
    bench.progress(f"{area}: fit_batch with a Python model, {size:,} datasets")
    _fit_row(bench, area, "fit_batch gaussian, Python model", problem,
             lambda: fit_batch(problem.model, problem.x, problem.Y, problem.p0,
                               sigma=problem.sigma, absolute_sigma=True), problem, subset)


def bench_gaussian_2d(bench):
    s = bench.sizes
    area = "gaussian_2d"
    try:
        from fastcalc import models
        from fastcalc.fitting import fit_batch
    except ImportError as exc:
        bench.skip(area, "fit_batch gaussian_2d", _missing(exc))
        return
    size, subset = s["g2d_n"], s["fit_subset"]
    problem = wl.gaussian_2d_problem(size)
    model = models.get_model("gaussian_2d")
    bench.progress(f"{area}: fit_batch gaussian_2d, {size:,} stamps of 5x5 pixels")
    _fit_row(bench, area, "fit_batch gaussian_2d 5x5, built-in model", problem,
             lambda: fit_batch(model, problem.x, problem.Y, sigma=problem.sigma,
                               absolute_sigma=True), model, subset)


def bench_nist(bench):
    area = "nist"
    try:
        from fastcalc import nist
    except ImportError as exc:
        bench.skip(area, "NIST StRD", _missing(exc))
        return
    bench.skip(area, "NIST StRD", "not wired yet")


AREAS = {
    "derivatives": bench_derivatives,
    "hessian": bench_hessian,
    "newton": bench_newton,
    "systems": bench_systems,
    "fitting": bench_fitting,
    "gaussian_2d": bench_gaussian_2d,
    "nist": bench_nist,
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
    }


def run(areas, mode, stream=sys.stderr):
    """Run the benchmark ``areas`` (names of :data:`AREAS`) at ``mode`` sizes; return the rows."""
    bench = Bench(SIZES[mode], stream=stream)
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
              f"Python {info['python']}, numpy {info['numpy']}, scipy {info['scipy']}; "
              f"times are medians; ratio = reference time / fastcalc time (> 1: fastcalc faster)")
    table = format_table(
        ["area", "workload", "size", "fastcalc", "reference", "ref. time", "ratio",
         "fastcalc err", "ref. err", "error metric"],
        [[r.area, r.workload, r.size, format_seconds(r.fastcalc_s), r.reference or "-",
          format_seconds(r.reference_s), f"{r.ratio:.3g}x" if r.ratio else "-",
          format_number(r.fastcalc_error), format_number(r.reference_error), r.metric or "-"]
         for r in rows],
        right_align=(3, 5, 6, 7, 8))
    notes = [f"  [{i}] {r.area}: {r.workload}: {r.note}" for i, r in enumerate(rows, 1) if r.note]
    return header + "\n\n" + table + ("\n\nnotes:\n" + "\n".join(notes) if notes else "")


def write_json(path, rows, info, mode):
    with open(path, "w") as out:
        json.dump({"mode": mode, "machine": info, "rows": [asdict(r) for r in rows]}, out,
                  indent=2)


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
    ax.barh(y, ratios, color=colors)
    ax.set_yticks(y, labels, fontsize=8)
    ax.set_xscale("log")
    ax.axvline(1.0, color="black", linewidth=0.8)
    for yi, q in zip(y, ratios):
        ax.text(q, yi, f" {q:.3g}x", va="center", fontsize=8)
    ax.set_xlabel("speed-up over the reference (log scale; > 1: fastcalc faster)")
    ax.set_title(f"fastcalc {info['fastcalc']} vs SciPy ({mode}): {info['cpu']}, "
                 f"{info['threads']} threads", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run_bench(args):
    """The ``bench`` command: run, print the table, write JSON/PNG; return the exit status."""
    from ._usage_error import UsageError
    if args.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise UsageError("--plot needs matplotlib: pip install 'fastcalc[plot]'") from None
    mode = args.sizes or ("quick" if args.quick else "full")
    areas = args.only or list(AREAS)
    info = machine_info()
    start = time.perf_counter()
    rows = run(areas, mode)
    print(render_table(rows, info, mode))
    print(f"[bench] done in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    if args.json:
        write_json(args.json, rows, info, mode)
        print(f"[bench] wrote {args.json}", file=sys.stderr)
    if args.plot:
        write_plot(args.plot, rows, info, mode)
        print(f"[bench] wrote {args.plot}", file=sys.stderr)
    return 0
