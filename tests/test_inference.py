"""Bands and toy datasets of fit results: against the exact delta method and statistically."""
import numpy as np
import pytest
from scipy.special import ndtri

from fastcalc import fit, fit_batch, linear_fit, models
from fastcalc._testfunctions import low_level

X = np.linspace(-5, 5, 64)
TRUTH = np.array([3.0, 0.5, 1.2, 0.2])
Z1 = ndtri(0.5 + 0.5 * 0.6827)


def gaussian(x, a, mu, s, c):
    return a * np.exp(-0.5 * ((x - mu) / s) ** 2) + c


def exact_half_width(params, cov, x_new, cl=0.6827):
    """z sqrt(diag(J C J^T)) with the analytic Jacobian of the gaussian."""
    J = models.gaussian.jacobian(x_new, *params)
    return ndtri(0.5 + 0.5 * cl) * np.sqrt(np.einsum("ik,kl,il->i", J, cov, J))


@pytest.fixture(scope="module")
def datasets():
    rng = np.random.default_rng(8)
    return gaussian(X, *TRUTH) + rng.normal(0, 0.05, (6, X.size))


@pytest.mark.parametrize("model", [models.gaussian, gaussian, low_level("gaussian_model")])
def test_band_equals_the_exact_delta_method(model, datasets):
    x_new = np.linspace(-6, 6, 25)
    p0 = None if model is models.gaussian else TRUTH
    for cl in (0.6827, 0.95):
        one = fit(model, X, datasets[0], p0=p0, sigma=0.05)
        lower, upper = one.band(x_new, cl=cl)
        centre = gaussian(x_new, *one.params)
        half = exact_half_width(one.params, one.cov, x_new, cl)
        np.testing.assert_allclose(0.5 * (upper + lower), centre, rtol=1e-12)
        np.testing.assert_allclose(0.5 * (upper - lower), half, rtol=1e-6)
        batch = fit_batch(model, X, datasets, p0=p0, sigma=0.05)
        lower, upper = batch.band(x_new, cl=cl)
        assert lower.shape == (len(datasets), x_new.size)
        for i in range(len(datasets)):
            np.testing.assert_allclose(0.5 * (upper[i] - lower[i]),
                                       exact_half_width(batch.params[i], batch.cov[i], x_new, cl),
                                       rtol=1e-6)
        np.testing.assert_allclose(batch[2].band(x_new, cl=cl)[1], upper[2], rtol=1e-12)


def test_band_of_a_two_dimensional_model():
    g = np.arange(5.0)
    xy = np.array(np.meshgrid(g, g)).reshape(2, 25)
    rng = np.random.default_rng(3)
    truth = [800.0, 2.1, 1.9, 1.0, 10.0]
    y = models.gaussian_2d(xy, *truth) + rng.normal(0, 5.0, 25)
    r = fit(models.gaussian_2d, xy, y, sigma=5.0)
    x_new = np.array([[2.0, 0.0], [2.0, 4.0]])
    lower, upper = r.band(x_new)
    J = models.gaussian_2d.jacobian(x_new, *r.params)
    np.testing.assert_allclose(0.5 * (upper - lower),
                               Z1 * np.sqrt(np.einsum("ik,kl,il->i", J, r.cov, J)), rtol=1e-6)
    with pytest.raises(ValueError, match="x_new has shape"):
        r.band([1.0, 2.0])


def test_bands_cover_as_promised():
    """Over 2000 fits the confidence band covers the true curve, and the prediction band fresh
    data, 68.27% of the time (at the peak and on the flank)."""
    rng = np.random.default_rng(12)
    sigma = 0.2
    Y = gaussian(X, *TRUTH) + rng.normal(0, sigma, (2000, X.size))
    fits = fit_batch(models.gaussian, X, Y, p0=TRUTH, sigma=sigma, absolute_sigma=True)
    x_new = np.array([0.5, 2.0])
    lower, upper = fits.band(x_new)
    truth = gaussian(x_new, *TRUTH)
    covered = (lower <= truth) & (truth <= upper)
    assert np.all(np.abs(covered.mean(axis=0) - 0.6827) < 0.03)
    lower, upper = fits.band(x_new, kind="prediction")
    fresh = truth + rng.normal(0, sigma, (2000, 2))
    covered = (lower <= fresh) & (fresh <= upper)
    assert np.all(np.abs(covered.mean(axis=0) - 0.6827) < 0.03)
    # without absolute_sigma (and without sigma) the noise is the fitted scatter
    free = fit_batch(models.gaussian, X, Y[:500], p0=TRUTH)
    lower, upper = free.band(x_new, kind="prediction")
    fresh = truth + rng.normal(0, sigma, (500, 2))
    assert abs(((lower <= fresh) & (fresh <= upper)).mean() - 0.6827) < 0.04


