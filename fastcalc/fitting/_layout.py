"""The data laid out as the kernels take them: Y as (N, m) rows, x shared or one row per
dataset, sigma shared or per dataset, p0 per dataset. Invalid rows of a batch are recorded
in a :class:`BadRows`."""
import numpy as np

from .._arrays import real_array
from .._status import Status
from ._model_spec import KIND_BUILTIN, KIND_PYTHON
from ._validate import mismatch

__all__ = ["check_data", "check_domain", "compiled_guesses", "data_rows", "initial_values",
           "python_x_per_dataset", "sigma_rows", "x_rows"]

def data_rows(Y, batch):
    """Y as (N, m) rows."""
    Y = real_array(Y, "Y" if batch else "y")
    if batch:
        if Y.ndim != 2:
            raise ValueError(f"Y must be 2-D (N datasets, m points), got shape {Y.shape}")
    else:
        if Y.ndim != 1:
            raise ValueError(f"y must be 1-D, got shape {Y.shape}")
        Y = Y[None, :]
    if Y.shape[1] == 0:
        raise ValueError("y has no points")
    return Y


def check_data(Y, estimator_name, bad):
    """Datasets with inf (or negative Poisson counts) are bad."""
    bad.add(np.isinf(Y).any(axis=1), "Y contains inf (use NaN for missing points)",
            "y contains inf (use NaN for missing points)")
    if estimator_name == "poisson":
        with np.errstate(invalid="ignore"):
            bad.add((Y < 0).any(axis=1), "Y contains negative counts (cost='poisson')",
                    "y contains negative counts (cost='poisson')")


def python_x_per_dataset(x_shape, N, m, batch, x_per_dataset):
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


def x_rows(spec, x, N, m, batch, x_per_dataset, bad):
    """``(x, x_dim, x_shared)``: x as given for a Python model, else as contiguous rows of
    ``x_dim * m`` values (one shared row or one per dataset)."""
    x = real_array(x, "x")
    x_dim, x_shared = spec.x_dim, True
    if x_per_dataset is not None and x_per_dataset not in (True, False):
        raise TypeError(f"x_per_dataset must be None, True or False, got {x_per_dataset!r}")
    if spec.kind == KIND_PYTHON:
        x_shared = not python_x_per_dataset(x.shape, N, m, batch, x_per_dataset)
        xrows = x.reshape(N, -1) if not x_shared else x.reshape(1, -1)
    else:
        if x_dim is None:   # compiled: 1-D x (or (k, m) rows in a single fit)
            x_dim = 1 if (x.ndim == 1 or batch) else x.shape[0]
        shared_shape = (m,) if x_dim == 1 else (x_dim, m)
        if x.shape == shared_shape:
            xs = x.reshape(1, x_dim * m)
        elif batch and x.shape == (N,) + shared_shape:
            xs = x.reshape(N, x_dim * m)
            x_shared = False
        else:
            raise ValueError(mismatch("x", x.shape, shared_shape, N, batch))
        if x_per_dataset is not None and bool(x_per_dataset) == x_shared:
            raise ValueError(f"x_per_dataset={x_per_dataset} contradicts x of shape {x.shape}: "
                             f"this model takes a shared x of shape {shared_shape} or one "
                             f"per dataset of shape {(N,) + shared_shape}")
        x = xrows = np.ascontiguousarray(xs)
    if x_shared:
        if not np.all(np.isfinite(xrows)):
            raise ValueError("x contains NaN or inf")
    else:
        bad.add(~np.isfinite(xrows).all(axis=1), "x contains NaN or inf")
    return x, x_dim, x_shared


