"""POST /v1/scheduling/solve and background jobs, per tenant; linked modules only when subscribed."""

import json
import threading
import time

import pytest

from tests.serving.helpers import bearer, make_tenant

PEPPER = "test-secret-0123456789"
PROBLEM = {
    "name": "line-3",
    "machines": ["M1", "M2"],
    "jobs": [
        {"id": "J1", "due": 5, "operations": [{"id": "a", "machines": {"M1": 3}}, {"id": "b", "machines": {"M2": 2}}]},
        {"id": "J2", "due": 4, "operations": [{"id": "a", "machines": {"M2": 4}}, {"id": "b", "machines": {"M1": 3}}]},
    ],
    "failure_risk": {"risks": {"M1": 0.9}, "threshold": 0.5, "policy": "penalty", "penalty_per_unit": 1.0},
}


STOPPED: list[str] = []  # the fake solves of held_solves that their job's stop event ended


def held_solves(monkeypatch) -> tuple[list[str], threading.Semaphore]:
    """Background solves replaced by a fake that records the problem's name and waits until the test releases the
    semaphore, so that job order and state do not depend on timing: (names started, in order; the semaphore)."""
    started, finish = [], threading.Semaphore(0)
    STOPPED.clear()

    def solve(problem, params, linked, stop=None, **kw):
        started.append(problem.name)
        deadline = time.monotonic() + 30
        while not finish.acquire(timeout=0.01):  # a cancelled job's solve stops, as the real one does
            if stop is not None and stop.is_set():
                STOPPED.append(problem.name)
                return {"name": problem.name, "linked": linked, "stopped": True}
            assert time.monotonic() < deadline, "the test never let this solve finish"
        return {"name": problem.name, "linked": linked}

    monkeypatch.setattr("serving.scheduling.solve_prepared", solve)
    return started, finish


def test_solve_returns_a_checked_plan(client, db):
    acme = make_tenant(db, PEPPER, "acme", modules=("scheduling",))
    r = client.post(
        "/v1/scheduling/solve",
        json={"problem": PROBLEM, "time_limit_s": 5, "objective": "makespan"},
        headers=bearer(acme.mes),
    )
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["status"] in ("OPTIMAL", "FEASIBLE") and doc["violations"] == 0
    assert doc["makespan"] == 7 and doc["lower_bound"] <= 7
    assert {(g["job"], g["operation"]) for g in doc["gantt"]} == {("J1", "a"), ("J1", "b"), ("J2", "a"), ("J2", "b")}
    # without the maintenance module, the failure risks are ignored, and the answer says so
    assert doc["linked"]["maintenance"] is False and "failure_risk" in doc["linked"]["ignored"][0]


def test_linked_maintenance_when_subscribed(client, db):
    acme = make_tenant(db, PEPPER, "acme", modules=("scheduling", "maintenance"))
    r = client.post(
        "/v1/scheduling/solve",
        json={"problem": PROBLEM, "time_limit_s": 5, "objective": "makespan"},
        headers=bearer(acme.mes),
    )
    assert r.status_code == 200 and r.json()["linked"]["maintenance"] is True


def test_bad_problems_are_422(client, db):
    acme = make_tenant(db, PEPPER, "acme", modules=("scheduling",))
    for body, fragment in (
        ({"problem": {"machines": ["M1"], "jobs": []}}, "no jobs"),
        ({"problem": {"machines": ["M1"]}}, "jobs"),
        ({"problem": PROBLEM, "time_limit_s": 120}, "time_limit_s"),
        ({"problem": PROBLEM, "objective": "speed"}, "objective"),
        ({"problem": PROBLEM, "time_limit_s": True}, "time_limit_s"),  # before: 1 s
        ({"problem": PROBLEM, "workers": True}, "workers"),
    ):
        r = client.post("/v1/scheduling/solve", json=body, headers=bearer(acme.mes))
        assert r.status_code == 422, (body, r.text)
        assert fragment in r.json()["error"]["message"]


def test_jobs_run_in_the_background_and_are_per_tenant(client, db):
    acme = make_tenant(db, PEPPER, "acme", modules=("scheduling",))
    other = make_tenant(db, PEPPER, "other", modules=("scheduling",))
    r = client.post("/v1/scheduling/jobs", json={"problem": PROBLEM, "time_limit_s": 3}, headers=bearer(acme.mes))
    assert r.status_code == 202, r.text
    job_id = r.json()["job_id"]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        job = client.get(f"/v1/scheduling/jobs/{job_id}", headers=bearer(acme.mes)).json()
        if job["status"] in ("done", "failed"):
            break
        time.sleep(0.2)
    assert job["status"] == "done", job
    assert job["result"]["violations"] == 0 and job["result"]["gantt"]
    r = client.get(f"/v1/scheduling/jobs/{job_id}", headers=bearer(other.mes))
    assert r.status_code == 404 and job_id in r.json()["error"]["message"]
    assert (
        client.post("/v1/scheduling/jobs", json={"problem": {"machines": []}}, headers=bearer(acme.mes)).status_code
        == 422
    )


def test_background_jobs_are_fair_between_tenants(client, db, monkeypatch):
    """Before: one first-come queue, so a tenant's queued jobs (up to 4 of an hour each) ran before a job another
    tenant submitted after them. Now the freed worker takes the other tenant's job first (round-robin). The solves
    are a fake that waits until the test lets it finish, so the order does not depend on timing."""
    started, finish = held_solves(monkeypatch)

    def wait_for(n):
        deadline = time.monotonic() + 30
        while len(started) < n and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(started) == n, started

    acme = make_tenant(db, PEPPER, "acme", modules=("scheduling",))
    other = make_tenant(db, PEPPER, "other", modules=("scheduling",))
    ids = {}
    try:
        for key, name in ((acme, "A1"), (acme, "A2"), (acme, "A3"), (other, "B1")):
            body = {"problem": {**PROBLEM, "name": name}, "time_limit_s": 1}
            r = client.post("/v1/scheduling/jobs", json=body, headers=bearer(key.mes))
            assert r.status_code == 202, r.text
            ids[name] = (r.json()["job_id"], key.mes)
            if name == "A1":
                wait_for(1)  # A1 holds the only worker before the others are queued
        status = {n: client.get(f"/v1/scheduling/jobs/{i}", headers=bearer(k)).json()["status"]
                  for n, (i, k) in ids.items()}
        assert status == {"A1": "running", "A2": "queued", "A3": "queued", "B1": "queued"}
        # the queue as /metrics shows it, read from the database (operator's audit: nothing showed it)
        text = client.get("/metrics").text
        assert 'sfai_scheduling_jobs{status="queued"} 3.0' in text and 'sfai_scheduling_jobs{status="running"} 1.0' \
            in text and "sfai_scheduling_jobs_stale 0.0" in text, text[-600:]
        for n in range(2, 5):
            finish.release()
            wait_for(n)
        finish.release()
    finally:
        for _ in range(4):
            finish.release()
    assert started == ["A1", "B1", "A2", "A3"]
    deadline = time.monotonic() + 30
    for name, (job_id, key) in ids.items():
        while (job := client.get(f"/v1/scheduling/jobs/{job_id}", headers=bearer(key)).json())["status"] != "done":
            assert time.monotonic() < deadline and job["status"] in ("queued", "running"), job
            time.sleep(0.01)
        assert job["result"]["name"] == name and job["started_at"] <= job["finished_at"]
        # UTC with a Z, as every other SFAI answer writes its times (they had been +00:00)
        assert all(job[k].endswith("Z") and "+" not in job[k] for k in ("created_at", "started_at", "finished_at"))
    assert client.get(f"/v1/scheduling/jobs/{ids['B1'][0]}", headers=bearer(acme.mes)).status_code == 404


def test_weighted_and_lexicographic_objectives_take_the_planners_weights_and_order(client, db):
    """One 10-unit job, a tariff ten times dearer in the first 20 units: weight on makespan starts it at once,
    weight on energy waits for the cheap period; a lexicographic order does the same by priority."""
    acme = make_tenant(db, PEPPER, "acme", modules=("scheduling", "energy"))
    problem = {
        "machines": ["M1"], "horizon": 60,
        "jobs": [{"id": "J1", "operations": [{"id": "a", "machines": {"M1": 10}, "power_kw": 30}]}],
        "energy": {"period": 20, "prices": [1.0, 0.1, 0.1], "hours_per_unit": 1.0},
    }

    def start(**objective):
        r = client.post("/v1/scheduling/solve", json={"problem": problem, "time_limit_s": 5, **objective},
                        headers=bearer(acme.mes))
        assert r.status_code == 200, r.text
        doc = r.json()
        assert doc["violations"] == 0
        return doc["gantt"][0]["start"]

    assert start(objective="weighted", weights={"makespan": 1.0}) == 0
    assert start(objective="weighted", weights={"energy": 1.0, "makespan": 0.001}) >= 20
    assert start(objective="lex", order=["makespan", "energy"]) == 0
    assert start(objective="lex", order=["energy", "makespan"]) == 20
    for body, fragment in (
        ({"objective": "weighted", "weights": {"speed": 1}}, "weights"),
        ({"objective": "weighted", "weights": {"makespan": -1}}, "weights"),
        ({"objective": "weighted", "weights": {"makespan": 0}}, "at least one weight"),
        ({"objective": "lex", "order": []}, "order"),
        ({"objective": "lex", "order": ["makespan", "makespan"]}, "distinct"),
        ({"objective": "makespan", "weights": {"makespan": 1}}, "weighted"),
        ({"objective": "weighted", "order": ["makespan"]}, "lex"),
    ):
        r = client.post("/v1/scheduling/solve", json={"problem": problem, **body}, headers=bearer(acme.mes))
        assert r.status_code == 422 and fragment in r.json()["error"]["message"], (body, r.text)


