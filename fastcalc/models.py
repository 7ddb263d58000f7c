"""Built-in fit models: values, analytic Jacobians and initial guesses, compiled.

Each model is a :class:`Model`; its kernels (``fastcalc._models``) are what
:func:`fastcalc.fit` and :func:`fastcalc.fit_batch` call without the GIL. A Model is also
an ordinary callable with the :func:`scipy.optimize.curve_fit` convention
``model(x, *params)``, with ``model.jacobian`` usable as curve_fit's ``jac`` and
``model.guess(x, y)`` as its ``p0``.

==============  ==================================================  =========================
model           expression                                          parameters
==============  ==================================================  =========================
line            a + b*x                                             a, b
polynomial(d)   c0 + c1*x + ... + cd*x**d                           c0, ..., cd
exponential     A*exp(-x/tau) + c                                   A, tau, c
gaussian        A*exp(-(x - mu)**2/(2*sigma**2)) + c                A, mu, sigma, c
lorentzian      A*gamma**2/((x - x0)**2 + gamma**2) + c             A, x0, gamma, c
logistic        L/(1 + exp(-k*(x - x0))) + c                        L, x0, k, c
power_law       A*x**k  (x > 0)                                     A, k
sine            A*sin(omega*x + phi) + c                            A, omega, phi, c
gaussian_2d     A*exp(-((x - x0)**2 + (y - y0)**2)/(2*sigma**2))    A, x0, y0, sigma, b
                + b, with x of shape (2, m): rows x and y
==============  ==================================================  =========================

Only ``sigma**2`` and ``gamma**2`` enter the peaks, so their sign is immaterial (a fit may
return a negative width; its absolute value is the width). ``power_law`` has no offset: the
pure power law is the standard form (add one with a Python model when needed). ``logistic``
guesses always have ``k > 0``; a decreasing step comes back as ``L < 0``.

Initial guesses (``Model.guess``, and ``fit``/``fit_batch`` when ``p0`` is omitted) are
estimated from the data in O(m) without allocation; points with NaN y are ignored:

- line, polynomial: the exact least-squares solution (Givens QR in a scaled variable).
- gaussian, lorentzian, gaussian_2d: baseline from the points well below the extreme,
  centre from the centroid of the points above half maximum, width from their extent or
  number (FWHM; for 2-D their radius and area), then amplitude and baseline exactly by
  linear least squares for that shape. Peak or dip is decided by the data, or by the
  smaller residual when unclear. gaussian_2d then sharpens amplitude, centre and width by
  Caruana's log-parabola fit (weights (y - baseline)^2, as Guo 2011) over the points above
  20% of the amplitude, kept only when it gives a peak inside the sampled box.
- exponential: decay rate from the means of three x bins (a log-linear fit above the
  tail when the decay is faster than a bin), then the best of a few rates around it
  (including the opposite sign) with A and c exact for each.
- logistic: levels from the two ends, centre and steepness from the points between 25%
  and 75% of the step, then the best of a few steepnesses with the levels exact.
- power_law: a weighted least-squares line through ``log|y|`` against ``log x``.
- sine: frequency from the zero crossings (sorted x) or an O(m^2) periodogram scan (unsorted
  x; also for sorted x of up to 200 points, whose sparse irregular samples can hide
  crossings: the frequency of smaller residual wins), refined by residual scans, then
  amplitude, phase and offset exactly (data beyond 1e+-120 from a copy divided by a power
  of two).

Examples
--------
>>> import numpy as np
>>> from fastcalc.models import gaussian
>>> x = np.linspace(-5, 5, 41)
>>> y = gaussian(x, 2.0, 0.5, 1.2, 0.1)
>>> np.round(gaussian.guess(x, y), 1)
array([2. , 0.5, 1.2, 0.1])
"""
from __future__ import annotations

import re

import numpy as np

from . import _models
from ._arrays import real_array
from ._models import ModelId

__all__ = [
    "Model",
    "ModelId",
    "exponential",
    "gaussian",
    "gaussian_2d",
    "get_model",
    "line",
    "logistic",
    "lorentzian",
    "polynomial",
    "power_law",
    "sine",
    "CompiledModel",
    "compiled",
]


