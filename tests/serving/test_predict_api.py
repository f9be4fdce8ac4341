"""Prediction endpoints: the tenant's champion answers, with its name and version; a promotion swaps the
model without a restart; bad records are a 422 naming the column; the usage log records the version."""

import io
import json

import numpy as np
import pandas as pd
import pytest

from models.registry import ModelRegistry
from tests.serving.helpers import AI4I, bearer, make_tenant, quick_failure_model

PEPPER = "test-secret-0123456789"


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A quickly trained failure model (two seeds, so that there are two versions to swap between)."""
    base = tmp_path_factory.mktemp("failure")
    return [quick_failure_model(base, seed=seed) for seed in (0, 1)]


def rows(n=3):
    df = pd.read_csv(AI4I).head(n).drop(columns=["Machine failure", "TWF", "HDF", "PWF", "OSF", "RNF"], errors="ignore")
    return df.to_dict("records")


def test_predict_uses_the_champion_and_swaps_on_promote(client, app, db, settings, exported):
    acme = make_tenant(db, PEPPER, "acme", modules=("maintenance",))
    h = {**bearer(acme.mes), "X-Request-ID": "predict-1"}
    r = client.post("/v1/maintenance/failure/predict", json={"records": rows()}, headers=h)
    assert r.status_code == 404 and "sfai train failure" in r.json()["error"]["message"]

    reg = ModelRegistry(db, settings.home, "acme")
    reg.register("failure", "maintenance", exported[0])
    reg.register("failure", "maintenance", exported[1])
    r = client.post("/v1/maintenance/failure/predict", json={"records": rows(), "explain": True}, headers=h)
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["model"], body["version"], body["count"]) == ("failure", 1, 3)
    first = body["predictions"][0]
    assert {"UDI", "failure_probability", "failure_predicted"} <= set(first)
    assert 0.0 <= first["failure_probability"] <= 1.0 and first["failure_predicted"] in (0, 1)

    status = client.get("/v1/maintenance/status", headers=h).json()["models"]
    assert [(m["name"], m["version"], m["challenger"]) for m in status] == [("failure", 1, 2)]
    # the probability from which the model answers failure_predicted: 1 (an MES or an engineer asked where it was)
    threshold = reg.get("failure", version=1).manifest["threshold"]
    assert status[0]["threshold"] == threshold and 0 < threshold < 1
    assert all(p["failure_predicted"] == int(p["failure_probability"] >= threshold) for p in body["predictions"])

    reg.promote("failure")  # the challenger (v2) becomes champion: served after the cache's short TTL
    app.state.platform.models.invalidate()
    r = client.post("/v1/maintenance/failure/predict", json={"records": rows()}, headers=h)
    assert r.json()["version"] == 2
    assert [(m["name"], m["version"]) for m in client.get("/v1/maintenance/status", headers=h).json()["models"]] == [
        ("failure", 2)
    ]
    assert client.get("/v1/quality/status", headers=h).status_code == 403  # not subscribed: nothing to list
    usage = client.get("/v1/usage?module=maintenance", headers=bearer(acme.admin)).json()["records"]
    served = {u["model_version"] for u in usage if u["status"] == 200 and u["endpoint"].endswith("/predict")}
    assert served == {"failure@1", "failure@2"}


def test_bad_records_and_bodies_are_422(client, db, settings, exported):
    acme = make_tenant(db, PEPPER, "acme", modules=("maintenance",))
    ModelRegistry(db, settings.home, "acme").register("failure", "maintenance", exported[0])
    h = bearer(acme.mes)
    bad = rows(1)
    del bad[0]["Torque [Nm]"]
    r = client.post("/v1/maintenance/failure/predict", json={"records": bad}, headers=h)
    assert r.status_code == 422 and "Torque" in r.json()["error"]["message"]
    wrong = rows(1)
    wrong[0]["Torque [Nm]"] = "strong"
    r = client.post("/v1/maintenance/failure/predict", json={"records": wrong}, headers=h)
    assert r.status_code == 422 and "Torque" in r.json()["error"]["message"]
    for body in ({}, {"records": []}, {"records": "x"}, {"entity_ids": ["m1"]}):
        r = client.post("/v1/maintenance/failure/predict", json=body, headers=h)
        assert r.status_code == 422, (body, r.text)
    r = client.post("/v1/maintenance/failure/predict", json={"records": rows(1) * 10_001}, headers=h)
    assert r.status_code == 422 and "10000" in r.json()["error"]["message"]


def test_arrow_and_parquet_bodies(client, db, settings, exported):
    import io

    import pyarrow as pa

    acme = make_tenant(db, PEPPER, "acme", modules=("maintenance",))
    ModelRegistry(db, settings.home, "acme").register("failure", "maintenance", exported[0])
    df = pd.DataFrame(rows(50))
    sink = pa.BufferOutputStream()
    table = pa.Table.from_pandas(df, preserve_index=False)
    with pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    r = client.post(
        "/v1/maintenance/failure/predict",
        content=sink.getvalue().to_pybytes(),
        headers={**bearer(acme.mes), "content-type": "application/vnd.apache.arrow.stream"},
    )
    assert r.status_code == 200 and r.json()["count"] == 50
    buf = io.BytesIO()
    df.to_parquet(buf)
    r = client.post(
        "/v1/maintenance/failure/predict",
        content=buf.getvalue(),
        headers={**bearer(acme.mes), "content-type": "application/vnd.apache.parquet"},
    )
    assert r.status_code == 200 and r.json()["count"] == 50
    # options ride in the query string with a binary body, typed as a JSON body would carry them
    small = pa.BufferOutputStream()
    head = pa.Table.from_pandas(df.head(2), preserve_index=False)
    with pa.ipc.new_stream(small, head.schema) as w:
        w.write_table(head)
    arrow = {**bearer(acme.mes), "content-type": "application/vnd.apache.arrow.stream"}
    url = "/v1/maintenance/failure/predict"
    on = client.post(url + "?explain=true", content=small.getvalue().to_pybytes(), headers=arrow)
    off = client.post(url + "?explain=false", content=small.getvalue().to_pybytes(), headers=arrow)
    assert on.status_code == 200 and off.status_code == 200, (on.text, off.text)
    assert "top_features" in on.json()["predictions"][0] and "top_features" not in off.json()["predictions"][0]
    bad = client.post(url + "?explain=maybe", content=small.getvalue().to_pybytes(), headers=arrow)
    assert bad.status_code == 422 and "explain" in bad.json()["error"]["message"]
    both = client.post(url + "?entity_ids=x&view=ai4i_features", content=small.getvalue().to_pybytes(), headers=arrow)
    assert both.status_code == 422 and "not both" in both.json()["error"]["message"]


def test_an_unexpected_error_is_a_json_500_on_the_hot_path_and_the_route(db, settings, exported, monkeypatch):
    """A failure nobody foresaw answers the one error shape with the request id, also for a prediction call that
    the hot path hands on to the full stack (an Arrow body), not Starlette's plain-text page."""
    from fastapi.testclient import TestClient

    from serving.app import create_app
    from serving.routers import modules

    acme = make_tenant(db, PEPPER, "acme", modules=("maintenance",))
    ModelRegistry(db, settings.home, "acme").register("failure", "maintenance", exported[0])

    async def broken(*_a, **_k):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(modules, "read_frame", broken)
    for fast in (True, False):
        app = create_app(settings.model_copy(update={"predict_fast_path": fast}), db=db)
        with TestClient(app, raise_server_exceptions=False) as c:
            h = {**bearer(acme.mes), "content-type": "application/vnd.apache.arrow.stream", "X-Request-ID": "r-9"}
            r = c.post("/v1/maintenance/failure/predict", content=b"arrow bytes", headers=h)
        app.state.platform.close()
        assert r.status_code == 500 and r.headers["content-type"] == "application/json", (fast, r.text)
        assert r.json()["error"] == {"code": "internal_error", "message": "internal error (request r-9)"}
        assert "disk on fire" not in r.text


