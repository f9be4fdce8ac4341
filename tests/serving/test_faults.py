"""Faults: PostgreSQL or Redis goes away during a run and comes back; a model file is damaged on disk.

SFAI answers 503 with a clear message while a service is gone (never a 500), recovers by itself when it returns,
and loses no acknowledged usage record: every call answered 200 has its record in the log. The outage is made
with a TCP forwarder between SFAI and the real service (tests/serving/proxy.py), so the machine's PostgreSQL and
Redis stay up for everything else.
"""

from __future__ import annotations

import time
import uuid

from fastapi.testclient import TestClient
from sqlalchemy.engine import make_url

from models.demo import ENDPOINTS, sample_request
from models.registry import ModelRegistry
from serving import tenancy
from serving.app import create_app
from serving.db import Database
from serving.usage import query_usage, verify_chain
from tests.conftest import PgDatabase, need_postgres, require_service
from tests.serving.helpers import KEY, bearer, make_tenant
from tests.serving.proxy import ToggleProxy

PEPPER = "test-secret-0123456789"


def _until(fn, timeout: float = 20.0, every: float = 0.2):  # noqa: ANN001, ANN202
    """Call ``fn`` until it returns something truthy (returned) or ``timeout`` passes (the last value)."""
    end = time.monotonic() + timeout
    while True:
        out = fn()
        if out or time.monotonic() > end:
            return out
        time.sleep(every)


def test_damaged_model_is_refused_and_the_previous_champion_keeps_serving(settings, db, demo_models):
    models_dir, demo_dir = demo_models
    acme = make_tenant(db, PEPPER, "acme", modules=("maintenance",))
    reg = ModelRegistry(db, settings.home, "acme")
    reg.register("failure", "maintenance", models_dir / "failure" / "v1")
    v2 = reg.register("failure", "maintenance", models_dir / "failure" / "v1")  # challenger
    body = sample_request(demo_dir, "failure")
    app = create_app(settings, db=db)
    with TestClient(app) as client:
        def call():
            return client.post(ENDPOINTS["failure"], json=body, headers=bearer(acme.mes))

        assert call().json()["version"] == 1
        onnx = v2.path / "model.onnx"
        onnx.write_bytes(onnx.read_bytes()[:-16] + b"\0" * 16)  # damaged on disk after registration
        reg.set_alias("failure", "champion", 2)  # promoted: the next resolution finds version 2
        app.state.platform.models.invalidate()
        for _ in range(3):
            r = call()
            assert r.status_code == 200 and r.json()["version"] == 1, r.text
        # a tenant whose only model is damaged gets a 503 that says why, not a 500
        other = make_tenant(db, PEPPER, "other", modules=("maintenance",))
        mv = ModelRegistry(db, settings.home, "other").register("failure", "maintenance", models_dir / "failure" / "v1")
        (mv.path / "model.onnx").write_bytes(b"not a model")
        r = client.post(ENDPOINTS["failure"], json=body, headers=bearer(other.mes))
        assert r.status_code == 503 and r.json()["error"]["code"] == "model_integrity", r.text
        message = r.json()["error"]["message"]
        assert message.startswith("model failure version 1 cannot be served: its file is missing or does not match "
                                  "the checksum"), message
        assert str(settings.home) not in message and "model.onnx" not in message  # no server path (operator audit)


def test_postgres_outage_503_then_recovery_and_no_acknowledged_record_lost(settings, tmp_path):
    need_postgres()
    pg = PgDatabase()
    proxy = ToggleProxy(make_url(pg.url).port or 5432).start()
    try:
        direct = Database(pg.url)
        acme = make_tenant(direct, PEPPER, "acme", modules=("quality",))
        url = make_url(pg.url).set(port=proxy.port).render_as_string(hide_password=False)
        s = settings.model_copy(update={"database_url": url, "auth_cache_ttl_s": 0.3})
        db = Database(url)
        answered: dict[str, int] = {}
        with TestClient(create_app(s, db=db)) as client:
            def call(rid: str) -> int:
                r = client.get("/v1/quality/status", headers={**bearer(acme.mes), "X-Request-ID": rid})
                assert r.status_code in (200, 503), r.text
                if r.status_code == 503:
                    assert r.json()["error"]["code"] in ("usage_log_unavailable", "database_unavailable"), r.text
                    assert "retry" in r.json()["error"]["message"]
                answered[rid] = r.status_code
                return r.status_code

            assert [call(f"before-{i}") for i in range(5)] == [200] * 5
            proxy.stop()
            during = [call(f"during-{i}") for i in range(6)]
            time.sleep(0.4)  # past the key cache: the key lookup itself needs the database now
            during += [call(f"during-late-{i}") for i in range(4)]
            assert set(during) == {503}, during
            assert client.get("/readyz").status_code == 503
            proxy.start()
            n = iter(range(1000))
            assert _until(lambda: call(f"after-{next(n)}") == 200), "no recovery after PostgreSQL came back"
            assert [call(f"after-more-{i}") for i in range(5)] == [200] * 5
            assert client.get("/readyz").status_code == 200
        logged = {r["request_id"] for r in query_usage(direct, tenancy.get_tenant(direct, "acme").id,
                                                       limit=1000)["records"]}
        acknowledged = {rid for rid, status in answered.items() if status == 200}
        assert acknowledged <= logged, sorted(acknowledged - logged)
        assert verify_chain(direct, key=KEY).ok
        db.dispose()
        direct.dispose()
    finally:
        proxy.stop()
        pg.drop()


