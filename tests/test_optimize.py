"""fastcalc.gradient_descent and fastcalc.lagrange against exact answers and SciPy."""
import warnings

import numpy as np
import pytest
from scipy.optimize import NonlinearConstraint, minimize, rosen, rosen_der

from fastcalc import Status, gradient_descent, hessian, lagrange
from fastcalc._testfunctions import low_level

SQRT_HALF = np.sqrt(0.5)


# ---------------------------------------------------------------- gradient descent

def quadratic_problem(rng, n=4):
    Q = rng.normal(size=(n, n))
    A = Q @ Q.T + n * np.eye(n)          # well conditioned, positive definite
    b = rng.normal(size=n)
    return A, b, np.linalg.solve(A, b)


def test_quadratic_minimum_exact_with_and_without_gradient(rng):
    A, b, exact = quadratic_problem(rng)
    f = lambda x, A, b: 0.5 * x @ A @ x - b @ x          # noqa: E731
    grad = lambda x, A, b: A @ x - b                      # noqa: E731
    with_grad = gradient_descent(f, np.zeros(4), grad, args=(A, b), tol=1e-8)
    fd = gradient_descent(f, np.zeros(4), args=(A, b), tol=1e-8)
    assert with_grad.success and fd.success
    # |x - x*| <= |grad| / lambda_min(A) and lambda_min(A) >= 4
    np.testing.assert_allclose(with_grad.x, exact, rtol=0, atol=1e-8)
    np.testing.assert_allclose(fd.x, exact, rtol=0, atol=1e-8)
    np.testing.assert_array_equal(with_grad.jac, grad(with_grad.x, A, b))
    assert np.abs(with_grad.jac).max() <= 1e-8
    assert with_grad.fun == pytest.approx(f(exact, A, b), rel=1e-14)
    assert fd.nfev > fd.njev * 2 * 4      # finite differences are counted as evaluations


def test_rosenbrock_matches_scipy_minimize():
    ref = minimize(rosen, [-1.2, 1.0], jac=rosen_der, method="BFGS", tol=1e-12)
    r = gradient_descent(rosen, [-1.2, 1.0], rosen_der, maxiter=100_000, tol=1e-8)
    assert r.success and r.status == 0 and r.message == "converged"
    np.testing.assert_allclose(r.x, ref.x, atol=1e-7)
    np.testing.assert_allclose(r.x, [1.0, 1.0], atol=1e-7)
    compiled = gradient_descent(low_level("rosenbrock"), [-1.2, 1.0], rosen_der,
                                maxiter=100_000, tol=1e-8)
    np.testing.assert_array_equal(compiled.x, r.x)


def test_fixed_step_converges_or_diverges_honestly():
    f = lambda x: (x[0] - 1.0) ** 2 + 10.0 * (x[1] + 2.0) ** 2       # noqa: E731
    grad = lambda x: np.array([2 * (x[0] - 1.0), 20 * (x[1] + 2.0)])  # noqa: E731
    r = gradient_descent(f, [0.0, 0.0], grad, step=0.04, maxiter=1000, tol=1e-10)
    assert r.success
    np.testing.assert_allclose(r.x, [1.0, -2.0], atol=1e-10)
    # x1 is multiplied by (1 - 20 t) each step: exact iterates for t = 0.04
    r = gradient_descent(f, [0.0, 0.0], grad, step=0.04, maxiter=3)
    assert r.status == Status.MAX_ITERATIONS and r.nit == 3
    np.testing.assert_allclose(r.x, [1 - 0.92**3, -2 + 2 * 0.2**3], rtol=1e-14)
    with np.errstate(over="ignore", invalid="ignore"):
        r = gradient_descent(f, [0.0, 0.0], grad, step=0.2, maxiter=10_000)   # |1 - 20t| > 1
    assert r.status == Status.NON_FINITE and not r.success


