"""Inputs are never mutated and results never alias inputs, for every public routine.

Each case builds fresh input arrays (every array argument: points, data, sigma, p0, bounds,
steps, per-element parameters, brackets), runs the routine once with all of them read-only
(a write would raise) and once writeable (a silent in-place write would show in the
compare-after-call), and checks that no array in the result shares memory with any input.
The fast paths that hand an input straight to a kernel (float64, 1-D, C-contiguous) are the
ones at risk, so the inputs are exactly of that kind.
"""
import warnings

import numpy as np
import pytest

import fastcalc as fc
from fastcalc import models
from fastcalc._testfunctions import low_level

X = np.linspace(0.0, 4.0, 15)
Y = 2.0 * np.exp(-X / 1.5) + 0.5 + 0.01 * np.sin(7 * X)
GAUSS_Y = 3.0 * np.exp(-(X - 2.0) ** 2 / 0.5) + 0.2 + 0.01 * np.cos(5 * X)


def _field(x):
    return float(np.sum(np.sin(x) * x ** 2))


def _field_grad(x):
    return np.cos(x) * x ** 2 + 2 * x * np.sin(x)


def _vector(x):
    return np.array([x[0] * x[1], np.sin(x[2]), x.sum()])


def _circle_exp(v):
    return np.array([v[0] ** 2 + v[1] ** 2 - 4.0, np.exp(v[0]) + v[1] - 1.0])


def _circle_exp_vectorized(V):
    return np.stack([V[0] ** 2 + V[1] ** 2 - 4.0, np.exp(V[0]) + V[1] - 1.0])


def _gauss(x, a, mu, s, c):
    return a * np.exp(-(x - mu) ** 2 / (2 * s ** 2)) + c


POINT = np.array([1.0, 2.0, -0.5])

