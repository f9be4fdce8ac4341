"""Integration: a real Ray head on loopback, joined through SFAI_RAY_ADDRESS; the same features as locally."""

from __future__ import annotations

import pytest

from pipelines.runner import run_pipeline
from tests.datasets import need
from tests.ray_head import ray_head


def test_pipeline_on_a_ray_head(tmp_path, store, monkeypatch):
    ray = pytest.importorskip("ray")
    src = need("cmapss/train_FD002.txt")
    sample = tmp_path / "train_FD002.txt"  # the first six engines of FD002 (six regimes)
    lines = [ln for ln in src.read_text().splitlines() if int(ln.split()[0]) <= 6]
    sample.write_text("\n".join(lines) + "\n")
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    with ray_head(tmp_path / "ray-head.log") as address:
        try:
            monkeypatch.setenv("SFAI_RAY_ADDRESS", address)
            rep = run_pipeline("cmapss", sample, store=store, engine="ray", partitions=3)
            assert ray.is_initialized() and rep.partitions == 3 and rep.fitted == {"FD002": {"regimes": 6}}
            assert rep.views["cmapss_features"] == len(lines) and rep.entities == 6
            files = store.offline.files("acme", "cmapss_features")
            again = run_pipeline("cmapss", sample, store=store, engine="local")  # the same store: nothing new
            assert again.views == rep.views and store.offline.files("acme", "cmapss_features") == files
            assert store.offline.row_count("acme", "cmapss_features") == len(lines)
        finally:
            if ray.is_initialized():
                ray.shutdown()
