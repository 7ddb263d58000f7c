"""Robustness fixes of differentiation / roots / optimize (bad input named, statuses)."""
import numpy as np
import pytest

import fastcalc as fc


def test_lagrange_nan_constraint_gives_status_3_without_linalg_error(capfd):
    r = fc.lagrange(lambda x: x[0] + x[1], lambda x: np.nan, [1.0, 0.5])
    assert r.status == 3 and not r.success
    assert "DLASCL" not in capfd.readouterr().err


def test_lagrange_nonfinite_x0_names_x0():
    with pytest.raises(ValueError, match="x0"):
        fc.lagrange(lambda x: x[0] + x[1], lambda x: x[0] - 1.0, [np.nan, 1.0])


def test_gradient_descent_f_returning_array_names_f():
    with pytest.raises(TypeError, match="f must"):
        fc.gradient_descent(lambda x: np.ones(3), [1.0, 2.0])
