"""fit / fit_batch with robust losses and the Poisson likelihood, against SciPy and statistically."""
import importlib.util
from pathlib import Path

import numpy as np
import pytest
from scipy import stats
from scipy.optimize import curve_fit, least_squares, minimize

from fastcalc import fit, fit_batch, models
from fastcalc._testfunctions import low_level

LOSSES = ["linear", "soft_l1", "huber", "cauchy", "arctan"]
TIGHT = 1e-15
X = np.linspace(-5, 5, 64)
START = [2.5, 0.3, 1.0, 0.1]


def gaussian(x, a, mu, s, c):
    return a * np.exp(-0.5 * ((x - mu) / s) ** 2) + c


@pytest.fixture(scope="module")
def outlier_data():
    rng = np.random.default_rng(3)
    y = gaussian(X, 3.0, 0.5, 1.2, 0.2) + rng.normal(0, 0.1, X.size)
    y[[5, 20, 40]] += [3.0, -2.0, 4.0]
    return y


def deviance(mu, y):
    if not np.all(mu > 0):
        return np.inf
    safe = np.where(y > 0, y, 1.0)
    return 2 * np.sum(mu - y + np.where(y > 0, y * np.log(safe / mu), 0.0))


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("with_sigma", [False, True])
@pytest.mark.parametrize("f_scale", [1.0, 0.5])
def test_robust_loss_equals_least_squares(loss, with_sigma, f_scale, outlier_data):
    y = outlier_data
    sigma = np.full(X.size, 0.1) if with_sigma else None
    w = 1 / sigma if with_sigma else 1.0
    ref = least_squares(lambda p: w * (y - gaussian(X, *p)), START, loss=loss, f_scale=f_scale,
                        xtol=TIGHT, ftol=TIGHT, gtol=TIGHT)
    for model in (models.gaussian, gaussian, low_level("gaussian_model")):
        r = fit(model, X, y, p0=START, sigma=sigma, loss=loss, f_scale=f_scale, tol=TIGHT)
        assert r.status == 0
        assert (np.abs(r.params - ref.x) <= 1e-6 * r.stderr).all()
        # the cost is twice least_squares' (chi-squared's scale); Pearson's chi2 is kept
        np.testing.assert_allclose(r.cost, 2 * ref.cost, rtol=1e-10)
        np.testing.assert_allclose(r.chi2, np.sum((w * (y - gaussian(X, *r.params))) ** 2),
                                   rtol=1e-10)
        assert r.estimator == ("chi2" if loss == "linear" else loss)


@pytest.mark.parametrize("loss", LOSSES[1:])
def test_robust_covariance_is_curve_fits(loss, outlier_data):
    sigma = np.full(X.size, 0.1)
    p, cov = curve_fit(gaussian, X, outlier_data, p0=START, sigma=sigma, loss=loss,
                       method="trf", xtol=TIGHT, ftol=TIGHT, gtol=TIGHT)
    r = fit(models.gaussian, X, outlier_data, p0=START, sigma=sigma, loss=loss, tol=TIGHT)
    scale = np.sqrt(np.outer(np.diag(cov), np.diag(cov)))       # curve_fit's J: 2-point FD
    np.testing.assert_allclose(r.cov / scale, cov / scale, rtol=0, atol=1e-5)


def test_robust_loss_resists_outliers(outlier_data):
    """The point of a robust loss: far closer to the truth than least squares with outliers."""
    plain = fit(models.gaussian, X, outlier_data, p0=START)
    robust = fit(models.gaussian, X, outlier_data, p0=START, loss="cauchy", f_scale=0.1)
    truth = np.array([3.0, 0.5, 1.2, 0.2])
    assert np.abs(robust.params - truth).max() < 0.05 < np.abs(plain.params - truth).max()


@pytest.mark.parametrize("cost, loss", [("chi2", "huber"), ("chi2", "arctan"), ("poisson",
                                                                                 "linear")])
