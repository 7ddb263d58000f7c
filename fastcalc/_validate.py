"""``python -m fastcalc validate``: every public routine against exact answers and SciPy.

Each check computes one error (relative unless stated) and compares it with a tolerance that a
wrong implementation would exceed. The command prints a pass/fail table and exits with status 1
when any check fails. A check that raises counts as a failure (the exception is shown); a routine
that this build does not contain is reported as skipped.
"""
import math
import sys
import traceback
import warnings
from dataclasses import dataclass

import numpy as np

from . import _workloads as wl
from ._table import format_number, format_table

__all__ = ["Check", "CHECKS", "run_checks", "run_validate"]


@dataclass
class Check:
    """One accuracy check: its measured error against a tolerance."""

    area: str
    name: str
    reference: str
    error: float = None
    tolerance: float = None
    outcome: str = "SKIP"       # PASS, FAIL or SKIP
    detail: str = ""


def _rel(value, exact):
    """Max relative error, with an absolute floor of 1 in the scale."""
    value, exact = np.asarray(value, float), np.asarray(exact, float)
    if value.shape != exact.shape:
        raise AssertionError(f"shape {value.shape}, expected {exact.shape}")
    return float(np.max(np.abs(value - exact) / np.maximum(np.abs(exact), 1.0)))


def _rel_stderr(params, reference, stderr):
    """Max parameter difference in units of the reference's standard error."""
    params, reference, stderr = (np.asarray(a, float) for a in (params, reference, stderr))
    return float(np.max(np.abs(params - reference) / stderr))


def _curve_fit(func, x, y, p0, sigma):
    from scipy.optimize import curve_fit
    popt, pcov = curve_fit(func, x, y, p0=p0, sigma=np.full(np.shape(y), sigma),
                           absolute_sigma=True, xtol=1e-14, ftol=1e-14, gtol=1e-14, maxfev=100000)
    return popt, np.sqrt(np.diag(pcov))


# ----------------------------------------------------------------------------------------------
# Checks per area: each yields (name, reference, error, tolerance). Imports inside, so that a
# missing module skips the area.

