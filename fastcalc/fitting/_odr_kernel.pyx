"""Orthogonal distance regression kernels: errors in x and in y (ODRPACK's problem).

Each dataset minimises, over the parameters ``p`` and one correction ``d_i`` per point,

    cost = sum_i (w_i (f(x_i + d_i; p) - y_i))^2 + (v_i d_i)^2,   w = 1/sigma, v = 1/sigma_x

by Levenberg-Marquardt on the residual vector ``(e, g) = (w (f - y), v d)``. Its Jacobian is
``[w J_p, diag(w f_x)]`` on the y rows and ``[0, diag(v)]`` on the x rows, so the damped normal
matrix has a diagonal d-block ``c_i + lam D_i``, ``c_i = (w_i f_x,i)^2 + v_i^2``. The d are
eliminated point by point: the k x k Schur complement

    S = sum_i w_i^2 (v_i^2 + lam D_i) / (c_i + lam D_i) J_p,i J_p,i^T + lam D_p

(written so that nothing cancels) gives the parameter step, and each ``d_i`` step follows by
back-substitution. The damping is MINPACK's scaling ``D`` (squared column norms of the
Jacobian, never decreasing) with Nielsen's update of ``lam`` from the gain ratio. At the
solution ``S`` with ``lam = 0`` is the parameters' block of the full normal matrix's inverse
inverted (the covariance ODRPACK reports, scaled by ``cost / dof`` unless ``absolute_sigma``).

``J_p`` is the built-in model's analytic Jacobian, a compiled Jacobian callable, or forward
differences while iterating and central differences at the solution (``nfree`` more
evaluations, once): the covariance then has errors ~1e-10 rather than ~1e-7 for a sharp peak
(forward differences are what ODRPACK uses; its standard errors differ from the exact ones by a
few 1e-6 on scipy's Lorentz test problem). ``f_x`` of a built-in model follows exactly from its
``J_p`` (``builtin_x_derivative``: the models depend on x through ``x - x0`` or
``omega x + phi``, or are polynomials and powers), so each trial is evaluated with its Jacobian:
one model call per iteration. For other models ``f_x`` is a central difference in x at
``t = x + d`` (step ``eps^(1/3) max(|t_i|, max|x|)``: relative error ~1e-10).

Stopping: the actual and predicted relative cost reductions both <= ftol, a scaled step
``||D h|| <= xtol ||D z||``, or every cosine between the residual vector and a Jacobian column
<= gtol; then, as in the LM kernel, a Gauss-Newton step from the point must not promise more
than 1e-8 of the cost with a relative step above 1e-4, or the fit restarts (at most 3 times) and
otherwise ends with status 1.

As in the least-squares kernel (``_kernel``), the iteration is a state machine (``OdrState``:
``odr_begin``, ``odr_jacobian_ready``, ``odr_assess``) with two drivers: ``odr_compiled``
(built-in and compiled models, datasets in a nogil ``prange``) and ``odr_python`` (a Python
model called once per round for every dataset in lock step).
"""
import numpy as np
cimport numpy as cnp
from cython.parallel cimport parallel, prange
from libc.math cimport sqrt, fabs, fmax, isfinite, INFINITY, NAN
from libc.stdlib cimport malloc, free
from libc.string cimport memcpy
from cpython.exc cimport PyErr_CheckSignals
from scipy.linalg.cython_lapack cimport dpotrf, dpotrs, dpotri

from fastcalc._evaluate cimport UserFunction, model_jac_t, model_t
from fastcalc._models cimport ModelKernel, model_kernel, model_eval_t, model_guess_t
from fastcalc._parallel cimport resolve_threads
from fastcalc._status_codes cimport (SUCCESS, MAX_ITERATIONS, SINGULAR, NON_FINITE,
                                     CALLBACK_ERROR)

cnp.import_array()

cdef enum:
    NEED_JACOBIAN = 0   # the Jacobian at (params, delta) is wanted
    NEED_VALUES = 1     # a trial point is proposed; waiting for its model values
    DONE = 2

cdef enum:
    KIND_BUILTIN = 0
    KIND_COMPILED = 1

cdef double SQRT_EPS = 1.4901161193847656e-08
cdef double CBRT_EPS = 6.055454452393343e-06
# fraction of the model's size by which the typical scale of a parameter moves it (fd_step,
# as in _kernel: a parameter converging to 0 keeps a useful step)
cdef double FD_SCALE_FRACTION = 1e-3
cdef double INITIAL_LAMBDA = 1e-3
cdef double LAMBDA_MAX = 1e30
cdef double ACCEPT_RATIO = 1e-4
# exit check (as in _kernel): a Gauss-Newton step still this large (relative, scaled) that
# would also remove this fraction of the cost means the point is not a minimum
cdef double EXIT_STEP_TOLERANCE = 1e-4
cdef double EXIT_REDUCTION_TOLERANCE = 1e-8
cdef int MAX_RESTARTS = 3


cdef struct OdrState:
    int m               # points (a missing point has w = 0 and stays at d = 0)
    int nparams
    int nfree
    int n_valid
    int maxiter
    int absolute_sigma
    int has_bounds
    double ftol
    double xtol
    double gtol
    const int *free_index
    const double *lower
    const double *upper
    const double *x     # (m,) data; w = 1/sigma (0: missing), v = 1/sigma_x
    const double *y
    const double *w
    const double *v
    double xscale       # max |x|: the scale of the x-derivative steps
    int stage
    int status
    int nit
    int nfev
    int finishing       # converged (or out of iterations): finish once J at params is known
    int jac_valid
    int analytic        # J_p is exact (else finite differences: central ones when finishing)
    int restarts
    double cost
    double cost_trial
    double predicted
    double dnorm        # ||D step||, and ||D z|| at the proposal
    double znorm
    double lam
    double nu
    double *params      # (P,)
    double *trial       # (P,)
    double *delta       # (m,)
    double *delta_trial
    double *values      # f(x + delta; params)
    double *values_trial
    double *t           # (m,) evaluation points: scratch of the drivers
    double *jb          # (m, nfree) column-major: df/dp at x + delta (unweighted)
    double *fx          # df/dx at x + delta
    double *dp          # (nfree,) D^2 of the parameters
    double *dd          # (m,) D^2 of the corrections
    double *gp          # (nfree,) J^T (e, g), parameter part
    double *gd          # (m,) J^T (e, g), correction part
    double *weight      # (m,) scratch of schur_solve
    double *work        # (m,) scratch: u (schur_solve), J_p step (propose), w^2 (f - y)
    double *tmp         # (m,) scratch: w^2 (odr_jacobian_ready)
    double *colnorm     # (nfree,) squared norms of the Jacobian's parameter columns
    double *normal      # (nfree, nfree) Schur complement, then its Cholesky factor
    double *step        # (nfree,)
    double *blocked     # (nfree,) 1.0 for a parameter held on a bound this step
    double *cov         # (P, P) output
    double *stderr      # (P,) output


