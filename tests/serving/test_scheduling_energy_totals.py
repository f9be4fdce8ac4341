"""Scheduling with the energy module's forecast: what an energy manager reads in ``linked.energy_model`` (audit,
2026-12): the plan's own energy and CO2 (base load and planned operations), and a note where the peak cap is checked
on hourly means rather than on KEPCO's 15-minute demand."""

import json

import pandas as pd
import pytest

from tests.serving.helpers import bearer, make_tenant

PEPPER = "test-secret-0123456789"
START = "2018-03-13"  # the day after the demo rows: tomorrow's plan
# minutes (hours_per_unit 1/60); one machine per operation, so each operation's energy is fixed: 15 + 5 + 16 kWh
JOBS = [
    {"id": "J1", "operations": [{"id": "a", "machines": {"M1": 90}, "power_kw": 10.0},
                                {"id": "b", "machines": {"M2": 60}, "power_kw": 5.0}]},
    {"id": "J2", "operations": [{"id": "a", "machines": {"M2": 120}, "power_kw": 8.0},
                                {"id": "b", "machines": {"M1": 30}}]},
]
OPERATIONS_KWH = 10.0 * 1.5 + 5.0 * 1.0 + 8.0 * 2.0


@pytest.fixture
def planner(client, db, settings, demo_models):
    """(post(problem energy settings, records=None) -> the answer, the demo plant's 8 days of records)."""
    from models.demo import FILES
    from models.registry import ModelRegistry

    models_dir, demo_dir = demo_models
    acme = make_tenant(db, PEPPER, "acme", modules=("scheduling", "energy"))
    ModelRegistry(db, settings.home, "acme").register("energy", "energy", models_dir / "energy" / "v1")
    records = json.loads(pd.read_csv(demo_dir / FILES["energy"]).head(8 * 96 + 1).to_json(orient="records"))

    def post(energy: dict, rows: list | None = None, quantile: str | None = None, **problem) -> dict:
        body = {"problem": {"machines": ["M1", "M2"], "jobs": JOBS, "energy": energy, **problem}, "time_limit_s": 2,
                "energy_forecast": {"records": rows or records, "start": START,
                                    **({"quantile": quantile} if quantile else {})}}
        r = client.post("/v1/scheduling/solve", content=json.dumps(body),
                        headers={**bearer(acme.mes), "content-type": "application/json"})
        assert r.status_code == 200, r.text
        return r.json()

    return post, records


def test_the_plan_reports_its_operations_energy_and_its_total_co2(planner):
    """plan_kwh_p50 / plan_co2_t_p50 are the plant's forecast base load over the plan only: a manager could not report
    the plan's emissions. The answer now adds the planned operations' kWh (power_kw x hours on the machine) and the
    plan's total, base load and operations, with its tCO2 at the forecast's emission factor."""
    post, _ = planner
    answer = post({"period": 60, "prices": [1.0] * 24})
    used = answer["linked"]["energy_model"]
    assert used["plan_operations_kwh"] == pytest.approx(OPERATIONS_KWH, abs=1e-3)
    assert used["plan_total_kwh_p50"] == pytest.approx(used["plan_kwh_p50"] + OPERATIONS_KWH, abs=1e-3)
    factor = used["co2_t_p50"] / used["kwh_p50"]
    assert used["plan_total_co2_t_p50"] == pytest.approx(used["plan_total_kwh_p50"] * factor, abs=1e-6)
    assert used["plan_total_co2_t_p50"] > used["plan_co2_t_p50"] > 0
    # the same energy as the solver's own: with a flat tariff of 1 per kWh, the energy cost is the operations' kWh
    assert answer["objective_values"]["energy_cost"] == pytest.approx(OPERATIONS_KWH, abs=1e-3)


def test_a_peak_cap_on_hourly_periods_says_it_is_not_a_15_minute_cap(planner):
    """With period 60 the load is each hour's mean: a plan's 15-minute peak (what KEPCO bills) can pass the cap. The
    answer says so where a cap is set on periods longer than 15 minutes, and not otherwise."""
    post, _ = planner
    hourly = post({"period": 60, "prices": [1.0] * 24, "peak_cap_kw": 1e6})["linked"]["energy_model"]
    note = hourly["peak_cap_note"]
    assert "checked on each 60-minute period's mean forecast load" in note and "15-minute demand" in note
    assert "energy.period of 15 minutes" in note
    # hours_per_unit 0.016667 (the docs' minute) makes a period of 60.0012 minutes: said as 60
    rounded = post({"period": 60, "prices": [1.0] * 24, "peak_cap_kw": 1e6,
                    "hours_per_unit": 0.016667})["linked"]["energy_model"]["peak_cap_note"]
    assert "checked on each 60-minute period's" in rounded, rounded
    quarter = post({"period": 15, "prices": [1.0] * 96, "peak_cap_kw": 1e6})["linked"]["energy_model"]
    assert quarter["period_minutes"] == 15 and "peak_cap_note" not in quarter
    uncapped = post({"period": 60, "prices": [1.0] * 24})["linked"]["energy_model"]
    assert "peak_cap_note" not in uncapped


