"""``python -m fastcalc fit``: fit every dataset of a file with a built-in model.

The file is read by :mod:`fastcalc.cli._datafile`; all datasets are fitted in one ``fit_batch``
call; the table has one row per dataset: its name, each parameter and its standard error, chi2,
reduced chi2, status and message. Exit status 1 when some dataset was not fitted (status != 0: too
few points, no convergence, ...; as ``validate`` for a failed check): the table is still complete
and a line on stderr names those datasets.
"""
import csv
import re
import sys
from pathlib import Path

import numpy as np

from ._datafile import read_array, read_sigma, split_datasets
from ._errors import UsageError, check_image_format
from ._table import format_table

__all__ = ["add_parser", "run", "resolve_model", "fit_table"]


def resolve_model(name):
    """The built-in model called ``name`` (``polynomial3``, ``gaussian``, ...), or UsageError."""
    from fastcalc import models
    try:
        return models.get_model(name)
    except (KeyError, ValueError, TypeError) as exc:
        raise UsageError(str(exc).strip("'\"")) from None


def _polynomial_degree(name):
    """N of a polynomial model name (``polyN``, ``polynomialN``, ``polynomial(N)``), else None:
    checked against the data before the model, with its N + 1 parameter names, is built (a
    name like poly100000000 would otherwise exhaust the memory first)."""
    match = re.fullmatch(r"\s*poly(?:nomial)?[\s_\-]*\(?\s*(\d+)\s*\)?\s*", name.lower())
    return int(match.group(1)) if match else None


def _messages(result):
    from .._status import messages_of
    message = getattr(result, "message", None)
    if message is None:
        return list(messages_of(np.asarray(result.status)))
    return list(np.broadcast_to(np.asarray(message, dtype=object), np.shape(result.status)))


def fit_table(result, names, param_names):
    """Return (headers, rows of Python values) of a BatchFitResult, one row per dataset."""
    headers = ["dataset"]
    for p in param_names:
        headers += [p, f"{p}_stderr"]
    headers += ["chi2", "redchi2", "status", "message"]
    params, stderr = np.asarray(result.params), np.asarray(result.stderr)
    chi2, redchi2 = np.asarray(result.chi2), np.asarray(result.redchi2)
    status, messages = np.asarray(result.status), _messages(result)
    rows = []
    for i, name in enumerate(names):
        row = [name]
        for j in range(len(param_names)):
            row += [float(params[i, j]), float(stderr[i, j])]
        row += [float(chi2[i]), float(redchi2[i]), int(status[i]), str(messages[i])]
        rows.append(row)
    return headers, rows


def _write_csv(path, headers, rows):
    try:
        with open(path, "w", newline="") as out:
            writer = csv.writer(out)
            writer.writerow(headers)
            for row in rows:
                writer.writerow([format(c, ".17g") if isinstance(c, float) else c for c in row])
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror}") from None


def _print_table(headers, rows):
    text = [[format(c, ".6g") if isinstance(c, float) else str(c) for c in row] for row in rows]
    numeric = tuple(range(1, len(headers) - 1))
    print(format_table(headers, text, right_align=numeric))


def _plot(path, index, name, model, x, y, sigma, params, model_name):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    keep = np.isfinite(y)
    if sigma is not None:
        s = np.broadcast_to(sigma, y.shape)
        ax.errorbar(x[keep], y[keep], yerr=s[keep], fmt="o", ms=3, lw=0.8, label="data")
    else:
        ax.plot(x[keep], y[keep], "o", ms=3, label="data")
    fine = np.linspace(x.min(), x.max(), max(400, 4 * x.size))
    if np.all(np.isfinite(params)):
        ax.plot(fine, model(fine, *params), "-", lw=1.5, label=f"{model_name} fit")
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.set_title(f"dataset {index} ({name})" if name != str(index) else f"dataset {index}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def add_parser(commands):
    """Add the ``fit`` subcommand to ``commands`` (argparse's subparsers)."""
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


def run(args):
    """The ``fit`` command; returns the exit status, 0 or 1 when a dataset was not fitted (bad
    input raises UsageError)."""
    if args.plot is not None:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise UsageError("--plot needs matplotlib: pip install 'fastcalc[plot]'") from None
        if args.plot_out:
            check_image_format("--plot-out", args.plot_out)
    elif args.plot_out:
        raise UsageError("--plot-out needs --plot N (the dataset to draw)")
    degree = _polynomial_degree(args.model)
    model = resolve_model(args.model) if degree is None else None
    if getattr(model, "x_dim", 1) != 1:
        raise UsageError(f"model {args.model!r} needs 2-D coordinates; the fit command handles "
                         "1-D x only")
    array, header = read_array(args.data)
    x, Y, names = split_datasets(array, header, x_column=args.x_column, x_row=args.x_row,
                                 by=args.by, path=args.data)
    n_params = len(model.param_names) if degree is None else degree + 1
    if x.size < n_params:
        raise UsageError(f"{args.data}: {x.size} points per dataset, but model {args.model!r} has "
                         f"{n_params} parameters: need at least {n_params} points")
    if model is None:
        model = resolve_model(args.model)
    sigma = None
    if args.sigma is not None:
        sigma = read_sigma(args.sigma, array.shape, Y.shape, x_column=args.x_column,
                           x_row=args.x_row, by=args.by)
    if args.plot is not None and not 0 <= args.plot < Y.shape[0]:
        raise UsageError(f"--plot {args.plot}: no such dataset (there are {Y.shape[0]}, "
                         "numbered from 0)")

    from fastcalc.fitting import fit_batch
    try:
        result = fit_batch(model, x, Y, sigma=sigma, absolute_sigma=args.absolute_sigma,
                           method=args.method)
    except (ValueError, TypeError) as exc:
        raise UsageError(f"{args.data}: {exc}") from None

    headers, rows = fit_table(result, names, list(model.param_names))
    if args.out:
        _write_csv(args.out, headers, rows)
        ok = int(np.sum(np.asarray(result.status) == 0))
        print(f"fitted {len(rows)} datasets with {args.model}: {ok} converged; "
              f"wrote {args.out}", file=sys.stderr)
    else:
        _print_table(headers, rows)
    if args.plot is not None:
        path = args.plot_out or f"fit-dataset-{args.plot}.png"
        i = args.plot
        sigma_i = None if sigma is None else (sigma if np.ndim(sigma) < 2 else sigma[i])
        try:
            _plot(path, i, names[i], model, x, Y[i], sigma_i, np.asarray(result.params)[i],
                  args.model)
        except OSError as exc:
            raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None
        except ValueError as exc:       # e.g. a format matplotlib refuses (checked above)
            raise UsageError(f"cannot write {path}: {exc}") from None
        print(f"wrote {path}", file=sys.stderr)
    failed = np.flatnonzero(np.asarray(result.status) != 0)
    if failed.size:
        listed = ", ".join(str(names[i]) for i in failed[:10])
        listed += ", ..." if failed.size > 10 else ""
        print(f"{failed.size} of {len(rows)} datasets not fitted (status != 0, see the message "
              f"column): {listed}", file=sys.stderr)
        return 1
    return 0
