"""Orthogonal distance regression (fit / fit_batch with sigma_x) against scipy.odr (ODRPACK)
and a direct minimisation over (params, delta) with scipy.optimize.least_squares."""
import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from scipy.optimize import least_squares

from fastcalc import Status, fit, fit_batch, models
from fastcalc._testfunctions import low_level

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)     # scipy.odr is deprecated in 1.17
    from scipy import odr

# Pearson's data with York's errors (scipy's test_pearson; ODRPACK's classic straight line)
PEARSON_X = np.array([0., .9, 1.8, 2.6, 3.3, 4.4, 5.2, 6.1, 6.5, 7.4])
PEARSON_Y = np.array([5.9, 5.4, 4.4, 4.6, 3.5, 3.7, 2.8, 2.8, 2.4, 1.5])
PEARSON_SX = np.array([.03, .03, .04, .035, .07, .11, .13, .22, .74, 1.])
PEARSON_SY = np.array([1., .74, .5, .35, .22, .22, .12, .12, .1, .04])

# scipy's test_lorentz: a resonance measured in an undergraduate lab, errors in both
LORENTZ_X = np.array([3.9094, 3.85945, 3.84976, 3.84716, 3.84551, 3.83964, 3.82608, 3.78847,
                      3.78163, 3.72558, 3.70274, 3.6973, 3.67373, 3.65982, 3.6562, 3.62498,
                      3.55525, 3.41886])
LORENTZ_Y = np.array([652, 910.5, 984, 1000, 1007.5, 1053, 1160.5, 1409.5, 1430, 1122, 957.5,
                      920, 777.5, 709.5, 698, 578.5, 418.5, 275.5])
LORENTZ_SX = np.array([.000972971, .000948268, .000707632, .000706679, .000706074, .000703918,
                       .000698955, .000456856, .000455207, .000662717, .000654619, .000652694,
                       .000000859202, .00106589, .00106378, .00125483, .00140818, .00241839])
LORENTZ_SY = np.full(18, .29)

# scipy's test_explicit (ODRPACK's user guide, p. 39), without its fixed x
EXPLICIT_X = np.array([0., 0., 5., 7., 7.5, 10., 16., 26., 30., 34., 34.5, 100.])
EXPLICIT_Y = np.array([1265., 1263.6, 1258., 1254., 1253., 1249.8, 1237., 1218., 1220.6,
                       1213.8, 1215.5, 1212.])


# the fits compared with the references at 1e-6 of their standard errors stop at tight
# tolerances, as the references do: (Delta p / stderr)^2 ~ Delta cost, so 1e-6 of stderr needs
# the cost to ~1e-12 (the default tol=1e-12 is relative to the cost, 30 here)
TIGHT = 1e-14


def lorentz(x, a, b, c):
    return a * b * c / np.sqrt((x * x - c * c) ** 2 + (b * x) ** 2)


def explicit(x, a, b, c):
    return a + b * (np.exp(c * x) - 1.0) ** 2


def line(x, a, b):
    return a + b * x


def exponential(x, a, tau, c):
    return a * np.exp(-x / tau) + c


def scipy_odr(f, x, y, sx, sy, p0):
    """ODRPACK at tight tolerances (its defaults stop at 1e-8 of the sum of squares)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        data = odr.RealData(x, y, sx=sx, sy=sy)
        run = odr.ODR(data, odr.Model(lambda B, x: f(x, *B)), beta0=p0, sstol=1e-15,
                      partol=1e-15, maxit=1000).run()
    return run


def direct(f, x, y, sy, sx, p0, bounds=None, fixed=()):
    """min over (params, delta) of the ODR objective by least_squares at tight tolerances;
    the covariance as the parameters' block of inv(J^T J) of the whole problem."""
    m, k = len(x), len(p0)
    free = [j for j in range(k) if j not in fixed]

    def params_of(z):
        p = np.array(p0, dtype=float)
        p[free] = z[:len(free)]
        return p

    def residuals(z):
        d = z[len(free):]
        return np.concatenate([(f(x + d, *params_of(z)) - y) / sy, d / sx])

    lb = np.full(len(free) + m, -np.inf)
    ub = np.full(len(free) + m, np.inf)
    if bounds is not None:
        lb[:len(free)] = np.asarray(bounds[0], dtype=float)[free]
        ub[:len(free)] = np.asarray(bounds[1], dtype=float)[free]
    z0 = np.concatenate([np.asarray(p0, dtype=float)[free], np.zeros(m)])
    r = least_squares(residuals, z0, jac="3-point", bounds=(lb, ub), method="trf",
                      xtol=1e-15, ftol=1e-15, gtol=1e-15, max_nfev=100000, x_scale="jac")
    J = r.jac
    cov = np.linalg.inv(J.T @ J)[:len(free), :len(free)]
    return params_of(r.x), r.x[len(free):], cov, 2 * r.cost


