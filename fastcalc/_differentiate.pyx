"""Kernels of the finite-difference calculus: stencil coefficients, point evaluation, combination.

A finite-difference *plan* is described by flat arrays so that one set of kernels serves
gradients, Jacobians, Hessians and elementwise derivatives:

* a table of ``K`` points, each the base point ``x`` with at most two coordinates replaced:
  coordinate ``first_index[p]`` (``-1``: none) set to ``first_value[p]`` and coordinate
  ``second_index[p]`` set to ``second_value[p]``;
* a list of terms ``(output, point, coefficient, side)``: output ``v`` is
  ``scale[v] * sum(coefficient * f(point))``; ``side`` (+1, -1, 0) records which side of ``x`` the
  point lies on, so that the caller can choose a one-sided fallback stencil.

Python callables are evaluated on the materialized ``(K, n)`` point matrix (one call when
vectorized); compiled callables perturb a per-thread copy of ``x`` in a ``nogil`` loop instead.
"""
from fractions import Fraction
from functools import lru_cache

import numpy as np
cimport numpy as cnp
from cython.parallel cimport parallel, prange
from libc.math cimport fabs, isfinite, pow, INFINITY, NAN
from libc.stdlib cimport malloc, free
from libc.string cimport memcpy
from cpython.float cimport PyFloat_Check, PyFloat_AS_DOUBLE

from fastcalc._evaluate cimport (UserFunction, scalar_field_t, vector_field_t, elementwise_t,
                                 block_equations_t, COMPILED)
from fastcalc._evaluate import real_values
from fastcalc._parallel cimport resolve_threads

cnp.import_array()

# Below this many coordinate-evaluations a compiled plan runs on one thread: thread start-up
# would cost more than it saves.
cdef Py_ssize_t _PARALLEL_WORK = 4000000
# Largest first-derivative stencil (central, accuracy 8) fits with room to spare.
DEF _MAX_STENCIL = 16


@lru_cache(maxsize=None)
def stencil(str kind, int accuracy, int order):
    """Offsets and weights of a finite-difference stencil, exact (computed once, then cached).

    Parameters
    ----------
    kind : {"central", "forward", "backward"}
    accuracy : int
        Order of the truncation error (even for central stencils).
    order : int
        Order of the derivative.

    Returns
    -------
    offsets, weights : tuple of float
        ``f^(order)(x) ~= sum(w * f(x + s*h)) / h**order``; zero weights are dropped.
    truncation : float
        ``|sum(w * s**(order+accuracy))| / (order+accuracy)!``, the leading error coefficient.
    """
    cdef int half, i, j, size
    if kind == "central":
        half = (order + 1) // 2 - 1 + accuracy // 2
        offsets = list(range(-half, half + 1))
    elif kind == "forward":
        offsets = list(range(0, order + accuracy))
    elif kind == "backward":
        offsets = list(range(-(order + accuracy) + 1, 1))
    else:
        raise ValueError(f"unknown stencil kind {kind!r}")
    size = len(offsets)
    # Solve the Vandermonde system sum_j w_j s_j^i / i! = [i == order] exactly.
    matrix = [[Fraction(s) ** i for s in offsets] + [Fraction(_factorial(i) if i == order else 0)]
              for i in range(size)]
    for i in range(size):
        pivot = next(r for r in range(i, size) if matrix[r][i] != 0)
        matrix[i], matrix[pivot] = matrix[pivot], matrix[i]
        for r in range(size):
            if r != i and matrix[r][i] != 0:
                factor = matrix[r][i] / matrix[i][i]
                matrix[r] = [a - factor * b for a, b in zip(matrix[r], matrix[i])]
    weights = [matrix[i][size] / matrix[i][i] for i in range(size)]
    power = order + accuracy
    truncation = abs(sum(w * Fraction(s) ** power for s, w in zip(offsets, weights)))
    if truncation == 0:   # symmetric stencils gain one order for free
        truncation = abs(sum(w * Fraction(s) ** (power + 1) for s, w in zip(offsets, weights)))
        power += 1
    kept = [(float(s), float(w)) for s, w in zip(offsets, weights) if w != 0]
    return (tuple(s for s, _ in kept), tuple(w for _, w in kept),
            float(truncation) / _factorial(power))