def test_path_and_callback():
    f = lambda x: (x[0] - 1.0) ** 2 + 10.0 * (x[1] + 2.0) ** 2   # noqa: E731
    seen = []
    r = gradient_descent(f, [0.0, 0.0], return_path=True, callback=seen.append, tol=1e-6)
    assert r.path.shape == (r.nit + 1, 2)
    np.testing.assert_array_equal(r.path[0], [0.0, 0.0])
    np.testing.assert_array_equal(r.path[-1], r.x)
    values = [f(p) for p in r.path]
    assert all(b < a for a, b in zip(values, values[1:]))     # Armijo: strictly decreasing
    assert len(seen) == r.nit
    np.testing.assert_array_equal(seen[-1], r.x)
    assert "path" not in gradient_descent(f, [0.0, 0.0])


def test_callback_and_function_errors_propagate():
    class Stop(Exception):
        pass

    def callback(x):
        raise Stop("enough")

    with pytest.raises(Stop, match="enough"):
        gradient_descent(lambda x: x @ x, [1.0, 2.0], callback=callback)
    with pytest.raises(ZeroDivisionError):
        gradient_descent(lambda x: 1 / 0, [1.0, 2.0])


def _within(seconds, function):
    """function() run on a daemon thread; fails (instead of hanging) if it does not return."""
    import threading
    out = []

    def run():
        with np.errstate(over="ignore", invalid="ignore"):      # f overflows on purpose
            out.append(function())

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(seconds)
    assert out, f"did not return within {seconds} s"
    return out[0]


def test_huge_gradient_norm_neither_hangs_nor_stalls():
    # |grad|^2 overflows (|grad| ~ 1e160): the line search used to test t * sqrt(inf) (NaN)
    # and spin forever; now it scales |grad| and converges like an ordinary quadratic
    f = lambda x: 1e160 * (x @ x)            # noqa: E731
    for grad in (None, lambda x: 2e160 * x):
        r = _within(20, lambda: gradient_descent(f, [1.0, -2.0], grad, tol=1e150))
        assert r.status == 0 and np.abs(r.x).max() <= 1e150 / 2e160
    # gradient too large for any tolerance: an honest status after maxiter steps
    r = _within(20, lambda: gradient_descent(lambda x: 1e155 * x[0]**2, [1.0], maxiter=3))
    assert r.status == Status.MAX_ITERATIONS and r.nit == 3 and abs(r.x[0]) < 1.0


def test_functions_that_modify_their_x_do_not_change_the_iterate():
    # f used to receive a writable view of the iterate: `x *= 2` moved the solver
    def scaled_sum(x):
        value = x[0] + x[1]
        x *= 2.0
        return value

    r = lagrange(scaled_sum, lambda x: x[0]**2 + x[1]**2 - 1.0, [1.0, 0.5])
    assert r.status == 0
    np.testing.assert_allclose(r.x, [SQRT_HALF, SQRT_HALF], rtol=1e-12)
    np.testing.assert_allclose(r.constraints, [r.x @ r.x - 1.0], atol=1e-15)

    def bowl(x):
        value = (x[0] - 1.0)**2 + 10.0 * (x[1] + 2.0)**2
        x *= 2.0
        return value

    for grad in (None, lambda x: np.array([2 * (x[0] - 1.0), 20 * (x[1] + 2.0)])):
        r = gradient_descent(bowl, [0.0, 0.0], grad, tol=1e-8)
        assert r.status == 0
        np.testing.assert_allclose(r.x, [1.0, -2.0], rtol=1e-8)
        assert r.fun == (r.x[0] - 1.0)**2 + 10.0 * (r.x[1] + 2.0)**2


