"""newton_system from bad starts: the More-Garbow-Hillstrom systems against MINPACK's hybrd.

The dogleg trust region (the default method) must solve at least as many of the 54 MGH cases
(14 problems, MINPACK's dimensions, starts x0, 10 x0, 100 x0) as ``scipy.optimize.root(method=
"hybr")`` in the same run, and never report status 0 where ``||F||`` is not small.
"""
import numpy as np
import pytest

from fastcalc import newton_system
from fastcalc._mgh_systems import PROBLEMS, batches, cases, hybr_solves
from fastcalc._status import Status
from fastcalc._testfunctions import low_level

# max|F| at every status-0 answer (the largest seen is ~5e-14, Powell singular ~4e-16)
SOLVED_FTOL = 1e-10
# hybr's answer counts as solved at this max|F| (looser: it stops on a small step, xtol
# 1.49e-8 relative, and leaves up to ~1e-8 on Broyden's tridiagonal system)
HYBR_FTOL = 1e-8
# maxiter counts the dogleg's trial steps, accepted or not; the hardest case solved
# (Chebyquad n = 5 from 10 x0) takes ~540. hybr gets the same budget in evaluations of F per
# unknown (its default is 200 (n + 1) evaluations).
MAXITER = 1000


def test_dogleg_solves_at_least_as_many_mgh_systems_as_hybr():
    ours, hybr, report = 0, 0, []
    for key, F, X0 in batches():
        r = newton_system(F, X0, vectorized=True, maxiter=MAXITER)
        fmax = np.abs(r.fun).max(axis=1)
        # status 0 is a promise: F is small there, and fun is F at x
        assert np.all(fmax[r.status == 0] <= SOLVED_FTOL), (key, fmax, r.status)
        np.testing.assert_array_equal(r.fun, F(r.x.T).T)
        assert np.all(r.status[fmax > SOLVED_FTOL] != 0)
        ours += int(np.sum(r.status == 0))
        for x0, status in zip(X0, r.status):
            solved = hybr_solves(F, x0, HYBR_FTOL, maxfev=MAXITER * (x0.size + 1))
            hybr += solved
            report.append(f"{key} from {x0[:3]}...: fastcalc {status}, hybr "
                          f"{'solved' if solved else 'not'}")
    assert ours >= hybr, "\n".join(report)
    assert ours >= 40           # 41 measured: a regression would show here first


def test_mgh_systems_without_a_root_are_never_converged():
    # Chebyquad n = 8 has no root (min ||F|| > 0): every start ends with a non-zero status
    F, _ = PROBLEMS["chebyquad"]
    X0 = np.array([x0 for label, _, x0 in cases() if label.startswith("chebyquad(n=8)")])
    for method in ("dogleg", "newton"):
        r = newton_system(F, X0, vectorized=True, maxiter=MAXITER, method=method)
        assert np.all(r.status != 0) and not np.any(r.success)
        assert np.all(np.abs(r.fun).max(axis=1) > 1e-3)


def _numba_parabola():
    """F = (x0^2 - 1, x1) compiled (numba cfunc), J singular on x0 = 0."""
    numba = pytest.importorskip("numba")
    sig = numba.types.intc(numba.types.intc, numba.types.CPointer(numba.types.float64),
                           numba.types.intc, numba.types.CPointer(numba.types.float64),
                           numba.types.voidptr)

    @numba.cfunc(sig)
    def parabola(n, x, m, out, data):
        out[0] = x[0] * x[0] - 1.0
        out[1] = x[1]
        return 0
    return parabola


def _parabola(x):
    return np.array([x[0] ** 2 - 1.0, x[1]])