# name -> (inputs: dict of arrays, run(inputs) -> result)
CASES = {
    "derivative": ({"x": X.copy(), "step": np.full(X.size, 1e-3)},
                   lambda a: fc.derivative(np.sin, a["x"], step=a["step"], full_output=True)),
    "derivative_args": ({"x": X.copy(), "p": np.linspace(1, 2, X.size)},
                        lambda a: fc.derivative(lambda x, p: np.sin(p * x), a["x"],
                                                args=(a["p"],), method="richardson")),
    "gradient": ({"x": POINT.copy(), "lb": np.full(3, -1.0), "ub": np.full(3, 2.0)},
                 lambda a: fc.gradient(_field, a["x"], bounds=(a["lb"], a["ub"]),
                                       full_output=True)),
    "gradient_compiled": ({"x": POINT.copy(), "step": np.full(3, 1e-4)},
                          lambda a: fc.gradient(low_level("rosenbrock"), a["x"], step=a["step"])),
    "gradient_single_component": ({"x": np.array([0.3])},
                                  lambda a: fc.gradient(lambda v: float(v[0] ** 2), a["x"])),
    "jacobian": ({"x": POINT.copy()}, lambda a: fc.jacobian(_vector, a["x"], full_output=True)),
    "jacobian_compiled": ({"x": POINT.copy()},
                          lambda a: fc.jacobian(low_level("vector_field"), a["x"])),
    "hessian": ({"x": POINT.copy()}, lambda a: fc.hessian(_field, a["x"], full_output=True)),
    "hessian_grad": ({"x": POINT.copy()}, lambda a: fc.hessian(None, a["x"], grad=_field_grad)),
    "check_grad": ({"x": POINT.copy()}, lambda a: fc.check_grad(_field, _field_grad, a["x"])),
    "taylor": ({"x0": np.array(0.4)}, lambda a: fc.taylor(np.exp, a["x0"], 3)),
    "newton_scalar": ({"x0": np.array(3.0)},
                      lambda a: fc.newton(lambda t: t ** 3 - 2 * t - 5, a["x0"],
                                          full_output=True)),
    "newton_batch": ({"x0": np.full(5, 2.0), "a": np.arange(1.0, 6.0)},
                     lambda a: fc.newton(lambda t, p: t ** 3 - p, a["x0"],
                                         lambda t, p: 3 * t * t, args=(a["a"],),
                                         full_output=True)),
    "newton_batch_converged_start": ({"x0": np.array([1.0, 2.0, 3.0])},
                                     lambda a: fc.newton(lambda t: t - np.round(t), a["x0"],
                                                         lambda t: np.ones_like(t))),
    "newton_batch_bracket": ({"x0": np.full(4, 1.5), "lo": np.zeros(4), "hi": np.full(4, 3.0),
                              "a": np.arange(1.0, 5.0)},
                             lambda a: fc.newton(lambda t, p: t ** 2 - p, a["x0"],
                                                 args=(a["a"],),
                                                 bracket=(a["lo"], a["hi"]),
                                                 full_output=True)),
    "newton_batch_compiled": ({"x0": np.full(5, 2.0), "a": np.arange(1.0, 6.0)},
                              lambda a: fc.newton(low_level("cube_root_eq"), a["x0"],
                                                  low_level("cube_root_eq_prime"),
                                                  args=(a["a"],), full_output=True)),
    "newton_system": ({"x0": np.array([1.0, -1.5])},
                      lambda a: fc.newton_system(_circle_exp, a["x0"])),
    "newton_system_batch": ({"x0": np.array([[1.0, -1.5], [-2.0, 1.0]])},
                            lambda a: fc.newton_system(_circle_exp_vectorized, a["x0"],
                                                       vectorized=True)),
    "newton_system_compiled": ({"x0": np.array([[1.0, -1.5], [-2.0, 1.0]])},
                               lambda a: fc.newton_system(low_level("circle_exp_system"),
                                                          a["x0"],
                                                          low_level("circle_exp_jacobian"))),
    "newton_system_solved_start": ({"x0": np.array([0.0, 0.0])},
                                   lambda a: fc.newton_system(lambda v: v.copy(), a["x0"])),
    "gradient_descent": ({"x0": np.array([0.0, 0.0])},
                         lambda a: fc.gradient_descent(lambda v: float((v[0] - 1) ** 2
                                                                       + (v[1] + 2) ** 2),
                                                       a["x0"], return_path=True)),
    "gradient_descent_at_minimum": ({"x0": np.array([1.0, -2.0])},
                                    lambda a: fc.gradient_descent(
                                        lambda v: float((v[0] - 1) ** 2 + (v[1] + 2) ** 2),
                                        a["x0"], lambda v: np.array([2 * (v[0] - 1),
                                                                     2 * (v[1] + 2)]))),
    "lagrange": ({"x0": np.array([1.0, 0.5]), "m0": np.array([0.5])},
                 lambda a: fc.lagrange(lambda v: v[0] + v[1], lambda v: v[0] ** 2 + v[1] ** 2 - 1,
                                       a["x0"], multipliers0=a["m0"])),
    "chi2": ({"y": Y.copy(), "model": Y + 0.1, "sigma": np.full(X.size, 0.5)},
             lambda a: fc.chi2(a["y"], a["model"], a["sigma"])),
    "chi2_batch": ({"y": np.stack([Y, Y]), "model": np.stack([Y, Y + 1])},
                   lambda a: fc.chi2(a["y"], a["model"])),
    "linear_fit": ({"x": X.copy(), "y": Y.copy(), "sigma": np.full(X.size, 0.1)},
                   lambda a: fc.linear_fit(a["x"], a["y"], a["sigma"])),
    "polyfit": ({"x": X.copy(), "y": Y.copy(), "sigma": np.full(X.size, 0.1)},
                lambda a: fc.polyfit(a["x"], a["y"], 2, a["sigma"])),
    "fit_builtin": ({"x": X.copy(), "y": Y.copy(), "sigma": np.full(X.size, 0.1),
                     "p0": np.array([1.0, 1.0, 0.0]), "lo": np.array([0.0, 0.1, -1.0]),
                     "hi": np.array([10.0, 10.0, 1.0])},
                    lambda a: fc.fit(models.exponential, a["x"], a["y"], a["p0"],
                                     sigma=a["sigma"], bounds=(a["lo"], a["hi"]))),
    "fit_python": ({"x": X.copy(), "y": Y.copy(), "p0": np.array([1.0, 1.0, 0.0])},
                   lambda a: fc.fit(lambda x, A, t, c: A * np.exp(-x / t) + c, a["x"], a["y"],
                                    a["p0"])),
    "fit_compiled": ({"x": X.copy(), "y": GAUSS_Y.copy(), "p0": np.array([2.0, 2.2, 0.8, 0.0])},
                     lambda a: fc.fit(low_level("gaussian_model"), a["x"], a["y"], a["p0"])),
    "fit_gd": ({"x": X.copy(), "y": Y.copy(), "p0": np.array([1.5, 1.2, 0.4])},
               lambda a: fc.fit(models.exponential, a["x"], a["y"], a["p0"], method="gd")),
    "fit_batch_builtin": ({"x": X.copy(), "Y": np.stack([Y, Y + 0.1, Y * 2]),
                           "sigma": np.full(X.size, 0.1)},
                          lambda a: fc.fit_batch(models.exponential, a["x"], a["Y"],
                                                 sigma=a["sigma"])),
    "fit_batch_per_dataset": ({"x": np.stack([X, X + 0.5]), "Y": np.stack([Y, Y]),
                               "p0": np.array([[1.0, 1.0, 0.0], [2.0, 1.0, 0.0]])},
                              lambda a: fc.fit_batch(models.exponential, a["x"], a["Y"],
                                                     a["p0"])),
    "fit_batch_python": ({"x": X.copy(), "Y": np.stack([GAUSS_Y, GAUSS_Y + 0.1]),
                          "p0": np.array([2.0, 2.2, 0.8, 0.0])},
                         lambda a: fc.fit_batch(_gauss, a["x"], a["Y"], a["p0"])),
    "fit_batch_compiled": ({"x": X.copy(), "Y": np.stack([GAUSS_Y, GAUSS_Y + 0.1]),
                            "p0": np.array([2.0, 2.2, 0.8, 0.0])},
                           lambda a: fc.fit_batch(low_level("gaussian_model"), a["x"], a["Y"],
                                                  a["p0"])),
    "model_call": ({"x": X.copy()}, lambda a: models.exponential(a["x"], 2.0, 1.5, 0.5)),
    "model_call_params_array": ({"x": X.copy(), "p": np.array([2.0, 1.5, 0.5])},
                                lambda a: models.exponential(a["x"], a["p"])),
    "model_line_identity": ({"x": X.copy()}, lambda a: models.line(a["x"], 0.0, 1.0)),
    "model_polynomial": ({"x": X.copy()}, lambda a: models.polynomial(1)(a["x"], 0.0, 1.0)),
    "model_jacobian": ({"x": X.copy()},
                       lambda a: models.exponential.jacobian(a["x"], 2.0, 1.5, 0.5)),
    "model_guess": ({"x": X.copy(), "y": Y.copy()}, lambda a: models.exponential.guess(a["x"],
                                                                                       a["y"])),
    "model_gaussian_2d": ({"xy": np.stack([X, X[::-1]])},
                          lambda a: models.gaussian_2d(a["xy"], 1.0, 2.0, 2.0, 1.0, 0.0)),
}


