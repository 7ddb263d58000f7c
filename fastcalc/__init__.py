"""fastcalc: Cython-accelerated numerical calculus for numeric pipelines.

Finite-difference derivatives, Newton-Raphson at every scale, gradient descent, Lagrange
multipliers and chi-squared fitting; SciPy is the reference every routine is tested against.
"""
from . import models
from ._status import ConvergenceError, Status

__version__ = "0.1.0"

__all__ = ["ConvergenceError", "Status", "__version__", "models"]