def assert_within_stderr(params, reference, stderr, fraction):
    """|params - reference| <= fraction * stderr, parameter by parameter."""
    assert np.all(np.abs(params - reference) <= fraction * stderr), (
        np.abs(params - reference) / stderr)


def assert_odrpack_agrees(r, ref):
    """ODRPACK works with forward-difference derivatives: it stops with 'sum of squares
    convergence' a little short of the minimum even at sstol=1e-15 (its parameters agree to
    1e-5 of the standard errors, and our cost is at most its cost), and its standard errors
    carry their error (to 1e-5: 3.4e-6 on the Lorentz peak, where ours agree with the direct
    minimisation's to 1e-7). Each test also compares with the direct minimisation to 1e-6."""
    assert r.chi2 <= ref.sum_square * (1 + 1e-12)
    assert_within_stderr(r.params, ref.beta, r.stderr, 1e-5)
    assert_allclose(r.stderr, ref.sd_beta, rtol=1e-5)


# ---------------------------------------------------------------------------------------------
# Against ODRPACK

@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("kind", ["builtin", "python"])
def test_pearson_york_line_equals_odrpack(reverse, kind):
    x, y, sx, sy = PEARSON_X, PEARSON_Y, PEARSON_SX, PEARSON_SY
    p0 = [1.0, 1.0]
    if reverse:          # scipy's invariance check: the roles of x and y swapped
        x, y, sx, sy = y, x, sy, sx
        # from (1, 1) this problem has a second local minimum at slope 4 (cost 234 against
        # 12.07; ODRPACK itself ends there with analytic derivatives): start in the valley
        # of the global one
        p0 = [10.0, -1.0]
    ref = scipy_odr(line, x, y, sx, sy, p0)
    model = models.line if kind == "builtin" else line
    r = fit(model, x, y, p0=p0, sigma=sy, sigma_x=sx, tol=TIGHT)
    assert r.success
    assert_odrpack_agrees(r, ref)
    assert_allclose(r.cov, ref.cov_beta * ref.res_var, rtol=1e-6)
    assert_allclose(r.delta, ref.delta, atol=1e-5 * np.max(np.abs(x)))
    params, delta, cov, chi2 = direct(line, x, y, sy, sx, p0)
    assert_within_stderr(r.params, params, r.stderr, 1e-6)
    assert_allclose(r.cov, cov * chi2 / r.dof, rtol=1e-6, atol=1e-9 * np.abs(r.cov).max())
    assert_allclose(r.delta, delta, atol=1e-7 * np.max(np.abs(x)))
    assert_allclose(r.chi2, chi2, rtol=1e-12)
    assert_allclose(r.residuals, y - (r.params[0] + r.params[1] * (x + r.delta)), atol=1e-12)
    assert r.dof == len(x) - 2


def test_absolute_sigma_is_odrpack_cov_beta():
    ref = scipy_odr(line, PEARSON_X, PEARSON_Y, PEARSON_SX, PEARSON_SY, [1.0, 1.0])
    r = fit(models.line, PEARSON_X, PEARSON_Y, sigma=PEARSON_SY, sigma_x=PEARSON_SX,
            absolute_sigma=True)
    assert_allclose(r.cov, ref.cov_beta, rtol=1e-6)
    # scipy's own regression values (ODRPACK at its default tolerances)
    assert_within_stderr(r.params, [5.4767400299231674, -0.4796082367610305], r.stderr, 1e-4)