def _post(client, path, body, key):
    """A raw JSON body (NaN and Infinity as a fuzzer sends them)."""
    return client.post(path, content=json.dumps(body), headers={**bearer(key), "content-type": "application/json"})


def test_an_operation_above_the_peak_cap_is_a_422_at_once(client, db, monkeypatch):
    """Before: the solve (or the background job, holding the only job slot) ran forever, ignoring time_limit_s. Now
    it is refused before any solve starts (a solve here would be the old endless one: it fails the test instead)."""

    def no_solve(*_args, **_kwargs):
        raise AssertionError("an unschedulable problem reached the solver")

    monkeypatch.setattr("serving.scheduling.solve_prepared", no_solve)
    acme = make_tenant(db, PEPPER, "acme", modules=("scheduling", "energy"))
    problem = {"machines": ["M1"], "jobs": [{"id": "J1", "operations": [{"machines": {"M1": 3}, "power_kw": 1000}]}],
               "energy": {"period": 60, "prices": [1], "peak_cap_kw": 100}}
    for path in ("/v1/scheduling/solve", "/v1/scheduling/jobs"):
        r = _post(client, path, {"time_limit_s": 1, "workers": 1, "problem": problem}, acme.mes)
        assert r.status_code == 422, r.text
        message = r.json()["error"]["message"]
        assert "job 'J1' operation '0': power_kw 1000 exceeds the energy peak_cap_kw 100" in message
    base = {**problem, "jobs": [{"id": "J1", "operations": [{"machines": {"M1": 3}, "power_kw": 10}]}],
            "energy": {"base_load_kw": [200], "peak_cap_kw": 100}}
    r = _post(client, "/v1/scheduling/solve", {"time_limit_s": 1, "problem": base}, acme.mes)
    assert r.status_code == 422 and "lowest base load 200 kW" in r.json()["error"]["message"], r.text


def test_numbers_too_large_are_422_naming_the_field(client, db):
    """Before: 500s (an int64 overflow, OR-Tools' TypeError, a NaN or infinite float) or a failed job."""
    acme = make_tenant(db, PEPPER, "acme", modules=("scheduling", "energy"))
    small = {"machines": PROBLEM["machines"], "jobs": PROBLEM["jobs"]}
    cases = [
        ({"problem": PROBLEM, "seed": 1180591620717411303424}, "seed"),
        ({"problem": {"machines": ["M1"], "jobs": [{"id": "J1", "operations": [{"machines": {"M1": 2**63}}]}]}},
         "duration on machine 'M1' must be an integer in 0..1000000000"),
        ({"problem": {**small, "jobs": [{"id": "J1", "due": 2**63, "operations": [{"machines": {"M1": 3}}]}]}},
         "job 'J1' due must be an integer in -1000000000..1000000000"),
        ({"problem": {**small, "energy": {"peak_cap_kw": float("nan")}}}, "energy peak_cap_kw must be a finite number"),
        ({"problem": {**small, "energy": {"peak_cap_kw": float("inf")}}}, "energy peak_cap_kw must be a finite number"),
        ({"problem": PROBLEM, "objective": "weighted", "weights": {"makespan": float("inf")}}, "weights.makespan"),
        ({"problem": PROBLEM, "objective": "weighted", "weights": {"makespan": 1e308}}, "weights.makespan"),
    ]
    for body, fragment in cases:
        for path in ("/v1/scheduling/solve", "/v1/scheduling/jobs"):
            r = _post(client, path, {"time_limit_s": 1, **body}, acme.mes)
            assert r.status_code == 422, (path, body, r.text)
            assert fragment in r.json()["error"]["message"], (path, r.text)


def test_malformed_problems_are_422_saying_what_and_where(client, db):
    acme = make_tenant(db, PEPPER, "acme", modules=("scheduling",))
    job = {"id": "J1", "operations": [{"machines": {"M1": 3}}]}
    for problem, fragment in (
        ({"machines": "M1", "jobs": [job]}, "problem.machines must be a list"),
        ({"machines": ["M1"], "jobs": [job], "precedences": [{"before": ["J1", "0"]}]},
         "precedences[0] lacks required field 'after'"),
        ({"machines": ["M1"], "jobs": [{"id": "J1", "operations": [{"machines": {"M1": 3}, "durration": 4}]}]},
         "unknown field 'durration'"),
        ({"machines": ["M1"], "jobs": [{**job, "id": None}]}, "jobs[0].id must be a string or an integer"),
        ({"machines": ["M1"], "jobs": [{**job, "id": ["J"]}]}, "jobs[0].id must be a string or an integer"),
    ):
        r = _post(client, "/v1/scheduling/solve", {"time_limit_s": 1, "problem": problem}, acme.mes)
        assert r.status_code == 422 and fragment in r.json()["error"]["message"], (problem, r.text)


def test_energy_objective_without_a_tariff(client, db):
    """Without energy settings the energy objective cannot work: a 422 saying so (before: a 200 with makespan 12
    where 7 is optimal). A tenant without the energy module gets the plain behaviour, and the answer says so."""
    plain = {"machines": ["M1", "M2"], "jobs": [
        {"id": "J1", "operations": [{"machines": {"M1": 3}}, {"machines": {"M2": 2}}]},
        {"id": "J2", "operations": [{"machines": {"M2": 4}}, {"machines": {"M1": 3}}]}]}
    with_energy = make_tenant(db, PEPPER, "acme", modules=("scheduling", "energy"))
    for body in ({"objective": "energy"}, {"objective": "weighted", "weights": {"energy": 1}},
                 {"objective": "lex", "order": ["energy"]}):
        r = _post(client, "/v1/scheduling/solve", {"time_limit_s": 2, "problem": plain, **body}, with_energy.mes)
        assert r.status_code == 422, r.text
        assert "needs energy settings" in r.json()["error"]["message"]
    without = make_tenant(db, PEPPER, "other", modules=("scheduling",))
    tariff = {**plain, "energy": {"period": 5, "prices": [1, 2]}}
    r = _post(client, "/v1/scheduling/solve", {"time_limit_s": 2, "objective": "energy", "problem": tariff},
              without.mes)
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["objective"] == "makespan" and doc["makespan"] == 7 and doc["status"] == "OPTIMAL"
    assert any("objective 'energy'" in note and "'makespan' instead" in note for note in doc["linked"]["ignored"])


def test_odd_calendars_and_pins_get_a_true_status_or_a_422(client, db):
    """Before: a break inside a holiday answered 200 INFEASIBLE (the plan exists), and an operation started before
    its job's release answered 200 UNKNOWN with no plan and no reason."""
    acme = make_tenant(db, PEPPER, "acme", modules=("scheduling",))
    nested = {"machines": [{"id": "M1", "calendar": [{"start": 0, "end": 100, "kind": "holiday"},
                                                     {"start": 5, "end": 15, "kind": "break"}]}, "M2"],
              "jobs": [{"id": "A", "operations": [{"machines": {"M2": 20}}, {"machines": {"M1": 3}}]}]}
    r = _post(client, "/v1/scheduling/solve", {"time_limit_s": 2, "problem": nested}, acme.mes)
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["makespan"], r.json()["violations"]) == ("OPTIMAL", 103, 0)
    early = {"machines": ["M1"], "jobs": [{"id": "A", "release": 3, "operations": [
        {"id": "a", "machines": {"M1": 5}, "pinned": {"machine": "M1", "start": 0}}]}]}
    for path in ("/v1/scheduling/solve", "/v1/scheduling/jobs"):
        r = _post(client, path, {"time_limit_s": 2, "problem": early}, acme.mes)
        assert r.status_code == 422, r.text
        assert "operation 'a' is pinned at 0, before the job's release 3" in r.json()["error"]["message"]


