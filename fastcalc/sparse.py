"""Sparse Jacobians and Hessians by column grouping (Curtis, Powell and Reid 1974).

Columns of a Jacobian that share no row can be perturbed together: one evaluation of ``f`` at
``x + sum_j h_j e_j`` over a group gives every entry of those columns, since each row depends
on at most one of them. A tridiagonal Jacobian of any size then costs 3 groups, i.e. 4
evaluations of ``f`` (forward) or 7 (central; ``f(x)`` is always evaluated, for the output
size and for one-sided stencils). :func:`group_columns` computes the groups once (a greedy
colouring), :func:`fastcalc.jacobian` and :func:`fastcalc.hessian` use them with
``sparsity=`` (and ``groups=``, to reuse them).

All the points of one Jacobian are evaluated in one batch: one call of a vectorized ``f``
(``X`` of shape ``(n, K)``), ``K`` calls of a plain one, and a ``nogil`` loop on one thread for
a compiled vector field (``n_threads`` is validated but not used: the grouped batches are a
handful of points). A column whose stencil meets a non-finite value is recomputed alone with
the dense path's one-sided fallback.

Entries outside the pattern are not computed: a pattern that misses a real non-zero gives a
Jacobian without it, and its column group's other columns absorb its contribution (wrong
values in the rows it touches). ``jacobian(..., check=True)`` compares the pattern against a
dense estimate (n or 2n more evaluations) and raises a ValueError naming the missed entries.
"""
from functools import lru_cache

import numpy as np
from scipy.sparse import csr_array, issparse

from ._differentiate import stencil
from ._evaluate import FunctionKind, real_values, resolve
from ._parallel import n_threads_for
from ._sparse import (clashing_row, greedy_groups, grouped_entries, overlap_degrees,
                      shift_points, transposed)
from ._status import Status
from .differentiate import (_CHECK_STEPS, _EPS, _ROUNDING_ULPS, _UNCONVERGED,
                            _argument_rounding, _bounded_kinds, _check_args, _check_bounds,
                            _check_method, _check_point, _checked, _complex_safe, _quiet, _result,
                            _steps)

__all__ = ["group_columns"]

_KINDS = ("central", "forward", "backward")


class Pattern:
    """A sparsity pattern: canonical CSR index arrays (``intp``), explicit zeros dropped."""

    def __init__(self, sparsity, name="sparsity"):
        if issparse(sparsity):
            if sparsity.ndim != 2:
                raise ValueError(f"{name} must be 2-D, got shape {sparsity.shape}")
            matrix = csr_array(sparsity)
            if not matrix.has_canonical_format or not (matrix.data != 0).all():
                matrix = matrix.copy()          # (never the caller's arrays)
                matrix.sum_duplicates()
                matrix.eliminate_zeros()
        else:
            dense = np.asarray(sparsity)
            if dense.dtype.kind not in "biuf":
                raise TypeError(f"{name} must be a boolean or numeric array or a scipy.sparse "
                                f"matrix, got dtype {dense.dtype}")
            if dense.ndim != 2:
                raise ValueError(f"{name} must be 2-D, got shape {dense.shape}")
            matrix = csr_array(dense != 0)
        self.shape = matrix.shape
        self.row_ptr = matrix.indptr.astype(np.intp, copy=False)
        self.row_cols = matrix.indices.astype(np.intp, copy=False)
        self.nnz = self.row_cols.size
        self._columns = None

    def columns(self):
        """``(col_ptr, col_rows)``: the CSC index arrays (computed once)."""
        if self._columns is None:
            self._columns = transposed(self.row_ptr, self.row_cols, self.shape[1])
        return self._columns

    def matrix(self, data):
        """The ``csr_array`` of this pattern holding ``data`` (CSR order)."""
        return csr_array((data, self.row_cols, self.row_ptr), shape=self.shape)

    def transpose_order(self):
        """``order`` such that ``data[order]`` is the entry ``(j, i)`` of each ``(i, j)`` (for a
        symmetric pattern)."""
        positions = csr_array((np.arange(self.nnz, dtype=np.float64), self.row_cols,
                               self.row_ptr), shape=self.shape)
        return positions.T.tocsr().data.astype(np.intp)    # tocsr sorts: CSR order


