"""Status codes shared by every fastcalc routine (DESIGN section 7).

Kernels never raise: they return one of these codes per problem, and the Python wrappers turn
codes into results, warnings or exceptions using the single message attached to each code.
"""
from enum import IntEnum

import numpy as np

__all__ = ["Status", "ConvergenceError", "message_of", "messages_of"]


class Status(IntEnum):
    """Outcome of one problem (one component, equation, system or dataset)."""

    SUCCESS = 0
    MAX_ITERATIONS = 1
    SINGULAR = 2
    NON_FINITE = 3
    OUT_OF_BOUNDS = 4
    CALLBACK_ERROR = 5

    @property
    def message(self) -> str:
        return _MESSAGES[self]


_MESSAGES = {
    Status.SUCCESS: "converged",
    Status.MAX_ITERATIONS: "maximum number of iterations reached without convergence",
    Status.SINGULAR: "zero derivative or singular matrix",
    Status.NON_FINITE: "a function value or derivative was not finite (NaN or inf)",
    Status.OUT_OF_BOUNDS: "the iterate left the bracket or bounds",
    Status.CALLBACK_ERROR: "the user function reported an error",
}


class ConvergenceError(RuntimeError):
    """Raised by scalar solvers that fail, unless ``full_output=True`` asks for a status instead."""


def message_of(status) -> str:
    """Return the message for one status code.

    >>> message_of(2)
    'zero derivative or singular matrix'
    """
    return Status(int(status)).message


def messages_of(status):
    """Return an object array of messages for an array of status codes (a str for a scalar)."""
    status = np.asarray(status)
    if status.ndim == 0:
        return message_of(status)
    table = np.array([_MESSAGES[s] for s in Status], dtype=object)
    return table[status]
