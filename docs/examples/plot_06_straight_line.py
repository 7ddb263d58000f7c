"""
Chi-squared fit of a straight line
==================================

The least-squares line through data with error bars minimises

.. math:: \\chi^2(a, b) = \\sum_i \\left(\\frac{y_i - a - b x_i}{\\sigma_i}\\right)^2 .

:func:`fastcalc.linear_fit` solves it in closed form. We compare with :func:`numpy.polyfit`
and :func:`scipy.optimize.curve_fit`, then draw the :math:`\\chi^2` surface: its minimum is the
fit, and the contour :math:`\\chi^2_{min} + 1` is the one-standard-error ellipse of the
covariance matrix.
"""
import matplotlib.pyplot as plt
import numpy as np
from scipy.optimize import curve_fit

import fastcalc

rng = np.random.default_rng(7)
x = np.linspace(0, 10, 12)
sigma = rng.uniform(0.3, 1.2, x.size)
y = 1.5 + 0.8 * x + rng.normal(0, sigma)

fit = fastcalc.linear_fit(x, y, sigma=sigma, absolute_sigma=True)
print(fit.report())

# %%
# Against the references
# ----------------------
slope, intercept = np.polyfit(x, y, 1, w=1 / sigma)
popt, pcov = curve_fit(lambda x, a, b: a + b * x, x, y, sigma=sigma, absolute_sigma=True)
assert np.allclose(fit.params, [intercept, slope], rtol=1e-10)
assert np.allclose(fit.params, popt, rtol=1e-7) and np.allclose(fit.cov, pcov, rtol=1e-6)
assert np.isclose(fit.chi2, fastcalc.chi2(y, fit.params[0] + fit.params[1] * x, sigma))

# %%
# The data and the line
# ---------------------
fig, ax = plt.subplots(figsize=(6, 4))
ax.errorbar(x, y, sigma, fmt="ko", ms=4, capsize=2, label="data ± σ")
xs = np.linspace(0, 10, 100)
ax.plot(xs, fit.params[0] + fit.params[1] * xs, "tab:blue",
        label=f"a = {fit.params[0]:.2f} ± {fit.stderr[0]:.2f}, "
              f"b = {fit.params[1]:.3f} ± {fit.stderr[1]:.3f}")
ax.legend(fontsize=8)
ax.set_title(f"χ² = {fit.chi2:.1f} for {fit.dof} degrees of freedom")

# %%
# The chi-squared surface
# -----------------------
# Its minimum is the fit; the contour at :math:`\chi^2_{min} + 1` is the ellipse of the
# covariance matrix (exactly, for a model linear in its parameters).
a, b = fit.params
A, B = np.meshgrid(a + np.linspace(-4, 4, 161) * fit.stderr[0],
                   b + np.linspace(-4, 4, 161) * fit.stderr[1])
surface = (((y - A[..., None] - B[..., None] * x) / sigma) ** 2).sum(axis=-1)
fig, ax = plt.subplots(figsize=(6, 4.5))
ax.contourf(A, B, surface - fit.chi2, levels=[0, 1, 4, 9, 16, 25], cmap="Blues_r")
ax.contour(A, B, surface - fit.chi2, levels=[1], colors="k")
t = np.linspace(0, 2 * np.pi, 200)
ellipse = np.array([a, b])[:, None] + np.linalg.cholesky(fit.cov) @ np.array([np.cos(t), np.sin(t)])
ax.plot(*ellipse, "r--", label="covariance ellipse (1 σ)")
ax.plot(a, b, "r+", ms=12)
ax.set_xlabel("intercept a")
ax.set_ylabel("slope b")
ax.legend(fontsize=8)
ax.set_title("χ² − χ²min: 1, 4, 9, ... (1, 2, 3 σ)")
# the surface at the ellipse's points is chi2_min + 1
on_ellipse = (((y - ellipse[0][:, None] - ellipse[1][:, None] * x) / sigma) ** 2).sum(axis=1)
assert np.allclose(on_ellipse - fit.chi2, 1.0, atol=1e-8)
