"""Tenants, subscriptions and API keys on the metadata database (SQLite and PostgreSQL)."""

from datetime import timedelta

import pytest
from sqlalchemy import select, text

from serving import tenancy
from serving.db.tables import ApiKey
from serving.errors import Conflict, InvalidInput, NotFound

PEPPER = "test-secret-0123456789"


def test_create_and_list_tenants(db):
    t = tenancy.create_tenant(db, "acme-steel", "24", "ACME 제철")
    assert (t.name, t.ksic_code, t.ksic_name_ko, t.display_name) == (
        "acme-steel",
        "C24",
        "1차 금속 제조업",
        "ACME 제철",
    )
    tenancy.create_tenant(db, "busan-chips", "C26")
    assert [x.name for x in tenancy.list_tenants(db)] == ["acme-steel", "busan-chips"]
    with pytest.raises(Conflict, match="already exists"):
        tenancy.create_tenant(db, "acme-steel", "C24")
    with pytest.raises(InvalidInput, match="C10-C34"):
        tenancy.create_tenant(db, "other", "C35")
    with pytest.raises(InvalidInput, match="tenant name"):
        tenancy.create_tenant(db, "Bad Name!", "C24")
    with pytest.raises(NotFound):
        tenancy.get_tenant(db, "nobody")


def test_module_catalogue_is_seeded(db):
    assert [m for m, _ in tenancy.list_modules(db)] == sorted(tenancy.MODULES)


def test_subscribe_change_plan_and_unsubscribe(db):
    t = tenancy.create_tenant(db, "acme", "C29")
    s1 = tenancy.subscribe(db, "acme", "maintenance", plan="trial")
    assert s1.request_quota == tenancy.PLANS["trial"]
    assert set(tenancy.active_subscriptions(db, t.id)) == {"maintenance"}
    s2 = tenancy.subscribe(db, "acme", "maintenance", plan="enterprise")
    active = tenancy.active_subscriptions(db, t.id)
    assert active["maintenance"].plan == "enterprise" and active["maintenance"].request_quota is None
    history = tenancy.list_subscriptions(db, "acme")
    assert [h.plan for h in history] == ["trial", "enterprise"]
    assert history[0].ends_at is not None and history[0].ends_at <= s2.starts_at
    tenancy.unsubscribe(db, "acme", "maintenance")
    assert tenancy.active_subscriptions(db, t.id) == {}
    assert len(tenancy.list_subscriptions(db, "acme")) == 2  # history stays
    with pytest.raises(NotFound, match="no active subscription"):
        tenancy.unsubscribe(db, "acme", "maintenance")
    with pytest.raises(InvalidInput, match="unknown module"):
        tenancy.subscribe(db, "acme", "painting")
    with pytest.raises(InvalidInput, match="unknown plan"):
        tenancy.subscribe(db, "acme", "energy", plan="gold")


def test_subscription_window_is_respected(db):
    t = tenancy.create_tenant(db, "acme", "C29")
    now = tenancy.utcnow()
    tenancy.subscribe(db, "acme", "energy", starts_at=now + timedelta(days=1))
    tenancy.subscribe(db, "acme", "quality", starts_at=now - timedelta(days=10), ends_at=now - timedelta(days=1))
    assert tenancy.active_subscriptions(db, t.id) == {}
    with pytest.raises(InvalidInput, match="after its start"):
        tenancy.subscribe(db, "acme", "scheduling", starts_at=now, ends_at=now - timedelta(seconds=1))


def test_api_keys_are_random_hashed_and_revocable(db):
    tenancy.create_tenant(db, "acme", "C29")
    a = tenancy.create_api_key(db, PEPPER, "acme", "mes", "line-3")
    b = tenancy.create_api_key(db, PEPPER, "acme", "mes", "line-4")
    assert a.token != b.token and a.token.startswith("sfai_" + a.info.key_id + "_")
    assert len(a.token.split("_", 2)[2]) >= 40
    with db.session() as s:
        stored = s.scalars(select(ApiKey)).all()
        assert len(stored) == 2
        for k in stored:  # only the keyed hash is kept: no key or secret part in the row
            assert a.token.split("_", 2)[2] not in (k.secret_hash, k.name, k.key_id)
            assert len(k.secret_hash) == 64
    with db.engine.connect() as c:
        dump = " ".join(str(v) for row in c.execute(text("SELECT * FROM api_keys")) for v in row)
    assert a.token not in dump and a.token.split("_", 2)[2] not in dump

    ctx = tenancy.resolve_api_key(db, PEPPER, a.token)
    assert (ctx.tenant, ctx.role, ctx.key_id) == ("acme", "mes", a.info.key_id)
    assert tenancy.resolve_api_key(db, "another-pepper", a.token) is None
    assert tenancy.resolve_api_key(db, PEPPER, a.token[:-1] + ("x" if a.token[-1] != "x" else "y")) is None
    assert tenancy.resolve_api_key(db, PEPPER, "not-a-key") is None
    tenancy.revoke_api_key(db, a.info.key_id)
    assert tenancy.resolve_api_key(db, PEPPER, a.token) is None
    assert tenancy.resolve_api_key(db, PEPPER, b.token) is not None
    with pytest.raises(InvalidInput, match="unknown role"):
        tenancy.create_api_key(db, PEPPER, "acme", "root")