def test_lorentz_peak_equals_odrpack():
    p0 = (1000., .1, 3.8)
    ref = scipy_odr(lorentz, LORENTZ_X, LORENTZ_Y, LORENTZ_SX, LORENTZ_SY, p0)
    r = fit(lorentz, LORENTZ_X, LORENTZ_Y, p0=p0, sigma=LORENTZ_SY, sigma_x=LORENTZ_SX,
            tol=TIGHT)
    assert r.success
    assert_odrpack_agrees(r, ref)
    params, delta, cov, chi2 = direct(lorentz, LORENTZ_X, LORENTZ_Y, LORENTZ_SY, LORENTZ_SX,
                                      p0)
    assert_within_stderr(r.params, params, r.stderr, 1e-6)
    assert_allclose(r.cov, cov * chi2 / r.dof, rtol=1e-6, atol=1e-9 * np.abs(r.cov).max())


def test_explicit_model_equals_odrpack_and_direct_minimisation():
    p0 = [1500.0, -50.0, -0.1]
    ref = scipy_odr(explicit, EXPLICIT_X, EXPLICIT_Y, 1.0, 1.0, p0)
    r = fit(explicit, EXPLICIT_X, EXPLICIT_Y, p0=p0, sigma_x=1.0, tol=TIGHT)
    assert r.success
    assert_odrpack_agrees(r, ref)
    params, delta, cov, chi2 = direct(explicit, EXPLICIT_X, EXPLICIT_Y, 1.0, 1.0, p0)
    assert_within_stderr(r.params, params, r.stderr, 1e-6)
    assert_allclose(r.cov, cov * chi2 / r.dof, rtol=1e-6, atol=1e-9 * np.abs(r.cov).max())


@pytest.mark.parametrize("kind", ["builtin", "python"])
def test_exponential_equals_direct_minimisation_and_odrpack(rng, kind):
    x = np.linspace(0.0, 5.0, 40)
    sx = rng.uniform(0.02, 0.08, 40)
    sy = rng.uniform(0.03, 0.06, 40)
    y = exponential(x, 2.0, 1.5, 0.1) + rng.normal(0, sy)
    xm = x + rng.normal(0, sx)
    model = models.exponential if kind == "builtin" else exponential
    r = fit(model, xm, y, p0=[1.0, 1.0, 0.0], sigma=sy, sigma_x=sx, absolute_sigma=True,
            tol=TIGHT)
    assert r.success
    params, delta, cov, chi2 = direct(exponential, xm, y, sy, sx, [1.0, 1.0, 0.0])
    assert_within_stderr(r.params, params, r.stderr, 1e-6)
    assert_allclose(r.stderr, np.sqrt(np.diag(cov)), rtol=1e-6)
    assert_allclose(r.delta, delta, atol=1e-8)
    assert_allclose(r.chi2, chi2, rtol=1e-12)
    ref = scipy_odr(exponential, xm, y, sx, sy, [1.0, 1.0, 0.0])
    assert_allclose(r.stderr, np.sqrt(np.diag(ref.cov_beta)), rtol=1e-6)
    assert_within_stderr(r.params, ref.beta, r.stderr, 1e-5)


def test_straight_line_with_known_errors_in_both_coordinates(rng):
    """y = 1 + 2 x with sigma_x = 0.3, sigma_y = 0.2: the known answer is the direct
    minimisation; least squares in y alone is biased (attenuation) and reports errors three
    times too small."""
    xt = np.linspace(0.0, 10.0, 25)
    xm = xt + rng.normal(0, 0.3, 25)
    y = 1.0 + 2.0 * xt + rng.normal(0, 0.2, 25)
    r = fit(models.line, xm, y, sigma=0.2, sigma_x=0.3, absolute_sigma=True, tol=TIGHT)
    params, delta, cov, chi2 = direct(line, xm, y, 0.2, 0.3, [0.0, 1.0])
    assert_within_stderr(r.params, params, r.stderr, 1e-6)
    assert_allclose(r.stderr, np.sqrt(np.diag(cov)), rtol=1e-6)
    assert_allclose(r.delta, delta, atol=1e-8)
    plain = fit(models.line, xm, y, sigma=0.2, absolute_sigma=True)
    assert np.all(plain.stderr < r.stderr / 2)