cdef inline Py_ssize_t state_size(int m, int nparams, int nfree) noexcept nogil:
    return 2 * nparams + 11 * <Py_ssize_t>m + <Py_ssize_t>m * nfree + 5 * nfree + nfree * nfree


cdef inline double *take(double **cursor, Py_ssize_t n) noexcept nogil:
    cdef double *p = cursor[0]
    cursor[0] = p + n
    return p


cdef inline double min_(double a, double b) noexcept nogil:
    return a if a < b else b


cdef inline double max_(double a, double b) noexcept nogil:
    return a if a > b else b


cdef inline void swap(double **a, double **b) noexcept nogil:
    cdef double *t = a[0]
    a[0] = b[0]
    b[0] = t


cdef void state_bind(OdrState *s, double *block, int m, int nparams, int nfree) noexcept nogil:
    cdef double *c = block
    s.m = m
    s.nparams = nparams
    s.nfree = nfree
    s.params = take(&c, nparams)
    s.trial = take(&c, nparams)
    s.delta = take(&c, m)
    s.delta_trial = take(&c, m)
    s.values = take(&c, m)
    s.values_trial = take(&c, m)
    s.t = take(&c, m)
    s.fx = take(&c, m)
    s.dd = take(&c, m)
    s.gd = take(&c, m)
    s.weight = take(&c, m)
    s.work = take(&c, m)
    s.tmp = take(&c, m)
    s.jb = take(&c, <Py_ssize_t>m * nfree)
    s.colnorm = take(&c, nfree)
    s.dp = take(&c, nfree)
    s.gp = take(&c, nfree)
    s.step = take(&c, nfree)
    s.blocked = take(&c, nfree)
    s.normal = take(&c, nfree * nfree)


cdef void state_init(OdrState *s, const double *x, const double *y, const double *w,
                     const double *v, int maxiter, double ftol, double xtol, double gtol,
                     int absolute_sigma, const int *free_index, const double *lower,
                     const double *upper, int has_bounds, double *cov,
                     double *stderr) noexcept nogil:
    cdef int i, k
    s.x, s.y, s.w, s.v = x, y, w, v
    s.maxiter = maxiter
    s.ftol, s.xtol, s.gtol = ftol, xtol, gtol
    s.absolute_sigma = absolute_sigma
    s.free_index = free_index
    s.lower, s.upper, s.has_bounds = lower, upper, has_bounds
    s.cov, s.stderr = cov, stderr
    s.stage = NEED_JACOBIAN
    s.status = SUCCESS
    s.nit = s.nfev = s.finishing = s.jac_valid = s.restarts = s.analytic = 0
    s.cost = NAN
    s.lam = INITIAL_LAMBDA
    s.nu = 2.0
    s.n_valid = 0
    s.xscale = 0.0
    for i in range(s.m):
        s.delta[i] = 0.0
        s.dd[i] = 0.0
        s.xscale = max_(s.xscale, fabs(x[i]))
        if w[i] != 0.0:
            s.n_valid += 1
    if s.xscale == 0.0:
        s.xscale = 1.0
    for k in range(s.nfree):
        s.dp[k] = 0.0
        s.blocked[k] = 0.0


cdef inline void points_at(const OdrState *s, const double *delta, double *t) noexcept nogil:
    """t = x + delta."""
    cdef int i
    for i in range(s.m):
        t[i] = s.x[i] + delta[i]


cdef double cost_at(const OdrState *s, const double *values, const double *delta) noexcept nogil:
    """The ODR objective; a missing point (w = 0) contributes (v d)^2 only, whatever its value."""
    cdef int i
    cdef double total = 0.0, e, g
    for i in range(s.m):
        g = s.v[i] * delta[i]
        total += g * g
        if s.w[i] != 0.0:
            e = s.w[i] * (values[i] - s.y[i])
            total += e * e
    return total


cdef void state_stop(OdrState *s, int status) noexcept nogil:
    """End with ``status``; parameters as they are, covariance and errors NaN."""
    cdef int k
    s.status = status
    s.stage = DONE
    for k in range(s.nparams * s.nparams):
        s.cov[k] = NAN
    for k in range(s.nparams):
        s.stderr[k] = NAN


cdef void odr_begin(OdrState *s, int rc) noexcept nogil:
    """s.values holds f(x; params): the cost at the start."""
    s.nfev += 1
    if s.n_valid < s.nfree or s.n_valid == 0:
        state_stop(s, SINGULAR)
        return
    if rc != SUCCESS:
        state_stop(s, rc)
        return
    s.cost = cost_at(s, s.values, s.delta)
    if not isfinite(s.cost):
        state_stop(s, NON_FINITE)
        return
    s.stage = NEED_JACOBIAN


cdef double fd_step(const OdrState *s, int k) noexcept nogil:
    """Difference step of free parameter k: SQRT_EPS (forward) or CBRT_EPS (central, when
    finishing) times max(|p_j|, its typical scale FD_SCALE_FRACTION * sum_l |p_l| D_l / D_k),
    as _kernel.fd_step."""
    cdef int l, j = s.free_index[k]
    cdef double model_scale = 0.0, typical, h = fabs(s.params[j])
    for l in range(s.nfree):
        model_scale += fabs(s.params[s.free_index[l]]) * sqrt(s.dp[l])
    if s.dp[k] > 0.0 and model_scale > 0.0:
        typical = FD_SCALE_FRACTION * model_scale / sqrt(s.dp[k])
        if typical > h:
            h = typical
    h *= CBRT_EPS if s.finishing else SQRT_EPS
    return h if h != 0.0 else SQRT_EPS


cdef inline int central_in_bounds(const OdrState *s, int k, double h) noexcept nogil:
    """Central differences for free parameter k: finishing, and both sides in the bounds."""
    cdef int j = s.free_index[k]
    return s.finishing and not (s.has_bounds and (s.params[j] + h > s.upper[j]
                                                  or s.params[j] - h < s.lower[j]))


cdef inline double x_step(const OdrState *s, int i) noexcept nogil:
    """Central-difference step in x at point i, exactly representable at t_i."""
    cdef double t = s.x[i] + s.delta[i]
    cdef double h = CBRT_EPS * max_(fabs(t), s.xscale)
    return (t + h) - t


