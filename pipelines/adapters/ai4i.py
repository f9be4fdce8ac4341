"""AI4I 2020 predictive maintenance (C29, synthetic milling-machine data): one CSV -> process sensor readings,
failure labels and failure events.

Decisions (see docs/pipelines.md):
- Entity: one row is one machining run on one product; ``lot_id = "ai4i-<Product ID>"`` (unique per row).
- Time: the file has no clock. ``UDI`` orders the rows, so row ``UDI`` is stamped
  ``RUN_EPOCH + (UDI - 1) minutes`` (2020-01-01T00:00Z); ``udi`` is kept for the prediction contract.
- Units as published: K, rpm, N·m, minutes of tool wear. Labels: ``Machine failure`` and the five mode flags.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

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

DATASET = "ai4i"
KSIC = "C29"
RUN_EPOCH = pd.Timestamp("2020-01-01T00:00:00Z")
RUN_PERIOD = pd.Timedelta(minutes=1)
TYPES = ("L", "M", "H")
MODES = ("TWF", "HDF", "PWF", "OSF", "RNF")
LABELS = ("Machine failure", *MODES)  # the label columns as the file names them
MAX_UDI = 100_000_000  # (u-1) minutes after RUN_EPOCH must stay a valid timestamp

RENAME = {
    "UDI": "udi",
    "Product ID": "product_id",
    "Type": "type",
    "Air temperature [K]": "air_temp_k",
    "Process temperature [K]": "process_temp_k",
    "Rotational speed [rpm]": "rotational_speed_rpm",
    "Torque [Nm]": "torque_nm",
    "Tool wear [min]": "tool_wear_min",
    "Machine failure": "machine_failure",
    **{m: m.lower() for m in MODES},
}
SENSOR_COLUMNS: dict[str, Column] = {
    "udi": Column("1", 1, None, dtype="int64", description="row id of the original file"),
    "type": Column("1", dtype="string", description="product quality variant L/M/H"),
    "air_temp_k": Column("K", 250.0, 350.0, description="air temperature"),
    "process_temp_k": Column("K", 250.0, 400.0, description="process temperature"),
    "rotational_speed_rpm": Column("rpm", 0.0, 10_000.0, description="spindle speed"),
    "torque_nm": Column("N*m", 0.0, 200.0, description="torque"),
    "tool_wear_min": Column("min", 0.0, 1_000.0, description="tool wear (minutes of use)"),
}
LABEL_COLUMNS: dict[str, Column] = {
    "machine_failure": Column("1", 0, 1, dtype="int64", required=True),
    **{m.lower(): Column("1", 0, 1, dtype="int64", required=True) for m in MODES},
}
NUMERIC = ["udi", "air_temp_k", "process_temp_k", "rotational_speed_rpm", "torque_nm", "tool_wear_min", *LABEL_COLUMNS]


def read(path: Path) -> Canonical:
    path = Path(path)
    df, malformed, warnings = read_source(path, "an AI4I 2020 CSV", encoding="utf-8-sig", columns=RENAME)
    missing = [c for c in RENAME if c not in df.columns and c not in LABELS]
    if missing:
        raise ValueError(f"{path.name}: not an AI4I 2020 file; missing columns {missing}")
    # rows to score may come without labels: then there is no labels table (the features are written alone). A file
    # with some label columns but not all writes those it has and leaves the others empty (null), with a warning:
    # a required label the file has no column for would set every row aside
    absent = [c for c in LABELS if c not in df.columns]
    labelled = len(absent) < len(LABELS)
    if labelled and absent:
        have = [c for c in LABELS if c not in absent]
        warnings.append(f"{path.name}: no label column {', '.join(absent)} (the file has {', '.join(have)}); its "
                        f"rows are kept with {'that label' if len(absent) == 1 else 'those labels'} empty (null)")
    original = df.drop(columns=[SOURCE_ROW])  # the values as read, for the quarantine
    df = df.rename(columns=RENAME)
    for c in LABEL_COLUMNS:
        if c not in df.columns:
            df[c] = np.nan
    total = len(df) + len(malformed)
    df, why = coerce_numeric(df, NUMERIC)
    bad_type = ~df["type"].isin(TYPES)
    type_text = df["type"].astype(object).where(df["type"].notna(), "missing").astype(str)
    why = why.where(~bad_type, why + "; type: " + type_text + " is not L, M or H").str.strip("; ")
    # rows that cannot be placed (no UDI: no time; no Product ID: no entity) are set aside here
    no_udi = df["udi"].isna() & original["UDI"].isna()
    no_product = df["product_id"].isna() | (df["product_id"].astype(str).str.strip() == "")
    place = join_reasons(
        reason_where(no_udi, "udi: missing"),
        count_problems(df["udi"], "udi", MAX_UDI),
        reason_where(no_product, "product_id: missing"),
    )
    unplaceable = df["udi"].isna() | no_product | (place != "" if place is not None else False)
    rejects = malformed
    if unplaceable.any():
        rj = df.loc[unplaceable, [SOURCE_ROW]].copy()
        rj["reason"] = join_reasons(place, why)[unplaceable].values
        rj["raw"] = row_text(original.loc[unplaceable]).values
        rejects = pd.concat([malformed, rj], ignore_index=True).sort_values(SOURCE_ROW, ignore_index=True)
        df, why = df.loc[~unplaceable].copy(), why[~unplaceable]
    df["_invalid"] = why.values
    df["udi"] = df["udi"].astype("int64")
    df["lot_id"] = "ai4i-" + df["product_id"].astype(str)
    df[TIMESTAMP] = RUN_EPOCH + pd.to_timedelta(df["udi"] - 1, unit="min")
    readings = df[["lot_id", TIMESTAMP, SOURCE_ROW, "_invalid", *SENSOR_COLUMNS]].reset_index(drop=True)
    labels = df[["lot_id", TIMESTAMP, SOURCE_ROW, "udi", *LABEL_COLUMNS]].reset_index(drop=True)
    failed = df[df["machine_failure"] == 1]
    events = pd.DataFrame(
        {
            "lot_id": failed["lot_id"],
            TIMESTAMP: failed[TIMESTAMP],
            SOURCE_ROW: failed[SOURCE_ROW],
            "event": "machine_failure",
            "modes": failed[[m.lower() for m in MODES]]
            .apply(lambda r: ",".join(m for m in MODES if r[m.lower()] == 1), axis=1)
            .astype(str),
        }
    ).reset_index(drop=True)
    lacking = {RENAME[c] for c in absent}  # not required: no row has them
    notes = {
        "time": f"synthetic: UDI u -> {RUN_EPOCH.isoformat()} + (u-1) x {RUN_PERIOD} (UTC); the file has no clock",
        "entity": "lot_id = ai4i-<Product ID>; one machining run per row",
    }
    tables = {
        "sensor_readings": Table("sensor_readings", "lot_id", SENSOR_COLUMNS, readings, notes),
        "labels": Table("labels", "lot_id", {n: replace(c, required=False) if n in lacking else c
                                              for n, c in LABEL_COLUMNS.items()}, labels, notes),
        "events": Table("events", "lot_id", {"modes": Column("1", dtype="string")}, events, notes),
    }
    if not labelled:
        del tables["labels"], tables["events"]
    return Canonical(DATASET, KSIC, str(path), tables, rejects, total, warnings)
