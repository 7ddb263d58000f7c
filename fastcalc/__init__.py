"""fastcalc: Cython-accelerated numerical calculus for numeric pipelines.

Finite-difference derivatives, Newton-Raphson at every scale, gradient descent, Lagrange
multipliers and chi-squared fitting; SciPy is the reference every routine is tested against.
"""
from . import models, nist
from ._parallel import get_num_threads, num_threads, set_num_threads
from ._status import ConvergenceError, Status
from ._version import __version__
from .differentiate import (DifferentiationResult, check_grad, derivative, gradient, hessian,
                            jacobian, taylor)
from .fitting import BatchFitResult, FitResult, chi2, fit, fit_batch, linear_fit, polyfit
from .fitting import GlobalFitResult, fit_global
from .optimize import gradient_descent, lagrange
from .propagate import Propagation, propagate
from .roots import newton, newton_system
from .matrix_free import hessian_operator, hvp, jacobian_operator, jvp
from .sparse import group_columns

__all__ = [
    "BatchFitResult", "ConvergenceError", "DifferentiationResult", "FitResult", "Status",
    "Propagation", "__version__", "check_grad", "chi2", "derivative", "fit", "fit_batch",
    "get_num_threads", "gradient", "gradient_descent", "hessian", "jacobian", "lagrange",
    "linear_fit", "models", "newton", "newton_system", "nist", "num_threads", "polyfit",
    "propagate", "set_num_threads", "taylor",
    "GlobalFitResult", "fit_global",
    "group_columns", "hessian_operator", "hvp", "jacobian_operator", "jvp",
]
