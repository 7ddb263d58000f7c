"""The one exception the command line turns into a one-line message and exit status 2."""

__all__ = ["UsageError"]


class UsageError(Exception):
    """Bad input to a command (malformed file, unknown model, missing optional package).

    ``python -m fastcalc`` prints ``fastcalc <command>: error: <message>`` on stderr and exits
    with status 2, the same status argparse uses for a bad command line.
    """