def group_columns(sparsity):
    """Group the columns of a sparsity pattern so that no two columns of a group share a row.

    A Jacobian with this pattern then costs one evaluation per group (two for central
    differences) plus one: pass the groups to :func:`fastcalc.jacobian` (``groups=``) to reuse
    them.

    Parameters
    ----------
    sparsity : array_like or scipy.sparse matrix, shape (m, n)
        Non-zero pattern of the Jacobian: boolean or numeric (non-zero = structural entry), or
        any scipy.sparse matrix or array (its explicit zeros are not structural).

    Returns
    -------
    groups : ndarray of intp, shape (n,)
        ``groups[j]`` is the group of column ``j``, from 0 to ``groups.max()``; like SciPy's
        ``scipy.optimize._numdiff.group_columns``.

    Raises
    ------
    ValueError
        ``sparsity`` not 2-D.
    TypeError
        ``sparsity`` neither numeric nor boolean.

    Notes
    -----
    A greedy (first-fit) colouring of the column intersection graph in the natural order
    (optimal for banded patterns: ``2 w + 1`` groups for half-bandwidth ``w``) and, unless
    that reached the lower bound of the longest row, in largest-first order (columns
    overlapping the most entries first); the one with fewer groups wins. SciPy colours in a random order: tridiagonal patterns take it 5 groups, random
    patterns of 1% density about 15% more than here. The work is the sum over rows of their
    squared lengths (a dense row of n entries costs n**2); n = 100,000 tridiagonal takes a few
    milliseconds.

    Examples
    --------
    >>> import numpy as np
    >>> import scipy.sparse as sp
    >>> from fastcalc import group_columns
    >>> group_columns(sp.diags_array([1.0, 1.0, 1.0], offsets=[-1, 0, 1], shape=(7, 7)))
    array([0, 1, 2, 0, 1, 2, 0])
    """
    pattern = sparsity if isinstance(sparsity, Pattern) else Pattern(sparsity)
    return _greedy(pattern)[0]


def _greedy(pattern):
    """``(groups, count)`` of :func:`group_columns`."""
    n = pattern.shape[1]
    col_ptr, col_rows = pattern.columns()
    groups, count = greedy_groups(col_ptr, col_rows, pattern.row_ptr, pattern.row_cols,
                                  np.arange(n, dtype=np.intp))
    # the columns of a row need distinct groups: at that bound no order can do better
    longest_row = int(np.diff(pattern.row_ptr).max()) if pattern.shape[0] else 0
    if count > max(longest_row, 1):
        largest_first = np.argsort(-overlap_degrees(col_ptr, col_rows, pattern.row_ptr),
                                   kind="stable").astype(np.intp, copy=False)
        other, other_count = greedy_groups(col_ptr, col_rows, pattern.row_ptr,
                                           pattern.row_cols, largest_first)
        if other_count < count:
            groups, count = other, other_count
    return groups, count


def _checked_groups(groups, pattern, name="groups"):
    """``(groups, count)`` from the user's ``groups``, checked against the pattern."""
    array = np.asarray(groups)
    n = pattern.shape[1]
    if array.dtype.kind not in "iu" or array.shape != (n,):
        raise ValueError(f"{name} must be an integer array of shape ({n},) (one group per "
                         f"column of sparsity), got {array.dtype} of shape {array.shape}")
    if n and array.min() < 0:
        raise ValueError(f"{name} must be non-negative")
    array = array.astype(np.intp)
    count = int(array.max()) + 1 if n else 0
    if not np.bincount(array, minlength=count).all():
        # renumber to 0..count-1 (a user's numbering may skip groups)
        used, array = np.unique(array, return_inverse=True)
        array, count = array.astype(np.intp).reshape(n), used.size
    clash = clashing_row(pattern.row_ptr, pattern.row_cols, array, count)
    if clash >= 0:
        raise ValueError(f"{name} puts two columns that share row {clash} of sparsity in one "
                         "group (use fastcalc.group_columns(sparsity))")
    return array, count


