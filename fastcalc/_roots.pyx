"""Newton-Raphson kernels: elementwise batches of scalar equations (systems: ``_systems.pyx``).

The per-element logic (when an element has converged, failed, or takes which step) lives in two
``noexcept nogil`` functions, ``after_value`` and ``after_derivative``. They drive

* the compiled path (``newton_compiled``): elements are solved start to finish in a ``prange``
  loop over blocks, each thread advancing 4 elements in lockstep so that their latency-bound
  iterations overlap (``solve_block_plain``, with the two functions' decisions written out,
  serves plain Newton with f');
* the Python path (``ElementwiseBatch``): the wrapper calls the user's vectorized functions on
  the still-active elements, one pass updates them all, finished elements are logged and their
  slots refilled from the end (so they are never evaluated again), and ``finish`` scatters the
  log to the outputs. Plain Newton with f' (the common case) has its own leaner batch,
  ``NewtonBatch`` (one pass per round with stable compaction, ``plain_round``); and
* the block-compiled path (``newton_block``): one call of the user's block function gives f
  and f' at all active elements of a block of 512; threads take blocks, and each block's
  active elements are compacted after every call (``block_solve_plain``,
  ``block_solve_bracketed``). Plain Newton's decisions there and in ``NewtonBatch`` are
  ``plain_newton_step``'s (those of ``solve_block_plain``, written out once).

Kernels never raise on a numerical failure: every element ends with a status code from
``fastcalc._status``. Per-element results never depend on the thread count or on the order in
which elements are processed.
"""
import numpy as np
cimport numpy as cnp
from cython.parallel cimport parallel, prange, threadid
from libc.math cimport fabs, isfinite, fmax, fmin, copysign, NAN, INFINITY
from libc.stdlib cimport malloc, free
from libc.string cimport memcpy
from libc.limits cimport INT_MAX

from fastcalc._evaluate cimport UserFunction, block_equations_t, elementwise_t
from fastcalc._parallel cimport resolve_threads
from fastcalc._interrupt cimport flag_read, interrupted, raise_pending_error
from fastcalc._status_codes cimport (SUCCESS, MAX_ITERATIONS, SINGULAR, NON_FINITE,
                                     OUT_OF_BOUNDS, CALLBACK_ERROR)

cnp.import_array()

# RUNNING marks an element still being iterated (the other codes: fastcalc._status_codes).
cdef enum:
    RUNNING = -1

# Step rules.
# --------------------------------------------------------------------------------------------
# Ctrl-C inside the compiled (nogil) kernels: every SIGNAL_ROUNDS rounds the calling thread
# runs Python's signal handlers (fastcalc/_interrupt.pxd).
cdef enum:
    SIGNAL_ROUNDS = 16384   # rounds (elementwise) between two checks


cpdef enum Method:
    NEWTON = 0
    HALLEY = 1
    SECANT = 2

cdef double EPS = 2.220446049250313e-16
cdef double FD_FACTOR = 6.055454452393343e-06     # cbrt(eps): optimal relative step, central FD
# Smallest FD step of newton's derivative relative to |x| (2**-46, 64 ulps): rounding noise of
# f then costs the difference quotient ~1% when f's terms are of the size of f' x.
cdef double FD_FLOOR = 1.4210854715202004e-14


cdef struct Settings:
    double tol          # absolute step tolerance
    double rtol         # relative step tolerance
    double ftol         # residual tolerance (|f| <= ftol stops)
    int maxiter
    int method          # a Method
    bint bracketed
    bint fd             # f' from central finite differences (its step follows the last step)
    bint verify         # a step below tolerance needs a sign change within it (see after_value)


cdef inline void settings_init(Settings *s, double tol, double rtol, double ftol, int maxiter,
                               int method, bint bracketed, bint fd) noexcept nogil:
    s.tol = tol
    s.rtol = rtol
    s.ftol = ftol
    s.maxiter = maxiter
    s.method = method
    s.bracketed = bracketed
    s.fd = fd
    # A step below tolerance is evidence of a root within it only if the slope is exact and
    # the root simple (Newton's step then estimates the distance). An estimated slope can
    # make it tiny anywhere, and at a multiple root the distance is (m - 1) steps: so with
    # finite differences, secant chords and a bracket (where Newton's speed is not the point)
    # it is checked by a sign change (after_value). (A bracketed secant mostly nudges
    # instead, after_derivative.)
    s.verify = fd or bracketed or method == SECANT


cdef struct Element:
    double x, fx        # current iterate and f(x)
    double a, b, fa     # bracket [a, b] (either order) with f(a) of the sign opposite to f(b)
    double dx, dxold    # last two step lengths (bracket safeguard: is Newton shrinking fast?
                        # with FD, dx also bounds the FD step: inf before the first step)
    double xprev, fprev # previous iterate and its value (secant)
    double slope        # f' (estimate) of the last step: which side of x the root is on
    double xc, fc       # PROBING: the candidate root and f there (x is the probe)
    int nit, nfev
    int pending         # STEP_SMALL / PROBING / 0 (see after_value)


cdef enum:
    STEP_SMALL = 1      # the step to x was below tolerance: converged once f(x) is finite
                        # (with s.verify: once a sign change within the tolerance confirms it)
    PROBING = 2         # x is a probe at the tolerance from the candidate xc


cdef inline double fd_step(double x) noexcept nogil:
    """Central-difference step ~ cbrt(eps) max(1, |x|), made exactly representable around x."""
    cdef double h = FD_FACTOR * fmax(1.0, fabs(x))
    cdef volatile double xh = x + h
    return xh - x


cdef inline double fd_step_within(double x, double scale) noexcept nogil:
    """fd_step(x), but no longer than |scale| (see fd_scale), down to FD_FLOOR |x|.

    Near a multiple root (or any root far below 1) a fixed step dwarfs the distance to the
    root: the difference quotient then measures f's slope far away (for (x-r)^m about
    h^(m-1) instead of m (x-r)^(m-1)), the Newton step comes out much shorter than the
    distance and looks converged. The last step is of the order of that distance."""
    cdef double h = FD_FACTOR * fmax(1.0, fabs(x))
    cdef volatile double xh
    scale = fabs(scale)
    if scale < h:
        scale = fmax(scale, FD_FLOOR * fabs(x))
        if scale > 0.0:
            h = scale
    xh = x + h
    return xh - x


cdef inline int after_value(Element *e, double fx, const Settings *s) noexcept nogil:
    """Record f(x); return a final status, or RUNNING if a step must be taken.

    RUNNING with ``e.pending == PROBING``: f is wanted at the new x (a probe) before any step.
    With ``s.verify`` (see settings_init) a step below tolerance is no evidence by itself: an
    estimated slope can be far too steep (a finite-difference stencil much wider than the
    distance to a multiple root), making the step tiny anywhere. So f is evaluated at a probe
    one tolerance tau = tol + rtol |x| from the candidate x, on the side where the root should
    be; a sign change (or a zero) puts a root within tau of both, and the one with the smaller
    |f| is returned. Otherwise the probe, tau closer to the root, is the next iterate (a
    step; with none left, the candidate ends with MAX_ITERATIONS)."""
    cdef double tau, other
    e.fx = fx
    e.nfev += 1
    if not isfinite(fx):
        return NON_FINITE
    if e.pending == PROBING:
        e.pending = 0
        if fx == 0.0 or fabs(fx) <= s.ftol or (fx > 0.0) != (e.fc > 0.0):
            if fabs(e.fc) < fabs(fx):
                e.x = e.xc
                e.fx = e.fc
            return SUCCESS
        if e.nit >= s.maxiter:      # no step left for the probe: end at the candidate
            e.x = e.xc
            e.fx = e.fc
            return MAX_ITERATIONS
        e.nit += 1
        e.xprev = e.xc      # (secant: the next chord spans the probe's short step)
        e.fprev = e.fc
    if fx == 0.0 or fabs(fx) <= s.ftol or (e.pending and not s.verify):
        return SUCCESS
    if e.nit >= s.maxiter and not e.pending:
        return MAX_ITERATIONS
    if s.bracketed:
        # Keep the sign change inside [a, b]: x replaces the endpoint with the same sign.
        if (fx > 0.0) == (e.fa > 0.0):
            e.a = e.x
            e.fa = fx
        else:
            e.b = e.x
        # the root lies in [a, b], and x is one of its ends: |x - root| <= the width
        if fabs(e.b - e.a) <= s.tol + s.rtol * fabs(e.x):
            return SUCCESS
    if e.pending:
        # probe towards the root: the other end of the bracket, or where the slope points
        tau = s.tol + s.rtol * fabs(e.x)
        if s.bracketed:
            other = e.b if e.x == e.a else e.a
            tau = copysign(tau, other - e.x)
        else:
            tau = copysign(tau, -fx * e.slope)
        e.pending = PROBING
        e.xc = e.x
        e.fc = fx
        e.x = e.x + tau
        # the next FD step at the probe's scale (below the distance to the root, if it fails);
        # and the bracket safeguard starts afresh (the short step before was no Newton step)
        e.dx = tau
        e.dxold = INFINITY
    return RUNNING