cdef inline int pushes_out(const OdrState *s, int k, double step) noexcept nogil:
    """Free parameter k sits on a bound and ``step`` points out of the box."""
    cdef int j = s.free_index[k]
    return s.has_bounds and ((step < 0.0 and s.params[j] <= s.lower[j])
                             or (step > 0.0 and s.params[j] >= s.upper[j]))


# Sums over the points in four interleaved partial sums: a single sum waits for each addition
# (the compiler may not reorder them without -ffast-math); the order is fixed, so results do
# not depend on anything but the data.
cdef inline double dot(int n, const double *a, const double *b) noexcept nogil:
    """sum a_i b_i."""
    cdef int i, n4 = n - n % 4
    cdef double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0
    for i in range(0, n4, 4):
        s0 += a[i] * b[i]
        s1 += a[i + 1] * b[i + 1]
        s2 += a[i + 2] * b[i + 2]
        s3 += a[i + 3] * b[i + 3]
    for i in range(n4, n):
        s0 += a[i] * b[i]
    return (s0 + s1) + (s2 + s3)


cdef inline double dot3(int n, const double *a, const double *b, const double *c) noexcept nogil:
    """sum a_i b_i c_i."""
    cdef int i, n4 = n - n % 4
    cdef double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0
    for i in range(0, n4, 4):
        s0 += a[i] * b[i] * c[i]
        s1 += a[i + 1] * b[i + 1] * c[i + 1]
        s2 += a[i + 2] * b[i + 2] * c[i + 2]
        s3 += a[i + 3] * b[i + 3] * c[i + 3]
    for i in range(n4, n):
        s0 += a[i] * b[i] * c[i]
    return (s0 + s1) + (s2 + s3)


cdef int schur_solve(OdrState *s, double lam) noexcept nogil:
    """The parameter step of damping lam (blocked parameters held): S step = rhs by
    Cholesky (LAPACK). Returns 0, or non-zero when S is not positive definite.

    Per point first (s.weight: the Schur weight; s.work: u = w^2 f_x g_d / denominator), then
    every entry as one pass over a column pair (contiguous, no accumulation into memory)."""
    cdef int n = s.nfree, m = s.m, i, k, l, info = 0, one = 1
    cdef double inverse, wi2, v2, damp
    cdef char uplo = b'L'
    cdef const double *jk
    for i in range(m):
        wi2 = s.w[i] * s.w[i]
        v2 = s.v[i] * s.v[i]
        damp = lam * s.dd[i]
        inverse = wi2 / (wi2 * s.fx[i] * s.fx[i] + v2 + damp)     # > 0 (v > 0) unless missing
        s.weight[i] = inverse * (v2 + damp)
        s.work[i] = inverse * s.fx[i] * s.gd[i]
    for k in range(n):
        jk = s.jb + <Py_ssize_t>k * m
        s.step[k] = -s.gp[k] + dot(m, s.work, jk)
        for l in range(k, n):
            s.normal[l + k * n] = dot3(m, s.weight, jk, s.jb + <Py_ssize_t>l * m)
    for k in range(n):
        s.normal[k + k * n] += lam * s.dp[k]
        if s.blocked[k] != 0.0:
            for l in range(n):
                s.normal[l + k * n] = 0.0
                s.normal[k + l * n] = 0.0
            s.normal[k + k * n] = 1.0
            s.step[k] = 0.0
    if n == 0:
        return 0
    dpotrf(&uplo, &n, s.normal, &n, &info)
    if info != 0:
        return info
    dpotrs(&uplo, &n, &one, s.normal, &n, s.step, &n, &info)
    return info


cdef double propose(OdrState *s, double lam) noexcept nogil:
    """Trial parameters and corrections for damping lam (bounds: parameters on a bound that
    the step pushes out are held, the rest clipped). Sets dnorm and znorm; returns the
    predicted cost reduction of the linearised problem, or -1 when S is singular."""
    cdef int n = s.nfree, m = s.m, k, j, i, again, rounds
    cdef double dstep, wi2, e, g, linear = 0.0, t, dnorm = 0.0, znorm = 0.0
    cdef const double *jk
    for k in range(n):
        s.blocked[k] = 0.0
    for rounds in range(n + 1):
        if schur_solve(s, lam) != 0:
            return -1.0
        again = 0
        for k in range(n):
            if s.blocked[k] == 0.0 and pushes_out(s, k, s.step[k]):
                s.blocked[k] = 1.0
                again = 1
        if not again:
            break
    memcpy(s.trial, s.params, <size_t>s.nparams * sizeof(double))
    for k in range(n):
        j = s.free_index[k]
        t = s.params[j] + s.step[k]
        if s.has_bounds:
            t = max_(s.lower[j], t) if t < s.upper[j] else s.upper[j]
        s.trial[j] = t
        s.step[k] = t - s.params[j]     # the step actually taken
        dnorm += s.dp[k] * s.step[k] * s.step[k]
        znorm += s.dp[k] * s.params[j] * s.params[j]
    # s.work = J_p step, one column at a time
    for i in range(m):
        s.work[i] = 0.0
    for k in range(n):
        jk = s.jb + <Py_ssize_t>k * m
        for i in range(m):
            s.work[i] += jk[i] * s.step[k]
    for i in range(m):
        # back-substitution of d_i; the linearised residuals (a missing point: w = 0 and its
        # value is y, so e = 0)
        wi2 = s.w[i] * s.w[i]
        dstep = -(s.gd[i] + wi2 * s.fx[i] * s.work[i]) / (
            wi2 * s.fx[i] * s.fx[i] + s.v[i] * s.v[i] + lam * s.dd[i])
        s.delta_trial[i] = s.delta[i] + dstep
        dnorm += s.dd[i] * dstep * dstep
        t = s.x[i] + s.delta[i]
        znorm += s.dd[i] * t * t
        g = s.v[i] * s.delta_trial[i]
        e = s.w[i] * (s.values[i] - s.y[i] + s.work[i] + s.fx[i] * dstep)
        linear += g * g + e * e
    s.dnorm = sqrt(dnorm)
    s.znorm = sqrt(znorm)
    return s.cost - linear


cdef void next_trial(OdrState *s) noexcept nogil:
    """Propose a step (raising lam while S is singular) and wait for its values."""
    cdef double predicted = propose(s, s.lam)
    while predicted < 0.0 and predicted == -1.0 and s.lam < LAMBDA_MAX:
        s.lam = max_(s.lam, 1e-8) * 10.0
        predicted = propose(s, s.lam)
    if predicted == -1.0:
        state_stop(s, SINGULAR)
        return
    s.predicted = predicted
    s.stage = NEED_VALUES


