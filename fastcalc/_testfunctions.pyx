"""Compiled test functions, exposed as ``scipy.LowLevelCallable`` for tests and benchmarks.

They exercise the compiled-callable path of every routine without optional dependencies
(numba). Get one with :func:`low_level`::

    >>> from fastcalc._testfunctions import low_level
    >>> f = low_level("rosenbrock")
    >>> f.signature
    'double (int, double *, void *)'
"""
from libc.math cimport exp, sin, cos, NAN
from scipy import LowLevelCallable


cdef api double rosenbrock(int n, double *x, void *user_data) noexcept nogil:
    """sum_i 100 (x[i+1] - x[i]^2)^2 + (1 - x[i])^2 (scalar field)."""
    cdef double total = 0.0, a, b
    cdef int i
    for i in range(n - 1):
        a = x[i + 1] - x[i] * x[i]
        b = 1.0 - x[i]
        total += 100.0 * a * a + b * b
    return total


cdef api double exp_sin(int n, double *x, void *user_data) noexcept nogil:
    """exp(x[0]) * sin(x[1]) * ... (product over pairs; scalar field of n variables)."""
    cdef double total = 0.0
    cdef int i
    for i in range(0, n - 1, 2):
        total += exp(x[i]) * sin(x[i + 1])
    return total


cdef api int vector_field(int n, double *x, int m, double *out, void *user_data) noexcept nogil:
    """F_i(x) = x_i^2 sin(x_{i+1}) + exp(x_{i-1}) cos(x_i), indices cyclic, m == n (else -1)."""
    cdef int i
    if m != n or n < 1:
        return -1
    for i in range(n):
        out[i] = x[i] * x[i] * sin(x[(i + 1) % n]) + exp(x[(i - 1 + n) % n]) * cos(x[i])
    return 0


cdef api double nan_scalar(int n, double *x, void *user_data) noexcept nogil:
    """Always NaN: a compiled function that fails, for status tests."""
    return 0.0 / 0.0 if n >= 0 else 0.0


cdef api int failing_vector(int n, double *x, int m, double *out, void *user_data) noexcept nogil:
    """Always reports failure (returns 1)."""
    return 1


def low_level(name):
    """Return the compiled test function ``name`` as a ``scipy.LowLevelCallable``."""
    import fastcalc._testfunctions as module
    return LowLevelCallable.from_cython(module, name)


# ---- elementwise equations and small systems for Newton-Raphson (fastcalc.roots) ----
# Elementwise signature: double f(double x, int k, double *p, void *user_data), where p points
# to this element's k parameters; a function must check k before reading p.
from libc.math cimport log


cdef api double cube_root_eq(double x, int k, double *p, void *user_data) noexcept nogil:
    """x^3 - p[0] (root: the cube root of p[0])."""
    if k < 1:
        return NAN   # too few parameters: a status, not a read past p
    return x * x * x - p[0]


cdef api double cube_root_eq_prime(double x, int k, double *p, void *user_data) noexcept nogil:
    """3 x^2, the derivative of cube_root_eq."""
    return 3.0 * x * x


cdef api double cube_root_eq_prime2(double x, int k, double *p, void *user_data) noexcept nogil:
    """6 x, the second derivative of cube_root_eq."""
    return 6.0 * x


cdef api double kepler_eq(double x, int k, double *p, void *user_data) noexcept nogil:
    """Kepler's equation E - e sin E - M with p = (e, M)."""
    if k < 2:
        return NAN   # too few parameters: a status, not a read past p
    return x - p[0] * sin(x) - p[1]


cdef api double kepler_eq_prime(double x, int k, double *p, void *user_data) noexcept nogil:
    """1 - e cos E, the derivative of kepler_eq."""
    if k < 2:
        return NAN   # too few parameters: a status, not a read past p
    return 1.0 - p[0] * cos(x)


cdef api double log_eq(double x, int k, double *p, void *user_data) noexcept nogil:
    """log(x) - p[0]: NaN for x < 0, so Newton from far away fails (status tests)."""
    if k < 1:
        return NAN   # too few parameters: a status, not a read past p
    return log(x) - p[0]


