"""The benchmark problems, built once and shared by ``python -m fastcalc bench`` and ``benchmarks/``.

Each builder returns plain NumPy data and functions (no timing, no fastcalc calls), together with
the exact answer when one exists, so that the command-line benchmark and the pytest-benchmark
suites time the same work and check it against the same reference.

>>> problem = rosenbrock_problem(4)
>>> problem.x.shape, float(problem.f(problem.x)) > 0
((4,), True)
"""
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from scipy.optimize import rosen, rosen_der, rosen_hess

__all__ = [
    "rosenbrock", "rosenbrock_gradient", "rosenbrock_hessian", "rosenbrock_problem",
    "exp_sin_problem", "exp_sin_elementwise", "exp_sin_elementwise_derivative",
    "cube_root_problem", "circle_line_problem", "circle_exp_problem", "peak_fit_problem",
    "gaussian_2d_problem", "SEED", "kepler_problem", "numba_block_equations",
    "numpy_newton_floor", "cube_and_prime", "kepler_and_prime", "numba_prange_newton",
]

SEED = 20261124


# ----------------------------------------------------------------------------------------------
# Scalar fields: the Rosenbrock function, its exact gradient and Hessian.

# SciPy's Rosenbrock function and its exact derivatives: rosen accepts x of shape (n,) -> float
# and (n, k) -> (k,), so one function serves the Python, vectorized and reference paths.
rosenbrock = rosen
rosenbrock_gradient = rosen_der
rosenbrock_hessian = rosen_hess


@dataclass
class ScalarFieldProblem:
    """A scalar field at a point, with its exact gradient and Hessian there."""

    name: str
    f: Callable               # f(x) for x (n,) -> float; also accepts (n, k) -> (k,)
    x: np.ndarray
    gradient: np.ndarray
    hessian: np.ndarray
    compiled_name: str        # name of the same function in fastcalc._testfunctions


def rosenbrock_problem(n, seed=SEED):
    """Rosenbrock's function of ``n`` variables at a reproducible point in [-1.5, 1.5]^n."""
    x = np.random.default_rng(seed).uniform(-1.5, 1.5, n)
    return ScalarFieldProblem("rosenbrock", rosenbrock, x, rosenbrock_gradient(x),
                              rosenbrock_hessian(x), "rosenbrock")


def _exp_sin(x):
    x = np.asarray(x)
    return np.sum(np.exp(x[0:-1:2]) * np.sin(x[1::2]), axis=0)


def exp_sin_problem(n, seed=SEED):
    """``sum exp(x[2i]) sin(x[2i+1])`` (``n`` even), the ``exp_sin`` compiled test function."""
    if n % 2:
        raise ValueError(f"n must be even, got {n}")
    x = np.random.default_rng(seed).uniform(-1.0, 1.0, n)
    e, s, c = np.exp(x[0::2]), np.sin(x[1::2]), np.cos(x[1::2])
    grad = np.empty(n)
    grad[0::2], grad[1::2] = e * s, e * c
    hess = np.zeros((n, n))
    i = np.arange(0, n, 2)
    hess[i, i] = e * s
    hess[i + 1, i + 1] = -e * s
    hess[i, i + 1] = hess[i + 1, i] = e * c
    return ScalarFieldProblem("exp_sin", _exp_sin, x, grad, hess, "exp_sin")


def exp_sin_elementwise(x):
    """``exp(sin x)`` elementwise: the function of the elementwise-derivative workload."""
    return np.exp(np.sin(x))


def exp_sin_elementwise_derivative(x):
    """Exact derivative of :func:`exp_sin_elementwise`."""
    return np.cos(x) * np.exp(np.sin(x))


# ----------------------------------------------------------------------------------------------
# Elementwise equations: N cube roots x^3 = a.

@dataclass
class ElementwiseRootProblem:
    """``N`` independent equations ``f(x, a) = 0`` with per-element parameters ``a``."""

    f: Callable
    fprime: Callable
    x0: np.ndarray
    a: np.ndarray
    root: np.ndarray          # exact roots


def _cube_minus(x, a):
    return x * x * x - a


def _cube_minus_prime(x, a):
    return 3.0 * x * x