def test_revoke_scoped_to_tenant(db):
    tenancy.create_tenant(db, "acme", "C29")
    tenancy.create_tenant(db, "other", "C29")
    k = tenancy.create_api_key(db, PEPPER, "acme", "admin")
    with pytest.raises(NotFound):
        tenancy.revoke_api_key(db, k.info.key_id, tenant="other")
    assert tenancy.resolve_api_key(db, PEPPER, k.token) is not None


def test_names_are_found_in_the_case_they_were_given(db):
    tenancy.create_tenant(db, "Acme2", "C29")  # stored as acme2
    assert tenancy.get_tenant(db, "Acme2").name == tenancy.get_tenant(db, " ACME2 ").name == "acme2"
    assert tenancy.subscribe(db, "ACME2", "quality").tenant == "acme2"
    assert [s.tenant for s in tenancy.list_subscriptions(db, "Acme2")] == ["acme2"]
    key = tenancy.create_api_key(db, PEPPER, "Acme2", "mes")
    assert key.info.tenant == "acme2" and [k.key_id for k in tenancy.list_api_keys(db, "ACME2")] == [key.info.key_id]
    assert tenancy.revoke_api_key(db, key.info.key_id, tenant="Acme2").revoked_at is not None
    assert tenancy.unsubscribe(db, "Acme2", "quality").module == "quality"


def test_quota_is_bounded(db):
    tenancy.create_tenant(db, "acme", "C29")
    for bad in (10**23, tenancy.MAX_QUOTA + 1, -1, True, 1.5):
        with pytest.raises(InvalidInput, match="request quota"):
            tenancy.subscribe(db, "acme", "quality", request_quota=bad)
    assert tenancy.list_subscriptions(db, "acme") == []
    assert tenancy.subscribe(db, "acme", "quality", request_quota=tenancy.MAX_QUOTA).request_quota == tenancy.MAX_QUOTA


def test_names_shown_in_lists_hold_no_control_characters(db):
    for bad in ("a\tb", "a\nb", "a\rb", "a\x00b", "a\u2028b"):
        with pytest.raises(InvalidInput, match="control characters"):
            tenancy.create_tenant(db, "acme", "C29", bad)
    with pytest.raises(InvalidInput, match="1-200"):
        tenancy.create_tenant(db, "acme", "C29", "x" * 201)
    tenancy.create_tenant(db, "acme", "C29", "ACME 제철 (line 3)")
    with pytest.raises(InvalidInput, match="control characters"):
        tenancy.create_api_key(db, PEPPER, "acme", "mes", "line\t3")
    assert tenancy.list_api_keys(db, "acme") == []


def test_unsubscribe_many_is_all_or_nothing(db):
    t = tenancy.create_tenant(db, "acme", "C29")
    with pytest.raises(NotFound, match="no active subscription"):
        tenancy.unsubscribe_many(db, "acme", None)
    for m in ("quality", "maintenance", "scheduling"):
        tenancy.subscribe(db, "acme", m)
    with pytest.raises(NotFound, match="'energy'"):
        tenancy.unsubscribe_many(db, "acme", ["quality", "energy"])
    assert set(tenancy.active_subscriptions(db, t.id)) == {"quality", "maintenance", "scheduling"}
    assert [s.module for s in tenancy.unsubscribe_many(db, "acme", None)] == ["quality", "maintenance", "scheduling"]
    assert tenancy.active_subscriptions(db, t.id) == {}


def test_a_key_id_that_no_key_can_have_is_no_key(db):
    """The key id goes to the database: one holding a NUL made PostgreSQL refuse the query (a 500 for a request
    with such an Authorization header, rather than the 401 of any other unknown key)."""
    tenancy.create_tenant(db, "acme", "C29")
    key = tenancy.create_api_key(db, PEPPER, "acme", "mes")
    secret = key.token.split("_", 2)[2]
    for key_id in ("k\x00", key.info.key_id + "\x00", "k\u00e9", "k" * 33, "k-1", "", " " + key.info.key_id):
        assert tenancy.resolve_api_key(db, PEPPER, f"sfai_{key_id}_{secret}") is None, repr(key_id)
    assert tenancy.resolve_api_key(db, PEPPER, key.token).key_id == key.info.key_id


