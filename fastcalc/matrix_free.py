"""Matrix-free derivatives: Jacobian- and Hessian-vector products and linear operators.

``J v`` is a directional derivative of ``f``: one difference along ``v`` costs one evaluation
(forward, plus ``f(x)`` once) or two (central), whatever the size of ``J``. ``H v`` is a
directional derivative of the gradient: two evaluations of ``grad``, or, without ``grad``,
two finite-difference gradients (``4 n`` evaluations of ``f`` per vector). The operators
wrap them as :class:`scipy.sparse.linalg.LinearOperator` for Krylov solvers (``gmres``,
``cg``, ``minres``, ...).

Steps. Along a column ``v`` the step is ``h = c * max(1, max|x|) / max|v|`` with ``c`` the
relative step of the stencil (``eps**(1/2)`` forward, ``eps**(1/3)`` central, ``1e-100``
complex), as SciPy's ``newton_krylov`` scales its step; ``step=`` gives ``c``. A zero column
gives a zero product. The relative error is then about ``sqrt(eps)`` (forward), ``eps**(2/3)``
(central) or ``eps`` (complex) times the scale of ``f`` over that of ``J v``.
"""
import numpy as np
from scipy.sparse.linalg import LinearOperator

from ._arrays import real_array, real_number
from ._evaluate import FunctionKind, real_values, resolve
from .differentiate import (_axis_derivatives, _check_args, _check_point, _complex_safe,
                            _relative_step, _steps, gradient)
from .sparse import Pattern, _greedy, _real_jacobian

__all__ = ["hessian_operator", "hvp", "jacobian_operator", "jvp"]

_METHODS = ("central", "forward", "complex")


def _check_vectors(v, n):
    """``(V (n, k) float64, single)`` from ``v`` of shape ``(n,)`` or ``(n, k)``."""
    V = real_array(v, "v")
    if V.ndim not in (1, 2) or V.shape[0] != n:
        raise ValueError(f"v must have shape ({n},) or ({n}, k), got {V.shape}")
    if not np.isfinite(V).all():
        raise ValueError("v must be finite (no NaN or inf)")
    return np.array(V.reshape(n, -1), dtype=np.float64), V.ndim == 1


class _Directional:
    """Directional derivatives ``J V`` of one vector field at one point; ``f(x)`` is
    evaluated once, when a forward difference (or the output size) first needs it."""

    def __init__(self, f, x, method, step, args, vectorized, n_out, name="f"):
        if method not in _METHODS:
            raise ValueError(f"method must be one of {', '.join(map(repr, _METHODS))}; got "
                             f"{method!r}")
        self.x = _check_point(x)
        self.method = method
        self.function = resolve(f, args=_check_args(args), vectorized=vectorized,
                                signatures=("vector",), name=name)
        if method == "complex" and self.function.kind == FunctionKind.COMPILED:
            raise TypeError(f"{name}: method='complex' needs a Python function that accepts "
                            "complex input; compiled callables are real-valued")
        self.c = _relative_step(method, 2 if method != "forward" else 1, 1) if step is None \
            else real_number(step, "step")
        if not (np.isfinite(self.c) and self.c > 0):
            raise ValueError("step must be positive and finite")
        self.nfev = 0
        self._base = None
        compiled = self.function.kind == FunctionKind.COMPILED
        self.m = (n_out or self.x.size) if compiled else self.base().size

    def values(self, points):
        """Values ``(k, m)`` at the rows of ``points``."""
        self.nfev += points.shape[0]
        compiled = self.function.kind == FunctionKind.COMPILED
        return self.function.vector_values(np.ascontiguousarray(points),
                                           self.m if compiled else -1)

    def base(self):
        if self._base is None:
            self._base = self.values(self.x[None, :])[0]
        return self._base

    def apply(self, V):
        """``J V`` for ``V`` of shape ``(n, k)`` -> ``(m, k)``."""
        size = np.abs(V).max(axis=0)
        h = self.c * max(1.0, float(np.abs(self.x).max())) / np.where(size > 0, size, 1.0)
        if self.method == "complex":
            points = self.x[None, :] + 1j * (h[:, None] * V.T)
            self.nfev += points.shape[0]
            with _complex_safe(self.function.name):
                if self.function.kind == FunctionKind.VECTORIZED:
                    values = real_values(self.function.function(points.T, *self.function.args),
                                         self.function.name, complex_ok=True)
                    values = np.asarray(values).reshape(self.m, -1)
                else:
                    values = np.array([np.asarray(real_values(
                        self.function.function(p, *self.function.args), self.function.name,
                        complex_ok=True)).reshape(-1) for p in points]).T
            return np.imag(values) / h
        with np.errstate(over="ignore", invalid="ignore"):
            moved = h[:, None] * V.T
            if self.method == "forward":
                return (self.values(self.x + moved) - self.base()).T / h
            both = self.values(np.concatenate([self.x + moved, self.x - moved]))
            k = V.shape[1]
            return (both[:k] - both[k:]).T / (2.0 * h)


