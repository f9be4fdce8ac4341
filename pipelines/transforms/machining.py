"""C29 machining (AI4I 2020) features: the process readings plus the physics the failure modes follow
(heat dissipation: temperature rise; power failure: mechanical power; overstrain: wear x torque)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipelines.canonical import TIMESTAMP

KEY = "lot_id"
FEATURES: dict[str, str] = {
    "udi": "int64",
    "type": "string",
    "type_l": "int64",
    "type_m": "int64",
    "type_h": "int64",
    "air_temp_k": "float32",
    "process_temp_k": "float32",
    "temp_rise_k": "float32",
    "rotational_speed_rpm": "float32",
    "torque_nm": "float32",
    "tool_wear_min": "float32",
    "power_w": "float32",
    "wear_torque_min_nm": "float32",
}
LABELS: dict[str, str] = {"udi": "int64", "machine_failure": "int64", "twf": "int64", "hdf": "int64",
                          "pwf": "int64", "osf": "int64", "rnf": "int64"}


def features(batch: pd.DataFrame) -> pd.DataFrame:
    df = batch.sort_values([KEY, TIMESTAMP], kind="stable").reset_index(drop=True)
    out = df[[KEY, TIMESTAMP, "udi", "type"]].copy()
    for t in ("L", "M", "H"):
        out[f"type_{t.lower()}"] = (df["type"] == t).astype("int64")
    for c in ("air_temp_k", "process_temp_k"):
        out[c] = df[c].astype("float32")
    out["temp_rise_k"] = (df["process_temp_k"] - df["air_temp_k"]).astype("float32")
    for c in ("rotational_speed_rpm", "torque_nm", "tool_wear_min"):
        out[c] = df[c].astype("float32")
    out["power_w"] = (df["torque_nm"] * df["rotational_speed_rpm"] * 2 * np.pi / 60).astype("float32")
    out["wear_torque_min_nm"] = (df["tool_wear_min"] * df["torque_nm"]).astype("float32")
    out["type"] = out["type"].astype(str)
    return out[[KEY, TIMESTAMP, *FEATURES]]


def labels(batch: pd.DataFrame) -> pd.DataFrame:
    """Label rows -> the label view's columns, in (entity, time) order. A label the file had no column for is
    missing in every row: nullable integers keep it null (int64 cannot hold it)."""
    df = batch.sort_values([KEY, TIMESTAMP], kind="stable").reset_index(drop=True)
    return df[[KEY, TIMESTAMP, *LABELS]].astype({c: "Int64" for c in LABELS})
