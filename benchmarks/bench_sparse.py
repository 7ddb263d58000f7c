"""Large sparse problems (issue 16): fastcalc vs SciPy in the same run.

* Tridiagonal Jacobian, n = 100,000, vectorized f: ``jacobian(..., sparsity=S)`` (forward
  accuracy 1 and central) vs ``scipy.optimize._numdiff.approx_derivative(..., sparsity=S)``
  with the same stencil ('2-point', '3-point'), and the floor: f on the ``(n, 4)`` (forward)
  or ``(n, 7)`` (central) block of points it needs.
* Bratu 1-D, ``newton_system(F, x0, sparsity=S, vectorized=True)``: n = 100,000, and n =
  10,000 against ``scipy.optimize.root(method="krylov")`` preconditioned by the inverse of
  the discrete Laplacian (unpreconditioned it took 13 s at n = 2,000; preconditioned it did
  not finish in 100 s at n = 50,000 on the development VM, so the reference runs at 10,000).

``extra_info["max_error"]`` holds the accuracy against the exact Jacobian / ``|F|``.

Run: ``python -m pytest benchmarks/bench_sparse.py --benchmark-only``
(``--benchmark-disable`` runs each case once as a smoke test).
"""
import numpy as np
import pytest
from scipy.optimize import root
from scipy.optimize._numdiff import approx_derivative
from scipy.sparse.linalg import LinearOperator

from fastcalc import group_columns, jacobian, newton_system
from fastcalc.cli._workloads import bratu_problem, tridiagonal_jacobian_problem

N = 100_000
N_BRATU_REFERENCE = 10_000
STENCILS = {"forward": ("2-point", dict(method="forward", accuracy=1), 4),
            "central": ("3-point", dict(method="central"), 7)}


@pytest.fixture(scope="module")
def problem():
    return tridiagonal_jacobian_problem(N)


def jacobian_error(J, p):
    sub, main, sup = p.diagonals
    return max(float(np.abs(J.diagonal(k) - d).max()) for k, d in ((-1, sub), (0, main),
                                                                    (1, sup)))


@pytest.mark.parametrize("stencil", STENCILS)
@pytest.mark.parametrize("who", ["fastcalc", "fastcalc-groups", "scipy", "floor"])
def test_tridiagonal_jacobian(benchmark, problem, stencil, who):
    p = problem
    scipy_method, options, points = STENCILS[stencil]
    benchmark.group = f"tridiagonal jacobian n={N:,} {stencil}"
    if who == "floor":
        X = np.ascontiguousarray(np.repeat(p.x[:, None], points, axis=1))
        benchmark(p.f, X)
        return
    if who == "scipy":
        J = benchmark(approx_derivative, p.f, p.x, method=scipy_method, sparsity=p.sparsity)
    else:
        groups = group_columns(p.sparsity) if who == "fastcalc-groups" else None
        J = benchmark(jacobian, p.f, p.x, sparsity=p.sparsity, groups=groups, vectorized=True,
                      **options)
    benchmark.extra_info["max_error"] = jacobian_error(J, p)
    assert jacobian_error(J, p) < (1e-6 if stencil == "forward" else 1e-8)


@pytest.mark.parametrize("n, who", [(N, "fastcalc"), (N_BRATU_REFERENCE, "fastcalc"),
                                    (N_BRATU_REFERENCE, "scipy-krylov")])
def test_bratu(benchmark, n, who):
    p = bratu_problem(n)
    benchmark.group = f"bratu n={n:,}"
    if who == "fastcalc":
        r = benchmark(newton_system, p.F, p.x0, sparsity=p.sparsity, vectorized=True)
        assert r.status == 0
    else:
        M = LinearOperator((n, n), matvec=p.laplacian_solve)
        r = benchmark(root, p.F, p.x0, method="krylov",
                      options={"jac_options": {"inner_M": M}})
        assert r.success
    benchmark.extra_info["max_error"] = float(np.abs(r.fun).max())
    assert abs(r.x.max() - p.max_u) < 1e-5
