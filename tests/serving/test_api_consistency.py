"""One rule per concern on every route (an MES integrator found each endpoint had its own): query parameters a route
does not take, or gives once, are refused; a JSON body is read alike whatever type a client names; the OpenAPI
document declares the statuses and headers the API answers with."""

import json

import pytest

from tests.feature_store.conftest import REC, STATS
from tests.serving.helpers import bearer, make_tenant

PEPPER = "test-secret-0123456789"
PLAN = {"problem": {"machines": ["M1"], "jobs": [{"id": "J1", "operations": [{"machines": {"M1": 3}}]}]},
        "time_limit_s": 1}


@pytest.fixture
def acme(app, db):
    keys = make_tenant(db, PEPPER, "acme", modules=("maintenance", "scheduling", "energy"))
    app.state.platform.feature_store("acme").apply(STATS)
    return keys


def _refused(r, status: int, code: str, *words: str) -> str:
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert error["code"] == code, r.text
    for w in words:
        assert w in error["message"], r.text
    return error["message"]


def test_a_query_parameter_a_route_does_not_take_is_refused_naming_those_it_takes(client, acme):
    """?time_limit_s=1 on a solve ran the 10 s default, ?limit=1 listed every key, ?cursor= and ?foo= passed
    unread: each is a 422 naming the parameter and those the route takes."""
    adm, mes = bearer(acme.admin), bearer(acme.mes)
    r = client.get("/v1/apikeys?limit=1", headers=adm)
    _refused(r, 422, "invalid_input", "unknown query parameter 'limit'", "this endpoint takes no query parameters")
    r = client.get("/v1/scheduling/jobs?cursor=abc", headers=mes)
    _refused(r, 422, "invalid_input", "unknown query parameter 'cursor': this endpoint takes ", "limit")
    r = client.post("/v1/scheduling/solve?time_limit_s=1", json=PLAN, headers=mes)
    _refused(r, 422, "invalid_input", "unknown query parameter 'time_limit_s'", "goes in the JSON body")
    r = client.post("/v1/scheduling/solve?foo=1", json=PLAN, headers=mes)
    _refused(r, 422, "invalid_input", "unknown query parameter 'foo'")
    r = client.post("/v1/ingest/machine_stats?foo=1", json={"records": [REC]}, headers=mes)
    _refused(r, 422, "invalid_input", "unknown query parameter 'foo': this endpoint takes format")
    r = client.get("/v1/usage?tenant=other", headers=adm)
    _refused(r, 422, "invalid_input", "this endpoint takes before_seq, from, key_id, limit, module, to")
    _refused(client.get("/healthz?x=1"), 422, "invalid_input", "unknown query parameter 'x'")
    # nothing was done: no key was listed, no rows stored
    assert client.post("/v1/features/online", json={"view": "machine_stats", "entity_ids": ["m1"]},
                       headers=mes).json()["rows"][0]["temp_mean"] is None
    # a caller without a key is told that first
    _refused(client.get("/v1/apikeys?limit=1"), 401, "unauthenticated")
    _refused(client.post("/v1/scheduling/solve?foo=1", json=PLAN), 401, "unauthenticated")
    # what the routes take still works
    assert client.get("/v1/subscriptions?active=true", headers=adm).status_code == 200
    assert client.get("/v1/scheduling/jobs?status=done&limit=5", headers=mes).status_code == 200
    csv = b"machine_id,event_timestamp,temp_mean,vib_rms,alarm,mode\nm1,2026-03-01T00:00:00Z,70,1.2,false,run\n"
    ok = client.post("/v1/ingest/machine_stats?format=csv", content=csv, headers={**mes, "content-type": "text/plain"})
    assert ok.status_code == 200 and ok.json()["rows"] == 1, ok.text
    # the prediction endpoints take their options from the query string themselves (and refuse those they do not
    # know, or given twice, on their own terms): the route-wide rule leaves them to it
    url, body = "/v1/maintenance/failure/predict", {"records": [{"UDI": 1}]}
    r = client.post(url + "?threshold=0.1&threshold=0.2", json=body, headers=mes)
    _refused(r, 422, "invalid_input", '"threshold" is given twice in the query string')
    r = client.post(url + "?threshold=0.2", json=body, headers=mes)  # taken: on to the model (none trained here)
    assert r.status_code == 404 and "unknown query parameter" not in r.text, r.text


