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

Guesses are O(npts) (except sine on unsorted x: a periodogram scan, O(npts^2)), allocate
nothing (polynomials above degree MAX_STACK_PARAMS - 1 use one malloc), touch no Python and
are thread-safe: fit_batch calls them inside prange loops.
"""
from libc.math cimport (atan2, cos, exp, fabs, fmax, hypot, ilogb, isfinite, ldexp, log, pow,
                        sin, sqrt, INFINITY, M_PI, NAN)
from libc.stdlib cimport free, malloc

import numpy as np

cdef enum:
    # guess status codes (0 = success)
    GUESS_TOO_FEW_POINTS = 1
    GUESS_BAD_DOMAIN = 2
    # stack buffer sizes: parameters of an exact polynomial fit, points per chunk of
    # model evaluations, frequencies per pass of the sine scan
    MAX_STACK_PARAMS = 16
    RSS_CHUNK = 64
    SCAN_BLOCK = 16

cdef double LN2 = 0.6931471805599453
# Mean squared radius of a 2-D Gaussian over its part above half maximum, weighted by the
# height above half maximum, in units of sigma^2: with u = r^2 / (2 sigma^2) and U = ln 2,
# 2 * int_0^U u (e^-u - 1/2) du / int_0^U (e^-u - 1/2) du.
cdef double HALF_MAX_R2 = (2.0 * (0.5 - 0.5 * LN2 - 0.25 * LN2 * LN2)
                           / (0.5 - 0.5 * LN2))
# see peak_baseline
cdef double BASELINE_CUT = 0.35

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
    # inf * 0 and nan * 0 are nan, so nan-propagating sums check every element without a
    # branch per element. Four independent sums: one would be a chain of dependent adds
    # (the compiler may not reorder them), its latency a large part of a model evaluation.
    cdef double acc0 = 0.0, acc1 = 0.0, acc2 = 0.0, acc3 = 0.0
    cdef Py_ssize_t i = 0
    while i + 4 <= n:
        acc0 += values[i] * 0.0
        acc1 += values[i + 1] * 0.0
        acc2 += values[i + 2] * 0.0
        acc3 += values[i + 3] * 0.0
        i += 4
    while i < n:
        acc0 += values[i] * 0.0
        i += 1
    return (acc0 + acc1) + (acc2 + acc3) == 0.0


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
        # plain sqrt: glibc's overflow-safe hypot costs several times more, and guesses
        # only see data far below 1e150 (an overflow gives inf and a failed guess)
        rho = sqrt(R[k * p + k] * R[k * p + k] + row[k] * row[k])
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

cdef double refit_amplitude_offset(model_eval_t evaluate, int x_dim, int npts,
                                  const double *x, const double *y, int nparams, double *p,
                                  int amplitude_index, int offset_index) noexcept nogil:
    """For models amplitude * shape(x; other params) + offset: solve (amplitude, offset)
    exactly by linear least squares for the shape given in p, store them in p and return
    the residual sum of squares (infinite, p unchanged, when impossible). The shape is
    evaluated in chunks through stack buffers.

    Two unknowns need only the centred sums of the shape s and data y: they are accumulated
    shifted by the first usable point (s0, y0), which keeps the cancellation to the spread of
    the data, and involve no division or square root per point (a Givens update has both,
    and their latency made this the largest part of a guess)."""
    cdef double x_chunk[2 * RSS_CHUNK]
    cdef double shape[RSS_CHUNK]
    cdef double saved_amplitude = p[amplitude_index], saved_offset = p[offset_index]
    cdef double s0 = 0.0, y0 = 0.0, ds, dy, count = 0.0
    cdef double sum_s = 0.0, sum_y = 0.0, sum_ss = 0.0, sum_sy = 0.0, sum_yy = 0.0
    cdef double raw_ss = 0.0, sxx, sxy, syy, r00, r11, amplitude, rss
    cdef int start = 0, length, dim, j, failed = 0, first = 1
    p[amplitude_index] = 1.0
    p[offset_index] = 0.0
    while start < npts and not failed:
        length = npts - start if npts - start < RSS_CHUNK else RSS_CHUNK
        if length == npts:
            # one chunk: x already has the layout a chunk needs
            evaluate(length, x, nparams, p, shape, NULL)
        else:
            for dim in range(x_dim):
                for j in range(length):
                    x_chunk[dim * length + j] = x[dim * npts + start + j]
            evaluate(length, x_chunk, nparams, p, shape, NULL)
        for j in range(length):
            if not isfinite(y[start + j]):
                continue
            if not isfinite(shape[j]):
                failed = 1
                break
            if first:
                s0 = shape[j]
                y0 = y[start + j]
                first = 0
            ds = shape[j] - s0
            dy = y[start + j] - y0
            count += 1.0
            sum_s += ds
            sum_y += dy
            sum_ss += ds * ds
            sum_sy += ds * dy
            sum_yy += dy * dy
            raw_ss += shape[j] * shape[j]
        start += length
    p[amplitude_index] = saved_amplitude
    p[offset_index] = saved_offset
    if failed or count == 0.0:
        return INFINITY
    sxx = sum_ss - sum_s * sum_s / count
    sxy = sum_sy - sum_s * sum_y / count
    syy = sum_yy - sum_y * sum_y / count
    # the singularity test of a QR of the columns (shape, 1): R00^2 = sum s^2 and
    # R11^2 = count * sxx / sum s^2; R11 <= 1e-13 max(R00, R11) counts as singular
    r00 = raw_ss
    if not (sxx > 0.0 and r00 > 0.0):
        return INFINITY
    r11 = count * sxx / r00
    if r11 <= 1e-26 * (r00 if r00 > r11 else r11):
        return INFINITY
    amplitude = sxy / sxx
    if not (isfinite(amplitude) and isfinite(y0 + sum_y / count
                                             - amplitude * (s0 + sum_s / count))):
        return INFINITY
    p[amplitude_index] = amplitude
    p[offset_index] = y0 + sum_y / count - amplitude * (s0 + sum_s / count)
    rss = syy - amplitude * sxy
    return rss if rss > 0.0 else 0.0


cdef inline double peak_sign(double ymin, double ymean, double ymax) noexcept nogil:
    """+1 for a peak, -1 for a dip, 0 when the data do not say clearly (the extreme on one
    side of the mean is not at least twice as far as the other): then both are tried."""
    cdef double up = ymax - ymean, down = ymean - ymin
    if up > 2.0 * down:
        return 1.0
    if down > 2.0 * up:
        return -1.0
    return 0.0


cdef double peak_baseline(int npts, const double *x, const double *x2, const double *y,
                          double sign, double zmin, double zmax) noexcept nogil:
    """Baseline of a peak (sign +1) or dip (sign -1) with most points on the baseline: the
    mean of the points below mid-range, then of those below BASELINE_CUT of the way from
    that mean to the extreme (few peak points, little clipping of the baseline noise).
    x2 is the second coordinate row of 2-D data, or NULL."""
    cdef double base = 0.0, count = 0.0, threshold = 0.5 * (zmin + zmax), z
    cdef int i, step
    for step in range(2):
        base = 0.0
        count = 0.0
        for i in range(npts):
            if not (isfinite(x[i]) and isfinite(y[i])) or (x2 != NULL and not isfinite(x2[i])):
                continue
            z = sign * y[i]
            if z <= threshold:
                base += z
                count += 1.0
        base /= count     # count >= 1: the minimum is always below the threshold
        threshold = base + BASELINE_CUT * (zmax - base)
    return base


cdef void peak_guess_1d(int npts, const double *x, const double *y, const DataSummary *s,
                        double sign, double *amplitude, double *center, double *fwhm,
                        double *baseline) noexcept nogil:
    """Peak (sign +1) or dip (sign -1) parameters: baseline from peak_baseline, amplitude
    from the extreme above it, centre as the centroid of the points above half maximum
    (weighted by their height above it, so noise just crossing it hardly counts) and FWHM
    from those points: their extent plus one sample spacing (the true crossings lie between
    samples), or their number times the mean spacing if smaller (a stray noise point far
    away adds one spacing, not the distance)."""
    cdef double zmax, zmin, z, base, amp, half, count = 0.0
    cdef double wsum = 0.0, wxsum = 0.0, xlo = INFINITY, xhi = -INFINITY
    cdef double spacing = (s.xmax - s.xmin) / (s.n - 1)
    cdef int i
    zmax = s.ymax if sign > 0 else -s.ymin
    zmin = s.ymin if sign > 0 else -s.ymax
    base = peak_baseline(npts, x, NULL, y, sign, zmin, zmax)
    amp = zmax - base
    half = base + 0.5 * amp
    for i in range(npts):
        if not usable(x[i], y[i]):
            continue
        z = sign * y[i]
        if z > half:
            count += 1.0
            wsum += z - half
            wxsum += (z - half) * x[i]
            if x[i] < xlo:
                xlo = x[i]
            if x[i] > xhi:
                xhi = x[i]
    if wsum > 0.0:
        center[0] = wxsum / wsum
        fwhm[0] = xhi - xlo + spacing
        if count * spacing < fwhm[0]:
            fwhm[0] = count * spacing
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
    cdef double sign, fwhm, rss, best = INFINITY
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
    for attempt in range(4):
        trial[attempt] = 0.0
    # amplitude and baseline are then refined by exact linear least squares for the
    # estimated centre and width (the data's own estimates are biased by wide flanks)
    sign = peak_sign(s.ymin, s.ymean, s.ymax)
    if sign != 0.0:
        peak_guess_1d(npts, x, y, &s, sign, &p0[0], &p0[1], &fwhm, &p0[3])
        p0[2] = fwhm * fwhm_to_width
        refit_amplitude_offset(evaluate, 1, npts, x, y, 4, p0, 0, 3)
        return 0
    for attempt in range(2):
        sign = 1.0 if attempt == 0 else -1.0
        peak_guess_1d(npts, x, y, &s, sign, &trial[0], &trial[1], &fwhm, &trial[3])
        trial[2] = fwhm * fwhm_to_width
        rss = refit_amplitude_offset(evaluate, 1, npts, x, y, 4, trial, 0, 3)
        if attempt == 0 or rss < best:
            best = rss
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
    cdef double inv_var, inv_sigma, d, e, slope
    cdef int i
    if not params_finite(p, 4) or sigma == 0.0:
        return 1
    inv_var = 1.0 / (sigma * sigma)
    inv_sigma = 1.0 / sigma      # no division per point
    if jac == NULL:
        for i in range(npts):
            d = x[i] - mu
            out[i] = A * exp(-0.5 * d * d * inv_var) + c
    else:
        for i in range(npts):
            d = x[i] - mu
            e = exp(-0.5 * d * d * inv_var)
            out[i] = A * e + c
            slope = A * e * d * inv_var
            jac[4 * i] = e
            if e == 0.0:    # far tail (also x = +-inf, where 0 * inf would be NaN)
                jac[4 * i + 1] = 0.0
                jac[4 * i + 2] = 0.0
            else:
                jac[4 * i + 1] = slope
                jac[4 * i + 2] = slope * d * inv_sigma
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


cdef struct LineSums:
    # sums for the least-squares line y = a * s + b, shifted by the first point (s0, y0)
    double s0, y0, s, y, ss, sy, yy, raw_ss


cdef inline void line_sums_add(LineSums *t, double count, double s, double y) noexcept nogil:
    cdef double ds, dy
    if count == 0.0:
        t.s0 = s
        t.y0 = y
    ds = s - t.s0
    dy = y - t.y0
    t.s += ds
    t.y += dy
    t.ss += ds * ds
    t.sy += ds * dy
    t.yy += dy * dy
    t.raw_ss += s * s


cdef double line_sums_solve(const LineSums *t, double count, double *slope,
                            double *intercept) noexcept nogil:
    """Slope and intercept of the least-squares line and its residual sum of squares
    (infinite when the columns (s, 1) are numerically dependent: the test of a QR,
    R11 <= 1e-13 max(R00, R11) with R00^2 = sum s^2, R11^2 = count * sxx / sum s^2)."""
    cdef double sxx, sxy, syy, r11, a, b, rss
    if count == 0.0:
        return INFINITY
    sxx = t.ss - t.s * t.s / count
    sxy = t.sy - t.s * t.y / count
    syy = t.yy - t.y * t.y / count
    if not (sxx > 0.0 and t.raw_ss > 0.0):
        return INFINITY
    r11 = count * sxx / t.raw_ss
    if r11 <= 1e-26 * (t.raw_ss if t.raw_ss > r11 else r11):
        return INFINITY
    a = sxy / sxx
    b = t.y0 + t.y / count - a * (t.s0 + t.s / count)
    if not (isfinite(a) and isfinite(b)):
        return INFINITY
    slope[0] = a
    intercept[0] = b
    rss = syy - a * sxy
    return rss if rss > 0.0 else 0.0


cdef int exponential_best_of(int npts, const double *x, const double *y, double tau,
                             double xmin, double xmax, double *p0) noexcept nogil:
    """Variable projection over a few decay rates: tau itself, half and twice it, and
    the opposite direction (noisy, nearly linear data can hide it); the candidate of least
    residual, with its exact (A, c). Given tau the model is linear in (A, c); the
    exponential is referred to the end where it is largest, so the column is <= 1.

    One pass: with e = exp(-(x - xref) / tau), the rates tau / 0.5 and tau / 2 have the
    columns sqrt(e) and e^2, and the opposite direction those of its own e: two exp() per
    point serve all five candidates."""
    cdef LineSums sums[5]
    cdef double factors[5]
    cdef double column[5]
    cdef double best = INFINITY, rss, count = 0.0, slope = 0.0, intercept = 0.0, t, xref
    cdef double xref_same = xmin if tau > 0 else xmax
    cdef double xref_opposite = xmax if tau > 0 else xmin
    cdef double inv_tau = 1.0 / tau
    cdef double e_same, e_opposite
    cdef int i, j
    factors[0] = 1.0
    factors[1] = 0.5
    factors[2] = 2.0
    factors[3] = -1.0
    factors[4] = -0.5
    for j in range(5):
        sums[j].s0 = 0.0
        sums[j].y0 = 0.0
        sums[j].s = 0.0
        sums[j].y = 0.0
        sums[j].ss = 0.0
        sums[j].sy = 0.0
        sums[j].yy = 0.0
        sums[j].raw_ss = 0.0
    for i in range(npts):
        if not usable(x[i], y[i]):
            continue
        e_same = exp(-(x[i] - xref_same) * inv_tau)
        e_opposite = exp((x[i] - xref_opposite) * inv_tau)
        column[0] = e_same
        column[1] = sqrt(e_same)
        column[2] = e_same * e_same
        column[3] = e_opposite
        column[4] = sqrt(e_opposite)
        for j in range(5):
            line_sums_add(&sums[j], count, column[j], y[i])
        count += 1.0
    for j in range(5):
        rss = line_sums_solve(&sums[j], count, &slope, &intercept)
        if not rss < best:
            continue
        t = tau / factors[j]
        xref = xref_same if j < 3 else xref_opposite
        column[0] = slope * exp(xref / t)
        if not (isfinite(column[0]) and isfinite(t) and isfinite(intercept)):
            continue
        best = rss
        p0[0] = column[0]
        p0[1] = t
        p0[2] = intercept
    return 0 if best < INFINITY else GUESS_TOO_FEW_POINTS


cdef int exponential_guess(int npts, const double *x, const double *y, int nparams,
                           double *p0) noexcept nogil:
    # tau from the means of three equal-width x bins (for an exponential their successive
    # differences shrink by exp(-w / tau)); when the change happens within the first bin, a
    # y^2-weighted log-linear fit above the baseline of the far tail instead. Then the best
    # of a few rates around it by variable projection (A and c exact at each).
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
            return exponential_best_of(npts, x, y, tau, s.xmin, s.xmax, p0)
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
    return exponential_best_of(npts, x, y, tau, s.xmin, s.xmax, p0)


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
    cdef double band_x, band_n, below_x, above_x, width, k0, rss, best = INFINITY
    cdef double centers[2]
    cdef double factors[4]
    cdef double trial[4]
    cdef int i, a, b, j
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
    centers[0] = band_x / band_n if band_n > 0.0 else 0.5 * (s.xmin + s.xmax)
    centers[1] = (0.5 * (below_x + above_x) if isfinite(below_x) and isfinite(above_x)
                  else centers[0])
    width = (band_n if band_n > 1.0 else 1.0) * span / (s.n - 1)
    k0 = 2.0 * log(3.0) / width
    p0[0] = step
    p0[1] = centers[0]
    p0[2] = k0
    p0[3] = level_low
    # Noise widens the band (level points scatter into it), so k0 errs low: keep the
    # candidate (centre, k0 * factor) of least residual, with L and c exact for it.
    for j in range(4):
        trial[j] = 0.0
    factors[0] = 1.0
    factors[1] = 2.0
    factors[2] = 4.0
    factors[3] = 0.5
    for a in range(2 if centers[1] != centers[0] else 1):
        for b in range(4):
            rss = logistic_levels(npts, x, y, centers[a], k0 * factors[b], trial)
            if rss < best:
                best = rss
                for j in range(4):
                    p0[j] = trial[j]
    return 0


cdef double logistic_levels(int npts, const double *x, const double *y, double x0,
                            double k, double *p0) noexcept nogil:
    """Given x0 and k the logistic is linear in (L, c): solve that least-squares problem
    exactly, write (L, x0, k, c) and return the residual sum of squares (infinite when
    singular)."""
    cdef double R[4]
    cdef double qtb[2]
    cdef double row[2]
    cdef double coef[2]
    cdef double z, rss = 0.0, r
    cdef int i
    lsq_reset(R, qtb, 2)
    for i in range(npts):
        if not usable(x[i], y[i]):
            continue
        z = k * (x[i] - x0)
        row[0] = 1.0 / (1.0 + exp(-z)) if z >= 0.0 else exp(z) / (1.0 + exp(z))
        row[1] = 1.0
        r = lsq_add_row(R, qtb, 2, row, y[i])
        rss += r * r
    if lsq_solve(R, qtb, 2, coef) != 0:
        return INFINITY
    p0[0] = coef[0]
    p0[1] = x0
    p0[2] = k
    p0[3] = coef[1]
    return rss if params_finite(p0, 4) else INFINITY


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
        power = pow(x[i], k)        # correctly rounded where exp(k log x) is not
        out[i] = A * power
        if jac != NULL:
            jac[2 * i] = power
            jac[2 * i + 1] = A * power * log(x[i])
    return finish_evaluate(npts, 2, out, jac)


cdef int power_law_guess(int npts, const double *x, const double *y, int nparams,
                         double *p0) noexcept nogil:
    # log|y| = log|A| + k log x, fitted with weights y^2 (rows scaled by |y|) over the points
    # of the majority sign, so noisy values near zero hardly count. The row weights are |y|
    # divided by a power of two near the largest (exact: the same solution), so |y| ~ 1e200
    # does not overflow the least squares.
    cdef double R[4]
    cdef double qtb[2]
    cdef double row[2]
    cdef double coef[2]
    cdef double total = 0.0, log_ref = 0.0, sign, z, weight, count = 0.0, largest = 0.0
    cdef int i, e
    for i in range(npts):
        if not usable(x[i], y[i]):
            continue
        if not x[i] > 0.0:
            return GUESS_BAD_DOMAIN
        total += y[i]
        largest = fmax(largest, fabs(y[i]))
        log_ref += log(x[i])
        count += 1.0
    if count < 2.0 or largest == 0.0:
        return GUESS_TOO_FEW_POINTS
    log_ref /= count
    sign = 1.0 if total >= 0.0 else -1.0
    e = ilogb(largest)
    lsq_reset(R, qtb, 2)
    for i in range(npts):
        if not usable(x[i], y[i]):
            continue
        z = sign * y[i]
        if z <= 0.0:
            continue
        weight = ldexp(z, -e)
        row[0] = weight
        row[1] = weight * (log(x[i]) - log_ref)
        lsq_add_row(R, qtb, 2, row, weight * log(z))
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


cdef double best_frequency(int npts, const double *x, const double *y, double ymean,
                           double xmid, double low, double high, int steps) noexcept nogil:
    """The frequency of least residual for y ~ a sin(w x) + b cos(w x) + c among `steps`
    equally spaced w in [low, high]. Blocks of SCAN_BLOCK frequencies share one pass over
    the points: sin and cos of successive w x follow by rotation (4 trig calls per point
    per block instead of 2 per frequency), accumulated into 3x3 normal equations, which
    are well conditioned here (x centred, w span >= pi/2)."""
    cdef double sums[7 * SCAN_BLOCK]
    cdef double delta = (high - low) / (steps - 1) if steps > 1 else 0.0
    cdef double best = low, best_rss = INFINITY, omega0, t, sv, cv, sd, cd, rotated, v
    cdef double ss, sc, cc, s1, c1, ys, yc, n = 0.0, sy = 0.0, syy = 0.0
    cdef double l11, l21, l31, l22, l32, l33, z1, z2, z3, explained
    cdef int block = 0, count, i, j
    for i in range(npts):
        if usable(x[i], y[i]):
            v = y[i] - ymean
            n += 1.0
            sy += v
            syy += v * v
    while block < steps:
        count = steps - block if steps - block < SCAN_BLOCK else SCAN_BLOCK
        for j in range(7 * count):
            sums[j] = 0.0
        omega0 = low + block * delta
        for i in range(npts):
            if not usable(x[i], y[i]):
                continue
            t = x[i] - xmid
            v = y[i] - ymean
            sv = sin(omega0 * t)
            cv = cos(omega0 * t)
            sd = sin(delta * t)
            cd = cos(delta * t)
            for j in range(count):
                sums[7 * j] += sv * sv
                sums[7 * j + 1] += sv * cv
                sums[7 * j + 2] += cv * cv
                sums[7 * j + 3] += sv
                sums[7 * j + 4] += cv
                sums[7 * j + 5] += v * sv
                sums[7 * j + 6] += v * cv
                rotated = sv * cd + cv * sd
                cv = cv * cd - sv * sd
                sv = rotated
        for j in range(count):
            ss = sums[7 * j]
            sc = sums[7 * j + 1]
            cc = sums[7 * j + 2]
            s1 = sums[7 * j + 3]
            c1 = sums[7 * j + 4]
            ys = sums[7 * j + 5]
            yc = sums[7 * j + 6]
            # Cholesky of [[ss, sc, s1], [sc, cc, c1], [s1, c1, n]]; the explained sum of
            # squares is |L^-1 b|^2 with b = (ys, yc, sy)
            if not ss > 1e-12 * n:
                continue
            l11 = sqrt(ss)
            l21 = sc / l11
            l31 = s1 / l11
            l22 = cc - l21 * l21
            if not l22 > 1e-12 * n:
                continue
            l22 = sqrt(l22)
            l32 = (c1 - l31 * l21) / l22
            l33 = n - l31 * l31 - l32 * l32
            if not l33 > 1e-12 * n:
                continue
            l33 = sqrt(l33)
            z1 = ys / l11
            z2 = (yc - l21 * z1) / l22
            z3 = (sy - l31 * z1 - l32 * z2) / l33
            explained = z1 * z1 + z2 * z2 + z3 * z3
            if syy - explained < best_rss:
                best_rss = syy - explained
                best = omega0 + j * delta
        block += count
    return best


cdef int sine_guess(int npts, const double *x, const double *y, int nparams,
                    double *p0) noexcept nogil:
    # The scans below sum squares of y: data beyond ~1e150 (or below ~1e-150) are guessed from
    # a copy divided by a power of two near the largest |y|, and A and c scaled back (exact).
    cdef double largest = 0.0
    cdef double *scaled
    cdef int i, e, rc
    for i in range(npts):
        if usable(x[i], y[i]):
            largest = fmax(largest, fabs(y[i]))
    if largest == 0.0:
        return sine_guess_scaled(npts, x, y, nparams, p0)
    e = ilogb(largest)
    if -400 <= e <= 400:
        return sine_guess_scaled(npts, x, y, nparams, p0)
    scaled = <double *>malloc(<size_t>(npts if npts > 0 else 1) * sizeof(double))
    if scaled == NULL:
        return GUESS_TOO_FEW_POINTS
    for i in range(npts):
        scaled[i] = ldexp(y[i], -e)
    rc = sine_guess_scaled(npts, x, scaled, nparams, p0)
    free(scaled)
    if rc == 0:
        p0[0] = ldexp(p0[0], e)
        p0[3] = ldexp(p0[3], e)
    return rc


cdef enum:
    SINE_FULL_SCAN = 200     # sorted x with up to this many points also get the full scan


cdef double full_scan_frequency(int npts, const double *x, const double *y, double ymean,
                                double xmid, double span, int n) noexcept nogil:
    """The periodogram scan up to the Nyquist frequency, refined by +-5% (O(n^2))."""
    cdef double omega = best_frequency(npts, x, y, ymean, xmid, 0.5 * M_PI / span,
                                       M_PI * (n - 1) / span, 4 * n)
    return best_frequency(npts, x, y, ymean, xmid, 0.95 * omega, 1.05 * omega, 11)


cdef int sine_guess_scaled(int npts, const double *x, const double *y, int nparams,
                           double *p0) noexcept nogil:
    # omega from the zero crossings of y - mean (with hysteresis against noise) when x is
    # sorted, else from a periodogram scan up to the Nyquist frequency (O(npts^2), only for
    # unsorted x); refined by two small scans of the least-squares residual around it; then
    # amplitude, phase and offset exactly by linear least squares at that omega. Sparse,
    # irregular sampling makes the hysteresis miss crossings (omega off by 2x, beyond the
    # refinement's reach), so up to SINE_FULL_SCAN points sorted x get the full scan too,
    # and the omega of least residual wins.
    cdef DataSummary s
    cdef double coef[3]
    cdef double span, hysteresis, v, omega, first_cross = 0.0, last_cross = 0.0, xmid
    cdef double last_x_in_state = 0.0, previous_x = -INFINITY
    cdef int i, state = 0, new_state, crossings = 0
    cdef bint is_sorted = True
    summarize(npts, x, y, &s)
    if s.n < 4:
        return GUESS_TOO_FEW_POINTS
    span = s.xmax - s.xmin
    if span <= 0.0:
        return GUESS_TOO_FEW_POINTS
    xmid = 0.5 * (s.xmin + s.xmax)
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
        omega = best_frequency(npts, x, y, s.ymean, xmid, 0.7 * omega, 1.3 * omega, 13)
        # final refinement: +-5% (the coarse grid steps are 5% of omega)
        omega = best_frequency(npts, x, y, s.ymean, xmid, 0.95 * omega, 1.05 * omega, 11)
        if s.n <= SINE_FULL_SCAN:
            scanned = full_scan_frequency(npts, x, y, s.ymean, xmid, span, s.n)
            if sine_linear_fit(npts, x, y, scanned, coef) < sine_linear_fit(npts, x, y, omega,
                                                                             coef):
                omega = scanned
    else:
        omega = full_scan_frequency(npts, x, y, s.ymean, xmid, span, s.n)
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
    cdef double inv_var, inv_sigma, dx, dy, r2, e, e_scaled
    cdef int i
    if not params_finite(p, 5) or sigma == 0.0:
        return 1
    inv_var = 1.0 / (sigma * sigma)
    inv_sigma = 1.0 / sigma      # no division per point
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
            e_scaled = A * e * inv_var
            jac[5 * i + 1] = e_scaled * dx
            jac[5 * i + 2] = e_scaled * dy
            jac[5 * i + 3] = e_scaled * r2 * inv_sigma
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
    """Peak (sign +1) or dip (sign -1) parameters, as the 1-D peak: baseline from
    peak_baseline, amplitude from the extreme, centre the centroid of the points above half
    maximum weighted by their height above it. sigma from the same points: their weighted
    mean squared radius is HALF_MAX_R2 sigma^2 for a Gaussian, and their number times the
    area per point is the half-maximum disc 2 pi ln 2 sigma^2; the smaller of the two (noise
    only ever widens), floored at half the point spacing."""
    cdef const double *yc = x + npts
    cdef double hi, lo, v, base, amp, half, w, count = 0.0
    cdef double wsum = 0.0, wx = 0.0, wy = 0.0, cx = 0.0, cy = 0.0, r2sum = 0.0
    cdef double pixel, sigma, sigma_area
    cdef int i
    # typical point spacing, from the bounding box of a roughly square sampling
    pixel = sqrt((s.xmax - s.xmin) * (s.ymax - s.ymin)) / (sqrt(<double>s.n) - 1.0)
    hi = s.zmax if sign > 0 else -s.zmin
    lo = s.zmin if sign > 0 else -s.zmax
    base = peak_baseline(npts, x, yc, z, sign, lo, hi)
    amp = hi - base
    half = base + 0.5 * amp
    for i in range(npts):
        if not usable_2d(x, yc, z, i):
            continue
        v = sign * z[i]
        if v == hi and wsum == 0.0:
            cx = x[i]
            cy = yc[i]
        if v > half:
            w = v - half
            count += 1.0
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
            r2sum += (v - half) * ((x[i] - cx) * (x[i] - cx) + (yc[i] - cy) * (yc[i] - cy))
    sigma = sqrt(r2sum / wsum / HALF_MAX_R2) if wsum > 0.0 else 0.0
    sigma_area = sqrt(count * pixel * pixel / (2.0 * M_PI * LN2))
    if sigma_area < sigma:
        sigma = sigma_area
    if sigma < 0.5 * pixel:
        sigma = 0.5 * pixel
    p0[0] = sign * amp
    p0[1] = cx
    p0[2] = cy
    p0[3] = sigma
    p0[4] = sign * base


cdef double LOG_FIT_LEVEL = 0.2   # points above this fraction of the amplitude enter the log fit


cdef void gaussian_2d_log_refine(int npts, const double *x, const double *z,
                                 const Summary2D *s, double *p0) noexcept nogil:
    """Refine a 2-D peak guess by Caruana's log-parabola fit (weighted as Guo 2011): above the
    baseline b, ln|z - b| = c0 + c1 u + c2 v + c3 (u^2 + v^2) in u, v = (x - x0, y - y0) / sigma
    of the guess, fitted over the points above LOG_FIT_LEVEL of the amplitude with weights
    (z - b)^2 (which undo the log's amplification of the noise on faint points). The 4 x 4
    normal equations are well conditioned in these centred, scaled coordinates, and cheaper
    than the module's Givens rows (lsq_add_row made fit_batch on 5x5 stamps 6% slower). p0
    is kept unless the parabola opens downward and gives a finite peak inside the sampled box."""
    cdef const double *yc = x + npts
    cdef double amp = fabs(p0[0]), sign = 1.0 if p0[0] > 0.0 else -1.0, b = p0[4]
    cdef double inv_sigma, u, v, q, w, lv, value, count = 0.0
    cdef double N[16]
    cdef double r[4]
    cdef double basis[4]
    cdef double c[4]
    cdef double s2, du, dv, sigma, cx, cy, height
    cdef int i, j, k
    if not (amp > 0.0 and p0[3] > 0.0 and isfinite(p0[3])):
        return
    inv_sigma = 1.0 / p0[3]
    for j in range(16):
        N[j] = 0.0
    for j in range(4):
        r[j] = 0.0
    for i in range(npts):
        if not usable_2d(x, yc, z, i):
            continue
        value = sign * (z[i] - b)
        if not (value > LOG_FIT_LEVEL * amp):
            continue
        u = (x[i] - p0[1]) * inv_sigma
        v = (yc[i] - p0[2]) * inv_sigma
        basis[0] = 1.0
        basis[1] = u
        basis[2] = v
        basis[3] = u * u + v * v
        w = value * value
        lv = w * log(value)
        for j in range(4):
            r[j] += lv * basis[j]
            for k in range(j, 4):
                N[4 * j + k] += w * basis[j] * basis[k]
        count += 1.0
    if count < 5.0:     # 4 coefficients: at least one point to spare
        return
    # Cholesky N = L L^T in the lower triangle (N's upper triangle is filled), then solve.
    for j in range(4):
        for k in range(j, 4):
            q = N[4 * j + k]
            for i in range(j):
                q -= N[4 * k + i] * N[4 * j + i]
            if k == j:
                if not (q > 1e-12 * N[4 * j + j] and q > 0.0):
                    return
                N[4 * j + j] = sqrt(q)
            else:
                N[4 * k + j] = q / N[4 * j + j]
    for j in range(4):
        q = r[j]
        for i in range(j):
            q -= N[4 * j + i] * c[i]
        c[j] = q / N[4 * j + j]
    for j in range(3, -1, -1):
        q = c[j]
        for i in range(j + 1, 4):
            q -= N[4 * i + j] * c[i]
        c[j] = q / N[4 * j + j]
    if not (c[3] < 0.0):
        return
    s2 = -0.5 / c[3]                    # (sigma / sigma of the guess)^2
    du = c[1] * s2
    dv = c[2] * s2
    height = exp(c[0] + 0.5 * (du * du + dv * dv) / s2)
    sigma = p0[3] * sqrt(s2)
    cx = p0[1] + du * p0[3]
    cy = p0[2] + dv * p0[3]
    if not (isfinite(height) and isfinite(sigma) and sigma > 0.0
            and s.xmin <= cx <= s.xmax and s.ymin <= cy <= s.ymax):
        return
    p0[0] = sign * height
    p0[1] = cx
    p0[2] = cy
    p0[3] = sigma


cdef int gaussian_2d_guess(int npts, const double *x, const double *z, int nparams,
                           double *p0) noexcept nogil:
    cdef const double *yc = x + npts
    cdef Summary2D s
    cdef double trial[5]
    cdef double zsum = 0.0, sign, rss, best = INFINITY
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
    for j in range(5):
        trial[j] = 0.0
    sign = peak_sign(s.zmin, s.zmean, s.zmax)
    if sign != 0.0:
        gaussian_2d_guess_signed(npts, x, z, &s, sign, p0)
        refit_amplitude_offset(gaussian_2d_evaluate, 2, npts, x, z, 5, p0, 0, 4)
    else:
        for attempt in range(2):
            gaussian_2d_guess_signed(npts, x, z, &s, 1.0 if attempt == 0 else -1.0, trial)
            rss = refit_amplitude_offset(gaussian_2d_evaluate, 2, npts, x, z, 5, trial, 0, 4)
            if attempt == 0 or rss < best:
                best = rss
                for j in range(5):
                    p0[j] = trial[j]
    # the centroid's shape, sharpened (about 0.4 fewer LM iterations on noisy 5x5 stamps)
    gaussian_2d_log_refine(npts, x, z, &s, p0)
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
    """Return ``(nparams, x_dim)`` of built-in model ``model_id``.

    Parameters
    ----------
    model_id : int
        A ``ModelId``.
    nparams : int
        Number of parameters (it selects the degree of ``POLYNOMIAL``; for the other
        models it must equal theirs).

    Returns
    -------
    tuple of int

    Raises
    ------
    ValueError
        If there is no such model or ``nparams`` does not match it.

    Examples
    --------
    >>> from fastcalc._models import ModelId, kernel_shape
    >>> kernel_shape(ModelId.GAUSSIAN_2D, 5)
    (5, 2)
    """
    cdef ModelKernel k = checked_kernel(model_id, nparams)
    return k.nparams, k.x_dim


def evaluate(int model_id, int nparams, x, p, bint want_jac=False, bint per_point=False):
    """Evaluate built-in model ``model_id`` at ``x`` (x_dim * npts values, row-major).

    The low-level entry used by :class:`fastcalc.models.Model`; no validation beyond
    memory safety.

    Parameters
    ----------
    model_id, nparams : int
        As for :func:`kernel_shape`.
    x : array_like
        ``x_dim * npts`` coordinates (any shape; flattened in C order).
    p : array_like, shape (nparams,)
        Parameters.
    want_jac : bool
        Also compute the analytic Jacobian.
    per_point : bool
        When some points give no finite value but the parameters are valid, evaluate point by
        point: those points (values and Jacobian rows) are NaN, the others exact, status 0.

    Returns
    -------
    values : ndarray, shape (npts,)
    jacobian : ndarray, shape (npts, nparams), or None
    status : int
        0 on success, non-zero when the parameters (or, without ``per_point``, some point)
        give no finite value.

    Examples
    --------
    >>> from fastcalc._models import ModelId, evaluate
    >>> values, jac, status = evaluate(ModelId.LINE, 2, [0.0, 1.0], [1.0, 2.0], True)
    >>> values, status
    (array([1., 3.]), 0)
    >>> jac
    array([[1., 0.],
           [1., 1.]])
    >>> evaluate(ModelId.GAUSSIAN, 4, [0.0], [1.0, 0.0, 0.0, 0.0])[2]  # sigma = 0
    1
    >>> evaluate(ModelId.POWER_LAW, 2, [-1.0, 4.0], [1.0, 0.5], per_point=True)[0]
    array([nan,  2.])
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
        if status != 0 and per_point and k.evaluate(0, NULL, k.nparams, &pv[0], NULL, NULL) == 0:
            # the parameters are valid: only some points fail
            status = evaluate_point_by_point(k, npts, &xv[0], &pv[0], &outv[0], jac_ptr)
    else:
        status = k.evaluate(0, NULL, k.nparams, &pv[0], NULL, NULL)
    return out, jac, status


cdef int evaluate_point_by_point(ModelKernel k, int npts, const double *x, const double *p,
                                 double *out, double *jac) except -1:
    """Each point alone (its coordinates gathered from the x_dim rows); NaN where it fails."""
    cdef int i, d, j, P = k.nparams
    cdef double value
    cdef double *point = <double *>malloc(k.x_dim * sizeof(double))
    cdef double *row = <double *>malloc(P * sizeof(double)) if jac != NULL else NULL
    if point == NULL or (jac != NULL and row == NULL):
        free(point)
        free(row)
        raise MemoryError()
    with nogil:
        for i in range(npts):
            for d in range(k.x_dim):
                point[d] = x[<Py_ssize_t>d * npts + i]
            if k.evaluate(1, point, P, p, &value, row) == 0:
                out[i] = value
                for j in range(P if jac != NULL else 0):
                    jac[<Py_ssize_t>i * P + j] = row[j]
            else:
                out[i] = NAN
                for j in range(P if jac != NULL else 0):
                    jac[<Py_ssize_t>i * P + j] = NAN
    free(point)
    free(row)
    return 0


def guess(int model_id, int nparams, x, y):
    """Initial guess of built-in model ``model_id`` from ``x`` and ``y``.

    The low-level entry used by :meth:`fastcalc.models.Model.guess`.

    Parameters
    ----------
    model_id, nparams : int
        As for :func:`kernel_shape`.
    x : array_like
        ``x_dim * npts`` coordinates (flattened in C order).
    y : array_like, shape (npts,)
        Data; NaN marks a missing point.

    Returns
    -------
    p0 : ndarray, shape (nparams,)
        The guess (unspecified when status is non-zero).
    status : int
        0 on success, ``GUESS_STATUS_TOO_FEW_POINTS`` or ``GUESS_STATUS_BAD_DOMAIN``.

    Examples
    --------
    >>> from fastcalc._models import ModelId, guess
    >>> guess(ModelId.LINE, 2, [0.0, 1.0, 2.0], [1.0, 3.0, 5.0])
    (array([1., 2.]), 0)
    >>> guess(ModelId.LINE, 2, [0.0, 1.0], [1.0, float("nan")])[1]
    1
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
