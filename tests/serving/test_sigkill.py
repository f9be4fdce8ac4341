"""A call answered 2xx is in the usage log even if the server is killed with SIGKILL right after."""

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from serving.db.tables import UsageRecord
from serving.usage import verify_chain
from tests.serving.helpers import KEY, make_tenant

SFAI = str(Path(sys.executable).with_name("sfai"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(env: dict, port: int, log_path: Path) -> subprocess.Popen:
    log = open(log_path, "w")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(
        [SFAI, "serve", "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited early: {log_path.read_text()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise AssertionError("server did not become ready in 60 s")


def test_acknowledged_calls_survive_sigkill(sfai_env, settings, db, tmp_path):
    acme = make_tenant(db, settings.secret_key, "acme", modules=("quality",))
    port = free_port()
    proc = start_server(sfai_env, port, tmp_path / "server.log")
    acked: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def client(worker: int) -> None:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as c:
            i = 0
            while not stop.is_set():
                rid = f"w{worker}-{i}"
                i += 1
                try:
                    r = c.get(
                        "/v1/quality/status", headers={"Authorization": f"Bearer {acme.mes}", "X-Request-ID": rid}
                    )
                except httpx.HTTPError:
                    return  # the server is gone
                if 200 <= r.status_code < 300:
                    with lock:
                        acked.append(rid)

    threads = [threading.Thread(target=client, args=(w,)) for w in range(8)]
    try:
        for t in threads:
            t.start()
        deadline = time.monotonic() + 30
        while len(acked) < 300 and time.monotonic() < deadline:
            time.sleep(0.005)
        os.kill(proc.pid, signal.SIGKILL)  # mid-stream: requests are in flight
        with lock:
            acked_at_kill = list(acked)
        proc.wait(10)
    finally:
        stop.set()
        for t in threads:
            t.join(10)
        if proc.poll() is None:
            proc.kill()
    assert len(acked_at_kill) >= 300, "the server answered too few calls before the kill"
    # a response that was read before the kill is in `acked`; every one must be in the log
    with db.engine.connect() as c:
        logged = set(c.execute(select(UsageRecord.request_id)).scalars())
    missing = set(acked) - logged
    assert not missing, f"{len(missing)} acknowledged calls missing from the usage log, e.g. {sorted(missing)[:5]}"
    assert verify_chain(db, key=KEY).ok


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # the database plays no part here
def test_idle_keep_alive_connections_outlive_the_clients_own_timeout(sfai_env, tmp_path):
    """``sfai serve`` keeps an idle connection open for ``SFAI_KEEP_ALIVE_S`` (90 s by default), longer than a
    client's or load balancer's own idle timeout, so a request is never sent on a connection the server is closing
    at that moment (uvicorn's own 5 s equals httpx's keep-alive expiry: a soak lost one call in 33,000 to it)."""
    import http.client

    for keep_alive, idle, stays_open in ((None, 6.0, True), ("1", 2.5, False)):
        env = dict(sfai_env) if keep_alive is None else {**sfai_env, "SFAI_KEEP_ALIVE_S": keep_alive}
        port = free_port()
        proc = start_server(env, port, tmp_path / f"server-{keep_alive}.log")
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            conn.request("GET", "/healthz")
            first = conn.getresponse()
            assert first.status == 200 and first.read()
            time.sleep(idle)  # past uvicorn's default of 5 s, or past the 1 s set here
            try:
                conn.request("GET", "/healthz")  # on the same connection (http.client never reconnects here)
                again = conn.getresponse()
                answered = again.status == 200 and bool(again.read())
            except (http.client.RemoteDisconnected, ConnectionError):
                answered = False
            assert answered is stays_open, keep_alive
        finally:
            conn.close()
            proc.terminate()
            proc.wait(timeout=30)
