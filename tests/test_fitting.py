"""fastcalc.fitting against scipy.optimize.curve_fit, numpy.polyfit and exact answers."""
import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from scipy.optimize import curve_fit, least_squares

from fastcalc import BatchFitResult, FitResult, Status, chi2, fit, fit_batch, linear_fit, models
from fastcalc import polyfit
from fastcalc import fitting, nist
from fastcalc.fitting import _dispatch, _kernel
from fastcalc._testfunctions import low_level

# ---------------------------------------------------------------------------------------------
# Test problems: (model, true params, x) for every built-in model

X1 = np.linspace(0.5, 5.0, 60)
_g = np.linspace(-2.0, 2.0, 9)
X2 = np.array(np.meshgrid(_g, _g)).reshape(2, -1)

BUILTIN_CASES = {
    "line": (models.line, (1.0, 2.0), X1),
    "polynomial2": (models.polynomial(2), (1.0, -0.5, 0.3), X1),
    "exponential": (models.exponential, (3.0, 1.5, 0.5), X1),
    "gaussian": (models.gaussian, (2.0, 2.5, 0.7, 0.3), X1),
    "lorentzian": (models.lorentzian, (2.0, 2.5, 0.5, 0.3), X1),
    "logistic": (models.logistic, (2.0, 2.5, 3.0, 0.3), X1),
    "power_law": (models.power_law, (2.0, 1.5), X1),
    "sine": (models.sine, (1.5, 2.0, 0.3, 0.2), X1),
    "gaussian_2d": (models.gaussian_2d, (2.0, 0.3, -0.2, 0.8, 0.1), X2),
}


def python_gaussian(x, a, mu, s, c):
    return a * np.exp(-0.5 * ((x - mu) / s) ** 2) + c


def python_gaussian_jac(x, a, mu, s, c):
    d = (x - mu) / s
    e = np.exp(-0.5 * d * d)
    return np.column_stack([e, a * e * d / s, a * e * d * d / s, np.ones_like(x)])


def noisy(model, params, x, rng, noise=0.02, shape=None):
    y = model(x, *params)
    return y + rng.normal(0.0, noise, y.shape if shape is None else shape)


def gaussian_batch(rng, n, m=64, noise=0.05):
    x = np.linspace(-5.0, 5.0, m)
    P = np.column_stack([rng.uniform(1, 3, n), rng.uniform(-1, 1, n), rng.uniform(0.6, 1.5, n),
                         rng.uniform(0, 1, n)])
    Y = python_gaussian(x, *[P[:, k:k + 1] for k in range(4)]) + rng.normal(0, noise, (n, m))
    return x, Y, P


def curve_fit_ref(f, x, y, p0, sigma=None, absolute_sigma=False, jac=None):
    return curve_fit(f, x, y, p0=p0, sigma=sigma, absolute_sigma=absolute_sigma, jac=jac,
                     xtol=1e-14, ftol=1e-14, gtol=1e-14, maxfev=100000)


def assert_cov_close(actual, desired, rtol):
    """Covariances agree to rtol relative to sqrt(var_i var_j) (i.e. in correlation units)."""
    d = np.sqrt(np.abs(np.diag(desired)))
    assert np.all(np.abs(actual - desired) <= rtol * np.outer(d, d)), (actual, desired)


def assert_matches_curve_fit(result, popt, pcov, rtol_cov=1e-6):
    stderr = np.sqrt(np.diag(pcov))
    # parameters agree to a small fraction of their standard error (the stopping tolerance
    # tol=1e-12 on chi2 allows ~1e-6 of it); covariances to rtol_cov
    assert np.all(np.abs(result.params - popt) <= 1e-4 * stderr + 1e-12), (result.params, popt)
    assert_cov_close(result.cov, pcov, rtol_cov)


# ---------------------------------------------------------------------------------------------
# chi2, linear_fit, polyfit

def test_chi2_formula_and_batch(rng):
    y = rng.normal(size=(3, 10))
    ym = rng.normal(size=(3, 10))
    s = rng.uniform(0.5, 2.0, 10)
    assert_allclose(chi2(y, ym, s), (((y - ym) / s) ** 2).sum(axis=1), rtol=1e-14)
    assert isinstance(chi2(y[0], ym[0]), float)
    assert chi2(y[0], ym[0]) == pytest.approx(((y[0] - ym[0]) ** 2).sum(), rel=1e-14)
    y2 = y[0].copy()
    y2[3] = np.nan
    assert chi2(y2, ym[0]) == pytest.approx(np.delete((y[0] - ym[0]) ** 2, 3).sum(), rel=1e-14)
    with pytest.raises(ValueError, match="sigma"):
        chi2(y, ym, -1.0)
    with pytest.raises(ValueError, match="y_model"):
        chi2(y, ym[:, :5])


@pytest.mark.parametrize("weighted", [False, True])
def test_linear_fit_matches_numpy_polyfit(rng, weighted):
    x = np.linspace(0, 10, 25)
    sigma = rng.uniform(0.5, 2.0, x.size) if weighted else None
    y = 1.5 - 0.7 * x + rng.normal(0, 0.3, x.size)
    r = linear_fit(x, y, sigma)
    w = 1.0 / sigma if weighted else None
    coef, cov = np.polyfit(x, y, 1, w=w, cov=True)
    assert_allclose(r.params, coef[::-1], rtol=1e-12)
    assert_allclose(r.cov, cov[::-1, ::-1], rtol=1e-10)
    assert r.dof == 23 and r.success
    assert r.chi2 == pytest.approx(chi2(y, r.params[0] + r.params[1] * x, sigma), rel=1e-12)


def test_linear_fit_absolute_sigma_matches_curve_fit(rng):
    x = np.linspace(0, 10, 25)
    sigma = rng.uniform(0.5, 2.0, x.size)
    y = 1.5 - 0.7 * x + rng.normal(0, 1.0, x.size) * sigma
    for absolute in (False, True):
        r = linear_fit(x, y, sigma, absolute_sigma=absolute)
        popt, pcov = curve_fit(lambda x, a, b: a + b * x, x, y, sigma=sigma,
                               absolute_sigma=absolute)
        assert_allclose(r.params, popt, rtol=1e-8)
        assert_allclose(r.cov, pcov, rtol=1e-7)


def test_linear_fit_exact_line_and_errors():
    r = linear_fit([0.0, 1.0, 2.0], [1.0, 3.0, 5.0])
    assert_allclose(r.params, [1.0, 2.0], rtol=1e-15)
    assert r.chi2 == pytest.approx(0.0, abs=1e-28)
    with pytest.raises(ValueError, match="distinct"):
        linear_fit([1.0, 1.0, 1.0], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="x"):
        linear_fit([0.0, np.nan, 1.0], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError):
        linear_fit([0.0, 1.0], [1.0, 2.0, 3.0])


@pytest.mark.parametrize("deg", [0, 1, 2, 3])
def test_polyfit_matches_numpy(rng, deg):
    x = np.linspace(-3, 4, 30)
    sigma = rng.uniform(0.5, 2.0, x.size)
    y = np.polyval([0.2, -1.0, 0.5, 2.0][-(deg + 1):], x) + rng.normal(0, 0.2, x.size)
    r = polyfit(x, y, deg, sigma)
    coef, cov = np.polyfit(x, y, deg, w=1 / sigma, cov=True)
    assert_allclose(r.params, coef[::-1], rtol=1e-9, atol=1e-12)
    assert_allclose(r.cov, cov[::-1, ::-1], rtol=1e-8)
    assert r.param_names == tuple(f"c{k}" for k in range(deg + 1))


def test_polyfit_is_stable_on_ill_conditioned_x():
    # x far from 0: the normal equations of a cubic lose every digit here; QR keeps ~7
    x = np.linspace(1000.0, 1001.0, 40)
    coef = np.array([-3.0, 2.0, 1.5, 0.25])      # c0 + c1 t + ... with t = x - 1000
    t = x - 1000.0
    y = coef[0] + coef[1] * t + coef[2] * t ** 2 + coef[3] * t ** 3
    r = polyfit(t, y, 3)
    assert_allclose(r.params, coef, rtol=1e-10)
    direct = polyfit(x, y, 3)
    assert_allclose(direct.residuals, 0.0, atol=1e-6)


def test_polyfit_errors():
    with pytest.raises(ValueError, match="deg"):
        polyfit([1.0, 2.0], [1.0, 2.0], -1)
    with pytest.raises(ValueError, match="points"):
        polyfit([1.0, 2.0], [1.0, 2.0], 2)


# ---------------------------------------------------------------------------------------------
# fit: built-in models against curve_fit

@pytest.mark.parametrize("name", sorted(BUILTIN_CASES))
@pytest.mark.parametrize("absolute_sigma", [False, True])
def test_fit_builtin_matches_curve_fit(rng, name, absolute_sigma):
    model, true, x = BUILTIN_CASES[name]
    m = x.shape[-1]
    sigma = rng.uniform(0.01, 0.03, m)
    y = model(x, *true) + rng.normal(0, 1, m) * sigma
    r = fit(model, x, y, sigma=sigma, absolute_sigma=absolute_sigma)
    assert r.success, r.message
    popt, pcov = curve_fit_ref(lambda xx, *p: model(xx, *p), x, y, r.params, sigma=sigma,
                               absolute_sigma=absolute_sigma,
                               jac=lambda xx, *p: model.jacobian(xx, *p))
    assert_matches_curve_fit(r, popt, pcov)
    assert r.dof == m - len(true)
    assert r.chi2 == pytest.approx(chi2(y, model(x, *r.params), sigma), rel=1e-12)
    assert_allclose(r.residuals, y - model(x, *r.params), rtol=1e-12, atol=1e-15)
    assert_allclose(r.stderr, np.sqrt(np.diag(pcov)), rtol=1e-6)


@pytest.mark.parametrize("name", sorted(BUILTIN_CASES))
def test_gradient_descent_converges_on_builtin_models(rng, name):
    model, true, x = BUILTIN_CASES[name]
    y = noisy(model, true, x, rng)
    lm = fit(model, x, y)
    gd = fit(model, x, y, method="gd")
    assert gd.success, gd.message
    assert gd.nit <= 20000
    assert_allclose(gd.params, lm.params, rtol=0, atol=1e-3 * lm.stderr.max())
    assert gd.chi2 == pytest.approx(lm.chi2, rel=1e-6)


# ---------------------------------------------------------------------------------------------
# fit: Python and compiled models

