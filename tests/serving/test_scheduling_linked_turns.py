"""The linked models of a plan (``maintenance``, ``remaining_life``, ``energy_forecast``) run after the solve's place
or the job's room is taken, in the tenant's scoring turn, and the energy forecast reads the tenant's plant calendar.

Security audit: 10 synchronous solves at once, each with an energy forecast, ran all 10 forecasts, 8 of them then
refused with ``too_many_solves``, whose 429 gave the energy module's quota back: the forecasts ran for free, outside
the tenant's scoring turns."""

import json
import threading

import pytest
from fastapi.testclient import TestClient

from serving import tenancy
from serving.app import create_app
from tests.serving.helpers import bearer, make_tenant
from tests.serving.test_api import assert_error
from tests.serving.test_scheduling_api import PEPPER, PROBLEM

LINKED = "serving.scheduling"  # where run_linked finds the partner models
RISKS = {"model": "failure@1", "view": None, "risks": {"M1": 0.9, "M2": 0.1}}
MAINTENANCE = {"machines": {"M1": "m-1", "M2": "m-2"}, "view": "v"}


def _client(settings, db, **update) -> TestClient:
    return TestClient(create_app(settings.model_copy(update=update), db=db))


def _held_model(monkeypatch):
    """machine_risk replaced by a fake whose first call waits until the test lets it go: (calls, first started,
    let go)."""
    calls, started, go = [], threading.Event(), threading.Event()

    def risk(*_a):
        calls.append(1)
        if len(calls) == 1:
            started.set()
            assert go.wait(20), "the test never let the first model finish"
        return RISKS

    monkeypatch.setattr(f"{LINKED}.machine_risk", risk)
    return calls, started, go


def _in_thread(fn):  # noqa: ANN001, ANN202
    out: list = []
    t = threading.Thread(target=lambda: out.append(fn()))
    t.start()
    return t, out


def test_a_solve_refused_with_too_many_solves_runs_no_linked_model_and_is_not_counted(settings, db, monkeypatch):
    acme = make_tenant(db, PEPPER, "acme", modules=("scheduling",))
    tenancy.subscribe(db, "acme", "maintenance", request_quota=5)
    calls, started, go = _held_model(monkeypatch)
    body = {"problem": PROBLEM, "time_limit_s": 2, "maintenance": MAINTENANCE}
    with _client(settings, db, scheduling_max_sync_per_tenant=1) as c:
        first, out = _in_thread(lambda: c.post("/v1/scheduling/solve", json=body, headers=bearer(acme.mes)))
        try:
            assert started.wait(20)  # the first solve holds the tenant's one place, its model running
            err = assert_error(c.post("/v1/scheduling/solve", json=body, headers=bearer(acme.mes)), 429,
                               "too_many_solves")
            assert "1 synchronous solves" in err["message"]
            assert calls == [1], "the refused solve ran its linked model before it was refused"
        finally:
            go.set()
            first.join(30)
        assert out[0].status_code == 200, out[0].text
        status = c.get("/v1/maintenance/status", headers=bearer(acme.mes)).json()
        assert status["calls_this_month"] == 1  # the solve that ran its model; the refused one took nothing
        # the place is given back: the next solve runs its model and solves
        assert c.post("/v1/scheduling/solve", json=body, headers=bearer(acme.mes)).status_code == 200
        assert calls == [1, 1]


def test_a_job_past_the_queues_room_runs_no_linked_model(settings, db, monkeypatch):
    """Two job calls at once against a queue of one: both had passed the room check, run their models, and the
    second was refused by the submit."""
    acme = make_tenant(db, PEPPER, "acme", modules=("scheduling", "maintenance"))
    calls, started, go = _held_model(monkeypatch)
    monkeypatch.setattr("serving.scheduling.solve_prepared", lambda *a, **k: {"linked": {}})
    body = {"problem": PROBLEM, "time_limit_s": 2, "maintenance": MAINTENANCE}
    with _client(settings, db, scheduling_max_active_jobs=1) as c:
        first, out = _in_thread(lambda: c.post("/v1/scheduling/jobs", json=body, headers=bearer(acme.mes)))
        try:
            assert started.wait(20)  # the first call holds the queue's one place while its model runs
            err = assert_error(c.post("/v1/scheduling/jobs", json=body, headers=bearer(acme.mes)), 429,
                               "too_many_jobs")
            assert "1 more being prepared" in err["message"]
            assert calls == [1], "the refused job ran its linked model before it was refused"
        finally:
            go.set()
            first.join(30)
        assert out[0].status_code == 202, out[0].text
        # the place held while preparing is given back once the job is queued (the job itself holds the room now)
        platform = c.app.state.platform
        assert platform.jobs._pending == {}


