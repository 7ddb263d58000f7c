"""fastcalc.dask on a real local distributed cluster: the lazy batch routines must give exactly
the in-memory results, whatever the chunking and the scheduler."""
import importlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

da = pytest.importorskip("dask.array",
                         reason="fastcalc.dask needs dask (pip install fastcalc[dask])")
distributed = pytest.importorskip("distributed", reason="the cluster tests need distributed")
cloudpickle = pytest.importorskip("cloudpickle", reason="distributed depends on cloudpickle")

import fastcalc  # noqa: E402
import fastcalc.dask as fdask  # noqa: E402
from fastcalc import Status  # noqa: E402
from fastcalc._testfunctions import low_level  # noqa: E402
from fastcalc.models import gaussian, line  # noqa: E402

# The Python models below live in this test module, which the worker processes cannot import:
# send them by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])

FIT_FIELDS = ("params", "stderr", "cov", "chi2", "redchi2", "cost", "aic", "bic", "pvalue", "dof",
              "nit", "nfev", "status", "input_error", "success", "message", "residuals")
NEWTON_FIELDS = ("x", "root", "fun", "status", "converged", "success", "nit", "nfev", "message")


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=None)
    with distributed.Client(cluster) as dask_client:
        yield dask_client
    cluster.close()


def gaussian_data(rng, n, m=32):
    x = np.linspace(-3.0, 3.0, m)
    truth = np.column_stack([rng.uniform(1, 5, n), rng.uniform(-1, 1, n),
                             rng.uniform(0.4, 1.2, n), rng.uniform(-0.5, 0.5, n)])
    amplitude, centre, width, offset = (truth[:, k:k + 1] for k in range(4))
    Y = amplitude * np.exp(-(x - centre) ** 2 / (2 * width ** 2)) + offset
    return x, Y + rng.normal(0.0, 0.05, Y.shape)


def with_bad_rows(Y):
    """Row 1 all missing, row 2 with fewer points than parameters, row 3 all zero."""
    Y = Y.copy()
    Y[1] = np.nan
    Y[2, 2:] = np.nan
    Y[3] = 0.0
    return Y


def assert_same(computed, expected, fields):
    for name in fields:
        got, want = np.asarray(getattr(computed, name)), np.asarray(getattr(expected, name))
        assert got.shape == want.shape, name
        if want.dtype.kind in "fc":
            assert got.dtype == want.dtype, name
        np.testing.assert_array_equal(got, want, err_msg=name)


# ------------------------------------------------------------------------------------------
# fit_batch

def test_fit_batch_on_cluster_equals_in_memory_with_bad_rows(client, rng):
    x, Y = gaussian_data(rng, 700)
    Y = with_bad_rows(Y)
    Y_before = Y.copy()
    lazy = fdask.fit_batch(gaussian, x, da.from_array(Y, chunks=((300, 150, 250), 32)))
    assert lazy.params.shape == (700, 4) and lazy.cov.shape == (700, 4, 4)
    assert lazy.params.chunks[0] == (300, 150, 250)
    result = lazy.compute()
    expected = fastcalc.fit_batch(gaussian, x, Y)
    assert type(result) is type(expected)
    assert_same(result, expected, FIT_FIELDS)
    assert np.count_nonzero(result.status == Status.SUCCESS) >= 690
    assert result.status[1] != Status.SUCCESS and result.status[2] != Status.SUCCESS
    np.testing.assert_array_equal(Y, Y_before)


def test_fit_batch_fields_are_the_in_memory_fields(rng):
    x, Y = gaussian_data(rng, 10)
    lazy = fdask.fit_batch(gaussian, x, da.from_array(Y, chunks=5))
    expected = fastcalc.fit_batch(gaussian, x, Y)
    for name in FIT_FIELDS:
        assert hasattr(expected, name)
        array = getattr(lazy, name)
        assert isinstance(array, da.Array)
        want = np.asarray(getattr(expected, name))
        assert array.shape == want.shape, name
        if want.dtype != object:
            assert array.dtype == want.dtype, name