@pytest.mark.parametrize("absolute_sigma", [False, True])
@pytest.mark.parametrize("use_jac", [False, True])
def test_fit_python_model_matches_curve_fit(rng, absolute_sigma, use_jac):
    x = np.linspace(-4, 4, 50)
    sigma = rng.uniform(0.02, 0.05, x.size)
    y = python_gaussian(x, 2.0, 0.4, 1.1, 0.2) + rng.normal(0, 1, x.size) * sigma
    jac = python_gaussian_jac if use_jac else None
    r = fit(python_gaussian, x, y, p0=[1.0, 0.0, 1.0, 0.0], sigma=sigma,
            absolute_sigma=absolute_sigma, jac=jac)
    assert r.success
    assert r.param_names == ("a", "mu", "s", "c")
    popt, pcov = curve_fit_ref(python_gaussian, x, y, [1.0, 0.0, 1.0, 0.0], sigma=sigma,
                               absolute_sigma=absolute_sigma, jac=python_gaussian_jac)
    # forward-difference Jacobians change the last digits of the covariance
    assert_matches_curve_fit(r, popt, pcov, rtol_cov=1e-6 if use_jac else 1e-5)


def test_fit_python_model_default_p0_is_ones_like_curve_fit():
    x = np.linspace(0, 2, 20)
    y = 3.0 * x + 1.0
    r = fit(lambda x, a, b: a * x + b, x, y)
    assert_allclose(r.params, [3.0, 1.0], rtol=1e-10)


@pytest.mark.parametrize("jac", [None, "gaussian_model_jac"])
def test_fit_compiled_model_matches_builtin(rng, jac):
    x = np.linspace(-4, 4, 64)
    y = noisy(models.gaussian, (2.0, 0.3, 1.2, 0.5), x, rng, 0.05)
    ref = fit(models.gaussian, x, y)
    r = fit(low_level("gaussian_model"), x, y, p0=[1.0, 0.0, 1.0, 0.0],
            jac=None if jac is None else low_level(jac))
    assert r.success
    assert np.all(np.abs(r.params - ref.params) <= 1e-4 * ref.stderr)
    assert_cov_close(r.cov, ref.cov, 1e-5)
    assert_allclose(r.residuals, ref.residuals, atol=1e-6)
    assert r.nfev > r.nit      # Jacobian evaluations are counted


def test_fit_compiled_model_failure_is_a_status(rng):
    x = np.linspace(0, 1, 10)
    with pytest.warns(RuntimeWarning, match="did not converge"):
        r = fit(low_level("failing_model"), x, x, p0=[1.0, 1.0])
    assert r.status == Status.CALLBACK_ERROR and not r.success
    assert np.all(np.isnan(r.cov))


# ---------------------------------------------------------------------------------------------
# bounds and fixed parameters

def test_bounds_match_scipy_least_squares(rng):
    x = np.linspace(0, 5, 40)
    y = noisy(models.exponential, (3.0, 1.5, 0.5), x, rng, 0.02)
    lower, upper = [0.0, 0.0, -np.inf], [np.inf, 1.2, np.inf]   # tau's optimum is outside
    r = fit(models.exponential, x, y, p0=[1.0, 1.0, 0.0], bounds=(lower, upper))
    assert r.success, r.message
    assert r.params[1] == 1.2
    ref = least_squares(lambda p: models.exponential(x, *p) - y, [1.0, 1.0, 0.0],
                        bounds=(lower, upper), xtol=1e-15, ftol=1e-15, gtol=1e-15)
    assert_allclose(r.params, ref.x, rtol=1e-7)
    # inactive bounds change nothing
    free = fit(models.exponential, x, y, p0=[1.0, 1.0, 0.0])
    loose = fit(models.exponential, x, y, p0=[1.0, 1.0, 0.0], bounds=(-100, 100))
    assert_allclose(loose.params, free.params, rtol=1e-9)


def test_fixed_parameters_match_reduced_curve_fit(rng):
    x = np.linspace(-4, 4, 50)
    y = noisy(models.gaussian, (2.0, 0.3, 1.2, 0.5), x, rng, 0.05)
    for fixed in (["c"], [3], [False, False, False, True]):
        r = fit(models.gaussian, x, y, p0=[1.0, 0.0, 1.0, 0.5], fixed=fixed)
        assert r.params[3] == 0.5 and r.dof == x.size - 3
        popt, pcov = curve_fit_ref(lambda x, a, mu, s: python_gaussian(x, a, mu, s, 0.5), x, y,
                                   [1.0, 0.0, 1.0])
        assert_allclose(r.params[:3], popt, rtol=1e-7)
        assert_cov_close(r.cov[:3, :3], pcov, 1e-5)
        assert np.all(r.cov[3] == 0) and np.all(r.cov[:, 3] == 0)


# ---------------------------------------------------------------------------------------------
# fit_batch

def test_batch_equals_single_fits_builtin(rng):
    x, Y, _ = gaussian_batch(rng, 40)
    batch = fit_batch(models.gaussian, x, Y)
    assert isinstance(batch, BatchFitResult) and len(batch) == 40
    for i in range(0, 40, 7):
        single = fit(models.gaussian, x, Y[i])
        assert_array_equal(batch.params[i], single.params)
        assert_array_equal(batch.cov[i], single.cov)
        assert batch.nit[i] == single.nit and batch.status[i] == single.status
        item = batch[i]
        assert isinstance(item, FitResult)
        assert_array_equal(item.params, single.params)
        assert_allclose(item.residuals, single.residuals, rtol=0, atol=0)


def test_batch_python_model_matches_single_fits(rng):
    x, Y, _ = gaussian_batch(rng, 12)
    p0 = [2.0, 0.0, 1.0, 0.5]
    batch = fit_batch(python_gaussian, x, Y, p0=p0)
    for i in range(12):
        single = fit(python_gaussian, x, Y[i], p0=p0)
        assert_allclose(batch.params[i], single.params, rtol=0, atol=1e-7 * single.stderr.max())
        assert_cov_close(batch.cov[i], single.cov, 1e-5)
        assert batch.status[i] == single.status == 0
    ref = fit_batch(models.gaussian, x, Y, p0=p0)
    assert_allclose(batch.params, ref.params, rtol=0, atol=1e-6)


def test_batch_python_model_one_call_jacobian_with_bounds_and_fixed(rng):
    """fit_batch takes all forward-difference columns from one model call (each free parameter
    shifted in its own block of rows); with an active upper bound (steps taken backwards) and a
    fixed parameter, every dataset matches its single fit, which uses one call per parameter."""
    x, Y, P = gaussian_batch(rng, 8)
    upper = [np.inf, np.inf, 0.7, np.inf]      # sigma capped below most true widths
    calls = []

    def model(x, a, mu, s, c):
        calls.append(np.shape(a)[0])
        return python_gaussian(x, a, mu, s, c)

    kw = dict(p0=[2.0, 0.0, 0.65, 0.5], bounds=([-np.inf] * 4, upper), fixed=[False] * 3 + [True])
    batch = fit_batch(model, x, Y, **kw)
    assert 3 * 8 in calls                      # 3 free parameters x 8 datasets in one call
    assert np.any(batch.params[:, 2] == 0.7)   # the bound is active
    for i in range(8):
        single = fit(python_gaussian, x, Y[i], **kw)
        assert_allclose(batch.params[i], single.params, rtol=1e-12, atol=1e-12)
        assert_allclose(batch.chi2[i], single.chi2, rtol=1e-12)
        assert batch.nfev[i] == single.nfev and batch.status[i] == single.status


def test_batch_compiled_model_matches_builtin(rng):
    x, Y, _ = gaussian_batch(rng, 30)
    ref = fit_batch(models.gaussian, x, Y, p0=[2.0, 0.0, 1.0, 0.5])
    for jac in (None, low_level("gaussian_model_jac")):
        kw = {} if jac is None else {}
        r = fit_batch(low_level("gaussian_model"), x, Y, p0=[2.0, 0.0, 1.0, 0.5], **kw)
        assert np.all(r.success)
        assert_allclose(r.params, ref.params, rtol=0, atol=1e-6)


def test_thread_count_invariance_is_bitwise(rng):
    x, Y, _ = gaussian_batch(rng, 3000)
    Y[5] = np.nan                     # no points
    Y[6, 3:] = np.nan                 # too few points
    Y[7] = 0.0                        # flat data: singular at the solution
    results = [fit_batch(models.gaussian, x, Y, n_threads=n) for n in (1, 2, 3)]
    for r in results[1:]:
        for field in ("params", "cov", "chi2", "nit", "nfev", "status"):
            assert_array_equal(getattr(r, field), getattr(results[0], field))
    assert results[0].status[5] == Status.SINGULAR and results[0].status[6] == Status.SINGULAR
    assert results[0].success.sum() >= 2990


def test_one_bad_dataset_never_affects_the_others(rng):
    x, Y, _ = gaussian_batch(rng, 20)
    clean = fit_batch(models.gaussian, x, Y)
    bad = Y.copy()
    bad[3] = np.nan
    bad[4, :] = 1e308                 # overflows chi2: non-finite
    bad[9, ::2] = np.nan              # missing points only
    r = fit_batch(models.gaussian, x, bad)
    keep = np.setdiff1d(np.arange(20), [3, 4, 9])
    assert_array_equal(r.params[keep], clean.params[keep])
    assert r.status[3] == Status.SINGULAR
    assert r.status[4] != Status.SUCCESS
    # missing points: the same fit as on the subset
    sub = fit(models.gaussian, x[1::2], Y[9, 1::2])
    assert_allclose(r.params[9], sub.params, rtol=1e-12)
    assert r.dof[9] == 32 - 4


def test_batch_too_few_points_gets_fits_reason(rng):
    """Issue 13, 5a: a dataset with all points NaN, or fewer valid points than free
    parameters, had status 2 "singular matrix", dof -3 and no input_error, while fit on the
    same row said "too few points". Now: status 2 with fit's reason, NaN results, dof 0."""
    x = np.linspace(0.0, 4.0, 20)
    y = 3.0 * np.exp(-x / 1.5) + 0.5 + 0.01 * np.sin(7 * x)
    Y = np.vstack([y, np.full(20, np.nan), np.where(np.arange(20) < 2, y, np.nan), y])
    Y[3, ::2] = np.nan                   # 10 valid points: fits
    p0 = [2.0, 1.0, 0.0]
    python_exponential = lambda x, a, tau, c: a * np.exp(-x / tau) + c  # noqa: E731
    for model, kw in ((models.exponential, {}), (python_exponential, {"p0": p0}),
                      (low_level("gaussian_model"), {"p0": [2.0, 2.0, 1.0, 0.5]})):
        nfree = 4 if "p0" in kw and len(kw["p0"]) == 4 else 3
        r = fit_batch(model, x, Y, **kw)
        for i, valid in ((1, 0), (2, 2)):
            reason = f"too few points: {valid} valid points for {nfree} free parameters"
            with pytest.raises(ValueError, match=reason):
                fit(model, x, Y[i], **kw)
            assert r.status[i] == Status.SINGULAR and r.input_error[i] == reason
            assert r.message[i] == f"zero derivative or singular matrix: {reason}"
            assert r.dof[i] == 0 and np.isnan(r.params[i]).all() and np.isnan(r.chi2[i])
            assert r[i].message == r.message[i] and not r[i].success
        # the others as if alone (a Gaussian on this decay need not converge: same status)
        for i in (0, 3):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                single = fit(model, x, Y[i], **kw)
            assert r.status[i] == single.status and r.input_error[i] == ""
            assert single.success or nfree == 4
            assert_allclose(r.params[i], single.params, rtol=1e-9)
            assert r.dof[i] == single.dof == np.isfinite(Y[i]).sum() - nfree
    # with a parameter fixed, 2 points are enough for the 2 free ones
    r = fit_batch(models.exponential, x, Y, p0=[3.0, 1.5, 0.5], fixed=["c"])
    assert r.status[2] == Status.SUCCESS and r.dof[2] == 0
    assert r.input_error[1] == "too few points: 0 valid points for 2 free parameters"
    # another reason found first is kept (inf in the row)
    Y[1, 0] = np.inf
    r = fit_batch(models.exponential, x, Y)
    assert r.status[1] == Status.NON_FINITE and "inf" in r.input_error[1]


