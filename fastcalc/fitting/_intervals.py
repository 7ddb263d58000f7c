"""Profile-likelihood confidence intervals of fit parameters (MINOS's intervals), batched.

The limit of parameter ``k`` on one side is where the profiled cost, the cost minimised over
the other free parameters with ``p_k`` held at ``t``, has risen by ``q = chi2.ppf(cl, 1)``
(times ``cost / dof`` when the covariance is scaled that way, i.e. without ``absolute_sigma``
for chi-squared and robust costs) above its minimum. It is found by a safeguarded secant
(Illinois) on ``r(t) = sqrt(cost(t) - cost_min) - sqrt(q)``, nearly linear in ``t`` for a nearly
parabolic profile, from the parabolic limit ``p_k -+ sqrt(q) stderr_k``. Each round refits
every dataset still searching in one batch call per parameter (the fit kernels, all threads),
starting the other parameters from their previous profile point (first from the linear
prediction ``p + C[:, k] / C[k, k] (t - p_k)``).
"""
import numpy as np
from scipy.special import chdtri

from .._status import Status

__all__ = ["Intervals", "profile_intervals"]

MAX_ROUNDS = 60
# |t - limit| below this fraction of stderr (via the secant's last step) ends the search
T_TOLERANCE = 1e-7


class Intervals:
    """Profile-likelihood intervals: ``limits`` ``(..., k, 2)`` (lower, upper), per-limit
    ``status`` (0 found; 1 not found within the rounds; 4 the profile stays below the level up
    to a bound of the parameter; another fit status when a profile fit failed: NaN limits),
    ``cl`` and the ``param_names`` of the rows. ``np.asarray(intervals)`` is ``limits``."""

    def __init__(self, limits, status, cl, param_names, nfev):
        self.limits = limits
        self.lower = limits[..., 0]
        self.upper = limits[..., 1]
        self.status = status
        self.success = bool(np.all(status == 0))
        self.cl = cl
        self.param_names = tuple(param_names)
        self.nfev = nfev

    def __array__(self, dtype=None, copy=None):
        return self.limits if dtype is None else self.limits.astype(dtype)

    def __repr__(self):
        return (f"Intervals(cl={self.cl}, params {self.param_names}, "
                f"{int(np.sum(self.status == 0))} of {self.status.size} limits found)")