def test_fit_batch_per_dataset_inputs_as_dask_and_numpy(client, rng):
    x, Y = gaussian_data(rng, 300)
    X = x + rng.uniform(-0.01, 0.01, Y.shape)
    sigma = rng.uniform(0.04, 0.06, Y.shape)
    p0 = np.column_stack([np.full(300, 3.0), np.zeros(300), np.full(300, 0.8), np.zeros(300)])
    lazy = fdask.fit_batch(gaussian, da.from_array(X, chunks=(100, 16)),
                           da.from_array(Y, chunks=(120, 16)), p0,
                           sigma=da.from_array(sigma, chunks=(50, 32)), absolute_sigma=True)
    result = lazy.compute()
    expected = fastcalc.fit_batch(gaussian, X, Y, p0, sigma=sigma, absolute_sigma=True)
    assert_same(result, expected, FIT_FIELDS)


def test_fit_batch_shared_inputs_as_dask_and_single_rows(rng):
    x, Y = gaussian_data(rng, 120)
    sigma_row = rng.uniform(0.04, 0.06, (1, 32))          # one row: shared by every dataset
    p0 = np.array([3.0, 0.0, 0.8, 0.0])
    lazy = fdask.fit_batch(gaussian, da.from_array(x, chunks=10), da.from_array(Y, chunks=50),
                           da.from_array(p0, chunks=2), sigma=sigma_row)
    expected = fastcalc.fit_batch(gaussian, x, Y, p0, sigma=sigma_row)
    assert_same(lazy.compute(scheduler="threads"), expected, FIT_FIELDS)


def test_fit_batch_threaded_and_synchronous_schedulers(rng):
    x, Y = gaussian_data(rng, 400)
    Y = with_bad_rows(Y)
    lazy = fdask.fit_batch(gaussian, x, da.from_array(Y, chunks=((90, 10, 300), 32)))
    expected = fastcalc.fit_batch(gaussian, x, Y)
    assert_same(lazy.compute(scheduler="threads", num_workers=2), expected, FIT_FIELDS)
    assert_same(lazy.compute(scheduler="synchronous"), expected, FIT_FIELDS)
    # every kernel thread count gives the same answer
    threaded = fdask.fit_batch(gaussian, x, da.from_array(Y, chunks=100), n_threads=2)
    assert_same(threaded.compute(scheduler="threads"), expected, FIT_FIELDS)


def test_fit_batch_numpy_input_and_columns_chunked(rng):
    x, Y = gaussian_data(rng, 50)
    expected = fastcalc.fit_batch(gaussian, x, Y)
    from_numpy = fdask.fit_batch(gaussian, x, Y)
    assert from_numpy.params.numblocks == (1, 1)
    assert_same(from_numpy.compute(scheduler="synchronous"), expected, FIT_FIELDS)
    split_columns = fdask.fit_batch(gaussian, da.from_array(x, chunks=8),
                                    da.from_array(Y, chunks=(20, 8)))
    assert split_columns.residuals.chunks == ((20, 20, 10), (32,))
    assert_same(split_columns.compute(scheduler="synchronous"), expected, FIT_FIELDS)


def python_line(x, a, b):
    return a + b * x


def test_python_model_on_cluster_equals_in_memory(client, rng):
    x = np.linspace(0.0, 2.0, 12)
    Y = 1.5 + 0.5 * x + rng.normal(0, 0.01, (90, 12))
    Y[7] = np.nan
    lazy = fdask.fit_batch(python_line, x, da.from_array(Y, chunks=40), p0=[1.0, 1.0])
    assert lazy.params.shape == (90, 2)
    expected = fastcalc.fit_batch(python_line, x, Y, p0=[1.0, 1.0])
    assert_same(lazy.compute(), expected, FIT_FIELDS)
    assert expected.status[7] != Status.SUCCESS


# A built-in exception type: an exception class defined here would be re-created when it comes
# back from a worker (this module is pickled by value), so pytest.raises could not match it.
def exploding_model(x, a, b):
    if np.any(a > 100.0):
        raise FloatingPointError("the model cannot handle a > 100")
    return a + b * x


