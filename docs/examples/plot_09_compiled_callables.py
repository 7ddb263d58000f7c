"""
Compiled callables with numba
=============================

The same problems with the three kinds of user function: a Python function called per point, a
vectorized NumPy function called once per stencil or batch, and a numba ``cfunc`` that the
kernels call directly, without the GIL and on all cores. The answers agree; the time differs.

Timings come from this build's machine and vary from run to run; the checks do not.
"""
import os
import timeit

import matplotlib.pyplot as plt
import numba
import numpy as np
from numba import types
from scipy.optimize import rosen, rosen_der

import fastcalc

small = bool(os.environ.get("FASTCALC_DOCS_SMALL"))
double_p = types.CPointer(types.double)


def best_of(call, repeat=3):
    return min(timeit.repeat(call, number=1, repeat=repeat))


# %%
# A gradient of the Rosenbrock function, n = 100
# ----------------------------------------------
# ``double f(int n, double *x, void *user_data)``
@numba.cfunc(types.double(types.intc, double_p, types.voidptr))
def rosen_compiled(n, x, user_data):
    total = 0.0
    for i in range(n - 1):
        total += 100.0 * (x[i + 1] - x[i] ** 2) ** 2 + (1.0 - x[i]) ** 2
    return total


x = np.linspace(-1, 1, 100)
gradients = {
    "Python f": lambda: fastcalc.gradient(rosen, x),
    "vectorized f": lambda: fastcalc.gradient(rosen, x, vectorized=True),
    "numba cfunc": lambda: fastcalc.gradient(rosen_compiled, x),
}
for name, call in gradients.items():
    assert np.allclose(call(), rosen_der(x), rtol=1e-6, atol=1e-6), name
gradient_times = {name: best_of(call) for name, call in gradients.items()}

# %%
# A million elementwise equations: Kepler's equation
# --------------------------------------------------
# :math:`E - e \sin E = M` for the eccentric anomaly E, one equation per (M, e);
# ``double f(double x, int k, double *p, void *user_data)`` with ``p = (M, e)``.
equation = types.double(types.double, types.intc, double_p, types.voidptr)


@numba.cfunc(equation)
def kepler(E, k, p, user_data):
    return E - p[1] * np.sin(E) - p[0]


@numba.cfunc(equation)
def kepler_prime(E, k, p, user_data):
    return 1.0 - p[1] * np.cos(E)


n = 100_000 if small else 1_000_000
rng = np.random.default_rng(1)
M, e = rng.uniform(0, 2 * np.pi, n), rng.uniform(0, 0.9, n)
solvers = {
    "vectorized f": lambda: fastcalc.newton(lambda E, M, e: E - e * np.sin(E) - M, M.copy(),
                                            lambda E, M, e: 1 - e * np.cos(E), args=(M, e)),
    "numba cfunc": lambda: fastcalc.newton(kepler, M.copy(), kepler_prime, args=(M, e)),
}
for name, call in solvers.items():
    E = call()
    assert np.abs(E - e * np.sin(E) - M).max() < 1e-12, name
newton_times = {name: best_of(call) for name, call in solvers.items()}

# %%
# The times
# ---------
fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.2))
for ax, times, title in ((left, gradient_times, "gradient, n = 100"),
                         (right, newton_times, f"newton, {n:,} Kepler equations")):
    names = list(times)
    colors = ["tab:red", "tab:orange", "tab:green"][-len(names):]
    ax.barh(names, [times[k] * 1e3 for k in names], color=colors)
    for i, k in enumerate(names):
        ax.text(times[k] * 1e3, i, f" {times[k] * 1e3:.3g} ms", va="center", fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("milliseconds (log scale)")
    ax.set_title(title)
    print(title + ": " + ", ".join(f"{k} {v * 1e3:.3g} ms" for k, v in times.items()))
fig.tight_layout()