def test_prediction_band_noise_rules(datasets):
    varying = fit(models.gaussian, X, datasets[0], sigma=np.linspace(0.04, 0.06, X.size))
    with pytest.raises(ValueError, match="give sigma"):
        varying.band([0.0], kind="prediction")
    lower, upper = varying.band([0.0, 1.0], kind="prediction", sigma=[0.05, 0.1])
    conf = varying.band([0.0, 1.0])
    scale = np.sqrt(varying.redchi2)
    expected = np.sqrt((0.5 * (conf[1] - conf[0]) / Z1) ** 2 + (scale * np.array([0.05, 0.1])) ** 2)
    np.testing.assert_allclose(0.5 * (upper - lower) / Z1, expected, rtol=1e-12)
    with pytest.raises(ValueError, match="sigma is for kind='prediction'"):
        varying.band([0.0], sigma=0.1)
    with pytest.raises(ValueError, match="sigma must be finite and > 0"):
        varying.band([0.0], kind="prediction", sigma=-1.0)
    counts = fit(models.gaussian, X, np.round(datasets[0] * 10), cost="poisson")
    lower, upper = counts.band([0.5], kind="prediction")
    mu = gaussian(0.5, *counts.params)
    assert 0.5 * (upper - lower)[0] > Z1 * np.sqrt(mu)           # the count's own variance
    with pytest.raises(ValueError, match="Poisson"):
        counts.band([0.5], kind="prediction", sigma=1.0)


def test_simulate_draws_from_the_fitted_model(datasets):
    y = datasets[0].copy()
    y[[3, 7]] = np.nan
    r = fit(models.gaussian, X, y, sigma=0.05, absolute_sigma=True)
    toys = r.simulate(4000, rng=1)
    assert toys.shape == (4000, X.size)
    assert np.isnan(toys[:, [3, 7]]).all() and np.isfinite(np.delete(toys, [3, 7], 1)).all()
    model = gaussian(X, *r.params)
    valid = np.isfinite(y)
    np.testing.assert_allclose(toys[:, valid].mean(axis=0), model[valid], atol=4 * 0.05 / 63)
    assert abs((toys[:, valid] - model[valid]).std() / 0.05 - 1) < 0.01
    np.testing.assert_array_equal(r.simulate(5, rng=7), r.simulate(5, rng=7))
    # a parametric bootstrap: the refitted parameters scatter as the stderr says
    refits = fit_batch(models.gaussian, X, toys[:1000], p0=r.params, sigma=0.05,
                       absolute_sigma=True)
    assert np.all(np.abs(refits.params.std(axis=0) / r.stderr - 1) < 0.08)


def test_simulate_poisson_and_batch(datasets):
    counts = np.round(np.abs(datasets[:3]) * 10)
    batch = fit_batch(models.gaussian, X, counts, cost="poisson")
    toys = batch.simulate(3000, rng=2)
    assert toys.shape == (3, 3000, X.size)
    assert np.all(toys == np.round(toys)) and toys.min() >= 0
    mu = np.array([gaussian(X, *p) for p in batch.params])
    np.testing.assert_allclose(toys.mean(axis=1), mu, atol=5 * np.sqrt(mu.max() / 3000))
    np.testing.assert_allclose(toys.var(axis=1).mean(axis=1), mu.mean(axis=1), rtol=0.05)
    np.testing.assert_array_equal(batch[1].simulate(4, rng=3).shape, (4, X.size))
    free = fit_batch(models.gaussian, X, datasets)              # no sigma: the fitted scatter
    spread = free.simulate(2000, rng=4) - np.array([gaussian(X, *p) for p in free.params])[:, None]
    np.testing.assert_allclose(spread.std(axis=(1, 2)), np.sqrt(free.redchi2), rtol=0.02)


def test_bad_input(datasets):
    r = fit(models.gaussian, X, datasets[0])
    for cl in (0.0, 1.0, 1.5, -0.1, True, "0.5"):
        with pytest.raises(ValueError, match="cl must be"):
            r.band([0.0], cl=cl)
    with pytest.raises(ValueError, match="kind must be"):
        r.band([0.0], kind="bayesian")
    with pytest.raises(ValueError, match="x_new contains NaN"):
        r.band([np.nan])
    for n in (-1, 2.5, True):
        with pytest.raises(ValueError, match="n must be"):
            r.simulate(n)
    with pytest.raises(TypeError, match="fit or fit_batch"):
        linear_fit(X, 2 * X).band([0.0])
    assert r.simulate(0).shape == (0, X.size)


def test_failed_fit_has_a_nan_band(datasets):
    Y = datasets[:3].copy()
    Y[1] = np.nan
    batch = fit_batch(models.gaussian, X, Y)
    lower, upper = batch.band([0.0, 1.0])
    assert np.isnan(lower[1]).all() and np.isfinite(lower[[0, 2]]).all()