def test_gradient_descent_bad_input():
    f = lambda x: x @ x    # noqa: E731
    with pytest.raises(ValueError, match="x0"):
        gradient_descent(f, np.ones((2, 2)))
    with pytest.raises(ValueError, match="step"):
        gradient_descent(f, [1.0], step=-0.1)
    with pytest.raises(ValueError, match="grad returned shape"):
        gradient_descent(f, [1.0, 2.0], lambda x: np.ones(3))
    with pytest.raises(TypeError, match="grad must be callable"):
        gradient_descent(f, [1.0, 2.0], grad=3)
    with pytest.raises(ValueError, match="maxiter"):
        gradient_descent(f, [1.0, 2.0], maxiter=-1)
    x0 = np.array([1.0, 2.0])
    x0.flags.writeable = False
    r = gradient_descent(f, x0)
    np.testing.assert_array_equal(x0, [1.0, 2.0])
    assert r.success and np.abs(r.x).max() < 1e-6
    r = gradient_descent(lambda x: np.nan, [1.0])
    assert r.status == Status.NON_FINITE


# ---------------------------------------------------------------- lagrange

def circle(x):
    return x[0] ** 2 + x[1] ** 2 - 1.0


def test_extremize_sum_on_circle_to_1e10():
    f = lambda x: x[0] + x[1]    # noqa: E731
    top = lagrange(f, circle, [1.0, 0.5])
    bottom = lagrange(f, circle, [-1.0, -0.5])
    assert top.success and bottom.success
    np.testing.assert_allclose(top.x, [SQRT_HALF, SQRT_HALF], atol=1e-10)
    np.testing.assert_allclose(top.multipliers, [SQRT_HALF], atol=1e-10)   # 1 = lambda 2x
    np.testing.assert_allclose(bottom.x, [-SQRT_HALF, -SQRT_HALF], atol=1e-10)
    np.testing.assert_allclose(bottom.multipliers, [-SQRT_HALF], atol=1e-10)
    assert top.fun == pytest.approx(np.sqrt(2), abs=1e-10)
    assert abs(top.constraints[0]) < 1e-10 and top.residual < 1e-10


def test_product_with_sum_constraint_to_1e10():
    # f = xyz on x + y + z = 1: stationary at (1/3, 1/3, 1/3) with lambda = yz = 1/9
    r = lagrange(lambda x: x[0] * x[1] * x[2], lambda x: x.sum() - 1.0, [0.3, 0.4, 0.2])
    assert r.success
    np.testing.assert_allclose(r.x, [1 / 3] * 3, atol=1e-10)
    np.testing.assert_allclose(r.multipliers, [1 / 9], atol=1e-10)


def test_two_constraints_exact_minimum_norm_point():
    # minimize |x|^2 on A x = b: x = A^T (A A^T)^-1 b, lambda = 2 (A A^T)^-1 b
    A = np.array([[1.0, 2.0, 1.0], [2.0, -1.0, -3.0]])
    b = np.array([1.0, 4.0])
    exact_x = A.T @ np.linalg.solve(A @ A.T, b)
    exact_lambda = 2 * np.linalg.solve(A @ A.T, b)
    as_list = lagrange(lambda x: x @ x, [lambda x: A[0] @ x - b[0], lambda x: A[1] @ x - b[1]],
                       np.zeros(3))
    as_vector = lagrange(lambda x, A, b: x @ x, lambda x, A, b: A @ x - b, np.zeros(3),
                         args=(A, b))
    for r in (as_list, as_vector):
        assert r.success
        np.testing.assert_allclose(r.x, exact_x, atol=1e-10)
        np.testing.assert_allclose(r.multipliers, exact_lambda, atol=1e-10)


def test_multipliers_match_trust_constr_and_points_match_slsqp():
    # a minimum (so that SciPy's minimizers find the same point): -(x + y) on the circle
    f = lambda x: -(x[0] + x[1])     # noqa: E731
    ours = lagrange(f, circle, [1.0, 0.5])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)     # trust-constr on a linear objective
        tc = minimize(f, [1.0, 0.5], method="trust-constr",
                      constraints=[NonlinearConstraint(circle, 0.0, 0.0)])
    slsqp = minimize(f, [1.0, 0.5], method="SLSQP", constraints=[{"type": "eq", "fun": circle}])
    # trust-constr's Lagrangian is f + v g: its multipliers are ours with the opposite sign
    np.testing.assert_allclose(ours.multipliers, -np.concatenate(tc.v), atol=1e-6)
    np.testing.assert_allclose(ours.x, tc.x, atol=1e-6)
    np.testing.assert_allclose(ours.x, slsqp.x, atol=1e-5)
    # and ours is the more accurate: exact answer to 1e-10
    np.testing.assert_allclose(ours.x, [SQRT_HALF, SQRT_HALF], atol=1e-10)
    np.testing.assert_allclose(ours.multipliers, [-SQRT_HALF], atol=1e-10)


