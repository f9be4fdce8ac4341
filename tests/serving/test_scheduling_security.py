"""Audit findings on the scheduling module: what a plan may cost before it is refused, and the partner modules
(maintenance, energy) that a plan's ``maintenance`` and ``energy_forecast`` fields use, admitted and logged as
calls of those modules."""

import threading
import time
from datetime import timedelta

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from serving import tenancy
from serving.app import create_app
from serving.errors import InvalidInput
from serving.scheduling import plant_load, with_machine_risk
from serving.settings import Settings
from tests.serving.helpers import bearer, make_tenant
from tests.serving.test_api import assert_error
from tests.serving.test_scheduling_api import PEPPER, PROBLEM

ROUTER = "serving.routers.scheduling"
LINKED = "serving.scheduling"  # where run_linked finds the partner models
RISKS = {"model": "failure@1", "view": None, "risks": {"M1": 0.9, "M2": 0.1}}
PLAIN = {k: v for k, v in PROBLEM.items() if k != "failure_risk"}
ENERGY = {"period": 60, "prices": [1.0] * 24, "peak_cap_kw": 1e6}
FORECAST = {"records": [{"date": "01/01/2018 00:15", "Usage_kWh": 1.0}], "start": "2018-01-02"}


def _client(settings, db, **update) -> TestClient:
    return TestClient(create_app(settings.model_copy(update=update), db=db))


def _no_model(*_args):
    raise AssertionError("a partner model ran for a request that is refused")


def _fake_load(_platform, _tenant, _spec, _energy):
    return {"model": "energy@1", "origin": "2018-01-02 00:00:00", "period_minutes": 60.0, "base_load_kw": [1.0] * 24,
            "kwh_p50": 24.0, "co2_t_p50": 0.01}


def _day_frame(kwh: list[float]):
    """What the energy scorer answers for one day: 96 rows of one origin."""
    return pd.DataFrame({"origin": ["2018-01-02 00:00:00"] * len(kwh), "p50": kwh, "co2_p50": [0.0] * len(kwh)})


class _Models:
    def champion(self, *_args, **_kwargs):
        return type("Model", (), {"name": "energy", "version": 1})()


class _Platform:
    models = _Models()


