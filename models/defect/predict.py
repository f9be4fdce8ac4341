"""Score wafers with an exported defect model (ONNX Runtime only: this module never imports torch).

``predict`` returns the contract's columns ``row_id,defect_probability,defect_predicted``; ``explain`` adds the
top contributing measurements per wafer for process engineers.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from models.defect import drift as D
from models.defect import features as F
from models.rowids import frame_ids
from serving.errors import InvalidInput
from serving.runtime import OnnxModel

COLUMNS = ["row_id", "defect_probability", "defect_predicted"]
log = logging.getLogger("sfai.defect")
# a wafer tested this long after the training file's last one gets that file's last wafers' failure rate as its
# "recent" rate, which no longer follows the line: said, with what to send instead
STALE_DAYS = 7


def _zprob(
    model: OnnxModel, df: pd.DataFrame, recent_failure_rate: float | None = None
) -> tuple[np.ndarray, np.ndarray, list[str], np.ndarray]:
    """(robust z-scores, defect probabilities) for rows already read; with the model's drift prior, the
    probability combines the network's with the line's recent failure rate before each wafer (``drift.py``):
    ``recent_failure_rate`` where the caller gives it (the line's current yield), else the rate of the training
    wafers before each one's test time (after the training file: its last ``drift_window`` wafers')."""
    stats = model.manifest["feature_stats"]
    x = F.numeric_matrix(df, list(stats["measurements"]))  # read once: the scores, the notes, the explanations
    z = F.transform(df, stats, scoring=True, x=x)
    prob = model.run({"x": z})["y"][:, 0] if len(z) else np.zeros(0, dtype=np.float32)
    drift = model.manifest.get("drift")
    times = D.stamps(df)  # read even where the model has no drift prior: an unreadable test time is refused
    if recent_failure_rate is not None:
        if not drift:
            raise InvalidInput("recent_failure_rate: this defect model does not use the line's recent failure rate "
                               "(it was trained without test times or without validation (n_splits=0), or the rate "
                               "did not help in validation)")
        rate = D.given_rate(recent_failure_rate)
    notes = F.range_notes(df, stats, x)
    if drift and len(z):
        rates = np.full(len(z), rate) if recent_failure_rate is not None else D.recent_rate(drift, times, len(z))
        prob = D.combine(drift["coef"], prob, rates)
        if recent_failure_rate is None:
            notes += _stale(drift, times, rates)
    return z, prob, notes, x


def _stale(drift: dict, times: np.ndarray | None, rates: np.ndarray) -> list[str]:
    """A warning where wafers were tested over ``STALE_DAYS`` after the training file's last wafer: their recent
    rate is that file's last wafers', which drives the flag more than their measurements do (a plant's later wafers
    had all been flagged: process-engineer audit)."""
    if times is None or not drift.get("t"):
        return []
    last = float(drift["t"][-1])
    late = np.flatnonzero(times > last + STALE_DAYS * 86400.0)
    if not len(late):
        return []
    when = datetime.fromtimestamp(last, UTC).strftime("%Y-%m-%d %H:%M")
    return [f"{len(late)} of {len(times)} wafers were tested more than {STALE_DAYS} days after the training file's "
            f"last wafer ({when} UTC): their recent failure rate is taken as that file's last {drift['window']} "
            f"wafers' ({float(rates[late[0]]):.3f}), which no longer follows the line; send the line's current "
            "rate as recent_failure_rate (sfai predict defect --recent-failure-rate), or retrain on recent wafers"]


def score(model: OnnxModel, df: pd.DataFrame, *, explain: bool = False, top: int | None = None,
          recent_failure_rate: float | None = None, threshold: float | None = None) -> pd.DataFrame:
    """The contract columns for rows already read (``row_id`` 1..n where the rows have none); ``explain`` adds
    ``top_measurements``: ``f059:+0.41;f033:-0.22;...`` (logit contributions, largest first);
    ``recent_failure_rate`` (0-1): the line's current failure rate, used for every row instead of the training
    history's; ``threshold``: the decision threshold for ``defect_predicted`` instead of the shipped one."""
    z, prob, notes, x = _zprob(model, df, recent_failure_rate)
    m = model.manifest
    out = pd.DataFrame(
        {
            "row_id": frame_ids(df, F.ID),
            "defect_probability": np.round(prob.astype(float), 6),
            "defect_predicted": (prob >= float(m["threshold"] if threshold is None else threshold)).astype(int),
        },
        columns=COLUMNS,
    )
    if explain:
        k = int(top or m.get("config", {}).get("top_k", 5))
        tops = F.top_contributions(z, np.asarray(m["contribution_weights"]), m["features"], k)
        out["top_measurements"] = [";".join(f"{n}:{c:+.3f}" for n, c in row) for row in tops]
        out["top_measurement_values"] = _details(x, m["feature_stats"], tops)
    out.attrs["warnings"] = notes
    for line in notes:
        log.warning("%s", line)
    return out


def _details(x: np.ndarray, stats: dict, tops: list[list[tuple[str, float]]]) -> list[list[dict]]:
    """Each row's top measurements as an engineer reads them: the value sent, the training median, whether it was
    ``high`` or ``low`` against it (``missing``: not sent, read as the median), and the contribution to the
    defect log-odds (``top_measurements``' number; + raises the risk). ``f003:-0.308`` alone had not said whether
    f003 was high or low (process-engineer audit). A ``..._missing`` indicator names the measurement whose absence
    counts."""
    pos = {c: j for j, c in enumerate(stats["measurements"])}
    median = np.asarray(stats["median"], float)
    out = []
    for i, row in enumerate(tops):
        items = []
        for name, contribution in row:
            base = name.removesuffix("_missing")
            j = pos[base]
            value = float(x[i, j])
            seen = not np.isnan(value)
            items.append({
                "measurement": base,
                "value": float(f"{value:.6g}") if seen else None,
                "median": float(f"{median[j]:.6g}"),
                "direction": ("high" if value > median[j] else "low" if value < median[j] else "at median")
                if seen else "missing",
                "contribution": round(float(contribution), 3),
            })
        out.append(items)
    return out


check_fields = F.check_fields  # the columns of an Arrow or Parquet body (serving.predictions.records_frame)


def records_frame(records: list[dict]) -> pd.DataFrame:
    """API records (JSON, or online-store rows) as the frame :func:`score` reads; a field that is neither a
    measurement nor one of the known extras (id, label, test time, online-store keys) is refused, naming it. Files
    are read as they are (``read_rows``).

    A record lacking a measurement that others in the batch carry has it missing, as JSON null or ``""`` (a blank
    CSV cell); a measurement no record carries is refused (``input lacks the measurement column``), as a file
    lacking the column is, and so is a record with none of the model's measurements (``score``)."""
    frame = pd.DataFrame.from_records(records)
    F.check_fields(frame.columns)  # the columns are every record's fields
    return frame


def predict(model: OnnxModel, input_path: Path, dataset: str, *, start=None, horizon=96,  # noqa: ANN001
            recent_failure_rate: float | None = None, threshold: float | None = None, **_) -> pd.DataFrame:
    return score(model, F.read_rows(input_path), recent_failure_rate=recent_failure_rate, threshold=threshold)


def explain(model: OnnxModel, input_path: Path, *, top_k: int | None = None) -> pd.DataFrame:
    """The contract columns plus ``top_measurements``."""
    return score(model, F.read_rows(input_path), explain=True, top=top_k)