def test_python_model_that_raises_surfaces_at_compute(client):
    x = np.linspace(0.0, 1.0, 10)
    Y = da.from_array(np.vstack([1.0 + x] * 20), chunks=5)
    lazy = fdask.fit_batch(exploding_model, x, Y, p0=[1000.0, 0.0])   # building is lazy
    with pytest.raises(FloatingPointError, match="cannot handle"):
        lazy.compute()
    with pytest.raises(FloatingPointError, match="cannot handle"):
        lazy.compute(scheduler="threads")


def test_compiled_model_on_threads_and_cluster(client, rng):
    x, Y = gaussian_data(rng, 240)
    Y = with_bad_rows(Y)
    p0 = [3.0, 0.0, 0.8, 0.0]
    expected = fastcalc.fit_batch(low_level("gaussian_model"), x, Y, p0)
    direct = fdask.fit_batch(low_level("gaussian_model"), x, da.from_array(Y, chunks=100), p0)
    assert direct.param_names == ("p0", "p1", "p2", "p3")
    assert_same(direct.compute(scheduler="threads"), expected, FIT_FIELDS)
    with pytest.raises(TypeError, match="model is a compiled callable.*cannot be sent"):
        direct.compute()
    recipe = fdask.fit_batch(fdask.compiled(low_level, "gaussian_model"), x,
                             da.from_array(Y, chunks=100), p0)
    assert_same(recipe.compute(), expected, FIT_FIELDS)
    assert np.count_nonzero(expected.success) >= 236
    with pytest.raises(ValueError, match="p0 is required"):
        fdask.fit_batch(low_level("gaussian_model"), x, da.from_array(Y, chunks=100))


def test_gaussian_2d_with_shared_and_per_dataset_coordinates(client, rng):
    from fastcalc.models import gaussian_2d
    grid = np.stack([g.ravel() for g in np.meshgrid(np.linspace(-2, 2, 7), np.linspace(-2, 2, 7))])
    truth = np.column_stack([rng.uniform(1, 3, 60), rng.uniform(-0.5, 0.5, 60),
                             rng.uniform(-0.5, 0.5, 60), rng.uniform(0.6, 1.0, 60),
                             np.full(60, 0.1)])
    Y = np.array([gaussian_2d(grid, *p) for p in truth]) + rng.normal(0, 0.01, (60, 49))
    shared = fdask.fit_batch(gaussian_2d, grid, da.from_array(Y, chunks=25))
    assert_same(shared.compute(), fastcalc.fit_batch(gaussian_2d, grid, Y), FIT_FIELDS)
    per_dataset = np.broadcast_to(grid, (60, 2, 49)) + rng.uniform(-0.01, 0.01, (60, 2, 49))
    lazy = fdask.fit_batch(gaussian_2d, da.from_array(per_dataset, chunks=(20, 1, 49)),
                           da.from_array(Y, chunks=25))
    expected = fastcalc.fit_batch(gaussian_2d, per_dataset, Y)
    assert_same(lazy.compute(scheduler="threads"), expected, FIT_FIELDS)
    np.testing.assert_allclose(expected.params, truth, atol=0.05)


def test_residuals_computed_with_the_fits_or_on_demand(client, rng):
    x, Y = gaussian_data(rng, 90)
    Y[5, :4] = np.nan
    expected = fastcalc.fit_batch(gaussian, x, Y)
    lazy = fdask.fit_batch(gaussian, x, da.from_array(Y, chunks=40))
    eager = lazy.compute(residuals=True)
    assert_same(eager, expected, FIT_FIELDS)
    assert np.isnan(eager.residuals[5, :4]).all()
    on_demand = lazy.compute(scheduler="threads")
    for i in (0, 5, 89):                  # one dataset: computes only its chunk
        got, want = on_demand[i], expected[i]
        np.testing.assert_array_equal(got.residuals, want.residuals)
        np.testing.assert_array_equal(got.params, want.params)
    assert lazy.method == "lm" and lazy.param_names == gaussian.param_names


