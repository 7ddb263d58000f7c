"""The user-function layer: resolve a callable once, then evaluate it on batches of points.

Three kinds of function are accepted everywhere (DESIGN section 3):

* a Python callable ``f(x, *args)`` called once per point with ``x`` of shape ``(n,)``;
* a vectorized Python callable (``vectorized=True``) called once per batch with ``X`` of shape
  ``(n, k)``, column ``j`` being point ``j``;
* a compiled callable (``scipy.LowLevelCallable`` or numba ``cfunc``) called without the GIL.

Batches of points are stored row-wise, ``points[j]`` being point ``j``; a vectorized function
receives the transposed view, so no copy is made. Exceptions raised by Python callables propagate
unchanged. A compiled vector field that returns non-zero yields a row of NaN, which callers treat
like any other non-finite value.
"""
import numpy as np
cimport numpy as cnp
from cpython.pycapsule cimport PyCapsule_GetContext, PyCapsule_GetName, PyCapsule_GetPointer
from cpython.float cimport PyFloat_Check, PyFloat_AS_DOUBLE
from libc.math cimport NAN
from scipy import LowLevelCallable

cnp.import_array()

# Accepted C signatures (spaces removed) for each role of a compiled callable.
_SIGNATURES = {
    "scalar": ("double(int,double*,void*)",),
    "vector": ("int(int,double*,int,double*,void*)",),
    "elementwise": ("double(double,int,double*,void*)",),
    "model": ("int(int,double*,int,double*,double*,void*)",),
    "model_jac": ("int(int,double*,int,double*,double*,double*,void*)",),
    "block": ("int(int,double*,int,double*,double*,double*,void*)",),
}
_SIGNATURE_TEXT = {
    "scalar": "double f(int n, double *x, void *user_data)",
    "vector": "int f(int n, double *x, int m, double *out, void *user_data)",
    "elementwise": "double f(double x, int k, double *p, void *user_data)",
    "model": "int f(int npts, double *x, int nparams, double *params, double *out, void *user_data)",
    "model_jac": ("int f(int npts, double *x, int nparams, double *params, double *out, "
                  "double *jac, void *user_data)"),
    "block": ("int f(int n, const double *x, int k, const double *p, double *fx, double *dfx, "
              "void *user_data)"),
}


def _normalized(signature):
    return signature.replace(" ", "").replace("const", "")


def _as_low_level_callable(function):
    """Return ``function`` as a LowLevelCallable, or None if it is not a compiled callable."""
    if isinstance(function, LowLevelCallable):
        return function
    if type(function).__module__.startswith("numba") and hasattr(function, "ctypes"):
        return LowLevelCallable(function.ctypes)   # numba cfunc
    return None


