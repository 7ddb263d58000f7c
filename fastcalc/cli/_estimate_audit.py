"""Honesty audit of the error estimates of :mod:`fastcalc.differentiate` (``full_output=True``).

A set of cases with known derivatives: elementary functions (exp, log, sin, sqrt, powers, a
rational function, tanh, atan, exp(sin x)) at points from 1e-8 to 1e8, differentiated
elementwise (:func:`derivative`), as one coordinate of a 2-D scalar field (:func:`gradient`,
:func:`hessian`) and of a vector field (:func:`jacobian`), without bounds and with bounds at
the edge of the domain, near ``x`` on one side, and tight on both sides.

A component is *dishonest* when its status is 0 and its error exceeds its estimate:
``|df - exact| > error + 4 eps |exact|`` (the last term allows for the rounding of the exact
value itself), or when df or its estimate is not finite with status 0. A non-zero status
says that the value or its estimate is not to be trusted, so it is honest whatever the
error; how often it occurs is reported beside the rate. The rate is over the status-0
components.
"""
import math
from dataclasses import dataclass, field

import numpy as np

__all__ = ["METHODS", "Tally", "audit", "cases", "format_tallies"]

_EPS = np.finfo(np.float64).eps
METHODS = ("central", "forward", "backward", "complex", "richardson")


def _power(p):
    return (lambda x: x ** p, lambda x: p * x ** (p - 1), lambda x: p * (p - 1) * x ** (p - 2))


# name, f, f', f'', lower end of the domain (None: the real line), points
_FUNCTIONS = [
    ("exp", np.exp, np.exp, np.exp, None,
     [-300.0, -30.0, -3.0, -0.5, -1e-4, -1e-8, 0.0, 1e-8, 1e-4, 0.5, 3.0, 30.0, 300.0]),
    ("log", np.log, lambda x: 1.0 / x, lambda x: -1.0 / x ** 2, 0.0,
     [1e-8, 1e-6, 1e-4, 1e-2, 0.5, 1.0, 3.0, 1e2, 1e4, 1e6, 1e8]),
    ("sin", np.sin, np.cos, lambda x: -np.sin(x), None,
     [-1e2, -3.0, 1e-8, 1e-4, 0.5, 2.0, 30.0, 1e3, 1e4, 1e6, 1e8]),
    ("sqrt", np.sqrt, lambda x: 0.5 / np.sqrt(x), lambda x: -0.25 / x ** 1.5, 0.0,
     [1e-8, 1e-6, 1e-4, 1e-2, 0.5, 2.0, 1e2, 1e4, 1e6, 1e8]),
    ("x**3", *_power(3), None,
     [-1e8, -1e4, -2.0, -1e-4, 1e-8, 0.5, 3.0, 1e2, 1e4, 1e8]),
    ("x**-2", *_power(-2), None,
     [-1e4, -1.5, -1e-3, 1e-8, 1e-5, 1e-2, 0.5, 3.0, 1e2, 1e4, 1e8]),
    ("x**2.5", *_power(2.5), 0.0, [1e-8, 1e-4, 0.5, 3.0, 1e4, 1e8]),
    ("1/(1+x**2)", lambda x: 1.0 / (1.0 + x ** 2), lambda x: -2.0 * x / (1.0 + x ** 2) ** 2,
     lambda x: (6.0 * x ** 2 - 2.0) / (1.0 + x ** 2) ** 3, None,
     [-1e8, -1e2, -1.0, 0.0, 1e-8, 0.5, 3.0, 1e4, 1e8]),
    ("tanh", np.tanh, lambda x: 1.0 / np.cosh(x) ** 2,
     lambda x: -2.0 * np.tanh(x) / np.cosh(x) ** 2, None,
     [-20.0, -3.0, -0.5, 1e-8, 0.5, 1.0, 3.0, 20.0]),
    ("atan", np.arctan, lambda x: 1.0 / (1.0 + x ** 2),
     lambda x: -2.0 * x / (1.0 + x ** 2) ** 2, None,
     [-1e8, -1e4, -1.0, 1e-8, 0.5, 3.0, 1e4, 1e8]),
    ("exp(sin x)", lambda x: np.exp(np.sin(x)), lambda x: np.cos(x) * np.exp(np.sin(x)),
     lambda x: (np.cos(x) ** 2 - np.sin(x)) * np.exp(np.sin(x)), None,
     [-2.0, 0.3, 2.0, 1e2, 1e4]),
]
_Y = 0.7      # the second coordinate of the 2-D fields


@dataclass
class Case:
    """One function at one point, with the bounds of its first coordinate."""

    name: str
    f: object
    d1: object
    d2: object
    x: float
    bounds: tuple = None      # (lb, ub) of the first coordinate, or None
    label: str = "none"


def _near(x, distance):
    """A point ``distance`` below ``x`` (rounded towards ``x``, so strictly inside)."""
    lower = x - distance
    return lower if lower < x else np.nextafter(x, -np.inf)