def test_lagrange_with_given_derivatives_and_compiled_f():
    A = np.array([[1.0, 1.0, 1.0, 1.0]])
    r = lagrange(low_level("rosenbrock"), lambda x: A @ x - 2.0, np.ones(4) * 0.5,
                 grad=rosen_der, constraints_jac=lambda x: A)
    ref = minimize(rosen, np.ones(4) * 0.5, jac=rosen_der, method="SLSQP",
                   constraints=[{"type": "eq", "fun": lambda x: A @ x - 2.0}], tol=1e-14)
    assert r.success
    np.testing.assert_allclose(r.x, ref.x, atol=1e-6)
    np.testing.assert_allclose(rosen_der(r.x), r.multipliers[0] * A[0], atol=1e-9)


def test_lagrange_scaled_problems_are_not_singular():
    # cond(KKT) grows like scale^2: an absolute threshold on it called these singular
    # (status 2, x unchanged); SLSQP and the exact answer: x = (0.5, 0.5)
    plain = lambda x: x[0]**2 + x[1]**2                    # noqa: E731
    line = lambda x: x[0] + x[1] - 1.0                     # noqa: E731
    ref = minimize(plain, [0.3, 0.1], method="SLSQP", tol=1e-12,
                   constraints={"type": "eq", "fun": line}).x
    for scale_f, scale_g in ((1e8, 1.0), (1e12, 1.0), (1.0, 1e-8), (1e7, 1e-8), (1.0, 1e8)):
        r = lagrange(lambda x: scale_f * plain(x), lambda x: scale_g * line(x), [0.3, 0.1])
        assert r.status == 0, (scale_f, scale_g)
        np.testing.assert_allclose(r.x, [0.5, 0.5], rtol=1e-10)
        np.testing.assert_allclose(r.x, ref, rtol=1e-6)
        np.testing.assert_allclose(r.multipliers, [scale_f / scale_g], rtol=1e-8)


def test_bad_arguments_name_themselves():
    # used to give numpy's or Python's raw errors, only a ComplexWarning, or accept strings
    f = lambda x: x @ x           # noqa: E731
    for name in ("step", "tol"):
        for bad in ("a", 1j, True, [0.1]):
            with pytest.raises(TypeError, match=f"^{name} must be a real number"):
                gradient_descent(f, [1.0], **{name: bad})
    with pytest.raises(TypeError, match="^tol must be a real number"):
        lagrange(f, lambda x: x[0] - 1.0, [1.0, 2.0], tol="a")
    with pytest.raises(TypeError, match="callback must be callable"):
        gradient_descent(f, [1.0], callback=5)
    with pytest.raises(TypeError, match="f must return (one )?real number"):
        gradient_descent(lambda x: "1.0", [1.0], grad=lambda x: 2 * x)
    g = lambda x: x[0] + x[1] - 1.0           # noqa: E731
    for kw in (dict(multipliers0="a"), dict(multipliers0=[1j]),
               dict(constraints_jac=lambda x: np.array([[1 + 0j, 1.0]])),
               dict(constraints_jac=lambda x: "ab")):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with pytest.raises(TypeError, match=next(iter(kw))):
                lagrange(f, g, [0.3, 0.1], **kw)


