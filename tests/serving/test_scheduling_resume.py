"""A background job stopped by a graceful server stop (SIGTERM: a deploy, a scale-in) keeps its best plan so far
and the time it spent (``scheduling_jobs.saved_plan``, migration 0018); the process that takes it next solves on
from that plan for the time left, and its answer is never worse. Before, the job was solved again from scratch
with its whole time limit, and the plan found was lost."""

from __future__ import annotations

import json
import logging
import threading
import time
from datetime import timedelta

from sqlalchemy import inspect, text

from serving.db.engine import make_engine, normalize_url
from tests.serving.helpers import make_tenant
from tests.serving.test_migrations import _upgrade
from tests.serving.test_scheduling_stop import _shop

PEPPER = "test-secret-0123456789"


def _tenant(db) -> int:
    from serving.tenancy import get_tenant

    make_tenant(db, PEPPER, "acme", modules=("scheduling",))
    return get_tenant(db, "acme").id


def _request(problem: dict, limit: float) -> dict:
    from serving.schemas.scheduling import JobRequest

    return JobRequest(problem=problem, time_limit_s=limit, workers=1, objective="makespan").model_dump()


def _wait(jobs, tid: int, job_id: str, states: tuple[str, ...], timeout: float = 40) -> dict:
    deadline = time.monotonic() + timeout
    while (job := jobs.get(tid, job_id))["status"] not in states:
        assert time.monotonic() < deadline, job
        time.sleep(0.05)
    return job


def _saved_column(db, job_id: str) -> str | None:
    from serving.db.tables import SchedulingJob

    with db.session() as s:
        return s.get(SchedulingJob, job_id).saved_plan


def test_a_job_stopped_mid_solve_is_resumed_from_its_saved_plan_for_the_time_left(db):
    from serving.scheduling import Jobs
    from serving.schemas.scheduling import JobAnswer

    tid = _tenant(db)
    limit, stop_at = 10.0, 4.0
    stopping, other = Jobs(db, stale_s=600), Jobs(db, stale_s=600)
    try:
        job_id = stopping.submit(tid, _request(_shop(), limit), {"scheduling"})["job_id"]
        _wait(stopping, tid, job_id, ("running",))
        time.sleep(stop_at)
        stopping.close()  # SIGTERM's path: the solve is stopped, its job handed back with its best plan
        handed = other.get(tid, job_id)
        JobAnswer.model_validate(handed)
        saved = handed["saved_plan"]
        assert handed["status"] == "running" and saved is not None, handed
        assert saved["objective"] == saved["makespan"] > 0 and saved["operations"] == 450
        assert saved["times_stopped"] == 1 and stop_at - 1 < saved["spent_s"] < stop_at + 2, saved
        assert saved["time_limit_s"] == limit

        assert other.adopt_stale() == [job_id]
        t0 = time.monotonic()
        done = _wait(other, tid, job_id, ("done",))
        resumed_wall = time.monotonic() - t0
        result = done["result"]
        JobAnswer.model_validate(done)
        r = result["resumed"]
        assert r["times_stopped"] == 1 and r["objective"] == saved["objective"], r
        assert r["spent_before_s"] == saved["spent_s"]
        assert abs(r["time_left_s"] - (limit - saved["spent_s"])) < 1e-3
        assert result["makespan"] <= saved["makespan"] and result["violations"] == 0
        # the time spent on the job in all is at most about its limit, not the limit again after the stop (the
        # resumed solve may end sooner: CP-SAT, hinted with the saved plan, often proves it optimal at once)
        assert result["wall_s"] <= r["time_left_s"] + 1.0, result["wall_s"]
        assert resumed_wall < limit - stop_at + 3, resumed_wall
        assert r["total_s"] == round(r["spent_before_s"] + result["wall_s"], 3) and r["total_s"] < limit + 2, r
        assert done["saved_plan"] is None and _saved_column(db, job_id) is None  # done: nothing left to resume
    finally:
        stopping.close()
        other.close()


