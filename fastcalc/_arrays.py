"""User data as float64 arrays, with errors that name the argument."""
import numpy as np

__all__ = ["real_array"]


def real_array(value, name):
    """``value`` as a float64 array (no copy when it already is one).

    Raises a TypeError naming ``name`` for complex or non-numeric data, where NumPy would drop
    an imaginary part with only a warning, or fail without naming the argument.
    """
    if np.iscomplexobj(value):
        raise TypeError(f"{name} must be real, got complex values")
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        got = f"dtype {value.dtype}" if isinstance(value, np.ndarray) else type(value).__name__
        raise TypeError(f"{name} must be real numbers, got {got}") from None
