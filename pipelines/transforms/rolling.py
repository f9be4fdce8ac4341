"""Per-entity rolling-window statistics and lags: DataFrame in, DataFrame out.

The frame must be sorted by (entity, time). With ``step`` (a column, or an array, of whole grid steps: the
cycle number, the 15-minute interval number), windows and lags count STEPS of a regular grid per entity, not
rows: the rows are placed on the grid, a step without a row (quarantined, or absent in the source) reads as
missing (NaN), and only the rows that exist come back. ``lag k`` is the value exactly ``k`` steps earlier (NaN
where that step has no row), a window of ``w`` covers the ``w`` steps ending at the row (the missing ones
skipped). Without ``step`` they count rows (e.g. per-shot features, where every row is a step). On data
without gaps both give identical output.

A window never reaches into the previous entity: entities are separated by ``max(window) - 1`` NaN rows
before vectorised window passes over all columns, which is much faster than ``groupby().rolling()`` with many
entities. Mean, std and slope are summed over each window alone (``_window_moments``), so a row's statistics
depend on its window's values only: computed from an entity's last steps (a push of new readings) they equal the
whole file's. pandas' running sums, used before 2026-12-07, carried rounding from every earlier row (a
window of four equal readings had a std of 4e-6, and 1 in 200 steel values differed in the last float32 digit
between a file and a push); a gap inside an entity is laid out as up to ``max(window) - 1`` NaN rows (a longer gap
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


def _window_moments(
    padded: np.ndarray, w: int, want_std: bool, want_slope: bool
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Mean, sample std and least-squares slope (per step) of the values present in each grid row's window of ``w``
    rows (NaN: none present; std and slope need two values).

    Each is summed over the window alone, in a fixed order (the row, then back), around the window's own mean and
    middle: the result depends on the window's values only, not on the rows before it (pandas' running sums carry
    rounding from every earlier row, and the slope's sums grew with the step number), so features computed from
    an entity's last steps (a push of new readings, ``pipelines.raw_ingest``) equal those of the whole file."""
    n_rows = len(padded)
    present = ~np.isnan(padded)
    vals = np.where(present, padded, 0.0)
    n = np.zeros(padded.shape)
    total = np.zeros(padded.shape)
    su = np.zeros(padded.shape) if want_slope else None
    for j in range(min(w, n_rows)):  # the value j rows back, at step w - 1 - j of the window
        p = present[: n_rows - j]
        n[j:] += p
        total[j:] += vals[: n_rows - j]
        if su is not None:
            su[j:] += p * float(w - 1 - j)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n > 0, total / np.where(n > 0, n, 1.0), np.nan)
        std = slope = None
        if want_std or want_slope:
            m0 = np.where(n > 0, mean, 0.0)
            ss = np.zeros(padded.shape) if want_std else None
            ubar = su / np.where(n > 0, n, 1.0) if want_slope else None
            num = np.zeros(padded.shape) if want_slope else None
            den = np.zeros(padded.shape) if want_slope else None
            for j in range(min(w, n_rows)):
                p = present[: n_rows - j]
                d = np.where(p, vals[: n_rows - j] - m0[j:], 0.0)
                if ss is not None:
                    ss[j:] += d * d
                if want_slope:
                    du = np.where(p, float(w - 1 - j) - ubar[j:], 0.0)
                    num[j:] += du * vals[: n_rows - j]  # the steps' deviations sum to 0: no mean needed
                    den[j:] += du * du
            if want_std:
                std = np.where(n > 1, np.sqrt(ss / np.where(n > 1, n - 1, 1.0)), np.nan)
            if want_slope:
                slope = np.where((n > 1) & (den > 0), num / np.where(den > 0, den, 1.0), np.nan)
    return mean, std, slope


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
    for w in windows:
        r = frame.rolling(w, min_periods=1)
        # min and max are exact values, whatever came before the window; std needs them (equal values: 0)
        lo = r.min().to_numpy() if "min" in stats or "std" in stats else None
        hi = r.max().to_numpy() if "max" in stats or "std" in stats else None
        for s, res in (("min", lo), ("max", hi)):
            if s in stats:
                res = res[pos]
                for j, c in enumerate(cols):
                    out[f"{c}_{s}_{w}"] = res[:, j]
        if {"mean", "std", "slope"} & set(stats):
            mean, std, slope = _window_moments(padded, w, "std" in stats, "slope" in stats)
            if std is not None:
                std = np.where((lo == hi) & ~np.isnan(std), 0.0, std)  # equal values: exactly 0, as pandas gave
            for s, res in (("mean", mean), ("std", std), ("slope", slope)):
                if s in stats:
                    res = res[pos]
                    for j, c in enumerate(cols):
                        out[f"{c}_{s}_{w}"] = res[:, j]
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
