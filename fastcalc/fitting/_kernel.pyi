from typing import Any, Callable

import numpy as np
from numpy.typing import NDArray

def fit_compiled(
    kind: int, model_id: int, model: Any, model_jac: Any, x: NDArray[np.float64], x_dim: int,
    Y: NDArray[np.float64], sigma: NDArray[np.float64] | None, p0: NDArray[np.float64],
    use_guess: bool, lower: NDArray[np.float64], upper: NDArray[np.float64], has_bounds: bool,
    free_index: NDArray[np.intc], method: int, maxiter: int, ftol: float, xtol: float,
    gtol: float, absolute_sigma: bool, estimator: int, f_scale: float, start: int, stop: int,
    n_threads: int | None, params_out: NDArray[np.float64], cov_out: NDArray[np.float64],
    stderr_out: NDArray[np.float64], cost_out: NDArray[np.float64],
    chi2_out: NDArray[np.float64], dof_out: NDArray[np.intc], nit_out: NDArray[np.intc],
    nfev_out: NDArray[np.intc],
    status_out: NDArray[np.intc],
) -> None: ...
def fit_python(
    evaluate: Callable[[NDArray[np.float64], NDArray[np.intp]], Any],
    jacobian: Callable[[NDArray[np.float64], NDArray[np.intp]], Any] | None,
    Y: NDArray[np.float64], W: NDArray[np.float64], p0: NDArray[np.float64],
    lower: NDArray[np.float64], upper: NDArray[np.float64], has_bounds: bool,
    free_index: NDArray[np.intc], method: int, maxiter: int, ftol: float, xtol: float,
    gtol: float, absolute_sigma: bool, estimator: int, f_scale: float, fd_in_one_call: bool,
    params_out: NDArray[np.float64], cov_out: NDArray[np.float64],
    stderr_out: NDArray[np.float64], cost_out: NDArray[np.float64],
    chi2_out: NDArray[np.float64], dof_out: NDArray[np.intc],
    nit_out: NDArray[np.intc], nfev_out: NDArray[np.intc], status_out: NDArray[np.intc],
) -> None: ...
def evaluate_model(
    kind: int, model_id: int, model: Any, x: NDArray[np.float64], x_dim: int,
    params: NDArray[np.float64], m: int,
) -> NDArray[np.float64]: ...
def _values(evaluate: Any, params: Any, rows: Any, m: int) -> NDArray[np.float64]: ...
def _jacobian_values(jacobian: Any, params: Any, rows: Any, m: int, P: int) -> NDArray[np.float64]: ...
def _householder_lstsq(A: Any, b: Any) -> NDArray[np.float64]: ...
def _cholesky_solve(A: Any, b: Any) -> NDArray[np.float64] | None: ...