def test_json_records_arrow_and_online_lookup_score_alike(client, db, settings, exported, tmp_path):
    """The pandas-free record path (small requests on the event loop, larger ones in a thread), the DataFrame
    path (Arrow) and an online-store lookup by entity id give the same answers for the same rows."""
    from feature_store.store import FeatureStore
    from pipelines.runner import run_pipeline

    acme = make_tenant(db, PEPPER, "acme", modules=("maintenance",))
    ModelRegistry(db, settings.home, "acme").register("failure", "maintenance", exported[0])
    h = bearer(acme.mes)
    url = "/v1/maintenance/failure/predict"
    recs = rows(40)

    def probs(r):
        assert r.status_code == 200, r.text
        return [(p["UDI"], p["failure_probability"], p["failure_predicted"]) for p in r.json()["predictions"]]

    big = client.post(url, json={"records": recs, "explain": True}, headers=h)
    small = [client.post(url, json={"records": recs[i : i + 4], "explain": True}, headers=h) for i in range(0, 40, 4)]
    assert probs(big) == [p for r in small for p in probs(r)]
    assert [p["top_features"] for p in big.json()["predictions"]] == [
        p["top_features"] for r in small for p in r.json()["predictions"]
    ]
    sink = pa_stream(pd.DataFrame(recs))
    arrow = client.post(url, content=sink, headers={**h, "content-type": "application/vnd.apache.arrow.stream"})
    assert [(u, round(p, 5)) for u, p, _ in probs(arrow)] == [(u, round(p, 5)) for u, p, _ in probs(big)]

    src = tmp_path / "ai4i.csv"
    full = pd.read_csv(AI4I).head(40)
    full.to_csv(src, index=False)
    store = FeatureStore(settings, db, "acme")
    run_pipeline("ai4i", src, store=store)
    store.close()
    ids = [f"ai4i-{p}" for p in full["Product ID"]]
    online = client.post(url, json={"entity_ids": ids, "view": "ai4i_features"}, headers=h)
    assert probs(online) == probs(big)


