"""The monthly quota across serving processes, and a Redis that fails or hangs.

Each app below is one serving process (its own access cache and counts) on the test's database. Each process used to
count from the usage log every 30 s and by itself in between, so N processes admitted up to N times the calls left
(the operator's audit: a 20-call quota, `sfai serve --workers 2`, 60 calls: 35 answered). And a Redis that accepts
connections but never answers cost every call its 0.5 s timeout on the event loop (40 calls: 16 s).
"""

from __future__ import annotations

import socket
import threading
import time
import uuid
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient

from serving import access as access_module
from serving import tenancy
from serving.access import Access, month_start, next_month_start
from serving.app import create_app
from serving.db import Database
from serving.ratelimit import RedisBuckets
from serving.usage import deployment_id
from tests.serving.helpers import bearer, make_tenant
from tests.serving.test_api import assert_error

PEPPER = "test-secret-0123456789"
STATUS = "/v1/scheduling/jobs"  # a cheap call the quota counts (GET /v1/<module>/status is not counted)


def _client(settings, db, **update) -> TestClient:
    return TestClient(create_app(settings.model_copy(update=update), db=db))


def _statuses(clients, headers, calls: int) -> list[int]:
    """``calls`` calls, taking turns between the processes."""
    return [clients[i % len(clients)].get(STATUS, headers=headers).status_code for i in range(calls)]


@pytest.fixture
def shared_redis():
    """Settings for a Redis shared by the apps, under a prefix of this test's own (its keys deleted after)."""
    import redis

    from tests.conftest import require_service
    from tests.feature_store.conftest import REDIS_URL, redis_problem

    require_service(redis_problem())
    prefix = f"sfai-test:{uuid.uuid4().hex[:8]}:"
    yield {"rate_limit_redis": REDIS_URL, "redis_prefix": prefix}
    client = redis.Redis.from_url(REDIS_URL)
    for k in client.scan_iter(match=prefix + "*"):
        client.delete(k)


