"""Command line: ``python -m fastcalc {bench, validate, fit}`` (also installed as ``fastcalc``).

* ``bench``: fastcalc and SciPy timed side by side on the headline workloads of every area.
* ``validate``: the accuracy of every public routine against SciPy and exact answers;
  exit status 1 when any check fails.
* ``fit``: fit every dataset of a CSV or ``.npy`` file with a built-in model; exit status 1
  when a dataset could not be fitted.

Exit status: 0 success, 1 a validation or a dataset's fit failed, 2 bad command line or bad
input file.

Layout: one module per subcommand (``_bench``, ``_validate``, ``_fit``), each with
``add_parser(commands)`` and ``run(args)``; beside them what they share: ``_workloads`` (the
problems of bench and validate, also used by ``benchmarks/``), ``_estimate_audit`` (validate's
audit of the error estimates), ``_datafile`` (fit's CSV/.npy reader), ``_table`` (text tables)
and ``_errors`` (UsageError: exit status 2).
"""
import argparse
import os
import sys

from . import _bench, _fit, _validate
from ._errors import UsageError

__all__ = ["main", "build_parser"]

# Each subcommand's module adds its parser (add_parser) and runs it (run); this order is --help's.
_COMMANDS = {"bench": _bench, "validate": _validate, "fit": _fit}


def build_parser():
    """Return the argument parser of ``python -m fastcalc``."""
    from fastcalc import __version__
    parser = argparse.ArgumentParser(
        prog="fastcalc", description="fastcalc: numerical calculus at scale, checked against SciPy.",
        epilog="exit status: 0 success, 1 a validation check, benchmark workload or "
               "dataset fit failed, 2 bad command line or input file")
    parser.add_argument("--version", action="version", version=f"fastcalc {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in _COMMANDS.values():
        command.add_parser(commands)
    return parser


def main(argv=None):
    """Run the command line; return the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return _COMMANDS[args.command].run(args)
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
