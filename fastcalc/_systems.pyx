"""Kernels for systems ``F(x) = 0``, ``x`` in R^n: damped Newton-Raphson and Powell's dogleg.

Two methods, one system at a time (``noexcept nogil``), threads over the systems of a batch:

* Newton (``solve_newton_system``): ``J s = -F`` by LAPACK ``dgesv``, backtracking ``x + t s``
  on ``||F||^2``; a singular Jacobian ends the solve (status 2).
* Dogleg trust region (``Trust`` and ``trust_*``): MINPACK's hybrj (More, Garbow, Hillstrom
  1980; SciPy's ``root(method="hybr")``) with a fresh Jacobian after every accepted step instead
  of Broyden's rank-one updates. Each step minimises the linear model ``||F + J s||`` within
  ``||D s|| <= delta`` (D: the largest column norms of J seen) along Powell's dogleg between
  the steepest-descent and Gauss-Newton steps; ``delta`` follows the ratio of actual to
  predicted reduction of ``||F||``. The Gauss-Newton and steepest-descent steps are formed once
  per Jacobian (LU by ``dgesv``; MINPACK's QR gives the same steps), so a rejected step costs
  O(n). A singular or ill-conditioned J does not end the solve: zero pivots become tiny, the
  Gauss-Newton step long, and the dogleg turns to steepest descent (or, at a stationary point
  of ``||F||`` with singular J, follows the null direction to the region's edge).

The trust region's per-system algorithm is written once (``trust_start``, ``trust_factor``,
``trust_propose``, ``trust_assess``) and driven by the compiled loop (``solve_trust_system``) and
by ``TrustRegionBatch``, which the Python driver in ``roots.py`` feeds with F and J values.

Status 0 needs evidence: ``max|F| <= ftol``, or a full Gauss-Newton (Newton) step below
``tol + rtol * max|x|`` -- it estimates the distance to a root where J is regular, and is
long where J is (nearly) singular away from a root. Kernel-only codes, reported by the
wrapper as status 2 with their own messages: NO_DESCENT (no Newton step decreases ``||F||``)
and STALLED (the trust region shrank to rounding level, or ten steps in a row reduced
``||F||`` by under 0.1%: a stationary point of ``||F||`` that is no root). Results never
depend on the thread count.
"""
import numpy as np
from cython.parallel cimport parallel, prange, threadid
from libc.math cimport fabs, fmax, fmin, sqrt, isfinite
from libc.stdlib cimport malloc, free
from scipy.linalg.cython_lapack cimport dgesv, dgetrs

from fastcalc._evaluate cimport UserFunction, vector_field_t
from fastcalc._interrupt cimport flag_read, interrupted, raise_pending_error
from fastcalc._parallel cimport resolve_threads
from fastcalc._status_codes cimport SUCCESS, MAX_ITERATIONS, SINGULAR, NON_FINITE

cdef enum:
    RUNNING = -1
    NO_DESCENT_CODE = -2
    STALLED_CODE = -3
    SIGNAL_SYSTEM_ROUNDS = 256  # iterations between two checks for Ctrl-C

NO_DESCENT = NO_DESCENT_CODE
STALLED = STALLED_CODE

cdef double EPS = 2.220446049250313e-16
cdef double FD_FACTOR = 6.055454452393343e-06     # cbrt(eps): optimal relative step, central FD
# MINPACK's initial trust radius: FACTOR ||D x0|| (FACTOR if x0 = 0).
cdef double INITIAL_FACTOR = 100.0


cdef struct SystemSettings:
    double tol, rtol, ftol
    int maxiter
    int n


# Small vector helpers.
# --------------------------------------------------------------------------------------------
cdef inline double half_norm2(const double *v, int n) noexcept nogil:
    cdef double total = 0.0
    cdef int i
    for i in range(n):
        total += v[i] * v[i]
    return 0.5 * total


cdef inline double norm2(const double *v, int n) noexcept nogil:
    return sqrt(2.0 * half_norm2(v, n))


cdef inline double scaled_norm2(const double *d, const double *v, int n) noexcept nogil:
    cdef double total = 0.0
    cdef int i
    for i in range(n):
        total += (d[i] * v[i]) * (d[i] * v[i])
    return sqrt(total)


