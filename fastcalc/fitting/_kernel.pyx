"""Chi-squared fitting kernels: Levenberg-Marquardt and gradient descent, one dataset or millions.

The iteration is a step-wise state machine (``FitState``) so that two drivers share every line of
the algebra:

* ``fit_one`` runs one dataset to completion without the GIL, calling a built-in model
  (``fastcalc._models``) or a compiled model callable (values and analytic Jacobian in one call
  for built-in models and compiled ones with the Jacobian signature, else forward
  differences); ``fit_compiled`` runs it over datasets in a ``prange`` loop with per-thread
  scratch.
* ``fit_python`` drives many datasets of a Python-callable model in lock step: one broadcast model
  call per round for every dataset waiting for values, with the finite-difference points of
  its Jacobian stacked in the same call (``fit_batch``), or one call per free parameter
  (``fit``, whose model need not broadcast), and the algebra per dataset in C.

Notation: weighted residuals ``r = w (y - f(p))`` with ``w = 1/sigma`` (0 for a missing point), and
``J = w df/dp`` (columns of the free parameters only, column-major). That is least squares; other
estimators (Poisson, robust losses) give their own ``r`` and row factors in place of ``w``
(``fastcalc.fitting._estimator``), and "chi2" below is then their cost (``FitState.cost``). The Levenberg-Marquardt step
solves ``min ||r - J dp||^2 + lam ||D dp||^2`` with MINPACK's scaling ``D`` (column norms of ``J``,
never decreasing). It is solved from the normal equations by Cholesky when that is accurate (every
pivot keeps at least 1e-8 of its diagonal) and otherwise by Householder QR of ``J`` followed by QR
of the small augmented matrix ``[R; sqrt(lam) D]``, which never squares the condition number.
QR is also used when ``J^T J`` would overflow or underflow (x near 1e200 or 1e-200): its
reflections and the column norms are computed from vectors divided by powers of two, which is
exact, and ``D^2`` is never formed where it would leave the double range (the trust-radius slope,
the steepest-descent step), so any representable scale of x works. Data of unusual scale
(largest ``|w y|`` beyond 2^+-200) are fitted with their weights divided by a power of two near
it (``data_scale_exponent``): the same problem with every quantity divided exactly, so chi2 ~
``(w y)^2`` neither underflows (y ~ 1e-170 used to end the fit at once with chi2 = 0) nor
overflows; chi2 (and the covariance with ``absolute_sigma``) are scaled back at the end. A sigma
below 2^-1000, whose 1/sigma may overflow, is handled the same way: its dataset's weights are
formed already divided by 2^128 (``weights_from_sigma``), and the 128 is added to the exponent.
``lam`` is not updated by a rule but chosen for a trust radius ``delta`` on ``||D dp||`` (MINPACK
lmder/lmpar; see ``lm_step`` and the radius update in ``state_assess``).
"""
import numpy as np
cimport numpy as cnp
from cython.parallel cimport parallel, prange
from libc.math cimport sqrt, fabs, fmax, isfinite, ilogb, ldexp, INFINITY, NAN
from libc.stdlib cimport malloc, free
from libc.string cimport memcpy
from cpython.exc cimport PyErr_CheckSignals
from time import perf_counter

from fastcalc.fitting._estimator cimport (Estimator, point_cost, pearson_term, COST_CHI2,
                                          COST_POISSON)
from fastcalc._evaluate cimport UserFunction, model_t, model_jac_t
from fastcalc._models cimport ModelKernel, model_kernel, model_eval_t, model_guess_t
from fastcalc._parallel cimport resolve_threads
from fastcalc._status_codes cimport (SUCCESS, MAX_ITERATIONS, SINGULAR, NON_FINITE,
                                     OUT_OF_BOUNDS, CALLBACK_ERROR)

cnp.import_array()


# Stages of the state machine.
cdef enum:
    NEED_JACOBIAN = 0   # J at params is wanted (jac_valid says it is already there)
    NEED_TRIAL = 1      # propose a step
    NEED_VALUES = 2     # a trial point is proposed; waiting for its residuals
    DONE = 3

cdef enum:
    METHOD_LM = 0
    METHOD_GD = 1

cdef enum:
    KIND_BUILTIN = 0
    KIND_COMPILED = 1

# Cholesky is trusted when every pivot keeps this fraction of its diagonal (else QR is used).
cdef double CHOLESKY_MIN_PIVOT_RATIO = 1e-8
# A Jacobian column whose QR diagonal is below this fraction of its norm is linearly dependent.
cdef double RANK_TOLERANCE = 1e-12
# Exit check: a Gauss-Newton step still this large (relative, scaled) that would also remove
# this fraction of chi2 means the point is not a minimum.
cdef double EXIT_STEP_TOLERANCE = 1e-4
cdef double EXIT_REDUCTION_TOLERANCE = 1e-8
# compiled batches check for Ctrl-C between sub-chunks of about this duration
cdef double SIGNAL_CHECK_SECONDS = 0.02
cdef Py_ssize_t MAX_SIGNAL_CHUNK = 65536
# chi2 resolution relative to ||w f||^2: below it a predicted reduction is rounding noise
cdef double EXIT_CHI2_RESOLUTION = 1e-16
# predicted reduction (relative to chi2) a fruitless fresh start may leave behind
cdef double EXIT_STALL_REDUCTION = 1e-6
cdef int MAX_RESTARTS = 3
# Trust region (MINPACK lmder): the first radius on ||D dp|| is this multiple of ||D p0||.
cdef double TRUST_REGION_FACTOR = 1.0
# lambda is searched until ||D dp(lambda)|| is within this fraction of the radius. MINPACK uses
# 0.1; on the NIST StRD set 0.001 costs ~1 more small solve per search and saves ~30% of the
# iterations (1651 instead of 2440 with analytic Jacobians), the valley problems (Bennett5,
# MGH17 from start 1) being sensitive to it.
cdef double RADIUS_TOLERANCE = 0.001
cdef int MAX_LAMBDA_ITERATIONS = 10
cdef double DWARF = 2.2250738585072014e-308
cdef double SQRT_EPS = 1.4901161193847656e-08
# fraction of the model's size by which the typical scale of a parameter moves it (fd_step)
cdef double FD_SCALE_FRACTION = 1e-3


cdef struct FitState:
    int m               # rows (points; a missing point is a zero row)
    int nparams         # all parameters
    int nfree           # free parameters (columns of J)
    int n_valid         # points with non-zero weight (for the degrees of freedom)
    int method
    int maxiter
    int absolute_sigma
    int has_bounds
    double ftol
    double xtol
    double gtol
    const int *free_index
    const double *lower
    const double *upper
    # iteration state
    int stage
    int status
    int nit
    int nfev
    int finishing       # converged: finish as soon as J at params is known
    int jac_valid       # J holds the Jacobian at params
    int trial_has_jac   # jac_trial holds the Jacobian at trial (built-in models)
    int have_qr
    int have_normal
    int factor_is_qr    # the last damped_step left its factor in aug (QR) rather than chol
    int chol_is_normal  # chol holds the Cholesky factor of the whole J^T J (lam 0, all columns)
    int clipped
    int restarts        # fresh starts after a stall away from a minimum
    double cost_restart # cost at the last fresh start
    int rejections      # consecutive rejected steps
    int data_exponent   # the weights were divided by 2**data_exponent (data_scale_exponent)
    Estimator est       # what is minimised (fastcalc.fitting._estimator)
    double cost         # the estimator's cost at params (chi2 for least squares)
    double cost_eval    # the cost at the point evaluated last (set by residuals_at)
    double predicted
    double lam
    double delta        # trust radius on ||D dp|| (0: not set yet)
    double dnorm        # ||D dp|| of the proposed step
    double pnorm        # ||D p|| at params when it was proposed
    double alpha
    # arrays (see state_size)
    double *params
    double *trial
    double *values
    double *values_trial
    double *resid
    double *resid_trial
    double *rows        # row factors of J at params (w for chi2; see _estimator)
    double *rows_trial
    double *row_store   # (2 m): where rows and rows_trial live unless they are w (chi2)
    double *jac
    double *jac_trial
    double *qr
    double *qrb
    double *R
    double *qtr
    double *scale
    double *grad
    double *normal
    double *chol
    double *step
    double *aug
    double *augb
    double *work
    int *blocked
    int *columns
    int *exponents      # covariance scaling: 2**exponents[k] ~ norm of column k of J (finish)
    double *cov         # (nparams, nparams), written by finish
    double *stderr      # (nparams,), written by finish


cdef inline Py_ssize_t state_size(int m, int nparams, int nfree) noexcept nogil:
    """Number of doubles a FitState needs (ints are stored in double slots)."""
    return (2 * nparams + 6 * m + 3 * m * nfree + m + 4 * nfree * nfree + 6 * nfree
            + 2 * nfree * nfree + 2 * nfree + 3 * nfree)


cdef inline double *take(double **cursor, Py_ssize_t n) noexcept nogil:
    cdef double *p = cursor[0]
    cursor[0] = p + n
    return p


cdef void state_bind(FitState *s, double *block, int m, int nparams, int nfree) noexcept nogil:
    cdef double *c = block
    s.m = m
    s.nparams = nparams
    s.nfree = nfree
    s.params = take(&c, nparams)
    s.trial = take(&c, nparams)
    s.values = take(&c, m)
    s.values_trial = take(&c, m)
    s.resid = take(&c, m)
    s.resid_trial = take(&c, m)
    s.row_store = take(&c, 2 * m)
    s.rows = s.row_store
    s.rows_trial = s.row_store + m
    s.jac = take(&c, m * nfree)
    s.jac_trial = take(&c, m * nfree)
    s.qr = take(&c, m * nfree)
    s.qrb = take(&c, m)
    s.R = take(&c, nfree * nfree)
    s.normal = take(&c, nfree * nfree)
    s.chol = take(&c, nfree * nfree)
    s.work = take(&c, nfree * nfree)
    s.qtr = take(&c, nfree)
    s.scale = take(&c, nfree)
    s.grad = take(&c, nfree)
    s.step = take(&c, nfree)
    s.augb = take(&c, 2 * nfree)
    s.aug = take(&c, 2 * nfree * nfree)
    s.blocked = <int *>take(&c, nfree)
    s.columns = <int *>take(&c, nfree)
    s.exponents = <int *>take(&c, nfree)


cdef void state_init(FitState *s, int method, int maxiter, double ftol, double xtol, double gtol,
                     int absolute_sigma, const int *free_index, const double *lower,
                     const double *upper, int has_bounds, double *cov,
                     double *stderr) noexcept nogil:
    cdef int k
    s.method = method
    s.maxiter = maxiter
    s.ftol = ftol
    s.xtol = xtol
    s.gtol = gtol
    s.absolute_sigma = absolute_sigma
    s.free_index = free_index
    s.lower = lower
    s.upper = upper
    s.has_bounds = has_bounds
    s.cov = cov
    s.stderr = stderr
    s.stage = NEED_JACOBIAN
    s.status = SUCCESS
    s.nit = 0
    s.nfev = 0
    s.finishing = 0
    s.jac_valid = 0
    s.trial_has_jac = 0
    s.have_qr = 0
    s.have_normal = 0
    s.chol_is_normal = 0
    s.clipped = 0
    s.restarts = 0
    s.cost_restart = INFINITY
    s.rejections = 0
    s.data_exponent = 0
    s.cost = NAN
    s.predicted = 0.0
    s.lam = 0.0
    s.delta = 0.0
    s.dnorm = 0.0
    s.pnorm = 0.0
    s.factor_is_qr = 0
    s.alpha = 1.0 / nfree_or_one(s.nfree)
    for k in range(s.nfree):
        s.scale[k] = 0.0


