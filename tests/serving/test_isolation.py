"""Tenant isolation over every endpoint that exists: a key of tenant B never sees tenant A's anything.

The routes are read from the app's OpenAPI schema, so an endpoint added later is covered (and must be given
path parameters below, or the test fails and says so).
"""

import re

from tests.serving.helpers import bearer, make_tenant

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