def jvp(f, x, v, *, method="central", step=None, args=(), vectorized=False, n_out=None):
    """Jacobian of a vector field times a vector (or a block of vectors), matrix-free.

    Parameters
    ----------
    f : callable, scipy.LowLevelCallable or numba cfunc
        Vector field ``f(x, *args) -> (m,)`` (vectorized: ``(n, k) -> (m, k)``, all points of
        a block in one call; compiled: ``int f(int n, double *x, int m, double *out, void
        *user_data)``).
    x : array_like, shape (n,)
        Point (finite; never modified).
    v : array_like, shape (n,) or (n, k)
        Direction(s), finite.
    method : {"central", "forward", "complex"}
        Central: 2 evaluations per column; forward: 1 per column plus ``f(x)``; complex:
        1 per column (``f`` must accept complex input), exact to rounding.
    step : float, optional
        The relative step ``c`` of the module documentation (default: the stencil's).
    args, vectorized
        As for :func:`fastcalc.jacobian`.
    n_out : int, optional
        Output size of a compiled ``f`` (default ``n``).

    Returns
    -------
    ndarray, shape (m,) or (m, k)
        (A Python scalar field counts as ``m = 1``: the directional derivative ``grad f . v``
        has shape ``(1,)`` or ``(1, k)``.)

    Raises
    ------
    ValueError
        ``v`` of the wrong shape or not finite; ``x`` invalid; an unknown ``method``.
    TypeError
        As for :func:`fastcalc.jacobian`.

    Examples
    --------
    >>> import numpy as np
    >>> from fastcalc import jvp
    >>> f = lambda x: np.array([x[0] * x[1], np.sin(x[0])])
    >>> np.round(jvp(f, [1.0, 2.0], [1.0, -1.0]), 8)       # J = [[2, 1], [cos 1, 0]]
    array([1.        , 0.54030231])
    """
    product = _Directional(f, x, method, step, args, vectorized, n_out)
    V, single = _check_vectors(v, product.x.size)
    out = product.apply(V)
    return out[:, 0] if single else out


def hvp(f, x, v, *, grad=None, step=None, args=(), vectorized=False):
    """Hessian of a scalar field times a vector (or a block of vectors), matrix-free.

    With ``grad``: central differences of the gradient along each column,
    ``(grad(x + h v) - grad(x - h v)) / (2 h)`` (2 evaluations of ``grad`` per column).
    Without: the same difference of central finite-difference gradients of ``f`` (steps
    ``~eps**(1/4)``, as for second derivatives), ``4 n`` evaluations of ``f`` per column
    (a vectorized ``f`` gets ``2 n`` points per call) and a relative error near ``1e-7``
    instead of ``1e-10``: pass ``grad`` for large ``n``.

    Parameters
    ----------
    f : callable, scipy.LowLevelCallable or numba cfunc
        Scalar field, as for :func:`fastcalc.gradient` (unused with ``grad``; may be None).
    x : array_like, shape (n,)
        Point (finite; never modified).
    v : array_like, shape (n,) or (n, k)
        Direction(s), finite.
    grad : callable, scipy.LowLevelCallable or numba cfunc, optional
        Gradient ``grad(x, *args) -> (n,)`` (vectorized ``(n, k) -> (n, k)``; compiled: a
        vector field with ``m = n``).
    step : float, optional
        The relative step ``c`` along ``v`` (module documentation).
    args, vectorized
        As for :func:`fastcalc.gradient`; ``vectorized`` applies to ``f`` or ``grad``.

    Returns
    -------
    ndarray, shape (n,) or (n, k)

    Raises
    ------
    ValueError
        ``v`` of the wrong shape or not finite; ``x`` invalid.

    Examples
    --------
    >>> import numpy as np
    >>> from fastcalc import hvp
    >>> f = lambda x: x[0] ** 2 * x[1] + x[1] ** 3          # H = [[2 x1, 2 x0], [2 x0, 6 x1]]
    >>> grad = lambda x: np.array([2 * x[0] * x[1], x[0] ** 2 + 3 * x[1] ** 2])
    >>> np.round(hvp(f, [1.0, 2.0], [1.0, 0.0], grad=grad), 8)
    array([4., 2.])
    >>> np.round(hvp(f, [1.0, 2.0], [1.0, 0.0]), 5)
    array([4., 2.])
    """
    return _HessianProduct(f, x, grad, step, args, vectorized).apply_to(v)


