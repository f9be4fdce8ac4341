"""AI4I features shared by training and prediction (pandas/numpy only: no torch).

The AI4I failure modes follow simple physics (Matzka 2020): heat dissipation fails when the air/process
temperature difference is under 8.6 K and the speed under 1380 rpm; power fails outside 3500-9000 W;
overstrain fails when tool wear x torque passes 11,000/12,000/13,000 min.Nm for L/M/H; tool wear fails
between 200 and 240 min. The engineered columns expose those quantities (and their margins) to the network.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from models.booleans import boolean_row
from models.files import read_csv_skipping_blank_rows
from models.rowids import frame_ids
from serving.errors import InvalidInput, shown

WHAT = "an AI4I 2020 CSV"  # the format, in messages about a file
ID = "UDI"
TYPE = "Type"
NUMERIC = ["Air temperature [K]", "Process temperature [K]", "Rotational speed [rpm]", "Torque [Nm]", "Tool wear [min]"]
RAW = [TYPE, *NUMERIC]
LABEL = "Machine failure"
MODES = ["TWF", "HDF", "PWF", "OSF"]  # learnable modes; RNF is random by construction
LABELS = [LABEL, *MODES, "RNF"]
TYPES = ("L", "M", "H")
OSF_LIMIT = {"L": 11000.0, "M": 12000.0, "H": 13000.0}
# the feature store's names for the same readings (view ``ai4i_features``): rows read from the online store by
# entity id score like rows in the original AI4I format
STORE_NAMES = {
    "udi": ID,
    "type": TYPE,
    "air_temp_k": "Air temperature [K]",
    "process_temp_k": "Process temperature [K]",
    "rotational_speed_rpm": "Rotational speed [rpm]",
    "torque_nm": "Torque [Nm]",
    "tool_wear_min": "Tool wear [min]",
}


# and its names for the labels (view ``ai4i_labels``): a point-in-time frame from the store, written to a file,
# trains as it is (``training needs the label column 'Machine failure'`` had asked for renames by hand)
LABEL_STORE_NAMES = {"machine_failure": LABEL, **{m.lower(): m for m in [*MODES, "RNF"]}}


def read_rows(path: Path | str) -> pd.DataFrame:
    """The file's rows (training and ``predict``), without those in which every cell is empty (Excel's trailing
    ``,,,,,,`` lines), as the energy family reads its files; the feature store's column names read as AI4I's."""
    return with_raw_names(read_csv_skipping_blank_rows(path, WHAT))


# columns a row may carry besides the features: its id, labels, the source's product id and what an online-store
# lookup adds (entity key, event time, the view's derived columns). Anything else in an API record is refused.
KNOWN_EXTRA = {
    ID, "Product ID", *LABELS, *STORE_NAMES, "lot_id", "event_timestamp",
    "type_l", "type_m", "type_h", "temp_rise_k", "power_w", "wear_torque_min_nm",
}
Raw = dict[str, np.ndarray]  # validated columns: TYPE as str objects, NUMERIC as float64


def with_raw_names(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with feature-store column names (features and labels) mapped to the AI4I names where the AI4I name is
    absent."""
    names = STORE_NAMES | LABEL_STORE_NAMES
    rename = {c: raw for c, raw in names.items() if c in df.columns and raw not in df.columns}
    return df.rename(columns=rename) if rename else df


_ALIAS = {raw: store for store, raw in STORE_NAMES.items()}


def _alias(column: str) -> str | None:
    return _ALIAS.get(column)