cdef inline int nfree_or_one(int n) noexcept nogil:
    return n if n > 0 else 1


# ---------------------------------------------------------------------------------------------
# Small dense linear algebra (column-major). Hand-written for the tiny sizes of a fit (the
# per-call overhead of LAPACK dominates there); tested against numpy.linalg.lstsq.

cdef extern from *:
    """
    /* Dot product with four independent partial sums, added as (s0 + s2) + (s1 + s3): a fixed
       order, so the result depends only on the inputs (never on the thread count), and ~4x
       faster than one dependent chain. SSE2 (baseline x86-64) and the portable loop give
       bitwise-identical results. */
    #if defined(__SSE2__)
    #include <emmintrin.h>
    static inline double fastcalc_dot(int n, const double *a, const double *b) {
        __m128d s01 = _mm_setzero_pd(), s23 = _mm_setzero_pd();
        double lo[2], hi[2], tail = 0.0;
        int i = 0;
        for (; i + 4 <= n; i += 4) {
            s01 = _mm_add_pd(s01, _mm_mul_pd(_mm_loadu_pd(a + i), _mm_loadu_pd(b + i)));
            s23 = _mm_add_pd(s23, _mm_mul_pd(_mm_loadu_pd(a + i + 2), _mm_loadu_pd(b + i + 2)));
        }
        for (; i < n; i++) tail += a[i] * b[i];
        _mm_storeu_pd(lo, s01);
        _mm_storeu_pd(hi, s23);
        return ((lo[0] + tail) + hi[0]) + (lo[1] + hi[1]);
    }
    /* a.b and a.c in one pass (a loaded once), each summed exactly as fastcalc_dot does. */
    static inline void fastcalc_dot2(int n, const double *a, const double *b, const double *c,
                                     double *ab, double *ac) {
        __m128d b01 = _mm_setzero_pd(), b23 = _mm_setzero_pd();
        __m128d c01 = _mm_setzero_pd(), c23 = _mm_setzero_pd();
        double lo[2], hi[2], tail_b = 0.0, tail_c = 0.0;
        int i = 0;
        for (; i + 4 <= n; i += 4) {
            __m128d a01 = _mm_loadu_pd(a + i), a23 = _mm_loadu_pd(a + i + 2);
            b01 = _mm_add_pd(b01, _mm_mul_pd(a01, _mm_loadu_pd(b + i)));
            b23 = _mm_add_pd(b23, _mm_mul_pd(a23, _mm_loadu_pd(b + i + 2)));
            c01 = _mm_add_pd(c01, _mm_mul_pd(a01, _mm_loadu_pd(c + i)));
            c23 = _mm_add_pd(c23, _mm_mul_pd(a23, _mm_loadu_pd(c + i + 2)));
        }
        for (; i < n; i++) {
            tail_b += a[i] * b[i];
            tail_c += a[i] * c[i];
        }
        _mm_storeu_pd(lo, b01);
        _mm_storeu_pd(hi, b23);
        *ab = ((lo[0] + tail_b) + hi[0]) + (lo[1] + hi[1]);
        _mm_storeu_pd(lo, c01);
        _mm_storeu_pd(hi, c23);
        *ac = ((lo[0] + tail_c) + hi[0]) + (lo[1] + hi[1]);
    }
    #else
    static inline double fastcalc_dot(int n, const double *a, const double *b) {
        double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0, tail = 0.0;
        int i = 0;
        for (; i + 4 <= n; i += 4) {
            s0 += a[i] * b[i];
            s1 += a[i + 1] * b[i + 1];
            s2 += a[i + 2] * b[i + 2];
            s3 += a[i + 3] * b[i + 3];
        }
        for (; i < n; i++) tail += a[i] * b[i];
        return ((s0 + tail) + s2) + (s1 + s3);
    }
    static inline void fastcalc_dot2(int n, const double *a, const double *b, const double *c,
                                     double *ab, double *ac) {
        *ab = fastcalc_dot(n, a, b);
        *ac = fastcalc_dot(n, a, c);
    }
    #endif
    """
    double dot "fastcalc_dot"(int n, const double *a, const double *b) noexcept nogil
    void dot2 "fastcalc_dot2"(int n, const double *a, const double *b, const double *c,
                              double *ab, double *ac) noexcept nogil


cdef extern from "float.h":
    const double DBL_MAX


# Sums of squares below this may have lost digits to underflow (DBL_MIN / DBL_EPSILON).
cdef double SQUARES_UNDERFLOW = 1.0020841800044864e-292


cdef double power_of_two_scale(int n, const double *v) noexcept nogil:
    """A power of two close to max |v_i| (1 if v is zero or not finite). Dividing by it is
    exact, so sums of squares of v / scale neither overflow nor underflow and give the same
    digits as v would without those limits."""
    cdef int i
    cdef double biggest = 0.0
    for i in range(n):
        biggest = fmax(biggest, fabs(v[i]))
    if biggest == 0.0 or not isfinite(biggest):
        return 1.0
    return ldexp(1.0, ilogb(biggest))


cdef double column_norm(int n, const double *v) noexcept nogil:
    """||v||, also when the sum of squares would overflow or underflow (huge or tiny x)."""
    cdef int i
    cdef double total = dot(n, v, v), scale, t
    if SQUARES_UNDERFLOW <= total <= DBL_MAX:
        return sqrt(total)
    scale = power_of_two_scale(n, v)
    total = 0.0
    for i in range(n):
        t = v[i] / scale
        total += t * t
    return scale * sqrt(total)


# Weighted data whose largest |w y| lies within 2**-DATA_EXPONENT_LIMIT .. 2**DATA_EXPONENT_LIMIT
# are fitted as they are; beyond, the weights are divided by a power of two near it first.
cdef int DATA_EXPONENT_LIMIT = 200
cdef double DATA_SCALE_LOW = 6.223015277861142e-61      # 2**-200
cdef double DATA_SCALE_HIGH = 1.6069380442589903e+60    # 2**200


cdef int data_scale_exponent(int m, const double *y, const double *w) noexcept nogil:
    """e with max |w_i y_i| in [2**e, 2**(e+1)) when that is outside the ordinary range
    (DATA_EXPONENT_LIMIT), else 0 (also for all-zero data).

    Fitting with the weights divided by 2**e is the same problem with every quantity of the
    iteration (residuals, chi2, J, J^T r, the trust radius) divided by an exact power of two,
    so the data's scale no longer decides whether chi2 (~ (w y)**2) or J^T r underflow or
    overflow (y near 1e-170 or 1e200): the parameters come out as for data of order 1. Only the
    data of unusual scale are touched, so ordinary fits stay bitwise as they were."""
    cdef int i, e, biggest = -100000
    cdef double largest = 0.0
    # fast path (every fit pays it): the plain products, when clearly within range
    for i in range(m):
        largest = fmax(largest, fabs(w[i] * y[i]))
    if DATA_SCALE_LOW <= largest <= DATA_SCALE_HIGH:
        return 0
    for i in range(m):
        if y[i] != 0.0 and w[i] != 0.0:
            e = ilogb(w[i]) + ilogb(y[i])     # w y itself may overflow or underflow
            if e > biggest:
                biggest = e
    if biggest == -100000 or -DATA_EXPONENT_LIMIT <= biggest <= DATA_EXPONENT_LIMIT:
        return 0
    return biggest


# 1/sigma overflows for sigma below about 2**-1024 (subnormal sigma). A dataset with a sigma
# below SIGMA_TINY has its weights formed as 1 / (sigma * 2**SIGMA_SHIFT) instead, i.e. divided
# by 2**SIGMA_SHIFT, which its data_exponent carries like any other data scale: 2**-1074 * 2**128
# leaves every weight finite.
cdef double SIGMA_TINY = 9.332636185032189e-302         # 2**-1000
cdef int SIGMA_SHIFT = 128
cdef double SIGMA_SHIFT_MAX = 2.5463949491650077e+269   # 2**(1023 - SIGMA_SHIFT)


cdef int weights_from_sigma(int m, double *w) noexcept nogil:
    """Turn ``w`` = sigma (0 at a missing point, left 0) into the weights 1/sigma in place,
    divided by 2**k; returns k: SIGMA_SHIFT when some sigma is below SIGMA_TINY (and the
    shift overflows no other sigma), else 0."""
    cdef int i, k = 0
    cdef double smallest = INFINITY, largest = 0.0, v
    for i in range(m):          # (comparisons: fmin/fmax are calls without -ffast-math)
        v = w[i]
        if v > largest:
            largest = v
        if v < smallest and v != 0.0:
            smallest = v
    if smallest < SIGMA_TINY and largest < SIGMA_SHIFT_MAX:
        k = SIGMA_SHIFT
        for i in range(m):
            if w[i] != 0.0:
                w[i] = 1.0 / ldexp(w[i], k)
        return k
    for i in range(m):
        if w[i] != 0.0:
            w[i] = 1.0 / w[i]
    return 0


cdef void scale_weights(int m, double *w, int e) noexcept nogil:
    cdef int i
    for i in range(m):
        w[i] = ldexp(w[i], -e)


cdef void final_costs(FitState *s, const double *y, const double *w, double *cost,
                      double *pearson) noexcept nogil:
    """The cost and Pearson's chi2 at params for the data as given, when the weights were
    divided by 2**data_exponent (they may leave the double range: then inf or 0); the
    covariance with absolute_sigma is rescaled in place (without, the scale cancels in
    cost / dof). ``w`` are the (scaled) weights; s.resid_trial is overwritten."""
    cdef int k, i, e = s.data_exponent
    cdef double norm, total = 0.0
    if s.est.kind == COST_POISSON:          # never scaled
        cost[0] = s.cost
        for i in range(s.m):
            total += pearson_term(&s.est, y[i], s.values[i], w[i])
        pearson[0] = total if isfinite(s.cost) else NAN
        return
    if e != 0 and s.absolute_sigma:
        for k in range(s.nparams * s.nparams):
            s.cov[k] = ldexp(s.cov[k], -2 * e)
        for k in range(s.nparams):
            s.stderr[k] = ldexp(s.stderr[k], -e)
    if s.est.kind == COST_CHI2 and e == 0:
        cost[0] = s.cost
        pearson[0] = s.cost
        return
    # From the norm of the plain weighted residuals, scaled back before squaring: when the
    # weights span a huge range (a few points with sigma 1e-250), the squares of the other
    # points' scaled residuals underflow, and s.cost lost them (0 for a true 820).
    if s.est.kind != COST_CHI2:         # (s.resid holds the robust loss's residuals)
        for i in range(s.m):
            s.resid_trial[i] = w[i] * (y[i] - s.values[i]) if w[i] != 0.0 else 0.0
    norm = ldexp(column_norm(s.m, s.resid if s.est.kind == COST_CHI2 else s.resid_trial), e)
    pearson[0] = norm * norm if isfinite(s.cost) else NAN
    cost[0] = pearson[0] if s.est.kind == COST_CHI2 else ldexp(s.cost, 2 * e)


cdef void use_estimator(FitState *s, int kind, double *w) noexcept nogil:
    """Minimise estimator ``kind``; for chi2 the J-row factors are the weights ``w``
    themselves (no copy per evaluation: least squares runs as it did before estimators)."""
    s.est.kind = kind
    if kind == COST_CHI2:
        s.rows = w
        s.rows_trial = w
    else:
        s.rows = s.row_store
        s.rows_trial = s.row_store + s.m


