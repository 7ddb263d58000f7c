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
    RSS_CHUNK = 64

# weighted mean squared radius of a 2-D Gaussian over its part above half maximum, in
# units of sigma^2: 2 (1 - ln 2), from integrating r^2 exp(-r^2/2) over r^2 < 2 ln 2
cdef double HALF_MAX_R2 = 2.0 * (1.0 - 0.6931471805599453)

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

cdef double residual_sum_of_squares(model_eval_t evaluate, int x_dim, int npts,
                                   const double *x, const double *y, int nparams,
                                   const double *p) noexcept nogil:
    """Sum of squared residuals over the points with finite y, evaluated in chunks through
    stack buffers; infinite when the model has no finite value."""
    cdef double x_chunk[2 * RSS_CHUNK]
    cdef double values[RSS_CHUNK]
    cdef double total = 0.0, r
    cdef int start = 0, length, row, j
    while start < npts:
        length = npts - start if npts - start < RSS_CHUNK else RSS_CHUNK
        for row in range(x_dim):
            for j in range(length):
                x_chunk[row * length + j] = x[row * npts + start + j]
        if evaluate(length, x_chunk, nparams, p, values, NULL) != 0:
            # points with missing y may lie where the model overflows: recheck those only
            for j in range(length):
                if isfinite(y[start + j]) and not isfinite(values[j]):
                    return INFINITY
        for j in range(length):
            if isfinite(y[start + j]):
                r = y[start + j] - values[j]
                total += r * r
        start += length
    return total


cdef inline double peak_sign(double ymin, double ymean, double ymax) noexcept nogil:
    """+1 for a peak, -1 for a dip, 0 when the data do not say clearly (the extreme on one
    side of the mean is not at least twice as far as the other): then both are tried."""
    cdef double up = ymax - ymean, down = ymean - ymin
    if up > 2.0 * down:
        return 1.0
    if down > 2.0 * up:
        return -1.0
    return 0.0


cdef void peak_guess_1d(int npts, const double *x, const double *y, const DataSummary *s,
                        double sign, double *amplitude, double *center, double *fwhm,
                        double *baseline) noexcept nogil:
    """Peak (sign +1) or dip (sign -1) parameters: baseline as the mean of the points in the
    lowest quarter of the range (mostly baseline noise), amplitude from the extreme above
    it, centre as the centroid of the points above half maximum and FWHM as their extent
    plus one sample spacing (the true crossings lie between samples)."""
    cdef double zmax, zmin, z, threshold, base = 0.0, count = 0.0, amp, half
    cdef double wsum = 0.0, wxsum = 0.0, xlo = INFINITY, xhi = -INFINITY
    cdef double spacing = (s.xmax - s.xmin) / (s.n - 1)
    cdef int i
    zmax = s.ymax if sign > 0 else -s.ymin
    zmin = s.ymin if sign > 0 else -s.ymax
    threshold = zmin + 0.25 * (zmax - zmin)
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


cdef int peak_guess(model_eval_t evaluate, double fwhm_to_width, int npts, const double *x,
                    const double *y, double *p0) noexcept nogil:
    """(amplitude, centre, width, baseline) of a 1-D peak model whose width is
    fwhm * fwhm_to_width; when peak and dip are both plausible, the better fitting one."""
    cdef DataSummary s
    cdef double trial[4]
    cdef double sign, fwhm
    cdef int attempt
    summarize(npts, x, y, &s)
    if s.n < 4 or s.xmax <= s.xmin:
        return GUESS_TOO_FEW_POINTS
    if s.ymax == s.ymin:
        # flat data: no peak to measure; a zero-amplitude peak in the middle
        p0[0] = 0.0
        p0[1] = 0.5 * (s.xmin + s.xmax)
        p0[2] = 0.25 * (s.xmax - s.xmin) * fwhm_to_width
        p0[3] = s.ymean
        return 0
    sign = peak_sign(s.ymin, s.ymean, s.ymax)
    if sign != 0.0:
        peak_guess_1d(npts, x, y, &s, sign, &p0[0], &p0[1], &fwhm, &p0[3])
        p0[2] = fwhm * fwhm_to_width
        return 0
    for attempt in range(2):
        sign = 1.0 if attempt == 0 else -1.0
        peak_guess_1d(npts, x, y, &s, sign, &trial[0], &trial[1], &fwhm, &trial[3])
        trial[2] = fwhm * fwhm_to_width
        if attempt == 0 or (residual_sum_of_squares(evaluate, 1, npts, x, y, 4, trial)
                            < residual_sum_of_squares(evaluate, 1, npts, x, y, 4, p0)):
            p0[0] = trial[0]
            p0[1] = trial[1]
            p0[2] = trial[2]
            p0[3] = trial[3]
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
    # FWHM = 2 sqrt(2 ln 2) sigma
    return peak_guess(gaussian_evaluate, 1.0 / (2.0 * sqrt(2.0 * log(2.0))), npts, x, y, p0)