def test_a_killed_processs_job_goes_on_from_the_plan_its_heartbeat_kept(db):
    """A process killed mid-solve (SIGKILL, the OOM killer, a lost host) hands nothing back: before, its job was
    taken over when stale and solved from scratch with its whole limit. Now the solver hands each better plan
    between its stages to the job, and the heartbeat writes it (``saved_plan``, shown while the job runs); the
    process that takes the stale job over goes on from it."""
    from sqlalchemy import update

    from serving.db.tables import SchedulingJob
    from serving.scheduling import Jobs
    from serving.tenancy import utcnow

    tid = _tenant(db)
    limit = 12.0
    killed, other = Jobs(db, heartbeat_s=0.3, stale_s=600), Jobs(db, stale_s=60)
    try:
        killed.start()
        job_id = killed.submit(tid, _request(_shop(), limit), {"scheduling"})["job_id"]
        deadline = time.monotonic() + 30
        while (job := killed.get(tid, job_id))["saved_plan"] is None:  # the dispatching plan, then better ones
            assert job["status"] in ("queued", "running") and time.monotonic() < deadline, job
            time.sleep(0.05)
        kept = job["saved_plan"]
        assert job["status"] == "running" and kept["operations"] == 450 and kept["times_stopped"] == 1, kept
        assert kept["objective"] == kept["makespan"] > 0 and 0 <= kept["spent_s"] < limit, kept
        # the crash: the process stops stamping and writing (its owner gone), its solve with it
        with db.session() as s:
            s.execute(update(SchedulingJob).where(SchedulingJob.id == job_id)
                      .values(owner=None, heartbeat_at=utcnow() - timedelta(minutes=10)))
        with killed._lock:
            killed._stops[job_id].set()
        kept = other.get(tid, job_id)["saved_plan"]  # the last one its heartbeat wrote
        assert other.adopt_stale() == [job_id]
        done = _wait(other, tid, job_id, ("done",))
        result = done["result"]
        r = result["resumed"]
        assert r is not None and r["objective"] == kept["objective"] and r["spent_before_s"] == kept["spent_s"], r
        assert abs(r["time_left_s"] - max(5.0, limit - kept["spent_s"])) < 1e-3, r
        assert result["makespan"] <= kept["makespan"] and result["violations"] == 0
        assert done["saved_plan"] is None and _saved_column(db, job_id) is None  # done: nothing left to resume
    finally:
        killed.close()
        other.close()


def test_a_job_solved_in_one_go_writes_its_checkpoints_and_leaves_none(db):
    """The checkpoints of a job that ends normally: written while it runs, dropped with its answer."""
    from serving.scheduling import Jobs

    tid = _tenant(db)
    jobs = Jobs(db, heartbeat_s=0.2, stale_s=600)
    try:
        jobs.start()
        job_id = jobs.submit(tid, _request(_shop(), 3.0), {"scheduling"})["job_id"]
        seen = []
        while (job := jobs.get(tid, job_id))["status"] != "done":
            if job["saved_plan"] is not None:
                seen.append(job["saved_plan"]["objective"])
            time.sleep(0.05)
        assert seen and seen == sorted(seen, reverse=True), seen  # only ever better
        assert job["result"]["makespan"] <= seen[-1] and job["result"]["resumed"] is None
        assert job["saved_plan"] is None and _saved_column(db, job_id) is None
    finally:
        jobs.close()


def test_a_job_stopped_before_its_first_plan_is_solved_from_scratch(db, monkeypatch):
    """No incumbent when stopped (the stop came before the solve had a plan): nothing is saved, and the next process
    solves the job from scratch with its whole time limit, as before."""
    import serving.scheduling as scheduling
    from serving.scheduling import Jobs

    tid = _tenant(db)
    real, entered = scheduling.solve_prepared, threading.Event()

    def solve(*prepared, stop=None, **kw):  # the stopping server's solve has found nothing yet when it stops
        if not entered.is_set():
            entered.set()
            assert stop.wait(30)
        return real(*prepared, stop=stop, **kw)

    monkeypatch.setattr(scheduling, "solve_prepared", solve)
    stopping, other = Jobs(db, stale_s=600), Jobs(db, stale_s=600)
    try:
        job_id = stopping.submit(tid, _request(_shop(jobs=10, machines=5), 3.0), {"scheduling"})["job_id"]
        assert entered.wait(30)
        stopping.close()
        assert _saved_column(db, job_id) is None and other.get(tid, job_id)["saved_plan"] is None
        assert other.adopt_stale() == [job_id]
        result = _wait(other, tid, job_id, ("done",))["result"]
        assert result["resumed"] is None and result["makespan"] > 0 and result["violations"] == 0
    finally:
        stopping.close()
        other.close()


