"""Built-in fit models as C kernels: values, analytic Jacobians and initial guesses.

Every model has two ``noexcept nogil`` functions with the signatures declared in
``_models.pxd``: ``<name>_evaluate`` (values and, when ``jac != NULL``, the Jacobian
d model / d params, row-major ``(npts, nparams)``) and ``<name>_guess`` (an initial guess
from data, ignoring points whose y or x is not finite). ``model_kernel`` hands both, with
``nparams`` and ``x_dim``, to the fitting kernels, which call them inside ``prange`` loops.

Parameterizations (parameter names in order):

- LINE         a + b x                                          (a, b)
- POLYNOMIAL   c0 + c1 x + ... + c_deg x^deg                    (c0, ..., c_deg)
- EXPONENTIAL  A exp(-x / tau) + c                              (A, tau, c)
- GAUSSIAN     A exp(-(x - mu)^2 / (2 sigma^2)) + c             (A, mu, sigma, c)
- LORENTZIAN   A gamma^2 / ((x - x0)^2 + gamma^2) + c           (A, x0, gamma, c)
- LOGISTIC     L / (1 + exp(-k (x - x0))) + c                   (L, x0, k, c)
- POWER_LAW    A x^k, x > 0                                     (A, k)
- SINE         A sin(omega x + phi) + c                         (A, omega, phi, c)
- GAUSSIAN_2D  A exp(-((x - x0)^2 + (y - y0)^2) / (2 sigma^2)) + b, x of shape (2, m)
                                                                (A, x0, y0, sigma, b)

Evaluate returns 0 on success and 1 when the parameters give no finite value (a non-finite
parameter, sigma/gamma/tau == 0, overflow, or x <= 0 for the power law). Guess returns 0 on
success, GUESS_TOO_FEW_POINTS when the finite points cannot determine the parameters and
GUESS_BAD_DOMAIN when x lies outside the model's domain (power law with x <= 0).

Guesses are O(npts), allocate nothing for the built-in sizes (polynomials above degree
MAX_STACK_PARAMS - 1 use one malloc) and never touch Python.
"""
from libc.math cimport atan2, cos, exp, fabs, hypot, isfinite, log, sin, sqrt, INFINITY, M_PI
from libc.stdlib cimport free, malloc

import numpy as np

# Guess status codes (0 = success).
cdef enum:
    GUESS_TOO_FEW_POINTS = 1
    GUESS_BAD_DOMAIN = 2
    MAX_STACK_PARAMS = 16

GUESS_STATUS_TOO_FEW_POINTS = GUESS_TOO_FEW_POINTS
GUESS_STATUS_BAD_DOMAIN = GUESS_BAD_DOMAIN


cpdef enum ModelId:
    LINE = 0
    POLYNOMIAL = 1
    EXPONENTIAL = 2
    GAUSSIAN = 3
    LORENTZIAN = 4
    LOGISTIC = 5
    POWER_LAW = 6
    SINE = 7
    GAUSSIAN_2D = 8


# ---------------------------------------------------------------------------------------
# Shared helpers
# ---------------------------------------------------------------------------------------

cdef inline bint all_finite(const double *values, Py_ssize_t n) noexcept nogil:
    # inf * 0 and nan * 0 are nan, so one nan-propagating sum checks every element
    # (vectorizable, unlike a branch per element).
    cdef double acc = 0.0
    cdef Py_ssize_t i
    for i in range(n):
        acc += values[i] * 0.0
    return acc == 0.0


cdef inline bint params_finite(const double *p, int nparams) noexcept nogil:
    return all_finite(p, nparams)


cdef inline int finish_evaluate(int npts, int nparams, const double *out,
                                const double *jac) noexcept nogil:
    if not all_finite(out, npts):
        return 1
    if jac != NULL and not all_finite(jac, <Py_ssize_t>npts * nparams):
        return 1
    return 0


cdef inline bint usable(double xv, double yv) noexcept nogil:
    return isfinite(xv) and isfinite(yv)


