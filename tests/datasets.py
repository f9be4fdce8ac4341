"""The shared datasets the tests read (``../shared/datasets``, or ``$SFAI_SHARED/datasets``), and the small
helpers the model tests share."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def datasets_dir() -> Path:
    return Path(os.environ.get("SFAI_SHARED", ROOT.parent / "shared")) / "datasets"


DATASETS = datasets_dir()


def need(relative: str) -> Path:
    """``DATASETS / relative``, or a skip with the reason printed (a failure on CI, where the data must be)."""
    path = DATASETS / relative
    if not path.exists():
        reason = f"dataset {path} not found (set SFAI_SHARED to the folder holding datasets/)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        print(f"\nSKIP: {reason}")
        pytest.skip(reason)
    return path


class NoTracker:
    """A tracker that records nothing (training without MLflow)."""

    enabled = False

    def __getattr__(self, name):  # noqa: ANN204, ANN001
        return lambda *a, **k: None


def assert_predicts_without_torch(
    family: str, model_dir: Path, input_path: Path, dataset: str, rows: int, **options: object
) -> None:
    """``models.<family>.predict.predict`` in a fresh interpreter: ``rows`` rows out, and torch never imported."""
    code = (
        f"import sys; from serving.runtime import OnnxModel; from models.{family}.predict import predict; "
        f"f = predict(OnnxModel({str(model_dir)!r}), {str(input_path)!r}, {dataset!r}, **{options!r}); "
        f"assert len(f) == {rows}, len(f); assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=120)
