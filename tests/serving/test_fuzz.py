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
    client = TestClient(app)
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
