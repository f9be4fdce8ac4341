"""The prediction fast path (serving/fastpath.py) answers exactly what the FastAPI routes answer: the same
status and body for successes and errors, the same usage record, the same quota accounting; and it does answer
the plain calls (not everything falls back)."""

import json

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from models.registry import ModelRegistry
from serving import fastpath, tenancy
from serving.app import create_app
from serving.usage import query_usage
from tests.serving.helpers import AI4I, bearer, make_tenant, need_ai4i, quick_failure_model

PEPPER = "test-secret-0123456789"
URL = "/v1/maintenance/failure/predict"
LABELS = ["Machine failure", "TWF", "HDF", "PWF", "OSF", "RNF"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    need_ai4i()
    return quick_failure_model(tmp_path_factory.mktemp("fast"), rows=2000, epochs=2)


@pytest.fixture()
def counted(monkeypatch):
    """How many calls the fast path answered itself."""
    seen = {"answered": 0}
    inner = fastpath.answer

    def answer(*args, **kwargs):
        out = inner(*args, **kwargs)  # raises Fallback when the route must answer
        seen["answered"] += 1
        return out

    monkeypatch.setattr(fastpath, "answer", answer)
    return seen


def records(n, start=0):
    return pd.read_csv(AI4I).iloc[start : start + n].drop(columns=LABELS).to_dict("records")


def test_fast_and_routed_answers_are_identical(settings, db, model_dir, tmp_path, counted, monkeypatch):
    from datetime import UTC, datetime

    from feature_store.store import FeatureStore
    from pipelines.runner import run_pipeline
    from serving import predictions

    # one answer time for both runs: an answer by entity id carries each reading's age (reading_age_s)
    monkeypatch.setattr(predictions, "clock", lambda: datetime(2026, 12, 7, 12, 0, tzinfo=UTC))

    acme = make_tenant(db, PEPPER, "acme", modules=("maintenance",))
    ModelRegistry(db, settings.home, "acme").register("failure", "maintenance", model_dir)
    src = tmp_path / "ai4i.csv"
    pd.read_csv(AI4I).head(30).to_csv(src, index=False)
    store = FeatureStore(settings, db, "acme")
    run_pipeline("ai4i", src, store=store)
    store.close()
    ids = [f"ai4i-{p}" for p in pd.read_csv(src)["Product ID"].head(3)]
    h = bearer(acme.mes)
    bad_type = records(1)
    bad_type[0]["Torque [Nm]"] = "strong"
    missing = records(1)
    del missing[0]["Tool wear [min]"]
    unknown = records(1)
    unknown[0]["Vibration [g]"] = 0.3
    calls = [  # (json body or raw bytes, extra headers)
        ({"records": records(3)}, {}),
        ({"records": records(1), "explain": False}, {}),
        ({"entity_ids": ids, "view": "ai4i_features"}, {}),
        ({"entity_ids": ids[:1], "view": "no_such_view"}, {}),
        ({"records": records(2), "model": "failure"}, {}),
        ({"records": records(2), "model": "nope"}, {}),
        ({"records": records(2), "model": 7}, {}),
        ({"records": bad_type}, {}),
        ({"records": missing}, {}),
        ({"records": unknown}, {}),
        ({"records": records(1), "explain": "yes"}, {}),
        ({"records": records(17)}, {}),  # over the inline size: the route scores it in a thread
        ({"records": []}, {}),
        ({"records": [1, 2]}, {}),
        ([1, 2], {}),
        (b"{not json", {"content-type": "application/json"}),
        ({"records": records(1)}, {"authorization": "Bearer not-a-key"}),
        ({"records": records(1)}, {"authorization": "Basic abc"}),
        (b'{"records": []}', {"content-type": "text/plain"}),
        ({"entity_ids": [ids[0], "no-such-machine"], "view": "ai4i_features"}, {}),  # 404 naming it
        ({"entity_ids": [None], "view": "ai4i_features"}, {}),
        (b'{"records": ' + b"[" * 5000 + b"]" * 5000 + b"}", {"content-type": "application/json"}),
        ({"records": records(1), "explian": False}, {}),  # a typo is named, not ignored
        ({"records": records(1), "entity_ids": ids, "view": "ai4i_features"}, {}),
        ({"records": records(1), "model": ""}, {}),
    ]
    answers = {}
    for fast in (True, False):
        app = create_app(settings.model_copy(update={"predict_fast_path": fast}), db=db)
        with TestClient(app) as client:
            client.post(URL, json={"records": records(1)}, headers=h)  # warms the key, subscription, model caches
            got = []
            for i, (body, extra) in enumerate(calls):
                hh = {**h, **extra, "X-Request-ID": f"{'fast' if fast else 'route'}-{i}"}
                r = (client.post(URL, content=body, headers=hh) if isinstance(body, bytes)
                     else client.post(URL, json=body, headers=hh))
                got.append((r.status_code, r.json(), r.headers["content-type"]))
            answers[fast] = got
        app.state.platform.close()
    for i, (fast, routed) in enumerate(zip(answers[True], answers[False], strict=True)):
        assert fast == routed, (i, calls[i][0] if not isinstance(calls[i][0], dict) else list(calls[i][0]))
    statuses = [a[0] for a in answers[True]]
    assert statuses[:3] == [200, 200, 200] and statuses[5] == 404 and statuses[7] == 422
    assert statuses[-6:] == [404, 422, 422, 422, 422, 422], statuses[-6:]
    assert "'no-such-machine'" in answers[True][-6][1]["error"]["message"]
    assert "nested too deeply" in answers[True][-4][1]["error"]["message"]
    messages = [a[1]["error"]["message"] for a in answers[True][-3:]]
    assert messages[0].startswith("unknown field 'explian'") and "not both" in messages[1]
    assert messages[2].startswith('"model" must be a registered model name'), messages
    # the fast path answered the plain calls and the errors found after the subscription check, not only the warm-up
    assert counted["answered"] >= 6

    log = query_usage(db, tenancy.get_tenant(db, "acme").id, limit=1000)["records"]
    by_id = {r["request_id"]: (r["status"], r["module"], r["endpoint"], r["model_version"]) for r in log}
    for i in range(len(calls)):
        assert by_id.get(f"fast-{i}") == by_id.get(f"route-{i}"), i
    assert by_id["fast-0"] == (200, "maintenance", URL, "failure@1")


def test_quota_counts_each_fast_call_once(settings, db, model_dir, counted):
    tenancy.create_tenant(db, "quota", "C29")
    tenancy.subscribe(db, "quota", "maintenance", request_quota=4)
    key = tenancy.create_api_key(db, PEPPER, "quota", "mes", "mes").token
    ModelRegistry(db, settings.home, "quota").register("failure", "maintenance", model_dir)
    with TestClient(create_app(settings, db=db)) as client:
        statuses = [client.post(URL, json={"records": records(1)}, headers=bearer(key)).status_code for _ in range(6)]
    assert statuses == [200, 200, 200, 200, 429, 429]
    # near the quota the usage log's count is read again before most calls: the route reads it, in a worker
    # thread (below); the fast path answers a call its count has room for without a read
    assert counted["answered"] < 4


def test_the_usage_logs_count_is_read_off_the_event_loop(settings, db, model_dir, counted, monkeypatch):
    """Counting a quota reads the usage log (40-90 ms for a tenant with 330,000 calls this month): on the event loop,
    every 30 s and on each of the last calls before the quota, it held every tenant's calls that long (performance
    audit). The fast path and the routes' admission now read it in a worker thread; in between they count in
    memory, and the fast path answers."""
    import asyncio

    from serving import access as access_module

    on_loop = []
    real = access_module.count_calls

    def count_calls(*a):
        try:
            asyncio.get_running_loop()
            on_loop.append(True)
        except RuntimeError:
            on_loop.append(False)
        return real(*a)

    monkeypatch.setattr(access_module, "count_calls", count_calls)
    tenancy.create_tenant(db, "quota", "C29")
    tenancy.subscribe(db, "quota", "maintenance", request_quota=1_000_000)
    tenancy.subscribe(db, "quota", "scheduling", request_quota=10)
    key = tenancy.create_api_key(db, PEPPER, "quota", "mes", "mes").token
    ModelRegistry(db, settings.home, "quota").register("failure", "maintenance", model_dir)
    with TestClient(create_app(settings, db=db)) as client:
        statuses = [client.post(URL, json={"records": records(1)}, headers=bearer(key)).status_code for _ in range(8)]
        access = client.app.state.platform.access
        tid = tenancy.get_tenant(db, "quota").id
        access._quota[next(k for k in access._quota if k[0] == tid)].read_at -= 3600  # the 30-s refresh is due
        statuses.append(client.post(URL, json={"records": records(1)}, headers=bearer(key)).status_code)
        statuses += [client.get("/v1/scheduling/jobs", headers=bearer(key)).status_code for _ in range(12)]
    assert statuses == [200] * 9 + [200] * 10 + [429] * 2
    assert counted["answered"] >= 6  # far from the quota, the fast path answers
    assert len(on_loop) >= 12 and not any(on_loop), on_loop


def test_revocation_and_unsubscribe_elsewhere_reach_the_fast_path_within_the_ttl(settings, db, model_dir, counted):
    """Another process revokes a key or ends a subscription (this app's caches are not told): after the cache
    TTL the next call is refused. The fast path only looks at the caches; the route refreshes them."""
    import time

    tenancy.create_tenant(db, "gamma", "C29")
    tenancy.subscribe(db, "gamma", "maintenance")
    a = tenancy.create_api_key(db, PEPPER, "gamma", "mes", "a")
    b = tenancy.create_api_key(db, PEPPER, "gamma", "mes", "b")
    ModelRegistry(db, settings.home, "gamma").register("failure", "maintenance", model_dir)
    fast = settings.model_copy(update={"auth_cache_ttl_s": 0.2})
    with TestClient(create_app(fast, db=db)) as client:
        def call(key):
            return client.post(URL, json={"records": records(1)}, headers=bearer(key)).status_code

        assert [call(a.token) for _ in range(5)] == [200] * 5
        assert counted["answered"] >= 3  # warm: the fast path answers
        tenancy.revoke_api_key(db, a.info.key_id)  # straight in the database, as another process would
        time.sleep(0.3)
        assert [call(a.token) for _ in range(3)] == [401] * 3
        assert call(b.token) == 200
        tenancy.unsubscribe(db, "gamma", "maintenance")
        time.sleep(0.3)
        assert [call(b.token) for _ in range(3)] == [403] * 3


def test_odd_json_values_are_422_on_both_paths(settings, db, model_dir):
    """Lists, objects, nulls and booleans where a reading belongs: a 422 naming the column, never a 500."""
    acme = make_tenant(db, PEPPER, "acme", modules=("maintenance",))
    ModelRegistry(db, settings.home, "acme").register("failure", "maintenance", model_dir)
    odd = [("Type", ["L"]), ("Type", {"t": "L"}), ("Type", None), ("Type", 3), ("Torque [Nm]", [1.0]),
           ("Torque [Nm]", {"v": 1}), ("Torque [Nm]", None), ("Tool wear [min]", "")]
    for fast in (True, False):
        app = create_app(settings.model_copy(update={"predict_fast_path": fast}), db=db)
        with TestClient(app) as client:
            client.post(URL, json={"records": records(1)}, headers=bearer(acme.mes))  # warm the caches
            for column, value in odd:
                for n in (1, 80):  # the fast path and the route's small path; a batch over the set-check size
                    recs = records(n)
                    recs[-1][column] = value
                    r = client.post(URL, json={"records": recs}, headers=bearer(acme.mes))
                    assert r.status_code == 422, (fast, column, value, n, r.text)
                    assert column in r.json()["error"]["message"], r.text
        app.state.platform.close()


def test_a_key_named_twice_in_a_record_is_422_on_both_paths(settings, db, model_dir, counted):
    """A reading named twice in one record ({"Torque [Nm]": 42.8, ..., "Torque [Nm]": 500}) was scored with the last
    value, on the fast path (orjson) and the route alike, while ingest refuses it (MES audit): which is true? Both
    paths refuse it now, naming the key; the same body without the repeat is answered on the fast path."""
    acme = make_tenant(db, PEPPER, "acme", modules=("maintenance",))
    ModelRegistry(db, settings.home, "acme").register("failure", "maintenance", model_dir)
    (one,) = records(1)
    plain = json.dumps({"records": [one]})
    twice = plain[:-3] + ', "Torque [Nm]": 500}]}'
    spaced = plain.replace('"Torque [Nm]":', '"Torque [Nm]" :')  # whitespace before a colon: still one key
    assert json.loads(twice)["records"][0]["Torque [Nm]"] == 500
    head = {**bearer(acme.mes), "content-type": "application/json"}
    for fast in (True, False):
        app = create_app(settings.model_copy(update={"predict_fast_path": fast}), db=db)
        with TestClient(app) as client:
            assert client.post(URL, content=plain, headers=head).status_code == 200  # warms the caches
            before = counted["answered"]
            r = client.post(URL, content=twice, headers=head)
            assert r.status_code == 422 and "names the key 'Torque [Nm]' twice" in r.json()["error"]["message"], r.text
            assert counted["answered"] == before  # the route answered it
            assert client.post(URL, content=spaced, headers=head).status_code == 200
            assert counted["answered"] == before + fast  # the fast path took the spaced body, when on
            # a key of the body named twice too
            r = client.post(URL, content='{"explain": true, ' + plain[1:-1] + ', "explain": false}', headers=head)
            assert r.status_code == 422 and "'explain' twice" in r.text, r.text
        app.state.platform.close()


def test_row_ids_past_64_bits_come_back_as_written(settings, db, model_dir):
    """orjson reads an integer past 64 bits as a float: a UDI of 10**23 came back as 1e+23 from the fast path (the
    README promises row ids back exactly as written; security audit). Such a body is answered by the route."""
    acme = make_tenant(db, PEPPER, "acme", modules=("maintenance",))
    ModelRegistry(db, settings.home, "acme").register("failure", "maintenance", model_dir)
    big = [10**23, 123456789012345678901234567890, -(2**64), 2**64 - 1]
    app = create_app(settings, db=db)
    with TestClient(app) as client:
        for n in (1, 2):
            for value in big:
                recs = [{**r, "UDI": value + i} for i, r in enumerate(records(n))]
                r = client.post(URL, content=json.dumps({"records": recs}), headers={
                    **bearer(acme.mes), "content-type": "application/json"})
                assert r.status_code == 200, r.text
                assert r.text.count(str(value)) == 1 and "e+" not in r.text, r.text[:300]
                assert [p["UDI"] for p in json.loads(r.text)["predictions"]] == [value + i for i in range(n)]
    app.state.platform.close()