def _stale_job(db, tid: int, job_id: str, request: dict, saved: str | None) -> None:
    from serving.db.tables import SchedulingJob
    from serving.tenancy import utcnow

    old = utcnow() - timedelta(minutes=10)
    with db.session() as s:
        s.add(SchedulingJob(id=job_id, tenant_id=tid, status="running", request=json.dumps(request),
                            created_at=old, started_at=old, heartbeat_at=old, saved_plan=saved))


def test_a_saved_plan_that_no_longer_fits_is_ignored_with_a_warning(db, caplog):
    """A corrupted column, or a plan of machines the problem does not have: a log warning, and the job is solved
    from scratch (its whole time limit), never a failed job."""
    from serving.scheduling import Jobs, SavedPlan

    tid = _tenant(db)
    problem = _shop(jobs=6, machines=4)
    good = SavedPlan(objective="makespan", score=(1.0,), objective_values={"makespan": 1}, makespan=1,
                     assignments=(("J0", "0", "nowhere", 0, 1),), maintenance=(), time_limit_s=2.0, spent_s=1.0,
                     cpu_s=1.0, stops=1, saved_at="2026-12-07T00:00:00Z")
    _stale_job(db, tid, "a" * 32, _request(problem, 2.0), "{not json")
    _stale_job(db, tid, "b" * 32, _request(problem, 2.0), good.to_json())  # readable, but no plan of this problem
    jobs = Jobs(db, stale_s=60)
    try:
        assert jobs.get(tid, "a" * 32)["saved_plan"] is None  # unreadable: not shown
        assert jobs.get(tid, "b" * 32)["saved_plan"]["objective"] == 1.0
        with caplog.at_level(logging.WARNING, logger="sfai.scheduling"):
            assert sorted(jobs.adopt_stale()) == ["a" * 32, "b" * 32]
            results = [_wait(jobs, tid, j, ("done", "failed")) for j in ("a" * 32, "b" * 32)]
        for job in results:
            assert job["status"] == "done" and job["result"]["resumed"] is None, job
            assert job["result"]["violations"] == 0 and job["result"]["makespan"] > 1
        assert "saved plan is unreadable" in caplog.text and "no plan of this problem" in caplog.text
    finally:
        jobs.close()


def test_a_cancelled_job_drops_its_saved_plan(db):
    from serving.scheduling import Jobs, SavedPlan

    tid = _tenant(db)
    plan = SavedPlan(objective="makespan", score=(9.0,), objective_values={"makespan": 9}, makespan=9,
                     assignments=(("J0", "0", "M0", 0, 9),), maintenance=(), time_limit_s=60.0, spent_s=40.0,
                     cpu_s=70.0, stops=1, saved_at="2026-12-07T00:00:00Z")
    _stale_job(db, tid, "d" * 32, _request(_shop(jobs=2, machines=2), 60.0), plan.to_json())
    jobs = Jobs(db)
    try:
        shown = jobs.get(tid, "d" * 32)["saved_plan"]
        assert shown == {"objective": 9.0, "score": [9.0], "objective_values": {"makespan": 9}, "makespan": 9,
                         "operations": 1, "time_limit_s": 60.0, "spent_s": 40.0, "cpu_s": 70.0, "times_stopped": 1,
                         "saved_at": "2026-12-07T00:00:00Z"}
        cancelled = jobs.cancel(tid, "d" * 32)
        assert cancelled["status"] == "cancelled" and cancelled["saved_plan"] is None
        assert _saved_column(db, "d" * 32) is None
    finally:
        jobs.close()