def checks_differentiate():
    from fastcalc.differentiate import check_grad, derivative, gradient, hessian, jacobian, taylor
    from fastcalc._testfunctions import low_level

    x = np.linspace(-3.0, 3.0, 41)
    f = lambda t: np.exp(np.sin(t))                          # noqa: E731
    d1 = np.cos(x) * np.exp(np.sin(x))
    d2 = (np.cos(x) ** 2 - np.sin(x)) * np.exp(np.sin(x))
    yield "derivative exp(sin x), central", "exact", _rel(derivative(f, x), d1), 1e-8
    yield ("derivative exp(sin x), accuracy=8", "exact",
           _rel(derivative(f, x, accuracy=8), d1), 1e-11)
    yield ("derivative exp(sin x), complex step", "exact",
           _rel(derivative(f, x, method="complex"), d1), 1e-13)
    yield ("derivative exp(sin x), richardson", "exact",
           _rel(derivative(f, x, method="richardson"), d1), 1e-10)
    yield ("derivative exp(sin x), forward", "exact",
           _rel(derivative(f, x, method="forward"), d1), 1e-6)
    yield "second derivative exp(sin x)", "exact", _rel(derivative(f, x, order=2), d2), 1e-5

    p = wl.rosenbrock_problem(10)
    yield "gradient rosenbrock n=10, Python f", "exact", _rel(gradient(p.f, p.x), p.gradient), 1e-7
    yield ("gradient rosenbrock n=10, vectorized f", "exact",
           _rel(gradient(p.f, p.x, vectorized=True), p.gradient), 1e-7)
    yield ("gradient rosenbrock n=10, compiled f", "exact",
           _rel(gradient(low_level("rosenbrock"), p.x), p.gradient), 1e-7)
    from scipy.optimize._numdiff import approx_derivative
    yield ("gradient rosenbrock n=10 vs approx_derivative", "scipy",
           _rel(gradient(p.f, p.x), approx_derivative(p.f, p.x, method="3-point")), 1e-6)

    n = 6
    xv = np.random.default_rng(wl.SEED).uniform(-1.0, 1.0, n)
    J = np.zeros((n, n))
    for i in range(n):
        nxt, prv = (i + 1) % n, (i - 1) % n
        J[i, i] = 2 * xv[i] * np.sin(xv[nxt]) - np.exp(xv[prv]) * np.sin(xv[i])
        J[i, nxt] = xv[i] ** 2 * np.cos(xv[nxt])
        J[i, prv] = np.exp(xv[prv]) * np.cos(xv[i])

    def vector_field(v):
        return v ** 2 * np.sin(np.roll(v, -1, axis=0)) + np.exp(np.roll(v, 1, axis=0)) * np.cos(v)

    yield ("jacobian cyclic field n=6, Python f", "exact",
           _rel(jacobian(vector_field, xv), J), 1e-7)
    yield ("jacobian cyclic field n=6, compiled f", "exact",
           _rel(jacobian(low_level("vector_field"), xv), J), 1e-7)
    yield ("jacobian cyclic field n=6 vs approx_derivative", "scipy",
           _rel(jacobian(vector_field, xv), approx_derivative(vector_field, xv)), 1e-6)

    p = wl.rosenbrock_problem(8)
    yield "hessian rosenbrock n=8, Python f", "exact", _rel(hessian(p.f, p.x), p.hessian), 1e-5
    yield ("hessian rosenbrock n=8, compiled f", "exact",
           _rel(hessian(low_level("rosenbrock"), p.x), p.hessian), 1e-5)
    yield ("hessian rosenbrock n=8, from exact gradient", "exact",
           _rel(hessian(p.f, p.x, grad=wl.rosenbrock_gradient), p.hessian), 1e-6)
    e = wl.exp_sin_problem(6)
    yield ("hessian exp_sin n=6, vectorized f", "exact",
           _rel(hessian(e.f, e.x, vectorized=True), e.hessian), 1e-5)
    yield ("check_grad rosenbrock n=10, exact gradient", "0",
           float(check_grad(p.f, wl.rosenbrock_gradient, p.x)), 1e-6)
    wrong = lambda v: wl.rosenbrock_gradient(v) * 1.01                # noqa: E731
    yield ("check_grad detects a 1% gradient error", "0.01",
           abs(float(check_grad(p.f, wrong, p.x)) - 0.01), 2e-3)
    poly = taylor(np.exp, 0.0, 4)
    exact = np.array([1.0 / math.factorial(k) for k in range(5)])
    yield "taylor exp at 0, order 4", "exact 1/k!", _rel(poly.coef, exact), 1e-4


def checks_roots():
    from fastcalc.roots import newton, newton_system
    from scipy import optimize

    root = newton(lambda t: t ** 3 - 2.0, 1.0, lambda t: 3 * t ** 2)
    yield "newton scalar x^3 = 2", "exact", _rel(root, 2.0 ** (1 / 3)), 1e-14
    root = newton(lambda t: t ** 3 - 2.0, 1.0)
    yield "newton scalar, finite-difference f'", "exact", _rel(root, 2.0 ** (1 / 3)), 1e-12
    root = newton(lambda t: t ** 3 - 2.0, 1.0, lambda t: 3 * t ** 2, fprime2=lambda t: 6 * t)
    yield "newton scalar, Halley", "exact", _rel(root, 2.0 ** (1 / 3)), 1e-14
    root = newton(lambda t: np.cos(t) - t, 0.5, bracket=(0.0, 1.0))
    yield ("newton bracketed cos x = x", "scipy brentq",
           _rel(root, optimize.brentq(lambda t: np.cos(t) - t, 0.0, 1.0, xtol=1e-15)), 1e-13)

    p = wl.cube_root_problem(1000)
    batch = newton(p.f, p.x0, p.fprime, args=(p.a,))
    batch = getattr(batch, "root", batch)
    yield "newton batch 1000 x^3 = a", "exact cbrt", _rel(batch, p.root), 1e-14
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = optimize.newton(p.f, p.x0, p.fprime, args=(p.a,))
    yield "newton batch 1000 vs scipy newton", "scipy", _rel(batch, ref), 1e-13

    s = wl.circle_line_problem(200)
    result = newton_system(s.F, s.x0, args=(s.r, s.b), vectorized=True)
    yield ("newton_system 200 circle/line systems", "exact",
           float(np.max(np.abs(getattr(result, "x", result) - s.root))), 1e-10)
    one = newton_system(lambda v: s.F(v, s.r[0], s.b[0]), s.x0[0],
                        jac=lambda v: s.jac(v, s.r[0], s.b[0]))
    ref = optimize.root(s.F, s.x0[0], args=(s.r[0], s.b[0]), jac=s.jac, method="hybr",
                        options={"xtol": 1e-14})
    yield ("newton_system one system vs root(hybr)", "scipy",
           _rel(getattr(one, "x", one), ref.x), 1e-12)