def test_power_law_with_x_outside_its_domain_says_so(rng):
    """Issue 13, 5b: power_law on x <= 0 gave all-NaN parameters and status 2 "singular
    matrix". fit now raises naming the domain (as for other bad x); fit_batch gives that
    dataset status 3 with the reason, and fits the others as curve_fit does."""
    x_bad = np.linspace(-1.0, 4.0, 20)              # 4 points <= 0
    x_good = np.linspace(0.5, 4.0, 20)
    noise = 0.01 * rng.standard_normal(20)
    y_bad = 2.0 * np.abs(x_bad) ** 1.5 + noise
    y_good = 2.0 * x_good ** 1.5 + noise
    reason = "x is outside the model's domain (A*x**k needs x > 0)"
    for p0 in (None, [1.0, 1.0]):
        with pytest.raises(ValueError, match=r"needs x > 0\): 4 of the 20 valid points"):
            fit(models.power_law, x_bad, y_bad, p0=p0)
    with pytest.raises(ValueError, match="x is outside the model's domain"):
        fit(models.power_law, np.r_[0.0, x_good], np.r_[1.0, y_good])      # x = 0 alone
    # a point <= 0 whose y is missing does not count
    masked = np.where(x_bad > 0, y_bad, np.nan)
    r = fit(models.power_law, x_bad, masked)
    popt, pcov = curve_fit(lambda x, A, k: A * x**k, x_bad[x_bad > 0], masked[x_bad > 0],
                           p0=[1.0, 1.0])
    assert r.success and r.dof == 16 - 2
    assert_allclose(r.params, popt, rtol=1e-7)
    assert_allclose(r.stderr, np.sqrt(np.diag(pcov)), rtol=1e-5)
    X = np.vstack([x_bad, x_good, x_bad])
    Y = np.vstack([y_bad, y_good, masked])
    for batch in (fit_batch(models.power_law, X, Y),
                  fit_batch(models.power_law, x_bad, Y[[0, 2, 0]], p0=[1.0, 1.0])):
        bad = np.flatnonzero(batch.input_error != "")
        for i in range(3):
            if i in bad:
                assert batch.status[i] == Status.NON_FINITE and batch.input_error[i] == reason
                assert reason in batch.message[i] and np.isnan(batch.params[i]).all()
            else:
                assert batch.success[i] and batch.input_error[i] == ""
    first = fit_batch(models.power_law, X, Y)
    assert list(np.flatnonzero(first.input_error != "")) == [0]
    popt, _ = curve_fit(lambda x, A, k: A * x**k, x_good, y_good, p0=[1.0, 1.0])
    assert_allclose(first.params[1], popt, rtol=1e-7)
    assert_allclose(first.params[2], r.params, rtol=1e-9)
    # the model's own guess says the same
    with pytest.raises(ValueError, match=r"cannot guess power_law parameters: x is outside"):
        models.power_law.guess(x_bad, y_bad)


