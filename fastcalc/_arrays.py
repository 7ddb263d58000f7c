"""User data as float64 arrays, with errors that name the argument."""
import numbers

import numpy as np

__all__ = ["read_only", "real_array", "real_number"]


def real_array(value, name):
    """``value`` as a float64 array (no copy when it already is one).

    Refuses, with a TypeError naming ``name``, what NumPy would quietly turn into numbers or
    fail on without naming the argument: complex values (NumPy drops the imaginary part with
    only a warning), None (a NaN, i.e. a missing point or an error far from its cause), strings
    (``'1.5'`` is parsed), and object arrays holding anything but real numbers. Ragged nesting
    and integers beyond the float64 range are a ValueError naming ``name``. Masked values of a
    masked array become NaN. NaN and inf pass: what they mean is the caller's decision (a
    missing point in fitting, an error for a point of differentiation).
    """
    if value is None:
        raise TypeError(f"{name} must be real numbers, got None")
    try:
        array = value if isinstance(value, np.ndarray) else np.asarray(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number or a rectangular (not ragged) array of "
                         "numbers") from None
    kind = array.dtype.kind
    if kind == "c":
        raise TypeError(f"{name} must be real, got complex values")
    if kind in "USa":
        raise TypeError(f"{name} must be real numbers, got strings")
    if kind == "O":
        if not all(isinstance(v, (numbers.Real, np.bool_)) for v in array.flat):
            raise TypeError(f"{name} must be real numbers, got non-numeric objects (use NaN "
                            "for a missing value)")
    elif kind not in "biuf":
        got = f"dtype {array.dtype}" if isinstance(value, np.ndarray) else type(value).__name__
        raise TypeError(f"{name} must be real numbers, got {got}")
    try:
        values = array.astype(np.float64, copy=False)
    except OverflowError:
        raise ValueError(f"{name} must be finite: it overflows float64") from None
    if isinstance(values, np.ma.MaskedArray):
        return values.filled(np.nan)        # a masked value is a missing one: NaN
    return np.asarray(values)               # a plain ndarray (not np.matrix)


def real_number(value, name):
    """``float(value)``; a TypeError naming ``name`` unless ``value`` is one real number (a
    bool is not: ``tol=True`` is a mistake, not 1)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    return float(value)


def read_only(array):
    """A read-only view of ``array``, to hand a library buffer (or the caller's data) to a user
    function: modifying it raises instead of silently changing the problem being solved."""
    view = array.view()
    view.flags.writeable = False
    return view