def test_utc_meter_rows_plan_as_korea_time(planner):
    """The meter's rows stamped in UTC are the plant's Korea time: a two-day plan's forecast load is the same as from
    the same rows stamped +09:00 (or as the file's own dd/mm/yyyy), each later day forecast from the first."""
    from models.energy.features import parse_dates

    post, records = planner
    local = parse_dates(pd.Series([r["date"] for r in records]))
    kst = [{**r, "date": t.isoformat() + "+09:00"} for r, t in zip(records, local, strict=True)]
    utc = [{**r, "date": t.tz_localize("Asia/Seoul").tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%SZ")}
           for r, t in zip(records, local, strict=True)]
    energy = {"period": 60, "prices": [1.0] * 24}
    loads = [post(energy, rows, horizon=2 * 24 * 60)["linked"]["energy_model"] for rows in (records, kst, utc)]
    assert loads[0]["days"] == 2 and len(loads[0]["base_load_kw"]) == 48
    assert loads[1]["base_load_kw"] == loads[0]["base_load_kw"] == loads[2]["base_load_kw"]
    assert loads[2]["origin"] == loads[0]["origin"] == f"{START} 00:00:00"


def test_the_cap_can_count_the_forecasts_p90(planner, client):
    """The base load under the cap was always the p50: on half the intervals the plant draws more, so a plan capped
    at the p50 broke the cap on the real day (an energy manager's audit: 6 of the day's 15-minute periods, 511 kW
    under a 450 kW cap). ``quantile: "p90"`` makes the cap count the p90; the plan's kWh and CO2 stay the p50's."""
    post, records = planner
    energy = {"period": 15, "hours_per_unit": 1 / 60, "prices": [1.0], "peak_cap_kw": 1e6}
    median, high = post(energy), post(energy, quantile="p90")
    m, h = median["linked"]["energy_model"], high["linked"]["energy_model"]
    assert m["quantile"] == "p50" and h["quantile"] == "p90" and "base_load_kw_p50" not in m
    assert h["base_load_kw_p50"] == m["base_load_kw"]
    assert all(p90 >= p50 for p90, p50 in zip(h["base_load_kw"], m["base_load_kw"], strict=True))
    assert sum(h["base_load_kw"]) > sum(m["base_load_kw"])
    assert h["plan_kwh_p50"] == m["plan_kwh_p50"] and h["kwh_p50"] == m["kwh_p50"]
    assert high["objective_values"]["base_load_peak_kw"] == pytest.approx(max(h["base_load_kw"]), abs=2e-3)


def test_a_base_load_above_the_cap_is_said():
    from optimization.io import problem_from_dict
    from optimization.service import make_params, solve_document

    p = problem_from_dict({"machines": ["M1"], "jobs": [{"id": "J1", "operations": [
        {"machines": {"M1": 30}, "power_kw": 10}]}], "energy": {
        "period": 60, "base_load_kw": [500, 10, 460], "peak_cap_kw": 450, "prices": [1]}})
    _, doc = solve_document(p, make_params(p, time_limit_s=2))
    (note,) = [n for n in doc["notes"] if n["type"] == "base_load_over_cap"]
    assert note["periods"] == [0, 2] and note["count"] == 2
    assert note["message"].startswith("the base load alone is above energy.peak_cap_kw (450 kW) in 2 periods (and "
                                      "every time after the last period), from t=0 (highest 500 kW at t=0)")
    assert doc["gantt"][0]["start"] == 60  # the operation runs in the one period under the cap
    fine = problem_from_dict({**json.loads(json.dumps({"machines": ["M1"], "jobs": [{"id": "J1", "operations": [
        {"machines": {"M1": 30}}]}]})), "energy": {"base_load_kw": [10], "peak_cap_kw": 450}})
    assert not [n for n in fine.notes() if n["type"] == "base_load_over_cap"]


def test_an_operation_the_base_load_leaves_no_room_for_is_proven_planless():
    """The base load under the cap leaves a powered operation a one-hour stretch, and nothing after the forecast:
    the answer was UNKNOWN with "give the solve more time" (energy manager's audit). It is now proven without a
    search, naming the operation, and more time is not suggested."""
    from optimization.io import problem_from_dict
    from optimization.service import make_params, solve_document

    def doc(duration: int) -> dict:
        p = problem_from_dict({"machines": ["M1"], "jobs": [{"id": "J1", "operations": [
            {"id": "melt", "machines": {"M1": duration}, "power_kw": 10}]}], "energy": {
            "period": 60, "base_load_kw": [500, 10, 460], "peak_cap_kw": 450, "prices": [1]}})
        return solve_document(p, make_params(p, time_limit_s=2))[1]

    answer = doc(90)
    assert not answer["gantt"] and answer["status"] in ("INFEASIBLE", "UNKNOWN")
    reasons = {r["type"]: r for r in answer["no_plan_reasons"]}
    assert "time_limit" not in reasons, reasons
    assert reasons["peak_power"]["message"].startswith(
        "job 'J1' operation 'melt' (10 kW for 90 time units at the least) fits under the peak power cap of 450 kW "
        "nowhere: with the base load, the cap leaves it stretches of at most 60 time units")
    assert doc(60)["gantt"][0]["start"] == 60  # an hour fits in the hour with room
    # room after the last period, cut by the horizon: no power proof (the horizon's own checks and the relaxed
    # solves say what stands in the way; "the last base load leaves it none" had been said of 40 kW under 140)
    from optimization.diagnose import proofs

    cut = problem_from_dict({"machines": ["M1"], "horizon": 100, "jobs": [{"id": "J1", "operations": [
        {"id": "melt", "machines": {"M1": 90}, "power_kw": 10}]}], "energy": {
        "period": 60, "base_load_kw": [500, 10, 10], "peak_cap_kw": 450, "prices": [1]}})
    assert not [r for r in proofs(cut) if r["type"] == "peak_power"]
