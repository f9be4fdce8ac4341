"""The console's own endpoint (``GET /v1/console/samples``) and the static files behind ``/``."""

from __future__ import annotations

from models.demo import FILES, ai4i_rows
from serving.routers.console import ENDPOINTS
from tests.serving.helpers import bearer, make_tenant


def test_console_page_and_static_files(client):
    r = client.get("/")
    assert r.status_code == 200 and "text/html" in r.headers["content-type"]
    for name in ("/static/console.js", "/static/gantt.js", "/static/i18n.js", "/static/console.css",
                 "/static/sample-plan.json"):
        assert client.get(name).status_code == 200, name
    assert "http://" not in client.get("/static/console.js").text  # no outside hosts
    assert client.get("/static/nope.js").status_code == 404


def test_samples_need_a_key(client):
    r = client.get("/v1/console/samples")
    assert r.status_code == 401
    assert r.json()["error"]["code"]


def test_samples_come_from_the_callers_own_demo_files(client, db, settings):
    acme = make_tenant(db, settings.secret_key, "acme", modules=("maintenance",))
    bravo = make_tenant(db, settings.secret_key, "bravo", modules=("quality",))
    directory = settings.home / "demo" / "acme"
    directory.mkdir(parents=True)
    ai4i_rows(n=60).to_csv(directory / FILES["failure"], index=False)

    a = client.get("/v1/console/samples", headers=bearer(acme.mes))
    assert a.status_code == 200
    samples = a.json()["samples"]
    assert set(samples) == set(ENDPOINTS)
    assert samples["failure"]["source"] == "demo"
    rec = samples["failure"]["body"]["records"][0]
    assert "Machine failure" not in rec and "Tool wear [min]" in rec  # labels dropped
    assert {samples[f]["source"] for f in ("rul", "defect", "energy")} == {"builtin"}

    b = client.get("/v1/console/samples", headers=bearer(bravo.admin)).json()
    assert b["tenant"] == "bravo"
    assert {s["source"] for s in b["samples"].values()} == {"builtin"}  # never another tenant's files
    energy = b["samples"]["energy"]
    assert energy["endpoint"] == "/v1/energy/forecast" and energy["body"]["horizon"] == 96
    assert len(energy["body"]["records"]) == 9 * 96 and len(energy["actuals"]) == 2 * 96 + 1
