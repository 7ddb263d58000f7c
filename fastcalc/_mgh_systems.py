"""The More-Garbow-Hillstrom nonlinear systems: MINPACK's test set for hybrd/hybrj.

J. J. More, B. S. Garbow, K. E. Hillstrom, "Testing unconstrained optimization software", ACM
TOMS 7 (1981) 17-41; the systems and starting points of MINPACK's ``vecfcn`` and ``initpt``.
Each function takes ``x`` of shape ``(n,)``, or ``(n, k)`` with one point per column (the
convention of ``newton_system(..., vectorized=True)``), and returns F of the same shape.
Used by tests/test_systems_mgh.py and the bench's ``systems`` area.
"""
import numpy as np

__all__ = ["PROBLEMS", "cases", "batches", "hybr_solves"]


def rosenbrock(x):
    return np.stack([1.0 - x[0], 10.0 * (x[1] - x[0] ** 2)])


def powell_singular(x):
    return np.stack([x[0] + 10.0 * x[1], np.sqrt(5.0) * (x[2] - x[3]),
                     (x[1] - 2.0 * x[2]) ** 2, np.sqrt(10.0) * (x[0] - x[3]) ** 2])


def powell_badly_scaled(x):
    return np.stack([1e4 * x[0] * x[1] - 1.0, np.exp(-x[0]) + np.exp(-x[1]) - 1.0001])


def wood(x):
    t1, t2 = x[1] - x[0] ** 2, x[3] - x[2] ** 2
    return np.stack([-200.0 * x[0] * t1 - (1.0 - x[0]),
                     200.0 * t1 + 20.2 * (x[1] - 1.0) + 19.8 * (x[3] - 1.0),
                     -180.0 * x[2] * t2 - (1.0 - x[2]),
                     180.0 * t2 + 20.2 * (x[3] - 1.0) + 19.8 * (x[1] - 1.0)])


def helical_valley(x):
    with np.errstate(divide="ignore", invalid="ignore"):
        theta = np.arctan(x[1] / x[0]) / (2.0 * np.pi)
    theta = np.where(x[0] > 0, theta, np.where(x[0] < 0, theta + 0.5,
                                               np.copysign(0.25, x[1])))
    return np.stack([10.0 * (x[2] - 10.0 * theta), 10.0 * (np.hypot(x[0], x[1]) - 1.0), x[2]])


def watson(x):
    n = x.shape[0]
    f = np.zeros_like(x)
    powers = np.arange(n).reshape((n,) + (1,) * (x.ndim - 1))
    for i in range(1, 30):
        t = i / 29.0
        tj = t ** powers                    # t^(j-1), j = 1..n
        sum1 = np.sum(powers[1:] * tj[:-1] * x[1:], axis=0)
        sum2 = np.sum(tj * x, axis=0)
        temp1 = sum1 - sum2 ** 2 - 1.0
        f = f + (tj / t) * (powers - 2.0 * t * sum2) * temp1
    temp = x[1] - x[0] ** 2 - 1.0
    f[0] = f[0] + x[0] * (1.0 - 2.0 * temp)
    f[1] = f[1] + temp
    return f


def chebyquad(x):
    n = x.shape[0]
    f = np.zeros_like(x)
    for j in range(n):
        t1, t2 = np.ones_like(x[j]), 2.0 * x[j] - 1.0
        for i in range(n):
            f[i] = f[i] + t2
            t1, t2 = t2, 2.0 * (2.0 * x[j] - 1.0) * t2 - t1
    f = f / n
    for k in range(1, n, 2):                # even orders k + 1: the mean of T_(k+1) on [0, 1]
        f[k] = f[k] + 1.0 / ((k + 1) ** 2 - 1.0)
    return f


def brown_almost_linear(x):
    n = x.shape[0]
    f = x + (np.sum(x, axis=0) - (n + 1))
    f[n - 1] = np.prod(x, axis=0) - 1.0
    return f


def _padded(x):
    zero = np.zeros_like(x[:1])
    return np.concatenate([zero, x, zero])


def _grid(n, x):
    return (np.arange(1, n + 1) / (n + 1.0)).reshape((n,) + (1,) * (x.ndim - 1))


def discrete_boundary_value(x):
    n = x.shape[0]
    h, t = 1.0 / (n + 1), _grid(n, x)
    p = _padded(x)
    return 2.0 * x - p[:-2] - p[2:] + (x + t + 1.0) ** 3 * h ** 2 / 2.0


def discrete_integral_equation(x):
    n = x.shape[0]
    h, t = 1.0 / (n + 1), _grid(n, x)
    cube = (x + t + 1.0) ** 3
    lower = np.cumsum(t * cube, axis=0)                                     # j <= k
    upper = np.cumsum(((1.0 - t) * cube)[::-1], axis=0)[::-1]               # j >= k
    upper = np.concatenate([upper[1:], np.zeros_like(upper[:1])])           # j > k
    return x + h * ((1.0 - t) * lower + t * upper) / 2.0