def checks_optimize():
    from fastcalc.optimize import gradient_descent, lagrange

    quad = lambda v: (v[0] - 1.0) ** 2 + 10.0 * (v[1] + 2.0) ** 2     # noqa: E731
    grad = lambda v: np.array([2.0 * (v[0] - 1.0), 20.0 * (v[1] + 2.0)])  # noqa: E731
    result = gradient_descent(quad, np.array([3.0, 1.0]), grad, tol=1e-10, maxiter=100_000)
    yield ("gradient_descent quadratic bowl", "exact (1, -2)",
           _rel(getattr(result, "x", result), [1.0, -2.0]), 1e-6)
    # Minimise x + y on the circle x^2 + y^2 = 2: x = y = -1, multiplier -1/2.
    result = lagrange(lambda v: v[0] + v[1], [lambda v: v[0] ** 2 + v[1] ** 2 - 2.0],
                      np.array([-0.8, -1.3]))
    yield "lagrange x + y on a circle: x", "exact (-1, -1)", _rel(result.x, [-1.0, -1.0]), 1e-10
    yield ("lagrange x + y on a circle: multiplier", "exact -1/2",
           _rel(np.ravel(result.multipliers), [-0.5]), 1e-10)


def checks_fitting():
    from fastcalc import models
    from fastcalc.fitting import chi2, fit, fit_batch, linear_fit, polyfit

    rng = np.random.default_rng(wl.SEED)
    x = np.linspace(0.0, 10.0, 50)
    sigma = rng.uniform(0.5, 1.5, x.size)
    y = 2.0 + 0.7 * x + sigma * rng.standard_normal(x.size)
    line = linear_fit(x, y, sigma=sigma)
    ref = np.polyfit(x, y, 1, w=1.0 / sigma)[::-1]
    yield "linear_fit vs numpy.polyfit (weighted)", "numpy", _rel(_line_params(line), ref), 1e-10
    y3 = 1.0 - 0.5 * x + 0.2 * x ** 2 - 0.01 * x ** 3 + sigma * rng.standard_normal(x.size)
    poly = polyfit(x, y3, 3, sigma=sigma)
    ref = np.polyfit(x, y3, 3, w=1.0 / sigma)
    yield ("polyfit degree 3 vs numpy.polyfit: fitted curve", "numpy",
           _rel(models.polynomial(3)(x, *poly.params), np.polyval(ref, x)), 1e-9)
    model_values = np.polyval(ref, x)
    yield ("chi2 vs the definition", "exact",
           _rel(chi2(y3, model_values, sigma), np.sum(((y3 - model_values) / sigma) ** 2)), 1e-13)

    for name in ("gaussian", "exponential"):
        problem = wl.peak_fit_problem(name, 50)
        model = models.get_model(name)
        order = [list(model.param_names).index(n) for n in problem.param_names] \
            if list(model.param_names) != list(problem.param_names) else None
        single = fit(model, problem.x, problem.Y[0], sigma=problem.sigma, absolute_sigma=True)
        params = np.asarray(single.params)[order] if order else np.asarray(single.params)
        ref, ref_err = _curve_fit(problem.model, problem.x, problem.Y[0], problem.p0[0],
                                  problem.sigma)
        yield (f"fit {name}: params vs curve_fit", "scipy, units of stderr",
               _rel_stderr(params, ref, ref_err), 1e-4)
        stderr = np.asarray(single.stderr)[order] if order else np.asarray(single.stderr)
        yield f"fit {name}: stderr vs curve_fit", "scipy", _rel(stderr / ref_err, 1.0), 1e-3
        batch = fit_batch(model, problem.x, problem.Y, sigma=problem.sigma, absolute_sigma=True)
        params = np.asarray(batch.params)[:, order] if order else np.asarray(batch.params)
        refs = np.array([_curve_fit(problem.model, problem.x, yi, p0, problem.sigma)
                         for yi, p0 in zip(problem.Y, problem.p0)])
        yield (f"fit_batch {name}, 50 datasets: params vs curve_fit", "scipy, units of stderr",
               _rel_stderr(params, refs[:, 0], refs[:, 1]), 1e-4)

    problem = wl.peak_fit_problem("gaussian", 50)
    batch = fit_batch(problem.model, problem.x, problem.Y, problem.p0, sigma=problem.sigma,
                      absolute_sigma=True)
    refs = np.array([_curve_fit(problem.model, problem.x, yi, p0, problem.sigma)
                     for yi, p0 in zip(problem.Y, problem.p0)])
    yield ("fit_batch Python model, 50 datasets vs curve_fit", "scipy, units of stderr",
           _rel_stderr(batch.params, refs[:, 0], refs[:, 1]), 1e-4)
    single = fit(problem.model, problem.x, problem.Y[0], problem.p0[0], sigma=problem.sigma,
                 absolute_sigma=True, method="gd")
    yield ("fit method='gd' vs curve_fit", "scipy, units of stderr",
           _rel_stderr(single.params, refs[0, 0], refs[0, 1]), 1e-2)

    stamps = wl.gaussian_2d_problem(30)
    model = models.get_model("gaussian_2d")
    batch = fit_batch(model, stamps.x, stamps.Y, sigma=stamps.sigma, absolute_sigma=True)
    order = [list(model.param_names).index(n) for n in stamps.param_names] \
        if list(model.param_names) != list(stamps.param_names) else slice(None)
    refs = np.array([_curve_fit(stamps.model, stamps.x, yi, p0, stamps.sigma)
                     for yi, p0 in zip(stamps.Y, stamps.p0)])
    yield ("fit_batch gaussian_2d 5x5, 30 stamps vs curve_fit", "scipy, units of stderr",
           _rel_stderr(np.asarray(batch.params)[:, order], refs[:, 0], refs[:, 1]), 1e-4)