cdef inline int after_derivative(Element *e, double df, double d2f,
                                 const Settings *s) noexcept nogil:
    """Take one step from e.x given f'(x) (and f''(x) for Halley); return a status or RUNNING."""
    cdef double step = 0.0, x_new = 0.0, adjust, low, high, tolerance
    cdef bint bisect = False, finite, nudge = False
    if s.method == SECANT:
        if e.x == e.xprev:
            if not s.bracketed:
                return SINGULAR
            df = 0.0        # bisect
        else:
            df = (e.fx - e.fprev) / (e.x - e.xprev)
        e.xprev = e.x
        e.fprev = e.fx
    finite = isfinite(df) and (s.method != HALLEY or isfinite(d2f))
    if not s.bracketed:
        if not finite:
            return NON_FINITE
        if df == 0.0:
            return SINGULAR
    if not finite or df == 0.0:
        # With a bracket a useless derivative costs one bisection step, not the element.
        bisect = True
    else:
        step = e.fx / df
        if s.method == HALLEY:
            adjust = 0.5 * step * d2f / df
            if fabs(adjust) < 1.0:
                step = step / (1.0 - adjust)
        x_new = e.x - step
        if s.bracketed:
            low = e.a if e.a < e.b else e.b
            high = e.b if e.a < e.b else e.a
            tolerance = s.tol + s.rtol * fabs(e.x)
            if fabs(step) <= tolerance and s.method == SECANT:
                # A secant slope can be a chord far wider than f's own scale (exp-like f after
                # a bisection: slope 1e17, step 1e-17, "converged" 0.06 from the root; no test
                # on the two points caught every case), so a tiny secant step is no evidence of
                # a root. Step by half the tolerance towards the other end instead (as Brent):
                # the bracket then closes around x, and its width decides convergence
                # (after_value).
                nudge = True
                step = -0.5 * tolerance if e.x == low else 0.5 * tolerance
                x_new = fmin(fmax(e.x - step, low), high)
            elif fabs(step) <= tolerance:
                # A converging step: keep it (clamped; x is an end of the bracket by now, and a
                # step below rounding must not be mistaken for leaving the bracket).
                x_new = fmin(fmax(x_new, low), high)
            elif not (low < x_new < high) or fabs(2.0 * step) > fabs(e.dxold):
                # rtsafe's safeguard: bisect when Newton leaves the bracket or does not shrink
                # the step fast enough.
                bisect = True
    if bisect:
        x_new = e.a + 0.5 * (e.b - e.a)
        step = e.x - x_new
    else:
        e.slope = df
    if s.bracketed or s.fd:
        e.dxold = e.dx
        e.dx = step
    if not isfinite(x_new):
        return NON_FINITE
    if fabs(step) <= s.tol + s.rtol * fabs(x_new) and not nudge:
        e.pending = STEP_SMALL
    e.x = x_new
    e.nit += 1
    return RUNNING


cdef inline void start_element(Element *e, double x0, const Settings *s) noexcept nogil:
    e.x = x0
    e.fx = 0.0
    e.nit = 0
    e.nfev = 0
    e.pending = 0
    e.xprev = 0.0
    e.fprev = 0.0
    e.a = 0.0
    e.b = 0.0
    e.fa = 0.0
    e.dx = INFINITY     # no step yet (the FD step is the default one)
    e.dxold = INFINITY
    e.slope = 0.0
    e.xc = 0.0
    e.fc = 0.0


cdef inline double secant_start(double x0, bint bracketed, double a, double b) noexcept nogil:
    """Second starting point of the secant method (SciPy's choice); with a bracket [a, b]
    (either order) mirrored about x0, then clamped, if it falls outside."""
    cdef double x1 = x0 * (1.0 + 1e-4) + (1e-4 if x0 >= 0.0 else -1e-4)
    cdef double low = fmin(a, b), high = fmax(a, b)
    if bracketed and not (low <= x1 <= high):
        x1 = fmin(fmax(x0 - (x1 - x0), low), high)
    return x1


cdef inline double fd_scale(double dx, double dxold) noexcept nogil:
    """Longest FD step of newton's derivative: the shorter of the last two steps dx, dxold
    (a bisection or a probe may come between Newton steps)."""
    return fmin(fabs(dx), fabs(dxold))


cdef inline void fd_points_in(double x, double scale, bint bracketed, double a, double b,
                              double *xp, double *xm) noexcept nogil:
    """Stencil x +- h of the central difference, h = fd_step_within(x, scale) (fd_scale: it
    shrinks with the distance to the root). With a bracket [a, b] (either order) that the
    stencil crosses: a central difference with step d/2, d the distance to the nearer end (a
    plain clamp would put a point at the end, which can be far from x on f's own scale); if x
    is within h/1024 of an end (rounding would swamp such a step), a one-sided difference of
    step h into the bracket (clamped to the other end)."""
    cdef double h = fd_step_within(x, scale), low, high, d
    xp[0] = x + h
    xm[0] = x - h
    if bracketed:
        low = fmin(a, b)
        high = fmax(a, b)
        if xm[0] < low or xp[0] > high:
            d = fmin(x - low, high - x)
            if d >= h * (1.0 / 1024.0):
                xp[0] = x + 0.5 * d
                xm[0] = x - 0.5 * d
            elif x - low <= high - x:
                xm[0] = x
                xp[0] = fmin(x + h, high)
            else:
                xp[0] = x
                xm[0] = fmax(x - h, low)


# --------------------------------------------------------------------------------------------
# Compiled elementwise equations: each element solved start to finish, elements in prange.

cdef inline int bracket_start(Element *e, double a, double b, double fa, double fb,
                              int *status) noexcept nogil:
    """Set up the bracket; return 1 if the element is already finished (status set)."""
    cdef double low = a if a < b else b, high = b if a < b else a
    if not isfinite(e.x):
        e.fx = NAN      # f is not evaluated at x
        status[0] = NON_FINITE
        return 1
    if not (isfinite(fa) and isfinite(fb)):
        e.fx = fb if isfinite(fa) else fa
        status[0] = NON_FINITE
        return 1
    if fa == 0.0 or fb == 0.0:
        e.x = a if fa == 0.0 else b
        e.fx = 0.0
        status[0] = SUCCESS
        return 1
    if (fa > 0.0) == (fb > 0.0) or not (low <= e.x <= high):
        e.fx = NAN      # f is not evaluated at x
        status[0] = OUT_OF_BOUNDS
        return 1
    e.a = a
    e.b = b
    e.fa = fa
    e.dx = fabs(b - a)
    e.dxold = e.dx
    return 0


cdef struct CompiledProblem:
    # Everything an element of a compiled batch needs, shared read-only by the threads.
    elementwise_t f
    elementwise_t fprime        # NULL: central finite differences
    elementwise_t fprime2       # Halley only
    void *f_data
    void *fprime_data
    void *fprime2_data
    int k                       # parameters per element
    const double *params        # (n, k) row-major
    const double *x0
    const double *a             # bracket ends (when bracketed)
    const double *b
    Settings s
    # outputs (fun_out, nit_out, nfev_out: NULL when not wanted)
    double *x_out
    double *fun_out
    Py_ssize_t *status_out
    Py_ssize_t *nit_out
    Py_ssize_t *nfev_out
    int *interrupted            # shared flag: a signal handler raised, stop every thread


cdef inline int element_begin(const CompiledProblem *P, Py_ssize_t i,
                              Element *e) noexcept nogil:
    """Start element i (bracket and secant set-up); return a status or RUNNING."""
    cdef int status = RUNNING
    cdef double *p = <double*>P.params + i * P.k
    cdef double fa, fb
    start_element(e, P.x0[i], &P.s)
    if P.s.bracketed:
        fa = P.f(P.a[i], P.k, p, P.f_data)
        fb = P.f(P.b[i], P.k, p, P.f_data)
        e.nfev += 2
        if bracket_start(e, P.a[i], P.b[i], fa, fb, &status):
            return status
    if P.s.method == SECANT:
        e.xprev = secant_start(e.x, P.s.bracketed, e.a, e.b)
        e.fprev = P.f(e.xprev, P.k, p, P.f_data)
        e.nfev += 1
    return RUNNING


cdef inline int element_step(const CompiledProblem *P, Py_ssize_t i,
                             Element *e) noexcept nogil:
    """One Newton round of element i: f, then (unless finished) f' and the step."""
    cdef double *p = <double*>P.params + i * P.k
    cdef double df = 0.0, d2f = 0.0, xp, xm
    cdef int status = after_value(e, P.f(e.x, P.k, p, P.f_data), &P.s)
    if status == RUNNING and e.pending == PROBING:
        status = after_value(e, P.f(e.x, P.k, p, P.f_data), &P.s)
    if status != RUNNING:
        return status
    if P.s.method != SECANT:
        if P.fprime != NULL:
            df = P.fprime(e.x, P.k, p, P.fprime_data)
            e.nfev += 1
        else:
            if P.s.bracketed:
                fd_points_in(e.x, fd_scale(e.dx, e.dxold), True, P.a[i], P.b[i], &xp, &xm)
            else:       # (P.a, P.b point to one dummy value)
                fd_points_in(e.x, fd_scale(e.dx, e.dxold), False, 0.0, 0.0, &xp, &xm)
            df = (P.f(xp, P.k, p, P.f_data) - P.f(xm, P.k, p, P.f_data)) / (xp - xm)
            e.nfev += 2
        if P.s.method == HALLEY:
            d2f = P.fprime2(e.x, P.k, p, P.fprime2_data)
            e.nfev += 1
    return after_derivative(e, df, d2f, &P.s)


