"""SECOM features, shared by training and prediction (numpy/pandas only, no torch).

``fit_features`` learns every statistic from training rows only (kept measurements, medians, robust
scales, which measurements get a missing-indicator) and returns them as a plain dict that goes into the
manifest; ``transform`` applies them. Robust scaling: (value - median) / IQR, clipped to +-clip.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from models.booleans import boolean_row
from models.defect.drift import TIMESTAMP  # the wafer's test time, which the drift prior reads
from models.files import read_csv_skipping_blank_rows
from serving.errors import InvalidInput, shown

WHAT = "a SECOM CSV"  # the format, in messages about a file
ID = "row_id"
LABEL = "label"  # -1 pass / 1 fail
N_MEASUREMENTS = 590  # SECOM's measurements are f001..f590
# fields a record may carry besides its measurements (every SECOM name f001..f590: also those the model dropped in
# training): the SECOM file's id, label and test time, what an online-store row of ``secom_features`` adds (the
# entity key, the event time, the count of missing measurements) and the label view's ``defect``. Anything else in
# an API record is refused: a typo (``f05``, ``labell``, ``f999``) would otherwise be scored as if it were not there.
EXTRA = (ID, LABEL, TIMESTAMP, "lot_id", "event_timestamp", "n_missing", "defect")
KNOWN_EXTRA = frozenset(EXTRA)
_MEASUREMENT_NAME = re.compile(r"f[0-9]{3}")  # as a whole name (``$`` would let "f001\n" through, ``\d`` other digits)


def is_measurement(name: object) -> bool:
    """``f001``..``f590``: a SECOM measurement's name (``f000``, ``f591`` or ``f999`` is none)."""
    return isinstance(name, str) and bool(_MEASUREMENT_NAME.fullmatch(name)) and 1 <= int(name[1:]) <= N_MEASUREMENTS


# A point-in-time frame of the feature store (``secom_labels`` rows joined with ``secom_features:*``, written with
# ``to_csv``) names the measurements as the file does and carries the wafer's ``row_id``; besides them the entity
# key ``lot_id`` (``secom-0001``), the test time as ``event_timestamp`` (read by the drift prior as the file's
# ``timestamp``) and the label as ``label`` and ``defect`` (True for a fail). A frame without ``row_id`` (features
# chosen one by one) is answered under its ``lot_id``; one without ``label`` trains on ``defect``.
STORE_KEY = "lot_id"
STORE_LABEL = "defect"
STORE_TIME = "event_timestamp"
# True / False as pandas reads them, as Excel writes them, and 1 / 0 (True and 1 are one key)
_DEFECT = {True: 1, False: -1, "True": 1, "False": -1, "true": 1, "false": -1, "TRUE": 1, "FALSE": -1, "1": 1, "0": -1}


def read_rows(path: Path | str) -> pd.DataFrame:
    """The file's rows (training and ``predict``), without those in which every cell is empty (Excel's trailing
    ``,,,,,,`` lines), as the energy family reads its files. A frame from the feature store reads as the file of
    the same wafers (``STORE_KEY``); the same wafer and time twice in it is refused."""
    df = read_csv_skipping_blank_rows(path, WHAT, low_memory=False)
    check_header(df.columns)
    if STORE_KEY in df.columns:
        _no_repeats(df)  # with or without row_id (without, lot_id stands for it: review found it unchecked there)
        if ID not in df.columns:
            df = df.rename(columns={STORE_KEY: ID})  # its ids are the rows' own (serving.batch.ID_ALIASES)
    if ID not in df.columns:
        raise InvalidInput(f"input lacks the column {ID!r}")
    return df


def _no_repeats(df: pd.DataFrame) -> None:
    """A store frame's (lot, time) given twice (label rows read from an offline store that holds a batch twice)
    would train on the wafer twice, once on each side of a validation split."""
    key = [STORE_KEY, *([STORE_TIME] if STORE_TIME in df.columns else [])]
    repeated = df.duplicated(key).to_numpy()
    if repeated.any():
        j = int(np.flatnonzero(repeated)[0])
        same = (df[key] == df[key].iloc[j]).all(axis=1).to_numpy()
        at = f" at {df[STORE_TIME].iloc[j]}" if STORE_TIME in df.columns else ""
        raise InvalidInput(f"column {STORE_KEY!r} row {j + 1}: {shown(df[STORE_KEY].iloc[j])}{at} is already in row "
                           f"{int(np.flatnonzero(same)[0]) + 1} (label rows read twice from the offline store? select "
                           "them DISTINCT, or run sfai features compact secom_labels)")


_MANGLED = re.compile(r"(.+)\.([1-9][0-9]*)")  # pandas' name for a header's second ``f060``: ``f060.1``