def test_batch_equals_single(cost, loss):
    rng = np.random.default_rng(5)
    truth = np.column_stack([rng.uniform(5, 20, 30), rng.uniform(-1, 1, 30),
                             rng.uniform(0.7, 1.5, 30), rng.uniform(0.5, 2, 30)])
    mean = np.array([gaussian(X, *t) for t in truth])
    Y = rng.poisson(mean).astype(float) if cost == "poisson" else mean + rng.normal(0, 1, mean.shape)
    for model, p0 in ((models.gaussian, None), (low_level("gaussian_model"), truth)):
        batch = fit_batch(model, X, Y, p0=p0, cost=cost, loss=loss)
        assert (batch.status == 0).all()
        for i in range(0, 30, 7):
            one = fit(model, X, Y[i], p0=None if p0 is None else p0[i], cost=cost, loss=loss)
            np.testing.assert_array_equal(batch.params[i], one.params)
            np.testing.assert_array_equal(batch.cov[i], one.cov)
            assert batch.cost[i] == one.cost and batch.chi2[i] == one.chi2


@pytest.fixture(scope="module")
def counts():
    rng = np.random.default_rng(11)
    y = rng.poisson(gaussian(X, 10.0, 0.3, 1.0, 0.5)).astype(float)
    assert (y == 0).sum() > 10            # many zero counts
    return y


@pytest.fixture(scope="module")
def deviance_minimum(counts):
    """The deviance minimised directly (simplex, then BFGS), independently of fastcalc."""
    objective = lambda p: deviance(gaussian(X, *p), counts)     # noqa: E731
    ref = minimize(objective, [10.0, 0.3, 1.0, 0.5], method="Nelder-Mead",
                   options=dict(xatol=1e-12, fatol=1e-14, maxiter=20000, maxfev=20000))
    return minimize(objective, ref.x, method="BFGS", options=dict(gtol=1e-11)).x


@pytest.mark.parametrize("model", ["builtin", "python", "compiled"])
def test_poisson_equals_direct_minimisation_of_the_deviance(model, counts, deviance_minimum):
    f = {"builtin": models.gaussian, "python": gaussian, "compiled": low_level("gaussian_model")}
    r = fit(f[model], X, counts, p0=[8.0, 0.0, 1.2, 0.4], cost="poisson", tol=TIGHT)
    assert r.status == 0 and r.estimator == "poisson"
    assert (np.abs(r.params - deviance_minimum) <= 1e-5 * r.stderr).all()
    assert r.cost <= deviance(gaussian(X, *deviance_minimum), counts) * (1 + 1e-13)
    np.testing.assert_allclose(r.cost, deviance(gaussian(X, *r.params), counts), rtol=1e-12)
    mu = gaussian(X, *r.params)
    np.testing.assert_allclose(r.chi2, np.sum((counts - mu) ** 2 / mu), rtol=1e-12)


def test_poisson_covariance_is_the_inverse_fisher_information(counts):
    r = fit(models.gaussian, X, counts, cost="poisson", tol=TIGHT)
    J = models.gaussian.jacobian(X, *r.params)
    mu = gaussian(X, *r.params)
    fisher_inverse = np.linalg.inv(J.T @ (J / mu[:, None]))
    scale = np.sqrt(np.outer(np.diag(fisher_inverse), np.diag(fisher_inverse)))
    np.testing.assert_allclose(r.cov / scale, fisher_inverse / scale, rtol=0, atol=1e-9)
    # absolute_sigma is implied: the same covariance either way
    np.testing.assert_array_equal(
        fit(models.gaussian, X, counts, cost="poisson", tol=TIGHT, absolute_sigma=True).cov,
        r.cov)


