"""Array typing shared by the physics functions."""

from __future__ import annotations

from typing import TypeAlias

import numpy as np
import numpy.typing as npt

ArrayLike: TypeAlias = float | npt.ArrayLike
FloatOrArray: TypeAlias = float | npt.NDArray[np.float64]


def as_result(value: npt.ArrayLike) -> FloatOrArray:
    """A 0-d result as a Python float, anything else as a float64 array."""
    arr = np.asarray(value, dtype=float)
    return float(arr) if arr.ndim == 0 else arr


def f64(value: ArrayLike) -> np.float64 | npt.NDArray[np.float64]:
    """Any scalar or array-like as float64 (no copy when it already is an array).

    A Python or numpy float (or int) becomes a numpy float64 scalar rather than a 0-d array: numpy gives array
    scalars the attributes, methods and arithmetic (errstate included) of 0-d arrays, and their
    arithmetic costs a tenth as much (the monitors and the twin evaluate relations on scalars)."""
    if isinstance(value, float | int):  # np.float64 is a float
        return np.float64(value)
    return np.asarray(value, dtype=np.float64)
