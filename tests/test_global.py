"""fit_global: global fits with shared parameters, against scipy.optimize.least_squares on the
concatenated residuals and against the inverse of the full normal matrix built densely."""
import warnings

import numpy as np
import pytest
from scipy.optimize import least_squares
from scipy.sparse import coo_matrix
from threadpoolctl import threadpool_limits

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


@threadpool_limits.wrap(limits=1)     # BLAS threads on small dense matrices: only contention
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
        inverse = np.linalg.inv(normal)
        step = np.linalg.solve(normal[np.ix_(free, free)], -(J.T @ residuals(z))[free])
        z[free] += step
        if np.all(np.abs(step) < 1e-9 * np.sqrt(np.diag(inverse))[free]):
            break
    chi2 = float(np.sum(residuals(z) ** 2))
    cov = inverse * chi2 / (int(valid.sum()) - J.shape[1])
    near = 1e-5 if np.ndim(lb) == 0 else 1e-3
    np.testing.assert_array_less(np.abs(sol.x - z), near * np.sqrt(np.diag(cov)) + 1e-6 * ~free)
    return split(z, N), cov, chi2


def stderr_of(cov, N):
    return split(np.sqrt(np.diag(cov)), N)


@pytest.mark.parametrize("N, m, missing", [(10, 40, 0.0), (10, 40, 0.2), (200, 24, 0.1)])
def test_equals_least_squares_on_concatenated_residuals(rng, N, m, missing):
    x, Y, sigma = gaussian_data(rng, N, m, missing=missing)
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


@pytest.mark.parametrize("kind", ["builtin", "compiled", "compiled_with_jac", "python"])
def test_model_kinds_agree(rng, kind):
    N = 12
    x, Y, sigma = gaussian_data(rng, N, missing=0.1)
    model = {"builtin": models.gaussian, "compiled": low_level("gaussian_model"),
             "compiled_with_jac": low_level("gaussian_model_and_jac"),
             "python": _python_gaussian}[kind]
    p0 = np.tile([2.0, 0.0, 1.0, 0.0], (N, 1))
    r = fit_global(model, x, Y, p0, shared=[1, 2], sigma=sigma)
    params, cov, _ = reference(x, Y, sigma, p0)
    stderr = stderr_of(cov, N)
    assert r.status == 0
    # forward-difference Jacobians: the same minimum, stderr to finite-difference accuracy
    np.testing.assert_array_less(np.abs(r.params - params), 1e-6 * stderr)
    np.testing.assert_allclose(r.shared_stderr, stderr[0, SHARED],
                               rtol=1e-6 if kind in ("builtin", "compiled_with_jac") else 1e-4)


def test_thread_count_does_not_change_results(rng):
    # 801 x 48 points: above the kernels' MIN_PARALLEL_WORK, so two threads really run
    x, Y, sigma = gaussian_data(rng, 801, m=48, missing=0.1)
    one = fit_global(models.gaussian, x, Y, shared=["mu", "sigma"], sigma=sigma, n_threads=1)
    two = fit_global(models.gaussian, x, Y, shared=["mu", "sigma"], sigma=sigma, n_threads=2)
    for name in ("params", "shared_cov", "local_stderr"):
        np.testing.assert_array_equal(getattr(one, name), getattr(two, name))
    assert (one.chi2, one.nit, one.nfev) == (two.chi2, two.nit, two.nfev)
    compiled = [fit_global(low_level("gaussian_model"), x, Y, one.params, shared=[1, 2],
                           sigma=sigma, n_threads=n) for n in (1, 2)]
    np.testing.assert_array_equal(compiled[0].params, compiled[1].params)
    python = [fit_global(_python_gaussian, x, Y, one.params, shared=[1, 2], sigma=sigma,
                         n_threads=n) for n in (1, 2)]
    np.testing.assert_array_equal(python[0].params, python[1].params)