# ---------------------------------------------------------------------------------------
# EXPONENTIAL: A exp(-x / tau) + c
# ---------------------------------------------------------------------------------------

cdef int exponential_evaluate(int npts, const double *x, int nparams, const double *p,
                              double *out, double *jac) noexcept nogil:
    cdef double A = p[0], tau = p[1], c = p[2]
    cdef double inv_tau, e
    cdef int i
    if not params_finite(p, 3) or tau == 0.0:
        return 1
    inv_tau = 1.0 / tau
    for i in range(npts):
        e = exp(-x[i] * inv_tau)
        out[i] = A * e + c
        if jac != NULL:
            jac[3 * i] = e
            jac[3 * i + 1] = A * e * x[i] * inv_tau * inv_tau
            jac[3 * i + 2] = 1.0
    return finish_evaluate(npts, 3, out, jac)


cdef int exponential_amplitude_offset(int npts, const double *x, const double *y,
                                      double tau, double xmin, double xmax,
                                      double *p0) noexcept nogil:
    """Given tau the model is linear in (A, c): solve that least-squares problem exactly.
    The exponential is referred to the end where it is largest, so the column is <= 1."""
    cdef double R[4]
    cdef double qtb[2]
    cdef double row[2]
    cdef double coef[2]
    cdef double xref = xmin if tau > 0 else xmax
    cdef int i
    lsq_reset(R, qtb, 2)
    for i in range(npts):
        if not usable(x[i], y[i]):
            continue
        row[0] = exp(-(x[i] - xref) / tau)
        row[1] = 1.0
        lsq_add_row(R, qtb, 2, row, y[i])
    if lsq_solve(R, qtb, 2, coef) != 0:
        return GUESS_TOO_FEW_POINTS
    p0[0] = coef[0] * exp(xref / tau)
    p0[1] = tau
    p0[2] = coef[1]
    if not params_finite(p0, 3):
        return GUESS_TOO_FEW_POINTS
    return 0


