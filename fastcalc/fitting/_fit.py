"""fit and fit_batch: validate the inputs (:class:`~._problem.Problem`), run the kernels,
assemble the results."""
import warnings

import numpy as np

from ._problem import Problem
from ._results import BatchFitResult, FitResult

__all__ = ["batch_residuals", "fit", "fit_batch"]


def fit(model, x, y, p0=None, *, sigma=None, absolute_sigma=False, method="lm", bounds=None,
        fixed=None, maxiter=None, tol=None, jac=None, cost="chi2", loss="linear", f_scale=1.0,
        sigma_x=None):
    """Fit ``model`` to one dataset by minimising chi-squared (or a Poisson or robust cost).

    Parameters
    ----------
    model : Model, compiled callable or callable
        A built-in model from :mod:`fastcalc.models`; a compiled model callable
        (``int f(int npts, double *x, int nparams, double *params, double *out, void *user_data)``,
        or with ``double *jac`` before ``user_data``: values and, when ``jac`` is not NULL, the
        row-major ``(npts, nparams)`` Jacobian in one call), named by
        :func:`fastcalc.models.compiled`; or a Python callable ``model(x, *params)`` returning ``(m,)`` values (curve_fit
        convention); it gets read-only arrays (modifying ``x`` raises ValueError instead of
        changing the data).
    x : array_like
        ``(m,)``, or ``(x_dim, m)`` for 2-D models (``gaussian_2d``); anything the Python model
        accepts.
    y : array_like (m,)
        Data; NaN marks a missing point (weight 0, one fewer degree of freedom).
    p0 : array_like (p,), optional
        Start. Default: the model's ``guess(x, y)`` for built-in models, ones for Python models
        (as curve_fit); required for compiled models.
    sigma : array_like (m,) or scalar, optional
        Standard deviations of ``y``.
    absolute_sigma : bool
        curve_fit's meaning: if False, ``cov`` is scaled by ``redchi2``.
    method : {"lm", "gd"}
        Levenberg-Marquardt (default) or gradient descent on chi2 (see the module notes).
    bounds : (lower, upper), optional
        Box bounds, scalars or ``(p,)`` arrays (``±inf`` for none; ``None`` for a side without
        bounds, as in SciPy).
    fixed : sequence, optional
        Parameters held at their ``p0`` value: a boolean mask, indices or names.
    maxiter : int, optional
        Iteration budget (trial steps), at most 2**31 - 1; default ``200 * (n_free + 1)`` for
        LM, 20000 for GD.
    tol : float or (ftol, xtol, gtol), optional
        Stopping tolerances (default 1e-12 each; see the module notes).
    jac : callable, optional
        Analytic Jacobian: ``jac(x, *params) -> (m, p)`` for a Python model, or a compiled callable
        with the model signature writing ``(npts, nparams)`` row-major for a compiled model.
        Default: forward differences (built-in models have analytic Jacobians).
    cost : {"chi2", "poisson"}
        ``"chi2"``: least squares (Gaussian noise of standard deviation ``sigma``).
        ``"poisson"``: ``y`` are counts (non-negative; zero counts allowed; non-integer values
        are accepted, as scaled counts are common) and the fit maximises the Poisson likelihood,
        minimising the deviance ``2 sum(mu - y + y log(y / mu))`` (the Cash statistic up to a
        constant; ``y log(y / mu) = 0`` for ``y = 0``), ``mu`` the model. ``sigma`` must not be
        given; the covariance is the inverse Fisher information ``(J^T diag(1/mu) J)^-1``
        (``absolute_sigma`` is implied). A model value ``mu <= 0`` where ``y > 0`` at the start
        is status 3 (a trial step there is rejected).
    loss : {"linear", "soft_l1", "huber", "cauchy", "arctan"}
        Robust loss with ``cost="chi2"``, exactly as ``scipy.optimize.least_squares``: the fit
        minimises ``sum(f_scale**2 rho(z / f_scale**2))`` with ``z`` the squared weighted
        residual ``((y - f) / sigma)**2``. The covariance is ``least_squares``' (the inverse of
        ``J^T J`` of the loss-scaled Jacobian, scaled by ``cost / dof`` unless
        ``absolute_sigma``), as ``curve_fit`` gives with a loss.
    f_scale : float
        The soft margin between inlier and outlier residuals, in units of ``sigma``.
    sigma_x : array_like (m,) or scalar, optional
        Standard deviations of ``x``: orthogonal distance regression (ODRPACK's problem, the
        replacement of ``scipy.odr``). The fit minimises
        ``sum(((y - f(x + delta)) / sigma)**2 + (delta / sigma_x)**2)`` over the parameters and
        one x correction ``delta`` per point (``result.delta``), the corrections eliminated
        point by point (see :mod:`fastcalc.fitting._odr_kernel`). ``chi2`` and ``cost`` are
        that objective, ``residuals`` ``y - f(x + delta)``, ``cov`` ODRPACK's (the
        parameters' block of the inverse normal matrix, scaled by ``chi2 / dof`` unless
        ``absolute_sigma``). Models of one variable; ``method="lm"``, ``cost="chi2"`` and
        ``loss="linear"`` only; ``bounds`` and ``fixed`` apply to the parameters. A Python
        model gets x + delta, and a Python ``jac`` is not supported. ``band`` and
        ``conf_interval`` work on the result, ``simulate`` does not.

    Returns
    -------
    FitResult
        A ``RuntimeWarning`` is issued when the fit did not converge (``status != 0``) or when
        the covariance cannot be estimated (``dof == 0`` without ``absolute_sigma``).

    Raises
    ------
    ValueError
        NaN or inf in ``x``, inf in ``y``, no points or fewer valid points than free
        parameters; a valid point outside a built-in model's ``x_domain`` (``x <= 0`` for
        ``power_law``); shapes of ``x``, ``sigma``, ``p0`` inconsistent with ``y``; ``p0`` missing
        (compiled models), not finite or outside ``bounds``; invalid ``method``, ``bounds``,
        ``fixed``, ``maxiter`` or ``tol``; ``model`` or ``jac`` returning the wrong shape;
        ``sigma_x`` not finite and > 0 or of the wrong shape, or given with what it does not
        support (``method="gd"``, ``cost="poisson"``, a robust ``loss``, a model of two
        variables, a Python ``jac``).
    TypeError
        ``model`` of an unsupported kind or wrong compiled signature; ``jac`` of the wrong
        kind (a compiled model needs a compiled ``jac``); ``x``, ``y``, ``sigma``, ``p0``,
        ``bounds`` or ``tol`` None, complex or non-numeric (strings, or object arrays holding
        anything but numbers: NaN, not None, marks a missing point); ``method`` not a str; a
        Python ``model`` or ``jac`` returning None, complex or non-numeric values.
    Exception
        Any exception raised by a Python ``model`` or ``jac`` propagates unchanged.

    Warns
    -----
    RuntimeWarning
        When the fit did not converge (``status != 0``) or the covariance cannot be estimated
        (``dof == 0`` without ``absolute_sigma``).

    Notes
    -----
    Failure behaviour: a fit that does not converge returns its last parameters with
    ``success=False`` and a status (see the module notes): 1 (iteration budget exhausted or
    stalled away from a minimum), 2 (singular Jacobian at the solution, covariance inf), 3
    (non-finite model values at the start or in the Jacobian), 5 (a compiled model reported an
    error). A trial step where the model is not finite is rejected, not an error.

    Examples
    --------
    >>> import numpy as np
    >>> from fastcalc import fit, models
    >>> x = np.linspace(0, 4, 20)
    >>> y = 3.0 * np.exp(-x / 1.5) + 0.5
    >>> r = fit(lambda x, a, tau, c: a * np.exp(-x / tau) + c, x, y, p0=[1.0, 1.0, 0.0])
    >>> r.params.round(6).tolist(), r.success
    ([3.0, 1.5, 0.5], True)

    Errors in both coordinates (orthogonal distance regression):

    >>> rng = np.random.default_rng(0)
    >>> xt = np.linspace(0, 10, 30)
    >>> xm, ym = xt + rng.normal(0, 0.2, 30), 1 + 2 * xt + rng.normal(0, 0.3, 30)
    >>> r = fit(models.line, xm, ym, sigma=0.3, sigma_x=0.2)
    >>> r.params.round(2).tolist(), r.delta.shape, r.success
    ([1.12, 2.0], (30,), True)
    """
    problem = Problem(model, x, y, p0, sigma, bounds, fixed, method, maxiter, tol, jac,
                      batch=False, absolute_sigma=absolute_sigma, cost=cost, loss=loss,
                      f_scale=f_scale, sigma_x=sigma_x)
    params, cov, stderr, cost_value, chi, dof, nit, nfev, status = problem.run(n_threads=1)
    residuals = problem.residuals_of(params)[0]
    result = FitResult(params[0], cov[0], chi[0], dof[0], nit[0], nfev[0], status[0], residuals,
                       problem.param_names, method, stderr=stderr[0], cost=cost_value[0],
                       estimator=problem.estimator.name, nfree=problem.free_index.size,
                       fitted=problem.fitted_model(),
                       delta=None if problem.delta is None else problem.delta[0])
    if not result.success:
        warnings.warn(f"fit did not converge: {result.message} (status {int(result.status)})",
                      RuntimeWarning, stacklevel=2)
    elif not np.all(np.isfinite(result.cov)):
        warnings.warn(f"{np.count_nonzero(~np.isfinite(result.cov))} of {result.cov.size} "
                      f"covariance entries are inf (dof = {result.dof}; with dof > 0, variances "
                      "beyond the double range)", RuntimeWarning, stacklevel=2)
    return result


