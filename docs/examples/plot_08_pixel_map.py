"""
A million fits: a velocity map from a spectral cube
===================================================

An integral-field spectrograph records a spectrum at every pixel. Here a 1000 x 1000 map of a
rotating disc: every pixel holds a 32-channel spectrum with one Gaussian emission line whose
centre is Doppler-shifted by the disc's rotation. :func:`fastcalc.fit_batch` fits all
**one million** spectra in one call, on all cores, and we compare the fitted centres with the
truth and a sample with :func:`scipy.optimize.curve_fit`.

Set ``FASTCALC_DOCS_SMALL=1`` for a 100 x 100 map (the test suite does).
"""
import os
import time

import matplotlib.pyplot as plt
import numpy as np
from scipy.optimize import curve_fit

import fastcalc
from fastcalc import models

side = 100 if os.environ.get("FASTCALC_DOCS_SMALL") else 1000
rng = np.random.default_rng(42)
channels = np.linspace(-5, 5, 32)                       # velocity channels
noise = 0.1

# %%
# The sky: a tilted rotating disc
# -------------------------------
u, v = np.meshgrid(np.linspace(-1, 1, side), np.linspace(-1, 1, side))
radius = np.hypot(u, v / 0.6)                                   # inclined: an ellipse
velocity = 3.0 * u / np.maximum(radius, 0.05) * np.tanh(radius / 0.2) / np.sqrt(1 + radius)
brightness = 0.3 + 2.0 * np.exp(-radius / 0.5)
width = 0.6 + 0.3 * radius
truth = np.column_stack([brightness.ravel(), velocity.ravel(), width.ravel(),
                         np.full(side * side, 0.2)])            # A, mu, sigma, c per pixel

cube = np.empty((side * side, channels.size))
for start in range(0, len(truth), 100_000):                   # build the cube in slabs
    A, mu, s, c = truth[start:start + 100_000].T[..., None]
    cube[start:start + 100_000] = A * np.exp(-((channels - mu) ** 2) / (2 * s**2)) + c
cube += rng.normal(0, noise, cube.shape)
print(f"{len(cube):,} spectra of {channels.size} channels ({cube.nbytes / 2**20:.0f} MiB)")

# %%
# All spectra in one call
# -----------------------
start = time.perf_counter()
result = fastcalc.fit_batch(models.gaussian, channels, cube, sigma=noise, absolute_sigma=True)
elapsed = time.perf_counter() - start
ok = result.status == 0
print(f"fit_batch: {elapsed:.2f} s for {len(cube):,} fits "
      f"({elapsed / len(cube) * 1e6:.1f} us per fit), status 0 for {ok.mean():.2%}")
assert ok.mean() > 0.99

# The errors are honest: the fitted centres scatter around the truth by their standard errors.
pull = (result.params[ok, 1] - truth[ok, 1]) / result.stderr[ok, 1]
print(f"centre pulls: mean {pull.mean():+.3f}, std {pull.std():.3f} (ideal 0 and 1)")
assert abs(pull.mean()) < 0.1 and 0.9 < pull.std() < 1.1

# %%
# The reference on a sample
# -------------------------
sample = rng.choice(len(cube), 100, replace=False)
start = time.perf_counter()
reference = np.array([curve_fit(models.gaussian, channels, cube[i], p0=truth[i],
                                sigma=np.full(channels.size, noise))[0] for i in sample])
per_fit = (time.perf_counter() - start) / len(sample)
print(f"curve_fit: {per_fit * 1e6:.0f} us per fit: the whole map would take "
      f"{per_fit * len(cube):.0f} s, {per_fit * len(cube) / elapsed:.0f}x as long")
difference = np.abs(result.params[sample] - reference) / result.stderr[sample]
print(f"largest difference from curve_fit: {difference.max():.1e} standard errors")
assert difference.max() < 1e-3

# %%
# The maps
# --------
fig, axes = plt.subplots(1, 3, figsize=(11, 3.6))
shape = (side, side)
for ax, image, title, cmap in (
        (axes[0], result.params[:, 0].reshape(shape), "fitted line amplitude", "magma"),
        (axes[1], result.params[:, 1].reshape(shape), "fitted centre (velocity)", "RdBu_r"),
        (axes[2], ((result.params[:, 1] - truth[:, 1]) / result.stderr[:, 1]).reshape(shape),
         "(fit − truth) / stderr", "coolwarm")):
    vmax = np.nanpercentile(np.abs(image), 99.5)
    shown = ax.imshow(image, origin="lower", cmap=cmap,
                      vmin=0 if cmap == "magma" else -vmax, vmax=vmax)
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    fig.colorbar(shown, ax=ax, shrink=0.8)
fig.suptitle(f"{side} x {side} pixels fitted in {elapsed:.1f} s")
fig.tight_layout()
