from enum import IntEnum

import numpy as np
import numpy.typing as npt

GUESS_STATUS_TOO_FEW_POINTS: int
GUESS_STATUS_BAD_DOMAIN: int

class ModelId(IntEnum):
    LINE = 0
    POLYNOMIAL = 1
    EXPONENTIAL = 2
    GAUSSIAN = 3
    LORENTZIAN = 4
    LOGISTIC = 5
    POWER_LAW = 6
    SINE = 7
    GAUSSIAN_2D = 8

def kernel_shape(model_id: int, nparams: int) -> tuple[int, int]: ...
def evaluate(
    model_id: int,
    nparams: int,
    x: npt.ArrayLike,
    p: npt.ArrayLike,
    want_jac: bool = ...,
    per_point: bool = ...,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64] | None, int]: ...
def guess(
    model_id: int, nparams: int, x: npt.ArrayLike, y: npt.ArrayLike
) -> tuple[npt.NDArray[np.float64], int]: ...
