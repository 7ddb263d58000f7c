"""Built-in fit models: values vs NumPy formulas, analytic Jacobians vs finite differences,
and guesses that put scipy.optimize.curve_fit in the right basin on noisy data."""
import pickle
import warnings

import numpy as np
import pytest
from scipy.optimize import curve_fit
from scipy.optimize._numdiff import approx_derivative  # no public equivalent for a plain f(p)

import fastcalc
from fastcalc import _models, models
from fastcalc.models import ModelId


def x_range(lo, hi, m=64):
    return lambda rng: np.linspace(lo, hi, m)


def grid_2d(lo, hi, side):
    def make(rng):
        u = np.linspace(lo, hi, side)
        gx, gy = np.meshgrid(u, u)
        return np.vstack([gx.ravel(), gy.ravel()])
    return make


# name -> (model, NumPy formula f(x, *p), x maker, true-parameter sampler, noise scale)
# Samplers give parameters typical of real data for that model (peaks inside the window,
# decays and sigmoids that change within it, several periods of a sine).
CASES = {
    "line": (
        models.line, lambda x, a, b: a + b * x, x_range(-3, 5),
        lambda r: [r.uniform(-5, 5), r.uniform(-3, 3)], 1.0),
    "polynomial3": (
        models.polynomial(3), lambda x, c0, c1, c2, c3: c0 + c1 * x + c2 * x**2 + c3 * x**3,
        x_range(-2, 3), lambda r: list(r.uniform(-2, 2, 4)), 1.0),
    "gaussian": (
        models.gaussian, lambda x, A, mu, s, c: A * np.exp(-(x - mu) ** 2 / (2 * s**2)) + c,
        x_range(-10, 10), lambda r: [r.choice([-1, 1]) * r.uniform(1, 5), r.uniform(-5, 5),
                                     r.uniform(0.5, 3), r.uniform(-2, 2)], None),
    "exponential": (
        models.exponential, lambda x, A, tau, c: A * np.exp(-x / tau) + c, x_range(0, 10),
        lambda r: [r.choice([-1, 1]) * r.uniform(1, 5),
                   r.choice([-1, 1, 1]) * r.uniform(0.7, 8), r.uniform(-2, 2)], None),
    "lorentzian": (
        models.lorentzian, lambda x, A, x0, g, c: A * g**2 / ((x - x0) ** 2 + g**2) + c,
        x_range(-10, 10), lambda r: [r.choice([-1, 1]) * r.uniform(1, 5), r.uniform(-4, 4),
                                     r.uniform(0.5, 2.5), r.uniform(-2, 2)], None),
    "logistic": (
        models.logistic, lambda x, L, x0, k, c: L / (1 + np.exp(-k * (x - x0))) + c,
        x_range(-10, 10), lambda r: [r.choice([-1, 1]) * r.uniform(1, 5), r.uniform(-4, 4),
                                     r.uniform(0.5, 4), r.uniform(-2, 2)], None),
    "power_law": (
        models.power_law, lambda x, A, k: A * x**k, x_range(0.5, 20),
        lambda r: [r.choice([-1, 1]) * r.uniform(0.5, 5), r.uniform(-2, 2)], None),
    "sine": (
        models.sine, lambda x, A, w, phi, c: A * np.sin(w * x + phi) + c, x_range(0, 10),
        lambda r: [r.uniform(1, 5), r.uniform(0.8, 5), r.uniform(-np.pi, np.pi),
                   r.uniform(-2, 2)], None),
    "gaussian_2d": (
        models.gaussian_2d,
        lambda xy, A, x0, y0, s, b: A * np.exp(-((xy[0] - x0) ** 2 + (xy[1] - y0) ** 2)
                                               / (2 * s**2)) + b,
        grid_2d(-2, 2, 5), lambda r: [r.choice([-1, 1]) * r.uniform(2, 10), r.uniform(-0.7, 0.7),
                                      r.uniform(-0.7, 0.7), r.uniform(0.7, 1.5),
                                      r.uniform(0, 2)], None),
    "gaussian_2d_large": (
        models.gaussian_2d,
        lambda xy, A, x0, y0, s, b: A * np.exp(-((xy[0] - x0) ** 2 + (xy[1] - y0) ** 2)
                                               / (2 * s**2)) + b,
        grid_2d(0, 30, 31), lambda r: [r.uniform(2, 10), r.uniform(8, 22), r.uniform(8, 22),
                                       r.uniform(1, 6), r.uniform(0, 2)], None),
}


