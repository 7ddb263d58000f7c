"""Shared fixtures: the NIST StRD data folder and reproducible random generators."""
import os
from pathlib import Path

import numpy as np
import pytest

# FASTCALC_NIST_DIR overrides the default: ../shared/data/nist_strd beside the checkout.
NIST_DIR = Path(os.environ.get("FASTCALC_NIST_DIR")
                or Path(__file__).resolve().parents[1].parent / "shared" / "data" / "nist_strd")


@pytest.fixture
def rng():
    return np.random.default_rng(20261124)


@pytest.fixture(scope="session")
def nist_dir():
    if not NIST_DIR.is_dir():
        message = f"NIST StRD data not found at {NIST_DIR} (the shared/ folder beside the checkout)"
        if os.environ.get("CI"):
            pytest.fail(message + "; CI must run the NIST tests")
        pytest.skip(message)
    return NIST_DIR
