"""
Slopes, tangents and the derivative rules
=========================================

The derivative is the limit of the slope of a secant. We watch the secant of
:math:`f(x) = x^3 - 2x` at :math:`x_0 = 1` turn into the tangent, then check the sum, product,
quotient and chain rules numerically with :func:`fastcalc.derivative`.
"""
import matplotlib.pyplot as plt
import numpy as np

import fastcalc

f = lambda x: x**3 - 2 * x
x0 = 1.0
exact_slope = 3 * x0**2 - 2

# %%
# Secant slopes :math:`(f(x_0 + h) - f(x_0)) / h` approach the derivative as h shrinks, with an
# error proportional to h; the central difference of :func:`fastcalc.derivative` has an error
# proportional to :math:`h^2` and a step chosen for the best accuracy.
for h in (1.0, 0.1, 0.01, 0.001):
    secant = (f(x0 + h) - f(x0)) / h
    print(f"h = {h:<6} secant slope {secant:.6f}  error {secant - exact_slope:+.1e}")
slope = fastcalc.derivative(f, x0)
print(f"fastcalc.derivative: {slope:.12f}  error {slope - exact_slope:+.1e}")
assert abs(slope - exact_slope) < 1e-8

x = np.linspace(-0.5, 2.2, 200)
fig, ax = plt.subplots(figsize=(6, 4))
ax.plot(x, f(x), "k", lw=2, label="f(x) = x³ − 2x")
for h, color in zip((1.0, 0.5, 0.2), ("tab:red", "tab:orange", "tab:olive")):
    s = (f(x0 + h) - f(x0)) / h
    ax.plot(x, f(x0) + s * (x - x0), color=color, lw=1, label=f"secant, h = {h}: slope {s:.2f}")
ax.plot(x, f(x0) + slope * (x - x0), "tab:blue", lw=2, label=f"tangent: slope {slope:.2f}")
ax.plot([x0], [f(x0)], "ko")
ax.set_ylim(-3, 6)
ax.legend(fontsize=8)
ax.set_title("Secants become the tangent")

# %%
# The rules
# ---------
# Each rule, with u = sin and v = exp on a grid, against the derivative fastcalc computes for
# the combined function directly (``derivative`` works elementwise on arrays).
u, du = np.sin, np.cos
v, dv = np.exp, np.exp
t = np.linspace(-2, 2, 101)
rules = {
    "sum (u + v)' = u' + v'": (lambda t: u(t) + v(t), du(t) + dv(t)),
    "product (uv)' = u'v + uv'": (lambda t: u(t) * v(t), du(t) * v(t) + u(t) * dv(t)),
    "quotient (u/v)' = (u'v - uv')/v²": (lambda t: u(t) / v(t),
                                         (du(t) * v(t) - u(t) * dv(t)) / v(t) ** 2),
    "chain u(v)' = u'(v) v'": (lambda t: u(v(t)), du(v(t)) * dv(t)),
    "power (t⁵)' = 5 t⁴": (lambda t: t**5, 5 * t**4),
}
fig, ax = plt.subplots(figsize=(6, 4))
for name, (combined, by_rule) in rules.items():
    numeric = fastcalc.derivative(combined, t, accuracy=4)
    error = np.abs(numeric - by_rule) / np.maximum(1, np.abs(by_rule))
    print(f"{name:36s} max relative difference {error.max():.1e}")
    assert error.max() < 1e-8
    ax.semilogy(t, np.maximum(error, 1e-17), label=name)
ax.set_xlabel("t")
ax.set_ylabel("|numeric − rule| / max(1, |rule|)")
ax.set_title("Every rule agrees with the numerical derivative")
ax.legend(fontsize=7)