@lru_cache(maxsize=32)
def _kinds_stencils(method, accuracy):
    """Per stencil kind: ``(moved offsets, their weights, weight of f(x))`` (read-only)."""
    table = {}
    for kind in _KINDS:
        kind_accuracy = accuracy + (accuracy % 2 if kind == "central" else 0)
        offsets, weights, _ = stencil(kind, kind_accuracy, 1)
        offsets, weights = np.array(offsets), np.array(weights)
        moved = offsets != 0
        center = float(weights[~moved].sum())
        offsets, weights = offsets[moved], weights[moved]
        offsets.setflags(write=False)
        weights.setflags(write=False)
        table[kind] = (offsets, weights, center)
    return table


class GroupedStencil:
    """The grouped points of a sparse Jacobian and how their values combine into its entries.

    Columns of each stencil kind (one-sided ones near bounds) are grouped apart; row 0 of
    the points is ``x``, then, per kind, ``len(offsets)`` blocks of one row per group.
    """

    def __init__(self, pattern, groups, count, kinds, method, accuracy):
        self.pattern = pattern
        stencils = _kinds_stencils(method, accuracy)
        n = pattern.shape[1]
        self.column_row = np.empty(n, dtype=np.intp)
        self.column_kind = np.zeros(n, dtype=np.intp)
        width = max(s[0].size for s in stencils.values())
        self.kind_weights = np.zeros((len(_KINDS), width))
        self.center_weight = np.zeros(len(_KINDS))
        self.kind_offsets = np.zeros(len(_KINDS), dtype=np.intp)
        self.kind_stride = np.ones(len(_KINDS), dtype=np.intp)
        self.blocks = []        # (columns, their groups, offsets, first row, groups of the kind)
        row = 1
        uniform = kinds is None
        for c, kind in enumerate(_KINDS):
            if uniform:
                if kind != method:
                    continue
                columns, local, local_count = np.arange(n, dtype=np.intp), groups, count
            else:
                columns = np.flatnonzero(kinds == kind).astype(np.intp)
                if not columns.size:
                    continue
                used, local = np.unique(groups[columns], return_inverse=True)
                local, local_count = local.astype(np.intp).reshape(-1), used.size
            offsets, weights, center = stencils[kind]
            self.column_kind[columns] = c
            self.column_row[columns] = row + local
            self.kind_weights[c, :weights.size] = weights
            self.center_weight[c] = center
            self.kind_offsets[c] = offsets.size
            self.kind_stride[c] = local_count
            self.blocks.append((columns, local, offsets, row, local_count))
            row += offsets.size * local_count
        self.rows = row             # points per evaluation at one step

    def points(self, x, h, levels=1, factors=(1.0,)):
        """Points ``(1 + levels * (rows - 1), n)``: ``x``, then the grouped points at the steps
        ``h * factors[k]`` one level after the other."""
        per = self.rows - 1
        points = np.empty((1 + levels * per, x.size))
        points[...] = x
        for level in range(levels):
            step = h * factors[level]
            for columns, local, offsets, row, count in self.blocks:
                shift_points(points, x, step, columns, local, offsets, row + level * per, count)
        return points

    def entries(self, values, h, level=0, sizes=False, shift=0):
        """``(data, magnitude, bad)`` of the pattern's entries at one level's step ``h`` from
        the values ``(K, m)`` at :meth:`points` (without their first ``shift`` rows: a central
        stencil does not use ``f(x)``): ``magnitude`` (``sum |w f| / h``, for the rounding
        error) only with ``sizes``, ``bad`` (non-finite entries) None if there are none."""
        data = np.empty(self.pattern.nnz)
        magnitude = np.empty(self.pattern.nnz) if sizes else None
        count = grouped_entries(values, 0, self.pattern.row_ptr, self.pattern.row_cols,
                                self.column_row + (level * (self.rows - 1) - shift),
                                self.column_kind,
                                self.kind_stride, self.kind_weights, self.center_weight,
                                self.kind_offsets, h, data, magnitude)
        return data, magnitude, (~np.isfinite(data) if count else None)


