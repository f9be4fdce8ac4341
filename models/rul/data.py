"""C-MAPSS parsing and preprocessing shared by training and prediction (numpy/pandas only).

Steps: operating regimes (k-means on the three settings; one regime when the settings barely move),
per-regime z-scores of the sensors that vary, optional regime one-hot and cycle count, then windows of
``window`` cycles ending at each cycle (a unit shorter than the window is padded with its first row).
Everything fitted here is plain JSON (``prep`` dict) stored in the manifest.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd

from serving.errors import InvalidInput, shown

log = logging.getLogger("sfai.rul")

SETTINGS = ["op_setting_1", "op_setting_2", "op_setting_3"]
SENSORS = [f"sensor_{i}" for i in range(1, 22)]
COLUMNS = ["unit", "cycle", *SETTINGS, *SENSORS]
N_REGIMES = 6
MIN_STD = 0.01  # a sensor whose within-regime spread is below this carries no signal (s1, s5, s6, s10, ...)


# the names a header row may give a column (any case): SFAI's own, and setting_N for op_setting_N
HEADER_NAMES = {c: c for c in COLUMNS} | {f"setting_{i}": f"op_setting_{i}" for i in (1, 2, 3)}
HEADER_EXPECTED = "unit, cycle, op_setting_1..3 (or setting_1..3), sensor_1..21"


def header_row(path: Path | str) -> tuple[int, list[str]] | None:
    """Where a header row is (the number of lines before it) and the NASA column name of each of its fields, in
    the file's order; None when the first line that is not blank names no C-MAPSS column (no header)."""
    name = Path(path).name
    try:
        with open(path, encoding="utf-8-sig", errors="replace") as f:
            skipped, line = 0, f.readline()
            while line and not line.strip():  # blank lines before the first row (read_csv skips them too)
                skipped, line = skipped + 1, f.readline()
    except OSError as e:
        raise InvalidInput(f"{name}: cannot be read ({e.strerror or e})") from None
    fields = line.split()
    if not any(x.lower() in HEADER_NAMES for x in fields):
        return None
    names, seen = [], set()
    for x in fields:
        c = HEADER_NAMES.get(x.lower())
        if c is None:
            raise InvalidInput(f"{name}: header column {x!r} is not a C-MAPSS column (expected {HEADER_EXPECTED})")
        if c in seen:
            raise InvalidInput(f"{name}: header names column {c!r} twice")
        seen.add(c)
        names.append(c)
    missing = [c for c in COLUMNS if c not in seen]
    if missing:
        raise InvalidInput(f"{name}: header has no column {missing[0]!r} (expected {HEADER_EXPECTED})")
    return skipped, names


def read_cmapss(path: Path | str) -> pd.DataFrame:
    """A NASA-format file (space-separated, 26 columns) -> DataFrame with named columns.

    A header row is optional; where there is one its names place the columns (in any order: they are put in
    NASA's), and a name that is unknown, missing or given twice is refused. Without one, the columns are NASA's.
    A comma-separated point-in-time frame from the feature store (``cmapss_features``' names: ``unit_id``, ``t2``
    ... ``w32``) is read as the NASA file of the same engines (:func:`read_store_frame`)."""
    name = Path(path).name
    store = store_header(path)
    if store is not None:
        return read_store_frame(path, store)
    header = header_row(path)
    try:
        # as text, "NaN" and "null" too: a reading that is not a number is named as written, not "an empty cell"
        df = pd.read_csv(path, sep=r"\s+", header=None, dtype=str, keep_default_na=False,
                         skiprows=header[0] + 1 if header else None)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        if header and isinstance(e, pd.errors.EmptyDataError):
            raise InvalidInput(f"{name}: no rows") from None
        raise InvalidInput(f"{name}: not a C-MAPSS text file ({str(e).splitlines()[0]})") from None
    df = df.dropna(axis=1, how="all")
    if header and df.shape[1] == len(COLUMNS):
        # by name: a header with sensor_8 and sensor_13 swapped had been read by position, changing the answer
        df.columns = header[1]
        df = df[COLUMNS]
    if df.shape[1] != len(COLUMNS):
        comma = len(df) and "," in str(df.iloc[0, 0])
        hint = ": it reads as a comma-separated file (a C-MAPSS file separates its columns with spaces)" if comma \
            else ""
        raise InvalidInput(
            f"{name}: expected {len(COLUMNS)} columns (unit, cycle, 3 settings, 21 sensors) separated by spaces, "
            f"got {df.shape[1]}{hint}"
        )
    df.columns = COLUMNS
    out = pd.DataFrame(index=df.index)
    for c in COLUMNS:
        values = pd.to_numeric(df[c], errors="coerce")
        if values.isna().any():
            i = int(np.flatnonzero(values.isna().to_numpy())[0])
            raise InvalidInput(f"{name}: column {c!r} row {i + 1}: expected a number, got {shown(df[c].iloc[i])}")
        out[c] = values
    if len(out) == 0:
        raise InvalidInput(f"{name}: no rows")
    return whole_ids(out, df, f"{name}: ").sort_values(["unit", "cycle"], kind="mergesort").reset_index(drop=True)


