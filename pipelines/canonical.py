"""Canonical tables: what every adapter maps its source format to, before features are made.

A canonical table is a wide pandas DataFrame with

- the entity key column (``unit_id``, ``lot_id``, ``meter_id``, ``machine_id``: namespaced strings),
- ``event_timestamp``: a timezone-aware UTC instant (when the reading was true / the interval ended),
- ``source_row``: the 1-based line of the source file (header excluded) the row came from,
- measurement columns, each with a declared unit and a plausible range (``Column``).

Kinds: ``sensor_readings`` (measurements of an asset or lot), ``events`` (failures, alarms),
``labels`` (outcomes a model learns), ``meter_readings`` (energy per interval).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

TIMESTAMP = "event_timestamp"
SOURCE_ROW = "source_row"


@dataclass(frozen=True, slots=True)
class Column:
    """One measured quantity: unit (SI or as published, ``"1"`` dimensionless, ``"?"`` unknown) and the
    range outside which a value is impossible (None: unbounded)."""

    unit: str
    lo: float | None = None
    hi: float | None = None
    dtype: str = "float64"  # float64, int64, bool, string
    description: str = ""


@dataclass(slots=True)
class Table:
    kind: str  # sensor_readings | events | labels | meter_readings
    key: str  # the entity key column
    columns: dict[str, Column]  # measured columns (key, event_timestamp and source_row excluded)
    data: pd.DataFrame
    notes: dict[str, str] = field(default_factory=dict)  # time base, entity naming, quirks

    @property
    def units(self) -> dict[str, str]:
        return {name: c.unit for name, c in self.columns.items()}

    @property
    def entities(self) -> int:
        return int(self.data[self.key].nunique())

    def __len__(self) -> int:
        return len(self.data)


@dataclass(slots=True)
class Canonical:
    """What an adapter returns: its tables, and the source rows it could not read at all (with a reason)."""

    dataset: str
    ksic: str
    source: str
    tables: dict[str, Table]
    rejects: pd.DataFrame  # columns: source_row, reason, raw (the row as text)
    source_rows: int  # data rows in the source (what every row count is checked against)

    def __getitem__(self, kind: str) -> Table:
        return self.tables[kind]


def empty_rejects() -> pd.DataFrame:
    return pd.DataFrame({SOURCE_ROW: pd.Series(dtype="int64"), "reason": pd.Series(dtype=str), "raw": []})


def coerce_numeric(
    frame: pd.DataFrame, columns: list[str], *, what: dict[str, str] | None = None
) -> tuple[pd.DataFrame, pd.Series]:
    """Make ``columns`` numeric; return the frame and a per-row reason for values that were present but
    not numbers (empty string where the row is fine). Fast when the file was clean (no object columns)."""
    reasons = pd.Series("", index=frame.index, dtype=object)
    for c in columns:
        col = frame[c]
        if pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
            continue
        num = pd.to_numeric(col, errors="coerce")
        bad = num.isna() & col.notna() & (col.astype(str).str.strip().str.lower() != "nan")
        if bad.any():
            label = (what or {}).get(c, c)
            reasons[bad] = reasons[bad] + [f"{label}: {v!r} is not a number; " for v in col[bad]]
        frame[c] = num
    return frame, reasons.str.rstrip("; ")