cdef inline void residuals_at(FitState *s, const double *y, const double *values, const double *w,
                              double *resid, double *rows) noexcept nogil:
    """The estimator's residuals and J-row factors (for chi2: ``w`` itself, use_estimator) at
    one evaluated point, and its cost in s.cost_eval. A non-finite value (at a point of
    non-zero weight; a missing point's value is y, _residuals) makes the cost non-finite,
    which fails the start and rejects a trial."""
    cdef int i
    cdef double total = 0.0
    if s.est.kind == COST_CHI2:
        for i in range(s.m):
            resid[i] = w[i] * (y[i] - values[i])
        s.cost_eval = dot(s.m, resid, resid)
        return
    for i in range(s.m):
        total += point_cost(&s.est, y[i], values[i], w[i], &resid[i], &rows[i])
    s.cost_eval = total


cdef int all_zero(int n, const double *v) noexcept nogil:
    cdef int i
    for i in range(n):
        if v[i] != 0.0:
            return 0
    return 1


cdef void householder_triangularize(int rows, int cols, double *A, int lda,
                                    double *b) noexcept nogil:
    """Reduce A (rows x cols) to upper-triangular R in place by Householder reflections, applying
    the same reflections to b (so b becomes Q^T b). Entries below the diagonal are zeroed.

    Each reflection vector is divided by a power of two near its largest entry: the reflection
    is the same, the division is exact (unless an entry drops below the normal range), and
    neither its norm nor its products with the other columns overflow or underflow when the
    columns are huge or tiny (x near 1e200 or 1e-200)."""
    cdef int k, i, j
    cdef double norm, alpha, x0, vk, vnorm2, t, scale
    cdef double *col
    cdef double *other
    for k in range(cols if cols < rows else rows):
        col = A + <Py_ssize_t>k * lda
        scale = power_of_two_scale(rows - k, col + k)
        norm = 0.0
        for i in range(k, rows):
            col[i] /= scale
            norm += col[i] * col[i]
        norm = sqrt(norm)
        if norm == 0.0:
            continue
        x0 = col[k]
        alpha = -norm if x0 >= 0.0 else norm
        vk = x0 - alpha
        vnorm2 = 2.0 * norm * (norm + fabs(x0))
        col[k] = vk
        for j in range(k + 1, cols):
            other = A + <Py_ssize_t>j * lda
            t = 0.0
            for i in range(k, rows):
                t += col[i] * other[i]
            t = 2.0 * t / vnorm2
            for i in range(k, rows):
                other[i] -= t * col[i]
        t = 0.0
        for i in range(k, rows):
            t += col[i] * b[i]
        t = 2.0 * t / vnorm2
        for i in range(k, rows):
            b[i] -= t * col[i]
        col[k] = alpha * scale
        for i in range(k + 1, rows):
            col[i] = 0.0


cdef void solve_upper(int n, const double *R, int ldr, const double *b, double *x) noexcept nogil:
    """Back substitution R x = b; a zero diagonal gives a zero component (least-norm choice)."""
    cdef int i, j
    cdef double total
    for i in range(n - 1, -1, -1):
        total = b[i]
        for j in range(i + 1, n):
            total -= R[i + <Py_ssize_t>j * ldr] * x[j]
        x[i] = total / R[i + <Py_ssize_t>i * ldr] if R[i + <Py_ssize_t>i * ldr] != 0.0 else 0.0


cdef int cholesky(int n, double *A, int lda) noexcept nogil:
    """In-place lower Cholesky factor of the symmetric A (lower triangle used), its diagonal
    holding the reciprocals 1/L_jj (multiplications instead of dependent divisions in the
    solves). Returns 0, or 1 when a pivot is not positive or keeps less than
    CHOLESKY_MIN_PIVOT_RATIO of its diagonal."""
    cdef int i, j, k
    cdef double d, total, inverse
    for j in range(n):
        d = A[j + <Py_ssize_t>j * lda]
        total = d
        for k in range(j):
            total -= A[j + <Py_ssize_t>k * lda] * A[j + <Py_ssize_t>k * lda]
        if not (total > CHOLESKY_MIN_PIVOT_RATIO * d):
            return 1
        inverse = 1.0 / sqrt(total)
        A[j + <Py_ssize_t>j * lda] = inverse
        for i in range(j + 1, n):
            d = A[i + <Py_ssize_t>j * lda]
            for k in range(j):
                d -= A[i + <Py_ssize_t>k * lda] * A[j + <Py_ssize_t>k * lda]
            A[i + <Py_ssize_t>j * lda] = d * inverse
    return 0


cdef void cholesky_solve(int n, const double *L, int lda, const double *b, double *x) noexcept nogil:
    """Solve L L^T x = b with the factor of `cholesky` (reciprocal diagonal)."""
    cdef int i, k
    cdef double total
    for i in range(n):
        total = b[i]
        for k in range(i):
            total -= L[i + <Py_ssize_t>k * lda] * x[k]
        x[i] = total * L[i + <Py_ssize_t>i * lda]
    for i in range(n - 1, -1, -1):
        total = x[i]
        for k in range(i + 1, n):
            total -= L[k + <Py_ssize_t>i * lda] * x[k]
        x[i] = total * L[i + <Py_ssize_t>i * lda]


# ---------------------------------------------------------------------------------------------
# The state machine.

cdef void state_stop(FitState *s, int status, double uncertainty) noexcept nogil:
    """Stop with ``status``, every covariance entry and standard error ``uncertainty``."""
    cdef int k
    s.status = status
    for k in range(s.nparams * s.nparams):
        s.cov[k] = uncertainty
    for k in range(s.nparams):
        s.stderr[k] = uncertainty
    s.stage = DONE


cdef void state_fail(FitState *s, int status) noexcept nogil:
    """Stop with a failure status: covariance and standard errors NaN, params as they are."""
    state_stop(s, status, NAN)


cdef void state_begin(FitState *s, int eval_status) noexcept nogil:
    """Residuals at the starting params are in s.resid, their cost in s.cost_eval (and J in
    jac_trial if trial_has_jac)."""
    s.nfev += 1
    if eval_status != SUCCESS:
        state_fail(s, eval_status)
        return
    if not isfinite(s.cost_eval):
        state_fail(s, NON_FINITE)
        return
    s.cost = s.cost_eval
    s.stage = NEED_JACOBIAN
    if s.trial_has_jac:
        swap(&s.jac, &s.jac_trial)
        s.jac_valid = 1


cdef inline void swap(double **a, double **b) noexcept nogil:
    cdef double *t = a[0]
    a[0] = b[0]
    b[0] = t


cdef inline int at_lower(const FitState *s, int k) noexcept nogil:
    cdef int j = s.free_index[k]
    return s.has_bounds and s.params[j] <= s.lower[j]


cdef inline int at_upper(const FitState *s, int k) noexcept nogil:
    cdef int j = s.free_index[k]
    return s.has_bounds and s.params[j] >= s.upper[j]


cdef void state_jacobian_ready(FitState *s) noexcept nogil:
    """J at params is in s.jac: update scaling and gradient, test convergence."""
    cdef int m = s.m, n = s.nfree, k, l
    cdef double colnorm, g, rnorm, product
    cdef int gradient_small = 1
    cdef double *col
    cdef double *other
    s.jac_valid = 1
    s.have_qr = 0
    s.have_normal = 0
    s.chol_is_normal = 0
    # ||r|| for the gradient test (the cost is ||r||^2 for chi2 only)
    rnorm = sqrt(s.cost) if s.est.kind == COST_CHI2 else column_norm(m, s.resid)
    if s.method == METHOD_LM:
        # J^T J and J^T r together, two products per pass over column k; "column n" is r
        for k in range(n):
            col = s.jac + <Py_ssize_t>k * m
            l = k
            while l + 1 <= n:
                other = s.jac + <Py_ssize_t>(l + 1) * m if l + 1 < n else s.resid
                dot2(m, col, s.jac + <Py_ssize_t>l * m, other, &product, &g)
                s.normal[l + k * n] = product
                s.normal[k + l * n] = product
                if l + 1 < n:
                    s.normal[l + 1 + k * n] = g
                    s.normal[k + (l + 1) * n] = g
                else:
                    s.grad[k] = g
                l += 2
            if l == n:
                s.grad[k] = dot(m, col, s.resid)
        s.have_normal = 1
        for k in range(n):
            # J^T J overflows (or loses digits to underflow) when x is huge (tiny): then the
            # steps come from the QR factors of J, which are safe at any scale.
            if not (SQUARES_UNDERFLOW <= s.normal[k + k * n] <= DBL_MAX):
                s.have_normal = 0
    for k in range(n):
        col = s.jac + <Py_ssize_t>k * m
        colnorm = sqrt(s.normal[k + k * n]) if s.have_normal else column_norm(m, col)
        if not isfinite(colnorm):        # a NaN or inf entry (or an overflowing column)
            state_fail(s, NON_FINITE)
            return
        if colnorm > s.scale[k]:
            s.scale[k] = colnorm
        if s.scale[k] == 0.0:
            s.scale[k] = 1.0
        if not s.have_normal:
            s.grad[k] = dot(m, col, s.resid)
        g = s.grad[k]
        # Projected gradient: a component pushing against an active bound does not count.
        if (g < 0.0 and at_lower(s, k)) or (g > 0.0 and at_upper(s, k)):
            continue
        # gradient test: |cos(angle between r and column k)| <= gtol (no division needed)
        if fabs(g) > s.gtol * colnorm * rnorm:
            gradient_small = 0
    if s.finishing:
        state_finish(s)
        return
    # chi2 == 0 ends the fit only for an exact fit (not for residuals whose squares underflow)
    if gradient_small or (s.cost == 0.0 and all_zero(m, s.resid)):
        state_finish(s)
        return
    s.stage = NEED_TRIAL


cdef void state_qr(FitState *s) noexcept nogil:
    """Householder QR of J (at params): R (n x n) and Q^T r (first n entries)."""
    cdef int m = s.m, n = s.nfree, k, i
    if s.have_qr:
        return
    memcpy(s.qr, s.jac, <size_t>m * n * sizeof(double))
    memcpy(s.qrb, s.resid, <size_t>m * sizeof(double))
    householder_triangularize(m, n, s.qr, m, s.qrb)
    for k in range(n):
        for i in range(n):
            s.R[i + k * n] = s.qr[i + <Py_ssize_t>k * m] if (i <= k and i < m) else 0.0
        s.qtr[k] = s.qrb[k] if k < m else 0.0
    s.have_qr = 1


cdef double damped_step(FitState *s, int ncols, const int *columns, double lam) noexcept nogil:
    """Solve min ||r - J dp||^2 + lam ||D dp||^2 over the free columns listed in `columns` (others
    zero); the step goes to s.step (all free entries). Returns ||J dp||^2."""
    cdef int n = s.nfree, a, b, k, i
    cdef double quad, t
    for k in range(n):
        s.step[k] = 0.0
    s.chol_is_normal = 0
    if ncols == 0:
        return 0.0
    # Normal equations by Cholesky when accurate.
    if s.have_normal:
        for a in range(ncols):
            for b in range(a, ncols):
                s.chol[b + a * ncols] = s.normal[columns[b] + columns[a] * n]
            s.chol[a + a * ncols] += lam * s.scale[columns[a]] * s.scale[columns[a]]
            s.work[a] = s.grad[columns[a]]
        if cholesky(ncols, s.chol, ncols) == 0:
            s.factor_is_qr = 0
            # the Gauss-Newton factor of all columns is the one state_finish needs
            s.chol_is_normal = lam == 0.0 and ncols == n
            cholesky_solve(ncols, s.chol, ncols, s.work, s.augb)
            for a in range(ncols):
                s.step[columns[a]] = s.augb[a]
            quad = 0.0
            for a in range(n):
                t = 0.0
                for b in range(n):
                    t += s.normal[a + b * n] * s.step[b]
                quad += s.step[a] * t
            return quad
    # QR: [R[:, columns]; sqrt(lam) D] (2n x ncols), right-hand side [Q^T r; 0].
    state_qr(s)
    for a in range(ncols):
        k = columns[a]
        for i in range(n):
            s.aug[i + a * 2 * n] = s.R[i + k * n]
        for i in range(n, 2 * n):
            s.aug[i + a * 2 * n] = 0.0
        s.aug[n + a + a * 2 * n] = sqrt(lam) * s.scale[k]
    for i in range(n):
        s.augb[i] = s.qtr[i]
        s.augb[n + i] = 0.0
    householder_triangularize(2 * n, ncols, s.aug, 2 * n, s.augb)
    s.factor_is_qr = 1
    solve_upper(ncols, s.aug, 2 * n, s.augb, s.work)
    for a in range(ncols):
        s.step[columns[a]] = s.work[a]
    quad = 0.0
    for i in range(n):
        t = 0.0
        for k in range(i, n):
            t += s.R[i + k * n] * s.step[k]
        quad += t * t
    return quad