def check_header(names: Iterable) -> None:
    """A file whose header names a measurement (or the id, label or test time) twice is refused, naming it: pandas
    reads the second as ``f060.1``, which is no measurement's name, so the first was scored and the second dropped
    in silence, whichever was meant."""
    names = [str(n) for n in names]
    present = set(names)
    for n in names:
        m = _MANGLED.fullmatch(n)
        if m and m.group(1) in present and (is_measurement(m.group(1)) or m.group(1) in KNOWN_EXTRA):
            first = names.index(m.group(1)) + 1
            raise InvalidInput(f"the header names column {m.group(1)!r} twice (column {first} and column "
                               f"{names.index(n) + 1}): which one holds the readings? Remove or rename the other")


def measurement_columns(df: pd.DataFrame) -> list[str]:
    """The file's SECOM measurements; another column (``f591``, ``F060``) is not read, as any column besides."""
    return [c for c in df.columns if is_measurement(c)]


def check_fields(names: Iterable) -> None:
    """The field names of API records (the columns of the frame made of them): one that is neither a measurement
    (``f001``..``f590``) nor a known extra (``KNOWN_EXTRA``) is refused, naming it, rather than ignored."""
    for k in names:
        if k not in KNOWN_EXTRA and not is_measurement(k):
            lower = k.lower() if isinstance(k, str) else None
            hint = (f"; found {k!r} for {lower!r}? field names are case-sensitive" if lower is not None and lower != k
                    and (is_measurement(lower) or lower in KNOWN_EXTRA) else "")
            raise InvalidInput(
                f"unknown feature {k!r} (a defect record holds measurements named f001, f002, ... "
                f"f{N_MEASUREMENTS:03d} and may carry {', '.join(EXTRA)}){hint}"
            )


def labels(df: pd.DataFrame) -> np.ndarray:
    """1 for a failed wafer, 0 for a pass: ``label`` (-1 / 1), or the feature store's ``defect`` (True for a fail)
    where the frame has no ``label``; where it has both, they must agree."""
    defect = _defect_labels(df) if STORE_LABEL in df.columns else None
    if LABEL not in df.columns:
        if defect is None:
            raise InvalidInput(f"training needs the column {LABEL!r} (-1 pass, 1 fail)")
        return (defect == 1).astype(np.float32)
    y = pd.to_numeric(df[LABEL], errors="coerce")
    bad = (y.isna() | ~y.isin([-1, 1])).to_numpy()
    if bad.any():
        i = int(bad.argmax())
        # a 0 / 1 label (1 for a fail, as most tools write it) would be refused on its first pass with no hint
        zero_one = bool(y.isin([0, 1]).all()) and bool((y == 0).any())
        hint = ("; the column holds 0 and 1: write each pass (0) as -1, or name the column "
                f"{STORE_LABEL!r} (1 or True for a fail) instead" if zero_one else "")
        raise InvalidInput(f"column {LABEL!r} row {i + 1} holds {shown(df[LABEL].iloc[i])}: it must hold -1 (pass) "
                           f"or 1 (fail){hint}")
    y = y.to_numpy()
    if defect is not None and (defect != y).any():
        i = int(np.flatnonzero(defect != y)[0])
        raise InvalidInput(f"column {STORE_LABEL!r} row {i + 1} holds {shown(df[STORE_LABEL].iloc[i])} and column "
                           f"{LABEL!r} {shown(df[LABEL].iloc[i])}: a frame's two labels must agree (defect True is "
                           "label 1)")
    return (y == 1).astype(np.float32)


def _defect_labels(df: pd.DataFrame) -> np.ndarray:
    """The store's ``defect`` as -1 (pass) / 1 (fail); anything but true or false is refused, naming the row."""
    col = df[STORE_LABEL]
    y = np.array([_DEFECT.get(v.strip() if isinstance(v, str) else v, 0) if pd.notna(v) else 0 for v in col])
    if (y == 0).any():
        i = int(np.flatnonzero(y == 0)[0])
        raise InvalidInput(f"column {STORE_LABEL!r} row {i + 1} holds {shown(col.iloc[i])}, expected True (fail) or "
                           "False (pass)")
    return y


# the text a CSV file's reader takes for a missing value (pandas' default: ``NA``, ``N/A``, Excel's ``#N/A``, ``NULL``,
# ``None``, ...): the same text in an API record is a missing value too. It had been refused there (``#N/A``: a
# non-numeric value) while the same wafer in a file was scored.
NA_TEXT = frozenset({"", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
                     "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"})


