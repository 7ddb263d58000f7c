"""Sparse Jacobians and Hessians by column grouping, matrix-free products, sparse Newton.

References: the dense finite-difference routines (themselves tested against SciPy), analytic
derivatives, and SciPy's ``group_columns`` and ``approx_derivative``.
"""
import numpy as np
import pytest
import scipy.sparse as sp
from scipy.optimize._numdiff import approx_derivative
from scipy.optimize._numdiff import group_columns as scipy_group_columns

from fastcalc import group_columns, hessian_operator, hvp, jacobian, jacobian_operator, jvp


def tridiagonal(n):
    ones = np.ones(n)
    return sp.diags_array([ones[1:], ones, ones[1:]], offsets=[-1, 0, 1], format="csr")


def chain(x):
    """A vector field with a tridiagonal Jacobian (also works on (n, k) columns)."""
    y = x ** 3
    y[1:] += np.sin(x[:-1])
    y[:-1] += x[1:] ** 2 * x[:-1]
    return y


def chain_jacobian(x):
    n = x.size
    J = np.diag(3 * x ** 2)
    J[np.arange(n - 1), np.arange(n - 1)] += x[1:] ** 2
    J[np.arange(1, n), np.arange(n - 1)] = np.cos(x[:-1])
    J[np.arange(n - 1), np.arange(1, n)] = 2 * x[1:] * x[:-1]
    return J


class Counting:
    """A function that counts its evaluation points (columns of a vectorized call)."""

    def __init__(self, f, vectorized=False):
        self.f, self.vectorized, self.points = f, vectorized, 0

    def __call__(self, x):
        self.points += x.shape[1] if self.vectorized else 1
        return self.f(x)


PATTERNS = {
    "tridiagonal": lambda: tridiagonal(300),
    "banded-5": lambda: sp.diags_array([np.ones(300 - abs(k)) for k in range(-2, 3)],
                                       offsets=list(range(-2, 3))),
    "block-diagonal": lambda: sp.block_diag([np.ones((6, 6))] * 50),
    "random-1%": lambda: sp.random_array((1000, 1000), density=0.01,
                                         rng=np.random.default_rng(3)) + sp.eye_array(1000),
    "random-1%-rectangular": lambda: sp.random_array((1500, 1000), density=0.01,
                                                     rng=np.random.default_rng(4)),
}


@pytest.mark.parametrize("name", PATTERNS)
def test_groups_are_valid_and_never_more_than_scipys(name):
    S = sp.csr_array(PATTERNS[name]())
    groups = group_columns(S)
    dense = S.toarray() != 0
    for g in range(groups.max() + 1):       # no two columns of a group share a row
        assert (dense[:, groups == g].sum(axis=1) <= 1).all()
    assert groups.max() + 1 <= scipy_group_columns(S).max() + 1
    assert np.array_equal(group_columns(dense), groups)   # dense boolean input alike


def test_banded_patterns_get_the_optimal_count():
    assert group_columns(tridiagonal(10_000)).max() + 1 == 3
    assert group_columns(PATTERNS["banded-5"]()).max() + 1 == 5


@pytest.mark.parametrize("method, accuracy, tol", [
    ("central", 2, 1e-9), ("central", 4, 1e-11), ("forward", 1, 1e-6), ("forward", 2, 1e-8),
    ("backward", 1, 1e-6), ("backward", 3, 1e-9), ("complex", 2, 1e-13)])
