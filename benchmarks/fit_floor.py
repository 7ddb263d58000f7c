"""The floor of a built-in gaussian (64 points) and gaussian_2d (5x5) fit, against fastcalc.

A small C program (below; compiled with ``cc -O3``, no -ffast-math, like the extension) times
per dataset only what no Levenberg-Marquardt fit can avoid, at fastcalc's own mean number of
evaluations per fit: the exponentials alone (one per point and evaluation), and the whole
per-evaluation work (values and analytic Jacobian, residuals, chi2, J^T J, J^T r, one Cholesky
solve). fastcalc's fit_batch is timed on the same number of datasets, one thread, all in CPU
time (robust to a busy machine), interleaved.

    python benchmarks/fit_floor.py [datasets]
"""
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

from fastcalc import fit_batch, models
from fastcalc.cli import _workloads as wl

C_SOURCE = r"""
/* The floor of a Levenberg-Marquardt gaussian (64 points) / gaussian_2d (5x5) fit: per
   evaluation only the work no LM can avoid -- model values and analytic Jacobian (one exp per
   point), residuals and chi2, J^T J and J^T r, one Cholesky solve of the small system --
   repeated `evals` times per dataset (the evaluations fastcalc's fit makes on average: its
   mean nfev), and the exponentials alone (mode 0). Compiled like the extension (-O3, no
   -ffast-math, no -march), timed in CPU time. The dot products here are plain loops (one dependent chain each); fastcalc's kernel sums
   them in four SSE2 lanes, so this "floor" is not a hard lower bound: the exponentials are. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void) { struct timespec t; clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t); return t.tv_sec + 1e-9 * t.tv_nsec; }

static void chol_solve(int n, double *A, const double *b, double *x) {
    for (int j = 0; j < n; j++) {
        double s = A[j * n + j];
        for (int k = 0; k < j; k++) s -= A[j * n + k] * A[j * n + k];
        double inv = 1.0 / sqrt(s);
        A[j * n + j] = inv;
        for (int i = j + 1; i < n; i++) {
            double t = A[i * n + j];
            for (int k = 0; k < j; k++) t -= A[i * n + k] * A[j * n + k];
            A[i * n + j] = t * inv;
        }
    }
    for (int i = 0; i < n; i++) { double t = b[i]; for (int k = 0; k < i; k++) t -= A[i * n + k] * x[k]; x[i] = t * A[i * n + i]; }
    for (int i = n - 1; i >= 0; i--) { double t = x[i]; for (int k = i + 1; k < n; k++) t -= A[k * n + i] * x[k]; x[i] = t * A[i * n + i]; }
}

static int exps_only(int m, int N, double evals) {
    double x[64], out[64], sink = 0.0;
    for (int i = 0; i < m; i++) x[i] = -5.0 + 10.0 * i / (m - 1);
    long total = (long)(N * evals);
    double t0 = now();
    for (long e = 0; e < total; e++) {
        double mu = 1e-9 * (e & 1023), inv2 = 1.0 / 1.44;
        for (int i = 0; i < m; i++) { double d = x[i] - mu; out[i] = exp(-0.5 * d * d * inv2); }
        sink += out[e % m];
    }
    double t = now() - t0;
    printf("exp alone, m=%d: %.2f us per fit, %.2f ns per exp (sink %g)\n", m, t / N * 1e6,
           t / (total * (double)m) * 1e9, sink);
    return 0;
}

int main(int argc, char **argv) {
    int dim = atoi(argv[1]);           /* 1: gaussian 64 pts, 2: gaussian_2d 5x5, 0: exp only */
    if (dim == 0) return exps_only(atoi(argv[4]), atoi(argv[2]), atof(argv[3]));
    int N = atoi(argv[2]);
    double evals = atof(argv[3]);      /* evaluations per fit */
    int m = dim == 1 ? 64 : 25, n = dim == 1 ? 4 : 5;
    double *x = malloc(sizeof(double) * 2 * m), *y = malloc(sizeof(double) * m);
    double f[64], J[64 * 5], r[64], A[25], g[5], dp[5], p[5];
    for (int i = 0; i < m; i++) {
        x[i] = dim == 1 ? -5.0 + 10.0 * i / (m - 1) : (i % 5) - 2.0;
        x[m + i] = (i / 5) - 2.0;
        y[i] = 1.0 + 0.01 * i;
    }
    long total = (long)(N * evals);
    double sink = 0.0, t0 = now();
    long exps = 0;
    for (long e = 0; e < total; e++) {
        p[0] = 10.0 + 1e-9 * (e & 1023); p[1] = 0.1; p[2] = dim == 1 ? 1.2 : 0.2; p[3] = 1.1; p[4] = 1.0;
        if (dim == 1) {
            double inv = 1.0 / p[2], inv2 = inv * inv;
            for (int i = 0; i < m; i++) {
                double d = x[i] - p[1], ex = exp(-0.5 * d * d * inv2);
                f[i] = p[0] * ex + p[3];
                double s = p[0] * ex * d * inv2;
                J[i] = ex; J[m + i] = s; J[2 * m + i] = s * d * inv; J[3 * m + i] = 1.0;
            }
        } else {
            double inv = 1.0 / p[3], inv2 = inv * inv;
            for (int i = 0; i < m; i++) {
                double dx = x[i] - p[1], dy = x[m + i] - p[2], r2 = dx * dx + dy * dy;
                double ex = exp(-0.5 * r2 * inv2), s = p[0] * ex * inv2;
                f[i] = p[0] * ex + p[4];
                J[i] = ex; J[m + i] = s * dx; J[2 * m + i] = s * dy; J[3 * m + i] = s * r2 * inv; J[4 * m + i] = 1.0;
            }
        }
        exps += m;
        double chi2 = 0.0;
        for (int i = 0; i < m; i++) { r[i] = y[i] - f[i]; chi2 += r[i] * r[i]; }
        for (int a = 0; a < n; a++) {
            double t = 0.0;
            for (int i = 0; i < m; i++) t += J[a * m + i] * r[i];
            g[a] = t;
            for (int b = 0; b <= a; b++) {
                double u = 0.0;
                for (int i = 0; i < m; i++) u += J[a * m + i] * J[b * m + i];
                A[a * n + b] = u + (a == b ? 1e-3 * u : 0.0);
            }
        }
        chol_solve(n, A, g, dp);
        sink += chi2 + dp[0];
    }
    double t = now() - t0;
    printf("dim %d: %d fits x %.2f evaluations: %.1f ms, %.2f us per fit, %.1f ns per exp-and-point (sink %g)\n",
           dim, N, evals, t * 1e3, t / N * 1e6, t / exps * 1e9, sink);
    return 0;
}
"""