cdef inline void element_output(const CompiledProblem *P, Py_ssize_t i, const Element *e,
                                int status) noexcept nogil:
    P.x_out[i] = e.x
    P.status_out[i] = status
    if P.fun_out != NULL:
        P.fun_out[i] = e.fx
        P.nit_out[i] = e.nit
        P.nfev_out[i] = e.nfev


cdef enum:
    LANES = 4               # elements iterated in lockstep by one thread
    BLOCK = 512             # elements per prange work item


cdef inline Py_ssize_t fill_lane(const CompiledProblem *P, Element *lane, Py_ssize_t *which,
                                 Py_ssize_t next_i, Py_ssize_t stop) noexcept nogil:
    """Load the next element that needs iterating into a lane (which = -1: none left)."""
    cdef int status
    which[0] = -1
    while next_i < stop:
        status = element_begin(P, next_i, lane)
        if status == RUNNING:
            which[0] = next_i
            return next_i + 1
        element_output(P, next_i, lane, status)
        next_i += 1
    return next_i


cdef void solve_block(const CompiledProblem *P, Py_ssize_t start,
                      Py_ssize_t stop, bint calling_thread) noexcept nogil:
    """Solve elements [start, stop): LANES independent elements advance one round at a time,
    so their (latency-bound) iterations overlap; a finished lane takes the next element. Each
    element's arithmetic is exactly that of solving it alone."""
    cdef Element lanes[LANES]
    cdef Py_ssize_t which[LANES]
    cdef Py_ssize_t next_i = start
    cdef int lane, active = 0, status, rounds = 0
    for lane in range(LANES):
        next_i = fill_lane(P, &lanes[lane], &which[lane], next_i, stop)
        active += which[lane] >= 0
    while active > 0:
        rounds += 1
        if rounds == SIGNAL_ROUNDS:
            rounds = 0
            if interrupted(P.interrupted, calling_thread):
                return
        for lane in range(LANES):
            if which[lane] < 0:
                continue
            status = element_step(P, which[lane], &lanes[lane])
            if status != RUNNING:
                element_output(P, which[lane], &lanes[lane], status)
                next_i = fill_lane(P, &lanes[lane], &which[lane], next_i, stop)
                active -= which[lane] < 0


cdef enum:
    PLAIN_LANES = 4         # elements in lockstep in solve_block_plain

cdef extern from "float.h":
    # a compile-time constant (a module-level double would be reloaded after every call)
    const double DBL_MAX


cdef inline int plain_newton_step(double x, double f, double d, bint small, bint more,
                                  double ftol, double tol, double rtol, double *x_new,
                                  bint *small_new) noexcept nogil:
    """The decisions of after_value + after_derivative for plain Newton with an exact f' and
    no bracket, from f and f' at x: RUNNING with the next iterate in x_new (small_new: its
    step was below tolerance), or the element's final status. ``small``: the step to x was
    below tolerance; ``more``: a step is left."""
    cdef double af = fabs(f), step, xn
    # step unless f is non-finite, |f| <= ftol (covers f == 0), the last step was below
    # tolerance or no step is left
    if more and not small and af > ftol and af <= DBL_MAX:
        step = f / d
        xn = x - step
        # a zero f' gives an infinite step; an infinite f' a zero one
        if fabs(xn) <= DBL_MAX and fabs(d) <= DBL_MAX:
            x_new[0] = xn
            small_new[0] = fabs(step) <= tol + rtol * fabs(xn)
            return RUNNING
        return SINGULAR if d == 0.0 else NON_FINITE
    if small:
        return SUCCESS if af <= DBL_MAX else NON_FINITE
    if not isfinite(f):
        return NON_FINITE
    return SUCCESS if af <= ftol else MAX_ITERATIONS


cdef struct PlainLanes:
    # State of the lanes of solve_block_plain. lim[lane] is maxiter, or -1 once a step was
    # below tolerance (so "nit < lim" is the one test of "take another step").
    double x[PLAIN_LANES]
    double *p[PLAIN_LANES]
    int nit[PLAIN_LANES]
    int lim[PLAIN_LANES]
    Py_ssize_t which[PLAIN_LANES]   # element index; -1: lane finished, none left to load


cdef Py_ssize_t plain_lane_end(const CompiledProblem *P, PlainLanes *L, int lane, double fx,
                               double df, bint after_f, Py_ssize_t next_i,
                               Py_ssize_t stop) noexcept nogil:
    """Write the outputs of the element in a finished lane and load the next element into it
    (which = -1 if none is left). Returns the new next_i. Kept out of line: it runs once per
    element, the lockstep loop once per iteration."""
    cdef Py_ssize_t i = L.which[lane]
    cdef int c, nit = L.nit[lane]
    if after_f:
        # the decisions of after_value
        if not isfinite(fx):
            c = NON_FINITE
        elif fx == 0.0 or fabs(fx) <= P.s.ftol or L.lim[lane] < 0:
            c = SUCCESS
        else:
            c = MAX_ITERATIONS
    else:
        # after_derivative: f' not finite, zero, or the step not finite
        c = SINGULAR if df == 0.0 else NON_FINITE
    P.x_out[i] = L.x[lane]
    P.status_out[i] = c
    if P.fun_out != NULL:
        P.fun_out[i] = fx
        P.nit_out[i] = nit
        P.nfev_out[i] = 2 * nit + (1 if after_f else 2)
    if next_i < stop:
        L.which[lane] = next_i
        L.x[lane] = P.x0[next_i]
        L.p[lane] = <double*>P.params + next_i * P.k
        L.nit[lane] = 0
        L.lim[lane] = P.s.maxiter
        return next_i + 1
    L.which[lane] = -1
    return next_i


cdef void solve_block_plain(const CompiledProblem *shared, Py_ssize_t start,
                            Py_ssize_t stop, bint calling_thread) noexcept nogil:
    """solve_block for plain Newton with an analytic f' and no bracket.

    One pass per round over the lanes (PLAIN_LANES elements in lockstep): f, then f' and the
    step. Consecutive lanes are independent, so the processor overlaps one lane's division
    with the next lane's calls; the per-round state is small (x, parameters, nit, one limit)
    and the common case takes one predictable branch. A finished element's lane takes the
    next element at once; lanes left without one are dropped after the pass. The decisions
    are those of after_value + after_derivative (x, fun, status, nit, nfev identical)."""
    cdef PlainLanes L
    cdef Py_ssize_t next_i = start
    cdef int lane, active = 0, live, k = shared.k, nit, lim, rounds = 0
    cdef bint dropped
    cdef double xl, fx, af, df, step, xn
    cdef double *p
    # A private copy: the user's functions are opaque calls that could (as far as the compiler
    # knows) change *shared, which would force reloading every field after every call.
    cdef CompiledProblem P = shared[0]
    cdef elementwise_t func = P.f, deriv = P.fprime
    cdef void *f_data = P.f_data
    cdef void *d_data = P.fprime_data
    cdef double ftol = P.s.ftol, tol = P.s.tol, rtol = P.s.rtol
    while active < PLAIN_LANES and next_i < stop:
        L.which[active] = next_i
        L.x[active] = P.x0[next_i]
        L.p[active] = <double*>P.params + next_i * k
        L.nit[active] = 0
        L.lim[active] = P.s.maxiter
        next_i += 1
        active += 1
    while active > 0:
        rounds += 1
        if rounds == SIGNAL_ROUNDS:
            rounds = 0
            if interrupted(P.interrupted, calling_thread):
                return
        dropped = False
        for lane in range(active):
            xl = L.x[lane]
            p = L.p[lane]
            fx = func(xl, k, p, f_data)
            af = fabs(fx)
            nit = L.nit[lane]
            # step unless f is non-finite, |f| <= ftol (covers f == 0), the last step was
            # below tolerance (lim = -1), or maxiter steps were taken
            if (af > ftol) & (af <= DBL_MAX) & (nit < L.lim[lane]):
                df = deriv(xl, k, p, d_data)
                step = fx / df
                xn = xl - step
                # a zero f' gives an infinite step; an infinite f' a zero one
                if (fabs(xn) <= DBL_MAX) & (fabs(df) <= DBL_MAX):
                    L.x[lane] = xn
                    L.nit[lane] = nit + 1
                    # a select, not a branch: which step converges is unpredictable
                    lim = L.lim[lane]
                    L.lim[lane] = -1 if fabs(step) <= tol + rtol * fabs(xn) else lim
                    continue
                next_i = plain_lane_end(&P, &L, lane, fx, df, False, next_i, stop)
            else:
                next_i = plain_lane_end(&P, &L, lane, fx, 0.0, True, next_i, stop)
            dropped |= L.which[lane] < 0
        if dropped:
            live = 0
            for lane in range(active):
                if L.which[lane] >= 0:
                    L.which[live] = L.which[lane]
                    L.x[live] = L.x[lane]
                    L.p[live] = L.p[lane]
                    L.nit[live] = L.nit[lane]
                    L.lim[live] = L.lim[lane]
                    live += 1
            active = live