def _factorial(int k):
    cdef long result = 1
    for i in range(2, k + 1):
        result *= i
    return result


def build_points(const double[::1] x, const cnp.intp_t[::1] first_index,
                 const double[::1] first_value, const cnp.intp_t[::1] second_index,
                 const double[::1] second_value):
    """The ``(K, n)`` matrix of plan points (one row per point)."""
    cdef Py_ssize_t n = x.shape[0], k = first_index.shape[0], p
    points = np.empty((k, n), dtype=np.float64)
    cdef double[:, ::1] out = points
    with nogil:
        for p in range(k):
            memcpy(&out[p, 0], &x[0], n * sizeof(double))
            if first_index[p] >= 0:
                out[p, first_index[p]] = first_value[p]
            if second_index[p] >= 0:
                out[p, second_index[p]] = second_value[p]
    return points


cdef inline void _perturb(double *work, const cnp.intp_t[::1] first_index,
                          const double[::1] first_value, const cnp.intp_t[::1] second_index,
                          const double[::1] second_value, Py_ssize_t p) noexcept nogil:
    if first_index[p] >= 0:
        work[first_index[p]] = first_value[p]
    if second_index[p] >= 0:
        work[second_index[p]] = second_value[p]


cdef inline void _restore(double *work, const double[::1] x, const cnp.intp_t[::1] first_index,
                          const cnp.intp_t[::1] second_index, Py_ssize_t p) noexcept nogil:
    if first_index[p] >= 0:
        work[first_index[p]] = x[first_index[p]]
    if second_index[p] >= 0:
        work[second_index[p]] = x[second_index[p]]


def compiled_values(UserFunction function, const double[::1] x,
                    const cnp.intp_t[::1] first_index, const double[::1] first_value,
                    const cnp.intp_t[::1] second_index, const double[::1] second_value,
                    int m=-1, n_threads=None):
    """Values of a compiled scalar (``m == -1``) or vector field at every plan point.

    Each thread perturbs its own copy of ``x`` (at most two coordinates per point) and restores
    it, so no point matrix is built. Returns ``(K,)`` for a scalar field, ``(K, m)`` otherwise; a
    vector field that reports failure gives a row of NaN.
    """
    if function.kind != COMPILED:
        raise TypeError("compiled_values needs a compiled callable")
    cdef Py_ssize_t n = x.shape[0], k = first_index.shape[0], p, i
    cdef int threads = resolve_threads(n_threads)
    cdef bint vector = function.signature == "vector"
    cdef int width = m if vector else 1
    if vector and m < 0:
        raise ValueError(f"{function.name}: the output size of a compiled vector field must be given")
    if k * n < _PARALLEL_WORK:
        threads = 1
    values = np.empty((k, width), dtype=np.float64)
    cdef double[:, ::1] out = values
    cdef scalar_field_t scalar_fn = <scalar_field_t>function.c_function
    cdef vector_field_t vector_fn = <vector_field_t>function.c_function
    cdef void *user_data = function.user_data
    cdef double *work
    cdef double *row
    if k == 0:
        return values if vector else values[:, 0]
    with nogil, parallel(num_threads=threads):
        work = <double*>malloc(n * sizeof(double))
        if work != NULL:
            memcpy(work, &x[0], n * sizeof(double))
        for p in prange(k, schedule="static"):
            row = &out[p, 0] if width > 0 else NULL
            if work == NULL:
                for i in range(width):
                    row[i] = NAN
                continue
            _perturb(work, first_index, first_value, second_index, second_value, p)
            if vector:
                if vector_fn(<int>n, work, width, row, user_data) != 0:
                    for i in range(width):
                        row[i] = NAN
            else:
                row[0] = scalar_fn(<int>n, work, user_data)
            _restore(work, x, first_index, second_index, p)
        free(work)
    return values if vector else values[:, 0]