class Model:
    """A built-in fit model with compiled values, analytic Jacobian and initial guess.

    Instances are created by this module (``line``, ``gaussian``, ``polynomial(3)``, ...);
    they are immutable.

    Attributes
    ----------
    name : str
        Model name, e.g. ``"gaussian"`` or ``"polynomial3"``.
    param_names : tuple of str
        Parameter names in order.
    nparams : int
        Number of parameters.
    x_dim : int
        Rows of the independent variable: 1, or 2 for ``gaussian_2d`` (x of shape (2, m)).
    model_id : ModelId
        Kernel identifier used by the fitting kernels.
    expression : str
        The model formula in Python syntax.
    x_domain : tuple of float or None
        The open interval ``(low, high)`` of x where the model is defined (``(0, inf)`` for
        ``power_law``), None for all real x. ``fit`` refuses, and ``fit_batch`` gives status 3
        to, data with a valid point outside it.

    Examples
    --------
    >>> from fastcalc.models import gaussian
    >>> gaussian
    Model('gaussian', A*exp(-(x - mu)**2/(2*sigma**2)) + c; params: A, mu, sigma, c)
    >>> gaussian([0.0, 1.0], 2.0, 0.0, 1.0, 0.5)
    array([2.5       , 1.71306132])
    """

    __slots__ = ("name", "param_names", "nparams", "x_dim", "model_id", "expression",
                 "x_domain")
    name: str
    param_names: tuple[str, ...]
    nparams: int
    x_dim: int
    model_id: ModelId
    expression: str
    x_domain: tuple[float, float] | None

    def __init__(self, name, model_id, param_names, expression, x_domain=None):
        nparams, x_dim = _models.kernel_shape(int(model_id), len(param_names))
        for key, value in (("name", name), ("model_id", ModelId(model_id)),
                           ("param_names", tuple(param_names)), ("nparams", nparams),
                           ("x_dim", x_dim), ("expression", expression),
                           ("x_domain", x_domain)):
            object.__setattr__(self, key, value)     # __setattr__ refuses: immutable

    def __setattr__(self, key, value):
        raise AttributeError(f"Model attributes are read-only (tried to set {key!r})")

    def __repr__(self):
        return (f"Model({self.name!r}, {self.expression}; "
                f"params: {', '.join(self.param_names)})")

    def __eq__(self, other):
        return (isinstance(other, Model) and other.model_id == self.model_id
                and other.nparams == self.nparams)

    def __hash__(self):
        return hash((int(self.model_id), self.nparams))

    def __reduce__(self):
        # pickling (e.g. to dask workers) rebuilds the model by name
        return get_model, (self.name,)

    # -- domain -------------------------------------------------------------------------

    def outside_domain(self, x):
        """Where ``x`` (``(x_dim, m)`` or ``(N, x_dim * m)``) lies outside ``x_domain``, or None
        when the model is defined for every real x."""
        if self.x_domain is None:
            return None
        low, high = self.x_domain
        return ~((x > low) & (x < high))

    def domain_error(self):
        """The reason given for data outside ``x_domain``."""
        low, high = self.x_domain
        needs = ([f"x > {low:g}"] if low > -np.inf else []) + (
            [f"x < {high:g}"] if high < np.inf else [])
        return f"x is outside the model's domain ({self.expression} needs {' and '.join(needs)})"

    # -- public API ---------------------------------------------------------------------

    def __call__(self, x, *params):
        """Model values at ``x`` (curve_fit convention ``model(x, *params)``).

        Parameters
        ----------
        x : array_like
            Independent variable, any shape (``(2, ...)`` for ``gaussian_2d``).
        *params : float
            The ``nparams`` parameters in the order of ``param_names`` (a single array of
            them is accepted too).

        Returns
        -------
        ndarray
            Values, of shape ``x.shape`` (``x.shape[1:]`` for ``gaussian_2d``). Where the
            parameters give no finite value (e.g. a zero width) every value is NaN; a point
            giving no finite value (NaN in ``x``, outside the domain) is NaN alone.

        Raises
        ------
        TypeError
            Wrong number of parameters, or parameters or ``x`` not real numbers.
        ValueError
            ``x`` not of shape ``(2, ...)`` for ``gaussian_2d``.

        Notes
        -----
        Failure behaviour: never raises for numerical problems; values that cannot be computed
        are NaN.

        Examples
        --------
        >>> from fastcalc.models import line
        >>> line([0.0, 1.0, 2.0], 1.0, 2.0)
        array([1., 3., 5.])
        """
        return self._evaluate(x, params, want_jac=False)

    def jacobian(self, x, *params):
        """Analytic Jacobian d model / d params at ``x``.

        Usable as the ``jac`` argument of :func:`scipy.optimize.curve_fit`.

        Parameters
        ----------
        x : array_like
            Independent variable, as for :meth:`__call__`.
        *params : float
            The ``nparams`` parameters.

        Returns
        -------
        ndarray
            Shape ``(*x.shape, nparams)`` (``(m, nparams)`` for 1-D x). All NaN where the
            parameters give no finite value; the row of a point giving no finite value is NaN.

        Raises
        ------
        TypeError
            Wrong number of parameters, or parameters or ``x`` not real numbers.
        ValueError
            ``x`` not of shape ``(2, ...)`` for ``gaussian_2d``.

        Notes
        -----
        Failure behaviour: never raises for numerical problems; entries that cannot be computed
        are NaN.

        Examples
        --------
        >>> from fastcalc.models import line
        >>> line.jacobian([0.0, 2.0], 1.0, 3.0)
        array([[1., 0.],
               [1., 2.]])
        """
        return self._evaluate(x, params, want_jac=True)

    def guess(self, x, y):
        """Initial parameters estimated from data (robust to noise; NaN y are ignored).

        Parameters
        ----------
        x : array_like, shape (m,) or (2, m) for ``gaussian_2d``
            Independent variable.
        y : array_like, shape (m,)
            Data; NaN marks a missing point.

        Returns
        -------
        ndarray, shape (nparams,)
            Parameters from which Levenberg-Marquardt converges on data typical of the
            model.

        Raises
        ------
        ValueError
            If shapes disagree, ``x`` has NaN or inf, ``y`` has inf, or ``y`` has too few
            finite points (or x lies outside the model's domain) to determine the parameters.
        TypeError
            Complex or non-numeric ``x`` or ``y``.

        Notes
        -----
        Failure behaviour: raises ``ValueError`` (above) rather than returning non-finite
        parameters.

        Examples
        --------
        >>> import numpy as np
        >>> from fastcalc.models import line
        >>> line.guess(np.arange(4.0), [1.0, 3.0, np.nan, 7.0])
        array([1., 2.])
        """
        points, y = _guess_data(self, x, y)
        p0, status = _models.guess(int(self.model_id), self.nparams, points, y)
        if status == _models.GUESS_STATUS_BAD_DOMAIN:
            raise ValueError(f"cannot guess {self.name} parameters: {self.domain_error()}")
        if status != 0:
            raise ValueError(f"cannot guess {self.name} parameters from y: need at least "
                             f"{self.nparams} finite points at enough distinct x "
                             f"(y has {int(np.isfinite(y).sum())} finite values)")
        return p0

    def _evaluate(self, x, params, want_jac):
        """Values at x, or the Jacobian (a trailing axis of nparams): all NaN when the
        parameters give no finite value (the kernel's status)."""
        p = _params(self, params)
        points, shape = _points(self, x)
        values, jac, status = _models.evaluate(int(self.model_id), self.nparams, points, p,
                                               want_jac, per_point=True)
        out, shape = (jac, tuple(shape) + (self.nparams,)) if want_jac else (values, shape)
        if status != 0:
            out.fill(np.nan)
        return out.reshape(shape)


