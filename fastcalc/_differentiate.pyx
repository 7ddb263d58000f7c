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
from libc.math cimport fabs, isfinite, NAN
from libc.stdlib cimport malloc, free
from libc.string cimport memcpy

from fastcalc._evaluate cimport UserFunction, scalar_field_t, vector_field_t, COMPILED
from fastcalc._parallel cimport resolve_threads

cnp.import_array()

# Below this many coordinate-evaluations a compiled plan runs on one thread: thread start-up
# would cost more than it saves.
cdef Py_ssize_t _PARALLEL_WORK = 200000


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