@pytest.mark.parametrize("vectorized", [False, True])
def test_sparse_equals_dense_to_the_methods_accuracy(method, accuracy, tol, vectorized):
    n = 40
    x = np.linspace(0.2, 1.5, n)
    f = Counting(chain, vectorized)
    r = jacobian(f, x, sparsity=tridiagonal(n), method=method, accuracy=accuracy,
                 vectorized=vectorized, full_output=True)
    assert isinstance(r.df, sp.csr_array)
    exact = chain_jacobian(x)
    assert np.abs(r.df.toarray() - exact).max() <= tol * np.abs(exact).max()
    # exactly the pattern: 3n - 2 stored entries at the tridiagonal positions
    assert r.df.nnz == 3 * n - 2 and (r.df.toarray() != 0).sum() == 3 * n - 2
    assert (r.status == 0).all()
    # the error estimate bounds the actual error (not for complex: rounding only)
    if method != "complex":
        assert (np.abs(r.df.toarray() - exact) <= r.error.toarray() + 1e-300).all()


@pytest.mark.parametrize("method, per_group", [("forward", 1), ("backward", 1), ("central", 2),
                                               ("complex", 1)])
@pytest.mark.parametrize("vectorized", [False, True])
def test_evaluations_are_groups_times_stencil_plus_one(method, per_group, vectorized):
    n = 50
    f = Counting(chain, vectorized)
    J = jacobian(f, np.linspace(0.2, 1.5, n), sparsity=tridiagonal(n), method=method,
                 vectorized=vectorized, accuracy=1 if method in ("forward", "backward") else 2)
    assert f.points == 3 * per_group + 1
    assert J.shape == (n, n)


def test_a_vectorized_f_gets_one_call_with_every_group_point():
    calls = []

    def f(X):
        calls.append(X.shape)
        return chain(X)

    jacobian(f, np.linspace(0.2, 1.5, 30), sparsity=tridiagonal(30), vectorized=True)
    assert calls == [(30, 7)]


def test_matches_scipy_approx_derivative_with_sparsity():
    n = 500
    x = np.linspace(0.2, 1.5, n)
    S = tridiagonal(n)
    ours = jacobian(chain, x, sparsity=S, method="forward")
    scipy = approx_derivative(chain, x, sparsity=S, method="2-point")
    assert abs(ours - scipy).max() < 1e-6


def test_groups_are_reusable_and_checked():
    n = 30
    S = tridiagonal(n)
    x = np.linspace(0.2, 1.5, n)
    groups = group_columns(S)
    assert abs(jacobian(chain, x, sparsity=S, groups=groups) - chain_jacobian(x)).max() < 1e-8
    # a numbering that skips groups is fine
    assert abs(jacobian(chain, x, sparsity=S, groups=3 * groups + 7)
               - chain_jacobian(x)).max() < 1e-8
    with pytest.raises(ValueError, match="groups puts two columns that share row"):
        jacobian(chain, x, sparsity=S, groups=np.zeros(n, dtype=int))
    with pytest.raises(ValueError, match="groups must be an integer array of shape"):
        jacobian(chain, x, sparsity=S, groups=groups[:-1])
    with pytest.raises(ValueError, match="groups needs sparsity"):
        jacobian(chain, x, groups=groups)


def test_compiled_vector_field():
    from scipy import LowLevelCallable

    from fastcalc import _testfunctions
    f = LowLevelCallable.from_cython(_testfunctions, "vector_field")
    x = np.array([0.3, -0.7, 1.1])
    dense = jacobian(f, x)
    pattern = np.abs(dense) > 0
    assert abs(jacobian(f, x, sparsity=pattern) - dense).max() < 1e-12


def test_bounds_are_respected_one_sided_per_column():
    n = 20
    x = np.linspace(0.0, 1.0, n)          # x[0] on the lower bound, x[-1] on the upper

    def f(x):
        if (x < 0).any() or (x > 1).any():
            raise AssertionError("evaluated outside the bounds")
        return chain(x)

    r = jacobian(f, x, sparsity=tridiagonal(n), bounds=(0.0, 1.0), full_output=True)
    assert np.abs(r.df.toarray() - chain_jacobian(x)).max() < 1e-7
    assert (r.status == 0).all()
    # one-sided columns are grouped apart: 3 central groups, 2 one-sided columns
    assert r.nfev <= 1 + 5 * (3 * 2 + 2 * 2)


