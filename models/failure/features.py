"""AI4I features shared by training and prediction (pandas/numpy only: no torch).

The AI4I failure modes follow simple physics (Matzka 2020): heat dissipation fails when the air/process
temperature difference is under 8.6 K and the speed under 1380 rpm; power fails outside 3500-9000 W;
overstrain fails when tool wear x torque passes 11,000/12,000/13,000 min.Nm for L/M/H; tool wear fails
between 200 and 240 min. The engineered columns expose those quantities (and their margins) to the network.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from serving.errors import InvalidInput

ID = "UDI"
TYPE = "Type"
NUMERIC = ["Air temperature [K]", "Process temperature [K]", "Rotational speed [rpm]", "Torque [Nm]", "Tool wear [min]"]
RAW = [TYPE, *NUMERIC]
LABEL = "Machine failure"
MODES = ["TWF", "HDF", "PWF", "OSF"]  # learnable modes; RNF is random by construction
LABELS = [LABEL, *MODES, "RNF"]
TYPES = ("L", "M", "H")
OSF_LIMIT = {"L": 11000.0, "M": 12000.0, "H": 13000.0}


def read_rows(path: Path | str) -> pd.DataFrame:
    try:
        return pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise InvalidInput(f"{Path(path).name}: not a readable CSV ({str(e).splitlines()[0]})") from None


def validate(df: pd.DataFrame) -> pd.DataFrame:
    """The raw feature columns, checked: each present, numeric (Type one of L/M/H) and not empty."""
    missing = [c for c in RAW if c not in df.columns]
    if missing:
        raise InvalidInput(f"missing feature column {missing[0]!r} (needs {', '.join(RAW)})")
    out = pd.DataFrame(index=df.index)
    types = df[TYPE].astype(str).str.strip()
    bad = ~types.isin(TYPES)
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise InvalidInput(f"column {TYPE!r} row {i + 1}: expected L, M or H, got {df[TYPE].iloc[i]!r}")
    out[TYPE] = types
    for c in NUMERIC:
        values = pd.to_numeric(df[c], errors="coerce")
        bad = values.isna() | ~np.isfinite(values.to_numpy(dtype=float, na_value=np.nan))
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise InvalidInput(f"column {c!r} row {i + 1}: expected a number, got {df[c].iloc[i]!r}")
        out[c] = values.astype(float)
    return out


def row_ids(df: pd.DataFrame) -> np.ndarray:
    if ID not in df.columns:
        return np.arange(1, len(df) + 1)
    return df[ID].to_numpy()


def engineer(raw: pd.DataFrame) -> pd.DataFrame:
    """Validated raw columns -> the model's feature columns (unscaled)."""
    air, proc = raw["Air temperature [K]"], raw["Process temperature [K]"]
    rpm, torque, wear = raw["Rotational speed [rpm]"], raw["Torque [Nm]"], raw["Tool wear [min]"]
    dt = proc - air
    power = torque * rpm * 2 * np.pi / 60.0
    strain = wear * torque
    limit = raw[TYPE].map(OSF_LIMIT).astype(float)
    f = pd.DataFrame(index=raw.index)
    for t in TYPES:
        f[f"type_{t}"] = (raw[TYPE] == t).astype(float)
    f["air_temp"], f["process_temp"], f["rpm"], f["torque"], f["tool_wear"] = air, proc, rpm, torque, wear
    f["temp_diff"] = dt
    f["power"] = power
    f["strain"] = strain
    f["strain_ratio"] = strain / limit
    f["hdf_margin"] = np.maximum(dt - 8.6, (rpm - 1380) / 100.0)  # < 0 only when both HDF conditions hold
    f["pwf_margin"] = np.minimum(power - 3500.0, 9000.0 - power) / 1000.0  # < 0 outside the power band
    f["twf_zone"] = ((wear >= 200) & (wear <= 240)).astype(float)
    f["hdf_rule"] = ((dt < 8.6) & (rpm < 1380)).astype(float)
    f["pwf_rule"] = ((power < 3500) | (power > 9000)).astype(float)
    f["osf_rule"] = (strain > limit).astype(float)
    return f


FEATURES = list(engineer(pd.DataFrame({TYPE: ["L"], **{c: [1.0] for c in NUMERIC}})).columns)


def fit_scaler(features: pd.DataFrame) -> dict:
    mean = features.mean()
    std = features.std(ddof=0).replace(0.0, 1.0)
    return {"mean": [float(v) for v in mean], "std": [float(v) for v in std]}


def transform(features: pd.DataFrame, scaler: dict) -> np.ndarray:
    x = (features[FEATURES].to_numpy(dtype=np.float64) - np.asarray(scaler["mean"])) / np.asarray(scaler["std"])
    return x.astype(np.float32)


def matrix(df: pd.DataFrame, scaler: dict) -> np.ndarray:
    """Raw rows -> the scaled float32 matrix the ONNX model takes."""
    return transform(engineer(validate(df)), scaler)
