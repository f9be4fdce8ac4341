"""``sfai serve`` as an operator runs it: several instances on one ``SFAI_HOME`` (a shared volume), behind a proxy."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.ray_head import free_port, stop_group

SFAI = str(Path(sys.executable).with_name("sfai"))


def _start(env: dict, log: Path, *args: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen([SFAI, "serve", "--port", str(port), *args], env=env, stdout=log.open("w"),
                            stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"sfai serve exited: {log.read_text()[-3000:]}")
        try:
            if httpx.get(base + "/readyz", timeout=2).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    stop_group(proc)
    pytest.fail(f"sfai serve did not start: {log.read_text()[-3000:]}")


STAMPED = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ (INFO|WARNING|ERROR|CRITICAL|DEBUG) \[\d+\] \S+: ")


def _stamped(log: Path) -> list[str]:
    """The server's log lines without a UTC time, level, process and logger: with one worker the server's lines had
    none (the CLI's format), with several uvicorn's; ``sfai serve``'s own first and last lines had none either
    (operator's audit)."""
    lines = log.read_text().splitlines()
    assert len(lines) >= 4 and "sfai.serve: SFAI API on http://" in lines[0], lines
    return [line for line in lines if not STAMPED.match(line)]


def _served(base: str) -> float:
    """Requests this instance's workers have answered, from its /metrics (every worker's series summed)."""
    text = httpx.get(base + "/metrics", timeout=10).text
    return sum(float(v) for v in re.findall(r'^sfai_requests_total\{[^}]*\} ([0-9.e+]+)$', text, re.M))


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # the database plays no part here
def test_instances_sharing_a_home_keep_their_own_metrics(sfai_env, tmp_path):
    """The second instance's start cleared the first's metrics files (all instances used $SFAI_HOME/prometheus)
    and its /metrics then counted the first's requests."""
    procs = []
    try:
        first, a = _start(sfai_env, tmp_path / "a.log", "--workers", "2")
        procs.append(first)
        for _ in range(20):
            httpx.get(a + "/v1/tenant", timeout=10)  # 401s, counted as requests
        before = _served(a)
        assert before >= 20
        # the usage log's series, added up over the workers (with --workers N there were none: operator's audit)
        text = httpx.get(a + "/metrics", timeout=10).text
        for name in ("sfai_usage_log_batches_total", "sfai_usage_log_records_total", "sfai_usage_log_failures_total"):
            assert re.search(rf"^{name} [0-9.e+]+$", text, re.M), name
        second, b = _start(sfai_env, tmp_path / "b.log", "--workers", "2")
        procs.append(second)
        for _ in range(5):
            httpx.get(b + "/v1/tenant", timeout=10)
        assert _served(a) >= before  # nothing of the first's was removed
        assert 5 <= _served(b) < before  # and the second counts its own requests only
        gone = Path(sfai_env["SFAI_HOME"]) / "prometheus" / "old-container-8000"  # an instance recreated long ago
        gone.mkdir()
        (gone / "counter_1.db").write_bytes(b"x")
        week_ago = time.time() - 8 * 86400
        for p in (gone / "counter_1.db", gone):
            os.utime(p, (week_ago, week_ago))
        procs.append(_start(sfai_env, tmp_path / "c.log", "--workers", "2")[0])
        assert not gone.exists() and len(list(gone.parent.iterdir())) == 3  # the three live instances' folders
    finally:
        for p in procs:
            stop_group(p)
    assert _stamped(tmp_path / "a.log") == []


def test_behind_a_proxy_the_failed_key_limit_is_per_client(sfai_env, tmp_path):
    """Behind a load balancer every call comes from its address: a client trying bad keys got every other client
    429 ``too_many_failed_keys``. With --forwarded-allow-ips the limit counts the client in X-Forwarded-For."""
    # 10 s of burst: 5 lookups at once, then one per 2 s (at 1 per s, a loaded CI machine's slow calls refilled it)
    env = {**sfai_env, "SFAI_FAILED_KEY_LOOKUPS_PER_S": "0.5"}
    proc, base = _start(env, tmp_path / "serve.log", "--forwarded-allow-ips", "127.0.0.1")
    try:
        def call(client: str, i: int) -> int:
            headers = {"Authorization": f"Bearer sfai_k{i:012x}_nope", "X-Forwarded-For": client}
            return httpx.get(base + "/v1/tenant", headers=headers, timeout=10).status_code

        codes = [call("203.0.113.7", i) for i in range(3)]
        assert codes == [401, 401, 401]
        codes += [call("203.0.113.7", i) for i in range(3, 13)]
        assert codes[-1] == 429, codes
        assert call("198.51.100.2", 99) == 401  # another client behind the same proxy: still its own allowance
    finally:
        stop_group(proc)
    assert _stamped(tmp_path / "serve.log") == []  # one worker, in the CLI's process


def test_serve_refuses_a_wildcard_proxy_and_warns_of_development_on_other_machines(sfai_env, tmp_path):
    """``--forwarded-allow-ips '*'`` is one line and exit 1 (it passed the failed-key limit); listening beyond this
    machine in development says what that exposes (the development secret, an open /metrics); loopback says
    nothing."""
    p = subprocess.run([SFAI, "serve", "--port", "1", "--forwarded-allow-ips", "*"], env=sfai_env,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 1 and p.stderr.startswith("error: --forwarded-allow-ips may not be *"), p.stderr
    assert len(p.stderr.strip().splitlines()) == 1
    for host, warned in (("0.0.0.0", True), ("127.0.0.1", False)):
        log = tmp_path / f"serve-{host}.log"
        proc, _ = _start({**sfai_env, "SFAI_ENVIRONMENT": "development"}, log, "--host", host)
        stop_group(proc)
        assert ("warning: listening on 0.0.0.0 in development" in log.read_text()) is warned, log.read_text()