def check_columns(columns: dict[str, object]) -> Raw:
    """Raw columns (any sequences, one per RAW name) -> validated arrays; errors name the column and row."""
    given = columns[TYPE]
    types = np.asarray(given, dtype=object)
    bad = []
    try:
        clean = set(pd.unique(types) if len(types) > 64 else types) <= OSF_LIMIT.keys()
    except TypeError:  # an unhashable value (a list, an object): found and named below
        clean = False
    if not clean:
        types = np.asarray([str(v).strip() if v is not None else "" for v in given], dtype=object)
        bad = [i for i, t in enumerate(types) if t not in OSF_LIMIT]
    if bad:
        i = bad[0]
        raise InvalidInput(f"column {TYPE!r} row {i + 1}: expected L, M or H, got {shown(list(columns[TYPE])[i])}")
    raw: Raw = {TYPE: types}
    for c in NUMERIC:
        given = columns[c]
        try:
            values = np.asarray(given, dtype=np.float64)
        except (TypeError, ValueError, OverflowError):  # find the offending row
            values = None
        if values is None or values.ndim != 1:  # a non-number, or lists where numbers belong: name the row
            values = np.asarray([_number(v) for v in given], dtype=np.float64)
        bad = ~np.isfinite(values)
        boolean = boolean_row(given, values)  # true and false were read as 1.0 and 0.0: no readings
        if boolean is not None:
            bad[boolean] = True
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise InvalidInput(f"column {c!r} row {i + 1}: expected a number, got {shown(list(given)[i])}")
        low, strict = LOWEST[c]
        bad = values <= low if strict else values < low
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            need = "above" if strict else "at least"
            got = shown(list(given)[i])
            raise InvalidInput(f"column {c!r} row {i + 1}: expected a reading {need} {low:g}, got {got}")
        lo, hi, unit = RANGE[c]
        bad = (values < lo) | (values > hi)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            celsius = " (in degrees Celsius? add 273.15 for kelvin)" if unit == "K" and -60 <= values[i] < lo else ""
            raise InvalidInput(f"column {c!r} row {i + 1}: {shown(list(given)[i])} is out of range: a machine reads "
                               f"{lo:g} to {hi:g} {unit} here, as 'sfai ingest ai4i' checks{celsius}")
        raw[c] = values
    return raw


def _ranges() -> dict[str, tuple[float, float, str]]:
    """Each reading's plausible range, the one the AI4I ingest checks (``pipelines.adapters.ai4i``): a reading
    outside it (a temperature in Celsius, a torque of 4,000 Nm) was scored as a healthy machine's."""
    from pipelines.adapters.ai4i import RENAME, SENSOR_COLUMNS

    out = {}
    for c in NUMERIC:
        col = SENSOR_COLUMNS[RENAME[c]]
        out[c] = (float(col.lo), float(col.hi), col.unit)
    return out


# physical floors of the readings (absolute zero; no negative speed, torque or wear): below them is a data error
LOWEST = {c: ((0.0, True) if c.endswith("[K]") else (0.0, False)) for c in NUMERIC}
RANGE = _ranges()


def _number(v: object) -> float:
    if isinstance(v, (bool, np.bool_)):  # not a reading (``boolean_row`` names it)
        return float("nan")
    try:
        return float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):  # OverflowError: an integer past float's range
        return float("nan")


def validate(df: pd.DataFrame) -> pd.DataFrame:
    """The raw feature columns, checked: each present, numeric (Type one of L/M/H) and not empty. Columns may
    carry the AI4I names or the feature store's (``STORE_NAMES``)."""
    return pd.DataFrame(validate_arrays(df), index=df.index)


def validate_arrays(df: pd.DataFrame) -> Raw:
    """``validate`` without building a frame: the checked columns as arrays (what scoring needs)."""
    df = with_raw_names(df)
    missing = [c for c in RAW if c not in df.columns]
    if missing:
        raise InvalidInput(f"missing feature column {missing[0]!r} (needs {', '.join(RAW)})")
    return check_columns({c: df[c].to_numpy() for c in RAW})


def validate_records(records: list[dict]) -> Raw:
    """API records (dicts) -> validated arrays: a missing, unknown or ill-typed field is an error naming it."""
    for r in records:
        check_fields(r)
    columns = {}
    for c in RAW:
        alias = _alias(c)
        if not any(c in r or alias in r for r in records):
            raise InvalidInput(f"missing feature column {c!r} (needs {', '.join(RAW)})")
        columns[c] = [r[c] if c in r else r.get(alias) for r in records]
    return check_columns(columns)


_ALLOWED = frozenset(RAW) | frozenset(KNOWN_EXTRA)


def check_fields(names: Iterable) -> None:
    """The field names of an API record (or the columns of a frame made of records): one that is neither a raw
    column nor a known extra (``KNOWN_EXTRA``) is refused, naming it, rather than ignored."""
    for k in names:
        if k not in _ALLOWED:
            raise InvalidInput(f"unknown feature {k!r} (the failure model takes {', '.join(RAW)})")


