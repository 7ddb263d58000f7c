"""Stub of the compiled finite-difference kernels (fastcalc/_differentiate.pyx)."""
from typing import Any

import numpy as np
from numpy.typing import NDArray



def stencil(kind: str, accuracy: int, order: int) -> tuple[tuple[float, ...], tuple[float, ...], float]: ...
def build_points(
    x: NDArray[np.float64],
    first_index: NDArray[np.intp],
    first_value: NDArray[np.float64],
    second_index: NDArray[np.intp],
    second_value: NDArray[np.float64],
) -> NDArray[np.float64]: ...
def compiled_values(
    function: Any,
    x: NDArray[np.float64],
    first_index: NDArray[np.intp],
    first_value: NDArray[np.float64],
    second_index: NDArray[np.intp],
    second_value: NDArray[np.float64],
    m: int = ...,
    n_threads: int | None = ...,
) -> NDArray[np.float64]: ...
def point_shifts(
    x: NDArray[np.float64],
    h: NDArray[np.float64],
    offsets: NDArray[np.float64],
    weights: NDArray[np.float64],
    factors: NDArray[np.float64],
) -> NDArray[np.float64]: ...
def combine(
    values: NDArray[np.float64],
    output: NDArray[np.intp],
    point: NDArray[np.intp],
    coefficient: NDArray[np.float64],
    side: NDArray[np.int8],
    scale: NDArray[np.float64],
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.uint8]]: ...
def relative_steps(x: NDArray[np.float64], c: float, c_rel: float) -> NDArray[np.float64]: ...
def axis_differences(
    function: Any,
    x: NDArray[np.float64],
    h: NDArray[np.float64],
    offsets: tuple[float, ...],
    weights: tuple[float, ...],
    vector: bool = ...,
    m: int = ...,
    n_threads: int | None = ...,
    rounding: float = ...,
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.uint8], int, int]: ...
def elementwise_values(
    function: Any, points: NDArray[np.float64], parameters: NDArray[np.float64] | None = ...
) -> NDArray[np.float64]: ...
def romberg(
    estimates: NDArray[np.float64],
    rounding: NDArray[np.float64],
    powers: NDArray[np.float64],
    safety: float,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]: ...

def elementwise_combine(
    values: NDArray[np.float64],
    x: NDArray[np.float64],
    h: NDArray[np.float64],
    offsets: NDArray[np.float64],
    weights: NDArray[np.float64],
    factors: NDArray[np.float64],
    order: int,
    ulps: float,
    shift: NDArray[np.float64] | None = ...,
    inner_a: int = ...,
    inner_b: int = ...,
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.uint8]]: ...
def unconverged_columns(
    estimates: NDArray[np.float64], rounding: NDArray[np.float64], rate: float, fastest: float
) -> NDArray[np.bool_]: ...