cdef api double log_eq_prime(double x, int k, double *p, void *user_data) noexcept nogil:
    """1 / x, the derivative of log_eq."""
    return 1.0 / x


cdef api int circle_exp_system(int n, double *x, int m, double *out,
                               void *user_data) noexcept nogil:
    """F(x, y) = (x^2 + y^2 - 4, exp(x) + y - 1), n == m == 2 (else -1)."""
    if n != 2 or m != 2:
        return -1
    out[0] = x[0] * x[0] + x[1] * x[1] - 4.0
    out[1] = exp(x[0]) + x[1] - 1.0
    return 0


cdef api int circle_exp_jacobian(int n, double *x, int m, double *out,
                                 void *user_data) noexcept nogil:
    """Row-major Jacobian of circle_exp_system: ((2x, 2y), (exp(x), 1)), m == 4."""
    if n != 2 or m != 4:
        return -1
    out[0] = 2.0 * x[0]
    out[1] = 2.0 * x[1]
    out[2] = exp(x[0])
    out[3] = 1.0
    return 0


# ---- compiled fit models (fastcalc.fitting) ----
cdef api int gaussian_model(int npts, double *x, int nparams, double *params, double *out,
                            void *user_data) noexcept nogil:
    """Fit model A exp(-(x - mu)^2 / (2 s^2)) + c, params (A, mu, s, c); -1 unless nparams == 4."""
    cdef int i
    cdef double d
    if nparams != 4 or params[2] == 0.0:
        return -1
    for i in range(npts):
        d = (x[i] - params[1]) / params[2]
        out[i] = params[0] * exp(-0.5 * d * d) + params[3]
    return 0


cdef api int gaussian_model_jac(int npts, double *x, int nparams, double *params, double *jac,
                                void *user_data) noexcept nogil:
    """Jacobian (npts, 4) row-major of gaussian_model."""
    cdef int i
    cdef double d, e
    if nparams != 4 or params[2] == 0.0:
        return -1
    for i in range(npts):
        d = (x[i] - params[1]) / params[2]
        e = exp(-0.5 * d * d)
        jac[4 * i] = e
        jac[4 * i + 1] = params[0] * e * d / params[2]
        jac[4 * i + 2] = params[0] * e * d * d / params[2]
        jac[4 * i + 3] = 1.0
    return 0


cdef api int failing_model(int npts, double *x, int nparams, double *params, double *out,
                           void *user_data) noexcept nogil:
    """A fit model that always reports failure (returns 1)."""
    return 1


cdef api int reciprocal_system(int n, double *x, int m, double *out,
                               void *user_data) noexcept nogil:
    """F_i(x) = 1 / x_i (m == n): no root; Newton doubles x for ~1000 iterations (a slow
    system for interrupt tests)."""
    cdef int i
    if m != n:
        return -1
    for i in range(n):
        out[i] = 1.0 / x[i]
    return 0


# Fit models that also write their Jacobian (row-major (npts, nparams)) when jac is not NULL:
# one exponential per point serves the values and every column.
cdef api int gaussian_model_and_jac(int npts, double *x, int nparams, double *params,
                                    double *out, double *jac, void *user_data) noexcept nogil:
    """gaussian_model and, when jac != NULL, its Jacobian; -1 unless nparams == 4, s != 0."""
    cdef int i
    cdef double d, e, a = params[0] if nparams == 4 else 0.0, inverse
    if nparams != 4 or params[2] == 0.0:
        return -1
    inverse = 1.0 / params[2]
    for i in range(npts):
        d = (x[i] - params[1]) * inverse
        e = exp(-0.5 * d * d)
        out[i] = a * e + params[3]
        if jac != NULL:
            jac[4 * i] = e
            jac[4 * i + 1] = a * e * d * inverse
            jac[4 * i + 2] = a * e * d * d * inverse
            jac[4 * i + 3] = 1.0
    return 0