cdef int exponential_guess(int npts, const double *x, const double *y, int nparams,
                           double *p0) noexcept nogil:
    # tau from the means of three equal-width x bins (for an exponential their successive
    # differences shrink by exp(-w / tau)); when the change happens within the first bin, a
    # y^2-weighted log-linear fit above the baseline of the far tail instead. Then A and c
    # by exact linear least squares at that tau.
    cdef DataSummary s
    cdef double bin_sum[3]
    cdef double bin_count[3]
    cdef double R[4]
    cdef double qtb[2]
    cdef double row[2]
    cdef double coef[2]
    cdef double width, ratio, d_first, d_second, tau, tail, sign, z, xref
    cdef bint decays_to_right
    cdef int i, b
    summarize(npts, x, y, &s)
    if s.n < 3:
        return GUESS_TOO_FEW_POINTS
    width = (s.xmax - s.xmin) / 3.0
    if width <= 0.0:
        return GUESS_TOO_FEW_POINTS
    for b in range(3):
        bin_sum[b] = 0.0
        bin_count[b] = 0.0
    for i in range(npts):
        if not usable(x[i], y[i]):
            continue
        b = <int>((x[i] - s.xmin) / width)
        if b > 2:
            b = 2
        bin_sum[b] += y[i]
        bin_count[b] += 1.0
    for b in range(3):
        if bin_count[b] == 0.0:
            # very uneven x: no binned estimate; one decay length per third of the span
            tau = width
            return exponential_amplitude_offset(npts, x, y, tau, s.xmin, s.xmax, p0)
        bin_sum[b] /= bin_count[b]
    d_first = bin_sum[0] - bin_sum[1]
    d_second = bin_sum[1] - bin_sum[2]
    decays_to_right = fabs(d_first) >= fabs(d_second)
    ratio = d_second / d_first if d_first != 0.0 else INFINITY
    if 0.02 < ratio < 0.98 or 1.0 / 0.98 < ratio < 50.0:
        tau = -width / log(ratio)
    elif 0.98 <= ratio <= 1.0 / 0.98:
        # nearly linear over the window: a long decay length of the right direction
        tau = 50.0 * width * (1.0 if ratio < 1.0 else -1.0)
    else:
        # the whole change happens within one bin: baseline from the far tail, then a
        # weighted log-linear fit of what stands above (below) it
        tail = bin_sum[2] if decays_to_right else bin_sum[0]
        sign = 1.0 if (bin_sum[0] if decays_to_right else bin_sum[2]) > tail else -1.0
        xref = s.xmin if decays_to_right else s.xmax
        lsq_reset(R, qtb, 2)
        for i in range(npts):
            if not usable(x[i], y[i]):
                continue
            z = sign * (y[i] - tail)
            if z <= 0.0:
                continue
            # weight z^2 (rows scaled by z): noise-dominated points near the baseline,
            # whose logarithms are meaningless, hardly count
            row[0] = z
            row[1] = z * (x[i] - xref)
            lsq_add_row(R, qtb, 2, row, z * log(z))
        tau = 0.0
        if lsq_solve(R, qtb, 2, coef) == 0 and coef[1] != 0.0:
            tau = -1.0 / coef[1]
        if not isfinite(tau) or tau == 0.0 or (tau > 0) != decays_to_right:
            tau = width / 3.0 if decays_to_right else -width / 3.0
    return exponential_amplitude_offset(npts, x, y, tau, s.xmin, s.xmax, p0)


# ---------------------------------------------------------------------------------------
# LORENTZIAN: A gamma^2 / ((x - x0)^2 + gamma^2) + c
# ---------------------------------------------------------------------------------------

cdef int lorentzian_evaluate(int npts, const double *x, int nparams, const double *p,
                             double *out, double *jac) noexcept nogil:
    cdef double A = p[0], x0 = p[1], gamma = p[2], c = p[3]
    cdef double g2, d, denom, f
    cdef int i
    if not params_finite(p, 4) or gamma == 0.0:
        return 1
    g2 = gamma * gamma
    for i in range(npts):
        d = x[i] - x0
        denom = 1.0 / (d * d + g2)
        f = g2 * denom
        out[i] = A * f + c
        if jac != NULL:
            jac[4 * i] = f
            jac[4 * i + 1] = 2.0 * A * f * d * denom
            jac[4 * i + 2] = 2.0 * A * f * d * d * denom / gamma
            jac[4 * i + 3] = 1.0
    return finish_evaluate(npts, 4, out, jac)


cdef int lorentzian_guess(int npts, const double *x, const double *y, int nparams,
                          double *p0) noexcept nogil:
    # FWHM = 2 gamma
    return peak_guess(lorentzian_evaluate, 0.5, npts, x, y, p0)


# ---------------------------------------------------------------------------------------
# LOGISTIC: L / (1 + exp(-k (x - x0))) + c
# ---------------------------------------------------------------------------------------

cdef int logistic_evaluate(int npts, const double *x, int nparams, const double *p,
                           double *out, double *jac) noexcept nogil:
    cdef double L = p[0], x0 = p[1], k = p[2], c = p[3]
    cdef double z, e, s, sc, d
    cdef int i
    if not params_finite(p, 4):
        return 1
    for i in range(npts):
        d = x[i] - x0
        z = k * d
        # s = 1/(1+exp(-z)) and sc = 1 - s, both without cancellation or overflow
        if z >= 0.0:
            e = exp(-z)
            s = 1.0 / (1.0 + e)
            sc = e * s
        else:
            e = exp(z)
            sc = 1.0 / (1.0 + e)
            s = e * sc
        out[i] = L * s + c
        if jac != NULL:
            jac[4 * i] = s
            jac[4 * i + 1] = -L * s * sc * k
            jac[4 * i + 2] = L * s * sc * d
            jac[4 * i + 3] = 1.0
    return finish_evaluate(npts, 4, out, jac)