cdef struct DataSummary:
    int n                # usable points (finite x and y)
    double xmin, xmax
    double ymin, ymax
    double ymean
    double x_at_ymax, x_at_ymin


cdef void summarize(int npts, const double *x, const double *y,
                    DataSummary *s) noexcept nogil:
    cdef int i
    cdef double yv, xv, total = 0.0
    s.n = 0
    s.xmin = INFINITY
    s.xmax = -INFINITY
    s.ymin = INFINITY
    s.ymax = -INFINITY
    s.x_at_ymax = 0.0
    s.x_at_ymin = 0.0
    for i in range(npts):
        xv = x[i]
        yv = y[i]
        if not usable(xv, yv):
            continue
        s.n += 1
        total += yv
        if xv < s.xmin:
            s.xmin = xv
        if xv > s.xmax:
            s.xmax = xv
        if yv > s.ymax:
            s.ymax = yv
            s.x_at_ymax = xv
        if yv < s.ymin:
            s.ymin = yv
            s.x_at_ymin = xv
    s.ymean = total / s.n if s.n > 0 else 0.0


# Least squares by Givens rotations, one row at a time: R (p, p) upper triangular and
# Q^T b (p) live in caller storage, so a fit over npts points needs O(p^2) memory and no
# matrix of all rows. Stable (orthogonal transformations), unlike the normal equations.

cdef inline void lsq_reset(double *R, double *qtb, int p) noexcept nogil:
    cdef int i
    for i in range(p * p):
        R[i] = 0.0
    for i in range(p):
        qtb[i] = 0.0


cdef inline double lsq_add_row(double *R, double *qtb, int p, double *row,
                               double rhs) noexcept nogil:
    """Rotate one row (destroyed) into R; return the part of rhs left in the residual."""
    cdef int k, j
    cdef double rho, c, s, t1, t2
    for k in range(p):
        if row[k] == 0.0:
            continue
        rho = hypot(R[k * p + k], row[k])
        c = R[k * p + k] / rho
        s = row[k] / rho
        R[k * p + k] = rho
        for j in range(k + 1, p):
            t1 = R[k * p + j]
            t2 = row[j]
            R[k * p + j] = c * t1 + s * t2
            row[j] = c * t2 - s * t1
        t1 = qtb[k]
        qtb[k] = c * t1 + s * rhs
        rhs = c * rhs - s * t1
    return rhs


cdef inline int lsq_solve(const double *R, const double *qtb, int p,
                          double *solution) noexcept nogil:
    """Back substitution; non-zero when R is (numerically) singular."""
    cdef int k, j
    cdef double acc, largest = 0.0
    for k in range(p):
        if fabs(R[k * p + k]) > largest:
            largest = fabs(R[k * p + k])
    if largest == 0.0:
        return 1
    for k in range(p - 1, -1, -1):
        if fabs(R[k * p + k]) <= 1e-13 * largest:
            return 1
        acc = qtb[k]
        for j in range(k + 1, p):
            acc -= R[k * p + j] * solution[j]
        solution[k] = acc / R[k * p + k]
    return 0


# ---------------------------------------------------------------------------------------
# LINE: a + b x
# ---------------------------------------------------------------------------------------

cdef int line_evaluate(int npts, const double *x, int nparams, const double *p,
                       double *out, double *jac) noexcept nogil:
    cdef double a = p[0], b = p[1]
    cdef int i
    if not params_finite(p, 2):
        return 1
    for i in range(npts):
        out[i] = a + b * x[i]
    if jac != NULL:
        for i in range(npts):
            jac[2 * i] = 1.0
            jac[2 * i + 1] = x[i]
    return finish_evaluate(npts, 2, out, jac)


cdef int line_guess(int npts, const double *x, const double *y, int nparams,
                    double *p0) noexcept nogil:
    # The exact least-squares line (a linear model needs no iterations from it).
    return polynomial_guess(npts, x, y, 2, p0)


# ---------------------------------------------------------------------------------------
# POLYNOMIAL: c0 + c1 x + ... + c_deg x^deg, nparams = deg + 1
# ---------------------------------------------------------------------------------------