def cube_root_problem(size, seed=SEED):
    """``x^3 - a = 0`` for ``size`` values ``a`` in [1, 1000], started at ``a/3 + 1``.

    >>> p = cube_root_problem(3)
    >>> bool(np.allclose(p.f(p.root, p.a), 0.0, atol=1e-9))
    True
    """
    a = np.random.default_rng(seed).uniform(1.0, 1000.0, size)
    return ElementwiseRootProblem(_cube_minus, _cube_minus_prime, a / 3.0 + 1.0, a, np.cbrt(a))


# ----------------------------------------------------------------------------------------------
# Small nonlinear systems: a circle meets a line through the origin.

@dataclass
class SystemProblem:
    """``N`` independent 2-D systems ``F(x; r, b) = 0`` with an exact root each."""

    F: Callable               # F(x, r, b), x (2,) -> (2,); also x (2, k) with r, b (k,) -> (2, k)
    jac: Callable             # jac(x, r, b), x (2,) -> (2, 2)
    x0: np.ndarray            # (N, 2)
    r: np.ndarray             # (N,)
    b: np.ndarray             # (N,)
    root: np.ndarray          # (N, 2)


def _circle_line(x, r, b):
    return np.array([x[0] * x[0] + x[1] * x[1] - r * r, x[1] - b * x[0]])


def _circle_line_jac(x, r, b):
    # Broadcasts like x: (2, 2) for x (2,), (2, 2, k) for x (2, k).
    return np.array([[2.0 * x[0], 2.0 * x[1]], [-b * np.ones_like(x[0]), np.ones_like(x[0])]])


def circle_line_problem(size, seed=SEED):
    """``x^2 + y^2 = r^2``, ``y = b x`` for ``size`` pairs (r, b); the root with x > 0.

    >>> p = circle_line_problem(2)
    >>> bool(np.allclose(p.F(p.root[0], p.r[0], p.b[0]), 0.0, atol=1e-12))
    True
    """
    rng = np.random.default_rng(seed)
    r = rng.uniform(0.5, 5.0, size)
    b = rng.uniform(-2.0, 2.0, size)
    x_root = r / np.sqrt(1.0 + b * b)
    root = np.column_stack([x_root, b * x_root])
    # Start near, not at, the root: a perturbation of 30% of the radius.
    x0 = root + 0.3 * r[:, None] * rng.uniform(-1.0, 1.0, (size, 2))
    x0[:, 0] = np.abs(x0[:, 0]) + 0.1   # stay in the x > 0 basin
    return SystemProblem(_circle_line, _circle_line_jac, x0, r, b, root)


def _circle_exp(x):
    return np.array([x[0] * x[0] + x[1] * x[1] - 4.0, np.exp(x[0]) + x[1] - 1.0])


def _circle_exp_jac(x):
    one = np.ones_like(x[0])
    return np.array([[2.0 * x[0], 2.0 * x[1]], [np.exp(x[0]), one]])


def circle_exp_problem(size, seed=SEED):
    """``x^2 + y^2 = 4``, ``exp(x) + y = 1`` (``circle_exp_system`` in ``fastcalc._testfunctions``)
    from ``size`` starts within 0.3 of one of its two roots; ``root`` is that root.

    >>> p = circle_exp_problem(2)
    >>> bool(np.allclose(p.F(p.root[0]), 0.0, atol=1e-14))
    True
    """
    from scipy.optimize import root as scipy_root
    roots = np.array([scipy_root(_circle_exp, start, jac=_circle_exp_jac, method="hybr",
                                 options={"xtol": 1e-15}).x for start in ([1.0, -1.7], [-1.8, 0.8])])
    rng = np.random.default_rng(seed)
    which = rng.integers(0, 2, size)
    x0 = roots[which] + rng.uniform(-0.3, 0.3, (size, 2))
    return SystemProblem(lambda x, *_: _circle_exp(x), lambda x, *_: _circle_exp_jac(x), x0,
                         None, None, roots[which])


# ----------------------------------------------------------------------------------------------
# Curve fitting: many noisy datasets drawn from a model with known parameters.