# -- argument checks of Model's methods -------------------------------------------------

def _points(model, x, name="x"):
    """x as a float64 array of shape (x_dim, m) plus the output shape."""
    x = real_array(x, name)
    if model.x_dim == 1:
        return x.reshape(1, -1), x.shape
    if x.ndim < 1 or x.shape[0] != model.x_dim:
        raise ValueError(f"{name} must have shape (2, m) for {model.name} (rows x and y), "
                         f"got shape {x.shape}")
    return x.reshape(model.x_dim, -1), x.shape[1:]


def _params(model, params):
    """The ``nparams`` parameters, given one by one or as one array, as float64."""
    if len(params) == 1 and np.ndim(params[0]) == 1:
        params = tuple(params[0])          # model(x, p) with p an array also works
    if len(params) != model.nparams:
        raise TypeError(f"{model.name} takes {model.nparams} parameters "
                        f"({', '.join(model.param_names)}), got {len(params)}")
    try:
        return np.array([float(v) for v in params], dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"params of {model.name} must be real scalars "
                        f"({', '.join(model.param_names)})") from None


def _guess_data(model, x, y):
    """``(points, y)`` for the kernel's guess: x as (x_dim, m), y 1-D of length m, x finite
    and y without inf (NaN marks a missing point); ValueError otherwise."""
    points, _ = _points(model, x)
    y = real_array(y, "y")
    if y.ndim != 1:
        raise ValueError(f"y must be 1-D, got shape {y.shape}")
    if np.any(np.isinf(y)):
        raise ValueError("y contains inf (use NaN for missing points)")
    if not np.all(np.isfinite(points)):
        raise ValueError("x contains NaN or inf")
    if np.ndim(x) != (1 if model.x_dim == 1 else 2) or points.shape[1] != y.shape[0]:
        want = "(m,)" if model.x_dim == 1 else "(2, m)"
        raise ValueError(f"x must have shape {want} with m = len(y) = {y.shape[0]}, "
                         f"got shape {np.shape(x)}")
    return points, y


