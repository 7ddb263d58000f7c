"""Lagrange multipliers and gradient descent: fastcalc vs SciPy in the same run.

Textbook problems with exact answers; ``extra_info["x_error"]`` / ``["multiplier_error"]`` hold
the max-norm error against them, so speed and accuracy are read together:

* extremize ``x + y`` on ``x^2 + y^2 = 1`` (minimum of ``-(x + y)`` for the minimizers);
* ``xyz`` on ``x + y + z = 1`` (stationary at 1/3, multiplier 1/9; SciPy minimizes ``-xyz``);
* ``|x|^2`` on two linear constraints ``A x = b`` (the minimum-norm point).

fastcalc.lagrange (finite-difference derivatives) against ``minimize(method="trust-constr")``
(multipliers ``v``, opposite sign convention) and ``method="SLSQP"``. Gradient descent on the
Rosenbrock function against ``minimize(method="CG")`` and ``"BFGS"`` with the same gradient.
"""
import warnings

import numpy as np
import pytest
from scipy.optimize import NonlinearConstraint, minimize, rosen, rosen_der

from fastcalc import gradient_descent, lagrange

A = np.array([[1.0, 2.0, 1.0], [2.0, -1.0, -3.0]])
B = np.array([1.0, 4.0])
SQ = np.sqrt(0.5)

PROBLEMS = {
    # name: (objective for lagrange, objective SciPy minimizes, sign relating the two,
    #        constraint list, x0, exact x, exact multipliers for the lagrange objective)
    "circle": (lambda x: -(x[0] + x[1]), lambda x: -(x[0] + x[1]), 1.0,
               [lambda x: x[0] ** 2 + x[1] ** 2 - 1.0], np.array([1.0, 0.5]),
               np.array([SQ, SQ]), np.array([-SQ])),
    "xyz": (lambda x: x[0] * x[1] * x[2], lambda x: -x[0] * x[1] * x[2], -1.0,
            [lambda x: x.sum() - 1.0], np.array([0.3, 0.4, 0.2]), np.full(3, 1 / 3),
            np.array([1 / 9])),
    "two_linear": (lambda x: x @ x, lambda x: x @ x, 1.0,
                   [lambda x: A[0] @ x - B[0], lambda x: A[1] @ x - B[1]], np.zeros(3),
                   A.T @ np.linalg.solve(A @ A.T, B), 2 * np.linalg.solve(A @ A.T, B)),
}


def _solve(solver, name):
    f, f_min, sign, constraints, x0, _, _ = PROBLEMS[name]
    if solver == "fastcalc_lagrange":
        r = lagrange(f, constraints, x0)
        return r.x, r.multipliers
    if solver == "scipy_trust_constr":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            r = minimize(f_min, x0, method="trust-constr",
                         constraints=[NonlinearConstraint(g, 0.0, 0.0) for g in constraints])
        # trust-constr's Lagrangian is f_min + v g, and f = sign * f_min
        return r.x, -sign * np.concatenate(r.v)
    r = minimize(f_min, x0, method="SLSQP", constraints=[{"type": "eq", "fun": g}
                                                         for g in constraints])
    return r.x, None


@pytest.mark.parametrize("name", list(PROBLEMS))
@pytest.mark.parametrize("solver", ["fastcalc_lagrange", "scipy_trust_constr", "scipy_slsqp"])
def test_lagrange_problems(benchmark, solver, name):
    benchmark.group = f"lagrange: {name}"
    x, multipliers = benchmark.pedantic(_solve, args=(solver, name), rounds=5, iterations=1,
                                        warmup_rounds=1)
    exact_x, exact_multipliers = PROBLEMS[name][5], PROBLEMS[name][6]
    benchmark.extra_info["x_error"] = float(np.abs(x - exact_x).max())
    if multipliers is not None:
        benchmark.extra_info["multiplier_error"] = float(np.abs(multipliers
                                                                - exact_multipliers).max())
    if solver == "fastcalc_lagrange":
        assert np.abs(x - exact_x).max() < 1e-10
        assert np.abs(multipliers - exact_multipliers).max() < 1e-10


GD_SOLVERS = {
    "fastcalc_gradient_descent": lambda: gradient_descent(rosen, [-1.2, 1.0], rosen_der,
                                                          maxiter=100_000, tol=1e-6).x,
    "scipy_cg": lambda: minimize(rosen, [-1.2, 1.0], jac=rosen_der, method="CG", tol=1e-10).x,
    "scipy_bfgs": lambda: minimize(rosen, [-1.2, 1.0], jac=rosen_der, method="BFGS",
                                   tol=1e-10).x,
}


@pytest.mark.parametrize("solver", list(GD_SOLVERS))
def test_rosenbrock_descent(benchmark, solver):
    benchmark.group = "minimize Rosenbrock from (-1.2, 1)"
    x = benchmark.pedantic(GD_SOLVERS[solver], rounds=3, iterations=1)
    benchmark.extra_info["x_error"] = float(np.abs(x - 1.0).max())
    assert np.abs(x - 1.0).max() < 1e-4