def test_lagrange_statuses_and_bad_input():
    f = lambda x: x[0] + x[1]    # noqa: E731
    # two copies of one constraint: the KKT matrix is singular
    r = lagrange(f, [circle, circle], [1.0, 0.5, 0.0][:2] + [0.0])
    assert r.status == Status.SINGULAR
    r = lagrange(f, circle, [1.0, 0.5], maxiter=1)
    assert r.status == Status.MAX_ITERATIONS and r.nit == 1
    r = lagrange(lambda x: np.nan, circle, [1.0, 0.5])
    assert r.status == Status.NON_FINITE
    with pytest.raises(ValueError, match="constraints"):
        lagrange(f, [circle, circle], [1.0, 0.5])          # m = n
    with pytest.raises(ValueError, match="constraints returned shape"):
        lagrange(f, lambda x: np.ones((2, 2)), [1.0, 0.5, 0.2])
    with pytest.raises(TypeError, match="constraints"):
        lagrange(f, 3.0, [1.0, 0.5])
    with pytest.raises(ValueError, match="multipliers0"):
        lagrange(f, circle, [1.0, 0.5], multipliers0=[1.0, 2.0])
    with pytest.raises(ValueError, match="x0"):
        lagrange(f, circle, [[1.0, 0.5]])
    with pytest.raises(KeyError):
        lagrange(lambda x: {}["missing"], circle, [1.0, 0.5])
    x0 = np.array([1.0, 0.5])
    x0.flags.writeable = False
    lagrange(f, circle, x0)
    np.testing.assert_array_equal(x0, [1.0, 0.5])


def test_lagrange_a_large_multiplier_does_not_loosen_the_test_on_x():
    # the step test used max(1, |x|, |lambda|) for everything: a multiplier of 1e12 made it an
    # absolute 100 on x (status 0 after one step, x = (0, 4.0007, -2.0007))
    for scale in (1e9, 1e12):
        r = lagrange(lambda x: scale * x[0] + np.exp(x[1]) + np.exp(x[2]),
                     [lambda x: x[0], lambda x: x[1] + x[2] - 2.0], [0.0, 5.0, -3.0])
        assert r.status == 0
        np.testing.assert_allclose(r.x, [0.0, 1.0, 1.0], atol=1e-10)
        np.testing.assert_allclose(r.multipliers, [scale, np.e], rtol=1e-10)


# ---------------------------------------------------------------- lagrange: second-order test

def exact_curvature(H, J):
    """Eigenvalues of the exact Hessian of the Lagrangian on the null space of J."""
    tangent = np.linalg.svd(J)[2][J.shape[0]:].T
    return np.linalg.eigvalsh(tangent.T @ H @ tangent)


