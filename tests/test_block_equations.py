"""Block-compiled elementwise equations (DESIGN section 3): one call evaluates f and f' at a block
of elements. Checked against the per-element compiled path and the Python path, for several
block sizes and thread counts, and for the per-element statuses of failing blocks."""
import numpy as np
import pytest

import fastcalc.roots as roots
from fastcalc import Status, derivative, newton
from fastcalc._testfunctions import low_level

CUBE_BLOCK = low_level("cube_root_block")
KEPLER_BLOCK = low_level("kepler_block")
LOG_BLOCK = low_level("log_block")


def cube_problem(n=5_000, seed=3):
    rng = np.random.default_rng(seed)
    return rng.uniform(0.5, 1000.0, n), np.ones(n)


def kepler_problem(n=5_000, seed=4):
    rng = np.random.default_rng(seed)
    e, mean_anomaly = rng.uniform(0.0, 0.95, n), rng.uniform(0.0, 2 * np.pi, n)
    return e, mean_anomaly


def kepler(x, e, m):
    return x - e * np.sin(x) - m


def kepler_prime(x, e, m):
    return 1.0 - e * np.cos(x)


def same_fields(r, reference, fields=("x", "fun", "status", "nit")):
    for field in fields:
        np.testing.assert_array_equal(getattr(r, field), getattr(reference, field), err_msg=field)


def test_cube_roots_match_the_per_element_compiled_and_python_paths():
    a, x0 = cube_problem()
    block = newton(CUBE_BLOCK, x0, args=(a,), full_output=True)
    element = newton(low_level("cube_root_eq"), x0, low_level("cube_root_eq_prime"), args=(a,),
                     full_output=True)
    python = newton(lambda x, a: x**3 - a, x0, lambda x, a: 3 * x**2, args=(a,),
                    full_output=True)
    assert block.converged.all()
    # the same arithmetic per element: identical iterates, statuses and step counts
    same_fields(block, element)
    np.testing.assert_allclose(block.x, python.x, rtol=1e-12, atol=0)
    np.testing.assert_allclose(block.x, np.cbrt(a), rtol=1e-12, atol=0)
    # one call gives f and f': nfev counts the calls that included the element
    np.testing.assert_array_equal(block.nfev, block.nit + 1)


def test_kepler_matches_the_per_element_compiled_and_python_paths():
    e, m = kepler_problem()
    block = newton(KEPLER_BLOCK, m, args=(e, m), full_output=True)
    element = newton(low_level("kepler_eq"), m, low_level("kepler_eq_prime"), args=(e, m),
                     full_output=True)
    python = newton(kepler, m, kepler_prime, args=(e, m), full_output=True)
    assert block.converged.all()
    same_fields(block, element)
    np.testing.assert_allclose(block.x, python.x, rtol=1e-12, atol=1e-15)
    assert np.max(np.abs(kepler(block.x, e, m))) < 1e-13


def test_bracketed_kepler_matches_the_per_element_compiled_path():
    e, m = kepler_problem(3_000)
    ends = (np.zeros_like(m), np.full_like(m, 2 * np.pi))
    block = newton(KEPLER_BLOCK, None, args=(e, m), bracket=ends, full_output=True)
    element = newton(low_level("kepler_eq"), None, low_level("kepler_eq_prime"), args=(e, m),
                     bracket=ends, full_output=True)
    python = newton(kepler, None, kepler_prime, args=(e, m), bracket=ends, full_output=True)
    assert block.converged.all()
    same_fields(block, element)
    np.testing.assert_allclose(block.x, python.x, rtol=1e-12, atol=1e-15)
    assert np.max(np.abs(kepler(block.x, e, m))) < 1e-12


