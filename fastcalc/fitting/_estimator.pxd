# cython: language_level=3
"""What a fit minimises, point by point: one switch inside the Levenberg-Marquardt kernel.

Every estimator is written as iteratively reweighted least squares (the device of SciPy's
``least_squares`` for robust losses): at each point ``point_cost`` returns the point's cost and
writes a residual ``r`` and a row factor ``s`` such that, near the current parameters,
``cost(p + dp) ~ cost(p) - 2 r (s df/dp) dp + ((s df/dp) dp)**2`` summed over points. The solver
then runs unchanged on ``r`` and the Jacobian rows ``s df/dp``; only its acceptance test uses
the cost itself.

* chi-squared: ``r = w (y - f)``, ``s = w`` (``w = 1/sigma``), cost ``r**2``.
* robust losses of ``z = (w (y - f) / C)**2`` (``C = f_scale``), as ``least_squares``: cost
  ``C**2 rho(z)``, ``s = w sqrt(max(rho' + 2 z rho'', eps))``, ``r = rho' w (y - f) w / s``.
  The total is twice ``least_squares``' cost (chi-squared's scale).
* Poisson deviance for counts ``y`` with mean ``mu = f``: cost ``2 (mu - y + y log(y / mu))``
  (``y log(y/mu) = 0`` for ``y = 0``), ``r = (y - mu) / sqrt(mu)``, ``s = 1 / sqrt(mu)``:
  Fisher scoring, whose ``J^T J`` is the Fisher information. ``mu = 0`` is allowed where
  ``y = 0`` (cost 0, the point is left out of the quadratic model); ``mu <= 0`` where ``y > 0``
  (or a NaN) makes the cost infinite: a trial step there is rejected, a start there fails.
A point of weight ``w = 0`` is a missing point: cost 0, ``r = s = 0``.
"""
from libc.math cimport sqrt, log, log1p, atan, isfinite, INFINITY

cdef enum:
    COST_CHI2 = 0
    COST_POISSON = 1
    LOSS_SOFT_L1 = 2
    LOSS_HUBER = 3
    LOSS_CAUCHY = 4
    LOSS_ARCTAN = 5


cdef struct Estimator:
    int kind
    double f_scale      # C, in units of the weighted residual (divided like w by data scaling)



cdef inline double robust_rho(int kind, double z, double *d1, double *d2) noexcept nogil:
    """rho(z) of a robust loss, with rho'(z) in d1 and rho''(z) in d2."""
    cdef double t
    if kind == LOSS_SOFT_L1:
        t = sqrt(1.0 + z)
        d1[0] = 1.0 / t
        d2[0] = -0.5 / (t * t * t)
        return 2.0 * (t - 1.0)
    if kind == LOSS_HUBER:
        if z <= 1.0:
            d1[0] = 1.0
            d2[0] = 0.0
            return z
        t = sqrt(z)
        d1[0] = 1.0 / t
        d2[0] = -0.5 / (z * t)
        return 2.0 * t - 1.0
    if kind == LOSS_CAUCHY:
        t = 1.0 / (1.0 + z)
        d1[0] = t
        d2[0] = -t * t
        return log1p(z)
    # LOSS_ARCTAN
    t = 1.0 / (1.0 + z * z)
    d1[0] = t
    d2[0] = -2.0 * z * t * t
    return atan(z)


cdef inline double point_cost(const Estimator *e, double y, double f, double w, double *r,
                              double *s) noexcept nogil:
    """The cost of one point; its IRLS residual in r[0] and row factor in s[0]."""
    cdef double u, z, rho, d1, d2, factor, C
    if w == 0.0:
        r[0] = 0.0
        s[0] = 0.0
        return 0.0
    if e.kind == COST_CHI2:
        r[0] = w * (y - f)
        s[0] = w
        return r[0] * r[0]
    if e.kind == COST_POISSON:
        if f > 0.0 and isfinite(f):
            u = 1.0 / sqrt(f)
            r[0] = (y - f) * u
            s[0] = u
            return 2.0 * (f - y + y * log(y / f)) if y > 0.0 else 2.0 * f
        r[0] = 0.0
        s[0] = 0.0
        return 0.0 if (f == 0.0 and y == 0.0) else INFINITY
    C = e.f_scale
    u = w * (y - f)
    z = (u / C) * (u / C)
    rho = robust_rho(e.kind, z, &d1, &d2)
    # least_squares' floor on rho' + 2 z rho'' (negative in the far tails of cauchy, arctan):
    # machine epsilon (no module-level constant: a .pxd variable would need a module to import)
    factor = d1 + 2.0 * z * d2
    factor = sqrt(factor if factor > 2.220446049250313e-16 else 2.220446049250313e-16)
    r[0] = d1 * u / factor
    s[0] = w * factor
    return C * C * rho


cdef inline double pearson_term(const Estimator *e, double y, double f, double w) noexcept nogil:
    """One point's term of Pearson's chi-squared: ((y - f) w)**2, or (y - mu)**2 / mu."""
    cdef double t
    if w == 0.0:
        return 0.0
    if e.kind == COST_POISSON:
        if f > 0.0:
            return (y - f) * (y - f) / f
        return 0.0 if (f == 0.0 and y == 0.0) else INFINITY
    t = w * (y - f)
    return t * t