@pytest.mark.parametrize("f, g, x0, H, J, kind, x_exact", [
    # x^2 + y^2 on x + y = 1: the minimum (1/2, 1/2)
    (lambda x: x @ x, lambda x: x.sum() - 1.0, [0.3, 0.1], 2 * np.eye(2), np.ones((1, 2)),
     "minimum", [0.5, 0.5]),
    # xy on x + y = 2: the maximum (1, 1)
    (lambda x: x[0] * x[1], lambda x: x.sum() - 2.0, [0.3, 0.1], np.array([[0.0, 1.0],
                                                                          [1.0, 0.0]]),
     np.ones((1, 2)), "maximum", [1.0, 1.0]),
    # x^2 + y^2 - z^2 on x + y + z = 1: stationary at (1, 1, -1) (lambda = 2), a saddle
    (lambda x: x[0] ** 2 + x[1] ** 2 - x[2] ** 2, lambda x: x.sum() - 1.0, [0.2, 0.5, 0.1],
     np.diag([2.0, 2.0, -2.0]), np.ones((1, 3)), "saddle", [1.0, 1.0, -1.0]),
    # two constraints, four variables: x0^2 - x1^2 + x2^2 + 3 x3^2 on sum = 1, x0 = x3
    (lambda x: x[0] ** 2 - x[1] ** 2 + x[2] ** 2 + 3 * x[3] ** 2,
     lambda x: np.array([x.sum() - 1.0, x[0] - x[3]]), [0.1, 0.2, 0.3, 0.4],
     np.diag([2.0, -2.0, 2.0, 6.0]), np.array([[1.0, 1, 1, 1], [1, 0, 0, -1]]), "saddle",
     None),
    # the minimum-norm point on two planes
    (lambda x: x @ x, [lambda x: x[0] + 2 * x[1] + x[2] - 1.0,
                       lambda x: 2 * x[0] - x[1] - 3 * x[2] - 4.0], np.zeros(3),
     2 * np.eye(3), np.array([[1.0, 2, 1], [2, -1, -3]]), "minimum", None),
])
def test_lagrange_classifies_textbook_stationary_points(f, g, x0, H, J, kind, x_exact):
    r = lagrange(f, g, x0)
    assert r.status == 0 and r.kind == kind
    # quadratic f, linear g: the Hessian of the Lagrangian is H, whatever the multipliers
    exact = exact_curvature(H, J)
    np.testing.assert_allclose(r.curvature, exact, rtol=1e-7, atol=1e-8)
    assert (np.abs(r.curvature - exact) <= r.curvature_error).all()
    assert r.curvature_error < 1e-6 * np.abs(exact).min()
    if x_exact is not None:
        np.testing.assert_allclose(r.x, x_exact, atol=1e-10)
    # asking for the kind found changes nothing; asking for another, which none of these
    # problems has (unbounded), is never success
    for wanted in ("minimum", "maximum"):
        other = lagrange(f, g, x0, kind=wanted, maxiter=20)
        if wanted == kind:
            np.testing.assert_array_equal(other.x, r.x)
            assert other.status == 0 and other.message == "converged"
        else:
            assert other.status == Status.MAX_ITERATIONS and other.kind == kind


def test_lagrange_xyz_on_sphere_gives_the_minimum_asked_for():
    # the issue: xyz on x^2 + y^2 + z^2 = 3 from near (1, 1, 1) converged to the maximum
    # f = 1 there with nothing saying so; minima f = -1 at the points with an odd number of -1
    f = lambda x: x[0] * x[1] * x[2]        # noqa: E731
    sphere = lambda x: x @ x - 3.0            # noqa: E731
    x0 = [1.2, 0.9, 1.1]
    plain = lagrange(f, sphere, x0)
    assert plain.status == 0 and plain.kind == "maximum"
    np.testing.assert_allclose(plain.x, [1.0, 1.0, 1.0], atol=1e-10)
    # H of the Lagrangian (lambda = 1/2) on the tangent plane x + y + z = 0: -2 I
    np.testing.assert_allclose(plain.curvature, [-2.0, -2.0], rtol=1e-7)
    r = lagrange(f, sphere, x0, kind="minimum")
    assert r.status == 0 and r.kind == "minimum" and r.message == "converged"
    np.testing.assert_allclose(np.abs(r.x), 1.0, atol=1e-10)
    assert r.fun == pytest.approx(-1.0, abs=1e-10)
    np.testing.assert_allclose(r.curvature, [2.0, 2.0], rtol=1e-7)
    # SLSQP finds a minimum of the same value, and started next to ours stays at ours
    cons = [{"type": "eq", "fun": sphere}]
    ref = minimize(f, x0, method="SLSQP", constraints=cons, tol=1e-12)
    assert r.fun == pytest.approx(ref.fun, abs=1e-8)
    near = minimize(f, r.x + [0.05, -0.03, 0.02], method="SLSQP", constraints=cons, tol=1e-12)
    np.testing.assert_allclose(r.x, near.x, atol=1e-5)
    # and the maximum when asked for, from a start that reaches a minimum
    r = lagrange(f, sphere, [-1.2, 0.9, 1.1], kind="maximum")
    assert r.status == 0 and r.kind == "maximum" and r.fun == pytest.approx(1.0, abs=1e-10)
    near = minimize(lambda x: -f(x), r.x + [0.05, -0.03, 0.02], method="SLSQP",
                    constraints=cons, tol=1e-12)
    np.testing.assert_allclose(r.x, near.x, atol=1e-5)


