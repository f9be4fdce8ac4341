"""Operating-condition normalisation (C-MAPSS FD002/FD004 fly in six operating regimes).

Sensor levels depend mostly on the operating regime (altitude, Mach, throttle), which hides the slow
degradation trend. ``fit_regimes`` clusters the operating settings with a deterministic k-means;
``fit_regime_stats`` learns each sensor's mean and std per regime; ``normalize_by_regime`` z-scores the
sensors with them. Fit on the driver over the whole input (stats must not depend on how entities are
partitioned), then apply per partition.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class RegimeModel:
    columns: tuple[str, ...]
    scale: tuple[float, ...]  # settings are divided by this before distances (ranges differ by 100x)
    centers: tuple[tuple[float, ...], ...]  # in scaled units, sorted, so regime ids are stable

    @property
    def k(self) -> int:
        return len(self.centers)

    def assign(self, df: pd.DataFrame) -> np.ndarray:
        x = df[list(self.columns)].to_numpy(dtype=np.float64) / np.asarray(self.scale)
        c = np.asarray(self.centers)
        d = ((x[:, None, :] - c[None, :, :]) ** 2).sum(axis=2)
        return d.argmin(axis=1).astype(np.int64)


def fit_regimes(df: pd.DataFrame, columns: Sequence[str], k: int, *, iters: int = 50) -> RegimeModel:
    """Deterministic k-means (farthest-point initialisation, no randomness) on the scaled settings."""
    x = df[list(columns)].to_numpy(dtype=np.float64)
    scale = np.nanstd(x, axis=0)
    scale[~np.isfinite(scale) | (scale == 0)] = 1.0
    xs = x / scale
    # farthest-point init on the distinct rounded points keeps the fit fast and independent of row order
    pts = np.unique(np.round(xs, 3), axis=0)
    centers = [pts[np.lexsort(pts.T[::-1])][0]]
    for _ in range(1, min(k, len(pts))):
        d = np.min(((pts[:, None, :] - np.asarray(centers)[None]) ** 2).sum(axis=2), axis=1)
        centers.append(pts[int(d.argmax())])
    c = np.asarray(centers)
    for _ in range(iters):
        lab = ((xs[:, None, :] - c[None]) ** 2).sum(axis=2).argmin(axis=1)
        new = np.array([xs[lab == j].mean(axis=0) if (lab == j).any() else c[j] for j in range(len(c))])
        if np.allclose(new, c):
            break
        c = new
    c = c[np.lexsort(c.T[::-1])]
    return RegimeModel(tuple(columns), tuple(float(s) for s in scale), tuple(tuple(map(float, r)) for r in c))


@dataclass(frozen=True)
class RegimeStats:
    columns: tuple[str, ...]
    mean: np.ndarray  # (k, len(columns))
    std: np.ndarray  # (k, len(columns)); 0 std (a constant sensor in a regime) is replaced by 1

    def as_dict(self) -> dict:
        return {
            "columns": list(self.columns),
            "mean": np.round(self.mean, 6).tolist(),
            "std": np.round(self.std, 6).tolist(),
        }


def fit_regime_stats(df: pd.DataFrame, regimes: np.ndarray, columns: Sequence[str], k: int) -> RegimeStats:
    cols = list(columns)
    g = df[cols].groupby(regimes)
    mean = g.mean().reindex(range(k)).to_numpy(dtype=np.float64)
    std = g.std(ddof=0).reindex(range(k)).to_numpy(dtype=np.float64)
    std = np.where(~np.isfinite(std) | (std < 1e-12), 1.0, std)
    return RegimeStats(tuple(cols), np.nan_to_num(mean), std)


def normalize_by_regime(
    df: pd.DataFrame, regimes: np.ndarray, stats: RegimeStats, *, suffix: str = "_norm", dtype: str = "float32"
) -> pd.DataFrame:
    """Columns ``<col><suffix>`` = (value - regime mean) / regime std."""
    x = df[list(stats.columns)].to_numpy(dtype=np.float64)
    z = (x - stats.mean[regimes]) / stats.std[regimes]
    return pd.DataFrame(z.astype(dtype), columns=[c + suffix for c in stats.columns], index=df.index)
