"""The one exception the command line turns into a one-line message and exit status 2, and
the output-path check the commands share."""
from pathlib import Path

__all__ = ["UsageError", "check_image_format"]


class UsageError(Exception):
    """Bad input to a command (malformed file, unknown model, missing optional package).

    ``python -m fastcalc`` prints ``fastcalc <command>: error: <message>`` on stderr and exits
    with status 2, the same status argparse uses for a bad command line.
    """


def check_image_format(option, path):
    """UsageError, before any work, for an image path whose extension matplotlib cannot write
    (``fit --plot-out``, ``bench --plot``)."""
    suffix = Path(path).suffix[1:].lower()
    if not suffix:
        return                  # matplotlib's default format
    from matplotlib.backend_bases import FigureCanvasBase
    supported = FigureCanvasBase.get_supported_filetypes()
    if suffix not in supported:
        raise UsageError(f"{option} {path}: unsupported image format {suffix!r} (supported: "
                         f"{', '.join(sorted(supported))})")
