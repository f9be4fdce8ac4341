"""Score AI4I rows with the exported failure model (ONNX Runtime; no torch).

``predict(model, input_path, dataset) -> DataFrame[UDI, failure_probability, failure_predicted]``.
``score(model, frame)`` scores a DataFrame; ``score_records(model, records)`` scores API records (dicts) without
pandas, which is what keeps a single-record call well under a millisecond. Both share one array core.
``explain=True`` adds the likely failure mode (among the modes the training file labelled) and the raw columns that
push the risk up most (occlusion: each column replaced by its training median, a handful of extra ONNX runs).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from models.failure import features as F
from models.rowids import record_ids
from serving.runtime import OnnxModel

COLUMNS = ["UDI", "failure_probability", "failure_predicted"]
CLEAN_ROWS = 64  # up to this many API records are engineered in plain Python (no numpy per column)


def _probabilities(model: OnnxModel, raw: F.Raw) -> np.ndarray:
    x = F.scale(F.engineer_arrays(raw), model.manifest["normalisation"])
    return model.run({"x": x})["y"] if len(x) else np.zeros((0, 5), dtype=np.float32)


def _fill(model: OnnxModel, column: str, values) -> object:  # noqa: ANN001
    """What occlusion puts in ``column``: type L, or the training median from the manifest (this batch's median
    only for older manifests)."""
    if column == F.TYPE:
        return "L"
    baseline = model.manifest.get("explain_baseline", {})
    return baseline[column] if column in baseline else float(np.median(values))


def _manifest_fills(model: OnnxModel) -> list | bool:
    """Every column's occlusion value when the manifest has them all (then kept with the model), else False."""
    baseline = model.manifest.get("explain_baseline", {})
    return [_fill(model, c, ()) for c in F.RAW] if all(c == F.TYPE or c in baseline for c in F.RAW) else False


def _score(model: OnnxModel, raw: F.Raw, ids: np.ndarray | list, explain: bool, top: int,
           threshold: float | None = None) -> dict[str, list]:
    n, k = len(ids), len(F.RAW)
    occluded = None
    if explain and n:
        # one engineered batch, one ONNX run: the rows themselves, then k copies with column j replaced in copy j:
        # the drop in risk is column j's contribution (occlusion)
        batch = {c: np.concatenate([np.asarray(raw[c])] * (k + 1)) for c in F.RAW}
        for j, c in enumerate(F.RAW, start=1):
            batch[c][j * n : (j + 1) * n] = _fill(model, c, raw[c])
        y = _probabilities(model, batch)
        probs, occluded = y[:n], y[n:, 0].reshape(k, n)
    else:
        probs = _probabilities(model, raw)
    return _answer(model, probs, occluded, ids, top, threshold)


def _scaler(model: OnnxModel) -> tuple[np.ndarray, np.ndarray]:
    norm = model.manifest["normalisation"]
    return np.asarray(norm["mean"]), np.asarray(norm["std"])


def _score_rows(model: OnnxModel, rows: list[tuple], ids: list, explain: bool, top: int,
                threshold: float | None = None) -> dict[str, list]:
    """:func:`_score` for a few clean rows (``F.clean_rows``): the same batch, engineered in plain Python, and the
    same float32 model input bit for bit (the tests compare both ways)."""
    n, k = len(rows), len(F.RAW)
    table = [F.engineer_row(*r) for r in rows]
    if explain:
        fills = model.derived("failure.fills", _manifest_fills) or [
            _fill(model, c, [r[j] for r in rows]) for j, c in enumerate(F.RAW)
        ]
        copies = [F.engineer_occlusions(r, e, fills) for r, e in zip(rows, table, strict=True)]
        table += [c[j] for j in range(k) for c in copies]  # copy j of every row, then copy j + 1, as _score
    mean, std = model.derived("failure.scaler", _scaler)
    with np.errstate(over="ignore"):  # past float32: inf, refused by run_small naming the feature
        x = ((np.array(table, dtype=np.float64) - mean) / std).astype(np.float32)
    y = model.run_small("x", x)
    if not explain:
        return _answer_rows(model, y.tolist(), None, ids, top, threshold)
    # the risk drops under occlusion in float32, as _answer computes them, so that near ties order alike
    if n == 1:  # the single prediction of an MES call: the same float32 differences, fewer NumPy steps
        drops = [(y[0, 0] - y[1:, 0]).tolist()]
    else:
        risk = y[:, 0]
        drops = (risk[:n] - risk[n:].reshape(k, n)).T.tolist()
    return _answer_rows(model, y[:n].tolist(), drops, ids, top, threshold)


def _modes(model: OnnxModel) -> tuple[list[str], list[int]]:
    """(the mode names of the heads after the failure output, the heads ``failure_mode`` may name). Only heads
    trained with labels (the manifest's ``trained_modes``): a file without a mode's column leaves that head out of
    the loss, and its output is noise, not a mode. A manifest from before that field: every head."""
    names = list(model.manifest.get("outputs_meaning", ["failure", *F.MODES])[1:])
    trained = model.manifest.get("trained_modes")
    return names, list(range(len(names))) if trained is None else [j for j, m in enumerate(names) if m in trained]