def test_a_tenants_own_view_serves_failure_predictions_by_entity_id(client, db, settings, exported):
    """A view keyed by machine, holding the readings under the feature store's names and a feature the failure
    model does not read: its online rows score by entity id (the key and the extra feature belong to the view;
    only records a caller sends are refused for an unknown field), the same as the readings sent as records."""
    from feature_store import FeatureView, Field, entities
    from feature_store.store import FeatureStore
    from models.failure.features import STORE_NAMES

    acme = make_tenant(db, PEPPER, "acme", modules=("maintenance",))
    ModelRegistry(db, settings.home, "acme").register("failure", "maintenance", exported[0])
    readings = {store: raw for store, raw in STORE_NAMES.items() if store != "udi"}
    view = FeatureView(
        name="press_readings", entity=entities.machine,
        schema=[Field(name=n, dtype="string" if n == "type" else "float64") for n in readings]
        + [Field(name="vibration_g", dtype="float64")],
    )
    recs = rows(3)
    fs = FeatureStore(settings, db, "acme")
    fs.apply(view)
    fs.ingest("press_readings", pd.DataFrame(
        [{"machine_id": f"press-{i}", "event_timestamp": "2026-12-01T00:00:00Z", "vibration_g": 0.3,
          **{store: r[raw] for store, raw in readings.items()}} for i, r in enumerate(recs)]
    ))
    fs.close()
    h, url = bearer(acme.mes), "/v1/maintenance/failure/predict"
    for _ in range(2):  # the first call loads the model and the store, the second is answered by the fast path
        by_id = client.post(url, json={"entity_ids": ["press-0", "press-1", "press-2"], "view": "press_readings"},
                            headers=h)
        assert by_id.status_code == 200, by_id.text
    sent = client.post(url, json={"records": [{k: v for k, v in r.items() if k != "UDI"} for r in recs]}, headers=h)
    probability = [p["failure_probability"] for p in sent.json()["predictions"]]
    assert [p["failure_probability"] for p in by_id.json()["predictions"]] == pytest.approx(probability, abs=1e-6)
    arrow = client.post(url, json={"entity_ids": ["press-2"], "view": "press_readings"},
                        headers={**h, "accept": "application/vnd.apache.arrow.stream"})
    assert arrow.status_code == 200, arrow.text
    # a record a caller sends with the same extra field is still refused, naming it
    r = client.post(url, json={"records": [{**recs[0], "vibration_g": 0.3}]}, headers=h)
    assert r.status_code == 422 and "vibration_g" in r.json()["error"]["message"]


def test_unknown_feature_is_422_naming_it(client, db, settings, exported):
    acme = make_tenant(db, PEPPER, "acme", modules=("maintenance",))
    ModelRegistry(db, settings.home, "acme").register("failure", "maintenance", exported[0])
    extra = rows(1)
    extra[0]["Vibration [g]"] = 0.3
    r = client.post("/v1/maintenance/failure/predict", json={"records": extra}, headers=bearer(acme.mes))
    assert r.status_code == 422 and "Vibration [g]" in r.json()["error"]["message"]
    # the same records with an Arrow answer (scored as a frame): refused alike, not scored without the field
    arrow = {**bearer(acme.mes), "accept": "application/vnd.apache.arrow.stream"}
    r = client.post("/v1/maintenance/failure/predict", json={"records": extra}, headers=arrow)
    assert r.status_code == 422 and r.json()["error"]["message"].startswith("unknown feature 'Vibration [g]'"), r.text
    assert client.post("/v1/maintenance/failure/predict", json={"records": rows(1)}, headers=arrow).status_code == 200


def pa_stream(df):
    import pyarrow as pa

    sink = pa.BufferOutputStream()
    table = pa.Table.from_pandas(df, preserve_index=False)
    with pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    return sink.getvalue().to_pybytes()


def test_hot_swap_under_load_loses_no_request(app, db, settings, exported):
    """A real server on loopback, four clients predicting without pause while the champion moves back and forth:
    every request answers 200 with a registered version, both versions serve, none is dropped."""
    import socket
    import threading
    import time

    import httpx
    import uvicorn

    acme = make_tenant(db, PEPPER, "acme", modules=("maintenance",))
    reg = ModelRegistry(db, settings.home, "acme")
    reg.register("failure", "maintenance", exported[0])
    reg.register("failure", "maintenance", exported[1])
    app.state.platform.models.ttl_s = 0.05  # re-resolve the alias almost at once, so swaps happen under load
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "test server did not start"
        time.sleep(0.05)
    stop = threading.Event()
    results: list[tuple[int, int | None]] = []
    lock = threading.Lock()

    def hammer() -> None:
        with httpx.Client(base_url=base, headers=bearer(acme.mes), timeout=30) as c:
            while not stop.is_set():
                try:
                    r = c.post("/v1/maintenance/failure/predict", json={"records": rows(2)})
                    got = (r.status_code, r.json().get("version"))
                except httpx.HTTPError as e:  # a dropped connection is a lost request
                    got = (0, repr(e))
                with lock:
                    results.append(got)

    clients = [threading.Thread(target=hammer) for _ in range(4)]
    try:
        for t in clients:
            t.start()
        for i in range(12):  # six promotions and six rollbacks
            time.sleep(0.25)
            reg.promote("failure") if i % 2 == 0 else reg.rollback("failure")
        time.sleep(0.25)
    finally:
        stop.set()
        for t in clients:
            t.join(30)
        server.should_exit = True
        thread.join(30)
    assert len(results) > 50
    assert all(status == 200 for status, _ in results), [r for r in results if r[0] != 200][:5]
    assert {v for _, v in results} == {1, 2}


