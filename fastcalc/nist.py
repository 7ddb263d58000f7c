"""NIST StRD nonlinear least-squares reference problems: loader, models and scoring.

The 27 problems of the NIST Statistical Reference Datasets (StRD) for nonlinear regression are the
standard accuracy test for least-squares fitters. Each file holds data, two starting points
("Start 1" far from the solution, "Start 2" closer) and certified parameter values, standard
deviations and residual sum of squares computed in 128-bit arithmetic.

This module parses those files (public-domain reference data from NIST, shipped with the package
in ``fastcalc/data/nist_strd`` with their SHA-256 sums; ``FASTCALC_NIST_DIR`` or ``directory=``
point elsewhere), gives every problem its model ``f(x, *b)`` and analytic Jacobian
``jac(x, *b)`` written out by hand from the formula in the file, and scores a fitter by the log
relative error (LRE) of its estimates against the certified values.

Nelson's model is ``log(y) = b1 - b2*x1*exp(-b3*x2)``: its problem's ``y`` is ``log(y)`` (the raw
response is kept in ``y_raw``) so that every problem is an ordinary fit of ``y ~ f(x, *b)``.
"""
from __future__ import annotations

import hashlib
import os
import re
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "NIST_PROBLEMS",
    "NistProblem",
    "compare_with_curve_fit",
    "curve_fit_fitter",
    "default_directory",
    "fastcalc_fitter",
    "format_table",
    "load",
    "load_all",
    "lre",
    "score_all",
    "summarize",
    "verify_checksums",
]

#: Names of the 27 StRD nonlinear regression problems, in NIST's order of difficulty.
NIST_PROBLEMS: tuple[str, ...] = (
    # lower difficulty
    "Misra1a", "Chwirut2", "Chwirut1", "Lanczos3", "Gauss1", "Gauss2", "DanWood", "Misra1b",
    # average difficulty
    "Kirby2", "Hahn1", "Nelson", "MGH17", "Lanczos1", "Lanczos2", "Gauss3", "Misra1c", "Misra1d",
    "Roszman1", "ENSO",
    # higher difficulty
    "MGH09", "Thurber", "BoxBOD", "Rat42", "MGH10", "Eckerle4", "Rat43", "Bennett5",
)

#: Significant digits of the certified values (NIST prints 11), the ceiling of any LRE.
CERTIFIED_DIGITS = 11.0

_ENV_VARIABLE = "FASTCALC_NIST_DIR"
# package data (pyproject.toml), so that a plain clone and a non-editable install both have it
_PACKAGED_DATA = Path(__file__).resolve().parent / "data" / "nist_strd"


# --------------------------------------------------------------------------------------------
# Models: value f(x, *b) and the columns of the analytic Jacobian, (df/db1, ..., df/dbk), from
# each file's formula. Arithmetic outside a model's domain gives NaN/inf silently: the fitter reports it.
# --------------------------------------------------------------------------------------------

def _exponential_rise(x, b1, b2):  # Misra1a, BoxBOD
    return b1 * (1.0 - np.exp(-b2 * x))


def _exponential_rise_jac(x, b1, b2):
    e = np.exp(-b2 * x)
    return (1.0 - e, b1 * x * e)


def _chwirut(x, b1, b2, b3):
    return np.exp(-b1 * x) / (b2 + b3 * x)


def _chwirut_jac(x, b1, b2, b3):
    e = np.exp(-b1 * x)
    d = b2 + b3 * x
    return (-x * e / d, -e / d**2, -x * e / d**2)


def _danwood(x, b1, b2):
    return b1 * x**b2


def _danwood_jac(x, b1, b2):
    p = x**b2
    return (p, b1 * p * np.log(x))


def _enso(x, b1, b2, b3, b4, b5, b6, b7, b8, b9):
    a = 2.0 * np.pi * x
    return (b1 + b2 * np.cos(a / 12) + b3 * np.sin(a / 12)
            + b5 * np.cos(a / b4) + b6 * np.sin(a / b4)
            + b8 * np.cos(a / b7) + b9 * np.sin(a / b7))


def _enso_jac(x, b1, b2, b3, b4, b5, b6, b7, b8, b9):
    a = 2.0 * np.pi * x
    a4, a7 = a / b4, a / b7
    c4, s4, c7, s7 = np.cos(a4), np.sin(a4), np.cos(a7), np.sin(a7)
    # d(a/b)/db = -(a/b)/b
    return (1.0, np.cos(a / 12), np.sin(a / 12),
                    (b5 * s4 - b6 * c4) * a4 / b4, c4, s4,
                    (b8 * s7 - b9 * c7) * a7 / b7, c7, s7)


def _eckerle4(x, b1, b2, b3):
    return (b1 / b2) * np.exp(-0.5 * ((x - b3) / b2) ** 2)


