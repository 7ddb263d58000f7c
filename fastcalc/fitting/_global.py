"""fit_global: N datasets fitted together, some parameters shared by every dataset.

The Jacobian of the concatenated residuals is block-arrow shaped (the shared columns touch every
dataset, each dataset's local columns only its own rows). Levenberg-Marquardt runs on it with
the normal equations solved by eliminating each dataset's local parameters (Schur complement,
:func:`._global_kernel.schur_step`): time linear in N, memory O(N k^2). The per-dataset work
(model values, Jacobian, blocks, elimination) runs in the kernels without the GIL on threads
over datasets; this module holds the iteration's control (damping, accept/reject, tests), whose
cost does not grow with N beyond a few vector operations.
"""
import warnings

import numpy as np

from .._parallel import n_threads_for
from .._status import Status
from . import _global_kernel
from ._dispatch import python_callables
from ._global_results import GlobalFitResult
from ._model_spec import KIND_BUILTIN, KIND_PYTHON
from ._problem import Problem
from ._validate import parameter_index

__all__ = ["fit_global"]

SQRT_EPS = np.sqrt(np.finfo(float).eps)
FD_SCALE_FRACTION = 1e-3          # as the kernels' forward-difference floor (fd_step)
LAMBDA_START = 1e-3               # Marquardt's damping relative to D^2 = diag(J^T J)
ACCEPT_RATIO = 1e-4               # accept a step that achieves this share of its prediction
LAMBDA_MAX = 1e300
# Datasets per finite-difference Jacobian of a Python model: bounds its memory (P x the
# group's data) and keeps NumPy's calls large (as fit_batch's PYTHON_CHUNK)
PYTHON_GROUP = 4096


def shared_mask(shared, param_names):
    """The boolean mask of the shared parameters (names or indices); a ValueError naming
    ``shared`` when it is empty, names no parameter or every parameter."""
    P = len(param_names)
    if shared is None:
        raise ValueError("shared must name the shared parameters (names or indices)")
    items = [shared] if isinstance(shared, (str, int, np.integer)) else list(shared)
    mask = np.zeros(P, dtype=bool)
    for item in items:
        mask[parameter_index(item, param_names, "shared")] = True
    if not mask.any():
        raise ValueError("shared is empty: name at least one shared parameter "
                         "(without any, use fit_batch)")
    if mask.all():
        raise ValueError(f"shared names every parameter {tuple(param_names)}: at least one "
                         "must be local to each dataset (with none, concatenate the datasets "
                         "and use fit)")
    return mask