def known_fields(rows: list[dict]) -> list[dict]:
    """Online-store rows with only the fields a failure row may carry (the rest belong to the view)."""
    return [{k: v for k, v in r.items() if k in _ALLOWED} for r in rows]


# (column, its feature-store alias, its plausible range): a reading inside it (the floors included: a tool just
# changed has worn 0 min, a common reading, which must stay on the quick path) and above the physical floor
# (temperatures above 0 K) is clean; anything else goes to check_columns, which names it (the quick path had skipped
# the range: a torque of 500 Nm in a call of up to 64 records was scored as a healthy machine's)
_RAW_ALIASES = tuple((c, _alias(c), *(RANGE[c][:2] if c in RANGE else (0.0, 0.0))) for c in RAW)
assert all(lo > 0 or not LOWEST[c][1] for c, _, lo, _ in _RAW_ALIASES if c in LOWEST)  # the range keeps the floor


def clean_rows(records: list[dict]) -> list[tuple] | None:
    """API records as ``(Type, air, process, rpm, torque, wear)`` tuples, without numpy, when every record is
    already clean: only known fields, Type one of L/M/H, each reading a finite int or float. Anything else is
    None, and :func:`validate_records` checks the records (and names what is wrong). A few records of an MES
    call are read this way in a few microseconds."""
    out = []
    for r in records:
        for k in r:
            if k not in _ALLOWED:
                return None
        row = []
        for c, alias, lo, hi in _RAW_ALIASES:
            v = r[c] if c in r else r.get(alias)
            kind = type(v)
            if c == TYPE:
                if kind is not str or v not in OSF_LIMIT:
                    return None
                row.append(v)
            elif (kind is float or kind is int) and lo <= v <= hi:  # NaN compares false; ints in range are exact
                row.append(float(v))
            else:  # a string, a bool, None, a list, a reading out of range, NaN or inf: validate_records
                return None
        out.append(tuple(row))
    return out


def engineer_row(kind: str, air: float, proc: float, rpm: float, torque: float, wear: float) -> list:
    """One clean row -> its unscaled features: :func:`engineer_arrays` for one row, in plain Python with the same
    operations in the same order (so the same float64 values, bit for bit)."""
    dt = proc - air
    power = torque * rpm * 2 * np.pi / 60.0
    strain = wear * torque
    limit = OSF_LIMIT[kind]
    return [
        kind == "L", kind == "M", kind == "H", air, proc, rpm, torque, wear, dt, power, strain, strain / limit,
        max(dt - 8.6, (rpm - 1380) / 100.0), min(power - 3500.0, 9000.0 - power) / 1000.0,
        200 <= wear <= 240, dt < 8.6 and rpm < 1380, power < 3500 or power > 9000, strain > limit,
    ]


def engineer_occlusions(row: tuple, base: list, fills: list) -> list[list]:
    """The explanation's occluded copies of one clean row: for each raw column j (in ``RAW`` order),
    ``engineer_row`` of the row with column j replaced by ``fills[j]``. ``base`` is ``engineer_row(*row)``; each
    copy starts from it and recomputes only the features that column feeds, with engineer_row's operations in
    its order, so the values are the same bit for bit at a third of the cost (a single prediction's explanation
    builds six of these)."""
    kind, air, proc, rpm, torque, wear = row
    dt, strain, limit = base[8], base[10], OSF_LIMIT[kind]
    out = []
    f = fills[0]  # Type: the one-hots, and the overstrain limit it sets
    e = base.copy()
    f_limit = OSF_LIMIT[f]
    e[0], e[1], e[2], e[11], e[17] = f == "L", f == "M", f == "H", strain / f_limit, strain > f_limit
    out.append(e)
    for j, a, p in ((1, fills[1], proc), (2, air, fills[2])):  # air, process temperature: their difference
        e = base.copy()
        d = p - a
        e[j + 2], e[8] = fills[j], d  # raw column j is feature j + 2 (after the three one-hots)
        e[12], e[15] = max(d - 8.6, (rpm - 1380) / 100.0), d < 8.6 and rpm < 1380
        out.append(e)
    f = fills[3]  # speed: power and the heat rule
    e = base.copy()
    pw = torque * f * 2 * np.pi / 60.0
    e[5], e[9], e[12] = f, pw, max(dt - 8.6, (f - 1380) / 100.0)
    e[13], e[15], e[16] = min(pw - 3500.0, 9000.0 - pw) / 1000.0, dt < 8.6 and f < 1380, pw < 3500 or pw > 9000
    out.append(e)
    f = fills[4]  # torque: power and strain
    e = base.copy()
    pw, st = f * rpm * 2 * np.pi / 60.0, wear * f
    e[6], e[9], e[10], e[11] = f, pw, st, st / limit
    e[13], e[16], e[17] = min(pw - 3500.0, 9000.0 - pw) / 1000.0, pw < 3500 or pw > 9000, st > limit
    out.append(e)
    f = fills[5]  # tool wear: strain and the wear zone
    e = base.copy()
    st = f * torque
    e[7], e[10], e[11], e[14], e[17] = f, st, st / limit, 200 <= f <= 240, st > limit
    out.append(e)
    return out