cdef int gradient_small(OdrState *s) noexcept nogil:
    """Every Jacobian column (not pushing out of a bound) makes an angle with the residual
    vector whose cosine is <= gtol (s.colnorm: the squared column norms)."""
    cdef int k, i
    cdef double limit2
    if s.cost == 0.0:
        return 1
    limit2 = s.gtol * s.gtol * s.cost       # compared with squares: no square root per point
    for k in range(s.nfree):
        if s.gp[k] * s.gp[k] > limit2 * s.colnorm[k] and not pushes_out(s, k, -s.gp[k]):
            return 0
    for i in range(s.m):
        if s.gd[i] * s.gd[i] > limit2 * (s.w[i] * s.w[i] * s.fx[i] * s.fx[i]
                                          + s.v[i] * s.v[i]):
            return 0
    return 1


cdef void finish(OdrState *s) noexcept nogil:
    """At the final point with its Jacobian: the exit check, then the covariance."""
    cdef int n = s.nfree, P = s.nparams, k, l, info = 0, dof = s.n_valid - s.nfree
    cdef double predicted, factor, v
    cdef char uplo = b'L'
    if s.status == SUCCESS and s.cost > 0.0:
        # evidence of a minimum: the Gauss-Newton step from here changes nothing that matters
        predicted = propose(s, 0.0)
        if predicted > EXIT_REDUCTION_TOLERANCE * s.cost \
                and s.dnorm > EXIT_STEP_TOLERANCE * s.znorm:
            if s.restarts < MAX_RESTARTS and s.nit < s.maxiter:
                s.restarts += 1
                s.finishing = 0
                s.lam = INITIAL_LAMBDA
                s.nu = 2.0
                next_trial(s)
                return
            s.status = MAX_ITERATIONS
    for k in range(n):
        s.blocked[k] = 0.0
    for k in range(P * P):
        s.cov[k] = 0.0
    s.stage = DONE
    if schur_solve(s, 0.0) != 0:
        if s.status == SUCCESS:
            s.status = SINGULAR
        for k in range(n):
            for l in range(n):
                s.cov[s.free_index[k] * P + s.free_index[l]] = INFINITY
            s.stderr[s.free_index[k]] = INFINITY
        return
    # the Cholesky factor of S is in s.normal: its inverse is the parameters' covariance
    dpotri(&uplo, &n, s.normal, &n, &info)
    if s.absolute_sigma:
        factor = 1.0
    else:
        factor = s.cost / dof if dof > 0 else INFINITY
    for k in range(n):
        for l in range(k, n):
            v = s.normal[l + k * n] * factor if info == 0 else INFINITY
            s.cov[s.free_index[k] * P + s.free_index[l]] = v
            s.cov[s.free_index[l] * P + s.free_index[k]] = v
    for k in range(P):
        s.stderr[k] = sqrt(s.cov[k * P + k])


cdef void odr_jacobian_ready(OdrState *s) noexcept nogil:
    """s.jb and s.fx hold the Jacobian at (params, delta): gradient, scaling, convergence by
    the gradient test, the covariance when finishing, else the next proposal."""
    cdef int m = s.m, n = s.nfree, i, k, finite = 1
    cdef double wi2, c
    cdef const double *jk
    s.jac_valid = 1
    # s.work = w^2 (f - y) (0 at a missing point, whose value is y). A non-finite derivative
    # at a valid point makes its c_i (f_x) or a column's norm (J_p) non-finite.
    for i in range(m):
        wi2 = s.w[i] * s.w[i]
        s.work[i] = wi2 * (s.values[i] - s.y[i])
        s.tmp[i] = wi2
        s.gd[i] = s.fx[i] * s.work[i] + s.v[i] * s.v[i] * s.delta[i]
        c = wi2 * s.fx[i] * s.fx[i] + s.v[i] * s.v[i]
        finite &= isfinite(c) != 0
        if c > s.dd[i]:
            s.dd[i] = c
    for k in range(n):
        jk = s.jb + <Py_ssize_t>k * m
        s.gp[k] = dot(m, s.work, jk)
        c = dot3(m, s.tmp, jk, jk)
        finite &= isfinite(c) != 0
        s.colnorm[k] = c
        if c > s.dp[k]:
            s.dp[k] = c
        if s.dp[k] == 0.0:      # a parameter without effect: MINPACK's unit scale
            s.dp[k] = 1.0
    if not finite:
        state_stop(s, NON_FINITE)
        return
    if not s.finishing and gradient_small(s):
        s.finishing = 1
        if not s.analytic:      # the covariance's Jacobian by central differences
            s.jac_valid = 0
            s.stage = NEED_JACOBIAN
            return
    if s.finishing:
        finish(s)
    else:
        next_trial(s)


cdef void odr_assess(OdrState *s, int rc) noexcept nogil:
    """s.values_trial holds the model at the trial point (rc: its evaluation status): accept
    or reject, update lam, test convergence."""
    cdef double actual, ratio, t
    cdef int converged = 0
    s.nit += 1
    s.nfev += 1
    s.cost_trial = cost_at(s, s.values_trial, s.delta_trial) if rc == SUCCESS else NAN
    if not isfinite(s.cost_trial):
        ratio = -1.0
        actual = -INFINITY
    else:
        actual = s.cost - s.cost_trial
        ratio = actual / s.predicted if s.predicted > 0.0 else -1.0
    if ratio >= ACCEPT_RATIO:
        swap(&s.params, &s.trial)
        swap(&s.delta, &s.delta_trial)
        swap(&s.values, &s.values_trial)
        converged = ((actual <= s.ftol * s.cost and s.predicted <= s.ftol * s.cost)
                     or s.dnorm <= s.xtol * s.znorm or s.cost_trial == 0.0)
        s.cost = s.cost_trial
        s.jac_valid = 0
        t = 2.0 * ratio - 1.0
        s.lam *= max_(1.0 / 3.0, 1.0 - t * t * t)
        s.nu = 2.0
    else:
        # a step too small to matter that still does not lower the cost: rounding level
        converged = (s.dnorm <= s.xtol * s.znorm
                     or (s.predicted <= s.ftol * s.cost and s.lam <= INITIAL_LAMBDA))
        s.lam = min_(s.lam * s.nu, LAMBDA_MAX)
        s.nu *= 2.0
    if converged:
        s.finishing = 1
    elif s.nit >= s.maxiter:
        s.status = MAX_ITERATIONS
        s.finishing = 1
    if s.finishing and not s.analytic:
        s.jac_valid = 0         # the covariance's Jacobian by central differences
    if s.finishing or not s.jac_valid:
        s.stage = NEED_JACOBIAN
        if s.jac_valid:
            odr_jacobian_ready(s)
    else:
        next_trial(s)