class _Evaluator:
    """The model's chi2 and normal-equation blocks per dataset at an (N, P) parameter matrix:
    the compiled kernels for built-in and compiled models, NumPy calls for a Python model."""

    def __init__(self, pb, W, free, n_threads):
        self.pb, self.W, self.free, self.n_threads = pb, W, free, n_threads
        self.free_u8 = free.astype(np.uint8)
        spec = pb.spec
        self.python = spec.kind == KIND_PYTHON
        self.nfev = 0
        if self.python:
            self.evaluate = python_callables(pb, 0)[0]
            self.valid = np.isfinite(pb.Y)
        else:
            self.model_args = (spec.kind, spec.model_id, spec.compiled, pb.x, spec.x_dim)

    def costs(self, params, active):
        N = params.shape[0]
        chi2, status = np.full(N, np.nan), np.zeros(N, dtype=np.intc)
        self.nfev += 1
        if self.python:
            rows = np.flatnonzero(active)
            values = self._values(params[rows], rows)
            chi2[rows], status[rows] = self._chi2(values, rows)
        else:
            _global_kernel.costs(*self.model_args, self.pb.Y, self.W, params, active,
                                 self.n_threads, chi2, status)
        return chi2, status

    def blocks(self, params, active, scale):
        N, P = params.shape
        A, g = np.zeros((N, P, P)), np.zeros((N, P))
        chi2, status = np.full(N, np.nan), np.zeros(N, dtype=np.intc)
        analytic = self.pb.spec.kind == KIND_BUILTIN
        self.nfev += 1 if analytic else 1 + int(self.free.sum())
        if not self.python:
            _global_kernel.blocks(*self.model_args, self.pb.Y, self.W, params, active,
                                  self.free_u8, self.pb.upper, scale,
                                  self.n_threads, A, g, chi2, status)
            return A, g, chi2, status
        active_rows = np.flatnonzero(active)
        # groups of datasets: the finite-difference Jacobian (P x the group's data) stays small
        for start in range(0, active_rows.size, PYTHON_GROUP):
            rows = active_rows[start:start + PYTHON_GROUP]
            chi2[rows], status[rows], A[rows], g[rows] = self._python_blocks(params, rows,
                                                                            scale)
        return A, g, chi2, status

    def _python_blocks(self, params, rows, scale):
        """chi2, status, A and g of datasets ``rows`` of a Python model (forward differences
        in one call per free parameter)."""
        P, m = params.shape[1], self.pb.m
        p = params[rows]
        values = self._values(p, rows)
        chi2, status = self._chi2(values, rows)
        J = np.zeros((rows.size, P, m))
        model_scale = np.sum(np.abs(p) * scale[rows], axis=1)
        for j in np.flatnonzero(self.free):
            with np.errstate(divide="ignore", invalid="ignore"):
                typical = np.where((scale[rows, j] > 0) & (model_scale > 0),
                                   FD_SCALE_FRACTION * model_scale / scale[rows, j], 0.0)
            h = np.maximum(np.abs(p[:, j]), typical) * SQRT_EPS
            h[h == 0] = SQRT_EPS
            h = np.where(p[:, j] + h > self.pb.upper[j], -h, h)
            shifted = p.copy()
            shifted[:, j] += h
            step = (shifted[:, j] - p[:, j])[:, None]
            J[:, j, :] = (self._values(shifted, rows) - values) / step
        valid = self.valid[rows]
        finite = np.all(np.isfinite(J) | ~valid[:, None, :], axis=(1, 2))
        status[~finite & (status == 0)] = Status.NON_FINITE
        A, g = np.zeros((rows.size, P, P)), np.zeros((rows.size, P))
        _global_kernel.jacobian_blocks(J, np.where(valid, values, 0.0),
                                       np.ascontiguousarray(self.pb.Y[rows]),
                                       np.ascontiguousarray(self.W[rows]),
                                       (status == 0).astype(np.uint8), self.n_threads, A, g)
        chi2[status != 0] = np.nan
        return chi2, status, A, g

    def _values(self, params, rows):
        """The model (len(rows), m) at ``params`` (one row per dataset of ``rows``)."""
        return np.array(self.evaluate(np.ascontiguousarray(params), rows), dtype=float)

    def _chi2(self, values, rows):
        valid = self.valid[rows]
        with np.errstate(invalid="ignore", over="ignore"):
            r = np.where(valid, self.W[rows] * (self.pb.Y[rows] - values), 0.0)
        finite = np.all(np.isfinite(values) | ~valid, axis=1)
        chi2 = np.where(finite, np.sum(r * r, axis=1), np.nan)
        return chi2, np.where(finite, 0, int(Status.NON_FINITE)).astype(np.intc)


def _weights(pb):
    """1/sigma at the valid points, 0 at the missing ones (N, m)."""
    valid = np.isfinite(pb.Y)
    sigma = 1.0 if pb.sigma is None else pb.sigma
    with np.errstate(divide="ignore"):
        return np.ascontiguousarray(np.where(valid, 1.0 / np.broadcast_to(sigma, pb.Y.shape),
                                             0.0))


def _exclude(status, reason, rows, code, why):
    rows = rows & (status == 0)
    status[rows] = code
    reason[rows] = why