def true_params(name, rng):
    return np.array(CASES[name][3](rng), dtype=float)


def noise_scale(name, p):
    scale = CASES[name][4]
    return abs(p[0]) if scale is None else scale


# ---------------------------------------------------------------------------------------
# values and Jacobians
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(CASES))
def test_values_match_numpy_formula(name, rng):
    model, formula, make_x, _, _ = CASES[name]
    for _ in range(5):
        p = true_params(name, rng)
        x = make_x(rng)
        np.testing.assert_allclose(model(x, *p), formula(x, *p), rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("name", sorted(CASES))
def test_jacobian_matches_finite_differences(name, rng):
    model, _, make_x, _, _ = CASES[name]
    for _ in range(5):
        p = true_params(name, rng)
        x = make_x(rng)
        jac = model.jacobian(x, *p)
        assert jac.shape == (x.shape[-1], model.nparams)
        numeric = approx_derivative(lambda q: model(x, *q), p, method="3-point")
        scale = np.max(np.abs(numeric), axis=0, keepdims=True) + 1e-300
        np.testing.assert_allclose(jac / scale, numeric / scale, rtol=1e-6, atol=1e-6)


def test_model_attributes_and_repr():
    g = models.gaussian
    assert g.name == "gaussian"
    assert g.param_names == ("A", "mu", "sigma", "c")
    assert g.nparams == 4 and g.x_dim == 1 and g.model_id == ModelId.GAUSSIAN
    assert "A*exp" in g.expression and "gaussian" in repr(g)
    with pytest.raises(AttributeError):
        g.nparams = 3
    assert pickle.loads(pickle.dumps(models.polynomial(4))) == models.polynomial(4)


def test_polynomial_validation_and_degree_zero():
    const = models.polynomial(0)
    assert const.nparams == 1 and const.param_names == ("c0",)
    np.testing.assert_array_equal(const([1.0, 2.0], 3.5), [3.5, 3.5])
    with pytest.raises(ValueError, match="deg"):
        models.polynomial(-1)
    with pytest.raises(TypeError, match="deg"):
        models.polynomial(2.5)


def test_get_model_names():
    assert models.get_model("gaussian") is models.gaussian
    assert models.get_model(" Gaussian ") is models.gaussian
    assert models.get_model("poly3") == models.polynomial(3)
    assert models.get_model("polynomial3") == models.polynomial(3)
    assert models.get_model("polynomial(2)") == models.polynomial(2)
    assert models.get_model(models.line) is models.line
    with pytest.raises(ValueError, match="unknown model name 'nope'"):
        models.get_model("nope")


def test_call_validates_params_and_x():
    x = np.linspace(0, 1, 5)
    with pytest.raises(TypeError, match=r"gaussian takes 4 parameters \(A, mu, sigma, c\), got 3"):
        models.gaussian(x, 1.0, 0.0, 1.0)
    with pytest.raises(TypeError, match="x must be real"):
        models.line(x + 1j, 1.0, 2.0)
    with pytest.raises(TypeError, match="params"):
        models.line(x, "a", 2.0)
    # a single parameter array is accepted as well as the curve_fit unpacked form
    np.testing.assert_array_equal(models.line(x, np.array([1.0, 2.0])), models.line(x, 1.0, 2.0))
    # scalar and n-d x keep their shape
    assert models.line(2.0, 1.0, 2.0) == 5.0
    assert models.line(np.ones((3, 2)), 1.0, 2.0).shape == (3, 2)


def test_invalid_parameters_give_nan_and_kernel_status():
    x = np.linspace(-1, 1, 7)
    assert np.all(np.isnan(models.gaussian(x, 1.0, 0.0, 0.0, 0.0)))        # sigma = 0
    assert np.all(np.isnan(models.gaussian(x, 1.0, np.inf, 1.0, 0.0)))
    assert np.all(np.isnan(models.line.jacobian(x, np.nan, 1.0)))
    _, _, status = _models.evaluate(ModelId.GAUSSIAN, 4, x, [1.0, 0.0, 0.0, 0.0], True)
    assert status != 0
    _, _, status = _models.evaluate(ModelId.GAUSSIAN, 4, x, [1.0, 0.0, 1.0, 0.0], True)
    assert status == 0


def test_low_level_wrappers_check_sizes():
    with pytest.raises(ValueError, match="parameters"):
        _models.evaluate(ModelId.GAUSSIAN, 3, [0.0], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="parameters"):
        _models.evaluate(ModelId.LINE, 2, [0.0], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError):
        _models.evaluate(99, 2, [0.0], [1.0, 2.0])
    with pytest.raises(ValueError):
        _models.guess(ModelId.LINE, 2, [0.0, 1.0], [1.0])


# ---------------------------------------------------------------------------------------
# guesses
# ---------------------------------------------------------------------------------------

def fit_from_guess(model, x, y):
    p0 = model.guess(x, y)
    finite = np.isfinite(y)
    xf = x[..., finite]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        popt, pcov = curve_fit(model, xf, y[finite], p0=p0, jac=model.jacobian, maxfev=2000)
    return p0, popt, pcov


def canonical(name, p):
    """Parameters up to the model's symmetries (width sign)."""
    p = np.array(p, dtype=float)
    if name in ("gaussian", "lorentzian"):
        p[2] = abs(p[2])
    elif name.startswith("gaussian_2d"):
        p[3] = abs(p[3])
    elif name == "sine":
        if p[0] < 0:                      # -A sin(t) = A sin(t + pi)
            p[0], p[2] = -p[0], p[2] + np.pi
        p[2] = np.angle(np.exp(1j * p[2]))
    elif name == "logistic" and p[2] < 0:  # L s(-z) + c = -L s(z) + (c + L)
        p[0], p[2], p[3] = -p[0], -p[2], p[3] + p[0]
    return p


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("noise", [0.01, 0.05, 0.15])
def test_guess_then_curve_fit_recovers_true_parameters(name, noise):
    model, _, make_x, _, _ = CASES[name]
    for seed in range(6):
        rng = np.random.default_rng(1000 * seed + 7)
        p_true = true_params(name, rng)
        x = make_x(rng)
        sigma = noise * noise_scale(name, p_true)
        y = model(x, *p_true) + rng.normal(0, sigma, x.shape[-1])
        p0, popt, pcov = fit_from_guess(model, x, y)
        stderr = np.sqrt(np.diag(pcov))
        error = np.abs(canonical(name, popt) - canonical(name, p_true))
        if name == "sine":
            error[2] = abs(np.angle(np.exp(1j * error[2])))
        # in the right basin: within 6 standard errors of the truth (plus a rounding floor)
        assert np.all(error <= 6 * stderr + 1e-8 * (1 + np.abs(p_true))), (
            f"{name} seed {seed} noise {noise}: p_true {p_true}, p0 {p0}, popt {popt}, "
            f"stderr {stderr}")


@pytest.mark.parametrize("name", sorted(CASES))
def test_guess_ignores_nan_y(name):
    model, _, make_x, _, _ = CASES[name]
    rng = np.random.default_rng(5)
    p_true = true_params(name, rng)
    x = make_x(rng)
    y = model(x, *p_true) + rng.normal(0, 0.02 * noise_scale(name, p_true), x.shape[-1])
    missing = rng.random(y.shape) < 0.2
    y_nan = np.where(missing, np.nan, y)
    p0 = model.guess(x, y_nan)
    np.testing.assert_array_equal(p0, model.guess(x[..., ~missing], y[~missing]))
    assert np.all(np.isfinite(p0))


@pytest.mark.parametrize("name", sorted(CASES))
def test_guess_needs_enough_points(name):
    model, _, make_x, _, _ = CASES[name]
    rng = np.random.default_rng(3)
    x = make_x(rng)
    y = np.full(x.shape[-1], np.nan)
    y[: model.nparams - 1] = 1.0
    with pytest.raises(ValueError, match="from y"):
        model.guess(x, y)
    with pytest.raises(ValueError, match="x must have shape"):
        model.guess(x[..., :-1], y)


@pytest.mark.parametrize("name", sorted(CASES))
def test_read_only_inputs_work_and_are_not_mutated(name):
    model, _, make_x, _, _ = CASES[name]
    rng = np.random.default_rng(11)
    p_true = true_params(name, rng)
    x = make_x(rng)
    y = model(x, *p_true)
    p = np.array(p_true)
    for a in (x, y, p):
        a.setflags(write=False)
    x_copy, y_copy, p_copy = x.copy(), y.copy(), p.copy()
    model(x, *p)
    model.jacobian(x, *p)
    model.guess(x, y)
    _models.evaluate(model.model_id, model.nparams, x, p, True)
    np.testing.assert_array_equal(x, x_copy)
    np.testing.assert_array_equal(y, y_copy)
    np.testing.assert_array_equal(p, p_copy)


def test_linear_guesses_are_exact_least_squares(rng):
    x = np.linspace(-4, 9, 40)
    y = 1.0 - 2.0 * x + 0.3 * x**2 - 0.01 * x**3 + rng.normal(0, 0.5, x.size)
    np.testing.assert_allclose(models.polynomial(3).guess(x, y), np.polyfit(x, y, 3)[::-1],
                               rtol=1e-9)
    np.testing.assert_allclose(models.line.guess(x, y), np.polyfit(x, y, 1)[::-1], rtol=1e-10)
    # far from the origin the scaled solve stays accurate
    xs = x + 1e4
    np.testing.assert_allclose(models.line.guess(xs, 3.0 + 0.5 * xs), [3.0, 0.5], rtol=1e-8)


def test_guess_fails_for_identical_x():
    with pytest.raises(ValueError, match="distinct x"):
        models.line.guess(np.ones(5), np.arange(5.0))
    with pytest.raises(ValueError, match="distinct x"):
        models.gaussian.guess(np.ones(5), np.arange(5.0))


@pytest.mark.parametrize("name", sorted(CASES))
def test_guess_does_not_depend_on_point_order(name):
    # unsorted x: sine switches from zero crossings to a periodogram scan, the rest are
    # order-free statistics; the guess must still lead curve_fit to the truth
    model, _, make_x, _, _ = CASES[name]
    for seed in range(4):
        rng = np.random.default_rng(300 + seed)
        p_true = true_params(name, rng)
        x = make_x(rng)
        y = model(x, *p_true) + rng.normal(0, 0.05 * noise_scale(name, p_true), x.shape[-1])
        order = rng.permutation(x.shape[-1])
        p0, popt, pcov = fit_from_guess(model, x[..., order], y[order])
        error = np.abs(canonical(name, popt) - canonical(name, p_true))
        if name == "sine":
            error[2] = abs(np.angle(np.exp(1j * error[2])))
        stderr = np.sqrt(np.diag(pcov))
        assert np.all(error <= 6 * stderr + 1e-8 * (1 + np.abs(p_true))), (name, seed, p0, popt)


@pytest.mark.parametrize("model, params", [
    (models.gaussian, [1.0, 0.0, 0.0, 0.0]),           # sigma = 0
    (models.lorentzian, [1.0, 0.0, 0.0, 0.0]),         # gamma = 0
    (models.exponential, [1.0, 0.0, 0.0]),             # tau = 0
    (models.exponential, [1.0, -1e-3, 0.0]),           # exp overflow
    (models.gaussian_2d, [1.0, 0.0, 0.0, 0.0, 0.0]),   # sigma = 0
    (models.logistic, [1.0, 0.0, np.nan, 0.0]),
    (models.sine, [np.inf, 1.0, 0.0, 0.0]),
    (models.polynomial(2), [1.0, np.nan, 0.0]),
    (models.power_law, [1.0, 1e6]),                    # overflow (except at x = 1)
])
def test_parameters_without_finite_value_give_status_not_crash(model, params):
    x = np.linspace(1, 3, 6) if model.x_dim == 1 else np.ones((2, 6))
    values, jac, status = _models.evaluate(model.model_id, model.nparams, x, params, True)
    assert status != 0
    # invalid parameters make every point NaN; a point that overflows is NaN alone
    finite_points = 1 if model is models.power_law else 0
    assert np.sum(~np.isnan(model(x, *params))) == finite_points
    assert np.sum(~np.isnan(model.jacobian(x, *params)).all(axis=-1)) == finite_points


def test_power_law_domain():
    x = np.array([-1.0, 1.0, 2.0, 3.0])
    # only the point outside the domain is NaN (the fit kernels see a status instead)
    np.testing.assert_array_equal(models.power_law(x, 1.0, 2.0), [np.nan, 1.0, 4.0, 9.0])
    assert np.all(np.isnan(models.power_law.jacobian(x, 1.0, 2.0)[0]))
    assert np.all(np.isfinite(models.power_law.jacobian(x, 1.0, 2.0)[1:]))
    _, _, status = _models.evaluate(ModelId.POWER_LAW, 2, x, [1.0, 2.0])
    assert status != 0
    with pytest.raises(ValueError, match="x is outside the model's domain"):
        models.power_law.guess(x, [1.0, 1.0, 4.0, 9.0])
    # a missing y at the offending x removes the point from the guess
    p0 = models.power_law.guess(x, [np.nan, 1.0, 4.0, 9.0])
    np.testing.assert_allclose(p0, [1.0, 2.0], rtol=1e-12)


def test_domain_as_data():
    assert models.power_law.x_domain == (0.0, np.inf)
    assert models.power_law.domain_error() == (
        "x is outside the model's domain (A*x**k needs x > 0)")
    np.testing.assert_array_equal(models.power_law.outside_domain(np.array([-1.0, 0.0, 1e-300])),
                                  [True, True, False])
    for model in (models.line, models.exponential, models.gaussian, models.sine,
                  models.polynomial(3), models.gaussian_2d):
        assert model.x_domain is None and model.outside_domain(np.array([-1.0])) is None


def test_exact_data_guesses_are_close():
    # on noise-free data the guesses are near the truth (these are the data-derived
    # estimates the docstrings describe, not just "somewhere in the basin")
    x = np.linspace(-10, 10, 201)
    cases = [
        (models.gaussian, [3.0, 1.0, 1.5, 0.5], 0.05),
        (models.lorentzian, [-2.0, -1.0, 1.0, 0.3], 0.15),
        (models.logistic, [2.0, 1.0, 1.5, -1.0], 0.05),
        (models.sine, [1.5, 2.0, 0.5, 0.2], 0.02),
    ]
    for model, p, rtol in cases:
        p0 = model.guess(x, model(x, *p))
        np.testing.assert_allclose(p0, p, rtol=rtol, atol=rtol, err_msg=model.name)
    xe = np.linspace(0, 10, 101)
    p0 = models.exponential.guess(xe, models.exponential(xe, 2.0, 3.0, 1.0))
    np.testing.assert_allclose(p0, [2.0, 3.0, 1.0], rtol=0.02)
    xp = np.geomspace(0.1, 100, 50)
    np.testing.assert_allclose(models.power_law.guess(xp, models.power_law(xp, 3.0, -1.5)),
                               [3.0, -1.5], rtol=1e-10)


@pytest.mark.parametrize("offset", [0.0, 100.0])
def test_gaussian_2d_guess_is_sharpened_by_the_log_parabola(offset):
    """On noise-free 5x5 stamps (which never reach the baseline) the log-parabola refinement
    puts the centre within 0.01 pixel (the centroid alone is off by up to 0.09), also for pixel
    coordinates far from 0, where uncentred normal equations would be ill-conditioned."""
    grid = np.arange(5.0) - 2.0 + offset
    gx, gy = np.meshgrid(grid, grid)
    xy = np.vstack([gx.ravel(), gy.ravel()])
    g = models.gaussian_2d
    for p in ([10.0, 0.3, -0.2, 1.1, 1.0], [-4.0, -0.4, 0.5, 0.8, 2.0], [7.0, 0.1, 0.2, 1.3, 0.0]):
        p = np.array(p) + [0.0, offset, offset, 0.0, 0.0]
        p0 = g.guess(xy, g(xy, *p))
        np.testing.assert_allclose(p0[1:3], p[1:3], atol=0.01)
        np.testing.assert_allclose(p0[[0, 3]], p[[0, 3]], rtol=0.1)


def test_dips_and_decreasing_steps():
    x = np.linspace(-5, 5, 81)
    p0 = models.gaussian.guess(x, models.gaussian(x, -2.0, 0.5, 0.8, 1.0))
    assert p0[0] < 0 and abs(p0[1] - 0.5) < 0.1
    # a decreasing step comes back with k > 0 and L < 0 (the equivalent form)
    y = models.logistic(x, 3.0, 0.0, -2.0, 0.0)          # = -3 s(2x) + 3
    p0 = models.logistic.guess(x, y)
    assert p0[2] > 0 and p0[0] < 0
    np.testing.assert_allclose(models.logistic(x, *p0), y, atol=0.3)


def test_high_degree_polynomial_guess_uses_heap_path():
    # nparams above the stack buffer size: same exact least-squares fit
    x = np.linspace(-1, 2, 200)
    y = np.cos(3 * x)
    deg = 20
    p0 = models.polynomial(deg).guess(x, y)
    reference = np.polynomial.Polynomial.fit(x, y, deg)
    np.testing.assert_allclose(models.polynomial(deg)(x, *p0), reference(x), atol=1e-8)


def test_gaussian_2d_shapes():
    g = models.gaussian_2d
    assert g.x_dim == 2 and g.nparams == 5
    xy = np.stack(np.meshgrid(np.arange(5.0), np.arange(4.0)))          # (2, 4, 5)
    p = [2.0, 2.0, 1.5, 1.0, 0.1]
    assert g(xy, *p).shape == (4, 5)
    assert g.jacobian(xy, *p).shape == (4, 5, 5)
    flat = xy.reshape(2, -1)
    np.testing.assert_array_equal(g(xy, *p).ravel(), g(flat, *p))
    with pytest.raises(ValueError, match=r"x must have shape \(2, m\)"):
        g(np.ones((3, 4)), *p)
    with pytest.raises(ValueError, match="x must have shape"):
        g.guess(np.ones(20), np.ones(20))
    with pytest.raises(ValueError, match="y must be 1-D"):
        g.guess(flat, np.ones((4, 5)))


def test_all_models_listed_and_named():
    for name in ("line", "exponential", "gaussian", "lorentzian", "logistic", "power_law",
                 "sine", "gaussian_2d"):
        model = getattr(models, name)
        assert model.name == name and models.get_model(name) is model
        assert len(model.param_names) == model.nparams
        assert pickle.loads(pickle.dumps(model)) is model
    assert models.get_model("gauss-2d") is models.gaussian_2d
    assert models.get_model("Power Law") is models.power_law
    assert {m.model_id for m in map(models.get_model, ["line", "poly2", "exponential",
            "gaussian", "lorentzian", "logistic", "power_law", "sine",
            "gaussian_2d"])} == set(ModelId)


@pytest.mark.parametrize("k", [-700, -300, 300, 700])
def test_power_law_guess_does_not_depend_on_the_scale_of_y(k):
    # its least squares were weighted by |y| itself, which overflowed above |y| ~ 1e154
    x = np.linspace(0.5, 5.0, 7)
    y = 3.0 * x ** -1.5 * (1.0 + 0.01 * np.sin(5 * x))
    base = models.power_law.guess(x, y)
    scaled = models.power_law.guess(x, np.ldexp(y, k))
    np.testing.assert_allclose(scaled, [np.ldexp(base[0], k), base[1]], rtol=1e-12)


@pytest.mark.parametrize("k", [-900, -500, 500, 900])
def test_sine_guess_does_not_depend_on_the_scale_of_y(k):
    # its sums of squares overflowed above |y| ~ 1e154 (a wrong omega at 1e154, an error above)
    x = np.linspace(0.0, 10.0, 60)
    y = 2.0 * np.sin(1.3 * x + 0.4) + 0.5
    base = models.sine.guess(x, y)
    np.testing.assert_array_equal(models.sine.guess(x, np.ldexp(y, k)),
                                  base * np.ldexp(1.0, [k, 0, 0, k]))


def test_sine_fit_on_sparse_sorted_irregular_x_does_not_depend_on_the_order():
    # the zero-crossing count missed crossings between sparse samples: omega 1.46 for 3.0 on
    # sorted x (status 0, chi2 11), while the same points shuffled fitted right
    rng = np.random.default_rng(13)
    x = np.sort(rng.uniform(0.0, 10.0, 30))
    y = models.sine(x, 1.0, 3.0, 0.5, 0.0) + 0.1 * rng.normal(size=30)
    perm = rng.permutation(30)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        in_order = fastcalc.fit(models.sine, x, y)
        shuffled = fastcalc.fit(models.sine, x[perm], y[perm])
    assert in_order.status == 0 and abs(in_order.params[1] - 3.0) < 0.05
    np.testing.assert_allclose(in_order.params, shuffled.params, rtol=1e-6, atol=1e-8)
