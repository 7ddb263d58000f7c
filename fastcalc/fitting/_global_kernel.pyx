"""Kernels of fit_global: the per-dataset work of one Levenberg-Marquardt iteration on N
datasets that share some parameters, on threads over datasets without the GIL.

Notation: dataset d has weighted residuals ``r = w (y - f(p_d))`` (``w = 1/sigma``, missing
points dropped) and Jacobian ``J = w df/dp`` over all P parameters; its blocks of the normal
equations are ``A_d = J^T J`` (P x P) and ``g_d = J^T r`` (P,). The global normal matrix is
block-arrow shaped: the shared parameters couple every dataset, the local ones only their own.
``schur_step`` solves the damped system by eliminating each dataset's local parameters
(Schur complement), so a step costs O(N k^3) time and O(N k^2) memory.

Threads write per-dataset outputs only; every sum over datasets is a serial loop in dataset
order after the parallel part, so results are bitwise independent of the thread count.
"""

from cython.parallel cimport parallel, prange
from libc.math cimport sqrt, fabs, isfinite, NAN
from libc.stdlib cimport malloc, free

from fastcalc._evaluate cimport UserFunction, model_jac_t, model_t
from fastcalc._models cimport ModelKernel, model_kernel, model_eval_t, model_guess_t
from fastcalc._parallel cimport resolve_threads
from fastcalc._status_codes cimport SUCCESS, SINGULAR, NON_FINITE, CALLBACK_ERROR

cdef enum:
    KIND_BUILTIN = 0        # (any other kind: a compiled model callable)

cdef double SQRT_EPS = 1.4901161193847656e-08
# Forward-difference floor: the change of p_j that moves the model by this fraction of its size
# (as the fit kernel's fd_step: a parameter near 0 would otherwise get a step of rounding noise).
cdef double FD_SCALE_FRACTION = 1e-3
# A Cholesky pivot below this fraction of its diagonal entry: the matrix is taken as singular
# (rank-deficient local block at the solution; damped systems are far from it).
cdef double PIVOT_RATIO = 1e-13
# normal_blocks sums in a local array up to this many parameters (every built-in model but
# polynomials of degree > 5)
cdef enum:
    SMALL_P = 6
    SMALL_P_PAIRS = 21      # SMALL_P (SMALL_P + 1) / 2
# Below this much work per call (~ model values: points, or P per dataset for the elimination)
# one thread: starting a team costs more than it saves (0.3-0.6 s for a 12-dataset fit on a
# loaded 2-core machine, 0.03 s on one thread).
cdef Py_ssize_t MIN_PARALLEL_WORK = 32768


cdef int team_size(object n_threads, Py_ssize_t N, Py_ssize_t work_per_dataset) except -1:
    """The threads for a loop over N datasets (results never depend on it)."""
    cdef int nt = resolve_threads(n_threads)
    if N < 2 * nt or N * work_per_dataset < MIN_PARALLEL_WORK:
        return 1
    return nt


cdef struct Data:
    model_eval_t builtin
    model_t compiled
    model_jac_t compiled_both   # a compiled model writing its own Jacobian (then compiled NULL)
    void *user_data
    int x_dim
    int m               # points per dataset, missing ones included
    int P
    const double *x     # (1 or N, x_dim * m)
    Py_ssize_t x_stride
    const double *Y     # (N, m), NaN = missing
    const double *W     # (N, m) weights 1/sigma (0 at missing points)


cdef struct Points:
    int n               # valid points
    double *x           # (x_dim, n)
    double *y
    double *w
    double *values
    double *shifted
    double *jac         # (n, P) row-major
    double *wjac        # (P, n): the weighted Jacobian's columns
    double *fd_params   # (P,)


cdef inline Py_ssize_t points_size(const Data *dt) noexcept nogil:
    return (<Py_ssize_t>dt.x_dim + 5) * dt.m + 2 * <Py_ssize_t>dt.m * dt.P + dt.P