def _eckerle4_jac(x, b1, b2, b3):
    u = (x - b3) / b2
    e = np.exp(-0.5 * u**2)
    return (e / b2, b1 * e * (u**2 - 1.0) / b2**2, b1 * e * u / b2**2)


def _gauss(x, b1, b2, b3, b4, b5, b6, b7, b8):
    return (b1 * np.exp(-b2 * x) + b3 * np.exp(-((x - b4) ** 2) / b5**2)
            + b6 * np.exp(-((x - b7) ** 2) / b8**2))


def _gauss_jac(x, b1, b2, b3, b4, b5, b6, b7, b8):
    e = np.exp(-b2 * x)
    d1, d2 = x - b4, x - b7
    g1, g2 = np.exp(-(d1**2) / b5**2), np.exp(-(d2**2) / b8**2)
    return (e, -b1 * x * e,
                    g1, 2.0 * b3 * g1 * d1 / b5**2, 2.0 * b3 * g1 * d1**2 / b5**3,
                    g2, 2.0 * b6 * g2 * d2 / b8**2, 2.0 * b6 * g2 * d2**2 / b8**3)


def _cubic_rational(x, b1, b2, b3, b4, b5, b6, b7):  # Hahn1, Thurber
    return (b1 + x * (b2 + x * (b3 + x * b4))) / (1.0 + x * (b5 + x * (b6 + x * b7)))


def _cubic_rational_jac(x, b1, b2, b3, b4, b5, b6, b7):
    n = b1 + x * (b2 + x * (b3 + x * b4))
    d = 1.0 + x * (b5 + x * (b6 + x * b7))
    q = -n / d**2
    return (1.0 / d, x / d, x**2 / d, x**3 / d, q * x, q * x**2, q * x**3)


def _kirby2(x, b1, b2, b3, b4, b5):
    return (b1 + x * (b2 + x * b3)) / (1.0 + x * (b4 + x * b5))


def _kirby2_jac(x, b1, b2, b3, b4, b5):
    n = b1 + x * (b2 + x * b3)
    d = 1.0 + x * (b4 + x * b5)
    q = -n / d**2
    return (1.0 / d, x / d, x**2 / d, q * x, q * x**2)


def _lanczos(x, b1, b2, b3, b4, b5, b6):
    return b1 * np.exp(-b2 * x) + b3 * np.exp(-b4 * x) + b5 * np.exp(-b6 * x)


def _lanczos_jac(x, b1, b2, b3, b4, b5, b6):
    e2, e4, e6 = np.exp(-b2 * x), np.exp(-b4 * x), np.exp(-b6 * x)
    return (e2, -b1 * x * e2, e4, -b3 * x * e4, e6, -b5 * x * e6)


def _mgh09(x, b1, b2, b3, b4):
    return b1 * (x**2 + x * b2) / (x**2 + x * b3 + b4)


def _mgh09_jac(x, b1, b2, b3, b4):
    n = x**2 + x * b2
    d = x**2 + x * b3 + b4
    return (n / d, b1 * x / d, -b1 * n * x / d**2, -b1 * n / d**2)


def _mgh10(x, b1, b2, b3):
    return b1 * np.exp(b2 / (x + b3))


def _mgh10_jac(x, b1, b2, b3):
    s = x + b3
    e = np.exp(b2 / s)
    return (e, b1 * e / s, -b1 * b2 * e / s**2)


def _mgh17(x, b1, b2, b3, b4, b5):
    return b1 + b2 * np.exp(-x * b4) + b3 * np.exp(-x * b5)


def _mgh17_jac(x, b1, b2, b3, b4, b5):
    e4, e5 = np.exp(-x * b4), np.exp(-x * b5)
    return (1.0, e4, e5, -b2 * x * e4, -b3 * x * e5)


def _misra1b(x, b1, b2):
    return b1 * (1.0 - (1.0 + b2 * x / 2) ** -2)


def _misra1b_jac(x, b1, b2):
    s = 1.0 + b2 * x / 2
    return (1.0 - s**-2, b1 * x * s**-3)


def _misra1c(x, b1, b2):
    return b1 * (1.0 - (1.0 + 2 * b2 * x) ** -0.5)


def _misra1c_jac(x, b1, b2):
    s = 1.0 + 2 * b2 * x
    return (1.0 - s**-0.5, b1 * x * s**-1.5)


def _misra1d(x, b1, b2):
    return b1 * b2 * x / (1.0 + b2 * x)


def _misra1d_jac(x, b1, b2):
    s = 1.0 + b2 * x
    return (b2 * x / s, b1 * x / s**2)


def _nelson(x, b1, b2, b3):  # x = (x1, x2) of shape (2, m); the response is log(y)
    x1, x2 = x[0], x[1]
    return b1 - b2 * x1 * np.exp(-b3 * x2)


def _nelson_jac(x, b1, b2, b3):
    x1, x2 = x[0], x[1]
    e = np.exp(-b3 * x2)
    return (1.0, -x1 * e, b2 * x1 * x2 * e)