@pytest.fixture
def blackhole():
    """A TCP server that accepts connections and never answers: a hung Redis. Yields its redis:// URL."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    server.settimeout(0.1)
    conns, stop = [], threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conns.append(server.accept()[0])
            except OSError:
                pass

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    yield f"redis://127.0.0.1:{server.getsockname()[1]}/0"
    stop.set()
    t.join()
    server.close()
    for c in conns:
        c.close()


# --------------------------------------------------------------------------------------------- without Redis
def test_two_processes_without_redis_keep_to_the_quota(settings, db):
    """Near the end of the quota each process reads the usage log's count again before every call: two processes
    taking turns admit the quota, not twice it (each used to admit all that was left at its last read)."""
    acme = make_tenant(db, PEPPER, "acme", modules=())
    tenancy.subscribe(db, "acme", "scheduling", request_quota=100)
    h = bearer(acme.mes)
    with _client(settings, db) as a, _client(settings, db) as b:
        got = _statuses([a, b], h, 140)
        assert got.count(200) == 100 and got[100:] == [429] * 40, got
        # a raised quota takes effect at once in the process told (invalidate), and counts on from the log
        tenancy.subscribe(db, "acme", "scheduling", request_quota=104)
        for c in (a, b):
            c.app.state.platform.access.invalidate(tenancy.get_tenant(db, "acme").id)
        assert _statuses([a, b], h, 8) == [200] * 4 + [429] * 4


def test_far_from_the_quota_the_log_is_read_once_per_refresh(settings, db, monkeypatch):
    acme = make_tenant(db, PEPPER, "acme", modules=())
    tenancy.subscribe(db, "acme", "scheduling", request_quota=1_000_000)
    reads = []
    real = access_module.count_calls
    monkeypatch.setattr(access_module, "count_calls", lambda *a: reads.append(a) or real(*a))
    with _client(settings, db) as client:
        assert set(_statuses([client], bearer(acme.mes), 200)) == {200}
    assert len(reads) == 1


def test_a_process_keeps_its_own_calls_the_log_does_not_hold_yet(settings, db, monkeypatch):
    """Calls whose records are not committed yet (answers still running) are not in the log's count: a process
    re-reading it near the end adds its own calls since its last read, so that alone it never passes the quota."""
    acme = make_tenant(db, PEPPER, "acme", modules=())
    tenancy.subscribe(db, "acme", "scheduling", request_quota=10)
    monkeypatch.setattr(access_module, "count_calls", lambda *a: 0)  # the log lags behind every call
    access = Access(db, PEPPER)
    ctx = access.resolve(acme.mes)
    for _ in range(10):
        access.admit(ctx, "scheduling")
    with pytest.raises(access_module.QuotaExceeded):
        access.admit(ctx, "scheduling")


# --------------------------------------------------------------------------------------------- with Redis
def test_quota_is_exact_across_processes_with_redis(settings, db, shared_redis):
    """One counter per subscription and month in Redis, started from the usage log: processes together admit the
    quota exactly; the counter expires after its month; a raised quota takes effect."""
    import redis

    acme = make_tenant(db, PEPPER, "acme", modules=())
    tenancy.subscribe(db, "acme", "scheduling", request_quota=12)
    h = bearer(acme.mes)
    with _client(settings, db) as alone:  # two calls before Redis counted anything: in the usage log only
        assert _statuses([alone], h, 2) == [200, 200]
    with _client(settings, db, **shared_redis) as a, _client(settings, db, **shared_redis) as b:
        got = _statuses([a, b], h, 16)
        assert got == [200] * 10 + [429] * 6, got
        assert_error(a.get(STATUS, headers=h), 429, "quota_exceeded")
        tenant_id = tenancy.get_tenant(db, "acme").id
        r = redis.Redis.from_url(shared_redis["rate_limit_redis"])
        now = datetime.now(UTC)
        key = f"{shared_redis['redis_prefix']}{deployment_id(db)}:quota:{tenant_id}:scheduling:{month_start(now):%Y-%m}"
        assert int(r.get(key)) == 12
        to_month_end = (next_month_start(now) - now).total_seconds()
        # expires a day after its month (within a second: Redis's clock and this one are read apart, and the two
        # had differed by a few milliseconds)
        assert to_month_end < r.pttl(key) / 1000 <= to_month_end + 86400 + 1
        # the quota raised: three more calls between both processes
        tenancy.subscribe(db, "acme", "scheduling", request_quota=15)
        for c in (a, b):
            c.app.state.platform.access.invalidate(tenant_id)
        assert _statuses([a, b], h, 6) == [200] * 3 + [429] * 3
        assert int(r.get(key)) == 15


def test_calls_counted_locally_while_redis_was_away_are_added_back(settings, db, shared_redis):
    """While Redis is unreachable a process counts locally; once Redis answers again its next call raises the
    shared counter to the usage log's count, so the calls let through meanwhile are not counted twice nor lost."""
    acme = make_tenant(db, PEPPER, "acme", modules=())
    tenancy.subscribe(db, "acme", "scheduling", request_quota=10)
    h = bearer(acme.mes)
    with _client(settings, db, **shared_redis) as a, _client(settings, db, **shared_redis) as b:
        assert _statuses([a, b], h, 4) == [200] * 4
        breaker = a.app.state.platform.access.buckets.breaker
        breaker.retry_s = 3600  # no probe closes it during the test
        breaker.failed(ConnectionError("test: Redis away"))
        assert _statuses([a], h, 3) == [200] * 3  # counted in a alone (the log says 7)
        breaker._probed(None)  # Redis answers again
        assert _statuses([b, a], h, 6) == [200] * 3 + [429] * 3


# --------------------------------------------------------------------------------------------- a hung Redis
def test_a_hung_redis_costs_one_timeout_not_one_per_call(settings, db, blackhole, monkeypatch):
    """A Redis that accepts connections and never answers: the first call waits for the timeout, the breaker then
    opens and the calls after it skip Redis at once (rate limits not enforced, the quota counted locally, without a
    read of the usage log per call)."""
    acme = make_tenant(db, PEPPER, "acme", modules=())
    tenancy.subscribe(db, "acme", "scheduling", request_quota=1000)
    h = bearer(acme.mes)
    reads = []
    real = access_module.count_calls
    monkeypatch.setattr(access_module, "count_calls", lambda *a: reads.append(a) or real(*a))
    with _client(settings, db, rate_limit_redis=blackhole) as client:
        t0 = time.monotonic()
        got = _statuses([client], h, 40)
        took = time.monotonic() - t0
        assert got == [200] * 40
        assert took < 3, f"40 calls took {took:.1f} s"  # was 0.5 s each (20 s)
        assert client.app.state.platform.access.buckets.breaker.open
        assert len(reads) == 1
        # the quota still holds, counted in this process
        tenancy.subscribe(db, "acme", "scheduling", request_quota=45)
        client.app.state.platform.access.invalidate(tenancy.get_tenant(db, "acme").id)
        assert _statuses([client], h, 10) == [200] * 5 + [429] * 5