def _gaussian(x, A, mu, sigma, c):
    return A * np.exp(-0.5 * ((x - mu) / sigma) ** 2) + c


def _exponential(x, A, tau, c):
    return A * np.exp(-x / tau) + c


# Same parameters, names and order as fastcalc.models.gaussian / exponential.
_PEAKS = {
    # name: (NumPy model, x range, centre of the true parameters, relative spread)
    "gaussian": (_gaussian, (-5.0, 5.0), np.array([10.0, 0.0, 1.2, 1.0]),
                 np.array([0.3, 0.0, 0.2, 0.5])),
    "exponential": (_exponential, (0.0, 5.0), np.array([5.0, 1.2, 1.0]),
                    np.array([0.3, 0.3, 0.5])),
}


@dataclass
class FitProblem:
    """``N`` datasets ``Y[i] = model(x, *params[i]) + noise`` with noise level ``sigma``."""

    model_name: str
    model: Callable            # plain NumPy model(x, *params) in ``param_names`` order
    param_names: tuple
    x: np.ndarray              # (m,) or (2, m) for gaussian_2d
    Y: np.ndarray              # (N, m)
    params: np.ndarray         # (N, p) true parameters
    sigma: float
    p0: np.ndarray = field(default=None)   # (N, p) starting values near the truth


def peak_fit_problem(model_name, size, points=64, noise=0.05, seed=SEED):
    """``size`` noisy datasets of ``points`` points from the ``gaussian`` or ``exponential`` model.

    Parameters as in :mod:`fastcalc.models`: gaussian (A, mu, sigma, c); exponential
    (A, tau, c). ``noise`` is the standard deviation relative to the typical amplitude.

    >>> p = peak_fit_problem("gaussian", 3, points=16)
    >>> p.Y.shape, p.params.shape
    ((3, 16), (3, 4))
    """
    func, (lo, hi), centre, spread = _PEAKS[model_name]
    rng = np.random.default_rng(seed)
    x = np.linspace(lo, hi, points)
    params = centre * (1.0 + spread * rng.uniform(-1.0, 1.0, (size, centre.size)))
    if model_name == "gaussian":
        params[:, 1] = rng.uniform(-1.0, 1.0, size)    # centres: absolute, not relative
    sigma = noise * centre[0]
    Y = func(x, *params.T[:, :, None]) + sigma * rng.standard_normal((size, points))
    p0 = params * (1.0 + 0.1 * rng.uniform(-1.0, 1.0, params.shape))
    names = tuple(func.__code__.co_varnames[1:func.__code__.co_argcount])
    return FitProblem(model_name, func, names, x, Y, params, sigma, p0)


def count_peak_problem(size, points=64, seed=SEED):
    """``size`` gaussian peaks as Poisson counts (10 to 30 counts at the top on a background of
    1 to 3): the Poisson likelihood's workload. ``sigma`` is NaN (counts have none).

    >>> p = count_peak_problem(3, points=16)
    >>> bool((p.Y == np.round(p.Y)).all()), p.Y.shape
    (True, (3, 16))
    """
    rng = np.random.default_rng(seed)
    x = np.linspace(-5.0, 5.0, points)
    params = np.column_stack([rng.uniform(10, 30, size), rng.uniform(-1, 1, size),
                              rng.uniform(0.7, 1.5, size), rng.uniform(1, 3, size)])
    Y = rng.poisson(_gaussian(x, *params.T[:, :, None])).astype(np.float64)
    p0 = params * (1.0 + 0.1 * rng.uniform(-1.0, 1.0, params.shape))
    return FitProblem("gaussian", _gaussian, ("A", "mu", "sigma", "c"), x, Y, params, np.nan, p0)


def outlier_peak_problem(size, points=64, outliers=0.03, seed=SEED):
    """:func:`peak_fit_problem` gaussians with a fraction ``outliers`` of their points off by
    20 standard deviations: the robust losses' workload."""
    problem = peak_fit_problem("gaussian", size, points=points, seed=seed)
    rng = np.random.default_rng(seed + 1)
    hit = rng.random(problem.Y.shape) < outliers
    problem.Y[hit] += 20.0 * problem.sigma * rng.choice([-1.0, 1.0], hit.sum())
    return problem


