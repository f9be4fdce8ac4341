"""Score AI4I rows with the exported failure model (ONNX Runtime; no torch).

``predict(model, input_path, dataset) -> DataFrame[UDI, failure_probability, failure_predicted]``.
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


def _probabilities(model: OnnxModel, raw: pd.DataFrame) -> np.ndarray:
    x = F.transform(F.engineer(raw), model.manifest["normalisation"])
    return model.run({"x": x})["y"] if len(x) else np.zeros((0, 5), dtype=np.float32)


def score(model: OnnxModel, df: pd.DataFrame, *, explain: bool = False, top: int = 3) -> pd.DataFrame:
    raw = F.validate(df)
    probs = _probabilities(model, raw)
    threshold = float(model.manifest["threshold"])
    out = pd.DataFrame(
        {
            "UDI": F.row_ids(df),
            "failure_probability": probs[:, 0].astype(float).round(6),
            "failure_predicted": (probs[:, 0] >= threshold).astype(int),
        }
    )
    if explain and len(raw):
        modes = np.asarray(model.manifest.get("outputs_meaning", ["failure", *F.MODES])[1:])
        out["failure_mode"] = np.where(out["failure_predicted"] == 1, modes[np.argmax(probs[:, 1:], axis=1)], "")
        baseline = model.manifest.get("explain_baseline", {})
        drops = {}
        for c in F.RAW:
            masked = raw.copy()
            masked[c] = "L" if c == F.TYPE else baseline.get(c, float(raw[c].median()))
            drops[c] = probs[:, 0] - _probabilities(model, masked)[:, 0]
        d = pd.DataFrame(drops)
        order = np.argsort(-d.to_numpy(), axis=1)[:, :top]
        out["top_features"] = [";".join(d.columns[j] for j in row) for row in order]
    return out


def predict(
    model: OnnxModel, input_path: Path | str, dataset: str, *, explain: bool = False, **_options
) -> pd.DataFrame:
    return score(model, F.read_rows(input_path), explain=explain)