def test_lagrange_maximum_asked_for_from_a_saddle_matches_slsqp():
    # xyz on x + y + z = 3: from (2.5, 0.3, 0.2) Newton reaches the saddle (3, 0, 0)
    f = lambda x: x[0] * x[1] * x[2]        # noqa: E731
    plane = lambda x: x.sum() - 3.0           # noqa: E731
    plain = lagrange(f, plane, [2.5, 0.3, 0.2])
    assert plain.status == 0 and plain.kind == "saddle"
    np.testing.assert_allclose(plain.x, [3.0, 0.0, 0.0], atol=1e-10)
    r = lagrange(f, plane, [2.5, 0.3, 0.2], kind="maximum")
    ref = minimize(lambda x: -f(x), [2.5, 0.3, 0.2], method="SLSQP",
                   constraints=[{"type": "eq", "fun": plane}], tol=1e-12)
    assert r.status == 0 and r.kind == "maximum"
    np.testing.assert_allclose(r.x, [1.0, 1.0, 1.0], atol=1e-10)
    np.testing.assert_allclose(r.x, ref.x, atol=1e-5)
    np.testing.assert_allclose(r.multipliers, [1.0], atol=1e-10)


@pytest.mark.parametrize("kind", ["minimum", "maximum"])
def test_lagrange_extremum_on_circle_matches_slsqp(kind):
    f = lambda x: x[0] + 2.0 * x[1]          # noqa: E731
    sign = 1.0 if kind == "minimum" else -1.0
    for x0 in ([1.0, 0.5], [-1.0, -0.5], [0.2, -0.9]):
        r = lagrange(f, circle, x0, kind=kind)
        ref = minimize(lambda x: sign * f(x), x0, method="SLSQP",
                       constraints=[{"type": "eq", "fun": circle}], tol=1e-12)
        assert r.status == 0 and r.kind == kind
        # exact: -+(1, 2) / sqrt(5)
        np.testing.assert_allclose(r.x, -sign * np.array([1.0, 2.0]) / np.sqrt(5), atol=1e-10)
        np.testing.assert_allclose(r.x, ref.x, atol=1e-5)


@pytest.mark.parametrize("f, g, x0, kind, x_exact", [
    (lambda x: x[0] + x[1], circle, [SQRT_HALF, SQRT_HALF], "minimum", [-SQRT_HALF] * 2),
    (lambda x: x[0] * x[1] * x[2], lambda x: x @ x - 3.0, [1.0, 1.0, 1.0], "minimum", None),
    (lambda x: x[0] * x[1] * x[2], lambda x: x.sum() - 3.0, [3.0, 0.0, 0.0], "maximum",
     [1.0, 1.0, 1.0]),
])
def test_lagrange_started_at_a_stationary_point_of_another_kind_restarts(f, g, x0, kind,
                                                                         x_exact):
    # x0 is the maximum / maximum / saddle: no step leaves it (the gradient of the Lagrangian
    # is 0), so only the restarts along its directions of wrong curvature can find the kind
    r = lagrange(f, g, x0, kind=kind)
    assert r.status == 0 and r.kind == kind
    assert r.message.startswith(f"converged to a {kind} from restart 1 (Newton-Raphson from "
                                "x0 reached a ")
    sign = 1.0 if kind == "minimum" else -1.0
    ref = minimize(lambda x: sign * f(x), r.x + 0.03, method="SLSQP", tol=1e-12,
                   constraints=[{"type": "eq", "fun": g}])
    np.testing.assert_allclose(r.x, ref.x, atol=1e-5)     # a local minimum (maximum)
    if x_exact is not None:
        np.testing.assert_allclose(r.x, x_exact, atol=1e-10)
    else:                                # xyz on the sphere: (+-1, +-1, +-1), product -1
        np.testing.assert_allclose(np.abs(r.x), 1.0, atol=1e-10)
        assert r.fun == pytest.approx(-1.0, abs=1e-10)