def fit_global(model, x, Y, p0=None, *, shared, sigma=None, absolute_sigma=False, bounds=None,
               fixed=None, maxiter=None, tol=None, n_threads=None):
    """Fit ``model`` to N datasets at once, the parameters ``shared`` common to every dataset
    and the others local to each (a global fit).

    Levenberg-Marquardt on the concatenated residuals of all datasets, its normal equations
    solved by eliminating each dataset's local parameters (Schur complement): the time grows
    linearly in N and the memory as N k^2 (k parameters), where a dense solver costs N^3. The
    per-dataset work runs on ``n_threads`` threads without the GIL (results identical for any
    thread count).

    Parameters
    ----------
    model : Model, compiled callable or callable
        As for :func:`fastcalc.fit_batch`: a built-in model of :mod:`fastcalc.models` (analytic
        Jacobian), a compiled model callable or a Python callable ``model(x, *params)`` called
        with parameters as ``(n, 1)`` columns for groups of up to 4096 datasets (Jacobians of
        these two by forward differences).
    x : array_like
        ``(m,)`` shared or ``(N, m)`` per dataset (``(2, m)`` / ``(N, 2, m)`` for
        ``gaussian_2d``).
    Y : array_like (N, m)
        Data; NaN marks a missing point.
    p0 : array_like (k,) or (N, k), optional
        Starts, as in :func:`fastcalc.fit_batch` (default: each dataset's guess for built-in
        models, ones for Python models; required for compiled models). The start of a shared
        parameter is the median over the datasets of their starts.
    shared : str, int or sequence of them
        The shared parameters, by name or index; at least one parameter must stay local.
    sigma : array_like (m,) or (N, m) or scalar, optional
    absolute_sigma : bool
        If False, the covariance is scaled by ``redchi2`` of the whole fit.
    bounds : (lower, upper), optional
        Box bounds per parameter, as in :func:`fastcalc.fit_batch` (steps are clipped to them;
        a parameter on a bound with the gradient pushing outward is held there).
    fixed : sequence, optional
        Parameters held at their start (mask, indices or names).
    maxiter : int, optional
        Iteration budget (trial steps); default ``200 * (k_free + 1)``.
    tol : float or (ftol, xtol, gtol), optional
        Stopping tolerances (default 1e-12 each). The fit has converged when the Gauss-Newton
        step would lower chi2 by at most ``ftol * chi2 / dof`` (the parameters are then
        within about ``sqrt(ftol)`` standard errors of the minimum, whatever N: a test on the
        relative change of chi2, as in :func:`fastcalc.fit_batch`, would allow
        ``sqrt(ftol * chi2)``, which grows with N), when the cosine between the residuals and
        every Jacobian column is at most ``gtol``, when the scaled step is below ``xtol``
        times the scaled parameters, or when a rejected step changes chi2 by less than
        ``ftol`` relative, as predicted.
    n_threads : int, optional
        Threads (None: the process-wide setting).

    Returns
    -------
    GlobalFitResult
        ``shared``, ``shared_stderr``, ``shared_cov``; ``local`` (N, k - s) and
        ``local_stderr``; ``params`` (N, k); ``cov_block(i)``; ``chi2``, ``dof``, ``redchi2``,
        ``status``, ``dataset_status``, ``nit``, ``nfev``, ``success``, ``message``.

    Raises
    ------
    ValueError
        ``shared`` naming an unknown parameter, none or all of them; and as
        :func:`fastcalc.fit_batch` for shapes and values that are wrong for every dataset.
    TypeError
        As :func:`fastcalc.fit_batch`.

    Warns
    -----
    RuntimeWarning
        When datasets are excluded (their indices and reasons) or the fit did not converge.

    Notes
    -----
    Bad datasets are excluded from the shared solve, never allowed to poison it: a dataset
    whose own inputs are invalid (as in :func:`fastcalc.fit_batch`: inf in its ``Y`` row, its
    ``sigma``, ``p0`` or ``x`` row not finite, ``p0`` outside the bounds), with fewer valid
    points than local free parameters, with no initial guess, or whose model (or Jacobian) is
    not finite or reports an error at the start, gets its own ``dataset_status`` (2, 3, 4 or
    5) and reason in ``input_error``, NaN parameters, and takes no part in the fit; the
    warning names it. The others' ``dataset_status`` is the global ``status``, or 2 for a
    dataset whose local block of the normal matrix is singular at the solution (its
    ``local_stderr`` is inf and the shared covariance is that of the other datasets).

    ``dof`` is the number of valid points of the included datasets minus the free shared
    parameters minus, per included dataset, the free local ones. ``shared_cov`` is the shared
    block of the inverse of the full normal matrix ``J^T J`` (times ``redchi2`` unless
    ``absolute_sigma``): the inverse of the Schur complement.

    Examples
    --------
    >>> import numpy as np
    >>> from fastcalc import fit_global, models
    >>> x = np.linspace(-3, 3, 40)
    >>> Y = np.array([models.gaussian(x, a, 0.5, 0.8, 0.1) for a in (1.0, 2.0, 3.0)])
    >>> r = fit_global(models.gaussian, x, Y, shared=["mu", "sigma"])
    >>> r.shared.round(6).tolist(), r.local[:, 0].round(6).tolist(), r.success
    ([0.5, 0.8], [1.0, 2.0, 3.0], True)
    """
    pb = Problem(model, x, Y, p0, sigma, bounds, fixed, "lm", maxiter, tol, None, batch=True,
                 absolute_sigma=absolute_sigma)
    if pb.N == 0:
        raise ValueError(f"Y has no datasets (shape {pb.Y.shape})")
    n_threads_for(n_threads)          # a ValueError or TypeError before any work
    names = pb.param_names
    is_shared = shared_mask(shared, names)
    N, P = pb.N, pb.spec.nparams
    free = ~pb.fixed
    shared_free = np.flatnonzero(is_shared & free).astype(np.intc)
    local_free = np.flatnonzero(~is_shared & free).astype(np.intc)
    status = np.zeros(N, dtype=np.intc)
    reason = np.full(N, "", dtype=object)
    if pb.bad.status is not None:
        status[:] = pb.bad.status
        reason[:] = pb.bad.reason
    nvalid = np.isfinite(pb.Y).sum(axis=1)
    _exclude(status, reason, (nvalid < local_free.size) | (nvalid == 0), Status.SINGULAR,
             f"too few points: fewer than {max(local_free.size, 1)} valid points for "
             f"{local_free.size} local free parameters")
    W = _weights(pb)
    params = _starts(pb, status, reason, n_threads)
    evaluator = _Evaluator(pb, W, free, n_threads)
    active = (status == 0).astype(np.uint8)
    run = _Iteration(pb, evaluator, params, active, shared_free, local_free, n_threads)
    _exclude_failures(status, reason, run.start_status, active, "at the start")
    run.iterate()
    result = run.result(status, reason, is_shared)
    _warn(result, status)
    return result


