"""C24 steel plant energy features: meter readings, usage lags and rolling load statistics (per meter),
and calendar features of the interval start in Korea time (public holidays included).

Lags and windows count 15-minute intervals of each meter's grid, not rows: ``usage_kwh_lag_96`` is the usage
exactly one day earlier, NaN when that interval has no row (quarantined or absent in the file); a window of
96 covers the day's 96 intervals that exist. Readings missing in a row that exists are forward-filled first, except
the usage itself (``GAPS_KEPT``): a missing kWh stays a gap, which the energy forecaster fills from the same time a
week earlier and counts (filled here with the last value, a stopped meter read as a plant running on).

A plant with a kWh meter only has no reactive power, power factors, CO2 or load type: they are missing throughout
and stay missing (a push that leaves them out stores them null, ``pipelines.raw_ingest``); the usage lags, windows and
calendar need none of them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipelines.canonical import TIMESTAMP
from pipelines.transforms.calendar import CALENDAR_FEATURES, calendar_features
from pipelines.transforms.missing import handle_missing
from pipelines.transforms.rolling import feature_names as rolling_names
from pipelines.transforms.rolling import lag_names, lags, rolling_stats

KEY = "meter_id"
READINGS = ("usage_kwh", "lagging_kvarh", "leading_kvarh", "co2_t", "lagging_pf", "leading_pf")
LAGS = (1, 4, 96, 672)  # 15 min, 1 h, 1 day, 1 week
WINDOWS = (4, 96)  # 1 h, 1 day
GAPS_KEPT = ("usage_kwh",)
INTERVAL = pd.Timedelta(minutes=15)
CAL_DTYPES = {c: "bool" if c.startswith("is_") else "int64" for c in CALENDAR_FEATURES}
FEATURES: dict[str, str] = {
    **{c: "float32" for c in READINGS},
    "load_type": "string",
    **CAL_DTYPES,
    **{n: "float32" for n in lag_names(["usage_kwh"], LAGS)},
    **{n: "float32" for n in rolling_names(["usage_kwh"], WINDOWS)},
}


def interval_steps(times: pd.Series, keys: pd.Series | None = None) -> np.ndarray:
    """The 15-minute interval number of each interval end (the grid step); a time off the grid is refused, named as
    the plant's clock reads it (Korea time) beside UTC, with its meter: a push sent with +09:00 had been answered in
    UTC only."""
    since = times - pd.Timestamp(0, tz="UTC")
    off = since % INTERVAL != pd.Timedelta(0)
    if off.any():
        first = off.to_numpy().argmax()
        at = times.iloc[first]
        meter = f"meter {keys.iloc[first]!r}: " if keys is not None else ""
        raise ValueError(
            f"{meter}{TIMESTAMP} {at.tz_convert('Asia/Seoul').isoformat()} "
            f"({at.tz_convert('UTC').isoformat().replace('+00:00', 'Z')}) is not on the 15-minute grid: a reading "
            "closes a 15-minute interval, at :00, :15, :30 or :45")
    return (since // INTERVAL).to_numpy(dtype=np.int64)


def features(batch: pd.DataFrame) -> pd.DataFrame:
    """Meter readings of whole meters -> one row per (meter, interval end)."""
    df = batch.sort_values([KEY, TIMESTAMP], kind="stable").reset_index(drop=True)
    df, _ = handle_missing(df, list(READINGS), strategy="ffill", key=KEY, keep=GAPS_KEPT)
    cal = calendar_features(df["interval_start"])
    step = interval_steps(df[TIMESTAMP], df[KEY])
    lag = lags(df, key=KEY, columns=["usage_kwh"], lags=LAGS, step=step)
    roll = rolling_stats(df, key=KEY, columns=["usage_kwh"], windows=WINDOWS, step=step)
    base = df[[KEY, TIMESTAMP, *READINGS, "load_type"]].astype({c: "float32" for c in READINGS})
    base["load_type"] = base["load_type"].astype(str)  # pandas 3: a missing load type stays missing, not "None"
    out = pd.concat([base, cal, lag, roll], axis=1)
    return out[[KEY, TIMESTAMP, *FEATURES]]