def sigma_rows(sigma, N, m, batch, bad, name="sigma"):
    """sigma (or sigma_x: ``name``) as (1, m) or (N, m) rows (None if not given)."""
    if sigma is None:
        return None
    s = real_array(sigma, name)
    if s.shape not in ((), (m,), (N, m)) and not (s.ndim == 2 and s.shape == (1, m)):
        raise ValueError(mismatch(name, s.shape, (m,), N, batch, scalar=True))
    # (1, m) is one row per dataset when there is one dataset (a Dask chunk of one row)
    shared = s.ndim < 2 or (s.shape[0] == 1 and N > 1)
    s = np.broadcast_to(s, (m,)) if s.ndim == 0 else s
    s = s.reshape(-1, m)
    with np.errstate(invalid="ignore"):
        invalid = ~(np.isfinite(s) & (s > 0)).all(axis=1)
    if shared and invalid[0]:
        raise ValueError(f"{name} must be finite and > 0")
    bad.add(invalid, f"{name} must be finite and > 0")
    # (a sigma so small that 1/sigma overflows is the kernels' concern: weights_from_sigma)
    return np.ascontiguousarray(s)


def initial_values(p0, spec, N, batch, lower, upper, has_bounds, bad):
    """``(p0, use_guess)``: the start of every dataset as (N, P) rows (NaN where the built-in
    model's guess is to be used), checked against the bounds."""
    P = spec.nparams
    use_guess = p0 is None
    if p0 is None:
        if spec.kind != KIND_BUILTIN:
            p0 = np.ones(P)       # curve_fit's default for Python models
            use_guess = False
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
    if not use_guess:
        shared = p0.strides[0] == 0 and N > 0    # (p,) broadcast: wrong for every dataset
        invalid = ~np.isfinite(p0).all(axis=1)
        if shared and invalid[0]:
            raise ValueError("p0 contains NaN or inf")
        bad.add(invalid, "p0 contains NaN or inf")
        if has_bounds:
            with np.errstate(invalid="ignore"):
                outside = np.any((p0 < lower) | (p0 > upper), axis=1)
            if shared and outside[0]:
                raise ValueError("p0 is outside the bounds")
            bad.add(outside, "p0 is outside the bounds", status=Status.OUT_OF_BOUNDS)
    return np.ascontiguousarray(p0), use_guess


def check_domain(model, x, x_dim, Y, bad):
    """Datasets with a valid point (finite y) outside the built-in model's domain (x <= 0
    for power_law): its values there are not defined, and the fit would end at once as
    'singular' (no guess) or 'non-finite' (p0 given). A ValueError in fit, status 3 in
    fit_batch, naming the domain."""
    m = Y.shape[1]
    outside = model.outside_domain(x).reshape(x.shape[0], x_dim, m)
    points = outside.any(axis=1) & np.isfinite(Y)
    rows = points.any(axis=1)
    if rows.any():
        reason = model.domain_error()
        bad.add(rows, reason, f"{reason}: {int(points.sum())} of the "
                f"{int(np.isfinite(Y).sum())} valid points")


def compiled_guesses(spec, x, x_shared, Y, lower, upper, bad):
    """p0 from a compiled model's ``guess(x, y)`` (:func:`fastcalc.models.compiled`), called
    for each dataset with its valid points: (N, P) rows, or (P,) for one dataset. Datasets
    that are already bad or have fewer valid points than parameters are not guessed (a finite
    start inside the bounds: the kernels then give them their status)."""
    N, m = Y.shape
    P, x_dim = spec.nparams, spec.x_dim
    p0 = np.empty((N, P))
    p0[:] = np.where(np.isfinite(lower), lower, np.where(np.isfinite(upper), upper, 0.0))
    for d in range(N):
        valid = np.isfinite(Y[d])
        if np.count_nonzero(valid) < P or (bad.status is not None and bad.status[d] != 0):
            continue
        xd = (x[0] if x_shared else x[d]).reshape(x_dim, m)[:, valid]
        guess = real_array(spec.guess(xd[0] if x_dim == 1 else xd, Y[d, valid]), "guess")
        if guess.shape != (P,):
            raise ValueError(f"guess returned shape {guess.shape}, expected ({P},)")
        p0[d] = guess
    return p0 if N > 1 or bad.batch else p0[0]