# A point-in-time training frame of the feature store (``cmapss_labels`` rows joined with ``cmapss_features:*``,
# written with ``to_csv``) names the engine ``unit_id`` (``FD001-u003``) and the 21 sensors as the C-MAPSS adapter
# does (``t2`` ... ``w32``, ``pipelines.adapters.cmapss.SENSORS``, in NASA's order); ``cycle`` and the settings keep
# their names. It is read as the NASA file of the same engines: ``unit`` is the engine number (3), the sensors are
# ``sensor_1`` ... ``sensor_21``, so the model reads the same inputs and ``predict`` answers each engine under its
# number. The view's derived columns (``regime``, ``*_norm``, rolling statistics, lags) and the labels (``rul``,
# ``failed``: training counts RUL from each unit's last row) are not read.
STORE_KEY = "unit_id"
STORE_FRAME = "a C-MAPSS frame from the feature store"
_ENGINE = re.compile(r"-[ut]([0-9]{1,9})$")  # cmapss_features' ids: FD001-u003 (engine 3), FD001-t003 (NASA's test)
_FILE_ONLY = [c for c in HEADER_NAMES if c not in ("cycle", *SETTINGS)]  # unit, sensor_N, setting_N


def store_sensors() -> list[str]:
    """The feature store's names of ``sensor_1`` ... ``sensor_21``, in that order."""
    from pipelines.adapters.cmapss import SENSORS as STORE_SENSORS

    return list(STORE_SENSORS)


def store_header(path: Path | str) -> list[str] | None:
    """The header's names where the file is comma-separated and names the feature store's C-MAPSS columns
    (``unit_id`` or a sensor such as ``t24``); None for anything else (a NASA file has no commas)."""
    try:
        with open(path, encoding="utf-8-sig", errors="replace") as f:
            line = f.readline()
            while line and not line.strip():
                line = f.readline()
    except OSError:
        return None  # header_row names the problem
    if "," not in line:
        return None
    names = [x.strip().strip('"') for x in line.rstrip("\r\n").split(",")]
    return names if STORE_KEY in names or set(names) & set(store_sensors()) else None