def profile_intervals(refit, params, cov, cost, scale, lower, upper, indices, cl):
    """Limits ``(N, len(indices), 2)`` and statuses of the parameters ``indices``.

    ``refit(rows, p0, k)`` fits datasets ``rows`` from starts ``p0`` with parameter ``k`` held
    at its ``p0`` value and returns ``(params, cost, status, nfev)``; ``params (N, P)``,
    ``cov (N, P, P)``, ``cost (N,)`` are the fits', ``scale (N,)`` the factor on ``q``;
    ``lower``, ``upper`` the parameters' bounds.
    """
    N = params.shape[0]
    z = np.sqrt(chdtri(1, 1.0 - cl))                      # the parabolic limit in stderr
    q = z * z * scale                                     # the rise of the cost, per dataset
    limits = np.full((N, len(indices), 2), np.nan)
    status = np.zeros((N, len(indices), 2), dtype=np.intc)
    nfev = 0
    for column, k in enumerate(indices):
        stderr = np.sqrt(np.maximum(cov[:, k, k], 0.0))
        ok = np.isfinite(params).all(axis=1) & np.isfinite(cost) & (stderr > 0) \
            & np.isfinite(stderr)
        status[~ok, column] = Status.NON_FINITE
        rows = np.repeat(np.flatnonzero(ok), 2)                 # both sides of every dataset
        side = np.tile([-1.0, 1.0], rows.size // 2)
        found, state, count = _search(refit, k, rows, side, params, cov, cost, q, z * stderr,
                                      lower[k], upper[k])
        nfev += count
        limits[rows, column, (side > 0).astype(int)] = found
        status[rows, column, (side > 0).astype(int)] = state
    return limits, status, nfev


def _search(refit, k, rows, side, params, cov, cost, q, parabolic, lower, upper):
    """The limits of parameter ``k`` for each (dataset ``rows``, ``side``): values, statuses,
    model evaluations. ``parabolic`` (N,) is the distance of the parabolic limit."""
    n = rows.size
    p_best = params[rows]
    centre = p_best[:, k]
    sigma = parabolic[rows]
    target = np.sqrt(q[rows])
    slope = cov[rows, :, k] / cov[rows, k, k][:, None]     # linear prediction of the others
    bound = np.where(side > 0, upper, lower)
    # the inner point (r < 0) starts at the minimum, r = -sqrt(q); no outer point yet
    t_in, r_in = centre.copy(), -target
    t_out, r_out = np.full(n, np.nan), np.full(n, np.nan)
    t = np.clip(centre + side * sigma, lower, upper)
    start = p_best + slope * (t - centre)[:, None]
    found = np.full(n, np.nan)
    state = np.full(n, Status.MAX_ITERATIONS, dtype=np.intc)
    active = np.ones(n, dtype=bool)
    last_side = np.zeros(n)                     # Illinois: which end was kept last time
    nfev = 0
    for _ in range(MAX_ROUNDS):
        idx = np.flatnonzero(active)
        if idx.size == 0:
            break
        p0 = start[idx].copy()
        p0[:, k] = t[idx]
        fitted, fit_cost, fit_status, count = refit(rows[idx], p0, k)
        nfev += int(np.sum(count))
        failed = fit_status != 0
        state[idx[failed]] = fit_status[failed]
        active[idx[failed]] = False
        good = idx[~failed]
        start[good] = fitted[~failed]
        r = np.sqrt(np.maximum(fit_cost[~failed] - cost[rows[good]], 0.0)) - target[good]
        tg = t[good]
        outer = r > 0
        # at a bound with the profile still below the level: no limit inside the bounds
        stuck = ~outer & (tg == bound[good])
        state[good[stuck]] = Status.OUT_OF_BOUNDS
        active[good[stuck]] = False
        # update the bracket (Illinois: halve the kept end's r when the same end is kept twice)
        g_out = good[outer]
        keep_in = np.isfinite(t_out[g_out]) & (last_side[g_out] == 1)
        r_in[g_out[keep_in]] *= 0.5
        t_out[g_out], r_out[g_out] = tg[outer], r[outer]
        last_side[g_out] = 1
        g_in = good[~outer & ~stuck]
        keep_out = np.isfinite(t_out[g_in]) & (last_side[g_in] == -1)
        r_out[g_in[keep_out]] *= 0.5
        t_in[g_in], r_in[g_in] = tg[~outer & ~stuck], r[~outer & ~stuck]
        last_side[g_in] = -1
        # next trial: the secant (regula falsi once bracketed; extrapolation before)
        live = good[~stuck]
        bracketed = np.isfinite(t_out[live])
        # before a bracket: secant through the minimum and the inner point, pushed outward
        proposal = _secant_zero(np.where(bracketed, t_in[live], centre[live]),
                                np.where(bracketed, r_in[live], -target[live]),
                                np.where(bracketed, t_out[live], t_in[live]),
                                np.where(bracketed, r_out[live], r_in[live]))
        # (strictly outward, at most 4x as far: a flat or noisy profile neither stalls nor
        # jumps away)
        reach = np.abs(t_in[live] - centre[live])
        outward = centre[live] + side[live] * np.clip(side[live] * (proposal - centre[live]),
                                                      1.1 * reach, 4.0 * reach)
        proposal = np.where(bracketed, proposal, outward)
        bad = ~np.isfinite(proposal)
        proposal[bad] = centre[live][bad] + side[live][bad] * 2.0 * np.maximum(reach[bad],
                                                                               sigma[live][bad])
        proposal = np.clip(proposal, lower, upper)
        # converged: the trial moves by less than the tolerance (a bracket of that width)
        done = np.abs(proposal - t[live]) <= T_TOLERANCE * sigma[live]
        done |= bracketed & (np.abs(t_out[live] - t_in[live]) <= T_TOLERANCE * sigma[live])
        finished = live[done]
        found[finished] = np.where(np.isfinite(t_out[finished]),
                                   _interpolate(t_in[finished], r_in[finished],
                                                t_out[finished], r_out[finished]),
                                   proposal[done])
        state[finished] = Status.SUCCESS
        active[finished] = False
        t[live[~done]] = proposal[~done]
    return found, state, nfev


def _secant_zero(t_a, r_a, t_b, r_b):
    """The zero of the line through (t_a, r_a) and (t_b, r_b): not finite if it is flat."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return t_a - r_a * (t_b - t_a) / (r_b - r_a)


def _interpolate(t_a, r_a, t_b, r_b):
    """The zero of the line through (t_a, r_a) and (t_b, r_b) (their mean if flat)."""
    t = _secant_zero(t_a, r_a, t_b, r_b)
    return np.where(np.isfinite(t), t, 0.5 * (t_a + t_b))