def _result_arrays(result):
    if isinstance(result, dict):
        values = list(result.values())
    elif hasattr(result, "params"):
        values = [getattr(result, k) for k in dir(result) if not k.startswith("_")]
    elif hasattr(result, "coef"):
        values = [result.coef]
    else:
        values = [result]
    return [v for v in values if isinstance(v, np.ndarray)]


def _fresh(inputs, writeable):
    out = {}
    for key, value in inputs.items():
        copy = np.array(value, dtype=np.float64, order="C")
        copy.flags.writeable = writeable
        out[key] = copy
    return out


@pytest.mark.parametrize("writeable", [False, True], ids=["readonly", "writeable"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_inputs_never_mutated_and_results_never_alias(name, writeable):
    inputs, run = CASES[name]
    arrays = _fresh(inputs, writeable)
    before = {key: value.copy() for key, value in arrays.items()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        result = run(arrays)
    for key, value in arrays.items():
        assert np.array_equal(value, before[key], equal_nan=True), f"{name} mutated {key}"
        assert value.flags.writeable == writeable
    for output in _result_arrays(result):
        for key, value in arrays.items():
            assert not np.shares_memory(output, value), \
                f"{name}: a result array shares memory with input {key}"


def test_masked_values_are_missing_points_never_silently_used():
    x = np.linspace(0.0, 4.0, 9)
    y = 2.0 * x + 1.0
    y_bad = y.copy()
    y_bad[-1] = 1e6                                      # masked: must not count
    masked = np.ma.array(y_bad, mask=[0] * 8 + [1])
    np.testing.assert_allclose(fc.linear_fit(x, masked).params, [1.0, 2.0], rtol=1e-12)
    np.testing.assert_allclose(fc.fit(fc.models.line, x, masked).params, [1.0, 2.0],
                               rtol=1e-9)
    with pytest.raises(ValueError, match="x must be finite"):   # no derivative at a gap
        fc.derivative(np.sin, np.ma.array([0.0, 0.5], mask=[1, 0]))


def test_python_models_that_modify_their_arguments_raise_and_change_nothing():
    def shifting(x, a, b):
        x += 1.0
        return a + b * x

    def bumping(x, a, b):
        a += 1.0
        return a + b * x

    x = np.arange(6.0)
    y = 2.0 * x + 1.0
    for call in (lambda: fc.fit(shifting, x, y, p0=[0.0, 1.0]),
                 lambda: fc.fit_batch(shifting, x, np.vstack([y, y]), p0=[0.0, 1.0]),
                 lambda: fc.fit_batch(bumping, x, np.vstack([y, y]), p0=[0.0, 1.0])):
        with pytest.raises(ValueError, match="read-only"):
            call()
    np.testing.assert_array_equal(x, np.arange(6.0))


def test_elementwise_function_cannot_change_the_callers_parameters():
    c = np.array([2.0, 3.0])

    def f(x, c):
        c[...] = 0.0
        return x * x - c

    with pytest.raises(ValueError, match="read-only"):
        fc.derivative(f, np.ones(2), args=(c,))
    np.testing.assert_array_equal(c, [2.0, 3.0])