cdef int polynomial_evaluate(int npts, const double *x, int nparams, const double *p,
                             double *out, double *jac) noexcept nogil:
    cdef int i, j
    cdef double acc, power, xv
    if nparams < 1 or not params_finite(p, nparams):
        return 1
    for i in range(npts):
        xv = x[i]
        acc = p[nparams - 1]
        for j in range(nparams - 2, -1, -1):
            acc = acc * xv + p[j]
        out[i] = acc
        if jac != NULL:
            power = 1.0
            for j in range(nparams):
                jac[i * nparams + j] = power
                power *= xv
    return finish_evaluate(npts, nparams, out, jac)


cdef int polynomial_guess(int npts, const double *x, const double *y, int nparams,
                          double *p0) noexcept nogil:
    # Exact least squares in the scaled variable t = (x - center) / half_span (so the
    # columns 1, t, t^2, ... are well conditioned), then expanded back to powers of x.
    cdef double R_stack[MAX_STACK_PARAMS * MAX_STACK_PARAMS]
    cdef double work_stack[3 * MAX_STACK_PARAMS]
    cdef double *R = R_stack
    cdef double *work = work_stack
    cdef double *qtb
    cdef double *row
    cdef double *coef
    cdef DataSummary s
    cdef double center, half, t, power, scale
    cdef int i, j, k, status = 0
    if nparams < 1:
        return GUESS_TOO_FEW_POINTS
    summarize(npts, x, y, &s)
    if s.n < nparams:
        return GUESS_TOO_FEW_POINTS
    if nparams > MAX_STACK_PARAMS:
        R = <double *>malloc(sizeof(double) * nparams * (nparams + 3))
        if R == NULL:
            return GUESS_TOO_FEW_POINTS
        work = R + nparams * nparams
    qtb = work
    row = work + nparams
    coef = work + 2 * nparams
    center = 0.5 * (s.xmin + s.xmax)
    half = 0.5 * (s.xmax - s.xmin)
    if half == 0.0:
        half = 1.0   # all x equal: only a constant is determined; lsq_solve reports it
    lsq_reset(R, qtb, nparams)
    for i in range(npts):
        if not usable(x[i], y[i]):
            continue
        t = (x[i] - center) / half
        power = 1.0
        for j in range(nparams):
            row[j] = power
            power *= t
        lsq_add_row(R, qtb, nparams, row, y[i])
    if lsq_solve(R, qtb, nparams, coef) != 0:
        status = GUESS_TOO_FEW_POINTS
    else:
        # coefficients of powers of (x - center)
        scale = 1.0
        for j in range(nparams):
            coef[j] /= scale
            scale *= half
        # Taylor shift: sum coef_j (x - center)^j -> sum p_j x^j (repeated synthetic division)
        for k in range(nparams - 1):
            for j in range(nparams - 2, k - 1, -1):
                coef[j] -= center * coef[j + 1]
        for j in range(nparams):
            p0[j] = coef[j]
        if not params_finite(p0, nparams):
            status = GUESS_TOO_FEW_POINTS
    if R != R_stack:
        free(R)
    return status


# ---------------------------------------------------------------------------------------
# Peaks (gaussian, lorentzian): baseline, amplitude, centre and FWHM in one pass or three
# ---------------------------------------------------------------------------------------

