"""Kernels of sparse finite differences: column colouring, grouped points, pattern entries.

A sparsity pattern arrives as index arrays (``intp``) of its rows (CSR: ``row_ptr``,
``row_cols``) and, for the colouring, of its columns (CSC: ``col_ptr``, ``col_rows``). Columns
of one group share no row, so one perturbation moves them all and every entry of the pattern
is still a plain difference quotient (Curtis, Powell and Reid 1974).
"""
import numpy as np
cimport numpy as cnp
from libc.math cimport fabs, isfinite

cnp.import_array()

ctypedef cnp.intp_t intp


def greedy_groups(const intp[::1] col_ptr, const intp[::1] col_rows, const intp[::1] row_ptr,
                  const intp[::1] row_cols, const intp[::1] order):
    """First-fit colouring of the columns, visited in ``order``: each column takes the smallest
    group that no column sharing a row with it holds. Returns ``(groups, count)``.

    The work is ``sum over rows of (row length)**2`` (a dense row of n columns costs n**2).

    Examples
    --------
    >>> import numpy as np
    >>> ptr, idx = np.array([0, 1, 3, 4]), np.array([0, 0, 1, 1])   # columns of [[1,1,0],[0,1,1]]
    >>> rptr, ridx = np.array([0, 2, 4]), np.array([0, 1, 1, 2])
    >>> groups, count = greedy_groups(ptr, idx, rptr, ridx, np.arange(3))
    >>> groups.tolist(), count
    ([0, 1, 0], 2)
    """
    cdef Py_ssize_t n = order.shape[0], t, i, j, p, q, k, c, count = 0
    groups = np.full(n, -1, dtype=np.intp)
    taken = np.full(n + 1, -1, dtype=np.intp)     # taken[c] == t: group c is barred for column t
    cdef intp[::1] group = groups, barred = taken
    with nogil:
        for t in range(n):
            j = order[t]
            for p in range(col_ptr[j], col_ptr[j + 1]):
                i = col_rows[p]
                for q in range(row_ptr[i], row_ptr[i + 1]):
                    k = row_cols[q]
                    if group[k] >= 0:
                        barred[group[k]] = t
            c = 0
            while barred[c] == t:
                c += 1
            group[j] = c
            if c >= count:
                count = c + 1
    return groups, count


def clashing_row(const intp[::1] row_ptr, const intp[::1] row_cols, const intp[::1] groups,
                 Py_ssize_t count):
    """The first row holding two columns of one group, or -1 when ``groups`` is a valid
    grouping (``0 <= groups < count``).

    Examples
    --------
    >>> import numpy as np
    >>> rptr, ridx = np.array([0, 2, 4]), np.array([0, 1, 1, 2])
    >>> clashing_row(rptr, ridx, np.array([0, 1, 0]), 2), clashing_row(rptr, ridx, np.zeros(3, dtype=np.intp), 1)
    (-1, 0)
    """
    cdef Py_ssize_t m = row_ptr.shape[0] - 1, i, q, clash = -1
    seen = np.full(count, -1, dtype=np.intp)
    cdef intp[::1] last = seen
    with nogil:
        for i in range(m):
            for q in range(row_ptr[i], row_ptr[i + 1]):
                if last[groups[row_cols[q]]] == i:
                    clash = i
                    break
                last[groups[row_cols[q]]] = i
            if clash >= 0:
                break
    return clash


def shift_points(double[:, ::1] points, const double[::1] x, const double[::1] h,
                 const intp[::1] columns, const intp[::1] groups, const double[::1] offsets,
                 Py_ssize_t first_row, Py_ssize_t count):
    """Write the grouped stencil points of ``columns`` into rows of ``points`` (which hold
    ``x``): row ``first_row + s * count + g`` moves every column ``j`` of group ``g`` to
    ``x[j] + offsets[s] * h[j]`` (``groups[t]`` is the group of ``columns[t]``).

    Examples
    --------
    >>> import numpy as np
    >>> points = np.zeros((2, 3))
    >>> shift_points(points, np.zeros(3), np.full(3, 0.5), np.arange(3), np.array([0, 1, 0]),
    ...              np.array([1.0]), 0, 2)
    >>> points
    array([[0.5, 0. , 0.5],
           [0. , 0.5, 0. ]])
    """
    cdef Py_ssize_t t, s, j, row
    cdef Py_ssize_t noffsets = offsets.shape[0]
    with nogil:
        for t in range(columns.shape[0]):
            j = columns[t]
            for s in range(noffsets):
                row = first_row + s * count + groups[t]
                points[row, j] = x[j] + offsets[s] * h[j]


