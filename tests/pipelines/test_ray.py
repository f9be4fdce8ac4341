"""Integration: a real Ray head on loopback, joined through SFAI_RAY_ADDRESS; the same features as locally."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from pipelines.runner import run_pipeline
from tests.datasets import need

RAY = Path(sys.executable).with_name("ray")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(head: subprocess.Popen) -> None:
    """Stop the head and everything it started: its own process group (start_new_session), nothing else."""
    for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
        try:
            os.killpg(head.pid, sig)
        except ProcessLookupError:
            break
        try:
            head.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
        time.sleep(1)  # let the group's other members (gcs_server, raylet) go too
    try:
        os.killpg(head.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def test_pipeline_on_a_ray_head(tmp_path, store, monkeypatch):
    ray = pytest.importorskip("ray")
    src = need("cmapss/train_FD002.txt")
    sample = tmp_path / "train_FD002.txt"  # the first six engines of FD002 (six regimes)
    lines = [ln for ln in src.read_text().splitlines() if int(ln.split()[0]) <= 6]
    sample.write_text("\n".join(lines) + "\n")
    port = _free_port()
    # a private, short temp dir: other Ray sessions on this host must not see or share this head's sockets
    temp_dir = tempfile.mkdtemp(prefix="sfray", dir="/tmp")
    log = tmp_path / "ray-head.log"
    # --block keeps `ray start` in the foreground: stopping that process stops exactly the head it started
    # Token auth off for this loopback-only head: other Ray sessions on a shared host rewrite ~/.ray/auth_token,
    # which leaves a head and its driver holding different tokens
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    err = open(log, "w")  # noqa: SIM115 - closed in the finally below
    head = subprocess.Popen(
        [str(RAY), "start", "--head", f"--port={port}", "--num-cpus=1", "--include-dashboard=false",
         "--node-ip-address=127.0.0.1", "--disable-usage-stats", f"--temp-dir={temp_dir}", "--block"],
        stdout=subprocess.DEVNULL, stderr=err, start_new_session=True,
    )
    try:
        address = f"127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:  # wait for the GCS port; ray.init retries until the GCS answers
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if head.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"ray head did not start: {log.read_text()[-2000:]}")
                time.sleep(0.5)
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
        _stop(head)
        shutil.rmtree(temp_dir, ignore_errors=True)
        err.close()
