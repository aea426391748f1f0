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


def f64(value: ArrayLike) -> npt.NDArray[np.float64]:
    """Any scalar or array-like as a float64 array (no copy when it already is one)."""
    return np.asarray(value, dtype=np.float64)