def read_store_frame(path: Path | str, names: list[str] | None = None) -> pd.DataFrame:
    """A feature-store frame (see ``STORE_KEY``) -> the columns :func:`read_cmapss` gives for the NASA file of the
    same engines, in (unit, cycle) order. A missing column, a file column beside the store's (``sensor_2`` with
    ``t24``), a column named twice, an id that names no engine, two ids of one engine number (two FD subsets in one
    frame) and a cycle of a unit given twice (label rows read twice from an offline store not yet compacted) are
    refused in one line naming the column."""
    from models.files import blank_rows, read_csv

    name = Path(path).name
    names = store_header(path) if names is None else names
    sensors = store_sensors()
    twice = next((c for c in names if names.count(c) > 1), None)
    if twice is not None:
        raise InvalidInput(f"{name}: the header names column {twice!r} twice")
    file_name = next((c for c in names if c.lower() in _FILE_ONLY), None)
    if file_name is not None:
        ours = next((c for c in names if c == STORE_KEY or c in sensors), STORE_KEY)
        raise InvalidInput(
            f"{name}: column {file_name!r} is a C-MAPSS file's name and {ours!r} the feature store's: a frame from "
            f"the store names its columns as get_training_frame gives them (unit_id, cycle, op_setting_1..3, "
            f"{sensors[0]} ... {sensors[-1]}); a NASA file separates them with spaces")
    need = [STORE_KEY, "cycle", *SETTINGS, *sensors]
    missing = next((c for c in need if c not in names), None)
    if missing is not None:
        prefixed = next((c for c in names if c.endswith(f"__{missing}")), None)
        hint = (f" (found {prefixed!r}: build the frame without full_feature_names)" if prefixed else
                f" ({STORE_FRAME} needs {STORE_KEY}, cycle, op_setting_1..3 and the 21 sensors {sensors[0]} ... "
                f"{sensors[-1]} of cmapss_features)")
        raise InvalidInput(f"{name}: missing column {missing!r}{hint}")
    wanted = [*need, *(["rul"] if "rul" in names else [])]  # the frame's other columns are not read
    df = read_csv(path, STORE_FRAME, dtype=str, keep_default_na=False, usecols=wanted)
    blank = blank_rows(df)
    if blank.any():  # an Excel export's trailing ,,,,,, lines
        df = df[~blank].reset_index(drop=True)
    if len(df) == 0:
        raise InvalidInput(f"{name}: no rows")
    ids = df[STORE_KEY].astype(str).str.strip()
    found = ids.str.extract(_ENGINE, expand=False)
    if found.isna().any():
        i = int(np.flatnonzero(found.isna().to_numpy())[0])
        raise InvalidInput(f"{name}: column {STORE_KEY!r} row {i + 1}: {shown(df[STORE_KEY].iloc[i])} names no "
                           f"C-MAPSS engine (cmapss_features' ids are FD001-u003: engine 3 of FD001)")
    out = pd.DataFrame({"unit": found.astype(np.int64)}, index=df.index)
    engines = pd.DataFrame({"id": ids, "unit": out["unit"]}).drop_duplicates()
    clash = engines[engines["unit"].duplicated(keep=False)]
    if len(clash):
        a, b = clash["id"].iloc[:2]
        raise InvalidInput(f"{name}: column {STORE_KEY!r} holds {a!r} and {b!r}, both engine "
                           f"{int(clash['unit'].iloc[0])}: the RUL model reads one engine per number; write each "
                           f"C-MAPSS subset (and NASA's test engines) to a file of its own")
    for c in ("cycle", *SETTINGS, *sensors):
        values = pd.to_numeric(df[c], errors="coerce")
        if values.isna().any():
            i = int(np.flatnonzero(values.isna().to_numpy())[0])
            empty = not str(df[c].iloc[i]).strip()
            hint = f" (no {c} in cmapss_features at or before this row's event_timestamp?)" if empty else ""
            raise InvalidInput(f"{name}: column {c!r} row {i + 1}: expected a number, got {shown(df[c].iloc[i])}{hint}")
        out[c] = values
    out = out.rename(columns={s: f"sensor_{j + 1}" for j, s in enumerate(sensors)})[COLUMNS]
    out = whole_ids(out, df.assign(unit=ids), f"{name}: ")
    repeated = out.duplicated(["unit", "cycle"])
    if repeated.any():
        j = int(np.flatnonzero(repeated.to_numpy())[0])
        first = int(np.flatnonzero(((out["unit"] == out["unit"].iloc[j]) & (out["cycle"] == out["cycle"].iloc[j]))
                                   .to_numpy())[0])
        raise InvalidInput(f"{name}: column 'cycle' row {j + 1}: {ids.iloc[j]} has cycle {out['cycle'].iloc[j]} "
                           f"already in row {first + 1} (label rows read twice from the offline store? select them "
                           f"DISTINCT, or run sfai features compact cmapss_labels)")
    out = out.sort_values(["unit", "cycle"], kind="mergesort").reset_index(drop=True)
    _short_of_failure(df, ids, name)
    return out


def _short_of_failure(df: pd.DataFrame, ids: pd.Series, name: str) -> None:
    """Where the frame carries the store's ``rul``: units whose last row is not their failure (``rul`` above 0
    there, a frame of some cycles only) are logged. Training counts each unit's RUL from its last row, so such a
    unit would be learnt as failing early; ``predict`` answers the RUL after the last row, as for NASA's test
    files."""
    if "rul" not in df.columns:
        return
    rul = pd.to_numeric(df["rul"], errors="coerce")
    cycle = pd.to_numeric(df["cycle"], errors="coerce")
    last = pd.DataFrame({"id": ids, "cycle": cycle, "rul": rul}).sort_values(["id", "cycle"]).groupby("id").tail(1)
    short = last[last["rul"] > 0]
    if len(short):
        shown_units = ", ".join(f"{r.id} (rul {r.rul:g})" for r in short.head(3).itertuples())
        more = f" and {len(short) - 3} more" if len(short) > 3 else ""
        log.warning("%s: units %s%s end before their failure: training reads each unit's last row as its failure "
                    "(RUL 0), so train on every label row of a unit; predict answers the RUL after the last row",
                    name, shown_units, more)