cdef enum:
    MIN_BLOCKS_PER_THREAD = 4   # of BLOCK elements: less work per thread than that (~0.1 ms)
                                # costs more in waking threads than it saves


cdef inline int team_for(Py_ssize_t blocks, int nt) noexcept nogil:
    """The threads worth starting for ``blocks`` blocks of BLOCK elements: ``nt`` at most, one
    per MIN_BLOCKS_PER_THREAD blocks (results do not depend on it)."""
    cdef Py_ssize_t useful = blocks // MIN_BLOCKS_PER_THREAD
    return <int>max(1, min(<Py_ssize_t>nt, useful))


cdef inline void solve_compiled_block(const CompiledProblem *P, bint plain, Py_ssize_t block,
                                      Py_ssize_t n, bint calling_thread) noexcept nogil:
    if plain:
        solve_block_plain(P, block * BLOCK, min(n, (block + 1) * BLOCK), calling_thread)
    else:
        solve_block(P, block * BLOCK, min(n, (block + 1) * BLOCK), calling_thread)


def newton_compiled(UserFunction f, UserFunction fprime, UserFunction fprime2,
                    const double[::1] x0, const double[:, ::1] params,
                    const double[::1] a, const double[::1] b,
                    double tol, double rtol, double ftol, int maxiter, int method,
                    object n_threads, bint details=True):
    """Solve ``f(x_i; params[i]) = 0`` for every element i, all compiled, on ``n_threads``.

    ``fprime``/``fprime2`` may be None (finite differences / not Halley). ``a``/``b`` are the
    per-element bracket (empty arrays: no bracket). Returns ``(x, fun, status, nit, nfev)``;
    ``fun``, ``nit`` and ``nfev`` are None unless ``details`` (three arrays fewer to write).
    """
    cdef Py_ssize_t n = x0.shape[0], block, blocks
    cdef int nt = resolve_threads(n_threads)
    cdef bint plain
    cdef CompiledProblem P
    cdef double dummy = 0.0
    cdef int stop_flag = 0
    P.interrupted = &stop_flag
    P.f = <elementwise_t>f.c_function
    P.f_data = f.user_data
    P.fprime = NULL
    P.fprime_data = NULL
    P.fprime2 = NULL
    P.fprime2_data = NULL
    if fprime is not None:
        P.fprime = <elementwise_t>fprime.c_function
        P.fprime_data = fprime.user_data
    if fprime2 is not None:
        P.fprime2 = <elementwise_t>fprime2.c_function
        P.fprime2_data = fprime2.user_data
    P.k = <int>params.shape[1]
    P.params = &params[0, 0] if P.k > 0 and n > 0 else &dummy
    P.x0 = &x0[0] if n > 0 else &dummy
    settings_init(&P.s, tol, rtol, ftol, maxiter, method, a.shape[0] > 0,
                  P.fprime == NULL and method != SECANT)
    P.a = &a[0] if P.s.bracketed else &dummy
    P.b = &b[0] if P.s.bracketed else &dummy
    x_out = np.empty(n, dtype=np.float64)
    status_out = np.empty(n, dtype=np.intp)
    fun_out = nit_out = nfev_out = None
    P.fun_out = NULL
    P.nit_out = P.nfev_out = NULL
    if details:
        fun_out = np.empty(n, dtype=np.float64)
        nit_out = np.empty(n, dtype=np.intp)
        nfev_out = np.empty(n, dtype=np.intp)
        P.fun_out = <double*>cnp.PyArray_DATA(fun_out)
        P.nit_out = <Py_ssize_t*>cnp.PyArray_DATA(nit_out)
        P.nfev_out = <Py_ssize_t*>cnp.PyArray_DATA(nfev_out)
    if n == 0:
        return x_out, fun_out, status_out, nit_out, nfev_out
    P.x_out = <double*>cnp.PyArray_DATA(x_out)
    P.status_out = <Py_ssize_t*>cnp.PyArray_DATA(status_out)
    blocks = (n + BLOCK - 1) // BLOCK
    nt = team_for(blocks, nt)
    plain = P.s.method == NEWTON and P.fprime != NULL and not P.s.bracketed
    if nt == 1:         # (a team of one still costs microseconds to start)
        with nogil:
            for block in range(blocks):
                solve_compiled_block(&P, plain, block, n, True)
    else:
        with nogil, parallel(num_threads=nt):
            for block in prange(blocks, schedule="static"):
                solve_compiled_block(&P, plain, block, n, threadid() == 0)
    if stop_flag:
        raise_pending_error()
    return x_out, fun_out, status_out, nit_out, nfev_out


def compiled_values(UserFunction f, const double[::1] x, const double[:, ::1] params,
                    const Py_ssize_t[::1] elements):
    """``f(x[i]; params[i])`` for i in ``elements``, compiled elementwise f (the bracket ends of
    the elements that failed at the start, for their messages)."""
    cdef Py_ssize_t j, i, n = elements.shape[0]
    cdef int k = <int>params.shape[1]
    cdef elementwise_t func = <elementwise_t>f.c_function
    cdef void *data = f.user_data
    cdef double dummy = 0.0
    out = np.empty(n)
    cdef double[::1] ov = out
    cdef double *p = &dummy
    with nogil:
        for j in range(n):
            i = elements[j]
            if k > 0:
                p = <double*>&params[i, 0]
            ov[j] = func(x[i], k, p, data)
    return out


# --------------------------------------------------------------------------------------------
# Block-compiled elementwise equations: one call evaluates f and f' at a block of elements, so
# the user's loop over the block can vectorize. Threads take whole blocks; within a block the
# active elements are compacted after every call (finished ones are never evaluated again).
# Each element's arithmetic is that of solving it alone, so results do not depend on the block
# size or the thread count -- unless a block call fails (non-zero return): then every element
# still active in that block ends with CALLBACK_ERROR.

cdef enum:
    SIGNAL_BLOCK_CALLS = 256    # block calls between two checks for signals


cdef struct BlockProblem:
    # Everything a block of a batch needs, shared read-only by the threads.
    block_equations_t f
    void *f_data
    int k                       # parameters per element
    const double *params        # (n, k) row-major
    const double *x0
    const double *a             # bracket ends (when bracketed)
    const double *b
    Settings s
    # outputs (fun_out, nit_out, nfev_out: NULL when not wanted)
    double *x_out
    double *fun_out
    Py_ssize_t *status_out
    Py_ssize_t *nit_out
    Py_ssize_t *nfev_out
    int *interrupted            # shared flag: a signal handler raised, stop every thread


cdef struct BlockScratch:
    # One thread's buffers for the active elements of its current block (capacity: the block
    # size), compacted in place after each call of f.
    double *x
    double *fx
    double *dfx
    double *fa                  # f at the bracket's first ends (bracketed)
    double *p                   # the active elements' parameter rows, k per element
    Py_ssize_t *idx             # index in the batch (plain: ~index once a step was small)
    Element *e                  # per-element state (bracketed only)
    int calls                   # calls of f since the last check for signals
    bint calling_thread


cdef inline void block_output(const BlockProblem *P, Py_ssize_t i, double x, double fx,
                              int status, int nit, int nfev) noexcept nogil:
    P.x_out[i] = x
    P.status_out[i] = status
    if P.fun_out != NULL:
        P.fun_out[i] = fx
        P.nit_out[i] = nit
        P.nfev_out[i] = nfev


cdef inline int block_call(const BlockProblem *P, BlockScratch *w, Py_ssize_t n,
                           double *fx, double *dfx) noexcept nogil:
    """f (and f' unless dfx is NULL) at the n points w.x; non-zero: the call failed, or a
    signal handler raised (then P.interrupted is set)."""
    w.calls += 1
    if w.calls == SIGNAL_BLOCK_CALLS:
        w.calls = 0
        if interrupted(P.interrupted, w.calling_thread):
            return 1
    return P.f(<int>n, w.x, P.k, w.p, fx, dfx, P.f_data)


cdef inline void block_move_params(BlockScratch *w, int k, Py_ssize_t src,
                                   Py_ssize_t dst) noexcept nogil:
    cdef int r
    if k == 1:          # the common case, without a loop
        w.p[dst] = w.p[src]
    else:
        for r in range(k):
            w.p[dst * k + r] = w.p[src * k + r]


cdef void block_solve_plain(const BlockProblem *P, BlockScratch *w, Py_ssize_t start,
                            Py_ssize_t stop) noexcept nogil:
    """Plain Newton on elements [start, stop): one call of f per round for all active ones,
    then block_plain_round steps them (plain_newton_step's decisions)."""
    cdef Py_ssize_t n = stop - start, i, e
    cdef int k = P.k, nit = 0
    memcpy(w.x, P.x0 + start, n * sizeof(double))
    memcpy(w.p, P.params + start * k, n * k * sizeof(double))
    for i in range(n):
        w.idx[i] = start + i
    while n > 0:
        if block_call(P, w, n, w.fx, w.dfx) != 0:
            for i in range(n):
                e = w.idx[i]
                block_output(P, e if e >= 0 else ~e, w.x[i], NAN, CALLBACK_ERROR, nit, nit + 1)
            return
        n = block_plain_round(P, w, n, nit)
        nit += 1