def test_wrong_patterns_are_named():
    x = np.linspace(0.2, 1.5, 10)
    with pytest.raises(ValueError, match="sparsity must have one column per component"):
        jacobian(chain, x, sparsity=tridiagonal(11))
    with pytest.raises(ValueError, match="sparsity must have one row per output"):
        jacobian(chain, x, sparsity=np.ones((9, 10)))
    with pytest.raises(ValueError, match="sparsity must be 2-D"):
        jacobian(chain, x, sparsity=np.ones(10))
    with pytest.raises(TypeError, match="sparsity must be a boolean or numeric"):
        jacobian(chain, x, sparsity=np.full((10, 10), "a"))
    with pytest.raises(ValueError, match="richardson"):
        jacobian(chain, x, sparsity=tridiagonal(10), method="richardson")


def test_a_pattern_missing_a_non_zero_is_caught_by_check():
    n = 10
    x = np.linspace(0.2, 1.5, n)
    diagonal = sp.eye_array(n)
    # not computed: the Jacobian has only the diagonal (and it is wrong there)
    J = jacobian(chain, x, sparsity=diagonal)
    assert J.nnz == n
    with pytest.raises(ValueError, match=r"sparsity misses 18 non-zero entries.*\(0, 1\)"):
        jacobian(chain, x, sparsity=diagonal, check=True)
    # a right pattern passes the check
    jacobian(chain, x, sparsity=tridiagonal(n), check=True)


def test_explicit_zeros_are_not_structural_and_input_is_not_modified():
    n = 12
    S = tridiagonal(n).astype(float)
    S.data[0] = 0.0                  # explicit zero at (0, 0)
    before = S.copy()
    x = np.linspace(0.2, 1.5, n)
    x.flags.writeable = False
    J = jacobian(chain, x, sparsity=S)
    assert J.nnz == 3 * n - 3 and J[0, 0] == 0
    assert (S != before).nnz == 0 and S.nnz == before.nnz


def test_non_finite_values_give_nan_and_status_3():
    n = 10
    x = np.linspace(0.2, 1.5, n)

    def f(x):
        y = chain(x)
        y[4] = np.nan if x[4] != np.linspace(0.2, 1.5, n)[4] else y[4]
        return y

    r = jacobian(f, x, sparsity=tridiagonal(n), full_output=True)
    assert np.isnan(r.df[4, 4]) and r.status[4] == 3 and not r.success
    assert np.isfinite(r.df[5, 5])


# --------------------------------------------------------------------------------------------
# newton_system(sparsity=)

def bratu(n, lam=1.0):
    """-u'' = lam exp(u) on (0, 1), u(0) = u(1) = 0, central differences on n inner points."""
    h2 = 1.0 / (n + 1) ** 2

    def F(U):
        out = 2.0 * U
        out[1:] -= U[:-1]
        out[:-1] -= U[1:]
        out /= h2
        out -= lam * np.exp(U)
        return out

    def J(u):
        ones = np.ones(u.size - 1)
        return sp.diags_array([-ones / h2, 2.0 / h2 - lam * np.exp(u), -ones / h2],
                              offsets=[-1, 0, 1], format="csr")
    return F, J


