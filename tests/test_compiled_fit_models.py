"""Compiled fit models that write their own Jacobian, and models.compiled (named parameters).

The reference is the Python-callable path with the same analytic Jacobian (the same algorithm
on the same numbers: answers to 1e-12), the built-in models, and SciPy's curve_fit."""
import numpy as np
import pytest
from scipy.optimize import curve_fit

import fastcalc as fc
from fastcalc import models
from fastcalc._status import Status
from fastcalc._testfunctions import low_level

X = np.linspace(-4.0, 4.0, 40)
X_DECAY = np.linspace(0.0, 5.0, 30)


def gaussian(x, A, mu, s, c):
    return A * np.exp(-0.5 * ((x - mu) / s) ** 2) + c


def gaussian_jac(x, A, mu, s, c):
    d = (x - mu) / s
    e = np.exp(-0.5 * d * d)
    return e, A * e * d / s, A * e * d * d / s, np.ones_like(d * A)


def decay(x, A, tau, c):
    return A * np.exp(-x / tau) + c


def gaussian_data(rng, N=50):
    truth = np.column_stack([rng.uniform(1, 3, N), rng.uniform(-1, 1, N),
                             rng.uniform(0.6, 1.5, N), rng.uniform(-0.5, 0.5, N)])
    Y = gaussian(X, *truth.T[:, :, None]) + rng.normal(0, 0.05, (N, X.size))
    return truth, Y


def decay_data(rng, N=50):
    truth = np.column_stack([rng.uniform(1, 3, N), rng.uniform(0.5, 2.0, N),
                             rng.uniform(-0.5, 0.5, N)])
    Y = decay(X_DECAY, *truth.T[:, :, None]) + rng.normal(0, 0.02, (N, X_DECAY.size))
    return truth, Y


