"""Row ids of scored rows (``UDI`` for failure, ``row_id`` for defect): they come back exactly as sent.

Rows without any id are numbered 1..n. Otherwise every row needs one: a string that is not blank, or a finite
number (not a boolean). A row missing its id among rows that have theirs would be answered under a made-up
id, so it is refused, naming the record.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from serving.errors import InvalidInput, shown

_MISSING = object()


def _bad(value: object) -> bool:
    if value is None or isinstance(value, bool):
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, (int, np.integer)):
        return False
    if isinstance(value, (float, np.floating)):
        return not math.isfinite(value)
    return True  # a list, an object, ...


def record_ids(records: Sequence[dict], key: str, alias: str | None = None) -> list:
    """The ids of JSON records (``alias``: the feature store's name for the same column)."""
    ids = [r.get(key, r.get(alias, _MISSING) if alias else _MISSING) for r in records]
    if all(i is _MISSING for i in ids):
        return list(range(1, len(records) + 1))
    for n, value in enumerate(ids):
        if value is _MISSING:
            raise InvalidInput(f"record {n + 1} has no {key!r} while others do: send every record's id, or none")
        if _bad(value):
            raise InvalidInput(f"record {n + 1}: {key!r} must be a string or a number; got {shown(value)}")
    return ids


def frame_ids(df: pd.DataFrame, key: str) -> np.ndarray:
    """The ids of a table (an Arrow or Parquet body, a file): 1..n without the column, else every cell set."""
    if key not in df.columns:
        return np.arange(1, len(df) + 1)
    values = df[key].to_numpy()
    if values.dtype.kind in "iu":
        return values
    if values.dtype.kind == "f":
        bad = ~np.isfinite(values)
        if bad.any():
            n = int(bad.argmax())
            raise InvalidInput(f"column {key!r} row {n + 1}: every row needs its id; got {shown(values[n])}")
        return values
    for n, value in enumerate(values):
        if _bad(value.item() if hasattr(value, "item") and not isinstance(value, str) else value):
            raise InvalidInput(f"column {key!r} row {n + 1}: every row needs its id; got {shown(value)}")
    return values
