"""A plan with a clock through the API: times sent as ISO dates and times, rows answered on the clock, and the
energy module's forecast load taken from the clock's start (a shift starting at 06:00), not from the day's 00:00."""

import json

import pytest

from tests.serving.helpers import bearer, make_tenant

PEPPER = "test-secret-0123456789"
PROBLEM = {
    "machines": ["M1", "M2"],
    "jobs": [
        {"id": "J1", "due": "2018-03-13T08:00", "operations": [{"id": "a", "machines": {"M1": 30}},
                                                                 {"id": "b", "machines": {"M2": 20}}]},
        {"id": "J2", "release": "2018-03-13T06:30", "operations": [{"id": "a", "machines": {"M2": 40}}]},
    ],
}


@pytest.fixture
def acme(db, settings, demo_models):
    from models.registry import ModelRegistry

    models_dir, _ = demo_models
    tenant = make_tenant(db, PEPPER, "acme", modules=("scheduling", "energy"))
    ModelRegistry(db, settings.home, "acme").register("energy", "energy", models_dir / "energy" / "v1")
    return tenant


@pytest.fixture
def meter(demo_models) -> list[dict]:
    import pandas as pd

    from models.demo import FILES

    _, demo_dir = demo_models
    return json.loads(pd.read_csv(demo_dir / FILES["energy"]).head(8 * 96 + 1).to_json(orient="records"))


def _solve(client, key, problem, **extra):
    body = {"problem": problem, "time_limit_s": 2, **extra}
    return client.post("/v1/scheduling/solve", content=json.dumps(body),
                       headers={**bearer(key), "content-type": "application/json"})


def _steps(client, key, meter, day="2018-03-13") -> list[float]:
    """The forecast day's mean kW of each 15 minutes, from the energy module's own endpoint."""
    answer = client.post("/v1/energy/forecast", json={"records": meter, "start": day, "horizon": 96},
                         headers=bearer(key))
    assert answer.status_code == 200, answer.text
    rows = [r for r in answer.json()["predictions"] if r["origin"].startswith(day)]
    return [r["p50"] * 4 for r in rows]  # kWh in 15 minutes -> mean kW


def test_a_plan_with_a_clock_answers_its_rows_on_the_clock(client, acme):
    problem = {**PROBLEM, "clock": {"start": "2018-03-13T06:00"}}
    r = _solve(client, acme.mes, problem)
    assert r.status_code == 200, r.text
    plan = r.json()
    assert plan["clock"]["start"] == "2018-03-13T06:00:00" and plan["clock"]["minutes_per_unit"] == 1
    j2 = next(row for row in plan["gantt"] if row["job"] == "J2")
    assert j2["start"] >= 30 and j2["clock"]["start"] >= "2018-03-13T06:30:00"  # its release, read on the clock
    # a time the clock cannot read is a 422 naming it, as any bad problem is
    bad = _solve(client, acme.mes, {**problem, "jobs": [{**PROBLEM["jobs"][0], "due": "2018-03-13T08:00+09:00"}]})
    assert bad.status_code == 422 and "job 'J1' due" in bad.json()["error"]["message"]
    plain = _solve(client, acme.mes, PROBLEM)  # ISO times without a clock: refused, saying what to add
    assert plain.status_code == 422 and '"clock"' in plain.json()["error"]["message"]