@pytest.mark.parametrize("vectorized", [True, False])
def test_bratu_solves_with_sparsity(vectorized):
    from fastcalc import newton_system
    n = 2000
    F, J = bratu(n)
    counted = Counting(F, vectorized)
    r = newton_system(counted, np.zeros(n), sparsity=tridiagonal(n), vectorized=vectorized)
    assert r.status == 0 and r.success and r.converged and r.message == "converged"
    assert np.abs(F(r.x)).max() < 1e-6 and np.array_equal(r.fun, F(r.x))
    # the lower Bratu branch at lambda = 1: max u = 0.1405 (converged in the grid size)
    assert abs(r.x.max() - 0.140539) < 1e-5
    # every evaluation counted: 6 grouped points per Jacobian, one per line-search trial
    assert r.nfev == counted.points and r.nfev >= 1 + 7 * r.nit and r.nit <= 6
    # the same as with the analytic sparse Jacobian and as the dense path on a small grid
    r_jac = newton_system(F, np.zeros(n), J, sparsity=tridiagonal(n), vectorized=vectorized)
    assert r_jac.status == 0 and np.abs(r_jac.x - r.x).max() < 1e-9
    small = 60
    Fs, _ = bratu(small)
    dense = newton_system(Fs, np.zeros(small), method="newton")   # the same line search
    sparse = newton_system(Fs, np.zeros(small), sparsity=tridiagonal(small))
    assert np.abs(dense.x - sparse.x).max() < 1e-10 and dense.nit == sparse.nit


def test_sparse_newton_general_pattern_uses_superlu():
    from fastcalc import newton_system
    n = 200
    rng = np.random.default_rng(0)
    A = sp.random_array((n, n), density=0.02, rng=rng) + 4 * sp.eye_array(n)
    A = sp.csr_array(A)
    b = rng.normal(size=n)
    F = lambda x: A @ x + 0.1 * x ** 3 - b       # noqa: E731
    r = newton_system(F, np.zeros(n), sparsity=A)
    assert r.status == 0 and np.abs(F(r.x)).max() < 1e-9


def test_sparse_newton_failures_are_statuses():
    from fastcalc import newton_system
    n = 50
    # singular Jacobian at the start: F = x**2 - 1 elementwise, x0 = 0
    r = newton_system(lambda x: x ** 2 - 1.0, np.zeros(n), sparsity=sp.eye_array(n))
    assert r.status == 2 and not r.success and "singular Jacobian" in r.message
    # no root: x**2 + 1, the iteration stalls at x = 0 (status 2: no descent) or maxiter
    r = newton_system(lambda x: x ** 2 + 1.0, np.full(n, 0.5), sparsity=sp.eye_array(n))
    assert r.status in (1, 2) and not r.success
    with np.errstate(invalid="ignore"):
        r = newton_system(lambda x: np.log(x) - 1.0, np.full(n, -1.0), sparsity=sp.eye_array(n))
    assert r.status == 3
    r = newton_system(lambda x: x - 2.0, np.zeros(n), sparsity=sp.eye_array(n), maxiter=0)
    assert r.status == 1


def test_sparse_newton_bad_input():
    from fastcalc import newton_system
    F, _ = bratu(10)
    with pytest.raises(ValueError, match="sparsity= solves one large system"):
        newton_system(F, np.zeros((3, 10)), sparsity=tridiagonal(10), vectorized=True)
    with pytest.raises(ValueError, match=r"sparsity must have shape \(n, n\)"):
        newton_system(F, np.zeros(10), sparsity=tridiagonal(11), vectorized=True)
    with pytest.raises(ValueError, match="jac returned non-zero entries outside sparsity"):
        newton_system(F, np.zeros(10), lambda x: np.ones((10, 10)), sparsity=tridiagonal(10),
                      vectorized=True)
    x0 = np.zeros(10)
    x0.flags.writeable = False
    newton_system(F, x0, sparsity=tridiagonal(10), vectorized=True)   # read-only x0 is fine


# --------------------------------------------------------------------------------------------
# jvp, hvp and the operators

def relative_error(a, b):
    return np.abs(a - b).max() / np.abs(b).max()


@pytest.mark.parametrize("method, tol", [("central", 1e-9), ("forward", 1e-6),
                                         ("complex", 1e-13)])
def test_jvp_equals_analytic_products(method, tol):
    n = 30
    rng = np.random.default_rng(1)
    x = np.linspace(0.2, 1.5, n)
    V = rng.normal(size=(n, 4))
    exact = chain_jacobian(x) @ V
    assert relative_error(jvp(chain, x, V, method=method), exact) < tol
    assert relative_error(jvp(chain, x, V[:, 0], method=method), exact[:, 0]) < tol
    # a linear map: the products are exact but for rounding
    A = rng.normal(size=(7, n))
    assert relative_error(jvp(lambda x: A @ x, x, V, method=method), A @ V) < 1e-7