def _starts(pb, status, reason, n_threads):
    """Every dataset's start (N, P): p0, or the built-in model's guess; NaN for datasets
    already excluded."""
    params = np.array(pb.p0, dtype=float)
    if pb.use_guess:
        active = (status == 0).astype(np.uint8)
        guess = np.full_like(params, np.nan)
        st = np.zeros(pb.N, dtype=np.intc)
        _global_kernel.guesses(pb.spec.model_id, pb.spec.nparams, pb.x, pb.spec.x_dim, pb.Y,
                               active, n_threads, guess, st)
        _exclude(status, reason, (st != 0) & (active == 1), Status.SINGULAR,
                 "no initial guess possible")
        fixed_given = pb.fixed & np.isfinite(params)
        params = np.where(fixed_given, params, guess)
    params = np.clip(params, pb.lower, pb.upper)
    params[status != 0] = np.nan
    return np.ascontiguousarray(params)


def _exclude_failures(status, reason, model_status, active, when):
    for code in (Status.NON_FINITE, Status.CALLBACK_ERROR):
        rows = (status == 0) & (model_status == code)
        why = ("model (or its Jacobian) not finite " if code == Status.NON_FINITE
               else "the model reported an error ") + when
        _exclude(status, reason, rows, code, why)
    active[status != 0] = 0