def test_a_job_whose_process_stopped_is_taken_over_and_solved(db):
    """Jobs lived in the memory of the process that accepted them: after a restart or a crash they stayed
    ``queued`` or ``running`` for good. A process now stamps its jobs; one whose stamp is stale is claimed by one
    live process (a conditional update) and solved again from its stored request. A fresh stamp is left alone."""
    from datetime import timedelta

    from serving.db.tables import SchedulingJob
    from serving.scheduling import Jobs
    from serving.schemas.scheduling import JobRequest
    from serving.tenancy import get_tenant, utcnow

    make_tenant(db, PEPPER, "acme", modules=("scheduling",))
    tid = get_tenant(db, "acme").id
    old = utcnow() - timedelta(minutes=10)
    request = JobRequest(problem=PROBLEM, time_limit_s=2, objective="makespan").model_dump()  # as the route stores it
    with db.session() as s:
        for job_id, status, stamp in (("crashed", "running", old), ("lost", "queued", None), ("alive", "running",
                                                                                           utcnow())):
            s.add(SchedulingJob(id=job_id, tenant_id=tid, status=status, request=json.dumps(request),
                                created_at=old, started_at=old if status == "running" else None, heartbeat_at=stamp))
    one, two = Jobs(db, stale_s=60), Jobs(db, stale_s=60)
    try:
        assert sorted(one.adopt_stale()) == ["crashed", "lost"]
        assert two.adopt_stale() == []  # claimed once: the other live process does not solve them again
        deadline = time.monotonic() + 60
        while {one.get(tid, j)["status"] for j in ("crashed", "lost")} != {"done"}:
            assert time.monotonic() < deadline, [one.get(tid, j) for j in ("crashed", "lost")]
            time.sleep(0.1)
        for j in ("crashed", "lost"):
            assert one.get(tid, j)["result"]["makespan"] == 7
        assert one.get(tid, "alive")["status"] == "running"  # its process is stamping it
        one.beat()  # nothing held any more: no error, nothing stamped
    finally:
        one.close()
        two.close()


def test_a_server_stopped_gracefully_hands_its_jobs_to_another_at_once(db, monkeypatch):
    """A deploy or a scale-in stops a server with SIGTERM: its unfinished jobs stayed ``running`` until their stamp
    went stale (two minutes) before another process took them. They are now handed back on stop."""
    import serving.scheduling as scheduling
    from serving.scheduling import Jobs
    from serving.schemas.scheduling import JobRequest
    from serving.tenancy import get_tenant

    make_tenant(db, PEPPER, "acme", modules=("scheduling",))
    tid = get_tenant(db, "acme").id
    real, release, entered = scheduling.solve_prepared, threading.Event(), threading.Event()

    def solve(*prepared, stop=None, **kw):  # the stopping server's solve is still on when it stops
        if not entered.is_set():
            entered.set()
            release.wait(30)
        return real(*prepared, stop=stop)

    monkeypatch.setattr(scheduling, "solve_prepared", solve)
    stopping, other = Jobs(db, stale_s=600), Jobs(db, stale_s=600)
    try:
        request = JobRequest(problem=PROBLEM, time_limit_s=2, objective="makespan").model_dump()
        job_id = stopping.submit(tid, request, {"scheduling"})["job_id"]
        assert entered.wait(30)
        assert other.adopt_stale() == []  # stamped, and ten minutes from stale
        stopping.close()
        assert stopping.adopt_stale() == []  # a beat of its own after the hand-back takes nothing back
        assert other.adopt_stale() == [job_id]
        deadline = time.monotonic() + 60
        while other.get(tid, job_id)["status"] != "done":
            assert time.monotonic() < deadline, other.get(tid, job_id)
            time.sleep(0.05)
        release.set()  # the stopped server's solve ends: its answer is not written over the other's
        assert other.get(tid, job_id)["result"]["makespan"] == 7
    finally:
        release.set()
        stopping.close()
        other.close()


def test_a_stalled_process_cannot_overwrite_the_job_another_took_over(db, monkeypatch):
    """A process that only stalled past the stale limit (a long pause, a suspended container) used to finish the
    job it had started after another process took it over: its answer replaced the new one, and its late
    ``running`` could turn a finished job back into a running one. Now only the job's owner writes it."""
    from datetime import timedelta

    from sqlalchemy import update

    import serving.scheduling as scheduling
    from serving.db.tables import SchedulingJob
    from serving.scheduling import Jobs
    from serving.schemas.scheduling import JobRequest
    from serving.tenancy import get_tenant, utcnow

    make_tenant(db, PEPPER, "acme", modules=("scheduling",))
    tid = get_tenant(db, "acme").id
    real, release, entered = scheduling.solve_prepared, threading.Event(), threading.Event()
    calls = []

    def solve(*prepared, stop=None, **kw):  # the first solve (the stalled process's) waits, then answers something else
        calls.append(len(calls))
        if len(calls) == 1:
            entered.set()
            release.wait(30)
            return {**real(*prepared, stop=stop), "makespan": -1}
        return real(*prepared, stop=stop)

    monkeypatch.setattr(scheduling, "solve_prepared", solve)
    stalled, live = Jobs(db, stale_s=60), Jobs(db, stale_s=60)
    try:
        request = JobRequest(problem=PROBLEM, time_limit_s=2, objective="makespan").model_dump()  # as the route
        job_id = stalled.submit(tid, request, {"scheduling"})["job_id"]
        assert entered.wait(30)
        with db.session() as s:  # its stamp goes stale, as when the process stops for longer than stale_s
            s.execute(update(SchedulingJob).where(SchedulingJob.id == job_id)
                      .values(heartbeat_at=utcnow() - timedelta(minutes=5)))
        assert live.adopt_stale() == [job_id]
        deadline = time.monotonic() + 60
        while live.get(tid, job_id)["status"] != "done":
            assert time.monotonic() < deadline, live.get(tid, job_id)
            time.sleep(0.05)
        stalled.beat()  # the stalled process wakes: its stamp, its answer are no longer written
        release.set()
        while stalled._held:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        job = live.get(tid, job_id)
        assert (job["status"], job["result"]["makespan"]) == ("done", 7), job
        with db.session() as s:
            assert s.get(SchedulingJob, job_id).owner == live.owner
    finally:
        release.set()
        stalled.close()
        live.close()


def test_answers_match_the_schemas_openapi_documents(client, db):
    """/openapi.json documents the solve, job and usage answers (a client generator types them from it): the real
    answers must validate against those models, field for field."""
    from serving.schemas.platform import UsagePage
    from serving.schemas.scheduling import JobAnswer, SolveAnswer

    acme = make_tenant(db, PEPPER, "acme", modules=("scheduling",))
    solved = _post(client, "/v1/scheduling/solve", {"problem": PROBLEM, "time_limit_s": 2}, acme.mes)
    assert solved.status_code == 200, solved.text
    assert set(SolveAnswer.model_fields) == set(solved.json())  # nothing undocumented, nothing missing
    SolveAnswer.model_validate(solved.json())
    job = _post(client, "/v1/scheduling/jobs", {"problem": PROBLEM, "time_limit_s": 2}, acme.mes)
    assert job.status_code == 202 and set(JobAnswer.model_fields) == set(job.json())
    JobAnswer.model_validate(job.json())
    deadline = time.monotonic() + 60
    while (done := client.get(f"/v1/scheduling/jobs/{job.json()['job_id']}", headers=bearer(acme.mes)).json())[
            "status"] in ("queued", "running"):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert JobAnswer.model_validate(done).result.makespan == solved.json()["makespan"]
    usage = client.get("/v1/usage", headers=bearer(acme.admin)).json()
    page = UsagePage.model_validate(usage)
    assert page.total >= 3 and set(usage) == {f.alias or name for name, f in UsagePage.model_fields.items()}
    assert set(usage["records"][0]) == set(type(page.records[0]).model_fields)


def test_a_risky_machine_is_serviced_before_its_work(client, db):
    """With the window policy a risky machine's window comes first (``service_first``, the default) and its work
    after it, even where the objective would rather run the work first; ``service_first: false`` lets the window go
    where it costs least, and a value that is not a boolean is a 422 naming the field."""
    acme = make_tenant(db, PEPPER, "acme", modules=("scheduling", "maintenance"))
    problem = {**PROBLEM, "failure_risk": {"risks": {"M1": 0.9}, "window_duration": 10}}
    body = {"problem": problem, "time_limit_s": 2, "objective": "tardiness"}
    r = _post(client, "/v1/scheduling/solve", body, acme.mes)
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["violations"] == 0 and doc["maintenance"] == [
        {"machine": "M1", "start": 0, "end": 10, "reason": "failure risk"}]
    assert all(g["start"] >= 10 for g in doc["gantt"] if g["machine"] == "M1" and g["job"]), doc["gantt"]
    # the Gantt's window row says why it is there and the machine's risk (the console's tooltip shows them)
    (row,) = [g for g in doc["gantt"] if g["job"] is None]
    assert (row["reason"], row["risk"], row["start"], row["end"]) == ("failure risk", 0.9, 0, 10)
    problem["failure_risk"]["service_first"] = False
    flexible = _post(client, "/v1/scheduling/solve", body, acme.mes).json()
    assert flexible["violations"] == 0 and flexible["objective_values"]["weighted_tardiness"] < \
        doc["objective_values"]["weighted_tardiness"]
    (w,) = flexible["maintenance"]
    assert min(g["start"] for g in flexible["gantt"] if g["machine"] == "M1" and g["job"]) < w["start"]
    problem["failure_risk"]["service_first"] = "yes"
    bad = _post(client, "/v1/scheduling/solve", body, acme.mes)
    assert bad.status_code == 422 and "failure_risk.service_first must be true or false" in bad.text, bad.text


