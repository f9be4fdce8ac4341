"""Score wafers with an exported defect model (ONNX Runtime only: this module never imports torch).

``predict`` returns the contract's columns ``row_id,defect_probability,defect_predicted``; ``explain`` adds the
top contributing measurements per wafer for process engineers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from models.defect import features as F
from serving.runtime import OnnxModel

COLUMNS = ["row_id", "defect_probability", "defect_predicted"]


def score(model: OnnxModel, df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(robust z-scores, defect probabilities) for rows already read."""
    z = F.transform(df, model.manifest["feature_stats"])
    prob = model.run({"x": z})["y"][:, 0] if len(z) else np.zeros(0, dtype=np.float32)
    return z, prob


def predict(model: OnnxModel, input_path: Path, dataset: str, *, start=None, horizon=96, **_) -> pd.DataFrame:  # noqa: ANN001
    df = F.read_rows(input_path)
    _, prob = score(model, df)
    threshold = float(model.manifest["threshold"])
    return pd.DataFrame(
        {
            "row_id": df[F.ID].to_numpy(),
            "defect_probability": np.round(prob.astype(float), 6),
            "defect_predicted": (prob >= threshold).astype(int),
        },
        columns=COLUMNS,
    )


def explain(model: OnnxModel, input_path: Path, *, top_k: int | None = None) -> pd.DataFrame:
    """The contract columns plus ``top_measurements``: ``f059:+0.41;f033:-0.22;...`` (logit contributions)."""
    df = F.read_rows(input_path)
    z, prob = score(model, df)
    m = model.manifest
    k = int(top_k or m.get("config", {}).get("top_k", 5))
    tops = F.top_contributions(z, np.asarray(m["contribution_weights"]), m["features"], k)
    return pd.DataFrame(
        {
            "row_id": df[F.ID].to_numpy(),
            "defect_probability": np.round(prob.astype(float), 6),
            "defect_predicted": (prob >= float(m["threshold"])).astype(int),
            "top_measurements": [";".join(f"{n}:{c:+.3f}" for n, c in row) for row in tops],
        }
    )