def row_ids(df: pd.DataFrame) -> np.ndarray:
    return frame_ids(with_raw_names(df), ID)


def engineer_arrays(raw: Raw | pd.DataFrame) -> np.ndarray:
    """Validated raw columns -> the model's unscaled feature matrix [rows, FEATURES] (float64)."""
    kind = np.asarray(raw[TYPE], dtype=object)
    air, proc = np.asarray(raw["Air temperature [K]"], float), np.asarray(raw["Process temperature [K]"], float)
    rpm, torque = np.asarray(raw["Rotational speed [rpm]"], float), np.asarray(raw["Torque [Nm]"], float)
    wear = np.asarray(raw["Tool wear [min]"], float)
    dt = proc - air
    power = torque * rpm * 2 * np.pi / 60.0
    strain = wear * torque
    is_type = [kind == t for t in TYPES]
    limit = np.full(len(kind), np.nan)
    for t, mask in zip(TYPES, is_type, strict=True):
        limit[mask] = OSF_LIMIT[t]
    cols = [air, proc, rpm, torque, wear, dt, power, strain, strain / limit]
    cols += [
        np.maximum(dt - 8.6, (rpm - 1380) / 100.0),  # hdf_margin: < 0 only when both HDF conditions hold
        np.minimum(power - 3500.0, 9000.0 - power) / 1000.0,  # pwf_margin: < 0 outside the power band
        (wear >= 200) & (wear <= 240),  # twf_zone
        (dt < 8.6) & (rpm < 1380),  # hdf_rule
        (power < 3500) | (power > 9000),  # pwf_rule
        strain > limit,  # osf_rule
    ]
    out = np.empty((len(dt), len(TYPES) + len(cols)))
    for j, mask in enumerate(is_type):
        out[:, j] = mask
    for j, col in enumerate(cols, start=len(TYPES)):
        out[:, j] = col
    return out


FEATURES = [
    *(f"type_{t}" for t in TYPES), "air_temp", "process_temp", "rpm", "torque", "tool_wear", "temp_diff", "power",
    "strain", "strain_ratio", "hdf_margin", "pwf_margin", "twf_zone", "hdf_rule", "pwf_rule", "osf_rule",
]


def engineer(raw: pd.DataFrame) -> pd.DataFrame:
    """Validated raw columns -> the model's feature columns (unscaled)."""
    return pd.DataFrame(engineer_arrays(raw), columns=FEATURES, index=raw.index)


def scale(features: np.ndarray, scaler: dict) -> np.ndarray:
    with np.errstate(over="ignore"):  # past float32: inf, refused by the runtime with a message naming the feature
        return ((features - np.asarray(scaler["mean"])) / np.asarray(scaler["std"])).astype(np.float32)


def fit_scaler(features: pd.DataFrame) -> dict:
    mean = features.mean()
    std = features.std(ddof=0).replace(0.0, 1.0)
    return {"mean": [float(v) for v in mean], "std": [float(v) for v in std]}


def transform(features: pd.DataFrame, scaler: dict) -> np.ndarray:
    return scale(features[FEATURES].to_numpy(dtype=np.float64), scaler)


def matrix(df: pd.DataFrame, scaler: dict) -> np.ndarray:
    """Raw rows -> the scaled float32 matrix the ONNX model takes."""
    return transform(engineer(validate(df)), scaler)