@pytest.mark.parametrize("k", [600, -600, 1000, -1000])
def test_stderr_scales_with_the_data_beyond_the_double_range(k):
    """stderr was sqrt(diag(cov)): inf for data scaled by 2**600 and 0 for 2**-600, where
    only the variance leaves the double range. It now scales exactly as the parameters do
    (A and c with y, tau not), bitwise for built-in models, in fit and fit_batch."""
    x = np.linspace(0.5, 4.0, 20)
    y = 3.0 * np.exp(-x / 1.5) + 0.5 + 0.01 * np.sin(7 * x)
    powers = np.array([k, 0, k])
    ref = fit(models.exponential, x, y)
    popt, pcov = curve_fit(lambda x, A, tau, c: A * np.exp(-x / tau) + c, x, y, p0=ref.params)
    assert_allclose(ref.params, popt, rtol=1e-7)
    assert_allclose(ref.stderr, np.sqrt(np.diag(pcov)), rtol=1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")          # fit warns that cov has inf entries
        single = fit(models.exponential, x, np.ldexp(y, k))
    batch = fit_batch(models.exponential, x, np.ldexp(np.vstack([y, y]), k))
    assert single.success and np.all(batch.success)
    for params, stderr in ((single.params, single.stderr), (batch.params[1], batch.stderr[1]),
                           (batch[0].params, batch[0].stderr)):
        assert_array_equal(params, np.ldexp(ref.params, powers))
        assert_array_equal(stderr, np.ldexp(ref.stderr, powers))
    # the variances of A and c themselves are beyond the range: inf or 0 in cov
    assert single.cov[0, 0] == (np.inf if k > 0 else 0.0) and np.isfinite(single.cov[1, 1])
    # sigma scaled with y: the same weighted problem (the iterations round differently)
    for absolute_sigma in (False, True):
        sigma = 0.01 * (1.0 + 0.1 * np.cos(x))
        want = fit(models.exponential, x, y, sigma=sigma, absolute_sigma=absolute_sigma)
        got = fit_batch(models.exponential, x, np.ldexp(np.vstack([y, y]), k),
                        sigma=np.ldexp(sigma, k), absolute_sigma=absolute_sigma)
        assert_allclose(got.stderr, np.ldexp(np.vstack([want.stderr] * 2), powers), rtol=1e-12)
    # a Python model (forward differences: its steps follow the parameters, not bitwise)
    python_exponential = lambda x, A, tau, c: A * np.exp(-x / tau) + c  # noqa: E731
    p0 = np.array([2.0, 1.0, 0.1])
    want = fit(python_exponential, x, y, p0=p0)
    got = fit_batch(python_exponential, x, np.ldexp(np.vstack([y, y]), k),
                    p0=np.ldexp(p0, powers))
    assert np.all(got.success)
    assert_allclose(got.stderr, np.ldexp(np.vstack([want.stderr] * 2), powers), rtol=1e-6)


def test_stderr_beyond_the_double_range_through_dask():
    da = pytest.importorskip("dask.array")
    import dask
    import fastcalc.dask
    x = np.linspace(0.5, 4.0, 20)
    Y = np.ldexp(3.0 * np.exp(-x / 1.5) + 0.5 + 0.01 * np.sin(7 * x * np.arange(1, 5)[:, None]),
                 600)
    want = fit_batch(models.exponential, x, Y)
    assert np.all(np.isfinite(want.stderr)) and np.all(np.isinf(want.cov[:, 0, 0]))
    lazy = fastcalc.dask.fit_batch(models.exponential, x, da.from_array(Y, chunks=2))
    with dask.config.set(scheduler="synchronous"):
        assert_array_equal(lazy.stderr.compute(), want.stderr)
        assert_array_equal(lazy.compute().stderr, want.stderr)


def test_stderr_of_fixed_singular_and_invalid_datasets():
    x = np.linspace(0.5, 4.0, 20)
    y = 3.0 * np.exp(-x / 1.5) + 0.5 + 0.01 * np.sin(7 * x)
    r = fit(models.exponential, x, y, p0=[3.0, 1.5, 0.5], fixed=["tau"])
    assert r.stderr[1] == 0.0 and np.all(r.stderr[[0, 2]] > 0)
    assert_allclose(r.stderr, np.sqrt(np.diag(r.cov)), rtol=1e-15)
    # flat data: singular at the solution (stderr inf); no valid point: not fitted (NaN)
    b = fit_batch(models.gaussian, x, np.vstack([y * 0, y, np.full(20, np.nan)]))
    assert b.status[0] == Status.SINGULAR and np.all(np.isinf(b.stderr[0]))
    assert np.all(np.isnan(b.stderr[2]))


def test_batch_python_model_statuses_per_dataset(rng):
    x, Y, _ = gaussian_batch(rng, 6)
    Y[2] = np.nan
    Y[4, :61] = np.nan
    r = fit_batch(python_gaussian, x, Y, p0=[2.0, 0.0, 1.0, 0.5])
    assert r.status[2] == Status.SINGULAR and r.status[4] == Status.SINGULAR
    assert np.all(r.success[[0, 1, 3, 5]])


def test_batch_per_dataset_x_sigma_and_p0(rng):
    n, m = 8, 40
    X = np.sort(rng.uniform(0, 5, (n, m)), axis=1)
    true = np.column_stack([rng.uniform(2, 4, n), rng.uniform(1, 2, n), rng.uniform(0, 1, n)])
    S = rng.uniform(0.01, 0.03, (n, m))
    Y = models.exponential(X[:, None, :][:, 0], *[true[:, k:k + 1] for k in range(3)]) \
        if False else np.array([models.exponential(X[i], *true[i]) for i in range(n)])
    Y = Y + rng.normal(0, 1, (n, m)) * S
    p0 = true * 1.1
    r = fit_batch(models.exponential, X, Y, p0=p0, sigma=S, absolute_sigma=True)
    rp = fit_batch(lambda x, a, tau, c: a * np.exp(-x / tau) + c, X, Y, p0=p0, sigma=S,
                   absolute_sigma=True)
    for i in range(n):
        single = fit(models.exponential, X[i], Y[i], p0=p0[i], sigma=S[i], absolute_sigma=True)
        assert_array_equal(r.params[i], single.params)
        assert_allclose(rp.params[i], single.params, rtol=1e-7)
        popt, pcov = curve_fit_ref(lambda x, *p: models.exponential(x, *p), X[i], Y[i], p0[i],
                                   sigma=S[i], absolute_sigma=True)
        assert_cov_close(r.cov[i], pcov, 1e-6)


def test_batch_gaussian_2d_shared_and_per_dataset_x(rng):
    n = 10
    true = np.column_stack([rng.uniform(1, 3, n), rng.uniform(-0.5, 0.5, n),
                            rng.uniform(-0.5, 0.5, n), rng.uniform(0.6, 1.0, n),
                            rng.uniform(0, 0.5, n)])
    Y = np.array([models.gaussian_2d(X2, *p) for p in true]) + rng.normal(0, 0.01, (n, 81))
    shared = fit_batch(models.gaussian_2d, X2, Y)
    per = fit_batch(models.gaussian_2d, np.broadcast_to(X2, (n, 2, 81)), Y)
    assert np.all(shared.success)
    assert_array_equal(shared.params, per.params)
    assert_allclose(shared.params, true, atol=0.05)


def test_batch_python_model_x_of_two_rows_with_two_datasets_is_not_guessed(rng):
    """x (2, m) with N = 2 is per-dataset 1-D x or a shared x of two variables: refused unless
    x_per_dataset says which; each explicit reading gives the matching built-in fit."""
    def python_gaussian_2d(xy, a, x0, y0, s, b):
        return a * np.exp(-((xy[0] - x0) ** 2 + (xy[1] - y0) ** 2) / (2 * s * s)) + b

    true2 = np.array([[2.0, 0.1, -0.2, 0.8, 0.3], [1.5, -0.3, 0.2, 0.7, 0.1]])
    Y2 = np.array([models.gaussian_2d(X2, *p) for p in true2]) + rng.normal(0, 0.01, (2, 81))
    with pytest.raises(ValueError, match="ambiguous.*x_per_dataset"):
        fit_batch(python_gaussian_2d, X2, Y2, p0=true2 * 1.05)
    shared = fit_batch(python_gaussian_2d, X2, Y2, p0=true2 * 1.05, x_per_dataset=False)
    ref = fit_batch(models.gaussian_2d, X2, Y2, p0=true2 * 1.05)
    assert np.all(shared.success)
    assert_allclose(shared.params, ref.params, rtol=1e-6)

    X = np.array([np.linspace(-5, 5, 64), np.linspace(-4, 6, 64)])
    true1 = np.array([[2.0, 0.5, 1.0, 0.2], [1.0, 1.5, 0.8, 0.4]])
    Y1 = np.array([python_gaussian(X[i], *true1[i]) for i in range(2)]) \
        + rng.normal(0, 0.01, (2, 64))
    with pytest.raises(ValueError, match="ambiguous"):
        fit_batch(python_gaussian, X, Y1, p0=true1 * 1.05)
    per = fit_batch(python_gaussian, X, Y1, p0=true1 * 1.05, x_per_dataset=True)
    ref = fit_batch(models.gaussian, X, Y1, p0=true1 * 1.05)
    assert np.all(per.success)
    assert_allclose(per.params, ref.params, rtol=1e-6)
    # a value contradicting the shape is refused for built-in models; bad values are TypeErrors
    with pytest.raises(ValueError, match="contradicts"):
        fit_batch(models.gaussian, X[0], Y1, x_per_dataset=True)
    with pytest.raises(TypeError, match="x_per_dataset"):
        fit_batch(python_gaussian, X, Y1, p0=true1[0], x_per_dataset="yes")
    with pytest.raises(ValueError, match="x_per_dataset=True"):
        fit_batch(python_gaussian, X[0], Y1, p0=true1[0], x_per_dataset=True)


def test_batch_result_fields_dataframe_and_progress(rng):
    pd = pytest.importorskip("pandas", reason="to_dataframe needs pandas")
    x, Y, _ = gaussian_batch(rng, 10)
    r = fit_batch(models.gaussian, x, Y, progress=True)
    df = r.to_dataframe()
    assert isinstance(df, pd.DataFrame) and len(df) == 10
    assert list(df.columns[:4]) == list(models.gaussian.param_names)
    assert_allclose(df["stderr_mu"], r.stderr[:, 1])
    assert r.residuals.shape == Y.shape
    assert_allclose(r.residuals, Y - np.array([models.gaussian(x, *p) for p in r.params]),
                    atol=1e-12)
    assert_allclose(r.redchi2, r.chi2 / r.dof)
    assert r.message[0] == "converged"
    assert "chi2" in r[0].report() and "mu" in r[0].report()


def test_progress_without_tqdm_warns_once(rng, monkeypatch):
    """Issue 13, 5f: progress=True without tqdm showed nothing, silently."""
    import sys
    x, Y, _ = gaussian_batch(rng, 6)
    expected = fit_batch(models.gaussian, x, Y)
    monkeypatch.setitem(sys.modules, "tqdm", None)       # import tqdm raises ImportError
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    for model, p0 in ((models.gaussian, None), (python_gaussian, expected.params)):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            r = fit_batch(model, x, Y, p0=p0, progress=True)
        assert [str(w.message) for w in caught] == [
            "progress=True shows nothing: tqdm is not installed "
            "(pip install 'fastcalc[progress]')"]
        assert caught[0].category is UserWarning and caught[0].filename == __file__
        assert np.all(r.success)
        assert_allclose(r.params, expected.params, rtol=1e-9)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit_batch(models.gaussian, x, Y)                 # no progress asked: no warning


def test_batch_gd_matches_lm(rng):
    x, Y, _ = gaussian_batch(rng, 20, noise=0.02)
    lm = fit_batch(models.gaussian, x, Y)
    gd = fit_batch(models.gaussian, x, Y, method="gd")
    assert np.all(gd.success)
    assert_allclose(gd.params, lm.params, rtol=0, atol=1e-3 * lm.stderr.max())


# ---------------------------------------------------------------------------------------------
# bad input

def test_bad_input_errors(rng):
    x = np.linspace(0, 1, 20)
    y = 2 * x + 1
    g = models.line
    with pytest.raises(ValueError, match="x has 10 points but y has 20"):
        fit(g, x[:10], y)
    with pytest.raises(ValueError, match="x contains NaN or inf"):
        fit(g, np.where(x > 0.5, np.nan, x), y)
    with pytest.raises(ValueError, match="x contains NaN or inf"):
        fit(g, np.where(x > 0.5, np.inf, x), y)
    with pytest.raises(ValueError, match="sigma"):
        fit(g, x, y, sigma=np.zeros(20))
    with pytest.raises(ValueError, match="sigma"):
        fit(g, x, y, sigma=-np.ones(20))
    with pytest.raises(ValueError, match="sigma has 7 points but y has 20"):
        fit(g, x, y, sigma=np.ones(7))
    with pytest.raises(ValueError, match="too few points"):
        fit(models.gaussian, x[:3], y[:3], p0=[1.0, 0.0, 1.0, 0.0])
    with pytest.raises(ValueError, match="p0 has shape"):
        fit(g, x, y, p0=[1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="p0 has shape"):
        fit_batch(g, x, np.array([y, y]), p0=np.ones((3, 2)))
    with pytest.raises(ValueError, match="method"):
        fit(g, x, y, method="newton")
    with pytest.raises(ValueError, match="bounds"):
        fit(g, x, y, bounds=([0, 0], [1, -1]))
    with pytest.raises(ValueError, match="outside the bounds"):
        fit(g, x, y, p0=[5.0, 5.0], bounds=(0, 1))
    with pytest.raises(ValueError, match="p0 is required"):
        fit(low_level("gaussian_model"), x, y)
    with pytest.raises(ValueError, match="Y must be 2-D"):
        fit_batch(g, x, y)
    with pytest.raises(ValueError, match="x has 3 rows but Y has 2 datasets"):
        fit_batch(g, np.ones((3, 20)), np.ones((2, 20)))
    with pytest.raises(ValueError, match="fixed"):
        fit(g, x, y, fixed=["nope"])
    with pytest.raises(TypeError, match="model"):
        fit(42, x, y)
    with pytest.raises(TypeError, match="n_threads"):
        fit_batch(g, x, np.array([y]), n_threads="two")
    with pytest.raises(ValueError, match="model returned shape"):
        fit(lambda x, a, b: np.ones(3), x, y)
    with pytest.raises(ValueError, match="maxiter"):
        fit(g, x, y, maxiter=0)


def test_length_mismatch_names_both_lengths():
    """Issue 13, 5d: y shortened by one point was reported as 'x has shape (20,), expected
    (19,)'; either array may be the short one, so the message gives both lengths."""
    x = np.linspace(0.0, 4.0, 20)
    y = 3.0 * np.exp(-x / 1.5) + 0.5
    Y = np.vstack([y, y, y])
    cases = [
        (lambda: fit(models.exponential, x, y[:-1]), r"x has 20 points but y has 19 \("),
        (lambda: fit(models.exponential, x[:-1], y), r"x has 19 points but y has 20 \("),
        (lambda: fit(models.exponential, x, y, sigma=np.ones(19)),
         "sigma has 19 points but y has 20"),
        (lambda: fit(models.gaussian_2d, np.ones((2, 21)), y), "x has 21 points but y has 20"),
        (lambda: fit(models.gaussian_2d, np.ones((3, 20)), y),
         r"x has shape \(3, 20\), expected \(2, 20\)"),
        (lambda: fit(low_level("gaussian_model"), x, y[:-1], p0=[1.0, 2.0, 1.0, 0.0]),
         "x has 20 points but y has 19"),
        (lambda: fit(lambda x, a, b: a * x + b, x, y[:-1]),
         r"expected \(19,\): y has 19 points, x has shape \(20,\)"),
        (lambda: fit_batch(models.exponential, x, Y[:, :-1]),
         "x has 20 points but Y has 19 per dataset"),
        (lambda: fit_batch(models.exponential, Y[:, :-1], Y),
         "x has 19 points but Y has 20 per dataset"),
        (lambda: fit_batch(models.exponential, Y[:2], Y), "x has 2 rows but Y has 3 datasets"),
        (lambda: fit_batch(models.exponential, x, Y, sigma=np.ones((3, 19))),
         "sigma has 19 points but Y has 20 per dataset"),
        (lambda: fit_batch(models.exponential, x, Y, sigma=np.ones((2, 20))),
         "sigma has 2 rows but Y has 3 datasets"),
    ]
    for call, message in cases:
        with pytest.raises(ValueError, match=message):
            call()


def test_model_exceptions_propagate(rng):
    x = np.linspace(0, 1, 20)

    def broken(x, a, b):
        raise ZeroDivisionError("inside the model")

    with pytest.raises(ZeroDivisionError, match="inside the model"):
        fit(broken, x, x)
    with pytest.raises(ZeroDivisionError, match="inside the model"):
        fit_batch(broken, x, np.array([x, x]))

    def broken_jac(x, a, b):
        raise KeyError("jac")

    with pytest.raises(KeyError):
        fit(lambda x, a, b: a * x + b, x, x, jac=broken_jac)


def test_python_model_groups_on_threads_are_bitwise_identical(rng, monkeypatch):
    """More than one group of datasets (at most 500 each here) runs on several threads; every field
    equals the single-thread run, with per-dataset x, sigma and a missing dataset in a later
    group."""
    monkeypatch.setattr(_dispatch, "PYTHON_CHUNK", 500)
    n = 1300
    x, Y, _ = gaussian_batch(rng, n, m=24)
    X = x + 0.01 * rng.uniform(size=(n, 24))
    S = rng.uniform(0.04, 0.06, (n, 24))
    Y[1100] = np.nan
    results = [fit_batch(python_gaussian, X, Y, p0=[2.0, 0.0, 1.0, 0.5], sigma=S, n_threads=t)
               for t in (1, 2, 3)]
    for r in results[1:]:
        for field in ("params", "cov", "chi2", "nit", "nfev", "status"):
            assert_array_equal(getattr(r, field), getattr(results[0], field))
    assert results[0].status[1100] == Status.SINGULAR
    assert results[0].success.sum() >= n - 5


@pytest.mark.parametrize("n", [0, 1, 2, 1279, 1280, 1281, 10_000, 100_000, 100_003])
def test_python_model_groups_are_balanced_and_cover_every_dataset(n):
    size = _dispatch.python_group_size(n)
    groups = -(-n // size)
    assert 1 <= size <= _dispatch.PYTHON_CHUNK
    assert groups == 1 or groups % _dispatch.PYTHON_GROUPS_MULTIPLE == 0
    assert size * (groups - 1) < n <= size * groups     # no empty group


def test_python_model_exception_in_a_later_group_propagates_from_threads(rng, monkeypatch):
    monkeypatch.setattr(_dispatch, "PYTHON_CHUNK", 500)
    x, Y, _ = gaussian_batch(rng, 1200, m=16)

    def model(x, a, mu, s, c):
        if a.shape[0] and np.any(a > 50.0):
            raise ArithmeticError("bad group")
        return python_gaussian(x, a, mu, s, c)

    p0 = np.tile([2.0, 0.0, 1.0, 0.5], (1200, 1))
    p0[1100, 0] = 100.0                 # only the last of four groups sees it
    for threads in (1, 2):
        with pytest.raises(ArithmeticError, match="bad group"):
            fit_batch(model, x, Y, p0=p0, n_threads=threads)


def test_non_convergence_is_reported_not_hidden(rng):
    x, Y, _ = gaussian_batch(rng, 1)
    with pytest.warns(RuntimeWarning, match="did not converge"):
        r = fit(models.gaussian, x, Y[0], p0=[1.0, 3.0, 0.3, 0.0], maxiter=2)
    assert r.status == Status.MAX_ITERATIONS and not r.success
    # non-finite model values at the start
    with pytest.warns(RuntimeWarning):
        r = fit(lambda x, a: np.full_like(x, np.nan) * a, x, Y[0], p0=[1.0])
    assert r.status == Status.NON_FINITE


def test_inputs_are_not_mutated(rng):
    x, Y, _ = gaussian_batch(rng, 5)
    Y[1, 4] = np.nan
    sigma = np.full(64, 0.05)
    p0 = np.array([2.0, 0.0, 1.0, 0.5])
    bounds = (np.full(4, -10.0), np.full(4, 10.0))
    copies = [a.copy() for a in (x, Y, sigma, p0, *bounds)]
    for a in (x, Y, sigma, p0, *bounds):
        a.setflags(write=False)       # read-only arrays work, and nothing writes to them
    fit_batch(models.gaussian, x, Y, p0=p0, sigma=sigma, bounds=bounds)
    fit_batch(python_gaussian, x, Y, p0=p0, sigma=sigma, bounds=bounds)
    fit(models.gaussian, x, Y[0], p0=p0, sigma=sigma, bounds=bounds)
    linear_fit(x, Y[0], sigma)
    polyfit(x, Y[0], 2, sigma)
    for a, c in zip((x, Y, sigma, p0, *bounds), copies):
        assert_array_equal(a, c)


# ---------------------------------------------------------------------------------------------
# the kernels' hand-written linear algebra against LAPACK

def test_householder_least_squares_matches_lapack(rng):
    for rows, cols in [(5, 5), (64, 4), (12, 7), (3, 1)]:
        A = rng.normal(size=(rows, cols)) * np.logspace(0, 6, cols)
        b = rng.normal(size=rows)
        assert_allclose(_kernel._householder_lstsq(A, b), np.linalg.lstsq(A, b, rcond=None)[0],
                        rtol=1e-9)


@pytest.mark.parametrize("scale", [1e200, 1e-200])
def test_householder_least_squares_at_extreme_scales(rng, scale):
    # Columns whose squares overflow (or underflow): the answer is that of the rescaled problem.
    A = rng.normal(size=(9, 3))
    b = rng.normal(size=9)
    expected = np.linalg.lstsq(A, b, rcond=None)[0] / scale
    assert_allclose(_kernel._householder_lstsq(A * scale, b), expected, rtol=1e-12)


def test_cholesky_matches_lapack_and_rejects_ill_conditioned(rng):
    A = rng.normal(size=(20, 5))
    M = A.T @ A
    b = rng.normal(size=5)
    assert_allclose(_kernel._cholesky_solve(M, b), np.linalg.solve(M, b), rtol=1e-10)
    B = A.copy()
    B[:, 4] = B[:, 3] * (1 + 1e-9)
    assert _kernel._cholesky_solve(B.T @ B, b) is None


@pytest.mark.parametrize("scale", [1e120, 1e-120, 1e200, 1e-200])
@pytest.mark.parametrize("kind", ["builtin", "python", "batch", "gd"])
@pytest.mark.filterwarnings("ignore:.*covariance entries are inf:RuntimeWarning")  # tiny x
def test_fit_at_extreme_x_scales_matches_the_rescaled_fit(rng, scale, kind):
    # J^T J of a quadratic in x overflows (x ~ 1e120) or underflows (x ~ 1e-120): the steps must
    # come from scale-safe factors, giving the fit on u = x / scale with c_k / scale^k.
    u = np.linspace(0.5, 4.0, 12)
    y = 1.0 + 2.0 * u - 0.75 * u**2 + rng.normal(scale=0.05, size=u.size)
    # keep x^deg within the double range; gradient descent is slow on the quadratic
    deg = 1 if abs(np.log10(scale)) > 150 or kind == "gd" else 2
    powers = scale ** -np.arange(deg + 1.0)
    method = "gd" if kind == "gd" else "lm"
    reference = fit(models.polynomial(deg), u, y, p0=np.ones(deg + 1), method=method)
    assert reference.success
    p0 = np.ones(deg + 1) * powers
    if kind == "gd":
        r = fit(models.polynomial(deg), u * scale, y, p0=p0, method="gd")
    elif kind == "builtin":
        r = fit(models.polynomial(deg), u * scale, y, p0=p0)
    elif kind == "python":
        r = fit(lambda x, *c: sum(ck * x**k for k, ck in enumerate(c)), u * scale, y, p0=p0)
    else:
        r = fit_batch(models.polynomial(deg), u * scale, np.stack([y, 2 * y]), p0=p0)
        assert_array_equal(r.status, 0)
        assert_allclose(r.params[1] / powers, 2 * reference.params, rtol=1e-8)
        r = r[0]
    assert r.success, r.message
    # forward differences of the Python model agree to ~sqrt(eps), analytic Jacobians closely
    rtol = 1e-6 if kind == "python" else 1e-8
    assert_allclose(r.params / powers, reference.params, rtol=rtol)
    # the intercept's variance does not scale; the others' do (and may over/underflow)
    assert_allclose(r.cov[0, 0], reference.cov[0, 0], rtol=1e-5)


def test_batch_python_model_with_broadcast_jacobian(rng):
    x, Y, _ = gaussian_batch(rng, 10)
    p0 = [2.0, 0.0, 1.0, 0.5]

    def jac(x, a, mu, s, c):
        d = (x - mu) / s
        e = np.exp(-0.5 * d * d)
        return e, a * e * d / s, a * e * d * d / s, 1.0

    fd = fit_batch(python_gaussian, x, Y, p0=p0)
    analytic = fit_batch(python_gaussian, x, Y, p0=p0, jac=jac)
    ref = fit_batch(models.gaussian, x, Y, p0=p0)
    assert np.all(analytic.success)
    assert_allclose(analytic.params, ref.params, rtol=0, atol=1e-6)
    assert np.all(analytic.nfev < fd.nfev)
    with pytest.raises(ValueError, match="derivatives"):
        fit_batch(python_gaussian, x, Y, p0=p0, jac=lambda x, *p: p[:2])


def test_zero_degrees_of_freedom_warns_and_gives_inf_covariance():
    x = np.array([0.0, 1.0])
    with pytest.warns(RuntimeWarning, match="covariance"):
        r = fit(models.line, x, [1.0, 3.0])
    assert_allclose(r.params, [1.0, 2.0], rtol=1e-12)
    assert r.success and r.dof == 0 and np.all(np.isinf(r.cov))
    absolute = fit(models.line, x, [1.0, 3.0], sigma=[1.0, 1.0], absolute_sigma=True)
    assert_allclose(absolute.cov, [[1.0, -1.0], [-1.0, 2.0]], rtol=1e-12)


def test_linear_models_agree_with_linear_least_squares(rng):
    x = np.linspace(-2, 3, 40)
    sigma = rng.uniform(0.5, 1.5, x.size)
    y = 0.5 - x + 0.25 * x ** 3 + rng.normal(0, 0.1, x.size) * sigma
    ref = polyfit(x, y, 3, sigma)
    for method in ("lm", "gd"):
        r = fit(models.polynomial(3), x, y, sigma=sigma, method=method)
        assert r.success
        assert np.all(np.abs(r.params - ref.params) <= (1e-6 if method == "lm" else 1e-3)
                      * ref.stderr)
        assert_cov_close(r.cov, ref.cov, 1e-6)
    line = fit(models.line, x, y, sigma=sigma)
    closed = linear_fit(x, y, sigma)
    assert_allclose(line.params, closed.params, rtol=1e-9)
    assert_cov_close(line.cov, closed.cov, 1e-9)


def test_gradient_descent_python_model_and_budget(rng):
    x = np.linspace(0, 4, 30)
    y = noisy(models.exponential, (3.0, 1.5, 0.5), x, rng)
    lm = fit(lambda x, a, t, c: a * np.exp(-x / t) + c, x, y, p0=[2.0, 1.0, 0.0])
    gd = fit(lambda x, a, t, c: a * np.exp(-x / t) + c, x, y, p0=[2.0, 1.0, 0.0], method="gd")
    assert gd.success and gd.nit > lm.nit
    assert np.all(np.abs(gd.params - lm.params) <= 1e-3 * lm.stderr)
    with pytest.warns(RuntimeWarning, match="did not converge"):
        short = fit(models.exponential, x, y, p0=[2.0, 1.0, 0.0], method="gd", maxiter=5)
    assert short.status == Status.MAX_ITERATIONS and short.nit == 5


@pytest.mark.parametrize("jacobian", ["analytic", "finite-difference"])
@pytest.mark.parametrize("name", ["BoxBOD", "MGH10", "Bennett5", "MGH17"])
def test_trust_region_solves_the_hard_nist_starts(nist_dir, name, jacobian):
    """Start 1 of these is far from the minimum (BoxBOD and MGH10 defeated the earlier
    Nielsen-damped kernel): the trust-region kernel reaches the certified values with a success
    status, within its default iteration budget."""
    problem = nist.load(name, nist_dir)
    r = fit(problem.f, problem.x, problem.y, p0=problem.start(1),
            jac=problem.jac if jacobian == "analytic" else None)
    assert r.success, (r.status, r.nit, r.params)
    assert problem.min_lre(r.params) >= 4.0, (r.params, problem.certified_params)
    assert_allclose(r.chi2, problem.certified_rss, rtol=1e-6)


@pytest.mark.parametrize("method", ["lm", "gd"])
def test_no_free_parameters_finishes_like_a_builtin_model(method):
    # every parameter fixed (or none at all): the lock-step loop of a Python model used to wait
    # forever for a Jacobian with no columns, and fit_batch raised from range(0, 0, 0)
    x = np.linspace(0.0, 1.0, 10)
    y = 1.0 + 2.0 * x + 0.01 * np.sin(7.0 * x)
    ref = fit(models.line, x, y, [1.0, 2.0], fixed=[0, 1], method=method)
    assert ref.status == 0 and ref.nit == 0
    line = lambda x, a, b: a + b * x  # noqa: E731
    for fixed in ([0, 1], [True, True], ["a", "b"]):
        r = fit(line, x, y, [1.0, 2.0], fixed=fixed, method=method)
        assert r.status == 0 and r.nit == 0 and r.nfev == ref.nfev
        assert_array_equal(r.params, [1.0, 2.0])
        assert_array_equal(r.cov, np.zeros((2, 2)))
        assert r.chi2 == ref.chi2
        rb = fit_batch(line, x, np.stack([y, 2 * y]), [1.0, 2.0], fixed=fixed, method=method)
        assert_array_equal(rb.status, [0, 0])
        assert_array_equal(rb.params, [[1.0, 2.0]] * 2)
        assert_array_equal(rb.cov, np.zeros((2, 2, 2)))
        assert rb.chi2[0] == ref.chi2
    r = fit(lambda x: 1.0 + 2.0 * x, x, y, [], method=method)
    assert r.status == 0 and r.params.shape == (0,) and r.chi2 == ref.chi2
    rb = fit_batch(lambda x: 1.0 + 2.0 * x, x, np.stack([y, y]), [], method=method)
    assert_array_equal(rb.status, [0, 0])


# parameters proportional to y (the model is linear in them); the others do not change with y
Y_LINEAR_PARAMS = {"line": ("a", "b"), "polynomial2": ("c0", "c1", "c2"),
                   "exponential": ("A", "c"), "gaussian": ("A", "c"), "lorentzian": ("A", "c"),
                   "logistic": ("L", "c"), "power_law": ("A",), "sine": ("A", "c"),
                   "gaussian_2d": ("A", "b")}
Y_EXPONENTS = [-650, -560, -300, -201, 201, 300, 560, 650]


def y_scaling(model, k):
    return np.array([2.0**k if n in Y_LINEAR_PARAMS_BY_MODEL[model.name] else 1.0
                     for n in model.param_names])


Y_LINEAR_PARAMS_BY_MODEL = {BUILTIN_CASES[k][0].name: v for k, v in Y_LINEAR_PARAMS.items()}


@pytest.mark.parametrize("name", sorted(BUILTIN_CASES))
@pytest.mark.filterwarnings("ignore:.*covariance entries are inf:RuntimeWarning")  # (2^650)^2
def test_fit_is_equivariant_under_scaling_of_y(rng, name):
    # y * 2^k must give the amplitude-like parameters * 2^k for any representable scale: chi2
    # ~ (2^k)^2 used to underflow to 0 (fit stopped at p0 with "success") or overflow (status 3)
    model, true, x = BUILTIN_CASES[name]
    y = noisy(model, true, x, rng)
    p0 = np.array(true) * 1.05
    ref = fit(model, x, y, p0=p0)
    ref_guess = fit(model, x, y)
    ref_py = fit(lambda x, *p: model(x, *p), x, y, p0=p0)
    assert ref.success and ref_guess.success and ref_py.success
    for k in Y_EXPONENTS:
        S = y_scaling(model, k)
        ys = y * 2.0**k
        r = fit(model, x, ys, p0=p0 * S)
        assert r.success, (k, r.message)
        assert_allclose(r.params / S, ref.params, rtol=1e-7, err_msg=str(k))
        # the reported chi2 ~ 4^k may leave the double range (inf or 0)
        with np.errstate(over="ignore", under="ignore"):
            assert r.chi2 == pytest.approx(np.ldexp(ref.chi2, 2 * k), rel=1e-6)
        if abs(k) <= 300:   # (the sine and power_law guesses fail beyond about 2^+-500)
            r = fit(model, x, ys)
            assert r.success, (k, r.message)
            assert_allclose(r.params / S, ref_guess.params, rtol=1e-7, err_msg=str(k))
        r = fit(lambda x, *p: model(x, *p), x, ys, p0=p0 * S)
        assert r.success, (k, r.message)
        assert_allclose(r.params / S, ref_py.params, rtol=1e-6, err_msg=str(k))
        rb = fit_batch(model, x, np.stack([y, ys]), p0=np.stack([p0, p0 * S]))
        assert_array_equal(rb.status, [0, 0])
        assert_array_equal(rb.params[0], ref.params)       # the ordinary dataset: unchanged
        assert_allclose(rb.params[1] / S, ref.params, rtol=1e-7, err_msg=str(k))


@pytest.mark.parametrize("k", Y_EXPONENTS)
@pytest.mark.filterwarnings("ignore:.*covariance entries are inf:RuntimeWarning")  # (2^650)^2
def test_equivariance_under_scaling_of_y_gd_batch_and_absolute_sigma(rng, k):
    x = np.linspace(0.0, 1.0, 10)
    y = np.array([1.0, 1.3, 1.35, 1.7, 1.8, 2.1, 2.2, 2.4, 2.6, 3.1])
    popt, pcov = curve_fit(lambda x, a, b: a + b * x, x, y)
    s = 2.0**k
    # the reported case: p0 at the data's scale, chi2 ~ 1e-340 underflowed to 0
    for method, rtol in (("lm", 1e-9), ("gd", 1e-5)):
        r = fit(models.line, x, y * s, p0=[0.5 * s, -0.3 * s], method=method)
        assert r.success and r.nit > 0
        assert_allclose(r.params / s, popt, rtol=rtol)
        rb = fit_batch(lambda x, a, b: a + b * x, x, np.stack([y, y * s]),
                       p0=[[0.5, -0.3], [0.5 * s, -0.3 * s]], method=method)
        assert_array_equal(rb.status, [0, 0])
        assert_allclose(rb.params[1] / s, popt, rtol=max(rtol, 1e-7))   # forward differences
    # absolute sigma scaled with y: the covariance is that of the ordinary problem times s^2
    # (the weights w y stay of order 1, chi2 and the covariance scale-free)
    r = fit(models.line, x, y * s, p0=[0.5 * s, -0.3 * s], sigma=0.1 * s, absolute_sigma=True)
    ref = fit(models.line, x, y, p0=[0.5, -0.3], sigma=0.1, absolute_sigma=True)
    assert_allclose(r.params / s, ref.params, rtol=1e-12)
    with np.errstate(over="ignore", under="ignore"):
        assert_allclose(r.cov, np.ldexp(ref.cov, 2 * k), rtol=1e-12)
    assert r.chi2 == pytest.approx(ref.chi2, rel=1e-12)
    # absolute sigma of order 1 with data of scale s: chi2 ~ s^2 reported (0 or inf beyond)
    r = fit(models.line, x, y * s, p0=[0.5 * s, -0.3 * s], sigma=0.1, absolute_sigma=True)
    assert_allclose(r.params / s, ref.params, rtol=1e-9)
    with np.errstate(over="ignore", under="ignore"):
        assert r.chi2 == pytest.approx(np.ldexp(ref.chi2, 2 * k), rel=1e-9)


def test_linear_fit_and_polyfit_do_not_depend_on_a_uniform_sigma():
    # w**2 underflowed (sigma 1e160: params off by 1e-3) or overflowed (1e-160: NaN)
    x = np.linspace(0.0, 1.0, 10)
    y = np.array([1.0, 1.3, 1.35, 1.7, 1.8, 2.1, 2.2, 2.4, 2.6, 3.1])
    ref, ref_abs = linear_fit(x, y), linear_fit(x, y, sigma=1.0, absolute_sigma=True)
    pref = polyfit(x, y, 2)
    spread = np.linspace(0.5, 1.0, 10)
    ref1 = polyfit(x, y, 1, sigma=spread, absolute_sigma=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert_allclose(linear_fit(x, y, sigma=5e-324).params, ref.params, rtol=1e-14)
    for k in (-1021, -1000, -532, 532, 1000, 1023):
        s = 2.0**k
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            r = linear_fit(x, y, sigma=s)
            assert_allclose(r.params, ref.params, rtol=1e-14)
            assert_allclose(r.cov, ref.cov, rtol=1e-13)
            assert_allclose(polyfit(x, y, 2, sigma=s).params, pref.params, rtol=1e-13)
            r = linear_fit(x, y, sigma=s, absolute_sigma=True)
            r1 = polyfit(x, y, 1, sigma=spread * s, absolute_sigma=True)
        with np.errstate(over="ignore", under="ignore"):    # (0 or inf beyond the range)
            assert_allclose(r.cov, np.ldexp(ref_abs.cov, 2 * k), rtol=1e-13)
            assert r.chi2 == pytest.approx(np.ldexp(ref.chi2, -2 * k), rel=1e-13)
            assert_allclose(r1.params, ref1.params, rtol=1e-13)
            assert_allclose(r1.cov, np.ldexp(ref1.cov, 2 * k), rtol=1e-13)


@pytest.mark.parametrize("kx", [-900, -600, 0, 600, 1021])
@pytest.mark.parametrize("ky", [-900, -600, 0, 600, 1021])
def test_linear_fit_polyfit_and_chi2_at_extreme_x_and_y(kx, ky):
    # x near 1e308 gave a false "needs 2 distinct x values" (2**1024 = inf as the scale);
    # y ~ 1e200 and tiny sigma leaked overflow warnings. Results are those of the ordinary
    # problem, scaled; numbers beyond the double range are inf or 0, never a warning.
    u = np.array([0.5, 0.75, 0.85, 0.9, 1.0])
    v = np.array([1.0, 2.0, 3.1, 3.0, 4.2])
    ref, pref = linear_fit(u, v), polyfit(u, v, 2)
    x, y = np.ldexp(u, kx), np.ldexp(v, ky)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = linear_fit(x, y)
        p = polyfit(x, y, 2)
        c = chi2(y, np.ldexp(v[::-1], ky), sigma=np.ldexp(0.5, ky))
        c2 = chi2(np.stack([y, v]), np.stack([np.ldexp(v[::-1], ky), v[::-1]]))
    with np.errstate(over="ignore", under="ignore"):
        assert_allclose(r.params, np.ldexp(ref.params, ky - np.arange(2) * kx), rtol=1e-13)
        assert_allclose(p.params, np.ldexp(pref.params, ky - np.arange(3) * kx), rtol=1e-12)
        kk = np.add.outer(np.arange(2), np.arange(2))
        assert_allclose(r.cov, np.ldexp(ref.cov, 2 * ky - kk * kx), rtol=1e-12)
        assert r.chi2 == pytest.approx(np.ldexp(ref.chi2, 2 * ky), rel=1e-13)
        assert_allclose(r.residuals, np.ldexp(ref.residuals, ky), rtol=1e-12, atol=0)
        expected = chi2(v, v[::-1], sigma=0.5)
        assert c == pytest.approx(expected, rel=1e-14)
        assert_allclose(c2, [np.ldexp(chi2(v, v[::-1]), 2 * ky), chi2(v, v[::-1])], rtol=1e-14)


def test_residuals_of_python_models_returning_a_row(rng):
    # the residuals called the model differently from the fit and required exactly (m,)
    x = np.linspace(0.0, 1.0, 12)
    y = 1.0 + 2.0 * x + 0.01 * rng.standard_normal(12)

    def expected(y, params):
        return y - (params[0] + params[1] * x)

    r = fit(lambda x, a, b: (a + b * x)[None, :], x, y, [0.0, 0.0])
    assert_allclose(r.params, linear_fit(x, y).params, rtol=1e-6)
    assert_allclose(r.residuals, expected(y, r.params), rtol=1e-14, atol=1e-15)
    rb = fit_batch(lambda x, a, b: a + b * x, x[None, :], y[None, :], [0.0, 0.0])
    assert_allclose(rb.residuals, [expected(y, rb.params[0])], rtol=1e-14, atol=1e-15)
    assert_allclose(rb[0].residuals, expected(y, rb.params[0]), rtol=1e-14, atol=1e-15)
    Y = np.stack([y, 2 * y, 3 * y])
    rb = fit_batch(lambda x, a, b: a + b * x, x, Y, [0.0, 0.0])
    assert_allclose(rb.residuals, [expected(Y[k], rb.params[k]) for k in range(3)],
                    rtol=1e-14, atol=1e-15)
    assert_array_equal(rb[2].residuals, rb.residuals[2])


@pytest.mark.parametrize("kind", ["builtin", "python", "compiled"])
def test_one_dataset_with_invalid_inputs_gets_a_status_not_an_error(rng, kind):
    # inf in one row of Y, NaN in one row of p0 or x, sigma <= 0 in one row used to raise for
    # the whole batch; now that dataset alone gets status 3 (4: p0 outside the bounds)
    model = {"builtin": models.gaussian, "python": python_gaussian,
             "compiled": low_level("gaussian_model")}[kind]
    true = np.array([2.0, 2.5, 0.7, 0.3])
    x = X1
    Y = noisy(models.gaussian, true, x, rng, shape=(5, x.size))
    P0 = np.tile(true * 1.05, (5, 1))
    X = np.tile(x, (5, 1))
    S = np.full((5, x.size), 0.02)
    kw = dict(x_per_dataset=True) if kind == "python" else {}
    ref = fit_batch(model, X, Y, P0, sigma=S, **kw)
    assert_array_equal(ref.status, 0)
    Yb, P0b, Xb, Sb = Y.copy(), P0.copy(), X.copy(), S.copy()
    Yb[0, 3] = np.inf
    P0b[1, 2] = np.nan
    Xb[2, 5] = np.nan
    Sb[3, 7] = 0.0
    Sb[4, 1] = -np.inf
    originals = [a.copy() for a in (Yb, P0b, Xb, Sb)]
    r = fit_batch(model, Xb, Yb, P0b, sigma=Sb, **kw)
    for a, b in zip((Yb, P0b, Xb, Sb), originals):
        assert_array_equal(a, b)                                  # not mutated
    assert_array_equal(r.status, Status.NON_FINITE)
    assert np.all(np.isnan(r.params)) and np.all(np.isnan(r.cov)) and np.all(np.isnan(r.chi2))
    reasons = ["Y contains inf", "p0 contains NaN", "x contains NaN", "sigma must be finite",
               "sigma must be finite"]
    for i, reason in enumerate(reasons):
        assert reason in r.input_error[i] and reason in r.message[i] and reason in r[i].message
    # one bad row among good ones: the good ones are bitwise what they are alone
    for bad in ({"Y": Yb[[0]]}, {"P0": P0b[[1]]}, {"X": Xb[[2]]}, {"S": Sb[[3]]}):
        args = {"X": X[:3], "Y": Y[:3], "P0": P0[:3], "S": S[:3]}
        for name, row in bad.items():
            args[name] = np.concatenate([args[name][:1], row, args[name][2:]])
        r = fit_batch(model, args["X"], args["Y"], args["P0"], sigma=args["S"], **kw)
        assert_array_equal(r.status, [0, 3, 0])
        assert_array_equal(r.params[[0, 2]], ref.params[[0, 2]])
        assert_array_equal(r.cov[[0, 2]], ref.cov[[0, 2]])
        assert np.all(np.isnan(r.residuals[1]))
    P0o = P0.copy()
    P0o[4, 0] = 10.0
    r = fit_batch(model, X, Y, P0o, sigma=S, bounds=([0, 0, 0, -1], [5, 5, 5, 1]), **kw)
    assert_array_equal(r.status, [0, 0, 0, 0, Status.OUT_OF_BOUNDS])
    assert "p0 is outside the bounds" in r.message[4]
    # invalid for every dataset (shared inputs), or a single fit: still a ValueError
    with pytest.raises(ValueError, match="sigma"):
        fit_batch(model, X, Y, P0, sigma=np.r_[0.0, S[0, 1:]], **kw)
    with pytest.raises(ValueError, match="p0"):
        fit_batch(model, X, Y, np.r_[np.nan, true[1:]], **kw)
    with pytest.raises(ValueError, match="x contains"):
        fit_batch(model, np.r_[np.nan, x[1:]], Y, P0)
    with pytest.raises(ValueError, match="y contains inf"):
        fit(model, x, Yb[0], P0[0])


def test_python_jac_with_a_compiled_model_is_refused(rng):
    # it was wrapped, never called, and the fit silently used finite differences
    x = X1
    y = noisy(models.gaussian, (2.0, 2.5, 0.7, 0.3), x, rng)
    for run in (fit, fit_batch):
        with pytest.raises(TypeError, match="jac"):
            run(low_level("gaussian_model"), x, y if run is fit else y[None],
                [2.0, 2.5, 0.7, 0.3], jac=lambda *a: 0)


def test_to_dataframe_never_overwrites_a_parameter_column():
    pytest.importorskip("pandas")
    x = np.linspace(0.0, 1.0, 10)
    Y = np.stack([1.0 + 2.0 * x + 0.01 * np.sin(9 * x), 3.0 - x + 0.01 * np.cos(9 * x)])

    def f(x, a, chi2):
        return a + chi2 * x

    r = fit_batch(f, x, Y, [0.0, 0.0])
    df = r.to_dataframe()
    assert_array_equal(df["param_chi2"], r.params[:, 1])
    assert_array_equal(df["chi2"], r.chi2)
    assert_array_equal(df["stderr_chi2"], r.stderr[:, 1])
    assert_array_equal(df["a"], r.params[:, 0])

    def g(x, a, stderr_a):
        return a + stderr_a * x

    r = fit_batch(g, x, Y, [0.0, 0.0])
    df = r.to_dataframe()
    assert_array_equal(df["param_stderr_a"], r.params[:, 1])
    assert_array_equal(df["stderr_a"], r.stderr[:, 0])
    assert_array_equal(df["stderr_stderr_a"], r.stderr[:, 1])
    assert len(df.columns) == 2 * 2 + 11      # + cost, aic, bic, pvalue


@pytest.mark.parametrize("kind", ["builtin", "python"])
def test_argument_errors_name_the_argument(kind):
    x = np.linspace(0.1, 5.0, 20)
    y = models.exponential(x, 3.0, 1.5, 0.5)
    p0 = [3.0, 1.5, 0.5]
    model = (models.exponential if kind == "builtin"
             else lambda x, A, tau, c: A * np.exp(-x / tau) + c)
    cases = [
        (dict(bounds=([0, 0], [1, 1])), ValueError, r"bounds \(lower\) has shape \(2,\)"),
        (dict(bounds=("a", "b")), TypeError, r"bounds \(lower\) must be real numbers"),
        (dict(bounds=(0j, 10)), TypeError, r"bounds \(lower\) must be real"),
        (dict(bounds=(0, [1j, 2, 3])), TypeError, r"bounds \(upper\) must be real"),
        (dict(tol=1j), TypeError, "tol must be real"),
        (dict(tol="a"), TypeError, "tol must be real numbers"),
        (dict(method=["lm"]), TypeError, "method must be 'lm' or 'gd', got list"),
        (dict(maxiter=2**40), ValueError, "maxiter must be an int from 1 to"),
    ]
    for kwargs, error, match in cases:
        with pytest.raises(error, match=match):
            fit(model, x, y, p0, **kwargs)
    with pytest.raises(TypeError, match="x must be real numbers, got None"):
        fit(model, None, y, p0)
    with pytest.raises(TypeError, match="y must be real numbers, got strings"):
        fit(model, x, y.astype(str), p0)
    with pytest.raises(TypeError, match="use NaN for a missing value"):
        fit(model, x, np.r_[y[:-1], None].astype(object), p0)
    with pytest.raises(TypeError, match="Y must be real numbers, got strings"):
        fit_batch(model, x, y[None].astype(str), p0)
    # None in bounds is unbounded on that side (as in SciPy); numeric object arrays are fine
    ref = fit(model, x, y, p0, bounds=(-np.inf, 10.0))
    assert_array_equal(fit(model, x, y, p0, bounds=(None, 10.0)).params, ref.params)
    assert_array_equal(fit(model, x, y, p0, bounds=(None, None)).params,
                       fit(model, x, y, p0).params)
    y_missing = np.r_[y[:-1], np.nan]
    assert_array_equal(fit(model, x, y_missing.astype(object), p0).params,
                       fit(model, x, y_missing, p0).params)
    # fixed given as names and indices together: each item as given (numpy made '2' of 2)
    r = fit(model, x, y * 1.01, p0, fixed=["A", 2])
    assert r.params[0] == 3.0 and r.params[2] == 0.5 and r.params[1] != 1.5
    assert_array_equal(r.params, fit(model, x, y * 1.01, p0, fixed=[0, 2]).params)
    assert_array_equal(r.params, fit(model, x, y * 1.01, p0, fixed=np.array([0, 2])).params)
    assert_array_equal(r.params, fit(model, x, y * 1.01, p0,
                                     fixed=np.array([True, False, True])).params)


def test_more_argument_errors_name_the_argument():
    x = np.linspace(0.0, 1.0, 10)
    y = 1.0 + 2.0 * x
    with pytest.raises(TypeError, match="jac returned float, expected a sequence of 2"):
        fit_batch(lambda x, a, b: a + b * x, x, y[None], [0.0, 0.0], jac=lambda *a: 5.0)
    with pytest.raises(TypeError, match="y must be real numbers, got None"):
        chi2(None, y)
    with pytest.raises(TypeError, match="y_model must be real numbers, got None"):
        chi2(y, None)
    with pytest.raises(TypeError, match="x must be real numbers, got strings"):
        linear_fit(x.astype(str), y)


def test_compiled_model_is_equivariant_under_scaling_of_y(rng):
    model, true, x = BUILTIN_CASES["gaussian"]
    y = noisy(model, true, x, rng)
    p0 = np.array(true) * 1.05
    for jac in (None, low_level("gaussian_model_jac")):
        ref = fit(low_level("gaussian_model"), x, y, p0, jac=jac)
        assert ref.success
        for k in (-650, -300, 300, 650):
            S = y_scaling(model, k)
            r = fit_batch(low_level("gaussian_model"), x, np.stack([y, y * 2.0**k]),
                          np.stack([p0, p0 * S]), jac=jac)
            assert_array_equal(r.status, [0, 0])
            assert_array_equal(r.params[0], ref.params)
            assert_allclose(r.params[1] / S, ref.params, rtol=1e-6 if jac is None else 1e-7)


@pytest.mark.parametrize("k", [-700, -400, 400, 700])
def test_linear_fit_and_polyfit_stderr_survive_variances_beyond_the_double_range(k):
    # at y * 2**700 the variances (~2**1400) overflow, but the standard errors do not
    x = np.arange(8.0)
    y = 1.0 + 2.0 * x + 0.3 * x**2 + np.array([0.1, -0.2, 0.05, 0.1, -0.1, 0.02, 0.07, -0.04])
    for fit_to in (lambda yy, **kw: linear_fit(x, yy, **kw),
                   lambda yy, **kw: polyfit(x, yy, 2, **kw)):
        base = fit_to(y)
        scaled = fit_to(np.ldexp(y, k))
        np.testing.assert_array_equal(scaled.stderr, np.ldexp(base.stderr, k))
        absolute = fit_to(np.ldexp(y, k), sigma=np.ldexp(0.1, k), absolute_sigma=True)
        np.testing.assert_array_equal(absolute.stderr,
                                      np.ldexp(fit_to(y, sigma=0.1, absolute_sigma=True).stderr, k))


@pytest.mark.parametrize("model", [models.line, lambda x, a, b: a + b * x], ids=["builtin",
                                                                                 "python"])
def test_subnormal_sigma_fits_like_the_rescaled_problem(model):
    # 1/sigma overflows for sigma = 2**-1040 (status 3 before); y / sigma is ordinary
    x = np.arange(6.0)
    y = 1.0 + 2.0 * x + np.array([0.1, -0.2, 0.05, 0.1, -0.1, 0.02])
    base = fit(model, x, y, p0=[1.0, 1.0], sigma=2.0 ** -40, absolute_sigma=True)
    tiny = fit(model, x, np.ldexp(y, -1000), p0=np.ldexp([1.0, 1.0], -1000),
               sigma=2.0 ** -1040, absolute_sigma=True)
    assert tiny.status == 0
    np.testing.assert_allclose(tiny.params, np.ldexp(base.params, -1000), rtol=1e-6)
    np.testing.assert_allclose(tiny.chi2, base.chi2, rtol=1e-6)
    batch = fit_batch(model, x, np.vstack([np.ldexp(y, -1000), y]),
                      p0=[[2.0 ** -1000, 2.0 ** -1000], [1.0, 1.0]],
                      sigma=np.vstack([np.full(6, 2.0 ** -1040), np.full(6, 2.0 ** -40)]),
                      absolute_sigma=True)
    np.testing.assert_array_equal(batch.status, [0, 0])
    np.testing.assert_allclose(batch.params[0], np.ldexp(batch.params[1], -1000), rtol=1e-6)
    np.testing.assert_allclose(batch.chi2[0], batch.chi2[1], rtol=1e-6)
    np.testing.assert_allclose(batch.cov[1], base.cov, rtol=1e-6)


@pytest.mark.parametrize("loss", ["huber", "cauchy"])
@pytest.mark.parametrize("model", [models.line, lambda x, a, b: a + b * x], ids=["builtin",
                                                                                 "python"])
def test_robust_loss_with_subnormal_sigma_fits_like_the_rescaled_problem(model, loss):
    # robust losses refused sigma below 2**-1000 (its Python-side rescaling changed z / f_scale**2);
    # the kernels' own weight scaling divides f_scale too: y * 2**-1000 with sigma 2**-1063
    # (1/sigma overflows) is the problem y, sigma 2**-63, to rounding
    from scipy.optimize import least_squares
    x = np.arange(12.0)
    y = 1.0 + 2.0 * x + 0.1 * np.cos(5 * x)
    y[[3, 8]] += [3.0, -2.0]
    # f_scale 2**60 sigmas = 0.125 in units of y
    best = least_squares(lambda p: (y - model(x, *p)) / 0.125, [1.0, 1.0], loss=loss,
                         xtol=1e-15, ftol=1e-15, gtol=1e-15)
    base = fit(model, x, y, p0=[1.0, 1.0], sigma=2.0 ** -63, loss=loss, f_scale=2.0 ** 60)
    tiny = fit(model, x, np.ldexp(y, -1000), p0=np.ldexp([1.0, 1.0], -1000),
               sigma=2.0 ** -1063, loss=loss, f_scale=2.0 ** 60)
    assert base.status == 0 and tiny.status == 0
    np.testing.assert_allclose(base.params, best.x, rtol=1e-7)
    np.testing.assert_allclose(base.cost, np.ldexp(2 * best.cost, 120), rtol=1e-9)
    # (finite differences of a Python model take steps of at least 1e-8-ish in absolute terms)
    rtol = 1e-12 if model is models.line else 1e-6
    np.testing.assert_allclose(np.ldexp(tiny.params, 1000), base.params, rtol=rtol)
    np.testing.assert_allclose([tiny.cost, tiny.chi2], [base.cost, base.chi2], rtol=rtol)
    batch = fit_batch(model, x, np.vstack([np.ldexp(y, -1000), y]),
                      p0=[[2.0 ** -1000, 2.0 ** -1000], [1.0, 1.0]],
                      sigma=np.vstack([np.full(12, 2.0 ** -1063), np.full(12, 2.0 ** -63)]),
                      loss=loss, f_scale=2.0 ** 60)
    np.testing.assert_array_equal(batch.status, [0, 0])
    np.testing.assert_allclose(np.ldexp(batch.params[0], 1000), best.x, rtol=1e-6)
    np.testing.assert_allclose(batch.params[1], best.x, rtol=1e-7)
    np.testing.assert_allclose(batch.cost[0], batch.cost[1], rtol=rtol)


def test_linear_fit_with_offsets_in_x_and_y_matches_exact_least_squares():
    # y was not centred: sum(w t) (zero to rounding) times the offset of y swamped the slope
    from fractions import Fraction
    rng = np.random.default_rng(0)
    x = 1e6 + 1e-5 * rng.uniform(-1.0, 1.0, 30)
    y = 1e4 + 0.7 * (x - 1e6) / 1e-5 + 0.1 * rng.normal(size=30)
    X, Y = [Fraction(v) for v in x], [Fraction(v) for v in y]
    n, sx, sy = len(X), sum(X), sum(Y)
    sxx = sum(v * v for v in X)
    sxy = sum(a * b for a, b in zip(X, Y))
    slope = (n * sxy - sx * sy) / (n * sxx - sx * sx)
    intercept = (sy - slope * sx) / n
    r = linear_fit(x, y)
    np.testing.assert_allclose(r.params[1], float(slope), rtol=1e-7)
    np.testing.assert_allclose(r.params[0] + r.params[1] * 1e6, float(intercept + slope * 10**6),
                               rtol=1e-9)


def test_lm_releases_a_bounded_parameter_whose_gradient_points_inward():
    # tau on its lower bound: the coupled LM step pointed outward, so tau was held there for
    # good and the fit "converged" at chi2 0.204 (least_squares: 0.0483, tau = 4.683)
    from scipy.optimize import least_squares
    x = np.linspace(0.0, 5.0, 20)
    y = 1.5 * np.exp(-x / 2.5) + 0.5 + 0.01 * np.cos(3 * x)
    lb, ub = [2.0, 3.0, -np.inf], [np.inf] * 3
    best = least_squares(lambda p: models.exponential(x, *p) - y, [2.0001, 3.0001, 0.5],
                         bounds=(lb, ub), xtol=1e-15, ftol=1e-15, gtol=1e-15)
    python_model = lambda x, A, tau, c: A * np.exp(-x / tau) + c    # noqa: E731
    for p0 in ([2.0, 3.0, 0.5], [2.1, 3.1, 0.5]):
        for model in (models.exponential, python_model):
            r = fit(model, x, y, p0, bounds=(lb, ub))
            assert r.status == 0
            np.testing.assert_allclose(r.chi2, 2 * best.cost, rtol=1e-6)
            np.testing.assert_allclose(r.params, best.x, rtol=1e-5)
        batch = fit_batch(models.exponential, x, np.vstack([y, y]), p0, bounds=(lb, ub))
        np.testing.assert_allclose(batch.chi2, 2 * best.cost, rtol=1e-6)


@pytest.mark.parametrize("tiny", [1e-250, 1e-310])
def test_chi2_with_a_few_points_of_tiny_sigma_keeps_the_other_points(tiny):
    # the data scaling follows the largest |w y|: the other points' scaled residuals then
    # square to below the double range, and chi2 came out 0 (true 820) with status 0
    x = np.linspace(0.0, 4.0, 10)
    y = 2.0 * np.exp(-x / 1.3) + 0.1 + 0.05 * np.cos(7 * x)
    sigma = np.full(10, 0.05)
    sigma[:3] = tiny
    for absolute_sigma in (False, True):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            r = fit(models.exponential, x, y, p0=[2.0, 1.0, 0.0], sigma=sigma,
                    absolute_sigma=absolute_sigma)
            batch = fit_batch(models.exponential, x, np.vstack([y, y]), p0=[2.0, 1.0, 0.0],
                              sigma=sigma, absolute_sigma=absolute_sigma)
        exact = float(np.sum(((y - models.exponential(x, *r.params)) / sigma) ** 2))
        assert r.status == 0 and exact > 100.0
        np.testing.assert_allclose(r.chi2, exact, rtol=1e-9)
        np.testing.assert_allclose(batch.chi2, exact, rtol=1e-9)
