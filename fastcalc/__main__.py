"""Command line: ``python -m fastcalc {bench, validate, fit}`` (also installed as ``fastcalc``).

* ``bench``: fastcalc and SciPy timed side by side on the headline workloads of every area.
* ``validate``: the accuracy of every public routine against SciPy and exact answers;
  exit status 1 when any check fails.
* ``fit``: fit every dataset of a CSV or ``.npy`` file with a built-in model; exit status 1
  when a dataset could not be fitted.

Exit status: 0 success, 1 a validation or a dataset's fit failed, 2 bad command line or bad
input file.
"""
import argparse
import os
import sys

from ._usage_error import UsageError

__all__ = ["main", "build_parser"]


def _area_list(text):
    from ._bench import AREAS
    areas = [a.strip() for a in text.split(",") if a.strip()]
    unknown = [a for a in areas if a not in AREAS]
    if unknown or not areas:
        raise argparse.ArgumentTypeError(
            f"unknown area {', '.join(unknown) or repr(text)}; choose from {', '.join(AREAS)}")
    return areas


def build_parser():
    """Return the argument parser of ``python -m fastcalc``."""
    from fastcalc import __version__
    parser = argparse.ArgumentParser(
        prog="fastcalc", description="fastcalc: numerical calculus at scale, checked against SciPy.",
        epilog="exit status: 0 success, 1 a validation check, benchmark workload or "
               "dataset fit failed, 2 bad command line or input file")
    parser.add_argument("--version", action="version", version=f"fastcalc {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    bench = commands.add_parser(
        "bench", help="time fastcalc against SciPy on the headline workloads",
        description="Time fastcalc and SciPy (and numdifftools) side by side: median times, "
                    "speed-up ratio and accuracy of both, per workload. Progress goes to stderr, "
                    "the table to stdout.")
    bench.add_argument("--quick", action="store_true",
                       help="smaller problems and fewer repeats (under a minute on 2 cores)")
    bench.add_argument("--only", type=_area_list, metavar="AREA[,AREA...]",
                       help="run only these areas: derivatives, hessian, newton, systems, "
                            "fitting, gaussian_2d, inference, nist, sparse")
    bench.add_argument("--json", metavar="PATH", help="also write every row as JSON to PATH")
    bench.add_argument("--plot", metavar="PATH",
                       help="also write a PNG bar chart of the speed-up ratios (needs matplotlib)")
    bench.add_argument("--nist-dir", metavar="DIR",
                       help="folder of NIST StRD .dat files (default: fastcalc.nist's search)")
    # Tiny sizes for the command's own tests; overrides --quick.
    bench.add_argument("--sizes", choices=("tiny", "quick", "full"), help=argparse.SUPPRESS)

    validate = commands.add_parser(
        "validate", help="check every routine's accuracy against SciPy and exact answers",
        description="Check the accuracy of every public routine against exact answers and "
                    "SciPy; print a pass/fail table; exit status 1 if any check fails.")
    validate.add_argument("--nist-dir", metavar="DIR",
                          help="folder of NIST StRD .dat files (default: fastcalc.nist's)")

    fit = commands.add_parser(
        "fit", help="fit every dataset in a CSV or .npy file with a built-in model",
        description="Fit every dataset of DATA with a built-in model (fit_batch) and print a "
                    "table: dataset, each parameter and its standard error, chi2, redchi2, "
                    "status, message. DATA is a CSV file (header row optional) or a .npy array. "
                    "Without --x-column/--x-row, x is 0, 1, 2, ... and --by says whether each "
                    "row (default) or each column is a dataset. Missing values (empty CSV "
                    "cells, NaN) are skipped. Exit status 1 when a dataset could not be "
                    "fitted (status != 0; the table still has every row).")
    fit.add_argument("data", metavar="DATA", help="CSV or .npy file")
    fit.add_argument("--model", required=True, metavar="NAME",
                     help="built-in model: line, exponential, gaussian, lorentzian, logistic, "
                          "power_law, sine, polynomial<DEG> (e.g. polynomial3)")
    layout = fit.add_mutually_exclusive_group()
    layout.add_argument("--x-column", action="store_true",
                        help="the first column is x; every other column is a dataset")
    layout.add_argument("--x-row", action="store_true",
                        help="the first row is x; every other row is a dataset")
    fit.add_argument("--by", choices=("rows", "columns"),
                     help="datasets are rows (default) or columns; implied by --x-row/--x-column")
    fit.add_argument("--sigma", metavar="VALUE_OR_FILE",
                     help="uncertainty of every point (a number), or a CSV/.npy file: one value "
                          "per point, or one per point and dataset laid out like DATA")
    fit.add_argument("--absolute-sigma", action="store_true",
                     help="sigma is absolute (curve_fit's absolute_sigma): stderr not rescaled")
    fit.add_argument("--method", choices=("lm", "gd"), default="lm",
                     help="Levenberg-Marquardt (default) or gradient descent on chi2")
    fit.add_argument("--out", metavar="PATH", help="write the table as CSV to PATH")
    fit.add_argument("--plot", type=int, metavar="N",
                     help="draw dataset N (0-based) and its fitted curve (needs matplotlib)")
    fit.add_argument("--plot-out", metavar="PNG",
                     help="file for --plot (default: fit-dataset-N.png)")
    return parser


def main(argv=None):
    """Run the command line; return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "bench":
            from ._bench import run_bench
            return run_bench(args)
        if args.command == "validate":
            from ._validate import run_validate
            return run_validate(args)
        from ._fit_command import run_fit
        return run_fit(args, parser=parser)
    except UsageError as exc:
        print(f"fastcalc {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("fastcalc: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader of stdout went away (e.g. `| head`): not an error; silence the final flush.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
