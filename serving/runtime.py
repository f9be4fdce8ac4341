"""ONNX Runtime model wrapper: manifest-driven inputs, dtype casting, checksum verified on load.

A model directory holds ``model.onnx`` and ``manifest.json`` (see ``models/export.py``). This module never
imports torch: the serving path and ``sfai predict`` run ONNX Runtime only.
"""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path

import numpy as np

from serving.errors import InvalidInput, SfaiError

_NP_TYPES = {"float32": np.float32, "float64": np.float64, "int64": np.int64, "int32": np.int32, "bool": np.bool_}


class ModelIntegrityError(SfaiError):
    status = 500
    code = "model_integrity"


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class OnnxModel:
    """One loaded model. ``run({"x": array}) -> {"output name": array}``; thread-safe (ORT sessions are)."""

    def __init__(self, directory: Path | str, *, threads: int = 1) -> None:
        import onnxruntime as ort

        self.dir = Path(directory)
        manifest_path = self.dir / "manifest.json"
        onnx_path = self.dir / "model.onnx"
        if not manifest_path.exists() or not onnx_path.exists():
            raise ModelIntegrityError(f"model directory {self.dir} lacks model.onnx or manifest.json")
        self.manifest: dict = json.loads(manifest_path.read_text())
        expected = self.manifest.get("onnx_sha256")
        actual = file_sha256(onnx_path)
        if expected and expected != actual:
            raise ModelIntegrityError(f"model file {onnx_path} does not match its manifest checksum")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(onnx_path), sess_options=opts, providers=["CPUExecutionProvider"])
        self.inputs = {i.name: i for i in self.session.get_inputs()}
        self.output_names = [o.name for o in self.session.get_outputs()]
        self._dtypes = {i["name"]: _NP_TYPES.get(i.get("dtype", "float32"), np.float32)
                        for i in self.manifest.get("inputs", [])}
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return self.manifest.get("name", self.dir.name)

    @property
    def version(self) -> str:
        return str(self.manifest.get("version", "0"))

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        missing = set(self.inputs) - set(feeds)
        if missing:
            raise InvalidInput(f"model {self.name} needs inputs {sorted(missing)}")
        cast = {k: np.ascontiguousarray(v, dtype=self._dtypes.get(k, np.float32)) for k, v in feeds.items()
                if k in self.inputs}
        out = self.session.run(self.output_names, cast)
        return dict(zip(self.output_names, out, strict=True))