def numeric_matrix(df: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """The named measurement columns as float64; a missing or non-numeric column is named in the error. A blank
    cell (``""`` in a record, as an empty CSV cell), ``nan`` or another of a CSV file's missing markers
    (``NA_TEXT``: ``N/A``, ``#N/A``, ``NULL``) is a missing value."""
    absent = [c for c in columns if c not in df.columns]
    if absent:
        raise InvalidInput(_absent(df, absent, len(columns)))
    out = np.empty((len(df), len(columns)))
    for j, c in enumerate(columns):
        given = col = df[c]
        if not pd.api.types.is_numeric_dtype(col):
            num = pd.to_numeric(col, errors="coerce")
            text = col.astype(str).str.strip()
            missing = (text == "") | (text.str.lower() == "nan") | text.isin(NA_TEXT)
            bad = (num.isna() & col.notna() & ~missing).to_numpy()
            if bad.any():
                i = int(bad.argmax())
                raise InvalidInput(f"column {c!r} row {i + 1} holds a non-numeric value {shown(col.iloc[i])}")
            col = num
        values = col.to_numpy(dtype=float)
        i = boolean_row(given, values)  # true and false would be read as 1.0 and 0.0: no readings
        if i is not None:
            raise InvalidInput(f"column {c!r} row {i + 1} holds a non-numeric value {shown(given.iloc[i])}")
        out[:, j] = values
    inf = np.isinf(out)
    if inf.any():
        i, j = (int(v[0]) for v in np.nonzero(inf))
        wafer = f" ({ID} {shown(df[ID].iloc[i])})" if ID in df.columns and pd.notna(df[ID].iloc[i]) else ""
        more = f"; {int(inf.sum()) - 1} more infinite value(s)" if inf.sum() > 1 else ""
        raise InvalidInput(f"column {columns[j]!r} row {i + 1}{wafer} holds an infinite value (a number past "
                           f"float range, such as 1e400, or inf){more}: send it empty if it was not measured")
    return out


def _absent(df: pd.DataFrame, absent: list[str], needed: int) -> str:
    """The message for measurement columns the rows lack: the first by name (with a case hint) where it is one,
    else how many of the model's measurements are absent and the first few of them."""
    if len(absent) == 1:
        return (f"input lacks the measurement column {absent[0]!r}{_case_hint(df, absent[0])}: send it, empty if it "
                "was not measured (an empty column is read as missing: the training median)")
    shown_names = ", ".join(f"{c}{_case_hint(df, c, short=True)}" for c in absent[:8])
    more = f" and {len(absent) - 8} more" if len(absent) > 8 else ""
    return (f"input lacks {len(absent)} of the model's {needed} measurement columns ({shown_names}{more}): send "
            "them, empty where they were not measured (an empty column is accepted and read as missing: the "
            "training median)")


def _case_hint(df: pd.DataFrame, name: str, short: bool = False) -> str:
    """Where the frame has ``name`` in other letters (``F060``): say so, as the frame's own name is not read."""
    found = [c for c in df.columns if isinstance(c, str) and c.lower() == name.lower()]
    if not found:
        return ""
    return f" (found {found[0]!r})" if short else f" (found {found[0]!r}: column names are case-sensitive)"


def fit_features(df: pd.DataFrame, *, max_missing: float, min_missing_indicator: float, missing_indicators: bool,
                 clip: float) -> dict:
    cols = measurement_columns(df)
    if not cols:
        raise InvalidInput("input has no measurement columns f001..f590")
    x = numeric_matrix(df, cols)
    missing = np.isnan(x).mean(0)
    with warnings.catch_warnings(), np.errstate(all="ignore"):  # all-missing columns warn; they are dropped
        warnings.simplefilter("ignore", RuntimeWarning)
        median = np.nanmedian(x, 0)
        q1, q3 = np.nanpercentile(x, 25, 0), np.nanpercentile(x, 75, 0)
        p05, p95 = np.nanpercentile(x, 5, 0), np.nanpercentile(x, 95, 0)
        sd = np.nanstd(x, 0)
    iqr = q3 - q1
    # a measurement is informative if it varies at all on the rows where it is present
    constant = (missing < 1.0) & ~(np.nan_to_num(sd) > 1e-12)
    keep = (missing <= max_missing) & ~constant & (missing < 1.0)
    # IQR is 0 for near-constant measurements with a few outliers: fall back to the std-equivalent scale
    scale = np.where(iqr > 1e-12, iqr, 1.349 * sd)
    kept = [c for c, k in zip(cols, keep, strict=True) if k]
    indicators = []
    if missing_indicators:
        indicators = [c for c, k, m in zip(cols, keep, missing, strict=True) if k and m >= min_missing_indicator]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        lo, hi = np.nanmin(x, 0), np.nanmax(x, 0)
    return {
        "measurements": kept,
        "median": [float(v) for v in median[keep]],
        # the training file's range of each measurement: a wafer read far outside it is warned of (range_findings)
        "low": [float(v) for v in lo[keep]],
        "high": [float(v) for v in hi[keep]],
        "scale": [float(v) for v in scale[keep]],
        # each measurement's typical range on the training rows (5th to 95th percentile), shown with explanations
        "p05": [float(v) for v in p05[keep]],
        "p95": [float(v) for v in p95[keep]],
        "missing_share": [float(v) for v in missing[keep]],
        "indicators": indicators,
        "clip": float(clip),
        "dropped_constant": int(constant.sum()),
        "dropped_missing": int((~keep & ~constant).sum()),
    }


def feature_names(stats: dict) -> list[str]:
    return list(stats["measurements"]) + [f"{c}_missing" for c in stats["indicators"]]


def transform(df: pd.DataFrame, stats: dict, *, scoring: bool = False, x: np.ndarray | None = None) -> np.ndarray:
    """Rows -> float32 model inputs: robust z-scores (median-imputed, so a missing value is 0) + indicators.
    ``scoring``: a row with none of the model's measurements is refused; it would be scored at the medians. ``x``:
    the rows' measurements already read (``numeric_matrix(df, stats["measurements"])``: ~8 ms even for one row)."""
    cols = stats["measurements"]
    x = numeric_matrix(df, cols) if x is None else x
    isnan = np.isnan(x)
    empty = isnan.all(1) if scoring and cols else np.zeros(len(x), dtype=bool)
    if empty.any():
        i = int(empty.argmax())
        wafer = f" ({ID} {shown(df[ID].iloc[i])})" if ID in df.columns and pd.notna(df[ID].iloc[i]) else ""
        raise InvalidInput(f"row {i + 1}{wafer} holds none of the model's {len(cols)} measurements: a wafer with no "
                           "readings is not scored")
    median, scale = np.asarray(stats["median"]), np.asarray(stats["scale"])
    z = x - median  # in place from here: a 100,000-wafer chunk's float64 copies are 360 MB each
    z /= scale
    z[isnan] = 0.0
    np.clip(z, -stats["clip"], stats["clip"], out=z)
    if stats["indicators"]:
        pos = {c: j for j, c in enumerate(cols)}
        ind = isnan[:, [pos[c] for c in stats["indicators"]]].astype(float)
        z = np.hstack([z, ind])
    return z.astype(np.float32)


# A wafer whose measurements lie outside the training file's range in more than this share (of those it has) is read
# from another process or other units: SECOM's held-out wafers reach 7 % (five random 80/20 splits), while every
# measurement shifted by 20 IQRs puts ~70 % outside.
OUTSIDE_SHARE = 0.3
# A single reading this many training ranges past the range is a data error (1e9 for a measurement trained within a
# few units): SECOM's held-out wafers reach ~300 (a near-constant measurement's rare excursion).
FAR_RANGES = 10_000


def range_findings(df: pd.DataFrame, stats: dict, x: np.ndarray | None = None) -> dict:
    """What to warn of for wafers read far outside what the model was trained on (``models.defect.predict`` words
    it): ``outside``, wafers with most measurements outside their training range (a process change, or other
    units), and ``far``, readings ``FAR_RANGES`` ranges past it. The robust z-scores are clipped, so such a wafer is
    still scored, from the clipped values; the warnings say so instead of staying silent. Counts and the first few
    wafers, so that the findings of a file's chunks add up (``serving.batch``). Models trained before the ranges
    were kept find nothing."""
    if "low" not in stats or "high" not in stats or not len(df):
        return {}
    cols = stats["measurements"]
    x = numeric_matrix(df, cols) if x is None else x  # as transform() takes it
    lo, hi = np.asarray(stats["low"], float), np.asarray(stats["high"], float)
    present = ~np.isnan(x)
    width = np.maximum(hi - lo, 1e-12)
    with np.errstate(invalid="ignore"):  # comparisons only: no float temporaries the size of the chunk
        outside = (x < lo) | (x > hi)
        far = (x > hi + FAR_RANGES * width) | (x < lo - FAR_RANGES * width)
    found: dict = {}
    share = outside.sum(1) / np.maximum(present.sum(1), 1)
    many = np.flatnonzero(share > OUTSIDE_SHARE)
    if len(many):
        found["outside"] = {"count": len(many), "first": [[_wafer(df, i), float(share[i])] for i in many[:5]]}
    rows, cols_far = np.nonzero(far)
    if len(rows):
        i, j = int(rows[0]), int(cols_far[0])
        found["far"] = {"count": len(rows), "first": {"wafer": _wafer(df, i), "column": cols[j],
                                                     "value": float(x[i, j]), "low": float(lo[j]),
                                                     "high": float(hi[j])}}
    return found


def _wafer(df: pd.DataFrame, i: int) -> str:
    """Row ``i`` as a caller knows it: its id where it has one, else its row number (from 1)."""
    if ID in df.columns and pd.notna(df[ID].iloc[i]):
        return f"{ID} {shown(df[ID].iloc[i])}"
    return f"row {i + 1}"
