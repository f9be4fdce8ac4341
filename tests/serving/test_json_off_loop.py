"""A big JSON body is parsed in a worker thread, not on the event loop that answers every tenant's calls: a 90-MB
ingest or prediction body held it, and /healthz with it, for 7 s (performance audit)."""

import asyncio

import pytest

from serving import errors
from tests.serving.helpers import bearer, make_tenant

PEPPER = "test-secret-0123456789"


@pytest.fixture
def parses(monkeypatch):
    """(body size, whether it was parsed on the event loop) of each JSON body parsed."""
    seen = []
    real = errors.parse_json

    def parse_json(raw, *a, **k):
        try:
            asyncio.get_running_loop()
            seen.append((len(raw), True))
        except RuntimeError:
            seen.append((len(raw), False))
        return real(raw, *a, **k)

    monkeypatch.setattr(errors, "parse_json", parse_json)
    return seen


def test_big_bodies_are_parsed_off_the_loop_small_ones_on_it(client, db, parses):
    acme = make_tenant(db, PEPPER, "acme", modules=("scheduling",))
    small = {"problem": {"machines": ["M1"], "jobs": [{"id": "J1", "operations": [{"machines": {"M1": 3}}]}]},
             "time_limit_s": 1}
    jobs = [{"id": f"J{i}", "operations": [{"machines": {"M1": 3}}]} for i in range(3000)]
    big = {"problem": {"machines": ["M1"], "jobs": jobs}, "time_limit_s": 1}
    for body in (small, big):
        r = client.post("/v1/scheduling/solve", json=body, headers=bearer(acme.mes))
        assert r.status_code == 200, r.text
    rows = [{"entity": f"e{i}", "event_timestamp": "2026-01-01T00:00:00Z", "x": float(i)} for i in range(2000)]
    client.post("/v1/ingest/anything", json={"records": rows}, headers=bearer(acme.mes))  # answered or refused
    sizes = {size > errors.INLINE_JSON_BYTES: on_loop for size, on_loop in parses}
    assert len(parses) >= 3 and sizes == {False: True, True: False}, parses


def test_a_bad_big_body_is_still_a_422_naming_it(client, db):
    acme = make_tenant(db, PEPPER, "acme", modules=("scheduling",))
    raw = b'{"problem": {"machines": ["M1"], "jobs": [' + b'{"id": "J", "id": "K"},' * 5000 + b"]}}"
    r = client.post("/v1/scheduling/solve", content=raw, headers={**bearer(acme.mes),
                                                                  "content-type": "application/json"})
    assert r.status_code == 422 and "names the key 'id' twice" in r.json()["error"]["message"]