cdef inline double norm_inf(const double *v, int n) noexcept nogil:
    cdef double m = 0.0
    cdef int i
    for i in range(n):
        if fabs(v[i]) > m or v[i] != v[i]:
            m = fabs(v[i])
    return m


cdef inline bint all_finite(const double *v, int n) noexcept nogil:
    cdef int i
    for i in range(n):
        if not isfinite(v[i]):
            return False
    return True


cdef inline double fd_step(double x) noexcept nogil:
    """Central-difference step ~ cbrt(eps) max(1, |x|), made exactly representable around x
    (the rule of _roots.fd_step and of the Python driver's finite differences)."""
    cdef double h = FD_FACTOR * fmax(1.0, fabs(x))
    cdef volatile double xh = x + h
    return xh - x


cdef inline int evaluate_field(vector_field_t F, void *data, int n, double *x,
                               double *out) noexcept nogil:
    """F(x) into out; non-zero return or non-finite values give 1."""
    if F(n, x, n, out, data) != 0:
        return 1
    return 0 if all_finite(out, n) else 1


cdef inline int jacobian_at(vector_field_t F, void *F_data, vector_field_t J, void *J_data,
                            int n, double *x, double *jac, double *scratch,
                            int *nfev) noexcept nogil:
    """The Jacobian at x into jac, column-major (LAPACK's order): J's row-major values, or
    central differences (2 n evaluations of F) when J is NULL. scratch holds n^2 + 2 n doubles.
    Returns 0, or 1 for a failed or non-finite evaluation."""
    cdef int i, j, info
    cdef double h, saved
    cdef double *plus = scratch
    cdef double *minus = scratch + n
    if J == NULL:
        for j in range(n):
            saved = x[j]
            h = fd_step(saved)
            x[j] = saved + h
            info = evaluate_field(F, F_data, n, x, plus)
            x[j] = saved - h
            info += evaluate_field(F, F_data, n, x, minus)
            x[j] = saved
            nfev[0] += 2
            if info != 0:
                return 1
            for i in range(n):
                jac[i + j * n] = (plus[i] - minus[i]) / (2.0 * h)
        return 0
    nfev[0] += 1
    if J(n, x, n * n, scratch, J_data) != 0 or not all_finite(scratch, n * n):
        return 1
    for i in range(n):
        for j in range(n):
            jac[i + j * n] = scratch[i * n + j]
    return 0


# Newton-Raphson with backtracking.
# --------------------------------------------------------------------------------------------
cdef inline int solve_newton_system(
        vector_field_t F, void *F_data, vector_field_t J, void *J_data,
        const SystemSettings *s, double *x, double *fx, double *work, int *ipiv,
        int *nit_out, int *nfev_out, int *stop_flag, bint calling_thread) noexcept nogil:
    """Solve one system F(x) = 0 in place from x; return its status.

    work holds 2 n^2 + 5 n doubles: the column-major Jacobian (factored by dgesv), the
    Jacobian's scratch, the step, the trial point and F there.
    """
    cdef int n = s.n, i, info, one = 1, nit = 0, nfev = 1, halvings, status = SUCCESS
    cdef double *jac = work
    cdef double *scratch = work + n * n
    cdef double *step = scratch + n * n + 2 * n
    cdef double *trial = step + n
    cdef double *ftrial = trial + n
    cdef double phi, phi_trial, t, step_norm
    if evaluate_field(F, F_data, n, x, fx) != 0:
        nit_out[0] = 0
        nfev_out[0] = 1
        return NON_FINITE
    phi = half_norm2(fx, n)
    while True:
        if norm_inf(fx, n) <= s.ftol:
            break
        if nit >= s.maxiter or (nit % SIGNAL_SYSTEM_ROUNDS == SIGNAL_SYSTEM_ROUNDS - 1
                                and interrupted(stop_flag, calling_thread)):
            status = MAX_ITERATIONS
            break
        if jacobian_at(F, F_data, J, J_data, n, x, jac, scratch, &nfev) != 0:
            status = NON_FINITE
            break
        for i in range(n):
            step[i] = -fx[i]
        dgesv(&n, &one, jac, &n, ipiv, step, &n, &info)
        if info != 0 or not all_finite(step, n):
            status = SINGULAR
            break
        # Backtracking on ||F||^2 (Armijo, the Newton direction is a descent direction).
        t = 1.0
        halvings = 0
        while True:
            for i in range(n):
                trial[i] = x[i] + t * step[i]
            nfev += 1
            if evaluate_field(F, F_data, n, trial, ftrial) == 0:
                phi_trial = half_norm2(ftrial, n)
                if phi_trial <= (1.0 - 2e-4 * t) * phi:
                    break
            halvings += 1
            if halvings > 40:
                break
            t *= 0.5
        nit += 1
        if halvings > 40:
            # No decrease along the Newton direction: a local minimum of ||F|| that is no root.
            status = NO_DESCENT_CODE
            break
        # The full Newton step, not the damped t * step: near a minimum of ||F|| that is no
        # root, the step is large but t * step tiny, and that must not count as convergence.
        step_norm = norm_inf(step, n)
        for i in range(n):
            x[i] = trial[i]
            fx[i] = ftrial[i]
        phi = phi_trial
        if step_norm <= s.tol + s.rtol * norm_inf(x, n):
            break
    nit_out[0] = nit
    nfev_out[0] = nfev
    return status


