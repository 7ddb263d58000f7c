"""
A non-linear fit with its confidence band
=========================================

A Gaussian peak on a baseline, fitted with the built-in :data:`fastcalc.models.gaussian` (its
starting point comes from its own ``guess``). The fit's covariance gives a confidence band for
the curve (delta method, :meth:`fastcalc.FitResult.band`) and a wider prediction band for new
points. We check the parameters against :func:`scipy.optimize.curve_fit`, and the band's
coverage with toy datasets from :meth:`fastcalc.FitResult.simulate`.
"""
import matplotlib.pyplot as plt
import numpy as np
from scipy.optimize import curve_fit

import fastcalc
from fastcalc import models

rng = np.random.default_rng(11)
truth = (3.0, 0.4, 0.9, 0.5)
x = np.linspace(-4, 4, 40)
sigma = 0.25
y = models.gaussian(x, *truth) + rng.normal(0, sigma, x.size)

fit = fastcalc.fit(models.gaussian, x, y, sigma=sigma, absolute_sigma=True)
print(fit.report())
popt, pcov = curve_fit(models.gaussian, x, y, p0=models.gaussian.guess(x, y),
                       sigma=np.full(x.size, sigma), absolute_sigma=True)
assert fit.success and np.allclose(fit.params, popt, rtol=1e-6)
assert np.allclose(fit.stderr, np.sqrt(np.diag(pcov)), rtol=1e-4)

# %%
# The bands
# ---------
xs = np.linspace(-4, 4, 200)
lower, upper = fit.band(xs)                                    # 68.27 % confidence band
lower95, upper95 = fit.band(xs, cl=0.95, kind="prediction")     # where 95 % of new points fall
fig, ax = plt.subplots(figsize=(6.5, 4))
ax.fill_between(xs, lower95, upper95, color="tab:blue", alpha=0.15, label="95% prediction band")
ax.fill_between(xs, lower, upper, color="tab:blue", alpha=0.45, label="68% confidence band")
ax.plot(xs, models.gaussian(xs, *fit.params), "tab:blue", lw=1.5, label="fit")
ax.plot(xs, models.gaussian(xs, *truth), "k--", lw=1, label="truth")
ax.errorbar(x, y, sigma, fmt="ko", ms=3, capsize=1.5, lw=0.8)
ax.legend(fontsize=8)
ax.set_title("Gaussian peak: fit, confidence and prediction bands")

# %%
# Does the band cover the truth 68 % of the time?
# -----------------------------------------------
# Refit 400 toy datasets drawn around the fitted curve with the same noise, and count how often
# each toy's band at the peak holds the curve the toys were drawn from.
toys = fit.simulate(400, rng=2)
toy_fits = fastcalc.fit_batch(models.gaussian, x, toys, sigma=sigma, absolute_sigma=True)
peak = np.array([fit.params[1]])
covered = [(lo <= models.gaussian(peak, *fit.params) <= hi).item()
           for lo, hi in (toy_fits[i].band(peak) for i in range(len(toys)))]
print(f"coverage at the peak: {np.mean(covered):.1%} (nominal 68.3%)")
assert 0.6 < np.mean(covered) < 0.77
