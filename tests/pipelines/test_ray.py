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


def test_a_ray_address_that_does_not_answer_is_one_line_at_once(monkeypatch):
    """A wrong SFAI_RAY_ADDRESS held `sfai tune` in Ray's retries for over 12 minutes, past SIGTERM (operator's
    audit): one connection attempt now says so, before Ray is asked to join."""
    import socket
    import time

    from pipelines.runner import ray_init
    from serving.errors import Unavailable
    from serving.settings import check_ray_address

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed
    t0 = time.monotonic()
    for address in (f"127.0.0.1:{port}", f"ray://127.0.0.1:{port}"):
        with pytest.raises(Unavailable, match=rf"the Ray cluster at {address} does not answer .* SFAI_RAY_ADDRESS"):
            check_ray_address(address)
    monkeypatch.setenv("SFAI_RAY_ADDRESS", f"127.0.0.1:{port}")
    with pytest.raises(Unavailable, match="does not answer"):
        ray_init()
    assert time.monotonic() - t0 < 15
    with pytest.raises(Unavailable, match="is not host:port"):
        check_ray_address("localhost")
    check_ray_address("auto")  # left to Ray
