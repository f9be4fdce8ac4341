"""C22 injection moulding (demo) features: per-machine rolling statistics of the process signals that drive
defects and wear, last-shot lags, and local calendar features."""

from __future__ import annotations

import pandas as pd

from pipelines.canonical import TIMESTAMP
from pipelines.transforms.calendar import calendar_features
from pipelines.transforms.rolling import feature_names as rolling_names
from pipelines.transforms.rolling import lag_names, lags, rolling_stats

KEY = "machine_id"
SIGNALS = ("melt_temp_c", "mold_temp_c", "injection_pressure_bar", "holding_pressure_bar", "injection_time_s",
           "cooling_time_s", "cycle_time_s", "screw_rpm", "shot_weight_g")
TRENDS = ("melt_temp_c", "injection_pressure_bar", "shot_weight_g", "cycle_time_s")
WINDOWS = (10, 120)
STATS = ("mean", "std", "slope")
FEATURES: dict[str, str] = {
    "cycle_no": "int64",
    **{c: "float32" for c in SIGNALS},
    **{n: "float32" for n in rolling_names(TRENDS, WINDOWS, STATS)},
    **{n: "float32" for n in lag_names(TRENDS, (1,))},
    "hour": "int64",
    "is_workday": "bool",
}
LABELS: dict[str, str] = {"defect": "bool", "defect_type": "string"}
ENERGY: dict[str, str] = {"usage_kwh": "float32", "shots": "int64"}


def features(batch: pd.DataFrame) -> pd.DataFrame:
    df = batch.sort_values([KEY, TIMESTAMP], kind="stable").reset_index(drop=True)
    roll = rolling_stats(df, key=KEY, columns=TRENDS, windows=WINDOWS, stats=STATS)
    lag = lags(df, key=KEY, columns=TRENDS, lags=(1,))
    cal = calendar_features(df[TIMESTAMP])[["hour", "is_workday"]]
    base = df[[KEY, TIMESTAMP, "cycle_no", *SIGNALS]].astype({c: "float32" for c in SIGNALS})
    return pd.concat([base, roll, lag, cal], axis=1)[[KEY, TIMESTAMP, *FEATURES]]


def labels(batch: pd.DataFrame) -> pd.DataFrame:
    df = batch.sort_values([KEY, TIMESTAMP], kind="stable").reset_index(drop=True)
    return df[[KEY, TIMESTAMP, *LABELS]].astype({"defect": "bool", "defect_type": str})


def energy(batch: pd.DataFrame) -> pd.DataFrame:
    df = batch.sort_values([KEY, TIMESTAMP], kind="stable").reset_index(drop=True)
    return df[[KEY, TIMESTAMP, *ENERGY]].astype(ENERGY)
