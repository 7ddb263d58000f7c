"""Chi-squared fitting: one dataset or millions, Levenberg-Marquardt or gradient descent.

``chi2``, ``linear_fit`` and ``polyfit`` are closed-form / linear least squares. ``fit`` and
``fit_batch`` minimise ``chi2 = sum(((y - model(x, *p)) / sigma) ** 2)`` for a built-in model
(:mod:`fastcalc.models`), a compiled model callable or a Python callable.

Estimators
    ``cost="poisson"`` minimises the Poisson deviance instead (counts), and ``loss=`` applies a
    robust loss to the squared weighted residuals, as ``scipy.optimize.least_squares``. Both run
    in the same kernels as iteratively reweighted least squares (:mod:`fastcalc._estimator`:
    residuals and Jacobian rows rescaled at each accepted point, the step accepted on the true
    cost), so everything below holds for them with "chi2" read as "cost". ``result.chi2`` is
    Pearson's chi-squared for every estimator; ``cost``, ``aic``, ``bic`` and ``pvalue`` are
    reported too. A Poisson fit from a built-in model's guess whose mean is <= 0 where there
    are counts (a guess made for least squares) first fits least squares with weights
    ``1/sqrt(max(y, 1))``, then the likelihood from there.

Algorithm (``method="lm"``)
    Levenberg-Marquardt with MINPACK's parameter scaling: ``D = diag(column norms of J)``, never
    decreasing, and the damped step ``min ||r - J dp||^2 + lam ||D dp||^2``, solved from the normal
    equations by Cholesky when every pivot keeps at least 1e-8 of its diagonal and otherwise by a
    Householder QR of ``J`` and of the small augmented matrix ``[R; sqrt(lam) D]`` (stable on
    ill-conditioned problems such as the NIST StRD set). The step is controlled by a trust
    radius ``delta`` on ``||D dp||`` as in MINPACK's lmder: ``delta = ||D p0||`` at the start (1
    if that is 0); each trial takes the Gauss-Newton step (``lam = 0``) when it lies within
    ``1.1 delta``, else the ``lam`` that brings ``||D dp||`` to ``delta`` (to 0.1 %, by Moré's
    safeguarded Newton iteration, a few solves of the small system). With the ratio ``rho`` of
    actual to predicted chi2 reduction: ``rho <= 0.25`` halves ``delta`` (to at most
    ``5 ||D dp||``), a Gauss-Newton step or ``rho >= 0.75`` sets ``delta = 2 ||D dp||``, and the
    step is accepted when ``rho >= 1e-4``.
Stopping (``tol`` = ``(ftol, xtol, gtol)``, or one number for all three; default 1e-12 each)
    * chi2 test: the actual and the predicted relative reductions of chi2 are both <= ftol, or
      the Gauss-Newton step from the current point is predicted to remove <= ftol of chi2 (it is
      then not taken);
    * step test: an accepted step has ``||D dp|| <= xtol ||D p||``, or the trust radius has
      shrunk to ``delta <= xtol ||D p||``;
    * gradient test: the cosine of the angle between the residual vector and every Jacobian column
      is <= gtol (projected on active bounds).
    At the exit a Gauss-Newton step is computed once more: if it would still move some parameter
    by more than 1e-4 of its value and remove more than 1e-8 of chi2, the point is not a minimum;
    LM then restarts from it with fresh scaling and trust radius (at most 3 times) and otherwise
    reports ``MAX_ITERATIONS`` (1) instead of success. On the NIST StRD problems (default
    settings, analytic or finite-difference Jacobian) this solves 27/27 from both starts at
    LRE >= 5.0 (analytic) / 4.6 (finite differences), in 1656 iterations in all (analytic).
Linear algebra
    Cholesky of the damped normal equations is used when every pivot keeps >= 1e-8 of its
    diagonal (about 1.7x faster than QR on small problems); otherwise Householder QR. Both give
    the same NIST scores; the QR fallback keeps the covariance accurate when J is ill-conditioned.
Bounds
    Box bounds by projection: a parameter on a bound whose step points outward is held there and the
    step is solved again for the others; a step crossing a bound is clipped to it, and the predicted
    reduction is that of the clipped step. The covariance is that of the unconstrained problem at
    the solution.
Python-callable models
    ``fit_batch`` advances groups of at most 1280 datasets in lock step: one broadcast model
    call per round for every dataset waiting for a trial value, and one for the forward-difference
    Jacobians (each free parameter shifted in its own block of rows; or one ``jac`` call), the
    algebra per dataset in C. Groups run
    on ``n_threads`` threads (NumPy and the algebra release the GIL), each computed exactly as on
    one thread, so a Python model must be thread-safe there (pure NumPy functions are); use
    ``n_threads=1`` for one that is not.
Gradient descent (``method="gd"``)
    ``p += alpha D^-2 J^T r`` (gradient descent on chi2, preconditioned by the same scaling), with
    an adaptive step: ``alpha`` grows 1.5x after a step that lowers chi2 and halves (the step being
    rejected) otherwise. Same stopping tests. Its default iteration budget is ``maxiter=20000``
    (LM: ``200 * (n_free + 1)``); it is much slower than LM and exists for teaching and comparison.
Scale of the data
    The fit does not depend on the scale of ``y`` (or of ``y / sigma``): data of extreme scale
    (``|y / sigma|`` beyond about 1e+-60) are fitted with the weights divided by a power of two,
    so ``y * 2**k`` gives the parameters proportional to ``y`` times ``2**k`` for any
    representable scale. ``chi2`` and the covariance are reported for the data as given; when
    they leave the double range (e.g. y ~ 1e200: chi2 ~ 1e400) they are inf or 0. ``stderr``
    is scaled back on its own (from the covariance of the Jacobian with its columns divided
    by powers of two), so it stays finite where only its variance is not: with built-in
    models, ``y * 2**k`` gives ``stderr`` times ``2**k`` bitwise, as the parameters.
Statuses (per dataset)
    0 converged; 1 iteration budget exhausted or stalled away from a minimum; 2 too few points,
    no initial guess possible or singular Jacobian at the solution (covariance inf); 3 non-finite
    model value at the start, or non-finite Jacobian, or (fit_batch) invalid inputs of the
    dataset's own, such as x outside the model's domain; 5 a compiled model returned non-zero at the
    start or in its Jacobian. (A trial step where the model is not finite is simply rejected.)
"""
import copy
import inspect
import warnings

import numpy as np
from scipy import LowLevelCallable  # type: ignore[import-untyped]

from . import _fitting
from ._arrays import read_only, real_array
from ._estimators import estimator, goodness_of_fit
from ._inference import FittedModel, band, conf_interval, python_model_at, simulate
from ._evaluate import real_values, resolve
from ._parallel import n_threads_for
from ._status import Status, message_of, messages_of
from ._threads import run_on_threads

__all__ = ["BatchFitResult", "FitResult", "chi2", "fit", "fit_batch", "linear_fit", "polyfit"]

DEFAULT_TOL = 1e-12
GD_MAXITER = 20000
_KIND_BUILTIN, _KIND_COMPILED, _KIND_PYTHON = 0, 1, 2
_METHODS = {"lm": 0, "gd": 1}
# Datasets per lock-step group of a Python model, at most: large enough that NumPy's work dwarfs
# the per-call overhead and GIL hand-offs between threads (1024-2048 measured best for 64-point
# models). The number of groups is rounded up to a multiple of _PYTHON_GROUPS_MULTIPLE so that
# 1, 2 or 4 threads get equal shares; it depends on the number of datasets only, so results
# never depend on the thread count.
_PYTHON_CHUNK = 1280
_PYTHON_GROUPS_MULTIPLE = 4
_COMPILED_CHUNK = 65536
_MAX_INT = 2**31 - 1
# A sigma below 2**-1000 would give a weight 1/sigma beyond the double range (subnormal sigma):
# its dataset's sigma is multiplied by 2**_SIGMA_SHIFT, which the kernels see as data of unusual
# scale; chi2 and the covariance are corrected back afterwards (_unshift_sigma).
_SIGMA_TINY = 2.0 ** -1000
_SIGMA_SHIFT = 128


