"""fastcalc: Cython-accelerated numerical calculus for numeric pipelines.

Finite-difference derivatives, Newton-Raphson at every scale, gradient descent, Lagrange
multipliers and chi-squared fitting; SciPy is the reference every routine is tested against.
"""
from . import models, nist
from ._status import ConvergenceError, Status
from .fitting import BatchFitResult, FitResult, chi2, fit, fit_batch, linear_fit, polyfit

__version__ = "0.1.0"

__all__ = [
    "BatchFitResult",
    "ConvergenceError",
    "FitResult",
    "Status",
    "__version__",
    "chi2",
    "fit",
    "fit_batch",
    "linear_fit",
    "models",
    "nist",
    "polyfit",
]