class _HessianProduct:
    """``H V`` from gradient differences (given or finite-difference gradients)."""

    def __init__(self, f, x, grad, step, args, vectorized):
        self.x = _check_point(x)
        self.args = _check_args(args)
        self.vectorized = vectorized
        if grad is not None:
            self.directional = _Directional(grad, x, "central", step, args, vectorized,
                                            self.x.size, name="grad")
            if self.directional.m != self.x.size:
                raise ValueError(f"grad must return an array of shape ({self.x.size},), got "
                                 f"({self.directional.m},)")
            self.f = None
        else:
            self.directional = None
            self.f = resolve(f, args=self.args, vectorized=vectorized, signatures=("scalar",))
            self.c = _relative_step("central", 2, 2) if step is None \
                else real_number(step, "step")
            self.nfev = 0

    @property
    def evaluations(self):
        return self.directional.nfev if self.f is None else self.nfev

    def apply_to(self, v):
        V, single = _check_vectors(v, self.x.size)
        out = self.apply(V)
        return out[:, 0] if single else out

    def apply(self, V):
        if self.f is not None:
            return self._from_values(V)
        return self.directional.apply(V)

    def _from_values(self, V):
        x = self.x
        size = np.abs(V).max(axis=0)
        h = self.c * max(1.0, float(np.abs(x).max())) / np.where(size > 0, size, 1.0)
        t = np.array(_steps(x, None, "central", 2, 2))      # second-derivative steps
        out = np.empty((x.size, V.shape[1]))
        for k in range(V.shape[1]):
            sides = []
            for sign in (1.0, -1.0):
                g = gradient(self.f, x + sign * h[k] * V[:, k], step=t, full_output=True,
                             n_threads=None)
                self.nfev += g.nfev
                sides.append(g.df)
            out[:, k] = (sides[0] - sides[1]) / (2.0 * h[k])
        return out


def jacobian_operator(f, x, *, method="central", step=None, args=(), vectorized=False,
                      n_out=None, sparsity=None):
    """The Jacobian of a vector field at ``x`` as a :class:`scipy.sparse.linalg.LinearOperator`.

    ``matvec``/``matmat`` are :func:`jvp` products (central: 2 evaluations per vector;
    forward: 1, with ``f(x)`` evaluated once at construction). ``rmatvec`` (``J^T u``)
    cannot be matrix-free from values of ``f``: its first call computes the central-difference
    Jacobian once (sparse with ``sparsity=``: ``2 groups + 1`` evaluations, else dense:
    ``2 n``) and keeps it. The operator's ``nfev`` counts the evaluations so far.

    Parameters
    ----------
    f, x, method, step, args, vectorized, n_out
        As for :func:`jvp` (a Python ``f`` is evaluated once at ``x`` for the output size).
    sparsity : array_like or scipy.sparse matrix, optional
        Pattern of the Jacobian, for ``rmatvec`` (:func:`fastcalc.jacobian`).

    Returns
    -------
    scipy.sparse.linalg.LinearOperator, shape (m, n)

    Examples
    --------
    >>> import numpy as np
    >>> from scipy.sparse.linalg import gmres
    >>> from fastcalc import jacobian_operator
    >>> F = lambda x: np.array([x[0] ** 2 + x[1], x[0] - x[1] ** 3])
    >>> J = jacobian_operator(F, [1.0, 1.0])                    # [[2, 1], [1, -3]]
    >>> s, info = gmres(J, np.array([3.0, -2.0]), rtol=1e-8)
    >>> info, np.round(s, 6)
    (0, array([1., 1.]))
    """
    product = _Directional(f, x, method, step, args, vectorized, n_out)
    n = product.x.size
    if method == "forward":
        product.base()
    full = {}

    def transposed(u):
        if "J" not in full:
            full["J"], nfev = _central_jacobian(product.function, product.x, product.m,
                                                sparsity)
            product.nfev += nfev
        return full["J"].T @ np.asarray(u, dtype=np.float64).reshape(product.m, -1)

    operator = _CountingOperator(
        (product.m, n), lambda v: product.apply(_check_vectors(v, n)[0])[:, 0],
        lambda V: product.apply(_check_vectors(V, n)[0]), lambda u: transposed(u)[:, 0],
        lambda U: transposed(U), product)
    return operator