def test_arrow_answer_when_the_client_accepts_it(client, db, settings, exported):
    """Accept: Arrow gives the same predictions as JSON, as an IPC stream with the model in the headers; big
    batches (a wider ONNX Runtime session) score like small ones."""
    import pyarrow as pa

    acme = make_tenant(db, PEPPER, "acme", modules=("maintenance",))
    ModelRegistry(db, settings.home, "acme").register("failure", "maintenance", exported[0])
    url, h = "/v1/maintenance/failure/predict", bearer(acme.mes)
    arrow = "application/vnd.apache.arrow.stream"
    recs = rows(5000)
    as_json = client.post(url, json={"records": recs}, headers=h)
    assert as_json.status_code == 200, as_json.text
    for r in (
        client.post(url, content=pa_stream(pd.DataFrame(recs)), headers={**h, "content-type": arrow, "accept": arrow}),
        client.post(url, json={"records": recs}, headers={**h, "accept": arrow}),
    ):
        assert r.status_code == 200 and r.headers["content-type"] == arrow, r.text[:300]
        assert (r.headers["x-sfai-model"], r.headers["x-sfai-model-version"], r.headers["x-sfai-count"]) == (
            "failure", "1", "5000")
        got = pa.ipc.open_stream(r.content).read_all().to_pandas()
        want = pd.DataFrame(as_json.json()["predictions"])
        assert got["UDI"].tolist() == want["UDI"].tolist()
        assert (got["failure_probability"] - want["failure_probability"]).abs().max() < 1e-5
        assert got["failure_predicted"].tolist() == want["failure_predicted"].tolist()
    small = client.post(url, json={"records": recs[:10]}, headers={**h, "accept": arrow})  # not the fast path's JSON
    assert small.headers["content-type"] == arrow and small.headers["x-sfai-count"] == "10"
    assert pa.ipc.open_stream(small.content).read_all().num_rows == 10


def test_expired_champion_is_refreshed_by_one_caller_while_the_others_keep_serving(db, settings, exported):
    """At the resolution TTL, one caller re-reads the registry (and sees a promotion); the requests arriving
    meanwhile keep the loaded version instead of each querying the registry."""
    from serving.predictions import ModelCache

    make_tenant(db, PEPPER, "acme", modules=("maintenance",))
    reg = ModelRegistry(db, settings.home, "acme")
    reg.register("failure", "maintenance", exported[0])
    reg.register("failure", "maintenance", exported[1])
    cache = ModelCache(db, settings.home, ttl_s=0.3)
    assert cache.cached("acme", "failure") is None  # nothing resolved yet
    v1 = cache.champion("acme", "failure")
    assert cache.cached("acme", "failure") is v1 and v1.version == "1"
    reg.promote("failure")
    import time

    time.sleep(0.35)
    assert cache.cached("acme", "failure", claim=False) is None  # a look only (the fast path): nothing claimed
    assert cache.cached("acme", "failure", claim=False) is None
    assert cache.cached("acme", "failure") is None  # expired: this caller refreshes
    assert cache.cached("acme", "failure") is v1  # the others keep serving version 1 meanwhile
    v2 = cache.champion("acme", "failure", refresh=True)
    assert v2.version == "2" and cache.cached("acme", "failure") is v2


READING = {"failure": "Torque [Nm]", "rul": "sensor_2", "energy": "Usage_kWh", "defect": "f001"}


@pytest.mark.parametrize("fast", [True, False])
def test_readings_past_the_models_range_are_422_on_every_endpoint(settings, db, demo_models, fast):
    """A reading so large that it (or a feature made from it) overflows the model's float32 input used to come
    back as a NaN (``null``) prediction, or a 500 where the answer was rounded: now a 422 naming the feature."""
    from fastapi.testclient import TestClient

    from models.demo import ENDPOINTS, sample_request
    from serving.app import create_app

    models_dir, demo_dir = demo_models
    acme = make_tenant(db, PEPPER, "acme", modules=("maintenance", "quality", "energy"))
    reg = ModelRegistry(db, settings.home, "acme")
    for family in ENDPOINTS:
        reg.register(family, {"failure": "maintenance", "rul": "maintenance", "defect": "quality",
                              "energy": "energy"}[family], models_dir / family / "v1")
    app = create_app(settings.model_copy(update={"predict_fast_path": fast}), db=db)
    with TestClient(app) as client:
        for family, path in ENDPOINTS.items():
            body = sample_request(demo_dir, family)
            assert client.post(path, json=body, headers=bearer(acme.mes)).status_code == 200
            for value in (1e300, int("9" * 40)):
                odd = {**body, "records": [dict(r) for r in body["records"]]}
                for r in odd["records"][-1:] if family != "energy" else odd["records"]:  # energy: the history
                    r[READING[family]] = value
                r = client.post(path, json=odd, headers=bearer(acme.mes))
                if family == "defect":  # the quality model clips each measurement to its training range
                    assert r.status_code == 200, r.text
                    continue
                assert r.status_code == 422, (family, value, r.text)
                assert "out of range" in r.json()["error"]["message"], r.text
    app.state.platform.close()