@pytest.mark.parametrize("kind", ["python", "vectorized", "compiled"])
def test_singular_jacobian_at_the_start_no_longer_ends_the_solve(kind):
    # J = [[2 x0, 0], [0, 1]] is singular at x0 = (0, 1); (0, 0) is a saddle of ||F||
    F = {"python": _parabola, "vectorized": lambda X: np.stack([X[0] ** 2 - 1.0, X[1]]),
         "compiled": _numba_parabola() if kind == "compiled" else None}[kind]
    x0 = np.array([[0.0, 1.0]])
    kw = dict(vectorized=kind == "vectorized")
    newton = newton_system(F, x0, method="newton", **kw)
    assert newton.status[0] == Status.SINGULAR
    r = newton_system(F, x0, **kw)
    assert r.status[0] == 0 and r.message[0] == "converged"
    np.testing.assert_allclose(np.abs(r.x[0]), [1.0, 0.0], atol=1e-15)
    assert np.abs(r.fun).max() <= 1e-15
    if kind == "compiled":      # same arithmetic as the Python function: the same iterates
        python = newton_system(_parabola, x0)
        for key in ("x", "fun", "status", "nit", "nfev"):
            np.testing.assert_array_equal(r[key], python[key])


def test_powell_singular_root_and_singular_start_points():
    # Powell's singular function: J is singular at the root; the dogleg converges to it
    F, _ = PROBLEMS["powell_singular"]
    r = newton_system(F, [3.0, -1.0, 0.0, 1.0])
    assert r.status == 0 and np.abs(r.x).max() < 1e-3 and np.abs(r.fun).max() < 1e-14
    # a start where every column but the first of J vanishes
    r = newton_system(lambda x: np.array([x[0] - 1.0, x[1] ** 2 + x[0] - 1.0]), [2.0, 0.0])
    assert r.status == 0 and np.abs(r.fun).max() < 1e-14


@pytest.mark.parametrize("name", ["rosenbrock", "powell_singular", "wood", "helical_valley",
                                  "powell_badly_scaled"])
def test_batch_results_equal_single_system_results(name):
    F, _ = PROBLEMS[name]
    starts = [x0 for label, _, x0 in cases() if label.startswith(name + "(")]
    X0 = np.array(starts)
    for vectorized in (False, True):
        batch = newton_system(F, X0, vectorized=vectorized, maxiter=MAXITER)
        for i, x0 in enumerate(starts):
            one = newton_system(F, x0[None, :] if vectorized else x0,
                                vectorized=vectorized, maxiter=MAXITER)
            for key in ("x", "fun", "status", "nit", "nfev"):
                np.testing.assert_array_equal(np.asarray(one[key]).reshape(
                    np.shape(batch[key][i])), batch[key][i])


@pytest.mark.parametrize("method", ["dogleg", "newton"])
def test_compiled_systems_do_not_depend_on_the_thread_count(rng, method):
    X0 = rng.uniform(-3, 3, (4001, 2))
    X0[::7] = 0.0                              # J singular at the start
    F, J = low_level("circle_exp_system"), low_level("circle_exp_jacobian")
    for jac in (None, J):
        one = newton_system(F, X0, jac, n_threads=1, method=method)
        two = newton_system(F, X0, jac, n_threads=2, method=method)
        for key in ("x", "fun", "status", "nit", "nfev"):
            np.testing.assert_array_equal(one[key], two[key])
        fmax = np.abs(one.fun).max(axis=1)
        assert np.all(fmax[one.status == 0] < 1e-13)
    # the dogleg solves the singular starts that stop Newton
    dogleg = newton_system(F, X0[::7], J)
    assert np.all(dogleg.status == 0)


def test_compiled_and_python_dogleg_agree(rng):
    X0 = rng.uniform(-3, 3, (200, 2))

    def circle_exp(x):
        return np.array([x[0] ** 2 + x[1] ** 2 - 4.0, np.exp(x[0]) + x[1] - 1.0])

    compiled = newton_system(low_level("circle_exp_system"), X0)
    python = newton_system(circle_exp, X0)
    np.testing.assert_array_equal(compiled.status, python.status)
    np.testing.assert_allclose(compiled.x, python.x, rtol=1e-13, atol=1e-15)


