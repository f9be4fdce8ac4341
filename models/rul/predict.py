"""RUL per engine at its last cycle from a NASA-format file (ONNX Runtime; no torch).

``predict(model, input_path, dataset) -> DataFrame[unit, rul]``, one row per unit.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from models.booleans import boolean_row
from models.rul import data as D
from serving.errors import InvalidInput, shown
from serving.runtime import OnnxModel

log = logging.getLogger("sfai.rul")


def checked(df: pd.DataFrame, prep: dict) -> pd.DataFrame:
    """The columns the model reads, numeric, in (unit, cycle) order: rows may come in any order (API records);
    a missing or non-numeric column, or a unit repeating a cycle, is an error naming it."""
    need = ["unit", "cycle", *D.SETTINGS, *prep["sensors"]]
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise InvalidInput(f"missing feature column {missing[0]!r} (needs {', '.join(need)})")
    out = pd.DataFrame(index=df.index)
    for c in need:
        given = df[c]
        values = pd.to_numeric(given, errors="coerce")
        numbers = values.to_numpy(dtype=float, na_value=np.nan)
        bad = values.isna().to_numpy() | ~np.isfinite(numbers)
        boolean = boolean_row(given, numbers)  # true and false would be read as 1.0 and 0.0: no readings
        if boolean is not None:
            bad[boolean] = True
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise InvalidInput(f"column {c!r} row {i + 1}: expected a number, got {shown(given.iloc[i])}")
        out[c] = values.astype(float)
    _plausible(out, df, prep)
    out = D.whole_ids(out, df)
    out = out.sort_values(["unit", "cycle"], kind="mergesort").reset_index(drop=True)
    dup = out.duplicated(["unit", "cycle"])
    if dup.any():
        u, c = out.loc[dup.idxmax(), ["unit", "cycle"]]
        raise InvalidInput(f"unit {u} has cycle {c} more than once")
    return out


# a reading this many of its training standard deviations past every operating regime's mean is a data error (a unit
# or a field mix-up), not wear: a worn engine's sensors move a few deviations (at most 8.9 from their regime's mean
# in any of the four training files, for the sensors a model keeps). 90,000 for sensor_9 (trained around 9,061 +- 23)
# had been answered with an RUL of 0.0, and 1e39 too (MES audit); at 1,000 deviations, temperatures sent in kelvin
# instead of degrees Rankine (sensor_2 ~570 deviations off) and sensor_9 in rev/s instead of rpm (~390) still passed
# and were answered 86 and 43 cycles for an engine at 107 (process-engineer audit)
MAX_DEVIATIONS = 100


def _plausible(out: pd.DataFrame, given: pd.DataFrame, prep: dict) -> None:
    """Refuse a sensor reading outside ``MAX_DEVIATIONS`` standard deviations of every regime's training mean,
    naming the column, the row and the range (models trained without these statistics are not checked)."""
    if "sensor_mean" not in prep or "sensor_std" not in prep:
        return
    mean, std = np.asarray(prep["sensor_mean"], float), np.asarray(prep["sensor_std"], float)
    lo = (mean - MAX_DEVIATIONS * std).min(axis=0)
    hi = (mean + MAX_DEVIATIONS * std).max(axis=0)
    for j, c in enumerate(prep["sensors"]):
        v = out[c].to_numpy()
        bad = (v < lo[j]) | (v > hi[j])
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise InvalidInput(
                f"column {c!r} row {i + 1}: {shown(given[c].iloc[i])} is out of range, far outside what this model "
                f"was trained on ({lo[j]:.6g} to {hi[j]:.6g}, {MAX_DEVIATIONS:,} standard deviations around the "
                "training means): "
                "a unit or column mix-up, e.g. kelvin for degrees Rankine or rev/s for rpm? (a worn engine moves a "
                "few deviations) Or readings of other operating conditions than the model's (another C-MAPSS "
                "subset, another engine type): those need a model trained on them")


def score(model: OnnxModel, df: pd.DataFrame, *, batch: int = 1024, unit_names: dict | None = None) -> pd.DataFrame:
    """One row per unit: its RUL at its last cycle. ``attrs["warnings"]`` names the units sent with fewer than the
    model's window of cycles that do not start at cycle 1 (logged too, for the CLI)."""
    rows = checked(df, model.manifest["prep"])
    units, windows = D.last_windows(rows, model.manifest["prep"])
    out = [model.run({"x": windows[i : i + batch]})["y"] for i in range(0, len(windows), batch)]
    rul = np.concatenate(out) if out else np.zeros(0)
    answer = pd.DataFrame({"unit": units.astype(np.int64), "rul": np.round(rul.astype(float), 3)})
    notes = _short_histories(rows, int(model.manifest["prep"]["window"]), unit_names) + _gaps(rows, unit_names)
    answer.attrs["warnings"] = notes
    for line in notes:
        log.warning("%s", line)
    return answer


def _short_histories(rows: pd.DataFrame, window: int, names: dict | None = None) -> list[str]:
    """A unit sent with fewer than ``window`` cycles, its first one after cycle 1, is read with that first cycle
    repeated before it, as a younger engine: its RUL comes out late (an engine at RUL 0 read from its last 10
    cycles: 16 to 36), the error the NASA score punishes most. ``names``: unit number -> what the caller calls it
    (an entity id: units read by entity id are numbered 1, 2, ... inside, which meant nothing to the caller)."""
    by_unit = rows.groupby("unit", sort=True)["cycle"].agg(["size", "min"])
    short = by_unit[(by_unit["size"] < window) & (by_unit["min"] > 1)]
    if short.empty:
        return []
    shown_units = ", ".join(f"{names[u]!r} ({r['size']} from cycle {r['min']})" if names and u in names else
                            f"{u} ({r['size']} from cycle {r['min']})" for u, r in short.head(5).iterrows())
    more = f" and {len(short) - 5} more" if len(short) > 5 else ""
    return [f"units {shown_units}{more}: fewer than the model's {window} cycles and not from cycle 1; their RUL is "
            f"likely too high (the earlier cycles are read as the first one sent): send each unit's last {window} "
            "cycles, or all of them"]


def _gaps(rows: pd.DataFrame, names: dict | None = None) -> list[str]:
    """Units whose cycles skip numbers (rows for cycles 51-70 missing): the model reads consecutive rows as
    consecutive cycles, so such an engine is read as younger and smoother than it is; said, not refused (an MES that
    lost a few readings still gets an answer)."""
    cycles = rows.sort_values(["unit", "cycle"])
    step = cycles.groupby("unit", sort=True)["cycle"].diff()
    skipped = cycles[step > 1].assign(missing=step[step > 1] - 1)
    if skipped.empty:
        return []
    per_unit = skipped.groupby("unit", sort=True).agg(first=("cycle", "first"), missing=("missing", "sum"))
    shown_units = ", ".join(
        (f"{names[u]!r}" if names and u in names else f"{u}")
        + f" ({int(r['missing'])} missing, the first gap before cycle {int(r['first'])})"
        for u, r in per_unit.head(5).iterrows())
    more = f" and {len(per_unit) - 5} more" if len(per_unit) > 5 else ""
    return [f"units {shown_units}{more}: cycles skip numbers; the model reads the rows sent as consecutive cycles, so "
            "its RUL for them is less sure: send every cycle"]


def predict(model: OnnxModel, input_path: Path | str, dataset: str, **_options) -> pd.DataFrame:
    return score(model, D.read_cmapss(input_path))