def trigonometric(x):
    n = x.shape[0]
    k = np.arange(1, n + 1).reshape((n,) + (1,) * (x.ndim - 1))
    c = np.cos(x)
    return (n + k) - np.sin(x) - np.sum(c, axis=0) - k * c


def variably_dimensioned(x):
    n = x.shape[0]
    k = np.arange(1, n + 1).reshape((n,) + (1,) * (x.ndim - 1))
    s = np.sum(k * (x - 1.0), axis=0)
    return x - 1.0 + k * (s * (1.0 + 2.0 * s ** 2))


def broyden_tridiagonal(x):
    p = _padded(x)
    return (3.0 - 2.0 * x) * x - p[:-2] - 2.0 * p[2:] + 1.0


def broyden_banded(x):
    n = x.shape[0]
    g = x * (1.0 + x)
    f = x * (2.0 + 5.0 * x ** 2) + 1.0
    for k in range(n):
        f[k] = f[k] - (np.sum(g[max(0, k - 5):k], axis=0) + np.sum(g[k + 1:k + 2], axis=0))
    return f


def _start(name, n):
    j = np.arange(1, n + 1)
    h = 1.0 / (n + 1)
    return {
        "rosenbrock": lambda: np.array([-1.2, 1.0]),
        "powell_singular": lambda: np.array([3.0, -1.0, 0.0, 1.0]),
        "powell_badly_scaled": lambda: np.array([0.0, 1.0]),
        "wood": lambda: np.array([-3.0, -1.0, -3.0, -1.0]),
        "helical_valley": lambda: np.array([-1.0, 0.0, 0.0]),
        "watson": lambda: np.zeros(n),
        "chebyquad": lambda: j * h,
        "brown_almost_linear": lambda: np.full(n, 0.5),
        "discrete_boundary_value": lambda: j * h * (j * h - 1.0),
        "discrete_integral_equation": lambda: j * h * (j * h - 1.0),
        "trigonometric": lambda: np.full(n, 1.0 / n),
        "variably_dimensioned": lambda: 1.0 - j / n,
        "broyden_tridiagonal": lambda: -np.ones(n),
        "broyden_banded": lambda: -np.ones(n),
    }[name]()


# name: (function, dimensions as in MINPACK's hybrd test, number of starts: x0, 10 x0, 100 x0)
PROBLEMS = {
    "rosenbrock": (rosenbrock, (2,)),
    "powell_singular": (powell_singular, (4,)),
    "powell_badly_scaled": (powell_badly_scaled, (2,)),
    "wood": (wood, (4,)),
    "helical_valley": (helical_valley, (3,)),
    "watson": (watson, (6, 9)),
    "chebyquad": (chebyquad, (5, 6, 7, 8)),
    "brown_almost_linear": (brown_almost_linear, (10,)),
    "discrete_boundary_value": (discrete_boundary_value, (10,)),
    "discrete_integral_equation": (discrete_integral_equation, (10,)),
    "trigonometric": (trigonometric, (10,)),
    "variably_dimensioned": (variably_dimensioned, (10,)),
    "broyden_tridiagonal": (broyden_tridiagonal, (10,)),
    "broyden_banded": (broyden_banded, (10,)),
}


def cases(factors=(1.0, 10.0, 100.0)):
    """``(label, F, x0)`` for every problem, dimension and start ``factor * x0`` (Watson's zero
    start becomes ``factor`` in every component, as in MINPACK's initpt)."""
    out = []
    for name, (F, dims) in PROBLEMS.items():
        for n in dims:
            base = _start(name, n)
            for factor in factors:
                x0 = np.full(n, factor) if name == "watson" and factor != 1.0 else factor * base
                out.append((f"{name}(n={n}) {factor:g}x0", F, x0))
    return out


def batches(factors=(1.0, 10.0, 100.0)):
    """``(label, F, X0)`` per problem and dimension, X0 ``(len(factors), n)``: its starts, one
    batch for ``newton_system(F, X0, vectorized=True)``."""
    out = {}
    for label, F, x0 in cases(factors):
        key = label.split(" ")[0]
        out.setdefault(key, (key, F, []))[2].append(x0)
    return [(key, F, np.array(starts)) for key, F, starts in out.values()]


def hybr_solves(F, x0, ftol, maxfev=0):
    """Whether ``scipy.optimize.root(F, x0, method="hybr")`` ends with ``max|F| <= ftol``
    (whatever its success flag says: it stops on a small step, and flags some roots as
    failures)."""
    import warnings

    from scipy.optimize import root
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        ref = root(F, x0, method="hybr", options={"maxfev": maxfev})
    return bool(np.abs(F(ref.x)).max() <= ftol)