cdef double scaled_step_norm(const FitState *s) noexcept nogil:
    """||D dp|| for the current s.step."""
    cdef int k
    cdef double total = 0.0
    for k in range(s.nfree):
        total += (s.scale[k] * s.step[k]) * (s.scale[k] * s.step[k])
    return sqrt(total)


cdef double radius_slope(FitState *s, int ncols, const int *columns, double dxnorm) noexcept nogil:
    """||F^-1 D^2 dp / ||D dp|| ||^2 for the factor F (F F^T = J^T J + lam D^2 over `columns`) of
    the last damped_step: minus the derivative of ||D dp(lam)|| / ||D dp|| (Moré 1978). Returns 0
    when the factor is singular."""
    cdef int n = s.nfree, a, b, k
    cdef double total, norm2 = 0.0, diagonal
    cdef double *z = s.work
    for a in range(ncols):
        k = columns[a]
        total = s.scale[k] * s.scale[k]
        # (D^2 dp)_k; D_k^2 overflows (underflows) for huge (tiny) x, D_k (D_k dp_k) does not
        total = (total * s.step[k] if SQUARES_UNDERFLOW <= total <= DBL_MAX
                 else s.scale[k] * (s.scale[k] * s.step[k])) / dxnorm
        if s.factor_is_qr:      # F = R^T, R upper triangular in aug (leading dimension 2n)
            for b in range(a):
                total -= s.aug[b + a * 2 * n] * z[b]
            diagonal = s.aug[a + a * 2 * n]
            if diagonal == 0.0:
                return 0.0
            z[a] = total / diagonal
        else:                   # F = L, lower Cholesky factor with reciprocal diagonal
            for b in range(a):
                total -= s.chol[a + b * ncols] * z[b]
            z[a] = total * s.chol[a + a * ncols]
        norm2 += z[a] * z[a]
    return norm2 if isfinite(norm2) else 0.0


cdef double lm_step(FitState *s, int ncols, const int *columns) noexcept nogil:
    """The Levenberg-Marquardt step for the trust radius s.delta (MINPACK lmpar): the Gauss-Newton
    step when ||D dp|| <= (1 + RADIUS_TOLERANCE) delta, else the damped step whose ||D dp(lam)||
    is within RADIUS_TOLERANCE of delta, lam found by Moré's safeguarded Newton iteration. Sets
    s.step and s.lam (0 for Gauss-Newton); returns ||J dp||^2."""
    cdef int a, k, iteration
    cdef double quad, dxnorm, fp, previous_fp, parl = 0.0, paru, gnorm = 0.0, lam, slope, t
    cdef double delta = s.delta
    quad = damped_step(s, ncols, columns, 0.0)
    dxnorm = scaled_step_norm(s)
    fp = dxnorm - delta
    if fp <= RADIUS_TOLERANCE * delta:
        s.lam = 0.0
        return quad
    # Lower bound for lam: one Newton step from 0 (needs a non-singular Gauss-Newton factor).
    if isfinite(dxnorm):
        slope = radius_slope(s, ncols, columns, dxnorm)
        if slope > 0.0:
            parl = (fp / delta) / slope
            if not isfinite(parl):
                parl = 0.0
    # Upper bound: ||D^-1 g|| / delta.
    for a in range(ncols):
        k = columns[a]
        t = s.grad[k] / s.scale[k]
        gnorm += t * t
    gnorm = sqrt(gnorm)
    paru = gnorm / delta
    if paru == 0.0:
        paru = DWARF / (delta if delta < 0.1 else 0.1)
    lam = s.lam
    if lam < parl:
        lam = parl
    if lam > paru:
        lam = paru
    if lam == 0.0 and isfinite(dxnorm):
        lam = gnorm / dxnorm
    for iteration in range(MAX_LAMBDA_ITERATIONS):
        if lam == 0.0:
            lam = 0.001 * paru if 0.001 * paru > DWARF else DWARF
        quad = damped_step(s, ncols, columns, lam)
        dxnorm = scaled_step_norm(s)
        previous_fp = fp
        fp = dxnorm - delta
        if (fabs(fp) <= RADIUS_TOLERANCE * delta
                or (parl == 0.0 and fp <= previous_fp and previous_fp < 0.0)
                or iteration == MAX_LAMBDA_ITERATIONS - 1):
            break
        slope = radius_slope(s, ncols, columns, dxnorm)
        if fp > 0.0 and lam > parl:
            parl = lam
        if fp < 0.0 and lam < paru:
            paru = lam
        t = lam + (fp / delta) / slope if slope > 0.0 else lam
        lam = t if t > parl else parl
    s.lam = lam
    return quad


cdef inline double gradient_step(const FitState *s, int k) noexcept nogil:
    """Steepest-descent step alpha g_k / D_k^2 (D_k^2 can overflow or underflow: x huge or
    tiny)."""
    cdef double d2 = s.scale[k] * s.scale[k]
    if SQUARES_UNDERFLOW <= d2 <= DBL_MAX:
        return s.alpha * s.grad[k] / d2
    return s.alpha * (s.grad[k] / s.scale[k]) / s.scale[k]


cdef void state_propose(FitState *s) noexcept nogil:
    """Propose a trial point (stage NEED_TRIAL -> NEED_VALUES, or DONE)."""
    cdef int n = s.nfree, k, j, ncols
    cdef double quad = 0.0, dnorm2 = 0.0, dnorm, pnorm = 0.0, g_dot = 0.0, d
    if s.nit >= s.maxiter:
        s.status = MAX_ITERATIONS
        state_finish(s)
        return
    if s.method == METHOD_LM and s.delta == 0.0:
        # first radius: TRUST_REGION_FACTOR ||D p|| (MINPACK's factor), or the factor itself
        for k in range(n):
            j = s.free_index[k]
            pnorm += (s.scale[k] * s.params[j]) * (s.scale[k] * s.params[j])
        s.delta = TRUST_REGION_FACTOR * sqrt(pnorm)
        if not (s.delta > 0.0 and isfinite(s.delta)):
            s.delta = TRUST_REGION_FACTOR
        pnorm = 0.0
    # Active bounds: a parameter on a bound is held there when the gradient pushes it outward
    # (its KKT multiplier). One whose gradient points inward stays free even if the coupled
    # step points outward: holding it there (a rule by the step's sign) could keep it on the
    # bound for good while chi2 falls inward (tau of an exponential stuck at its bound with
    # status 0); the box then clips its step.
    for k in range(n):
        s.blocked[k] = s.has_bounds and ((s.grad[k] <= 0.0 and at_lower(s, k))
                                         or (s.grad[k] >= 0.0 and at_upper(s, k)))
    ncols = 0
    for k in range(n):
        if not s.blocked[k]:
            s.columns[ncols] = k
            ncols += 1
    if s.method == METHOD_LM:
        quad = lm_step(s, ncols, s.columns)
    else:
        for k in range(n):
            s.step[k] = 0.0 if s.blocked[k] else gradient_step(s, k)
    memcpy(s.trial, s.params, <size_t>s.nparams * sizeof(double))
    s.clipped = 0
    for k in range(n):
        j = s.free_index[k]
        s.trial[j] = s.params[j] + s.step[k]
        if s.has_bounds:
            if s.trial[j] < s.lower[j]:
                s.trial[j] = s.lower[j]
                s.clipped = 1
            elif s.trial[j] > s.upper[j]:
                s.trial[j] = s.upper[j]
                s.clipped = 1
        d = s.trial[j] - s.params[j]
        s.step[k] = d
        dnorm2 += (s.scale[k] * d) * (s.scale[k] * d)
        pnorm += (s.scale[k] * s.params[j]) * (s.scale[k] * s.params[j])
        g_dot += s.grad[k] * d
    dnorm = sqrt(dnorm2)
    pnorm = sqrt(pnorm)
    s.dnorm = dnorm
    s.pnorm = pnorm
    # Step test (gradient descent; LM tests its trust radius after the step): the scaled step is
    # below xtol relative to the scaled parameters. After a rejection the step is small because
    # it was cut, which says nothing about convergence: then only a step that no longer changes
    # the parameters ends the iteration.
    if dnorm == 0.0 or (s.method == METHOD_GD and s.rejections == 0
                        and dnorm <= s.xtol * pnorm):
        state_finish(s)
        return
    if (s.method == METHOD_LM and s.lam == 0.0 and not s.clipped and s.rejections == 0
            and quad <= s.ftol * s.cost):
        state_finish(s)
        return
    # Predicted chi2 reduction of the linear model.
    if s.method == METHOD_LM and not s.clipped:
        s.predicted = quad + 2.0 * s.lam * dnorm2
    else:
        s.predicted = 2.0 * g_dot - linear_quad(s)
    s.nit += 1
    s.stage = NEED_VALUES


cdef double linear_quad(FitState *s) noexcept nogil:
    """||J dp||^2 for the current s.step."""
    cdef int m = s.m, n = s.nfree, i, k
    cdef double total = 0.0, t
    for i in range(m):
        t = 0.0
        for k in range(n):
            t += s.jac[i + <Py_ssize_t>k * m] * s.step[k]
        total += t * t
    return total


cdef void state_assess(FitState *s, int eval_status) noexcept nogil:
    """Residuals at the trial point are in s.resid_trial, their cost in s.cost_eval: accept
    or reject the step."""
    cdef double cost, actual, ratio
    cdef int accept, converged
    s.nfev += 1
    cost = s.cost_eval if eval_status == SUCCESS else NAN
    actual = s.cost - cost if isfinite(cost) else -INFINITY
    # Cost test: the actual and the predicted relative reductions are both below ftol.
    converged = (isfinite(cost) and fabs(actual) <= s.ftol * s.cost
                 and s.predicted <= s.ftol * s.cost)
    if s.method == METHOD_LM:
        # Trust-region update on the ratio of actual to predicted reduction (MINPACK lmder).
        ratio = actual / s.predicted if s.predicted > 0.0 else 0.0
        if ratio <= 0.25:
            s.delta = 0.5 * (s.delta if s.delta < 10.0 * s.dnorm else 10.0 * s.dnorm)
        elif s.lam == 0.0 or ratio >= 0.75:
            s.delta = 2.0 * s.dnorm
        accept = ratio >= 1e-4
    else:
        accept = actual > 0.0
        s.alpha *= 1.5 if accept else 0.5
    if accept:
        # Step test (LM): the accepted step is below xtol relative to the scaled parameters.
        if converged or (s.method == METHOD_LM and s.dnorm <= s.xtol * s.pnorm):
            s.finishing = 1
        s.rejections = 0
        swap(&s.params, &s.trial)
        swap(&s.resid, &s.resid_trial)
        swap(&s.rows, &s.rows_trial)
        swap(&s.values, &s.values_trial)
        s.cost = cost
        s.jac_valid = 0
        if s.trial_has_jac:
            swap(&s.jac, &s.jac_trial)
            s.jac_valid = 1
        s.stage = NEED_JACOBIAN
    else:
        # A rejected step that changes chi2 by less than ftol, as predicted: at the minimum;
        # or the trust radius has shrunk below xtol of the scaled parameters.
        if s.method == METHOD_LM and (converged or s.delta <= s.xtol * s.pnorm):
            state_finish(s)
            return
        s.rejections += 1
        s.stage = NEED_TRIAL