# Every built-in model: (model, truth, shared names, x, p0 offset). Local parameters vary by
# dataset; the reference is least_squares (lm, dense) on the concatenated residuals.
MODEL_CASES = {
    "line": (models.line, [0.5, 2.0], ["b"], np.linspace(0, 2, 15)),
    "polynomial": (models.polynomial(2), [1.0, -0.5, 0.3], ["c1", "c2"],
                   np.linspace(-2, 2, 15)),
    # 7 parameters: the kernel's normal blocks for more than SMALL_P parameters
    "polynomial_deg6": (models.polynomial(6), [1.0, -0.5, 0.3, 0.1, -0.05, 0.02, 0.01],
                        ["c0", "c6"], np.linspace(-2, 2, 30)),
    "exponential": (models.exponential, [3.0, 1.5, 0.5], ["tau"], np.linspace(0, 5, 20)),
    "gaussian": (models.gaussian, [2.0, 0.3, 0.8, 0.1], ["mu", "sigma"],
                 np.linspace(-3, 3, 25)),
    "lorentzian": (models.lorentzian, [2.0, 0.2, 0.7, 0.1], ["x0", "gamma"],
                   np.linspace(-4, 4, 25)),
    "logistic": (models.logistic, [2.0, 0.5, 1.5, 0.2], ["x0", "k"], np.linspace(-4, 4, 25)),
    "power_law": (models.power_law, [1.5, -0.7], ["k"], np.linspace(0.5, 5, 20)),
    "sine": (models.sine, [1.5, 2.0, 0.3, 0.1], ["omega"], np.linspace(0, 6, 40)),
    "gaussian_2d": (models.gaussian_2d, [2.0, 0.1, -0.2, 0.9, 0.1], ["x0", "y0", "sigma"],
                    np.stack(np.meshgrid(np.linspace(-2, 2, 7), np.linspace(-2, 2, 7)))
                    .reshape(2, -1)),
}


@pytest.mark.parametrize("name", sorted(MODEL_CASES))
def test_every_builtin_model(rng, name):
    model, truth, shared, x = MODEL_CASES[name]
    N, P = 4, len(truth)
    is_shared = np.isin(model.param_names, shared)
    truths = np.tile(truth, (N, 1))
    truths[:, ~is_shared] *= 1 + 0.15 * np.arange(N)[:, None]
    Y = np.array([model(x, *t) for t in truths])
    Y += 0.01 * rng.standard_normal(Y.shape)
    p0 = truths * 1.02
    r = fit_global(model, x, Y, p0, shared=shared, sigma=0.01)
    assert r.status == 0, r.message
    s, loc = np.flatnonzero(is_shared), np.flatnonzero(~is_shared)

    def residuals(z):
        params = np.empty((N, P))
        params[:, s] = z[:s.size]
        params[:, loc] = z[s.size:].reshape(N, -1)
        return np.concatenate([(Y[i] - model(x, *params[i])) / 0.01 for i in range(N)])

    z0 = np.concatenate([p0[0, s], p0[:, loc].ravel()])
    ref = least_squares(residuals, z0, method="lm", xtol=1e-15, ftol=1e-15, gtol=1e-15).x
    got = np.concatenate([r.shared[np.argsort(np.argsort(s))], r.local.ravel()])
    stderr = np.concatenate([r.shared_stderr, r.local_stderr.ravel()])
    np.testing.assert_array_less(np.abs(got - ref), 1e-6 * stderr)
    np.testing.assert_allclose(r.params[:, s], np.tile(r.shared, (N, 1)))


def test_start_from_guesses_with_missing_points(rng):
    x, Y, sigma = gaussian_data(rng, 30, missing=0.2)
    r = fit_global(models.gaussian, x, Y, shared=["mu", "sigma"], sigma=sigma)
    p0 = np.tile([2.0, 0.0, 1.0, 0.0], (30, 1))
    assert r.status == 0
    other = fit_global(models.gaussian, x, Y, p0, shared=[1, 2], sigma=sigma)
    # two starts, one minimum: each within ~sqrt(ftol) = 1e-6 standard errors of it
    np.testing.assert_array_less(np.abs(r.params - other.params),
                                 3e-6 * np.column_stack([r.local_stderr[:, 0], r.shared_stderr
                                                         * np.ones((30, 1)),
                                                         r.local_stderr[:, 1]]))
    assert abs(r.shared[0] - 0.4) < 5 * r.shared_stderr[0]


