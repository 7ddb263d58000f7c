"""Orthogonal distance regression (``sigma_x=`` in fit and fit_batch): the checks that only
concern it, and running a validated :class:`~._problem.Problem` on the ODR kernels
(``_odr_kernel``: the algorithm and its notes)."""
import numpy as np

from .._arrays import read_only
from .._evaluate import real_values
from .._parallel import n_threads_for
from .._threads import run_on_threads
from . import _odr_kernel
from ._dispatch import python_group_size
from ._layout import sigma_rows
from ._model_spec import KIND_PYTHON

__all__ = ["check_odr", "run_odr"]


def check_odr(pb, sigma_x, method, cost, loss):
    """sigma_x as (1 or N, m) rows (per-dataset rows invalid: bad rows of ``pb``), after
    refusing what ODR does not support, naming the argument."""
    for name, value, supported in (("method", method, "lm"), ("cost", cost, "chi2"),
                                   ("loss", loss, "linear")):
        if value != supported:
            raise ValueError(f"sigma_x (orthogonal distance regression) supports "
                             f"{name}={supported!r} only, got {name}={value!r}")
    spec = pb.spec
    if spec.kind == KIND_PYTHON:
        if spec.python_jac is not None:
            raise ValueError("jac is not supported for a Python model with sigma_x (the "
                             "Jacobian is needed at x + delta: forward differences are used)")
        want = (pb.m,) if pb.x_shared else (pb.N, pb.m)
        if np.shape(pb.x) != want:
            raise ValueError(f"sigma_x needs x of one variable, of shape ({pb.m},) or "
                             f"({pb.N}, {pb.m}); got {np.shape(pb.x)}")
    elif spec.x_dim != 1:
        raise ValueError(f"sigma_x needs a model of one variable; this model takes x of "
                         f"{spec.x_dim} rows")
    return sigma_rows(sigma_x, pb.N, pb.m, pb.batch, pb.bad, name="sigma_x")


def run_odr(pb, n_threads=None):
    """``(out, delta, residuals)``: the kernels' outputs as :func:`._dispatch.run_kernels`
    gives them (cost and chi2 both the ODR objective), the fitted x corrections and
    ``y - f(x + delta)`` ``(N, m)`` (NaN at missing points)."""
    N, m, P = pb.N, pb.m, pb.spec.nparams
    params, cov, stderr = np.empty((N, P)), np.empty((N, P, P)), np.empty((N, P))
    chi2 = np.empty(N)
    dof, nit, nfev, status = (np.empty(N, dtype=np.intc) for _ in range(4))
    delta, residuals = np.empty((N, m)), np.empty((N, m))
    outputs = (params, cov, stderr, chi2, dof, nit, nfev, status, delta, residuals)
    settings = (pb.lower, pb.upper, pb.has_bounds, pb.free_index, pb.maxiter, pb.ftol,
                pb.xtol, pb.gtol, pb.absolute_sigma)
    spec = pb.spec
    if spec.kind != KIND_PYTHON:
        _odr_kernel.odr_compiled(spec.kind, spec.model_id, spec.compiled, spec.jac_fn, pb.x,
                                 pb.Y, pb.sigma, pb.sigma_x, pb.p0, pb.use_guess, *settings,
                                 0, N, n_threads, *outputs)
    else:
        chunk = python_group_size(N)

        def run_group(start):
            rows = slice(start, min(N, start + chunk))
            X, Y, W, V = _python_rows(pb, rows)
            _odr_kernel.odr_python(_python_evaluate(pb), X, Y, W, V, pb.p0[rows],
                                   *settings, *(o[rows] for o in outputs))

        run_on_threads(run_group, list(range(0, N, chunk)), n_threads_for(n_threads))
    return (params, cov, stderr, chi2, chi2, dof, nit, nfev, status), delta, residuals


def _python_rows(pb, rows):
    """x, y (0 at missing points), weights 1/sigma (0 at missing points) and 1/sigma_x of
    datasets ``rows``, as contiguous (a, m) arrays."""
    Y = pb.Y[rows]
    shape = Y.shape
    valid = np.isfinite(Y)
    x = np.broadcast_to(np.reshape(pb.x, (-1, pb.m))[rows if not pb.x_shared else slice(None)],
                        shape)
    sigma = 1.0 if pb.sigma is None else _rows_of(pb.sigma, rows, shape)
    W = np.where(valid, 1.0 / sigma, 0.0)
    V = 1.0 / _rows_of(pb.sigma_x, rows, shape)
    return tuple(np.ascontiguousarray(a, dtype=np.float64)
                 for a in (x, np.where(valid, Y, 0.0), W, V))


def _rows_of(array, rows, shape):
    return np.broadcast_to(array if array.shape[0] == 1 else array[rows], shape)


def _python_evaluate(pb):
    """``evaluate(T, params, rows)`` -> (a, m): the Python model at points T (a, m), parameters
    (a, P), as :func:`fit` (one call per row, curve_fit's convention) or :func:`fit_batch`
    (one call, parameters as (a, 1) columns) call it."""
    model, m = pb.spec.model, pb.m

    def evaluate(T, params, rows):
        if not pb.batch:
            out = np.empty((T.shape[0], m))
            for r in range(T.shape[0]):
                values = real_values(model(read_only(T[r]), *params[r]), "model")
                if values.shape not in ((m,), ()):
                    raise ValueError(f"model returned shape {values.shape}, expected ({m},)")
                out[r] = values
            return out
        columns = [read_only(params[:, k:k + 1]) for k in range(params.shape[1])]
        values = real_values(model(read_only(T), *columns), "model")
        try:
            return np.broadcast_to(values, T.shape)
        except ValueError:
            raise ValueError(f"model returned shape {values.shape} for x of shape {T.shape} "
                             f"and parameters as ({T.shape[0]}, 1) columns (sigma_x: the "
                             "model is called with one row of x per dataset)") from None

    return evaluate