# ---------------------------------------------------------------------------------------------
# Constraints, batches, threads, model kinds

def test_bounds_and_fixed_equal_the_constrained_direct_minimisation(rng):
    x = np.linspace(0.0, 5.0, 30)
    xm = x + rng.normal(0, 0.05, 30)
    y = exponential(x, 2.0, 1.5, 0.1) + rng.normal(0, 0.04, 30)
    bounds = ([0.0, 0.0, 0.2], [10.0, 10.0, 1.0])      # c >= 0.2 is active
    r = fit(models.exponential, xm, y, p0=[1.0, 1.0, 0.5], sigma=0.04, sigma_x=0.05,
            bounds=bounds, absolute_sigma=True, tol=TIGHT)
    params, *_ = direct(exponential, xm, y, 0.04, 0.05, [1.0, 1.0, 0.5], bounds=bounds)
    assert r.success and r.params[2] == 0.2
    assert_within_stderr(r.params, params, r.stderr, 1e-6)
    r = fit(models.exponential, xm, y, p0=[1.0, 1.0, 0.1], sigma=0.04, sigma_x=0.05,
            fixed=["c"], absolute_sigma=True, tol=TIGHT)
    params, delta, cov, _ = direct(exponential, xm, y, 0.04, 0.05, [1.0, 1.0, 0.1], fixed=(2,))
    assert r.success and r.params[2] == 0.1 and r.dof == 28
    assert_within_stderr(r.params, params, r.stderr, 1e-6)
    assert_allclose(r.stderr[:2], np.sqrt(np.diag(cov)), rtol=1e-6)
    assert r.stderr[2] == 0.0


def gaussian_odr_batch(rng, n, m=32):
    x = np.linspace(-4.0, 4.0, m)
    P = np.column_stack([rng.uniform(1, 3, n), rng.uniform(-1, 1, n), rng.uniform(0.8, 1.5, n),
                         rng.uniform(0, 1, n)])
    X = x + rng.normal(0, 0.03, (n, m))
    Y = python_gaussian(x, *[P[:, k:k + 1] for k in range(4)]) + rng.normal(0, 0.05, (n, m))
    return X, Y, P


def python_gaussian(x, a, mu, s, c):
    return a * np.exp(-0.5 * ((x - mu) / s) ** 2) + c


def test_batch_equals_single_fits_and_thread_counts_agree_bitwise(rng):
    X, Y, P = gaussian_odr_batch(rng, 24)
    Y[3, 5:9] = np.nan
    sigma_x = np.full_like(X, 0.03)
    sigma_x[7] = 0.05
    one = fit_batch(models.gaussian, X, Y, p0=P, sigma=0.05, sigma_x=sigma_x, n_threads=1)
    two = fit_batch(models.gaussian, X, Y, p0=P, sigma=0.05, sigma_x=sigma_x, n_threads=2)
    assert one.success.all()
    for name in ("params", "cov", "stderr", "chi2", "delta", "nit", "nfev", "status"):
        assert_array_equal(getattr(one, name), getattr(two, name))
    for i in (0, 3, 7):
        single = fit(models.gaussian, X[i], Y[i], p0=P[i], sigma=0.05, sigma_x=sigma_x[i])
        assert_array_equal(single.params, one.params[i])
        assert_array_equal(single.delta, one.delta[i])
        assert_array_equal(single.cov, one.cov[i])
    assert np.isnan(one.delta[3, 5:9]).all() and np.isnan(one.residuals[3, 5:9]).all()
    assert one.dof[3] == 32 - 4 - 4
    # a missing point is as if it were not there
    keep = np.isfinite(Y[3])
    alone = fit(models.gaussian, X[3][keep], Y[3][keep], p0=P[3], sigma=0.05,
                sigma_x=sigma_x[3][keep])
    assert_allclose(alone.params, one.params[3], rtol=1e-12)