def whole_ids(out: pd.DataFrame, raw: pd.DataFrame, prefix: str = "") -> pd.DataFrame:
    """``unit`` and ``cycle`` of the numeric frame ``out`` as integers; a fraction (which would merge two units or
    cycles) or a cycle below 1 is an error naming the row and the value as given in ``raw``."""
    for c, low in (("unit", -MAX_WHOLE), ("cycle", 1)):
        # past 2**53 a float no longer holds every whole number: 12345678901234567 and ...568 read as one unit,
        # and 2**63 - 1 came back as -2**63
        bad = (out[c] < low) | (out[c] > MAX_WHOLE) | (out[c] != np.floor(out[c]))
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            big = abs(float(out[c].iloc[i])) > MAX_WHOLE
            what = "a whole number" + (f" from {low}" if low > 0 else "") + (f" up to {MAX_WHOLE:,}" if big else "")
            raise InvalidInput(f"{prefix}column {c!r} row {i + 1}: expected {what}, got {shown(raw[c].iloc[i])}")
        out[c] = out[c].astype(np.int64)
    return out


MAX_WHOLE = 2**53  # the largest whole number a reading's float holds exactly


def kmeans(x: np.ndarray, k: int, seed: int = 0, iters: int = 50) -> np.ndarray:
    """Plain k-means with k-means++ seeding; returns the centres sorted for a stable order."""
    rng = np.random.default_rng(seed)
    centres = [x[rng.integers(len(x))]]
    for _ in range(1, k):
        d = np.min(((x[:, None, :] - np.asarray(centres)[None]) ** 2).sum(-1), axis=1)
        centres.append(x[rng.choice(len(x), p=d / d.sum())] if d.sum() > 0 else x[rng.integers(len(x))])
    c = np.asarray(centres, dtype=float)
    for _ in range(iters):
        lab = np.argmin(((x[:, None, :] - c[None]) ** 2).sum(-1), axis=1)
        new = np.asarray([x[lab == j].mean(0) if (lab == j).any() else c[j] for j in range(k)])
        if np.allclose(new, c):
            break
        c = new
    return c[np.lexsort(c.T[::-1])]


def assign_regimes(df: pd.DataFrame, prep: dict) -> np.ndarray:
    s = df[SETTINGS].to_numpy(float) / np.asarray(prep["setting_scale"])
    c = np.asarray(prep["regime_centres"])
    return np.argmin(((s[:, None, :] - c[None]) ** 2).sum(-1), axis=1)


def fit_prep(
    df: pd.DataFrame,
    *,
    window: int,
    cap: float,
    use_cycle: bool,
    cycle_clip: int = 0,
    seed: int = 0,
    smooth: float = 0.0,
    norm: str = "zscore",
    onehot: bool = True,
) -> dict:
    settings = df[SETTINGS].to_numpy(float)
    scale = settings.std(0)
    scale[scale < 1e-6] = 1.0
    multi = settings[:, 0].std() > 1.0  # FD002/FD004: six flight conditions; FD001/FD003: one
    k = N_REGIMES if multi else 1
    centres = kmeans(settings / scale, k, seed) if multi else (settings / scale).mean(0, keepdims=True)
    prep = {"setting_scale": scale.tolist(), "regime_centres": centres.tolist(), "window": window, "cap": cap}
    reg = assign_regimes(df, prep)
    values = df[SENSORS].to_numpy(float)
    mean = np.stack([values[reg == r].mean(0) for r in range(k)])
    std = np.stack([values[reg == r].std(0) for r in range(k)])
    keep = [s for j, s in enumerate(SENSORS) if std[:, j].max() >= MIN_STD]
    idx = [SENSORS.index(s) for s in keep]
    if norm == "minmax":  # per-regime min-max to [-1, 1], stored as the same (centre, scale) pair
        lo = np.stack([values[reg == r].min(0) for r in range(k)])
        hi = np.stack([values[reg == r].max(0) for r in range(k)])
        mean, std = (hi + lo) / 2, (hi - lo) / 2
    cycles = df["cycle"].to_numpy(float)
    prep.update(
        sensors=keep,
        norm=norm,
        sensor_mean=mean[:, idx].tolist(),
        sensor_std=np.maximum(std[:, idx], 1e-6).tolist(),
        regime_onehot=bool(multi and onehot),
        use_cycle=use_cycle,
        cycle_clip=int(cycle_clip),
        smooth=float(smooth),
        cycle_mean=float(cycles.mean()),
        cycle_std=float(cycles.std() or 1.0),
    )
    prep["features"] = feature_names(prep)
    return prep


