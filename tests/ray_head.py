"""A real Ray head on loopback for the integration tests (``ray start --head --block``), stopped with everything
it started."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

RAY = Path(sys.executable).with_name("ray")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_group(proc: subprocess.Popen) -> None:
    """Stop a process started with ``start_new_session`` and its whole group (nothing else)."""
    for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
        time.sleep(1)  # let the group's other members (gcs_server, raylet) go too
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


@contextmanager
def ray_head(log: Path, num_cpus: int = 1) -> Iterator[str]:
    """Start a head; yields its address (``127.0.0.1:PORT``) once the GCS answers. Token auth is off for this
    loopback-only head (set ``RAY_AUTH_MODE=disabled`` in the drivers too): other Ray sessions on a shared host
    rewrite ~/.ray/auth_token, which leaves a head and its driver holding different tokens."""
    port = free_port()
    # a private, short temp dir: other Ray sessions on this host must not see or share this head's sockets
    temp_dir = tempfile.mkdtemp(prefix="sfray", dir="/tmp")
    err = open(log, "w")  # noqa: SIM115 - closed below
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    # --block keeps `ray start` in the foreground: stopping that process stops exactly the head it started
    head = subprocess.Popen(
        [str(RAY), "start", "--head", f"--port={port}", f"--num-cpus={num_cpus}", "--include-dashboard=false",
         "--node-ip-address=127.0.0.1", "--disable-usage-stats", f"--temp-dir={temp_dir}", "--block"],
        stdout=subprocess.DEVNULL, stderr=err, start_new_session=True, env=env,
    )
    try:
        deadline = time.monotonic() + 60
        while True:  # wait for the GCS port; ray.init retries until the GCS answers
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if head.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"ray head did not start: {log.read_text()[-2000:]}") from None
                time.sleep(0.5)
        yield f"127.0.0.1:{port}"
    finally:
        stop_group(head)
        shutil.rmtree(temp_dir, ignore_errors=True)
        err.close()