def test_row_ids_come_back_as_sent_or_the_record_is_refused(client, db, settings, exported):
    """All records without ids are numbered 1..n; otherwise every record needs a usable id (never a made-up one
    or a copy of its neighbour's), for JSON records and table bodies alike."""
    acme = make_tenant(db, PEPPER, "acme", modules=("maintenance",))
    ModelRegistry(db, settings.home, "acme").register("failure", "maintenance", exported[0])
    url, h = "/v1/maintenance/failure/predict", bearer(acme.mes)

    def ids(recs):
        r = client.post(url, json={"records": recs}, headers=h)
        return r.json()["predictions"] if r.status_code == 200 else (r.status_code, r.json()["error"]["message"])

    plain = rows(3)
    assert [p["UDI"] for p in ids(plain)] == [1, 2, 3]
    named = [{**r, "UDI": f"m-{i:03d}"} for i, r in enumerate(plain)]
    assert [p["UDI"] for p in ids(named)] == ["m-000", "m-001", "m-002"]
    bare = [{k: v for k, v in r.items() if k != "UDI"} for r in plain]
    assert [p["UDI"] for p in ids(bare)] == [1, 2, 3]
    assert ids([plain[0], bare[1]]) == (422, "record 2 has no 'UDI' while others do: send every record's id, or none")
    for bad in (None, "", " ", [1], {"a": 1}, True):
        status, message = ids([plain[0], {**plain[1], "UDI": bad}])
        assert status == 422 and message.startswith("record 2: 'UDI' must be a string or a number"), (bad, message)
    frame = pd.DataFrame([plain[0], bare[1]])  # a table body: the missing cell is refused, naming its row
    buf = io.BytesIO()
    frame.to_parquet(buf)
    r = client.post(url, content=buf.getvalue(), headers={**h, "content-type": "application/vnd.apache.parquet"})
    assert r.status_code == 422 and r.json()["error"]["message"].startswith("column 'UDI' row 2"), r.text


def _demo_client(settings, db, demo_models, fast: bool = True):
    """A client of an app serving the four demo models to tenant acme, and acme's MES key headers."""
    from fastapi.testclient import TestClient

    from models.demo import ENDPOINTS
    from serving.app import create_app

    acme = make_tenant(db, PEPPER, "acme", modules=("maintenance", "quality", "energy"))
    reg = ModelRegistry(db, settings.home, "acme")
    module = {"failure": "maintenance", "rul": "maintenance", "defect": "quality", "energy": "energy"}
    for family in ENDPOINTS:
        reg.register(family, module[family], demo_models[0] / family / "v1")
    app = create_app(settings.model_copy(update={"predict_fast_path": fast}), db=db)
    return TestClient(app), bearer(acme.mes)


ARROW_ANSWER = {"accept": "application/vnd.apache.arrow.stream"}


@pytest.mark.parametrize("fast", [True, False])
def test_a_boolean_reading_is_422_naming_column_and_row_on_every_endpoint(settings, db, demo_models, fast):
    """``true`` where a reading belongs used to be read as 1.0 and scored: now a 422 naming the column and the row,
    for a JSON answer and an Arrow one."""
    from models.demo import ENDPOINTS, sample_request

    client, h = _demo_client(settings, db, demo_models, fast)
    with client:
        for family, path in ENDPOINTS.items():
            body = sample_request(demo_models[1], family)
            assert client.post(path, json=body, headers=h).status_code == 200
            for value in (True, False):
                odd = {**body, "records": [dict(r) for r in body["records"]]}
                odd["records"][1][READING[family]] = value
                for accept in ({}, ARROW_ANSWER):
                    r = client.post(path, json=odd, headers={**h, **accept})
                    assert r.status_code == 422, (family, value, accept, r.text)
                    message = r.json()["error"]["message"]
                    assert message.startswith(f"column {READING[family]!r} row 2"), message
                    assert message.endswith(str(value)), message
    client.app.state.platform.close()