@pytest.mark.parametrize("kind", ["compiled", "compiled_jac", "compiled_with_jac", "python"])
def test_model_kinds_agree_with_the_builtin_model(rng, kind):
    X, Y, P = gaussian_odr_batch(rng, 12)
    ref = fit_batch(models.gaussian, X, Y, p0=P, sigma=0.05, sigma_x=0.03)
    model = {"python": python_gaussian, "compiled_with_jac": low_level("gaussian_model_and_jac")
             }.get(kind, low_level("gaussian_model"))
    jac = low_level("gaussian_model_jac") if kind == "compiled_jac" else None
    r = fit_batch(model, X, Y, p0=P, sigma=0.05, sigma_x=0.03, jac=jac)
    assert r.success.all()
    assert_allclose(r.params, ref.params, rtol=1e-7, atol=1e-9)
    assert_allclose(r.stderr, ref.stderr, rtol=1e-5)
    assert_allclose(r.delta, ref.delta, atol=1e-7)
    if kind == "python":       # lock-step groups: the thread count changes nothing
        again = fit_batch(model, X, Y, p0=P, sigma=0.05, sigma_x=0.03, n_threads=2)
        assert_array_equal(again.params, r.params)


ONE_VARIABLE_MODELS = {
    "line": (models.line, (1.0, 2.0)),
    "polynomial2": (models.polynomial(2), (1.0, -0.5, 0.3)),
    "exponential": (models.exponential, (3.0, 1.5, 0.5)),
    "gaussian": (models.gaussian, (2.0, 2.5, 0.7, 0.3)),
    "lorentzian": (models.lorentzian, (2.0, 2.5, 0.5, 0.3)),
    "logistic": (models.logistic, (2.0, 2.5, 3.0, 0.3)),
    "power_law": (models.power_law, (2.0, 1.5)),
    "sine": (models.sine, (1.5, 2.0, 0.3, 0.2)),
}


@pytest.mark.parametrize("name", ONE_VARIABLE_MODELS)
def test_every_builtin_model_equals_itself_as_a_python_model(rng, name):
    """The built-in models' df/dx comes from their analytic Jacobians (one rule per model);
    the Python callable's from central differences: the fits agree."""
    model, truth = ONE_VARIABLE_MODELS[name]
    x = np.linspace(0.5, 5.0, 40)
    xm = x + rng.normal(0, 0.02, x.size)
    y = model(x, *truth) + rng.normal(0, 0.02, x.size)
    r = fit(model, xm, y, p0=truth, sigma=0.02, sigma_x=0.02, tol=TIGHT)
    python = fit(lambda x, *p: model(x, *p), xm, y, p0=truth, sigma=0.02, sigma_x=0.02,
                 tol=TIGHT)
    assert r.success and python.success
    assert_within_stderr(r.params, python.params, r.stderr, 1e-5)
    assert_allclose(r.stderr, python.stderr, rtol=1e-6)
    assert r.nfev < python.nfev     # one call per iteration: no differences in x


def test_builtin_guess_and_shared_x(rng):
    x = np.linspace(0.5, 5.0, 40)
    Y = exponential(x, 3.0, 1.5, 0.5) + rng.normal(0, 0.02, (5, 40))
    r = fit_batch(models.exponential, x, Y, sigma=0.02, sigma_x=0.01)
    assert r.success.all()
    assert_allclose(r.params, np.tile([3.0, 1.5, 0.5], (5, 1)), atol=0.2)
    assert r.delta.shape == (5, 40)
    df = r.to_dataframe()
    assert len(df) == 5


# ---------------------------------------------------------------------------------------------
# Statuses: success only with evidence