def test_lagrange_kind_that_does_not_exist_is_not_success():
    # no maximum of x^2 + y^2 on the line x + y = 1 (unbounded); no minimum of xy on x + y = 2
    # nor of xyz on x + y + z = 3 (unbounded below): never status 0, x the point found
    for f, g, x0, kind, found in (
            (lambda x: x @ x, lambda x: x.sum() - 1.0, [0.3, 0.1], "maximum", "minimum"),
            (lambda x: x[0] * x[1], lambda x: x.sum() - 2.0, [0.3, 0.1], "minimum", "maximum"),
            (lambda x: x[0] * x[1] * x[2], lambda x: x.sum() - 3.0, [1.2, 0.9, 1.1], "minimum",
             "maximum")):
        r = lagrange(f, g, x0, kind=kind, maxiter=30)
        assert r.status == Status.MAX_ITERATIONS and not r.success
        assert r.kind == found
        assert r.message.startswith(f"no {kind} found: Newton-Raphson from x0 reached a "
                                    f"{found} (the x returned); ")
        assert r.message.endswith("did not converge")     # to infinity
        assert np.abs(r.jac - r.multipliers @ np.ones((1, len(x0)))).max() < 1e-8


def test_lagrange_curvature_below_the_quick_hessians_error_is_not_misclassified():
    # f = x0^2 + 1e-7 x1^2 + 1e6 x1^6 + x2 on x2 = 0: at 0 the curvature along x1 is 2e-7, a
    # minimum, but second differences at the default steps h and 2h (h ~ 4.5e-4) extrapolate
    # to about -1.4e-7 (the x1^6 term): the quick test must see its error and defer to
    # Richardson's Hessian (grad given: finite differences of it would not find x1 = 0)
    f = lambda x: x[0] ** 2 + 1e-7 * x[1] ** 2 + 1e6 * x[1] ** 6 + x[2]          # noqa: E731
    grad = lambda x: np.array([2 * x[0], 2e-7 * x[1] + 6e6 * x[1] ** 5, 1.0])    # noqa: E731
    r = lagrange(f, lambda x: x[2], [0.1, 0.0, 0.1], grad=grad)
    quick = hessian(lambda x: f(x) - r.multipliers[0] * x[2], r.x, accuracy=4, step=4.5e-4)
    assert quick[1, 1] < -1e-7
    assert r.status == 0 and r.kind == "minimum"
    np.testing.assert_allclose(r.x, 0.0, atol=1e-9)
    np.testing.assert_allclose(r.curvature, [2e-7, 2.0], rtol=1e-6)
    assert (np.abs(r.curvature - [2e-7, 2.0]) <= r.curvature_error).all()
    assert r.curvature_error < 1e-7


def test_lagrange_degenerate_point_claims_nothing():
    # curvatures 2e-12 and 2 on the constraint set: 2e-12 is below what finite differences of
    # a unit-scale Hessian can resolve, so neither "minimum" nor success when one is asked for
    f = lambda x: x[0] ** 2 + 1e-12 * x[1] ** 2     # noqa: E731
    plain = lagrange(f, lambda x: x[2], [0.3, 0.2, 0.1])
    assert plain.status == 0 and plain.kind == "degenerate"
    r = lagrange(f, lambda x: x[2], [0.3, 0.2, 0.1], kind="minimum", maxiter=20)
    assert r.status == Status.SINGULAR and r.kind == "degenerate"
    assert "second-order test cannot tell" in r.message


def test_lagrange_kind_unknown_without_convergence_and_bad_kind():
    r = lagrange(lambda x: x[0] + x[1], circle, [1.0, 0.5], maxiter=1, kind="minimum")
    assert r.status == Status.MAX_ITERATIONS and r.kind == "unknown"
    assert np.isnan(r.curvature).all() and r.curvature.shape == (1,)
    for bad in ("min", "Minimum", None, 1):
        with pytest.raises(ValueError, match="^kind must be 'any', 'minimum' or 'maximum'"):
            lagrange(lambda x: x[0] + x[1], circle, [1.0, 0.5], kind=bad)
