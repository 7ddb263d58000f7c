"""Plain-text tables for the command line (bench, validate and fit all print one)."""

__all__ = ["format_table", "format_seconds", "format_number"]


def format_seconds(seconds):
    """Return a duration with a readable unit.

    >>> format_seconds(0.0000123), format_seconds(0.0123), format_seconds(12.3)
    ('12.3 us', '12.3 ms', '12.3 s')
    """
    if seconds is None or seconds != seconds:
        return "-"
    for scale, unit in ((1.0, "s"), (1e-3, "ms"), (1e-6, "us")):
        if abs(seconds) >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds * 1e9:.3g} ns"


def format_number(value, digits=3):
    """Return a float in compact scientific form, ``-`` for None/NaN, ints unchanged.

    >>> format_number(1.23456e-12), format_number(None), format_number(7)
    ('1.23e-12', '-', '7')
    """
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    if value != value:
        return "nan"
    return f"{value:.{digits}g}"


def format_table(headers, rows, right_align=()):
    """Return ``rows`` (sequences of strings) as an aligned table under ``headers``.

    Columns whose index is in ``right_align`` are right-aligned (numbers); the rest left.

    >>> print(format_table(["name", "value"], [["a", "1"], ["bb", "22"]], right_align=(1,)))
    name  value
    ----  -----
    a         1
    bb       22
    """
    cells = [[str(c) for c in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row):
        parts = [cell.rjust(w) if i in right_align else cell.ljust(w)
                 for i, (cell, w) in enumerate(zip(row, widths))]
        return "  ".join(parts).rstrip()

    out = [line(cells[0]), "  ".join("-" * w for w in widths)]
    out.extend(line(row) for row in cells[1:])
    return "\n".join(out)