def test_the_linked_models_run_in_the_tenants_scoring_turn(settings, db, monkeypatch):
    """As a direct prediction is scored: a tenant's plans take no more of the worker threads than its predictions
    may, and past its waiting predictions a plan is refused before its model runs."""
    acme = make_tenant(db, PEPPER, "acme", modules=("scheduling", "maintenance"))
    tenant_id = tenancy.get_tenant(db, "acme").id
    seen = []
    with _client(settings, db, max_scoring_per_tenant=1, max_scoring_waiting_per_tenant=0) as c:
        turns = c.app.state.platform.turns
        monkeypatch.setattr(f"{LINKED}.machine_risk", lambda *_a: seen.append(turns.busy(tenant_id)) or RISKS)
        body = {"problem": PROBLEM, "time_limit_s": 2, "maintenance": MAINTENANCE}
        r = c.post("/v1/scheduling/solve", json=body, headers=bearer(acme.mes))
        assert r.status_code == 200, r.text
        assert seen == [1]  # the model ran in one of the tenant's turns
        # the tenant's one turn taken (a prediction scoring): the plan is refused, its model not run
        gate_taken, gate_free = threading.Event(), threading.Event()

        async def hold():
            await turns.run(tenant_id, lambda: (gate_taken.set(), gate_free.wait(20)))

        held = threading.Thread(target=lambda: c.portal.call(hold))
        held.start()
        try:
            assert gate_taken.wait(20)
            err = assert_error(c.post("/v1/scheduling/solve", json=body, headers=bearer(acme.mes)), 429)
            assert "predictions of this tenant (direct, or a plan's linked models) are being scored" in err["message"]
            assert seen == [1]
        finally:
            gate_free.set()
            held.join(30)
        status = c.get("/v1/maintenance/status", headers=bearer(acme.mes)).json()
        assert status["calls_this_month"] == 1  # the refused plan gave its maintenance call back


def test_the_plans_energy_forecast_reads_the_tenants_plant_calendar(client, db, settings, demo_models):
    """A plan's forecast day that is a day off in the tenant's plant calendar gets the day-off load, as the energy
    forecast route gives it (the plan had been forecast on the public calendar alone)."""
    import pandas as pd

    from models.demo import FILES
    from models.registry import ModelRegistry

    models_dir, demo_dir = demo_models
    acme = make_tenant(db, PEPPER, "acme", modules=("scheduling", "energy"))
    ModelRegistry(db, settings.home, "acme").register("energy", "energy", models_dir / "energy" / "v1")
    records = json.loads(pd.read_csv(demo_dir / FILES["energy"]).head(8 * 96 + 1).to_json(orient="records"))
    start = "2018-03-13"  # a Tuesday, a working day on the public calendar

    def hourly() -> list[float]:
        fc = client.post("/v1/energy/forecast", json={"records": records, "start": start, "horizon": 96},
                         headers=bearer(acme.mes))
        assert fc.status_code == 200, fc.text
        day = [p for p in fc.json()["predictions"] if p["origin"].startswith(start)]
        assert len(day) == 96
        return [sum(p["p50"] for p in day[h * 4:(h + 1) * 4]) for h in range(24)]

    problem = {k: v for k, v in PROBLEM.items() if k != "failure_risk"}
    problem["energy"] = {"period": 60, "prices": [1.0] * 24, "peak_cap_kw": 1e6}
    body = {"problem": problem, "time_limit_s": 2, "energy_forecast": {"records": records, "start": start}}

    def plan_load() -> list[float]:
        r = client.post("/v1/scheduling/solve", json=body, headers=bearer(acme.mes))
        assert r.status_code == 200, r.text
        return r.json()["linked"]["energy_model"]["base_load_kw"]

    working = plan_load()
    assert working == pytest.approx(hourly(), abs=2e-3)
    put = client.put("/v1/energy/calendar", json={"days": [{"date": start, "kind": "day_off"}]},
                     headers=bearer(acme.admin))
    assert put.status_code == 200, put.text
    day_off, route = plan_load(), hourly()
    assert day_off == pytest.approx(route, abs=2e-3)  # the energy route's day-off forecast for the same day
    assert max(abs(a - b) for a, b in zip(day_off, working, strict=True)) > 0.2  # and not the working day's
    # another tenant's calendar is not read
    bravo = make_tenant(db, PEPPER, "bravo", modules=("scheduling", "energy"))
    ModelRegistry(db, settings.home, "bravo").register("energy", "energy", models_dir / "energy" / "v1")
    r = client.post("/v1/scheduling/solve", json=body, headers=bearer(bravo.mes))
    assert r.json()["linked"]["energy_model"]["base_load_kw"] == pytest.approx(working, abs=2e-3)


def test_a_job_queued_is_counted_once_as_its_place_is_given_back(db):
    """A call's place (reserve) and its job (submit) are one in the queue's count: the place is given back in the
    same turn of the lock as the job is queued. Between the two, a second call had been counted the job and the
    place, and refused with one job in a queue of two (review)."""
    from serving.scheduling import Jobs
    from serving.schemas.scheduling import JobRequest

    tenant_id = tenancy.get_tenant(db, make_tenant(db, PEPPER, "acme", modules=("scheduling",)).name).id
    jobs = Jobs(db, max_active=2)
    try:
        release = jobs.reserve(tenant_id)
        jobs.submit(tenant_id, JobRequest(problem=PROBLEM, time_limit_s=1).model_dump(), {"scheduling"},
                    reserved=release)
        second = jobs.reserve(tenant_id)  # one job, no place held: room for one more
        with pytest.raises(Exception, match="too_many_jobs|at most 2"):
            jobs.reserve(tenant_id)  # the job and the second call's place fill the queue of two
        second()
        release()  # given back already: a second release changes nothing
        assert jobs._pending == {}
    finally:
        jobs.close()
