from collections.abc import Callable
from enum import IntEnum
from typing import Any

import numpy as np
import numpy.typing as npt
from typing_extensions import disjoint_base

class FunctionKind(IntEnum):
    PYTHON = 0
    VECTORIZED = 1
    COMPILED = 2

@disjoint_base
class UserFunction:
    kind: int
    signature: str | None
    function: Any
    args: tuple[Any, ...]
    name: str
    def __init__(
        self,
        function: Callable[..., Any] | Any,
        *,
        args: tuple[Any, ...] = ...,
        vectorized: bool = ...,
        signatures: tuple[str, ...] = ...,
        name: str = ...,
    ) -> None: ...
    @property
    def is_compiled(self) -> bool: ...
    def __call__(self, x: npt.ArrayLike) -> Any: ...
    def scalar_values(self, points: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]: ...
    def vector_values(
        self, points: npt.NDArray[np.float64], m: int = ...
    ) -> npt.NDArray[np.float64]: ...

def real_values(value: Any, name: str, complex_ok: bool = ...) -> npt.NDArray[Any]: ...
def resolve(
    function: Callable[..., Any] | Any,
    *,
    args: tuple[Any, ...] = ...,
    vectorized: bool = ...,
    signatures: tuple[str, ...] = ...,
    name: str = ...,
) -> UserFunction: ...
