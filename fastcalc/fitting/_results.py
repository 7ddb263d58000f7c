"""FitResult and BatchFitResult: what fit and fit_batch return."""
from functools import cached_property

import numpy as np

from .._status import Status, message_of, messages_of
from ._estimators import goodness_of_fit
from ._inference import band, conf_interval, simulate

__all__ = ["BatchFitResult", "FitResult"]


class _GoodnessOfFit:
    """``aic``, ``bic`` and ``pvalue`` from ``cost``, ``dof``, ``nfree`` and ``estimator``,
    computed when first asked for (most fits never are: computing them eagerly was a fifth of
    a single fit's time)."""

    @cached_property
    def _goodness(self):
        return goodness_of_fit(self.cost, self.dof, self.nfree, self.estimator)

    @property
    def aic(self):
        return self._goodness[0]

    @property
    def bic(self):
        return self._goodness[1]

    @property
    def pvalue(self):
        return self._goodness[2]


class FitResult(_GoodnessOfFit):
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
    delta : ndarray (m,) or None
        With ``sigma_x`` (orthogonal distance regression): the fitted x corrections (the
        model is at ``x + delta``; NaN at missing points); None otherwise.
    """

    def __init__(self, params, cov, chi2, dof, nit, nfev, status, residuals, param_names,
                 method="lm", input_error="", stderr=None, cost=None, estimator="chi2",
                 nfree=None, fitted=None, row=0, delta=None):
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
        self.nfree = self.params.size if nfree is None else nfree
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
        self.delta = delta

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


class BatchFitResult(_GoodnessOfFit):
    """Results of N fits: the fields of :class:`FitResult` as arrays over datasets.

    ``len(result)`` is N; ``result[i]`` is the :class:`FitResult` of dataset ``i``;
    ``to_dataframe()`` gives a pandas DataFrame (one row per dataset). ``residuals`` (N, m) is
    computed on first access. ``input_error`` (N,) says, for a dataset not fitted because its
    own inputs are invalid (status 3; 4 for ``p0`` outside the bounds; 2 for fewer valid points
    than free parameters, e.g. all NaN), what is wrong ("" for the others); ``message``
    includes it. Such a dataset has NaN results and ``dof`` 0. ``delta`` (N, m): the x
    corrections of a fit with ``sigma_x`` (None otherwise).
    """

    def __init__(self, params, cov, chi2, dof, nit, nfev, status, param_names, residuals_of,
                 method="lm", input_error=None, stderr=None, cost=None, estimator="chi2",
                 nfree=None, fitted=None, delta=None):
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
        self.nit = nit
        self.nfev = nfev
        self.status = status
        self.success = status == 0
        self.param_names = tuple(param_names)
        self.method = method
        self._residuals_of = residuals_of
        self._residuals = None
        self.delta = delta              # (N, m) with sigma_x, else None
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
                         nfree=self.nfree, fitted=self._fitted, row=i,
                         delta=None if self.delta is None else self.delta[i])

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
