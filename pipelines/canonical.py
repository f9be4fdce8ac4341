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

import ast
import re
from dataclasses import dataclass, field

import numpy as np
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
    required: bool = False  # a missing value makes the row bad (a label), unlike a missing measurement


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
    """What an adapter returns: its tables, the source rows it could not read at all (with a reason), and what the
    user should know about a file that was read anyway (one line each, naming the file)."""

    dataset: str
    ksic: str
    source: str
    tables: dict[str, Table]
    rejects: pd.DataFrame  # columns: source_row, reason, raw (the row as text)
    source_rows: int  # data rows in the source (what every row count is checked against)
    warnings: list[str] = field(default_factory=list)

    def __getitem__(self, kind: str) -> Table:
        return self.tables[kind]


def empty_rejects() -> pd.DataFrame:
    return pd.DataFrame({SOURCE_ROW: pd.Series(dtype="int64"), "reason": pd.Series(dtype=str), "raw": []})


def not_a_number(label: str, text: object) -> str:
    """The reason for a cell that is present but no number: ``air_temp_k: 'hot' is not a number``. The cell's text
    is quoted as a Python literal, so that :func:`raw_cells` reads it back exactly."""
    return f"{label}: {str(text)!r} is not a number"


_NOT_A_NUMBER = re.compile(r"""([^:;'"]+): ('(?:[^'\\\n]|\\.)*'|"(?:[^"\\\n]|\\.)*") is not a number(?:; |$)""")


def raw_cells(reason: str) -> dict[str, str]:
    """The cells that were not numbers, as the source had them (``{label: text}``), read back from the reasons
    :func:`coerce_numeric` put at the start of a row's reason (an adapter appends its own after them). Reading stops
    at the first part that is not such a reason, so a cell's text that happens to look like one is never taken
    for one (the quoted literal is read whole)."""
    out: dict[str, str] = {}
    pos = 0
    while (m := _NOT_A_NUMBER.match(reason, pos)) is not None:
        try:
            text = ast.literal_eval(m.group(2))
        except (ValueError, SyntaxError):
            break
        out.setdefault(m.group(1), text)
        pos = m.end()
    return out


def coerce_numeric(
    frame: pd.DataFrame, columns: list[str], *, what: dict[str, str] | None = None
) -> tuple[pd.DataFrame, pd.Series]:
    """Make ``columns`` numeric; return the frame and a per-row reason for values that were present but
    not numbers (empty string where the row is fine). Fast when the file was clean (no object columns).

    The reason quotes the cell as the source had it (:func:`not_a_number`): the cell itself becomes missing, and
    the quarantine puts the text back from the reason (:func:`raw_cells`), so that what the user sent is kept."""
    reasons = pd.Series("", index=frame.index, dtype=object)
    for c in columns:
        col = frame[c]
        if pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
            continue
        try:
            num = pd.to_numeric(col, errors="coerce")
        except OverflowError:  # a whole number past the float range (400 digits), read as a Python int: inf
            num = pd.to_numeric(col.astype(object).where(col.isna(), col.astype(str)), errors="coerce")
        bad = num.isna() & col.notna() & (col.astype(str).str.strip().str.lower() != "nan")
        if bad.any():
            label = (what or {}).get(c, c)
            reasons[bad] = reasons[bad] + [not_a_number(label, v) + "; " for v in col[bad]]
        frame[c] = num
    return frame, reasons.str.rstrip("; ")


def row_text(frame: pd.DataFrame, sep: str = ",") -> pd.Series:
    """Each row as one line of text, a missing value as an empty field (for the quarantine's ``raw``)."""
    text = frame.astype(object).where(frame.notna(), "").astype(str)
    return text.agg(sep.join, axis=1) if len(frame.columns) else pd.Series("", index=frame.index, dtype=object)


def count_problems(values: pd.Series, name: str, limit: int) -> pd.Series | None:
    """Per row, why a present value of an id or counter column cannot be used as one: not a whole number,
    not finite, or larger than ``limit`` in size ('' where fine; a missing value is the caller's business).
    None when every value is fine."""
    v = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    with np.errstate(invalid="ignore"):
        infinite = np.isinf(v)
        fraction = np.isfinite(v) & (v != np.round(v))
        big = np.isfinite(v) & ~fraction & (np.abs(v) > limit)
    if not (infinite.any() or fraction.any() or big.any()):
        return None
    out = pd.Series("", index=values.index, dtype=object)
    for mask, text in ((infinite, "is not a finite number"), (fraction, "is not a whole number"),
                       (big, f"is too large (at most {limit:,})")):
        if mask.any():
            out[mask] = [f"{name}: {x:g} {text}" for x in v[mask]]
    return out


def reason_where(mask: pd.Series, text: str | pd.Series) -> pd.Series | None:
    """``text`` on the rows of ``mask``, '' elsewhere; None when no row is marked."""
    if not mask.any():
        return None
    out = pd.Series("", index=mask.index, dtype=object)
    out[mask] = text[mask] if isinstance(text, pd.Series) else text
    return out


def join_reasons(*parts: pd.Series | None) -> pd.Series | None:
    """Per row, the non-empty reasons joined with ``; `` (all series share one index); None parts are skipped
    and None comes back when all are None."""
    used = [p.astype(object).fillna("") for p in parts if p is not None]
    if not used:
        return None
    out = used[0]
    for p in used[1:]:
        both = (out != "") & (p != "")
        out = (out + np.where(both, "; ", "") + p).astype(object)
    return out
