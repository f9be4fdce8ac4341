"""Fuzzing the API with schemathesis against SFAI's own OpenAPI document, as each role.

For every operation and every role (admin, scientist, mes, planner, and no key at all), hypothesis draws
requests from the schema (valid and invalid ones) and each answer must be: no 5xx, a documented status code,
a body that matches the documented schema, and for every error the one JSON error shape. The pass here is
bounded (``SFAI_FUZZ_EXAMPLES`` per operation and role, default 6) so that ``make test`` stays quick;
``benchmarks/fuzz_api.py`` runs the same checks longer.
"""

from __future__ import annotations

import os

import pytest

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis is in the dev extra")

from tests.serving.fuzzing import ROLES, build_app, fuzz_app  # noqa: E402

EXAMPLES = int(os.environ.get("SFAI_FUZZ_EXAMPLES", "6"))


@pytest.fixture(scope="module")
def target(tmp_path_factory):
    """One app with the demo models for every role (training them takes a few seconds)."""
    home = tmp_path_factory.mktemp("fuzz")
    app, keys = build_app(home)
    yield home, app, keys
    app.state.platform.close()


@pytest.mark.parametrize("role", [*ROLES, None])
def test_fuzz_every_operation(target, role):
    home, app, keys = target
    report = fuzz_app(home, roles=[role], examples=EXAMPLES, seed=0, app=app, keys=keys)
    print(f"\nfuzz role={role or 'anonymous'}: {report.summary()}")
    assert report.operations >= 25, report.summary()
    assert report.cases >= report.operations, report.summary()
    assert not report.failures, report.describe_failures()


def test_what_fuzzing_found_stays_fixed(target):
    """Requests the longer fuzzing pass turned into 500s, now 422s that name the problem."""
    from fastapi.testclient import TestClient

    _, app, keys = target
    h = {"Authorization": f"Bearer {keys['mes']}"}
    # its own address: the anonymous fuzzing run's invalid keys may have used up the failed-key limit of the
    # test client's (too_many_failed_keys, when this runs soon after it)
    client = TestClient(app, client=("203.0.113.9", 50000))
    cases = [
        ("/v1/maintenance/rul/predict", {"records": [{"unit": 1}], "explain": True}, '"explain" is not an option'),
        ("/v1/energy/forecast", {"records": [{"x": 1}], "explain": False}, '"explain" is not an option'),
        ("/v1/quality/defect/predict", {"records": [{"x": 1}], "horizon": 4}, '"horizon" is not an option'),
        ("/v1/quality/defect/predict", {"entity_ids": [1], "view": ["a"]}, '"view"'),
    ]
    for path, body, message in cases:
        r = client.post(path, json=body, headers=h)
        assert r.status_code == 422, (path, body, r.text)
        assert message in r.json()["error"]["message"], r.text


def test_bodies_no_route_can_use_are_422_on_every_json_endpoint(target):
    """A lone surrogate escape (valid JSON, but no text: SQLite, Arrow and CP-SAT cannot take it) and nesting past
    the parser's limit are a 422 naming the problem wherever a JSON body is read: SFAI's own readers, the hot
    path, and the routes whose body FastAPI parses. They used to be 500s (and a job that could not be read back)
    or FastAPI's 400 "There was an error parsing the body"; an integer of 400 digits was a 500 on five paths."""
    from fastapi.testclient import TestClient

    _, app, keys = target
    # its own address: the anonymous fuzzing run's invalid keys may have used up the failed-key limit of the
    # test client's (too_many_failed_keys, when this runs soon after it)
    client = TestClient(app, client=("203.0.113.9", 50000))
    lone, deep = '"\\ud800"', "[" * 5000 + "]" * 5000
    plan = '{"problem": {"machines": [%s], "jobs": [{"id": "J1", "operations": [{"machines": {"M1": 3}}]}]}}'
    cases = [
        ("mes", "/v1/quality/defect/predict", '{"records": [{"row_id": %s, "f001": 1}]}'),
        ("mes", "/v1/quality/defect/predict", '{"records": [{"row_id": 1, "f001": %s}]}'),
        ("mes", "/v1/quality/defect/predict", '{"records": [{"row_id": 1, "f001": 1}], "threshold": %s}'),
        ("mes", "/v1/maintenance/failure/predict", '{"entity_ids": [%s], "view": "ai4i_features"}'),
        ("mes", "/v1/maintenance/rul/predict", '{"records": [{"unit": %s, "cycle": 1}]}'),
        ("mes", "/v1/energy/forecast", '{"records": [{"date": %s, "Usage_kWh": 1}]}'),
        ("mes", "/v1/features/online", '{"view": "ai4i_features", "entity_ids": [%s]}'),
        ("mes", "/v1/ingest/ai4i_features", '{"records": [{"product_id": %s}]}'),
        ("planner", "/v1/scheduling/solve", plan),
        ("planner", "/v1/scheduling/jobs", plan),
        ("admin", "/v1/apikeys", '{"name": %s, "role": "mes"}'),
    ]
    for role, path, template in cases:
        # an integer no float holds (a 500 where it was read as a float: a threshold, a measurement, a reading)
        big = "-1" + "0" * 400
        for value, words in ((lone, "surrogate"), (deep, "nested too deeply"), ("9" * 5000, "4,300 digits"),
                             (big, "beyond the range of a 64-bit float")):
            r = client.post(path, content=(template % value).encode(), headers={
                "Authorization": f"Bearer {keys[role]}", "content-type": "application/json"})
            assert r.status_code == 422, (path, value[:8], r.text)
            assert words in r.json()["error"]["message"], (path, r.text)
    # a surrogate pair is a character like any other: the same body with 😀 is read (here: an unknown machine)
    r = client.post("/v1/scheduling/solve", content=(plan % '"\\ud83d\\ude00"').encode(), headers={
        "Authorization": f"Bearer {keys['planner']}", "content-type": "application/json"})
    assert r.status_code == 422 and "surrogate" not in r.text, r.text
