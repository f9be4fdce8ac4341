"""A cancelled background job's solve stops (it ran on to its time limit, up to an hour of CPU). A server stopped
with SIGTERM mid-solve: tests/serving/test_cli.py::test_a_server_stopped_with_sigterm_says_it_stopped_and_exits_0."""

import random
import threading
import time

from tests.serving.helpers import bearer, make_tenant

PEPPER = "test-secret-0123456789"


def _shop(jobs: int = 30, machines: int = 15, seed: int = 3) -> dict:
    """A job shop that no solver proves optimal in a minute on two cores."""
    rng = random.Random(seed)
    ms = [f"M{i}" for i in range(machines)]
    return {"machines": ms, "jobs": [
        {"id": f"J{j}", "operations": [{"machines": {m: rng.randint(5, 60)}} for m in rng.sample(ms, machines)]}
        for j in range(jobs)]}


def _solving(app) -> dict:
    jobs = app.state.platform.jobs
    with jobs._lock:
        return dict(jobs._solving)


def test_a_cancelled_running_job_stops_its_solve(client, db, app):
    acme = make_tenant(db, PEPPER, "acme", modules=("scheduling",))
    h = bearer(acme.mes)
    r = client.post("/v1/scheduling/jobs", json={"problem": _shop(), "time_limit_s": 120, "workers": 1}, headers=h)
    assert r.status_code == 202, r.text
    job = r.json()["job_id"]
    deadline = time.monotonic() + 30
    while job not in _solving(app) and time.monotonic() < deadline:
        time.sleep(0.02)
    ident = _solving(app)[job]
    time.sleep(1.0)  # well into the search
    cancelled = client.delete(f"/v1/scheduling/jobs/{job}", headers=h).json()
    assert cancelled["status"] == "cancelled" and "stopped" in cancelled["error"]
    # the thread that solved it is free within seconds, not after the job's 120 s
    t0 = time.monotonic()
    while any(t.ident == ident for t in threading.enumerate()) and time.monotonic() - t0 < 20:
        time.sleep(0.05)
    assert not any(t.ident == ident for t in threading.enumerate()), "the cancelled solve ran on"
    assert time.monotonic() - t0 < 10
    answer = client.get(f"/v1/scheduling/jobs/{job}", headers=h).json()
    assert answer["status"] == "cancelled" and answer["result"] is None  # the cut-short plan is not stored