def test_fit_batch_input_errors():
    x = np.linspace(0.0, 1.0, 8)
    with pytest.raises(ValueError, match="Y is empty"):
        fdask.fit_batch(line, x, da.zeros((0, 8), chunks=4))
    with pytest.raises(ValueError, match="Y is empty"):
        fdask.fit_batch(line, x[:0], np.zeros((3, 0)))
    with pytest.raises(ValueError, match="Y must be 2-D"):
        fdask.fit_batch(line, x, da.zeros(8, chunks=4))
    with pytest.raises(ValueError, match="x has 5 rows but there are 6 datasets"):
        fdask.fit_batch(line, np.zeros((5, 8)), da.zeros((6, 8), chunks=3))
    with pytest.raises(ValueError, match="sigma has 5 rows"):
        fdask.fit_batch(line, x, da.zeros((6, 8), chunks=3), sigma=da.ones((5, 8)))
    with pytest.raises(ValueError, match="unknown chunk sizes"):
        Y = da.ones((6, 8), chunks=3)
        fdask.fit_batch(line, x, Y[Y[:, 0] > 0])
    with pytest.raises(ValueError, match="p0 is required"):
        fdask.fit_batch(lambda x, *p: x, x, da.ones((6, 8), chunks=3))
    with pytest.raises(TypeError, match="progress"):
        fdask.fit_batch(line, x, da.ones((6, 8), chunks=3), progress=True)


# ------------------------------------------------------------------------------------------
# newton

def cube_root_equation(x, c):
    return x ** 3 - c


def cube_root_derivative(x, c):
    return 3.0 * x ** 2


def test_newton_python_on_cluster_equals_in_memory(client, rng):
    c = rng.uniform(0.5, 20.0, (30, 40))
    c[0, :5] = np.nan                      # NaN parameters: not converged, a status
    x0 = np.full(c.shape, 2.0)
    x0[1, 3] = 0.0                         # zero derivative at the start
    lazy = fdask.newton(cube_root_equation, da.from_array(x0, chunks=(7, 25)),
                        cube_root_derivative, args=(da.from_array(c, chunks=(10, 10)),))
    assert lazy.x.shape == (30, 40) and lazy.x.chunks == ((7, 7, 7, 7, 2), (25, 15))
    result = lazy.compute()
    expected = fastcalc.newton(cube_root_equation, x0, cube_root_derivative, args=(c,),
                               full_output=True)
    assert_same(result, expected, NEWTON_FIELDS)
    assert not result.converged[0, :5].any() and result.converged[2:].all()
    np.testing.assert_allclose(result.x[2:], np.cbrt(c[2:]), rtol=1e-12)


def test_newton_fields_are_the_in_memory_fields():
    lazy = fdask.newton(cube_root_equation, da.ones((4, 3), chunks=2), args=(2.0,))
    expected = fastcalc.newton(cube_root_equation, np.ones((4, 3)), args=(2.0,), full_output=True)
    assert set(expected) == set(NEWTON_FIELDS)
    for name in NEWTON_FIELDS:
        array = getattr(lazy, name)
        assert isinstance(array, da.Array) and array.shape == (4, 3), name
        if expected[name].dtype != object:
            assert array.dtype == expected[name].dtype, name


def test_newton_shared_and_broadcast_args_and_bracket(rng):
    c = rng.uniform(1.0, 8.0, 50)
    lazy = fdask.newton(lambda x, c, s: s * (x ** 3 - c), da.ones(50, chunks=12), args=(c, 2.0),
                        bracket=(0.0, np.full(50, 3.0)))
    expected = fastcalc.newton(lambda x, c, s: s * (x ** 3 - c), np.ones(50), args=(c, 2.0),
                               bracket=(0.0, np.full(50, 3.0)), full_output=True)
    assert_same(lazy.compute(scheduler="threads"), expected, NEWTON_FIELDS)
    np.testing.assert_allclose(expected.x, np.cbrt(c), rtol=1e-7)
    with pytest.raises(ValueError, match=r"args\[0\] of shape \(3,\) does not broadcast"):
        fdask.newton(cube_root_equation, da.ones(50, chunks=12), args=(np.ones(3),))


def raising_equation(x, c):
    raise FloatingPointError("equation failed")