def combine(const double[:, ::1] values, const cnp.intp_t[::1] output,
            const cnp.intp_t[::1] point, const double[::1] coefficient,
            const signed char[::1] side, const double[::1] scale):
    """Weighted sums of point values: the finite differences of a plan.

    Returns
    -------
    result : (V, m) ndarray
        ``scale[v] * sum(coefficient * values[point])`` over the terms of output ``v``.
    magnitude : (V, m) ndarray
        ``|scale[v]| * sum(|coefficient * values[point]|)``, the size of the cancelling terms
        (times the machine epsilon, an estimate of the rounding error).
    bad : (V,) uint8 ndarray
        Bit flags of non-finite values among the terms of ``v``: 1 on the positive side, 2 on the
        negative side, 4 at ``x`` itself.
    """
    cdef Py_ssize_t nv = scale.shape[0], m = values.shape[1], nt = output.shape[0], t, j, v, p
    result_arr = np.zeros((nv, m), dtype=np.float64)
    magnitude_arr = np.zeros((nv, m), dtype=np.float64)
    bad_arr = np.zeros(nv, dtype=np.uint8)
    cdef double[:, ::1] result = result_arr
    cdef double[:, ::1] magnitude = magnitude_arr
    cdef unsigned char[::1] bad = bad_arr
    cdef double c, value
    with nogil:
        for t in range(nt):
            v = output[t]
            p = point[t]
            c = coefficient[t]
            for j in range(m):
                value = values[p, j]
                if not isfinite(value):
                    bad[v] |= 1 if side[t] > 0 else (2 if side[t] < 0 else 4)
                result[v, j] += c * value
                magnitude[v, j] += fabs(c * value)
        for v in range(nv):
            for j in range(m):
                result[v, j] *= scale[v]
                magnitude[v, j] *= fabs(scale[v])
    return result_arr, magnitude_arr, bad_arr


def relative_steps(const double[::1] x, double c, double c_rel):
    """Steps ``c * max(1, |x|)``, limited to ``max(10 c, c_rel |x|)`` above ``|x| = 10`` (see
    ``differentiate._step_coefficients``), rounded so that ``(x + h) - x == h`` exactly."""
    cdef Py_ssize_t n = x.shape[0], i
    steps = np.empty(n, dtype=np.float64)
    cdef double[::1] h = steps
    cdef double step, shifted, size
    for i in range(n):
        size = fabs(x[i])
        step = c * (size if size > 1.0 else 1.0)
        if size > 10.0 and step > 10.0 * c and step > c_rel * size:
            step = 10.0 * c if 10.0 * c > c_rel * size else c_rel * size
        shifted = x[i] + step
        if isfinite(shifted):
            step = shifted - x[i]
        else:            # near DBL_MAX: representable on the other side
            step = x[i] - (x[i] - step)
        h[i] = step
    return steps


def point_shifts(const double[::1] x, const double[::1] h, const double[::1] offsets,
                 const double[::1] weights, const double[::1] factors):
    """``sum_j |weights[j]| |(x + d_j) - x - d_j|`` with ``d_j = (factors[l] * offsets[j]) * h``
    (the points of ``differentiate._elementwise_levels``), shape ``(L, N)``: how far the
    rounding of the stencil points moved them, weighted, for their rounding error."""
    cdef Py_ssize_t n = x.shape[0], nl = factors.shape[0], no = offsets.shape[0], i, j, l
    shifts = np.zeros((nl, n), dtype=np.float64)
    cdef double[:, ::1] out = shifts
    cdef double d, total
    with nogil:
        for l in range(nl):
            for i in range(n):
                total = 0.0
                for j in range(no):
                    d = (factors[l] * offsets[j]) * h[i]
                    total = total + fabs(weights[j]) * fabs(((x[i] + d) - x[i]) - d)
                out[l, i] = total
    return shifts


