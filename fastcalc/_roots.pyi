"""Stub of the compiled Newton-Raphson kernels (fastcalc/_roots.pyx)."""
import enum
from typing import Any

import numpy as np
from numpy.typing import NDArray
from typing_extensions import disjoint_base

# x, fun, status, nit, nfev (fun, nit, nfev None unless details)
_CompiledArrays = tuple[NDArray[np.float64], NDArray[np.float64] | None, NDArray[np.intp],
                        NDArray[np.intp] | None, NDArray[np.intp] | None]

class Method(enum.IntEnum):
    NEWTON = 0
    HALLEY = 1
    SECANT = 2

def newton_compiled(
    f: Any,
    fprime: Any | None,
    fprime2: Any | None,
    x0: NDArray[np.float64],
    params: NDArray[np.float64],
    a: NDArray[np.float64],
    b: NDArray[np.float64],
    tol: float,
    rtol: float,
    ftol: float,
    maxiter: int,
    method: int,
    n_threads: int | None,
    details: bool = ...,
) -> _CompiledArrays: ...

def newton_block(
    f: Any,
    x0: NDArray[np.float64],
    params: NDArray[np.float64],
    a: NDArray[np.float64],
    b: NDArray[np.float64],
    tol: float,
    rtol: float,
    ftol: float,
    maxiter: int,
    n_threads: int | None,
    details: bool = ...,
    block_size: int = ...,
) -> _CompiledArrays: ...

def block_values(
    f: Any, x: NDArray[np.float64], params: NDArray[np.float64], elements: NDArray[np.intp]
) -> NDArray[np.float64]: ...

@disjoint_base
class ElementwiseBatch:
    n_active: int
    x: NDArray[np.float64]
    params: NDArray[np.float64]
    x_out: NDArray[np.float64]
    fun_out: NDArray[np.float64]
    status_out: NDArray[np.intp]
    nit_out: NDArray[np.intp]
    nfev_out: NDArray[np.intp]
    def __init__(
        self,
        x0: NDArray[np.float64],
        params: NDArray[np.float64],
        tol: float,
        rtol: float,
        ftol: float,
        maxiter: int,
        method: int,
        bracketed: bool,
        fd: bool,
        deriv_cost: int,
    ) -> None: ...
    def start_bracket(
        self,
        a: NDArray[np.float64],
        b: NDArray[np.float64],
        fa: NDArray[np.float64],
        fb: NDArray[np.float64],
    ) -> None: ...
    def secant_points(self) -> NDArray[np.float64]: ...
    def start_secant(self, fprev: NDArray[np.float64]) -> None: ...
    def fd_points(
        self, a: NDArray[np.float64] | None = ..., b: NDArray[np.float64] | None = ...
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]: ...
    def check_values(self, fx: NDArray[np.float64]) -> bool: ...
    def iterate(
        self,
        fx: NDArray[np.float64],
        df: NDArray[np.float64] | None = ...,
        d2f: NDArray[np.float64] | None = ...,
        f_plus: NDArray[np.float64] | None = ...,
        f_minus: NDArray[np.float64] | None = ...,
        x_plus: NDArray[np.float64] | None = ...,
        x_minus: NDArray[np.float64] | None = ...,
        checked: bool = ...,
    ) -> None: ...
    def finish(self) -> None: ...

@disjoint_base
class NewtonBatch:
    nit: int
    n_active: int
    size: int
    x: NDArray[np.float64]
    params: NDArray[np.float64]
    def __init__(
        self,
        capacity: int,
        n_rows: int,
        tol: float,
        rtol: float,
        ftol: float,
        maxiter: int,
    ) -> None: ...
    def start(self, x0: NDArray[np.float64], rows: list[NDArray[np.float64]]) -> None: ...
    def sources(self) -> tuple[NDArray[np.float64], list[NDArray[np.float64]]]: ...
    def iterate(self, fx: NDArray[np.float64], df: NDArray[np.float64]) -> int: ...
    def finish(
        self,
        x_out: NDArray[np.float64],
        fun_out: NDArray[np.float64],
        status_out: NDArray[np.intp],
        nit_out: NDArray[np.intp],
        nfev_out: NDArray[np.intp],
    ) -> None: ...

def compiled_values(
    f: Any, x: NDArray[np.float64], params: NDArray[np.float64], elements: NDArray[np.intp]
) -> NDArray[np.float64]: ...