# Dogleg trust region: one system's state and the four steps of its iteration.
# --------------------------------------------------------------------------------------------
cdef struct Trust:
    double delta        # trust radius, on D s
    double fnorm        # ||F(x)||
    double xnorm        # ||D x||
    double qnorm        # ||D p|| of the Gauss-Newton step p (J p = F; the step is -p)
    double gnorm        # ||D^-1 J^T F||, the scaled gradient of ||F||^2 / 2
    double sgnorm       # length (in D) of the Cauchy step along it
    double pnorm        # ||D s|| of the proposed step
    double linear_norm  # ||F + J s||, the model's prediction for the proposed step
    int ncsuc, ncfail, nslow, nit
    int status
    bint scaled         # D and delta set (at the first Jacobian)
    bint first          # no step accepted yet (delta is cut to the first step's length)
    bint need_jacobian
    bint closing        # the proposed step is a Gauss-Newton step below the tolerance
    bint have_descent   # A.sd, A.jsd, gnorm, sgnorm are those of the current Jacobian

# One system's arrays (n each unless said): x, F(x), the Jacobian (n^2, column-major), its LU
# factors (n^2) and pivots, the Gauss-Newton step p and J p, the steepest-descent direction
# (scaled: D^-2 J^T F / ||D^-1 J^T F||) and J times it, D, the step, the trial point.
cdef struct TrustArrays:
    double *x
    double *fx
    double *jac
    double *lu
    int *ipiv
    double *gn
    double *jgn
    double *sd
    double *jsd
    double *diag
    double *step
    double *trial


cdef inline void trust_start(Trust *T, const TrustArrays *A,
                             const SystemSettings *s) noexcept nogil:
    """State at x0 (F(x0) in A.fx)."""
    T.delta = T.xnorm = T.pnorm = T.linear_norm = T.qnorm = T.gnorm = T.sgnorm = 0.0
    T.ncsuc = T.ncfail = T.nslow = T.nit = 0
    T.scaled = T.closing = T.have_descent = False
    T.first = T.need_jacobian = True
    T.fnorm = norm2(A.fx, s.n)
    if not all_finite(A.fx, s.n):
        T.status = NON_FINITE
    elif norm_inf(A.fx, s.n) <= s.ftol:
        T.status = SUCCESS
    elif s.maxiter <= 0:
        T.status = MAX_ITERATIONS
    else:
        T.status = RUNNING


cdef inline void matvec(int n, const double *a, const double *v, double *out) noexcept nogil:
    """out = A v, A column-major n x n."""
    cdef int i, j
    for i in range(n):
        out[i] = 0.0
    for j in range(n):
        for i in range(n):
            out[i] += a[i + j * n] * v[j]