cdef void gather(const Data *dt, Py_ssize_t d, double *scratch, Points *pt) noexcept nogil:
    """Dataset d's valid points, compacted into scratch (the model is never evaluated at a
    missing point, whose x may be outside its domain)."""
    cdef int m = dt.m, i, r, n = 0
    cdef const double *x = dt.x + d * dt.x_stride
    cdef const double *y = dt.Y + d * m
    cdef const double *w = dt.W + d * m
    pt.x = scratch
    pt.y = pt.x + <Py_ssize_t>dt.x_dim * m
    pt.w = pt.y + m
    pt.values = pt.w + m
    pt.shifted = pt.values + m
    pt.jac = pt.shifted + m
    pt.wjac = pt.jac + <Py_ssize_t>m * dt.P
    pt.fd_params = pt.wjac + <Py_ssize_t>m * dt.P
    for i in range(m):
        if not isfinite(y[i]):
            break
    else:                   # no missing point: the data as they are
        pt.x = <double *>x
        pt.y = <double *>y
        pt.w = <double *>w
        pt.n = m
        return
    for i in range(m):
        if isfinite(y[i]):
            pt.y[n] = y[i]
            pt.w[n] = w[i]
            n += 1
    for r in range(dt.x_dim):
        n = 0
        for i in range(m):
            if isfinite(y[i]):
                pt.x[<Py_ssize_t>r * m + n] = x[<Py_ssize_t>r * m + i]
                n += 1
    if dt.x_dim > 1:        # rows laid out with stride m: compact them to stride n
        for r in range(1, dt.x_dim):
            for i in range(n):
                pt.x[<Py_ssize_t>r * n + i] = pt.x[<Py_ssize_t>r * m + i]
    pt.n = n


cdef int values_at(const Data *dt, Points *pt, const double *p, double *out,
                   double *jac) noexcept nogil:
    """Model values at the valid points (and the analytic Jacobian of a built-in model when
    jac is not NULL); a status."""
    cdef int i, rc
    if dt.builtin != NULL:
        if dt.builtin(pt.n, pt.x, dt.P, p, out, jac) != 0:
            return NON_FINITE
        return SUCCESS
    if dt.compiled_both != NULL:
        rc = dt.compiled_both(pt.n, pt.x, dt.P, <double *>p, out, jac, dt.user_data)
    else:
        rc = dt.compiled(pt.n, pt.x, dt.P, <double *>p, out, dt.user_data)
    if rc != 0:
        return CALLBACK_ERROR
    for i in range(pt.n):
        if not isfinite(out[i]):
            return NON_FINITE
    return SUCCESS


cdef double weighted_chi2(const Points *pt, const double *values) noexcept nogil:
    cdef int i
    cdef double r, total = 0.0
    for i in range(pt.n):
        r = pt.w[i] * (pt.y[i] - values[i])
        total += r * r
    return total


cdef int fd_jacobian(const Data *dt, Points *pt, const double *p, const unsigned char *free_,
                     const double *upper, const double *scale) noexcept nogil:
    """Forward-difference Jacobian (n, P) row-major of a compiled model at p (values at p in
    pt.values); fixed columns are zero. ``scale`` are the dataset's typical column norms."""
    cdef int P = dt.P, n = pt.n, i, j, l, rc
    cdef double h, typical, model_scale = 0.0, step
    for l in range(P):
        model_scale += fabs(p[l]) * scale[l]
        pt.fd_params[l] = p[l]
    for j in range(P):
        if not free_[j]:
            for i in range(n):
                pt.jac[<Py_ssize_t>i * P + j] = 0.0
            continue
        h = fabs(p[j])
        if scale[j] > 0.0 and model_scale > 0.0:
            typical = FD_SCALE_FRACTION * model_scale / scale[j]
            if typical > h:
                h = typical
        h *= SQRT_EPS
        if h == 0.0:
            h = SQRT_EPS
        if p[j] + h > upper[j]:
            h = -h
        pt.fd_params[j] = p[j] + h
        step = pt.fd_params[j] - p[j]
        rc = values_at(dt, pt, pt.fd_params, pt.shifted, NULL)
        pt.fd_params[j] = p[j]
        if rc != SUCCESS:
            return rc
        for i in range(n):
            pt.jac[<Py_ssize_t>i * P + j] = (pt.shifted[i] - pt.values[i]) / step
    return SUCCESS


cdef inline double dot(int n, const double *a, const double *b) noexcept nogil:
    """sum(a * b) in four interleaved partial sums (independent additions pipeline; the
    order is fixed, so the result is too)."""
    cdef int i, n4 = n - n % 4
    cdef double t0 = 0.0, t1 = 0.0, t2 = 0.0, t3 = 0.0
    for i in range(0, n4, 4):
        t0 += a[i] * b[i]
        t1 += a[i + 1] * b[i + 1]
        t2 += a[i + 2] * b[i + 2]
        t3 += a[i + 3] * b[i + 3]
    for i in range(n4, n):
        t0 += a[i] * b[i]
    return (t0 + t1) + (t2 + t3)


