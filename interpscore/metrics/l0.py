"""``l0_score``: how close a mean L0 is to a target, on a log scale (the InterpScore term)."""

from __future__ import annotations

from typing import overload

import numpy as np

#: The L0 at which the seed formula's ``l0_score`` peaks.
DEFAULT_L0_TARGET = 80.0


@overload
def l0_score(l0: float, target: float = ...) -> float: ...
@overload
def l0_score(l0: np.ndarray, target: float = ...) -> np.ndarray: ...


def l0_score(l0: float | np.ndarray, target: float = DEFAULT_L0_TARGET) -> float | np.ndarray:
    """``exp(-|ln(L0/target)|)``, i.e. ``min(L0/target, target/L0)``; 0 when L0 <= 0 or inf.

    Peaks at 1 when L0 equals the target and is symmetric in log L0. NaN stays NaN. Works
    elementwise on arrays (bootstrap replicates) and returns a float for a scalar.
    """
    values = np.asarray(l0, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        score = np.minimum(values / target, target / values)
    out = np.where(values > 0, score, np.where(np.isnan(values), np.nan, 0.0))
    out = np.where(np.isinf(values), 0.0, out)
    return float(out) if np.ndim(l0) == 0 else out
