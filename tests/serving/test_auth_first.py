"""A key is checked before a body is read, and a key's secret never reaches the server log."""

import json
import logging

import pytest
from sqlalchemy.exc import OperationalError

from serving import handlers, tenancy
from tests.serving.helpers import bearer, make_tenant

PEPPER = "test-secret-0123456789"
# a valid plan of 40,000 one-operation jobs: ~2.4 MB that FastAPI would parse before any dependency runs
BIG = json.dumps({"problem": {"machines": ["M1"], "jobs": [
    {"id": f"J{i}", "operations": [{"machines": {"M1": 1}}]} for i in range(40_000)]}}).encode()


@pytest.fixture
def parses(monkeypatch):
    seen = []
    real = handlers.parse_json_off_loop

    async def counting(raw, **kw):
        seen.append(len(raw))
        return await real(raw, **kw)

    monkeypatch.setattr(handlers, "parse_json_off_loop", counting)
    return seen


@pytest.mark.parametrize("path", ["/v1/scheduling/solve", "/v1/apikeys", "/v1/features/online"])
def test_a_body_without_a_valid_key_is_answered_401_unread(client, db, parses, path):
    make_tenant(db, PEPPER, "acme", modules=("scheduling",))
    for headers in ({}, bearer("sfai_kdeadbeef0000_notakey"), {"Authorization": "Basic abc"}):
        r = client.post(path, content=BIG, headers={**headers, "content-type": "application/json"})
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthenticated", r.text
    assert parses == []  # 401 before the body: nothing parsed


def test_a_valid_key_gets_its_body_read_once_and_the_call_answered(client, db, parses):
    acme = make_tenant(db, PEPPER, "acme", modules=("scheduling",))
    body = {"problem": {"machines": ["M1"], "jobs": [{"id": "J1", "operations": [{"machines": {"M1": 2}}]}]}}
    r = client.post("/v1/scheduling/solve", json=body, headers=bearer(acme.mes))
    assert r.status_code == 200 and r.json()["makespan"] == 2, r.text
    assert len(parses) == 1
    r = client.post("/v1/apikeys", json={"name": "line-2", "role": "mes"}, headers=bearer(acme.mes))
    assert r.status_code == 403  # the role is checked after the key, as before


def test_a_keys_secret_in_a_path_is_not_logged_when_the_database_fails(client, db, monkeypatch, caplog):
    acme = make_tenant(db, PEPPER, "acme", modules=("quality",))

    def locked(*_a, **_k):
        raise OperationalError("UPDATE api_keys", {}, Exception("database is locked"))

    monkeypatch.setattr(tenancy, "revoke_api_key", locked)
    secret = acme.mes.split("_", 2)[2]
    with caplog.at_level(logging.WARNING):
        r = client.delete(f"/v1/apikeys/{acme.mes}", headers=bearer(acme.admin))
    assert r.status_code == 503 and r.json()["error"]["code"] == "database_unavailable"
    logged = "\n".join(rec.getMessage() for rec in caplog.records)
    assert "/v1/apikeys/sfai_k" in logged and "_***" in logged
    assert secret not in logged
