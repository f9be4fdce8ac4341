"""Tenant isolation over every endpoint that exists: a key of tenant B never sees tenant A's anything.

The routes are read from the app's OpenAPI schema, so an endpoint added later is covered (and must be given
path parameters below, or the test fails and says so).
"""

import re

from tests.serving.helpers import KEY, bearer, make_tenant

PEPPER = "test-secret-0123456789"
PUBLIC_PREFIXES = ("/healthz", "/readyz", "/metrics", "/v1/industries")
PROBLEM = {"machines": ["M1"], "jobs": [{"id": "secret-of-a-job", "operations": [{"machines": {"M1": 2}}]}]}


def _fill(path: str, a_ids: dict[str, str]) -> str:
    def sub(m: re.Match) -> str:
        name = m.group(1)
        assert name in a_ids, f"isolation test: give a value of tenant A for path parameter {{{name}}} in {path}"
        return a_ids[name]

    return re.sub(r"\{(\w+)(?::\w+)?\}", sub, path)


def test_b_sees_nothing_of_a_on_any_endpoint(client, app, db):
    a = make_tenant(db, PEPPER, "tenant-a", modules=("quality", "maintenance", "energy", "scheduling"))
    b = make_tenant(db, PEPPER, "tenant-b", modules=("quality", "maintenance", "energy", "scheduling"))
    a_key_id = a.mes.split("_")[1]
    # A's activity: calls that leave traces (usage records with A's request ids)
    for i in range(3):
        client.get("/v1/quality/status", headers={**bearer(a.mes), "X-Request-ID": f"secret-of-a-{i}"})
    job = client.post("/v1/scheduling/jobs", json={"problem": PROBLEM, "time_limit_s": 1}, headers=bearer(a.mes))
    assert job.status_code == 202, job.text
    # what B must never see (A's mes key id is sent by B itself as a path parameter, so it is not a mark)
    a_marks = ["tenant-a", a.admin_key_id, "secret-of-a-0", "secret-of-a-2", "secret-of-a-job"]
    # path parameters that name an object of tenant A (a module name is shared by every tenant)
    A_OWNED = {"key_id", "job_id", "model", "run_id"}
    a_ids = {
        "key_id": a_key_id,
        "module": "quality",
        "job_id": job.json()["job_id"],
        "model": "1",
        "view": "machine_stats",
    }

    checked = 0
    for route_path, ops in app.openapi()["paths"].items():
        if route_path.startswith(PUBLIC_PREFIXES):
            continue
        path = _fill(route_path, a_ids)
        for method in (m.upper() for m in ops):
            for key in (b.admin, b.mes):
                r = client.request(method, path, headers=bearer(key), json={})
                assert r.status_code < 500, (method, path, r.status_code, r.text)
                for mark in a_marks:
                    assert mark not in r.text, f"{method} {path} with tenant B's key shows {mark!r}: {r.text[:300]}"
                if set(re.findall(r"\{(\w+)", route_path)) & A_OWNED and r.status_code < 400:
                    raise AssertionError(f"{method} {route_path} answered {r.status_code} for tenant A's object")
                checked += 1
    print(f"\ntenant isolation: {checked} calls of tenant B's keys on tenant A's ids, 0 leaks")
    assert checked >= 20
    # A's key survived B's DELETE /v1/apikeys/{A's key id}
    assert client.get("/v1/quality/status", headers=bearer(a.mes)).status_code == 200
    assert client.delete(f"/v1/apikeys/{a_key_id}", headers=bearer(b.admin)).status_code == 404


def test_usage_and_keys_are_per_tenant(client, db):
    a = make_tenant(db, PEPPER, "tenant-a")
    b = make_tenant(db, PEPPER, "tenant-b")
    client.get("/v1/quality/status", headers=bearer(a.mes))
    client.get("/v1/quality/status", headers=bearer(b.mes))
    ua = client.get("/v1/usage", headers=bearer(a.admin)).json()
    assert {r["tenant"] for r in ua["records"]} == {"tenant-a"}
    ka = {k["key_id"] for k in client.get("/v1/apikeys", headers=bearer(a.admin)).json()}
    kb = {k["key_id"] for k in client.get("/v1/apikeys", headers=bearer(b.admin)).json()}
    assert ka and kb and not ka & kb
    assert client.get("/v1/tenant", headers=bearer(b.mes)).json()["name"] == "tenant-b"


# What each role may reach, written out here rather than read from the code, so that a route that loses its role
# check (or a new admin route without one) fails this test. Every other authenticated route: any role.
ADMIN_ONLY = {
    ("GET", "/v1/subscriptions"),
    ("POST", "/v1/subscriptions"),
    ("DELETE", "/v1/subscriptions/{module}"),
    ("GET", "/v1/apikeys"),
    ("POST", "/v1/apikeys"),
    ("DELETE", "/v1/apikeys/{key_id}"),
    ("GET", "/v1/usage"),
    ("GET", "/v1/usage/export"),
}
WRITERS_ONLY = {("POST", "/v1/ingest/{view}")}  # admin, scientist, mes (a planner reads, never writes data)
ALL_ROLES = ("admin", "scientist", "mes", "planner")
MODULE_PREFIXES = ("/v1/quality", "/v1/maintenance", "/v1/energy", "/v1/scheduling")


CALENDAR_WRITERS = {("PUT", "/v1/energy/calendar")}  # a person's plan of the plant's days, not a machine's