def test_method_is_checked():
    with pytest.raises(ValueError, match="method must be one of"):
        newton_system(_parabola, [0.0, 1.0], method="hybr")
    with pytest.raises(ValueError, match="method must be one of"):
        newton_system(_parabola, [0.0, 1.0], method=None)


def test_maxiter_counts_trial_steps_and_read_only_starts_are_untouched():
    x0 = np.array([-1.2, 1.0])
    x0.setflags(write=False)
    F, _ = PROBLEMS["rosenbrock"]
    r = newton_system(F, x0, maxiter=3)
    assert r.status == Status.MAX_ITERATIONS and r.nit == 3
    np.testing.assert_array_equal(x0, [-1.2, 1.0])
    X0 = np.array([[-1.2, 0.0, 1.0], [-12.0, 0.0, 10.0]])[:, ::2]     # non-contiguous rows
    r = newton_system(F, X0, vectorized=True)
    assert np.all(r.status == 0)
    np.testing.assert_allclose(r.x, 1.0, rtol=1e-14)


def test_trial_points_outside_the_domain_shrink_the_region():
    # log(x0) = 1, x1 = x0 from x0 = 100: the Newton step lands at x0 < 0 (F is NaN there);
    # the dogleg rejects it, shrinks the region and converges to (e, e)
    def F(x):
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.array([np.log(x[0]) - 1.0, x[1] - x[0]])

    newton_point = np.array([100.0, 0.0]) - np.linalg.solve([[0.01, 0.0], [-1.0, 1.0]],
                                                            F(np.array([100.0, 0.0])))
    assert newton_point[0] < 0
    r = newton_system(F, [100.0, 0.0])
    assert r.status == 0
    np.testing.assert_allclose(r.x, [np.e, np.e], rtol=1e-15)


@pytest.mark.parametrize("name", ["powell_singular", "wood"])
def test_compiled_mgh_systems_solve_like_the_python_ones(name):
    # the compiled functions write the Python ones' formulas (NumPy's scalar arithmetic
    # differs from C's in the last bits on a few iterates, so the paths agree to rounding)
    F, _ = PROBLEMS[name]
    X0 = np.array([x0 for label, _, x0 in cases() if label.startswith(name + "(")])
    python = newton_system(F, X0, maxiter=MAXITER)
    compiled = newton_system(low_level(f"{name}_system"), X0, maxiter=MAXITER)
    np.testing.assert_array_equal(compiled.status, python.status)
    assert np.all(compiled.status == 0)
    assert np.abs(compiled.fun).max() <= SOLVED_FTOL
    np.testing.assert_allclose(compiled.x, python.x, rtol=1e-10, atol=1e-7)
    many = np.repeat(X0, 40, axis=0)
    one = newton_system(low_level(f"{name}_system"), many, maxiter=MAXITER, n_threads=1)
    two = newton_system(low_level(f"{name}_system"), many, maxiter=MAXITER, n_threads=2)
    for key in ("x", "fun", "status", "nit", "nfev"):
        np.testing.assert_array_equal(one[key], two[key])
        np.testing.assert_array_equal(one[key][::40], compiled[key])


def test_dogleg_does_not_read_memory_it_has_not_written():
    # The compiled kernel's scratch comes from malloc. Poison freed chunks of every small size
    # with NaN so that the next allocations start as NaN: a step that multiplied a not yet
    # formed steepest-descent direction by 0 took NaN from there (status 2 at x0).
    import ctypes
    libc = ctypes.CDLL(None)
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    F = low_level("circle_exp_system")
    x0 = np.array([1.0, -1.5])
    clean = newton_system(F, x0, n_threads=1)
    assert clean.status == 0
    for size in range(8, 512, 8):
        chunks = [libc.malloc(size) for _ in range(64)]
        nan = np.full(size // 8, np.nan)
        for chunk in chunks:
            ctypes.memmove(chunk, nan.ctypes.data, size)
        for chunk in chunks:
            libc.free(chunk)
        r = newton_system(F, x0, n_threads=1)
        assert r.status == 0 and np.array_equal(r.x, clean.x), (size, r.status, r.x)