cdef int logistic_guess(int npts, const double *x, const double *y, int nparams,
                        double *p0) noexcept nogil:
    # Levels from the means of the outer 15% of the x span on each side (c the left one,
    # L the step, so k > 0 always); x0 the centroid of the points between 25% and 75% of
    # the step, and k from their number: that band is 2 ln 3 / k wide.
    cdef DataSummary s
    cdef double span, edge, left, right, nleft, nright, level_low, step, u
    cdef double band_x, band_n, below_x, above_x, width
    cdef int i
    summarize(npts, x, y, &s)
    if s.n < 4:
        return GUESS_TOO_FEW_POINTS
    span = s.xmax - s.xmin
    if span <= 0.0:
        return GUESS_TOO_FEW_POINTS
    edge = 0.15 * span
    left = 0.0
    right = 0.0
    nleft = 0.0
    nright = 0.0
    for i in range(npts):
        if not usable(x[i], y[i]):
            continue
        if x[i] <= s.xmin + edge:
            left += y[i]
            nleft += 1.0
        if x[i] >= s.xmax - edge:
            right += y[i]
            nright += 1.0
    level_low = left / nleft
    step = right / nright - level_low
    if step == 0.0:
        p0[0] = 0.0
        p0[1] = 0.5 * (s.xmin + s.xmax)
        p0[2] = 4.0 / span
        p0[3] = s.ymean
        return 0
    band_x = 0.0
    band_n = 0.0
    below_x = -INFINITY
    above_x = INFINITY
    for i in range(npts):
        if not usable(x[i], y[i]):
            continue
        u = (y[i] - level_low) / step
        if 0.25 < u < 0.75:
            band_x += x[i]
            band_n += 1.0
        if u < 0.5 and x[i] > below_x:
            below_x = x[i]
        if u >= 0.5 and x[i] < above_x:
            above_x = x[i]
    if band_n > 0.0:
        p0[1] = band_x / band_n
    elif isfinite(below_x) and isfinite(above_x):
        p0[1] = 0.5 * (below_x + above_x)
    else:
        p0[1] = 0.5 * (s.xmin + s.xmax)
    width = (band_n if band_n > 1.0 else 1.0) * span / (s.n - 1)
    p0[0] = step
    p0[2] = 2.0 * log(3.0) / width
    p0[3] = level_low
    return 0


# ---------------------------------------------------------------------------------------
# POWER_LAW: A x^k for x > 0
# ---------------------------------------------------------------------------------------

cdef int power_law_evaluate(int npts, const double *x, int nparams, const double *p,
                            double *out, double *jac) noexcept nogil:
    cdef double A = p[0], k = p[1]
    cdef double power, logx
    cdef int i
    if not params_finite(p, 2):
        return 1
    for i in range(npts):
        if not x[i] > 0.0:
            return 1
        logx = log(x[i])
        power = exp(k * logx)
        out[i] = A * power
        if jac != NULL:
            jac[2 * i] = power
            jac[2 * i + 1] = A * power * logx
    return finish_evaluate(npts, 2, out, jac)


cdef int power_law_guess(int npts, const double *x, const double *y, int nparams,
                         double *p0) noexcept nogil:
    # log|y| = log|A| + k log x, fitted with weights y^2 (rows scaled by |y|) over the points
    # of the majority sign, so noisy values near zero hardly count.
    cdef double R[4]
    cdef double qtb[2]
    cdef double row[2]
    cdef double coef[2]
    cdef double total = 0.0, log_ref = 0.0, sign, z, count = 0.0
    cdef int i
    for i in range(npts):
        if not usable(x[i], y[i]):
            continue
        if not x[i] > 0.0:
            return GUESS_BAD_DOMAIN
        total += y[i]
        log_ref += log(x[i])
        count += 1.0
    if count < 2.0:
        return GUESS_TOO_FEW_POINTS
    log_ref /= count
    sign = 1.0 if total >= 0.0 else -1.0
    lsq_reset(R, qtb, 2)
    for i in range(npts):
        if not usable(x[i], y[i]):
            continue
        z = sign * y[i]
        if z <= 0.0:
            continue
        row[0] = z
        row[1] = z * (log(x[i]) - log_ref)
        lsq_add_row(R, qtb, 2, row, z * log(z))
    if lsq_solve(R, qtb, 2, coef) != 0:
        return GUESS_TOO_FEW_POINTS
    p0[0] = sign * exp(coef[0] - coef[1] * log_ref)
    p0[1] = coef[1]
    if not params_finite(p0, 2):
        return GUESS_TOO_FEW_POINTS
    return 0