def sparse_jacobian(f, x, *, sparsity, groups=None, check=False, method="central", accuracy=2,
                    step=None, bounds=None, args=(), vectorized=False, full_output=False,
                    n_out=None, n_threads=None):
    """:func:`fastcalc.jacobian` with ``sparsity=`` (see its documentation)."""
    x = _check_point(x)
    if method == "richardson":
        raise ValueError("method='richardson' is not available with sparsity (use 'central' "
                         "with a higher accuracy, or the dense jacobian)")
    accuracy = _check_method(method, accuracy)
    n_threads_for(n_threads)
    args = _check_args(args)
    function = resolve(f, args=args, vectorized=vectorized, signatures=("vector",))
    bounds = _check_bounds(bounds, x)
    if sparsity is None:
        raise ValueError("groups needs sparsity (the pattern they were computed from)")
    pattern = sparsity if isinstance(sparsity, Pattern) else Pattern(sparsity)
    if pattern.shape[1] != x.size:
        raise ValueError(f"sparsity must have one column per component of x ({x.size}), got "
                         f"shape {pattern.shape}")
    if n_out is not None and (isinstance(n_out, bool) or not isinstance(n_out, (int, np.integer))
                              or n_out < 1):
        raise ValueError(f"n_out must be a positive int, got {n_out!r}")
    m = pattern.shape[0]
    if n_out is not None and n_out != m:
        raise ValueError(f"n_out = {n_out} does not match sparsity's {m} rows")
    groups, count = _greedy(pattern) if groups is None else _checked_groups(groups, pattern)
    if method == "complex":
        df, error, status, nfev = _complex_jacobian(function, x, pattern, groups, count, step, m)
    else:
        df, error, status, nfev = _real_jacobian(function, x, pattern, groups, count, method,
                                                 accuracy, step, bounds, m, full_output)
    jac = pattern.matrix(df)
    if check:
        _check_pattern(f, x, pattern, method, accuracy, step, bounds, args, vectorized, m,
                       n_threads)
    if full_output:
        result = _result(jac, None if error is None else pattern.matrix(error), status, nfev)
        result.ngroups = count
        return result
    return jac


def _real_jacobian(function, x, pattern, groups, count, method, accuracy, step, bounds, m,
                   full_output):
    """Entries, error estimates, per-column status and nfev of a real-step sparse Jacobian."""
    h = np.array(_steps(x, step, method, accuracy, 1))
    kinds = None if bounds is None else _bounded_kinds(method, accuracy, x, h, bounds)
    plan = GroupedStencil(pattern, groups, count, kinds, method, accuracy)
    factors = _CHECK_STEPS if full_output else (1.0,)
    points = plan.points(x, h, len(factors), factors)
    compiled = function.kind == FunctionKind.COMPILED
    values = function.vector_values(points, m if compiled else -1)
    if values.shape[1] != pattern.shape[0]:
        raise ValueError(f"sparsity must have one row per output of f ({values.shape[1]}), "
                         f"got shape {pattern.shape}")
    nfev = 1 + len(factors) * (plan.rows - 1)
    if not full_output:
        df, _, bad = plan.entries(values, h)
        if bad is None:
            return df, None, np.zeros(x.size, dtype=np.int8), nfev
        status_of_entry = np.zeros(pattern.nnz, dtype=np.int8)
        nfev += _one_sided_repair(function, x, h, pattern, bad, df, None, status_of_entry,
                                  bounds, m)
        return df, None, _column_status(status_of_entry, pattern.row_cols, x.size), nfev
    columns = pattern.row_cols
    levels = [plan.entries(values, h * factor, level, sizes=True)
              for level, factor in enumerate(factors)]
    estimates = np.stack([d for d, _, _ in levels])[:, :, None]
    bad = np.stack([np.zeros(pattern.nnz, dtype=bool) if b is None else b
                    for _, _, b in levels]).astype(np.uint8)
    with _quiet():
        rounding = np.stack([_ROUNDING_ULPS * _EPS * mag + _argument_rounding(
            d[:, None], x[columns], 1.0 / (h[columns] * factor))[:, 0]
            for (d, mag, _), factor in zip(levels, factors)])[:, :, None]
    kind_of_entry = plan.column_kind[columns]
    error = np.empty(pattern.nnz)
    flags = np.zeros(pattern.nnz, dtype=np.uint8)
    for c, kind in enumerate(_KINDS):
        mine = np.flatnonzero(kind_of_entry == c)
        if mine.size:
            kind_accuracy = accuracy + (accuracy % 2 if kind == "central" else 0)
            _, e, fl = _checked(estimates[:, mine], rounding[:, mine], bad[:, mine], kind,
                                kind_accuracy)
            error[mine], flags[mine] = e[:, 0], fl
    status_of_entry = np.zeros(pattern.nnz, dtype=np.int8)
    status_of_entry[(flags & _UNCONVERGED) != 0] = Status.MAX_ITERATIONS
    df = estimates[0, :, 0].copy()
    failed = bad[0] != 0
    if failed.any():
        nfev += _one_sided_repair(function, x, h, pattern, failed, df, error, status_of_entry,
                                  bounds, m)
    return df, error, _column_status(status_of_entry, columns, x.size), nfev


