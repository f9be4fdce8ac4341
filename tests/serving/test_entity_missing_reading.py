"""A prediction by entity id that one machine's latest stored reading cannot answer names the machine and the view's
feature it lacks: ``torque_nm`` sent as NaN for press-21 is stored as null, and a batch of press-01 and press-21 had
been refused with "column 'Torque [Nm]' row 2: expected a number, got an empty cell" (integration audit)."""

import io
import json

import pandas as pd
import pyarrow as pa

from feature_store import FeatureView, Field, entities
from feature_store.store import FeatureStore
from models.failure.features import STORE_NAMES
from models.registry import ModelRegistry
from tests.serving.helpers import bearer, make_tenant

PEPPER = "test-secret-0123456789"
URL = "/v1/maintenance/failure/predict"
STAMP = "2026-12-01T00:00:00Z"


def test_a_missing_reading_names_the_entity_and_the_feature(client, db, settings, demo_models):
    acme = make_tenant(db, PEPPER, "acme", modules=("maintenance",))
    ModelRegistry(db, settings.home, "acme").register("failure", "maintenance", demo_models[0] / "failure" / "v1")
    h = bearer(acme.mes)
    readings = {store: raw for store, raw in STORE_NAMES.items() if store != "udi"}
    fs = FeatureStore(settings, db, "acme")
    fs.apply(FeatureView(name="press_readings", entity=entities.machine,
                         schema=[Field(name=n, dtype="string" if n == "type" else "float64") for n in readings]))
    fs.close()
    recs = pd.read_csv(demo_models[1] / "ai4i_demo.csv").head(2).to_dict("records")
    rows = [{"machine_id": m, "event_timestamp": STAMP, **{store: r[raw] for store, raw in readings.items()}}
            for m, r in zip(["press-01", "press-21"], recs, strict=True)]
    rows[1]["torque_nm"] = float("nan")  # as the audit sent it: accepted, stored as null
    r = client.post("/v1/ingest/press_readings", content=json.dumps({"records": rows}),
                    headers={**h, "content-type": "application/json"})
    assert r.status_code == 200, r.text

    def refused(ids, accept=None):
        r = client.post(URL, json={"entity_ids": ids, "view": "press_readings"},
                        headers={**h, **({"accept": accept} if accept else {})})
        assert r.status_code == 422, r.text
        message = r.json()["error"]["message"]
        assert "entity 'press-21'" in message and "'torque_nm'" in message, message
        assert "latest stored reading in view 'press_readings'" in message and "lacks" in message, message
        return message

    for _ in range(2):  # the route loads the model and the store; then the fast path answers
        refused(["press-01", "press-21"])
    refused(["press-01"] * 16 + ["press-21"])  # past the fast path's 16: the route, in a worker thread
    refused(["press-21", "press-01"], accept="application/vnd.apache.arrow.stream")  # the route's frame scorer
    answer = client.post(URL, json={"entity_ids": ["press-01"], "view": "press_readings"}, headers=h)
    assert answer.status_code == 200 and answer.json()["predictions"][0]["entity_id"] == "press-01"
    got = client.post(URL, json={"entity_ids": ["press-01"], "view": "press_readings"},
                      headers={**h, "accept": "application/vnd.apache.arrow.stream"})
    assert pa.ipc.open_stream(io.BytesIO(got.content)).read_all().column("entity_id").to_pylist() == ["press-01"]


def test_an_out_of_range_reading_names_the_entity():
    from serving.predictions import InvalidInput, entity_error

    e = InvalidInput("column 'Torque [Nm]' row 2: 500 is out of range: a machine reads 0 to 100 Nm here")
    rows = [{"torque_nm": 40.0}, {"torque_nm": 500.0}]
    got = entity_error(e, ["press-01", "press-21"], rows.__getitem__, "ai4i_features", "failure")
    assert got.message == f"entity 'press-21' in view 'ai4i_features': {e.message}" and got.status == 422
    assert entity_error(InvalidInput("column 'x' row 9: bad"), ["a"], rows.__getitem__, "v", "failure").message == (
        "column 'x' row 9: bad")  # a row past the ids: left as it is