def test_a_parameter_given_twice_is_refused(client, acme):
    """?from=2026-12-07&from=2026-01-01 read the last one without a word: which was meant?"""
    adm = bearer(acme.admin)
    for url, name in (("/v1/usage?from=2026-12-07&from=2026-01-01", "from"),
                      ("/v1/usage?module=platform&module=energy", "module"),
                      ("/v1/usage/export?format=csv&format=json", "format"),
                      ("/v1/subscriptions?active=true&active=false", "active"),
                      ("/v1/scheduling/jobs?limit=1&limit=2", "limit")):
        r = client.get(url, headers=adm)
        _refused(r, 422, "invalid_input", f"query parameter '{name}' is given 2 times: give it once")


@pytest.mark.parametrize("ctype", [None, "text/plain", "application/x-www-form-urlencoded",
                                   "text/plain; charset=utf-8", "application/json"])
def test_a_json_body_is_read_as_json_on_every_route_whatever_type_a_client_names(client, acme, ctype):
    """With no type, text/plain or curl -d's form type, failure predict read the body as JSON (as the docs say),
    ingest answered 415 and the routes FastAPI parses a 422 "Input should be a valid dictionary": all read it now."""
    adm, mes = bearer(acme.admin), bearer(acme.mes)

    def post(url: str, body: dict, key: dict):  # noqa: ANN202
        return client.post(url, content=json.dumps(body).encode(), headers={**key, **(
            {"content-type": ctype} if ctype else {})})

    r = post("/v1/apikeys", {"name": "line-3", "role": "mes"}, adm)
    assert r.status_code == 201 and r.json()["name"] == "line-3", r.text
    r = post("/v1/ingest/machine_stats", {"records": [REC]}, mes)
    assert r.status_code == 200 and r.json()["rows"] == 1, r.text
    r = post("/v1/features/online", {"view": "machine_stats", "entity_ids": ["m1"]}, mes)
    assert r.status_code == 200 and r.json()["rows"][0]["temp_mean"] == pytest.approx(70.5), r.text
    r = post("/v1/scheduling/solve", PLAN, mes)
    assert r.status_code == 200 and r.json()["status"] in ("OPTIMAL", "FEASIBLE"), r.text
    r = post("/v1/subscriptions", {"module": "scheduling", "plan": "standard"}, adm)
    assert r.status_code == 200, r.text
    r = post("/v1/maintenance/failure/predict", {"records": [{"UDI": 1}]}, mes)
    assert r.status_code == 404 and "no trained 'failure' model" in r.text, r.text  # read; no model here
    # a body that is JSON with a problem is a 422 naming it, whatever the type
    r = client.post("/v1/apikeys", content=b'{"name": "\\ud800", "role": "mes"}', headers={**adm, **(
        {"content-type": ctype} if ctype else {})})
    _refused(r, 422, "invalid_input", "lone UTF-16 surrogate")


def test_the_plant_calendar_reads_its_body_by_the_same_rule(client, acme):
    """PUT /v1/energy/calendar reads its body itself: a CSV, a form or a multipart body had been a 422 "not valid
    JSON" there while every other JSON route answered 415 (review)."""
    h = bearer(acme.admin)
    body = json.dumps({"days": [{"date": "2026-12-24", "kind": "day_off"}]}).encode()
    for ctype in (None, "text/plain", "application/json"):
        r = client.put("/v1/energy/calendar", content=body, headers={**h, **({"content-type": ctype} if ctype else {})})
        assert r.status_code == 200 and r.json()["days"] == [{"date": "2026-12-24", "kind": "day_off"}], r.text
    csv = b"date,kind\n2026-12-24,day_off\n"
    for ctype, said in (("text/csv", "cannot read a 'text/csv' body"), ("text/plain", "cannot read a 'text/plain' "
                                                                          "body as JSON")):
        r = client.put("/v1/energy/calendar", content=csv, headers={**h, "content-type": ctype})
        _refused(r, 415, "unsupported_media_type", said, "send JSON (application/json)")
    r = client.put("/v1/energy/calendar", content=csv, headers={**h, "content-type": "application/json"})
    _refused(r, 422, "invalid_input", "the body is not valid JSON")