def test_fixed_parameter(rng):
    x, Y, sigma = gaussian_data(rng, 10)
    p0 = np.tile([2.0, 0.0, 1.0, 0.05], (10, 1))
    r = fit_global(models.gaussian, x, Y, p0, shared=["mu", "sigma"], sigma=sigma,
                   fixed=["c"])
    assert r.status == 0
    assert np.all(r.local[:, 1] == 0.05) and np.all(r.local_stderr[:, 1] == 0)
    assert r.dof == Y.size - 2 - 10
    free = fit_global(models.gaussian, x, Y, p0, shared=["mu", "sigma"], sigma=sigma)
    assert r.chi2 > free.chi2


def test_to_dataframe_and_report(rng):
    x, Y, sigma = gaussian_data(rng, 5)
    r = fit_global(models.gaussian, x, Y, shared=["mu", "sigma"], sigma=sigma)
    frame = r.to_dataframe()
    assert list(frame.columns) == ["A", "c", "stderr_A", "stderr_c", "chi2", "dataset_status",
                                   "included"]
    np.testing.assert_array_equal(frame["A"], r.local[:, 0])
    assert frame["chi2"].sum() == pytest.approx(r.chi2)
    assert frame.attrs["shared"] == {"mu": r.shared[0], "sigma": r.shared[1]}
    text = r.report()
    assert "mu" in text and f"dof = {r.dof}" in text and "status = 0" in text


# ---- bad input and bad datasets ----

@pytest.mark.parametrize("shared, match", [
    ("width", "shared: unknown parameter 'width'"), ([], "shared is empty"),
    (["A", "mu", "sigma", "c"], "shared names every parameter"), ([7], "shared: invalid"),
    (None, "shared must name")])
def test_bad_shared(shared, match):
    x = np.linspace(0, 1, 10)
    with pytest.raises(ValueError, match=match):
        fit_global(models.gaussian, x, np.ones((3, 10)), shared=shared)


def test_bad_shapes():
    x = np.linspace(0, 1, 10)
    with pytest.raises(ValueError, match="Y must be 2-D"):
        fit_global(models.gaussian, x, np.ones(10), shared=["mu"])
    with pytest.raises(ValueError, match="x has 9 points but Y has 10"):
        fit_global(models.gaussian, x[:9], np.ones((3, 10)), shared=["mu"])
    with pytest.raises(ValueError, match="sigma has 2 rows but Y has 3 datasets"):
        fit_global(models.gaussian, x, np.ones((3, 10)), sigma=np.ones((2, 10)), shared=["mu"])
    with pytest.raises(ValueError, match="p0 has shape"):
        fit_global(models.gaussian, x, np.ones((3, 10)), p0=np.ones(3), shared=["mu"])
    with pytest.raises(ValueError, match="p0 is required"):
        fit_global(low_level("gaussian_model"), x, np.ones((3, 10)), shared=[1])
    with pytest.raises(ValueError, match=r"Y has no datasets \(shape \(0, 10\)\)"):
        fit_global(models.gaussian, x, np.ones((0, 10)), shared=["mu"])
    with pytest.raises(ValueError, match="n_threads"):
        fit_global(models.gaussian, x, np.full((3, 10), np.nan), shared=["mu"], n_threads=0)


def test_python_model_errors_propagate_unchanged():
    x = np.linspace(0, 1, 10)

    def broken(x, a, b):
        raise KeyError("boom")

    with pytest.raises(KeyError, match="boom"):
        fit_global(broken, x, np.ones((3, 10)), shared=["a"])
    with pytest.raises(ValueError, match="model returned shape"):
        fit_global(lambda x, a, b: np.ones(5), x, np.ones((3, 10)), shared=["a"])