def _rat42(x, b1, b2, b3):
    return b1 / (1.0 + np.exp(b2 - b3 * x))


def _rat42_jac(x, b1, b2, b3):
    e = np.exp(b2 - b3 * x)
    s = 1.0 + e
    return (1.0 / s, -b1 * e / s**2, b1 * x * e / s**2)


def _rat43(x, b1, b2, b3, b4):
    return b1 / (1.0 + np.exp(b2 - b3 * x)) ** (1.0 / b4)


def _rat43_jac(x, b1, b2, b3, b4):
    e = np.exp(b2 - b3 * x)
    s = 1.0 + e
    p = s ** (-1.0 / b4)
    q = b1 * p * e / (b4 * s)  # b1 e s^(-1/b4 - 1) / b4
    return (p, -q, x * q, b1 * p * np.log(s) / b4**2)


def _roszman1(x, b1, b2, b3, b4):
    return b1 - b2 * x - np.arctan(b3 / (x - b4)) / np.pi


def _roszman1_jac(x, b1, b2, b3, b4):
    d = x - b4
    # d arctan(b3/d) = (d db3 + b3 db4) / (d^2 + b3^2)
    w = np.pi * (d**2 + b3**2)
    return (1.0, -x, -d / w, -b3 / w)


def _bennett5(x, b1, b2, b3):
    return b1 * (b2 + x) ** (-1.0 / b3)


def _bennett5_jac(x, b1, b2, b3):
    s = b2 + x
    p = s ** (-1.0 / b3)
    return (p, -b1 * p / (b3 * s), b1 * p * np.log(s) / b3**2)


# name -> (model, Jacobian columns, formula as printed in the file)
_MODELS: dict[str, tuple[Callable, Callable, str]] = {}


def _register(names: Iterable[str], f: Callable, jac: Callable, formula: str) -> None:
    for name in names:
        _MODELS[name] = (f, jac, formula)


_register(["Misra1a", "BoxBOD"], _exponential_rise, _exponential_rise_jac, "y = b1*(1-exp[-b2*x])")
_register(["Chwirut1", "Chwirut2"], _chwirut, _chwirut_jac, "y = exp[-b1*x]/(b2+b3*x)")
_register(["DanWood"], _danwood, _danwood_jac, "y = b1*x**b2")
_register(["ENSO"], _enso, _enso_jac,
          "y = b1 + b2*cos(2*pi*x/12) + b3*sin(2*pi*x/12) + b5*cos(2*pi*x/b4) + b6*sin(2*pi*x/b4)"
          " + b8*cos(2*pi*x/b7) + b9*sin(2*pi*x/b7)")
_register(["Eckerle4"], _eckerle4, _eckerle4_jac, "y = (b1/b2) * exp[-0.5*((x-b3)/b2)**2]")
_register(["Gauss1", "Gauss2", "Gauss3"], _gauss, _gauss_jac,
          "y = b1*exp(-b2*x) + b3*exp(-(x-b4)**2/b5**2) + b6*exp(-(x-b7)**2/b8**2)")
_register(["Hahn1", "Thurber"], _cubic_rational, _cubic_rational_jac,
          "y = (b1+b2*x+b3*x**2+b4*x**3) / (1+b5*x+b6*x**2+b7*x**3)")
_register(["Kirby2"], _kirby2, _kirby2_jac, "y = (b1 + b2*x + b3*x**2) / (1 + b4*x + b5*x**2)")
_register(["Lanczos1", "Lanczos2", "Lanczos3"], _lanczos, _lanczos_jac,
          "y = b1*exp(-b2*x) + b3*exp(-b4*x) + b5*exp(-b6*x)")
_register(["MGH09"], _mgh09, _mgh09_jac, "y = b1*(x**2+x*b2) / (x**2+x*b3+b4)")
_register(["MGH10"], _mgh10, _mgh10_jac, "y = b1 * exp[b2/(x+b3)]")
_register(["MGH17"], _mgh17, _mgh17_jac, "y = b1 + b2*exp[-x*b4] + b3*exp[-x*b5]")
_register(["Misra1b"], _misra1b, _misra1b_jac, "y = b1 * (1-(1+b2*x/2)**(-2))")
_register(["Misra1c"], _misra1c, _misra1c_jac, "y = b1 * (1-(1+2*b2*x)**(-.5))")
_register(["Misra1d"], _misra1d, _misra1d_jac, "y = b1*b2*x*((1+b2*x)**(-1))")
_register(["Nelson"], _nelson, _nelson_jac, "log[y] = b1 - b2*x1 * exp[-b3*x2]")
_register(["Rat42"], _rat42, _rat42_jac, "y = b1 / (1+exp[b2-b3*x])")
_register(["Rat43"], _rat43, _rat43_jac, "y = b1 / ((1+exp[b2-b3*x])**(1/b4))")
_register(["Roszman1"], _roszman1, _roszman1_jac, "y = b1 - b2*x - arctan[b3/(x-b4)]/pi")
_register(["Bennett5"], _bennett5, _bennett5_jac, "y = b1 * (b2+x)**(-1/b3)")


