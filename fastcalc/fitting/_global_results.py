"""GlobalFitResult: what fit_global returns."""
import numpy as np

from .._status import Status, message_of

__all__ = ["GlobalFitResult"]


class GlobalFitResult:
    """Result of a global fit (:func:`fastcalc.fit_global`).

    Attributes
    ----------
    shared, shared_stderr : ndarray (s,)
        The shared parameters (in the model's order) and their standard errors.
    shared_cov : ndarray (s, s)
        Their covariance: the shared block of the inverse of the full normal matrix ``J^T J``
        (times ``redchi2`` unless ``absolute_sigma``); zero rows for fixed parameters.
    local, local_stderr : ndarray (N, k - s)
        Each dataset's local parameters and standard errors (NaN for excluded datasets).
    params : ndarray (N, k)
        Every dataset's full parameter vector (shared and local).
    shared_names, local_names, param_names : tuple of str
    chi2, redchi2 : float
        Chi-squared of all included datasets at the solution, and ``chi2 / dof``.
    dataset_chi2 : ndarray (N,)
        Each dataset's share of ``chi2`` (NaN for excluded datasets).
    dof : int
        Valid points of the included datasets minus the free parameters (shared once, local
        once per included dataset).
    status, success, message :
        The fit's :class:`fastcalc.Status`; ``message`` also names the excluded datasets.
    dataset_status : ndarray (N,)
        The global status for included datasets (2 where a dataset's local block is singular
        at the solution); an excluded dataset's own status, with its reason in
        ``input_error``.
    included : ndarray (N,) of bool
        The datasets that took part in the fit.
    nit, nfev : int
        Iterations (trial steps) and model evaluations per dataset (a finite-difference
        Jacobian counts one per free parameter).
    """

    def __init__(self, params, is_shared, fixed, shared_free, local_free, Sinv, Minv, K,
                 factor, chi2, dof, status, dataset_status, nit, nfev, param_names,
                 input_error, included, dataset_chi2):
        self.params = params
        self.param_names = tuple(param_names)
        self._is_shared, self._fixed = is_shared, fixed
        self._shared_free, self._local_free = shared_free, local_free
        self._Sinv, self._Minv, self._K, self._factor = Sinv, Minv, K, factor
        self.shared_names = tuple(n for n, s in zip(param_names, is_shared) if s)
        self.local_names = tuple(n for n, s in zip(param_names, is_shared) if not s)
        self.included = included
        rows = np.flatnonzero(included)
        self.shared = (params[rows[0], is_shared].copy() if rows.size
                       else np.full(int(is_shared.sum()), np.nan))
        self.local = params[:, ~is_shared]
        self.chi2 = float(chi2)
        self.dof = int(dof)
        self.redchi2 = self.chi2 / self.dof if self.dof > 0 else float("nan")
        self.dataset_chi2 = dataset_chi2
        self.status = Status(int(status))
        self.success = self.status == Status.SUCCESS
        self.dataset_status = dataset_status
        self.input_error = input_error
        self.nit, self.nfev = int(nit), int(nfev)
        excluded = np.flatnonzero(~included)
        self.message = message_of(self.status) + (
            f"; {excluded.size} datasets excluded: {excluded[:10].tolist()}"
            + (" ..." if excluded.size > 10 else "") if excluded.size else "")
        self.shared_cov = self._shared_cov()
        with np.errstate(invalid="ignore"):
            self.shared_stderr = np.sqrt(np.diagonal(self.shared_cov)).copy()
        self.local_stderr = self._local_stderr()

    def _positions(self, free, within):
        """Positions of the parameters ``free`` among the indices ``within``."""
        return np.searchsorted(within, free)

    def _shared_cov(self):
        shared_index = np.flatnonzero(self._is_shared)
        cov = np.zeros((shared_index.size, shared_index.size))
        at = self._positions(self._shared_free, shared_index)
        cov[np.ix_(at, at)] = self._Sinv * self._factor
        return cov

    def _local_stderr(self):
        local_index = np.flatnonzero(~self._is_shared)
        N = self.params.shape[0]
        out = np.zeros((N, local_index.size))
        at = self._positions(self._local_free, local_index)
        with np.errstate(invalid="ignore"):
            variance = (np.diagonal(self._Minv, axis1=1, axis2=2)
                        + np.einsum("nas,st,nat->na", self._K, self._Sinv, self._K))
            out[:, at] = np.sqrt(variance * self._factor)
        # a singular normal matrix (inf in its inverse) gives inf, not inf * 0 = NaN
        out[np.isnan(out) & self.included[:, None]] = np.inf
        out[~self.included] = np.nan
        return out

    def cov_block(self, i):
        """The covariance (k, k) of dataset ``i``'s full parameter vector (shared and local,
        in the model's order): the rows and columns of the full inverse normal matrix that
        belong to it (zero for fixed parameters; NaN for an excluded dataset).

        Examples
        --------
        >>> import numpy as np
        >>> from fastcalc import fit_global, models
        >>> x = np.linspace(-3, 3, 40)
        >>> Y = np.array([models.gaussian(x, a, 0.5, 0.8, 0.1) for a in (1.0, 2.0)])
        >>> Y = Y + 0.01 * np.cos(7 * x)
        >>> r = fit_global(models.gaussian, x, Y, shared=["mu", "sigma"], sigma=0.01)
        >>> C = r.cov_block(1)
        >>> C.shape, bool(np.allclose(np.sqrt(np.diag(C))[[1, 2]], r.shared_stderr))
        ((4, 4), True)
        """
        P = len(self.param_names)
        cov = np.zeros((P, P))
        if not self.included[i]:
            return np.full((P, P), np.nan)
        s, l = self._shared_free, self._local_free
        Sinv, Ki = self._Sinv, self._K[i]
        with np.errstate(invalid="ignore"):
            cov[np.ix_(s, s)] = Sinv
            cov[np.ix_(l, l)] = self._Minv[i] + Ki @ Sinv @ Ki.T
            cov[np.ix_(l, s)] = -Ki @ Sinv
            cov[np.ix_(s, l)] = cov[np.ix_(l, s)].T
            cov = cov * self._factor
        cov[np.isnan(cov)] = np.inf       # singular: inf, not inf * 0 = NaN
        return cov

    def to_dataframe(self):
        """One row per dataset: local parameters, ``stderr_<name>``, ``chi2`` (its share),
        ``dataset_status``, ``included``; the shared values are in ``DataFrame.attrs["shared"]``
        (requires pandas).

        Examples
        --------
        >>> import numpy as np
        >>> from fastcalc import fit_global, models
        >>> x = np.linspace(-3, 3, 40)
        >>> Y = np.array([models.gaussian(x, a, 0.5, 0.8, 0.1) for a in (1.0, 2.0)])
        >>> frame = fit_global(models.gaussian, x, Y, shared=["mu", "sigma"]).to_dataframe()
        >>> frame["A"].round(6).tolist(), sorted(frame.attrs["shared"])
        ([1.0, 2.0], ['mu', 'sigma'])
        """
        import pandas as pd  # type: ignore[import-untyped]
        columns = {}
        for k, name in enumerate(self.local_names):
            columns[name] = self.local[:, k]
        for k, name in enumerate(self.local_names):
            columns[f"stderr_{name}"] = self.local_stderr[:, k]
        columns["chi2"] = self.dataset_chi2
        columns["dataset_status"] = self.dataset_status
        columns["included"] = self.included
        frame = pd.DataFrame(columns)
        frame.attrs["shared"] = dict(zip(self.shared_names, self.shared.tolist()))
        frame.attrs["shared_stderr"] = dict(zip(self.shared_names, self.shared_stderr.tolist()))
        return frame

    def report(self):
        """A readable table of the shared parameters and the fit statistics.

        Examples
        --------
        >>> import numpy as np
        >>> from fastcalc import fit_global, models
        >>> x = np.linspace(-3, 3, 40)
        >>> Y = np.array([models.gaussian(x, a, 0.5, 0.8, 0.1) for a in (1.0, 2.0)])
        >>> print(fit_global(models.gaussian, x, Y, shared=["mu"]).report().splitlines()[2])
        2 datasets (2 included), local parameters ('A', 'sigma', 'c')
        """
        width = max([9] + [len(n) for n in self.shared_names])
        lines = [f"{'shared':<{width}} {'value':>14} {'stderr':>14}"]
        for name, value, err in zip(self.shared_names, self.shared, self.shared_stderr):
            lines.append(f"{name:<{width}} {value:>14.8g} {err:>14.6g}")
        lines.append(f"{self.params.shape[0]} datasets ({int(self.included.sum())} included), "
                     f"local parameters {self.local_names}")
        lines.append(f"chi2 = {self.chi2:.8g}, dof = {self.dof}, redchi2 = {self.redchi2:.6g}")
        lines.append(f"nit = {self.nit}, nfev = {self.nfev}, status = {int(self.status)} "
                     f"({self.message})")
        return "\n".join(lines)

    def __repr__(self):
        return f"GlobalFitResult(shared={dict(zip(self.shared_names, self.shared.tolist()))}, " \
               f"N={self.params.shape[0]}, chi2={self.chi2:.6g}, status={int(self.status)})"