def test_inputs_read_only_and_non_contiguous_are_not_modified(rng):
    x, Y, sigma = gaussian_data(rng, 6, missing=0.1)
    expected = fit_global(models.gaussian, x, Y, shared=["mu", "sigma"], sigma=sigma)
    wide = np.repeat(Y, 2, axis=1)          # Y as a strided view
    view = wide[:, ::2]
    for array in (view, x, sigma):
        array.flags.writeable = False
    before = view.copy()
    r = fit_global(models.gaussian, x, view, shared=["mu", "sigma"], sigma=sigma)
    np.testing.assert_array_equal(view, before)
    np.testing.assert_array_equal(r.params, expected.params)


def test_bad_datasets_are_excluded_and_named(rng):
    x, Y, sigma = gaussian_data(rng, 12)
    good = np.ones(12, dtype=bool)
    Y[2] = np.nan                       # no points
    Y[5, 3] = np.inf                    # inf in Y
    Y[7, 2:] = np.nan                   # 2 points for 2 local parameters: still usable
    Y[8, 1:] = np.nan                   # 1 point for 2 local parameters: too few
    sigma[9, 4] = -1.0                  # invalid sigma
    good[[2, 5, 8, 9]] = False
    with pytest.warns(RuntimeWarning, match=r"4 of 12 datasets excluded.*2 \(too few points"):
        r = fit_global(models.gaussian, x, Y, np.tile([2, 0, 1, 0.0], (12, 1)),
                       shared=["mu", "sigma"], sigma=sigma)
    assert r.status == 0
    assert r.dataset_status.tolist() == [0, 0, 2, 0, 0, 3, 0, 0, 2, 3, 0, 0]
    np.testing.assert_array_equal(r.included, good)
    assert np.all(np.isnan(r.params[~good])) and np.all(np.isnan(r.local_stderr[~good]))
    assert "sigma must be finite" in r.input_error[9] and "datasets excluded" in r.message
    alone = fit_global(models.gaussian, x, Y[good], np.tile([2, 0, 1, 0.0], (8, 1)),
                       shared=["mu", "sigma"], sigma=sigma[good])
    np.testing.assert_allclose(r.params[good], alone.params, rtol=1e-12)
    np.testing.assert_allclose(r.shared_cov, alone.shared_cov, rtol=1e-12)
    assert r.dof == alone.dof


def _log_line(x, s, b):
    with np.errstate(invalid="ignore"):
        return s * x + np.log(b)


def test_dataset_whose_model_fails_at_the_start_is_excluded(rng):
    x = np.linspace(0, 1, 10)
    b = np.array([1.0, 2.0, 3.0, 4.0])
    Y = 1.5 * x + np.log(b)[:, None] + 0.01 * rng.standard_normal((4, 10))
    p0 = np.array([[1.0, 1.0], [1.0, 1.0], [1.0, -1.0], [1.0, 1.0]])   # log(-1): NaN
    with pytest.warns(RuntimeWarning, match=r"excluded.*2 \(model \(or its Jacobian\) not fin"):
        r = fit_global(_log_line, x, Y, p0, shared=["s"])
    assert r.status == 0 and r.dataset_status.tolist() == [0, 0, 3, 0]
    assert abs(r.shared[0] - 1.5) < 5 * r.shared_stderr[0]
    compiled = [[1.0, 0.0, 1.0, 0.0]] * 3 + [[1.0, 0.0, 0.0, 0.0]]    # sigma 0: returns -1
    with pytest.warns(RuntimeWarning, match=r"3 \(the model reported an error"):
        r = fit_global(low_level("gaussian_model"), x, np.exp(-x ** 2) * np.ones((4, 1)),
                       compiled, shared=[1])
    assert r.dataset_status.tolist() == [0, 0, 0, 5]


def test_every_dataset_bad_gives_a_status_not_a_crash():
    x = np.linspace(0, 1, 10)
    with pytest.warns(RuntimeWarning):
        r = fit_global(models.gaussian, x, np.full((3, 10), np.nan), shared=["mu"])
    assert r.status == 2 and not r.success
    assert np.all(np.isnan(r.shared)) and np.all(r.dataset_status == 2)