def _constants(model: OnnxModel) -> tuple[float, list[str], list[int]]:
    # the threshold as _answer's float32 comparison sees it (NumPy casts the Python float to the array's type)
    return float(np.float32(model.manifest["threshold"])), *_modes(model)


def _answer_rows(model: OnnxModel, probs: list, drops: list | None, ids: list, top: int,
                 given: float | None = None) -> dict[str, list]:
    """:func:`_answer` in plain Python for a few rows, value for value: the rounding is NumPy's (scale by 1e6,
    round half to even, scale back), the orders are stable like ``argsort(kind="stable")``. ``given``: the caller's
    decision threshold instead of the model's."""
    threshold, modes, heads = model.derived("failure.constants", _constants)
    if given is not None:
        threshold = float(np.float32(given))  # as _answer's float32 comparison sees it
    out: dict[str, list] = {"UDI": ids, "failure_probability": [], "failure_predicted": []}
    if drops is not None:
        out["failure_mode"], out["top_features"] = [], []
    for i, row in enumerate(probs):
        p = row[0]
        predicted = p >= threshold
        out["failure_probability"].append(round(p * 1e6) / 1e6)
        out["failure_predicted"].append(int(predicted))
        if drops is not None:
            mode = max(heads, key=row[1:].__getitem__) if predicted and heads else None  # the first of ties
            out["failure_mode"].append("" if mode is None else modes[mode])
            d = drops[i]
            order = sorted(range(len(d)), key=d.__getitem__, reverse=True)[:top]  # stable, like argsort(-d)
            out["top_features"].append(";".join(F.RAW[j] for j in order))
    return out


def _answer(model: OnnxModel, probs: np.ndarray, occluded: np.ndarray | None, ids, top: int,  # noqa: ANN001
            given: float | None = None) -> dict[str, list]:
    threshold = float(model.manifest["threshold"]) if given is None else float(given)
    predicted = probs[:, 0] >= threshold
    out = {  # arrays: a frame takes them as they are, score_records turns them into lists
        "UDI": ids,
        "failure_probability": probs[:, 0].astype(float).round(6),
        "failure_predicted": predicted.astype(int),
    }
    if occluded is not None:
        names, heads = _modes(model)
        if heads:  # the likeliest mode among the trained heads (argmax: the first of ties)
            likely = np.asarray(names)[heads][np.argmax(probs[:, 1:][:, heads], axis=1)]
            out["failure_mode"] = np.where(predicted, likely, "")
        else:  # no head learned a mode: none is named
            out["failure_mode"] = np.full(len(probs), "")
        order = np.argsort(-(probs[:, 0][None, :] - occluded).T, axis=1, kind="stable")[:, :top]
        out["top_features"] = [";".join(F.RAW[j] for j in row) for row in order]
    return out


def score(model: OnnxModel, df: pd.DataFrame, *, explain: bool = False, top: int = 3,
          threshold: float | None = None) -> pd.DataFrame:
    """``threshold``: the decision threshold for ``failure_predicted`` instead of the one the model ships with (a
    plant that wants fewer or more alarms); the probabilities are the same."""
    return pd.DataFrame(_score(model, F.validate_arrays(df), F.row_ids(df), explain, top, threshold))


check_fields = F.check_fields  # the columns of an Arrow or Parquet body (serving.predictions.records_frame)


def records_frame(records: list[dict]) -> pd.DataFrame:
    """API records (JSON, or online-store rows) as the frame :func:`score` reads, for an answer in Arrow: an unknown
    field is refused as :func:`score_records` refuses it."""
    frame = pd.DataFrame.from_records(records)
    F.check_fields(frame.columns)  # the columns are every record's fields
    return frame


def score_records(
    model: OnnxModel, records: list[dict], *, explain: bool = False, top: int = 3, from_store: bool = False,
    threshold: float | None = None,
) -> list[dict]:
    """Score API records; a field the model does not know is refused, naming it. Online-store rows
    (``from_store``) may also carry the view's entity key and features declared for other uses: those are set
    aside, not refused."""
    if from_store:
        records = F.known_fields(records)
    ids = record_ids(records, F.ID, "udi")
    rows = F.clean_rows(records) if len(records) <= CLEAN_ROWS else None
    if rows is not None:
        cols = _score_rows(model, rows, ids, explain, top, threshold)
    else:
        cols = _score(model, F.validate_records(records), ids, explain, top, threshold)
    names = list(cols)
    values = [v.tolist() if isinstance(v, np.ndarray) else v for v in cols.values()]
    return [dict(zip(names, row, strict=True)) for row in zip(*values, strict=True)]


def predict(
    model: OnnxModel, input_path: Path | str, dataset: str, *, explain: bool = False,
    threshold: float | None = None, **_options
) -> pd.DataFrame:
    return score(model, F.read_rows(input_path), explain=explain, threshold=threshold)