# ---------------------------------------------------------------------------------------------
# Built-in and compiled models: one dataset at a time without the GIL, datasets in a prange.

# the ids of fastcalc.models.ModelId (tests/test_odr.py checks them) whose x-derivative
# builtin_x_derivative knows
cdef enum:
    LINE = 0
    POLYNOMIAL = 1
    EXPONENTIAL = 2
    GAUSSIAN = 3
    LORENTZIAN = 4
    LOGISTIC = 5
    POWER_LAW = 6
    SINE = 7


cdef int builtin_x_derivative(int model_id, int m, int P, const double *p, const double *t,
                              const double *jac, double *fx) noexcept nogil:
    """fx = df/dx at t from the analytic Jacobian ``jac`` (m, P) row-major of built-in model
    ``model_id`` at (t, p); returns 0 when the model has no such rule (fx untouched)."""
    cdef int i, k
    cdef double total
    if model_id == LINE:                                 # a + b x
        for i in range(m):
            fx[i] = p[1]
    elif model_id == POLYNOMIAL:                         # sum c_k x^k, jac[:, k] = x^k
        for i in range(m):
            total = 0.0
            for k in range(1, P):
                total += k * p[k] * jac[<Py_ssize_t>i * P + k - 1]
            fx[i] = total
    elif model_id == EXPONENTIAL:                        # A exp(-x/tau) + c, jac[:, 0] = exp
        for i in range(m):
            fx[i] = -p[0] / p[1] * jac[<Py_ssize_t>i * P]
    elif model_id == GAUSSIAN or model_id == LORENTZIAN or model_id == LOGISTIC:
        for i in range(m):                               # functions of x - p[1]
            fx[i] = -jac[<Py_ssize_t>i * P + 1]
    elif model_id == POWER_LAW:                          # A x^k, jac[:, 0] = x^k (x > 0)
        for i in range(m):
            fx[i] = p[0] * p[1] * jac[<Py_ssize_t>i * P] / t[i]
    elif model_id == SINE:                               # A sin(omega x + phi) + c
        for i in range(m):
            fx[i] = p[1] * jac[<Py_ssize_t>i * P + 2]
    else:
        return 0
    return 1


cdef struct Model:
    int kind
    int model_id
    int x_derivative    # builtin_x_derivative knows this model
    int jacrow_at_params    # jacrow holds the Jacobian at the current params (the last trial)
    model_eval_t builtin
    model_t compiled
    model_t compiled_jac
    model_jac_t compiled_both   # a compiled model writing its own Jacobian (then compiled NULL)
    void *user_data
    void *jac_user_data
    double *jacrow      # (m, P) scratch
    double *fd_params   # (P,)
    double *fd_values   # (m,)
    double *t_minus     # (m,)


cdef inline int model_values(const Model *md, int m, const double *t, int P, const double *p,
                             double *out, double *jac) noexcept nogil:
    cdef int rc
    if md.kind == KIND_BUILTIN:
        return NON_FINITE if md.builtin(m, t, P, p, out, jac) != 0 else SUCCESS
    if md.compiled_both != NULL:
        rc = md.compiled_both(m, <double *>t, P, <double *>p, out, jac, md.user_data)
    else:
        rc = md.compiled(m, <double *>t, P, <double *>p, out, md.user_data)
    return CALLBACK_ERROR if rc != 0 else SUCCESS


cdef int model_jacobian(OdrState *s, Model *md) noexcept nogil:
    """s.jb (analytic, compiled or forward differences) and s.fx (analytic or central
    differences) at (params, delta)."""
    cdef int m = s.m, P = s.nparams, i, k, j, rc, central
    cdef double h
    points_at(s, s.delta, s.t)
    if md.jacrow_at_params:     # the accepted trial was evaluated with its Jacobian
        md.jacrow_at_params = 0
        for k in range(s.nfree):
            j = s.free_index[k]
            for i in range(m):
                s.jb[i + <Py_ssize_t>k * m] = md.jacrow[<Py_ssize_t>i * P + j]
        builtin_x_derivative(md.model_id, m, P, s.params, s.t, md.jacrow, s.fx)
        return SUCCESS
    if md.kind == KIND_BUILTIN or md.compiled_jac != NULL or md.compiled_both != NULL:
        if md.kind == KIND_BUILTIN or md.compiled_both != NULL:
            rc = model_values(md, m, s.t, P, s.params, md.fd_values, md.jacrow)
        elif md.compiled_jac(m, s.t, P, s.params, md.jacrow, md.jac_user_data) != 0:
            rc = CALLBACK_ERROR
        else:
            rc = SUCCESS
        s.nfev += 1
        if rc != SUCCESS:
            return rc
        for k in range(s.nfree):
            j = s.free_index[k]
            for i in range(m):
                s.jb[i + <Py_ssize_t>k * m] = md.jacrow[<Py_ssize_t>i * P + j]
        if md.x_derivative:
            builtin_x_derivative(md.model_id, m, P, s.params, s.t, md.jacrow, s.fx)
            return SUCCESS
    else:
        memcpy(md.fd_params, s.params, <size_t>P * sizeof(double))
        for k in range(s.nfree):
            j = s.free_index[k]
            h = fd_step(s, k)
            central = central_in_bounds(s, k, h)
            if s.has_bounds and s.params[j] + h > s.upper[j]:
                h = -h
            md.fd_params[j] = s.params[j] + h
            h = md.fd_params[j] - s.params[j]
            rc = model_values(md, m, s.t, P, md.fd_params, md.fd_values, NULL)
            s.nfev += 1
            if central and rc == SUCCESS:
                md.fd_params[j] = s.params[j] - h
                rc = model_values(md, m, s.t, P, md.fd_params, s.jb + <Py_ssize_t>k * m, NULL)
                s.nfev += 1
            md.fd_params[j] = s.params[j]
            if rc != SUCCESS:
                return rc
            if central:
                for i in range(m):
                    s.jb[i + <Py_ssize_t>k * m] = \
                        (md.fd_values[i] - s.jb[i + <Py_ssize_t>k * m]) / (2.0 * h)
            else:
                for i in range(m):
                    s.jb[i + <Py_ssize_t>k * m] = (md.fd_values[i] - s.values[i]) / h
    for i in range(m):
        h = x_step(s, i)
        md.t_minus[i] = s.t[i] - h
        s.t[i] += h
    rc = model_values(md, m, s.t, P, s.params, s.fx, NULL)
    if rc == SUCCESS:
        rc = model_values(md, m, md.t_minus, P, s.params, md.fd_values, NULL)
    s.nfev += 2
    if rc != SUCCESS:
        return rc
    for i in range(m):
        s.fx[i] = (s.fx[i] - md.fd_values[i]) / (s.t[i] - md.t_minus[i])
    return SUCCESS