def grouped_entries(const double[:, :] values, Py_ssize_t base_row, const intp[::1] row_ptr,
                    const intp[::1] row_cols, const intp[::1] column_row, const intp[::1] column_kind,
                    const intp[::1] kind_stride, const double[:, ::1] kind_weights,
                    const double[::1] center_weight, const intp[::1] kind_offsets,
                    const double[::1] h, double[::1] data, double[::1] magnitude=None):
    """Write the pattern's entries (CSR order) from the values ``(K, m)`` at the grouped points
    into ``data``; return how many are not finite.

    Entry ``(i, j)`` of a column of stencil kind ``c`` is ``(center_weight[c] * values[base_row,
    i] + sum_s kind_weights[c, s] * values[column_row[j] + s * kind_stride[c], i]) / h[j]``.
    ``magnitude`` (optional) receives ``sum |w v| / h`` (for the rounding error).

    Examples
    --------
    >>> import numpy as np
    >>> values = np.array([[1.0], [1.5], [3.0]])     # f(x), then f at two group points
    >>> data = np.empty(2)
    >>> grouped_entries(values, 0, np.array([0, 2]), np.array([0, 1]), np.array([1, 2]),
    ...                 np.array([0, 0]), np.array([1]), np.array([[1.0]]), np.array([-1.0]),
    ...                 np.array([1]), np.array([0.5, 0.5]), data)
    0
    >>> data
    array([1., 4.])
    """
    cdef Py_ssize_t m = row_ptr.shape[0] - 1, i, p, j, c, s, row, bad = 0
    cdef bint sizes = magnitude is not None
    cdef double total, size, term, base
    with nogil:
        for i in range(m):
            base = values[base_row, i]
            for p in range(row_ptr[i], row_ptr[i + 1]):
                j = row_cols[p]
                c = column_kind[j]
                total = 0.0
                size = 0.0
                if center_weight[c] != 0.0:
                    total = center_weight[c] * base
                    size = fabs(total)
                row = column_row[j]
                for s in range(kind_offsets[c]):
                    term = kind_weights[c, s] * values[row + s * kind_stride[c], i]
                    total = total + term
                    size = size + fabs(term)
                total = total / h[j]
                data[p] = total
                if sizes:
                    magnitude[p] = size / h[j]
                if not isfinite(total):
                    bad += 1
    return bad


def transposed(const intp[::1] row_ptr, const intp[::1] row_cols, Py_ssize_t n):
    """The columns of a CSR pattern with ``n`` columns: ``(col_ptr, col_rows)``, rows sorted.

    Examples
    --------
    >>> import numpy as np
    >>> col_ptr, col_rows = transposed(np.array([0, 2, 4]), np.array([0, 1, 1, 2]), 3)
    >>> col_ptr.tolist(), col_rows.tolist()
    ([0, 1, 3, 4], [0, 0, 1, 1])
    """
    cdef Py_ssize_t m = row_ptr.shape[0] - 1, i, p, j
    ptr_out = np.zeros(n + 1, dtype=np.intp)
    rows_out = np.empty(row_cols.shape[0], dtype=np.intp)
    fill_out = np.empty(n, dtype=np.intp)
    cdef intp[::1] col_ptr = ptr_out, col_rows = rows_out, fill = fill_out
    with nogil:
        for p in range(row_cols.shape[0]):
            col_ptr[row_cols[p] + 1] += 1
        for j in range(n):
            col_ptr[j + 1] += col_ptr[j]
            fill[j] = col_ptr[j]
        for i in range(m):
            for p in range(row_ptr[i], row_ptr[i + 1]):
                j = row_cols[p]
                col_rows[fill[j]] = i
                fill[j] += 1
    return ptr_out, rows_out


def overlap_degrees(const intp[::1] col_ptr, const intp[::1] col_rows, const intp[::1] row_ptr):
    """Per column, ``sum of the lengths of its rows``: a bound on its number of neighbours in
    the column intersection graph (the largest-first ordering of the colouring).

    Examples
    --------
    >>> import numpy as np
    >>> overlap_degrees(np.array([0, 1, 3, 4]), np.array([0, 0, 1, 1]), np.array([0, 2, 4])).tolist()
    [2, 4, 2]
    """
    cdef Py_ssize_t n = col_ptr.shape[0] - 1, j, p
    degrees = np.zeros(n, dtype=np.intp)
    cdef intp[::1] degree = degrees
    with nogil:
        for j in range(n):
            for p in range(col_ptr[j], col_ptr[j + 1]):
                degree[j] += row_ptr[col_rows[p] + 1] - row_ptr[col_rows[p]]
    return degrees