def _one_sided_repair(function, x, h, pattern, failed, df, error, status_of_entry, bounds, m):
    """Recompute the columns holding a non-finite entry as the dense path does: extrapolated
    accuracy-2 one-sided differences, forward first, then backward (each such column costs
    its own points: ``m`` values each). Columns that still fail are NaN with status 3.
    Updates the entry arrays in place; returns the extra evaluations."""
    from .differentiate import _one_sided_kinds, _stage
    n = x.size
    rows = np.repeat(np.arange(pattern.shape[0]), np.diff(pattern.row_ptr))
    remaining = np.unique(pattern.row_cols[failed])
    nfev = 0
    for side in ("forward", "backward"):
        kinds = _one_sided_kinds(
            x[remaining], h[remaining], [np.full(remaining.size, side, dtype=object)], 2,
            None if bounds is None else (bounds[0][remaining], bounds[1][remaining]))
        usable = np.flatnonzero(kinds != None)  # noqa: E711 (object array)
        if not usable.size:
            continue
        targets = remaining[usable]
        column_df, column_error, column_bad, extra, _ = _stage(
            function, x, targets, h[targets], kinds[usable], True, 2, m, None)
        nfev += extra
        ok = (column_bad & ~np.uint8(_UNCONVERGED)) == 0
        local = np.full(n, -1, dtype=np.intp)
        local[targets[ok]] = np.flatnonzero(ok)
        mine = local[pattern.row_cols] >= 0
        where = local[pattern.row_cols[mine]], rows[mine]
        df[mine] = column_df[where]
        if error is not None:
            error[mine] = column_error[where]
        status_of_entry[mine] = np.where((column_bad[where[0]] & _UNCONVERGED) != 0,
                                         Status.MAX_ITERATIONS, 0)
        remaining = np.setdiff1d(remaining, targets[ok])
        if not remaining.size:
            break
    lost = np.isin(pattern.row_cols, remaining)
    df[lost] = np.nan
    if error is not None:
        error[lost] = np.nan
    status_of_entry[lost] = Status.NON_FINITE
    return nfev


def _column_status(status_of_entry, columns, n):
    """Per column, the worst status of its entries."""
    status = np.zeros(n, dtype=np.int8)
    if status_of_entry.any():
        np.maximum.at(status, columns, status_of_entry)
    return status


