"""fastcalc's version, written in one place: pyproject.toml's ``version``, read back from the
installed distribution's metadata."""
from importlib.metadata import PackageNotFoundError, version

__all__ = ["__version__"]

try:
    __version__ = version("fastcalc")
except PackageNotFoundError:        # imported from a source tree that was never installed
    __version__ = "0+unknown"