cdef int peak_guess_1d(int npts, const double *x, const double *y, int min_points,
                       double *amplitude, double *center, double *fwhm,
                       double *baseline) noexcept nogil:
    """Baseline from the lower quarter of the range, amplitude from the extreme above it,
    centre as the centroid of the points above half maximum and FWHM as their extent plus
    one sample spacing (the true crossings lie between samples). Dips (negative amplitude)
    are recognised by the extreme that lies farther from the mean."""
    cdef DataSummary s
    cdef double sign, zmax, zmin, z, threshold, base, count, amp, half
    cdef double wsum, wxsum, xlo, xhi, spacing, span
    cdef int i
    summarize(npts, x, y, &s)
    if s.n < min_points:
        return GUESS_TOO_FEW_POINTS
    span = s.xmax - s.xmin
    if span <= 0.0:
        return GUESS_TOO_FEW_POINTS
    spacing = span / (s.n - 1)
    if s.ymax == s.ymin:
        # flat data: no peak to measure; a zero-amplitude peak in the middle
        amplitude[0] = 0.0
        center[0] = 0.5 * (s.xmin + s.xmax)
        fwhm[0] = 0.25 * span
        baseline[0] = s.ymean
        return 0
    sign = 1.0 if (s.ymax - s.ymean) >= (s.ymean - s.ymin) else -1.0
    if sign > 0:
        zmax = s.ymax
        zmin = s.ymin
    else:
        zmax = -s.ymin
        zmin = -s.ymax
    # baseline: mean of the points in the lowest quarter of the range (mostly baseline noise)
    threshold = zmin + 0.25 * (zmax - zmin)
    base = 0.0
    count = 0.0
    for i in range(npts):
        if not usable(x[i], y[i]):
            continue
        z = sign * y[i]
        if z <= threshold:
            base += z
            count += 1.0
    base /= count
    amp = zmax - base
    half = base + 0.5 * amp
    wsum = 0.0
    wxsum = 0.0
    xlo = INFINITY
    xhi = -INFINITY
    for i in range(npts):
        if not usable(x[i], y[i]):
            continue
        z = sign * y[i]
        if z > half:
            wsum += z - base
            wxsum += (z - base) * x[i]
            if x[i] < xlo:
                xlo = x[i]
            if x[i] > xhi:
                xhi = x[i]
    if wsum > 0.0:
        center[0] = wxsum / wsum
        fwhm[0] = xhi - xlo + spacing
    else:
        center[0] = s.x_at_ymax if sign > 0 else s.x_at_ymin
        fwhm[0] = spacing
    amplitude[0] = sign * amp
    baseline[0] = sign * base
    return 0


# ---------------------------------------------------------------------------------------
# GAUSSIAN: A exp(-(x - mu)^2 / (2 sigma^2)) + c
# ---------------------------------------------------------------------------------------

cdef int gaussian_evaluate(int npts, const double *x, int nparams, const double *p,
                           double *out, double *jac) noexcept nogil:
    cdef double A = p[0], mu = p[1], sigma = p[2], c = p[3]
    cdef double inv_var, d, e
    cdef int i
    if not params_finite(p, 4) or sigma == 0.0:
        return 1
    inv_var = 1.0 / (sigma * sigma)
    if jac == NULL:
        for i in range(npts):
            d = x[i] - mu
            out[i] = A * exp(-0.5 * d * d * inv_var) + c
    else:
        for i in range(npts):
            d = x[i] - mu
            e = exp(-0.5 * d * d * inv_var)
            out[i] = A * e + c
            jac[4 * i] = e
            jac[4 * i + 1] = A * e * d * inv_var
            jac[4 * i + 2] = A * e * d * d * inv_var / sigma
            jac[4 * i + 3] = 1.0
    return finish_evaluate(npts, 4, out, jac)


cdef int gaussian_guess(int npts, const double *x, const double *y, int nparams,
                        double *p0) noexcept nogil:
    cdef double amplitude, center, fwhm, baseline
    cdef int status = peak_guess_1d(npts, x, y, 4, &amplitude, &center, &fwhm, &baseline)
    if status != 0:
        return status
    p0[0] = amplitude
    p0[1] = center
    p0[2] = fwhm / (2.0 * sqrt(2.0 * log(2.0)))
    p0[3] = baseline
    return 0


# ---------------------------------------------------------------------------------------
# Kernel table
# ---------------------------------------------------------------------------------------