def _line_params(result):
    return np.asarray(result.params)


def checks_nist(nist_dir=None):
    from fastcalc import nist   # noqa: F401
    raise NotImplementedError("NIST checks not wired yet")


CHECKS = {
    "differentiate": checks_differentiate,
    "roots": checks_roots,
    "optimize": checks_optimize,
    "fitting": checks_fitting,
    "nist": checks_nist,
}


def run_checks(stream=sys.stderr, nist_dir=None):
    """Run every check; return the list of :class:`Check`."""
    results = []
    for area, generate in CHECKS.items():
        print(f"[validate] {area}", file=stream, flush=True)
        kwargs = {"nist_dir": nist_dir} if area == "nist" else {}
        iterator = generate(**kwargs)
        while True:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    name, reference, error, tolerance = next(iterator)
            except StopIteration:
                break
            except ImportError as exc:
                results.append(Check(area, "(all checks)", "-", detail=f"not in this build: {exc}"))
                break
            except Exception as exc:   # a routine that raises is a failed check
                where = traceback.extract_tb(exc.__traceback__)[-1]
                results.append(Check(area, "(check raised)", "-", outcome="FAIL",
                                     detail=f"{type(exc).__name__}: {exc} (line {where.lineno})"))
                break
            ok = error is not None and np.isfinite(error) and error <= tolerance
            results.append(Check(area, name, reference, error, tolerance,
                                 "PASS" if ok else "FAIL"))
    return results


def render_checks(checks):
    table = format_table(
        ["area", "check", "reference", "error", "tolerance", "result"],
        [[c.area, c.name, c.reference, format_number(c.error, 2), format_number(c.tolerance, 2),
          c.outcome + (f" ({c.detail})" if c.detail else "")] for c in checks],
        right_align=(3, 4))
    counts = {o: sum(c.outcome == o for c in checks) for o in ("PASS", "FAIL", "SKIP")}
    return table + (f"\n\n{counts['PASS']} passed, {counts['FAIL']} failed, "
                    f"{counts['SKIP']} skipped")


def run_validate(args):
    """The ``validate`` command: print the table; exit status 1 if any check failed."""
    checks = run_checks(nist_dir=getattr(args, "nist_dir", None))
    print(render_checks(checks))
    return 1 if any(c.outcome == "FAIL" for c in checks) else 0