cdef inline void trust_factor(Trust *T, const TrustArrays *A,
                              const SystemSettings *s) noexcept nogil:
    """From the Jacobian at x (A.jac, column-major): D (the largest column norms of J so far, 1
    for a zero column: MINPACK's mode 1) and the Gauss-Newton step (the steepest-descent
    direction follows when needed). Neither depends on delta, so a rejected step costs the
    next proposal O(n)."""
    cdef int n = s.n, i, j, one = 1, info
    cdef double c, pivot
    for j in range(n):
        c = norm2(A.jac + j * n, n)
        if not T.scaled:
            A.diag[j] = c if c != 0.0 else 1.0
        else:
            A.diag[j] = fmax(A.diag[j], c)
    if not T.scaled:
        T.xnorm = scaled_norm2(A.diag, A.x, n)
        T.delta = INITIAL_FACTOR * T.xnorm if T.xnorm != 0.0 else INITIAL_FACTOR
        T.scaled = True
    T.have_descent = False
    # Gauss-Newton step J p = F by LU (one dgesv call: OpenBLAS's dgetrf + dgetrs cost twice
    # its overhead, which dominates at n = 2). An exactly zero pivot (dgesv stops before the
    # solve) becomes eps times its column's largest entry of U (or eps), as MINPACK does with
    # R's diagonal, so a singular J gives a long step (along its null space: at a saddle of
    # ||F|| that is the way out), never a failure.
    for i in range(n * n):
        A.lu[i] = A.jac[i]
    for i in range(n):
        A.gn[i] = A.fx[i]
    dgesv(&n, &one, A.lu, &n, A.ipiv, A.gn, &n, &info)
    if info > 0:
        for j in range(n):
            if A.lu[j + j * n] == 0.0:
                pivot = 0.0
                for i in range(j + 1):
                    pivot = fmax(pivot, fabs(A.lu[i + j * n]))
                A.lu[j + j * n] = EPS * pivot if pivot != 0.0 else EPS
        for i in range(n):
            A.gn[i] = A.fx[i]
        dgetrs(b"N", &n, &one, A.lu, &n, A.ipiv, A.gn, &n, &info)
        matvec(n, A.jac, A.gn, A.jgn)
    else:
        for i in range(n):      # J p = F up to rounding
            A.jgn[i] = A.fx[i]
    T.qnorm = scaled_norm2(A.diag, A.gn, n)
    if not isfinite(T.qnorm):       # overflow: a step of infinite length
        for i in range(n):
            A.gn[i] = A.jgn[i] = 0.0
    T.need_jacobian = False


cdef inline void steepest_descent(Trust *T, const TrustArrays *A, int n) noexcept nogil:
    """The steepest-descent direction D^-1 (D^-1 J^T F) / ||D^-1 J^T F|| into A.sd, J times it
    into A.jsd, and the length sgnorm of the model's minimiser along it. Formed only when the
    Gauss-Newton step does not fit the region (near a regular root it always does)."""
    cdef int i, j
    cdef double total, c
    for j in range(n):
        total = 0.0
        for i in range(n):
            total += A.jac[i + j * n] * A.fx[i]
        A.sd[j] = total / A.diag[j]
    T.gnorm = norm2(A.sd, n)
    T.sgnorm = 0.0
    if T.gnorm != 0.0:
        for j in range(n):
            A.sd[j] = (A.sd[j] / T.gnorm) / A.diag[j]
        matvec(n, A.jac, A.sd, A.jsd)
        c = norm2(A.jsd, n)
        T.sgnorm = (T.gnorm / c) / c
    else:
        for j in range(n):
            A.sd[j] = A.jsd[j] = 0.0
    T.have_descent = True


