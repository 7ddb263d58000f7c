"""Reading datasets for ``python -m fastcalc fit``: CSV or ``.npy`` files, checked line by line.

Every problem with a file (missing, empty, ragged, non-numeric, wrong layout) raises
:class:`~fastcalc.cli._errors.UsageError` with a message that names the file and, for CSV, the
line and column, so the command line can print one clear line and exit with status 2.
"""
import csv
import os

import numpy as np

from ._errors import UsageError

__all__ = ["read_array", "split_datasets", "read_sigma"]


def _parse_number(cell):
    """float(cell); an empty cell is a missing value (NaN)."""
    cell = cell.strip()
    if cell == "":
        return float("nan")
    return float(cell)


def _delimiter(line):
    for candidate in (",", "\t", ";"):
        if candidate in line:
            return candidate
    return None   # whitespace-separated


def _split(line, delimiter):
    if delimiter is None:
        return line.split()
    return next(csv.reader([line], delimiter=delimiter))


def _read_csv(path):
    with open(path, newline="", encoding="utf-8-sig") as source:   # -sig: spreadsheet BOM
        lines = [(number, line.rstrip("\r\n")) for number, line in enumerate(source, 1)]
    lines = [(n, line) for n, line in lines if line.strip() and not line.lstrip().startswith("#")]
    if not lines:
        raise UsageError(f"{path}: no data (the file is empty or holds only comments)")
    delimiter = _delimiter(lines[0][1])
    header = None
    first_cells = _split(lines[0][1], delimiter)
    try:
        [_parse_number(c) for c in first_cells]
    except ValueError:
        header = [c.strip() for c in first_cells]
        lines = lines[1:]
    if not lines:
        raise UsageError(f"{path}: no data rows after the header")
    width = len(header) if header is not None else len(_split(lines[0][1], delimiter))
    rows = []
    for number, line in lines:
        cells = _split(line, delimiter)
        if len(cells) != width:
            raise UsageError(f"{path}: line {number} has {len(cells)} fields, expected {width} "
                             "(every row must have the same number of fields)")
        row = []
        for column, cell in enumerate(cells, 1):
            try:
                row.append(_parse_number(cell))
            except ValueError:
                raise UsageError(f"{path}: line {number}, column {column}: {cell.strip()!r} "
                                 "is not a number") from None
        rows.append(row)
    return np.array(rows, dtype=float), header


def _read_npy(path):
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise UsageError(f"{path}: not a readable .npy array ({exc})") from None
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == bool) \
            or np.iscomplexobj(array):
        raise UsageError(f"{path}: array of {array.dtype} values; expected real numbers")
    if array.ndim not in (1, 2):
        raise UsageError(f"{path}: array of shape {array.shape}; expected 1-D or 2-D")
    if array.size == 0:
        raise UsageError(f"{path}: the array is empty")
    return np.atleast_2d(array.astype(float)), None


def read_array(path):
    """Return ``(array, header)``: a 2-D float array and the CSV header names (or None).

    ``.npy`` files are loaded without pickles (1-D arrays become one row); anything else is read
    as delimited text (comma, tab, semicolon or whitespace), ``#`` lines skipped, a first row
    that is not all numbers taken as a header, empty cells read as NaN (missing).
    """
    if not os.path.exists(path):
        raise UsageError(f"{path}: no such file")
    if os.path.isdir(path):
        raise UsageError(f"{path}: is a directory, expected a CSV or .npy file")
    if path.lower().endswith(".npy"):
        return _read_npy(path)
    try:
        return _read_csv(path)
    except UnicodeDecodeError:
        raise UsageError(f"{path}: not a text (CSV) file; use .npy for binary arrays") from None


def split_datasets(array, header, *, x_column=False, x_row=False, by=None, path="DATA"):
    """Return ``(x, Y, names)``: shared x ``(m,)``, datasets ``Y`` ``(N, m)``, dataset names.

    ``x_column``: column 0 is x, every other column a dataset; ``x_row``: row 0 is x, every other
    row a dataset; neither: x is ``0..m-1`` and ``by`` ("rows", the default, or "columns") says
    which way the datasets run.
    """
    if x_column and by == "rows":
        raise UsageError("--x-column puts datasets in columns; it cannot be combined with --by rows")
    if x_row and by == "columns":
        raise UsageError("--x-row puts datasets in rows; it cannot be combined with --by columns")
    if x_column:
        if array.shape[1] < 2:
            raise UsageError(f"{path}: --x-column needs at least 2 columns (x and one dataset), "
                             f"found {array.shape[1]}")
        x, Y = array[:, 0], array[:, 1:].T
        names = header[1:] if header else [str(i) for i in range(Y.shape[0])]
    elif x_row:
        if array.shape[0] < 2:
            raise UsageError(f"{path}: --x-row needs at least 2 rows (x and one dataset), "
                             f"found {array.shape[0]}")
        x, Y = array[0], array[1:]
        names = [str(i) for i in range(Y.shape[0])]
    elif by == "columns":
        Y = array.T
        x = np.arange(Y.shape[1], dtype=float)
        names = header if header else [str(i) for i in range(Y.shape[0])]
    else:
        Y = array
        x = np.arange(Y.shape[1], dtype=float)
        names = [str(i) for i in range(Y.shape[0])]
    if not np.all(np.isfinite(x)):
        bad = int(np.flatnonzero(~np.isfinite(x))[0])
        raise UsageError(f"{path}: x value {bad} is missing or not finite")
    return np.ascontiguousarray(x), np.ascontiguousarray(Y), [str(n) for n in names]


def read_sigma(text, x_shape_full, Y_shape, *, x_column=False, x_row=False, by=None):
    """Return sigma from ``--sigma``: a positive number, or ``(m,)`` / ``(N, m)`` from a file.

    A file holds one value per point (``m`` values in any shape), or the full layout of DATA
    (x column/row included, ignored), or one value per point and dataset laid out like the
    datasets in DATA.
    """
    try:
        value = float(text)
    except ValueError:
        value = None
    if value is not None:
        if not (np.isfinite(value) and value > 0):
            raise UsageError(f"--sigma must be a positive number or a file, got {text!r}")
        return value
    array, header = read_array(text)
    n_sets, m = Y_shape
    if array.size == m:
        sigma = array.ravel()
    elif array.shape == x_shape_full:
        _, sigma, _ = split_datasets(array, header, x_column=x_column, x_row=x_row, by=by,
                                     path=text)
    elif (x_column or by == "columns") and array.shape == (m, n_sets):
        sigma = array.T
    elif array.shape == (n_sets, m):
        sigma = array
    else:
        raise UsageError(f"{text}: sigma of shape {array.shape} does not match the data: expected "
                         f"{m} values (one per point) or the layout of DATA {x_shape_full}")
    finite = sigma[np.isfinite(sigma)]
    if finite.size != sigma.size or np.any(finite <= 0):
        raise UsageError(f"{text}: every sigma must be a positive finite number")
    return np.ascontiguousarray(sigma, dtype=float)