def fit_batch(model, x, Y, p0=None, *, sigma=None, absolute_sigma=False, method="lm",
              bounds=None, fixed=None, maxiter=None, tol=None, n_threads=None, progress=False,
              jac=None, x_per_dataset=None, cost="chi2", loss="linear", f_scale=1.0,
              sigma_x=None):
    """Fit ``model`` to N datasets at once.

    Built-in and compiled models run in a ``nogil`` ``prange`` loop over datasets (results
    identical for any ``n_threads``). A Python model is called once per round for all active
    datasets with parameters as ``(N_active, 1)`` columns — ``model(x, *columns)`` must broadcast
    to ``(N_active, m)`` — with the finite-difference points of the Jacobians stacked in the
    same call (``(n_free + 1) * N_active`` rows); groups of at most 1280 datasets run on
    ``n_threads`` threads (identical results for any count; the model must then be
    thread-safe, as pure NumPy functions are).

    Parameters
    ----------
    model : see :func:`fit`
    x : array_like
        Shared ``(m,)`` (``(2, m)`` for ``gaussian_2d``) or per dataset ``(N, m)``
        (``(N, 2, m)``). A Python model receives a shared x as it is, and per dataset the rows
        ``x[active]``; an ``x`` whose first axis has length N is taken per dataset, except that
        ``(2, m)`` with N = 2 is refused as ambiguous (see ``x_per_dataset``).
    Y : array_like (N, m)
        Data; NaN marks missing points, so datasets of unequal length fit in one call.
    p0 : array_like (p,) or (N, p), optional
        Start, shared or per dataset; default: per-dataset guesses for built-in models.
    sigma : array_like (m,) or (N, m), optional
    absolute_sigma, method, bounds, fixed, maxiter, tol : see :func:`fit`
    n_threads : int, optional
        Threads (None or -1: the process-wide setting, :func:`fastcalc.get_num_threads`;
        all cores unless limited). With a Python model, threads run different groups of up
        to 1280 datasets, calling the model concurrently; pass 1 for a model that is not
        thread-safe.
    progress : bool
        Show a tqdm progress bar; without tqdm (the extra ``fastcalc[progress]``) a
        ``UserWarning`` says so and the fits run without one.
    jac : callable, optional
        Analytic Jacobian. Python model: ``jac(x, *columns)`` called like the model (parameters
        as ``(N_active, 1)`` columns) returning ``p`` derivatives ``d model / d p_k``, each
        broadcasting to ``(N_active, m)`` — one call per iteration instead of ``p`` model calls.
        Compiled model: a compiled callable as in :func:`fit`.
    x_per_dataset : bool, optional
        Say explicitly whether the first axis of ``x`` runs over datasets (True) or ``x`` is
        shared as a whole (False) — needed for a Python model with N = 2 and ``x`` of shape
        ``(2, m)`` (two datasets, or one x of two variables?). For built-in and compiled models
        the layout follows from the shape, and a contradicting value raises ``ValueError``.
    sigma_x : array_like (m,), (N, m) or scalar, optional
        Standard deviations of ``x``: orthogonal distance regression, as in :func:`fit`
        (``result.delta`` is ``(N, m)``, NaN at missing points). Built-in and compiled models
        run in the nogil kernels over all threads; a Python model is called with x + delta as
        ``(N_active, m)`` rows and parameters as ``(N_active, 1)`` columns. A row of
        ``sigma_x`` that is not finite and > 0 gives its dataset status 3 (the reason in
        ``input_error``); a shared one raises ValueError.
    cost, loss, f_scale : see :func:`fit`
        A dataset with a negative count (``cost="poisson"``) gets status 3 and the reason in
        ``input_error``, like other invalid inputs of its own.

    Returns
    -------
    BatchFitResult
        Per-dataset statuses; a failing dataset never affects the others.

    Raises
    ------
    ValueError
        As for :func:`fit` for what is wrong for every dataset (shapes, dtypes, ``p0`` of the
        wrong length, a shared ``x``, ``sigma`` or ``p0`` that is invalid, ...: checked before
        any fit starts); ``Y`` not 2-D; ``n_threads`` below 1 (other than -1). The inputs of
        one dataset alone (inf in its row of ``Y``, NaN or inf in its row of ``p0`` or of a
        per-dataset ``x``, its ``sigma`` row not finite and > 0, its ``p0`` outside the bounds,
        a valid point outside the model's ``x_domain``, fewer valid points than free
        parameters) never raise: that dataset gets status 3 (4
        for the bounds, 2 for too few points) with NaN results, ``dof`` 0 and the reason in
        ``input_error``/``message`` (e.g. "zero derivative or singular matrix: too few
        points: 0 valid points for 3 free parameters").
    TypeError
        As for :func:`fit`; ``n_threads`` not an int.
    Exception
        Any exception raised by a Python ``model`` propagates unchanged (the batch stops).

    Notes
    -----
    Failure behaviour: every dataset has its own ``status`` (as for :func:`fit`); a dataset
    that fails (all NaN, invalid inputs of its own, non-finite model values, no convergence)
    never changes the results of the others, and no warning is issued: check
    ``status``/``success`` (and ``stderr``, inf when the covariance cannot be estimated).

    Examples
    --------
    >>> import numpy as np
    >>> from fastcalc import fit_batch
    >>> x = np.linspace(0, 1, 10)
    >>> Y = np.array([2.0 * x + 1.0, -x + 3.0])
    >>> r = fit_batch(lambda x, a, b: a * x + b, x, Y, p0=[0.0, 0.0])
    >>> r.params.round(6).tolist()
    [[2.0, 1.0], [-1.0, 3.0]]
    """
    problem = Problem(model, x, Y, p0, sigma, bounds, fixed, method, maxiter, tol, jac,
                      batch=True, absolute_sigma=absolute_sigma, x_per_dataset=x_per_dataset,
                      cost=cost, loss=loss, f_scale=f_scale, sigma_x=sigma_x)
    if progress and sigma_x is not None:
        warnings.warn("progress=True shows nothing with sigma_x", UserWarning, stacklevel=2)
    params, cov, stderr, cost_value, chi, dof, nit, nfev, status = problem.run(
        n_threads=n_threads, progress=progress)
    return BatchFitResult(params, cov, chi, dof, nit, nfev, status, problem.param_names,
                          problem.residuals_of, method, problem.input_error, stderr=stderr,
                          cost=cost_value, estimator=problem.estimator.name,
                          nfree=problem.free_index.size, fitted=problem.fitted_model(),
                          delta=problem.delta)


def batch_residuals(model, x, Y, p0, params, *, sigma=None, **options):
    """``Y - model(x, params)`` (N, m) exactly as ``fit_batch(model, x, Y, p0, sigma=sigma,
    **options).residuals`` computes it from the fitted ``params`` (NaN for the datasets whose
    inputs are invalid), without fitting: the residuals of a chunk in :mod:`fastcalc.dask`."""
    problem = Problem(model, x, Y, p0, sigma, options.get("bounds"), options.get("fixed"),
                      options.get("method", "lm"), options.get("maxiter"), options.get("tol"),
                      None, batch=True, absolute_sigma=options.get("absolute_sigma", False),
                      x_per_dataset=options.get("x_per_dataset"),
                      cost=options.get("cost", "chi2"), loss=options.get("loss", "linear"),
                      f_scale=options.get("f_scale", 1.0))
    if options.get("sigma_x") is not None:
        raise ValueError("batch_residuals: with sigma_x the residuals are y - f(x + delta), "
                         "which needs the fit's delta (result.residuals)")
    return problem.residuals_of(params)