@pytest.mark.parametrize("bracketed", [False, True])
def test_results_do_not_depend_on_block_size_or_threads(monkeypatch, bracketed):
    e, m = kepler_problem(2_001)
    options = dict(args=(e, m), full_output=True)
    if bracketed:
        options["bracket"] = (np.zeros_like(m), np.full_like(m, 2 * np.pi))
    reference = newton(KEPLER_BLOCK, m, n_threads=1, **options)
    for size in (1, 7, 64, 512, 5_000):
        monkeypatch.setattr(roots, "_BLOCK_SIZE", size)
        for threads in (1, 2):
            result = newton(KEPLER_BLOCK, m, n_threads=threads, **options)
            same_fields(result, reference, ("x", "fun", "status", "nit", "nfev"))


def test_nan_in_a_block_gives_that_element_status_3_only(monkeypatch):
    monkeypatch.setattr(roots, "_BLOCK_SIZE", 4)
    a = np.array([8.0, np.nan, 27.0, 64.0, 1.0, 125.0])
    r = newton(CUBE_BLOCK, np.ones(6), args=(a,), full_output=True)
    np.testing.assert_array_equal(r.status, [0, Status.NON_FINITE, 0, 0, 0, 0])
    np.testing.assert_allclose(r.x[[0, 2, 3, 4, 5]], [2, 3, 4, 1, 5], rtol=1e-14)
    assert not r.converged[1]


def test_a_failing_block_gives_status_5_to_its_active_elements_only(monkeypatch):
    # log_block fails (returns 1) for a whole call when any x <= 0; from x0 = 20 Newton on
    # log(x) = 0 steps to 20 - 20 log 20 < 0, so only the block holding that element fails
    monkeypatch.setattr(roots, "_BLOCK_SIZE", 3)
    x0 = np.array([1.5, 2.0, 2.5, 1.2, 20.0, 0.8, 1.1, 0.9, 1.3])
    r = newton(LOG_BLOCK, x0, args=(np.zeros(9),), full_output=True)
    expected = np.zeros(9, dtype=int)
    expected[3:6] = Status.CALLBACK_ERROR
    np.testing.assert_array_equal(r.status, expected)
    np.testing.assert_allclose(r.x[expected == 0], 1.0, rtol=1e-14)
    assert np.isnan(r.fun[3:6]).all()
    assert (r.message[3:6] == "the user function reported an error").all()
    with pytest.warns(RuntimeWarning, match="3 of 9 elements did not converge"):
        newton(LOG_BLOCK, x0, args=(np.zeros(9),))


def test_failing_block_at_the_bracket_ends_gives_status_5():
    r = newton(LOG_BLOCK, None, args=(np.zeros(3),), bracket=(np.array([-1.0, 0.5, 0.5]), 3.0),
               full_output=True)
    np.testing.assert_array_equal(r.status, [Status.CALLBACK_ERROR] * 3)


def test_no_sign_change_message_uses_the_block_function():
    a = np.array([8.0, 1000.0])
    r = newton(CUBE_BLOCK, None, args=(a,), bracket=(np.zeros(2), 3.0), full_output=True)
    np.testing.assert_array_equal(r.status, [0, Status.OUT_OF_BOUNDS])
    assert r.message[1] == ("no sign change in the bracket [0.0, 3.0]: f(a) = -1000.0 and "
                            "f(b) = -973.0 have the same sign")


def test_scalar_x0_and_maxiter():
    assert abs(newton(CUBE_BLOCK, 1.0, args=(2.0,)) - 2.0 ** (1 / 3)) < 1e-15
    r = newton(CUBE_BLOCK, np.ones(3), args=(np.array([1e6, 8.0, 1.0]),), maxiter=3,
               full_output=True)
    np.testing.assert_array_equal(r.status, [Status.MAX_ITERATIONS, Status.MAX_ITERATIONS, 0])
    np.testing.assert_array_equal(r.nit, [3, 3, 0])


def test_read_only_and_non_contiguous_inputs_are_not_modified():
    a = np.repeat(np.arange(1.0, 11.0), 2)[::2]           # non-contiguous view
    x0 = np.ones(10)
    x0.flags.writeable = False
    a_before = a.copy()
    r = newton(CUBE_BLOCK, x0, args=(a,))
    np.testing.assert_allclose(r, np.cbrt(a_before), rtol=1e-14)
    np.testing.assert_array_equal(a, a_before)
    np.testing.assert_array_equal(x0, 1.0)