cdef ModelKernel model_kernel(int model_id, int nparams) noexcept nogil:
    cdef ModelKernel k
    k.evaluate = NULL
    k.guess = NULL
    k.nparams = 0
    k.x_dim = 1
    if model_id == LINE:
        k.evaluate = line_evaluate
        k.guess = line_guess
        k.nparams = 2
    elif model_id == POLYNOMIAL:
        if nparams >= 1:
            k.evaluate = polynomial_evaluate
            k.guess = polynomial_guess
            k.nparams = nparams
    elif model_id == GAUSSIAN:
        k.evaluate = gaussian_evaluate
        k.guess = gaussian_guess
        k.nparams = 4
    return k


# ---------------------------------------------------------------------------------------
# Python access (used by fastcalc.models; no validation beyond memory safety)
# ---------------------------------------------------------------------------------------

cdef ModelKernel checked_kernel(int model_id, int nparams) except *:
    cdef ModelKernel k = model_kernel(model_id, nparams)
    if k.evaluate == NULL:
        raise ValueError(f"no built-in model with id {model_id} and {nparams} parameters")
    if k.nparams != nparams:
        raise ValueError(f"model {model_id} has {k.nparams} parameters, got nparams={nparams}")
    return k


def kernel_shape(int model_id, int nparams):
    """Return ``(nparams, x_dim)`` of built-in model ``model_id``."""
    cdef ModelKernel k = checked_kernel(model_id, nparams)
    return k.nparams, k.x_dim


def evaluate(int model_id, int nparams, x, p, bint want_jac=False):
    """Evaluate built-in model ``model_id`` at flat ``x`` (x_dim * npts values, row-major).

    Returns ``(values (npts,), jacobian (npts, nparams) or None, status)``; status 0 is
    success, non-zero means the parameters give no finite value.
    """
    cdef ModelKernel k = checked_kernel(model_id, nparams)
    cdef const double[::1] xv = np.ascontiguousarray(x, dtype=np.float64).reshape(-1)
    cdef const double[::1] pv = np.ascontiguousarray(p, dtype=np.float64).reshape(-1)
    if xv.shape[0] % k.x_dim != 0:
        raise ValueError(f"x must hold {k.x_dim} coordinate rows")
    if pv.shape[0] != k.nparams:
        raise ValueError(f"expected {k.nparams} parameters, got {pv.shape[0]}")
    cdef int npts = <int>(xv.shape[0] // k.x_dim)
    out = np.empty(npts, dtype=np.float64)
    cdef double[::1] outv = out
    jac = np.empty((npts, k.nparams), dtype=np.float64) if want_jac else None
    cdef double[:, ::1] jacv
    cdef double *jac_ptr = NULL
    if want_jac:
        jacv = jac
        if npts > 0:
            jac_ptr = &jacv[0, 0]
    cdef int status = 0
    if npts > 0:
        with nogil:
            status = k.evaluate(npts, &xv[0], k.nparams, &pv[0], &outv[0], jac_ptr)
    else:
        status = k.evaluate(0, NULL, k.nparams, &pv[0], NULL, NULL)
    return out, jac, status


def guess(int model_id, int nparams, x, y):
    """Initial guess of built-in model ``model_id`` from flat ``x`` and ``y`` (npts,).

    Returns ``(p0 (nparams,), status)``; status 0 is success, GUESS_STATUS_TOO_FEW_POINTS or
    GUESS_STATUS_BAD_DOMAIN otherwise (p0 is then unspecified).
    """
    cdef ModelKernel k = checked_kernel(model_id, nparams)
    cdef const double[::1] xv = np.ascontiguousarray(x, dtype=np.float64).reshape(-1)
    cdef const double[::1] yv = np.ascontiguousarray(y, dtype=np.float64).reshape(-1)
    if xv.shape[0] != k.x_dim * yv.shape[0]:
        raise ValueError(f"x must hold {k.x_dim} coordinate rows of len(y) = {yv.shape[0]}")
    cdef int npts = <int>yv.shape[0]
    p0 = np.full(k.nparams, np.nan)
    cdef double[::1] p0v = p0
    cdef int status
    if npts == 0:
        return p0, GUESS_TOO_FEW_POINTS
    with nogil:
        status = k.guess(npts, &xv[0], &yv[0], k.nparams, &p0v[0])
    return p0, status