def _stacked(columns_of: Callable) -> Callable:
    """fit's Jacobian convention, ``(m, nparams)``, from a function returning the columns."""
    def jac(x, *b):
        values = columns_of(x, *b)
        shape = np.broadcast_shapes(*(np.shape(v) for v in values))
        return np.stack([np.broadcast_to(v, shape) for v in values], axis=-1)
    jac.__name__ = columns_of.__name__
    return jac


def _quiet(function: Callable) -> Callable:
    """Wrap a model so that leaving its domain gives NaN/inf without RuntimeWarnings."""
    def wrapped(x, *b):
        with np.errstate(all="ignore"):
            return function(x, *b)
    wrapped.__name__ = function.__name__.lstrip("_")
    wrapped.__qualname__ = wrapped.__name__
    wrapped.__doc__ = function.__doc__
    return wrapped


# --------------------------------------------------------------------------------------------
# Problems and their loading
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class NistProblem:
    """One NIST StRD nonlinear regression problem.

    Attributes
    ----------
    name : str
        Dataset name, e.g. ``"Misra1a"``.
    difficulty : str
        ``"lower"``, ``"average"`` or ``"higher"`` (NIST's level of difficulty).
    x : ndarray
        Predictor, shape ``(m,)``; ``(2, m)`` for Nelson (rows ``x1``, ``x2``).
    y : ndarray
        Response that the model fits, shape ``(m,)``. For Nelson this is ``log(y_raw)``.
    y_raw : ndarray
        Response as printed in the file.
    start1, start2 : ndarray
        NIST's two starting points (Start 1 is the harder, farther one).
    certified_params, certified_stderr : ndarray
        Certified parameter values and their standard deviations.
    certified_rss : float
        Certified residual sum of squares (of ``y``, so in log space for Nelson).
    certified_rsd : float
        Certified residual standard deviation.
    dof : int
        Degrees of freedom (observations minus parameters).
    formula : str
        The model as written in the file.
    f : callable
        ``f(x, *b) -> (m,)`` model values (NumPy; NaN/inf outside its domain, without warnings).
    jac : callable
        ``jac(x, *b) -> (m, nparams)`` analytic Jacobian of ``f`` with respect to ``b`` (the
        convention of :func:`fastcalc.fit` and ``curve_fit``).
    jac_columns : callable
        ``jac_columns(x, *b) -> tuple`` of the ``nparams`` derivatives ``df/db_k``, each
        broadcasting like ``f`` (the convention of :func:`fastcalc.fit_batch`, where ``b`` are
        ``(N, 1)`` columns).
    note : str
        Remarks on how the problem is posed (e.g. Nelson's logarithm), empty otherwise.
    """

    name: str
    difficulty: str
    x: np.ndarray
    y: np.ndarray
    y_raw: np.ndarray
    start1: np.ndarray
    start2: np.ndarray
    certified_params: np.ndarray
    certified_stderr: np.ndarray
    certified_rss: float
    certified_rsd: float
    dof: int
    formula: str
    f: Callable = field(repr=False)
    jac: Callable = field(repr=False)
    jac_columns: Callable = field(repr=False)
    note: str = ""

    @property
    def nparams(self) -> int:
        """Number of model parameters."""
        return int(self.certified_params.size)

    @property
    def npoints(self) -> int:
        """Number of observations."""
        return int(self.y.size)

    def start(self, which: int) -> np.ndarray:
        """Starting point 1 or 2 (a copy)."""
        if which not in (1, 2):
            raise ValueError(f"which must be 1 or 2, got {which!r}")
        return (self.start1 if which == 1 else self.start2).copy()

    def residuals(self, params: ArrayLike) -> np.ndarray:
        """Residuals ``y - f(x, *params)``."""
        return self.y - self.f(self.x, *np.asarray(params, dtype=float))

    def rss(self, params: ArrayLike) -> float:
        """Residual sum of squares at ``params``."""
        r = self.residuals(params)
        return float(r @ r)

    def lre(self, params: ArrayLike) -> np.ndarray:
        """Log relative error of each of ``params`` against the certified values."""
        return np.asarray(lre(params, self.certified_params))

    def min_lre(self, params: ArrayLike) -> float:
        """The score of a fit: the smallest LRE over the parameters."""
        return float(np.min(self.lre(params)))


