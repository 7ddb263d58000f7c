"""fastcalc.propagate against exact derivatives, exact second-order moments and Monte Carlo."""
import sys

import numpy as np
import pytest

import fastcalc
from fastcalc import propagate
from fastcalc._testfunctions import low_level


def exp_sin(p):
    return np.exp(p[0]) * np.sin(p[1])


def exp_sin_grad(p):
    return np.array([np.exp(p[0]) * np.sin(p[1]), np.exp(p[0]) * np.cos(p[1])])


def field(p):
    """vector_field of _testfunctions, n = m = 3."""
    n = len(p)
    return np.array([p[i] ** 2 * np.sin(p[(i + 1) % n]) + np.exp(p[i - 1]) * np.cos(p[i])
                     for i in range(n)])


def field_jac(p):
    n = len(p)
    J = np.zeros((n, n))
    for i in range(n):
        J[i, i] += 2 * p[i] * np.sin(p[(i + 1) % n]) - np.exp(p[i - 1]) * np.sin(p[i])
        J[i, (i + 1) % n] += p[i] ** 2 * np.cos(p[(i + 1) % n])
        J[i, i - 1] += np.exp(p[i - 1]) * np.cos(p[i])
    return J


def random_cov(rng, k, scale):
    A = rng.normal(size=(k, k)) * scale
    return A @ A.T + np.diag(np.full(k, scale ** 2))


@pytest.fixture
def rng():
    return np.random.default_rng(7)


@pytest.mark.parametrize("kind", ["python", "vectorized", "compiled"])
def test_first_order_scalar_equals_exact_delta_method(kind, rng):
    p = np.array([0.3, 1.1])
    C = random_cov(rng, 2, 0.05)
    f = {"python": exp_sin, "vectorized": exp_sin, "compiled": low_level("exp_sin")}[kind]
    r = propagate(f, p, C, vectorized=kind == "vectorized")
    g = exp_sin_grad(p)
    assert r.status == 0 and r.success
    np.testing.assert_allclose(r.value, exp_sin(p), rtol=1e-15)
    np.testing.assert_allclose(r.jac, g, rtol=1e-9)
    np.testing.assert_allclose(r.cov, g @ C @ g, rtol=1e-8)
    np.testing.assert_allclose(r.std, np.sqrt(g @ C @ g), rtol=1e-8)
    assert r.mean == r.value            # order 1: no shift