def test_no_convergence_is_not_success(rng):
    x, Y, sigma = gaussian_data(rng, 10)
    with pytest.warns(RuntimeWarning, match="did not converge"):
        r = fit_global(models.gaussian, x, Y, np.tile([1, -1.5, 2.0, 0], (10, 1)),
                       shared=["mu", "sigma"], sigma=sigma, maxiter=2)
    assert r.status == 1 and not r.success and r.nit == 2
    assert np.all(r.dataset_status == 1)


def test_dask_inputs_give_the_in_memory_result(rng):
    da = pytest.importorskip("dask.array", reason="fastcalc.dask needs dask")
    import fastcalc.dask as fdask
    x, Y, sigma = gaussian_data(rng, 40, missing=0.1)
    expected = fit_global(models.gaussian, x, Y, shared=["mu", "sigma"], sigma=sigma)
    r = fdask.fit_global(models.gaussian, x, da.from_array(Y, chunks=(7, 20)),
                         shared=["mu", "sigma"], sigma=da.from_array(sigma, chunks=13))
    np.testing.assert_array_equal(r.params, expected.params)
    np.testing.assert_array_equal(r.shared_cov, expected.shared_cov)
    recipe = fdask.compiled(low_level, "gaussian_model")
    r = fdask.fit_global(recipe, x, da.from_array(Y, chunks=9), expected.params, shared=[1, 2],
                         sigma=sigma)
    assert r.status == 0
    np.testing.assert_allclose(r.shared, expected.shared, rtol=1e-6)


def test_first_dataset_excluded_with_a_shared_parameter_on_its_bound(rng):
    # the shared values are read from an included dataset's row, never from row 0
    x, Y, sigma = gaussian_data(rng, 9)
    Y[0] = np.nan
    options = dict(shared=["mu", "sigma"], sigma=sigma[1:],
                   bounds=([-np.inf] * 4, [np.inf, 0.3, np.inf, np.inf]))
    p0 = np.tile([2.0, 0.0, 1.0, 0.0], (9, 1))
    with pytest.warns(RuntimeWarning, match="1 of 9 datasets excluded"):
        r = fit_global(models.gaussian, x, Y, p0, **dict(options, sigma=sigma))
    alone = fit_global(models.gaussian, x, Y[1:], p0[1:], **options)
    assert r.status == 0 and r.shared[0] == 0.3
    np.testing.assert_array_equal(r.params[1:], alone.params)
    assert r.nit == alone.nit


def test_x_per_dataset(rng):
    x, Y, sigma = gaussian_data(rng, 6)
    shift = rng.uniform(-0.1, 0.1, (6, 1))
    X = x + shift                                    # each dataset its own x
    Y = np.array([models.gaussian(X[i], 2.0 + i, 0.4, 0.8, 0.1) for i in range(6)])
    r = fit_global(models.gaussian, X, Y, shared=["mu", "sigma"])
    python = fit_global(_python_gaussian, X, Y, r.params, shared=["mu", "sigma"])
    assert r.status == 0 and python.status == 0
    np.testing.assert_allclose(r.shared, [0.4, 0.8], rtol=1e-9)
    np.testing.assert_allclose(python.local[:, 0], 2.0 + np.arange(6), rtol=1e-8)


def test_every_shared_parameter_fixed_is_fit_batch_with_them_fixed(rng):
    # no free shared parameter: the datasets decouple and each is fit_batch's fit
    from fastcalc import fit_batch
    x, Y, sigma = gaussian_data(rng, 5)
    p0 = np.tile([2.0, 0.4, 0.8, 0.0], (5, 1))
    r = fit_global(models.gaussian, x, Y, p0, shared=["mu", "sigma"], sigma=sigma,
                   fixed=["mu", "sigma"])
    batch = fit_batch(models.gaussian, x, Y, p0, sigma=sigma, fixed=["mu", "sigma"])
    assert r.status == 0 and r.shared.tolist() == [0.4, 0.8]
    assert np.all(r.shared_stderr == 0) and r.dof == Y.size - 2 * 5
    np.testing.assert_array_less(np.abs(r.local - batch.params[:, [0, 3]]),
                                 1e-6 * batch.stderr[:, [0, 3]])