# ---------------------------------------------------------------------------------------
# SINE: A sin(omega x + phi) + c
# ---------------------------------------------------------------------------------------

cdef int sine_evaluate(int npts, const double *x, int nparams, const double *p,
                       double *out, double *jac) noexcept nogil:
    cdef double A = p[0], omega = p[1], phi = p[2], c = p[3]
    cdef double arg, sv, cv
    cdef int i
    if not params_finite(p, 4):
        return 1
    for i in range(npts):
        arg = omega * x[i] + phi
        sv = sin(arg)
        out[i] = A * sv + c
        if jac != NULL:
            cv = A * cos(arg)
            jac[4 * i] = sv
            jac[4 * i + 1] = cv * x[i]
            jac[4 * i + 2] = cv
            jac[4 * i + 3] = 1.0
    return finish_evaluate(npts, 4, out, jac)


cdef double sine_linear_fit(int npts, const double *x, const double *y, double omega,
                            double *coef) noexcept nogil:
    """Least squares y ~ a sin(omega x) + b cos(omega x) + c; returns the residual sum of
    squares (infinite when singular) and (a, b, c) in coef."""
    cdef double R[9]
    cdef double qtb[3]
    cdef double row[3]
    cdef double rss = 0.0, r
    cdef int i
    lsq_reset(R, qtb, 3)
    for i in range(npts):
        if not usable(x[i], y[i]):
            continue
        row[0] = sin(omega * x[i])
        row[1] = cos(omega * x[i])
        row[2] = 1.0
        r = lsq_add_row(R, qtb, 3, row, y[i])
        rss += r * r
    if lsq_solve(R, qtb, 3, coef) != 0:
        return INFINITY
    return rss


cdef double best_frequency(int npts, const double *x, const double *y, double low,
                           double high, int steps) noexcept nogil:
    """The frequency of least residual among `steps` equally spaced ones in [low, high]."""
    cdef double coef[3]
    cdef double best = low, best_rss = INFINITY, omega, rss
    cdef int j
    for j in range(steps):
        omega = low + (high - low) * j / (steps - 1)
        if omega <= 0.0:
            continue
        rss = sine_linear_fit(npts, x, y, omega, coef)
        if rss < best_rss:
            best_rss = rss
            best = omega
    return best


cdef int sine_guess(int npts, const double *x, const double *y, int nparams,
                    double *p0) noexcept nogil:
    # omega from the zero crossings of y - mean (with hysteresis against noise) when x is
    # sorted, else from a periodogram scan up to the Nyquist frequency (O(npts^2), only for
    # unsorted x); refined by two small scans of the least-squares residual around it; then
    # amplitude, phase and offset exactly by linear least squares at that omega.
    cdef DataSummary s
    cdef double coef[3]
    cdef double span, hysteresis, v, omega, first_cross = 0.0, last_cross = 0.0
    cdef double last_x_in_state = 0.0, previous_x = -INFINITY
    cdef int i, state = 0, new_state, crossings = 0
    cdef bint is_sorted = True
    summarize(npts, x, y, &s)
    if s.n < 4:
        return GUESS_TOO_FEW_POINTS
    span = s.xmax - s.xmin
    if span <= 0.0:
        return GUESS_TOO_FEW_POINTS
    for i in range(npts):
        if not usable(x[i], y[i]):
            continue
        if x[i] < previous_x:
            is_sorted = False
            break
        previous_x = x[i]
    if is_sorted:
        hysteresis = 0.3 * 0.5 * (s.ymax - s.ymin)
        for i in range(npts):
            if not usable(x[i], y[i]):
                continue
            v = y[i] - s.ymean
            new_state = 1 if v > hysteresis else (-1 if v < -hysteresis else state)
            if state != 0 and new_state != state:
                last_cross = 0.5 * (last_x_in_state + x[i])
                if crossings == 0:
                    first_cross = last_cross
                crossings += 1
            if new_state != 0 and v * new_state > hysteresis:
                last_x_in_state = x[i]
            state = new_state
        if crossings >= 2 and last_cross > first_cross:
            omega = M_PI * (crossings - 1) / (last_cross - first_cross)
        else:
            omega = M_PI / span * (1.0 if crossings == 0 else 1.5)
        omega = best_frequency(npts, x, y, 0.7 * omega, 1.3 * omega, 13)
    else:
        omega = best_frequency(npts, x, y, 0.5 * M_PI / span, M_PI * (s.n - 1) / span,
                               4 * s.n)
    # final refinement: +-5% (the coarse grid steps are 5% of omega)
    omega = best_frequency(npts, x, y, 0.95 * omega, 1.05 * omega, 11)
    if not isfinite(sine_linear_fit(npts, x, y, omega, coef)):
        return GUESS_TOO_FEW_POINTS
    p0[0] = hypot(coef[0], coef[1])
    p0[1] = omega
    p0[2] = atan2(coef[1], coef[0])
    p0[3] = coef[2]
    return 0


