"""RUL metrics: RMSE and the PHM08 (NASA) scoring function, numpy only."""

from __future__ import annotations

import numpy as np


def rmse(pred: np.ndarray, true: np.ndarray) -> float:
    return float(np.sqrt(np.mean((np.asarray(pred, float) - np.asarray(true, float)) ** 2)))


def nasa_score(pred: np.ndarray, true: np.ndarray) -> float:
    """Sum over engines of exp(-d/13) - 1 for early (d < 0) and exp(d/10) - 1 for late predictions."""
    d = np.asarray(pred, float) - np.asarray(true, float)
    return float(np.sum(np.where(d < 0, np.exp(-d / 13.0) - 1, np.exp(d / 10.0) - 1)))