def test_gaussian_with_jacobian_matches_python_path(rng):
    truth, Y = gaussian_data(rng)
    p0 = truth * 1.1 + 0.05
    compiled = fc.fit_batch(low_level("gaussian_model_and_jac"), X, Y, p0)
    python = fc.fit_batch(gaussian, X, Y, p0, jac=gaussian_jac)
    assert (compiled.status == 0).all() and (python.status == 0).all()
    np.testing.assert_allclose(compiled.params, python.params, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(compiled.stderr, python.stderr, rtol=1e-9)
    np.testing.assert_allclose(compiled.chi2, python.chi2, rtol=1e-10)
    # one call per evaluation (values and J together), not 1 + 4 for forward differences
    values_only = fc.fit_batch(low_level("gaussian_model"), X, Y, p0)
    assert (compiled.nfev < values_only.nfev).all()
    np.testing.assert_allclose(values_only.params, compiled.params, rtol=1e-6, atol=1e-8)


def test_exponential_with_jacobian_matches_builtin_and_curve_fit(rng):
    truth, Y = decay_data(rng, N=20)
    r = fc.fit_batch(low_level("exponential_model_and_jac"), X_DECAY, Y, truth * 0.8)
    builtin = fc.fit_batch(models.exponential, X_DECAY, Y, truth * 0.8)
    assert (r.status == 0).all()
    np.testing.assert_allclose(r.params, builtin.params, rtol=1e-9, atol=1e-12)
    for i in range(3):
        ref, cov = curve_fit(decay, X_DECAY, Y[i], truth[i] * 0.8, xtol=1e-14, ftol=1e-14)
        np.testing.assert_allclose(r.params[i], ref, rtol=1e-7)
        np.testing.assert_allclose(r.stderr[i], np.sqrt(np.diag(cov)), rtol=1e-5)


def test_thread_count_does_not_change_results(rng):
    truth, Y = gaussian_data(rng, N=64)
    one = fc.fit_batch(low_level("gaussian_model_and_jac"), X, Y, truth, n_threads=1)
    two = fc.fit_batch(low_level("gaussian_model_and_jac"), X, Y, truth, n_threads=2)
    np.testing.assert_array_equal(one.params, two.params)
    np.testing.assert_array_equal(one.cov, two.cov)


def test_failures_are_per_dataset_statuses(rng):
    truth, Y = decay_data(rng, N=3)
    p0 = truth.copy()
    p0[1, 1] = 0.0       # tau = 0: the function returns -1 at the start
    r = fc.fit_batch(low_level("exponential_model_and_jac"), X_DECAY, Y, p0)
    assert r.status.tolist() == [Status.SUCCESS, Status.CALLBACK_ERROR, Status.SUCCESS]
    assert np.isnan(r.stderr[1]).all()
    single = fc.fit_batch(low_level("exponential_model_and_jac"), X_DECAY, Y[[0, 2]],
                          p0[[0, 2]])
    np.testing.assert_array_equal(single.params, r.params[[0, 2]])
    with pytest.warns(RuntimeWarning, match="did not converge"):
        assert not fc.fit(low_level("exponential_model_and_jac"), X_DECAY, Y[1], p0[1]).success


def test_missing_points_and_read_only_inputs(rng):
    truth, Y = gaussian_data(rng, N=4)
    Y[:, ::5] = np.nan
    x = np.repeat(X, 2)[::2]           # a non-contiguous x
    Y.setflags(write=False)
    p0 = truth.copy()
    p0.setflags(write=False)
    before = Y.copy()
    r = fc.fit_batch(low_level("gaussian_model_and_jac"), x, Y, p0)
    python = fc.fit_batch(gaussian, X, np.array(Y), p0, jac=gaussian_jac)
    np.testing.assert_allclose(r.params, python.params, rtol=1e-12, atol=1e-14)
    np.testing.assert_array_equal(Y, before)
    assert (r.dof == X.size - X.size // 5 - 4).all()


def test_jac_argument_is_refused_for_a_model_with_jacobian():
    with pytest.raises(ValueError, match="jac is not used"):
        fc.fit(low_level("gaussian_model_and_jac"), X, gaussian(X, 1, 0, 1, 0),
               [1.0, 0.0, 1.0, 0.0], jac=low_level("gaussian_model_jac"))


def test_wrong_signature_lists_both_model_signatures():
    with pytest.raises(TypeError, match=r"double \*jac") as info:
        fc.fit(low_level("vector_field"), X, X, [1.0])
    assert "int f(int npts, double *x, int nparams, double *params, double *out, void" \
        in str(info.value)


# ---- numba cfuncs --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def numba_models():
    numba = pytest.importorskip("numba", reason="numba is optional")
    from numba import carray, types
    sig = types.intc(types.intc, types.CPointer(types.double), types.intc,
                     types.CPointer(types.double), types.CPointer(types.double),
                     types.CPointer(types.double), types.voidptr)

    @numba.cfunc(sig)
    def gauss(npts, x_, nparams, p_, out_, jac_, user_data):
        x, p, out = carray(x_, npts), carray(p_, nparams), carray(out_, npts)
        jac = carray(jac_, (npts, nparams))
        want_jac = jac.ctypes.data != 0
        inverse = 1.0 / p[2]
        for i in range(npts):
            d = (x[i] - p[1]) * inverse
            e = np.exp(-0.5 * d * d)
            out[i] = p[0] * e + p[3]
            if want_jac:
                jac[i, 0] = e
                jac[i, 1] = p[0] * e * d * inverse
                jac[i, 2] = p[0] * e * d * d * inverse
                jac[i, 3] = 1.0
        return 0

    @numba.cfunc(sig)
    def failing(npts, x_, nparams, p_, out_, jac_, user_data):
        p, out = carray(p_, nparams), carray(out_, npts)
        jac = carray(jac_, (npts, nparams))
        for i in range(npts):
            out[i] = p[0]
            if jac.ctypes.data != 0:
                jac[i, 0] = 1.0
        return 1 if p[0] < 0 else 0      # an error for a negative first parameter

    @numba.cfunc(sig)
    def nan_jacobian(npts, x_, nparams, p_, out_, jac_, user_data):
        x, p, out = carray(x_, npts), carray(p_, nparams), carray(out_, npts)
        jac = carray(jac_, (npts, nparams))
        for i in range(npts):
            out[i] = p[0] + p[1] * x[i]
            if jac.ctypes.data != 0:
                jac[i, 0] = np.nan
                jac[i, 1] = x[i]
        return 0

    return gauss, failing, nan_jacobian


def test_numba_model_with_jacobian_matches_cython(rng, numba_models):
    gauss = numba_models[0]
    truth, Y = gaussian_data(rng, N=20)
    r = fc.fit_batch(gauss, X, Y, truth * 1.1)
    ref = fc.fit_batch(low_level("gaussian_model_and_jac"), X, Y, truth * 1.1)
    np.testing.assert_allclose(r.params, ref.params, rtol=1e-12, atol=1e-14)
    assert (r.nfev == ref.nfev).all()


def test_numba_failures(numba_models):
    _, failing, nan_jacobian = numba_models
    Y = np.array([np.full(X.size, 1.0), np.full(X.size, -1.0)])
    r = fc.fit_batch(failing, X, Y, np.array([[1.0], [-1.0]]))
    assert r.status.tolist() == [Status.SUCCESS, Status.CALLBACK_ERROR]
    r = fc.fit_batch(nan_jacobian, X, Y, [0.5, 0.0])
    assert (r.status == Status.NON_FINITE).all() and not r.success.any()


# ---- models.compiled -----------------------------------------------------------------------

def test_compiled_names_parameters_everywhere(rng):
    model = models.compiled(low_level("gaussian_model_and_jac"), ["A", "mu", "sigma", "c"])
    truth, Y = gaussian_data(rng, N=5)
    r = fc.fit_batch(model, X, Y, truth)
    assert r.param_names == ("A", "mu", "sigma", "c")
    assert list(r.to_dataframe().columns[:2]) == ["A", "mu"]
    held = fc.fit_batch(model, X, Y, truth, fixed=["c"])
    np.testing.assert_array_equal(held.params[:, 3], truth[:, 3])
    single = fc.fit(model, X, Y[0], truth[0])
    assert "sigma" in single.report()
    limits = np.asarray(single.conf_interval(params=["mu"]))
    assert limits.shape == (1, 2) and limits[0, 0] < single.params[1] < limits[0, 1]
    lower, upper = single.band(X[:5])
    assert np.all(lower < upper)
    assert single.simulate(3, rng=1).shape == (3, X.size)
    # the same answers as the unnamed callable
    bare = fc.fit_batch(low_level("gaussian_model_and_jac"), X, Y, truth)
    np.testing.assert_array_equal(r.params, bare.params)


def test_compiled_values_only_model_and_call():
    model = models.compiled(low_level("gaussian_model"), ("A", "mu", "sigma", "c"))
    assert not model.has_jacobian and model.nparams == 4
    np.testing.assert_allclose(model(X, 2.0, 0.5, 1.2, 0.1), gaussian(X, 2.0, 0.5, 1.2, 0.1),
                               rtol=1e-14)
    r = fc.fit(model, X, gaussian(X, 2.0, 0.5, 1.2, 0.1), [1.5, 0.0, 1.0, 0.0])
    assert r.param_names == ("A", "mu", "sigma", "c")
    np.testing.assert_allclose(r.params, [2.0, 0.5, 1.2, 0.1], rtol=1e-9, atol=1e-10)


def test_compiled_guess_is_used_per_dataset(rng):
    calls = []

    def guess(x, y):
        calls.append(len(y))
        return models.gaussian.guess(x, y)

    model = models.compiled(low_level("gaussian_model_and_jac"), "A mu sigma c".split(),
                            guess=guess)
    truth, Y = gaussian_data(rng, N=4)
    Y[1, :3] = np.nan
    Y[2] = np.nan                                 # too few points: not guessed, status 2
    r = fc.fit_batch(model, X, Y)
    assert calls == [X.size, X.size - 3, X.size]
    assert r.status.tolist() == [0, 0, Status.SINGULAR, 0]
    builtin = fc.fit_batch(models.gaussian, X, Y)
    np.testing.assert_allclose(r.params[[0, 1, 3]], builtin.params[[0, 1, 3]], rtol=1e-9)


def test_compiled_bad_arguments():
    f = low_level("gaussian_model_and_jac")
    with pytest.raises(ValueError, match="p0 is required"):
        fc.fit(models.compiled(f, "A mu sigma c".split()), X, X)
    with pytest.raises(TypeError, match="func"):
        models.compiled(low_level("rosenbrock"), ["a"])
    with pytest.raises(TypeError, match="compiled callable"):
        models.compiled(gaussian, ["A", "mu", "sigma", "c"])
    with pytest.raises(ValueError, match="distinct"):
        models.compiled(f, ["a", "a", "b", "c"])
    with pytest.raises(TypeError, match="guess"):
        models.compiled(f, ["a", "b", "c", "d"], guess=3)
    with pytest.raises(ValueError, match="x_dim"):
        models.compiled(f, ["a", "b", "c", "d"], x_dim=0)
    with pytest.raises(AttributeError):
        models.compiled(f, ["a", "b", "c", "d"]).x_dim = 2


def test_compiled_model_over_dask(rng):
    da = pytest.importorskip("dask.array", reason="dask is optional")
    from fastcalc import dask as fdask
    model = models.compiled(low_level("gaussian_model_and_jac"), "A mu sigma c".split())
    truth, Y = gaussian_data(rng, N=40)
    lazy = fdask.fit_batch(model, X, da.from_array(Y, chunks=15), truth)
    assert lazy.param_names == ("A", "mu", "sigma", "c")
    direct = fc.fit_batch(model, X, Y, truth)
    np.testing.assert_array_equal(lazy.compute().params, direct.params)


# ---- Python-model batches: the Jacobian's points in the call that evaluates the trial ------

def test_python_batch_matches_one_fit_per_dataset(rng):
    """fit_batch evaluates each trial point and its forward-difference points in one call and
    takes the Jacobian from it when the step is accepted; fit calls the model once per point
    and per parameter. Same steps, same columns: the same answers, also from a poor start
    (rejected trials), with missing points and bounds."""
    truth, Y = gaussian_data(rng, N=6)
    Y[:, ::7] = np.nan
    p0 = truth * np.array([0.5, 1.0, 2.0, 1.0]) + np.array([0.0, 0.8, 0.0, 0.3])
    bounds = ([0.0, -3.0, 0.1, -1.0], [10.0, 3.0, 5.0, 1.0])
    batch = fc.fit_batch(gaussian, X, Y, p0, bounds=bounds)
    assert (batch.status == 0).all()
    for i in range(len(Y)):
        one = fc.fit(gaussian, X, Y[i], p0[i], bounds=bounds)
        np.testing.assert_allclose(batch.params[i], one.params, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(batch.stderr[i], one.stderr, rtol=1e-10)
        assert batch.nit[i] == one.nit


@pytest.mark.parametrize("options", [dict(cost="poisson"), dict(loss="huber", f_scale=2.0)],
                         ids=["poisson", "huber"])
def test_estimators_with_a_compiled_jacobian(rng, options):
    truth = np.column_stack([rng.uniform(10, 30, 4), rng.uniform(-1, 1, 4),
                             rng.uniform(0.8, 1.5, 4), rng.uniform(1, 3, 4)])
    Y = rng.poisson(gaussian(X, *truth.T[:, :, None])).astype(float)
    if "loss" in options:
        Y[:, ::9] += 25.0                           # outliers
        options = dict(options, sigma=np.sqrt(np.maximum(Y, 1.0)))
    compiled = fc.fit_batch(low_level("gaussian_model_and_jac"), X, Y, truth, **options)
    python = fc.fit_batch(gaussian, X, Y, truth, jac=gaussian_jac, **options)
    assert (compiled.status == 0).all()
    np.testing.assert_allclose(compiled.params, python.params, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(compiled.cost, python.cost, rtol=1e-10)
