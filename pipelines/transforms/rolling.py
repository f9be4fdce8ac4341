"""Per-entity rolling-window statistics and lags: DataFrame in, DataFrame out.

The frame must be sorted by (entity, time). With ``step`` (a column, or an array, of whole grid steps: the
cycle number, the 15-minute interval number), windows and lags count STEPS of a regular grid per entity, not
rows: the rows are placed on the grid, a step without a row (quarantined, or absent in the source) reads as
missing (NaN), and only the rows that exist come back. ``lag k`` is the value exactly ``k`` steps earlier (NaN
where that step has no row), a window of ``w`` covers the ``w`` steps ending at the row (the missing ones
skipped). Without ``step`` they count rows (e.g. per-shot features, where every row is a step). On data
without gaps both give identical output.

A window never reaches into the previous entity: entities are separated by ``max(window) - 1`` NaN rows
before one vectorised ``rolling`` pass over all columns, which is much faster than ``groupby().rolling()``
with many entities; a gap inside an entity is laid out as up to ``max(window) - 1`` NaN rows (a longer gap
cannot be seen by any window, so memory stays bounded whatever the gap). ``min_periods=1``: the first rows of
an entity, and rows after a gap, use what there is in the window (std needs two values).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

STATS = ("mean", "std", "min", "max", "slope")


def _entity_starts(keys: np.ndarray) -> np.ndarray:
    """True on the first row of each run of equal keys."""
    return np.r_[True, keys[1:] != keys[:-1]] if len(keys) else np.zeros(0, dtype=bool)


def _steps(df: pd.DataFrame, step: str | np.ndarray | pd.Series | None) -> np.ndarray | None:
    if step is None:
        return None
    s = df[step] if isinstance(step, str) else step
    steps = np.asarray(s)
    if len(steps) != len(df):
        raise ValueError(f"step has {len(steps)} values for {len(df)} rows")
    if not np.issubdtype(steps.dtype, np.integer):
        f = np.asarray(steps, dtype=np.float64)
        if not np.isfinite(f).all() or (f != np.round(f)).any():
            raise ValueError("grid steps must be whole numbers")
        steps = f
    return steps.astype(np.int64)


def grid_positions(keys: np.ndarray, steps: np.ndarray | None, reach: int) -> np.ndarray:
    """Increasing positions of the rows on one axis holding every entity's grid: consecutive steps are 1 apart,
    a gap of missing steps leaves the same gap (at most ``reach + 1`` apart: nothing looks further back than
    ``reach`` steps), and entities are ``reach + 1`` apart, so no look-back of ``reach`` steps or less reaches
    another entity or past a long gap. Without ``steps`` every row is one step (row counting)."""
    n = len(keys)
    if not n:
        return np.zeros(0, dtype=np.int64)
    starts = _entity_starts(keys)
    inc = np.ones(n, dtype=np.int64)
    if steps is not None:
        d = np.diff(steps)
        inside = ~starts[1:]
        if (d[inside] <= 0).any():
            i = int(np.flatnonzero(inside & (d <= 0))[0]) + 1
            raise ValueError(
                f"grid steps must increase within an entity (sorted, no duplicates): row {i} has step {steps[i]} "
                f"after {steps[i - 1]}"
            )
        inc[1:] = np.minimum(d, reach + 1)
    inc[starts] = reach + 1
    inc[0] = 0
    return np.cumsum(inc)


def _padded(values: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """``values`` laid out at ``pos`` on a NaN grid."""
    out = np.full((int(pos[-1]) + 1 if len(pos) else 0, values.shape[1]), np.nan)
    out[pos] = values
    return out


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
    step: str | np.ndarray | pd.Series | None = None,
) -> pd.DataFrame:
    """Columns ``<col>_<stat>_<w>`` for every column, window and stat; index aligned with ``df``.

    ``step``: the rows' grid steps (a column name or values); windows then span ``w`` steps, not rows.
    ``slope`` is the least-squares slope against the step (value units per step) over the window.
    """
    unknown = set(stats) - set(STATS)
    if unknown:
        raise ValueError(f"unknown rolling statistics {sorted(unknown)}; expected some of {', '.join(STATS)}")
    cols = list(columns)
    values = df[cols].to_numpy(dtype=np.float64)
    keys = df[key].to_numpy()
    pad = max(windows) - 1
    pos = grid_positions(keys, _steps(df, step), pad)
    padded = _padded(values, pos)
    frame = pd.DataFrame(padded)
    out: dict[str, np.ndarray] = {}
    t_pad = None
    if "slope" in stats:
        # the step within the entity on the grid (row counting: 0, 1, 2 ...); a capped long gap is never
        # inside one window, so differences within a window are true step differences
        first = np.maximum.accumulate(np.where(_entity_starts(keys), pos, 0)) if len(pos) else pos
        t = (pos - first).astype(np.float64)
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
    df: pd.DataFrame,
    *,
    key: str,
    columns: Sequence[str],
    lags: Sequence[int],
    dtype: str = "float32",
    step: str | np.ndarray | pd.Series | None = None,
) -> pd.DataFrame:
    """Columns ``<col>_lag_<k>``: the value ``k`` rows earlier within the entity (NaN before its start).

    With ``step`` (the rows' grid steps): the value exactly ``k`` steps earlier, NaN where that step has no row.
    """
    steps = _steps(df, step)
    if steps is not None:
        return _grid_lags(df, key=key, columns=columns, lags=lags, dtype=dtype, steps=steps)
    g = df.groupby(key, sort=False)[list(columns)]
    parts = {}
    for k in lags:
        shifted = g.shift(k)
        for c in columns:
            parts[f"{c}_lag_{k}"] = shifted[c].astype(dtype)
    names = [f"{c}_lag_{k}" for c in columns for k in lags]
    return pd.DataFrame({n: parts[n] for n in names}, index=df.index)


def _grid_lags(
    df: pd.DataFrame, *, key: str, columns: Sequence[str], lags: Sequence[int], dtype: str, steps: np.ndarray
) -> pd.DataFrame:
    pos = grid_positions(df[key].to_numpy(), steps, max(lags, default=0))
    values = {c: df[c].to_numpy(dtype=np.float64, na_value=np.nan) for c in columns}
    parts = {}
    for k in lags:
        if k < 0:
            raise ValueError(f"a lag must not be negative, not {k}")
        want = pos - k
        src = np.searchsorted(pos, want)
        found = src < len(pos)
        found[found] = pos[src[found]] == want[found]
        src = np.where(found, src, 0)
        for c in columns:
            v = values[c]
            parts[f"{c}_lag_{k}"] = np.where(found, v[src] if len(v) else v, np.nan)
    names = [f"{c}_lag_{k}" for c in columns for k in lags]
    return pd.DataFrame({n: parts[n].astype(dtype) for n in names}, index=df.index)


def feature_names(columns: Sequence[str], windows: Sequence[int], stats: Sequence[str] = STATS) -> list[str]:
    return [f"{c}_{s}_{w}" for c in columns for s in stats for w in windows]


def lag_names(columns: Sequence[str], lags: Sequence[int]) -> list[str]:
    return [f"{c}_lag_{k}" for c in columns for k in lags]