line = Model("line", ModelId.LINE, ("a", "b"), "a + b*x")
exponential = Model("exponential", ModelId.EXPONENTIAL, ("A", "tau", "c"), "A*exp(-x/tau) + c")
gaussian = Model("gaussian", ModelId.GAUSSIAN, ("A", "mu", "sigma", "c"),
                 "A*exp(-(x - mu)**2/(2*sigma**2)) + c")
lorentzian = Model("lorentzian", ModelId.LORENTZIAN, ("A", "x0", "gamma", "c"),
                   "A*gamma**2/((x - x0)**2 + gamma**2) + c")
logistic = Model("logistic", ModelId.LOGISTIC, ("L", "x0", "k", "c"),
                 "L/(1 + exp(-k*(x - x0))) + c")
power_law = Model("power_law", ModelId.POWER_LAW, ("A", "k"), "A*x**k", x_domain=(0.0, np.inf))
sine = Model("sine", ModelId.SINE, ("A", "omega", "phi", "c"), "A*sin(omega*x + phi) + c")
gaussian_2d = Model("gaussian_2d", ModelId.GAUSSIAN_2D, ("A", "x0", "y0", "sigma", "b"),
                    "A*exp(-((x - x0)**2 + (y - y0)**2)/(2*sigma**2)) + b")


def polynomial(deg):
    """The polynomial model of degree ``deg``: the sum of ``c_k*x**k`` for k = 0 to ``deg``.

    Parameters
    ----------
    deg : int
        Degree, ``>= 0``; the model has ``deg + 1`` parameters ``c0 ... c_deg``.

    Returns
    -------
    Model

    Examples
    --------
    >>> from fastcalc.models import polynomial
    >>> quadratic = polynomial(2)
    >>> quadratic.param_names
    ('c0', 'c1', 'c2')
    >>> quadratic([0.0, 1.0, 2.0], 1.0, 0.0, 2.0)
    array([1., 3., 9.])
    """
    if isinstance(deg, (bool, np.bool_)) or not isinstance(deg, (int, np.integer)):
        raise TypeError(f"deg must be an integer, got {deg!r}")
    deg = int(deg)
    if deg < 0:
        raise ValueError(f"deg must be >= 0, got {deg}")
    terms = ["c0"] + [f"c{k}*x" if k == 1 else f"c{k}*x**{k}" for k in range(1, deg + 1)]
    return Model(f"polynomial{deg}", ModelId.POLYNOMIAL,
                 tuple(f"c{k}" for k in range(deg + 1)), " + ".join(terms))


_FIXED_MODELS = {m.name: m for m in (line, exponential, gaussian, lorentzian, logistic,
                                     power_law, sine, gaussian_2d)}
_ALIASES = {
    "gauss": "gaussian", "normal": "gaussian", "linear": "line", "straight_line": "line",
    "exp": "exponential", "decay": "exponential", "lorentz": "lorentzian",
    "cauchy": "lorentzian", "sigmoid": "logistic", "powerlaw": "power_law", "power": "power_law",
    "sin": "sine", "sinusoid": "sine", "gaussian2d": "gaussian_2d", "gauss2d": "gaussian_2d",
    "gauss_2d": "gaussian_2d",
}