def test_the_breaker_probes_in_the_background_and_closes_when_redis_answers(blackhole):
    """One probe at a time, off the request path; calls skip Redis while it is open, without waiting."""
    from serving.ratelimit import Breaker
    answers = [ConnectionError("down"), ConnectionError("down"), None]
    probes = []

    def probe():
        probes.append(threading.current_thread().name)
        answer = answers.pop(0)
        if answer is not None:
            raise answer

    breaker = Breaker(probe, "test", retry_s=0.05)
    breaker.failed(ConnectionError("down"))
    breaker.failed(ConnectionError("still down"))  # already open: no second probe thread
    assert breaker.open and breaker.trips == 1
    deadline = time.monotonic() + 5
    while breaker.open and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not breaker.open and len(probes) == 3 and set(probes) == {"sfai-redis-probe"}

    buckets = RedisBuckets(blackhole)
    t0 = time.monotonic()
    assert buckets.take(("t", "quality"), 1.0, 1.0) is None  # fails open after the timeout
    assert buckets.breaker.open and time.monotonic() - t0 >= 0.4
    t0 = time.monotonic()
    for _ in range(100):
        assert buckets.take(("t", "quality"), 1.0, 1.0) is None
        assert buckets.count(("t", "quality", "2026-01"), 5, -1, time.time() + 60) is None
    assert time.monotonic() - t0 < 0.1


@pytest.mark.parametrize("with_redis", [False, True])
def test_a_call_refused_after_it_was_counted_gives_its_count_back(settings, db, request, monkeypatch, with_redis):
    """A background solve refused for a full queue (429 ``too_many_jobs``) was admitted, and so counted, first. The
    usage log does not count it, but the Redis counter kept it for the month: a tenant polling a full queue used
    up its quota with calls that were never performed."""
    import serving.scheduling as scheduling
    from tests.serving.test_scheduling_api import PROBLEM

    gate = threading.Event()
    real = scheduling.solve_prepared
    monkeypatch.setattr(scheduling, "solve_prepared", lambda *a, **k: (gate.wait(30), real(*a, **k))[1])
    extra = request.getfixturevalue("shared_redis") if with_redis else {}
    acme = make_tenant(db, PEPPER, "acme", modules=())
    tenancy.subscribe(db, "acme", "scheduling", request_quota=5)
    h = bearer(acme.mes)
    body = {"problem": PROBLEM, "time_limit_s": 2}
    try:
        with _client(settings, db, scheduling_max_active_jobs=1, **extra) as c:
            codes = [c.post("/v1/scheduling/jobs", json=body, headers=h).status_code for _ in range(5)]
            assert codes == [202] + [429] * 4
            gate.set()
            # one call counted so far: four more solves, then the quota
            got = [c.post("/v1/scheduling/solve", json=body, headers=h).status_code for _ in range(5)]
            assert got == [200] * 4 + [429], got
            assert_error(c.post("/v1/scheduling/solve", json=body, headers=h), 429, "quota_exceeded")
    finally:
        gate.set()


def test_two_deployments_on_one_redis_keep_their_counters_apart(settings, db, shared_redis, tmp_path):
    """Two deployments (two databases) on one Redis named their counters by tenant id alone: the second's tenant 1
    was refused as over the quota the first's tenant 1 had used (operator's audit). Each database's own id now names
    its counters; two processes of one deployment still share theirs."""
    other_db = Database(f"sqlite:///{tmp_path / 'other.db'}")
    try:
        assert deployment_id(db) != deployment_id(other_db) and len(deployment_id(db)) == 12
        acme = make_tenant(db, PEPPER, "acme", modules=())
        oldco = make_tenant(other_db, PEPPER, "oldco", modules=())
        assert tenancy.get_tenant(db, "acme").id == tenancy.get_tenant(other_db, "oldco").id  # both tenant 1
        tenancy.subscribe(db, "acme", "scheduling", request_quota=3)
        tenancy.subscribe(other_db, "oldco", "scheduling", request_quota=3)
        with _client(settings, db, **shared_redis) as a, _client(settings, other_db, **shared_redis) as b:
            assert _statuses([a], bearer(acme.mes), 4) == [200] * 3 + [429]
            assert _statuses([b], bearer(oldco.mes), 4) == [200] * 3 + [429]  # its own three, not none
    finally:
        other_db.dispose()
