"""Running a validated :class:`~._problem.Problem` on the kernels: groups of datasets, threads,
the compiled and Python drivers, and the Python model wrapped as the Python driver calls it."""
import warnings

import numpy as np

from .._arrays import read_only, real_array
from .._evaluate import real_values
from .._parallel import n_threads_for
from .._threads import run_on_threads
from . import _kernel
from ._inference import python_model_at
from ._model_spec import KIND_PYTHON

__all__ = ["model_at", "model_values", "python_group_size", "run_kernels"]

# Datasets per lock-step group of a Python model, at most: large enough that NumPy's work dwarfs
# the per-call overhead and GIL hand-offs between threads (1024-2048 measured best for 64-point
# models). The number of groups is rounded up to a multiple of PYTHON_GROUPS_MULTIPLE so that
# 1, 2 or 4 threads get equal shares; it depends on the problem's shape only, so results
# never depend on the thread count.
PYTHON_CHUNK = 1280
PYTHON_GROUPS_MULTIPLE = 4
# Values per model call, at most (fewer datasets per group for larger calls): one call holds a
# group's trial points and their finite-difference points, (n_free + 1) * m values per dataset,
# and NumPy's temporaries of that size stay in cache up to about this (gaussian, 64 points:
# 31 us per fit in groups of 320 against 45 us in groups of 1280, CPU time).
PYTHON_CALL_VALUES = 2 ** 17
PYTHON_MIN_CHUNK = 64
COMPILED_CHUNK = 65536


