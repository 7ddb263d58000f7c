"""
Larger than memory: Dask with Zarr in and Zarr out
==================================================

When the spectra do not fit in memory, keep them on disk in chunks and let Dask stream them:
:func:`fastcalc.dask.fit_batch` builds one in-memory :func:`fastcalc.fit_batch` call per chunk,
and writing the results to Zarr runs the graph chunk by chunk, so at any time only a few chunks
are in memory. The same code runs on a ``distributed`` cluster, the workers reading and writing
the Zarr stores themselves.

Here the input cube is itself generated chunk by chunk straight into Zarr (it never exists in
memory as a whole), fitted, and the parameters and statuses written to a second Zarr store in
ONE pass over the data. Without ``zarr`` installed the example uses ``.npy`` memory maps, which
stream the same way. ``FASTCALC_DOCS_SMALL=1`` makes the cube smaller.
"""
import os
import shutil
import tempfile
import time
from pathlib import Path

import dask
import dask.array as da
import matplotlib.pyplot as plt
import numpy as np

import fastcalc
import fastcalc.dask
from fastcalc.models import gaussian

try:
    import zarr
except ImportError:          # the docs extra installs zarr; fall back to memory maps
    zarr = None

side = 200 if os.environ.get("FASTCALC_DOCS_SMALL") else 1000
chunk = 20_000 if os.environ.get("FASTCALC_DOCS_SMALL") else 100_000
channels = np.linspace(-5, 5, 32)
n_spectra = side * side
noise = 0.1


def true_parameters(first, count):
    """A, mu, sigma, c of spectra first .. first + count - 1: a map with a velocity gradient."""
    i = np.arange(first, first + count)
    row, col = divmod(i, side)
    mu = 3.0 * (col / side - 0.5) + np.sin(row / side * 2 * np.pi)
    A = 1.0 + np.exp(-(((row - side / 2) / (side / 3)) ** 2))
    return np.column_stack([A, mu, np.full(count, 0.8), np.full(count, 0.2)])


def make_chunk(block_info=None):
    """One chunk of spectra, from its position in the cube (a seed per chunk: reproducible)."""
    first, stop = block_info[None]["array-location"][0]
    A, mu, s, c = true_parameters(first, stop - first).T[..., None]
    rng = np.random.default_rng(first)
    spectra = A * np.exp(-((channels - mu) ** 2) / (2 * s**2)) + c
    return spectra + rng.normal(0, noise, spectra.shape)


folder = Path(tempfile.mkdtemp(prefix="fastcalc-zarr-"))
cube = da.map_blocks(make_chunk, chunks=((chunk,) * (n_spectra // chunk), (channels.size,)),
                     dtype=float)


def save(array, name):
    """A lazy write of ``array`` to a Zarr array (or a .npy memory map) named ``name``."""
    if zarr is not None:
        return da.to_zarr(array, str(folder / f"{name}.zarr"), compute=False)
    target = np.lib.format.open_memmap(folder / f"{name}.npy", mode="w+", dtype=array.dtype,
                                       shape=array.shape)
    return da.store(array, target, compute=False, lock=False)


def load(name):
    if zarr is not None:
        return da.from_zarr(str(folder / f"{name}.zarr"))
    stored = np.load(folder / f"{name}.npy", mmap_mode="r")
    return da.from_array(stored, chunks=(chunk,) + (-1,) * (stored.ndim - 1))


# %%
# Write the cube to disk, chunk by chunk
# --------------------------------------
start = time.perf_counter()
dask.compute(save(cube, "cube"))
print(f"cube: {n_spectra:,} spectra, {cube.nbytes / 2**20:.0f} MiB on disk in "
      f"{cube.numblocks[0]} chunks of {chunk * channels.size * 8 / 2**20:.0f} MiB "
      f"({'zarr' if zarr is not None else 'npy memory maps'}), {time.perf_counter() - start:.1f} s")

# %%
# Fit from disk to disk, one pass
# -------------------------------
Y = load("cube")
lazy = fastcalc.dask.fit_batch(gaussian, channels, Y, sigma=noise, absolute_sigma=True)
start = time.perf_counter()
dask.compute(save(lazy.params, "params"), save(lazy.stderr, "stderr"), save(lazy.status, "status"))
elapsed = time.perf_counter() - start
print(f"fitted and written in {elapsed:.1f} s ({elapsed / n_spectra * 1e6:.1f} us per spectrum)")

# %%
# Check the results on disk
# -------------------------
params, status = load("params"), load("status")
assert params.shape == (n_spectra, 4)
status_counts = np.bincount(status.compute(), minlength=6)
print("statuses:", status_counts)
assert status_counts[0] > 0.99 * n_spectra

# Results equal the in-memory routine's, bit for bit, on any chunk:
first = chunk                        # the second chunk, refitted in memory
in_memory = fastcalc.fit_batch(gaussian, channels, Y[first:first + chunk].compute(), sigma=noise,
                               absolute_sigma=True)
assert np.array_equal(in_memory.params, params[first:first + chunk].compute())

# ... and the fitted centres scatter around the truth by their standard errors.
truth = true_parameters(0, n_spectra)
pull = (params[:, 1].compute() - truth[:, 1]) / load("stderr")[:, 1].compute()
print(f"centre pulls: mean {pull.mean():+.3f}, std {pull.std():.3f}")
assert abs(pull.mean()) < 0.05 and 0.9 < pull.std() < 1.1

# %%
# The fitted map, read back from disk
# -----------------------------------
fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.8))
for ax, image, title in ((left, params[:, 1], "fitted centre"),
                         (right, params[:, 0], "fitted amplitude")):
    shown = ax.imshow(image.compute().reshape(side, side), origin="lower", cmap="viridis")
    ax.set_title(title)
    fig.colorbar(shown, ax=ax, shrink=0.85)
fig.suptitle(f"{side} x {side} spectra, "
             + ("Zarr in, Zarr out" if zarr is not None else "memory maps in and out"))
fig.tight_layout()

shutil.rmtree(folder)        # the stores were temporary
