"""
Step size, rounding and an honest error estimate
================================================

A finite difference trades two errors: truncation, which shrinks with the step h, and rounding,
which grows like :math:`\\varepsilon / h`. We draw that V for the forward and central
differences of :math:`e^{\\sin x}` at x = 1, mark the errors of fastcalc's default steps (near
the bottom of each V), and check the error estimate that ``full_output=True`` reports
against the actual error on many points.
"""
import matplotlib.pyplot as plt
import numpy as np

import fastcalc


def f(x):
    return np.exp(np.sin(x))


def exact(x):
    return np.cos(x) * np.exp(np.sin(x))


x0 = 1.0
h = np.logspace(-15, -1, 120)
forward = np.abs((f(x0 + h) - f(x0)) / h - exact(x0))
central = np.abs((f(x0 + h) - f(x0 - h)) / (2 * h) - exact(x0))

# %%
# The V of the step size
# ----------------------
# fastcalc's default ``accuracy=2`` is a second-order stencil for every method, so its one-sided
# (forward) derivative lands well below the bottom of the first-order V.
fig, ax = plt.subplots(figsize=(6.5, 4))
ax.loglog(h, forward + 1e-17, color="tab:orange", label="forward difference (first order)")
ax.loglog(h, central + 1e-17, color="tab:blue", label="central difference (second order)")
for method, color in (("forward", "tab:orange"), ("central", "tab:blue")):
    r = fastcalc.derivative(f, x0, method=method, full_output=True)
    actual = abs(r.df - exact(x0))
    ax.axhline(actual, color=color, ls=":",
               label=f"fastcalc {method}, default accuracy 2 and step: error {actual:.0e}")
    assert r.status == 0 and actual <= r.error
ax.set_xlabel("step h")
ax.set_ylabel("|error|")
ax.legend(fontsize=8)
ax.set_title("Truncation (right) against rounding (left)")

# %%
# The estimate bounds the error
# -----------------------------
# On 2000 points, every method's estimate with status 0 against its actual error: all points
# must lie below the diagonal.
points = np.linspace(-20, 20, 2000)
fig, ax = plt.subplots(figsize=(6, 4.5))
methods = (("central", "tab:blue"), ("forward", "tab:orange"), ("richardson", "tab:green"))
for method, color in methods:
    r = fastcalc.derivative(f, points, method=method, full_output=True)
    ok = r.status == 0
    actual = np.abs(r.df - exact(points))
    below = np.mean(actual[ok] > r.error[ok])
    print(f"{method:10s} status 0 for {ok.mean():.1%}; "
          f"estimate below the actual error in {below:.2%}")
    assert below < 0.01
    ax.loglog(r.error[ok], actual[ok] + 1e-18, ".", ms=2, color=color, label=method)
lims = [1e-18, 1e-3]
ax.plot(lims, lims, "k--", lw=0.8, label="estimate = actual")
ax.set_xlim(lims)
ax.set_ylim(lims)
ax.set_xlabel("reported error estimate")
ax.set_ylabel("actual error")
ax.legend(fontsize=8, markerscale=5)
ax.set_title("Below the diagonal: the estimate is an upper bound")