def brute_force_limits(model, x, y, result, k, fit_kwargs, level):
    """Where the cost, refitted with parameter k held, rises by ``level``: brentq on refits."""
    from scipy.optimize import brentq

    def rise(t):
        p0 = result.params.copy()
        p0[k] = t
        refit = fit(model, x, y, p0=p0, fixed=[k], tol=1e-14, **fit_kwargs)
        return refit.cost - result.cost - level

    limits = []
    for side in (-1, 1):
        far = result.params[k] + side * result.stderr[k]
        while rise(far) < 0:
            far += side * 0.5 * result.stderr[k]
        limits.append(brentq(rise, result.params[k], far, xtol=1e-13))
    return limits


@pytest.mark.parametrize("case", ["builtin", "python", "compiled", "scaled", "poisson"])
def test_profile_intervals_equal_a_brute_force_profile(case):
    x = np.linspace(0, 5, 30)
    rng = np.random.default_rng(21)
    def exponential(x, a, tau, c):
        return a * np.exp(-x / tau) + c
    model = {"python": exponential, "compiled": None}.get(case, models.exponential)
    y = exponential(x, 2.0, 1.5, 0.1) + rng.normal(0, 0.05, x.size)
    kwargs = dict(sigma=0.05, absolute_sigma=True)
    if case == "scaled":
        kwargs = dict(sigma=0.1)                       # threshold times cost / dof
    if case == "poisson":
        y = rng.poisson(exponential(x, 20.0, 1.5, 1.0)).astype(float)
        kwargs = dict(cost="poisson")
    if case == "compiled":                             # the compiled gaussian test model
        model, x = low_level("gaussian_model"), X
        y = gaussian(X, *TRUTH) + rng.normal(0, 0.05, X.size)
    p0 = TRUTH if case == "compiled" else [1.0, 1.0, 0.0] if case == "python" else None
    r = fit(model, x, y, p0=p0, tol=1e-14, **kwargs)
    ci = r.conf_interval()
    assert ci.status.tolist() == [[0, 0]] * len(r.params) and ci.success
    level = 1.0 if case != "scaled" else r.cost / r.dof
    for k in range(len(r.params)):
        reference = brute_force_limits(model, x, y, r, k, kwargs, level)
        np.testing.assert_allclose(ci.limits[k], reference, rtol=0, atol=1e-4 * r.stderr[k])
    assert np.asarray(ci).shape == (len(r.params), 2)


def test_profile_intervals_batch_equal_single_and_cover():
    """2000 toys of a non-linear model: the 68.27% intervals cover the truth 66-70% of the
    time; each dataset's interval equals the one of its own FitResult."""
    x = np.linspace(0, 5, 30)
    truth = np.array([2.0, 1.5, 0.1])
    rng = np.random.default_rng(5)
    Y = models.exponential(x, *truth) + rng.normal(0, 0.2, (2000, x.size))
    batch = fit_batch(models.exponential, x, Y, p0=truth, sigma=0.2, absolute_sigma=True)
    ci = batch.conf_interval()
    ok = (ci.status == 0).all(axis=2)
    assert ok.mean() > 0.99 and ci.limits.shape == (2000, 3, 2)
    covered = (ci.lower <= truth) & (truth <= ci.upper)
    assert np.all(np.abs(covered[ok.all(axis=1)].mean(axis=0) - 0.6827) < 0.02)
    # asymmetric where the model is not linear (tau): not the parabolic +- stderr
    asymmetry = (ci.upper[:, 1] - batch.params[:, 1]) / (batch.params[:, 1] - ci.lower[:, 1])
    assert np.median(asymmetry) > 1.1
    for i in (0, 17, 1999):
        one = batch[i].conf_interval(params=["tau", 0])
        difference = np.abs(one.limits - ci.limits[i, [1, 0]])
        assert (difference <= 1e-6 * batch.stderr[i, [1, 0], None]).all(), difference


def test_profile_interval_statuses_and_errors():
    x = np.linspace(0, 5, 30)
    y = models.exponential(x, 2.0, 1.5, 0.1) + np.random.default_rng(1).normal(0, 0.05, 30)
    # a lower bound on c just below the fit: the profile stays below the level up to it
    r = fit(models.exponential, x, y, sigma=0.05, absolute_sigma=True,
            bounds=([0, 0.1, 0.08], [10, 10, 1]))
    assert r.params[2] - 0.08 < 0.5 * r.stderr[2]
    ci = r.conf_interval(params="c")
    assert ci.status.tolist() == [[4, 0]] and np.isnan(ci.lower[0]) and not ci.success
    fixed = fit(models.exponential, x, y, p0=[2.0, 1.5, 0.1], fixed=["c"])
    with pytest.raises(ValueError, match="fixed"):
        fixed.conf_interval(params=["c"])
    assert fixed.conf_interval().limits.shape == (2, 2)
    with pytest.raises(ValueError, match="unknown parameter"):
        fixed.conf_interval(params=["gamma"])
    with pytest.raises(ValueError, match="cl must be"):
        fixed.conf_interval(cl=1.0)
    batch = fit_batch(models.exponential, x, np.array([y, np.full(30, np.nan)]))
    ci = batch.conf_interval()
    assert (ci.status[1] == 3).all() and (ci.status[0] == 0).all()