def axis_differences(UserFunction function, const double[::1] x, const double[::1] h,
                     tuple offsets, tuple weights, bint vector=False, int m=-1,
                     n_threads=None, double rounding=0.0):
    """One stencil along every axis: the fast path of gradients and Jacobians.

    ``df[j] = sum_k weights[k] * f(x + offsets[k] * h[j] * e_j) / h[j]`` for a scalar field, or
    a vector field (``vector``) with ``m`` outputs (``-1``: infer, Python callables only).
    Python callables get the ``(K, n)`` point matrix (one call when vectorized); compiled ones
    perturb a copy of ``x`` per point in a ``nogil`` loop.

    Returns ``(df (n, m), error (n, m), bad (n,), nfev, nbad)``: ``error`` is ``rounding`` times
    the magnitude of the terms, ``bad`` the flags of :func:`combine`, ``nbad`` the number of
    components with a non-finite value.
    """
    cdef Py_ssize_t n = x.shape[0], s = len(offsets), j, k, p, i, row, nbad = 0
    cdef Py_ssize_t moved = 0, center = -1, npoints
    cdef double off[_MAX_STENCIL]
    cdef double wts[_MAX_STENCIL]
    if s > _MAX_STENCIL:
        raise ValueError("stencil too large")
    for k in range(s):
        off[k] = offsets[k]
        wts[k] = weights[k]
        if off[k] == 0.0:
            center = k
        else:
            moved += 1
    npoints = n * moved + (1 if center >= 0 else 0)
    cdef bint scalar = not vector
    if function.kind == COMPILED:
        scalar = function.signature == "scalar"
        if not scalar and m < 0:
            raise ValueError(f"{function.name}: the output size of a compiled vector field "
                             "must be given")
    cdef double *points
    cdef double *xp = <double*>&x[0]
    cdef const double *hp = &h[0]
    cdef cnp.ndarray values_arr
    if function.kind == COMPILED:
        values_arr = compiled_axis_values(function, x, h, off, s, center, npoints,
                                          -1 if scalar else m, n_threads)
    else:
        points_arr = cnp.PyArray_EMPTY(2, [npoints, n], cnp.NPY_DOUBLE, 0)
        points = <double*>cnp.PyArray_DATA(points_arr)
        with nogil:
            row = 0
            if center >= 0:
                memcpy(points, xp, n * sizeof(double))
                row = 1
            for j in range(n):
                for k in range(s):
                    if k == center:
                        continue
                    memcpy(points + row * n, xp, n * sizeof(double))
                    points[row * n + j] = xp[j] + off[k] * hp[j]
                    row += 1
        if scalar and function.kind == 0:
            values_arr = _python_scalar_values(function, points_arr)
        elif scalar:
            values_arr = function.scalar_values(points_arr).reshape(npoints, 1)
        else:
            values_arr = np.ascontiguousarray(function.vector_values(points_arr, m))
    cdef Py_ssize_t width = values_arr.shape[1]
    cdef const double *values = <double*>cnp.PyArray_DATA(values_arr)
    df_arr = cnp.PyArray_ZEROS(2, [n, width], cnp.NPY_DOUBLE, 0)
    error_arr = cnp.PyArray_ZEROS(2, [n, width], cnp.NPY_DOUBLE, 0)
    bad_arr = cnp.PyArray_ZEROS(1, [n], cnp.NPY_UINT8, 0)
    cdef double *df = <double*>cnp.PyArray_DATA(df_arr)
    cdef double *error = <double*>cnp.PyArray_DATA(error_arr)
    cdef unsigned char *bad = <unsigned char*>cnp.PyArray_DATA(bad_arr)
    cdef double value, term, inverse
    with nogil:
        for j in range(n):
            row = (1 if center >= 0 else 0) + j * moved
            inverse = 1.0 / hp[j]
            for k in range(s):
                p = 0 if k == center else row
                if k != center:
                    row += 1
                for i in range(width):
                    value = values[p * width + i]
                    if not isfinite(value):
                        bad[j] |= 1 if off[k] > 0 else (2 if off[k] < 0 else 4)
                    term = wts[k] * value
                    df[j * width + i] += term
                    error[j * width + i] += fabs(term)
            for i in range(width):
                df[j * width + i] *= inverse
                error[j * width + i] *= inverse * rounding
            if bad[j]:
                nbad += 1
    return df_arr, error_arr, bad_arr, npoints, nbad


cdef cnp.ndarray _python_scalar_values(UserFunction function, cnp.ndarray points):
    """Per-point calls of a Python scalar field, with the least overhead per call."""
    cdef Py_ssize_t k = points.shape[0], p
    out_arr = cnp.PyArray_EMPTY(2, [k, 1], cnp.NPY_DOUBLE, 0)
    cdef double *out = <double*>cnp.PyArray_DATA(out_arr)
    cdef object f = function.function
    cdef tuple args = function.args
    cdef list rows = list(points)
    for p in range(k):
        value = f(rows[p], *args) if args else f(rows[p])
        if PyFloat_Check(value):
            out[p] = PyFloat_AS_DOUBLE(value)
        else:
            out[p] = _real_scalar(value, function.name)
    return out_arr


