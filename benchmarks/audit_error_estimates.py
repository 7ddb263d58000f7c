"""Audit of the finite-difference error estimates: how often does status 0 come with an
estimate below the actual error?

Runs every case of :mod:`fastcalc.cli._estimate_audit` (elementary functions with known
derivatives at points from 1e-8 to 1e8, with and without bounds) through derivative,
gradient, jacobian and hessian with ``full_output=True``, for every method, and prints per
routine and method: the components, how many have a non-zero status (honest: the routine
says not to trust them), how many are dishonest (status 0 and ``|error| > estimate``), the
rate of dishonest ones among the status-0 components, and the worst error/estimate ratio.
Run (about 10 s):

    python benchmarks/audit_error_estimates.py [--every K]
"""
import argparse
import time
import warnings


def main(argv=None):
    from fastcalc.cli._estimate_audit import audit, cases, format_tallies

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--every", type=int, default=1,
                        help="keep every K-th case (a cheaper run)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)     # log, sqrt of negative points
        tallies = audit(every=args.every)
    print(f"{len(cases(args.every))} (function, point, bounds) cases; "
          f"{time.perf_counter() - started:.1f} s")
    print(format_tallies(tallies))
    for t in tallies:
        if t.examples:
            print(f"dishonest, {t.routine} {t.method}: {'; '.join(t.examples)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
