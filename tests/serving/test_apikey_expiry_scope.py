"""API keys: an expiry (401 ``api_key_expired``, also while the key sits in the process' cache), a scope of
modules (403 ``key_scope``), and the time of each key's latest call (kept in the process, written at most once a
minute in one UPDATE, only ever forward). Runs on SQLite and PostgreSQL (the ``db`` fixtures)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient
from sqlalchemy import event, text

from serving import access as access_mod
from serving import tenancy
from serving.access import KeyUse
from serving.app import create_app
from serving.usage import query_usage
from tests.serving.helpers import TEST_SECRET, bearer, make_tenant


def _tenant(db, name: str = "acme", modules=("quality", "energy")):  # noqa: ANN001, ANN202
    return make_tenant(db, TEST_SECRET, name, modules=modules)


def _error(r) -> dict:  # noqa: ANN001
    body = r.json()
    assert set(body) == {"error"}, body
    return body["error"]


def _api_keys(client, admin: str) -> dict[str, dict]:  # noqa: ANN001
    r = client.get("/v1/apikeys", headers=bearer(admin))
    assert r.status_code == 200, r.text
    return {k["key_id"]: k for k in r.json()}


class _UpdateCounter:
    """Counts the statements that write ``api_keys.last_used_at`` on ``engine`` (an executemany counts once)."""

    def __init__(self, engine) -> None:  # noqa: ANN001
        self.engine = engine
        self.n = 0
        event.listen(engine, "before_cursor_execute", self._seen)

    def _seen(self, conn, cursor, statement, params, context, executemany) -> None:  # noqa: ANN001
        if statement.lstrip().upper().startswith("UPDATE API_KEYS") and "last_used_at" in statement:
            self.n += 1

    def close(self) -> None:
        event.remove(self.engine, "before_cursor_execute", self._seen)


# ------------------------------------------------------------------------------------------------ create: input
def test_create_takes_an_expiry_and_modules_and_refuses_bad_ones_with_a_422_naming_them(client, db):
    keys = _tenant(db)
    h = bearer(keys.admin)
    day = (datetime.now(UTC) + timedelta(days=30)).date()
    r = client.post("/v1/apikeys", json={"role": "mes", "name": "line-3", "expires_at": day.isoformat(),
                                         "modules": ["energy", "quality"]}, headers=h)
    assert r.status_code == 201, r.text
    made = r.json()
    # a date alone: the end of that day UTC, i.e. the next day's 00:00 UTC
    end = datetime.combine(day + timedelta(days=1), datetime.min.time(), UTC)
    assert datetime.fromisoformat(made["expires_at"].replace("Z", "+00:00")) == end
    assert made["modules"] == ["quality", "energy"]  # in the catalogue's order
    assert made["state"] == "active" and made["last_used_at"] is None and made["api_key"].startswith("sfai_")
    me = client.get("/v1/tenant", headers=bearer(made["api_key"])).json()  # what an MES reads of its own key
    assert datetime.fromisoformat(me["caller_key_expires_at"].replace("Z", "+00:00")) == end
    assert me["caller_key_modules"] == ["quality", "energy"] and me["caller_key_id"] == made["key_id"]

    r = client.post("/v1/apikeys", json={"role": "mes", "expires_at": "2099-01-01T18:00:00+09:00"}, headers=h)
    assert r.status_code == 201 and r.json()["expires_at"].startswith("2099-01-01T09:00:00")
    r = client.post("/v1/apikeys", json={"role": "mes"}, headers=h)  # by default: no expiry, every module
    assert r.status_code == 201 and r.json()["expires_at"] is None and r.json()["modules"] is None

    bad = [
        ({"expires_at": "2099-01-01T18:00:00"}, ["no UTC offset", "add one"]),
        ({"expires_at": "2099-01-01 18:00"}, ["no UTC offset"]),
        ({"expires_at": "2020-01-01T00:00:00Z"}, ["in the past"]),
        ({"expires_at": "2020-01-01"}, ["in the past"]),
        ({"expires_at": "next tuesday"}, ["invalid expires_at", "2026-12-31"]),
        ({"expires_at": ""}, ["expires_at is empty"]),
        ({"expires_at": "9999-12-31"}, ["out of range"]),
        ({"expires_at": 1767225600}, ["expires_at"]),
        ({"modules": []}, ["modules is empty"]),
        ({"modules": ["quality", "quality"]}, ["'quality'", "more than once"]),
        ({"modules": ["quality", "paint", "weld"]}, ["unknown modules", "'paint'", "'weld'"]),
        ({"modules": "quality"}, ["modules"]),
    ]
    before = set(_api_keys(client, keys.admin))
    for extra, words in bad:
        r = client.post("/v1/apikeys", json={"role": "mes", **extra}, headers=h)
        assert r.status_code == 422, (extra, r.status_code, r.text)
        msg = _error(r)["message"]
        assert all(w in msg for w in words), (extra, msg)
    assert set(_api_keys(client, keys.admin)) == before  # nothing was made


# ------------------------------------------------------------------------------------------------ expiry
def test_an_expired_key_is_refused_with_401_even_while_cached_and_its_use_is_logged(client, app, db, monkeypatch):
    keys = _tenant(db)
    expires = datetime.now(UTC) + timedelta(hours=1)
    new = tenancy.create_api_key(db, TEST_SECRET, "acme", "mes", "short", expires_at=expires)
    key_id = new.info.key_id
    h = bearer(new.token)
    access = app.state.platform.access
    access.ttl_s = 600.0  # the key stays cached through the test, however slow the machine
    assert client.get("/v1/quality/status", headers=h).status_code == 200  # looked up once: cached now
    assert access.lookup(access.digest(new.token), claim=False)[1].expires_at == expires  # the cache carries it

    def no_lookup(*a, **k):  # noqa: ANN002, ANN003, ANN202 - the cache must answer: no database lookup
        raise AssertionError("the key was looked up again: the cached caller must be refused by its expiry")

    monkeypatch.setattr(access_mod, "resolve_api_key_state", no_lookup)
    later = [expires - timedelta(seconds=1)]
    monkeypatch.setattr(access_mod, "key_clock", lambda: later[0])
    assert client.get("/v1/quality/status", headers=h).status_code == 200  # a second before: still works
    later[0] = expires + timedelta(seconds=1)
    for path in ("/v1/quality/status", "/v1/tenant", "/v1/quality/status"):
        r = client.get(path, headers=h)
        assert r.status_code == 401, (path, r.text)
        err = _error(r)
        assert err["code"] == "api_key_expired"
        assert key_id in err["message"] and tenancy.utc_text(expires) in err["message"], err
        assert new.token.split("_", 2)[2] not in r.text  # never the secret
    # a wrong secret for the same key id is no key at all, whatever the clock says
    monkeypatch.undo()
    monkeypatch.setattr(access_mod, "key_clock", lambda: later[0])
    r = client.get("/v1/tenant", headers=bearer(new.token[:-2] + ("xy" if not new.token.endswith("xy") else "zz")))
    assert r.status_code == 401 and _error(r)["code"] == "unauthenticated"

    # its use goes to its tenant's usage log as a revoked key's does: once per key within REVOKED_LOG_S
    tid = tenancy.get_tenant(db, "acme").id
    refused = [x for x in query_usage(db, tid, limit=100)["records"] if x["status"] == 401]
    assert [(x["key_id"], x["key_name"]) for x in refused] == [(key_id, "short")]
    # a key of another tenant, unexpired, is unaffected by the clock of this one
    assert client.get("/v1/tenant", headers=bearer(keys.mes)).status_code == 200


def test_an_expired_key_is_refused_by_a_fresh_process_and_shows_as_expired(settings, db):
    keys = _tenant(db)
    new = tenancy.create_api_key(db, TEST_SECRET, "acme", "mes", "old", expires_at=datetime.now(UTC) + timedelta(
        hours=1))
    with db.engine.begin() as conn:  # its hour has passed
        conn.execute(text("UPDATE api_keys SET expires_at = :t WHERE key_id = :k"),
                     {"t": datetime.now(UTC) - timedelta(minutes=5), "k": new.info.key_id})
    assert tenancy.resolve_api_key(db, TEST_SECRET, new.token) is None
    with TestClient(create_app(settings, db=db)) as client:
        r = client.get("/v1/quality/status", headers=bearer(new.token))
        assert r.status_code == 401 and _error(r)["code"] == "api_key_expired" and new.info.key_id in r.text
        listed = _api_keys(client, keys.admin)
        assert listed[new.info.key_id]["state"] == "expired"
        assert listed[keys.admin_key_id]["state"] == "active" and listed[keys.admin_key_id]["expires_at"] is None
        assert client.delete(f"/v1/apikeys/{new.info.key_id}", headers=bearer(keys.admin)).status_code == 200
        assert _api_keys(client, keys.admin)[new.info.key_id]["state"] == "revoked"  # revoked says revoked


# ------------------------------------------------------------------------------------------------ scope
def test_a_scoped_key_calls_only_its_modules_and_the_platform_routes_follow_its_role(client, db):
    keys = _tenant(db, modules=("quality", "energy"))
    h = bearer(keys.admin)
    scoped = client.post("/v1/apikeys", json={"role": "mes", "modules": ["quality"]}, headers=h).json()
    hs = bearer(scoped["api_key"])
    assert client.get("/v1/quality/status", headers=hs).status_code == 200
    r = client.get("/v1/energy/status", headers=hs)
    assert r.status_code == 403, r.text
    err = _error(r)
    assert err["code"] == "key_scope" and "'quality'" in err["message"] and "'energy'" in err["message"]
    assert scoped["key_id"] in err["message"]
    r = client.post("/v1/energy/forecast", json={}, headers=hs)  # refused before the body is read
    assert r.status_code == 403 and _error(r)["code"] == "key_scope"
    # in scope but not held by the tenant: the subscription's 403, as for any key
    wide = client.post("/v1/apikeys", json={"role": "planner", "modules": ["scheduling", "energy"]},
                       headers=h).json()
    r = client.get("/v1/scheduling/status", headers=bearer(wide["api_key"]))
    assert r.status_code == 403 and _error(r)["code"] == "not_subscribed"
    assert client.get("/v1/energy/status", headers=bearer(wide["api_key"])).status_code == 200
    r = client.get("/v1/quality/status", headers=bearer(wide["api_key"]))
    assert _error(r)["code"] == "key_scope" and "'scheduling', 'energy'" not in r.text  # catalogue order
    assert "'energy', 'scheduling'" in _error(r)["message"]
    # module-less routes: the role decides, as before; the tenant's page says what the calling key may do
    me = client.get("/v1/tenant", headers=hs)
    assert me.status_code == 200
    assert (me.json()["caller_key_modules"], me.json()["caller_key_expires_at"]) == (["quality"], None)
    assert client.get("/v1/tenant", headers=bearer(wide["api_key"])).json()["caller_key_modules"] == [
        "energy", "scheduling"]  # catalogue order
    assert client.get("/v1/tenant", headers=bearer(keys.mes)).json()["caller_key_modules"] is None  # unscoped
    assert client.get("/v1/apikeys", headers=hs).status_code == 403  # an mes key is no admin, scoped or not
    admin_q = client.post("/v1/apikeys", json={"role": "admin", "modules": ["quality"]}, headers=h).json()
    assert client.get("/v1/apikeys", headers=bearer(admin_q["api_key"])).status_code == 200
    assert client.get("/v1/usage", headers=bearer(admin_q["api_key"])).status_code == 200
    # unscoped: every module the tenant holds
    for m in ("quality", "energy"):
        assert client.get(f"/v1/{m}/status", headers=bearer(keys.mes)).status_code == 200


# ------------------------------------------------------------------------------------------------ last used
def test_last_used_is_kept_in_memory_and_written_in_one_update_per_flush_only_forward(client, app, db):
    keys = _tenant(db)
    writes = _UpdateCounter(db.engine)
    try:
        t0 = datetime.now(UTC)
        for _ in range(12):
            assert client.get("/v1/quality/status", headers=bearer(keys.mes)).status_code == 200
        assert writes.n == 0  # no write on the request path
        with db.engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM api_keys WHERE last_used_at IS NOT NULL")).scalar() == 0
        use = app.state.platform.access.key_use
        assert set(use.pending()) == {tenancy.key_id_of(keys.mes)}
        assert use.flush() == 1 and writes.n == 1
        listed = _api_keys(client, keys.admin)  # this call is the admin key's use, kept until the next flush
        mes = listed[tenancy.key_id_of(keys.mes)]
        used = datetime.fromisoformat(mes["last_used_at"].replace("Z", "+00:00"))
        assert t0 - timedelta(seconds=1) <= used <= datetime.now(UTC)
        assert listed[keys.admin_key_id]["last_used_at"] is None
        assert use.flush() == 1 and writes.n == 2  # the admin's call, then nothing more to write
        assert use.flush() == 0 and writes.n == 2
        # another process that saw an older call writes after this one: the time does not go back
        other = KeyUse(db)
        other.touch(tenancy.key_id_of(keys.mes), at=(used - timedelta(minutes=10)).timestamp())
        assert other.flush() == 1
        again = _api_keys(client, keys.admin)[tenancy.key_id_of(keys.mes)]["last_used_at"]
        assert again == mes["last_used_at"]
        other.touch(tenancy.key_id_of(keys.mes), at=(used + timedelta(minutes=3)).timestamp())
        other.flush()
        moved = _api_keys(client, keys.admin)[tenancy.key_id_of(keys.mes)]["last_used_at"]
        assert datetime.fromisoformat(moved.replace("Z", "+00:00")) == used + timedelta(minutes=3)
        # a refused key (wrong secret) is no authenticated call
        client.get("/v1/tenant", headers=bearer(keys.mes[:-1] + ("a" if keys.mes[-1] != "a" else "b")))
        assert tenancy.key_id_of(keys.mes) not in use.pending()
    finally:
        writes.close()


def test_last_used_is_written_by_the_background_flush_and_at_shutdown(settings, db):
    keys = _tenant(db)
    with TestClient(create_app(settings, db=db)) as client:
        assert client.get("/v1/tenant", headers=bearer(keys.mes)).status_code == 200
        assert client.app.state.platform.access.key_use.every_s == access_mod.LAST_USED_FLUSH_S == 60.0
    # the process stopped: what it kept was written
    listed = {k.key_id: k for k in tenancy.list_api_keys(db, "acme")}
    assert listed[tenancy.key_id_of(keys.mes)].last_used_at is not None

    use = KeyUse(db, every_s=0.05)  # the thread writes without being asked (every minute in a server)
    use.start()
    try:
        use.touch(keys.admin_key_id)
        deadline = time.monotonic() + 10
        while tenancy.list_api_keys(db, "acme")[0].last_used_at is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert {k.key_id: k for k in tenancy.list_api_keys(db, "acme")}[keys.admin_key_id].last_used_at is not None
    finally:
        use.close()


def test_a_failed_flush_keeps_the_times_for_the_next_one(db, monkeypatch):
    keys = _tenant(db)
    use = KeyUse(db)
    use.touch(keys.admin_key_id)

    class Down:
        def begin(self):  # noqa: ANN202
            raise OSError("database away")

    real = use.db
    monkeypatch.setattr(use, "db", type("D", (), {"engine": Down()})())
    assert use.flush() == 0 and keys.admin_key_id in use.pending()
    monkeypatch.setattr(use, "db", real)
    assert use.flush() == 1
    assert {k.key_id: k for k in tenancy.list_api_keys(db, "acme")}[keys.admin_key_id].last_used_at is not None


# ------------------------------------------------------------------------------------------------ the schema
def test_the_openapi_schema_describes_the_new_fields(client):
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    public = schemas["ApiKeyPublic"]["properties"]
    assert {"expires_at", "modules", "last_used_at", "state"} <= set(public)
    assert public["state"]["enum"] == ["active", "revoked", "expired"] or "enum" in str(public["state"])
    create = schemas["ApiKeyCreate"]["properties"]
    assert "end of that day UTC" in create["expires_at"]["description"]
    assert "quality" in str(create["modules"]) and "key_scope" in create["modules"]["description"]


# ------------------------------------------------------------------------------------------------ the fast path
def test_the_prediction_fast_path_refuses_an_expired_or_out_of_scope_key_as_the_route_does(
    settings, db, demo_models, monkeypatch
):
    """Plain prediction calls are answered before the routes (serving/fastpath.py) from the cached caller: an expired
    key falls to the route's 401, and a scoped key gets the same 403 there."""
    from models.demo import ENDPOINTS, sample_request
    from models.registry import ModelRegistry
    from serving import fastpath

    models_dir, demo_dir = demo_models
    _tenant(db, modules=("maintenance", "quality"))
    ModelRegistry(db, settings.home, "acme").register("failure", "maintenance", models_dir / "failure" / "v1")
    expires = datetime.now(UTC) + timedelta(hours=1)
    brief = tenancy.create_api_key(db, TEST_SECRET, "acme", "mes", "brief", expires_at=expires)
    quality = tenancy.create_api_key(db, TEST_SECRET, "acme", "mes", "quality-only", modules=["quality"])
    answered = {"fast": 0}
    inner = fastpath.answer

    def answer(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        out = inner(*args, **kwargs)  # raises Fallback when the route must answer
        answered["fast"] += 1
        return out

    monkeypatch.setattr(fastpath, "answer", answer)
    url, body = ENDPOINTS["failure"], sample_request(demo_dir, "failure")
    app = create_app(settings, db=db)
    app.state.platform.access.ttl_s = 600.0
    with TestClient(app) as client:
        for _ in range(3):
            assert client.post(url, json=body, headers=bearer(brief.token)).status_code == 200
        assert answered["fast"] >= 1  # the key is cached and the fast path answers it
        for _ in range(2):
            r = client.post(url, json=body, headers=bearer(quality.token))
            assert r.status_code == 403 and _error(r)["code"] == "key_scope", r.text
        assert answered["fast"] >= 2  # the second scoped call was refused by the fast path itself
        monkeypatch.setattr(access_mod, "key_clock", lambda: expires + timedelta(seconds=1))
        fast = answered["fast"]
        r = client.post(url, json=body, headers=bearer(brief.token))
        assert r.status_code == 401 and _error(r)["code"] == "api_key_expired" and brief.info.key_id in r.text
        assert answered["fast"] == fast


def test_a_key_scoped_to_scheduling_may_not_run_a_plans_maintenance_model(settings, db, monkeypatch):
    """A plan's ``maintenance`` field runs the maintenance module's model: a key scoped to scheduling alone is
    refused it (403 key_scope, naming the field), before the model runs; the same plan without it solves."""
    from tests.serving.test_scheduling_api import PROBLEM
    from tests.serving.test_scheduling_linked_turns import LINKED, MAINTENANCE, RISKS

    _tenant(db, modules=("scheduling", "maintenance"))
    key = tenancy.create_api_key(db, TEST_SECRET, "acme", "mes", "planner-line", modules=["scheduling"]).token
    calls = []
    monkeypatch.setattr(f"{LINKED}.machine_risk", lambda *_a: calls.append(1) or RISKS)
    with TestClient(create_app(settings, db=db)) as c:
        r = c.post("/v1/scheduling/solve", json={"problem": PROBLEM, "time_limit_s": 2, "maintenance": MAINTENANCE},
                   headers=bearer(key))
        err = _error(r)
        assert r.status_code == 403 and err["code"] == "key_scope", r.text
        assert "'maintenance' field" in err["message"] and "'scheduling'" in err["message"], err
        assert calls == []
        assert c.post("/v1/scheduling/solve", json={"problem": PROBLEM, "time_limit_s": 2},
                      headers=bearer(key)).status_code == 200