def test_block_functions_compute_their_own_derivative():
    a, x0 = cube_problem(5)
    with pytest.raises(TypeError, match="fprime and fprime2 must be None"):
        newton(CUBE_BLOCK, x0, low_level("cube_root_eq_prime"), args=(a,))
    with pytest.raises(ValueError, match="method='secant' is not available"):
        newton(CUBE_BLOCK, x0, args=(a,), method="secant")


def test_wrong_signature_lists_the_block_signature():
    with pytest.raises(TypeError, match=r"int f\(int n, const double \*x, int k, const double "
                                        r"\*p, double \*fx, double \*dfx, void \*user_data\)"):
        newton(low_level("vector_field"), np.ones(3))


@pytest.mark.parametrize("method", ["central", "richardson", "forward"])
def test_derivative_matches_the_per_element_function(method):
    x = np.linspace(0.0, 6.0, 1_500).reshape(3, 500)
    rng = np.random.default_rng(5)
    p = np.stack([rng.uniform(0, 0.9, x.shape), rng.uniform(0, 1, x.shape)], axis=-1)
    block = derivative(KEPLER_BLOCK, x, args=(p,), method=method, full_output=True)
    element = derivative(low_level("kepler_eq"), x, args=(p,), method=method, full_output=True)
    np.testing.assert_array_equal(block.df, element.df)
    np.testing.assert_array_equal(block.status, element.status)
    assert np.max(np.abs(block.df - (1 - p[..., 0] * np.cos(x)))) < 1e-8


def test_derivative_of_a_failing_block_is_not_a_success():
    # log_block fails for a whole call when any point is <= 0: every value of that call is
    # NaN, so the derivatives computed from it are NaN with status 3, never a success
    r = derivative(LOG_BLOCK, np.array([-1.0, 2.0]), args=(np.zeros((2, 1)),), full_output=True)
    np.testing.assert_array_equal(r.status, [Status.NON_FINITE] * 2)
    assert np.isnan(r.df).all()
    alone = derivative(LOG_BLOCK, np.array([0.5, 2.0]), args=(np.zeros((2, 1)),))
    np.testing.assert_allclose(alone, [2.0, 0.5], rtol=1e-8)


def test_numba_block_function():
    numba = pytest.importorskip("numba", reason="numba is optional")
    from numba import types
    from numba.core import cgutils
    from numba.extending import intrinsic

    @intrinsic
    def is_null(typingctx, pointer):
        def codegen(context, builder, signature, args):
            return cgutils.is_null(builder, args[0])
        return types.boolean(pointer), codegen

    double_p = types.CPointer(types.double)

    @numba.cfunc(types.intc(types.intc, double_p, types.intc, double_p, double_p, double_p,
                            types.voidptr))
    def kepler_numba(n, x, k, p, fx, dfx, user_data):
        if k != 2:
            return 1
        for i in range(n):
            fx[i] = x[i] - p[2 * i] * np.sin(x[i]) - p[2 * i + 1]
        if not is_null(dfx):
            for i in range(n):
                dfx[i] = 1.0 - p[2 * i] * np.cos(x[i])
        return 0

    e, m = kepler_problem(3_000)
    r = newton(kepler_numba, m, args=(e, m), full_output=True)
    reference = newton(KEPLER_BLOCK, m, args=(e, m), full_output=True)
    np.testing.assert_allclose(r.x, reference.x, rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(r.status, reference.status)
    x = np.linspace(0, 3, 200)
    p = np.stack([np.full(200, 0.3), np.zeros(200)], axis=-1)
    np.testing.assert_allclose(derivative(kepler_numba, x, args=(p,)), 1 - 0.3 * np.cos(x),
                               rtol=1e-9)