def _gaussian_2d(xy, A, x0, y0, sigma, b):
    x, y = xy
    return A * np.exp(-0.5 * ((x - x0) ** 2 + (y - y0) ** 2) / sigma ** 2) + b


def gaussian_2d_problem(size, side=5, noise=0.02, seed=SEED):
    """``size`` noisy ``side x side`` stamps of a 2-D Gaussian spot (star / localisation fit).

    Parameters as in :mod:`fastcalc.models`: (A, x0, y0, sigma, b); ``x`` has shape
    ``(2, side**2)``, rows x and y.
    """
    rng = np.random.default_rng(seed)
    grid = np.arange(side, dtype=float) - (side - 1) / 2.0
    gx, gy = np.meshgrid(grid, grid)
    xy = np.vstack([gx.ravel(), gy.ravel()])
    params = np.column_stack([
        rng.uniform(5.0, 15.0, size), rng.uniform(-0.5, 0.5, size), rng.uniform(-0.5, 0.5, size),
        rng.uniform(0.8, 1.3, size), rng.uniform(0.5, 1.5, size),
    ])
    sigma = noise * 10.0
    Y = _gaussian_2d(xy, *params.T[:, :, None]) + sigma * rng.standard_normal((size, side * side))
    p0 = params * (1.0 + 0.1 * rng.uniform(-1.0, 1.0, params.shape))
    names = ("A", "x0", "y0", "sigma", "b")
    return FitProblem("gaussian_2d", _gaussian_2d, names, xy, Y, params, sigma, p0)


# ----------------------------------------------------------------------------------------------
# Large sparse problems (issue 16): a tridiagonal vector field and the 1-D Bratu problem.

def _tridiagonal_pattern(n):
    from scipy.sparse import diags_array
    ones = np.ones(n)
    return diags_array([ones[1:], ones, ones[1:]], offsets=[-1, 0, 1], format="csr")


def _chain(x):
    """``f_i = x_i**3 + sin(x_{i-1}) + x_{i+1}**2 x_i``: tridiagonal Jacobian; ``x`` of shape
    ``(n,)`` or ``(n, k)`` (columns are points)."""
    y = x ** 3
    y[1:] += np.sin(x[:-1])
    y[:-1] += x[1:] ** 2 * x[:-1]
    return y


@dataclass
class SparseJacobianProblem:
    """A vector field with a tridiagonal Jacobian, its pattern and the exact Jacobian's
    diagonals (sub, main, super)."""

    f: Callable
    x: np.ndarray
    sparsity: object
    diagonals: tuple


def tridiagonal_jacobian_problem(n):
    x = np.linspace(0.2, 1.5, n)
    diagonals = (np.cos(x[:-1]), 3 * x ** 2 + np.append(x[1:] ** 2, 0.0), 2 * x[1:] * x[:-1])
    return SparseJacobianProblem(_chain, x, _tridiagonal_pattern(n), diagonals)


@dataclass
class BratuProblem:
    """``-u'' = lam exp(u)`` on (0, 1), ``u(0) = u(1) = 0``, central differences on ``n`` inner
    points: ``F(U)`` (``U`` of shape ``(n,)`` or ``(n, k)``), the Jacobian's pattern, the
    inverse of its linear part (a preconditioner for Krylov solvers) and ``max u`` of the
    lower solution at lam = 1 (0.14053921 in the grid limit)."""

    F: Callable
    x0: np.ndarray
    sparsity: object
    laplacian_solve: Callable
    max_u: float = 0.14053921


def bratu_problem(n, lam=1.0):
    from scipy.linalg import solve_banded
    h2 = 1.0 / (n + 1) ** 2

    def F(U):
        out = 2.0 * U
        out[1:] -= U[:-1]
        out[:-1] -= U[1:]
        out /= h2
        out -= lam * np.exp(U)
        return out

    band = np.zeros((3, n))
    band[0, 1:], band[1], band[2, :-1] = -1.0 / h2, 2.0 / h2, -1.0 / h2
    return BratuProblem(F, np.zeros(n), _tridiagonal_pattern(n),
                        lambda v: solve_banded((1, 1), band, v))