def get_model(name):
    """Look up a built-in model by name (as the command line does).

    Parameters
    ----------
    name : str or Model
        A model name (``"gaussian"``, ``"power_law"``, ...), case-insensitive, with ``-`` or
        spaces accepted for ``_``; ``"polynomialN"``, ``"polyN"`` or ``"polynomial(N)"`` for
        degree N. A Model is returned unchanged.

    Returns
    -------
    Model

    Raises
    ------
    ValueError
        If no built-in model has that name.

    Examples
    --------
    >>> from fastcalc.models import get_model
    >>> get_model("Gaussian").name
    'gaussian'
    >>> get_model("poly3").param_names
    ('c0', 'c1', 'c2', 'c3')
    """
    if isinstance(name, Model):
        return name
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name).__name__}")
    key = re.sub(r"[\s\-]+", "_", name.strip().lower())
    key = _ALIASES.get(key, key)
    if key in _FIXED_MODELS:
        return _FIXED_MODELS[key]
    match = re.fullmatch(r"(?:polynomial|poly)_?\(?(\d+)\)?", key)
    if match:
        return polynomial(int(match.group(1)))
    known = ", ".join(sorted(_FIXED_MODELS)) + ", polynomialN (polyN)"
    raise ValueError(f"unknown model name {name!r}; built-in models: {known}")


# -- compiled models of the user's own -------------------------------------------------------

class CompiledModel:
    """A compiled fit model with named parameters (made by :func:`compiled`).

    Attributes
    ----------
    function : scipy.LowLevelCallable or numba cfunc
        The compiled model, with or without its Jacobian (see :func:`compiled`).
    param_names : tuple of str
    nparams : int
    x_dim : int
        Rows of the independent variable (x of shape ``(m,)`` or ``(x_dim, m)``).
    guess : callable or None
        ``guess(x, y) -> p0`` used by fit and fit_batch when ``p0`` is omitted.
    has_jacobian : bool
        Whether the function writes its own Jacobian.
    """

    __slots__ = ("function", "param_names", "nparams", "x_dim", "guess", "has_jacobian")

    def __init__(self, function, param_names, x_dim, guess, has_jacobian):
        for key, value in (("function", function), ("param_names", param_names),
                           ("nparams", len(param_names)), ("x_dim", x_dim), ("guess", guess),
                           ("has_jacobian", has_jacobian)):
            object.__setattr__(self, key, value)

    def __setattr__(self, key, value):
        raise AttributeError(f"CompiledModel attributes are read-only (tried to set {key!r})")

    def __repr__(self):
        kind = "values and Jacobian" if self.has_jacobian else "values"
        return f"CompiledModel({kind}; params: {', '.join(self.param_names)})"

    def __call__(self, x, *params):
        """Model values at ``x`` (``(m,)``, or ``(x_dim, m)``) for the parameters, in the
        order of ``param_names`` (one array of them is accepted too); NaN where the function
        reports an error."""
        from .fitting import _kernel
        from ._evaluate import resolve
        if len(params) == 1 and np.ndim(params[0]) == 1:
            params = tuple(params[0])
        if len(params) != self.nparams:
            raise TypeError(f"this model takes {self.nparams} parameters "
                            f"({', '.join(self.param_names)}), got {len(params)}")
        p = real_array(params, "params").reshape(1, -1)
        x = real_array(x, "x")
        m = x.shape[-1] if x.ndim else 1
        if (self.x_dim == 1 and x.ndim > 1) or (self.x_dim > 1 and x.shape[:1] != (self.x_dim,)):
            raise ValueError(f"x must have shape {'(m,)' if self.x_dim == 1 else (self.x_dim, 'm')}"
                             f", got shape {x.shape}")
        function = resolve(self.function, signatures=("model", "model_jac"), name="model")
        row = np.ascontiguousarray(x, dtype=np.float64).reshape(1, -1)
        return _kernel.evaluate_model(1, 0, function, row, self.x_dim,
                                      np.ascontiguousarray(p), m)[0]


