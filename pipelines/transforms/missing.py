"""Missing-value handling that says what it did.

    filled, report = handle_missing(df, columns, strategy="ffill", key="unit_id")
    report.as_dict()  # {"strategy": "ffill", "rows": ..., "columns": {"t30": {"missing": 3, "filled": 3, ...}}}

Strategies: ``keep`` (count only), ``ffill`` (last value of the same entity; a gap at an entity's start
stays missing), ``median`` (the column median, or given ``fill_values`` learned elsewhere), ``zero``.
Every strategy also adds ``n_missing`` (missing inputs per row, before filling) when ``count_column`` is set.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pandas as pd

STRATEGIES = ("keep", "ffill", "median", "zero")


@dataclass(slots=True)
class MissingReport:
    strategy: str
    rows: int
    columns: dict[str, dict[str, float]] = field(default_factory=dict)  # only columns that had gaps
    all_missing: list[str] = field(default_factory=list)  # columns with no value at all
    constant: list[str] = field(default_factory=list)  # columns with a single distinct value
    kept: list[str] = field(default_factory=list)  # columns whose gaps the strategy leaves as gaps

    @property
    def missing(self) -> int:
        return int(sum(c["missing"] for c in self.columns.values()))

    @property
    def filled(self) -> int:
        return int(sum(c["filled"] for c in self.columns.values()))

    def as_dict(self) -> dict:
        return {
            "strategy": self.strategy,
            "rows": self.rows,
            "missing_cells": self.missing,
            "filled_cells": self.filled,
            "columns_with_gaps": len(self.columns),
            "all_missing": self.all_missing,
            "constant": self.constant,
            **({"kept_as_gaps": self.kept} if self.kept else {}),
            "columns": self.columns,
        }

    def merge(self, other: MissingReport) -> MissingReport:
        """Combine the reports of two partitions of the same input."""
        cols = {k: dict(v) for k, v in self.columns.items()}
        for k, v in other.columns.items():
            c = cols.setdefault(k, {"missing": 0, "filled": 0, "remaining": 0, "fill_value": v.get("fill_value")})
            for m in ("missing", "filled", "remaining"):
                c[m] = c[m] + v[m]
        return MissingReport(
            self.strategy,
            self.rows + other.rows,
            dict(sorted(cols.items())),
            sorted(set(self.all_missing) & set(other.all_missing)),
            sorted(set(self.constant) & set(other.constant)),
            self.kept,
        )


def handle_missing(
    df: pd.DataFrame,
    columns: Sequence[str],
    *,
    strategy: str = "keep",
    key: str | None = None,
    fill_values: dict[str, float] | None = None,
    count_column: str | None = None,
    keep: Sequence[str] = (),
) -> tuple[pd.DataFrame, MissingReport]:
    """Return a copy of ``df`` with ``columns`` handled, and the report. ``keep``: columns among them whose gaps stay
    gaps whatever the strategy (counted, never filled: a meter's usage, whose gaps its forecaster fills and counts)."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown missing-value strategy {strategy!r}; expected one of {', '.join(STRATEGIES)}")
    if strategy == "ffill" and key is None:
        raise ValueError("strategy 'ffill' needs the entity key column")
    cols = list(columns)
    block = df[cols]
    isna = block.isna()
    missing = isna.sum()
    out = df.copy()
    if count_column:
        out[count_column] = isna.sum(axis=1).astype("int32")
    values: dict[str, float] = {}
    if strategy == "ffill":
        filled = block.groupby(df[key], sort=False).ffill()
    elif strategy == "median":
        values = dict(fill_values) if fill_values is not None else block.median().to_dict()
        filled = block.fillna(values)
    elif strategy == "zero":
        values = {c: 0.0 for c in cols}
        filled = block.fillna(0.0)
    else:
        filled = block
    kept = [c for c in cols if c in set(keep)]
    if kept and strategy != "keep":
        filled = filled.copy()
        filled[kept] = block[kept]
    if strategy != "keep":
        out[cols] = filled
    remaining = filled.isna().sum()
    nunique = block.nunique()
    report = MissingReport(strategy, len(df), kept=kept)
    for c in cols:
        if missing[c]:
            report.columns[c] = {
                "missing": int(missing[c]),
                "filled": int(missing[c] - remaining[c]),
                "remaining": int(remaining[c]),
                "fill_value": None if c not in values or pd.isna(values[c]) else float(values[c]),
            }
    report.all_missing = [c for c in cols if missing[c] == len(df) and len(df)]
    report.constant = [c for c in cols if nunique[c] == 1]
    return out, report