cdef inline int full_rank(const FitState *s) noexcept nogil:
    """R (valid) has no diagonal entry below RANK_TOLERANCE of its column's scale."""
    cdef int k
    for k in range(s.nfree):
        if not (fabs(s.R[k + k * s.nfree]) > RANK_TOLERANCE * s.scale[k]):
            return 0
    return 1


cdef void state_singular(FitState *s) noexcept nogil:
    """Singular Jacobian at the solution: covariance and standard errors inf, DONE (a status
    already set, such as MAX_ITERATIONS, is kept)."""
    state_stop(s, s.status if s.status != SUCCESS else SINGULAR, INFINITY)


# J^T J with its diagonal within 2**+-256 has an inverse that, times chi2 / dof (chi2 within
# about 2**+-500 after data_scale_exponent) and square-rooted, stays inside the double range
# even at a condition number of 2**60; beyond, scaled_inverse scales the columns.
cdef double COVARIANCE_SAFE_LOW = 8.636168555094445e-78     # 2**-256
cdef double COVARIANCE_SAFE_HIGH = 1.157920892373162e+77    # 2**256


cdef inline int covariance_in_range(const FitState *s) noexcept nogil:
    cdef int k, n = s.nfree
    if not s.have_normal:
        return 0
    for k in range(n):
        if not (COVARIANCE_SAFE_LOW <= s.normal[k + k * n] <= COVARIANCE_SAFE_HIGH):
            return 0
    return 1


cdef void cholesky_inverse(FitState *s) noexcept nogil:
    """(L L^T)^-1 = L^-T L^-1 into s.work from the factor in s.chol (reciprocal diagonal):
    L^-1 goes to s.aug, then the product."""
    cdef int n = s.nfree, k, l, i
    cdef double total
    for k in range(n):
        s.aug[k + k * n] = s.chol[k + k * n]
        for i in range(k + 1, n):
            total = 0.0
            for l in range(k, i):
                total += s.chol[i + l * n] * s.aug[l + k * n]
            s.aug[i + k * n] = -total * s.chol[i + i * n]
    for k in range(n):
        for l in range(k, n):
            total = 0.0
            for i in range(l, n):
                total += s.aug[i + k * n] * s.aug[i + l * n]
            s.work[k + l * n] = total
            s.work[l + k * n] = total


cdef void triangular_inverse(FitState *s, const double *R) noexcept nogil:
    """(R^T R)^-1 = R^-1 R^-T into s.work for the upper triangular R (n x n, full rank): the
    columns of R^-1 go to s.chol, then the product."""
    cdef int n = s.nfree, k, l, i
    cdef double total
    for k in range(n):
        for i in range(n):
            s.augb[i] = 1.0 if i == k else 0.0
        solve_upper(n, R, n, s.augb, s.chol + k * n)
    for k in range(n):
        for l in range(n):
            total = 0.0
            for i in range(n):
                total += s.chol[k + i * n] * s.chol[l + i * n]
            s.work[k + l * n] = total


cdef int scaled_inverse(FitState *s) noexcept nogil:
    """D (J^T J)^-1 D into s.work (free columns), D = diag(2**exponents[k]) with 2**exponents[k]
    the largest |J_ik| of column k; returns 1 when J is singular. For J^T J outside the range
    of covariance_in_range.

    The inverse of J^T J itself leaves the double range once a column norm does (about
    2**+-511: an amplitude column of data scaled by 2**+-600); that of the column-scaled
    D^-1 J^T J D^-1 does not, and the covariance is scaled back entry by entry. Scaling by
    powers of two is exact, so this gives bitwise D times what the unscaled computation gives
    for the same problem at an ordinary scale, and takes the same path: Cholesky when every
    pivot keeps CHOLESKY_MIN_PIVOT_RATIO of its diagonal (invariant under D), else R D^-1."""
    cdef int m = s.m, n = s.nfree, k, l, i
    for k in range(n):
        s.exponents[k] = ilogb(power_of_two_scale(m, s.jac + <Py_ssize_t>k * m))
    if s.have_normal:
        for k in range(n):
            for l in range(k, n):
                s.chol[l + k * n] = ldexp(s.normal[l + k * n], -s.exponents[k] - s.exponents[l])
    else:
        # s.qr is scratch here (state_qr refills it from J; R and Q^T r stay valid)
        for k in range(n):
            for i in range(m):
                s.qr[i + <Py_ssize_t>k * m] = ldexp(s.jac[i + <Py_ssize_t>k * m],
                                                    -s.exponents[k])
        for k in range(n):
            for l in range(k, n):
                s.chol[l + k * n] = dot(m, s.qr + <Py_ssize_t>k * m, s.qr + <Py_ssize_t>l * m)
    if cholesky(n, s.chol, n) == 0:
        cholesky_inverse(s)
        return 0
    state_qr(s)
    if not full_rank(s):
        return 1
    for k in range(n):
        for i in range(n):
            s.aug[i + k * n] = ldexp(s.R[i + k * n], -s.exponents[k])
    triangular_inverse(s, s.aug)
    return 0


cdef void state_finish(FitState *s) noexcept nogil:
    """Covariance at params, the exit check, and DONE. J at params must be valid.

    Beyond covariance_in_range the covariance comes from scaled_inverse, scaled back entry by
    entry (one ldexp each), and the standard errors from their own square roots, so they stay
    finite where only their variances in cov are inf or 0; the same problem at an ordinary
    scale gives the same digits."""
    cdef int n = s.nfree, P = s.nparams, k, l, j, dof, use_qr = 1, scaled
    cdef double factor, dnorm = 0.0, reduction = 0.0, d
    cdef double model_scale = 0.0, pscale, stderr, chi2_floor
    if not s.jac_valid:
        s.finishing = 1
        s.stage = NEED_JACOBIAN
        return
    for k in range(P * P):
        s.cov[k] = 0.0
    for k in range(P):
        s.stderr[k] = 0.0       # fixed parameters
    dof = s.n_valid - n
    # The Gauss-Newton step from params (for the exit check) goes to s.step: from the Cholesky
    # factor of J^T J when accurate, else from R.
    if s.have_normal:
        if s.chol_is_normal:
            # the last Gauss-Newton step factored exactly this matrix (lam 0, all columns)
            use_qr = 0
        else:
            for k in range(n):
                for l in range(k, n):
                    s.chol[l + k * n] = s.normal[l + k * n]
            if cholesky(n, s.chol, n) == 0:
                use_qr = 0
        if not use_qr:
            cholesky_solve(n, s.chol, n, s.grad, s.step)
    if use_qr:
        state_qr(s)
        if not full_rank(s):
            state_singular(s)
            return
        solve_upper(n, s.R, n, s.qtr, s.step)
    # (J^T J)^-1 into s.work (scaled: D (J^T J)^-1 D) from the factor of the step
    scaled = not covariance_in_range(s)
    if scaled:
        if scaled_inverse(s) != 0:
            state_singular(s)
            return
    elif use_qr:
        triangular_inverse(s, s.R)
    else:
        cholesky_inverse(s)
    if s.absolute_sigma or s.est.kind == COST_POISSON:    # Poisson: the inverse Fisher matrix
        factor = 1.0
    elif dof > 0:
        factor = s.cost / dof
    else:
        factor = INFINITY
    for k in range(n):
        j = s.free_index[k]
        if scaled:
            for l in range(n):
                s.cov[j * P + s.free_index[l]] = ldexp(s.work[k + l * n] * factor,
                                                       -s.exponents[k] - s.exponents[l])
            s.stderr[j] = ldexp(sqrt(s.work[k + k * n] * factor), -s.exponents[k])
        else:
            for l in range(n):
                s.cov[j * P + s.free_index[l]] = s.work[k + l * n] * factor
            s.stderr[j] = sqrt(s.work[k + k * n] * factor)
    if s.status == SUCCESS and s.cost > 0.0:
        # dnorm: the largest component of the Gauss-Newton step relative to its parameter's
        # scale, max(|p_j|, standard error of p_j), so that a parameter converging to 0 is not
        # taken for a moving one. model_scale ~ ||w f||: sum |p_j| * (column norm of J), so the
        # predicted reduction is compared with at least the chi2 resolution of the data
        # (an exact fit has chi2 ~ 1e-37 and a reduction of the same size).
        for k in range(n):
            j = s.free_index[k]
            model_scale += fabs(s.params[j]) * s.scale[k]
        for k in range(n):
            j = s.free_index[k]
            d = s.step[k]
            if (d < 0.0 and at_lower(s, k)) or (d > 0.0 and at_upper(s, k)):
                continue
            reduction += s.grad[k] * d
            pscale = fabs(s.params[j])
            stderr = sqrt(fabs(s.work[k + k * n] * factor))
            if scaled:
                stderr = ldexp(stderr, -s.exponents[k])
            if stderr > pscale:
                pscale = stderr
            if fabs(d) > dnorm * pscale:
                dnorm = fabs(d) / pscale if pscale > 0.0 else INFINITY
        chi2_floor = EXIT_CHI2_RESOLUTION * model_scale * model_scale
        # A fresh start that lowered chi2 not at all, with a small predicted reduction, means
        # the prediction is the Jacobian's own error (forward differences of a parameter near
        # 0 use a tiny step): this is the minimum as far as the model evaluations can tell.
        if (dnorm > EXIT_STEP_TOLERANCE
                and reduction > EXIT_REDUCTION_TOLERANCE * fmax(s.cost, chi2_floor)
                and not (s.restarts > 0 and s.cost >= s.cost_restart
                         and reduction <= EXIT_STALL_REDUCTION * s.cost)):
            # Stalled away from a minimum (typically the never-decreasing scaling froze a
            # parameter): start afresh from here with the current scaling and damping reset.
            if s.restarts < MAX_RESTARTS and s.nit < s.maxiter:
                s.restarts += 1
                s.cost_restart = s.cost
                for k in range(n):
                    s.scale[k] = 0.0
                s.lam = 0.0
                s.delta = 0.0
                s.alpha = 1.0 / nfree_or_one(n)
                s.finishing = 0
                s.rejections = 0
                state_jacobian_ready(s)
                return
            s.status = MAX_ITERATIONS
    s.stage = DONE


# ---------------------------------------------------------------------------------------------
# Compiled driver: built-in models and compiled model callables, one dataset per call.

cdef struct Problem:
    int kind
    model_eval_t builtin
    model_t compiled
    model_t compiled_jac
    model_jac_t compiled_both   # a compiled model writing its own Jacobian (then compiled NULL)
    void *user_data
    void *jac_user_data
    int x_dim
    int m               # valid (compacted) points
    double *x           # (x_dim, m)
    double *y
    double *w
    double *jacrow      # (m, nparams)
    double *fd_params   # (nparams,)
    double *fd_values   # (m,)