def _allowed(method: str, path: str) -> set[str]:
    if (method, path) in ADMIN_ONLY:
        return {"admin"}
    if (method, path) in CALENDAR_WRITERS:
        return {"admin", "scientist", "planner"}
    if (method, path) in WRITERS_ONLY:
        return {"admin", "scientist", "mes"}
    return set(ALL_ROLES)


def test_role_matrix_over_every_endpoint(client, app, db):
    """Every role against every authenticated endpoint: a role that must not reach it gets 403 'forbidden';
    one that may is never refused for its role. A tenant without the module gets 403 'not_subscribed' on every
    module endpoint, whatever the role."""
    from serving import tenancy

    tenancy.create_tenant(db, "roles", "C29")
    tenancy.create_tenant(db, "bare", "C29")  # no subscriptions at all
    for m in tenancy.MODULES:
        tenancy.subscribe(db, "roles", m)
    keys = {r: tenancy.create_api_key(db, PEPPER, "roles", r, r).token for r in ALL_ROLES}
    bare = {r: tenancy.create_api_key(db, PEPPER, "bare", r, r).token for r in ALL_ROLES}
    ids = {"key_id": "no-such-key", "module": "energy", "job_id": "0" * 32, "model": "1", "view": "machine_stats"}
    ops = [
        (m.upper(), p)
        for p, spec in app.openapi()["paths"].items()
        if not p.startswith(PUBLIC_PREFIXES)
        for m in spec
    ]
    ops.sort(key=lambda o: o[0] == "DELETE")  # deletions last: the others run with everything in place
    refused = reached = 0
    for method, route_path in ops:
        path = _fill(route_path, ids)
        for role in sorted(ALL_ROLES, key=lambda r: r == "admin"):
            r = client.request(method, path, headers=bearer(keys[role]), json={})
            assert r.status_code < 500, (method, path, role, r.text)
            code = r.json().get("error", {}).get("code") if r.status_code >= 400 else None
            if role in _allowed(method, route_path):
                assert code != "forbidden", f"{role} refused on {method} {route_path}: {r.text[:200]}"
                reached += 1
            else:
                assert (r.status_code, code) == (403, "forbidden"), f"{role} reached {method} {route_path}"
                refused += 1
            if route_path.startswith(MODULE_PREFIXES):
                r = client.request(method, path, headers=bearer(bare[role]), json={})
                assert r.status_code == 403 and r.json()["error"]["code"] == "not_subscribed", (method, path, role)
    print(f"\nrole matrix: {len(ops)} operations x {len(ALL_ROLES)} roles: {refused} refused, {reached} reached")
    assert refused == 3 * len(ADMIN_ONLY) + len(WRITERS_ONLY) + len(CALENDAR_WRITERS)
    assert reached >= 20


def test_control_characters_in_the_path_are_refused_before_they_reach_the_log(client, db):
    """A NUL in a path parameter went into the usage log's endpoint: PostgreSQL refuses NUL in text, so the whole
    group commit failed (503 for every call in it, other tenants' too), and the job or key lookup itself was a 500;
    on SQLite the NUL (or the chain hash's separators \\x1e, \\x1f) were logged as sent."""
    from sqlalchemy import text

    from serving.usage import verify_chain

    a = make_tenant(db, PEPPER, "tenant-a", modules=("scheduling",))
    for method, path in (
        ("GET", "/v1/scheduling/jobs/%00"),
        ("GET", "/v1/scheduling/jobs/x%1F200%1Fy"),
        ("DELETE", "/v1/apikeys/%00"),
        ("POST", "/v1/ingest/view%0A"),
        ("GET", "/v1/usage%7F"),
    ):
        r = client.request(method, path, headers=bearer(a.admin))
        assert r.status_code == 400 and r.json()["error"]["code"] == "bad_request", (path, r.status_code, r.text)
    assert client.get("/v1/scheduling/jobs/" + "0" * 32, headers=bearer(a.mes)).status_code == 404
    with db.engine.connect() as c:
        endpoints = [e for (e,) in c.execute(text("SELECT endpoint FROM usage_log"))]
    assert endpoints == ["/v1/scheduling/jobs/" + "0" * 32]
    assert verify_chain(db, key=KEY).ok


def test_a_content_length_of_thousands_of_digits_is_a_413(client, db):
    """int() refuses more than 4,300 digits: the body limit's check answered a 500."""
    a = make_tenant(db, PEPPER, "tenant-a")
    for length in ("9" * 5000, "9" * 19):
        r = client.get("/v1/usage", headers={**bearer(a.admin), "content-length": length})
        assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large", (length[:5], r.text)


def test_a_nul_in_a_json_body_is_a_4xx_not_a_500(client, db):
    """PostgreSQL refuses a NUL in text: a view or model name holding one reached a registry query and was a 500 there
    (SQLite answered the lookup, not found). Any value the database cannot store is the caller's error."""
    a = make_tenant(db, PEPPER, "tenant-a", modules=("quality", "maintenance"))
    for path, body in (
        ("/v1/features/online", {"view": "\u0000", "entity_ids": ["1"]}),
        ("/v1/features/online", {"view": "x\u0000y", "entity_ids": ["1"], "features": ["a\u0000"]}),
        ("/v1/maintenance/failure/predict", {"model": "failure-\u0000", "records": [{"Type": "L"}]}),
        ("/v1/quality/defect/predict", {"model": "\u0000", "entity_ids": ["1"], "view": "\u0000"}),
    ):
        r = client.post(path, json=body, headers=bearer(a.mes))
        assert 400 <= r.status_code < 500 and "error" in r.json(), (path, body, r.status_code, r.text)
        assert client.get("/v1/tenant", headers=bearer(a.mes)).status_code == 200  # the connection is usable again
