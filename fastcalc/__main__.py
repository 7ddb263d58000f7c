"""``python -m fastcalc``: the command line of :mod:`fastcalc.cli`."""
import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