# ---------------------------------------------------------------------------------------
# GAUSSIAN_2D: A exp(-((x - x0)^2 + (y - y0)^2) / (2 sigma^2)) + b, x rows (x, y)
# ---------------------------------------------------------------------------------------

cdef int gaussian_2d_evaluate(int npts, const double *x, int nparams, const double *p,
                              double *out, double *jac) noexcept nogil:
    cdef double A = p[0], x0 = p[1], y0 = p[2], sigma = p[3], b = p[4]
    cdef const double *yc = x + npts
    cdef double inv_var, dx, dy, r2, e
    cdef int i
    if not params_finite(p, 5) or sigma == 0.0:
        return 1
    inv_var = 1.0 / (sigma * sigma)
    if jac == NULL:
        for i in range(npts):
            dx = x[i] - x0
            dy = yc[i] - y0
            out[i] = A * exp(-0.5 * (dx * dx + dy * dy) * inv_var) + b
    else:
        for i in range(npts):
            dx = x[i] - x0
            dy = yc[i] - y0
            r2 = dx * dx + dy * dy
            e = exp(-0.5 * r2 * inv_var)
            out[i] = A * e + b
            jac[5 * i] = e
            jac[5 * i + 1] = A * e * dx * inv_var
            jac[5 * i + 2] = A * e * dy * inv_var
            jac[5 * i + 3] = A * e * r2 * inv_var / sigma
            jac[5 * i + 4] = 1.0
    return finish_evaluate(npts, 5, out, jac)


cdef struct Summary2D:
    int n
    double xmin, xmax, ymin, ymax, zmin, zmax, zmean


cdef inline bint usable_2d(const double *x, const double *yc, const double *z,
                           int i) noexcept nogil:
    return isfinite(x[i]) and isfinite(yc[i]) and isfinite(z[i])


cdef void gaussian_2d_guess_signed(int npts, const double *x, const double *z,
                                   const Summary2D *s, double sign,
                                   double *p0) noexcept nogil:
    """Peak (sign +1) or dip (sign -1) parameters, as the 1-D peak: baseline from the
    lowest quarter of the range, amplitude from the extreme, centre the weighted centroid
    of the points above half maximum; sigma from their mean squared radius weighted by
    height above baseline, which for a Gaussian cut at half maximum is HALF_MAX_R2 sigma^2;
    floored at half the point spacing."""
    cdef const double *yc = x + npts
    cdef double hi, lo, v, threshold, base = 0.0, count = 0.0, amp, half, w
    cdef double wsum = 0.0, wx = 0.0, wy = 0.0, cx = 0.0, cy = 0.0, r2sum = 0.0
    cdef double pixel, sigma
    cdef int i
    # typical point spacing, from the bounding box of a roughly square sampling
    pixel = sqrt((s.xmax - s.xmin) * (s.ymax - s.ymin)) / (sqrt(<double>s.n) - 1.0)
    hi = s.zmax if sign > 0 else -s.zmin
    lo = s.zmin if sign > 0 else -s.zmax
    threshold = lo + 0.25 * (hi - lo)
    for i in range(npts):
        if not usable_2d(x, yc, z, i):
            continue
        v = sign * z[i]
        if v <= threshold:
            base += v
            count += 1.0
        if v == hi:
            cx = x[i]
            cy = yc[i]
    base /= count
    amp = hi - base
    half = base + 0.5 * amp
    for i in range(npts):
        if not usable_2d(x, yc, z, i):
            continue
        v = sign * z[i]
        if v > half:
            w = v - base
            wsum += w
            wx += w * x[i]
            wy += w * yc[i]
    if wsum > 0.0:
        cx = wx / wsum
        cy = wy / wsum
    for i in range(npts):
        if not usable_2d(x, yc, z, i):
            continue
        v = sign * z[i]
        if v > half:
            r2sum += (v - base) * ((x[i] - cx) * (x[i] - cx) + (yc[i] - cy) * (yc[i] - cy))
    sigma = sqrt(r2sum / wsum / HALF_MAX_R2) if wsum > 0.0 else 0.0
    if sigma < 0.5 * pixel:
        sigma = 0.5 * pixel
    p0[0] = sign * amp
    p0[1] = cx
    p0[2] = cy
    p0[3] = sigma
    p0[4] = sign * base


