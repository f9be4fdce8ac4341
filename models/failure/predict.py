"""Score AI4I rows with the exported failure model (ONNX Runtime; no torch).

``predict(model, input_path, dataset) -> DataFrame[UDI, failure_probability, failure_predicted]``.
``score(model, frame)`` scores a DataFrame; ``score_records(model, records)`` scores API records (dicts) without
pandas, which is what keeps a single-record call well under a millisecond. Both share one array core.
``explain=True`` adds the likely failure mode and the raw columns that push the risk up most
(occlusion: each column replaced by its training median, a handful of extra ONNX runs).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from models.failure import features as F
from serving.runtime import OnnxModel

COLUMNS = ["UDI", "failure_probability", "failure_predicted"]


def _probabilities(model: OnnxModel, raw: F.Raw) -> np.ndarray:
    x = F.scale(F.engineer_arrays(raw), model.manifest["normalisation"])
    return model.run({"x": x})["y"] if len(x) else np.zeros((0, 5), dtype=np.float32)


def _score(model: OnnxModel, raw: F.Raw, ids: np.ndarray | list, explain: bool, top: int) -> dict[str, list]:
    n, k = len(ids), len(F.RAW)
    if explain and n:
        # one engineered batch, one ONNX run: the rows themselves, then k copies with column j replaced in copy j
        # (by its training median): the drop in risk is column j's contribution (occlusion)
        baseline = model.manifest.get("explain_baseline", {})
        batch = {c: np.concatenate([np.asarray(raw[c])] * (k + 1)) for c in F.RAW}
        for j, c in enumerate(F.RAW, start=1):
            if c == F.TYPE:
                fill = "L"
            else:  # the training median from the manifest (this batch's median only for older manifests)
                fill = baseline[c] if c in baseline else float(np.median(raw[c]))
            batch[c][j * n : (j + 1) * n] = fill
        y = _probabilities(model, batch)
        probs, occluded = y[:n], y[n:, 0].reshape(k, n)
    else:
        probs = _probabilities(model, raw)
    threshold = float(model.manifest["threshold"])
    predicted = probs[:, 0] >= threshold
    out = {  # arrays: a frame takes them as they are, score_records turns them into lists
        "UDI": ids,
        "failure_probability": probs[:, 0].astype(float).round(6),
        "failure_predicted": predicted.astype(int),
    }
    if explain and n:
        modes = np.asarray(model.manifest.get("outputs_meaning", ["failure", *F.MODES])[1:])
        out["failure_mode"] = np.where(predicted, modes[np.argmax(probs[:, 1:], axis=1)], "")
        order = np.argsort(-(probs[:, 0][None, :] - occluded).T, axis=1, kind="stable")[:, :top]
        out["top_features"] = [";".join(F.RAW[j] for j in row) for row in order]
    return out


def score(model: OnnxModel, df: pd.DataFrame, *, explain: bool = False, top: int = 3) -> pd.DataFrame:
    return pd.DataFrame(_score(model, F.validate_arrays(df), F.row_ids(df), explain, top))


def score_records(model: OnnxModel, records: list[dict], *, explain: bool = False, top: int = 3) -> list[dict]:
    raw = F.validate_records(records)
    ids = [r.get(F.ID, r.get("udi", i + 1)) for i, r in enumerate(records)]
    cols = _score(model, raw, ids, explain, top)
    names = list(cols)
    values = [v.tolist() if isinstance(v, np.ndarray) else v for v in cols.values()]
    return [dict(zip(names, row, strict=True)) for row in zip(*values, strict=True)]


def predict(
    model: OnnxModel, input_path: Path | str, dataset: str, *, explain: bool = False, **_options
) -> pd.DataFrame:
    return score(model, F.read_rows(input_path), explain=explain)
