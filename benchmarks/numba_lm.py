"""The reference a numba user would write: Levenberg-Marquardt per dataset in a ``prange`` loop.

Used by benchmarks/bench_compiled_models.py and ``python -m fastcalc bench`` (area
``compiled_models``). Written to be fair to numba:

* the model gives values and the analytic Jacobian in one call (one ``exp`` per point), the
  same formulas as fastcalc's compiled models (``cfunc`` below) and built-in ones;
* the same start (p0 per dataset), the same tolerances (relative chi2 reduction ``ftol``,
  relative step ``xtol``, gradient cosine ``gtol``; fastcalc's defaults 1e-12) and iteration
  budget, and the covariance ``(J^T J)^-1`` at the solution (absolute sigma);
* Marquardt's damping ``J^T J + lam diag(J^T J)`` with lam x10 / /10 (Numerical Recipes),
  solved by a Cholesky factorisation of the small normal matrix, no allocation inside the
  iteration (scratch arrays per dataset);
* ``fastmath=False`` (as fastcalc, no -ffast-math) and ``parallel=True`` over datasets.

Each model is a ``@njit`` point function ``model(x, p, out, jac, want_jac)`` with ``x`` of shape
``(x_dim, m)``; :func:`make_fitter` closes the LM over it; :func:`cfunc_model` wraps the same
function as a fastcalc compiled model with its Jacobian.
"""
import numpy as np
from numba import carray, cfunc, njit, prange, types


@njit(inline="always")
def gaussian(x, p, out, jac, want_jac):
    inverse = 1.0 / p[2]
    for i in range(x.shape[1]):
        d = (x[0, i] - p[1]) * inverse
        e = np.exp(-0.5 * d * d)
        out[i] = p[0] * e + p[3]
        if want_jac:
            jac[i, 0] = e
            jac[i, 1] = p[0] * e * d * inverse
            jac[i, 2] = p[0] * e * d * d * inverse
            jac[i, 3] = 1.0


@njit(inline="always")
def exponential(x, p, out, jac, want_jac):
    inverse = 1.0 / p[1]
    for i in range(x.shape[1]):
        e = np.exp(-x[0, i] * inverse)
        out[i] = p[0] * e + p[2]
        if want_jac:
            jac[i, 0] = e
            jac[i, 1] = p[0] * e * x[0, i] * inverse * inverse
            jac[i, 2] = 1.0


@njit(inline="always")
def gaussian_2d(x, p, out, jac, want_jac):
    inverse = 1.0 / p[3]
    for i in range(x.shape[1]):
        dx = (x[0, i] - p[1]) * inverse
        dy = (x[1, i] - p[2]) * inverse
        r2 = dx * dx + dy * dy
        e = np.exp(-0.5 * r2)
        out[i] = p[0] * e + p[4]
        if want_jac:
            jac[i, 0] = e
            jac[i, 1] = p[0] * e * dx * inverse
            jac[i, 2] = p[0] * e * dy * inverse
            jac[i, 3] = p[0] * e * r2 * inverse
            jac[i, 4] = 1.0


MODELS = {"gaussian": (gaussian, 1), "exponential": (exponential, 1),
          "gaussian_2d": (gaussian_2d, 2)}

_SIGNATURE = types.intc(types.intc, types.CPointer(types.double), types.intc,
                        types.CPointer(types.double), types.CPointer(types.double),
                        types.CPointer(types.double), types.voidptr)


def cfunc_model(name):
    """The model ``name`` as a fastcalc compiled model with its Jacobian (numba cfunc)."""
    point, x_dim = MODELS[name]

    @cfunc(_SIGNATURE)
    def model(npts, x_, nparams, p_, out_, jac_, user_data):
        jac = carray(jac_, (npts, nparams))
        point(carray(x_, (x_dim, npts)), carray(p_, nparams), carray(out_, npts), jac,
              jac.ctypes.data != 0)
        return 0
    return model


