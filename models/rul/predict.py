"""RUL per engine at its last cycle from a NASA-format file (ONNX Runtime; no torch).

``predict(model, input_path, dataset) -> DataFrame[unit, rul]``, one row per unit.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from models.rul import data as D
from serving.runtime import OnnxModel


def score(model: OnnxModel, df: pd.DataFrame, *, batch: int = 1024) -> pd.DataFrame:
    units, windows = D.last_windows(df, model.manifest["prep"])
    out = [model.run({"x": windows[i : i + batch]})["y"] for i in range(0, len(windows), batch)]
    rul = np.concatenate(out) if out else np.zeros(0)
    return pd.DataFrame({"unit": units.astype(int), "rul": np.round(rul.astype(float), 3)})


def predict(model: OnnxModel, input_path: Path | str, dataset: str, **_options) -> pd.DataFrame:
    return score(model, D.read_cmapss(input_path))
