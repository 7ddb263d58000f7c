"""
Newton-Raphson and gradient descent on a contour plot
=====================================================

Two ways downhill to the minimum of :math:`f(x, y) = (x - 1)^2 + 5 (y - x^2)^2`, a curved
valley with its minimum at :math:`(1, 1)`:

* **gradient descent** (:func:`fastcalc.gradient_descent`) follows :math:`-\\nabla f` with an
  adaptive step: many cheap steps, zig-zagging across the valley;
* **Newton-Raphson** solves :math:`\\nabla f = 0`, each step
  :math:`x \\leftarrow x - H^{-1} \\nabla f` with the gradient and Hessian from
  :func:`fastcalc.gradient` and :func:`fastcalc.hessian`: a few expensive steps, quadratic
  convergence near the minimum.
"""
import matplotlib.pyplot as plt
import numpy as np
from scipy.optimize import minimize

import fastcalc


def f(v):
    return (v[0] - 1) ** 2 + 5 * (v[1] - v[0] ** 2) ** 2


start = np.array([-1.5, 2.0])
reference = minimize(f, start, method="BFGS", options={"gtol": 1e-10}).x

# %%
# Gradient descent
# ----------------
gd = fastcalc.gradient_descent(f, start, return_path=True)
print(f"gradient descent: status {gd.status}, {gd.nit} steps, x = {gd.x}")
assert gd.status == 0 and np.allclose(gd.x, reference, atol=1e-4)

# %%
# Newton-Raphson, step by step
# ----------------------------
path = [start]
x = start.copy()
for step in range(50):
    g = fastcalc.gradient(f, x, accuracy=4)
    if np.linalg.norm(g) < 1e-10:
        break
    x = x - np.linalg.solve(fastcalc.hessian(f, x, accuracy=4), g)
    path.append(x)
newton_path = np.array(path)
print(f"Newton-Raphson: {len(newton_path) - 1} steps, x = {x}")
assert np.allclose(x, [1.0, 1.0], atol=1e-8)

# The same root of the gradient with the library's system solver (damped Newton-Raphson):
solved = fastcalc.newton_system(lambda v: fastcalc.gradient(f, v, accuracy=4), start,
                                lambda v: fastcalc.hessian(f, v, accuracy=4))
assert solved.status == 0 and np.allclose(solved.x, [1.0, 1.0], atol=1e-8)

# %%
# Both paths on the contours of f
# -------------------------------
X, Y = np.meshgrid(np.linspace(-2, 2, 200), np.linspace(-0.5, 3, 200))
fig, ax = plt.subplots(figsize=(6.5, 5))
ax.contour(X, Y, f(np.array([X, Y])), levels=np.logspace(-2, 2.2, 18), cmap="viridis",
           linewidths=0.7)
ax.plot(*gd.path.T, ".-", color="tab:orange", ms=2, lw=0.8,
        label=f"gradient descent ({gd.nit} steps)")
ax.plot(*newton_path.T, "o-", color="tab:blue", ms=5,
        label=f"Newton-Raphson ({len(newton_path) - 1} steps)")
ax.plot(1, 1, "r*", ms=14, label="minimum (1, 1)")
ax.set_xlabel("x")
ax.set_ylabel("y")
ax.legend(fontsize=8, loc="upper right")
ax.set_title("Two ways downhill")

# %%
# Convergence: distance to the minimum per step
# ---------------------------------------------
fig, ax = plt.subplots(figsize=(6, 3.5))
ax.semilogy(np.linalg.norm(gd.path - 1.0, axis=1) + 1e-17, color="tab:orange",
            label="gradient descent")
ax.semilogy(np.linalg.norm(newton_path - 1.0, axis=1) + 1e-17, "o-", color="tab:blue",
            label="Newton-Raphson")
ax.set_xscale("symlog", linthresh=10)
ax.set_xlabel("step")
ax.set_ylabel("distance to (1, 1)")
ax.legend(fontsize=8)
