"""ONNX Runtime model wrapper: manifest-driven inputs, dtype casting, checksum verified on load.

A model directory holds ``model.onnx`` and ``manifest.json`` (see ``models/export.py``). This module never
imports torch: the serving path and ``sfai predict`` run ONNX Runtime only.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from pathlib import Path

import numpy as np

from serving.errors import InvalidInput, SfaiError

log = logging.getLogger("sfai.runtime")
_NP_TYPES = {"float32": np.float32, "float64": np.float64, "int64": np.int64, "int32": np.int32, "bool": np.bool_}


# Single calls run on one thread each (many run at once); a batch of WIDE_ROWS rows or more gets a session with
# up to WIDE_THREADS threads, so that one big batch uses the cores an otherwise idle server has.
WIDE_ROWS = 4096
WIDE_THREADS = min(4, os.cpu_count() or 1)


class ModelIntegrityError(SfaiError):
    """A model file that is missing or does not match its manifest's checksum: refused, never served."""

    status = 503
    code = "model_integrity"


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def check_checksum(path: Path, expected: str | None, data: bytes | None = None) -> None:
    """Refuse a model file whose SHA-256 is not ``expected`` (the registry's record, or the manifest's; None: not
    checked); ``data``: its bytes, where already read."""
    if not expected:
        return
    got = hashlib.sha256(data).hexdigest() if data is not None else file_sha256(path)
    if got != expected:
        raise ModelIntegrityError(f"model file {path} does not match its recorded checksum (changed or replaced "
                                  "since it was registered: restore it, or train and register again)")


class OnnxModel:
    """One loaded model. ``run({"x": array}) -> {"output name": array}``; thread-safe (ORT sessions are)."""

    def __init__(self, directory: Path | str, *, threads: int = 1, name: str | None = None,
                 sha256: str | None = None) -> None:
        """``sha256``: the model file's checksum as the registry recorded it (else the manifest's is checked)."""
        self.dir = Path(directory)
        self._name = name  # the registered name (rul-fd001), where the manifest holds the family's (rul)
        manifest_path = self.dir / "manifest.json"
        onnx_path = self.dir / "model.onnx"
        if not manifest_path.exists() or not onnx_path.exists():
            raise ModelIntegrityError(f"model directory {self.dir} lacks model.onnx or manifest.json")
        self.manifest: dict = json.loads(manifest_path.read_text())
        self._onnx_path = onnx_path
        self._sha256 = sha256 or self.manifest.get("onnx_sha256")
        self.session = self._session(threads)
        self._wide = None  # a session with more threads, made on the first big batch
        self._wide_failed = False
        self.inputs = {i.name: i for i in self.session.get_inputs()}
        self.output_names = [o.name for o in self.session.get_outputs()]
        self._first_output = self.output_names[:1]
        self._dtypes = {i["name"]: _NP_TYPES.get(i.get("dtype", "float32"), np.float32)
                        for i in self.manifest.get("inputs", [])}
        self._lock = threading.Lock()
        self._derived: dict[str, object] = {}

    def derived(self, key: str, make):  # noqa: ANN001, ANN201
        """A value computed once from this model (``make(model)``), such as its scaler as arrays, kept with it."""
        value = self._derived.get(key)
        if value is None:
            value = self._derived[key] = make(self)
        return value

    def _session(self, threads: int):  # noqa: ANN202
        """A session on the model file's bytes, checked against the manifest's checksum (the bytes are not kept:
        ONNX Runtime holds the weights)."""
        import onnxruntime as ort

        data = self._onnx_path.read_bytes()
        check_checksum(self._onnx_path, self._sha256, data)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        return ort.InferenceSession(data, sess_options=opts, providers=["CPUExecutionProvider"])

    def _wide_session(self):  # noqa: ANN202
        """The many-thread session, or the single-thread one if the file changed on disk since it was loaded."""
        with self._lock:
            if self._wide is None and not self._wide_failed:
                try:
                    self._wide = self._session(WIDE_THREADS)
                except (ModelIntegrityError, OSError):
                    log.warning("model file %s changed or went away since it was loaded; big batches stay on "
                                "the loaded session", self._onnx_path)
                    self._wide_failed = True
        return self._wide or self.session

    @property
    def name(self) -> str:
        return self._name or self.manifest.get("name", self.dir.name)

    @property
    def version(self) -> str:
        return str(self.manifest.get("version", "0"))

    def run_small(self, name: str, x: np.ndarray) -> np.ndarray:
        """The first output for one input ``x`` of a few rows, already in the input's dtype: the single-thread
        session without ``run``'s other checks (the hot path of single predictions)."""
        self._check_finite(name, x)
        y = self.session.run(self._first_output, {name: x})[0]
        self._check_answer(y)
        return y

    def _check_answer(self, *outputs: np.ndarray) -> None:
        """Finite inputs so large that the network overflows inside give NaN or infinite outputs: refused too."""
        for y in outputs:
            if y.dtype.kind == "f" and not np.isfinite(y).all():
                raise InvalidInput(
                    f"a value is out of range for model {self.name}: its answer for these inputs is not a finite "
                    "number (a reading far outside anything the model was trained on?)"
                )

    def _check_finite(self, name: str, x: np.ndarray) -> None:
        """A float input that is not finite (a reading so large that it, or a feature made from it, overflows
        float32) is the caller's error, named, not a NaN answer or a 500."""
        if x.dtype.kind == "f" and not np.isfinite(x).all():
            row, col = (int(v[0]) for v in np.nonzero(~np.isfinite(x.reshape(len(x), -1))))
            features = self.manifest.get("features") or []
            feature = repr(features[col % len(features)]) if features else f"column {col + 1}"
            raise InvalidInput(
                f"a value is out of range for model {self.name}: input {name!r} row {row + 1}, feature {feature} "
                "is not a finite number (a reading far outside anything the model was trained on?)"
            )

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        missing = set(self.inputs) - set(feeds)
        if missing:
            raise InvalidInput(f"model {self.name} needs inputs {sorted(missing)}")
        with np.errstate(over="ignore", invalid="ignore"):  # an overflow to inf is refused just below
            cast = {k: np.ascontiguousarray(v, dtype=self._dtypes.get(k, np.float32)) for k, v in feeds.items()
                    if k in self.inputs}
        for k, v in cast.items():
            self._check_finite(k, v)
        session = self.session
        if WIDE_THREADS > 1 and max((len(v) for v in cast.values()), default=0) >= WIDE_ROWS:
            session = self._wide or self._wide_session()
        out = session.run(self.output_names, cast)
        self._check_answer(*out)
        return dict(zip(self.output_names, out, strict=True))
