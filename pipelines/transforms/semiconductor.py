"""C26 semiconductor (SECOM) features: the 590 process measurements as float32 with missing values kept
(counted per lot in ``n_missing`` and per column in the missing-value report)."""

from __future__ import annotations

import pandas as pd

from pipelines.adapters.secom import FEATURES as MEASUREMENTS
from pipelines.canonical import TIMESTAMP
from pipelines.transforms.missing import MissingReport, handle_missing

KEY = "lot_id"
FEATURES: dict[str, str] = {"row_id": "int64", "n_missing": "int32", **{f: "float32" for f in MEASUREMENTS}}
LABELS: dict[str, str] = {"row_id": "int64", "label": "int64", "defect": "bool"}


def features_with_report(batch: pd.DataFrame) -> tuple[pd.DataFrame, MissingReport]:
    df = batch.sort_values([KEY, TIMESTAMP], kind="stable").reset_index(drop=True)
    df, report = handle_missing(df, MEASUREMENTS, strategy="keep", count_column="n_missing")
    out = pd.concat([df[[KEY, TIMESTAMP, "row_id", "n_missing"]], df[MEASUREMENTS].astype("float32")], axis=1)
    return out[[KEY, TIMESTAMP, *FEATURES]], report


def features(batch: pd.DataFrame) -> pd.DataFrame:
    return features_with_report(batch)[0]


def labels(batch: pd.DataFrame) -> pd.DataFrame:
    """Label rows -> the label view's columns, in (entity, time) order."""
    df = batch.sort_values([KEY, TIMESTAMP], kind="stable").reset_index(drop=True)
    return df[[KEY, TIMESTAMP, *LABELS]].astype(LABELS)