def test_every_local_parameter_fixed(rng):
    x, Y, sigma = gaussian_data(rng, 5)
    p0 = np.tile([2.0, 0.0, 1.0, 0.0], (5, 1))
    r = fit_global(models.gaussian, x, Y, p0, shared=["mu", "sigma"], sigma=sigma,
                   fixed=["A", "c"])
    assert r.status == 0 and r.dof == Y.size - 2
    assert np.all(r.local == p0[:, [0, 3]]) and np.all(r.local_stderr == 0)
    # the reference: least_squares over (mu, sigma) alone
    ref = least_squares(lambda z: ((Y - gaussian_values(x, np.column_stack(
        [p0[:, 0], np.full(5, z[0]), np.full(5, z[1]), p0[:, 3]]))[0]) / sigma).ravel(),
        [0.0, 1.0], method="lm", xtol=1e-15, ftol=1e-15, gtol=1e-15).x
    np.testing.assert_array_less(np.abs(r.shared - ref), 1e-6 * r.shared_stderr)


def test_one_dataset_is_fit(rng):
    from fastcalc import fit
    x, Y, sigma = gaussian_data(rng, 1)
    r = fit_global(models.gaussian, x, Y, shared=["mu", "sigma"], sigma=sigma)
    params, cov, _ = reference(x, Y, sigma, r.params)
    np.testing.assert_array_less(np.abs(r.params - params), 1e-6 * stderr_of(cov, 1))
    # fit stops on the relative change of chi2: within ~sqrt(1e-12 chi2) = 6e-6 stderr here
    single = fit(models.gaussian, x, Y[0], sigma=sigma[0])
    assert r.status == 0 and r.dof == single.dof
    np.testing.assert_array_less(np.abs(r.params[0] - single.params), 2e-5 * single.stderr)
    np.testing.assert_allclose(r.cov_block(0), single.cov, rtol=1e-5)


def test_singular_problems_are_not_success():
    x = np.linspace(0, 1, 10)
    Y = np.array([2 * x + 1, -x + 3, x])
    with pytest.warns(RuntimeWarning, match="did not converge"):     # s changes nothing
        r = fit_global(lambda x, a, b, s: a * x + b + 0 * s, x, Y, shared=["s"])
    assert r.status == 2 and not r.success and np.all(r.dataset_status == 2)
    assert np.all(np.isinf(r.shared_stderr)) and np.all(np.isinf(r.local_stderr))
    assert np.all(np.isinf(r.cov_block(0)))
    with pytest.warns(RuntimeWarning, match="did not converge"):     # only a + b is defined
        r = fit_global(lambda x, s, a, b: (a + b) * x + s, x, Y, shared=["s"])
    assert r.status == 2 and np.all(r.dataset_status == 2)
    assert np.all(np.isinf(r.local_stderr))


def test_python_model_groups_do_not_change_results(rng, monkeypatch):
    import fastcalc.fitting._global as global_module
    x, Y, sigma = gaussian_data(rng, 50, missing=0.1)
    p0 = np.tile([2.0, 0.0, 1.0, 0.0], (50, 1))
    whole = fit_global(_python_gaussian, x, Y, p0, shared=[1, 2], sigma=sigma)
    monkeypatch.setattr(global_module, "PYTHON_GROUP", 7)
    grouped = fit_global(_python_gaussian, x, Y, p0, shared=[1, 2], sigma=sigma)
    np.testing.assert_array_equal(grouped.params, whole.params)
    np.testing.assert_array_equal(grouped.shared_cov, whole.shared_cov)