def test_the_maintenance_module_gives_the_plan_its_machines_failure_risk(client, db, settings, demo_models):
    """Scheduling and maintenance work together: with ``maintenance``, each machine's risk comes from the tenant's
    failure model (its latest readings in the online store, or a record of readings), not from a number the
    planner types; the answer names the model and the risks it used. Without the maintenance module the request's
    ``maintenance`` is ignored, and the answer says so."""
    import pandas as pd

    from models.demo import FILES
    from models.registry import ModelRegistry

    models_dir, demo_dir = demo_models
    acme = make_tenant(db, PEPPER, "acme", modules=("scheduling", "maintenance"))
    ModelRegistry(db, settings.home, "acme").register("failure", "maintenance", models_dir / "failure" / "v1")
    rows = pd.read_csv(demo_dir / FILES["failure"]).drop(columns=["Machine failure", "TWF", "HDF", "PWF", "OSF",
                                                                  "RNF"])
    records = json.loads(rows.head(200).to_json(orient="records"))
    scored = client.post("/v1/maintenance/failure/predict", json={"records": records, "explain": False},
                         headers=bearer(acme.mes)).json()
    p = [r["failure_probability"] for r in scored["predictions"]]
    risky, safe = records[p.index(max(p))], records[p.index(min(p))]
    problem = {k: v for k, v in PROBLEM.items() if k != "failure_risk"}
    problem["failure_risk"] = {"threshold": 0.5, "policy": "penalty", "penalty_per_unit": 1.0}
    body = {"problem": problem, "time_limit_s": 2, "maintenance": {"machines": {"M1": risky, "M2": safe}}}
    r = _post(client, "/v1/scheduling/solve", body, acme.mes)
    assert r.status_code == 200, r.text
    linked = r.json()["linked"]
    assert linked["maintenance"] is True and linked["maintenance_model"]["model"] == "failure@1"
    assert linked["maintenance_model"]["risks"] == {"M1": max(p), "M2": min(p)}
    # a risk the planner gives itself is kept; a background job stores the risks it was solved with
    body["problem"]["failure_risk"]["risks"] = {"M2": 0.75}
    job = _post(client, "/v1/scheduling/jobs", body, acme.mes).json()
    deadline = time.monotonic() + 60
    while (done := client.get(f"/v1/scheduling/jobs/{job['job_id']}", headers=bearer(acme.mes)).json())["status"] \
            != "done":
        assert time.monotonic() < deadline, done
        time.sleep(0.1)
    used = done["result"]["linked"]["maintenance_model"]
    assert used["risks"] == {"M1": max(p), "M2": min(p)} and used["planner_risks_kept"] == ["M2"]
    assert used["threshold_used"] == 0.5  # the planner's, not the model's "threshold" (read as the one used)
    # without a threshold of the planner's, the model's own decides which machines are at risk (not 0.5)
    from serving.scheduling import with_machine_risk

    threshold = json.loads((models_dir / "failure" / "v1" / "manifest.json").read_text())["threshold"]
    assert used["threshold"] == threshold
    planned = with_machine_risk({"problem": {"failure_risk": {"policy": "window"}}}, used)
    assert planned["problem"]["failure_risk"]["threshold"] == threshold
    assert planned["maintenance"]["threshold_used"] == threshold
    own = with_machine_risk({"problem": {"failure_risk": {"threshold": 0.9}}}, used)
    assert own["problem"]["failure_risk"]["threshold"] == 0.9 and own["maintenance"]["threshold_used"] == 0.9
    # entity ids need the view they are read from
    bad = _post(client, "/v1/scheduling/solve", {**body, "maintenance": {"machines": {"M1": "m-01"}}}, acme.mes)
    assert bad.status_code == 422 and '"view"' in bad.json()["error"]["message"]
    # without the maintenance module: planned without the model, and the answer says so
    bravo = make_tenant(db, PEPPER, "bravo", modules=("scheduling",))
    plain = _post(client, "/v1/scheduling/solve", body, bravo.mes).json()["linked"]
    assert plain["maintenance"] is False and "maintenance_model" not in plain
    assert any("'maintenance' module" in note for note in plain["ignored"])


