"""Pulls of 2000 low-count peaks: the Poisson likelihood is unbiased, sqrt(y)-weighted least squares
is not (the figure behind tests/test_estimators.py::test_poisson_pulls_are_unbiased_...).

    python benchmarks/poisson_pulls.py [--plot docs/poisson_pulls.png]
"""
import argparse

import numpy as np

from fastcalc import fit_batch, models, propagate

TRUTH = np.array([10.0, 0.2, 0.8, 1.0])        # about 10 counts at the top of the peak


def pulls(n=2000, seed=2024):
    """{estimator: {"mu": pulls, "area": pulls}} for the Poisson and least-squares fits."""
    rng = np.random.default_rng(seed)
    x = np.linspace(-4, 4, 41)
    Y = rng.poisson(models.gaussian(x, *TRUTH), size=(n, x.size)).astype(float)
    area = lambda p: p[0] * p[2] * np.sqrt(2 * np.pi)            # noqa: E731
    fits = {"Poisson likelihood": fit_batch(models.gaussian, x, Y, p0=TRUTH, cost="poisson"),
            "least squares, sigma = sqrt(max(y, 1))": fit_batch(
                models.gaussian, x, Y, p0=TRUTH, sigma=np.sqrt(np.maximum(Y, 1.0)),
                absolute_sigma=True)}
    out = {}
    for name, r in fits.items():
        ok = r.status == 0
        a = propagate(area, r.params[ok], r.cov[ok], vectorized=True)
        out[name] = {"mu": (r.params[ok, 1] - TRUTH[1]) / r.stderr[ok, 1],
                     "area": (a.value - area(TRUTH)) / a.std}
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plot", help="write the histogram of the pulls to this image")
    args = parser.parse_args()
    results = pulls()
    for name, values in results.items():
        for quantity, p in values.items():
            print(f"{name:<40} {quantity:<5} mean {p.mean():+.3f}  std {p.std():.3f}")
    if args.plot:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, axes = plt.subplots(1, 2, figsize=(9, 4), sharey=True)
        bins = np.linspace(-4, 4, 41)
        grid = np.linspace(-4, 4, 200)
        for ax, quantity in zip(axes, ("mu", "area")):
            for name, values in results.items():
                p = values[quantity]
                ax.hist(p, bins, density=True, histtype="step",
                        label=f"{name}: mean {p.mean():+.2f}, std {p.std():.2f}")
            ax.plot(grid, np.exp(-grid ** 2 / 2) / np.sqrt(2 * np.pi), "k:", label="N(0, 1)")
            ax.set_xlabel(f"pull of the peak {'position' if quantity == 'mu' else 'area'}")
            ax.set_ylim(0, 0.6)
            ax.legend(fontsize=6, loc="upper left", frameon=False)
        fig.suptitle("2000 peaks of ~10 counts: fastcalc.fit_batch(cost='poisson') vs least squares")
        fig.tight_layout()
        fig.savefig(args.plot, dpi=120)


if __name__ == "__main__":
    main()