@pytest.mark.parametrize("lam", [0.0, 0.3])
def test_schur_step_solves_the_assembled_system(rng, lam):
    """The kernel's block elimination against numpy.linalg.solve of the full damped matrix,
    with a blocked local and a blocked shared parameter and a fixed one (not in either list)."""
    from fastcalc.fitting import _global_kernel
    N, P = 6, 5
    shared, local = np.array([1, 3], np.intc), np.array([0, 2], np.intc)   # 4 is fixed
    J = rng.standard_normal((N, 12, P))
    A = np.ascontiguousarray(np.einsum("nip,niq->npq", J, J))
    g = rng.standard_normal((N, P))
    D2 = rng.uniform(0.5, 2.0, (N, P))
    D2_shared = rng.uniform(0.5, 2.0, 2)
    blocked = np.zeros((N, P), np.uint8)
    blocked[2, 0] = 1                                  # dataset 2's first local held
    if lam:
        blocked[:, 3] = 1                              # the second shared held everywhere
    active = np.ones(N, np.uint8)
    active[4] = 0                                      # an excluded dataset
    step, K = np.zeros((N, P)), np.zeros((N, 2, 3))
    S, contribution, status = np.zeros((2, 2)), np.zeros((N, 2, 3)), np.zeros(N, np.intc)
    rc = _global_kernel.schur_step(A, g, active, shared, local, blocked, D2, D2_shared, lam,
                                   1, step, K, S, contribution, status)
    assert rc == 0 and np.all(status == 0)
    # the assembled system over (shared, local of each active dataset), blocked rows removed
    included = np.flatnonzero(active)
    index = [("s", k) for k in range(2)] + [(d, k) for d in included for k in range(2)]
    n = len(index)
    M, rhs = np.zeros((n, n)), np.zeros(n)
    column = {key: i for i, key in enumerate(index)}
    for d in included:
        keys = [("s", 0), ("s", 1), (d, 0), (d, 1)]
        params = [shared[0], shared[1], local[0], local[1]]
        for a, ka in zip(params, keys):
            rhs[column[ka]] += g[d, a]
            for b, kb in zip(params, keys):
                M[column[ka], column[kb]] += A[d, a, b]
    for k in range(2):
        M[k, k] += lam * D2_shared[k]
    for d in included:
        for k in range(2):
            M[column[(d, k)], column[(d, k)]] += lam * D2[d, local[k]]
    held = [column[("s", 1)]] * bool(lam) + [column[(2, 0)]]
    keep = np.setdiff1d(np.arange(n), held)
    solution = np.zeros(n)
    solution[keep] = np.linalg.solve(M[np.ix_(keep, keep)], rhs[keep])
    expected = np.zeros((N, P))
    for d in included:
        expected[d, shared] = solution[:2]
        expected[d, local] = solution[[column[(d, 0)], column[(d, 1)]]]
    np.testing.assert_allclose(step, expected, rtol=1e-10, atol=1e-12)


def test_schur_step_threads_bitwise(rng):
    # 9000 datasets: above the elimination's threading threshold
    from fastcalc.fitting import _global_kernel
    N, P = 9000, 4
    J = rng.standard_normal((N, 8, P))
    A = np.ascontiguousarray(np.einsum("nip,niq->npq", J, J))
    g = rng.standard_normal((N, P))
    shared, local = np.array([1, 2], np.intc), np.array([0, 3], np.intc)
    out = []
    for n_threads in (1, 2):
        step, K = np.zeros((N, P)), np.zeros((N, 2, 3))
        S, contribution, status = np.zeros((2, 2)), np.zeros((N, 2, 3)), np.zeros(N, np.intc)
        rc = _global_kernel.schur_step(A, g, np.ones(N, np.uint8), shared, local,
                                       np.zeros((N, P), np.uint8), np.ones((N, P)), np.ones(2),
                                       1e-3, n_threads, step, K, S, contribution, status)
        out.append((rc, step, S))
    assert out[0][0] == out[1][0] == 0
    np.testing.assert_array_equal(out[0][1], out[1][1])
    np.testing.assert_array_equal(out[0][2], out[1][2])