cdef int gaussian_2d_guess(int npts, const double *x, const double *z, int nparams,
                           double *p0) noexcept nogil:
    cdef const double *yc = x + npts
    cdef Summary2D s
    cdef double trial[5]
    cdef double zsum = 0.0, sign
    cdef int i, j, attempt
    s.n = 0
    s.xmin = INFINITY
    s.xmax = -INFINITY
    s.ymin = INFINITY
    s.ymax = -INFINITY
    s.zmin = INFINITY
    s.zmax = -INFINITY
    for i in range(npts):
        if not usable_2d(x, yc, z, i):
            continue
        s.n += 1
        zsum += z[i]
        s.xmin = x[i] if x[i] < s.xmin else s.xmin
        s.xmax = x[i] if x[i] > s.xmax else s.xmax
        s.ymin = yc[i] if yc[i] < s.ymin else s.ymin
        s.ymax = yc[i] if yc[i] > s.ymax else s.ymax
        s.zmin = z[i] if z[i] < s.zmin else s.zmin
        s.zmax = z[i] if z[i] > s.zmax else s.zmax
    if s.n < 5 or s.xmax <= s.xmin or s.ymax <= s.ymin:
        return GUESS_TOO_FEW_POINTS
    s.zmean = zsum / s.n
    if s.zmax == s.zmin:
        p0[0] = 0.0
        p0[1] = 0.5 * (s.xmin + s.xmax)
        p0[2] = 0.5 * (s.ymin + s.ymax)
        p0[3] = 0.25 * sqrt((s.xmax - s.xmin) * (s.ymax - s.ymin))
        p0[4] = s.zmean
        return 0
    sign = peak_sign(s.zmin, s.zmean, s.zmax)
    if sign != 0.0:
        gaussian_2d_guess_signed(npts, x, z, &s, sign, p0)
        return 0
    for attempt in range(2):
        gaussian_2d_guess_signed(npts, x, z, &s, 1.0 if attempt == 0 else -1.0, trial)
        if attempt == 0 or (
                residual_sum_of_squares(gaussian_2d_evaluate, 2, npts, x, z, 5, trial)
                < residual_sum_of_squares(gaussian_2d_evaluate, 2, npts, x, z, 5, p0)):
            for j in range(5):
                p0[j] = trial[j]
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
    elif model_id == EXPONENTIAL:
        k.evaluate = exponential_evaluate
        k.guess = exponential_guess
        k.nparams = 3
    elif model_id == GAUSSIAN:
        k.evaluate = gaussian_evaluate
        k.guess = gaussian_guess
        k.nparams = 4
    elif model_id == LORENTZIAN:
        k.evaluate = lorentzian_evaluate
        k.guess = lorentzian_guess
        k.nparams = 4
    elif model_id == LOGISTIC:
        k.evaluate = logistic_evaluate
        k.guess = logistic_guess
        k.nparams = 4
    elif model_id == POWER_LAW:
        k.evaluate = power_law_evaluate
        k.guess = power_law_guess
        k.nparams = 2
    elif model_id == SINE:
        k.evaluate = sine_evaluate
        k.guess = sine_guess
        k.nparams = 4
    elif model_id == GAUSSIAN_2D:
        k.evaluate = gaussian_2d_evaluate
        k.guess = gaussian_2d_guess
        k.nparams = 5
        k.x_dim = 2
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
