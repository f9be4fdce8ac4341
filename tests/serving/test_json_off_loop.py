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


def test_big_bodies_are_read_a_few_at_a_time(monkeypatch):
    """Twenty 7.9-MB bodies at once peaked at 3.8 GB: the bytes of bodies parsed at once are bounded per process
    (``PARSE_BUDGET_BYTES``), the others wait their turn."""
    import threading
    import time

    active, peak, lock = [0], [0], threading.Lock()
    real = errors.parse_json

    def parse_json(raw, *a, **k):
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        time.sleep(0.05)
        with lock:
            active[0] -= 1
        return real(raw, *a, **k)

    monkeypatch.setattr(errors, "parse_json", parse_json)
    raw = b'{"x": "' + b"a" * (errors.INLINE_JSON_BYTES + 10) + b'"}'
    monkeypatch.setattr(errors, "PARSE_BUDGET_BYTES", 2 * len(raw) + 100)  # two such bodies at once

    async def main():
        return await asyncio.gather(*(errors.parse_json_off_loop(raw) for _ in range(6)))

    assert all(doc["x"].startswith("aaa") for doc in asyncio.run(main()))
    assert peak[0] == 2
    huge = b'{"x": "' + b"a" * (3 * len(raw)) + b'"}'  # bigger than the budget: read alone, not refused

    async def alone():
        return await asyncio.gather(errors.parse_json_off_loop(huge), errors.parse_json_off_loop(raw))

    peak[0] = 0
    assert [len(d["x"]) for d in asyncio.run(alone())] == [3 * len(raw), errors.INLINE_JSON_BYTES + 10]
    assert peak[0] == 1