cdef void odr_run(OdrState *s, Model *md) noexcept nogil:
    """Run one dataset to completion (s.params holds the start)."""
    cdef int rc
    md.jacrow_at_params = 0
    points_at(s, s.delta, s.t)
    odr_begin(s, model_values(md, s.m, s.t, s.nparams, s.params, s.values, NULL))
    while s.stage != DONE:
        if s.stage == NEED_JACOBIAN:
            rc = model_jacobian(s, md)
            if rc != SUCCESS:
                state_stop(s, rc)
                break
            odr_jacobian_ready(s)
        else:
            points_at(s, s.delta_trial, s.t)
            rc = model_values(md, s.m, s.t, s.nparams, s.trial, s.values_trial,
                              md.jacrow if md.x_derivative else NULL)
            odr_assess(s, rc)
            # accepted (its Jacobian is wanted next): the trial's is in jacrow already
            md.jacrow_at_params = md.x_derivative and rc == SUCCESS and not s.jac_valid


cdef struct BatchInput:
    int kind
    int model_id
    model_eval_t builtin
    model_guess_t guess
    model_t compiled
    model_t compiled_jac
    model_jac_t compiled_both
    void *user_data
    void *jac_user_data
    int m
    int nparams
    int nfree
    const double *x             # (Nx, m)
    Py_ssize_t x_stride         # 0 when shared
    const double *Y             # (N, m)
    const double *sigma         # (Ns, m) or NULL
    Py_ssize_t sigma_stride
    const double *sigma_x       # (Nsx, m)
    Py_ssize_t sigma_x_stride
    const double *p0            # (N, nparams)
    int use_guess
    const double *lower
    const double *upper
    int has_bounds
    const int *free_index
    int maxiter
    double ftol
    double xtol
    double gtol
    int absolute_sigma
    double *params_out          # (N, nparams)
    double *cov_out             # (N, nparams, nparams)
    double *stderr_out          # (N, nparams)
    double *chi2_out
    int *dof_out
    int *nit_out
    int *nfev_out
    int *status_out
    double *delta_out           # (N, m)
    double *residuals_out       # (N, m)


cdef inline Py_ssize_t dataset_size(int m, int P, int nfree) noexcept nogil:
    return 6 * <Py_ssize_t>m + <Py_ssize_t>m * P + P + state_size(m, P, nfree) + 8


cdef void odr_dataset(const BatchInput *inp, Py_ssize_t d, double *scratch) noexcept nogil:
    """Gather dataset d (missing points dropped), fit it, write its outputs."""
    cdef OdrState s
    cdef Model md
    cdef int m = inp.m, P = inp.nparams, i, k, n = 0, j
    cdef const double *x = inp.x + d * inp.x_stride
    cdef const double *y = inp.Y + d * <Py_ssize_t>m
    cdef const double *sig = inp.sigma + d * inp.sigma_stride if inp.sigma != NULL else NULL
    cdef const double *sigx = inp.sigma_x + d * inp.sigma_x_stride
    cdef double *c = scratch
    cdef double *xs = take(&c, m)
    cdef double *ys = take(&c, m)
    cdef double *ws = take(&c, m)
    cdef double *vs = take(&c, m)
    md.jacrow = take(&c, <Py_ssize_t>m * P)
    md.fd_params = take(&c, P)
    md.fd_values = take(&c, m)
    md.t_minus = take(&c, m)
    for i in range(m):
        if isfinite(y[i]):
            xs[n] = x[i]
            ys[n] = y[i]
            ws[n] = 1.0 / sig[i] if sig != NULL else 1.0
            vs[n] = 1.0 / sigx[i]
            n += 1
    md.kind = inp.kind
    md.model_id = inp.model_id
    md.x_derivative = inp.kind == KIND_BUILTIN and builtin_x_derivative(inp.model_id, 0, P,
                                                                         NULL, NULL, NULL, NULL)
    md.builtin = inp.builtin
    md.compiled = inp.compiled
    md.compiled_jac = inp.compiled_jac
    md.compiled_both = inp.compiled_both
    md.user_data = inp.user_data
    md.jac_user_data = inp.jac_user_data
    state_bind(&s, c, n, P, inp.nfree)
    state_init(&s, xs, ys, ws, vs, inp.maxiter, inp.ftol, inp.xtol, inp.gtol,
               inp.absolute_sigma, inp.free_index, inp.lower, inp.upper, inp.has_bounds,
               inp.cov_out + d * P * P, inp.stderr_out + d * P)
    s.analytic = inp.kind == KIND_BUILTIN or inp.compiled_jac != NULL or inp.compiled_both != NULL
    memcpy(s.params, inp.p0 + d * P, <size_t>P * sizeof(double))
    if n < inp.nfree or n == 0:
        state_stop(&s, SINGULAR)
    elif inp.use_guess:
        if inp.guess(n, xs, ys, P, s.params) != 0:
            state_stop(&s, SINGULAR)
        else:
            for j in range(P):
                if inp.has_bounds:
                    s.params[j] = min_(max_(s.params[j], inp.lower[j]), inp.upper[j])
                if isfinite(inp.p0[d * P + j]):       # a fixed parameter's given value
                    s.params[j] = inp.p0[d * P + j]
    if s.stage != DONE:
        odr_run(&s, &md)
    memcpy(inp.params_out + d * P, s.params, <size_t>P * sizeof(double))
    inp.chi2_out[d] = s.cost
    inp.dof_out[d] = n - inp.nfree
    inp.nit_out[d] = s.nit
    inp.nfev_out[d] = s.nfev
    inp.status_out[d] = s.status
    k = 0
    for i in range(m):
        if isfinite(y[i]):
            inp.delta_out[d * m + i] = s.delta[k]
            inp.residuals_out[d * m + i] = y[i] - s.values[k]
            k += 1
        else:
            inp.delta_out[d * m + i] = NAN
            inp.residuals_out[d * m + i] = NAN


cdef void no_memory_output(const BatchInput *inp, Py_ssize_t d) noexcept nogil:
    cdef Py_ssize_t P = inp.nparams, k
    for k in range(P):
        inp.params_out[d * P + k] = NAN
        inp.stderr_out[d * P + k] = NAN
    for k in range(P * P):
        inp.cov_out[d * P * P + k] = NAN
    for k in range(inp.m):
        inp.delta_out[d * inp.m + k] = NAN
        inp.residuals_out[d * inp.m + k] = NAN
    inp.chi2_out[d] = NAN
    inp.dof_out[d] = 0
    inp.nit_out[d] = 0
    inp.nfev_out[d] = 0
    inp.status_out[d] = NON_FINITE