cdef inline void trust_propose(Trust *T, const TrustArrays *A,
                               const SystemSettings *s) noexcept nogil:
    """MINPACK's dogleg step within delta into A.step and A.trial: the Gauss-Newton step if it
    fits, else the point of Powell's path (Cauchy step, then towards Gauss-Newton) at distance
    delta; and the linear model's prediction ||F + J s||."""
    cdef int n = s.n, i
    cdef double alpha, cauchy, ratio, sratio, temp, delta = T.delta
    if T.qnorm <= delta:
        alpha, cauchy = 1.0, 0.0
    else:
        if not T.have_descent:
            steepest_descent(T, A, n)
        alpha = delta / T.qnorm if isfinite(T.qnorm) else 0.0
        if T.gnorm != 0.0:
            alpha = 0.0
            if T.sgnorm < delta:
                ratio = delta / T.qnorm
                sratio = T.sgnorm / delta
                temp = (T.fnorm / T.gnorm) * (T.fnorm / T.qnorm) * sratio
                temp = temp - ratio * sratio * sratio + sqrt(
                    (temp - ratio) * (temp - ratio)
                    + (1.0 - ratio * ratio) * (1.0 - sratio * sratio))
                alpha = ratio * (1.0 - sratio * sratio) / temp
        cauchy = (1.0 - alpha) * fmin(T.sgnorm, delta)
    # s = -(cauchy sd + alpha p), so F + J s = F - cauchy J sd - alpha J p. Without a Cauchy
    # part sd and J sd are not read: until the first one is formed they hold whatever the
    # allocation held, and 0 * NaN would poison the step.
    temp = 0.0
    for i in range(n):
        if cauchy == 0.0:
            A.step[i] = -(alpha * A.gn[i])
            ratio = A.fx[i] - alpha * A.jgn[i]
        else:
            A.step[i] = -(cauchy * A.sd[i] + alpha * A.gn[i])
            ratio = A.fx[i] - cauchy * A.jsd[i] - alpha * A.jgn[i]
        A.trial[i] = A.x[i] + A.step[i]
        temp += ratio * ratio
    T.linear_norm = sqrt(temp)
    T.pnorm = scaled_norm2(A.diag, A.step, n)
    if T.first:
        T.delta = fmin(T.delta, T.pnorm)
    T.closing = alpha == 1.0 and cauchy == 0.0 and \
        norm_inf(A.step, n) <= s.tol + s.rtol * norm_inf(A.trial, n)


cdef inline void trust_assess(Trust *T, const TrustArrays *A, const double *ftrial,
                              bint evaluated, const SystemSettings *s) noexcept nogil:
    """Accept or reject the trial point (F there: ftrial, if evaluated: finite), resize the
    region (MINPACK's rules), and decide whether the system has finished."""
    cdef int n = s.n, i
    cdef double fnorm1 = 0.0, actred = -1.0, prered = 0.0, ratio = 0.0
    T.nit += 1
    if evaluated:
        fnorm1 = norm2(ftrial, n)
        if fnorm1 < T.fnorm:
            actred = 1.0 - (fnorm1 / T.fnorm) * (fnorm1 / T.fnorm)
    if T.linear_norm < T.fnorm:
        prered = 1.0 - (T.linear_norm / T.fnorm) * (T.linear_norm / T.fnorm)
    if prered > 0.0:
        ratio = actred / prered
    elif actred > 0.0:
        # The linear model predicts nothing (a stationary point of ||F||^2 with singular J,
        # e.g. a saddle) but ||F|| decreased: accept the step, keep the region.
        ratio = 0.1
    if ratio < 0.1:
        T.ncsuc = 0
        T.ncfail += 1
        T.delta = 0.5 * T.delta
    else:
        T.ncfail = 0
        T.ncsuc += 1
        if ratio >= 0.5 or T.ncsuc > 1:
            T.delta = fmax(T.delta, T.pnorm / 0.5)
        if fabs(ratio - 1.0) <= 0.1:
            T.delta = T.pnorm / 0.5
    if ratio >= 1e-4:
        for i in range(n):
            A.x[i] = A.trial[i]
            A.fx[i] = ftrial[i]
        T.fnorm = fnorm1
        T.xnorm = scaled_norm2(A.diag, A.x, n)
        T.first = False
        T.need_jacobian = True
        if T.closing or norm_inf(A.fx, n) <= s.ftol:
            T.status = SUCCESS
            return
    elif T.closing:
        # The Gauss-Newton step at x is below the tolerance: x is that close to a root (F at
        # x is at rounding level, so the trial could not decrease it).
        T.status = SUCCESS
        return
    T.nslow = 0 if actred >= 0.001 else T.nslow + 1
    if T.nslow >= 10 or 0.1 * fmax(0.1 * T.delta, T.pnorm) <= EPS * T.xnorm:
        T.status = STALLED_CODE
    elif T.nit >= s.maxiter:
        T.status = MAX_ITERATIONS