def test_poisson_pulls_are_unbiased_where_least_squares_is_not():
    """2000 low-count peaks (about 10 counts at the top): the pulls of position and area are
    standard normal with the Poisson likelihood; least squares with sqrt(y) weights is biased
    (benchmarks/poisson_pulls.py draws the figure from the same function)."""
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "poisson_pulls.py"
    spec = importlib.util.spec_from_file_location("poisson_pulls", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    results = script.pulls()
    assert all(len(p["mu"]) > 1980 for p in results.values())      # > 99% converged
    for p in results["Poisson likelihood"].values():
        assert abs(p.mean()) < 0.05 and 0.9 <= p.std() <= 1.1
    assert results["least squares, sigma = sqrt(max(y, 1))"]["area"].mean() < -0.3


def test_goodness_of_fit_statistics(counts):
    r = fit(models.gaussian, X, counts, cost="poisson")
    k = 4
    assert r.aic == pytest.approx(r.cost + 2 * k, rel=1e-15)
    assert r.bic == pytest.approx(r.cost + k * np.log(X.size), rel=1e-15)
    assert r.pvalue == pytest.approx(stats.chi2.sf(r.cost, X.size - k), rel=1e-12)
    g = fit(models.gaussian, X, counts, sigma=np.sqrt(np.maximum(counts, 1)))
    assert g.cost == g.chi2 and g.pvalue == pytest.approx(stats.chi2.sf(g.chi2, g.dof))
    robust = fit(models.gaussian, X, counts, sigma=1.0, loss="huber")
    assert np.isnan(robust.pvalue) and np.isfinite(robust.aic)
    fixed = fit(models.gaussian, X, counts, p0=[8.0, 0.0, 1.2, 0.5], fixed=[3], cost="poisson")
    assert fixed.aic == pytest.approx(fixed.cost + 2 * 3)      # k counts free parameters only
    batch = fit_batch(models.gaussian, X, np.array([counts, counts[::-1]]), cost="poisson")
    df = batch.to_dataframe()
    for column in ("cost", "aic", "bic", "pvalue"):
        np.testing.assert_array_equal(df[column], getattr(batch, column))
    assert batch[0].aic == batch.aic[0] and batch[1].estimator == "poisson"


def test_poisson_start_outside_the_domain_is_a_status_and_the_guess_recovers(counts):
    # a start with mu < 0 where there are counts: the likelihood is 0 there
    with pytest.warns(RuntimeWarning, match="did not converge"):
        r = fit(gaussian, X, counts, p0=[8.0, 0.0, 1.2, -3.0], cost="poisson")
    assert r.status == 3 and not r.success
    # a guess of the built-in model with a negative offset is refitted by least squares first
    y = counts.copy()
    y[:20] = 0.0
    r = fit(models.gaussian, X, y, cost="poisson")
    assert r.status == 0 and np.all(gaussian(X, *r.params)[y > 0] > 0)


def test_poisson_bad_input(counts):
    y = counts.copy()
    y[3] = -1.0
    with pytest.raises(ValueError, match="y contains negative counts"):
        fit(models.gaussian, X, y, cost="poisson")
    batch = fit_batch(models.gaussian, X, np.array([counts, y]), cost="poisson")
    assert batch.status.tolist() == [0, 3] and "negative counts" in batch.input_error[1]
    np.testing.assert_array_equal(batch.params[0],
                                  fit(models.gaussian, X, counts, cost="poisson").params)
    with pytest.raises(ValueError, match="sigma"):
        fit(models.gaussian, X, counts, sigma=1.0, cost="poisson")
    with pytest.raises(ValueError, match="loss"):
        fit(models.gaussian, X, counts, cost="poisson", loss="huber")
    assert y[3] == -1.0 and counts.min() >= 0             # nothing mutated
    # non-integer counts are accepted (scaled counts)
    assert fit(models.gaussian, X, counts * 0.5, cost="poisson").status == 0


@pytest.mark.parametrize("kwargs, match", [
    (dict(loss="l2"), "loss must be one of"),
    (dict(loss=None), "loss must be one of"),
    (dict(cost="gauss"), "cost must be one of"),
    (dict(f_scale=0.0), "f_scale must be positive"),
    (dict(f_scale=-1.0), "f_scale must be positive"),
    (dict(f_scale=np.inf), "f_scale must be positive"),
])
def test_bad_estimator_arguments(kwargs, match, outlier_data):
    for call in (fit, fit_batch):
        y = outlier_data if call is fit else outlier_data[None]
        with pytest.raises(ValueError, match=match):
            call(models.gaussian, X, y, **kwargs)
    with pytest.raises(TypeError, match="f_scale"):
        fit(models.gaussian, X, outlier_data, f_scale="1")
    with pytest.raises(TypeError, match="f_scale"):
        fit(models.gaussian, X, outlier_data, f_scale=True)