cdef class UserFunction:
    """A user function resolved once: its kind, its arguments, and (compiled) its C pointer."""

    def __init__(self, function, *, args=(), vectorized=False, signatures=("scalar", "vector"),
                 name="f"):
        if not isinstance(args, tuple):
            args = (args,) if not isinstance(args, list) else tuple(args)
        self.name = name
        self.args = args
        self.signature = None
        low_level = _as_low_level_callable(function)
        if low_level is not None:
            if args:
                raise TypeError(f"{name}: args cannot be passed to a compiled callable; "
                                "use its user_data instead")
            sig = _normalized(low_level.signature)
            for role in signatures:
                if sig in _SIGNATURES[role]:
                    self.signature = role
                    break
            else:
                wanted = " or ".join(_SIGNATURE_TEXT[r] for r in signatures)
                raise TypeError(f"{name}: compiled callable has signature "
                                f"'{low_level.signature}', expected {wanted}")
            self.kind = COMPILED
            self.function = low_level
            self._owner = low_level
            # SciPy stores the function pointer in a capsule named by the signature and the
            # user_data pointer in that capsule's context.
            capsule = tuple.__getitem__(low_level, 0)
            self.c_function = PyCapsule_GetPointer(capsule, PyCapsule_GetName(capsule))
            self.user_data = PyCapsule_GetContext(capsule)
        elif callable(function):
            self.kind = VECTORIZED if vectorized else PYTHON
            self.function = function
        else:
            raise TypeError(f"{name} must be callable, a scipy.LowLevelCallable or a numba cfunc, "
                            f"got {type(function).__name__}")

    @property
    def is_compiled(self):
        return self.kind == COMPILED

    def __call__(self, x):
        """Evaluate at one point (any kind); returns a float or a 1-D array.

        The function gets a private copy of ``x``: a compiled one may write through its
        ``double *x`` and a Python one may modify its argument, and neither may change the
        caller's array (which may even be read-only memory)."""
        points = np.array(x, dtype=np.float64, ndmin=1).reshape(1, -1)
        if self.kind == COMPILED and self.signature == "vector":
            raise TypeError("use vector_values(points, m) for a compiled vector field")
        if self.kind == COMPILED or self.signature == "scalar":
            return float(self.scalar_values(points)[0])
        if self.kind == VECTORIZED:
            value = real_values(self.function(points.T, *self.args), self.name)
            return value[..., 0] if value.ndim else float(value)
        return self.function(points[0], *self.args)

    cpdef object scalar_values(self, const double[:, ::1] points):
        """Values of a scalar field at each row of ``points`` (shape ``(k, n)``) -> ``(k,)``."""
        cdef Py_ssize_t k = points.shape[0], n = points.shape[1], j
        cdef cnp.ndarray[double, ndim=1] out = np.empty(k, dtype=np.float64)
        cdef double[::1] out_view = out
        cdef scalar_field_t fn
        cdef object value
        if self.kind == COMPILED:
            fn = <scalar_field_t>self.c_function
            with nogil:
                for j in range(k):
                    out_view[j] = fn(<int>n, <double*>&points[j, 0], self.user_data)
            return out
        arr = np.asarray(points)
        if self.kind == VECTORIZED:
            value = self.function(arr.T, *self.args)
            return _as_shape(value, (k,), self.name, "vectorized scalar field")
        for j in range(k):
            value = self.function(arr[j], *self.args)
            if PyFloat_Check(value):
                out_view[j] = PyFloat_AS_DOUBLE(value)
            else:
                out_view[j] = _as_scalar(value, self.name)
        return out

    cpdef object vector_values(self, const double[:, ::1] points, int m=-1):
        """Values of a vector field at each row of ``points`` -> ``(k, m)``.

        ``m`` is required for compiled callables (their output size is not self-describing);
        for Python callables it is checked when given and inferred otherwise.
        """
        cdef Py_ssize_t k = points.shape[0], n = points.shape[1], j, i
        cdef vector_field_t fn
        cdef double[:, ::1] out_view
        if self.kind == COMPILED:
            if m < 0:
                raise ValueError(f"{self.name}: the output size m of a compiled vector field "
                                 "must be given")
            out = np.empty((k, m), dtype=np.float64)
            out_view = out
            fn = <vector_field_t>self.c_function
            with nogil:
                for j in range(k):
                    if fn(<int>n, <double*>&points[j, 0], m, &out_view[j, 0] if m > 0 else NULL,
                          self.user_data) != 0:
                        for i in range(m):
                            out_view[j, i] = NAN
            return out
        arr = np.asarray(points)
        if self.kind == VECTORIZED:
            value = real_values(self.function(arr.T, *self.args),
                                f"{self.name} (vectorized vector field)")
            if value.ndim == 1 and m in (-1, 1) and value.shape[0] == k:
                value = value[None, :]
            if m < 0 and value.ndim == 2:
                m = value.shape[0]
            if m < 0:     # the output size is not known: say so rather than show -1
                raise ValueError(f"{self.name} (vectorized vector field) returned shape "
                                 f"{value.shape}, expected (m, {k}): m outputs for each of "
                                 f"the {k} points (columns)")
            return _as_shape(value, (m, k), self.name, "vectorized vector field").T
        out = None
        for j in range(k):
            value = real_values(self.function(arr[j], *self.args), self.name)
            if value.ndim > 1:
                raise ValueError(f"{self.name} must return a scalar or a 1-D array, "
                                 f"got shape {value.shape}")
            value = value.reshape(-1)
            if out is None:
                if m < 0:
                    m = value.shape[0]
                out = np.empty((k, m), dtype=np.float64)
            if value.shape[0] != m:
                raise ValueError(f"{self.name} returned an array of shape {value.shape} at one "
                                 f"point, expected ({m},)")
            out[j] = value
        return out if out is not None else np.empty((0, max(m, 0)), dtype=np.float64)


def resolve(function, *, args=(), vectorized=False, signatures=("scalar", "vector"), name="f"):
    """Resolve ``function`` into a :class:`UserFunction` (returned as is if it already is one)."""
    if isinstance(function, UserFunction):
        return function
    return UserFunction(function, args=args, vectorized=vectorized, signatures=signatures,
                        name=name)


def real_values(value, name, complex_ok=False):
    """The one rule for values returned by a user function: ``value`` as a float64 array.

    Real numbers (bool, int, float, NumPy integer/float scalars and arrays) are accepted.
    Complex values raise a TypeError naming the function (converting them would drop the
    imaginary part), unless ``complex_ok`` (complex-step differentiation), when they are
    returned as they are. Anything else (None, str, bytes, Decimal, Fraction, objects) raises a
    TypeError naming the function: NumPy would turn None into NaN and parse numeric strings.
    """
    arr = value if type(value) is np.ndarray else np.asarray(value)
    kind = arr.dtype.kind
    if kind == "f" or kind == "i" or kind == "u" or kind == "b":
        return arr.astype(np.float64, copy=False)
    if kind == "c":
        if complex_ok:
            return arr
        raise TypeError(f"{name} returned complex values; it must return real numbers "
                        "(complex input and output are for method='complex' only)")
    got = type(value).__name__ if arr.ndim == 0 else f"an array of dtype {arr.dtype}"
    raise TypeError(f"{name} must return real numbers, got {got}: {_short_repr(value)}")


def _short_repr(value):
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


cdef double _as_scalar(object value, str name) except? -1.0:
    arr = real_values(value, name)
    if arr.size != 1:
        raise ValueError(f"{name} must return a scalar, got an array of shape {arr.shape}")
    return float(arr.reshape(()))


def _as_shape(value, shape, name, what):
    """``value`` as a float64 array of ``shape``, or a ValueError naming the function."""
    arr = real_values(value, f"{name} ({what})")
    if arr.shape != shape:
        raise ValueError(f"{name} ({what}) returned shape {arr.shape}, expected {shape}")
    return arr