def test_defect_records_with_an_unknown_field_are_422_and_the_known_ones_pass(settings, db, demo_models):
    """A typo in a defect record (``f05``, ``labell``) used to be ignored and the wafer scored without it: now a
    422 naming it, as the failure model answers. The file's id, label and test time, the online store's keys and a
    measurement the model does not read are known fields."""
    from models.demo import ENDPOINTS, sample_request

    client, h = _demo_client(settings, db, demo_models)
    path = ENDPOINTS["defect"]
    body = sample_request(demo_models[1], "defect")
    with client:
        plain = client.post(path, json=body, headers=h)
        assert plain.status_code == 200, plain.text
        extras = {"label": -1, "timestamp": "19/07/2008 11:55:00", "lot_id": "secom-0001", "n_missing": 0,
                  "event_timestamp": "2008-07-19T11:55:00+00:00", "defect": False, "f590": None, "f100": 1.5}
        known = client.post(path, json={"records": [{**r, **extras} for r in body["records"]]}, headers=h)
        assert known.status_code == 200, known.text
        assert [p["defect_probability"] for p in known.json()["predictions"]] == [
            p["defect_probability"] for p in plain.json()["predictions"]
        ]
        for typo in ("f05", "labell", "F001"):
            records = [dict(r) for r in body["records"]]
            records[-1][typo] = 1.0
            for accept in ({}, ARROW_ANSWER):
                r = client.post(path, json={"records": records}, headers={**h, **accept})
                assert r.status_code == 422, (typo, r.text)
                assert r.json()["error"]["message"].startswith(f"unknown feature {typo!r}"), r.text
        # an Arrow or Parquet body is held to the same: its typo was scored as a missing measurement
        import io

        import pyarrow as pa

        frame = pd.DataFrame(body["records"])
        for typo, expect in (("f05", 422), ("row_id", 200)):
            table = pa.Table.from_pandas(frame.assign(**{typo: 1}), preserve_index=False)
            sink = pa.BufferOutputStream()
            with pa.ipc.new_stream(sink, table.schema) as w:
                w.write_table(table)
            buf = io.BytesIO()
            frame.assign(**{typo: 1}).to_parquet(buf)
            for content, ctype in ((sink.getvalue().to_pybytes(), "application/vnd.apache.arrow.stream"),
                                   (buf.getvalue(), "application/vnd.apache.parquet")):
                r = client.post(path, content=content, headers={**h, "content-type": ctype})
                assert r.status_code == expect, (typo, ctype, r.text)
                if expect == 422:
                    assert r.json()["error"]["message"].startswith("unknown feature 'f05'"), r.text
    client.app.state.platform.close()


@pytest.mark.parametrize("fast", [True, False])
def test_an_answer_names_the_registered_model_that_made_it(settings, db, demo_models, fast):
    """A C-MAPSS subset's model is registered as rul-fd001 while its export names the family (rul): the answer, its
    headers (Arrow) and the usage log named ``rul``, a model the tenant does not have. Also for a model registered
    before the registry wrote its name into the manifest."""
    import json

    from models.demo import ENDPOINTS, sample_request
    from serving.usage import query_usage

    client, h = _demo_client(settings, db, demo_models, fast)
    reg = ModelRegistry(db, settings.home, "acme")
    fd001 = reg.register("rul-fd001", "maintenance", demo_models[0] / "rul" / "v1")
    assert json.loads((fd001.path / "manifest.json").read_text())["name"] == "rul-fd001"
    old = reg.register("rul-fd003", "maintenance", demo_models[0] / "rul" / "v1")
    manifest = json.loads((old.path / "manifest.json").read_text())
    (old.path / "manifest.json").write_text(json.dumps({**manifest, "name": "rul"}))  # as written before
    body = sample_request(demo_models[1], "rul")
    with client:
        for name in ("rul-fd001", "rul-fd003", None):
            r = client.post(ENDPOINTS["rul"], json={**body, **({"model": name} if name else {})}, headers=h)
            assert r.status_code == 200, r.text
            assert r.json()["model"] == (name or "rul"), (name, r.text)
            arrow = client.post(ENDPOINTS["rul"], json={**body, **({"model": name} if name else {})},
                                headers={**h, **ARROW_ANSWER})
            assert arrow.headers["x-sfai-model"] == (name or "rul"), name
    client.app.state.platform.close()  # the usage log is written
    log = query_usage(db, reg.tenant_id, limit=100)["records"]
    served = sorted(u["model_version"] for u in log if u["status"] == 200)
    assert served == ["rul-fd001@1"] * 2 + ["rul-fd003@1"] * 2 + ["rul@1"] * 2, served


