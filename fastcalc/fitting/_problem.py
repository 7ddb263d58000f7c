"""Problem: the validated, laid-out inputs of one fit / fit_batch call, and what the results
need from them afterwards (residuals, refits for profile intervals, the fitted model)."""
import copy

import numpy as np

from . import _dispatch, _odr
from ._estimators import estimator
from ._inference import FittedModel
from ._layout import (check_data, check_domain, compiled_guesses, data_rows, initial_values,
                      sigma_rows, x_rows)
from ._model_spec import KIND_BUILTIN, KIND_PYTHON, model_spec
from ._validate import BadRows, bounds_of, fixed_mask, maxiter_of, method_code, tolerances

__all__ = ["Problem"]


class Problem:
    """Validated inputs of fit / fit_batch: the model (``spec``), the data laid out as rows
    (``Y``, ``x``, ``sigma``, ``p0``), constraints and settings, and the datasets whose own
    inputs are invalid (``bad``)."""

    def __init__(self, model, x, Y, p0, sigma, bounds, fixed, method, maxiter, tol, jac, batch,
                 absolute_sigma, x_per_dataset=None, cost="chi2", loss="linear", f_scale=1.0,
                 sigma_x=None):
        self.method_code = method_code(method)
        self.batch = batch
        self.estimator = estimator(cost, loss, f_scale, sigma)
        self.absolute_sigma = bool(absolute_sigma)
        self.ftol, self.xtol, self.gtol = tolerances(tol)
        self.spec = spec = model_spec(model, p0, jac)
        Y = data_rows(Y, batch)
        self.N, self.m = N, m = Y.shape
        self.bad = bad = BadRows(N, batch)
        check_data(Y, self.estimator.name, bad)
        self.x, spec.x_dim, self.x_shared = x_rows(spec, x, N, m, batch, x_per_dataset, bad)
        self.sigma = sigma_rows(sigma, N, m, batch, bad)
        # orthogonal distance regression when given (fastcalc.fitting._odr)
        self.sigma_x = (None if sigma_x is None
                        else _odr.check_odr(self, sigma_x, method, cost, loss))
        self.delta = self.odr_residuals = None
        self.fixed = fixed_mask(fixed, spec.param_names)
        self.free_index = np.flatnonzero(~self.fixed).astype(np.intc)
        nfree = self.free_index.size
        self.lower, self.upper, self.has_bounds = bounds_of(bounds, spec.nparams)
        if p0 is None and spec.guess is not None:
            p0 = compiled_guesses(spec, self.x, self.x_shared, Y, self.lower, self.upper, bad)
        self.p0, self.use_guess = initial_values(p0, spec, N, batch, self.lower, self.upper,
                                                 self.has_bounds, bad)
        if spec.kind == KIND_BUILTIN and spec.model.x_domain is not None:
            check_domain(spec.model, self.x, spec.x_dim, Y, bad)
        if not batch:      # fit_batch: a status per dataset (BadRows.add_too_few_points)
            nvalid = int(np.isfinite(Y).sum())
            if nvalid < nfree:
                raise ValueError(f"too few points: {nvalid} valid points for {nfree} free "
                                 "parameters")
        self.maxiter = maxiter_of(maxiter, method, nfree)
        self.Y = np.ascontiguousarray(Y)
        if bad.status is not None:
            self._neutralise_bad_rows()

    @property
    def param_names(self):
        return self.spec.param_names

    @property
    def input_error(self):
        """Per-dataset reasons of the invalid datasets ("" for the others), or None."""
        return self.bad.reason

    def _neutralise_bad_rows(self):
        """Copies of the inputs in which the bad datasets are all missing (so the kernels end
        them at once, never evaluating the model there) with finite x, sigma and p0; their
        outputs are overwritten by BadRows.overwrite. The user's arrays are not touched."""
        bad = self.bad.status != 0
        self.Y = self.Y.copy()
        self.Y[bad] = np.nan
        if self.sigma is not None and self.sigma.shape[0] > 1:
            self.sigma = self.sigma.copy()
            self.sigma[bad] = 1.0
        if self.sigma_x is not None and self.sigma_x.shape[0] > 1:
            self.sigma_x = self.sigma_x.copy()
            self.sigma_x[bad] = 1.0
        if not self.x_shared:
            self.x = np.array(self.x, dtype=np.float64)
            self.x[bad] = 0.0
        self.p0 = np.array(self.p0)
        self.p0[bad] = np.nan if self.use_guess else np.where(
            np.isfinite(self.lower), self.lower, np.where(np.isfinite(self.upper), self.upper, 0.0))

    def run(self, n_threads=None, progress=False):
        """params, cov, stderr, cost, chi2, dof, nit, nfev, status of every dataset (and,
        with sigma_x, ``delta`` and ``odr_residuals`` (N, m) kept for the results)."""
        if self.sigma_x is not None:
            out, self.delta, self.odr_residuals = _odr.run_odr(self, n_threads)
        else:
            out = _dispatch.run_kernels(self, n_threads, progress)
        self.bad.add_too_few_points(out, self.free_index.size)
        self.bad.overwrite(out)
        if self.delta is not None and self.bad.status is not None:
            self.delta[self.bad.status != 0] = np.nan
            self.odr_residuals[self.bad.status != 0] = np.nan
        return out

    def fitted_model(self):
        """The :class:`FittedModel` that results use for bands and toy datasets."""
        def sigma(rows):
            if self.sigma is None:
                return None
            return np.broadcast_to(self.sigma, (self.N, self.m))[rows]

        def values(params, rows):
            if self.sigma_x is not None:
                raise NotImplementedError("simulate is not available with sigma_x (toy "
                                          "datasets would need noise in x as well)")
            return self.Y[rows] - self.residuals_of(params, rows)

        return FittedModel(self.model_at, values, sigma, self.estimator.name,
                           self.absolute_sigma, self.refit, self.lower, self.upper,
                           self.free_index, self.param_names)

    def refit(self, rows, p0, k):
        """``(params, cost, status, nfev)`` of datasets ``rows`` (repeats allowed) fitted again
        from ``p0`` with parameter ``k`` held at its ``p0`` value (profile likelihood)."""
        if self.spec.kind == KIND_PYTHON and not self.batch and len(rows) > 1:
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
        if self.sigma_x is not None and self.sigma_x.shape[0] > 1:
            sub.sigma_x = self.sigma_x[rows]
        sub.p0 = np.ascontiguousarray(p0, dtype=np.float64)
        sub.use_guess = False
        sub.fixed = self.fixed.copy()
        sub.fixed[k] = True
        sub.free_index = np.flatnonzero(~sub.fixed).astype(np.intc)
        sub.bad = BadRows(sub.N, self.batch)
        params, _, _, cost, _, _, _, nfev, status = sub.run()
        return params, cost, status, nfev

    def model_at(self, x_new):
        """``(function, vectorized)``: the model at ``x_new`` as a function of the parameters
        (see :func:`._dispatch.model_at`)."""
        return _dispatch.model_at(self, x_new)

    def residuals_of(self, params, rows=None):
        """y - model(x, params) for datasets `rows` (all when None); NaN at missing points.
        With sigma_x: y - model(x + delta) at the fitted params and delta (``params`` is then
        the fit's own)."""
        if rows is None:
            rows = np.arange(self.N)
        if self.odr_residuals is not None:
            return self.odr_residuals[rows]
        return self.Y[rows] - _dispatch.model_values(self, params, rows)