def test_newton_exception_surfaces_and_input_errors(client):
    lazy = fdask.newton(raising_equation, da.ones(8, chunks=4), args=(1.0,))
    with pytest.raises(FloatingPointError, match="equation failed"):
        lazy.compute()
    with pytest.raises(ValueError, match="x0 is empty"):
        fdask.newton(cube_root_equation, da.ones(0, chunks=4), args=(1.0,))
    with pytest.raises(ValueError, match="at least one dimension"):
        fdask.newton(cube_root_equation, da.from_array(np.float64(1.0)), args=(1.0,))


def test_compiled_function_on_threads_and_cluster(client, rng):
    c = rng.uniform(0.5, 20.0, 200)
    x0 = np.full(200, 2.0)
    expected = fastcalc.newton(low_level("cube_root_eq"), x0, low_level("cube_root_eq_prime"),
                               args=(c,), full_output=True)
    # the LowLevelCallable itself: fine in this process (threads), a clear error on the cluster
    direct = fdask.newton(low_level("cube_root_eq"), da.from_array(x0, chunks=64),
                          low_level("cube_root_eq_prime"), args=(c,))
    assert_same(direct.compute(scheduler="threads"), expected, NEWTON_FIELDS)
    with pytest.raises(TypeError, match="cannot be sent to another process.*compiled"):
        direct.compute()
    # a recipe: each worker builds the callable itself
    recipe = fdask.newton(fdask.compiled(low_level, "cube_root_eq"), da.from_array(x0, chunks=64),
                          fdask.compiled(low_level, "cube_root_eq_prime"), args=(c,))
    assert_same(recipe.compute(), expected, NEWTON_FIELDS)
    assert_same(recipe.compute(scheduler="threads"), expected, NEWTON_FIELDS)


# ------------------------------------------------------------------------------------------
# packaging

def test_lazy_result_persist_and_repr(client, rng):
    x, Y = gaussian_data(rng, 40)
    lazy = fdask.fit_batch(gaussian, x, da.from_array(Y, chunks=15))
    assert repr(lazy).startswith("<DaskBatchFitResult: (40,) problems in 3 chunks")
    persisted = lazy.persist()
    assert isinstance(persisted, fdask.DaskBatchFitResult)
    assert_same(persisted.compute(), fastcalc.fit_batch(gaussian, x, Y), FIT_FIELDS)
    with pytest.raises(AttributeError):
        lazy.no_such_field


def test_persist_runs_the_fits_once():
    calls = []

    def counting_line(x, a, b):
        calls.append(1)
        return a + b * x

    x = np.linspace(0.0, 1.0, 10)
    Y = da.from_array(np.vstack([1.0 + 2.0 * x] * 30), chunks=10)
    lazy = fdask.fit_batch(counting_line, x, Y, p0=[0.0, 0.0])
    assert not calls                                   # building the graph runs nothing
    persisted = lazy.persist(scheduler="threads")
    fitted = len(calls)
    assert fitted > 0
    result = persisted.compute(scheduler="threads")
    params = persisted.params.compute(scheduler="threads")
    assert len(calls) == fitted                        # no refit
    np.testing.assert_array_equal(params, result.params)
    np.testing.assert_allclose(result.params, np.tile([1.0, 2.0], (30, 1)), atol=1e-8)


def test_compiled_recipe_validation():
    with pytest.raises(TypeError, match="factory must be callable"):
        fdask.compiled("cube_root_eq")
    recipe = fdask.compiled(low_level, "cube_root_eq")
    assert recipe.build() is recipe.build()           # built once per process
    copy = cloudpickle.loads(cloudpickle.dumps(recipe))
    assert copy.build().signature == recipe.build().signature


