"""
Taylor approximations
=====================

:func:`fastcalc.taylor` returns the Taylor polynomial of a function about a point, its
coefficients :math:`f^{(k)}(x_0)/k!` computed by finite differences. We compare them with the
exact series of :math:`e^x` and :math:`\\cos x`, and watch the approximations improve with the
order, and fail far from :math:`x_0`.
"""
import math

import matplotlib.pyplot as plt
import numpy as np

import fastcalc

# %%
# Coefficients against the exact series
# -------------------------------------
p = fastcalc.taylor(np.exp, 0.0, 4)
exact = [1 / math.factorial(k) for k in range(5)]
print("exp about 0:", np.round(p.coef, 8))
assert np.allclose(p.coef, exact, atol=1e-5)

q = fastcalc.taylor(np.cos, 0.0, 4)
assert np.allclose(q.coef, [1, 0, -1 / 2, 0, 1 / 24], atol=1e-5)
print("cos about 0:", np.round(q.coef, 8))

# %%
# The coefficients are those of powers of :math:`(x - x_0)`, and the polynomial's domain is
# shifted so that ``poly(x)`` evaluates the approximation at ``x`` directly. Near :math:`x_0`
# the error is the Lagrange remainder, at most :math:`d^{n+1}/(n+1)!` for cos at distance d.
x0 = 1.0
x = np.linspace(-2.5, 4.5, 300)
fig, ax = plt.subplots(figsize=(6, 4))
ax.plot(x, np.cos(x), "k", lw=2.5, label="cos x")
near = np.abs(x - x0) < 0.1
for order in (1, 2, 3, 4):
    poly = fastcalc.taylor(np.cos, x0, order)
    ax.plot(x, poly(x), lw=1.2, label=f"order {order}")
    remainder = 0.1 ** (order + 1) / math.factorial(order + 1)
    assert np.abs(poly(x[near]) - np.cos(x[near])).max() < remainder + 1e-9
ax.plot([x0], [np.cos(x0)], "ko")
ax.set_ylim(-2, 2)
ax.legend(fontsize=8)
ax.set_title("Taylor polynomials of cos x about x0 = 1")

# %%
# The error of each order
# -----------------------
# On a log scale the error at distance :math:`d` from :math:`x_0` falls with slope
# ``order + 1``, until rounding (and the finite-difference error of the coefficients) stops it.
d = np.logspace(-3, 0, 40)
fig, ax = plt.subplots(figsize=(6, 4))
for order in (1, 2, 3, 4):
    poly = fastcalc.taylor(np.exp, 0.0, order)
    ax.loglog(d, np.abs(poly(d) - np.exp(d)) + 1e-17, label=f"order {order}")
ax.set_xlabel("distance from x0")
ax.set_ylabel("|Taylor polynomial − exp|")
ax.legend(fontsize=8)
ax.set_title("The error falls like d^(order + 1)")