def feature_names(prep: dict) -> list[str]:
    names = list(prep["sensors"])
    if prep["regime_onehot"]:
        names += [f"regime_{r}" for r in range(len(prep["regime_centres"]))]
    if prep["use_cycle"]:
        names.append("cycle")
    return names


def features(df: pd.DataFrame, prep: dict) -> np.ndarray:
    """Per-row feature matrix [rows, features] (float32)."""
    reg = assign_regimes(df, prep)
    values = df[prep["sensors"]].to_numpy(float)
    z = (values - np.asarray(prep["sensor_mean"])[reg]) / np.asarray(prep["sensor_std"])[reg]
    alpha = float(prep.get("smooth", 0.0))
    if alpha > 0:  # causal, per unit: a truncated unit gets the same features as the full one
        z = ewm_by_unit(z, df["unit"].to_numpy(), alpha)
    parts = [z]
    if prep["regime_onehot"]:
        parts.append(np.eye(len(prep["regime_centres"]))[reg])
    if prep["use_cycle"]:
        cycle, clip = df["cycle"].to_numpy(float), int(prep.get("cycle_clip", 0))
        age = np.minimum(cycle, clip) / clip if clip else (cycle - prep["cycle_mean"]) / prep["cycle_std"]
        parts.append(age[:, None])
    with np.errstate(over="ignore"):  # a reading past float32 becomes inf: the runtime refuses it, naming the sensor
        return np.concatenate(parts, axis=1).astype(np.float32)


def ewm_by_unit(z: np.ndarray, units: np.ndarray, alpha: float) -> np.ndarray:
    """Each unit's exponentially weighted mean over its rows so far, in row order: pandas' ``ewm(alpha).mean()``
    (``adjust=True``: weights (1 - alpha)^i over the rows seen) per unit, as one recursion over the cycle index
    for all units at once (a request of a few units takes microseconds, not a groupby)."""
    order = np.argsort(units, kind="stable")
    u = units[order]
    starts = np.flatnonzero(np.r_[True, u[1:] != u[:-1]])
    lengths = np.diff(np.r_[starts, len(u)])
    unit_of = np.repeat(np.arange(len(starts)), lengths)
    pos = np.arange(len(u)) - np.repeat(starts, lengths)
    grid = np.zeros((len(starts), int(lengths.max()), z.shape[1]))
    grid[unit_of, pos] = z[order]
    keep = 1.0 - alpha
    num = np.zeros((len(starts), z.shape[1]))
    den = 0.0
    for t in range(grid.shape[1]):
        num = grid[:, t] + keep * num
        den = 1.0 + keep * den
        grid[:, t] = num / den
    out = np.empty_like(z)
    out[order] = grid[unit_of, pos]
    return out


def unit_windows(x: np.ndarray, window: int) -> np.ndarray:
    """All windows of one unit [T, F] -> [T, window, F], window t ending at cycle t (front padded)."""
    padded = np.concatenate([np.repeat(x[:1], window - 1, axis=0), x], axis=0)
    return np.lib.stride_tricks.sliding_window_view(padded, window, axis=0).transpose(0, 2, 1)


def split_units(df: pd.DataFrame, x: np.ndarray) -> dict[int, np.ndarray]:
    units = df["unit"].to_numpy()
    bounds = np.flatnonzero(np.r_[True, units[1:] != units[:-1], True])
    return {int(units[a]): x[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)}


def last_windows(df: pd.DataFrame, prep: dict) -> tuple[np.ndarray, np.ndarray]:
    """(units, windows [units, window, F]): each unit's window ending at its last cycle."""
    per_unit = split_units(df, features(df, prep))
    units = np.asarray(sorted(per_unit))
    w = prep["window"]
    return units, np.stack([unit_windows(per_unit[u][-w:], w)[-1] for u in units]).astype(np.float32)
