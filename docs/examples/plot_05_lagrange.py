"""
Lagrange multipliers on a constraint
====================================

Find the extremes of :math:`f(x, y) = x y` on the ellipse :math:`g(x, y) = x^2/4 + y^2 - 1 = 0`.
At a constrained extreme the contour of f touches the constraint: the gradients are parallel,
:math:`\\nabla f = \\lambda \\nabla g`. :func:`fastcalc.lagrange` solves that system with
Newton-Raphson and says, from the curvature of the Lagrangian along the constraint, whether
the point is a minimum, a maximum or a saddle.

Exact answer: maxima at :math:`\\pm(\\sqrt 2, 1/\\sqrt 2)` with :math:`f = 1,\\ \\lambda = 1`;
minima at :math:`\\pm(\\sqrt 2, -1/\\sqrt 2)` with :math:`f = -1,\\ \\lambda = -1`.
"""
import matplotlib.pyplot as plt
import numpy as np
from scipy.optimize import minimize

import fastcalc


def f(v):
    return v[0] * v[1]


def g(v):
    return v[0] ** 2 / 4 + v[1] ** 2 - 1


maximum = fastcalc.lagrange(f, g, [1.0, 1.0], kind="maximum")
minimum = fastcalc.lagrange(f, g, [1.0, -1.0], kind="minimum")
for r in (maximum, minimum):
    print(f"{r.kind:8s} x = {np.round(r.x, 10)}, f = {r.fun:.12f}, lambda = {r.multipliers}")

assert maximum.kind == "maximum" and np.allclose(maximum.x, [2**0.5, 2**-0.5], atol=1e-10)
assert np.allclose([maximum.fun, *maximum.multipliers], [1.0, 1.0], atol=1e-10)
assert minimum.kind == "minimum" and np.allclose(minimum.x, [2**0.5, -(2**-0.5)], atol=1e-10)

# SciPy's SLSQP, the reference, finds the same minimum
slsqp = minimize(f, [1.0, -1.0], constraints={"type": "eq", "fun": g}, method="SLSQP",
                 options={"ftol": 1e-14})
assert np.allclose(slsqp.x, minimum.x, atol=1e-6)

# %%
# The gradients are parallel at both points
# -----------------------------------------
X, Y = np.meshgrid(np.linspace(-2.6, 2.6, 300), np.linspace(-1.6, 1.6, 300))
fig, ax = plt.subplots(figsize=(7, 4.5))
contours = ax.contour(X, Y, X * Y, levels=np.linspace(-2, 2, 17), cmap="coolwarm", linewidths=0.8)
ax.clabel(contours, fontsize=7)
t = np.linspace(0, 2 * np.pi, 400)
ax.plot(2 * np.cos(t), np.sin(t), "k", lw=2, label="constraint g = 0")
for r, color in ((maximum, "tab:red"), (minimum, "tab:blue")):
    grad_f = fastcalc.gradient(f, r.x)
    grad_g = fastcalc.gradient(g, r.x)
    assert np.allclose(grad_f, r.multipliers[0] * grad_g, atol=1e-8)
    ax.plot(*r.x, "o", color=color, ms=8,
            label=f"{r.kind}: f = {r.fun:.3f}, λ = {r.multipliers[0]:.3f}")
    ax.quiver(*r.x, *grad_f, color=color, angles="xy", scale_units="xy", scale=2, width=0.006)
    ax.quiver(*r.x, *grad_g, color="k", angles="xy", scale_units="xy", scale=2, width=0.004)
ax.set_aspect("equal")
ax.legend(fontsize=8, loc="lower left")
ax.set_title("∇f (colour) and ∇g (black) are parallel at the extremes")
