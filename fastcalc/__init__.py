"""fastcalc: Cython-accelerated numerical calculus for numeric pipelines.

Finite-difference derivatives, Newton-Raphson at every scale, gradient descent, Lagrange
multipliers and chi-squared fitting; SciPy is the reference every routine is tested against.
"""
from ._status import ConvergenceError, Status
from .differentiate import (DifferentiationResult, check_grad, derivative, gradient, hessian,
                            jacobian, taylor)
from .optimize import gradient_descent, lagrange
from .roots import newton, newton_system

__version__ = "0.1.0"

__all__ = ["ConvergenceError", "DifferentiationResult", "Status", "__version__", "check_grad",
           "derivative", "gradient", "gradient_descent", "hessian", "jacobian", "lagrange", "newton",
           "newton_system", "taylor"]