cdef inline Py_ssize_t block_plain_round(const BlockProblem *P, BlockScratch *w, Py_ssize_t n,
                                         int nit) noexcept nogil:
    """Step the n active elements from f and f' at w.x, write out the finished ones and move
    the running ones up (stable compaction); returns how many run on.

    The common case -- a step is taken -- is one branch on conditions combined without
    short-circuits (f finite and above ftol, the step and f' finite, the last step not below
    tolerance, steps left), the step computed before knowing it is wanted; the rest (once
    per element) goes to plain_newton_step, whose decisions these are."""
    cdef Py_ssize_t i, j = 0, e
    cdef int k = P.k, status
    cdef bint more = nit < P.s.maxiter, small
    cdef double f, d, xi, step, xn, af, ftol = P.s.ftol, tol = P.s.tol, rtol = P.s.rtol
    cdef double *x = w.x
    cdef double *p = w.p
    cdef Py_ssize_t *idx = w.idx
    cdef const double *fx = w.fx
    cdef const double *dfx = w.dfx
    for i in range(n):
        f = fx[i]
        d = dfx[i]
        xi = x[i]
        e = idx[i]
        af = fabs(f)
        step = f / d
        xn = xi - step
        if more & (e >= 0) & (af > ftol) & (af <= DBL_MAX) & (fabs(xn) <= DBL_MAX) \
                & (fabs(d) <= DBL_MAX):
            small = fabs(step) <= tol + rtol * fabs(xn)
            x[j] = xn
            idx[j] = e ^ -(<Py_ssize_t>small)       # ~e once the step was below tolerance
            if k == 1:
                p[j] = p[i]
            elif j != i:
                block_move_params(w, k, i, j)
            j += 1
        else:
            status = plain_newton_step(xi, f, d, e < 0, more, ftol, tol, rtol, &xn, &small)
            block_output(P, e if e >= 0 else ~e, xi, f, status, nit, nit + 1)
    return j


cdef Py_ssize_t block_start_bracketed(const BlockProblem *P, BlockScratch *w, Py_ssize_t start,
                                      Py_ssize_t stop) noexcept nogil:
    """Evaluate f at both bracket ends of elements [start, stop) and set up their state;
    finished elements are written out. Returns the number left active (-1: interrupted)."""
    cdef Py_ssize_t n = stop - start, i, j = 0
    cdef int k = P.k, status, failed
    memcpy(w.p, P.params + start * k, n * k * sizeof(double))
    memcpy(w.x, P.a + start, n * sizeof(double))
    failed = block_call(P, w, n, w.fa, NULL)
    if failed == 0:
        memcpy(w.x, P.b + start, n * sizeof(double))
        failed = block_call(P, w, n, w.fx, NULL)
    if failed != 0:
        if flag_read(P.interrupted):
            return -1
        for i in range(n):
            block_output(P, start + i, P.x0[start + i], NAN, CALLBACK_ERROR, 0, 2)
        return 0
    for i in range(n):
        start_element(&w.e[j], P.x0[start + i], &P.s)
        w.e[j].nfev = 2
        status = RUNNING
        if bracket_start(&w.e[j], P.a[start + i], P.b[start + i], w.fa[i], w.fx[i], &status):
            block_output(P, start + i, w.e[j].x, w.e[j].fx, status, 0, 2)
            continue
        w.idx[j] = start + i
        if j != i:
            block_move_params(w, k, i, j)
        j += 1
    return j


cdef void block_solve_bracketed(const BlockProblem *P, BlockScratch *w, Py_ssize_t start,
                                Py_ssize_t stop) noexcept nogil:
    """Bracketed Newton on elements [start, stop): each round one call of f and f' at the
    active iterates, then after_value and (unless f is wanted at a probe first)
    after_derivative decide each element, as for the other kinds of f."""
    cdef Py_ssize_t n = block_start_bracketed(P, w, start, stop), i, j
    cdef int status
    while n > 0:
        for i in range(n):
            w.x[i] = w.e[i].x
        if block_call(P, w, n, w.fx, w.dfx) != 0:
            for i in range(n):
                block_output(P, w.idx[i], w.e[i].x, NAN, CALLBACK_ERROR, w.e[i].nit,
                             w.e[i].nfev + 1)
            return
        j = 0
        for i in range(n):
            status = after_value(&w.e[i], w.fx[i], &P.s)
            if status == RUNNING and w.e[i].pending != PROBING:
                status = after_derivative(&w.e[i], w.dfx[i], 0.0, &P.s)
            if status != RUNNING:
                block_output(P, w.idx[i], w.e[i].x, w.e[i].fx, status, w.e[i].nit,
                             w.e[i].nfev)
                continue
            if j != i:
                w.e[j] = w.e[i]
                w.idx[j] = w.idx[i]
                block_move_params(w, P.k, i, j)
            j += 1
        n = j


cdef BlockScratch *block_scratch_new(Py_ssize_t size, int k, bint bracketed) noexcept nogil:
    """A thread's buffers for blocks of ``size`` elements (NULL if out of memory)."""
    cdef BlockScratch *w = <BlockScratch*>malloc(sizeof(BlockScratch))
    if w == NULL:
        return NULL
    w.x = <double*>malloc(4 * size * sizeof(double))
    w.p = <double*>malloc(size * (k if k > 0 else 1) * sizeof(double))
    w.idx = <Py_ssize_t*>malloc(size * sizeof(Py_ssize_t))
    w.e = <Element*>malloc(size * sizeof(Element)) if bracketed else NULL
    w.calls = 0
    w.calling_thread = False
    if w.x == NULL or w.p == NULL or w.idx == NULL or (w.e == NULL and bracketed):
        block_scratch_free(w)
        return NULL
    w.fx = w.x + size
    w.dfx = w.fx + size
    w.fa = w.dfx + size
    return w


cdef void block_scratch_free(BlockScratch *w) noexcept nogil:
    if w != NULL:
        free(w.x)
        free(w.p)
        free(w.idx)
        free(w.e)
        free(w)


cdef inline void solve_equation_block(const BlockProblem *P, BlockScratch *w, Py_ssize_t block,
                                      Py_ssize_t size, Py_ssize_t n) noexcept nogil:
    if flag_read(P.interrupted):
        return
    if P.s.bracketed:
        block_solve_bracketed(P, w, block * size, min(n, (block + 1) * size))
    else:
        block_solve_plain(P, w, block * size, min(n, (block + 1) * size))