def _complex_jacobian(function, x, pattern, groups, count, step, m):
    """Complex-step entries ``Im f_i(x + i h d_g) / h_j``: one evaluation per group (+ f(x))."""
    if function.kind == FunctionKind.COMPILED:
        raise TypeError(f"{function.name}: method='complex' needs a Python function that "
                        "accepts complex input; compiled callables are real-valued")
    n = x.size
    h = _steps(x, step, "complex", 2, 1)
    points = np.empty((1 + count, n), dtype=np.complex128)
    points[...] = x
    points[1 + groups, np.arange(n)] += 1j * h
    with _complex_safe(function.name):
        if function.kind == FunctionKind.VECTORIZED:
            values = real_values(function.function(points.T, *function.args), function.name,
                                 complex_ok=True)
            if values.ndim == 1 and m == 1:
                values = values[None, :]
            if values.shape != (m, 1 + count):
                raise ValueError(f"{function.name} (vectorized vector field) returned shape "
                                 f"{values.shape}, expected ({m}, {1 + count})")
            values = values.T
        else:
            values = np.array([real_values(function.function(p, *function.args),
                                           function.name, complex_ok=True).reshape(-1)
                               for p in points])
            if values.shape[1] != m:
                raise ValueError(f"sparsity must have one row per output of f "
                                 f"({values.shape[1]}), got shape {pattern.shape}")
    values = np.asarray(values, dtype=np.complex128)
    rows = np.repeat(np.arange(m), np.diff(pattern.row_ptr))
    columns = pattern.row_cols
    picked = values[1 + groups[columns], rows]
    df = picked.imag / h[columns]
    failed = ~np.isfinite(picked) | ~np.isfinite(df)
    df[failed] = np.nan
    status_of_entry = np.where(failed, Status.NON_FINITE, 0).astype(np.int8)
    return (df, _ROUNDING_ULPS * _EPS * np.abs(df), _column_status(status_of_entry, columns, n),
            1 + count)


def _check_pattern(f, x, pattern, method, accuracy, step, bounds, args, vectorized, m,
                   n_threads):
    """ValueError naming the entries outside ``pattern`` where a dense estimate is non-zero
    beyond its own error estimate."""
    from .differentiate import jacobian
    dense = jacobian(f, x, method=method, accuracy=accuracy, step=step, bounds=bounds, args=args,
                     vectorized=vectorized, full_output=True, n_out=m, n_threads=n_threads)
    outside = np.ones(pattern.shape, dtype=bool)
    outside[np.repeat(np.arange(m), np.diff(pattern.row_ptr)), pattern.row_cols] = False
    missed = outside & (np.abs(dense.df) > dense.error) & np.isfinite(dense.df)
    if missed.any():
        rows, cols = np.nonzero(missed)
        shown = ", ".join(f"({i}, {j})" for i, j in zip(rows[:5], cols[:5]))
        more = f" and {rows.size - 5} more" if rows.size > 5 else ""
        raise ValueError(f"sparsity misses {rows.size} non-zero entries of the Jacobian: "
                         f"{shown}{more} (a dense estimate differs from zero there)")


# --------------------------------------------------------------------------------------------
# Hessians

# Rows of points per chunk of a Python f's evaluation (chunk * n doubles, 32 MB at most).
_POINTS_PER_CHUNK = 1 << 22


def sparse_hessian(f, x, *, sparsity, method="central", accuracy=2, step=None, grad=None,
                   args=(), vectorized=False, full_output=False, n_threads=None):
    """:func:`fastcalc.hessian` with ``sparsity=`` (see its documentation)."""
    x = _check_point(x)
    n = x.size
    pattern = sparsity if isinstance(sparsity, Pattern) else Pattern(sparsity)
    if pattern.shape != (n, n):
        raise ValueError(f"sparsity must have shape (n, n) = ({n}, {n}), got {pattern.shape}")
    pattern = _symmetric_pattern(pattern)
    if grad is not None:
        from .differentiate import jacobian
        result = jacobian(grad, x, sparsity=pattern, method=method, accuracy=accuracy,
                          step=step, args=args, vectorized=vectorized, full_output=True,
                          n_out=n, n_threads=n_threads) if full_output else None
        J = result.df if full_output else jacobian(
            grad, x, sparsity=pattern, method=method, accuracy=accuracy, step=step, args=args,
            vectorized=vectorized, n_out=n, n_threads=n_threads)
        order = pattern.transpose_order()
        df = pattern.matrix(0.5 * (J.data + J.data[order]))
        if not full_output:
            return df
        error = pattern.matrix(0.5 * (result.error.data + result.error.data[order]))
        return _result(df, error, result.status, result.nfev)
    if method != "central" or accuracy != 2:
        raise ValueError("a sparse Hessian from values of f supports method='central' with "
                         "accuracy 2 (pass grad= for the other methods)")
    n_threads_for(n_threads)
    function = resolve(f, args=_check_args(args), vectorized=vectorized, signatures=("scalar",))
    h = np.array(_steps(x, step, "central", 2, 2))
    entries, error, status, nfev = _pair_stencil(function, x, h, pattern, full_output, n_threads)
    df = pattern.matrix(entries)
    if full_output:
        return _result(df, pattern.matrix(error), status, nfev)
    return df


