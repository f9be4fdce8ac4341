"""ONNX export with a manifest, written once for every family (MLflow's ONNX flavour, simplified).

``export(model, sample, out_dir, manifest)`` writes ``model.onnx`` and ``manifest.json`` (inputs with names
and dtypes, feature list, normalisation, thresholds, training-data hash, metrics, checksum) and checks that
ONNX Runtime reproduces PyTorch on the sample within ``tolerance``.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch
from torch import nn

from serving.runtime import OnnxModel, file_sha256

PARITY_TOLERANCE = 1e-4


class _Inference(nn.Module):
    """Export only the output, never the loss."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)[0]


def data_hash(*frames) -> str:  # noqa: ANN002
    """A stable hash of the training data (DataFrames or arrays), recorded in the manifest."""
    h = hashlib.sha256()
    for f in frames:
        arr = f.to_numpy() if hasattr(f, "to_numpy") else np.asarray(f)
        h.update(np.ascontiguousarray(arr).tobytes() if arr.dtype != object else str(arr.tolist()).encode())
    return h.hexdigest()


def export(
    model: nn.Module,
    sample: np.ndarray,
    out_dir: Path,
    manifest: dict,
    *,
    input_name: str = "x",
    output_name: str = "y",
    tolerance: float = PARITY_TOLERANCE,
) -> dict:
    """Write ``out_dir/model.onnx`` + ``manifest.json``; returns the manifest (with ``parity_max_abs``)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    wrapped = _Inference(model).eval()
    x = torch.as_tensor(np.asarray(sample, dtype=np.float32))
    dynamic = {input_name: {0: "batch"}, output_name: {0: "batch"}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapped,
            (x,),
            out_dir / "model.onnx",
            input_names=[input_name],
            output_names=[output_name],
            dynamic_axes=dynamic,
            opset_version=17,
            dynamo=False,
        )
    with torch.no_grad():
        expected = wrapped(x).numpy()
    manifest = {
        **manifest,
        "inputs": [{"name": input_name, "dtype": "float32", "shape": ["batch", *list(x.shape[1:])]}],
        "outputs": [{"name": output_name, "dtype": "float32", "shape": ["batch", *list(expected.shape[1:])]}],
        "created_at": datetime.now(UTC).isoformat(),
        "onnx_sha256": file_sha256(out_dir / "model.onnx"),
        "runtime": "onnxruntime",
    }
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=2, default=float))
    got = OnnxModel(out_dir).run({input_name: x.numpy()})[output_name]
    diff = float(np.max(np.abs(got - expected))) if expected.size else 0.0
    if diff > tolerance:
        raise RuntimeError(f"ONNX Runtime differs from PyTorch by {diff:.2e} (> {tolerance:.0e})")
    manifest["parity_max_abs"] = diff
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=2, default=float))
    return manifest
