"""Stub of the compiled kernels for systems F(x) = 0 (fastcalc/_systems.pyx)."""
from typing import Any

import numpy as np
from numpy.typing import NDArray
from typing_extensions import disjoint_base

_Arrays5 = tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.intp], NDArray[np.intp],
                 NDArray[np.intp]]

# kernel-only codes, reported as status 2 with their own messages
NO_DESCENT: int
STALLED: int

def solve_systems_compiled(
    F: Any,
    jac: Any | None,
    x0: NDArray[np.float64],
    tol: float,
    rtol: float,
    ftol: float,
    maxiter: int,
    n_threads: int | None,
    trust_region: bool,
) -> _Arrays5: ...

@disjoint_base
class TrustRegionBatch:
    @property
    def x(self) -> NDArray[np.float64]: ...
    @property
    def fun(self) -> NDArray[np.float64]: ...
    @property
    def status(self) -> NDArray[np.intp]: ...
    @property
    def nit(self) -> NDArray[np.intp]: ...
    @property
    def nfev(self) -> NDArray[np.intp]: ...
    def __init__(
        self,
        x0: NDArray[np.float64],
        f0: NDArray[np.float64],
        tol: float,
        rtol: float,
        ftol: float,
        maxiter: int,
    ) -> None: ...
    def jacobians_needed(self) -> NDArray[np.intp]: ...
    def factor(self, systems: NDArray[np.intp], J: NDArray[np.float64], cost: int) -> None: ...
    def propose(self) -> tuple[NDArray[np.intp], NDArray[np.float64]]: ...
    def assess(self, systems: NDArray[np.intp], values: NDArray[np.float64]) -> None: ...

def solve_linear_systems(
    matrices: NDArray[np.float64], rhs: NDArray[np.float64]
) -> NDArray[np.intc]: ...
