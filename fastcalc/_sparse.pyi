"""Stub of the compiled sparse finite-difference kernels (fastcalc/_sparse.pyx)."""
import numpy as np
from numpy.typing import NDArray

def greedy_groups(
    col_ptr: NDArray[np.intp],
    col_rows: NDArray[np.intp],
    row_ptr: NDArray[np.intp],
    row_cols: NDArray[np.intp],
    order: NDArray[np.intp],
) -> tuple[NDArray[np.intp], int]: ...
def clashing_row(
    row_ptr: NDArray[np.intp], row_cols: NDArray[np.intp], groups: NDArray[np.intp], count: int
) -> int: ...
def shift_points(
    points: NDArray[np.float64],
    x: NDArray[np.float64],
    h: NDArray[np.float64],
    columns: NDArray[np.intp],
    groups: NDArray[np.intp],
    offsets: NDArray[np.float64],
    first_row: int,
    count: int,
) -> None: ...
def grouped_entries(
    values: NDArray[np.float64],
    base_row: int,
    row_ptr: NDArray[np.intp],
    row_cols: NDArray[np.intp],
    column_row: NDArray[np.intp],
    column_kind: NDArray[np.intp],
    kind_stride: NDArray[np.intp],
    kind_weights: NDArray[np.float64],
    center_weight: NDArray[np.float64],
    kind_offsets: NDArray[np.intp],
    h: NDArray[np.float64],
    data: NDArray[np.float64],
    magnitude: NDArray[np.float64] | None = ...,
) -> int: ...
def transposed(
    row_ptr: NDArray[np.intp], row_cols: NDArray[np.intp], n: int
) -> tuple[NDArray[np.intp], NDArray[np.intp]]: ...
def overlap_degrees(
    col_ptr: NDArray[np.intp], col_rows: NDArray[np.intp], row_ptr: NDArray[np.intp]
) -> NDArray[np.intp]: ...