cdef inline void trust_arrays(TrustArrays *A, int n, double *x, double *fx, double *memory,
                              int *ipiv) noexcept nogil:
    """Lay one system's arrays out in memory (TRUST_DOUBLES(n) doubles) and ipiv (n ints)."""
    A.x = x
    A.fx = fx
    A.jac = memory
    A.lu = memory + n * n
    A.ipiv = ipiv
    A.gn = A.lu + n * n
    A.jgn = A.gn + n
    A.sd = A.jgn + n
    A.jsd = A.sd + n
    A.diag = A.jsd + n
    A.step = A.diag + n
    A.trial = A.step + n


cdef inline Py_ssize_t TRUST_DOUBLES(Py_ssize_t n) noexcept nogil:
    return 2 * n * n + 7 * n


cdef inline int solve_trust_system(
        vector_field_t F, void *F_data, vector_field_t J, void *J_data,
        const SystemSettings *s, double *x, double *fx, double *memory, int *ipiv,
        int *nit_out, int *nfev_out, int *stop_flag, bint calling_thread) noexcept nogil:
    """Solve one system F(x) = 0 in place from x by the dogleg; return its status.

    memory holds 3 n^2 + 10 n doubles: the TrustArrays, F at the trial point, the Jacobian's
    scratch; ipiv n ints."""
    cdef int n = s.n, nfev = 1
    cdef Trust T
    cdef TrustArrays A
    cdef double *ftrial = memory + TRUST_DOUBLES(n)
    cdef double *scratch = ftrial + n
    trust_arrays(&A, n, x, fx, memory, ipiv)
    if F(n, x, n, fx, F_data) != 0:
        nit_out[0] = 0
        nfev_out[0] = 1
        return NON_FINITE
    trust_start(&T, &A, s)
    while T.status == RUNNING:
        if T.need_jacobian:
            if jacobian_at(F, F_data, J, J_data, n, x, A.jac, scratch, &nfev) != 0:
                T.status = NON_FINITE
                break
            trust_factor(&T, &A, s)
        trust_propose(&T, &A, s)
        nfev += 1
        trust_assess(&T, &A, ftrial, evaluate_field(F, F_data, n, A.trial, ftrial) == 0, s)
        if T.status == RUNNING and T.nit % SIGNAL_SYSTEM_ROUNDS == SIGNAL_SYSTEM_ROUNDS - 1 \
                and interrupted(stop_flag, calling_thread):
            T.status = MAX_ITERATIONS
    nit_out[0] = T.nit
    nfev_out[0] = nfev
    return T.status