cdef int evaluate_point(FitState *s, Problem *pr, const double *params, double *values,
                        double *resid, double *rows, double *jac_out) noexcept nogil:
    """Model values, the estimator's residuals and row factors at params (residuals_at); the
    free-column Jacobian, rows scaled, too when jac_out is not NULL (built-in models and
    compiled models with a Jacobian). Returns a status code."""
    cdef int m = pr.m, P = s.nparams, n = s.nfree, i, k, j, rc
    if pr.kind == KIND_BUILTIN:
        # a built-in kernel returns non-zero unless every value and Jacobian entry is finite
        rc = pr.builtin(m, pr.x, P, params, values, pr.jacrow if jac_out != NULL else NULL)
        if rc != 0:
            return NON_FINITE
    elif pr.compiled_both != NULL:
        rc = pr.compiled_both(m, pr.x, P, <double *>params, values,
                              pr.jacrow if jac_out != NULL else NULL, pr.user_data)
        if rc != 0:
            return CALLBACK_ERROR
    else:
        rc = pr.compiled(m, pr.x, P, <double *>params, values, pr.user_data)
        if rc != 0:
            return CALLBACK_ERROR
    residuals_at(s, pr.y, values, pr.w, resid, rows)
    if jac_out != NULL:
        for k in range(n):
            j = s.free_index[k]
            for i in range(m):
                jac_out[i + <Py_ssize_t>k * m] = rows[i] * pr.jacrow[<Py_ssize_t>i * P + j]
    return SUCCESS


cdef double fd_step(FitState *s, int k, const double *params) noexcept nogil:
    """Forward-difference step of free parameter k at ``params`` (s.params, or a trial point
    whose Jacobian is wanted should it be accepted): SQRT_EPS * max(|p_j|, its typical scale).

    The typical scale is FD_SCALE_FRACTION * ||w f|| / D_k (||w f|| ~ sum_j |p_j| D_j), the
    change of p_j that moves the model by a fixed fraction of its size: a parameter near 0 (an
    offset converging to 0) would otherwise get a step of ~1e-21 and a Jacobian column of
    rounding noise. Before the scaling D is known (the first Jacobian) the floor is SQRT_EPS."""
    cdef int l, j = s.free_index[k]
    cdef double model_scale = 0.0, typical, h
    for l in range(s.nfree):
        model_scale += fabs(params[s.free_index[l]]) * s.scale[l]
    h = fabs(params[j])
    if s.scale[k] > 0.0 and model_scale > 0.0:
        typical = FD_SCALE_FRACTION * model_scale / s.scale[k]
        if typical > h:
            h = typical
    h *= SQRT_EPS
    if h == 0.0:
        h = SQRT_EPS
    return h


cdef void fd_column(int m, const double *w, const double *shifted, const double *values,
                    double step, double *column) noexcept nogil:
    """column = w (shifted - values) / step, by the reciprocal of the step (one division per
    column), or by dividing where that reciprocal overflows (a subnormal step: parameters near
    1e-300)."""
    cdef int i
    cdef double inverse = 1.0 / step
    if not isfinite(inverse):
        for i in range(m):
            column[i] = w[i] * (shifted[i] - values[i]) / step
    else:
        for i in range(m):
            column[i] = w[i] * (shifted[i] - values[i]) * inverse


cdef int compiled_jacobian(FitState *s, Problem *pr) noexcept nogil:
    """J at s.params from the compiled Jacobian callable, or forward differences."""
    cdef int m = pr.m, P = s.nparams, i, k, j, rc
    cdef double h, step
    if pr.compiled_jac != NULL:
        rc = pr.compiled_jac(m, pr.x, P, s.params, pr.jacrow, pr.jac_user_data)
        s.nfev += 1
        if rc != 0:
            return CALLBACK_ERROR
        for k in range(s.nfree):
            j = s.free_index[k]
            for i in range(m):
                s.jac[i + <Py_ssize_t>k * m] = s.rows[i] * pr.jacrow[<Py_ssize_t>i * P + j]
        return SUCCESS
    memcpy(pr.fd_params, s.params, <size_t>P * sizeof(double))
    for k in range(s.nfree):
        j = s.free_index[k]
        h = fd_step(s, k, s.params)
        if s.has_bounds and s.params[j] + h > s.upper[j]:
            h = -h
        pr.fd_params[j] = s.params[j] + h
        step = pr.fd_params[j] - s.params[j]
        rc = pr.compiled(m, pr.x, P, pr.fd_params, pr.fd_values, pr.user_data)
        s.nfev += 1
        pr.fd_params[j] = s.params[j]
        if rc != 0:
            return CALLBACK_ERROR
        fd_column(m, s.rows, pr.fd_values, s.values, step, s.jac + <Py_ssize_t>k * m)
    return SUCCESS


cdef void fit_one(FitState *s, Problem *pr) noexcept nogil:
    """Run one dataset to completion (s.params holds the start)."""
    cdef int rc, analytic = pr.kind == KIND_BUILTIN or pr.compiled_both != NULL
    s.trial_has_jac = analytic
    rc = evaluate_point(s, pr, s.params, s.values, s.resid, s.rows,
                        s.jac_trial if analytic else NULL)
    state_begin(s, rc)
    while s.stage != DONE:
        if s.stage == NEED_JACOBIAN:
            if not s.jac_valid:
                if analytic:
                    rc = evaluate_point(s, pr, s.params, s.values, s.resid, s.rows, s.jac)
                    s.nfev += 1
                else:
                    rc = compiled_jacobian(s, pr)
                if rc != SUCCESS:
                    state_fail(s, rc)
                    break
            state_jacobian_ready(s)
        elif s.stage == NEED_TRIAL:
            state_propose(s)
        else:
            rc = evaluate_point(s, pr, s.trial, s.values_trial, s.resid_trial, s.rows_trial,
                                s.jac_trial if analytic else NULL)
            state_assess(s, rc)


cdef struct BatchInput:
    int kind
    model_eval_t builtin
    model_guess_t guess
    model_t compiled
    model_t compiled_jac
    model_jac_t compiled_both
    void *user_data
    void *jac_user_data
    int x_dim
    int m
    int nparams
    int nfree
    const double *x             # (Nx, x_dim, m)
    Py_ssize_t x_stride         # 0 when shared
    const double *Y             # (N, m)
    const double *sigma         # (Ns, m) or NULL
    Py_ssize_t sigma_stride
    const double *p0            # (N, nparams)
    int use_guess
    const double *lower
    const double *upper
    int has_bounds
    const int *free_index
    int method
    int maxiter
    double ftol
    double xtol
    double gtol
    int absolute_sigma
    Estimator est
    double *params_out          # (N, nparams)
    double *cov_out             # (N, nparams, nparams)
    double *stderr_out          # (N, nparams)
    double *cost_out
    double *chi2_out            # Pearson's chi2
    int *dof_out
    int *nit_out
    int *nfev_out
    int *status_out


cdef inline Py_ssize_t problem_size(int m, int x_dim, int nparams) noexcept nogil:
    return <Py_ssize_t>x_dim * m + 2 * m + <Py_ssize_t>m * nparams + nparams + m


cdef void fit_dataset(const BatchInput *inp, Py_ssize_t d, double *scratch) noexcept nogil:
    """Gather dataset d (missing points dropped), fit it, write its outputs."""
    cdef FitState s
    cdef Problem pr
    cdef int m = inp.m, P = inp.nparams, i, r, nvalid = 0, rc, e, shift
    cdef const double *x = inp.x + d * inp.x_stride
    cdef const double *y = inp.Y + d * <Py_ssize_t>m
    cdef const double *sig = inp.sigma + d * inp.sigma_stride if inp.sigma != NULL else NULL
    cdef double *c = scratch
    pr.x = take(&c, <Py_ssize_t>inp.x_dim * m)
    pr.y = take(&c, m)
    pr.w = take(&c, m)
    pr.jacrow = take(&c, <Py_ssize_t>m * P)
    pr.fd_params = take(&c, P)
    pr.fd_values = take(&c, m)
    for i in range(m):
        if isfinite(y[i]):
            for r in range(inp.x_dim):
                pr.x[<Py_ssize_t>r * m + nvalid] = x[<Py_ssize_t>r * m + i]
            pr.y[nvalid] = y[i]
            pr.w[nvalid] = sig[i] if sig != NULL else 1.0     # weights_from_sigma below
            nvalid += 1
    # the x rows were laid out with stride m; compact them to stride nvalid
    if inp.x_dim > 1 and nvalid < m:
        for r in range(1, inp.x_dim):
            for i in range(nvalid):
                pr.x[<Py_ssize_t>r * nvalid + i] = pr.x[<Py_ssize_t>r * m + i]
    pr.m = nvalid
    shift = weights_from_sigma(nvalid, pr.w) if sig != NULL else 0
    # counts are never rescaled (their weights are not multipliers)
    e = data_scale_exponent(nvalid, pr.y, pr.w) if inp.est.kind != COST_POISSON else 0
    if e != 0:
        scale_weights(nvalid, pr.w, e)
    e += shift
    pr.kind = inp.kind
    pr.builtin = inp.builtin
    pr.compiled = inp.compiled
    pr.compiled_jac = inp.compiled_jac
    pr.compiled_both = inp.compiled_both
    pr.user_data = inp.user_data
    pr.jac_user_data = inp.jac_user_data
    pr.x_dim = inp.x_dim
    state_bind(&s, c, nvalid, P, inp.nfree)
    s.n_valid = nvalid
    state_init(&s, inp.method, inp.maxiter, inp.ftol, inp.xtol, inp.gtol, inp.absolute_sigma,
               inp.free_index, inp.lower, inp.upper, inp.has_bounds,
               inp.cov_out + d * P * P, inp.stderr_out + d * P)
    s.data_exponent = e
    use_estimator(&s, inp.est.kind, pr.w)
    s.est.f_scale = ldexp(inp.est.f_scale, -e)
    memcpy(s.params, inp.p0 + d * P, <size_t>P * sizeof(double))
    if nvalid < inp.nfree or nvalid == 0:
        state_fail(&s, SINGULAR)
    else:
        if inp.use_guess:
            rc = inp.guess(nvalid, pr.x, pr.y, P, s.params)
            if rc != 0:
                for i in range(P):
                    s.params[i] = NAN
                state_fail(&s, SINGULAR)
            else:
                clip_to_bounds(&s)
                restore_fixed(&s, inp.p0 + d * P)
        if s.stage != DONE:
            fit_one(&s, &pr)
            if (inp.use_guess and inp.est.kind == COST_POISSON and s.status == NON_FINITE
                    and s.nit == 0):
                poisson_from_least_squares(&s, &pr, inp, d)
    memcpy(inp.params_out + d * P, s.params, <size_t>P * sizeof(double))
    final_costs(&s, pr.y, pr.w, &inp.cost_out[d], &inp.chi2_out[d])
    inp.dof_out[d] = nvalid - inp.nfree
    inp.nit_out[d] = s.nit
    inp.nfev_out[d] = s.nfev
    inp.status_out[d] = s.status


cdef void restart(FitState *s, const BatchInput *inp, Py_ssize_t d, int estimator,
                  double *w) noexcept nogil:
    """A fresh iteration state from the current params, minimising ``estimator`` with the
    weights ``w``."""
    state_init(s, inp.method, inp.maxiter, inp.ftol, inp.xtol, inp.gtol, inp.absolute_sigma,
               inp.free_index, inp.lower, inp.upper, inp.has_bounds,
               inp.cov_out + d * inp.nparams * inp.nparams, inp.stderr_out + d * inp.nparams)
    use_estimator(s, estimator, w)


