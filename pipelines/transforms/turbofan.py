"""C31 turbofan (C-MAPSS) features: regime-normalised sensors, rolling statistics, lags; plus RUL labels.

``prepare`` runs once on the driver over the whole input (regimes and per-regime statistics per FD subset);
``features`` runs per partition of whole units, with those parameters.

Rolling windows and lags count cycles of each unit, not rows: a cycle without a row (quarantined, or absent
in the file) reads as missing, so ``lag_1`` of the cycle after it is NaN and a 5-cycle window holds the cycles
of those 5 that exist. Sensor values missing in a row that exists are forward-filled first.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from pipelines.adapters.cmapss import INFORMATIVE, REGIMES, SENSORS, SETTINGS
from pipelines.canonical import TIMESTAMP
from pipelines.transforms.missing import handle_missing
from pipelines.transforms.regimes import RegimeModel, RegimeStats, fit_regime_stats, fit_regimes, normalize_by_regime
from pipelines.transforms.rolling import feature_names as rolling_names
from pipelines.transforms.rolling import lag_names, lags, rolling_stats

KEY = "unit_id"
WINDOWS = (5, 20)
LAGS = (1,)
NORM = tuple(f"{s}_norm" for s in INFORMATIVE)
FEATURES: dict[str, str] = {
    "cycle": "int64",
    "regime": "int64",
    **{s: "float32" for s in SETTINGS},
    **{s: "float32" for s in SENSORS},
    **{f"{s}_norm": "float32" for s in SENSORS},
    **{n: "float32" for n in rolling_names(NORM, WINDOWS)},
    **{n: "float32" for n in lag_names(NORM, LAGS)},
}
LABELS: dict[str, str] = {"cycle": "int64", "rul": "int64", "failed": "bool"}


@dataclass(frozen=True)
class TurbofanParams:
    regimes: dict[str, RegimeModel]  # per FD subset
    stats: dict[str, RegimeStats]

    def summary(self) -> dict:
        return {s: {"regimes": m.k} for s, m in self.regimes.items()}


def prepare(readings: pd.DataFrame) -> TurbofanParams:
    regimes, stats = {}, {}
    for subset, part in readings.groupby("subset", sort=True):
        k = REGIMES.get(str(subset), 1)
        model = fit_regimes(part, list(SETTINGS), k)
        regimes[str(subset)] = model
        stats[str(subset)] = fit_regime_stats(part, model.assign(part), list(SENSORS), model.k)
    return TurbofanParams(regimes, stats)


def features(batch: pd.DataFrame, params: TurbofanParams) -> pd.DataFrame:
    """Sensor readings of whole units -> one feature row per (unit, cycle)."""
    df = batch.sort_values([KEY, TIMESTAMP], kind="stable").reset_index(drop=True)
    df, _ = handle_missing(df, list(SENSORS), strategy="ffill", key=KEY)
    parts = []
    for subset, idx in df.groupby("subset", sort=True).groups.items():
        part = df.loc[idx]
        model = params.regimes[str(subset)]
        reg = model.assign(part)
        z = normalize_by_regime(part, reg, params.stats[str(subset)])
        parts.append(pd.concat([part[[KEY, TIMESTAMP, "cycle"]], pd.DataFrame({"regime": reg}, index=part.index),
                                part[list(SETTINGS) + list(SENSORS)].astype("float32"), z], axis=1))
    base = pd.concat(parts).sort_index()
    roll = rolling_stats(base, key=KEY, columns=NORM, windows=WINDOWS, step="cycle")
    lag = lags(base, key=KEY, columns=NORM, lags=LAGS, step="cycle")
    out = pd.concat([base, roll, lag], axis=1)
    return out[[KEY, TIMESTAMP, *FEATURES]]


def labels(batch: pd.DataFrame) -> pd.DataFrame:
    """Label rows -> the label view's columns, in (entity, time) order."""
    df = batch.sort_values([KEY, TIMESTAMP], kind="stable").reset_index(drop=True)
    return df[[KEY, TIMESTAMP, *LABELS]].astype(LABELS)