def test_failures_are_statuses_not_success(rng):
    x = np.linspace(0.0, 5.0, 30)
    y = exponential(x, 2.0, 1.5, 0.1) + rng.normal(0, 0.05, 30)
    with pytest.warns(RuntimeWarning, match="did not converge"):
        r = fit(models.exponential, x, y, p0=[1.0, 1.0, 0.0], sigma=0.05, sigma_x=0.05,
                maxiter=1)
    assert r.status == Status.MAX_ITERATIONS
    # a parameter without effect: singular
    with pytest.warns(RuntimeWarning):
        r = fit(lambda x, a, b, c: a * np.exp(-x / b) + 0 * c, x, y, p0=[1.0, 1.0, 0.0],
                sigma_x=0.05)
    assert r.status == Status.SINGULAR and np.isinf(r.stderr).any()
    # non-finite at the start
    with pytest.warns(RuntimeWarning):
        r = fit(lambda x, a, b: a * np.log(x - b), x, y, p0=[1.0, 1.0], sigma_x=0.05)
    assert r.status == Status.NON_FINITE
    # a compiled model that fails
    with pytest.warns(RuntimeWarning):
        r = fit(low_level("failing_model"), x, y, p0=[1.0, 1.0, 0.0, 0.0], sigma_x=0.05)
    assert r.status == Status.CALLBACK_ERROR


# ---------------------------------------------------------------------------------------------
# Bad input

@pytest.mark.parametrize("sigma_x, match", [
    (0.0, "sigma_x must be finite and > 0"), (-1.0, "sigma_x must be finite and > 0"),
    (np.nan, "sigma_x must be finite and > 0"), (np.inf, "sigma_x must be finite and > 0"),
    (np.ones(7), "sigma_x has 7 points but y has 30"), ("a", "sigma_x"),
])
def test_bad_sigma_x_is_a_value_error_naming_it(sigma_x, match):
    x = np.linspace(0.0, 5.0, 30)
    with pytest.raises((ValueError, TypeError), match=match):
        fit(models.line, x, 1 + x, sigma_x=sigma_x)


def test_bad_sigma_x_row_is_a_status_in_a_batch(rng):
    X, Y, P = gaussian_odr_batch(rng, 4)
    sigma_x = np.full_like(X, 0.03)
    sigma_x[2, 3] = 0.0
    r = fit_batch(models.gaussian, X, Y, p0=P, sigma=0.05, sigma_x=sigma_x)
    assert_array_equal(r.status, [0, 0, Status.NON_FINITE, 0])
    assert "sigma_x" in r.input_error[2] and np.isnan(r.params[2]).all()
    assert np.isnan(r.delta[2]).all()
    with pytest.raises(ValueError, match="sigma_x has 3 rows but Y has 4"):
        fit_batch(models.gaussian, X, Y, p0=P, sigma_x=sigma_x[:3])


@pytest.mark.parametrize("options, match", [
    (dict(method="gd"), "method='lm' only"), (dict(cost="poisson"), "cost='chi2' only"),
    (dict(loss="huber"), "loss='linear' only"),
])
def test_unsupported_options_are_refused(options, match):
    x = np.linspace(0.5, 5.0, 30)
    with pytest.raises(ValueError, match=match):
        fit(models.exponential, x, exponential(x, 2.0, 1.5, 0.1), sigma_x=0.1, **options)


def test_progress_says_it_shows_nothing():
    x = np.linspace(0, 1, 10)
    with pytest.warns(UserWarning, match="progress=True shows nothing with sigma_x"):
        r = fit_batch(models.line, x, np.vstack([1 + x, 2 - x]), sigma_x=0.1, progress=True)
    assert r.success.all()


def test_models_of_two_variables_and_python_jac_are_refused():
    g = np.linspace(-2, 2, 5)
    X2 = np.array(np.meshgrid(g, g)).reshape(2, -1)
    with pytest.raises(ValueError, match="one variable"):
        fit(models.gaussian_2d, X2, models.gaussian_2d(X2, 2.0, 0.3, -0.2, 0.8, 0.1),
            sigma_x=0.1)
    x = np.linspace(0, 1, 10)
    with pytest.raises(ValueError, match="jac is not supported"):
        fit(line, x, x, p0=[0, 1], sigma_x=0.1, jac=lambda x, a, b: np.ones((10, 2)))


def test_inputs_read_only_non_contiguous_and_never_modified(rng):
    X, Y, P = gaussian_odr_batch(rng, 6)
    Xw = np.asfortranarray(X)
    Yw = np.repeat(Y, 2, axis=1)[:, ::2]
    SX = np.full((6, 32), 0.03)
    copies = [a.copy() for a in (Xw, Yw, SX, P)]
    for a in (Xw, Yw, SX, P):
        a.flags.writeable = False
    r = fit_batch(models.gaussian, Xw, Yw, p0=P, sigma=0.05, sigma_x=SX)
    ref = fit_batch(models.gaussian, X, Y, p0=P, sigma=0.05, sigma_x=0.03)
    assert_array_equal(r.params, ref.params)
    for a, c in zip((Xw, Yw, SX, P), copies):
        assert_array_equal(a, c)