def default_directory() -> Path:
    """The StRD folder: ``FASTCALC_NIST_DIR`` when set, else the copy shipped with the package.

    Raises
    ------
    FileNotFoundError
        ``FASTCALC_NIST_DIR`` names no directory (an override that is silently ignored would
        score other data than meant), or the package's own copy is missing (a broken install).

    Examples
    --------
    >>> from fastcalc import nist
    >>> nist.default_directory().name
    'nist_strd'
    """
    env = os.environ.get(_ENV_VARIABLE)
    if env:
        if not Path(env).is_dir():
            raise FileNotFoundError(f"{_ENV_VARIABLE}={env} is not a directory (unset it to use "
                                    f"the data shipped with fastcalc)")
        return Path(env).resolve()
    if not _PACKAGED_DATA.is_dir():
        raise FileNotFoundError(f"NIST StRD data folder not found: {_PACKAGED_DATA} (fastcalc "
                                f"installed without its package data?); set {_ENV_VARIABLE} or "
                                "pass directory=.")
    return _PACKAGED_DATA


def _directory(directory: str | os.PathLike | None) -> Path:
    if directory is None:
        return default_directory()
    path = Path(directory)
    if not path.is_dir():
        raise FileNotFoundError(f"NIST StRD data folder not found: {path}")
    return path


_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_PARAM_LINE = re.compile(rf"^\s*b(\d+)\s*=\s*({_NUMBER})\s+({_NUMBER})\s+({_NUMBER})\s+({_NUMBER})\s*$")


def _labelled_value(text: str, label: str, path: Path) -> float:
    match = re.search(rf"^\s*{label}:\s*({_NUMBER})\s*$", text, re.MULTILINE)
    if match is None:
        raise ValueError(f"{path}: no '{label}:' line")
    return float(match.group(1))


def _parse(path: Path) -> dict[str, Any]:
    text = path.read_text()
    lines = text.splitlines()

    difficulty = re.search(r"(Lower|Average|Higher) Level of Difficulty", text)
    if difficulty is None:
        raise ValueError(f"{path}: no level of difficulty")

    rows = []
    for line in lines:
        match = _PARAM_LINE.match(line)
        if match:
            rows.append([float(v) for v in match.groups()])
    if not rows or [int(r[0]) for r in rows] != list(range(1, len(rows) + 1)):
        raise ValueError(f"{path}: parameter lines b1..bk with start 1, start 2, value, "
                         f"standard deviation not found")
    table = np.array(rows)[:, 1:]

    # the data section starts after the last "Data:" line, the one naming the columns
    header = max(i for i, line in enumerate(lines) if line.startswith("Data:"))
    columns = lines[header].split(":", 1)[1].split()
    data = np.array([[float(v) for v in line.split()] for line in lines[header + 1:] if line.strip()])
    if data.ndim != 2 or data.shape[1] != len(columns):
        raise ValueError(f"{path}: data rows do not have the {len(columns)} columns {columns}")

    nobs = int(_labelled_value(text, "Number of Observations", path))
    if data.shape[0] != nobs:
        raise ValueError(f"{path}: {data.shape[0]} data rows, header says {nobs}")
    return {
        "difficulty": difficulty.group(1).lower(),
        "start1": table[:, 0].copy(), "start2": table[:, 1].copy(),
        "certified_params": table[:, 2].copy(), "certified_stderr": table[:, 3].copy(),
        "certified_rss": _labelled_value(text, "Residual Sum of Squares", path),
        "certified_rsd": _labelled_value(text, "Residual Standard Deviation", path),
        # observations minus parameters; not the file's "Degrees of Freedom" line, which is wrong
        # for Rat43 (9 instead of 11; its certified residual standard deviation uses 11)
        "dof": nobs - table.shape[0],
        "columns": columns, "data": data,
    }