cdef void poisson_from_least_squares(FitState *s, Problem *pr, const BatchInput *inp,
                                     Py_ssize_t d) noexcept nogil:
    """A guess made for least squares can put the Poisson mean at or below 0 where there are
    counts (a negative offset), where the likelihood is 0: fit least squares with Neyman
    weights 1/sqrt(max(y, 1)) from the guess first, then the likelihood from there."""
    cdef int i, nit = s.nit, nfev = s.nfev
    for i in range(pr.m):
        pr.w[i] = 1.0 / sqrt(fmax(pr.y[i], 1.0))
    restart(s, inp, d, COST_CHI2, pr.w)
    fit_one(s, pr)
    nit += s.nit
    nfev += s.nfev
    for i in range(pr.m):
        pr.w[i] = 1.0
    restart(s, inp, d, COST_POISSON, pr.w)
    fit_one(s, pr)
    s.nit += nit
    s.nfev += nfev


cdef void no_memory_output(const BatchInput *inp, Py_ssize_t d) noexcept nogil:
    cdef Py_ssize_t P = inp.nparams, k
    for k in range(P):
        inp.params_out[d * P + k] = NAN
    for k in range(P * P):
        inp.cov_out[d * P * P + k] = NAN
    for k in range(P):
        inp.stderr_out[d * P + k] = NAN
    inp.cost_out[d] = NAN
    inp.chi2_out[d] = NAN
    inp.dof_out[d] = 0
    inp.nit_out[d] = 0
    inp.nfev_out[d] = 0
    inp.status_out[d] = NON_FINITE


cdef void clip_to_bounds(FitState *s) noexcept nogil:
    cdef int j
    if not s.has_bounds:
        return
    for j in range(s.nparams):
        if s.params[j] < s.lower[j]:
            s.params[j] = s.lower[j]
        elif s.params[j] > s.upper[j]:
            s.params[j] = s.upper[j]


cdef void restore_fixed(FitState *s, const double *p0) noexcept nogil:
    """Fixed parameters keep their p0 value when the rest comes from a guess (p0 NaN = keep)."""
    cdef int j, k, free
    for j in range(s.nparams):
        free = 0
        for k in range(s.nfree):
            if s.free_index[k] == j:
                free = 1
        if not free and isfinite(p0[j]):
            s.params[j] = p0[j]


def fit_compiled(int kind, int model_id, object model, object model_jac,
                 const double[:, ::1] x, int x_dim, const double[:, ::1] Y, object sigma,
                 const double[:, ::1] p0, bint use_guess, const double[::1] lower,
                 const double[::1] upper, bint has_bounds, const int[::1] free_index,
                 int method, int maxiter, double ftol, double xtol, double gtol,
                 bint absolute_sigma, int estimator, double f_scale, Py_ssize_t start,
                 Py_ssize_t stop, object n_threads, double[:, ::1] params_out,
                 double[:, :, ::1] cov_out, double[:, ::1] stderr_out, double[::1] cost_out,
                 double[::1] chi2_out, int[::1] dof_out, int[::1] nit_out, int[::1] nfev_out,
                 int[::1] status_out):
    """Fit datasets start..stop-1 of a built-in (kind 0) or compiled (kind 1: a UserFunction of
    role "model", or "model_jac" writing its own Jacobian) model in parallel.

    x is (1 or N, x_dim*m) (shared or per dataset), Y (N, m) with NaN for missing points, sigma
    None or (1 or N, m), p0 (N, nparams) (ignored for free parameters when use_guess);
    ``estimator`` and ``f_scale`` say what is minimised (fastcalc.fitting._estimator).
    """
    cdef BatchInput inp
    cdef ModelKernel kernel
    cdef UserFunction fn, jac_fn
    cdef const double[:, ::1] sigma_view
    cdef int nt = resolve_threads(n_threads)
    cdef Py_ssize_t d, size, P = p0.shape[1], m = Y.shape[1]
    cdef double *scratch
    inp.kind = kind
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
    inp.x_dim = x_dim
    inp.m = <int>m
    inp.nparams = <int>P
    inp.nfree = <int>free_index.shape[0]
    inp.x = &x[0, 0]
    inp.x_stride = x.shape[1] if x.shape[0] > 1 else 0
    inp.Y = &Y[0, 0]
    if sigma is None:
        inp.sigma = NULL
        inp.sigma_stride = 0
    else:
        sigma_view = sigma
        inp.sigma = &sigma_view[0, 0]
        inp.sigma_stride = m if sigma_view.shape[0] > 1 else 0
    inp.p0 = &p0[0, 0]
    inp.use_guess = use_guess
    inp.lower = &lower[0]
    inp.upper = &upper[0]
    inp.has_bounds = has_bounds
    inp.free_index = &free_index[0] if free_index.shape[0] > 0 else NULL
    inp.method = method
    inp.maxiter = maxiter
    inp.ftol = ftol
    inp.xtol = xtol
    inp.gtol = gtol
    inp.absolute_sigma = absolute_sigma
    inp.est.kind = estimator
    inp.est.f_scale = f_scale
    inp.params_out = &params_out[0, 0]
    inp.cov_out = &cov_out[0, 0, 0]
    inp.stderr_out = &stderr_out[0, 0]
    inp.cost_out = &cost_out[0]
    inp.chi2_out = &chi2_out[0]
    inp.dof_out = &dof_out[0]
    inp.nit_out = &nit_out[0]
    inp.nfev_out = &nfev_out[0]
    inp.status_out = &status_out[0]
    if inp.use_guess and inp.guess == NULL:
        raise ValueError("this model has no initial guess; give p0")
    size = problem_size(inp.m, x_dim, inp.nparams) + state_size(inp.m, inp.nparams, inp.nfree) + 8
    if stop - start < 2 * nt:
        nt = 1
    # Sub-chunks, with a check for signals (Ctrl-C) between them. The datasets are independent,
    # so the sub-chunk boundaries do not change any result. A sub-chunk starts at one dataset
    # per thread and doubles while it takes under SIGNAL_CHECK_SECONDS.
    cdef Py_ssize_t lo = start, hi, chunk = nt
    cdef double began
    while lo < stop:
        hi = lo + chunk if stop - lo > chunk else stop
        began = perf_counter()
        with nogil, parallel(num_threads=nt):
            scratch = <double *>malloc(size * sizeof(double))
            for d in prange(lo, hi, schedule="static"):
                if scratch == NULL:          # out of memory: an honest failure, never garbage
                    no_memory_output(&inp, d)
                else:
                    fit_dataset(&inp, d, scratch)
            free(scratch)
        PyErr_CheckSignals()
        lo = hi
        if perf_counter() - began < SIGNAL_CHECK_SECONDS and chunk < MAX_SIGNAL_CHUNK:
            chunk *= 2


# ---------------------------------------------------------------------------------------------
# Python-model driver: datasets advance in lock step, the model is called once per round.

def fit_python(object evaluate, object jacobian, const double[:, ::1] Y, double[:, ::1] W,
               const double[:, ::1] p0, const double[::1] lower, const double[::1] upper,
               bint has_bounds, const int[::1] free_index, int method, int maxiter,
               double ftol, double xtol, double gtol, bint absolute_sigma, int estimator,
               double f_scale, bint fd_in_one_call,
               double[:, ::1] params_out, double[:, :, ::1] cov_out, double[:, ::1] stderr_out,
               double[::1] cost_out,
               double[::1] chi2_out, int[::1] dof_out, int[::1] nit_out, int[::1] nfev_out,
               int[::1] status_out):
    """Fit K datasets of a Python model in lock step.

    evaluate(params (a, P), rows (a,)) -> (a, m) model values for the datasets ``rows``;
    jacobian(params, rows) -> (a, P, m), or None for forward differences (_fd_jacobians: one
    evaluate call per free parameter; with ``fd_in_one_call`` _points_with_jacobians: the
    columns come from the call evaluating the point, one call per round). Y (K, m) holds
    any finite value at missing points. W (K, m) holds sigma (1 where none is given) at the valid
    points and 0 at the missing ones; it is turned into the weights 1/sigma in place, divided
    by a power of two for a tiny sigma (weights_from_sigma) or data of unusual scale
    (data_scale_exponent).
    Exceptions raised by the callables propagate.
    """
    cdef Py_ssize_t K = Y.shape[0], m = Y.shape[1], P = p0.shape[1], d, a, i, k, j, na
    cdef int n = <int>free_index.shape[0], nvalid, rc, shift
    cdef Py_ssize_t size = state_size(<int>m, <int>P, n) + 8
    cdef double *blocks = <double *>malloc(<size_t>(K * size) * sizeof(double))
    cdef FitState *states = <FitState *>malloc(<size_t>(K if K > 0 else 1) * sizeof(FitState))
    cdef FitState *s
    cdef const double[:, ::1] vals
    cdef const double[:, :, ::1] jvals
    cdef Py_ssize_t[::1] rview
    # finite differences from the call that evaluates the point (_points_with_jacobians)
    cdef bint speculative = jacobian is None and fd_in_one_call and n > 0
    if blocks == NULL or states == NULL:
        free(blocks)
        free(states)
        raise MemoryError()
    try:
        for d in range(K):
            s = &states[d]
            state_bind(s, blocks + d * size, <int>m, <int>P, n)
            nvalid = 0
            for i in range(m):
                if W[d, i] != 0.0:
                    nvalid += 1
            s.n_valid = nvalid
            state_init(s, method, maxiter, ftol, xtol, gtol, absolute_sigma,
                       &free_index[0] if n > 0 else NULL, &lower[0], &upper[0], has_bounds,
                       &cov_out[d, 0, 0], &stderr_out[d, 0])
            use_estimator(s, estimator, &W[d, 0])
            shift = weights_from_sigma(<int>m, &W[d, 0])
            if estimator != COST_POISSON:     # counts are never rescaled
                s.data_exponent = data_scale_exponent(<int>m, &Y[d, 0], &W[d, 0])
            if s.data_exponent != 0:
                scale_weights(<int>m, &W[d, 0], s.data_exponent)
            s.data_exponent += shift
            s.est.f_scale = ldexp(f_scale, -s.data_exponent)
            for j in range(P):
                s.params[j] = p0[d, j]
            if nvalid < n or nvalid == 0:
                state_fail(s, SINGULAR)
        rows = _rows_at(states, K, NEED_JACOBIAN)
        if rows.shape[0] and speculative:
            _points_with_jacobians(evaluate, states, rows, m, P, n, free_index, upper,
                                   has_bounds, Y, W, True)
        elif rows.shape[0]:
            rview = rows
            vals = _values(evaluate, _gather(states, rows, P, 0), rows, m)
            with nogil:
                for a in range(rview.shape[0]):
                    s = &states[rview[a]]
                    rc = _residuals(s, &vals[a, 0], &Y[rview[a], 0], &W[rview[a], 0], s.values,
                                    s.resid, s.rows)
                    state_begin(s, rc)
        while True:
            # 1. Jacobians where a step was accepted (or at the start).
            rows = _rows_at(states, K, NEED_JACOBIAN)
            rview = rows
            na = rview.shape[0]
            if na:
                params = _gather(states, rows, P, 0)
                if jacobian is not None:
                    jvals = _jacobian_values(jacobian, params, rows, m, P)
                    with nogil:
                        for a in range(na):
                            s = &states[rview[a]]
                            s.nfev += 1
                            for k in range(n):
                                j = free_index[k]
                                for i in range(m):
                                    s.jac[i + k * m] = s.rows[i] * jvals[a, j, i]
                            state_jacobian_ready(s)   # while this J is in cache
                else:
                    _fd_jacobians(evaluate, states, params, rows, m, n, free_index, upper,
                                  has_bounds, W, fd_in_one_call)
            # 2. Proposals.
            with nogil:
                for d in range(K):
                    if states[d].stage == NEED_TRIAL:
                        state_propose(&states[d])
            # 3. One model call for every trial point.
            rows = _rows_at(states, K, NEED_VALUES)
            rview = rows
            na = rview.shape[0]
            if na == 0:
                if _rows_at(states, K, DONE).shape[0] == K:
                    break
                continue
            if speculative:
                _points_with_jacobians(evaluate, states, rows, m, P, n, free_index, upper,
                                       has_bounds, Y, W, False)
                continue
            vals = _values(evaluate, _gather(states, rows, P, 1), rows, m)
            with nogil:
                for a in range(na):
                    s = &states[rview[a]]
                    rc = _residuals(s, &vals[a, 0], &Y[rview[a], 0], &W[rview[a], 0],
                                    s.values_trial, s.resid_trial, s.rows_trial)
                    state_assess(s, rc)
        for d in range(K):
            s = &states[d]
            for j in range(P):
                params_out[d, j] = s.params[j]
            final_costs(s, &Y[d, 0], &W[d, 0], &cost_out[d], &chi2_out[d])
            dof_out[d] = s.n_valid - n
            nit_out[d] = s.nit
            nfev_out[d] = s.nfev
            status_out[d] = s.status
    finally:
        free(blocks)
        free(states)