def test_the_forecast_load_starts_at_the_clocks_time_of_day(client, acme, meter):
    """Before: time 0 was always energy_forecast.start's 00:00, so a plan starting its shift at 06:00 was capped
    against the night's load. With a clock, the load is the forecast's from 06:00 on (and the day after 24:00)."""
    steps = _steps(client, acme.mes, meter)
    hourly = [sum(steps[h * 4:(h + 1) * 4]) / 4 for h in range(24)]
    energy = {"period": 60, "prices": [1.0] * 24, "peak_cap_kw": 1e6}
    problem = {**PROBLEM, "clock": {"start": "2018-03-13T06:00"}, "energy": energy, "horizon": 24 * 60}
    r = _solve(client, acme.mes, problem, energy_forecast={"records": meter})
    assert r.status_code == 200, r.text
    used = r.json()["linked"]["energy_model"]
    assert used["plan_start"] == "2018-03-13T06:00:00" and used["offset_minutes"] == 360
    assert used["days"] == 2  # 06:00 plus 24 hours ends the next morning
    assert used["base_load_kw"][:18] == pytest.approx(hourly[6:], abs=2e-3)
    assert len(used["base_load_kw"]) == 42  # 18 hours of the first day, 24 of the second
    # the same instant with a UTC offset: the meter's dates have none, so they are read as Korea's clock
    utc = _solve(client, acme.mes, {**problem, "clock": {"start": "2018-03-12T21:00:00Z"},
                                    "jobs": [{**j, "due": 120} if "due" in j else {**j, "release": 30}
                                             for j in PROBLEM["jobs"]]},
                 energy_forecast={"records": meter})
    assert utc.status_code == 200, utc.text
    used_utc = utc.json()["linked"]["energy_model"]
    assert used_utc["base_load_kw"] == used["base_load_kw"]
    assert any("Korea" in w for w in used_utc["warnings"])
    # a quarter-hour clock: energy.hours_per_unit is the clock's, and the periods are 4 units of 15 minutes
    quarter = {**problem, "clock": {"start": "2018-03-13T06:30", "minutes_per_unit": 15},
               "energy": {**energy, "period": 4}, "horizon": 8}
    q = _solve(client, acme.mes, quarter, energy_forecast={"records": meter})
    assert q.status_code == 200, q.text
    qused = q.json()["linked"]["energy_model"]
    assert qused["period_minutes"] == 60 and qused["offset_minutes"] == 390 and qused["days"] == 1
    # 06:30-07:30: the forecast's 15-minute steps 26 to 29
    assert qused["base_load_kw"][0] == pytest.approx(sum(steps[26:30]) / 4, abs=2e-3)
    assert qused["base_load_kw"][1] == pytest.approx(sum(steps[30:34]) / 4, abs=2e-3)


def test_energy_forecast_start_must_be_the_clocks_day(client, acme, meter):
    energy = {"period": 60, "prices": [1.0] * 24}
    problem = {**PROBLEM, "clock": {"start": "2018-03-13T06:00"}, "energy": energy}
    r = _solve(client, acme.mes, problem, energy_forecast={"records": meter, "start": "2018-03-14"})
    assert r.status_code == 422
    assert "energy_forecast.start (2018-03-14) is not the day of the plan's clock.start" in r.json()["error"]["message"]
    same = _solve(client, acme.mes, problem, energy_forecast={"records": meter, "start": "2018-03-13"})
    assert same.status_code == 200, same.text
    ancient = {**problem, "clock": {"start": "0001-01-01T00:00+09:00"}, "jobs": PROBLEM["jobs"][1:]}
    r = _solve(client, acme.mes, {**ancient, "jobs": [{"id": "J1", "operations": [{"machines": {"M1": 3}}]}]},
               energy_forecast={"records": meter})
    assert r.status_code == 422 and "outside the dates an energy forecast reads" in r.json()["error"]["message"]
    no_day = {**PROBLEM, "jobs": [{"id": "J1", "operations": [{"machines": {"M1": 3}}]}], "energy": energy}
    r = _solve(client, acme.mes, no_day, energy_forecast={"records": meter})
    assert r.status_code == 422 and 'energy_forecast needs "start"' in r.json()["error"]["message"]


def test_a_long_plan_from_a_clock_after_midnight_gets_the_forecast_week_again(client, acme, meter):
    """The forecast week was repeated only for plans starting at 00:00: from 06:00, a 12.5-day plan had the last
    value from day 7 on (review). The week is now repeated on the forecast's own 15-minute steps, whatever the
    clock's time of day or the plan's period."""
    energy = {"period": 60, "prices": [1.0] * 24, "peak_cap_kw": 1e6}
    jobs = [{"id": "A", "operations": [{"machines": {"M1": 6000}} for _ in range(3)]}]  # 12.5 days
    for start, period, hours in (("2018-03-13T06:00", 60, 1.0), ("2018-03-13T06:00", 15, 0.25)):
        problem = {"machines": ["M1"], "jobs": jobs, "clock": {"start": start},
                   "energy": {**energy, "period": period}}
        r = _solve(client, acme.mes, problem, energy_forecast={"records": meter})
        assert r.status_code == 200, r.text
        used = r.json()["linked"]["energy_model"]
        load, per_day = used["base_load_kw"], int(24 / hours)
        assert len(load) * period >= 18000 and used["repeated_week_periods"] > 0  # the whole plan covered
        assert "last value stands" not in used.get("note", ""), used.get("note")
        # a week later: the same weekday and time
        assert load[7 * per_day:7 * per_day + 48] == pytest.approx(load[:48], abs=2e-3)
