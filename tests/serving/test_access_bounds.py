"""What a client can make the access layer hold is bounded: failed-lookup buckets per address, refused keys."""

from serving import access as access_module
from serving.access import Access
from serving.ratelimit import LocalBuckets
from tests.serving.helpers import make_tenant

PEPPER = "test-secret-0123456789"


def test_buckets_of_made_up_addresses_stay_bounded_and_a_busy_one_keeps_its_count():
    b = LocalBuckets(max_keys=100)
    for _ in range(3):  # one address spends its allowance of 3
        b.take(("busy",), 0.001, 3)
    assert b.take(("busy",), 0.001, 3) is not None
    for i in range(5_000):  # a client rotating addresses, each trying one key
        b.take((f"2001:db8::{i:x}",), 10.0, 20.0)
        assert len(b) <= 100
    # the busy address is among the oldest refilled, but its bucket is not full: it may be dropped only with the
    # oldest half when every bucket is in use; the made-up ones (full again after a while) go first
    b2 = LocalBuckets(max_keys=10)
    for _ in range(3):
        b2.take(("busy",), 0.001, 3)
    for i in range(50):
        b2.take((f"a{i}",), 1e9, 1.0)  # refill at once: full again, so dropped first
    assert b2.take(("busy",), 0.001, 3) is not None  # still refused: its count was kept


def test_refused_keys_filling_the_cache_do_not_push_out_the_tenants_keys(db, monkeypatch):
    monkeypatch.setattr(access_module, "_MAX_CACHED_KEYS", 50)
    acme = make_tenant(db, PEPPER, "acme", modules=("quality",))
    access = Access(db, PEPPER)
    digest = access.digest(acme.mes)
    assert access.resolve(acme.mes) is not None
    for i in range(200):
        assert access.resolve(f"sfai_k{i:012x}_made-up") is None
        assert len(access._keys) <= 50
    known, ctx = access.lookup(digest)
    assert known and ctx is not None and ctx.tenant == "acme"  # still cached: no database lookup for it