def test_a_resumed_job_whose_time_left_finds_nothing_better_keeps_its_saved_plan(db, monkeypatch):
    """The answer of a resumed job is never worse than the plan it was saved with: here the resumed solve is stopped
    again at once (another graceful stop), and the plan is saved again with both stops' time; once solved, the
    answer is at most the saved objective."""
    import serving.scheduling as scheduling
    from serving.scheduling import Jobs

    tid = _tenant(db)
    first = Jobs(db, stale_s=600)
    try:
        job_id = first.submit(tid, _request(_shop(), 10.0), {"scheduling"})["job_id"]
        _wait(first, tid, job_id, ("running",))
        time.sleep(1.5)
        first.close()
    finally:
        first.close()
    saved = first.get(tid, job_id)["saved_plan"]
    assert saved is not None and saved["times_stopped"] == 1
    real, entered = scheduling.solve_prepared, threading.Event()

    def solve(*prepared, stop=None, **kw):  # the second process is stopped too before its solve starts
        entered.set()
        assert stop.wait(30)
        return real(*prepared, stop=stop, **kw)

    monkeypatch.setattr(scheduling, "solve_prepared", solve)
    second = Jobs(db, stale_s=600)
    try:
        assert second.adopt_stale() == [job_id]
        assert entered.wait(30)
        second.close()
    finally:
        second.close()
    again = second.get(tid, job_id)["saved_plan"]
    assert again["times_stopped"] == 2 and again["objective"] <= saved["objective"], again
    assert again["spent_s"] > saved["spent_s"]
    monkeypatch.setattr(scheduling, "solve_prepared", real)
    third = Jobs(db, stale_s=600)
    try:
        assert third.adopt_stale() == [job_id]
        result = _wait(third, tid, job_id, ("done",))["result"]
    finally:
        third.close()
    assert result["resumed"]["times_stopped"] == 2 and result["makespan"] <= again["objective"]
    assert abs(result["resumed"]["time_left_s"] - max(scheduling.MIN_RESUME_S, 10.0 - again["spent_s"])) < 1e-3


def test_0018_adds_the_saved_plan_column_and_older_jobs_read_as_before(settings):
    from serving.db import Database
    from serving.scheduling import Jobs

    url = normalize_url(settings.resolved_database_url)
    engine = make_engine(url)
    _upgrade(engine, "0017")
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO tenants (id, name, display_name, ksic_code, created_at) "
                          "VALUES (1, 'acme', 'Acme', 'C29', :ts)"), {"ts": "2026-12-01 00:00:00"})
        conn.execute(text("INSERT INTO scheduling_jobs (id, tenant_id, status, request, result, created_at) VALUES "
                          "(:id, 1, 'done', '{}', '{\"makespan\": 7}', :ts)"),
                     {"id": "c" * 32, "ts": "2026-12-01 00:00:00"})
    assert "saved_plan" not in {c["name"] for c in inspect(engine).get_columns("scheduling_jobs")}
    _upgrade(engine, "0018")
    assert "saved_plan" in {c["name"] for c in inspect(engine).get_columns("scheduling_jobs")}
    with engine.connect() as conn:
        assert conn.execute(text("SELECT saved_plan FROM scheduling_jobs")).scalar_one() is None
    engine.dispose()
    db = Database(url)
    jobs = Jobs(db)
    try:
        job = jobs.get(1, "c" * 32)
        assert job["status"] == "done" and job["result"] == {"makespan": 7} and job["saved_plan"] is None
    finally:
        jobs.close()
        db.dispose()