# ---------------------------------------------------------------------------------------------
# Inference on an ODR result

def test_profile_interval_band_and_no_simulate(rng):
    x = np.linspace(0.0, 10.0, 30)
    xm = x + rng.normal(0, 0.2, 30)
    y = 1 + 2 * x + rng.normal(0, 0.3, 30)
    r = fit(models.line, xm, y, sigma=0.3, sigma_x=0.2, absolute_sigma=True)
    ci = r.conf_interval()
    # a straight line: the profile is close to quadratic, the interval close to +- stderr
    assert_array_equal(ci.status, 0)
    assert_allclose(ci.upper - r.params, r.stderr, rtol=0.05)
    assert_allclose(r.params - ci.lower, r.stderr, rtol=0.05)
    lower, upper = r.band([0.0, 10.0])
    assert_allclose((upper - lower)[0] / 2, r.stderr[0], rtol=1e-4)
    with pytest.raises(NotImplementedError, match="sigma_x"):
        r.simulate(3)


# ---------------------------------------------------------------------------------------------
# Statistics: pulls on 2000 simulated datasets

def simulated_lines(rng, n=2000, m=20, sigma_x=0.3, sigma_y=0.2, truth=(1.0, 2.0)):
    xt = np.linspace(0.0, 5.0, m)
    X = xt + rng.normal(0, sigma_x, (n, m))
    Y = truth[0] + truth[1] * xt + rng.normal(0, sigma_y, (n, m))
    return X, Y


def test_pulls_have_unit_width_with_sigma_x_and_not_without(rng):
    truth = np.array([1.0, 2.0])
    X, Y = simulated_lines(rng, truth=truth)
    r = fit_batch(models.line, X, Y, sigma=0.2, sigma_x=0.3, absolute_sigma=True)
    assert r.success.all()
    pulls = (r.params - truth) / r.stderr
    assert np.all((0.9 <= pulls.std(axis=0)) & (pulls.std(axis=0) <= 1.1)), pulls.std(axis=0)
    assert np.all(np.abs(pulls.mean(axis=0)) < 0.15), pulls.mean(axis=0)
    plain = fit_batch(models.line, X, Y, sigma=0.2, absolute_sigma=True)
    plain_pulls = (plain.params - truth) / plain.stderr
    assert np.all(plain_pulls.std(axis=0) > 1.5), plain_pulls.std(axis=0)


# ---------------------------------------------------------------------------------------------
# fastcalc.dask: sigma_x chunked like Y

def test_dask_fit_batch_with_sigma_x_equals_in_memory(rng):
    da = pytest.importorskip("dask.array", reason="fastcalc.dask needs dask")
    import fastcalc.dask
    X, Y, P = gaussian_odr_batch(rng, 7)
    Y[2, 3] = np.nan
    sigma_x = np.full_like(X, 0.03)
    sigma_x[5] = 0.05
    sigma_x[6, 0] = -1.0        # a bad row: its status, in its chunk
    ref = fit_batch(models.gaussian, X, Y, p0=P, sigma=0.05, sigma_x=sigma_x)
    lazy = fastcalc.dask.fit_batch(models.gaussian, da.from_array(X, chunks=(3, 32)),
                                   da.from_array(Y, chunks=(3, 32)), p0=P, sigma=0.05,
                                   sigma_x=da.from_array(sigma_x, chunks=(2, 32)))
    assert_array_equal(lazy.delta.compute(scheduler="synchronous"), ref.delta)
    r = lazy.compute(scheduler="synchronous")
    for name in ("params", "cov", "chi2", "delta", "residuals", "status"):
        assert_array_equal(getattr(r, name), getattr(ref, name))
    assert r.status[6] == Status.NON_FINITE and "sigma_x" in r.input_error[6]