@pytest.mark.parametrize("method, per_column, base", [("central", 2, 0), ("forward", 1, 1)])
def test_jvp_evaluations_and_one_vectorized_call(method, per_column, base):
    n, k = 20, 3
    x = np.linspace(0.2, 1.5, n)
    V = np.random.default_rng(2).normal(size=(n, k))
    calls = []

    def f(X):
        calls.append(X.shape[1])
        return chain(X)

    out = jvp(f, x, V, method=method, vectorized=True)
    # the output size comes from f(x) (one point); then one call with every product point
    assert calls == [1, per_column * k]
    assert relative_error(out, chain_jacobian(x) @ V) < 1e-6
    counted = Counting(chain)
    jvp(counted, x, V, method=method)
    assert counted.points == 1 + per_column * k
    assert np.array_equal(jvp(chain, x, np.zeros(n), method=method), np.zeros(n))


def test_hvp_equals_rosenbrock_hessian_products():
    from scipy.optimize import rosen, rosen_der, rosen_hess_prod
    rng = np.random.default_rng(3)
    x = rng.uniform(-1.5, 1.5, 12)
    V = rng.normal(size=(12, 3))
    exact = np.stack([rosen_hess_prod(x, V[:, k]) for k in range(3)], axis=1)
    assert relative_error(hvp(rosen, x, V, grad=rosen_der), exact) < 1e-7
    assert relative_error(hvp(rosen, x, V[:, 1], grad=rosen_der), exact[:, 1]) < 1e-7
    # from values of f only (4 n evaluations per vector): a looser, documented accuracy
    assert relative_error(hvp(rosen, x, V), exact) < 1e-6
    # a compiled scalar field (fastcalc's own Rosenbrock)
    from scipy import LowLevelCallable

    from fastcalc import _testfunctions
    compiled = LowLevelCallable.from_cython(_testfunctions, "rosenbrock")
    assert relative_error(hvp(compiled, x, V), exact) < 1e-6


def test_non_finite_or_misshapen_v_is_named():
    x = np.linspace(0.2, 1.5, 5)
    for function, kwargs in ((jvp, {}), (hvp, dict(grad=chain))):
        f = chain if function is jvp else (lambda x: float(x @ x))
        with pytest.raises(ValueError, match="v must be finite"):
            function(f, x, np.array([1.0, np.nan, 0, 0, 0]), **kwargs)
        with pytest.raises(ValueError, match=r"v must have shape \(5,\) or \(5, k\)"):
            function(f, x, np.ones(4), **kwargs)
        with pytest.raises(TypeError, match="v must be real"):
            function(f, x, np.ones(5) * 1j, **kwargs)
    with pytest.raises(ValueError, match="method must be one of"):
        jvp(chain, x, np.ones(5), method="richardson")


def test_jacobian_operator_in_a_newton_krylov_iteration():
    from scipy.sparse.linalg import gmres
    n = 40
    ones = np.ones(n)
    A = sp.diags_array([-ones[1:], 4 * ones, -ones[1:]], offsets=[-1, 0, 1])
    b = np.linspace(1.0, 3.0, n)

    def F(x):
        return A @ x + x ** 3 / 3.0 - b

    x = np.zeros(n)
    for _ in range(10):
        J = jacobian_operator(F, x)
        step, info = gmres(J, -F(x), rtol=1e-10, atol=0.0)
        assert info == 0
        x = x + step
    assert np.abs(F(x)).max() < 1e-9
    # the same root as the dense Newton solver
    from fastcalc import newton_system
    assert np.abs(x - newton_system(F, np.zeros(n)).x).max() < 1e-9