def _symmetric_pattern(pattern):
    """``pattern`` or, if it is not symmetric, its union with its transpose."""
    structure = pattern.matrix(np.ones(pattern.nnz))
    union = structure + structure.T
    if union.nnz == pattern.nnz:
        return pattern
    return Pattern(union)


def _pair_stencil(function, x, h, pattern, full_output, n_threads):
    """The pattern's entries from the symmetric 2-D stencil of :func:`fastcalc.hessian` on the
    diagonal and the pattern's pairs ``i < j`` only: ``1 + 2 n + 2 p`` points (``p`` pairs)."""
    from ._differentiate import combine
    from .differentiate import _pair_template, _values
    n = x.size
    rows = np.repeat(np.arange(n), np.diff(pattern.row_ptr))
    cols = pattern.row_cols
    upper = rows < cols
    ui, uj = rows[upper], cols[upper]
    diagonal = np.arange(n)
    t = _pair_template(n, ui, uj)
    output, point, coefficient, side = t["output"], t["point"], t["coefficient"], t["side"]
    first_index, second_index, npoints = t["first_index"], t["second_index"], t["npoints"]
    factors = _CHECK_STEPS if full_output else (1.0,)
    levels = []
    for factor in factors:
        step = h * factor
        with _quiet():
            up, down = x + step, x - step
        first_value = np.concatenate([[0.0], up, down, up[ui], down[ui]])
        second_value = np.concatenate([[0.0], np.zeros(2 * n), up[uj], down[uj]])
        chunk = max(1, _POINTS_PER_CHUNK // n)
        values = np.concatenate([
            _values(function, x, first_index[s:s + chunk], first_value[s:s + chunk],
                    second_index[s:s + chunk], second_value[s:s + chunk], n_threads=n_threads)
            for s in range(0, npoints, chunk)])
        scale = np.concatenate([step ** -2, 0.5 / (step[ui] * step[uj])])
        value, magnitude, bad = combine(values, output, point, coefficient, side, scale)
        size = np.maximum(np.abs(x)[np.concatenate([diagonal, ui])],
                          np.abs(x)[np.concatenate([diagonal, uj])])
        with _quiet():
            rounding = _ROUNDING_ULPS * _EPS * magnitude[:, 0] + _argument_rounding(
                value, size, np.sqrt(np.abs(scale)))[:, 0]
        levels.append((value[:, 0], rounding, bad))
    nfev = npoints * len(factors)
    unique = levels[0][0]
    failed = levels[0][2] != 0
    status = np.where(failed, Status.NON_FINITE, 0).astype(np.int8)
    error = levels[0][1]
    if full_output:
        estimates = np.stack([v for v, _, _ in levels])[:, :, None]
        rounding = np.stack([r for _, r, _ in levels])[:, :, None]
        bad = np.stack([b for _, _, b in levels])
        _, error, flags = _checked(estimates, rounding, bad, "central", 2)
        error = error[:, 0]
        status[((flags & _UNCONVERGED) != 0) & ~failed] = Status.MAX_ITERATIONS
    unique = np.where(failed, np.nan, unique)
    error = np.where(failed, np.nan, error)
    # unique entries -> the pattern's CSR order: (i, i) from the diagonal, (i, j) from its pair
    position = np.empty(pattern.nnz, dtype=np.intp)
    on_diagonal = rows == cols
    position[on_diagonal] = rows[on_diagonal]
    position[upper] = n + np.arange(ui.size)
    lower = rows > cols
    if lower.any():      # (i, j) below the diagonal: the pair of its transpose (j, i)
        pair_of_upper = np.cumsum(upper) - 1
        position[lower] = n + pair_of_upper[pattern.transpose_order()[lower]]
    column_status = np.zeros(n, dtype=np.int8)
    entry_status = status[position]
    if entry_status.any():
        np.maximum.at(column_status, cols, entry_status)
    return unique[position], error[position], column_status, nfev