def make_fitter(name):
    """``fit(x (x_dim, m), Y (N, m), sigma, P0 (N, P), maxiter, ftol, xtol, gtol)`` ->
    ``params, cov, chi2, nit, status`` (status 0 converged, 1 budget, 2 singular)."""
    point, _ = MODELS[name]

    @njit(inline="always")
    def cholesky_solve(A, b, L, out):
        n = A.shape[0]
        for j in range(n):
            s = A[j, j]
            for k in range(j):
                s -= L[j, k] * L[j, k]
            if not s > 0.0:
                return False
            L[j, j] = np.sqrt(s)
            for i in range(j + 1, n):
                t = A[i, j]
                for k in range(j):
                    t -= L[i, k] * L[j, k]
                L[i, j] = t / L[j, j]
        for i in range(n):
            t = b[i]
            for k in range(i):
                t -= L[i, k] * out[k]
            out[i] = t / L[i, i]
        for i in range(n - 1, -1, -1):
            t = out[i]
            for k in range(i + 1, n):
                t -= L[k, i] * out[k]
            out[i] = t / L[i, i]
        return True

    @njit(inline="always")
    def normal_equations(jac, r, w, A, g):
        m, n = jac.shape
        for a in range(n):
            g[a] = 0.0
            for b in range(n):
                A[a, b] = 0.0
        for i in range(m):
            wi2 = w * w
            for a in range(n):
                g[a] += jac[i, a] * r[i] * wi2
                for b in range(a + 1):
                    A[a, b] += jac[i, a] * jac[i, b] * wi2
        for a in range(n):
            for b in range(a):
                A[b, a] = A[a, b]

    @njit(inline="always")
    def chi2_of(y, f, w):
        total = 0.0
        for i in range(y.shape[0]):
            d = (y[i] - f[i]) * w
            total += d * d
        return total

    @njit
    def fit_one(x, y, w, p, cov, maxiter, ftol, xtol, gtol):
        m, n = y.shape[0], p.shape[0]
        f = np.empty(m)
        f_new = np.empty(m)
        jac = np.empty((m, n))
        jac_new = np.empty((m, n))
        r = np.empty(m)
        A = np.empty((n, n))
        damped = np.empty((n, n))
        L = np.empty((n, n))
        g = np.empty(n)
        dp = np.empty(n)
        p_new = np.empty(n)
        point(x, p, f, jac, True)
        chi2 = chi2_of(y, f, w)
        if not np.isfinite(chi2):
            return chi2, 0, 3
        lam = 1e-3
        status, nit = 1, 0
        while nit < maxiter:
            for i in range(m):
                r[i] = y[i] - f[i]
            normal_equations(jac, r, w, A, g)
            # gradient test: every column nearly orthogonal to the residuals
            small = True
            for a in range(n):
                if abs(g[a]) > gtol * np.sqrt(A[a, a] * chi2):
                    small = False
            if small:
                status = 0
                break
            accepted = False
            while not accepted and lam < 1e16:
                nit += 1
                for a in range(n):
                    for b in range(n):
                        damped[a, b] = A[a, b]
                    damped[a, a] = A[a, a] * (1.0 + lam)
                if not cholesky_solve(damped, g, L, dp):
                    lam *= 10.0
                    continue
                for a in range(n):
                    p_new[a] = p[a] + dp[a]
                point(x, p_new, f_new, jac_new, True)
                chi2_new = chi2_of(y, f_new, w)
                if np.isfinite(chi2_new) and chi2_new <= chi2:
                    accepted = True
                    lam = max(lam * 0.1, 1e-12)
                else:
                    lam *= 10.0
                if nit >= maxiter:
                    break
            if not accepted:
                break
            reduction = chi2 - chi2_new
            step, size = 0.0, 0.0
            for a in range(n):
                step += dp[a] * dp[a]
                size += p[a] * p[a]
            p[:] = p_new
            f, f_new = f_new, f
            jac, jac_new = jac_new, jac
            chi2 = chi2_new
            if reduction <= ftol * chi2 or np.sqrt(step) <= xtol * np.sqrt(size):
                status = 0
                break
        # covariance (J^T J)^-1 at the solution, column by column
        for i in range(m):
            r[i] = y[i] - f[i]
        normal_equations(jac, r, w, A, g)
        for k in range(n):
            for a in range(n):
                g[a] = 1.0 if a == k else 0.0
            if not cholesky_solve(A, g, L, dp):
                cov[:, :] = np.inf
                return chi2, nit, 2
            cov[:, k] = dp
        return chi2, nit, status

    @njit(parallel=True)
    def fit(x, Y, sigma, P0, maxiter, ftol, xtol, gtol):
        N, n = P0.shape
        params = P0.copy()
        cov = np.empty((N, n, n))
        chi2 = np.empty(N)
        nit = np.empty(N, dtype=np.intc)
        status = np.empty(N, dtype=np.intc)
        w = 1.0 / sigma
        for d in prange(N):
            chi2[d], nit[d], status[d] = fit_one(x, Y[d], w, params[d], cov[d], maxiter, ftol,
                                                 xtol, gtol)
        return params, cov, chi2, nit, status

    return fit
