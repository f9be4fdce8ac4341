"""Row validation and quarantine: every row either goes on or is written aside with its reason.

Checks, per canonical table (``Table.columns`` says types and ranges):
- wrong type: a value that is present but not a number / not an allowed category (the adapter marks it in
  ``_invalid``), or not a whole number in an int64 column (a label ``0.5``),
- missing required value: no value in a ``required`` column (a label, a C-MAPSS operating setting; a missing
  measurement is no bad row),
- impossible value: not finite (``inf``) or past the float32 range features are stored in, or outside
  ``Column.lo`` .. ``Column.hi``,
- duplicate key: a second row with the same (entity, ``event_timestamp``),
- time going backwards: within an entity, in file order, a row earlier than one already seen.

Missing measurements (NaN) are not bad rows: the missing-value transform handles and reports them.

Quarantined rows go to ``$SFAI_HOME/quarantine/<tenant>/<dataset>/<run id>.jsonl``, one JSON object per row:
``{"dataset", "table", "source", "file", "source_row", "reason", "row"}`` (``file``: the file the row came from).
A cell that was no number keeps in ``row`` the text the source had, read back from its reason
(``canonical.raw_cells``), not the missing value the conversion left. The run id is derived from the input, so a
re-run of the same input rewrites the same file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from pipelines.canonical import SOURCE_ROW, TIMESTAMP, Canonical, Table, raw_cells

INVALID = "_invalid"
FLOAT32_MAX = float(np.finfo(np.float32).max)  # feature views store measurements as float32
NOT_A_NUMBER = " is not a number"  # what a reason from ``canonical.coerce_numeric`` says


@dataclass(slots=True)
class TableCheck:
    good: pd.DataFrame
    bad: pd.DataFrame  # the bad rows, with a ``reason`` column
    reasons: dict[str, int] = field(default_factory=dict)  # reason kind -> rows


def _join(a: pd.Series, mask: pd.Series | np.ndarray, text: pd.Series | str) -> pd.Series:
    add = text[mask] if isinstance(text, pd.Series) else text
    a = a.copy()
    a[mask] = (a[mask] + "; " + add).str.lstrip("; ")
    return a


def check_table(table: Table) -> TableCheck:
    """Split ``table.data`` into good rows and bad rows with reasons (the good frame loses ``_invalid``)."""
    df = table.data
    reason = df[INVALID].astype(object) if INVALID in df.columns else pd.Series("", index=df.index, dtype=object)
    reason = reason.fillna("")
    kinds: dict[str, int] = {}
    for name, col in table.columns.items():  # an int64 column holds whole numbers: 0.5 would be stored as 0
        if col.dtype == "int64" and name in df.columns and pd.api.types.is_float_dtype(df[name]):
            v = df[name]
            with np.errstate(invalid="ignore"):
                fraction = np.isfinite(v) & (v != np.round(v))
            if fraction.any():
                reason = _join(reason, fraction, f"{name}: " + v.map("{:g}".format) + " is not a whole number")
    n_type = int((reason != "").sum())
    if n_type:
        kinds["wrong type"] = n_type
    # a required value that is missing (a label; a C-MAPSS operating setting, which places the row in a regime):
    # the row is not usable, unlike one with a missing measurement
    required = [n for n, c in table.columns.items() if c.required and n in df.columns]
    if required:
        lacking = pd.Series(False, index=df.index)
        for name in required:
            missing = df[name].isna()
            if missing.any():
                reason = _join(reason, missing, f"{name}: missing")
                lacking |= missing
        if lacking.any():
            kinds["missing required value"] = int(lacking.sum())
    # impossible values: infinite or past float32 (whatever the column), or outside the column's range
    impossible = pd.Series(False, index=df.index)
    infinite: dict[str, pd.Series] = {}
    floats = [n for n in table.columns if n in df.columns and pd.api.types.is_float_dtype(df[n])]
    if floats:
        values = df[floats].to_numpy(dtype=float, na_value=np.nan)
        with np.errstate(invalid="ignore"):
            huge_cells = np.abs(values) > FLOAT32_MAX
        for j in np.flatnonzero(huge_cells.any(axis=0)):
            name, huge = floats[j], pd.Series(huge_cells[:, j], index=df.index)
            infinite[name] = huge
            text = pd.Series(
                [f"{name}: {v} " + ("is not a finite number" if np.isinf(v) else
                                    f"is beyond the float32 range (+-{FLOAT32_MAX:.4g}) features are stored in")
                 for v in values[huge_cells[:, j], j]],
                index=df.index[huge],
                dtype=object,
            )
            reason = _join(reason, huge, text.reindex(df.index))
            impossible |= huge
    for name, col in table.columns.items():
        if name not in df.columns or (col.lo is None and col.hi is None):
            continue
        v = df[name]
        if name in infinite:
            v = v.where(~infinite[name])  # reported above
        out = pd.Series(False, index=df.index)
        if col.lo is not None:
            out |= v < col.lo
        if col.hi is not None:
            out |= v > col.hi
        out = out.fillna(False).astype(bool)
        if out.any():
            rng = f"[{'' if col.lo is None else col.lo}, {'' if col.hi is None else col.hi}]"
            reason = _join(reason, out, f"{name}: " + v.astype(str) + f" {col.unit} outside {rng}")
            impossible |= out
    if impossible.any():
        kinds["impossible value"] = int(impossible.sum())
    # duplicate keys and time going backwards, per entity in file order
    key, ts = table.key, df[TIMESTAMP]
    dup = df.duplicated([key, TIMESTAMP], keep="first")
    if dup.any():
        first = df.loc[~dup]
        first_row = pd.Series(first[SOURCE_ROW].values, index=pd.MultiIndex.from_frame(first[[key, TIMESTAMP]]))
        rows = first_row.reindex(pd.MultiIndex.from_frame(df.loc[dup, [key, TIMESTAMP]])).values
        text = pd.Series(
            [f"duplicate key: ({k}, {t.isoformat()}) already at source row {r}" for k, t, r in
             zip(df.loc[dup, key], df.loc[dup, TIMESTAMP], rows, strict=True)],
            index=df.index[dup],
            dtype=object,
        )
        reason = _join(reason, dup, text.reindex(df.index))
        kinds["duplicate key"] = int(dup.sum())
    ts_ns = ts.dt.as_unit("ns").astype("int64")
    seen = ts_ns.groupby(df[key], sort=False).cummax()
    prev = seen.groupby(df[key], sort=False).shift()
    back = (ts_ns < prev).fillna(False).astype(bool) & ~dup
    if back.any():
        prev_ts = pd.to_datetime(prev[back].astype("int64"), utc=True, unit="ns")
        text = pd.Series(
            [f"time goes backwards: {t.isoformat()} after {p.isoformat()}" for t, p in
             zip(ts[back], prev_ts, strict=True)],
            index=df.index[back],
            dtype=object,
        )
        reason = _join(reason, back, text.reindex(df.index))
        kinds["time goes backwards"] = int(back.sum())
    bad = reason != ""
    good = df.loc[~bad].drop(columns=[INVALID], errors="ignore")
    bad_rows = pd.concat(
        [df.loc[bad].drop(columns=[INVALID], errors="ignore"), reason[bad].rename("reason")], axis=1
    )
    return TableCheck(good, bad_rows, kinds)


@dataclass(slots=True)
class Validation:
    tables: dict[str, pd.DataFrame]  # good rows per table kind
    bad_rows: int  # distinct source rows set aside (rejected by the adapter or failing any table)
    source_rows: int
    reasons: dict[str, int]
    quarantined: pd.DataFrame  # columns: table, source_row, reason, row (JSON text)

    @property
    def bad_share(self) -> float:
        return self.bad_rows / self.source_rows if self.source_rows else 0.0


def _json_value(v: object) -> object:
    """A cell as standard JSON: missing (NaN, None, NaT) -> null; an infinite number -> "inf" / "-inf" (json
    would write a bare ``Infinity``, which is not JSON); anything else as it is (or its text)."""
    if isinstance(v, (float, np.floating)) and np.isinf(v):
        return "inf" if v > 0 else "-inf"
    try:
        return None if pd.isna(v) else v
    except (TypeError, ValueError):  # an array-like cell
        return v


def _row_json(frame: pd.DataFrame) -> list[str]:
    """Each bad row as JSON; a cell that was no number is shown as the source had it (``"air_temp_k": "hot"``),
    read back from the reason ``coerce_numeric`` gave, not as the missing value it was turned into."""
    cols = [c for c in frame.columns if c != "reason"]
    reasons = frame["reason"].tolist() if "reason" in frame.columns else [""] * len(frame)
    out = []
    for r, why in zip(frame[cols].itertuples(index=False, name=None), reasons, strict=True):
        row = {c: _json_value(v) for c, v in zip(cols, r, strict=True)}
        if NOT_A_NUMBER in why:
            for c, text in raw_cells(why).items():
                if c in row and row[c] is None:
                    row[c] = text
        out.append(json.dumps(row, default=str, allow_nan=False))
    return out


def validate(canonical: Canonical) -> Validation:
    """Check every table; a source row bad in one table is dropped from all tables (so features and labels
    stay aligned) and reported once per reason."""
    checks = {kind: check_table(t) for kind, t in canonical.tables.items()}
    parts, reasons = [], {}
    if len(canonical.rejects):
        rj = canonical.rejects
        parts.append(
            pd.DataFrame(
                {
                    "table": "source",
                    SOURCE_ROW: rj[SOURCE_ROW].values,
                    "file": rj["file"].values if "file" in rj else "",
                    "reason": rj["reason"].values,
                    "row": [json.dumps({"raw": r}) for r in rj["raw"]],
                }
            )
        )
        reasons["unreadable row"] = len(rj)
    for kind, c in checks.items():
        for k, n in c.reasons.items():
            reasons[k] = max(reasons.get(k, 0), n)  # the same source row fails in every table it feeds
        if len(c.bad):
            parts.append(
                pd.DataFrame(
                    {
                        "table": kind,
                        SOURCE_ROW: c.bad[SOURCE_ROW].values,
                        "file": c.bad["file"].values if "file" in c.bad else "",
                        "reason": c.bad["reason"].values,
                        "row": _row_json(c.bad),
                    }
                )
            )
    quarantined = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(
        columns=["table", SOURCE_ROW, "file", "reason", "row"]
    )
    # a source row is (file, line); drop rows bad anywhere from every table
    bad_keys = set(zip(quarantined["file"].astype(str), quarantined[SOURCE_ROW].astype("int64"), strict=True))
    tables = {}
    for kind, c in checks.items():
        g = c.good
        if bad_keys:
            files = g["file"].astype(str) if "file" in g.columns else pd.Series("", index=g.index)
            keys = pd.Series(list(zip(files, g[SOURCE_ROW].astype("int64"), strict=True)), index=g.index)
            g = g.loc[~keys.isin(bad_keys)]
        tables[kind] = g.reset_index(drop=True)
    return Validation(tables, len(bad_keys), canonical.source_rows, reasons, quarantined)


def write_quarantine(root: Path, tenant: str, dataset: str, run_id: str, v: Validation, source: str) -> Path | None:
    """Write the quarantined rows as JSONL; None (and any old file for this run id removed) when none. ``file``
    names the file a row came from: the table's ``file`` column where an adapter reads several (a C-MAPSS
    folder), else the source's own name."""
    source_name = Path(source).name if source else ""
    path = Path(root) / tenant / dataset / f"{run_id}.jsonl"
    if not len(v.quarantined):
        path.unlink(missing_ok=True)
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for r in v.quarantined.itertuples(index=False):
            rec = {
                "dataset": dataset,
                "table": r.table,
                "source": source,
                "file": r.file if isinstance(r.file, str) and r.file else source_name,
                SOURCE_ROW: int(r.source_row),
                "reason": r.reason,
                "row": json.loads(r.row),
            }
            f.write(json.dumps(rec, ensure_ascii=False, default=str) + "\n")
    tmp.replace(path)
    return path
