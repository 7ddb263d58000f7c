"""fit_global: global fits with shared parameters, against scipy.optimize.least_squares on the
concatenated residuals and against the inverse of the full normal matrix built densely."""
import warnings

import numpy as np
import pytest
from scipy.optimize import least_squares
from scipy.sparse import coo_matrix

from fastcalc import fit_global, models
from fastcalc._testfunctions import low_level

SHARED = [1, 2]            # gaussian (A, mu, sigma, c): mu and sigma shared
LOCAL = [0, 3]


def gaussian_data(rng, N, m=40, missing=0.0, noise=0.05):
    x = np.linspace(-3, 3, m)
    A = rng.uniform(1, 3, N)
    c = rng.uniform(-0.5, 0.5, N)
    Y = (A[:, None] * np.exp(-0.5 * ((x - 0.4) / 0.8) ** 2) + c[:, None]
         + noise * rng.standard_normal((N, m)))
    if missing:
        Y[rng.random((N, m)) < missing] = np.nan
    sigma = noise * rng.uniform(0.8, 1.2, (N, m))
    return x, Y, sigma


def gaussian_values(x, p):
    """(N, m) values and the Jacobian (N, 4, m) of gaussian rows p (N, 4)."""
    A, mu, s, c = (p[:, k:k + 1] for k in range(4))
    d = (x - mu) / s
    e = np.exp(-0.5 * d * d)
    return A * e + c, np.stack([e, A * e * d / s, A * e * d * d / s, np.ones_like(e)], axis=1)


def split(z, N):
    """The global vector [mu, sigma, A_0, c_0, A_1, c_1, ...] as (N, 4) rows."""
    p = np.empty((N, 4))
    p[:, SHARED] = z[:2]
    p[:, LOCAL] = z[2:].reshape(N, 2)
    return p


def reference(x, Y, sigma, p0, bounds=(-np.inf, np.inf)):
    """least_squares (trf, jac_sparsity) on the concatenated residuals; (params (N, 4),
    covariance of the global vector from the dense J^T J, scaled by redchi2, chi2).

    Its sparse trust-region solver (lsmr) stops within ~1e-6 of the standard errors of the
    minimum whatever the tolerances (1e-4 with bounds and tolerances 1e-12, as 1e-15 takes
    seconds), so the solution is refined by Gauss-Newton steps on the dense Jacobian (the free
    parameters only, off active bounds) after checking that it was already within 1e-5 (with
    bounds 1e-3) of the standard errors."""
    N = Y.shape[0]
    valid = np.isfinite(Y)

    def residuals(z):
        f, _ = gaussian_values(x, split(z, N))
        return ((Y - f) / sigma)[valid]

    def dense_jacobian(z):
        _, J = gaussian_values(x, split(z, N))          # (N, 4, m)
        J = -J / sigma[:, None, :]
        full = np.zeros((N, x.size, 2 + 2 * N))
        full[:, :, 0:2] = J[:, SHARED].transpose(0, 2, 1)
        for i in range(N):
            full[i, :, 2 + 2 * i:4 + 2 * i] = J[i][LOCAL].T
        return full[valid]

    rows = np.repeat(np.arange(N), valid.sum(axis=1))       # dataset of each residual
    columns = np.concatenate([np.tile([0, 1], (rows.size, 1)),
                              2 + 2 * rows[:, None] + np.arange(2)], axis=1)
    sparsity = coo_matrix((np.ones(columns.size), (np.repeat(np.arange(rows.size), 4),
                                                   columns.ravel())),
                          shape=(rows.size, 2 + 2 * N))
    z0 = np.concatenate([np.median(p0[:, SHARED], axis=0), p0[:, LOCAL].ravel()])
    lb, ub = (np.concatenate([np.asarray(b, float)[SHARED],
                              np.tile(np.asarray(b, float)[LOCAL], N)])
              if np.ndim(b) else b for b in bounds)
    z0 = np.clip(z0, lb, ub)
    tol = 1e-15 if np.ndim(lb) == 0 else 1e-12
    sol = least_squares(residuals, z0, jac_sparsity=sparsity, method="trf", x_scale="jac",
                        bounds=(lb, ub), ftol=tol, xtol=tol, gtol=tol, max_nfev=2000)
    z = sol.x.copy()
    # trf stays strictly inside the box: a parameter within 1e-6 of a bound is on it
    at_lower, at_upper = z - lb < 1e-6 * (1 + np.abs(z)), ub - z < 1e-6 * (1 + np.abs(z))
    z = np.where(at_lower, lb, np.where(at_upper, ub, z))
    free = ~(at_lower | at_upper)
    for _ in range(6):      # Gauss-Newton until the step is below 1e-9 of the stderr
        J = dense_jacobian(z)
        normal = J.T @ J
        step = np.linalg.solve(normal[np.ix_(free, free)], -(J.T @ residuals(z))[free])
        z[free] += step
        if np.all(np.abs(step) < 1e-9 * np.sqrt(np.diag(np.linalg.inv(normal)))[free]):
            break
    chi2 = float(np.sum(residuals(z) ** 2))
    cov = np.linalg.inv(normal) * chi2 / (int(valid.sum()) - J.shape[1])
    near = 1e-5 if np.ndim(lb) == 0 else 1e-3
    np.testing.assert_array_less(np.abs(sol.x - z), near * np.sqrt(np.diag(cov)) + 1e-6 * ~free)
    return split(z, N), cov, chi2


def stderr_of(cov, N):
    return split(np.sqrt(np.diag(cov)), N)