cdef double _real_scalar(object value, str name) except? -1.0:
    arr = real_values(value, name)    # the rule of the user-function layer
    if arr.size != 1:
        raise ValueError(f"{name} must return a scalar, got an array of shape {arr.shape}")
    return float(arr.reshape(()))


cdef cnp.ndarray compiled_axis_values(UserFunction function, const double[::1] x,
                                      const double[::1] h, const double *off, Py_ssize_t s,
                                      Py_ssize_t center, Py_ssize_t npoints, int m,
                                      object n_threads):
    """Values of a compiled field at the axis-stencil points, in the order of axis_differences."""
    cdef Py_ssize_t n = x.shape[0], j, k, i, row, moved
    cdef int threads = resolve_threads(n_threads)
    cdef bint vector = m >= 0
    cdef int width = m if vector else 1
    moved = s - (1 if center >= 0 else 0)
    values_arr = np.empty((npoints, width), dtype=np.float64)
    cdef double[:, ::1] values = values_arr
    cdef scalar_field_t scalar_fn = <scalar_field_t>function.c_function
    cdef vector_field_t vector_fn = <vector_field_t>function.c_function
    cdef void *user_data = function.user_data
    cdef double *work = NULL
    cdef double *center_copy = NULL
    cdef double *out_row = NULL
    if npoints * n < _PARALLEL_WORK:
        threads = 1
    with nogil:
        if center >= 0:
            # The callable gets a copy: its C signature lets it write to x, and the caller's x
            # must neither change nor be written at all (it may be read-only memory).
            out_row = &values[0, 0] if width > 0 else NULL
            center_copy = <double*>malloc(n * sizeof(double))
            if center_copy == NULL:
                for i in range(width):
                    out_row[i] = NAN
            else:
                memcpy(center_copy, &x[0], n * sizeof(double))
                if vector:
                    if vector_fn(<int>n, center_copy, width, out_row, user_data) != 0:
                        for i in range(width):
                            out_row[i] = NAN
                else:
                    out_row[0] = scalar_fn(<int>n, center_copy, user_data)
                free(center_copy)
    with nogil, parallel(num_threads=threads):
        work = <double*>malloc(n * sizeof(double))
        if work != NULL:
            memcpy(work, &x[0], n * sizeof(double))
        for j in prange(n, schedule="static"):
            row = (1 if center >= 0 else 0) + j * moved
            for k in range(s):
                if k == center:
                    continue
                out_row = &values[row, 0] if width > 0 else NULL
                row = row + 1
                if work == NULL:
                    for i in range(width):
                        out_row[i] = NAN
                    continue
                work[j] = x[j] + off[k] * h[j]
                if vector:
                    if vector_fn(<int>n, work, width, out_row, user_data) != 0:
                        for i in range(width):
                            out_row[i] = NAN
                else:
                    out_row[0] = scalar_fn(<int>n, work, user_data)
                work[j] = x[j]
        free(work)
    return values_arr


def elementwise_values(UserFunction function, points, parameters=None):
    """Values of a compiled elementwise function ``double f(double x, int k, double *p, void*)``.

    ``points`` has any shape ``(..., N)`` ending with the element axis (or ``N`` elements);
    ``parameters`` is None or ``(N, k)``: the ``k`` parameters of each element, shared by all
    leading indices of ``points``. Returns an array of the shape of ``points``.
    """
    if function.kind != COMPILED or function.signature not in ("elementwise", "block"):
        raise TypeError("elementwise_values needs a compiled elementwise or block callable")
    cdef cnp.ndarray flat = np.ascontiguousarray(points, dtype=np.float64).reshape(-1)
    cdef Py_ssize_t total = flat.shape[0], i, elements, width = 0
    cdef const double[:, ::1] params
    cdef double no_parameters = 0.0
    cdef double *p = &no_parameters    # never NULL, even when k == 0
    if parameters is not None:
        params = parameters
        elements = params.shape[0]
        width = params.shape[1]
        if elements == 0 or total % elements:
            raise ValueError("parameters must have one row per element")
    else:
        elements = 1
    out = np.empty(total, dtype=np.float64)
    cdef double[::1] out_view = out
    cdef const double *x = <const double*>cnp.PyArray_DATA(flat)
    cdef elementwise_t fn = <elementwise_t>function.c_function
    cdef void *user_data = function.user_data
    if function.signature == "block":
        with nogil:
            _block_values(<block_equations_t>function.c_function, user_data, x, &out_view[0],
                          total, elements, <int>width,
                          &params[0, 0] if width > 0 else &no_parameters)
        return out.reshape(np.shape(points))
    with nogil:
        for i in range(total):
            if width > 0:
                p = <double*>&params[i % elements, 0]
            out_view[i] = fn(x[i], <int>width, p, user_data)
    return out.reshape(np.shape(points))