def newton_block(UserFunction f, const double[::1] x0, const double[:, ::1] params,
                 const double[::1] a, const double[::1] b, double tol, double rtol, double ftol,
                 int maxiter, object n_threads, bint details=True,
                 Py_ssize_t block_size=512):
    """Solve ``f(x_i; params[i]) = 0`` for every element i by Newton's method (bracketed when
    ``a``/``b`` are not empty), ``f`` a compiled block function giving f and f' in one call,
    on ``n_threads`` threads over blocks of ``block_size`` elements. Returns ``(x, fun, status,
    nit, nfev)`` as :func:`newton_compiled`; ``nfev`` counts the calls (each gives f and f')."""
    cdef Py_ssize_t n = x0.shape[0], blocks, block
    cdef int nt = resolve_threads(n_threads), stop_flag = 0, out_of_memory = 0
    cdef int *no_memory = &out_of_memory      # (assigned in the parallel block: via a pointer)
    cdef BlockProblem P
    cdef BlockScratch *w
    cdef double dummy = 0.0
    if block_size < 1 or block_size > INT_MAX:
        raise ValueError("block_size must be between 1 and INT_MAX")
    if f.signature != "block":
        raise TypeError("newton_block needs a compiled block function")
    P.f = <block_equations_t>f.c_function
    P.f_data = f.user_data
    P.k = <int>params.shape[1]
    P.params = &params[0, 0] if P.k > 0 and n > 0 else &dummy
    P.x0 = &x0[0] if n > 0 else &dummy
    settings_init(&P.s, tol, rtol, ftol, maxiter, NEWTON, a.shape[0] > 0, False)
    P.a = &a[0] if P.s.bracketed and n > 0 else &dummy
    P.b = &b[0] if P.s.bracketed and n > 0 else &dummy
    P.interrupted = &stop_flag
    x_out, fun_out, status_out, nit_out, nfev_out = _outputs(n, details)
    P.x_out = <double*>cnp.PyArray_DATA(x_out)
    P.status_out = <Py_ssize_t*>cnp.PyArray_DATA(status_out)
    P.fun_out = <double*>cnp.PyArray_DATA(fun_out) if details else NULL
    P.nit_out = <Py_ssize_t*>cnp.PyArray_DATA(nit_out) if details else NULL
    P.nfev_out = <Py_ssize_t*>cnp.PyArray_DATA(nfev_out) if details else NULL
    if n == 0:
        return x_out, fun_out, status_out, nit_out, nfev_out
    block_size = min(block_size, n)
    blocks = (n + block_size - 1) // block_size
    nt = team_for((n + BLOCK - 1) // BLOCK, nt)
    if nt == 1:         # (a team of one still costs microseconds to start)
        w = block_scratch_new(block_size, P.k, P.s.bracketed)
        if w == NULL:
            raise MemoryError("newton: no memory for the block buffers")
        w.calling_thread = True
        with nogil:
            for block in range(blocks):
                solve_equation_block(&P, w, block, block_size, n)
        block_scratch_free(w)
    else:
        with nogil, parallel(num_threads=nt):
            # (a pointer assigned here is private to each thread; a struct whose address is
            # taken would be shared)
            w = block_scratch_new(block_size, P.k, P.s.bracketed)
            if w == NULL:
                no_memory[0] = 1
            else:
                w.calling_thread = threadid() == 0
            # blocks dealt round-robin: neighbouring blocks often need alike numbers of rounds
            for block in prange(blocks, schedule="static", chunksize=1):
                if not flag_read(no_memory):
                    solve_equation_block(&P, w, block, block_size, n)
            block_scratch_free(w)
    if stop_flag:
        raise_pending_error()
    if out_of_memory:
        raise MemoryError("newton: no memory for the threads' block buffers")
    return x_out, fun_out, status_out, nit_out, nfev_out


def _outputs(Py_ssize_t n, bint details):
    """Output arrays of a compiled batch: x, fun, status, nit, nfev (fun, nit, nfev None
    unless ``details``)."""
    x_out = np.empty(n, dtype=np.float64)
    status_out = np.empty(n, dtype=np.intp)
    if not details:
        return x_out, None, status_out, None, None
    return (x_out, np.empty(n, dtype=np.float64), status_out, np.empty(n, dtype=np.intp),
            np.empty(n, dtype=np.intp))


def block_values(UserFunction f, const double[::1] x, const double[:, ::1] params,
                 const Py_ssize_t[::1] elements):
    """``f(x[i]; params[i])`` for i in ``elements`` (one call), compiled block f; NaN if the
    call fails (the bracket ends of the elements that failed at the start, for messages)."""
    cdef Py_ssize_t j, n = elements.shape[0]
    cdef int k = <int>params.shape[1], r
    cdef block_equations_t func = <block_equations_t>f.c_function
    points = np.empty(n)
    rows = np.empty((n, max(k, 1)))
    out = np.empty(n)
    cdef double[::1] pv = points, ov = out
    cdef double[:, ::1] rv = rows
    if n == 0:
        return out
    for j in range(n):
        pv[j] = x[elements[j]]
        for r in range(k):
            rv[j, r] = params[elements[j], r]
    with nogil:
        if func(<int>n, &pv[0], k, &rv[0, 0], &ov[0], NULL, f.user_data) != 0:
            ov[:] = NAN
    return out


# --------------------------------------------------------------------------------------------
# Python (vectorized) elementwise equations: the state of the active elements as arrays.

cdef struct BatchArrays:
    # Raw pointers into the per-element state arrays (owned by an ElementwiseBatch). The
    # state is kept minimal (x, nit, nfev, pending; bracket/step/secant/probe fields only when
    # used) because each round streams it through memory once.
    double *x
    double *a
    double *b
    double *fa
    double *dx
    double *dxold
    double *xprev
    double *fprev
    double *slope
    double *xc
    double *fc
    int *nit
    int *nfev
    signed char *pending
    Py_ssize_t *idx
    Py_ssize_t *holes   # slots of the elements finished in the current round
    double *params      # (rows, capacity) row-major
    Py_ssize_t rows, capacity
    int deriv_cost      # evaluations of f' (f'') per round (2 for finite differences)
    # Finished elements, appended in finishing order (sequential writes: scattering them to
    # the outputs as they finish costs a cache miss per value; finish() scatters once).
    Py_ssize_t n_done
    Py_ssize_t *done_idx
    double *done_x
    double *done_fun
    signed char *done_status
    int *done_nit
    int *done_nfev


cdef inline void batch_load(const BatchArrays *A, const Settings *s, Py_ssize_t i,
                            Element *e) noexcept nogil:
    e.x = A.x[i]
    e.nit = A.nit[i]
    e.nfev = A.nfev[i]
    e.pending = A.pending[i]
    if s.bracketed:
        e.a = A.a[i]
        e.b = A.b[i]
        e.fa = A.fa[i]
    if s.bracketed or s.fd:
        e.dx = A.dx[i]
        e.dxold = A.dxold[i]
    if s.method == SECANT:
        e.xprev = A.xprev[i]
        e.fprev = A.fprev[i]
    if s.verify:
        e.slope = A.slope[i]
        e.xc = A.xc[i]
        e.fc = A.fc[i]


cdef inline void batch_store(const BatchArrays *A, const Settings *s, Py_ssize_t i,
                             const Element *e) noexcept nogil:
    A.x[i] = e.x
    A.nit[i] = e.nit
    A.nfev[i] = e.nfev
    A.pending[i] = <signed char>e.pending
    if s.bracketed:
        A.a[i] = e.a
        A.b[i] = e.b
        A.fa[i] = e.fa
    if s.bracketed or s.fd:
        A.dx[i] = e.dx
        A.dxold[i] = e.dxold
    if s.method == SECANT:
        A.xprev[i] = e.xprev
        A.fprev[i] = e.fprev
    if s.verify:
        A.slope[i] = e.slope
        A.xc[i] = e.xc
        A.fc[i] = e.fc


cdef inline Py_ssize_t batch_keep(BatchArrays *A, const Settings *s, Py_ssize_t i,
                                  Py_ssize_t holes, const Element *e, int status) noexcept nogil:
    """Store element i's new state in place if it runs on; otherwise log its outputs and
    record slot i as a hole (filled by :c:func:`batch_fill_holes` after the pass). Returns the
    number of holes."""
    if status == RUNNING:
        batch_store(A, s, i, e)
        return holes
    batch_done(A, A.idx[i], e.x, e.fx, status, e.nit, e.nfev)
    A.holes[holes] = i
    return holes + 1


cdef inline Py_ssize_t batch_fill_holes(const BatchArrays *A, const Settings *s, Py_ssize_t n,
                                        Py_ssize_t holes) noexcept nogil:
    """Move the last running elements into the holes (ascending); return the active count.

    Costs O(holes), not O(n): the order of the active elements does not matter (``idx`` maps
    each back to its place in the outputs)."""
    cdef Py_ssize_t lo = 0, hi = holes - 1, last = n - 1, r, dest
    cdef Element e
    start_element(&e, 0.0, s)
    while lo <= hi:
        if last == A.holes[hi]:
            last -= 1
            hi -= 1
            continue
        dest = A.holes[lo]
        batch_load(A, s, last, &e)
        batch_store(A, s, dest, &e)
        A.idx[dest] = A.idx[last]
        for r in range(A.rows):
            A.params[r * A.capacity + dest] = A.params[r * A.capacity + last]
        last -= 1
        lo += 1
    return last + 1


cdef inline void batch_done(BatchArrays *A, Py_ssize_t idx, double x, double fx, int status,
                            int nit, Py_ssize_t nfev) noexcept nogil:
    cdef Py_ssize_t m = A.n_done
    A.done_idx[m] = idx
    A.done_x[m] = x
    A.done_fun[m] = fx
    A.done_status[m] = <signed char>status
    A.done_nit[m] = nit
    A.done_nfev[m] = <int>nfev
    A.n_done = m + 1


cdef class ElementwiseBatch:
    """Per-element state of a batch Newton solve, compacted to the active elements.

    Each round the wrapper calls the user's vectorized functions on :attr:`x` ``[:n_active]``
    (and the rows of :attr:`params` sliced the same way) and hands the values to
    :meth:`iterate`, which updates every active element in one pass, writes the finished ones
    to the done-log and fills their slots with running ones from the end, so finished elements
    are never evaluated again.
    """
    cdef Settings s
    cdef BatchArrays A
    cdef public Py_ssize_t n_active
    cdef public object x, params, x_out, fun_out, status_out, nit_out, nfev_out
    cdef object _owned, _done

    def __init__(self, const double[::1] x0, object params, double tol, double rtol,
                 double ftol, int maxiter, int method, bint bracketed, bint fd,
                 int deriv_cost):
        cdef Py_ssize_t n = x0.shape[0]
        settings_init(&self.s, tol, rtol, ftol, maxiter, method, bracketed, fd)
        self.n_active = n
        self.x = np.array(x0, dtype=np.float64)
        self.params = np.array(params, dtype=np.float64, order="C")
        if self.params.ndim != 2 or self.params.shape[1] != n:
            raise ValueError("internal: params must have shape (rows, n)")
        self.x_out = self.fun_out = self.status_out = self.nit_out = self.nfev_out = None
        self._owned = self._state_arrays(n)
        self._done = self._log_arrays(n)
        self.A.x = _double_ptr(self.x)
        self.A.params = _double_ptr(self.params)
        self.A.rows = self.params.shape[0]
        self.A.capacity = n
        self.A.deriv_cost = deriv_cost

    cdef tuple _state_arrays(self, Py_ssize_t n):
        """The per-element state beside x (those a method does not use: one element) and the
        hole list, pointed to by self.A; returns them, for the batch to own."""
        cdef const Settings *s = &self.s
        bracket = [np.zeros(n if s.bracketed else 1) for _ in range(3)]
        # no step yet (see start_element)
        steps = [np.full(n if s.bracketed or s.fd else 1, np.inf) for _ in range(2)]
        secant = [np.zeros(n if s.method == SECANT else 1) for _ in range(2)]
        probe = [np.zeros(n if s.verify else 1) for _ in range(3)]
        nit = np.zeros(n, dtype=np.intc)
        nfev = np.zeros(n, dtype=np.intc)
        pending = np.zeros(n, dtype=np.int8)
        idx = np.arange(n, dtype=np.intp)
        holes = np.empty(n, dtype=np.intp)
        self.A.a = _double_ptr(bracket[0])
        self.A.b = _double_ptr(bracket[1])
        self.A.fa = _double_ptr(bracket[2])
        self.A.dx = _double_ptr(steps[0])
        self.A.dxold = _double_ptr(steps[1])
        self.A.xprev = _double_ptr(secant[0])
        self.A.fprev = _double_ptr(secant[1])
        self.A.slope = _double_ptr(probe[0])
        self.A.xc = _double_ptr(probe[1])
        self.A.fc = _double_ptr(probe[2])
        self.A.nit = <int*>cnp.PyArray_DATA(nit)
        self.A.nfev = <int*>cnp.PyArray_DATA(nfev)
        self.A.pending = <signed char*>cnp.PyArray_DATA(pending)
        self.A.idx = <Py_ssize_t*>cnp.PyArray_DATA(idx)
        self.A.holes = <Py_ssize_t*>cnp.PyArray_DATA(holes)
        return bracket, steps, secant, probe, nit, nfev, pending, idx, holes

    cdef tuple _log_arrays(self, Py_ssize_t n):
        """The done-log (finished elements in finishing order), pointed to by self.A."""
        log = (np.empty(n, dtype=np.intp), np.empty(n), np.empty(n), np.empty(n, dtype=np.int8),
               np.empty(n, dtype=np.intc), np.empty(n, dtype=np.intc))
        self.A.n_done = 0
        self.A.done_idx = <Py_ssize_t*>cnp.PyArray_DATA(log[0])
        self.A.done_x = _double_ptr(log[1])
        self.A.done_fun = _double_ptr(log[2])
        self.A.done_status = <signed char*>cnp.PyArray_DATA(log[3])
        self.A.done_nit = <int*>cnp.PyArray_DATA(log[4])
        self.A.done_nfev = <int*>cnp.PyArray_DATA(log[5])
        return log

    def start_bracket(self, const double[::1] a, const double[::1] b, const double[::1] fa,
                      const double[::1] fb):
        """Set every element's bracket from f at its ends (finished elements move out)."""
        cdef Py_ssize_t i, holes = 0
        cdef Element e
        cdef int status
        start_element(&e, 0.0, &self.s)
        with nogil:
            for i in range(self.n_active):
                batch_load(&self.A, &self.s, i, &e)
                e.fx = 0.0
                status = RUNNING
                e.nfev += 2
                bracket_start(&e, a[i], b[i], fa[i], fb[i], &status)
                holes = batch_keep(&self.A, &self.s, i, holes, &e, status)
            self.n_active = batch_fill_holes(&self.A, &self.s, self.n_active, holes)

    def secant_points(self):
        """Second starting points of the secant method at the active elements."""
        cdef Py_ssize_t i
        cdef bint bracketed = self.s.bracketed
        for i in range(self.n_active):
            # (before the first round the bracket is the one given)
            self.A.xprev[i] = secant_start(self.A.x[i], bracketed,
                                           self.A.a[i] if bracketed else 0.0,
                                           self.A.b[i] if bracketed else 0.0)
        return np.asarray(<double[:self.n_active]>self.A.xprev) if self.n_active else np.empty(0)

    def start_secant(self, const double[::1] fprev):
        """Record f at the second secant starting points."""
        cdef Py_ssize_t i
        for i in range(self.n_active):
            self.A.fprev[i] = fprev[i]
            self.A.nfev[i] += 1

    def fd_points(self, const double[::1] a=None, const double[::1] b=None):
        """Points x + h and x - h of the central-difference derivative at the active iterates;
        with the given bracket ends ``a``, ``b`` (all elements, in the original order) clamped
        to them."""
        cdef Py_ssize_t i, k, n = self.n_active
        cdef bint bracketed = a is not None
        plus = np.empty(n)
        minus = np.empty(n)
        cdef double[::1] pv = plus, mv = minus
        cdef double lo = 0.0, hi = 0.0
        if bracketed and (a.shape[0] != self.A.capacity or b.shape[0] != self.A.capacity):
            raise ValueError("internal: bracket ends of the wrong length")
        with nogil:
            for i in range(n):
                if bracketed:
                    k = self.A.idx[i]
                    lo = a[k]
                    hi = b[k]
                fd_points_in(self.A.x[i], fd_scale(self.A.dx[i], self.A.dxold[i]), bracketed,
                             lo, hi, &pv[i], &mv[i])
        return plus, minus

    def check_values(self, const double[::1] fx):
        """First half of a two-stage round for one element: record f(x); follow with
        ``iterate(..., checked=True)`` if a step is to be taken, i.e. if this returns True
        (False: the element finished, or f is wanted at a probe first, see after_value)."""
        cdef Element e
        cdef int status
        if self.n_active != 1:
            raise ValueError("internal: check_values takes one active element")
        start_element(&e, 0.0, &self.s)
        batch_load(&self.A, &self.s, 0, &e)
        status = after_value(&e, fx[0], &self.s)
        self.n_active = 1 - batch_keep(&self.A, &self.s, 0, 0, &e, status)
        return status == RUNNING and e.pending != PROBING

    def iterate(self, const double[::1] fx, const double[::1] df=None,
                const double[::1] d2f=None, const double[::1] f_plus=None,
                const double[::1] f_minus=None, const double[::1] x_plus=None,
                const double[::1] x_minus=None, bint checked=False):
        """One round: f (and f', from ``df``, the FD values, or secant) at the active iterates.

        Finished elements are logged and their slots refilled. ``checked``: f was
        already recorded by :meth:`check_values` (``fx`` is then the values it kept)."""
        cdef Py_ssize_t i, holes = 0
        cdef Element e
        cdef int status
        cdef double dfi, d2fi
        cdef bint fd = f_plus is not None, have_df = df is not None, have_d2f = d2f is not None
        start_element(&e, 0.0, &self.s)
        with nogil:
            for i in range(self.n_active):
                batch_load(&self.A, &self.s, i, &e)
                if checked:
                    e.fx = fx[i]
                    status = RUNNING
                else:
                    status = after_value(&e, fx[i], &self.s)
                e.nfev += self.A.deriv_cost     # the derivative(s) at x, used or not
                if status == RUNNING and e.pending != PROBING:
                    if fd:
                        dfi = (f_plus[i] - f_minus[i]) / (x_plus[i] - x_minus[i])
                    elif have_df:
                        dfi = df[i]
                    else:
                        dfi = 0.0
                    d2fi = d2f[i] if have_d2f else 0.0
                    status = after_derivative(&e, dfi, d2fi, &self.s)
                holes = batch_keep(&self.A, &self.s, i, holes, &e, status)
            self.n_active = batch_fill_holes(&self.A, &self.s, self.n_active, holes)

    def finish(self):
        """Scatter the finished elements to the outputs (``x_out`` ... ``nfev_out``, in the
        original order). Elements still active (callers stop only when none is) count as out
        of iterations."""
        cdef Py_ssize_t i
        cdef Element e
        start_element(&e, 0.0, &self.s)
        for i in range(self.n_active):
            batch_load(&self.A, &self.s, i, &e)
            e.fx = NAN
            batch_keep(&self.A, &self.s, i, 0, &e, MAX_ITERATIONS)
        self.n_active = 0
        n = self.A.capacity
        if self.A.n_done != n:
            raise RuntimeError(f"internal error: {self.A.n_done} of {n} elements finished")
        self.x_out = np.empty(n)
        self.fun_out = np.empty(n)
        self.status_out = np.empty(n, dtype=np.intp)
        self.nit_out = np.empty(n, dtype=np.intp)
        self.nfev_out = np.empty(n, dtype=np.intp)
        cdef double *xo = <double*>cnp.PyArray_DATA(self.x_out)
        cdef double *fo = <double*>cnp.PyArray_DATA(self.fun_out)
        cdef Py_ssize_t *so = <Py_ssize_t*>cnp.PyArray_DATA(self.status_out)
        cdef Py_ssize_t *io = <Py_ssize_t*>cnp.PyArray_DATA(self.nit_out)
        cdef Py_ssize_t *eo = <Py_ssize_t*>cnp.PyArray_DATA(self.nfev_out)
        cdef Py_ssize_t m, k
        with nogil:
            # idx is a permutation of 0..n-1 (every element is logged exactly once)
            for m in range(n):
                k = self.A.done_idx[m]
                xo[k] = self.A.done_x[m]
                fo[k] = self.A.done_fun[m]
                so[k] = self.A.done_status[m]
                io[k] = self.A.done_nit[m]
                eo[k] = self.A.done_nfev[m]


cdef struct FinishedElement:
    # NewtonBatch's record of a finished element: one record (and so, mostly, one cache
    # line) per element written out of order, instead of five separate output arrays.
    double x
    double fun
    int nit
    int status


cdef struct PlainRound:
    # A NewtonBatch round: where the active elements' state is read and written.
    const double *x_src         # iterates (round 0: the caller's x0)
    const double **row_src      # parameter rows (round 0: the caller's)
    double *x                   # compacted iterates (the batch's buffer)
    double *params              # compacted parameter rows, (rows, capacity)
    int *idx                    # output index; ~index once the step to x was small
    FinishedElement *done       # records of finished elements, by output index
    Py_ssize_t rows, capacity
    int nit
    bint first, more


cdef inline Py_ssize_t plain_round(const PlainRound *R, const double *fx, const double *df,
                                   Py_ssize_t n, double tol, double rtol,
                                   double ftol) noexcept nogil:
    """Decide the n active elements from f and f' (plain_newton_step), step the running ones
    into the batch's buffers (stable compaction) and record the finished ones; returns how
    many run on."""
    # R's fields in locals: the extension is built with -fno-strict-aliasing, so each store
    # through a pointer would otherwise reload them all
    cdef const double *x_src = R.x_src
    cdef const double **row_src = R.row_src
    cdef const double *row0 = R.row_src[0] if R.rows > 0 else NULL
    cdef double *x = R.x
    cdef double *params = R.params
    cdef int *idx = R.idx
    cdef FinishedElement *done = R.done
    cdef Py_ssize_t rows = R.rows, capacity = R.capacity, i, j = 0, r
    cdef bint first = R.first, more = R.more, small
    cdef int nit = R.nit, e, status
    cdef double xn
    for i in range(n):
        e = <int>i if first else idx[i]
        status = plain_newton_step(x_src[i], fx[i], df[i], e < 0, more, ftol, tol, rtol, &xn,
                                   &small)
        if status == RUNNING:
            x[j] = xn
            idx[j] = ~e if small else e
            if j != i or first:
                if rows == 1:       # the common case, without a loop
                    params[j] = row0[i]
                else:
                    for r in range(rows):
                        params[r * capacity + j] = row_src[r][i]
            j += 1
            continue
        e = ~e if e < 0 else e
        done[e].x = x_src[i]
        done[e].fun = fx[i]
        done[e].nit = nit
        done[e].status = status
    return j


cdef class NewtonBatch:
    """Plain Newton steps for a batch with vectorized f and f' (no bracket, not Halley/secant).

    Each round the wrapper calls f and f' on :attr:`x` ``[:n_active]`` (and the rows of
    :attr:`params` sliced the same way) and passes the values to :meth:`iterate`: ONE pass
    over contiguous buffers decides every element, steps the running ones, writes the finished
    ones straight to the outputs and closes the gaps (a stable compaction, so finished
    elements are never evaluated again and the next round's arrays are again contiguous).

    The state per active element is only x, its parameters, and its index in the outputs (an
    int: at most INT_MAX elements) with the "last step was below tolerance" flag folded in
    (``~index``); ``nit`` is the round
    number, shared by all active elements (every running element steps each round). Round 0
    reads the caller's x0 and parameter arrays (:meth:`sources`) and writes the first
    compacted state into the batch's own buffers, so nothing is copied up front. Stable
    compaction keeps the active elements in output order, so outputs are written in
    ascending address order each round; a finished element's outputs go to one record,
    split into the output arrays by one sequential pass in :meth:`finish`.

    One batch solves a chunk of at most ``capacity`` elements at a time (:meth:`start` ...
    :meth:`finish`), reusing its buffers, so that a cache-sized chunk's state, the user's f/f'
    values and their temporaries stay in cache between the user's calls and the update pass.
    """
    cdef double tol, rtol, ftol
    cdef int maxiter
    cdef public int nit
    cdef public Py_ssize_t n_active
    cdef public Py_ssize_t size
    cdef public object x, params
    cdef object idx, x_first, rows_first, records

    def __init__(self, Py_ssize_t capacity, Py_ssize_t n_rows, double tol, double rtol,
                 double ftol, int maxiter):
        """Buffers for chunks of up to ``capacity`` elements with ``n_rows`` parameter rows."""
        if capacity < 0 or capacity > INT_MAX or n_rows < 0:
            raise ValueError("internal: NewtonBatch takes 0 to INT_MAX elements")
        self.tol = tol
        self.rtol = rtol
        self.ftol = ftol
        self.maxiter = maxiter
        self.nit = 0
        self.n_active = 0
        self.size = 0
        self.x_first = self.rows_first = None
        self.x = np.empty(capacity)
        self.params = np.empty((n_rows, capacity))
        self.idx = np.empty(capacity, dtype=np.intc)
        self.records = np.empty(capacity * sizeof(FinishedElement), dtype=np.uint8)

    def start(self, cnp.ndarray x0, list rows):
        """Begin a chunk. x0 and rows: 1-D C-contiguous float64 arrays of one length, at most
        the capacity (read, never written)."""
        cdef Py_ssize_t n = x0.shape[0]
        if self.n_active:
            raise RuntimeError("internal error: start() with active elements")
        if n > self.x.shape[0] or len(rows) != self.params.shape[0]:
            raise ValueError("internal: chunk larger than the batch's capacity")
        self.nit = 0
        self.n_active = n
        self.size = n
        self.x_first = x0
        self.rows_first = rows

    def sources(self):
        """``(x, rows)``: the active iterates and parameter rows f and f' are evaluated at."""
        n = self.n_active
        if self.nit == 0:
            return self.x_first, self.rows_first
        return self.x[:n], [self.params[r, :n] for r in range(self.params.shape[0])]

    def iterate(self, const double[::1] fx, const double[::1] df):
        """One round from f and f' at the active iterates; returns the number still active."""
        cdef Py_ssize_t n = self.n_active, rows = self.params.shape[0], j, r
        cdef const double[::1] x_view
        cdef const double[::1] row_view
        cdef PlainRound R
        if fx.shape[0] != n or df.shape[0] != n:
            raise ValueError("internal: values of the wrong length")
        if n == 0:
            return 0
        R.rows = rows
        R.capacity = self.x.shape[0]
        R.first = self.nit == 0
        R.nit = self.nit
        R.more = self.nit < self.maxiter
        R.x = _double_ptr(self.x)
        R.params = _double_ptr(self.params)
        R.idx = <int*>cnp.PyArray_DATA(self.idx)
        R.done = <FinishedElement*>cnp.PyArray_DATA(self.records)
        R.row_src = <const double**>malloc(max(rows, 1) * sizeof(double*))
        if R.row_src == NULL:
            raise MemoryError()
        try:
            # round 0 reads the caller's arrays, later rounds the batch's compacted copies
            R.x_src = R.x
            if R.first:
                x_view = self.x_first
                R.x_src = &x_view[0]
            for r in range(rows):
                if R.first:
                    row_view = self.rows_first[r]
                    R.row_src[r] = &row_view[0]
                else:
                    R.row_src[r] = R.params + r * R.capacity
            with nogil:
                j = plain_round(&R, &fx[0], &df[0], n, self.tol, self.rtol, self.ftol)
        finally:
            free(R.row_src)
        self.nit += 1
        self.n_active = j
        if R.first:
            self.x_first = self.rows_first = None
        return j

    def finish(self, double[::1] x_out, double[::1] fun_out, Py_ssize_t[::1] status_out,
               Py_ssize_t[::1] nit_out, Py_ssize_t[::1] nfev_out):
        """Split the chunk's records into the outputs (arrays of the chunk's length; call once
        no element is active; f and f' were evaluated in each of an element's nit + 1 rounds)."""
        cdef Py_ssize_t n = self.size, e
        cdef const FinishedElement *done = <FinishedElement*>cnp.PyArray_DATA(self.records)
        if self.n_active:
            raise RuntimeError("internal error: finish() with active elements")
        if (x_out.shape[0] != n or fun_out.shape[0] != n or status_out.shape[0] != n
                or nit_out.shape[0] != n or nfev_out.shape[0] != n):
            raise ValueError("internal: outputs of the wrong length")
        with nogil:
            for e in range(n):
                x_out[e] = done[e].x
                fun_out[e] = done[e].fun
                status_out[e] = done[e].status
                nit_out[e] = done[e].nit
                nfev_out[e] = 2 * <Py_ssize_t>done[e].nit + 2
        self.size = 0


cdef double *_double_ptr(cnp.ndarray array):
    # Only arrays this module created (C-contiguous float64) are passed here.
    return <double*>cnp.PyArray_DATA(array)
