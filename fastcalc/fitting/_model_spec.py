"""What kind of model is fitted (built-in, compiled or Python), its parameter names and its
analytic Jacobian, if any."""
import inspect

import numpy as np
from scipy import LowLevelCallable  # type: ignore[import-untyped]

from .._evaluate import resolve

__all__ = ["KIND_BUILTIN", "KIND_COMPILED", "KIND_PYTHON", "ModelSpec", "is_builtin",
           "is_compiled", "is_named_compiled", "model_spec", "param_names"]

# the roles of _evaluate._SIGNATURES a compiled model may have
MODEL_SIGNATURES = ("model", "model_jac")

KIND_BUILTIN, KIND_COMPILED, KIND_PYTHON = 0, 1, 2


def is_builtin(model):
    """Whether ``model`` is a :mod:`fastcalc.models` model."""
    return all(hasattr(model, a) for a in ("model_id", "nparams", "x_dim", "param_names"))


def is_compiled(model):
    """Whether ``model`` is a compiled callable (LowLevelCallable or Numba cfunc)."""
    return isinstance(model, LowLevelCallable) or (
        type(model).__module__.startswith("numba") and hasattr(model, "ctypes"))


def is_named_compiled(model):
    """Whether ``model`` is a compiled callable with named parameters
    (:func:`fastcalc.models.compiled`)."""
    return (is_compiled(getattr(model, "function", None))
            and all(hasattr(model, a) for a in ("param_names", "x_dim", "guess")))


def _python_param_names(model, p0):
    if p0 is not None:
        n = np.shape(p0)[-1] if np.ndim(p0) else 1
        try:
            names = list(inspect.signature(model).parameters)[1:]
            if len(names) == n and all(
                    p.kind == p.POSITIONAL_OR_KEYWORD
                    for p in list(inspect.signature(model).parameters.values())[1:]):
                return tuple(names)
        except (TypeError, ValueError):
            pass
        return tuple(f"p{k}" for k in range(n))
    try:
        params = list(inspect.signature(model).parameters.values())
    except (TypeError, ValueError):
        raise ValueError("p0 is required: the number of parameters of model cannot be "
                         "determined") from None
    if any(p.kind == p.VAR_POSITIONAL for p in params) or len(params) < 2:
        raise ValueError("p0 is required: the number of parameters of model cannot be "
                         "determined from its signature")
    return tuple(p.name for p in params[1:])


def _compiled_param_names(p0):
    if p0 is None:
        raise ValueError("p0 is required for a compiled model")
    return tuple(f"p{k}" for k in range(int(np.shape(p0)[-1]) if np.ndim(p0) else 1))


def param_names(model, p0):
    """The names of the parameters of ``model`` (``p0`` gives their number where the model
    does not), known before anything runs.

    >>> from fastcalc import models
    >>> param_names(models.gaussian, None), param_names(lambda x, a, b: a * x + b, None)
    (('A', 'mu', 'sigma', 'c'), ('a', 'b'))
    """
    if is_builtin(model) or is_named_compiled(model):
        return tuple(model.param_names)
    if is_compiled(model):
        return _compiled_param_names(p0)
    if callable(model):
        return _python_param_names(model, p0)
    raise TypeError(f"model must be a fastcalc.models model, a compiled model callable "
                    f"or a Python callable, got {type(model).__name__}")


class ModelSpec:
    """The model as the kernels call it: ``kind``, ``model`` (a built-in model, a resolved
    compiled callable or the Python callable), ``nparams``, ``param_names``, ``x_dim`` (None
    until the layout of x decides it for a compiled model), ``jac_fn`` (compiled) or
    ``python_jac``; ``guess`` (a compiled model's Python ``guess(x, y)``, or None)."""

    def __init__(self, kind, model, param_names, x_dim=None, jac_fn=None, python_jac=None,
                 guess=None):
        self.kind, self.model, self.param_names = kind, model, tuple(param_names)
        self.nparams = len(self.param_names)
        self.x_dim, self.jac_fn, self.python_jac = x_dim, jac_fn, python_jac
        self.guess = guess

    @property
    def model_id(self):
        """The built-in model's id in the kernels (0 for the other kinds)."""
        return int(self.model.model_id) if self.kind == KIND_BUILTIN else 0

    @property
    def compiled(self):
        """The compiled model callable (None for the other kinds)."""
        return self.model if self.kind == KIND_COMPILED else None


def model_spec(model, p0, jac):
    """The :class:`ModelSpec` of ``model`` and ``jac`` as given to fit / fit_batch."""
    if is_builtin(model):
        if jac is not None:
            raise ValueError("jac is not used with a built-in model (its Jacobian is analytic)")
        return ModelSpec(KIND_BUILTIN, model, model.param_names, x_dim=int(model.x_dim))
    if is_named_compiled(model):
        if p0 is None and model.guess is None:
            raise ValueError("p0 is required for a compiled model without a guess "
                             "(see fastcalc.models.compiled)")
        return _compiled_spec(model.function, model.param_names, jac, model.x_dim, model.guess)
    if is_compiled(model):
        return _compiled_spec(model, _compiled_param_names(p0), jac)
    if callable(model):
        names = _python_param_names(model, p0)
        if jac is not None and (is_compiled(jac) or not callable(jac)):
            raise TypeError("jac of a Python model must be a Python callable "
                            "jac(x, *params) -> (m, p)")
        return ModelSpec(KIND_PYTHON, model, names, python_jac=jac)
    raise TypeError(f"model must be a fastcalc.models model, a compiled model callable "
                    f"or a Python callable, got {type(model).__name__}")


def _compiled_spec(model, param_names, jac, x_dim=None, guess=None):
    resolved = resolve(model, signatures=MODEL_SIGNATURES, name="model")
    jac_fn = None
    if jac is not None and resolved.signature == "model_jac":
        raise ValueError("jac is not used with a compiled model that writes its own Jacobian "
                         "(its signature has double *jac)")
    if jac is not None:
        if not is_compiled(jac):
            # resolve() would wrap a Python callable, which the kernel cannot call:
            # the fit would silently use finite differences
            raise TypeError("jac of a compiled model must be a compiled callable with "
                            "the model signature (writing the (npts, nparams) Jacobian), "
                            f"got {type(jac).__name__}")
        jac_fn = resolve(jac, signatures=("model",), name="jac")
    return ModelSpec(KIND_COMPILED, resolved, param_names, x_dim=x_dim, jac_fn=jac_fn,
                     guess=guess)