def _python_group_size(n_datasets):
    """Datasets per lock-step group of a Python model (see _PYTHON_CHUNK)."""
    groups = max(1, -(-n_datasets // _PYTHON_CHUNK))
    if groups > 1:
        groups = -(-groups // _PYTHON_GROUPS_MULTIPLE) * _PYTHON_GROUPS_MULTIPLE
    return max(1, -(-n_datasets // groups))


# ---------------------------------------------------------------------------------------------
# Results

class FitResult:
    """Result of one fit.

    Attributes
    ----------
    params, stderr : ndarray (p,)
        Best-fit parameters and their standard errors ``sqrt(diag(cov))`` (finite also where
        a variance in ``cov`` is beyond the double range).
    cov : ndarray (p, p)
        Covariance (scaled by ``redchi2`` unless ``absolute_sigma``; zero rows for fixed
        parameters; inf when singular).
    chi2, redchi2 : float
        Pearson's chi-squared at the solution (``sum(((y - f) / sigma)**2)``, or
        ``sum((y - mu)**2 / mu)`` for ``cost="poisson"``) and ``chi2 / dof``.
    cost : float
        What the fit minimised, at the solution: ``chi2``; the Poisson deviance; or for a
        robust loss ``sum(f_scale**2 rho(z / f_scale**2))``, ``z`` the squared weighted
        residual (twice ``least_squares``' cost).
    estimator : str
        ``"chi2"``, ``"poisson"`` or the robust loss's name.
    aic, bic, pvalue : float
        ``cost + 2 k``, ``cost + k ln(n)`` (``k`` free parameters, ``n`` valid points) and the
        chi-squared probability of a cost this large with ``dof`` degrees of freedom (NaN for
        robust losses).
    dof : int
        Valid points minus free parameters.
    nit, nfev : int
        Iterations (trial steps) and model evaluations.
    status : int
        A :class:`fastcalc.Status` code; ``success`` is ``status == 0``; ``message`` explains it.
    residuals : ndarray (m,)
        ``y - model(x, *params)`` (NaN at missing points).
    param_names : tuple of str
    """

    def __init__(self, params, cov, chi2, dof, nit, nfev, status, residuals, param_names,
                 method="lm", input_error="", stderr=None, cost=None, estimator="chi2",
                 nfree=None, fitted=None, row=0):
        self.params = np.asarray(params, dtype=np.float64)
        self.cov = np.asarray(cov, dtype=np.float64)
        if stderr is None:
            with np.errstate(invalid="ignore"):
                stderr = np.sqrt(np.diagonal(self.cov))
        self.stderr = np.array(stderr, dtype=np.float64)
        self.chi2 = float(chi2)
        self.dof = int(dof)
        self.redchi2 = self.chi2 / self.dof if self.dof > 0 else float("nan")
        self.cost = self.chi2 if cost is None else float(cost)
        self.estimator = estimator
        nfree = self.params.size if nfree is None else nfree
        self.aic, self.bic, self.pvalue = goodness_of_fit(self.cost, self.dof, nfree, estimator)
        self.nit = int(nit)
        self.nfev = int(nfev)
        self.status = Status(int(status))
        self.success = self.status == Status.SUCCESS
        self.message = message_of(self.status) + (f": {input_error}" if input_error else "")
        self.residuals = residuals
        self.param_names = tuple(param_names)
        self.method = method
        self._fitted = fitted           # the model and noise of the fit (fit and fit_batch)
        self._row = row                 # this fit's dataset in the fit's data

    def band(self, x_new, cl=0.6827, kind="confidence", sigma=None):
        """The model's confidence (or prediction) band at ``x_new``: ``(lower, upper)``.

        The delta method: the model at ``x_new`` -+ ``z`` times ``sqrt(diag(J C J^T))``, ``J``
        the model's Jacobian in the parameters (central differences, :func:`fastcalc.propagate`)
        and ``z`` the normal quantile of ``cl`` (two-sided). ``kind="prediction"`` adds the
        noise of a new data point: ``sigma`` at ``x_new`` if given, else the fit's sigma when it
        was uniform (times ``sqrt(redchi2)`` unless ``absolute_sigma``), else (no sigma)
        ``sqrt(redchi2)``; for ``cost="poisson"`` the model value (a count's variance).

        Parameters
        ----------
        x_new : array_like
            Points where the model is wanted, as the model takes them (``(m_new,)``, or
            ``(2, m_new)`` for ``gaussian_2d``).
        cl : float
            Confidence level in (0, 1); 0.6827 is one standard deviation.
        kind : {"confidence", "prediction"}
        sigma : float or array_like (m_new,), optional
            The noise at ``x_new`` (``kind="prediction"`` only).

        Returns
        -------
        lower, upper : ndarray (m_new,)

        Examples
        --------
        >>> import numpy as np
        >>> from fastcalc import fit
        >>> x = np.linspace(0, 1, 11)
        >>> r = fit(lambda x, a, b: a + b * x, x, 1 + 2 * x + 0.1 * np.cos(9 * x), p0=[0, 0])
        >>> lower, upper = r.band([0.0, 0.5, 1.0])
        >>> bool(np.all(lower < upper)), np.round(upper - lower, 4)
        (True, array([0.0882, 0.0472, 0.0882]))
        """
        lower, upper = band(self._model(), self.params[None], self.cov[None],
                            np.array([self.redchi2]), x_new, cl, kind, sigma)
        return lower[0], upper[0]

    def simulate(self, n, rng=None):
        """``n`` toy datasets ``(n, m)`` drawn from the fitted model at the fit's x with the
        fit's noise: Gaussian with its sigma (times ``sqrt(redchi2)`` unless
        ``absolute_sigma``; without sigma, ``sqrt(redchi2)``), or Poisson for
        ``cost="poisson"``. NaN where the data were missing. Refit them with one
        :func:`fit_batch` call for a parametric bootstrap.

        Examples
        --------
        >>> import numpy as np
        >>> from fastcalc import fit, models
        >>> x = np.linspace(0, 4, 30)
        >>> r = fit(models.exponential, x, 3 * np.exp(-x / 1.5) + 0.5, sigma=0.01,
        ...         absolute_sigma=True)
        >>> r.simulate(1000, rng=1).shape
        (1000, 30)
        """
        return simulate(self._model(), self.params[None], np.array([self.redchi2]), n, rng,
                        np.array([self._row]))[0]

    def conf_interval(self, cl=0.6827, params=None):
        """Profile-likelihood confidence intervals (MINOS's), asymmetric where the model is
        not linear.

        The limit of a parameter is where the cost minimised over the other free parameters
        (each trial value a refit) has risen by ``chi2.ppf(cl, 1)`` above its minimum (times
        ``cost / dof`` when the covariance is scaled so: without ``absolute_sigma``, except for
        ``cost="poisson"``), found by a safeguarded secant to ``1e-7`` of its standard error.

        Parameters
        ----------
        cl : float
            Confidence level in (0, 1); 0.6827: the one-standard-deviation interval.
        params : sequence of str or int, optional
            The parameters (names or indices; default: every free parameter).

        Returns
        -------
        Intervals
            ``limits`` ``(k, 2)`` (lower, upper; ``np.asarray`` gives it) and ``status``
            ``(k, 2)``: 0 found; 1 not found within 60 refits; 4 the profile stays below
            the level up to the parameter's bound; a refit's failure status otherwise (NaN
            limit).

        Examples
        --------
        >>> import numpy as np
        >>> from fastcalc import fit, models
        >>> x = np.linspace(0, 5, 40)
        >>> y = models.exponential(x, 2.0, 1.5, 0.1) + 0.05 * np.sin(7 * x)
        >>> r = fit(models.exponential, x, y, sigma=0.05, absolute_sigma=True)
        >>> ci = r.conf_interval(params=["tau"])
        >>> ci.status.tolist(), bool(ci.lower[0] < r.params[1] < ci.upper[0])
        ([[0, 0]], True)
        """
        intervals = conf_interval(self._model(), self.params[None], self.cov[None],
                                  self.cost, self.dof, np.array([self._row]), cl, params)
        intervals.limits = intervals.limits[0]
        intervals.lower, intervals.upper = intervals.limits[:, 0], intervals.limits[:, 1]
        intervals.status = intervals.status[0]
        return intervals

    def _model(self):
        if self._fitted is None:
            raise TypeError("band and simulate need the result of fit or fit_batch (this one "
                            "has no model)")
        return self._fitted

    def __repr__(self):
        values = ", ".join(f"{n}={v:.6g}" for n, v in zip(self.param_names, self.params))
        return f"FitResult({values}, chi2={self.chi2:.6g}, status={int(self.status)})"

    def report(self):
        """A readable table of the parameters, their errors and the fit statistics.

        Examples
        --------
        >>> from fastcalc import linear_fit
        >>> print(linear_fit([0.0, 1.0, 2.0], [1.0, 3.0, 5.0]).report())  # doctest: +NORMALIZE_WHITESPACE
        parameter          value         stderr   rel. err
        a                      1              0          0
        b                      2              0          0
        chi2 = 0, dof = 1, redchi2 = 0
        nit = 0, nfev = 0, status = 0 (converged)
        """
        width = max([9] + [len(n) for n in self.param_names])
        lines = [f"{'parameter':<{width}} {'value':>14} {'stderr':>14} {'rel. err':>10}"]
        for name, value, err in zip(self.param_names, self.params, self.stderr):
            rel = abs(err / value) if value != 0 else float("inf")
            lines.append(f"{name:<{width}} {value:>14.8g} {err:>14.6g} {rel:>10.3g}")
        lines.append(f"chi2 = {self.chi2:.8g}, dof = {self.dof}, redchi2 = {self.redchi2:.6g}")
        if self.estimator != "chi2":
            lines.append(f"cost ({self.estimator}) = {self.cost:.8g}")
        lines.append(f"nit = {self.nit}, nfev = {self.nfev}, status = {int(self.status)} "
                     f"({self.message})")
        return "\n".join(lines)


class BatchFitResult:
    """Results of N fits: the fields of :class:`FitResult` as arrays over datasets.

    ``len(result)`` is N; ``result[i]`` is the :class:`FitResult` of dataset ``i``;
    ``to_dataframe()`` gives a pandas DataFrame (one row per dataset). ``residuals`` (N, m) is
    computed on first access. ``input_error`` (N,) says, for a dataset not fitted because its
    own inputs are invalid (status 3; 4 for ``p0`` outside the bounds; 2 for fewer valid points
    than free parameters, e.g. all NaN), what is wrong ("" for the others); ``message``
    includes it. Such a dataset has NaN results and ``dof`` 0.
    """

    def __init__(self, params, cov, chi2, dof, nit, nfev, status, param_names, residuals_of,
                 method="lm", input_error=None, stderr=None, cost=None, estimator="chi2",
                 nfree=None, fitted=None):
        self.params = params
        self._fitted = fitted
        self.cov = cov
        with np.errstate(invalid="ignore"):
            # the fits' own stderr is finite where its variance in cov overflows
            self.stderr = (np.sqrt(np.diagonal(cov, axis1=1, axis2=2)) if stderr is None
                           else stderr)
            self.redchi2 = np.where(dof > 0, chi2 / np.where(dof > 0, dof, 1), np.nan)
        self.chi2 = chi2
        self.dof = dof
        self.cost = chi2 if cost is None else cost
        self.estimator = estimator
        self.nfree = params.shape[1] if nfree is None else nfree
        self.aic, self.bic, self.pvalue = goodness_of_fit(self.cost, dof, self.nfree, estimator)
        self.nit = nit
        self.nfev = nfev
        self.status = status
        self.success = status == 0
        self.param_names = tuple(param_names)
        self.method = method
        self._residuals_of = residuals_of
        self._residuals = None
        self.input_error = (np.full(np.shape(status), "", dtype=object) if input_error is None
                            else np.asarray(input_error, dtype=object))

    @property
    def message(self):
        """Per-dataset status messages (object array), with the ``input_error`` if any."""
        messages = messages_of(self.status)
        for i in np.flatnonzero(self.input_error != ""):
            messages[i] = f"{messages[i]}: {self.input_error[i]}"
        return messages

    @property
    def residuals(self):
        if self._residuals is None:
            self._residuals = self._residuals_of(self.params)
        return self._residuals

    def __len__(self):
        return self.params.shape[0]

    def __getitem__(self, index):
        if not isinstance(index, (int, np.integer)):
            raise TypeError("BatchFitResult indices must be integers")
        i = range(len(self))[index]
        residuals = (self._residuals[i] if self._residuals is not None
                     else self._residuals_of(self.params[i:i + 1], rows=np.array([i]))[0])
        return FitResult(self.params[i], self.cov[i], self.chi2[i], self.dof[i], self.nit[i],
                         self.nfev[i], self.status[i], residuals, self.param_names, self.method,
                         self.input_error[i], stderr=self.stderr[i], cost=self.cost[i],
                         estimator=self.estimator,
                         nfree=self.nfree, fitted=self._fitted, row=i)

    def band(self, x_new, cl=0.6827, kind="confidence", sigma=None):
        """Every dataset's band at the same ``x_new``: ``(lower, upper)``, each ``(N, m_new)``
        (:meth:`FitResult.band`); one model evaluation per parameter shift for all datasets
        (no Python loop over them). A failed fit's band is NaN."""
        return band(FitResult._model(self), self.params, self.cov, self.redchi2, x_new, cl,
                    kind, sigma)

    def conf_interval(self, cl=0.6827, params=None):
        """Every dataset's profile-likelihood intervals (:meth:`FitResult.conf_interval`):
        ``limits`` and ``status`` ``(N, k, 2)``. Each round of the search refits every dataset
        still searching in one batch call per parameter (the fit kernels, all threads), so
        this is not a Python loop over datasets."""
        return conf_interval(FitResult._model(self), self.params, self.cov, self.cost,
                             self.dof, np.arange(len(self)), cl, params)

    def simulate(self, n, rng=None):
        """``n`` toy datasets per fit, ``(N, n, m)`` (:meth:`FitResult.simulate`)."""
        return simulate(FitResult._model(self), self.params, self.redchi2, n, rng,
                        np.arange(len(self)))

    def __repr__(self):
        return (f"BatchFitResult({len(self)} datasets, {int(self.success.sum())} converged, "
                f"params {self.param_names})")

    def to_dataframe(self):
        """One row per dataset: parameters, ``stderr_<name>``, chi2, redchi2, cost, aic, bic,
        pvalue, dof, nit, nfev, status, success (requires pandas).

        A parameter whose name is also one of the other columns (a model ``f(x, a, chi2)``,
        or parameters ``a`` and ``stderr_a``) gets the column ``param_<name>`` instead, so
        that no column overwrites another."""
        try:
            import pandas as pd  # type: ignore[import-untyped]
        except ImportError as exc:   # pragma: no cover - pandas is installed in CI
            raise ImportError("to_dataframe() requires pandas") from exc
        statistics = dict(chi2=self.chi2, redchi2=self.redchi2, cost=self.cost, aic=self.aic,
                          bic=self.bic, pvalue=self.pvalue, dof=self.dof, nit=self.nit,
                          nfev=self.nfev, status=self.status, success=self.success)
        others = set(statistics) | {f"stderr_{name}" for name in self.param_names}
        columns = {}
        for k, name in enumerate(self.param_names):
            column = name
            while column in others or column in columns:
                column = f"param_{column}"
            columns[column] = self.params[:, k]
        for k, name in enumerate(self.param_names):
            columns[f"stderr_{name}"] = self.stderr[:, k]
        columns.update(statistics)
        return pd.DataFrame(columns)


# ---------------------------------------------------------------------------------------------
# Closed-form and linear least squares


def _weights(sigma, shape, name="sigma"):
    """(w, e): the weights 1/sigma are w * 2**e, with w <= 1 at its largest (so that neither
    1/sigma for a tiny sigma nor w**2 overflows, and a uniform sigma gives a uniform w)."""
    if sigma is None:
        return np.ones(shape), 0
    sigma = real_array(sigma, name)
    try:
        sigma = np.broadcast_to(sigma, shape)
    except ValueError:
        raise ValueError(f"{name} has shape {sigma.shape}, incompatible with y of shape {shape}") \
            from None
    if not np.all(np.isfinite(sigma)) or np.any(sigma <= 0):
        raise ValueError(f"{name} must be finite and > 0")
    e = _exponent(np.min(sigma)) - 1 if sigma.size else 0      # sigma / 2**e >= 1
    with np.errstate(under="ignore"):    # a weight 2**-1074 times the largest does not count
        return 1.0 / np.ldexp(sigma, -e), -e


def _exponent(value):
    """e with |value| in [2**(e-1), 2**e) (0 for 0)."""
    return int(np.frexp(float(value))[1])


def _sum_of_squares(r, exponent=0, axis=-1):
    """sum((r * 2**exponent)**2) over axis without overflow or underflow of the squares: the
    rows are divided by a power of two near their largest entry first. A total beyond the
    double range is inf (or 0)."""
    r = np.asarray(r, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        largest = np.max(np.abs(r), axis=axis, keepdims=True, initial=0.0)
    e = np.frexp(np.where(np.isfinite(largest), largest, 1.0))[1]
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        scaled = np.ldexp(r, -e)
        total = np.sum(scaled * scaled, axis=axis, keepdims=True)
        return np.squeeze(np.ldexp(total, 2 * (e + exponent)), axis=axis)


def chi2(y, y_model, sigma=None):
    """Chi-squared ``sum(((y - y_model) / sigma) ** 2)`` over the last axis.

    NaN in ``y`` marks a missing point (not counted).

    Parameters
    ----------
    y, y_model : array_like, (m,) or (N, m)
    sigma : array_like, optional
        Standard deviations, broadcastable to ``y``; 1 when omitted.

    Returns
    -------
    float, or ndarray (N,) for 2-D ``y``.

    Raises
    ------
    ValueError
        ``y_model`` or ``sigma`` not broadcastable to ``y``; ``sigma`` not finite and positive.
    TypeError
        Complex or non-numeric ``y``, ``y_model`` or ``sigma``.

    Notes
    -----
    Failure behaviour: NaN in ``y`` is a missing point (not counted); NaN in ``y_model`` gives
    NaN and inf in ``y`` gives inf (never an exception). The squares are summed scaled by powers
    of two, so they neither overflow nor underflow; only a total beyond the double range is inf
    (or 0), without a warning.

    Examples
    --------
    >>> chi2([1.0, 2.0, 3.0], [1.0, 2.5, 2.0], sigma=0.5)
    5.0
    """
    y = real_array(y, "y")
    y_model = real_array(y_model, "y_model")
    try:
        y, y_model = np.broadcast_arrays(y, y_model)
    except ValueError:
        raise ValueError(f"y_model has shape {y_model.shape}, incompatible with y of shape "
                         f"{y.shape}") from None
    w, e = _weights(sigma, y.shape)
    with np.errstate(over="ignore", invalid="ignore"):  # inf in y or y_model: an inf chi2
        d = y - y_model
    r = np.where(np.isnan(y), 0.0, d * w)        # w <= 1: no overflow
    total = _sum_of_squares(r, e)
    return float(total) if np.ndim(total) == 0 else total


def _valid_xy(x, y, name_x="x"):
    x = real_array(x, name_x)
    y = real_array(y, "y")
    if x.ndim != 1 or y.shape != x.shape:
        raise ValueError(f"x and y must be 1-D of the same length, got {x.shape} and {y.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name_x} contains NaN or inf")
    if np.any(np.isinf(y)):
        raise ValueError("y contains inf (use NaN for missing points)")
    return x, y


def _scale_exponent(values):
    """k with max|values| in [2**k, 2**(k+1)) (0 for all zero): dividing by 2**k is exact,
    and keeps sums of squares of huge or tiny x or y from overflowing or underflowing."""
    largest = float(np.max(np.abs(values))) if values.size else 0.0
    return _exponent(largest) - 1 if largest != 0.0 else 0


def linear_fit(x, y, sigma=None, *, absolute_sigma=False):
    """Closed-form weighted straight-line fit ``y = a + b * x`` (the ``line`` model).

    Parameters
    ----------
    x, y : array_like (m,)
        Data; NaN in ``y`` marks a missing point.
    sigma : array_like, optional
        Standard deviations of ``y`` (scalar or (m,)).
    absolute_sigma : bool
        As in ``scipy.optimize.curve_fit``: if False the covariance is scaled by ``chi2 / dof``.

    Returns
    -------
    FitResult
        params ``(a, b)``: intercept and slope, as :data:`fastcalc.models.line`.

    Raises
    ------
    ValueError
        ``x`` and ``y`` not 1-D of the same length; NaN or inf in ``x``; inf in ``y``; fewer
        than 2 valid points or all ``x`` equal; ``sigma`` not finite and positive or of the
        wrong shape.
    TypeError
        Complex or non-numeric ``x``, ``y`` or ``sigma``.

    Notes
    -----
    Failure behaviour: NaN in ``y`` marks a missing point; every other failure raises
    ``ValueError``/``TypeError`` (no status). ``x``, ``y`` and the weights are scaled internally
    by powers of two, so any representable ``x``, ``y`` and ``sigma`` (e.g. 1e300 or 1e-300)
    work, and the parameters do not depend on a uniform ``sigma``; a result beyond the double
    range (e.g. chi2 ~ 1e400 for y ~ 1e200) is inf or 0, without a warning. The standard
    errors are scaled back on their own, so they stay finite where only the variances in
    ``cov`` leave the range.

    Examples
    --------
    >>> r = linear_fit([0.0, 1.0, 2.0, 3.0], [1.0, 3.1, 4.9, 7.0])
    >>> r.params.round(6).tolist()
    [1.03, 1.98]
    """
    x, y = _valid_xy(x, y)
    w, we = _weights(sigma, y.shape)
    valid = np.isfinite(y)
    if valid.sum() < 2:
        raise ValueError("linear_fit needs at least 2 valid points")
    # x and y are divided by powers of two and the weights come as w * 2**we (all exact), so
    # that no sum of squares overflows or underflows; the results are scaled back at the end
    kx, ky = _scale_exponent(x[valid]), _scale_exponent(y[valid])
    uv, yv = np.ldexp(x[valid], -kx), np.ldexp(y[valid], -ky)
    with np.errstate(under="ignore"):    # a weight far below the largest does not count
        wv = w[valid] ** 2
    s = wv.sum()
    um = (wv * uv).sum() / s
    t = uv - um
    stt = (wv * t * t).sum()
    if stt == 0.0:
        raise ValueError("linear_fit needs at least 2 distinct x values")
    # y centred too: sum(w t) is zero only to rounding, and times a large mean of y that
    # rounding swamped the slope (x ~ 1e6 + 1e-5 u, y ~ 1e4 + ...: 6x off)
    ym = (wv * yv).sum() / s
    slope_u = (wv * t * (yv - ym)).sum() / stt
    intercept_u = ym - um * slope_u
    resid_u = yv - (slope_u * uv + intercept_u)
    chi_u = float(np.sum((resid_u * w[valid]) ** 2))
    cov = np.array([[1.0 / s + um * um / stt, -um / stt], [-um / stt, 1.0 / stt]])
    dof = int(valid.sum()) - 2
    # back to the units of x and y: one exact (or, beyond the double range, inf or 0) ldexp
    k = np.arange(2)
    cov, stderr = _covariance_scaled_back(cov, chi_u, dof, absolute_sigma, k, kx, ky, we)
    with np.errstate(over="ignore", under="ignore"):
        intercept, slope = np.ldexp([intercept_u, slope_u], ky - k * kx)
        chi = float(np.ldexp(chi_u, 2 * (ky + we)))
        resid = np.full(y.shape, np.nan)
        resid[valid] = y[valid] - np.ldexp(slope_u * uv + intercept_u, ky)
    return FitResult([intercept, slope], cov, chi, dof, 0, 0, 0, resid, ("a", "b"),
                     stderr=stderr)


def _covariance_scaled_back(cov_u, chi_u, dof, absolute_sigma, k, kx, ky, we):
    """``(cov, stderr)`` of ``c_k = d_k 2**(ky - k kx)`` from the covariance ``cov_u`` of the
    ``d_k`` fitted to x, y divided by ``2**kx``, ``2**ky`` with weights ``w 2**we``.

    Each is one exact ldexp (inf or 0 only beyond the double range). The standard errors are
    scaled back from ``sqrt(diag(cov_u))`` (half the exponent), not taken from the scaled-back
    variances, so a representable one (1e199) is not lost to its variance (1e398)."""
    if absolute_sigma:
        exponents = -k * kx - we
    elif dof > 0:
        cov_u = cov_u * (chi_u / dof)
        exponents = ky - k * kx
    else:
        return np.full(cov_u.shape, np.inf), np.full(k.size, np.inf)
    with np.errstate(over="ignore", under="ignore"):
        return (np.ldexp(cov_u, np.add.outer(exponents, exponents)),
                np.ldexp(np.sqrt(np.diagonal(cov_u)), exponents))


def polyfit(x, y, deg, sigma=None, *, absolute_sigma=False):
    """Weighted least-squares polynomial fit by QR (no normal equations).

    Coefficients are ordered lowest power first, ``c0 + c1 x + ... + c_deg x^deg`` (as
    :func:`fastcalc.models.polynomial` and ``numpy.polynomial``; the reverse of ``numpy.polyfit``).
    The weighted Vandermonde matrix has its columns scaled to unit norm before the QR
    factorisation.

    Parameters
    ----------
    x, y : array_like (m,)
        Data; NaN in ``y`` marks a missing point.
    deg : int
        Degree.
    sigma : array_like, optional
        Standard deviations of ``y``.
    absolute_sigma : bool
        If False (default) the covariance is scaled by ``chi2 / dof`` (as
        ``numpy.polyfit(..., cov=True)`` and ``curve_fit``).

    Returns
    -------
    FitResult
        params ``(c0, ..., c_deg)``.

    Raises
    ------
    ValueError
        As for :func:`linear_fit`; also ``deg`` not a non-negative int, fewer than ``deg + 1``
        valid points, or a singular weighted Vandermonde matrix.
    TypeError
        As for :func:`linear_fit`.

    Notes
    -----
    Failure behaviour: NaN in ``y`` marks a missing point; every other failure raises
    ``ValueError`` (no status). Extreme scales of ``x``, ``y`` and ``sigma`` are handled as in
    :func:`linear_fit`.

    Examples
    --------
    >>> polyfit([0.0, 1.0, 2.0, 3.0], [1.0, 2.0, 5.0, 10.0], 2).params.round(10).tolist()
    [1.0, 0.0, 1.0]
    """
    if isinstance(deg, bool) or not isinstance(deg, (int, np.integer)) or deg < 0:
        raise ValueError(f"deg must be a non-negative int, got {deg!r}")
    x, y = _valid_xy(x, y)
    w, we = _weights(sigma, y.shape)
    valid = np.isfinite(y)
    n = int(deg) + 1
    if valid.sum() < n:
        raise ValueError(f"polyfit of degree {deg} needs at least {n} valid points")
    # x and y are divided by powers of two (exact; the column scaling below makes the QR
    # identical) and the weights come as w * 2**we, so that no power or square overflows or
    # underflows; the results are scaled back at the end
    kx, ky = _scale_exponent(x[valid]), _scale_exponent(y[valid])
    uv, yv = np.ldexp(x[valid], -kx), np.ldexp(y[valid], -ky)
    with np.errstate(under="ignore"):
        A = np.vander(uv, n, increasing=True) * w[valid, None]
    b = yv * w[valid]
    norms = np.linalg.norm(A, axis=0)
    norms[norms == 0] = 1.0
    q, r = np.linalg.qr(A / norms)
    diag = np.abs(np.diagonal(r))
    if np.any(diag <= 1e-13 * max(diag.max(), 1e-300)):
        raise ValueError("polyfit: the weighted Vandermonde matrix is singular "
                         "(too few distinct x values for this degree)")
    coef_u = np.linalg.solve(r, q.T @ b) / norms
    rinv = np.linalg.solve(r, np.eye(n))
    cov_u = (rinv @ rinv.T) / np.outer(norms, norms)
    fitted_u = np.polyval(coef_u[::-1], uv)
    chi_u = float(np.sum(((yv - fitted_u) * w[valid]) ** 2))
    dof = int(valid.sum()) - n
    # back to the units of x and y, c_k = d_k 2**(ky - k kx): one exact (or, beyond the double
    # range, inf or 0) ldexp
    k = np.arange(n)
    cov, stderr = _covariance_scaled_back(cov_u, chi_u, dof, absolute_sigma, k, kx, ky, we)
    with np.errstate(over="ignore", under="ignore"):
        coef = np.ldexp(coef_u, ky - k * kx)
        chi = float(np.ldexp(chi_u, 2 * (ky + we)))
        resid = np.full(y.shape, np.nan)
        resid[valid] = y[valid] - np.ldexp(fitted_u, ky)
    names = tuple(f"c{k}" for k in range(n))
    return FitResult(coef, cov, chi, dof, 0, 0, 0, resid, names, stderr=stderr)


# ---------------------------------------------------------------------------------------------
# Nonlinear fits

def _is_builtin(model):
    return all(hasattr(model, a) for a in ("model_id", "nparams", "x_dim", "param_names"))


def _is_compiled(model):
    return isinstance(model, LowLevelCallable) or (
        type(model).__module__.startswith("numba") and hasattr(model, "ctypes"))


def _tolerances(tol):
    if tol is None:
        return DEFAULT_TOL, DEFAULT_TOL, DEFAULT_TOL
    values = real_array(tol, "tol")
    if values.ndim == 0:
        values = np.repeat(values, 3)
    if values.shape != (3,) or not np.all(np.isfinite(values) & (values >= 0)):
        raise ValueError(f"tol must be a non-negative number or (ftol, xtol, gtol), got {tol!r}")
    return tuple(float(t) for t in values)


def _python_param_names(model, p0):
    if p0 is not None:
        n = np.shape(p0)[-1] if np.ndim(p0) else 1
        try:
            names = list(inspect.signature(model).parameters)[1:]
            if len(names) == n and all(
                    p.kind == p.POSITIONAL_OR_KEYWORD
                    for p in list(inspect.signature(model).parameters.values())[1:]):
                return tuple(names)
        except (TypeError, ValueError):
            pass
        return tuple(f"p{k}" for k in range(n))
    try:
        params = list(inspect.signature(model).parameters.values())
    except (TypeError, ValueError):
        raise ValueError("p0 is required: the number of parameters of model cannot be "
                         "determined") from None
    if any(p.kind == p.VAR_POSITIONAL for p in params) or len(params) < 2:
        raise ValueError("p0 is required: the number of parameters of model cannot be "
                         "determined from its signature")
    return tuple(p.name for p in params[1:])


def _bound(value, unbounded, which, P):
    """One side of bounds as a (P,) float array; None means unbounded (as in SciPy)."""
    if value is None:
        return np.full(P, unbounded)
    value = real_array(value, f"bounds ({which})")
    if value.shape not in ((), (P,)):
        raise ValueError(f"bounds ({which}) has shape {value.shape}, expected a scalar or "
                         f"({P},), one per parameter")
    return np.array(np.broadcast_to(value, (P,)))


def _python_x_per_dataset(x_shape, N, m, batch, x_per_dataset):
    """Whether the first axis of x runs over the N datasets of a Python model (x_per_dataset
    None: decided from the shapes). The Dask layer decides it once for the whole Y with this
    and passes it to every chunk, so that the result does not depend on the chunking."""
    ndim = len(x_shape)
    if x_per_dataset is None:
        per_dataset = (batch and ndim >= 2 and x_shape[0] == N and x_shape[-1] == m
                       and (ndim > 2 or N > 1 or tuple(x_shape) != (1, m)))
        if per_dataset and ndim == 2 and N == 2:
            # (2, m) is also the shared x of a model of two variables (gaussian_2d's
            # layout): refuse to guess
            raise ValueError(
                f"x of shape {tuple(x_shape)} with 2 datasets is ambiguous for a Python model: "
                "one row of x per dataset, or one x of two variables shared by both? "
                "Pass x_per_dataset=True or x_per_dataset=False")
        return per_dataset
    if x_per_dataset:
        if not (ndim >= 2 and x_shape[0] == N):
            raise ValueError(f"x_per_dataset=True needs x of shape ({N}, ...) with one "
                             f"entry per dataset, got {tuple(x_shape)}")
        return True
    return False


def _mismatch(name, shape, shared_shape, N, batch, scalar=False):
    """The message for an array `name` of `shape` that fits neither the shared `shared_shape`
    (its last axis the m points of y) nor, in a batch, one row per dataset: it names the axis
    that disagrees with y and says the two lengths, since either array may be the wrong one."""
    m, y = shared_shape[-1], "Y" if batch else "y"
    lead = shared_shape[:-1]
    per_dataset = (N,) + lead
    if len(shape) >= 1 and shape[-1] != m and (shape[:-1] == lead
                                                or batch and shape[:-1] == per_dataset):
        return (f"{name} has {shape[-1]} points but {y} has {m}"
                + (" per dataset" if batch else "") + f" ({name} of shape {shape})")
    if batch and len(shape) == len(per_dataset) + 1 and shape[1:] == shared_shape:
        return f"{name} has {shape[0]} rows but Y has {N} datasets ({name} of shape {shape})"
    want = " or ".join((["a scalar"] if scalar else []) + [str(shared_shape)]
                       + ([str(per_dataset + (m,))] if batch else []))
    return f"{name} has shape {shape}, expected {want} for {m} points"


class _Problem:
    """Validated inputs of fit / fit_batch."""

    def __init__(self, model, x, Y, p0, sigma, bounds, fixed, method, maxiter, tol, jac, batch,
                 absolute_sigma, x_per_dataset=None, cost="chi2", loss="linear", f_scale=1.0):
        if not isinstance(method, str):
            raise TypeError(f"method must be 'lm' or 'gd', got {type(method).__name__}")
        if method not in _METHODS:
            raise ValueError(f"method must be 'lm' or 'gd', got {method!r}")
        self.method = method
        self.batch = batch
        self.estimator = estimator(cost, loss, f_scale, sigma)
        self.absolute_sigma = bool(absolute_sigma)
        self.ftol, self.xtol, self.gtol = _tolerances(tol)
        # ----- model
        self.jac_fn = None
        self.python_jac = None
        if _is_builtin(model):
            self.kind = _KIND_BUILTIN
            self.model = model
            self.nparams = int(model.nparams)
            self.x_dim = int(model.x_dim)
            self.param_names = tuple(model.param_names)
            if jac is not None:
                raise ValueError("jac is not used with a built-in model (its Jacobian is analytic)")
        elif _is_compiled(model):
            self.kind = _KIND_COMPILED
            self.model = resolve(model, signatures=("model",), name="model")
            if jac is not None:
                if not _is_compiled(jac):
                    # resolve() would wrap a Python callable, which the kernel cannot call:
                    # the fit would silently use finite differences
                    raise TypeError("jac of a compiled model must be a compiled callable with "
                                    "the model signature (writing the (npts, nparams) Jacobian), "
                                    f"got {type(jac).__name__}")
                self.jac_fn = resolve(jac, signatures=("model",), name="jac")
            if p0 is None:
                raise ValueError("p0 is required for a compiled model")
            self.nparams = int(np.shape(p0)[-1]) if np.ndim(p0) else 1
            self.x_dim = None
            self.param_names = tuple(f"p{k}" for k in range(self.nparams))
        elif callable(model):
            self.kind = _KIND_PYTHON
            self.model = model
            self.param_names = _python_param_names(model, p0)
            self.nparams = len(self.param_names)
            self.x_dim = None
            if jac is not None:
                if _is_compiled(jac) or not callable(jac):
                    raise TypeError("jac of a Python model must be a Python callable "
                                    "jac(x, *params) -> (m, p)")
                self.python_jac = jac
        else:
            raise TypeError(f"model must be a fastcalc.models model, a compiled model callable "
                            f"or a Python callable, got {type(model).__name__}")
        P = self.nparams
        # ----- data
        Y = real_array(Y, "Y" if batch else "y")
        if batch:
            if Y.ndim != 2:
                raise ValueError(f"Y must be 2-D (N datasets, m points), got shape {Y.shape}")
        else:
            if Y.ndim != 1:
                raise ValueError(f"y must be 1-D, got shape {Y.shape}")
            Y = Y[None, :]
        N, m = Y.shape
        if m == 0:
            raise ValueError("y has no points")
        self.N, self.m = N, m
        # fit_batch: datasets whose own data are invalid get a status (_bad_rows), the others
        # fit as if they were alone; fit and inputs shared by every dataset raise. The
        # statuses and reasons are None while no dataset is invalid.
        self.bad_status = self.input_error = None
        self._bad_rows(np.isinf(Y).any(axis=1), "Y contains inf (use NaN for missing points)",
                       "y contains inf (use NaN for missing points)")
        if self.estimator.name == "poisson":
            with np.errstate(invalid="ignore"):
                self._bad_rows((Y < 0).any(axis=1), "Y contains negative counts (cost='poisson')",
                               "y contains negative counts (cost='poisson')")
        x = real_array(x, "x")
        self.x_shared = True
        if x_per_dataset is not None and x_per_dataset not in (True, False):
            raise TypeError(f"x_per_dataset must be None, True or False, got {x_per_dataset!r}")
        if self.kind == _KIND_PYTHON:
            self.x_shared = not _python_x_per_dataset(x.shape, N, m, batch, x_per_dataset)
            self.x = x
            xrows = x.reshape(N, -1) if not self.x_shared else x.reshape(1, -1)
        else:
            if self.x_dim is None:   # compiled: 1-D x (or (k, m) rows in a single fit)
                self.x_dim = 1 if (x.ndim == 1 or batch) else x.shape[0]
            xd = self.x_dim
            shared_shape = (m,) if xd == 1 else (xd, m)
            if x.shape == shared_shape:
                xs = x.reshape(1, xd * m)
            elif batch and x.shape == (N,) + shared_shape:
                xs = x.reshape(N, xd * m)
                self.x_shared = False
            else:
                raise ValueError(_mismatch("x", x.shape, shared_shape, N, batch))
            if x_per_dataset is not None and bool(x_per_dataset) == self.x_shared:
                raise ValueError(f"x_per_dataset={x_per_dataset} contradicts x of shape {x.shape}: "
                                 f"this model takes a shared x of shape {shared_shape} or one "
                                 f"per dataset of shape {(N,) + shared_shape}")
            self.x = np.ascontiguousarray(xs)
            xrows = self.x
        if self.x_shared:
            if not np.all(np.isfinite(xrows)):
                raise ValueError("x contains NaN or inf")
        else:
            self._bad_rows(~np.isfinite(xrows).all(axis=1), "x contains NaN or inf")
        # ----- sigma
        self.sigma_shift = None
        if sigma is None:
            self.sigma = None
            self.W = None
        else:
            s = real_array(sigma, "sigma")
            if s.shape not in ((), (m,), (N, m)) and not (s.ndim == 2 and s.shape == (1, m)):
                raise ValueError(_mismatch("sigma", s.shape, (m,), N, batch, scalar=True))
            # (1, m) is one row per dataset when there is one dataset (a Dask chunk of one row)
            shared = s.ndim < 2 or (s.shape[0] == 1 and N > 1)
            s = np.broadcast_to(s, (m,)) if s.ndim == 0 else s
            s = s.reshape(-1, m)
            with np.errstate(invalid="ignore"):
                bad = ~(np.isfinite(s) & (s > 0)).all(axis=1)
            if shared and bad[0]:
                raise ValueError("sigma must be finite and > 0")
            self._bad_rows(bad, "sigma must be finite and > 0")
            with np.errstate(invalid="ignore"):
                tiny = (s < _SIGMA_TINY).any(axis=1) & (s < 2.0 ** (1023 - _SIGMA_SHIFT)).all(
                    axis=1)
            self.sigma_shift = np.where(tiny, _SIGMA_SHIFT, 0) if tiny.any() else None
            if self.sigma_shift is not None and self.estimator.name != "chi2":
                # the shift would change z = (r / f_scale)**2 of a robust loss
                raise ValueError(f"sigma below 2**-1000 is not supported with loss="
                                 f"{self.estimator.name!r}")
            if self.sigma_shift is not None:
                s = np.ldexp(s, self.sigma_shift[:, None])
            self.sigma = np.ascontiguousarray(s)
        # ----- fixed
        mask = np.zeros(P, dtype=bool)
        if fixed is not None:
            # the items as given: np.asarray would turn ['A', 2] into the strings 'A', '2'
            if isinstance(fixed, (str, bytes, int, np.integer, np.bool_)):
                items = [fixed]
            elif isinstance(fixed, np.ndarray):
                items = np.atleast_1d(fixed).tolist()
            else:
                try:
                    items = list(fixed)
                except TypeError:
                    raise TypeError(f"fixed must be a boolean mask or a sequence of parameter "
                                    f"indices or names, got {type(fixed).__name__}") from None
            if items and all(isinstance(item, (bool, np.bool_)) for item in items):
                if len(items) != P:
                    raise ValueError(f"fixed as a boolean mask must have {P} entries")
                mask = np.array(items, dtype=bool)
            else:
                for item in items:
                    if isinstance(item, (bool, np.bool_)):
                        raise ValueError(f"fixed: {item!r} mixed with indices or names (give a "
                                         "boolean mask of every parameter, or indices/names)")
                    if isinstance(item, np.integer):
                        item = int(item)
                    if isinstance(item, str):
                        if item not in self.param_names:
                            raise ValueError(f"fixed: unknown parameter {item!r}; parameters "
                                             f"are {self.param_names}")
                        mask[self.param_names.index(item)] = True
                    elif isinstance(item, int) and -P <= item < P:
                        mask[item] = True
                    else:
                        raise ValueError(f"fixed: invalid parameter {item!r}")
        self.fixed = mask
        self.free_index = np.flatnonzero(~mask).astype(np.intc)
        nfree = self.free_index.size
        # ----- bounds
        if bounds is None:
            self.lower = np.full(P, -np.inf)
            self.upper = np.full(P, np.inf)
            self.has_bounds = False
        else:
            try:
                lb, ub = bounds
            except (TypeError, ValueError):
                raise ValueError("bounds must be a pair (lower, upper)") from None
            self.lower = _bound(lb, -np.inf, "lower", P)
            self.upper = _bound(ub, np.inf, "upper", P)
            if np.any(np.isnan(self.lower)) or np.any(np.isnan(self.upper)) or np.any(
                    self.lower >= self.upper):
                raise ValueError("bounds: every lower bound must be < its upper bound")
            self.has_bounds = bool(np.any(np.isfinite(self.lower)) or
                                   np.any(np.isfinite(self.upper)))
        # ----- p0
        self.use_guess = p0 is None
        if p0 is None:
            if self.kind != _KIND_BUILTIN:
                p0 = np.ones(P)       # curve_fit's default for Python models
                self.use_guess = False
            else:
                p0 = np.full(P, np.nan)
        p0 = real_array(p0, "p0")
        if p0.ndim == 0:
            p0 = p0.reshape(1)
        if p0.shape == (P,):
            p0 = np.broadcast_to(p0, (N, P))
        elif not (batch and p0.shape == (N, P)):
            raise ValueError(f"p0 has shape {p0.shape}, expected ({P},)"
                             + (f" or ({N}, {P})" if batch else "") + " for this model")
        if not self.use_guess:
            shared = p0.strides[0] == 0     # (p,) broadcast: wrong for every dataset
            bad = ~np.isfinite(p0).all(axis=1)
            if shared and bad[0]:
                raise ValueError("p0 contains NaN or inf")
            self._bad_rows(bad, "p0 contains NaN or inf")
            if self.has_bounds:
                with np.errstate(invalid="ignore"):
                    bad = np.any((p0 < self.lower) | (p0 > self.upper), axis=1)
                if shared and bad[0]:
                    raise ValueError("p0 is outside the bounds")
                self._bad_rows(bad, "p0 is outside the bounds", status=Status.OUT_OF_BOUNDS)
        self.p0 = np.ascontiguousarray(p0)
        if self.kind == _KIND_BUILTIN and self.model.x_domain is not None:
            self._check_domain(Y)
        if not batch:      # fit_batch: a status per dataset (_mark_too_few_points)
            nvalid = int(np.isfinite(Y).sum())
            if nvalid < nfree:
                raise ValueError(f"too few points: {nvalid} valid points for {nfree} free "
                                 "parameters")
        if maxiter is None:
            maxiter = GD_MAXITER if method == "gd" else 200 * (nfree + 1)
        if isinstance(maxiter, bool) or not isinstance(maxiter, (int, np.integer)):
            raise ValueError(f"maxiter must be a positive int, got {maxiter!r}")
        if not 1 <= maxiter <= _MAX_INT:      # the kernels count iterations in a C int
            raise ValueError(f"maxiter must be an int from 1 to {_MAX_INT}, got {maxiter!r}")
        self.maxiter = int(maxiter)
        self.Y = np.ascontiguousarray(Y)
        if self.bad_status is not None:
            self._neutralise_bad_rows()

    def _check_domain(self, Y):
        """Datasets with a valid point (finite y) outside the built-in model's domain (x <= 0
        for power_law): its values there are not defined, and the fit would end at once as
        'singular' (no guess) or 'non-finite' (p0 given). A ValueError in fit, status 3 in
        fit_batch, naming the domain."""
        outside = self.model.outside_domain(self.x).reshape(self.x.shape[0], self.x_dim, self.m)
        points = outside.any(axis=1) & np.isfinite(Y)
        rows = points.any(axis=1)
        if rows.any():
            reason = self.model.domain_error()
            self._bad_rows(rows, reason, f"{reason}: {int(points.sum())} of the "
                           f"{int(np.isfinite(Y).sum())} valid points")

    def _bad_rows(self, rows, reason, single_reason=None, status=Status.NON_FINITE):
        """Datasets `rows` (bool (N,)) have invalid inputs: a status in fit_batch, a ValueError
        in fit. The first reason found is kept."""
        if not np.any(rows):
            return
        if not self.batch:
            raise ValueError(single_reason or reason)
        if self.bad_status is None:
            self.bad_status = np.zeros(self.N, dtype=np.intc)
            self.input_error = np.full(self.N, "", dtype=object)
        new = rows & (self.bad_status == 0)
        self.bad_status[new] = status
        self.input_error[new] = reason

    def _neutralise_bad_rows(self):
        """Copies of the inputs in which the bad datasets are all missing (so the kernels end
        them at once, never evaluating the model there) with finite x, sigma and p0; their
        outputs are overwritten by _mark_bad_rows. The user's arrays are not touched."""
        bad = self.bad_status != 0
        self.Y = self.Y.copy()
        self.Y[bad] = np.nan
        if self.sigma is not None and self.sigma.shape[0] > 1:
            self.sigma = self.sigma.copy()
            self.sigma[bad] = 1.0
        if not self.x_shared:
            self.x = np.array(self.x, dtype=np.float64)
            self.x[bad] = 0.0
        self.p0 = np.array(self.p0)
        self.p0[bad] = np.nan if self.use_guess else np.where(
            np.isfinite(self.lower), self.lower, np.where(np.isfinite(self.upper), self.upper, 0.0))

    def _unshift_sigma(self, out):
        """chi2 (and the absolute-sigma covariance) of datasets fitted with sigma * 2**shift."""
        if self.sigma_shift is None:
            return
        _, cov, stderr, cost, chi, *_ = out
        shift = np.broadcast_to(self.sigma_shift, (self.N,))
        rows = np.flatnonzero(shift)
        with np.errstate(over="ignore", under="ignore"):
            chi[rows] = np.ldexp(chi[rows], 2 * shift[rows])
            cost[rows] = chi[rows]          # (chi2 only: robust losses refuse tiny sigma)
            if self.absolute_sigma:
                cov[rows] = np.ldexp(cov[rows], -2 * shift[rows][:, None, None])
                stderr[rows] = np.ldexp(stderr[rows], -shift[rows][:, None])

    def _mark_too_few_points(self, out):
        """Datasets with fewer valid points than free parameters (all NaN, say): the kernels
        end them at once with status 2 (J^T J is singular there) and dof = valid - free < 0;
        they become bad rows with fit's reason. Found from dof, not from another pass over Y."""
        if not self.batch:      # fit has raised already
            return
        *_, dof, _, _, status = out
        nfree = self.free_index.size
        nvalid = dof + nfree
        rows = (nvalid < nfree) | (nvalid == 0)
        if not rows.any():
            return
        rows &= status == Status.SINGULAR
        if self.bad_status is not None:
            rows &= self.bad_status == 0
        for count in np.unique(nvalid[rows]):
            self._bad_rows(rows & (nvalid == count), f"too few points: {count} valid points "
                           f"for {nfree} free parameters", status=Status.SINGULAR)

    def _mark_bad_rows(self, out):
        if self.bad_status is None:
            return
        params, cov, stderr, cost, chi, dof, nit, nfev, status = out
        bad = self.bad_status != 0
        if bad.any():
            params[bad] = np.nan
            cov[bad] = np.nan
            stderr[bad] = np.nan
            cost[bad] = np.nan
            chi[bad] = np.nan
            dof[bad] = 0
            nit[bad] = 0
            nfev[bad] = 0
            status[bad] = self.bad_status[bad]

    # ----- running
    def outputs(self):
        """params, cov, stderr, cost, chi2, dof, nit, nfev, status: what the kernels write."""
        N, P = self.N, self.nparams
        return (np.empty((N, P)), np.empty((N, P, P)), np.empty((N, P)), np.empty(N), np.empty(N),
                *(np.empty(N, dtype=np.intc) for _ in range(4)))

    def run(self, n_threads=None, progress=False):
        out = self.outputs()
        N = self.N
        chunk = _python_group_size(N) if self.kind == _KIND_PYTHON else _COMPILED_CHUNK
        starts = list(range(0, N, chunk))
        bar = None
        if progress and len(starts) > 0:
            try:
                from tqdm.auto import tqdm  # type: ignore[import-untyped]
            except ImportError:
                warnings.warn("progress=True shows nothing: tqdm is not installed (pip install "
                              "'fastcalc[progress]')", UserWarning, stacklevel=3)
            else:
                bar = tqdm(total=N, unit="fit")

        def run_group(start):
            stop = min(N, start + chunk)
            if self.kind == _KIND_PYTHON:
                self._run_python(start, stop, out)
            else:
                _fitting.fit_compiled(
                    self.kind, getattr(self.model, "model_id", 0) if self.kind == 0 else 0,
                    self.model if self.kind == _KIND_COMPILED else None, self.jac_fn,
                    self.x, self.x_dim, self.Y, self.sigma, self.p0, self.use_guess,
                    self.lower, self.upper, self.has_bounds, self.free_index,
                    _METHODS[self.method], self.maxiter, self.ftol, self.xtol, self.gtol,
                    self.absolute_sigma, self.estimator.code, self.estimator.f_scale, start, stop,
                    n_threads, *out)

        def group_done(start):
            if bar is not None:
                bar.update(min(N, start + chunk) - start)

        # Python-model groups run on threads (NumPy and the C algebra release the GIL, so their
        # model calls overlap); compiled kernels use their own prange threads per group.
        workers = n_threads_for(n_threads) if self.kind == _KIND_PYTHON else 1
        try:
            run_on_threads(run_group, starts, workers, group_done)
        finally:
            if bar is not None:
                bar.close()
        self._unshift_sigma(out)
        self._mark_too_few_points(out)
        self._mark_bad_rows(out)
        return out

    def _run_python(self, start, stop, out):
        Y = self.Y[start:stop]
        valid = np.isfinite(Y)
        if self.sigma is None:
            W = valid.astype(np.float64)
        else:
            sig = self.sigma if self.sigma.shape[0] == 1 else self.sigma[start:stop]
            W = np.where(valid, 1.0 / sig, 0.0)
        Yz = np.where(valid, Y, 0.0)
        evaluate, jacobian = self._python_callables(start)
        _fitting.fit_python(evaluate, jacobian, np.ascontiguousarray(Yz), np.ascontiguousarray(W),
                            self.p0[start:stop], self.lower, self.upper, self.has_bounds,
                            self.free_index, _METHODS[self.method], self.maxiter, self.ftol,
                            self.xtol, self.gtol, self.absolute_sigma, self.estimator.code,
                            self.estimator.f_scale, self.batch, *(o[start:stop] for o in out))

    def _python_callables(self, start):
        model, m, single = self.model, self.m, not self.batch
        # read-only: a model that modifies x (or the parameter columns) must not change the
        # caller's data or the fit's own state
        x, shared = read_only(self.x), self.x_shared

        def evaluate(params, rows):
            if single and params.shape[0] == 1:
                values = real_values(model(x, *params[0]), "model")
                if values.shape not in ((m,), (1, m), ()):
                    # usually x and y of different lengths: say both
                    raise ValueError(f"model returned shape {values.shape}, expected ({m},): "
                                     f"y has {m} points, x has shape {np.shape(x)}")
                return values.reshape(1, -1) if values.ndim else values
            xs = x if shared else read_only(x[rows + start])
            columns = [read_only(params[:, k:k + 1]) for k in range(params.shape[1])]
            values = real_values(model(xs, *columns), "model")
            try:
                return np.broadcast_to(values, (params.shape[0], m))
            except ValueError:
                raise ValueError(f"model returned shape {values.shape} for parameters given as "
                                 f"({params.shape[0]}, 1) columns; expected it to broadcast to "
                                 f"({params.shape[0]}, {m})") from None

        jacobian = None
        if self.python_jac is not None:
            jac, P = self.python_jac, self.nparams

            def jacobian(params, rows):
                a = params.shape[0]
                if single and a == 1:     # curve_fit convention: (m, p)
                    value = real_values(jac(x, *params[0]), "jac")
                    if value.shape != (m, P):
                        raise ValueError(f"jac returned shape {value.shape}, expected ({m}, {P})")
                    return value.T[None]
                # batch convention: p arrays (or (p, a, m)), each broadcasting to (a, m)
                xs = x if shared else read_only(x[rows + start])
                columns = [read_only(params[:, k:k + 1]) for k in range(P)]
                parts = jac(xs, *columns)
                if not hasattr(parts, "__len__") or (isinstance(parts, np.ndarray)
                                                     and parts.ndim == 0):
                    raise TypeError(f"jac returned {type(parts).__name__}, expected a sequence "
                                    f"of {P} derivatives (one per parameter, each broadcasting "
                                    f"to ({a}, {m}))")
                if len(parts) != P:
                    raise ValueError(f"jac returned {len(parts)} derivatives, expected {P} "
                                     "(one per parameter, each broadcasting to (N, m))")
                out = np.empty((a, P, m))
                for k in range(P):
                    try:
                        out[:, k, :] = np.broadcast_to(real_values(parts[k], "jac"), (a, m))
                    except ValueError:
                        raise ValueError(f"jac: derivative {k} has shape "
                                         f"{np.shape(parts[k])}, expected to broadcast to "
                                         f"({a}, {m})") from None
                return out
        return evaluate, jacobian

    def fitted_model(self):
        """The :class:`FittedModel` that results use for bands and toy datasets."""
        def sigma(rows):
            if self.sigma is None:
                return None
            shift = 0 if self.sigma_shift is None else self.sigma_shift[:, None]
            s = np.ldexp(self.sigma, -np.asarray(shift))
            return np.broadcast_to(s, (self.N, self.m))[rows]

        def values(params, rows):
            return self.Y[rows] - self.residuals_of(params, rows)

        return FittedModel(self.model_at, values, sigma, self.estimator.name,
                           self.absolute_sigma, self.refit, self.lower, self.upper,
                           self.free_index, self.param_names)

    def refit(self, rows, p0, k):
        """``(params, cost, status, nfev)`` of datasets ``rows`` (repeats allowed) fitted again
        from ``p0`` with parameter ``k`` held at its ``p0`` value (profile likelihood)."""
        if self.kind == _KIND_PYTHON and not self.batch and len(rows) > 1:
            # fit's Python model takes one parameter vector at a time (no broadcasting)
            parts = [self.refit(rows[i:i + 1], p0[i:i + 1], k) for i in range(len(rows))]
            return tuple(np.concatenate(part) for part in zip(*parts))
        sub = copy.copy(self)
        sub.N = len(rows)
        sub.Y = self.Y[rows]
        if not self.x_shared:
            sub.x = self.x[rows]
        if self.sigma is not None and self.sigma.shape[0] > 1:
            sub.sigma = self.sigma[rows]
        if self.sigma_shift is not None:
            sub.sigma_shift = np.broadcast_to(self.sigma_shift, (self.N,))[rows]
        sub.p0 = np.ascontiguousarray(p0, dtype=np.float64)
        sub.use_guess = False
        sub.fixed = self.fixed.copy()
        sub.fixed[k] = True
        sub.free_index = np.flatnonzero(~sub.fixed).astype(np.intc)
        sub.bad_status = sub.input_error = None
        params, _, _, cost, _, _, _, nfev, status = sub.run()
        return params, cost, status, nfev

    def model_at(self, x_new):
        """``(function, vectorized)``: the model at ``x_new`` as a function of the parameters,
        for :func:`fastcalc.propagate` (vectorized: ``(k, n)`` columns -> ``(m_new, n)``)."""
        if self.kind == _KIND_PYTHON:
            return python_model_at(self.model, x_new, self.nparams, self.batch)
        x_new = real_array(x_new, "x_new")
        xd = self.x_dim
        if (xd == 1 and x_new.ndim > 1) or (xd > 1 and (x_new.ndim != 2 or x_new.shape[0] != xd)):
            raise ValueError(f"x_new has shape {x_new.shape}, expected "
                             + ("(m_new,)" if xd == 1 else f"({xd}, m_new)"))
        if not np.isfinite(x_new).all():
            raise ValueError("x_new contains NaN or inf")
        row = np.ascontiguousarray(x_new, dtype=np.float64).reshape(1, -1)
        m_new = x_new.shape[-1] if x_new.ndim else 1
        model_id = getattr(self.model, "model_id", 0) if self.kind == _KIND_BUILTIN else 0
        compiled = self.model if self.kind == _KIND_COMPILED else None

        def at(P):
            return _fitting.evaluate_model(self.kind, model_id, compiled, row, xd,
                                           np.ascontiguousarray(P.T), m_new).T

        return at, True

    def residuals_of(self, params, rows=None):
        """y - model(x, params) for datasets `rows` (all when None); NaN at missing points."""
        if rows is None:
            rows = np.arange(self.N)
        Y = self.Y[rows]
        if self.kind == _KIND_PYTHON:
            # the model is called exactly as during the fit (same conventions, same checks)
            evaluate = self._python_callables(0)[0]
            values = evaluate(np.ascontiguousarray(params, dtype=float), np.asarray(rows))
        else:
            x = self.x if self.x_shared else self.x[rows]
            values = _fitting.evaluate_model(
                self.kind, getattr(self.model, "model_id", 0) if self.kind == 0 else 0,
                self.model if self.kind == _KIND_COMPILED else None,
                np.ascontiguousarray(x), self.x_dim, np.ascontiguousarray(params, dtype=float),
                self.m)
        return Y - values


def fit(model, x, y, p0=None, *, sigma=None, absolute_sigma=False, method="lm", bounds=None,
        fixed=None, maxiter=None, tol=None, jac=None, cost="chi2", loss="linear", f_scale=1.0):
    """Fit ``model`` to one dataset by minimising chi-squared (or a Poisson or robust cost).

    Parameters
    ----------
    model : Model, compiled callable or callable
        A built-in model from :mod:`fastcalc.models`; a compiled model callable
        (``int f(int npts, double *x, int nparams, double *params, double *out, void *user_data)``);
        or a Python callable ``model(x, *params)`` returning ``(m,)`` values (curve_fit
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
        ``fixed``, ``maxiter`` or ``tol``; ``model`` or ``jac`` returning the wrong shape.
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
    >>> from fastcalc import fit
    >>> x = np.linspace(0, 4, 20)
    >>> y = 3.0 * np.exp(-x / 1.5) + 0.5
    >>> r = fit(lambda x, a, tau, c: a * np.exp(-x / tau) + c, x, y, p0=[1.0, 1.0, 0.0])
    >>> r.params.round(6).tolist(), r.success
    ([3.0, 1.5, 0.5], True)
    """
    problem = _Problem(model, x, y, p0, sigma, bounds, fixed, method, maxiter, tol, jac,
                       batch=False, absolute_sigma=absolute_sigma, cost=cost, loss=loss,
                       f_scale=f_scale)
    params, cov, stderr, cost_value, chi, dof, nit, nfev, status = problem.run(n_threads=1)
    residuals = problem.residuals_of(params)[0]
    result = FitResult(params[0], cov[0], chi[0], dof[0], nit[0], nfev[0], status[0], residuals,
                       problem.param_names, method, stderr=stderr[0], cost=cost_value[0],
                       estimator=problem.estimator.name, nfree=problem.free_index.size,
                       fitted=problem.fitted_model())
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
              jac=None, x_per_dataset=None, cost="chi2", loss="linear", f_scale=1.0):
    """Fit ``model`` to N datasets at once.

    Built-in and compiled models run in a ``nogil`` ``prange`` loop over datasets (results
    identical for any ``n_threads``). A Python model is called once per round for all active
    datasets with parameters as ``(N_active, 1)`` columns — ``model(x, *columns)`` must broadcast
    to ``(N_active, m)`` — plus once with ``n_free * N_active`` rows for the finite-difference
    Jacobians; groups of at most 1280 datasets run on ``n_threads`` threads (identical results
    for any count; the model must then be thread-safe, as pure NumPy functions are).

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
    problem = _Problem(model, x, Y, p0, sigma, bounds, fixed, method, maxiter, tol, jac,
                       batch=True, absolute_sigma=absolute_sigma, x_per_dataset=x_per_dataset,
                       cost=cost, loss=loss, f_scale=f_scale)
    params, cov, stderr, cost_value, chi, dof, nit, nfev, status = problem.run(
        n_threads=n_threads, progress=progress)
    return BatchFitResult(params, cov, chi, dof, nit, nfev, status, problem.param_names,
                          problem.residuals_of, method, problem.input_error, stderr=stderr,
                          cost=cost_value, estimator=problem.estimator.name,
                          nfree=problem.free_index.size, fitted=problem.fitted_model())