cdef enum:
    VALUE_BLOCK = 512       # points per call of a block function (its buffers stay in cache)


cdef void _block_values(block_equations_t fn, void *user_data, const double *x, double *out,
                        Py_ssize_t total, Py_ssize_t elements, int width,
                        const double *params) noexcept nogil:
    """``out[i] = f(x[i]; params[i % elements])`` by calls of a block function on at most
    VALUE_BLOCK points, none straddling the end of the element axis (so that each call's
    parameter rows are consecutive); a failed call's values are NaN."""
    cdef Py_ssize_t start = 0, n, e = 0, i
    while start < total:
        n = min(<Py_ssize_t>VALUE_BLOCK, total - start)
        if width > 0:
            e = start % elements
            n = min(n, elements - e)
        if fn(<int>n, x + start, width, params + e * width, out + start, NULL, user_data) != 0:
            for i in range(n):
                out[start + i] = NAN
        start += n


def romberg(const double[:, ::1] estimates, const double[:, ::1] rounding,
            const double[::1] powers, double safety):
    """Richardson extrapolation of ``estimates[k]`` (steps ``h / 2**k``) for every column.

    ``powers[c]`` is the exponent of the error term that column ``c`` of the table removes.
    Every entry ``T[k, c]`` (``k >= 1``) gets the error estimate
    ``safety * |T[k, c] - T[k-1, c]| / (2**powers[c] - 1) + rounding``, the rounding error being
    ``2 * rounding[k]`` amplified by the extrapolation weights; the entry with the smallest
    estimate is returned with that estimate: ``(value (N,), error (N,))``.
    """
    cdef Py_ssize_t levels = estimates.shape[0], count = estimates.shape[1], e, k, column, rows
    if levels > _MAX_STENCIL or powers.shape[0] < levels:
        raise ValueError("too many levels")
    value_arr = np.empty(count, dtype=np.float64)
    error_arr = np.empty(count, dtype=np.float64)
    cdef double[::1] value = value_arr
    cdef double[::1] error = error_arr
    cdef double table[_MAX_STENCIL]
    cdef double round_off[_MAX_STENCIL]
    cdef double factors[_MAX_STENCIL]
    cdef double best, best_value, factor, total
    for k in range(levels):
        factors[k] = 2.0 ** powers[k]
    with nogil:
        for e in range(count):
            for k in range(levels):
                table[k] = estimates[k, e]
                round_off[k] = 2.0 * rounding[k, e]
            best = INFINITY
            best_value = table[levels - 1]
            for column in range(levels):
                factor = factors[column]
                rows = levels - column
                if rows < 2:
                    break
                for k in range(1, rows):
                    total = safety * fabs(table[k] - table[k - 1]) / (factor - 1.0) + round_off[k]
                    if total < best:
                        best = total
                        best_value = table[k]
                if column == levels - 1:
                    break
                for k in range(rows - 1):
                    table[k] = table[k + 1] + (table[k + 1] - table[k]) / (factor - 1.0)
                    round_off[k] = round_off[k + 1] * (factor + 1.0) / (factor - 1.0)
            value[e] = best_value
            error[e] = best
    return value_arr, error_arr