def test_jacobian_operator_products_and_rmatvec():
    n = 25
    x = np.linspace(0.2, 1.5, n)
    rng = np.random.default_rng(4)
    exact = chain_jacobian(x)
    J = jacobian_operator(chain, x, method="forward", sparsity=tridiagonal(n))
    assert J.shape == (n, n) and J.nfev == 1        # f(x), once
    v, U = rng.normal(size=n), rng.normal(size=(n, 2))
    assert relative_error(J @ v, exact @ v) < 1e-6 and J.nfev == 2
    assert relative_error(J @ U, exact @ U) < 1e-6
    assert relative_error(J.rmatvec(v), exact.T @ v) < 1e-8     # from the sparse Jacobian
    assert relative_error(J.T @ U, exact.T @ U) < 1e-8
    assert J.nfev == 1 + 1 + 2 + 7                  # + one sparse central Jacobian


def test_hessian_operator_with_cg():
    from scipy.optimize import rosen, rosen_der, rosen_hess
    from scipy.sparse.linalg import cg
    x = np.array([1.0, 1.0, 1.0, 1.0, 1.0])         # the minimum: H positive definite
    H = hessian_operator(rosen, x, grad=rosen_der)
    g = np.arange(1.0, 6.0)
    s, info = cg(H, g, rtol=1e-10, atol=0.0)
    assert info == 0 and relative_error(s, np.linalg.solve(rosen_hess(x), g)) < 1e-6
    assert relative_error(H.rmatvec(g), rosen_hess(x) @ g) < 1e-7
    assert H.nfev > 0


# --------------------------------------------------------------------------------------------
# sparse Hessians

def test_sparse_hessian_equals_dense_and_exact():
    from scipy import LowLevelCallable
    from scipy.optimize import rosen, rosen_der, rosen_hess

    from fastcalc import _testfunctions, hessian
    n = 12
    x = np.random.default_rng(0).uniform(-1.2, 1.2, n)
    S = tridiagonal(n)
    exact = rosen_hess(x)
    counted = Counting(rosen)
    r = hessian(counted, x, sparsity=S, full_output=True)
    H = r.df
    assert isinstance(H, sp.csr_array) and H.nnz == 3 * n - 2
    assert relative_error(H.toarray(), exact) < 1e-7
    assert np.array_equal(H.toarray(), H.toarray().T)
    assert np.abs(H.toarray() - hessian(rosen, x)).max() < 1e-6 * np.abs(exact).max()
    # the error estimate bounds the error; evaluations: 5 steps x (1 + 2 n + 2 pairs)
    assert (np.abs(H.toarray() - exact) <= r.error.toarray()).all() and r.success
    assert r.nfev == counted.points == 5 * (1 + 2 * n + 2 * (n - 1))
    counted.points = 0
    hessian(counted, x, sparsity=S)
    assert counted.points == 1 + 2 * n + 2 * (n - 1)
    # from the gradient: grouped central differences of grad, symmetrized
    counted_grad = Counting(rosen_der)
    Hg = hessian(None, x, grad=counted_grad, sparsity=S)
    assert relative_error(Hg.toarray(), exact) < 1e-9
    assert np.array_equal(Hg.toarray(), Hg.toarray().T)
    assert counted_grad.points == 1 + 2 * 3
    # vectorized and compiled f alike
    Hv = hessian(lambda X: rosen(X), x, sparsity=S, vectorized=True)
    assert relative_error(Hv.toarray(), exact) < 1e-6
    compiled = LowLevelCallable.from_cython(_testfunctions, "rosenbrock")
    assert relative_error(hessian(compiled, x, sparsity=S).toarray(), exact) < 1e-7


