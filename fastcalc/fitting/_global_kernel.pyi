from typing import Any

import numpy as np
from numpy.typing import NDArray

def costs(
    kind: int, model_id: int, model: Any, x: NDArray[np.float64], x_dim: int,
    Y: NDArray[np.float64], W: NDArray[np.float64], params: NDArray[np.float64],
    active: NDArray[np.uint8], n_threads: int | None, chi2_out: NDArray[np.float64],
    status_out: NDArray[np.intc],
) -> None: ...
def blocks(
    kind: int, model_id: int, model: Any, x: NDArray[np.float64], x_dim: int,
    Y: NDArray[np.float64], W: NDArray[np.float64], params: NDArray[np.float64],
    active: NDArray[np.uint8], free_: NDArray[np.uint8], upper: NDArray[np.float64],
    scale: NDArray[np.float64], n_threads: int | None, A_out: NDArray[np.float64],
    g_out: NDArray[np.float64], chi2_out: NDArray[np.float64], status_out: NDArray[np.intc],
) -> None: ...
def jacobian_blocks(
    J: NDArray[np.float64], values: NDArray[np.float64], Y: NDArray[np.float64],
    W: NDArray[np.float64], active: NDArray[np.uint8], n_threads: int | None,
    A_out: NDArray[np.float64], g_out: NDArray[np.float64],
) -> None: ...
def guesses(
    model_id: int, P: int, x: NDArray[np.float64], x_dim: int, Y: NDArray[np.float64],
    active: NDArray[np.uint8], n_threads: int | None, p_out: NDArray[np.float64],
    status_out: NDArray[np.intc],
) -> None: ...
def schur_step(
    A: NDArray[np.float64], g: NDArray[np.float64], active: NDArray[np.uint8],
    shared: NDArray[np.intc], local: NDArray[np.intc], blocked: NDArray[np.uint8],
    D2: NDArray[np.float64], D2_shared: NDArray[np.float64], lam: float,
    n_threads: int | None, step_out: NDArray[np.float64], K_out: NDArray[np.float64],
    S_out: NDArray[np.float64], contribution: NDArray[np.float64],
    status_out: NDArray[np.intc],
) -> int: ...