def test_a_defect_call_can_give_the_line_s_current_failure_rate(client, db, settings, demo_models, tmp_path):
    """``recent_failure_rate`` stands for the line's current yield in the drift prior (a body option, a query
    parameter with a Parquet body); out of range it is a 422, and another family refuses it as an option."""
    import io
    import shutil

    from models.defect import drift as D
    from models.demo import sample_request

    model_dir = tmp_path / "defect"
    shutil.copytree(demo_models[0] / "defect" / "v1", model_dir)
    manifest = json.loads((model_dir / "manifest.json").read_text())
    manifest["drift"] = {**D.history(np.array([0.0, 1.0, 2.0]), np.array([0, 1, 0]), 50), "coef": [1.0, 1.0, 0.0]}
    (model_dir / "manifest.json").write_text(json.dumps(manifest))
    acme = make_tenant(db, PEPPER, "acme", modules=("quality", "energy"))
    ModelRegistry(db, settings.home, "acme").register("defect", "quality", model_dir)
    ModelRegistry(db, settings.home, "acme").register("energy", "energy", demo_models[0] / "energy" / "v1")
    h, url = bearer(acme.mes), "/v1/quality/defect/predict"
    body = sample_request(demo_models[1], "defect")
    probs = {}
    for rate in (0.01, 0.3):
        r = client.post(url, json={**body, "recent_failure_rate": rate}, headers=h)
        assert r.status_code == 200, r.text
        probs[rate] = [p["defect_probability"] for p in r.json()["predictions"]]
    assert all(b > g for g, b in zip(probs[0.01], probs[0.3], strict=True))
    buf = io.BytesIO()
    pd.DataFrame(body["records"]).to_parquet(buf)
    r = client.post(f"{url}?recent_failure_rate=0.3", content=buf.getvalue(),
                    headers={**h, "content-type": "application/vnd.apache.parquet"})
    assert r.status_code == 200 and [p["defect_probability"] for p in r.json()["predictions"]] == probs[0.3], r.text
    r = client.post(url, json={**body, "recent_failure_rate": 1.5}, headers=h)
    assert r.status_code == 422 and "recent_failure_rate must be a share" in r.json()["error"]["message"], r.text
    r = client.post("/v1/energy/forecast", json={"records": [{"date": "x"}], "recent_failure_rate": 0.1}, headers=h)
    assert r.status_code == 422 and "not an option of the energy model" in r.json()["error"]["message"], r.text
    schema = client.get("/openapi.json").json()["paths"]
    assert "recent_failure_rate" in str(schema[url]) and "recent_failure_rate" not in str(schema["/v1/energy/forecast"])


def test_rul_warns_of_a_short_history_and_refuses_unit_ids_a_float_cannot_hold(settings, db, demo_models):
    """A unit sent as its last few cycles (not from cycle 1) is read with its first cycle repeated before them, as
    a younger engine: the answer now warns that its RUL is likely too high. Unit numbers past 2**53 were merged
    (12345678901234567 and ...568) or came back negative (2**63 - 1); they are refused."""
    from models.rul.data import read_cmapss

    client, h = _demo_client(settings, db, demo_models)
    cycles = read_cmapss(demo_models[1] / "cmapss_demo.txt")
    unit = cycles[cycles["unit"] == 1]
    url = "/v1/maintenance/rul/predict"
    with client:
        whole = client.post(url, json={"records": unit.to_dict("records")}, headers=h)
        assert whole.status_code == 200 and whole.json()["warnings"] == [], whole.text
        tail = client.post(url, json={"records": unit.tail(10).to_dict("records")}, headers=h)
        assert tail.status_code == 200, tail.text
        warning = tail.json()["warnings"][0]
        assert warning.startswith("units 1 (10 from cycle") and "likely too high" in warning, warning
        for big in (12345678901234567, 2**63 - 1):
            rows = unit.tail(3).assign(unit=big).to_dict("records")
            r = client.post(url, json={"records": rows}, headers=h)
            assert r.status_code == 422 and "up to 9,007,199,254,740,992" in r.json()["error"]["message"], r.text
    client.app.state.platform.close()


@pytest.mark.parametrize("fast", [True, False])
def test_a_call_can_set_its_own_decision_threshold(settings, db, demo_models, fast):
    """The threshold chosen at training could not be changed (process-engineer audit): a plant wanting fewer alarms
    ranked the probabilities itself. ``threshold`` flags at or above the caller's probability, on the quick path and
    the route alike; the probabilities do not change; out of range it is a 422; RUL and energy refuse it."""
    from fastapi.testclient import TestClient

    from models.demo import ENDPOINTS, sample_request
    from serving.app import create_app

    models_dir, demo_dir = demo_models
    acme = make_tenant(db, PEPPER, "acme", modules=("maintenance", "quality"))
    reg = ModelRegistry(db, settings.home, "acme")
    for family, module in (("failure", "maintenance"), ("defect", "quality"), ("rul", "maintenance")):
        reg.register(family, module, models_dir / family / "v1")
    app = create_app(settings.model_copy(update={"predict_fast_path": fast}), db=db)
    h = bearer(acme.mes)
    with TestClient(app) as client:
        for family, flag in (("failure", "failure_predicted"), ("defect", "defect_predicted")):
            url, body = ENDPOINTS[family], sample_request(demo_dir, family)
            plain = client.post(url, json=body, headers=h).json()["predictions"]
            probs = sorted(set(p[f"{family}_probability"] for p in plain))
            assert len(probs) >= 2, probs
            k = len(probs) // 2
            cut = (probs[k - 1] + probs[k]) / 2  # between two answers (they are rounded to 6 decimals): half flagged
            mine = client.post(url, json={**body, "threshold": cut}, headers=h).json()["predictions"]
            assert [p[f"{family}_probability"] for p in mine] == [p[f"{family}_probability"] for p in plain]
            assert [p[flag] for p in mine] == [int(p[f"{family}_probability"] >= cut) for p in mine]
            assert [p[flag] for p in client.post(url, json={**body, "threshold": 0}, headers=h).json()[
                "predictions"]] == [1] * len(plain)
            for bad in (1.5, -0.1, "0.5", True):
                r = client.post(url, json={**body, "threshold": bad}, headers=h)
                assert r.status_code == 422, r.text
                assert r.json()["error"]["message"].startswith('"threshold" must be a probability from 0 to 1'), r.text
            # in the query string of a JSON call (an MES's generated client puts it there): applied, not ignored
            q = client.post(url, params={"threshold": 0}, json=body, headers=h).json()["predictions"]
            assert [p[flag] for p in q] == [1] * len(plain)
            for params, words in (({"threshold": 0.5}, "given twice"), ({"explian": "true"}, "explian"),
                                  ({"model": "nope"}, "nope"), ({"records": "x"}, "goes in the JSON body"),
                                  ([("threshold", "0.2"), ("threshold", "0.1")], "given twice in the query")):
                r = client.post(url, params=params, json={**body, "threshold": 0.2}, headers=h)
                assert r.status_code in (404, 422) and words in r.json()["error"]["message"], (params, r.text)
        r = client.post(ENDPOINTS["rul"], json={**sample_request(demo_dir, "rul"), "threshold": 0.5}, headers=h)
        assert r.status_code == 422 and "not an option of the rul model" in r.text, r.text
    app.state.platform.close()