def test_sparse_hessian_pattern_is_symmetrized_and_checked():
    from scipy.optimize import rosen, rosen_hess

    from fastcalc import hessian
    n = 8
    x = np.linspace(-0.5, 0.9, n)
    upper = sp.triu(tridiagonal(n))                # the upper half only
    H = hessian(rosen, x, sparsity=upper)
    assert H.nnz == 3 * n - 2 and relative_error(H.toarray(), rosen_hess(x)) < 1e-7
    with pytest.raises(ValueError, match=r"sparsity must have shape \(n, n\)"):
        hessian(rosen, x, sparsity=tridiagonal(n + 1))
    with pytest.raises(ValueError, match="accuracy 2"):
        hessian(rosen, x, sparsity=upper, accuracy=4)


def test_non_finite_values_switch_the_column_to_one_sided():
    n = 10
    x = np.linspace(0.2, 1.5, n)
    x[3] = 2e-6                   # below the central step: sqrt(x[3] - h) is NaN

    def f(x):
        y = chain(x)
        with np.errstate(invalid="ignore"):
            y[3] += np.sqrt(x[3])
        return y

    exact = chain_jacobian(x)
    exact[3, 3] += 0.5 / np.sqrt(x[3])
    dense = jacobian(f, x, full_output=True)
    for full_output in (False, True):
        r = jacobian(f, x, sparsity=tridiagonal(n), full_output=full_output)
        J = (r.df if full_output else r).toarray()
        # as the dense path: column 3 by extrapolated forward differences, the rest central
        inside = tridiagonal(n).toarray() != 0
        assert np.abs(J - dense.df)[inside].max() <= 1e-10 * np.abs(dense.df).max()
        assert np.abs(J - exact).max() < 1e-6 * np.abs(exact).max()
        if full_output:
            assert np.array_equal(r.status, dense.status)
            assert (np.abs(J - exact) <= r.error.toarray()).all()


def test_inputs_read_only_non_contiguous_and_thread_count():
    from scipy import LowLevelCallable

    from fastcalc import _testfunctions
    n = 12
    base = np.linspace(0.2, 1.5, 2 * n)
    x = base[::2]                                   # non-contiguous
    pattern = tridiagonal(n).toarray() != 0
    pattern.flags.writeable = False
    x_ro = np.array(x)
    x_ro.flags.writeable = False
    J = jacobian(chain, x, sparsity=pattern)
    assert np.abs(J.toarray() - chain_jacobian(x_ro)).max() < 1e-8
    assert np.array_equal(jacobian(chain, x_ro, sparsity=pattern).toarray(), J.toarray())
    v = np.linspace(-1.0, 1.0, 2 * n)[::2]
    v_ro = np.array(v)
    v_ro.flags.writeable = False
    assert np.array_equal(jvp(chain, x, v), jvp(chain, x_ro, v_ro))
    assert np.array_equal(base, np.linspace(0.2, 1.5, 2 * n))       # nothing written
    # compiled f: the result does not depend on the thread count
    f = LowLevelCallable.from_cython(_testfunctions, "vector_field")
    x3 = np.array([0.3, -0.7, 1.1])
    S = np.ones((3, 3), dtype=bool)
    one = jacobian(f, x3, sparsity=S, n_threads=1, full_output=True)
    two = jacobian(f, x3, sparsity=S, n_threads=2, full_output=True)
    assert np.array_equal(one.df.toarray(), two.df.toarray())
    assert np.array_equal(one.error.toarray(), two.error.toarray())


def test_sparse_newton_with_a_compiled_F_matches_the_dense_path():
    from scipy import LowLevelCallable

    from fastcalc import _testfunctions, newton_system
    F = LowLevelCallable.from_cython(_testfunctions, "vector_field")   # cyclic: dense pattern
    x0 = np.array([0.3, -0.7, 1.1])
    dense = newton_system(F, x0, method="newton")     # the line search of the sparse path
    sparse = newton_system(F, x0, sparsity=np.ones((3, 3)))
    assert dense.status == sparse.status == 0 and dense.nit == sparse.nit
    assert np.abs(dense.x - sparse.x).max() < 1e-12