@pytest.mark.parametrize("kind", ["python", "vectorized", "compiled"])
def test_first_order_vector_equals_exact_delta_method(kind, rng):
    p = np.array([0.4, -0.7, 1.3])
    C = random_cov(rng, 3, 0.02)
    f = {"python": field, "compiled": low_level("vector_field"),
         "vectorized": lambda P: np.stack([field(P[:, j]) for j in range(P.shape[1])], axis=1)}
    r = propagate(f[kind], p, C, vectorized=kind == "vectorized",
                  n_out=3 if kind == "compiled" else None)
    J = field_jac(p)
    np.testing.assert_allclose(r.jac, J, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(r.cov, J @ C @ J.T, rtol=1e-8)
    np.testing.assert_allclose(r.std, np.sqrt(np.diag(J @ C @ J.T)), rtol=1e-8)
    assert r.value.shape == (3,) and r.cov.shape == (3, 3) and r.status == 0


def test_batch_equals_single_and_exact(rng):
    N = 50
    P = np.column_stack([rng.uniform(-1, 1, N), rng.uniform(0.2, 3, N)])
    C = np.array([random_cov(rng, 2, s) for s in rng.uniform(1e-3, 0.1, N)])
    batch = propagate(exp_sin, P, C, vectorized=True)
    assert batch.std.shape == (N,) and batch.jac.shape == (N, 2) and (batch.status == 0).all()
    for i in range(N):
        one = propagate(exp_sin, P[i], C[i], vectorized=True)
        np.testing.assert_array_equal(batch.jac[i], one.jac)
        np.testing.assert_allclose(batch.std[i], one.std, rtol=1e-15)    # summation order
        g = exp_sin_grad(P[i])
        np.testing.assert_allclose(batch.std[i], np.sqrt(g @ C[i] @ g), rtol=1e-8)


def test_batch_is_chunked_without_changing_results(rng, monkeypatch):
    P = rng.uniform(0.5, 2, size=(40, 3))
    C = np.array([np.diag(rng.uniform(1e-4, 1e-2, 3)) for _ in range(40)])
    whole = propagate(field, P, C, order=2)
    module = sys.modules["fastcalc.propagate"]     # the name fastcalc.propagate is the function
    monkeypatch.setattr(module, "_CHUNK_POINTS", 7 * module._Stencil(3, 2).size)
    chunked = propagate(field, P, C, order=2)
    for name in ("value", "mean", "std", "cov", "jac"):
        np.testing.assert_array_equal(getattr(whole, name), getattr(chunked, name))


def quadratic(p):
    """Exactly quadratic in p: the second-order moments are exact for Gaussian p."""
    return np.array([p[0] * p[1] + 0.5 * p[0] ** 2, p[1] ** 2 - 3 * p[0] + p[0] * p[2]])


def quadratic_moments(p, C):
    """Exact mean and covariance of ``quadratic`` for Gaussian parameters."""
    H = np.array([[[1.0, 1, 0], [1, 0, 0], [0, 0, 0]], [[0, 0, 1], [0, 2, 0], [1, 0, 0]]])
    J = np.array([[p[1] + p[0], p[0], 0], [-3 + p[2], 2 * p[1], p[0]]])
    mean = quadratic(p) + 0.5 * np.einsum("ikl,lk->i", H, C)
    cov = J @ C @ J.T + 0.5 * np.einsum("ikl,lm,jmn,nk->ij", H, C, H, C)
    return mean, cov


def test_second_order_is_exact_for_a_quadratic(rng):
    p = np.array([1.5, -0.5, 2.0])
    C = random_cov(rng, 3, 0.3)
    mean, cov = quadratic_moments(p, C)
    r = propagate(quadratic, p, C, order=2)
    np.testing.assert_allclose(r.mean, mean, rtol=1e-7)
    np.testing.assert_allclose(r.cov, cov, rtol=1e-7)
    first = propagate(quadratic, p, C)
    assert np.abs(first.mean - mean).max() > 0.05          # order 1 misses the shift


def test_second_order_matches_monte_carlo(rng):
    """Mean and std within 3 Monte-Carlo errors of 1e6 samples on a curved f; order 1 is not."""
    p = np.array([1.5, -0.5, 2.0])
    C = random_cov(rng, 3, 0.4)
    samples = rng.multivariate_normal(p, C, size=1_000_000).T
    y = quadratic(samples)
    n = y.shape[1]
    mc_mean, mc_std = y.mean(axis=1), y.std(axis=1)
    mean_error = mc_std / np.sqrt(n)
    centred = y - mc_mean[:, None]
    # standard error of the sample std from the fourth moment (the outputs are not Gaussian)
    std_error = np.sqrt((np.mean(centred ** 4, axis=1) - mc_std ** 4) / n) / (2 * mc_std)
    second = propagate(quadratic, p, C, order=2, vectorized=True)
    assert (np.abs(second.mean - mc_mean) < 3 * mean_error).all()
    assert (np.abs(second.std - mc_std) < 3 * std_error).all()
    first = propagate(quadratic, p, C, vectorized=True)
    assert (np.abs(first.mean - mc_mean) > 3 * mean_error).any()
    assert (np.abs(first.std - mc_std) > 3 * std_error).any()


def test_from_a_batch_fit(rng):
    """A BatchFitResult's params and cov go straight in; equals propagating each fit."""
    x = np.linspace(-5, 5, 64)
    truth = np.column_stack([rng.uniform(5, 10, 20), rng.uniform(-1, 1, 20),
                             rng.uniform(0.8, 1.5, 20), rng.uniform(-1, 1, 20)])
    Y = np.array([fastcalc.models.gaussian(x, *t) for t in truth]) + rng.normal(0, 0.2, (20, 64))
    fits = fastcalc.fit_batch(fastcalc.models.gaussian, x, Y, sigma=0.2, absolute_sigma=True)
    area = propagate(lambda q: q[0] * q[2] * np.sqrt(2 * np.pi), fits.params, fits.cov,
                     vectorized=True)
    a, s = fits.params[:, 0], fits.params[:, 2]
    J = np.sqrt(2 * np.pi) * np.column_stack([s, 0 * s, a, 0 * s])
    np.testing.assert_allclose(area.std, np.sqrt(np.einsum("nk,nkl,nl->n", J, fits.cov, J)),
                               rtol=1e-8)


def test_one_bad_parameter_vector_does_not_spoil_the_batch(rng):
    P = np.array([[0.3, 1.1], [np.nan, 1.0], [0.2, 0.9]])
    C = np.array([np.eye(2) * 0.01, np.eye(2) * 0.01, np.full((2, 2), np.nan)])
    r = propagate(exp_sin, P, C)
    np.testing.assert_array_equal(r.status, [0, 3, 3])
    assert np.isnan(r.std[1:]).all() and not r.success
    np.testing.assert_array_equal(r.std[0], propagate(exp_sin, P[0], C[0]).std)


def test_non_finite_value_is_a_status():
    r = propagate(lambda p: np.log(p[0]) if p[0] > 1 else np.nan, [1.0], [[0.01]])
    assert r.status == 3 and np.isnan(r.std) and "not finite" in r.message


def test_function_finer_than_the_steps_is_not_a_success():
    """sin(1e6 p) at p = 1 with sigma = 1: no Taylor expansion describes it; status 1."""
    r = propagate(lambda p: np.sin(1e6 * p[0]), [1.0], [[1.0]])
    assert r.status == 1 and not r.success


def test_steps_follow_a_small_parameter(rng):
    """A Gaussian of width 1e-3: steps relative to max(1, |p|) would be useless."""
    f = lambda p: np.exp(-0.5 * (0.0005 / p[0]) ** 2)
    d = lambda w: np.exp(-0.5 * (0.0005 / w) ** 2) * 0.0005 ** 2 / w ** 3
    r = propagate(f, [1e-3], [[1e-10]])
    np.testing.assert_allclose(r.std, abs(d(1e-3)) * 1e-5, rtol=1e-8)


def test_inputs_are_not_modified_and_read_only_is_fine():
    p = np.array([0.3, 1.1])
    C = np.eye(2) * 0.01
    p.flags.writeable = C.flags.writeable = False
    r = propagate(exp_sin, p, C, order=2)
    assert r.status == 0
    np.testing.assert_array_equal(p, [0.3, 1.1])


@pytest.mark.parametrize("params, cov, kwargs, match", [
    ([1.0, 2.0], np.eye(3), {}, "cov must have shape"),
    ([[1.0, 2.0]], np.eye(2), {}, "cov must have shape"),
    (np.ones((2, 2, 2)), np.eye(2), {}, "params must have shape"),
    ([], np.eye(0), {}, "params must have shape"),
    ([1.0, 2.0], [[1.0, 0.5], [0.0, 1.0]], {}, "symmetric"),
    ([1.0, 2.0], [[-1.0, 0.0], [0.0, 1.0]], {}, "non-negative"),
    ([np.nan, 2.0], np.eye(2), {}, "finite"),
    ([1.0, 2.0], np.eye(2), {"order": 3}, "order"),
    ([1.0, 2.0], np.eye(2), {"order": True}, "order"),
])
def test_bad_input_is_a_clear_error(params, cov, kwargs, match):
    with pytest.raises(ValueError, match=match):
        propagate(exp_sin, params, cov, **kwargs)


def test_bad_functions_are_clear_errors():
    with pytest.raises(ValueError, match="n_out"):
        propagate(low_level("vector_field"), [1.0, 2.0], np.eye(2))
    with pytest.raises(TypeError, match="args"):
        propagate(low_level("exp_sin"), [1.0, 2.0], np.eye(2), args=(1,))
    with pytest.raises(TypeError, match="f must be callable"):
        propagate("not a function", [1.0], np.eye(1))
    with pytest.raises(ValueError, match="1-D"):
        propagate(lambda p: np.eye(2), [1.0], np.eye(1))
    with pytest.raises(TypeError, match="params must be real"):
        propagate(exp_sin, ["a", "b"], np.eye(2))


def test_exception_in_f_propagates():
    def boom(p):
        raise KeyError("inside f")
    with pytest.raises(KeyError, match="inside f"):
        propagate(boom, [1.0], np.eye(1))