def test_a_server_stopped_with_sigterm_keeps_the_running_jobs_plan_for_the_next(sfai_env, tmp_path):
    """The real path: ``sfai serve`` stopped with SIGTERM mid-solve keeps the job's plan on the job, and another
    process goes on from it (its answer's ``resumed``)."""
    import signal

    import httpx

    from serving.db import Database
    from serving.scheduling import Jobs
    from tests.ray_head import stop_group
    from tests.serving.helpers import bearer
    from tests.serving.test_serve import _start

    db = Database(sfai_env["SFAI_DATABASE_URL"])
    acme = make_tenant(db, sfai_env["SFAI_SECRET_KEY"], "acme", modules=("scheduling",))
    log = tmp_path / "serve.log"
    p, base = _start(sfai_env, log)
    try:
        body = {"problem": _shop(), "time_limit_s": 8, "workers": 1, "objective": "makespan"}
        job_id = httpx.post(base + "/v1/scheduling/jobs", json=body, headers=bearer(acme.mes), timeout=30).json()[
            "job_id"]
        deadline = time.monotonic() + 60
        while True:
            with db.engine.connect() as conn:
                if conn.execute(text("SELECT status FROM scheduling_jobs")).scalar() == "running":
                    break
            assert time.monotonic() < deadline
            time.sleep(0.1)
        time.sleep(2.0)
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=30)
    finally:
        stop_group(p)
    assert p.returncode == 0, log.read_text()[-3000:]
    from serving.tenancy import get_tenant

    tid = get_tenant(db, "acme").id
    jobs = Jobs(db, stale_s=600)
    try:
        saved = jobs.get(tid, job_id)["saved_plan"]
        assert saved is not None and saved["times_stopped"] == 1 and 1.5 < saved["spent_s"] < 5, saved
        assert jobs.adopt_stale() == [job_id]
        result = _wait(jobs, tid, job_id, ("done",))["result"]
    finally:
        jobs.close()
        db.dispose()
    assert result["resumed"]["objective"] == saved["objective"] and result["makespan"] <= saved["makespan"]
    assert result["resumed"]["total_s"] < 8 + 2


def test_a_server_killed_with_sigkill_hands_its_job_to_another_server_with_its_checkpoint(sfai_env, tmp_path):
    """The real crash path: ``sfai serve`` killed with SIGKILL (the OOM killer, a lost host) mid-solve hands nothing
    back, but its heartbeat had written the job's checkpoint. A second ``sfai serve`` on the same database takes the
    job over once it is stale (here after 2 s: ``SFAI_SCHEDULING_STALE_S``) and goes on from the checkpoint for the
    time left, so the job's answer says ``resumed`` and is never worse than the checkpoint."""
    import os
    import signal

    import httpx

    from serving.db import Database
    from tests.ray_head import stop_group
    from tests.serving.helpers import bearer
    from tests.serving.test_serve import _start

    env = {**sfai_env, "SFAI_SCHEDULING_HEARTBEAT_S": "0.5", "SFAI_SCHEDULING_STALE_S": "2"}
    db = Database(env["SFAI_DATABASE_URL"])
    acme = make_tenant(db, env["SFAI_SECRET_KEY"], "acme", modules=("scheduling",))
    limit = 10
    first, base = _start(env, tmp_path / "first.log")
    second = None
    try:
        body = {"problem": _shop(), "time_limit_s": limit, "workers": 1, "objective": "makespan"}
        job_id = httpx.post(base + "/v1/scheduling/jobs", json=body, headers=bearer(acme.mes), timeout=30).json()[
            "job_id"]
        deadline = time.monotonic() + 60
        while (saved := _saved_column(db, job_id)) is None:  # the first checkpoint, written by a heartbeat
            assert time.monotonic() < deadline and first.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
            time.sleep(0.1)
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=30)
        checkpoint = json.loads(_saved_column(db, job_id))  # the last one the killed process wrote
        assert json.loads(saved)["score"] >= checkpoint["score"]
        with db.engine.connect() as conn:
            assert conn.execute(text("SELECT status FROM scheduling_jobs WHERE id = :id"), {"id": job_id}).scalar() \
                == "running"  # nobody said it stopped
        second, base2 = _start(env, tmp_path / "second.log")
        deadline = time.monotonic() + 60
        while (job := httpx.get(f"{base2}/v1/scheduling/jobs/{job_id}", headers=bearer(acme.mes),
                                timeout=30).json())["status"] != "done":
            assert time.monotonic() < deadline, job
            time.sleep(0.2)
    finally:
        stop_group(first)
        if second is not None:
            stop_group(second)
        db.dispose()
    result = job["result"]
    assert result["resumed"] is not None, result["stats"]
    assert result["resumed"]["objective"] == checkpoint["score"][0]
    assert result["resumed"]["times_stopped"] == 1
    assert result["makespan"] <= checkpoint["makespan"]
    assert result["resumed"]["total_s"] < limit + 3  # the time left, not the whole limit again
    assert job["saved_plan"] is None
