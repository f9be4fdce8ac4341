"""Per-entity rolling-window statistics and lags: DataFrame in, DataFrame out.

The frame must be sorted by (entity, time). Windows count rows (cycles, 15-minute intervals), and a window
never reaches into the previous entity: entities are separated by ``max(window) - 1`` NaN rows before one
vectorised ``rolling`` pass over all columns, which is much faster than ``groupby().rolling()`` with many
entities. ``min_periods=1``: the first rows of an entity use what there is (std needs two values).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

STATS = ("mean", "std", "min", "max", "slope")


def _padded(values: np.ndarray, keys: np.ndarray, pad: int) -> tuple[np.ndarray, np.ndarray]:
    """``values`` with ``pad`` NaN rows inserted before each new entity, and the positions of the real rows."""
    n = len(values)
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]]) if n else np.array([], dtype=int)
    shift = np.zeros(n, dtype=np.int64)
    if len(starts) > 1 and pad > 0:
        shift[starts[1:]] = pad
        shift = np.cumsum(shift)
    pos = np.arange(n) + shift
    out = np.full((n + pad * max(len(starts) - 1, 0), values.shape[1]), np.nan)
    out[pos] = values
    return out, pos


def position_in_entity(keys: pd.Series) -> np.ndarray:
    """0, 1, 2 ... within each run of equal keys (the frame is sorted by entity)."""
    k = keys.to_numpy()
    n = len(k)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    starts = np.r_[True, k[1:] != k[:-1]]
    idx = np.arange(n)
    first = np.maximum.accumulate(np.where(starts, idx, 0))
    return idx - first


def rolling_stats(
    df: pd.DataFrame,
    *,
    key: str,
    columns: Sequence[str],
    windows: Sequence[int],
    stats: Sequence[str] = STATS,
    dtype: str = "float32",
) -> pd.DataFrame:
    """Columns ``<col>_<stat>_<w>`` for every column, window and stat; index aligned with ``df``.

    ``slope`` is the least-squares slope against the row step (value units per row) over the window.
    """
    unknown = set(stats) - set(STATS)
    if unknown:
        raise ValueError(f"unknown rolling statistics {sorted(unknown)}; expected some of {', '.join(STATS)}")
    cols = list(columns)
    values = df[cols].to_numpy(dtype=np.float64)
    keys = df[key].to_numpy()
    pad = max(windows) - 1
    padded, pos = _padded(values, keys, pad)
    frame = pd.DataFrame(padded)
    out: dict[str, np.ndarray] = {}
    t_pad = None
    if "slope" in stats:
        t = position_in_entity(df[key]).astype(np.float64)
        t_pad = np.full(len(padded), np.nan)
        t_pad[pos] = t
    for w in windows:
        r = frame.rolling(w, min_periods=1)
        for s in stats:
            if s == "slope":
                continue
            res = getattr(r, s)().to_numpy()[pos]
            for j, c in enumerate(cols):
                out[f"{c}_{s}_{w}"] = res[:, j]
        if "slope" in stats:
            present = ~np.isnan(padded)
            tt = np.where(present, t_pad[:, None], np.nan)
            n = pd.DataFrame(present.astype(np.float64)).rolling(w, min_periods=1).sum().to_numpy()
            st = pd.DataFrame(tt).rolling(w, min_periods=1).sum().to_numpy()
            sy = frame.rolling(w, min_periods=1).sum().to_numpy()
            stt = pd.DataFrame(tt * tt).rolling(w, min_periods=1).sum().to_numpy()
            sty = pd.DataFrame(tt * padded).rolling(w, min_periods=1).sum().to_numpy()
            den = n * stt - st * st
            with np.errstate(invalid="ignore", divide="ignore"):
                slope = np.where(den > 0, (n * sty - st * sy) / np.where(den > 0, den, 1.0), np.nan)
            slope = slope[pos]
            for j, c in enumerate(cols):
                out[f"{c}_slope_{w}"] = slope[:, j]
    # order: column, stat, window
    names = [f"{c}_{s}_{w}" for c in cols for s in stats for w in windows]
    return pd.DataFrame({n: out[n].astype(dtype) for n in names}, index=df.index)


def lags(
    df: pd.DataFrame, *, key: str, columns: Sequence[str], lags: Sequence[int], dtype: str = "float32"
) -> pd.DataFrame:
    """Columns ``<col>_lag_<k>``: the value ``k`` rows earlier within the entity (NaN before its start)."""
    g = df.groupby(key, sort=False)[list(columns)]
    parts = {}
    for k in lags:
        shifted = g.shift(k)
        for c in columns:
            parts[f"{c}_lag_{k}"] = shifted[c].astype(dtype)
    names = [f"{c}_lag_{k}" for c in columns for k in lags]
    return pd.DataFrame({n: parts[n] for n in names}, index=df.index)


def feature_names(columns: Sequence[str], windows: Sequence[int], stats: Sequence[str] = STATS) -> list[str]:
    return [f"{c}_{s}_{w}" for c in columns for s in stats for w in windows]


def lag_names(columns: Sequence[str], lags: Sequence[int]) -> list[str]:
    return [f"{c}_lag_{k}" for c in columns for k in lags]