def python_group_size(n_datasets, values_per_dataset=1):
    """Datasets per lock-step group of a Python model (see PYTHON_CHUNK), whose model calls
    take ``values_per_dataset`` values per dataset (see PYTHON_CALL_VALUES)."""
    chunk = min(PYTHON_CHUNK, max(PYTHON_MIN_CHUNK, PYTHON_CALL_VALUES // values_per_dataset))
    groups = max(1, -(-n_datasets // chunk))
    if groups > 1:
        groups = -(-groups // PYTHON_GROUPS_MULTIPLE) * PYTHON_GROUPS_MULTIPLE
    return max(1, -(-n_datasets // groups))


def outputs(N, P):
    """params, cov, stderr, cost, chi2, dof, nit, nfev, status: what the kernels write."""
    return (np.empty((N, P)), np.empty((N, P, P)), np.empty((N, P)), np.empty(N), np.empty(N),
            *(np.empty(N, dtype=np.intc) for _ in range(4)))


def run_kernels(pb, n_threads=None, progress=False):
    """The kernels' outputs (see :func:`outputs`) for every dataset of ``pb``."""
    spec, N = pb.spec, pb.N
    out = outputs(N, spec.nparams)
    python = spec.kind == KIND_PYTHON
    chunk = (python_group_size(N, (pb.free_index.size + 1) * pb.m) if python
             else COMPILED_CHUNK)
    starts = list(range(0, N, chunk))
    bar = None
    if progress and len(starts) > 0:
        try:
            from tqdm.auto import tqdm  # type: ignore[import-untyped]
        except ImportError:
            warnings.warn("progress=True shows nothing: tqdm is not installed (pip install "
                          "'fastcalc[progress]')", UserWarning, stacklevel=4)
        else:
            bar = tqdm(total=N, unit="fit")

    def run_group(start):
        stop = min(N, start + chunk)
        if python:
            _run_python(pb, start, stop, out)
        else:
            _kernel.fit_compiled(
                spec.kind, spec.model_id, spec.compiled, spec.jac_fn,
                pb.x, spec.x_dim, pb.Y, pb.sigma, pb.p0, pb.use_guess,
                pb.lower, pb.upper, pb.has_bounds, pb.free_index,
                pb.method_code, pb.maxiter, pb.ftol, pb.xtol, pb.gtol,
                pb.absolute_sigma, pb.estimator.code, pb.estimator.f_scale, start, stop,
                n_threads, *out)

    def group_done(start):
        if bar is not None:
            bar.update(min(N, start + chunk) - start)

    # Python-model groups run on threads (NumPy and the C algebra release the GIL, so their
    # model calls overlap); compiled kernels use their own prange threads per group.
    workers = n_threads_for(n_threads) if python else 1
    try:
        run_on_threads(run_group, starts, workers, group_done)
    finally:
        if bar is not None:
            bar.close()
    return out


def _run_python(pb, start, stop, out):
    Y = pb.Y[start:stop]
    valid = np.isfinite(Y)
    # sigma at the valid points, 0 at the missing ones: the kernel forms the weights
    if pb.sigma is None:
        W = valid.astype(np.float64)
    else:
        sig = pb.sigma if pb.sigma.shape[0] == 1 else pb.sigma[start:stop]
        W = np.where(valid, sig, 0.0)
    Yz = np.where(valid, Y, 0.0)
    evaluate, jacobian = python_callables(pb, start)
    _kernel.fit_python(evaluate, jacobian, np.ascontiguousarray(Yz), np.ascontiguousarray(W),
                        pb.p0[start:stop], pb.lower, pb.upper, pb.has_bounds,
                        pb.free_index, pb.method_code, pb.maxiter, pb.ftol,
                        pb.xtol, pb.gtol, pb.absolute_sigma, pb.estimator.code,
                        pb.estimator.f_scale, pb.batch, *(o[start:stop] for o in out))


def python_callables(pb, start):
    """``(evaluate, jacobian)`` of the Python model as the Python driver calls them:
    ``evaluate(params, rows)`` -> (a, m) values of datasets ``start + rows``; ``jacobian``
    (None for finite differences) -> (a, P, m)."""
    model, m, single = pb.spec.model, pb.m, not pb.batch
    # read-only: a model that modifies x (or the parameter columns) must not change the
    # caller's data or the fit's own state
    x, shared = read_only(pb.x), pb.x_shared

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
    if pb.spec.python_jac is not None:
        jac, P = pb.spec.python_jac, pb.spec.nparams

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


def model_values(pb, params, rows):
    """model(x, params) of datasets ``rows``, called exactly as during the fit."""
    spec = pb.spec
    if spec.kind == KIND_PYTHON:
        evaluate = python_callables(pb, 0)[0]
        return evaluate(np.ascontiguousarray(params, dtype=float), np.asarray(rows))
    x = pb.x if pb.x_shared else pb.x[rows]
    return _kernel.evaluate_model(spec.kind, spec.model_id, spec.compiled,
                                   np.ascontiguousarray(x), spec.x_dim,
                                   np.ascontiguousarray(params, dtype=float), pb.m)


def model_at(pb, x_new):
    """``(function, vectorized)``: the model at ``x_new`` as a function of the parameters,
    for :func:`fastcalc.propagate` (vectorized: ``(k, n)`` columns -> ``(m_new, n)``)."""
    spec = pb.spec
    if spec.kind == KIND_PYTHON:
        return python_model_at(spec.model, x_new, spec.nparams, pb.batch)
    x_new = real_array(x_new, "x_new")
    xd = spec.x_dim
    if (xd == 1 and x_new.ndim > 1) or (xd > 1 and (x_new.ndim != 2 or x_new.shape[0] != xd)):
        raise ValueError(f"x_new has shape {x_new.shape}, expected "
                         + ("(m_new,)" if xd == 1 else f"({xd}, m_new)"))
    if not np.isfinite(x_new).all():
        raise ValueError("x_new contains NaN or inf")
    row = np.ascontiguousarray(x_new, dtype=np.float64).reshape(1, -1)
    m_new = x_new.shape[-1] if x_new.ndim else 1

    def at(P):
        return _kernel.evaluate_model(spec.kind, spec.model_id, spec.compiled, row, xd,
                                       np.ascontiguousarray(P.T), m_new).T

    return at, True
