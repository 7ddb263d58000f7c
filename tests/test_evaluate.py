"""The user-function layer: three kinds of function, one set of values, errors that name f."""
import numpy as np
import pytest
from scipy.optimize import rosen

from fastcalc._evaluate import FunctionKind, resolve
from fastcalc._testfunctions import low_level


@pytest.fixture
def points(rng):
    return rng.uniform(-2, 2, size=(7, 6))


def test_three_kinds_give_the_same_scalar_values(points):
    expected = np.array([rosen(p) for p in points])
    for f, kind in [(resolve(rosen), FunctionKind.PYTHON), (resolve(rosen, vectorized=True), FunctionKind.VECTORIZED),
                    (resolve(low_level("rosenbrock")), FunctionKind.COMPILED)]:
        assert f.kind == kind
        np.testing.assert_allclose(f.scalar_values(points), expected, rtol=1e-14)


def test_vectorized_receives_columns_as_points_in_one_call(points):
    calls = []

    def f(X):
        calls.append(X.shape)
        return X.sum(axis=0)

    values = resolve(f, vectorized=True).scalar_values(points)
    assert calls == [(6, 7)]
    np.testing.assert_allclose(values, points.sum(axis=1))


def test_compiled_vector_field_matches_python(points):
    n = points.shape[1]

    def field(x):
        i = np.arange(n)
        return x**2 * np.sin(x[(i + 1) % n]) + np.exp(x[(i - 1) % n]) * np.cos(x)

    compiled = resolve(low_level("vector_field")).vector_values(points, n)
    np.testing.assert_allclose(compiled, resolve(field).vector_values(points), rtol=1e-14)
    vec = resolve(lambda X: np.stack([field(c) for c in X.T], axis=1), vectorized=True)
    np.testing.assert_allclose(vec.vector_values(points), compiled, rtol=1e-14)


def test_compiled_failure_gives_nan_rows(points):
    values = resolve(low_level("failing_vector")).vector_values(points, 3)
    assert values.shape == (7, 3) and np.isnan(values).all()


def test_args_are_passed(points):
    f = resolve(lambda x, a, b: a * x.sum() + b, args=(2.0, 1.0))
    np.testing.assert_allclose(f.scalar_values(points), 2 * points.sum(axis=1) + 1)


def test_exception_in_callback_propagates_unchanged(points):
    class Boom(Exception):
        pass

    def f(x):
        raise Boom("from the user")

    with pytest.raises(Boom, match="from the user"):
        resolve(f).scalar_values(points)


@pytest.mark.parametrize("bad", [lambda x: np.ones(3), lambda x: "abc"])
def test_scalar_field_returning_garbage_is_a_clear_error(points, bad):
    with pytest.raises((ValueError, TypeError), match="f"):
        resolve(bad).scalar_values(points)


def test_vector_field_changing_shape_is_a_clear_error(points):
    sizes = iter([2, 3, 2, 2, 2, 2, 2])
    with pytest.raises(ValueError, match="shape"):
        resolve(lambda x: np.ones(next(sizes))).vector_values(points)


def test_vectorized_wrong_shape_is_a_clear_error(points):
    with pytest.raises(ValueError, match=r"f \(vectorized scalar field\) returned shape"):
        resolve(lambda X: X[:2], vectorized=True).scalar_values(points)


def test_not_callable_and_wrong_signature_are_type_errors():
    with pytest.raises(TypeError, match="must be callable"):
        resolve(3.0)
    with pytest.raises(TypeError, match="expected double f"):
        resolve(low_level("vector_field"), signatures=("scalar",))
    with pytest.raises(TypeError, match="args cannot be passed"):
        resolve(low_level("rosenbrock"), args=(1.0,))


def test_read_only_points_are_accepted_and_not_mutated(points):
    points.setflags(write=False)
    before = points.copy()
    resolve(low_level("rosenbrock")).scalar_values(points)
    np.testing.assert_array_equal(points, before)


def test_numba_cfunc_is_wrapped_automatically(points):
    numba = pytest.importorskip("numba", reason="numba is an optional dependency")
    from numba import types

    @numba.cfunc(types.double(types.intc, types.CPointer(types.double), types.voidptr))
    def first_times_two(n, x, user_data):
        return 2.0 * x[0]

    f = resolve(first_times_two)
    assert f.kind == FunctionKind.COMPILED
    np.testing.assert_allclose(f.scalar_values(points), 2 * points[:, 0])


@pytest.mark.parametrize("value", ["1.5", b"1", None, 1 + 2j, [None, None], ["1", "2"]],
                         ids=repr)
def test_one_rule_for_return_values(value):
    # real numbers only: no parsed strings, no None -> NaN, no dropped imaginary part
    points = np.ones((2, 2))
    match = "complex" if isinstance(value, complex) else "must return real numbers"
    for function in (resolve(lambda x: value).scalar_values,
                     resolve(lambda x: value, signatures=("vector",)).vector_values,
                     resolve(lambda X: [value] * X.shape[1], vectorized=True).scalar_values):
        with pytest.raises(TypeError, match=match):
            function(points)
    np.testing.assert_array_equal(resolve(lambda x: True).scalar_values(points), [1.0, 1.0])


def test_calling_at_one_point_never_changes_the_callers_x():
    numba = pytest.importorskip("numba", reason="numba is an optional dependency")
    from numba import types

    @numba.cfunc(types.double(types.intc, types.CPointer(types.double), types.voidptr))
    def scribble(n, x_ptr, user_data):      # writes through its double *x
        x = numba.carray(x_ptr, (n,))
        x[0] = 123.0
        return x[1]

    def mutate(x):
        value = float(x[1])
        x *= 2.0
        return value

    for function in (scribble, mutate):
        x = np.array([1.0, 2.0])
        assert resolve(function)(x) == 2.0
        np.testing.assert_array_equal(x, [1.0, 2.0])
        frozen = np.array([1.0, 2.0])
        frozen.flags.writeable = False       # read-only memory must never be written
        assert resolve(function)(frozen) == 2.0