def test_a_nul_in_the_api_key_is_a_401(client, db):
    tenancy.create_tenant(db, "acme", "C29")
    r = client.get("/v1/tenant", headers={"authorization": b"Bearer sfai_k\x00_secret"})
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthenticated", r.text


def test_a_tenants_changes_drop_only_its_own_cached_keys(db):
    """A tenant admin's subscription or key change invalidates that tenant's cached keys (and unknown ones: a key
    just created may have been tried before), not every tenant's: repeated changes used to cost all of them."""
    from serving.access import Access

    tenancy.create_tenant(db, "acme", "C29")
    tenancy.create_tenant(db, "beta", "C29")
    a = tenancy.create_api_key(db, PEPPER, "acme", "mes", "mes")
    b = tenancy.create_api_key(db, PEPPER, "beta", "mes", "mes")
    access = Access(db, PEPPER, ttl_s=60)
    ctx_a, ctx_b = access.resolve(a.token), access.resolve(b.token)
    unknown = "sfai_k0123456789ab_nosuchsecret"
    assert access.resolve(unknown) is None
    assert access.cached(access.digest(a.token)) == ctx_a and access.cached(access.digest(b.token)) == ctx_b
    tenancy.revoke_api_key(db, a.info.key_id)
    access.invalidate(ctx_a.tenant_id)
    assert access.cached(access.digest(b.token), claim=False) == ctx_b  # beta keeps its cached key
    assert access.cached(access.digest(a.token), claim=False) is None  # acme's is looked up again ...
    assert access.cached(access.digest(unknown), claim=False) is None
    assert access.resolve(a.token) is None  # ... and the revocation is seen at once
    access.invalidate()
    assert access.cached(access.digest(b.token), claim=False) is None  # without a tenant: every key


def test_a_refused_key_is_known_within_the_ttl_and_looked_up_again_after_it(db):
    """The request path refuses a key this process refused within the TTL without a database lookup; once the
    entry expires, one caller looks it up again (the others keep the old answer meanwhile), so a refusal is not
    kept for good by a stream of requests."""
    import time

    from serving.access import Access

    tenancy.create_tenant(db, "acme", "C29")
    access = Access(db, PEPPER, ttl_s=1.0)
    unknown = access.digest("sfai_k0123456789ab_nosuchsecret")
    assert access.lookup(unknown) == (False, None)  # never seen
    assert access.resolve("sfai_k0123456789ab_nosuchsecret") is None
    assert access.lookup(unknown) == (True, None)  # refused a moment ago
    time.sleep(1.05)
    assert access.lookup(unknown) == (False, None)  # expired: this caller looks it up again ...
    assert access.lookup(unknown) == (True, None)  # ... while the others keep the old answer
    time.sleep(1.05)
    assert access.lookup(unknown, claim=False) == (False, None)  # a look only claims nothing
    assert access.lookup(unknown, claim=False) == (False, None)


def test_subscription_changes_at_once_leave_one_active_subscription(db):
    """Two admins subscribing one module at once (trial and standard) each closed the same row and added their own:
    two active subscriptions to one module in 5 of 10 rounds, and the module's status read the older plan
    (tenant-admin audit). The changes now take turns: one active subscription, the later change's."""
    import threading

    tenancy.create_tenant(db, "acme", "C29")
    for round_ in range(6):
        barrier = threading.Barrier(3)
        errors = []

        def change(plan: str, end: bool = False, barrier=barrier, errors=errors) -> None:  # noqa: ANN001
            barrier.wait()
            try:
                if end:
                    try:
                        tenancy.unsubscribe(db, "acme", "energy", by_tenant=True)
                    except NotFound:
                        pass  # nothing active at that moment: a fair answer
                else:
                    tenancy.subscribe(db, "acme", "energy", plan=plan, by_tenant=True)
            except Exception as e:  # noqa: BLE001
                errors.append(e)

        threads = [threading.Thread(target=change, args=a) for a in (("trial",), ("standard",), ("trial", round_ % 2))]
        for th in threads:
            th.start()
        for th in threads:
            th.join(60)
        assert errors == []
        active = [x for x in tenancy.list_subscriptions(db, "acme", active=True) if x.module == "energy"]
        assert len(active) <= 1, active
        subs = sorted((x for x in tenancy.list_subscriptions(db, "acme") if x.module == "energy"),
                      key=lambda x: (x.starts_at, x.ends_at is None))
        for a, b in zip(subs, subs[1:], strict=False):  # the history's periods do not overlap
            assert a.ends_at is not None and a.ends_at <= b.starts_at, (a, b)