cdef void normal_blocks(Points *pt, int P, double *A, double *g) noexcept nogil:
    """A = J^T J and g = J^T r of one dataset from the unweighted Jacobian pt.jac (n, P)
    row-major, in one pass over the points with the sums in a local array (no aliasing with
    the inputs, so they stay in registers or L1 for small P) when P <= SMALL_P."""
    cdef int n = pt.n, i, a, b, k
    cdef double wi, ri, ja
    cdef double acc[SMALL_P_PAIRS]
    cdef double gacc[SMALL_P]
    cdef const double *row
    cdef double *wr = pt.shifted
    if P <= SMALL_P:
        for k in range(P * (P + 1) // 2):
            acc[k] = 0.0
        for a in range(P):
            gacc[a] = 0.0
        for i in range(n):
            wi = pt.w[i] * pt.w[i]
            ri = wi * (pt.y[i] - pt.values[i])
            row = pt.jac + <Py_ssize_t>i * P
            k = 0
            for a in range(P):
                ja = wi * row[a]
                gacc[a] += row[a] * ri
                for b in range(a + 1):
                    acc[k] += ja * row[b]
                    k += 1
        k = 0
        for a in range(P):
            g[a] = gacc[a]
            for b in range(a + 1):
                A[a * P + b] = acc[k]
                A[b * P + a] = acc[k]
                k += 1
        return
    for i in range(n):
        wr[i] = pt.w[i] * (pt.y[i] - pt.values[i])
        for a in range(P):
            pt.wjac[<Py_ssize_t>a * n + i] = pt.w[i] * pt.jac[<Py_ssize_t>i * P + a]
    for a in range(P):
        g[a] = dot(n, pt.wjac + <Py_ssize_t>a * n, wr)
        for b in range(a + 1):
            A[a * P + b] = dot(n, pt.wjac + <Py_ssize_t>a * n, pt.wjac + <Py_ssize_t>b * n)
            A[b * P + a] = A[a * P + b]


cdef int bind_data(Data *dt, int kind, int model_id, object model, const double[:, ::1] x,
                   int x_dim, const double[:, ::1] Y, const double[:, ::1] W, int P) except -1:
    cdef ModelKernel kernel
    cdef UserFunction fn
    dt.builtin = NULL
    dt.compiled = NULL
    dt.compiled_both = NULL
    dt.user_data = NULL
    if kind == KIND_BUILTIN:
        kernel = model_kernel(model_id, P)
        dt.builtin = kernel.evaluate
    else:
        fn = <UserFunction?>model
        if fn.signature == "model_jac":
            dt.compiled_both = <model_jac_t>fn.c_function
        else:
            dt.compiled = <model_t>fn.c_function
        dt.user_data = fn.user_data
    dt.x_dim = x_dim
    dt.m = <int>Y.shape[1]
    dt.P = P
    dt.x = &x[0, 0]
    dt.x_stride = x.shape[1] if x.shape[0] > 1 else 0
    dt.Y = &Y[0, 0]
    dt.W = &W[0, 0]
    return 0


cdef int dataset_cost(const Data *dt, Py_ssize_t d, double *scratch, const double *p,
                      double *chi2) noexcept nogil:
    """chi2 of dataset d at p; a status (chi2 NaN unless SUCCESS)."""
    cdef Points pt
    cdef int rc
    gather(dt, d, scratch, &pt)
    rc = values_at(dt, &pt, p, pt.values, NULL)
    chi2[0] = weighted_chi2(&pt, pt.values) if rc == SUCCESS else NAN
    return rc


cdef int dataset_blocks(const Data *dt, Py_ssize_t d, double *scratch, const double *p,
                        const unsigned char *free_, const double *upper, const double *scale,
                        double *A, double *g, double *chi2) noexcept nogil:
    """A, g and chi2 of dataset d at p; a status (NON_FINITE for a non-finite Jacobian)."""
    cdef Points pt
    cdef int rc
    cdef Py_ssize_t i
    cdef bint analytic = dt.builtin != NULL or dt.compiled_both != NULL
    gather(dt, d, scratch, &pt)
    rc = values_at(dt, &pt, p, pt.values, pt.jac if analytic else NULL)
    if rc == SUCCESS and not analytic:
        rc = fd_jacobian(dt, &pt, p, free_, upper, scale)
    if dt.builtin == NULL:      # (a built-in model checks its own Jacobian)
        for i in range(<Py_ssize_t>pt.n * dt.P):
            if rc == SUCCESS and not isfinite(pt.jac[i]):
                rc = NON_FINITE
    if rc != SUCCESS:
        chi2[0] = NAN
        return rc
    chi2[0] = weighted_chi2(&pt, pt.values)
    normal_blocks(&pt, dt.P, A, g)
    return SUCCESS


def costs(int kind, int model_id, object model, const double[:, ::1] x, int x_dim,
          const double[:, ::1] Y, const double[:, ::1] W, const double[:, ::1] params,
          const unsigned char[::1] active, object n_threads, double[::1] chi2_out,
          int[::1] status_out):
    """chi2 (weighted residuals squared, summed) of each active dataset at its row of params,
    for a built-in (kind 0) or compiled (kind 1) model; a status per dataset (NaN chi2 when
    the model fails)."""
    cdef Data dt
    cdef Py_ssize_t N = Y.shape[0], d
    cdef int nt = team_size(n_threads, N, Y.shape[1])
    cdef double *scratch
    bind_data(&dt, kind, model_id, model, x, x_dim, Y, W, <int>params.shape[1])
    with nogil, parallel(num_threads=nt):
        scratch = <double *>malloc(points_size(&dt) * sizeof(double))
        for d in prange(N, schedule="static"):
            if not active[d]:
                continue
            if scratch == NULL:
                chi2_out[d] = NAN
                status_out[d] = NON_FINITE
                continue
            status_out[d] = dataset_cost(&dt, d, scratch, &params[d, 0], &chi2_out[d])
        free(scratch)


def blocks(int kind, int model_id, object model, const double[:, ::1] x, int x_dim,
           const double[:, ::1] Y, const double[:, ::1] W, const double[:, ::1] params,
           const unsigned char[::1] active, const unsigned char[::1] free_,
           const double[::1] upper, const double[:, ::1] scale, object n_threads,
           double[:, :, ::1] A_out, double[:, ::1] g_out, double[::1] chi2_out,
           int[::1] status_out):
    """The normal-equation blocks A (P, P) and g (P,) and chi2 of each active dataset at its
    row of params: analytic Jacobian (built-in models) or forward differences (compiled, steps
    kept below ``upper``; ``scale`` the typical column norms). A status per dataset (NON_FINITE
    for a non-finite Jacobian entry)."""
    cdef Data dt
    cdef Py_ssize_t N = Y.shape[0], d
    cdef int P = <int>params.shape[1]
    cdef int nt = team_size(n_threads, N, Y.shape[1] * (P + 1))
    cdef double *scratch
    bind_data(&dt, kind, model_id, model, x, x_dim, Y, W, P)
    with nogil, parallel(num_threads=nt):
        scratch = <double *>malloc(points_size(&dt) * sizeof(double))
        for d in prange(N, schedule="static"):
            if not active[d]:
                continue
            if scratch == NULL:
                status_out[d] = NON_FINITE
                continue
            status_out[d] = dataset_blocks(&dt, d, scratch, &params[d, 0], &free_[0],
                                           &upper[0], &scale[d, 0], &A_out[d, 0, 0],
                                           &g_out[d, 0], &chi2_out[d])
        free(scratch)


def jacobian_blocks(const double[:, :, ::1] J, const double[:, ::1] values,
                    const double[:, ::1] Y, const double[:, ::1] W,
                    const unsigned char[::1] active, object n_threads,
                    double[:, :, ::1] A_out, double[:, ::1] g_out):
    """A and g of each active dataset from the Jacobian ``J`` (N, P, m) (d model / d p, of a
    Python model) and the model ``values`` (N, m); missing points (NaN in Y) are skipped."""
    cdef Py_ssize_t N = J.shape[0], d, i
    cdef int P = <int>J.shape[1], m = <int>J.shape[2], a, b
    cdef int nt = team_size(n_threads, N, m * P)
    cdef double wi, ri
    for d in prange(N, nogil=True, num_threads=nt, schedule="static"):
        if not active[d]:
            continue
        for a in range(P * P):
            A_out[d, a // P, a % P] = 0.0
        for a in range(P):
            g_out[d, a] = 0.0
        for i in range(m):
            if not isfinite(Y[d, i]):
                continue
            wi = W[d, i] * W[d, i]
            ri = wi * (Y[d, i] - values[d, i])
            for a in range(P):
                g_out[d, a] += J[d, a, i] * ri
                for b in range(a + 1):
                    A_out[d, a, b] += wi * J[d, a, i] * J[d, b, i]
        for a in range(P):
            for b in range(a):
                A_out[d, b, a] = A_out[d, a, b]


def guesses(int model_id, int P, const double[:, ::1] x, int x_dim, const double[:, ::1] Y,
            const unsigned char[::1] active, object n_threads, double[:, ::1] p_out,
            int[::1] status_out):
    """The built-in model's initial guess for each active dataset (status SINGULAR where none
    is possible, e.g. too few points)."""
    cdef ModelKernel kernel = model_kernel(model_id, P)
    cdef model_guess_t guess = kernel.guess
    cdef Py_ssize_t N = Y.shape[0], d, x_stride = x.shape[1] if x.shape[0] > 1 else 0
    cdef int m = <int>Y.shape[1], nt = team_size(n_threads, N, Y.shape[1])
    if guess == NULL:
        raise ValueError("this model has no initial guess; give p0")
    for d in prange(N, nogil=True, num_threads=nt, schedule="static"):
        if active[d]:
            status_out[d] = SUCCESS if guess(m, &x[0, 0] + d * x_stride, &Y[d, 0], P,
                                             &p_out[d, 0]) == 0 else SINGULAR


# ---------------------------------------------------------------------------------------------
# Block elimination.

cdef int cholesky(int n, double *M) noexcept nogil:
    """In-place lower Cholesky factor of the symmetric n x n M (row-major, lower triangle
    used); non-zero when a pivot is below PIVOT_RATIO of its diagonal entry (or not finite)."""
    cdef int i, j, k
    cdef double total
    for j in range(n):
        total = M[j * n + j]
        for k in range(j):
            total -= M[j * n + k] * M[j * n + k]
        if not (total > PIVOT_RATIO * fabs(M[j * n + j])) or not isfinite(total):
            return 1
        M[j * n + j] = sqrt(total)
        for i in range(j + 1, n):
            total = M[i * n + j]
            for k in range(j):
                total -= M[i * n + k] * M[j * n + k]
            M[i * n + j] = total / M[j * n + j]
    return 0


cdef void cholesky_solve(int n, const double *L, int ncols, double *B) noexcept nogil:
    """B (n x ncols, row-major) <- M^-1 B with L the factor of `cholesky`."""
    cdef int i, k, c
    cdef double total
    for c in range(ncols):
        for i in range(n):
            total = B[i * ncols + c]
            for k in range(i):
                total -= L[i * n + k] * B[k * ncols + c]
            B[i * ncols + c] = total / L[i * n + i]
        for i in range(n - 1, -1, -1):
            total = B[i * ncols + c]
            for k in range(i + 1, n):
                total -= L[k * n + i] * B[k * ncols + c]
            B[i * ncols + c] = total / L[i * n + i]


cdef int eliminate_locals(int P, int s, int l, const int *shared, const int *local,
                          const double *A, const double *g, const unsigned char *blocked,
                          const double *D2, double lam, double *M, double *K,
                          double *contribution) noexcept nogil:
    """One dataset: M = A_ll + lam D^2 (blocked locals: identity rows), K = M^-1 [A_ls | g_l]
    (l x (s + 1)), and its contribution [A_ss - A_sl K_s | g_s - A_sl K_g] (s x (s + 1)) to the
    reduced system. Non-zero when M is singular."""
    cdef int a, b, c, sa, la, S1 = s + 1
    cdef double total
    for a in range(l):
        la = local[a]
        for b in range(l):
            M[a * l + b] = 0.0 if (blocked[la] or blocked[local[b]]) else A[la * P + local[b]]
        M[a * l + a] = 1.0 if blocked[la] else M[a * l + a] + lam * D2[la]
        for b in range(s):
            K[a * S1 + b] = 0.0 if blocked[la] else A[la * P + shared[b]]
        K[a * S1 + s] = 0.0 if blocked[la] else g[la]
    if l > 0:
        if cholesky(l, M) != 0:
            return 1
        cholesky_solve(l, M, S1, K)
    for a in range(s):
        sa = shared[a]
        for b in range(S1):
            total = A[sa * P + shared[b]] if b < s else g[sa]
            for c in range(l):
                total -= A[sa * P + local[c]] * K[c * S1 + b]
            contribution[a * S1 + b] = total
    return 0


cdef void back_substitute(int P, int s, int l, const int *shared, const int *local,
                          const double *K, const double *dps, int solved,
                          double *step) noexcept nogil:
    """One dataset's step: the shared dps, and its locals K_g - K_s dps (zero unless solved)."""
    cdef int a, b
    cdef double total
    for a in range(P):
        step[a] = 0.0
    if not solved:
        return
    for a in range(s):
        step[shared[a]] = dps[a]
    for a in range(l):
        total = K[a * (s + 1) + s]
        for b in range(s):
            total -= K[a * (s + 1) + b] * dps[b]
        step[local[a]] = total


def schur_step(const double[:, :, ::1] A, const double[:, ::1] g,
               const unsigned char[::1] active, const int[::1] shared, const int[::1] local,
               const unsigned char[:, ::1] blocked, const double[:, ::1] D2,
               const double[::1] D2_shared, double lam, object n_threads,
               double[:, ::1] step_out, double[:, :, ::1] K_out, double[:, ::1] S_out,
               double[:, :, ::1] contribution, int[::1] status_out):
    """Solve the global damped normal equations ``(A + lam D^2) dp = g`` over the free
    parameters (``shared`` and ``local`` column indices; ``blocked`` (N, P) entries held at 0,
    a shared one blocked in row 0) by eliminating each active dataset's locals.

    Writes ``step_out`` (N, P) (zero for fixed, blocked and inactive entries), ``K_out`` (N, l,
    s + 1) = M^-1 [A_ls | g_l], ``S_out`` the reduced (s x s) matrix (damped, blocked rows
    identity) and a status per dataset (SINGULAR: its M is singular; it is left out).
    Returns SUCCESS, or SINGULAR when the reduced matrix is singular."""
    cdef Py_ssize_t N = A.shape[0], d
    cdef int P = <int>A.shape[1], s = <int>shared.shape[0], l = <int>local.shape[0]
    # (a dataset's elimination costs about as much as P model values)
    cdef int S1 = s + 1, a, b, nt = team_size(n_threads, N, P)
    cdef double *M
    cdef const int *sh = &shared[0] if s > 0 else NULL
    cdef const int *lo = &local[0] if l > 0 else NULL
    with nogil, parallel(num_threads=nt):
        M = <double *>malloc((l * l + 1) * sizeof(double))
        for d in prange(N, schedule="static"):
            if not active[d]:
                continue
            if M == NULL or eliminate_locals(P, s, l, sh, lo, &A[d, 0, 0], &g[d, 0],
                                             &blocked[d, 0], &D2[d, 0], lam, M,
                                             &K_out[d, 0, 0], &contribution[d, 0, 0]) != 0:
                status_out[d] = SINGULAR
            else:
                status_out[d] = SUCCESS
        free(M)
    # the reduced system, summed in dataset order
    cdef double *R = <double *>malloc((s * S1 + 1) * sizeof(double))
    cdef double *L = <double *>malloc((s * s + 1) * sizeof(double))
    cdef double *dps = <double *>malloc((s + 1) * sizeof(double))
    cdef int rc = SUCCESS
    if R == NULL or L == NULL or dps == NULL:
        free(R)
        free(L)
        free(dps)
        raise MemoryError()
    with nogil:
        for a in range(s * S1):
            R[a] = 0.0
        for d in range(N):
            if active[d] and status_out[d] == SUCCESS:
                for a in range(s * S1):
                    R[a] += contribution[d, a // S1, a % S1]
        for a in range(s):
            for b in range(s):
                if blocked[0, sh[a]] or blocked[0, sh[b]]:
                    R[a * S1 + b] = 1.0 if a == b else 0.0
            if blocked[0, sh[a]]:
                R[a * S1 + s] = 0.0
            else:
                R[a * S1 + a] += lam * D2_shared[a]
            for b in range(s):
                S_out[a, b] = R[a * S1 + b]
                L[a * s + b] = R[a * S1 + b]
            dps[a] = R[a * S1 + s]
        if s > 0:
            if cholesky(s, L) != 0:
                rc = SINGULAR
            else:
                cholesky_solve(s, L, 1, dps)
        for d in range(N):          # (a few operations per dataset: no thread team)
            back_substitute(P, s, l, sh, lo, &K_out[d, 0, 0], dps,
                            active[d] and status_out[d] == SUCCESS and rc == SUCCESS,
                            &step_out[d, 0])
    free(R)
    free(L)
    free(dps)
    return rc
