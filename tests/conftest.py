"""Shared fixtures: the NIST StRD data folder and reproducible random generators."""
import numpy as np
import pytest

from fastcalc import nist


@pytest.fixture
def rng():
    return np.random.default_rng(20261124)


@pytest.fixture(scope="session")
def nist_dir():
    """The StRD folder: FASTCALC_NIST_DIR when set, else the copy shipped with the package
    (never missing, so the NIST tests never skip)."""
    return nist.default_directory()
