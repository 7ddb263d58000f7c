"""Checks of the arguments of fit / fit_batch (one function per argument), and BadRows: the
datasets of a batch whose own inputs are invalid, which get a status instead of an error."""
import numpy as np

from .._arrays import real_array
from .._status import Status

__all__ = ["BadRows", "DEFAULT_TOL", "GD_MAXITER", "METHODS", "bounds_of", "fixed_mask",
           "maxiter_of", "method_code", "mismatch", "tolerances"]

DEFAULT_TOL = 1e-12
GD_MAXITER = 20000
METHODS = {"lm": 0, "gd": 1}
_MAX_INT = 2**31 - 1


def method_code(method):
    """The kernels' code of ``method`` ('lm' or 'gd')."""
    if not isinstance(method, str):
        raise TypeError(f"method must be 'lm' or 'gd', got {type(method).__name__}")
    if method not in METHODS:
        raise ValueError(f"method must be 'lm' or 'gd', got {method!r}")
    return METHODS[method]


def tolerances(tol):
    """``(ftol, xtol, gtol)`` from ``tol``: None, one number or three."""
    if tol is None:
        return DEFAULT_TOL, DEFAULT_TOL, DEFAULT_TOL
    values = real_array(tol, "tol")
    if values.ndim == 0:
        values = np.repeat(values, 3)
    if values.shape != (3,) or not np.all(np.isfinite(values) & (values >= 0)):
        raise ValueError(f"tol must be a non-negative number or (ftol, xtol, gtol), got {tol!r}")
    return tuple(float(t) for t in values)


def _bound(value, unbounded, which, P):
    """One side of bounds as a (P,) float array; None means unbounded (as in SciPy)."""
    if value is None:
        return np.full(P, unbounded)
    value = real_array(value, f"bounds ({which})")
    if value.shape not in ((), (P,)):
        raise ValueError(f"bounds ({which}) has shape {value.shape}, expected a scalar or "
                         f"({P},), one per parameter")
    return np.array(np.broadcast_to(value, (P,)))


def bounds_of(bounds, P):
    """``(lower, upper, has_bounds)``: (P,) arrays, and whether any bound is finite."""
    if bounds is None:
        return np.full(P, -np.inf), np.full(P, np.inf), False
    try:
        lb, ub = bounds
    except (TypeError, ValueError):
        raise ValueError("bounds must be a pair (lower, upper)") from None
    lower = _bound(lb, -np.inf, "lower", P)
    upper = _bound(ub, np.inf, "upper", P)
    if np.any(np.isnan(lower)) or np.any(np.isnan(upper)) or np.any(lower >= upper):
        raise ValueError("bounds: every lower bound must be < its upper bound")
    return lower, upper, bool(np.any(np.isfinite(lower)) or np.any(np.isfinite(upper)))


def fixed_mask(fixed, param_names):
    """The boolean mask of the parameters held fixed: ``fixed`` is None, a mask, or indices
    or names."""
    P = len(param_names)
    mask = np.zeros(P, dtype=bool)
    if fixed is None:
        return mask
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
        return np.array(items, dtype=bool)
    for item in items:
        if isinstance(item, (bool, np.bool_)):
            raise ValueError(f"fixed: {item!r} mixed with indices or names (give a "
                             "boolean mask of every parameter, or indices/names)")
        mask[parameter_index(item, param_names, "fixed")] = True
    return mask


def parameter_index(item, param_names, argument):
    """The index of the parameter ``item`` (a name, or an index from the end if negative);
    a ValueError naming ``argument`` otherwise."""
    P = len(param_names)
    if isinstance(item, str):
        if item not in param_names:
            raise ValueError(f"{argument}: unknown parameter {item!r}; parameters "
                             f"are {tuple(param_names)}")
        return list(param_names).index(item)
    if isinstance(item, (int, np.integer)) and not isinstance(item, (bool, np.bool_)) \
            and -P <= item < P:
        return int(item) % P
    raise ValueError(f"{argument}: invalid parameter {item!r}")


def maxiter_of(maxiter, method, nfree):
    """The iteration budget: ``maxiter``, or the method's default for ``nfree`` parameters."""
    if maxiter is None:
        maxiter = GD_MAXITER if method == "gd" else 200 * (nfree + 1)
    if isinstance(maxiter, bool) or not isinstance(maxiter, (int, np.integer)):
        raise ValueError(f"maxiter must be a positive int, got {maxiter!r}")
    if not 1 <= maxiter <= _MAX_INT:      # the kernels count iterations in a C int
        raise ValueError(f"maxiter must be an int from 1 to {_MAX_INT}, got {maxiter!r}")
    return int(maxiter)


def mismatch(name, shape, shared_shape, N, batch, scalar=False):
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


class BadRows:
    """Datasets with invalid inputs of their own. fit_batch gives them a status (``status``,
    reason in ``reason``) and fits the others as if they were alone; fit raises at the first.
    ``status`` and ``reason`` are None while no dataset is invalid."""

    def __init__(self, N, batch):
        self.N, self.batch = N, batch
        self.status = self.reason = None

    def add(self, rows, reason, single_reason=None, status=Status.NON_FINITE):
        """Datasets `rows` (bool (N,)) are invalid: a status in fit_batch, a ValueError in
        fit. The first reason found is kept."""
        if not np.any(rows):
            return
        if not self.batch:
            raise ValueError(single_reason or reason)
        if self.status is None:
            self.status = np.zeros(self.N, dtype=np.intc)
            self.reason = np.full(self.N, "", dtype=object)
        new = rows & (self.status == 0)
        self.status[new] = status
        self.reason[new] = reason

    def add_too_few_points(self, out, nfree):
        """Datasets with fewer valid points than free parameters (all NaN, say): the kernels
        end them at once with status 2 (J^T J is singular there) and dof = valid - free < 0;
        they become bad rows with fit's reason. Found from dof, not from another pass over Y."""
        if not self.batch:      # fit has raised already
            return
        *_, dof, _, _, status = out
        nvalid = dof + nfree
        rows = (nvalid < nfree) | (nvalid == 0)
        if not rows.any():
            return
        rows &= status == Status.SINGULAR
        if self.status is not None:
            rows &= self.status == 0
        for count in np.unique(nvalid[rows]):
            self.add(rows & (nvalid == count), f"too few points: {count} valid points "
                     f"for {nfree} free parameters", status=Status.SINGULAR)

    def overwrite(self, out):
        """NaN results, dof, nit, nfev 0 and their status for the bad datasets in ``out``."""
        if self.status is None:
            return
        params, cov, stderr, cost, chi, dof, nit, nfev, status = out
        bad = self.status != 0
        if bad.any():
            for array in (params, cov, stderr, cost, chi):
                array[bad] = np.nan
            for array in (dof, nit, nfev):
                array[bad] = 0
            status[bad] = self.status[bad]
