"""Small numpy helpers for the hot path (blocks of about a thousand readings, where the fixed cost
of a general numpy routine is most of its time)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["diff_from"]


def diff_from(a: npt.NDArray[np.float64], before: float) -> npt.NDArray[np.float64]:
    """``a[k] - a[k-1]`` with ``a[-1] = before``: what ``np.diff(a, prepend=before)`` gives, bit for
    bit, without building the longer array first."""
    out = np.empty_like(a)
    if a.size:
        out[0] = a[0] - before
        np.subtract(a[1:], a[:-1], out=out[1:])
    return out