def compiled(func, param_names, *, x_dim=1, guess=None):
    """Name the parameters of a compiled fit model (and give it an initial guess).

    Parameters
    ----------
    func : scipy.LowLevelCallable or numba cfunc
        A compiled model with one of the C signatures::

            int f(int npts, double *x, int nparams, double *params, double *out,
                  void *user_data)
            int f(int npts, double *x, int nparams, double *params, double *out,
                  double *jac, void *user_data)

        The second also writes the Jacobian ``d out[i] / d params[k]`` to ``jac[i * nparams
        + k]`` (row-major ``(npts, nparams)``) when ``jac`` is not NULL; the fit then calls it
        once per iteration instead of ``nparams + 1`` times for forward differences. ``x``
        holds ``x_dim`` rows of ``npts`` values. Return 0, or non-zero for an error (status 5).
    param_names : sequence of str
        The names of the parameters, in order (reports, ``to_dataframe``, ``fixed=`` and
        ``conf_interval(params=)`` use them).
    x_dim : int
        Rows of the independent variable: 1 (x of shape ``(m,)``) or more (``(x_dim, m)``).
    guess : callable, optional
        ``guess(x, y) -> p0``, called for each dataset (its valid points only) when
        ``fit``/``fit_batch`` get no ``p0``; a Python call per dataset.

    Returns
    -------
    CompiledModel
        Accepted as ``model`` by :func:`fastcalc.fit`, :func:`fastcalc.fit_batch` and
        :func:`fastcalc.dask.fit_batch`; also callable as ``model(x, *params)``.

    Raises
    ------
    TypeError
        ``func`` not a compiled callable of a fit-model signature; ``guess`` not callable;
        ``param_names`` not strings.
    ValueError
        ``param_names`` empty or repeated; ``x_dim`` below 1.

    Examples
    --------
    A numba ``cfunc`` writing the values and the Jacobian of ``A exp(-x / tau) + c`` (the same
    model ships in Cython, used here when numba is not installed):

    >>> import numpy as np
    >>> from fastcalc import fit_batch, models
    >>> def numba_decay():
    ...     from numba import carray, cfunc, types
    ...     sig = types.intc(types.intc, types.CPointer(types.double), types.intc,
    ...                      types.CPointer(types.double), types.CPointer(types.double),
    ...                      types.CPointer(types.double), types.voidptr)
    ...     @cfunc(sig)
    ...     def decay(npts, x_, nparams, p_, out_, jac_, user_data):
    ...         x, p, out = carray(x_, npts), carray(p_, nparams), carray(out_, npts)
    ...         jac = carray(jac_, (npts, nparams))    # jac_ is NULL: values only
    ...         want_jac = jac.ctypes.data != 0
    ...         for i in range(npts):
    ...             e = np.exp(-x[i] / p[1])
    ...             out[i] = p[0] * e + p[2]
    ...             if want_jac:
    ...                 jac[i, 0], jac[i, 1], jac[i, 2] = e, p[0] * e * x[i] / p[1]**2, 1.0
    ...         return 0
    ...     return decay
    >>> try:
    ...     decay = numba_decay()
    ... except ImportError:
    ...     from fastcalc._testfunctions import low_level
    ...     decay = low_level("exponential_model_and_jac")
    >>> model = models.compiled(decay, ["A", "tau", "c"])
    >>> x = np.linspace(0.0, 5.0, 30)
    >>> Y = np.array([2.0 * np.exp(-x / 1.5) + 0.5, 1.0 * np.exp(-x / 0.7) - 0.2])
    >>> r = fit_batch(model, x, Y, p0=[1.0, 1.0, 0.0])
    >>> r.param_names, r.params.round(6).tolist()
    (('A', 'tau', 'c'), [[2.0, 1.5, 0.5], [1.0, 0.7, -0.2]])
    """
    from ._evaluate import resolve
    function = resolve(func, signatures=("model", "model_jac"), name="func")
    if not function.is_compiled:
        raise TypeError("func must be a compiled callable (scipy.LowLevelCallable or numba "
                        f"cfunc) with a fit-model signature, got {type(func).__name__}")
    if isinstance(param_names, str):
        param_names = (param_names,)
    names = tuple(param_names)
    if not names:
        raise ValueError("param_names must name at least one parameter")
    if not all(isinstance(n, str) for n in names):
        raise TypeError(f"param_names must be strings, got {names!r}")
    if len(set(names)) != len(names):
        raise ValueError(f"param_names must be distinct, got {names!r}")
    if isinstance(x_dim, (bool, np.bool_)) or not isinstance(x_dim, (int, np.integer)):
        raise TypeError(f"x_dim must be an integer, got {x_dim!r}")
    if x_dim < 1:
        raise ValueError(f"x_dim must be >= 1, got {x_dim}")
    if guess is not None and not callable(guess):
        raise TypeError(f"guess must be callable guess(x, y) -> p0, got {type(guess).__name__}")
    return CompiledModel(func, names, int(x_dim), guess, function.signature == "model_jac")