# Drivers.
# --------------------------------------------------------------------------------------------
def solve_systems_compiled(UserFunction F, UserFunction jac, const double[:, ::1] x0,
                           double tol, double rtol, double ftol, int maxiter,
                           object n_threads, bint trust_region):
    """Solve ``F(x) = 0`` from every row of ``x0`` (shape ``(N, n)``); compiled F (and jac),
    by the dogleg trust region (``trust_region``) or damped Newton.

    Returns ``(x, fun, status, nit, nfev)``.
    """
    cdef Py_ssize_t N = x0.shape[0], i
    cdef int n = <int>x0.shape[1]
    cdef int nt = resolve_threads(n_threads)
    cdef SystemSettings s
    cdef vector_field_t Fn = <vector_field_t>F.c_function
    cdef vector_field_t Jn = NULL
    cdef void *F_data = F.user_data
    cdef void *J_data = NULL
    cdef double *work
    cdef int *ipiv
    cdef int nit, nfev
    cdef int stop_flag = 0
    if jac is not None:
        Jn = <vector_field_t>jac.c_function
        J_data = jac.user_data
    s.tol = tol
    s.rtol = rtol
    s.ftol = ftol
    s.maxiter = maxiter
    s.n = n
    x_out = np.array(x0, dtype=np.float64, order="C")
    fun_out = np.full((N, n), np.nan)
    status_out = np.empty(N, dtype=np.intp)
    nit_out = np.empty(N, dtype=np.intp)
    nfev_out = np.empty(N, dtype=np.intp)
    cdef double[:, ::1] xv = x_out, fv = fun_out
    cdef Py_ssize_t[::1] sv = status_out, itv = nit_out, fev = nfev_out
    if N == 0 or n == 0:
        status_out[:] = SUCCESS
        nit_out[:] = 0
        nfev_out[:] = 0
        return x_out, fun_out, status_out, nit_out, nfev_out
    if N < 2 * nt:
        nt = 1              # a small batch: no threads to start (same results)
    with nogil, parallel(num_threads=nt):
        work = <double*>malloc((TRUST_DOUBLES(n) + n * n + 3 * n) * sizeof(double))
        ipiv = <int*>malloc(n * sizeof(int))
        for i in prange(N, schedule="static"):
            if work == NULL or ipiv == NULL:
                sv[i] = NON_FINITE
                continue
            if flag_read(&stop_flag):
                continue
            nit = 0
            nfev = 0
            if trust_region:
                sv[i] = solve_trust_system(Fn, F_data, Jn, J_data, &s, &xv[i, 0], &fv[i, 0],
                                           work, ipiv, &nit, &nfev, &stop_flag,
                                           threadid() == 0)
            else:
                sv[i] = solve_newton_system(Fn, F_data, Jn, J_data, &s, &xv[i, 0], &fv[i, 0],
                                            work, ipiv, &nit, &nfev, &stop_flag,
                                            threadid() == 0)
            itv[i] = nit
            fev[i] = nfev
        free(work)
        free(ipiv)
    if stop_flag:
        raise_pending_error()
    return x_out, fun_out, status_out, nit_out, nfev_out


