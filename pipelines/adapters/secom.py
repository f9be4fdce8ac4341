"""SECOM semiconductor process measurements (C26): ``secom_train.csv`` -> lot sensor readings and defect labels.

Decisions (see docs/pipelines.md):
- Entity: one row is one production entity (wafer/lot) tested once; ``lot_id = "secom-<row_id, 4 digits>"``.
- Time: the file's ``timestamp`` (``dd/mm/yyyy HH:MM:SS``) with no zone given; read as UTC as-is. A file saved again
  by a spreadsheet reads too (``dd/mm/yyyy HH:MM`` without the seconds, German ``dd.mm.yyyy HH:MM[:SS]``): the
  formats ``sfai train/predict defect`` read (``models.defect.drift.DAY_FIRST``), tried in turn.
- Units: the 590 measurements are anonymised, so their units are unknown (``?``) and no range is enforced;
  ``NaN`` is a missing measurement (kept, and counted by the missing-value report), not a bad row.
- Labels: ``label`` -1 pass / 1 fail -> ``defect`` (bool).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from models.defect.drift import DAY_FIRST_TEXT, day_first
from pipelines.adapters.source import read_source
from pipelines.canonical import (
    SOURCE_ROW,
    TIMESTAMP,
    Canonical,
    Column,
    Table,
    coerce_numeric,
    count_problems,
    join_reasons,
    reason_where,
    row_text,
)

DATASET = "secom"
KSIC = "C26"
N_FEATURES = 590
FEATURES = [f"f{i:03d}" for i in range(1, N_FEATURES + 1)]
MAX_ROW_ID = 1_000_000_000
SENSOR_COLUMNS: dict[str, Column] = {
    "row_id": Column("1", 1, None, dtype="int64", description="line of the original secom.data"),
    **{f: Column("?", description="anonymised process measurement") for f in FEATURES},
}
LABEL_COLUMNS = {"label": Column("1", -1, 1, dtype="int64", required=True), "defect": Column("1", dtype="bool")}


def read(path: Path) -> Canonical:
    path = Path(path)
    df, malformed, warnings = read_source(path, "a SECOM CSV", columns={"row_id", "label", "timestamp", *FEATURES})
    missing = [c for c in ("row_id", "timestamp", *FEATURES) if c not in df.columns]
    if missing:
        raise ValueError(f"{path.name}: not a SECOM file; missing columns {missing[:5]}")
    # rows to score may come without the label: then there is no labels table (the features are written alone)
    labelled = "label" in df.columns
    if not labelled:  # one concat: a wide frame, no warning
        df = pd.concat([df, pd.DataFrame({"label": np.nan}, index=df.index)], axis=1)
    total = len(df) + len(malformed)
    original = df[["row_id", "label", "timestamp"]]  # the values as read, for the quarantine
    df, why = coerce_numeric(df, ["row_id", "label", *FEATURES])
    ts = day_first(df["timestamp"]).dt.tz_localize("UTC")
    bad_label = df["label"].notna() & ~df["label"].isin([-1, 1])
    why = why.where(~bad_label, why + "; label: not -1 or 1").str.strip("; ")
    # rows we cannot place at all: no entity (row_id) or no time
    no_stamp = df["timestamp"].isna() | (df["timestamp"].astype(str).str.strip() == "")
    place = join_reasons(
        reason_where(original["row_id"].isna(), "row_id: missing"),
        count_problems(df["row_id"], "row_id", MAX_ROW_ID),
        reason_where(no_stamp, "timestamp: missing"),
        reason_where(ts.isna() & ~no_stamp, "timestamp: " + df["timestamp"].astype(str) + f" is not {DAY_FIRST_TEXT}"),
    )
    unplaceable = df["row_id"].isna() | ts.isna() | (place != "" if place is not None else False)
    rejects = malformed
    if unplaceable.any():
        rj = df.loc[unplaceable, [SOURCE_ROW]].copy()
        rj["reason"] = join_reasons(place, why)[unplaceable].values
        rj["raw"] = row_text(original.loc[unplaceable]).values
        rejects = pd.concat([malformed, rj], ignore_index=True).sort_values(SOURCE_ROW, ignore_index=True)
        df, why, ts = df.loc[~unplaceable].copy(), why[~unplaceable], ts[~unplaceable]
    row_id = df["row_id"].astype("int64")
    # astype(str): with no usable row the mapped (empty) column stays int64 and "secom-" + it would raise; validation
    # then refuses the file with its usual "N of N rows failed" line and the first row's reason
    lot_id = "secom-" + row_id.map("{:04d}".format).astype(str)
    extra = pd.DataFrame({"lot_id": lot_id, TIMESTAMP: ts, "_invalid": why.values}, index=df.index)
    df = pd.concat([df.drop(columns=["row_id"]), extra.assign(row_id=row_id)], axis=1)
    readings = df[["lot_id", TIMESTAMP, SOURCE_ROW, "_invalid", *SENSOR_COLUMNS]].reset_index(drop=True)
    labels = df[["lot_id", TIMESTAMP, SOURCE_ROW, "row_id", "label"]].reset_index(drop=True)
    labels["defect"] = labels["label"] == 1
    notes = {
        "time": "the file's test date-time, zone not given: read as UTC",
        "entity": "lot_id = secom-<row_id, 4 digits>",
        "units": "anonymised measurements: units unknown",
    }
    tables = {
        "sensor_readings": Table("sensor_readings", "lot_id", SENSOR_COLUMNS, readings, notes),
        "labels": Table("labels", "lot_id", LABEL_COLUMNS, labels, notes),
    }
    if not labelled:
        del tables["labels"]
    return Canonical(DATASET, KSIC, str(path), tables, rejects, total, warnings)