def odr_compiled(int kind, int model_id, object model, object model_jac,
                 const double[:, ::1] x, const double[:, ::1] Y, object sigma,
                 const double[:, ::1] sigma_x, const double[:, ::1] p0, bint use_guess,
                 const double[::1] lower, const double[::1] upper, bint has_bounds,
                 const int[::1] free_index, int maxiter, double ftol, double xtol, double gtol,
                 bint absolute_sigma, Py_ssize_t start, Py_ssize_t stop, object n_threads,
                 double[:, ::1] params_out, double[:, :, ::1] cov_out,
                 double[:, ::1] stderr_out, double[::1] chi2_out, int[::1] dof_out,
                 int[::1] nit_out, int[::1] nfev_out, int[::1] status_out,
                 double[:, ::1] delta_out, double[:, ::1] residuals_out):
    """ODR of datasets start..stop-1 of a built-in (kind 0) or compiled (kind 1) model of one
    variable, in parallel. x (1 or N, m), Y (N, m) with NaN for missing points, sigma None or
    (1 or N, m), sigma_x (1 or N, m), p0 (N, nparams) (NaN for the free parameters where the
    built-in guess is used, when use_guess). Writes the outputs of those datasets."""
    cdef BatchInput inp
    cdef ModelKernel kernel
    cdef UserFunction fn, jac_fn
    cdef const double[:, ::1] sigma_view
    cdef int nt = resolve_threads(n_threads)
    cdef Py_ssize_t d, size, P = p0.shape[1], m = Y.shape[1], lo, hi, chunk
    cdef double *scratch
    inp.kind = kind
    inp.model_id = model_id
    inp.builtin = NULL
    inp.guess = NULL
    inp.compiled = NULL
    inp.compiled_jac = NULL
    inp.compiled_both = NULL
    inp.user_data = NULL
    inp.jac_user_data = NULL
    if kind == KIND_BUILTIN:
        kernel = model_kernel(model_id, <int>P)
        inp.builtin = kernel.evaluate
        inp.guess = kernel.guess
    else:
        fn = <UserFunction?>model
        if fn.signature == "model_jac":
            inp.compiled_both = <model_jac_t>fn.c_function
        else:
            inp.compiled = <model_t>fn.c_function
        inp.user_data = fn.user_data
        if model_jac is not None:
            jac_fn = <UserFunction?>model_jac
            inp.compiled_jac = <model_t>jac_fn.c_function
            inp.jac_user_data = jac_fn.user_data
    if use_guess and inp.guess == NULL:
        raise ValueError("this model has no initial guess; give p0")
    inp.m = <int>m
    inp.nparams = <int>P
    inp.nfree = <int>free_index.shape[0]
    inp.x = &x[0, 0]
    inp.x_stride = m if x.shape[0] > 1 else 0
    inp.Y = &Y[0, 0]
    inp.sigma = NULL
    inp.sigma_stride = 0
    if sigma is not None:
        sigma_view = sigma
        inp.sigma = &sigma_view[0, 0]
        inp.sigma_stride = m if sigma_view.shape[0] > 1 else 0
    inp.sigma_x = &sigma_x[0, 0]
    inp.sigma_x_stride = m if sigma_x.shape[0] > 1 else 0
    inp.p0 = &p0[0, 0]
    inp.use_guess = use_guess
    inp.lower = &lower[0]
    inp.upper = &upper[0]
    inp.has_bounds = has_bounds
    inp.free_index = &free_index[0] if free_index.shape[0] > 0 else NULL
    inp.maxiter = maxiter
    inp.ftol, inp.xtol, inp.gtol = ftol, xtol, gtol
    inp.absolute_sigma = absolute_sigma
    inp.params_out = &params_out[0, 0]
    inp.cov_out = &cov_out[0, 0, 0]
    inp.stderr_out = &stderr_out[0, 0]
    inp.chi2_out = &chi2_out[0]
    inp.dof_out = &dof_out[0]
    inp.nit_out = &nit_out[0]
    inp.nfev_out = &nfev_out[0]
    inp.status_out = &status_out[0]
    inp.delta_out = &delta_out[0, 0]
    inp.residuals_out = &residuals_out[0, 0]
    size = dataset_size(inp.m, inp.nparams, inp.nfree)
    if stop - start < 2 * nt:
        nt = 1
    # sub-chunks of 4096 datasets with a check for Ctrl-C between them (the datasets are
    # independent: the boundaries change no result)
    chunk = 4096
    lo = start
    while lo < stop:
        hi = lo + chunk if stop - lo > chunk else stop
        with nogil, parallel(num_threads=nt):
            scratch = <double *>malloc(size * sizeof(double))
            for d in prange(lo, hi, schedule="static"):
                if scratch == NULL:          # out of memory: an honest failure, never garbage
                    no_memory_output(&inp, d)
                else:
                    odr_dataset(&inp, d, scratch)
            free(scratch)
        PyErr_CheckSignals()
        lo = hi


# ---------------------------------------------------------------------------------------------
# Python models: datasets advance in lock step, the model is called once per round.

