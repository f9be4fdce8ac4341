"""Repeated refusals (403, 429) collapsed into one usage record per kind and window: the first is written at once,
the rest as one record with their count, which the chain hashes and the counts add up."""

import csv
import io
import time
from datetime import timedelta

from fastapi.testclient import TestClient

from serving import usage
from serving.app import create_app
from serving.tenancy import get_tenant, utcnow
from serving.usage import ChainKey, Refusals, UsageEntry, query_usage, verify_chain
from tests.serving.helpers import bearer, make_tenant

PEPPER = "test-secret-0123456789"


def refusal(i: int, *, endpoint: str = "/v1/quality/status", status: int = 429, key_id: str = "kabc") -> UsageEntry:
    return UsageEntry(ts=utcnow() + timedelta(seconds=i), tenant_id=1, key_id=key_id, module="quality", method="GET",
                      endpoint=endpoint, status=status, latency_us=100 * (i + 1), request_id=f"r-{i}")


def test_refusals_of_one_kind_are_counted_into_one_record_per_window():
    r = Refusals(window_s=60)
    assert r.absorb(refusal(0), now=0.0) is False  # the first is written at once
    assert [r.absorb(refusal(i), now=float(i)) for i in range(1, 6)] == [True] * 5
    assert r.absorb(refusal(9, status=403), now=2.0) is False  # another kind: its own first record
    assert r.absorb(refusal(9, key_id="kother"), now=2.0) is False
    assert r.due(now=30.0) == []
    (rec,) = r.due(now=60.5)  # the first window: the last refusal's fields, their count and mean latency
    assert (rec.calls, rec.request_id, rec.status, rec.latency_us) == (5, "r-5", 429, 2000 // 5)
    assert len(r) == 2 and r.due(now=62.5) == []  # the 403's and the other key's windows end with nothing to write
    assert len(r) == 0
    assert r.absorb(refusal(7), now=61.0) is False  # a new window starts with a record of its own
    assert r.absorb(refusal(8), now=62.0) is True
    (late,) = r.due(now=200.0)
    assert late.calls == 1 and late.request_id == "r-8"


def test_refusals_past_the_kinds_held_are_written_one_by_one_and_failed_writes_come_back():
    r = Refusals(window_s=60, max_kinds=2)
    assert [r.absorb(refusal(0, endpoint=f"/v1/jobs/{i}"), now=0.0) for i in range(3)] == [False] * 3
    assert len(r) == 2  # the third kind is not held: every refusal of it is written
    assert r.absorb(refusal(1, endpoint="/v1/jobs/2"), now=1.0) is False
    assert r.absorb(refusal(1, endpoint="/v1/jobs/0"), now=1.0) is True
    (rec,) = r.due(every=True)
    r.put_back(rec)  # its commit failed: counted again for the next try
    assert r.absorb(refusal(2, endpoint="/v1/jobs/0"), now=2.0) is True
    (again,) = r.due(every=True)
    assert again.calls == 2 and again.endpoint == "/v1/jobs/0"


def _hammer(client: TestClient, headers: dict, n: int) -> list[tuple[str, int]]:
    out = []
    for i in range(n):
        rid = f"hammer-{i}"
        out.append((rid, client.get("/v1/quality/status", headers={**headers, "X-Request-ID": rid}).status_code))
    return out


def test_a_client_retrying_a_429_writes_two_records_not_one_per_call(settings, db):
    acme = make_tenant(db, PEPPER, "acme", modules=("quality",))
    tenant_id = get_tenant(db, "acme").id
    app = create_app(settings.model_copy(update={"rate_limits": {"standard": 0.01}, "rate_limit_burst_s": 100}),
                     db=db)
    with TestClient(app) as client:
        calls = _hammer(client, bearer(acme.mes), 40)
        refused = [rid for rid, status in calls if status == 429]
        assert [s for _, s in calls[:1]] == [200] and len(refused) == 39
        seen = query_usage(db, tenant_id, limit=100)["records"]
        # the first refusal is in the log before its answer; the others wait for their window's record
        assert sorted((r["request_id"], r["status"], r["calls"]) for r in seen) == [
            ("hammer-0", 200, 1), (refused[0], 429, 1)]
    log = query_usage(db, tenant_id, limit=100)  # the server's close wrote the window's record
    collapsed = [r for r in log["records"] if r["calls"] > 1]
    assert [(r["request_id"], r["status"], r["calls"], r["endpoint"]) for r in collapsed] == [
        (refused[-1], 429, 38, "/v1/quality/status")]
    assert log["total"] == 40 and log["by_module"]["quality"] == {
        "calls": 40, "ok": 1, "client_errors": 39, "server_errors": 0, "refused": 39}
    assert len(log["records"]) == 3
    assert verify_chain(db, key=ChainKey(settings.secret_key)).ok


def test_the_window_is_written_while_the_server_runs_and_exported_with_its_count(settings, db, monkeypatch):
    monkeypatch.setattr(usage, "REFUSAL_FLUSH_EVERY_S", 0.05)
    acme = make_tenant(db, PEPPER, "acme", modules=("quality",))
    tenant_id = get_tenant(db, "acme").id
    app = create_app(settings.model_copy(update={"rate_limits": {"standard": 0.01}, "rate_limit_burst_s": 100}),
                     db=db)
    with TestClient(app) as client:
        app.state.platform.writer.refusals.window_s = 0.3
        first = _hammer(client, bearer(acme.mes), 6)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if any(r["calls"] > 1 for r in query_usage(db, tenant_id, limit=100)["records"]):
                break
            time.sleep(0.05)
        second = _hammer(client, bearer(acme.mes), 3)  # a new window: its first refusal is written at once
        text = client.get("/v1/usage/export?format=csv", headers=bearer(acme.admin)).text
    rows = list(csv.DictReader(io.StringIO(text)))
    got = [(r["request_id"], r["status"], r["calls"]) for r in rows if r["endpoint"] == "/v1/quality/status"]
    assert got[:4] == [(first[0][0], "200", "1"), (first[1][0], "429", "1"), (first[-1][0], "429", "4"),
                       (second[0][0], "429", "1")]
    log = query_usage(db, tenant_id, limit=100)  # the second window's other two: one record, by the close at latest
    assert [(r["request_id"], r["calls"]) for r in log["records"] if r["seq"] > int(rows[3]["seq"])
            and r["endpoint"] == "/v1/quality/status"] == [(second[-1][0], 2)]
    assert log["by_module"]["quality"]["calls"] == 9