def compile_floor(folder):
    source, binary = os.path.join(folder, "floor.c"), os.path.join(folder, "floor")
    with open(source, "w") as f:
        f.write(C_SOURCE)
    subprocess.run([os.environ.get("CC", "cc"), "-O3", "-o", binary, source, "-lm"], check=True)
    return binary


def fastcalc_per_fit(name, n):
    p = wl.gaussian_2d_problem(n) if name == "gaussian_2d" else wl.peak_fit_problem(name, n)
    model = models.get_model(name)
    fit_batch(model, p.x, p.Y[:100], p.p0[:100], n_threads=1)
    best, result = np.inf, None
    for _ in range(3):
        start = time.process_time()
        result = fit_batch(model, p.x, p.Y, p.p0, sigma=p.sigma, absolute_sigma=True,
                           n_threads=1)
        best = min(best, time.process_time() - start)
    return best / n * 1e6, float(result.nfev.mean())


def main(n=20_000):
    with tempfile.TemporaryDirectory() as folder:
        binary = compile_floor(folder)
        for name, dim, points in (("gaussian", "1", 64), ("gaussian_2d", "2", 25)):
            achieved, evals = fastcalc_per_fit(name, n)
            runs = [subprocess.run([binary, mode, str(n), f"{evals:.2f}", str(points)],
                                   capture_output=True, text=True, check=True).stdout.strip()
                    for mode in ("0", dim)]
            print(f"{name}: fastcalc {achieved:.2f} us per fit (CPU, one thread, "
                  f"{evals:.2f} evaluations per fit)")
            for line in runs:
                print(f"    floor: {line}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20_000)