def cases(every=1):
    """The cases: each function at each point without bounds, and for the scalar fields with
    bounds (``every``: keep every k-th case, for a cheap run)."""
    out = []
    for name, f, d1, d2, edge, points in _FUNCTIONS:
        for x in points:
            out.append(Case(name, f, d1, d2, x))
            scale = max(1.0, abs(x))
            if edge is not None:
                out.append(Case(name, f, d1, d2, x, (edge, math.inf), "domain edge"))
            out.append(Case(name, f, d1, d2, x, (_near(x, 1e-3 * scale), math.inf),
                            "lb at 1e-3 |x|"))
            out.append(Case(name, f, d1, d2, x, (-math.inf, x + 1e-7 * scale),
                            "ub at 1e-7 |x|"))
            out.append(Case(name, f, d1, d2, x, (_near(x, 3e-9 * scale), x + 2e-9 * scale),
                            "tight"))
    return out[::every]


@dataclass
class Tally:
    """Components of one routine and method: how many, how many with a non-zero status, how
    many dishonest (status 0 and an error above the estimate), and the worst such ratio."""

    routine: str
    method: str
    components: int = 0
    flagged: int = 0
    dishonest: int = 0
    worst: float = 0.0
    examples: list = field(default_factory=list)
    looseness: list = field(default_factory=list)    # estimate / error, status 0, error > 0

    @property
    def status0(self):
        return self.components - self.flagged

    @property
    def rate(self):
        return self.dishonest / self.status0 if self.status0 else 0.0

    def add(self, df, error, status, exact, label):
        df, error, exact = (np.atleast_1d(np.asarray(a, float)) for a in (df, error, exact))
        status = np.atleast_1d(status)
        with np.errstate(all="ignore"):
            actual = np.abs(df - exact)
            allowed = error + 4.0 * _EPS * np.abs(exact)
            bad = (status == 0) & ~(actual <= allowed)
            ratio = np.where(bad, actual / allowed, 0.0)
            loose = (status == 0) & (actual > 0) & np.isfinite(error)
            self.looseness.extend((error[loose] / actual[loose]).tolist())
        self.components += df.size
        self.flagged += int((status != 0).sum())
        self.dishonest += int(bad.sum())
        if bad.any():
            self.worst = max(self.worst, float(np.nanmax(np.where(np.isnan(ratio), np.inf,
                                                                  ratio))))
            if len(self.examples) < 5:
                self.examples.append(label)


def audit(routines=("derivative", "gradient", "jacobian", "hessian"), methods=METHODS,
          every=1):
    """Run the cases; returns a list of :class:`Tally`, one per routine and method."""
    from ..differentiate import derivative, gradient, hessian, jacobian
    tallies = []
    all_cases = cases(every)
    for routine in routines:
        for method in methods:
            if routine == "hessian" and method not in ("central", "richardson"):
                continue
            tally = Tally(routine, method)
            tallies.append(tally)
            if routine == "derivative":
                for name, f, d1, _, _, points in _FUNCTIONS:
                    points = np.array(points[::every] if every > 1 else points)
                    r = derivative(f, points, method=method, full_output=True)
                    tally.add(r.df, r.error, r.status, d1(points), f"{name}")
                continue
            for case in all_cases:
                if routine == "hessian" and case.bounds is not None:
                    continue      # (hessian takes no bounds)
                f, d1, d2, x = case.f, case.d1, case.d2, case.x
                point = np.array([x, _Y])
                bounds = None if case.bounds is None else (
                    [case.bounds[0], -math.inf], [case.bounds[1], math.inf])
                label = f"{case.name} at {x:g}, bounds {case.label}"
                if routine == "gradient":
                    r = gradient(lambda v: f(v[0]) * (1.0 + v[1] ** 2 / 4.0), point,
                                 method=method, bounds=bounds, full_output=True)
                    exact = [d1(x) * (1.0 + _Y ** 2 / 4.0), f(x) * _Y / 2.0]
                elif routine == "jacobian":
                    r = jacobian(lambda v: np.array([f(v[0]) + v[1], f(v[0]) * v[1]]), point,
                                 method=method, bounds=bounds, full_output=True)
                    exact = [[d1(x), 1.0], [d1(x) * _Y, f(x)]]
                else:
                    r = hessian(lambda v: f(v[0]) * (1.0 + v[1] ** 2 / 4.0), point,
                                method=method, full_output=True)
                    exact = [[d2(x) * (1.0 + _Y ** 2 / 4.0), d1(x) * _Y / 2.0],
                             [d1(x) * _Y / 2.0, f(x) / 2.0]]
                with np.errstate(all="ignore"):
                    exact = np.array(exact, dtype=float)
                if not np.isfinite(exact).all():
                    continue
                tally.add(r.df, r.error, r.status, exact, label)
    return tallies


def format_tallies(tallies):
    """A text table of the tallies."""
    lines = [f"{'routine':<11} {'method':<11} {'components':>10} {'status != 0':>11} "
             f"{'dishonest':>9} {'rate':>7} {'worst err/est':>13} {'median est/err':>14}"]
    for t in tallies:
        median = np.median(t.looseness) if t.looseness else np.nan
        lines.append(f"{t.routine:<11} {t.method:<11} {t.components:>10} {t.flagged:>11} "
                     f"{t.dishonest:>9} {100 * t.rate:>6.2f}% {t.worst:>13.3g} {median:>14.3g}")
    return "\n".join(lines)