@pytest.mark.parametrize("N, missing", [(10, 0.0), (10, 0.2), (200, 0.1)])
def test_equals_least_squares_on_concatenated_residuals(rng, N, missing):
    x, Y, sigma = gaussian_data(rng, N, missing=missing)
    p0 = np.tile([2.0, 0.0, 1.0, 0.0], (N, 1))
    r = fit_global(models.gaussian, x, Y, p0, shared=["mu", "sigma"], sigma=sigma)
    params, cov, chi2 = reference(x, Y, sigma, p0)
    stderr = stderr_of(cov, N)
    assert r.status == 0 and np.all(r.dataset_status == 0)
    np.testing.assert_array_less(np.abs(r.params - params), 1e-6 * stderr)
    assert r.chi2 == pytest.approx(chi2, rel=1e-12)
    assert r.dof == int(np.isfinite(Y).sum()) - 2 - 2 * N
    np.testing.assert_allclose(r.shared_cov, cov[:2, :2], rtol=1e-6)
    np.testing.assert_allclose(r.shared_stderr, stderr[0, SHARED], rtol=1e-6)
    np.testing.assert_allclose(r.local_stderr, stderr[:, LOCAL], rtol=1e-6)
    np.testing.assert_allclose(r.local, r.params[:, LOCAL])
    # every covariance block is the matching block of the full inverse
    for i in (0, N - 1):
        index = np.array([2 + 2 * i, 0, 1, 3 + 2 * i])      # (A_i, mu, sigma, c_i)
        np.testing.assert_allclose(r.cov_block(i), cov[np.ix_(index, index)], rtol=1e-6,
                                   atol=1e-9 * np.max(np.abs(cov[np.ix_(index, index)])))


def test_shared_covariance_is_inverse_of_full_normal_matrix_absolute_sigma(rng):
    N = 8
    x, Y, sigma = gaussian_data(rng, N)
    r = fit_global(models.gaussian, x, Y, shared=["mu", "sigma"], sigma=sigma,
                   absolute_sigma=True)
    _, J = gaussian_values(x, r.params)
    J = J / sigma[:, None, :]
    full = np.zeros((N, x.size, 2 + 2 * N))
    full[:, :, :2] = J[:, SHARED].transpose(0, 2, 1)
    for i in range(N):
        full[i, :, 2 + 2 * i:4 + 2 * i] = J[i][LOCAL].T
    full = full.reshape(-1, 2 + 2 * N)
    inverse = np.linalg.inv(full.T @ full)
    np.testing.assert_allclose(r.shared_cov, inverse[:2, :2], rtol=1e-6)
    np.testing.assert_allclose(r.local_stderr, np.sqrt(np.diag(inverse)[2:]).reshape(N, 2),
                               rtol=1e-6)


def test_bounds_active_on_shared_and_local_parameters(rng):
    N = 10
    x, Y, sigma = gaussian_data(rng, N)
    lower = np.array([-np.inf, -np.inf, -np.inf, 0.0])        # offsets >= 0: some at 0
    upper = np.array([np.inf, 0.3, 0.75, np.inf])              # mu (0.4) held at 0.3
    p0 = np.tile([2.0, 0.0, 0.7, 0.1], (N, 1))
    r = fit_global(models.gaussian, x, Y, p0, shared=["mu", "sigma"], sigma=sigma,
                   bounds=(lower, upper))
    params, cov, chi2 = reference(x, Y, sigma, p0, bounds=(lower, upper))
    assert r.status == 0
    assert r.shared[0] == 0.3 and r.shared[1] < 0.75
    assert np.any(r.local[:, 1] == 0.0)
    assert np.all(r.params >= lower) and np.all(r.params <= upper)
    stderr = stderr_of(cov, N)
    np.testing.assert_array_less(np.abs(r.params - params), 1e-6 * stderr + 1e-12)
    assert r.chi2 == pytest.approx(chi2, rel=1e-10)


def _python_gaussian(x, A, mu, sigma, c):
    return A * np.exp(-0.5 * ((x - mu) / sigma) ** 2) + c


@pytest.mark.parametrize("kind", ["builtin", "compiled", "python"])
def test_model_kinds_agree(rng, kind):
    N = 12
    x, Y, sigma = gaussian_data(rng, N, missing=0.1)
    model = {"builtin": models.gaussian, "compiled": low_level("gaussian_model"),
             "python": _python_gaussian}[kind]
    p0 = np.tile([2.0, 0.0, 1.0, 0.0], (N, 1))
    r = fit_global(model, x, Y, p0, shared=[1, 2], sigma=sigma)
    params, cov, _ = reference(x, Y, sigma, p0)
    stderr = stderr_of(cov, N)
    assert r.status == 0
    # forward-difference Jacobians: the same minimum, stderr to finite-difference accuracy
    np.testing.assert_array_less(np.abs(r.params - params), 1e-6 * stderr)
    np.testing.assert_allclose(r.shared_stderr, stderr[0, SHARED],
                               rtol=1e-6 if kind == "builtin" else 1e-4)


def test_thread_count_does_not_change_results(rng):
    x, Y, sigma = gaussian_data(rng, 301, missing=0.1)
    one = fit_global(models.gaussian, x, Y, shared=["mu", "sigma"], sigma=sigma, n_threads=1)
    two = fit_global(models.gaussian, x, Y, shared=["mu", "sigma"], sigma=sigma, n_threads=2)
    for name in ("params", "shared_cov", "local_stderr"):
        np.testing.assert_array_equal(getattr(one, name), getattr(two, name))
    assert (one.chi2, one.nit, one.nfev) == (two.chi2, two.nit, two.nfev)
    compiled = [fit_global(low_level("gaussian_model"), x, Y, one.params, shared=[1, 2],
                           sigma=sigma, n_threads=n) for n in (1, 2)]
    np.testing.assert_array_equal(compiled[0].params, compiled[1].params)