def test_the_energy_module_gives_the_plan_the_plants_forecast_load(client, db, settings, demo_models):
    """Scheduling and energy work together: with ``energy_forecast``, the tenant's energy model forecasts the
    plant's load for the plan's day, and its p50 (as mean kW per energy period of the plan) is the base load the
    peak cap counts; the answer names the model, the origin, the kWh and the tCO2."""
    import pandas as pd

    from models.demo import FILES
    from models.registry import ModelRegistry

    models_dir, demo_dir = demo_models
    acme = make_tenant(db, PEPPER, "acme", modules=("scheduling", "energy"))
    ModelRegistry(db, settings.home, "acme").register("energy", "energy", models_dir / "energy" / "v1")
    records = json.loads(pd.read_csv(demo_dir / FILES["energy"]).head(8 * 96 + 1).to_json(orient="records"))
    start = "2018-03-13"  # the day after the rows: tomorrow's plan, from the history up to tonight
    answer = client.post("/v1/energy/forecast", json={"records": records, "start": start, "horizon": 96},
                         headers=bearer(acme.mes))
    assert answer.status_code == 200, answer.text
    fc = answer.json()["predictions"]
    day = [r for r in fc if r["origin"].startswith(start)]
    assert len(day) == 96
    hourly = [round(sum(r["p50"] for r in day[h * 4:(h + 1) * 4]), 3) for h in range(24)]  # 4 x kWh/4 = mean kW
    # a deep copy: the operations get power below, and PROBLEM is shared (the next parametrisation read 5-kW jobs)
    problem = json.loads(json.dumps({k: v for k, v in PROBLEM.items() if k != "failure_risk"}))
    problem["energy"] = {"period": 60, "prices": [1.0] * 24, "peak_cap_kw": 1e6}
    body = {"problem": problem, "time_limit_s": 2, "energy_forecast": {"records": records, "start": start}}
    r = _post(client, "/v1/scheduling/solve", body, acme.mes)
    assert r.status_code == 200, r.text
    used = r.json()["linked"]["energy_model"]
    assert used["model"] == "energy@1" and used["origin"].startswith(start) and used["period_minutes"] == 60
    assert used["base_load_kw"] == pytest.approx(hourly, abs=2e-3)
    assert used["kwh_p50"] == pytest.approx(sum(r["p50"] for r in day), abs=1e-2) and used["co2_t_p50"] > 0
    # the plan counts that load: the answer's peak is the forecast's while the plan runs (this one, without power,
    # within the first hour), the forecast's own peak is base_load_peak_kw (before, peak_kw was the whole day's,
    # after the plan too); and 5-kW operations under a cap 3 kW above the midnight load wait for an hour with the
    # headroom (or cannot be planned)
    values = r.json()["objective_values"]
    assert values["peak_kw"] == pytest.approx(max(hourly[: -(-r.json()["makespan"] // 60)]), abs=2e-3)
    assert values["base_load_peak_kw"] == pytest.approx(max(hourly), abs=2e-3)
    for job in body["problem"]["jobs"]:
        for op in job["operations"]:
            op["power_kw"] = 5.0
    cap = hourly[0] + 3
    body["problem"]["energy"]["peak_cap_kw"] = cap
    plan = _post(client, "/v1/scheduling/solve", body, acme.mes).json()
    for row in plan["gantt"]:
        hours = range(row["start"] // 60, (row["end"] - 1) // 60 + 1)
        assert all(hourly[h] + 5 <= cap + 1e-6 for h in hours), (row, [hourly[h] for h in hours], cap)
    assert plan["gantt"] or plan["status"] == "INFEASIBLE"
    # the problem needs its energy settings; a tenant without the energy module is planned without the forecast
    no_energy = {**body, "problem": {k: v for k, v in problem.items() if k != "energy"}}
    bad = _post(client, "/v1/scheduling/solve", no_energy, acme.mes)
    assert bad.status_code == 422 and "energy" in bad.json()["error"]["message"]
    bravo = make_tenant(db, PEPPER, "bravo", modules=("scheduling",))
    plain = _post(client, "/v1/scheduling/solve", body, bravo.mes).json()["linked"]
    assert "energy_model" not in plain and any("energy_forecast" in n for n in plain["ignored"])


def test_a_plan_longer_than_a_day_gets_a_forecast_for_each_of_its_days(client, db, settings, demo_models):
    """The energy model forecast the plan's first day only; after it, the last value (the night load at 23:00)
    stood for every later hour, so a day-2 operation at 08:00 was capped against the night load. Each day of the
    plan (up to MAX_FORECAST_DAYS) is now forecast, the next from the rows and the days forecast before it, and an
    answer whose plan runs past the days forecast says so."""
    import pandas as pd

    from models.demo import FILES
    from models.registry import ModelRegistry
    from serving.scheduling import MAX_FORECAST_DAYS, plan_days

    models_dir, demo_dir = demo_models
    acme = make_tenant(db, PEPPER, "acme", modules=("scheduling", "energy"))
    ModelRegistry(db, settings.home, "acme").register("energy", "energy", models_dir / "energy" / "v1")
    records = json.loads(pd.read_csv(demo_dir / FILES["energy"]).head(8 * 96 + 1).to_json(orient="records"))
    start = "2018-03-13"
    energy = {"period": 60, "prices": [1.0] * 24, "peak_cap_kw": 1e6}
    jobs = [{"id": "A", "operations": [{"machines": {"M1": 1500}}, {"machines": {"M1": 1400}}]}]  # minutes
    problem = {"machines": ["M1"], "jobs": jobs, "energy": energy}
    assert plan_days(problem, energy) == 3 and plan_days({**problem, "horizon": 60 * 24 * 30}, energy) == 7
    body = {"problem": problem, "time_limit_s": 2, "energy_forecast": {"records": records, "start": start}}
    r = _post(client, "/v1/scheduling/solve", body, acme.mes)
    assert r.status_code == 200, r.text
    used = r.json()["linked"]["energy_model"]
    assert used["days"] == 3 and len(used["base_load_kw"]) == 72 and "note" not in used
    # the plant's forecast over the plan itself (0 to its makespan of 2,900 minutes), not only the days' totals
    span = sum(used["base_load_kw"][:48]) + used["base_load_kw"][48] * 20 / 60
    assert r.json()["makespan"] == 2900 and used["plan_kwh_p50"] == pytest.approx(span, abs=1e-2)
    assert used["plan_co2_t_p50"] == pytest.approx(span * used["co2_t_p50"] / used["kwh_p50"], rel=1e-4)
    # a minute written as 0.016667 h made a 2-day horizon 2,880.06 minutes: 3 days forecast (planner audit)
    assert plan_days({**problem, "horizon": 2880}, {**energy, "hours_per_unit": 0.016667}) == 2
    assert plan_days({**problem, "horizon": 2881}, energy) == 3
    # day 2 is the model's forecast from the rows and day 1's p50 (not day 1's last hour held)
    day1 = [p for p in client.post("/v1/energy/forecast", json={"records": records, "start": start},
                                   headers=bearer(acme.mes)).json()["predictions"] if p["origin"].startswith(start)]
    def daewoo(stamp: str) -> str:  # the file's clock: an interval ending at midnight is the day's "00:00"
        t = pd.Timestamp(stamp)
        return (t - pd.Timedelta(days=1) if (t.hour, t.minute) == (0, 0) else t).strftime("%d/%m/%Y %H:%M")

    from models.energy.features import parse_dates

    ends = parse_dates(pd.Series([r["date"] for r in records]))
    before = [r for r, t in zip(records, ends, strict=True) if t < pd.Timestamp(day1[0]["timestamp"])]
    more = before + [{"date": daewoo(p["timestamp"]), "Usage_kWh": p["p50"]} for p in day1]
    r2 = client.post("/v1/energy/forecast", json={"records": more, "start": "2018-03-14"}, headers=bearer(acme.mes))
    assert r2.status_code == 200, r2.text
    day2 = [p for p in client.post("/v1/energy/forecast", json={"records": more, "start": "2018-03-14"},
                                   headers=bearer(acme.mes)).json()["predictions"]
            if p["origin"].startswith("2018-03-14")]
    hourly2 = [round(sum(p["p50"] for p in day2[h * 4:(h + 1) * 4]), 3) for h in range(24)]
    assert used["base_load_kw"][24:48] == pytest.approx(hourly2, abs=2e-3)
    assert len(set(used["base_load_kw"][24:48])) > 1 and used["base_load_kw"][24:48] != [used["base_load_kw"][23]] * 24
    # a plan longer than the days forecast gets the forecast week again after them, the same weekday and time (the
    # last forecast value, Sunday night's, had stood for the next Monday and Tuesday: energy manager's audit), and
    # is told so
    long_jobs = [{"id": "A", "operations": [{"machines": {"M1": 6000}} for _ in range(3)]}]  # 12.5 days
    body["problem"] = {"machines": ["M1"], "jobs": long_jobs, "energy": energy}
    answer = _post(client, "/v1/scheduling/solve", body, acme.mes).json()
    used = answer["linked"]["energy_model"]
    assert used["days"] == MAX_FORECAST_DAYS and answer["makespan"] == 18000
    week = MAX_FORECAST_DAYS * 24
    assert used["repeated_week_periods"] == 300 - week and len(used["base_load_kw"]) == 300
    assert used["base_load_kw"][week:] == pytest.approx(used["base_load_kw"][: 300 - week], abs=2e-3)
    assert f"past the {MAX_FORECAST_DAYS} forecast days (to t={week * 60})" in used["note"]
    assert "the forecast week's again" in used["note"]
    # past four weeks, the last value stands, as before
    body["problem"] = {**body["problem"], "jobs": [{"id": "A", "operations": [{"machines": {"M1": 15000}}
                                                                              for _ in range(3)]}]}
    used = _post(client, "/v1/scheduling/solve", body, acme.mes).json()["linked"]["energy_model"]
    assert len(used["base_load_kw"]) == 28 * 24 and "the forecast week repeated (to t=40320)" in used["note"]
    assert [w.split(" read fewer than ")[0] for w in used["warnings"]] == ["origin 2018-03-13"]  # 8 days of rows
    # the meter's rows with most of the day before the plan missing: the plan's day is still start's (another
    # day's load put every period a day off), and the forecast's warning reaches the planner
    gappy = records[: 7 * 96] + records[7 * 96 + 80:]
    body = {"problem": problem, "time_limit_s": 2, "energy_forecast": {"records": gappy, "start": start}}
    used = _post(client, "/v1/scheduling/solve", body, acme.mes).json()["linked"]["energy_model"]
    assert used["origin"].startswith(start) and any("rest mostly on filled values" in w for w in used["warnings"])
    # a start with a time is read as the forecast endpoint reads it: its next 00:00 (it had been a 422)
    body["energy_forecast"] = {"records": records, "start": "2018-03-12T06:00"}
    r = _post(client, "/v1/scheduling/solve", body, acme.mes)
    assert r.status_code == 200 and r.json()["linked"]["energy_model"]["origin"].startswith(start), r.text


def test_a_job_queued_before_multi_day_forecasts_still_solves():
    """A background job stores its request with the forecast load; one queued by the release before multi-day
    forecasts has no "days", and a deploy hands it to the new release: it failed with KeyError: 'days'."""
    from serving.scheduling import prepare, solve_prepared

    load = {"model": "energy@1", "origin": "2018-03-13 00:00:00", "period_minutes": 60.0, "base_load_kw": [5.0] * 24,
            "kwh_p50": 120.0, "co2_t_p50": 0.05, "planner_base_load_kept": False}
    problem = {"machines": ["M1"], "jobs": [{"id": "A", "operations": [{"machines": {"M1": 1500}}]}],
               "energy": {"period": 60, "base_load_kw": [5.0] * 24}}
    request = {"problem": problem, "energy_forecast": load, "time_limit_s": 2, "workers": 1, "seed": 0}
    answer = solve_prepared(*prepare(request, {"scheduling", "energy"}))
    assert answer["makespan"] == 1500 and "past the 1 forecast day(s)" in answer["linked"]["energy_model"]["note"]


def test_a_key_given_twice_in_a_body_is_refused_as_the_cli_refuses_it(client, db):
    """JSON keeps the last of two values for one key without a word: a job with two ``due``s, or a machine given
    two durations, was planned with one of them over HTTP, while ``sfai schedule solve`` refused the file."""
    acme = make_tenant(db, PEPPER, "acme", modules=("scheduling",))
    raw = ('{"problem": {"machines": ["M1"], "jobs": [{"id": "J", "due": 5, "due": 9, "operations": '
           '[{"machines": {"M1": 1}}]}]}, "time_limit_s": 2}')
    r = client.post("/v1/scheduling/solve", content=raw,
                    headers={**bearer(acme.mes), "content-type": "application/json"})
    assert r.status_code == 422 and "'due' twice" in r.json()["error"]["message"], r.text


def test_an_energy_forecast_with_bad_energy_settings_is_a_422(client, db, settings, demo_models):
    from models.registry import ModelRegistry

    models_dir, _ = demo_models
    acme = make_tenant(db, PEPPER, "acme", modules=("scheduling", "energy"))
    ModelRegistry(db, settings.home, "acme").register("energy", "energy", models_dir / "energy" / "v1")
    problem = {k: v for k, v in PROBLEM.items() if k != "failure_risk"}
    for energy in ({"period": "an hour"}, {"period": 60, "hours_per_unit": -1}, {"period": True}):
        body = {"problem": {**problem, "energy": energy}, "time_limit_s": 2,
                "energy_forecast": {"records": [{"date": "01/01/2018 00:15", "Usage_kWh": 1.0}], "start": "2018-01-02"}}
        r = _post(client, "/v1/scheduling/solve", body, acme.mes)
        assert r.status_code == 422 and "energy.period" in r.json()["error"]["message"], r.text
    energy = {"period": 60, "prices": [1.0]}
    for records, start in (([{"nope": 1}], "2018-01-02"), ([{"date": "x", "Usage_kWh": "y"}], "2018-01-02"),
                           ([{"date": "01/01/2018 00:15", "Usage_kWh": 1.0}], "tomorrow")):
        body = {"problem": {**problem, "energy": energy}, "time_limit_s": 2,
                "energy_forecast": {"records": records, "start": start}}
        r = _post(client, "/v1/scheduling/solve", body, acme.mes)
        assert r.status_code == 422, r.text
        assert r.json()["error"]["message"].startswith("energy_forecast: "), r.text  # which part of the request
    # the maintenance module's field, with bad records: 422 (or 404 without a failure model), never a 500
    bravo = make_tenant(db, PEPPER, "bravo", modules=("scheduling", "maintenance"))
    ModelRegistry(db, settings.home, "bravo").register("failure", "maintenance", models_dir / "failure" / "v1")
    for machines in ({"M1": {"Torque [Nm]": "high"}}, {"M1": {}}, {"M1": "m-1"}):
        body = {"problem": problem, "time_limit_s": 2, "maintenance": {"machines": machines, "view": "nope"}}
        r = _post(client, "/v1/scheduling/solve", body, bravo.mes)
        assert r.status_code in (403, 404, 422), r.text
    body = {"problem": problem, "time_limit_s": 2, "maintenance": {"machines": {"M1": {"Torque [Nm]": "high"}}}}
    r = _post(client, "/v1/scheduling/solve", body, bravo.mes)
    assert r.status_code == 422 and r.json()["error"]["message"].startswith("maintenance: "), r.text



def test_an_answer_without_a_plan_says_why(client, db):
    acme = make_tenant(db, PEPPER, "acme", modules=("scheduling",))
    problem = {"machines": ["M1"], "jobs": [
        {"id": "J1", "operations": [{"id": "a", "machines": {"M1": 30}, "pinned": {"machine": "M1", "start": 0}}]},
        {"id": "J2", "operations": [{"id": "a", "machines": {"M1": 30}, "pinned": {"machine": "M1", "start": 10}}]},
    ]}
    r = client.post("/v1/scheduling/solve", json={"problem": problem, "time_limit_s": 2}, headers=bearer(acme.mes))
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["status"] == "INFEASIBLE" and doc["gantt"] == []
    assert [x["type"] for x in doc["no_plan_reasons"]] == ["pinned"]
    assert "overlaps job J2 op a [10,40)" in doc["no_plan_reasons"][0]["message"]


def test_the_maintenance_module_reads_machines_from_the_feature_store(client, db, settings, demo_models, tmp_path):
    """The entity-id path end to end: a machine named by its entity id gets the risk the failure model gives its
    latest readings in the view, the same as ``/v1/maintenance/failure/predict`` with that id."""
    import pandas as pd

    from feature_store.store import FeatureStore
    from models.demo import FILES
    from models.registry import ModelRegistry
    from pipelines.runner import run_pipeline

    models_dir, demo_dir = demo_models
    acme = make_tenant(db, PEPPER, "acme", modules=("scheduling", "maintenance"))
    ModelRegistry(db, settings.home, "acme").register("failure", "maintenance", models_dir / "failure" / "v1")
    src = tmp_path / "ai4i.csv"
    pd.read_csv(demo_dir / FILES["failure"]).head(40).to_csv(src, index=False)
    store = FeatureStore(settings, db, "acme")
    run_pipeline("ai4i", src, store=store)
    store.close()
    ids = [f"ai4i-{p}" for p in pd.read_csv(src)["Product ID"].head(2)]
    direct = client.post("/v1/maintenance/failure/predict", json={"entity_ids": ids, "view": "ai4i_features"},
                         headers=bearer(acme.mes))
    assert direct.status_code == 200, direct.text
    want = {m: r["failure_probability"] for m, r in zip(("M1", "M2"), direct.json()["predictions"], strict=True)}
    problem = {k: v for k, v in PROBLEM.items() if k != "failure_risk"}
    problem["failure_risk"] = {"threshold": 0.5, "policy": "penalty", "penalty_per_unit": 1.0}
    body = {"problem": problem, "time_limit_s": 2,
            "maintenance": {"machines": dict(zip(("M1", "M2"), ids, strict=True)), "view": "ai4i_features"}}
    r = _post(client, "/v1/scheduling/solve", body, acme.mes)
    assert r.status_code == 200, r.text
    used = r.json()["linked"]["maintenance_model"]
    assert used["view"] == "ai4i_features" and used["risks"] == want
    # when each machine's readings were taken, and a warning where they are old (the pipeline stamps the AI4I rows
    # in 2020): the plan had used a reading of years before without a word (integration audit)
    online = client.post("/v1/features/online", json={"entity_ids": ids, "view": "ai4i_features"},
                         headers=bearer(acme.mes))
    assert online.status_code == 200, online.text
    stamps = [row["event_timestamp"] for row in online.json()["rows"]]
    assert used["readings_at"] == dict(zip(("M1", "M2"), stamps, strict=True)) and stamps[0].endswith("Z")
    assert [w.split(":")[0] for w in used["warnings"]] == ["machine M1", "machine M2"], used["warnings"]
    assert f"({ids[0]!r} in ai4i_features) are from {stamps[0]}, " in used["warnings"][0]
    assert " days before this plan, so its risk (" in used["warnings"][0]
    settings.scheduling_risk_max_age_h = 1e9  # within the limit: no warning
    fresh = _post(client, "/v1/scheduling/solve", body, acme.mes).json()["linked"]["maintenance_model"]
    assert "warnings" not in fresh and fresh["readings_at"] == used["readings_at"]
    # an id the view has never seen is a 4xx naming it and the request's field, not a plan without it
    body["maintenance"]["machines"]["M2"] = "ai4i-NOPE"
    bad = _post(client, "/v1/scheduling/solve", body, acme.mes)
    assert bad.status_code == 404 and "ai4i-NOPE" in bad.json()["error"]["message"]
    assert bad.json()["error"]["message"].startswith("maintenance: no online features"), bad.text
    # a tenant holding maintenance without a failure model: a 404 naming the field, the way to train one
    bravo = make_tenant(db, PEPPER, "bravo", modules=("scheduling", "maintenance"))
    none = _post(client, "/v1/scheduling/solve", {**body, "maintenance": {"machines": {"M1": ids[0]},
                                                                          "view": "ai4i_features"}}, bravo.mes)
    assert none.status_code == 404 and none.json()["error"]["message"].startswith(
        "maintenance: no trained 'failure' model for tenant 'bravo'"), none.text


def test_an_operation_running_since_before_the_plan_is_planned_and_a_finished_one_is_a_422(client, db):
    """Before: ``"started": {"machine": "M1", "start": -30}`` was a 422 "operation '0' pinned_start must be >= 0"
    (an internal name, for the normal case of an operation running now)."""
    acme = make_tenant(db, PEPPER, "acme", modules=("scheduling",))
    running = {"machines": ["M1"], "jobs": [{"id": "A", "operations": [
        {"machines": {"M1": 50}, "started": {"machine": "M1", "start": -30}}, {"machines": {"M1": 10}}]}]}
    r = _post(client, "/v1/scheduling/solve", {"problem": running, "time_limit_s": 2}, acme.mes)
    assert r.status_code == 200, r.text
    doc = r.json()
    assert (doc["status"], doc["makespan"], doc["violations"]) == ("OPTIMAL", 30, 0)
    assert [(g["operation"], g["start"], g["end"], g.get("started_at")) for g in doc["gantt"]] == \
        [("0", 0, 20, -30), ("1", 20, 30, None)]
    running["jobs"][0]["operations"][0]["started"]["start"] = -60
    r = _post(client, "/v1/scheduling/solve", {"problem": running, "time_limit_s": 2}, acme.mes)
    assert r.status_code == 422
    message = r.json()["error"]["message"]
    assert "operation '0' is started at -60" in message and "finished" in message and "pinned_start" not in message


def test_the_energy_period_in_minutes_is_shown_without_float_noise(monkeypatch):
    """Before: ``linked.energy_model.period_minutes`` read 60.00120000000001 for hours_per_unit 0.016667."""
    from types import SimpleNamespace

    import pandas as pd

    import serving.predictions as predictions
    from serving.scheduling import plant_load

    day = pd.DataFrame({"origin": ["2018-03-13T00:00:00"] * 96, "p50": [2.0] * 96, "co2_p50": [0.001] * 96})
    monkeypatch.setattr(predictions, "records_frame", lambda kind, records: records)
    monkeypatch.setattr(predictions, "scorer", lambda kind: lambda model, frame, start, horizon: day)
    models = SimpleNamespace(champion=lambda tenant, kind, name, refresh: SimpleNamespace(name="energy", version=1))
    used = plant_load(SimpleNamespace(models=models), "acme", {"records": [], "start": "2018-03-13"},
                      {"period": 60, "hours_per_unit": 0.016667})
    assert used["period_minutes"] == 60.0012 and repr(used["period_minutes"]) == "60.0012"
    assert used["base_load_kw"] == [8.0] * 24  # the load is computed from the exact period


def test_a_retried_job_with_an_idempotency_key_is_the_same_job(client, db, monkeypatch):
    """An MES that timed out after POST /v1/scheduling/jobs and retried made a second job, which took a second
    place in the tenant's queue (MES audit). With an Idempotency-Key a retry gets the first job back (even with the
    queue full), the same key with another request is a 409, another tenant's same key is its own, a concurrent
    call from another process (the unique index) gets the first job, and a key past 24 hours makes a new job."""
    from serving import scheduling as sched
    from serving.db.tables import SchedulingJob

    acme = make_tenant(db, PEPPER, "acme", modules=("scheduling",))
    other = make_tenant(db, PEPPER, "other", modules=("scheduling",))
    url, body = "/v1/scheduling/jobs", {"problem": PROBLEM, "time_limit_s": 2}

    def post(key_header, tenant=acme, payload=body):
        return client.post(url, json=payload, headers={**bearer(tenant.mes), **key_header})

    first = post({"Idempotency-Key": "plan-2026-12-07"})
    assert first.status_code == 202 and "idempotent-replayed" not in first.headers, first.text
    again = post({"Idempotency-Key": "plan-2026-12-07"})
    assert again.status_code == 202 and again.headers["idempotent-replayed"] == "true"
    assert again.json()["job_id"] == first.json()["job_id"]
    with db.session() as s:
        assert s.query(SchedulingJob).filter_by(idempotency_key="plan-2026-12-07").count() == 1
    changed = post({"Idempotency-Key": "plan-2026-12-07"}, payload={**body, "time_limit_s": 3})
    assert changed.status_code == 409 and "was used for another request" in changed.json()["error"]["message"]
    assert post({"Idempotency-Key": "plan-2026-12-07"}, tenant=other).json()["job_id"] != first.json()["job_id"]
    for bad in ("", "x" * 101, "has space", "한글".encode()):
        r = client.post(url, json=body, headers={**bearer(acme.mes), "Idempotency-Key": bad})
        assert r.status_code == 422 and "Idempotency-Key must be" in r.text, (bad, r.text)
    # the queue full: a retry of a job already made is still answered
    monkeypatch.setattr(client.app.state.platform.jobs, "max_active", 0)
    assert post({"Idempotency-Key": "plan-2026-12-07"}).json()["job_id"] == first.json()["job_id"]
    assert post({"Idempotency-Key": "new-one"}).status_code == 429
    monkeypatch.setattr(client.app.state.platform.jobs, "max_active", 4)
    # another process made the key's job between this call's check and its insert: the unique index answers
    jobs = client.app.state.platform.jobs
    real, calls = jobs.replay, []

    def late(tenant_id, key, digest):
        calls.append(key)
        return None if len(calls) <= 2 else real(tenant_id, key, digest)  # the route's and submit's first look

    monkeypatch.setattr(jobs, "replay", late)
    assert post({"Idempotency-Key": "plan-2026-12-07"}).json()["job_id"] == first.json()["job_id"]
    monkeypatch.setattr(jobs, "replay", real)
    # a day on, the key is free again
    monkeypatch.setattr(sched, "IDEMPOTENCY_S", 0)
    later = post({"Idempotency-Key": "plan-2026-12-07"})
    assert later.status_code == 202 and later.json()["job_id"] != first.json()["job_id"]
    # no key: a job each time, as before
    assert post({}).json()["job_id"] != post({}).json()["job_id"]


def test_a_job_queued_when_the_subscription_ends_is_not_started(client, db, monkeypatch):
    """A job still queued when the tenant admin ended the scheduling subscription was started after the end and
    ran to done, its answer readable only by subscribing again (tenant-admin audit). It is not started: it fails
    saying why. The job already running finishes."""
    from serving import tenancy

    started, finish = held_solves(monkeypatch)
    acme = make_tenant(db, PEPPER, "acme", modules=("scheduling",))
    ids = []
    try:
        for name in ("A1", "A2"):
            r = client.post("/v1/scheduling/jobs", json={"problem": {**PROBLEM, "name": name}, "time_limit_s": 1},
                            headers=bearer(acme.mes))
            assert r.status_code == 202, r.text
            ids.append(r.json()["job_id"])
            deadline = time.monotonic() + 30
            while not started and time.monotonic() < deadline:
                time.sleep(0.01)
        tenancy.unsubscribe(db, "acme", "scheduling", by_tenant=True)
        finish.release()
    finally:
        for _ in range(2):
            finish.release()
    jobs, acme_id = client.app.state.platform.jobs, tenancy.get_tenant(db, "acme").id
    deadline = time.monotonic() + 30
    while (second := jobs.get(acme_id, ids[1]))["status"] in ("queued", "running"):
        assert time.monotonic() < deadline, second
        time.sleep(0.02)
    assert started == ["A1"] and second["status"] == "failed" and second["started_at"] is None
    assert second["error"] == "the tenant's scheduling subscription ended before this job started: it was not run"
    assert jobs.get(acme_id, ids[0])["status"] == "done"



def test_background_jobs_without_auth_say_why_not(settings, db):
    """With auth off (development without keys) a background job was a 500: it was stored under tenant 0, which is
    no tenant. It is a 422 saying to solve synchronously or switch auth on; the synchronous solve answers."""
    from fastapi.testclient import TestClient

    from serving.app import create_app

    app = create_app(settings.model_copy(update={"auth_enabled": False}), db=db)
    with TestClient(app) as c:
        r = c.post("/v1/scheduling/jobs", json={"problem": PROBLEM, "time_limit_s": 2})
        assert r.status_code == 422 and "with SFAI_AUTH_ENABLED=false there is none" in r.text, r.text
        assert c.post("/v1/scheduling/solve", json={"problem": PROBLEM, "time_limit_s": 2}).status_code == 200
    app.state.platform.close()


def test_jobs_can_be_listed_and_cancelled(client, db, monkeypatch):
    """There was no way to stop a mistaken job (an hour's solve held one of the tenant's four places for an hour) nor
    to list the jobs (planner's audit). DELETE cancels: a queued job never starts, a running one stops counting and
    its plan is dropped; GET /v1/scheduling/jobs lists the tenant's own jobs, newest first, without plans."""
    started, finish = held_solves(monkeypatch)
    acme = make_tenant(db, PEPPER, "acme", modules=("scheduling",))
    other = make_tenant(db, PEPPER, "other", modules=("scheduling",))
    h = bearer(acme.mes)
    ids = {}
    try:
        for name in ("A1", "A2", "A3", "A4"):
            r = client.post("/v1/scheduling/jobs", json={"problem": {**PROBLEM, "name": name}, "time_limit_s": 5},
                            headers=h)
            assert r.status_code == 202, r.text
            ids[name] = r.json()["job_id"]
            if name == "A1":
                deadline = time.monotonic() + 30
                while not started and time.monotonic() < deadline:
                    time.sleep(0.01)
        # four places taken: a fifth is refused until one is cancelled
        assert client.post("/v1/scheduling/jobs", json={"problem": PROBLEM}, headers=h).status_code == 429
        listed = client.get("/v1/scheduling/jobs", headers=h).json()
        assert [j["job_id"] for j in listed] == [ids[n] for n in ("A4", "A3", "A2", "A1")]
        assert all("result" not in j for j in listed) and listed[-1]["status"] == "running"
        assert client.get("/v1/scheduling/jobs", headers=bearer(other.mes)).json() == []
        assert client.delete(f"/v1/scheduling/jobs/{ids['A2']}", headers=bearer(other.mes)).status_code == 404

        queued = client.delete(f"/v1/scheduling/jobs/{ids['A2']}", headers=h)
        assert queued.status_code == 200 and queued.json()["status"] == "cancelled", queued.text
        assert queued.json()["error"] == "cancelled before it started" and queued.json()["finished_at"].endswith("Z")
        running = client.delete(f"/v1/scheduling/jobs/{ids['A1']}", headers=h).json()
        assert running["status"] == "cancelled"
        assert running["error"] == "cancelled while running: its solve was stopped and its plan dropped"
        # the next job starts now, while A1's solve still runs (one worker per process: a cancelled hour-long job
        # had held every tenant's queue for the hour, security audit)
        deadline = time.monotonic() + 30
        while "A3" not in started and time.monotonic() < deadline:
            time.sleep(0.01)
        assert started == ["A1", "A3"]
        deadline = time.monotonic() + 30
        while not STOPPED and time.monotonic() < deadline:
            time.sleep(0.01)
        assert STOPPED == ["A1"]  # its solve was told to stop (a real one returns within about 0.5 s)
        again = client.delete(f"/v1/scheduling/jobs/{ids['A1']}", headers=h)
        assert again.status_code == 409 and again.json()["error"]["code"] == "job_finished"
        r = client.post("/v1/scheduling/jobs", json={"problem": {**PROBLEM, "name": "A5"}, "time_limit_s": 5},
                        headers=h)
        assert r.status_code == 202, r.text  # the places the cancelled jobs held are free
        ids["A5"] = r.json()["job_id"]
        only = client.get("/v1/scheduling/jobs?status=cancelled", headers=h).json()
        assert {j["job_id"] for j in only} == {ids["A1"], ids["A2"]}
        # paged back by the last job of a page (only the newest 500 could be listed: MES integrator's audit)
        pages, before = [], None
        while True:
            page = client.get("/v1/scheduling/jobs", params={"limit": 2, **({"before": before} if before else {})},
                              headers=h).json()
            pages.append([j["job_id"] for j in page])
            if len(page) < 2:
                break
            before = page[-1]["job_id"]
        assert [i for p in pages for i in p] == [ids[n] for n in ("A5", "A4", "A3", "A2", "A1")]
        r = client.get("/v1/scheduling/jobs", params={"before": ids["A1"]}, headers=bearer(other.mes))
        assert r.status_code == 422 and "not one of this tenant's jobs" in r.text  # another tenant's id: no hint
        for _ in range(4):
            finish.release()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and client.get(f"/v1/scheduling/jobs/{ids['A5']}",
                                                          headers=h).json()["status"] != "done":
            time.sleep(0.02)
    finally:
        for _ in range(5):
            finish.release()
    states = {n: client.get(f"/v1/scheduling/jobs/{i}", headers=h).json() for n, i in ids.items()}
    assert {n: j["status"] for n, j in states.items()} == {
        "A1": "cancelled", "A2": "cancelled", "A3": "done", "A4": "done", "A5": "done"}
    assert states["A1"]["result"] is None  # the running solve finished, and its plan was dropped
    assert started == ["A1", "A3", "A4", "A5"]  # the cancelled queued job never started
    # the solves' threads end with their process (a stopped server had solved on to the job's limit: operator's
    # audit)
    workers = [t for t in threading.enumerate() if t.name.startswith("sfai-schedule")]
    assert workers and all(t.daemon for t in workers)
    assert client.get("/v1/scheduling/jobs?status=bogus", headers=h).status_code == 422


def test_a_job_cancelled_through_another_process_frees_this_ones_worker(client, db, app, monkeypatch):
    """Cancelled through another serving process (``DELETE`` reached it), a running job's solve went on holding this
    process's only worker: its next heartbeat now hands the queue to a new worker."""
    from sqlalchemy import update

    from serving.db.tables import SchedulingJob

    started, finish = held_solves(monkeypatch)
    acme = make_tenant(db, PEPPER, "acme", modules=("scheduling",))
    h = bearer(acme.mes)
    try:
        ids = []
        for name in ("B1", "B2"):
            r = client.post("/v1/scheduling/jobs", json={"problem": {**PROBLEM, "name": name}, "time_limit_s": 5},
                            headers=h)
            ids.append(r.json()["job_id"])
        deadline = time.monotonic() + 30
        while not started and time.monotonic() < deadline:
            time.sleep(0.01)
        with db.session() as s:  # what another process's cancel writes
            s.execute(update(SchedulingJob).where(SchedulingJob.id == ids[0]).values(status="cancelled"))
        time.sleep(0.2)
        assert started == ["B1"]  # not before the heartbeat reads it
        app.state.platform.jobs.beat()
        deadline = time.monotonic() + 30
        while "B2" not in started and time.monotonic() < deadline:
            time.sleep(0.01)
        assert started == ["B1", "B2"]
        # at most MAX_UNWANTED_SOLVES of them run on beside the queue: submit-and-cancel, over and over, would
        # otherwise start one solve after another on the same cores
        from serving.scheduling import MAX_UNWANTED_SOLVES

        pool = app.state.platform.jobs._pool
        # B1's solve was stopped (the event set at the beat), and its worker, replaced, ended with it
        deadline = time.monotonic() + 30
        while (STOPPED != ["B1"] or pool._retiring) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert STOPPED == ["B1"] and MAX_UNWANTED_SOLVES == 2 and not pool._retiring and len(pool._threads) == 1
        for _ in range(3):
            for t in list(pool._threads):
                if t.ident not in pool._retiring:
                    pool.replace(t.ident)
        assert len(pool._retiring) == 2 and len(pool._threads) == 3
    finally:
        for _ in range(3):
            finish.release()


def test_synchronous_solves_are_capped_per_tenant_and_take_turns_for_threads():
    """Security audit: one tenant's 45 synchronous solves at once held the threads every plain route shares, and
    another tenant's calls waited 7 s. A tenant runs at most ``per_tenant`` at once (more: 429 too_many_solves),
    and the process at most ``total``: the rest wait their turn without a thread."""
    import asyncio

    from serving.errors import TooManyRequests
    from serving.scheduling import SyncSolves

    gate = SyncSolves(per_tenant=2, total=2)
    release = threading.Event()
    running, peak = [0], [0]
    lock = threading.Lock()

    def solve(name: str) -> str:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        release.wait(10)
        with lock:
            running[0] -= 1
        return name

    async def main() -> list:
        first = [asyncio.create_task(gate.run(1, solve, f"a{i}")) for i in range(2)]
        await asyncio.sleep(0.2)
        with pytest.raises(TooManyRequests) as e:  # the tenant's third at once
            await gate.run(1, solve, "a2")
        assert e.value.code == "too_many_solves" and e.value.headers["Retry-After"] == "5"
        other = asyncio.create_task(gate.run(2, solve, "b0"))  # another tenant: admitted, waits for a turn
        await asyncio.sleep(0.2)
        assert running[0] == 2 and not other.done()
        release.set()
        return await asyncio.gather(*first, other)

    assert asyncio.run(main()) == ["a0", "a1", "b0"]
    assert peak[0] == 2 and gate._running == {}


def test_a_peak_cap_dropped_for_want_of_the_energy_module_is_a_note(client, db):
    """The planner's own peak cap, without the energy module, was dropped with only linked.ignored saying
    "energy (needs the 'energy' module)": the plan broke a hard limit and the notes, where a client looks, were
    empty. Now a note names the fields dropped and what the plan leaves out."""
    problem = {"machines": ["M1", "M2"], "jobs": [
        {"id": "A", "operations": [{"machines": {"M1": 4}, "power_kw": 30}]},
        {"id": "B", "operations": [{"machines": {"M2": 4}, "power_kw": 30}]}],
        "energy": {"peak_cap_kw": 40, "prices": [1.0], "period": 60}}
    plain = make_tenant(db, PEPPER, "acme", modules=("scheduling",))
    doc = _post(client, "/v1/scheduling/solve", {"time_limit_s": 2, "problem": problem}, plain.mes).json()
    assert doc["makespan"] == 4 and doc["linked"]["ignored"] == ["energy (needs the 'energy' module)"]
    (note,) = doc["notes"]
    assert note["type"] == "needs_module" and note["module"] == "energy"
    assert note["fields"] == ["energy.peak_cap_kw", "energy.prices", "energy.period"]
    assert "energy.peak_cap_kw" in note["message"] and "more than the cap of 40 kW" in note["message"]
    assert "_dropped_notes" not in doc["linked"]
    # with the module the cap holds, and no such note
    held = make_tenant(db, PEPPER, "other", modules=("scheduling", "energy"))
    doc = _post(client, "/v1/scheduling/solve", {"time_limit_s": 2, "problem": problem}, held.mes).json()
    assert doc["makespan"] == 8 and doc["notes"] == []


def test_a_replan_on_the_clock_of_an_order_released_earlier_is_solved(client, db):
    """An MES re-plan from 06:40 with work running since 06:00 and 06:30 and an order released at 05:00 had
    answered 422 "job 'WO-3' release must be >= 0"."""
    acme = make_tenant(db, PEPPER, "acme", modules=("scheduling",))
    problem = {"clock": {"start": "2026-12-08T06:40:00+09:00"}, "machines": ["M1", "M2"], "jobs": [
        {"id": "WO-1", "operations": [{"machines": {"M1": 60},
                                       "started": {"machine": "M1", "start": "2026-12-08T06:00:00+09:00"}}]},
        {"id": "WO-2", "operations": [{"machines": {"M2": 60},
                                       "started": {"machine": "M2", "start": "2026-12-08T06:30:00+09:00"}}]},
        {"id": "WO-3", "release": "2026-12-08T05:00:00+09:00", "operations": [{"machines": {"M1": 30, "M2": 30}}]}]}
    r = _post(client, "/v1/scheduling/solve", {"time_limit_s": 2, "problem": problem}, acme.mes)
    assert r.status_code == 200, r.text
    assert r.json()["makespan"] == 50 and r.json()["clock"]["plan_end"] == "2026-12-08T07:30:00+09:00"
    problem["jobs"][2]["release"] = "2026-12-08"  # a date alone on a clock with an offset: what to send
    r = _post(client, "/v1/scheduling/solve", {"time_limit_s": 2, "problem": problem}, acme.mes)
    assert r.status_code == 422 and "send '2026-12-08T00:00:00+09:00'" in r.json()["error"]["message"], r.text