def odr_python(object evaluate, const double[:, ::1] X, const double[:, ::1] Y,
               const double[:, ::1] W, const double[:, ::1] V, const double[:, ::1] p0,
               const double[::1] lower, const double[::1] upper, bint has_bounds,
               const int[::1] free_index, int maxiter, double ftol, double xtol, double gtol,
               bint absolute_sigma, double[:, ::1] params_out, double[:, :, ::1] cov_out,
               double[:, ::1] stderr_out, double[::1] chi2_out, int[::1] dof_out,
               int[::1] nit_out, int[::1] nfev_out, int[::1] status_out,
               double[:, ::1] delta_out, double[:, ::1] residuals_out):
    """ODR of K datasets of a Python model in lock step.

    ``evaluate(T, params, rows)`` -> (a, m): the model at points T (a, m) with parameters
    (a, P), for datasets ``rows`` (a,) (repeated when one dataset has several rows). X (K, m)
    the data's x, Y (K, m) with any finite value at missing points, W (K, m) the weights
    1/sigma (0 at missing points), V (K, m) 1/sigma_x. A Jacobian round evaluates
    ``nfree + 2`` rows per dataset in one call: forward differences in each free parameter,
    then x shifted up and down. Exceptions raised by ``evaluate`` propagate.
    """
    cdef Py_ssize_t K = Y.shape[0], m = Y.shape[1], P = p0.shape[1], d, a, i, k, r, na
    cdef int n = <int>free_index.shape[0], j, central
    cdef Py_ssize_t[::1] fview
    cdef Py_ssize_t size = state_size(<int>m, <int>P, n) + 8
    cdef double *blocks = <double *>malloc(<size_t>(K * size + 1) * sizeof(double))
    cdef OdrState *states = <OdrState *>malloc(<size_t>(K if K > 0 else 1) * sizeof(OdrState))
    cdef OdrState *s
    cdef double h
    cdef double[:, ::1] tview, pview, hview
    cdef const double[:, ::1] vals
    cdef Py_ssize_t[::1] rview
    if blocks == NULL or states == NULL:
        free(blocks)
        free(states)
        raise MemoryError()
    try:
        for d in range(K):
            s = &states[d]
            state_bind(s, blocks + d * size, <int>m, <int>P, n)
            state_init(s, &X[d, 0], &Y[d, 0], &W[d, 0], &V[d, 0], maxiter, ftol, xtol, gtol,
                       absolute_sigma, &free_index[0] if n > 0 else NULL, &lower[0],
                       &upper[0], has_bounds, &cov_out[d, 0, 0], &stderr_out[d, 0])
            for j in range(P):
                s.params[j] = p0[d, j]
        rows = np.arange(K, dtype=np.intp)
        if K:
            vals = _values(evaluate, np.ascontiguousarray(X), np.asarray(p0), rows, m)
            for d in range(K):
                _copy_values(&states[d], &vals[d, 0], states[d].values)
                odr_begin(&states[d], SUCCESS)
        while True:
            # 1. Jacobians, one call: per dataset the free parameters shifted up (and down
            # when finishing: central differences), then x shifted up and down
            rows = _rows_at(states, K, NEED_JACOBIAN)
            rview = rows
            na = rview.shape[0]
            if na:
                first = np.empty(na + 1, dtype=np.intp)
                fview = first
                fview[0] = 0
                for a in range(na):
                    fview[a + 1] = fview[a] + (2 * n + 2 if states[rview[a]].finishing
                                               else n + 2)
                T = np.empty((fview[na], m))
                params = np.empty((fview[na], P))
                steps = np.empty((na, 2 * n if n > 0 else 1))   # steps, central or not
                tview = T
                pview = params
                hview = steps
                for a in range(na):
                    s = &states[rview[a]]
                    for r in range(fview[a], fview[a + 1]):
                        for j in range(P):
                            pview[r, j] = s.params[j]
                        for i in range(m):
                            tview[r, i] = s.x[i] + s.delta[i]
                    for k in range(n):
                        j = s.free_index[k]
                        h = fd_step(s, <int>k)
                        central = s.finishing and central_in_bounds(s, <int>k, h)
                        if not central and has_bounds and s.params[j] + h > upper[j]:
                            h = -h
                        pview[fview[a] + k, j] = s.params[j] + h
                        hview[a, k] = pview[fview[a] + k, j] - s.params[j]
                        hview[a, n + k] = central
                        if central:
                            pview[fview[a] + n + 2 + k, j] = s.params[j] - hview[a, k]
                    for i in range(m):
                        h = x_step(s, <int>i)
                        tview[fview[a] + n, i] += h
                        tview[fview[a] + n + 1, i] -= h
                owners = np.repeat(rows, np.diff(first))
                vals = _values(evaluate, T, params, owners, m)
                for a in range(na):
                    s = &states[rview[a]]
                    r = fview[a]
                    s.nfev += <int>(fview[a + 1] - r)
                    for k in range(n):
                        central = hview[a, n + k] != 0.0
                        for i in range(m):
                            if s.w[i] == 0.0:
                                s.jb[i + k * m] = 0.0
                            elif central:
                                s.jb[i + k * m] = (vals[r + k, i] - vals[r + n + 2 + k, i]) \
                                    / (2.0 * hview[a, k])
                            else:
                                s.jb[i + k * m] = (vals[r + k, i] - s.values[i]) / hview[a, k]
                    for i in range(m):
                        s.fx[i] = 0.0 if s.w[i] == 0.0 else (
                            (vals[r + n, i] - vals[r + n + 1, i])
                            / (tview[r + n, i] - tview[r + n + 1, i]))
                    odr_jacobian_ready(s)
            # 2. One model call for every trial point.
            rows = _rows_at(states, K, NEED_VALUES)
            rview = rows
            na = rview.shape[0]
            if na == 0:
                if _rows_at(states, K, NEED_JACOBIAN).shape[0] == 0:
                    break
                continue
            T = np.empty((na, m))
            params = np.empty((na, P))
            tview = T
            pview = params
            for a in range(na):
                s = &states[rview[a]]
                for j in range(P):
                    pview[a, j] = s.trial[j]
                for i in range(m):
                    tview[a, i] = s.x[i] + s.delta_trial[i]
            vals = _values(evaluate, T, params, rows, m)
            for a in range(na):
                s = &states[rview[a]]
                _copy_values(s, &vals[a, 0], s.values_trial)
                odr_assess(s, SUCCESS)
        for d in range(K):
            s = &states[d]
            for j in range(P):
                params_out[d, j] = s.params[j]
            chi2_out[d] = s.cost
            dof_out[d] = s.n_valid - n
            nit_out[d] = s.nit
            nfev_out[d] = s.nfev
            status_out[d] = s.status
            for i in range(m):
                if s.w[i] != 0.0:
                    delta_out[d, i] = s.delta[i]
                    residuals_out[d, i] = s.y[i] - s.values[i]
                else:
                    delta_out[d, i] = NAN
                    residuals_out[d, i] = NAN
    finally:
        free(blocks)
        free(states)


cdef void _copy_values(OdrState *s, const double *vals, double *values) noexcept nogil:
    """A model call's values into the state; a missing point's value (weight 0) may be
    anything, NaN included: it becomes y."""
    cdef int i
    for i in range(s.m):
        values[i] = vals[i] if s.w[i] != 0.0 else s.y[i]


cdef object _rows_at(OdrState *states, Py_ssize_t K, int stage):
    """Indices of the datasets at ``stage``."""
    cdef Py_ssize_t d, count = 0
    out = np.empty(K, dtype=np.intp)
    cdef Py_ssize_t[::1] view = out
    for d in range(K):
        if states[d].stage == stage:
            view[count] = d
            count += 1
    return out[:count]


def _values(evaluate, T, params, rows, Py_ssize_t m):
    values = np.asarray(evaluate(T, params, rows), dtype=np.float64)
    shape = (len(rows), m)
    if values.shape != shape:
        values = np.broadcast_to(values, shape)
    return np.ascontiguousarray(values)