def _old_load(kw: list[float], minutes: float) -> list[float]:
    """The load per period as plant_load computed it before, one period and one step at a time."""
    periods = max(1, int(-(-len(kw) * 15 // minutes)))
    out = []
    for k in range(periods):
        lo, hi = k * minutes, (k + 1) * minutes
        parts = [(min(hi, (i + 1) * 15) - max(lo, i * 15), v) for i, v in enumerate(kw) if i * 15 < hi and
                 (i + 1) * 15 > lo]
        span = sum(w for w, _ in parts)
        out.append(round(sum(w * v for w, v in parts) / span, 3) if span else 0.0)
    return out


@pytest.fixture
def one_day(monkeypatch):
    """plant_load's energy model answers a fixed day (kWh per 15 minutes) without a model or records."""
    kwh = [1.0 + (i % 7) * 0.37 + i / 50 for i in range(96)]
    monkeypatch.setattr("serving.predictions.records_frame", lambda family, rows: None)
    monkeypatch.setattr("serving.predictions.scorer", lambda family: lambda model, frame, **kw: _day_frame(kwh))
    return kwh


# F1 ---------------------------------------------------------------------------------------------------------------
def test_energy_periods_shorter_than_a_second_are_refused_and_short_ones_are_computed_at_once(one_day):
    """Before: one Python loop over every plan period x 96 steps; 1 s per plan unit took 22 s and 1e-9 hours per
    unit never ended. Now a day of more than 100,000 periods is a 422 before the model runs, and a day of a
    period per second (86,400) is computed at once, with the same loads as before."""
    spec = {"records": [], "start": "2018-01-02"}
    outcome: list = []

    def tiny() -> None:
        try:
            plant_load(_Platform(), "acme", spec, {"period": 1, "hours_per_unit": 1e-9})
        except InvalidInput as e:
            outcome.append(e.message)

    worker = threading.Thread(target=tiny, daemon=True)
    worker.start()
    worker.join(20)
    assert outcome and "100,000 periods" in outcome[0] and "at least 0.864 s" in outcome[0], outcome
    for period, hours in ((1e-200, 1e-200), (1, 6e-5)):  # a product below the smallest float; 0.216 s
        with pytest.raises(InvalidInput, match="energy period"):
            plant_load(_Platform(), "acme", spec, {"period": period, "hours_per_unit": hours})
    kw = [v * 4 for v in one_day]
    t0 = time.perf_counter()
    per_second = plant_load(_Platform(), "acme", spec, {"period": 1, "hours_per_unit": 1 / 3600})
    assert time.perf_counter() - t0 < 3
    assert len(per_second["base_load_kw"]) == 86_400  # (before, the 86,401st: 0 kW, from 1440 / (60 / 3600))
    assert min(kw) - 1e-3 <= min(per_second["base_load_kw"]) and max(per_second["base_load_kw"]) <= max(kw) + 1e-3
    assert per_second["base_load_kw"][::900] == pytest.approx(kw, abs=1e-3)
    for period, hours in ((60, 1 / 60), (7, 1 / 60), (1, 0.375), (90, 1 / 60), (1, 30), (3, 1 / 3600)):
        load = plant_load(_Platform(), "acme", spec, {"period": period, "hours_per_unit": hours})["base_load_kw"]
        assert load == pytest.approx(_old_load(kw, period * hours * 60), abs=1.1e-3), (period, hours)


def test_a_sub_second_energy_period_is_a_422_before_the_energy_model_runs(client, db, monkeypatch):
    acme = make_tenant(db, PEPPER, "acme", modules=("scheduling", "energy"))
    monkeypatch.setattr(f"{LINKED}.plant_load", _no_model)
    body = {"problem": {**PLAIN, "energy": {**ENERGY, "period": 1, "hours_per_unit": 1e-9}}, "time_limit_s": 2,
            "energy_forecast": FORECAST}
    err = assert_error(client.post("/v1/scheduling/solve", json=body, headers=bearer(acme.mes)), 422)
    assert "energy period" in err["message"] and "100,000" in err["message"]


# F2 ---------------------------------------------------------------------------------------------------------------
def test_an_exhausted_partner_quota_is_a_429_naming_the_module_and_runs_no_model(client, db, monkeypatch):
    """Before: only the partner's subscription was looked at, so a tenant whose maintenance quota was used up got
    failure probabilities from the maintenance model through scheduling, uncounted."""
    acme = make_tenant(db, PEPPER, "acme", modules=("scheduling",))
    tenancy.subscribe(db, "acme", "maintenance", request_quota=0)
    tenancy.subscribe(db, "acme", "energy", request_quota=0)
    monkeypatch.setattr(f"{LINKED}.machine_risk", _no_model)
    monkeypatch.setattr(f"{LINKED}.plant_load", _no_model)
    risk = {"machines": {"M1": "m-1"}, "view": "v"}
    for field, body in (
        ("maintenance", {"problem": PROBLEM, "time_limit_s": 2, "maintenance": risk}),
        ("energy", {"problem": {**PLAIN, "energy": ENERGY}, "time_limit_s": 2, "energy_forecast": FORECAST}),
    ):
        r = client.post("/v1/scheduling/solve", json=body, headers=bearer(acme.mes))
        err = assert_error(r, 429, "quota_exceeded")
        assert f"'{field}' module" in err["message"] and f"its 0 '{field}' calls" in err["message"]
        assert int(r.headers["retry-after"]) > 0


def test_a_partner_use_is_counted_and_logged_as_a_call_of_that_module(client, db, monkeypatch):
    acme = make_tenant(db, PEPPER, "acme", modules=("scheduling",))
    tenancy.subscribe(db, "acme", "maintenance", request_quota=1)
    monkeypatch.setattr(f"{LINKED}.machine_risk", lambda *_a: RISKS)
    body = {"problem": PROBLEM, "time_limit_s": 2, "maintenance": {"machines": {"M1": "m-1", "M2": "m-2"},
                                                                  "view": "v"}}
    r = client.post("/v1/scheduling/solve", json=body, headers={**bearer(acme.mes), "x-request-id": "plan-1"})
    assert r.status_code == 200, r.text
    assert r.json()["linked"]["maintenance_model"]["risks"] == RISKS["risks"]
    usage = client.get("/v1/usage", headers=bearer(acme.admin)).json()
    logged = {(u["module"], u["status"], u["model_version"]) for u in usage["records"] if u["request_id"] == "plan-1"}
    assert logged == {("scheduling", 200, None), ("maintenance", 200, "failure@1")}
    assert [u["endpoint"] for u in usage["records"] if u["module"] == "maintenance"] == ["/v1/scheduling/solve"]
    assert usage["by_module"]["maintenance"]["calls"] == 1
    # the quota of one call is used: through scheduling and on the module's own endpoints alike
    err = assert_error(client.post("/v1/scheduling/solve", json=body, headers=bearer(acme.mes)), 429, "quota_exceeded")
    assert "'maintenance'" in err["message"]
    assert_error(client.post("/v1/maintenance/failure/predict", json={"records": [{"x": 1}]},
                             headers=bearer(acme.mes)), 429, "quota_exceeded")
    status = client.get("/v1/maintenance/status", headers=bearer(acme.mes)).json()  # says so, uncounted
    assert (status["calls_this_month"], status["quota_remaining"]) == (1, 0)
    # a plan without the field uses no maintenance call
    assert client.post("/v1/scheduling/solve", json={"problem": PROBLEM, "time_limit_s": 2},
                       headers=bearer(acme.mes)).status_code == 200


def test_a_partner_admitted_before_another_refused_it_gets_its_count_back(client, db, monkeypatch):
    acme = make_tenant(db, PEPPER, "acme", modules=("scheduling",))
    tenancy.subscribe(db, "acme", "maintenance", request_quota=1)
    tenancy.subscribe(db, "acme", "energy", request_quota=0)
    monkeypatch.setattr(f"{LINKED}.machine_risk", lambda *_a: RISKS)
    monkeypatch.setattr(f"{LINKED}.plant_load", _no_model)
    maintenance = {"machines": {"M1": "m-1"}, "view": "v"}
    both = {"problem": {**PROBLEM, "energy": ENERGY}, "time_limit_s": 2, "maintenance": maintenance,
            "energy_forecast": FORECAST}
    err = assert_error(client.post("/v1/scheduling/solve", json=both, headers=bearer(acme.mes)), 429)
    assert "'energy' module" in err["message"]
    one = {"problem": PROBLEM, "time_limit_s": 2, "maintenance": maintenance}
    assert client.post("/v1/scheduling/solve", json=one, headers=bearer(acme.mes)).status_code == 200


def test_a_partner_subscription_that_ended_is_not_used_from_the_cache(client, db, monkeypatch):
    """The subscriptions are cached for the auth TTL: one that ended meanwhile still linked the plan to it."""
    acme = make_tenant(db, PEPPER, "acme", modules=("scheduling",))
    tenancy.subscribe(db, "acme", "maintenance", ends_at=tenancy.utcnow() + timedelta(hours=1))
    body = {"problem": PROBLEM, "time_limit_s": 2}
    assert client.post("/v1/scheduling/solve", json=body, headers=bearer(acme.mes)).json()["linked"]["maintenance"]
    later = tenancy.utcnow() + timedelta(hours=2)
    monkeypatch.setattr(f"{ROUTER}.utcnow", lambda: later)
    linked = client.post("/v1/scheduling/solve", json=body, headers=bearer(acme.mes)).json()["linked"]
    assert linked["maintenance"] is False and any("'maintenance' module" in n for n in linked["ignored"])


def test_partner_batches_are_capped_as_the_partner_endpoints_cap_them(settings, db, monkeypatch):
    """PlantLoad.records allowed 20,000 rows where the energy endpoint takes SFAI_MAX_BATCH_RECORDS (10,000)."""
    acme = make_tenant(db, PEPPER, "acme", modules=("scheduling", "maintenance", "energy"))
    monkeypatch.setattr(f"{LINKED}.machine_risk", _no_model)
    monkeypatch.setattr(f"{LINKED}.plant_load", _no_model)
    with _client(settings, db, max_batch_records=1) as c:
        body = {"problem": {**PLAIN, "energy": ENERGY}, "time_limit_s": 2,
                "energy_forecast": {**FORECAST, "records": FORECAST["records"] * 2}}
        err = assert_error(c.post("/v1/scheduling/solve", json=body, headers=bearer(acme.mes)), 422)
        assert "at most 1 energy_forecast records" in err["message"] and "got 2" in err["message"]
        body = {"problem": PROBLEM, "time_limit_s": 2, "maintenance": {"machines": {"M1": "a", "M2": "b"}, "view": "v"}}
        err = assert_error(c.post("/v1/scheduling/jobs", json=body, headers=bearer(acme.mes)), 422)
        assert "at most 1 maintenance machines" in err["message"]


# F3 ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("risk", [5, [1, 2], "ab", True, 0, ""])
def test_a_failure_risk_that_is_not_an_object_is_a_422_before_the_model_runs(client, db, monkeypatch, risk):
    """Before: ``dict(failure_risk or {})`` raised TypeError (a 500) for 5, [1, 2], "ab" or true, and quietly
    replaced 0 or "" by the model's risks."""
    acme = make_tenant(db, PEPPER, "acme", modules=("scheduling", "maintenance"))
    monkeypatch.setattr(f"{LINKED}.machine_risk", _no_model)
    body = {"problem": {**PLAIN, "failure_risk": risk}, "time_limit_s": 2,
            "maintenance": {"machines": {"M1": "m-1"}, "view": "v"}}
    for path in ("/v1/scheduling/solve", "/v1/scheduling/jobs"):
        err = assert_error(client.post(path, json=body, headers=bearer(acme.mes)), 422)
        assert "failure_risk must be an object" in err["message"], err


def test_with_machine_risk_refuses_a_failure_risk_that_is_not_an_object():
    for given in ({"failure_risk": 5}, {"failure_risk": [1, 2]}, {"failure_risk": "ab"}, {"failure_risk": True}):
        with pytest.raises(InvalidInput, match="failure_risk must be an object"):
            with_machine_risk({"problem": given}, RISKS)
    with pytest.raises(InvalidInput, match=r"failure_risk\.risks must be an object"):
        with_machine_risk({"problem": {"failure_risk": {"risks": 5}}}, RISKS)
    used = with_machine_risk({"problem": {"failure_risk": {"risks": {"M2": 0.5}}}}, RISKS)
    assert used["problem"]["failure_risk"]["risks"] == {"M1": 0.9, "M2": 0.5}
    assert used["maintenance"]["planner_risks_kept"] == ["M2"]


# F4 ---------------------------------------------------------------------------------------------------------------
def _plan(operations: int, machines: int = 2, eligible: int = 1) -> dict:
    ids = [f"M{i}" for i in range(machines)]
    return {"machines": ids, "jobs": [{"id": f"J{n}", "operations": [
        {"machines": {ids[(n + k) % machines]: 3 for k in range(eligible)}}]} for n in range(operations)]}


def test_plans_past_the_size_caps_are_refused_before_the_partner_models(settings, db, monkeypatch):
    """Before: no cap; 100,000 one-operation jobs on 100,000 machines ran 51 s with time_limit_s=2."""
    acme = make_tenant(db, PEPPER, "acme", modules=("scheduling", "maintenance"))
    monkeypatch.setattr(f"{LINKED}.machine_risk", _no_model)
    caps = {"scheduling_max_solve_operations": 3, "scheduling_max_operations": 5, "scheduling_max_machines": 3,
            "scheduling_max_alternatives": 6}
    risk = {"machines": {"M0": "m-1"}, "view": "v"}
    with _client(settings, db, **caps) as c:
        def post(path, problem):
            return c.post(path, json={"problem": problem, "time_limit_s": 2, "maintenance": risk},
                          headers=bearer(acme.mes))

        err = assert_error(post("/v1/scheduling/solve", _plan(4)), 422)
        assert "4 operations" in err["message"] and "at most 3" in err["message"]
        assert "background job" in err["message"] and "up to 5" in err["message"]
        err = assert_error(post("/v1/scheduling/solve", _plan(6)), 422)
        assert "6 operations" in err["message"] and "split the plan" in err["message"]
        err = assert_error(post("/v1/scheduling/jobs", _plan(6)), 422)
        assert "at most 5" in err["message"] and "split the plan" in err["message"]
        err = assert_error(post("/v1/scheduling/jobs", _plan(2, machines=4)), 422)
        assert "4 machines" in err["message"] and "at most 3" in err["message"]
        err = assert_error(post("/v1/scheduling/jobs", _plan(4, machines=3, eligible=2)), 422)
        assert "8 eligible machines" in err["message"] and "at most 6" in err["message"]
        # within the caps: planned (without the module's model here)
        monkeypatch.setattr(f"{LINKED}.machine_risk", lambda *_a: {**RISKS, "risks": {"M0": 0.2}})
        assert post("/v1/scheduling/solve", _plan(3, machines=3, eligible=2)).status_code == 200


def test_the_default_caps_refuse_a_large_synchronous_plan_at_once(client, db):
    defaults = {name: f.default for name, f in Settings.model_fields.items() if name.startswith("scheduling_max_")}
    assert defaults["scheduling_max_solve_operations"] == 10_000 and defaults["scheduling_max_operations"] == 20_000
    assert defaults["scheduling_max_machines"] == 2_000 and defaults["scheduling_max_alternatives"] == 200_000
    acme = make_tenant(db, PEPPER, "acme", modules=("scheduling",))
    t0 = time.perf_counter()
    r = client.post("/v1/scheduling/solve", json={"problem": _plan(10_001), "time_limit_s": 2},
                    headers=bearer(acme.mes))
    assert "10,001 operations" in assert_error(r, 422)["message"] and time.perf_counter() - t0 < 5


# F5 ---------------------------------------------------------------------------------------------------------------
def test_a_full_job_queue_is_refused_before_the_partner_models_run(client, app, db, monkeypatch):
    """Before: the partner models ran (seconds of CPU, unmetered) and only then did submit say the queue was full."""
    acme = make_tenant(db, PEPPER, "acme", modules=("scheduling", "maintenance"))
    ran = []
    monkeypatch.setattr(f"{LINKED}.machine_risk", lambda *a: ran.append(a) or RISKS)
    monkeypatch.setattr(app.state.platform.jobs, "active", lambda _tenant_id: 4)
    body = {"problem": PROBLEM, "time_limit_s": 2, "maintenance": {"machines": {"M1": "m-1"}, "view": "v"}}
    assert_error(client.post("/v1/scheduling/jobs", json=body, headers=bearer(acme.mes)), 429, "too_many_jobs")
    assert ran == []