def _central_jacobian(function, x, m, sparsity):
    """The central-difference Jacobian (sparse with ``sparsity``) and its evaluations."""
    if sparsity is None:
        df, _, _, nfev, _ = _axis_derivatives(function, x, method="central", accuracy=2,
                                              step=None, bounds=None, m=m, n_threads=None)
        return df.T, nfev
    pattern = Pattern(sparsity)
    if pattern.shape != (m, x.size):
        raise ValueError(f"sparsity must have shape ({m}, {x.size}), got {pattern.shape}")
    groups, count = _greedy(pattern)
    df, _, _, nfev = _real_jacobian(function, x, pattern, groups, count, "central", 2, None,
                                    None, m, False)
    return pattern.matrix(df), nfev


def hessian_operator(f, x, *, grad=None, step=None, args=(), vectorized=False):
    """The Hessian of a scalar field at ``x`` as a symmetric
    :class:`scipy.sparse.linalg.LinearOperator` (``matvec = rmatvec`` = :func:`hvp`).

    Parameters
    ----------
    f, x, grad, step, args, vectorized
        As for :func:`hvp` (each product costs 2 evaluations of ``grad``, or ``4 n`` of
        ``f`` without it).

    Returns
    -------
    scipy.sparse.linalg.LinearOperator, shape (n, n)

    Examples
    --------
    >>> import numpy as np
    >>> from scipy.sparse.linalg import cg
    >>> from fastcalc import hessian_operator
    >>> grad = lambda x: np.array([4 * x[0] + x[1], x[0] + 2 * x[1]])   # H = [[4, 1], [1, 2]]
    >>> H = hessian_operator(None, [0.3, 0.1], grad=grad)
    >>> s, info = cg(H, np.array([5.0, 3.0]), rtol=1e-8)
    >>> info, np.round(s, 6)
    (0, array([1., 1.]))
    """
    product = _HessianProduct(f, x, grad, step, args, vectorized)
    n = product.x.size

    def matmat(V):
        return product.apply(_check_vectors(V, n)[0])

    def matvec(v):
        return matmat(v)[:, 0]

    return _CountingOperator((n, n), matvec, matmat, matvec, matmat, product)


class _CountingOperator(LinearOperator):
    """A LinearOperator from product functions; ``nfev``: the evaluations spent so far."""

    def __init__(self, shape, matvec, matmat, rmatvec, rmatmat, product):
        super().__init__(dtype=np.float64, shape=shape)
        self._products = (matvec, matmat, rmatvec, rmatmat)
        self._product = product

    @property
    def nfev(self):
        p = self._product
        return p.evaluations if isinstance(p, _HessianProduct) else p.nfev

    def _matvec(self, v):
        return self._products[0](np.ravel(v))

    def _matmat(self, V):
        return self._products[1](V)

    def _rmatvec(self, u):
        return self._products[2](np.ravel(u))

    def _rmatmat(self, U):
        return self._products[3](U)

    def _adjoint(self):
        return _CountingOperator((self.shape[1], self.shape[0]), self._products[2],
                                 self._products[3], self._products[0], self._products[1],
                                 self._product)
