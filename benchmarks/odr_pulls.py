"""Pulls of 2000 straight lines measured with errors in x and y: orthogonal distance regression
(sigma_x=) has pulls of unit width, least squares ignoring sigma_x does not (the figure behind
tests/test_odr.py::test_pulls_have_unit_width_with_sigma_x_and_not_without).

    python benchmarks/odr_pulls.py [--plot docs/odr_pulls.png]
"""
import argparse

import numpy as np

from fastcalc import fit_batch, models

TRUTH = np.array([1.0, 2.0])        # intercept, slope
SIGMA_X, SIGMA_Y = 0.3, 0.2         # the x errors dominate: slope * SIGMA_X = 3 * SIGMA_Y


def pulls(n=2000, m=20, seed=2026):
    """{method: {"a": pulls, "b": pulls}} of the ODR and the least-squares fits."""
    rng = np.random.default_rng(seed)
    xt = np.linspace(0.0, 5.0, m)
    X = xt + rng.normal(0, SIGMA_X, (n, m))
    Y = TRUTH[0] + TRUTH[1] * xt + rng.normal(0, SIGMA_Y, (n, m))
    fits = {"ODR: fit_batch(sigma=0.2, sigma_x=0.3)": fit_batch(
                models.line, X, Y, sigma=SIGMA_Y, sigma_x=SIGMA_X, absolute_sigma=True),
            "least squares: fit_batch(sigma=0.2)": fit_batch(
                models.line, X, Y, sigma=SIGMA_Y, absolute_sigma=True)}
    out = {}
    for name, r in fits.items():
        ok = r.status == 0
        p = (r.params[ok] - TRUTH) / r.stderr[ok]
        out[name] = {"a": p[:, 0], "b": p[:, 1]}
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plot", help="write the histogram of the pulls to this image")
    args = parser.parse_args()
    results = pulls()
    for name, values in results.items():
        for quantity, p in values.items():
            print(f"{name:<42} {quantity:<2} mean {p.mean():+.3f}  std {p.std():.3f}")
    if args.plot:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, axes = plt.subplots(1, 2, figsize=(9, 4), sharey=True)
        bins = np.linspace(-8, 8, 65)
        grid = np.linspace(-8, 8, 400)
        for ax, quantity in zip(axes, ("a", "b")):
            for name, values in results.items():
                p = values[quantity]
                ax.hist(np.clip(p, -8, 8), bins, density=True, histtype="step",
                        label=f"{name}: mean {p.mean():+.2f}, std {p.std():.2f}")
            ax.plot(grid, np.exp(-grid ** 2 / 2) / np.sqrt(2 * np.pi), "k:", label="N(0, 1)")
            ax.set_xlabel(f"pull of the {'intercept' if quantity == 'a' else 'slope'} (clipped to -+8)")
            ax.set_ylim(0, 0.6)
            ax.legend(fontsize=6, loc="upper left", frameon=False)
        fig.suptitle("2000 lines y = 1 + 2x, 20 points, sigma_x = 0.3, sigma_y = 0.2")
        fig.tight_layout()
        fig.savefig(args.plot, dpi=120)


if __name__ == "__main__":
    main()
