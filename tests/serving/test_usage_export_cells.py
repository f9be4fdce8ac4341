"""The usage log's CSV export neutralises cells a spreadsheet would read as a formula (CSV injection)."""

import csv
import io
import json

from serving.usage import csv_cell
from tests.serving.helpers import bearer, make_tenant

PEPPER = "test-secret-0123456789"


def test_a_cell_starting_like_a_formula_gets_a_leading_quote():
    for text in ("=1+1", "+1", "-2+3", "@SUM(A1)", "\tx", "\rx"):
        assert csv_cell(text) == "'" + text
    for value in ("req-1", "/v1/quality/status", "failure@3", "", 200, 1.5, None):
        assert csv_cell(value) == value


def test_a_request_id_starting_with_a_minus_is_exported_as_text(client, db):
    """Before: X-Request-ID is the caller's (a leading '-' passes its check), and the CSV export wrote it as it
    was: "-2-3" is a formula to a spreadsheet opening a tenant admin's export. The JSON export keeps the value."""
    acme = make_tenant(db, PEPPER, "acme")
    assert client.get("/v1/quality/status", headers={**bearer(acme.mes), "x-request-id": "-2-3"}).status_code == 200
    r = client.get("/v1/usage/export?format=csv", headers=bearer(acme.admin))
    assert r.status_code == 200, r.text
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert "'-2-3" in {row["request_id"] for row in rows}
    assert all(not cell.startswith(("=", "+", "-", "@", "\t", "\r")) for row in rows for cell in row.values())
    exported = json.loads(client.get("/v1/usage/export?format=json", headers=bearer(acme.admin)).text)
    assert "-2-3" in {row["request_id"] for row in exported}