def _read_only(a: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(a, dtype=np.float64)
    a.flags.writeable = False
    return a


def load(name: str, directory: str | os.PathLike | None = None) -> NistProblem:
    """Load one StRD problem by name (case-insensitive), e.g. ``"Misra1a"``.

    Parameters
    ----------
    name : str
        One of :data:`NIST_PROBLEMS`.
    directory : path-like, optional
        Folder holding the ``.dat`` files; default :func:`default_directory`.

    Returns
    -------
    NistProblem
        Arrays in it are read-only.

    Examples
    --------
    >>> from fastcalc import nist
    >>> p = nist.load("Misra1a")
    >>> p.npoints, p.nparams, p.difficulty
    (14, 2, 'lower')
    >>> round(p.rss(p.certified_params) / p.certified_rss, 8)
    1.0
    """
    lookup = {n.lower(): n for n in NIST_PROBLEMS}
    canonical = lookup.get(str(name).lower())
    if canonical is None:
        raise ValueError(f"unknown NIST StRD problem {name!r}; expected one of {', '.join(NIST_PROBLEMS)}")
    path = _directory(directory) / f"{canonical}.dat"
    if not path.is_file():
        raise FileNotFoundError(f"NIST StRD file not found: {path}")
    parsed = _parse(path)
    f, jac, formula = _MODELS[canonical]
    data = parsed["data"]
    y_raw = data[:, 0]
    note = ""
    if canonical == "Nelson":
        x = data[:, 1:3].T  # (2, m): rows x1 (time), x2 (temperature)
        y = np.log(y_raw)
        note = "the model is log(y) = ...: y holds log(y_raw); the certified RSS is in log space"
    else:
        x = data[:, 1]
        y = y_raw
    nparams = parsed["certified_params"].size
    if f.__code__.co_argcount - 1 != nparams:
        raise ValueError(f"{path}: {nparams} parameters in the file, the model takes "
                         f"{f.__code__.co_argcount - 1}")
    return NistProblem(
        name=canonical, difficulty=parsed["difficulty"],
        x=_read_only(x), y=_read_only(y), y_raw=_read_only(y_raw),
        start1=_read_only(parsed["start1"]), start2=_read_only(parsed["start2"]),
        certified_params=_read_only(parsed["certified_params"]),
        certified_stderr=_read_only(parsed["certified_stderr"]),
        certified_rss=parsed["certified_rss"], certified_rsd=parsed["certified_rsd"],
        dof=parsed["dof"], formula=formula, f=_quiet(f), jac=_quiet(_stacked(jac)),
        jac_columns=_quiet(jac), note=note)


def load_all(directory: str | os.PathLike | None = None, *, verify: bool = False) -> list[NistProblem]:
    """Load the 27 StRD problems, in NIST's order (lower, average, higher difficulty).

    With ``verify=True`` the files are first checked against the folder's ``SHA256SUMS``
    (:func:`verify_checksums`); a mismatch raises ``ValueError`` naming the files.

    Examples
    --------
    >>> from fastcalc import nist
    >>> problems = nist.load_all(verify=True)
    >>> len(problems), problems[0].name
    (27, 'Misra1a')
    """
    folder = _directory(directory)
    if verify:
        bad = sorted(name for name, ok in verify_checksums(folder).items() if not ok)
        if bad:
            raise ValueError(f"SHA-256 mismatch in {folder}: {', '.join(bad)}")
    return [load(name, folder) for name in NIST_PROBLEMS]


def verify_checksums(directory: str | os.PathLike | None = None) -> dict[str, bool]:
    """Check the ``.dat`` files against the folder's ``SHA256SUMS``.

    Returns
    -------
    dict
        File name -> whether its SHA-256 matches. Raises ``FileNotFoundError`` when
        ``SHA256SUMS`` or a listed file is missing.

    Examples
    --------
    >>> from fastcalc import nist
    >>> all(nist.verify_checksums().values())
    True
    """
    folder = _directory(directory)
    sums = folder / "SHA256SUMS"
    if not sums.is_file():
        raise FileNotFoundError(f"checksum file not found: {sums}")
    result = {}
    for line in sums.read_text().splitlines():
        if not line.strip():
            continue
        digest, filename = line.split(maxsplit=1)
        filename = filename.lstrip("*").strip()
        path = folder / filename
        if not path.is_file():
            raise FileNotFoundError(f"{filename} is listed in {sums} but missing")
        result[filename] = hashlib.sha256(path.read_bytes()).hexdigest() == digest.lower()
    return result


# --------------------------------------------------------------------------------------------
# Scoring
# --------------------------------------------------------------------------------------------

def lre(estimate: Any, certified: Any, digits: float = CERTIFIED_DIGITS) -> np.ndarray | float:
    """Log relative error: the number of correct significant digits of ``estimate``.

    ``-log10(|estimate - certified| / |certified|)``, or ``-log10(|estimate - certified|)`` where the
    certified value is 0; clipped to ``[0, digits]`` (``digits`` for an exact match, 0 for a
    non-finite estimate).

    Examples
    --------
    >>> from fastcalc.nist import lre
    >>> float(lre(1.0001, 1.0))
    4.0
    >>> [round(float(v), 3) for v in lre([2.0, 1.0, 1e-6], [2.0, 1.5, 0.0])]
    [11.0, 0.477, 6.0]
    """
    est = np.asarray(estimate, dtype=float)
    cert = np.asarray(certified, dtype=float)
    if est.shape != cert.shape and est.size != 1 and cert.size != 1:
        raise ValueError(f"estimate shape {est.shape} does not match certified shape {cert.shape}")
    err = np.abs(est - cert)
    scale = np.where(cert == 0, 1.0, np.abs(cert))
    with np.errstate(divide="ignore", invalid="ignore"):
        value = -np.log10(err / scale)
    value = np.where(np.isfinite(est), np.clip(np.nan_to_num(value, posinf=digits), 0.0, digits), 0.0)
    return float(value) if value.ndim == 0 else value


def _outcome(params: Any, *, success: bool, status: Any = None, nit: Any = None, nfev: Any = None,
             message: str = "", warned: bool = False, stderr: Any = None) -> dict[str, Any]:
    return {"params": np.asarray(params, dtype=float), "success": bool(success), "status": status,
            "nit": nit, "nfev": nfev, "message": message, "warned": warned,
            "stderr": None if stderr is None else np.asarray(stderr, dtype=float)}


def fastcalc_fitter(problem: NistProblem, p0: np.ndarray, **options: Any) -> dict[str, Any]:
    """Fit ``problem`` from ``p0`` with :func:`fastcalc.fit` and its analytic Jacobian.

    Keyword ``options`` go to ``fastcalc.fit``; ``jac=None`` uses finite differences.
    Returns the outcome dictionary that :func:`score_all` expects.
    """
    from fastcalc import fit  # imported late: the fitting module is optional for loading data

    options.setdefault("jac", problem.jac)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = fit(problem.f, problem.x, problem.y, p0=p0, **options)
    return _outcome(result.params, success=result.success, status=int(result.status),
                    nit=getattr(result, "nit", None), nfev=getattr(result, "nfev", None),
                    message=str(getattr(result, "message", "")), warned=bool(caught),
                    stderr=getattr(result, "stderr", None))


def curve_fit_fitter(problem: NistProblem, p0: np.ndarray, *, use_jac: bool = True,
                     **options: Any) -> dict[str, Any]:
    """Fit ``problem`` from ``p0`` with :func:`scipy.optimize.curve_fit` (the reference).

    Default method (MINPACK ``lmder``) with the analytic Jacobian when ``use_jac``. A
    ``RuntimeError`` (no convergence) becomes ``success=False`` with NaN parameters.
    """
    from scipy.optimize import curve_fit  # type: ignore[import-untyped]

    kwargs = dict(options)
    if use_jac:
        kwargs.setdefault("jac", problem.jac)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            popt, pcov, info, message, ier = curve_fit(
                problem.f, problem.x, problem.y, p0=p0, full_output=True, **kwargs)
        except (RuntimeError, ValueError) as error:
            return _outcome(np.full(problem.nparams, np.nan), success=False, status="error",
                            message=str(error), warned=True)
    nfev = info.get("nfev") if isinstance(info, Mapping) else None
    with np.errstate(invalid="ignore"):
        stderr = np.sqrt(np.diag(pcov))
    return _outcome(popt, success=ier in (1, 2, 3, 4), status=int(ier), nfev=nfev,
                    message=str(message), warned=bool(caught), stderr=stderr)


def score_all(fitter: Callable[[NistProblem, np.ndarray], Any] | None = None,
              problems: Iterable[NistProblem] | None = None, *, starts: Sequence[int] = (1, 2),
              directory: str | os.PathLike | None = None, label: str | None = None) -> list[dict]:
    """Run a fitter on every StRD problem from each start and score it by LRE.

    Parameters
    ----------
    fitter : callable, optional
        ``fitter(problem, p0)`` returning either the dictionary of :func:`fastcalc_fitter` /
        :func:`curve_fit_fitter` or an object with ``params`` (and optionally ``success``,
        ``status``, ``nit``, ``nfev``, ``message``, ``stderr``). Default :func:`fastcalc_fitter`. An exception
        it raises is recorded in the row (``success=False``, ``error``), never propagated.
    problems : iterable of NistProblem, optional
        Default :func:`load_all` from ``directory``.
    starts : sequence of {1, 2}
    label : str, optional
        Stored in each row's ``fitter`` field (default the fitter's name).

    Returns
    -------
    list of dict
        One row per problem and start with ``fitter``, ``problem``, ``difficulty``, ``start``,
        ``lre`` (min over parameters), ``lre_params``, ``lre_rss``, ``lre_stderr`` (min over the
        standard errors when the fitter reports them, else None), ``success``, ``status``,
        ``nit``, ``nfev``, ``message``, ``warned``, ``solved`` (``lre >= 4``), ``silent_failure``
        (reported a success without warning although ``lre < 4``), ``seconds`` (wall time of the
        fitter call, including first-call costs such as a lazy import) and ``error``.

    Examples
    --------
    >>> from fastcalc import nist
    >>> rows = nist.score_all(nist.curve_fit_fitter, [nist.load("Misra1a")])
    >>> [(r["start"], r["solved"]) for r in rows]
    [(1, True), (2, True)]
    """
    if fitter is None:
        fitter = fastcalc_fitter
    if problems is None:
        problems = load_all(directory)
    name = label or getattr(fitter, "__name__", type(fitter).__name__)
    rows = []
    for problem in problems:
        for which in starts:
            started = time.perf_counter()
            error = ""
            try:
                outcome = fitter(problem, problem.start(which))
                if not isinstance(outcome, Mapping):
                    outcome = _outcome(
                        outcome.params, success=getattr(outcome, "success", True),
                        status=getattr(outcome, "status", None), nit=getattr(outcome, "nit", None),
                        nfev=getattr(outcome, "nfev", None),
                        message=str(getattr(outcome, "message", "")),
                        stderr=getattr(outcome, "stderr", None))
            except Exception as exc:  # recorded per problem: one failure must not stop the table
                error = f"{type(exc).__name__}: {exc}"
                outcome = _outcome(np.full(problem.nparams, np.nan), success=False, status="error",
                                   message=error, warned=True)
            seconds = time.perf_counter() - started
            params = np.asarray(outcome["params"], dtype=float)
            if params.shape != problem.certified_params.shape:
                error = error or f"fitter returned {params.shape[0] if params.ndim else 0} params"
                params = np.full(problem.nparams, np.nan)
            lre_params = problem.lre(params)
            best = float(np.min(lre_params))
            with np.errstate(all="ignore"):
                rss = problem.rss(params)
            stderr = outcome.get("stderr")
            lre_stderr = None
            if stderr is not None and np.shape(stderr) == problem.certified_stderr.shape:
                lre_stderr = float(np.min(lre(stderr, problem.certified_stderr)))
            success = bool(outcome.get("success", True))
            warned = bool(outcome.get("warned", False))
            rows.append({
                "fitter": name, "problem": problem.name, "difficulty": problem.difficulty,
                "start": which, "lre": best, "lre_params": lre_params.tolist(),
                "lre_rss": float(lre(rss, problem.certified_rss)), "lre_stderr": lre_stderr,
                "success": success, "status": outcome.get("status"), "nit": outcome.get("nit"),
                "nfev": outcome.get("nfev"), "message": outcome.get("message", ""),
                "warned": warned, "solved": best >= 4.0,
                "silent_failure": success and not warned and best < 4.0,
                "seconds": seconds, "error": error,
            })
    return rows


def compare_with_curve_fit(problems: Iterable[NistProblem] | None = None, *,
                           directory: str | os.PathLike | None = None,
                           analytic_jacobian: bool = True) -> list[dict]:
    """The full LRE table: :func:`fastcalc.fit` and ``curve_fit``, both starts, same run.

    Both fitters get the same Jacobian information: the problem's analytic Jacobian when
    ``analytic_jacobian`` (fastcalc ``jac=problem.jac``, MINPACK ``lmder``), else their own finite
    differences (fastcalc ``jac=None``, MINPACK ``lmdif``). Rows as :func:`score_all`, fitters
    labelled ``"fastcalc"`` and ``"curve_fit"``.

    Examples
    --------
    >>> from fastcalc import nist
    >>> rows = nist.compare_with_curve_fit([nist.load("Misra1a")])
    >>> sorted(nist.summarize(rows).items())
    [(('curve_fit', 1), 1), (('curve_fit', 2), 1), (('fastcalc', 1), 1), (('fastcalc', 2), 1)]
    """
    import scipy.optimize  # type: ignore[import-untyped]  # noqa: F401  (before any timing)

    problems = list(load_all(directory) if problems is None else problems)

    def fastcalc_fit(problem, p0):
        return fastcalc_fitter(problem, p0, jac=problem.jac if analytic_jacobian else None)

    def curve_fit_fit(problem, p0):
        return curve_fit_fitter(problem, p0, use_jac=analytic_jacobian)

    return (score_all(fastcalc_fit, problems, label="fastcalc")
            + score_all(curve_fit_fit, problems, label="curve_fit"))


def summarize(rows: Iterable[Mapping[str, Any]], threshold: float = 4.0) -> dict[tuple[str, int], int]:
    """Count problems solved (min LRE >= ``threshold``) per ``(fitter, start)``.

    Examples
    --------
    >>> from fastcalc.nist import summarize
    >>> summarize([{"fitter": "a", "start": 1, "lre": 5.0}, {"fitter": "a", "start": 1, "lre": 2.0}])
    {('a', 1): 1}
    """
    counts: dict[tuple[str, int], int] = {}
    for row in rows:
        key = (row["fitter"], row["start"])
        counts[key] = counts.get(key, 0) + int(row["lre"] >= threshold)
    return counts


def format_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """Plain-text table of :func:`score_all` rows (problem x fitter x start)."""
    header = f"{'problem':<10} {'diff':<8} {'fitter':<18} {'start':>5} {'LRE':>6} {'RSS LRE':>7} " \
             f"{'nit':>5} {'nfev':>5} {'status':>8} {'ok':>3} {'ms':>8}"
    lines = [header, "-" * len(header)]
    for r in rows:
        nit = "" if r["nit"] is None else str(r["nit"])
        nfev = "" if r["nfev"] is None else str(r["nfev"])
        lines.append(
            f"{r['problem']:<10} {r['difficulty']:<8} {r['fitter']:<18} {r['start']:>5} "
            f"{r['lre']:>6.1f} {r['lre_rss']:>7.1f} {nit:>5} {nfev:>5} {str(r['status']):>8} "
            f"{'y' if r['success'] else 'n':>3} {1e3 * r['seconds']:>8.2f}")
    return "\n".join(lines)