def test_missing_dask_gives_install_hint(monkeypatch):
    monkeypatch.delitem(sys.modules, "fastcalc.dask")
    for name in [m for m in sys.modules if m == "dask" or m.startswith("dask.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "dask", None)
    with pytest.raises(ImportError, match=r"pip install fastcalc\[dask\]"):
        importlib.import_module("fastcalc.dask")


def test_core_never_imports_dask():
    code = ("import sys, pkgutil, importlib, fastcalc\n"
            "for m in pkgutil.iter_modules(fastcalc.__path__):\n"
            "    if m.name not in ('dask', '__main__'):\n"
            "        importlib.import_module('fastcalc.' + m.name)\n"
            "assert 'dask' not in sys.modules, sorted(m for m in sys.modules if 'dask' in m)\n")
    subprocess.run([sys.executable, "-c", code], check=True,
                   cwd=Path(fastcalc.__file__).resolve().parents[1])


def python_line(x, a, b):
    return a + b * x


@pytest.mark.parametrize("x_per_dataset", [None, True])
def test_python_model_per_dataset_x_does_not_depend_on_the_chunks(rng, x_per_dataset):
    # each chunk used to decide the layout of x from its own row count: a 2-row chunk was
    # "ambiguous", and the residuals ignored x_per_dataset (failing for chunks of 4, 2, 1)
    x = np.linspace(0.0, 1.0, 12)
    X = np.stack([x * (1.0 + 0.1 * k) for k in range(8)])
    Y = np.stack([(k + 1.0) * (1.0 + 2.0 * x) + 0.01 * rng.standard_normal(12)
                  for k in range(8)])
    expected = fastcalc.fit_batch(python_line, X, Y, [0.0, 0.0])
    for rows in (8, 4, 3, 2, 1):
        lazy = fdask.fit_batch(python_line, X, da.from_array(Y, chunks=(rows, 12)), [0.0, 0.0],
                               x_per_dataset=x_per_dataset)
        result = lazy.compute(residuals=True, scheduler="synchronous")
        assert_same(result, expected, FIT_FIELDS)
    with pytest.raises(ValueError, match="ambiguous"):   # decided from the whole Y, at once
        fdask.fit_batch(python_line, X[:2], da.from_array(Y[:2], chunks=(1, 12)), [0.0, 0.0])


def test_dataset_with_invalid_inputs_gets_its_status_with_any_chunking(rng):
    x, Y = gaussian_data(rng, 6)
    Y[4, 2] = np.inf
    sigma = np.full(Y.shape, 0.05)
    sigma[1, 0] = 0.0
    expected = fastcalc.fit_batch(gaussian, x, Y, sigma=sigma)
    assert list(expected.status) == [0, 3, 0, 0, 3, 0]
    for rows in (6, 4, 1):
        lazy = fdask.fit_batch(gaussian, x, da.from_array(Y, chunks=(rows, -1)), sigma=sigma)
        assert_same(lazy.compute(residuals=True, scheduler="synchronous"), expected, FIT_FIELDS)
        assert "Y contains inf" in lazy.message[4].compute(scheduler="synchronous")


def test_fit_batch_one_dimensional_numpy_y_names_its_shape():
    # a 1-D NumPy Y was chunked by rows first: "Chunks do not add up to shape"
    with pytest.raises(ValueError, match=r"Y must be 2-D \(one dataset per row\), got shape"):
        fdask.fit_batch(line, np.arange(5.0), np.arange(5.0))


@pytest.mark.parametrize("options", [dict(cost="poisson"), dict(loss="huber", f_scale=2.0)])
def test_fit_batch_estimators_equal_in_memory(options):
    """cost, loss and f_scale reach every chunk; cost, aic, bic, pvalue as in memory."""
    rng = np.random.default_rng(4)
    x = np.linspace(-3, 3, 32)
    Y = rng.poisson(gaussian(x, 8.0, 0.2, 1.0, 1.0), size=(9, x.size)).astype(float)
    lazy = fastcalc.dask.fit_batch(gaussian, x, da.from_array(Y, chunks=(4, -1)), **options)
    result = lazy.compute(scheduler="synchronous")
    expected = fastcalc.fit_batch(gaussian, x, Y, **options)
    for name in ("params", "cov", "cost", "chi2", "aic", "bic", "pvalue", "status"):
        np.testing.assert_array_equal(getattr(result, name), getattr(expected, name))
        np.testing.assert_array_equal(getattr(lazy, name).compute(scheduler="synchronous"),
                                      getattr(expected, name))
    assert result.estimator == expected.estimator == options.get("loss", "poisson")