# Block-compiled equations (newton with a block function): Kepler's equation, numba block
# functions and the references they are timed against. numba is optional: ImportError without.

def kepler_problem(size, seed=SEED):
    """Kepler's equation ``E - e sin E = M`` for ``size`` pairs (e in [0, 0.9], M in [0, 2 pi]),
    started at ``E = M``; ``params`` is the ``(size, 2)`` matrix of ``(e, M)``.

    >>> p = kepler_problem(3)
    >>> p.params.shape, bool(np.all(p.e < 1))
    ((3, 2), True)
    """
    rng = np.random.default_rng(seed)
    e, m = rng.uniform(0.0, 0.9, size), rng.uniform(0.0, 2 * np.pi, size)
    return KeplerProblem(e, m, m.copy(), np.ascontiguousarray(np.stack([e, m], axis=1)))


@dataclass
class KeplerProblem:
    e: np.ndarray
    m: np.ndarray
    x0: np.ndarray
    params: np.ndarray


def numba_block_equations():
    """``(cube, kepler)``: numba ``cfunc`` block functions ``x^3 - a`` (k = 1) and Kepler's
    ``E - e sin E - M`` (k = 2, p = (e, M)), each with its derivative into dfx when dfx is not
    NULL (raises ImportError without numba)."""
    global _NUMBA_BLOCKS
    if _NUMBA_BLOCKS is None:
        _NUMBA_BLOCKS = _compile_numba_blocks()
    return _NUMBA_BLOCKS


_NUMBA_BLOCKS = None


def _compile_numba_blocks():
    import numba
    from numba import types
    from numba.core import cgutils
    from numba.extending import intrinsic

    @intrinsic
    def is_null(typingctx, pointer):
        def codegen(context, builder, signature, args):
            return cgutils.is_null(builder, args[0])
        return types.boolean(pointer), codegen

    double_p = types.CPointer(types.double)
    signature = types.intc(types.intc, double_p, types.intc, double_p, double_p, double_p,
                           types.voidptr)

    @numba.cfunc(signature)
    def cube(n, x, k, p, fx, dfx, user_data):
        for i in range(n):
            fx[i] = x[i] * x[i] * x[i] - p[i]
        if not is_null(dfx):
            for i in range(n):
                dfx[i] = 3.0 * x[i] * x[i]
        return 0

    @numba.cfunc(signature)
    def kepler(n, x, k, p, fx, dfx, user_data):
        for i in range(n):
            fx[i] = x[i] - p[2 * i] * np.sin(x[i]) - p[2 * i + 1]
        if not is_null(dfx):
            for i in range(n):
                dfx[i] = 1.0 - p[2 * i] * np.cos(x[i])
        return 0

    return cube, kepler


def numpy_newton_floor(f_and_prime, x0, params, iterations):
    """The whole-array floor: ``iterations`` Newton steps on every element in NumPy (no
    convergence test, no compaction), ``f_and_prime(x, *params) -> (f, f')``."""
    x = x0.copy()
    for _ in range(iterations):
        f, d = f_and_prime(x, *params)
        x -= f / d
    return x


def cube_and_prime(x, a):
    return x * x * x - a, 3.0 * x * x


def kepler_and_prime(x, e, m):
    return x - e * np.sin(x) - m, 1.0 - e * np.cos(x)


def numba_prange_newton():
    """A numba ``prange`` loop of per-element Newton on ``x^3 = a`` (the reference for thread
    scaling): ``solve(x0, a, tol, maxiter)``. It stops after a step below ``tol`` (fastcalc
    evaluates f once more there, so this loop does a little less work)."""
    import numba

    @numba.njit(parallel=True, cache=False)
    def solve(x0, a, tol, maxiter):
        x = np.empty_like(x0)
        for i in numba.prange(x0.shape[0]):
            xi = x0[i]
            for _ in range(maxiter):
                f = xi * xi * xi - a[i]
                if f == 0.0:
                    break
                step = f / (3.0 * xi * xi)
                xi -= step
                if abs(step) <= tol + 8.9e-16 * abs(xi):
                    break
            x[i] = xi
        return x
    return solve