def elementwise_combine(const double[:, :, ::1] values, const double[::1] x,
                        const double[::1] h, const double[::1] offsets,
                        const double[::1] weights, const double[::1] factors, int order,
                        double ulps, const double[:, ::1] shift=None, Py_ssize_t inner_a=0,
                        Py_ssize_t inner_b=0):
    """The differences of an elementwise stencil at several steps, in one pass over the values.

    ``values[l, j, i]``: f at ``x[i] + offsets[j] * h[i] * factors[l]``. Returns
    ``(estimates (L, N), rounding (L, N), bad (L, N) uint8)``: the difference quotients, their
    rounding error (``ulps * eps * sum |w f| / step**order`` plus that of the points: for
    order 1 ``4 eps |x| |estimate| / step``; above, ``|f(inner_a) - f(inner_b)|`` scaled
    (twice) to a slope times ``shift[l, i] / step**order``) and non-finite flags (1: a point
    above x, 2: below, 4: at x). The arithmetic is that of differentiate._elementwise_combine
    (same operations in the same order), without its temporaries.
    """
    cdef Py_ssize_t L = values.shape[0], S = values.shape[1], N = values.shape[2]
    cdef Py_ssize_t l, j, i
    if x.shape[0] != N or h.shape[0] != N or offsets.shape[0] != S or weights.shape[0] != S \
            or factors.shape[0] != L or (order > 1 and shift is None):
        raise ValueError("internal: elementwise_combine arrays of inconsistent shapes")
    estimates = np.empty((L, N))
    rounding = np.empty((L, N))
    bad = np.zeros((L, N), dtype=np.uint8)
    cdef double[:, ::1] est = estimates, rnd = rounding
    cdef unsigned char[:, ::1] flags = bad
    cdef double eps = 2.220446049250313e-16, step, scale, total, size, v, pair
    cdef double pair_factor = 0.0
    cdef unsigned char flag
    if order > 1:
        pair_factor = 2.0 / (offsets[inner_a] - offsets[inner_b])
    with nogil:
        for l in range(L):
            for i in range(N):
                step = h[i] * factors[l]
                scale = 1.0 / step if order == 1 else pow(step, -order)
                total = 0.0
                size = 0.0
                flag = 0
                for j in range(S):
                    v = values[l, j, i]
                    total = total + weights[j] * v
                    size = size + fabs(weights[j]) * fabs(v)
                    if not isfinite(v):
                        flag |= 1 if offsets[j] > 0 else (2 if offsets[j] < 0 else 4)
                total = total * scale
                size = size * scale * (ulps * eps)
                if order == 1:
                    size = size + fabs(total) * scale * ((4.0 * eps) * fabs(x[i]))
                else:
                    pair = fabs(values[l, inner_a, i] - values[l, inner_b, i]) * scale
                    size = size + pair * pair_factor / step * shift[l, i]
                est[l, i] = total
                rnd[l, i] = size
                flags[l, i] = flag
    return estimates, rounding, bad


def unconverged_columns(const double[:, ::1] estimates, const double[:, ::1] rounding,
                        double rate, double fastest):
    """differentiate._unconverged for 2-D tables ``(L, N)`` (L >= 3), in one pass: True where
    some difference of consecutive estimates neither is at rounding level (10x the two
    roundings) nor shrinks by a factor between ``rate`` and ``fastest`` into the next."""
    cdef Py_ssize_t L = estimates.shape[0], N = estimates.shape[1], i, k
    cdef double d0, d1, r0, r1
    cdef bint ok
    if L < 3 or rounding.shape[0] != L or rounding.shape[1] != N:
        raise ValueError("internal: unconverged_columns takes (L >= 3, N) tables")
    out = np.empty(N, dtype=bool)
    cdef unsigned char[::1] result = out.view(np.uint8)
    with nogil:
        for i in range(N):
            ok = True
            d1 = fabs(estimates[1, i] - estimates[0, i])
            r1 = rounding[1, i]
            for k in range(1, L - 1):
                d0 = d1
                d1 = fabs(estimates[k + 1, i] - estimates[k, i])
                r0 = r1
                r1 = rounding[k + 1, i]
                # quiet: the later difference at rounding level (numpy: quiet[1:])
                if not (d1 <= 10.0 * (r1 + r0)
                        or (d0 >= d1 * rate and d0 <= d1 * fastest)):
                    ok = False
                    break
            result[i] = not ok
    return out