class _Iteration:
    """The Levenberg-Marquardt iteration over the block-arrow problem."""

    def __init__(self, pb, evaluator, params, active, shared, local, n_threads):
        self.pb, self.ev, self.active, self.n_threads = pb, evaluator, active, n_threads
        self.shared, self.local = shared, local
        N, P = params.shape
        self.P = P
        self.analytic = pb.spec.kind == KIND_BUILTIN
        good = np.flatnonzero(active)
        if good.size:   # the shared start: the median of the datasets' starts
            params[:, shared] = np.median(params[good][:, shared], axis=0)
            params[:, shared] = np.clip(params[:, shared], pb.lower[shared], pb.upper[shared])
        self.params = params
        self.scale = np.zeros((N, P))        # typical column norms for the fd steps
        self.D2 = np.zeros((N, P))           # MINPACK scaling, never decreasing
        self.D2_shared = np.zeros(shared.size)
        self.nit = 0
        self.status = Status.SUCCESS
        self.K = np.zeros((N, local.size, shared.size + 1))
        self.S = np.zeros((shared.size, shared.size))
        self.contribution = np.zeros((N, shared.size, shared.size + 1))
        self.start_status = np.zeros(N, dtype=np.intc)
        self._jacobian(first=True)
        act = self.active == 1
        self.dof = (int(np.isfinite(pb.Y[act]).sum()) - shared.size
                    - int(act.sum()) * local.size)
        # the included datasets: a slice (views, no copies) in the usual case of all
        self.sel = slice(None) if act.all() else act

    def _jacobian(self, first=False, blocks=None):
        """A, g and chi2 at params (``blocks``: computed with the trial's values already)."""
        self.A, self.g, chi2, st = blocks or self.ev.blocks(self.params, self.active,
                                                            self.scale)
        if first:
            self.start_status = st
            self.active[st != 0] = 0
            self.sel = self.active == 1
            self.first = int(np.argmax(self.sel))  # an included dataset: it has the shared values
        elif np.any(st[self.sel] != 0):
            return False
        self.chi2 = chi2
        self.cost = float(np.sum(chi2[self.sel]))
        self.diag = diag = np.diagonal(self.A, axis1=1, axis2=2)
        self.D2 = np.maximum(self.D2, diag)
        self.scale = np.sqrt(self.D2)
        self.D2_shared = np.maximum(self.D2_shared, diag[self.sel][:, self.shared].sum(axis=0))
        # the damping's scaling: a column that has always been zero gets 1
        self.D2_safe = np.where(self.D2 > 0, self.D2, 1.0)
        self.D2_shared_safe = np.where(self.D2_shared > 0, self.D2_shared, 1.0)
        self.blocked = self._blocked()        # (params and g change only here)
        return True

    def _gradient(self):
        """The gradient J^T r of the free shared (s,) and local (N, l) parameters."""
        return self.g[self.sel][:, self.shared].sum(axis=0), self.g[:, self.local]

    def _blocked(self):
        """Free parameters on a bound with the gradient pushing outward (held there)."""
        pb = self.pb
        blocked = np.zeros((self.params.shape[0], self.P), dtype=np.uint8)
        if not pb.has_bounds:
            return blocked
        gs, gl = self._gradient()
        p = self.params
        lo, up = pb.lower, pb.upper
        s, l = self.shared, self.local
        ps = p[self.first, s]
        blocked[:, s] = ((gs <= 0) & (ps <= lo[s])) | ((gs >= 0) & (ps >= up[s]))
        blocked[:, l] = ((gl <= 0) & (p[:, l] <= lo[l])) | ((gl >= 0) & (p[:, l] >= up[l]))
        return blocked

    def _gradient_small(self, blocked):
        act = self.sel
        gs, gl = self._gradient()
        rnorm = np.sqrt(self.cost)
        diag = self.diag[act]
        norm_s = np.sqrt(diag[:, self.shared].sum(axis=0))
        norm_l = np.sqrt(diag[:, self.local])
        gtol = self.pb.gtol
        ok_s = (np.abs(gs) <= gtol * norm_s * rnorm) | (blocked[self.first, self.shared] == 1)
        ok_l = (np.abs(gl[act]) <= gtol * norm_l * rnorm) | (blocked[act][:, self.local] == 1)
        return bool(ok_s.all() and ok_l.all())

    def _at_minimum(self):
        """The gradient test, or the Newton-decrement test: the Gauss-Newton step (over the
        parameters not held on a bound) would lower chi2 by at most ftol * chi2 / dof, i.e.
        the parameters are within about sqrt(ftol) standard errors of the minimum. (A test on
        the relative change of chi2 alone allows sqrt(ftol * chi2) standard errors, which
        grows with the number of datasets.)"""
        if self._gradient_small(self.blocked):
            return True
        step, rc, _ = self.solve(0.0, self.blocked)
        if rc != 0:
            return False
        decrement = float(np.sum(step[self.sel] * self.g[self.sel]))
        return decrement <= self.pb.ftol * self.cost / max(self.dof, 1)

    def _scaled_norm(self, v):
        act, local = self.sel, self.local
        total = np.sum(self.D2_shared_safe * v[self.first, self.shared] ** 2)
        total += np.sum((self.D2_safe[act][:, local] * v[act][:, local] ** 2))
        return float(np.sqrt(total))

    def solve(self, lam, blocked):
        """The step (N, P) of the damped normal equations, and the reduced system's status."""
        N = self.params.shape[0]
        step = np.zeros((N, self.P))
        st = np.zeros(N, dtype=np.intc)
        rc = _global_kernel.schur_step(self.A, self.g, self.active, self.shared, self.local,
                                       blocked, self.D2_safe, self.D2_shared_safe, lam,
                                       self.n_threads, step, self.K, self.S, self.contribution,
                                       st)
        return step, rc, st

    def iterate(self):
        pb, act = self.pb, self.active
        if not act.any():
            self.status = Status.SINGULAR
            return
        lam, nu = LAMBDA_START, 2.0
        if self._at_minimum():
            return
        while True:
            if self.nit >= pb.maxiter:
                self.status = Status.MAX_ITERATIONS
                return
            step, rc, _ = self.solve(lam, self.blocked)
            if rc != 0:
                lam, nu = lam * nu, 2 * nu
                if lam > LAMBDA_MAX:
                    self.status = Status.SINGULAR
                    return
                continue
            trial = self.params + step
            if pb.has_bounds:
                trial = np.clip(trial, pb.lower, pb.upper)
                step = trial - self.params
            a = self.sel
            if not isinstance(a, slice):
                step[~a] = 0.0                          # (NaN - NaN for excluded datasets)
            dnorm = self._scaled_norm(step)
            pnorm = self._scaled_norm(self.params)
            if dnorm == 0.0:
                return
            predicted = float(2 * np.sum(step[a] * self.g[a])
                              - np.einsum("np,npq,nq->", step[a], self.A[a], step[a]))
            self.nit += 1
            trial = np.ascontiguousarray(trial)
            # a built-in model's Jacobian costs little more than its values: at the trial
            # point at once, ready if the step is accepted (as the fit kernel does)
            blocks = self.ev.blocks(trial, act, self.scale) if self.analytic else None
            chi2, st = blocks[2:] if self.analytic else self.ev.costs(trial, act)
            cost = float(np.sum(chi2[a])) if np.all(st[a] == 0) else np.nan
            actual = self.cost - cost if np.isfinite(cost) else -np.inf
            converged = (np.isfinite(cost) and abs(actual) <= pb.ftol * self.cost
                         and predicted <= pb.ftol * self.cost)
            ratio = actual / predicted if predicted > 0 else 0.0
            if ratio >= ACCEPT_RATIO:
                self.params = trial
                lam *= max(1 / 3, 1 - (2 * ratio - 1) ** 3)
                nu = 2.0
                if not self._jacobian(blocks=blocks):
                    self.status = Status.NON_FINITE
                    return
                if dnorm <= pb.xtol * pnorm or self._at_minimum():
                    return
            else:
                # a rejected step that changes chi2 by less than ftol, as predicted (at the
                # minimum as far as chi2 can tell), or a step below xtol
                if converged or dnorm <= pb.xtol * pnorm:
                    return
                lam, nu = lam * nu, 2 * nu
                if lam > LAMBDA_MAX:
                    self.status = Status.MAX_ITERATIONS
                    return

    def result(self, status, reason, is_shared):
        """The GlobalFitResult at the current parameters."""
        pb, act = self.pb, self.active == 1
        N, P = self.params.shape
        s, l = self.shared, self.local
        dof = self.dof
        singular = np.zeros(N, dtype=bool)
        Sinv = np.full((s.size, s.size), np.nan)
        Minv = np.full((N, l.size, l.size), np.nan)
        global_status = self.status
        if act.any():
            step, rc, st = self.solve(0.0, np.zeros((N, P), dtype=np.uint8))
            singular = act & (st != 0)
            if rc != 0:
                Sinv[:] = np.inf
                if global_status == Status.SUCCESS:
                    global_status = Status.SINGULAR
            else:
                Sinv = np.linalg.inv(self.S) if s.size else Sinv
            ok = act & ~singular
            if l.size:
                Minv[ok] = np.linalg.inv(self.A[ok][:, l][:, :, l])
                Minv[singular] = np.inf
        chi2 = self.cost if act.any() else np.nan
        if pb.absolute_sigma:
            factor = 1.0
        else:
            factor = chi2 / dof if dof > 0 else np.inf
        params = self.params.copy()
        params[~act] = np.nan
        dataset_status = np.where(status != 0, status,
                                  np.where(singular, Status.SINGULAR, global_status))
        return GlobalFitResult(
            params=params, is_shared=is_shared, fixed=pb.fixed, shared_free=s, local_free=l,
            Sinv=Sinv, Minv=Minv, K=self.K[:, :, :s.size].copy(), factor=factor, chi2=chi2,
            dof=dof, status=global_status if act.any() else Status.SINGULAR,
            dataset_chi2=np.where(act, self.chi2, np.nan),
            dataset_status=dataset_status.astype(np.intc), nit=self.nit, nfev=self.ev.nfev,
            param_names=pb.param_names, input_error=reason, included=act)


def _warn(result, status):
    excluded = np.flatnonzero(status != 0)
    if excluded.size:
        listed = ", ".join(f"{i} ({result.input_error[i]})" for i in excluded[:5])
        more = f" and {excluded.size - 5} more" if excluded.size > 5 else ""
        warnings.warn(f"fit_global: {excluded.size} of {status.size} datasets excluded from "
                      f"the fit: {listed}{more}", RuntimeWarning, stacklevel=3)
    if not result.success:
        warnings.warn(f"fit_global did not converge: {result.message} (status "
                      f"{int(result.status)})", RuntimeWarning, stacklevel=3)