def test_answers_carry_korean_ids_as_text_not_escapes(settings, db, demo_models):
    """A defect answer escaped every non-ASCII character (``"\\uc0ac\\ucd9c..."``) where every other answer sends
    UTF-8 (MES integrator's audit): valid JSON, but not what the plant's id looks like in a log or a dump."""
    from fastapi.testclient import TestClient

    from models.demo import ENDPOINTS, sample_request
    from serving.app import create_app

    models_dir, demo_dir = demo_models
    acme = make_tenant(db, PEPPER, "acme", modules=("quality",))
    ModelRegistry(db, settings.home, "acme").register("defect", "quality", models_dir / "defect" / "v1")
    app = create_app(settings, db=db)
    with TestClient(app) as client:
        body = sample_request(demo_dir, "defect")
        body["records"] = [{**r, "row_id": f"사출기-{i}"} for i, r in enumerate(body["records"])]
        r = client.post(ENDPOINTS["defect"], json=body, headers=bearer(acme.mes))
        assert r.status_code == 200, r.text
        assert "사출기-0".encode() in r.content and b"\\u" not in r.content
        assert [p["row_id"] for p in r.json()["predictions"]] == [f"사출기-{i}" for i in range(len(body["records"]))]
    app.state.platform.close()


@pytest.mark.parametrize("fast", [True, False])
def test_a_call_naming_no_model_is_told_which_answered_where_the_tenant_has_several(settings, db, demo_models, fast):
    """An MES sending engines of FD002 to a tenant with rul, rul-fd001 and rul-fd002 was answered by one of them
    without a word (the CLI has warned since 2026-12-07): the answer's warnings now name the model that answered,
    the tenant's others and ``"model"``. A call that names its model, or a tenant with one, gets no such warning."""
    import pyarrow as pa

    from models.demo import ENDPOINTS, sample_request

    client, h = _demo_client(settings, db, demo_models, fast)
    body = sample_request(demo_models[1], "rul")
    url = ENDPOINTS["rul"]

    def warned(r) -> list[str]:  # noqa: ANN001
        assert r.status_code == 200, r.text
        return [w for w in r.json().get("warnings", []) if w.startswith('no "model" named')]

    with client:
        assert warned(client.post(url, json=body, headers=h)) == []  # one RUL model: nothing to choose
        reg = ModelRegistry(db, settings.home, "acme")
        for name in ("rul-fd001", "rul-fd002"):
            reg.register(name, "maintenance", demo_models[0] / "rul" / "v1")
        client.app.state.platform.models._listings.clear()  # as after the cache's 2 s
        said = warned(client.post(url, json=body, headers=h))
        assert said == ['no "model" named: scored with rul (version 1). This tenant also has rul-fd001, rul-fd002: '
                        'name the model of these records\' machines with "model" (e.g. '
                        '"model": "rul-fd001")'], said
        r = client.post(url, json={**body, "model": "rul-fd002"}, headers=h)
        assert warned(r) == [] and r.json()["model"] == "rul-fd002"
        arrow = client.post(url, json=body, headers={**h, **ARROW_ANSWER})
        meta = pa.ipc.open_stream(arrow.content).schema.metadata
        assert json.loads(meta[b"sfai.warnings"]) == said and arrow.headers["x-sfai-warnings"] == "1"
        failure = client.post(ENDPOINTS["failure"], json=sample_request(demo_models[1], "failure"), headers=h)
        assert failure.status_code == 200 and warned(failure) == []  # another family's models are not counted