cdef void _fd_jacobians(object evaluate, FitState *states, object params, object rows,
                        Py_ssize_t m, int n, const int[::1] free_index, const double[::1] upper,
                        bint has_bounds, const double[:, ::1] W, bint in_one_call) except *:
    """Forward-difference Jacobians of datasets `rows`, each handed to state_jacobian_ready
    while it is in cache. One model call per free parameter, or with `in_one_call` one call on
    n*a points (rows k*a..(k+1)*a shift free parameter k): fewer, larger calls, and every
    dataset gets exactly the columns the per-parameter calls give."""
    cdef Py_ssize_t[::1] rview = rows
    cdef Py_ssize_t na = rview.shape[0], a, i, k, kk, r
    cdef int j, first, count, block = n if in_one_call else 1
    cdef FitState *s
    cdef double h
    cdef double[:, ::1] sview
    cdef double[::1] hview
    cdef const double[:, ::1] vals
    cdef const double[:, ::1] pview = params
    if n == 0:
        # no free parameter: J has no columns, but the state still needs its Jacobian step
        # (which finishes it), or the lock-step loop would wait for it forever
        for a in range(na):
            state_jacobian_ready(&states[rview[a]])
        return
    for first in range(0, n, block):
        count = block if first + block <= n else n - first
        shifted = np.tile(params, (count, 1))
        sview = shifted
        steps = np.empty(count * na)
        hview = steps
        with nogil:
            for kk in range(count):
                j = free_index[first + kk]
                for a in range(na):
                    r = kk * na + a
                    h = fd_step(&states[rview[a]], <int>(first + kk), states[rview[a]].params)
                    if has_bounds and pview[a, j] + h > upper[j]:
                        h = -h
                    sview[r, j] = pview[a, j] + h
                    hview[r] = sview[r, j] - pview[a, j]    # the step actually taken
        vals = _values(evaluate, shifted, np.tile(rows, count) if count > 1 else rows, m)
        with nogil:
            for a in range(na):
                s = &states[rview[a]]
                s.nfev += count
                for kk in range(count):
                    k = first + kk
                    r = kk * na + a
                    # a missing point's weight is 0 (its value may be anything finite or not)
                    fd_column(<int>m, s.rows, &vals[r, 0], s.values, hview[r],
                              s.jac + k * m)
                    for i in range(m):
                        if W[rview[a], i] == 0.0:
                            s.jac[i + k * m] = 0.0
                if first + count == n:
                    state_jacobian_ready(s)


cdef void _points_with_jacobians(object evaluate, FitState *states, object rows, Py_ssize_t m,
                                 Py_ssize_t P, int n, const int[::1] free_index,
                                 const double[::1] upper, bint has_bounds,
                                 const double[:, ::1] Y, const double[:, ::1] W,
                                 bint start) except *:
    """One model call for the trial points of datasets ``rows`` (``start``: their starting
    points) with, stacked below them, the forward-difference points of each free parameter
    there (rows (k+1)*a..(k+2)*a shift free parameter k). The first a rows go to state_assess
    (state_begin); a dataset that moves to its trial point (or starts) gets its Jacobian from
    the same call: the columns _fd_jacobians would compute after the step, as the shifts depend
    only on the point and the scaling, which accepting a step does not change. One Python call
    per round instead of two; a rejected trial wastes its n shifted evaluations."""
    cdef Py_ssize_t[::1] rview = rows
    cdef Py_ssize_t na = rview.shape[0], a, d, i, k, r, jj
    cdef int j, rc
    cdef FitState *s
    cdef const double *src
    cdef double h
    points = np.empty(((n + 1) * na, P))
    steps = np.empty(n * na)
    cdef double[:, ::1] pview = points
    cdef double[::1] hview = steps
    cdef const double[:, ::1] vals
    with nogil:
        for k in range(n + 1):
            for a in range(na):
                s = &states[rview[a]]
                src = s.params if start else s.trial
                r = k * na + a
                for jj in range(P):
                    pview[r, jj] = src[jj]
                if k == 0:
                    continue
                j = free_index[k - 1]
                h = fd_step(s, <int>(k - 1), src)
                if has_bounds and src[j] + h > upper[j]:
                    h = -h
                pview[r, j] = src[j] + h
                hview[(k - 1) * na + a] = pview[r, j] - src[j]     # the step actually taken
    vals = _values(evaluate, points, np.tile(rows, n + 1), m)
    with nogil:
        for a in range(na):
            d = rview[a]
            s = &states[d]
            if start:
                rc = _residuals(s, &vals[a, 0], &Y[d, 0], &W[d, 0], s.values, s.resid, s.rows)
                state_begin(s, rc)
            else:
                rc = _residuals(s, &vals[a, 0], &Y[d, 0], &W[d, 0], s.values_trial,
                                s.resid_trial, s.rows_trial)
                state_assess(s, rc)
            s.nfev += n
            if s.stage != NEED_JACOBIAN or s.jac_valid:
                continue
            for k in range(n):
                # a missing point's weight is 0 (its value may be anything finite or not)
                fd_column(<int>m, s.rows, &vals[(k + 1) * na + a, 0], s.values,
                          hview[k * na + a], s.jac + k * m)
                for i in range(m):
                    if W[d, i] == 0.0:
                        s.jac[i + k * m] = 0.0
            state_jacobian_ready(s)     # while this J is in cache


cdef object _rows_at(FitState *states, Py_ssize_t K, int stage):
    """Indices of the datasets at `stage`."""
    cdef Py_ssize_t d, count = 0
    out = np.empty(K, dtype=np.intp)
    cdef Py_ssize_t[::1] view = out
    for d in range(K):
        if states[d].stage == stage:
            view[count] = d
            count += 1
    return out[:count]


cdef object _gather(FitState *states, object rows, Py_ssize_t P, bint trial):
    """Current (or trial) parameters of datasets `rows` as an (a, P) array."""
    cdef Py_ssize_t[::1] rview = rows
    cdef Py_ssize_t a, j
    out = np.empty((rview.shape[0], P), dtype=np.float64)
    cdef double[:, ::1] view = out
    cdef double *src
    for a in range(rview.shape[0]):
        src = states[rview[a]].trial if trial else states[rview[a]].params
        for j in range(P):
            view[a, j] = src[j]
    return out


cdef int _residuals(FitState *s, const double *vals, const double *y, const double *w,
                    double *values, double *resid, double *rows) noexcept nogil:
    """Copy a model call's values into the state, then residuals_at. A missing point's value
    (of weight 0) may be anything, NaN included: it is replaced by y, so its residual is 0."""
    cdef int i
    for i in range(s.m):
        values[i] = vals[i] if w[i] != 0.0 else y[i]
    residuals_at(s, y, values, w, resid, rows)
    return SUCCESS


def _values(evaluate, params, rows, Py_ssize_t m):
    values = np.asarray(evaluate(params, rows), dtype=np.float64)
    shape = (len(rows), m)
    if values.shape != shape:
        values = np.broadcast_to(values, shape)
    return np.ascontiguousarray(values)


def _jacobian_values(jacobian, params, rows, Py_ssize_t m, Py_ssize_t P):
    values = np.asarray(jacobian(params, rows), dtype=np.float64)
    shape = (len(rows), P, m)
    if values.shape != shape:
        values = np.broadcast_to(values, shape)
    return np.ascontiguousarray(values)


# ---------------------------------------------------------------------------------------------
# Test hooks for the hand-written linear algebra.

def _householder_lstsq(A, b):
    """Least squares by the Householder QR used in the kernels (for tests against LAPACK)."""
    cdef double[::1, :] a = np.array(A, dtype=np.float64, order="F")
    cdef double[::1] rhs = np.array(b, dtype=np.float64)
    cdef int rows = a.shape[0], cols = a.shape[1]
    out = np.zeros(cols)
    cdef double[::1] x = out
    householder_triangularize(rows, cols, &a[0, 0], rows, &rhs[0])
    solve_upper(cols, &a[0, 0], rows, &rhs[0], &x[0])
    return out


def _cholesky_solve(A, b):
    """Solve A x = b by the kernels' Cholesky (None when the pivot test rejects A)."""
    cdef double[::1, :] a = np.array(A, dtype=np.float64, order="F")
    cdef double[::1] rhs = np.array(b, dtype=np.float64)
    cdef int n = a.shape[0]
    out = np.zeros(n)
    cdef double[::1] x = out
    if cholesky(n, &a[0, 0], n) != 0:
        return None
    cholesky_solve(n, &a[0, 0], n, &rhs[0], &x[0])
    return out


def evaluate_model(int kind, int model_id, object model, const double[:, ::1] x, int x_dim,
                   const double[:, ::1] params, Py_ssize_t m):
    """Values (N, m) of a built-in (kind 0) or compiled (kind 1) model for each row of params;
    x is (1 or N, x_dim*m). A row whose model fails is NaN."""
    cdef Py_ssize_t N = params.shape[0], P = params.shape[1], d, i
    cdef Py_ssize_t x_stride = x.shape[1] if x.shape[0] > 1 else 0
    cdef ModelKernel kernel
    cdef model_eval_t builtin = NULL
    cdef model_t compiled = NULL
    cdef model_jac_t compiled_both = NULL
    cdef void *user_data = NULL
    cdef UserFunction fn
    cdef int rc
    out = np.empty((N, m), dtype=np.float64)
    cdef double[:, ::1] view = out
    if kind == KIND_BUILTIN:
        kernel = model_kernel(model_id, <int>P)
        builtin = kernel.evaluate
    else:
        fn = <UserFunction?>model
        if fn.signature == "model_jac":
            compiled_both = <model_jac_t>fn.c_function
        else:
            compiled = <model_t>fn.c_function
        user_data = fn.user_data
    if m == 0:
        return out
    with nogil:
        for d in range(N):
            if builtin != NULL:
                rc = builtin(<int>m, &x[0, 0] + d * x_stride, <int>P, &params[d, 0],
                             &view[d, 0], NULL)
            elif compiled_both != NULL:
                rc = compiled_both(<int>m, <double *>&x[0, 0] + d * x_stride, <int>P,
                                   <double *>&params[d, 0], &view[d, 0], NULL, user_data)
            else:
                rc = compiled(<int>m, <double *>&x[0, 0] + d * x_stride, <int>P,
                              <double *>&params[d, 0], &view[d, 0], user_data)
            if rc != 0:
                for i in range(m):
                    view[d, i] = NAN
    return out