cdef api int exponential_model_and_jac(int npts, double *x, int nparams, double *params,
                                       double *out, double *jac, void *user_data) noexcept nogil:
    """A exp(-x / tau) + c, params (A, tau, c), and when jac != NULL its Jacobian; -1 unless
    nparams == 3 and tau != 0."""
    cdef int i
    cdef double e, inverse
    if nparams != 3 or params[1] == 0.0:
        return -1
    inverse = 1.0 / params[1]
    for i in range(npts):
        e = exp(-x[i] * inverse)
        out[i] = params[0] * e + params[2]
        if jac != NULL:
            jac[3 * i] = e
            jac[3 * i + 1] = params[0] * e * x[i] * inverse * inverse
            jac[3 * i + 2] = 1.0
# ---- More-Garbow-Hillstrom systems (fastcalc._mgh_systems), the same arithmetic ----
from libc.math cimport sqrt

cdef api int powell_singular_system(int n, double *x, int m, double *out,
                                    void *user_data) noexcept nogil:
    """Powell's singular function, n == m == 4 (else -1): J is singular at the root 0."""
    if n != 4 or m != 4:
        return -1
    out[0] = x[0] + 10.0 * x[1]
    out[1] = sqrt(5.0) * (x[2] - x[3])
    out[2] = (x[1] - 2.0 * x[2]) * (x[1] - 2.0 * x[2])
    out[3] = sqrt(10.0) * ((x[0] - x[3]) * (x[0] - x[3]))
    return 0


cdef api int wood_system(int n, double *x, int m, double *out, void *user_data) noexcept nogil:
    """Wood's function as a system, n == m == 4 (else -1)."""
    cdef double t1, t2
    if n != 4 or m != 4:
        return -1
    t1 = x[1] - x[0] * x[0]
    t2 = x[3] - x[2] * x[2]
    out[0] = -200.0 * x[0] * t1 - (1.0 - x[0])
    out[1] = 200.0 * t1 + 20.2 * (x[1] - 1.0) + 19.8 * (x[3] - 1.0)
    out[2] = -180.0 * x[2] * t2 - (1.0 - x[2])
    out[3] = 180.0 * t2 + 20.2 * (x[3] - 1.0) + 19.8 * (x[1] - 1.0)
# ---- blocks of elementwise equations (fastcalc.roots.newton, fastcalc.derivative) ----
# Block signature: int f(int n, const double *x, int k, const double *p, double *fx,
# double *dfx, void *user_data): element i's parameters are p[i*k:(i+1)*k] and dfx is NULL
# when the derivative is not wanted. Loops free of calls and branches vectorize.

cdef api int cube_root_block(int n, const double *x, int k, const double *p, double *fx,
                             double *dfx, void *user_data) noexcept nogil:
    """fx = x^3 - p[0], dfx = 3 x^2 for a block of elements (k == 1, else failure: 1)."""
    cdef int i
    if k != 1:
        return 1
    for i in range(n):
        fx[i] = x[i] * x[i] * x[i] - p[i]
    if dfx != NULL:
        for i in range(n):
            dfx[i] = 3.0 * x[i] * x[i]
    return 0


cdef api int kepler_block(int n, const double *x, int k, const double *p, double *fx,
                          double *dfx, void *user_data) noexcept nogil:
    """Kepler's equation E - e sin E - M (p = (e, M)) and its derivative 1 - e cos E for a
    block of elements (k == 2, else failure: 1)."""
    cdef int i
    if k != 2:
        return 1
    for i in range(n):
        fx[i] = x[i] - p[2 * i] * sin(x[i]) - p[2 * i + 1]
    if dfx != NULL:
        for i in range(n):
            dfx[i] = 1.0 - p[2 * i] * cos(x[i])
    return 0


cdef api int log_block(int n, const double *x, int k, const double *p, double *fx,
                       double *dfx, void *user_data) noexcept nogil:
    """log(x) - p[0] and 1 / x; reports failure (1) for the whole block if any x <= 0 (status
    tests: Newton from far away steps below 0)."""
    cdef int i
    if k != 1:
        return 1
    for i in range(n):
        if not x[i] > 0.0:
            return 1
    for i in range(n):
        fx[i] = log(x[i]) - p[i]
    if dfx != NULL:
        for i in range(n):
            dfx[i] = 1.0 / x[i]
    return 0
