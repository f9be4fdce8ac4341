"""The console's own endpoint (``GET /v1/console/samples``) and the static files behind ``/``."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from models.demo import FILES, ai4i_rows
from models.registry import ModelRegistry
from serving.routers.console import ENDPOINTS
from tests.serving.helpers import bearer, make_tenant


def test_console_page_and_static_files(client):
    r = client.get("/")
    assert r.status_code == 200 and "text/html" in r.headers["content-type"]
    for name in ("/static/console.js", "/static/gantt.js", "/static/pdf.js", "/static/i18n.js", "/static/console.css",
                 "/static/sample-plan.json"):
        assert client.get(name).status_code == 200, name
    for name in ("index.html", "console.js", "gantt.js", "pdf.js", "i18n.js", "console.css"):  # no outside hosts
        text = client.get("/" if name == "index.html" else f"/static/{name}").text
        assert set(re.findall(r"https?://[^\s\"'`)]+", text)) <= {"http://www.w3.org/2000/svg"}, name
    html = client.get("/").text
    assert 'id="export-pdf"' in html and 'src="/static/pdf.js"' in html
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


def test_energy_actuals_are_stamped_as_the_forecast_is(client, db, settings, demo_models):
    """The file's ``dd/mm/yyyy 00:00`` closes that day: the actuals drew each midnight reading a day early (and
    the built-in rows put it a day late), so the chart's midnight points were 24 hours off the forecast's."""
    acme = make_tenant(db, settings.secret_key, "acme", modules=("energy",))
    ModelRegistry(db, settings.home, "acme").register("energy", "energy", demo_models[0] / "energy" / "v1")
    energy = client.get("/v1/console/samples", headers=bearer(acme.mes)).json()["samples"]["energy"]
    stamps = pd.to_datetime([a["timestamp"] for a in energy["actuals"]])
    assert set(np.diff(stamps.values).astype("timedelta64[m]").astype(int)) == {15}  # every 15 minutes, in order
    r = client.post(energy["endpoint"], json=energy["body"], headers=bearer(acme.mes))
    assert r.status_code == 200, r.text
    predictions = r.json()["predictions"]  # the first origin's day is in the readings (the next one is to come)
    steps = [p["timestamp"][:16] for p in predictions if p["origin"] == predictions[0]["origin"]]
    actual = {a["timestamp"][:16]: a["kwh"] for a in energy["actuals"]}
    assert steps and all(s in actual for s in steps), (steps[:3], list(actual)[:3])
    midnight = next(a for a in energy["actuals"] if a["timestamp"].endswith("00:00:00"))
    day_before = (pd.Timestamp(midnight["timestamp"]) - pd.Timedelta(days=1)).strftime("%d/%m/%Y")
    sent = {r["date"]: r["Usage_kWh"] for r in energy["body"]["records"]}
    assert sent[f"{day_before} 00:00"] == midnight["kwh"]  # the reading that closed the day before


def test_every_string_is_in_korean_and_english(client):
    """i18n.js has the same keys in both languages, and every key the page and the scripts name is there."""
    source = client.get("/static/i18n.js").text
    ko_block, en_block = source.split("\n  en: {", 1)
    keys = {lang: set(re.findall(r'^\s+"([\w.]+)":', block, re.M))
            for lang, block in (("ko", ko_block), ("en", en_block))}
    assert keys["ko"] == keys["en"], keys["ko"] ^ keys["en"]
    used = set(re.findall(r'data-i18n(?:-aria|-label|-title)?="([\w.]+)"', client.get("/").text))
    for name in ("console.js", "gantt.js"):
        used |= set(re.findall(r'\bt\("([\w.]+)"', client.get(f"/static/{name}").text))
    # keys built at run time (t("obj." + o)): the prefix must exist; the ones this console adds are checked in full
    prefixes = {k for k in used if k.endswith(".")}
    assert all(any(k.startswith(p) for k in keys["en"]) for p in prefixes), prefixes
    used -= prefixes
    used |= {f"obj.{o}" for o in ("makespan", "tardiness", "energy", "weighted", "lex")}
    used |= {f"objhelp.{o}" for o in ("auto", "makespan", "tardiness", "energy", "weighted", "lex")}
    used |= {f"job.s.{s}" for s in ("queued", "running", "done", "failed")}
    assert len(used) > 100 and used <= keys["en"], used - keys["en"]


@pytest.fixture(scope="module")
def wide_defect_model(tmp_path_factory):
    """A defect model trained on 30 measurements (f001..f030), as a SECOM model reads hundreds: more than the nine
    of the demo's and the built-in sample rows."""
    from models.defect.train import train
    from tests.datasets import NoTracker

    rng = np.random.default_rng(0)
    n = 240
    label = np.where(rng.random(n) < 0.2, 1, -1)
    df = pd.DataFrame({"row_id": range(1, n + 1), "label": label,
                       "timestamp": pd.date_range("2026-01-05", periods=n, freq="h").strftime("%Y-%m-%d %H:%M:%S")})
    for j in range(1, 31):
        df[f"f{j:03d}"] = rng.normal(100 + j, 5, n) + (label == 1) * (j % 4)
    base = tmp_path_factory.mktemp("wide-defect")
    df.to_csv(base / "train.csv", index=False)
    train(base / "train.csv", "secom", base / "model", config={"n_splits": 2, "epochs": 5, "patience": 5},
          tracker=NoTracker())
    return base / "model"


def test_the_defect_sample_holds_every_measurement_the_tenants_champion_reads(client, db, settings,
                                                                               wide_defect_model):
    """The built-in defect rows hold f001..f009: a tenant whose champion was trained on SECOM got a sample its own
    model refused (422, "lacks the measurement column 'f010'"), so the dashboard's quality card showed an error."""
    acme = make_tenant(db, settings.secret_key, "acme", modules=("quality",))
    h = bearer(acme.mes)
    assert client.get("/v1/console/samples", headers=h).json()["samples"]["defect"]["source"] == "builtin"
    ModelRegistry(db, settings.home, "acme").register("defect", "quality", wide_defect_model)
    sample = client.get("/v1/console/samples", headers=h).json()["samples"]["defect"]
    assert sample["source"] == "model"
    records = sample["body"]["records"]
    assert {f"f{j:03d}" for j in range(1, 31)} <= set(records[0]) and len({r["row_id"] for r in records}) > 1
    r = client.post(sample["endpoint"], json=sample["body"], headers=h)
    assert r.status_code == 200, r.text
    probabilities = [p["defect_probability"] for p in r.json()["predictions"]]
    # every sample differs from the others (the sixth had been the first again)
    assert len(probabilities) == len(records) and len(set(probabilities)) == len(records), probabilities