cdef class TrustRegionBatch:
    """The dogleg iteration of N systems whose F and J the caller evaluates (Python functions).

    Each round: ``jacobians_needed()`` names the systems that need J at their ``x``;
    ``factor(systems, J, cost)`` takes them (``(k, n, n)``, row-major); ``propose()`` returns
    the running systems and their trial points; ``assess(systems, F)`` takes F there. The
    systems are finished when ``propose`` returns none; ``x``, ``fun``, ``status``, ``nit``,
    ``nfev`` then hold the results. The algebra is the compiled solver's, so the two agree.
    """
    cdef SystemSettings s
    cdef Trust *state
    cdef double[:, ::1] memory
    cdef int[:, ::1] pivots
    cdef double[:, ::1] xv, fv
    cdef readonly object x, fun, status, nit, nfev
    cdef object need_jacobian

    def __init__(self, const double[:, ::1] x0, const double[:, ::1] f0, double tol,
                  double rtol, double ftol, int maxiter):
        cdef Py_ssize_t N = x0.shape[0], i
        cdef int n = <int>x0.shape[1]
        cdef TrustArrays A
        self.s.tol = tol
        self.s.rtol = rtol
        self.s.ftol = ftol
        self.s.maxiter = maxiter
        self.s.n = n
        self.x = np.array(x0, dtype=np.float64, order="C")
        self.fun = np.array(f0, dtype=np.float64, order="C")
        self.xv, self.fv = self.x, self.fun
        self.memory = np.zeros((N, TRUST_DOUBLES(n)))
        self.pivots = np.zeros((N, n), dtype=np.intc)
        self.state = <Trust*>malloc(max(N, 1) * sizeof(Trust))
        if self.state == NULL:
            raise MemoryError()
        self.status = np.empty(N, dtype=np.intp)
        self.nit = np.zeros(N, dtype=np.intp)
        self.nfev = np.ones(N, dtype=np.intp)
        self.need_jacobian = np.zeros(N, dtype=np.uint8)
        for i in range(N):
            self._arrays(&A, i)
            trust_start(&self.state[i], &A, &self.s)
        self._sync()

    def __dealloc__(self):
        free(self.state)

    cdef inline void _arrays(self, TrustArrays *A, Py_ssize_t i) noexcept:
        trust_arrays(A, self.s.n, &self.xv[i, 0], &self.fv[i, 0], &self.memory[i, 0],
                     &self.pivots[i, 0])

    cdef void _sync(self):
        """The per-system state's status, nit and need for J into the arrays."""
        cdef Py_ssize_t i
        cdef Py_ssize_t[::1] status = self.status, nit = self.nit
        cdef unsigned char[::1] need = self.need_jacobian
        for i in range(status.shape[0]):
            status[i] = self.state[i].status
            nit[i] = self.state[i].nit
            need[i] = self.state[i].status == RUNNING and self.state[i].need_jacobian

    def jacobians_needed(self):
        """Indices of the running systems that need the Jacobian at their x."""
        return np.flatnonzero(self.need_jacobian)

    def factor(self, const Py_ssize_t[::1] systems, const double[:, :, ::1] J, Py_ssize_t cost):
        """Take the Jacobians ``J[k]`` (row-major) of ``systems[k]``, which cost ``cost``
        evaluations each; a non-finite one ends its system with status 3."""
        cdef Py_ssize_t k, i, r, c
        cdef int n = self.s.n
        cdef TrustArrays A
        cdef Py_ssize_t[::1] nfev = self.nfev
        for k in range(systems.shape[0]):
            i = systems[k]
            nfev[i] += cost
            if not all_finite(&J[k, 0, 0], n * n):
                self.state[i].status = NON_FINITE
                continue
            self._arrays(&A, i)
            for r in range(n):
                for c in range(n):
                    A.jac[r + c * n] = J[k, r, c]
            trust_factor(&self.state[i], &A, &self.s)
        self._sync()

    def propose(self):
        """``(systems, trial points)`` of the running systems (``(k,)``, ``(k, n)``)."""
        cdef Py_ssize_t k, i, j
        cdef TrustArrays A
        systems = np.flatnonzero(self.status == RUNNING)
        trials = np.empty((systems.shape[0], self.s.n))
        cdef Py_ssize_t[::1] sv = systems
        cdef double[:, ::1] tv = trials
        for k in range(sv.shape[0]):
            i = sv[k]
            self._arrays(&A, i)
            trust_propose(&self.state[i], &A, &self.s)
            for j in range(self.s.n):
                tv[k, j] = A.trial[j]
        return systems, trials

    def assess(self, const Py_ssize_t[::1] systems, const double[:, ::1] values):
        """Take F at the trial points of ``systems`` (``values[k]`` of ``systems[k]``)."""
        cdef Py_ssize_t k, i
        cdef int n = self.s.n
        cdef TrustArrays A
        cdef Py_ssize_t[::1] nfev = self.nfev
        for k in range(systems.shape[0]):
            i = systems[k]
            nfev[i] += 1
            self._arrays(&A, i)
            trust_assess(&self.state[i], &A, &values[k, 0], all_finite(&values[k, 0], n),
                         &self.s)
        self._sync()


def solve_linear_systems(double[:, :, ::1] matrices, double[:, ::1] rhs):
    """Solve ``matrices[i].T @ s = rhs[i]`` in place for every i with LAPACK dgesv.

    ``matrices[i]`` holds A_i in column-major order (i.e. ``matrices[i] = A_i.T`` row-major) and
    is overwritten by its LU factors; ``rhs[i]`` is overwritten by the solution. Returns the
    per-system ``info`` (0 solved, > 0 singular).
    """
    cdef Py_ssize_t N = matrices.shape[0], i
    cdef int n = <int>matrices.shape[1], one = 1, info
    cdef int *ipiv
    info_out = np.zeros(N, dtype=np.intc)
    cdef int[::1] iv = info_out
    if N == 0 or n == 0:
        return info_out
    ipiv = <int*>malloc(n * sizeof(int))
    if ipiv == NULL:
        raise MemoryError()
    with nogil:
        for i in range(N):
            dgesv(&n, &one, &matrices[i, 0, 0], &n, ipiv, &rhs[i, 0], &n, &info)
            iv[i] = info
    free(ipiv)
    return info_out
