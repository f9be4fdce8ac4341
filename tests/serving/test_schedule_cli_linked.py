"""``sfai schedule solve REQUEST.json --tenant T``: a solve request as ``POST /v1/scheduling/solve`` takes it, solved
at the command line with the tenant's modules, champion models and stored features, as the API solves it."""

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.sfai_cli import run_sfai

SECRET = "test-secret-0123456789"
PROBLEM = {
    "machines": ["M1", "M2"], "horizon": 200,
    "jobs": [
        {"id": "J1", "operations": [{"id": "a", "machines": {"M1": 10, "M2": 12}}, {"id": "b", "machines": {"M2": 8}}]},
        {"id": "J2", "operations": [{"id": "a", "machines": {"M1": 6}}, {"id": "b", "machines": {"M1": 9, "M2": 9}}]},
    ],
    # a threshold low enough that the demo model's risks place windows: the risks must reach the plan
    "failure_risk": {"threshold": 0.001, "policy": "window", "window_duration": 5},
}


def sfai(env: dict, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    p = run_sfai(*args, env=env, timeout=300)
    if check:
        assert p.returncode == 0, p.stderr
    return p


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> dict:
    """``sfai demo`` (tenant acme: every module, the demo models) with the demo's AI4I rows (entity ids
    ``ai4i-<Product ID>`` in ai4i_features) and engine cycles (``FD001-u001``... in cmapss_features) ingested, and a
    tenant bravo that holds scheduling only."""
    home = tmp_path_factory.mktemp("schedule-linked")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SFAI_")}
    env.update(SFAI_HOME=str(home), SFAI_DATABASE_URL=f"sqlite:///{home / 'sfai.db'}", SFAI_ENVIRONMENT="test",
               SFAI_SECRET_KEY=SECRET)
    made = json.loads(sfai(env, "demo", "--tenant", "acme", "--json").stdout)
    sfai(env, "ingest", "ai4i", str(home / "demo" / "acme" / "ai4i_demo.csv"), "--tenant", "acme")
    cycles = home / "train_FD001.txt"  # the pipeline reads the C-MAPSS subset from the file's name
    cycles.write_bytes((home / "demo" / "acme" / "cmapss_demo.txt").read_bytes())
    sfai(env, "ingest", "cmapss", str(cycles), "--tenant", "acme")
    sfai(env, "tenant", "create", "bravo", "--ksic", "C22", "--module", "scheduling")
    return {"env": env, "home": home, "key": made["api_key"]}


def write(path: Path, doc: dict) -> Path:
    path.write_text(json.dumps(doc))
    return path


def request(**linked: object) -> dict:
    return {"problem": PROBLEM, "time_limit_s": 5, "workers": 1, **linked}


MAINTENANCE = {"machines": {"M1": "ai4i-M43980", "M2": "ai4i-L49403"}, "view": "ai4i_features"}


def api_solve(demo: dict, body: dict) -> dict:
    """The answer of ``POST /v1/scheduling/solve`` to ``body``, by the demo tenant's key, on the same database."""
    from fastapi.testclient import TestClient

    from serving.app import create_app
    from serving.settings import Settings

    settings = Settings(home=demo["home"], database_url=demo["env"]["SFAI_DATABASE_URL"], environment="test",
                        secret_key=SECRET)
    with TestClient(create_app(settings)) as client:
        r = client.post("/v1/scheduling/solve", json=body, headers={"Authorization": f"Bearer {demo['key']}"})
    assert r.status_code == 200, r.text
    return r.json()


def test_a_plans_maintenance_by_entity_ids_gets_the_risks_the_api_gives(demo, tmp_path):
    body = request(maintenance=MAINTENANCE)
    out = tmp_path / "plan.json"
    p = sfai(demo["env"], "schedule", "solve", str(write(tmp_path / "req.json", body)), "--tenant", "acme",
             "--output", str(out))
    line = json.loads(p.stdout)
    assert len(p.stdout.strip().splitlines()) == 1
    plain = json.loads(sfai(demo["env"], "schedule", "solve", str(write(tmp_path / "p.json", PROBLEM))).stdout)
    assert list(line) == list(plain)  # the printed line keeps its keys
    cli = json.loads(out.read_text())
    used = cli["linked"]["maintenance_model"]
    assert used["model"] == "failure@1" and set(used["risks"]) == {"M1", "M2"}
    # the demo's AI4I rows are stamped in 2020: each machine's stale readings said at the terminal, as the API says
    assert p.stderr.count("note: machine M") == 2 and " days before this plan" in p.stderr

    api = api_solve(demo, body)
    assert cli["linked"] == api["linked"]  # the same model, risks, readings, threshold and warnings
    assert [w["machine"] for w in cli["maintenance"]] == [w["machine"] for w in api["maintenance"]] != []
    assert cli["gantt"] == api["gantt"] and line["makespan"] == api["makespan"]


def test_a_plans_remaining_life_by_entity_ids_flags_the_machines_the_api_flags(demo, tmp_path):
    problem = {**PROBLEM, "failure_risk": {"policy": "window", "window_duration": 5}}
    body = {**request(remaining_life={"machines": {"M1": "FD001-u001", "M2": "FD001-u002"}, "view": "cmapss_features",
                                      "units_per_cycle": 20}), "problem": problem}
    out = tmp_path / "plan.json"
    p = sfai(demo["env"], "schedule", "solve", str(write(tmp_path / "req.json", body)), "--tenant", "acme",
             "--output", str(out))
    cli = json.loads(out.read_text())
    used = cli["linked"]["remaining_life_model"]
    assert used["model"] == "rul@1" and used["flagged"] and p.stderr.count("note: machine M") == 2
    api = api_solve(demo, body)
    assert cli["linked"] == api["linked"] and cli["maintenance"] == api["maintenance"] != []


def test_a_plans_energy_forecast_reads_the_tenants_plant_calendar_as_the_api_does(demo, tmp_path):
    """The demo meter's rows forecast the plant's load for two days from Sunday 2018-05-06; the tenant's plant
    calendar (Monday, a public holiday in Korea that year, a working day at this plant) changes the forecast, at the
    command line as in the API."""
    import pandas as pd

    rows = pd.read_csv(demo["home"] / "demo" / "acme" / "energy_demo.csv").to_dict("records")
    problem = {"machines": ["M1"], "horizon": 2880,
               "jobs": [{"id": "J1", "operations": [{"id": "a", "machines": {"M1": 120}, "power_kw": 5}]}],
               "energy": {"period": 60, "hours_per_unit": 1 / 60, "prices": [1.0] * 48, "peak_cap_kw": 80}}
    body = {"problem": problem, "energy_forecast": {"records": rows, "start": "2018-05-06"}, "time_limit_s": 5,
            "workers": 1}
    req = write(tmp_path / "req.json", body)

    def cli() -> dict:
        out = tmp_path / "plan.json"
        sfai(demo["env"], "schedule", "solve", str(req), "--tenant", "acme", "--output", str(out))
        return json.loads(out.read_text())["linked"]["energy_model"]

    holiday = cli()
    assert holiday["model"] == "energy@1" and holiday["days"] == 2 and len(holiday["base_load_kw"]) == 48
    days = write(tmp_path / "days.json", {"days": [{"date": "2018-05-07", "kind": "working"}]})
    sfai(demo["env"], "energy", "calendar", "set", "--file", str(days), "--tenant", "acme")
    try:
        plant = cli()
        assert max(abs(a - b) for a, b in zip(plant["base_load_kw"][24:], holiday["base_load_kw"][24:],
                                              strict=True)) > 0.2  # Monday forecast as the plant's working day
        assert plant == api_solve(demo, body)["linked"]["energy_model"]
    finally:
        sfai(demo["env"], "energy", "calendar", "set", "--file", str(write(days, {"days": []})), "--tenant", "acme")


def test_a_tenant_without_the_maintenance_module_gets_the_apis_note(demo, tmp_path):
    out = tmp_path / "plan.json"
    p = sfai(demo["env"], "schedule", "solve", str(write(tmp_path / "req.json", request(maintenance=MAINTENANCE))),
             "--tenant", "bravo", "--output", str(out))
    doc = json.loads(out.read_text())
    assert doc["linked"]["ignored"] == ["failure_risk (needs the 'maintenance' module)",
                                        "maintenance (needs the 'maintenance' module)"]
    assert "maintenance_model" not in doc["linked"] and doc["maintenance"] == []
    note = next(n for n in doc["notes"] if n["type"] == "needs_module")
    assert note["module"] == "maintenance" and f"note: {note['message']}\n" in p.stderr
    assert p.stderr.count("note: ") == 1  # linked.ignored, said once by its needs_module note
    assert json.loads(p.stdout)["status"] == "OPTIMAL"


def test_a_plain_problem_with_tenant_is_solved_as_the_tenants_request(demo, tmp_path):
    """--tenant with a plain problem: the tenant's modules apply (bravo's plan places no windows)."""
    p = sfai(demo["env"], "schedule", "solve", str(write(tmp_path / "p.json", PROBLEM)), "--tenant", "bravo",
             "--output", str(tmp_path / "o.json"))
    assert "needs the 'maintenance' module" in json.dumps(json.loads((tmp_path / "o.json").read_text())["linked"])
    assert json.loads(p.stdout)["instance"] == "p" and "note: failure_risk.threshold" in p.stderr


@pytest.mark.parametrize(("linked", "said"), [
    ({"maintenance": {"machines": {"M1": "ai4i-NOPE"}, "view": "ai4i_features"}},
     "error: maintenance: no online features in view 'ai4i_features' for entity 'ai4i-NOPE'"),
    ({"maintenance": {"machines": {"M1": "ai4i-M43980"}}}, 'error: maintenance.machines gives entity ids: "view"'),
    ({"maintenance": {"machines": {}, "view": "ai4i_features"}}, "error: invalid solve request: maintenance.machines"),
    ({"remaining_life": {"machines": {"M1": "u1"}, "view": "cmapss_features"}},
     "error: invalid solve request: remaining_life.units_per_cycle: Field required"),
    ({"energy_forecast": {"start": "2026-12-07"}}, "error: energy_forecast takes the meter's rows as \"records\""),
    ({"maintenance": MAINTENANCE, "extra": 1}, "error: invalid solve request: extra: Extra inputs are not permitted"),
])
def test_bad_linked_input_is_one_error_line(demo, tmp_path, linked, said):
    p = sfai(demo["env"], "schedule", "solve", str(write(tmp_path / "req.json", request(**linked))), "--tenant",
             "acme", check=False)
    assert p.returncode == 1 and p.stdout == "" and "Traceback" not in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1 and p.stderr.startswith(said), p.stderr


def test_an_unknown_tenant_is_one_error_line(demo, tmp_path):
    p = sfai(demo["env"], "schedule", "solve", str(write(tmp_path / "req.json", request())), "--tenant", "nobody",
             check=False)
    assert p.returncode == 1 and len(p.stderr.strip().splitlines()) == 1 and p.stderr.startswith("error: ")
    assert "nobody" in p.stderr
