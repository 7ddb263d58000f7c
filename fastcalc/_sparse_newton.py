"""Newton-Raphson for one large sparse system: grouped finite-difference Jacobian, sparse LU.

The path of :func:`fastcalc.newton_system` with ``sparsity=``: each step solves
``J(x) s = -F(x)`` by LU with partial pivoting, LAPACK's banded ``gbsv``
(:func:`scipy.linalg.solve_banded`) when the pattern is banded (its band storage at most
twice the entries plus 2n: SuperLU took 0.4 s for a tridiagonal n = 100,000, ``gbsv`` a few
ms), otherwise SciPy's SuperLU (:func:`scipy.sparse.linalg.splu`), and backtracks
``x + t s``, ``t = 1, 1/2, ...``, until ``||F||^2`` decreases (the Armijo condition of the
dense path), with the dense path's stopping rules, statuses and result fields.
"""
import numpy as np
from scipy.linalg import LinAlgError, solve_banded
from scipy.optimize import OptimizeResult
from scipy.sparse import csr_array, issparse
from scipy.sparse.linalg import splu

from ._arrays import real_array
from ._evaluate import real_values, resolve
from ._systems import NO_DESCENT
from ._status import Status
from .differentiate import _steps
from .roots import _system_messages
from .sparse import GroupedStencil, Pattern, _greedy

__all__ = ["newton_sparse_system"]


class _SparseLU:
    """Solves ``J s = b`` for Jacobians of one pattern: banded LAPACK or SuperLU."""

    def __init__(self, pattern):
        self.pattern = pattern
        n = pattern.shape[0]
        self.rows = np.repeat(np.arange(n), np.diff(pattern.row_ptr))
        offsets = self.rows - pattern.row_cols
        self.lower, self.upper = max(int(offsets.max()), 0), max(int(-offsets.min()), 0)
        self.banded = (2 * self.lower + self.upper + 1) * n <= 2 * pattern.nnz + 2 * n

    def solve(self, data, rhs):
        """The solution, or None when the matrix is singular."""
        if self.banded:
            ab = np.zeros((self.lower + self.upper + 1, rhs.size))
            ab[self.upper + self.rows - self.pattern.row_cols, self.pattern.row_cols] = data
            try:
                return solve_banded((self.lower, self.upper), ab, rhs, overwrite_ab=True,
                                    check_finite=False)
            except LinAlgError:
                return None
        try:
            return splu(self.pattern.matrix(data).tocsc()).solve(rhs)
        except RuntimeError:                   # SuperLU: "Factor is exactly singular"
            return None


def newton_sparse_system(F, x0, jac, *, sparsity, args, tol, rtol, ftol, maxiter, vectorized):
    """Solve one system ``F(x) = 0`` whose Jacobian has the pattern ``sparsity``."""
    x = real_array(x0, "x0")
    if x.ndim != 1:
        raise ValueError(f"sparsity= solves one large system: x0 must have shape (n,), got "
                         f"{x.shape} (batches of systems use the dense path)")
    n = x.size
    if n == 0:
        raise ValueError("x0 must have at least one unknown (n >= 1)")
    x = np.array(x, dtype=np.float64)           # private: never the caller's array
    pattern = sparsity if isinstance(sparsity, Pattern) else Pattern(sparsity)
    if pattern.shape != (n, n):
        raise ValueError(f"sparsity must have shape (n, n) = ({n}, {n}) for x0 of shape "
                         f"({n},), got {pattern.shape}")
    function = resolve(F, args=args, vectorized=vectorized, signatures=("vector",), name="F")
    if jac is not None and not callable(jac):
        raise TypeError("jac must be a Python callable returning a (sparse) (n, n) matrix")
    plan, solver = None, _SparseLU(pattern)
    if jac is None:
        groups, count = _greedy(pattern)
        plan = GroupedStencil(pattern, groups, count, None, "central", 2)

    def values(point):
        return function.vector_values(point[None, :], n)[0]

    def jacobian(x):
        """The Jacobian's entries in the pattern's CSR order, and the evaluations spent."""
        if plan is None:
            J = jac(x.copy(), *args)
            J = csr_array(J if issparse(J) else real_values(J, "jac"))
            if J.shape != (n, n):
                raise ValueError(f"jac returned shape {J.shape}, expected ({n}, {n})")
            # its entries at the pattern's positions (an entry outside it would be lost)
            outside = abs(J) - abs(J).multiply(pattern.matrix(np.ones(pattern.nnz)))
            if outside.count_nonzero():
                raise ValueError("jac returned non-zero entries outside sparsity")
            return np.asarray(J[solver.rows, pattern.row_cols]).ravel(), 0
        h = np.array(_steps(x, None, "central", 2, 1))
        points = plan.points(x, h)[1:]          # the central stencil does not use F(x)
        data, _, bad = plan.entries(function.vector_values(points, n), h, shift=1)
        if bad is not None:
            data[bad] = np.nan
        return data, points.shape[0]

    fun = values(x)
    nfev, nit, status = 1, 0, None
    phi = 0.5 * fun @ fun
    if not np.isfinite(fun).all():
        status = Status.NON_FINITE
    while status is None:
        if np.abs(fun).max() <= ftol:
            status = Status.SUCCESS
            break
        if nit >= maxiter:
            status = Status.MAX_ITERATIONS
            break
        data, cost = jacobian(x)
        nfev += cost
        if not np.isfinite(data).all():
            status = Status.NON_FINITE
            break
        step = solver.solve(data, -fun)
        if step is None or not np.isfinite(step).all():
            status = Status.SINGULAR
            break
        t, accepted = 1.0, False
        for _ in range(41):
            trial = x + t * step
            trial_fun = values(trial)
            nfev += 1
            trial_phi = 0.5 * trial_fun @ trial_fun
            if np.isfinite(trial_fun).all() and trial_phi <= (1.0 - 2e-4 * t) * phi:
                accepted = True
                break
            t *= 0.5
        nit += 1
        if not accepted:
            status = NO_DESCENT
            break
        x, fun, phi = trial, trial_fun, trial_phi
        # the full Newton step, not the damped one (as the dense path)
        if np.abs(step).max() <= tol + rtol * np.abs(x).max():
            status = Status.SUCCESS
    codes = np.array([status])
    message = _system_messages(x[None, :], codes, True)[0]
    status = int(Status.SINGULAR if status == NO_DESCENT else status)
    return OptimizeResult(x=x, fun=fun, status=status, success=status == 0,
                          converged=status == 0, nit=nit, nfev=nfev, message=message)