def test_redis_outage_503_then_recovery(settings, db):
    from feature_store.store import FeatureStore
    from pipelines.runner import run_pipeline
    from tests.feature_store.conftest import REDIS_URL, redis_problem

    require_service(redis_problem())
    upstream = make_url(REDIS_URL)
    proxy = ToggleProxy(upstream.port or 6379).start()
    prefix = f"sfai-test:{uuid.uuid4().hex[:8]}:"
    s = settings.model_copy(update={"online_store": f"redis://127.0.0.1:{proxy.port}/0", "redis_prefix": prefix})
    try:
        acme = make_tenant(db, PEPPER, "acme", modules=("quality",))
        store = FeatureStore(s, db, "acme")
        run_pipeline("c22-demo", None, store=store)
        view = store.list_views()[0][0]
        store.close()
        with TestClient(create_app(s, db=db)) as client:
            h = bearer(acme.mes)
            ids = client.post("/v1/features/online", json={"view": view.name, "entity_ids": ["m-none"]}, headers=h)
            assert ids.status_code == 200, ids.text

            def lookup() -> int:
                r = client.post("/v1/features/online", json={"view": view.name, "entity_ids": ["m-none"]},
                                headers=h)
                assert r.status_code in (200, 503), r.text
                if r.status_code == 503:
                    assert r.json()["error"]["code"] == "online_store_unavailable"
                    assert r.headers["retry-after"] == "5"
                return r.status_code

            proxy.stop()
            assert [lookup() for _ in range(3)] == [503] * 3
            proxy.start()
            assert _until(lambda: lookup() == 200), "no recovery after Redis came back"
    finally:
        proxy.stop()
        import redis

        client = redis.Redis.from_url(REDIS_URL)
        for key in client.scan_iter(match=prefix + "*", count=1000):
            client.delete(key)
        client.close()


def test_readyz_says_not_ready_while_usage_writes_fail(settings, db, monkeypatch):
    """A full disk failed 28 of 30 calls (503: nothing unlogged is answered) while /readyz said ready, so a load
    balancer kept sending calls to the instance (operator's audit). It is not ready while the last write failed
    (within 30 s), and ready again after a good one."""
    from serving import usage

    acme = make_tenant(db, PEPPER, "acme", modules=("quality",))
    real = usage.append_entries
    full = {"on": False}

    def append(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        if full["on"]:
            raise OSError(28, "No space left on device")
        return real(*args, **kwargs)

    monkeypatch.setattr(usage, "append_entries", append)
    with TestClient(create_app(settings, db=db)) as client:
        assert client.get("/v1/quality/status", headers=bearer(acme.mes)).status_code == 200
        assert client.get("/readyz").status_code == 200
        full["on"] = True
        assert client.get("/v1/quality/status", headers=bearer(acme.mes)).status_code == 503
        r = client.get("/readyz")
        assert r.status_code == 503 and r.json()["error"]["usage_log"] is False, r.text
        full["on"] = False
        assert client.get("/v1/quality/status", headers=bearer(acme.mes)).status_code == 200
        assert client.get("/readyz").status_code == 200
        app_writer = client.app.state.platform.writer
        full["on"] = True
        client.get("/v1/quality/status", headers=bearer(acme.mes))
        assert app_writer.failing() and not app_writer.failing(window_s=0.0)  # past the window: ready again
