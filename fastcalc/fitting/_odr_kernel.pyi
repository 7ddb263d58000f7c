from typing import Any, Callable

import numpy as np
from numpy.typing import NDArray

def odr_compiled(
    kind: int, model_id: int, model: Any, model_jac: Any, x: NDArray[np.float64],
    Y: NDArray[np.float64], sigma: NDArray[np.float64] | None,
    sigma_x: NDArray[np.float64], p0: NDArray[np.float64], use_guess: bool,
    lower: NDArray[np.float64], upper: NDArray[np.float64], has_bounds: bool,
    free_index: NDArray[np.intc], maxiter: int, ftol: float, xtol: float, gtol: float,
    absolute_sigma: bool, start: int, stop: int, n_threads: int | None,
    params_out: NDArray[np.float64], cov_out: NDArray[np.float64],
    stderr_out: NDArray[np.float64], chi2_out: NDArray[np.float64],
    dof_out: NDArray[np.intc], nit_out: NDArray[np.intc], nfev_out: NDArray[np.intc],
    status_out: NDArray[np.intc], delta_out: NDArray[np.float64],
    residuals_out: NDArray[np.float64],
) -> None: ...
def odr_python(
    evaluate: Callable[[NDArray[np.float64], NDArray[np.float64], NDArray[np.intp]], Any],
    X: NDArray[np.float64], Y: NDArray[np.float64], W: NDArray[np.float64],
    V: NDArray[np.float64], p0: NDArray[np.float64], lower: NDArray[np.float64],
    upper: NDArray[np.float64], has_bounds: bool, free_index: NDArray[np.intc], maxiter: int,
    ftol: float, xtol: float, gtol: float, absolute_sigma: bool,
    params_out: NDArray[np.float64], cov_out: NDArray[np.float64],
    stderr_out: NDArray[np.float64], chi2_out: NDArray[np.float64],
    dof_out: NDArray[np.intc], nit_out: NDArray[np.intc], nfev_out: NDArray[np.intc],
    status_out: NDArray[np.intc], delta_out: NDArray[np.float64],
    residuals_out: NDArray[np.float64],
) -> None: ...
def _values(evaluate: Any, T: Any, params: Any, rows: Any, m: int) -> NDArray[np.float64]: ...