@pytest.mark.parametrize("url,key", [("/v1/apikeys", "admin"), ("/v1/features/online", "mes"),
                                     ("/v1/scheduling/solve", "mes"), ("/v1/ingest/machine_stats", "mes"),
                                     ("/v1/maintenance/failure/predict", "mes")])
def test_a_body_that_is_not_json_is_415_naming_its_type_and_what_to_send(client, acme, url, key):
    h = bearer(getattr(acme, key))
    csv = b"machine_id,temp_mean\nm1,1\n"
    # a type no JSON route reads: 415 naming it
    r = client.post(url, content=csv, headers={**h, "content-type": "application/xml"})
    _refused(r, 415, "unsupported_media_type", "cannot read a 'application/xml' body: send JSON (application/json)")
    # a type read as JSON whose body is not JSON (a CSV sent as text/plain, a form): 415 saying what to send
    for ctype, form in ((None, csv), ("text/plain", csv), ("application/x-www-form-urlencoded", b"name=x&role=mes")):
        r = client.post(url, content=form, headers={**h, **({"content-type": ctype} if ctype else {})})
        what = f"a '{ctype}' body" if ctype else "a body without a content type"
        _refused(r, 415, "unsupported_media_type", f"cannot read {what} as JSON", "send JSON (application/json)")
    # a body sent as JSON that is not: a 422 naming the fault
    r = client.post(url, content=csv, headers={**h, "content-type": "application/json"})
    _refused(r, 422, "invalid_input", "the body is not valid JSON")
    if "ingest" not in url:  # a multipart upload is read by ingest only
        r = client.post(url, files={"file": ("a.csv", csv, "text/csv")}, headers=h)
        _refused(r, 415, "unsupported_media_type", "cannot read a 'multipart/form-data' body")


def test_the_openapi_document_declares_the_statuses_and_headers_the_api_answers_with(client):
    """409 was missing from the operations that answer it, 415 from every operation, and X-Request-ID, Retry-After
    and Idempotent-Replayed were declared nowhere: a generated client did not know them."""
    paths = client.get("/openapi.json").json()["paths"]
    for path, op, code in (("/v1/ingest/{view}", "post", "409"), ("/v1/scheduling/jobs", "post", "409"),
                           ("/v1/apikeys/{key_id}", "delete", "409")):
        assert code in paths[path][op]["responses"], (path, op)
    assert "idempotency_key_reused" in paths["/v1/ingest/{view}"]["post"]["responses"]["409"]["description"]
    assert "idempotency_key_reused" in paths["/v1/scheduling/jobs"]["post"]["responses"]["409"]["description"]
    assert "last_admin_key" in paths["/v1/apikeys/{key_id}"]["delete"]["responses"]["409"]["description"]
    assert "Idempotent-Replayed" in paths["/v1/ingest/{view}"]["post"]["responses"]["200"]["headers"]
    assert "Idempotent-Replayed" in paths["/v1/scheduling/jobs"]["post"]["responses"]["202"]["headers"]
    with_body = 0
    for path, operations in paths.items():
        for method, op in operations.items():
            responses = op["responses"]
            if "requestBody" in op:
                with_body += 1
                assert "415" in responses, (method, path)
                assert responses["415"]["content"]["application/json"]["schema"]["$ref"].endswith("ErrorResponse")
            for code, response in responses.items():
                assert "X-Request-ID" in response.get("headers", {}), (method, path, code)
                if code in ("429", "503"):
                    assert "Retry-After" in response["headers"], (method, path, code)
    assert with_body >= 10
    for path in ("/v1/maintenance/failure/predict", "/v1/ingest/{view}", "/v1/scheduling/solve", "/v1/apikeys"):
        assert "415" in paths[path]["post"]["responses"], path
